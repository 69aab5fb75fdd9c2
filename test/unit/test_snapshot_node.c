/* Who the sidecar is, as a snapshot reads it from the bootstrap's node for Istio's metrics: the
 * workload and namespace from Istio's node metadata, else from the node's cluster and a
 * "<pod>.<namespace>" node id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "xds/config/config.h"
#include "test/unit/snap_opts.h"

static snapshot_t *build(const char *yaml, stats_store_t **stats)
{
    ProtobufCMessage *msg = NULL;
    char err[512];
    assert_int_equal(config_yaml_load(yaml, strlen(yaml), "node.yaml",
                                      &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg,
                                      err, sizeof(err)),
                     0);
    *stats = stats_store_new(1);
    snapshot_t *snap = NULL;
    assert_int_equal(snapshot_build(msg, &test_snap_opts, *stats, 1, &snap, err, sizeof(err)), 0);
    return snap;
}

static void done(snapshot_t *snap, stats_store_t *stats)
{
    snapshot_unref(snap);
    stats_store_free(stats);
}

static void test_node_metadata_names_workload_and_namespace(void **state)
{
    (void)state;
    stats_store_t *st;
    snapshot_t *s = build("node:\n"
                          "  id: cart-7f9c-x2.shop\n"
                          "  cluster: cart.shop\n"
                          "  metadata: {WORKLOAD_NAME: cart, NAMESPACE: shop-prod,"
                          " SERVICE_ACCOUNT: cart}\n",
                          &st);
    assert_string_equal(s->node_workload, "cart");
    assert_string_equal(s->node_namespace, "shop-prod");
    done(s, st);
}

static void test_node_without_metadata_uses_cluster_and_id(void **state)
{
    (void)state;
    stats_store_t *st;
    snapshot_t *s = build("node: {id: cart-7f9c-x2.shop, cluster: cart}\n", &st);
    assert_string_equal(s->node_workload, "cart");
    assert_string_equal(s->node_namespace, "shop");
    done(s, st);
    /* The short sidecar~pod.namespace form */
    s = build("node: {id: 'sidecar~pod.shop', cluster: default}\n", &st);
    assert_string_equal(s->node_namespace, "shop");
    done(s, st);
    /* Istio's long form sidecar~IP~pod.namespace~namespace.svc.cluster.local */
    s = build("node: {id: 'sidecar~198.18.0.2~web-1.default~default.svc.cluster.local'}\n", &st);
    assert_string_equal(s->node_workload, "");
    assert_string_equal(s->node_namespace, "default");
    done(s, st);
}

static void test_node_absent_is_unknown(void **state)
{
    (void)state;
    stats_store_t *st;
    snapshot_t *s =
        build("admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}\n", &st);
    assert_string_equal(s->node_workload, "");
    assert_string_equal(s->node_namespace, "");
    done(s, st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_metadata_names_workload_and_namespace),
        cmocka_unit_test(test_node_without_metadata_uses_cluster_and_id),
        cmocka_unit_test(test_node_absent_is_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
