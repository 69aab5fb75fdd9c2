/* The request path of a stream, whatever its codec: a stream's start (its counters, clock and
 * filter state), the connection manager's checks (CONNECT and upgrades enabled), the proxy
 * headers, the route, the filter chain's request hooks, and its body: held whole for a filter
 * that asked (envoy.filters.http.buffer) or handed to the filters as it comes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/time.h>

#include "proxy/http/hcm_codec.h"
#include "proxy/http/route_match.h"

void hcm_run_request_filters(http_stream_t *s, size_t from)
{
    const hcm_config_t *cfg = s->cfg;
    uint32_t serial = s->serial;
    bool end = !s->head.has_body || s->body_buffered;
    for (size_t i = from; i < cfg->n_filters; i++) {
        const hcm_filter_t *f = &cfg->filters[i];
        s->filters_run = i + 1;
        int rc = f->ops->on_request_headers
                     ? f->ops->on_request_headers(s, f->config, s->filter_state[i], end)
                     : FILTER_CONTINUE;
        if (hcm_stream_gone(s, serial) || s->resp_started)
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

/* Envoy's buffer filter answer: the rest of the body is not read, so the connection closes. */
static void request_too_large(http_stream_t *s)
{
    hcm_conn_t *c = s->conn;
    stats_inc(c->worker->stats, s->cfg->st.downstream_rq_too_large);
    s->buffering = false;
    c->close_after = true;
    http_stream_local_reply(s, 413, "Payload Too Large", NULL);
}

/* Memory for a new stream: stream0 when it is free (always, for HTTP/1.1), else one the
 * connection kept, else a new one. */
static http_stream_t *stream_memory(hcm_conn_t *c)
{
    if (!c->stream0_used) {
        c->stream0_used = true;
        return &c->stream0;
    }
    http_stream_t *s = c->free_streams;
    if (s) {
        c->free_streams = s->next;
        return s;
    }
    return malloc(sizeof(*s));
}

http_stream_t *hcm_stream_begin(hcm_conn_t *c)
{
    const hcm_config_t *cfg = c->cfg;
    http_stream_t *s = stream_memory(c);
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->conn = c;
    s->cfg = cfg;
    if (++c->next_serial == 0)
        c->next_serial = 1;
    s->serial = c->next_serial;
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->n_streams++;
    c->idle_due_ms = 0; /* a stream's timeouts are its own */
    s->flags = "-";
    s->start_ms = hcm_now(c);
    s->upstream_ms = -1;
    s->req_done_ms = -1;
    s->grpc_status = -1;
    if (cfg->n_logs) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        s->start_us = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
    }
    c->state = HCM_IN_STREAM;
    arena_init(&s->arena, &c->worker->arenas);
    stats_inc(c->worker->stats, cfg->st.downstream_rq_total);
    stats_inc(c->worker->stats, cfg->st.downstream_rq_active);
    if (alloc_filter_state(s, cfg) < 0) {
        http_stream_local_reply(s, 500, "out of memory\n", "LR");
        return NULL;
    }
    return s;
}

/* Whether upgrade_configs enables the upgrade type (case-insensitive). */
static bool upgrade_enabled(const hcm_config_t *cfg, const char *type, uint32_t len)
{
    for (size_t i = 0; i < cfg->n_upgrade_types; i++)
        if (len == strlen(cfg->upgrade_types[i]) &&
            strncasecmp(type, cfg->upgrade_types[i], len) == 0)
            return true;
    return false;
}

int hcm_stream_permit(http_stream_t *s)
{
    const hcm_config_t *cfg = s->cfg;
    if ((s->head.connect && !cfg->connect_enabled) ||
        (s->head.upgrade && !upgrade_enabled(cfg, s->head.upgrade, s->head.upgrade_len))) {
        s->head.upgrade = NULL;
        /* Envoy's answer when no upgrade_configs entry enables it. */
        http_stream_local_reply(s, 403, "upgrade or CONNECT is not enabled\n", NULL);
        return HTTP_STREAM_ENDED;
    }
    return 0;
}

void hcm_stream_pin(http_stream_t *s)
{
    if (s->snap == NULL)
        s->snap = snapshot_ref(s->conn->snap);
}

int hcm_grpc_status(const http_stream_t *s, int http_status)
{
    if (http_status == 504 && strcmp(s->flags, "UT") == 0)
        return 4; /* DEADLINE_EXCEEDED */
    switch (http_status) {
    case 400:
        return 13; /* INTERNAL */
    case 401:
        return 16; /* UNAUTHENTICATED */
    case 403:
        return 7; /* PERMISSION_DENIED */
    case 404:
        return 12; /* UNIMPLEMENTED */
    case 429:
    case 502:
    case 503:
    case 504:
        return 14; /* UNAVAILABLE */
    default:
        return 2; /* UNKNOWN */
    }
}

