/* The HTTP/1.1 connection manager, downstream side: reads and parses requests (pipelined ones
 * in order), adds the proxy headers, matches the route, runs the HTTP filter chain whose last
 * filter is the router, and drives each stream to its end. It holds the parts of the stream API
 * that can end a stream (local replies, the response's end, tunnels), since a stream's end leads
 * on to the next request; the response's bytes are hcm_response.c's. Errors are answered like
 * Envoy: a status, a short body and an access-log response flag. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/time.h>

#include "proxy/http/hcm_conn.h"
#include "proxy/http/route_match.h"
#include "proxy/core/log.h"
#include "proxy/net/tls_io.h"

#define HCM_BODY_HEADROOM (64 * 1024)

static void hcm_process(hcm_conn_t *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void tls_pump(hcm_conn_t *c);
static void request_too_large(hcm_conn_t *c, http_stream_t *s);

/* A call of the stream API saw its stream end if streams_ended moved. */
static int stream_status(const hcm_conn_t *c, uint32_t ended)
{
    return c->streams_ended != ended ? HTTP_STREAM_ENDED : 0;
}

void http_stream_pause_request_body(http_stream_t *s)
{
    hcm_conn_t *c = s->conn;
    if (!c->paused) {
        c->paused = true;
        uv_read_stop((uv_stream_t *)c->tcp);
    }
}

int http_stream_resume_request_body(http_stream_t *s)
{
    hcm_conn_t *c = s->conn;
    uint32_t ended = c->streams_ended;
    s->body_resumed = true;
    hcm_resume(c);
    return stream_status(c, ended);
}

/* Starts reading again (if it was paused) and works through what is buffered. */
void hcm_resume(hcm_conn_t *c)
{
    if (c->state == HCM_CLOSING)
        return;
    if (c->paused) {
        c->paused = false;
        if (!c->read_eof)
            uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
    }
    if (c->tls)
        tls_pump(c); /* records read before the pause wait in the session */
    hcm_process(c);
}

/* ---- Upgrade tunnels -------------------------------------------------------------------- */

/* Either side ended the tunnel: log the stream, then close once queued bytes are out. Half-close
 * is not carried through a tunnel (the way tcp_proxy does it): an upgraded connection ends as a
 * whole. */
static void tunnel_end(hcm_conn_t *c)
{
    if (c->state != HCM_TUNNEL)
        return;
    c->close_after = true;
    c->state = HCM_IN_STREAM;
    c->stream.resp_done = true;
    hcm_finish_stream(c);
}

int http_stream_connect_established(http_stream_t *s)
{
    hcm_conn_t *c = s->conn;
    uv_buf_t ok = uv_buf_init("HTTP/1.1 200 OK\r\n\r\n", 19);
    s->status = 200;
    s->resp_started = true;
    if (hcm_down_write(c, &ok, 1) < 0) {
        s->flags = "DC";
        hcm_close(c, true);
        return HTTP_STREAM_ENDED;
    }
    hcm_set_deadline(c, 0);
    return http_stream_start_tunnel(s);
}

int http_stream_start_tunnel(http_stream_t *s)
{
    hcm_conn_t *c = s->conn;
    uint32_t ended = c->streams_ended;
    c->state = HCM_TUNNEL;
    s->req_body_done = true;
    hcm_set_deadline(c, c->cfg->idle_timeout_ms);
    hcm_resume(c); /* bytes the client sent after its request go up now */
    return stream_status(c, ended);
}

int http_stream_tunnel_data(http_stream_t *s, const char *data, size_t len, bool end)
{
    hcm_conn_t *c = s->conn;
    if (c->state != HCM_TUNNEL)
        return 0;
    if (len) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        s->bytes_out += len;
        c->last_activity = hcm_now(c);
        if (hcm_down_write(c, &b, 1) < 0) {
            s->flags = "DC";
            hcm_close(c, true);
            return HTTP_STREAM_ENDED;
        }
    }
    if (!end)
        return 0;
    tunnel_end(c);
    return HTTP_STREAM_ENDED;
}

