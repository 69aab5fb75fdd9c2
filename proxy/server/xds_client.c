/* The ADS stream on the main loop: one gRPC connection to the ADS cluster's first endpoint, one
 * call on it, the protocol state machine fed with every message, and a new snapshot installed
 * whenever the resources held change. */
#include "proxy/server/xds_client.h"

#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <unistd.h>

#include "base/version.h"
#include "proxy/core/log.h"
#include "proxy/core/worker.h"
#include "proxy/grpc/grpc_client.h"
#include "proxy/server/xds_stats.h"
#include "xds/ads/ads.h"
#include "xds/ads/ads_config.h"

#define BACKOFF_BASE_MS   500 /* Envoy's: 500 ms doubling up to 30 s, with full jitter */
#define BACKOFF_MAX_MS    30000
#define TRIM_MS           1000 /* after the last install, freed heap goes back to the system */
#define KEEPALIVE_MS      30000
#define KEEPALIVE_WAIT_MS 20000

/* The types in the order of `answered`. */
static const char *const type_urls[] = {ADS_TYPE_LISTENER, ADS_TYPE_CLUSTER, ADS_TYPE_ROUTE,
                                        ADS_TYPE_ENDPOINT, ADS_TYPE_SECRET};
#define N_TYPES (sizeof(type_urls) / sizeof(type_urls[0]))

/* A route configuration, endpoints or secret a config references and the resource set lacks:
 * waited for until its deadline, then taken as absent (gRFC A46's does-not-exist timer, Envoy's
 * initial_fetch_timeout per subscription), so that what references it stops warming. */
typedef struct xds_wait {
    unsigned type; /* in wait_types */
    char *name;
    uint64_t deadline; /* uv_now() after which it is absent; UINT64_MAX: never */
    bool absent;
} xds_wait_t;

/* The types waited for by name, in the order of snap_refs_t's lists. */
static const char *const wait_types[] = {ADS_TYPE_ROUTE, ADS_TYPE_ENDPOINT, ADS_TYPE_SECRET};

struct xds_client {
    const host_t *host;
    ads_t *ads;
    grpc_conn_t *conn;
    grpc_call_t *call;
    uv_timer_t retry; /* reconnect after backoff */
    uv_timer_t init;  /* the initial fetch timeout */
    uv_timer_t warm;  /* the earliest deadline of `waits` */
    uv_timer_t trim;  /* a second after the last install: give freed memory back */
    /* A config built and not installed yet: it references route configurations, endpoints or
     * secrets asked for and not received (Envoy's warming). NULL: none waits. */
    snapshot_t *warming;
    xds_wait_t *waits; /* what the last config looked at lacks, by type then name */
    size_t n_waits;
    uint64_t backoff_ms; /* the next backoff's ceiling */
    uint64_t rng;
    void (*on_first)(void *arg);
    void *arg;
    bool first_done; /* on_first was called */
    bool stopping;
    bool up;             /* the connection reached READY (counted in connected) */
    int closing_handles; /* timers not yet closed */
    xds_stats_t *stats;
    bool answered[N_TYPES]; /* a response of the type arrived (for the initial fetch) */
    /* The version of the snapshot whose references the named subscriptions are (0: not known,
     * after a failure): only follow_snapshot subscribes them. */
    uint64_t followed;
};

static void xds_connect(xds_client_t *x);
static void on_retry(uv_timer_t *t);

