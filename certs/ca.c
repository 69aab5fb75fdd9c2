/* ca.c — the certificate authority behind `remoractl certs`: SPIFFE ID syntax, key generation,
 * and root, intermediate and workload certificates (validity, path length) written with mbedTLS. */
#include "certs/ca.h"
#include "certs/ca_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/x509_crt.h>

#define PEM_BUF_SIZE  16384 /* a 4096-bit RSA key or a certificate with a 2 KiB SAN fits */
#define ORG_MAX       64    /* ub-organization-name, RFC 5280 */
#define PEM_CRT_BEGIN "-----BEGIN CERTIFICATE-----\n"
#define PEM_CRT_END   "-----END CERTIFICATE-----\n"

typedef enum cert_kind {
    KIND_ROOT,
    KIND_INTERMEDIATE,
    KIND_WORKLOAD,
} cert_kind_t;

typedef struct rng {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
} rng_t;

int ca_crypto_fail(char *err, size_t errlen, int tls_rc, const char *what)
{
    char buf[160];
    mbedtls_strerror(tls_rc, buf, sizeof(buf));
    return err_set(err, errlen, CA_ERR_CRYPTO, "%s: %s", what, buf);
}

/* ---- SPIFFE IDs -------------------------------------------------------------------------- */

static bool is_td_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool is_path_char(char c)
{
    return is_td_char(c) || (c >= 'A' && c <= 'Z');
}

/* Shows c readably for a message: 'x', or its hex value when it is not printable ASCII. */
static const char *char_repr(char c, char buf[16])
{
    unsigned char u = (unsigned char)c;
    if (u >= 0x21 && u < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", u);
    return buf;
}

/* Explains why c cannot appear at offset off; part is "trust domain" or "path". */
static int bad_char(const char *part, char c, size_t off, char *err, size_t errlen)
{
    char r[16];
    if (c == '?')
        return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                       "a query ('?' at offset %zu) is not allowed", off);
    if (c == '#')
        return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                       "a fragment ('#' at offset %zu) is not allowed", off);
    if (c == '%')
        return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                       "percent-encoding ('%%' at offset %zu) is not allowed", off);
    if (strcmp(part, "trust domain") == 0) {
        if (c >= 'A' && c <= 'Z')
            return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                           "trust domain has uppercase '%c' at offset %zu (it must be lowercase)",
                           c, off);
        if (c == ':')
            return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                           "trust domain has a port (':' at offset %zu)", off);
        if (c == '@')
            return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                           "trust domain has user info ('@' at offset %zu)", off);
        return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                       "trust domain has %s at offset %zu (allowed: a-z 0-9 . - _)",
                       char_repr(c, r), off);
    }
    return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                   "path has %s at offset %zu (allowed: a-z A-Z 0-9 . - _ and / between segments)",
                   char_repr(c, r), off);
}

int ca_validate_spiffe_id(const char *id, char *err, size_t errlen)
{
    const size_t slen = strlen(CA_SPIFFE_SCHEME);

    if (errlen > 0)
        err[0] = '\0';
    if (!id || id[0] == '\0')
        return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID, "it is empty");
    if (strnlen(id, CA_SPIFFE_ID_MAX + 1) > CA_SPIFFE_ID_MAX)
        return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID, "it is longer than %d bytes",
                       CA_SPIFFE_ID_MAX);
    if (strncmp(id, CA_SPIFFE_SCHEME, slen) != 0) {
        if (strncasecmp(id, CA_SPIFFE_SCHEME, slen) == 0)
            return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                           "the scheme must be lowercase \"spiffe://\"");
        return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID, "it does not start with \"spiffe://\"");
    }

    const char *td = id + slen, *p = td;
    for (; *p != '\0' && *p != '/'; p++)
        if (!is_td_char(*p))
            return bad_char("trust domain", *p, (size_t)(p - id), err, errlen);
    if (p == td)
        return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID, "the trust domain is empty");

    /* The path is optional (the ID of the trust domain itself); each segment follows a '/'. */
    while (*p == '/') {
        const char *seg = ++p;
        for (; *p != '\0' && *p != '/'; p++)
            if (!is_path_char(*p))
                return bad_char("path", *p, (size_t)(p - id), err, errlen);
        size_t len = (size_t)(p - seg);
        if (len == 0 && *p == '\0')
            return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID, "the path ends with '/'");
        if (len == 0)
            return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                           "empty path segment (\"//\" at offset %zu)", (size_t)(seg - id - 1));
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                           "path segment \"%.*s\" at offset %zu is not allowed", (int)len, seg,
                           (size_t)(seg - id));
    }
    return 0;
}

