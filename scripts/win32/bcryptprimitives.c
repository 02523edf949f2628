/* bcryptprimitives.dll for wine 8.0, which lacks it: the one function Rust's standard
 * library (1.78 and later) imports from it, ProcessPrng, filled from RtlGenRandom
 * (advapi32!SystemFunction036). Used only to run winlayer's Windows tests under wine. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
