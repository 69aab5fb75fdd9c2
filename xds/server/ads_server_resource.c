/* Resources encoded once and shared by reference, and the views that group them: a view holds,
 * per type, its resources sorted by name, and a replace diffs the old generation against the
 * new one to tell the streams on it which names changed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xds/server/ads_server_internal.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"

static const struct {
    const char *url;
    const ProtobufCMessageDescriptor *desc;
} type_info[ADS_SRV_NTYPES] = {
    [ADS_SRV_CDS] = {"type.googleapis.com/envoy.config.cluster.v3.Cluster",
                     &envoy__config__cluster__v3__cluster__descriptor},
    [ADS_SRV_EDS] = {"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
                     &envoy__config__endpoint__v3__cluster_load_assignment__descriptor},
    [ADS_SRV_LDS] = {"type.googleapis.com/envoy.config.listener.v3.Listener",
                     &envoy__config__listener__v3__listener__descriptor},
    [ADS_SRV_RDS] = {"type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
                     &envoy__config__route__v3__route_configuration__descriptor},
    [ADS_SRV_SDS] = {"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                     &envoy__extensions__transport_sockets__tls__v3__secret__descriptor},
};

const char *ads_srv_type_url(ads_srv_type_t t)
{
    return (unsigned)t < ADS_SRV_NTYPES ? type_info[t].url : NULL;
}

int ads_srv_type_of(const char *type_url)
{
    for (int t = 0; type_url && t < ADS_SRV_NTYPES; t++)
        if (strcmp(type_url, type_info[t].url) == 0)
            return t;
    return -1;
}

int ads_srv_mode_of_method(const char *path)
{
    static const char svc[] = "/envoy.service.discovery.v3.AggregatedDiscoveryService/";
    if (path == NULL || strncmp(path, svc, sizeof(svc) - 1) != 0)
        return -1;
    if (strcmp(path + sizeof(svc) - 1, "StreamAggregatedResources") == 0)
        return ADS_SRV_SOTW;
    if (strcmp(path + sizeof(svc) - 1, "DeltaAggregatedResources") == 0)
        return ADS_SRV_DELTA;
    return -1;
}

uint64_t ads_srv_fnv(const void *data, size_t len, uint64_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void ads_srv_hex(uint64_t h, char out[17])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, h >>= 4)
        out[i] = digits[h & 15];
    out[16] = '\0';
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* One block: the struct, the name, and the Any { type_url = 1; value = 2 } whose value is the
 * message. The message is written by fill (packing it in place) or copied from bytes. */
static ads_srv_resource_t *resource_alloc(ads_srv_type_t t, const char *name, size_t len,
                                          const uint8_t *bytes, const ProtobufCMessage *msg)
{
    size_t name_len = name ? strlen(name) : 0;
    if ((unsigned)t >= ADS_SRV_NTYPES || name_len == 0 || name_len > ADS_SRV_NAME_MAX) {
        errno = EINVAL;
        return NULL;
    }
    size_t url_len = strlen(type_info[t].url);
    size_t any_len = 1 + varint_len(url_len) + url_len + 1 + varint_len(len) + len;
    ads_srv_resource_t *r = malloc(sizeof(*r) + name_len + 1 + any_len);
    if (r == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&r->refs, 1);
    r->type = t;
    r->name = (char *)(r + 1);
    memcpy(r->name, name, name_len + 1);
    r->any = (uint8_t *)r->name + name_len + 1;
    r->any_len = any_len;
    uint8_t *p = r->any;
    *p++ = 0x0a; /* field 1, length-delimited */
    p = varint_put(p, url_len);
    memcpy(p, type_info[t].url, url_len);
    p += url_len;
    *p++ = 0x12; /* field 2, length-delimited */
    p = varint_put(p, len);
    r->value = p;
    r->value_len = len;
    if (msg)
        protobuf_c_message_pack(msg, p);
    else if (len)
        memcpy(p, bytes, len);
    r->hash = ads_srv_fnv(r->value, len, ADS_SRV_FNV_INIT);
    r->name_hash = ads_srv_fnv(name, name_len, ADS_SRV_FNV_INIT);
    ads_srv_hex(r->hash, r->version);
    return r;
}

