/* Internals of the connection manager (hcm*.c and its downstream codecs, hcm_codec.h): the
 * downstream connection and its active stream. The connection's codec (HTTP/1.1 today) turns its
 * bytes into streams; HTTP/1.1 answers pipelined requests in order, so a connection has at most
 * one stream at a time, embedded and reset per request. Filters and the router never see this:
 * they have the stream API (http_stream.h). */
#ifndef REMORA_HCM_CONN_H
#define REMORA_HCM_CONN_H

#include <uv.h>

#include "proxy/core/arena.h"
#include "proxy/core/bufpool.h"
#include "proxy/core/worker.h"
#include "proxy/http/h1/h1_server.h"
#include "proxy/http/hcm.h"

typedef struct hcm_conn hcm_conn_t;

struct http_stream {
    hcm_conn_t *conn;
    /* Nonzero while the stream is active, and new for every stream the memory serves: a call
     * that may end streams compares it with what it was (hcm_stream_gone). */
    uint32_t serial;
    http_stream_t *prev, *next; /* the connection's active streams, or its free list (next) */
    int32_t id;                 /* the codec's stream identifier (HTTP/2); 0 for HTTP/1 */
    uint64_t deadline_ms;       /* loop time its timeout falls due (route timeout); 0: none */
    /* The connection manager config it runs with (its filters, routes, logs), and the snapshot
     * that keeps it (a reference held) when the stream pinned one: a multiplexed connection
     * moves to newer config while its older streams finish on theirs (hcm_stream_pin). NULL:
     * the connection's, which does not move while the stream runs (HTTP/1.1). */
    const hcm_config_t *cfg;
    snapshot_t *snap;
    arena_t arena;
    http_request_head_t head; /* what filters and the router see (http_stream_request_head) */
    const route_vhost_t *vhost;
    const route_entry_t *route;
    bool grpc;          /* a gRPC request (content-type application/grpc...) */
    bool req_body_done; /* the downstream request body was fully read */
    bool body_resumed;  /* body bytes go to the filters (http_stream_resume_request_body) */
    /* A filter asked for the whole body (envoy.filters.http.buffer): it collects in body
     * (malloc'd, freed with the stream) up to buffer_max; the filters from resume_filter on run
     * once it is complete, and it leaves with the request head. */
    bool buffering, body_buffered;
    size_t buffer_max, resume_filter;
    char *body;
    size_t body_len, body_cap;
    http_headers_t resp_headers;
    int status;        /* the status answered downstream, 0 until then */
    int grpc_status;   /* a gRPC local reply's grpc-status; -1: none */
    bool resp_started; /* response head built (written, or pending in the codec) */
    bool resp_done;
    const char *flags; /* access-log response flags, "-" when none */
    uint64_t start_ms;
    uint64_t start_us;   /* wall clock, for the access log (only read when logs exist) */
    int64_t upstream_ms; /* first response byte from upstream, -1 until then */
    int64_t req_done_ms; /* last request byte, -1 until then */
    uint64_t bytes_in, bytes_out;
    void **filter_state;
    size_t filters_run; /* filters whose request hooks ran (their done() is owed) */
    const http_upstream_info_t *upstream; /* where the router sent it (its state), or NULL */
    char request_id[40];
};

/* HCM_TUNNEL: an Upgrade answered 101; bytes flow both ways unparsed until either side ends. */
typedef enum { HCM_WAIT_HEAD, HCM_IN_STREAM, HCM_TUNNEL, HCM_CLOSING } hcm_state_t;

