/* The sidecar's two listeners, in Istio's shape: virtualOutbound (15001), a chain per service
 * VIP (or headless endpoint address) and port, HTTP by sniffing and TCP otherwise, the rest
 * passed through; virtualInbound (15006), a chain per container port of the workload, with
 * mTLS as its namespace has it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/listener/http_inspector/v3/http_inspector.pb-c.h"
#include "envoy/extensions/filters/listener/original_dst/v3/original_dst.pb-c.h"
#include "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "xds/view/view_internal.h"

#define LISTENER_DESC (&envoy__config__listener__v3__listener__descriptor)
#define HCM_DESC                                                                                   \
    (&envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor)

static void listener_filter(pbw_t *w, const char *name, const ProtobufCMessageDescriptor *desc)
{
    pbw_begin(w, "listener_filters");
    pbw_string(w, "name", name);
    pbw_begin_any(w, "typed_config", desc);
    pbw_end_any(w);
    pbw_end(w);
}

static void listener_head(pbw_t *w, const char *name, uint16_t port, int direction)
{
    pbw_string(w, "name", name);
    pbw_begin(w, "address");
    pbw_begin(w, "socket_address");
    pbw_string(w, "address", "0.0.0.0");
    pbw_uint(w, "port_value", port);
    pbw_end(w);
    pbw_end(w);
    pbw_uint(w, "traffic_direction", direction);
    listener_filter(
        w, "envoy.filters.listener.original_dst",
        &envoy__extensions__filters__listener__original_dst__v3__original_dst__descriptor);
}

static void http_inspector(pbw_t *w)
{
    listener_filter(
        w, "envoy.filters.listener.http_inspector",
        &envoy__extensions__filters__listener__http_inspector__v3__http_inspector__descriptor);
}

void view_router_filter(pbw_t *w)
{
    pbw_begin(w, "http_filters");
    pbw_string(w, "name", "envoy.filters.http.router");
    pbw_begin_any(w, "typed_config",
                  &envoy__extensions__filters__http__router__v3__router__descriptor);
    pbw_end_any(w);
    pbw_end(w);
}

static void tcp_proxy(pbw_t *w, const char *cluster)
{
    pbw_begin(w, "filters");
    pbw_string(w, "name", "envoy.filters.network.tcp_proxy");
    pbw_begin_any(w, "typed_config",
                  &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor);
    pbw_string(w, "stat_prefix", cluster);
    pbw_string(w, "cluster", cluster);
    pbw_end_any(w);
    pbw_end(w);
}

static void app_protocols(pbw_t *w, const char *const *v)
{
    for (; *v; v++)
        pbw_string(w, "application_protocols", *v);
}

static const char *const http1[] = {"http/1.1", "http/1.0", NULL};
/* A port whose app speaks HTTP/2 (http2, grpc) also takes a plaintext client's h2c (HTTP/2 with
 * prior knowledge, as the http_inspector names it) on its HTTP chain: gRPC goes through the
 * connection manager, not the TCP chain. Other ports leave h2c to their TCP chain, whose app
 * may speak it. */
static const char *const http1_h2c[] = {"http/1.1", "http/1.0", "h2c", NULL};

/* ---- virtualOutbound ------------------------------------------------------------------------ */

/* The match of a service port's chains: the port and the VIP, or each ready endpoint address
 * of a headless service. */
static void outbound_match(pbw_t *w, const view_service_t *s, uint16_t port, bool http, bool h2)
{
    pbw_begin(w, "filter_chain_match");
    pbw_wrapped(w, "destination_port", port);
    for (size_t i = 0; i < (s->kind == VIEW_SVC_CLUSTER_IP ? 1 : s->n_endpoints); i++) {
        const char *addr = s->kind == VIEW_SVC_CLUSTER_IP ? s->vip : s->endpoints[i].address;
        if (s->kind != VIEW_SVC_CLUSTER_IP && !s->endpoints[i].ready)
            continue;
        pbw_begin(w, "prefix_ranges");
        pbw_string(w, "address_prefix", addr);
        pbw_wrapped(w, "prefix_len", strchr(addr, ':') ? 128 : 32);
        pbw_end(w);
    }
    if (http)
        app_protocols(w, h2 ? http1_h2c : http1);
    pbw_end(w);
}

