/* Route matching on the request path: the virtual host by authority through the route table's
 * domain index, then the first route whose path and header matchers match; and the weighted
 * choice of a route's cluster. Reads the table only; never allocates but to join a repeated
 * header longer than a stack buffer. */
#include "proxy/http/route_match.h"

#include <stdlib.h>
#include <string.h>

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

static const route_domain_slot_t *domain_find(const route_table_t *t, uint8_t kind, const char *s,
                                              size_t n)
{
    if (t->slots == NULL)
        return NULL;
    for (size_t i = route_domain_hash(kind, s, n) & t->slot_mask;; i = (i + 1) & t->slot_mask) {
        const route_domain_slot_t *e = &t->slots[i];
        if (e->key == NULL)
            return NULL;
        if (e->kind == kind && e->len == n && eq_nocase(e->key, s, n))
            return e;
    }
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
        if ((e = domain_find(t, ROUTE_DOMAIN_EXACT, forms[f].s, forms[f].n)))
            return &t->vhosts[e->vhost];
    /* A wildcard covers at least one character, hence the strict length comparisons. */
    for (size_t f = 0; f < nforms; f++)
        for (size_t i = 0; i < t->n_suffix_lens; i++) {
            size_t l = t->suffix_lens[i];
            if (l < forms[f].n &&
                (e = domain_find(t, ROUTE_DOMAIN_SUFFIX, forms[f].s + forms[f].n - l, l)))
                return &t->vhosts[e->vhost];
        }
    for (size_t f = 0; f < nforms; f++)
        for (size_t i = 0; i < t->n_prefix_lens; i++) {
            size_t l = t->prefix_lens[i];
            if (l < forms[f].n && (e = domain_find(t, ROUTE_DOMAIN_PREFIX, forms[f].s, l)))
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

static bool header_matches(const route_header_matcher_t *h, const route_request_t *q)
{
    const char *val = NULL;
    size_t len = 0, count = 0;
    const http_header_t *first = NULL;
    const http_headers_t *hs = q->headers;
    if (strcmp(h->name, ":authority") == 0) {
        val = q->authority;
        len = q->authority_len;
        count = 1;
    } else if (strcmp(h->name, ":path") == 0) {
        val = q->path;
        len = q->path_len;
        count = 1;
    } else if (strcmp(h->name, ":method") == 0) {
        val = q->method;
        len = q->method_len;
        count = q->method != NULL;
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

const route_entry_t *route_match(const route_table_t *t, const route_request_t *q,
                                 const route_vhost_t **vhost)
{
    const route_vhost_t *v =
        find_vhost(t, q->authority ? q->authority : "", q->authority ? q->authority_len : 0);
    if (vhost)
        *vhost = v;
    if (v == NULL)
        return NULL;
    /* Path matchers see the path without its query string and fragment. */
    const char *path = q->path ? q->path : "";
    size_t bare = 0;
    while (bare < q->path_len && path[bare] != '?' && path[bare] != '#')
        bare++;
    for (size_t i = 0; i < v->n_routes; i++) {
        const route_entry_t *r = &v->routes[i];
        if (!path_matches(r, path, bare))
            continue;
        size_t k = 0;
        while (k < r->n_headers && header_matches(&r->headers[k], q))
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
