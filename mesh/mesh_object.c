/* Objects (their blocks and references), kinds and protocols by name, reports, batches and the
 * sorted tables the index and the sources keep. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mesh/mesh_internal.h"

#define MESH_BLOCK_MIN 512

/* An object and its first block come in one allocation; the block follows the struct. */
typedef struct object_alloc {
    mesh_object_t obj;
    mesh_block_t first;
} object_alloc_t;

mesh_object_t *mesh_object_alloc(mesh_kind_t kind, size_t reserve)
{
    object_alloc_t *a = calloc(1, sizeof(*a) + reserve);
    if (a == NULL)
        return NULL;
    a->obj.meta.kind = kind;
    a->obj.refs = 1;
    if (reserve) {
        a->first.cap = reserve;
        a->obj.blocks = &a->first;
    }
    return &a->obj;
}

static mesh_block_t *block_new(mesh_block_t *next, size_t cap)
{
    mesh_block_t *b = malloc(sizeof(*b) + cap);
    if (b) {
        b->next = next;
        b->used = 0;
        b->cap = cap;
    }
    return b;
}

size_t mesh_object_size(const mesh_object_t *obj)
{
    /* a block starts aligned: in one block, the padding before an array may take up to 7 more
     * bytes for each block it replaces */
    size_t n = 0;
    for (const mesh_block_t *b = obj->blocks; b; b = b->next)
        n += b->used + (b->next ? sizeof(uint64_t) : 0);
    return n;
}

/* n bytes at the given alignment (a power of two, at most max_align_t's). */
static void *alloc_aligned(mesh_object_t *obj, size_t n, size_t align)
{
    static max_align_t empty;
    if (n == 0)
        return &empty; /* an empty array costs nothing and is never read */
    mesh_block_t *b = obj->blocks;
    size_t at = b ? (b->used + align - 1) & ~(align - 1) : 0;
    if (b == NULL || at > b->cap || b->cap - at < n) {
        /* Blocks grow with the object, so a big one costs a few allocations, not one per
         * string (the reader sizes the first block exactly on its second reading). */
        size_t cap = b ? b->cap * 2 : MESH_BLOCK_MIN;
        if (cap < n)
            cap = n;
        mesh_block_t *nb = block_new(b, cap);
        if (nb == NULL)
            return NULL;
        obj->blocks = b = nb;
        at = 0;
    }
    void *p = (char *)b->data + at;
    b->used = at + n;
    memset(p, 0, n);
    return p;
}

void *mesh_alloc(mesh_object_t *obj, size_t n)
{
    return alloc_aligned(obj, n,
                         sizeof(void *) > sizeof(uint64_t) ? sizeof(void *) : sizeof(uint64_t));
}

