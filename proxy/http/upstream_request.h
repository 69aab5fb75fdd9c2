/* The router's upstream side (upstream_request.c): its per-stream state, which the router filter
 * (filters/http/router.c) keeps as its own, and what the filter's hooks call. It reaches the
 * stream only through the stream API (http_stream.h). Free of libuv types so the filter can
 * include it. */
#ifndef REMORA_UPSTREAM_REQUEST_H
#define REMORA_UPSTREAM_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/http/h1/http1.h"
#include "proxy/http/http_stream.h"

struct upstream_conn;
struct worker;

/* One request's upstream side: the router filter's per-stream state (zeroed by the stream). */
typedef struct router_req {
    http_stream_t *s;              /* borrowed: the stream this state belongs to */
    struct worker *w;              /* borrowed: the stream's worker */
    const http1_request_t *req;    /* borrowed: the stream's request head */
    http_upstream_info_t up;       /* cluster and endpoint, read by the stream's report */
    const route_cluster_t *target; /* the route's cluster (one of weighted_clusters) */
    struct upstream_conn *uc;      /* the pooled connection in use, or NULL */
    int attempts;
    bool head_written;   /* the request head went to the upstream */
    bool body_written;   /* the whole request body went to the upstream */
    bool response_begun; /* response bytes arrived */
    bool response_headers_done;
    bool rq_counted; /* counted in the cluster's rq_active (circuit breaking) */
    bool tunnel;     /* the stream became a tunnel (101 or CONNECT) */
    http1_response_t resp;
    http1_body_decoder_t body;
    uint64_t start_ms; /* the request went upstream (x-envoy-upstream-service-time) */
    char *head;        /* serialized request head (stream arena) */
    size_t head_len;
} router_req_t;

/* Each takes r (the stream's state, borrowed) and works through the stream API (s borrowed; r
 * keeps it for the stream's life). */

/* Picks the route's cluster and an endpoint and sends the request; answers the stream itself
 * when it cannot (NC, UH, UO, UF). */
void router_start(router_req_t *r, http_stream_t *s);
/* Request body bytes (borrowed for the call) to the upstream; trailers as in on_request_body. */
void router_request_body(router_req_t *r, const char *data, size_t len, bool end,
                         const http_headers_t *trailers);
/* The client drained its write queue: reads the upstream again. */
void router_downstream_drained(router_req_t *r);
/* Tunnel bytes from the client to the upstream (borrowed for the call). Returns 0 or a negative
 * error. */
int router_tunnel_write(router_req_t *r, const char *data, size_t len);
/* The stream is abandoned: the upstream request (and its connection) with it. */
void router_reset(router_req_t *r, http_reset_reason_t reason);
/* The stream ended: abandons what is still in flight and gives back its place in the cluster's
 * request limit. */
void router_done(router_req_t *r);

#endif
