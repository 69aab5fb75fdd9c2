/* The index: watch-event semantics of a batch, what an apply reports as changed, the
 * generation, lookups by name and by IP, ordered listing, each Service's merged endpoints, and
 * the recorded-API source feeding it from a List and watch events. */
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

/* Applies one event of the object text describes; returns how many events changed something. */
static size_t apply_text(mesh_index_t *idx, mesh_event_type_t type, const char *text,
                         mesh_changes_t *ch)
{
    mesh_object_t *o = read_one(text);
    mesh_batch_t b = {0};
    assert_int_equal(mesh_batch_add(&b, type, o), 0);
    mesh_object_unref(o);
    assert_int_equal(mesh_index_apply(idx, &b, ch), 0);
    mesh_batch_free(&b);
    return ch->events.count;
}

/* Applies every object of text as ADDED. */
static void add_all(mesh_index_t *idx, const char *text, mesh_changes_t *ch)
{
    mesh_read_t r;
    assert_int_equal(read_text(text, &r), 0);
    mesh_batch_t b = {0};
    for (size_t i = 0; i < r.count; i++)
        assert_int_equal(mesh_batch_add(&b, MESH_ADDED, r.objects[i]), 0);
    mesh_read_free(&r);
    assert_int_equal(mesh_index_apply(idx, &b, ch), 0);
    mesh_batch_free(&b);
}

#define SVC_WEB                                                                                    \
    "kind: Service\nmetadata: {name: web, namespace: shop}\n"                                      \
    "spec: {clusterIP: 198.19.0.10, clusterIPs: [198.19.0.10], ports: [{port: 80}]}\n"

static void test_mesh_index_applies_watch_semantics_and_reports_changes(void **state)
{
    (void)state;
    mesh_index_t *idx = mesh_index_new();
    mesh_changes_t ch;
    assert_int_equal(mesh_index_generation(idx), 0);
    assert_int_equal(apply_text(idx, MESH_ADDED, SVC_WEB, &ch), 1);
    assert_int_equal(ch.events.events[0].type, MESH_ADDED);
    assert_int_equal(ch.counts[MESH_SERVICE], 1);
    assert_int_equal(ch.generation, 1);
    mesh_changes_free(&ch);
    /* the same content again: nothing changes, the generation stays */
    assert_int_equal(apply_text(idx, MESH_MODIFIED, SVC_WEB, &ch), 0);
    assert_int_equal(ch.generation, 1);
    mesh_changes_free(&ch);
    /* ADDED of what is there is a modification when the content differs */
    assert_int_equal(apply_text(idx, MESH_ADDED,
                                "kind: Service\nmetadata: {name: web, namespace: shop}\n"
                                "spec: {clusterIP: 198.19.0.11, ports: [{port: 81}]}\n",
                                &ch),
                     1);
    assert_int_equal(ch.events.events[0].type, MESH_MODIFIED);
    assert_int_equal(mesh_index_generation(idx), 2);
    mesh_changes_free(&ch);
    assert_null(mesh_index_service_by_ip(idx, "198.19.0.10")); /* the old IP is gone */
    assert_non_null(mesh_index_service_by_ip(idx, "198.19.0.11"));
    /* deleting what is not there changes nothing */
    assert_int_equal(apply_text(idx, MESH_DELETED,
                                "kind: Service\nmetadata: {name: other, namespace: shop}\n"
                                "spec: {}\n",
                                &ch),
                     0);
    mesh_changes_free(&ch);
    assert_int_equal(apply_text(idx, MESH_DELETED,
                                "kind: Service\nmetadata: {name: web, namespace: shop}\nspec: {}\n",
                                &ch),
                     1);
    assert_int_equal(ch.events.events[0].type, MESH_DELETED);
    /* the deleted event carries the object the index held */
    assert_int_equal(ch.events.events[0].object->svc.ports[0].port, 81);
    mesh_changes_free(&ch);
    assert_null(mesh_index_get(idx, MESH_SERVICE, "shop", "web"));
    assert_null(mesh_index_service_by_ip(idx, "198.19.0.11"));
    assert_int_equal(mesh_index_generation(idx), 3);
    assert_int_equal(mesh_index_apply(idx, &(mesh_batch_t){0}, NULL), 0);
    assert_int_equal(mesh_index_generation(idx), 3);
    mesh_index_free(idx);
}

