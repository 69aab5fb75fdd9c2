/* The connection manager's response bytes: downstream writes with their high-water mark, local
 * replies, and the response head and body re-framed for the client. Whatever follows a
 * response's end (the next request) is the caller's, in hcm.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http/hcm_conn.h"
#include "proxy/net/stream_write.h"
#include "proxy/net/tls_io.h"

#define HCM_HIGH_WATER (1024 * 1024)

static size_t down_queued(const hcm_conn_t *c)
{
    return c->tls ? tls_io_queue_size(c->tls) : c->tcp->write_queue_size;
}

bool http_stream_downstream_congested(const http_stream_t *s)
{
    return down_queued(s->conn) > HCM_HIGH_WATER;
}

/* ---- downstream writes ------------------------------------------------------------------- */

static void on_down_write(uv_write_t *req, int status)
{
    copy_write_t *wr = (copy_write_t *)req;
    hcm_conn_t *c = wr->owner;
    free(wr);
    if (status < 0 || c->state == HCM_CLOSING)
        return;
    if (c->over_hwm && c->tcp->write_queue_size <= HCM_HIGH_WATER / 2) {
        c->over_hwm = false;
        if (c->stream_active)
            hcm_filters_downstream_drained(&c->stream);
    }
}

void hcm_on_tls_written(void *owner, int status)
{
    hcm_conn_t *c = owner;
    if (status < 0 || c->state == HCM_CLOSING)
        return;
    if (c->over_hwm && tls_io_queue_size(c->tls) <= HCM_HIGH_WATER / 2) {
        c->over_hwm = false;
        if (c->stream_active)
            hcm_filters_downstream_drained(&c->stream);
    }
}

/* Sends bufs (borrowed; copied only if the kernel does not take them at once). */
int hcm_down_write(hcm_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    int rc = c->tls ? tls_io_write(c->tls, bufs, n)
                    : stream_write_copy((uv_stream_t *)c->tcp, bufs, n, c, on_down_write);
    if (rc == 0 && down_queued(c) > HCM_HIGH_WATER)
        c->over_hwm = true;
    return rc;
}

/* ---- local replies and response path ---------------------------------------------------- */

int hcm_write_local_reply(http_stream_t *s, int status, const char *body)
{
    hcm_conn_t *c = s->conn;
    size_t blen = body ? strlen(body) : 0;
    char head[512];
    int n =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\ncontent-length: %zu\r\ncontent-type: text/plain\r\n%s\r\n",
                 status, http1_reason(status), blen, c->close_after ? "connection: close\r\n" : "");
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n),
                        uv_buf_init((char *)(body ? body : ""), (unsigned)blen)};
    s->status = status;
    s->resp_started = true;
    s->resp_done = true;
    s->bytes_out += blen;
    return hcm_down_write(c, bufs, blen ? 2 : 1);
}

static bool is_header_or_framing(const http_header_t *h, const http_headers_t *all)
{
    return http1_is_hop_by_hop(h, all) || http_name_is(h, "content-length");
}