/* Sends what the client sent to the upstream, through the filters. */
static void tunnel_feed(hcm_conn_t *c)
{
    http_stream_t *s = &c->stream;
    if (c->in.len) {
        size_t n = c->in.len;
        c->in.len = 0;
        s->bytes_in += n;
        int rc = hcm_filters_tunnel_data(s, c->in.data, n);
        if (rc == HTTP_STREAM_ENDED)
            return;
        if (rc < 0) {
            s->flags = "UC";
            tunnel_end(c);
            return;
        }
    }
    if (c->read_eof)
        tunnel_end(c);
}

/* ---- the response: the parts of the stream API that can end a stream -------------------- */

void http_stream_local_reply(http_stream_t *s, int status, const char *body, const char *flag)
{
    hcm_conn_t *c = s->conn;
    if (flag)
        s->flags = flag;
    if (s->resp_started) {
        /* Headers already went out: the only honest signal left is a reset. */
        hcm_close(c, true);
        return;
    }
    if (!s->req_body_done)
        c->close_after = true; /* the rest of the request body cannot be told from a next one */
    if (hcm_write_local_reply(s, status, body) < 0) {
        hcm_close(c, true);
        return;
    }
    hcm_finish_stream(c);
}

int http_stream_send_response_head(http_stream_t *s, const http_response_head_t *resp)
{
    hcm_conn_t *c = s->conn;
    uint32_t ended = c->streams_ended;
    int rc = hcm_build_response_head(s, resp);
    if (c->streams_ended != ended)
        return HTTP_STREAM_ENDED; /* a filter's response hook ended it */
    if (rc < 0) {
        http_stream_local_reply(s, 500, "out of memory\n", "LR");
        return HTTP_STREAM_ENDED;
    }
    return 0;
}

int http_stream_send_response_body(http_stream_t *s, const char *data, size_t len, bool end)
{
    if (hcm_write_response(s, data, len, end, NULL) < 0)
        return HTTP_STREAM_ENDED;
    if (!end)
        return 0;
    hcm_finish_stream(s->conn);
    return HTTP_STREAM_ENDED;
}

int http_stream_send_response_trailers(http_stream_t *s, const http_headers_t *trailers)
{
    if (hcm_write_response(s, NULL, 0, true, trailers) < 0)
        return HTTP_STREAM_ENDED;
    hcm_finish_stream(s->conn);
    return HTTP_STREAM_ENDED;
}

void http_stream_set_deadline(http_stream_t *s, uint64_t ms)
{
    hcm_set_deadline(s->conn, ms);
}

/* ---- stream lifecycle ------------------------------------------------------------------- */

void hcm_finish_stream(hcm_conn_t *c)
{
    if (!c->stream_active)
        return;
    hcm_end_stream(c, false);
    if (c->in_feeding) { /* the ended request's body up to the piece being fed: not a next one */
        memmove(c->in.data, c->in.data + c->in_feeding, c->in.len - c->in_feeding);
        c->in.len -= c->in_feeding;
        c->in_feeding = 0;
    }
    c->state = HCM_WAIT_HEAD;
    hcm_set_deadline(c, c->cfg->idle_timeout_ms);
    if (c->close_after) {
        hcm_close(c, false);
        return;
    }
    /* A pipelined request may already be buffered. */
    hcm_resume(c);
}

/* Slices of the head that pointed into the read buffer now point into the stream's copy. */
static const char *rebase(const char *p, const char *from, size_t len, const char *to)
{
    if (p >= from && p <= from + len)
        return to + (p - from);
    return p;
}

static void run_request_filters(hcm_conn_t *c, http_stream_t *s, size_t from)
{
    const hcm_config_t *cfg = c->cfg;
    bool end = !s->head.has_body || s->body_buffered;
    for (size_t i = from; i < cfg->n_filters; i++) {
        const hcm_filter_t *f = &cfg->filters[i];
        s->filters_run = i + 1;
        int rc = f->ops->on_request_headers
                     ? f->ops->on_request_headers(s, f->config, s->filter_state[i], end)
                     : FILTER_CONTINUE;
        if (!c->stream_active || s->resp_started)
            return; /* the filter answered */
        if (rc < 0) {
            http_stream_local_reply(s, 500, "filter error\n", "LR");
            return;
        }
        if (rc == FILTER_STOP)
            return;
    }
}

