/* The router, upstream side of a stream: picks the route's cluster and an endpoint, rewrites
 * and frames the request, sends it over a pooled HTTP/1.1 connection, and relays the response
 * back through the connection manager. A pooled connection that the server closed just as it
 * was reused is retried once on a fresh one when the request can be replayed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy/upstream/lb.h"
#include "proxy/http/hcm_conn.h"
#include "proxy/http/route_match.h"
#include "proxy/core/log.h"

#define UPSTREAM_MAX_HEAD (96 * 1024)

static const char *const reason_connect_failure =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
static const char *const reason_overflow =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";
static const char *const reason_termination = "upstream connect error or disconnect/reset before "
                                              "headers. reset reason: connection termination";

int router_attempt(http_stream_t *s);
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
static int build_request_head(http_stream_t *s)
{
    router_req_t *r = &s->router;
    const route_entry_t *rt = s->route;
    http_headers_t *h = &s->req.headers;
    const char *path = s->path;
    size_t path_len = s->path_len;
    if (rt->prefix_rewrite && rt->match_kind != ROUTE_MATCH_PATH && rt->match_len <= path_len) {
        size_t plen = strlen(rt->prefix_rewrite);
        size_t n = plen + path_len - rt->match_len;
        char *np = arena_alloc(&s->arena, n + 1);
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
    hcm_apply_request_ops(s, &s->conn->cfg->routes->request_ops);
    if (s->vhost)
        hcm_apply_request_ops(s, &s->vhost->request_ops);
    hcm_apply_request_ops(s, &rt->request_ops);
    if (r->target)
        hcm_apply_request_ops(s, &r->target->request_ops);
    for (size_t i = 0; i < s->conn->cfg->routes->n_internal_only; i++)
        http_headers_remove(h, s->conn->cfg->routes->internal_only_headers[i]);

    /* Hop-by-hop headers stay on this hop; framing is ours to state. */
    http_headers_t out = {.cap = h->n + 6};
    out.v = arena_alloc(&s->arena, out.cap * sizeof(http_header_t));
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
    if (s->upgrade) {
        /* The one case where hop-by-hop headers go on: the upgrade is asked of the next hop. */
        out.v[out.n++] = (http_header_t){"connection", "upgrade", 10, 7};
        out.v[out.n++] = (http_header_t){"upgrade", s->upgrade, 7, s->upgrade_len};
    }
    if (!has_host && s->req.authority_len)
        out.v[out.n++] = (http_header_t){"host", s->req.authority, 4, s->req.authority_len};
    char cl[24];
    if (s->req.body == HTTP1_BODY_LENGTH) {
        size_t n = http_u64(cl, s->req.content_length);
        out.v[out.n++] = (http_header_t){"content-length", cl, 14, (uint32_t)n};
    } else if (s->req.body == HTTP1_BODY_CHUNKED) {
        out.v[out.n++] = (http_header_t){"transfer-encoding", "chunked", 17, 7};
    }
    /* One formatting pass: request line + ": " and CRLF per field + the final CRLF. */
    size_t cap = s->req.method_len + path_len + 16;
    for (uint32_t i = 0; i < out.n; i++)
        cap += out.v[i].name_len + out.v[i].value_len + 4;
    r->head = arena_alloc(&s->arena, cap);
    if (r->head == NULL)
        return -ENOMEM;
    r->head_len = http1_write_request_head(r->head, cap, s->req.method, s->req.method_len, path,
                                           path_len, &out);
    if (r->head_len > cap)
        return -EOVERFLOW; /* cannot happen: the bound covers every byte written */
    return 0;
}

static void send_head(http_stream_t *s)
{
    router_req_t *r = &s->router;
    if (s->req.connect) {
        /* A terminated CONNECT: nothing goes upstream but the client's bytes. */
        r->head_written = r->body_written = true;
        hcm_connect_established(s);
        return;
    }
    /* A buffered body leaves with the head, in one write. */
    uv_buf_t b[2] = {uv_buf_init(r->head, (unsigned)r->head_len),
                     uv_buf_init(s->body, (unsigned)s->body_len)};
    int rc = pool_write(r->uc, b, s->body_buffered && s->body_len ? 2 : 1);
    if (rc < 0) {
        /* A reused connection the server already closed: the request never left. */
        bool retry = r->uc->reused && r->attempts < 2;
        pool_release(r->uc, false);
        r->uc = NULL;
        if (retry) {
            stats_inc(s->conn->worker->stats, r->cluster->st.upstream_rq_retry);
            router_attempt(s);
            return;
        }
        stats_inc(s->conn->worker->stats, r->cluster->st.upstream_rq_rx_reset);
        hcm_upstream_failed(s, 503, "UC", reason_termination);
        return;
    }
    r->head_written = true;
    r->body_written = s->req.body == HTTP1_BODY_NONE || s->body_buffered;
    hcm_resume(s->conn); /* body bytes already buffered go out now */
}

