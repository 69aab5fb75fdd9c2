/* Shared TLS configs: key pair and trust bundle loading with the checks that keep a bad pair
 * from ever being used, the mbedTLS configuration every session of a config shares read-only,
 * the server's session-ticket keys, and the per-thread random generator behind all of them. */
#include "certs/tls_internal.h"
#include "base/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/platform_util.h>

#define MAX_PEM_FILE (1024 * 1024)

/* --- per-thread random generator ---------------------------------------------------------- */

/* One CTR-DRBG per thread: configs are shared by every worker and a DRBG shared between them
 * would serialise their handshakes on its mutex. The generator lives in thread-local storage,
 * so it needs no allocation; a fork is detected by pid and answered with a reseed, so parent and
 * child never produce the same stream. */
typedef struct thread_rng {
    bool seeded;
    pid_t pid;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
} thread_rng_t;

static _Thread_local thread_rng_t rng;

static int rng_seed(void)
{
    mbedtls_entropy_init(&rng.entropy);
    mbedtls_ctr_drbg_init(&rng.drbg);
    /* The thread's own address as personalisation keeps threads apart even if the entropy
     * source were ever to repeat. */
    unsigned char pers[32];
    const void *self = &rng;
    memcpy(pers, "remora-tls-drbg/", 16);
    memset(pers + 16, 0, 16);
    memcpy(pers + 16, &self, sizeof(self));
    int rc =
        mbedtls_ctr_drbg_seed(&rng.drbg, mbedtls_entropy_func, &rng.entropy, pers, sizeof(pers));
    if (rc != 0) {
        mbedtls_ctr_drbg_free(&rng.drbg);
        mbedtls_entropy_free(&rng.entropy);
        return rc;
    }
    rng.pid = getpid();
    rng.seeded = true;
    return 0;
}

int tls_rng(void *p, unsigned char *out, size_t len)
{
    (void)p;
    int rc;
    if (!rng.seeded) {
        if ((rc = rng_seed()) != 0)
            return rc;
    } else if (rng.pid != getpid()) {
        if ((rc = mbedtls_ctr_drbg_reseed(&rng.drbg, NULL, 0)) != 0)
            return rc;
        rng.pid = getpid();
    }
    while (len > 0) {
        size_t n = len > MBEDTLS_CTR_DRBG_MAX_REQUEST ? MBEDTLS_CTR_DRBG_MAX_REQUEST : len;
        if ((rc = mbedtls_ctr_drbg_random(&rng.drbg, out, n)) != 0)
            return rc;
        out += n;
        len -= n;
    }
    return 0;
}

void tls_rng_thread_cleanup(void)
{
    if (!rng.seeded)
        return;
    mbedtls_ctr_drbg_free(&rng.drbg);
    mbedtls_entropy_free(&rng.entropy);
    rng.seeded = false;
}

/* --- loading ------------------------------------------------------------------------------ */

static void mbed_reason(int rc, char *buf, size_t cap)
{
    mbedtls_strerror(rc, buf, cap);
}

/* How an item is named in messages: its file, or "<item> (inline PEM)". */
static void source_label(const char *item, const tls_pem_source_t *src, char *buf, size_t cap)
{
    if (src->path)
        snprintf(buf, cap, "%s %s", item, src->path);
    else
        snprintf(buf, cap, "%s (inline PEM)", item);
}

static bool source_given(const tls_pem_source_t *src)
{
    return src->path != NULL || src->pem != NULL;
}

/* Reads a source into a new NUL-terminated buffer (*len counts the NUL, as mbedTLS wants for
 * PEM). The caller frees it, wiping it first when it held a key. */
