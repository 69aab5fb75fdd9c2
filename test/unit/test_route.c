/* Route table: Envoy's virtual host and route selection, weighted clusters, header ops and
 * direct responses built from RouteConfiguration YAML, and the errors for what we reject. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "proxy/http/route_match.h"
#include "xds/config/config.h"
#include "xds/snapshot/route.h"
#include "xds/snapshot/snapshot.h"
#include "test/unit/snap_opts.h"

static char err[1024];

/* YAML RouteConfiguration → table, the way the HCM filter will build it. */
static int build_snap(const char *yaml, const snapshot_t *snap, route_table_t **t)
{
    ProtobufCMessage *msg = NULL;
    *t = NULL;
    err[0] = '\0';
    int rc = config_yaml_load(yaml, strlen(yaml), "routes.yaml",
                              &envoy__config__route__v3__route_configuration__descriptor, &msg, err,
                              sizeof(err));
    if (rc < 0) {
        print_error("YAML: %s\n", err);
        return rc;
    }
    rc = route_table_build(msg, snap, t, err, sizeof(err));
    protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
}

static route_table_t *build(const char *yaml)
{
    route_table_t *t = NULL;
    int rc = build_snap(yaml, NULL, &t);
    if (rc != 0)
        print_error("route_table_build: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(t);
    return t;
}

static void expect_error(const char *yaml, const char *want)
{
    route_table_t *t = NULL;
    assert_int_equal(build_snap(yaml, NULL, &t), -EINVAL);
    assert_null(t);
    assert_string_equal(err, want);
}

/* Name of the virtual host chosen for host, or "(none)". */
static const char *vhost_for(const route_table_t *t, const char *host)
{
    const route_vhost_t *v = (const route_vhost_t *)1;
    route_match(t,
                &(route_request_t){.authority = host,
                                   .authority_len = strlen(host),
                                   .path = "/",
                                   .path_len = 1,
                                   .headers = NULL},
                &v);
    return v ? v->name : "(none)";
}

static const char *route_with(const route_table_t *t, const char *host, const char *path,
                              const http_headers_t *hs)
{
    const route_vhost_t *v = NULL;
    const route_entry_t *r = route_match(t,
                                         &(route_request_t){.authority = host,
                                                            .authority_len = strlen(host),
                                                            .path = path,
                                                            .path_len = strlen(path),
                                                            .headers = hs},
                                         &v);
    return r ? r->name : "(none)";
}

/* The route chosen for a request with this method (the request line's, not a header). */
static const char *route_method(const route_table_t *t, const char *host, const char *path,
                                const char *method)
{
    const route_vhost_t *v = NULL;
    route_request_t q = {.authority = host,
                         .authority_len = strlen(host),
                         .path = path,
                         .path_len = strlen(path),
                         .method = method,
                         .method_len = method ? strlen(method) : 0};
    const route_entry_t *r = route_match(t, &q, &v);
    return r ? r->name : "(none)";
}

static const char *route_for(const route_table_t *t, const char *path)
{
    return route_with(t, "svc", path, NULL);
}

/* Headers from "name", "value", ... NULL. */
static http_headers_t *headers(http_header_t *store, http_headers_t *hs, ...)
{
    va_list ap;
    va_start(ap, hs);
    hs->v = store;
    hs->n = 0;
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        store[hs->n++] =
            (http_header_t){name, value, (uint32_t)strlen(name), (uint32_t)strlen(value)};
    }
    hs->cap = hs->n;
    va_end(ap);
    return hs;
}

#define VHOST(name, domains)                                                                       \
    "- name: " name "\n"                                                                           \
    "  domains: " domains "\n"                                                                     \
    "  routes: [{name: r-" name ", match: {prefix: /}, route: {cluster: c}}]\n"

/* One virtual host "svc" holding the given routes (YAML list items indented by 2). */
#define ROUTES(routes)                                                                             \
    "virtual_hosts:\n"                                                                             \
    "- name: svc\n"                                                                                \
    "  domains: ['*']\n"                                                                           \
    "  routes:\n" routes

/* ---- virtual host selection --------------------------------------------------------------- */

static void test_route_exact_beats_suffix_beats_prefix_beats_any(void **state)
{
    (void)state;
    route_table_t *t = build("virtual_hosts:\n" VHOST("exact", "[api.foo.com]") VHOST(
        "suffix", "['*.foo.com']") VHOST("prefix", "['api.*']") VHOST("any", "['*']"));
    assert_string_equal(vhost_for(t, "api.foo.com"), "exact");
    assert_string_equal(vhost_for(t, "www.foo.com"), "suffix");
    assert_string_equal(vhost_for(t, "api.foo.org"), "prefix");
    assert_string_equal(vhost_for(t, "other.org"), "any");
    route_table_free(t);
}

static void test_route_longest_suffix_wildcard_wins(void **state)
{
    (void)state;
    route_table_t *t = build("virtual_hosts:\n" VHOST("short", "['*.com']")
                                 VHOST("long", "['*.foo.com']") VHOST("dash", "['*-bar.foo.com']")
                                     VHOST("pfx-short", "['a.*']") VHOST("pfx-long", "['a.b.*']"));
    assert_string_equal(vhost_for(t, "x.foo.com"), "long");
    assert_string_equal(vhost_for(t, "x-bar.foo.com"), "dash");
    assert_string_equal(vhost_for(t, "x.bar.com"), "short");
    assert_string_equal(vhost_for(t, "a.b.c"), "pfx-long");
    assert_string_equal(vhost_for(t, "a.c"), "pfx-short");
    route_table_free(t);
}

