/* CDS and EDS of the view: a cluster per service port (Istio's outbound|<port>||<host>; with
 * mTLS a second one, outbound|<port>|tcp|<host>, for the TCP chain of an HTTP port, since the
 * server tells the two apart by ALPN), one per workload container port (inbound|<port>||), the
 * two passthrough clusters, and the load assignment of every EDS cluster. Every sidecar gets
 * the same ones; proxyless gRPC clients get them too, and their own clusters of headless and
 * ExternalName services. In mTLS an HTTP-capable port's cluster speaks HTTP/2 to the peer
 * sidecar (ALPN h2); inbound|<port>|h2c| speaks HTTP/2 to an app whose port is http2 or grpc. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "xds/view/view_internal.h"

#define CLUSTER_DESC    (&envoy__config__cluster__v3__cluster__descriptor)
#define ASSIGNMENT_DESC (&envoy__config__endpoint__v3__cluster_load_assignment__descriptor)

static int str_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The SPIFFE IDs of s's service accounts and its endpoints' (new strings in *out, sorted,
 * unique; free with free_strs). */
static int service_sans(const view_builder_t *b, const view_service_t *s, char ***out, size_t *n)
{
    char **v = calloc(s->n_service_accounts + s->n_endpoints + 1, sizeof(*v));
    size_t k = 0;
    if (v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_service_accounts + s->n_endpoints; i++) {
        const char *sa = i < s->n_service_accounts
                             ? s->service_accounts[i]
                             : s->endpoints[i - s->n_service_accounts].service_account;
        if (sa == NULL || *sa == '\0')
            continue;
        if (asprintf(&v[k], "spiffe://%s/ns/%s/sa/%s", b->reg->mesh.trust_domain, s->namespace_,
                     sa) < 0) {
            v[k] = NULL;
            *out = v;
            *n = k;
            return -ENOMEM;
        }
        k++;
    }
    qsort(v, k, sizeof(*v), str_cmp);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) {
        if (u && strcmp(v[u - 1], v[i]) == 0)
            free(v[i]);
        else
            v[u++] = v[i];
    }
    *out = v;
    *n = u;
    return 0;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void original_dst(pbw_t *w)
{
    pbw_uint(w, "type", ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST);
    pbw_uint(w, "lb_policy", ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED);
}

static void bind_source(pbw_t *w, const char *source)
{
    pbw_begin(w, "upstream_bind_config");
    pbw_begin(w, "source_address");
    pbw_string(w, "address", source);
    pbw_uint(w, "port_value", 0);
    pbw_end(w);
    pbw_end(w);
}

