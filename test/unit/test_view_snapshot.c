/* The per-sidecar view against the sidecar's own config path: every resource set the view
 * gives a sidecar decodes, validates (config_resources_validate) and builds into a snapshot
 * (snapshot_build_resources) with the SDS secrets it names, routes attached to a service
 * included; a rebuild after a registry change
 * shows which resources changed by their hashes and keeps the bytes of the others; the time of
 * a full build at 1,000 services and 5,000 endpoints is printed, not asserted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "test/unit/snap_opts.h"
#include "test/unit/view_fixture.h"
#include "xds/config/config.h"
#include "xds/snapshot/resources.h"
#include "xds/snapshot/snapshot.h"
#include "xds/view/view.h"
#include "xds/view/view_node.h"

#define CERTS "test/data/certs/"

typedef struct sidecar {
    stats_store_t *stats;
    ProtobufCMessage *bootstrap;
    config_resources_t res;
    ProtobufCMessage **msgs;
    size_t n_msgs, cap_msgs;
    snapshot_t *snap;
    char err[1024];
} sidecar_t;

static ProtobufCMessage *yaml(sidecar_t *s, const ProtobufCMessageDescriptor *d, const char *y)
{
    ProtobufCMessage *m = NULL;
    if (config_yaml_load(y, strlen(y), "test", d, &m, s->err, sizeof(s->err)) < 0)
        fail_msg("%s", s->err);
    return m;
}

static void keep(sidecar_t *s, ProtobufCMessage *m)
{
    if (s->n_msgs == s->cap_msgs) {
        s->cap_msgs = s->cap_msgs ? s->cap_msgs * 2 : 64;
        s->msgs = realloc(s->msgs, s->cap_msgs * sizeof(*s->msgs));
        assert_non_null(s->msgs);
    }
    s->msgs[s->n_msgs++] = m;
}

/* What an ADS client of node id `id` would hold: every resource of its groups, decoded, and the
 * two secrets the CA would serve. Returns the result of validation and build. */
static int sidecar_build(sidecar_t *s, const view_t *v, const char *id)
{
    memset(s, 0, sizeof(*s));
    s->stats = stats_store_new(2);
    char boot[300];
    snprintf(boot, sizeof(boot), "node: {id: '%s'}\n", id);
    s->bootstrap = yaml(s, &envoy__config__bootstrap__v3__bootstrap__descriptor, boot);
    assert_int_equal(config_resources_from_bootstrap(s->bootstrap, &s->res, s->err, sizeof(s->err)),
                     0);
    view_node_t node;
    view_node_groups_t g;
    assert_int_equal(view_node_parse_id(id, &node), 0);
    assert_int_equal(view_node_groups(v, &node, &g), 0);
    for (size_t i = 0; i < g.n; i++) {
        config_resource_list_t *list = g.v[i]->kind == VIEW_GROUP_CLUSTERS    ? &s->res.clusters
                                       : g.v[i]->kind == VIEW_GROUP_ENDPOINTS ? &s->res.endpoints
                                       : g.v[i]->kind == VIEW_GROUP_ROUTES ? &s->res.route_configs
                                                                           : &s->res.listeners;
        for (size_t j = 0; j < g.v[i]->n; j++) {
            const view_resource_t *r = &g.v[i]->v[j];
            ProtobufCMessage *m =
                protobuf_c_message_unpack(fx_desc(r->type_url), NULL, r->blob->len, r->blob->bytes);
            assert_non_null(m);
            keep(s, m);
            assert_int_equal(config_resources_add_xds(list, m, "ads", list->n, "1"), 0);
        }
    }
    const ProtobufCMessageDescriptor *sd =
        &envoy__extensions__transport_sockets__tls__v3__secret__descriptor;
    ProtobufCMessage *cert = yaml(s, sd,
                                  "name: default\ntls_certificate:\n"
                                  "  certificate_chain: {filename: " CERTS "server.pem}\n"
                                  "  private_key: {filename: " CERTS "server.key}\n");
    ProtobufCMessage *root = yaml(
        s, sd, "name: ROOTCA\nvalidation_context: {trusted_ca: {filename: " CERTS "root-a.pem}}\n");
    keep(s, cert);
    keep(s, root);
    config_resources_add_xds(&s->res.secrets, cert, "ads", 0, "1");
    config_resources_add_xds(&s->res.secrets, root, "ads", 1, "1");
    int rc = config_resources_validate(&s->res, s->err, sizeof(s->err));
    if (rc < 0)
        return rc;
    void *b = s->bootstrap;
    s->bootstrap = NULL;
    return snapshot_build_resources(&s->res, b, &test_snap_opts, s->stats, 2, &s->snap, s->err,
                                    sizeof(s->err));
}

