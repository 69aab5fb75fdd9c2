/* The router's upstream codecs: one request's exchange with an upstream on the codec's wire
 * (HTTP/1.1 on a pooled connection, ...), behind one table of operations, with what comes back
 * as the protocol-neutral events of http_msg.h. The router (upstream_request.c) picks the
 * cluster and endpoint, decides retries and answers the client; a codec only moves a request
 * and its response. Free of libuv types so the router's filter can include it.
 *
 * Ownership: the codec's per-request state (state_size bytes, zeroed by the caller) is owned by
 * the router, which keeps it until the stream's end and calls release exactly once for every
 * successful start. Everything passed to an operation is borrowed for the call. */
#ifndef REMORA_UPSTREAM_CODEC_H
#define REMORA_UPSTREAM_CODEC_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/http/http_msg.h"
#include "xds/snapshot/snapshot_types.h"

struct worker;
struct sockaddr;

/* Why a codec gave up on its request (on_reset). */
typedef enum {
    HTTP_UP_CONNECT_FAILED, /* the connection could not be made (UF) */
    HTTP_UP_CLOSED,         /* the connection closed or failed before the response ended (UC) */
    HTTP_UP_BAD_HEAD,       /* the response's head broke the protocol (UPE) */
    HTTP_UP_BAD_BODY,       /* the response's body broke the protocol (UPE) */
} http_up_reset_t;

/* What a codec tells its owner (the router's state, borrowed). Each callback may end the stream,
 * which frees the codec's state: a callback that returns HTTP_STREAM_ENDED, and on_reset always,
 * leave the codec to return at once without touching its state. */
typedef struct http_up_events {
    /* The connection is ready and the request may be sent. */
    void (*on_ready)(void *owner);
    /* The response head (1xx other than a 101 answering an upgrade are not passed on). */
    int (*on_head)(void *owner, const http_response_head_t *head);
    /* Response body bytes; end: the body is complete (no trailers). After a 101 they are the
     * tunnel's bytes, and end is the upstream's close. */
    int (*on_data)(void *owner, const char *data, size_t len, bool end);
    /* The response's trailers, which end it. */
    int (*on_trailers)(void *owner, const http_headers_t *trailers);
    /* The codec gave up; it has let its connection go. retryable: nothing of the response came
     * and the request may not have reached the upstream (a reused connection that the server
     * had closed): a replayable request may go again. */
    void (*on_reset)(void *owner, http_up_reset_t why, bool retryable);
    /* The connection takes request bytes again after congested() said it would not. */
    void (*on_drained)(void *owner);
} http_up_events_t;

typedef struct http_up_codec {
    const char *name;
    size_t state_size;
    /* Gets a connection to endpoint ep (at addr) of cluster c for owner; on_ready follows, or
     * has already run when *ready is set on return. Returns 0, UV_EBUSY when the cluster's
     * connection limit is reached, or another negative libuv error (nothing to release then).
     * w and c borrowed; c lives with a snapshot the worker holds. */
    int (*start)(void *st, struct worker *w, const snap_cluster_t *c, int ep,
                 const struct sockaddr *addr, void *owner, const http_up_events_t *ev, bool *ready);
    /* Sends the request head, with body bytes already at hand (a body held whole, body_len
     * bytes; end: the request is complete with them). Returns 0, or a negative error when
     * the connection cannot take it: then *retryable says whether it may go again elsewhere,
     * and the codec has let its connection go. */
    int (*send_head)(void *st, const http_request_head_t *head, const char *body, size_t body_len,
                     bool end, bool *retryable);
    /* Request body bytes; end: the body is complete, with trailers (NULL: none). After a 101
     * or a CONNECT these are the tunnel's bytes. Returns 0 or a negative error (the codec has
     * let its connection go). */
    int (*send_data)(void *st, const char *data, size_t len, bool end,
                     const http_headers_t *trailers);
    /* The connection holds more unsent request bytes than its high-water mark. */
    bool (*congested)(const void *st);
    /* Reading the response stops (the client is congested) or resumes: what was read before is
     * handed on inside resume, which may end the stream. */
    void (*pause)(void *st);
    void (*resume)(void *st);
    /* The request is over: the connection goes back to its pool when complete is set and the
     * exchange ended cleanly, else it is closed (a request abandoned half-way). No-op once the
     * codec let its connection go. */
    void (*release)(void *st, bool complete);
    /* The connection served a request before this one. */
    bool (*reused)(const void *st);
} http_up_codec_t;

#endif
