/* The listener manager on the main thread: the running listeners by name, the sockets bound for
 * each (one per worker), the diff of every new snapshot against them, the draining ones, and
 * the open-connection counts by listener name. */
#include "proxy/server/listener_manager.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "proxy/core/log.h"

/* The open connections of one listener name, behind its connection limit: shared by every set
 * of that name (a replaced listener's connections still count against the new one), and kept
 * while any set of that name is. */
typedef struct lm_count {
    _Atomic int64_t open;
    unsigned sets; /* listen sets of this name not freed yet */
    struct lm_count *next;
    char *name;
} lm_count_t;

/* One listener as it was bound: its sockets on every worker (the listen set), and what tells
 * whether a snapshot changed it. */
typedef struct lm_listener {
    listen_set_t set;
    struct lm_listener *next;
    char *name;
    struct sockaddr_storage addr;  /* as configured (port 0 stays 0) */
    struct sockaddr_storage bound; /* where it accepts: the first socket's address */
    bool bind_to_port;
    uint64_t config_hash;
    lm_count_t *count;
} lm_listener_t;

/* Sockets bound for a listener before the snapshot that has it is installed: an xDS client
 * binds them while it checks the listener (so a port in use is NACKed, as Envoy does), and the
 * next update takes them instead of binding again; whatever it does not take, it closes. */
typedef struct lm_reserved {
    char *name;
    snap_listener_t key; /* the configured address and bind_to_port, for same_socket */
    struct sockaddr_storage bound;
    int *fds; /* one per worker */
    struct lm_reserved *next;
} lm_reserved_t;

typedef struct lm_stat_ids {
    stat_id_t added;
    stat_id_t modified;
    stat_id_t removed;
    stat_id_t in_place_updated;
    stat_id_t create_success;
    stat_id_t create_failure;
    stat_id_t active;   /* gauge */
    stat_id_t draining; /* gauge */
} lm_stat_ids_t;

struct listener_manager {
    unsigned nworkers;
    stats_store_t *stats;
    stats_slots_t *slots;
    lm_stat_ids_t st;
    lm_listener_t *active;   /* running, in the running snapshot's order */
    lm_listener_t *draining; /* removed or replaced, with a worker listener still alive */
    lm_count_t *counts;
    lm_reserved_t *reserved;
    _Atomic int64_t cx_global;
};

static int define_stats(listener_manager_t *lm)
{
    struct {
        stat_id_t *id;
        stat_kind_t kind;
        const char *metric;
    } defs[] = {
        {&lm->st.added, STAT_COUNTER, "listener_added"},
        {&lm->st.modified, STAT_COUNTER, "listener_modified"},
        {&lm->st.removed, STAT_COUNTER, "listener_removed"},
        {&lm->st.in_place_updated, STAT_COUNTER, "listener_in_place_updated"},
        {&lm->st.create_success, STAT_COUNTER, "listener_create_success"},
        {&lm->st.create_failure, STAT_COUNTER, "listener_create_failure"},
        {&lm->st.active, STAT_GAUGE, "total_listeners_active"},
        {&lm->st.draining, STAT_GAUGE, "total_listeners_draining"},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        int64_t id =
            stats_define(lm->stats, defs[i].kind, "listener_manager", NULL, NULL, defs[i].metric);
        if (id < 0)
            return (int)id;
        *defs[i].id = (stat_id_t)id;
    }
    return 0;
}

int listener_manager_new(unsigned nworkers, stats_store_t *stats, stats_slots_t *slots,
                         listener_manager_t **out)
{
    listener_manager_t *lm = calloc(1, sizeof(*lm));
    if (lm == NULL)
        return -ENOMEM;
    lm->nworkers = nworkers;
    lm->stats = stats;
    lm->slots = slots;
    int rc = define_stats(lm);
    if (rc < 0) {
        free(lm);
        return rc;
    }
    *out = lm;
    return 0;
}

_Atomic int64_t *listener_manager_global_count(listener_manager_t *lm)
{
    return &lm->cx_global;
}

/* ---- counts by name -------------------------------------------------------------------------- */

/* The count of name, made if there is none; it gains a set. NULL when out of memory. */
static lm_count_t *count_get(listener_manager_t *lm, const char *name)
{
    lm_count_t *c = lm->counts;
    while (c && strcmp(c->name, name) != 0)
        c = c->next;
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL || (c->name = strdup(name)) == NULL) {
            free(c);
            return NULL;
        }
        c->next = lm->counts;
        lm->counts = c;
    }
    c->sets++;
    return c;
}