/* Wall-clock milliseconds: what /config_dump's last_updated shows. */
static uint64_t now_ms(const xds_client_t *x)
{
    (void)x;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static uint64_t next_random(xds_client_t *x)
{
    x->rng ^= x->rng >> 12;
    x->rng ^= x->rng << 25;
    x->rng ^= x->rng >> 27;
    return x->rng * 2685821657736338717ULL;
}

/* Orders waits by type, then name. */
static int wait_cmp(unsigned ta, const char *na, unsigned tb, const char *nb)
{
    return ta != tb ? (ta < tb ? -1 : 1) : strcmp(na, nb);
}

static xds_wait_t *wait_find(const xds_client_t *x, const char *type_url, const char *name)
{
    unsigned t = 0;
    while (t < 3 && strcmp(wait_types[t], type_url) != 0)
        t++;
    size_t lo = 0, hi = x->n_waits;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = wait_cmp(x->waits[mid].type, x->waits[mid].name, t, name);
        if (c == 0)
            return &x->waits[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Every name of a named type that a (borrowed) asks for and holds no message of has been given
 * up on. */
static bool all_absent(const xds_client_t *x, const char *type_url)
{
    ads_resource_info_t *info = NULL;
    size_t n = 0;
    if (ads_dump(x->ads, type_url, &info, &n) < 0)
        return false;
    bool all = true;
    for (size_t i = 0; i < n && all; i++) {
        const xds_wait_t *w = info[i].msg ? NULL : wait_find(x, type_url, info[i].name);
        all = info[i].msg || (w && w->absent);
    }
    free(info);
    return all;
}

/* Every type subscribed has had its first response (the ones subscribed because of what those
 * brought, route configurations and endpoints, included), or its names were given up on:
 * Envoy's warming, for the first config. */
static bool initial_fetch_done(xds_client_t *x)
{
    for (size_t i = 0; i < N_TYPES; i++) {
        ads_type_status_t st;
        if (ads_type_status(x->ads, type_urls[i], &st) == 0 && st.subscribed &&
            (st.wildcard || st.names > 0) && !x->answered[i] &&
            (st.wildcard || !all_absent(x, type_urls[i])))
            return false;
    }
    return true;
}

static void first_done(xds_client_t *x)
{
    if (x->first_done)
        return;
    x->first_done = true;
    uv_timer_stop(&x->init);
    if (x->on_first)
        x->on_first(x->arg);
}

/* Sends every request the state machine owes. */
static void flush_requests(xds_client_t *x)
{
    if (x->call == NULL)
        return;
    for (;;) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = ads_next_request(x->ads, &buf, &len);
        if (rc <= 0) {
            if (rc < 0)
                log_error("xds: out of memory building a request");
            return;
        }
        rc = grpc_call_send(x->call, buf, len);
        free(buf);
        if (rc < 0) {
            log_warn("xds: cannot send a request: %s", strerror(-rc));
            return;
        }
    }
}

/* Binds listener l's (borrowed, from a trial build) sockets while it is checked, as Envoy binds
 * while it takes a listener and NACKs one that cannot bind: the host keeps them for the install
 * that brings the listener (listener_manager_reserve), so the port cannot be taken in between.
 * One the running config has with the same socket keeps its own. Returns 0, or a negative errno
 * with err saying "cannot bind '<address>': <why>". */
static int check_bind(const host_t *host, const snap_listener_t *l, char *err, size_t errlen)
{
    if (host->ops->reserve_listener)
        return host->ops->reserve_listener(host->ctx, l, err, errlen);
    const snap_listener_t *was = snapshot_find_listener(host_snapshot(host), l->name);
    if (!l->bind_to_port || (was && snapshot_listener_same_socket(was, l)))
        return 0;
    /* A host without reservations: bind once to see, and let go. */
    int fd = -1;
    char why[512];
    int rc = listener_socket_open(l, &fd, why, sizeof(why));
    if (rc < 0) {
        char addr[80];
        snapshot_format_addr((const struct sockaddr *)&l->addr, addr, sizeof(addr));
        snprintf(err, errlen, "cannot bind '%s': %s", addr, strerror(-rc));
        return rc;
    }
    close(fd);
    return 0;
}

/* The ads_validate_fn: does msg (borrowed) translate, alone on top of the bootstrap? What the
 * field rules cannot see (an unknown filter or extension, an LB policy or cluster type Remora
 * lacks, a TLS context it cannot make) is found here, so the resource is NACKed by name instead
 * of taking the whole update down when the set is built. A listener must also be able to bind
 * (check_bind). */
static int validate_resource(void *ctx, const char *type_url, const ProtobufCMessage *msg,
                             char *err, size_t errlen)
{
    xds_client_t *x = ctx;
    config_resources_t one = {0};
    config_resource_list_t *list = strcmp(type_url, ADS_TYPE_LISTENER) == 0   ? &one.listeners
                                   : strcmp(type_url, ADS_TYPE_CLUSTER) == 0  ? &one.clusters
                                   : strcmp(type_url, ADS_TYPE_ROUTE) == 0    ? &one.route_configs
                                   : strcmp(type_url, ADS_TYPE_ENDPOINT) == 0 ? &one.endpoints
                                                                              : &one.secrets;
    /* The trial keeps msg by a holder of its own, borrowed (the trial is dropped before this
     * returns) and validated (the state machine ran the field rules before this hook): the
     * build neither copies it nor runs them again. */
    snap_kept_t *kept = snap_kept_borrow(msg, true);
    if (kept == NULL ||
        config_resources_add_xds(list, (ProtobufCMessage *)msg, "candidate", 0, "") < 0) {
        snap_kept_unref(kept);
        config_resources_free(&one);
        return -ENOMEM;
    }
    list->v[0].kept = kept;
    char e[1024];
    const snapshot_t *cur = host_snapshot(x->host);
    int rc;
    if (list == &one.listeners) {
        snapshot_t *trial = NULL;
        rc = snapshot_trial_dynamic(cur, &one, x->host->stats, &trial, e, sizeof(e));
        if (rc == 0 && trial->n_listeners > 0) /* the candidate is the last listener */
            rc = check_bind(x->host, &trial->listeners[trial->n_listeners - 1], e, sizeof(e));
        snapshot_unref(trial);
    } else {
        rc = snapshot_check_dynamic(cur, &one, x->host->stats, e, sizeof(e));
    }
    config_resources_free(&one);
    snap_kept_unref(kept); /* the trial let go of it */
    if (rc < 0) {
        /* The client names the resource around the error: drop the build's own name for it. */
        const char *why = strncmp(e, "candidate[0]", 12) == 0 ? e + 12 : e;
        while (*why == ':' || *why == ' ' || *why == '.')
            why++;
        snprintf(err, errlen, "%s", why);
    }
    return rc;
}

/* Whether two lists of references (borrowed) name the same resources. */
static bool same_list(const snap_ref_list_t *a, const snap_ref_list_t *b)
{
    if (a->n != b->n)
        return false;
    /* The shared clusters' names are the same strings: compared by pointer first. */
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].name != b->v[i].name && strcmp(a->v[i].name, b->v[i].name) != 0)
            return false;
    return true;
}

