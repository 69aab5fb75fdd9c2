/* The Secrets remora-cp serves: a workload certificate for a SPIFFE ID as Secret "default" and
 * the trust bundle as "ROOTCA", both accepted by the sidecar's own check of a Secret, with the
 * identity in the certificate and a renewal time at half the lifetime. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "certs/identity.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "xds/sds/sds_issue.h"
#include "xds/snapshot/snapshot_tls.h"

typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret secret_msg_t;

#define ID "spiffe://cluster.local/ns/shop/sa/cart"

static ca_issuer_t *root_issuer(void)
{
    ca_issued_t root = {0};
    char err[256];
    assert_int_equal(ca_make_root(NULL, &root, err, sizeof(err)), 0);
    ca_issuer_src_t src = {.cert_pem = root.cert_pem, .key_pem = root.key_pem};
    ca_issuer_t *issuer = NULL;
    assert_int_equal(ca_issuer_load(&src, &issuer, err, sizeof(err)), 0);
    ca_issued_free(&root);
    return issuer;
}

static secret_msg_t *decode(const sds_secret_t *s)
{
    secret_msg_t *m =
        envoy__extensions__transport_sockets__tls__v3__secret__unpack(NULL, s->len, s->bytes);
    assert_non_null(m);
    return m;
}

static void test_sds_cert_is_a_secret_the_sidecar_takes(void **state)
{
    (void)state;
    ca_issuer_t *issuer = root_issuer();
    sds_cert_t c;
    char err[512] = "";
    assert_int_equal(sds_cert_issue(issuer, ID, 3600, &c, err, sizeof(err)), 0);
    secret_msg_t *m = decode(&c.secret);
    assert_string_equal(m->name, "default");
    assert_int_equal(m->type_case,
                     ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE);
    const ProtobufCBinaryData *chain = &m->tls_certificate->certificate_chain->inline_bytes;
    assert_non_null(strstr((const char *)chain->data, "BEGIN CERTIFICATE"));
    assert_int_equal(snapshot_tls_check_secret(m, err, sizeof(err)), 0);
    /* The identity is the one asked for. */
    identity_cert_info_t info;
    assert_int_equal(
        identity_cert_info_parse((const char *)chain->data, chain->len, 0, &info, err, sizeof(err)),
        0);
    assert_non_null(info.spiffe_id);
    assert_string_equal(info.spiffe_id, ID);
    identity_cert_info_free(&info);
    envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(m, NULL);
    assert_true(c.not_after - c.not_before >= 3600);
    /* Halfway from now (not from the backdated not_before) to not_after. */
    int64_t now = (int64_t)time(NULL);
    assert_true(c.renew_at >= now + 1800 - 2 && c.renew_at <= now + 1800 + 2);
    sds_cert_free(&c);
    ca_issuer_free(issuer);
}

static void test_sds_root_is_a_validation_context_the_sidecar_takes(void **state)
{
    (void)state;
    ca_issuer_t *issuer = root_issuer();
    sds_cert_t c;
    char err[512] = "";
    assert_int_equal(sds_cert_issue(issuer, ID, 0, &c, err, sizeof(err)), 0);
    sds_secret_t root;
    assert_int_equal(sds_root_secret(c.root_pem, &root), 0);
    secret_msg_t *m = decode(&root);
    assert_string_equal(m->name, "ROOTCA");
    assert_int_equal(
        m->type_case,
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT);
    assert_int_equal(snapshot_tls_check_secret(m, err, sizeof(err)), 0);
    envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(m, NULL);
    /* The default lifetime is the CA's for workloads. */
    assert_true(c.not_after - c.not_before >= CA_WORKLOAD_TTL_S);
    sds_secret_free(&root);
    sds_cert_free(&c);
    ca_issuer_free(issuer);
}

static void test_sds_bad_identity_is_refused_with_a_message(void **state)
{
    (void)state;
    ca_issuer_t *issuer = root_issuer();
    sds_cert_t c;
    char err[512] = "";
    assert_true(sds_cert_issue(issuer, "spiffe://Bad Domain/x", 0, &c, err, sizeof(err)) < 0);
    assert_true(err[0] != '\0');
    assert_null(c.secret.bytes);
    ca_issuer_free(issuer);
}

static void test_sds_renewal_at_half_life(void **state)
{
    (void)state;
    assert_int_equal(sds_renew_at(1000, 87400), 1000 + 43200);
    assert_int_equal(sds_renew_at(0, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sds_cert_is_a_secret_the_sidecar_takes),
        cmocka_unit_test(test_sds_root_is_a_validation_context_the_sidecar_takes),
        cmocka_unit_test(test_sds_bad_identity_is_refused_with_a_message),
        cmocka_unit_test(test_sds_renewal_at_half_life),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
