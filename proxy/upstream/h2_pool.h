/* Per-worker HTTP/2 upstream connections keyed by (cluster, endpoint): each carries nghttp2's
 * client session and many streams at once, up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS and
 * the cluster's max_concurrent_streams; a new connection opens when every one is full (bounded
 * by the circuit breaker's max_connections), one that got a GOAWAY or served
 * max_requests_per_connection takes no new streams, an idle one closes after the idle timeout.
 * h2c with prior knowledge on plaintext clusters, ALPN "h2" (required) on TLS ones. When the
 * worker installs a new snapshot, a pool whose cluster is compatible in it (pool_cluster_
 * compatible, same endpoint address) moves with its connections; the others retire: their
 * streams finish, their connections close once empty.
 *
 * The pool knows no HTTP message: a stream's owner (the HTTP/2 upstream codec) gets the
 * session's events for its stream through h2_stream_cbs_t and submits its frames through the
 * functions below. */
#ifndef REMORA_H2_POOL_H
#define REMORA_H2_POOL_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>

#include "proxy/core/worker.h"
#include "xds/snapshot/snapshot.h"

typedef struct h2_conn h2_conn_t;
typedef struct h2_stream h2_stream_t;

/* How a stream ended (on_close). */
typedef struct h2_close_info {
    uint32_t error_code; /* RST_STREAM's code (ours or the peer's); NO_ERROR when clean */
    bool peer_reset;     /* the peer sent RST_STREAM */
    bool refused;        /* the peer never processed it: REFUSED_STREAM, or above a GOAWAY's
                          * last_stream_id, or its HEADERS could not be sent */
    bool conn_lost;      /* the connection closed or failed under it */
    bool malformed;      /* nghttp2 reset it for a response that broke the protocol */
} h2_close_info_t;

/* The events of one stream, each with the owner given at h2_stream_attach (borrowed). A callback
 * that returns nonzero, and on_close always, may have released the stream: the pool touches it no
 * more. Callbacks run from the connection's own events (connect, input, output, a timer), never
 * from within one of the functions below, whose work waits for the next loop turn. */
typedef struct h2_stream_cbs {
    /* The connection is open (status 0): the stream may be submitted; or it failed (a negative
     * libuv error), and the stream is detached. */
    void (*on_ready)(void *owner, int status);
    /* One field of a header block (1xx, final, trailers: cat is the frame's headers category). */
    int (*on_header)(void *owner, const nghttp2_frame *frame, const uint8_t *name, size_t name_len,
                     const uint8_t *value, size_t value_len);
    /* A HEADERS (end of its block) or DATA frame of the stream arrived (frame->hd.flags tell
     * END_STREAM). */
    int (*on_frame)(void *owner, const nghttp2_frame *frame);
    /* Response body bytes (borrowed for the call). The owner hands the consumed count back with
     * h2_stream_consume when it has passed them on (flow control). */
    int (*on_data)(void *owner, const uint8_t *data, size_t len);
    /* Request body: copy up to len bytes into buf, as nghttp2_data_source_read_callback (return
     * NGHTTP2_ERR_DEFERRED while none are at hand; set NGHTTP2_DATA_FLAG_EOF at the end). */
    ssize_t (*read_body)(void *owner, uint8_t *buf, size_t len, uint32_t *data_flags);
    /* The stream is over (detached from the owner). */
    void (*on_close)(void *owner, const h2_close_info_t *why);
    /* Called after the connection's output was flushed, for streams that asked with
     * h2_stream_want_flushed: the owner checks its queue (to tell its own owner it drained). */
    void (*on_flushed)(void *owner);
} h2_stream_cbs_t;

/* One stream's link to its connection; the owner's memory (zeroed), lent to the pool from
 * h2_stream_attach to on_close, a failed on_ready or h2_stream_release. */
struct h2_stream {
    h2_conn_t *conn; /* NULL: detached */
    int32_t id;      /* 0 until submitted */
    void *owner;
    const h2_stream_cbs_t *cbs;
    h2_stream_t *prev, *next; /* on the connection's list */
    bool ready_told;          /* on_ready ran */
    bool reused;              /* the connection carried a stream before this one */
    bool want_flushed;
    bool got_rst;   /* the peer sent RST_STREAM */
    bool malformed; /* nghttp2 found the response invalid */
};

/* Attaches s (the owner's, zeroed) to a connection of worker w (borrowed) to endpoint ep (addr,
 * borrowed for the call) of cluster c (borrowed from a snapshot the owner holds), for owner
 * (borrowed) with cbs (borrowed; static): one with a free stream slot, or a new one. *ready is
 * set when the connection is open already (no on_ready follows); else on_ready follows. Returns 0,
 * UV_EBUSY when the cluster's max_connections is reached, or another negative libuv error (s
 * stays detached then). */
int h2_stream_attach(h2_stream_t *s, worker_t *w, const snap_cluster_t *c, int ep,
                     const struct sockaddr *addr, void *owner, const h2_stream_cbs_t *cbs,
                     bool *ready);
/* Submits the request headers nv[0..n) (borrowed; nghttp2 copies them) on s's open connection,
 * with a body read through cbs->read_body when with_body, else END_STREAM on HEADERS. Returns 0,
 * or a negative error when the connection takes no new stream (*refused: it never left: it may
 * go again) or nghttp2 refused it; s is detached then. */
int h2_stream_submit(h2_stream_t *s, const nghttp2_nv *nv, size_t n, bool with_body, bool *refused);
/* Request body bytes are at hand again: nghttp2 asks read_body for them. s borrowed. */
void h2_stream_resume_body(h2_stream_t *s);
/* Trailers nv[0..n) (borrowed; copied) ending the request; from within read_body, which then sets
 * NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM. Returns 0 or a negative nghttp2 error.
 */
int h2_stream_submit_trailer(h2_stream_t *s, const nghttp2_nv *nv, size_t n);
/* n response body bytes were passed on: the peer may send that many more. s borrowed. */
void h2_stream_consume(h2_stream_t *s, size_t n);
/* on_flushed runs for s (borrowed) after the connection's next flush. */
void h2_stream_want_flushed(h2_stream_t *s);
/* The owner is done with s (borrowed): a stream still open is reset (RST_STREAM with code:
 * NGHTTP2_CANCEL when abandoned, NGHTTP2_NO_ERROR once its response ended); the connection goes on
 * for its other streams. No callback of s runs after this. No-op when detached. */
void h2_stream_release(h2_stream_t *s, uint32_t code);
/* The connection's label ("addr:port"), for logs; s borrowed and attached. */
const char *h2_stream_label(const h2_stream_t *s);

/* Worker thread, once w->snap is the new snapshot and before the worker drops old (borrowed):
 * moves the pools of old's clusters that are compatible in w->snap, retires the others (their
 * idle connections close now, the busy ones once their streams are over). */
void h2_pool_retire_snapshot(worker_t *w, snapshot_t *old);
/* Closes every HTTP/2 upstream connection of w (borrowed) and frees its pools (at stop, after the
 * HTTP connections gave their streams back). */
void h2_pool_close_all(worker_t *w);

#endif