int ca_spiffe_id_build(const char *trust_domain, const char *ns, const char *sa, char *out,
                       size_t outlen, char *err, size_t errlen)
{
    const char *what[] = {"namespace", "service account"};
    const char *val[] = {ns, sa};

    for (size_t i = 0; i < 2; i++) {
        if (val[i][0] == '\0')
            return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID, "the %s is empty", what[i]);
        /* A '/' would silently add path segments and name another identity. */
        if (strchr(val[i], '/'))
            return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID, "the %s \"%s\" contains '/'", what[i],
                           val[i]);
    }
    int n = snprintf(out, outlen, CA_SPIFFE_SCHEME "%s/ns/%s/sa/%s", trust_domain, ns, sa);
    if (n < 0 || (size_t)n >= outlen)
        return err_set(err, errlen, -ENAMETOOLONG, "the SPIFFE ID needs %d bytes, more than %zu", n,
                       outlen - 1);
    return ca_validate_spiffe_id(out, err, errlen);
}

/* ---- small helpers: random, time, PEM ------------------------------------------------------ */

static int rng_init(rng_t *r, char *err, size_t errlen)
{
    static const char pers[] = "remora-ca";

    mbedtls_entropy_init(&r->entropy);
    mbedtls_ctr_drbg_init(&r->drbg);
    int rc = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy,
                                   (const unsigned char *)pers, sizeof(pers) - 1);
    if (rc != 0)
        return ca_crypto_fail(err, errlen, rc, "seeding the random generator");
    return 0;
}

static void rng_free(rng_t *r)
{
    mbedtls_ctr_drbg_free(&r->drbg);
    mbedtls_entropy_free(&r->entropy);
}

static int64_t x509_time_unix(const mbedtls_x509_time *t)
{
    struct tm tm = {
        .tm_year = t->year - 1900,
        .tm_mon = t->mon - 1,
        .tm_mday = t->day,
        .tm_hour = t->hour,
        .tm_min = t->min,
        .tm_sec = t->sec,
    };
    return (int64_t)timegm(&tm);
}

/* "YYYYMMDDhhmmss", what mbedtls_x509write_crt_set_validity reads. */
static void unix_x509_string(int64_t t, char out[16])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

