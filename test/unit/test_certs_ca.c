/* test_certs_ca.c — the CA behind `remoractl certs`: SPIFFE ID syntax, root → intermediate →
 * workload chains checked with mbedTLS's own verifier, what a workload certificate carries,
 * validity and clamping, issuer checks, and the files and modes written. No network. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>

#include "certs/ca.h"

#define URI_SAN_TAG (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 6)

/* An Ed25519 key: valid PEM, but not a key type mbedTLS 2.28 (or the CA) signs with. */
static const char ED25519_KEY[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIDowJ4V5MprrSNJWFGftgkKjv8UhRLe03WYxY/A9WwyS\n"
    "-----END PRIVATE KEY-----\n";

static char err[1024];

/* ---- helpers -------------------------------------------------------------------------------- */

static ca_issued_t make_root_with(const ca_opts_t *o)
{
    ca_issued_t r;
    int rc = ca_make_root(o, &r, err, sizeof(err));
    if (rc != 0)
        fail_msg("ca_make_root: %d %s", rc, err);
    return r;
}

static ca_issued_t make_root(void)
{
    return make_root_with(NULL);
}

/* The issuer for a root (chain and root NULL) or an intermediate made by the CA. */
static ca_issuer_t *issuer_of(const ca_issued_t *ca)
{
    ca_issuer_src_t src = {
        .cert_pem = ca->cert_pem,
        .key_pem = ca->key_pem,
        .chain_pem = ca->chain_pem,
        .root_pem = ca->chain_pem ? ca->root_pem : NULL,
    };
    ca_issuer_t *is = NULL;
    int rc = ca_issuer_load(&src, &is, err, sizeof(err));
    if (rc != 0)
        fail_msg("ca_issuer_load: %d %s", rc, err);
    return is;
}

static ca_issued_t make_intermediate(const ca_issued_t *parent, const ca_opts_t *o)
{
    ca_issued_t r;
    ca_issuer_t *is = issuer_of(parent);
    int rc = ca_make_intermediate(is, o, &r, err, sizeof(err));
    ca_issuer_free(is);
    if (rc != 0)
        fail_msg("ca_make_intermediate: %d %s", rc, err);
    return r;
}

static ca_issued_t issue(const ca_issued_t *ca, const char *id, const ca_opts_t *o)
{
    ca_issued_t r;
    ca_issuer_t *is = issuer_of(ca);
    int rc = ca_issue_workload(is, id, o, &r, err, sizeof(err));
    ca_issuer_free(is);
    if (rc != 0)
        fail_msg("ca_issue_workload: %d %s", rc, err);
    return r;
}

static void parse_pem(mbedtls_x509_crt *crt, const char *pem)
{
    mbedtls_x509_crt_init(crt);
    assert_int_equal(mbedtls_x509_crt_parse(crt, (const unsigned char *)pem, strlen(pem) + 1), 0);
}

/* Verifies the chain (leaf first) against root with mbedTLS; returns the verify flags. */
static uint32_t verify_chain(const char *chain_pem, const char *root_pem)
{
    mbedtls_x509_crt chain, root;
    uint32_t flags = 0;
    parse_pem(&chain, chain_pem);
    parse_pem(&root, root_pem);
    mbedtls_x509_crt_verify(&chain, &root, NULL, NULL, &flags, NULL, NULL);
    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&root);
    return flags;
}

static int64_t crt_time(const mbedtls_x509_time *t)
{
    struct tm tm = {.tm_year = t->year - 1900,
                    .tm_mon = t->mon - 1,
                    .tm_mday = t->day,
                    .tm_hour = t->hour,
                    .tm_min = t->min,
                    .tm_sec = t->sec};
    return (int64_t)timegm(&tm);
}

static mode_t file_mode(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (stat(path, &st) != 0)
        fail_msg("stat %s failed", path);
    return st.st_mode & 07777;
}

