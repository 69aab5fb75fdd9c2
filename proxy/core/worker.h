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

/* One listener's sockets, one per worker, as the main thread bound them (a listener that
 * changes address gets a new set; the old one drains). The main thread's listener manager
 * (proxy/server/listener_manager.c) makes and frees it; the workers only count into it. */
typedef struct listen_set {
    /* Open downstream connections of the listener's name over all workers and every set of
     * that name, behind Envoy's runtime connection limit: it belongs to the name, not to a
     * snapshot or a set, so that neither a new snapshot nor a new address forgets connections
     * still open. The listener manager's, borrowed. */
    _Atomic int64_t *cx_open;
    /* Worker listeners of this set not freed yet (a worker listener lives until its socket is
     * closed and its last connection is counted out), and sockets on their way to one. The
     * listener manager frees the set once this is 0 and the set is no longer running. */
    _Atomic unsigned refs;
} listen_set_t;

/* A listening socket handed to a worker with a snapshot (worker_start, worker_publish): the
 * worker accepts on it as the listener `name` of that snapshot, in place of any listener of
 * that name it has. fd -1: the listener of that name loses its socket (it no longer binds one). */
typedef struct worker_socket {
    struct worker_socket *next;
    char *name;        /* owned */
    int fd;            /* bound, not yet listening (owned), or -1 */
    listen_set_t *set; /* a place in set->refs (owned); NULL with fd -1 */
} worker_socket_t;

/* A listener on one worker: its socket and what it counts connections into. Allocated on its
 * own, since connections point at it: it is freed once its handle is closed and the last
 * connection accepted on it is counted out (listener_conn_closed). */
typedef struct worker_listener {
    uv_tcp_t tcp;
    struct worker *worker;
    struct worker_listener *next; /* the worker's listeners that accept */
    const snap_listener_t *cfg;   /* points into worker->snap; NULL once closed */
    listen_set_t *set;            /* a place in set->refs, given back when freed */
    int fd;                       /* the handle's once started; closed by then */
    bool started;                 /* tcp is initialised (listener_start) */
    bool closed;                  /* accepts no more: a new snapshot lost it, or drain */
    bool handle_closed;           /* closed, and tcp's close callback ran (or never started) */
    unsigned conns;               /* connections accepted here and not counted out yet */
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
    /* w->snap is the new snapshot; old (borrowed) stays alive until the hooks return. The
     * listeners it adds are in w->listeners, not started yet (the listener kind starts them);
     * those it removed or replaced are closed (listener_retired), w->listeners_retired of
     * them, with their connections still open. */
    void (*snapshot_installed)(struct worker *w, snapshot_t *old);
    /* About once a second, and once more as the worker stops: housekeeping (the network
     * filters flush their access-log buffers). */
    void (*tick)(struct worker *w);
    /* The worker's drain timer fired at loop time now (ms): close the connections of the kind
     * whose drain deadline (worker_drain_deadline) is past. Returns the earliest deadline still
     * pending among the others, or 0 when none is. */
    uint64_t (*drain_expired)(struct worker *w, uint64_t now);
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
    uv_timer_t tick; /* once a second: the kinds' housekeeping (access-log flushes) */
    /* Connections that drain because a new snapshot closed their listener or changed their
     * filter chain are closed once drain_timeout_ms has passed (Envoy's --drain-time-s): one
     * timer for all of them, armed for the earliest deadline (loop time; 0: not armed). */
    uv_timer_t drain_timer;
    uint64_t drain_timer_due;
    uint64_t drain_timeout_ms;
    stats_cache_t stat_cache; /* stats this worker defines at request time (Istio labels) */
    stats_slots_t *stats;
    stats_store_t *stats_store; /* for stats defined at request time */
    snapshot_t *snap;           /* reference held; new connections use it */
    /* Open connections of listeners that count toward the global limit, over all workers
     * (borrowed from the server's listener manager). */
    _Atomic int64_t *cx_global;
    /* The kinds of connection it runs, and their hooks (borrowed from the server). */
    const worker_conn_kinds_t *kinds;
    worker_listener_t *listeners; /* the ones that accept (owned), newest first */
    bool listeners_closed;        /* drain or stop closed them: later sockets are not used */
    /* While the kinds hear of a new snapshot: how many listeners that install closed, so that
     * kinds which drain the connections of a closed listener look only when there are some. */
    unsigned listeners_retired;
    struct relay *relays;       /* live tcp_proxy sessions, for abort on stop */
    struct hcm_conn *hcm_conns; /* live HTTP connections, for abort on stop */
    struct sniff *sniffs;       /* connections in protocol detection */
    void *pools;                /* upstream connection pools (proxy/upstream/h1_pool.c) */
    void *h2_pools;             /* HTTP/2 upstream connections (proxy/upstream/h2_pool.c) */
    uint64_t rng;               /* per-worker generator: request ids, weighted picks */
    bufpool_t pool;
    arena_cache_t arenas; /* free stream-arena chunks */
    _Atomic int64_t active_conns;
    _Atomic bool listening;
    _Atomic int cmd;
    uv_mutex_t pending_lock; /* guards the two below: control path, never per connection */
    snapshot_t *pending_snap;
    worker_socket_t *pending_sockets; /* to adopt with pending_snap, one per listener name */
    int start_error;
} worker_t;

