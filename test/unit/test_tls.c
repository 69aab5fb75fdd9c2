/* TLS engine: a client and a server session talk to each other entirely in memory (one's
 * output fed to the other), through mutual handshakes, data both ways, resumption and every
 * classified failure; configs refuse bad key pairs at load. Fixtures: test/data/certs (gen.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "certs/tls.h"
#include "certs/tls_internal.h" /* the config's keys, for the base-point table test */
#include <mbedtls/ecdsa.h>

#define CERTS "test/data/certs/"

static const char *const ALPN_CLIENT[] = {"h2", "http/1.1"};
static const char *const ALPN_SERVER[] = {"http/1.1", "h2"};

#define SPIFFE_CLIENT "spiffe://cluster.local/ns/default/sa/client"
#define SPIFFE_SERVER "spiffe://cluster.local/ns/default/sa/server"

/* --- helpers ------------------------------------------------------------------------------ */

static tls_pem_source_t file(const char *name)
{
    static char paths[16][128];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, 128, CERTS "%s", name);
    return (tls_pem_source_t){.path = p};
}

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

static tls_config_opts_t server_opts(void)
{
    return (tls_config_opts_t){
        .role = TLS_ROLE_SERVER,
        .cert_chain = file("server.pem"),
        .private_key = file("server.key"),
        .trust_bundle = file("root-a.pem"),
        .require_client_cert = true,
        .alpn = ALPN_SERVER,
        .alpn_count = 2,
    };
}

static tls_config_opts_t client_opts(void)
{
    return (tls_config_opts_t){
        .role = TLS_ROLE_CLIENT,
        .cert_chain = file("client.pem"),
        .private_key = file("client.key"),
        .trust_bundle = file("root-a.pem"),
        .alpn = ALPN_CLIENT,
        .alpn_count = 2,
        .sni = "server.default.svc.cluster.local",
    };
}

