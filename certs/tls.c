/* The per-connection TLS engine: one mbedtls_ssl_context driven through memory instead of a
 * socket.
 *
 * Input: tls_feed lends the session a window of the caller's read buffer; mbedTLS's recv
 * callback copies out of it exactly the bytes of the record it is assembling (header, then
 * body) into its own record buffer, where the record is decrypted in place. Nothing else copies
 * ciphertext. When the window runs dry the callback says WANT_READ and mbedTLS keeps the partial
 * record for the next window.
 *
 * Output: the send callback always accepts the whole record, appending it to a queue of
 * fixed-size chunks, so mbedTLS never sees WANT_WRITE and never needs a write repeated with the
 * same data. tls_write bounds the queue instead: it stops encrypting once the queue reaches the
 * high-water mark. Chunks never move, so the caller can writev them in place; drained chunks go
 * to a per-thread cache so a steady connection allocates nothing. */
#include "certs/tls_internal.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/sha256.h>

/* --- output queue ------------------------------------------------------------------------- */

typedef struct out_chunk {
    struct out_chunk *next;
    size_t start, end; /* pending bytes are data[start..end) */
    unsigned char data[];
} out_chunk_t;

#define CHUNK_BYTES     (32 * 1024) /* two full records per chunk */
#define CHUNK_CAP       (CHUNK_BYTES - offsetof(out_chunk_t, data))
#define CHUNK_CACHE_MAX 64 /* per thread: 2 MiB at most */

/* A thread's spare chunks. Sessions are driven by one worker thread from start to end, so the
 * cache needs no lock; a chunk freed on another thread simply joins that thread's cache. */
static _Thread_local struct {
    out_chunk_t *free;
    size_t n;
} chunk_cache;

static out_chunk_t *chunk_get(void)
{
    out_chunk_t *c = chunk_cache.free;
    if (c) {
        chunk_cache.free = c->next;
        chunk_cache.n--;
    } else if ((c = malloc(CHUNK_BYTES)) == NULL) {
        return NULL;
    }
    c->next = NULL;
    c->start = c->end = 0;
    return c;
}

static void chunk_put(out_chunk_t *c)
{
    if (chunk_cache.n >= CHUNK_CACHE_MAX) {
        free(c);
        return;
    }
    c->next = chunk_cache.free;
    chunk_cache.free = c;
    chunk_cache.n++;
}

/* --- the session ---------------------------------------------------------------------------- */

struct tls_session {
    mbedtls_ssl_context ssl;
    tls_config_t *config; /* a reference */
    tls_state_t state;
    tls_fail_reason_t fail;
    int mbed_err;          /* the mbedTLS code behind a failure */
    uint32_t verify_flags; /* peer chain verification flags gathered in this handshake */
    bool san_mismatch;     /* the chain was fine but no SAN matched */
    bool full_handshake;   /* the certificate exchange took place */
    bool resumed;
    const unsigned char *in; /* fed window, borrowed */
    size_t in_len;
    out_chunk_t *out_head, *out_tail;
    size_t out_len;
    char *peer_spiffe; /* owned */
    char *server_name; /* server: the SNI the client sent; owned */
    /* tls_session_expect_peer: this session's own expected identities (one block with their
     * values; owned), replacing the config's. */
    identity_matcher_t *peer_ids;
    size_t n_peer_ids;
    bool own_peer_ids;
};

_Static_assert(offsetof(tls_session_t, ssl) == 0, "on_sni finds the session from its ssl");

