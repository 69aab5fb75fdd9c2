/* Where an HTTP connection goes when a new snapshot comes (hcm_binding_find), on snapshots built
 * from bootstraps: to the listener of the same name and its chain built from the same
 * FilterChain message, with that snapshot's connection manager config; nowhere when its chain
 * changed, went away or its listener did; and not when the counters it was counted into would
 * differ there. Chain hashes follow the chain's message alone. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "proxy/http/hcm_conn.h"
#include "xds/config/config.h"
#include "test/unit/snap_opts.h"

/* A bootstrap with listener NAME (stat_prefix STAT) of two chains, on destination ports 80 and
 * 81; each one's connection manager answers every request with a direct response of its body
 * (BODY80, BODY81). */
static char *bootstrap(const char *name, const char *stat, const char *body80, const char *body81)
{
    static const char *const chain =
        "    - filter_chain_match: {destination_port: %d}\n"
        "      filters:\n"
        "      - name: envoy.filters.network.http_connection_manager\n"
        "        typed_config:\n"
        "          '@type': type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager\n"
        "          stat_prefix: p%d\n"
        "          route_config:\n"
        "            virtual_hosts:\n"
        "            - name: all\n"
        "              domains: ['*']\n"
        "              routes:\n"
        "              - match: {prefix: /}\n"
        "                direct_response: {status: 200, body: {inline_string: %s}}\n"
        "          http_filters:\n"
        "          - name: envoy.filters.http.router\n"
        "            typed_config: {'@type': "
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n";
    char c80[1024], c81[1024];
    snprintf(c80, sizeof(c80), chain, 80, 80, body80);
    snprintf(c81, sizeof(c81), chain, 81, 81, body81);
    char *out = NULL;
    assert_true(asprintf(&out,
                         "static_resources:\n"
                         "  listeners:\n"
                         "  - name: %s\n"
                         "    stat_prefix: %s\n"
                         "    address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
                         "    filter_chains:\n%s%s",
                         name, stat, c80, c81) > 0);
    return out;
}

typedef struct fixture {
    stats_store_t *stats;
    snapshot_t *old, *cur;
} fixture_t;

static snapshot_t *build(fixture_t *f, char *yaml)
{
    ProtobufCMessage *msg = NULL;
    char err[1024];
    if (config_yaml_load(yaml, strlen(yaml), "test.yaml",
                         &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg, err,
                         sizeof(err)) < 0)
        fail_msg("%s", err);
    free(yaml);
    snapshot_t *snap = NULL;
    if (snapshot_build(msg, &test_snap_opts, f->stats, 1, &snap, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    return snap;
}

/* Snapshots old and cur of the bootstraps given, sharing one stats store as the server's do. */
static void setup(fixture_t *f, char *old_yaml, char *cur_yaml)
{
    f->stats = stats_store_new(1);
    f->old = build(f, old_yaml);
    f->cur = build(f, cur_yaml);
}

static void teardown(fixture_t *f)
{
    snapshot_unref(f->old);
    snapshot_unref(f->cur);
    stats_store_free(f->stats);
}

/* Where a connection accepted on chain i of old's first listener runs. */
static hcm_binding_t on_chain(snapshot_t *snap, size_t i)
{
    const snap_listener_t *l = &snap->listeners[0];
    const snap_chain_t *c = &l->chains[i];
    return (hcm_binding_t){
        .snap = snap, .listener = l, .chain = c, .cfg = c->filters[c->n_filters - 1].config};
}

/* The direct response body of the first route of cfg. */
static const char *body_of(const hcm_config_t *cfg)
{
    return cfg->routes->vhosts[0].routes[0].direct_body;
}

static void test_unchanged_chain_moves_to_the_new_snapshots_config(void **state)
{
    (void)state;
    fixture_t f;
    setup(&f, bootstrap("l", "l", "a", "b"), bootstrap("l", "l", "a", "B"));
    hcm_binding_t from = on_chain(f.old, 0), to;
    assert_int_equal(hcm_binding_find(&from, f.cur, &to), 0);
    assert_ptr_equal(to.snap, f.cur);
    assert_ptr_equal(to.listener, &f.cur->listeners[0]);
    assert_ptr_equal(to.chain, &f.cur->listeners[0].chains[0]);
    assert_ptr_equal(to.cfg, f.cur->listeners[0].chains[0].filters[0].config);
    assert_ptr_not_equal(to.cfg, from.cfg);
    assert_memory_equal(body_of(to.cfg), "a", 1);
    teardown(&f);
}

static void test_changed_chain_has_no_place_in_the_new_snapshot(void **state)
{
    (void)state;
    fixture_t f;
    setup(&f, bootstrap("l", "l", "a", "b"), bootstrap("l", "l", "a", "B"));
    hcm_binding_t from = on_chain(f.old, 1), to;
    assert_int_equal(hcm_binding_find(&from, f.cur, &to), -ENOENT);
    teardown(&f);
}

static void test_chain_hash_follows_the_chain_message_not_the_listener(void **state)
{
    (void)state;
    fixture_t f;
    setup(&f, bootstrap("l", "l", "a", "b"), bootstrap("l", "l", "a", "B"));
    const snap_listener_t *o = &f.old->listeners[0], *n = &f.cur->listeners[0];
    assert_true(o->config_hash != n->config_hash);
    assert_true(o->chains[0].config_hash == n->chains[0].config_hash);
    assert_true(o->chains[1].config_hash != n->chains[1].config_hash);
    assert_true(o->chains[0].config_hash != o->chains[1].config_hash);
    teardown(&f);
}

static void test_removed_listener_leaves_no_place(void **state)
{
    (void)state;
    fixture_t f;
    setup(&f, bootstrap("l", "l", "a", "b"), bootstrap("other", "l", "a", "b"));
    hcm_binding_t from = on_chain(f.old, 0), to;
    assert_int_equal(hcm_binding_find(&from, f.cur, &to), -ENOENT);
    teardown(&f);
}

static void test_listener_counting_elsewhere_is_not_moved_to(void **state)
{
    (void)state;
    fixture_t f;
    /* The chain is the same, but the listener's stats (its stat_prefix) are not. */
    setup(&f, bootstrap("l", "l", "a", "b"), bootstrap("l", "renamed", "a", "b"));
    hcm_binding_t from = on_chain(f.old, 0), to;
    assert_int_equal(hcm_binding_find(&from, f.cur, &to), -ESTALE);
    teardown(&f);
}

static void test_same_snapshot_binds_to_itself(void **state)
{
    (void)state;
    fixture_t f;
    setup(&f, bootstrap("l", "l", "a", "b"), bootstrap("l", "l", "a", "b"));
    hcm_binding_t from = on_chain(f.old, 1), to;
    assert_int_equal(hcm_binding_find(&from, f.old, &to), 0);
    assert_ptr_equal(to.cfg, from.cfg);
    assert_int_equal(hcm_binding_find(&from, f.cur, &to), 0);
    assert_ptr_equal(to.chain, &f.cur->listeners[0].chains[1]);
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unchanged_chain_moves_to_the_new_snapshots_config),
        cmocka_unit_test(test_changed_chain_has_no_place_in_the_new_snapshot),
        cmocka_unit_test(test_chain_hash_follows_the_chain_message_not_the_listener),
        cmocka_unit_test(test_removed_listener_leaves_no_place),
        cmocka_unit_test(test_listener_counting_elsewhere_is_not_moved_to),
        cmocka_unit_test(test_same_snapshot_binds_to_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
