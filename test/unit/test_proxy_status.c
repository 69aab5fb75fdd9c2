/* `remoractl proxy-status`: the table of /debug/syncz (a state per proxy and type, NACK errors
 * under it), one proxy's versions, a proxy that is not connected, an answer of the wrong shape,
 * and a control plane that cannot be reached. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/proxy_status.h"

static const char SYNCZ[] =
    "{\"proxies\": ["
    " {\"node\": \"web-1.shop\", \"cluster\": \"web\", \"mode\": \"sotw\", \"types\": {"
    "   \"CDS\": {\"state\": \"SYNCED\", \"sent\": \"7\", \"acked\": \"7\"},"
    "   \"LDS\": {\"state\": \"NACKED\", \"sent\": \"8\", \"acked\": \"6\","
    "             \"error\": \"lds['virtualInbound']: port in use\"},"
    "   \"EDS\": {\"state\": \"STALE\", \"sent\": \"9\", \"acked\": \"8\"}}},"
    " {\"node\": \"cart-7f9c.shop\", \"cluster\": \"cart\", \"mode\": \"delta\", \"types\": {}}"
    "]}";

static char *print(const char *doc, const char *node, int *rc)
{
    json_t *j = json_loads(doc, 0, NULL);
    assert_non_null(j);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    *rc = proxy_status_print(j, node, f);
    fclose(f);
    json_decref(j);
    return text;
}

static void test_proxy_status_table_has_a_state_per_proxy_and_type(void **state)
{
    (void)state;
    int rc;
    char *t = print(SYNCZ, NULL, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(t, "NAME"));
    assert_non_null(strstr(t, "CDS         LDS         EDS         RDS         SDS"));
    /* web-1: SYNCED NACKED STALE, and nothing of RDS or SDS sent */
    const char *row = strstr(t, "web-1.shop");
    assert_non_null(row);
    assert_non_null(strstr(row, "SYNCED      NACKED      STALE       NOT SENT    NOT SENT"));
    assert_non_null(strstr(t, "cart-7f9c.shop"));
    assert_non_null(strstr(t, "web-1.shop LDS NACKed: lds['virtualInbound']: port in use"));
    free(t);
}

static void test_proxy_status_one_node_shows_versions(void **state)
{
    (void)state;
    int rc;
    char *t = print(SYNCZ, "web-1.shop", &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(t, "NAME:     web-1.shop"));
    assert_non_null(strstr(t, "STREAM:   sotw"));
    const char *eds = strstr(t, "\nEDS");
    assert_non_null(eds);
    assert_non_null(strstr(eds, "STALE"));
    assert_non_null(strstr(eds, " 9 "));
    free(t);
}

static void test_proxy_status_unknown_node_is_one(void **state)
{
    (void)state;
    int rc;
    char *t = print(SYNCZ, "gone.shop", &rc);
    assert_int_equal(rc, 1);
    free(t);
}

static void test_proxy_status_wrong_shape_is_an_error(void **state)
{
    (void)state;
    int rc;
    char *t = print("{\"listeners\": []}", NULL, &rc);
    assert_int_equal(rc, -1);
    free(t);
}

static void test_proxy_status_unreachable_control_plane_exits_one(void **state)
{
    (void)state;
    /* Port 1 on loopback: nothing listens there. */
    char *argv[] = {"proxy-status", "--cp-admin", "127.0.0.1:1", NULL};
    assert_int_equal(proxy_status_main(3, argv), 1);
    char *bad[] = {"proxy-status", "--bogus", NULL};
    assert_int_equal(proxy_status_main(2, bad), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_status_table_has_a_state_per_proxy_and_type),
        cmocka_unit_test(test_proxy_status_one_node_shows_versions),
        cmocka_unit_test(test_proxy_status_unknown_node_is_one),
        cmocka_unit_test(test_proxy_status_wrong_shape_is_an_error),
        cmocka_unit_test(test_proxy_status_unreachable_control_plane_exits_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
