/* xds_load's shared memory of what it has seen: interned names, a cache from a resource's bytes
 * to its name and the names it references (decoded once, however many sidecars receive the same
 * bytes), and a reader of discovery responses that finds the resources' bytes without decoding
 * them. This is what keeps a simulated sidecar cheap: per response it hashes bytes, it does not
 * decode them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench/xds_load.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"

const char *const xl_type_url[XL_NTYPES] = {
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
};
const char *const xl_type_name[XL_NTYPES] = {"cds", "eds", "lds", "rds", "sds"};

#define HCM_URL                                                                                    \
    "type.googleapis.com/"                                                                         \
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define UPSTREAM_TLS_URL                                                                           \
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
#define DOWNSTREAM_TLS_URL                                                                         \
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"

int xl_type_of(const uint8_t *type_url, size_t len)
{
    for (int t = 0; t < XL_NTYPES; t++)
        if (strlen(xl_type_url[t]) == len && memcmp(xl_type_url[t], type_url, len) == 0)
            return t;
    return -1;
}

/* A 64-bit hash that takes 8 bytes a step: the tool hashes every resource of every response,
 * so this is its hottest loop. */
static uint64_t hash_bytes(const uint8_t *p, size_t n, uint64_t seed)
{
    const uint64_t m = 0x9e3779b97f4a7c15ULL;
    uint64_t h = seed ^ (n * m);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ (v * m)) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, p, n);
    h = (h ^ (v * m)) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

/* --- a hash table of chained nodes, grown at load 1 ------------------------------------- */

typedef struct node {
    struct node *next;
    uint64_t hash;
} node_t;

typedef struct table {
    node_t **slot;
    size_t nslot, n;
} table_t;

static int table_grow(table_t *t)
{
    size_t nslot = t->nslot ? t->nslot * 2 : 1024;
    node_t **slot = calloc(nslot, sizeof(*slot));
    if (slot == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->nslot; i++)
        for (node_t *e = t->slot[i], *next; e; e = next) {
            next = e->next;
            e->next = slot[e->hash & (nslot - 1)];
            slot[e->hash & (nslot - 1)] = e;
        }
    free(t->slot);
    t->slot = slot;
    t->nslot = nslot;
    return 0;
}

static int table_add(table_t *t, node_t *e)
{
    if (t->n >= t->nslot && table_grow(t) < 0)
        return -ENOMEM;
    e->next = t->slot[e->hash & (t->nslot - 1)];
    t->slot[e->hash & (t->nslot - 1)] = e;
    t->n++;
    return 0;
}

static node_t *table_first(const table_t *t, uint64_t hash)
{
    return t->nslot ? t->slot[hash & (t->nslot - 1)] : NULL;
}

/* --- interned strings ------------------------------------------------------------------- */

typedef struct istr {
    node_t node;
    size_t len;
    char s[];
} istr_t;

static table_t strings;

const char *xl_intern_find(const char *s, size_t len)
{
    uint64_t h = hash_bytes((const uint8_t *)s, len, 1);
    for (node_t *e = table_first(&strings, h); e; e = e->next) {
        istr_t *i = (istr_t *)e;
        if (e->hash == h && i->len == len && memcmp(i->s, s, len) == 0)
            return i->s;
    }
    return NULL;
}

const char *xl_intern(const char *s, size_t len)
{
    const char *found = xl_intern_find(s, len);
    if (found)
        return found;
    istr_t *i = malloc(sizeof(*i) + len + 1);
    if (i == NULL)
        return NULL;
    i->node.hash = hash_bytes((const uint8_t *)s, len, 1);
    i->len = len;
    memcpy(i->s, s, len);
    i->s[len] = '\0';
    if (table_add(&strings, &i->node) < 0) {
        free(i);
        return NULL;
    }
    return i->s;
}

static const char *intern_str(const char *s)
{
    return xl_intern(s ? s : "", s ? strlen(s) : 0);
}

/* --- what a resource references ---------------------------------------------------------- */

typedef struct entry {
    node_t node;
    xl_res_t res;
} entry_t;

static table_t resources;
static uint64_t n_decoded, n_hits;

