/* The output path of one gRPC connection, client's or server's: nghttp2's frames gathered from
 * nghttp2_session_mem_send into one buffer and written to the socket one write at a time, or
 * handed to TLS a piece at a time while its ciphertext queue is short. What a peer that does not
 * read can make a connection hold is bounded here: the gathered buffer and the TLS queue below
 * (the calls' own queues are the calls'). */
#ifndef REMORA_GRPC_H2OUT_H
#define REMORA_GRPC_H2OUT_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proxy/net/tls_io.h"

/* Frames are gathered until the buffer holds this much, then written before more are taken from
 * the session (one frame may take it past the mark: the buffer grows to hold it). */
#define GRPC_H2OUT_GATHER_HIGH (64 * 1024)
#define GRPC_H2OUT_TLS_PIECE   (16 * 1024) /* plaintext handed to TLS at once */
#define GRPC_H2OUT_TLS_QUEUE   (32 * 1024) /* ciphertext queued before we wait for the kernel */
#define GRPC_H2OUT_FIRST_CAP   (16 * 1024) /* the buffer's first size; it doubles as it must */
#define GRPC_H2OUT_KEEP        (16 * 1024) /* a larger buffer is freed once all of it is out */

/* What the output needs of the connection that owns it (owner: the pointer given at init). */
typedef struct grpc_h2out_ops {
    /* Whether the connection has closed (asked after each call into the session, whose
     * callbacks may close it): gathering stops at once. */
    bool (*closed)(void *owner);
    /* Writing or gathering failed: error is a libuv code (UV_EPROTO for the session, UV_ENOMEM),
     * why (static, or libuv's and nghttp2's text) says what. The owner closes the connection. */
    void (*fail)(void *owner, int error, const char *why);
    /* A write finished: the owner flushes again (grpc_h2out_flush, after its own checks). */
    void (*flush)(void *owner);
} grpc_h2out_ops_t;

typedef struct grpc_h2out {
    const grpc_h2out_ops_t *ops; /* borrowed (static) */
    void *owner;                 /* borrowed */
    uv_stream_t *stream;         /* borrowed: the owner's socket */
    tls_io_t *tls;               /* borrowed; NULL: plaintext */
    uv_write_t write_req;
    bool writing;  /* a uv_write in flight */
    bool flushing; /* inside grpc_h2out_flush */
    uint8_t *buf;  /* owned: output not yet taken by the socket or TLS */
    size_t len, off, cap;
} grpc_h2out_t;

/* Initialises o (the caller's memory) to write to stream (borrowed; must outlive o's writes:
 * they finish before the stream's close callback) for owner (borrowed) through ops (borrowed,
 * static). Allocates nothing. */
void grpc_h2out_init(grpc_h2out_t *o, uv_stream_t *stream, const grpc_h2out_ops_t *ops,
                     void *owner);

/* Sends o's output through tls (borrowed; must outlive o) instead of the socket, and attaches o
 * to it as the owner of its write callbacks. */
void grpc_h2out_use_tls(grpc_h2out_t *o, tls_io_t *tls);

/* Frees what o holds (o's memory stays the caller's). Once the stream's handle is closed. */
void grpc_h2out_free(grpc_h2out_t *o);

/* Moves output to the transport as far as it takes it: writes what is gathered, then gathers
 * more from h2 (borrowed), until the session has nothing more or the transport is full (a write
 * in flight, or the TLS queue at GRPC_H2OUT_TLS_QUEUE); the write's callback goes on through
 * ops->flush. A failure is reported through ops->fail. Returns false, doing nothing, when called
 * from within itself (from a callback of the session's), true otherwise. */
bool grpc_h2out_flush(grpc_h2out_t *o, nghttp2_session *h2);

/* Whether o (borrowed) holds output the socket has not taken: gathered bytes, or a write in
 * flight. TLS's own queue is not counted (tls_io_queue_size). */
bool grpc_h2out_busy(const grpc_h2out_t *o);

#endif