static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/remora-test-ca.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void remove_tree(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- SPIFFE IDs ----------------------------------------------------------------------------- */

static void test_spiffe_id_accepts_well_formed_ids(void **state)
{
    (void)state;
    static const char *good[] = {
        "spiffe://cluster.local/ns/default/sa/web",
        "spiffe://example.org",
        "spiffe://example.org/a",
        "spiffe://td-1_x.example/Path.With-Mixed_Case/9",
        "spiffe://a/b/c/d/e/f/g",
        "spiffe://example.org/...",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int rc = ca_validate_spiffe_id(good[i], err, sizeof(err));
        if (rc != 0)
            fail_msg("\"%s\" refused: %s", good[i], err);
    }
}

static void test_spiffe_id_rejects_malformed_ids_with_the_reason(void **state)
{
    (void)state;
    static const struct {
        const char *id, *reason;
    } bad[] = {
        {"", "empty"},
        {"http://example.org/x", "does not start with \"spiffe://\""},
        {"SPIFFE://example.org/x", "lowercase \"spiffe://\""},
        {"spiffe:/example.org/x", "does not start with"},
        {"spiffe://", "trust domain is empty"},
        {"spiffe:///ns/x", "trust domain is empty"},
        {"spiffe://Example.org/x", "uppercase 'E'"},
        {"spiffe://example.org:8443/x", "port"},
        {"spiffe://user@example.org/x", "user info"},
        {"spiffe://exa mple.org/x", "byte 0x20 at offset 12"},
        {"spiffe://example.org/", "ends with '/'"},
        {"spiffe://example.org/a/", "ends with '/'"},
        {"spiffe://example.org//a", "empty path segment"},
        {"spiffe://example.org/a/./b", "\".\""},
        {"spiffe://example.org/a/..", "\"..\""},
        {"spiffe://example.org/a?b=c", "query"},
        {"spiffe://example.org?x", "query"},
        {"spiffe://example.org/a#frag", "fragment"},
        {"spiffe://example.org/a%20b", "percent-encoding"},
        {"spiffe://example.org/a b", "path has byte 0x20"},
        {"spiffe://example.org/a\\b", "path has '\\'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = ca_validate_spiffe_id(bad[i].id, err, sizeof(err));
        if (rc != CA_ERR_BAD_SPIFFE_ID)
            fail_msg("\"%s\" accepted (rc %d)", bad[i].id, rc);
        if (!strstr(err, bad[i].reason))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", bad[i].id, err, bad[i].reason);
    }
}

static void test_spiffe_id_longer_than_2048_bytes_is_rejected(void **state)
{
    (void)state;
    char id[CA_SPIFFE_ID_MAX + 2];
    size_t n = (size_t)snprintf(id, sizeof(id), "spiffe://example.org/");
    memset(id + n, 'a', sizeof(id) - 1 - n);
    id[sizeof(id) - 1] = '\0';
    assert_int_equal(ca_validate_spiffe_id(id, err, sizeof(err)), CA_ERR_BAD_SPIFFE_ID);
    assert_non_null(strstr(err, "2048"));
    id[CA_SPIFFE_ID_MAX] = '\0'; /* exactly 2048 bytes is fine */
    assert_int_equal(ca_validate_spiffe_id(id, err, sizeof(err)), 0);
}

static void test_spiffe_id_built_from_namespace_and_service_account(void **state)
{
    (void)state;
    char id[CA_SPIFFE_ID_MAX + 1];
    assert_int_equal(
        ca_spiffe_id_build("cluster.local", "prod", "web-v2", id, sizeof(id), err, sizeof(err)), 0);
    assert_string_equal(id, "spiffe://cluster.local/ns/prod/sa/web-v2");
    assert_int_equal(
        ca_spiffe_id_build("cluster.local", "a/b", "web", id, sizeof(id), err, sizeof(err)),
        CA_ERR_BAD_SPIFFE_ID);
    assert_non_null(strstr(err, "contains '/'"));
    assert_int_equal(
        ca_spiffe_id_build("Cluster.local", "ns", "web", id, sizeof(id), err, sizeof(err)),
        CA_ERR_BAD_SPIFFE_ID);
}

/* ---- chains --------------------------------------------------------------------------------- */

static void test_root_intermediate_leaf_chain_verifies(void **state)
{
    (void)state;
    ca_issued_t root = make_root();
    ca_issued_t inter = make_intermediate(&root, NULL);
    ca_issued_t leaf = issue(&inter, "spiffe://cluster.local/ns/default/sa/web", NULL);

    assert_int_equal(verify_chain(inter.chain_pem, root.root_pem), 0);
    assert_int_equal(verify_chain(leaf.chain_pem, leaf.root_pem), 0);
    assert_string_equal(leaf.root_pem, root.cert_pem);

    /* The leaf's chain is the leaf then the intermediate, never the root. */
    mbedtls_x509_crt chain;
    parse_pem(&chain, leaf.chain_pem);
    assert_non_null(chain.next);
    assert_null(chain.next->next);
    assert_false(chain.ca_istrue);
    assert_true(chain.next->ca_istrue);
    mbedtls_x509_crt_free(&chain);

    /* A chain does not verify against another root. */
    ca_issued_t other = make_root();
    assert_int_not_equal(verify_chain(leaf.chain_pem, other.root_pem), 0);

    ca_issued_free(&other);
    ca_issued_free(&leaf);
    ca_issued_free(&inter);
    ca_issued_free(&root);
}

static void test_leaf_carries_the_spiffe_id_as_its_only_uri_san(void **state)
{
    (void)state;
    const char *id = "spiffe://cluster.local/ns/payments/sa/api";
    ca_issued_t root = make_root();
    ca_issued_t leaf = issue(&root, id, NULL);
    mbedtls_x509_crt crt;
    size_t uris = 0;

    parse_pem(&crt, leaf.cert_pem);
    for (const mbedtls_x509_sequence *s = &crt.subject_alt_names; s && s->buf.p; s = s->next) {
        assert_int_equal(s->buf.tag, URI_SAN_TAG);
        assert_int_equal(s->buf.len, strlen(id));
        assert_memory_equal(s->buf.p, id, strlen(id));
        uris++;
    }
    assert_int_equal(uris, 1);
    assert_int_equal(crt.subject_raw.len, 2); /* an empty SEQUENCE: the subject is empty */
    mbedtls_x509_crt_free(&crt);
    ca_issued_free(&leaf);
    ca_issued_free(&root);
}

static void test_leaf_is_no_ca_and_serves_both_ends_of_mtls(void **state)
{
    (void)state;
    ca_issued_t root = make_root();
    ca_issued_t leaf = issue(&root, "spiffe://cluster.local/ns/default/sa/web", NULL);
    mbedtls_x509_crt crt;

    parse_pem(&crt, leaf.cert_pem);
    assert_false(crt.ca_istrue);
    assert_int_equal(crt.version, 3);
    assert_int_equal(mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE |
                                                                MBEDTLS_X509_KU_KEY_ENCIPHERMENT),
                     0);
    assert_int_not_equal(mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_KEY_CERT_SIGN), 0);
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(
                         &crt, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
                     0);
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(
                         &crt, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
                     0);
    assert_int_equal(mbedtls_pk_get_type(&crt.pk), MBEDTLS_PK_ECKEY);
    /* A positive serial of at most 128 bits (17 DER bytes with a sign byte). */
    assert_true(crt.serial.len >= 1 && crt.serial.len <= 17);
    assert_true((crt.serial.p[0] & 0x80) == 0);
    mbedtls_x509_crt_free(&crt);
    ca_issued_free(&leaf);
    ca_issued_free(&root);
}

