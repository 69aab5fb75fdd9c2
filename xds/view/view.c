/* The view's build: the registry sorted and checked, each part's groups, resources sorted and
 * hashed per group, and bytes that did not change shared with the view this one replaces; the
 * groups a node gets. */
#include "xds/view/view.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "xds/view/view_internal.h"

view_blob_t *view_blob_ref(view_blob_t *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void view_blob_unref(view_blob_t *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

/* A group's resources live in a block of their own, shared by the groups of successive views
 * while they are the same (a rebuild that changes nothing in a group takes it whole). */
typedef struct res_block {
    _Atomic int refs;
    view_resource_t v[];
} res_block_t;

static res_block_t *block_of(view_resource_t *v)
{
    return (res_block_t *)((char *)v - offsetof(res_block_t, v));
}

static void resources_release(view_resource_t *v, size_t n)
{
    if (v == NULL)
        return;
    res_block_t *blk = block_of(v);
    if (atomic_fetch_sub_explicit(&blk->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        view_blob_unref(v[i].blob);
    }
    free(blk);
}

static void group_free(view_group_t *g)
{
    resources_release(g->v, g->n);
    free(g->key);
}

void view_free(view_t *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n; i++)
        group_free(&v->groups[i]);
    free(v->groups);
    view_memo_free(v->memo);
    free(v);
}

static int group_cmp(view_group_kind_t ka, const char *a, view_group_kind_t kb, const char *b)
{
    if (ka != kb)
        return ka < kb ? -1 : 1;
    return strcmp(a, b);
}

static int group_sort_cmp(const void *x, const void *y)
{
    const view_group_t *a = x, *b = y;
    return group_cmp(a->kind, a->key, b->kind, b->key);
}

static int resource_cmp(const void *x, const void *y)
{
    return strcmp(((const view_resource_t *)x)->name, ((const view_resource_t *)y)->name);
}

const view_group_t *view_find_group(const view_t *v, view_group_kind_t kind, const char *key)
{
    size_t lo = 0, hi = v ? v->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = group_cmp(kind, key, v->groups[mid].kind, v->groups[mid].key);
        if (c == 0)
            return &v->groups[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const view_resource_t *view_group_resource(const view_group_t *g, const char *name)
{
    view_resource_t key = {.name = (char *)name};
    /* An empty group has no array, which bsearch may not be given. */
    return g && g->n ? bsearch(&key, g->v, g->n, sizeof(*g->v), resource_cmp) : NULL;
}

/* ---- what the parts share ------------------------------------------------------------------ */

int vb_group(view_builder_t *b, view_group_kind_t kind, const char *type_url, const char *key)
{
    if (b->n_groups == b->cap_groups) {
        size_t cap = b->cap_groups ? b->cap_groups * 2 : 16;
        view_group_t *g = realloc(b->groups, cap * sizeof(*g));
        if (g == NULL)
            return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
        b->groups = g;
        unsigned char *st = realloc(b->state, cap);
        if (st == NULL)
            return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
        b->state = st;
        b->cap_groups = cap;
    }
    b->state[b->n_groups] = VB_GROUP_OPEN;
    view_group_t *g = &b->groups[b->n_groups];
    memset(g, 0, sizeof(*g));
    g->kind = kind;
    g->type_url = type_url;
    g->key = strdup(key);
    if (g->key == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    return (int)b->n_groups++;
}

int vb_add_blob(view_builder_t *b, int gi, const char *name, view_blob_t *blob)
{
    view_group_t *g = &b->groups[gi];
    if ((g->n & (g->n - 1)) == 0) { /* 0, 1, 2, 4...: full */
        res_block_t *old = g->v ? block_of(g->v) : NULL;
        res_block_t *blk =
            realloc(old, sizeof(*blk) + (g->n ? g->n * 2 : 1) * sizeof(view_resource_t));
        if (blk == NULL)
            return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
        if (old == NULL)
            atomic_init(&blk->refs, 1);
        g->v = blk->v;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    g->v[g->n++] =
        (view_resource_t){.type_url = g->type_url, .name = copy, .blob = view_blob_ref(blob)};
    return 0;
}

int vb_add_unit(view_builder_t *b, int gi, const view_unit_t *u)
{
    int rc = 0;
    for (size_t i = 0; i < u->n_res && rc == 0; i++)
        if (u->res[i].kind == b->groups[gi].kind)
            rc = vb_add_blob(b, gi, u->res[i].name, u->res[i].blob);
    return rc;
}

int vb_group_from_prev(view_builder_t *b, int gi, const view_group_t *pg, bool copy)
{
    view_group_t *g = &b->groups[gi];
    resources_release(g->v, g->n);
    g->v = NULL;
    g->n = 0;
    if (!copy) {
        if (pg->v)
            atomic_fetch_add_explicit(&block_of(pg->v)->refs, 1, memory_order_relaxed);
        g->v = pg->v;
        g->n = pg->n;
        g->hash = pg->hash;
        b->state[gi] = VB_GROUP_SEALED;
        return 0;
    }
    res_block_t *blk = malloc(sizeof(*blk) + (pg->n + 1) * sizeof(view_resource_t));
    if (blk == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    atomic_init(&blk->refs, 1);
    g->v = blk->v;
    for (size_t i = 0; i < pg->n; i++) {
        char *name = strdup(pg->v[i].name);
        if (name == NULL)
            return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
        g->v[g->n++] = (view_resource_t){pg->v[i].type_url, name, view_blob_ref(pg->v[i].blob)};
    }
    b->state[gi] = VB_GROUP_SORTED;
    return 0;
}

int vb_group_merge(view_builder_t *b, int gi, const view_group_t *pg, const char *const *drop,
                   size_t n_drop, const view_unit_res_t *const *add, size_t n_add)
{
    view_group_t *g = &b->groups[gi];
    size_t n = pg->n + n_add;
    res_block_t *blk = malloc(sizeof(*blk) + (n + 1) * sizeof(view_resource_t));
    if (blk == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    atomic_init(&blk->refs, 1);
    view_resource_t *v = blk->v;
    size_t k = 0, i = 0, d = 0, a = 0;
    int rc = 0;
    while (rc == 0 && (i < pg->n || a < n_add)) {
        if (i < pg->n && d < n_drop && strcmp(pg->v[i].name, drop[d]) == 0) {
            i++, d++;
            continue;
        }
        int c = i == pg->n ? 1 : a == n_add ? -1 : strcmp(pg->v[i].name, add[a]->name);
        if (c == 0) {
            rc = 1; /* a name twice: the full build says where */
            break;
        }
        const char *name = c < 0 ? pg->v[i].name : add[a]->name;
        view_blob_t *blob = c < 0 ? pg->v[i].blob : add[a]->blob;
        char *copy = strdup(name);
        if (copy == NULL) {
            rc = err_set(b->err, b->errlen, -ENOMEM, "out of memory");
            break;
        }
        v[k++] = (view_resource_t){g->type_url, copy, view_blob_ref(blob)};
        if (c < 0)
            i++;
        else
            a++;
    }
    if (rc == 0 && d != n_drop)
        rc = 1; /* a name to drop that prev did not have */
    if (rc != 0) {
        atomic_store(&blk->refs, 1);
        resources_release(blk->v, k);
        return rc;
    }
    resources_release(g->v, g->n);
    g->v = v;
    g->n = k;
    b->state[gi] = VB_GROUP_SORTED;
    return 0;
}

int vb_group_set(view_builder_t *b, int gi, const char *name, view_blob_t *blob)
{
    view_group_t *g = &b->groups[gi];
    view_resource_t *r = (view_resource_t *)view_group_resource(g, name);
    if (r == NULL)
        return err_set(b->err, b->errlen, -ENOENT, "%s '%s': not in its group", g->type_url, name);
    view_blob_ref(blob);
    view_blob_unref(r->blob);
    r->blob = blob;
    return 0;
}

/* The previous view's blob of that resource when its bytes are these. */
static view_blob_t *prev_blob(const view_builder_t *b, view_group_kind_t kind, const char *key,
                              const char *name, uint64_t hash, const uint8_t *bytes, size_t len)
{
    const view_resource_t *r = view_group_resource(view_find_group(b->prev, kind, key), name);
    if (r && r->blob->hash == hash && r->blob->len == len &&
        memcmp(r->blob->bytes, bytes, len) == 0)
        return r->blob;
    return NULL;
}

static const char *kind_type_url(view_group_kind_t kind)
{
    switch (kind) {
    case VIEW_GROUP_CLUSTERS:
    case VIEW_GROUP_GRPC_CLUSTERS:
        return VIEW_TYPE_CLUSTER;
    case VIEW_GROUP_ENDPOINTS:
        return VIEW_TYPE_ENDPOINTS;
    case VIEW_GROUP_ROUTES:
    case VIEW_GROUP_GRPC_ROUTES:
        return VIEW_TYPE_ROUTES;
    default:
        return VIEW_TYPE_LISTENER;
    }
}

int vb_encode(view_builder_t *b, view_group_kind_t kind, const char *key, const char *name,
              pbw_t *w, view_blob_t **out)
{
    uint8_t *bytes;
    size_t len;
    char err[256];
    int rc = pbw_finish(w, &bytes, &len, err, sizeof(err));
    if (rc < 0)
        return err_set(b->err, b->errlen, rc, "%s '%s': %s", kind_type_url(kind), name, err);
    uint64_t hash = pbw_hash(PBW_HASH_INIT, bytes, len);
    view_blob_t *blob = prev_blob(b, kind, key, name, hash, bytes, len);
    if (blob) {
        free(bytes);
        *out = blob;
        return 0;
    }
    blob = malloc(sizeof(*blob) + len);
    if (blob == NULL) {
        free(bytes);
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    }
    atomic_init(&blob->refs, 0);
    blob->hash = hash;
    blob->len = len;
    memcpy(blob->bytes, bytes, len);
    free(bytes);
    *out = blob;
    return 0;
}

static void put(uint8_t **p, const uint8_t *src, size_t n)
{
    if (n) {
        memcpy(*p, src, n);
        *p += n;
    }
}

int vb_assemble(view_builder_t *b, view_group_kind_t kind, const char *key, const char *name,
                const vb_parts_t *in, view_blob_t **out)
{
    size_t len = in->hl + in->tl;
    for (size_t i = 0; i < in->n; i++)
        len += in->parts[i]->len;
    view_blob_t *blob = malloc(sizeof(*blob) + len);
    if (blob == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    uint8_t *p = blob->bytes;
    put(&p, in->head, in->hl);
    for (size_t i = 0; i < in->n; i++)
        put(&p, in->parts[i]->bytes, in->parts[i]->len);
    put(&p, in->tail, in->tl);
    /* FNV-1a runs forward: the state after the head and the parts prev had alike is prev's. */
    size_t k = in->prev_states ? in->n_same : 0;
    uint64_t h;
    if (in->prev_states) {
        memcpy(in->states, in->prev_states, (k + 1) * sizeof(*in->states));
        h = in->states[k];
    } else {
        h = in->states[0] = pbw_hash(PBW_HASH_INIT, in->head, in->hl);
    }
    for (size_t i = k; i < in->n; i++)
        h = in->states[i + 1] = pbw_hash(h, in->parts[i]->bytes, in->parts[i]->len);
    h = pbw_hash(h, in->tail, in->tl);
    view_blob_t *prev = prev_blob(b, kind, key, name, h, blob->bytes, len);
    if (prev) {
        free(blob);
        *out = prev;
        return 0;
    }
    atomic_init(&blob->refs, 0);
    blob->hash = h;
    blob->len = len;
    *out = blob;
    return 0;
}

int vb_add(view_builder_t *b, int gi, const char *name, pbw_t *w)
{
    view_blob_t *blob;
    int rc = vb_encode(b, b->groups[gi].kind, b->groups[gi].key, name, w, &blob);
    if (rc < 0)
        return rc;
    rc = vb_add_blob(b, gi, name, blob);
    if (rc < 0 && atomic_load(&blob->refs) == 0)
        free(blob);
    return rc;
}

view_mtls_t vb_mtls(const view_builder_t *b, const char *ns)
{
    const view_registry_t *r = b->reg;
    for (size_t i = 0; i < r->n_namespaces; i++)
        if (r->namespaces[i].name && strcmp(r->namespaces[i].name, ns) == 0 &&
            r->namespaces[i].mtls != VIEW_MTLS_MESH)
            return r->namespaces[i].mtls;
    return r->mesh.mtls == VIEW_MTLS_MESH ? VIEW_MTLS_OFF : r->mesh.mtls;
}

bool view_proto_http(view_protocol_t p)
{
    return p == VIEW_PROTO_HTTP || p == VIEW_PROTO_HTTP2 || p == VIEW_PROTO_GRPC ||
           p == VIEW_PROTO_UNKNOWN;
}

bool view_proto_h2(view_protocol_t p)
{
    return p == VIEW_PROTO_HTTP2 || p == VIEW_PROTO_GRPC;
}

uint16_t view_endpoint_port(const view_service_t *s, size_t pi, const view_endpoint_t *e)
{
    if (e->ports && e->ports[pi])
        return e->ports[pi];
    return s->ports[pi].target_port ? s->ports[pi].target_port : s->ports[pi].port;
}

uint32_t vb_connect_timeout(const view_builder_t *b)
{
    uint32_t ms = b->reg->mesh.connect_timeout_ms;
    return ms ? ms : VIEW_DEFAULT_CONNECT_TIMEOUT_MS;
}

/* ---- the registry, sorted and checked ------------------------------------------------------- */

static int svc_cmp(const void *x, const void *y)
{
    const view_service_t *a = *(const view_service_t *const *)x;
    const view_service_t *b = *(const view_service_t *const *)y;
    int c = strcmp(a->namespace_, b->namespace_);
    return c ? c : strcmp(a->name, b->name);
}

int vb_find_service(const view_builder_t *b, const char *ns, const char *name)
{
    view_service_t key = {.namespace_ = ns, .name = name};
    const view_service_t *kp = &key;
    if (b->n_svcs == 0)
        return -1;
    const view_service_t **hit = bsearch(&kp, b->svcs, b->n_svcs, sizeof(*b->svcs), svc_cmp);
    return hit ? (int)(hit - b->svcs) : -1;
}

static int str_cmp(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static bool empty(const char *s)
{
    return s == NULL || *s == '\0';
}

static int check_service(view_builder_t *b, const view_service_t *s, size_t i)
{
    if (empty(s->namespace_) || empty(s->name))
        return err_set(b->err, b->errlen, -EINVAL, "services[%zu]: namespace and name required", i);
    if (s->kind == VIEW_SVC_CLUSTER_IP && empty(s->vip))
        return err_set(b->err, b->errlen, -EINVAL, "service %s/%s: a ClusterIP service needs a vip",
                       s->namespace_, s->name);
    if (s->kind == VIEW_SVC_EXTERNAL_NAME && empty(s->external_name))
        return err_set(b->err, b->errlen, -EINVAL,
                       "service %s/%s: an ExternalName service needs external_name", s->namespace_,
                       s->name);
    for (size_t p = 0; p < s->n_ports; p++)
        if (s->ports[p].port == 0)
            return err_set(b->err, b->errlen, -EINVAL, "service %s/%s: ports[%zu]: port 0",
                           s->namespace_, s->name, p);
    for (size_t e = 0; e < s->n_endpoints; e++)
        if (empty(s->endpoints[e].address))
            return err_set(b->err, b->errlen, -EINVAL,
                           "service %s/%s: endpoints[%zu]: an address is required", s->namespace_,
                           s->name, e);
    for (size_t r = 0; r < s->n_http_rules; r++) {
        const view_http_rule_t *rule = &s->http_rules[r];
        for (size_t k = 0; k < rule->n_backends; k++)
            if (empty(rule->backends[k].namespace_) || empty(rule->backends[k].name))
                return err_set(b->err, b->errlen, -EINVAL,
                               "service %s/%s: http_rules[%zu]: backends[%zu]: namespace and name "
                               "required",
                               s->namespace_, s->name, r, k);
        for (size_t m = 0; m < rule->n_matches; m++)
            for (size_t h = 0; h < rule->matches[m].n_headers; h++)
                if (empty(rule->matches[m].headers[h].name) ||
                    rule->matches[m].headers[h].value == NULL)
                    return err_set(b->err, b->errlen, -EINVAL,
                                   "service %s/%s: http_rules[%zu]: matches[%zu]: headers[%zu]: "
                                   "name and value required",
                                   s->namespace_, s->name, r, m, h);
    }
    return 0;
}

static int add_namespace(view_builder_t *b, const char *ns, size_t *cap)
{
    if (b->n_namespaces == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        const char **v = realloc(b->namespaces, *cap * sizeof(*v));
        if (v == NULL)
            return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
        b->namespaces = v;
    }
    b->namespaces[b->n_namespaces++] = ns;
    return 0;
}

static int index_registry(view_builder_t *b)
{
    const view_registry_t *r = b->reg;
    const char *td = r->mesh.trust_domain;
    if (empty(td))
        return err_set(b->err, b->errlen, -EINVAL, "mesh: trust_domain required");
    b->svcs = calloc(r->n_services + 1, sizeof(*b->svcs));
    b->hosts = calloc(r->n_services + 1, sizeof(*b->hosts));
    if (b->svcs == NULL || b->hosts == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    for (size_t i = 0; i < r->n_services; i++) {
        int rc = check_service(b, &r->services[i], i);
        if (rc < 0)
            return rc;
        b->svcs[i] = &r->services[i];
    }
    b->n_svcs = r->n_services;
    qsort(b->svcs, b->n_svcs, sizeof(*b->svcs), svc_cmp);
    for (size_t i = 0; i < b->n_svcs; i++) {
        const view_service_t *s = b->svcs[i];
        if (s->host)
            b->hosts[i] = strdup(s->host);
        else if (asprintf(&b->hosts[i], "%s.%s.svc.%s", s->name, s->namespace_, td) < 0)
            b->hosts[i] = NULL;
        if (b->hosts[i] == NULL)
            return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
        if (i && svc_cmp(&b->svcs[i - 1], &b->svcs[i]) == 0)
            return err_set(b->err, b->errlen, -EINVAL, "service %s/%s: given twice", s->namespace_,
                           s->name);
    }
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; i < r->n_namespaces && rc == 0; i++)
        if (!empty(r->namespaces[i].name))
            rc = add_namespace(b, r->namespaces[i].name, &cap);
    for (size_t i = 0; i < b->n_svcs && rc == 0; i++)
        rc = add_namespace(b, b->svcs[i]->namespace_, &cap);
    for (size_t i = 0; i < r->n_workloads && rc == 0; i++) {
        const view_workload_t *w = &r->workloads[i];
        if (empty(w->namespace_) || empty(w->name))
            return err_set(b->err, b->errlen, -EINVAL,
                           "workloads[%zu]: namespace and name required", i);
        rc = add_namespace(b, w->namespace_, &cap);
    }
    if (rc < 0)
        return rc;
    qsort(b->namespaces, b->n_namespaces, sizeof(*b->namespaces), str_cmp);
    size_t n = 0;
    for (size_t i = 0; i < b->n_namespaces; i++)
        if (n == 0 || strcmp(b->namespaces[n - 1], b->namespaces[i]) != 0)
            b->namespaces[n++] = b->namespaces[i];
    b->n_namespaces = n;
    return 0;
}

/* Sorts each group's resources, refuses a name given twice, and hashes the group. */
static int seal_groups(view_builder_t *b)
{
    for (size_t i = 0; i < b->n_groups; i++) {
        view_group_t *g = &b->groups[i];
        if (b->state[i] == VB_GROUP_SEALED)
            continue;
        if (b->state[i] == VB_GROUP_OPEN && g->n > 1) /* an empty group has no array */
            qsort(g->v, g->n, sizeof(*g->v), resource_cmp);
        uint64_t h = PBW_HASH_INIT;
        for (size_t j = 0; j < g->n; j++) {
            if (b->state[i] == VB_GROUP_OPEN && j && strcmp(g->v[j - 1].name, g->v[j].name) == 0)
                return err_set(b->err, b->errlen, -EINVAL,
                               "%s '%s': made twice (two services "
                               "with one host, or one workload twice?)",
                               g->type_url, g->v[j].name);
            h = pbw_hash(h, g->v[j].name, strlen(g->v[j].name) + 1);
            h = pbw_hash(h, &g->v[j].blob->hash, sizeof(g->v[j].blob->hash));
        }
        g->hash = h;
    }
    qsort(b->groups, b->n_groups, sizeof(*b->groups), group_sort_cmp);
    for (size_t i = 1; i < b->n_groups; i++)
        if (group_sort_cmp(&b->groups[i - 1], &b->groups[i]) == 0)
            return err_set(b->err, b->errlen, -EINVAL, "workload %s: given twice",
                           b->groups[i].key);
    return 0;
}

static void builder_free(view_builder_t *b)
{
    for (size_t i = 0; i < b->n_svcs; i++)
        free(b->hosts[i]);
    free(b->hosts);
    free(b->svcs);
    free(b->namespaces);
    free(b->state);
    view_memo_free(b->memo);
    for (size_t i = 0; i < b->n_groups; i++)
        group_free(&b->groups[i]);
    free(b->groups);
}

int view_build(const view_registry_t *reg, const view_t *prev, view_t **out, char *err,
               size_t errlen)
{
    view_builder_t b = {.reg = reg,
                        .prev = prev,
                        .prev_memo = prev ? prev->memo : NULL,
                        .err = err,
                        .errlen = errlen};
    int (*const parts[])(view_builder_t *) = {
        index_registry,           view_memo_units,    view_build_clusters, view_build_endpoints,
        view_build_outbound,      view_build_inbound, view_build_routes,   view_build_grpc,
        view_build_grpc_clusters, seal_groups,
    };
    *out = NULL;
    int rc = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && rc == 0; i++)
        rc = parts[i](&b);
    view_t *v = rc == 0 ? calloc(1, sizeof(*v)) : NULL;
    if (rc == 0 && v == NULL)
        rc = err_set(err, errlen, -ENOMEM, "out of memory");
    if (rc == 0) {
        v->groups = b.groups;
        v->n = b.n_groups;
        v->memo = view_memo_take(&b);
        b.groups = NULL;
        b.n_groups = 0;
        *out = v;
    }
    builder_free(&b);
    return rc;
}

/* ---- nodes ---------------------------------------------------------------------------------- */

int view_node_parse_id(const char *id, view_node_t *node)
{
    memset(node, 0, sizeof(*node));
    if (id == NULL)
        return -EINVAL;
    /* Istio: type~ip~pod.namespace~domain; the short form sidecar~pod.namespace too. */
    const char *part = id, *end;
    size_t n_tilde = 0;
    for (const char *p = id; *p; p++)
        n_tilde += *p == '~';
    if (n_tilde == 3 || n_tilde == 1) {
        for (size_t skip = n_tilde == 3 ? 2 : 1; skip; skip--)
            part = strchr(part, '~') + 1;
    } else if (n_tilde != 0) {
        return -EINVAL;
    }
    end = strchr(part, '~');
    size_t len = end ? (size_t)(end - part) : strlen(part);
    if (len == 0 || len >= sizeof(node->buf))
        return -EINVAL;
    memcpy(node->buf, part, len);
    node->buf[len] = '\0';
    char *dot = strrchr(node->buf, '.');
    if (dot == NULL || dot == node->buf || dot[1] == '\0')
        return -EINVAL;
    *dot = '\0';
    node->pod = node->buf;
    node->namespace_ = dot + 1;
    return 0;
}

int view_node_groups(const view_t *v, const view_node_t *node, view_node_groups_t *out)
{
    memset(out, 0, sizeof(*out));
    if (node->namespace_ == NULL)
        return -ENOENT;
    const view_group_t *g;
    out->v[out->n++] = view_find_group(v, VIEW_GROUP_CLUSTERS, "");
    if (node->proxyless)
        out->v[out->n++] = view_find_group(v, VIEW_GROUP_GRPC_CLUSTERS, "");
    out->v[out->n++] = view_find_group(v, VIEW_GROUP_ENDPOINTS, "");
    if (node->proxyless) {
        out->v[out->n++] = view_find_group(v, VIEW_GROUP_GRPC_LISTENERS, "");
        out->v[out->n++] = view_find_group(v, VIEW_GROUP_GRPC_ROUTES, "");
        return 0;
    }
    if ((g = view_find_group(v, VIEW_GROUP_OUTBOUND, node->namespace_)) == NULL) {
        memset(out, 0, sizeof(*out));
        return -ENOENT;
    }
    out->v[out->n++] = g;
    if (node->pod) {
        char key[sizeof(node->buf) + 2];
        snprintf(key, sizeof(key), "%s/%s", node->namespace_, node->pod);
        if ((g = view_find_group(v, VIEW_GROUP_INBOUND, key)) != NULL) {
            out->v[out->n++] = g;
            out->has_workload = true;
        }
    }
    out->v[out->n++] = view_find_group(v, VIEW_GROUP_ROUTES, node->namespace_);
    return 0;
}
