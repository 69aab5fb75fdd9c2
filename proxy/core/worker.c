/* Worker threads: loop setup, the command channel from the main thread (drain, stop, new
 * snapshot with the sockets of its new listeners), the worker's listeners as snapshots add and
 * remove them, and orderly teardown. */
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

/* ---- the drain deadline of connections a new snapshot drains -------------------------------- */

static void on_drain_timer(uv_timer_t *t);

static void drain_timer_arm(worker_t *w, uint64_t due)
{
    if (due == 0 || (w->drain_timer_due != 0 && w->drain_timer_due <= due))
        return;
    uint64_t now = uv_now(&w->loop);
    w->drain_timer_due = due;
    uv_timer_start(&w->drain_timer, on_drain_timer, due > now ? due - now : 0, 0);
}

static void on_drain_timer(uv_timer_t *t)
{
    worker_t *w = t->data;
    uint64_t now = uv_now(&w->loop), next = 0;
    w->drain_timer_due = 0;
    for (size_t i = 0; i < w->kinds->n; i++) {
        if (w->kinds->ops[i]->drain_expired == NULL)
            continue;
        uint64_t due = w->kinds->ops[i]->drain_expired(w, now);
        if (due != 0 && (next == 0 || due < next))
            next = due;
    }
    drain_timer_arm(w, next);
}

uint64_t worker_drain_deadline(worker_t *w)
{
    uint64_t due = uv_now(&w->loop) + w->drain_timeout_ms;
    if (due == 0)
        due = 1;
    drain_timer_arm(w, due);
    return due;
}

/* ---- listeners: the sockets a worker accepts on ---------------------------------------------
 * A worker listener leaves w->listeners when it stops accepting (a snapshot without it, a new
 * socket for its name, drain, stop) and is freed once its handle is closed and its last
 * connection counted out; only then does it give back its place in its listen set, which the
 * main thread frees when no place is taken. */

static void socket_free(worker_socket_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->set)
        atomic_fetch_sub_explicit(&s->set->refs, 1, memory_order_release);
    free(s->name);
    free(s);
}

void worker_sockets_free(worker_socket_t *list)
{
    while (list) {
        worker_socket_t *next = list->next;
        socket_free(list);
        list = next;
    }
}

void worker_sockets_merge(worker_socket_t **into, worker_socket_t *add)
{
    while (add) {
        worker_socket_t *s = add;
        add = s->next;
        s->next = NULL;
        worker_socket_t **p = into;
        while (*p && strcmp((*p)->name, s->name) != 0)
            p = &(*p)->next;
        if (*p) {
            worker_socket_t *old = *p;
            s->next = old->next;
            socket_free(old);
        }
        *p = s;
    }
}

static bool has_socket(const worker_socket_t *list, const char *name)
{
    for (; list; list = list->next)
        if (strcmp(list->name, name) == 0)
            return true;
    return false;
}

/* The set may be freed by the main thread as soon as the place is given back: last step. */
static void listener_free_if_done(worker_listener_t *wl)
{
    if (!wl->closed || !wl->handle_closed || wl->conns > 0)
        return;
    listen_set_t *set = wl->set;
    free(wl);
    atomic_fetch_sub_explicit(&set->refs, 1, memory_order_release);
}

static void on_listener_closed(uv_handle_t *h)
{
    worker_listener_t *wl = h->data;
    wl->handle_closed = true;
    listener_free_if_done(wl);
}

void worker_listener_conn_done(worker_listener_t *wl)
{
    wl->conns--;
    listener_free_if_done(wl);
}

/* Stops wl (already out of the worker's list) accepting; its connections go on. */
static void listener_retire(worker_listener_t *wl)
{
    wl->closed = true;
    wl->cfg = NULL;
    if (wl->started) {
        uv_close((uv_handle_t *)&wl->tcp, on_listener_closed);
        return;
    }
    if (wl->fd >= 0)
        close(wl->fd);
    wl->handle_closed = true;
    listener_free_if_done(wl);
}

static void close_listeners(worker_t *w)
{
    w->listeners_closed = true;
    while (w->listeners) {
        worker_listener_t *wl = w->listeners;
        w->listeners = wl->next;
        listener_retire(wl);
    }
}

/* Makes a listener, not started yet, of each socket whose name snap (borrowed) has; the other
 * sockets (taken) are closed: a later snapshot removed their listener, or the worker drains. */
