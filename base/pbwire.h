/* Reading protobuf's wire format without decoding: varints and the extent of one field, for the
 * code that looks into encoded messages before (or instead of) protobuf-c (the xDS client's
 * split of a response, the ADS server's scan of a request). No allocation; every pointer
 * handed out points into the caller's buffer. */
#ifndef REMORA_BASE_PBWIRE_H
#define REMORA_BASE_PBWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads a varint at *pos of buf (len bytes, borrowed) into *v and moves *pos past it; false when
 * it runs past the end or over 10 bytes. */
bool pbwire_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *v);

/* Skips the payload of a field of wire type wt at *pos; false when it runs past the end or the
 * wire type is none of varint (0), 64-bit (1), length-delimited (2), 32-bit (5): groups are not
 * read. A length-delimited payload is given in *data and *dlen (borrowed from buf). */
bool pbwire_skip(const uint8_t *buf, size_t len, size_t *pos, unsigned wt, const uint8_t **data,
                 size_t *dlen);

#endif
