/* What a rebuild reuses: each service's parts (a unit) kept with the input they were encoded
 * from, so a service whose input is the same is not encoded again; the resources assembled
 * from units' parts (virtualOutbound, the per-namespace route configurations) kept with the
 * parts they were made of; virtualInbound kept per input (workloads of the same ports and mode
 * share it). Every reuse is decided on exact bytes or on the identity of parts, never on a
 * hash alone. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "xds/view/view_internal.h"

typedef struct route_memo {
    char *ns;
    uint16_t port;
    view_blob_t **key; /* owned array; the parts' identities (not references) */
    size_t n_key;
    uint64_t *states;  /* owned, n_key + 1: the hash state after the head and each part */
    view_blob_t *blob; /* one reference */
} route_memo_t;

typedef struct inbound_memo {
    uint8_t *input; /* owned; NULL: a free slot */
    size_t len;
    uint64_t hash;
    view_blob_t *blob; /* one reference */
} inbound_memo_t;

struct view_memo {
    view_unit_t **units; /* one reference each, sorted by (namespace, name) */
    size_t n_units;
    uint8_t *outbound_head;                /* owned: head and tail bytes of virtualOutbound */
    size_t outbound_head_len, outbound_hl; /* both; the head's */
    uint64_t *outbound_states;             /* owned, n_outbound_key + 1 (vb_parts_t) */
    view_blob_t **outbound_key;            /* owned array: the units' chains (identities) */
    size_t n_outbound_key;
    view_blob_t *outbound; /* one reference, or NULL */
    route_memo_t *routes;  /* sorted by (namespace, port) */
    size_t n_routes, cap_routes;
    inbound_memo_t *inbound; /* open addressing, cap_inbound a power of 2 */
    size_t cap_inbound;
};

/* ---- inputs --------------------------------------------------------------------------------- */

static bool vin_room(view_input_t *in, size_t n)
{
    if (in->err)
        return false;
    if (in->len + n <= in->cap)
        return true;
    size_t cap = in->cap ? in->cap : 256;
    while (cap < in->len + n)
        cap *= 2;
    uint8_t *p = realloc(in->buf, cap);
    if (p == NULL) {
        in->err = -ENOMEM;
        return false;
    }
    in->buf = p;
    in->cap = cap;
    return true;
}

void vin_u64(view_input_t *in, uint64_t v)
{
    if (vin_room(in, sizeof(v))) {
        memcpy(in->buf + in->len, &v, sizeof(v));
        in->len += sizeof(v);
    }
}

void vin_str(view_input_t *in, const char *s)
{
    if (s == NULL) {
        vin_u64(in, UINT64_MAX);
        return;
    }
    size_t n = strlen(s);
    vin_u64(in, n);
    if (vin_room(in, n)) {
        memcpy(in->buf + in->len, s, n);
        in->len += n;
    }
}

/* Everything the parts of service si read: the service whole (endpoint ports resolved), its
 * host, and of the mesh the trust domain, the connect timeout and its namespace's mode; its
 * routes' rules with the host, kind and ports of each backend service (vr_input). */
static void unit_input(const view_builder_t *b, size_t si, view_input_t *in)
{
    const view_service_t *s = b->svcs[si];
    vin_str(in, b->reg->mesh.trust_domain);
    vin_u64(in, vb_connect_timeout(b));
    vin_u64(in, vb_mtls(b, s->namespace_));
    vin_str(in, s->namespace_);
    vin_str(in, s->name);
    vin_str(in, b->hosts[si]);
    vin_u64(in, s->kind);
    vin_str(in, s->vip);
    vin_str(in, s->external_name);
    vin_u64(in, s->n_ports);
    for (size_t p = 0; p < s->n_ports; p++) {
        vin_u64(in, s->ports[p].port);
        vin_u64(in, s->ports[p].protocol);
    }
    vin_u64(in, s->n_service_accounts);
    for (size_t i = 0; i < s->n_service_accounts; i++)
        vin_str(in, s->service_accounts[i]);
    vin_u64(in, s->n_endpoints);
    for (size_t e = 0; e < s->n_endpoints; e++) {
        const view_endpoint_t *ep = &s->endpoints[e];
        vin_str(in, ep->address);
        vin_u64(in, ep->ready);
        vin_str(in, ep->zone ? ep->zone : "");
        vin_str(in, ep->service_account);
        for (size_t p = 0; p < s->n_ports; p++)
            vin_u64(in, view_endpoint_port(s, p, ep));
    }
    vr_input(b, si, in);
}

