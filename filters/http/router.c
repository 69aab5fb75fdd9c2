/* envoy.filters.http.router: the terminal HTTP filter. Its work (cluster choice, upstream
 * request, response relay) lives in proxy/http/upstream_request.c, behind hcm_router_start. */
#include <errno.h>
#include <stdlib.h>

#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "filters/http/http_filter.h"
#include "proxy/http/hcm.h"
#include "xds/config/config.h"

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
        hcm_router_config_t *c = calloc(1, sizeof(*c));
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
    (void)state;
    (void)end;
    return hcm_router_start(s);
}

const http_filter_ops_t router_filter_ops = {
    .name = "envoy.filters.http.router",
    .type_url = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    .terminal = true,
    .config_parse = router_config_parse,
    .config_free = router_config_free,
    .on_request_headers = router_on_request_headers,
};