static int ref_add(xl_res_t *r, int kind, const char *name)
{
    if (name == NULL || name[0] == '\0')
        return 0;
    const char *in = intern_str(name);
    if (in == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < r->nrefs[kind]; i++)
        if (r->refs[kind][i] == in)
            return 0;
    const char **v = realloc(r->refs[kind], (r->nrefs[kind] + 1) * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    v[r->nrefs[kind]++] = in;
    r->refs[kind] = v;
    return 0;
}

typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext common_tls_t;

/* The SDS secret names of a CommonTlsContext. */
static int refs_tls_common(xl_res_t *r, const common_tls_t *c)
{
    int rc = 0;
    if (c == NULL)
        return 0;
    for (size_t i = 0; i < c->n_tls_certificate_sds_secret_configs && rc == 0; i++)
        rc = ref_add(r, XL_REF_SDS, c->tls_certificate_sds_secret_configs[i]->name);
    if (rc == 0 &&
        c->validation_context_type_case ==
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG)
        rc = ref_add(r, XL_REF_SDS, c->validation_context_sds_secret_config->name);
    if (rc == 0 &&
        c->validation_context_type_case ==
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT &&
        c->combined_validation_context->validation_context_sds_secret_config)
        rc = ref_add(r, XL_REF_SDS,
                     c->combined_validation_context->validation_context_sds_secret_config->name);
    return rc;
}

/* The SDS secret names of a transport socket holding an Upstream- or DownstreamTlsContext;
 * 0 for any other (or none); -EBADMSG when its TLS context does not decode. */
static int refs_transport_socket(xl_res_t *r, const Envoy__Config__Core__V3__TransportSocket *ts)
{
    if (ts == NULL ||
        ts->config_type_case != ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG)
        return 0;
    const Google__Protobuf__Any *any = ts->typed_config;
    int rc = 0;
    if (strcmp(any->type_url, UPSTREAM_TLS_URL) == 0) {
        Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *u =
            envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__unpack(
                NULL, any->value.len, any->value.data);
        if (u == NULL)
            return -EBADMSG;
        rc = refs_tls_common(r, u->common_tls_context);
        envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__free_unpacked(u, NULL);
    } else if (strcmp(any->type_url, DOWNSTREAM_TLS_URL) == 0) {
        Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *d =
            envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__unpack(
                NULL, any->value.len, any->value.data);
        if (d == NULL)
            return -EBADMSG;
        rc = refs_tls_common(r, d->common_tls_context);
        envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__free_unpacked(d,
                                                                                             NULL);
    }
    return rc;
}

static int decode_cluster(xl_res_t *r, const uint8_t *p, size_t n)
{
    Envoy__Config__Cluster__V3__Cluster *c =
        envoy__config__cluster__v3__cluster__unpack(NULL, n, p);
    if (c == NULL)
        return -EBADMSG;
    int rc = (r->name = intern_str(c->name)) ? 0 : -ENOMEM;
    if (rc == 0 &&
        c->cluster_discovery_type_case ==
            ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE &&
        c->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS) {
        const char *svc = c->eds_cluster_config ? c->eds_cluster_config->service_name : NULL;
        rc = ref_add(r, XL_REF_DEP, svc && svc[0] ? svc : c->name);
    }
    if (rc == 0)
        rc = refs_transport_socket(r, c->transport_socket);
    envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
    return rc;
}

static int refs_filter_chain(xl_res_t *r, const Envoy__Config__Listener__V3__FilterChain *fc)
{
    if (fc == NULL)
        return 0;
    for (size_t i = 0; i < fc->n_filters; i++) {
        const Envoy__Config__Listener__V3__Filter *f = fc->filters[i];
        if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG ||
            strcmp(f->typed_config->type_url, HCM_URL) != 0)
            continue;
        Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm =
            envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__unpack(
                NULL, f->typed_config->value.len, f->typed_config->value.data);
        if (hcm == NULL)
            return -EBADMSG;
        int rc = 0;
        if (hcm->route_specifier_case ==
                ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS &&
            hcm->rds)
            rc = ref_add(r, XL_REF_DEP, hcm->rds->route_config_name);
        envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(
            hcm, NULL);
        if (rc < 0)
            return rc;
    }
    return refs_transport_socket(r, fc->transport_socket);
}

