#!/usr/bin/env bash
# make stress: the load test (integration/cri/stress_test.go TestStress): 100 pods through
# isoguard on containerd 2.4.2's CRI plugin, started concurrently with as many on the plain
# handlers, every one running or denied as the policy says, exactly one audit record per
# decision across rotations, nothing left. Writes out/stress.md (the report), out/stress.log
# (go test -v) and out/stress/ (containerd's log and the audit trail). Method and results:
# docs/benchmarks.md, "Load (make stress)". The ISOGUARD_STRESS_* variables of TestStress
# pass through, e.g. ISOGUARD_STRESS_PODS=20 for a short run.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
rm -rf out/stress out/stress.md
start=$(date +%s)
if ! ISOGUARD_STRESS=1 ISOGUARD_STRESS_OUT="$PWD/out/stress.md" ISOGUARD_STRESS_ARTIFACTS="$PWD/out/stress" \
	go test -tags integration -count=1 -v -run '^TestStress$' -timeout 40m ./integration/cri/ >out/stress.log 2>&1; then
	# The test's own messages (containerd's log lines start with time=).
	grep -v -E '^\s+time=' out/stress.log | tail -150
	echo "make stress: FAILED after $(($(date +%s) - start)) s; out/stress.log, containerd's log and the audit trail in out/stress/"
	exit 1
fi
cat out/stress.md
echo "make stress: passed in $(($(date +%s) - start)) s (out/stress.md, out/stress.log)"