static void test_root_is_a_self_signed_ca_for_ten_years(void **state)
{
    (void)state;
    ca_opts_t o;
    ca_opts_default(&o);
    o.org = "Acme, Inc.";
    ca_issued_t root = make_root_with(&o);
    mbedtls_x509_crt crt;
    char dn[256];
    int64_t now = (int64_t)time(NULL);

    parse_pem(&crt, root.cert_pem);
    assert_true(crt.ca_istrue);
    assert_int_equal(crt.max_pathlen, 0); /* no path length limit */
    assert_int_equal(mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_KEY_CERT_SIGN |
                                                                MBEDTLS_X509_KU_CRL_SIGN),
                     0);
    assert_true(mbedtls_x509_dn_gets(dn, sizeof(dn), &crt.subject) > 0);
    assert_non_null(strstr(dn, "CN=Root CA"));
    assert_non_null(strstr(dn, "Acme"));
    assert_int_equal(crt.issuer_raw.len, crt.subject_raw.len);
    assert_memory_equal(crt.issuer_raw.p, crt.subject_raw.p, crt.subject_raw.len);
    int64_t life = crt_time(&crt.valid_to) - now;
    assert_true(life > CA_ROOT_TTL_S - 60 && life <= CA_ROOT_TTL_S + 5);
    assert_null(root.chain_pem);
    assert_int_equal(verify_chain(root.cert_pem, root.root_pem), 0);
    mbedtls_x509_crt_free(&crt);
    ca_issued_free(&root);
}