struct tls_saved_session {
    mbedtls_ssl_session session;
};

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    tls_session_t *s = ctx;
    size_t done = 0;
    while (done < len) {
        out_chunk_t *c = s->out_tail;
        if (c == NULL || c->end == CHUNK_CAP) {
            out_chunk_t *fresh = chunk_get();
            if (fresh == NULL)
                break;
            if (c)
                c->next = fresh;
            else
                s->out_head = fresh;
            s->out_tail = c = fresh;
        }
        size_t n = len - done < CHUNK_CAP - c->end ? len - done : CHUNK_CAP - c->end;
        memcpy(c->data + c->end, buf + done, n);
        c->end += n;
        done += n;
    }
    s->out_len += done;
    /* Records are at most ~16.5 KiB, so done always fits an int. */
    return done > 0 ? (int)done : MBEDTLS_ERR_SSL_ALLOC_FAILED;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    tls_session_t *s = ctx;
    if (s->in_len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = len < s->in_len ? len : s->in_len;
    if (n > INT_MAX)
        n = INT_MAX;
    memcpy(buf, s->in, n);
    s->in += n;
    s->in_len -= n;
    return (int)n;
}

/* Called by mbedTLS for each certificate of the peer's chain. Identity is ours to check: the
 * leaf must match one expected SAN (BADCERT_OTHER otherwise, which mbedTLS answers with an
 * access_denied alert), and the server name we sent is not an identity (SNI selects, SANs
 * authenticate), so mbedTLS's hostname check is dropped. A server that asks for a certificate
 * without insisting still refuses one that is presented and bad: the fatal return ends the
 * handshake whatever the authmode. */
/* The identities the peer must match: the session's own, or else its config's. */
static const identity_matcher_t *expected_peer(const tls_session_t *s, size_t *n)
{
    if (s->own_peer_ids) {
        *n = s->n_peer_ids;
        return s->peer_ids;
    }
    *n = s->config->n_peer_identities;
    return s->config->peer_identities;
}

static int on_verify(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    tls_session_t *s = arg;
    const tls_config_t *c = s->config;
    if (depth == 0) {
        *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
        size_t n;
        const identity_matcher_t *m = expected_peer(s, &n);
        if (!identity_cert_matches(crt, m, n)) {
            s->san_mismatch = true;
            *flags |= MBEDTLS_X509_BADCERT_OTHER;
            /* Kept so the failure can say who answered instead (the handshake ends here). */
            char id[2049];
            free(s->peer_spiffe);
            s->peer_spiffe = identity_spiffe_id(crt, id, sizeof(id)) > 0 ? strdup(id) : NULL;
        }
    }
    s->verify_flags |= *flags;
    if (c->verify_optional && s->verify_flags != 0)
        return MBEDTLS_ERR_X509_FATAL_ERROR;
    return 0;
}

/* Server: the client's SNI, kept for logs and policies; every name gets the config's own
 * certificate. The ssl context is the session's first member, which leads back to the session. */
int tls_on_sni(void *arg, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len)
{
    (void)arg;
    tls_session_t *s = (tls_session_t *)ssl;
    free(s->server_name);
    s->server_name = strndup((const char *)name, len);
    return 0;
}

int tls_session_new(tls_config_t *c, const tls_saved_session_t *resume, tls_session_t **out)
{
    tls_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    mbedtls_ssl_init(&s->ssl);
    s->config = tls_config_ref(c);
    s->state = TLS_STATE_HANDSHAKE;
    int rc = mbedtls_ssl_setup(&s->ssl, &c->conf);
    if (rc == 0 && c->sni)
        rc = mbedtls_ssl_set_hostname(&s->ssl, c->sni);
    if (rc == 0 && resume && c->role == TLS_ROLE_CLIENT)
        rc = mbedtls_ssl_set_session(&s->ssl, &resume->session);
    if (rc != 0) {
        tls_session_free(s);
        return rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : TLS_ERR_FAILED;
    }
    mbedtls_ssl_set_bio(&s->ssl, s, bio_send, bio_recv, NULL);
    mbedtls_ssl_set_verify(&s->ssl, on_verify, s);
    *out = s;
    return 0;
}

