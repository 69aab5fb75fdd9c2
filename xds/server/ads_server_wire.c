/* A state-of-the-world request read from the wire without decoding it: the hash of its
 * resource_names as they came, so that an ACK repeating a subscription of a thousand names is
 * recognised before a thousand strings are decoded, sorted and looked up; and the request
 * without those names, to decode the rest. */
#include <errno.h>
#include <string.h>

#include "xds/server/ads_server_internal.h"

enum { FIELD_RESOURCE_NAMES = 3, FIELD_TYPE_URL = 4 };

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    if (*p < end && **p < 0x80) { /* tags and name lengths: one byte */
        *v = *(*p)++;
        return 0;
    }
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p == end)
            return -EBADMSG;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -EBADMSG;
}

static uint64_t lane(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

static uint64_t rotl(uint64_t x, unsigned r)
{
    return x << r | x >> (64 - r);
}

/* A hash of p[0..n) chained on h: four lanes of 8 bytes, so that the names of one subscription
 * (tens of kilobytes, on every ACK) take a few microseconds. Not for adversaries: a collision
 * only makes a client's own changed subscription look unchanged. */
static uint64_t run_hash(uint64_t h, const uint8_t *p, size_t n)
{
    uint64_t a = h ^ n, b = h + 0x632be59bd9b4e019ULL, c = rotl(h, 21), d = ~h;
    while (n >= 32) {
        uint64_t w[4];
        memcpy(w, p, 32);
        a = lane(a, w[0]);
        b = lane(b, w[1]);
        c = lane(c, w[2]);
        d = lane(d, w[3]);
        p += 32;
        n -= 32;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        a = lane(a, w);
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    a = lane(a, w ^ (uint64_t)n << 56);
    uint64_t x = a ^ rotl(b, 17) ^ rotl(c, 31) ^ rotl(d, 47);
    x *= 0xbf58476d1ce4e5b9ULL;
    return x ^ (x >> 32);
}

/* One top-level field: its number, wire type, and where it starts and ends (tag included). */
static int next_field(const uint8_t **p, const uint8_t *end, unsigned *field, const uint8_t **val,
                      size_t *vlen)
{
    uint64_t tag, n;
    if (read_varint(p, end, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return -EBADMSG;
    *field = (unsigned)(tag >> 3);
    *val = *p;
    switch (tag & 7) {
    case 0:
        if (read_varint(p, end, &n) < 0)
            return -EBADMSG;
        break;
    case 1:
    case 5:
        n = (tag & 7) == 1 ? 8 : 4;
        if ((size_t)(end - *p) < n)
            return -EBADMSG;
        *p += n;
        break;
    case 2:
        if (read_varint(p, end, &n) < 0 || n > (size_t)(end - *p))
            return -EBADMSG;
        *val = *p;
        *p += n;
        break;
    default: /* groups: left to the decoder */
        return -EBADMSG;
    }
    *vlen = (size_t)(*p - *val);
    return (tag & 7) == 2 ? 2 : 0;
}

int ads_srv_wire_scan(const uint8_t *buf, size_t len, ads_srv_wire_scan_t *out)
{
    const uint8_t *p = buf, *end = buf + len;
    /* The names fields are hashed as runs of adjacent fields, tags and lengths included (they
     * mark where each name ends): usually one run, as encoders write a repeated field together. */
    const uint8_t *run = NULL, *run_end = NULL;
    memset(out, 0, sizeof(*out));
    out->names_hash = ADS_SRV_FNV_INIT;
    while (p < end) {
        const uint8_t *start = p, *val;
        size_t vlen;
        unsigned field;
        int wt = next_field(&p, end, &field, &val, &vlen);
        if (wt < 0)
            return wt;
        if (field == FIELD_RESOURCE_NAMES && wt == 2) {
            if (run_end != start) {
                if (run)
                    out->names_hash = run_hash(out->names_hash, run, (size_t)(run_end - run));
                run = start;
            }
            run_end = p;
            out->names++;
            out->names_bytes += (size_t)(p - start);
        } else if (field == FIELD_TYPE_URL && wt == 2) {
            out->type_url = (const char *)val; /* the last one counts, as when decoding */
            out->type_url_len = vlen;
        } else if (field == FIELD_RESOURCE_NAMES || field == FIELD_TYPE_URL) {
            return -EBADMSG;
        }
    }
    if (run)
        out->names_hash = run_hash(out->names_hash, run, (size_t)(run_end - run));
    return 0;
}

size_t ads_srv_wire_strip_names(const uint8_t *buf, size_t len, uint8_t *out)
{
    const uint8_t *p = buf, *end = buf + len;
    size_t n = 0;
    while (p < end) {
        const uint8_t *start = p, *val;
        size_t vlen;
        unsigned field;
        if (next_field(&p, end, &field, &val, &vlen) < 0)
            break; /* not after a scan that succeeded */
        if (field == FIELD_RESOURCE_NAMES)
            continue;
        memcpy(out + n, start, (size_t)(p - start));
        n += (size_t)(p - start);
    }
    return n;
}