/* A set leaves c; the last one frees it. No connection holds a place in c then: each one
 * keeps its worker listener, and so a place in a set, until it is counted out. */
static void count_put(listener_manager_t *lm, lm_count_t *c)
{
    if (--c->sets > 0)
        return;
    lm_count_t **p = &lm->counts;
    while (*p != c)
        p = &(*p)->next;
    *p = c->next;
    free(c->name);
    free(c);
}

/* ---- listen sets ----------------------------------------------------------------------------- */

static void listener_free(listener_manager_t *lm, lm_listener_t *g)
{
    if (g->count)
        count_put(lm, g->count);
    free(g->name);
    free(g);
}

static lm_listener_t *listener_new(listener_manager_t *lm, const snap_listener_t *l)
{
    lm_listener_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->name = strdup(l->name);
    g->count = count_get(lm, l->name);
    if (g->name == NULL || g->count == NULL) {
        listener_free(lm, g);
        return NULL;
    }
    g->set.cx_open = &g->count->open;
    g->addr = g->bound = l->addr;
    g->bind_to_port = l->bind_to_port;
    g->config_hash = l->config_hash;
    return g;
}

/* One socket entry per worker for listener `name`, fd -1 and no set yet. */
static int entries_new(const listener_manager_t *lm, const char *name, worker_socket_t **out)
{
    for (unsigned w = 0; w < lm->nworkers; w++) {
        out[w] = calloc(1, sizeof(*out[w]));
        if (out[w] == NULL)
            return -ENOMEM;
        out[w]->fd = -1;
        if ((out[w]->name = strdup(name)) == NULL)
            return -ENOMEM;
    }
    return 0;
}

/* Binds a socket per worker into entries (the first one gives a port-0 listener its port, so
 * every worker shares it) and records where g accepts. */
static lm_reserved_t *take_reserved(listener_manager_t *lm, const snap_listener_t *l);
static void reserved_free(listener_manager_t *lm, lm_reserved_t *r);

static int bind_sockets(listener_manager_t *lm, lm_listener_t *g, const snap_listener_t *l,
                        worker_socket_t **entries, char *err, size_t errlen)
{
    snap_listener_t at = *l;
    lm_reserved_t *r = take_reserved(lm, l);
    bool reserved = r != NULL;
    if (r) { /* bound while the listener was checked */
        for (unsigned w = 0; w < lm->nworkers; w++) {
            entries[w]->fd = r->fds[w];
            r->fds[w] = -1;
        }
        g->bound = r->bound;
        reserved_free(lm, r);
    }
    for (unsigned w = 0; !reserved && w < lm->nworkers; w++) {
        int rc = listener_socket_open(&at, &entries[w]->fd, err, errlen);
        if (rc < 0)
            return rc;
        if (w == 0) {
            socklen_t len = sizeof(at.addr);
            getsockname(entries[0]->fd, (struct sockaddr *)&at.addr, &len);
            g->bound = at.addr;
        }
    }
    for (unsigned w = 0; w < lm->nworkers; w++)
        entries[w]->set = &g->set;
    atomic_store_explicit(&g->set.refs, lm->nworkers, memory_order_relaxed);
    char text[80];
    snapshot_format_addr((const struct sockaddr *)&g->bound, text, sizeof(text));
    log_info("listener '%s' on %s%s", l->name, text,
             l->use_original_dst ? " (original destination)" : "");
    return 0;
}

/* A new set for l in *out, its sockets appended to sockets[w]. replacing: workers have a
 * listener of that name to close even if l binds no socket (their entries then carry fd -1).
 * Returns 0, or a negative error with err set (it cannot bind, or out of memory). */
static int listener_open(listener_manager_t *lm, const snap_listener_t *l, bool replacing,
                         worker_socket_t **sockets, lm_listener_t **out, char *err, size_t errlen)
{
    lm_listener_t *g = listener_new(lm, l);
    worker_socket_t **entries = calloc(lm->nworkers, sizeof(*entries));
    int rc = g && entries ? entries_new(lm, l->name, entries) : -ENOMEM;
    if (rc == 0 && l->bind_to_port)
        rc = bind_sockets(lm, g, l, entries, err, errlen);
    if (rc == -ENOMEM)
        err_set(err, errlen, rc, "listener '%s': out of memory", l->name);
    for (unsigned w = 0; entries && w < lm->nworkers; w++) {
        if (rc == 0 && (l->bind_to_port || replacing))
            worker_sockets_merge(&sockets[w], entries[w]);
        else if (entries[w])
            worker_sockets_free(entries[w]);
    }
    free(entries);
    if (rc < 0) {
        if (g)
            listener_free(lm, g);
        return rc;
    }
    if (l->bind_to_port)
        stats_add(lm->slots, lm->st.create_success, lm->nworkers);
    *out = g;
    return 0;
}

