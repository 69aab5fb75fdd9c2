/* Reading protobuf's wire format without decoding (pbwire.h). */
#include "base/pbwire.h"

bool pbwire_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *v)
{
    if (*pos < len && buf[*pos] < 0x80) { /* tags and short lengths: one byte */
        *v = buf[(*pos)++];
        return true;
    }
    *v = 0;
    for (unsigned shift = 0; shift < 70 && *pos < len; shift += 7) {
        uint8_t b = buf[(*pos)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0)
            return true;
    }
    return false;
}

bool pbwire_skip(const uint8_t *buf, size_t len, size_t *pos, unsigned wt, const uint8_t **data,
                 size_t *dlen)
{
    uint64_t v;
    switch (wt) {
    case 0:
        return pbwire_varint(buf, len, pos, &v);
    case 1:
        if (len - *pos < 8)
            return false;
        *pos += 8;
        return true;
    case 2:
        if (!pbwire_varint(buf, len, pos, &v) || v > len - *pos)
            return false;
        *data = buf + *pos;
        *dlen = (size_t)v;
        *pos += (size_t)v;
        return true;
    case 5:
        if (len - *pos < 4)
            return false;
        *pos += 4;
        return true;
    default:
        return false;
    }
}
