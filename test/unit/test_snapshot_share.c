/* A snapshot built from the last one shares what did not change: a cluster whose Cluster, load
 * assignment, secrets, certificate files and DNS answers are the same is the last snapshot's
 * (the same endpoints, TLS contexts, stat ids and runtime link), and a change to any of them
 * builds that cluster again; resources are taken as xDS hands them, new messages each time. A
 * TLS context built again from the same bytes keeps its engine config over any number of builds,
 * so the data plane's pools find the cluster connection-compatible (pool_cluster_compatible);
 * changed certificate bytes or connection settings make it incompatible.
 * Certificates are the fixtures of test/data/certs. */
#include <arpa/inet.h>
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
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "proxy/upstream/cluster_state.h"
#include "proxy/upstream/h1_pool.h"
#include "proxy/upstream/lb.h"
#include "xds/config/config.h"
#include "xds/snapshot/resources.h"
#include "xds/snapshot/snapshot.h"
#include "xds/snapshot/snapshot_build.h"
#include "test/unit/snap_opts.h"

#define CERTS "test/data/certs/"

#define CLUSTER_DESC    (&envoy__config__cluster__v3__cluster__descriptor)
#define LISTENER_DESC   (&envoy__config__listener__v3__listener__descriptor)
#define ASSIGNMENT_DESC (&envoy__config__endpoint__v3__cluster_load_assignment__descriptor)
#define SECRET_DESC     (&envoy__extensions__transport_sockets__tls__v3__secret__descriptor)

#define EDS_CLUSTER(name) "name: " name "\ntype: EDS\neds_cluster_config: {eds_config: {ads: {}}}\n"

#define ASSIGNMENT(name, ip)                                                                       \
    "cluster_name: " name "\n"                                                                     \
    "endpoints:\n"                                                                                 \
    "- lb_endpoints:\n"                                                                            \
    "  - endpoint: {address: {socket_address: {address: " ip ", port_value: 9080}}}\n"

#define SDS_CLUSTER(name)                                                                          \
    "name: " name "\n"                                                                             \
    "transport_socket:\n"                                                                          \
    "  name: envoy.transport_sockets.tls\n"                                                        \
    "  typed_config:\n"                                                                            \
    "    '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."                  \
    "UpstreamTlsContext\n"                                                                         \
    "    common_tls_context:\n"                                                                    \
    "      tls_certificate_sds_secret_configs: [{name: default, sds_config: {ads: {}}}]\n"         \
    "      validation_context: {trusted_ca: {filename: " CERTS "root-a.pem}}\n"

#define CERT_SECRET(cert, key)                                                                     \
    "name: default\n"                                                                              \
    "tls_certificate:\n"                                                                           \
    "  certificate_chain: {filename: " CERTS cert "}\n"                                            \
    "  private_key: {filename: " CERTS key "}\n"

#define NWORKERS 2
#define MAX_MSGS 64

/* The resources of one xDS update, each a message of its own as the xDS client holds them. */
typedef struct update {
    config_resources_t res;
    ProtobufCMessage *msgs[16];
    size_t n;
} update_t;

typedef struct fixture {
    stats_store_t *stats;
    cluster_states_t *states;
    snapshot_t *snaps[8]; /* in the order built */
    size_t n_snaps;
    char err[1024];
} fixture_t;

static void begin(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    f->stats = stats_store_new(NWORKERS);
    assert_int_equal(cluster_states_new(NWORKERS, &f->states), 0);
}

static void add(update_t *u, config_resource_list_t *list, const char *origin,
                const ProtobufCMessageDescriptor *desc, const char *name, const char *yaml)
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

static void cluster(update_t *u, const char *name, const char *yaml)
{
    add(u, &u->res.clusters, "cds", CLUSTER_DESC, name, yaml);
}

static void assignment(update_t *u, const char *name, const char *yaml)
{
    add(u, &u->res.endpoints, "eds", ASSIGNMENT_DESC, name, yaml);
}

static void secret(update_t *u, const char *yaml)
{
    add(u, &u->res.secrets, "sds", SECRET_DESC, "default", yaml);
}

/* Frees u's lists and messages: the snapshots built from them keep copies. */
static void drop(update_t *u)
{
    config_resources_free(&u->res);
    for (size_t i = 0; i < u->n; i++)
        protobuf_c_message_free_unpacked(u->msgs[i], NULL);
    memset(u, 0, sizeof(*u));
}

static snapshot_t *last(const fixture_t *f)
{
    return f->snaps[f->n_snaps - 1];
}

static snapshot_t *push(fixture_t *f, snapshot_t *s)
{
    assert_true(f->n_snaps < sizeof(f->snaps) / sizeof(f->snaps[0]));
    f->snaps[f->n_snaps++] = s;
    return s;
}

/* The first snapshot: a bootstrap (yaml) with the table of cluster states, and u (dropped). */
static snapshot_t *first(fixture_t *f, const char *yaml, update_t *u,
                         const snap_resolver_t *resolver)
{
    ProtobufCMessage *b = NULL;
    if (config_yaml_load(yaml, strlen(yaml), "bootstrap.yaml",
                         &envoy__config__bootstrap__v3__bootstrap__descriptor, &b, f->err,
                         sizeof(f->err)) < 0)
        fail_msg("%s", f->err);
    config_resources_t res;
    assert_int_equal(config_resources_from_bootstrap(b, &res, f->err, sizeof(f->err)), 0);
    config_resource_list_t *from[] = {&u->res.clusters, &u->res.endpoints, &u->res.secrets};
    config_resource_list_t *to[] = {&res.clusters, &res.endpoints, &res.secrets};
    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 0; i < from[k]->n; i++) {
            const config_resource_t *r = &from[k]->v[i];
            assert_int_equal(config_resources_add_named(to[k], r->msg, r->origin, i, r->name), 0);
            to[k]->v[i].version = r->version;
        }
    }
    snap_build_opts_t opts = test_snap_opts;
    opts.resolver = resolver;
    opts.cluster_runtime = &cluster_runtime;
    opts.cluster_states = f->states;
    snapshot_t *s = NULL;
    if (snapshot_build_resources(&res, b, &opts, f->stats, NWORKERS, &s, f->err, sizeof(f->err)) !=
        0)
        fail_msg("%s", f->err);
    config_resources_free(&res);
    drop(u);
    return push(f, s);
}