struct hcm_conn {
    uv_tcp_t *tcp;
    worker_t *worker;
    /* What it runs with: a snapshot (reference held), its listener of the connection's name, the
     * chain the connection was matched to, and the connection manager config in that chain.
     * Between requests all four move together to the worker's newer snapshot (hcm_rebind). */
    snapshot_t *snap;
    const snap_listener_t *listener;
    const snap_chain_t *chain;
    worker_listener_t *wl; /* the listener it came in on (listener_conn_closed) */
    const hcm_config_t *cfg;
    const struct hcm_codec *codec; /* the connection's wire (hcm_codec.h) */
    h1_server_t h1;                /* the HTTP/1.1 codec's state */
    struct h2_server *h2;          /* the HTTP/2 codec's state (h2_server_start), or NULL */
    hcm_state_t state;
    conn_buf_t in;          /* downstream bytes (decrypted) not yet consumed */
    struct tls_io *tls;     /* the chain's DownstreamTlsContext in use, or NULL (plaintext) */
    const char *tls_own_id; /* our SPIFFE ID on that connection (borrowed from the chain) */
    char *xfcc;             /* this hop's x-forwarded-client-cert element, built once; owned */
    /* Its active streams (HTTP/1.1: at most one), newest first; the memory of ended ones is
     * kept for the next (stream0 first, then the free list) until the connection is freed. */
    http_stream_t *streams;
    uint32_t n_streams;
    uint32_t next_serial;
    bool stream0_used;
    http_stream_t stream0;
    http_stream_t *free_streams;
    bool paused;      /* reading stopped for backpressure */
    bool close_after; /* close once the current response is written */
    /* Loop time by which it is reset if still open (worker_drain_deadline): it drains because
     * a new snapshot closed its listener or changed its chain. 0: no such deadline. */
    uint64_t drain_due_ms;
    bool read_eof; /* the client half-closed: answer what is buffered, then close */
    bool over_hwm;
    uv_timer_t timer;      /* the streams' timeouts and the idle timeout, armed lazily */
    uint64_t idle_due_ms;  /* loop time the connection's idle timeout falls due; 0: none */
    uint64_t timer_due_ms; /* loop time the timer is armed for; 0: not armed */
    uint64_t last_activity;
    char peer[64]; /* downstream IP, for x-forwarded-for */
    struct sockaddr_storage orig_dst;
    int handles;
    hcm_conn_t *prev, *next;
};

/* Whether the stream that had `serial` (its serial before a call) has ended since (s
 * borrowed: its memory outlives every call, as its connection keeps it). */
static inline bool hcm_stream_gone(const http_stream_t *s, uint32_t serial)
{
    return s->serial != serial;
}

/* The snapshot s runs with (borrowed). */
static inline const snapshot_t *hcm_stream_snap(const http_stream_t *s)
{
    return s->snap ? s->snap : s->conn->snap;
}

/* HTTP/1.1's stream: the connection's only active one, or NULL. */
static inline http_stream_t *hcm_h1_stream(const hcm_conn_t *c)
{
    return c->streams;
}

/* hcm_stream.c: the filters' hooks, called for every filter that has them and whose request
 * hooks ran. */
/* A hook may end the stream: the calls that can say so return HTTP_STREAM_ENDED then. In every
 * call below, the stream s and the connection c are borrowed (c owns s). */
/* Body bytes to the filters in order (data and trailers borrowed for the call). Returns 0,
 * HTTP_STREAM_ENDED, or another negative value when a filter failed. */
int hcm_filters_request_body(http_stream_t *s, const char *data, size_t len, bool end,
                             const http_headers_t *trailers);
/* In reverse order. Returns 0 or HTTP_STREAM_ENDED. */
int hcm_filters_response_headers(http_stream_t *s, bool end_stream);
void hcm_filters_downstream_drained(http_stream_t *s);
/* Tunnel bytes from the client (borrowed for the call). Returns 0, HTTP_STREAM_ENDED, or another
 * negative value when they cannot go on. */
int hcm_filters_tunnel_data(http_stream_t *s, const char *data, size_t len);
void hcm_filters_reset(http_stream_t *s, http_reset_reason_t reason);
/* Runs done() of every filter that ran, once. */
void hcm_filters_done(http_stream_t *s);
uint64_t hcm_now(const hcm_conn_t *c);

/* hcm_response.c: the response's bytes. */
/* Sends bufs to the client (borrowed; copied only if the kernel does not take them at once).
 * Returns 0, or a negative error when the connection cannot take them. */
int hcm_down_write(hcm_conn_t *c, const uv_buf_t *bufs, unsigned n);
/* The TLS layer's write-done callback for a connection (owner: the hcm_conn_t, borrowed). */
void hcm_on_tls_written(void *owner, int status);
/* The downstream response head from the upstream's (borrowed): its fields without those of one
 * hop, the filters' response hooks and the header operations, then the codec's framing (it may
 * wait in the codec for the first body bytes). Returns 0, -ENOMEM, or HTTP_STREAM_ENDED (a
 * filter's hook ended the stream). */
int hcm_response_head(http_stream_t *s, const http_response_head_t *resp);

/* hcm_end.c: how streams and connections end. */
/* Ends an active stream exactly once: counts it, reports it, runs the filters' reset (when
 * reset) and done, and frees what it holds (its connection keeps the stream's memory for the
 * next). reset: it did not complete; its flags tell who ended it. s borrowed. */