static int source_read(const tls_pem_source_t *src, const char *label, unsigned char **out,
                       size_t *len, char *err, size_t errlen)
{
    if (src->path && src->pem) {
        return err_set(err, errlen, TLS_ERR_CONFIG, "%s: give a file or PEM bytes, not both",
                       label);
    }
    if (src->pem) {
        unsigned char *b = malloc(src->pem_len + 1);
        if (b == NULL)
            return -ENOMEM;
        memcpy(b, src->pem, src->pem_len);
        b[src->pem_len] = '\0';
        *out = b;
        *len = src->pem_len + 1;
        return 0;
    }
    FILE *f = fopen(src->path, "rb");
    if (f == NULL) {
        return err_set(err, errlen, TLS_ERR_CONFIG, "%s: cannot open: %s", label, strerror(errno));
    }
    unsigned char *b = malloc(MAX_PEM_FILE + 1);
    if (b == NULL) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(b, 1, MAX_PEM_FILE + 1, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed || n > MAX_PEM_FILE) {
        err_set(err, errlen, TLS_ERR_CONFIG, "%s: %s", label,
                failed ? "read error" : "larger than 1 MiB");
        free(b);
        return TLS_ERR_CONFIG;
    }
    b[n] = '\0';
    *out = b;
    *len = n + 1;
    return 0;
}

static int load_certs(mbedtls_x509_crt *crt, const char *item, const tls_pem_source_t *src,
                      char *err, size_t errlen)
{
    char label[300];
    source_label(item, src, label, sizeof(label));
    unsigned char *buf;
    size_t len;
    int rc = source_read(src, label, &buf, &len, err, errlen);
    if (rc != 0)
        return rc;
    rc = mbedtls_x509_crt_parse(crt, buf, len);
    free(buf);
    if (rc != 0 || crt->raw.p == NULL) {
        char why[160] = "no certificate found";
        if (rc < 0)
            mbed_reason(rc, why, sizeof(why));
        else if (rc > 0)
            snprintf(why, sizeof(why), "%d certificate(s) could not be parsed", rc);
        return err_set(err, errlen, TLS_ERR_CONFIG, "%s: %s", label, why);
    }
    return 0;
}

static int load_key(mbedtls_pk_context *key, const tls_pem_source_t *src, char *err, size_t errlen)
{
    char label[300];
    source_label("private_key", src, label, sizeof(label));
    unsigned char *buf;
    size_t len;
    int rc = source_read(src, label, &buf, &len, err, errlen);
    if (rc != 0)
        return rc;
    rc = mbedtls_pk_parse_key(key, buf, len, NULL, 0);
    mbedtls_platform_zeroize(buf, len);
    free(buf);
    if (rc != 0) {
        char why[160];
        mbed_reason(rc, why, sizeof(why));
        return err_set(err, errlen, TLS_ERR_CONFIG, "%s: %s", label, why);
    }
    return 0;
}

static void format_time(const mbedtls_x509_time *t, char *buf, size_t cap)
{
    snprintf(buf, cap, "%04d-%02d-%02d %02d:%02d:%02d UTC", t->year, t->mon, t->day, t->hour,
             t->min, t->sec);
}

/* mbedTLS's verification flags as one line ("a; b"). */
static void verify_reason(uint32_t flags, char *buf, size_t cap)
{
    if (mbedtls_x509_crt_verify_info(buf, cap, "", flags) < 0 || buf[0] == '\0') {
        snprintf(buf, cap, "verification flags 0x%08x", (unsigned)flags);
        return;
    }
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    for (char *p = buf; (p = strchr(p, '\n')) != NULL;)
        *p = ';';
}

/* The key pair must be usable for ECDHE-ECDSA or ECDHE-RSA, belong together, be valid now and,
 * when the
 * config has a trust bundle, chain up to it (a sidecar's own chain is issued by the mesh CA its
 * peers trust; a chain that fails here would fail at every peer). */