static void test_rsa_root_signs_a_chain_that_verifies(void **state)
{
    (void)state;
    ca_opts_t o;
    ca_opts_default(&o);
    o.key_type = CA_KEY_RSA_2048;
    ca_issued_t root = make_root_with(&o);
    ca_issued_t leaf = issue(&root, "spiffe://cluster.local/ns/default/sa/web", NULL);
    mbedtls_x509_crt crt;

    parse_pem(&crt, root.cert_pem);
    assert_int_equal(mbedtls_pk_get_type(&crt.pk), MBEDTLS_PK_RSA);
    assert_int_equal(mbedtls_pk_get_bitlen(&crt.pk), 2048);
    mbedtls_x509_crt_free(&crt);
    assert_non_null(strstr(root.key_pem, "BEGIN RSA PRIVATE KEY"));
    assert_int_equal(verify_chain(leaf.chain_pem, root.root_pem), 0);
    ca_issued_free(&leaf);
    ca_issued_free(&root);
}

/* ---- validity ------------------------------------------------------------------------------- */

static void test_leaf_is_backdated_a_minute_and_lives_its_ttl(void **state)
{
    (void)state;
    ca_opts_t o;
    ca_opts_default(&o);
    o.ttl_s = 90;
    int64_t before = (int64_t)time(NULL);
    ca_issued_t root = make_root();
    ca_issued_t leaf = issue(&root, "spiffe://cluster.local/ns/default/sa/web", &o);
    int64_t after = (int64_t)time(NULL);
    mbedtls_x509_crt crt;

    parse_pem(&crt, leaf.cert_pem);
    int64_t nb = crt_time(&crt.valid_from), na = crt_time(&crt.valid_to);
    assert_true(nb >= before - CA_BACKDATE_S - 1 && nb <= after - CA_BACKDATE_S);
    assert_true(na >= before + 90 && na <= after + 90);
    assert_int_equal(nb, leaf.not_before);
    assert_int_equal(na, leaf.not_after);
    assert_false(leaf.clamped);
    mbedtls_x509_crt_free(&crt);
    ca_issued_free(&leaf);
    ca_issued_free(&root);
}

static void test_issue_clamps_not_after_to_the_issuer_expiry(void **state)
{
    (void)state;
    int64_t now = (int64_t)time(NULL);
    ca_opts_t o;
    ca_opts_default(&o);
    o.not_before = now - 3600;
    o.not_after = now + 600;
    ca_issued_t root = make_root_with(&o);
    ca_issued_t inter = make_intermediate(&root, NULL);
    ca_issued_t leaf = issue(&inter, "spiffe://cluster.local/ns/default/sa/web", NULL);

    assert_true(inter.clamped);
    assert_int_equal(inter.not_after, now + 600);
    assert_true(leaf.clamped);
    assert_int_equal(leaf.not_after, now + 600);
    assert_int_equal(verify_chain(leaf.chain_pem, root.root_pem), 0);
    ca_issued_free(&leaf);
    ca_issued_free(&inter);
    ca_issued_free(&root);
}

static void test_issue_refuses_expired_issuer(void **state)
{
    (void)state;
    int64_t now = (int64_t)time(NULL);
    ca_opts_t o;
    ca_opts_default(&o);
    o.not_before = now - 2 * 86400;
    o.not_after = now - 86400;
    ca_issued_t root = make_root_with(&o);
    ca_issuer_t *is = issuer_of(&root); /* loading is fine: validity is checked when signing */
    ca_issued_t out;

    assert_int_equal(
        ca_issue_workload(is, "spiffe://cluster.local/ns/a/sa/b", NULL, &out, err, sizeof(err)),
        CA_ERR_ISSUER_EXPIRED);
    assert_non_null(strstr(err, "expired at"));
    assert_null(out.cert_pem);
    assert_int_equal(ca_make_intermediate(is, NULL, &out, err, sizeof(err)), CA_ERR_ISSUER_EXPIRED);
    ca_issuer_free(is);
    ca_issued_free(&root);
}

static void test_issue_refuses_issuer_not_valid_yet(void **state)
{
    (void)state;
    int64_t now = (int64_t)time(NULL);
    ca_opts_t o;
    ca_opts_default(&o);
    o.not_before = now + 86400;
    o.not_after = now + 2 * 86400;
    ca_issued_t root = make_root_with(&o);
    ca_issuer_t *is = issuer_of(&root);
    ca_issued_t out;

    assert_int_equal(
        ca_issue_workload(is, "spiffe://cluster.local/ns/a/sa/b", NULL, &out, err, sizeof(err)),
        CA_ERR_ISSUER_NOT_YET_VALID);
    assert_non_null(strstr(err, "not valid until"));
    ca_issuer_free(is);
    ca_issued_free(&root);
}