/* Every filter's per-stream state, zeroed, and the table that points at them: one arena
 * allocation per stream however many filters keep state (the router's included). */
static int alloc_filter_state(http_stream_t *s, const hcm_config_t *cfg)
{
    size_t table = ((cfg->n_filters + 1) * sizeof(void *) + 15) & ~(size_t)15;
    size_t states = 0;
    for (size_t i = 0; i < cfg->n_filters; i++)
        states += (cfg->filters[i].ops->state_size + 15) & ~(size_t)15;
    char *mem = arena_alloc(&s->arena, table + states);
    if (mem == NULL)
        return -ENOMEM;
    s->filter_state = (void **)mem;
    char *p = mem + table;
    memset(p, 0, states);
    for (size_t i = 0; i < cfg->n_filters; i++) {
        size_t sz = (cfg->filters[i].ops->state_size + 15) & ~(size_t)15;
        s->filter_state[i] = sz ? p : NULL;
        p += sz;
    }
    return 0;
}

/* An Upgrade whose type upgrade_configs enables: s->head.upgrade is its value, else stays
 * NULL. */
static void find_upgrade(const hcm_config_t *cfg, http_stream_t *s)
{
    const http_header_t *up = http_headers_find(&s->head.headers, "upgrade");
    for (size_t i = 0; up && i < cfg->n_upgrade_types; i++) {
        if (up->value_len == strlen(cfg->upgrade_types[i]) &&
            strncasecmp(up->value, cfg->upgrade_types[i], up->value_len) == 0) {
            s->head.upgrade = up->value;
            s->head.upgrade_len = up->value_len;
        }
    }
}

/* Copies the parsed head out of the read buffer into the stream (so the buffer can take body
 * bytes and the next request while the stream still reads its headers) and sets the stream's
 * protocol-neutral head from it. Returns 0 or -ENOMEM. */
static int take_head(hcm_conn_t *c, http_stream_t *s, const http1_request_t *parsed,
                     size_t head_len)
{
    s->head_copy = arena_alloc(&s->arena, head_len);
    uint32_t cap = parsed->headers.n + 16;
    http_header_t *hv = arena_alloc(&s->arena, cap * sizeof(*hv));
    if (s->head_copy == NULL || hv == NULL || alloc_filter_state(s, c->cfg) < 0)
        return -ENOMEM;
    memcpy(s->head_copy, c->in.data, head_len);
    s->req = *parsed;
    const char *b = c->in.data;
    char *to = s->head_copy;
    s->req.method = rebase(parsed->method, b, head_len, to);
    s->req.target = rebase(parsed->target, b, head_len, to);
    s->req.path = rebase(parsed->path, b, head_len, to);
    s->req.authority = rebase(parsed->authority, b, head_len, to);
    for (uint32_t i = 0; i < parsed->headers.n; i++) {
        hv[i] = parsed->headers.v[i];
        hv[i].name = rebase(hv[i].name, b, head_len, to);
        hv[i].value = rebase(hv[i].value, b, head_len, to);
    }
    s->head = (http_request_head_t){
        .method = s->req.method,
        .method_len = s->req.method_len,
        .path = s->req.path,
        .path_len = s->req.path_len,
        .authority = s->req.authority,
        .authority_len = s->req.authority_len,
        .headers = {.v = hv, .n = parsed->headers.n, .cap = cap},
        .content_length = s->req.body == HTTP1_BODY_LENGTH ? (int64_t)s->req.content_length : -1,
        .has_body = s->req.body != HTTP1_BODY_NONE,
        .proto = s->req.minor_version == 0 ? HTTP_PROTO_10 : HTTP_PROTO_11,
        .connect = s->req.connect,
    };
    s->req.headers = (http_headers_t){0}; /* the stream's list is head.headers */
    return 0;
}