void view_http2_options(pbw_t *w)
{
    pbw_begin(w, "typed_extension_protocol_options");
    pbw_string(w, "key", "envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
    pbw_begin_any(w, "value",
                  &envoy__extensions__upstreams__http__v3__http_protocol_options__descriptor);
    pbw_begin(w, "explicit_http_config");
    pbw_empty(w, "http2_protocol_options");
    pbw_end(w);
    pbw_end_any(w);
    pbw_end(w);
}

/* A passthrough or inbound cluster: to the connection's original destination, in HTTP/2 (h2c)
 * when h2. */
static int add_original_dst(view_builder_t *b, int gi, const char *name, const char *source,
                            bool h2)
{
    pbw_t w;
    pbw_init(&w, CLUSTER_DESC);
    pbw_string(&w, "name", name);
    original_dst(&w);
    pbw_duration_ms(&w, "connect_timeout", vb_connect_timeout(b));
    if (source)
        bind_source(&w, source);
    if (h2)
        view_http2_options(&w);
    return vb_add(b, gi, name, &w);
}

/* A load_assignment field (open message: a Cluster) of one endpoint: a DNS cluster's name. */
static void dns_endpoint(pbw_t *w, const char *cluster, const char *dns_name, uint16_t port)
{
    pbw_begin(w, "load_assignment");
    pbw_string(w, "cluster_name", cluster);
    pbw_begin(w, "endpoints");
    pbw_begin(w, "lb_endpoints");
    pbw_begin(w, "endpoint");
    pbw_begin(w, "address");
    pbw_begin(w, "socket_address");
    pbw_string(w, "address", dns_name);
    pbw_uint(w, "port_value", port);
    pbw_end(w);
    pbw_end(w);
    pbw_end(w);
    pbw_end(w);
    pbw_end(w);
    pbw_end(w);
}

typedef struct svc_port {
    const view_service_t *s;
    const char *host;
    size_t pi;
    char **sans;
    size_t n_sans;
    bool mtls;
} svc_port_t;

/* One outbound cluster of a service port: `name`, offering ALPN alpn when in mTLS, in HTTP/2
 * when h2. */
static int add_outbound(view_builder_t *b, view_unit_t *u, const svc_port_t *sp, const char *name,
                        const char *alpn, bool h2)
{
    const view_service_t *s = sp->s;
    uint16_t port = s->ports[sp->pi].port;
    pbw_t w;
    pbw_init(&w, CLUSTER_DESC);
    pbw_string(&w, "name", name);
    switch (s->kind) {
    case VIEW_SVC_CLUSTER_IP:
        pbw_uint(&w, "type", ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS);
        pbw_begin(&w, "eds_cluster_config");
        view_ads_source(&w, "eds_config");
        pbw_string(&w, "service_name", name);
        pbw_end(&w);
        break;
    case VIEW_SVC_HEADLESS:
        original_dst(&w);
        break;
    case VIEW_SVC_EXTERNAL_NAME:
        pbw_uint(&w, "type", ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS);
        pbw_uint(&w, "dns_lookup_family",
                 ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__V4_ONLY);
        dns_endpoint(&w, name, s->external_name, port);
        break;
    }
    pbw_duration_ms(&w, "connect_timeout", vb_connect_timeout(b));
    if (sp->mtls) {
        char sni[600];
        snprintf(sni, sizeof(sni), "outbound_.%u_._.%s", port, sp->host);
        view_upstream_tls(&w, sni, alpn, sp->sans, sp->n_sans);
    }
    if (h2)
        view_http2_options(&w);
    return vu_add(b, u, VIEW_GROUP_CLUSTERS, name, &w);
}

/* A gRPC client NACKs ORIGINAL_DST and STRICT_DNS clusters (and CLUSTER_PROVIDED): for it a
 * headless service's port is an EDS cluster over its ready endpoints (their assignment is in the
 * endpoints group under the same name, vu_assignments), an ExternalName service's a LOGICAL_DNS
 * cluster on its name. ROUND_ROBIN (the default), no TLS (proxyless clients in mTLS are left
 * out). */
static int add_grpc_cluster(view_builder_t *b, view_unit_t *u, const view_service_t *s,
                            const char *host, uint16_t port)
{
    char name[600];
    snprintf(name, sizeof(name), VIEW_GRPC_CLUSTER_FMT, port, host);
    pbw_t w;
    pbw_init(&w, CLUSTER_DESC);
    pbw_string(&w, "name", name);
    if (s->kind == VIEW_SVC_HEADLESS) {
        pbw_uint(&w, "type", ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS);
        pbw_begin(&w, "eds_cluster_config");
        view_ads_source(&w, "eds_config");
        pbw_string(&w, "service_name", name);
        pbw_end(&w);
    } else {
        pbw_uint(&w, "type", ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS);
        dns_endpoint(&w, name, s->external_name, port);
    }
    pbw_duration_ms(&w, "connect_timeout", vb_connect_timeout(b));
    return vu_add(b, u, VIEW_GROUP_GRPC_CLUSTERS, name, &w);
}

/* Whether the clusters of s are in mTLS: its namespace is, and it is in the mesh. */
static bool service_mtls(const view_builder_t *b, const view_service_t *s)
{
    return s->kind != VIEW_SVC_EXTERNAL_NAME && vb_mtls(b, s->namespace_) != VIEW_MTLS_OFF;
}

int vu_clusters(view_builder_t *b, size_t si, view_unit_t *u)
{
    svc_port_t sp = {.s = b->svcs[si], .host = b->hosts[si]};
    sp.mtls = service_mtls(b, sp.s);
    int rc = service_sans(b, sp.s, &sp.sans, &sp.n_sans);
    for (sp.pi = 0; sp.pi < sp.s->n_ports && rc == 0; sp.pi++) {
        const view_port_t *p = &sp.s->ports[sp.pi];
        char name[600];
        bool http = view_proto_http(p->protocol);
        snprintf(name, sizeof(name), "outbound|%u||%s", p->port, sp.host);
        /* HTTP/2 to the peer: in mTLS on every HTTP-capable port (every peer is a Remora
         * sidecar, whose inbound TLS HTTP chain selects h2 and gives the app what it speaks);
         * in plaintext on http2 and grpc ports only, whose peer (a sidecar's h2c-taking HTTP
         * chain, or the app itself) speaks it, where an HTTP/1.1 port's peer may be a sidecar
         * that takes only HTTP/1 on its HTTP chain. */
        bool h2 = (http && sp.mtls) || view_proto_h2(p->protocol);
        rc = add_outbound(b, u, &sp, name, http ? "h2" : "istio", h2);
        if (rc == 0 && http && sp.mtls) {
            snprintf(name, sizeof(name), "outbound|%u|tcp|%s", p->port, sp.host);
            rc = add_outbound(b, u, &sp, name, "istio", false);
        }
        if (rc == 0 && view_grpc_own_cluster(sp.s))
            rc = add_grpc_cluster(b, u, sp.s, sp.host, p->port);
    }
    free_strs(sp.sans, sp.n_sans);
    if (rc == -ENOMEM)
        rc = err_set(b->err, b->errlen, rc, "out of memory");
    return rc;
}

static int u32_cmp(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, c = *(const uint32_t *)y;
    return a < c ? -1 : a > c;
}

int view_build_clusters(view_builder_t *b)
{
    int gi = vb_group(b, VIEW_GROUP_CLUSTERS, VIEW_TYPE_CLUSTER, "");
    if (gi < 0)
        return gi;
    int rc = add_original_dst(b, gi, "PassthroughCluster", NULL, false);
    if (rc == 0)
        rc = add_original_dst(b, gi, "InboundPassthroughClusterIpv4", b->reg->mesh.inbound_source,
                              false);
    /* inbound|<port>||: one per container port any workload has; and inbound|<port>|h2c| (the
     * HTTP chain's, in HTTP/2) per port some workload has as http2 or grpc. Every sidecar gets
     * every cluster, so a port number that is HTTP/1.1 in one pod and gRPC in another needs
     * both names. Sorted as (port, h2). */
    size_t n = 0;
    for (size_t i = 0; i < b->reg->n_workloads; i++)
        n += b->reg->workloads[i].n_ports * 2;
    uint32_t *ports = calloc(n + 1, sizeof(*ports));
    if (ports == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    n = 0;
    for (size_t i = 0; i < b->reg->n_workloads; i++)
        for (size_t p = 0; p < b->reg->workloads[i].n_ports; p++) {
            const view_port_t *vp = &b->reg->workloads[i].ports[p];
            ports[n++] = (uint32_t)vp->port << 1;
            if (view_proto_h2(vp->protocol))
                ports[n++] = (uint32_t)vp->port << 1 | 1;
        }
    qsort(ports, n, sizeof(*ports), u32_cmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char name[32];
        if ((ports[i] >> 1) == 0 || (i && ports[i] == ports[i - 1]))
            continue;
        if (ports[i] & 1)
            snprintf(name, sizeof(name), VIEW_INBOUND_H2C_FMT, ports[i] >> 1);
        else
            snprintf(name, sizeof(name), "inbound|%u||", ports[i] >> 1);
        rc = add_original_dst(b, gi, name, b->reg->mesh.inbound_source, ports[i] & 1);
    }
    free(ports);
    return rc < 0 ? rc : vb_units_group(b, gi);
}

int view_build_grpc_clusters(view_builder_t *b)
{
    int gi = vb_group(b, VIEW_GROUP_GRPC_CLUSTERS, VIEW_TYPE_CLUSTER, "");
    return gi < 0 ? gi : vb_units_group(b, gi);
}

/* ---- EDS ------------------------------------------------------------------------------------ */

static const char *zone_of(const view_endpoint_t *e)
{
    return e->zone ? e->zone : "";
}

static int endpoint_cmp(const void *x, const void *y)
{
    const view_endpoint_t *a = *(const view_endpoint_t *const *)x;
    const view_endpoint_t *b = *(const view_endpoint_t *const *)y;
    int c = strcmp(zone_of(a), zone_of(b));
    return c ? c : strcmp(a->address, b->address);
}

/* The assignment `name` of port pi of s: its ready endpoints (eps, sorted by zone) by
 * locality, each locality weighted by its number of endpoints. */
static int add_assignment(view_builder_t *b, view_unit_t *u, const char *name,
                          const view_service_t *s, size_t pi, const view_endpoint_t *const *eps,
                          size_t n)
{
    pbw_t w;
    pbw_init(&w, ASSIGNMENT_DESC);
    pbw_string(&w, "cluster_name", name);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && strcmp(zone_of(eps[j]), zone_of(eps[i])) == 0)
            j++;
        pbw_begin(&w, "endpoints");
        pbw_begin(&w, "locality");
        if (*zone_of(eps[i]))
            pbw_string(&w, "zone", zone_of(eps[i]));
        pbw_end(&w);
        for (size_t k = i; k < j; k++) {
            pbw_begin(&w, "lb_endpoints");
            pbw_begin(&w, "endpoint");
            pbw_begin(&w, "address");
            pbw_begin(&w, "socket_address");
            pbw_string(&w, "address", eps[k]->address);
            pbw_uint(&w, "port_value", view_endpoint_port(s, pi, eps[k]));
            pbw_end(&w);
            pbw_end(&w);
            pbw_end(&w);
            pbw_uint(&w, "health_status", ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY);
            pbw_end(&w);
        }
        pbw_wrapped(&w, "load_balancing_weight", j - i);
        pbw_end(&w);
        i = j;
    }
    return vu_add(b, u, VIEW_GROUP_ENDPOINTS, name, &w);
}

