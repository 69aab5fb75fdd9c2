/* The one list of filters Remora knows, looked up by type URL (as Envoy does) or by name. */
#include <string.h>

#include "filters/registry.h"

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

static int registry_config_parse(const net_filter_ops_t *f, const void *any,
                                 const struct snapshot *snap, stats_store_t *stats, void **out,
                                 char *err, size_t errlen)
{
    return f->config_parse(any, snap, stats, out, err, errlen);
}

static void registry_config_free(const net_filter_ops_t *f, void *config)
{
    f->config_free(config);
}

const snap_filter_registry_t filter_registry = {
    .lookup = filter_network_lookup,
    .config_parse = registry_config_parse,
    .config_free = registry_config_free,
};
