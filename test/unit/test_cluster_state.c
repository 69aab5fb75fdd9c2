/* Cluster runtime state across snapshots: circuit-breaker counts, the round-robin position and
 * per-endpoint counts follow a cluster's name and an endpoint's address from one snapshot to the
 * next built with the same table, and what no snapshot holds any more is freed and reused. */
#include <arpa/inet.h>
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
#include "proxy/upstream/cluster_state.h"
#include "proxy/upstream/lb.h"
#include "xds/config/config.h"
#include "xds/snapshot/snapshot.h"
#include "test/unit/snap_opts.h"

#define ENDPOINT(ip)                                                                               \
    "        - endpoint: {address: {socket_address: {address: " ip ", port_value: 80}}}\n"

/* A cluster "a" (POLICY) with the given lb_endpoints, and a cluster "b". */
#define CLUSTERS(policy, endpoints)                                                                \
    "static_resources:\n"                                                                          \
    "  clusters:\n"                                                                                \
    "  - name: a\n"                                                                                \
    "    lb_policy: " policy "\n"                                                                  \
    "    load_assignment:\n"                                                                       \
    "      endpoints:\n"                                                                           \
    "      - lb_endpoints:\n" endpoints "  - name: b\n"                                            \
    "    load_assignment:\n"                                                                       \
    "      endpoints:\n"                                                                           \
    "      - lb_endpoints:\n" ENDPOINT("198.18.0.9")

#define NWORKERS 2

static stats_store_t *stats;

static int setup(void **state)
{
    (void)state;
    stats = stats_store_new(NWORKERS);
    return stats ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    stats_store_free(stats);
    return 0;
}

/* Builds yaml with the table `states` (NULL: a new one) for `nworkers` workers. */
static int build_n(const char *yaml, cluster_states_t *states, unsigned nworkers, snapshot_t **out)
{
    ProtobufCMessage *msg = NULL;
    char err[512];
    int rc = config_yaml_load(yaml, strlen(yaml), "test.yaml",
                              &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg, err,
                              sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);
    cluster_states_t *own = NULL;
    if (states == NULL && cluster_states_new(nworkers, &own) < 0)
        fail_msg("out of memory");
    snap_build_opts_t opts = test_snap_opts;
    opts.cluster_runtime = &cluster_runtime;
    opts.cluster_states = states ? states : own;
    rc = snapshot_build(msg, &opts, stats, nworkers, out, err, sizeof(err));
    if (own)
        cluster_states_unref(own); /* the snapshot holds its own reference */
    return rc;
}

static snapshot_t *build(const char *yaml, cluster_states_t *states)
{
    snapshot_t *snap = NULL;
    assert_int_equal(build_n(yaml, states, NWORKERS, &snap), 0);
    return snap;
}

static const snap_cluster_t *cluster_a(const snapshot_t *snap)
{
    const snap_cluster_t *c = snapshot_find_cluster(snap, "a");
    assert_non_null(c);
    return c;
}

/* The index in c of the endpoint with label `label`. */
static size_t endpoint_index(const snap_cluster_t *c, const char *label)
{
    for (size_t i = 0; i < c->n_endpoints; i++)
        if (strcmp(c->endpoints[i].label, label) == 0)
            return i;
    fail_msg("no endpoint %s", label);
    return 0;
}

static int pick(const snap_cluster_t *c, unsigned worker)
{
    struct sockaddr_storage out;
    int idx = -1;
    assert_int_equal(cluster_pick(c, worker, NULL, &out, &idx), 0);
    return idx;
}