/* Subscribes to the route configurations, endpoints and secrets snap (borrowed) references.
 * Nothing to do when they are those subscribed already: snap is the snapshot followed last, or
 * names what the running one names and the running one was followed last (the usual update:
 * an endpoint push changes no reference), which a comparison of the sorted lists tells without
 * looking up every name. */
static int follow_snapshot(xds_client_t *x, const snapshot_t *snap, char *err, size_t errlen)
{
    if (snap->version == x->followed)
        return 0;
    const snapshot_t *cur = host_snapshot(x->host);
    const snap_refs_t *a = &cur->references, *b = &snap->references;
    if (cur->version == x->followed && same_list(&a->route_configs, &b->route_configs) &&
        same_list(&a->endpoints, &b->endpoints) && same_list(&a->secrets, &b->secrets)) {
        x->followed = snap->version;
        return 0;
    }
    int rc = ads_follow_snapshot(x->ads, snap, err, errlen);
    x->followed = rc < 0 ? 0 : snap->version;
    return rc;
}

/* Subscribes to what the running snapshot references, then sends what that owes. */
static void follow_references(xds_client_t *x)
{
    char err[512];
    if (follow_snapshot(x, host_snapshot(x->host), err, sizeof(err)) < 0)
        log_warn("xds: %s", err);
    flush_requests(x);
}

/* How long a resource of type_url asked for by name is waited for: the initial_fetch_timeout
 * of the config source of what references it (the clusters' for endpoints, the listeners' for
 * route configurations and secrets); UINT64_MAX: without end. */
static uint64_t fetch_timeout(const xds_client_t *x, const char *type_url)
{
    const snap_ads_t *ads = &host_snapshot(x->host)->ads;
    uint64_t ms = strcmp(type_url, ADS_TYPE_ENDPOINT) == 0 ? ads->cds_fetch_ms : ads->lds_fetch_ms;
    return ms ? ms : UINT64_MAX;
}