int router_attempt(http_stream_t *s)
{
    router_req_t *r = &s->router;
    hcm_conn_t *c = s->conn;
    worker_t *w = c->worker;
    struct sockaddr_storage addr;
    r->attempts++;
    r->response_begun = false;
    r->head_written = false;
    if (cluster_pick(r->cluster, w->index, (const struct sockaddr *)&c->orig_dst, &addr,
                     &r->endpoint) < 0) {
        stats_inc(w->stats, r->cluster->st.upstream_cx_none_healthy);
        hcm_upstream_failed(s, 503, "UH", "no healthy upstream");
        return FILTER_STOP;
    }
    bool ready = false;
    stats_inc(w->stats, r->cluster->st.upstream_rq_total);
    int rc = pool_acquire(w, r->cluster, r->endpoint, (const struct sockaddr *)&addr, s,
                          &router_cbs, &r->uc, &ready);
    if (rc == UV_EBUSY) {
        r->uc = NULL;
        cluster_lb_release(r->cluster, w->index, r->endpoint);
        hcm_upstream_failed(s, 503, "UO", reason_overflow); /* max_connections */
        return FILTER_STOP;
    }
    if (rc < 0) {
        r->uc = NULL;
        cluster_lb_release(r->cluster, w->index, r->endpoint);
        hcm_upstream_failed(s, 503, "UF", reason_connect_failure);
        return FILTER_STOP;
    }
    if (ready)
        send_head(s);
    return FILTER_STOP;
}

int hcm_router_start(http_stream_t *s)
{
    return router_start(s);
}

int router_start(http_stream_t *s)
{
    router_req_t *r = &s->router;
    hcm_conn_t *c = s->conn;
    const route_entry_t *rt = s->route;
    r->target = route_pick_cluster(rt, next_random(c->worker));
    if (r->target == NULL || r->target->cluster == NULL) {
        stats_inc(c->worker->stats, c->cfg->st.no_cluster);
        hcm_upstream_failed(s,
                            rt->cluster_not_found_status ? (int)rt->cluster_not_found_status : 503,
                            "NC", "no cluster");
        return FILTER_STOP;
    }
    r->cluster = r->target->cluster;
    /* Circuit breaking: requests in flight to the cluster, across all workers. */
    cluster_shared_t *sh = r->cluster->shared;
    if (atomic_fetch_add_explicit(&sh->rq_active, 1, memory_order_relaxed) >=
        r->cluster->max_requests) {
        atomic_fetch_sub_explicit(&sh->rq_active, 1, memory_order_relaxed);
        stats_inc(c->worker->stats, r->cluster->st.upstream_rq_pending_overflow);
        hcm_upstream_failed(s, 503, "UO", reason_overflow);
        return FILTER_STOP;
    }
    r->rq_counted = true;
    if (!s->req.connect && build_request_head(s) < 0) {
        hcm_upstream_failed(s, 500, "LR", "out of memory");
        return FILTER_STOP;
    }
    r->start_ms = hcm_now(c);
    hcm_set_deadline(c, rt->timeout_ms);
    return router_attempt(s);
}

static void up_connected(void *owner, upstream_conn_t *uc, int status)
{
    (void)uc;
    http_stream_t *s = owner;
    router_req_t *r = &s->router;
    if (status < 0) {
        r->uc = NULL;
        cluster_lb_release(r->cluster, s->conn->worker->index, r->endpoint);
        log_debug("router: connect to %s failed: %s", uc->label, uv_strerror(status));
        hcm_upstream_failed(s, 503, "UF", reason_connect_failure);
        return;
    }
    send_head(s);
}

