/* TLS ClientHello sniffing for the tls_inspector listener filter: from the first bytes peeked
 * off a new connection, decide whether it is TLS and read what filter chain matching needs (SNI,
 * ALPN, versions). A pure parser of attacker-controlled bytes: no allocation, no I/O. */
#ifndef REMORA_TLS_HELLO_H
#define REMORA_TLS_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Results of tls_hello_parse. Negative values are TLS that cannot be accepted. */
enum {
    TLS_HELLO_NEED_MORE = 0, /* could still be a ClientHello: peek again with at least h->need */
    TLS_HELLO_OK = 1,        /* a complete, well-formed ClientHello: transport_protocol "tls" */
    TLS_HELLO_NOT_TLS = 2,   /* not a TLS handshake record: plaintext (e.g. an HTTP request) */
    TLS_HELLO_ERROR = -1,    /* a TLS handshake record, but malformed; h->error says how */
    TLS_HELLO_TOO_LARGE = -2 /* the ClientHello would not fit in TLS_HELLO_MAX_INPUT bytes */
};

#define TLS_HELLO_MAX_INPUT   65536 /* most bytes ever needed, records included (Envoy's 64 KiB) */
#define TLS_HELLO_MAX_MESSAGE 16384 /* longest ClientHello body accepted, over any records */
#define TLS_HELLO_MAX_SNI     255   /* RFC 6066 host_name limit */
#define TLS_HELLO_MAX_ALPN    8     /* ALPN protocols kept; further ones set alpn_truncated */
#define TLS_HELLO_ALPN_BUF    512   /* bytes for the kept protocols, a NUL after each */

/* What a ClientHello says. Filled by tls_hello_parse; the caller owns it (a stack variable or
 * per-connection state). server_name and alpn[] point into the struct itself, so a copy made
 * with memcpy or assignment still points into the original: parse into the final place. */
typedef struct tls_hello {
    uint16_t record_version; /* version field of the first record (0x0301 for most clients) */
    uint16_t legacy_version; /* ClientHello.legacy_version (0x0303 for TLS 1.2 and 1.3) */
    uint16_t max_version;    /* highest supported_versions entry (GREASE skipped), else legacy */
    bool tls13;              /* supported_versions offers TLS 1.3 (0x0304) */
    /* TLS_HELLO_OK: input bytes up to the end of the ClientHello message (the record headers
     * included). TLS_HELLO_NEED_MORE: the input length needed at least before the answer can
     * change, never more than TLS_HELLO_MAX_INPUT (a lower bound: more may be needed then). */
    uint32_t length;
    uint32_t need;
    const char *error; /* TLS_HELLO_ERROR, TLS_HELLO_TOO_LARGE: a static string for logs */
    /* server_name extension, host_name entry: lowercased, NUL-terminated, "" when absent. Only
     * letters, digits, '-', '_' and non-empty dot-separated labels are accepted (Istio's
     * outbound_.PORT_._.HOST names have underscores); anything else is TLS_HELLO_ERROR. */
    char server_name[TLS_HELLO_MAX_SNI + 1];
    size_t server_name_len;
    /* application_layer_protocol_negotiation, in the client's order: alpn[i] is alpn_len[i]
     * bytes (opaque, may hold any byte) followed by a NUL. */
    size_t n_alpn;
    bool alpn_truncated; /* more protocols than TLS_HELLO_MAX_ALPN or TLS_HELLO_ALPN_BUF held */
    const char *alpn[TLS_HELLO_MAX_ALPN];
    uint8_t alpn_len[TLS_HELLO_MAX_ALPN];
    char alpn_buf[TLS_HELLO_ALPN_BUF];
} tls_hello_t;

/* Looks at buf[0..len) (borrowed, only read; the bytes peeked so far from a new connection) and
 * returns a TLS_HELLO_* result, filling h (borrowed, caller-owned; fully reset on every call).
 * The parser keeps no state between calls: call again with the grown buffer. A ClientHello may
 * be fragmented over several handshake records; bytes after it (a ChangeCipherSpec, early data)
 * are not looked at. Only the first byte is needed to tell most plaintext from TLS. */
int tls_hello_parse(const uint8_t *buf, size_t len, tls_hello_t *h);

/* Whether the client offered ALPN protocol name[0..len) (borrowed). False when h has no ALPN. h
 * borrowed. */
bool tls_hello_offers_alpn(const tls_hello_t *h, const char *name, size_t len);

#endif