/* The next snapshot from the last one and u (dropped), as the xDS client builds it. */
static snapshot_t *next(fixture_t *f, update_t *u, const snap_resolver_t *resolver)
{
    snapshot_t *s = NULL;
    if (snapshot_build_dynamic(last(f), &u->res, resolver, f->stats, &s, f->err, sizeof(f->err)) !=
        0)
        fail_msg("%s", f->err);
    drop(u);
    return push(f, s);
}

/* The next snapshot from the last one's kept resources, as certificate rotation and DNS build
 * it. */
static snapshot_t *rebuild(fixture_t *f, const snap_resolver_t *resolver)
{
    snapshot_t *s = NULL;
    if (snapshot_rebuild(last(f), resolver, f->stats, &s, f->err, sizeof(f->err)) != 0)
        fail_msg("%s", f->err);
    return push(f, s);
}

static void release(fixture_t *f)
{
    for (size_t i = f->n_snaps; i-- > 0;)
        snapshot_unref(f->snaps[i]);
    cluster_states_unref(f->states);
    stats_store_free(f->stats);
}

static const snap_cluster_t *find(const snapshot_t *s, const char *name)
{
    const snap_cluster_t *c = snapshot_find_cluster(s, name);
    assert_non_null(c);
    return c;
}

static const char *const ads_bootstrap = "node: {id: sidecar}\n";

/* reviews and ratings, EDS, one endpoint each. */
static void two_eds_clusters(update_t *u, const char *ratings_ip)
{
    char cla[512];
    cluster(u, "reviews", EDS_CLUSTER("reviews"));
    cluster(u, "ratings", EDS_CLUSTER("ratings"));
    assignment(u, "reviews", ASSIGNMENT("reviews", "10.0.0.1"));
    snprintf(cla, sizeof(cla), ASSIGNMENT("ratings", "%s"), ratings_ip);
    assignment(u, "ratings", cla);
}

static void test_an_endpoint_push_builds_only_the_cluster_whose_assignment_changed(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    two_eds_clusters(&u, "10.0.0.2");
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    two_eds_clusters(&u, "10.0.0.3"); /* new messages; only ratings' assignment differs */
    snapshot_t *two = next(&f, &u, NULL);

    const snap_cluster_t *was = find(one, "reviews"), *now = find(two, "reviews");
    assert_ptr_not_equal(now, was); /* each snapshot has its own struct: routes point into it */
    assert_ptr_equal(now->endpoints, was->endpoints);
    assert_ptr_equal(now->name, was->name);
    assert_ptr_equal(now->lb, was->lb);                       /* linked once */
    assert_memory_equal(&now->st, &was->st, sizeof(now->st)); /* its stats, not defined again */
    assert_ptr_equal(now->share, was->share);

    was = find(one, "ratings");
    now = find(two, "ratings");
    assert_ptr_not_equal(now->share, was->share);
    assert_ptr_not_equal(now->endpoints, was->endpoints);
    assert_string_equal(was->endpoints[0].label, "10.0.0.2:9080");
    assert_string_equal(now->endpoints[0].label, "10.0.0.3:9080");
    assert_int_equal(now->st.upstream_rq_total, was->st.upstream_rq_total); /* same names */
    assert_ptr_equal(now->shared, was->shared); /* one runtime state by name */
    release(&f);
}

/* An update that changes one assignment: the others' clusters are shared by the plain path
 * (their Cluster and assignment holders compared in place), a cluster with a TLS context by the
 * full comparison; the references still name every assignment. */
static void test_an_eds_update_shares_the_other_clusters_by_their_holders(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    two_eds_clusters(&u, "10.0.0.2");
    cluster(&u, "app", SDS_CLUSTER("app"));
    secret(&u, CERT_SECRET("client.pem", "client.key"));
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    const snap_cluster_t *reviews = find(one, "reviews");
    assert_non_null(reviews->plain_src);
    assert_non_null(reviews->plain_eds);
    assert_null(find(one, "app")->plain_src); /* takes a secret, reads files: not plain */

    two_eds_clusters(&u, "10.0.0.3");
    cluster(&u, "app", SDS_CLUSTER("app"));
    secret(&u, CERT_SECRET("client.pem", "client.key"));
    snapshot_t *two = next(&f, &u, NULL);
    assert_true(snapshot_cluster_shared(find(two, "reviews"), reviews));
    assert_ptr_equal(find(two, "reviews")->lb, reviews->lb);
    assert_int_equal(find(two, "reviews")->name_hash, snap_name_hash("reviews"));
    assert_true(snapshot_cluster_shared(find(two, "app"), find(one, "app")));
    const snap_cluster_t *ratings = find(two, "ratings");
    assert_false(snapshot_cluster_shared(ratings, find(one, "ratings")));
    assert_string_equal(ratings->endpoints[0].label, "10.0.0.3:9080");
    assert_non_null(ratings->plain_eds);
    assert_ptr_not_equal(ratings->plain_eds, find(one, "ratings")->plain_eds);
    snap_refs_t refs;
    assert_int_equal(snapshot_references(two, &refs), 0);
    assert_int_equal(refs.endpoints.n, 2);
    assert_string_equal(refs.endpoints.v[0].name, "ratings");
    assert_string_equal(refs.endpoints.v[1].name, "reviews");
    assert_int_equal(refs.secrets.n, 1);
    snapshot_refs_free(&refs);
    release(&f);
}

/* Clusters listed in another order are not at their old places: found by name, still shared. */
static void test_clusters_that_change_places_are_still_shared(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    two_eds_clusters(&u, "10.0.0.2");
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    cluster(&u, "ratings", EDS_CLUSTER("ratings"));
    cluster(&u, "reviews", EDS_CLUSTER("reviews"));
    assignment(&u, "reviews", ASSIGNMENT("reviews", "10.0.0.1"));
    assignment(&u, "ratings", ASSIGNMENT("ratings", "10.0.0.2"));
    snapshot_t *two = next(&f, &u, NULL);
    assert_string_equal(two->clusters[0].name, "ratings");
    assert_string_equal(one->clusters[0].name, "reviews");
    assert_true(snapshot_cluster_shared(find(two, "reviews"), find(one, "reviews")));
    assert_true(snapshot_cluster_shared(find(two, "ratings"), find(one, "ratings")));
    release(&f);
}

/* The copies a snapshot keeps are found by name by the next build, through an index copied
 * from the snapshot before when only some resources changed: a third build given the same
 * resources again (new messages) shares every copy and cluster of the second. */
