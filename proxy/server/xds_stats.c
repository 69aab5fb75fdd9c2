/* The xDS client's counters, gauges and text readouts under Envoy's names. Per-resource stats
 * are defined when a resource is first counted (stats_define finds the ones defined already:
 * an EDS cluster's update_attempt and update_success are the ones DNS clusters count). */
#include "proxy/server/xds_stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/ads/ads_rds_prefix.h"

/* Envoy's names where Envoy has one (listener_manager.lds.*, cluster_manager.cds.*); the other
 * types count under xds.<type>, besides their per-resource stats. */
static const struct {
    const char *type_url;
    const char *scope;
    bool version; /* a version gauge and a version_text readout (Envoy: CDS and LDS) */
} type_scopes[] = {
    {ADS_TYPE_LISTENER, "listener_manager.lds", true},
    {ADS_TYPE_CLUSTER, "cluster_manager.cds", true},
    {ADS_TYPE_ROUTE, "xds.rds", false},
    {ADS_TYPE_ENDPOINT, "xds.eds", false},
    {ADS_TYPE_SECRET, "xds.sds", false},
};
#define N_TYPES (sizeof(type_scopes) / sizeof(type_scopes[0]))

typedef struct type_stats {
    stat_id_t attempt, success, rejected, failure, fetch_timeout, version;
    char *version_text; /* the last accepted version (owned), or NULL before the first */
} type_stats_t;

/* The stat_prefix of the connection manager that takes a route configuration. */
typedef struct rds_prefix {
    char *name, *prefix;
    struct rds_prefix *next;
} rds_prefix_t;

struct xds_stats {
    stats_store_t *store;
    stats_slots_t *slots;
    stat_id_t connected, rate_limit_enforced, pending_requests;
    type_stats_t types[N_TYPES];
    rds_prefix_t *prefixes;
};

static int type_index(const char *type_url)
{
    for (size_t i = 0; type_url && i < N_TYPES; i++)
        if (strcmp(type_scopes[i].type_url, type_url) == 0)
            return (int)i;
    return -1;
}

static void set_gauge(xds_stats_t *s, stat_id_t id, int64_t value)
{
    stats_add(s->slots, id, value - stats_value(s->store, id));
}

/* Envoy's version gauges hold a hash of the version text: FNV-1a, kept positive. */
static int64_t version_hash(const char *text)
{
    return (int64_t)(stats_key_bytes(STATS_KEY_INIT, text, strlen(text)) & INT64_MAX);
}

int xds_stats_new(stats_store_t *store, stats_slots_t *slots, xds_stats_t **out)
{
    *out = NULL;
    xds_stats_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->store = store;
    s->slots = slots;
    /* Envoy counts requests its rate limit (ApiConfigSource.rate_limit_settings) held back;
     * Remora has no such limit, so both stay 0. */
    struct {
        stat_id_t *id;
        stat_kind_t kind;
        const char *metric;
    } cp[] = {{&s->connected, STAT_GAUGE, "connected_state"},
              {&s->rate_limit_enforced, STAT_COUNTER, "rate_limit_enforced"},
              {&s->pending_requests, STAT_GAUGE, "pending_requests"}};
    for (size_t i = 0; i < sizeof(cp) / sizeof(cp[0]); i++) {
        int64_t id = stats_define(store, cp[i].kind, "control_plane", NULL, NULL, cp[i].metric);
        if (id < 0) {
            free(s);
            return (int)id;
        }
        *cp[i].id = (stat_id_t)id;
    }
    for (size_t i = 0; i < N_TYPES; i++) {
        type_stats_t *t = &s->types[i];
        struct {
            stat_id_t *id;
            stat_kind_t kind;
            const char *metric;
        } m[] = {{&t->attempt, STAT_COUNTER, "update_attempt"},
                 {&t->success, STAT_COUNTER, "update_success"},
                 {&t->rejected, STAT_COUNTER, "update_rejected"},
                 {&t->failure, STAT_COUNTER, "update_failure"},
                 {&t->fetch_timeout, STAT_COUNTER, "init_fetch_timeout"},
                 {&t->version, STAT_GAUGE, "version"}};
        size_t n = sizeof(m) / sizeof(m[0]) - (type_scopes[i].version ? 0 : 1);
        for (size_t j = 0; j < n; j++) {
            int64_t id =
                stats_define(store, m[j].kind, type_scopes[i].scope, NULL, NULL, m[j].metric);
            if (id < 0) {
                free(s);
                return (int)id;
            }
            *m[j].id = (stat_id_t)id;
        }
    }
    *out = s;
    return 0;
}

void xds_stats_free(xds_stats_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < N_TYPES; i++)
        free(s->types[i].version_text);
    while (s->prefixes) {
        rds_prefix_t *p = s->prefixes;
        s->prefixes = p->next;
        free(p->name);
        free(p->prefix);
        free(p);
    }
    free(s);
}

void xds_stats_connected(xds_stats_t *s, bool up)
{
    stats_add(s->slots, s->connected, up ? 1 : -1);
}

