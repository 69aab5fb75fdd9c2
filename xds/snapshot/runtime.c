/* Flattening of Envoy's layered_runtime into one sorted table of dotted keys, and reading the
 * keys Remora honours from it. Static layers only: disk and RTDS layers are refused, the admin
 * layer (written by /runtime_modify, which Remora does not have) stays empty. */
#include "xds/snapshot/runtime.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "base/err.h"
#include "xds/config/config_forms.h"

typedef Envoy__Config__Bootstrap__V3__LayeredRuntime layered_msg_t;
typedef Envoy__Config__Bootstrap__V3__RuntimeLayer layer_msg_t;
typedef Google__Protobuf__Value value_msg_t;
typedef Google__Protobuf__Struct struct_msg_t;

#define MAX_DEPTH 64 /* Struct nesting, as the YAML loader allows */

/* One static layer being walked: its entries so far and the key of the value in hand. */
typedef struct walk {
    const char *layer;
    runtime_entry_t *entries;
    size_t n, cap;
    char *key; /* NUL-terminated prefix of the value being walked */
    size_t key_cap;
    char *err;
    size_t errlen;
} walk_t;

static int add_entry(walk_t *w, const value_msg_t *v)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        runtime_entry_t *bigger = realloc(w->entries, cap * sizeof(*bigger));
        if (bigger == NULL)
            return -ENOMEM;
        w->entries = bigger;
        w->cap = cap;
    }
    char *key = strdup(w->key);
    if (key == NULL)
        return -ENOMEM;
    w->entries[w->n++] = (runtime_entry_t){.key = key, .value = v, .layer = w->layer};
    return 0;
}

static bool has_field(const struct_msg_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (s->fields[i]->key && strcmp(s->fields[i]->key, name) == 0)
            return true;
    return false;
}

static int walk_struct(walk_t *w, size_t len, const struct_msg_t *s, int depth);

/* Envoy's ProtoLayer::walkProtoValue: scalars are values, a Struct is walked into unless it is
 * empty or a FractionalPercent (numerator/denominator), lists and nulls are errors. */
static int walk_value(walk_t *w, size_t len, const value_msg_t *v, int depth)
{
    switch (v ? v->kind_case : GOOGLE__PROTOBUF__VALUE__KIND__NOT_SET) {
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
    case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
        return add_entry(w, v);
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
        if (v->struct_value->n_fields == 0 || has_field(v->struct_value, "numerator") ||
            has_field(v->struct_value, "denominator"))
            return add_entry(w, v);
        return walk_struct(w, len, v->struct_value, depth + 1);
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
        return err_set(w->err, w->errlen, -EINVAL,
                       "layered_runtime: layer '%s': key '%s': a list is not a runtime value",
                       w->layer, w->key);
    default:
        return err_set(w->err, w->errlen, -EINVAL,
                       "layered_runtime: layer '%s': key '%s': null is not a runtime value",
                       w->layer, w->key);
    }
}

/* Walks the fields of s, whose key is w->key[0..len). */
static int walk_struct(walk_t *w, size_t len, const struct_msg_t *s, int depth)
{
    if (depth > MAX_DEPTH)
        return err_set(w->err, w->errlen, -EINVAL,
                       "layered_runtime: layer '%s': key '%s': nested deeper than %d levels",
                       w->layer, w->key, MAX_DEPTH);
    for (size_t i = 0; i < s->n_fields; i++) {
        const char *name = s->fields[i]->key ? s->fields[i]->key : "";
        size_t nlen = strlen(name), need = len + 1 + nlen + 1;
        if (need > w->key_cap) {
            char *bigger = realloc(w->key, need * 2);
            if (bigger == NULL)
                return -ENOMEM;
            w->key = bigger;
            w->key_cap = need * 2;
        }
        size_t n = len;
        if (len)
            w->key[n++] = '.';
        memcpy(w->key + n, name, nlen + 1);
        int rc = walk_value(w, n + nlen, s->fields[i]->value, depth);
        if (rc < 0)
            return rc;
        w->key[len] = '\0';
    }
    return 0;
}

