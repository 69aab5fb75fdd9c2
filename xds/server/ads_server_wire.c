/* A state-of-the-world request read from the wire without decoding it: the hash of its
 * resource_names as they came, so that an ACK repeating a subscription of a thousand names is
 * recognised before a thousand strings are decoded, sorted and looked up; and the request
 * without those names, to decode the rest. */
#include <errno.h>
#include <string.h>

#include "base/pbwire.h"
#include "xds/server/ads_server_internal.h"

enum { FIELD_RESOURCE_NAMES = 3, FIELD_TYPE_URL = 4 };

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

/* One top-level field: its number, and where its payload starts and ends (after the tag;
 * after the length too for a length-delimited one). Returns its wire type when it is 2, 0 for the
 * others, -EBADMSG when it does not parse (groups included). */
static int next_field(const uint8_t **p, const uint8_t *end, unsigned *field, const uint8_t **val,
                      size_t *vlen)
{
    const uint8_t *buf = *p;
    size_t len = (size_t)(end - buf), pos = 0;
    uint64_t tag;
    if (!pbwire_varint(buf, len, &pos, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return -EBADMSG;
    *field = (unsigned)(tag >> 3);
    size_t payload = pos;
    const uint8_t *data = NULL;
    size_t dlen = 0;
    if (!pbwire_skip(buf, len, &pos, (unsigned)(tag & 7), &data, &dlen))
        return -EBADMSG;
    *p = buf + pos;
    if ((tag & 7) == 2) {
        *val = data;
        *vlen = dlen;
        return 2;
    }
    *val = buf + payload;
    *vlen = pos - payload;
    return 0;
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
