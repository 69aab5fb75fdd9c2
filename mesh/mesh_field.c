/* The reader's typed field accessors over libyaml nodes: each names the field's path in its
 * error, copies what it takes into the object, and hashes it into the object's content. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh_internal.h"

const char *mesh_scalar(yaml_node_t *node, size_t *len)
{
    if (node == NULL || node->type != YAML_SCALAR_NODE)
        return NULL;
    const char *s = (const char *)node->data.scalar.value;
    size_t n = node->data.scalar.length;
    if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (n == 0 || (n == 1 && s[0] == '~') ||
         (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)))))
        return NULL;
    *len = n;
    return s;
}

/* "<source>:<line>: document N[, item M][ (Kind ns/name)]" */
static void where(const mesh_reader_t *rd, unsigned long line, char *out, size_t cap)
{
    int n = rd->at ? snprintf(out, cap, "%s", rd->at)
                   : snprintf(out, cap, "%s:%lu: document %u", rd->source, line, rd->doc);
    if (n > 0 && (size_t)n < cap && rd->item)
        n += snprintf(out + n, cap - (size_t)n, ", item %u", rd->item);
    if (n > 0 && (size_t)n < cap && rd->obj && rd->obj->meta.name) {
        const mesh_meta_t *m = &rd->obj->meta;
        snprintf(out + n, cap - (size_t)n, " (%s %s%s%s)", mesh_kind_name(m->kind), m->ns,
                 m->ns[0] ? "/" : "", m->name);
    }
}

int mesh_rd_fail(mesh_reader_t *rd, const char *fmt, ...)
{
    if (!rd->failed) {
        char at[384], what[384];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        where(rd, rd->line, at, sizeof(at));
        if (rd->pathlen)
            snprintf(rd->err, sizeof(rd->err), "%s: %s: %s", at, rd->path, what);
        else
            snprintf(rd->err, sizeof(rd->err), "%s: %s", at, what);
        rd->failed = true;
    }
    return -EINVAL;
}

int mesh_rd_fail_at(mesh_reader_t *rd, const char *key, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    size_t mark = mesh_rd_push(rd, key);
    mesh_rd_fail(rd, "%s", what);
    mesh_rd_pop(rd, mark);
    return -EINVAL;
}

int mesh_rd_nomem(mesh_reader_t *rd)
{
    mesh_rd_fail(rd, "out of memory");
    return -ENOMEM;
}

void mesh_rd_note(mesh_reader_t *rd, const char *fmt, ...)
{
    char at[384], what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    where(rd, rd->line, at, sizeof(at));
    if (rd->report)
        mesh_report_note(rd->report, "%s: %s%s%s", at, rd->path, rd->pathlen ? ": " : "", what);
}

size_t mesh_rd_push(mesh_reader_t *rd, const char *key)
{
    size_t mark = rd->pathlen;
    int n = snprintf(rd->path + mark, sizeof(rd->path) - mark, "%s%s", mark ? "." : "", key);
    if (n > 0)
        rd->pathlen = mark + (size_t)n < sizeof(rd->path) ? mark + (size_t)n : sizeof(rd->path) - 1;
    return mark;
}

size_t mesh_rd_push_index(mesh_reader_t *rd, size_t i)
{
    size_t mark = rd->pathlen;
    int n = snprintf(rd->path + mark, sizeof(rd->path) - mark, "[%zu]", i);
    if (n > 0)
        rd->pathlen = mark + (size_t)n < sizeof(rd->path) ? mark + (size_t)n : sizeof(rd->path) - 1;
    return mark;
}

void mesh_rd_pop(mesh_reader_t *rd, size_t mark)
{
    rd->pathlen = mark;
    rd->path[mark] = '\0';
}

size_t mesh_visit_budget(yaml_document_t *yd)
{
    return 16 * (size_t)(yd->nodes.top - yd->nodes.start) + 65536;
}

static bool visit(mesh_reader_t *rd, yaml_node_t *node)
{
    if (node)
        rd->line = (unsigned long)node->start_mark.line + 1;
    if (++rd->visits > rd->max_visits) {
        mesh_rd_fail(rd, "document expands to more than %zu node visits (aliases?)",
                     rd->max_visits);
        return false;
    }
    return true;
}