static void outbound_hcm(pbw_t *w, uint16_t port)
{
    char buf[64];
    pbw_begin(w, "filters");
    pbw_string(w, "name", "envoy.filters.network.http_connection_manager");
    pbw_begin_any(w, "typed_config", HCM_DESC);
    snprintf(buf, sizeof(buf), "outbound_0.0.0.0_%u", port);
    pbw_string(w, "stat_prefix", buf);
    pbw_begin(w, "rds");
    view_ads_source(w, "config_source");
    snprintf(buf, sizeof(buf), "%u", port);
    pbw_string(w, "route_config_name", buf);
    pbw_end(w);
    view_router_filter(w);
    pbw_end_any(w);
    pbw_end(w);
}

/* Whether a headless service has an address to match (a chain without one would match every
 * address on the port). */
static bool has_match(const view_service_t *s)
{
    if (s->kind == VIEW_SVC_CLUSTER_IP)
        return true;
    if (s->kind == VIEW_SVC_EXTERNAL_NAME)
        return false;
    for (size_t i = 0; i < s->n_endpoints; i++)
        if (s->endpoints[i].ready)
            return true;
    return false;
}

static void outbound_chains(view_builder_t *b, pbw_t *w, size_t si)
{
    const view_service_t *s = b->svcs[si];
    bool mtls = s->kind != VIEW_SVC_EXTERNAL_NAME && vb_mtls(b, s->namespace_) != VIEW_MTLS_OFF;
    if (!has_match(s))
        return;
    for (size_t pi = 0; pi < s->n_ports; pi++) {
        const view_port_t *p = &s->ports[pi];
        char cluster[600], tcp[600], name[620];
        bool http = view_proto_http(p->protocol);
        snprintf(cluster, sizeof(cluster), "outbound|%u||%s", p->port, b->hosts[si]);
        snprintf(tcp, sizeof(tcp), "outbound|%u|%s|%s", p->port, http && mtls ? "tcp" : "",
                 b->hosts[si]);
        if (http) {
            pbw_begin(w, "filter_chains");
            snprintf(name, sizeof(name), "%s-http", cluster);
            pbw_string(w, "name", name);
            outbound_match(w, s, p->port, true, view_proto_h2(p->protocol));
            outbound_hcm(w, p->port);
            pbw_end(w);
        }
        pbw_begin(w, "filter_chains");
        pbw_string(w, "name", tcp);
        outbound_match(w, s, p->port, false, false);
        tcp_proxy(w, tcp);
        pbw_end(w);
    }
}

int vu_outbound(view_builder_t *b, size_t si, view_unit_t *u, const view_unit_t *prev)
{
    pbw_t w;
    pbw_init(&w, LISTENER_DESC);
    outbound_chains(b, &w, si);
    u->outbound = vb_fragment(b, &w, prev ? prev->outbound : NULL);
    return u->outbound ? 0 : -ENOMEM;
}

/* One virtualOutbound for every namespace: nothing in it depends on the namespace (its HTTP
 * chains name route configurations "<port>", which do), so its bytes are shared. It is the
 * head, each service's chains (its unit's part) and the default chain. */
int view_build_outbound(view_builder_t *b)
{
    const char *const name = "virtualOutbound";
    if (b->n_namespaces == 0)
        return 0;
    pbw_t head, tail;
    pbw_init(&head, LISTENER_DESC);
    listener_head(&head, name, b->reg->mesh.outbound_port,
                  ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND);
    http_inspector(&head);
    pbw_init(&tail, LISTENER_DESC);
    pbw_begin(&tail, "default_filter_chain");
    pbw_string(&tail, "name", "PassthroughFilterChain");
    tcp_proxy(&tail, "PassthroughCluster");
    pbw_end(&tail);
    view_blob_t *blob;
    int rc = vm_outbound(b, &head, &tail, &blob);
    for (size_t i = 0; i < b->n_namespaces && rc == 0; i++) {
        int gi = rc = vb_group(b, VIEW_GROUP_OUTBOUND, VIEW_TYPE_LISTENER, b->namespaces[i]);
        if (rc >= 0)
            rc = vb_add_blob(b, gi, name, blob);
    }
    return rc < 0 ? rc : 0;
}

/* ---- virtualInbound ------------------------------------------------------------------------- */

/* The inbound connection manager of port (0: ports not declared), routing to the port's
 * cluster: inbound|<port>|h2c| when the app speaks HTTP/2 (h2), else inbound|<port>||. */