static void adopt_sockets(worker_t *w, const snapshot_t *snap, worker_socket_t *sockets)
{
    while (sockets) {
        worker_socket_t *s = sockets;
        sockets = s->next;
        const snap_listener_t *l = snapshot_find_listener(snap, s->name);
        bool wanted = l && s->fd >= 0 && !w->listeners_closed;
        worker_listener_t *wl = wanted ? calloc(1, sizeof(*wl)) : NULL;
        if (wl == NULL) {
            if (wanted)
                log_error("listener '%s': out of memory: not accepting on worker %u", s->name,
                          w->index);
            socket_free(s);
            continue;
        }
        *wl = (worker_listener_t){
            .worker = w, .next = w->listeners, .cfg = l, .set = s->set, .fd = s->fd};
        w->listeners = wl;
        free(s->name);
        free(s);
    }
}

/* Installs snap (reference taken) with the sockets of its new listeners (taken): each listener
 * is pointed at its namesake in snap, or closed when snap has none or brings a new socket for
 * it; then the new sockets become listeners, which the listener kind starts. */
static void install_snapshot(worker_t *w, snapshot_t *snap, worker_socket_t *sockets)
{
    unsigned retired = 0;
    worker_listener_t **p = &w->listeners;
    while (*p) {
        worker_listener_t *wl = *p;
        const snap_listener_t *l = snapshot_find_listener(snap, wl->cfg->name);
        if (l && !has_socket(sockets, l->name)) {
            wl->cfg = l;
            p = &wl->next;
            continue;
        }
        *p = wl->next;
        listener_retire(wl);
        retired++;
    }
    adopt_sockets(w, snap, sockets);
    snapshot_t *old = w->snap;
    w->snap = snap;
    w->listeners_retired = retired;
    /* While old is alive: the pools retire its idle connections, which hold no reference. */
    tell_kinds_snapshot_installed(w, old);
    w->listeners_retired = 0;
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
        worker_socket_t *sockets = w->pending_sockets;
        w->pending_snap = NULL;
        w->pending_sockets = NULL;
        uv_mutex_unlock(&w->pending_lock);
        if (snap)
            install_snapshot(w, snap, sockets);
        else
            worker_sockets_free(sockets);
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
        uv_close((uv_handle_t *)&w->drain_timer, NULL);
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
                 worker_socket_t *sockets, _Atomic int64_t *cx_global,
                 const worker_conn_kinds_t *kinds, uint64_t drain_timeout_ms)
{
    memset(w, 0, sizeof(*w));
    w->index = index;
    w->stats_store = store;
    w->stats = stats_slots(store, index);
    w->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)uv_hrtime() << 1) ^ index;
    w->snap = snap;
    w->cx_global = cx_global;
    w->kinds = kinds;
    w->drain_timeout_ms = drain_timeout_ms;
    bufpool_init(&w->pool, 256);
    arena_cache_init(&w->arenas, 256);
    int rc = uv_loop_init(&w->loop);
    if (rc < 0) {
        worker_sockets_free(sockets);
        return rc;
    }
    uv_mutex_init(&w->pending_lock);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    adopt_sockets(w, snap, sockets);
    rc = uv_thread_create(&w->thread, worker_main, w);
    if (rc < 0)
        close_listeners(w); /* none started: their sockets close at once */
    return rc;
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

void worker_publish(worker_t *w, snapshot_t *snap, worker_socket_t *sockets)
{
    uv_mutex_lock(&w->pending_lock);
    snapshot_t *old = w->pending_snap;
    w->pending_snap = snap;
    worker_sockets_merge(&w->pending_sockets, sockets);
    uv_mutex_unlock(&w->pending_lock);
    snapshot_unref(old);
    send_cmd(w, WORKER_CMD_SNAPSHOT);
}

void worker_join(worker_t *w)
{
    uv_thread_join(&w->thread);
    /* The loop ended with every listener closed and every connection counted out, so every
     * worker listener is freed; sockets sent after the stop were never adopted. */
    uv_loop_close(&w->loop);
    worker_sockets_free(w->pending_sockets);
    snapshot_unref(w->pending_snap);
    snapshot_unref(w->snap);
    uv_mutex_destroy(&w->pending_lock);
    bufpool_destroy(&w->pool);
    arena_cache_free(&w->arenas);
    stats_cache_free(&w->stat_cache);
}