static void test_issue_refuses_expired_intermediate_and_names_it(void **state)
{
    (void)state;
    int64_t now = (int64_t)time(NULL);
    ca_opts_t o;
    ca_opts_default(&o);
    o.not_before = now - 2 * 86400;
    o.not_after = now - 86400;
    ca_issued_t root = make_root();
    ca_issued_t inter = make_intermediate(&root, &o); /* the override is taken verbatim */
    ca_issuer_src_t src = {.cert_pem = inter.cert_pem,
                           .cert_name = "int/ca-cert.pem",
                           .key_pem = inter.key_pem,
                           .chain_pem = inter.chain_pem,
                           .root_pem = inter.root_pem};
    ca_issuer_t *is = NULL;
    ca_issued_t out;

    assert_int_equal(ca_issuer_load(&src, &is, err, sizeof(err)), 0);
    assert_int_equal(
        ca_issue_workload(is, "spiffe://cluster.local/ns/a/sa/b", NULL, &out, err, sizeof(err)),
        CA_ERR_ISSUER_EXPIRED);
    assert_non_null(strstr(err, "int/ca-cert.pem expired at"));
    ca_issuer_free(is);
    ca_issued_free(&inter);
    ca_issued_free(&root);
}

/* ---- issuer checks -------------------------------------------------------------------------- */

static void test_issuer_load_refuses_the_key_of_another_ca(void **state)
{
    (void)state;
    ca_issued_t a = make_root(), b = make_root();
    ca_issuer_src_t src = {.cert_pem = a.cert_pem, .key_pem = b.key_pem, .key_name = "b-key.pem"};
    ca_issuer_t *is = NULL;

    assert_int_equal(ca_issuer_load(&src, &is, err, sizeof(err)), CA_ERR_KEY_MISMATCH);
    assert_null(is);
    assert_non_null(strstr(err, "b-key.pem does not match"));
    ca_issued_free(&a);
    ca_issued_free(&b);
}

static void test_issuer_load_refuses_a_workload_certificate(void **state)
{
    (void)state;
    ca_issued_t root = make_root();
    ca_issued_t leaf = issue(&root, "spiffe://cluster.local/ns/default/sa/web", NULL);
    ca_issuer_src_t src = {.cert_pem = leaf.cert_pem,
                           .key_pem = leaf.key_pem,
                           .root_pem = root.root_pem,
                           .cert_name = "leaf.pem"};
    ca_issuer_t *is = NULL;

    assert_int_equal(ca_issuer_load(&src, &is, err, sizeof(err)), CA_ERR_NOT_CA);
    assert_non_null(strstr(err, "leaf.pem is not a CA"));
    ca_issued_free(&leaf);
    ca_issued_free(&root);
}

static void test_issuer_load_refuses_unsupported_key_type(void **state)
{
    (void)state;
    ca_issued_t root = make_root();
    ca_issuer_src_t src = {.cert_pem = root.cert_pem, .key_pem = ED25519_KEY};
    ca_issuer_t *is = NULL;

    assert_int_equal(ca_issuer_load(&src, &is, err, sizeof(err)), CA_ERR_KEY_TYPE);
    assert_non_null(strstr(err, "unsupported key type"));
    ca_issued_free(&root);
}

static void test_issuer_load_refuses_garbage_and_a_chain_to_another_root(void **state)
{
    (void)state;
    ca_issued_t root = make_root(), other = make_root();
    ca_issued_t inter = make_intermediate(&root, NULL);
    ca_issuer_t *is = NULL;

    ca_issuer_src_t junk = {.cert_pem = "not a certificate", .key_pem = root.key_pem};
    assert_int_equal(ca_issuer_load(&junk, &is, err, sizeof(err)), CA_ERR_BAD_INPUT);
    assert_non_null(strstr(err, "not a PEM certificate"));

    ca_issuer_src_t wrong_root = {.cert_pem = inter.cert_pem,
                                  .key_pem = inter.key_pem,
                                  .root_pem = other.root_pem,
                                  .root_name = "other-root.pem"};
    assert_int_equal(ca_issuer_load(&wrong_root, &is, err, sizeof(err)), CA_ERR_BAD_INPUT);
    assert_non_null(strstr(err, "does not chain to other-root.pem"));

    ca_issuer_src_t no_root = {.cert_pem = inter.cert_pem, .key_pem = inter.key_pem};
    assert_int_equal(ca_issuer_load(&no_root, &is, err, sizeof(err)), CA_ERR_BAD_INPUT);
    assert_non_null(strstr(err, "the root certificate is missing"));
    assert_null(is);
    ca_issued_free(&inter);
    ca_issued_free(&other);
    ca_issued_free(&root);
}

