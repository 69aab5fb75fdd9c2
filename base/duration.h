/* Durations on command lines: numbers each with a unit, ms, s, m, h or d ("200ms", "10s",
 * "1h30m", "7d"), or "0". */
#ifndef REMORA_DURATION_H
#define REMORA_DURATION_H

#include <stdint.h>

/* Parses text (borrowed) into *out_ms. Returns 0, or -EINVAL when text is no such duration or
 * is over a century. */
int duration_parse_ms(const char *text, uint64_t *out_ms);

#endif
