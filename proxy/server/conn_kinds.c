/* The kinds of connection every worker runs: each kind's start, drain, abort and new-snapshot
 * hooks, made of its module's public functions and listed in the order the worker runs them. */
#include "proxy/server/conn_kinds.h"

#include "proxy/http/hcm_conn.h"
#include "proxy/tcp/tcp_session.h"
#include "proxy/upstream/h1_pool.h"
#include "proxy/upstream/h2_pool.h"

/* Every listener of the worker not started yet starts accepting: at start, and those a new
 * snapshot brought. A failed one does not keep the others from starting. */
static int listeners_start(worker_t *w)
{
    int rc = 0;
    for (worker_listener_t *wl = w->listeners; wl; wl = wl->next)
        if (!wl->started && listener_start(wl) < 0)
            rc = -1;
    return rc;
}

static void listeners_snapshot_installed(worker_t *w, snapshot_t *old)
{
    (void)old;
    listeners_start(w); /* a failure is logged; the other listeners go on */
}

static void hcm_snapshot_installed(worker_t *w, snapshot_t *old)
{
    (void)old;
    hcm_rebind_all(w);
}

static void tcp_sessions_snapshot_installed(worker_t *w, snapshot_t *old)
{
    (void)old;
    relay_snapshot_installed(w);
}

static const worker_conn_ops_t listener_ops = {
    .name = "listener",
    .start = listeners_start,
    .abort = listener_abort_sniffs,
    .snapshot_installed = listeners_snapshot_installed,
    .tick = listener_filters_tick,
};

static const worker_conn_ops_t tcp_session_ops = {
    .name = "tcp_proxy",
    .abort = relay_abort_all,
    .snapshot_installed = tcp_sessions_snapshot_installed,
    .drain_expired = relay_drain_expired,
};

static const worker_conn_ops_t hcm_ops = {
    .name = "http_connection_manager",
    .drain = hcm_drain_all,
    .abort = hcm_abort_all,
    .snapshot_installed = hcm_snapshot_installed,
    .drain_expired = hcm_drain_expired,
};

static const worker_conn_ops_t h2_pool_ops = {
    .name = "upstream_h2_pool",
    .abort = h2_pool_close_all,
    .snapshot_installed = h2_pool_retire_snapshot,
};

static const worker_conn_ops_t pool_ops = {
    .name = "upstream_pool",
    .abort = pool_close_all,
    .snapshot_installed = pool_retire_snapshot,
};

/* Sniffing connections go first: they belong to no other kind yet. HTTP connections close
 * before the pools, so the upstream connections they lend are given back, not yanked from
 * under a stream. */
static const worker_conn_ops_t *const kinds[] = {
    &listener_ops, &tcp_session_ops, &hcm_ops, &h2_pool_ops, &pool_ops,
};

const worker_conn_kinds_t conn_kinds = {
    .ops = kinds,
    .n = sizeof(kinds) / sizeof(kinds[0]),
};