void hcm_end_stream(http_stream_t *s, bool reset);
/* Gives every active stream of c (borrowed) without a response flag yet this one (static). */
void hcm_flag_streams(hcm_conn_t *c, const char *flag);
/* Closes the connection (c is freed once its handles close; the caller must not use it after):
 * a stream still active there did not complete and is reported as
 * reset. reset: close with a TCP reset rather than after the queued bytes (and a FIN). */
void hcm_close(hcm_conn_t *c, bool reset);

/* hcm.c */
/* A gRPC stream's grpc-status from response fields (headers of a trailers-only response, or
 * trailers; borrowed) into s->grpc_status, for metrics and logs. */
void hcm_note_grpc_status(http_stream_t *s, const http_headers_t *fields);
/* The response ended: the stream (borrowed) is reported and freed, and the codec goes on (the
 * next request, or the close: its stream_finished). */
void hcm_finish_stream(http_stream_t *s);
/* Starts reading again (if it was paused) and works through what is buffered. */
void hcm_resume(hcm_conn_t *c);
/* Stops reading the connection (backpressure) until hcm_resume. */
void hcm_pause_reading(hcm_conn_t *c);
/* Whether the client's write queue is over its high-water mark (c borrowed). */
bool hcm_down_congested(const hcm_conn_t *c);
/* The connection's idle timeout: it closes (or its tunnel ends) after ms without a stream (or
 * without tunnel bytes); 0 clears it. */
void hcm_set_idle(hcm_conn_t *c, uint64_t ms);
/* Drain: closes idle HTTP connections, and makes busy ones close after their response. w
 * borrowed. */
void hcm_drain_all(worker_t *w);
/* One connection (borrowed; freed at once when idle) drains as in hcm_drain_all. */
void hcm_drain_conn(hcm_conn_t *c);
/* hcm_request.c: the filters from `from` on run their request hooks (s borrowed). */
void hcm_run_request_filters(http_stream_t *s, size_t from);

/* hcm_rebind.c: connections take the worker's newer snapshots between requests. */
/* Where a connection runs: what hcm_conn_t holds of a snapshot (all borrowed from snap). */
typedef struct hcm_binding {
    snapshot_t *snap;
    const snap_listener_t *listener;
    const snap_chain_t *chain;
    const hcm_config_t *cfg; /* one of chain's filter configs */
} hcm_binding_t;
/* The place in `to` (borrowed) of a connection running at `from` (borrowed): the listener of
 * the same name, its chain of equal config hash and the connection manager config at the same
 * place in that chain, into *out (borrowing from to). Returns 0; -ENOENT when to has no such
 * listener or chain (the chain changed or went away); -ESTALE when the counters the connection
 * counted itself into at accept, or whether it is TLS, would not be the same there. */
int hcm_binding_find(const hcm_binding_t *from, snapshot_t *to, hcm_binding_t *out);
/* A new request is about to start on c (borrowed; no stream active, or every active one pinned
 * to its config: hcm_stream_pin) and the worker has a newer snapshot: c moves to it, or, when
 * its chain changed or went away there, stays and closes after that request. A draining
 * connection stays where it is. */
void hcm_rebind(hcm_conn_t *c);
/* The worker installed a new snapshot (w borrowed): connections of closed listeners
 * (w->listeners_retired) and those whose chain changed or went away drain; the idle others
 * move to it now, the busy ones before their next request. */
void hcm_rebind_all(worker_t *w);
/* c (borrowed; closed at once when idle) drains because a new snapshot closed its listener or
 * changed its chain: as hcm_drain_conn, and with a deadline (worker_drain_deadline) past which
 * it is reset. */
void hcm_drain_for_config(hcm_conn_t *c);
/* The worker's drain timer (w borrowed): resets the connections whose drain deadline is at or
 * before now (their stream, if any, logged with LR). Returns the earliest deadline of the
 * others, or 0. */
uint64_t hcm_drain_expired(worker_t *w, uint64_t now);
/* Resets every HTTP connection of the worker (w borrowed) (at stop). */
void hcm_abort_all(worker_t *w);

/* hcm_headers.c: the proxy headers (x-request-id, x-forwarded-*), x-forwarded-client-cert per
 * forward_client_cert_details. */
void hcm_add_proxy_headers(hcm_conn_t *c, http_stream_t *s);
/* Stats, metrics and access logs for a finished stream (hcm_report.c). */
void hcm_report_stream(hcm_conn_t *c, http_stream_t *s, uint64_t now_ms);

#endif
