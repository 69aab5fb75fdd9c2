/* The groups of sidecars and the ADS views they are served from, one per resource type and per
 * what that type depends on: a node's groups of the type (docs/control-plane-view.md) or, for
 * secrets, its namespace and service account. Nodes that depend on the same share the view, so a
 * change is replaced once per view that holds it, not once per pod. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp/cp_internal.h"

#define TVIEW_KEY_MAX 1024

static const char *const TYPE_KEYS[ADS_SRV_NTYPES] = {"CDS", "EDS", "LDS", "RDS", "SDS"};

static void node_of(const char *ns, const char *pod, const char *sa, bool proxyless,
                    view_node_t *node)
{
    memset(node, 0, sizeof(*node));
    node->namespace_ = ns;
    node->pod = pod;
    node->proxyless = proxyless;
    node->service_account = sa;
}

/* The groups a node gets now (none without a view or for a namespace the view does not know). */
static void groups_of(const cp_t *cp, const view_node_t *node, view_node_groups_t *gs)
{
    memset(gs, 0, sizeof(*gs));
    if (cp->view == NULL || view_node_groups(cp->view, node, gs) < 0)
        gs->n = 0;
    size_t n = 0;
    for (size_t g = 0; g < gs->n; g++) /* a group the view does not have is left out */
        if (gs->v[g])
            gs->v[n++] = gs->v[g];
    gs->n = n;
}

/* What type t of a node depends on, as a key: its groups of that type, or its identity for
 * secrets (none for proxyless clients or without a CA). */
static void tview_key(const cp_t *cp, const view_node_groups_t *gs, const cp_pview_t *pv,
                      ads_srv_type_t t, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "%s|", TYPE_KEYS[t]);
    if (t == ADS_SRV_SDS) {
        if (!pv->proxyless && cp->issuer)
            snprintf(out + n, outlen - n, "%s|%s", pv->ns, pv->sa);
        return;
    }
    for (size_t g = 0; g < gs->n && n < outlen; g++)
        if (ads_srv_type_of(gs->v[g]->type_url) == (int)t)
            n +=
                (size_t)snprintf(out + n, outlen - n, "%d:%s;", (int)gs->v[g]->kind, gs->v[g]->key);
}

static size_t key_bucket(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return (size_t)(h & (CP_TVIEW_BUCKETS - 1));
}

int cp_tview_fill(cp_t *cp, cp_tview_t *tv)
{
    ads_srv_type_t t = tv->type;
    view_node_t node;
    node_of(tv->ns, tv->pod, tv->sa, tv->proxyless, &node);
    view_node_groups_t gs;
    groups_of(cp, &node, &gs);
    ads_srv_resource_t *cert = NULL;
    uint64_t sig = 0;
    size_t count = 0;
    if (t == ADS_SRV_SDS) {
        if (!tv->proxyless && cp->issuer)
            cert = cp_secret_for(cp, tv->ns, tv->sa);
        sig = (cert ? ads_srv_resource_hash(cert) : 0) * 31 +
              (cp->root_secret ? ads_srv_resource_hash(cp->root_secret) : 0) + 1;
        count = (cert != NULL) + (cert && cp->root_secret);
    } else {
        for (size_t g = 0; g < gs.n; g++)
            if (ads_srv_type_of(gs.v[g]->type_url) == (int)t) {
                sig = sig * 1099511628211u + gs.v[g]->hash + 1;
                count += gs.v[g]->n;
            }
    }
    if (tv->filled && sig == tv->sig)
        return 0;
    ads_srv_resource_t **res = malloc((count + 1) * sizeof(*res));
    if (res == NULL)
        return -ENOMEM;
    size_t n = 0;
    if (cert) {
        res[n++] = cert;
        if (cp->root_secret)
            res[n++] = cp->root_secret;
    }
    for (size_t g = 0; t != ADS_SRV_SDS && g < gs.n; g++) {
        if (ads_srv_type_of(gs.v[g]->type_url) != (int)t)
            continue;
        for (size_t i = 0; i < gs.v[g]->n; i++) {
            ads_srv_resource_t *r = cp_res_lookup(cp, gs.v[g]->v[i].blob);
            if (r)
                res[n++] = r;
        }
    }
    /* The view holds one type: a replace of every type empties nothing else. */
    int rc = ads_srv_view_replace(tv->v, res, n, true);
    free(res);
    if (rc < 0)
        return rc;
    tv->sig = sig;
    tv->filled = true;
    return 1;
}

static void tview_free(cp_tview_t *tv)
{
    if (tv == NULL)
        return;
    ads_srv_view_unref(tv->v);
    free(tv->key);
    free(tv->ns);
    free(tv->pod);
    free(tv->sa);
    free(tv);
}

