#!/usr/bin/env bash
# Builds gVisor's runsc and its containerd shim (containerd-shim-runsc-v1) from the gvisor.dev/gvisor Go
# module at a pinned pseudo-version, with CGO_ENABLED=0 and -trimpath, cached outside the checkout in
# $ISOGUARD_CACHE (default ~/.cache/isoguard). Idempotent: nothing is rebuilt when the binaries are there.
# Cold: ~4 min on 2 cores with module downloads (see docs/gvisor-notes.md); ~10 s warm; 0.1 s cached. Needs go and patch; network: the Go module proxy.
#
#   scripts/gvisor.sh [product]  unpatched runsc + containerd-shim-runsc-v1
#                                prints  $ISOGUARD_CACHE/gvisor-<version>/bin
#   scripts/gvisor.sh test       the product build, plus a TEST-ONLY shim built with the patches in
#                                scripts/patches/gvisor/ (tolerates the shim's oom_score_adj write failing
#                                without CAP_SYS_RESOURCE); next to it a runsc link to ../bin/runsc
#                                prints  $ISOGUARD_CACHE/gvisor-<version>/test-bin
#   scripts/gvisor.sh version    prints the pinned module version
#
# Put the printed directory first on containerd's PATH (or use runtime_path) for runtime_type
# "io.containerd.runsc.v1". GVISOR_VERSION=<pseudo-version> overrides the pin (the proxy refuses
# branch names; `go list -m gvisor.dev/gvisor@latest` names the newest).
# Only the last line of stdout is the directory; progress goes to stderr.
set -euo pipefail

GVISOR_VERSION=${GVISOR_VERSION:-v0.0.0-20260905035102-160fafc42237}
CACHE=${ISOGUARD_CACHE:-$HOME/.cache/isoguard}
ROOT="$CACHE/gvisor-$GVISOR_VERSION"
PATCHES="$(cd "$(dirname "$0")" && pwd)/patches/gvisor"
MODULE=gvisor.dev/gvisor

log() { printf 'gvisor: %s\n' "$*" >&2; }

# go_build_env runs go with the settings every build here shares.
go_build_env() { env CGO_ENABLED=0 GOFLAGS=-buildvcs=false "$@"; }
# LDFLAGS stamps the version runsc reports (a Bazel build stamps it; plain go build leaves VERSION_MISSING).
LDFLAGS="-X gvisor.dev/gvisor/runsc/version.version=$GVISOR_VERSION"

# record writes what was built (module versions, flags, sha256) next to the binaries.
record() {
	local dir=$1 note=$2
	{
		printf '%s\n' "$note"
		for f in "$dir"/*; do
			if [ ! -f "$f" ] || [ -L "$f" ] || [ ! -x "$f" ]; then continue; fi
			sha256sum "$f" | sed "s|$dir/||"
			go version -m "$f" | sed -n "1s|^$dir/||p;2,3p;/-trimpath\|CGO_ENABLED/p"
			printf '\tbuild\t-ldflags=%s (go omits it under -trimpath)\n' "$LDFLAGS"
		done
	} >"$dir/BUILDINFO"
}

product() {
	local bin="$ROOT/bin"
	if [ -x "$bin/runsc" ] && [ -x "$bin/containerd-shim-runsc-v1" ]; then
		return 0
	fi
	log "go install $MODULE/runsc and $MODULE/shim @$GVISOR_VERSION (cold: ~4 min on 2 cores, module downloads included)"
	local t0=$SECONDS
	local tmp="$ROOT/.bin.$$"
	rm -rf "$tmp" && mkdir -p "$tmp"
	go_build_env GOBIN="$tmp" go install -trimpath -ldflags="$LDFLAGS" "$MODULE/runsc@$GVISOR_VERSION" "$MODULE/shim@$GVISOR_VERSION"
	mv "$tmp/shim" "$tmp/containerd-shim-runsc-v1"
	record "$tmp" "product build of $MODULE@$GVISOR_VERSION, unpatched"
	log "built in $((SECONDS - t0)) s"
	rm -rf "$bin" && mv "$tmp" "$bin"
}

patches_sum() { cat "$PATCHES"/*.patch | sha256sum | cut -d' ' -f1; }

# test_build: the shim only, from a writable copy of the module source with scripts/patches/gvisor/*.patch
# applied. runsc is not patched: test-bin/runsc links to the product runsc.
test_build() {
	local bin="$ROOT/test-bin" sum
	sum=$(patches_sum)
	if [ -x "$bin/containerd-shim-runsc-v1" ] && [ "$(cat "$bin/PATCHES.sha256" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	local names t0=$SECONDS
	names=$(cd "$PATCHES" && echo *.patch)
	log "TEST-ONLY build of containerd-shim-runsc-v1 with $names (~1 min more)"
	local src
	src=$(go mod download -json "$MODULE@$GVISOR_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
	[ -d "$src" ] || { log "module source of $MODULE@$GVISOR_VERSION not found"; return 1; }
	local work="$ROOT/.src.$$" tmp="$ROOT/.test-bin.$$"
	rm -rf "$work" "$tmp" && mkdir -p "$work" "$tmp"
	cp -r "$src/." "$work/" && chmod -R u+w "$work"
	local p
	for p in "$PATCHES"/*.patch; do
		patch -p1 --quiet --forward -d "$work" <"$p" >&2 || { log "patch $p does not apply to $GVISOR_VERSION"; rm -rf "$work" "$tmp"; return 1; }
	done
	(cd "$work" && go_build_env go build -trimpath -ldflags="$LDFLAGS" -o "$tmp/containerd-shim-runsc-v1" ./shim)
	rm -rf "$work"
	record "$tmp" "TEST-ONLY build of $MODULE@$GVISOR_VERSION with $names applied. Not for production."
	printf '%s\n' "$sum" >"$tmp/PATCHES.sha256"
	log "built in $((SECONDS - t0)) s"
	ln -s ../bin/runsc "$tmp/runsc"
	rm -rf "$bin" && mv "$tmp" "$bin"
}

main() {
	local what=${1:-product}
	case "$what" in
	version) printf '%s\n' "$GVISOR_VERSION"; return 0 ;;
	product | test) ;;
	*) log "usage: $0 [product|test|version]"; return 2 ;;
	esac
	command -v go >/dev/null || { log "go is required"; return 1; }
	mkdir -p "$ROOT"
	trap 'rm -rf "$ROOT/.bin.$$" "$ROOT/.src.$$" "$ROOT/.test-bin.$$"' EXIT
	# One build at a time per version: a second caller waits, then finds the binaries.
	exec 9>"$ROOT/.lock"
	flock 9
	product
	if [ "$what" = test ]; then
		command -v patch >/dev/null || { log "patch is required (apt-get install -y patch)"; return 1; }
		test_build
		printf '%s\n' "$ROOT/test-bin"
	else
		printf '%s\n' "$ROOT/bin"
	fi
}

main "$@"