static void test_issue_refuses_a_bad_or_trust_domain_only_spiffe_id(void **state)
{
    (void)state;
    ca_issued_t root = make_root();
    ca_issuer_t *is = issuer_of(&root);
    ca_issued_t out;

    assert_int_equal(
        ca_issue_workload(is, "spiffe://cluster.local/ns//sa/x", NULL, &out, err, sizeof(err)),
        CA_ERR_BAD_SPIFFE_ID);
    assert_non_null(strstr(err, "bad SPIFFE ID \"spiffe://cluster.local/ns//sa/x\": empty path"));
    assert_int_equal(ca_issue_workload(is, "spiffe://cluster.local", NULL, &out, err, sizeof(err)),
                     CA_ERR_BAD_SPIFFE_ID);
    assert_non_null(strstr(err, "only a trust domain"));
    ca_issuer_free(is);
    ca_issued_free(&root);
}

static void test_intermediate_pathlen_limits_further_cas(void **state)
{
    (void)state;
    ca_issued_t root = make_root();
    ca_issued_t leafonly = make_intermediate(&root, NULL); /* default pathlen 0 */
    ca_issuer_t *is = issuer_of(&leafonly);
    ca_issued_t out;
    mbedtls_x509_crt crt;

    parse_pem(&crt, leafonly.cert_pem);
    assert_int_equal(crt.max_pathlen, 1); /* mbedTLS stores pathlen + 1 */
    mbedtls_x509_crt_free(&crt);
    assert_int_equal(ca_make_intermediate(is, NULL, &out, err, sizeof(err)), CA_ERR_PATHLEN);
    assert_non_null(strstr(err, "pathLenConstraint"));
    ca_issuer_free(is);

    /* With room for one more level: root → i1 (pathlen 1) → i2 (pathlen 0) → leaf. */
    ca_opts_t o;
    ca_opts_default(&o);
    o.pathlen = 1;
    ca_issued_t i1 = make_intermediate(&root, &o);
    ca_issuer_t *i1is = issuer_of(&i1);
    o.pathlen = 2;
    assert_int_equal(ca_make_intermediate(i1is, &o, &out, err, sizeof(err)), CA_ERR_PATHLEN);
    ca_issuer_free(i1is);
    ca_issued_t i2 = make_intermediate(&i1, NULL);
    ca_issued_t leaf = issue(&i2, "spiffe://cluster.local/ns/default/sa/web", NULL);
    assert_int_equal(verify_chain(leaf.chain_pem, root.root_pem), 0);
    mbedtls_x509_crt chain;
    parse_pem(&chain, leaf.chain_pem);
    assert_int_equal(chain.next->max_pathlen, 1);       /* i2: pathlen 0 */
    assert_int_equal(chain.next->next->max_pathlen, 2); /* i1: pathlen 1 */
    assert_null(chain.next->next->next);
    char dn[256];
    mbedtls_x509_dn_gets(dn, sizeof(dn), &chain.next->subject);
    assert_string_equal(dn, "O=Remora, CN=Intermediate CA 2"); /* never its issuer's name */
    mbedtls_x509_dn_gets(dn, sizeof(dn), &chain.next->next->subject);
    assert_string_equal(dn, "O=Remora, CN=Intermediate CA");
    mbedtls_x509_crt_free(&chain);

    ca_issued_free(&leaf);
    ca_issued_free(&i2);
    ca_issued_free(&i1);
    ca_issued_free(&leafonly);
    ca_issued_free(&root);
}

static void test_intermediate_issuer_name_is_the_root_subject_byte_for_byte(void **state)
{
    (void)state;
    ca_opts_t o;
    ca_opts_default(&o);
    o.org = "Org, with = signs + \"quotes\"";
    ca_issued_t root = make_root_with(&o);
    ca_issued_t inter = make_intermediate(&root, NULL);
    mbedtls_x509_crt r, i;

    parse_pem(&r, root.cert_pem);
    parse_pem(&i, inter.cert_pem);
    assert_int_equal(i.issuer_raw.len, r.subject_raw.len);
    assert_memory_equal(i.issuer_raw.p, r.subject_raw.p, r.subject_raw.len);
    char dn[256];
    mbedtls_x509_dn_gets(dn, sizeof(dn), &i.subject);
    assert_non_null(strstr(dn, "quotes")); /* the issuer's O= is inherited */
    mbedtls_x509_crt_free(&r);
    mbedtls_x509_crt_free(&i);
    ca_issued_free(&inter);
    ca_issued_free(&root);
}