static uint64_t deadline_of(const xds_client_t *x, const char *type_url)
{
    uint64_t ms = fetch_timeout(x, type_url);
    return ms == UINT64_MAX ? UINT64_MAX : uv_now(x->host->loop) + ms;
}

static void waits_free(xds_client_t *x)
{
    for (size_t i = 0; i < x->n_waits; i++)
        free(x->waits[i].name);
    free(x->waits);
    x->waits = NULL;
    x->n_waits = 0;
}

static void on_wait_timeout(uv_timer_t *t);

/* Sets the timer to the earliest deadline of the names still waited for. */
static void arm_waits(xds_client_t *x)
{
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < x->n_waits; i++)
        if (!x->waits[i].absent && x->waits[i].deadline < first)
            first = x->waits[i].deadline;
    if (first == UINT64_MAX) {
        uv_timer_stop(&x->warm);
        return;
    }
    uint64_t now = uv_now(x->host->loop);
    uv_timer_start(&x->warm, on_wait_timeout, first > now ? first - now : 0, 0);
}

/* Brings the waits to what snap (borrowed) references and the set lacks: a name newly missing
 * starts its timer, one no longer missing (it came, or nothing references it) leaves. Both are
 * sorted, so one pass merges them. Returns how many are still awaited (not given up on), or
 * -ENOMEM. */
static int awaited(xds_client_t *x, const snapshot_t *snap)
{
    /* The snapshot's lists, read in place: sorted, each name once. */
    const snap_refs_t *refs = &snap->references;
    const snap_ref_list_t *lists[] = {&refs->route_configs, &refs->endpoints, &refs->secrets};
    size_t missing = 0;
    for (unsigned k = 0; k < 3; k++)
        for (size_t i = 0; i < lists[k]->n; i++)
            missing += lists[k]->v[i].missing;
    if (missing == 0 && x->n_waits == 0) {
        arm_waits(x);
        return 0; /* nothing was missing and nothing is: the usual update */
    }
    int rc = 0;
    xds_wait_t *next = calloc(missing + 1, sizeof(*next));
    if (next == NULL)
        return -ENOMEM;
    size_t n = 0, j = 0;
    int waiting = 0;
    for (unsigned k = 0; k < 3 && rc >= 0; k++) {
        for (size_t i = 0; i < lists[k]->n; i++) {
            const char *name = lists[k]->v[i].name;
            if (!lists[k]->v[i].missing)
                continue;
            while (j < x->n_waits && wait_cmp(x->waits[j].type, x->waits[j].name, k, name) < 0)
                j++;
            if (j < x->n_waits && wait_cmp(x->waits[j].type, x->waits[j].name, k, name) == 0) {
                next[n] = x->waits[j];
                x->waits[j++].name = NULL; /* moved */
            } else if ((next[n].name = strdup(name)) != NULL) {
                next[n].type = k;
                next[n].deadline = deadline_of(x, wait_types[k]);
            } else {
                rc = -ENOMEM;
                break;
            }
            waiting += !next[n++].absent;
        }
    }
    /* What was not moved is no longer missing. Out of memory, the names not reached lose their
     * wait and start a new one next time. */
    waits_free(x);
    x->waits = next;
    x->n_waits = n;
    arm_waits(x);
    return rc < 0 ? rc : waiting;
}

/* Each build allocates about as much as the config holds and frees the last one's: glibc keeps
 * those pages, so without this the resident size grows with every update (85 MiB after 200
 * endpoint pushes at 1,000 clusters, for a 21 MiB config). Once updates have paused for a
 * second, the free pages go back. */
static void on_trim(uv_timer_t *t)
{
    (void)t;
    malloc_trim(0);
}

/* Makes next (reference taken) the running config. */
static void activate(xds_client_t *x, snapshot_t *next)
{
    uv_timer_start(&x->trim, on_trim, TRIM_MS, 0);
    if (x->warming && x->warming != next)
        snapshot_unref(x->warming);
    x->warming = NULL;
    host_install_snapshot(x->host, next);
    follow_references(x);
}