yaml_node_t *mesh_rd_get(mesh_reader_t *rd, yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE || !visit(rd, map))
        return NULL;
    size_t klen = strlen(key);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(rd->yd, p->key);
        if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == klen &&
            memcmp(k->data.scalar.value, key, klen) == 0) {
            yaml_node_t *v = yaml_document_get_node(rd->yd, p->value);
            size_t n;
            if (v && v->type == YAML_SCALAR_NODE && mesh_scalar(v, &n) == NULL)
                return NULL; /* null: absent, as the API takes it */
            if (v)
                visit(rd, v);
            return v;
        }
    }
    return NULL;
}

static int typed(mesh_reader_t *rd, yaml_node_t *map, const char *key, yaml_node_type_t type,
                 const char *what, yaml_node_t **out)
{
    *out = mesh_rd_get(rd, map, key);
    if (rd->failed)
        return -EINVAL;
    if (*out && (*out)->type != type) {
        size_t mark = mesh_rd_push(rd, key);
        mesh_rd_fail(rd, "must be %s", what);
        mesh_rd_pop(rd, mark);
        *out = NULL;
        return -EINVAL;
    }
    return 0;
}

int mesh_rd_map(mesh_reader_t *rd, yaml_node_t *map, const char *key, yaml_node_t **out)
{
    return typed(rd, map, key, YAML_MAPPING_NODE, "a mapping", out);
}

int mesh_rd_seq(mesh_reader_t *rd, yaml_node_t *map, const char *key, yaml_node_t **out)
{
    return typed(rd, map, key, YAML_SEQUENCE_NODE, "a list", out);
}

yaml_node_t *mesh_rd_item(mesh_reader_t *rd, yaml_node_t *seq, size_t i, size_t *mark)
{
    *mark = mesh_rd_push_index(rd, i);
    yaml_node_t *n = yaml_document_get_node(rd->yd, seq->data.sequence.items.start[i]);
    return visit(rd, n) ? n : NULL;
}

int mesh_rd_maps(mesh_reader_t *rd, yaml_node_t *map, const char *key, size_t size,
                 int (*fn)(mesh_reader_t *, yaml_node_t *, void *), void **out, size_t *count)
{
    yaml_node_t *seq;
    *out = NULL;
    *count = 0;
    if (mesh_rd_seq(rd, map, key, &seq) < 0)
        return -EINVAL;
    size_t n = seq ? (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start) : 0;
    if (n == 0)
        return 0;
    char *items = mesh_alloc(rd->obj, n * size);
    if (items == NULL)
        return mesh_rd_nomem(rd);
    size_t top = mesh_rd_push(rd, key);
    for (size_t i = 0; i < n; i++) {
        size_t mark;
        yaml_node_t *item = mesh_rd_item(rd, seq, i, &mark);
        if (item == NULL || item->type != YAML_MAPPING_NODE)
            return mesh_rd_fail(rd, "must be a mapping");
        int rc = fn(rd, item, items + i * size);
        if (rc < 0)
            return rc;
        mesh_rd_pop(rd, mark);
    }
    mesh_rd_pop(rd, top);
    *out = items;
    *count = n;
    return 0;
}

static void hash_field(mesh_reader_t *rd, const char *key, const char *value, size_t len)
{
    uint64_t h = mesh_hash(rd->obj->content_hash, rd->path, rd->pathlen);
    h = mesh_hash(h, ".", 1);
    h = mesh_hash(h, key, strlen(key) + 1);
    h = mesh_hash(h, value, len);
    rd->obj->content_hash = mesh_hash(h, "", 1);
}

void mesh_rd_hash(mesh_reader_t *rd, const char *key, const char *value)
{
    hash_field(rd, key, value, strlen(value));
}

