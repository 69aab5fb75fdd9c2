/* What the TLS engine's files share and nobody else sees: the config's layout and the
 * per-thread random generator. Includes mbedTLS, so only certs/ may include it. */
#ifndef REMORA_TLS_INTERNAL_H
#define REMORA_TLS_INTERNAL_H

#include <stdatomic.h>

#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include "certs/tls.h"

struct tls_config {
    atomic_int refs;
    tls_role_t role;
    mbedtls_ssl_config conf; /* read-only once built: shared by every worker's sessions */
    mbedtls_x509_crt chain;  /* own leaf + intermediates (raw.p NULL when absent) */
    mbedtls_pk_context key;
    mbedtls_x509_crt trust;
    mbedtls_ssl_ticket_context ticket; /* server; locks its own mutex (MBEDTLS_THREADING_C) */
    bool has_chain, has_trust;
    bool verify_optional; /* server asks for a client certificate but does not insist */
    int suites[5];        /* 0-terminated, referenced by conf: ECDSA suites, then RSA */
    mbedtls_ecp_group_id groups[3];
    int sig_hashes[4];
    const char **alpn; /* NULL-terminated, one block with the strings; referenced by conf */
    identity_matcher_t *peer_identities; /* values in the same block */
    size_t n_peer_identities;
    char *sni;
    char own_spiffe[2049]; /* the own leaf's SPIFFE ID, "" without one */
    size_t record_size;
    size_t high_water;
};

/* Server SNI callback (tls.c), installed by the config: records a copy of name (borrowed for
 * the call) in the session (ssl, borrowed); arg unused. */
int tls_on_sni(void *arg, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len);

/* mbedTLS's f_rng for every config and ticket context: draws from the calling thread's own
 * CTR-DRBG, seeded from the system entropy source on first use. p is unused; out is the
 * caller's. */
int tls_rng(void *p, unsigned char *out, size_t len);

/* Wipes the calling thread's generator (it reseeds on next use). */
void tls_rng_thread_cleanup(void);

#endif
