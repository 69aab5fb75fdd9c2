/* Strict, zero-copy HTTP/1.1 codec (RFC 9110/9112): request and response heads, the body
 * decoder (Content-Length, chunked with trailers, until-close) and the loop that pumps a buffer
 * through it, and head writers. */
#ifndef REMORA_HTTP1_H
#define REMORA_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proxy/http/http.h"

/* Results of the parsers. A positive value is the length of what was parsed. */
enum {
    HTTP1_INCOMPLETE = 0,         /* need more bytes */
    HTTP1_E_BAD = -1,             /* malformed: 400 (request) / 502 (response) */
    HTTP1_E_HEAD_TOO_LARGE = -2,  /* 431 (request) / 502 */
    HTTP1_E_NOT_IMPLEMENTED = -3, /* 501: transfer-coding other than a final chunked */
    HTTP1_E_VERSION = -4,         /* 505: not HTTP/1.0 or 1.1 */
};

typedef enum {
    HTTP1_BODY_NONE,
    HTTP1_BODY_LENGTH,
    HTTP1_BODY_CHUNKED,
    HTTP1_BODY_UNTIL_CLOSE /* responses only */
} http1_body_kind_t;

/* Every pointer in a parsed head is a slice of the caller's buffer (or a static string), valid as
 * long as that buffer is. Nothing is allocated. */
typedef struct http1_request {
    const char *method;
    uint32_t method_len;
    const char *target; /* request-target as sent */
    uint32_t target_len;
    /* Origin-form target, or the path (+query) of an absolute-form target ("/" when it has no
     * path; "?q" when it has a query but no path); "*" for OPTIONS *; empty for CONNECT. */
    const char *path;
    uint32_t path_len;
    /* Absolute-form/CONNECT authority, else the Host value; len 0 if none. */
    const char *authority;
    uint32_t authority_len;
    int minor_version;      /* 0 or 1 */
    http_headers_t headers; /* caller sets .v and .cap before the call; slices point into buf */
    http1_body_kind_t body; /* Content-Length: 0 gives NONE */
    uint64_t content_length;
    bool keep_alive;      /* 1.1 default on unless "Connection: close"; 1.0 only with keep-alive */
    bool expect_continue; /* Expect: 100-continue (HTTP/1.1 only, RFC 9110 §10.1.1) */
    bool upgrade;         /* Connection contains "upgrade" and an Upgrade header is present */
    bool connect;         /* CONNECT */
    const char *error;    /* on failure: a static string saying what was wrong, for logs */
} http1_request_t;

/* Parses one request head at buf[0..len) (borrowed). Returns its length (>0) when complete,
 * HTTP1_INCOMPLETE when more bytes are needed (and len <= max_head), or a negative HTTP1_E_*; a
 * head longer than max_head is HTTP1_E_HEAD_TOO_LARGE, as are more headers than headers.cap.
 * Empty lines (CRLF) before the request line are skipped and counted in the returned length.
 * On HTTP1_E_HEAD_TOO_LARGE while still in the request line, error is "request line too long"
 * (a caller that prefers 414 can test it). The parser keeps no state: call again with the
 * grown buffer. On failure the other fields are unspecified. buf is borrowed: req's strings and
 * header slices point into it (valid while buf is); req and its header array are the caller's. */
int http1_parse_request(const char *buf, size_t len, size_t max_head, http1_request_t *req);

typedef struct http1_response {
    int status;
    const char *reason; /* slice of buf, may be empty */
    uint32_t reason_len;
    int minor_version;
    http_headers_t headers; /* caller sets .v and .cap */
    http1_body_kind_t body;
    uint64_t content_length; /* the Content-Length value when present, even if body is NONE */
    bool keep_alive;
    const char *error;
} http1_response_t;