static void test_route_wildcard_covers_at_least_one_character(void **state)
{
    (void)state;
    route_table_t *t =
        build("virtual_hosts:\n" VHOST("suffix", "['*.foo.com']") VHOST("prefix", "['foo.*']"));
    assert_string_equal(vhost_for(t, ".foo.com"), "(none)");
    assert_string_equal(vhost_for(t, "foo."), "(none)");
    route_table_free(t);
}

static void test_route_host_is_port_and_case_insensitive(void **state)
{
    (void)state;
    route_table_t *t = build("virtual_hosts:\n" VHOST("plain", "[foo.com, 'Bar.COM']")
                                 VHOST("ported", "['foo.com:9090']") VHOST("v6", "['[::1]']"));
    assert_string_equal(vhost_for(t, "FOO.com:8080"), "plain");
    assert_string_equal(vhost_for(t, "foo.com"), "plain");
    assert_string_equal(vhost_for(t, "bar.com:80"), "plain");
    assert_string_equal(vhost_for(t, "foo.com:9090"), "ported"); /* a domain with the port wins */
    assert_string_equal(vhost_for(t, "[::1]:443"), "v6");
    assert_string_equal(vhost_for(t, "[::1]"), "v6");
    route_table_free(t);
}

static void test_route_ignore_port_in_host_matching_strips_first(void **state)
{
    (void)state;
    route_table_t *t =
        build("ignore_port_in_host_matching: true\n"
              "virtual_hosts:\n" VHOST("plain", "[foo.com]") VHOST("ported", "['foo.com:9090']"));
    assert_string_equal(vhost_for(t, "foo.com:9090"), "plain");
    route_table_free(t);
}

static void test_route_no_virtual_host_returns_null(void **state)
{
    (void)state;
    route_table_t *t = build("virtual_hosts:\n" VHOST("a", "[a.com]"));
    const route_vhost_t *v = (const route_vhost_t *)1;
    assert_null(route_match(
        t,
        &(route_request_t){
            .authority = "b.com", .authority_len = 5, .path = "/", .path_len = 1, .headers = NULL},
        &v));
    assert_null(v);
    route_table_free(t);
}

static void test_route_vhost_without_matching_route_sets_vhost(void **state)
{
    (void)state;
    route_table_t *t = build(ROUTES("  - {name: a, match: {path: /a}, route: {cluster: c}}\n"));
    const route_vhost_t *v = NULL;
    assert_null(route_match(
        t,
        &(route_request_t){
            .authority = "x", .authority_len = 1, .path = "/b", .path_len = 2, .headers = NULL},
        &v));
    assert_non_null(v);
    assert_string_equal(v->name, "svc");
    route_table_free(t);
}

static void test_route_many_vhosts_use_the_index(void **state)
{
    (void)state;
    char *yaml = malloc(200 * 128 + 64);
    size_t off = (size_t)sprintf(yaml, "virtual_hosts:\n");
    for (int i = 0; i < 200; i++)
        off += (size_t)sprintf(
            yaml + off, "- {name: v%d, domains: [h%d.svc, '*.w%d.svc'], routes: []}\n", i, i, i);
    route_table_t *t = build(yaml);
    assert_string_equal(vhost_for(t, "h137.svc"), "v137");
    assert_string_equal(vhost_for(t, "x.w42.svc:80"), "v42");
    assert_string_equal(vhost_for(t, "h200.svc"), "(none)");
    route_table_free(t);
    free(yaml);
}

/* ---- route selection ---------------------------------------------------------------------- */

static void test_route_first_match_in_order_wins(void **state)
{
    (void)state;
    route_table_t *t = build(ROUTES("  - {name: api, match: {prefix: /api}, route: {cluster: c}}\n"
                                    "  - {name: api-v2, match: {prefix: /api/v2}, "
                                    "route: {cluster: c}}\n"
                                    "  - {name: all, match: {prefix: /}, route: {cluster: c}}\n"));
    assert_string_equal(route_for(t, "/api/v2/x"), "api"); /* earlier, though shorter */
    assert_string_equal(route_for(t, "/other"), "all");
    route_table_free(t);
}

static void test_route_prefix_and_exact_path_ignore_the_query(void **state)
{
    (void)state;
    route_table_t *t =
        build(ROUTES("  - {name: exact, match: {path: /status}, route: {cluster: c}}\n"
                     "  - {name: q, match: {prefix: '/find?x'}, route: {cluster: c}}\n"
                     "  - {name: prefix, match: {prefix: /stat}, route: {cluster: c}}\n"));
    assert_string_equal(route_for(t, "/status"), "exact");
    assert_string_equal(route_for(t, "/status?verbose=1"), "exact");
    assert_string_equal(route_for(t, "/status#frag"), "exact");
    assert_string_equal(route_for(t, "/status/x"), "prefix");
    assert_string_equal(route_for(t, "/stats"), "prefix");
    /* Envoy strips the query before prefix matching too, so this prefix never matches. */
    assert_string_equal(route_for(t, "/find?x=1"), "(none)");
    route_table_free(t);
}

