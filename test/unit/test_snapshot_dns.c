/* STRICT_DNS and LOGICAL_DNS clusters in the snapshot: which configs Envoy would take, the
 * settings they carry, endpoints made from what a resolver holds, address family selection, and
 * what counts as a membership change. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "proxy/upstream/lb.h"
#include "xds/config/config.h"
#include "xds/snapshot/snapshot.h"
#include "test/unit/snap_opts.h"

/* A cluster "c" of TYPE whose lb_endpoints are the given socket_address lines, plus EXTRA
 * cluster fields (each line indented by four spaces). */
#define DNS_CLUSTER(type, extra, endpoints)                                                        \
    "static_resources:\n"                                                                          \
    "  clusters:\n"                                                                                \
    "  - name: c\n"                                                                                \
    "    type: " type "\n" extra "    load_assignment:\n"                                          \
    "      endpoints:\n"                                                                           \
    "      - lb_endpoints:\n" endpoints

#define ENDPOINT(host, port, weight)                                                               \
    "        - endpoint: {address: {socket_address: {address: " host ", port_value: " port "}}}\n" \
    "          load_balancing_weight: " weight "\n"

/* A resolver over a fixed table: what proxy/server/dns.c would hold. */
typedef struct fake_name {
    const char *host;
    struct sockaddr_storage addrs[3];
    size_t n;
} fake_name_t;

static int fake_lookup(void *ctx, const char *cluster, const char *host,
                       const struct sockaddr_storage **addrs, size_t *n)
{
    (void)cluster;
    for (fake_name_t *f = ctx; f->host; f++) {
        if (strcmp(f->host, host) == 0) {
            *addrs = f->addrs;
            *n = f->n;
            return 0;
        }
    }
    return -1;
}

static struct sockaddr_storage ip(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1)
        s4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1)
        s6->sin6_family = AF_INET6;
    return ss;
}

typedef struct built {
    stats_store_t *stats;
    snapshot_t *snap;
    const snap_cluster_t *c;
    char err[512];
} built_t;

/* Loads yaml and builds it with resolver (NULL: none). Returns the build's result. */
static int load(built_t *b, const char *yaml, const snap_resolver_t *resolver)
{
    ProtobufCMessage *msg = NULL;
    b->stats = stats_store_new(2);
    int rc = config_yaml_load(yaml, strlen(yaml), "dns.yaml",
                              &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg, b->err,
                              sizeof(b->err));
    snap_build_opts_t opts = test_snap_opts;
    opts.resolver = resolver;
    if (rc == 0)
        rc = snapshot_build(msg, &opts, b->stats, 2, &b->snap, b->err, sizeof(b->err));
    b->c = rc == 0 ? snapshot_find_cluster(b->snap, "c") : NULL;
    return rc;
}

static void unload(built_t *b)
{
    snapshot_unref(b->snap);
    stats_store_free(b->stats);
    memset(b, 0, sizeof(*b));
}

static void assert_refused(const char *yaml, const char *want)
{
    built_t b = {0};
    int rc = load(&b, yaml, NULL);
    if (rc == 0 || strstr(b.err, want) == NULL)
        fail_msg("want an error containing '%s', got rc=%d err='%s'", want, rc, b.err);
    unload(&b);
}

static void test_strict_dns_takes_host_names_and_literals(void **state)
{
    (void)state;
    built_t b = {0};
    assert_int_equal(load(&b,
                          DNS_CLUSTER("STRICT_DNS", "",
                                      ENDPOINT("service-envoy-1", "8000", "1")
                                          ENDPOINT("198.18.0.9", "9000", "2")),
                          NULL),
                     0);
    assert_int_equal(b.c->kind, CLUSTER_STRICT_DNS);
    assert_int_equal(b.c->dns->n_targets, 2);
    assert_string_equal(b.c->dns->targets[0].host, "service-envoy-1");
    assert_false(b.c->dns->targets[0].literal);
    assert_true(b.c->dns->targets[1].literal);
    /* Nothing resolved (as with --validate): only the literal is an endpoint already. */
    assert_int_equal(b.c->n_endpoints, 1);
    assert_string_equal(b.c->endpoints[0].label, "198.18.0.9:9000");
    assert_int_equal(b.c->endpoints[0].weight, 2);
    assert_null(b.c->endpoints[0].hostname);
    unload(&b);
}