static const char *unix_iso(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

/* Appends add (borrowed) to the heap string *s (NULL starts one). Returns 0 or -ENOMEM. */
static int str_append(char **s, const char *add)
{
    size_t have = *s ? strlen(*s) : 0, n = strlen(add);
    char *grown = realloc(*s, have + n + 1);
    if (!grown)
        return -ENOMEM;
    memcpy(grown + have, add, n + 1);
    *s = grown;
    return 0;
}

/* Appends the PEM form of one DER certificate to *s. */
static int pem_append_crt(char **s, const mbedtls_x509_crt *crt, char *err, size_t errlen)
{
    unsigned char buf[PEM_BUF_SIZE];
    size_t olen;
    int rc = mbedtls_pem_write_buffer(PEM_CRT_BEGIN, PEM_CRT_END, crt->raw.p, crt->raw.len, buf,
                                      sizeof(buf), &olen);
    if (rc != 0)
        return ca_crypto_fail(err, errlen, rc, "encoding a certificate as PEM");
    if (str_append(s, (const char *)buf) < 0)
        return err_set(err, errlen, -ENOMEM, "out of memory building a certificate chain");
    return 0;
}

/* ---- writing certificates ---------------------------------------------------------------- */

/* What a new certificate says; keys are borrowed. */
typedef struct cert_spec {
    mbedtls_pk_context *subject_key;
    mbedtls_pk_context *issuer_key;
    const mbedtls_x509_crt *issuer_crt; /* NULL: self-signed */
    mbedtls_md_type_t md;
    int64_t not_before, not_after;
    const char *org, *cn; /* subject; both NULL: an empty subject */
    bool is_ca;
    int pathlen;           /* CAs: pathLenConstraint, -1 for none */
    const char *spiffe_id; /* workloads: the URI SAN */
} cert_spec_t;

/* Adds one UTF8String attribute to a name list mbedTLS will write and free. */
static int name_add(mbedtls_asn1_named_data **head, const char *oid, size_t oid_len,
                    const char *val)
{
    mbedtls_asn1_named_data *d =
        mbedtls_asn1_store_named_data(head, oid, oid_len, (const unsigned char *)val, strlen(val));
    if (!d)
        return -ENOMEM;
    d->val.tag = MBEDTLS_ASN1_UTF8_STRING;
    return 0;
}

static int name_set(mbedtls_asn1_named_data **head, const char *org, const char *cn)
{
    /* mbedTLS writes the list last entry first: add O before CN for "O=..., CN=...". */
    if (name_add(head, MBEDTLS_OID_AT_ORGANIZATION, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_ORGANIZATION),
                 org) < 0 ||
        name_add(head, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN), cn) < 0)
        return -ENOMEM;
    return 0;
}

/* Copies the issuer certificate's subject, byte for byte (string types included), as the new
 * certificate's issuer name, so that every verifier matches the two names. The entries are
 * allocated as mbedTLS allocates them: the writer context owns and frees them. */
static int name_copy(mbedtls_asn1_named_data **head, const mbedtls_x509_name *src, char *err,
                     size_t errlen)
{
    for (const mbedtls_x509_name *n = src; n && n->oid.p; n = n->next) {
        if (n->next_merged)
            return err_set(err, errlen, CA_ERR_BAD_INPUT,
                           "the CA's subject has a multi-valued RDN, which cannot be copied");
        mbedtls_asn1_named_data *d = mbedtls_calloc(1, sizeof(*d));
        if (!d)
            return err_set(err, errlen, -ENOMEM, "out of memory copying the issuer name");
        d->next = *head; /* reversed, as the writer expects */
        *head = d;
        d->oid = n->oid;
        d->val = n->val;
        d->oid.p = mbedtls_calloc(1, n->oid.len);
        d->val.p = mbedtls_calloc(1, n->val.len ? n->val.len : 1);
        if (!d->oid.p || !d->val.p)
            return err_set(err, errlen, -ENOMEM, "out of memory copying the issuer name");
        memcpy(d->oid.p, n->oid.p, n->oid.len);
        memcpy(d->val.p, n->val.p, n->val.len);
    }
    if (!*head)
        return err_set(err, errlen, CA_ERR_BAD_INPUT, "the CA certificate has an empty subject");
    return 0;
}

/* subjectAltName with one uniformResourceIdentifier: SEQUENCE { [6] IA5String }. Written
 * backwards into buf as mbedTLS's ASN.1 writers do; *der points at the result. */
static int san_uri_der(const char *uri, unsigned char *buf, size_t size, unsigned char **der,
                       size_t *der_len)
{
    unsigned char *p = buf + size;
    size_t len = 0;
    int ret;

    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_raw_buffer(&p, buf, (const unsigned char *)uri, strlen(uri)));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 6));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    *der = p;
    *der_len = len;
    return 0;
}

