/* One simulated sidecar of xds_load: a gRPC connection with one ADS stream (state of the world
 * or delta) and the little protocol state an Envoy keeps for it: what it subscribes, the last
 * version and nonce per type, what it holds (names and versions only), and what its clusters and
 * listeners reference, which it follows as Envoy does (EDS from clusters, RDS from listeners,
 * SDS from both). Resources are never decoded here: their bytes go through the shared cache. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench/xds_load.h"

#include "envoy/service/discovery/v3/discovery.pb-c.h"

#define BACKOFF_BASE_MS 100
#define BACKOFF_MAX_MS  2000
#define MAX_RECV        (64u << 20)
#define NACK_CODE       3 /* google.rpc.Code INVALID_ARGUMENT, as Envoy NACKs */
/* A sidecar that reconnects in a loop does so this long after each stream ends: a crash loop
 * of about 100 streams a second (with no wait at all it is thousands, a flood that measures
 * the CPU both processes share rather than the control plane's handling of it). */
#define RECONNECT_LOOP_MS 10

/* Names sorted by pointer (they are interned), no duplicates. */
typedef struct names {
    const char **v;
    size_t n, cap;
} names_t;

/* What a sidecar holds of one type: by name (sorted by pointer), its version (delta) and, for
 * clusters and listeners, the cache entry its references come from. */
typedef struct held {
    const char *name, *version;
    const xl_res_t *res;
} held_t;

typedef struct heldset {
    held_t *v;
    size_t n, cap;
} heldset_t;

typedef struct tstate {
    names_t sub;         /* named types: the names subscribed */
    bool requested;      /* a request for the type went out on this stream */
    const char *version; /* interned: the last version ACKed ("" none) */
    char *nonce;         /* the last response's nonce on this stream, or NULL */
    heldset_t held;
    xl_type_counts_t c;
} tstate_t;

/* What the held clusters and listeners reference. */
enum { REF_EDS_OF_CDS, REF_SDS_OF_CDS, REF_RDS_OF_LDS, REF_SDS_OF_LDS, NREFSETS };

struct xl_sidecar {
    xl_run_t *x;
    unsigned idx;
    xl_fault_t fault;
    char *id;
    grpc_conn_t *conn;
    grpc_call_t *call;
    uv_timer_t timer;
    unsigned attempt;
    bool node_sent, closing, full, ready;
    unsigned acked; /* bit per type: ACKed on this stream */
    names_t refs[NREFSETS];
    tstate_t t[XL_NTYPES];
};

static bool is_wildcard(int type)
{
    return type == XL_CDS || type == XL_LDS;
}

static bool ptr_less(const void *a, const void *b)
{
    return (uintptr_t)a < (uintptr_t)b;
}

static int cmp_ptr(const void *a, const void *b)
{
    const void *x = *(const void *const *)a, *y = *(const void *const *)b;
    return ptr_less(x, y) ? -1 : ptr_less(y, x) ? 1 : 0;
}

static int cmp_held(const void *a, const void *b)
{
    return cmp_ptr(&((const held_t *)a)->name, &((const held_t *)b)->name);
}

static int reserve(void **v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *nv = realloc(*v, n * size);
    if (nv == NULL)
        return -ENOMEM;
    *v = nv;
    *cap = n;
    return 0;
}

static bool names_equal(const names_t *a, const names_t *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof(*a->v)) == 0);
}

/* Sorts and deduplicates n->v. */
static void names_normalize(names_t *n)
{
    if (n->n < 2)
        return; /* (and qsort must not see a NULL array) */
    qsort(n->v, n->n, sizeof(*n->v), cmp_ptr);
    size_t k = 0;
    for (size_t i = 0; i < n->n; i++)
        if (k == 0 || n->v[k - 1] != n->v[i])
            n->v[k++] = n->v[i];
    n->n = k;
}

static int names_copy(names_t *dst, const names_t *src)
{
    if (reserve((void **)&dst->v, &dst->cap, src->n, sizeof(*dst->v)) < 0)
        return -ENOMEM;
    if (src->n)
        memcpy(dst->v, src->v, src->n * sizeof(*src->v));
    dst->n = src->n;
    return 0;
}

