/* Worker threads: loop setup, the command channel from the main thread (drain, stop, new
 * snapshot) and orderly teardown. */
#include "proxy/core/worker.h"

#include "certs/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/core/log.h"

/* The hooks of every connection kind, in the kinds' order (worker_conn_kinds_t). */
static int start_kinds(worker_t *w)
{
    int rc = 0;
    for (size_t i = 0; i < w->kinds->n; i++)
        if (w->kinds->ops[i]->start && w->kinds->ops[i]->start(w) < 0)
            rc = -1; /* the rest start all the same, as listeners after a failed one did */
    return rc;
}

static void drain_kinds(worker_t *w)
{
    for (size_t i = 0; i < w->kinds->n; i++)
        if (w->kinds->ops[i]->drain)
            w->kinds->ops[i]->drain(w);
}

static void abort_kinds(worker_t *w)
{
    for (size_t i = 0; i < w->kinds->n; i++)
        if (w->kinds->ops[i]->abort)
            w->kinds->ops[i]->abort(w);
}

static void tell_kinds_snapshot_installed(worker_t *w, snapshot_t *old)
{
    for (size_t i = 0; i < w->kinds->n; i++)
        if (w->kinds->ops[i]->snapshot_installed)
            w->kinds->ops[i]->snapshot_installed(w, old);
}

static void on_listener_closed(uv_handle_t *h)
{
    (void)h;
}

static void close_listeners(worker_t *w)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        worker_listener_t *wl = &w->listeners[i];
        if (wl->open) {
            wl->open = false;
            uv_close((uv_handle_t *)&wl->tcp, on_listener_closed);
        }
    }
}

/* Points each listener at its namesake in the new snapshot. Listeners that appear or vanish
 * need new sockets: that is the listener manager's job when listeners arrive over xDS. */
static void install_snapshot(worker_t *w, snapshot_t *snap)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        for (size_t j = 0; j < snap->n_listeners; j++) {
            if (strcmp(snap->listeners[j].name, w->listeners[i].cfg->name) == 0) {
                w->listeners[i].cfg = &snap->listeners[j];
                break;
            }
        }
    }
    snapshot_t *old = w->snap;
    w->snap = snap;
    /* While old is alive: the pools retire its idle connections, which hold no reference. */
    tell_kinds_snapshot_installed(w, old);
    snapshot_unref(old);
}

/* Every kind's housekeeping call, in order. */
static void tick_kinds(worker_t *w)
{
    for (size_t i = 0; i < w->kinds->n; i++)
        if (w->kinds->ops[i]->tick)
            w->kinds->ops[i]->tick(w);
}

static void on_tick(uv_timer_t *t)
{
    tick_kinds(t->data);
}

static void on_wakeup(uv_async_t *a)
{
    worker_t *w = a->data;
    int cmd = atomic_exchange(&w->cmd, 0);
    if (cmd & WORKER_CMD_SNAPSHOT) {
        uv_mutex_lock(&w->pending_lock);
        snapshot_t *snap = w->pending_snap;
        w->pending_snap = NULL;
        uv_mutex_unlock(&w->pending_lock);
        if (snap)
            install_snapshot(w, snap);
    }
    if (cmd & (WORKER_CMD_DRAIN | WORKER_CMD_STOP)) {
        close_listeners(w);
        atomic_store(&w->listening, false);
    }
    if (cmd & WORKER_CMD_DRAIN)
        drain_kinds(w);
    if (cmd & WORKER_CMD_STOP) {
        abort_kinds(w);
        tick_kinds(w);
        uv_close((uv_handle_t *)&w->tick, NULL);
        uv_close((uv_handle_t *)&w->wakeup, NULL);
    }
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    char name[24];
    snprintf(name, sizeof(name), "worker %u", w->index);
    log_set_thread_name(name);
    if (start_kinds(w) < 0)
        w->start_error = -1;
    atomic_store(&w->listening, w->start_error == 0);
    uv_timer_start(&w->tick, on_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&w->tick);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Anything still open (only possible after a failed start) is closed here. */
    close_listeners(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    tls_thread_cleanup(); /* this thread's TLS output cache and random generator */
}

int worker_start(worker_t *w, unsigned index, snapshot_t *snap, stats_store_t *store,
                 const int *fds, conn_counts_t *counts, const worker_conn_kinds_t *kinds)
{
    memset(w, 0, sizeof(*w));
    w->index = index;
    w->stats_store = store;
    w->stats = stats_slots(store, index);
    w->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)uv_hrtime() << 1) ^ index;
    w->snap = snap;
    w->counts = counts;
    w->kinds = kinds;
    bufpool_init(&w->pool, 256);
    arena_cache_init(&w->arenas, 256);
    int rc = uv_loop_init(&w->loop);
    if (rc < 0)
        return rc;
    uv_mutex_init(&w->pending_lock);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    w->n_listeners = snap->n_listeners;
    w->listeners = calloc(w->n_listeners ? w->n_listeners : 1, sizeof(*w->listeners));
    if (w->listeners == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < w->n_listeners; i++) {
        w->listeners[i].worker = w;
        w->listeners[i].cfg = &snap->listeners[i];
        w->listeners[i].fd = fds[i];
        w->listeners[i].cx_open = &counts->listener[i];
    }
    return uv_thread_create(&w->thread, worker_main, w);
}

static void send_cmd(worker_t *w, int cmd)
{
    atomic_fetch_or(&w->cmd, cmd);
    uv_async_send(&w->wakeup);
}

void worker_drain(worker_t *w)
{
    send_cmd(w, WORKER_CMD_DRAIN);
}

void worker_stop(worker_t *w)
{
    send_cmd(w, WORKER_CMD_STOP);
}

void worker_publish(worker_t *w, snapshot_t *snap)
{
    uv_mutex_lock(&w->pending_lock);
    snapshot_t *old = w->pending_snap;
    w->pending_snap = snap;
    uv_mutex_unlock(&w->pending_lock);
    snapshot_unref(old);
    send_cmd(w, WORKER_CMD_SNAPSHOT);
}

void worker_join(worker_t *w)
{
    uv_thread_join(&w->thread);
    /* Sockets never handed to a listener handle (failed start) are still ours to close. */
    for (size_t i = 0; i < w->n_listeners; i++) {
        if (!w->listeners[i].open && w->listeners[i].fd >= 0 && w->listeners[i].tcp.type != UV_TCP)
            close(w->listeners[i].fd);
    }
    uv_loop_close(&w->loop);
    snapshot_unref(w->pending_snap);
    snapshot_unref(w->snap);
    uv_mutex_destroy(&w->pending_lock);
    bufpool_destroy(&w->pool);
    arena_cache_free(&w->arenas);
    stats_cache_free(&w->stat_cache);
    free(w->listeners);
}
