/* Certificate facts for the admin endpoint: walks the distinct TLS contexts of a snapshot and
 * asks the TLS engine about each certificate it holds (never about keys), for /certs,
 * /server_info and the expiry gauges. */
#include "proxy/admin/admin_certs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certs/tls.h"

/* Envoy's value for days_until_first_cert_expiring when no context holds a certificate. */
#define NO_CERT_DAYS ((int64_t)UINT32_MAX)

typedef struct ctx_ref {
    const tls_context_config_t *t;
    size_t order; /* position in config order: each listener's chains, then the clusters */
} ctx_ref_t;

typedef struct ctx_list {
    ctx_ref_t *v; /* owned; contexts borrowed from the snapshot */
    size_t n;
} ctx_list_t;

static void ctx_push(ctx_list_t *l, const tls_context_config_t *t)
{
    if (t == NULL || t->engine == NULL)
        return;
    l->v[l->n] = (ctx_ref_t){t, l->n};
    l->n++;
}

static int by_engine(const void *a, const void *b)
{
    const ctx_ref_t *x = a, *y = b;
    uintptr_t ex = (uintptr_t)x->t->engine, ey = (uintptr_t)y->t->engine;
    if (ex != ey)
        return ex < ey ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int by_order(const void *a, const void *b)
{
    const ctx_ref_t *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* The TLS contexts of snap (borrowed) in config order, each engine config once (at its first
 * place). out->v is a new array the caller frees. Returns 0 or -ENOMEM. */
static int ctx_list_build(const snapshot_t *snap, ctx_list_t *out)
{
    size_t cap = snap->n_clusters;
    for (size_t i = 0; i < snap->n_listeners; i++)
        cap += snap->listeners[i].n_chains + (snap->listeners[i].default_chain != NULL);
    out->n = 0;
    out->v = malloc((cap ? cap : 1) * sizeof(*out->v));
    if (out->v == NULL)
        return -ENOMEM;
    /* Listeners first: the certificate a sidecar serves with is the identity peers know it by. */
    for (size_t i = 0; i < snap->n_listeners; i++) {
        const snap_listener_t *l = &snap->listeners[i];
        for (size_t j = 0; j < l->n_chains; j++)
            ctx_push(out, l->chains[j].tls);
        if (l->default_chain)
            ctx_push(out, l->default_chain->tls);
    }
    for (size_t i = 0; i < snap->n_clusters; i++)
        ctx_push(out, snap->clusters[i].tls);
    /* Sorted by engine then order, the first of each run is the engine's first place. */
    qsort(out->v, out->n, sizeof(*out->v), by_engine);
    size_t kept = 0;
    for (size_t i = 0; i < out->n; i++)
        if (kept == 0 || out->v[kept - 1].t->engine != out->v[i].t->engine)
            out->v[kept++] = out->v[i];
    out->n = kept;
    qsort(out->v, out->n, sizeof(*out->v), by_order);
    return 0;
}

/* Called for each certificate; ci is borrowed for the call. A negative return stops the walk. */
typedef int (*cert_visit_fn)(void *arg, bool trust, size_t index, const identity_cert_info_t *ci);

/* Visits the certificates of t's trust bundle (trust) or of its own chain, leaf first. Returns
 * 0 when all were visited, fn's negative return, or -ENOMEM. */
static int foreach_cert(const tls_context_config_t *t, bool trust, int64_t now, cert_visit_fn fn,
                        void *arg)
{
    for (size_t i = 0;; i++) {
        identity_cert_info_t ci;
        int rc = tls_config_cert_info(t->engine, trust, i, now, &ci);
        if (rc == -ENOENT)
            return 0;
        if (rc < 0)
            return rc;
        rc = fn(arg, trust, i, &ci);
        identity_cert_info_free(&ci);
        if (rc < 0)
            return rc;
    }
}

/* RFC 3339 in UTC, the JSON form of a protobuf Timestamp: "2025-01-31T12:00:00Z". */
static void format_utc(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "%lld", (long long)t);
}

/* Envoy's CertificateDetails for one certificate (ci and path borrowed). New reference or
 * NULL. */
static json_t *cert_details(const identity_cert_info_t *ci, const char *path)
{
    json_t *sans = json_array();
    for (size_t i = 0; i < ci->n_sans; i++) {
        const char *kind = ci->sans[i].type == IDENTITY_SAN_URI ? "uri" : "dns";
        if (json_array_append_new(sans, json_pack("{s:s}", kind, ci->sans[i].value)) < 0) {
            json_decref(sans);
            return NULL;
        }
    }
    /* Envoy prints the uint64 as a string and shows 0 once the certificate has expired. */
    char days[24], from[40], to[40];
    snprintf(days, sizeof(days), "%lld",
             (long long)(ci->days_until_expiry > 0 ? ci->days_until_expiry : 0));
    format_utc(ci->not_before, from, sizeof(from));
    format_utc(ci->not_after, to, sizeof(to));
    json_t *o = json_object();
    int rc = json_object_set_new(o, "path", json_string(path));
    rc |= json_object_set_new(o, "serial_number", json_string(ci->serial));
    rc |= json_object_set_new(o, "subject_alt_names", sans);
    rc |= json_object_set_new(o, "days_until_expiration", json_string(days));
    rc |= json_object_set_new(o, "valid_from", json_string(from));
    rc |= json_object_set_new(o, "expiration_time", json_string(to));
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

typedef struct cert_array_ctx {
    json_t *list; /* borrowed */
    const char *path;
} cert_array_ctx_t;

static int append_details(void *arg, bool trust, size_t index, const identity_cert_info_t *ci)
{
    (void)trust;
    (void)index;
    cert_array_ctx_t *c = arg;
    return json_array_append_new(c->list, cert_details(ci, c->path)) < 0 ? -ENOMEM : 0;
}

/* The CertificateDetails of t's trust bundle (trust) or chain. New reference or NULL. */
static json_t *cert_array(const tls_context_config_t *t, bool trust, int64_t now)
{
    const tls_config_data_t *src = trust ? &t->trusted_ca : &t->cert_chain;
    cert_array_ctx_t c = {json_array(), src->filename ? src->filename : "<inline>"};
    if (c.list == NULL || foreach_cert(t, trust, now, append_details, &c) < 0) {
        json_decref(c.list);
        return NULL;
    }
    return c.list;
}

json_t *admin_certs_json(const snapshot_t *snap, int64_t now)
{
    ctx_list_t l;
    if (ctx_list_build(snap, &l) < 0)
        return NULL;
    json_t *list = json_array();
    int rc = list ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        json_t *entry = json_object();
        rc |= json_object_set_new(entry, "ca_cert", cert_array(l.v[i].t, true, now));
        rc |= json_object_set_new(entry, "cert_chain", cert_array(l.v[i].t, false, now));
        rc |= json_array_append_new(list, entry);
    }
    free(l.v);
    json_t *root = json_object();
    rc |= json_object_set_new(root, "certificates", list);
    if (rc != 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* Whether two leaves stand for the same workload: the same SPIFFE ID, or, without one, the same
 * certificate. */
static bool same_identity(const identity_cert_info_t *a, const identity_cert_info_t *b)
{
    if (a->spiffe_id || b->spiffe_id)
        return a->spiffe_id && b->spiffe_id && strcmp(a->spiffe_id, b->spiffe_id) == 0;
    return strcmp(a->serial, b->serial) == 0;
}

static json_t *identity_json(const identity_cert_info_t *ci)
{
    char not_after[40];
    format_utc(ci->not_after, not_after, sizeof(not_after));
    json_t *o = json_object();
    int rc = json_object_set_new(o, "spiffe_id",
                                 ci->spiffe_id ? json_string(ci->spiffe_id) : json_null());
    rc |= json_object_set_new(o, "subject", json_string(ci->subject));
    rc |= json_object_set_new(o, "serial_number", json_string(ci->serial));
    rc |= json_object_set_new(o, "not_after", json_string(not_after));
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *admin_certs_identities_json(const snapshot_t *snap)
{
    ctx_list_t l;
    if (ctx_list_build(snap, &l) < 0)
        return NULL;
    /* One leaf per distinct identity, owned here until the end. */
    identity_cert_info_t *leaves = calloc(l.n ? l.n : 1, sizeof(*leaves));
    size_t n = 0;
    int rc = leaves ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        identity_cert_info_t ci;
        rc = tls_config_cert_info(l.v[i].t->engine, false, 0, 0, &ci);
        if (rc == -ENOENT) {
            rc = 0;
            continue;
        }
        if (rc < 0)
            break;
        size_t j = 0;
        while (j < n && !same_identity(&leaves[j], &ci))
            j++;
        if (j == n) {
            leaves[n++] = ci;
        } else if (ci.not_after < leaves[j].not_after) {
            identity_cert_info_free(&leaves[j]);
            leaves[j] = ci;
        } else {
            identity_cert_info_free(&ci);
        }
    }
    free(l.v);
    json_t *list = rc == 0 ? json_array() : NULL;
    for (size_t j = 0; j < n; j++) {
        if (json_array_append_new(list, identity_json(&leaves[j])) < 0) {
            json_decref(list);
            list = NULL;
        }
        identity_cert_info_free(&leaves[j]);
    }
    free(leaves);
    return list;
}

typedef struct expiry {
    int64_t min_days;   /* over every certificate, clamped at 0 */
    bool has_leaf;      /* some context presents a certificate */
    int64_t first_leaf; /* earliest not_after of those leaves */
} expiry_t;

static int note_expiry(void *arg, bool trust, size_t index, const identity_cert_info_t *ci)
{
    expiry_t *e = arg;
    int64_t days = ci->days_until_expiry > 0 ? ci->days_until_expiry : 0;
    if (days < e->min_days)
        e->min_days = days;
    if (!trust && index == 0 && (!e->has_leaf || ci->not_after < e->first_leaf)) {
        e->has_leaf = true;
        e->first_leaf = ci->not_after;
    }
    return 0;
}

/* Gauges set through host_set_gauge: the main slot holds what makes the sum over all slots right.
 */
int admin_certs_update_gauges(const host_t *host, int64_t now)
{
    int64_t days_id = stats_define(host->stats, STAT_GAUGE, "server", NULL, NULL,
                                   "days_until_first_cert_expiring");
    if (days_id < 0)
        return (int)days_id;
    int64_t ts_id = stats_define(host->stats, STAT_GAUGE, "server", NULL, NULL,
                                 "cert_expiration_timestamp_seconds");
    if (ts_id < 0)
        return (int)ts_id;
    ctx_list_t l;
    int rc = ctx_list_build(host_snapshot(host), &l);
    if (rc < 0)
        return rc;
    expiry_t e = {NO_CERT_DAYS, false, 0};
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        rc = foreach_cert(l.v[i].t, true, now, note_expiry, &e);
        if (rc == 0)
            rc = foreach_cert(l.v[i].t, false, now, note_expiry, &e);
    }
    free(l.v);
    if (rc < 0)
        return rc;
    host_set_gauge(host, (stat_id_t)days_id, e.min_days);
    host_set_gauge(host, (stat_id_t)ts_id, e.has_leaf ? e.first_leaf : 0);
    return 0;
}