static void test_route_connect_matcher_matches_only_connect_requests(void **state)
{
    (void)state;
    route_table_t *t =
        build(ROUTES("  - name: tunnel\n"
                     "    match: {connect_matcher: {}}\n"
                     "    route: {cluster: c, upgrade_configs: [{upgrade_type: CONNECT, "
                     "connect_config: {}}]}\n"
                     "  - {name: all, match: {prefix: ''}, route: {cluster: c}}\n"));
    assert_string_equal(route_for(t, ""), "tunnel"); /* CONNECT: no path */
    assert_string_equal(route_for(t, "/x"), "all");
    const route_vhost_t *v = NULL;
    const route_entry_t *r = route_match(
        t,
        &(route_request_t){
            .authority = "h", .authority_len = 1, .path = "", .path_len = 0, .headers = NULL},
        &v);
    assert_non_null(r);
    assert_true(r->connect_terminate);
    route_table_free(t);
}

static void test_route_connect_matcher_needs_connect_config(void **state)
{
    (void)state;
    route_table_t *t = NULL;
    assert_int_equal(
        build_snap(ROUTES("  - {match: {connect_matcher: {}}, route: {cluster: c}}\n"), NULL, &t),
        -EINVAL);
    assert_non_null(strstr(err, "connect_matcher routes need upgrade_configs CONNECT"));
}

static void test_route_path_separated_prefix_matches_whole_segments(void **state)
{
    (void)state;
    route_table_t *t = build(
        ROUTES("  - {name: dev, match: {path_separated_prefix: /api/dev}, route: {cluster: c}}\n"));
    assert_string_equal(route_for(t, "/api/dev"), "dev");
    assert_string_equal(route_for(t, "/api/dev/"), "dev");
    assert_string_equal(route_for(t, "/api/dev/v1"), "dev");
    assert_string_equal(route_for(t, "/api/dev?param=true"), "dev");
    assert_string_equal(route_for(t, "/api/developer"), "(none)");
    route_table_free(t);
}

static void test_route_case_sensitive_false_ignores_path_case(void **state)
{
    (void)state;
    route_table_t *t = build(
        ROUTES("  - {name: ci, match: {prefix: /Api, case_sensitive: false}, route: {cluster: c}}\n"
               "  - {name: cs, match: {path: /Exact}, route: {cluster: c}}\n"));
    assert_string_equal(route_for(t, "/aPI/x"), "ci");
    assert_string_equal(route_for(t, "/Exact"), "cs");
    assert_string_equal(route_for(t, "/exact"), "(none)"); /* case_sensitive defaults to true */
    assert_true(t->vhosts[0].routes[1].case_sensitive);
    route_table_free(t);
}

/* One route per matcher kind, each with a unique path so only its header decides. */
static route_table_t *header_table(void)
{
    return build(ROUTES(
        "  - name: exact\n"
        "    match: {prefix: /exact, headers: [{name: X-Env, string_match: {exact: prod}}]}\n"
        "    route: {cluster: c}\n"
        "  - name: exact-ci\n"
        "    match: {prefix: /eci, headers: [{name: x-env, string_match: {exact: prod, "
        "ignore_case: true}}]}\n"
        "    route: {cluster: c}\n"
        "  - name: prefix\n"
        "    match: {prefix: /prefix, headers: [{name: x-v, string_match: {prefix: v2}}]}\n"
        "    route: {cluster: c}\n"
        "  - name: suffix\n"
        "    match: {prefix: /suffix, headers: [{name: x-v, suffix_match: -beta}]}\n"
        "    route: {cluster: c}\n"
        "  - name: contains\n"
        "    match: {prefix: /contains, headers: [{name: user-agent, string_match: "
        "{contains: curl}}]}\n"
        "    route: {cluster: c}\n"
        "  - name: old-exact\n"
        "    match: {prefix: /old, headers: [{name: x-env, exact_match: prod}]}\n"
        "    route: {cluster: c}\n"
        "  - name: present\n"
        "    match: {prefix: /present, headers: [{name: x-debug, present_match: true}]}\n"
        "    route: {cluster: c}\n"
        "  - name: absent\n"
        "    match: {prefix: /absent, headers: [{name: x-debug, present_match: false}]}\n"
        "    route: {cluster: c}\n"
        "  - name: bare\n"
        "    match: {prefix: /bare, headers: [{name: x-debug}]}\n"
        "    route: {cluster: c}\n"
        "  - name: invert\n"
        "    match: {prefix: /invert, headers: [{name: x-env, string_match: {exact: prod}, "
        "invert_match: true}]}\n"
        "    route: {cluster: c}\n"
        "  - name: invert-empty\n"
        "    match: {prefix: /iempty, headers: [{name: x-env, string_match: {exact: prod}, "
        "invert_match: true, treat_missing_header_as_empty: true}]}\n"
        "    route: {cluster: c}\n"
        "  - name: range\n"
        "    match: {prefix: /range, headers: [{name: x-n, range_match: {start: -10, end: 0}}]}\n"
        "    route: {cluster: c}\n"
        "  - name: method\n"
        "    match: {prefix: /method, headers: [{name: ':method', string_match: {exact: POST}}, "
        "{name: ':authority', string_match: {prefix: svc}}]}\n"
        "    route: {cluster: c}\n"));
}

