/* The stream API: what an HTTP filter may see of and do to its stream, implemented by the
 * connection manager for every filter (Envoy's StreamDecoderFilterCallbacks). Filters, the router
 * and its upstream side (upstream_request.c) reach the connection manager only through it, and
 * the connection manager reaches filters only through their ops table (http_filter.h): the
 * dependency runs one way. Free of libuv types so filters can include it.
 *
 * Pointers: http_stream_t is owned by the connection manager; a filter borrows it for the
 * stream's life (from its on_request_headers to its done). What the stream hands out (headers,
 * request head, route, arena memory) is owned by the stream and valid until its done. */
#ifndef REMORA_HTTP_STREAM_H
#define REMORA_HTTP_STREAM_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/http/http_msg.h"
#include "xds/snapshot/route.h"

typedef struct http_stream http_stream_t;
struct worker;
struct sockaddr;

/* What a call that can end the stream returns once it has: the stream was answered, reset or
 * closed inside the call, the filters' done has run and their per-stream state is gone. The
 * caller returns at once and touches neither its state nor the stream again. */
#define HTTP_STREAM_ENDED (-ECANCELED)

/* Why a stream is abandoned before it completed (a filter's on_reset). */
typedef enum {
    HTTP_RESET_DOWNSTREAM, /* the client closed or reset the connection (DC) */
    HTTP_RESET_LOCAL,      /* we reset the client: a failure after the head, the drain deadline */
    HTTP_RESET_TIMEOUT,    /* the stream's deadline passed (http_stream_set_deadline) */
} http_reset_reason_t;

/* Counters a filter keeps under the connection manager's prefix (http.<stat_prefix>.…), as
 * Envoy's router does. */
typedef enum {
    HTTP_STREAM_STAT_NO_CLUSTER, /* no_cluster */
} http_stream_stat_t;

/* Where the request went upstream, for the report (stats, metrics, access log) and the response
 * header operations. Written by the router; the stream reads it until the filters' done. */
typedef struct http_upstream_info {
    const snap_cluster_t *cluster;          /* NULL: the request did not reach a cluster */
    int endpoint;                           /* index into cluster->endpoints */
    const route_header_ops_t *response_ops; /* the weighted cluster's, or NULL */
} http_upstream_info_t;

/* ---- request ----------------------------------------------------------------------------- */

/* The request's headers, borrowed from s (valid while the stream lives): filters may change
 * them, and what they are when the router runs is what goes upstream. */
http_headers_t *http_stream_request_headers(http_stream_t *s);
/* The request head (method, path, authority, body framing, protocol; docs/http.md), borrowed
 * from s; its headers are those of http_stream_request_headers. A body held whole
 * (http_stream_buffer_body) shows as its content_length once it is complete. */
const http_request_head_t *http_stream_request_head(const http_stream_t *s);
/* The route matched (never NULL once filters run) and its virtual host (*vhost, may be NULL),
 * both borrowed from the route table the stream holds (valid while the stream lives). */
const route_entry_t *http_stream_route(const http_stream_t *s, const route_vhost_t **vhost);
/* The route table the route came from (its table-wide header operations); borrowed, valid
 * while the stream lives. */
const route_table_t *http_stream_route_table(const http_stream_t *s);
/* The whole request body when a filter had it buffered (http_stream_buffer_body), else NULL;
 * borrowed from s. */
const char *http_stream_buffered_body(const http_stream_t *s, size_t *len);
/* The connection's original destination (SO_ORIGINAL_DST or its local address), borrowed from
 * the stream's connection. */
const struct sockaddr *http_stream_original_dst(const http_stream_t *s);

/* ---- headers ----------------------------------------------------------------------------- */

/* The response's headers, borrowed from s (valid while the stream lives). */
http_headers_t *http_stream_response_headers(http_stream_t *s);
/* Appends a header to h (borrowed: one of s's header lists); name and value are borrowed and
 * copied into the stream. Returns 0 or -ENOMEM. */
int http_stream_header_add(http_stream_t *s, http_headers_t *h, const char *name, size_t name_len,
                           const char *value, size_t value_len);
/* Replaces every header named `lower` with one value (adds it when absent); h borrowed, lower
 * and value borrowed and copied into the stream. */
int http_stream_header_set(http_stream_t *s, http_headers_t *h, const char *lower,
                           const char *value, size_t value_len);
/* Removes every header named `lower` (a lowercase name, borrowed for the call) from h
 * (borrowed). */
void http_headers_remove(http_headers_t *h, const char *lower);
/* Applies a route header-operations block (ops, borrowed for the call; what it adds is copied)
 * to h (borrowed). */
void http_stream_apply_header_ops(http_stream_t *s, http_headers_t *h,
                                  const route_header_ops_t *ops);

