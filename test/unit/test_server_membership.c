/* The membership stats the server's install keeps for each cluster (membership_change,
 * membership_total), across xDS updates that change some clusters' endpoints and share the
 * other clusters with the running snapshot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "proxy/server/listener_manager.h"
#include "proxy/server/server.h"
#include "proxy/upstream/cluster_state.h"
#include "proxy/upstream/lb.h"
#include "xds/config/config.h"
#include "xds/snapshot/resources.h"
#include "test/unit/snap_opts.h"

#define EDS_CLUSTER(name) "name: " name "\ntype: EDS\neds_cluster_config: {eds_config: {ads: {}}}\n"

/* The resources of one update, each a message of its own as the xDS client holds them. */
typedef struct update {
    config_resources_t res;
    ProtobufCMessage *msgs[16];
    size_t n;
} update_t;

typedef struct rig {
    server_t s;
    cluster_states_t *states;
    char err[1024];
} rig_t;

static void add(update_t *u, config_resource_list_t *list, const ProtobufCMessageDescriptor *desc,
                const char *origin, const char *name, const char *yaml)
{
    ProtobufCMessage *m = NULL;
    char err[512];
    if (config_yaml_load(yaml, strlen(yaml), origin, desc, &m, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_true(u->n < sizeof(u->msgs) / sizeof(u->msgs[0]));
    u->msgs[u->n++] = m;
    assert_int_equal(config_resources_add_named(list, m, origin, list->n, name), 0);
    list->v[list->n - 1].version = "1";
}

/* Clusters a, b and c over EDS; a's assignment has ips (comma-separated), b and c one each. */
static void three_clusters(update_t *u, const char *a_ips)
{
    static const char *const names[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), EDS_CLUSTER("%s"), names[i]);
        add(u, &u->res.clusters, &envoy__config__cluster__v3__cluster__descriptor, "cds", names[i],
            yaml);
    }
    for (size_t i = 0; i < 3; i++) {
        char yaml[1024];
        int n = snprintf(yaml, sizeof(yaml), "cluster_name: %s\nendpoints:\n- lb_endpoints:\n",
                         names[i]);
        char ips[256];
        snprintf(ips, sizeof(ips), "%s", i == 0 ? a_ips : i == 1 ? "10.0.1.1" : "10.0.2.1");
        for (char *ip = strtok(ips, ","); ip; ip = strtok(NULL, ","))
            n += snprintf(yaml + n, sizeof(yaml) - (size_t)n,
                          "  - endpoint: {address: {socket_address: {address: %s, "
                          "port_value: 80}}}\n",
                          ip);
        add(u, &u->res.endpoints, &envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
            "eds", names[i], yaml);
    }
}

static void drop(update_t *u)
{
    config_resources_free(&u->res);
    for (size_t i = 0; i < u->n; i++)
        protobuf_c_message_free_unpacked(u->msgs[i], NULL);
    memset(u, 0, sizeof(*u));
}

/* A server with no workers, its first snapshot built from u (dropped) and installed. */
static void rig_init(rig_t *r, update_t *u)
{
    memset(r, 0, sizeof(*r));
    r->s.nworkers = 1;
    r->s.state = SERVER_STARTING;
    r->s.stats = stats_store_new(2);
    r->s.main_slots = stats_slots(r->s.stats, 1);
    assert_int_equal(cluster_states_new(1, &r->states), 0);
    assert_int_equal(listener_manager_new(1, r->s.stats, r->s.main_slots, &r->s.lm), 0);
    r->s.sockets = calloc(1, sizeof(*r->s.sockets));
    assert_non_null(r->s.sockets);
    ProtobufCMessage *b = NULL;
    const char *yaml = "node: {id: sidecar}\n";
    assert_int_equal(config_yaml_load(yaml, strlen(yaml), "bootstrap.yaml",
                                      &envoy__config__bootstrap__v3__bootstrap__descriptor, &b,
                                      r->err, sizeof(r->err)),
                     0);
    config_resources_t res;
    assert_int_equal(config_resources_from_bootstrap(b, &res, r->err, sizeof(r->err)), 0);
    config_resource_list_t *from[] = {&u->res.clusters, &u->res.endpoints};
    config_resource_list_t *to[] = {&res.clusters, &res.endpoints};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < from[k]->n; i++) {
            const config_resource_t *x = &from[k]->v[i];
            assert_int_equal(config_resources_add_named(to[k], x->msg, x->origin, i, x->name), 0);
            to[k]->v[i].version = x->version;
        }
    }
    snap_build_opts_t opts = test_snap_opts;
    opts.cluster_runtime = &cluster_runtime;
    opts.cluster_states = r->states;
    snapshot_t *s = NULL;
    if (snapshot_build_resources(&res, b, &opts, r->s.stats, 1, &s, r->err, sizeof(r->err)) != 0)
        fail_msg("%s", r->err);
    config_resources_free(&res);
    drop(u);
    server_install_snapshot(&r->s, s);
}

