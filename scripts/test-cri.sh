#!/usr/bin/env bash
# The CRI tier alone: installs what it needs (scripts/deps.sh linux: containerd 2.4.2 and
# 1.7.35, runc, gVisor, crictl, critest, CNI plugins, busybox-static), then runs
# integration/cri: containerd's CRI plugin driven by crictl and critest, through the plain
# runc handler and through isoguard. `make test` runs it too, without the slow parts that
# ISOGUARD_CRI_FULL=1 adds (make test-cri): critest on containerd 1.7 and in enforce mode.
# Extra arguments go to go test, e.g.:
#
#   bash scripts/test-cri.sh -run 'TestCritest/2.4'
#
# Needs root. ISOGUARD_SKIP_CTRD17=1 skips containerd 1.7 (not built, its subtests skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh linux
exec go test -tags integration -count=1 -v -timeout 25m ./integration/cri/ "$@"
