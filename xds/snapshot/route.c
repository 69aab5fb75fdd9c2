/* Route table lookups on the request path: virtual host by authority through a hash index of
 * the domains, then the first matching route; weighted cluster choice; and freeing the table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/snapshot/route.h"

enum { DOMAIN_EXACT, DOMAIN_SUFFIX, DOMAIN_PREFIX };

/* Large enough for typical repeated headers (cookies aside) without a malloc. */
#define JOIN_STACK_BYTES 1024

static inline char lower(char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
}

static bool eq_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

static bool eq(const char *a, const char *b, size_t n, bool case_sensitive)
{
    return case_sensitive ? memcmp(a, b, n) == 0 : eq_nocase(a, b, n);
}

/* ---- freeing ------------------------------------------------------------------------------ */

static void free_ops(route_header_ops_t *o)
{
    for (size_t i = 0; i < o->n_add; i++) {
        free(o->add[i].name);
        free(o->add[i].value);
    }
    free(o->add);
    for (size_t i = 0; i < o->n_remove; i++)
        free(o->remove[i]);
    free(o->remove);
}

static void free_filter_configs(route_filter_configs_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].filter);
        free(f->v[i].type_url);
        free(f->v[i].value);
    }
    free(f->v);
}

static void free_route(route_entry_t *r)
{
    free(r->name);
    free(r->match);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    for (size_t i = 0; i < r->n_clusters; i++) {
        free(r->clusters[i].name);
        free_ops(&r->clusters[i].request_ops);
        free_ops(&r->clusters[i].response_ops);
    }
    free(r->clusters);
    free(r->prefix_rewrite);
    free(r->host_rewrite);
    free(r->direct_body);
    free_ops(&r->request_ops);
    free_ops(&r->response_ops);
    free(r->retry_on);
    free_filter_configs(&r->filter_configs);
}

void route_table_free(route_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_vhosts; i++) {
        route_vhost_t *v = &t->vhosts[i];
        free(v->name);
        for (size_t j = 0; j < v->n_domains; j++)
            free(v->domains[j]);
        free(v->domains);
        for (size_t j = 0; j < v->n_routes; j++)
            free_route(&v->routes[j]);
        free(v->routes);
        free_ops(&v->request_ops);
        free_ops(&v->response_ops);
        free_filter_configs(&v->filter_configs);
    }
    free(t->vhosts);
    free_ops(&t->request_ops);
    free_ops(&t->response_ops);
    for (size_t i = 0; i < t->n_internal_only; i++)
        free(t->internal_only_headers[i]);
    free(t->internal_only_headers);
    free_filter_configs(&t->filter_configs);
    free(t->slots);
    free(t->suffix_lens);
    free(t->prefix_lens);
    free(t->name);
    free(t);
}

/* ---- domain index ------------------------------------------------------------------------- */

/* FNV-1a over the lowercased bytes, so lookups need no lowercased copy of the authority. */
static uint32_t domain_hash(uint8_t kind, const char *s, size_t n)
{
    uint32_t h = 2166136261u ^ kind;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)lower(s[i]);
        h *= 16777619u;
    }
    return h;
}

static const route_domain_slot_t *domain_find(const route_table_t *t, uint8_t kind, const char *s,
                                              size_t n)
{
    if (t->slots == NULL)
        return NULL;
    for (size_t i = domain_hash(kind, s, n) & t->slot_mask;; i = (i + 1) & t->slot_mask) {
        const route_domain_slot_t *e = &t->slots[i];
        if (e->key == NULL)
            return NULL;
        if (e->kind == kind && e->len == n && eq_nocase(e->key, s, n))
            return e;
    }
}

static int cmp_len_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Sorts longest first and drops repeats; returns the new count. */
static size_t lens_finish(uint32_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_len_desc);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || v[k - 1] != v[i])
            v[k++] = v[i];
    return k;
}

