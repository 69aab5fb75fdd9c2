/* A bump allocator for protobuf-c: a message decoded through it lives in a few blocks (most
 * often one) instead of one malloc per submessage, string and repeated array, and is freed by
 * freeing the blocks. For messages that are decoded once and then only read until they go as a
 * whole: the resources the xDS client keeps (docs/xds.md, "How the client holds resources"). */
#ifndef REMORA_XDS_PB_ARENA_H
#define REMORA_XDS_PB_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

typedef struct pb_arena pb_arena_t;

/* Decodes len bytes of data (borrowed) as a desc (borrowed) into a new arena sized from len.
 * Returns the message (new, owned by *arena: freed only by pb_arena_free(*arena), never by
 * protobuf_c_message_free_unpacked) with *arena set, or NULL with *arena NULL when the bytes
 * do not decode or memory runs out. Nothing may later set a field of the message to memory of
 * its own or free one of its fields: the message is read-only. */
ProtobufCMessage *pb_arena_unpack(const ProtobufCMessageDescriptor *desc, size_t len,
                                  const uint8_t *data, pb_arena_t **arena);

/* Frees a (taken; NULL: nothing) and with it everything allocated in it. Touches nothing but
 * a's blocks: any thread. */
void pb_arena_free(pb_arena_t *a);

/* What a (borrowed) holds: its blocks (*blocks) and the bytes they give (*bytes, without their
 * headers). For tests and measurements. */
void pb_arena_stats(const pb_arena_t *a, size_t *blocks, size_t *bytes);

#endif
