/* From the Kubernetes index to the view's service registry: Service kinds and VIPs, TCP ports
 * only and their mesh protocol, endpoints' ports resolved by name, readiness, the service
 * accounts behind a Service, workload names from their owners, a namespace's mTLS annotation,
 * the ports a pod takes from the Services that send to it when it declares none (and the
 * protocol of those it declares unnamed), and the rules
 * of the HTTPRoutes attached to a Service. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cp/cp_registry.h"

static const char MESH[] =
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, annotations: {remora.io/mtls: "
    "strict}}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
    "spec:\n  clusterIP: 198.19.0.20\n  selector: {app: web}\n"
    "  ports:\n  - {name: http, port: 80, targetPort: web-port}\n"
    "  - {name: dns, port: 53, protocol: UDP}\n  - {name: grpc-api, port: 9090, targetPort: 9090}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop}\n"
    "spec: {clusterIP: None, ports: [{name: tcp, port: 5432}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: shop}\n"
    "spec: {type: ExternalName, externalName: api.example.com, ports: [{port: 443, name: https}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: pending, namespace: shop}\n"
    "spec: {ports: [{port: 80}]}\n"
    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: web-a, namespace: shop, labels: {kubernetes.io/service-name: web}}\n"
    "addressType: IPv4\nports: [{name: http, port: 8080}, {name: grpc-api, port: 9090}]\n"
    "endpoints:\n- addresses: [198.18.0.3]\n  targetRef: {kind: Pod, name: web-7f9c-abcde, "
    "namespace: shop}\n"
    "- addresses: [198.18.0.4]\n  conditions: {ready: false}\n"
    "---\napiVersion: v1\nkind: Pod\n"
    "metadata:\n  name: web-7f9c-abcde\n  namespace: shop\n  labels: {app: web}\n"
    "  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7f9c, uid: u}]\n"
    "spec: {serviceAccountName: web-sa, containers: [{name: app, image: x}]}\n"
    "status: {phase: Running, podIP: 198.18.0.3}\n";

typedef struct rig {
    mesh_index_t *idx;
    cp_registry_t reg;
} rig_t;

static void rig_fill_text(rig_t *r, const char *text)
{
    mesh_read_t rd;
    assert_int_equal(mesh_read_buffer("mesh.yaml", text, strlen(text), &rd), 0);
    mesh_batch_t b = {0};
    for (size_t i = 0; i < rd.count; i++)
        assert_int_equal(mesh_batch_add(&b, MESH_ADDED, rd.objects[i]), 0);
    r->idx = mesh_index_new();
    assert_int_equal(mesh_index_apply(r->idx, &b, NULL), 0);
    mesh_batch_free(&b);
    mesh_read_free(&rd);
    view_mesh_t m = {.trust_domain = "cluster.local", .mtls = VIEW_MTLS_PERMISSIVE};
    assert_int_equal(cp_registry_fill(r->idx, &m, &r->reg), 0);
}

static void rig_fill(rig_t *r)
{
    rig_fill_text(r, MESH);
}

static void rig_free(rig_t *r)
{
    cp_registry_free(&r->reg);
    mesh_index_free(r->idx);
}

static const view_service_t *service(const rig_t *r, const char *name)
{
    for (size_t i = 0; i < r->reg.reg.n_services; i++)
        if (strcmp(r->reg.reg.services[i].name, name) == 0)
            return &r->reg.reg.services[i];
    return NULL;
}

static void test_registry_services_kinds_ports_and_protocols(void **state)
{
    (void)state;
    rig_t r;
    rig_fill(&r);
    const view_service_t *web = service(&r, "web");
    assert_non_null(web);
    assert_int_equal(web->kind, VIEW_SVC_CLUSTER_IP);
    assert_string_equal(web->vip, "198.19.0.20");
    /* The UDP port is left out. */
    assert_int_equal(web->n_ports, 2);
    assert_int_equal(web->ports[0].port, 80);
    assert_int_equal(web->ports[0].protocol, VIEW_PROTO_HTTP);
    assert_int_equal(web->ports[1].protocol, VIEW_PROTO_GRPC);
    assert_int_equal(service(&r, "db")->kind, VIEW_SVC_HEADLESS);
    assert_int_equal(service(&r, "ext")->kind, VIEW_SVC_EXTERNAL_NAME);
    assert_string_equal(service(&r, "ext")->external_name, "api.example.com");
    /* No cluster IP yet: not served. */
    assert_null(service(&r, "pending"));
    assert_int_equal(r.reg.skipped_services, 1);
    rig_free(&r);
}