/* ---- reservations ---------------------------------------------------------------------------- */

static void reserved_free(listener_manager_t *lm, lm_reserved_t *r)
{
    for (unsigned w = 0; r->fds && w < lm->nworkers; w++)
        if (r->fds[w] >= 0)
            close(r->fds[w]);
    free(r->fds);
    free(r->name);
    free(r);
}

/* The reservation for l's name and socket, unlinked (the caller's), or NULL. */
static lm_reserved_t *take_reserved(listener_manager_t *lm, const snap_listener_t *l)
{
    for (lm_reserved_t **p = &lm->reserved; *p; p = &(*p)->next) {
        lm_reserved_t *r = *p;
        if (strcmp(r->name, l->name) == 0 && snapshot_listener_same_socket(&r->key, l)) {
            *p = r->next;
            return r;
        }
    }
    return NULL;
}

/* The running listener named name, or NULL. */
static const lm_listener_t *running(const listener_manager_t *lm, const char *name)
{
    for (const lm_listener_t *g = lm->active; g; g = g->next)
        if (strcmp(g->name, name) == 0)
            return g;
    return NULL;
}

int listener_manager_reserve(listener_manager_t *lm, const snap_listener_t *l, char *err,
                             size_t errlen)
{
    if (!l->bind_to_port)
        return 0;
    const lm_listener_t *g = running(lm, l->name);
    snap_listener_t key = {.addr = g ? g->addr : l->addr,
                           .bind_to_port = g ? g->bind_to_port : false};
    if (g && snapshot_listener_same_socket(&key, l))
        return 0; /* it keeps the sockets it has */
    lm_reserved_t *r = take_reserved(lm, l);
    if (r) { /* checked again (a resend after a rejection elsewhere): still bound */
        r->next = lm->reserved;
        lm->reserved = r;
        return 0;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->name = strdup(l->name)) == NULL ||
        (r->fds = malloc(lm->nworkers * sizeof(*r->fds))) == NULL) {
        if (r)
            free(r->name);
        free(r);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (unsigned w = 0; w < lm->nworkers; w++)
        r->fds[w] = -1;
    r->key.addr = l->addr;
    r->key.bind_to_port = true;
    snap_listener_t at = *l;
    for (unsigned w = 0; w < lm->nworkers; w++) {
        char why[512];
        int rc = listener_socket_open(&at, &r->fds[w], why, sizeof(why));
        if (rc < 0) {
            char text[80];
            snapshot_format_addr((const struct sockaddr *)&l->addr, text, sizeof(text));
            snprintf(err, errlen, "cannot bind '%s': %s", text, strerror(-rc));
            reserved_free(lm, r);
            return rc;
        }
        if (w == 0) { /* a port-0 listener: every worker shares the port the first one got */
            socklen_t len = sizeof(at.addr);
            getsockname(r->fds[0], (struct sockaddr *)&at.addr, &len);
            r->bound = at.addr;
        }
    }
    /* A newer check of the same listener replaces an older reservation. */
    for (lm_reserved_t **p = &lm->reserved; *p; p = &(*p)->next) {
        if (strcmp((*p)->name, l->name) == 0) {
            lm_reserved_t *old = *p;
            *p = old->next;
            reserved_free(lm, old);
            break;
        }
    }
    r->next = lm->reserved;
    lm->reserved = r;
    return 0;
}

/* g stops running: the workers close its sockets as they install the snapshot that lost it,
 * and it is freed once its last worker listener is (listener_manager_sweep). */
static void listener_drain(listener_manager_t *lm, lm_listener_t *g)
{
    g->next = lm->draining;
    lm->draining = g;
}

static lm_listener_t *take_named(lm_listener_t **list, const char *name)
{
    for (lm_listener_t **p = list; *p; p = &(*p)->next) {
        if (strcmp((*p)->name, name) == 0) {
            lm_listener_t *g = *p;
            *p = g->next;
            g->next = NULL;
            return g;
        }
    }
    return NULL;
}