int route_index_domains(route_table_t *t, char *err, size_t errlen)
{
    size_t total = 0;
    for (size_t i = 0; i < t->n_vhosts; i++)
        total += t->vhosts[i].n_domains;
    size_t cap = 8;
    while (cap < total * 2)
        cap <<= 1;
    t->slots = calloc(cap, sizeof(*t->slots));
    t->suffix_lens = calloc(total + 1, sizeof(uint32_t));
    t->prefix_lens = calloc(total + 1, sizeof(uint32_t));
    if (t->slots == NULL || t->suffix_lens == NULL || t->prefix_lens == NULL) {
        snprintf(err, errlen, "out of memory building the route table");
        return -ENOMEM;
    }
    t->slot_mask = cap - 1;
    for (size_t i = 0; i < t->n_vhosts; i++) {
        const route_vhost_t *v = &t->vhosts[i];
        for (size_t j = 0; j < v->n_domains; j++) {
            const char *d = v->domains[j];
            size_t len = strlen(d);
            if (strcmp(d, "*") == 0) {
                if (t->default_vhost) {
                    snprintf(err, errlen,
                             "virtual_host '%s': only one virtual host may have the '*' domain "
                             "(virtual_host '%s' has it too)",
                             v->name, t->default_vhost->name);
                    return -EINVAL;
                }
                t->default_vhost = v;
                continue;
            }
            /* Like Envoy: a leading '*' makes a suffix wildcard, else a trailing one a prefix
             * wildcard; a '*' anywhere else is a literal character. */
            route_domain_slot_t e = {.key = d, .len = (uint32_t)len, .vhost = (uint32_t)i};
            if (d[0] == '*') {
                e.kind = DOMAIN_SUFFIX;
                e.key = d + 1;
                e.len--;
                t->suffix_lens[t->n_suffix_lens++] = e.len;
            } else if (d[len - 1] == '*') {
                e.kind = DOMAIN_PREFIX;
                e.len--;
                t->prefix_lens[t->n_prefix_lens++] = e.len;
            } else {
                e.kind = DOMAIN_EXACT;
            }
            const route_domain_slot_t *dup = domain_find(t, e.kind, e.key, e.len);
            if (dup) {
                if (dup->vhost == i)
                    snprintf(err, errlen, "virtual_host '%s': domain '%s' is listed twice", v->name,
                             d);
                else
                    snprintf(err, errlen,
                             "virtual_host '%s': domain '%s' is also in virtual_host '%s' "
                             "(domains must be unique)",
                             v->name, d, t->vhosts[dup->vhost].name);
                return -EINVAL;
            }
            size_t k = domain_hash(e.kind, e.key, e.len) & t->slot_mask;
            while (t->slots[k].key)
                k = (k + 1) & t->slot_mask;
            t->slots[k] = e;
        }
    }
    t->n_suffix_lens = lens_finish(t->suffix_lens, t->n_suffix_lens);
    t->n_prefix_lens = lens_finish(t->prefix_lens, t->n_prefix_lens);
    return 0;
}

/* Where the port starts (the ':'), or n when there is none; an IPv6 literal is bracketed. */
static size_t port_start(const char *h, size_t n)
{
    size_t colon = n;
    for (size_t i = n; i > 0; i--) {
        if (h[i - 1] == ':') {
            colon = i - 1;
            break;
        }
        if (h[i - 1] == ']')
            return n;
    }
    return colon;
}

typedef struct {
    const char *s;
    size_t n;
} host_form_t;

static const route_vhost_t *find_vhost(const route_table_t *t, const char *host, size_t n)
{
    host_form_t forms[2];
    size_t nforms = 0;
    size_t stripped = port_start(host, n);
    if (stripped < n && !t->ignore_port_in_host_matching)
        forms[nforms++] = (host_form_t){host, n};
    forms[nforms++] = (host_form_t){host, stripped};

    const route_domain_slot_t *e;
    for (size_t f = 0; f < nforms; f++)
        if ((e = domain_find(t, DOMAIN_EXACT, forms[f].s, forms[f].n)))
            return &t->vhosts[e->vhost];
    /* A wildcard covers at least one character, hence the strict length comparisons. */
    for (size_t f = 0; f < nforms; f++)
        for (size_t i = 0; i < t->n_suffix_lens; i++) {
            size_t l = t->suffix_lens[i];
            if (l < forms[f].n &&
                (e = domain_find(t, DOMAIN_SUFFIX, forms[f].s + forms[f].n - l, l)))
                return &t->vhosts[e->vhost];
        }
    for (size_t f = 0; f < nforms; f++)
        for (size_t i = 0; i < t->n_prefix_lens; i++) {
            size_t l = t->prefix_lens[i];
            if (l < forms[f].n && (e = domain_find(t, DOMAIN_PREFIX, forms[f].s, l)))
                return &t->vhosts[e->vhost];
        }
    return t->default_vhost;
}

/* ---- route matching ----------------------------------------------------------------------- */

static bool path_matches(const route_entry_t *r, const char *path, size_t n)
{
    size_t m = r->match_len;
    /* A CONNECT request has no path: only connect_matcher routes match it, and they match
     * nothing else. */
    if (r->match_kind == ROUTE_MATCH_CONNECT || n == 0)
        return r->match_kind == ROUTE_MATCH_CONNECT && n == 0;
    switch (r->match_kind) {
    case ROUTE_MATCH_PREFIX:
        return n >= m && eq(path, r->match, m, r->case_sensitive);
    case ROUTE_MATCH_PATH:
        return n == m && eq(path, r->match, m, r->case_sensitive);
    case ROUTE_MATCH_PATH_SEPARATED_PREFIX:
        return n >= m && eq(path, r->match, m, r->case_sensitive) && (n == m || path[m] == '/');
    default:
        return false;
    }
}

static bool contains(const char *s, size_t n, const char *needle, size_t m, bool nocase)
{
    if (m == 0)
        return true;
    for (size_t i = 0; i + m <= n; i++)
        if (eq(s + i, needle, m, !nocase))
            return true;
    return false;
}

