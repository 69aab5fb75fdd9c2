/* bench/crypto.c: what mbedTLS costs on one core for mTLS between sidecars: AEAD record
 * encryption, ECDSA P-256, ECDH (P-256, X25519) and whole TLS 1.2 ECDHE-ECDSA handshakes run in
 * memory between two contexts. A bench program, not part of the library: it uses mbedTLS
 * directly. Prints one "key value" line per measurement; bench/crypto.sh makes the table.
 *
 *   crypto [SECONDS]     each measurement runs for SECONDS (default 3), wall clock
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdh.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/gcm.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#define CN          "remora-bench.svc.cluster.local"
#define RECORD_MAX  16384
#define TLS12_AAD   13 /* seq_num + type + version + length */
#define PIPE_BYTES  (64 * 1024)
#define CERT_DER    1024
#define STEP_LIMIT  1000 /* handshake steps before we call it stuck */
#define RESUMED_MAX 400  /* server bytes in a resumed handshake: no certificate sent */

static double seconds = 3.0;
static mbedtls_ctr_drbg_context drbg;
static mbedtls_entropy_context entropy;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fails the whole run: a bench that cannot measure must say what broke. */
static void check(int rc, const char *what)
{
    if (rc == 0)
        return;
    char msg[160];
    mbedtls_strerror(rc, msg, sizeof(msg));
    fprintf(stderr, "crypto: %s: %s (-0x%04x)\n", what, msg, (unsigned)-rc);
    exit(1);
}

/* One operation of a measurement; arg is the measurement's own state (borrowed). */
typedef int (*op_fn)(void *arg);

/* Runs op for about `seconds` after a short warm-up; returns operations per second. */
static double rate(op_fn op, void *arg, const char *what)
{
    double warm_end = now() + seconds / 10;
    while (now() < warm_end)
        check(op(arg), what);
    unsigned long n = 0;
    double t0 = now(), t1;
    do {
        check(op(arg), what);
        n++;
    } while ((t1 = now()) - t0 < seconds);
    return (double)n / (t1 - t0);
}

/* --- AEAD: one TLS 1.2 record per operation (fresh nonce, 13-byte AAD, in place, tag) ------- */

typedef struct aead {
    mbedtls_gcm_context gcm;
    mbedtls_chachapoly_context chacha;
    unsigned char buf[RECORD_MAX];
    unsigned char nonce[12];
    unsigned char aad[TLS12_AAD];
    unsigned char tag[16];
    size_t len;
    unsigned long long seq;
} aead_t;

static void next_nonce(aead_t *a)
{
    a->seq++;
    memcpy(a->nonce + 4, &a->seq, 8); /* the explicit part; the first 4 bytes stay fixed */
    memcpy(a->aad, &a->seq, 8);
}

static int gcm_record(void *arg)
{
    aead_t *a = arg;
    next_nonce(a);
    return mbedtls_gcm_crypt_and_tag(&a->gcm, MBEDTLS_GCM_ENCRYPT, a->len, a->nonce, 12, a->aad,
                                     TLS12_AAD, a->buf, a->buf, 16, a->tag);
}

static int chacha_record(void *arg)
{
    aead_t *a = arg;
    next_nonce(a);
    return mbedtls_chachapoly_encrypt_and_tag(&a->chacha, a->len, a->nonce, a->aad, TLS12_AAD,
                                              a->buf, a->buf, a->tag);
}