/* ---- units ---------------------------------------------------------------------------------- */

static void unit_unref(view_unit_t *u)
{
    if (u == NULL || atomic_fetch_sub_explicit(&u->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < u->n_res; i++) {
        free(u->res[i].name);
        view_blob_unref(u->res[i].blob);
    }
    free(u->res);
    view_blob_unref(u->outbound);
    for (size_t p = 0; p < u->n_ports; p++) {
        if (u->vh_own)
            view_blob_unref(u->vh_own[p]);
        if (u->vh_other)
            view_blob_unref(u->vh_other[p]);
    }
    free(u->vh_own);
    free(u->vh_other);
    free(u->ports);
    free(u->input);
    free(u->namespace_);
    free(u->name);
    free(u);
}

void view_memo_free(view_memo_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_units; i++)
        unit_unref(m->units[i]);
    free(m->units);
    free(m->outbound_head);
    free(m->outbound_key);
    free(m->outbound_states);
    view_blob_unref(m->outbound);
    for (size_t i = 0; i < m->n_routes; i++) {
        free(m->routes[i].ns);
        free(m->routes[i].key);
        free(m->routes[i].states);
        view_blob_unref(m->routes[i].blob);
    }
    free(m->routes);
    for (size_t i = 0; i < m->cap_inbound; i++) {
        free(m->inbound[i].input);
        view_blob_unref(m->inbound[i].blob);
    }
    free(m->inbound);
    free(m);
}

int vu_add(view_builder_t *b, view_unit_t *u, view_group_kind_t kind, const char *name, pbw_t *w)
{
    if (u->n_res == u->cap_res) {
        size_t cap = u->cap_res ? u->cap_res * 2 : 8;
        view_unit_res_t *v = realloc(u->res, cap * sizeof(*v));
        if (v == NULL) {
            pbw_reset(w);
            return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
        }
        u->res = v;
        u->cap_res = cap;
    }
    view_blob_t *blob;
    int rc = vb_encode(b, kind, "", name, w, &blob);
    if (rc < 0)
        return rc;
    char *copy = strdup(name);
    if (copy == NULL) {
        if (atomic_load(&blob->refs) == 0)
            free(blob);
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    }
    u->res[u->n_res++] = (view_unit_res_t){kind, copy, view_blob_ref(blob)};
    return 0;
}

view_blob_t *vb_fragment(view_builder_t *b, pbw_t *w, view_blob_t *prev)
{
    uint8_t *bytes;
    size_t len;
    char err[256];
    if (pbw_finish(w, &bytes, &len, err, sizeof(err)) < 0) {
        err_set(b->err, b->errlen, -EINVAL, "%s", err);
        return NULL;
    }
    if (prev && prev->len == len && memcmp(prev->bytes, bytes, len) == 0) {
        free(bytes);
        return view_blob_ref(prev);
    }
    view_blob_t *blob = malloc(sizeof(*blob) + len);
    if (blob == NULL) {
        free(bytes);
        err_set(b->err, b->errlen, -ENOMEM, "out of memory");
        return NULL;
    }
    atomic_init(&blob->refs, 1);
    blob->hash = 0; /* a part: never sent alone */
    blob->len = len;
    memcpy(blob->bytes, bytes, len);
    free(bytes);
    return blob;
}

static int unit_cmp(const char *ns, const char *name, const view_unit_t *u)
{
    int c = strcmp(ns, u->namespace_);
    return c ? c : strcmp(name, u->name);
}