int tls_session_expect_peer(tls_session_t *s, const char *sni, const identity_matcher_t *m,
                            size_t n)
{
    if (s->state != TLS_STATE_HANDSHAKE || (n && m == NULL))
        return -EINVAL;
    if (sni && s->config->role == TLS_ROLE_CLIENT && mbedtls_ssl_set_hostname(&s->ssl, sni) != 0)
        return -ENOMEM;
    size_t bytes = n * sizeof(*m);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(m[i].value) + 1;
    identity_matcher_t *ids = n ? malloc(bytes) : NULL;
    if (n && ids == NULL)
        return -ENOMEM;
    char *text = (char *)(ids + n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(m[i].value) + 1;
        ids[i] = m[i];
        ids[i].value = memcpy(text, m[i].value, len);
        text += len;
    }
    free(s->peer_ids);
    s->peer_ids = ids;
    s->n_peer_ids = n;
    s->own_peer_ids = true;
    return 0;
}

void tls_session_free(tls_session_t *s)
{
    if (s == NULL)
        return;
    mbedtls_ssl_free(&s->ssl);
    free(s->peer_ids);
    while (s->out_head) {
        out_chunk_t *next = s->out_head->next;
        chunk_put(s->out_head);
        s->out_head = next;
    }
    tls_config_unref(s->config);
    free(s->peer_spiffe);
    free(s->server_name);
    free(s);
}

void tls_feed(tls_session_t *s, const void *cipher, size_t len)
{
    s->in = cipher;
    s->in_len = len;
}

size_t tls_feed_left(const tls_session_t *s)
{
    return s->in_len;
}

/* --- failures ------------------------------------------------------------------------------- */

static tls_fail_reason_t classify(const tls_session_t *s, int rc)
{
    if (rc == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE)
        return TLS_FAIL_VERIFY_NO_CERT;
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || rc == MBEDTLS_ERR_X509_FATAL_ERROR) {
        if (s->verify_flags == MBEDTLS_X509_BADCERT_OTHER && s->san_mismatch)
            return TLS_FAIL_VERIFY_SAN;
        if (s->verify_flags != 0)
            return TLS_FAIL_VERIFY_ERROR;
    }
    return TLS_FAIL_CONNECTION_ERROR;
}

/* Marks s failed (the first reason sticks) and returns TLS_ERR_FAILED. */
static int session_fail(tls_session_t *s, tls_fail_reason_t why, int mbed_err)
{
    if (s->state != TLS_STATE_FAILED) {
        s->state = TLS_STATE_FAILED;
        s->fail = why;
        s->mbed_err = mbed_err;
    }
    return TLS_ERR_FAILED;
}

/* --- handshake ------------------------------------------------------------------------------ */

/* The handshake just completed: settle resumption, re-check identity when no certificate was
 * exchanged (the saved session may come from a config with other expectations), and keep the
 * peer's SPIFFE ID for the connection's lifetime. */
static int handshake_done(tls_session_t *s)
{
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&s->ssl);
    s->resumed = !s->full_handshake;
    size_t n_ids;
    const identity_matcher_t *ids = expected_peer(s, &n_ids);
    if (s->resumed && n_ids > 0 && (peer == NULL || !identity_cert_matches(peer, ids, n_ids))) {
        s->san_mismatch = true;
        s->verify_flags = MBEDTLS_X509_BADCERT_OTHER;
        mbedtls_ssl_send_alert_message(&s->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                       MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED);
        return session_fail(s, TLS_FAIL_VERIFY_SAN, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
    }
    free(s->peer_spiffe);
    s->peer_spiffe = NULL;
    if (peer) {
        char id[2049]; /* the SPIFFE ID length limit, plus the NUL */
        if (identity_spiffe_id(peer, id, sizeof(id)) > 0 && (s->peer_spiffe = strdup(id)) == NULL)
            return session_fail(s, TLS_FAIL_CONNECTION_ERROR, MBEDTLS_ERR_SSL_ALLOC_FAILED);
    }
    s->state = TLS_STATE_OPEN;
    return 0;
}