static void test_route_header_string_matchers(void **state)
{
    (void)state;
    route_table_t *t = header_table();
    http_header_t st[4];
    http_headers_t hs;
    assert_string_equal(route_with(t, "svc", "/exact", headers(st, &hs, "x-env", "prod", NULL)),
                        "exact");
    assert_string_equal(route_with(t, "svc", "/exact", headers(st, &hs, "x-env", "Prod", NULL)),
                        "(none)");
    assert_string_equal(route_with(t, "svc", "/eci", headers(st, &hs, "X-ENV", "PROD", NULL)),
                        "exact-ci");
    assert_string_equal(route_with(t, "svc", "/prefix", headers(st, &hs, "x-v", "v2.1", NULL)),
                        "prefix");
    assert_string_equal(route_with(t, "svc", "/prefix", headers(st, &hs, "x-v", "v1", NULL)),
                        "(none)");
    assert_string_equal(route_with(t, "svc", "/suffix", headers(st, &hs, "x-v", "3-beta", NULL)),
                        "suffix");
    assert_string_equal(
        route_with(t, "svc", "/contains", headers(st, &hs, "User-Agent", "x curl/8", NULL)),
        "contains");
    assert_string_equal(route_with(t, "svc", "/old", headers(st, &hs, "x-env", "prod", NULL)),
                        "old-exact");
    /* A missing header fails every value matcher. */
    assert_string_equal(route_with(t, "svc", "/exact", headers(st, &hs, NULL)), "(none)");
    route_table_free(t);
}

static void test_route_header_present_and_absent(void **state)
{
    (void)state;
    route_table_t *t = header_table();
    http_header_t st[4];
    http_headers_t hs;
    assert_string_equal(route_with(t, "svc", "/present", headers(st, &hs, "x-debug", "", NULL)),
                        "present");
    assert_string_equal(route_with(t, "svc", "/present", headers(st, &hs, NULL)), "(none)");
    assert_string_equal(route_with(t, "svc", "/absent", headers(st, &hs, NULL)), "absent");
    assert_string_equal(route_with(t, "svc", "/absent", headers(st, &hs, "x-debug", "1", NULL)),
                        "(none)");
    /* No specifier at all means "present". */
    assert_string_equal(route_with(t, "svc", "/bare", headers(st, &hs, "x-debug", "1", NULL)),
                        "bare");
    assert_string_equal(route_with(t, "svc", "/bare", headers(st, &hs, NULL)), "(none)");
    route_table_free(t);
}

static void test_route_header_invert_and_treat_missing_as_empty(void **state)
{
    (void)state;
    route_table_t *t = header_table();
    http_header_t st[4];
    http_headers_t hs;
    assert_string_equal(route_with(t, "svc", "/invert", headers(st, &hs, "x-env", "dev", NULL)),
                        "invert");
    assert_string_equal(route_with(t, "svc", "/invert", headers(st, &hs, "x-env", "prod", NULL)),
                        "(none)");
    /* Missing: an inverted matcher still fails, unless the header counts as empty. */
    assert_string_equal(route_with(t, "svc", "/invert", headers(st, &hs, NULL)), "(none)");
    assert_string_equal(route_with(t, "svc", "/iempty", headers(st, &hs, NULL)), "invert-empty");
    route_table_free(t);
}

static void test_route_header_range_and_repeated_values(void **state)
{
    (void)state;
    route_table_t *t = header_table();
    http_header_t st[4];
    http_headers_t hs;
    assert_string_equal(route_with(t, "svc", "/range", headers(st, &hs, "x-n", "-1", NULL)),
                        "range");
    assert_string_equal(route_with(t, "svc", "/range", headers(st, &hs, "x-n", "0", NULL)),
                        "(none)");
    assert_string_equal(route_with(t, "svc", "/range", headers(st, &hs, "x-n", "-1x", NULL)),
                        "(none)");
    /* Repeated headers are one value joined with ",". */
    assert_string_equal(
        route_with(t, "svc", "/suffix", headers(st, &hs, "x-v", "1", "x-v", "2-beta", NULL)),
        "suffix");
    assert_string_equal(
        route_with(t, "svc", "/exact", headers(st, &hs, "x-env", "prod", "x-env", "dev", NULL)),
        "(none)");
    route_table_free(t);
}

static void test_route_header_pseudo_headers(void **state)
{
    (void)state;
    route_table_t *t = header_table();
    http_header_t st[4];
    http_headers_t hs;
    /* ":method" is the request's method, as the connection manager passes it. */
    assert_string_equal(route_method(t, "svc:80", "/method", "POST"), "method");
    assert_string_equal(route_method(t, "svc", "/method", "GET"), "(none)");
    assert_string_equal(route_method(t, "svc", "/method", NULL), "(none)");
    /* A header named ":method" is not the method. */
    assert_string_equal(route_with(t, "svc", "/method", headers(st, &hs, ":method", "POST", NULL)),
                        "(none)");
    route_table_free(t);
}

/* ---- actions ------------------------------------------------------------------------------ */