/* Body rules of RFC 9112 §6.3: HEAD requests, 1xx, 204, 304 have no body; 2xx to CONNECT is a
 * tunnel (body NONE, the caller switches to bytes); chunked; Content-Length; else until close.
 * A 1xx (e.g. 100 Continue) parses as a complete head with status < 200; the caller loops.
 * Errors as for requests; every one of them means 502 to the downstream. Ownership as for
 * http1_parse_request: resp's slices point into buf (borrowed). */
int http1_parse_response(const char *buf, size_t len, size_t max_head, bool request_was_head,
                         bool request_was_connect, http1_response_t *resp);

/* Parses a field section (header or trailer lines, then the empty line) at buf[0..len). Returns
 * its length including the final CRLF, HTTP1_INCOMPLETE, HTTP1_E_BAD, or HTTP1_E_HEAD_TOO_LARGE
 * when there are more fields than h->cap. h may be NULL to validate only; else h->n is set.
 * buf borrowed: h's slices point into it; *error gets a static string. */
int http1_parse_fields(const char *buf, size_t len, http_headers_t *h, const char **error);

/* Chunk-size lines and trailer sections must arrive whole before they are consumed; these bound
 * how much of them the decoder waits for before it gives up with HTTP1_E_BAD. */
#define HTTP1_MAX_CHUNK_LINE 4096
#define HTTP1_MAX_TRAILERS   16384

typedef struct http1_body_decoder {
    uint64_t remaining; /* bytes left in the body (LENGTH) or in the current chunk */
    uint32_t max_chunk_line;
    uint32_t max_trailers;
    uint8_t kind; /* http1_body_kind_t */
    uint8_t state;
    const char *error; /* after HTTP1_E_BAD: what was wrong */
} http1_body_decoder_t;

/* Sets up d (the caller's) for one body; the limits start at HTTP1_MAX_CHUNK_LINE /
 * HTTP1_MAX_TRAILERS and may be changed afterwards. */
void http1_body_init(http1_body_decoder_t *d, http1_body_kind_t kind, uint64_t content_length);

/* Decodes body bytes from in[0..len) incrementally and without copying. Returns bytes consumed
 * (>= 0) or HTTP1_E_BAD (bad chunk size line, missing CRLF after chunk data, bare LF, size
 * overflow, chunk extensions with bad syntax). *data and *data_len: the body bytes found in this
 * call (a slice of in, possibly empty; at most one slice per call); call again with the rest. A
 * return of 0 without *done means more bytes are needed. *done is set when the body is complete.
 * Chunked trailers: the decoder consumes nothing from the trailer section until the whole
 * section (up to the empty line) is in `in`, then parses its fields into *trailers (caller
 * storage like request headers, slices of in; NULL means discard), validates them like header
 * fields, and sets done. UNTIL_CLOSE never sets done (the caller ends it on EOF). */
ssize_t http1_body_decode(http1_body_decoder_t *d, const char *in, size_t len, const char **data,
                          size_t *data_len, http_headers_t *trailers, bool *done);

/* Trailer fields a pumped body may carry; more is HTTP1_E_BAD ("too many fields"). */
#define HTTP1_PUMP_TRAILERS 32

/* One decode step of http1_body_pump, as its sink sees it. The step spans in[offset, offset +
 * used): framing and body bytes alike, so offset + used is what the pump has consumed through
 * it. Every pointer is borrowed for the sink's call only. */
typedef struct http1_body_piece {
    const char *data; /* the body bytes found in this step: a slice of in, len may be 0 */
    size_t len;
    size_t offset; /* where the step starts in in: the bytes the steps before it span */
    size_t used;   /* bytes of in the step spans (> 0 unless it is a done step) */
    /* On the done step, the trailer fields (n == 0 when there are none; slices of in, in the
     * pump's storage); NULL on every other step. */
    const http_headers_t *trailers;
    bool done; /* the body is complete with this step */
} http1_body_piece_t;

/* A pump's sink: returns 0 to go on, or a positive value of its own to stop the pump. */
typedef int (*http1_body_sink_fn)(void *arg, const http1_body_piece_t *piece);

