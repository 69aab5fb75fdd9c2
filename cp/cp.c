/* The control plane's lifecycle and its rebuilds: a scan of the mesh directory becomes events,
 * the index applies them, the registry and the view are computed again (sharing every resource
 * whose bytes did not change), and every ADS view whose resources changed (cp_views.c) gets
 * them, which tells the streams served from it what they owe. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp/cp_internal.h"

#include "cp/cp_registry.h"
#include "proxy/core/log.h"

void cp_opts_default(cp_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    uv_ip4_addr("127.0.0.1", 15010, (struct sockaddr_in *)&o->listen);
    uv_ip4_addr("127.0.0.1", 15014, (struct sockaddr_in *)&o->admin);
    o->trust_domain = "cluster.local";
    o->mtls = "off";
    o->debounce_ms = 100;
    o->debounce_max_ms = 10000;
    o->debounce_leading_ms = 10;
    o->keepalive_ms = 30000;
}

/* ---- blob -> ADS resource ------------------------------------------------------------------ */

static size_t ptr_slot(const void *p, size_t cap)
{
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17;
    x *= 0xed5ad4bbu;
    x ^= x >> 11;
    return (size_t)x & (cap - 1);
}

static ads_srv_resource_t *res_map_get(const cp_res_map_t *m, const view_blob_t *b)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = ptr_slot(b, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == NULL)
            return NULL;
        if (m->keys[i] == b)
            return m->vals[i];
    }
}

static int res_map_put(cp_res_map_t *m, const view_blob_t *b, ads_srv_resource_t *r)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        cp_res_map_t g = {calloc(cap, sizeof(*g.keys)), calloc(cap, sizeof(*g.vals)), cap, 0};
        if (g.keys == NULL || g.vals == NULL) {
            free(g.keys);
            free(g.vals);
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i])
                res_map_put(&g, m->keys[i], m->vals[i]);
        free(m->keys);
        free(m->vals);
        *m = g;
    }
    size_t i = ptr_slot(b, m->cap);
    while (m->keys[i])
        i = (i + 1) & (m->cap - 1);
    m->keys[i] = b;
    m->vals[i] = r;
    m->n++;
    return 0;
}

static void res_map_free(cp_res_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            ads_srv_resource_unref(m->vals[i]);
            view_blob_unref((view_blob_t *)m->keys[i]);
        }
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

static int type_of_url(const char *url)
{
    return ads_srv_type_of(url);
}

/* The map of every resource of v, reusing old's entries for the blobs it still holds. The map
 * holds a blob reference per key, so a key pointer is never reused by another blob. */
static int res_map_rebuild(const view_t *v, cp_res_map_t *old, cp_res_map_t *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t g = 0; g < v->n; g++) {
        const view_group_t *grp = &v->groups[g];
        int t = type_of_url(grp->type_url);
        if (t < 0)
            continue;
        for (size_t i = 0; i < grp->n; i++) {
            view_blob_t *b = grp->v[i].blob;
            if (res_map_get(out, b))
                continue;
            ads_srv_resource_t *r = res_map_get(old, b);
            r = r ? ads_srv_resource_ref(r)
                  : ads_srv_resource_new((ads_srv_type_t)t, grp->v[i].name, b->bytes, b->len);
            if (r == NULL || res_map_put(out, view_blob_ref(b), r) < 0) {
                if (r) {
                    ads_srv_resource_unref(r);
                    view_blob_unref(b);
                }
                res_map_free(out);
                return -ENOMEM;
            }
        }
    }
    return 0;
}

ads_srv_resource_t *cp_res_lookup(const cp_t *cp, const view_blob_t *b)
{
    return res_map_get(&cp->res, b);
}

/* ---- rebuilds ------------------------------------------------------------------------------ */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static view_mtls_t mesh_mtls(const char *s)
{
    if (strcmp(s, "strict") == 0)
        return VIEW_MTLS_STRICT;
    if (strcmp(s, "permissive") == 0)
        return VIEW_MTLS_PERMISSIVE;
    return VIEW_MTLS_OFF;
}

/* Computes the view again from the index and hands what changed to every group of sidecars. */
static int rebuild(cp_t *cp)
{
    uint64_t t0 = now_us();
    view_mesh_t mesh = {.trust_domain = cp->opts.trust_domain,
                        .mtls = mesh_mtls(cp->opts.mtls),
                        .outbound_port = 15001,
                        .inbound_port = 15006,
                        .inbound_source = "127.0.0.6"};
    cp_registry_t reg;
    int rc = cp_registry_fill(cp->index, &mesh, &reg);
    if (rc < 0)
        return rc;
    view_t *next = NULL;
    char err[512];
    rc = view_build(&reg.reg, cp->view, &next, err, sizeof(err));
    cp_registry_free(&reg);
    if (rc < 0) {
        log_error("mesh: the view could not be built, the last one is served: %s", err);
        return rc;
    }
    cp_res_map_t res;
    rc = res_map_rebuild(next, &cp->res, &res);
    if (rc < 0) {
        view_free(next);
        return rc;
    }
    res_map_free(&cp->res);
    cp->res = res;
    view_free(cp->view);
    cp->view = next;
    cp->gen++;
    size_t changed = cp_views_refresh(cp), groups = 0;
    for (const cp_pview_t *p = cp->pviews; p; p = p->next)
        groups++;
    stats_add(cp->stats.slots, cp->stats.resources,
              (int64_t)res.n - stats_value(cp->stats.store, cp->stats.resources));
    cp_streams_pump_queued(cp);
    stats_record(cp->stats.slots, cp->stats.push_time, now_us() - t0);
    log_debug("mesh: view %llu built and handed to %zu groups of sidecars in %llu us (%zu of "
              "%zu ADS views replaced)",
              (unsigned long long)cp->gen, groups, (unsigned long long)(now_us() - t0), changed,
              cp->ntviews);
    return 0;
}

