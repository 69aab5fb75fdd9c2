/* The router's upstream side (upstream_request.c): its per-stream state, which the router filter
 * (filters/http/router.c) keeps as its own, and what the filter's hooks call. It reaches the
 * stream only through the stream API (http_stream.h). Free of libuv types so the filter can
 * include it. */
#ifndef REMORA_UPSTREAM_REQUEST_H
#define REMORA_UPSTREAM_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/http/http_stream.h"
#include "proxy/http/upstream_codec.h"

struct worker;

/* One request's upstream side: the router filter's per-stream state (zeroed by the stream). */
typedef struct router_req {
    http_stream_t *s;               /* borrowed: the stream this state belongs to */
    struct worker *w;               /* borrowed: the stream's worker */
    const http_request_head_t *req; /* borrowed: the stream's request head */
    http_request_head_t out;        /* the head sent upstream (rewritten path, framing) */
    http_upstream_info_t up;        /* cluster and endpoint, read by the stream's report */
    const route_cluster_t *target;  /* the route's cluster (one of weighted_clusters) */
    const http_up_codec_t *codec;   /* the cluster's upstream codec */
    void *cs;                       /* the codec's state (stream arena) */
    int attempts;
    bool started;       /* the codec holds a connection (release owed) */
    bool endpoint_held; /* the endpoint pick is not yet released (cluster_lb_release) */
    bool head_written;  /* the request head went to the upstream */
    bool body_written;  /* the whole request body went to the upstream */
    bool response_headers_done;
    bool response_done; /* the response ended: the connection may be reused */
    bool rq_counted;    /* counted in the cluster's rq_active (circuit breaking) */
    bool tunnel;        /* the stream became a tunnel (101 or CONNECT) */
    uint64_t start_ms;  /* the request went upstream (x-envoy-upstream-service-time) */
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