static void bench_aead(void)
{
    static aead_t a;
    unsigned char key[32];
    check(mbedtls_ctr_drbg_random(&drbg, key, sizeof(key)), "key");
    for (size_t off = 0; off < sizeof(a.buf); off += MBEDTLS_CTR_DRBG_MAX_REQUEST)
        check(mbedtls_ctr_drbg_random(&drbg, a.buf + off, MBEDTLS_CTR_DRBG_MAX_REQUEST),
              "plaintext");
    mbedtls_gcm_init(&a.gcm);
    mbedtls_chachapoly_init(&a.chacha);
    check(mbedtls_gcm_setkey(&a.gcm, MBEDTLS_CIPHER_ID_AES, key, 128), "gcm key");
    check(mbedtls_chachapoly_setkey(&a.chacha, key), "chachapoly key");
    static const size_t sizes[] = {16384, 1024};
    static const char *const names[] = {"16k", "1k"};
    for (int s = 0; s < 2; s++) {
        a.len = sizes[s];
        double r = rate(gcm_record, &a, "AES-128-GCM");
        printf("aes128gcm_%s_gbps %.4f\n", names[s], r * (double)a.len / 1e9);
        fflush(stdout);
        r = rate(chacha_record, &a, "ChaCha20-Poly1305");
        printf("chachapoly_%s_gbps %.4f\n", names[s], r * (double)a.len / 1e9);
        fflush(stdout);
    }
    mbedtls_gcm_free(&a.gcm);
    mbedtls_chachapoly_free(&a.chacha);
}

/* --- ECDSA P-256 over a SHA-256 digest, DER signatures as in TLS ---------------------------- */

typedef struct sig {
    mbedtls_ecdsa_context key;
    unsigned char hash[32];
    unsigned char der[MBEDTLS_ECDSA_MAX_LEN];
    size_t der_len;
} ecdsa_bench_t;

static int ecdsa_sign(void *arg)
{
    ecdsa_bench_t *s = arg;
    s->hash[0]++; /* a new digest each time, as every handshake signs a new transcript */
    return mbedtls_ecdsa_write_signature(&s->key, MBEDTLS_MD_SHA256, s->hash, 32, s->der,
                                         &s->der_len, mbedtls_ctr_drbg_random, &drbg);
}

static int ecdsa_verify(void *arg)
{
    ecdsa_bench_t *s = arg;
    return mbedtls_ecdsa_read_signature(&s->key, s->hash, 32, s->der, s->der_len);
}

static void bench_ecdsa(void)
{
    static ecdsa_bench_t s;
    mbedtls_ecdsa_init(&s.key);
    check(mbedtls_ecdsa_genkey(&s.key, MBEDTLS_ECP_DP_SECP256R1, mbedtls_ctr_drbg_random, &drbg),
          "ECDSA key");
    check(mbedtls_sha256_ret((const unsigned char *)"remora", 6, s.hash, 0), "digest");
    printf("ecdsa_p256_sign %.1f\n", rate(ecdsa_sign, &s, "ECDSA sign"));
    fflush(stdout);
    check(ecdsa_sign(&s), "ECDSA sign");
    printf("ecdsa_p256_verify %.1f\n", rate(ecdsa_verify, &s, "ECDSA verify"));
    fflush(stdout);
    mbedtls_ecdsa_free(&s.key);
}

/* --- ECDH: the shared secret alone (what openssl speed times), and one side's whole
 * ephemeral exchange (a new key pair, then the shared secret) ------------------------------- */

typedef struct dh {
    mbedtls_ecp_group grp;
    mbedtls_mpi d, peer_d, z;
    mbedtls_ecp_point q, peer_q;
} dh_t;

static int ecdh_derive(void *arg)
{
    dh_t *x = arg;
    return mbedtls_ecdh_compute_shared(&x->grp, &x->z, &x->peer_q, &x->d, mbedtls_ctr_drbg_random,
                                       &drbg);
}

static int ecdh_exchange(void *arg)
{
    dh_t *x = arg;
    int rc = mbedtls_ecdh_gen_public(&x->grp, &x->d, &x->q, mbedtls_ctr_drbg_random, &drbg);
    if (rc != 0)
        return rc;
    return ecdh_derive(x);
}