static void start_stream(hcm_conn_t *c, const http1_request_t *parsed, size_t head_len)
{
    const hcm_config_t *cfg = c->cfg;
    http_stream_t *s = &c->stream;
    memset(s, 0, sizeof(*s));
    s->conn = c;
    s->flags = "-";
    s->start_ms = hcm_now(c);
    s->upstream_ms = -1;
    s->req_done_ms = -1;
    if (cfg->n_logs) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        s->start_us = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
    }
    c->stream_active = true;
    c->state = HCM_IN_STREAM;
    arena_init(&s->arena, &c->worker->arenas);
    stats_inc(c->worker->stats, cfg->st.downstream_rq_total);
    stats_inc(c->worker->stats, cfg->st.downstream_rq_active);

    if (take_head(c, s, parsed, head_len) < 0) {
        http_stream_local_reply(s, 500, "out of memory\n", "LR");
        return;
    }
    memmove(c->in.data, c->in.data + head_len, c->in.len - head_len);
    c->in.len -= head_len;
    http1_body_init(&s->req_body, s->req.body, s->req.content_length);
    s->req_body_done = s->req.body == HTTP1_BODY_NONE;
    if (s->req_body_done)
        s->req_done_ms = 0;
    if (!s->req.keep_alive)
        c->close_after = true;

    if (s->req.minor_version == 0 && !cfg->accept_http_10) {
        /* Envoy's default: HTTP/1.0 needs http_protocol_options.accept_http_10. */
        c->close_after = true;
        http_stream_local_reply(s, 426, "", NULL);
        return;
    }
    if (s->req.upgrade)
        find_upgrade(cfg, s);
    if ((s->req.connect && !cfg->connect_enabled) || (s->req.upgrade && s->head.upgrade == NULL)) {
        /* Envoy's answer when no upgrade_configs entry enables it. */
        http_stream_local_reply(s, 403, "upgrade or CONNECT is not enabled\n", NULL);
        return;
    }
    if (s->req.expect_continue) {
        /* Like Envoy (proxy_100_continue off): answer 100 ourselves, drop the expectation. */
        http_headers_remove(&s->head.headers, "expect");
        uv_buf_t cont = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
        hcm_down_write(c, &cont, 1);
    }
    hcm_add_proxy_headers(c, s);
    route_request_t q = {.authority = s->head.authority,
                         .authority_len = s->head.authority_len,
                         .path = s->head.path,
                         .path_len = s->head.path_len,
                         .method = s->head.method,
                         .method_len = s->head.method_len,
                         .headers = &s->head.headers};
    s->route = route_match(cfg->routes, &q, &s->vhost);
    if (s->route == NULL) {
        stats_inc(c->worker->stats, cfg->st.no_route);
        http_stream_local_reply(s, 404, "", "NR");
        return;
    }
    if (s->route->action == ROUTE_ACTION_DIRECT_RESPONSE) {
        stats_inc(c->worker->stats, cfg->st.rq_direct_response);
        char *body = s->route->direct_body ? arena_strndup(&s->arena, s->route->direct_body,
                                                           s->route->direct_body_len)
                                           : NULL;
        http_stream_local_reply(s, (int)s->route->direct_status, body, NULL);
        return;
    }
    run_request_filters(c, s, 0);
}

int http_stream_buffer_body(http_stream_t *s, size_t max_bytes)
{
    if (s->req_body_done)
        return 1;
    hcm_conn_t *c = s->conn;
    if (s->req.body == HTTP1_BODY_LENGTH && s->req.content_length > max_bytes) {
        request_too_large(c, s); /* no need to read it to know */
        return 0;
    }
    s->buffering = true;
    s->buffer_max = max_bytes;
    s->resume_filter = s->filters_run; /* the filter after the caller */
    return 0;
}

/* Envoy's buffer filter answer: the rest of the body is not read, so the connection closes. */
static void request_too_large(hcm_conn_t *c, http_stream_t *s)
{
    stats_inc(c->worker->stats, c->cfg->st.downstream_rq_too_large);
    s->buffering = false;
    c->close_after = true;
    http_stream_local_reply(s, 413, "Payload Too Large", NULL);
}

/* Why a request-body sink stopped http1_body_pump. */
enum {
    BODY_PAUSED = 1, /* reading paused for backpressure: the rest waits for hcm_resume */
    BODY_COMPLETE,   /* buffering: the whole body is in s->body */
    BODY_ENDED,      /* the sink answered or the stream ended: the buffer is not ours to touch */
};