static void test_route_weighted_pick_follows_weights(void **state)
{
    (void)state;
    route_table_t *t = build(ROUTES("  - name: w\n"
                                    "    match: {prefix: /}\n"
                                    "    route:\n"
                                    "      weighted_clusters:\n"
                                    "        clusters:\n"
                                    "        - {name: a, weight: 10}\n"
                                    "        - {name: off, weight: 0}\n"
                                    "        - {name: b, weight: 30}\n"));
    const route_entry_t *r = &t->vhosts[0].routes[0];
    assert_int_equal(r->n_clusters, 3);
    assert_int_equal(r->total_weight, 40);
    assert_int_equal(r->clusters[2].weight, 30);
    assert_string_equal(route_pick_cluster(r, 0)->name, "a");
    assert_string_equal(route_pick_cluster(r, UINT32_MAX)->name, "b");
    size_t a = 0, b = 0, off = 0;
    for (uint64_t x = 0; x < (1ull << 32); x += 1u << 16) {
        const char *n = route_pick_cluster(r, (uint32_t)x)->name;
        a += strcmp(n, "a") == 0;
        b += strcmp(n, "b") == 0;
        off += strcmp(n, "off") == 0;
    }
    assert_int_equal(off, 0);
    assert_int_equal(a, 65536 / 4);
    assert_int_equal(b, 65536 * 3 / 4);
    route_table_free(t);
}

static void test_route_single_cluster_is_one_weighted_entry(void **state)
{
    (void)state;
    route_table_t *t = build(ROUTES("  - {name: r, match: {prefix: /}, route: {cluster: web}}\n"));
    const route_entry_t *r = &t->vhosts[0].routes[0];
    assert_int_equal(r->action, ROUTE_ACTION_ROUTE);
    assert_int_equal(r->n_clusters, 1);
    assert_string_equal(route_pick_cluster(r, 12345)->name, "web");
    assert_null(r->clusters[0].cluster); /* no snapshot */
    assert_int_equal(r->cluster_not_found_status, 503);
    route_table_free(t);
}

static void test_route_timeout_defaults_to_15s_and_0_disables(void **state)
{
    (void)state;
    route_table_t *t =
        build(ROUTES("  - {name: d, match: {path: /d}, route: {cluster: c}}\n"
                     "  - {name: z, match: {path: /z}, route: {cluster: c, timeout: 0s}}\n"
                     "  - {name: s, match: {path: /s}, route: {cluster: c, timeout: 2.5s, "
                     "idle_timeout: 1s}}\n"));
    const route_entry_t *r = t->vhosts[0].routes;
    assert_int_equal(r[0].timeout_ms, 15000);
    assert_false(r[0].has_idle_timeout);
    assert_int_equal(r[1].timeout_ms, 0);
    assert_int_equal(r[2].timeout_ms, 2500);
    assert_true(r[2].has_idle_timeout);
    assert_int_equal(r[2].idle_timeout_ms, 1000);
    route_table_free(t);
}

static void test_route_rewrites_and_retry_policy(void **state)
{
    (void)state;
    route_table_t *t =
        build("virtual_hosts:\n"
              "- name: svc\n"
              "  domains: ['*']\n"
              "  retry_policy: {retry_on: 5xx, num_retries: 3}\n"
              "  routes:\n"
              "  - name: own\n"
              "    match: {prefix: /a}\n"
              "    route:\n"
              "      cluster: c\n"
              "      prefix_rewrite: /b\n"
              "      host_rewrite_literal: backend.local\n"
              "      cluster_not_found_response_code: NOT_FOUND\n"
              "      retry_policy: {retry_on: 'connect-failure,reset', per_try_timeout: 0.5s}\n"
              "  - name: inherited\n"
              "    match: {prefix: /}\n"
              "    route: {cluster: c, auto_host_rewrite: true}\n");
    const route_entry_t *r = t->vhosts[0].routes;
    assert_string_equal(r[0].prefix_rewrite, "/b");
    assert_string_equal(r[0].host_rewrite, "backend.local");
    assert_int_equal(r[0].cluster_not_found_status, 404);
    assert_string_equal(r[0].retry_on, "connect-failure,reset");
    assert_int_equal(r[0].retry_num, 1); /* Envoy's default when num_retries is unset */
    assert_int_equal(r[0].per_try_timeout_ms, 500);
    assert_null(r[1].prefix_rewrite);
    assert_null(r[1].host_rewrite);
    assert_true(r[1].auto_host_rewrite);
    assert_string_equal(r[1].retry_on, "5xx"); /* from the virtual host */
    assert_int_equal(r[1].retry_num, 3);
    route_table_free(t);
}