/* The scalar at key as text: NULL when absent; fails on another type or a NUL byte. */
static const char *scalar_at(mesh_reader_t *rd, yaml_node_t *map, const char *key, size_t *len)
{
    yaml_node_t *v = mesh_rd_get(rd, map, key);
    if (v == NULL)
        return NULL;
    const char *s = mesh_scalar(v, len);
    if (s == NULL || memchr(s, '\0', *len)) {
        size_t mark = mesh_rd_push(rd, key);
        mesh_rd_fail(rd, s ? "must not hold a NUL byte" : "must be a string");
        mesh_rd_pop(rd, mark);
        return NULL;
    }
    return s;
}

static int missing(mesh_reader_t *rd, const char *key)
{
    size_t mark = mesh_rd_push(rd, key);
    mesh_rd_fail(rd, "missing");
    mesh_rd_pop(rd, mark);
    return -EINVAL;
}

int mesh_rd_str_nohash(mesh_reader_t *rd, yaml_node_t *map, const char *key, const char **out)
{
    size_t len;
    const char *s = scalar_at(rd, map, key, &len);
    *out = NULL;
    if (rd->failed)
        return -EINVAL;
    if (s && (*out = mesh_strndup(rd->obj, s, len)) == NULL)
        return mesh_rd_nomem(rd);
    return 0;
}

int mesh_rd_str(mesh_reader_t *rd, yaml_node_t *map, const char *key, bool required,
                const char **out)
{
    int rc = mesh_rd_str_nohash(rd, map, key, out);
    if (rc < 0)
        return rc;
    if (*out == NULL)
        return required ? missing(rd, key) : 0;
    hash_field(rd, key, *out, strlen(*out));
    return 0;
}

/* A plain decimal number in [min, max]; -1 when the text is not one. */
static long parse_number(const char *s, size_t len, long min, long max)
{
    long v = 0;
    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < min || v > max ? -1 : v;
}

static bool plain(yaml_node_t *map, mesh_reader_t *rd, const char *key)
{
    yaml_node_t *v = mesh_rd_get(rd, map, key);
    return v && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A plain scalar number in [min, max] at key: 1 with *out, 0 when absent, -EINVAL (said, the
 * number named as `what`) otherwise. */
static int number_at(mesh_reader_t *rd, yaml_node_t *map, const char *key, long min, long max,
                     const char *what, long *out)
{
    size_t len;
    const char *s = scalar_at(rd, map, key, &len);
    if (rd->failed)
        return -EINVAL;
    if (s == NULL)
        return 0;
    long v = plain(map, rd, key) ? parse_number(s, len, min, max) : -1;
    if (v < 0) {
        size_t mark = mesh_rd_push(rd, key);
        mesh_rd_fail(rd, "\"%.*s\" is not a %s (%ld-%ld)", (int)(len > 64 ? 64 : len), s, what, min,
                     max);
        mesh_rd_pop(rd, mark);
        return -EINVAL;
    }
    *out = v;
    hash_field(rd, key, s, len);
    return 1;
}

int mesh_rd_port(mesh_reader_t *rd, yaml_node_t *map, const char *key, bool required, uint16_t *out)
{
    long v = 0;
    *out = 0;
    int rc = number_at(rd, map, key, 1, 65535, "port number", &v);
    if (rc == 0 && required)
        return missing(rd, key);
    *out = (uint16_t)v;
    return rc < 0 ? rc : 0;
}

int mesh_rd_uint(mesh_reader_t *rd, yaml_node_t *map, const char *key, long min, long max,
                 long dflt, long *out)
{
    *out = dflt;
    int rc = number_at(rd, map, key, min, max, "number", out);
    return rc < 0 ? rc : 0;
}

/* An IANA service name, as Kubernetes checks a port name: 1-15 of [a-z0-9-], a letter among
 * them, no '-' at either end and no "--". */
static bool iana_name(const char *s, size_t len)
{
    bool letter = false;
    if (len == 0 || len > 15 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 'a' && s[i] <= 'z')
            letter = true;
        else if (!(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
            return false;
        if (s[i] == '-' && i > 0 && s[i - 1] == '-')
            return false;
    }
    return letter;
}

int mesh_rd_port_or_name(mesh_reader_t *rd, yaml_node_t *map, const char *key, uint16_t *num,
                         const char **name)
{
    size_t len;
    const char *s = scalar_at(rd, map, key, &len);
    *num = 0;
    *name = NULL;
    if (rd->failed)
        return -EINVAL;
    if (s == NULL)
        return 0;
    long v = plain(map, rd, key) ? parse_number(s, len, 0, 99999999) : -1;
    if (v >= 1 && v <= 65535)
        *num = (uint16_t)v;
    else if (v < 0 && iana_name(s, len)) {
        if ((*name = mesh_strndup(rd->obj, s, len)) == NULL)
            return mesh_rd_nomem(rd);
    } else {
        size_t mark = mesh_rd_push(rd, key);
        mesh_rd_fail(rd, "\"%.*s\" is neither a port number (1-65535) nor a port name",
                     (int)(len > 64 ? 64 : len), s);
        mesh_rd_pop(rd, mark);
        return -EINVAL;
    }
    hash_field(rd, key, s, len);
    return 0;
}

int mesh_rd_bool(mesh_reader_t *rd, yaml_node_t *map, const char *key, int *out)
{
    size_t len;
    const char *s = scalar_at(rd, map, key, &len);
    *out = -1;
    if (rd->failed)
        return -EINVAL;
    if (s == NULL)
        return 0;
    if (len == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4)))
        *out = 1;
    else if (len == 5 &&
             (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5)))
        *out = 0;
    if (*out < 0 || !plain(map, rd, key)) {
        size_t mark = mesh_rd_push(rd, key);
        mesh_rd_fail(rd, "must be true or false");
        mesh_rd_pop(rd, mark);
        return -EINVAL;
    }
    hash_field(rd, key, s, len);
    return 0;
}

