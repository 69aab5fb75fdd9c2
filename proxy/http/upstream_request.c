/* The router, upstream side of a stream: picks the route's cluster and an endpoint, rewrites
 * and sends the request through the cluster's upstream codec (upstream_codec.h: HTTP/1.1 on a
 * pooled connection), and relays the response's events back to the client. A pooled connection
 * that the server closed just as it was reused is retried once on a fresh one when the request
 * can be replayed. Its state is the router
 * filter's per-stream state; it reaches the stream only through the stream API, and every call
 * that can end the stream is checked, since the state goes with the stream. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/core/worker.h"
#include "proxy/http/h1/h1_upstream.h"
#include "proxy/http/h2/h2_upstream.h"
#include "proxy/http/route_match.h"
#include "proxy/http/upstream_request.h"
#include "proxy/upstream/lb.h"

static const char *const reason_connect_failure =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
static const char *const reason_overflow =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";
static const char *const reason_termination = "upstream connect error or disconnect/reset before "
                                              "headers. reset reason: connection termination";

static void router_attempt(router_req_t *r);
static void up_ready(void *owner);
static int up_head(void *owner, const http_response_head_t *head);
static int up_data(void *owner, const char *data, size_t len, bool end);
static int up_trailers(void *owner, const http_headers_t *trailers);
static void up_reset(void *owner, http_up_reset_t why, bool retryable);
static void up_drained(void *owner);

static const http_up_events_t router_events = {
    .on_ready = up_ready,
    .on_head = up_head,
    .on_data = up_data,
    .on_trailers = up_trailers,
    .on_reset = up_reset,
    .on_drained = up_drained,
};

static uint32_t next_random(worker_t *w)
{
    w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(w->rng >> 32);
}

/* The head that goes upstream: the route's rewrites and the header operations of every level
 * applied to the stream's request. Framing and hop-by-hop fields are the codec's. */
