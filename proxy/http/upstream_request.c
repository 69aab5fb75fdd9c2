/* The router, upstream side of a stream: picks the route's cluster and an endpoint, rewrites
 * and frames the request, sends it over a pooled HTTP/1.1 connection, and relays the response
 * back to the client. A pooled connection that the server closed just as it was reused is
 * retried once on a fresh one when the request can be replayed. Its state is the router
 * filter's per-stream state; it reaches the stream only through the stream API, and every call
 * that can end the stream is checked, since the state goes with the stream. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/core/worker.h"
#include "proxy/http/route_match.h"
#include "proxy/http/upstream_request.h"
#include "proxy/upstream/h1_pool.h"
#include "proxy/upstream/lb.h"

#define UPSTREAM_MAX_HEAD (96 * 1024)

static const char *const reason_connect_failure =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
static const char *const reason_overflow =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";
static const char *const reason_termination = "upstream connect error or disconnect/reset before "
                                              "headers. reset reason: connection termination";

static void router_attempt(router_req_t *r);
static void up_connected(void *owner, upstream_conn_t *uc, int status);
static void up_read(void *owner, upstream_conn_t *uc, ssize_t nread);
static void up_drained(void *owner, upstream_conn_t *uc);

static const upstream_conn_cbs_t router_cbs = {
    .on_connected = up_connected,
    .on_read = up_read,
    .on_drained = up_drained,
};

static uint32_t next_random(worker_t *w)
{
    w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(w->rng >> 32);
}

/* Builds the upstream request head in the arena: rewrites, header ops, hop-by-hop removal and
 * the body framing we send. */
static int build_request_head(router_req_t *r)
{
    http_stream_t *s = r->s;
    const route_vhost_t *vhost;
    const route_entry_t *rt = http_stream_route(s, &vhost);
    const route_table_t *table = http_stream_route_table(s);
    const http1_request_t *req = r->req;
    http_headers_t *h = http_stream_request_headers(s);
    const char *path = req->path;
    size_t path_len = req->path_len;
    if (rt->prefix_rewrite && rt->match_kind != ROUTE_MATCH_PATH && rt->match_len <= path_len) {
        size_t plen = strlen(rt->prefix_rewrite);
        size_t n = plen + path_len - rt->match_len;
        char *np = http_stream_alloc(s, n + 1);
        if (np == NULL)
            return -ENOMEM;
        memcpy(np, rt->prefix_rewrite, plen);
        memcpy(np + plen, path + rt->match_len, path_len - rt->match_len);
        np[n] = '\0';
        path = np;
        path_len = n;
    }
    if (rt->host_rewrite)
        http_stream_header_set(s, h, "host", rt->host_rewrite, strlen(rt->host_rewrite));
    /* Envoy applies the most specific level last, so it wins for overwrites. */
    http_stream_apply_header_ops(s, h, &table->request_ops);
    if (vhost)
        http_stream_apply_header_ops(s, h, &vhost->request_ops);
    http_stream_apply_header_ops(s, h, &rt->request_ops);
    if (r->target)
        http_stream_apply_header_ops(s, h, &r->target->request_ops);
    for (size_t i = 0; i < table->n_internal_only; i++)
        http_headers_remove(h, table->internal_only_headers[i]);

    /* Hop-by-hop headers stay on this hop; framing is ours to state. */
    http_headers_t out = {.cap = h->n + 6};
    out.v = http_stream_alloc(s, out.cap * sizeof(http_header_t));
    if (out.v == NULL)
        return -ENOMEM;
    bool has_host = false;
    const http_headers_t *scope = http_headers_find(h, "connection") ? h : NULL;
    for (uint32_t i = 0; i < h->n; i++) {
        if (http1_is_hop_by_hop(&h->v[i], scope) || http_name_is(&h->v[i], "content-length"))
            continue;
        has_host |= http_name_is(&h->v[i], "host");
        out.v[out.n++] = h->v[i];
    }
    uint32_t upgrade_len;
    const char *upgrade = http_stream_upgrade(s, &upgrade_len);
    if (upgrade) {
        /* The one case where hop-by-hop headers go on: the upgrade is asked of the next hop. */
        out.v[out.n++] = (http_header_t){"connection", "upgrade", 10, 7};
        out.v[out.n++] = (http_header_t){"upgrade", upgrade, 7, upgrade_len};
    }
    if (!has_host && req->authority_len)
        out.v[out.n++] = (http_header_t){"host", req->authority, 4, req->authority_len};
    char cl[24];
    if (req->body == HTTP1_BODY_LENGTH) {
        size_t n = http_u64(cl, req->content_length);
        out.v[out.n++] = (http_header_t){"content-length", cl, 14, (uint32_t)n};
    } else if (req->body == HTTP1_BODY_CHUNKED) {
        out.v[out.n++] = (http_header_t){"transfer-encoding", "chunked", 17, 7};
    }
    /* One formatting pass: request line + ": " and CRLF per field + the final CRLF. */
    size_t cap = req->method_len + path_len + 16;
    for (uint32_t i = 0; i < out.n; i++)
        cap += out.v[i].name_len + out.v[i].value_len + 4;
    r->head = http_stream_alloc(s, cap);
    if (r->head == NULL)
        return -ENOMEM;
    r->head_len =
        http1_write_request_head(r->head, cap, req->method, req->method_len, path, path_len, &out);
    if (r->head_len > cap)
        return -EOVERFLOW; /* cannot happen: the bound covers every byte written */
    return 0;
}