static void test_route_header_ops_parse_append_action(void **state)
{
    (void)state;
    route_table_t *t =
        build("request_headers_to_add:\n"
              "- header: {key: X-Top, value: '1'}\n"
              "response_headers_to_remove: [X-Internal]\n"
              "internal_only_headers: [X-Secret]\n"
              "virtual_hosts:\n"
              "- name: svc\n"
              "  domains: ['*']\n"
              "  response_headers_to_add:\n"
              "  - {header: {key: x-a, value: a}, append_action: ADD_IF_ABSENT}\n"
              "  - {header: {key: x-b, value: b}, append_action: OVERWRITE_IF_EXISTS}\n"
              "  - {header: {key: x-c, value: ''}, keep_empty_value: true}\n"
              "  routes:\n"
              "  - name: r\n"
              "    match: {prefix: /}\n"
              "    route: {cluster: c}\n"
              "    request_headers_to_add:\n"
              "    - {header: {key: X-Old-True, value: t}, append: true}\n"
              "    - {header: {key: x-old-false, value: f}, append: false}\n"
              "    - {header: {key: x-new, value: n}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n"
              "    request_headers_to_remove: [X-Drop]\n");
    assert_string_equal(t->request_ops.add[0].name, "x-top");
    assert_int_equal(t->request_ops.add[0].action, HDR_APPEND_IF_EXISTS_OR_ADD);
    assert_string_equal(t->response_ops.remove[0], "x-internal");
    assert_string_equal(t->internal_only_headers[0], "x-secret");
    const route_vhost_t *v = &t->vhosts[0];
    assert_int_equal(v->response_ops.n_add, 3);
    assert_int_equal(v->response_ops.add[0].action, HDR_ADD_IF_ABSENT);
    assert_int_equal(v->response_ops.add[1].action, HDR_OVERWRITE_IF_EXISTS);
    assert_true(v->response_ops.add[2].keep_empty_value);
    assert_string_equal(v->response_ops.add[2].value, "");
    const route_header_ops_t *o = &v->routes[0].request_ops;
    assert_string_equal(o->add[0].name, "x-old-true");
    assert_int_equal(o->add[0].action, HDR_APPEND_IF_EXISTS_OR_ADD);
    assert_int_equal(o->add[1].action, HDR_OVERWRITE_IF_EXISTS_OR_ADD);
    assert_int_equal(o->add[2].action, HDR_OVERWRITE_IF_EXISTS_OR_ADD);
    assert_string_equal(o->add[2].value, "n");
    assert_string_equal(o->remove[0], "x-drop");
    route_table_free(t);
}

static void test_route_weighted_cluster_header_ops(void **state)
{
    (void)state;
    route_table_t *t = build(ROUTES("  - name: w\n"
                                    "    match: {prefix: /}\n"
                                    "    route:\n"
                                    "      weighted_clusters:\n"
                                    "        clusters:\n"
                                    "        - name: a\n"
                                    "          weight: 1\n"
                                    "          request_headers_to_add: [{header: {key: x-c, "
                                    "value: a}}]\n"
                                    "          response_headers_to_remove: [x-r]\n"));
    const route_cluster_t *c = &t->vhosts[0].routes[0].clusters[0];
    assert_string_equal(c->request_ops.add[0].value, "a");
    assert_string_equal(c->response_ops.remove[0], "x-r");
    route_table_free(t);
}

static void test_route_direct_response_inline(void **state)
{
    (void)state;
    route_table_t *t =
        build(ROUTES("  - {name: s, match: {path: /s}, direct_response: {status: 200, body: "
                     "{inline_string: hello}}}\n"
                     "  - {name: b, match: {path: /b}, direct_response: {status: 418, body: "
                     "{inline_bytes: 'AGI='}}}\n"
                     "  - {name: n, match: {path: /n}, direct_response: {status: 204}}\n"));
    const route_entry_t *r = t->vhosts[0].routes;
    assert_int_equal(r[0].action, ROUTE_ACTION_DIRECT_RESPONSE);
    assert_int_equal(r[0].direct_status, 200);
    assert_string_equal(r[0].direct_body, "hello");
    assert_int_equal(r[0].direct_body_len, 5);
    assert_int_equal(r[1].direct_body_len, 2);
    assert_memory_equal(r[1].direct_body, "\0b", 2);
    assert_null(r[2].direct_body);
    route_table_free(t);
}

static void test_route_direct_response_body_from_file(void **state)
{
    (void)state;
    char path[] = "/tmp/remora-route-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "from file\n", 10), 10);
    close(fd);
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             ROUTES("  - {name: f, match: {prefix: /}, direct_response: {status: 503, body: "
                    "{filename: '%s'}}}\n"),
             path);
    route_table_t *t = build(yaml);
    assert_string_equal(t->vhosts[0].routes[0].direct_body, "from file\n");
    route_table_free(t);

    snprintf(yaml, sizeof(yaml),
             "max_direct_response_body_size_bytes: 4\n" ROUTES(
                 "  - {match: {prefix: /}, direct_response: {status: 503, body: "
                 "{filename: '%s'}}}\n"),
             path);
    expect_error(yaml, "virtual_host 'svc': route 0: direct_response: body is over 4 bytes; the "
                       "maximum is 4 (max_direct_response_body_size_bytes)");
    unlink(path);
}

static void test_route_per_filter_config_is_kept(void **state)
{
    (void)state;
    route_table_t *t =
        build(ROUTES("  - name: r\n"
                     "    match: {prefix: /}\n"
                     "    route: {cluster: c}\n"
                     "    typed_per_filter_config:\n"
                     "      envoy.filters.http.header_mutation:\n"
                     "        '@type': type.googleapis.com/"
                     "envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute\n"
                     "        mutations: {request_mutations: [{remove: x-a}]}\n"));
    const route_filter_configs_t *f = &t->vhosts[0].routes[0].filter_configs;
    assert_int_equal(f->n, 1);
    assert_string_equal(f->v[0].filter, "envoy.filters.http.header_mutation");
    assert_non_null(config_type_lookup(f->v[0].type_url));
    assert_true(f->v[0].value_len > 0);
    route_table_free(t);
}