static int build_request_head(router_req_t *r)
{
    http_stream_t *s = r->s;
    const route_vhost_t *vhost;
    const route_entry_t *rt = http_stream_route(s, &vhost);
    const route_table_t *table = http_stream_route_table(s);
    const http_request_head_t *req = r->req;
    http_headers_t *h = http_stream_request_headers(s);
    r->out = *req;
    if (rt->prefix_rewrite && rt->match_kind != ROUTE_MATCH_PATH &&
        rt->match_len <= req->path_len) {
        size_t plen = strlen(rt->prefix_rewrite);
        size_t n = plen + req->path_len - rt->match_len;
        char *np = http_stream_alloc(s, n + 1);
        if (np == NULL)
            return -ENOMEM;
        memcpy(np, rt->prefix_rewrite, plen);
        memcpy(np + plen, req->path + rt->match_len, req->path_len - rt->match_len);
        np[n] = '\0';
        r->out.path = np;
        r->out.path_len = (uint32_t)n;
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
    r->out.headers = *h;
    return 0;
}

/* The endpoint pick is over (least-request bookkeeping); once. */
static void endpoint_done(router_req_t *r)
{
    if (r->endpoint_held) {
        r->endpoint_held = false;
        cluster_lb_release(r->up.cluster, r->w->index, r->up.endpoint);
    }
}

/* The codec let its connection go by itself (a failure it reported). */
static void codec_gone(router_req_t *r)
{
    r->started = false;
    endpoint_done(r);
}

static void send_head(router_req_t *r)
{
    http_stream_t *s = r->s;
    const http_request_head_t *req = r->req;
    bool retryable = false;
    if (req->connect) {
        /* A terminated CONNECT: nothing goes upstream but the client's bytes. A codec that
         * cannot carry them (HTTP/2 upstreams: no extended CONNECT) refuses it here. */
        if (r->codec->send_head(r->cs, &r->out, NULL, 0, true, &retryable) < 0) {
            codec_gone(r);
            http_stream_local_reply(s, 503, "the upstream's protocol cannot carry CONNECT", "UF");
            return;
        }
        r->head_written = r->body_written = true;
        r->response_headers_done = true;
        r->tunnel = true;
        http_stream_connect_established(s); /* last step: whether the stream ended or not */
        return;
    }
    /* A body held whole leaves with the head. */
    size_t body_len = 0;
    const char *body = http_stream_buffered_body(s, &body_len);
    bool end = !req->has_body || body != NULL;
    if (r->codec->send_head(r->cs, &r->out, body, body_len, end, &retryable) < 0) {
        codec_gone(r);
        if (retryable && r->attempts < 2) {
            stats_inc(r->w->stats, r->up.cluster->st.upstream_rq_retry);
            router_attempt(r);
            return;
        }
        stats_inc(r->w->stats, r->up.cluster->st.upstream_rq_rx_reset);
        http_stream_local_reply(s, 503, reason_termination, "UC");
        return;
    }
    r->head_written = true;
    r->body_written = end;
    http_stream_resume_request_body(s); /* body bytes already buffered go out now */
}

static void router_attempt(router_req_t *r)
{
    http_stream_t *s = r->s;
    worker_t *w = r->w;
    const snap_cluster_t *cl = r->up.cluster;
    struct sockaddr_storage addr;
    r->attempts++;
    r->head_written = false;
    if (cluster_pick(cl, w->index, http_stream_original_dst(s), &addr, &r->up.endpoint) < 0) {
        stats_inc(w->stats, cl->st.upstream_cx_none_healthy);
        http_stream_local_reply(s, 503, "no healthy upstream", "UH");
        return;
    }
    r->endpoint_held = true;
    stats_inc(w->stats, cl->st.upstream_rq_total);
    memset(r->cs, 0, r->codec->state_size);
    bool ready = false;
    int rc = r->codec->start(r->cs, w, cl, r->up.endpoint, (const struct sockaddr *)&addr, r,
                             &router_events, &ready);
    if (rc < 0) {
        endpoint_done(r);
        if (rc == UV_EBUSY)
            http_stream_local_reply(s, 503, reason_overflow, "UO"); /* max_connections */
        else
            http_stream_local_reply(s, 503, reason_connect_failure, "UF");
        return;
    }
    r->started = true;
    if (ready)
        send_head(r);
}

void router_start(router_req_t *r, http_stream_t *s)
{
    r->s = s;
    r->w = http_stream_worker(s);
    r->req = http_stream_request_head(s);
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
    r->codec = cl->http2 ? &h2_upstream_codec : &h1_upstream_codec;
    r->cs = http_stream_alloc(s, r->codec->state_size);
    if (r->cs == NULL || (!r->req->connect && build_request_head(r) < 0)) {
        http_stream_local_reply(s, 500, "out of memory", "LR");
        return;
    }
    if (r->req->connect)
        r->out = *r->req;
    r->start_ms = http_stream_now(s);
    http_stream_set_deadline(s, rt->timeout_ms);
    router_attempt(r);
}

static void up_ready(void *owner)
{
    send_head(owner);
}

void router_request_body(router_req_t *r, const char *data, size_t len, bool end,
                         const http_headers_t *trailers)
{
    if (!r->started)
        return;
    if (r->codec->send_data(r->cs, data, len, end, trailers) < 0) {
        codec_gone(r);
        stats_inc(r->w->stats, r->up.cluster->st.upstream_rq_rx_reset);
        http_stream_local_reply(r->s, 503, reason_termination, "UC");
        return;
    }
    if (end)
        r->body_written = true;
    else if (r->codec->congested(r->cs))
        http_stream_pause_request_body(r->s);
}

static void up_drained(void *owner)
{
    router_req_t *r = owner;
    http_stream_resume_request_body(r->s); /* last step: whether the stream ended or not */
}

/* The response head: a 101 answering the upgrade starts the tunnel. */
static int up_head(void *owner, const http_response_head_t *head)
{
    router_req_t *r = owner;
    http_stream_t *s = r->s;
    r->response_headers_done = true;
    stats_inc(r->w->stats, r->up.cluster->st.upstream_rq_xx[head->status / 100 - 1]);
    if (http_stream_send_response_head(s, head) < 0)
        return HTTP_STREAM_ENDED;
    if (head->status != 101)
        return 0;
    if (http_stream_flush_response_head(s) < 0)
        return HTTP_STREAM_ENDED;
    http_stream_set_deadline(s, 0);
    r->tunnel = true;
    return http_stream_start_tunnel(s);
}

static int up_data(void *owner, const char *data, size_t len, bool end)
{
    router_req_t *r = owner;
    http_stream_t *s = r->s;
    if (r->tunnel)
        return http_stream_tunnel_data(s, data, len, end);
    if (end) {
        r->response_done = true;
        return http_stream_send_response_body(s, data, len, true);
    }
    if (http_stream_send_response_body(s, data, len, false) < 0)
        return HTTP_STREAM_ENDED;
    if (http_stream_downstream_congested(s))
        r->codec->pause(r->cs); /* resumed by router_downstream_drained */
    return 0;
}

static int up_trailers(void *owner, const http_headers_t *trailers)
{
    router_req_t *r = owner;
    r->response_done = true;
    return http_stream_send_response_trailers(r->s, trailers);
}

static void up_reset(void *owner, http_up_reset_t why, bool retryable)
{
    router_req_t *r = owner;
    http_stream_t *s = r->s;
    stats_slots_t *st = r->w->stats;
    const snap_cluster_t *cl = r->up.cluster;
    codec_gone(r);
    switch (why) {
    case HTTP_UP_CONNECT_FAILED:
        http_stream_local_reply(s, 503, reason_connect_failure, "UF");
        return;
    case HTTP_UP_BAD_HEAD:
        http_stream_local_reply(s, 502, "upstream sent an invalid response", "UPE");
        return;
    case HTTP_UP_BAD_BODY:
        http_stream_local_reply(s, 502, "upstream sent an invalid body", "UPE");
        return;
    case HTTP_UP_CLOSED:
        break;
    }
    stats_inc(st, cl->st.upstream_cx_destroy_remote_with_active_rq);
    /* The keep-alive race: a reused connection closed before any response byte. Replay once
     * on a fresh connection if nothing of a body was streamed (the head alone is replayable). */
    if (!r->response_headers_done && retryable && !r->req->has_body && r->attempts < 2) {
        stats_inc(st, cl->st.upstream_rq_retry);
        router_attempt(r);
        return;
    }
    /* Closed before the response's announced end: once the headers went out, the client must
     * not take what it got for the whole body, so it is reset. */
    stats_inc(st, cl->st.upstream_rq_rx_reset);
    http_stream_local_reply(s, 503, reason_termination, "UC");
}

int router_tunnel_write(router_req_t *r, const char *data, size_t len)
{
    if (!r->started)
        return -ENOTCONN;
    int rc = r->codec->send_data(r->cs, data, len, false, NULL);
    if (rc < 0) {
        codec_gone(r);
        return rc;
    }
    if (r->codec->congested(r->cs))
        http_stream_pause_request_body(r->s);
    return 0;
}

void router_downstream_drained(router_req_t *r)
{
    if (r->started)
        r->codec->resume(r->cs); /* last step: it may end the stream */
}

/* The request is over or abandoned: its connection goes back to the pool when the exchange
 * completed, and is closed otherwise, so the upstream sees a half-way abandon at once. */
static void finish_upstream(router_req_t *r)
{
    if (r->started) {
        r->started = false;
        if (!r->response_done && !r->tunnel) {
            stats_slots_t *st = r->w->stats;
            stats_inc(st, r->up.cluster->st.upstream_rq_tx_reset);
            stats_inc(st, r->up.cluster->st.upstream_cx_destroy_local_with_active_rq);
        }
        r->codec->release(r->cs, r->response_done);
    }
    endpoint_done(r);
}

void router_reset(router_req_t *r, http_reset_reason_t reason)
{
    if (reason == HTTP_RESET_TIMEOUT && r->up.cluster)
        stats_inc(r->w->stats, r->up.cluster->st.upstream_rq_timeout);
    finish_upstream(r);
}

void router_done(router_req_t *r)
{
    finish_upstream(r);
    if (r->rq_counted) {
        r->rq_counted = false;
        atomic_fetch_sub_explicit(&r->up.cluster->shared->rq_active, 1, memory_order_relaxed);
    }
}