static tls_config_t *make_config(const tls_config_opts_t *o)
{
    char err[512];
    tls_config_t *c = NULL;
    int rc = tls_config_new(o, &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("config refused: %s", err);
    return c;
}

/* One side of an in-memory connection: its session and where its plaintext lands. */
typedef struct end {
    tls_session_t *s;
    unsigned char *rx;
    size_t rx_len, rx_cap;
} end_t;

static end_t new_end(tls_config_t *c, const tls_saved_session_t *resume, size_t rx_cap)
{
    end_t e = {NULL, NULL, 0, rx_cap};
    assert_int_equal(tls_session_new(c, resume, &e.s), 0);
    if (rx_cap) {
        e.rx = malloc(rx_cap);
        assert_non_null(e.rx);
    }
    return e;
}

static void free_end(end_t *e)
{
    tls_session_free(e->s);
    free(e->rx);
}

/* Lets e use what it has been fed: handshake, then plaintext into its rx buffer. */
static void drive(end_t *e)
{
    if (tls_session_state(e->s) == TLS_STATE_HANDSHAKE && tls_handshake_step(e->s) != 0)
        return;
    while (e->rx_len < e->rx_cap) {
        int rc = tls_read(e->s, e->rx + e->rx_len, e->rx_cap - e->rx_len);
        if (rc <= 0)
            break;
        e->rx_len += (size_t)rc;
    }
}

/* Moves from's queued ciphertext to `to`, at most `piece` bytes per window, as long as `to`
 * takes it. Returns the bytes moved. */
static size_t flow(end_t *from, end_t *to, size_t piece)
{
    size_t moved = 0;
    const void *p;
    size_t len;
    while (tls_pending_output(from->s, &p, &len) > 0) {
        if (len > piece)
            len = piece;
        tls_feed(to->s, p, len);
        drive(to);
        size_t taken = len - tls_feed_left(to->s);
        tls_consume_output(from->s, taken);
        moved += taken;
        if (taken < len)
            break;
    }
    tls_feed(to->s, NULL, 0);
    return moved;
}

static void pump(end_t *a, end_t *b, size_t piece)
{
    for (int i = 0; i < 100000; i++)
        if (flow(a, b, piece) + flow(b, a, piece) == 0)
            return;
    fail_msg("the two ends never settled");
}

/* Runs a handshake between client c and server s to its end, either way. */
static void handshake(end_t *c, end_t *s, size_t piece)
{
    tls_handshake_step(c->s);
    pump(c, s, piece);
}

static void assert_open(const end_t *e)
{
    if (tls_session_state(e->s) != TLS_STATE_OPEN) {
        char why[256];
        fail_msg("state %s: %s", tls_state_name(tls_session_state(e->s)),
                 tls_session_error(e->s, why, sizeof(why)));
    }
}

static void assert_failed(const end_t *e, tls_fail_reason_t why)
{
    assert_int_equal(tls_session_state(e->s), TLS_STATE_FAILED);
    assert_string_equal(tls_fail_reason_name(tls_session_fail_reason(e->s)),
                        tls_fail_reason_name(why));
}

/* A pair of configs and ends built from the given options, handshake done. */
typedef struct pair {
    tls_config_t *cc, *sc;
    end_t c, s;
} pair_t;

static pair_t connect_pair(const tls_config_opts_t *co, const tls_config_opts_t *so, size_t rx_cap)
{
    pair_t p;
    p.cc = make_config(co);
    p.sc = make_config(so);
    p.c = new_end(p.cc, NULL, rx_cap);
    p.s = new_end(p.sc, NULL, rx_cap);
    handshake(&p.c, &p.s, SIZE_MAX);
    return p;
}

static void free_pair(pair_t *p)
{
    free_end(&p->c);
    free_end(&p->s);
    tls_config_unref(p->cc);
    tls_config_unref(p->sc);
}

/* Writes all of data from `from` to `to`, draining as it goes; checks the output bound. */
static void send_all(end_t *from, end_t *to, const unsigned char *data, size_t len, size_t hw)
{
    size_t sent = 0;
    while (sent < len || tls_pending_output(from->s, NULL, NULL) > 0) {
        if (sent < len) {
            int rc = tls_write(from->s, data + sent, len - sent);
            if (rc == TLS_ERR_WANT_WRITE) {
                assert_true(tls_pending_output(from->s, NULL, NULL) >= hw);
            } else {
                assert_true(rc > 0);
                sent += (size_t)rc;
            }
        }
        /* Over the mark by at most one record and its overhead. */
        assert_true(tls_pending_output(from->s, NULL, NULL) <= hw + TLS_MAX_RECORD + 64);
        size_t before = to->rx_len;
        if (flow(from, to, 7000) == 0 && sent == len && to->rx_len == before)
            break;
    }
}

/* --- handshakes ----------------------------------------------------------------------------- */

static void test_tls_mutual_handshake_shows_identities_alpn_and_suite(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    pair_t p = connect_pair(&co, &so, 0);
    assert_open(&p.c);
    assert_open(&p.s);
    assert_string_equal(tls_state_name(tls_session_state(p.c.s)), "open");
    assert_string_equal(tls_session_peer_spiffe_id(p.c.s), SPIFFE_SERVER);
    assert_string_equal(tls_session_peer_spiffe_id(p.s.s), SPIFFE_CLIENT);
    /* The server's preference order decides. */
    assert_string_equal(tls_session_alpn(p.c.s), "http/1.1");
    assert_string_equal(tls_session_alpn(p.s.s), "http/1.1");
    assert_string_equal(tls_session_cipher(p.c.s), "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256");
    assert_string_equal(tls_session_cipher(p.s.s), tls_session_cipher(p.c.s));
    assert_string_equal(tls_session_version(p.c.s), "TLSv1.2");
    assert_false(tls_session_resumed(p.c.s));
    assert_false(tls_session_resumed(p.s.s));
    assert_string_equal(tls_session_server_name(p.s.s), "server.default.svc.cluster.local");
    assert_int_equal(tls_session_fail_reason(p.c.s), TLS_FAIL_NONE);
    assert_int_equal(tls_pending_output(p.c.s, NULL, NULL), 0);
    free_pair(&p);
}

/* The config's own key and trust anchors sign and verify with a base-point table computed when
 * the config was built, so no handshake rebuilds it and no worker writes to the shared keys. */
static void test_tls_config_keys_carry_a_precomputed_base_point_table(void **state)
{
    (void)state;
    tls_config_opts_t so = server_opts();
    tls_config_t *c = make_config(&so);
    assert_int_equal(mbedtls_pk_get_type(&c->key), MBEDTLS_PK_ECDSA);
    assert_non_null(mbedtls_pk_ec(c->key)->grp.T);
    assert_true(c->trust.raw.p != NULL);
    assert_int_equal(mbedtls_pk_get_type(&c->trust.pk), MBEDTLS_PK_ECDSA);
    assert_non_null(mbedtls_pk_ec(c->trust.pk)->grp.T);
    /* A signature by the moved key still verifies with the leaf certificate's public key. */
    unsigned char hash[32] = {1, 2, 3}, sig[MBEDTLS_ECDSA_MAX_LEN];
    size_t len = 0;
    assert_int_equal(
        mbedtls_pk_sign(&c->key, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, &len, tls_rng, NULL),
        0);
    assert_int_equal(
        mbedtls_pk_verify(&c->chain.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, len), 0);
    tls_config_unref(c);
}

static void test_tls_configured_suite_order_picks_aes_gcm(void **state)
{
    (void)state;
    static const tls_suite_t aes_first[] = {TLS_SUITE_AES_128_GCM, TLS_SUITE_CHACHA20_POLY1305};
    static const tls_group_t p256[] = {TLS_GROUP_P256};
    tls_config_opts_t co = client_opts(), so = server_opts();
    so.suites = aes_first;
    so.suite_count = 2;
    so.groups = p256;
    so.group_count = 1;
    pair_t p = connect_pair(&co, &so, 0);
    assert_open(&p.c);
    assert_string_equal(tls_session_cipher(p.c.s), "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256");
    free_pair(&p);
}

/* Envoy's example configs carry RSA certificates: an RSA-keyed server is chosen an ECDHE-RSA
 * suite, an RSA client certificate signs its CertificateVerify, and both verify as usual. */
static void test_tls_rsa_server_and_client_certificates_handshake(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    so.cert_chain = file("rsa-server.pem");
    so.private_key = file("rsa-server.key");
    co.cert_chain = file("rsa-client.pem");
    co.private_key = file("rsa-client.key");
    pair_t p = connect_pair(&co, &so, 0);
    assert_open(&p.c);
    assert_open(&p.s);
    assert_string_equal(tls_session_cipher(p.c.s), "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256");
    assert_string_equal(tls_session_peer_spiffe_id(p.c.s), SPIFFE_SERVER);
    assert_string_equal(tls_session_peer_spiffe_id(p.s.s), SPIFFE_CLIENT);
    free_pair(&p);
    /* An EC server keeps the ECDSA suites with the same client. */
    so = server_opts();
    p = connect_pair(&co, &so, 0);
    assert_open(&p.c);
    assert_string_equal(tls_session_cipher(p.c.s), "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256");
    free_pair(&p);
}

static void test_tls_x25519_only_server_still_accepts_p256_certificates(void **state)
{
    (void)state;
    static const tls_group_t x25519[] = {TLS_GROUP_X25519};
    tls_config_opts_t co = client_opts(), so = server_opts();
    so.groups = co.groups = x25519;
    so.group_count = co.group_count = 1;
    pair_t p = connect_pair(&co, &so, 0);
    assert_open(&p.c);
    assert_open(&p.s);
    free_pair(&p);
}

static void test_tls_handshake_completes_when_fed_one_byte_at_a_time(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    tls_config_t *cc = make_config(&co), *sc = make_config(&so);
    end_t c = new_end(cc, NULL, 64), s = new_end(sc, NULL, 64);
    handshake(&c, &s, 1);
    assert_open(&c);
    assert_open(&s);
    assert_int_equal(tls_write(c.s, "ping", 4), 4);
    pump(&c, &s, 1);
    assert_int_equal(s.rx_len, 4);
    assert_memory_equal(s.rx, "ping", 4);
    free_end(&c);
    free_end(&s);
    tls_config_unref(cc);
    tls_config_unref(sc);
}

static void test_tls_dns_and_prefix_matchers_accept_the_server(void **state)
{
    (void)state;
    const identity_matcher_t want[] = {
        {IDENTITY_SAN_URI, IDENTITY_MATCH_EXACT, "spiffe://cluster.local/ns/prod/sa/server"},
        {IDENTITY_SAN_DNS, IDENTITY_MATCH_EXACT, "SERVER.default.svc.cluster.local"},
    };
    const identity_matcher_t client_ns[] = {
        {IDENTITY_SAN_URI, IDENTITY_MATCH_PREFIX, "spiffe://cluster.local/ns/default/"},
    };
    tls_config_opts_t co = client_opts(), so = server_opts();
    co.peer_identities = want;
    co.peer_identity_count = 2;
    so.peer_identities = client_ns;
    so.peer_identity_count = 1;
    pair_t p = connect_pair(&co, &so, 0);
    assert_open(&p.c);
    assert_open(&p.s);
    assert_true(tls_session_peer_matches(p.s.s, client_ns, 1));
    assert_false(tls_session_peer_matches(p.s.s, want, 2));
    free_pair(&p);
}

static void test_tls_sni_is_sent_but_not_checked_against_the_certificate(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    co.sni = "outbound_.8080_._.server.default.svc.cluster.local"; /* Istio's form */
    pair_t p = connect_pair(&co, &so, 0);
    assert_open(&p.c);
    assert_open(&p.s);
    assert_string_equal(tls_session_server_name(p.s.s), co.sni);
    free_pair(&p);
}

/* --- data ----------------------------------------------------------------------------------- */

static void test_tls_data_flows_both_ways(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    pair_t p = connect_pair(&co, &so, 256);
    assert_int_equal(tls_write(p.c.s, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    pump(&p.c, &p.s, SIZE_MAX);
    assert_int_equal(p.s.rx_len, 18);
    assert_memory_equal(p.s.rx, "GET / HTTP/1.1\r\n\r\n", 18);
    assert_int_equal(tls_write(p.s.s, "HTTP/1.1 204 \r\n\r\n", 17), 17);
    pump(&p.c, &p.s, SIZE_MAX);
    assert_int_equal(p.c.rx_len, 17);
    assert_memory_equal(p.c.rx, "HTTP/1.1 204 \r\n\r\n", 17);
    free_pair(&p);
}

static unsigned char *pattern(size_t len, unsigned seed)
{
    unsigned char *b = malloc(len);
    assert_non_null(b);
    uint32_t x = seed;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (unsigned char)(x >> 16);
    }
    return b;
}

static void test_tls_megabyte_arrives_byte_for_byte_both_ways(void **state)
{
    (void)state;
    const size_t mib = 1024 * 1024;
    tls_config_opts_t co = client_opts(), so = server_opts();
    pair_t p = connect_pair(&co, &so, mib);
    unsigned char *up = pattern(mib, 1), *down = pattern(mib, 2);
    send_all(&p.c, &p.s, up, mib, TLS_DEFAULT_HIGH_WATER);
    assert_int_equal(p.s.rx_len, mib);
    assert_memory_equal(p.s.rx, up, mib);
    send_all(&p.s, &p.c, down, mib, TLS_DEFAULT_HIGH_WATER);
    assert_int_equal(p.c.rx_len, mib);
    assert_memory_equal(p.c.rx, down, mib);
    free(up);
    free(down);
    free_pair(&p);
}

static void test_tls_write_stops_at_high_water_and_resumes_after_drain(void **state)
{
    (void)state;
    const size_t len = 200 * 1024, hw = 40 * 1024;
    tls_config_opts_t co = client_opts(), so = server_opts();
    co.output_high_water = hw;
    co.record_size = 4096;
    pair_t p = connect_pair(&co, &so, len);
    unsigned char *data = pattern(len, 3);
    int rc = tls_write(p.c.s, data, len);
    assert_true(rc > 0 && (size_t)rc < len);
    assert_int_equal(rc % 4096, 0); /* whole records */
    size_t queued = tls_pending_output(p.c.s, NULL, NULL);
    assert_true(queued >= hw && queued <= hw + 4096 + 64);
    assert_int_equal(tls_write(p.c.s, data + rc, len - (size_t)rc), TLS_ERR_WANT_WRITE);
    /* The queued chunks, gathered for one writev, add up to what is pending. */
    struct iovec iov[8];
    int n = tls_output_iov(p.c.s, iov, 8);
    size_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += iov[i].iov_len;
    assert_int_equal(sum, queued);
    send_all(&p.c, &p.s, data + rc, len - (size_t)rc, hw);
    assert_int_equal(p.s.rx_len, len);
    assert_memory_equal(p.s.rx, data, len);
    free(data);
    free_pair(&p);
}

static void test_tls_close_notify_ends_the_peer_read_side(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    pair_t p = connect_pair(&co, &so, 64);
    assert_int_equal(tls_write(p.c.s, "bye", 3), 3);
    assert_int_equal(tls_close_notify(p.c.s), 0);
    assert_int_equal(tls_session_state(p.c.s), TLS_STATE_WRITE_CLOSED);
    assert_int_equal(tls_write(p.c.s, "x", 1), TLS_ERR_CLOSED);
    pump(&p.c, &p.s, SIZE_MAX);
    assert_int_equal(p.s.rx_len, 3);
    assert_int_equal(tls_session_state(p.s.s), TLS_STATE_READ_CLOSED);
    assert_int_equal(tls_read(p.s.s, p.s.rx, 64), 0);
    /* The server may still answer before closing its side. */
    assert_int_equal(tls_write(p.s.s, "ok", 2), 2);
    assert_int_equal(tls_close_notify(p.s.s), 0);
    assert_int_equal(tls_session_state(p.s.s), TLS_STATE_CLOSED);
    pump(&p.c, &p.s, SIZE_MAX);
    assert_int_equal(p.c.rx_len, 2);
    assert_int_equal(tls_session_state(p.c.s), TLS_STATE_CLOSED);
    free_pair(&p);
}

/* --- resumption ----------------------------------------------------------------------------- */

static void test_tls_second_handshake_resumes_with_saved_session(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    pair_t p = connect_pair(&co, &so, 64);
    tls_saved_session_t *saved = tls_session_save(p.c.s);
    assert_non_null(saved);
    assert_null(tls_session_save(p.s.s)); /* servers resume through tickets only */

    end_t c = new_end(p.cc, saved, 64), s = new_end(p.sc, NULL, 64);
    handshake(&c, &s, SIZE_MAX);
    assert_open(&c);
    assert_open(&s);
    assert_true(tls_session_resumed(c.s));
    assert_true(tls_session_resumed(s.s));
    assert_string_equal(tls_session_peer_spiffe_id(c.s), SPIFFE_SERVER);
    assert_string_equal(tls_session_peer_spiffe_id(s.s), SPIFFE_CLIENT);
    assert_string_equal(tls_session_alpn(c.s), "http/1.1");
    assert_int_equal(tls_write(c.s, "again", 5), 5);
    pump(&c, &s, SIZE_MAX);
    assert_memory_equal(s.rx, "again", 5);
    free_end(&c);
    free_end(&s);
    tls_saved_session_free(saved);
    free_pair(&p);
}

static void test_tls_ticket_from_another_server_config_gets_a_full_handshake(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    pair_t p = connect_pair(&co, &so, 0);
    tls_saved_session_t *saved = tls_session_save(p.c.s);
    assert_non_null(saved);
    tls_config_t *rotated = make_config(&so); /* new ticket keys */
    end_t c = new_end(p.cc, saved, 0), s = new_end(rotated, NULL, 0);
    handshake(&c, &s, SIZE_MAX);
    assert_open(&c);
    assert_open(&s);
    assert_false(tls_session_resumed(c.s));
    assert_false(tls_session_resumed(s.s));
    assert_string_equal(tls_session_peer_spiffe_id(s.s), SPIFFE_CLIENT);
    free_end(&c);
    free_end(&s);
    tls_config_unref(rotated);
    tls_saved_session_free(saved);
    free_pair(&p);
}

static void test_tls_resumption_still_checks_the_expected_identity(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    pair_t p = connect_pair(&co, &so, 0);
    tls_saved_session_t *saved = tls_session_save(p.c.s);
    const identity_matcher_t other[] = {
        {IDENTITY_SAN_URI, IDENTITY_MATCH_EXACT, "spiffe://cluster.local/ns/default/sa/db"},
    };
    co.peer_identities = other;
    co.peer_identity_count = 1;
    tls_config_t *strict = make_config(&co);
    end_t c = new_end(strict, saved, 0), s = new_end(p.sc, NULL, 0);
    handshake(&c, &s, SIZE_MAX);
    assert_failed(&c, TLS_FAIL_VERIFY_SAN);
    free_end(&c);
    free_end(&s);
    tls_config_unref(strict);
    tls_saved_session_free(saved);
    free_pair(&p);
}

/* Worker threads share one pair of configs (and so the server's ticket keys), each with its
 * own random generator and output cache, and resume each other's sessions. */
typedef struct worker_run {
    tls_config_t *cc, *sc;
    const tls_saved_session_t *shared; /* saved by the main thread */
    int opened, resumed;
} worker_run_t;

static void *worker_handshakes(void *arg)
{
    worker_run_t *w = arg;
    for (int i = 0; i < 6; i++) {
        end_t c = new_end(w->cc, i % 2 ? w->shared : NULL, 16), s = new_end(w->sc, NULL, 16);
        handshake(&c, &s, SIZE_MAX);
        if (tls_write(c.s, "worker", 6) == 6)
            pump(&c, &s, SIZE_MAX);
        if (tls_session_state(c.s) == TLS_STATE_OPEN && s.rx_len == 6 &&
            memcmp(s.rx, "worker", 6) == 0)
            w->opened++;
        w->resumed += tls_session_resumed(c.s) && tls_session_resumed(s.s);
        free_end(&c);
        free_end(&s);
    }
    tls_thread_cleanup();
    return NULL;
}

static void test_tls_worker_threads_share_configs_and_resume_each_others_tickets(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    pair_t p = connect_pair(&co, &so, 0);
    tls_saved_session_t *saved = tls_session_save(p.c.s);
    assert_non_null(saved);
    worker_run_t runs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        runs[i] = (worker_run_t){p.cc, p.sc, saved, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_handshakes, &runs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(runs[i].opened, 6);
        assert_int_equal(runs[i].resumed, 3);
    }
    tls_saved_session_free(saved);
    free_pair(&p);
}

/* --- failures ------------------------------------------------------------------------------- */

static void test_tls_server_from_another_trust_domain_fails_verify_error(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    so.cert_chain = file("other-server.pem");
    so.private_key = file("other-server.key");
    so.trust_bundle = (tls_pem_source_t){0};
    so.require_client_cert = false;
    pair_t p = connect_pair(&co, &so, 0);
    assert_failed(&p.c, TLS_FAIL_VERIFY_ERROR);
    assert_failed(&p.s, TLS_FAIL_CONNECTION_ERROR); /* the client's alert */
    char why[256];
    assert_non_null(strstr(tls_session_error(p.c.s, why, sizeof(why)), "fail_verify_error"));
    assert_null(tls_session_peer_spiffe_id(p.c.s));
    assert_null(tls_session_alpn(p.c.s));
    free_pair(&p);
}

static void test_tls_unexpected_server_spiffe_id_fails_verify_san(void **state)
{
    (void)state;
    const identity_matcher_t want[] = {
        {IDENTITY_SAN_URI, IDENTITY_MATCH_EXACT, "spiffe://cluster.local/ns/default/sa/db"},
    };
    tls_config_opts_t co = client_opts(), so = server_opts();
    co.peer_identities = want;
    co.peer_identity_count = 1;
    pair_t p = connect_pair(&co, &so, 0);
    assert_failed(&p.c, TLS_FAIL_VERIFY_SAN);
    assert_failed(&p.s, TLS_FAIL_CONNECTION_ERROR);
    free_pair(&p);
}

static void test_tls_unexpected_client_spiffe_id_fails_verify_san_on_server(void **state)
{
    (void)state;
    const identity_matcher_t want[] = {
        {IDENTITY_SAN_URI, IDENTITY_MATCH_PREFIX, "spiffe://cluster.local/ns/prod/"},
    };
    tls_config_opts_t co = client_opts(), so = server_opts();
    so.peer_identities = want;
    so.peer_identity_count = 1;
    pair_t p = connect_pair(&co, &so, 0);
    assert_failed(&p.s, TLS_FAIL_VERIFY_SAN);
    assert_failed(&p.c, TLS_FAIL_CONNECTION_ERROR);
    free_pair(&p);
}

static void test_tls_client_without_cert_fails_verify_no_cert_on_server(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    co.cert_chain = co.private_key = (tls_pem_source_t){0};
    pair_t p = connect_pair(&co, &so, 0);
    assert_failed(&p.s, TLS_FAIL_VERIFY_NO_CERT);
    assert_failed(&p.c, TLS_FAIL_CONNECTION_ERROR);
    free_pair(&p);
}

static void test_tls_optional_client_cert_may_be_absent(void **state)
{
    (void)state;
    tls_config_opts_t co = client_opts(), so = server_opts();
    co.cert_chain = co.private_key = (tls_pem_source_t){0};
    so.require_client_cert = false;
    pair_t p = connect_pair(&co, &so, 0);
    assert_open(&p.c);
    assert_open(&p.s);
    assert_null(tls_session_peer_spiffe_id(p.s.s));
    identity_cert_info_t info;
    assert_int_equal(tls_session_peer_cert_info(p.s.s, 0, &info), -ENOENT);
    free_pair(&p);
}

static void test_tls_optional_client_cert_is_still_verified_when_presented(void **state)
{
    (void)state;
    size_t la, lb;
    char *a = slurp("root-a.pem", &la), *b = slurp("root-b.pem", &lb);
    char *both = malloc(la + lb);
    memcpy(both, a, la);
    memcpy(both + la, b, lb);
    tls_config_opts_t co = client_opts(), so = server_opts();
    co.cert_chain = file("other-server.pem"); /* a clientAuth leaf of other.local */
    co.private_key = file("other-server.key");
    co.trust_bundle = (tls_pem_source_t){.pem = both, .pem_len = la + lb};
    so.require_client_cert = false;
    pair_t p = connect_pair(&co, &so, 0);
    assert_failed(&p.s, TLS_FAIL_VERIFY_ERROR);
    free_pair(&p);
    free(a);
    free(b);
    free(both);
}

/* --- config loading ------------------------------------------------------------------------- */

static void assert_refused(const tls_config_opts_t *o, const char *needle)
{
    char err[512];
    tls_config_t *c = NULL;
    assert_int_equal(tls_config_new(o, &c, err, sizeof(err)), TLS_ERR_CONFIG);
    assert_null(c);
    if (strstr(err, needle) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err, needle);
}

static void test_tls_config_rejects_key_not_matching_cert(void **state)
{
    (void)state;
    tls_config_opts_t o = server_opts();
    o.private_key = file("mismatched.key");
    assert_refused(&o, "mismatched.key does not match the leaf certificate of cert_chain "
                       "test/data/certs/server.pem");
}

static void test_tls_config_rejects_rsa_key_under_2048_bits(void **state)
{
    (void)state;
    tls_config_opts_t so = server_opts();
    so.cert_chain = file("rsa-weak.pem");
    so.private_key = file("rsa-weak.key");
    assert_refused(&so, "leaf RSA key has 1024 bits");
}

static void test_tls_config_rejects_expired_cert(void **state)
{
    (void)state;
    tls_config_opts_t o = server_opts();
    o.cert_chain = file("expired.pem");
    o.private_key = file("expired.key");
    assert_refused(&o, "leaf certificate expired at 2001-01-01 00:00:00 UTC");
}

static void test_tls_config_rejects_cert_not_yet_valid(void **state)
{
    (void)state;
    tls_config_opts_t o = client_opts();
    o.cert_chain = file("future.pem");
    o.private_key = file("future.key");
    assert_refused(&o, "not valid before 2090-01-01");
}

static void test_tls_config_rejects_chain_outside_trust_bundle(void **state)
{
    (void)state;
    tls_config_opts_t o = server_opts();
    o.cert_chain = file("other-server.pem");
    o.private_key = file("other-server.key");
    assert_refused(&o, "chain does not verify against the trust bundle");
}

static void test_tls_config_names_unreadable_and_malformed_inputs(void **state)
{
    (void)state;
    tls_config_opts_t o = server_opts();
    o.trust_bundle = file("missing.pem");
    assert_refused(&o, "trust_bundle test/data/certs/missing.pem: cannot open");
    o = server_opts();
    o.cert_chain = (tls_pem_source_t){.pem = "not a certificate", .pem_len = 17};
    assert_refused(&o, "cert_chain (inline PEM):");
    o = client_opts();
    o.trust_bundle = (tls_pem_source_t){0};
    assert_refused(&o, "trust_bundle is required");
    o = server_opts();
    o.private_key = (tls_pem_source_t){0};
    assert_refused(&o, "cert_chain and private_key go together");
    o = client_opts();
    o.record_size = 100;
    assert_refused(&o, "record_size 100");
}

static void test_tls_config_loads_inline_pem_like_files(void **state)
{
    (void)state;
    size_t lc, lk, lt;
    char *cert = slurp("server.pem", &lc), *key = slurp("server.key", &lk);
    char *trust = slurp("root-a.pem", &lt);
    tls_config_opts_t o = server_opts();
    o.cert_chain = (tls_pem_source_t){.pem = cert, .pem_len = lc};
    o.private_key = (tls_pem_source_t){.pem = key, .pem_len = lk};
    o.trust_bundle = (tls_pem_source_t){.pem = trust, .pem_len = lt};
    tls_config_t *c = make_config(&o);
    identity_cert_info_t info;
    assert_int_equal(tls_config_cert_info(c, false, 0, time(NULL), &info), 0);
    assert_string_equal(info.spiffe_id, SPIFFE_SERVER);
    assert_string_equal(info.subject, "O=remora test, CN=server");
    assert_true(info.days_until_expiry > 36000);
    identity_cert_info_free(&info);
    assert_int_equal(tls_config_cert_info(c, true, 0, 0, &info), 0);
    assert_string_equal(info.spiffe_id, "spiffe://cluster.local");
    identity_cert_info_free(&info);
    assert_int_equal(tls_config_cert_info(c, true, 1, 0, &info), -ENOENT);
    assert_ptr_equal(tls_config_ref(c), c);
    tls_config_unref(c);
    tls_config_unref(c);
    free(cert);
    free(key);
    free(trust);
}

static void test_tls_fail_reasons_use_envoy_counter_names(void **state)
{
    (void)state;
    assert_string_equal(tls_fail_reason_name(TLS_FAIL_NONE), "none");
    assert_string_equal(tls_fail_reason_name(TLS_FAIL_CONNECTION_ERROR), "connection_error");
    assert_string_equal(tls_fail_reason_name(TLS_FAIL_VERIFY_NO_CERT), "fail_verify_no_cert");
    assert_string_equal(tls_fail_reason_name(TLS_FAIL_VERIFY_ERROR), "fail_verify_error");
    assert_string_equal(tls_fail_reason_name(TLS_FAIL_VERIFY_SAN), "fail_verify_san");
}

static void test_tls_suite_and_group_names_follow_envoy(void **state)
{
    (void)state;
    assert_int_equal(tls_suite_from_name("ECDHE-ECDSA-AES128-GCM-SHA256"), TLS_SUITE_AES_128_GCM);
    assert_int_equal(tls_suite_from_name("ECDHE-ECDSA-CHACHA20-POLY1305"),
                     TLS_SUITE_CHACHA20_POLY1305);
    assert_int_equal(tls_suite_from_name("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
                     TLS_SUITE_AES_128_GCM);
    /* An RSA name stands for the same suite: each is offered with both signatures. */
    assert_int_equal(tls_suite_from_name("ECDHE-RSA-AES128-GCM-SHA256"), TLS_SUITE_AES_128_GCM);
    assert_int_equal(tls_suite_from_name("AES256-SHA"), -EINVAL);
    assert_int_equal(tls_group_from_name("X25519"), TLS_GROUP_X25519);
    assert_int_equal(tls_group_from_name("P-256"), TLS_GROUP_P256);
    assert_int_equal(tls_group_from_name("P-384"), -EINVAL);
}

static int teardown_thread(void **state)
{
    (void)state;
    tls_thread_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_mutual_handshake_shows_identities_alpn_and_suite),
        cmocka_unit_test(test_tls_config_keys_carry_a_precomputed_base_point_table),
        cmocka_unit_test(test_tls_configured_suite_order_picks_aes_gcm),
        cmocka_unit_test(test_tls_rsa_server_and_client_certificates_handshake),
        cmocka_unit_test(test_tls_x25519_only_server_still_accepts_p256_certificates),
        cmocka_unit_test(test_tls_handshake_completes_when_fed_one_byte_at_a_time),
        cmocka_unit_test(test_tls_dns_and_prefix_matchers_accept_the_server),
        cmocka_unit_test(test_tls_sni_is_sent_but_not_checked_against_the_certificate),
        cmocka_unit_test(test_tls_data_flows_both_ways),
        cmocka_unit_test(test_tls_megabyte_arrives_byte_for_byte_both_ways),
        cmocka_unit_test(test_tls_write_stops_at_high_water_and_resumes_after_drain),
        cmocka_unit_test(test_tls_close_notify_ends_the_peer_read_side),
        cmocka_unit_test(test_tls_second_handshake_resumes_with_saved_session),
        cmocka_unit_test(test_tls_ticket_from_another_server_config_gets_a_full_handshake),
        cmocka_unit_test(test_tls_resumption_still_checks_the_expected_identity),
        cmocka_unit_test(test_tls_worker_threads_share_configs_and_resume_each_others_tickets),
        cmocka_unit_test(test_tls_server_from_another_trust_domain_fails_verify_error),
        cmocka_unit_test(test_tls_unexpected_server_spiffe_id_fails_verify_san),
        cmocka_unit_test(test_tls_unexpected_client_spiffe_id_fails_verify_san_on_server),
        cmocka_unit_test(test_tls_client_without_cert_fails_verify_no_cert_on_server),
        cmocka_unit_test(test_tls_optional_client_cert_may_be_absent),
        cmocka_unit_test(test_tls_optional_client_cert_is_still_verified_when_presented),
        cmocka_unit_test(test_tls_config_rejects_key_not_matching_cert),
        cmocka_unit_test(test_tls_config_rejects_rsa_key_under_2048_bits),
        cmocka_unit_test(test_tls_config_rejects_expired_cert),
        cmocka_unit_test(test_tls_config_rejects_cert_not_yet_valid),
        cmocka_unit_test(test_tls_config_rejects_chain_outside_trust_bundle),
        cmocka_unit_test(test_tls_config_names_unreadable_and_malformed_inputs),
        cmocka_unit_test(test_tls_config_loads_inline_pem_like_files),
        cmocka_unit_test(test_tls_fail_reasons_use_envoy_counter_names),
        cmocka_unit_test(test_tls_suite_and_group_names_follow_envoy),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_thread);
}
