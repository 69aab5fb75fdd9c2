/* The host API: what the main thread's services (the admin endpoint, certificate rotation, the
 * DNS of DNS clusters) need of the process that runs them. The server fills a host_t and hands
 * it to each service; the services include this header and never the server's, so the server
 * depends on them and they on this contract alone. Main thread only. */
#ifndef REMORA_HOST_H
#define REMORA_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/stats.h"
#include "xds/snapshot/snapshot.h"

/* The calls a host answers; ctx is host_t.ctx. */
typedef struct host_ops {
    /* The running config (borrowed: valid until the next install_snapshot). */
    const snapshot_t *(*snapshot)(void *ctx);
    /* Makes snap (reference taken) the running config: every worker gets it for new
     * connections, and snapshot() returns it from then on. Dropped once the host is stopping. */
    void (*install_snapshot)(void *ctx, snapshot_t *snap);
    /* The addresses held for the DNS clusters' host names, for snapshot_rebuild (borrowed,
     * valid while the host runs), or NULL when nothing resolves them. */
    const snap_resolver_t *(*resolver)(void *ctx);
    /* True once every worker listens on every listener, and not draining. */
    bool (*ready)(void *ctx);
    /* Envoy's name of the host's state ("PRE_INITIALIZING", "LIVE", "DRAINING", "STOPPING"),
     * a static string. */
    const char *(*state_name)(void *ctx);
    /* Resets open connections and ends the process now. */
    void (*quit)(void *ctx);
    /* The running config as /config_dump shows it (Envoy's shape, with what the xDS client
     * knows of each dynamic resource): a new string the caller frees, or NULL. */
    char *(*config_dump)(void *ctx);
    /* Calls fn(arg, name, addr) for each listener the host runs, in the running config's
     * order: addr is where it accepts (the port bound for a port-0 listener). All borrowed for
     * the call. */
    void (*listeners)(void *ctx,
                      void (*fn)(void *arg, const char *name, const struct sockaddr *addr),
                      void *arg);
    /* Calls fn(arg, name, value) for each text readout (Envoy's stats that hold a string, such
     * as cluster_manager.cds.version_text), sorted by name; NULL: the host has none. All
     * borrowed for the call. */
    void (*text_readouts)(void *ctx, void (*fn)(void *arg, const char *name, const char *value),
                          void *arg);
    /* Binds the sockets of listener l (borrowed) now and keeps them for the next
     * install_snapshot that has it; 0, or a negative errno with err set. NULL: the host binds
     * only when it installs. */
    int (*reserve_listener)(void *ctx, const snap_listener_t *l, char *err, size_t errlen);
} host_ops_t;

typedef struct host {
    const host_ops_t *ops; /* borrowed; static in the host */
    void *ctx;             /* the host's own state, passed to every op (borrowed) */
    uv_loop_t *loop;       /* the main loop (borrowed) */
    stats_store_t *stats;  /* the process's stats (borrowed) */
    stats_slots_t *slots;  /* the main thread's slots of stats (borrowed) */
    uint64_t start_ms;     /* uv_now(loop) when the process started */
    /* What /server_info reports of the command line. */
    const char *config_path; /* borrowed */
    unsigned concurrency;    /* workers */
    unsigned drain_time_s;
} host_t;

/* The running config of h (borrowed; both borrowed): valid until the next
 * host_install_snapshot. */
static inline const snapshot_t *host_snapshot(const host_t *h)
{
    return h->ops->snapshot(h->ctx);
}

/* Makes snap the running config of h (borrowed); takes the reference to snap. */
static inline void host_install_snapshot(const host_t *h, snapshot_t *snap)
{
    h->ops->install_snapshot(h->ctx, snap);
}

/* What snapshot_rebuild asks for DNS addresses (borrowed), or NULL; h is borrowed. */
static inline const snap_resolver_t *host_resolver(const host_t *h)
{
    return h->ops->resolver(h->ctx);
}

/* Whether h (borrowed) is ready to serve: what /ready and /healthz/ready answer. */
static inline bool host_ready(const host_t *h)
{
    return h->ops->ready(h->ctx);
}

/* Envoy's name of h's state (h borrowed; returns a static string). */
static inline const char *host_state_name(const host_t *h)
{
    return h->ops->state_name(h->ctx);
}

/* /config_dump's JSON (h borrowed): a new string the caller frees, or NULL. */
static inline char *host_config_dump(const host_t *h)
{
    return h->ops->config_dump(h->ctx);
}

/* The listeners h (borrowed) runs, each passed to fn with arg (see host_ops_t.listeners). */
static inline void
host_listeners(const host_t *h,
               void (*fn)(void *arg, const char *name, const struct sockaddr *addr), void *arg)
{
    h->ops->listeners(h->ctx, fn, arg);
}

/* The text readouts of h (borrowed), each passed to fn with arg, sorted by name (see
 * host_ops_t.text_readouts); none when the host has no such op. */
static inline void host_text_readouts(const host_t *h,
                                      void (*fn)(void *arg, const char *name, const char *value),
                                      void *arg)
{
    if (h->ops->text_readouts)
        h->ops->text_readouts(h->ctx, fn, arg);
}

/* Ends the process now (h borrowed). */
static inline void host_quit(const host_t *h)
{
    h->ops->quit(h->ctx);
}

/* Sets gauge id through the main thread's slots so that its sum over all slots is value
 * (h borrowed). Main thread only. */
static inline void host_set_gauge(const host_t *h, stat_id_t id, int64_t value)
{
    stats_add(h->slots, id, value - stats_value(h->stats, id));
}

#endif
