/* The manifest reader: what each kind's fields become, the API's defaults, Istio's protocol
 * rule, multi-document files, Lists, `kubectl get -o yaml` output, JSON, watch events, and
 * every invalid document reported with its file, line, document and field path. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test/unit/test_mesh.h"

static void test_mesh_service_fields_and_api_defaults(void **state)
{
    (void)state;
    mesh_object_t *o = read_one("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n"
                                "  uid: u1\n  resourceVersion: \"7\"\n"
                                "  labels: {b: \"2\", a: \"1\"}\n"
                                "spec:\n  type: NodePort\n  selector: {app: web}\n"
                                "  clusterIP: 198.19.0.10\n"
                                "  ports:\n  - name: http\n    port: 80\n    nodePort: 30080\n"
                                "  - name: dns\n    port: 53\n    targetPort: dns\n"
                                "    protocol: UDP\n");
    assert_int_equal(o->meta.kind, MESH_SERVICE);
    assert_string_equal(o->meta.ns, "default");
    assert_string_equal(o->meta.uid, "u1");
    assert_string_equal(o->meta.resource_version, "7");
    assert_int_equal(o->meta.labels.count, 2);
    assert_string_equal(o->meta.labels.items[0].key, "a"); /* sorted */
    assert_int_equal(o->svc.type, MESH_SVC_NODE_PORT);
    assert_string_equal(o->svc.cluster_ip, "198.19.0.10");
    assert_false(o->svc.headless);
    assert_true(o->svc.has_selector);
    assert_string_equal(label(&o->svc.selector, "app"), "web");
    assert_int_equal(o->svc.nports, 2);
    assert_int_equal(o->svc.ports[0].port, 80);
    assert_int_equal(o->svc.ports[0].target_port, 80); /* absent: the port */
    assert_null(o->svc.ports[0].target_port_name);
    assert_int_equal(o->svc.ports[0].protocol, MESH_L4_TCP);
    assert_int_equal(o->svc.ports[0].node_port, 30080);
    assert_int_equal(o->svc.ports[1].target_port, 0);
    assert_string_equal(o->svc.ports[1].target_port_name, "dns");
    assert_int_equal(o->svc.ports[1].protocol, MESH_L4_UDP);
    assert_int_equal(o->svc.ports[1].mesh_protocol, MESH_PROTO_UDP);
    mesh_object_unref(o);
}

static void test_mesh_service_headless_external_name_and_cluster_ips(void **state)
{
    (void)state;
    mesh_object_t *h = read_one("kind: Service\nmetadata: {name: h, namespace: ns}\n"
                                "spec: {clusterIP: None, ports: [{port: 80}]}\n");
    assert_true(h->svc.headless);
    assert_false(h->svc.has_selector);
    mesh_object_t *x = read_one("kind: Service\nmetadata: {name: x}\n"
                                "spec: {type: ExternalName, externalName: db.example.com}\n");
    assert_int_equal(x->svc.type, MESH_SVC_EXTERNAL_NAME);
    assert_string_equal(x->svc.external_name, "db.example.com");
    assert_int_equal(x->svc.nports, 0);
    mesh_object_t *d = read_one("kind: Service\nmetadata: {name: d}\n"
                                "spec: {clusterIPs: [198.19.0.5, 'fd00::5'], ports: [{port: 1}]}");
    assert_string_equal(d->svc.cluster_ip, "198.19.0.5"); /* clusterIP absent: the first */
    assert_int_equal(d->svc.ncluster_ips, 2);
    char err[512];
    assert_non_null(strstr(read_error("kind: Service\nmetadata: {name: x}\n"
                                      "spec: {type: ExternalName}\n",
                                      err, sizeof(err)),
                           "spec.externalName: missing"));
    assert_non_null(strstr(read_error("kind: Service\nmetadata: {name: x}\n"
                                      "spec: {clusterIP: nowhere}\n",
                                      err, sizeof(err)),
                           "spec.clusterIP: \"nowhere\" is neither an IP address nor None"));
    mesh_object_unref(h);
    mesh_object_unref(x);
    mesh_object_unref(d);
}