int hcm_build_response_head(http_stream_t *s, const http_response_head_t *resp)
{
    hcm_conn_t *c = s->conn;
    const hcm_config_t *cfg = c->cfg;
    /* Build the downstream header list in the arena: filters and route ops may change it. */
    http_headers_t *h = &s->resp_headers;
    h->n = 0;
    h->cap = resp->headers.n + 16;
    h->v = arena_alloc(&s->arena, h->cap * sizeof(http_header_t));
    if (h->v == NULL)
        return -ENOMEM;
    /* Names listed in a Connection header are hop-by-hop too; look for one once, not per
     * header. */
    const http_headers_t *scope =
        http_headers_find(&resp->headers, "connection") ? &resp->headers : NULL;
    for (uint32_t i = 0; i < resp->headers.n; i++)
        if (!is_header_or_framing(&resp->headers.v[i], scope))
            h->v[h->n++] = resp->headers.v[i];
    s->status = resp->status;
    s->upstream_ms = (int64_t)(hcm_now(c) - s->start_ms);
    if (hcm_filters_response_headers(s, !resp->has_body) < 0)
        return HTTP_STREAM_ENDED;
    if (s->upstream && s->upstream->response_ops)
        http_stream_apply_header_ops(s, h, s->upstream->response_ops);
    if (s->route)
        http_stream_apply_header_ops(s, h, &s->route->response_ops);
    if (s->vhost)
        http_stream_apply_header_ops(s, h, &s->vhost->response_ops);
    http_stream_apply_header_ops(s, h, &cfg->routes->response_ops);

    /* Framing toward the downstream: keep a Content-Length (a response without a body keeps
     * the one it announced); otherwise chunked for HTTP/1.1 clients and close-delimited for
     * HTTP/1.0 ones. A 101 keeps its upgrade headers. */
    char cl[24];
    bool http10 = s->head.proto == HTTP_PROTO_10;
    const http_header_t *rup = http_headers_find(&resp->headers, "upgrade");
    if (resp->status == 101 && s->head.upgrade && rup) {
        http_stream_header_add(s, h, "connection", 10, "upgrade", 7);
        http_stream_header_add(s, h, "upgrade", 7, rup->value, rup->value_len);
    } else if (resp->content_length >= 0) {
        size_t n = http_u64(cl, (uint64_t)resp->content_length);
        http_stream_header_add(s, h, "content-length", 14, cl, n);
    } else if (resp->has_body) {
        if (http10) {
            c->close_after = true;
        } else {
            s->resp_chunked = true;
            http_stream_header_add(s, h, "transfer-encoding", 17, "chunked", 7);
        }
    }
    if (resp->status == 101)
        ; /* the connection becomes the tunnel */
    else if (c->close_after)
        http_stream_header_add(s, h, "connection", 10, "close", 5);
    else if (http10)
        http_stream_header_add(s, h, "connection", 10, "keep-alive", 10);

    /* One formatting pass into a buffer sized by an upper bound (status line + ": " and CRLF
     * per field + the final CRLF). */
    size_t cap = 64;
    for (uint32_t i = 0; i < h->n; i++)
        cap += h->v[i].name_len + h->v[i].value_len + 4;
    char *out = arena_alloc(&s->arena, cap);
    size_t need = out ? http1_write_response_head(out, cap, resp->status, NULL, h) : 0;
    if (out && need > cap) { /* an unusual reason phrase: size it exactly */
        out = arena_alloc(&s->arena, need);
        if (out)
            http1_write_response_head(out, need, resp->status, NULL, h);
    }
    if (out == NULL)
        return -ENOMEM;
    s->resp_started = true;
    s->head_pending = true;
    s->pending_head = uv_buf_init(out, (unsigned)need);
    return 0;
}

int http_stream_flush_response_head(http_stream_t *s)
{
    if (!s->head_pending)
        return 0;
    s->head_pending = false;
    if (hcm_down_write(s->conn, &s->pending_head, 1) < 0) {
        s->flags = "DC";
        hcm_close(s->conn, true);
        return HTTP_STREAM_ENDED;
    }
    return 0;
}

/* The last chunk of a chunked body with trailer fields ("0\r\nname: value\r\n\r\n"), written
 * into the stream's arena (trailers borrowed for the call; NULL or empty: no fields). */
static http_slice_t last_chunk(http_stream_t *s, const http_headers_t *trailers)
{
    static const http_slice_t plain = {"0\r\n\r\n", 5};
    if (trailers == NULL || trailers->n == 0)
        return plain;
    size_t n = 5;
    for (uint32_t i = 0; i < trailers->n; i++)
        n += trailers->v[i].name_len + trailers->v[i].value_len + 4;
    char *p = arena_alloc(&s->arena, n);
    if (p == NULL)
        return plain;
    size_t o = 0;
    memcpy(p, "0\r\n", 3);
    o = 3;
    for (uint32_t i = 0; i < trailers->n; i++) {
        const http_header_t *t = &trailers->v[i];
        memcpy(p + o, t->name, t->name_len);
        o += t->name_len;
        memcpy(p + o, ": ", 2);
        o += 2;
        memcpy(p + o, t->value, t->value_len);
        o += t->value_len;
        memcpy(p + o, "\r\n", 2);
        o += 2;
    }
    memcpy(p + o, "\r\n", 2);
    return (http_slice_t){p, o + 2};
}

int hcm_write_response(http_stream_t *s, const char *data, size_t len, bool end,
                       const http_headers_t *trailers)
{
    hcm_conn_t *c = s->conn;
    if (end && !s->req_body_done)
        c->close_after = true; /* answered before the body ended: its end cannot be found */
    uv_buf_t bufs[5];
    unsigned n = 0;
    char size_line[24];
    if (s->head_pending) {
        bufs[n++] = s->pending_head; /* head and first bytes leave in one writev */
        s->head_pending = false;
    }
    s->bytes_out += len;
    if (len && s->resp_chunked) {
        bufs[n++] = uv_buf_init(size_line, (unsigned)http1_write_chunk_size(size_line, len));
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
        bufs[n++] = uv_buf_init("\r\n", 2);
    } else if (len) {
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    }
    if (end && s->resp_chunked) {
        http_slice_t last = last_chunk(s, trailers);
        bufs[n++] = uv_buf_init((char *)last.data, (unsigned)last.len);
    }
    if (n && hcm_down_write(c, bufs, n) < 0) {
        s->flags = "DC";
        hcm_close(c, true);
        return HTTP_STREAM_ENDED;
    }
    if (end)
        s->resp_done = true;
    return 0;
}
