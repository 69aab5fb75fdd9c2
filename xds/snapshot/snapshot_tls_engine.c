/* The TLS engine configs of snapshot builds, one per (certificate, key, trust bundle, role,
 * ALPN, suites), kept across builds so that TLS contexts built again from the same bytes get
 * the same engine config. */
#include "xds/snapshot/snapshot_tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "certs/tls.h"
#include "xds/snapshot/snapshot_build.h"

/* While a snapshot is built, identical contexts get the same engine config (a cluster per
 * upstream service usually differs from the next only in its SNI and expected SAN, which are
 * per session). The entries a build makes or takes belong to its snapshot (snap->tls_engines),
 * and the next build starts from them: a context rebuilt with the same bytes (an EDS update of
 * its cluster, a listener change) keeps its engine config, so the data plane can keep the
 * connections made with it; a rotated certificate changes the key and makes a new one. An entry
 * the next build does not use is not taken over and goes with the old snapshot. A build without
 * a snapshot (snapshot_tls_check_secret) keeps its entries in its own cache. */

typedef struct tls_engine_entry {
    char *key; /* holds the private key's PEM: wiped before it is freed */
    size_t key_len;
    tls_config_t *engine; /* reference held */
    struct tls_engine_entry *next;
} engine_entry_t;

static void entries_free(engine_entry_t *head)
{
    while (head) {
        engine_entry_t *e = head;
        head = e->next;
        tls_config_unref(e->engine);
        explicit_bzero(e->key, e->key_len);
        free(e->key);
        free(e);
    }
}

void snapshot_tls_cache_free(snapshot_tls_cache_t *cache)
{
    entries_free(cache->head);
    cache->head = NULL;
}

void snapshot_tls_engines_free(snapshot_t *s)
{
    entries_free(s->tls_engines);
    s->tls_engines = NULL;
}

static void key_put(char **k, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (*k == NULL)
        return;
    if (*len + n + sizeof(n) > *cap) {
        size_t c = (*cap ? *cap * 2 : 256) + n + sizeof(n);
        char *nk = malloc(c);
        if (nk && *len)
            memcpy(nk, *k, *len);
        explicit_bzero(*k, *len); /* no copy of the private key left behind by a realloc */
        free(*k);
        *k = nk;
        if (nk == NULL)
            return;
        *cap = c;
    }
    memcpy(*k + *len, &n, sizeof(n)); /* length-prefixed: no two field lists collide */
    if (n)
        memcpy(*k + *len + sizeof(n), data, n);
    *len += n + sizeof(n);
}

/* What makes an engine config what it is (o borrowed), as one byte string (new, or NULL). */
static char *engine_key(const tls_config_opts_t *o, size_t *len)
{
    size_t cap = 0;
    *len = 0;
    char *k = malloc(1);
    int v[4] = {o->role, o->require_client_cert, o->disable_tickets, (int)o->output_high_water};
    key_put(&k, len, &cap, v, sizeof(v));
    const tls_pem_source_t *src[3] = {&o->cert_chain, &o->private_key, &o->trust_bundle};
    for (int i = 0; i < 3; i++)
        key_put(&k, len, &cap, src[i]->pem ? src[i]->pem : "", src[i]->pem ? src[i]->pem_len : 0);
    for (size_t i = 0; i < o->alpn_count; i++)
        key_put(&k, len, &cap, o->alpn[i], strlen(o->alpn[i]));
    key_put(&k, len, &cap, "|", 1);
    key_put(&k, len, &cap, o->suites, o->suites ? o->suite_count * sizeof(*o->suites) : 0);
    key_put(&k, len, &cap, o->groups, o->groups ? o->group_count * sizeof(*o->groups) : 0);
    return k;
}

static engine_entry_t *entry_find(engine_entry_t *head, const char *key, size_t len)
{
    for (engine_entry_t *e = head; e; e = e->next)
        if (e->key_len == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

int snapshot_tls_engine_get(snap_build_t *b, const tls_config_opts_t *o, tls_config_t **out,
                            char *err, size_t errlen)
{
    engine_entry_t **head = b->snap ? &b->snap->tls_engines : &b->tls_cache.head;
    size_t len;
    char *key = engine_key(o, &len);
    if (key == NULL)
        return -ENOMEM;
    const engine_entry_t *e = entry_find(*head, key, len);
    if (e) {
        explicit_bzero(key, len);
        free(key);
        *out = tls_config_ref(e->engine);
        return 0;
    }
    e = b->prev ? entry_find(b->prev->tls_engines, key, len) : NULL;
    int rc = 0;
    if (e)
        *out = tls_config_ref(e->engine);
    else
        rc = tls_config_new(o, out, err, errlen);
    engine_entry_t *ne = rc == 0 ? malloc(sizeof(*ne)) : NULL;
    if (ne == NULL) {
        explicit_bzero(key, len); /* not cached: still correct, only not shared */
        free(key);
        return rc;
    }
    ne->key = key;
    ne->key_len = len;
    ne->engine = tls_config_ref(*out);
    ne->next = *head;
    *head = ne;
    return 0;
}

/* Takes over prev's entry for engine into s's list, unless s has one already. */
static void keep_engine(snapshot_t *s, const snapshot_t *prev, const tls_config_t *engine)
{
    if (engine == NULL)
        return;
    for (const engine_entry_t *e = s->tls_engines; e; e = e->next)
        if (e->engine == engine)
            return;
    for (const engine_entry_t *e = prev->tls_engines; e; e = e->next) {
        if (e->engine != engine)
            continue;
        engine_entry_t *ne = malloc(sizeof(*ne));
        char *key = ne ? malloc(e->key_len) : NULL;
        if (key == NULL) {
            free(ne); /* not kept: a later build makes a new engine config, still correct */
            return;
        }
        memcpy(key, e->key, e->key_len);
        *ne = (engine_entry_t){key, e->key_len, tls_config_ref(e->engine), s->tls_engines};
        s->tls_engines = ne;
        return;
    }
}

void snapshot_tls_keep_engines(struct snap_build *b)
{
    snapshot_t *s = b->snap;
    if (s == NULL || b->prev == NULL || b->prev->tls_engines == NULL)
        return;
    const tls_config_t *last = NULL; /* clusters in a row mostly share one */
    for (size_t i = 0; i < s->n_clusters; i++) {
        const tls_context_config_t *t = s->clusters[i].tls;
        if (t && t->engine != last) {
            keep_engine(s, b->prev, t->engine);
            last = t->engine;
        }
    }
    for (size_t i = 0; i < s->n_listeners; i++) {
        const snap_listener_t *l = &s->listeners[i];
        for (size_t j = 0; j <= l->n_chains; j++) {
            const snap_chain_t *c = j < l->n_chains ? &l->chains[j] : l->default_chain;
            if (c && c->tls) {
                keep_engine(s, b->prev, c->tls->engine);
                keep_engine(s, b->prev, c->tls->engine_no_alpn);
            }
        }
    }
}
