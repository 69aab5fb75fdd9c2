/* A worker thread: its own libuv loop, its own SO_REUSEPORT listening sockets, buffer pool and
 * stats slots. A connection lives on one worker from accept to close; the main thread talks to
 * workers only through worker_* calls, which wake the loop with uv_async_send. */
#ifndef REMORA_WORKER_H
#define REMORA_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "proxy/core/arena.h"
#include "proxy/core/bufpool.h"
#include "base/stats.h"
#include "xds/snapshot/snapshot.h"

struct relay;

/* Open downstream connections behind Envoy's runtime connection limits, counted across workers.
 * They belong to the listening sockets, not to a snapshot: a new snapshot (certificate
 * rotation rebuilds one) brings new limits but must not forget connections still open. Owned by
 * the server; the workers borrow them. */
typedef struct conn_counts {
    _Atomic int64_t global;    /* connections of listeners that count toward the global limit */
    _Atomic int64_t *listener; /* [i]: listener i of the first snapshot, followed by its name */
    size_t n_listeners;
} conn_counts_t;

typedef struct worker_listener {
    uv_tcp_t tcp;
    struct worker *worker;
    const snap_listener_t *cfg; /* points into worker->snap */
    _Atomic int64_t *cx_open;   /* this listener's count in conn_counts_t (borrowed) */
    int fd;
    bool open;
} worker_listener_t;

enum { WORKER_CMD_DRAIN = 1, WORKER_CMD_STOP = 2, WORKER_CMD_SNAPSHOT = 4 };

/* What a worker asks of each kind of connection it runs (the listeners and the connections
 * they are still sniffing, tcp_proxy sessions, HTTP connections, upstream pools), so that it
 * names none of them. A hook may be NULL; every hook runs on the worker's thread, with w
 * borrowed. */
typedef struct worker_conn_ops {
    const char *name;
    /* The worker's loop is up: start what the kind runs (the listeners start accepting).
     * Returns 0 or a negative error, which the worker reports as its start_error. */
    int (*start)(struct worker *w);
    /* Drain (the listening sockets are closed already): let open connections finish. */
    void (*drain)(struct worker *w);
    /* Stop: reset and close every connection of the kind, and free what it keeps per
     * worker. */
    void (*abort)(struct worker *w);
    /* w->snap is the new snapshot; old (borrowed) stays alive until the hooks return. */
    void (*snapshot_installed)(struct worker *w, snapshot_t *old);
    /* About once a second, and once more as the worker stops: housekeeping (the network
     * filters flush their access-log buffers). */
    void (*tick)(struct worker *w);
} worker_conn_ops_t;

/* The kinds a worker runs, in the order each of their hooks runs: connections still in
 * protocol detection first, then tcp_proxy sessions, then HTTP connections (which give back
 * the upstream connections they hold), then the upstream pools. */
typedef struct worker_conn_kinds {
    const worker_conn_ops_t *const *ops;
    size_t n;
} worker_conn_kinds_t;

typedef struct worker {
    unsigned index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wakeup;
    uv_timer_t tick;          /* once a second: the kinds' housekeeping (access-log flushes) */
    stats_cache_t stat_cache; /* stats this worker defines at request time (Istio labels) */
    stats_slots_t *stats;
    stats_store_t *stats_store; /* for stats defined at request time */
    snapshot_t *snap;           /* reference held; new connections use it */
    conn_counts_t *counts;      /* borrowed from the server */
    /* The kinds of connection it runs, and their hooks (borrowed from the server). */
    const worker_conn_kinds_t *kinds;
    worker_listener_t *listeners;
    size_t n_listeners;
    struct relay *relays;       /* live tcp_proxy sessions, for abort on stop */
    struct hcm_conn *hcm_conns; /* live HTTP connections, for abort on stop */
    struct sniff *sniffs;       /* connections in protocol detection */
    void *pools;                /* upstream connection pools (proxy/upstream/h1_pool.c) */
    uint64_t rng;               /* per-worker generator: request ids, weighted picks */
    bufpool_t pool;
    arena_cache_t arenas; /* free stream-arena chunks */
    _Atomic int64_t active_conns;
    _Atomic bool listening;
    _Atomic int cmd;
    uv_mutex_t pending_lock; /* guards pending_snap only: control path, never per connection */
    snapshot_t *pending_snap;
    int start_error;
} worker_t;

/* Starts worker thread `index` (w: the caller's, must outlive the thread until worker_join;
 * store borrowed, must outlive the worker) with a reference to snap (taken) and one listening
 * socket per snapshot listener (fds[i] for snap->listeners[i], taken; -1 for a listener not bound).
 * counts (borrowed) must outlive the worker and have a count per listener of snap; kinds
 * (borrowed) must outlive it too. */
int worker_start(worker_t *w, unsigned index, snapshot_t *snap, stats_store_t *store,
                 const int *fds, conn_counts_t *counts, const worker_conn_kinds_t *kinds);
/* Main thread: stop accepting; open connections go on. w borrowed. */
void worker_drain(worker_t *w);
/* Main thread: reset every open connection and end the loop; then worker_join. w borrowed. */
void worker_stop(worker_t *w);
/* Main thread: waits for the thread, then frees what w owns (its snapshots' references, pools,
 * listeners); w itself stays the caller's. */
void worker_join(worker_t *w);
/* Main thread: hand a new snapshot (reference taken) to the worker (borrowed) for new
 * connections. */
void worker_publish(worker_t *w, snapshot_t *snap);

/* Opens a bound, non-blocking SO_REUSEPORT socket for l (borrowed; listen() happens on the
 * worker). *fd is a new socket owned by the caller (close it, or hand it to worker_start). */
int listener_socket_open(const snap_listener_t *l, int *fd, char *err, size_t errlen);
/* Starts accepting on a worker listener (borrowed; owned by its worker). Worker thread. */
int listener_start(worker_listener_t *wl);
/* Closes connections still in protocol detection (at stop); w borrowed, the connections are
 * its and freed. */
void listener_abort_sniffs(worker_t *w);
/* Gives every network filter of w's snapshot its per-worker housekeeping call (w borrowed).
 * Worker thread. */
void listener_filters_tick(worker_t *w);
/* Counts out a downstream connection accepted on l (borrowed) as it closes: the listener's
 * active and destroy stats, the worker's active count, and the connection-limit counts it was
 * admitted under (cx_open: its accepted_conn_t's, borrowed). Worker thread. */
void listener_conn_closed(worker_t *w, const snap_listener_t *l, _Atomic int64_t *cx_open);

#endif
