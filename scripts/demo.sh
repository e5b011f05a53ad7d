#!/usr/bin/env bash
# make demo: isoguard as a Linux node runs it. A private containerd 2.4.2 with its CRI plugin
# and the isoguard runtime handler (from `isoguard config containerd --os linux`), driven by
# crictl the way kubelet drives it:
#   1. a trusted namespace's pod runs unchanged (runc, root, the host's kernel);
#   2. an untrusted namespace's pod runs in gVisor (its own kernel) as a non-root user;
#   3. an untrusted host path mount is denied, the rule named in the error kubelet would log;
#   4. isoguard ps shows the wrappers; 5. the audit records of those decisions.
# The demo is a Go test (integration/cri/demo_test.go) so that it uses the same harness as
# the CRI tests and checks what it shows; everything it creates is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: containerd needs root"; exit 1; }
export ISOGUARD_DEMO=1
# Show the narration and the crictl commands the harness runs; hide the test framework.
go test -tags integration -count=1 -timeout 10m -run '^TestDemo$' -v ./integration/cri 2>&1 |
	sed -E -u \
		-e '/^(=== RUN|=== PAUSE|=== CONT|--- PASS|PASS$|ok )/d' \
		-e 's/^ +[a-z_]+\.go:[0-9]+: ((crictl|ctr) .*) \([0-9.]+m?s\)$/   $ \1/' \
		-e '/^ +[a-z_]+\.go:[0-9]+: /d'
exit "${PIPESTATUS[0]}"