static void test_dns_settings_default_like_envoy(void **state)
{
    (void)state;
    built_t b = {0};
    assert_int_equal(load(&b, DNS_CLUSTER("LOGICAL_DNS", "", ENDPOINT("db", "5432", "1")), NULL),
                     0);
    assert_int_equal(b.c->kind, CLUSTER_LOGICAL_DNS);
    assert_int_equal(b.c->dns->family, SNAP_DNS_AUTO);
    assert_int_equal(b.c->dns->refresh_ms, 5000);
    assert_int_equal(b.c->dns->jitter_ms, 0);
    assert_int_equal(b.c->dns->failure_base_ms, 0); /* failures retry at the refresh rate */
    assert_false(b.c->dns->respect_ttl);
    assert_int_equal(b.c->n_endpoints, 0);
    unload(&b);
}

static void test_dns_settings_are_read(void **state)
{
    (void)state;
    built_t b = {0};
    assert_int_equal(load(&b,
                          DNS_CLUSTER("STRICT_DNS",
                                      "    dns_refresh_rate: 0.25s\n"
                                      "    dns_jitter: 0.1s\n"
                                      "    dns_lookup_family: V4_PREFERRED\n"
                                      "    respect_dns_ttl: true\n"
                                      "    dns_failure_refresh_rate: {base_interval: 2s}\n",
                                      ENDPOINT("db", "5432", "1")),
                          NULL),
                     0);
    assert_int_equal(b.c->dns->refresh_ms, 250);
    assert_int_equal(b.c->dns->jitter_ms, 100);
    assert_int_equal(b.c->dns->family, SNAP_DNS_V4_PREFERRED);
    assert_true(b.c->dns->respect_ttl);
    assert_int_equal(b.c->dns->failure_base_ms, 2000);
    assert_int_equal(b.c->dns->failure_max_ms, 20000); /* 10 times the base, as Envoy */
    unload(&b);
}

static void test_logical_dns_with_two_endpoints_is_refused(void **state)
{
    (void)state;
    assert_refused(DNS_CLUSTER("LOGICAL_DNS", "",
                               ENDPOINT("a.example", "80", "1") ENDPOINT("b.example", "80", "1")),
                   "cluster 'c': LOGICAL_DNS clusters must have a single locality_lb_endpoint "
                   "and a single lb_endpoint");
    assert_refused("static_resources:\n  clusters:\n  - name: c\n    type: LOGICAL_DNS\n",
                   "cluster 'c': LOGICAL_DNS clusters must have a single host");
}

static void test_refresh_rates_must_be_over_a_millisecond(void **state)
{
    (void)state;
    assert_refused(
        DNS_CLUSTER("STRICT_DNS", "    dns_refresh_rate: 0.001s\n", ENDPOINT("db", "1", "1")),
        "cluster 'c': dns_refresh_rate: must be greater than 1ms");
    assert_refused(DNS_CLUSTER("STRICT_DNS", "    dns_failure_refresh_rate: {max_interval: 1s}\n",
                               ENDPOINT("db", "1", "1")),
                   "dns_failure_refresh_rate.base_interval: is required");
    assert_refused(DNS_CLUSTER("STRICT_DNS",
                               "    dns_failure_refresh_rate: {base_interval: 2s, "
                               "max_interval: 1s}\n",
                               ENDPOINT("db", "1", "1")),
                   "dns_failure_refresh_rate must have max_interval greater than or equal to "
                   "the base_interval");
    built_t b = {0};
    assert_int_equal(
        load(&b,
             DNS_CLUSTER("STRICT_DNS", "    dns_refresh_rate: 0.002s\n", ENDPOINT("db", "1", "1")),
             NULL),
        0);
    assert_int_equal(b.c->dns->refresh_ms, 2);
    unload(&b);
}