static void sidecar_free(sidecar_t *s)
{
    snapshot_unref(s->snap);
    config_resources_free(&s->res);
    for (size_t i = 0; i < s->n_msgs; i++)
        protobuf_c_message_free_unpacked(s->msgs[i], NULL);
    free(s->msgs);
    if (s->bootstrap)
        protobuf_c_message_free_unpacked(s->bootstrap, NULL);
    stats_store_free(s->stats);
}

static view_t *build(const view_registry_t *reg, const view_t *prev)
{
    view_t *v = NULL;
    char err[256];
    if (view_build(reg, prev, &v, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    return v;
}

static void accepted(const view_registry_t *reg, const char *id)
{
    view_t *v = build(reg, NULL);
    sidecar_t s;
    if (sidecar_build(&s, v, id) != 0)
        fail_msg("%s: %s", id, s.err);
    assert_int_equal(s.snap->n_listeners, 2);
    assert_non_null(snapshot_find_listener(s.snap, "virtualOutbound"));
    assert_non_null(snapshot_find_listener(s.snap, "virtualInbound"));
    /* Everything the listeners and clusters name was in the set. */
    snap_refs_t refs;
    snapshot_references(s.snap, &refs);
    for (size_t i = 0; i < refs.endpoints.n; i++)
        if (refs.endpoints.v[i].missing)
            fail_msg("%s: assignment '%s' missing", id, refs.endpoints.v[i].name);
    for (size_t i = 0; i < refs.route_configs.n; i++)
        if (refs.route_configs.v[i].missing)
            fail_msg("%s: route configuration '%s' missing", id, refs.route_configs.v[i].name);
    for (size_t i = 0; i < refs.secrets.n; i++)
        if (refs.secrets.v[i].missing)
            fail_msg("%s: secret '%s' missing", id, refs.secrets.v[i].name);
    snapshot_refs_free(&refs);
    sidecar_free(&s);
    view_free(v);
}

static void test_every_sidecar_view_builds_a_snapshot_in_the_sidecar(void **state)
{
    (void)state;
    view_registry_t reg = fx_registry();
    accepted(&reg, "sidecar~198.18.0.1~web-1.default~default.svc.cluster.local"); /* off */
    accepted(&reg, "api-1.secure");                                               /* strict */
    accepted(&reg, "m-1.mixed");                                                  /* permissive */
    reg.mesh.mtls = VIEW_MTLS_STRICT;
    accepted(&reg, "web-1.default");
    reg.mesh.mtls = VIEW_MTLS_PERMISSIVE;
    accepted(&reg, "web-1.default");
}

/* Routes attached to a service (weighted clusters, a weight of 0 left out, header and method
 * matchers, a timeout, a 500) are what the sidecar's route builder takes. */
static void test_sidecar_takes_the_routes_attached_to_a_service(void **state)
{
    (void)state;
    fx_routed_t f;
    fx_routed(&f);
    accepted(&f.reg, "web-1.default");
    f.reg.mesh.mtls = VIEW_MTLS_STRICT;
    accepted(&f.reg, "m-1.mixed");
}

static void test_sidecar_refuses_the_proxyless_api_listener(void **state)
{
    (void)state;
    view_registry_t reg = fx_registry();
    view_t *v = build(&reg, NULL);
    sidecar_t s;
    memset(&s, 0, sizeof(s));
    s.stats = stats_store_new(2);
    s.bootstrap = yaml(&s, &envoy__config__bootstrap__v3__bootstrap__descriptor, "node: {id: x}\n");
    assert_int_equal(config_resources_from_bootstrap(s.bootstrap, &s.res, s.err, sizeof(s.err)), 0);
    const view_resource_t *r = &view_find_group(v, VIEW_GROUP_GRPC_LISTENERS, "")->v[0];
    ProtobufCMessage *m =
        protobuf_c_message_unpack(fx_desc(r->type_url), NULL, r->blob->len, r->blob->bytes);
    keep(&s, m);
    config_resources_add_xds(&s.res.listeners, m, "ads", 0, "1");
    assert_int_equal(config_resources_validate(&s.res, s.err, sizeof(s.err)), 0);
    void *b = s.bootstrap;
    s.bootstrap = NULL;
    assert_int_equal(snapshot_build_resources(&s.res, b, &test_snap_opts, s.stats, 2, &s.snap,
                                              s.err, sizeof(s.err)),
                     -EINVAL);
    assert_non_null(strstr(s.err, "api_listener is not supported"));
    sidecar_free(&s);
    view_free(v);
}

/* ---- the node from a DiscoveryRequest ------------------------------------------------------- */

static void test_node_metadata_marks_proxyless_clients_and_names_the_namespace(void **state)
{
    (void)state;
    sidecar_t s;
    memset(&s, 0, sizeof(s));
    Envoy__Config__Core__V3__Node *node = (Envoy__Config__Core__V3__Node *)yaml(
        &s, &envoy__config__core__v3__node__descriptor,
        "id: sidecar~198.18.0.9~client-1.default~default.svc.cluster.local\n"
        "metadata: {GENERATOR: grpc, NAMESPACE: default, SERVICE_ACCOUNT: client, "
        "WORKLOAD_NAME: client}\n");
    view_node_t n;
    assert_int_equal(view_node_from_proto(node, &n), 0);
    assert_true(n.proxyless);
    assert_string_equal(n.pod, "client-1");
    assert_string_equal(n.namespace_, "default");
    assert_string_equal(n.service_account, "client");
    assert_string_equal(n.workload_name, "client");
    protobuf_c_message_free_unpacked(&node->base, NULL);
    /* An id that names no pod: the metadata's namespace still places it. */
    node = (Envoy__Config__Core__V3__Node *)yaml(&s, &envoy__config__core__v3__node__descriptor,
                                                 "id: grpc-client\n"
                                                 "metadata: {NAMESPACE: secure}\n");
    assert_int_equal(view_node_from_proto(node, &n), 0);
    assert_false(n.proxyless);
    assert_null(n.pod);
    assert_string_equal(n.namespace_, "secure");
    protobuf_c_message_free_unpacked(&node->base, NULL);
    node = (Envoy__Config__Core__V3__Node *)yaml(&s, &envoy__config__core__v3__node__descriptor,
                                                 "id: nothing\n");
    assert_int_equal(view_node_from_proto(node, &n), -EINVAL);
    protobuf_c_message_free_unpacked(&node->base, NULL);
}

/* ---- change --------------------------------------------------------------------------------- */

static void test_rebuild_changes_only_the_resources_whose_content_changed(void **state)
{
    (void)state;
    view_registry_t reg = fx_registry();
    view_t *a = build(&reg, NULL);
    /* One web endpoint becomes ready. */
    view_service_t svcs[5];
    view_endpoint_t eps[4];
    memcpy(svcs, fx_services, sizeof(svcs));
    memcpy(eps, fx_web_eps, sizeof(eps));
    eps[3].ready = true;
    svcs[0].endpoints = eps;
    reg.services = svcs;
    view_t *b = build(&reg, a);
    size_t changed = 0, total = 0;
    for (size_t i = 0; i < b->n; i++) {
        const view_group_t *gb = &b->groups[i];
        const view_group_t *ga = view_find_group(a, gb->kind, gb->key);
        assert_non_null(ga);
        for (size_t j = 0; j < gb->n; j++) {
            const view_resource_t *ra = view_group_resource(ga, gb->v[j].name);
            assert_non_null(ra);
            total++;
            if (ra->blob->hash != gb->v[j].blob->hash) {
                changed++;
                assert_int_equal(gb->kind, VIEW_GROUP_ENDPOINTS);
                assert_string_equal(gb->v[j].name, "outbound|80||web.default.svc.cluster.local");
            } else {
                assert_ptr_equal(ra->blob, gb->v[j].blob); /* the same bytes, shared */
            }
        }
        if (gb->kind != VIEW_GROUP_ENDPOINTS)
            assert_true(ga->hash == gb->hash);
    }
    assert_int_equal(changed, 1);
    assert_true(total > 20);
    assert_true(view_find_group(a, VIEW_GROUP_ENDPOINTS, "")->hash !=
                view_find_group(b, VIEW_GROUP_ENDPOINTS, "")->hash);
    view_free(a); /* b keeps the blobs it shares */
    sidecar_t s;
    assert_int_equal(sidecar_build(&s, b, "web-1.default"), 0);
    sidecar_free(&s);
    view_free(b);
}

/* ---- scale ---------------------------------------------------------------------------------- */

#define BIG_SERVICES  1000
#define BIG_EPS       5
#define BIG_NS        10
#define BIG_WORKLOADS 1000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_full_build_at_1000_services_and_5000_endpoints(void **state)
{
    (void)state;
    static char names[BIG_SERVICES][32], vips[BIG_SERVICES][32], ips[BIG_SERVICES][BIG_EPS][32];
    static char nss[BIG_NS][16];
    static view_service_t svcs[BIG_SERVICES];
    static view_endpoint_t eps[BIG_SERVICES][BIG_EPS];
    static view_workload_t wls[BIG_WORKLOADS];
    static const view_port_t ports[] = {{80, "http", VIEW_PROTO_HTTP, 8080},
                                        {9000, "tcp", VIEW_PROTO_TCP, 9000}};
    static const view_port_t pod_ports[] = {{8080, "http", VIEW_PROTO_HTTP, 0},
                                            {9000, "tcp", VIEW_PROTO_TCP, 0}};
    for (size_t n = 0; n < BIG_NS; n++)
        snprintf(nss[n], sizeof(nss[n]), "ns%zu", n);
    for (size_t i = 0; i < BIG_SERVICES; i++) {
        snprintf(names[i], sizeof(names[i]), "svc%zu", i);
        snprintf(vips[i], sizeof(vips[i]), "198.19.%zu.%zu", i / 250, i % 250 + 1);
        for (size_t e = 0; e < BIG_EPS; e++) {
            size_t k = i * BIG_EPS + e;
            snprintf(ips[i][e], sizeof(ips[i][e]), "198.18.%zu.%zu", k / 250, k % 250 + 1);
            eps[i][e] =
                (view_endpoint_t){ips[i][e], NULL, true, e % 2 ? "zone-b" : "zone-a", names[i]};
        }
        svcs[i] = (view_service_t){.namespace_ = nss[i % BIG_NS],
                                   .name = names[i],
                                   .vip = vips[i],
                                   .ports = ports,
                                   .n_ports = 2,
                                   .endpoints = eps[i],
                                   .n_endpoints = BIG_EPS};
        if (i < BIG_WORKLOADS)
            wls[i] = (view_workload_t){nss[i % BIG_NS], names[i], ips[i][0], names[i], names[i],
                                       pod_ports,       2,        NULL,      0};
    }
    view_namespace_t strict = {"ns0", VIEW_MTLS_STRICT};
    view_registry_t reg = {
        .mesh = {.trust_domain = "cluster.local",
                 .mtls = VIEW_MTLS_PERMISSIVE,
                 .outbound_port = 15001,
                 .inbound_port = 15006,
                 .inbound_source = "127.0.0.6"},
        .namespaces = &strict,
        .n_namespaces = 1,
        .services = svcs,
        .n_services = BIG_SERVICES,
        .workloads = wls,
        .n_workloads = BIG_WORKLOADS,
    };
    double t0 = now_ms();
    view_t *a = build(&reg, NULL);
    double t1 = now_ms();
    eps[7][2].ready = false;
    view_t *b = build(&reg, a);
    double t2 = now_ms();
    size_t n = 0, bytes = 0, kind_bytes[VIEW_GROUP_KINDS] = {0};
    for (size_t i = 0; i < b->n; i++)
        for (size_t j = 0; j < b->groups[i].n; j++, n++) {
            bytes += b->groups[i].v[j].blob->len;
            kind_bytes[b->groups[i].kind] += b->groups[i].v[j].blob->len;
        }
    print_message("view: bytes by kind: clusters %zu, endpoints %zu, routes %zu, outbound %zu, "
                  "inbound %zu, grpc listeners %zu, grpc routes %zu, grpc clusters %zu\n",
                  kind_bytes[0], kind_bytes[1], kind_bytes[2], kind_bytes[3], kind_bytes[4],
                  kind_bytes[5], kind_bytes[6], kind_bytes[7]);
    print_message("view: %d services, %d endpoints, %d workloads: %zu groups, %zu resources, "
                  "%zu bytes; full build %.1f ms, rebuild after one endpoint change %.1f ms\n",
                  BIG_SERVICES, BIG_SERVICES * BIG_EPS, BIG_WORKLOADS, b->n, n, bytes, t1 - t0,
                  t2 - t1);
    /* What a sidecar of the strict namespace holds is still one the sidecar builds. */
    sidecar_t s;
    if (sidecar_build(&s, b, "svc0.ns0") != 0)
        fail_msg("%s", s.err);
    sidecar_free(&s);
    view_free(a);
    view_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_sidecar_view_builds_a_snapshot_in_the_sidecar),
        cmocka_unit_test(test_sidecar_takes_the_routes_attached_to_a_service),
        cmocka_unit_test(test_sidecar_refuses_the_proxyless_api_listener),
        cmocka_unit_test(test_node_metadata_marks_proxyless_clients_and_names_the_namespace),
        cmocka_unit_test(test_rebuild_changes_only_the_resources_whose_content_changed),
        cmocka_unit_test(test_full_build_at_1000_services_and_5000_endpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