static held_t *held_find(const heldset_t *h, const char *name)
{
    held_t key = {.name = name};
    return h->n ? bsearch(&key, h->v, h->n, sizeof(*h->v), cmp_held) : NULL;
}

static int held_put(heldset_t *h, const char *name, const char *version, const xl_res_t *res)
{
    held_t *e = held_find(h, name);
    if (e) {
        e->version = version, e->res = res;
        return 0;
    }
    if (reserve((void **)&h->v, &h->cap, h->n + 1, sizeof(*h->v)) < 0)
        return -ENOMEM;
    size_t i = h->n;
    while (i > 0 && ptr_less(name, h->v[i - 1].name))
        i--;
    memmove(&h->v[i + 1], &h->v[i], (h->n - i) * sizeof(*h->v));
    h->v[i] = (held_t){name, version, res};
    h->n++;
    return 0;
}

static void held_drop(heldset_t *h, const char *name)
{
    held_t *e = name ? held_find(h, name) : NULL;
    if (e == NULL)
        return;
    size_t i = (size_t)(e - h->v);
    memmove(&h->v[i], &h->v[i + 1], (h->n - i - 1) * sizeof(*h->v));
    h->n--;
}

/* --- requests ---------------------------------------------------------------------------- */

static uint8_t *out_buf;
static size_t out_cap;
static Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry *irv;
static Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry **irvp;
static size_t irv_cap, irvp_cap;

/* The sidecar's Node, filled for its stream's first request: id, cluster and the metadata of the
 * options (string values, {pod} and {namespace} replaced). *strs gets what to free. */
typedef struct node_parts {
    Envoy__Config__Core__V3__Node node;
    Google__Protobuf__Struct md;
    Google__Protobuf__Struct__FieldsEntry *ent, **entp;
    Google__Protobuf__Value *val;
    char **strs;
    size_t n;
} node_parts_t;

static void node_parts_free(node_parts_t *np)
{
    for (size_t i = 0; i < np->n; i++)
        free(np->strs[i]);
    free(np->strs), free(np->ent), free(np->entp), free(np->val);
}

