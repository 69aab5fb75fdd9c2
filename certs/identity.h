/* Workload identity from X.509 certificates: URI (SPIFFE) and DNS subject alternative names,
 * Envoy-style SAN matchers (exact / prefix), and certificate facts for the admin page.
 * No mbedTLS header is needed to use it: certificates appear only as an opaque struct. */
#ifndef REMORA_IDENTITY_H
#define REMORA_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mbedtls_x509_crt;

#define IDENTITY_SPIFFE_SCHEME "spiffe://"

/* ANY is only for matchers: Envoy's deprecated match_subject_alt_names, which looks at every
 * SAN whatever its type (each compared by its own type's rules). */
typedef enum { IDENTITY_SAN_URI, IDENTITY_SAN_DNS, IDENTITY_SAN_ANY } identity_san_type_t;

/* Envoy's StringMatcher kinds that make sense for identities. */
typedef enum { IDENTITY_MATCH_EXACT, IDENTITY_MATCH_PREFIX } identity_match_kind_t;

/* One expected peer identity, the shape of Envoy's match_typed_subject_alt_names entry:
 * { san_type: URI|DNS, matcher: { exact | prefix } } (or ANY, see above). URI values compare byte
 * for byte; DNS values compare without regard to ASCII case, and an exact DNS matcher also accepts
 * a certificate wildcard covering exactly its first label ("*.ns.svc" matches "a.ns.svc"). */
typedef struct identity_matcher {
    identity_san_type_t san_type;
    identity_match_kind_t kind;
    const char *value; /* NUL-terminated; who owns it depends on the holder of the matcher */
} identity_matcher_t;

typedef struct identity_san {
    identity_san_type_t type;
    char *value; /* NUL-terminated, owned by the identity_cert_info_t it belongs to */
} identity_san_t;

/* Facts about one certificate, for the admin page and logs. */
typedef struct identity_cert_info {
    char subject[256]; /* RFC 4514-like "O=..., CN=...", truncated if longer */
    char issuer[256];
    char serial[66];    /* lowercase hex without separators or leading zero bytes */
    int64_t not_before; /* Unix seconds */
    int64_t not_after;
    int64_t days_until_expiry; /* whole days from `now` to not_after; negative once expired */
    identity_san_t *sans;      /* URI and DNS SANs in certificate order; owned */
    size_t n_sans;
    const char *spiffe_id; /* the certificate's single spiffe:// URI SAN (points into sans), or
                              NULL when it has none or more than one */
} identity_cert_info_t;

/* Calls fn(arg, type, value, len) (arg borrowed, passed through) for each URI and DNS SAN of crt
 * (borrowed), in certificate order. value is a slice of crt's DER, valid while crt is, and not
 * NUL-terminated. Stops at the first non-zero return of fn and returns it; 0 when every SAN was
 * visited. */
int identity_foreach_san(const struct mbedtls_x509_crt *crt,
                         int (*fn)(void *arg, identity_san_type_t type, const char *value,
                                   size_t len),
                         void *arg);

/* Whether one SAN (type, value[0..len), borrowed) satisfies matcher m (borrowed). */
bool identity_san_matches(const identity_matcher_t *m, identity_san_type_t type, const char *value,
                          size_t len);

/* Whether any SAN of crt satisfies any of the n matchers (all borrowed). n == 0 is true: no
 * expectation means any identity the trust bundle vouches for. */
bool identity_cert_matches(const struct mbedtls_x509_crt *crt, const identity_matcher_t *m,
                           size_t n);

/* Writes crt's SPIFFE ID (its single spiffe:// URI SAN) NUL-terminated into out[0..cap).
 * Returns its length, -ENOENT when crt has no spiffe:// URI SAN, -EINVAL when it has several
 * (an X.509-SVID carries exactly one), -ENOSPC when cap is too small. crt is borrowed. */
int identity_spiffe_id(const struct mbedtls_x509_crt *crt, char *out, size_t cap);

/* Fills *out from crt (borrowed); `now` is Unix seconds for days_until_expiry. The caller owns
 * out->sans afterwards and releases it with identity_cert_info_free. Returns 0 or -ENOMEM (out
 * then holds nothing to free). */
int identity_cert_info(const struct mbedtls_x509_crt *crt, int64_t now, identity_cert_info_t *out);

/* The same from the first certificate of a PEM or DER buffer (borrowed, len bytes, no NUL
 * needed); the caller owns what *out holds, as for identity_cert_info. Returns 0, -ENOMEM, or
 * -EINVAL with a message in err[0..errlen). */
int identity_cert_info_parse(const char *data, size_t len, int64_t now, identity_cert_info_t *out,
                             char *err, size_t errlen);

/* Releases what identity_cert_info filled in (out itself borrowed); out may be reused
 * afterwards. NULL is ignored. */
void identity_cert_info_free(identity_cert_info_t *out);

/* Seconds since the Unix epoch for a calendar date and time in UTC (proleptic Gregorian). */
int64_t identity_utc_seconds(int year, int month, int day, int hour, int min, int sec);

#endif
