/* Reading protobuf's wire format without decoding: a resource's name from its bytes, and a SotW
 * DiscoveryResponse split into its resources (slices of the response, not copies) and the rest,
 * so a resource resent as it was is seen without protobuf-c copying its Any (three allocations
 * each, 1,000 per push at 1,000 endpoint assignments). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/pbwire.h"
#include "xds/ads/ads_internal.h"

bool ads_wire_name(const uint8_t *buf, size_t len, uint32_t id, const char **name, size_t *nlen)
{
    bool found = false;
    for (size_t pos = 0; pos < len;) {
        uint64_t tag;
        const uint8_t *data = NULL;
        size_t dlen = 0;
        if (!pbwire_varint(buf, len, &pos, &tag) ||
            !pbwire_skip(buf, len, &pos, (unsigned)(tag & 7), &data, &dlen))
            return false;
        if ((tag & 7) == 2 && tag >> 3 == id) {
            *name = (const char *)data;
            *nlen = dlen;
            found = true;
        }
    }
    return found;
}

/* Where a split takes a field as protobuf-c would, it reads the field's tag and length as
 * protobuf-c does: each at most 5 bytes, a length at most INT_MAX. Looser framing is left to
 * protobuf-c, which refuses it. */
static bool strict_tag(const uint8_t *buf, size_t len, size_t *pos, uint64_t *tag)
{
    size_t start = *pos;
    return pbwire_varint(buf, len, pos, tag) && *pos - start <= 5 && *tag >> 3 != 0;
}

static bool strict_bytes(const uint8_t *buf, size_t len, size_t *pos, const uint8_t **data,
                         size_t *dlen)
{
    size_t start = *pos;
    uint64_t v;
    if (!pbwire_varint(buf, len, pos, &v) || *pos - start > 5 || v > INT_MAX || v > len - *pos)
        return false;
    *data = buf + *pos;
    *dlen = (size_t)v;
    *pos += (size_t)v;
    return true;
}

/* An Any's bytes (borrowed) as slices: type_url (field 1) and value (field 2), the last of each
 * as decoding takes it. False for anything else in it (another field, another wire type, bytes
 * that do not parse): the response is then decoded whole. */
static bool split_any(const uint8_t *buf, size_t len, ads_wire_any_t *out)
{
    *out = (ads_wire_any_t){0};
    for (size_t pos = 0; pos < len;) {
        uint64_t tag;
        const uint8_t *data = NULL;
        size_t dlen = 0;
        if (!strict_tag(buf, len, &pos, &tag) || (tag & 7) != 2 ||
            !strict_bytes(buf, len, &pos, &data, &dlen))
            return false;
        if (tag >> 3 == 1) {
            out->type_url = data;
            out->type_len = dlen;
        } else if (tag >> 3 == 2) {
            out->value = data;
            out->value_len = dlen;
        } else {
            return false;
        }
    }
    return true;
}

#define SOTW_RESOURCES 2 /* DiscoveryResponse.resources */

int ads_wire_split_sotw(const uint8_t *buf, size_t len, ads_wire_any_t **anys, size_t *n,
                        uint8_t **rest, size_t *rest_len)
{
    *anys = NULL;
    *n = 0;
    *rest = NULL;
    *rest_len = 0;
    size_t cap = 0;
    ads_wire_any_t *v = NULL;
    uint8_t *r = malloc(len ? len : 1);
    if (r == NULL)
        return -ENOMEM;
    size_t rlen = 0;
    int rc = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        size_t start = pos;
        uint64_t tag;
        const uint8_t *data = NULL;
        size_t dlen = 0;
        if (!strict_tag(buf, len, &pos, &tag)) {
            rc = -EAGAIN;
            break;
        }
        if (tag >> 3 != SOTW_RESOURCES) {
            /* version_info, type_url, nonce, ...: copied as they are, for protobuf-c to
             * decode (or refuse). */
            if (!pbwire_skip(buf, len, &pos, (unsigned)(tag & 7), &data, &dlen)) {
                rc = -EAGAIN;
                break;
            }
            memcpy(r + rlen, buf + start, pos - start);
            rlen += pos - start;
            continue;
        }
        if ((tag & 7) != 2 || !strict_bytes(buf, len, &pos, &data, &dlen)) {
            rc = -EAGAIN;
            break;
        }
        if (*n == cap) {
            size_t c = cap ? cap * 2 : 64;
            ads_wire_any_t *nv = realloc(v, c * sizeof(*nv));
            if (nv == NULL) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
            cap = c;
        }
        if (!split_any(data, dlen, &v[*n])) {
            rc = -EAGAIN;
            break;
        }
        (*n)++;
    }
    if (rc < 0) {
        free(v);
        free(r);
        *n = 0;
        return rc;
    }
    *anys = v;
    *rest = r;
    *rest_len = rlen;
    return 0;
}
