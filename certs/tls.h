/* The TLS engine for mutual TLS between sidecars (mbedTLS, TLS 1.2, ECDHE-ECDSA): immutable
 * refcounted configs shared by every worker, and per-connection sessions that never touch a
 * socket. The connection code feeds received ciphertext in, reads plaintext out, writes
 * plaintext in and drains ciphertext out (a memory BIO); see docs/tls.md. */
#ifndef REMORA_TLS_H
#define REMORA_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "certs/identity.h"

/* Results besides 0, byte counts, -ENOMEM and -EINVAL. */
#define TLS_ERR_WANT_READ  (-9001) /* feed more ciphertext (after draining the output) */
#define TLS_ERR_WANT_WRITE (-9002) /* the output is over its high-water mark: drain it first */
#define TLS_ERR_CLOSED     (-9003) /* writing after our close_notify */
#define TLS_ERR_FAILED     (-9004) /* the session failed; tls_session_fail_reason says why */
#define TLS_ERR_CONFIG     (-9005) /* a config was refused; the message is in err */

#define TLS_MAX_RECORD          16384 /* TLS plaintext record limit */
#define TLS_DEFAULT_HIGH_WATER  (64 * 1024)
#define TLS_DEFAULT_TICKET_LIFE 3600 /* seconds */

typedef enum { TLS_ROLE_CLIENT, TLS_ROLE_SERVER } tls_role_t;

/* The two suites offered, both ECDHE-ECDSA with SHA-256. */
typedef enum { TLS_SUITE_AES_128_GCM, TLS_SUITE_CHACHA20_POLY1305 } tls_suite_t;

/* Key exchange groups. */
typedef enum { TLS_GROUP_X25519, TLS_GROUP_P256 } tls_group_t;

/* PEM input: bytes (pem, pem_len; no NUL needed) or a file (path). Exactly one, or neither when
 * the item is optional. */
typedef struct tls_pem_source {
    const char *pem;
    size_t pem_len;
    const char *path;
} tls_pem_source_t;

typedef struct tls_config_opts {
    tls_role_t role;
    tls_pem_source_t cert_chain;   /* leaf first, then intermediates; servers must have one */
    tls_pem_source_t private_key;  /* the leaf's key (EC); required with cert_chain */
    tls_pem_source_t trust_bundle; /* CA certificates that vouch for peers; required for
                                      clients, and for servers that verify clients */
    bool require_client_cert;      /* server: refuse clients without a valid certificate.
                                      Without it, a server with a trust bundle still asks
                                      for one and verifies it when presented. */
    const char *const *alpn;       /* protocols, most preferred first */
    size_t alpn_count;
    const identity_matcher_t *peer_identities; /* the peer must match one; none: any */
    size_t peer_identity_count;
    const char *sni;           /* client: server name sent (not verified; see docs/tls.md) */
    const tls_suite_t *suites; /* preference order; NULL: ChaCha20-Poly1305, AES-128-GCM */
    size_t suite_count;
    const tls_group_t *groups; /* preference order; NULL: X25519, P-256 */
    size_t group_count;
    size_t record_size;         /* plaintext bytes per record, 512..16384; 0: 16384 */
    size_t output_high_water;   /* ciphertext bytes queued before tls_write stops; 0: 64 KiB */
    uint32_t ticket_lifetime_s; /* server: 0 = TLS_DEFAULT_TICKET_LIFE */
    bool disable_tickets;       /* server: issue none; client: offer none */
} tls_config_opts_t;

typedef struct tls_config tls_config_t;
typedef struct tls_session tls_session_t;
typedef struct tls_saved_session tls_saved_session_t;

typedef enum {
    TLS_STATE_HANDSHAKE,    /* handshake in progress */
    TLS_STATE_OPEN,         /* application data both ways */
    TLS_STATE_READ_CLOSED,  /* the peer's close_notify arrived; we may still write */
    TLS_STATE_WRITE_CLOSED, /* our close_notify is queued; we may still read */
    TLS_STATE_CLOSED,       /* both directions ended cleanly */
    TLS_STATE_FAILED,       /* handshake or record failure; see tls_session_fail_reason */
} tls_state_t;

/* Why a session failed, named like Envoy's ssl.* counters. */
typedef enum {
    TLS_FAIL_NONE,
    TLS_FAIL_CONNECTION_ERROR, /* handshake or record error, peer alert, bad record */
    TLS_FAIL_VERIFY_NO_CERT,   /* the peer sent no certificate but one is required */
    TLS_FAIL_VERIFY_ERROR,     /* the peer's chain did not verify against the trust bundle */
    TLS_FAIL_VERIFY_SAN,       /* chain fine, but no SAN matched the expected identities */
    TLS_FAIL_COUNT
} tls_fail_reason_t;

/* --- configs ---------------------------------------------------------------------------- */