char *mesh_strndup(mesh_object_t *obj, const char *s, size_t len)
{
    char *p = alloc_aligned(obj, len + 1, 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

mesh_object_t *mesh_object_ref(mesh_object_t *obj)
{
    obj->refs++;
    return obj;
}

void mesh_object_unref(mesh_object_t *obj)
{
    if (obj == NULL || --obj->refs > 0)
        return;
    for (mesh_block_t *b = obj->blocks, *next; b; b = next) {
        next = b->next;
        if (b != &((object_alloc_t *)obj)->first)
            free(b);
    }
    free(obj);
}

int mesh_object_cmp(const mesh_object_t *a, const mesh_object_t *b)
{
    mesh_key_t k = mesh_key_of(a);
    return mesh_key_cmp_object(&k, b);
}

bool mesh_object_same(const mesh_object_t *a, const mesh_object_t *b)
{
    return mesh_object_cmp(a, b) == 0 && a->content_hash == b->content_hash;
}

mesh_key_t mesh_key_of(const mesh_object_t *obj)
{
    return (mesh_key_t){obj->meta.kind, obj->meta.ns, obj->meta.name};
}

int mesh_key_cmp_object(const void *key, const void *item)
{
    const mesh_key_t *k = key;
    const mesh_object_t *o = item;
    if (k->kind != o->meta.kind)
        return k->kind < o->meta.kind ? -1 : 1;
    int c = strcmp(k->ns, o->meta.ns);
    return c ? c : strcmp(k->name, o->meta.name);
}

uint64_t mesh_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

static const char *const kind_names[MESH_KIND_COUNT] = {
    [MESH_NAMESPACE] = "Namespace",
    [MESH_SERVICE] = "Service",
    [MESH_ENDPOINTS] = "Endpoints",
    [MESH_ENDPOINT_SLICE] = "EndpointSlice",
    [MESH_POD] = "Pod",
    [MESH_NETWORK_POLICY] = "NetworkPolicy",
    [MESH_HTTP_ROUTE] = "HTTPRoute",
};

const char *mesh_kind_name(mesh_kind_t kind)
{
    return (unsigned)kind < MESH_KIND_COUNT ? kind_names[kind] : "?";
}

int mesh_kind_from_name(const char *name)
{
    for (int k = 0; k < MESH_KIND_COUNT; k++)
        if (strcmp(kind_names[k], name) == 0)
            return k;
    return -1;
}

static const char *const proto_names[MESH_PROTO_COUNT] = {
    [MESH_PROTO_UNKNOWN] = "unknown",   [MESH_PROTO_HTTP] = "http",
    [MESH_PROTO_HTTP2] = "http2",       [MESH_PROTO_GRPC] = "grpc",
    [MESH_PROTO_GRPC_WEB] = "grpc-web", [MESH_PROTO_HTTPS] = "https",
    [MESH_PROTO_TLS] = "tls",           [MESH_PROTO_TCP] = "tcp",
    [MESH_PROTO_MONGO] = "mongo",       [MESH_PROTO_MYSQL] = "mysql",
    [MESH_PROTO_REDIS] = "redis",       [MESH_PROTO_UDP] = "udp",
};

const char *mesh_proto_name(mesh_app_proto_t proto)
{
    return (unsigned)proto < MESH_PROTO_COUNT ? proto_names[proto] : "unknown";
}

/* Istio's rule for a name: `<protocol>` or `<protocol>-<suffix>`, case-insensitive; grpc-web
 * is checked before the cut at the first '-', since it holds one. */
static mesh_app_proto_t proto_of_name(const char *name)
{
    if (strncasecmp(name, "grpc-web", 8) == 0 && (name[8] == '\0' || name[8] == '-'))
        return MESH_PROTO_GRPC_WEB;
    size_t n = strcspn(name, "-");
    for (int p = MESH_PROTO_HTTP; p < MESH_PROTO_COUNT; p++)
        if (p != MESH_PROTO_GRPC_WEB && strlen(proto_names[p]) == n &&
            strncasecmp(name, proto_names[p], n) == 0)
            return (mesh_app_proto_t)p;
    return MESH_PROTO_UNKNOWN;
}

mesh_app_proto_t mesh_port_protocol(mesh_l4_t l4, const char *app_protocol, const char *name)
{
    if (l4 == MESH_L4_UDP)
        return MESH_PROTO_UDP;
    if (app_protocol) {
        if (strcasecmp(app_protocol, "kubernetes.io/h2c") == 0)
            return MESH_PROTO_HTTP2;
        mesh_app_proto_t p = proto_of_name(app_protocol);
        if (p != MESH_PROTO_UNKNOWN)
            return p;
    }
    return name ? proto_of_name(name) : MESH_PROTO_UNKNOWN;
}

/* ---- labels and selectors ---------------------------------------------------------------- */

const char *mesh_label_get(const mesh_labels_t *labels, const char *key)
{
    size_t lo = 0, hi = labels->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, labels->items[mid].key);
        if (c == 0)
            return labels->items[mid].value;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

bool mesh_labels_match(const mesh_labels_t *selector, const mesh_labels_t *labels)
{
    for (size_t i = 0; i < selector->count; i++) {
        const char *v = mesh_label_get(labels, selector->items[i].key);
        if (v == NULL || strcmp(v, selector->items[i].value) != 0)
            return false;
    }
    return true;
}

static bool expr_holds(const mesh_sel_expr_t *e, const mesh_labels_t *labels)
{
    const char *v = mesh_label_get(labels, e->key);
    bool in = false;
    for (size_t i = 0; v && i < e->nvalues && !in; i++)
        in = strcmp(v, e->values[i]) == 0;
    switch (e->op) {
    case MESH_SEL_IN:
        return in;
    case MESH_SEL_NOT_IN: /* as Kubernetes: a missing label is not in the set */
        return !in;
    case MESH_SEL_EXISTS:
        return v != NULL;
    case MESH_SEL_DOES_NOT_EXIST:
        return v == NULL;
    }
    return false;
}

bool mesh_selector_match(const mesh_selector_t *sel, const mesh_labels_t *labels)
{
    if (!mesh_labels_match(&sel->match_labels, labels))
        return false;
    for (size_t i = 0; i < sel->nexprs; i++)
        if (!expr_holds(&sel->exprs[i], labels))
            return false;
    return true;
}

/* ---- reports ------------------------------------------------------------------------------ */

void mesh_report_free(mesh_report_t *r)
{
    for (size_t i = 0; i < r->nerrors; i++)
        free(r->errors[i]);
    for (size_t i = 0; i < r->nnotes; i++)
        free(r->notes[i]);
    free(r->errors);
    free(r->notes);
    memset(r, 0, sizeof(*r));
}

static int push_message(char ***list, size_t *n, char *msg)
{
    if (msg == NULL)
        return -ENOMEM;
    /* Past the cap, the last message becomes a count of the rest. */
    if (*n > MESH_REPORT_MAX) {
        unsigned long more = 0;
        sscanf((*list)[*n - 1], "... and %lu more", &more);
        free(msg);
        char *again = NULL;
        if (asprintf(&again, "... and %lu more", more + 1) < 0)
            return -ENOMEM;
        free((*list)[*n - 1]);
        (*list)[*n - 1] = again;
        return 0;
    }
    char **bigger = realloc(*list, (*n + 1) * sizeof(**list));
    if (bigger == NULL) {
        free(msg);
        return -ENOMEM;
    }
    *list = bigger;
    if (*n == MESH_REPORT_MAX) {
        free(msg);
        if (asprintf(&msg, "... and 1 more") < 0)
            return -ENOMEM;
    }
    bigger[(*n)++] = msg;
    return 0;
}

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

int mesh_report_error(mesh_report_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    return push_message(&r->errors, &r->nerrors, msg);
}

int mesh_report_note(mesh_report_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    return push_message(&r->notes, &r->nnotes, msg);
}

int mesh_report_move(mesh_report_t *to, mesh_report_t *from)
{
    int rc = 0;
    for (size_t i = 0; i < from->nerrors; i++) {
        if (rc == 0)
            rc = push_message(&to->errors, &to->nerrors, from->errors[i]);
        else
            free(from->errors[i]);
    }
    for (size_t i = 0; i < from->nnotes; i++) {
        if (rc == 0)
            rc = push_message(&to->notes, &to->nnotes, from->notes[i]);
        else
            free(from->notes[i]);
    }
    to->skipped += from->skipped;
    free(from->errors);
    free(from->notes);
    memset(from, 0, sizeof(*from));
    return rc;
}

/* ---- batches ------------------------------------------------------------------------------ */

int mesh_batch_add(mesh_batch_t *b, mesh_event_type_t type, mesh_object_t *obj)
{
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        mesh_event_t *ev = realloc(b->events, cap * sizeof(*ev));
        if (ev == NULL)
            return -ENOMEM;
        b->events = ev;
        b->cap = cap;
    }
    b->events[b->count++] = (mesh_event_t){type, mesh_object_ref(obj)};
    return 0;
}

void mesh_batch_free(mesh_batch_t *b)
{
    for (size_t i = 0; i < b->count; i++)
        mesh_object_unref(b->events[i].object);
    free(b->events);
    memset(b, 0, sizeof(*b));
}

/* ---- sorted tables ------------------------------------------------------------------------ */

size_t mesh_vec_find(const mesh_vec_t *v, const void *key, mesh_vec_cmp_fn cmp, bool *found)
{
    size_t lo = 0, hi = v->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp(key, v->items[mid]);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    *found = false;
    return lo;
}

int mesh_vec_insert(mesh_vec_t *v, size_t at, void *item)
{
    if (v->count == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        void **items = realloc(v->items, cap * sizeof(*items));
        if (items == NULL)
            return -ENOMEM;
        v->items = items;
        v->cap = cap;
    }
    memmove(v->items + at + 1, v->items + at, (v->count - at) * sizeof(*v->items));
    v->items[at] = item;
    v->count++;
    return 0;
}

void mesh_vec_remove(mesh_vec_t *v, size_t at)
{
    memmove(v->items + at, v->items + at + 1, (v->count - at - 1) * sizeof(*v->items));
    v->count--;
}

void mesh_vec_free(mesh_vec_t *v)
{
    free(v->items);
    memset(v, 0, sizeof(*v));
}