static int check_pair(tls_config_t *c, const tls_config_opts_t *o, char *err, size_t errlen)
{
    char label[300], why[256], when[40];
    source_label("cert_chain", &o->cert_chain, label, sizeof(label));
    mbedtls_x509_crt *leaf = &c->chain;
    if (!mbedtls_pk_can_do(&leaf->pk, MBEDTLS_PK_ECDSA) &&
        !mbedtls_pk_can_do(&leaf->pk, MBEDTLS_PK_RSA)) {
        return err_set(err, errlen, TLS_ERR_CONFIG,
                       "%s: leaf key is %s; the ECDHE suites need an EC or RSA key", label,
                       mbedtls_pk_get_name(&leaf->pk));
    }
    if (mbedtls_pk_can_do(&leaf->pk, MBEDTLS_PK_RSA) && mbedtls_pk_get_bitlen(&leaf->pk) < 2048) {
        return err_set(err, errlen, TLS_ERR_CONFIG,
                       "%s: leaf RSA key has %zu bits; at least 2048 are needed", label,
                       mbedtls_pk_get_bitlen(&leaf->pk));
    }
    int rc = mbedtls_pk_check_pair(&leaf->pk, &c->key);
    if (rc != 0) {
        char klabel[300];
        source_label("private_key", &o->private_key, klabel, sizeof(klabel));
        return err_set(err, errlen, TLS_ERR_CONFIG, "%s does not match the leaf certificate of %s",
                       klabel, label);
    }
    if (mbedtls_x509_time_is_past(&leaf->valid_to)) {
        format_time(&leaf->valid_to, when, sizeof(when));
        return err_set(err, errlen, TLS_ERR_CONFIG, "%s: leaf certificate expired at %s", label,
                       when);
    }
    if (mbedtls_x509_time_is_future(&leaf->valid_from)) {
        format_time(&leaf->valid_from, when, sizeof(when));
        return err_set(err, errlen, TLS_ERR_CONFIG, "%s: leaf certificate is not valid before %s",
                       label, when);
    }
    if (!c->has_trust)
        return 0;
    uint32_t flags = 0;
    rc = mbedtls_x509_crt_verify_with_profile(leaf, &c->trust, NULL, &mbedtls_x509_crt_profile_next,
                                              NULL, &flags, NULL, NULL);
    if (rc != 0) {
        if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED)
            verify_reason(flags, why, sizeof(why));
        else
            mbed_reason(rc, why, sizeof(why));
        return err_set(err, errlen, TLS_ERR_CONFIG,
                       "%s: chain does not verify against the trust bundle: %s", label, why);
    }
    return 0;
}

/* --- fixed-base tables for the keys a config shares ------------------------------------------ */

/* mbedTLS parses EC keys as type ECKEY, whose sign and verify wrappers copy the key's group for
 * every operation; the copy has no precomputed multiples of the base point, so each signature
 * and each verification builds that table again and throws it away (about half of a signature's
 * cost, a third of a verification's). An ECDSA-typed context signs and verifies with its own
 * group, which keeps the table after its first use. The config's own private key and its trust
 * anchors' public keys are therefore moved into ECDSA contexts, and the table is computed here,
 * on the thread building the config: from then on mbedTLS only reads it (ecp_mul_comb stores a
 * table only into a group that has none), so every worker can share the keys. Other key types
 * (RSA trust anchors) are left as they are. */
static int ec_key_precompute(mbedtls_pk_context *pk)
{
    if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY)
        return 0;
    const mbedtls_ecp_keypair *src = mbedtls_pk_ec(*pk);
    if (mbedtls_ecp_get_type(&src->grp) != MBEDTLS_ECP_TYPE_SHORT_WEIERSTRASS)
        return 0;
    mbedtls_pk_context e;
    mbedtls_pk_init(&e);
    mbedtls_ecp_point r;
    mbedtls_ecp_point_init(&r);
    mbedtls_mpi two;
    mbedtls_mpi_init(&two);
    int rc = mbedtls_pk_setup(&e, mbedtls_pk_info_from_type(MBEDTLS_PK_ECDSA));
    if (rc == 0)
        rc = mbedtls_ecdsa_from_keypair(mbedtls_pk_ec(e), src);
    if (rc == 0)
        rc = mbedtls_mpi_lset(&two, 2);
    if (rc == 0) { /* a multiple of the base point stores the table in the group */
        mbedtls_ecp_group *grp = &mbedtls_pk_ec(e)->grp;
        rc = mbedtls_ecp_mul(grp, &r, &two, &grp->G, tls_rng, NULL);
    }
    mbedtls_mpi_free(&two);
    mbedtls_ecp_point_free(&r);
    if (rc != 0) {
        mbedtls_pk_free(&e);
        return rc;
    }
    mbedtls_pk_free(pk);
    *pk = e; /* a pk context is a pair of pointers: the ECDSA context moves into place */
    return 0;
}