int tls_handshake_step(tls_session_t *s)
{
    if (s->state == TLS_STATE_FAILED)
        return TLS_ERR_FAILED;
    if (s->state != TLS_STATE_HANDSHAKE)
        return 0;
    int rc = 0;
    while (s->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
        /* A resumed handshake skips the certificate messages on both sides. */
        if (s->ssl.state == MBEDTLS_SSL_SERVER_CERTIFICATE)
            s->full_handshake = true;
        size_t before = s->in_len;
        rc = mbedtls_ssl_handshake_step(&s->ssl);
        if (rc == MBEDTLS_ERR_SSL_WANT_READ && s->in_len > 0 && s->in_len < before)
            continue; /* a record was consumed without completing a message */
        if (rc != 0)
            break;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ)
        return TLS_ERR_WANT_READ;
    if (rc != 0) {
        tls_fail_reason_t why = classify(s, rc);
        if (why == TLS_FAIL_VERIFY_NO_CERT) /* mbedTLS leaves the client waiting otherwise */
            mbedtls_ssl_send_alert_message(&s->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                           MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE);
        return session_fail(s, why, rc);
    }
    return handshake_done(s);
}

/* --- application data ----------------------------------------------------------------------- */

int tls_read(tls_session_t *s, void *buf, size_t cap)
{
    if (s->state == TLS_STATE_HANDSHAKE) {
        int rc = tls_handshake_step(s);
        if (rc != 0)
            return rc;
    }
    switch (s->state) {
    case TLS_STATE_FAILED:
        return TLS_ERR_FAILED;
    case TLS_STATE_READ_CLOSED:
    case TLS_STATE_CLOSED:
        return 0;
    default:
        break;
    }
    if (cap > INT_MAX)
        cap = INT_MAX;
    size_t total = 0;
    while (total < cap) {
        size_t before = s->in_len;
        int rc = mbedtls_ssl_read(&s->ssl, (unsigned char *)buf + total, cap - total);
        if (rc > 0) {
            total += (size_t)rc;
            continue;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ) {
            if (s->in_len > 0 && s->in_len < before)
                continue; /* a non-data record (e.g. a warning alert) was consumed */
            break;
        }
        if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            s->state =
                s->state == TLS_STATE_WRITE_CLOSED ? TLS_STATE_CLOSED : TLS_STATE_READ_CLOSED;
            break;
        }
        session_fail(s, TLS_FAIL_CONNECTION_ERROR, rc);
        break;
    }
    if (total > 0)
        return (int)total;
    if (s->state == TLS_STATE_FAILED)
        return TLS_ERR_FAILED;
    if (s->state == TLS_STATE_READ_CLOSED || s->state == TLS_STATE_CLOSED)
        return 0;
    return TLS_ERR_WANT_READ;
}

int tls_write(tls_session_t *s, const void *plain, size_t len)
{
    if (s->state == TLS_STATE_HANDSHAKE) {
        int rc = tls_handshake_step(s);
        if (rc != 0)
            return rc;
    }
    switch (s->state) {
    case TLS_STATE_FAILED:
        return TLS_ERR_FAILED;
    case TLS_STATE_WRITE_CLOSED:
    case TLS_STATE_CLOSED:
        return TLS_ERR_CLOSED;
    default:
        break;
    }
    if (len == 0)
        return 0;
    size_t high = s->config->high_water;
    if (s->out_len >= high)
        return TLS_ERR_WANT_WRITE;
    if (len > INT_MAX)
        len = INT_MAX;
    size_t record = s->config->record_size;
    size_t total = 0;
    while (total < len && s->out_len < high) {
        size_t n = len - total < record ? len - total : record;
        int rc = mbedtls_ssl_write(&s->ssl, (const unsigned char *)plain + total, n);
        if (rc <= 0) {
            /* WANT_WRITE cannot happen (the queue takes everything); anything else is fatal. */
            session_fail(s, TLS_FAIL_CONNECTION_ERROR, rc);
            break;
        }
        total += (size_t)rc;
    }
    return total > 0 ? (int)total : TLS_ERR_FAILED;
}

