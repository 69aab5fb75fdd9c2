/* The connection manager's downstream codecs: a connection's wire (HTTP/1.1; HTTP/2 to come)
 * behind one table, so that the rest of the connection manager (hcm*.c), the filters and the
 * router see only the protocol-neutral heads of http_msg.h and body events. A codec decodes the
 * connection's bytes into streams through the calls below (hcm_stream_begin, _headers, _body)
 * and encodes what the stream API sends back.
 *
 * Ownership: a codec's per-connection state lives in the connection (hcm_conn_t.h1, ...);
 * every pointer passed to an operation is borrowed for the call. Operations that can end the
 * stream or close the connection return HTTP_STREAM_ENDED (or a negative error) when they did,
 * and the caller touches neither again. */
#ifndef REMORA_HCM_CODEC_H
#define REMORA_HCM_CODEC_H

#include <sys/types.h>

#include "proxy/http/hcm_conn.h"

typedef struct hcm_codec {
    const char *name;
    /* Bytes were appended to c->in (nread > 0), the read ended or failed (nread < 0), or the
     * buffer is full (UV_ENOBUFS): decode what can be. */
    void (*input)(hcm_conn_t *c, ssize_t nread);
    /* Work through what c->in holds (after reading resumed or a stream ended). */
    void (*process)(hcm_conn_t *c);
    /* The response head: s->resp_headers is its field list after filters and header operations,
     * resp the upstream's head (for the framing and an upgrade's fields). It may wait to leave
     * with the first body bytes. Returns 0 or -ENOMEM. */
    int (*encode_head)(http_stream_t *s, const http_response_head_t *resp);
    /* Sends a head still held back. Returns 0 or HTTP_STREAM_ENDED (the connection failed). */
    int (*flush_head)(http_stream_t *s);
    /* Body bytes; end: the last, with trailers (NULL: none). Returns 0 or HTTP_STREAM_ENDED
     * (the connection failed and is closed). */
    int (*encode_body)(http_stream_t *s, const char *data, size_t len, bool end,
                       const http_headers_t *trailers);
    /* A whole local reply (status, body NUL-terminated or NULL). Returns 0, or a negative
     * error when the connection cannot take it. */
    int (*local_reply)(http_stream_t *s, int status, const char *body);
    /* A CONNECT reached its upstream: answer 200 and relay bytes. Returns as the stream API's
     * http_stream_connect_established. */
    int (*connect_established)(http_stream_t *s);
    /* The response head of a 101 went out: bytes flow unparsed both ways from now on. */
    int (*start_tunnel)(http_stream_t *s);
    /* Tunnel bytes from the upstream; end: the upstream side ended (the stream ends). */
    int (*tunnel_data)(http_stream_t *s, const char *data, size_t len, bool end);
    /* A stream of c ended and was reported (hcm_end_stream; s's memory is still readable, its
     * serial 0): what follows it (the next request, or the close). */
    void (*stream_finished)(hcm_conn_t *c, http_stream_t *s);
    /* The stream cannot be answered any more (its response head went out): reset it (HTTP/1.1:
     * the connection). It has ended on return. */
    void (*reset_stream)(http_stream_t *s);
    /* Stop taking the stream's request body (the upstream is congested) until hcm_resume. */
    void (*pause_body)(http_stream_t *s);
    /* The client is not taking the stream's response bytes fast enough: the router stops
     * reading its upstream until the filters' on_downstream_drained. */
    bool (*congested)(const http_stream_t *s);
    /* Drain: close if idle, else after the streams in flight. */
    void (*drain)(hcm_conn_t *c);
} hcm_codec_t;

/* ---- what codecs call (hcm.c, hcm_request.c) --------------------------------------------- */

/* A new stream on c: counted, its arena and clock set, its filter state allocated. Returns the
 * stream (owned by c), or NULL when memory is exhausted: no stream (there was no memory for
 * one), or it was answered 500 and has ended. */
http_stream_t *hcm_stream_begin(hcm_conn_t *c);
/* s (borrowed) keeps its connection's current config and snapshot (a reference) for its whole
 * life, so that the connection may move to a newer one while s runs (a multiplexed codec calls
 * it right after hcm_stream_begin). */
void hcm_stream_pin(http_stream_t *s);
/* Whether the connection manager lets the request's CONNECT or upgrade (s->head.upgrade: the
 * one asked for) through: 0, or HTTP_STREAM_ENDED when it answered 403 (Envoy's answer when no
 * upgrade_configs entry enables it). An upgrade it does not let through is not asked of the
 * next hop. */
int hcm_stream_permit(http_stream_t *s);
/* s->head is complete (and permitted): the proxy headers, the route, the filters. The stream may
 * have ended on return. */
void hcm_stream_headers(http_stream_t *s);
/* Whether the stream takes request body bytes now (a filter buffers it, or the terminal filter
 * resumed it). */
bool hcm_stream_wants_body(const http_stream_t *s);
/* Request body bytes (borrowed for the call) and, with end, the trailers (borrowed; NULL: none).
 * `used` is how many bytes of the connection's input they span (for the stream's byte count).
 * Returns 0, HCM_BODY_PAUSED when reading paused (backpressure), or HTTP_STREAM_ENDED. */
enum { HCM_BODY_PAUSED = 1 };
int hcm_stream_body(http_stream_t *s, const char *data, size_t len, size_t used, bool end,
                    const http_headers_t *trailers);
/* The gRPC status a local reply of http_status means to a gRPC caller (s borrowed): as
 * Envoy maps them (404 UNIMPLEMENTED, 429/502/503 UNAVAILABLE, ...), and DEADLINE_EXCEEDED for
 * the stream's timeout (UT). */
int hcm_grpc_status(const http_stream_t *s, int http_status);
/* body (NUL-terminated, borrowed) as a grpc-message value in the stream's arena: a trailing
 * newline dropped, '%' and bytes outside printable ASCII percent-encoded; NULL when memory is
 * exhausted. */
const char *hcm_grpc_message(http_stream_t *s, const char *body, size_t *len);
/* The client's side ended in the middle of a stream (DC): the connection is reset. */
void hcm_stream_client_gone(http_stream_t *s);

#endif