static void test_mesh_index_lists_each_kind_by_namespace_then_name(void **state)
{
    (void)state;
    mesh_index_t *idx = mesh_index_new();
    mesh_changes_t ch;
    add_all(idx,
            "kind: Namespace\nmetadata: {name: b}\n---\n"
            "kind: Service\nmetadata: {name: z, namespace: a}\nspec: {}\n---\n"
            "kind: Namespace\nmetadata: {name: a}\n---\n"
            "kind: Service\nmetadata: {name: a, namespace: b}\nspec: {}\n---\n"
            "kind: Service\nmetadata: {name: b, namespace: a}\nspec: {}\n---\n"
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n",
            &ch);
    assert_int_equal(ch.counts[MESH_NAMESPACE], 2);
    assert_int_equal(ch.counts[MESH_SERVICE], 3);
    assert_int_equal(ch.counts[MESH_POD], 1);
    mesh_changes_free(&ch);
    size_t n;
    mesh_object_t *const *svcs = mesh_index_list(idx, MESH_SERVICE, &n);
    assert_int_equal(n, 3);
    assert_string_equal(svcs[0]->meta.ns, "a");
    assert_string_equal(svcs[0]->meta.name, "b");
    assert_string_equal(svcs[1]->meta.name, "z");
    assert_string_equal(svcs[2]->meta.ns, "b");
    mesh_object_t *const *nss = mesh_index_list(idx, MESH_NAMESPACE, &n);
    assert_int_equal(n, 2);
    assert_string_equal(nss[0]->meta.name, "a");
    assert_non_null(mesh_index_get(idx, MESH_NAMESPACE, "", "b"));
    assert_non_null(mesh_index_get(idx, MESH_POD, "default", "p"));
    mesh_index_list(idx, MESH_NETWORK_POLICY, &n);
    assert_int_equal(n, 0);
    mesh_index_free(idx);
}

static void test_mesh_index_finds_pods_by_ip_running_first(void **state)
{
    (void)state;
    mesh_index_t *idx = mesh_index_new();
    mesh_changes_t ch;
    add_all(idx,
            "kind: Pod\nmetadata: {name: a-done}\nspec: {containers: []}\n"
            "status: {phase: Succeeded, podIP: 198.18.0.5}\n---\n"
            "kind: Pod\nmetadata: {name: b-live}\nspec: {containers: []}\n"
            "status: {phase: Running, podIP: 198.18.0.5, podIPs: [{ip: 198.18.0.5}, "
            "{ip: 'fd00::5'}]}\n---\n"
            "kind: Pod\nmetadata: {name: c-wait}\nspec: {containers: []}\n"
            "status: {podIP: 198.18.0.6}\n",
            &ch);
    mesh_changes_free(&ch);
    assert_string_equal(mesh_index_pod_by_ip(idx, "198.18.0.5")->meta.name, "b-live");
    assert_string_equal(mesh_index_pod_by_ip(idx, "fd00::5")->meta.name, "b-live");
    assert_string_equal(mesh_index_pod_by_ip(idx, "198.18.0.6")->meta.name, "c-wait");
    assert_null(mesh_index_pod_by_ip(idx, "198.18.0.7"));
    apply_text(idx, MESH_DELETED, "kind: Pod\nmetadata: {name: b-live}\nspec: {}\n", &ch);
    mesh_changes_free(&ch);
    assert_string_equal(mesh_index_pod_by_ip(idx, "198.18.0.5")->meta.name, "a-done");
    assert_null(mesh_index_pod_by_ip(idx, "fd00::5"));
    mesh_index_free(idx);
}

static void test_mesh_index_headless_services_have_no_ip(void **state)
{
    (void)state;
    mesh_index_t *idx = mesh_index_new();
    mesh_changes_t ch;
    apply_text(idx, MESH_ADDED,
               "kind: Service\nmetadata: {name: h}\nspec: {clusterIP: None, clusterIPs: [None]}\n",
               &ch);
    mesh_changes_free(&ch);
    assert_null(mesh_index_service_by_ip(idx, "None"));
    assert_non_null(mesh_index_get(idx, MESH_SERVICE, "default", "h"));
    mesh_index_free(idx);
}

#define SLICE(name, svc, eps)                                                                      \
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"                                       \
    "metadata: {name: " name ", namespace: shop, labels: {kubernetes.io/service-name: " svc "}}\n" \
    "addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints: " eps "\n"

#define ENDPOINTS_WEB                                                                              \
    "kind: Endpoints\nmetadata: {name: web, namespace: shop}\nsubsets:\n"                          \
    "- addresses: [{ip: 198.18.0.9, targetRef: {kind: Pod, name: p9}}]\n"                          \
    "  notReadyAddresses: [{ip: 198.18.0.8}]\n  ports: [{name: http, port: 8080}]\n"