int tls_close_notify(tls_session_t *s)
{
    switch (s->state) {
    case TLS_STATE_HANDSHAKE: /* nothing to protect yet: just stop */
        s->state = TLS_STATE_CLOSED;
        return 0;
    case TLS_STATE_OPEN:
    case TLS_STATE_READ_CLOSED: {
        int rc = mbedtls_ssl_close_notify(&s->ssl);
        if (rc != 0)
            return session_fail(s, TLS_FAIL_CONNECTION_ERROR, rc);
        s->state = s->state == TLS_STATE_OPEN ? TLS_STATE_WRITE_CLOSED : TLS_STATE_CLOSED;
        return 0;
    }
    case TLS_STATE_FAILED:
        return TLS_ERR_FAILED;
    default:
        return 0;
    }
}

/* --- draining the output -------------------------------------------------------------------- */

size_t tls_pending_output(const tls_session_t *s, const void **p, size_t *len)
{
    const out_chunk_t *c = s->out_head;
    if (p)
        *p = c ? c->data + c->start : NULL;
    if (len)
        *len = c ? c->end - c->start : 0;
    return s->out_len;
}

int tls_output_iov(const tls_session_t *s, struct iovec *iov, int max)
{
    int n = 0;
    for (const out_chunk_t *c = s->out_head; c && n < max; c = c->next) {
        if (c->end == c->start)
            continue;
        iov[n].iov_base = (void *)(c->data + c->start);
        iov[n].iov_len = c->end - c->start;
        n++;
    }
    return n;
}

void tls_consume_output(tls_session_t *s, size_t n)
{
    if (n > s->out_len)
        n = s->out_len;
    s->out_len -= n;
    while (s->out_head) {
        out_chunk_t *c = s->out_head;
        size_t avail = c->end - c->start;
        if (n < avail) {
            c->start += n;
            return;
        }
        n -= avail;
        s->out_head = c->next;
        if (s->out_head == NULL)
            s->out_tail = NULL;
        chunk_put(c);
    }
}

/* --- what the session learned ----------------------------------------------------------------- */

tls_state_t tls_session_state(const tls_session_t *s)
{
    return s->state;
}

const char *tls_state_name(tls_state_t st)
{
    switch (st) {
    case TLS_STATE_HANDSHAKE:
        return "handshake";
    case TLS_STATE_OPEN:
        return "open";
    case TLS_STATE_READ_CLOSED:
        return "read_closed";
    case TLS_STATE_WRITE_CLOSED:
        return "write_closed";
    case TLS_STATE_CLOSED:
        return "closed";
    case TLS_STATE_FAILED:
        return "failed";
    }
    return "unknown";
}

tls_fail_reason_t tls_session_fail_reason(const tls_session_t *s)
{
    return s->fail;
}

const char *tls_fail_reason_name(tls_fail_reason_t r)
{
    switch (r) {
    case TLS_FAIL_NONE:
        return "none";
    case TLS_FAIL_CONNECTION_ERROR:
        return "connection_error";
    case TLS_FAIL_VERIFY_NO_CERT:
        return "fail_verify_no_cert";
    case TLS_FAIL_VERIFY_ERROR:
        return "fail_verify_error";
    case TLS_FAIL_VERIFY_SAN:
        return "fail_verify_san";
    case TLS_FAIL_COUNT:
        break;
    }
    return "unknown";
}

const char *tls_session_error(const tls_session_t *s, char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    if (s->state != TLS_STATE_FAILED) {
        snprintf(buf, cap, "no error");
        return buf;
    }
    char why[128];
    mbedtls_strerror(s->mbed_err, why, sizeof(why));
    int n = snprintf(buf, cap, "%s: %s", tls_fail_reason_name(s->fail), why);
    if (s->verify_flags != 0 && n > 0 && (size_t)n < cap) {
        char flags[256];
        if (mbedtls_x509_crt_verify_info(flags, sizeof(flags), "", s->verify_flags) > 0) {
            for (char *p = flags; (p = strchr(p, '\n')) != NULL;)
                *p = p[1] ? ';' : '\0';
            snprintf(buf + n, cap - (size_t)n, " (%s%s)", flags,
                     s->san_mismatch ? "; no SAN matched the expected identities" : "");
        }
    }
    return buf;
}