static int decode_listener(xl_res_t *r, const uint8_t *p, size_t n)
{
    Envoy__Config__Listener__V3__Listener *l =
        envoy__config__listener__v3__listener__unpack(NULL, n, p);
    if (l == NULL)
        return -EBADMSG;
    int rc = (r->name = intern_str(l->name)) ? 0 : -ENOMEM;
    for (size_t i = 0; i < l->n_filter_chains && rc == 0; i++)
        rc = refs_filter_chain(r, l->filter_chains[i]);
    if (rc == 0)
        rc = refs_filter_chain(r, l->default_filter_chain);
    envoy__config__listener__v3__listener__free_unpacked(l, NULL);
    return rc;
}

/* Endpoints, routes and secrets reference nothing the tool follows: only their names. */
static int decode_named(xl_res_t *r, const uint8_t *p, size_t n)
{
    ProtobufCMessage *m = NULL;
    const char *name = NULL;
    if (r->type == XL_EDS) {
        Envoy__Config__Endpoint__V3__ClusterLoadAssignment *c =
            envoy__config__endpoint__v3__cluster_load_assignment__unpack(NULL, n, p);
        m = (ProtobufCMessage *)c, name = c ? c->cluster_name : NULL;
    } else if (r->type == XL_RDS) {
        Envoy__Config__Route__V3__RouteConfiguration *c =
            envoy__config__route__v3__route_configuration__unpack(NULL, n, p);
        m = (ProtobufCMessage *)c, name = c ? c->name : NULL;
    } else {
        Envoy__Extensions__TransportSockets__Tls__V3__Secret *c =
            envoy__extensions__transport_sockets__tls__v3__secret__unpack(NULL, n, p);
        m = (ProtobufCMessage *)c, name = c ? c->name : NULL;
    }
    if (name == NULL)
        return -EBADMSG;
    r->name = intern_str(name);
    protobuf_c_message_free_unpacked(m, NULL);
    return r->name ? 0 : -ENOMEM;
}

static void res_clear_refs(xl_res_t *r)
{
    for (int k = 0; k < XL_NREFS; k++) {
        free(r->refs[k]);
        r->refs[k] = NULL;
        r->nrefs[k] = 0;
    }
}

const xl_res_t *xl_res_get(int type, const uint8_t *p, size_t n)
{
    uint64_t h = hash_bytes(p, n, (uint64_t)type + 7);
    for (node_t *e = table_first(&resources, h); e; e = e->next) {
        xl_res_t *r = &((entry_t *)e)->res;
        if (e->hash == h && r->len == n && r->type == type && memcmp(r->bytes, p, n) == 0) {
            n_hits++;
            return r;
        }
    }
    entry_t *e = calloc(1, sizeof(*e));
    uint8_t *copy = malloc(n ? n : 1);
    if (e == NULL || copy == NULL)
        goto fail_alloc;
    memcpy(copy, p, n);
    xl_res_t *r = &e->res;
    e->node.hash = h;
    r->hash = h, r->len = n, r->bytes = copy, r->type = type;
    int rc = type == XL_CDS   ? decode_cluster(r, p, n)
             : type == XL_LDS ? decode_listener(r, p, n)
                              : decode_named(r, p, n);
    if (rc == -ENOMEM)
        goto fail_decode;
    if (rc < 0) {
        /* Kept as bad, so the same broken bytes are not decoded again. */
        res_clear_refs(r);
        r->bad = true;
        r->name = "";
    }
    if (table_add(&resources, &e->node) < 0)
        goto fail_decode;
    n_decoded++;
    return r;
fail_decode:
    res_clear_refs(&e->res);
fail_alloc:
    free(copy);
    free(e);
    return NULL;
}

void xl_cache_counts(uint64_t *decoded, uint64_t *hits)
{
    *decoded = n_decoded;
    *hits = n_hits;
}

static void table_free(table_t *t, void (*free_node)(node_t *))
{
    for (size_t i = 0; i < t->nslot; i++)
        for (node_t *e = t->slot[i], *next; e; e = next) {
            next = e->next;
            free_node(e);
        }
    free(t->slot);
    memset(t, 0, sizeof(*t));
}

static void free_string(node_t *e)
{
    free(e);
}

static void free_resource(node_t *e)
{
    entry_t *en = (entry_t *)e;
    res_clear_refs(&en->res);
    free(en->res.bytes);
    free(en);
}

void xl_cache_free(void)
{
    table_free(&resources, free_resource);
    table_free(&strings, free_string);
    xl_wire_free();
}