const char *hcm_grpc_message(http_stream_t *s, const char *body, size_t *len)
{
    size_t n = body ? strlen(body) : 0;
    while (n && (body[n - 1] == '\n' || body[n - 1] == '\r'))
        n--;
    char *out = http_stream_alloc(s, n * 3 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)body[i];
        if (ch >= 0x20 && ch <= 0x7e && ch != '%') {
            out[o++] = (char)ch;
        } else {
            static const char hex[] = "0123456789ABCDEF";
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    *len = o;
    return out;
}

void hcm_stream_headers(http_stream_t *s)
{
    hcm_conn_t *c = s->conn;
    const hcm_config_t *cfg = s->cfg;
    const http_header_t *ct = http_headers_find(&s->head.headers, "content-type");
    s->grpc = ct && ct->value_len >= 16 && strncasecmp(ct->value, "application/grpc", 16) == 0;
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
    hcm_run_request_filters(s, 0);
}

int http_stream_buffer_body(http_stream_t *s, size_t max_bytes)
{
    if (s->req_body_done)
        return 1;
    if (s->head.content_length >= 0 && (uint64_t)s->head.content_length > max_bytes) {
        request_too_large(s); /* no need to read it to know */
        return 0;
    }
    s->buffering = true;
    s->buffer_max = max_bytes;
    s->resume_filter = s->filters_run; /* the filter after the caller */
    return 0;
}

bool hcm_stream_wants_body(const http_stream_t *s)
{
    return s->buffering || s->body_resumed;
}

void hcm_stream_client_gone(http_stream_t *s)
{
    s->flags = "DC";
    hcm_close(s->conn, true);
}

/* Body bytes into s->body, which doubles up to the limit. Returns 0 or HTTP_STREAM_ENDED (413,
 * or 500 when memory is exhausted). */
static int buffer_bytes(http_stream_t *s, const char *data, size_t len)
{
    if (s->body_len + len > s->buffer_max) {
        request_too_large(s);
        return HTTP_STREAM_ENDED;
    }
    if (s->body_len + len > s->body_cap) {
        size_t cap = s->body_cap ? s->body_cap : 4096;
        while (cap < s->body_len + len)
            cap *= 2;
        char *b = realloc(s->body, cap > s->buffer_max ? s->buffer_max : cap);
        if (b == NULL) {
            s->buffering = false;
            http_stream_local_reply(s, 500, "out of memory\n", "LR");
            return HTTP_STREAM_ENDED;
        }
        s->body = b;
        s->body_cap = cap > s->buffer_max ? s->buffer_max : cap;
    }
    if (len)
        memcpy(s->body + s->body_len, data, len);
    s->body_len += len;
    return 0;
}

int hcm_stream_body(http_stream_t *s, const char *data, size_t len, size_t used, bool end,
                    const http_headers_t *trailers)
{
    hcm_conn_t *c = s->conn;
    s->bytes_in += used;
    if (end) {
        s->req_body_done = true;
        s->req_done_ms = (int64_t)(hcm_now(c) - s->start_ms);
    }
    if (s->buffering) {
        if (buffer_bytes(s, data, len) < 0)
            return HTTP_STREAM_ENDED;
        if (!end)
            return 0;
        /* Complete: it leaves with the head, with a Content-Length (trailers of a chunked body
         * cannot follow one: they stay here), and the filters after the buffering one run. */
        s->buffering = false;
        s->body_buffered = true;
        s->head.content_length = (int64_t)s->body_len;
        uint32_t serial = s->serial;
        hcm_run_request_filters(s, s->resume_filter);
        return hcm_stream_gone(s, serial) ? HTTP_STREAM_ENDED : 0;
    }
    if (len || end) {
        uint32_t serial = s->serial;
        int rc = hcm_filters_request_body(s, data, len, end, trailers);
        if (rc == HTTP_STREAM_ENDED || hcm_stream_gone(s, serial) || c->state == HCM_CLOSING)
            return HTTP_STREAM_ENDED;
        if (rc < 0) {
            http_stream_local_reply(s, 500, "filter error\n", "LR");
            return HTTP_STREAM_ENDED;
        }
    }
    return c->paused ? HCM_BODY_PAUSED : 0;
}