void router_request_body(http_stream_t *s, const char *data, size_t len, bool end,
                         const http_headers_t *trailers)
{
    router_req_t *r = &s->router;
    if (r->uc == NULL)
        return;
    uv_buf_t bufs[4];
    unsigned n = 0;
    char size_line[24];
    if (s->req.body == HTTP1_BODY_CHUNKED) {
        if (len) {
            bufs[n++] = uv_buf_init(size_line, (unsigned)http1_write_chunk_size(size_line, len));
            bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
            bufs[n++] = uv_buf_init("\r\n", 2);
        }
        if (end)
            bufs[n++] = hcm_last_chunk(s, trailers);
    } else if (len) {
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    }
    if (n && pool_write(r->uc, bufs, n) < 0) {
        stats_inc(s->conn->worker->stats, r->cluster->st.upstream_rq_rx_reset);
        pool_release(r->uc, false);
        r->uc = NULL;
        hcm_upstream_failed(s, 503, "UC", reason_termination);
        return;
    }
    if (end)
        r->body_written = true;
    else if (r->uc->over_hwm)
        hcm_pause_request_body(s, true);
}

static void up_drained(void *owner, upstream_conn_t *uc)
{
    (void)uc;
    hcm_pause_request_body((http_stream_t *)owner, false);
}

/* Hands the connection back: reusable only when both messages ended cleanly. */
static void release_upstream(http_stream_t *s, bool reusable)
{
    router_req_t *r = &s->router;
    if (r->uc == NULL)
        return;
    pool_release(r->uc, reusable && r->body_written && r->resp.keep_alive);
    r->uc = NULL;
    cluster_lb_release(r->cluster, s->conn->worker->index, r->endpoint);
}

static void protocol_failure(http_stream_t *s, const char *why)
{
    log_debug("router: bad response from upstream: %s", why ? why : "malformed");
    release_upstream(s, false);
    hcm_upstream_failed(s, 502, "UPE", "upstream sent an invalid response");
}

/* Works through what the upstream sent: the head, then body bytes. */
static void process_response(http_stream_t *s)
{
    router_req_t *r = &s->router;
    upstream_conn_t *uc = r->uc;
    while (uc && !r->response_headers_done) {
        http_header_t hv[128];
        memset(&r->resp, 0, sizeof(r->resp));
        r->resp.headers.v = hv;
        r->resp.headers.cap = 128;
        bool head = s->req.method_len == 4 && memcmp(s->req.method, "HEAD", 4) == 0;
        int rc =
            http1_parse_response(uc->in.data, uc->in.len, UPSTREAM_MAX_HEAD, head, false, &r->resp);
        if (rc == HTTP1_INCOMPLETE)
            return;
        if (rc < 0) {
            protocol_failure(s, r->resp.error);
            return;
        }
        if (r->resp.status == 101 && s->upgrade) {
            r->response_headers_done = true;
            stats_inc(s->conn->worker->stats, r->cluster->st.upstream_rq_xx[0]);
            hcm_send_response_head(s, &r->resp);
            if (r->uc == NULL || !s->conn->stream_active)
                return;
            pool_consume(uc, (size_t)rc);
            hcm_flush_response_head(s);
            hcm_set_deadline(s->conn, 0);
            hcm_start_tunnel(s);
            break; /* what follows in uc->in.data is tunnel data */
        }
        if (r->resp.status < 200) {
            pool_consume(uc, (size_t)rc); /* 1xx: we answered 100 Continue ourselves */
            continue;
        }
        r->response_headers_done = true;
        stats_slots_t *st = s->conn->worker->stats;
        stats_inc(st, r->cluster->st.upstream_rq_xx[r->resp.status / 100 - 1]);
        hcm_send_response_head(s, &r->resp);
        if (r->uc == NULL || !s->conn->stream_active)
            return;
        pool_consume(uc, (size_t)rc);
        r->resp.headers.v = NULL; /* the slices pointed into the consumed bytes */
        r->resp.headers.n = 0;
        http1_body_init(&r->body, r->resp.body, r->resp.content_length);
        if (r->resp.body == HTTP1_BODY_NONE) {
            release_upstream(s, true);
            hcm_send_response_body(s, NULL, 0, true, NULL);
            return;
        }
    }
    if (uc && s->conn->state == HCM_TUNNEL) {
        if (uc->in.len) {
            size_t n = uc->in.len;
            uc->in.len = 0;
            hcm_tunnel_data(s, uc->in.data, n, false);
        }
        if (r->uc && hcm_downstream_congested(s->conn))
            pool_read_stop(r->uc);
        return;
    }
    while (uc && uc->in.len > 0) {
        const char *data;
        size_t dlen;
        bool done = false;
        http_header_t tv[32];
        http_headers_t trailers = {.v = tv, .cap = 32};
        ssize_t used =
            http1_body_decode(&r->body, uc->in.data, uc->in.len, &data, &dlen, &trailers, &done);
        if (used < 0) {
            s->flags = "UPE";
            release_upstream(s, false);
            hcm_upstream_failed(s, 502, "UPE", "upstream sent an invalid body");
            return;
        }
        if (dlen)
            hcm_send_response_body(s, data, dlen, false, NULL);
        if (r->uc == NULL)
            return;
        if (done) {
            /* Trailers point into uc->in.data: copy them out before the bytes are consumed and the
             * connection goes back to the pool. */
            uv_buf_t last = hcm_last_chunk(s, &trailers);
            pool_consume(uc, (size_t)used);
            release_upstream(s, true);
            hcm_send_response_body(s, NULL, 0, true, &last);
            return;
        }
        pool_consume(uc, (size_t)used);
        if (used == 0)
            break;
    }
    /* A head whose body has not started arriving leaves now, not with the next read. */
    if (r->uc)
        hcm_flush_response_head(s);
    if (r->uc && hcm_downstream_congested(s->conn))
        pool_read_stop(r->uc); /* resumed by router_downstream_drained */
}

