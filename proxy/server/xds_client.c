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

#include "base/version.h"
#include "proxy/core/log.h"
#include "proxy/grpc/grpc_client.h"
#include "xds/ads/ads.h"
#include "xds/ads/ads_config.h"

#define BACKOFF_BASE_MS   500 /* Envoy's: 500 ms doubling up to 30 s, with full jitter */
#define BACKOFF_MAX_MS    30000
#define INITIAL_FETCH_MS  15000 /* Envoy's initial_fetch_timeout default */
#define WARMING_MS        15000 /* how long a config waits for what it references */
#define TRIM_MS           1000  /* after the last install, freed heap goes back to the system */
#define KEEPALIVE_MS      30000
#define KEEPALIVE_WAIT_MS 20000

/* Envoy's names where Envoy has one (listener_manager.lds.*, cluster_manager.cds.*); the other
 * types count under xds.<type>. */
typedef struct type_stats {
    const char *type_url;
    const char *scope;
    stat_id_t attempt, success, rejected, failure;
    bool answered; /* a response of the type arrived (for the initial fetch) */
} type_stats_t;

struct xds_client {
    const host_t *host;
    ads_t *ads;
    grpc_conn_t *conn;
    grpc_call_t *call;
    uv_timer_t retry; /* reconnect after backoff */
    uv_timer_t init;  /* the initial fetch timeout */
    uv_timer_t warm;  /* how long `warming` may wait */
    uv_timer_t trim;  /* a second after the last install: give freed memory back */
    /* A config built and not installed yet: it references route configurations, endpoints or
     * secrets asked for and not received (Envoy's warming). NULL: none waits. */
    snapshot_t *warming;
    snap_refs_t absent;  /* names given up on: waited for WARMING_MS, never came */
    uint64_t backoff_ms; /* the next backoff's ceiling */
    uint64_t rng;
    void (*on_first)(void *arg);
    void *arg;
    bool first_done; /* on_first was called */
    bool stopping;
    bool up;             /* the connection reached READY (counted in connected) */
    int closing_handles; /* timers not yet closed */
    stat_id_t connected; /* control_plane.connected_state */
    type_stats_t types[5];
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

static type_stats_t *stats_of(xds_client_t *x, const char *type_url)
{
    for (size_t i = 0; i < sizeof(x->types) / sizeof(x->types[0]); i++)
        if (type_url && strcmp(x->types[i].type_url, type_url) == 0)
            return &x->types[i];
    return NULL;
}

/* Every type subscribed has had its first response (the ones subscribed because of what those
 * brought, route configurations and endpoints, included): Envoy's warming, for the first config. */
static bool initial_fetch_done(xds_client_t *x)
{
    for (size_t i = 0; i < sizeof(x->types) / sizeof(x->types[0]); i++) {
        ads_type_status_t st;
        if (ads_type_status(x->ads, x->types[i].type_url, &st) == 0 && st.subscribed &&
            (st.wildcard || st.names > 0) && !x->types[i].answered)
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

/* The ads_validate_fn: does msg (borrowed) translate, alone on top of the bootstrap? What the
 * field rules cannot see (an unknown filter or extension, an LB policy or cluster type Remora
 * lacks, a TLS context it cannot make) is found here, so the resource is NACKed by name instead
 * of taking the whole update down when the set is built. */
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
    if (config_resources_add_xds(list, (ProtobufCMessage *)msg, "candidate", 0, "") < 0)
        return -ENOMEM;
    char e[1024];
    int rc = snapshot_check_dynamic(host_snapshot(x->host), &one, x->host->stats, e, sizeof(e));
    config_resources_free(&one);
    if (rc < 0) {
        /* The client names the resource around the error: drop the build's own name for it. */
        const char *why = strncmp(e, "candidate[0]", 12) == 0 ? e + 12 : e;
        while (*why == ':' || *why == ' ' || *why == '.')
            why++;
        snprintf(err, errlen, "%s", why);
    }
    return rc;
}

/* Subscribes to what the running snapshot references, then sends what that owes. */
static void follow_references(xds_client_t *x)
{
    char err[512];
    if (ads_follow_snapshot(x->ads, host_snapshot(x->host), err, sizeof(err)) < 0)
        log_warn("xds: %s", err);
    flush_requests(x);
}

/* Whether `name` is in list (borrowed), which is sorted. */
static bool listed(const snap_ref_list_t *list, const char *name)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->v[i].name, name) == 0)
            return true;
    return false;
}

/* How many names snap (borrowed) references that the set lacks and that are still awaited (not
 * given up on). -ENOMEM when out of memory. */
static int awaited(const xds_client_t *x, const snapshot_t *snap)
{
    snap_refs_t refs;
    int rc = snapshot_references(snap, &refs);
    if (rc <= 0) {
        if (rc == 0)
            snapshot_refs_free(&refs);
        return rc;
    }
    const snap_ref_list_t *have[] = {&refs.route_configs, &refs.endpoints, &refs.secrets};
    const snap_ref_list_t *gone[] = {&x->absent.route_configs, &x->absent.endpoints,
                                     &x->absent.secrets};
    int n = 0;
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 0; i < have[k]->n; i++)
            n += have[k]->v[i].missing && !listed(gone[k], have[k]->v[i].name);
    snapshot_refs_free(&refs);
    return n;
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
    uv_timer_stop(&x->warm);
    if (x->warming && x->warming != next)
        snapshot_unref(x->warming);
    x->warming = NULL;
    host_install_snapshot(x->host, next);
    follow_references(x);
}

