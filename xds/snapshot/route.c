/* The route table's domain index (built here, probed per request by proxy/http/route_match.c)
 * and the freeing of a table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "xds/snapshot/route.h"

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

static int duplicate_domain(const route_table_t *t, size_t vhost, const char *domain, size_t other,
                            char *err, size_t errlen)
{
    const char *name = t->vhosts[vhost].name;
    if (other == vhost)
        return err_set(err, errlen, -EINVAL, "virtual_host '%s': domain '%s' is listed twice", name,
                       domain);
    return err_set(err, errlen, -EINVAL,
                   "virtual_host '%s': domain '%s' is also in virtual_host '%s' (domains must be "
                   "unique)",
                   name, domain, t->vhosts[other].name);
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
    if (t->slots == NULL || t->suffix_lens == NULL || t->prefix_lens == NULL)
        return err_set(err, errlen, -ENOMEM, "out of memory building the route table");
    t->slot_mask = cap - 1;
    for (size_t i = 0; i < t->n_vhosts; i++) {
        const route_vhost_t *v = &t->vhosts[i];
        for (size_t j = 0; j < v->n_domains; j++) {
            const char *d = v->domains[j];
            size_t len = strlen(d);
            if (strcmp(d, "*") == 0) {
                if (t->default_vhost)
                    return err_set(err, errlen, -EINVAL,
                                   "virtual_host '%s': only one virtual host may have the '*' "
                                   "domain (virtual_host '%s' has it too)",
                                   v->name, t->default_vhost->name);
                t->default_vhost = v;
                continue;
            }
            /* Like Envoy: a leading '*' makes a suffix wildcard, else a trailing one a prefix
             * wildcard; a '*' anywhere else is a literal character. */
            route_domain_slot_t e = {.key = d, .len = (uint32_t)len, .vhost = (uint32_t)i};
            if (d[0] == '*') {
                e.kind = ROUTE_DOMAIN_SUFFIX;
                e.key = d + 1;
                e.len--;
                t->suffix_lens[t->n_suffix_lens++] = e.len;
            } else if (d[len - 1] == '*') {
                e.kind = ROUTE_DOMAIN_PREFIX;
                e.len--;
                t->prefix_lens[t->n_prefix_lens++] = e.len;
            } else {
                e.kind = ROUTE_DOMAIN_EXACT;
            }
            /* The domains are lowercase here, so a repeat is the same bytes. */
            size_t k = route_domain_hash(e.kind, e.key, e.len) & t->slot_mask;
            for (; t->slots[k].key; k = (k + 1) & t->slot_mask) {
                const route_domain_slot_t *o = &t->slots[k];
                if (o->kind == e.kind && o->len == e.len && memcmp(o->key, e.key, e.len) == 0)
                    return duplicate_domain(t, i, d, o->vhost, err, errlen);
            }
            t->slots[k] = e;
        }
    }
    t->n_suffix_lens = lens_finish(t->suffix_lens, t->n_suffix_lens);
    t->n_prefix_lens = lens_finish(t->prefix_lens, t->n_prefix_lens);
    return 0;
}