/* Builds a config from o (borrowed; everything kept is copied). Loads and checks the key pair
 * (key matches the leaf, leaf is EC, valid now, chain verifies against the trust bundle when
 * there is one). On success *out is a new reference owned by the caller. On failure returns
 * TLS_ERR_CONFIG (or -ENOMEM) with a message naming the item in err[0..errlen) and leaves *out
 * alone, so a caller rotating certificates keeps the config it has. Main thread or any. */
int tls_config_new(const tls_config_opts_t *o, tls_config_t **out, char *err, size_t errlen);

/* Adds a reference (any thread) and returns c: a new reference the caller drops with
 * tls_config_unref. */
tls_config_t *tls_config_ref(tls_config_t *c);

/* Drops a reference (taken from the caller; any thread); the last one frees the config. NULL is
 * ignored. */
void tls_config_unref(tls_config_t *c);

/* c borrowed. */
tls_role_t tls_config_role(const tls_config_t *c);

/* The SPIFFE ID of the config's own leaf certificate (borrowed, lives with c), or NULL. */
const char *tls_config_spiffe_id(const tls_config_t *c);

/* Facts about certificate `index` of the config's own chain (0 is the leaf) or, with
 * which_trust, of its trust bundle; -ENOENT past the end or without one. The caller owns what
 * is filled in and releases it with identity_cert_info_free. c is borrowed. */
int tls_config_cert_info(const tls_config_t *c, bool which_trust, size_t index, int64_t now,
                         identity_cert_info_t *out);

/* The suite a name stands for: the BoringSSL names Envoy's tls_params.cipher_suites uses
 * ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305") or the IANA ones
 * ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", ...). Returns a tls_suite_t, or -EINVAL for any
 * other suite (the engine offers no other). name is borrowed. */
int tls_suite_from_name(const char *name);

/* The group a name of Envoy's ecdh_curves stands for ("X25519", "P-256"; also "prime256v1",
 * "secp256r1"). Returns a tls_group_t, or -EINVAL. name is borrowed. */
int tls_group_from_name(const char *name);

/* --- sessions ---------------------------------------------------------------------------- */

/* A new session for one connection. Takes a reference to c (released by tls_session_free).
 * resume (client only, may be NULL) is borrowed: its state is copied and a resumption is
 * offered. The caller owns *out and frees it with tls_session_free on the same thread that
 * drives it. Returns 0, -ENOMEM or TLS_ERR_FAILED (mbedTLS setup failed). */
int tls_session_new(tls_config_t *c, const tls_saved_session_t *resume, tls_session_t **out);

/* Gives the session (s, borrowed) its own expectations of the peer, replacing the config's: the
 * server name to send (client; borrowed and copied; NULL keeps the config's) and the identities the
 * peer must match (m[0..n), copied; n == 0: any the trust bundle vouches for). Lets many upstreams
 * share one config per (certificate, trust bundle, role). Before the handshake starts only. Returns
 * 0, -EINVAL or -ENOMEM. */
int tls_session_expect_peer(tls_session_t *s, const char *sni, const identity_matcher_t *m,
                            size_t n);

/* Takes s: frees it, its queued output and its reference to the config. NULL is ignored. */
void tls_session_free(tls_session_t *s);

/* Offers received ciphertext to s (borrowed). The window cipher[0..len) is borrowed, not copied:
 * mbedTLS takes bytes out of it into its record buffer only as it needs them, during later calls.
 * It must stay valid and unchanged until the next tls_feed or until tls_feed_left is 0. A new
 * window replaces the old one: unconsumed bytes of the old window must lead the new one. */
void tls_feed(tls_session_t *s, const void *cipher, size_t len);

/* Bytes of the current window not yet taken. s borrowed. */
size_t tls_feed_left(const tls_session_t *s);

/* Advances s's (borrowed) handshake as far as the fed bytes allow. Returns 0 once it is complete
 * (and on every later call), TLS_ERR_WANT_READ while it needs more input (send the output first: it
 * may hold our next flight), or TLS_ERR_FAILED. */
int tls_handshake_step(tls_session_t *s);

/* Decrypts fed records into buf[0..cap) (borrowed; cap > 0), completing the handshake first if
 * needed.
 * Returns the bytes written (> 0), 0 once the peer's close_notify has arrived,
 * TLS_ERR_WANT_READ when the fed bytes hold no further complete record, or TLS_ERR_FAILED.
 * Plaintext that does not fit stays inside the session for the next call. */
/* s borrowed. */
int tls_read(tls_session_t *s, void *buf, size_t cap);