/* The type view of key, with one more use (made and filled from pv's node when new). */
static cp_tview_t *tview_get(cp_t *cp, ads_srv_type_t t, const char *key, const cp_pview_t *pv)
{
    size_t b = key_bucket(key);
    for (cp_tview_t *tv = cp->tviews[b]; tv; tv = tv->next)
        if (strcmp(tv->key, key) == 0) {
            tv->users++;
            return tv;
        }
    cp_tview_t *tv = calloc(1, sizeof(*tv));
    if (tv == NULL)
        return NULL;
    tv->type = t;
    tv->proxyless = pv->proxyless;
    tv->key = strdup(key);
    tv->ns = strdup(pv->ns);
    tv->pod = pv->pod ? strdup(pv->pod) : NULL;
    tv->sa = strdup(pv->sa);
    tv->v = ads_srv_view_new();
    if (tv->key == NULL || tv->ns == NULL || (pv->pod && tv->pod == NULL) || tv->sa == NULL ||
        tv->v == NULL || cp_tview_fill(cp, tv) < 0) {
        tview_free(tv);
        return NULL;
    }
    tv->users = 1;
    tv->next = cp->tviews[b];
    cp->tviews[b] = tv;
    cp->ntviews++;
    return tv;
}

static void tview_release(cp_t *cp, cp_tview_t *tv)
{
    if (tv == NULL || --tv->users > 0)
        return;
    for (cp_tview_t **pp = &cp->tviews[key_bucket(tv->key)]; *pp; pp = &(*pp)->next)
        if (*pp == tv) {
            *pp = tv->next;
            break;
        }
    cp->ntviews--;
    tview_free(tv);
}

/* Puts pv (and its streams) on the type views of what its node depends on now. Returns 0 or
 * -ENOMEM (the types it could not move stay where they were). */
static int pview_place(cp_t *cp, cp_pview_t *pv)
{
    view_node_t node;
    node_of(pv->ns, pv->pod, pv->sa, pv->proxyless, &node);
    view_node_groups_t gs;
    groups_of(cp, &node, &gs);
    int rc = 0;
    for (int t = 0; t < ADS_SRV_NTYPES; t++) {
        char key[TVIEW_KEY_MAX];
        tview_key(cp, &gs, pv, (ads_srv_type_t)t, key, sizeof(key));
        if (pv->tv[t] && strcmp(pv->tv[t]->key, key) == 0)
            continue;
        cp_tview_t *tv = tview_get(cp, (ads_srv_type_t)t, key, pv);
        if (tv == NULL) {
            rc = -ENOMEM; /* tried again after the next rebuild */
            continue;
        }
        cp_streams_set_type_view(cp, pv, (ads_srv_type_t)t, tv->v);
        tview_release(cp, pv->tv[t]);
        pv->tv[t] = tv;
    }
    pv->unplaced = rc < 0;
    return rc;
}

static void pview_free(cp_t *cp, cp_pview_t *pv)
{
    for (int t = 0; t < ADS_SRV_NTYPES; t++)
        tview_release(cp, pv->tv[t]);
    free(pv->key);
    free(pv->ns);
    free(pv->pod);
    free(pv->sa);
    free(pv);
}

cp_pview_t *cp_pview_get(cp_t *cp, const char *ns, const char *pod, const char *sa, bool proxyless)
{
    char key[640];
    if (proxyless)
        snprintf(key, sizeof(key), "grpc|%s", ns);
    else
        snprintf(key, sizeof(key), "%s/%s|%s", ns, pod ? pod : "", sa);
    for (cp_pview_t *p = cp->pviews; p; p = p->next)
        if (strcmp(p->key, key) == 0) {
            p->streams++;
            return p;
        }
    cp_pview_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->key = strdup(key);
    p->ns = strdup(ns);
    p->pod = pod ? strdup(pod) : NULL;
    p->sa = strdup(sa);
    p->proxyless = proxyless;
    if (p->key == NULL || p->ns == NULL || (pod && p->pod == NULL) || p->sa == NULL ||
        pview_place(cp, p) < 0) {
        pview_free(cp, p);
        return NULL;
    }
    p->streams = 1;
    p->next = cp->pviews;
    cp->pviews = p;
    return p;
}

void cp_pview_release(cp_t *cp, cp_pview_t *pv)
{
    if (pv == NULL || --pv->streams > 0)
        return;
    for (cp_pview_t **pp = &cp->pviews; *pp; pp = &(*pp)->next)
        if (*pp == pv) {
            *pp = pv->next;
            break;
        }
    pview_free(cp, pv);
}

/* A hash of which groups cp's view has (their kinds and keys): a node's groups can change only
 * when it does. */
static uint64_t groups_present(const cp_t *cp)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t g = 0; cp->view && g < cp->view->n; g++) {
        h = (h ^ (uint64_t)cp->view->groups[g].kind) * 0x100000001b3ULL;
        for (const char *p = cp->view->groups[g].key; *p; p++)
            h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
        h = (h ^ 0xff) * 0x100000001b3ULL;
    }
    return h;
}

size_t cp_views_refresh(cp_t *cp)
{
    uint64_t present = groups_present(cp);
    for (cp_pview_t *p = cp->pviews; p && (present != cp->groups_present || p->unplaced);
         p = p->next)
        pview_place(cp, p);
    cp->groups_present = present;
    size_t replaced = 0;
    for (size_t b = 0; b < CP_TVIEW_BUCKETS; b++)
        for (cp_tview_t *tv = cp->tviews[b]; tv; tv = tv->next)
            if (cp_tview_fill(cp, tv) > 0)
                replaced++;
    return replaced;
}