/* Envoy's range_match: the whole value is a base-10 integer (optional sign) within range. */
static bool in_range(const route_header_matcher_t *h, const char *s, size_t n)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if ((!neg && v > (uint64_t)INT64_MAX) || (neg && v > (uint64_t)INT64_MAX + 1))
        return false;
    int64_t x = neg ? (int64_t)(0 - v) : (int64_t)v;
    return x >= h->range_start && x < h->range_end;
}

static bool value_matches(const route_header_matcher_t *h, const char *s, size_t n)
{
    size_t m = h->value_len;
    bool cs = !h->ignore_case;
    switch (h->kind) {
    case ROUTE_HDR_EXACT:
        return n == m && eq(s, h->value, m, cs);
    case ROUTE_HDR_PREFIX:
        return n >= m && eq(s, h->value, m, cs);
    case ROUTE_HDR_SUFFIX:
        return n >= m && eq(s + n - m, h->value, m, cs);
    case ROUTE_HDR_CONTAINS:
        return contains(s, n, h->value, m, h->ignore_case);
    case ROUTE_HDR_RANGE:
        return in_range(h, s, n);
    case ROUTE_HDR_PRESENT:
        return true;
    }
    return false;
}

static bool header_matches(const route_header_matcher_t *h, const char *authority,
                           size_t authority_len, const char *path, size_t path_len,
                           const http_headers_t *hs)
{
    const char *val = NULL;
    size_t len = 0, count = 0;
    const http_header_t *first = NULL;
    if (strcmp(h->name, ":authority") == 0) {
        val = authority;
        len = authority_len;
        count = 1;
    } else if (strcmp(h->name, ":path") == 0) {
        val = path;
        len = path_len;
        count = 1;
    } else if (hs) {
        for (uint32_t i = 0; i < hs->n; i++) {
            if (!http_name_is(&hs->v[i], h->name))
                continue;
            if (count++ == 0)
                first = &hs->v[i];
            len += hs->v[i].value_len + (count > 1);
        }
        if (count == 1) {
            val = first->value;
            len = first->value_len;
        }
    }

    if (h->kind == ROUTE_HDR_PRESENT)
        return ((count > 0) == h->present) != h->invert;
    if (count == 0) {
        /* A missing header matches nothing, inverted or not, unless it counts as empty. */
        if (!h->treat_missing_as_empty)
            return false;
        return value_matches(h, "", 0) != h->invert;
    }
    if (count == 1)
        return value_matches(h, val, len) != h->invert;

    /* Repeated headers are matched as one value joined with ",", as Envoy does. */
    char stack[JOIN_STACK_BYTES];
    char *buf = len <= sizeof(stack) ? stack : malloc(len);
    if (buf == NULL)
        return false;
    size_t off = 0;
    for (uint32_t i = 0; i < hs->n; i++) {
        if (!http_name_is(&hs->v[i], h->name))
            continue;
        if (off)
            buf[off++] = ',';
        memcpy(buf + off, hs->v[i].value, hs->v[i].value_len);
        off += hs->v[i].value_len;
    }
    bool ok = value_matches(h, buf, off) != h->invert;
    if (buf != stack)
        free(buf);
    return ok;
}

const route_entry_t *route_match(const route_table_t *t, const char *authority,
                                 size_t authority_len, const char *path, size_t path_len,
                                 const http_headers_t *headers, const route_vhost_t **vhost)
{
    const route_vhost_t *v =
        find_vhost(t, authority ? authority : "", authority ? authority_len : 0);
    if (vhost)
        *vhost = v;
    if (v == NULL)
        return NULL;
    /* Path matchers see the path without its query string and fragment. */
    size_t bare = 0;
    while (bare < path_len && path[bare] != '?' && path[bare] != '#')
        bare++;
    for (size_t i = 0; i < v->n_routes; i++) {
        const route_entry_t *r = &v->routes[i];
        if (!path_matches(r, path, bare))
            continue;
        size_t k = 0;
        while (k < r->n_headers &&
               header_matches(&r->headers[k], authority, authority_len, path, path_len, headers))
            k++;
        if (k == r->n_headers)
            return r;
    }
    return NULL;
}

const route_cluster_t *route_pick_cluster(const route_entry_t *r, uint32_t random)
{
    if (r->n_clusters == 0)
        return NULL;
    if (r->n_clusters == 1 || r->total_weight == 0)
        return &r->clusters[0];
    /* Scale instead of modulo: no bias, and the extremes map to the first and last cluster.
     * total_weight <= UINT32_MAX (checked at build), so the product fits. */
    uint64_t target = ((uint64_t)random * r->total_weight) >> 32;
    uint64_t acc = 0;
    for (size_t i = 0; i < r->n_clusters; i++) {
        acc += r->clusters[i].weight;
        if (target < acc)
            return &r->clusters[i];
    }
    return &r->clusters[r->n_clusters - 1];
}