/* Names waited for past their deadline are absent from now on: a config that waits only for
 * them goes in without them (its clusters have no endpoints, its routes answer 404 NR until
 * they arrive). Only while a stream is up: the deadlines start again with the next stream, as
 * the names are asked for again. */
static void on_wait_timeout(uv_timer_t *t)
{
    xds_client_t *x = t->data;
    if (x->call == NULL)
        return;
    uint64_t now = uv_now(x->host->loop);
    for (size_t i = 0; i < x->n_waits; i++) {
        xds_wait_t *w = &x->waits[i];
        const char *type_url = wait_types[w->type];
        if (w->absent || w->deadline > now)
            continue;
        w->absent = true;
        xds_stats_fetch_timeout(x->stats, type_url);
        log_warn("xds: %s '%s' was not received within %llu ms: taken as absent",
                 w->type == 0   ? "route configuration"
                 : w->type == 1 ? "endpoints"
                                : "secret",
                 w->name, (unsigned long long)fetch_timeout(x, type_url));
    }
    arm_waits(x);
    if (x->warming && awaited(x, x->warming) == 0)
        activate(x, x->warming);
    if (!x->first_done && x->warming == NULL && initial_fetch_done(x))
        first_done(x);
}

/* Builds the next snapshot from the bootstrap and the resources held, and installs it at once
 * or, when it references what has been asked for and not received, once that arrives (Envoy's
 * warming: a cluster becomes active with its endpoints, a listener with its routes and secrets;
 * one snapshot, so new clusters are in place before the listeners that use them). */
static void install(xds_client_t *x, const char *type_url)
{
    char err[1024];
    snapshot_t *next = NULL;
    config_resources_t dyn = {0};
    int rc = ads_resources(x->ads, &dyn);
    if (rc == 0)
        rc = snapshot_build_dynamic(host_snapshot(x->host), &dyn, host_resolver(x->host),
                                    x->host->stats, &next, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "out of memory");
    config_resources_free(&dyn);
    if (rc < 0) {
        /* Every resource passed on its own; together they do not make a config. The running
         * one stays. */
        log_warn("xds: the resources received do not make a config, keeping the running one: %s",
                 err);
        xds_stats_build_rejected(x->stats, type_url);
        return;
    }
    if (follow_snapshot(x, next, err, sizeof(err)) < 0)
        log_warn("xds: %s", err);
    if (awaited(x, next) > 0) {
        if (x->warming)
            snapshot_unref(x->warming);
        x->warming = next;
        flush_requests(x); /* the subscriptions it needs */
        return;
    }
    activate(x, next);
}

static void on_message(grpc_call_t *call, const uint8_t *msg, size_t len, void *user)
{
    (void)call;
    xds_client_t *x = user;
    ads_result_t res;
    char err[512];
    int rc = ads_on_response(x->ads, msg, len, now_ms(x), &res, err, sizeof(err));
    if (rc < 0) {
        /* A response that does not decode: the stream cannot go on (Envoy closes it too). */
        log_warn("xds: bad response from the control plane, reconnecting: %s", err);
        grpc_call_cancel(x->call);
        return;
    }
    x->backoff_ms = BACKOFF_BASE_MS; /* a good response: the next failure starts afresh */
    xds_stats_response(x->stats, x->ads, &res, host_snapshot(x->host), x->warming);
    if (res.verdict == ADS_NACKED)
        log_warn("xds: %s rejected: %s", res.type_url ? res.type_url : "?",
                 res.error ? res.error : "");
    bool changed = ads_result_changed(&res);
    const char *type_url = res.type_url; /* static */
    ads_result_free(&res);
    if (changed)
        install(x, type_url);
    flush_requests(x);
    for (size_t i = 0; type_url && i < N_TYPES; i++)
        if (strcmp(type_urls[i], type_url) == 0)
            x->answered[i] = true;
    if (!x->first_done && x->warming == NULL && initial_fetch_done(x))
        first_done(x);
}

static void schedule_retry(xds_client_t *x)
{
    if (x->stopping)
        return;
    uint64_t ceiling = x->backoff_ms;
    x->backoff_ms = x->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : x->backoff_ms * 2;
    uint64_t delay = next_random(x) % (ceiling + 1); /* full jitter */
    log_info("xds: reconnecting to the control plane in %llu ms", (unsigned long long)delay);
    uv_timer_start(&x->retry, on_retry, delay, 0);
}

