/* ca_internal.h — what ca.c (making certificates) and ca_store.c (reading issuers, writing
 * files) share: the issuer's parsed state and the mbedTLS error-message helper. Only certs/ca*.c.
 */
#ifndef REMORA_CERTS_CA_INTERNAL_H
#define REMORA_CERTS_CA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "certs/ca.h"
#include "base/err.h"

#define CA_LABEL_SIZE 512 /* a file path or a description, for messages */

struct ca_issuer {
    mbedtls_x509_crt cert;  /* the CA certificate that signs */
    mbedtls_pk_context key; /* its private key, checked to match cert */
    mbedtls_x509_crt chain; /* the intermediates above cert, nearest first; roots left out */
    mbedtls_x509_crt root;  /* the trust anchor the chain ends at (a copy of cert for a root) */
    mbedtls_md_type_t md;   /* the digest for signatures by key */
    bool cert_is_root;
    char cert_name[CA_LABEL_SIZE], key_name[CA_LABEL_SIZE], chain_name[CA_LABEL_SIZE],
        root_name[CA_LABEL_SIZE];
};

/* err_set (base/err.h) for a failed mbedTLS call: "what: <mbedTLS's text for tls_rc>" into err
 * (the caller's, errlen bytes; what borrowed for the call),
 * returns CA_ERR_CRYPTO. */
int ca_crypto_fail(char *err, size_t errlen, int tls_rc, const char *what);

#endif
