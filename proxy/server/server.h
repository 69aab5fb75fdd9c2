/* The remora process: loads the bootstrap, opens listening sockets, runs the workers, serves the
 * admin endpoint on the main loop, and drains on SIGTERM. */
#ifndef REMORA_SERVER_H
#define REMORA_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proxy/core/host.h"
#include "base/stats.h"
#include "proxy/core/worker.h"
#include "xds/snapshot/snapshot.h"

typedef struct server_options {
    const char *config_path;
    unsigned concurrency;    /* 0: number of cores */
    unsigned drain_time_s;   /* how long SIGTERM waits for open connections */
    bool validate_only;      /* load and check the config, then exit */
    const char *admin_addr;  /* overrides the bootstrap's admin address ("127.0.0.1:15000") */
    const char *health_addr; /* serve GET /healthz/ready here ("0.0.0.0:15021"), or NULL */
    /* Certificate rotation (proxy/server/cert_watch.h): how often the TLS files are looked at
     * besides their directories' fs events (0: not watched), and how close to expiry a certificate
     * is logged and counted (0: never). */
    uint64_t cert_check_interval_ms;
    int64_t cert_expiry_warn_s;
    /* The network filters configs may name (static): the program's main passes the set it
     * links (filters/registry.h). */
    const snap_filter_registry_t *filters;
} server_options_t;

typedef enum { SERVER_STARTING, SERVER_LIVE, SERVER_DRAINING, SERVER_STOPPING } server_state_t;

struct admin;
struct cert_watch;
struct dns;
struct xds_client;
struct listener_manager;

typedef struct server_stat_ids {
    stat_id_t live;
    stat_id_t state;
    stat_id_t concurrency;
    stat_id_t uptime;
    stat_id_t total_connections;
    stat_id_t version;
} server_stat_ids_t;

typedef struct server {
    server_options_t opts;
    uv_loop_t *loop;
    stats_store_t *stats;
    stats_slots_t *main_slots;
    server_stat_ids_t st;
    snapshot_t *snap; /* the running config (reference held); main thread reads and swaps it */
    worker_t *workers;
    unsigned nworkers;  /* configured (--concurrency) */
    unsigned n_started; /* workers running: none until the first DNS answers are in */
    /* The running listeners, their sockets and open-connection counts (owned). */
    struct listener_manager *lm;
    /* [worker]: sockets bound for a worker and not handed to it yet (owned lists): between a
     * snapshot's install and its publish, and for a worker not started yet, all the sockets
     * of the snapshots installed before it starts. */
    worker_socket_t **sockets;
    host_t host;          /* what admin, cert_watch and dns see of the server (server_host) */
    struct admin *admin;  /* owned; NULL without one, or once stopped */
    struct admin *health; /* owned; NULL without one, or once stopped */
    struct cert_watch *cert_watch; /* owned; NULL once stopped */
    struct dns *dns;               /* owned; NULL without DNS clusters, or once stopped */
    struct xds_client *xds;        /* owned; NULL without dynamic_resources, or once stopped */
    bool xds_ready;                /* the xDS client's first config is in (or its wait timed out) */
    uv_signal_t sigterm, sigint;
    uv_timer_t tick;
    server_state_t state;
    uint64_t start_ms;
    uint64_t drain_deadline_ms;
    int exit_code;
} server_t;

/* Runs remora with opts (borrowed for the run) until it exits; returns the process exit code. */
int server_run(const server_options_t *opts);

/* server_run in three steps, for a caller that runs the main loop itself (tests): starts s (the
 * caller's, zeroed here) with opts (borrowed for the run) on loop (borrowed; the caller runs it
 * until it ends, then calls server_close): loads the config, binds its listeners, starts the
 * admin endpoint, the workers and the rest. Returns 0, or an exit code (nothing left to close)
 * when the config does not load or a listener cannot bind; a later failure sets s->exit_code
 * and stops s, so the loop ends soon. opts->validate_only is not honoured here. */
int server_open(server_t *s, const server_options_t *opts, uv_loop_t *loop);
/* After s's loop ended: joins the workers and frees what s owns; returns the exit code. The loop
 * stays the caller's to close. */
int server_close(server_t *s);

/* True once every worker listens on every listener, and not draining (s borrowed). The workers
 * start only once every host name of the DNS clusters has had its first answer
 * (proxy/server/dns.h). */
bool server_ready(const server_t *s);
/* Stops accepting and exits once connections finish or drain_time_s passes. s borrowed. */
void server_drain(server_t *s);
/* Resets open connections and exits now. s borrowed. */
void server_quit(server_t *s);
/* Open downstream connections over all workers; s borrowed. */
int64_t server_active_connections(const server_t *s);
/* Main thread: makes snap (reference taken) the running config of s (borrowed): the listener
 * manager binds the sockets of the listeners it adds or changes (a listener that cannot bind is
 * logged and counted, the rest installs), every worker gets it for new connections with those
 * sockets, and s->snap (admin, later rebuilds) points at it. Open connections keep the snapshot
 * they started with; those of listeners it removes or replaces drain. Dropped once the server
 * is stopping; while draining no listener is added. Counts each cluster whose endpoints differ
 * from its namesake's in the snapshot replaced into membership_change, and sets
 * membership_total. */
void server_install_snapshot(server_t *s, snapshot_t *snap);
/* Envoy's name of st: a static string. */
const char *server_state_name(server_state_t st);

/* The host API (proxy/core/host.h) over s (borrowed; must outlive every user of the host): the
 * server's snapshot, install, DNS resolver, readiness, state and quit, with s's loop, stats,
 * main slots, start time and options as they are now (set them first). The admin endpoint,
 * cert_watch and dns reach the server only through it. */
host_t server_host(server_t *s);

/* Main thread: sets a gauge of the main thread's slots so that the sum over all slots is value.
 * s borrowed. */
void server_set_gauge(server_t *s, stat_id_t id, int64_t value);

#endif