/* extKeyUsage: SEQUENCE { serverAuth, clientAuth } — a sidecar is both ends of mTLS. */
static int eku_der(unsigned char *buf, size_t size, unsigned char **der, size_t *der_len)
{
    unsigned char *p = buf + size;
    size_t len = 0;
    int ret;

    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_CLIENT_AUTH,
                                                     MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH,
                                                     MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    *der = p;
    *der_len = len;
    return 0;
}

/* The workload-only extensions: the SPIFFE ID as URI SAN and the extended key usage. */
static int add_workload_exts(mbedtls_x509write_cert *w, const char *spiffe_id, char *err,
                             size_t errlen)
{
    unsigned char buf[CA_SPIFFE_ID_MAX + 64], *der;
    size_t len;
    int rc = san_uri_der(spiffe_id, buf, sizeof(buf), &der, &len);
    /* RFC 5280 4.2.1.6: with an empty subject the SAN must be critical (as Istio does). */
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_extension(w, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                 MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 1,
                                                 der, len);
    if (rc != 0)
        return ca_crypto_fail(err, errlen, rc, "adding the subjectAltName");
    rc = eku_der(buf, sizeof(buf), &der, &len);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_extension(w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                                 MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
                                                 0, der, len);
    if (rc != 0)
        return ca_crypto_fail(err, errlen, rc, "adding the extendedKeyUsage");
    return 0;
}

static int set_serial(mbedtls_x509write_cert *w, rng_t *r, char *err, size_t errlen)
{
    unsigned char bytes[16];
    mbedtls_mpi serial;
    int rc;

    mbedtls_mpi_init(&serial);
    rc = mbedtls_ctr_drbg_random(&r->drbg, bytes, sizeof(bytes));
    /* 128 random bits read as an unsigned number: positive, and zero only by a 2^-128 chance,
     * which the last step rules out. */
    if (rc == 0)
        rc = mbedtls_mpi_read_binary(&serial, bytes, sizeof(bytes));
    if (rc == 0 && mbedtls_mpi_cmp_int(&serial, 0) == 0)
        rc = mbedtls_mpi_lset(&serial, 1);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_serial(w, &serial);
    mbedtls_mpi_free(&serial);
    return rc == 0 ? 0 : ca_crypto_fail(err, errlen, rc, "setting the serial number");
}

/* Writes and signs the certificate s describes; *pem is a new string the caller frees. */
static int cert_write(const cert_spec_t *s, rng_t *r, char **pem, char *err, size_t errlen)
{
    mbedtls_x509write_cert w;
    char nb[16], na[16];
    unsigned char *buf = NULL;
    int rc;

    mbedtls_x509write_crt_init(&w);
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, s->md);
    mbedtls_x509write_crt_set_subject_key(&w, s->subject_key);
    mbedtls_x509write_crt_set_issuer_key(&w, s->issuer_key);
    rc = set_serial(&w, r, err, errlen);
    if (rc < 0)
        goto out;
    unix_x509_string(s->not_before, nb);
    unix_x509_string(s->not_after, na);
    rc = mbedtls_x509write_crt_set_validity(&w, nb, na);
    if (rc != 0) {
        rc = ca_crypto_fail(err, errlen, rc, "setting the validity");
        goto out;
    }
    if (s->cn && name_set(&w.subject, s->org, s->cn) < 0) {
        rc = err_set(err, errlen, -ENOMEM, "out of memory setting the subject");
        goto out;
    }
    if (s->issuer_crt)
        rc = name_copy(&w.issuer, &s->issuer_crt->subject, err, errlen);
    else if (name_set(&w.issuer, s->org, s->cn) < 0)
        rc = err_set(err, errlen, -ENOMEM, "out of memory setting the issuer");
    if (rc < 0)
        goto out;

    rc = mbedtls_x509write_crt_set_basic_constraints(&w, s->is_ca, s->is_ca ? s->pathlen : 0);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_subject_key_identifier(&w);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_authority_key_identifier(&w);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_key_usage(
            &w, s->is_ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
                         : MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_ENCIPHERMENT);
    if (rc != 0) {
        rc = ca_crypto_fail(err, errlen, rc, "adding the CA extensions");
        goto out;
    }
    if (s->spiffe_id) {
        rc = add_workload_exts(&w, s->spiffe_id, err, errlen);
        if (rc < 0)
            goto out;
    }

    buf = malloc(PEM_BUF_SIZE);
    if (!buf) {
        rc = err_set(err, errlen, -ENOMEM, "out of memory signing the certificate");
        goto out;
    }
    rc = mbedtls_x509write_crt_pem(&w, buf, PEM_BUF_SIZE, mbedtls_ctr_drbg_random, &r->drbg);
    if (rc != 0) {
        rc = ca_crypto_fail(err, errlen, rc, "signing the certificate");
        goto out;
    }
    *pem = strdup((const char *)buf);
    if (!*pem)
        rc = err_set(err, errlen, -ENOMEM, "out of memory signing the certificate");