/* prev's unit of that service, or NULL. */
static const view_unit_t *prev_unit(const view_builder_t *b, const view_service_t *s)
{
    const view_memo_t *m = b->prev_memo;
    size_t lo = 0, hi = m ? m->n_units : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = unit_cmp(s->namespace_, s->name, m->units[mid]);
        if (c == 0)
            return m->units[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int unit_encode(view_builder_t *b, size_t si, view_input_t *in, const view_unit_t *prev,
                       view_unit_t **out)
{
    const view_service_t *s = b->svcs[si];
    view_unit_t *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    atomic_init(&u->refs, 1);
    u->input = in->buf;
    u->input_len = in->len;
    in->buf = NULL;
    in->len = in->cap = 0;
    u->namespace_ = strdup(s->namespace_);
    u->name = strdup(s->name);
    u->n_ports = s->n_ports;
    u->vh_own = calloc(s->n_ports + 1, sizeof(*u->vh_own));
    u->vh_other = calloc(s->n_ports + 1, sizeof(*u->vh_other));
    u->ports = calloc(s->n_ports + 1, sizeof(*u->ports));
    int rc = 0;
    if (u->namespace_ == NULL || u->name == NULL || u->vh_own == NULL || u->vh_other == NULL ||
        u->ports == NULL)
        rc = err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    for (size_t p = 0; rc == 0 && p < s->n_ports; p++)
        u->ports[p] = s->ports[p].port;
    if (rc == 0)
        rc = vu_clusters(b, si, u);
    if (rc == 0)
        rc = vu_assignments(b, si, u);
    if (rc == 0)
        rc = vu_outbound(b, si, u, prev);
    if (rc == 0)
        rc = vu_routes(b, si, u, prev);
    if (rc < 0) {
        unit_unref(u);
        return rc;
    }
    *out = u;
    return 0;
}

int view_memo_units(view_builder_t *b)
{
    view_memo_t *m = b->memo = calloc(1, sizeof(*b->memo));
    if (m == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    m->units = calloc(b->n_svcs + 1, sizeof(*m->units));
    m->cap_inbound = 16;
    while (m->cap_inbound < 2 * b->reg->n_workloads)
        m->cap_inbound *= 2;
    m->inbound = calloc(m->cap_inbound, sizeof(*m->inbound));
    if (m->units == NULL || m->inbound == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    b->units = m->units;
    view_input_t in = {0};
    int rc = 0;
    for (size_t si = 0; si < b->n_svcs && rc == 0; si++) {
        in.len = 0;
        unit_input(b, si, &in);
        if (in.err) {
            rc = err_set(b->err, b->errlen, -ENOMEM, "out of memory");
            break;
        }
        const view_unit_t *prev = prev_unit(b, b->svcs[si]);
        if (prev && prev->input_len == in.len && memcmp(prev->input, in.buf, in.len) == 0) {
            view_unit_t *u = (view_unit_t *)prev;
            atomic_fetch_add_explicit(&u->refs, 1, memory_order_relaxed);
            m->units[m->n_units++] = u;
            continue;
        }
        rc = unit_encode(b, si, &in, prev, &m->units[m->n_units]);
        if (rc == 0)
            m->n_units++;
    }
    free(in.buf);
    return rc;
}

/* Whether u and p have resources of that kind of the same names, in the same order; *same:
 * and the same blobs. */
static bool same_names(const view_unit_t *u, const view_unit_t *p, view_group_kind_t kind,
                       bool *same)
{
    size_t i = 0, j = 0;
    *same = true;
    for (;;) {
        while (i < u->n_res && u->res[i].kind != kind)
            i++;
        while (j < p->n_res && p->res[j].kind != kind)
            j++;
        if (i == u->n_res || j == p->n_res)
            return i == u->n_res && j == p->n_res;
        if (strcmp(u->res[i].name, p->res[j].name) != 0)
            return false;
        *same &= u->res[i].blob == p->res[j].blob;
        i++, j++;
    }
}

static size_t count_kind(const view_unit_t *u, view_group_kind_t kind)
{
    size_t n = 0;
    for (size_t i = 0; i < u->n_res; i++)
        n += u->res[i].kind == kind;
    return n;
}

static int name_cmp(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int res_name_cmp(const void *x, const void *y)
{
    return strcmp((*(const view_unit_res_t *const *)x)->name,
                  (*(const view_unit_res_t *const *)y)->name);
}

/* How the units differ from prev's for one kind: units only here (added), only in prev
 * (dropped), or the same service with other names (both); units of the same names with other
 * blobs are patched in place. */
typedef struct unit_diff {
    const char **drop;
    const view_unit_res_t **add;
    size_t n_drop, n_add, cap_drop, cap_add;
    bool patch;
    int err;
} unit_diff_t;

static void diff_unit(unit_diff_t *d, const view_unit_t *u, view_group_kind_t kind, bool add)
{
    for (size_t i = 0; u && i < u->n_res && d->err == 0; i++) {
        if (u->res[i].kind != kind)
            continue;
        if (add && d->n_add == d->cap_add) {
            d->cap_add = d->cap_add ? d->cap_add * 2 : 16;
            const view_unit_res_t **v = realloc(d->add, d->cap_add * sizeof(*v));
            if (v == NULL)
                d->err = -ENOMEM;
            else
                d->add = v;
        } else if (!add && d->n_drop == d->cap_drop) {
            d->cap_drop = d->cap_drop ? d->cap_drop * 2 : 16;
            const char **v = realloc(d->drop, d->cap_drop * sizeof(*v));
            if (v == NULL)
                d->err = -ENOMEM;
            else
                d->drop = v;
        }
        if (d->err)
            break;
        if (add)
            d->add[d->n_add++] = &u->res[i];
        else
            d->drop[d->n_drop++] = u->res[i].name;
    }
}

/* Walks the units and prev's (both sorted by service) and fills d. */
static void diff_units(const view_memo_t *m, const view_memo_t *pm, view_group_kind_t kind,
                       unit_diff_t *d)
{
    size_t i = 0, j = 0;
    while ((i < m->n_units || j < pm->n_units) && d->err == 0) {
        const view_unit_t *u = i < m->n_units ? m->units[i] : NULL;
        const view_unit_t *p = j < pm->n_units ? pm->units[j] : NULL;
        int c = u == NULL ? 1 : p == NULL ? -1 : u == p ? 0 : unit_cmp(u->namespace_, u->name, p);
        bool same = true;
        if (c == 0 && u != p && !same_names(u, p, kind, &same)) {
            diff_unit(d, p, kind, false);
            diff_unit(d, u, kind, true);
        }
        d->patch |= !same;
        if (c < 0)
            diff_unit(d, u, kind, true);
        if (c > 0)
            diff_unit(d, p, kind, false);
        i += c <= 0;
        j += c >= 0;
    }
}

int vb_units_group(view_builder_t *b, int gi)
{
    const view_group_t *g = &b->groups[gi];
    const view_memo_t *m = b->memo, *pm = b->prev_memo;
    const view_group_t *pg = view_find_group(b->prev, g->kind, g->key);
    view_group_kind_t kind = g->kind;
    bool alike = pm && pg;
    for (size_t i = 0; alike && i < g->n; i++) {
        const view_resource_t *r = view_group_resource(pg, g->v[i].name);
        alike = r && r->blob == g->v[i].blob;
    }
    size_t n = g->n;
    for (size_t i = 0; alike && i < m->n_units; i++)
        n += count_kind(m->units[i], kind);
    unit_diff_t d = {0};
    if (alike)
        diff_units(m, pm, kind, &d);
    int rc = d.err ? err_set(b->err, b->errlen, d.err, "out of memory") : 1;
    if (rc == 1 && alike && n == pg->n + d.n_add - d.n_drop) {
        if (d.n_add == 0 && d.n_drop == 0) {
            rc = vb_group_from_prev(b, gi, pg, d.patch);
        } else {
            if (d.n_drop)
                qsort(d.drop, d.n_drop, sizeof(*d.drop), name_cmp);
            if (d.n_add)
                qsort(d.add, d.n_add, sizeof(*d.add), res_name_cmp);
            rc = vb_group_merge(b, gi, pg, d.drop, d.n_drop, d.add, d.n_add);
        }
    }
    free(d.drop);
    free(d.add);
    if (rc == 1) { /* prev's group cannot be reused: every resource, sorted when sealed */
        rc = 0;
        for (size_t i = 0; i < m->n_units && rc == 0; i++)
            rc = vb_add_unit(b, gi, m->units[i]);
        return rc;
    }
    /* The same names with other blobs (also in units merged in: their blobs are set again). */
    for (size_t i = 0; d.patch && i < m->n_units && rc == 0; i++) {
        const view_unit_t *u = m->units[i];
        if (pm && i < pm->n_units && u == pm->units[i])
            continue;
        for (size_t j = 0; j < u->n_res && rc == 0; j++)
            if (u->res[j].kind == kind)
                rc = vb_group_set(b, gi, u->res[j].name, u->res[j].blob);
    }
    return rc;
}

/* ---- assembled resources -------------------------------------------------------------------- */

/* Finishes w (reset) and appends its bytes to *buf (len *n). */
static int append_finished(view_builder_t *b, pbw_t *w, uint8_t **buf, size_t *n)
{
    uint8_t *bytes;
    size_t len;
    char err[256];
    int rc = pbw_finish(w, &bytes, &len, err, sizeof(err));
    if (rc < 0)
        return err_set(b->err, b->errlen, rc, "virtualOutbound: %s", err);
    uint8_t *p = realloc(*buf, *n + len + 1);
    if (p == NULL) {
        free(bytes);
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    }
    memcpy(p + *n, bytes, len);
    free(bytes);
    *buf = p;
    *n += len;
    return 0;
}

int vm_outbound(view_builder_t *b, pbw_t *head, pbw_t *tail, view_blob_t **out)
{
    view_memo_t *m = b->memo;
    const view_memo_t *pm = b->prev_memo;
    /* outbound_head holds the head's bytes then the tail's; hl is where the tail begins. */
    int rc = append_finished(b, head, &m->outbound_head, &m->outbound_head_len);
    size_t hl = m->outbound_head_len;
    if (rc == 0)
        rc = append_finished(b, tail, &m->outbound_head, &m->outbound_head_len);
    else
        pbw_reset(tail);
    if (rc < 0)
        return rc;
    m->outbound_hl = hl;
    m->outbound_key = calloc(m->n_units + 1, sizeof(*m->outbound_key));
    m->outbound_states = calloc(m->n_units + 1, sizeof(*m->outbound_states));
    if (m->outbound_key == NULL || m->outbound_states == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    m->n_outbound_key = m->n_units;
    for (size_t i = 0; i < m->n_units; i++)
        m->outbound_key[i] = m->units[i]->outbound;
    if (pm && pm->outbound && pm->outbound_head_len == m->outbound_head_len &&
        memcmp(pm->outbound_head, m->outbound_head, m->outbound_head_len) == 0 &&
        pm->n_outbound_key == m->n_outbound_key &&
        memcmp(pm->outbound_key, m->outbound_key, m->n_units * sizeof(*m->outbound_key)) == 0) {
        memcpy(m->outbound_states, pm->outbound_states,
               (m->n_units + 1) * sizeof(*m->outbound_states));
        *out = m->outbound = view_blob_ref(pm->outbound);
        return 0;
    }
    vb_parts_t in = {.head = m->outbound_head,
                     .hl = hl,
                     .parts = m->outbound_key,
                     .n = m->n_units,
                     .tail = m->outbound_head + hl,
                     .tl = m->outbound_head_len - hl,
                     .states = m->outbound_states};
    if (pm && pm->outbound && pm->outbound_hl == hl &&
        memcmp(pm->outbound_head, in.head, hl) == 0) {
        in.prev_states = pm->outbound_states;
        while (in.n_same < in.n && in.n_same < pm->n_outbound_key &&
               pm->outbound_key[in.n_same] == in.parts[in.n_same])
            in.n_same++;
    }
    view_blob_t *blob;
    rc = vb_assemble(b, VIEW_GROUP_OUTBOUND, b->n_namespaces ? b->namespaces[0] : "",
                     "virtualOutbound", &in, &blob);
    if (rc < 0)
        return rc;
    *out = m->outbound = view_blob_ref(blob);
    return 0;
}

static int route_cmp(const char *ns, uint16_t port, const route_memo_t *r)
{
    int c = strcmp(ns, r->ns);
    return c ? c : (int)port - (int)r->port;
}

static const route_memo_t *prev_route(const view_builder_t *b, const char *ns, uint16_t port)
{
    const view_memo_t *m = b->prev_memo;
    size_t lo = 0, hi = m ? m->n_routes : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = route_cmp(ns, port, &m->routes[mid]);
        if (c == 0)
            return &m->routes[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int vm_route(view_builder_t *b, int gi, const char *ns, uint16_t port, pbw_t *head,
             view_blob_t *const *vh, size_t n, pbw_t *tail)
{
    view_memo_t *m = b->memo;
    if (m->n_routes == m->cap_routes) {
        size_t cap = m->cap_routes ? m->cap_routes * 2 : 16;
        route_memo_t *v = realloc(m->routes, cap * sizeof(*v));
        if (v == NULL)
            goto nomem;
        m->routes = v;
        m->cap_routes = cap;
    }
    route_memo_t *r = &m->routes[m->n_routes];
    memset(r, 0, sizeof(*r));
    r->port = port;
    r->ns = strdup(ns);
    r->key = malloc((n + 1) * sizeof(*r->key));
    r->states = malloc((n + 1) * sizeof(*r->states));
    if (r->ns == NULL || r->key == NULL || r->states == NULL) {
        free(r->ns);
        free(r->key);
        free(r->states);
        goto nomem;
    }
    memcpy(r->key, vh, n * sizeof(*vh));
    r->n_key = n;
    m->n_routes++;
    const route_memo_t *p = prev_route(b, ns, port);
    char rname[8];
    snprintf(rname, sizeof(rname), "%u", port);
    if (p && p->n_key == n && memcmp(p->key, vh, n * sizeof(*vh)) == 0) {
        pbw_reset(head);
        pbw_reset(tail);
        memcpy(r->states, p->states, (n + 1) * sizeof(*r->states));
        r->blob = view_blob_ref(p->blob);
        return vb_add_blob(b, gi, rname, r->blob);
    }
    uint8_t *hb = NULL, *tb = NULL;
    size_t hl, tl;
    char err[256];
    int rc = pbw_finish(head, &hb, &hl, err, sizeof(err));
    if (rc == 0)
        rc = pbw_finish(tail, &tb, &tl, err, sizeof(err));
    else
        pbw_reset(tail);
    if (rc < 0) {
        free(hb);
        return err_set(b->err, b->errlen, rc, "route configuration '%s': %s", rname, err);
    }
    /* The head is the name, the same for the same port: prev's states hold up to the first
     * virtual host that differs. */
    vb_parts_t in = {
        .head = hb, .hl = hl, .parts = vh, .n = n, .tail = tb, .tl = tl, .states = r->states};
    if (p) {
        in.prev_states = p->states;
        while (in.n_same < n && in.n_same < p->n_key && p->key[in.n_same] == vh[in.n_same])
            in.n_same++;
    }
    view_blob_t *blob;
    rc = vb_assemble(b, VIEW_GROUP_ROUTES, ns, rname, &in, &blob);
    free(hb);
    free(tb);
    if (rc < 0)
        return rc;
    r->blob = view_blob_ref(blob);
    return vb_add_blob(b, gi, rname, blob);
nomem:
    pbw_reset(head);
    pbw_reset(tail);
    return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
}

/* ---- virtualInbound per input --------------------------------------------------------------- */

static inbound_memo_t *inbound_slot(const view_memo_t *m, const uint8_t *input, size_t len,
                                    uint64_t hash)
{
    if (m == NULL || m->cap_inbound == 0)
        return NULL;
    for (size_t i = hash & (m->cap_inbound - 1);; i = (i + 1) & (m->cap_inbound - 1)) {
        inbound_memo_t *e = &m->inbound[i];
        if (e->input == NULL ||
            (e->hash == hash && e->len == len && memcmp(e->input, input, len) == 0))
            return e;
    }
}

view_blob_t *vm_inbound_get(view_builder_t *b, const uint8_t *input, size_t len)
{
    uint64_t h = pbw_hash(PBW_HASH_INIT, input, len);
    inbound_memo_t *e = inbound_slot(b->memo, input, len, h);
    if (e && e->input)
        return e->blob;
    inbound_memo_t *p = inbound_slot(b->prev_memo, input, len, h);
    if (p && p->input && vm_inbound_put(b, input, len, p->blob) == 0)
        return p->blob;
    return NULL;
}

int vm_inbound_put(view_builder_t *b, const uint8_t *input, size_t len, view_blob_t *blob)
{
    uint64_t h = pbw_hash(PBW_HASH_INIT, input, len);
    inbound_memo_t *e = inbound_slot(b->memo, input, len, h);
    if (e->input)
        return 0;
    e->input = malloc(len ? len : 1);
    if (e->input == NULL)
        return err_set(b->err, b->errlen, -ENOMEM, "out of memory");
    memcpy(e->input, input, len);
    e->len = len;
    e->hash = h;
    e->blob = view_blob_ref(blob);
    return 0;
}

/* The memo the new view takes (b->memo, cleared). */
view_memo_t *view_memo_take(view_builder_t *b)
{
    view_memo_t *m = b->memo;
    b->memo = NULL;
    b->units = NULL;
    return m;
}
