/* Per-worker upstream connection pools keyed by (cluster, endpoint): idle HTTP/1.1 keep-alive
 * connections are reused, bounded in number and idle time, and watched while idle so a server
 * close removes them at once. Pools are grouped by the snapshot their cluster belongs to. When
 * the worker installs a new snapshot, a pool whose cluster is connection-compatible in it (same
 * name, kind, source address, buffer limit, connect timeout, protocol and TLS: the same engine
 * config, SNI and expected SANs) and still lists the pool's endpoint address moves to the new
 * snapshot with its idle and busy connections, as Envoy keeps a host's pools across EDS
 * updates; the others retire: new requests start on new connections (a rotated certificate, a
 * changed cluster) while those already running finish on theirs. */
#ifndef REMORA_POOL_H
#define REMORA_POOL_H

#include <stdbool.h>
#include <uv.h>

#include "proxy/core/worker.h"
#include "proxy/upstream/upstream_connect.h"
#include "xds/snapshot/snapshot.h"

typedef struct upstream_conn upstream_conn_t;

typedef struct upstream_conn_cbs {
    /* The connection is usable (status 0) or failed to connect (negative libuv error,
     * UV_ETIMEDOUT for the cluster's connect_timeout). After a failure the conn is gone. */
    void (*on_connected)(void *owner, upstream_conn_t *uc, int status);
    /* nread > 0 bytes were appended to uc->buf; nread < 0: EOF or error, the conn is closing
     * and gone after the callback. */
    void (*on_read)(void *owner, upstream_conn_t *uc, ssize_t nread);
    /* The write queue fell to zero after being over the high watermark. */
    void (*on_drained)(void *owner, upstream_conn_t *uc);
} upstream_conn_cbs_t;

struct upstream_conn {
    /* The socket, its connect timeout (then the TLS pump's timer), its TLS session (upc.tls,
     * or NULL for plaintext) and the connection counts; upc.worker and upc.cluster are the
     * connection's worker and cluster. */
    upstream_connect_t upc;
    struct pool *pool;
    int endpoint;
    char label[64];
    enum { UC_CONNECTING, UC_BUSY, UC_IDLE, UC_CLOSING } state;
    void *owner;
    const upstream_conn_cbs_t *cbs;
    conn_buf_t in; /* response bytes read (decrypted) and not yet consumed */
    bool reused;   /* it served a request before this one */
    bool over_hwm; /* write queue went over the high watermark */
    uint64_t idle_since;
    upstream_conn_t *idle_prev, *idle_next;
    int handles;
};

/* Gets a connection to endpoint `ep` (addr, borrowed for the call) of cluster c (borrowed from
 * a snapshot w holds) on worker w (borrowed) for owner (borrowed), with cbs (borrowed; must
 * outlive the use, static in practice): an idle one (returned with *ready true, already
 * connected) or a new one whose on_connected follows. *out is owned by the worker's pools and
 * lent to owner until pool_release. Returns 0 or a negative libuv error (nothing to release
 * then). */
int pool_acquire(worker_t *w, const snap_cluster_t *c, int ep, const struct sockaddr *addr,
                 void *owner, const upstream_conn_cbs_t *cbs, upstream_conn_t **out, bool *ready);
/* Ends the owner's use (uc goes back to its pool): back to the idle list when reusable
 * (response fully read, request fully sent, keep-alive), closed otherwise. uc must not be used
 * afterwards. */
void pool_release(upstream_conn_t *uc, bool reusable);
/* Writes bufs to uc (borrowed, lent to the caller); bufs borrowed: copied if the kernel does
 * not take them at once. Returns 0 or a negative libuv error. */
int pool_write(upstream_conn_t *uc, const uv_buf_t *bufs, unsigned n);
/* Stop or resume reading uc (borrowed, lent to the caller). */
void pool_read_stop(upstream_conn_t *uc);
void pool_read_start(upstream_conn_t *uc);
/* Drops n consumed bytes from the front of uc->in (uc borrowed). */
void pool_consume(upstream_conn_t *uc, size_t n);
/* Worker thread, once w->snap is the new snapshot and before the worker drops its reference to
 * old (borrowed): moves old's pools whose cluster is compatible in w->snap (pool_cluster_
 * compatible, and an endpoint of the same address, re-keyed to its index; ORIGINAL_DST pools by
 * address) to w->snap's generation, idle and busy connections alike (a busy one counts for the
 * new cluster once released), and closes the idle connections of the others, so requests of the
 * new snapshot never reuse them. Pools left with old stay for connections that started with
 * old (a reference to old is kept for them) and go once nothing else holds old; a pool still
 * lending a connection is freed when that connection closes. */
void pool_retire_snapshot(worker_t *w, snapshot_t *old);
/* Whether connections to cluster a can serve cluster b (both borrowed), a of the snapshot a
 * worker swapped out and b of the one it installed: the same name and stat name (so the same
 * stat ids and runtime state, `shared`), kind, source address (has_bind, bind_addr),
 * buffer_limit, connect_timeout_ms, HTTP/2 flag and TLS (upstream_connect_same_tls). Endpoints
 * are checked apart (pool_endpoint_index). */
bool pool_cluster_compatible(const snap_cluster_t *a, const snap_cluster_t *b);
/* The index of c's (borrowed) first endpoint at addr (borrowed; address and port), or -1. */
int pool_endpoint_index(const snap_cluster_t *c, const struct sockaddr *addr);
/* Closes every pooled connection of the worker (w borrowed), releases the snapshots kept and
 * forgets the saved upstream TLS sessions (at stop, after the worker's relays and HTTP
 * connections). */
void pool_close_all(worker_t *w);

#endif