out:
    free(buf);
    mbedtls_x509write_crt_free(&w);
    return rc;
}

static int key_generate(mbedtls_pk_context *key, ca_key_type_t type, rng_t *r, char *err,
                        size_t errlen)
{
    int rc;
    switch (type) {
    case CA_KEY_EC_P256:
        rc = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
        if (rc == 0)
            rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key),
                                     mbedtls_ctr_drbg_random, &r->drbg);
        break;
    case CA_KEY_RSA_2048:
        rc = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
        if (rc == 0)
            rc = mbedtls_rsa_gen_key(mbedtls_pk_rsa(*key), mbedtls_ctr_drbg_random, &r->drbg, 2048,
                                     65537);
        break;
    default:
        return err_set(err, errlen, CA_ERR_KEY_TYPE, "unsupported key type %d", (int)type);
    }
    return rc == 0 ? 0 : ca_crypto_fail(err, errlen, rc, "generating the key");
}

static int key_pem(mbedtls_pk_context *key, char **pem, char *err, size_t errlen)
{
    unsigned char buf[PEM_BUF_SIZE];
    int rc = mbedtls_pk_write_key_pem(key, buf, sizeof(buf));
    if (rc != 0)
        return ca_crypto_fail(err, errlen, rc, "encoding the private key");
    *pem = strdup((const char *)buf);
    mbedtls_platform_zeroize(buf, sizeof(buf));
    return *pem ? 0 : err_set(err, errlen, -ENOMEM, "out of memory encoding the private key");
}

/* ---- what each kind of certificate gets -------------------------------------------------- */

#define PATH_MAX_CERTS (MBEDTLS_X509_MAX_INTERMEDIATE_CA + 2)

/* The certificates from the issuer up to the root, nearest first, and their names. */
typedef struct issuer_path {
    const mbedtls_x509_crt *crt[PATH_MAX_CERTS];
    char name[PATH_MAX_CERTS][CA_LABEL_SIZE + 32];
    size_t n;
} issuer_path_t;

static void issuer_path(const ca_issuer_t *is, issuer_path_t *p)
{
    p->n = 0;
    p->crt[p->n] = &is->cert;
    snprintf(p->name[p->n++], sizeof(p->name[0]), "%s", is->cert_name);
    for (const mbedtls_x509_crt *c = &is->chain; c && c->raw.p && p->n + 1 < PATH_MAX_CERTS;
         c = c->next) {
        p->crt[p->n] = c;
        snprintf(p->name[p->n], sizeof(p->name[0]), "certificate %zu of %s", p->n + 1,
                 is->chain_name);
        p->n++;
    }
    if (!is->cert_is_root) {
        p->crt[p->n] = &is->root;
        snprintf(p->name[p->n++], sizeof(p->name[0]), "%s", is->root_name);
    }
}

/* Fails unless every certificate from the issuer up to the root is valid at now; *lo and *hi
 * are where their validity periods overlap. */