static void test_mesh_index_merges_endpoints_from_endpoints_without_slices(void **state)
{
    (void)state;
    mesh_index_t *idx = mesh_index_new();
    mesh_changes_t ch;
    apply_text(idx, MESH_ADDED, ENDPOINTS_WEB, &ch);
    assert_int_equal(ch.nendpoints, 1);
    assert_string_equal(ch.endpoints[0].ns, "shop");
    assert_string_equal(ch.endpoints[0].name, "web");
    mesh_changes_free(&ch);
    size_t n;
    const mesh_endpoint_t *eps = mesh_index_endpoints(idx, "shop", "web", &n);
    assert_int_equal(n, 2);
    assert_string_equal(eps[0].address, "198.18.0.8"); /* by address */
    assert_false(eps[0].ready);
    assert_false(eps[0].serving);
    assert_string_equal(eps[1].address, "198.18.0.9");
    assert_true(eps[1].ready);
    assert_true(eps[1].serving);
    assert_false(eps[1].terminating);
    assert_string_equal(eps[1].target.name, "p9");
    assert_null(eps[1].zone);
    assert_int_equal(eps[1].nports, 1);
    assert_string_equal(eps[1].ports[0].name, "http");
    assert_null(mesh_index_endpoints(idx, "shop", "nothing", &n));
    assert_int_equal(n, 0);
    mesh_index_free(idx);
}

static void test_mesh_index_prefers_slices_and_merges_them_once_per_address(void **state)
{
    (void)state;
    mesh_index_t *idx = mesh_index_new();
    mesh_changes_t ch;
    apply_text(idx, MESH_ADDED, ENDPOINTS_WEB, &ch);
    mesh_changes_free(&ch);
    size_t n;
    mesh_index_endpoints(idx, "shop", "web", &n); /* merged and kept */
    assert_int_equal(n, 2);
    add_all(
        idx,
        SLICE(
            "web-b", "web",
            "[{addresses: [198.18.0.2], conditions: {ready: false}}, "
            "{addresses: [198.18.0.1], zone: z9}]") "---\n" SLICE("web-a", "web",
                                                                  "[{addresses: "
                                                                  "[198.18.0.1], zone: z1, "
                                                                  "conditions: {serving: "
                                                                  "true, terminating: "
                                                                  "true, ready: false}}]") "---"
                                                                                           "\n" SLICE(
                                                                                               "api"
                                                                                               "-a",
                                                                                               "ap"
                                                                                               "i",
                                                                                               "[{"
                                                                                               "add"
                                                                                               "res"
                                                                                               "ses"
                                                                                               ": "
                                                                                               "[19"
                                                                                               "8."
                                                                                               "18."
                                                                                               "0."
                                                                                               "3]}"
                                                                                               "]"),
        &ch);
    assert_int_equal(ch.nendpoints, 2); /* sorted, once each */
    assert_string_equal(ch.endpoints[0].name, "api");
    assert_string_equal(ch.endpoints[1].name, "web");
    mesh_changes_free(&ch);
    const mesh_endpoint_t *eps = mesh_index_endpoints(idx, "shop", "web", &n);
    assert_int_equal(n, 2); /* the slices, not the Endpoints */
    assert_string_equal(eps[0].address, "198.18.0.1");
    assert_string_equal(eps[0].zone, "z1"); /* web-a comes before web-b */
    assert_true(eps[0].terminating);
    assert_true(eps[0].serving);
    assert_false(eps[0].ready);
    assert_string_equal(eps[1].address, "198.18.0.2");
    assert_false(eps[1].ready);
    assert_int_equal(eps[1].ports[0].port, 8080);
    eps = mesh_index_endpoints(idx, "shop", "api", &n);
    assert_int_equal(n, 1);
    /* a slice removed: the merge follows */
    apply_text(idx, MESH_DELETED, SLICE("web-a", "web", "[]"), &ch);
    assert_int_equal(ch.nendpoints, 1);
    mesh_changes_free(&ch);
    eps = mesh_index_endpoints(idx, "shop", "web", &n);
    assert_int_equal(n, 2);
    assert_string_equal(eps[0].zone, "z9");
    /* the last slice gone: back to the Endpoints */
    apply_text(idx, MESH_DELETED, SLICE("web-b", "web", "[]"), &ch);
    mesh_changes_free(&ch);
    eps = mesh_index_endpoints(idx, "shop", "web", &n);
    assert_int_equal(n, 2);
    assert_string_equal(eps[1].address, "198.18.0.9");
    mesh_index_free(idx);
}

