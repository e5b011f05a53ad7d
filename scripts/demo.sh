#!/usr/bin/env bash
# make demo: isoguard at work on a private containerd 2.4.2 (Linux profile, runc shim as the
# delegate, gVisor as the sandbox runtime for untrusted tenants):
#   1. a trusted tenant's container runs unchanged (runc, root);
#   2. an untrusted tenant's container is moved into gVisor and runs as a non-root user;
#   3. an untrusted host-directory mount is denied with a readable error naming the rule;
#   4. the audit records of those decisions.
# Everything runs in a temporary directory that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${ISOGUARD_CACHE:-$HOME/.cache/isoguard}
BIN=$CACHE/containerd-v2.4.2/bin
SHIM=$ROOT/out/containerd-shim-isoguard-v1
[ -x "$SHIM" ] || { echo "demo: build first (make build)"; exit 1; }
[ -x "$BIN/containerd" ] || { echo "demo: run scripts/deps.sh linux first (make deps)"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "demo: containerd needs root"; exit 1; }

DEMO=$(mktemp -d /tmp/isoguard-demo-XXXXXX)
CTRD_PID=""
cleanup() {
	set +e
	for ns in trusted-team tenant-a; do
		for c in $("$BIN/ctr" -a "$DEMO/c.sock" -n $ns containers ls -q 2>/dev/null); do
			"$BIN/ctr" -a "$DEMO/c.sock" -n $ns task kill -s SIGKILL "$c" >/dev/null 2>&1
			"$BIN/ctr" -a "$DEMO/c.sock" -n $ns task delete "$c" >/dev/null 2>&1
			"$BIN/ctr" -a "$DEMO/c.sock" -n $ns containers delete "$c" >/dev/null 2>&1
		done
	done
	[ -n "$CTRD_PID" ] && kill "$CTRD_PID" 2>/dev/null && wait "$CTRD_PID" 2>/dev/null
	pkill -f "$DEMO/" 2>/dev/null
	grep -o " $DEMO[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$DEMO"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ctr() { "$BIN/ctr" -a "$DEMO/c.sock" "$@" 2>&1 | grep -v -e DEPRECATION -e 'Failed to check deprecations' || true; }

# gVisor as packaged by Debian needs these flags here (see docs/policy.md).
cat > "$DEMO/runsc-isoguard" <<'RUNSC'
#!/bin/sh
exec /usr/bin/runsc --network=none --ignore-cgroups "$@"
RUNSC
chmod 755 "$DEMO/runsc-isoguard"

cat > "$DEMO/policy.yaml" <<POLICY
apiVersion: isoguard.dev/v1alpha1
kind: NodePolicy
platform: linux
mode: enforce
tenants:
  - containerdNamespace: trusted-team      # named: trusted, passes unchanged (still audited)
untrusted:                                 # everyone else
  sandboxRuntime: $DEMO/runsc-isoguard     # untrusted pods run in gVisor
  linuxUser: {uid: 65534, gid: 65534}      # ...as nobody, never root
POLICY

cat > "$DEMO/config.toml" <<TOML
version = 3
root = "$DEMO/root"
state = "$DEMO/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.nri.v1.nri"]
[grpc]
  address = "$DEMO/c.sock"
[ttrpc]
  address = "$DEMO/c.sock.ttrpc"
TOML

say "Starting a private containerd 2.4.2 (state in $DEMO)"
(cd "$DEMO" && PATH="$BIN:$PATH" ISOGUARD_CONFIG="$DEMO/policy.yaml" ISOGUARD_AUDIT_LOG="$DEMO/audit.log" \
	exec "$BIN/containerd" --config "$DEMO/config.toml" >"$DEMO/containerd.log" 2>&1) &
CTRD_PID=$!
for _ in $(seq 100); do [ -S "$DEMO/c.sock" ] && break; sleep 0.1; done
IMAGE_TAR=$(go run ./integration/cmd/testimage-tar)
for ns in trusted-team tenant-a; do ctr -n $ns images import "$IMAGE_TAR" >/dev/null; done
IMG=docker.io/isoguard/test:latest

say "The node policy ($DEMO/policy.yaml)"
cat "$DEMO/policy.yaml"
echo; "$ROOT/out/isoguard" policy validate --platform linux "$DEMO/policy.yaml"

say "1. Trusted tenant (containerd namespace trusted-team): runs unchanged"
echo "\$ ctr -n trusted-team run --rm --runtime $SHIM $IMG job /bin/tool id"
ctr -n trusted-team run --rm --runtime "$SHIM" $IMG job /bin/tool id
echo "kernel seen inside:"; ctr -n trusted-team run --rm --runtime "$SHIM" $IMG job2 /bin/tool cat /proc/version

say "2. Untrusted tenant (namespace tenant-a): same command, moved into gVisor, not root"
echo "\$ ctr -n tenant-a run --rm --runtime $SHIM $IMG job /bin/tool id"
ctr -n tenant-a run --rm --runtime "$SHIM" $IMG job /bin/tool id
echo "kernel seen inside (gVisor's):"; ctr -n tenant-a run --rm --runtime "$SHIM" $IMG job2 /bin/tool cat /proc/version

say "3. Untrusted tenant mounts a host secret directory: denied"
mkdir -p "$DEMO/host-secrets" && echo "hunter2" > "$DEMO/host-secrets/key"
echo "\$ ctr -n tenant-a run --rm --runtime $SHIM --mount type=bind,src=$DEMO/host-secrets,dst=/secrets,options=rbind:ro $IMG steal /bin/tool cat /secrets/key"
ctr -n tenant-a run --rm --runtime "$SHIM" --mount "type=bind,src=$DEMO/host-secrets,dst=/secrets,options=rbind:ro" $IMG steal /bin/tool cat /secrets/key
ctr -n tenant-a containers delete steal >/dev/null

say "4. The audit trail ($DEMO/audit.log): one JSON record per decision"
if command -v python3 >/dev/null; then
	python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(json.dumps({k:r[k] for k in ("time","call","namespace","id","tenant","trusted","mode","outcome","rules","denials","mutations") if k in r}))' "$DEMO/audit.log"
else
	cat "$DEMO/audit.log"
fi
say "Done: containerd stopped, $DEMO removed"