/* Builds the next snapshot from the running one and u (dropped), as the xDS client does, and
 * installs it. */
static void rig_update(rig_t *r, update_t *u)
{
    snapshot_t *s = NULL;
    if (snapshot_build_dynamic(r->s.snap, &u->res, NULL, r->s.stats, &s, r->err, sizeof(r->err)) !=
        0)
        fail_msg("%s", r->err);
    drop(u);
    server_install_snapshot(&r->s, s);
}

static void rig_free(rig_t *r)
{
    worker_sockets_free(r->s.sockets[0]);
    free(r->s.sockets);
    listener_manager_free(r->s.lm);
    snapshot_unref(r->s.snap);
    cluster_states_unref(r->states);
    stats_store_free(r->s.stats);
}

static int64_t stat_of(const rig_t *r, const char *cluster, size_t offset)
{
    const snap_cluster_t *c = snapshot_find_cluster(r->s.snap, cluster);
    assert_non_null(c);
    return stats_value(r->s.stats, *(const stat_id_t *)((const char *)&c->st + offset));
}

static int64_t changes(const rig_t *r, const char *cluster)
{
    return stat_of(r, cluster, offsetof(cluster_stat_ids_t, membership_change));
}

static int64_t total(const rig_t *r, const char *cluster)
{
    return stat_of(r, cluster, offsetof(cluster_stat_ids_t, membership_total));
}

static void test_an_endpoint_update_counts_only_the_cluster_it_changed(void **state)
{
    (void)state;
    rig_t r;
    update_t u = {0};
    three_clusters(&u, "10.0.0.1");
    rig_init(&r, &u);
    for (const char *const *n = (const char *const[]){"a", "b", "c", NULL}; *n; n++) {
        assert_int_equal(changes(&r, *n), 1); /* from none to some */
        assert_int_equal(total(&r, *n), 1);
    }
    three_clusters(&u, "10.0.0.1,10.0.0.2"); /* a gains an endpoint */
    snapshot_t *before = snapshot_ref(r.s.snap);
    rig_update(&r, &u);
    assert_false(snapshot_cluster_shared(snapshot_find_cluster(before, "a"),
                                         snapshot_find_cluster(r.s.snap, "a")));
    assert_true(snapshot_cluster_shared(snapshot_find_cluster(before, "b"),
                                        snapshot_find_cluster(r.s.snap, "b")));
    snapshot_unref(before);
    assert_int_equal(changes(&r, "a"), 2);
    assert_int_equal(total(&r, "a"), 2);
    assert_int_equal(changes(&r, "b"), 1);
    assert_int_equal(total(&r, "b"), 1);
    assert_int_equal(changes(&r, "c"), 1);
    three_clusters(&u, "10.0.0.1,10.0.0.2"); /* the same again: every cluster shared */
    rig_update(&r, &u);
    assert_int_equal(changes(&r, "a"), 2);
    assert_int_equal(total(&r, "a"), 2);
    three_clusters(&u, "10.0.0.3"); /* a back to one endpoint, another one */
    rig_update(&r, &u);
    assert_int_equal(changes(&r, "a"), 3);
    assert_int_equal(total(&r, "a"), 1);
    assert_int_equal(changes(&r, "b") + changes(&r, "c"), 2);
    assert_int_equal(total(&r, "b") + total(&r, "c"), 2);
    rig_free(&r);
}

#define MANY 130

/* Appends the held resource k (borrowed) to list, as the xDS client hands its resources. */
static void add_held(config_resource_list_t *list, const char *origin, snap_kept_t *k)
{
    assert_int_equal(config_resources_add_named(list, k->msg, origin, list->n, k->name), 0);
    list->v[list->n - 1].version = "1";
    list->v[list->n - 1].kept = k;
}

