/* Test helper: a raw HTTP/2 client on a libuv loop (nghttp2's client session over a TCP socket),
 * for requests a gRPC client never makes (wrong content-type, no te, a forged message prefix)
 * and for a client that does not give its receive window back; or no session at all, for bytes
 * that are not HTTP/2. One request per client. Include after <cmocka.h>. */
#ifndef REMORA_TEST_H2_RAW_H
#define REMORA_TEST_H2_RAW_H

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct h2_raw {
    uv_tcp_t tcp;
    uv_connect_t creq;
    nghttp2_session *h2; /* NULL: bytes only */
    bool eof;            /* the server closed the connection */
    bool closed;         /* our handle is closed */
    bool consume;        /* give the receive window back as DATA arrives */
    int32_t sid;
    int http_status;
    int grpc_status; /* -1 until it arrives */
    char grpc_message[256];
    size_t data_bytes; /* DATA payload received on the stream */
    bool stream_closed;
    uint32_t rst_error;
    int goaway_error; /* -1 until a GOAWAY arrives */
} h2_raw_t;

static void h2_raw_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

/* Writes data[0..len) (copied) to the socket. */
static void h2_raw_write(h2_raw_t *r, const uint8_t *data, size_t len)
{
    uv_write_t *req = malloc(sizeof(*req) + len);
    assert_non_null(req);
    memcpy(req + 1, data, len);
    uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)len);
    if (uv_write(req, (uv_stream_t *)&r->tcp, &b, 1, h2_raw_written) < 0)
        free(req);
}

static void h2_raw_flush(h2_raw_t *r)
{
    if (r->h2 == NULL || r->eof)
        return;
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(r->h2, &data)) > 0)
        h2_raw_write(r, data, (size_t)n);
}

static int h2_raw_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                         void *ud)
{
    (void)s;
    (void)f;
    (void)flags;
    h2_raw_t *r = ud;
    char v[256];
    snprintf(v, sizeof(v), "%.*s", (int)valuelen, (const char *)value);
    if (namelen == 7 && memcmp(name, ":status", 7) == 0)
        r->http_status = atoi(v);
    else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
        r->grpc_status = atoi(v);
    else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
        snprintf(r->grpc_message, sizeof(r->grpc_message), "%s", v);
    return 0;
}

static int h2_raw_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                       size_t len, void *ud)
{
    (void)flags;
    (void)data;
    h2_raw_t *r = ud;
    r->data_bytes += len;
    if (r->consume)
        nghttp2_session_consume(s, sid, len);
    return 0;
}

static int h2_raw_stream_close(nghttp2_session *s, int32_t sid, uint32_t error, void *ud)
{
    (void)s;
    (void)sid;
    h2_raw_t *r = ud;
    r->stream_closed = true;
    r->rst_error = error;
    return 0;
}

static int h2_raw_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)s;
    h2_raw_t *r = ud;
    if (f->hd.type == NGHTTP2_GOAWAY)
        r->goaway_error = (int)f->goaway.error_code;
    return 0;
}

static void h2_raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    static char rbuf[64 * 1024];
    (void)hint;
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void h2_raw_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    h2_raw_t *r = st->data;
    if (n < 0) {
        r->eof = true;
        uv_read_stop(st);
        return;
    }
    if (r->h2 && n > 0 &&
        nghttp2_session_mem_recv(r->h2, (const uint8_t *)buf->base, (size_t)n) < 0)
        r->eof = true;
    h2_raw_flush(r);
}

static void h2_raw_connected(uv_connect_t *req, int status)
{
    h2_raw_t *r = req->data;
    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&r->tcp, h2_raw_alloc, h2_raw_read);
    h2_raw_flush(r);
}

/* Connects r (the caller's, zeroed here) to addr on loop; with_h2: an HTTP/2 client session
 * whose stream window is 65535 and comes back only with r->consume. */
static void h2_raw_connect(h2_raw_t *r, uv_loop_t *lp, const struct sockaddr *addr, bool with_h2)
{
    memset(r, 0, sizeof(*r));
    r->grpc_status = -1;
    r->goaway_error = -1;
    uv_tcp_init(lp, &r->tcp);
    r->tcp.data = r;
    r->creq.data = r;
    if (with_h2) {
        nghttp2_session_callbacks *cbs;
        nghttp2_option *opt;
        nghttp2_session_callbacks_new(&cbs);
        nghttp2_option_new(&opt);
        nghttp2_option_set_no_auto_window_update(opt, 1);
        nghttp2_session_callbacks_set_on_header_callback(cbs, h2_raw_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2_raw_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2_raw_stream_close);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2_raw_frame);
        assert_int_equal(nghttp2_session_client_new2(&r->h2, cbs, r, opt), 0);
        nghttp2_option_del(opt);
        nghttp2_session_callbacks_del(cbs);
        nghttp2_submit_settings(r->h2, NGHTTP2_FLAG_NONE, NULL, 0);
    }
    assert_int_equal(uv_tcp_connect(&r->creq, &r->tcp, addr, h2_raw_connected), 0);
}

static ssize_t h2_raw_body(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                           uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)sid;
    (void)ud;
    uv_buf_t *b = src->ptr;
    size_t n = b->len < length ? b->len : length;
    memcpy(buf, b->base, n);
    b->base += n;
    b->len -= n;
    if (b->len == 0)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Sends a POST to path with the extra headers extra[0..n) and the request body (borrowed: it
 * must stay until it is sent; NULL: none, the headers end the stream). */
static void h2_raw_request(h2_raw_t *r, const char *path, const nghttp2_nv *extra, size_t n,
                           uv_buf_t *body)
{
    nghttp2_nv nva[16];
    size_t k = 0;
#define H2_RAW_NV(n, v)                                                                            \
    (nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}
    nva[k++] = H2_RAW_NV(":method", "POST");
    nva[k++] = H2_RAW_NV(":scheme", "http");
    nva[k++] = H2_RAW_NV(":path", path);
    nva[k++] = H2_RAW_NV(":authority", "test");
    for (size_t i = 0; i < n && k < 16; i++)
        nva[k++] = extra[i];
    nghttp2_data_provider dp = {.source.ptr = body, .read_callback = h2_raw_body};
    r->sid = nghttp2_submit_request(r->h2, NULL, nva, k, body ? &dp : NULL, r);
    assert_true(r->sid > 0);
    h2_raw_flush(r);
}

/* Gives the window of what arrived back to the server, and from now on as it arrives. */
static void h2_raw_start_reading(h2_raw_t *r)
{
    r->consume = true;
    nghttp2_session_consume(r->h2, r->sid, r->data_bytes);
    h2_raw_flush(r);
}

static void h2_raw_closed(uv_handle_t *h)
{
    h2_raw_t *r = h->data;
    r->closed = true;
    nghttp2_session_del(r->h2);
    r->h2 = NULL;
}

static void h2_raw_close(h2_raw_t *r)
{
    uv_close((uv_handle_t *)&r->tcp, h2_raw_closed);
}

#endif