static void send_head(router_req_t *r)
{
    http_stream_t *s = r->s;
    const http1_request_t *req = r->req;
    if (req->connect) {
        /* A terminated CONNECT: nothing goes upstream but the client's bytes. */
        r->head_written = r->body_written = true;
        r->response_headers_done = true;
        r->tunnel = true;
        http_stream_connect_established(s); /* last step: whether the stream ended or not */
        return;
    }
    /* A buffered body leaves with the head, in one write. */
    size_t body_len = 0;
    const char *body = http_stream_buffered_body(s, &body_len);
    uv_buf_t b[2] = {uv_buf_init(r->head, (unsigned)r->head_len),
                     uv_buf_init((char *)body, (unsigned)body_len)};
    int rc = pool_write(r->uc, b, body_len ? 2 : 1);
    if (rc < 0) {
        /* A reused connection the server already closed: the request never left. */
        bool retry = r->uc->reused && r->attempts < 2;
        pool_release(r->uc, false);
        r->uc = NULL;
        if (retry) {
            stats_inc(r->w->stats, r->up.cluster->st.upstream_rq_retry);
            router_attempt(r);
            return;
        }
        stats_inc(r->w->stats, r->up.cluster->st.upstream_rq_rx_reset);
        http_stream_local_reply(s, 503, reason_termination, "UC");
        return;
    }
    r->head_written = true;
    r->body_written = req->body == HTTP1_BODY_NONE || body != NULL;
    http_stream_resume_request_body(s); /* body bytes already buffered go out now */
}

static void router_attempt(router_req_t *r)
{
    http_stream_t *s = r->s;
    worker_t *w = r->w;
    const snap_cluster_t *cl = r->up.cluster;
    struct sockaddr_storage addr;
    r->attempts++;
    r->response_begun = false;
    r->head_written = false;
    if (cluster_pick(cl, w->index, http_stream_original_dst(s), &addr, &r->up.endpoint) < 0) {
        stats_inc(w->stats, cl->st.upstream_cx_none_healthy);
        http_stream_local_reply(s, 503, "no healthy upstream", "UH");
        return;
    }
    bool ready = false;
    stats_inc(w->stats, cl->st.upstream_rq_total);
    int rc = pool_acquire(w, cl, r->up.endpoint, (const struct sockaddr *)&addr, r, &router_cbs,
                          &r->uc, &ready);
    if (rc == UV_EBUSY) {
        r->uc = NULL;
        cluster_lb_release(cl, w->index, r->up.endpoint);
        http_stream_local_reply(s, 503, reason_overflow, "UO"); /* max_connections */
        return;
    }
    if (rc < 0) {
        r->uc = NULL;
        cluster_lb_release(cl, w->index, r->up.endpoint);
        http_stream_local_reply(s, 503, reason_connect_failure, "UF");
        return;
    }
    if (ready)
        send_head(r);
}