void xds_stats_stream_failed(xds_stats_t *s, const ads_t *a)
{
    for (size_t i = 0; i < N_TYPES; i++) {
        ads_type_status_t st;
        if (ads_type_status(a, type_scopes[i].type_url, &st) == 0 && st.subscribed)
            stats_inc(s->slots, s->types[i].failure);
    }
}

void xds_stats_build_rejected(xds_stats_t *s, const char *type_url)
{
    int t = type_index(type_url);
    if (t >= 0)
        stats_inc(s->slots, s->types[t].rejected);
}

void xds_stats_fetch_timeout(xds_stats_t *s, const char *type_url)
{
    int t = type_index(type_url);
    if (t >= 0)
        stats_inc(s->slots, s->types[t].fetch_timeout);
}

/* ---- per resource ---------------------------------------------------------------------------- */

/* What happened to one resource of a response. */
typedef enum { RES_CHANGED, RES_REJECTED, RES_REMOVED } res_event_t;

/* The stat_prefix of the connection manager that takes route configuration `name` (borrowed
 * from s), found once; NULL when none does (yet) or out of memory. */
static const char *rds_prefix(xds_stats_t *s, const ads_t *a, const snapshot_t *snap,
                              const char *name)
{
    for (rds_prefix_t *p = s->prefixes; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            return p->prefix;
    char *prefix = NULL;
    if (ads_rds_stat_prefix(a, snap, name, &prefix) <= 0)
        return NULL;
    rds_prefix_t *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->name = strdup(name)) == NULL) {
        free(p);
        free(prefix);
        return NULL;
    }
    p->prefix = prefix;
    p->next = s->prefixes;
    s->prefixes = p;
    return prefix;
}

/* The stat `metric` of one resource: http.<prefix>.rds.<name>.<metric>, cluster.<name>.<metric>
 * or sds.<name>.<metric>. Returns the id or a negative error. */
static int64_t resource_stat(xds_stats_t *s, int t, const char *owner, const char *name,
                             stat_kind_t kind, const char *metric)
{
    if (strcmp(type_scopes[t].type_url, ADS_TYPE_ROUTE) == 0) {
        char text[1024], family[128];
        snprintf(text, sizeof(text), "http.%s.rds.%s.%s", owner, name, metric);
        snprintf(family, sizeof(family), "envoy_http_rds_%s", metric);
        const stats_tag_t tags[] = {{"envoy_http_conn_manager_prefix", owner},
                                    {"envoy_rds_route_config", name}};
        return stats_define_tagged(s->store, kind, family, text, tags, 2);
    }
    if (strcmp(type_scopes[t].type_url, ADS_TYPE_ENDPOINT) == 0)
        return stats_define(s->store, kind, "cluster", "envoy_cluster_name", owner, metric);
    return stats_define(s->store, kind, "sds", "envoy_sds_secret", name, metric);
}

static void resource_inc(xds_stats_t *s, int t, const char *owner, const char *name,
                         const char *metric)
{
    int64_t id = resource_stat(s, t, owner, name, STAT_COUNTER, metric);
    if (id >= 0)
        stats_inc(s->slots, (stat_id_t)id);
}

/* Counts what ev did to resource `name` whose stats belong to owner (the connection manager's
 * prefix, the cluster's stat name, or the secret's name). */
static void count_resource(xds_stats_t *s, const ads_t *a, int t, const char *owner,
                           const char *name, res_event_t ev)
{
    bool secret = strcmp(type_scopes[t].type_url, ADS_TYPE_SECRET) == 0;
    if (!secret)
        resource_inc(s, t, owner, name, "update_attempt");
    switch (ev) {
    case RES_CHANGED: {
        resource_inc(s, t, owner, name, "update_success");
        if (strcmp(type_scopes[t].type_url, ADS_TYPE_ROUTE) == 0)
            resource_inc(s, t, owner, name, "config_reload");
        ads_resource_info_t info;
        if (!secret && ads_find(a, type_scopes[t].type_url, name, &info) == 0 && info.version) {
            int64_t id = resource_stat(s, t, owner, name, STAT_GAUGE, "version");
            if (id >= 0)
                set_gauge(s, (stat_id_t)id, version_hash(info.version));
        }
        break;
    }
    case RES_REJECTED:
        resource_inc(s, t, owner, name, "update_rejected");
        break;
    case RES_REMOVED:
        if (!secret)
            resource_inc(s, t, owner, name, "update_empty");
        break;
    }
}

/* The EDS clusters of a config sorted by the endpoints they take, so that a push of n endpoints
 * finds its clusters in n log n, not n times the clusters. */
typedef struct eds_index {
    const snap_cluster_t **v;
    size_t n;
} eds_index_t;

static int by_service(const void *a, const void *b)
{
    const snap_cluster_t *x = *(const snap_cluster_t *const *)a;
    const snap_cluster_t *y = *(const snap_cluster_t *const *)b;
    return strcmp(x->eds_service, y->eds_service);
}