static void test_mesh_port_protocol_app_protocol_first_then_port_name(void **state)
{
    (void)state;
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, "grpc", "http-web"), MESH_PROTO_GRPC);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, "kubernetes.io/h2c", NULL), MESH_PROTO_HTTP2);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, "HTTPS", NULL), MESH_PROTO_HTTPS);
    /* an appProtocol that names none of ours leaves it to the name */
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, "example.com/custom", "tcp-x"),
                     MESH_PROTO_TCP);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "http"), MESH_PROTO_HTTP);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "http2-api"), MESH_PROTO_HTTP2);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "grpc-web"), MESH_PROTO_GRPC_WEB);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "grpc-web-x"), MESH_PROTO_GRPC_WEB);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "grpc-x"), MESH_PROTO_GRPC);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "TLS-edge"), MESH_PROTO_TLS);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "mongo"), MESH_PROTO_MONGO);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "mysql-main"), MESH_PROTO_MYSQL);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "redis"), MESH_PROTO_REDIS);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "udp"), MESH_PROTO_UDP);
    /* the protocol must be the whole name or the part before the first '-' */
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "httpx"), MESH_PROTO_UNKNOWN);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, "web-http"), MESH_PROTO_UNKNOWN);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, ""), MESH_PROTO_UNKNOWN);
    assert_int_equal(mesh_port_protocol(MESH_L4_TCP, NULL, NULL), MESH_PROTO_UNKNOWN);
    assert_int_equal(mesh_port_protocol(MESH_L4_UDP, "http", "http"), MESH_PROTO_UDP);
    assert_string_equal(mesh_proto_name(MESH_PROTO_GRPC_WEB), "grpc-web");
    assert_string_equal(mesh_proto_name(MESH_PROTO_UNKNOWN), "unknown");
}

static void test_mesh_endpoints_ready_and_not_ready_addresses(void **state)
{
    (void)state;
    mesh_object_t *o = read_one(
        "kind: Endpoints\nmetadata: {name: web, namespace: shop}\nsubsets:\n"
        "- addresses: [{ip: 198.18.0.1, nodeName: n1, targetRef: {kind: Pod, name: p1}}]\n"
        "  notReadyAddresses: [{ip: 198.18.0.2, hostname: h2}]\n"
        "  ports: [{name: http, port: 8080}, {name: grpc, port: 9090, appProtocol: grpc}]\n");
    assert_int_equal(o->eps.nsubsets, 1);
    const mesh_ep_subset_t *s = &o->eps.subsets[0];
    assert_int_equal(s->naddresses, 2);
    assert_string_equal(s->addresses[0].ip, "198.18.0.1");
    assert_true(s->addresses[0].ready);
    assert_string_equal(s->addresses[0].node_name, "n1");
    assert_string_equal(s->addresses[0].target.kind, "Pod");
    assert_string_equal(s->addresses[0].target.name, "p1");
    assert_string_equal(s->addresses[1].ip, "198.18.0.2");
    assert_false(s->addresses[1].ready);
    assert_string_equal(s->addresses[1].hostname, "h2");
    assert_int_equal(s->nports, 2);
    assert_string_equal(s->ports[1].app_protocol, "grpc");
    mesh_object_unref(o);
}

static void test_mesh_endpoint_slice_absent_conditions_mean_ready_and_serving(void **state)
{
    (void)state;
    mesh_object_t *o =
        read_one("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                 "metadata: {name: web-abc, labels: {kubernetes.io/service-name: web}}\n"
                 "addressType: IPv4\n"
                 "endpoints:\n"
                 "- addresses: [198.18.0.1]\n"
                 "- addresses: [198.18.0.2]\n  conditions: {ready: false, terminating: true}\n"
                 "  zone: z1\n  nodeName: n2\n  hostname: h\n"
                 "ports: [{name: http, port: 8080, protocol: TCP}, {name: all}]\n");
    const mesh_endpoint_slice_t *s = &o->slice;
    assert_string_equal(s->service_name, "web");
    assert_true(s->ipv4);
    assert_int_equal(s->nendpoints, 2);
    assert_true(s->endpoints[0].ready);
    assert_true(s->endpoints[0].serving);
    assert_false(s->endpoints[0].terminating);
    assert_false(s->endpoints[1].ready);
    assert_true(s->endpoints[1].serving);
    assert_true(s->endpoints[1].terminating);
    assert_string_equal(s->endpoints[1].zone, "z1");
    assert_string_equal(s->endpoints[1].node_name, "n2");
    assert_string_equal(s->endpoints[1].hostname, "h");
    assert_int_equal(s->nports, 2);
    assert_int_equal(s->ports[1].port, 0); /* a port may be left out: every port */
    mesh_object_unref(o);
}

static void test_mesh_endpoint_slice_of_ipv6_is_kept_empty_with_a_note(void **state)
{
    (void)state;
    mesh_read_t r;
    assert_int_equal(read_text("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                               "metadata: {name: web-v6}\naddressType: IPv6\n"
                               "endpoints: [{addresses: ['fd00::1']}]\n",
                               &r),
                     0);
    assert_int_equal(r.count, 1);
    assert_false(r.objects[0]->slice.ipv4);
    assert_int_equal(r.objects[0]->slice.nendpoints, 0);
    assert_int_equal(r.report.nnotes, 1);
    assert_non_null(strstr(r.report.notes[0], "mem.yaml:"));
    assert_non_null(strstr(r.report.notes[0], "addressType IPv6: endpoints not read"));
    mesh_read_free(&r);
}

