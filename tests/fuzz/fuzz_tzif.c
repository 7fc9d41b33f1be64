/* libFuzzer driver: bytes as a TZif file; when they parse, look up times
 * before, between and after the transitions, so the footer's rule runs too.
 * The same bytes go through the POSIX TZ string parser. */
#include <stddef.h>
#include <stdint.h>

#include "policy/tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t times[] = {INT64_MIN,      -2147483648LL, -1,           0,
                                    1711846800,     1729990800,    2147483647LL, 4102444800LL,
                                    253402300799LL, INT64_MAX};
    struct dagi_tz *tz = NULL;
    if (dagi_tzif_parse(data, size, &tz, NULL) == 0) {
        for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
            dagi_tz_lookup(tz, times[i]);
        dagi_tz_free(tz);
    }
    if (size < 256 && dagi_tz_posix_parse((const char *)data, size, &tz, NULL) == 0) {
        for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
            dagi_tz_lookup(tz, times[i]);
        dagi_tz_free(tz);
    }
    return 0;
}
