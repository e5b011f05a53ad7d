/*
 * bcryptprimitives.dll for wine -- TEST INFRASTRUCTURE ONLY, never shipped.
 *
 * Go 1.26 Windows binaries take their randomness from ProcessPrng in
 * bcryptprimitives.dll and abort at start when it is missing. wine 8.0
 * (Debian 12) has no such DLL; wine adds ProcessPrng only in 8.13. This DLL
 * supplies that one export, backed by RtlGenRandom (advapi32
 * SystemFunction036), so that Go test binaries and the real
 * containerd-shim-runhcs-v1.exe run under wine64.
 *
 * Built and installed into a private WINEPREFIX by scripts/wine-env.sh.
 */
#include <windows.h>

/* advapi32!SystemFunction036, better known as RtlGenRandom. */
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);

BOOL WINAPI ProcessPrng(PBYTE buf, SIZE_T len)
{
	/* RtlGenRandom takes a ULONG length: feed it in chunks. */
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(buf, n))
			return FALSE;
		buf += n;
		len -= n;
	}
	/* Real ProcessPrng always returns TRUE; Go treats anything else as fatal. */
	return TRUE;
}