static void test_registry_endpoints_ports_readiness_and_identity(void **state)
{
    (void)state;
    rig_t r;
    rig_fill(&r);
    const view_service_t *web = service(&r, "web");
    assert_int_equal(web->n_endpoints, 2);
    const view_endpoint_t *a = &web->endpoints[0], *b = &web->endpoints[1];
    if (strcmp(a->address, "198.18.0.3") != 0) {
        const view_endpoint_t *t = a;
        a = b;
        b = t;
    }
    /* targetPort "web-port" is resolved through the slice's port of the same name. */
    assert_int_equal(a->ports[0], 8080);
    assert_int_equal(a->ports[1], 9090);
    assert_true(a->ready);
    assert_false(b->ready);
    assert_string_equal(a->service_account, "web-sa");
    assert_int_equal(web->n_service_accounts, 1);
    assert_string_equal(web->service_accounts[0], "web-sa");
    rig_free(&r);
}

static void test_registry_workloads_and_namespaces(void **state)
{
    (void)state;
    rig_t r;
    rig_fill(&r);
    assert_int_equal(r.reg.reg.n_workloads, 1);
    const view_workload_t *w = &r.reg.reg.workloads[0];
    assert_string_equal(w->workload_name, "web");
    assert_string_equal(w->service_account, "web-sa");
    /* It declares no container port: it takes 8080 and 9090 from the Service web. */
    assert_int_equal(w->n_ports, 2);
    bool p8080 = false, p9090 = false;
    for (size_t i = 0; i < w->n_ports; i++) {
        p8080 |= w->ports[i].port == 8080 && w->ports[i].protocol == VIEW_PROTO_HTTP;
        p9090 |= w->ports[i].port == 9090 && w->ports[i].protocol == VIEW_PROTO_GRPC;
    }
    assert_true(p8080 && p9090);
    assert_int_equal(r.reg.reg.n_namespaces, 1);
    assert_string_equal(r.reg.reg.namespaces[0].name, "shop");
    assert_int_equal(r.reg.reg.namespaces[0].mtls, VIEW_MTLS_STRICT);
    rig_free(&r);
}

/* A pod that declares its ports without names (most do): a port a Service sends to takes the
 * Service port's protocol (grpc, by appProtocol here), as Istio reads it; a named one keeps its
 * own; a port no Service sends to stays unknown. */
static const char DECLARED[] =
    "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\n"
    "spec:\n  clusterIP: 198.19.0.30\n  selector: {app: api}\n"
    "  ports:\n  - {name: rpc, appProtocol: grpc, port: 7070, targetPort: 9090}\n"
    "  - {name: web, port: 80, targetPort: 8080}\n"
    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: api-a, namespace: shop, labels: {kubernetes.io/service-name: api}}\n"
    "addressType: IPv4\nports: [{name: rpc, port: 9090}, {name: web, port: 8080}]\n"
    "endpoints:\n- addresses: [198.18.0.7]\n"
    "---\napiVersion: v1\nkind: Pod\n"
    "metadata: {name: api-1, namespace: shop, labels: {app: api}}\n"
    "spec:\n  containers:\n  - name: app\n    image: x\n"
    "    ports: [{containerPort: 9090}, {containerPort: 8080, name: http-web}, "
    "{containerPort: 9100}]\n"
    "status: {phase: Running, podIP: 198.18.0.7}\n";

static void test_registry_unnamed_declared_port_takes_the_service_protocol(void **state)
{
    (void)state;
    rig_t r;
    rig_fill_text(&r, DECLARED);
    assert_int_equal(r.reg.reg.n_workloads, 1);
    const view_workload_t *w = &r.reg.reg.workloads[0];
    assert_int_equal(w->n_ports, 3); /* declared ones only: no port added twice */
    for (size_t i = 0; i < w->n_ports; i++) {
        view_protocol_t want = w->ports[i].port == 9090   ? VIEW_PROTO_GRPC
                               : w->ports[i].port == 8080 ? VIEW_PROTO_HTTP
                                                          : VIEW_PROTO_UNKNOWN;
        if (w->ports[i].protocol != want)
            fail_msg("port %u: protocol %d, want %d", w->ports[i].port, (int)w->ports[i].protocol,
                     (int)want);
    }
    rig_free(&r);
}