static int issuer_valid_at(const ca_issuer_t *is, int64_t now, int64_t *lo, int64_t *hi, char *err,
                           size_t errlen)
{
    issuer_path_t p;
    char when[32];

    issuer_path(is, &p);
    *lo = INT64_MIN;
    *hi = INT64_MAX;
    for (size_t i = 0; i < p.n; i++) {
        int64_t from = x509_time_unix(&p.crt[i]->valid_from);
        int64_t to = x509_time_unix(&p.crt[i]->valid_to);
        if (now > to)
            return err_set(err, errlen, CA_ERR_ISSUER_EXPIRED, "%s expired at %s", p.name[i],
                           unix_iso(to, when));
        if (now < from)
            return err_set(err, errlen, CA_ERR_ISSUER_NOT_YET_VALID, "%s is not valid until %s",
                           p.name[i], unix_iso(from, when));
        *lo = from > *lo ? from : *lo;
        *hi = to < *hi ? to : *hi;
    }
    return 0;
}

/* The pathLenConstraint a new intermediate gets: the requested one, or else as much as the
 * issuer path allows, or 0 (it signs workloads only) when nothing above limits it. The k-th
 * certificate above the issuer already has k intermediates below it, plus the new one. mbedTLS
 * keeps each constraint plus one, and 0 for none. */
static int intermediate_pathlen(const ca_issuer_t *is, int requested, int *out, char *err,
                                size_t errlen)
{
    issuer_path_t p;
    int room = -1;
    size_t limiter = 0;

    issuer_path(is, &p);
    for (size_t k = 0; k < p.n; k++) {
        if (p.crt[k]->max_pathlen <= 0)
            continue;
        int r = (p.crt[k]->max_pathlen - 1) - (int)k - 1;
        if (r < 0 && k == 0)
            return err_set(err, errlen, CA_ERR_PATHLEN,
                           "%s has pathLenConstraint 0: it may issue workload certificates but "
                           "no CA",
                           p.name[0]);
        if (r < 0)
            return err_set(err, errlen, CA_ERR_PATHLEN,
                           "%s has pathLenConstraint %d, which allows no CA below %s", p.name[k],
                           p.crt[k]->max_pathlen - 1, is->cert_name);
        if (room < 0 || r < room) {
            room = r;
            limiter = k;
        }
    }
    if (requested < 0) {
        *out = room >= 0 ? room : 0;
        return 0;
    }
    if (room >= 0 && requested > room)
        return err_set(err, errlen, CA_ERR_PATHLEN,
                       "pathlen %d is more than %s allows below the new CA (at most %d)", requested,
                       p.name[limiter], room);
    *out = requested;
    return 0;
}

static int check_opts(const ca_opts_t *o, char *err, size_t errlen)
{
    if (o->not_after != 0 && o->not_after <= o->not_before)
        return err_set(err, errlen, CA_ERR_BAD_INPUT, "not-after must be later than not-before");
    if (o->pathlen > CA_MAX_PATHLEN)
        return err_set(err, errlen, CA_ERR_BAD_INPUT, "pathlen %d is more than %d", o->pathlen,
                       CA_MAX_PATHLEN);
    if (o->ttl_s < 0 || o->ttl_s > CA_MAX_TTL_S)
        return err_set(err, errlen, CA_ERR_BAD_INPUT,
                       "TTL of %lld seconds is out of range (1 second to 100 years)",
                       (long long)o->ttl_s);
    if (o->org) {
        size_t n = strlen(o->org);
        if (n == 0 || n > ORG_MAX)
            return err_set(err, errlen, CA_ERR_BAD_INPUT,
                           "organization \"%s\" must be 1 to %d bytes long", o->org, ORG_MAX);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)o->org[i] < 0x20 || o->org[i] == 0x7f)
                return err_set(err, errlen, CA_ERR_BAD_INPUT,
                               "organization has a control character at offset %zu", i);
    }
    return 0;
}

