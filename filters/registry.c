/* The one list of filters Remora knows, looked up by type URL (as Envoy does) or by name. */
#include <string.h>

#include "filters/network/filter.h"
#include "filters/http/http_filter.h"

extern const net_filter_ops_t tcp_proxy_filter_ops;
extern const net_filter_ops_t http_connection_manager_filter_ops;
extern const http_filter_ops_t router_filter_ops;
extern const http_filter_ops_t header_mutation_filter_ops;
extern const http_filter_ops_t buffer_filter_ops;

static const net_filter_ops_t *const network_filters[] = {
    &tcp_proxy_filter_ops,
    &http_connection_manager_filter_ops,
};

static const http_filter_ops_t *const http_filters[] = {
    &buffer_filter_ops,
    &header_mutation_filter_ops,
    &router_filter_ops,
};

/* The part of a type URL after its last '/': the message's full name. */
static const char *type_name(const char *type_url)
{
    const char *slash = strrchr(type_url, '/');
    return slash ? slash + 1 : type_url;
}

const net_filter_ops_t *filter_network_lookup(const char *name, const char *type_url)
{
    size_t n = sizeof(network_filters) / sizeof(network_filters[0]);
    for (size_t i = 0; i < n; i++) {
        const net_filter_ops_t *f = network_filters[i];
        if (type_url ? strcmp(type_name(type_url), type_name(f->type_url)) == 0
                     : (name && strcmp(name, f->name) == 0))
            return f;
    }
    return NULL;
}

const http_filter_ops_t *filter_http_lookup(const char *name, const char *type_url)
{
    size_t n = sizeof(http_filters) / sizeof(http_filters[0]);
    for (size_t i = 0; i < n; i++) {
        const http_filter_ops_t *f = http_filters[i];
        if (type_url ? strcmp(type_name(type_url), type_name(f->type_url)) == 0
                     : (name && strcmp(name, f->name) == 0))
            return f;
    }
    return NULL;
}

static const struct {
    const char *name;
    const char *type_name;
    listener_filter_kind_t kind;
} listener_filters[] = {
    {"envoy.filters.listener.original_dst",
     "envoy.extensions.filters.listener.original_dst.v3.OriginalDst", LISTENER_FILTER_ORIGINAL_DST},
    {"envoy.filters.listener.http_inspector",
     "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
     LISTENER_FILTER_HTTP_INSPECTOR},
};

listener_filter_kind_t filter_listener_lookup(const char *name, const char *type_url)
{
    size_t n = sizeof(listener_filters) / sizeof(listener_filters[0]);
    for (size_t i = 0; i < n; i++) {
        if (type_url ? strcmp(type_name(type_url), listener_filters[i].type_name) == 0
                     : (name && strcmp(name, listener_filters[i].name) == 0))
            return listener_filters[i].kind;
    }
    return LISTENER_FILTER_UNKNOWN;
}