/* A config waited WARMING_MS for what it references: it goes in without it (its clusters have
 * no endpoints, its routes answer 404 NR until the names arrive), and the names still missing
 * are not waited for again. */
static void on_warm_timeout(uv_timer_t *t)
{
    xds_client_t *x = t->data;
    snapshot_t *next = x->warming;
    if (next == NULL)
        return;
    snapshot_refs_free(&x->absent);
    if (snapshot_references(next, &x->absent) < 0)
        memset(&x->absent, 0, sizeof(x->absent));
    log_warn("xds: a config waited %d s for resources it references; installing it without them",
             WARMING_MS / 1000);
    activate(x, next);
}

/* Builds the next snapshot from the bootstrap and the resources held, and installs it at once
 * or, when it references what has been asked for and not received, once that arrives (Envoy's
 * warming: a cluster becomes active with its endpoints, a listener with its routes and secrets;
 * one snapshot, so new clusters are in place before the listeners that use them). */
static void install(xds_client_t *x, type_stats_t *ts)
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
        if (ts)
            stats_inc(x->host->slots, ts->rejected);
        return;
    }
    if (ads_follow_snapshot(x->ads, next, err, sizeof(err)) < 0)
        log_warn("xds: %s", err);
    if (awaited(x, next) > 0) {
        if (x->warming)
            snapshot_unref(x->warming);
        x->warming = next;
        if (!uv_is_active((uv_handle_t *)&x->warm))
            uv_timer_start(&x->warm, on_warm_timeout, WARMING_MS, 0);
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
    type_stats_t *ts = stats_of(x, res.type_url);
    if (ts) {
        stats_inc(x->host->slots, ts->attempt);
        stats_inc(x->host->slots, res.verdict == ADS_NACKED ? ts->rejected : ts->success);
    }
    if (res.verdict == ADS_NACKED)
        log_warn("xds: %s rejected: %s", res.type_url ? res.type_url : "?",
                 res.error ? res.error : "");
    bool changed = ads_result_changed(&res);
    ads_result_free(&res);
    if (changed)
        install(x, ts);
    flush_requests(x);
    if (ts)
        ts->answered = true;
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
        stats_add(x->host->slots, x->connected, -1);
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
    for (size_t i = 0; i < sizeof(x->types) / sizeof(x->types[0]); i++) {
        ads_type_status_t st;
        if (ads_type_status(x->ads, x->types[i].type_url, &st) == 0 && st.subscribed)
            stats_inc(x->host->slots, x->types[i].failure);
    }
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
        stats_add(x->host->slots, x->connected, 1);
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
    flush_requests(x);
}

static void on_retry(uv_timer_t *t)
{
    xds_connect(t->data);
}

static void on_init_timeout(uv_timer_t *t)
{
    xds_client_t *x = t->data;
    log_warn("xds: no complete config from the control plane within %d s; starting with what "
             "is there",
             INITIAL_FETCH_MS / 1000);
    if (x->warming)
        on_warm_timeout(&x->warm);
    first_done(x);
}

static const struct {
    const char *type_url;
    const char *scope;
} type_scopes[] = {
    {ADS_TYPE_LISTENER, "listener_manager.lds"},
    {ADS_TYPE_CLUSTER, "cluster_manager.cds"},
    {ADS_TYPE_ROUTE, "xds.rds"},
    {ADS_TYPE_ENDPOINT, "xds.eds"},
    {ADS_TYPE_SECRET, "xds.sds"},
};

static int define_stats(xds_client_t *x)
{
    stats_store_t *st = x->host->stats;
    int64_t id = stats_define(st, STAT_GAUGE, "control_plane", NULL, NULL, "connected_state");
    if (id < 0)
        return (int)id;
    x->connected = (stat_id_t)id;
    for (size_t i = 0; i < sizeof(type_scopes) / sizeof(type_scopes[0]); i++) {
        type_stats_t *t = &x->types[i];
        t->type_url = type_scopes[i].type_url;
        t->scope = type_scopes[i].scope;
        struct {
            stat_id_t *id;
            const char *name;
        } m[] = {{&t->attempt, "update_attempt"},
                 {&t->success, "update_success"},
                 {&t->rejected, "update_rejected"},
                 {&t->failure, "update_failure"}};
        for (size_t j = 0; j < sizeof(m) / sizeof(m[0]); j++) {
            id = stats_define(st, STAT_COUNTER, t->scope, NULL, NULL, m[j].name);
            if (id < 0)
                return (int)id;
            *m[j].id = (stat_id_t)id;
        }
    }
    return 0;
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
    int rc = define_stats(x);
    if (rc == 0)
        rc = ads_client_new(snap, REMORA_VERSION, validate_resource, x, &x->ads, err, errlen);
    if (rc < 0) {
        if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory");
        free(x);
        return rc;
    }
    uv_timer_init(host->loop, &x->retry);
    uv_timer_init(host->loop, &x->init);
    uv_timer_init(host->loop, &x->warm);
    uv_timer_init(host->loop, &x->trim);
    x->retry.data = x->init.data = x->warm.data = x->trim.data = x;
    uv_timer_start(&x->init, on_init_timeout, INITIAL_FETCH_MS, 0);
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
        snapshot_refs_free(&x->absent);
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