static void test_mesh_pod_fields_and_defaults(void **state)
{
    (void)state;
    mesh_object_t *o = read_one(
        "kind: Pod\nmetadata:\n  name: p\n  annotations: {sidecar.istio.io/inject: \"true\"}\n"
        "  ownerReferences: [{kind: ReplicaSet, name: rs}]\n"
        "spec:\n  containers:\n  - name: a\n    ports: [{name: http, containerPort: 8080}]\n"
        "  - name: b\n    ports: [{containerPort: 53, protocol: UDP}]\n"
        "status:\n  phase: Running\n  podIPs: [{ip: 198.18.0.7}]\n"
        "  conditions: [{type: Ready, status: \"False\"}]\n");
    const mesh_pod_t *p = &o->pod;
    assert_string_equal(p->service_account, "default");
    assert_null(p->node_name);
    assert_int_equal(p->nports, 2);
    assert_string_equal(p->ports[0].container, "a");
    assert_string_equal(p->ports[0].name, "http");
    assert_int_equal(p->ports[0].container_port, 8080);
    assert_string_equal(p->ports[1].container, "b");
    assert_null(p->ports[1].name);
    assert_int_equal(p->ports[1].protocol, MESH_L4_UDP);
    assert_string_equal(p->pod_ip, "198.18.0.7"); /* podIP absent: the first of podIPs */
    assert_int_equal(p->phase, MESH_POD_RUNNING);
    assert_false(p->ready);
    assert_string_equal(label(&o->meta.annotations, "sidecar.istio.io/inject"), "true");
    assert_int_equal(o->meta.nowners, 1);
    assert_string_equal(o->meta.owners[0].kind, "ReplicaSet");
    assert_string_equal(o->meta.owners[0].name, "rs");
    mesh_object_unref(o);
    o = read_one("kind: Pod\nmetadata: {name: q}\nspec: {containers: [{name: a}]}\n");
    assert_int_equal(o->pod.phase, MESH_POD_PENDING);
    assert_null(o->pod.pod_ip);
    assert_false(o->pod.ready);
    mesh_object_unref(o);
}

static void test_mesh_network_policy_selectors_peers_and_ports(void **state)
{
    (void)state;
    size_t len;
    char *text = fixture(MESH_FIXTURES "/handwritten.yaml", &len);
    mesh_read_t r;
    assert_int_equal(mesh_read_buffer("handwritten.yaml", text, len, &r), 0);
    const mesh_object_t *o = find(&r, MESH_NETWORK_POLICY, "shop", "web-from-front");
    assert_non_null(o);
    const mesh_network_policy_t *np = &o->np;
    assert_string_equal(label(&np->pod_selector.match_labels, "app"), "web");
    assert_true(np->ingress);
    assert_false(np->egress); /* policyTypes absent and no egress rules */
    assert_int_equal(np->ningress_rules, 1);
    const mesh_np_rule_t *rule = &np->ingress_rules[0];
    assert_int_equal(rule->npeers, 2);
    assert_true(rule->peers[0].has_pod_selector);
    assert_true(rule->peers[0].has_ns_selector);
    assert_int_equal(rule->peers[0].ns_selector.nexprs, 1);
    assert_int_equal(rule->peers[0].ns_selector.exprs[0].op, MESH_SEL_IN);
    assert_int_equal(rule->peers[0].ns_selector.exprs[0].nvalues, 2);
    assert_string_equal(rule->peers[1].ip_block, "198.18.0.0/16");
    assert_int_equal(rule->peers[1].nexcept, 1);
    assert_int_equal(rule->nports, 2);
    assert_string_equal(rule->ports[0].port_name, "http");
    assert_int_equal(rule->ports[1].port, 9000);
    assert_int_equal(rule->ports[1].end_port, 9010);
    mesh_read_free(&r);
    free(text);
    mesh_object_t *eg = read_one("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                                 "metadata: {name: deny}\n"
                                 "spec: {podSelector: {}, policyTypes: [Egress]}\n");
    assert_false(eg->np.ingress);
    assert_true(eg->np.egress);
    assert_int_equal(eg->np.negress_rules, 0);
    mesh_object_unref(eg);
}