/* Drops the first n bytes of the read buffer: decoded and handed on. */
static void in_consume(hcm_conn_t *c, size_t n)
{
    if (n < c->in.len) /* else all of it: nothing is left to move */
        memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
}

/* One piece of a body being buffered: copied into s->body, which doubles up to the limit. */
static int buffer_piece(void *arg, const http1_body_piece_t *p)
{
    hcm_conn_t *c = arg;
    http_stream_t *s = &c->stream;
    if (s->body_len + p->len > s->buffer_max) {
        in_consume(c, p->offset); /* the pieces before this one are taken, this one is not */
        request_too_large(c, s);
        return BODY_ENDED;
    }
    if (s->body_len + p->len > s->body_cap) {
        size_t cap = s->body_cap ? s->body_cap : 4096;
        while (cap < s->body_len + p->len)
            cap *= 2;
        char *b = realloc(s->body, cap > s->buffer_max ? s->buffer_max : cap);
        if (b == NULL) {
            in_consume(c, p->offset);
            s->buffering = false;
            http_stream_local_reply(s, 500, "out of memory\n", "LR");
            return BODY_ENDED;
        }
        s->body = b;
        s->body_cap = cap > s->buffer_max ? s->buffer_max : cap;
    }
    if (p->len)
        memcpy(s->body + s->body_len, p->data, p->len);
    s->body_len += p->len;
    s->bytes_in += p->used;
    return p->done ? BODY_COMPLETE : 0;
}

/* Collects the request body for a filter that asked for all of it (http_stream_buffer_body). */
static void buffer_body(hcm_conn_t *c)
{
    http_stream_t *s = &c->stream;
    if (s->buffering && c->in.len > 0) {
        size_t used;
        int rc = http1_body_pump(&s->req_body, c->in.data, c->in.len, buffer_piece, c, &used);
        if (rc == BODY_ENDED)
            return;
        in_consume(c, used);
        if (rc == HTTP1_E_BAD) {
            s->buffering = false;
            c->close_after = true;
            http_stream_local_reply(s, 400, "bad request body framing\n", "DPE");
            return;
        }
        if (rc == BODY_COMPLETE) {
            /* Trailers of a chunked body cannot follow a Content-Length: they stay here. */
            s->buffering = false;
            s->body_buffered = true;
            s->req_body_done = true;
            s->req_done_ms = (int64_t)(hcm_now(c) - s->start_ms);
            s->req.body = HTTP1_BODY_LENGTH;
            s->req.content_length = s->body_len;
            s->head.content_length = (int64_t)s->body_len;
            run_request_filters(c, s, s->resume_filter);
            return;
        }
    }
    if (s->buffering && c->read_eof) {
        s->flags = "DC"; /* the client stopped sending in the middle of the body */
        hcm_close(c, true);
    }
}

static int parse_error_status(int rc)
{
    switch (rc) {
    case HTTP1_E_HEAD_TOO_LARGE:
        return 431;
    case HTTP1_E_NOT_IMPLEMENTED:
        return 501;
    case HTTP1_E_VERSION:
        return 505;
    default:
        return 400;
    }
}

/* Answers a request that could not be parsed, then closes: the framing is lost. */
static void protocol_error(hcm_conn_t *c, int rc, const char *why)
{
    stats_inc(c->worker->stats, c->cfg->st.downstream_cx_protocol_error);
    int status = parse_error_status(rc);
    if (status == 431)
        stats_inc(c->worker->stats, c->cfg->st.downstream_rq_too_large);
    log_debug("hcm: rejecting request: %s", why ? why : "malformed");
    char body[160];
    snprintf(body, sizeof(body), "%s\n", why ? why : "bad request");
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\ncontent-length: %zu\r\ncontent-type: text/plain\r\n"
                     "connection: close\r\n\r\n",
                     status, http1_reason(status), strlen(body));
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n), uv_buf_init(body, (unsigned)strlen(body))};
    stats_inc(c->worker->stats, c->cfg->st.downstream_rq_xx[status / 100 - 1]);
    hcm_down_write(c, bufs, 2);
    hcm_close(c, false);
}