/* The body loop of a connection: decodes in[0..len) with d step after step and hands each step
 * that spans bytes or completes the body to sink(arg, piece), until the bytes run out or wait
 * for more, the body is complete, or the sink stops it. Returns 0 (out of bytes, waiting for
 * more, or complete: the sink saw the done step), the sink's positive value, or HTTP1_E_BAD
 * (d->error says what; the sink saw the steps before the bad bytes). *consumed (the caller's)
 * is always set: the bytes of in that the steps handed to the sink span, the one that stopped
 * the pump included; the caller drops them from its buffer its own way. in is borrowed and the
 * pump never writes it; while the sink returns 0 it must leave in as it is, and once it stops
 * the pump it may consume, reuse or free it, since the pump reads nothing after that. d and
 * arg are borrowed; nothing is allocated or copied. */
static inline int http1_body_pump(http1_body_decoder_t *d, const char *in, size_t len,
                                  http1_body_sink_fn sink, void *arg, size_t *consumed)
    __attribute__((always_inline));

/* Defined here and always inlined so that each caller's sink, a constant where it is called, is
 * inlined into the loop: the three callers on the data path pay what a loop of their own cost,
 * not a call per body and an indirect call per step. */
static inline int http1_body_pump(http1_body_decoder_t *d, const char *in, size_t len,
                                  http1_body_sink_fn sink, void *arg, size_t *consumed)
{
    /* Only the done step's trailer list is handed out; the decoder fills it afresh (n from 0). */
    http_header_t tv[HTTP1_PUMP_TRAILERS];
    http_headers_t trailers = {.v = tv, .cap = HTTP1_PUMP_TRAILERS};
    http1_body_piece_t p;
    size_t off = 0;
    int rc = 0;
    while (off < len) {
        bool done = false;
        ssize_t used = http1_body_decode(d, in + off, len - off, &p.data, &p.len, &trailers, &done);
        if (used < 0) {
            rc = HTTP1_E_BAD;
            break;
        }
        if (used == 0 && !done)
            break; /* a chunk-size line or the trailer section is not all here yet */
        p.offset = off;
        p.used = (size_t)used;
        p.trailers = done ? &trailers : NULL;
        p.done = done;
        off += (size_t)used;
        rc = sink(arg, &p);
        if (rc != 0 || done)
            break;
    }
    *consumed = off;
    return rc;
}

/* Writers: like snprintf, return the bytes needed and write at most cap bytes (no NUL is
 * written). They do not validate: pass what the parser accepted or literals. Inputs are borrowed
 * for the call; out is the caller's. Request heads are
 * always HTTP/1.1; response heads too. */
size_t http1_write_request_head(char *out, size_t cap, const char *method, size_t method_len,
                                const char *target, size_t target_len, const http_headers_t *h);
/* reason NULL: the standard one (empty for unknown codes); else a NUL-terminated string. */
size_t http1_write_response_head(char *out, size_t cap, int status, const char *reason,
                                 const http_headers_t *h);
/* The last chunk of a chunked body with its trailer fields ("0\r\nname: value\r\n\r\n"; trailers
 * NULL or empty: "0\r\n\r\n"), as the head writers do: returns the bytes needed, writes at most
 * cap (out may be NULL when cap is 0). */
size_t http1_write_last_chunk(char *out, size_t cap, const http_headers_t *trailers);
/* "1a2b\r\n" for len 0x1a2b; returns the length written (at most 18). */
size_t http1_write_chunk_size(char out[24], size_t len);
/* The RFC 9110 reason phrase ("Not Found"), or "" for a code without one. Static. */
const char *http1_reason(int status);
/* Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and names
 * listed in any Connection field of all (which may be NULL). h and all borrowed. */
bool http1_is_hop_by_hop(const http_header_t *h, const http_headers_t *all);

#endif