/* A held message of desc from yaml, named name (new). */
static snap_kept_t *held(const ProtobufCMessageDescriptor *desc, const char *name, const char *yaml)
{
    ProtobufCMessage *m = NULL;
    char err[512];
    if (config_yaml_load(yaml, strlen(yaml), "held", desc, &m, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    snap_kept_t *k = snap_kept_new(m, name);
    assert_non_null(k);
    return k;
}

/* MANY clusters c000... with one endpoint each, held; as[i] the assignment of c<i>. */
static void many(snap_kept_t **cl, snap_kept_t **as)
{
    for (size_t i = 0; i < MANY; i++) {
        char name[16], yaml[256];
        snprintf(name, sizeof(name), "c%03zu", i);
        snprintf(yaml, sizeof(yaml), EDS_CLUSTER("%s"), name);
        cl[i] = held(&envoy__config__cluster__v3__cluster__descriptor, name, yaml);
        snprintf(yaml, sizeof(yaml),
                 "cluster_name: %s\nendpoints:\n- lb_endpoints:\n  - endpoint: {address: "
                 "{socket_address: {address: 10.0.0.%zu, port_value: 80}}}\n",
                 name, i);
        as[i] = held(&envoy__config__endpoint__v3__cluster_load_assignment__descriptor, name, yaml);
    }
}

static void many_update(rig_t *r, snap_kept_t **cl, snap_kept_t **as)
{
    config_resources_t res = {0};
    for (size_t i = 0; i < MANY; i++)
        add_held(&res.clusters, "cds", cl[i]);
    for (size_t i = 0; i < MANY; i++)
        add_held(&res.endpoints, "eds", as[i]);
    snapshot_t *s = NULL;
    if (snapshot_build_dynamic(r->s.snap, &res, NULL, r->s.stats, &s, r->err, sizeof(r->err)) != 0)
        fail_msg("%s", r->err);
    config_resources_free(&res);
    server_install_snapshot(&r->s, s);
}

/* Among 130 clusters held as the xDS client holds them, an endpoint update of one counts that
 * one, the blocks of clusters it left alone being skipped whole: right after each change, in
 * whichever block it falls. */
static void test_membership_after_an_endpoint_change_among_blocks_of_clusters(void **state)
{
    (void)state;
    rig_t r;
    update_t u = {0};
    three_clusters(&u, "10.0.0.1");
    rig_init(&r, &u);
    snap_kept_t *cl[MANY], *as[MANY];
    many(cl, as);
    many_update(&r, cl, as); /* a, b and c leave; 130 come */
    assert_int_equal(changes(&r, "c100"), 1);
    const char *moved[] = {"c100", "c005"}; /* in the second block, then the first */
    for (size_t k = 0; k < 2; k++) {
        size_t i = (size_t)atoi(moved[k] + 1);
        char yaml[256];
        snprintf(yaml, sizeof(yaml),
                 "cluster_name: %s\nendpoints:\n- lb_endpoints:\n  - endpoint: {address: "
                 "{socket_address: {address: 10.0.9.%zu, port_value: 80}}}\n  - endpoint: "
                 "{address: {socket_address: {address: 10.0.8.1, port_value: 80}}}\n",
                 moved[k], i);
        snap_kept_unref(as[i]);
        as[i] =
            held(&envoy__config__endpoint__v3__cluster_load_assignment__descriptor, moved[k], yaml);
        snapshot_t *before = snapshot_ref(r.s.snap);
        many_update(&r, cl, as);
        assert_int_equal(snapshot_clusters_shared_from(before, r.s.snap, 128), 2);
        assert_int_equal(snapshot_clusters_shared_from(before, r.s.snap, i < 64 ? 64 : 0), 64);
        assert_int_equal(snapshot_clusters_shared_from(before, r.s.snap, i < 64 ? 0 : 64), 0);
        snapshot_unref(before);
        assert_int_equal(changes(&r, moved[k]), 2);
        assert_int_equal(total(&r, moved[k]), 2);
    }
    for (size_t i = 0; i < MANY; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%03zu", i);
        bool moved_one = i == 100 || i == 5;
        assert_int_equal(changes(&r, name), moved_one ? 2 : 1);
        assert_int_equal(total(&r, name), moved_one ? 2 : 1);
        snap_kept_unref(cl[i]);
        snap_kept_unref(as[i]);
    }
    rig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_endpoint_update_counts_only_the_cluster_it_changed),
        cmocka_unit_test(test_membership_after_an_endpoint_change_among_blocks_of_clusters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
