/* Route configurations: the sidecars' "<port>" per namespace (a virtual host per service with
 * that port, short names only for the namespace's own services), and the proxyless gRPC
 * clients' API listeners and route configurations "<host>:<port>". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "xds/view/view_internal.h"

#define ROUTES_DESC   (&envoy__config__route__v3__route_configuration__descriptor)
#define LISTENER_DESC (&envoy__config__listener__v3__listener__descriptor)
#define HCM_DESC                                                                                   \
    (&envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor)

/* A service port with an HTTP route. */
typedef struct http_port {
    uint16_t port;
    size_t si, pi;
} http_port_t;

static int http_port_cmp(const void *x, const void *y)
{
    const http_port_t *a = x, *b = y;
    if (a->port != b->port)
        return (int)a->port - (int)b->port;
    return a->si < b->si ? -1 : a->si > b->si;
}

/* "<name>:<port>" in buf (cap bytes), as snprintf writes it; without snprintf, since every
 * virtual host of every service port is made of a few of these. */
static const char *name_port(char *buf, size_t cap, const char *name, uint16_t port)
{
    char digits[8];
    size_t nd = 0, n = strlen(name);
    unsigned v = port;
    do
        digits[nd++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    if (n + 1 + nd + 1 > cap) {
        snprintf(buf, cap, "%s:%u", name, port);
        return buf;
    }
    memcpy(buf, name, n);
    buf[n++] = ':';
    while (nd)
        buf[n++] = digits[--nd];
    buf[n] = '\0';
    return buf;
}

static void domain(pbw_t *w, const char *name, uint16_t port)
{
    char buf[600];
    pbw_string(w, "domains", name);
    pbw_string(w, "domains", name_port(buf, sizeof(buf), name, port));
}

/* The virtual host of service si's port pi, as seen from namespace ns (NULL: from no
 * namespace, so no short name), for a sidecar or a proxyless gRPC client (grpc: its clusters). */
static int virtual_host(const view_builder_t *b, pbw_t *w, size_t si, size_t pi, const char *ns,
                        bool grpc)
{
    const view_service_t *s = b->svcs[si];
    uint16_t port = s->ports[pi].port;
    char buf[600];
    pbw_begin(w, "virtual_hosts");
    pbw_string(w, "name", name_port(buf, sizeof(buf), b->hosts[si], port));
    domain(w, b->hosts[si], port);
    snprintf(buf, sizeof(buf), "%s.%s.svc", s->name, s->namespace_);
    if (strcmp(buf, b->hosts[si]) != 0)
        domain(w, buf, port);
    snprintf(buf, sizeof(buf), "%s.%s", s->name, s->namespace_);
    domain(w, buf, port);
    if (ns && strcmp(ns, s->namespace_) == 0)
        domain(w, s->name, port);
    if (s->kind == VIEW_SVC_CLUSTER_IP)
        domain(w, s->vip, port);
    if (vr_on_port(b, si, pi)) { /* a route attached to the service replaces the default */
        int rc = vr_write(b, w, si, pi, grpc);
        pbw_end(w);
        return rc;
    }
    pbw_begin(w, "routes");
    pbw_string(w, "name", "default");
    pbw_begin(w, "match");
    pbw_string(w, "prefix", "/");
    pbw_end(w);
    pbw_begin(w, "route");
    if (grpc && view_grpc_own_cluster(s))
        snprintf(buf, sizeof(buf), VIEW_GRPC_CLUSTER_FMT, port, b->hosts[si]);
    else
        snprintf(buf, sizeof(buf), "outbound|%u||%s", port, b->hosts[si]);
    pbw_string(w, "cluster", buf);
    pbw_end(w);
    pbw_end(w);
    pbw_end(w);
    return 0;
}

/* Istio's allow_any: a host no service has goes where it was going. */
static void allow_any(pbw_t *w)
{
    pbw_begin(w, "virtual_hosts");
    pbw_string(w, "name", "allow_any");
    pbw_string(w, "domains", "*");
    pbw_begin(w, "routes");
    pbw_string(w, "name", "allow_any");
    pbw_begin(w, "match");
    pbw_string(w, "prefix", "/");
    pbw_end(w);
    pbw_begin(w, "route");
    pbw_string(w, "cluster", "PassthroughCluster");
    pbw_end(w);
    pbw_end(w);
    pbw_end(w);
}

int view_build_routes(view_builder_t *b)
{
    size_t n = 0;
    for (size_t si = 0; si < b->n_svcs; si++)
        n += b->svcs[si]->n_ports;
    http_port_t *hp = calloc(n + 1, sizeof(*hp));
    view_blob_t **vh = calloc(n + 1, sizeof(*vh));
    if (hp == NULL || vh == NULL) {
        free(hp);
        free(vh);
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    }
    n = 0;
    for (size_t si = 0; si < b->n_svcs; si++)
        for (size_t pi = 0; pi < b->svcs[si]->n_ports; pi++)
            if (view_proto_http(b->svcs[si]->ports[pi].protocol))
                hp[n++] = (http_port_t){b->svcs[si]->ports[pi].port, si, pi};
    qsort(hp, n, sizeof(*hp), http_port_cmp);
    int rc = 0;
    for (size_t k = 0; k < b->n_namespaces && rc == 0; k++) {
        const char *ns = b->namespaces[k];
        int gi = rc = vb_group(b, VIEW_GROUP_ROUTES, VIEW_TYPE_ROUTES, ns);
        for (size_t i = 0; i < n && rc >= 0;) {
            char name[8];
            snprintf(name, sizeof(name), "%u", hp[i].port);
            pbw_t head, tail;
            pbw_init(&head, ROUTES_DESC);
            pbw_string(&head, "name", name);
            size_t j = i;
            for (; j < n && hp[j].port == hp[i].port; j++) {
                const view_unit_t *u = b->units[hp[j].si];
                bool own = strcmp(ns, b->svcs[hp[j].si]->namespace_) == 0;
                vh[j - i] = own ? u->vh_own[hp[j].pi] : u->vh_other[hp[j].pi];
            }
            pbw_init(&tail, ROUTES_DESC);
            allow_any(&tail);
            pbw_wrapped(&tail, "validate_clusters", 0);
            rc = vm_route(b, gi, ns, hp[i].port, &head, vh, j - i, &tail);
            i = j;
        }
    }
    free(vh);
    free(hp);
    return rc < 0 ? rc : 0;
}

/* ---- proxyless gRPC ------------------------------------------------------------------------- */

static int add_api_listener(view_builder_t *b, view_unit_t *u, const char *name)
{
    pbw_t w;
    pbw_init(&w, LISTENER_DESC);
    pbw_string(&w, "name", name);
    pbw_begin(&w, "api_listener");
    pbw_begin_any(&w, "api_listener", HCM_DESC);
    pbw_begin(&w, "rds");
    view_ads_source(&w, "config_source");
    pbw_string(&w, "route_config_name", name);
    pbw_end(&w);
    view_router_filter(&w);
    pbw_end_any(&w);
    pbw_end(&w);
    return vu_add(b, u, VIEW_GROUP_GRPC_LISTENERS, name, &w);
}

/* The virtual host of port pi as a part (new reference in *out), prev's when alike. */
static int vh_part(view_builder_t *b, size_t si, size_t pi, const char *ns, view_blob_t *prev,
                   view_blob_t **out)
{
    pbw_t w;
    pbw_init(&w, ROUTES_DESC);
    if (virtual_host(b, &w, si, pi, ns, false) < 0) {
        pbw_reset(&w);
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    }
    *out = vb_fragment(b, &w, prev);
    return *out ? 0 : -ENOMEM;
}

int vu_routes(view_builder_t *b, size_t si, view_unit_t *u, const view_unit_t *prev)
{
    const view_service_t *s = b->svcs[si];
    int rc = 0;
    for (size_t pi = 0; pi < s->n_ports && rc == 0; pi++) {
        /* prev's virtual hosts of the same port number, kept when their bytes are these (a
         * port added leaves the other ports' route configurations as they were) */
        size_t pj = 0;
        while (prev && pj < prev->n_ports && prev->ports[pj] != s->ports[pi].port)
            pj++;
        bool same = prev && pj < prev->n_ports;
        rc = vh_part(b, si, pi, NULL, same ? prev->vh_other[pj] : NULL, &u->vh_other[pi]);
        if (rc == 0 && view_proto_http(s->ports[pi].protocol))
            rc = vh_part(b, si, pi, s->namespace_, same ? prev->vh_own[pj] : NULL, &u->vh_own[pi]);
        /* The proxyless clients' listener and route configuration "<host>:<port>", whose
         * virtual host is the one seen from no namespace; for a service whose clusters a gRPC
         * client does not take, one naming the clients' own cluster. */
        char name[600];
        snprintf(name, sizeof(name), "%s:%u", b->hosts[si], s->ports[pi].port);
        if (rc == 0)
            rc = add_api_listener(b, u, name);
        if (rc == 0) {
            pbw_t w;
            pbw_init(&w, ROUTES_DESC);
            pbw_string(&w, "name", name);
            if (view_grpc_own_cluster(s) || (vr_on_port(b, si, pi) && vr_grpc_differs(b, si)))
                rc = virtual_host(b, &w, si, pi, NULL, true);
            else
                pbw_raw(&w, u->vh_other[pi]->bytes, u->vh_other[pi]->len);
            if (rc < 0) {
                pbw_reset(&w);
                rc = err_set(b->err, b->errlen, -ENOMEM, "out of memory");
            } else {
                rc = vu_add(b, u, VIEW_GROUP_GRPC_ROUTES, name, &w);
            }
        }
    }
    return rc;
}

int view_build_grpc(view_builder_t *b)
{
    int lg = vb_group(b, VIEW_GROUP_GRPC_LISTENERS, VIEW_TYPE_LISTENER, "");
    if (lg < 0)
        return lg;
    int rg = vb_group(b, VIEW_GROUP_GRPC_ROUTES, VIEW_TYPE_ROUTES, "");
    if (rg < 0)
        return rg;
    int rc = vb_units_group(b, lg);
    return rc < 0 ? rc : vb_units_group(b, rg);
}
