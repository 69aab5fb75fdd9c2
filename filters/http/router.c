/* envoy.filters.http.router: the terminal HTTP filter. Its config is its own
 * (suppress_envoy_headers); its per-stream state is the upstream request
 * (proxy/http/upstream_request.c), which its hooks drive and which speaks to the stream only
 * through the stream API. */
#include <errno.h>
#include <stdlib.h>

#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "proxy/http/http_filter.h"
#include "proxy/http/upstream_request.h"
#include "xds/config/config.h"

typedef struct router_config {
    bool suppress_envoy_headers; /* no x-envoy-upstream-service-time on responses */
} router_config_t;

static int router_config_parse(const void *any, const struct snapshot *snap, stats_store_t *stats,
                               void **out, char *err, size_t errlen)
{
    (void)snap;
    (void)stats;
    *out = NULL;
    if (any == NULL)
        return 0;
    ProtobufCMessage *msg = NULL;
    int rc = config_any_unpack(
        any, &envoy__extensions__filters__http__router__v3__router__descriptor, &msg, err, errlen);
    if (rc < 0)
        return rc;
    const Envoy__Extensions__Filters__Http__Router__V3__Router *r = (const void *)msg;
    /* Only suppress_envoy_headers changes behaviour; the other fields are validated and
     * dropped (docs/http.md). Without it no config is kept: the defaults apply. */
    if (r->suppress_envoy_headers) {
        router_config_t *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            protobuf_c_message_free_unpacked(msg, NULL);
            return -ENOMEM;
        }
        c->suppress_envoy_headers = true;
        *out = c;
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    return 0;
}

static void router_config_free(void *config)
{
    free(config);
}

static int router_on_request_headers(http_stream_t *s, const void *config, void *state, bool end)
{
    (void)config;
    (void)end;
    router_start(state, s);
    return FILTER_STOP; /* the response comes from the upstream, or the router answered */
}

static int router_on_request_body(http_stream_t *s, const void *config, void *state,
                                  const char *data, size_t len, bool end,
                                  const http_headers_t *trailers)
{
    (void)s;
    (void)config;
    router_request_body(state, data, len, end, trailers);
    return FILTER_STOP; /* the last filter: the bytes went upstream */
}

/* Envoy's x-envoy-upstream-service-time: milliseconds from sending the request upstream to its
 * response head. The router's hook runs first of the response hooks (it is the last filter). */
static int router_on_response_headers(http_stream_t *s, const void *config, void *state, bool end)
{
    (void)end;
    const router_config_t *cfg = config;
    const router_req_t *r = state;
    if (cfg == NULL || !cfg->suppress_envoy_headers) {
        char svc[24];
        size_t n = http_u64(svc, http_stream_now(s) - r->start_ms);
        http_stream_header_set(s, http_stream_response_headers(s), "x-envoy-upstream-service-time",
                               svc, n);
    }
    return FILTER_CONTINUE;
}

static void router_on_downstream_drained(http_stream_t *s, const void *config, void *state)
{
    (void)s;
    (void)config;
    router_downstream_drained(state);
}

static int router_on_tunnel_data(http_stream_t *s, const void *config, void *state,
                                 const char *data, size_t len)
{
    (void)s;
    (void)config;
    return router_tunnel_write(state, data, len);
}

static void router_on_reset(http_stream_t *s, const void *config, void *state,
                            http_reset_reason_t reason)
{
    (void)s;
    (void)config;
    router_reset(state, reason);
}

static void router_on_done(http_stream_t *s, const void *config, void *state)
{
    (void)s;
    (void)config;
    router_done(state);
}

const http_filter_ops_t router_filter_ops = {
    .name = "envoy.filters.http.router",
    .type_url = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    .terminal = true,
    .config_parse = router_config_parse,
    .config_free = router_config_free,
    .state_size = sizeof(router_req_t),
    .on_request_headers = router_on_request_headers,
    .on_request_body = router_on_request_body,
    .on_response_headers = router_on_response_headers,
    .on_downstream_drained = router_on_downstream_drained,
    .on_tunnel_data = router_on_tunnel_data,
    .on_reset = router_on_reset,
    .done = router_on_done,
};
