#!/usr/bin/env bash
# Windows toolchain under wine64 8.0, for tests only: installs wine64 + mingw-w64 (scripts/deps.sh windows),
# builds bcryptprimitives.dll (windows/prng, Go 1.26 needs ProcessPrng), creates a private WINEPREFIX,
# and builds the real containerd-shim-runhcs-v1.exe from the hcsshim module source. Idempotent; everything
# lives in $ISOGUARD_CACHE (default ~/.cache/isoguard) under wine/, nothing is written to the checkout.
#
#   eval "$(bash scripts/wine-env.sh)"       set up, then export the environment into this shell
#   . scripts/wine-env.sh                    the same, sourced
#   bash scripts/wine-env.sh env             same as no argument: set up, print `export K='V'` lines
#   bash scripts/wine-env.sh exec CMD...     set up, run CMD with the environment (Makefile recipes)
#   bash scripts/wine-env.sh stop            wineserver -k for the prefix (ends every wine process in it)
#
# Exported: WINEPREFIX, WINEDEBUG=-all, WINEDLLOVERRIDES="mscoree,mshtml=", PATH (+ a bin dir holding
# wine64 and wineserver, so `GOOS=windows go test -exec wine64` works), RUNHCS (the runhcs exe, Unix path).
# Progress and step timings go to stderr; stdout carries only the exports.
#
#   RUNHCS_VERSION    hcsshim version to build runhcs from (default v0.14.1; v0.15.0 does not build here)
#   ISOGUARD_NO_RUNHCS=1   skip the runhcs build (RUNHCS is then not exported)

# Sourced: run the setup in a child bash (keeps set -e etc. out of the caller) and eval its exports.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
	__isoguard_wine_env=$(bash "${BASH_SOURCE[0]}" env) && eval "$__isoguard_wine_env"
	__isoguard_rc=$?
	unset __isoguard_wine_env
	return $__isoguard_rc
fi

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ISOGUARD_CACHE:-$HOME/.cache/isoguard}
RUNHCS_VERSION=${RUNHCS_VERSION:-v0.14.1}
WINE_DIR="$CACHE/wine"
BIN="$WINE_DIR/bin"
PREFIX="$WINE_DIR/prefix"
DLL="$WINE_DIR/bcryptprimitives.dll"
RUNHCS="$WINE_DIR/runhcs-$RUNHCS_VERSION/containerd-shim-runhcs-v1.exe"
WINE_LIBDIR=/usr/lib/wine

work=""
trap '[ -z "$work" ] || rm -rf "$work"' EXIT

export WINEPREFIX="$PREFIX" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="

log() { printf 'wine-env: %s\n' "$*" >&2; }

# step NAME FUNC: runs FUNC and logs how long it took.
step() {
	local name=$1 t0 t1
	shift
	t0=$(date +%s%N)
	"$@"
	t1=$(date +%s%N)
	log "$(printf 'step %-7s %6d ms' "$name" $(((t1 - t0) / 1000000)))"
}

deps() {
	bash "$ROOT/scripts/deps.sh" windows
	[ -x "$WINE_LIBDIR/wine64" ] || { log "$WINE_LIBDIR/wine64 missing after deps.sh windows"; return 1; }
}

# The DLL is rebuilt when its sources change (stamp = their hash).
build_dll() {
	local src="$ROOT/windows/prng" sum
	sum=$(cat "$src/bcryptprimitives.c" "$src/bcryptprimitives.def" | sha256sum | cut -d' ' -f1)
	if [ -f "$DLL" ] && [ "$(cat "$DLL.sha256" 2>/dev/null)" = "$sum" ]; then return 0; fi
	log "building $DLL"
	x86_64-w64-mingw32-gcc -shared -O2 -s -static-libgcc -Wall -Werror \
		-o "$DLL.tmp" "$src/bcryptprimitives.c" "$src/bcryptprimitives.def" -ladvapi32
	mv "$DLL.tmp" "$DLL"
	echo "$sum" >"$DLL.sha256"
}