static void bench_ecdh(mbedtls_ecp_group_id id, const char *name)
{
    dh_t x;
    mbedtls_ecp_group_init(&x.grp);
    mbedtls_mpi_init(&x.d);
    mbedtls_mpi_init(&x.peer_d);
    mbedtls_mpi_init(&x.z);
    mbedtls_ecp_point_init(&x.q);
    mbedtls_ecp_point_init(&x.peer_q);
    check(mbedtls_ecp_group_load(&x.grp, id), "ECP group");
    check(mbedtls_ecdh_gen_public(&x.grp, &x.d, &x.q, mbedtls_ctr_drbg_random, &drbg), "ECDH key");
    check(mbedtls_ecdh_gen_public(&x.grp, &x.peer_d, &x.peer_q, mbedtls_ctr_drbg_random, &drbg),
          "ECDH peer key");
    printf("ecdh_%s_derive %.1f\n", name, rate(ecdh_derive, &x, "ECDH"));
    fflush(stdout);
    printf("ecdh_%s_exchange %.1f\n", name, rate(ecdh_exchange, &x, "ECDHE"));
    fflush(stdout);
    mbedtls_ecp_point_free(&x.q);
    mbedtls_ecp_point_free(&x.peer_q);
    mbedtls_mpi_free(&x.d);
    mbedtls_mpi_free(&x.peer_d);
    mbedtls_mpi_free(&x.z);
    mbedtls_ecp_group_free(&x.grp);
}

/* --- TLS 1.2 mTLS handshakes in memory ------------------------------------------------------ */

/* Bytes one side has sent and the other not yet read. */
typedef struct mem_pipe {
    unsigned char buf[PIPE_BYTES];
    size_t len;
    size_t total; /* bytes ever sent through it, for telling a resumption from a full handshake */
} mem_pipe_t;

typedef struct end {
    mem_pipe_t *in, *out;
} end_t;

static int pipe_send(void *ctx, const unsigned char *b, size_t n)
{
    mem_pipe_t *p = ((end_t *)ctx)->out;
    if (n > PIPE_BYTES - p->len)
        n = PIPE_BYTES - p->len;
    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    memcpy(p->buf + p->len, b, n);
    p->len += n;
    p->total += n;
    return (int)n;
}

static int pipe_recv(void *ctx, unsigned char *b, size_t n)
{
    mem_pipe_t *p = ((end_t *)ctx)->in;
    if (p->len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > p->len)
        n = p->len;
    memcpy(b, p->buf, n);
    memmove(p->buf, p->buf + n, p->len - n);
    p->len -= n;
    return (int)n;
}

typedef struct hs {
    mbedtls_x509_crt ca, leaf;
    mbedtls_pk_context ca_key, leaf_key;
    mbedtls_ssl_config cli_conf, srv_conf;
    mbedtls_ssl_ticket_context tickets;
    mbedtls_ssl_context cli, srv;
    mbedtls_ssl_session saved; /* the client's session, for resumption */
    bool resume;
    mem_pipe_t c2s, s2c;
    end_t cli_end, srv_end;
} hs_t;

static void make_key(mbedtls_pk_context *pk)
{
    mbedtls_pk_init(pk);
    check(mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), "pk setup");
    check(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk), mbedtls_ctr_drbg_random,
                              &drbg),
          "P-256 key");
}

/* A certificate for subject_key signed by issuer_key, parsed into chain (appended). */
static void make_cert(mbedtls_x509_crt *chain, mbedtls_pk_context *subject_key, const char *subject,
                      mbedtls_pk_context *issuer_key, const char *issuer, int is_ca, int serial)
{
    mbedtls_x509write_cert w;
    mbedtls_mpi sn;
    unsigned char der[CERT_DER];
    mbedtls_x509write_crt_init(&w);
    mbedtls_mpi_init(&sn);
    check(mbedtls_mpi_lset(&sn, serial), "serial");
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, subject_key);
    mbedtls_x509write_crt_set_issuer_key(&w, issuer_key);
    check(mbedtls_x509write_crt_set_subject_name(&w, subject), "subject");
    check(mbedtls_x509write_crt_set_issuer_name(&w, issuer), "issuer");
    check(mbedtls_x509write_crt_set_serial(&w, &sn), "serial");
    check(mbedtls_x509write_crt_set_validity(&w, "20240101000000", "20991231235959"), "validity");
    check(mbedtls_x509write_crt_set_basic_constraints(&w, is_ca, -1), "basic constraints");
    int len = mbedtls_x509write_crt_der(&w, der, sizeof(der), mbedtls_ctr_drbg_random, &drbg);
    if (len < 0)
        check(len, "certificate");
    /* The DER is written at the end of the buffer. */
    check(mbedtls_x509_crt_parse_der(chain, der + sizeof(der) - len, (size_t)len), "parse cert");
    mbedtls_x509write_crt_free(&w);
    mbedtls_mpi_free(&sn);
}

