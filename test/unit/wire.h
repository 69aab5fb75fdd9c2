/* Test helper for messages built in C: the message as the receiver of its bytes gets it, the
 * way a binary config source (an xDS server) hands it over. Include after <cmocka.h>. */
#ifndef REMORA_TEST_WIRE_H
#define REMORA_TEST_WIRE_H

#include <stdint.h>
#include <stdlib.h>

#include <protobuf-c/protobuf-c.h>

/* Packs m (borrowed) and unpacks the bytes into a new message, owned by the caller. */
static inline ProtobufCMessage *over_the_wire(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    free(buf);
    assert_non_null(copy);
    return copy;
}

#endif
