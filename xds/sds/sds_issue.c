/* Workload certificates as Envoy Secret resources. The key travels inline in the Secret, so the
 * stream that carries it must be the sidecar's own (mutual TLS to the control plane in real use);
 * Istio's agents instead keep the key in the pod and send a CSR (docs/control-plane.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xds/sds/sds_issue.h"

#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"

typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret secret_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate tls_cert_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext validation_msg_t;
typedef Envoy__Config__Core__V3__DataSource data_source_t;

static void inline_bytes(data_source_t *d, const char *pem)
{
    envoy__config__core__v3__data_source__init(d);
    d->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
    d->inline_bytes.data = (uint8_t *)pem;
    d->inline_bytes.len = strlen(pem);
}

static int pack(const secret_msg_t *m, sds_secret_t *out)
{
    size_t n = envoy__extensions__transport_sockets__tls__v3__secret__get_packed_size(m);
    out->bytes = malloc(n ? n : 1);
    if (out->bytes == NULL)
        return -ENOMEM;
    out->len = envoy__extensions__transport_sockets__tls__v3__secret__pack(m, out->bytes);
    return 0;
}

int64_t sds_renew_at(int64_t not_before, int64_t not_after)
{
    return not_before + (not_after - not_before) / 2;
}

int sds_cert_issue(ca_issuer_t *issuer, const char *spiffe_id, int64_t ttl_s, sds_cert_t *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    ca_opts_t opts;
    ca_opts_default(&opts);
    opts.ttl_s = ttl_s;
    ca_issued_t issued = {0};
    int rc = ca_issue_workload(issuer, spiffe_id, &opts, &issued, err, errlen);
    if (rc < 0)
        return rc;
    tls_cert_msg_t tc = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
    data_source_t chain, key;
    inline_bytes(&chain, issued.chain_pem);
    inline_bytes(&key, issued.key_pem);
    tc.certificate_chain = &chain;
    tc.private_key = &key;
    secret_msg_t m = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
    m.name = SDS_CERT_SECRET;
    m.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE;
    m.tls_certificate = &tc;
    rc = pack(&m, &out->secret);
    if (rc == 0 && (out->root_pem = strdup(issued.root_pem)) == NULL)
        rc = -ENOMEM;
    if (rc < 0) {
        sds_cert_free(out);
        ca_issued_free(&issued);
        snprintf(err, errlen, "sds: %s: out of memory", spiffe_id);
        return rc;
    }
    out->not_before = issued.not_before;
    out->not_after = issued.not_after;
    /* Half of the time it is valid from now: not_before is backdated for clock skew. */
    int64_t now = (int64_t)time(NULL);
    out->renew_at =
        sds_renew_at(issued.not_before > now ? issued.not_before : now, issued.not_after);
    ca_issued_free(&issued);
    return 0;
}

int sds_root_secret(const char *root_pem, sds_secret_t *out)
{
    validation_msg_t vc =
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
    data_source_t ca;
    inline_bytes(&ca, root_pem);
    vc.trusted_ca = &ca;
    secret_msg_t m = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
    m.name = SDS_ROOT_SECRET;
    m.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT;
    m.validation_context = &vc;
    return pack(&m, out);
}

void sds_secret_free(sds_secret_t *s)
{
    if (s == NULL)
        return;
    if (s->bytes) {
        /* The "default" secret holds a private key. */
        volatile uint8_t *p = s->bytes;
        for (size_t i = 0; i < s->len; i++)
            p[i] = 0;
        free(s->bytes);
    }
    s->bytes = NULL;
    s->len = 0;
}

void sds_cert_free(sds_cert_t *c)
{
    if (c == NULL)
        return;
    sds_secret_free(&c->secret);
    free(c->root_pem);
    memset(c, 0, sizeof(*c));
}