# The prefix is created once; a half-made one (no stamp) is thrown away and made again.
make_prefix() {
	if [ ! -f "$PREFIX/.isoguard-ready" ]; then
		log "creating WINEPREFIX $PREFIX (~10 s)"
		"$WINE_LIBDIR/wineserver" -k 2>/dev/null || true
		rm -rf "$PREFIX"
		mkdir -p "$PREFIX"
		"$WINE_LIBDIR/wine64" wineboot --init >/dev/null 2>&1
		"$WINE_LIBDIR/wineserver" -w
		touch "$PREFIX/.isoguard-ready"
	fi
	local dst="$PREFIX/drive_c/windows/system32/bcryptprimitives.dll"
	cmp -s "$DLL" "$dst" || cp "$DLL" "$dst"
}

make_bin() {
	mkdir -p "$BIN"
	ln -sfn "$WINE_LIBDIR/wine64" "$BIN/wine64"
	ln -sfn "$WINE_LIBDIR/wineserver" "$BIN/wineserver"
}

# Built from the module source (module zips have no vendor/, hence -mod=mod); cached by version.
build_runhcs() {
	[ "${ISOGUARD_NO_RUNHCS:-}" = 1 ] && return 0
	[ -f "$RUNHCS" ] && return 0
	log "building runhcs $RUNHCS_VERSION from the hcsshim module source (cold: ~30-60 s)"
	local src
	work=$(mktemp -d "${TMPDIR:-/tmp}/isoguard-runhcs.XXXXXX")
	src=$(cd "$work" && GOFLAGS= go mod download -json "github.com/Microsoft/hcsshim@$RUNHCS_VERSION" |
		sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
	[ -d "$src" ] || { log "module source of hcsshim $RUNHCS_VERSION not found"; return 1; }
	cp -r "$src/." "$work/src" && chmod -R u+w "$work/src"
	mkdir -p "$(dirname "$RUNHCS")"
	(cd "$work/src" && CGO_ENABLED=0 GOOS=windows GOARCH=amd64 GOFLAGS="-buildvcs=false -mod=mod" \
		go build -trimpath -o "$RUNHCS.tmp" ./cmd/containerd-shim-runhcs-v1)
	mv "$RUNHCS.tmp" "$RUNHCS"
	rm -rf "$work"
	work=""
}

setup() {
	mkdir -p "$WINE_DIR"
	# One setup at a time per cache (parallel CI jobs, parallel make targets).
	exec 9>"$WINE_DIR/.lock"
	flock 9
	step deps deps
	step dll build_dll
	step bin make_bin
	step prefix make_prefix
	step runhcs build_runhcs
	exec 9>&-
}

# Single-quoted for the shell.
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

print_env() {
	echo "export WINEPREFIX=$(q "$WINEPREFIX")"
	echo "export WINEDEBUG=$(q "$WINEDEBUG")"
	echo "export WINEDLLOVERRIDES=$(q "$WINEDLLOVERRIDES")"
	echo "export PATH=$(q "$BIN"):\"\$PATH\""
	if [ "${ISOGUARD_NO_RUNHCS:-}" != 1 ]; then echo "export RUNHCS=$(q "$RUNHCS")"; fi
}

case "${1:-env}" in
env)
	setup
	print_env
	;;
exec)
	shift
	[ $# -gt 0 ] || { log "usage: $0 exec CMD [ARGS...]"; exit 2; }
	setup
	eval "$(print_env)"
	exec "$@"
	;;
stop)
	[ -x "$WINE_LIBDIR/wineserver" ] && [ -d "$PREFIX" ] && "$WINE_LIBDIR/wineserver" -k 2>/dev/null || true
	;;
*)
	log "usage: $0 [env|exec CMD...|stop]"
	exit 2
	;;
esac
