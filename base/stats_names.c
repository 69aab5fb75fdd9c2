/* Shared name storage of the stats registry: symbols, groups and 8-byte stats, each kind found
 * through its own hash index, and stat names compared and hashed piece by piece so that finding
 * an existing stat formats nothing. 1,000 clusters of 30 stats share "cluster",
 * "envoy_cluster_name" and the 30 metric names; each adds its name once, one group, and 30
 * packed stats. */
#include "base/stats_names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A stat packed in 64 bits: slot id, kind, group, metric symbol (SYM_NONE when tagged). The
 * store has at most 2^19 slots, so at most 2^19 stats and 2^19 groups (a group is added only
 * with its first stat); symbols are capped below. */
#define DEF_ID_BITS     19
#define DEF_KIND_BITS   2
#define DEF_GROUP_BITS  21
#define DEF_METRIC_BITS 22
_Static_assert((STATS_MAX_BLOCKS << STATS_BLOCK_SHIFT) <= (1u << DEF_ID_BITS),
               "a stat's slot id must fit its packed field");
_Static_assert(DEF_ID_BITS + DEF_KIND_BITS + DEF_GROUP_BITS + DEF_METRIC_BITS == 64,
               "a packed stat is 64 bits");
#define MAX_SYMS   ((1u << DEF_METRIC_BITS) - 1) /* also below 2^INDEX_ELEM_BITS */
#define MAX_GROUPS ((1u << DEF_GROUP_BITS) - 1)

#define SYM_SHIFT   10
#define GROUP_SHIFT 9
#define DEF_SHIFT   10

/* Strings shorter than this share arena chunks; longer ones get a chunk of their own. */
#define ARENA_CHUNK 4096
#define ARENA_SHARE 512

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    char bytes[];
};

/* Scoped: a, b, c are the scope, label name and label value symbols (b and c SYM_NONE without a
 * label value). Tagged: a is the family (as given, escaped when rendered), b the given name or
 * SYM_NONE when built, c the offset of its labels in the tag pool. */
typedef struct stat_group {
    uint32_t a, b, c;
    uint32_t tags; /* TAGGED | number of labels, for tagged groups; 0 for scoped */
} stat_group_t;
#define TAGGED 0x80000000u

/* ---- chunked arrays ------------------------------------------------------------------------- */

static void *chunks_at(const stats_chunks_t *a, uint32_t i, size_t elem, unsigned shift)
{
    return (char *)a->chunks[i >> shift] + (size_t)(i & ((1u << shift) - 1)) * elem;
}

/* Room for one more element, zeroed; returns it (a->n not yet counted) or NULL. */
static void *chunks_room(stats_chunks_t *a, size_t elem, unsigned shift)
{
    uint32_t c = a->n >> shift;
    if (c == a->nchunks) {
        void **chunks = realloc(a->chunks, (a->nchunks + 1) * sizeof(*chunks));
        if (chunks == NULL)
            return NULL;
        a->chunks = chunks;
        if ((chunks[c] = calloc((size_t)1 << shift, elem)) == NULL)
            return NULL;
        a->nchunks++;
    }
    return chunks_at(a, a->n, elem, shift);
}

static void chunks_free(stats_chunks_t *a)
{
    for (uint32_t c = 0; c < a->nchunks; c++)
        free(a->chunks[c]);
    free(a->chunks);
    *a = (stats_chunks_t){0};
}

/* ---- hash index ----------------------------------------------------------------------------- */

#define ELEM_MASK ((1u << INDEX_ELEM_BITS) - 1)
#define TAG_OF(h) ((h) & ~ELEM_MASK)

typedef bool (*index_eq_fn)(const stats_names_t *names, const void *key, uint32_t elem);
typedef uint32_t (*index_hash_fn)(const stats_names_t *names, uint32_t elem);

static uint32_t fnv(uint32_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}
#define FNV_INIT 2166136261u