static void test_mesh_index_slice_moving_to_another_service_changes_both(void **state)
{
    (void)state;
    mesh_index_t *idx = mesh_index_new();
    mesh_changes_t ch;
    apply_text(idx, MESH_ADDED, SLICE("s", "one", "[{addresses: [198.18.0.1]}]"), &ch);
    mesh_changes_free(&ch);
    size_t n;
    mesh_index_endpoints(idx, "shop", "one", &n);
    assert_int_equal(n, 1);
    apply_text(idx, MESH_MODIFIED, SLICE("s", "two", "[{addresses: [198.18.0.1]}]"), &ch);
    assert_int_equal(ch.nendpoints, 2);
    assert_string_equal(ch.endpoints[0].name, "one");
    assert_string_equal(ch.endpoints[1].name, "two");
    mesh_changes_free(&ch);
    assert_null(mesh_index_endpoints(idx, "shop", "one", &n));
    assert_int_equal(n, 0);
    mesh_index_endpoints(idx, "shop", "two", &n);
    assert_int_equal(n, 1);
    mesh_index_free(idx);
}

/* The recorded-API fixture: a ServiceList, then watch events (a change, a resend, a delete, a
 * bookmark), then a stream that ends in 410 Gone. */
static void test_mesh_api_source_feeds_the_index_from_a_list_and_watch_events(void **state)
{
    (void)state;
    size_t len;
    char *list = fixture(MESH_FIXTURES "/recorded/services-list.json", &len);
    mesh_api_t *api = mesh_api_new();
    mesh_index_t *idx = mesh_index_new();
    mesh_batch_t b = {0};
    mesh_report_t rep = {0};
    mesh_changes_t ch;
    assert_string_equal(mesh_api_resource_version(api), "");
    assert_int_equal(mesh_api_list(api, MESH_SERVICE, "list", list, len, &b, &rep), 0);
    assert_int_equal(b.count, 2);
    assert_string_equal(mesh_api_resource_version(api), "1200");
    assert_int_equal(mesh_index_apply(idx, &b, &ch), 0);
    assert_int_equal(ch.counts[MESH_SERVICE], 2);
    mesh_changes_free(&ch);
    mesh_batch_free(&b);
    /* the same list again (a relist) changes nothing */
    assert_int_equal(mesh_api_list(api, MESH_SERVICE, "list", list, len, &b, &rep), 0);
    assert_int_equal(b.count, 0);
    free(list);

    char *watch = fixture(MESH_FIXTURES "/recorded/services-watch.jsonl", &len);
    assert_int_equal(mesh_api_watch(api, "watch", watch, len, &b, &rep), 0);
    free(watch);
    assert_int_equal(b.count, 3); /* cart added, api modified once, old deleted */
    assert_int_equal(b.events[0].type, MESH_ADDED);
    assert_string_equal(b.events[0].object->meta.name, "cart");
    assert_int_equal(b.events[1].type, MESH_MODIFIED);
    assert_int_equal(b.events[2].type, MESH_DELETED);
    assert_string_equal(mesh_api_resource_version(api), "1250"); /* the bookmark's */
    assert_int_equal(mesh_index_apply(idx, &b, &ch), 0);
    mesh_changes_free(&ch);
    mesh_batch_free(&b);
    const mesh_object_t *svc = mesh_index_get(idx, MESH_SERVICE, "default", "api");
    assert_int_equal(svc->svc.ports[0].target_port, 8081);
    assert_null(mesh_index_get(idx, MESH_SERVICE, "default", "old"));
    assert_int_equal(
        mesh_index_get(idx, MESH_SERVICE, "default", "cart")->svc.ports[0].mesh_protocol,
        MESH_PROTO_GRPC);
    assert_non_null(mesh_index_service_by_ip(idx, "198.19.0.22"));
    assert_int_equal(rep.nerrors, 0);

    char *gone = fixture(MESH_FIXTURES "/recorded/watch-gone.jsonl", &len);
    assert_int_equal(mesh_api_watch(api, "gone", gone, len, &b, &rep), -EPROTO);
    free(gone);
    assert_int_equal(b.count, 1); /* the line before the error, not the one after */
    assert_string_equal(b.events[0].object->meta.name, "late");
    assert_int_equal(rep.nerrors, 1);
    assert_string_equal(rep.errors[0],
                        "gone:2: ERROR event: too old resource version: 1200 (1300)");
    mesh_batch_free(&b);
    /* a relist after 410 Gone: what the list lacks is deleted */
    const char *relist = "{\"kind\":\"ServiceList\",\"metadata\":{\"resourceVersion\":\"1400\"},"
                         "\"items\":[]}";
    assert_int_equal(mesh_api_list(api, MESH_SERVICE, "relist", relist, strlen(relist), &b, &rep),
                     0);
    assert_int_equal(b.count, 3); /* api, cart, late */
    for (size_t i = 0; i < b.count; i++)
        assert_int_equal(b.events[i].type, MESH_DELETED);
    assert_string_equal(mesh_api_resource_version(api), "1400");
    mesh_batch_free(&b);
    mesh_report_free(&rep);
    mesh_index_free(idx);
    mesh_api_free(api);
}