ads_srv_resource_t *ads_srv_resource_new(ads_srv_type_t t, const char *name, const uint8_t *bytes,
                                         size_t len)
{
    if (len && bytes == NULL) {
        errno = EINVAL;
        return NULL;
    }
    return resource_alloc(t, name, len, bytes, NULL);
}

ads_srv_resource_t *ads_srv_resource_from_message(const ProtobufCMessage *msg)
{
    int t = -1;
    for (int i = 0; msg && i < ADS_SRV_NTYPES; i++)
        if (msg->descriptor == type_info[i].desc)
            t = i;
    if (t < 0) {
        errno = EINVAL;
        return NULL;
    }
    const char *field = t == ADS_SRV_EDS ? "cluster_name" : "name";
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, field);
    const char *name = *(char *const *)((const char *)msg + f->offset);
    return resource_alloc(t, name, protobuf_c_message_get_packed_size(msg), NULL, msg);
}

ads_srv_resource_t *ads_srv_resource_ref(ads_srv_resource_t *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void ads_srv_resource_unref(ads_srv_resource_t *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        free(r);
}

ads_srv_type_t ads_srv_resource_type(const ads_srv_resource_t *r)
{
    return r->type;
}

const char *ads_srv_resource_name(const ads_srv_resource_t *r)
{
    return r->name;
}

const char *ads_srv_resource_version(const ads_srv_resource_t *r)
{
    return r->version;
}

uint64_t ads_srv_resource_hash(const ads_srv_resource_t *r)
{
    return r->hash;
}

const uint8_t *ads_srv_resource_bytes(const ads_srv_resource_t *r, size_t *len)
{
    *len = r->value_len;
    return r->value;
}

/* ---- views --------------------------------------------------------------------------------- */

ads_srv_view_t *ads_srv_view_new(void)
{
    ads_srv_view_t *v = calloc(1, sizeof(*v));
    if (v)
        atomic_init(&v->refs, 1);
    return v;
}

ads_srv_view_t *ads_srv_view_ref(ads_srv_view_t *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

void ads_srv_view_unref(ads_srv_view_t *v)
{
    if (v == NULL || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int t = 0; t < ADS_SRV_NTYPES; t++) {
        for (size_t i = 0; i < v->n[t]; i++)
            ads_srv_resource_unref(v->res[t][i]);
        free(v->res[t]);
    }
    free(v);
}

ads_srv_resource_t *ads_srv_view_lookup(const ads_srv_view_t *v, ads_srv_type_t t, const char *name)
{
    size_t lo = 0, hi = v->n[t];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->res[t][mid]->name, name);
        if (c == 0)
            return v->res[t][mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const ads_srv_resource_t *ads_srv_view_find(const ads_srv_view_t *v, ads_srv_type_t t,
                                            const char *name)
{
    if ((unsigned)t >= ADS_SRV_NTYPES || name == NULL)
        return NULL;
    return ads_srv_view_lookup(v, t, name);
}

size_t ads_srv_view_count(const ads_srv_view_t *v, ads_srv_type_t t)
{
    return (unsigned)t < ADS_SRV_NTYPES ? v->n[t] : 0;
}

uint64_t ads_srv_view_generation(const ads_srv_view_t *v)
{
    return v->generation;
}

void ads_srv_view_attach(ads_srv_view_t *v, ads_srv_type_t t, ads_srv_stream_t *s)
{
    s->links[t].prev = NULL;
    s->links[t].next = v->streams[t];
    if (v->streams[t])
        v->streams[t]->links[t].prev = s;
    v->streams[t] = s;
}

void ads_srv_view_detach(ads_srv_view_t *v, ads_srv_type_t t, ads_srv_stream_t *s)
{
    ads_srv_link_t *l = &s->links[t];
    if (l->prev)
        l->prev->links[t].next = l->next;
    else
        v->streams[t] = l->next;
    if (l->next)
        l->next->links[t].prev = l->prev;
    l->prev = l->next = NULL;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(ads_srv_resource_t *const *)a)->name, (*(ads_srv_resource_t *const *)b)->name);
}

/* Tells every stream served type t from v that (t, name) changed: r is the new resource, or
 * NULL (removed). */
static void touch_all(ads_srv_view_t *v, ads_srv_type_t t, const ads_srv_resource_t *r,
                      const char *name)
{
    for (ads_srv_stream_t *s = v->streams[t]; s; s = s->links[t].next)
        ads_srv_stream_touch(s, t, r, name);
}

/* Merges the old and new sorted lists of type t, touching the names that differ. */
static int diff_type(ads_srv_view_t *v, ads_srv_type_t t, ads_srv_resource_t **nw, size_t nn)
{
    ads_srv_resource_t **old = v->res[t];
    size_t no = v->n[t], i = 0, j = 0;
    int changed = 0;
    while (i < no || j < nn) {
        int c = i == no ? 1 : j == nn ? -1 : strcmp(old[i]->name, nw[j]->name);
        if (c < 0) {
            touch_all(v, t, NULL, old[i]->name);
            i++;
            changed++;
        } else if (c > 0) {
            touch_all(v, t, nw[j], nw[j]->name);
            j++;
            changed++;
        } else {
            if (old[i]->hash != nw[j]->hash) {
                touch_all(v, t, nw[j], nw[j]->name);
                changed++;
            }
            i++;
            j++;
        }
    }
    return changed;
}

int ads_srv_view_replace(ads_srv_view_t *v, ads_srv_resource_t *const *res, size_t n,
                         bool all_types)
{
    ads_srv_resource_t **lists[ADS_SRV_NTYPES] = {0};
    size_t counts[ADS_SRV_NTYPES] = {0}, fill[ADS_SRV_NTYPES] = {0};
    bool replace[ADS_SRV_NTYPES];
    int rc = -ENOMEM, changed = 0;
    for (size_t i = 0; i < n; i++)
        counts[res[i]->type]++;
    for (int t = 0; t < ADS_SRV_NTYPES; t++) {
        replace[t] = all_types || counts[t] > 0;
        if (counts[t] && (lists[t] = malloc(counts[t] * sizeof(*lists[t]))) == NULL)
            goto fail;
    }
    for (size_t i = 0; i < n; i++)
        lists[res[i]->type][fill[res[i]->type]++] = res[i];
    rc = -EINVAL;
    for (int t = 0; t < ADS_SRV_NTYPES; t++) {
        if (counts[t])
            qsort(lists[t], counts[t], sizeof(*lists[t]), by_name);
        for (size_t i = 1; i < counts[t]; i++)
            if (strcmp(lists[t][i - 1]->name, lists[t][i]->name) == 0)
                goto fail;
    }
    for (int t = 0; t < ADS_SRV_NTYPES; t++) {
        if (!replace[t])
            continue;
        changed += diff_type(v, t, lists[t], counts[t]);
        for (size_t i = 0; i < counts[t]; i++)
            ads_srv_resource_ref(lists[t][i]);
        for (size_t i = 0; i < v->n[t]; i++)
            ads_srv_resource_unref(v->res[t][i]);
        free(v->res[t]);
        v->res[t] = lists[t];
        v->n[t] = counts[t];
        lists[t] = NULL;
    }
    if (changed)
        v->generation++;
    /* The hooks run once the view is whole again: a hook may build a response at once. Only the
     * streams served a replaced type from v can have been touched. */
    for (int t = 0; changed && t < ADS_SRV_NTYPES; t++)
        for (ads_srv_stream_t *s = replace[t] ? v->streams[t] : NULL, *next; s; s = next) {
            next = s->links[t].next;
            ads_srv_stream_notify(s);
        }
    return changed;
fail:
    for (int t = 0; t < ADS_SRV_NTYPES; t++)
        free(lists[t]);
    return rc;
}
