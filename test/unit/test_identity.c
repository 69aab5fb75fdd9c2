/* Identity: SAN matchers compare the way Envoy's do (URI exact and prefix byte for byte, DNS
 * without case and with single-label wildcards), certificate facts read from the fixtures in
 * test/data/certs are exact, and calendar conversion agrees with known instants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "certs/identity.h"

#define CERTS "test/data/certs/"

static char *slurp(const char *name, size_t *len)
{
    char path[128];
    snprintf(path, sizeof(path), CERTS "%s", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(64 * 1024);
    assert_non_null(buf);
    *len = fread(buf, 1, 64 * 1024, f);
    fclose(f);
    return buf;
}

static void info_of(const char *name, int64_t now, identity_cert_info_t *info)
{
    size_t len;
    char *pem = slurp(name, &len);
    char err[256];
    int rc = identity_cert_info_parse(pem, len, now, info, err, sizeof(err));
    free(pem);
    if (rc != 0)
        fail_msg("%s: %s", name, err);
}

static bool san_matches(identity_san_type_t mt, identity_match_kind_t kind, const char *want,
                        identity_san_type_t st, const char *san)
{
    identity_matcher_t m = {mt, kind, want};
    return identity_san_matches(&m, st, san, strlen(san));
}

static void test_identity_uri_exact_and_prefix_compare_bytes(void **state)
{
    (void)state;
    const char *id = "spiffe://cluster.local/ns/default/sa/client";
    assert_true(san_matches(IDENTITY_SAN_URI, IDENTITY_MATCH_EXACT, id, IDENTITY_SAN_URI, id));
    assert_false(san_matches(IDENTITY_SAN_URI, IDENTITY_MATCH_EXACT, id, IDENTITY_SAN_URI,
                             "spiffe://cluster.local/ns/default/sa/client2"));
    assert_false(san_matches(IDENTITY_SAN_URI, IDENTITY_MATCH_EXACT,
                             "SPIFFE://cluster.local/ns/default/sa/client", IDENTITY_SAN_URI, id));
    assert_true(san_matches(IDENTITY_SAN_URI, IDENTITY_MATCH_PREFIX, "spiffe://cluster.local/ns/",
                            IDENTITY_SAN_URI, id));
    assert_false(san_matches(IDENTITY_SAN_URI, IDENTITY_MATCH_PREFIX, "spiffe://other.local/",
                             IDENTITY_SAN_URI, id));
    /* A URI matcher never looks at DNS SANs. */
    assert_false(
        san_matches(IDENTITY_SAN_URI, IDENTITY_MATCH_EXACT, "a.b", IDENTITY_SAN_DNS, "a.b"));
}

static void test_identity_dns_ignores_case_and_honours_one_label_wildcards(void **state)
{
    (void)state;
    assert_true(san_matches(IDENTITY_SAN_DNS, IDENTITY_MATCH_EXACT, "Web.NS.svc", IDENTITY_SAN_DNS,
                            "web.ns.svc"));
    assert_true(san_matches(IDENTITY_SAN_DNS, IDENTITY_MATCH_EXACT, "web.ns.svc", IDENTITY_SAN_DNS,
                            "*.ns.svc"));
    assert_false(san_matches(IDENTITY_SAN_DNS, IDENTITY_MATCH_EXACT, "a.web.ns.svc",
                             IDENTITY_SAN_DNS, "*.ns.svc"));
    assert_false(san_matches(IDENTITY_SAN_DNS, IDENTITY_MATCH_EXACT, "ns.svc", IDENTITY_SAN_DNS,
                             "*.ns.svc"));
    assert_true(san_matches(IDENTITY_SAN_DNS, IDENTITY_MATCH_PREFIX, "WEB.", IDENTITY_SAN_DNS,
                            "web.ns.svc"));
}

static void test_identity_any_matcher_looks_at_every_san_type(void **state)
{
    (void)state;
    assert_true(san_matches(IDENTITY_SAN_ANY, IDENTITY_MATCH_EXACT, "web.ns.svc", IDENTITY_SAN_DNS,
                            "*.ns.svc"));
    assert_true(san_matches(IDENTITY_SAN_ANY, IDENTITY_MATCH_PREFIX, "spiffe://", IDENTITY_SAN_URI,
                            "spiffe://cluster.local/ns/a/sa/b"));
}