void router_start(router_req_t *r, http_stream_t *s)
{
    r->s = s;
    r->w = http_stream_worker(s);
    r->req = http_stream_request(s);
    http_stream_set_upstream(s, &r->up);
    worker_t *w = r->w;
    const route_entry_t *rt = http_stream_route(s, NULL);
    r->target = route_pick_cluster(rt, next_random(w));
    if (r->target)
        r->up.response_ops = &r->target->response_ops;
    if (r->target == NULL || r->target->cluster == NULL) {
        http_stream_count(s, HTTP_STREAM_STAT_NO_CLUSTER);
        int status = rt->cluster_not_found_status ? (int)rt->cluster_not_found_status : 503;
        http_stream_local_reply(s, status, "no cluster", "NC");
        return;
    }
    const snap_cluster_t *cl = r->up.cluster = r->target->cluster;
    /* Circuit breaking: requests in flight to the cluster, across all workers. */
    cluster_shared_t *sh = cl->shared;
    if (atomic_fetch_add_explicit(&sh->rq_active, 1, memory_order_relaxed) >= cl->max_requests) {
        atomic_fetch_sub_explicit(&sh->rq_active, 1, memory_order_relaxed);
        stats_inc(w->stats, cl->st.upstream_rq_pending_overflow);
        http_stream_local_reply(s, 503, reason_overflow, "UO");
        return;
    }
    r->rq_counted = true;
    if (!r->req->connect && build_request_head(r) < 0) {
        http_stream_local_reply(s, 500, "out of memory", "LR");
        return;
    }
    r->start_ms = http_stream_now(s);
    http_stream_set_deadline(s, rt->timeout_ms);
    router_attempt(r);
}

static void up_connected(void *owner, upstream_conn_t *uc, int status)
{
    router_req_t *r = owner;
    if (status < 0) {
        r->uc = NULL;
        cluster_lb_release(r->up.cluster, r->w->index, r->up.endpoint);
        log_debug("router: connect to %s failed: %s", uc->label, uv_strerror(status));
        http_stream_local_reply(r->s, 503, reason_connect_failure, "UF");
        return;
    }
    send_head(r);
}

void router_request_body(router_req_t *r, const char *data, size_t len, bool end,
                         const http_headers_t *trailers)
{
    if (r->uc == NULL)
        return;
    http_stream_t *s = r->s;
    uv_buf_t bufs[4];
    unsigned n = 0;
    char size_line[24];
    if (r->req->body == HTTP1_BODY_CHUNKED) {
        if (len) {
            bufs[n++] = uv_buf_init(size_line, (unsigned)http1_write_chunk_size(size_line, len));
            bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
            bufs[n++] = uv_buf_init("\r\n", 2);
        }
        if (end) {
            http_slice_t last = http_stream_last_chunk(s, trailers);
            bufs[n++] = uv_buf_init((char *)last.data, (unsigned)last.len);
        }
    } else if (len) {
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    }
    if (n && pool_write(r->uc, bufs, n) < 0) {
        stats_inc(r->w->stats, r->up.cluster->st.upstream_rq_rx_reset);
        pool_release(r->uc, false);
        r->uc = NULL;
        http_stream_local_reply(s, 503, reason_termination, "UC");
        return;
    }
    if (end)
        r->body_written = true;
    else if (r->uc->over_hwm)
        http_stream_pause_request_body(s);
}

static void up_drained(void *owner, upstream_conn_t *uc)
{
    (void)uc;
    router_req_t *r = owner;
    http_stream_resume_request_body(r->s); /* last step: whether the stream ended or not */
}

/* Hands the connection back: reusable only when both messages ended cleanly. */
static void release_upstream(router_req_t *r, bool reusable)
{
    if (r->uc == NULL)
        return;
    pool_release(r->uc, reusable && r->body_written && r->resp.keep_alive);
    r->uc = NULL;
    cluster_lb_release(r->up.cluster, r->w->index, r->up.endpoint);
}

static void protocol_failure(router_req_t *r, const char *why)
{
    log_debug("router: bad response from upstream: %s", why ? why : "malformed");
    release_upstream(r, false);
    http_stream_local_reply(r->s, 502, "upstream sent an invalid response", "UPE");
}