static int node_parts_fill(const xl_sidecar_t *s, node_parts_t *np)
{
    const xl_opts_t *o = xl_run_opts(s->x);
    memset(np, 0, sizeof(*np));
    envoy__config__core__v3__node__init(&np->node);
    np->node.id = s->id;
    np->node.cluster = (char *)o->node_cluster;
    if (o->nmeta == 0)
        return 0;
    np->ent = calloc(o->nmeta, sizeof(*np->ent));
    np->entp = calloc(o->nmeta, sizeof(*np->entp));
    np->val = calloc(o->nmeta, sizeof(*np->val));
    np->strs = calloc(o->nmeta, sizeof(*np->strs));
    if (!np->ent || !np->entp || !np->val || !np->strs)
        return -ENOMEM;
    const char *dot = strchr(s->id, '.');
    char pod[256];
    snprintf(pod, sizeof(pod), "%.*s", dot ? (int)(dot - s->id) : (int)strlen(s->id), s->id);
    const char *keys[] = {"{pod}", "{namespace}"};
    const char *vals[] = {pod, dot ? dot + 1 : ""};
    for (size_t i = 0; i < o->nmeta; i++) {
        if ((np->strs[i] = xl_subst(o->meta[i].value, keys, vals, 2)) == NULL)
            return -ENOMEM;
        np->n++;
        google__protobuf__struct__fields_entry__init(&np->ent[i]);
        google__protobuf__value__init(&np->val[i]);
        np->val[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        np->val[i].string_value = np->strs[i];
        np->ent[i].key = (char *)o->meta[i].key;
        np->ent[i].value = &np->val[i];
        np->entp[i] = &np->ent[i];
    }
    google__protobuf__struct__init(&np->md);
    np->md.n_fields = o->nmeta;
    np->md.fields = np->entp;
    np->node.metadata = &np->md;
    return 0;
}

static int send_packed(xl_sidecar_t *s, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    if (reserve((void **)&out_buf, &out_cap, len ? len : 1, 1) < 0)
        return -ENOMEM;
    protobuf_c_message_pack(m, out_buf);
    return s->call ? grpc_call_send(s->call, out_buf, len) : -ENOTCONN;
}

/* What one request of a type carries beyond the type. */
typedef struct req {
    const char *nonce; /* NULL: none */
    const char *error; /* NULL: no error_detail (an ACK) */
    /* SotW: the resource names (named types); delta: subscribe and unsubscribe. */
    const names_t *names, *unsub;
    bool initial_versions; /* delta: initial_resource_versions from what is held */
} req_t;

static int send_sotw(xl_sidecar_t *s, int type, const req_t *r, node_parts_t *np,
                     Google__Rpc__Status *st)
{
    Envoy__Service__Discovery__V3__DiscoveryRequest q =
        ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
    q.version_info = (char *)s->t[type].version;
    q.type_url = (char *)xl_type_url[type];
    q.response_nonce = (char *)(r->nonce ? r->nonce : "");
    q.node = np ? &np->node : NULL;
    q.error_detail = st;
    if (r->names) {
        q.n_resource_names = r->names->n;
        q.resource_names = (char **)r->names->v;
    }
    return send_packed(s, &q.base);
}

static int send_delta(xl_sidecar_t *s, int type, const req_t *r, node_parts_t *np,
                      Google__Rpc__Status *st)
{
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest q =
        ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    q.type_url = (char *)xl_type_url[type];
    q.response_nonce = (char *)(r->nonce ? r->nonce : "");
    q.node = np ? &np->node : NULL;
    q.error_detail = st;
    if (r->names) {
        q.n_resource_names_subscribe = r->names->n;
        q.resource_names_subscribe = (char **)r->names->v;
    }
    if (r->unsub) {
        q.n_resource_names_unsubscribe = r->unsub->n;
        q.resource_names_unsubscribe = (char **)r->unsub->v;
    }
    const heldset_t *h = &s->t[type].held;
    if (r->initial_versions && h->n) {
        if (reserve((void **)&irv, &irv_cap, h->n, sizeof(*irv)) < 0 ||
            reserve((void **)&irvp, &irvp_cap, h->n, sizeof(*irvp)) < 0)
            return -ENOMEM;
        for (size_t i = 0; i < h->n; i++) {
            envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init(
                &irv[i]);
            irv[i].key = (char *)h->v[i].name;
            irv[i].value = (char *)h->v[i].version;
            irvp[i] = &irv[i];
        }
        q.n_initial_resource_versions = h->n;
        q.initial_resource_versions = irvp;
    }
    return send_packed(s, &q.base);
}

/* Sends one request of type; the node goes with the stream's first. */
static int send_request(xl_sidecar_t *s, int type, const req_t *r)
{
    node_parts_t np;
    bool with_node = !s->node_sent;
    if (with_node && node_parts_fill(s, &np) < 0) {
        node_parts_free(&np);
        return -ENOMEM;
    }
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = NACK_CODE;
    st.message = (char *)r->error;
    Google__Rpc__Status *stp = r->error ? &st : NULL;
    int rc = xl_run_opts(s->x)->delta ? send_delta(s, type, r, with_node ? &np : NULL, stp)
                                      : send_sotw(s, type, r, with_node ? &np : NULL, stp);
    if (with_node) {
        node_parts_free(&np);
        s->node_sent = rc == 0;
    }
    s->t[type].requested = true;
    return rc;
}

/* The first request of type on a new stream: what is subscribed, and what is held. */
static int send_initial(xl_sidecar_t *s, int type)
{
    tstate_t *t = &s->t[type];
    req_t r = {.names = is_wildcard(type) ? NULL : &t->sub, .initial_versions = true};
    return send_request(s, type, &r);
}

/* A named type's subscription changed from old to t->sub: ask for the new one. */
static int send_resubscribe(xl_sidecar_t *s, int type, const names_t *old)
{
    tstate_t *t = &s->t[type];
    if (!t->requested)
        return t->sub.n ? send_initial(s, type) : 0;
    if (!xl_run_opts(s->x)->delta) {
        req_t r = {.nonce = t->nonce, .names = &t->sub};
        return send_request(s, type, &r);
    }
    names_t add = {0}, del = {0};
    int rc = 0;
    size_t i = 0, j = 0;
    while (rc == 0 && (i < t->sub.n || j < old->n)) {
        bool take_new = j == old->n || (i < t->sub.n && ptr_less(t->sub.v[i], old->v[j]));
        bool take_old = i == t->sub.n || (j < old->n && ptr_less(old->v[j], t->sub.v[i]));
        names_t *to = take_new ? &add : take_old ? &del : NULL;
        const char *name = take_new ? t->sub.v[i++] : take_old ? old->v[j++] : (i++, old->v[j++]);
        if (to && (rc = reserve((void **)&to->v, &to->cap, to->n + 1, sizeof(*to->v))) == 0)
            to->v[to->n++] = name;
        if (to == &del)
            held_drop(&t->held, name);
    }
    req_t r = {.names = &add, .unsub = &del};
    if (rc == 0)
        rc = send_request(s, type, &r);
    free(add.v), free(del.v);
    return rc;
}

/* --- following references ---------------------------------------------------------------- */

/* refs[set] from what the held resources of type reference (kind XL_REF_DEP or XL_REF_SDS). */
static int refs_collect(xl_sidecar_t *s, int set, int type, int kind)
{
    names_t *n = &s->refs[set];
    const heldset_t *h = &s->t[type].held;
    n->n = 0;
    for (size_t i = 0; i < h->n; i++) {
        const xl_res_t *r = h->v[i].res;
        if (r == NULL || r->nrefs[kind] == 0)
            continue;
        if (reserve((void **)&n->v, &n->cap, n->n + r->nrefs[kind], sizeof(*n->v)) < 0)
            return -ENOMEM;
        memcpy(&n->v[n->n], r->refs[kind], r->nrefs[kind] * sizeof(*n->v));
        n->n += r->nrefs[kind];
    }
    names_normalize(n);
    return 0;
}

/* Sets type's subscription to the union of a and b (b may be NULL) and asks for it if it
 * changed. */
static int follow(xl_sidecar_t *s, int type, const names_t *a, const names_t *b)
{
    tstate_t *t = &s->t[type];
    names_t want = {0}, old = {0};
    int rc = names_copy(&want, a);
    if (rc == 0 && b) {
        rc = reserve((void **)&want.v, &want.cap, a->n + b->n, sizeof(*want.v));
        if (rc == 0 && b->n) {
            memcpy(&want.v[a->n], b->v, b->n * sizeof(*b->v));
            want.n += b->n;
            names_normalize(&want);
        }
    }
    if (rc == 0 && !names_equal(&want, &t->sub)) {
        old = t->sub;
        t->sub = want;
        want = (names_t){0};
        rc = send_resubscribe(s, type, &old);
    }
    free(want.v), free(old.v);
    return rc;
}

/* After clusters or listeners changed: what they reference, subscribed. */
static int follow_refs(xl_sidecar_t *s, int type)
{
    int rc;
    if (type == XL_CDS) {
        if ((rc = refs_collect(s, REF_EDS_OF_CDS, XL_CDS, XL_REF_DEP)) < 0 ||
            (rc = refs_collect(s, REF_SDS_OF_CDS, XL_CDS, XL_REF_SDS)) < 0 ||
            (rc = follow(s, XL_EDS, &s->refs[REF_EDS_OF_CDS], NULL)) < 0)
            return rc;
    } else {
        if ((rc = refs_collect(s, REF_RDS_OF_LDS, XL_LDS, XL_REF_DEP)) < 0 ||
            (rc = refs_collect(s, REF_SDS_OF_LDS, XL_LDS, XL_REF_SDS)) < 0 ||
            (rc = follow(s, XL_RDS, &s->refs[REF_RDS_OF_LDS], NULL)) < 0)
            return rc;
    }
    return follow(s, XL_SDS, &s->refs[REF_SDS_OF_CDS], &s->refs[REF_SDS_OF_LDS]);
}

/* --- responses --------------------------------------------------------------------------- */

/* One resource of a response, resolved through the cache. */
typedef struct item {
    const char *name, *version;
    const xl_res_t *res;
} item_t;

static item_t *items;
static size_t items_cap;

/* Resolves the resources of rsp into items; err says why one does not decode. Returns how many
 * items, or -ENOMEM. */
static long resolve(int type, bool delta, const xl_response_t *rsp, char *err, size_t errlen)
{
    if (reserve((void **)&items, &items_cap, rsp->nres ? rsp->nres : 1, sizeof(*items)) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < rsp->nres; i++) {
        const xl_wire_res_t *w = &rsp->res[i];
        item_t *it = &items[i];
        it->res = NULL;
        it->name = delta ? xl_intern((const char *)w->name.p, w->name.n) : NULL;
        it->version = delta ? xl_intern((const char *)w->version.p, w->version.n) : "";
        if ((delta && (it->name == NULL || it->version == NULL)))
            return -ENOMEM;
        if (!w->has_any || xl_type_of(w->type_url.p, w->type_url.n) != type) {
            if (err[0] == '\0')
                snprintf(err, errlen, "%s[%zu]: not a resource of type %s", xl_type_name[type], i,
                         xl_type_url[type]);
            continue;
        }
        if ((it->res = xl_res_get(type, w->value.p, w->value.n)) == NULL)
            return -ENOMEM;
        if (it->res->bad && err[0] == '\0' && delta)
            snprintf(err, errlen, "%s['%s']: does not decode", xl_type_name[type], it->name);
        else if (it->res->bad && err[0] == '\0')
            snprintf(err, errlen, "%s[%zu]: does not decode", xl_type_name[type], i);
        if (!delta)
            it->name = it->res->name;
    }
    return (long)rsp->nres;
}

/* Applies an accepted response's items (n) to what type holds. */
static int apply(xl_sidecar_t *s, int type, bool delta, const xl_response_t *rsp, size_t n)
{
    heldset_t *h = &s->t[type].held;
    if (!delta) {
        if (!is_wildcard(type))
            return 0; /* nothing of endpoints, routes and secrets is followed further */
        if (reserve((void **)&h->v, &h->cap, n, sizeof(*h->v)) < 0)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++)
            h->v[i] = (held_t){items[i].name, "", items[i].res};
        h->n = n;
        if (n > 1)
            qsort(h->v, h->n, sizeof(*h->v), cmp_held);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (held_put(h, items[i].name, items[i].version, is_wildcard(type) ? items[i].res : NULL) <
            0)
            return -ENOMEM;
    for (size_t i = 0; i < rsp->nremoved; i++)
        held_drop(h, xl_intern_find((const char *)rsp->removed[i].p, rsp->removed[i].n));
    return 0;
}

static unsigned needed_types(const xl_sidecar_t *s)
{
    unsigned need = 1u << XL_CDS | 1u << XL_LDS;
    for (int t = XL_EDS; t < XL_NTYPES; t++)
        if (!is_wildcard(t) && s->t[t].sub.n)
            need |= 1u << t;
    return need;
}

static void end_stream(xl_sidecar_t *s)
{
    if (s->call)
        grpc_call_cancel(s->call);
}

/* A misbehaving sidecar's response: counted, never answered; the one that reconnects in a loop
 * ends its stream (and connects again at once, stream_lost). */
static void on_fault_response(xl_sidecar_t *s, size_t len)
{
    xl_run_on_fault(s->x, s->fault, XL_FC_RESPONSES, 1);
    xl_run_on_fault(s->x, s->fault, XL_FC_BYTES, len);
    if (s->fault == XL_FAULT_RECONNECT)
        end_stream(s);
}

/* Takes in one response: resolve, apply or reject, answer, follow references. */
static void on_response(xl_sidecar_t *s, const uint8_t *msg, size_t len)
{
    if (s->fault != XL_FAULT_NONE) {
        on_fault_response(s, len);
        return;
    }
    uint64_t rx = xl_now_ns();
    bool delta = xl_run_opts(s->x)->delta;
    xl_response_t rsp;
    if (xl_response_read(delta, msg, len, &rsp) < 0) {
        xl_run_on_bytes(s->x, -1, len);
        xl_run_on_bad_response(s->x, s);
        end_stream(s);
        return;
    }
    int type = xl_type_of(rsp.type_url.p, rsp.type_url.n);
    xl_run_on_bytes(s->x, type, len);
    if (type < 0)
        return;
    tstate_t *t = &s->t[type];
    s->attempt = 0;
    t->c.responses++, t->c.bytes += len, t->c.rx_ns = rx;
    char *nonce = strndup((const char *)rsp.nonce.p, rsp.nonce.n);
    const char *version = xl_intern((const char *)rsp.version.p, rsp.version.n);
    char err[512] = "";
    long n = nonce && version ? resolve(type, delta, &rsp, err, sizeof(err)) : -ENOMEM;
    if (n < 0 || (err[0] == '\0' && apply(s, type, delta, &rsp, (size_t)n) < 0)) {
        free(nonce);
        end_stream(s); /* out of memory: start over on a new stream */
        return;
    }
    free(t->nonce);
    t->nonce = nonce;
    bool ok = err[0] == '\0';
    if (ok)
        t->version = version;
    req_t r = {.nonce = nonce, .error = ok ? NULL : err, .names = delta ? NULL : &t->sub};
    if (is_wildcard(type) && !delta)
        r.names = NULL;
    send_request(s, type, &r);
    uint64_t ack = xl_now_ns();
    t->c.ack_ns = ack;
    if (ok) {
        t->c.acks++;
        s->acked |= 1u << type;
        if (is_wildcard(type) && follow_refs(s, type) < 0)
            end_stream(s);
    } else {
        t->c.nacks++;
    }
    xl_run_on_answer(s->x, s, type, rx, ack, ok);
    unsigned need = needed_types(s);
    if (!s->full && s->call && (s->acked & need) == need) {
        s->full = true;
        xl_run_on_full(s->x, s, ack);
    }
}

/* --- the connection ---------------------------------------------------------------------- */

static void stream_lost(xl_sidecar_t *s, const char *why);
static void on_timer(uv_timer_t *tm);

static void call_on_message(grpc_call_t *call, const uint8_t *msg, size_t len, void *user)
{
    xl_sidecar_t *s = user;
    if (s->call == call)
        on_response(s, msg, len);
}

static void call_on_close(grpc_call_t *call, int code, const char *message, void *user)
{
    (void)message;
    xl_sidecar_t *s = user;
    if (s->call != call)
        return;
    if (!s->ready) {
        s->call = NULL; /* the connection failed: its CLOSED follows, with the reason */
        return;
    }
    stream_lost(s, grpc_code_name(code));
}

static const grpc_call_ops_t call_ops = {call_on_message, call_on_close};

static void conn_on_state(grpc_conn_t *c, grpc_conn_state_t st, int error, void *user)
{
    xl_sidecar_t *s = user;
    if (s->conn != c)
        return;
    if (st == GRPC_CONN_READY) {
        s->ready = true;
        xl_run_on_ready(s->x, s);
    } else if (st == GRPC_CONN_CLOSED) {
        stream_lost(s, error ? uv_err_name(error) : "GOAWAY");
    }
}

static uint64_t backoff_ms(unsigned attempt)
{
    uint64_t d = attempt >= 5 ? BACKOFF_MAX_MS : (uint64_t)BACKOFF_BASE_MS << attempt;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    return d / 2 + (uint64_t)rand() % (d / 2 + 1); /* jitter: between half and all of it */
}

static void stream_reset(xl_sidecar_t *s)
{
    s->node_sent = false;
    s->acked = 0;
    for (int i = 0; i < XL_NTYPES; i++) {
        free(s->t[i].nonce);
        s->t[i].nonce = NULL;
        s->t[i].requested = false;
    }
}

/* The stream or its connection ended (why: a gRPC status or libuv error name): close the
 * connection, try again after a backoff. */
static void stream_lost(xl_sidecar_t *s, const char *why)
{
    grpc_conn_t *c = s->conn;
    s->conn = NULL, s->call = NULL;
    if (c)
        grpc_conn_close(c);
    bool was_full = s->full, was_ready = s->ready;
    s->full = false, s->ready = false;
    stream_reset(s);
    uint64_t delay = backoff_ms(s->attempt++);
    if (s->fault == XL_FAULT_RECONNECT)
        delay = RECONNECT_LOOP_MS; /* a tight loop: soon, every time, never backing off */
    else if (s->fault == XL_FAULT_GARBAGE)
        delay = backoff_ms(0); /* and again, never backing off further */
    if (!s->closing)
        uv_timer_start(&s->timer, on_timer, delay, 0);
    xl_run_on_lost(s->x, s, was_full, was_ready, why);
}

static void sidecar_connect(xl_sidecar_t *s)
{
    grpc_conn_opts_t o = {.max_recv_message = MAX_RECV,
                          .connect_timeout_ms = xl_run_opts(s->x)->connect_timeout_ms,
                          .on_state = conn_on_state,
                          .user = s};
    stream_reset(s);
    int rc = grpc_conn_new(xl_run_loop(s->x), xl_run_addr(s->x), &o, &s->conn);
    if (rc < 0) {
        s->conn = NULL;
        xl_sidecar_start(s, backoff_ms(s->attempt++));
        return;
    }
    const char *method = xl_run_opts(s->x)->delta
                             ? "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
                               "DeltaAggregatedResources"
                             : "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
                               "StreamAggregatedResources";
    grpc_call_opts_t co = {.path = method};
    if (grpc_call_start(s->conn, &co, &call_ops, s, &s->call) < 0) {
        stream_lost(s, "call not started");
        return;
    }
    if (s->fault == XL_FAULT_GARBAGE) {
        xl_run_on_fault(s->x, s->fault, XL_FC_STREAMS, 1);
        /* A length-delimited field 1 whose length runs past the message: no request decodes. */
        static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'g',  'a',
                                          'r',  'b',  'a',  'g',  'e',  0xff, 0xfe, 0xfd};
        if (grpc_call_send(s->call, garbage, sizeof(garbage)) == 0)
            xl_run_on_fault(s->x, s->fault, XL_FC_GARBAGE, 1);
        return;
    }
    if (s->fault != XL_FAULT_NONE)
        xl_run_on_fault(s->x, s->fault, XL_FC_STREAMS, 1);
    for (int type = 0; type < XL_NTYPES; type++)
        if (is_wildcard(type) || s->t[type].sub.n)
            send_initial(s, type);
}