static void test_identity_cert_info_reads_sans_and_spiffe_id(void **state)
{
    (void)state;
    identity_cert_info_t info;
    info_of("server.pem", 0, &info);
    assert_int_equal(info.n_sans, 2);
    assert_int_equal(info.sans[0].type, IDENTITY_SAN_URI);
    assert_string_equal(info.sans[0].value, "spiffe://cluster.local/ns/default/sa/server");
    assert_int_equal(info.sans[1].type, IDENTITY_SAN_DNS);
    assert_string_equal(info.sans[1].value, "server.default.svc.cluster.local");
    assert_ptr_equal(info.spiffe_id, info.sans[0].value);
    assert_string_equal(info.subject, "O=remora test, CN=server");
    assert_string_equal(info.issuer, "O=cluster.local, CN=cluster.local root");
    /* 100 years from generation. */
    assert_in_range(info.not_after - info.not_before, 36500LL * 86400 - 1, 36500LL * 86400 + 1);
    identity_cert_info_free(&info);
    assert_null(info.sans);
}

static void test_identity_cert_info_has_exact_dates_and_negative_days_when_expired(void **state)
{
    (void)state;
    identity_cert_info_t info;
    int64_t now = 1000000000; /* 2001-09-09 */
    info_of("expired.pem", now, &info);
    assert_int_equal(info.not_before, 946684800); /* 2000-01-01 00:00:00 UTC */
    assert_int_equal(info.not_after, 978307200);  /* 2001-01-01 00:00:00 UTC */
    assert_int_equal(info.days_until_expiry, -252);
    assert_string_equal(info.spiffe_id, "spiffe://cluster.local/ns/default/sa/expired");
    /* Serial: lowercase hex, no separators, no leading zero byte. */
    size_t n = strlen(info.serial);
    assert_true(n >= 2 && n % 2 == 0);
    assert_int_equal(strspn(info.serial, "0123456789abcdef"), n);
    assert_false(info.serial[0] == '0' && info.serial[1] == '0');
    identity_cert_info_free(&info);

    info_of("expired.pem", 978307200 - 86400 - 1, &info);
    assert_int_equal(info.days_until_expiry, 1);
    identity_cert_info_free(&info);
}

static void test_identity_cert_info_refuses_what_is_not_a_certificate(void **state)
{
    (void)state;
    identity_cert_info_t info;
    char err[256];
    const char junk[] = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
    assert_int_equal(identity_cert_info_parse(junk, sizeof(junk) - 1, 0, &info, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "no certificate could be parsed"));
    assert_int_equal(
        identity_cert_info_parse("\x30\x03\x02\x01\x01", 5, 0, &info, err, sizeof(err)), -EINVAL);
}

static void test_identity_utc_seconds_match_known_instants(void **state)
{
    (void)state;
    assert_int_equal(identity_utc_seconds(1970, 1, 1, 0, 0, 0), 0);
    assert_int_equal(identity_utc_seconds(1999, 12, 31, 23, 59, 59), 946684799);
    assert_int_equal(identity_utc_seconds(2000, 3, 1, 0, 0, 0), 951868800);  /* leap century */
    assert_int_equal(identity_utc_seconds(2100, 3, 1, 0, 0, 0), 4107542400); /* not leap */
    assert_int_equal(identity_utc_seconds(2400, 2, 29, 12, 0, 0), 13574606400);
    assert_int_equal(identity_utc_seconds(1950, 1, 1, 0, 0, 0), -631152000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_uri_exact_and_prefix_compare_bytes),
        cmocka_unit_test(test_identity_dns_ignores_case_and_honours_one_label_wildcards),
        cmocka_unit_test(test_identity_any_matcher_looks_at_every_san_type),
        cmocka_unit_test(test_identity_cert_info_reads_sans_and_spiffe_id),
        cmocka_unit_test(test_identity_cert_info_has_exact_dates_and_negative_days_when_expired),
        cmocka_unit_test(test_identity_cert_info_refuses_what_is_not_a_certificate),
        cmocka_unit_test(test_identity_utc_seconds_match_known_instants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