/* Routes on web: "b-split" (2 rules) on port 80 and, by its section name, on grpc-api, and
 * on a Gateway (not the mesh's); "a-first" (1 rule) on every port; "c-none" on a Service that
 * does not exist. */
static const char ROUTES[] =
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
    "metadata: {name: b-split, namespace: shop}\n"
    "spec:\n  parentRefs:\n  - {group: \"\", kind: Service, name: web, port: 80}\n"
    "  - {group: core, kind: Service, name: web, sectionName: grpc-api}\n"
    "  - {name: ingress}\n"
    "  rules:\n"
    "  - matches: [{path: {type: Exact, value: /v2}, headers: [{name: x-v, value: \"2\"}], "
    "method: GET}]\n"
    "    backendRefs: [{name: web, port: 80, weight: 90}, {name: db, namespace: shop, weight: 10},"
    " {kind: Bucket, group: example.com, name: b}]\n"
    "    timeouts: {request: 250ms}\n"
    "  - backendRefs: [{name: web}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
    "metadata: {name: a-first, namespace: shop}\n"
    "spec:\n  parentRefs: [{group: \"\", kind: Service, name: web}]\n"
    "  rules: [{backendRefs: [{name: web, port: 80}]}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
    "metadata: {name: c-none, namespace: shop}\n"
    "spec:\n  parentRefs: [{group: \"\", kind: Service, name: nothere}]\n"
    "  rules: [{backendRefs: [{name: web, port: 80}]}]\n";

static void test_registry_gives_a_service_the_rules_of_the_routes_attached_to_it(void **state)
{
    (void)state;
    char text[sizeof(MESH) + sizeof(ROUTES)];
    snprintf(text, sizeof(text), "%s%s", MESH, ROUTES);
    rig_t r;
    rig_fill_text(&r, text);
    const view_service_t *web = service(&r, "web");
    assert_non_null(web);
    /* a-first's rule (every port), then b-split's two on port 80 and again on 9090 */
    assert_int_equal(web->n_http_rules, 5);
    const view_http_rule_t *a = &web->http_rules[0];
    assert_string_equal(a->route_name, "a-first");
    assert_int_equal(a->port, 0);
    assert_int_equal(a->n_matches, 0);
    const view_http_rule_t *b0 = &web->http_rules[1], *b1 = &web->http_rules[2];
    assert_string_equal(b0->route_ns, "shop");
    assert_string_equal(b0->route_name, "b-split");
    assert_int_equal(b0->rule_index, 0);
    assert_int_equal(b0->port, 80);
    assert_int_equal(b0->n_matches, 1);
    assert_int_equal(b0->matches[0].path_type, VIEW_PATH_EXACT);
    assert_string_equal(b0->matches[0].path, "/v2");
    assert_int_equal(b0->matches[0].n_headers, 1);
    assert_string_equal(b0->matches[0].headers[0].name, "x-v");
    assert_string_equal(b0->matches[0].headers[0].value, "2");
    assert_string_equal(b0->matches[0].method, "GET");
    assert_true(b0->has_timeout);
    assert_int_equal(b0->timeout_ms, 250);
    assert_int_equal(b0->n_backends, 3);
    assert_string_equal(b0->backends[0].namespace_, "shop");
    assert_string_equal(b0->backends[0].name, "web");
    assert_int_equal(b0->backends[0].port, 80);
    assert_int_equal(b0->backends[0].weight, 90);
    assert_false(b0->backends[0].invalid);
    assert_string_equal(b0->backends[1].name, "db");
    assert_int_equal(b0->backends[1].port, 0); /* the parent's */
    assert_true(b0->backends[2].invalid);      /* not a Service */
    assert_int_equal(b1->rule_index, 1);
    assert_int_equal(b1->port, 80);
    assert_int_equal(b1->backends[0].weight, 1);
    /* sectionName grpc-api is port 9090 */
    assert_int_equal(web->http_rules[3].port, 9090);
    assert_int_equal(web->http_rules[4].port, 9090);
    assert_int_equal(service(&r, "db")->n_http_rules, 0);
    rig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_services_kinds_ports_and_protocols),
        cmocka_unit_test(test_registry_unnamed_declared_port_takes_the_service_protocol),
        cmocka_unit_test(test_registry_endpoints_ports_readiness_and_identity),
        cmocka_unit_test(test_registry_workloads_and_namespaces),
        cmocka_unit_test(test_registry_gives_a_service_the_rules_of_the_routes_attached_to_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