static void inbound_hcm(pbw_t *w, uint16_t port, bool mtls, bool h2)
{
    char buf[64];
    pbw_begin(w, "filters");
    pbw_string(w, "name", "envoy.filters.network.http_connection_manager");
    pbw_begin_any(w, "typed_config", HCM_DESC);
    snprintf(buf, sizeof(buf), "inbound_0.0.0.0_%u", port);
    pbw_string(w, "stat_prefix", port ? buf : "inbound_0.0.0.0");
    pbw_wrapped(w, "use_remote_address", 1);
    if (mtls) {
        pbw_uint(
            w, "forward_client_cert_details",
            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__APPEND_FORWARD);
        pbw_begin(w, "set_current_client_cert_details");
        pbw_wrapped(w, "subject", 1);
        pbw_uint(w, "dns", 1);
        pbw_uint(w, "uri", 1);
        pbw_end(w);
    }
    char cluster[32];
    if (port && h2)
        snprintf(cluster, sizeof(cluster), VIEW_INBOUND_H2C_FMT, port);
    else if (port)
        snprintf(cluster, sizeof(cluster), "inbound|%u||", port);
    else
        snprintf(cluster, sizeof(cluster), "InboundPassthroughClusterIpv4");
    pbw_begin(w, "route_config");
    pbw_string(w, "name", cluster);
    /* As Istio writes its inbound routes: the cluster comes in the same push, and may still be
     * warming when the listener arrives. */
    pbw_wrapped(w, "validate_clusters", 0);
    pbw_begin(w, "virtual_hosts");
    pbw_string(w, "name", "inbound|http|*");
    pbw_string(w, "domains", "*");
    pbw_begin(w, "routes");
    pbw_begin(w, "match");
    pbw_string(w, "prefix", "/");
    pbw_end(w);
    pbw_begin(w, "route");
    pbw_string(w, "cluster", cluster);
    pbw_end(w);
    pbw_end(w);
    pbw_end(w);
    pbw_end(w);
    view_router_filter(w);
    pbw_end_any(w);
    pbw_end(w);
}

typedef enum { CHAIN_PLAIN, CHAIN_RAW, CHAIN_TLS } chain_transport_t;

/* One inbound chain: for port (0: any port), HTTP or not, over transport t; an HTTP chain of a
 * port whose app speaks HTTP/2 (h2) sends to it in HTTP/2. The TLS HTTP chain takes the peer
 * sidecars' HTTP/2 (ALPN h2, which its TLS server selects) besides Istio's istio-http/1.1 and
 * plain http/1.1 clients. */
static void inbound_chain(pbw_t *w, const char *td, uint16_t port, bool http, bool h2,
                          chain_transport_t t)
{
    static const char *const tls_http[] = {"istio-http/1.1", "http/1.1", "h2", NULL};
    static const char *const tls_alpn[] = {"h2", "http/1.1", NULL};
    char name[64];
    const char *tr = t == CHAIN_TLS ? "-tls" : t == CHAIN_RAW ? "-raw" : "";
    if (port)
        snprintf(name, sizeof(name), "inbound_0.0.0.0_%u%s%s", port, tr, http ? "-http" : "-tcp");
    else
        snprintf(name, sizeof(name), "InboundPassthroughFilterChain%s%s", tr,
                 http ? "-http" : "-tcp");
    pbw_begin(w, "filter_chains");
    pbw_string(w, "name", name);
    pbw_begin(w, "filter_chain_match");
    if (port)
        pbw_wrapped(w, "destination_port", port);
    if (t != CHAIN_PLAIN)
        pbw_string(w, "transport_protocol", t == CHAIN_TLS ? "tls" : "raw_buffer");
    if (http)
        app_protocols(w, t == CHAIN_TLS ? tls_http : h2 ? http1_h2c : http1);
    pbw_end(w);
    if (t == CHAIN_TLS)
        view_downstream_tls(w, td, http ? tls_alpn : NULL);
    if (http) {
        inbound_hcm(w, port, t == CHAIN_TLS, h2);
    } else {
        char cluster[32];
        if (port)
            snprintf(cluster, sizeof(cluster), "inbound|%u||", port);
        else
            snprintf(cluster, sizeof(cluster), "InboundPassthroughClusterIpv4");
        tcp_proxy(w, cluster);
    }
    pbw_end(w);
}