/* ---- files ---------------------------------------------------------------------------------- */

static void test_save_writes_keys_0600_and_certificates_0644(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char root_dir[4096], int_dir[4096], wl_dir[4096];
    snprintf(root_dir, sizeof(root_dir), "%s/root", tmp);
    snprintf(int_dir, sizeof(int_dir), "%s/a/b/int", tmp); /* parents are created too */
    snprintf(wl_dir, sizeof(wl_dir), "%s/wl", tmp);
    mode_t old = umask(0); /* the modes must not depend on the umask */
    ca_issued_t root = make_root();
    ca_issued_t inter = make_intermediate(&root, NULL);
    ca_issued_t leaf = issue(&inter, "spiffe://cluster.local/ns/default/sa/web", NULL);

    assert_int_equal(ca_save_dir(root_dir, CA_LAYOUT_ROOT, &root, false, err, sizeof(err)), 0);
    assert_int_equal(ca_save_dir(int_dir, CA_LAYOUT_INTERMEDIATE, &inter, false, err, sizeof(err)),
                     0);
    assert_int_equal(ca_save_dir(wl_dir, CA_LAYOUT_WORKLOAD, &leaf, false, err, sizeof(err)), 0);
    umask(old);

    assert_int_equal(file_mode(root_dir, "root-key.pem"), 0600);
    assert_int_equal(file_mode(root_dir, "root-cert.pem"), 0644);
    assert_int_equal(file_mode(int_dir, "ca-key.pem"), 0600);
    assert_int_equal(file_mode(int_dir, "ca-cert.pem"), 0644);
    assert_int_equal(file_mode(int_dir, "cert-chain.pem"), 0644);
    assert_int_equal(file_mode(int_dir, "root-cert.pem"), 0644);
    assert_int_equal(file_mode(wl_dir, "key.pem"), 0600);
    assert_int_equal(file_mode(wl_dir, "cert-chain.pem"), 0644);
    assert_int_equal(file_mode(wl_dir, "root-cert.pem"), 0644);
    assert_int_equal(file_mode(tmp, "a"), 0755);
    assert_int_equal(file_mode(int_dir, "."), 0755);

    /* Both kinds of directory load back as issuers. */
    ca_issuer_t *is = NULL;
    assert_int_equal(ca_issuer_load_dir(root_dir, &is, err, sizeof(err)), 0);
    ca_issuer_free(is);
    assert_int_equal(ca_issuer_load_dir(int_dir, &is, err, sizeof(err)), 0);
    ca_issued_t again;
    assert_int_equal(
        ca_issue_workload(is, "spiffe://cluster.local/ns/x/sa/y", NULL, &again, err, sizeof(err)),
        0);
    assert_int_equal(verify_chain(again.chain_pem, again.root_pem), 0);
    ca_issued_free(&again);
    ca_issuer_free(is);

    ca_issued_free(&leaf);
    ca_issued_free(&inter);
    ca_issued_free(&root);
    remove_tree(tmp);
    free(tmp);
}

static void test_save_refuses_to_replace_a_ca_unless_told_to(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    ca_issued_t a = make_root(), b = make_root();

    assert_int_equal(ca_save_dir(tmp, CA_LAYOUT_ROOT, &a, false, err, sizeof(err)), 0);
    assert_int_equal(ca_save_dir(tmp, CA_LAYOUT_ROOT, &b, false, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, "already exists"));
    ca_issuer_t *is = NULL;
    assert_int_equal(ca_issuer_load_dir(tmp, &is, err, sizeof(err)), 0); /* a is intact */
    ca_issuer_free(is);
    assert_int_equal(ca_save_dir(tmp, CA_LAYOUT_ROOT, &b, true, err, sizeof(err)), 0);
    assert_int_equal(file_mode(tmp, "root-key.pem"), 0600);

    ca_issued_free(&a);
    ca_issued_free(&b);
    remove_tree(tmp);
    free(tmp);
}

