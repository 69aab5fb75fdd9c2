/* The connection manager's HTTP/1.1 downstream codec (h1_server.c): requests parsed from the
 * connection's bytes (pipelined ones in order, one stream at a time), responses framed for the
 * client (Content-Length, chunked, or close-delimited for HTTP/1.0), Upgrade and CONNECT
 * tunnels. Its per-connection state is below; the connection (hcm_conn.h) holds it. */
#ifndef REMORA_H1_SERVER_H
#define REMORA_H1_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "proxy/http/h1/http1.h"

struct hcm_codec;

typedef struct h1_server {
    http1_request_t req;       /* the current request's parse (its slices in the stream's arena) */
    http1_body_decoder_t body; /* the current request's body */
    size_t in_feeding; /* bytes at the front of the input up to the end of the piece being fed */
    bool head_pending; /* the response head waits to leave with the first body bytes */
    uv_buf_t pending_head;
    bool resp_chunked; /* the response is re-framed as chunked toward the client */
} h1_server_t;

/* The codec's table (static). */
extern const struct hcm_codec h1_server_codec;

#endif