static void test_mesh_http_route_fields_and_api_defaults(void **state)
{
    (void)state;
    mesh_read_t r;
    assert_int_equal(
        read_text(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
            "metadata: {name: split, namespace: shop}\n"
            "spec:\n  parentRefs:\n"
            "  - {group: \"\", kind: Service, name: web, port: 80}\n"
            "  - {group: core, kind: Service, name: api, namespace: other, sectionName: http}\n"
            "  - {name: gw}\n"
            "  rules:\n"
            "  - matches:\n"
            "    - path: {type: Exact, value: /v2}\n"
            "      headers: [{name: x-canary, value: \"yes\"}]\n"
            "      method: POST\n"
            "    - {}\n"
            "    backendRefs:\n"
            "    - {name: web-v1, port: 8080, weight: 90}\n"
            "    - {name: web-v2, namespace: beta, weight: 0}\n"
            "    - {name: web-v3}\n"
            "    - {group: example.com, kind: Bucket, name: b}\n"
            "    timeouts: {request: 1m30s}\n"
            "  - backendRefs: [{name: web-v1, port: 8080}]\n",
            &r),
        0);
    assert_int_equal(r.count, 1);
    const mesh_object_t *o = find(&r, MESH_HTTP_ROUTE, "shop", "split");
    assert_non_null(o);
    const mesh_http_route_t *hr = &o->route;
    assert_int_equal(hr->nparents, 2); /* the Gateway parent is not a mesh route's */
    assert_int_equal(hr->ignored_parents, 1);
    assert_int_equal(r.report.nnotes, 2); /* the Gateway and the Bucket, said */
    assert_string_equal(hr->parents[0].ns, "shop");
    assert_string_equal(hr->parents[0].name, "web");
    assert_int_equal(hr->parents[0].port, 80);
    assert_null(hr->parents[0].section);
    assert_string_equal(hr->parents[1].ns, "other");
    assert_int_equal(hr->parents[1].port, 0);
    assert_string_equal(hr->parents[1].section, "http");
    assert_int_equal(hr->nrules, 2);
    const mesh_route_rule_t *r0 = &hr->rules[0];
    assert_int_equal(r0->nmatches, 2);
    assert_int_equal(r0->matches[0].path_type, MESH_PATH_EXACT);
    assert_string_equal(r0->matches[0].path, "/v2");
    assert_int_equal(r0->matches[0].nheaders, 1);
    assert_string_equal(r0->matches[0].headers[0].name, "x-canary");
    assert_string_equal(r0->matches[0].headers[0].value, "yes");
    assert_string_equal(r0->matches[0].method, "POST");
    assert_int_equal(r0->matches[1].path_type, MESH_PATH_PREFIX); /* absent: PathPrefix / */
    assert_string_equal(r0->matches[1].path, "/");
    assert_null(r0->matches[1].method);
    assert_int_equal(r0->nbackends, 4);
    assert_true(r0->backends[0].service);
    assert_string_equal(r0->backends[0].ns, "shop"); /* absent: the route's */
    assert_int_equal(r0->backends[0].port, 8080);
    assert_int_equal(r0->backends[0].weight, 90);
    assert_string_equal(r0->backends[1].ns, "beta");
    assert_int_equal(r0->backends[1].weight, 0); /* 0 is a weight */
    assert_int_equal(r0->backends[2].port, 0);   /* absent: the parent's */
    assert_int_equal(r0->backends[2].weight, 1); /* absent: 1 */
    assert_false(r0->backends[3].service);
    assert_true(r0->has_timeout);
    assert_int_equal(r0->timeout_ms, 90000);
    assert_int_equal(hr->rules[1].nmatches, 0);
    assert_false(hr->rules[1].has_timeout);
    mesh_read_free(&r);
    mesh_object_t *beta = read_one("apiVersion: gateway.networking.k8s.io/v1beta1\n"
                                   "kind: HTTPRoute\nmetadata: {name: b}\nspec: {}\n");
    assert_int_equal(beta->meta.kind, MESH_HTTP_ROUTE);
    assert_int_equal(beta->route.nrules, 0);
    mesh_object_unref(beta);
}

static void test_mesh_http_route_bad_fields_are_errors(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *want;
    } cases[] = {
        {"rules: [{backendRefs: [{name: a, weight: -1}]}]",
         "(HTTPRoute default/r): spec.rules[0].backendRefs[0].weight: \"-1\" is not a number "
         "(0-1000000)"},
        {"rules: [{backendRefs: [{name: a, weight: 1000001}]}]",
         "spec.rules[0].backendRefs[0].weight: \"1000001\" is not a number"},
        {"rules: [{backendRefs: [{port: 80}]}]", "spec.rules[0].backendRefs[0].name: missing"},
        {"rules: [{matches: [{path: {type: RegularExpression, value: /a.*}}]}]",
         "spec.rules[0].matches[0].path.type: \"RegularExpression\" is not one of PathPrefix, "
         "Exact"},
        {"rules: [{matches: [{path: {value: v2}}]}]",
         "spec.rules[0].matches[0].path.value: \"v2\" does not start with /"},
        {"rules: [{matches: [{headers: [{type: RegularExpression, name: a, value: b}]}]}]",
         "spec.rules[0].matches[0].headers[0].type: \"RegularExpression\" is not one of Exact"},
        {"rules: [{matches: [{headers: [{name: a}]}]}]",
         "spec.rules[0].matches[0].headers[0].value: missing"},
        {"rules: [{matches: [{method: FETCH}]}]",
         "spec.rules[0].matches[0].method: \"FETCH\" is not one of GET, HEAD"},
        {"rules: [{matches: [{queryParams: [{name: a, value: b}]}]}]",
         "spec.rules[0].matches[0].queryParams: not supported"},
        {"rules: [{timeouts: {request: 10 seconds}}]",
         "spec.rules[0].timeouts.request: \"10 seconds\" is not a duration"},
        {"rules: [{timeouts: {request: 1h2m3s4ms5s}}]",
         "spec.rules[0].timeouts.request: \"1h2m3s4ms5s\" is not a duration"},
        {"parentRefs: [{kind: Service, group: \"\", name: web, port: 0}]",
         "spec.parentRefs[0].port: \"0\" is not a port number"},
        {"parentRefs: {name: web}", "spec.parentRefs: must be a list"},
        {"rules: [{backendRefs: [{name: a}, {name: a}, {name: a}, {name: a}, {name: a}, {name: a},"
         " {name: a}, {name: a}, {name: a}, {name: a}, {name: a}, {name: a}, {name: a}, {name: a},"
         " {name: a}, {name: a}, {name: a}]}]",
         "spec.rules[0].backendRefs: 17 backends; at most 16"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512], err[768];
        snprintf(text, sizeof(text),
                 "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                 "metadata: {name: r}\nspec: {%s}\n",
                 cases[i].spec);
        read_error(text, err, sizeof(err));
        if (strstr(err, cases[i].want) == NULL)
            fail_msg("case %zu: %s\nwanted: %s", i, err, cases[i].want);
    }
}