static void test_load_dir_accepts_istio_chain_that_ends_with_the_root(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    ca_issued_t root = make_root();
    ca_issued_t inter = make_intermediate(&root, NULL);
    char *istio_chain = NULL;
    size_t n = strlen(inter.chain_pem) + strlen(root.cert_pem) + 1;

    istio_chain = malloc(n);
    assert_non_null(istio_chain);
    snprintf(istio_chain, n, "%s%s", inter.chain_pem, root.cert_pem);
    free(inter.chain_pem);
    inter.chain_pem = istio_chain;
    assert_int_equal(ca_save_dir(tmp, CA_LAYOUT_INTERMEDIATE, &inter, false, err, sizeof(err)), 0);

    ca_issuer_t *is = NULL;
    ca_issued_t leaf;
    assert_int_equal(ca_issuer_load_dir(tmp, &is, err, sizeof(err)), 0);
    assert_int_equal(
        ca_issue_workload(is, "spiffe://cluster.local/ns/x/sa/y", NULL, &leaf, err, sizeof(err)),
        0);
    mbedtls_x509_crt chain;
    parse_pem(&chain, leaf.chain_pem); /* leaf and intermediate: the root is not repeated */
    assert_non_null(chain.next);
    assert_null(chain.next->next);
    mbedtls_x509_crt_free(&chain);

    ca_issued_free(&leaf);
    ca_issuer_free(is);
    ca_issued_free(&inter);
    ca_issued_free(&root);
    remove_tree(tmp);
    free(tmp);
}

static void test_load_dir_names_the_missing_file(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char missing[4200];
    ca_issuer_t *is = NULL;

    assert_int_equal(ca_issuer_load_dir(tmp, &is, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "neither ca-key.pem"));
    snprintf(missing, sizeof(missing), "%s/nope", tmp);
    assert_int_equal(ca_issuer_load_dir(missing, &is, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, missing));

    /* A key without its certificate: the message names the certificate's path. */
    ca_issued_t root = make_root();
    assert_int_equal(ca_save_dir(tmp, CA_LAYOUT_ROOT, &root, false, err, sizeof(err)), 0);
    snprintf(missing, sizeof(missing), "%s/root-cert.pem", tmp);
    assert_int_equal(unlink(missing), 0);
    assert_int_equal(ca_issuer_load_dir(tmp, &is, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, missing));
    assert_null(is);
    ca_issued_free(&root);
    remove_tree(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spiffe_id_accepts_well_formed_ids),
        cmocka_unit_test(test_spiffe_id_rejects_malformed_ids_with_the_reason),
        cmocka_unit_test(test_spiffe_id_longer_than_2048_bytes_is_rejected),
        cmocka_unit_test(test_spiffe_id_built_from_namespace_and_service_account),
        cmocka_unit_test(test_root_intermediate_leaf_chain_verifies),
        cmocka_unit_test(test_leaf_carries_the_spiffe_id_as_its_only_uri_san),
        cmocka_unit_test(test_leaf_is_no_ca_and_serves_both_ends_of_mtls),
        cmocka_unit_test(test_root_is_a_self_signed_ca_for_ten_years),
        cmocka_unit_test(test_rsa_root_signs_a_chain_that_verifies),
        cmocka_unit_test(test_leaf_is_backdated_a_minute_and_lives_its_ttl),
        cmocka_unit_test(test_issue_clamps_not_after_to_the_issuer_expiry),
        cmocka_unit_test(test_issue_refuses_expired_issuer),
        cmocka_unit_test(test_issue_refuses_issuer_not_valid_yet),
        cmocka_unit_test(test_issue_refuses_expired_intermediate_and_names_it),
        cmocka_unit_test(test_issuer_load_refuses_the_key_of_another_ca),
        cmocka_unit_test(test_issuer_load_refuses_a_workload_certificate),
        cmocka_unit_test(test_issuer_load_refuses_unsupported_key_type),
        cmocka_unit_test(test_issuer_load_refuses_garbage_and_a_chain_to_another_root),
        cmocka_unit_test(test_issue_refuses_a_bad_or_trust_domain_only_spiffe_id),
        cmocka_unit_test(test_intermediate_pathlen_limits_further_cas),
        cmocka_unit_test(test_intermediate_issuer_name_is_the_root_subject_byte_for_byte),
        cmocka_unit_test(test_save_writes_keys_0600_and_certificates_0644),
        cmocka_unit_test(test_save_refuses_to_replace_a_ca_unless_told_to),
        cmocka_unit_test(test_load_dir_accepts_istio_chain_that_ends_with_the_root),
        cmocka_unit_test(test_load_dir_names_the_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