/* The connection is gone (its calls have ended): release it and count it down. */
static void drop_conn(xds_client_t *x)
{
    if (x->conn == NULL)
        return;
    grpc_conn_close(x->conn);
    x->conn = NULL;
    if (x->up) {
        x->up = false;
        xds_stats_connected(x->stats, false);
    }
}

static void on_close(grpc_call_t *call, int code, const char *message, void *user)
{
    (void)call;
    xds_client_t *x = user;
    x->call = NULL;
    if (x->stopping)
        return;
    log_warn("xds: the ADS stream ended: %s%s%s", grpc_code_name(code), message[0] ? ": " : "",
             message);
    xds_stats_stream_failed(x->stats, x->ads);
    drop_conn(x);
    schedule_retry(x);
}

static const grpc_call_ops_t call_ops = {.on_message = on_message, .on_close = on_close};

static void on_state(grpc_conn_t *c, grpc_conn_state_t state, int error, void *user)
{
    xds_client_t *x = user;
    if (c != x->conn)
        return;
    if (state == GRPC_CONN_READY) {
        log_info("xds: connected to the control plane");
        x->up = true;
        xds_stats_connected(x->stats, true);
        return;
    }
    if (state != GRPC_CONN_CLOSED || x->call != NULL)
        return; /* a call still running reports the end itself */
    log_warn("xds: the connection to the control plane closed: %s",
             error ? uv_strerror(error) : "after GOAWAY");
    drop_conn(x);
    schedule_retry(x);
}

static void xds_connect(xds_client_t *x)
{
    const snapshot_t *snap = host_snapshot(x->host);
    const snap_cluster_t *c = snapshot_find_cluster(snap, snap->ads.cluster);
    if (c == NULL || c->n_endpoints == 0) {
        log_warn("xds: the ADS cluster '%s' has no endpoint yet", snap->ads.cluster);
        schedule_retry(x);
        return;
    }
    /* The control plane is verified as any TLS upstream is: trust bundle, SANs, SNI. */
    grpc_conn_opts_t o = {
        .authority = snap->ads.authority ? snap->ads.authority : snap->ads.cluster,
        .user_agent = "remora",
        .tls = c->tls ? c->tls->engine : NULL,
        .sni = c->tls ? c->tls->sni : NULL,
        .peer = c->tls ? c->tls->peer_ids : NULL,
        .n_peer = c->tls ? c->tls->n_peer_ids : 0,
        .connect_timeout_ms = (uint32_t)c->connect_timeout_ms,
        .keepalive_interval_ms =
            c->h2_keepalive_interval_ms ? (uint32_t)c->h2_keepalive_interval_ms : KEEPALIVE_MS,
        .keepalive_timeout_ms =
            c->h2_keepalive_timeout_ms ? (uint32_t)c->h2_keepalive_timeout_ms : KEEPALIVE_WAIT_MS,
        .on_state = on_state,
        .user = x,
    };
    int rc =
        grpc_conn_new(x->host->loop, (const struct sockaddr *)&c->endpoints[0].addr, &o, &x->conn);
    if (rc < 0) {
        x->conn = NULL;
        log_warn("xds: cannot connect to %s: %s", c->endpoints[0].label, strerror(-rc));
        schedule_retry(x);
        return;
    }
    grpc_call_opts_t co = {.path = ads_method(x->ads)};
    if (grpc_call_start(x->conn, &co, &call_ops, x, &x->call) < 0) {
        x->call = NULL;
        log_warn("xds: cannot start the ADS stream");
        drop_conn(x);
        schedule_retry(x);
        return;
    }
    ads_reconnected(x->ads);
    /* Every name is asked for again on this stream: the wait for the ones still missing starts
     * again. */
    for (size_t i = 0; i < x->n_waits; i++)
        if (!x->waits[i].absent)
            x->waits[i].deadline = deadline_of(x, wait_types[x->waits[i].type]);
    arm_waits(x);
    flush_requests(x);
}

static void on_retry(uv_timer_t *t)
{
    xds_connect(t->data);
}