static bool established(const tls_session_t *s)
{
    return s->state != TLS_STATE_HANDSHAKE && s->state != TLS_STATE_FAILED &&
           s->ssl.state == MBEDTLS_SSL_HANDSHAKE_OVER;
}

const char *tls_session_alpn(const tls_session_t *s)
{
    return established(s) ? mbedtls_ssl_get_alpn_protocol(&s->ssl) : NULL;
}

const char *tls_session_cipher(const tls_session_t *s)
{
    return established(s) ? mbedtls_ssl_get_ciphersuite(&s->ssl) : NULL;
}

const char *tls_session_version(const tls_session_t *s)
{
    return established(s) ? mbedtls_ssl_get_version(&s->ssl) : NULL;
}

bool tls_session_resumed(const tls_session_t *s)
{
    return established(s) && s->resumed;
}

const char *tls_session_peer_spiffe_id(const tls_session_t *s)
{
    return s->peer_spiffe;
}

const char *tls_session_server_name(const tls_session_t *s)
{
    return s->server_name;
}

bool tls_session_peer_matches(const tls_session_t *s, const identity_matcher_t *m, size_t n)
{
    const mbedtls_x509_crt *peer = established(s) ? mbedtls_ssl_get_peer_cert(&s->ssl) : NULL;
    return peer != NULL && identity_cert_matches(peer, m, n);
}

int tls_session_peer_cert_sha256(const tls_session_t *s, char out[65])
{
    const mbedtls_x509_crt *peer = established(s) ? mbedtls_ssl_get_peer_cert(&s->ssl) : NULL;
    if (peer == NULL)
        return -ENOENT;
    unsigned char digest[32];
    if (mbedtls_sha256_ret(peer->raw.p, peer->raw.len, digest, 0) != 0)
        return -EINVAL;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

int tls_session_peer_cert_info(const tls_session_t *s, int64_t now, identity_cert_info_t *out)
{
    const mbedtls_x509_crt *peer = established(s) ? mbedtls_ssl_get_peer_cert(&s->ssl) : NULL;
    if (peer == NULL)
        return -ENOENT;
    return identity_cert_info(peer, now, out);
}

/* --- client resumption ---------------------------------------------------------------------- */

tls_saved_session_t *tls_session_save(const tls_session_t *s)
{
    if (s->config->role != TLS_ROLE_CLIENT || !established(s))
        return NULL;
    tls_saved_session_t *ss = malloc(sizeof(*ss));
    if (ss == NULL)
        return NULL;
    mbedtls_ssl_session_init(&ss->session);
    if (mbedtls_ssl_get_session(&s->ssl, &ss->session) != 0) {
        tls_saved_session_free(ss);
        return NULL;
    }
    return ss;
}

void tls_saved_session_free(tls_saved_session_t *ss)
{
    if (ss == NULL)
        return;
    mbedtls_ssl_session_free(&ss->session); /* wipes the master secret */
    free(ss);
}

/* --- per thread ------------------------------------------------------------------------------ */

void tls_thread_cleanup(void)
{
    while (chunk_cache.free) {
        out_chunk_t *next = chunk_cache.free->next;
        free(chunk_cache.free);
        chunk_cache.free = next;
    }
    chunk_cache.n = 0;
    tls_rng_thread_cleanup();
}

const char *tls_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "ok";
    case TLS_ERR_WANT_READ:
        return "needs more ciphertext";
    case TLS_ERR_WANT_WRITE:
        return "output over its high-water mark";
    case TLS_ERR_CLOSED:
        return "write side closed";
    case TLS_ERR_FAILED:
        return "TLS session failed";
    case TLS_ERR_CONFIG:
        return "TLS config refused";
    case -ENOMEM:
        return "out of memory";
    case -EINVAL:
        return "invalid argument";
    case -ENOENT:
        return "not found";
    }
    return "unknown TLS error";
}
