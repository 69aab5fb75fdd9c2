/* The stream as filters see it: the read-only part of the stream API (the request, its route,
 * the stream's arena, worker and clock) and the calls into the filters' hooks, made through
 * their ops tables for every filter that has the hook and whose request hooks ran. */
#include <string.h>

#include "proxy/http/hcm_conn.h"

uint64_t hcm_now(const hcm_conn_t *c)
{
    return uv_now((uv_loop_t *)&c->worker->loop);
}

/* ---- the stream API's read-only part ----------------------------------------------------- */

const http_request_head_t *http_stream_request_head(const http_stream_t *s)
{
    return &s->head;
}

const route_entry_t *http_stream_route(const http_stream_t *s, const route_vhost_t **vhost)
{
    if (vhost)
        *vhost = s->vhost;
    return s->route;
}

const route_table_t *http_stream_route_table(const http_stream_t *s)
{
    return s->cfg->routes;
}

const char *http_stream_buffered_body(const http_stream_t *s, size_t *len)
{
    *len = s->body_buffered ? s->body_len : 0;
    if (!s->body_buffered)
        return NULL;
    return s->body ? s->body : ""; /* an empty body was buffered too */
}

const struct sockaddr *http_stream_original_dst(const http_stream_t *s)
{
    return (const struct sockaddr *)&s->conn->orig_dst;
}

void *http_stream_alloc(http_stream_t *s, size_t size)
{
    return arena_alloc(&s->arena, size);
}

struct worker *http_stream_worker(const http_stream_t *s)
{
    return s->conn->worker;
}

uint64_t http_stream_now(const http_stream_t *s)
{
    return hcm_now(s->conn);
}

void http_stream_count(http_stream_t *s, http_stream_stat_t which)
{
    const hcm_config_t *cfg = s->cfg;
    switch (which) {
    case HTTP_STREAM_STAT_NO_CLUSTER:
        stats_inc(s->conn->worker->stats, cfg->st.no_cluster);
        break;
    }
}

void http_stream_set_upstream(http_stream_t *s, const http_upstream_info_t *info)
{
    s->upstream = info;
}

/* ---- the filters' hooks ------------------------------------------------------------------ */

/* A hook may end the stream (a local reply, a reset): then the filters' state is gone and the
 * iteration stops. */
static bool ended_since(const http_stream_t *s, uint32_t serial)
{
    return hcm_stream_gone(s, serial);
}

int hcm_filters_request_body(http_stream_t *s, const char *data, size_t len, bool end,
                             const http_headers_t *trailers)
{
    const hcm_config_t *cfg = s->cfg;
    uint32_t ended = s->serial;
    for (size_t i = 0; i < s->filters_run; i++) {
        const hcm_filter_t *f = &cfg->filters[i];
        if (f->ops->on_request_body == NULL)
            continue;
        int rc =
            f->ops->on_request_body(s, f->config, s->filter_state[i], data, len, end, trailers);
        if (ended_since(s, ended))
            return HTTP_STREAM_ENDED;
        if (rc <= 0)
            return rc; /* taken (the terminal filter), or an error */
    }
    return 0;
}

int hcm_filters_response_headers(http_stream_t *s, bool end_stream)
{
    const hcm_config_t *cfg = s->cfg;
    uint32_t ended = s->serial;
    for (size_t i = s->filters_run; i-- > 0;) {
        const hcm_filter_t *f = &cfg->filters[i];
        if (f->ops->on_response_headers == NULL)
            continue;
        f->ops->on_response_headers(s, f->config, s->filter_state[i], end_stream);
        if (ended_since(s, ended))
            return HTTP_STREAM_ENDED;
    }
    return 0;
}

void hcm_filters_downstream_drained(http_stream_t *s)
{
    const hcm_config_t *cfg = s->cfg;
    uint32_t ended = s->serial;
    for (size_t i = 0; i < s->filters_run; i++) {
        const hcm_filter_t *f = &cfg->filters[i];
        if (f->ops->on_downstream_drained == NULL)
            continue;
        f->ops->on_downstream_drained(s, f->config, s->filter_state[i]);
        if (ended_since(s, ended))
            return;
    }
}

int hcm_filters_tunnel_data(http_stream_t *s, const char *data, size_t len)
{
    const hcm_config_t *cfg = s->cfg;
    uint32_t ended = s->serial;
    for (size_t i = 0; i < s->filters_run; i++) {
        const hcm_filter_t *f = &cfg->filters[i];
        if (f->ops->on_tunnel_data == NULL)
            continue;
        int rc = f->ops->on_tunnel_data(s, f->config, s->filter_state[i], data, len);
        if (ended_since(s, ended))
            return HTTP_STREAM_ENDED;
        if (rc < 0)
            return rc;
    }
    return 0;
}

void hcm_filters_reset(http_stream_t *s, http_reset_reason_t reason)
{
    const hcm_config_t *cfg = s->cfg;
    for (size_t i = 0; i < s->filters_run; i++) {
        const hcm_filter_t *f = &cfg->filters[i];
        if (f->ops->on_reset)
            f->ops->on_reset(s, f->config, s->filter_state[i], reason);
    }
}

void hcm_filters_done(http_stream_t *s)
{
    const hcm_config_t *cfg = s->cfg;
    size_t n = s->filters_run;
    s->filters_run = 0; /* once, even if a done hook ends up here again */
    for (size_t i = 0; i < n; i++) {
        const hcm_filter_t *f = &cfg->filters[i];
        if (f->ops->done)
            f->ops->done(s, f->config, s->filter_state[i]);
    }
}