static void test_copies_are_found_by_name_after_an_update_that_changed_some(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    two_eds_clusters(&u, "10.0.0.2");
    first(&f, ads_bootstrap, &u, NULL);
    two_eds_clusters(&u, "10.0.0.3");
    snapshot_t *two = next(&f, &u, NULL);
    two_eds_clusters(&u, "10.0.0.3");
    snapshot_t *three = next(&f, &u, NULL);
    for (const char *const *n = (const char *const[]){"reviews", "ratings", NULL}; *n; n++) {
        assert_true(snapshot_cluster_shared(find(three, *n), find(two, *n)));
        assert_ptr_equal(find(three, *n)->plain_eds, find(two, *n)->plain_eds);
        assert_ptr_equal(find(three, *n)->plain_src, find(two, *n)->plain_src);
    }
    release(&f);
}

/* eds_own_names holds while every EDS cluster takes its own name's assignment, through shared
 * clusters too, and falls when one takes another's. */
static void test_a_config_says_whether_its_eds_clusters_take_their_own_names(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    two_eds_clusters(&u, "10.0.0.2");
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    assert_true(one->eds_own_names);
    assert_ptr_equal(snapshot_eds_cluster(one, "ratings"), find(one, "ratings"));
    two_eds_clusters(&u, "10.0.0.3");
    assert_true(next(&f, &u, NULL)->eds_own_names);
    two_eds_clusters(&u, "10.0.0.3");
    cluster(&u, "alias",
            "name: alias\ntype: EDS\n"
            "eds_cluster_config: {eds_config: {ads: {}}, service_name: ratings}\n");
    snapshot_t *three = next(&f, &u, NULL);
    assert_false(three->eds_own_names);
    assert_null(snapshot_eds_cluster(three, "alias"));
    release(&f);
}

/* The next snapshot takes a reference to the running one's Bootstrap, not a copy, and keeps it
 * after that one is gone (its /config_dump still reads it). */
static void test_the_next_snapshot_shares_the_bootstrap_and_outlives_the_first(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    two_eds_clusters(&u, "10.0.0.2");
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    two_eds_clusters(&u, "10.0.0.3");
    snapshot_t *two = next(&f, &u, NULL);
    assert_non_null(two->bootstrap);
    assert_ptr_equal(two->bootstrap, one->bootstrap);
    snapshot_unref(one);
    f.snaps[0] = NULL;
    char *dump = snapshot_config_dump(two);
    assert_non_null(dump);
    assert_non_null(strstr(dump, "sidecar"));
    free(dump);
    snapshot_t *three = rebuild(&f, NULL);
    assert_ptr_equal(three->bootstrap, two->bootstrap);
    release(&f);
}

/* reviews and ratings over EDS, their assignments in ascending order (as an xDS client lists
 * them); ratings' at ratings_ip, or named `other` in its place when given. */
static void sorted_eds_clusters(update_t *u, const char *ratings_ip, const char *other)
{
    char cla[512];
    cluster(u, "reviews", EDS_CLUSTER("reviews"));
    cluster(u, "ratings", EDS_CLUSTER("ratings"));
    const char *first = other ? other : "ratings";
    snprintf(cla, sizeof(cla), ASSIGNMENT("%s", "%s"), first, ratings_ip);
    assignment(u, first, cla);
    assignment(u, "reviews", ASSIGNMENT("reviews", "10.0.0.1"));
}

/* A build indexes the set's assignments from the names the last snapshot kept when the holders
 * at the same places are the same but for some: the changed one is read and the order checked;
 * a name out of order in its place falls back to the full index (and sort). */
static void test_assignments_are_indexed_from_the_last_snapshots_names(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    sorted_eds_clusters(&u, "10.0.0.2", NULL);
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    assert_int_equal(one->assignment_names.n, 2);
    assert_string_equal(one->assignment_names.name[0], "ratings");
    sorted_eds_clusters(&u, "10.0.0.3", NULL);
    snapshot_t *two = next(&f, &u, NULL);
    assert_int_equal(two->assignment_names.n, 2);
    assert_ptr_equal(two->assignment_names.kept[1], one->assignment_names.kept[1]);
    assert_ptr_not_equal(two->assignment_names.kept[0], one->assignment_names.kept[0]);
    assert_string_equal(find(two, "ratings")->endpoints[0].label, "10.0.0.3:9080");
    assert_true(snapshot_cluster_shared(find(two, "reviews"), find(one, "reviews")));
    sorted_eds_clusters(&u, "10.0.0.3", "zzz"); /* after reviews, at ratings' place */
    snapshot_t *three = next(&f, &u, NULL);
    assert_int_equal(three->assignment_names.n, 0); /* not in order: none kept */
    assert_true(find(three, "ratings")->awaiting_assignment);
    assert_true(snapshot_cluster_shared(find(three, "reviews"), find(two, "reviews")));
    snap_refs_t refs;
    assert_int_equal(snapshot_references(three, &refs), 1); /* ratings' is awaited */
    snapshot_refs_free(&refs);
    release(&f);
}

/* Clusters a, b, c (and extra, borrowed): each takes its own name's assignment, b's at ip. */
static void abc_clusters(update_t *u, const char *b_ip, const char *extra)
{
    char cla[512];
    cluster(u, "a", EDS_CLUSTER("a"));
    if (extra)
        cluster(u, extra, EDS_CLUSTER("ab"));
    cluster(u, "b", EDS_CLUSTER("b"));
    cluster(u, "c", EDS_CLUSTER("c"));
    if (extra) /* after c, taking c's assignment: a repeat, out of order */
        cluster(u, "d",
                "name: d\ntype: EDS\neds_cluster_config: {eds_config: {ads: {}}, "
                "service_name: c}\n");
    assignment(u, "a", ASSIGNMENT("a", "10.0.0.1"));
    if (extra)
        assignment(u, "ab", ASSIGNMENT("ab", "10.0.0.9"));
    snprintf(cla, sizeof(cla), ASSIGNMENT("b", "%s"), b_ip);
    assignment(u, "b", cla);
    assignment(u, "c", ASSIGNMENT("c", "10.0.0.3"));
}

/* The endpoints a snapshot references stay sorted and distinct when the next build reads only
 * the neighbours that are not the last snapshot's strings at its places: an update of b's
 * assignment keeps a's and c's names (the shared clusters' own), b's is new; a cluster added in
 * the middle and one repeating a name after the others are sorted and merged as before. */
