/* TLS on one libuv TCP stream, for the owners of connections (the HTTP connection manager, the
 * tcp_proxy relay and the upstream pool): received ciphertext lands in a pool slab and is fed to
 * the session, plaintext is decrypted straight into the owner's buffer, and writes are encrypted
 * into the session's output queue and leave by writev, one write in flight at a time. */
#ifndef REMORA_TLS_IO_H
#define REMORA_TLS_IO_H

#include <stdbool.h>
#include <uv.h>

#include "certs/tls.h"
#include "proxy/core/bufpool.h"

typedef struct tls_io tls_io_t;

/* A queued write finished (status 0) or failed (negative libuv error); the owner checks
 * tls_io_queue_size to resume a paused peer. */
typedef void (*tls_io_write_cb)(void *owner, int status);

struct tls_io {
    tls_session_t *sess; /* owned */
    uv_stream_t *stream; /* borrowed: the owner's socket */
    bufpool_t *pool;     /* borrowed: the worker's slabs */
    conn_buf_t cin;      /* ciphertext read and not yet taken by the session */
    uv_write_t wreq;
    size_t inflight; /* pending output bytes the write in flight covers */
    bool writing;
    bool failed;
    uv_shutdown_t *shutdown_req; /* the owner's, issued once the output is out */
    uv_shutdown_cb shutdown_cb;
    void *owner;
    tls_io_write_cb on_write;
};

/* A TLS endpoint over stream (borrowed; it must outlive the tls_io) with a new session of cfg
 * (borrowed; the session takes its own reference). resume (client, may be NULL) is borrowed.
 * sni (client, may be NULL) and the identities the peer must match (peer[0..n_peer), n_peer 0:
 * any the trust bundle vouches for) are copied into the session.
 * The caller owns *out and frees it with tls_io_free once the stream's handle is closed (write
 * callbacks, which use the tls_io, all run before the close callback). Returns 0, -ENOMEM or a
 * negative libuv error. */
int tls_io_new(tls_config_t *cfg, const tls_saved_session_t *resume, const char *sni,
               const identity_matcher_t *peer, size_t n_peer, uv_stream_t *stream, bufpool_t *pool,
               tls_io_t **out);
/* Takes t and frees it with its session (not the stream or pool it borrows). NULL is a no-op. */
void tls_io_free(tls_io_t *t);

/* Hands the endpoint t (borrowed) to its (new) owner (borrowed; must outlive its use): on_write is
 * called after each completed queued write. */
void tls_io_attach(tls_io_t *t, void *owner, tls_io_write_cb on_write);

/* For the stream's alloc callback: room for ciphertext in t's own buffer (t borrowed; buf the
 * caller's, pointing into t's buffer). */
void tls_io_alloc(tls_io_t *t, uv_buf_t *buf);
/* For the read callback: n ciphertext bytes arrived in the room tls_io_alloc gave. t borrowed. */
void tls_io_received(tls_io_t *t, size_t n);
/* Copies into t (borrowed) ciphertext the owner read before the session existed (a peeked
 * ClientHello); data is borrowed. Returns 0 or -ENOMEM. */
int tls_io_received_copy(tls_io_t *t, const char *data, size_t len);

/* Advances t's (borrowed) handshake and sends what it produced. Returns 0 once complete,
 * TLS_ERR_WANT_READ while it needs more bytes, or TLS_ERR_FAILED (see the session). */
int tls_io_handshake(tls_io_t *t);

/* Decrypts into dst[0..cap) (the caller's); t borrowed. Returns the bytes written (> 0), 0 when no
 * complete record is waiting, UV_EOF once the peer's close_notify arrived, or TLS_ERR_FAILED. */
ssize_t tls_io_decrypt(tls_io_t *t, char *dst, size_t cap);

/* Encrypts bufs (borrowed; not needed after the call) into t (borrowed) and starts sending. Returns
 * 0 or a negative error (the connection is broken then). */
int tls_io_write(tls_io_t *t, const uv_buf_t *bufs, unsigned n);

/* Ciphertext bytes not yet handed to the kernel: the owner's write queue size. t borrowed. */
size_t tls_io_queue_size(const tls_io_t *t);

/* Queues our close_notify and, once every byte before it is out, calls uv_shutdown(req,
 * stream, cb) (req is the owner's, borrowed: it must outlive the shutdown; its data is left as the
 * owner set it). t borrowed. Returns 0 or a
 * negative libuv error. */
int tls_io_shutdown(tls_io_t *t, uv_shutdown_t *req, uv_shutdown_cb cb);

/* t's session, borrowed from t (valid until tls_io_free). */
tls_session_t *tls_io_session(const tls_io_t *t);

/* A TLS_ERR_* code as the libuv error owners report it with. */
int tls_io_uv_error(int rc);

#endif