static int keys_precompute(tls_config_t *c, char *err, size_t errlen)
{
    int rc = 0;
    if (c->has_chain)
        rc = ec_key_precompute(&c->key);
    for (mbedtls_x509_crt *t = c->has_trust ? &c->trust : NULL; rc == 0 && t && t->raw.p;
         t = t->next)
        rc = ec_key_precompute(&t->pk);
    if (rc != 0) {
        char why[160];
        mbed_reason(rc, why, sizeof(why));
        return err_set(err, errlen, TLS_ERR_CONFIG, "preparing the keys: %s", why);
    }
    return 0;
}

/* --- building ----------------------------------------------------------------------------- */

static int copy_lists(tls_config_t *c, const tls_config_opts_t *o)
{
    size_t strings = 0;
    for (size_t i = 0; i < o->alpn_count; i++)
        strings += strlen(o->alpn[i]) + 1;
    for (size_t i = 0; i < o->peer_identity_count; i++)
        strings += strlen(o->peer_identities[i].value) + 1;
    size_t ptrs = (o->alpn_count + 1) * sizeof(char *);
    size_t mats = o->peer_identity_count * sizeof(identity_matcher_t);
    char *block = malloc(ptrs + mats + strings);
    if (block == NULL)
        return -ENOMEM;
    c->alpn = (const char **)block;
    c->peer_identities = (identity_matcher_t *)(block + ptrs);
    char *text = block + ptrs + mats;
    for (size_t i = 0; i < o->alpn_count; i++) {
        size_t n = strlen(o->alpn[i]) + 1;
        c->alpn[i] = memcpy(text, o->alpn[i], n);
        text += n;
    }
    c->alpn[o->alpn_count] = NULL;
    for (size_t i = 0; i < o->peer_identity_count; i++) {
        size_t n = strlen(o->peer_identities[i].value) + 1;
        c->peer_identities[i] = o->peer_identities[i];
        c->peer_identities[i].value = memcpy(text, o->peer_identities[i].value, n);
        text += n;
    }
    c->n_peer_identities = o->peer_identity_count;
    if (o->sni && (c->sni = strdup(o->sni)) == NULL)
        return -ENOMEM;
    return 0;
}