static void test_mesh_multi_document_file_skips_and_counts_other_kinds(void **state)
{
    (void)state;
    size_t len;
    char *text = fixture(MESH_FIXTURES "/handwritten.yaml", &len);
    mesh_read_t r;
    assert_int_equal(mesh_read_buffer("handwritten.yaml", text, len, &r), 0);
    assert_int_equal(r.count, 4);
    assert_int_equal(r.report.skipped, 2); /* the Deployment and the ConfigMap */
    assert_int_equal(r.report.nerrors, 0);
    const mesh_object_t *ns = find(&r, MESH_NAMESPACE, "", "shop");
    assert_non_null(ns);
    assert_string_equal(label(&ns->meta.labels, "istio-injection"), "enabled");
    const mesh_object_t *svc = find(&r, MESH_SERVICE, "shop", "web");
    assert_non_null(svc);
    assert_int_equal(svc->meta.doc, 2);
    assert_string_equal(svc->meta.file, "handwritten.yaml");
    assert_int_equal(svc->svc.ports[0].mesh_protocol, MESH_PROTO_HTTP);
    assert_string_equal(svc->svc.ports[0].target_port_name, "http");
    assert_int_equal(svc->svc.ports[1].mesh_protocol, MESH_PROTO_GRPC);
    assert_int_equal(svc->svc.ports[2].mesh_protocol, MESH_PROTO_UNKNOWN);
    const mesh_object_t *pod = find(&r, MESH_POD, "shop", "web-1");
    assert_non_null(pod);
    assert_int_equal(pod->meta.doc, 5);
    assert_string_equal(pod->pod.service_account, "web");
    assert_true(pod->pod.ready);
    mesh_read_free(&r);
    free(text);
}

static void test_mesh_kubectl_get_list_ignores_fields_not_used(void **state)
{
    (void)state;
    size_t len;
    char *text = fixture(MESH_FIXTURES "/kubectl-list.yaml", &len);
    mesh_read_t r;
    assert_int_equal(mesh_read_buffer("kubectl-list.yaml", text, len, &r), 0);
    assert_int_equal(r.count, 4);
    assert_int_equal(r.report.skipped, 1); /* the ReplicaSet */
    const mesh_object_t *svc = find(&r, MESH_SERVICE, "default", "api");
    assert_non_null(svc);
    assert_int_equal(svc->meta.doc, 1);
    assert_int_equal(svc->meta.item, 1);
    assert_string_equal(svc->meta.resource_version, "4711");
    const mesh_object_t *slice = find(&r, MESH_ENDPOINT_SLICE, "default", "api-x7k2p");
    assert_non_null(slice);
    assert_int_equal(slice->slice.nendpoints, 3);
    assert_true(slice->slice.endpoints[2].ready); /* conditions: {} */
    assert_int_equal(slice->meta.nowners, 1);
    const mesh_object_t *pod = find(&r, MESH_POD, "default", "api-7f9-abcde");
    assert_non_null(pod);
    assert_string_equal(pod->pod.service_account, "api");
    assert_string_equal(pod->pod.pod_ip, "198.18.0.21");
    assert_true(pod->pod.ready);
    assert_string_equal(r.resource_version, ""); /* kubectl leaves it empty */
    mesh_read_free(&r);
    free(text);
}

