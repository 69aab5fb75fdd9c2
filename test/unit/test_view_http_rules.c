/* Routes attached to a service (HTTPRoute, GAMMA) in the view: they replace the service's
 * default route on its virtual hosts, in the Gateway API's precedence, to one cluster, to
 * weighted clusters or to a 500; the proxyless clients' route configuration gets the same; a
 * weight change gives new bytes to exactly the route configurations of that service's port,
 * and a rebuild given prev equals a build from nothing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test/unit/view_fixture.h"

typedef Envoy__Config__Route__V3__RouteConfiguration routes_t;
typedef Envoy__Config__Route__V3__VirtualHost vhost_t;
typedef Envoy__Config__Route__V3__Route route_t;

#define WEB   "web.default.svc.cluster.local"
#define WEBV1 "outbound|80||web-v1.default.svc.cluster.local"
#define WEBV2 "outbound|80||web-v2.default.svc.cluster.local"

static view_t *build(const view_registry_t *reg, const view_t *prev)
{
    view_t *v = NULL;
    char err[256];
    if (view_build(reg, prev, &v, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    return v;
}

static const vhost_t *vhost(const routes_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_virtual_hosts; i++)
        if (strcmp(r->virtual_hosts[i]->name, name) == 0)
            return r->virtual_hosts[i];
    fail_msg("no virtual host %s", name);
    return NULL;
}

/* The four routes of web's virtual host, checked. */
static void check_web_routes(const vhost_t *vh)
{
    assert_int_equal(vh->n_routes, 4);
    /* precedence: the exact path, then the longer prefix /gone, then /api, then / */
    assert_string_equal(vh->routes[0]->name, "default.split.0.1");
    assert_string_equal(vh->routes[1]->name, "default.broken.0.0");
    assert_string_equal(vh->routes[2]->name, "default.split.0.0");
    assert_string_equal(vh->routes[3]->name, "default.split.1.0");

    const route_t *exact = vh->routes[0];
    assert_string_equal(exact->match->path, "/api/v2");
    assert_int_equal(exact->match->n_headers, 2);
    assert_string_equal(exact->match->headers[0]->name, "x-canary");
    assert_string_equal(exact->match->headers[0]->string_match->exact, "yes");
    assert_string_equal(exact->match->headers[1]->name, ":method");
    assert_string_equal(exact->match->headers[1]->string_match->exact, "POST");
    const Envoy__Config__Route__V3__RouteAction *a = exact->route;
    assert_non_null(a);
    assert_int_equal(a->cluster_specifier_case,
                     ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS);
    assert_int_equal(a->weighted_clusters->n_clusters, 2);
    assert_string_equal(a->weighted_clusters->clusters[0]->name, WEBV1);
    assert_int_equal(a->weighted_clusters->clusters[0]->weight->value, 90);
    assert_string_equal(a->weighted_clusters->clusters[1]->name, WEBV2);
    assert_int_equal(a->weighted_clusters->clusters[1]->weight->value, 10);
    assert_int_equal(a->timeout->seconds, 5);

    /* a missing service and a backend of another kind: nothing can take the requests */
    const route_t *gone = vh->routes[1];
    assert_string_equal(gone->match->prefix, "/gone");
    assert_int_equal(gone->action_case, ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_DIRECT_RESPONSE);
    assert_int_equal(gone->direct_response->status, 500);

    assert_string_equal(vh->routes[2]->match->prefix, "/api");
    assert_int_equal(vh->routes[2]->match->n_headers, 0);

    /* one backend of weight > 0 left (the other weighs 0): a plain cluster, on its own port */
    const route_t *rest = vh->routes[3];
    assert_string_equal(rest->match->prefix, "/");
    assert_int_equal(rest->route->cluster_specifier_case,
                     ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER);
    assert_string_equal(rest->route->cluster, WEBV2);
    assert_null(rest->route->timeout);
}