/* The issuer's O= when it makes a usable organization for its intermediates. */
static const char *issuer_org(const ca_issuer_t *is, char buf[ORG_MAX + 1])
{
    for (const mbedtls_x509_name *n = &is->cert.subject; n && n->oid.p; n = n->next) {
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_ORGANIZATION, &n->oid) != 0)
            continue;
        if (n->val.len == 0 || n->val.len > ORG_MAX)
            break;
        for (size_t i = 0; i < n->val.len; i++)
            if (n->val.p[i] < 0x20 || n->val.p[i] == 0x7f)
                return CA_DEFAULT_ORG;
        memcpy(buf, n->val.p, n->val.len);
        buf[n->val.len] = '\0';
        return buf;
    }
    return CA_DEFAULT_ORG;
}

/* "Intermediate CA" one level below the root, "Intermediate CA <n>" n levels below: a CA must
 * never carry its issuer's name, or it would look self-issued and chains would not build. */
static const char *intermediate_cn(const ca_issuer_t *is, char buf[32])
{
    int level = 1;
    if (!is->cert_is_root) {
        level = 2;
        for (const mbedtls_x509_crt *c = &is->chain; c && c->raw.p; c = c->next)
            level++;
    }
    if (level == 1)
        return "Intermediate CA";
    snprintf(buf, 32, "Intermediate CA %d", level);
    return buf;
}

/* The issuer's certificate and intermediates as PEM, to follow a new certificate. */
static int issuer_chain_pem(const ca_issuer_t *is, char **chain, char *err, size_t errlen)
{
    int rc = 0;
    if (is->cert_is_root)
        return 0;
    rc = pem_append_crt(chain, &is->cert, err, errlen);
    for (const mbedtls_x509_crt *c = &is->chain; rc == 0 && c && c->raw.p; c = c->next)
        rc = pem_append_crt(chain, c, err, errlen);
    return rc;
}

/* The validity window of a new certificate: the one asked for, else the kind's TTL from a little
 * before now, kept inside the issuer's own window [lo, hi] (out->clamped when cut short). */
static void set_validity(const ca_opts_t *opts, cert_kind_t kind, int64_t now, int64_t lo,
                         int64_t hi, ca_issued_t *out)
{
    static const int64_t default_ttl[] = {CA_ROOT_TTL_S, CA_INTERMEDIATE_TTL_S, CA_WORKLOAD_TTL_S};
    if (opts->not_after != 0) {
        out->not_before = opts->not_before;
        out->not_after = opts->not_after;
        return;
    }
    int64_t ttl = opts->ttl_s > 0 ? opts->ttl_s : default_ttl[kind];
    out->not_before = now - CA_BACKDATE_S > lo ? now - CA_BACKDATE_S : lo;
    out->not_after = now + ttl;
    if (out->not_after > hi) {
        out->not_after = hi;
        out->clamped = true;
    }
}