static void test_mesh_json_manifest_reads_like_yaml(void **state)
{
    (void)state;
    size_t len;
    char *text = fixture(MESH_FIXTURES "/services.json", &len);
    mesh_read_t r;
    assert_int_equal(mesh_read_buffer("services.json", text, len, &r), 0);
    assert_int_equal(r.count, 1);
    const mesh_object_t *o = r.objects[0];
    assert_string_equal(o->meta.ns, "data");
    assert_string_equal(label(&o->meta.annotations, "owner"), "team-data");
    assert_int_equal(o->svc.type, MESH_SVC_NODE_PORT);
    assert_string_equal(o->svc.ports[0].target_port_name, "pg");
    assert_int_equal(o->svc.ports[0].node_port, 30432);
    assert_int_equal(o->svc.ports[0].mesh_protocol, MESH_PROTO_TCP);
    assert_int_equal(o->svc.ports[1].protocol, MESH_L4_UDP);
    mesh_read_free(&r);
    free(text);
}

/* Every file of invalid/ says on its first line `# expect: <line>: <message>`, the error it
 * must give after its path. */
static void test_mesh_invalid_documents_name_file_line_document_and_field(void **state)
{
    (void)state;
    static const char *const files[] = {
        "httproute-bad-weight", "labels-not-map",  "list-item-bad",   "missing-name",
        "netpol-bad-operator",  "pod-ip-bad",      "port-not-number", "port-out-of-range",
        "port-quoted",          "slice-bad-ready", "syntax",          "target-port-bad",
        "unknown-service-type", "unnamed-ports",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[256], want[1024];
        snprintf(path, sizeof(path), MESH_FIXTURES "/invalid/%s.yaml", files[i]);
        size_t len;
        char *text = fixture(path, &len);
        assert_true(strncmp(text, "# expect: ", 10) == 0);
        snprintf(want, sizeof(want), "%s:%.*s", path, (int)strcspn(text + 10, "\n"), text + 10);
        mesh_read_t r;
        assert_int_equal(mesh_read_buffer(path, text, len, &r), -EINVAL);
        assert_int_equal(r.report.nerrors, 1);
        assert_string_equal(r.report.errors[0], want);
        mesh_read_free(&r);
        free(text);
    }
}

static void test_mesh_a_bad_document_leaves_the_others_read(void **state)
{
    (void)state;
    size_t len;
    char *text = fixture(MESH_FIXTURES "/invalid/port-not-number.yaml", &len);
    mesh_read_t r;
    assert_int_equal(mesh_read_buffer("f.yaml", text, len, &r), -EINVAL);
    assert_int_equal(r.count, 1);
    assert_non_null(find(&r, MESH_SERVICE, "shop", "fine"));
    mesh_read_free(&r);
    free(text);
}

static void test_mesh_wrong_types_and_values_are_errors(void **state)
{
    (void)state;
    char err[512];
    assert_non_null(strstr(
        read_error("kind: Service\nmetadata: {name: x}\nspec: {ports: 80}\n", err, sizeof(err)),
        "spec.ports: must be a list"));
    assert_non_null(
        strstr(read_error("kind: Service\nmetadata: {name: [x]}\nspec: {}\n", err, sizeof(err)),
               "metadata.name: must be a string"));
    assert_non_null(
        strstr(read_error("kind: Service\nmetadata: {name: a/b}\nspec: {}\n", err, sizeof(err)),
               "metadata.name: \"a/b\" is not a valid name"));
    assert_non_null(strstr(read_error("kind: Service\nmetadata: {name: x}\n", err, sizeof(err)),
                           "spec: missing"));
    assert_non_null(strstr(read_error("apiVersion: v1\nmetadata: {name: x}\n", err, sizeof(err)),
                           "document 1: kind: missing"));
    assert_non_null(strstr(read_error("- a\n- b\n", err, sizeof(err)),
                           "document 1: an object must be a mapping"));
    assert_non_null(strstr(read_error("kind: Service\nmetadata: {name: x, labels: {a: {b: c}}}\n"
                                      "spec: {}\n",
                                      err, sizeof(err)),
                           "metadata.labels: \"a\": must be a string"));
    assert_non_null(strstr(read_error("kind: Service\nmetadata: {name: x}\n"
                                      "spec: {ports: [{port: 80, protocol: HTTP}]}\n",
                                      err, sizeof(err)),
                           "spec.ports[0].protocol: \"HTTP\" is not one of TCP, UDP, SCTP"));
    assert_non_null(strstr(read_error("kind: Service\nmetadata: {name: x}\n"
                                      "spec: {ports: [{name: a, port: 1}, {name: a, port: 2}]}\n",
                                      err, sizeof(err)),
                           "spec.ports[1].name: \"a\" names ports[0] too"));
    assert_non_null(strstr(read_error("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                                      "metadata: {name: s}\naddressType: IPv4\n"
                                      "endpoints: [{addresses: ['fd00::1']}]\n",
                                      err, sizeof(err)),
                           "endpoints[0].addresses[0]: \"fd00::1\" is not an IPv4 address"));
}

