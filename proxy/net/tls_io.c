/* TLS on one libuv stream: the glue between a socket owner's read/write paths and a TLS engine
 * session (certs/tls.h). The only copies are the ones TLS needs: ciphertext into mbedTLS's
 * record buffer, plaintext out of it into the owner's buffer, and plaintext into records. */
#include "proxy/net/tls_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TLS_IO_MAX_IOV 16
#define TLS_IO_CIN_MAX (2 * BUFPOOL_SLAB_SIZE) /* room for a whole record and the next header */

static void flush(tls_io_t *t);

int tls_io_new(tls_config_t *cfg, const tls_saved_session_t *resume, const char *sni,
               const identity_matcher_t *peer, size_t n_peer, uv_stream_t *stream, bufpool_t *pool,
               tls_io_t **out)
{
    tls_io_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    int rc = tls_session_new(cfg, resume, &t->sess);
    if (rc == 0)
        rc = tls_session_expect_peer(t->sess, sni, peer, n_peer);
    if (rc < 0) {
        tls_session_free(t->sess);
        free(t);
        return rc == -ENOMEM ? -ENOMEM : UV_EPROTO;
    }
    t->stream = stream;
    t->pool = pool;
    t->wreq.data = t;
    *out = t;
    return 0;
}

void tls_io_free(tls_io_t *t)
{
    if (t == NULL)
        return;
    tls_session_free(t->sess);
    conn_buf_drop(t->pool, &t->cin);
    free(t);
}

void tls_io_attach(tls_io_t *t, void *owner, tls_io_write_cb on_write)
{
    t->owner = owner;
    t->on_write = on_write;
}

tls_session_t *tls_io_session(const tls_io_t *t)
{
    return t->sess;
}

int tls_io_uv_error(int rc)
{
    if (rc == -ENOMEM)
        return UV_ENOMEM;
    if (rc <= TLS_ERR_WANT_READ && rc >= TLS_ERR_CONFIG)
        return UV_EPROTO;
    return rc;
}

/* ---- reading ----------------------------------------------------------------------------- */

void tls_io_alloc(tls_io_t *t, uv_buf_t *buf)
{
    size_t room = conn_buf_reserve(t->pool, &t->cin, TLS_IO_CIN_MAX);
    *buf = uv_buf_init(t->cin.data ? t->cin.data + t->cin.len : NULL, (unsigned)room);
}

void tls_io_received(tls_io_t *t, size_t n)
{
    t->cin.len += n;
    tls_feed(t->sess, t->cin.data, t->cin.len);
}

int tls_io_received_copy(tls_io_t *t, const char *data, size_t len)
{
    while (len) {
        uv_buf_t room;
        tls_io_alloc(t, &room);
        if (room.len == 0)
            return -ENOMEM;
        size_t n = len < room.len ? len : room.len;
        memcpy(room.base, data, n);
        tls_io_received(t, n);
        data += n;
        len -= n;
    }
    return 0;
}

/* Moves the bytes the session has not taken to the front of the slab (it keeps reading from the
 * same window after a re-feed), and gives the slab back when none are left. */
static void compact(tls_io_t *t)
{
    size_t left = tls_feed_left(t->sess);
    size_t used = t->cin.len - left;
    if (used == 0)
        return;
    if (left)
        memmove(t->cin.data, t->cin.data + used, left);
    t->cin.len = left;
    tls_feed(t->sess, t->cin.data, left);
    conn_buf_trim(t->pool, &t->cin);
}

int tls_io_handshake(tls_io_t *t)
{
    int rc = tls_handshake_step(t->sess);
    compact(t);
    flush(t); /* our next flight, or an alert */
    if (rc == TLS_ERR_FAILED)
        t->failed = true;
    return rc;
}