static int make_cert(ca_issuer_t *is, const ca_opts_t *opts, cert_kind_t kind,
                     const char *spiffe_id, ca_issued_t *out, char *err, size_t errlen)
{
    ca_opts_t def;
    rng_t rng;
    mbedtls_pk_context key;
    cert_spec_t s = {.pathlen = -1};
    char org[ORG_MAX + 1], cn[32];
    int64_t lo = INT64_MIN, hi = INT64_MAX, now = (int64_t)time(NULL);
    int rc;

    memset(out, 0, sizeof(*out));
    if (errlen > 0)
        err[0] = '\0';
    if (!opts) {
        ca_opts_default(&def);
        opts = &def;
    }
    mbedtls_pk_init(&key);
    rc = rng_init(&rng, err, errlen);
    if (rc < 0)
        goto out;
    rc = check_opts(opts, err, errlen);
    if (rc < 0)
        goto out;
    if (kind != KIND_ROOT) {
        rc = issuer_valid_at(is, now, &lo, &hi, err, errlen);
        if (rc < 0)
            goto out;
    }
    if (kind == KIND_INTERMEDIATE) {
        rc = intermediate_pathlen(is, opts->pathlen, &s.pathlen, err, errlen);
        if (rc < 0)
            goto out;
    }

    set_validity(opts, kind, now, lo, hi, out);

    rc = key_generate(&key, opts->key_type, &rng, err, errlen);
    if (rc < 0)
        goto out;
    s.subject_key = &key;
    s.not_before = out->not_before;
    s.not_after = out->not_after;
    switch (kind) {
    case KIND_ROOT:
        s.issuer_key = &key;
        s.md = MBEDTLS_MD_SHA256;
        s.org = opts->org ? opts->org : CA_DEFAULT_ORG;
        s.cn = "Root CA";
        s.is_ca = true;
        break;
    case KIND_INTERMEDIATE:
        s.issuer_key = &is->key;
        s.issuer_crt = &is->cert;
        s.md = is->md;
        s.org = opts->org ? opts->org : issuer_org(is, org);
        s.cn = intermediate_cn(is, cn);
        s.is_ca = true;
        break;
    case KIND_WORKLOAD:
        s.issuer_key = &is->key;
        s.issuer_crt = &is->cert;
        s.md = is->md;
        s.spiffe_id = spiffe_id;
        break;
    }
    rc = cert_write(&s, &rng, &out->cert_pem, err, errlen);
    if (rc < 0)
        goto out;
    rc = key_pem(&key, &out->key_pem, err, errlen);
    if (rc < 0)
        goto out;
    if (kind == KIND_ROOT) {
        out->root_pem = strdup(out->cert_pem);
        if (!out->root_pem)
            rc = err_set(err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    if (str_append(&out->chain_pem, out->cert_pem) < 0) {
        rc = err_set(err, errlen, -ENOMEM, "out of memory building the chain");
        goto out;
    }
    rc = issuer_chain_pem(is, &out->chain_pem, err, errlen);
    if (rc == 0)
        rc = pem_append_crt(&out->root_pem, &is->root, err, errlen);
out:
    if (rc < 0)
        ca_issued_free(out);
    mbedtls_pk_free(&key);
    rng_free(&rng);
    return rc;
}

void ca_opts_default(ca_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->key_type = CA_KEY_EC_P256;
    opts->pathlen = -1;
}

int ca_make_root(const ca_opts_t *opts, ca_issued_t *out, char *err, size_t errlen)
{
    return make_cert(NULL, opts, KIND_ROOT, NULL, out, err, errlen);
}

int ca_make_intermediate(ca_issuer_t *issuer, const ca_opts_t *opts, ca_issued_t *out, char *err,
                         size_t errlen)
{
    return make_cert(issuer, opts, KIND_INTERMEDIATE, NULL, out, err, errlen);
}

int ca_issue_workload(ca_issuer_t *issuer, const char *spiffe_id, const ca_opts_t *opts,
                      ca_issued_t *out, char *err, size_t errlen)
{
    char why[256];

    memset(out, 0, sizeof(*out));
    if (ca_validate_spiffe_id(spiffe_id, why, sizeof(why)) < 0)
        return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID, "bad SPIFFE ID \"%.256s\": %s",
                       spiffe_id ? spiffe_id : "", why);
    if (strchr(spiffe_id + strlen(CA_SPIFFE_SCHEME), '/') == NULL)
        return err_set(err, errlen, CA_ERR_BAD_SPIFFE_ID,
                       "bad SPIFFE ID \"%s\": it names only a trust domain; a workload ID needs a "
                       "path such as /ns/NAMESPACE/sa/ACCOUNT",
                       spiffe_id);
    return make_cert(issuer, opts, KIND_WORKLOAD, spiffe_id, out, err, errlen);
}

void ca_issued_free(ca_issued_t *issued)
{
    if (!issued)
        return;
    if (issued->key_pem)
        mbedtls_platform_zeroize(issued->key_pem, strlen(issued->key_pem));
    free(issued->cert_pem);
    free(issued->key_pem);
    free(issued->chain_pem);
    free(issued->root_pem);
    memset(issued, 0, sizeof(*issued));
}