static void test_mesh_api_list_with_a_bad_item_deletes_nothing(void **state)
{
    (void)state;
    mesh_api_t *api = mesh_api_new();
    mesh_batch_t b = {0};
    mesh_report_t rep = {0};
    const char *first = "{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"a\"},"
                        "\"spec\":{\"containers\":[]}},{\"metadata\":{\"name\":\"b\"},"
                        "\"spec\":{\"containers\":[]}}]}";
    assert_int_equal(mesh_api_list(api, MESH_POD, "l1", first, strlen(first), &b, &rep), 0);
    assert_int_equal(b.count, 2);
    mesh_batch_free(&b);
    const char *bad = "{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"a\"},"
                      "\"spec\":{\"containers\":[]},\"status\":{\"podIP\":\"x\"}}]}";
    assert_int_equal(mesh_api_list(api, MESH_POD, "l2", bad, strlen(bad), &b, &rep), -EINVAL);
    assert_int_equal(b.count, 0);
    assert_int_equal(rep.nerrors, 1);
    assert_non_null(strstr(rep.errors[0], "l2:1: document 1, item 1 (Pod default/a): "
                                          "status.podIP: \"x\" is not an IP address"));
    /* a list of another kind's items is refused item by item */
    const char *mixed = "{\"kind\":\"List\",\"items\":[{\"kind\":\"Namespace\","
                        "\"metadata\":{\"name\":\"n\"}}]}";
    assert_int_equal(mesh_api_list(api, MESH_POD, "l3", mixed, strlen(mixed), &b, &rep), -EINVAL);
    assert_int_equal(b.count, 0);
    assert_non_null(strstr(rep.errors[1], "a Namespace in a list of Pod"));
    mesh_report_free(&rep);
    mesh_api_free(api);
}

/* HTTPRoutes come through the recorded API like the other kinds: a typed list (items without
 * kind and apiVersion), then a weight changed by a watch event is one MODIFIED in the index. */
static void test_mesh_api_source_feeds_http_routes_and_their_weight_changes(void **state)
{
    (void)state;
    mesh_api_t *api = mesh_api_new();
    mesh_index_t *idx = mesh_index_new();
    mesh_batch_t b = {0};
    mesh_report_t rep = {0};
    mesh_changes_t ch;
    const char *list =
        "{\"kind\":\"HTTPRouteList\",\"apiVersion\":\"gateway.networking.k8s.io/v1\","
        "\"metadata\":{\"resourceVersion\":\"10\"},\"items\":[{\"metadata\":{\"name\":\"r\","
        "\"namespace\":\"shop\"},\"spec\":{\"parentRefs\":[{\"group\":\"\",\"kind\":"
        "\"Service\",\"name\":\"web\"}],\"rules\":[{\"backendRefs\":[{\"name\":\"v1\","
        "\"port\":80,\"weight\":100},{\"name\":\"v2\",\"port\":80,\"weight\":0}]}]}}]}";
    assert_int_equal(mesh_api_list(api, MESH_HTTP_ROUTE, "list", list, strlen(list), &b, &rep), 0);
    assert_int_equal(b.count, 1);
    assert_int_equal(mesh_index_apply(idx, &b, &ch), 0);
    assert_int_equal(ch.counts[MESH_HTTP_ROUTE], 1);
    mesh_changes_free(&ch);
    mesh_batch_free(&b);
    const char *watch =
        "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"HTTPRoute\",\"apiVersion\":"
        "\"gateway.networking.k8s.io/v1\",\"metadata\":{\"name\":\"r\",\"namespace\":\"shop\","
        "\"resourceVersion\":\"11\"},\"spec\":{\"parentRefs\":[{\"group\":\"\",\"kind\":"
        "\"Service\",\"name\":\"web\"}],\"rules\":[{\"backendRefs\":[{\"name\":\"v1\","
        "\"port\":80,\"weight\":0},{\"name\":\"v2\",\"port\":80,\"weight\":100}]}]}}}\n";
    assert_int_equal(mesh_api_watch(api, "watch", watch, strlen(watch), &b, &rep), 0);
    assert_int_equal(b.count, 1);
    assert_int_equal(mesh_index_apply(idx, &b, &ch), 0);
    assert_int_equal(ch.events.count, 1);
    assert_int_equal(ch.events.events[0].type, MESH_MODIFIED);
    mesh_changes_free(&ch);
    mesh_batch_free(&b);
    const mesh_object_t *r = mesh_index_get(idx, MESH_HTTP_ROUTE, "shop", "r");
    assert_non_null(r);
    assert_int_equal(r->route.rules[0].backends[0].weight, 0);
    assert_int_equal(r->route.rules[0].backends[1].weight, 100);
    assert_string_equal(mesh_api_resource_version(api), "11");
    assert_int_equal(rep.nerrors, 0);
    mesh_report_free(&rep);
    mesh_index_free(idx);
    mesh_api_free(api);
}

