/* ca.h — a small certificate authority for SPIFFE workload identities: root and intermediate CAs,
 * workload leaf certificates with the SPIFFE ID as URI SAN, and the Istio-style files they live in.
 * No mbedTLS type appears here; the CA's parsed state stays inside certs/. */
#ifndef REMORA_CERTS_CA_H
#define REMORA_CERTS_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CA_SPIFFE_SCHEME      "spiffe://"
#define CA_SPIFFE_ID_MAX      2048 /* bytes, as the SPIFFE spec limits a URI SAN */
#define CA_DEFAULT_ORG        "Remora"
#define CA_DEFAULT_TD         "cluster.local"
#define CA_ROOT_TTL_S         (87600LL * 3600)  /* 10 years */
#define CA_INTERMEDIATE_TTL_S (8760LL * 3600)   /* 1 year */
#define CA_WORKLOAD_TTL_S     (24LL * 3600)     /* 24 hours */
#define CA_MAX_TTL_S          (36500LL * 86400) /* 100 years */
#define CA_MAX_PATHLEN        8  /* mbedTLS verifies chains of at most 8 intermediates */
#define CA_BACKDATE_S         60 /* not-before is this far in the past, for clock skew */

/* Errors: these, or -errno for files (-ENOENT, -EACCES, -EEXIST ...) and -ENOMEM. Every failing
 * call also writes a message to its err buffer saying what failed and where. */
enum ca_error {
    CA_ERR_BAD_SPIFFE_ID = -1001,        /* not a valid SPIFFE ID */
    CA_ERR_KEY_MISMATCH = -1002,         /* the CA key is not the CA certificate's key */
    CA_ERR_ISSUER_EXPIRED = -1003,       /* a certificate of the issuing CA has expired */
    CA_ERR_ISSUER_NOT_YET_VALID = -1004, /* ... or is not valid yet */
    CA_ERR_NOT_CA = -1005,               /* the issuer is not a CA (basicConstraints, keyUsage) */
    CA_ERR_KEY_TYPE = -1006,             /* a key type or size we do not sign with */
    CA_ERR_PATHLEN = -1007,              /* the issuer's pathLenConstraint forbids another CA */
    CA_ERR_BAD_INPUT = -1008, /* unparsable PEM, chain that does not verify, bad option */
    CA_ERR_CRYPTO = -1009,    /* random generator, key generation or signing failed */
};

typedef enum ca_key_type {
    CA_KEY_EC_P256 = 0, /* ECDSA on P-256, signed with SHA-256: the default */
    CA_KEY_RSA_2048,
} ca_key_type_t;

/* How to make a certificate. Start from ca_opts_default(); every field has a usable default. */
typedef struct ca_opts {
    ca_key_type_t key_type; /* the new certificate's key */
    int64_t ttl_s;          /* lifetime in seconds; 0 = the default for the kind (CA_*_TTL_S) */
    const char *org;        /* O= of a CA's subject (borrowed); NULL = CA_DEFAULT_ORG for a root,
                               the issuer's O= (else CA_DEFAULT_ORG) for an intermediate */
    int pathlen;            /* intermediates: pathLenConstraint; -1 = one less than the issuer's,
                               or 0 (signs workloads only) when the issuer has none */
    /* Exact validity in Unix seconds, used verbatim when not_after != 0: no backdating, no
     * clamping to the issuer. Meant for tests (an issuer that has already expired). */
    int64_t not_before;
    int64_t not_after;
} ca_opts_t;

/* A certificate just made. All strings are NUL-terminated PEM owned by the struct. */
typedef struct ca_issued {
    char *cert_pem;  /* the new certificate */
    char *key_pem;   /* its private key (SEC1 for EC, PKCS#1 for RSA) */
    char *chain_pem; /* the new certificate, then the issuer's chain up to but excluding the
                        root; NULL for a root */
    char *root_pem;  /* the root the chain ends at (for a root, the certificate itself) */
    int64_t not_before, not_after; /* the validity written, Unix seconds */
    bool clamped;                  /* not_after was cut to the issuer chain's earliest expiry */
} ca_issued_t;

/* A CA that signs: its certificate and key, the intermediates above it and the root. Opaque. */
typedef struct ca_issuer ca_issuer_t;

/* Where an issuer comes from: PEM text (borrowed) and a name for each (a path, for messages;
 * NULL names a generic one). chain_pem may be NULL (the CA certificate alone), or hold the CA
 * certificate first and the certificates above it; roots in it are skipped. root_pem may be NULL
 * only when the CA certificate is self-signed (it is then the root). */
typedef struct ca_issuer_src {
    const char *cert_pem, *cert_name;
    const char *key_pem, *key_name;
    const char *chain_pem, *chain_name;
    const char *root_pem, *root_name;
} ca_issuer_src_t;