/* One piece of the request body to the filters (the router sends it upstream). */
static int feed_piece(void *arg, const http1_body_piece_t *p)
{
    hcm_conn_t *c = arg;
    http_stream_t *s = &c->stream;
    s->bytes_in += p->used;
    if (p->done) {
        s->req_body_done = true;
        s->req_done_ms = (int64_t)(hcm_now(c) - s->start_ms);
    }
    if (p->len || p->done) {
        /* Should the stream end inside the call (its upstream failed), the bytes up to the end
         * of this piece are its own and are dropped with it, never read as the next request's. */
        c->in_feeding = p->offset + p->used;
        int rc = hcm_filters_request_body(s, p->data, p->len, p->done, p->trailers);
        c->in_feeding = 0;
        if (rc == HTTP_STREAM_ENDED || c->state == HCM_CLOSING)
            return BODY_ENDED;
        if (rc < 0) {
            in_consume(c, p->offset); /* the pieces before this one are taken, this one is not */
            http_stream_local_reply(s, 500, "filter error\n", "LR");
            return BODY_ENDED;
        }
    }
    return c->paused ? BODY_PAUSED : 0;
}

/* Feeds buffered request body bytes to the filters, until reading pauses or the body ends. */
static void feed_body(hcm_conn_t *c)
{
    http_stream_t *s = &c->stream;
    if (!s->req_body_done && c->in.len > 0 && !c->paused) {
        size_t used;
        int rc = http1_body_pump(&s->req_body, c->in.data, c->in.len, feed_piece, c, &used);
        if (rc == BODY_ENDED)
            return;
        /* The filters copied or wrote what they needed; drop the consumed bytes. */
        in_consume(c, used);
        if (rc == HTTP1_E_BAD) {
            http_stream_local_reply(s, 400, "bad request body framing\n", "DPE");
            c->close_after = true;
            return;
        }
    }
    if (c->stream_active && !s->req_body_done && c->read_eof) {
        /* The client stopped sending in the middle of the body. */
        s->flags = "DC";
        hcm_close(c, true);
    }
}

static void hcm_process(hcm_conn_t *c)
{
    while (c->state != HCM_CLOSING) {
        if (c->state == HCM_WAIT_HEAD) {
            if (c->in.len == 0 && c->read_eof) {
                hcm_close(c, false);
                return;
            }
            if (c->in.len == 0)
                break;
            if (c->snap != c->worker->snap)
                hcm_rebind(c); /* a request starts: it runs with the newest config */
            http_header_t hv[256];
            http1_request_t req;
            memset(&req, 0, sizeof(req));
            req.headers.v = hv;
            req.headers.cap = c->cfg->max_headers < 256 ? c->cfg->max_headers : 256;
            int rc = http1_parse_request(c->in.data, c->in.len, c->cfg->max_head_bytes, &req);
            if (rc == HTTP1_INCOMPLETE && c->read_eof) {
                hcm_close(c, false); /* a partial request and no more bytes will come */
                return;
            }
            if (rc == HTTP1_INCOMPLETE)
                break;
            if (rc < 0) {
                protocol_error(c, rc, req.error);
                return;
            }
            start_stream(c, &req, (size_t)rc);
            continue;
        }
        if (c->state == HCM_TUNNEL) {
            tunnel_feed(c);
            break;
        }
        if (c->state == HCM_IN_STREAM) {
            if (c->stream.buffering) {
                buffer_body(c);
                break;
            }
            /* Body bytes go upstream once the request head has. */
            if (!c->stream.req_body_done && c->stream.body_resumed)
                feed_body(c);
            break; /* the next pipelined request waits for this response */
        }
    }
}

