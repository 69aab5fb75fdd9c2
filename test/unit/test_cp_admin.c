/* remora-cp's admin endpoint over a real socket: Prometheus stats with istiod's names, the
 * sidecar's /stats options (format, filter) and their errors, /ready
 * following the control plane, /debug/syncz as the control plane renders it, and the errors. The
 * loop runs on its own thread; the test is a blocking HTTP client. */
#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cp/cp_admin.h"

typedef struct rig {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    cp_stats_t stats;
    cp_admin_t *admin;
    bool ready;
    int port;
} rig_t;

static bool is_ready(void *ctx)
{
    return ((rig_t *)ctx)->ready;
}

static json_t *syncz(void *ctx)
{
    (void)ctx;
    return json_pack("{s:[{s:s}]}", "proxies", "node", "web-1.shop");
}

static const cp_admin_ops_t OPS = {.ready = is_ready, .syncz = syncz};

static void on_stop(uv_async_t *h)
{
    rig_t *r = h->data;
    cp_admin_stop(r->admin);
    uv_close((uv_handle_t *)&r->stop, NULL);
}

static void *run(void *arg)
{
    uv_run(&((rig_t *)arg)->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void rig_start(rig_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(cp_stats_init(&r->stats), 0);
    uv_loop_init(&r->loop);
    uv_async_init(&r->loop, &r->stop, on_stop);
    r->stop.data = r;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    char err[256];
    assert_int_equal(cp_admin_start(&r->loop, (struct sockaddr *)&a, &r->stats, &OPS, r, &r->admin,
                                    err, sizeof(err)),
                     0);
    struct sockaddr_storage bound;
    assert_int_equal(cp_admin_address(r->admin, &bound), 0);
    r->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    assert_int_equal(pthread_create(&r->thread, NULL, run, r), 0);
}

static void rig_end(rig_t *r)
{
    uv_async_send(&r->stop);
    pthread_join(r->thread, NULL);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    cp_stats_free(&r->stats);
}

/* The whole answer to "METHOD path" (new). */
static char *get(const rig_t *r, const char *method, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[256];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t len = 0;
    char *buf = calloc(1, 1 << 20);
    ssize_t got;
    while ((got = read(fd, buf + len, (1 << 20) - 1 - len)) > 0)
        len += (size_t)got;
    close(fd);
    return buf;
}

static void test_cp_admin_prometheus_has_istiod_names(void **state)
{
    (void)state;
    rig_t r;
    rig_start(&r);
    stats_add(r.stats.slots, r.stats.pushes[CP_EDS], 3);
    stats_add(r.stats.slots, r.stats.connected, 2);
    char *t = get(&r, "GET", "/stats/prometheus");
    assert_non_null(strstr(t, "HTTP/1.1 200"));
    assert_non_null(strstr(t, "pilot_xds_pushes{type=\"eds\"} 3"));
    assert_non_null(strstr(t, "pilot_xds 2"));
    assert_non_null(strstr(t, "pilot_total_xds_rejects{type=\"lds\"} 0"));
    assert_non_null(strstr(t, "pilot_proxy_convergence_time"));
    free(t);
    rig_end(&r);
}

static void test_cp_admin_stats_take_the_sidecars_query_options(void **state)
{
    (void)state;
    rig_t r;
    rig_start(&r);
    stats_add(r.stats.slots, r.stats.pushes[CP_EDS], 3);
    char *t = get(&r, "GET", "/stats?filter=^pilot_xds_pushes");
    assert_non_null(strstr(t, "HTTP/1.1 200"));
    assert_non_null(strstr(t, "pilot_xds_pushes.eds: 3"));
    assert_null(strstr(t, "pilot_total_xds_rejects"));
    free(t);
    t = get(&r, "GET", "/stats?format=json&filter=pushes");
    assert_non_null(strstr(t, "application/json"));
    assert_non_null(strstr(t, "\"stats\""));
    assert_null(strstr(t, "rejects"));
    free(t);
    t = get(&r, "GET", "/stats?format=prometheus&filter=pushes");
    assert_non_null(strstr(t, "pilot_xds_pushes{type=\"eds\"} 3"));
    assert_null(strstr(t, "pilot_proxy_convergence_time"));
    free(t);
    t = get(&r, "GET", "/stats?format=yaml");
    assert_non_null(strstr(t, "HTTP/1.1 400"));
    free(t);
    t = get(&r, "GET", "/stats?filter=(");
    assert_non_null(strstr(t, "HTTP/1.1 400"));
    assert_non_null(strstr(t, "invalid regex in filter"));
    free(t);
    rig_end(&r);
}

static void test_cp_admin_ready_follows_the_control_plane(void **state)
{
    (void)state;
    rig_t r;
    rig_start(&r);
    char *t = get(&r, "GET", "/ready");
    assert_non_null(strstr(t, "HTTP/1.1 503"));
    free(t);
    r.ready = true;
    t = get(&r, "GET", "/ready");
    assert_non_null(strstr(t, "HTTP/1.1 200"));
    free(t);
    rig_end(&r);
}

static void test_cp_admin_syncz_is_json(void **state)
{
    (void)state;
    rig_t r;
    rig_start(&r);
    char *t = get(&r, "GET", "/debug/syncz");
    assert_non_null(strstr(t, "application/json"));
    assert_non_null(strstr(t, "\"node\": \"web-1.shop\""));
    free(t);
    rig_end(&r);
}

static void test_cp_admin_refuses_writes_and_unknown_paths(void **state)
{
    (void)state;
    rig_t r;
    rig_start(&r);
    char *t = get(&r, "POST", "/stats");
    assert_non_null(strstr(t, "HTTP/1.1 405"));
    free(t);
    t = get(&r, "GET", "/config_dump");
    assert_non_null(strstr(t, "HTTP/1.1 404"));
    free(t);
    rig_end(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cp_admin_prometheus_has_istiod_names),
        cmocka_unit_test(test_cp_admin_stats_take_the_sidecars_query_options),
        cmocka_unit_test(test_cp_admin_ready_follows_the_control_plane),
        cmocka_unit_test(test_cp_admin_syncz_is_json),
        cmocka_unit_test(test_cp_admin_refuses_writes_and_unknown_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
