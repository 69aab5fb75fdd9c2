/* The ADS client's state: making and freeing it, subscriptions, a new stream, and what it holds
 * as a resource set and for /config_dump. Requests are packed in ads_request.c, responses taken
 * in ads_response.c. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "xds/ads/ads_internal.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"

const ads_type_info_t ads_types[ADS_NTYPES] = {
    [ADS_CDS] = {ADS_TYPE_CLUSTER, "cds", &envoy__config__cluster__v3__cluster__descriptor, "name",
                 true},
    [ADS_EDS] = {ADS_TYPE_ENDPOINT, "eds",
                 &envoy__config__endpoint__v3__cluster_load_assignment__descriptor, "cluster_name",
                 false},
    [ADS_LDS] = {ADS_TYPE_LISTENER, "lds", &envoy__config__listener__v3__listener__descriptor,
                 "name", true},
    [ADS_RDS] = {ADS_TYPE_ROUTE, "rds", &envoy__config__route__v3__route_configuration__descriptor,
                 "name", false},
    [ADS_SDS] = {ADS_TYPE_SECRET, "sds",
                 &envoy__extensions__transport_sockets__tls__v3__secret__descriptor, "name", false},
};

int ads_type_index(const char *type_url)
{
    for (int t = 0; type_url && t < ADS_NTYPES; t++)
        if (strcmp(type_url, ads_types[t].url) == 0)
            return t;
    return -1;
}

char *ads_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

int ads_names_add(ads_names_t *l, const char *name)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    if ((l->v[l->n] = strdup(name)) == NULL)
        return -ENOMEM;
    l->n++;
    return 0;
}

void ads_names_free(ads_names_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

typedef struct ads_version {
    size_t refs;
    char text[];
} ads_version_t;

static ads_version_t *version_of(char *v)
{
    return (ads_version_t *)(v - offsetof(ads_version_t, text));
}

char *ads_version_new(const char *text)
{
    size_t len = strlen(text);
    ads_version_t *v = malloc(sizeof(*v) + len + 1);
    if (v == NULL)
        return NULL;
    v->refs = 1;
    memcpy(v->text, text, len + 1);
    return v->text;
}

char *ads_version_ref(char *v)
{
    if (v)
        version_of(v)->refs++;
    return v;
}

void ads_version_unref(char *v)
{
    if (v && --version_of(v)->refs == 0)
        free(version_of(v));
}

void ads_entry_drop_msg(ads_entry_t *e)
{
    snap_kept_unref(e->kept); /* the last holder frees the message, on any thread */
    if (e->raw)
        explicit_bzero(e->raw, e->raw_len); /* a secret's bytes hold its keys */
    free(e->raw);
    ads_version_unref(e->version);
    e->msg = NULL;
    e->kept = NULL;
    e->version = NULL;
    e->raw = NULL;
    e->raw_len = 0;
}

/* A deep copy of m (borrowed) through the wire format; NULL when out of memory. */
static ProtobufCMessage *message_copy(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return NULL;
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    free(buf);
    return copy;
}

ads_t *ads_new(const struct Envoy__Config__Core__V3__Node *node, const ads_opts_t *opts)
{
    ads_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->opts = *opts;
    if (node && (a->node = message_copy(&node->base)) == NULL)
        goto fail;
    for (int t = 0; t < ADS_NTYPES; t++) {
        a->types[t].version_info = strdup("");
        a->types[t].nonce = strdup("");
        if (a->types[t].version_info == NULL || a->types[t].nonce == NULL)
            goto fail;
    }
    return a;
fail:
    ads_free(a);
    return NULL;
}

void ads_free(ads_t *a)
{
    if (a == NULL)
        return;
    for (int t = 0; t < ADS_NTYPES; t++) {
        ads_type_state_t *ts = &a->types[t];
        ads_table_clear(&ts->table);
        ads_acks_clear(ts);
        free(ts->version_info);
        free(ts->nonce);
        free(ts->last_error);
        free(ts->nack);
        ads_names_wire_drop(ts);
    }
    if (a->node)
        protobuf_c_message_free_unpacked(a->node, NULL);
    free(a);
}

ads_mode_t ads_mode(const ads_t *a)
{
    return a->opts.mode;
}

const char *ads_method(const ads_t *a)
{
    return a->opts.mode == ADS_DELTA ? ADS_METHOD_DELTA : ADS_METHOD_SOTW;
}

/* What applying a new name set to one entry found. */
typedef struct subscribe_pass {
    bool wildcard;
    ads_type_state_t *ts;
    bool changed;
    int moved; /* resources that left the set or came back to it */
} subscribe_pass_t;

