/* Request and response heads that know no wire format: what a downstream codec hands the
 * connection manager, what the stream API hands filters and the router, and what an upstream
 * codec is given to send and hands back (as Envoy's header maps with their pseudo-headers taken
 * out). Every codec, HTTP/1 or HTTP/2, turns its wire into these and these into its wire; the
 * connection manager, the filters and the router see nothing else.
 *
 * Framing is stated by has_body and content_length, never by the header list: a codec that
 * sends a head writes its own framing from them, and drops from the list the fields that
 * belong to one hop (Connection and the names it lists, Keep-Alive, Proxy-Connection, TE,
 * Transfer-Encoding, Upgrade) and Content-Length. A list decoded from HTTP/1 may still carry
 * them; one decoded from HTTP/2 never does. */
#ifndef REMORA_HTTP_MSG_H
#define REMORA_HTTP_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/http/http.h"

typedef enum {
    HTTP_PROTO_10, /* HTTP/1.0 */
    HTTP_PROTO_11, /* HTTP/1.1 */
    HTTP_PROTO_2,  /* HTTP/2 */
} http_proto_t;

/* The protocol's name as access logs and Istio's metrics write it ("HTTP/1.1"); static. */
static inline const char *http_proto_name(http_proto_t p)
{
    return p == HTTP_PROTO_10 ? "HTTP/1.0" : p == HTTP_PROTO_11 ? "HTTP/1.1" : "HTTP/2";
}

/* Every slice points into memory its owner keeps (a stream's arena, a codec's buffer); the
 * head is valid as long as that memory is. */
typedef struct http_request_head {
    const char *method; /* :method */
    uint32_t method_len;
    /* :path: origin-form with its query; "*" for OPTIONS *; empty for CONNECT. */
    const char *path;
    uint32_t path_len;
    /* :authority (HTTP/1: the absolute-form or CONNECT authority, else Host); len 0: none. */
    const char *authority;
    uint32_t authority_len;
    http_headers_t headers; /* the fields, pseudo-headers excluded */
    /* The body's length when it is known before it is sent (Content-Length, or a body held
     * whole); -1 when it is not (chunked, an HTTP/2 body without content-length). */
    int64_t content_length;
    bool has_body; /* false: the head is the whole request (end of stream) */
    http_proto_t proto;
    bool connect; /* CONNECT */
    /* The Upgrade the connection manager lets through (an enabled upgrade_configs type), which
     * an HTTP/1 codec sends on with Connection: upgrade; NULL: none. */
    const char *upgrade;
    uint32_t upgrade_len;
} http_request_head_t;

typedef struct http_response_head {
    int status;
    http_headers_t headers; /* the fields, :status excluded */
    /* As for requests. A response without a body (to HEAD, 204, 304) keeps the Content-Length
     * it announced here (it says what a GET would have had), or -1. */
    int64_t content_length;
    bool has_body; /* false: the head is the whole response */
} http_response_head_t;

#endif