static void test_mesh_messages_of_a_file_are_capped_and_counted(void **state)
{
    (void)state;
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int i = 0; i < 150; i++)
        n += (size_t)snprintf(text + n, cap - n,
                              "kind: Service\nmetadata: {name: s%d}\n"
                              "spec: {ports: [{port: 0}]}\n---\n",
                              i);
    mesh_read_t r;
    assert_int_equal(read_text(text, &r), -EINVAL);
    assert_int_equal(r.report.nerrors, 101);
    assert_non_null(strstr(r.report.errors[99], "document 100 (Service default/s99)"));
    assert_string_equal(r.report.errors[100], "... and 50 more");
    mesh_read_free(&r);
    free(text);
    char err[512];
    assert_non_null(
        strstr(read_error("kind: Namespace\nmetadata: {name: n, labels: {a: x, a: y}}\n", err,
                          sizeof(err)),
               "metadata.labels: \"a\" given twice"));
}

static void test_mesh_null_fields_are_absent_and_other_api_versions_skipped(void **state)
{
    (void)state;
    mesh_object_t *o = read_one("kind: Service\nmetadata: {name: x, namespace: null, labels: ~}\n"
                                "spec: {type: null, ports: [{port: 80, targetPort: }]}\n");
    assert_string_equal(o->meta.ns, "default");
    assert_int_equal(o->meta.labels.count, 0);
    assert_int_equal(o->svc.type, MESH_SVC_CLUSTER_IP);
    assert_int_equal(o->svc.ports[0].target_port, 80);
    mesh_object_unref(o);
    mesh_read_t r;
    assert_int_equal(read_text("apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\n"
                               "metadata: {name: old}\naddressType: IPv4\n---\n---\n",
                               &r),
                     0);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.report.skipped, 1);
    assert_int_equal(r.report.nnotes, 1);
    assert_non_null(strstr(r.report.notes[0], "discovery.k8s.io/v1beta1 is not read"));
    mesh_read_free(&r);
}

static void test_mesh_content_hash_ignores_source_order_and_resource_version(void **state)
{
    (void)state;
    mesh_object_t *a = read_one("kind: Service\nmetadata: {name: x, resourceVersion: '1', "
                                "labels: {a: '1', b: '2'}}\nspec: {ports: [{port: 80}]}\n");
    mesh_object_t *b = read_one("# moved down\n\nspec: {ports: [{port: 80}]}\nkind: Service\n"
                                "metadata: {labels: {b: '2', a: '1'}, resourceVersion: '9', "
                                "name: x, namespace: default}\n");
    mesh_object_t *c = read_one("kind: Service\nmetadata: {name: x, resourceVersion: '1', "
                                "labels: {a: '1', b: '2'}}\nspec: {ports: [{port: 81}]}\n");
    mesh_object_t *d = read_one("kind: Service\nmetadata: {name: x, labels: {a: '1', b: '2'}}\n"
                                "spec: {ports: [{port: 80, targetPort: 80}]}\n");
    assert_true(mesh_object_same(a, b));
    assert_false(mesh_object_same(a, c));
    /* a default written out is the same content */
    assert_true(mesh_object_same(a, d));
    assert_int_equal(mesh_object_cmp(a, c), 0);
    mesh_object_unref(a);
    mesh_object_unref(b);
    mesh_object_unref(c);
    mesh_object_unref(d);
}

static void test_mesh_typed_api_list_items_take_the_list_kind(void **state)
{
    (void)state;
    size_t len;
    char *text = fixture(MESH_FIXTURES "/recorded/services-list.json", &len);
    mesh_read_t r;
    assert_int_equal(mesh_read_buffer("services-list.json", text, len, &r), 0);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.objects[0]->meta.kind, MESH_SERVICE);
    assert_string_equal(r.objects[0]->meta.name, "api");
    assert_string_equal(r.resource_version, "1200");
    mesh_read_free(&r);
    free(text);
}

