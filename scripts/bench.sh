#!/usr/bin/env bash
# make bench: isoguard's overhead against the same delegate used directly, measured in one
# run (method and committed results: docs/benchmarks.md). Writes out/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
{
	echo "# isoguard benchmark run, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(go version | cut -d' ' -f3)"
	echo
	echo "## End to end, real containerd 2.4.2 + runc (integration/bench_test.go)"
	echo
} > out/benchmarks.md
ISOGUARD_BENCH=1 ISOGUARD_BENCH_OUT="$PWD/out/bench-e2e.md" \
	go test -tags integration -count=1 -run '^TestBenchmarkReport$' -timeout 20m ./integration/ >out/bench-e2e.log 2>&1 ||
	{ tail -50 out/bench-e2e.log; exit 1; }
cat out/bench-e2e.md >> out/benchmarks.md
{
	echo
	echo "## Launch cost of the wrapper binary (integration/bench_launch_test.go)"
	echo
} >> out/benchmarks.md
ISOGUARD_BENCH=1 ISOGUARD_BENCH_OUT="$PWD/out/benchmarks.md" \
	go test -tags integration -count=1 -run '^TestBenchmarkLaunch$' -timeout 10m ./integration/ >out/bench-launch.log 2>&1 ||
	{ tail -50 out/bench-launch.log; exit 1; }
{
	echo
	echo "## Pod start through containerd 2.4.2's CRI plugin (integration/cri/bench_test.go)"
	echo
} >> out/benchmarks.md
ISOGUARD_BENCH=1 ISOGUARD_BENCH_OUT="$PWD/out/benchmarks.md" \
	go test -tags integration -count=1 -run '^TestBenchmarkCRIPodStart$' -timeout 20m ./integration/cri/ >out/bench-cri.log 2>&1 ||
	{ tail -50 out/bench-cri.log; exit 1; }
{
	echo
	echo "## Go benchmarks (proxy with a fake delegate over unix sockets; policy evaluation)"
	echo
	echo '```'
	go test -run '^$' -bench . -benchmem -count 5 ./shim/internal/relay/ ./policy/ | grep -E '^(Benchmark|ok|goos|cpu)'
	echo '```'
} >> out/benchmarks.md
cat out/benchmarks.md