/* ---- reading ---------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    hcm_conn_t *c = h->data;
    if (c->tls) {
        tls_io_alloc(c->tls, buf);
        return;
    }
    size_t room =
        conn_buf_reserve(&c->worker->pool, &c->in, c->cfg->max_head_bytes + HCM_BODY_HEADROOM);
    *buf = uv_buf_init(c->in.data ? c->in.data + c->in.len : NULL, (unsigned)room);
}

/* nread > 0 plaintext bytes were appended at c->in.data + c->in.len; or the read ended. */
static void hcm_input(hcm_conn_t *c, ssize_t nread)
{
    uv_stream_t *stream = (uv_stream_t *)c->tcp;
    if (nread == UV_ENOBUFS) {
        /* The buffer is full: a head larger than the limit, or a pipelining client far ahead
         * of us. Stop reading until the current stream frees room. */
        if (c->state == HCM_WAIT_HEAD) {
            protocol_error(c, HTTP1_E_HEAD_TOO_LARGE, "request headers too large");
            return;
        }
        uv_read_stop(stream);
        c->paused = true;
        return;
    }
    if (nread < 0 && nread != UV_EOF) {
        if (c->stream_active)
            c->stream.flags = "DC";
        hcm_close(c, true);
        return;
    }
    if (nread < 0 && c->state == HCM_TUNNEL) {
        c->read_eof = true;
        uv_read_stop(stream);
        hcm_process(c);
        return;
    }
    if (nread < 0) {
        if (c->stream_active) {
            /* The client closed while its request is in flight: as Envoy does, that ends the
             * request (DC) and resets its upstream side at once, rather than letting the
             * upstream work on for nobody (and hold up a drain). HTTP/1 clients do not
             * half-close to mark the end of a request: its framing does. */
            c->stream.flags = "DC";
            hcm_close(c, true);
        } else if (c->in.len > 0) {
            /* A partial head and no more bytes to come: closes in hcm_process. */
            c->read_eof = true;
            uv_read_stop(stream);
            hcm_process(c);
        } else {
            hcm_close(c, false);
        }
        return;
    }
    c->in.len += (size_t)nread;
    c->last_activity = hcm_now(c);
    if (c->state == HCM_IN_STREAM && c->stream.req_body_done &&
        c->in.len > c->cfg->max_head_bytes) {
        uv_read_stop(stream); /* enough pipelined bytes buffered */
        c->paused = true;
    }
    hcm_process(c);
    if (c->state != HCM_CLOSING)
        conn_buf_trim(&c->worker->pool, &c->in); /* idle connections hold no buffer */
}

/* Decrypts what the TLS session holds into c->in and processes it, as long as reading is on. */
static void tls_pump(hcm_conn_t *c)
{
    while (c->state != HCM_CLOSING && !c->paused && !c->read_eof) {
        size_t room =
            conn_buf_reserve(&c->worker->pool, &c->in, c->cfg->max_head_bytes + HCM_BODY_HEADROOM);
        if (room == 0) {
            hcm_input(c, UV_ENOBUFS);
            return;
        }
        ssize_t n = tls_io_decrypt(c->tls, c->in.data + c->in.len, room);
        if (n == 0) {
            conn_buf_trim(&c->worker->pool, &c->in);
            return;
        }
        hcm_input(c, n < 0 && n != UV_EOF ? UV_EPROTO : n);
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    hcm_conn_t *c = stream->data;
    if (nread == 0)
        return;
    if (c->tls == NULL || nread < 0) {
        hcm_input(c, nread);
        return;
    }
    tls_io_received(c->tls, (size_t)nread);
    tls_pump(c);
}

/* ---- timers and close ------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    hcm_conn_t *c = t->data;
    c->timer_due_ms = 0;
    if (c->deadline_ms == 0)
        return;
    uint64_t now = hcm_now(c);
    if (now < c->deadline_ms) { /* the deadline moved later since the timer was armed */
        c->timer_due_ms = c->deadline_ms;
        uv_timer_start(&c->timer, on_timer, c->deadline_ms - now, 0);
        return;
    }
    c->deadline_ms = 0;
    if (c->state == HCM_TUNNEL) {
        uint64_t idle = hcm_now(c) - c->last_activity;
        if (idle < c->cfg->idle_timeout_ms) {
            hcm_set_deadline(c, c->cfg->idle_timeout_ms - idle);
            return;
        }
        tunnel_end(c);
        return;
    }
    if (c->stream_active) {
        http_stream_t *s = &c->stream;
        stats_inc(c->worker->stats, c->cfg->st.downstream_rq_timeout);
        hcm_filters_reset(s, HTTP_RESET_TIMEOUT);
        http_stream_local_reply(s, 504, "upstream request timeout", "UT");
        return;
    }
    hcm_close(c, false); /* idle */
}