/* An entry marked seen is in the new set; one subscribed and not seen leaves it. A named type's
 * resource goes with its name, except that a name the server was told of keeps its message, out
 * of the set, until the request that drops it goes: subscribed again before that, it comes back,
 * as the server, told nothing, sends it no more. */
static void subscribe_entry(ads_table_t *t, ads_entry_t *e, void *ctx)
{
    subscribe_pass_t *p = ctx;
    bool want = e->seen;
    e->seen = false;
    if (want && !e->subscribed) {
        p->changed = true;
        p->ts->names++;
        e->subscribed = true;
        if (!p->wildcard && e->msg)
            p->moved++; /* back in the set before the server was told it left */
    } else if (!want && e->subscribed) {
        p->changed = true;
        p->ts->names--;
        e->subscribed = false;
        if (!p->wildcard) {
            if (e->msg)
                p->moved++;
            free(e->error);
            free(e->error_version);
            e->error = e->error_version = NULL;
            if (!e->sent)
                ads_entry_drop_msg(e);
        }
    }
    ads_table_release(t, e);
}

static void unmark_entry(ads_table_t *t, ads_entry_t *e, void *ctx)
{
    (void)ctx;
    e->seen = false;
    ads_table_release(t, e);
}

/* Whether names (n, borrowed) are exactly the names ts subscribes: as many, each subscribed, in
 * ascending order (so none twice; names in another order take the long way). Then subscribing
 * them changes nothing, and the walk over every entry that a change needs is skipped: the usual
 * case, as the xDS client follows each new config's references, sorted. */
static bool same_names(const ads_type_state_t *ts, const char *const *names, size_t n)
{
    if (n != ts->names)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(names[i - 1], names[i]) >= 0)
            return false;
        const ads_entry_t *e = ads_table_find(&ts->table, names[i]);
        if (e == NULL || !e->subscribed)
            return false;
    }
    return true;
}

int ads_subscribe(ads_t *a, const char *type_url, const char *const *names, size_t n)
{
    int t = ads_type_index(type_url);
    if (t < 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (names[i] == NULL || names[i][0] == '\0' || strcmp(names[i], "*") == 0 ||
            strlen(names[i]) > ADS_NAME_MAX)
            return -EINVAL;
    }
    ads_type_state_t *ts = &a->types[t];
    if (ts->subscribed && same_names(ts, names, n))
        return 0; /* the caller follows a config whose references did not change */
    for (size_t i = 0; i < n; i++) {
        ads_entry_t *e = ads_table_get(&ts->table, names[i]);
        if (e == NULL) {
            ads_table_each(&ts->table, unmark_entry, NULL);
            return -ENOMEM;
        }
        e->seen = true;
    }
    ads_names_wire_drop(ts); /* the names may change below */
    subscribe_pass_t p = {.wildcard = ads_types[t].wildcard, .ts = ts, .changed = !ts->subscribed};
    ads_table_each(&ts->table, subscribe_entry, &p);
    ts->subscribed = true;
    if (p.changed)
        ts->due = true;
    return p.moved;
}

