/* The DNS resolver of DNS clusters on a real loop: which lookup results count as answers, that
 * nothing runs without host names, and that the first answers are installed before the server
 * is told to start ("localhost" comes from /etc/hosts: no network). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "proxy/server/dns.h"
#include "proxy/server/listener_manager.h"
#include "proxy/server/server.h"
#include "proxy/core/log.h"
#include "xds/config/config.h"
#include "test/unit/snap_opts.h"

static int ready_calls;

typedef struct rig {
    server_t s;
    uv_loop_t loop;
    char err[512];
} rig_t;

static void rig_init(rig_t *r, const char *clusters_yaml)
{
    memset(r, 0, sizeof(*r));
    ready_calls = 0;
    uv_loop_init(&r->loop);
    r->s.loop = &r->loop;
    r->s.nworkers = 1;
    r->s.state = SERVER_STARTING;
    r->s.stats = stats_store_new(2);
    r->s.main_slots = stats_slots(r->s.stats, 1);
    ProtobufCMessage *msg = NULL;
    assert_int_equal(config_yaml_load(clusters_yaml, strlen(clusters_yaml), "dns.yaml",
                                      &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg,
                                      r->err, sizeof(r->err)),
                     0);
    assert_int_equal(
        snapshot_build(msg, &test_snap_opts, r->s.stats, 1, &r->s.snap, r->err, sizeof(r->err)), 0);
    /* The server's own install (membership stats count), listeners and all. */
    assert_int_equal(listener_manager_new(1, r->s.stats, r->s.main_slots, &r->s.lm), 0);
    r->s.sockets = calloc(1, sizeof(*r->s.sockets));
    assert_non_null(r->s.sockets);
    r->s.host = server_host(&r->s);
}

static void rig_free(rig_t *r)
{
    assert_int_equal(uv_loop_close(&r->loop), 0); /* every handle and lookup is done */
    worker_sockets_free(r->s.sockets[0]);
    free(r->s.sockets);
    listener_manager_free(r->s.lm);
    snapshot_unref(r->s.snap);
    stats_store_free(r->s.stats);
}

static int64_t cluster_stat(rig_t *r, const char *cluster, size_t offset)
{
    const snap_cluster_t *c = snapshot_find_cluster(r->s.snap, cluster);
    return stats_value(r->s.stats, *(const stat_id_t *)((const char *)&c->st + offset));
}

/* Stops the resolver once the server would start, so the loop runs dry. */
static void on_ready(void *arg)
{
    rig_t *r = arg;
    ready_calls++;
    dns_stop(r->s.dns);
    r->s.dns = NULL;
}

static void test_no_host_names_means_no_resolver(void **state)
{
    (void)state;
    rig_t r;
    rig_init(&r, "static_resources:\n  clusters:\n  - name: c\n    type: STRICT_DNS\n"
                 "    load_assignment:\n      endpoints:\n      - lb_endpoints:\n"
                 "        - endpoint: {address: {socket_address: {address: 127.0.0.9, "
                 "port_value: 80}}}\n");
    dns_t *d = (dns_t *)&r; /* anything but NULL */
    assert_int_equal(dns_start(&r.s.host, on_ready, &r, &d), 0);
    assert_null(d);
    assert_null(dns_resolver(NULL));
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_int_equal(ready_calls, 0);
    rig_free(&r);
}

static void test_first_answers_are_installed_before_ready(void **state)
{
    (void)state;
    rig_t r;
    rig_init(&r, "static_resources:\n  clusters:\n"
                 "  - name: s\n    type: STRICT_DNS\n    dns_lookup_family: V4_ONLY\n"
                 "    load_assignment:\n      endpoints:\n      - lb_endpoints:\n"
                 "        - endpoint: {address: {socket_address: {address: localhost, "
                 "port_value: 8080}}}\n"
                 "  - name: l\n    type: LOGICAL_DNS\n    dns_lookup_family: V4_ONLY\n"
                 "    load_assignment:\n      endpoints:\n      - lb_endpoints:\n"
                 "        - endpoint: {address: {socket_address: {address: localhost, "
                 "port_value: 9090}}}\n");
    uint64_t first_version = r.s.snap->version;
    assert_int_equal(snapshot_find_cluster(r.s.snap, "s")->n_endpoints, 0);
    assert_int_equal(dns_start(&r.s.host, on_ready, &r, &r.s.dns), 0);
    assert_non_null(r.s.dns);
    assert_int_equal(ready_calls, 0); /* lookups start with the loop, not before */
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_int_equal(ready_calls, 1);
    assert_true(r.s.snap->version > first_version);
    const snap_cluster_t *s = snapshot_find_cluster(r.s.snap, "s");
    assert_int_equal(s->n_endpoints, 1);
    assert_string_equal(s->endpoints[0].label, "127.0.0.1:8080");
    assert_string_equal(s->endpoints[0].hostname, "localhost");
    assert_string_equal(snapshot_find_cluster(r.s.snap, "l")->endpoints[0].label, "127.0.0.1:9090");
    assert_int_equal(cluster_stat(&r, "s", offsetof(cluster_stat_ids_t, update_attempt)), 1);
    assert_int_equal(cluster_stat(&r, "s", offsetof(cluster_stat_ids_t, update_success)), 1);
    assert_int_equal(cluster_stat(&r, "l", offsetof(cluster_stat_ids_t, update_failure)), 0);
    assert_int_equal(cluster_stat(&r, "s", offsetof(cluster_stat_ids_t, membership_change)), 1);
    assert_int_equal(cluster_stat(&r, "l", offsetof(cluster_stat_ids_t, membership_total)), 1);
    rig_free(&r);
}

static void test_no_such_name_is_an_answer_not_a_failure(void **state)
{
    (void)state;
    assert_true(dns_status_is_empty_answer(UV_EAI_NONAME));
    assert_true(dns_status_is_empty_answer(UV_EAI_NODATA));
    assert_false(dns_status_is_empty_answer(UV_EAI_AGAIN));
    assert_false(dns_status_is_empty_answer(UV_EAI_FAIL));
    assert_false(dns_status_is_empty_answer(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_host_names_means_no_resolver),
        cmocka_unit_test(test_first_answers_are_installed_before_ready),
        cmocka_unit_test(test_no_such_name_is_an_answer_not_a_failure),
    };
    log_set_level(LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