/* The response head: 1xx skipped, 101 to an Upgrade starts the tunnel. Returns 0 when the body
 * (or the tunnel) follows, 1 when there is nothing more to do now, HTTP_STREAM_ENDED. */
static int process_response_head(router_req_t *r)
{
    http_stream_t *s = r->s;
    upstream_conn_t *uc = r->uc;
    bool head = r->req->method_len == 4 && memcmp(r->req->method, "HEAD", 4) == 0;
    while (!r->response_headers_done) {
        http_header_t hv[128];
        memset(&r->resp, 0, sizeof(r->resp));
        r->resp.headers.v = hv;
        r->resp.headers.cap = 128;
        int rc =
            http1_parse_response(uc->in.data, uc->in.len, UPSTREAM_MAX_HEAD, head, false, &r->resp);
        if (rc == HTTP1_INCOMPLETE)
            return 1;
        if (rc < 0) {
            protocol_failure(r, r->resp.error);
            return HTTP_STREAM_ENDED;
        }
        if (r->resp.status == 101 && http_stream_upgrade(s, NULL)) {
            r->response_headers_done = true;
            stats_inc(r->w->stats, r->up.cluster->st.upstream_rq_xx[0]);
            if (http_stream_send_response_head(s, &r->resp) < 0)
                return HTTP_STREAM_ENDED;
            pool_consume(uc, (size_t)rc);
            if (http_stream_flush_response_head(s) < 0)
                return HTTP_STREAM_ENDED;
            http_stream_set_deadline(s, 0);
            r->tunnel = true;
            /* What follows in uc->in.data is tunnel data. */
            return http_stream_start_tunnel(s);
        }
        if (r->resp.status < 200) {
            pool_consume(uc, (size_t)rc); /* 1xx: we answered 100 Continue ourselves */
            continue;
        }
        r->response_headers_done = true;
        stats_inc(r->w->stats, r->up.cluster->st.upstream_rq_xx[r->resp.status / 100 - 1]);
        if (http_stream_send_response_head(s, &r->resp) < 0)
            return HTTP_STREAM_ENDED;
        pool_consume(uc, (size_t)rc);
        r->resp.headers.v = NULL; /* the slices pointed into the consumed bytes */
        r->resp.headers.n = 0;
        http1_body_init(&r->body, r->resp.body, r->resp.content_length);
        if (r->resp.body == HTTP1_BODY_NONE) {
            release_upstream(r, true);
            http_stream_send_response_body(s, NULL, 0, true, NULL);
            return HTTP_STREAM_ENDED;
        }
    }
    return 0;
}

/* A response body sink stopped http1_body_pump: the stream ended, or the response did. */
enum { RELAY_ENDED = 1 };

/* One piece of the response body to the client. */
static int relay_piece(void *arg, const http1_body_piece_t *p)
{
    router_req_t *r = arg;
    http_stream_t *s = r->s;
    if (p->len && http_stream_send_response_body(s, p->data, p->len, false, NULL) < 0)
        return RELAY_ENDED;
    if (!p->done)
        return 0;
    /* Trailers point into uc->in.data: copy them out before the bytes are consumed and the
     * connection goes back to the pool. */
    http_slice_t last = http_stream_last_chunk(s, p->trailers);
    pool_consume(r->uc, p->offset + p->used);
    release_upstream(r, true);
    http_stream_send_response_body(s, NULL, 0, true, &last);
    return RELAY_ENDED;
}

/* Response body bytes to the client, until the body ends or the bytes run out. Returns 0, or
 * HTTP_STREAM_ENDED. */
static int process_response_body(router_req_t *r)
{
    upstream_conn_t *uc = r->uc;
    size_t used;
    int rc = http1_body_pump(&r->body, uc->in.data, uc->in.len, relay_piece, r, &used);
    if (rc == RELAY_ENDED)
        return HTTP_STREAM_ENDED;
    pool_consume(uc, used);
    if (rc == HTTP1_E_BAD) {
        release_upstream(r, false);
        http_stream_local_reply(r->s, 502, "upstream sent an invalid body", "UPE");
        return HTTP_STREAM_ENDED;
    }
    return 0;
}