/* The chains of one port (0: the ports the workload does not declare, TLS only) in mode m;
 * h2: its app speaks HTTP/2. */
static void inbound_port(pbw_t *w, const char *td, uint16_t port, bool http, bool h2, view_mtls_t m)
{
    if (m != VIEW_MTLS_OFF) {
        if (http)
            inbound_chain(w, td, port, true, h2, CHAIN_TLS);
        inbound_chain(w, td, port, false, false, CHAIN_TLS);
    }
    if (port == 0 || m == VIEW_MTLS_STRICT)
        return;
    chain_transport_t t = m == VIEW_MTLS_PERMISSIVE ? CHAIN_RAW : CHAIN_PLAIN;
    if (http)
        inbound_chain(w, td, port, true, h2, t);
    inbound_chain(w, td, port, false, false, t);
}

/* virtualInbound of wl in mode m, encoded (prev's blob of group `key` when the bytes are the same).
 */
static int encode_inbound(view_builder_t *b, const char *key, const view_workload_t *wl,
                          view_mtls_t m, view_blob_t **out)
{
    const char *td = b->reg->mesh.trust_domain;
    pbw_t w;
    pbw_init(&w, LISTENER_DESC);
    listener_head(&w, "virtualInbound", b->reg->mesh.inbound_port,
                  ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__INBOUND);
    if (m != VIEW_MTLS_OFF)
        listener_filter(
            &w, "envoy.filters.listener.tls_inspector",
            &envoy__extensions__filters__listener__tls_inspector__v3__tls_inspector__descriptor);
    http_inspector(&w);
    for (size_t i = 0; i < wl->n_ports; i++) {
        bool twice = false;
        for (size_t j = 0; j < i; j++)
            twice |= wl->ports[j].port == wl->ports[i].port;
        if (!twice && wl->ports[i].port)
            inbound_port(&w, td, wl->ports[i].port, view_proto_http(wl->ports[i].protocol),
                         view_proto_h2(wl->ports[i].protocol), m);
    }
    /* Ports the pod does not declare: mTLS as on declared ones, plaintext passed through
     * unless strict. */
    inbound_port(&w, td, 0, true, false, m);
    if (m != VIEW_MTLS_STRICT) {
        pbw_begin(&w, "default_filter_chain");
        pbw_string(&w, "name", "InboundPassthroughFilterChain");
        tcp_proxy(&w, "InboundPassthroughClusterIpv4");
        pbw_end(&w);
    }
    return vb_encode(b, VIEW_GROUP_INBOUND, key, "virtualInbound", &w, out);
}

/* A workload's virtualInbound depends on the mesh's trust domain and inbound port, its
 * namespace's mode and its ports alone: workloads alike share one, encoded once. */
static int add_inbound(view_builder_t *b, const view_workload_t *wl, view_input_t *in)
{
    view_mtls_t m = vb_mtls(b, wl->namespace_);
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", wl->namespace_, wl->name);
    int gi = vb_group(b, VIEW_GROUP_INBOUND, VIEW_TYPE_LISTENER, key);
    if (gi < 0)
        return gi;
    in->len = 0;
    vin_str(in, b->reg->mesh.trust_domain);
    vin_u64(in, b->reg->mesh.inbound_port);
    vin_u64(in, m);
    for (size_t i = 0; i < wl->n_ports; i++)
        vin_u64(in, (uint64_t)wl->ports[i].port << 2 |
                        (uint64_t)view_proto_http(wl->ports[i].protocol) << 1 |
                        view_proto_h2(wl->ports[i].protocol));
    if (in->err)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    view_blob_t *blob = vm_inbound_get(b, in->buf, in->len);
    if (blob)
        return vb_add_blob(b, gi, "virtualInbound", blob);
    int rc = encode_inbound(b, key, wl, m, &blob);
    if (rc < 0)
        return rc;
    rc = vb_add_blob(b, gi, "virtualInbound", blob);
    if (rc < 0) {
        if (atomic_load(&blob->refs) == 0)
            free(blob);
        return rc;
    }
    return vm_inbound_put(b, in->buf, in->len, blob);
}

int view_build_inbound(view_builder_t *b)
{
    view_input_t in = {0};
    int rc = 0;
    for (size_t i = 0; i < b->reg->n_workloads && rc == 0; i++)
        rc = add_inbound(b, &b->reg->workloads[i], &in);
    free(in.buf);
    return rc;
}