/* Scans the directory and applies what changed; rebuilds when anything did. */
static void rescan(cp_t *cp)
{
    uint64_t t0 = now_us();
    stats_inc(cp->stats.slots, cp->stats.rescans);
    mesh_batch_t batch = {0};
    mesh_report_t report = {0};
    int rc = mesh_dir_scan(cp->dir, &batch, &report);
    for (size_t i = 0; i < report.nerrors; i++)
        log_error("mesh: %s", report.errors[i]);
    for (size_t i = 0; i < report.nnotes; i++)
        log_info("mesh: %s", report.notes[i]);
    stats_add(cp->stats.slots, cp->stats.mesh_errors, (int64_t)report.nerrors);
    mesh_report_free(&report);
    if (rc < 0 && rc != -EINVAL) {
        log_error("mesh: cannot read %s: %s; serving what was read before", cp->opts.mesh_dir,
                  strerror(-rc));
        mesh_batch_free(&batch);
        return;
    }
    mesh_changes_t changes = {0};
    rc = mesh_index_apply(cp->index, &batch, &changes);
    mesh_batch_free(&batch);
    size_t nchanged = changes.events.count;
    mesh_changes_free(&changes);
    size_t total = 0;
    for (int k = 0; k < MESH_KIND_COUNT; k++) {
        size_t n = 0;
        mesh_index_list(cp->index, (mesh_kind_t)k, &n);
        total += n;
    }
    stats_add(cp->stats.slots, cp->stats.mesh_objects,
              (int64_t)total - stats_value(cp->stats.store, cp->stats.mesh_objects));
    if (rc < 0) {
        log_error("mesh: applying changes: %s", strerror(-rc));
        return;
    }
    if (nchanged == 0 && cp->view)
        return;
    if (rebuild(cp) == 0)
        stats_record(cp->stats.slots, cp->stats.convergence, now_us() - t0);
}

static void on_change(void *arg)
{
    cp_t *cp = arg;
    uint64_t waited = cp_watch_last_delay_ms(cp->watch);
    if (waited)
        stats_record(cp->stats.slots, cp->stats.debounce, waited * 1000);
    rescan(cp);
}

static bool is_ready(void *ctx)
{
    return ((cp_t *)ctx)->ready;
}

static const cp_admin_ops_t ADMIN_OPS = {.ready = is_ready, .syncz = cp_streams_syncz};

int cp_start(uv_loop_t *loop, const cp_opts_t *o, cp_t **out, char *err, size_t errlen)
{
    cp_t *cp = calloc(1, sizeof(*cp));
    if (cp == NULL)
        return -ENOMEM;
    cp->loop = loop;
    cp->opts = *o;
    int rc = cp_stats_init(&cp->stats);
    if (rc < 0) {
        free(cp);
        snprintf(err, errlen, "stats: %s", strerror(-rc));
        return rc;
    }
    cp->index = mesh_index_new();
    cp->dir = mesh_dir_new(o->mesh_dir);
    rc = cp->index && cp->dir ? 0 : -ENOMEM;
    if (rc == 0 && o->ca_dir)
        rc = cp_secrets_start(cp, err, errlen);
    if (rc == 0 && o->tls && o->ca_dir)
        rc = cp_secrets_server_tls(cp, err, errlen);
    if (rc < 0)
        goto fail;
    rescan(cp);
    if (cp->view == NULL) {
        snprintf(err, errlen, "mesh: %s: no view could be built", o->mesh_dir);
        rc = -EINVAL;
        goto fail;
    }
    cp_watch_opts_t wo = {.debounce_ms = o->debounce_ms,
                          .max_delay_ms = o->debounce_max_ms,
                          .leading_ms = o->debounce_leading_ms,
                          .poll_ms = o->poll_ms};
    rc = cp_watch_start(loop, o->mesh_dir, &wo, on_change, cp, &cp->watch, err, errlen);
    if (rc < 0)
        goto fail;
    rc = cp_streams_register(cp);
    if (rc == 0)
        rc = grpc_server_listen(cp->grpc, (struct sockaddr *)&o->listen);
    if (rc < 0) {
        snprintf(err, errlen, "xDS: listen: %s", uv_strerror(rc));
        goto fail;
    }
    rc = cp_admin_start(loop, (struct sockaddr *)&o->admin, &cp->stats, &ADMIN_OPS, cp, &cp->admin,
                        err, errlen);
    if (rc < 0)
        goto fail;
    cp->ready = true;
    *out = cp;
    return 0;
fail:
    cp_stop(cp, 0);
    return rc;
}

void cp_stop(cp_t *cp, uint64_t grace_ms)
{
    if (cp == NULL)
        return;
    cp->stopping = true;
    cp->ready = false;
    cp_admin_stop(cp->admin);
    cp_watch_stop(cp->watch);
    (void)grace_ms;
    /* Every stream ends with UNAVAILABLE (their on_close frees them before this returns); the
     * sidecars keep serving their last config and reconnect with backoff. */
    grpc_server_close(cp->grpc);
    cp_streams_stop(cp);
    while (cp->pviews) {
        cp_pview_t *p = cp->pviews;
        p->streams = 1;
        cp_pview_release(cp, p);
    }
    res_map_free(&cp->res);
    view_free(cp->view);
    cp_secrets_free(cp);
    mesh_dir_free(cp->dir);
    mesh_index_free(cp->index);
    cp_stats_free(&cp->stats);
    free(cp);
}