/* The index of snap's (borrowed; NULL: none) EDS clusters; empty when out of memory. */
static eds_index_t eds_index(const snapshot_t *snap)
{
    eds_index_t ix = {0};
    if (snap == NULL || snap->n_clusters == 0 ||
        (ix.v = malloc(snap->n_clusters * sizeof(*ix.v))) == NULL)
        return ix;
    bool sorted = true;
    for (size_t i = 0; i < snap->n_clusters; i++) {
        if (snap->clusters[i].eds_service == NULL)
            continue;
        ix.v[ix.n++] = &snap->clusters[i];
        sorted = sorted && (ix.n == 1 || by_service(&ix.v[ix.n - 2], &ix.v[ix.n - 1]) <= 0);
    }
    /* Clusters from xDS come sorted by name, and most take the endpoints of their own name. */
    if (!sorted)
        qsort(ix.v, ix.n, sizeof(*ix.v), by_service);
    return ix;
}

/* Counts ev for each cluster of ix whose endpoints are `name`; returns how many there were. A
 * config whose EDS clusters all take their own name's endpoints (snap, borrowed; no index then)
 * has one: found by name. */
static int count_eds_clusters(xds_stats_t *s, const ads_t *a, int t, const eds_index_t *ix,
                              const snapshot_t *snap, const char *name, res_event_t ev)
{
    if (ix->v == NULL && snap && snap->eds_own_names) {
        const snap_cluster_t *c = snapshot_eds_cluster(snap, name);
        if (c)
            count_resource(s, a, t, c->stat_name, name, ev);
        return c != NULL;
    }
    size_t lo = 0, hi = ix->n;
    while (lo < hi) { /* the first cluster whose service is not below name */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(ix->v[mid]->eds_service, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    int n = 0;
    for (; lo < ix->n && strcmp(ix->v[lo]->eds_service, name) == 0; lo++, n++)
        count_resource(s, a, t, ix->v[lo]->stat_name, name, ev);
    return n;
}

static void count_names(xds_stats_t *s, const ads_t *a, int t, const ads_names_t *names,
                        res_event_t ev, const snapshot_t *running, const snapshot_t *eds_snap,
                        const eds_index_t *ix)
{
    const char *type_url = type_scopes[t].type_url;
    for (size_t i = 0; i < names->n; i++) {
        const char *name = names->v[i];
        if (strcmp(type_url, ADS_TYPE_ENDPOINT) == 0) {
            if (count_eds_clusters(s, a, t, ix, eds_snap, name, ev) == 0)
                count_resource(s, a, t, name, name, ev); /* most often the cluster's name */
        } else if (strcmp(type_url, ADS_TYPE_ROUTE) == 0) {
            const char *prefix = rds_prefix(s, a, running, name);
            if (prefix)
                count_resource(s, a, t, prefix, name, ev);
        } else {
            count_resource(s, a, t, name, name, ev);
        }
    }
}

void xds_stats_response(xds_stats_t *s, const ads_t *a, const ads_result_t *res,
                        const snapshot_t *running, const snapshot_t *warming)
{
    int t = type_index(res->type_url);
    if (t < 0 || res->verdict == ADS_IGNORED)
        return;
    type_stats_t *ts = &s->types[t];
    stats_inc(s->slots, ts->attempt);
    stats_inc(s->slots, res->verdict == ADS_NACKED ? ts->rejected : ts->success);
    ads_type_status_t st;
    if (type_scopes[t].version && ads_type_status(a, res->type_url, &st) == 0 && st.version_info) {
        if (ts->version_text == NULL || strcmp(ts->version_text, st.version_info) != 0) {
            char *text = strdup(st.version_info);
            if (text) {
                free(ts->version_text);
                ts->version_text = text;
            }
        }
        set_gauge(s, ts->version, version_hash(st.version_info));
    }
    if (type_scopes[t].version)
        return; /* listeners and clusters have their own stats in the listener and cluster */
    /* Endpoints count under the clusters that take them: the warming config's when one waits
     * (a cluster warming for these very endpoints is only there), else the running one's. */
    const snapshot_t *eds_snap = warming ? warming : running;
    eds_index_t ix = {0};
    if (strcmp(res->type_url, ADS_TYPE_ENDPOINT) == 0 && !(eds_snap && eds_snap->eds_own_names))
        ix = eds_index(eds_snap);
    count_names(s, a, t, &res->added, RES_CHANGED, running, eds_snap, &ix);
    count_names(s, a, t, &res->updated, RES_CHANGED, running, eds_snap, &ix);
    count_names(s, a, t, &res->rejected, RES_REJECTED, running, eds_snap, &ix);
    count_names(s, a, t, &res->removed, RES_REMOVED, running, eds_snap, &ix);
    free(ix.v);
}

void xds_stats_text_readouts(const xds_stats_t *s,
                             void (*fn)(void *arg, const char *name, const char *value), void *arg)
{
    /* type_scopes' versioned types, sorted by name: cluster_manager before listener_manager. */
    static const size_t order[] = {1, 0};
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        const type_stats_t *t = &s->types[order[k]];
        char name[96];
        snprintf(name, sizeof(name), "%s.version_text", type_scopes[order[k]].scope);
        fn(arg, name, t->version_text ? t->version_text : "");
    }
}