static void test_rebuild_keeps_circuit_breaker_counts(void **state)
{
    (void)state;
    snapshot_t *one = build(CLUSTERS("ROUND_ROBIN", ENDPOINT("198.18.0.1")), NULL);
    atomic_fetch_add(&cluster_a(one)->shared->cx_active, 2);
    atomic_fetch_add(&cluster_a(one)->shared->rq_active, 3);
    snapshot_t *two = NULL;
    char err[256];
    assert_int_equal(snapshot_rebuild(one, NULL, stats, &two, err, sizeof(err)), 0);
    assert_ptr_equal(two->cluster_states, one->cluster_states);
    assert_int_equal(atomic_load(&cluster_a(two)->shared->cx_active), 2);
    assert_int_equal(atomic_load(&cluster_a(two)->shared->rq_active), 3);
    /* A connection of the old snapshot closing frees its place in the new one's count. */
    atomic_fetch_sub(&cluster_a(one)->shared->cx_active, 1);
    assert_int_equal(atomic_load(&cluster_a(two)->shared->cx_active), 1);
    assert_ptr_not_equal(snapshot_find_cluster(two, "b")->shared, cluster_a(two)->shared);
    snapshot_unref(one);
    snapshot_unref(two);
}

static void test_builds_without_a_table_share_nothing(void **state)
{
    (void)state;
    snapshot_t *one = build(CLUSTERS("ROUND_ROBIN", ENDPOINT("198.18.0.1")), NULL);
    snapshot_t *two = build(CLUSTERS("ROUND_ROBIN", ENDPOINT("198.18.0.1")), NULL);
    assert_ptr_not_equal(one->cluster_states, two->cluster_states);
    assert_ptr_not_equal(cluster_a(one)->shared, cluster_a(two)->shared);
    snapshot_unref(one);
    snapshot_unref(two);
}

static void test_round_robin_position_survives_a_new_snapshot(void **state)
{
    (void)state;
    const char *yaml = CLUSTERS("ROUND_ROBIN", ENDPOINT("198.18.0.1") ENDPOINT("198.18.0.2"));
    snapshot_t *one = build(yaml, NULL);
    int first = pick(cluster_a(one), 0);
    cluster_lb_release(cluster_a(one), 0, first);
    snapshot_t *two = build(yaml, one->cluster_states);
    snapshot_unref(one);
    assert_int_equal(pick(cluster_a(two), 0), 1 - first); /* not back to the first endpoint */
    snapshot_unref(two);
}

static void test_endpoint_that_stays_keeps_its_count(void **state)
{
    (void)state;
    snapshot_t *one =
        build(CLUSTERS("LEAST_REQUEST", ENDPOINT("198.18.0.1") ENDPOINT("198.18.0.2")), NULL);
    const snap_cluster_t *a1 = cluster_a(one);
    int idx = pick(a1, 1);
    char picked[64];
    snprintf(picked, sizeof(picked), "%s", a1->endpoints[idx].label);
    /* The same addresses in another order, and one more. */
    snapshot_t *two = build(CLUSTERS("LEAST_REQUEST", ENDPOINT("198.18.0.3") ENDPOINT("198.18.0.2")
                                                          ENDPOINT("198.18.0.1")),
                            one->cluster_states);
    const snap_cluster_t *a2 = cluster_a(two);
    assert_int_equal(cluster_lb_active(a2, 1, endpoint_index(a2, picked)), 1);
    assert_int_equal(cluster_lb_active(a2, 0, endpoint_index(a2, picked)), 0);
    assert_int_equal(cluster_lb_active(a2, 1, endpoint_index(a2, "198.18.0.3:80")), 0);
    /* Released under the old snapshot: counted out of the new one too. */
    cluster_lb_release(a1, 1, idx);
    assert_int_equal(cluster_lb_active(a2, 1, endpoint_index(a2, picked)), 0);
    snapshot_unref(one);
    snapshot_unref(two);
}