/* Starts worker thread `index` (w: the caller's, must outlive the thread until worker_join;
 * store borrowed, must outlive the worker) with a reference to snap (taken) and the listening
 * sockets of snap's listeners (taken in every case: on failure they are closed). cx_global
 * (borrowed) and kinds (borrowed) must outlive the worker. drain_timeout_ms: how long a
 * connection a new snapshot drains may stay open (the process's --drain-time-s). */
int worker_start(worker_t *w, unsigned index, snapshot_t *snap, stats_store_t *store,
                 worker_socket_t *sockets, _Atomic int64_t *cx_global,
                 const worker_conn_kinds_t *kinds, uint64_t drain_timeout_ms);
/* Main thread: stop accepting; open connections go on. w borrowed. */
void worker_drain(worker_t *w);
/* Main thread: reset every open connection and end the loop; then worker_join. w borrowed. */
void worker_stop(worker_t *w);
/* Main thread: waits for the thread, then frees what w owns (its snapshots' references, pools,
 * listeners, sockets not adopted); w itself stays the caller's. */
void worker_join(worker_t *w);
/* Main thread: hand a new snapshot (reference taken) to the worker (borrowed) for new
 * connections, with the sockets of the listeners it adds or replaces (taken). When the worker
 * installs it, listeners snap no longer has, and those with a new socket, stop accepting (their
 * connections go on), and the new sockets start accepting. A snapshot the worker has not
 * installed yet is replaced, its sockets kept unless newer ones of the same name come. */
void worker_publish(worker_t *w, snapshot_t *snap, worker_socket_t *sockets);

/* Worker thread: a connection starts draining because of a new snapshot. Returns its drain
 * deadline (loop time, ms: now + w->drain_timeout_ms, never 0), by which the worker's drain
 * timer is armed to call the kinds' drain_expired hooks. w borrowed. */
uint64_t worker_drain_deadline(worker_t *w);

/* Adds the sockets of add (taken) to the list *into (the caller's), each in place of a socket
 * of the same name already there (closed and freed): the sockets of several snapshots, for
 * whichever of them is installed last. */
void worker_sockets_merge(worker_socket_t **into, worker_socket_t *add);
/* Closes the sockets of list (taken) and gives back their places in their sets. Any thread. */
void worker_sockets_free(worker_socket_t *list);
/* A connection accepted on wl (borrowed) is counted out: frees wl when it was the last thing
 * keeping a closed listener. Worker thread. */
void worker_listener_conn_done(worker_listener_t *wl);

/* Opens a bound, non-blocking SO_REUSEPORT socket for l (borrowed; listen() happens on the
 * worker). *fd is a new socket owned by the caller (close it, or hand it to worker_start). */
int listener_socket_open(const snap_listener_t *l, int *fd, char *err, size_t errlen);
/* Starts accepting on a worker listener (borrowed; owned by its worker) and marks it started.
 * Worker thread. */
int listener_start(worker_listener_t *wl);
/* Closes connections still in protocol detection (at stop); w borrowed, the connections are
 * its and freed. */
void listener_abort_sniffs(worker_t *w);
/* Gives every network filter of w's snapshot its per-worker housekeeping call (w borrowed).
 * Worker thread. */
void listener_filters_tick(worker_t *w);
/* Counts out a downstream connection accepted on l (borrowed) as it closes: the listener's
 * active and destroy stats, the worker's active count, the connection-limit counts it was
 * admitted under, and its place in the worker listener wl it came in on (its accepted_conn_t's,
 * borrowed; this may free it). Worker thread. */
void listener_conn_closed(worker_t *w, const snap_listener_t *l, worker_listener_t *wl);
/* Whether the worker listener a connection came in on (borrowed) has stopped accepting: a
 * snapshot removed or replaced it, or the worker drains. */
static inline bool listener_retired(const worker_listener_t *wl)
{
    return wl->closed;
}

#endif