static void test_routes_replace_the_default_route_in_precedence_order(void **state)
{
    (void)state;
    fx_routed_t f;
    fx_routed(&f);
    view_t *v = build(&f.reg, NULL);
    const char *namespaces[] = {"default", "mixed"}; /* its own and another namespace */
    for (size_t i = 0; i < 2; i++) {
        routes_t *r = (routes_t *)fx_decode(v, VIEW_GROUP_ROUTES, namespaces[i], "80");
        check_web_routes(vhost(r, WEB ":80"));
        /* a backend keeps its own default route */
        const vhost_t *v1 = vhost(r, "web-v1.default.svc.cluster.local:80");
        assert_int_equal(v1->n_routes, 1);
        assert_string_equal(v1->routes[0]->match->prefix, "/");
        assert_string_equal(v1->routes[0]->route->cluster, WEBV1);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    routes_t *g = (routes_t *)fx_decode(v, VIEW_GROUP_GRPC_ROUTES, "", WEB ":80");
    assert_int_equal(g->n_virtual_hosts, 1);
    check_web_routes(g->virtual_hosts[0]);
    protobuf_c_message_free_unpacked(&g->base, NULL);
    view_free(v);
}

static void test_rule_on_another_port_leaves_the_default_route(void **state)
{
    (void)state;
    fx_routed_t f;
    fx_routed(&f);
    for (size_t i = 0; i < 3; i++)
        f.rules[i].port = 8080; /* web has port 80 only */
    view_t *v = build(&f.reg, NULL);
    routes_t *r = (routes_t *)fx_decode(v, VIEW_GROUP_ROUTES, "default", "80");
    const vhost_t *vh = vhost(r, WEB ":80");
    assert_int_equal(vh->n_routes, 1);
    assert_string_equal(vh->routes[0]->route->cluster, "outbound|80||" WEB);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    view_free(v);
}

/* Every resource of every group of a and b: the same names, and the same blob pointer unless
 * it is one of the changed (kind, key, name) triples, whose bytes must differ. */
typedef struct changed {
    view_group_kind_t kind;
    const char *key, *name;
} changed_t;

static bool is_changed(const changed_t *c, size_t n, const view_group_t *g, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (c[i].kind == g->kind && strcmp(c[i].key, g->key) == 0 && strcmp(c[i].name, name) == 0)
            return true;
    return false;
}

static size_t compare_views(const view_t *a, const view_t *b, const changed_t *c, size_t n)
{
    size_t differ = 0;
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const view_group_t *ga = &a->groups[i], *gb = view_find_group(b, ga->kind, ga->key);
        assert_non_null(gb);
        assert_int_equal(ga->n, gb->n);
        for (size_t j = 0; j < ga->n; j++) {
            const view_resource_t *rb = view_group_resource(gb, ga->v[j].name);
            assert_non_null(rb);
            bool same = rb->blob == ga->v[j].blob;
            if (is_changed(c, n, ga, ga->v[j].name)) {
                assert_false(same);
                assert_true(rb->blob->hash != ga->v[j].blob->hash);
                differ++;
            } else if (!same) {
                fail_msg("group %d '%s': %s changed", (int)ga->kind, ga->key, ga->v[j].name);
            }
        }
    }
    return differ;
}

static void test_weight_change_renews_exactly_the_route_configurations_of_that_port(void **state)
{
    (void)state;
    fx_routed_t f;
    fx_routed(&f);
    view_t *v1 = build(&f.reg, NULL);
    f.split[0].weight = 0;
    f.split[1].weight = 100;
    view_t *v2 = build(&f.reg, v1);
    /* the sidecars' "80" in every namespace, and the gRPC clients' web:80; nothing else (the
     * clusters, the listeners, the other ports' route configurations are prev's blobs) */
    static const changed_t changed[] = {
        {VIEW_GROUP_ROUTES, "default", "80"},
        {VIEW_GROUP_ROUTES, "mixed", "80"},
        {VIEW_GROUP_ROUTES, "secure", "80"},
        {VIEW_GROUP_GRPC_ROUTES, "", WEB ":80"},
    };
    assert_int_equal(compare_views(v1, v2, changed, 4), 4);
    routes_t *r = (routes_t *)fx_decode(v2, VIEW_GROUP_ROUTES, "default", "80");
    const route_t *exact = vhost(r, WEB ":80")->routes[0];
    assert_int_equal(exact->route->cluster_specifier_case,
                     ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER);
    assert_string_equal(exact->route->cluster, WEBV2);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    /* the rebuild is what a build from nothing gives */
    view_t *fresh = build(&f.reg, NULL);
    for (size_t i = 0; i < fresh->n; i++) {
        const view_group_t *g = &fresh->groups[i], *h = view_find_group(v2, g->kind, g->key);
        assert_non_null(h);
        assert_int_equal(g->hash, h->hash);
    }
    /* and back: a weight change again renews the same four */
    f.split[0].weight = 90;
    f.split[1].weight = 10;
    view_t *v3 = build(&f.reg, v2);
    assert_int_equal(compare_views(v2, v3, changed, 4), 4);
    view_free(fresh);
    view_free(v3);
    view_free(v2);
    view_free(v1);
}

static void test_backend_service_added_renews_the_routes_that_name_it(void **state)
{
    (void)state;
    fx_routed_t f;
    fx_routed(&f);
    f.reg.n_services = 6; /* web-v2 not there yet */
    view_t *v1 = build(&f.reg, NULL);
    routes_t *r = (routes_t *)fx_decode(v1, VIEW_GROUP_ROUTES, "default", "80");
    const vhost_t *vh = vhost(r, WEB ":80");
    /* the weighted rule has web-v1 alone; the rule to web-v2 alone answers 500 */
    assert_string_equal(vh->routes[0]->route->cluster, WEBV1);
    assert_int_equal(vh->routes[3]->action_case,
                     ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_DIRECT_RESPONSE);
    assert_int_equal(vh->routes[3]->direct_response->status, 500);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    f.reg.n_services = 7;
    view_t *v2 = build(&f.reg, v1);
    r = (routes_t *)fx_decode(v2, VIEW_GROUP_ROUTES, "default", "80");
    check_web_routes(vhost(r, WEB ":80"));
    protobuf_c_message_free_unpacked(&r->base, NULL);
    view_free(v2);
    view_free(v1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_replace_the_default_route_in_precedence_order),
        cmocka_unit_test(test_rule_on_another_port_leaves_the_default_route),
        cmocka_unit_test(test_weight_change_renews_exactly_the_route_configurations_of_that_port),
        cmocka_unit_test(test_backend_service_added_renews_the_routes_that_name_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