static void test_least_request_avoids_an_endpoint_busy_since_the_last_snapshot(void **state)
{
    (void)state;
    const char *yaml = CLUSTERS("LEAST_REQUEST", ENDPOINT("198.18.0.1") ENDPOINT("198.18.0.2"));
    snapshot_t *one = build(yaml, NULL);
    const snap_cluster_t *a1 = cluster_a(one);
    /* Load 198.18.0.1 with many connections of the old snapshot. */
    int busy = endpoint_index(a1, "198.18.0.1:80");
    for (int i = 0, held = 0; held < 50; i++) {
        int idx = pick(a1, 0);
        if (idx == busy)
            held++;
        else
            cluster_lb_release(a1, 0, idx);
    }
    snapshot_t *two = build(yaml, one->cluster_states);
    const snap_cluster_t *a2 = cluster_a(two);
    size_t busy2 = endpoint_index(a2, "198.18.0.1:80");
    int to_busy = 0;
    for (int i = 0; i < 100; i++) {
        int idx = pick(a2, 0);
        to_busy += (size_t)idx == busy2;
        cluster_lb_release(a2, 0, idx);
    }
    /* Two choices: the busy one wins only when both draws are it, about one time in four. */
    assert_true(to_busy < 50);
    snapshot_unref(one);
    snapshot_unref(two);
}

static void test_build_refuses_a_table_for_other_workers(void **state)
{
    (void)state;
    snapshot_t *one = build(CLUSTERS("ROUND_ROBIN", ENDPOINT("198.18.0.1")), NULL);
    snapshot_t *two = NULL;
    assert_int_equal(build_n(CLUSTERS("ROUND_ROBIN", ENDPOINT("198.18.0.1")), one->cluster_states,
                             NWORKERS + 1, &two),
                     -EINVAL);
    assert_null(two);
    snapshot_unref(one);
}

static snap_addr_t addr(const char *ip)
{
    snap_addr_t a;
    memset(&a, 0, sizeof(a));
    a.in4.sin_family = AF_INET;
    a.in4.sin_port = htons(80);
    inet_pton(AF_INET, ip, &a.in4.sin_addr);
    return a;
}

static void test_slot_of_a_gone_endpoint_is_reused(void **state)
{
    (void)state;
    cluster_states_t *t = NULL;
    assert_int_equal(cluster_states_new(NWORKERS, &t), 0);
    cluster_state_t *s = NULL;
    assert_int_equal(cluster_state_get(t, "a", &s), 0);
    snap_addr_t x = addr("198.18.0.1"), y = addr("198.18.0.2"), z = addr("198.18.0.3");
    cluster_ep_state_t *ex, *ey, *ey2, *ez;
    assert_int_equal(cluster_state_endpoint(s, &x, &ex), 0);
    assert_int_equal(cluster_state_endpoint(s, &y, &ey), 0);
    assert_int_equal(cluster_state_endpoint(s, &y, &ey2), 0);
    assert_ptr_equal(ey, ey2);
    assert_int_not_equal(ex->slot, ey->slot);
    uint32_t x_slot = ex->slot;
    cluster_ep_unref(ex);
    cluster_states_sweep(t);
    assert_int_equal(cluster_state_endpoint(s, &z, &ez), 0);
    assert_int_equal(ez->slot, x_slot);
    cluster_ep_unref(ey);
    cluster_ep_unref(ey2);
    cluster_ep_unref(ez);
    cluster_state_unref(s);
    cluster_states_unref(t);
}

static void test_state_of_a_removed_cluster_is_fresh_when_it_returns(void **state)
{
    (void)state;
    cluster_states_t *t = NULL;
    assert_int_equal(cluster_states_new(NWORKERS, &t), 0);
    cluster_state_t *s = NULL, *again = NULL;
    assert_int_equal(cluster_state_get(t, "gone", &s), 0);
    atomic_store(&s->shared.cx_active, 0);
    s->workers[0].rr_next = 7;
    cluster_state_unref(s);
    cluster_states_sweep(t); /* no snapshot holds it: freed */
    assert_int_equal(cluster_state_get(t, "gone", &again), 0);
    assert_int_equal(again->workers[0].rr_next, 0);
    cluster_state_unref(again);
    cluster_states_unref(t);
}

