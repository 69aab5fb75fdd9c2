/* The messages one end of a gRPC call has sent and HTTP/2 has not yet taken: each with its
 * 5-byte prefix, pulled as a byte stream by the stream's data provider (grpc_call.c's request
 * body, grpc_scall.c's response body). A message is our copy, or the caller's bytes kept until
 * they are out (one encoded response queued on many streams without a copy each). Plain bytes:
 * no libuv, no nghttp2. The queue has no limit of its own: its owner reads grpc_sendq_bytes and
 * decides (the server's send_low_water). */
#ifndef REMORA_GRPC_SENDQ_H
#define REMORA_GRPC_SENDQ_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/grpc/grpc_frame.h"

/* One queued message: its prefix, then its bytes (our copy in data[], or the caller's). */
typedef struct grpc_sendq_msg {
    struct grpc_sendq_msg *next;
    uint8_t prefix[GRPC_FRAME_PREFIX];
    size_t len; /* prefix + message */
    size_t off; /* bytes already pulled */
    const uint8_t *msg;
    void (*release)(void *arg); /* the caller's bytes: called once they are no longer needed */
    void *arg;
    uint8_t data[];
} grpc_sendq_msg_t;

/* A zeroed struct is an empty queue. */
typedef struct grpc_sendq {
    grpc_sendq_msg_t *head, *tail;
    size_t bytes; /* prefixes and messages not yet pulled */
} grpc_sendq_t;

/* A new message holding a copy of msg[0..len) (borrowed; len <= UINT32_MAX), for
 * grpc_sendq_push; NULL when out of memory. */
grpc_sendq_msg_t *grpc_sendq_msg_copy(const void *msg, size_t len);

/* A new message over msg[0..len) (borrowed until release(arg) runs; len <= UINT32_MAX), for
 * grpc_sendq_push. release (may be NULL) runs once when the message is freed: pulled whole,
 * dropped, or given to grpc_sendq_msg_free. NULL when out of memory (release has not run). */
grpc_sendq_msg_t *grpc_sendq_msg_shared(const void *msg, size_t len, void (*release)(void *arg),
                                        void *arg);

/* Takes m (not queued) and frees it, releasing the caller's bytes. NULL is a no-op. */
void grpc_sendq_msg_free(grpc_sendq_msg_t *m);

/* Appends m (taken) to q (borrowed). */
void grpc_sendq_push(grpc_sendq_t *q, grpc_sendq_msg_t *m);

/* Copies up to cap bytes of q's (borrowed) messages, prefixes included, into buf (the caller's)
 * and frees the messages that are out whole. Returns the bytes copied (0 when q is empty). */
size_t grpc_sendq_pull(grpc_sendq_t *q, uint8_t *buf, size_t cap);

/* Frees every message of q (borrowed; it stays usable, empty). */
void grpc_sendq_clear(grpc_sendq_t *q);

#endif