/* How long the first config is waited for: the longer of lds_config's and cds_config's
 * initial_fetch_timeout, 0 when either waits without end. */
static uint64_t initial_fetch_ms(const snap_ads_t *ads)
{
    if (ads->lds_fetch_ms == 0 || ads->cds_fetch_ms == 0)
        return 0;
    return ads->lds_fetch_ms > ads->cds_fetch_ms ? ads->lds_fetch_ms : ads->cds_fetch_ms;
}

static void on_init_timeout(uv_timer_t *t)
{
    xds_client_t *x = t->data;
    log_warn("xds: no complete config from the control plane within %llu ms; starting with what "
             "is there",
             (unsigned long long)initial_fetch_ms(&host_snapshot(x->host)->ads));
    /* What it still waits for keeps its own timer, and is applied when it comes. */
    if (x->warming)
        activate(x, x->warming);
    first_done(x);
}

void xds_client_text_readouts(const xds_client_t *x,
                              void (*fn)(void *arg, const char *name, const char *value), void *arg)
{
    xds_stats_text_readouts(x->stats, fn, arg);
}

int xds_client_start(const host_t *host, void (*on_first)(void *arg), void *arg, xds_client_t **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    const snapshot_t *snap = host_snapshot(host);
    if (!snap->ads.enabled)
        return 0;
    xds_client_t *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->host = host;
    x->on_first = on_first;
    x->arg = arg;
    x->backoff_ms = BACKOFF_BASE_MS;
    x->rng = (uint64_t)uv_hrtime() | 1;
    int rc = xds_stats_new(host->stats, host->slots, &x->stats);
    if (rc == 0)
        rc = ads_client_new(snap, REMORA_VERSION, validate_resource, x, &x->ads, err, errlen);
    x->followed = snap->version; /* ads_client_new subscribed what it references */
    if (rc < 0) {
        if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory");
        xds_stats_free(x->stats);
        free(x);
        return rc;
    }
    uv_timer_init(host->loop, &x->retry);
    uv_timer_init(host->loop, &x->init);
    uv_timer_init(host->loop, &x->warm);
    uv_timer_init(host->loop, &x->trim);
    x->retry.data = x->init.data = x->warm.data = x->trim.data = x;
    uint64_t init_ms = initial_fetch_ms(&snap->ads);
    if (init_ms)
        uv_timer_start(&x->init, on_init_timeout, init_ms, 0);
    log_info("xds: ADS (%s) to cluster '%s'", snap->ads.delta ? "delta" : "state of the world",
             snap->ads.cluster);
    xds_connect(x);
    *out = x;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    xds_client_t *x = h->data;
    if (--x->closing_handles == 0) {
        ads_free(x->ads);
        waits_free(x);
        xds_stats_free(x->stats);
        free(x);
    }
}

void xds_client_stop(xds_client_t *x)
{
    if (x == NULL)
        return;
    x->stopping = true;
    if (x->call)
        grpc_call_cancel(x->call);
    x->call = NULL;
    drop_conn(x); /* its calls end CANCELLED inside; on_close sees stopping */
    if (x->warming)
        snapshot_unref(x->warming);
    x->warming = NULL;
    x->closing_handles = 4;
    uv_close((uv_handle_t *)&x->retry, on_timer_closed);
    uv_close((uv_handle_t *)&x->init, on_timer_closed);
    uv_close((uv_handle_t *)&x->warm, on_timer_closed);
    uv_close((uv_handle_t *)&x->trim, on_timer_closed);
}

/* ---- /config_dump ------------------------------------------------------------------------ */

/* Where each type's resources are in Envoy's config dump, and how an entry names its resource. */
static const struct {
    const char *type_url;
    const char
        *dump_type;    /* the config dump message, after "type.googleapis.com/envoy.admin.v3." */
    const char *list;  /* its list of dynamic resources */
    const char *inner; /* the entry's field that holds the resource (NULL: the entry itself) */
    const char *name;  /* the resource's field that names it */
} dump_places[] = {
    {ADS_TYPE_CLUSTER, "ClustersConfigDump", "dynamic_active_clusters", "cluster", "name"},
    {ADS_TYPE_LISTENER, "ListenersConfigDump", "dynamic_listeners", NULL, "name"},
    {ADS_TYPE_ROUTE, "RoutesConfigDump", "dynamic_route_configs", "route_config", "name"},
    {ADS_TYPE_ENDPOINT, "EndpointsConfigDump", "dynamic_endpoint_configs", "endpoint_config",
     "cluster_name"},
    {ADS_TYPE_SECRET, "SecretsConfigDump", "dynamic_active_secrets", NULL, "name"},
};