/* l (borrowed) with its running set was (taken, or NULL): the set it runs with from now on, or
 * NULL when it does not run (an added listener that cannot bind). */
static lm_listener_t *update_one(listener_manager_t *lm, const snap_listener_t *l,
                                 lm_listener_t *was, bool strict, worker_socket_t **sockets,
                                 int *rc, char *err, size_t errlen)
{
    snap_listener_t key = {.addr = was ? was->addr : l->addr,
                           .bind_to_port = was ? was->bind_to_port : l->bind_to_port};
    if (was && snapshot_listener_same_socket(&key, l)) {
        if (was->config_hash != l->config_hash) {
            stats_inc(lm->slots, lm->st.modified);
            stats_inc(lm->slots, lm->st.in_place_updated);
            log_info("listener '%s' updated in place: connections on its changed filter chains "
                     "drain",
                     l->name);
            was->config_hash = l->config_hash;
        }
        return was;
    }
    char why[512] = "";
    lm_listener_t *g = NULL;
    int orc = listener_open(lm, l, was != NULL, sockets, &g, why, sizeof(why));
    if (orc < 0) {
        stats_inc(lm->slots, lm->st.create_failure);
        log_error("%s%s", why, was ? " (it keeps its old address)" : "");
        if (strict && *rc == 0)
            *rc = err_set(err, errlen, orc, "%s", why);
        return was;
    }
    if (was) {
        stats_inc(lm->slots, lm->st.modified);
        log_info("listener '%s' replaced: its old sockets close, their connections drain", l->name);
        listener_drain(lm, was);
    } else {
        stats_inc(lm->slots, lm->st.added);
    }
    return g;
}

int listener_manager_update(listener_manager_t *lm, const snapshot_t *snap, bool strict,
                            worker_socket_t **sockets, char *err, size_t errlen)
{
    lm_listener_t *old = lm->active, **tail = &lm->active;
    lm->active = NULL;
    int rc = 0;
    for (size_t i = 0; i < snap->n_listeners; i++) {
        const snap_listener_t *l = &snap->listeners[i];
        lm_listener_t *was = take_named(&old, l->name);
        lm_listener_t *g = update_one(lm, l, was, strict, sockets, &rc, err, errlen);
        if (g) {
            *tail = g;
            tail = &g->next;
        }
    }
    while (old) {
        lm_listener_t *g = old;
        old = g->next;
        stats_inc(lm->slots, lm->st.removed);
        log_info("listener '%s' removed: its sockets close, its connections drain", g->name);
        listener_drain(lm, g);
    }
    /* What this snapshot did not take is not needed: a later one binds anew. */
    while (lm->reserved) {
        lm_reserved_t *r = lm->reserved;
        lm->reserved = r->next;
        reserved_free(lm, r);
    }
    listener_manager_sweep(lm);
    return rc;
}

static void set_gauge(listener_manager_t *lm, stat_id_t id, int64_t value)
{
    stats_add(lm->slots, id, value - stats_value(lm->stats, id));
}

void listener_manager_sweep(listener_manager_t *lm)
{
    int64_t active = 0, draining = 0;
    for (lm_listener_t **p = &lm->draining; *p;) {
        lm_listener_t *g = *p;
        if (atomic_load_explicit(&g->set.refs, memory_order_acquire) == 0) {
            *p = g->next;
            log_info("listener '%s' drained", g->name);
            listener_free(lm, g);
        } else {
            p = &g->next;
            draining++;
        }
    }
    for (const lm_listener_t *g = lm->active; g; g = g->next)
        active++;
    set_gauge(lm, lm->st.active, active);
    set_gauge(lm, lm->st.draining, draining);
}

void listener_manager_list(const listener_manager_t *lm,
                           void (*fn)(void *arg, const char *name, const struct sockaddr *addr),
                           void *arg)
{
    for (const lm_listener_t *g = lm->active; g; g = g->next)
        fn(arg, g->name, (const struct sockaddr *)&g->bound);
}

void listener_manager_free(listener_manager_t *lm)
{
    if (lm == NULL)
        return;
    lm_listener_t *lists[] = {lm->active, lm->draining};
    for (size_t i = 0; i < 2; i++) {
        while (lists[i]) {
            lm_listener_t *g = lists[i];
            lists[i] = g->next;
            listener_free(lm, g);
        }
    }
    while (lm->reserved) {
        lm_reserved_t *r = lm->reserved;
        lm->reserved = r->next;
        reserved_free(lm, r);
    }
    free(lm);
}