/* Encrypts plain[0..len) (borrowed; not needed after the call) into records of at most the
 * config's record_size, appended to the output queue. Stops early once the queue reaches the
 * high-water mark (it may exceed it by one record). Returns the bytes taken (> 0; call again
 * with the rest after draining), TLS_ERR_WANT_WRITE when the queue was already at the mark,
 * TLS_ERR_WANT_READ during the handshake, TLS_ERR_CLOSED after tls_close_notify, or
 * TLS_ERR_FAILED. len 0 returns 0. */
int tls_write(tls_session_t *s, const void *plain, size_t len);

/* Queues our close_notify (once) in s (borrowed); during the handshake nothing is sent and the
 * session just ends (state closed). Returns 0, or TLS_ERR_FAILED. */
int tls_close_notify(tls_session_t *s);

/* Total ciphertext bytes waiting to be sent; *p and *len (either may be NULL) get the first
 * contiguous piece. The bytes belong to s, stay at their address until consumed, and are not
 * moved by later writes (new output goes after them). */
size_t tls_pending_output(const tls_session_t *s, const void **p, size_t *len);

/* Fills iov[0..max) with the pending ciphertext pieces in order, for one writev; returns how
 * many were filled. Same ownership as tls_pending_output. */
int tls_output_iov(const tls_session_t *s, struct iovec *iov, int max);

/* Drops the first n pending bytes of s (borrowed) (sent, or copied by the caller). n is clipped to
 * what is pending. Drained memory goes back to a per-thread cache. */
void tls_consume_output(tls_session_t *s, size_t n);

/* --- what the session learned ------------------------------------------------------------ */

/* s borrowed; tls_state_name returns a static string. */
tls_state_t tls_session_state(const tls_session_t *s);
const char *tls_state_name(tls_state_t st);
tls_fail_reason_t tls_session_fail_reason(const tls_session_t *s);
/* Envoy's counter suffix for r ("fail_verify_san", ...), a static string; "none" for
 * TLS_FAIL_NONE. */
const char *tls_fail_reason_name(tls_fail_reason_t r);
/* Writes a one-line explanation of the failure (mbedTLS's reason, verification flags) into
 * buf[0..cap) (the caller's). Formats only when called. Returns buf. s borrowed. */
const char *tls_session_error(const tls_session_t *s, char *buf, size_t cap);

/* After the handshake (NULL / false before). Strings belong to s and live as long as it does. */
const char *tls_session_alpn(const tls_session_t *s);    /* NULL: none negotiated */
const char *tls_session_cipher(const tls_session_t *s);  /* IANA-style mbedTLS suite name */
const char *tls_session_version(const tls_session_t *s); /* "TLSv1.2" */
bool tls_session_resumed(const tls_session_t *s);
/* The peer certificate's SPIFFE ID, borrowed from s (lives as long as it); NULL without a
 * certificate or a single spiffe:// SAN. Also after a handshake that failed with
 * TLS_FAIL_VERIFY_SAN: the ID of the certificate that matched none of the expected ones. */
const char *tls_session_peer_spiffe_id(const tls_session_t *s);
/* Server: the name the client asked for (SNI), borrowed from s (lives as long as it), or NULL
 * when it sent none. */
const char *tls_session_server_name(const tls_session_t *s);
/* Whether the peer certificate of s (borrowed) satisfies one of the n matchers (borrowed), e.g. a
 * route's or an authorization policy's expectation; false without a peer certificate. */
bool tls_session_peer_matches(const tls_session_t *s, const identity_matcher_t *m, size_t n);
/* The SHA-256 of the peer certificate's DER as 64 lowercase hex digits and a NUL in out (the
 * caller's; the Hash of Envoy's x-forwarded-client-cert). s borrowed. Returns 0 or -ENOENT without
 * a peer certificate. */
int tls_session_peer_cert_sha256(const tls_session_t *s, char out[65]);
/* Facts about the peer's certificate of s (borrowed) (-ENOENT without one); the caller owns
 * what *out holds and frees it with identity_cert_info_free. */
int tls_session_peer_cert_info(const tls_session_t *s, int64_t now, identity_cert_info_t *out);

/* --- client resumption ------------------------------------------------------------------- */

/* A copy of a client session's (s, borrowed) resumable state (ticket or session id, master secret,
 * the server's certificate), to pass to a later tls_session_new towards the same server. Returns a
 * new object owned by the caller, or NULL (not a client, handshake not complete, no memory). */
tls_saved_session_t *tls_session_save(const tls_session_t *s);
/* Takes a saved session and frees it (wiping its secrets). NULL is ignored. */
void tls_saved_session_free(tls_saved_session_t *ss);

/* --- per thread -------------------------------------------------------------------------- */

/* Releases this thread's cached output memory and wipes its random generator. A worker calls
 * it once its sessions are freed, before the thread exits; the state is rebuilt on next use. */
void tls_thread_cleanup(void);

/* A static description of a TLS_ERR_* code (a static string). */
const char *tls_strerror(int rc);

#endif