static int by_key(const void *a, const void *b)
{
    return strcmp(((const runtime_entry_t *)a)->key, ((const runtime_entry_t *)b)->key);
}

static void free_entries(runtime_entry_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].key);
    free(e);
}

/* Lays the sorted entries of one layer (taken) over rt: a key both have takes the layer's. */
static int overlay(runtime_t *rt, runtime_entry_t *top, size_t n)
{
    runtime_entry_t *out = malloc((rt->n + n + 1) * sizeof(*out));
    if (out == NULL) {
        free_entries(top, n);
        return -ENOMEM;
    }
    size_t i = 0, j = 0, k = 0;
    while (i < rt->n || j < n) {
        int cmp = i == rt->n ? 1 : j == n ? -1 : strcmp(rt->entries[i].key, top[j].key);
        if (cmp == 0)
            free(rt->entries[i++].key);
        out[k++] = cmp < 0 ? rt->entries[i++] : top[j++];
    }
    free(rt->entries);
    free(top);
    rt->entries = out;
    rt->n = k;
    return 0;
}

static int add_static_layer(runtime_t *rt, const layer_msg_t *l, char *err, size_t errlen)
{
    walk_t w = {.layer = l->name, .err = err, .errlen = errlen, .key_cap = 256};
    w.key = calloc(1, w.key_cap);
    int rc = w.key ? walk_struct(&w, 0, l->static_layer, 0) : -ENOMEM;
    free(w.key);
    if (rc == 0 && w.n > 0) {
        qsort(w.entries, w.n, sizeof(*w.entries), by_key);
        for (size_t i = 1; i < w.n && rc == 0; i++)
            if (strcmp(w.entries[i - 1].key, w.entries[i].key) == 0)
                rc = err_set(err, errlen, -EINVAL,
                             "layered_runtime: layer '%s': key '%s' is given twice", l->name,
                             w.entries[i].key);
    }
    if (rc < 0) {
        free_entries(w.entries, w.n);
        return rc;
    }
    return overlay(rt, w.entries, w.n);
}

static int add_layer(runtime_t *rt, const layered_msg_t *lr, size_t idx, char *err, size_t errlen)
{
    const layer_msg_t *l = lr->layers[idx];
    if (l->name == NULL || l->name[0] == '\0')
        return err_set(err, errlen, -EINVAL, "layered_runtime: layers[%zu]: name is required", idx);
    for (size_t j = 0; j < idx; j++)
        if (strcmp(lr->layers[j]->name, l->name) == 0)
            return err_set(err, errlen, -EINVAL, "layered_runtime: layer '%s': defined twice",
                           l->name);
    switch (l->layer_specifier_case) {
    case ENVOY__CONFIG__BOOTSTRAP__V3__RUNTIME_LAYER__LAYER_SPECIFIER_STATIC_LAYER:
        return add_static_layer(rt, l, err, errlen);
    case ENVOY__CONFIG__BOOTSTRAP__V3__RUNTIME_LAYER__LAYER_SPECIFIER_ADMIN_LAYER:
        return 0; /* filled by /runtime_modify in Envoy; Remora has none, so it stays empty */
    case ENVOY__CONFIG__BOOTSTRAP__V3__RUNTIME_LAYER__LAYER_SPECIFIER_DISK_LAYER:
        return err_set(err, errlen, -EINVAL,
                       "layered_runtime: layer '%s': disk_layer is not supported", l->name);
    case ENVOY__CONFIG__BOOTSTRAP__V3__RUNTIME_LAYER__LAYER_SPECIFIER_RTDS_LAYER:
        return err_set(err, errlen, -EINVAL,
                       "layered_runtime: layer '%s': rtds_layer is not supported", l->name);
    default:
        return err_set(err, errlen, -EINVAL,
                       "layered_runtime: layer '%s': needs one of static_layer, disk_layer, "
                       "admin_layer or rtds_layer",
                       l->name);
    }
}