ssize_t tls_io_decrypt(tls_io_t *t, char *dst, size_t cap)
{
    size_t got = 0;
    int rc = 0;
    while (got < cap) {
        rc = tls_read(t->sess, dst + got, cap - got);
        if (rc <= 0)
            break;
        got += (size_t)rc;
    }
    compact(t);
    flush(t); /* alerts, tickets, a close_notify answer */
    if (got)
        return (ssize_t)got;
    if (rc == 0 && cap)
        return UV_EOF;
    if (rc == TLS_ERR_WANT_READ || cap == 0)
        return 0;
    t->failed = true;
    return TLS_ERR_FAILED;
}

/* ---- writing ----------------------------------------------------------------------------- */

static void maybe_shutdown(tls_io_t *t)
{
    if (t->shutdown_req == NULL || t->writing || tls_pending_output(t->sess, NULL, NULL))
        return;
    uv_shutdown_t *req = t->shutdown_req;
    t->shutdown_req = NULL;
    int rc = uv_shutdown(req, t->stream, t->shutdown_cb);
    if (rc < 0)
        t->shutdown_cb(req, rc);
}

/* The socket broke: a shutdown the owner waits for completes now, with the error. */
static void fail_writes(tls_io_t *t, int status)
{
    t->failed = true;
    if (t->shutdown_req) {
        uv_shutdown_t *req = t->shutdown_req;
        t->shutdown_req = NULL;
        t->shutdown_cb(req, status);
    }
}

static void on_written(uv_write_t *req, int status)
{
    tls_io_t *t = req->data;
    t->writing = false;
    if (status < 0) {
        fail_writes(t, status);
    } else {
        tls_consume_output(t->sess, t->inflight);
        t->inflight = 0;
        flush(t);
    }
    if (t->on_write)
        t->on_write(t->owner, status);
}

static void flush(tls_io_t *t)
{
    if (t->writing || t->failed)
        return;
    struct iovec iov[TLS_IO_MAX_IOV];
    size_t pending = tls_pending_output(t->sess, NULL, NULL);
    while (pending) {
        int n = tls_output_iov(t->sess, iov, TLS_IO_MAX_IOV);
        /* uv_buf_t is laid out as struct iovec on Unix. */
        int w = uv_try_write(t->stream, (const uv_buf_t *)iov, (unsigned)n);
        if (w == UV_EAGAIN || w == 0)
            break;
        if (w < 0) {
            fail_writes(t, w);
            return;
        }
        tls_consume_output(t->sess, (size_t)w);
        pending -= (size_t)w;
    }
    if (pending) {
        int n = tls_output_iov(t->sess, iov, TLS_IO_MAX_IOV);
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
        int rc = uv_write(&t->wreq, t->stream, (const uv_buf_t *)iov, (unsigned)n, on_written);
        if (rc < 0) {
            fail_writes(t, rc);
            return;
        }
        t->inflight = total;
        t->writing = true;
        return;
    }
    maybe_shutdown(t);
}

int tls_io_write(tls_io_t *t, const uv_buf_t *bufs, unsigned n)
{
    if (t->failed)
        return UV_EPIPE;
    for (unsigned i = 0; i < n; i++) {
        const char *p = bufs[i].base;
        size_t left = bufs[i].len;
        while (left) {
            int rc = tls_write(t->sess, p, left);
            if (rc < 0)
                return tls_io_uv_error(rc);
            p += rc;
            left -= (size_t)rc;
        }
    }
    flush(t);
    return t->failed ? UV_EPIPE : 0;
}

size_t tls_io_queue_size(const tls_io_t *t)
{
    return tls_pending_output(t->sess, NULL, NULL);
}

int tls_io_shutdown(tls_io_t *t, uv_shutdown_t *req, uv_shutdown_cb cb)
{
    int rc = tls_close_notify(t->sess);
    if (rc < 0)
        return tls_io_uv_error(rc);
    if (t->failed)
        return UV_EPIPE;
    t->shutdown_req = req;
    t->shutdown_cb = cb;
    flush(t); /* may complete (or fail) the shutdown at once: the owner's cb runs then */
    return 0;
}