static void test_dns_endpoint_needs_a_plain_tcp_address(void **state)
{
    (void)state;
    assert_refused(DNS_CLUSTER("STRICT_DNS", "",
                               "        - endpoint: {address: {socket_address: {address: db, "
                               "port_value: 1, resolver_name: custom}}}\n"),
                   "endpoint 0.0: address: resolver_name is not supported");
    assert_refused(DNS_CLUSTER("STRICT_DNS", "",
                               "        - endpoint: {address: {socket_address: {address: db, "
                               "named_port: http}}}\n"),
                   "port_value is required");
}

static void test_static_cluster_still_refuses_host_names(void **state)
{
    (void)state;
    assert_refused(DNS_CLUSTER("STATIC", "", ENDPOINT("db.local", "5432", "1")),
                   "'db.local' is not an IP address");
}

static void test_strict_dns_makes_every_address_an_endpoint(void **state)
{
    (void)state;
    fake_name_t names[] = {
        {"web", {ip("198.18.0.2"), ip("198.18.0.3")}, 2},
        {"api", {ip("2001:db8::1")}, 1},
        {NULL, {{0}}, 0},
    };
    snap_resolver_t r = {fake_lookup, names};
    built_t b = {0};
    assert_int_equal(load(&b,
                          DNS_CLUSTER("STRICT_DNS", "",
                                      ENDPOINT("web", "8080", "3") ENDPOINT("api", "443", "1")
                                          ENDPOINT("gone", "80", "1")),
                          &r),
                     0);
    assert_int_equal(b.c->n_endpoints, 3); /* "gone" is not known: no endpoint */
    assert_string_equal(b.c->endpoints[0].label, "198.18.0.2:8080");
    assert_string_equal(b.c->endpoints[1].label, "198.18.0.3:8080");
    assert_string_equal(b.c->endpoints[2].label, "[2001:db8::1]:443");
    assert_int_equal(b.c->endpoints[1].weight, 3);
    assert_string_equal(b.c->endpoints[0].hostname, "web");
    unload(&b);
}

static void test_logical_dns_connects_to_the_first_address(void **state)
{
    (void)state;
    fake_name_t names[] = {{"db", {ip("198.18.0.7"), ip("198.18.0.8")}, 2}, {NULL, {{0}}, 0}};
    snap_resolver_t r = {fake_lookup, names};
    built_t b = {0};
    assert_int_equal(load(&b, DNS_CLUSTER("LOGICAL_DNS", "", ENDPOINT("db", "5432", "1")), &r), 0);
    assert_int_equal(b.c->n_endpoints, 1);
    assert_string_equal(b.c->endpoints[0].label, "198.18.0.7:5432");
    unload(&b);
}

static void test_a_reorder_is_no_membership_change(void **state)
{
    (void)state;
    fake_name_t one[] = {{"web", {ip("198.18.0.2"), ip("198.18.0.3")}, 2}, {NULL, {{0}}, 0}};
    fake_name_t two[] = {{"web", {ip("198.18.0.3"), ip("198.18.0.2")}, 2}, {NULL, {{0}}, 0}};
    fake_name_t three[] = {{"web", {ip("198.18.0.3"), ip("198.18.0.4")}, 2}, {NULL, {{0}}, 0}};
    snap_resolver_t r1 = {fake_lookup, one}, r2 = {fake_lookup, two}, r3 = {fake_lookup, three};
    const char *yaml = DNS_CLUSTER("STRICT_DNS", "", ENDPOINT("web", "80", "1"));
    built_t a = {0}, b = {0}, c = {0};
    assert_int_equal(load(&a, yaml, &r1), 0);
    assert_int_equal(load(&b, yaml, &r2), 0);
    assert_int_equal(load(&c, yaml, &r3), 0);
    assert_true(cluster_same_endpoints(a.c, b.c));
    assert_false(cluster_same_endpoints(a.c, c.c));
    unload(&a);
    unload(&b);
    unload(&c);
}