static int check_opts(const tls_config_opts_t *o, char *err, size_t errlen)
{
    bool server = o->role == TLS_ROLE_SERVER;
    if (o->role != TLS_ROLE_CLIENT && !server)
        err_set(err, errlen, TLS_ERR_CONFIG, "role must be client or server");
    else if (server && !source_given(&o->cert_chain))
        err_set(err, errlen, TLS_ERR_CONFIG, "a server needs cert_chain and private_key");
    else if (source_given(&o->cert_chain) != source_given(&o->private_key))
        err_set(err, errlen, TLS_ERR_CONFIG, "cert_chain and private_key go together");
    else if (!server && !source_given(&o->trust_bundle))
        err_set(err, errlen, TLS_ERR_CONFIG,
                "a client must verify its server: trust_bundle is required");
    else if (server && o->require_client_cert && !source_given(&o->trust_bundle))
        err_set(err, errlen, TLS_ERR_CONFIG,
                "require_client_cert needs a trust_bundle to verify clients with");
    else if (o->record_size != 0 && (o->record_size < 512 || o->record_size > TLS_MAX_RECORD))
        err_set(err, errlen, TLS_ERR_CONFIG, "record_size %zu is outside 512..%d", o->record_size,
                TLS_MAX_RECORD);
    else if ((o->alpn_count && !o->alpn) || (o->peer_identity_count && !o->peer_identities) ||
             (o->suite_count && !o->suites) || (o->group_count && !o->groups))
        err_set(err, errlen, TLS_ERR_CONFIG, "a list has a count but no entries");
    else if (o->suite_count > 2 || o->group_count > 2)
        err_set(err, errlen, TLS_ERR_CONFIG, "at most 2 suites and 2 groups");
    else if (o->sni && server)
        err_set(err, errlen, TLS_ERR_CONFIG, "sni is a client setting");
    else
        goto lists;
    return TLS_ERR_CONFIG;
lists:
    for (size_t i = 0; i < o->alpn_count; i++) {
        size_t n = o->alpn[i] ? strlen(o->alpn[i]) : 0;
        if (n == 0 || n > 255) {
            return err_set(err, errlen, TLS_ERR_CONFIG,
                           "alpn[%zu]: a protocol name is 1..255 bytes", i);
        }
    }
    for (size_t i = 0; o->suites && i < o->suite_count; i++) {
        if (o->suites[i] != TLS_SUITE_AES_128_GCM && o->suites[i] != TLS_SUITE_CHACHA20_POLY1305) {
            return err_set(err, errlen, TLS_ERR_CONFIG,
                           "suites[%zu]: not a suite this engine offers", i);
        }
    }
    for (size_t i = 0; o->groups && i < o->group_count; i++) {
        if (o->groups[i] != TLS_GROUP_X25519 && o->groups[i] != TLS_GROUP_P256) {
            return err_set(err, errlen, TLS_ERR_CONFIG,
                           "groups[%zu]: not a group this engine offers", i);
        }
    }
    if ((o->suites && o->suite_count == 0) || (o->groups && o->group_count == 0)) {
        return err_set(err, errlen, TLS_ERR_CONFIG,
                       "an empty suite or group list leaves nothing to negotiate");
    }
    for (size_t i = 0; i < o->peer_identity_count; i++) {
        const identity_matcher_t *m = &o->peer_identities[i];
        if (m->value == NULL || m->value[0] == '\0' ||
            (m->san_type != IDENTITY_SAN_URI && m->san_type != IDENTITY_SAN_DNS &&
             m->san_type != IDENTITY_SAN_ANY) ||
            (m->kind != IDENTITY_MATCH_EXACT && m->kind != IDENTITY_MATCH_PREFIX)) {
            return err_set(err, errlen, TLS_ERR_CONFIG,
                           "peer_identities[%zu]: needs a URI, DNS or any SAN type, exact or "
                           "prefix, and a non-empty value",
                           i);
        }
    }
    return 0;
}

static void set_algorithms(tls_config_t *c, const tls_config_opts_t *o)
{
    static const tls_suite_t default_suites[] = {TLS_SUITE_CHACHA20_POLY1305,
                                                 TLS_SUITE_AES_128_GCM};
    static const tls_group_t default_groups[] = {TLS_GROUP_X25519, TLS_GROUP_P256};
    const tls_suite_t *suites = o->suites ? o->suites : default_suites;
    size_t ns = o->suites ? o->suite_count : 2;
    const tls_group_t *groups = o->groups ? o->groups : default_groups;
    size_t ng = o->groups ? o->group_count : 2;

    /* Each suite in both authentications: a server offers the ones its key can sign (the mesh's
     * EC keys take the ECDSA ones), a client accepts a server of either kind (an RSA-keyed
     * server of an Envoy config, say). ECDSA first: with an EC key it is the one chosen. */
    size_t n = 0;
    for (size_t i = 0; i < ns; i++) {
        if (i == 1 && suites[1] == suites[0])
            continue; /* an ECDSA and an RSA name of one suite */
        c->suites[n++] = suites[i] == TLS_SUITE_AES_128_GCM
                             ? MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                             : MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256;
    }
    for (size_t i = 0, m = n; i < m; i++)
        c->suites[n++] = c->suites[i] == MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                             ? MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                             : MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256;
    c->suites[n] = 0;
    bool p256 = false;
    for (size_t i = 0; i < ng; i++) {
        p256 |= groups[i] == TLS_GROUP_P256;
        c->groups[i] =
            groups[i] == TLS_GROUP_X25519 ? MBEDTLS_ECP_DP_CURVE25519 : MBEDTLS_ECP_DP_SECP256R1;
    }
    /* mbedTLS 2.28 checks the curve of the peer's certificate key against this same list, so
     * P-256 (the curve of every mesh certificate) stays in it, last, even when the key exchange
     * was meant to be X25519 only. */
    if (!p256)
        c->groups[ng++] = MBEDTLS_ECP_DP_SECP256R1;
    c->groups[ng] = MBEDTLS_ECP_DP_NONE;
    /* Signature hashes we accept from peers and use ourselves (P-256 pairs with SHA-256). */
    c->sig_hashes[0] = MBEDTLS_MD_SHA256;
    c->sig_hashes[1] = MBEDTLS_MD_SHA384;
    c->sig_hashes[2] = MBEDTLS_MD_SHA512;
    c->sig_hashes[3] = MBEDTLS_MD_NONE;

    mbedtls_ssl_conf_ciphersuites(&c->conf, c->suites);
    mbedtls_ssl_conf_curves(&c->conf, c->groups);
    mbedtls_ssl_conf_sig_hashes(&c->conf, c->sig_hashes);
    mbedtls_ssl_conf_cert_profile(&c->conf, &mbedtls_x509_crt_profile_next);
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_legacy_renegotiation(&c->conf, MBEDTLS_SSL_LEGACY_NO_RENEGOTIATION);
    mbedtls_ssl_conf_extended_master_secret(&c->conf, MBEDTLS_SSL_EXTENDED_MS_ENABLED);
}