/* Every request moves the deadline (route timeout, then idle timeout), so the timer is armed
 * lazily: a later deadline is only recorded, and a timer that fires early re-arms itself for
 * it. Per request that is a store, not two timer-heap operations. */
void hcm_set_deadline(hcm_conn_t *c, uint64_t ms)
{
    if (ms == 0) {
        c->deadline_ms = 0;
        return;
    }
    uint64_t due = hcm_now(c) + ms;
    c->deadline_ms = due;
    if (c->timer_due_ms == 0 || due < c->timer_due_ms) {
        c->timer_due_ms = due;
        uv_timer_start(&c->timer, on_timer, ms, 0);
    }
}

/* Idle keep-alive connections close now; busy ones answer their current request with
 * "connection: close" and close after it, as Envoy does while draining. */
void hcm_drain_conn(hcm_conn_t *c)
{
    if (c->state == HCM_WAIT_HEAD && c->in.len == 0)
        hcm_close(c, false);
    else
        c->close_after = true;
}

void hcm_drain_all(worker_t *w)
{
    hcm_conn_t *c = w->hcm_conns, *next;
    for (; c; c = next) {
        next = c->next;
        hcm_drain_conn(c);
    }
}

void hcm_abort_all(worker_t *w)
{
    while (w->hcm_conns) {
        hcm_conn_t *c = w->hcm_conns;
        if (c->stream_active && strcmp(c->stream.flags, "-") == 0)
            c->stream.flags = "LR"; /* reset here, at the drain deadline or a quit */
        hcm_close(c, true);
    }
}

int hcm_start(accepted_conn_t *ac, const hcm_config_t *cfg)
{
    worker_t *w = ac->worker;
    hcm_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->tcp = ac->tcp;
    c->tcp->data = c;
    c->worker = w;
    c->snap = snapshot_ref(ac->snap);
    c->listener = ac->listener;
    c->chain = ac->chain;
    c->wl = ac->wl;
    c->cfg = cfg;
    c->state = HCM_WAIT_HEAD;
    /* Its listener went away while protocol detection or TLS held it: serve what it sent and
     * close after, as the connections that were here already do. */
    c->close_after = listener_retired(ac->wl);
    if (c->close_after)
        c->drain_due_ms = worker_drain_deadline(w);
    if (ac->initial_len) {
        /* The detection slab becomes the read buffer as it is. */
        c->in = (conn_buf_t){.data = ac->initial, .len = ac->initial_len, .cap = BUFPOOL_SLAB_SIZE};
    } else {
        bufpool_put(&w->pool, ac->initial);
    }
    ac->initial = NULL;
    if (ac->tls) {
        c->tls = ac->tls;
        ac->tls = NULL;
        c->tls_own_id = tls_config_spiffe_id(ac->chain->tls->engine);
        tls_io_attach(c->tls, c, hcm_on_tls_written);
    }
    if (cfg->use_remote_address) {
        struct sockaddr_storage peer;
        int plen = sizeof(peer);
        if (uv_tcp_getpeername(c->tcp, (struct sockaddr *)&peer, &plen) == 0) {
            char text[80];
            snapshot_format_addr((struct sockaddr *)&peer, text, sizeof(text));
            char *colon = strrchr(text, ':'); /* the address without the port */
            if (colon)
                *colon = '\0';
            snprintf(c->peer, sizeof(c->peer), "%s", text[0] == '[' ? text + 1 : text);
            size_t n = strlen(c->peer);
            if (n && c->peer[n - 1] == ']')
                c->peer[n - 1] = '\0';
        }
    }
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    c->next = w->hcm_conns;
    if (w->hcm_conns)
        w->hcm_conns->prev = c;
    w->hcm_conns = c;
    stats_inc(w->stats, cfg->st.downstream_cx_total);
    stats_inc(w->stats, cfg->st.downstream_cx_active);
    memcpy(&c->orig_dst, &ac->orig_dst, sizeof(c->orig_dst));
    uv_tcp_nodelay(c->tcp, 1);
    uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
    hcm_set_deadline(c, cfg->idle_timeout_ms);
    if (c->tls)
        tls_pump(c); /* requests sent right behind the handshake */
    hcm_process(c);
    return 0;
}