static void test_rebuild_takes_the_addresses_held_now(void **state)
{
    (void)state;
    fake_name_t names[] = {{"web", {ip("198.18.0.5")}, 1}, {NULL, {{0}}, 0}};
    snap_resolver_t r = {fake_lookup, names};
    built_t b = {0};
    assert_int_equal(load(&b, DNS_CLUSTER("STRICT_DNS", "", ENDPOINT("web", "80", "1")), NULL), 0);
    snapshot_t *next = NULL;
    assert_int_equal(snapshot_rebuild(b.snap, &r, b.stats, &next, b.err, sizeof(b.err)), 0);
    const snap_cluster_t *c = snapshot_find_cluster(next, "c");
    assert_int_equal(c->n_endpoints, 1);
    assert_string_equal(c->endpoints[0].label, "198.18.0.5:80");
    assert_true(next->version > b.snap->version);
    snapshot_unref(next);
    unload(&b);
}

/* Runs snapshot_dns_select over the addresses in `in` (space-separated) and returns what it
 * kept, space-separated, in a static buffer. */
static const char *select_family(snap_dns_family_t family, const char *in)
{
    static char out[256];
    struct sockaddr_storage v[8];
    size_t n = 0;
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", in);
    for (char *save, *tok = strtok_r(copy, " ", &save); tok && n < 8;
         tok = strtok_r(NULL, " ", &save))
        v[n++] = ip(tok);
    size_t k = snapshot_dns_select(family, v, n);
    out[0] = '\0';
    for (size_t i = 0; i < k; i++) {
        char text[INET6_ADDRSTRLEN];
        const void *a = v[i].ss_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)&v[i])->sin6_addr
                            : (const void *)&((struct sockaddr_in *)&v[i])->sin_addr;
        inet_ntop(v[i].ss_family, a, text, sizeof(text));
        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", i ? " " : "", text);
    }
    return out;
}

static void test_lookup_family_selection(void **state)
{
    (void)state;
    const char *mixed = "10.0.0.1 2001:db8::1 10.0.0.2 2001:db8::2";
    assert_string_equal(select_family(SNAP_DNS_AUTO, mixed), "2001:db8::1 2001:db8::2");
    assert_string_equal(select_family(SNAP_DNS_AUTO, "10.0.0.1 10.0.0.2"), "10.0.0.1 10.0.0.2");
    assert_string_equal(select_family(SNAP_DNS_V4_PREFERRED, mixed), "10.0.0.1 10.0.0.2");
    assert_string_equal(select_family(SNAP_DNS_V4_PREFERRED, "2001:db8::1"), "2001:db8::1");
    assert_string_equal(select_family(SNAP_DNS_V4_ONLY, mixed), "10.0.0.1 10.0.0.2");
    assert_string_equal(select_family(SNAP_DNS_V4_ONLY, "2001:db8::1"), "");
    assert_string_equal(select_family(SNAP_DNS_V6_ONLY, mixed), "2001:db8::1 2001:db8::2");
    assert_string_equal(select_family(SNAP_DNS_ALL, mixed), mixed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_dns_takes_host_names_and_literals),
        cmocka_unit_test(test_dns_settings_default_like_envoy),
        cmocka_unit_test(test_dns_settings_are_read),
        cmocka_unit_test(test_logical_dns_with_two_endpoints_is_refused),
        cmocka_unit_test(test_refresh_rates_must_be_over_a_millisecond),
        cmocka_unit_test(test_dns_endpoint_needs_a_plain_tcp_address),
        cmocka_unit_test(test_static_cluster_still_refuses_host_names),
        cmocka_unit_test(test_strict_dns_makes_every_address_an_endpoint),
        cmocka_unit_test(test_logical_dns_connects_to_the_first_address),
        cmocka_unit_test(test_a_reorder_is_no_membership_change),
        cmocka_unit_test(test_rebuild_takes_the_addresses_held_now),
        cmocka_unit_test(test_lookup_family_selection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