static const int suites[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0};
static const int sha256_only[] = {MBEDTLS_MD_SHA256, MBEDTLS_MD_NONE};
/* The client offers both groups; the server's list picks one (server preference). */
static const mbedtls_ecp_group_id cli_groups[] = {MBEDTLS_ECP_DP_CURVE25519,
                                                  MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE};
static const mbedtls_ecp_group_id p256_only[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE};
static const mbedtls_ecp_group_id x25519_first[] = {MBEDTLS_ECP_DP_CURVE25519,
                                                    MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE};

static void conf_side(mbedtls_ssl_config *c, int endpoint, hs_t *h)
{
    mbedtls_ssl_config_init(c);
    check(mbedtls_ssl_config_defaults(c, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                      MBEDTLS_SSL_PRESET_DEFAULT),
          "config defaults");
    mbedtls_ssl_conf_rng(c, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_ssl_conf_min_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(c, suites);
    mbedtls_ssl_conf_sig_hashes(c, sha256_only);
    /* Mutual TLS: each side presents the leaf and requires the peer's chain to the CA. */
    mbedtls_ssl_conf_authmode(c, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(c, &h->ca, NULL);
    check(mbedtls_ssl_conf_own_cert(c, &h->leaf, &h->leaf_key), "own cert");
}

static void hs_init(hs_t *h)
{
    memset(h, 0, sizeof(*h));
    mbedtls_x509_crt_init(&h->ca);
    mbedtls_x509_crt_init(&h->leaf);
    make_key(&h->ca_key);
    make_key(&h->leaf_key);
    make_cert(&h->ca, &h->ca_key, "CN=remora bench CA", &h->ca_key, "CN=remora bench CA", 1, 1);
    make_cert(&h->leaf, &h->leaf_key, "CN=" CN, &h->ca_key, "CN=remora bench CA", 0, 2);

    conf_side(&h->cli_conf, MBEDTLS_SSL_IS_CLIENT, h);
    mbedtls_ssl_conf_curves(&h->cli_conf, cli_groups);
    conf_side(&h->srv_conf, MBEDTLS_SSL_IS_SERVER, h);
    mbedtls_ssl_ticket_init(&h->tickets);
    check(mbedtls_ssl_ticket_setup(&h->tickets, mbedtls_ctr_drbg_random, &drbg,
                                   MBEDTLS_CIPHER_AES_256_GCM, 3600),
          "ticket key");
    mbedtls_ssl_conf_session_tickets_cb(&h->srv_conf, mbedtls_ssl_ticket_write,
                                        mbedtls_ssl_ticket_parse, &h->tickets);

    mbedtls_ssl_init(&h->cli);
    mbedtls_ssl_init(&h->srv);
    check(mbedtls_ssl_setup(&h->cli, &h->cli_conf), "client setup");
    check(mbedtls_ssl_setup(&h->srv, &h->srv_conf), "server setup");
    h->cli_end = (end_t){.in = &h->s2c, .out = &h->c2s};
    h->srv_end = (end_t){.in = &h->c2s, .out = &h->s2c};
    mbedtls_ssl_set_bio(&h->cli, &h->cli_end, pipe_send, pipe_recv, NULL);
    mbedtls_ssl_set_bio(&h->srv, &h->srv_end, pipe_send, pipe_recv, NULL);
    mbedtls_ssl_session_init(&h->saved);
}

static void hs_free(hs_t *h)
{
    mbedtls_ssl_session_free(&h->saved);
    mbedtls_ssl_free(&h->cli);
    mbedtls_ssl_free(&h->srv);
    mbedtls_ssl_ticket_free(&h->tickets);
    mbedtls_ssl_config_free(&h->cli_conf);
    mbedtls_ssl_config_free(&h->srv_conf);
    mbedtls_x509_crt_free(&h->ca);
    mbedtls_x509_crt_free(&h->leaf);
    mbedtls_pk_free(&h->ca_key);
    mbedtls_pk_free(&h->leaf_key);
}

static bool pending(int rc)
{
    return rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE;
}

/* One connection's handshake, both sides driven in turn until both are done. The contexts are
 * reset, not rebuilt, so this is the protocol and its crypto, not buffer allocation. */
static int handshake(void *arg)
{
    hs_t *h = arg;
    int rc;
    if ((rc = mbedtls_ssl_session_reset(&h->cli)) != 0 ||
        (rc = mbedtls_ssl_session_reset(&h->srv)) != 0)
        return rc;
    if ((rc = mbedtls_ssl_set_hostname(&h->cli, CN)) != 0)
        return rc;
    if (h->resume && (rc = mbedtls_ssl_set_session(&h->cli, &h->saved)) != 0)
        return rc;
    h->c2s.len = h->s2c.len = 0;
    h->s2c.total = 0;
    bool cli_done = false, srv_done = false;
    for (int step = 0; !(cli_done && srv_done); step++) {
        if (step == STEP_LIMIT)
            return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
        if (!cli_done) {
            rc = mbedtls_ssl_handshake(&h->cli);
            if (rc == 0)
                cli_done = true;
            else if (!pending(rc))
                return rc;
        }
        if (!srv_done) {
            rc = mbedtls_ssl_handshake(&h->srv);
            if (rc == 0)
                srv_done = true;
            else if (!pending(rc))
                return rc;
        }
    }
    /* A resumption sends no certificate; if the server sent one, the ticket was not used. */
    if (h->resume && h->s2c.total > RESUMED_MAX)
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    return 0;
}

static void bench_handshakes(void)
{
    static hs_t h;
    hs_init(&h);
    mbedtls_ssl_conf_curves(&h.srv_conf, p256_only);
    printf("tls12_handshake_p256 %.1f\n", rate(handshake, &h, "handshake (P-256)"));
    fflush(stdout);
    size_t full_bytes = h.s2c.total;
    mbedtls_ssl_conf_curves(&h.srv_conf, x25519_first);
    printf("tls12_handshake_x25519 %.1f\n", rate(handshake, &h, "handshake (X25519)"));
    fflush(stdout);
    check(mbedtls_ssl_get_session(&h.cli, &h.saved), "get session");
    h.resume = true;
    printf("tls12_resume_ticket %.1f\n", rate(handshake, &h, "resumption"));
    fprintf(stderr, "crypto: server bytes per handshake: full %zu, resumed %zu\n", full_bytes,
            h.s2c.total);
    fflush(stdout);
    hs_free(&h);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        char *end;
        errno = 0;
        seconds = strtod(argv[1], &end);
        if (errno != 0 || *end != '\0' || seconds <= 0) {
            fprintf(stderr, "usage: %s [SECONDS]\n", argv[0]);
            return 2;
        }
    }
    char version[32];
    mbedtls_version_get_string_full(version);
    printf("version %s\n", version);
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    check(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
                                (const unsigned char *)"remora-bench", 12),
          "DRBG seed");
    bench_aead();
    bench_ecdsa();
    bench_ecdh(MBEDTLS_ECP_DP_SECP256R1, "p256");
    bench_ecdh(MBEDTLS_ECP_DP_CURVE25519, "x25519");
    bench_handshakes();
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    return 0;
}