/* ---- the stream's resources -------------------------------------------------------------- */

/* size bytes from the stream's arena (16-aligned, not zeroed), owned by the stream and freed
 * with it; NULL when memory is exhausted. */
void *http_stream_alloc(http_stream_t *s, size_t size);
/* The worker the stream runs on (its stats slots, generator, loop); borrowed. */
struct worker *http_stream_worker(const http_stream_t *s);
/* The loop's clock in milliseconds. s borrowed, as in every http_stream_* call. */
uint64_t http_stream_now(const http_stream_t *s);
/* From now on the stream is reset with HTTP_RESET_TIMEOUT and answered 504 (UT) after ms; 0
 * clears the deadline. One deadline per stream: a later call replaces it. */
void http_stream_set_deadline(http_stream_t *s, uint64_t ms);
/* Counts `which` in the stream's stats; s borrowed. */
void http_stream_count(http_stream_t *s, http_stream_stat_t which);
/* Records where the request went upstream; info (borrowed) must stay valid and is read until
 * the filters' done, so a filter keeps it in its own per-stream state and updates it there. */
void http_stream_set_upstream(http_stream_t *s, const http_upstream_info_t *info);

/* ---- request body ------------------------------------------------------------------------ */

/* Holds the request until its whole body has arrived (at most max_bytes; more is answered with
 * 413), then passes it on with a Content-Length: the filters after the caller run then, and the
 * body leaves with the request head. Call from on_request_headers. Returns 1 when the body is
 * already complete (continue now), 0 when buffering started (return FILTER_STOP), or -ENOMEM. */
int http_stream_buffer_body(http_stream_t *s, size_t max_bytes);
/* Stops reading the client (flow control: the upstream cannot take more now). */
void http_stream_pause_request_body(http_stream_t *s);
/* Body bytes go to the filters' on_request_body from now on (the terminal filter calls it once
 * the request head went upstream), and reading resumes after a pause. What is buffered is
 * delivered inside the call. Returns 0, or HTTP_STREAM_ENDED. */
int http_stream_resume_request_body(http_stream_t *s);

/* ---- response ---------------------------------------------------------------------------- */

/* Answers the request locally (status, body: NUL-terminated, borrowed) and ends the stream;
 * `flag` is the access-log response flag ("NR", "UH"...) or NULL. Once the response head went
 * out, the client connection is reset instead. The stream has ended on return. */
void http_stream_local_reply(http_stream_t *s, int status, const char *body, const char *flag);
/* The upstream's response head (borrowed for the call): hop-by-hop fields are dropped, filters'
 * on_response_headers and the route's response header operations run, and it is framed for the
 * client. It leaves with the first body bytes (one write), or at http_stream_flush_response_head.
 * The response goes on with http_stream_send_response_body or _trailers (a head without a body
 * too: an empty body with end). Returns 0, or HTTP_STREAM_ENDED. */
int http_stream_send_response_head(http_stream_t *s, const http_response_head_t *resp);
/* Sends a response head still held back. Returns 0, or HTTP_STREAM_ENDED. s borrowed. */
int http_stream_flush_response_head(http_stream_t *s);
/* Response body bytes (borrowed for the call: copied if the connection does not take them at
 * once). end: the response is complete and the stream ends. Returns 0, or HTTP_STREAM_ENDED. */
int http_stream_send_response_body(http_stream_t *s, const char *data, size_t len, bool end);
/* The response's trailer fields (borrowed for the call), which end it and the stream: sent as
 * the client's protocol carries them (HTTP/1.1: the last chunk of a chunked body; dropped from a
 * body framed by its length). Returns HTTP_STREAM_ENDED. */
int http_stream_send_response_trailers(http_stream_t *s, const http_headers_t *trailers);
/* The client's write queue is over its high-water mark: stop reading the upstream until the
 * filters' on_downstream_drained. */
bool http_stream_downstream_congested(const http_stream_t *s);

/* ---- tunnels ----------------------------------------------------------------------------- */

/* A terminated CONNECT reached its upstream: answers 200 and starts the tunnel. Returns 0, or
 * HTTP_STREAM_ENDED. */
int http_stream_connect_established(http_stream_t *s);
/* The upstream answered 101 to an Upgrade (its head sent): from now on bytes are relayed
 * unparsed, the client's through the filters' on_tunnel_data. Returns 0, or HTTP_STREAM_ENDED. */
int http_stream_start_tunnel(http_stream_t *s);
/* Tunnel bytes from the upstream (borrowed for the call); end: the upstream side ended, which
 * ends the stream. Returns 0, or HTTP_STREAM_ENDED. */
int http_stream_tunnel_data(http_stream_t *s, const char *data, size_t len, bool end);

#endif
