#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian machine, idempotently.
# Downloads and builds are cached outside the checkout, in $ISOGUARD_CACHE (default ~/.cache/isoguard).
#
#   scripts/deps.sh linux     runc, containerd 1.6 (apt), containerd 2.4.2 + ctr + runc shim (go install),
#                             containerd 1.7.35 (built from the module source), gVisor's runsc and
#                             containerd shim (scripts/gvisor.sh test: built from the gvisor.dev module),
#                             and for the CRI tests (cri): crictl + critest (cri-tools), CNI plugins, busybox-static
#   scripts/deps.sh cri       only the CRI test tools (part of linux)
#   scripts/deps.sh windows   wine64, mingw-w64 (apt)
#
# Prints the cache directory's layout on success.
set -euo pipefail

CACHE=${ISOGUARD_CACHE:-$HOME/.cache/isoguard}
CTRD2_VERSION=${CTRD2_VERSION:-v2.4.2}
CTRD17_VERSION=${CTRD17_VERSION:-v1.7.35}
CRITOOLS_VERSION=${CRITOOLS_VERSION:-v1.37.0}
mkdir -p "$CACHE"

log() { printf 'deps: %s\n' "$*" >&2; }

apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	log "apt-get install ${missing[*]}"
	local sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	# apt-get update only once per cache lifetime unless an install fails.
	if [ ! -f "$CACHE/.apt-updated" ]; then
		$sudo apt-get update -qq >&2 && touch "$CACHE/.apt-updated"
	fi
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || {
		$sudo apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	}
}

containerd2() {
	local dir="$CACHE/containerd-$CTRD2_VERSION/bin"
	if [ -x "$dir/containerd" ] && [ -x "$dir/ctr" ] && [ -x "$dir/containerd-shim-runc-v2" ]; then
		return 0
	fi
	log "go install containerd $CTRD2_VERSION (cold: ~2 min)"
	mkdir -p "$dir"
	GOBIN="$dir" GOFLAGS=-buildvcs=false go install \
		"github.com/containerd/containerd/v2/cmd/containerd@$CTRD2_VERSION" \
		"github.com/containerd/containerd/v2/cmd/ctr@$CTRD2_VERSION" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CTRD2_VERSION"
}

containerd17() {
	local dir="$CACHE/containerd-$CTRD17_VERSION/bin"
	if [ -x "$dir/containerd" ] && [ -x "$dir/ctr" ] && [ -x "$dir/containerd-shim-runc-v2" ]; then
		return 0
	fi
	# Not go-installable (its go.mod has exclude directives): build from the module source.
	log "build containerd $CTRD17_VERSION from module source (cold: ~90 s)"
	local src
	src=$(go mod download -json "github.com/containerd/containerd@$CTRD17_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
	[ -d "$src" ] || { log "module source of containerd $CTRD17_VERSION not found"; return 1; }
	local work="$CACHE/src/containerd-$CTRD17_VERSION"
	rm -rf "$work" && mkdir -p "$work" && cp -r "$src/." "$work/" && chmod -R u+w "$work"
	mkdir -p "$dir"
	(cd "$work" && GOFLAGS="-buildvcs=false -mod=mod" go build -o "$dir/" ./cmd/containerd ./cmd/ctr ./cmd/containerd-shim-runc-v2)
	rm -rf "$work"
}

# cri: what the CRI tests (integration/cri) need besides containerd: the CNI plugins
# (/usr/lib/cni), busybox-static (/bin/busybox, the base of the test images) and iproute2
# (ip, for the test network's bridge) from apt,
# crictl (go install) and critest (not go-installable: "no non-test Go files"; built as a
# test binary from the module source) into $CACHE/cri-tools-VERSION/bin.
cri() {
	apt_install containernetworking-plugins busybox-static iproute2
	local dir="$CACHE/cri-tools-$CRITOOLS_VERSION/bin"
	mkdir -p "$dir"
	if [ ! -x "$dir/crictl" ]; then
		log "go install crictl $CRITOOLS_VERSION"
		GOBIN="$dir" GOFLAGS=-buildvcs=false go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRITOOLS_VERSION"
	fi
	if [ ! -x "$dir/critest" ]; then
		log "build critest $CRITOOLS_VERSION from module source"
		local src work
		src=$(go mod download -json "sigs.k8s.io/cri-tools@$CRITOOLS_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
		[ -d "$src" ] || { log "module source of cri-tools $CRITOOLS_VERSION not found"; return 1; }
		# A writable copy of the module (the module cache is read-only), private to this run.
		mkdir -p "$CACHE/src" && work=$(mktemp -d "$CACHE/src/cri-tools-$CRITOOLS_VERSION.XXXXXX")
		cp -r "$src/." "$work/" && chmod -R u+w "$work"
		(cd "$work" && GOFLAGS="-buildvcs=false -mod=mod" go test -c -o "$work/critest" ./cmd/critest)
		mv "$work/critest" "$dir/critest"
		rm -rf "$work"
	fi
}

case "${1:-linux}" in
linux)
	command -v go >/dev/null || { log "go is required (Go 1.26)"; exit 1; }
	apt_install runc containerd patch
	containerd2
	if [ "${ISOGUARD_SKIP_CTRD17:-}" != 1 ]; then containerd17; fi
	cri
	bash "$(dirname "$0")/gvisor.sh" test >/dev/null
	;;
cri)
	command -v go >/dev/null || { log "go is required (Go 1.26)"; exit 1; }
	cri
	;;
windows)
	apt_install wine64 gcc-mingw-w64-x86-64-win32
	;;
*)
	log "usage: $0 linux|cri|windows"; exit 2 ;;
esac