static void on_timer(uv_timer_t *tm)
{
    xl_sidecar_t *s = tm->data;
    if (!s->closing && s->conn == NULL)
        sidecar_connect(s);
}

xl_sidecar_t *xl_sidecar_new(xl_run_t *x, unsigned idx, const char *id, xl_fault_t fault)
{
    xl_sidecar_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->id = strdup(id)) == NULL) {
        free(s);
        return NULL;
    }
    s->x = x, s->idx = idx, s->fault = fault;
    for (int i = 0; i < XL_NTYPES; i++)
        s->t[i].version = "";
    uv_timer_init(xl_run_loop(x), &s->timer);
    s->timer.data = s;
    return s;
}

void xl_sidecar_start(xl_sidecar_t *s, uint64_t delay_ms)
{
    uv_timer_start(&s->timer, on_timer, delay_ms, 0);
}

static void on_timer_closed(uv_handle_t *h)
{
    xl_sidecar_t *s = h->data;
    for (int i = 0; i < NREFSETS; i++)
        free(s->refs[i].v);
    for (int i = 0; i < XL_NTYPES; i++) {
        free(s->t[i].sub.v);
        free(s->t[i].held.v);
        free(s->t[i].nonce);
    }
    free(s->id);
    free(s);
}

void xl_sidecar_close(xl_sidecar_t *s)
{
    s->closing = true;
    grpc_conn_t *c = s->conn;
    s->conn = NULL, s->call = NULL;
    if (c)
        grpc_conn_close(c);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

xl_fault_t xl_sidecar_fault(const xl_sidecar_t *s)
{
    return s->fault;
}

unsigned xl_sidecar_index(const xl_sidecar_t *s)
{
    return s->idx;
}

void xl_sidecar_counts(const xl_sidecar_t *s, int type, xl_type_counts_t *out)
{
    *out = s->t[type].c;
}

void xl_stream_scratch_free(void)
{
    free(out_buf), free(irv), free(irvp), free(items);
    out_buf = NULL, irv = NULL, irvp = NULL, items = NULL;
    out_cap = irv_cap = irvp_cap = items_cap = 0;
}