static void test_mesh_selectors_match_labels_as_kubernetes_does(void **state)
{
    (void)state;
    mesh_object_t *pod = read_one("kind: Pod\nmetadata: {name: p, labels: {app: web, tier: front, "
                                  "v: '2'}}\nspec: {}\n");
    mesh_object_t *svc = read_one("kind: Service\nmetadata: {name: s}\n"
                                  "spec: {selector: {app: web, tier: front}}\n");
    mesh_object_t *other = read_one("kind: Service\nmetadata: {name: o}\n"
                                    "spec: {selector: {app: web, tier: back}}\n");
    const mesh_labels_t *labels = &pod->meta.labels;
    assert_string_equal(mesh_label_get(labels, "v"), "2");
    assert_null(mesh_label_get(labels, "w"));
    assert_true(mesh_labels_match(&svc->svc.selector, labels));
    assert_false(mesh_labels_match(&other->svc.selector, labels));
    mesh_object_t *np = read_one(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\n"
        "spec:\n  podSelector: {}\n  ingress:\n  - from:\n"
        "    - podSelector: {matchLabels: {app: web}, matchExpressions: [{key: tier, operator: "
        "In, values: [front, edge]}, {key: v, operator: NotIn, values: ['1']}, {key: gone, "
        "operator: DoesNotExist}]}\n"
        "    - podSelector: {matchExpressions: [{key: team, operator: Exists}]}\n"
        "    - podSelector: {matchExpressions: [{key: v, operator: NotIn, values: ['2']}]}\n");
    const mesh_np_rule_t *rule = &np->np.ingress_rules[0];
    assert_true(mesh_selector_match(&np->np.pod_selector, labels)); /* {} selects all */
    assert_true(mesh_selector_match(&rule->peers[0].pod_selector, labels));
    assert_false(mesh_selector_match(&rule->peers[1].pod_selector, labels));
    assert_false(mesh_selector_match(&rule->peers[2].pod_selector, labels));
    mesh_object_unref(pod);
    mesh_object_unref(svc);
    mesh_object_unref(other);
    mesh_object_unref(np);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mesh_index_applies_watch_semantics_and_reports_changes),
        cmocka_unit_test(test_mesh_index_lists_each_kind_by_namespace_then_name),
        cmocka_unit_test(test_mesh_index_finds_pods_by_ip_running_first),
        cmocka_unit_test(test_mesh_index_headless_services_have_no_ip),
        cmocka_unit_test(test_mesh_index_merges_endpoints_from_endpoints_without_slices),
        cmocka_unit_test(test_mesh_index_prefers_slices_and_merges_them_once_per_address),
        cmocka_unit_test(test_mesh_index_slice_moving_to_another_service_changes_both),
        cmocka_unit_test(test_mesh_api_source_feeds_the_index_from_a_list_and_watch_events),
        cmocka_unit_test(test_mesh_api_list_with_a_bad_item_deletes_nothing),
        cmocka_unit_test(test_mesh_api_source_feeds_http_routes_and_their_weight_changes),
        cmocka_unit_test(test_mesh_selectors_match_labels_as_kubernetes_does),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