int runtime_build(const void *layered, runtime_t *out, char *err, size_t errlen)
{
    const layered_msg_t *lr = layered;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; lr && i < lr->n_layers; i++) {
        int rc = add_layer(out, lr, i, err, errlen);
        if (rc < 0) {
            if (rc == -ENOMEM)
                snprintf(err, errlen, "layered_runtime: out of memory");
            runtime_free(out);
            return rc;
        }
    }
    return 0;
}

void runtime_free(runtime_t *rt)
{
    free_entries(rt->entries, rt->n);
    rt->entries = NULL;
    rt->n = 0;
}

const runtime_entry_t *runtime_find(const runtime_t *rt, const char *key)
{
    if (rt->n == 0)
        return NULL;
    runtime_entry_t probe = {.key = (char *)key};
    return bsearch(&probe, rt->entries, rt->n, sizeof(probe), by_key);
}

int runtime_get_limit(runtime_t *rt, const char *key, uint64_t *limit, char *err, size_t errlen)
{
    runtime_entry_t *e = (runtime_entry_t *)runtime_find(rt, key);
    if (e == NULL)
        return 0;
    e->used = true;
    const value_msg_t *v = e->value;
    char shown[64];
    if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE) {
        double d = v->number_value;
        if (d >= 0 && d == floor(d)) { /* NaN fails the first test, infinity passes both */
            *limit = d >= 18446744073709551615.0 ? RUNTIME_NO_LIMIT : (uint64_t)d;
            return 0;
        }
        snprintf(shown, sizeof(shown), "%g", d);
    } else if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE) {
        uint64_t u;
        if (config_parse_int(v->string_value, strlen(v->string_value), 0, 0, UINT64_MAX, &u) == 0) {
            *limit = u;
            return 0;
        }
        snprintf(shown, sizeof(shown), "'%.40s'", v->string_value);
    } else if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE) {
        snprintf(shown, sizeof(shown), "%s", v->bool_value ? "true" : "false");
    } else {
        snprintf(shown, sizeof(shown), "a mapping");
    }
    return err_set(err, errlen, -EINVAL,
                   "layered_runtime: layer '%s': key '%s': %s is not a number of connections (a "
                   "whole number, 0 or more)",
                   e->layer, e->key, shown);
}

int runtime_listener_limit(runtime_t *rt, const char *listener, uint64_t *limit, char *err,
                           size_t errlen)
{
    size_t len =
        sizeof(RUNTIME_LISTENER_LIMIT_PREFIX RUNTIME_LISTENER_LIMIT_SUFFIX) + strlen(listener);
    char *key = malloc(len);
    if (key == NULL)
        return -ENOMEM;
    snprintf(key, len, "%s%s%s", RUNTIME_LISTENER_LIMIT_PREFIX, listener,
             RUNTIME_LISTENER_LIMIT_SUFFIX);
    int rc = runtime_get_limit(rt, key, limit, err, errlen);
    free(key);
    return rc;
}

size_t runtime_unused_keys(const runtime_t *rt, char *buf, size_t len)
{
    static const char more[] = ", ..."; /* room kept for it after every key written */
    size_t count = 0, used = 0;
    bool cut = false;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < rt->n; i++) {
        if (rt->entries[i].used)
            continue;
        count++;
        size_t klen = strlen(rt->entries[i].key), sep = used ? 2 : 0;
        if (!cut && used + sep + klen + sizeof(more) > len) {
            const char *tail = used ? more : more + 2;
            if (used + strlen(tail) < len)
                memcpy(buf + used, tail, strlen(tail) + 1);
            cut = true;
        }
        if (cut)
            continue;
        snprintf(buf + used, len - used, "%s%s", sep ? ", " : "", rt->entries[i].key);
        used += sep + klen;
    }
    return count;
}
