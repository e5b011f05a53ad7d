// Package windows holds the Windows end-to-end tests of containerd-shim-isoguard-v1: the
// tests play containerd (start, ttrpc task API v2, delete) against the wrapper, which runs
// the REAL hcsshim containerd-shim-runhcs-v1.exe as its delegate. They are built for
// GOOS=windows only and run under wine64 on Linux (or on Windows):
//
//	bash scripts/test-windows.sh [go test flags, e.g. -run TestJoin]
//
// The script builds the wrapper, puts the real runhcs beside a placeholder containerd.exe
// and passes ISOGUARD_WINTEST_BIN / ISOGUARD_WINTEST_TMP; without them the tests skip.
// What is asserted and what wine cannot show: docs/windows-wine.md, "Windows harness".
package windows
