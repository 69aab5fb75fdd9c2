/* The Secrets a control plane serves a sidecar over SDS, as Istio names them: "default", the
 * workload certificate chain and key of the sidecar's SPIFFE identity, signed by the mesh CA,
 * and "ROOTCA", the trust bundle; and when a certificate is due for renewal. */
#ifndef REMORA_SDS_ISSUE_H
#define REMORA_SDS_ISSUE_H

#include <stddef.h>
#include <stdint.h>

#include "certs/ca.h"

#define SDS_CERT_SECRET "default"
#define SDS_ROOT_SECRET "ROOTCA"
#define SDS_SECRET_TYPE "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

/* An encoded Secret resource (the message's bytes, as an Any's value carries them). */
typedef struct sds_secret {
    uint8_t *bytes; /* malloc'd */
    size_t len;
} sds_secret_t;

/* A workload certificate as a Secret "default", with its validity. */
typedef struct sds_cert {
    sds_secret_t secret;
    int64_t not_before, not_after; /* Unix seconds, as written in the certificate */
    int64_t renew_at; /* when to issue the next one: halfway from its issue to not_after */
    char *root_pem;   /* the root the chain ends at (malloc'd), for "ROOTCA" */
} sds_cert_t;

/* Issues a certificate for spiffe_id (borrowed) with issuer (borrowed; one thread at a time) for
 * ttl_s seconds (0: CA_WORKLOAD_TTL_S, 24 h) and encodes it with its key and the issuer's
 * intermediates as Secret "default" (tls_certificate, inline bytes). On success *out (borrowed)
 * holds new memory the caller frees with sds_cert_free. Returns 0 or a negative error (ca.h)
 * with err set. */
int sds_cert_issue(ca_issuer_t *issuer, const char *spiffe_id, int64_t ttl_s, sds_cert_t *out,
                   char *err, size_t errlen);

/* Encodes root_pem (borrowed: the mesh's trust bundle, PEM) as Secret "ROOTCA"
 * (validation_context.trusted_ca, inline bytes) into *out (borrowed; new bytes the caller frees
 * with sds_secret_free). Returns 0 or -ENOMEM. */
int sds_root_secret(const char *root_pem, sds_secret_t *out);

/* When a certificate valid from not_before to not_after should be replaced: at half its
 * lifetime, as Istio's agents rotate (SECRET_GRACE_PERIOD_RATIO 0.5). */
int64_t sds_renew_at(int64_t not_before, int64_t not_after);

/* Free what sds_cert_issue / sds_root_secret made (the key bytes are wiped); NULL is fine. */
void sds_cert_free(sds_cert_t *c);
void sds_secret_free(sds_secret_t *s);

#endif