static void test_references_after_an_update_read_only_what_moved(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    abc_clusters(&u, "10.0.0.2", NULL);
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    abc_clusters(&u, "10.0.0.4", NULL);
    snapshot_t *two = next(&f, &u, NULL);
    const snap_ref_list_t *was = &one->references.endpoints, *now = &two->references.endpoints;
    assert_int_equal(now->n, 3);
    const char *const want[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(now->v[i].name, want[i]);
    assert_ptr_equal(now->v[0].name, was->v[0].name);
    assert_ptr_equal(now->v[2].name, was->v[2].name);
    assert_ptr_not_equal(now->v[1].name, was->v[1].name); /* b was built again */
    assert_string_equal(find(two, "b")->endpoints[0].label, "10.0.0.4:9080");

    abc_clusters(&u, "10.0.0.4", "ab");
    snapshot_t *three = next(&f, &u, NULL);
    now = &three->references.endpoints;
    assert_int_equal(now->n, 4);
    const char *const want3[] = {"a", "ab", "b", "c"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(now->v[i].name, want3[i]);
        assert_false(now->v[i].missing);
    }
    assert_string_equal(find(three, "d")->endpoints[0].label, "10.0.0.3:9080");
    assert_true(snapshot_cluster_shared(find(three, "c"), find(two, "c")));
    /* and back: ab and d leave, the rest is three's */
    abc_clusters(&u, "10.0.0.4", NULL);
    snapshot_t *four = next(&f, &u, NULL);
    now = &four->references.endpoints;
    assert_int_equal(now->n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(now->v[i].name, want[i]);
    release(&f);
}

static void test_a_changed_cluster_is_built_again(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    two_eds_clusters(&u, "10.0.0.2");
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    cluster(&u, "reviews", EDS_CLUSTER("reviews") "connect_timeout: 2s\n");
    cluster(&u, "ratings", EDS_CLUSTER("ratings"));
    assignment(&u, "reviews", ASSIGNMENT("reviews", "10.0.0.1"));
    assignment(&u, "ratings", ASSIGNMENT("ratings", "10.0.0.2"));
    snapshot_t *two = next(&f, &u, NULL);
    const snap_cluster_t *was = find(one, "reviews"), *now = find(two, "reviews");
    assert_ptr_not_equal(now->share, was->share);
    assert_ptr_not_equal(now->endpoints, was->endpoints);
    assert_int_equal(was->connect_timeout_ms, 5000);
    assert_int_equal(now->connect_timeout_ms, 2000);
    assert_ptr_equal(find(two, "ratings")->share, find(one, "ratings")->share);
    release(&f);
}

static void test_a_cluster_whose_assignment_arrives_is_built_again(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    cluster(&u, "reviews", EDS_CLUSTER("reviews"));
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    assert_true(find(one, "reviews")->awaiting_assignment);
    cluster(&u, "reviews", EDS_CLUSTER("reviews"));
    snapshot_t *two = next(&f, &u, NULL); /* still without: the same cluster */
    assert_ptr_equal(find(two, "reviews")->share, find(one, "reviews")->share);
    snap_refs_t refs;
    assert_int_equal(snapshot_references(two, &refs), 1); /* still awaited */
    snapshot_refs_free(&refs);
    cluster(&u, "reviews", EDS_CLUSTER("reviews"));
    assignment(&u, "reviews", ASSIGNMENT("reviews", "10.0.0.1"));
    snapshot_t *three = next(&f, &u, NULL);
    const snap_cluster_t *c = find(three, "reviews");
    assert_false(c->awaiting_assignment);
    assert_int_equal(c->n_endpoints, 1);
    assert_int_equal(snapshot_references(three, &refs), 0);
    snapshot_refs_free(&refs);
    release(&f);
}

static void test_a_changed_secret_makes_a_new_tls_context(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    cluster(&u, "app", SDS_CLUSTER("app"));
    secret(&u, CERT_SECRET("client.pem", "client.key"));
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    cluster(&u, "app", SDS_CLUSTER("app"));
    secret(&u, CERT_SECRET("client.pem", "client.key"));
    snapshot_t *two = next(&f, &u, NULL);
    assert_non_null(find(one, "app")->tls->engine);
    assert_ptr_equal(find(two, "app")->tls, find(one, "app")->tls);
    cluster(&u, "app", SDS_CLUSTER("app"));
    secret(&u, CERT_SECRET("rsa-client.pem", "rsa-client.key"));
    snapshot_t *three = next(&f, &u, NULL);
    const tls_context_config_t *t = find(three, "app")->tls;
    assert_ptr_not_equal(t, find(two, "app")->tls);
    assert_non_null(t->engine);
    assert_string_equal(t->cert_chain.filename, CERTS "rsa-client.pem");
    release(&f);
}

/* Copies file `from` to `to`. */
static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static void test_a_rebuild_after_certificate_rotation_makes_a_new_tls_context(void **state)
{
    (void)state;
    char dir[] = "/tmp/remora-share-XXXXXX", cert[64], key[64], yaml[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    copy_file(CERTS "client.pem", cert);
    copy_file(CERTS "client.key", key);
    fixture_t f;
    begin(&f);
    update_t u = {0};
    snprintf(yaml, sizeof(yaml),
             "name: default\ntls_certificate:\n  certificate_chain: {filename: %s}\n"
             "  private_key: {filename: %s}\n",
             cert, key);
    cluster(&u, "app", SDS_CLUSTER("app"));
    secret(&u, yaml);
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    snapshot_t *two = rebuild(&f, NULL); /* the files as they were */
    assert_ptr_equal(find(two, "app")->tls, find(one, "app")->tls);
    copy_file(CERTS "rsa-client.pem", cert);
    copy_file(CERTS "rsa-client.key", key);
    snapshot_t *three = rebuild(&f, NULL);
    const tls_context_config_t *t = find(three, "app")->tls;
    assert_ptr_not_equal(t, find(two, "app")->tls);
    assert_non_null(t->engine);
    assert_int_not_equal(t->cert_chain.len, find(one, "app")->tls->cert_chain.len);
    release(&f);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

/* A resolver with one name whose address the test changes. */
typedef struct fake_dns {
    struct sockaddr_storage addr;
} fake_dns_t;

static int fake_lookup(void *ctx, const char *cluster, const char *host,
                       const struct sockaddr_storage **addrs, size_t *n)
{
    (void)cluster;
    fake_dns_t *d = ctx;
    if (strcmp(host, "backend.example") != 0)
        return -1;
    *addrs = &d->addr;
    *n = 1;
    return 0;
}

static void set_ip(fake_dns_t *d, const char *ip)
{
    memset(&d->addr, 0, sizeof(d->addr));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&d->addr;
    s4->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
}

static void test_a_dns_cluster_is_built_again_when_its_answers_change(void **state)
{
    (void)state;
    fake_dns_t dns;
    snap_resolver_t resolver = {.lookup = fake_lookup, .ctx = &dns};
    set_ip(&dns, "198.18.0.1");
    fixture_t f;
    begin(&f);
    update_t u = {0};
    snapshot_t *one = first(&f,
                            "node: {id: sidecar}\n"
                            "static_resources:\n"
                            "  clusters:\n"
                            "  - name: backend\n"
                            "    type: STRICT_DNS\n"
                            "    load_assignment:\n"
                            "      endpoints:\n"
                            "      - lb_endpoints:\n"
                            "        - endpoint: {address: {socket_address: "
                            "{address: backend.example, port_value: 80}}}\n",
                            &u, &resolver);
    snapshot_t *two = rebuild(&f, &resolver); /* the same answer */
    assert_ptr_equal(find(two, "backend")->endpoints, find(one, "backend")->endpoints);
    set_ip(&dns, "198.18.0.2");
    snapshot_t *three = rebuild(&f, &resolver);
    const snap_cluster_t *c = find(three, "backend");
    assert_ptr_not_equal(c->endpoints, find(two, "backend")->endpoints);
    assert_int_equal(c->n_endpoints, 1);
    assert_string_equal(c->endpoints[0].label, "198.18.0.2:80");
    release(&f);
}

static void test_a_shared_cluster_outlives_the_snapshot_that_built_it(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    two_eds_clusters(&u, "10.0.0.2");
    first(&f, ads_bootstrap, &u, NULL);
    two_eds_clusters(&u, "10.0.0.2");
    snapshot_t *two = next(&f, &u, NULL);
    snapshot_unref(f.snaps[0]); /* the first one goes, as an installed one does */
    f.snaps[0] = two;
    f.n_snaps = 1;
    const snap_cluster_t *c = find(two, "reviews");
    assert_int_equal(c->n_endpoints, 1);
    assert_string_equal(c->endpoints[0].label, "10.0.0.1:9080");
    struct sockaddr_storage to;
    int idx = -1;
    assert_int_equal(cluster_pick(c, 0, NULL, &to, &idx), 0);
    assert_int_equal(idx, 0);
    /* Its resources were kept with it: the next build from them shares it again. */
    snapshot_t *three = rebuild(&f, NULL);
    assert_ptr_equal(find(three, "reviews")->share, c->share);
    release(&f);
}

/* A resource as the ADS state machine holds it: in a snap_kept_t of its own (new). */
static snap_kept_t *held_new(const ProtobufCMessageDescriptor *desc, const char *name,
                             const char *yaml)
{
    ProtobufCMessage *m = NULL;
    char err[512];
    if (config_yaml_load(yaml, strlen(yaml), "held", desc, &m, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    snap_kept_t *k = snap_kept_new(m, name);
    assert_non_null(k);
    return k;
}

/* Adds k (borrowed, its holder's) to list as ads_resources does: the message and its holder. */
static void add_held(config_resource_list_t *list, const char *origin, snap_kept_t *k)
{
    assert_int_equal(config_resources_add_named(list, k->msg, origin, list->n, k->name), 0);
    list->v[list->n - 1].version = "1";
    list->v[list->n - 1].kept = k;
}

#define MANY 130

/* MANY EDS clusters c000... in order and their assignments, held as the xDS client holds them:
 * cl[i] and as[i] new (the caller's), and *moved, c070's assignment at another address. */
static void many_held(snap_kept_t **cl, snap_kept_t **as, snap_kept_t **moved)
{
    for (size_t i = 0; i < MANY; i++) {
        char name[16], yaml[256], cla[512], ip[32];
        snprintf(name, sizeof(name), "c%03zu", i);
        snprintf(yaml, sizeof(yaml), EDS_CLUSTER("%s"), name);
        cl[i] = held_new(CLUSTER_DESC, name, yaml);
        snprintf(ip, sizeof(ip), "10.0.0.%zu", i);
        snprintf(cla, sizeof(cla), ASSIGNMENT("%s", "%s"), name, ip);
        as[i] = held_new(ASSIGNMENT_DESC, name, cla);
    }
    char cla[512];
    snprintf(cla, sizeof(cla), ASSIGNMENT("c070", "10.0.1.70"));
    *moved = held_new(ASSIGNMENT_DESC, "c070", cla);
}

/* An update as ads_resources lists it: every cluster and assignment but skip's (MANY: none),
 * c070's assignment `c070` (borrowed). */
static void many_update(update_t *u, snap_kept_t **cl, snap_kept_t **as, snap_kept_t *c070,
                        size_t skip)
{
    for (size_t i = 0; i < MANY; i++)
        if (i != skip)
            add_held(&u->res.clusters, "cds", cl[i]);
    for (size_t i = 0; i < MANY; i++)
        if (i != skip)
            add_held(&u->res.endpoints, "eds", i == 70 ? c070 : as[i]);
}

/* The copies a snapshot keeps come in chunks, and its clusters hold their shares in blocks: an
 * update of one assignment among 130 shares every chunk of clusters, every chunk of
 * assignments and every block of clusters but the changed one's with the last snapshot; a cluster
 * removed in the middle moves the ones after it, whose chunks are made again, and the snapshot is
 * right either way: its clusters, its config dump, a rebuild, and the holders freed once when the
 * last snapshot goes (ASan). */
static void test_an_eds_update_shares_every_chunk_of_copies_but_the_changed_ones(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    first(&f, ads_bootstrap, &u, NULL);
    snap_kept_t *cl[MANY], *as[MANY], *moved = NULL;
    many_held(cl, as, &moved);
    many_update(&u, cl, as, as[70], MANY);
    snapshot_t *one = next(&f, &u, NULL);
    many_update(&u, cl, as, moved, MANY);
    snapshot_t *two = next(&f, &u, NULL);
    for (size_t j = 0; j < MANY; j++) {
        assert_true(snapshot_dynamic_shared_at(two->dynamic, one->dynamic, SNAP_DYN_CLUSTERS, j));
        bool same = snapshot_dynamic_shared_at(two->dynamic, one->dynamic, SNAP_DYN_ENDPOINTS, j);
        assert_true(same == (j < 64 || j >= 128)); /* c070's chunk holds 64-127 */
    }
    /* The clusters hold their shares through blocks of 64 places: c070's is new, built again
     * with its assignment; the others are one's. */
    assert_int_equal(two->n_share_blocks, 3);
    assert_ptr_equal(two->share_blocks[0], one->share_blocks[0]);
    assert_ptr_not_equal(two->share_blocks[1], one->share_blocks[1]);
    assert_ptr_equal(two->share_blocks[2], one->share_blocks[2]);
    assert_string_equal(find(two, "c070")->endpoints[0].label, "10.0.1.70:9080");
    assert_string_equal(find(two, "c071")->endpoints[0].label, "10.0.0.71:9080");
    assert_true(snapshot_cluster_shared(find(two, "c071"), find(one, "c071")));
    assert_false(snapshot_cluster_shared(find(two, "c070"), find(one, "c070")));
    char *dump = snapshot_config_dump(two);
    assert_non_null(strstr(dump, "\"10.0.1.70\""));
    assert_null(strstr(dump, "\"10.0.0.70\""));
    free(dump);

    many_update(&u, cl, as, moved, 10); /* c010 leaves: the rest move up one place */
    snapshot_t *three = next(&f, &u, NULL);
    assert_int_equal(three->n_clusters, MANY - 1);
    assert_false(snapshot_dynamic_shared_at(three->dynamic, two->dynamic, SNAP_DYN_CLUSTERS, 0));
    assert_null(snapshot_find_cluster(three, "c010"));
    assert_string_equal(find(three, "c011")->endpoints[0].label, "10.0.0.11:9080");
    assert_true(snapshot_cluster_shared(find(three, "c129"), find(two, "c129")));
    assert_int_equal(three->n_share_blocks, 3); /* moved: new blocks, the same shares */
    assert_ptr_not_equal(three->share_blocks[2], two->share_blocks[2]);
    snapshot_t *four = rebuild(&f, NULL); /* from the kept copies: every chunk shared */
    assert_int_equal(four->n_clusters, MANY - 1);
    for (size_t j = 0; j < MANY - 1; j++)
        assert_true(
            snapshot_dynamic_shared_at(four->dynamic, three->dynamic, SNAP_DYN_ENDPOINTS, j));
    for (size_t q = 0; q < 3; q++)
        assert_ptr_equal(four->share_blocks[q], three->share_blocks[q]);
    assert_string_equal(find(four, "c070")->endpoints[0].label, "10.0.1.70:9080");
    many_update(&u, cl, as, moved, MANY); /* and c010 back */
    snapshot_t *five = next(&f, &u, NULL);
    assert_int_equal(five->n_clusters, MANY);
    assert_string_equal(find(five, "c010")->endpoints[0].label, "10.0.0.10:9080");
    for (size_t i = 0; i < MANY; i++) { /* the source lets go: the snapshots hold them */
        snap_kept_unref(cl[i]);
        snap_kept_unref(as[i]);
    }
    snap_kept_unref(moved);
    assert_string_equal(find(five, "c129")->endpoints[0].label, "10.0.0.129:9080");
    release(&f);
}

/* The holders of s's kept resources of the clusters and assignments lists, in their order. */
static void kept_of(const snapshot_t *s, snap_kept_t **cluster, snap_kept_t **assignment)
{
    config_resources_t res = {0};
    assert_int_equal(snapshot_dynamic_add(s->dynamic, &res), 0);
    assert_int_equal(res.clusters.n, 1);
    assert_int_equal(res.endpoints.n, 1);
    *cluster = res.clusters.v[0].kept;
    *assignment = res.endpoints.v[0].kept;
    config_resources_free(&res);
}

static void test_a_resource_its_source_holds_is_kept_by_reference_not_copied(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    first(&f, ads_bootstrap, &u, NULL);
    snap_kept_t *kc = held_new(CLUSTER_DESC, "reviews", EDS_CLUSTER("reviews"));
    snap_kept_t *ka = held_new(ASSIGNMENT_DESC, "reviews", ASSIGNMENT("reviews", "10.0.0.1"));
    add_held(&u.res.clusters, "cds", kc);
    add_held(&u.res.endpoints, "eds", ka);
    snapshot_t *one = next(&f, &u, NULL);
    snap_kept_t *c1, *a1;
    kept_of(one, &c1, &a1);
    assert_ptr_equal(c1, kc); /* the same holder: one copy of each resource */
    assert_ptr_equal(a1, ka);
    assert_ptr_equal(c1->msg, kc->msg);
    assert_true(kc->validated); /* validated by the build that took it, once */
    /* The source resends them unchanged: the next snapshot holds the same ones and shares the
     * cluster built from them. */
    add_held(&u.res.clusters, "cds", kc);
    add_held(&u.res.endpoints, "eds", ka);
    snapshot_t *two = next(&f, &u, NULL);
    snap_kept_t *c2, *a2;
    kept_of(two, &c2, &a2);
    assert_ptr_equal(c2, kc);
    assert_ptr_equal(a2, ka);
    assert_ptr_equal(find(two, "reviews")->share, find(one, "reviews")->share);
    /* The source lets go (a removal, a changed resource): the snapshots still hold them, and a
     * rebuild from them (certificate rotation, DNS) takes the same ones again. */
    snap_kept_unref(kc);
    snap_kept_unref(ka);
    snapshot_t *three = rebuild(&f, NULL);
    snap_kept_t *c3, *a3;
    kept_of(three, &c3, &a3);
    assert_ptr_equal(c3, kc);
    assert_ptr_equal(a3, ka);
    const snap_cluster_t *c = find(three, "reviews");
    assert_int_equal(c->n_endpoints, 1);
    assert_string_equal(c->endpoints[0].label, "10.0.0.1:9080");
    /* A changed assignment from the source: its new holder, no copy. */
    snap_kept_t *kb = held_new(ASSIGNMENT_DESC, "reviews", ASSIGNMENT("reviews", "10.0.0.2"));
    add_held(&u.res.clusters, "cds", c3);
    add_held(&u.res.endpoints, "eds", kb);
    snapshot_t *four = next(&f, &u, NULL);
    snap_kept_t *c4, *a4;
    kept_of(four, &c4, &a4);
    assert_ptr_equal(c4, kc);
    assert_ptr_equal(a4, kb);
    assert_string_equal(find(four, "reviews")->endpoints[0].label, "10.0.0.2:9080");
    snap_kept_unref(kb);
    release(&f); /* the last snapshots free every holder, once (ASan) */
}

static void test_a_cluster_defined_twice_is_still_refused(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    cluster(&u, "reviews", EDS_CLUSTER("reviews"));
    first(&f, ads_bootstrap, &u, NULL);
    cluster(&u, "reviews", EDS_CLUSTER("reviews"));
    cluster(&u, "reviews", EDS_CLUSTER("reviews"));
    snapshot_t *s = NULL;
    assert_int_not_equal(
        snapshot_build_dynamic(last(&f), &u.res, NULL, f.stats, &s, f.err, sizeof(f.err)), 0);
    assert_non_null(strstr(f.err, "cluster 'reviews': defined twice"));
    drop(&u);
    release(&f);
}

/* The trial of one resource on top of the running snapshot, as the xDS client checks each. */
static int trial(fixture_t *f, const ProtobufCMessageDescriptor *desc, const char *yaml)
{
    update_t u = {0};
    config_resource_list_t *list = desc == CLUSTER_DESC ? &u.res.clusters : &u.res.listeners;
    add(&u, list, "candidate", desc, NULL, yaml);
    int rc = snapshot_check_dynamic(last(f), &u.res, f->stats, f->err, sizeof(f->err));
    drop(&u);
    return rc;
}

static void test_a_trial_on_top_of_the_running_snapshot_still_finds_errors(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    two_eds_clusters(&u, "10.0.0.2");
    first(&f,
          "node: {id: sidecar}\n"
          "static_resources:\n"
          "  listeners:\n"
          "  - name: in\n"
          "    address: {socket_address: {address: 127.0.0.1, port_value: 15006}}\n"
          "    filter_chains:\n"
          "    - filters:\n"
          "      - name: envoy.filters.network.tcp_proxy\n"
          "        typed_config:\n"
          "          '@type': type.googleapis.com/"
          "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
          "          stat_prefix: in\n"
          "          cluster: reviews\n",
          &u, NULL);
    assert_int_equal(trial(&f, CLUSTER_DESC, EDS_CLUSTER("reviews") "connect_timeout: 2s\n"), 0);
    /* A trial defines no stats: a refused cluster leaves none behind. */
    assert_int_not_equal(trial(&f, CLUSTER_DESC, EDS_CLUSTER("details") "lb_policy: MAGLEV\n"), 0);
    assert_int_equal(trial(&f, CLUSTER_DESC, EDS_CLUSTER("details")), 0);
    stats_entry_t *list = NULL;
    int n = stats_list(f.stats, &list);
    assert_true(n > 0);
    for (int i = 0; i < n; i++)
        assert_null(strstr(list[i].name, "details"));
    stats_list_free(list);
    assert_int_not_equal(trial(&f, CLUSTER_DESC, EDS_CLUSTER("reviews") "lb_policy: MAGLEV\n"), 0);
    assert_non_null(strstr(f.err, "lb_policy MAGLEV is not supported"));
    const char *listener = "name: in\n"
                           "address: {socket_address: {address: 127.0.0.1, port_value: 15007}}\n"
                           "filter_chains:\n"
                           "- filters:\n"
                           "  - name: envoy.filters.network.tcp_proxy\n"
                           "    typed_config:\n"
                           "      '@type': type.googleapis.com/"
                           "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
                           "      stat_prefix: in\n"
                           "      cluster: reviews\n";
    /* A listener is tried with the bootstrap's: the same name is refused. */
    assert_int_not_equal(trial(&f, LISTENER_DESC, listener), 0);
    assert_non_null(strstr(f.err, "listener 'in': defined twice"));
    /* Nothing of the running snapshot changed. */
    assert_int_equal(find(last(&f), "reviews")->n_endpoints, 1);
    assert_non_null(snapshot_find_listener(last(&f), "in"));
    release(&f);
}

/* A trial handed its candidate in a borrowed holder (as the xDS client hands it) builds from that
 * holder, finds the candidate's errors as with a copy, and leaves the message to its owner. */
static void test_a_trial_builds_from_a_borrowed_holder(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    two_eds_clusters(&u, "10.0.0.2");
    first(&f, ads_bootstrap, &u, NULL);
    const char *yaml[] = {EDS_CLUSTER("reviews") "connect_timeout: 2s\n",
                          EDS_CLUSTER("reviews") "lb_policy: MAGLEV\n"};
    for (int i = 0; i < 2; i++) {
        update_t c = {0};
        add(&c, &c.res.clusters, "candidate", CLUSTER_DESC, NULL, yaml[i]);
        snap_kept_t *k = snap_kept_borrow(c.res.clusters.v[0].msg, true);
        assert_non_null(k);
        c.res.clusters.v[0].kept = k;
        int rc = snapshot_check_dynamic(last(&f), &c.res, f.stats, f.err, sizeof(f.err));
        if (i == 0)
            assert_int_equal(rc, 0);
        else
            assert_non_null(strstr(f.err, "lb_policy MAGLEV is not supported"));
        assert_int_equal(atomic_load(&k->refs), 1); /* the trial let go of it */
        snap_kept_unref(k); /* the message is not freed with it: drop frees it (ASan) */
        drop(&c);
    }
    release(&f);
}

/* An EDS cluster with an UpstreamTlsContext taking its certificate over SDS, and its
 * connect_timeout. */
#define TLS_EDS_CLUSTER(name, timeout)                                                             \
    EDS_CLUSTER(name) "connect_timeout: " timeout "\n" SDS_CLUSTER_TLS

#define SDS_CLUSTER_TLS                                                                            \
    "transport_socket:\n"                                                                          \
    "  name: envoy.transport_sockets.tls\n"                                                        \
    "  typed_config:\n"                                                                            \
    "    '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."                  \
    "UpstreamTlsContext\n"                                                                         \
    "    sni: app.example\n"                                                                       \
    "    common_tls_context:\n"                                                                    \
    "      tls_certificate_sds_secret_configs: [{name: default, sds_config: {ads: {}}}]\n"         \
    "      validation_context: {trusted_ca: {filename: " CERTS "root-a.pem}}\n"

/* One update: cluster app (TLS, EDS on ip, connect_timeout timeout), cluster other (EDS on
 * other_ip) and the secret from cert and key. */
static void tls_update(update_t *u, const char *ip, const char *timeout, const char *other_ip,
                       const char *cert, const char *key)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), TLS_EDS_CLUSTER("app", "%s"), timeout);
    cluster(u, "app", buf);
    cluster(u, "other", EDS_CLUSTER("other"));
    snprintf(buf, sizeof(buf), ASSIGNMENT("app", "%s"), ip);
    assignment(u, "app", buf);
    snprintf(buf, sizeof(buf), ASSIGNMENT("other", "%s"), other_ip);
    assignment(u, "other", buf);
    snprintf(buf, sizeof(buf), CERT_SECRET("%s", "%s"), cert, key);
    secret(u, buf);
}

static void test_a_rebuilt_tls_context_keeps_its_engine_config(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    tls_update(&u, "10.0.0.1", "1s", "10.1.0.1", "client.pem", "client.key");
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    /* app's endpoints change: app is built again, from the same TLS bytes. */
    tls_update(&u, "10.0.0.2", "1s", "10.1.0.1", "client.pem", "client.key");
    snapshot_t *two = next(&f, &u, NULL);
    const tls_context_config_t *t1 = find(one, "app")->tls, *t2 = find(two, "app")->tls;
    assert_ptr_not_equal(t1, t2);
    assert_non_null(t1->engine);
    assert_ptr_equal(t1->engine, t2->engine);
    /* Only other changes: app is shared, and a later rebuild of app still finds the engine. */
    tls_update(&u, "10.0.0.2", "1s", "10.1.0.2", "client.pem", "client.key");
    snapshot_t *three = next(&f, &u, NULL);
    assert_ptr_equal(find(three, "app")->tls, t2);
    tls_update(&u, "10.0.0.3", "1s", "10.1.0.2", "client.pem", "client.key");
    snapshot_t *four = next(&f, &u, NULL);
    assert_ptr_not_equal(find(four, "app")->tls, t2);
    assert_ptr_equal(find(four, "app")->tls->engine, t1->engine);
    /* Another certificate (a rotation): a new engine config. */
    tls_update(&u, "10.0.0.3", "1s", "10.1.0.2", "rsa-client.pem", "rsa-client.key");
    snapshot_t *five = next(&f, &u, NULL);
    assert_non_null(find(five, "app")->tls->engine);
    assert_ptr_not_equal(find(five, "app")->tls->engine, t1->engine);
    /* And back: the engine of the first certificate was not kept by five, so a new one. */
    tls_update(&u, "10.0.0.3", "1s", "10.1.0.2", "client.pem", "client.key");
    snapshot_t *six = next(&f, &u, NULL);
    assert_non_null(find(six, "app")->tls->engine);
    assert_ptr_not_equal(find(six, "app")->tls->engine, find(five, "app")->tls->engine);
    release(&f);
}

static void test_pools_stay_compatible_only_with_the_same_connection_settings(void **state)
{
    (void)state;
    fixture_t f;
    begin(&f);
    update_t u = {0};
    tls_update(&u, "10.0.0.1", "1s", "10.1.0.1", "client.pem", "client.key");
    snapshot_t *one = first(&f, ads_bootstrap, &u, NULL);
    /* An endpoint push (the address of app's endpoint changes; other's stays). */
    tls_update(&u, "10.0.0.2", "1s", "10.1.0.1", "client.pem", "client.key");
    snapshot_t *two = next(&f, &u, NULL);
    const snap_cluster_t *a1 = find(one, "app"), *a2 = find(two, "app");
    assert_ptr_not_equal(a1, a2);
    assert_true(pool_cluster_compatible(a1, a2));
    assert_true(pool_cluster_compatible(find(one, "other"), find(two, "other")));
    assert_false(pool_cluster_compatible(a1, find(two, "other")));
    const struct sockaddr *ep1 = (const struct sockaddr *)&a1->endpoints[0].addr;
    assert_int_equal(pool_endpoint_index(a2, ep1), -1); /* 10.0.0.1 is gone */
    assert_int_equal(
        pool_endpoint_index(find(two, "other"),
                            (const struct sockaddr *)&find(one, "other")->endpoints[0].addr),
        0);
    /* A changed connect_timeout (a CDS change of the connection settings). */
    tls_update(&u, "10.0.0.2", "2s", "10.1.0.1", "client.pem", "client.key");
    snapshot_t *three = next(&f, &u, NULL);
    assert_false(pool_cluster_compatible(a2, find(three, "app")));
    /* A rotated certificate: another engine config. */
    tls_update(&u, "10.0.0.2", "2s", "10.1.0.1", "rsa-client.pem", "rsa-client.key");
    snapshot_t *four = next(&f, &u, NULL);
    assert_false(pool_cluster_compatible(find(three, "app"), find(four, "app")));
    /* The same TLS, compared field by field: a different SNI or SAN is another peer. */
    tls_context_config_t t = *find(four, "app")->tls;
    snap_cluster_t c = *find(four, "app");
    c.tls = &t;
    assert_true(pool_cluster_compatible(find(four, "app"), &c));
    t.sni = "other.example";
    assert_false(pool_cluster_compatible(find(four, "app"), &c));
    t.sni = find(four, "app")->tls->sni;
    c.tls = NULL;
    assert_false(pool_cluster_compatible(find(four, "app"), &c));
    release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_endpoint_push_builds_only_the_cluster_whose_assignment_changed),
        cmocka_unit_test(test_an_eds_update_shares_the_other_clusters_by_their_holders),
        cmocka_unit_test(test_clusters_that_change_places_are_still_shared),
        cmocka_unit_test(test_copies_are_found_by_name_after_an_update_that_changed_some),
        cmocka_unit_test(test_a_config_says_whether_its_eds_clusters_take_their_own_names),
        cmocka_unit_test(test_the_next_snapshot_shares_the_bootstrap_and_outlives_the_first),
        cmocka_unit_test(test_assignments_are_indexed_from_the_last_snapshots_names),
        cmocka_unit_test(test_references_after_an_update_read_only_what_moved),
        cmocka_unit_test(test_an_eds_update_shares_every_chunk_of_copies_but_the_changed_ones),
        cmocka_unit_test(test_a_changed_cluster_is_built_again),
        cmocka_unit_test(test_a_cluster_whose_assignment_arrives_is_built_again),
        cmocka_unit_test(test_a_changed_secret_makes_a_new_tls_context),
        cmocka_unit_test(test_a_rebuild_after_certificate_rotation_makes_a_new_tls_context),
        cmocka_unit_test(test_a_dns_cluster_is_built_again_when_its_answers_change),
        cmocka_unit_test(test_a_shared_cluster_outlives_the_snapshot_that_built_it),
        cmocka_unit_test(test_a_resource_its_source_holds_is_kept_by_reference_not_copied),
        cmocka_unit_test(test_a_cluster_defined_twice_is_still_refused),
        cmocka_unit_test(test_a_trial_on_top_of_the_running_snapshot_still_finds_errors),
        cmocka_unit_test(test_a_trial_builds_from_a_borrowed_holder),
        cmocka_unit_test(test_a_rebuilt_tls_context_keeps_its_engine_config),
        cmocka_unit_test(test_pools_stay_compatible_only_with_the_same_connection_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