/* A sweep with nothing let go returns at once; what is let go after it is still freed by the
 * next one: an endpoint entry (its slot reused) and a whole state (fresh when asked again). */
static void test_what_is_let_go_after_an_idle_sweep_is_freed_by_the_next(void **state)
{
    (void)state;
    cluster_states_t *t = NULL;
    assert_int_equal(cluster_states_new(NWORKERS, &t), 0);
    cluster_state_t *kept = NULL, *gone = NULL;
    assert_int_equal(cluster_state_get(t, "kept", &kept), 0);
    assert_int_equal(cluster_state_get(t, "gone", &gone), 0);
    snap_addr_t x = addr("198.18.0.1"), y = addr("198.18.0.2"), z = addr("198.18.0.3");
    cluster_ep_state_t *ex, *ey, *ez;
    assert_int_equal(cluster_state_endpoint(kept, &x, &ex), 0);
    assert_int_equal(cluster_state_endpoint(kept, &y, &ey), 0);
    cluster_states_sweep(t); /* nothing let go: both endpoints stay */
    cluster_states_sweep(t);
    assert_int_equal(kept->n_eps, 2);
    uint32_t x_slot = ex->slot;
    cluster_ep_unref(ex);
    gone->workers[0].rr_next = 7;
    cluster_state_unref(gone);
    cluster_states_sweep(t);
    assert_int_equal(kept->n_eps, 1);
    assert_int_equal(cluster_state_endpoint(kept, &z, &ez), 0);
    assert_int_equal(ez->slot, x_slot);
    assert_int_equal(cluster_state_get(t, "gone", &gone), 0);
    assert_int_equal(gone->workers[0].rr_next, 0);
    cluster_ep_unref(ey);
    cluster_ep_unref(ez);
    cluster_state_unref(gone);
    cluster_state_unref(kept);
    cluster_states_unref(t);
}

static void test_states_are_found_by_name_among_many_and_after_a_sweep(void **state)
{
    (void)state;
    enum { N = 300 };
    cluster_states_t *t = NULL;
    assert_int_equal(cluster_states_new(NWORKERS, &t), 0);
    cluster_state_t *got[N];
    char name[32];
    for (int i = 0; i < N; i++) { /* the table grows several times */
        snprintf(name, sizeof(name), "c%d", i);
        assert_int_equal(cluster_state_get(t, name, &got[i]), 0);
    }
    for (int i = 0; i < N; i += 2) /* every other one goes */
        cluster_state_unref(got[i]);
    cluster_states_sweep(t);
    for (int i = 1; i < N; i += 2) {
        cluster_state_t *again = NULL;
        snprintf(name, sizeof(name), "c%d", i);
        assert_int_equal(cluster_state_get(t, name, &again), 0);
        assert_ptr_equal(again, got[i]);
        assert_string_equal(again->name, name);
        cluster_state_unref(again);
        cluster_state_unref(got[i]);
    }
    cluster_states_unref(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rebuild_keeps_circuit_breaker_counts),
        cmocka_unit_test(test_builds_without_a_table_share_nothing),
        cmocka_unit_test(test_round_robin_position_survives_a_new_snapshot),
        cmocka_unit_test(test_endpoint_that_stays_keeps_its_count),
        cmocka_unit_test(test_least_request_avoids_an_endpoint_busy_since_the_last_snapshot),
        cmocka_unit_test(test_build_refuses_a_table_for_other_workers),
        cmocka_unit_test(test_slot_of_a_gone_endpoint_is_reused),
        cmocka_unit_test(test_state_of_a_removed_cluster_is_fresh_when_it_returns),
        cmocka_unit_test(test_states_are_found_by_name_among_many_and_after_a_sweep),
        cmocka_unit_test(test_what_is_let_go_after_an_idle_sweep_is_freed_by_the_next),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
