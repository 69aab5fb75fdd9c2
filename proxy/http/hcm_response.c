/* The connection manager's response side: downstream writes with their high-water mark, and the
 * response head as the stream's filters and header operations make it, before the codec frames
 * it for the client. Whatever follows a response's end (the next request) is the caller's, in
 * hcm.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http/hcm_codec.h"
#include "proxy/net/stream_write.h"
#include "proxy/net/tls_io.h"

#define HCM_HIGH_WATER (1024 * 1024)

static size_t down_queued(const hcm_conn_t *c)
{
    return c->tls ? tls_io_queue_size(c->tls) : c->tcp->write_queue_size;
}

bool hcm_down_congested(const hcm_conn_t *c)
{
    return down_queued(c) > HCM_HIGH_WATER;
}

bool http_stream_downstream_congested(const http_stream_t *s)
{
    return s->conn->codec->congested(s);
}

/* ---- downstream writes ------------------------------------------------------------------- */

/* The client took what was queued: every stream may send again. A stream's hooks may end
 * streams, so the list is walked by serial: a stream gone since is skipped, and the walk
 * starts over. */
static void downstream_drained(hcm_conn_t *c)
{
    uint32_t round = c->next_serial;
    http_stream_t *s = c->streams;
    while (s && c->state != HCM_CLOSING) {
        if (s->serial > round) { /* begun in this walk (or the serial wrapped): not owed */
            s = s->next;
            continue;
        }
        uint32_t serial = s->serial;
        http_stream_t *next = s->next;
        hcm_filters_downstream_drained(s);
        s = hcm_stream_gone(s, serial) ? c->streams : next;
        round = serial - 1; /* the streams after it in the list are older */
    }
}

static void on_down_write(uv_write_t *req, int status)
{
    copy_write_t *wr = (copy_write_t *)req;
    hcm_conn_t *c = wr->owner;
    free(wr);
    if (status < 0 || c->state == HCM_CLOSING)
        return;
    if (c->over_hwm && c->tcp->write_queue_size <= HCM_HIGH_WATER / 2) {
        c->over_hwm = false;
        downstream_drained(c);
    }
}

void hcm_on_tls_written(void *owner, int status)
{
    hcm_conn_t *c = owner;
    if (status < 0 || c->state == HCM_CLOSING)
        return;
    if (c->over_hwm && tls_io_queue_size(c->tls) <= HCM_HIGH_WATER / 2) {
        c->over_hwm = false;
        downstream_drained(c);
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

/* ---- the response head ------------------------------------------------------------------ */

static bool is_header_or_framing(const http_header_t *h, const http_headers_t *all)
{
    return http1_is_hop_by_hop(h, all) || http_name_is(h, "content-length");
}

int hcm_response_head(http_stream_t *s, const http_response_head_t *resp)
{
    hcm_conn_t *c = s->conn;
    const hcm_config_t *cfg = s->cfg;
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
    if (s->grpc)
        hcm_note_grpc_status(s, &resp->headers); /* a trailers-only response carries it here */
    if (hcm_filters_response_headers(s, !resp->has_body) < 0)
        return HTTP_STREAM_ENDED;
    if (s->upstream && s->upstream->response_ops)
        http_stream_apply_header_ops(s, h, s->upstream->response_ops);
    if (s->route)
        http_stream_apply_header_ops(s, h, &s->route->response_ops);
    if (s->vhost)
        http_stream_apply_header_ops(s, h, &s->vhost->response_ops);
    http_stream_apply_header_ops(s, h, &cfg->routes->response_ops);
    int rc = c->codec->encode_head(s, resp);
    if (rc < 0)
        return rc;
    s->resp_started = true;
    return 0;
}

int http_stream_flush_response_head(http_stream_t *s)
{
    return s->conn->codec->flush_head(s);
}