/* The slot's position for hash h: the low bits pick the slot; the top bits are the tag. */
static uint32_t index_home(const stats_index_t *ix, uint32_t h)
{
    return (h ^ (h >> 15)) & (ix->cap - 1);
}

/* Finds key; returns its element or -1 with *slot set to the empty slot where it would go. */
static int64_t index_find(const stats_index_t *ix, const stats_names_t *names, uint32_t h,
                          index_eq_fn eq, const void *key, uint32_t *slot)
{
    uint32_t mask = ix->cap - 1;
    for (uint32_t i = index_home(ix, h);; i = (i + 1) & mask) {
        uint32_t s = ix->slots[i];
        if (s == 0) {
            *slot = i;
            return -1;
        }
        if (TAG_OF(s) == TAG_OF(h) && eq(names, key, (s & ELEM_MASK) - 1))
            return (s & ELEM_MASK) - 1;
    }
}

/* Makes room for one more element (load at most 3/4), so the next find gives a usable slot;
 * on failure nothing changes. */
static int index_reserve(stats_index_t *ix, const stats_names_t *names, index_hash_fn hash)
{
    if ((ix->n + 1) * 4 <= ix->cap * 3)
        return 0;
    uint32_t cap = ix->cap ? ix->cap * 2 : 256;
    uint32_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    stats_index_t grown = {.slots = slots, .cap = cap, .n = ix->n};
    for (uint32_t i = 0; i < ix->cap; i++) {
        uint32_t s = ix->slots[i];
        if (s == 0)
            continue;
        uint32_t j = index_home(&grown, hash(names, (s & ELEM_MASK) - 1));
        while (slots[j] != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = s;
    }
    free(ix->slots);
    *ix = grown;
    return 0;
}

static void index_put(stats_index_t *ix, uint32_t slot, uint32_t h, uint32_t elem)
{
    ix->slots[slot] = TAG_OF(h) | (elem + 1);
    ix->n++;
}

/* ---- symbols -------------------------------------------------------------------------------- */

static const char *sym_str(const stats_names_t *names, uint32_t sym)
{
    return *(const char **)chunks_at(&names->syms, sym, sizeof(const char *), SYM_SHIFT);
}

static uint32_t sym_hash_str(const char *s)
{
    return fnv(FNV_INIT, s, strlen(s));
}

static uint32_t sym_hash(const stats_names_t *names, uint32_t sym)
{
    return sym_hash_str(sym_str(names, sym));
}

static bool sym_eq(const stats_names_t *names, const void *key, uint32_t sym)
{
    return strcmp(sym_str(names, sym), key) == 0;
}

static char *arena_copy(stats_names_t *names, const char *s, size_t n)
{
    struct arena_chunk *c = names->arena;
    if (c == NULL || names->arena_used + n > c->size) {
        size_t size = n > ARENA_SHARE ? n : ARENA_CHUNK;
        struct arena_chunk *fresh = malloc(sizeof(*fresh) + size);
        if (fresh == NULL)
            return NULL;
        fresh->size = size;
        if (n > ARENA_SHARE && c != NULL) {
            /* A long string's own chunk goes behind the current one, which keeps filling. */
            fresh->next = c->next;
            c->next = fresh;
            return memcpy(fresh->bytes, s, n);
        }
        fresh->next = c;
        names->arena = fresh;
        names->arena_used = 0;
        c = fresh;
    }
    char *dst = memcpy(c->bytes + names->arena_used, s, n);
    names->arena_used += n;
    return dst;
}

/* The symbol of s (borrowed), added when new; SYM_NONE for NULL. Returns it, or -ENOMEM /
 * -ENOSPC. */
static int64_t sym_intern(stats_names_t *names, const char *s)
{
    if (s == NULL)
        return SYM_NONE;
    if (names->syms.n == 0) { /* symbol 0 stands for NULL */
        const char **none = chunks_room(&names->syms, sizeof(*none), SYM_SHIFT);
        if (none == NULL)
            return -ENOMEM;
        names->syms.n = 1;
    }
    if (index_reserve(&names->sym_index, names, sym_hash) != 0)
        return -ENOMEM;
    uint32_t h = sym_hash_str(s), slot;
    int64_t found = index_find(&names->sym_index, names, h, sym_eq, s, &slot);
    if (found >= 0)
        return found;
    if (names->syms.n >= MAX_SYMS)
        return -ENOSPC;
    const char **room = chunks_room(&names->syms, sizeof(*room), SYM_SHIFT);
    char *copy = room ? arena_copy(names, s, strlen(s) + 1) : NULL;
    if (copy == NULL)
        return -ENOMEM;
    *room = copy;
    index_put(&names->sym_index, slot, h, names->syms.n);
    return names->syms.n++;
}

/* ---- names as pieces ------------------------------------------------------------------------ */

/* Piece i of n's text name (possibly ""), or NULL past the last. */
static const char *name_piece(const stat_name_t *n, size_t i)
{
    switch (n->form) {
    case NAME_SCOPED: {
        const char *tv = n->tag_value;
        const char *p[] = {n->scope, ".", tv ? tv : "", tv ? "." : "", n->metric};
        return i < 5 ? p[i] : NULL;
    }
    case NAME_GIVEN:
        return i == 0 ? n->given : NULL;
    case NAME_BUILT:
        break;
    }
    if (i == 4 * n->n_tags)
        return n->family;
    if (i > 4 * n->n_tags)
        return NULL;
    size_t t = i / 4;
    const char *name, *value;
    if (n->tags) {
        name = n->tags[t].name;
        value = n->tags[t].value ? n->tags[t].value : "";
    } else {
        name = sym_str(n->names, n->tag_syms[2 * t]);
        value = sym_str(n->names, n->tag_syms[2 * t + 1]);
    }
    const char *p[] = {name, "=.=", value, ";.;"};
    return p[i % 4];
}

static uint32_t name_hash(const stat_name_t *n)
{
    uint32_t h = FNV_INIT;
    const char *p;
    for (size_t i = 0; (p = name_piece(n, i)) != NULL; i++)
        for (; *p; p++)
            h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

/* A position in a name's text: the rest of the current piece, and the next piece's number. */
typedef struct name_cursor {
    const stat_name_t *n;
    size_t next;
    const char *p;
    size_t len;
} name_cursor_t;

/* Moves to the next non-empty piece; p is NULL at the end. */
static void cursor_next_piece(name_cursor_t *c)
{
    do
        c->p = name_piece(c->n, c->next++);
    while (c->p != NULL && *c->p == '\0');
    c->len = c->p ? strlen(c->p) : 0;
}

/* Whether two names are the same text, however each is cut into pieces: compared a run of bytes
 * at a time, as long as both current pieces go on. */
static bool name_equal(const stat_name_t *x, const stat_name_t *y)
{
    /* The usual case, a scoped name found again: the same parts. Other cuts of the same text
     * (a dot moved between the label value and the metric) take the walk below. */
    if (x->form == NAME_SCOPED && y->form == NAME_SCOPED && strcmp(x->scope, y->scope) == 0 &&
        strcmp(x->metric, y->metric) == 0 && (x->tag_value == NULL) == (y->tag_value == NULL) &&
        (x->tag_value == NULL || strcmp(x->tag_value, y->tag_value) == 0))
        return true;
    name_cursor_t a = {.n = x}, b = {.n = y};
    cursor_next_piece(&a);
    cursor_next_piece(&b);
    while (a.p != NULL && b.p != NULL) {
        size_t k = a.len < b.len ? a.len : b.len;
        if (memcmp(a.p, b.p, k) != 0)
            return false;
        a.p += k;
        b.p += k;
        if ((a.len -= k) == 0)
            cursor_next_piece(&a);
        if ((b.len -= k) == 0)
            cursor_next_piece(&b);
    }
    return a.p == b.p;
}

size_t stat_name_len(const stat_name_t *n)
{
    size_t len = 0;
    const char *p;
    for (size_t i = 0; (p = name_piece(n, i)) != NULL; i++)
        len += strlen(p);
    return len;
}

void stat_name_write(const stat_name_t *n, char *dst)
{
    const char *p;
    for (size_t i = 0; (p = name_piece(n, i)) != NULL; i++) {
        size_t len = strlen(p);
        memcpy(dst, p, len);
        dst += len;
    }
    *dst = '\0';
}

static stat_name_t request_name(const stat_request_t *rq)
{
    if (!rq->tagged)
        return (stat_name_t){.form = NAME_SCOPED,
                             .scope = rq->scope,
                             .tag_value = rq->tag_value,
                             .metric = rq->metric};
    if (rq->name)
        return (stat_name_t){.form = NAME_GIVEN, .given = rq->name, .family = rq->family};
    return (stat_name_t){
        .form = NAME_BUILT, .family = rq->family, .tags = rq->tags, .n_tags = rq->n_tags};
}

/* ---- stats ---------------------------------------------------------------------------------- */

static uint64_t def_at(const stats_names_t *names, uint32_t i)
{
    return *(const uint64_t *)chunks_at(&names->defs, i, sizeof(uint64_t), DEF_SHIFT);
}

static stat_id_t def_id(uint64_t d)
{
    return (stat_id_t)(d & ((1u << DEF_ID_BITS) - 1));
}

static stat_kind_t def_kind(uint64_t d)
{
    return (stat_kind_t)((d >> DEF_ID_BITS) & ((1u << DEF_KIND_BITS) - 1));
}

static uint32_t def_group(uint64_t d)
{
    return (uint32_t)(d >> (DEF_ID_BITS + DEF_KIND_BITS)) & MAX_GROUPS;
}

static uint32_t def_metric(uint64_t d)
{
    return (uint32_t)(d >> (DEF_ID_BITS + DEF_KIND_BITS + DEF_GROUP_BITS));
}

static const stat_group_t *group_at(const stats_names_t *names, uint32_t g)
{
    return chunks_at(&names->groups, g, sizeof(stat_group_t), GROUP_SHIFT);
}

/* Stat i's name as pieces borrowed from names. */
static stat_name_t def_name(const stats_names_t *names, uint32_t i)
{
    uint64_t d = def_at(names, i);
    const stat_group_t *g = group_at(names, def_group(d));
    if (!(g->tags & TAGGED))
        return (stat_name_t){.form = NAME_SCOPED,
                             .scope = sym_str(names, g->a),
                             .tag_value = sym_str(names, g->c),
                             .metric = sym_str(names, def_metric(d))};
    if (g->b != SYM_NONE)
        return (stat_name_t){
            .form = NAME_GIVEN, .given = sym_str(names, g->b), .family = sym_str(names, g->a)};
    return (stat_name_t){.form = NAME_BUILT,
                         .family = sym_str(names, g->a),
                         .tag_syms = names->tag_pool + g->c,
                         .names = names,
                         .n_tags = g->tags & ~TAGGED};
}

static uint32_t def_hash(const stats_names_t *names, uint32_t i)
{
    stat_name_t n = def_name(names, i);
    return name_hash(&n);
}

static bool def_eq(const stats_names_t *names, const void *key, uint32_t i)
{
    stat_name_t n = def_name(names, i);
    return name_equal(key, &n);
}

int64_t stats_names_find(stats_names_t *names, const stat_request_t *rq, stat_kind_t *kind,
                         stat_id_t *id)
{
    /* Growing first keeps the index from filling, and a failed growth changes nothing. */
    if (index_reserve(&names->def_index, names, def_hash) != 0)
        return -ENOMEM;
    stat_name_t n = request_name(rq);
    uint32_t slot;
    int64_t found = index_find(&names->def_index, names, name_hash(&n), def_eq, &n, &slot);
    if (found >= 0) {
        uint64_t d = def_at(names, (uint32_t)found);
        *kind = def_kind(d);
        *id = def_id(d);
    }
    return found;
}

static uint32_t group_hash_key(const stat_group_t *g)
{
    return fnv(FNV_INIT, g, 3 * sizeof(uint32_t));
}

static uint32_t group_hash(const stats_names_t *names, uint32_t g)
{
    return group_hash_key(group_at(names, g));
}

static bool group_eq(const stats_names_t *names, const void *key, uint32_t g)
{
    const stat_group_t *k = key, *x = group_at(names, g);
    return x->tags == 0 && x->a == k->a && x->b == k->b && x->c == k->c;
}

/* Adds group *g (copied); with index, finds it first among the scoped groups. Returns the group
 * number or a negative error. */
static int64_t group_add(stats_names_t *names, const stat_group_t *g, bool index)
{
    uint32_t h = 0, slot = 0;
    if (index) {
        if (index_reserve(&names->group_index, names, group_hash) != 0)
            return -ENOMEM;
        h = group_hash_key(g);
        int64_t found = index_find(&names->group_index, names, h, group_eq, g, &slot);
        if (found >= 0)
            return found;
    }
    if (names->groups.n >= MAX_GROUPS)
        return -ENOSPC;
    stat_group_t *room = chunks_room(&names->groups, sizeof(*room), GROUP_SHIFT);
    if (room == NULL)
        return -ENOMEM;
    *room = *g;
    if (index)
        index_put(&names->group_index, slot, h, names->groups.n);
    return names->groups.n++;
}

/* The tagged group of rq: its family, given name and labels as symbols. Labels go to the end of
 * the tag pool; a failure leaves them there unused, which only costs their bytes. */
static int64_t tagged_group(stats_names_t *names, const stat_request_t *rq)
{
    int64_t fam = sym_intern(names, rq->family);
    int64_t given = fam < 0 ? fam : sym_intern(names, rq->name);
    if (given < 0)
        return given;
    if (rq->n_tags > (TAGGED - 1) / 2 || names->tag_pool_len > UINT32_MAX - 2 * rq->n_tags)
        return -ENOSPC;
    uint32_t need = names->tag_pool_len + 2 * (uint32_t)rq->n_tags;
    if (need > names->tag_pool_cap) {
        uint32_t cap = names->tag_pool_cap ? names->tag_pool_cap : 64;
        while (cap < need)
            cap *= 2;
        uint32_t *pool = realloc(names->tag_pool, cap * sizeof(*pool));
        if (pool == NULL)
            return -ENOMEM;
        names->tag_pool = pool;
        names->tag_pool_cap = cap;
    }
    uint32_t at = names->tag_pool_len;
    for (size_t t = 0; t < rq->n_tags; t++) {
        int64_t tn = sym_intern(names, rq->tags[t].name);
        int64_t tv = tn < 0 ? tn : sym_intern(names, rq->tags[t].value ? rq->tags[t].value : "");
        if (tv < 0)
            return tv;
        names->tag_pool[at + 2 * t] = (uint32_t)tn;
        names->tag_pool[at + 2 * t + 1] = (uint32_t)tv;
    }
    stat_group_t g = {(uint32_t)fam, (uint32_t)given, at, TAGGED | (uint32_t)rq->n_tags};
    int64_t r = group_add(names, &g, false);
    if (r >= 0)
        names->tag_pool_len = need;
    return r;
}

static int64_t scoped_group(stats_names_t *names, const stat_request_t *rq)
{
    int64_t scope = sym_intern(names, rq->scope);
    /* Without a label value the label name is never shown, so it does not tell groups apart. */
    int64_t tn = scope < 0 ? scope : sym_intern(names, rq->tag_value ? rq->tag_name : NULL);
    int64_t tv = tn < 0 ? tn : sym_intern(names, rq->tag_value);
    if (tv < 0)
        return tv;
    stat_group_t g = {(uint32_t)scope, (uint32_t)tn, (uint32_t)tv, 0};
    return group_add(names, &g, true);
}

int stats_names_add(stats_names_t *names, const stat_request_t *rq, stat_id_t id)
{
    int64_t metric = rq->tagged ? SYM_NONE : sym_intern(names, rq->metric);
    int64_t group = metric < 0   ? metric
                    : rq->tagged ? tagged_group(names, rq)
                                 : scoped_group(names, rq);
    if (group < 0)
        return (int)group;
    uint64_t *room = chunks_room(&names->defs, sizeof(*room), DEF_SHIFT);
    if (room == NULL)
        return -ENOMEM;
    *room = (uint64_t)id | (uint64_t)rq->kind << DEF_ID_BITS |
            (uint64_t)group << (DEF_ID_BITS + DEF_KIND_BITS) |
            (uint64_t)metric << (DEF_ID_BITS + DEF_KIND_BITS + DEF_GROUP_BITS);
    /* stats_names_find reserved room in the index; probing again for the empty slot keeps the
     * two calls independent of each other. */
    stat_name_t n = request_name(rq);
    uint32_t h = name_hash(&n), slot;
    if (index_find(&names->def_index, names, h, def_eq, &n, &slot) < 0)
        index_put(&names->def_index, slot, h, names->defs.n);
    names->defs.n++;
    return 0;
}

uint32_t stats_names_count(const stats_names_t *names)
{
    return names->defs.n;
}

size_t stats_names_tag_count(const stats_names_t *names, uint32_t i)
{
    const stat_group_t *g = group_at(names, def_group(def_at(names, i)));
    if (g->tags & TAGGED)
        return g->tags & ~TAGGED;
    return g->c != SYM_NONE;
}

void stats_names_view(const stats_names_t *names, uint32_t i, stat_view_t *v, stats_tag_t *tags)
{
    uint64_t d = def_at(names, i);
    const stat_group_t *g = group_at(names, def_group(d));
    *v = (stat_view_t){.kind = def_kind(d), .id = def_id(d), .name = def_name(names, i)};
    if (g->tags & TAGGED) {
        v->family = sym_str(names, g->a);
        for (uint32_t t = 0; tags && t < (g->tags & ~TAGGED); t++)
            tags[t] = (stats_tag_t){sym_str(names, names->tag_pool[g->c + 2 * t]),
                                    sym_str(names, names->tag_pool[g->c + 2 * t + 1])};
        return;
    }
    v->scope = sym_str(names, g->a);
    v->tag_name = sym_str(names, g->b);
    v->tag_value = sym_str(names, g->c);
    v->metric = sym_str(names, def_metric(d));
    if (tags && g->c != SYM_NONE)
        tags[0] = (stats_tag_t){v->tag_name ? v->tag_name : "name", v->tag_value};
}

void stats_names_free(stats_names_t *names)
{
    for (struct arena_chunk *c = names->arena, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    chunks_free(&names->syms);
    chunks_free(&names->groups);
    chunks_free(&names->defs);
    free(names->sym_index.slots);
    free(names->group_index.slots);
    free(names->def_index.slots);
    free(names->tag_pool);
    *names = (stats_names_t){0};
}

/* ---- Prometheus names ----------------------------------------------------------------------- */

size_t prom_name_len(const char *s)
{
    return strlen(s) + (*s >= '0' && *s <= '9');
}

char *prom_name_write(char *dst, const char *s, bool label)
{
    if (*s >= '0' && *s <= '9')
        *dst++ = '_';
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (c == ':' && !label);
        *dst++ = ok ? c : '_';
    }
    return dst;
}