/* Works through what the upstream sent: the head, then body bytes or tunnel bytes. */
static void process_response(router_req_t *r)
{
    http_stream_t *s = r->s;
    upstream_conn_t *uc = r->uc;
    if (uc == NULL)
        return;
    int rc = process_response_head(r);
    if (rc != 0)
        return;
    if (r->tunnel) {
        if (uc->in.len) {
            size_t n = uc->in.len;
            uc->in.len = 0;
            if (http_stream_tunnel_data(s, uc->in.data, n, false) < 0)
                return;
        }
    } else {
        if (process_response_body(r) < 0)
            return;
        /* A head whose body has not started arriving leaves now, not with the next read. */
        if (http_stream_flush_response_head(s) < 0)
            return;
    }
    if (r->uc && http_stream_downstream_congested(s))
        pool_read_stop(r->uc); /* resumed by router_downstream_drained */
}

static void up_read(void *owner, upstream_conn_t *uc, ssize_t nread)
{
    router_req_t *r = owner;
    http_stream_t *s = r->s;
    if (nread > 0) {
        r->response_begun = true;
        process_response(r);
        return;
    }
    /* EOF or error: the pool closes uc after this callback. */
    stats_slots_t *st = r->w->stats;
    const snap_cluster_t *cl = r->up.cluster;
    bool reused = uc->reused;
    r->uc = NULL;
    cluster_lb_release(cl, r->w->index, r->up.endpoint);
    if (r->tunnel) {
        http_stream_tunnel_data(s, NULL, 0, true);
        return;
    }
    if (r->response_headers_done && nread == UV_EOF && r->resp.body == HTTP1_BODY_UNTIL_CLOSE) {
        http_stream_send_response_body(s, NULL, 0, true, NULL); /* the close is the body's end */
        return;
    }
    stats_inc(st, cl->st.upstream_cx_destroy_remote_with_active_rq);
    if (r->response_headers_done) {
        /* Closed before the response's announced end: the client must not take what it got
         * for the whole body, so it is reset (the headers already went out). */
        stats_inc(st, cl->st.upstream_rq_rx_reset);
        http_stream_local_reply(s, 503, reason_termination, "UC"); /* resets: head went out */
        return;
    }
    /* The keep-alive race: a reused connection closed before any response byte. Replay once
     * on a fresh connection if nothing of a body was streamed (the head alone is replayable). */
    if (reused && !r->response_begun && r->req->body == HTTP1_BODY_NONE && r->attempts < 2) {
        stats_inc(st, cl->st.upstream_rq_retry);
        router_attempt(r);
        return;
    }
    stats_inc(st, cl->st.upstream_rq_rx_reset);
    http_stream_local_reply(s, 503, reason_termination, "UC");
}

int router_tunnel_write(router_req_t *r, const char *data, size_t len)
{
    if (r->uc == NULL)
        return -ENOTCONN;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int rc = pool_write(r->uc, &b, 1);
    if (rc == 0 && r->uc->over_hwm)
        http_stream_pause_request_body(r->s);
    return rc;
}

void router_downstream_drained(router_req_t *r)
{
    if (r->uc) {
        pool_read_start(r->uc);
        process_response(r);
    }
}

/* A request still on its connection is abandoned half-way: the connection cannot be reused, so
 * it closes now and the upstream sees the reset at once. */
static void abandon_upstream(router_req_t *r)
{
    if (r->uc == NULL)
        return;
    stats_slots_t *st = r->w->stats;
    stats_inc(st, r->up.cluster->st.upstream_rq_tx_reset);
    stats_inc(st, r->up.cluster->st.upstream_cx_destroy_local_with_active_rq);
    pool_release(r->uc, false);
    r->uc = NULL;
    cluster_lb_release(r->up.cluster, r->w->index, r->up.endpoint);
}

void router_reset(router_req_t *r, http_reset_reason_t reason)
{
    if (reason == HTTP_RESET_TIMEOUT && r->up.cluster)
        stats_inc(r->w->stats, r->up.cluster->st.upstream_rq_timeout);
    abandon_upstream(r);
}

void router_done(router_req_t *r)
{
    abandon_upstream(r);
    if (r->rq_counted) {
        r->rq_counted = false;
        atomic_fetch_sub_explicit(&r->up.cluster->shared->rq_active, 1, memory_order_relaxed);
    }
}