int mesh_rd_enum(mesh_reader_t *rd, yaml_node_t *map, const char *key, const char *const *names,
                 size_t n, int dflt, int *out)
{
    size_t len;
    const char *s = scalar_at(rd, map, key, &len);
    *out = dflt;
    if (rd->failed)
        return -EINVAL;
    if (s == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
            *out = (int)i;
            hash_field(rd, key, s, len);
            return 0;
        }
    char allowed[256] = "";
    for (size_t i = 0, at = 0; i < n && at < sizeof(allowed); i++) {
        int w = snprintf(allowed + at, sizeof(allowed) - at, "%s%s", i ? ", " : "", names[i]);
        at += w > 0 ? (size_t)w : 0;
    }
    size_t mark = mesh_rd_push(rd, key);
    mesh_rd_fail(rd, "\"%.*s\" is not one of %s", (int)(len > 64 ? 64 : len), s, allowed);
    mesh_rd_pop(rd, mark);
    return -EINVAL;
}

int mesh_rd_l4(mesh_reader_t *rd, yaml_node_t *map, const char *key, mesh_l4_t *out)
{
    static const char *const names[] = {"TCP", "UDP", "SCTP"};
    int v;
    int rc = mesh_rd_enum(rd, map, key, names, 3, MESH_L4_TCP, &v);
    *out = (mesh_l4_t)v;
    return rc;
}

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const mesh_label_t *)a)->key, ((const mesh_label_t *)b)->key);
}

