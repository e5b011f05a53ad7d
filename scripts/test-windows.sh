#!/usr/bin/env bash
# Windows end-to-end tests under wine64: the Go tests in integration/windows (built for
# GOOS=windows) play containerd against containerd-shim-isoguard-v1.exe, which runs the REAL
# hcsshim containerd-shim-runhcs-v1.exe (v0.14.1, from scripts/wine-env.sh) as its delegate.
#
#   bash scripts/test-windows.sh                    all tests
#   bash scripts/test-windows.sh -run TestWorkloadJoin   extra arguments go to `go test`
#
# Steps: wine toolchain (scripts/wine-env.sh), a private copy of its WINEPREFIX (cached in
# $ISOGUARD_CACHE/wine/prefix-wintest, so that `wineserver -k` at the end ends only this
# script's processes, never those of other users of the shared prefix), the wrapper
# cross-compiled into a temp dir, the real runhcs copied BESIDE a placeholder containerd.exe
# there (the path given as -publish-binary: the wrapper finds its delegate in that folder),
# then `GOOS=windows go test -exec wine64`.
#
#   ISOGUARD_KEEP_TMP=1   keep the temp dir (bundles with panic.log, isoguard-shim.log) even
#                         when the tests pass; it is always kept when they fail.
# Progress and step timings go to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CACHE=${ISOGUARD_CACHE:-$HOME/.cache/isoguard}

log() { printf 'test-windows: %s\n' "$*" >&2; }
now() { date +%s%N; }
T0=$(now)
lap() { log "$(printf 'step %-8s %6d ms' "$1" $((($(now) - $2) / 1000000)))"; }

t=$(now)
eval "$(bash "$ROOT/scripts/wine-env.sh")"
lap wine-env "$t"

# --- private prefix -----------------------------------------------------------------------
SHARED_PREFIX=$WINEPREFIX
TEST_PREFIX="$CACHE/wine/prefix-wintest"
exec 8>"$CACHE/wine/.wintest.lock"
flock 8 # one run at a time per cache: the prefix and its wineserver are this run's

t=$(now)
export WINEPREFIX="$TEST_PREFIX"
wineserver -k 2>/dev/null || true # a wineserver left by an interrupted run
if [ ! -f "$TEST_PREFIX/.isoguard-ready" ] || [ "$SHARED_PREFIX/.isoguard-ready" -nt "$TEST_PREFIX/.isoguard-ready" ]; then
	log "copying $SHARED_PREFIX to $TEST_PREFIX"
	rm -rf "$TEST_PREFIX" "$TEST_PREFIX.tmp"
	cp -a "$SHARED_PREFIX" "$TEST_PREFIX.tmp"
	mv "$TEST_PREFIX.tmp" "$TEST_PREFIX"
	touch "$TEST_PREFIX/.isoguard-ready"
fi
dll=drive_c/windows/system32/bcryptprimitives.dll
cmp -s "$SHARED_PREFIX/$dll" "$TEST_PREFIX/$dll" || cp "$SHARED_PREFIX/$dll" "$TEST_PREFIX/$dll"
lap prefix "$t"

# --- binaries -----------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/isoguard-wintest.XXXXXX")
WIN_WORK="Z:${WORK//\//\\}"
rc=1
finish() {
	local t
	t=$(now)
	# Backstop: the tests end what they start and fail on leaks; anything of this run's
	# binaries still alive here is reported, then wineserver -k ends every process of the
	# private prefix.
	local left
	left=$(ps -eo pid=,args= | grep -F "$WIN_WORK" | grep -v grep || true)
	if [ -n "$left" ]; then
		log "processes of this run still alive after the tests:"
		printf '%s\n' "$left" >&2
		rc=1
	fi
	wineserver -k 2>/dev/null || true
	wineserver -w 2>/dev/null || true
	if [ "$rc" = 0 ] && [ -z "${ISOGUARD_KEEP_TMP:-}" ]; then
		rm -rf "$WORK"
	else
		log "kept $WORK"
	fi
	lap cleanup "$t"
	log "$(printf 'total %d ms, exit %d' $((($(now) - T0) / 1000000)) "$rc")"
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

t=$(now)
mkdir -p "$WORK/bin" "$WORK/tmp"
CGO_ENABLED=0 GOOS=windows GOARCH=amd64 go build -trimpath -o "$WORK/bin/containerd-shim-isoguard-v1.exe" ./cmd/containerd-shim-isoguard-v1
cp "$RUNHCS" "$WORK/bin/containerd-shim-runhcs-v1.exe"
: >"$WORK/bin/containerd.exe" # -publish-binary: only its folder matters (no event is published under wine)
lap build "$t"

# --- tests --------------------------------------------------------------------------------
t=$(now)
set +e
ISOGUARD_WINTEST_BIN="$WORK/bin" ISOGUARD_WINTEST_TMP="$WORK/tmp" \
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 \
	go test -exec wine64 -count=1 -v -timeout 10m ./integration/windows/... "$@"
rc=$?
set -e
lap test "$t"