static void up_read(void *owner, upstream_conn_t *uc, ssize_t nread)
{
    http_stream_t *s = owner;
    router_req_t *r = &s->router;
    if (nread > 0) {
        r->response_begun = true;
        process_response(s);
        return;
    }
    /* EOF or error: the pool closes uc after this callback. */
    bool reused = uc->reused;
    r->uc = NULL;
    if (s->conn->state == HCM_TUNNEL) {
        cluster_lb_release(r->cluster, s->conn->worker->index, r->endpoint);
        hcm_tunnel_data(s, NULL, 0, true);
        return;
    }
    cluster_lb_release(r->cluster, s->conn->worker->index, r->endpoint);
    if (r->response_headers_done && nread == UV_EOF && r->resp.body == HTTP1_BODY_UNTIL_CLOSE) {
        hcm_send_response_body(s, NULL, 0, true, NULL); /* the close is the body's end */
        return;
    }
    stats_inc(s->conn->worker->stats, r->cluster->st.upstream_cx_destroy_remote_with_active_rq);
    if (r->response_headers_done) {
        /* Closed before the response's announced end: the client must not take what it got
         * for the whole body, so it is reset (the headers already went out). */
        stats_inc(s->conn->worker->stats, r->cluster->st.upstream_rq_rx_reset);
        hcm_upstream_failed(s, 503, "UC", reason_termination); /* resets: headers went out */
        return;
    }
    /* The keep-alive race: a reused connection closed before any response byte. Replay once
     * on a fresh connection if nothing of a body was streamed (the head alone is replayable). */
    if (reused && !r->response_begun && s->req.body == HTTP1_BODY_NONE && r->attempts < 2) {
        stats_inc(s->conn->worker->stats, r->cluster->st.upstream_rq_retry);
        router_attempt(s);
        return;
    }
    stats_inc(s->conn->worker->stats, r->cluster->st.upstream_rq_rx_reset);
    hcm_upstream_failed(s, 503, "UC", reason_termination);
}

int router_tunnel_write(http_stream_t *s, const char *data, size_t len)
{
    router_req_t *r = &s->router;
    if (r->uc == NULL)
        return -ENOTCONN;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int rc = pool_write(r->uc, &b, 1);
    if (rc == 0 && r->uc->over_hwm)
        hcm_pause_request_body(s, true);
    return rc;
}

void router_downstream_drained(http_stream_t *s)
{
    router_req_t *r = &s->router;
    if (r->uc) {
        pool_read_start(r->uc);
        process_response(s);
    }
}

void router_done(http_stream_t *s)
{
    router_req_t *r = &s->router;
    if (r->rq_counted) {
        r->rq_counted = false;
        atomic_fetch_sub_explicit(&r->cluster->shared->rq_active, 1, memory_order_relaxed);
    }
}

void router_reset(http_stream_t *s, bool timeout)
{
    (void)timeout;
    router_req_t *r = &s->router;
    if (r->uc) {
        /* A request still on its connection is abandoned half-way: the connection cannot be
         * reused, so it closes now and the upstream sees the reset at once. */
        stats_slots_t *st = s->conn->worker->stats;
        stats_inc(st, r->cluster->st.upstream_rq_tx_reset);
        stats_inc(st, r->cluster->st.upstream_cx_destroy_local_with_active_rq);
        pool_release(r->uc, false);
        r->uc = NULL;
        cluster_lb_release(r->cluster, s->conn->worker->index, r->endpoint);
    }
}