/* The files of each kind of output directory (Istio's names). */
typedef enum ca_layout {
    CA_LAYOUT_ROOT,         /* root-cert.pem, root-key.pem */
    CA_LAYOUT_INTERMEDIATE, /* ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem */
    CA_LAYOUT_WORKLOAD,     /* key.pem, cert-chain.pem, root-cert.pem */
} ca_layout_t;

/* Fills *opts (borrowed) with the defaults: EC P-256, the kind's default TTL, default org and
 * pathlen, no validity override. */
void ca_opts_default(ca_opts_t *opts);

/* Checks that id (borrowed, NUL-terminated) is a SPIFFE ID: "spiffe://", a non-empty trust domain
 * of [a-z0-9.-_], then optionally a path of "/segment" with segments of [a-zA-Z0-9.-_] that are
 * not empty, "." or ".."; no query, fragment, port or user info; at most CA_SPIFFE_ID_MAX bytes.
 * Returns 0, or CA_ERR_BAD_SPIFFE_ID with the reason (not the ID) written to err (borrowed,
 * errlen bytes). Safe to call from any thread. */
int ca_validate_spiffe_id(const char *id, char *err, size_t errlen);

/* Writes "spiffe://<td>/ns/<ns>/sa/<sa>" into out (borrowed, outlen bytes) and validates it.
 * All inputs are borrowed. Returns 0, or CA_ERR_BAD_SPIFFE_ID / -ENAMETOOLONG with err set. */
int ca_spiffe_id_build(const char *trust_domain, const char *ns, const char *sa, char *out,
                       size_t outlen, char *err, size_t errlen);

/* Makes a self-signed root CA (subject "O=<org>, CN=Root CA", CA:TRUE without a path length
 * limit, keyCertSign|cRLSign). opts is borrowed (NULL = defaults); on success *out (borrowed) is
 * filled with new strings the caller frees with ca_issued_free. Returns 0 or a negative error. */
int ca_make_root(const ca_opts_t *opts, ca_issued_t *out, char *err, size_t errlen);

/* Signs an intermediate CA ("O=<org>, CN=Intermediate CA", or "Intermediate CA <n>" n levels
 * below the root, so that no CA bears its issuer's name) with issuer (borrowed; signing updates
 * its key's blinding state, so one issuer signs from one thread at a time). Its not-after
 * is clamped to the issuer chain's earliest not-after. Refuses an issuer whose chain has expired
 * or is not valid yet, or whose pathLenConstraint leaves no room for another CA. Fills *out as
 * ca_make_root does. */
int ca_make_intermediate(ca_issuer_t *issuer, const ca_opts_t *opts, ca_issued_t *out, char *err,
                         size_t errlen);

/* Issues a workload certificate for spiffe_id (borrowed, validated here): empty subject, the ID
 * as the only, critical, URI SAN; CA:FALSE, digitalSignature|keyEncipherment, serverAuth and
 * clientAuth; not-before backdated CA_BACKDATE_S, not-after clamped as for intermediates. Fills
 * *out as ca_make_root does; chain_pem is the leaf then the issuer's intermediates. */
int ca_issue_workload(ca_issuer_t *issuer, const char *spiffe_id, const ca_opts_t *opts,
                      ca_issued_t *out, char *err, size_t errlen);

/* Frees the strings of *issued (borrowed) and zeroes it. The key is wiped first. NULL is fine. */
void ca_issued_free(ca_issued_t *issued);

/* Parses and checks an issuer from src (borrowed): the key must be the certificate's (EC P-256,
 * P-384 or RSA >= 2048), the certificate a CA with keyCertSign, and it must chain through the
 * given intermediates to the root (validity is checked later, when signing). On success *out is
 * a new issuer the caller frees with ca_issuer_free. */
int ca_issuer_load(const ca_issuer_src_t *src, ca_issuer_t **out, char *err, size_t errlen);

/* Loads the issuer kept in dir (borrowed): an intermediate directory (ca-cert.pem, ca-key.pem,
 * cert-chain.pem, root-cert.pem) when it has ca-key.pem, else a root directory (root-cert.pem,
 * root-key.pem). *out as for ca_issuer_load. */
int ca_issuer_load_dir(const char *dir, ca_issuer_t **out, char *err, size_t errlen);

/* Takes an issuer from ca_issuer_load* and frees it; the key is wiped. NULL is fine. */
void ca_issuer_free(ca_issuer_t *issuer);

/* Writes issued (borrowed) into dir (borrowed; created with mode 0755, parents too, if missing)
 * as layout names: keys mode 0600, certificates 0644. Each file is written to a temporary file
 * created 0600 in dir and renamed into place, so a key is never readable by others and never
 * half-written. Unless overwrite, refuses with -EEXIST before writing anything when any target
 * exists. Returns 0 or a negative error with err set. */
int ca_save_dir(const char *dir, ca_layout_t layout, const ca_issued_t *issued, bool overwrite,
                char *err, size_t errlen);

#endif
