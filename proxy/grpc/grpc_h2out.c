/* The output path of a gRPC connection (see grpc_h2out.h): one buffer between nghttp2 and the
 * transport, emptied before it is filled again, so a peer that does not read stops the gathering
 * and, through the flow-control windows, the calls' data providers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/grpc/grpc_h2out.h"

void grpc_h2out_init(grpc_h2out_t *o, uv_stream_t *stream, const grpc_h2out_ops_t *ops, void *owner)
{
    *o = (grpc_h2out_t){.ops = ops, .owner = owner, .stream = stream};
}

void grpc_h2out_free(grpc_h2out_t *o)
{
    free(o->buf);
    o->buf = NULL;
    o->len = o->off = o->cap = 0;
}

static void on_written(uv_write_t *req, int status)
{
    grpc_h2out_t *o = req->data;
    o->writing = false;
    if (status < 0) {
        o->ops->fail(o->owner, status, uv_strerror(status));
        return;
    }
    o->len = o->off = 0;
    o->ops->flush(o->owner);
}

static void on_tls_written(void *arg, int status)
{
    grpc_h2out_t *o = arg;
    if (status < 0)
        o->ops->fail(o->owner, status, uv_strerror(status));
    else
        o->ops->flush(o->owner);
}

void grpc_h2out_use_tls(grpc_h2out_t *o, tls_io_t *tls)
{
    o->tls = tls;
    tls_io_attach(tls, o, on_tls_written);
}

/* Hands the gathered output to TLS or the socket. Returns whether all of it is gone (more may
 * be gathered then). */
static bool out_drain(grpc_h2out_t *o)
{
    int rc = 0;
    if (o->tls) {
        while (o->off < o->len && tls_io_queue_size(o->tls) < GRPC_H2OUT_TLS_QUEUE) {
            size_t n = o->len - o->off;
            if (n > GRPC_H2OUT_TLS_PIECE)
                n = GRPC_H2OUT_TLS_PIECE;
            uv_buf_t b = uv_buf_init((char *)o->buf + o->off, (unsigned)n);
            if ((rc = tls_io_write(o->tls, &b, 1)) < 0)
                break;
            o->off += n;
        }
    } else if (!o->writing && o->off < o->len) {
        uv_buf_t b = uv_buf_init((char *)o->buf + o->off, (unsigned)(o->len - o->off));
        int n = uv_try_write(o->stream, &b, 1);
        if (n > 0)
            o->off += (size_t)n;
        else if (n != UV_EAGAIN)
            rc = n;
        if (rc == 0 && o->off < o->len) {
            b = uv_buf_init((char *)o->buf + o->off, (unsigned)(o->len - o->off));
            o->write_req.data = o;
            rc = uv_write(&o->write_req, o->stream, &b, 1, on_written);
            o->writing = rc == 0;
        }
    }
    if (rc < 0) {
        o->ops->fail(o->owner, rc, uv_strerror(rc));
        return false;
    }
    if (o->off < o->len)
        return false;
    o->len = o->off = 0;
    return true;
}

static int out_append(grpc_h2out_t *o, const uint8_t *data, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : GRPC_H2OUT_FIRST_CAP;
        while (cap < o->len + n)
            cap *= 2;
        uint8_t *b = realloc(o->buf, cap);
        if (b == NULL)
            return -ENOMEM;
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, data, n);
    o->len += n;
    return 0;
}

/* Gathers frames from the session (the buffer is empty when called). Returns whether any came. */
static bool out_gather(grpc_h2out_t *o, nghttp2_session *h2)
{
    while (o->len < GRPC_H2OUT_GATHER_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h2, &data);
        if (o->ops->closed(o->owner))
            return false;
        if (n < 0) {
            o->ops->fail(o->owner, UV_EPROTO, nghttp2_strerror((int)n));
            return false;
        }
        if (n == 0)
            break;
        if (out_append(o, data, (size_t)n) < 0) {
            o->ops->fail(o->owner, UV_ENOMEM, "out of memory for output");
            return false;
        }
    }
    return o->len > 0;
}

bool grpc_h2out_flush(grpc_h2out_t *o, nghttp2_session *h2)
{
    if (o->flushing)
        return false;
    o->flushing = true;
    while (out_drain(o) && out_gather(o, h2))
        ;
    o->flushing = false;
    if (o->len == 0 && !o->writing && o->cap > GRPC_H2OUT_KEEP) {
        /* All out: a thousand idle connections do not each keep their largest burst's buffer. */
        free(o->buf);
        o->buf = NULL;
        o->cap = 0;
    }
    return true;
}

bool grpc_h2out_busy(const grpc_h2out_t *o)
{
    return o->len > 0 || o->writing;
}