static void test_mesh_watch_events_read_one_line_each(void **state)
{
    (void)state;
    mesh_watch_event_t ev;
    char err[512];
    const char *added = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\","
                        "\"metadata\":{\"name\":\"p\",\"resourceVersion\":\"42\"},"
                        "\"spec\":{\"containers\":[]}}}";
    assert_int_equal(mesh_read_watch_event("w", 3, added, strlen(added), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.type, MESH_ADDED);
    assert_non_null(ev.object);
    assert_string_equal(ev.object->meta.name, "p");
    assert_string_equal(ev.resource_version, "42");
    mesh_object_unref(ev.object);
    const char *bookmark = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\","
                           "\"metadata\":{\"resourceVersion\":\"50\"}}}";
    assert_int_equal(
        mesh_read_watch_event("w", 4, bookmark, strlen(bookmark), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.type, MESH_BOOKMARK);
    assert_null(ev.object);
    assert_string_equal(ev.resource_version, "50");
    const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                       "\"message\":\"too old resource version\"}}";
    assert_int_equal(mesh_read_watch_event("w", 5, gone, strlen(gone), &ev, err, sizeof(err)),
                     -EPROTO);
    assert_string_equal(err, "w:5: ERROR event: too old resource version");
    const char *bad = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Service\","
                      "\"metadata\":{\"name\":\"s\"},\"spec\":{\"ports\":[{\"port\":0}]}}}";
    assert_int_equal(mesh_read_watch_event("w", 6, bad, strlen(bad), &ev, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "w:6 (Service default/s): spec.ports[0].port: \"0\" is not a port "
                             "number (1-65535)");
    assert_null(ev.object);
    const char *other = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"ConfigMap\","
                        "\"metadata\":{\"name\":\"c\"}}}";
    assert_int_equal(mesh_read_watch_event("w", 7, other, strlen(other), &ev, err, sizeof(err)), 0);
    assert_null(ev.object);
    assert_int_equal(mesh_read_watch_event("w", 8, "{\"type\":\"SOON\",\"object\":{}}", 27, &ev,
                                           err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "w:8: type: not ADDED"));
    assert_int_equal(mesh_read_watch_event("w", 9, "{\"type\":", 8, &ev, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "w:"));
}

static void test_mesh_aliases_cannot_blow_up_the_work(void **state)
{
    (void)state;
    /* each level doubles the nodes an unbounded walk would visit: 2^30 at the end */
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof(text),
                                "kind: Service\nmetadata: {name: x}\n"
                                "a0: &a0 [{name: a, port: 80}, {name: b, port: 81}]\n");
    for (int i = 1; i < 30; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "a%d: &a%d [*a%d, *a%d]\n", i, i, i - 1,
                              i - 1);
    snprintf(text + n, sizeof(text) - n, "spec:\n  ports: *a0\n  selector: {a: b}\n");
    mesh_read_t r;
    assert_int_equal(read_text(text, &r), 0); /* only what is used is walked */
    mesh_read_free(&r);
    /* one object of 3,000 labels named 400 times as the items of a List */
    char *big = malloc(1 << 17);
    assert_non_null(big);
    n = (size_t)snprintf(big, 1 << 17, "o: &o {kind: Namespace, metadata: {name: n, labels: {");
    for (int i = 0; i < 3000; i++)
        n += (size_t)snprintf(big + n, (1 << 17) - n, "k%d: v, ", i);
    n += (size_t)snprintf(big + n, (1 << 17) - n, "}}}\nkind: List\nitems: [");
    for (int i = 0; i < 400; i++)
        n += (size_t)snprintf(big + n, (1 << 17) - n, "*o, ");
    snprintf(big + n, (1 << 17) - n, "]\n");
    assert_int_equal(read_text(big, &r), -EINVAL);
    assert_true(r.count < 400);
    assert_non_null(strstr(r.report.errors[0], "node visits (aliases?)"));
    mesh_read_free(&r);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mesh_service_fields_and_api_defaults),
        cmocka_unit_test(test_mesh_service_headless_external_name_and_cluster_ips),
        cmocka_unit_test(test_mesh_port_protocol_app_protocol_first_then_port_name),
        cmocka_unit_test(test_mesh_endpoints_ready_and_not_ready_addresses),
        cmocka_unit_test(test_mesh_endpoint_slice_absent_conditions_mean_ready_and_serving),
        cmocka_unit_test(test_mesh_endpoint_slice_of_ipv6_is_kept_empty_with_a_note),
        cmocka_unit_test(test_mesh_pod_fields_and_defaults),
        cmocka_unit_test(test_mesh_network_policy_selectors_peers_and_ports),
        cmocka_unit_test(test_mesh_http_route_fields_and_api_defaults),
        cmocka_unit_test(test_mesh_http_route_bad_fields_are_errors),
        cmocka_unit_test(test_mesh_multi_document_file_skips_and_counts_other_kinds),
        cmocka_unit_test(test_mesh_kubectl_get_list_ignores_fields_not_used),
        cmocka_unit_test(test_mesh_json_manifest_reads_like_yaml),
        cmocka_unit_test(test_mesh_invalid_documents_name_file_line_document_and_field),
        cmocka_unit_test(test_mesh_a_bad_document_leaves_the_others_read),
        cmocka_unit_test(test_mesh_wrong_types_and_values_are_errors),
        cmocka_unit_test(test_mesh_messages_of_a_file_are_capped_and_counted),
        cmocka_unit_test(test_mesh_null_fields_are_absent_and_other_api_versions_skipped),
        cmocka_unit_test(test_mesh_content_hash_ignores_source_order_and_resource_version),
        cmocka_unit_test(test_mesh_typed_api_list_items_take_the_list_kind),
        cmocka_unit_test(test_mesh_watch_events_read_one_line_each),
        cmocka_unit_test(test_mesh_aliases_cannot_blow_up_the_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