static void test_route_resolves_clusters_against_the_snapshot(void **state)
{
    (void)state;
    const char *boot = "static_resources:\n"
                       "  clusters:\n"
                       "  - name: web\n"
                       "    load_assignment:\n"
                       "      endpoints:\n"
                       "      - lb_endpoints:\n"
                       "        - endpoint: {address: {socket_address: {address: 198.18.0.6, "
                       "port_value: 80}}}\n";
    ProtobufCMessage *msg = NULL;
    stats_store_t *stats = stats_store_new(1);
    assert_int_equal(config_yaml_load(boot, strlen(boot), "b.yaml",
                                      &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg,
                                      err, sizeof(err)),
                     0);
    snapshot_t *snap = NULL;
    assert_int_equal(snapshot_build(msg, &test_snap_opts, stats, 1, &snap, err, sizeof(err)), 0);

    route_table_t *t = NULL;
    assert_int_equal(build_snap("validate_clusters: false\n" ROUTES(
                                    "  - {match: {prefix: /a}, route: {cluster: web}}\n"
                                    "  - {match: {prefix: /}, route: {cluster: later}}\n"),
                                snap, &t),
                     0);
    assert_ptr_equal(t->vhosts[0].routes[0].clusters[0].cluster,
                     snapshot_find_cluster(snap, "web"));
    assert_null(t->vhosts[0].routes[1].clusters[0].cluster);
    route_table_free(t);

    /* Unset is true, as in Envoy for a route table defined in place. */
    assert_int_equal(
        build_snap(ROUTES("  - {match: {prefix: /}, route: {cluster: later}}\n"), snap, &t),
        -EINVAL);
    assert_string_equal(err, "virtual_host 'svc': route 0: route: unknown cluster 'later' "
                             "(validate_clusters is on)");
    snapshot_unref(snap);
    stats_store_free(stats);
}

/* ---- build errors ------------------------------------------------------------------------- */

static void test_route_rejects_duplicate_domains(void **state)
{
    (void)state;
    expect_error("virtual_hosts:\n" VHOST("a", "[foo.com]") VHOST("b", "['FOO.com']"),
                 "virtual_host 'b': domain 'foo.com' is also in virtual_host 'a' (domains must "
                 "be unique)");
    expect_error("virtual_hosts:\n" VHOST("a", "['*.foo.com', '*.foo.com']"),
                 "virtual_host 'a': domain '*.foo.com' is listed twice");
}

static void test_route_rejects_two_catch_all_vhosts(void **state)
{
    (void)state;
    expect_error("virtual_hosts:\n" VHOST("a", "['*']") VHOST("b", "['*']"),
                 "virtual_host 'b': only one virtual host may have the '*' domain (virtual_host "
                 "'a' has it too)");
}

static void test_route_rejects_route_without_action(void **state)
{
    (void)state;
    expect_error(ROUTES("  - {match: {prefix: /}}\n"),
                 "virtual_host 'svc': route 0: the route has no action (route, redirect or "
                 "direct_response)");
}

static void test_route_rejects_redirect(void **state)
{
    (void)state;
    expect_error(ROUTES("  - {name: r, match: {prefix: /}, redirect: {https_redirect: true}}\n"),
                 "virtual_host 'svc': route 0 ('r'): redirect is not supported yet");
}

static void test_route_rejects_safe_regex(void **state)
{
    (void)state;
    expect_error(ROUTES("  - {match: {prefix: /}, route: {cluster: c}}\n"
                        "  - {match: {prefix: /}, route: {cluster: c}}\n"
                        "  - {match: {safe_regex: {regex: '/a.*'}}, route: {cluster: c}}\n"),
                 "virtual_host 'svc': route 2: safe_regex is not supported");
    expect_error(ROUTES("  - match: {prefix: /, headers: [{name: x, safe_regex_match: "
                        "{regex: a}}]}\n"
                        "    route: {cluster: c}\n"),
                 "virtual_host 'svc': route 0: headers[0] 'x': safe_regex_match is not "
                 "supported");
}

static void test_route_rejects_regex_rewrite_and_cluster_header(void **state)
{
    (void)state;
    expect_error(ROUTES("  - match: {prefix: /}\n"
                        "    route: {cluster: c, regex_rewrite: {pattern: {regex: a}, "
                        "substitution: b}}\n"),
                 "virtual_host 'svc': route 0: regex_rewrite is not supported");
    expect_error(ROUTES("  - {match: {prefix: /}, route: {cluster_header: x-cluster}}\n"),
                 "virtual_host 'svc': route 0: cluster_header is not supported");
}

static void test_route_rejects_zero_total_weight(void **state)
{
    (void)state;
    expect_error(ROUTES("  - match: {prefix: /}\n"
                        "    route: {weighted_clusters: {clusters: [{name: a, weight: 0}, "
                        "{name: b}]}}\n"),
                 "virtual_host 'svc': route 0: weighted_clusters: the total weight is 0");
}

static void test_route_rejects_direct_response_status_out_of_range(void **state)
{
    (void)state;
    expect_error(ROUTES("  - {match: {prefix: /}, direct_response: {status: 199}}\n"),
                 "virtual_host 'svc': route 0: direct_response: status 199 is outside 200-599");
    expect_error(ROUTES("  - {match: {prefix: /}, direct_response: {status: 600}}\n"),
                 "virtual_host 'svc': route 0: direct_response: status 600 is outside 200-599");
}

