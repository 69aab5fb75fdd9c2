/* "ms" is tried before "m", so "500ms" is half a second and "5m" five minutes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/duration.h"

int duration_parse_ms(const char *text, uint64_t *out_ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    const uint64_t max = 100ull * 365 * 86400000; /* a century */
    uint64_t total = 0;
    const char *p = text;
    if (strcmp(text, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    while (*p) {
        char *end;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        unsigned long long v = strtoull(p, &end, 10);
        size_t i = 0, n = sizeof(units) / sizeof(units[0]);
        while (i < n && strncmp(end, units[i].unit, strlen(units[i].unit)) != 0)
            i++;
        if (i == n || v > max / units[i].ms || total > max - v * units[i].ms)
            return -EINVAL;
        total += v * units[i].ms;
        p = end + strlen(units[i].unit);
    }
    if (p == text)
        return -EINVAL;
    *out_ms = total;
    return 0;
}
