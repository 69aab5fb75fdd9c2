/* Taking in a response: a resource whose bytes are those of the one held is taken as it is; every
 * other one is decoded and checked on its own, the valid ones applied and the invalid ones
 * rejected without taking the valid ones down (gRFC A46), then the removal rules of the mode (a
 * SotW listener or cluster response is the full set; delta names what leaves), and the ACK or
 * NACK owed. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "xds/ads/ads_internal.h"
#include "xds/config/config.h"
#include "xds/config/pb_arena.h"

#include "envoy/service/discovery/v3/discovery.pb-c.h"

typedef Envoy__Service__Discovery__V3__DiscoveryResponse sotw_response_t;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse delta_response_t;
typedef Envoy__Service__Discovery__V3__Resource delta_resource_t;

#define ERR_MAX 1536 /* one resource's error: a field path and what is wrong with it */

typedef enum item_state {
    ITEM_OK,
    ITEM_IGNORED, /* a name not subscribed, a TTL heartbeat */
    ITEM_REJECTED,
} item_state_t;

/* One resource of a response on its way in. */
typedef struct item {
    size_t index;          /* its place in the response */
    const char *name;      /* borrowed from msg or the delta Resource; NULL: not known */
    const char *version;   /* borrowed from the response */
    ProtobufCMessage *msg; /* decoded (owned until applied), or NULL; lives in arena */
    pb_arena_t *arena;     /* msg's memory (owned until applied), or NULL */
    /* Its bytes in the decoded response (borrowed; the entry takes them when it takes msg), or
     * NULL for a resource without an Any. */
    ProtobufCBinaryData *raw;
    item_state_t state;
    bool unchanged;     /* the message the client holds already */
    bool resent;        /* unchanged, seen by its bytes alone: never decoded */
    ads_entry_t *entry; /* its name's entry (the table's) once found: not looked up again */
    bool quiet;         /* a later copy of a duplicated name: reported once, with the first */
    bool marked;        /* apply_items marked its entry seen (such an entry is not freed) */
    char *error;        /* why it was rejected (owned) */
    /* A response read in place: the Any made for a resource that is not a resend (owned, with
     * its type_url and value, unless the entry took the value), or NULL. */
    Google__Protobuf__Any *any;
} item_t;

/* What a response's pass over its resources collects. */
typedef struct pass {
    ads_t *a;
    ads_type_t t;
    ads_type_state_t *ts;
    uint32_t name_id; /* the field number of the type's name */
    uint64_t now_ms;
    ads_result_t *out;
    item_t *items;
    size_t n;
    size_t nameless; /* rejected resources the client could not name */
    /* The version the last good resource took (a reference; NULL: none yet): the next one of
     * the same version shares it. */
    char *version;
    bool oom; /* an allocation failed inside a table walk */
} pass_t;