int vu_assignments(view_builder_t *b, size_t si, view_unit_t *u)
{
    const view_service_t *s = b->svcs[si];
    if (s->kind == VIEW_SVC_EXTERNAL_NAME)
        return 0;
    const view_endpoint_t **eps = calloc(s->n_endpoints + 1, sizeof(*eps));
    if (eps == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < s->n_endpoints; i++)
        if (s->endpoints[i].ready)
            eps[n++] = &s->endpoints[i];
    qsort(eps, n, sizeof(*eps), endpoint_cmp);
    bool mtls = service_mtls(b, s);
    bool grpc_only = s->kind == VIEW_SVC_HEADLESS; /* the gRPC clients' cluster of it */
    int rc = 0;
    for (size_t pi = 0; pi < s->n_ports && rc == 0; pi++) {
        char name[600];
        snprintf(name, sizeof(name), grpc_only ? VIEW_GRPC_CLUSTER_FMT : "outbound|%u||%s",
                 s->ports[pi].port, b->hosts[si]);
        rc = add_assignment(b, u, name, s, pi, eps, n);
        if (rc == 0 && !grpc_only && mtls && view_proto_http(s->ports[pi].protocol)) {
            snprintf(name, sizeof(name), "outbound|%u|tcp|%s", s->ports[pi].port, b->hosts[si]);
            rc = add_assignment(b, u, name, s, pi, eps, n);
        }
    }
    free(eps);
    return rc;
}

int view_build_endpoints(view_builder_t *b)
{
    int gi = vb_group(b, VIEW_GROUP_ENDPOINTS, VIEW_TYPE_ENDPOINTS, "");
    if (gi < 0)
        return gi;
    return vb_units_group(b, gi);
}
