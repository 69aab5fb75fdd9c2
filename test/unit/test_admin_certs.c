/* Admin certificate pages on a hand-built snapshot whose TLS contexts hold engine configs made
 * from test/data/certs: contexts sharing an engine are listed once, listener chains (default
 * chain included) come before clusters, details are Envoy's shape, days never go negative,
 * identities are one per SPIFFE ID, and the expiry gauges take the earliest certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "certs/tls.h"
#include "proxy/admin/admin_certs.h"
#include "proxy/server/server.h"

#define CERTS "test/data/certs/"
/* notAfter of every long-lived fixture: 2126-11-01T10:15:09Z (see test/data/certs/gen.sh). */
#define FIXTURE_NOT_AFTER 4949201709LL
#define DAY               86400

/* A snapshot with one listener (one chain plus a default chain) and three clusters, whose
 * contexts the tests point wherever they like. Engines are owned here. */
typedef struct fixture {
    snapshot_t snap;
    snap_listener_t listener;
    snap_chain_t chains[2]; /* [1] is the default chain */
    snap_cluster_t clusters[3];
    tls_context_config_t server, client, client_again, anon;
} fixture_t;

static tls_config_t *engine(tls_role_t role, const char *cert, const char *key, const char *ca)
{
    tls_config_opts_t o = {
        .role = role,
        .cert_chain = {NULL, 0, cert},
        .private_key = {NULL, 0, key},
        .trust_bundle = {NULL, 0, ca},
    };
    char err[512];
    tls_config_t *c = NULL;
    if (tls_config_new(&o, &c, err, sizeof(err)) != 0)
        fail_msg("config refused: %s", err);
    return c;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->server = (tls_context_config_t){
        .role = TLS_CONFIG_SERVER,
        .cert_chain = {.filename = CERTS "server.pem"},
        .trusted_ca = {.filename = CERTS "root-a.pem"},
        .engine =
            engine(TLS_ROLE_SERVER, CERTS "server.pem", CERTS "server.key", CERTS "root-a.pem"),
    };
    f->client = (tls_context_config_t){
        .role = TLS_CONFIG_CLIENT,
        .cert_chain = {.filename = NULL}, /* as if inline */
        .trusted_ca = {.filename = CERTS "root-a.pem"},
        .engine =
            engine(TLS_ROLE_CLIENT, CERTS "client.pem", CERTS "client.key", CERTS "root-a.pem"),
    };
    f->client_again = f->client;
    f->client_again.engine = tls_config_ref(f->client.engine);
    f->anon = (tls_context_config_t){
        .role = TLS_CONFIG_CLIENT,
        .trusted_ca = {.filename = CERTS "root-b.pem"},
        .engine = engine(TLS_ROLE_CLIENT, NULL, NULL, CERTS "root-b.pem"),
    };
    f->listener.chains = f->chains;
    f->listener.n_chains = 1;
    f->listener.default_chain = &f->chains[1];
    f->snap.listeners = &f->listener;
    f->snap.n_listeners = 1;
    f->snap.clusters = f->clusters;
    f->snap.n_clusters = 3;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tls_config_unref(f->server.engine);
    tls_config_unref(f->client.engine);
    tls_config_unref(f->client_again.engine);
    tls_config_unref(f->anon.engine);
    free(f);
    return 0;
}

/* certificates[i].<which>[j].<field> as a string ("" when absent). */
static const char *detail(json_t *certs, size_t i, const char *which, size_t j, const char *field)
{
    json_t *e = json_array_get(json_object_get(certs, "certificates"), i);
    json_t *v = json_object_get(json_array_get(json_object_get(e, which), j), field);
    return json_is_string(v) ? json_string_value(v) : "";
}

static size_t count(json_t *certs, size_t i, const char *which)
{
    json_t *e = json_array_get(json_object_get(certs, "certificates"), i);
    return json_array_size(json_object_get(e, which));
}

static void test_certs_list_a_shared_engine_once_and_chains_before_clusters(void **state)
{
    fixture_t *f = *state;
    f->clusters[0].tls = &f->client;
    f->clusters[1].tls = &f->client_again; /* another context, the same engine config */
    f->clusters[2].tls = &f->anon;
    f->chains[1].tls = &f->server; /* the default chain */
    json_t *certs = admin_certs_json(&f->snap, FIXTURE_NOT_AFTER - 30 * DAY);
    assert_non_null(certs);
    assert_int_equal(json_array_size(json_object_get(certs, "certificates")), 3);
    assert_string_equal(detail(certs, 0, "cert_chain", 0, "serial_number"), "c0f0d11de28a61fe");
    assert_string_equal(detail(certs, 1, "cert_chain", 0, "serial_number"), "5a57be6461d99e06");
    assert_int_equal(count(certs, 2, "cert_chain"), 0);
    assert_string_equal(detail(certs, 2, "ca_cert", 0, "path"), CERTS "root-b.pem");
    json_decref(certs);
}