static void reject(item_t *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reject(item_t *it, const char *fmt, ...)
{
    char buf[ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    free(it->error);
    it->error = strdup(buf); /* NULL when out of memory: still rejected, said shorter */
    it->state = ITEM_REJECTED;
}

/* "lds['name']" or, for a resource the client could not name, "lds resources[3]". */
static const char *item_where(const pass_t *p, const item_t *it, char *buf, size_t len)
{
    if (it->name == NULL) {
        snprintf(buf, len, "%s resources[%zu]", ads_types[p->t].short_name, it->index);
        return buf;
    }
    config_resource_t r = {.origin = ads_types[p->t].short_name, .name = it->name};
    return config_resource_where(&r, buf, len);
}

/* The name a resource's message gives itself (its type's name field; "" when unset). */
static const char *message_name(ads_type_t t, const ProtobufCMessage *msg)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(ads_types[t].desc, ads_types[t].name_field);
    const char *name = *(char *const *)((const char *)msg + f->offset);
    return name ? name : "";
}

/* Decodes the Any of item it (type checked against the response's). */
static void decode_any(const pass_t *p, Google__Protobuf__Any *any, item_t *it)
{
    char err[512], where[256];
    it->raw = &any->value;
    int rc =
        config_any_unpack_arena(any, ads_types[p->t].desc, &it->msg, &it->arena, err, sizeof(err));
    if (rc < 0)
        reject(it, "%s: %s", item_where(p, it, where, sizeof(where)), err);
}

/* Whether value (vlen bytes, borrowed) is a resend of what the client holds: byte for byte the
 * bytes the held message of its name came from. Then it is that message, and neither decoded
 * nor checked again (the entry's name is the item's). The name is the delta Resource's (name,
 * nlen), or read from the bytes (name NULL). A byte difference only means the resource is
 * decoded: another encoder may write the same message otherwise. */
static bool resend_of_bytes(const pass_t *p, const uint8_t *value, size_t vlen, const char *name,
                            size_t nlen, item_t *it)
{
    if (name == NULL && !ads_wire_name(value, vlen, p->name_id, &name, &nlen))
        return false;
    ads_entry_t *e = ads_table_find_n(&p->ts->table, name, nlen);
    if (e == NULL || e->raw == NULL || e->raw_len != vlen || memcmp(e->raw, value, vlen) != 0)
        return false;
    it->entry = e;
    it->name = e->name;
    it->unchanged = it->resent = true;
    return true;
}

/* The same for an Any (borrowed), which must be of the response's type. */
static bool resend_of_held(const pass_t *p, const Google__Protobuf__Any *any, const char *name,
                           size_t nlen, item_t *it)
{
    if (any->type_url == NULL || strcmp(any->type_url, ads_types[p->t].url) != 0)
        return false;
    return resend_of_bytes(p, any->value.data, any->value.len, name, nlen, it);
}

/* A name the client keeps: not too long. A longer one is rejected, and forgotten. */
static void check_name_length(const pass_t *p, item_t *it)
{
    if (it->name == NULL || strlen(it->name) <= ADS_NAME_MAX)
        return;
    char where[256];
    const char *name = it->name;
    it->name = NULL;
    reject(it, "%s: name '%.64s...' is longer than %d bytes",
           item_where(p, it, where, sizeof(where)), name, ADS_NAME_MAX);
}

/* A SotW resource past the resend check: decoded, named by its message. */
static void sotw_decode(const pass_t *p, Google__Protobuf__Any *any, item_t *it)
{
    decode_any(p, any, it);
    if (it->state == ITEM_REJECTED)
        return;
    const char *name = message_name(p->t, it->msg);
    if (name[0] == '\0') {
        char where[256];
        reject(it, "%s: %s is empty: a resource needs a name",
               item_where(p, it, where, sizeof(where)), ads_types[p->t].name_field);
        return;
    }
    it->name = name;
    check_name_length(p, it);
}

static void sotw_item(const pass_t *p, Google__Protobuf__Any *any, item_t *it)
{
    if (!resend_of_held(p, any, NULL, 0, it))
        sotw_decode(p, any, it);
}

/* A SotW resource read in place (w, slices of the response): a resend is taken from its bytes
 * alone; anything else becomes an Any of its own (the item's, as protobuf-c would have made it:
 * copies of type_url and value) and goes the way of a decoded response's. Returns 0 or -ENOMEM. */
static int sotw_item_wire(const pass_t *p, const ads_wire_any_t *w, item_t *it)
{
    const char *url = ads_types[p->t].url;
    size_t ulen = strlen(url);
    /* type_url as a C string reads url: its bytes up to the first NUL, if any, are url's. */
    bool of_type = w->type_url && w->type_len >= ulen && memcmp(w->type_url, url, ulen) == 0 &&
                   (w->type_len == ulen || w->type_url[ulen] == '\0');
    if (of_type && resend_of_bytes(p, w->value, w->value_len, NULL, 0, it))
        return 0;
    Google__Protobuf__Any *any = malloc(sizeof(*any));
    if (any == NULL)
        return -ENOMEM;
    google__protobuf__any__init(any);
    any->type_url = malloc(w->type_len + 1);
    any->value.len = w->value_len;
    any->value.data = w->value_len ? malloc(w->value_len) : NULL;
    if (any->type_url == NULL || (w->value_len && any->value.data == NULL)) {
        free(any->type_url);
        free(any->value.data);
        free(any);
        return -ENOMEM;
    }
    if (w->type_len)
        memcpy(any->type_url, w->type_url, w->type_len);
    any->type_url[w->type_len] = '\0';
    if (w->value_len)
        memcpy(any->value.data, w->value, w->value_len);
    it->any = any;
    sotw_decode(p, any, it);
    return 0;
}

/* A delta Resource: named by itself (name, or resource_name), its message's own name the same. */
static void delta_item(const pass_t *p, delta_resource_t *r, item_t *it)
{
    char where[256];
    const char *name = r->name && r->name[0]                        ? r->name
                       : r->resource_name && r->resource_name->name ? r->resource_name->name
                                                                    : "";
    it->version = r->version ? r->version : "";
    if (name[0] == '\0') {
        reject(it, "%s: the Resource has no name", item_where(p, it, where, sizeof(where)));
        return;
    }
    it->name = name;
    check_name_length(p, it);
    if (it->state == ITEM_REJECTED)
        return;
    if (r->resource == NULL) {
        if (r->ttl) { /* a TTL heartbeat: Remora keeps no TTLs, so it changes nothing */
            it->state = ITEM_IGNORED;
            return;
        }
        reject(it, "%s: the Resource has no resource", item_where(p, it, where, sizeof(where)));
        return;
    }
    if (resend_of_held(p, r->resource, name, strlen(name), it))
        return;
    decode_any(p, r->resource, it);
    if (it->state == ITEM_REJECTED)
        return;
    const char *own = message_name(p->t, it->msg);
    if (strcmp(own, name) != 0)
        reject(it, "%s: the resource's %s is '%.200s'", item_where(p, it, where, sizeof(where)),
               ads_types[p->t].name_field, own);
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether the response may name something twice. Most of its items have their name's entry
 * (a resend's, found by its bytes; another's, looked up here and kept in the item): each entry
 * is marked by the first item of its name, so a second one is seen. Items of names without an
 * entry cannot be told apart that way: more than one of them is a maybe. The marks are cleared
 * again (`seen` is the apply's scratch). */
static bool may_repeat(pass_t *p)
{
    bool twice = false;
    size_t unknown = 0;
    for (size_t i = 0; i < p->n; i++) {
        item_t *it = &p->items[i];
        if (it->name == NULL || it->state == ITEM_IGNORED)
            continue;
        if (it->entry == NULL)
            it->entry = ads_table_find(&p->ts->table, it->name);
        if (it->entry == NULL)
            unknown++;
        else if (it->entry->seen)
            twice = true;
        else
            it->entry->seen = true;
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i].entry)
            p->items[i].entry->seen = false;
    return twice || unknown > 1;
}

/* A name twice in one response: the client cannot tell which is meant, so it takes neither.
 * When it may be so (may_repeat), the names go into a table of their own (open addressing, by
 * hash), not a sort: one pass finds each item's first of its name, a second rejects every item
 * of a name given more than once. */
static int reject_duplicates(pass_t *p)
{
    if (!may_repeat(p))
        return 0;
    size_t cap = 16;
    while (cap < 2 * p->n + 1)
        cap *= 2;
    uint32_t *slot = calloc(cap, sizeof(*slot)); /* 1 + the place of a name's first item */
    uint32_t *first = malloc((p->n ? p->n : 1) * sizeof(*first)); /* each item's first */
    uint32_t *count = calloc(p->n ? p->n : 1, sizeof(*count));    /* items of a first's name */
    if (slot == NULL || first == NULL || count == NULL) {
        free(slot);
        free(first);
        free(count);
        return -ENOMEM;
    }
    bool twice = false;
    for (size_t i = 0; i < p->n; i++) {
        const item_t *it = &p->items[i];
        if (it->name == NULL || it->state == ITEM_IGNORED)
            continue;
        size_t h = (size_t)ads_hash(it->name, strlen(it->name)) & (cap - 1);
        while (slot[h] && strcmp(p->items[slot[h] - 1].name, it->name) != 0)
            h = (h + 1) & (cap - 1);
        if (slot[h] == 0)
            slot[h] = (uint32_t)(i + 1);
        first[i] = slot[h] - 1;
        twice = twice || ++count[first[i]] > 1;
    }
    for (size_t i = 0; twice && i < p->n; i++) {
        item_t *it = &p->items[i];
        if (it->name == NULL || it->state == ITEM_IGNORED || count[first[i]] < 2)
            continue;
        char where[256];
        reject(it, "%s: the name appears %u times in the response",
               item_where(p, it, where, sizeof(where)), count[first[i]]);
        it->quiet = first[i] != i;
    }
    free(slot);
    free(first);
    free(count);
    return 0;
}

/* msg packed by protobuf-c (new; NULL when out of memory), len bytes. */
static uint8_t *packed(const ProtobufCMessage *msg, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    if (b)
        protobuf_c_message_pack(msg, b);
    return b;
}

/* Whether e holds the message it (decoded: its bytes differ from the held ones) brings all the
 * same, as when a server encodes one message two ways: the same bytes once protobuf-c packs
 * both. Only a resource whose bytes changed pays for this. */
static bool holds_same(const ads_entry_t *e, const item_t *it)
{
    if (e->msg == NULL)
        return false;
    size_t len = protobuf_c_message_get_packed_size(e->msg);
    if (len != protobuf_c_message_get_packed_size(it->msg))
        return false;
    uint8_t *a = packed(e->msg, len), *b = packed(it->msg, len);
    bool same = a && b && memcmp(a, b, len) == 0;
    free(a);
    free(b);
    return same;
}

/* Checks one decoded resource: the field rules every config source meets, then the caller's. */
static int validate_item(const pass_t *p, item_t *it)
{
    char where[256], err[ERR_MAX];
    item_where(p, it, where, sizeof(where));
    int rc = config_validate(it->msg, where, err, sizeof(err));
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        reject(it, "%s", err);
        return 0;
    }
    if (p->a->opts.validate == NULL)
        return 0;
    err[0] = '\0';
    rc = p->a->opts.validate(p->a->opts.validate_ctx, ads_types[p->t].url, it->msg, err,
                             sizeof(err));
    if (rc < 0)
        reject(it, "%s: %s", where, err[0] ? err : "rejected");
    return 0;
}

/* The checks past decoding: subscription, duplicates, unchanged resends, validation. */
static int check_items(pass_t *p)
{
    bool wildcard = ads_types[p->t].wildcard;
    for (size_t i = 0; i < p->n && !wildcard; i++) {
        item_t *it = &p->items[i];
        if (it->name == NULL || it->state == ITEM_IGNORED)
            continue;
        const ads_entry_t *e = it->entry ? it->entry : ads_table_find(&p->ts->table, it->name);
        if (e == NULL || !e->subscribed)
            it->state = ITEM_IGNORED; /* a name the client did not ask for, valid or not */
    }
    int rc = reject_duplicates(p);
    for (size_t i = 0; rc == 0 && i < p->n; i++) {
        item_t *it = &p->items[i];
        if (it->state != ITEM_OK || it->resent)
            continue;
        const ads_entry_t *e = it->entry ? it->entry : ads_table_find(&p->ts->table, it->name);
        it->unchanged = e && holds_same(e, it);
        if (!it->unchanged)
            rc = validate_item(p, it);
    }
    return rc;
}

/* The entry takes the bytes of the response that msg came from (it->raw's, which the response
 * then lacks). */
static void take_raw(ads_entry_t *e, item_t *it)
{
    if (e->raw)
        explicit_bzero(e->raw, e->raw_len);
    free(e->raw);
    e->raw = it->raw ? it->raw->data : NULL;
    e->raw_len = it->raw ? it->raw->len : 0;
    if (it->raw)
        *it->raw = (ProtobufCBinaryData){0};
}

/* A good resource takes its place: the message it brings, or its version alone when it brings
 * the message held already. */
static int apply_good(pass_t *p, item_t *it, ads_entry_t *e)
{
    if (p->version == NULL || strcmp(p->version, it->version) != 0) {
        char *v = ads_version_new(it->version);
        if (v == NULL)
            return -ENOMEM;
        ads_version_unref(p->version);
        p->version = v;
    }
    char *version = ads_version_ref(p->version);
    bool held = e->msg && (ads_types[p->t].wildcard || e->subscribed);
    if (!it->unchanged) {
        /* The message goes into a shared holder (named as the entry is), which the resource
         * set hands to the build: the snapshot keeps it by reference, not a copy of its own. */
        snap_kept_t *kept = snap_kept_new_arena(it->msg, it->arena, e->name);
        it->msg = NULL;
        it->arena = NULL;
        if (kept) /* validate_item ran config_validate on it: no build runs it again */
            kept->validated = true;
        int rc = kept ? ads_names_add(held ? &p->out->updated : &p->out->added, it->name) : -ENOMEM;
        if (rc < 0) {
            snap_kept_unref(kept);
            ads_version_unref(version);
            return rc;
        }
        ads_entry_drop_msg(e);
        e->kept = kept;
        e->msg = kept->msg;
        e->updated_ms = p->now_ms;
    }
    if (!it->resent) /* the next resend of these bytes is seen without decoding */
        take_raw(e, it);
    ads_version_unref(e->version);
    e->version = version;
    free(e->error);
    free(e->error_version);
    e->error = e->error_version = NULL;
    return 0;
}

/* A rejected resource keeps its last good message and records why this one was refused. */
static int apply_rejected(pass_t *p, item_t *it, ads_entry_t *e)
{
    char *version = strdup(it->version);
    char *error = ads_strdup(it->error);
    if (version == NULL || (it->error && error == NULL) ||
        (!it->quiet && ads_names_add(&p->out->rejected, it->name) < 0)) {
        free(version);
        free(error);
        return -ENOMEM;
    }
    free(e->error);
    free(e->error_version);
    e->error = error ? error : strdup("rejected");
    e->error_version = version;
    e->error_ms = p->now_ms;
    return 0;
}

static int apply_items(pass_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        item_t *it = &p->items[i];
        if (it->state == ITEM_IGNORED)
            continue;
        if (it->name == NULL) {
            p->nameless++;
            continue;
        }
        ads_entry_t *e = it->entry ? it->entry : ads_table_get(&p->ts->table, it->name);
        if (e == NULL)
            return -ENOMEM;
        it->entry = e; /* for pass_end to clear the mark: the pass frees no entry it marked */
        it->marked = true;
        e->seen = true;
        int rc = it->state == ITEM_OK ? apply_good(p, it, e) : apply_rejected(p, it, e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The NACK's message: each rejected resource and its error, cut at ADS_ERROR_MAX bytes. */
static char *nack_message(const pass_t *p)
{
    strbuf_t sb = {0};
    size_t more = 0;
    for (size_t i = 0; i < p->n; i++) {
        const item_t *it = &p->items[i];
        if (it->state != ITEM_REJECTED || it->quiet)
            continue;
        const char *e = it->error ? it->error : "rejected (out of memory describing it)";
        if (more || sb.len + strlen(e) + 2 > ADS_ERROR_MAX - 32) {
            more++;
            continue;
        }
        if (sb.len)
            sb_puts(&sb, "; ");
        sb_puts(&sb, e);
    }
    if (more)
        sb_printf(&sb, "%sand %zu more rejected", sb.len ? "; " : "", more);
    return sb_take(&sb);
}

/* The response's answer: an ACK moves the type's version on, a NACK keeps the last good one and
 * says what was rejected. Everything is allocated before anything changes. */
static int answer(pass_t *p, const char *nonce, const char *version_info)
{
    ads_type_state_t *ts = p->ts;
    bool sotw = p->a->opts.mode == ADS_SOTW, nack = false;
    for (size_t i = 0; i < p->n; i++)
        nack = nack || p->items[i].state == ITEM_REJECTED;
    char *msg = NULL, *last = NULL, *owed = NULL, *version = NULL, *n = strdup(nonce);
    bool ok = n != NULL;
    if (nack) {
        msg = nack_message(p);
        last = ads_strdup(msg);
        owed = sotw ? ads_strdup(msg) : NULL;
        ok = ok && msg && last && (!sotw || owed);
    } else {
        version = strdup(version_info);
        ok = ok && version;
    }
    if (ok && !sotw)
        ok = ads_ack_push(ts, nonce, msg) == 0;
    if (!ok) {
        free(msg);
        free(last);
        free(owed);
        free(version);
        free(n);
        return -ENOMEM;
    }
    free(ts->nonce);
    ts->nonce = n;
    if (version) {
        free(ts->version_info);
        ts->version_info = version;
    }
    free(ts->last_error);
    ts->last_error = last;
    if (sotw) {
        free(ts->nack);
        ts->nack = owed;
        ts->due = true;
    }
    p->out->verdict = nack ? ADS_NACKED : ADS_ACKED;
    p->out->error = msg;
    return 0;
}

/* Starts a pass over a response of type_url with n resources; returns 1 to go on, 0 when the
 * response is for a type not subscribed (ignored), -ENOMEM. */
static int pass_begin(pass_t *p, ads_t *a, const char *type_url, size_t n, uint64_t now_ms,
                      ads_result_t *out)
{
    int t = ads_type_index(type_url);
    *p = (pass_t){.a = a, .t = (ads_type_t)t, .now_ms = now_ms, .out = out, .n = n};
    out->type_url = t >= 0 ? ads_types[t].url : NULL;
    out->verdict = ADS_IGNORED;
    if (t < 0 || !a->types[t].subscribed)
        return 0;
    p->ts = &a->types[t];
    p->name_id =
        protobuf_c_message_descriptor_get_field_by_name(ads_types[t].desc, ads_types[t].name_field)
            ->id;
    p->items = calloc(n ? n : 1, sizeof(*p->items));
    if (p->items == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        p->items[i].index = i;
    return 1;
}

static void pass_end(pass_t *p, int rc)
{
    ads_version_unref(p->version);
    for (size_t i = 0; i < p->n && p->items; i++) {
        pb_arena_free(p->items[i].arena); /* and the message in it */
        free(p->items[i].error);
        if (p->items[i].any) {
            free(p->items[i].any->type_url);
            free(p->items[i].any->value.data); /* NULL when the entry took it */
            free(p->items[i].any);
        }
    }
    /* The entries apply_items marked are its items' (may_repeat cleared its own marks): only
     * those are cleared, not the whole table, for a response that names a few of many. */
    for (size_t i = 0; i < p->n && p->items && p->ts; i++)
        if (p->items[i].marked)
            p->items[i].entry->seen = false;
    free(p->items);
    if (rc < 0)
        ads_result_free(p->out);
}

/* SotW: a listener or cluster response is the whole set, so what it leaves out goes; unless a
 * resource in it could not be named (it might be one of those). Route configurations, endpoints
 * and secrets keep what a response leaves out. */
static void sotw_remove(ads_table_t *t, ads_entry_t *e, void *ctx)
{
    pass_t *p = ctx;
    if (e->seen || (e->msg == NULL && e->error == NULL))
        return;
    if (e->msg && ads_names_add(&p->out->removed, e->name) < 0)
        p->oom = true;
    ads_entry_drop_msg(e);
    free(e->error);
    free(e->error_version);
    e->error = e->error_version = NULL;
    ads_table_release(t, e);
}

int ads_on_sotw(ads_t *a, const uint8_t *buf, size_t len, uint64_t now_ms, ads_result_t *out,
                char *err, size_t errlen)
{
    /* The resources are read in place, the rest decoded; bytes the split does not read as
     * protobuf-c would are decoded whole, as before. */
    ads_wire_any_t *anys = NULL;
    size_t n_anys = 0, rest_len = 0;
    uint8_t *rest = NULL;
    int rc = ads_wire_split_sotw(buf, len, &anys, &n_anys, &rest, &rest_len);
    if (rc == -ENOMEM) {
        snprintf(err, errlen, "out of memory taking in a DiscoveryResponse");
        return rc;
    }
    bool split = rc == 0;
    sotw_response_t *resp = (sotw_response_t *)protobuf_c_message_unpack(
        &envoy__service__discovery__v3__discovery_response__descriptor, NULL,
        split ? rest_len : len, split ? rest : buf);
    free(rest);
    if (resp == NULL) {
        free(anys);
        snprintf(err, errlen, "the DiscoveryResponse does not decode (%zu bytes)", len);
        return -EBADMSG;
    }
    pass_t p;
    rc = pass_begin(&p, a, resp->type_url, split ? n_anys : resp->n_resources, now_ms, out);
    for (size_t i = 0; rc > 0 && i < p.n; i++) {
        p.items[i].version = resp->version_info;
        if (!split)
            sotw_item(&p, resp->resources[i], &p.items[i]);
        else if (sotw_item_wire(&p, &anys[i], &p.items[i]) < 0)
            rc = -ENOMEM;
    }
    free(anys);
    if (rc > 0)
        rc = check_items(&p);
    if (rc == 0 && p.ts)
        rc = apply_items(&p);
    if (rc == 0 && p.ts && ads_types[p.t].wildcard && p.nameless == 0) {
        ads_table_each(&p.ts->table, sotw_remove, &p);
        rc = p.oom ? -ENOMEM : 0;
        if (out->removed.n > 1)
            qsort(out->removed.v, out->removed.n, sizeof(char *), by_string);
    }
    if (rc == 0 && p.ts)
        rc = answer(&p, resp->nonce, resp->version_info);
    pass_end(&p, rc);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    if (rc < 0)
        snprintf(err, errlen, "out of memory taking in a DiscoveryResponse");
    return rc;
}

/* Delta: removed_resources (and removed_resource_names) name what goes. A name the same response
 * also updates is rejected there and stays. */
static int delta_remove(pass_t *p, const char *name)
{
    ads_entry_t *e = ads_table_find(&p->ts->table, name);
    if (e == NULL || e->seen)
        return 0;
    bool held = e->msg && (ads_types[p->t].wildcard || e->subscribed);
    if (held && ads_names_add(&p->out->removed, name) < 0)
        return -ENOMEM;
    ads_entry_drop_msg(e);
    free(e->error);
    free(e->error_version);
    e->error = e->error_version = NULL;
    ads_table_release(&p->ts->table, e);
    return 0;
}

/* A name both updated and removed by one response is an error in the response. */
static void reject_updated_and_removed(pass_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++) {
        item_t *it = &p->items[i];
        if (it->name && strcmp(it->name, name) == 0 && it->state != ITEM_IGNORED) {
            char where[256];
            reject(it, "%s: the response both updates and removes it",
                   item_where(p, it, where, sizeof(where)));
        }
    }
}

static int delta_removals(pass_t *p, const delta_response_t *resp, bool check)
{
    size_t n = resp->n_removed_resources + resp->n_removed_resource_names;
    for (size_t i = 0; i < n; i++) {
        const char *name = i < resp->n_removed_resources
                               ? resp->removed_resources[i]
                               : resp->removed_resource_names[i - resp->n_removed_resources]->name;
        if (name == NULL || name[0] == '\0')
            continue;
        if (check)
            reject_updated_and_removed(p, name);
        else if (delta_remove(p, name) < 0)
            return -ENOMEM;
    }
    return 0;
}

int ads_on_delta(ads_t *a, const uint8_t *buf, size_t len, uint64_t now_ms, ads_result_t *out,
                 char *err, size_t errlen)
{
    delta_response_t *resp = (delta_response_t *)protobuf_c_message_unpack(
        &envoy__service__discovery__v3__delta_discovery_response__descriptor, NULL, len, buf);
    if (resp == NULL) {
        snprintf(err, errlen, "the DeltaDiscoveryResponse does not decode (%zu bytes)", len);
        return -EBADMSG;
    }
    pass_t p;
    int rc = pass_begin(&p, a, resp->type_url, resp->n_resources, now_ms, out);
    for (size_t i = 0; rc > 0 && i < p.n; i++)
        delta_item(&p, resp->resources[i], &p.items[i]);
    if (rc > 0) {
        delta_removals(&p, resp, true);
        rc = check_items(&p);
    }
    if (rc == 0 && p.ts)
        rc = apply_items(&p);
    if (rc == 0 && p.ts)
        rc = delta_removals(&p, resp, false);
    if (rc == 0 && p.ts)
        rc = answer(&p, resp->nonce, resp->system_version_info);
    pass_end(&p, rc);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    if (rc < 0)
        snprintf(err, errlen, "out of memory taking in a DeltaDiscoveryResponse");
    return rc;
}