int tls_suite_from_name(const char *name)
{
    static const struct {
        const char *name;
        tls_suite_t suite;
    } names[] = {
        {"ECDHE-ECDSA-AES128-GCM-SHA256", TLS_SUITE_AES_128_GCM},
        {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", TLS_SUITE_AES_128_GCM},
        {"ECDHE-ECDSA-CHACHA20-POLY1305", TLS_SUITE_CHACHA20_POLY1305},
        {"ECDHE-ECDSA-CHACHA20-POLY1305-SHA256", TLS_SUITE_CHACHA20_POLY1305},
        {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", TLS_SUITE_CHACHA20_POLY1305},
        /* The RSA names stand for the same suites: each is offered with both signatures. */
        {"ECDHE-RSA-AES128-GCM-SHA256", TLS_SUITE_AES_128_GCM},
        {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", TLS_SUITE_AES_128_GCM},
        {"ECDHE-RSA-CHACHA20-POLY1305", TLS_SUITE_CHACHA20_POLY1305},
        {"ECDHE-RSA-CHACHA20-POLY1305-SHA256", TLS_SUITE_CHACHA20_POLY1305},
        {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", TLS_SUITE_CHACHA20_POLY1305},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i].name) == 0)
            return (int)names[i].suite;
    return -EINVAL;
}

int tls_group_from_name(const char *name)
{
    if (strcmp(name, "X25519") == 0)
        return TLS_GROUP_X25519;
    if (strcmp(name, "P-256") == 0 || strcmp(name, "prime256v1") == 0 ||
        strcmp(name, "secp256r1") == 0)
        return TLS_GROUP_P256;
    return -EINVAL;
}

static void config_free(tls_config_t *c)
{
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_ssl_ticket_free(&c->ticket); /* initialised even when unused */
    mbedtls_x509_crt_free(&c->chain);
    mbedtls_x509_crt_free(&c->trust);
    mbedtls_pk_free(&c->key);
    free(c->alpn);
    free(c->sni);
    free(c);
}

int tls_config_new(const tls_config_opts_t *o, tls_config_t **out, char *err, size_t errlen)
{
    err_set(err, errlen, 0, "%s", "");
    int rc = check_opts(o, err, errlen);
    if (rc != 0)
        return rc;
    tls_config_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    atomic_init(&c->refs, 1);
    c->role = o->role;
    c->record_size = o->record_size ? o->record_size : TLS_MAX_RECORD;
    c->high_water = o->output_high_water ? o->output_high_water : TLS_DEFAULT_HIGH_WATER;
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->chain);
    mbedtls_x509_crt_init(&c->trust);
    mbedtls_pk_init(&c->key);
    mbedtls_ssl_ticket_init(&c->ticket);

    if ((rc = copy_lists(c, o)) != 0)
        goto fail;
    if (source_given(&o->trust_bundle)) {
        if ((rc = load_certs(&c->trust, "trust_bundle", &o->trust_bundle, err, errlen)) != 0)
            goto fail;
        c->has_trust = true;
    }
    if (source_given(&o->cert_chain)) {
        if ((rc = load_certs(&c->chain, "cert_chain", &o->cert_chain, err, errlen)) != 0 ||
            (rc = load_key(&c->key, &o->private_key, err, errlen)) != 0 ||
            (rc = check_pair(c, o, err, errlen)) != 0)
            goto fail;
        c->has_chain = true;
        if (identity_spiffe_id(&c->chain, c->own_spiffe, sizeof(c->own_spiffe)) < 0)
            c->own_spiffe[0] = '\0';
    }
    if ((rc = keys_precompute(c, err, errlen)) != 0)
        goto fail;

    bool server = o->role == TLS_ROLE_SERVER;
    rc = mbedtls_ssl_config_defaults(&c->conf,
                                     server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                     MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0)
        goto mbed_fail;
    mbedtls_ssl_conf_rng(&c->conf, tls_rng, NULL);
    set_algorithms(c, o);
    if (c->has_trust)
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->trust, NULL);
    if (c->has_chain && (rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->chain, &c->key)) != 0)
        goto mbed_fail;
    if (!server)
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    else if (!c->has_trust)
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
    else if (o->require_client_cert)
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    else {
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
        c->verify_optional = true;
    }
    if (o->alpn_count && (rc = mbedtls_ssl_conf_alpn_protocols(&c->conf, c->alpn)) != 0)
        goto mbed_fail;
    if (server)
        mbedtls_ssl_conf_sni(&c->conf, tls_on_sni, NULL);
    if (!server) {
        mbedtls_ssl_conf_session_tickets(&c->conf, o->disable_tickets
                                                       ? MBEDTLS_SSL_SESSION_TICKETS_DISABLED
                                                       : MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    } else if (!o->disable_tickets) {
        uint32_t life = o->ticket_lifetime_s ? o->ticket_lifetime_s : TLS_DEFAULT_TICKET_LIFE;
        rc = mbedtls_ssl_ticket_setup(&c->ticket, tls_rng, NULL, MBEDTLS_CIPHER_AES_256_GCM, life);
        if (rc != 0)
            goto mbed_fail;
        mbedtls_ssl_conf_session_tickets_cb(&c->conf, mbedtls_ssl_ticket_write,
                                            mbedtls_ssl_ticket_parse, &c->ticket);
    }
    *out = c;
    return 0;

mbed_fail:;
    char why[160];
    mbed_reason(rc, why, sizeof(why));
    err_set(err, errlen, TLS_ERR_CONFIG, "TLS setup: %s", why);
    rc = rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : TLS_ERR_CONFIG;
fail:
    config_free(c);
    return rc;
}

tls_config_t *tls_config_ref(tls_config_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void tls_config_unref(tls_config_t *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        config_free(c);
}

tls_role_t tls_config_role(const tls_config_t *c)
{
    return c->role;
}

const char *tls_config_spiffe_id(const tls_config_t *c)
{
    return c->own_spiffe[0] ? c->own_spiffe : NULL;
}

int tls_config_cert_info(const tls_config_t *c, bool which_trust, size_t index, int64_t now,
                         identity_cert_info_t *out)
{
    const mbedtls_x509_crt *crt = which_trust ? &c->trust : &c->chain;
    if (!(which_trust ? c->has_trust : c->has_chain))
        return -ENOENT;
    for (; crt && index > 0; index--)
        crt = crt->next;
    if (crt == NULL || crt->raw.p == NULL)
        return -ENOENT;
    return identity_cert_info(crt, now, out);
}