int mesh_rd_labels(mesh_reader_t *rd, yaml_node_t *map, const char *key, mesh_labels_t *out)
{
    yaml_node_t *m;
    memset(out, 0, sizeof(*out));
    if (mesh_rd_map(rd, map, key, &m) < 0 || m == NULL)
        return rd->failed ? -EINVAL : 0;
    size_t n = (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
    out->items = mesh_alloc(rd->obj, n * sizeof(*out->items));
    if (out->items == NULL)
        return mesh_rd_nomem(rd);
    size_t mark = mesh_rd_push(rd, key);
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *p = &m->data.mapping.pairs.start[i];
        yaml_node_t *k = yaml_document_get_node(rd->yd, p->key);
        size_t klen;
        const char *ks = mesh_scalar(k, &klen);
        if (!visit(rd, k))
            return -EINVAL;
        if (ks == NULL || memchr(ks, '\0', klen))
            return mesh_rd_fail(rd, "keys must be strings");
        yaml_node_t *v = yaml_document_get_node(rd->yd, p->value);
        size_t vlen = 0;
        const char *vs = mesh_scalar(v, &vlen);
        if (!visit(rd, v))
            return -EINVAL;
        if (v == NULL || v->type != YAML_SCALAR_NODE || (vs && memchr(vs, '\0', vlen)))
            return mesh_rd_fail(rd, "\"%.*s\": must be a string", (int)(klen > 64 ? 64 : klen), ks);
        mesh_label_t *l = &out->items[out->count];
        l->key = mesh_strndup(rd->obj, ks, klen);
        l->value = mesh_strndup(rd->obj, vs ? vs : "", vs ? vlen : 0);
        if (l->key == NULL || l->value == NULL)
            return mesh_rd_nomem(rd);
        out->count++;
    }
    qsort(out->items, out->count, sizeof(*out->items), cmp_label);
    for (size_t i = 0; i < out->count; i++) {
        if (i > 0 && strcmp(out->items[i - 1].key, out->items[i].key) == 0)
            return mesh_rd_fail(rd, "\"%s\" given twice", out->items[i].key);
        hash_field(rd, out->items[i].key, out->items[i].value, strlen(out->items[i].value));
    }
    mesh_rd_pop(rd, mark);
    return 0;
}

int mesh_rd_strings(mesh_reader_t *rd, yaml_node_t *map, const char *key, const char ***out,
                    size_t *n)
{
    yaml_node_t *seq;
    *out = NULL;
    *n = 0;
    if (mesh_rd_seq(rd, map, key, &seq) < 0 || seq == NULL)
        return rd->failed ? -EINVAL : 0;
    size_t count = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    const char **list = mesh_alloc(rd->obj, count * sizeof(*list));
    if (list == NULL)
        return mesh_rd_nomem(rd);
    size_t top = mesh_rd_push(rd, key);
    for (size_t i = 0; i < count; i++) {
        size_t mark, len;
        yaml_node_t *item = mesh_rd_item(rd, seq, i, &mark);
        const char *s = mesh_scalar(item, &len);
        if (rd->failed)
            return -EINVAL;
        if (s == NULL || memchr(s, '\0', len))
            return mesh_rd_fail(rd, "must be a string");
        if ((list[i] = mesh_strndup(rd->obj, s, len)) == NULL)
            return mesh_rd_nomem(rd);
        hash_field(rd, "", s, len);
        mesh_rd_pop(rd, mark);
    }
    mesh_rd_pop(rd, top);
    *out = list;
    *n = count;
    return 0;
}

static bool is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int mesh_rd_ip(mesh_reader_t *rd, yaml_node_t *map, const char *key, bool required,
               const char **out)
{
    int rc = mesh_rd_str(rd, map, key, required, out);
    if (rc < 0 || *out == NULL || is_ip(*out))
        return rc;
    size_t mark = mesh_rd_push(rd, key);
    mesh_rd_fail(rd, "\"%.64s\" is not an IP address", *out);
    mesh_rd_pop(rd, mark);
    return -EINVAL;
}

int mesh_rd_target_ref(mesh_reader_t *rd, yaml_node_t *map, const char *key, mesh_target_ref_t *out)
{
    yaml_node_t *ref;
    memset(out, 0, sizeof(*out));
    if (mesh_rd_map(rd, map, key, &ref) < 0 || ref == NULL)
        return rd->failed ? -EINVAL : 0;
    size_t mark = mesh_rd_push(rd, key);
    int rc = mesh_rd_str(rd, ref, "kind", false, &out->kind);
    if (rc == 0)
        rc = mesh_rd_str(rd, ref, "namespace", false, &out->ns);
    if (rc == 0)
        rc = mesh_rd_str(rd, ref, "name", false, &out->name);
    if (rc == 0)
        rc = mesh_rd_str(rd, ref, "uid", false, &out->uid);
    if (rc == 0 && out->kind == NULL)
        out->kind = "";
    mesh_rd_pop(rd, mark);
    return rc;
}