/* RFC 3339 UTC text of ms (milliseconds since the epoch) into buf. */
static void timestamp(uint64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03uZ", (unsigned)(ms % 1000));
}

/* The config dump section (borrowed from root) whose @type ends in dump_type, made when there is
 * none. */
static json_t *dump_section(json_t *root, const char *dump_type)
{
    json_t *configs = json_object_get(root, "configs"), *c;
    size_t i;
    json_array_foreach(configs, i, c)
    {
        const char *t = json_string_value(json_object_get(c, "@type"));
        if (t && strlen(t) >= strlen(dump_type) &&
            strcmp(t + strlen(t) - strlen(dump_type), dump_type) == 0)
            return c;
    }
    char type[160];
    snprintf(type, sizeof(type), "type.googleapis.com/envoy.admin.v3.%s", dump_type);
    c = json_pack("{s:s}", "@type", type);
    json_array_append_new(configs, c);
    return c;
}

/* The entry of list (borrowed) for resource `name`, or NULL. */
static json_t *dump_entry(json_t *list, size_t p, const char *name)
{
    json_t *e;
    size_t i;
    json_array_foreach(list, i, e)
    {
        json_t *state = json_object_get(e, "active_state"); /* listeners */
        json_t *res = state                  ? json_object_get(state, "listener")
                      : dump_places[p].inner ? json_object_get(e, dump_places[p].inner)
                                             : e;
        const char *n = json_string_value(json_object_get(res, dump_places[p].name));
        if (n == NULL)
            n = json_string_value(json_object_get(e, "name"));
        if (n && strcmp(n, name) == 0)
            return e;
    }
    return NULL;
}

/* Puts what the client knows of info (borrowed) on its entry in section (borrowed). */
static void annotate(json_t *section, size_t p, const ads_resource_info_t *info)
{
    json_t *list = json_object_get(section, dump_places[p].list);
    if (list == NULL) {
        list = json_array();
        json_object_set_new(section, dump_places[p].list, list);
    }
    json_t *e = dump_entry(list, p, info->name);
    char when[48];
    if (e && info->msg && info->updated_ms) {
        json_t *state = json_object_get(e, "active_state");
        timestamp(info->updated_ms, when, sizeof(when));
        json_object_set_new(state ? state : e, "last_updated", json_string(when));
    }
    if (info->error == NULL)
        return;
    if (e == NULL) { /* rejected, and no good version of it is running */
        e = json_pack("{s:s}", "name", info->name);
        json_array_append_new(list, e);
    }
    timestamp(info->error_ms, when, sizeof(when));
    json_object_set_new(e, "error_state",
                        json_pack("{s:s, s:s, s:s}", "last_update_attempt", when, "details",
                                  info->error, "version_info",
                                  info->error_version ? info->error_version : ""));
}

char *xds_client_config_dump(const xds_client_t *x, const snapshot_t *snap)
{
    char *text = snapshot_config_dump(snap);
    json_t *root = text ? json_loads(text, 0, NULL) : NULL;
    if (root == NULL)
        return text;
    for (size_t p = 0; p < sizeof(dump_places) / sizeof(dump_places[0]); p++) {
        ads_resource_info_t *info = NULL;
        size_t n = 0;
        if (ads_dump(x->ads, dump_places[p].type_url, &info, &n) < 0)
            continue;
        json_t *section = NULL;
        for (size_t i = 0; i < n; i++) {
            if (info[i].error == NULL && !(info[i].msg && info[i].updated_ms))
                continue;
            if (section == NULL)
                section = dump_section(root, dump_places[p].dump_type);
            annotate(section, p, &info[i]);
        }
        free(info);
    }
    char *out = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (out == NULL)
        return text;
    free(text);
    return out;
}
