/* The stat prefix of a route configuration taken over RDS: found in the connection manager that
 * names it, and a connection manager with an inline route configuration beside it (whose
 * route_config shares a union with rds) is passed over, not read as an rds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "xds/ads/ads_rds_prefix.h"
#include "xds/config/config.h"
#include "test/unit/snap_opts.h"

#define HCM_TYPE                                                                                   \
    "type.googleapis.com/"                                                                         \
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define ROUTER                                                                                     \
    "{name: r, typed_config: {'@type': "                                                           \
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}"

static const char YAML[] =
    "static_resources:\n"
    "  clusters:\n"
    "  - {name: c, type: STATIC, connect_timeout: 1s}\n"
    "  listeners:\n"
    "  - name: l\n"
    "    address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
    "    filter_chains:\n"
    "    - filter_chain_match: {destination_port: 8080}\n"
    "      filters:\n"
    "      - name: hcm\n"
    "        typed_config:\n"
    "          '@type': " HCM_TYPE "\n"
    "          stat_prefix: inline\n"
    "          route_config:\n"
    "            name: in\n"
    "            virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: "
    "{cluster: c}}]}]\n"
    "          http_filters: [" ROUTER "]\n"
    "    - filter_chain_match: {destination_port: 80}\n"
    "      filters:\n"
    "      - name: hcm\n"
    "        typed_config:\n"
    "          '@type': " HCM_TYPE "\n"
    "          stat_prefix: by_rds\n"
    "          rds: {route_config_name: '80', config_source: {ads: {}}}\n"
    "          http_filters: [" ROUTER "]\n";

static void test_rds_prefix_skips_inline_route_configs(void **state)
{
    (void)state;
    ProtobufCMessage *msg = NULL;
    char err[512];
    assert_int_equal(config_yaml_load(YAML, strlen(YAML), "rds.yaml",
                                      &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg,
                                      err, sizeof(err)),
                     0);
    stats_store_t *st = stats_store_new(1);
    snapshot_t *snap = NULL;
    assert_int_equal(snapshot_build(msg, &test_snap_opts, st, 1, &snap, err, sizeof(err)), 0);
    char *out = NULL;
    assert_int_equal(ads_rds_stat_prefix(NULL, snap, "80", &out), 1);
    assert_string_equal(out, "by_rds");
    free(out);
    /* "in" is an inline route configuration's name, not one taken over RDS. */
    assert_int_equal(ads_rds_stat_prefix(NULL, snap, "in", &out), 0);
    assert_null(out);
    snapshot_unref(snap);
    stats_store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rds_prefix_skips_inline_route_configs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