static void test_certs_details_have_envoys_fields_and_formats(void **state)
{
    fixture_t *f = *state;
    f->chains[0].tls = &f->server;
    f->clusters[0].tls = &f->client;
    /* One second short of ten days: whole days round down. */
    json_t *certs = admin_certs_json(&f->snap, FIXTURE_NOT_AFTER - 10 * DAY + 1);
    assert_non_null(certs);
    assert_string_equal(detail(certs, 0, "cert_chain", 0, "path"), CERTS "server.pem");
    assert_string_equal(detail(certs, 0, "cert_chain", 0, "days_until_expiration"), "9");
    assert_string_equal(detail(certs, 0, "cert_chain", 0, "expiration_time"),
                        "2126-11-01T10:15:09Z");
    json_t *e = json_array_get(json_object_get(certs, "certificates"), 0);
    json_t *sans =
        json_object_get(json_array_get(json_object_get(e, "cert_chain"), 0), "subject_alt_names");
    char *text = json_dumps(sans, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(text, "[{\"uri\":\"spiffe://cluster.local/ns/default/sa/server\"},"
                              "{\"dns\":\"server.default.svc.cluster.local\"}]");
    free(text);
    assert_string_equal(detail(certs, 0, "ca_cert", 0, "path"), CERTS "root-a.pem");
    assert_string_equal(detail(certs, 1, "cert_chain", 0, "path"), "<inline>");
    json_decref(certs);
}

static void test_certs_days_are_zero_once_expired(void **state)
{
    fixture_t *f = *state;
    f->chains[0].tls = &f->server;
    json_t *certs = admin_certs_json(&f->snap, FIXTURE_NOT_AFTER + 5 * DAY);
    assert_non_null(certs);
    assert_string_equal(detail(certs, 0, "cert_chain", 0, "days_until_expiration"), "0");
    assert_string_equal(detail(certs, 0, "ca_cert", 0, "days_until_expiration"), "0");
    json_decref(certs);
}

static void test_identities_are_one_per_spiffe_id_in_config_order(void **state)
{
    fixture_t *f = *state;
    f->chains[0].tls = &f->server;
    f->clusters[0].tls = &f->anon; /* presents no certificate: no identity */
    f->clusters[1].tls = &f->client;
    f->clusters[2].tls = &f->client_again;
    json_t *ids = admin_certs_identities_json(&f->snap);
    assert_non_null(ids);
    assert_int_equal(json_array_size(ids), 2);
    json_t *first = json_array_get(ids, 0), *second = json_array_get(ids, 1);
    assert_string_equal(json_string_value(json_object_get(first, "spiffe_id")),
                        "spiffe://cluster.local/ns/default/sa/server");
    assert_string_equal(json_string_value(json_object_get(first, "not_after")),
                        "2126-11-01T10:15:09Z");
    assert_string_equal(json_string_value(json_object_get(first, "serial_number")),
                        "c0f0d11de28a61fe");
    assert_string_equal(json_string_value(json_object_get(second, "spiffe_id")),
                        "spiffe://cluster.local/ns/default/sa/client");
    json_decref(ids);
}

static void test_identities_are_empty_without_certificates(void **state)
{
    fixture_t *f = *state;
    f->clusters[0].tls = &f->anon;
    json_t *ids = admin_certs_identities_json(&f->snap);
    assert_non_null(ids);
    assert_int_equal(json_array_size(ids), 0);
    json_decref(ids);
}

static int64_t gauge(const server_t *s, const char *metric)
{
    int64_t id = stats_define(s->stats, STAT_GAUGE, "server", NULL, NULL, metric);
    assert_true(id >= 0);
    return stats_value(s->stats, (stat_id_t)id);
}

static void test_gauges_take_the_first_expiry_and_envoys_defaults(void **state)
{
    fixture_t *f = *state;
    server_t s = {.snap = &f->snap};
    s.stats = stats_store_new(1);
    assert_non_null(s.stats);
    s.main_slots = stats_slots(s.stats, 0);
    host_t host = server_host(&s);

    assert_int_equal(admin_certs_update_gauges(&host, FIXTURE_NOT_AFTER - 100 * DAY), 0);
    assert_int_equal(gauge(&s, "days_until_first_cert_expiring"), UINT32_MAX);
    assert_int_equal(gauge(&s, "cert_expiration_timestamp_seconds"), 0);

    f->chains[0].tls = &f->server;
    f->clusters[0].tls = &f->anon;
    assert_int_equal(admin_certs_update_gauges(&host, FIXTURE_NOT_AFTER - 3 * DAY), 0);
    assert_int_equal(gauge(&s, "days_until_first_cert_expiring"), 3);
    assert_int_equal(gauge(&s, "cert_expiration_timestamp_seconds"), FIXTURE_NOT_AFTER);

    assert_int_equal(admin_certs_update_gauges(&host, FIXTURE_NOT_AFTER + 3 * DAY), 0);
    assert_int_equal(gauge(&s, "days_until_first_cert_expiring"), 0);
    stats_store_free(s.stats);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_certs_list_a_shared_engine_once_and_chains_before_clusters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certs_details_have_envoys_fields_and_formats, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_certs_days_are_zero_once_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identities_are_one_per_spiffe_id_in_config_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_identities_are_empty_without_certificates, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gauges_take_the_first_expiry_and_envoys_defaults,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