static void test_route_rejects_direct_response_body_over_limit(void **state)
{
    (void)state;
    char *yaml = malloc(8192);
    int off = sprintf(yaml, ROUTES("  - {match: {prefix: /}, direct_response: {status: 200, "
                                   "body: {inline_string: '"));
    memset(yaml + off, 'x', 4097);
    strcpy(yaml + off + 4097, "'}}}\n");
    expect_error(yaml, "virtual_host 'svc': route 0: direct_response: body is 4097 bytes; the "
                       "maximum is 4096 (max_direct_response_body_size_bytes)");
    free(yaml);
    expect_error(ROUTES("  - {match: {prefix: /}, direct_response: {status: 200, body: "
                        "{filename: /nonexistent/remora}}}\n"),
                 "virtual_host 'svc': route 0: direct_response: body: cannot open "
                 "'/nonexistent/remora': No such file or directory");
}

static void test_route_rejects_append_with_append_action(void **state)
{
    (void)state;
    expect_error(ROUTES("  - match: {prefix: /}\n"
                        "    route: {cluster: c}\n"
                        "    request_headers_to_add:\n"
                        "    - {header: {key: x, value: y}, append: true, append_action: "
                        "ADD_IF_ABSENT}\n"),
                 "virtual_host 'svc': route 0: request_headers_to_add[0]: header 'x': both "
                 "append and append_action are set; use append_action");
}

static void test_route_rejects_pseudo_header_ops(void **state)
{
    (void)state;
    expect_error(ROUTES("  - match: {prefix: /}\n"
                        "    route: {cluster: c}\n"
                        "    request_headers_to_add: [{header: {key: ':path', value: /x}}]\n"),
                 "virtual_host 'svc': route 0: request_headers_to_add[0]: ':path' may not be "
                 "modified (pseudo-headers and host)");
    expect_error("request_headers_to_remove: [Host]\n" ROUTES(""),
                 "request_headers_to_remove[0]: 'host' may not be removed (pseudo-headers and "
                 "host)");
}

static void test_route_rejects_bad_path_separated_prefix(void **state)
{
    (void)state;
    expect_error(ROUTES("  - {match: {path_separated_prefix: /api/}, route: {cluster: c}}\n"),
                 "virtual_host 'svc': route 0: match: path_separated_prefix '/api/' must have 2+ "
                 "characters, no '?' or '#', and not end in '/'");
}

static void test_route_rejects_vhost_without_domains(void **state)
{
    (void)state;
    expect_error("virtual_hosts: [{name: v, routes: []}]\n", "virtual_host 'v': domains is empty");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_exact_beats_suffix_beats_prefix_beats_any),
        cmocka_unit_test(test_route_longest_suffix_wildcard_wins),
        cmocka_unit_test(test_route_wildcard_covers_at_least_one_character),
        cmocka_unit_test(test_route_host_is_port_and_case_insensitive),
        cmocka_unit_test(test_route_ignore_port_in_host_matching_strips_first),
        cmocka_unit_test(test_route_no_virtual_host_returns_null),
        cmocka_unit_test(test_route_vhost_without_matching_route_sets_vhost),
        cmocka_unit_test(test_route_many_vhosts_use_the_index),
        cmocka_unit_test(test_route_first_match_in_order_wins),
        cmocka_unit_test(test_route_prefix_and_exact_path_ignore_the_query),
        cmocka_unit_test(test_route_connect_matcher_matches_only_connect_requests),
        cmocka_unit_test(test_route_connect_matcher_needs_connect_config),
        cmocka_unit_test(test_route_path_separated_prefix_matches_whole_segments),
        cmocka_unit_test(test_route_case_sensitive_false_ignores_path_case),
        cmocka_unit_test(test_route_header_string_matchers),
        cmocka_unit_test(test_route_header_present_and_absent),
        cmocka_unit_test(test_route_header_invert_and_treat_missing_as_empty),
        cmocka_unit_test(test_route_header_range_and_repeated_values),
        cmocka_unit_test(test_route_header_pseudo_headers),
        cmocka_unit_test(test_route_weighted_pick_follows_weights),
        cmocka_unit_test(test_route_single_cluster_is_one_weighted_entry),
        cmocka_unit_test(test_route_timeout_defaults_to_15s_and_0_disables),
        cmocka_unit_test(test_route_rewrites_and_retry_policy),
        cmocka_unit_test(test_route_header_ops_parse_append_action),
        cmocka_unit_test(test_route_weighted_cluster_header_ops),
        cmocka_unit_test(test_route_direct_response_inline),
        cmocka_unit_test(test_route_direct_response_body_from_file),
        cmocka_unit_test(test_route_per_filter_config_is_kept),
        cmocka_unit_test(test_route_resolves_clusters_against_the_snapshot),
        cmocka_unit_test(test_route_rejects_duplicate_domains),
        cmocka_unit_test(test_route_rejects_two_catch_all_vhosts),
        cmocka_unit_test(test_route_rejects_route_without_action),
        cmocka_unit_test(test_route_rejects_redirect),
        cmocka_unit_test(test_route_rejects_safe_regex),
        cmocka_unit_test(test_route_rejects_regex_rewrite_and_cluster_header),
        cmocka_unit_test(test_route_rejects_zero_total_weight),
        cmocka_unit_test(test_route_rejects_direct_response_status_out_of_range),
        cmocka_unit_test(test_route_rejects_direct_response_body_over_limit),
        cmocka_unit_test(test_route_rejects_append_with_append_action),
        cmocka_unit_test(test_route_rejects_pseudo_header_ops),
        cmocka_unit_test(test_route_rejects_bad_path_separated_prefix),
        cmocka_unit_test(test_route_rejects_vhost_without_domains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
