/* Prints the arguments the C runtime (msvcrt's startup code) split this process's command
 * line into: one line per argument, each the hex of its UTF-16 units, so no console code
 * page or control character can blur them. winlayer's tests start it with command lines
 * composed by wincmdline and compare. */
#include <stdio.h>
#include <wchar.h>

int wmain(int argc, wchar_t **argv)
{
    for (int i = 0; i < argc; i++) {
        for (const wchar_t *p = argv[i]; *p; p++)
            printf("%04x", (unsigned)*p);
        printf("\n");
    }
    return 0;
}