int ads_next_request(ads_t *a, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    for (int t = 0; t < ADS_NTYPES; t++) {
        if (!a->types[t].due)
            continue;
        int rc = a->opts.mode == ADS_DELTA ? ads_pack_delta(a, t, buf, len)
                                           : ads_pack_sotw(a, t, buf, len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ads_on_response(ads_t *a, const uint8_t *buf, size_t len, uint64_t now_ms, ads_result_t *out,
                    char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (a->opts.mode == ADS_DELTA)
        return ads_on_delta(a, buf, len, now_ms, out, err, errlen);
    return ads_on_sotw(a, buf, len, now_ms, out, err, errlen);
}

void ads_result_free(ads_result_t *out)
{
    ads_names_free(&out->added);
    ads_names_free(&out->updated);
    ads_names_free(&out->removed);
    ads_names_free(&out->rejected);
    free(out->error);
    memset(out, 0, sizeof(*out));
}

bool ads_result_changed(const ads_result_t *out)
{
    return out->added.n || out->updated.n || out->removed.n;
}

/* A new stream: what was owed on the old one is moot, the server knows nothing of us. */
static void reconnect_entry(ads_table_t *t, ads_entry_t *e, void *ctx)
{
    if (e->sent && !e->subscribed && !ads_types[*(int *)ctx].wildcard)
        ads_entry_drop_msg(e); /* its unsubscription never went: it goes now */
    e->sent = false;
    ads_table_release(t, e);
}

void ads_reconnected(ads_t *a)
{
    a->stream_started = false;
    for (int t = 0; t < ADS_NTYPES; t++) {
        ads_type_state_t *ts = &a->types[t];
        ads_table_each(&ts->table, reconnect_entry, &t);
        ads_names_wire_drop(ts); /* nothing is sent on the new stream yet */
        ads_acks_clear(ts);
        free(ts->nack);
        ts->nack = NULL;
        ts->nonce[0] = '\0';
        ts->sent_on_stream = false;
        ts->star_sent = false;
        ts->due = ts->subscribed;
    }
}

/* Whether e is part of the resource set: a good message of a wildcard type, or of a name the
 * client asks for. */
static bool entry_held(int t, const ads_entry_t *e)
{
    return e->msg && (ads_types[t].wildcard || e->subscribed);
}

/* Whether /config_dump shows e: held, rejected, or asked for. */
static bool entry_listed(int t, const ads_entry_t *e)
{
    if (ads_types[t].wildcard)
        return e->msg || e->error || e->subscribed;
    return e->subscribed;
}

#define LIST_AHEAD 8 /* entries */

int ads_resources(const ads_t *a, config_resources_t *res)
{
    config_resource_list_t *lists[ADS_NTYPES] = {
        [ADS_CDS] = &res->clusters,      [ADS_EDS] = &res->endpoints, [ADS_LDS] = &res->listeners,
        [ADS_RDS] = &res->route_configs, [ADS_SDS] = &res->secrets,
    };
    for (int t = 0; t < ADS_NTYPES; t++) {
        size_t n, k = 0;
        bool oom;
        ads_entry_t *const *v = ads_table_sorted(&a->types[t].table, &n, &oom);
        if (oom || config_resources_reserve(lists[t], n) < 0)
            return -ENOMEM;
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            /* Each entry is elsewhere in memory: fetched a few ahead, the misses overlap. */
            if (i + LIST_AHEAD < n)
                __builtin_prefetch(v[i + LIST_AHEAD]);
            if (entry_held(t, v[i])) {
                rc = config_resources_add_named(lists[t], v[i]->msg, ads_types[t].short_name, k++,
                                                v[i]->name);
                if (rc == 0) { /* an xDS resource: /config_dump shows it as dynamic */
                    lists[t]->v[lists[t]->n - 1].version = v[i]->version ? v[i]->version : "";
                    lists[t]->v[lists[t]->n - 1].kept = v[i]->kept; /* held once */
                }
            }
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void fill_info(int t, const ads_entry_t *e, ads_resource_info_t *out)
{
    bool held = entry_held(t, e);
    *out = (ads_resource_info_t){.type_url = ads_types[t].url,
                                 .name = e->name,
                                 .msg = held ? e->msg : NULL,
                                 .version = held ? e->version : NULL,
                                 .updated_ms = held ? e->updated_ms : 0,
                                 .error = e->error,
                                 .error_version = e->error_version,
                                 .error_ms = e->error ? e->error_ms : 0};
}

int ads_dump(const ads_t *a, const char *type_url, ads_resource_info_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int t = ads_type_index(type_url);
    if (t < 0)
        return -EINVAL;
    size_t m;
    bool oom;
    ads_entry_t *const *v = ads_table_sorted(&a->types[t].table, &m, &oom);
    if (oom)
        return -ENOMEM;
    if (m == 0)
        return 0;
    ads_resource_info_t *info = malloc(m * sizeof(*info));
    if (info == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m; i++)
        if (entry_listed(t, v[i]))
            fill_info(t, v[i], &info[(*n)++]);
    *out = info;
    return 0;
}

int ads_find(const ads_t *a, const char *type_url, const char *name, ads_resource_info_t *out)
{
    int t = ads_type_index(type_url);
    if (t < 0)
        return -EINVAL;
    const ads_entry_t *e = ads_table_find(&a->types[t].table, name);
    if (e == NULL || !entry_listed(t, e))
        return -ENOENT;
    fill_info(t, e, out);
    return 0;
}

int ads_type_status(const ads_t *a, const char *type_url, ads_type_status_t *out)
{
    int t = ads_type_index(type_url);
    if (t < 0)
        return -EINVAL;
    const ads_type_state_t *ts = &a->types[t];
    size_t held = 0;
    for (size_t i = 0; i < ts->table.nbuckets; i++)
        for (const ads_entry_t *e = ts->table.buckets[i]; e; e = e->next)
            held += entry_held(t, e);
    *out = (ads_type_status_t){.subscribed = ts->subscribed,
                               .wildcard = ts->subscribed && ads_types[t].wildcard,
                               .names = ts->names,
                               .resources = held,
                               .version_info = ts->version_info,
                               .nonce = ts->nonce,
                               .last_error = ts->last_error};
    return 0;
}
