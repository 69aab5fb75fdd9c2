/* The manifest reader: documents of a YAML or JSON buffer, `kind: List` and typed API lists,
 * the metadata every kind shares, and Kubernetes watch events. The kinds' specs are read by
 * mesh_kinds.c, mesh_netpol.c and mesh_httproute.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh_internal.h"

/* The apiVersion each kind is read in. */
static const char *const api_versions[MESH_KIND_COUNT] = {
    [MESH_NAMESPACE] = "v1",
    [MESH_SERVICE] = "v1",
    [MESH_ENDPOINTS] = "v1",
    [MESH_ENDPOINT_SLICE] = "discovery.k8s.io/v1",
    [MESH_POD] = "v1",
    [MESH_NETWORK_POLICY] = "networking.k8s.io/v1",
    [MESH_HTTP_ROUTE] = "gateway.networking.k8s.io/v1",
};

/* An older version read as well: the Gateway API's v1beta1 HTTPRoute has the same fields. */
static bool api_version_read(int kind, const char *api)
{
    return strcmp(api, api_versions[kind]) == 0 ||
           (kind == MESH_HTTP_ROUTE && strcmp(api, "gateway.networking.k8s.io/v1beta1") == 0);
}

int mesh_load_documents(const char *source, const char *data, size_t len, mesh_report_t *report,
                        mesh_doc_fn fn, void *ctx)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    int rc = 0;
    for (unsigned doc = 1;; doc++) {
        yaml_document_t yd;
        if (!yaml_parser_load(&parser, &yd)) {
            if (parser.error == YAML_MEMORY_ERROR) {
                rc = -ENOMEM;
                break;
            }
            rc = mesh_report_error(report, "%s:%lu: document %u: YAML: %s%s%s", source,
                                   (unsigned long)parser.problem_mark.line + 1, doc,
                                   parser.problem ? parser.problem : "syntax error",
                                   parser.context ? " " : "", parser.context ? parser.context : "");
            rc = rc < 0 ? rc : -EINVAL;
            break;
        }
        yaml_node_t *root = yaml_document_get_root_node(&yd);
        if (root == NULL) { /* the end of the stream */
            yaml_document_delete(&yd);
            break;
        }
        rc = fn(ctx, &yd, root, doc);
        yaml_document_delete(&yd);
        if (rc == -ENOMEM)
            break;
        rc = 0;
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* metadata: name (required), namespace ("default" for namespaced kinds), uid, resourceVersion,
 * labels, annotations, ownerReferences. */
static int read_metadata(mesh_reader_t *rd, yaml_node_t *root)
{
    mesh_meta_t *m = &rd->obj->meta;
    yaml_node_t *meta, *owners;
    m->ns = "";
    if (mesh_rd_map(rd, root, "metadata", &meta) < 0)
        return -EINVAL;
    if (meta == NULL)
        return mesh_rd_fail_at(rd, "metadata", "missing");
    size_t mark = mesh_rd_push(rd, "metadata");
    const char *name, *ns = NULL;
    int rc = mesh_rd_str(rd, meta, "name", true, &name);
    if (rc == 0 && (name[0] == '\0' || strlen(name) > 253 || strchr(name, '/')))
        rc = mesh_rd_fail_at(rd, "name", "\"%.64s\" is not a valid name", name);
    if (rc == 0 && m->kind != MESH_NAMESPACE)
        rc = mesh_rd_str_nohash(rd, meta, "namespace", &ns);
    if (rc == 0 && ns && (ns[0] == '\0' || strlen(ns) > 63 || strchr(ns, '/')))
        rc = mesh_rd_fail_at(rd, "namespace", "\"%.64s\" is not a valid namespace", ns);
    if (rc < 0)
        return rc;
    m->name = name;
    if (m->kind != MESH_NAMESPACE) {
        m->ns = ns ? ns : "default";
        mesh_rd_hash(rd, "namespace", m->ns);
    }
    rc = mesh_rd_str(rd, meta, "uid", false, &m->uid);
    if (rc == 0)
        rc = mesh_rd_str_nohash(rd, meta, "resourceVersion", &m->resource_version);
    if (rc == 0)
        rc = mesh_rd_labels(rd, meta, "labels", &m->labels);
    if (rc == 0)
        rc = mesh_rd_labels(rd, meta, "annotations", &m->annotations);
    if (rc == 0)
        rc = mesh_rd_seq(rd, meta, "ownerReferences", &owners);
    if (rc < 0)
        return rc;
    m->uid = m->uid ? m->uid : "";
    m->resource_version = m->resource_version ? m->resource_version : "";
    if (owners) {
        size_t n = (size_t)(owners->data.sequence.items.top - owners->data.sequence.items.start);
        m->owners = mesh_alloc(rd->obj, n * sizeof(*m->owners));
        if (m->owners == NULL)
            return mesh_rd_nomem(rd);
        size_t top = mesh_rd_push(rd, "ownerReferences");
        for (size_t i = 0; i < n && rc == 0; i++) {
            size_t im;
            yaml_node_t *o = mesh_rd_item(rd, owners, i, &im);
            if (o == NULL || o->type != YAML_MAPPING_NODE)
                return mesh_rd_fail(rd, "must be a mapping");
            rc = mesh_rd_str(rd, o, "kind", true, &m->owners[i].kind);
            if (rc == 0)
                rc = mesh_rd_str(rd, o, "name", true, &m->owners[i].name);
            mesh_rd_pop(rd, im);
        }
        m->nowners = n;
        mesh_rd_pop(rd, top);
    }
    mesh_rd_pop(rd, mark);
    return rc;
}

static int read_twice(mesh_reader_t *rd, yaml_node_t *root, mesh_kind_t kind, mesh_object_t **out);

static int read_spec(mesh_reader_t *rd, yaml_node_t *root)
{
    switch (rd->obj->meta.kind) {
    case MESH_NAMESPACE:
        return 0;
    case MESH_SERVICE:
        return mesh_read_service(rd, root);
    case MESH_ENDPOINTS:
        return mesh_read_endpoints(rd, root);
    case MESH_ENDPOINT_SLICE:
        return mesh_read_endpoint_slice(rd, root);
    case MESH_POD:
        return mesh_read_pod(rd, root);
    case MESH_NETWORK_POLICY:
        return mesh_read_network_policy(rd, root);
    case MESH_HTTP_ROUTE:
        return mesh_read_http_route(rd, root);
    default:
        return mesh_rd_fail(rd, "kind not read");
    }
}

int mesh_read_object(mesh_reader_t *rd, yaml_node_t *root, const char *default_kind,
                     mesh_object_t **out)
{
    const char *kind_text = NULL, *api = NULL;
    size_t len;
    *out = NULL;
    if (root->type != YAML_MAPPING_NODE)
        return mesh_rd_fail(rd, "an object must be a mapping");
    yaml_node_t *k = mesh_rd_get(rd, root, "kind"), *a = mesh_rd_get(rd, root, "apiVersion");
    if (rd->failed)
        return -EINVAL;
    char kind[64] = "", apiv[64] = "";
    if ((kind_text = mesh_scalar(k, &len)) != NULL)
        snprintf(kind, sizeof(kind), "%.*s", (int)(len < 63 ? len : 63), kind_text);
    else if (k)
        return mesh_rd_fail(rd, "kind: must be a string");
    else if (default_kind)
        snprintf(kind, sizeof(kind), "%s", default_kind);
    else
        return mesh_rd_fail(rd, "kind: missing");
    if ((api = mesh_scalar(a, &len)) != NULL)
        snprintf(apiv, sizeof(apiv), "%.*s", (int)(len < 63 ? len : 63), api);
    int kt = mesh_kind_from_name(kind);
    if (kt < 0) {
        rd->report->skipped++;
        return 0;
    }
    if (api && !api_version_read(kt, apiv)) {
        mesh_rd_note(rd, "%s of apiVersion %s is not read (only %s)", kind, apiv, api_versions[kt]);
        rd->report->skipped++;
        return 0;
    }
    return read_twice(rd, root, (mesh_kind_t)kt, out);
}

/* One reading of root into a new object of kind whose first block holds `reserve` bytes. */
static int read_pass(mesh_reader_t *rd, yaml_node_t *root, mesh_kind_t kind, size_t reserve,
                     mesh_object_t **out)
{
    if ((rd->obj = mesh_object_alloc(kind, reserve)) == NULL)
        return mesh_rd_nomem(rd);
    rd->obj->content_hash = MESH_FNV_INIT;
    rd->obj->meta.doc = rd->doc;
    rd->obj->meta.item = rd->item;
    int rc = (rd->obj->meta.file = mesh_strndup(rd->obj, rd->source, strlen(rd->source))) == NULL
                 ? mesh_rd_nomem(rd)
                 : read_metadata(rd, root);
    if (rc == 0)
        rc = read_spec(rd, root);
    if (rc < 0) {
        mesh_object_unref(rd->obj);
        rd->obj = NULL;
        return rc;
    }
    *out = rd->obj;
    rd->obj = NULL;
    return 0;
}

/* Reads root once to learn the object's size, then again into one block of that size, as the
 * index keeps thousands of objects for long: growing blocks would leave a third of them
 * unused. */
static int read_twice(mesh_reader_t *rd, yaml_node_t *root, mesh_kind_t kind, mesh_object_t **out)
{
    size_t visits = rd->visits;
    int rc = read_pass(rd, root, kind, 0, out);
    size_t need = rc == 0 ? mesh_object_size(*out) : 0;
    if (rc < 0 || (*out)->blocks == NULL ||
        ((*out)->blocks->next == NULL && (*out)->blocks->cap - (*out)->blocks->used < 64))
        return rc;
    mesh_report_t *report = rd->report;
    mesh_object_t *first = *out;
    rd->visits = visits;
    rd->report = NULL; /* its notes are told already */
    rc = read_pass(rd, root, kind, need, out);
    rd->report = report;
    if (rc < 0) { /* the same reading cannot fail but for memory: keep the first */
        *out = first;
        return 0;
    }
    mesh_object_unref(first);
    return 0;
}

/* ---- buffers of documents ----------------------------------------------------------------- */

typedef struct read_ctx {
    const char *source;
    mesh_read_t *out;
    int rc;        /* -EINVAL once a document failed */
    size_t visits; /* of the document being read, across its items */
} read_ctx_t;

static int keep(mesh_read_t *out, mesh_object_t *obj)
{
    mesh_object_t **objs = realloc(out->objects, (out->count + 1) * sizeof(*objs));
    if (objs == NULL) {
        mesh_object_unref(obj);
        return -ENOMEM;
    }
    out->objects = objs;
    objs[out->count++] = obj;
    return 0;
}

/* Reads root (of document doc, item `item` of a List or 0) into out; an error is reported. */
static int read_one(read_ctx_t *c, yaml_document_t *yd, yaml_node_t *root, unsigned doc,
                    unsigned item, const char *default_kind)
{
    mesh_reader_t rd = {.source = c->source,
                        .doc = doc,
                        .item = item,
                        .yd = yd,
                        .report = &c->out->report,
                        .visits = c->visits,
                        .max_visits = mesh_visit_budget(yd)};
    rd.line = (unsigned long)root->start_mark.line + 1;
    mesh_object_t *obj;
    int rc = mesh_read_object(&rd, root, default_kind, &obj);
    c->visits = rd.visits;
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        c->rc = -EINVAL;
        return mesh_report_error(&c->out->report, "%s", rd.err);
    }
    return obj ? keep(c->out, obj) : 0;
}

/* A `kind: List` (or a typed list, `ServiceList`, whose items may leave their kind out). */
static int read_list(read_ctx_t *c, yaml_document_t *yd, yaml_node_t *root, unsigned doc,
                     const char *kind, size_t kind_len)
{
    mesh_reader_t rd = {.source = c->source,
                        .doc = doc,
                        .yd = yd,
                        .report = &c->out->report,
                        .max_visits = mesh_visit_budget(yd)};
    yaml_node_t *items, *meta;
    if (mesh_rd_seq(&rd, root, "items", &items) < 0 || mesh_rd_map(&rd, root, "metadata", &meta)) {
        c->rc = -EINVAL;
        return mesh_report_error(&c->out->report, "%s", rd.err);
    }
    size_t n;
    const char *rv = mesh_scalar(mesh_rd_get(&rd, meta, "resourceVersion"), &n);
    if (rv) {
        free(c->out->resource_version);
        if ((c->out->resource_version = strndup(rv, n)) == NULL)
            return -ENOMEM;
    }
    char item_kind[64] = "";
    if (kind_len > 4 && kind_len < sizeof(item_kind) + 4)
        snprintf(item_kind, sizeof(item_kind), "%.*s", (int)(kind_len - 4), kind);
    size_t count =
        items ? (size_t)(items->data.sequence.items.top - items->data.sequence.items.start) : 0;
    c->visits = rd.visits;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *it = yaml_document_get_node(yd, items->data.sequence.items.start[i]);
        int rc =
            it ? read_one(c, yd, it, doc, (unsigned)i + 1, item_kind[0] ? item_kind : NULL) : 0;
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int read_document(void *ctx, yaml_document_t *yd, yaml_node_t *root, unsigned doc)
{
    read_ctx_t *c = ctx;
    size_t len;
    c->visits = 0;
    if (root->type == YAML_SCALAR_NODE && mesh_scalar(root, &len) == NULL)
        return 0; /* an empty document, as `---` at the end leaves */
    if (root->type == YAML_MAPPING_NODE) {
        mesh_reader_t rd = {.source = c->source, .doc = doc, .yd = yd, .max_visits = 8};
        const char *kind = mesh_scalar(mesh_rd_get(&rd, root, "kind"), &len);
        if (kind && len >= 4 && memcmp(kind + len - 4, "List", 4) == 0)
            return read_list(c, yd, root, doc, kind, len);
    }
    return read_one(c, yd, root, doc, 0, NULL);
}

int mesh_read_buffer(const char *source, const char *data, size_t len, mesh_read_t *out)
{
    memset(out, 0, sizeof(*out));
    read_ctx_t c = {.source = source, .out = out};
    int rc = mesh_load_documents(source, data, len, &out->report, read_document, &c);
    return rc < 0 ? rc : c.rc;
}

void mesh_read_free(mesh_read_t *out)
{
    for (size_t i = 0; i < out->count; i++)
        mesh_object_unref(out->objects[i]);
    free(out->objects);
    free(out->resource_version);
    mesh_report_free(&out->report);
    memset(out, 0, sizeof(*out));
}

/* ---- watch events ------------------------------------------------------------------------- */

typedef struct watch_ctx {
    unsigned line;
    mesh_watch_event_t *out;
    mesh_report_t report;
    char *err;
    size_t errlen;
    int rc;
    const char *source;
} watch_ctx_t;

static int watch_fail(watch_ctx_t *w, int rc, const char *what)
{
    snprintf(w->err, w->errlen, "%s:%u: %s", w->source, w->line, what);
    return w->rc = rc;
}

static int read_event(void *ctx, yaml_document_t *yd, yaml_node_t *root, unsigned doc)
{
    static const char *const types[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK"};
    watch_ctx_t *w = ctx;
    if (doc > 1)
        return watch_fail(w, -EINVAL, "one event per line");
    mesh_reader_t rd = {.source = w->source,
                        .doc = w->line,
                        .yd = yd,
                        .report = &w->report,
                        .max_visits = mesh_visit_budget(yd)};
    yaml_node_t *object, *meta;
    size_t len;
    const char *type = mesh_scalar(mesh_rd_get(&rd, root, "type"), &len);
    if (root->type != YAML_MAPPING_NODE || type == NULL)
        return watch_fail(w, -EINVAL, "an event is {\"type\": ..., \"object\": {...}}");
    if (mesh_rd_map(&rd, root, "object", &object) < 0 || object == NULL)
        return watch_fail(w, -EINVAL, "object: missing or not a mapping");
    if (len == 5 && memcmp(type, "ERROR", 5) == 0) {
        const char *msg = mesh_scalar(mesh_rd_get(&rd, object, "message"), &len);
        char what[512];
        snprintf(what, sizeof(what), "ERROR event: %.*s", msg ? (int)(len > 400 ? 400 : len) : 7,
                 msg ? msg : "no message");
        return watch_fail(w, -EPROTO, what);
    }
    int t = -1;
    for (int i = 0; i < 4; i++)
        if (strlen(types[i]) == len && memcmp(types[i], type, len) == 0)
            t = i;
    if (t < 0)
        return watch_fail(w, -EINVAL, "type: not ADDED, MODIFIED, DELETED, BOOKMARK or ERROR");
    w->out->type = (mesh_event_type_t)t;
    const char *rv = mesh_rd_map(&rd, object, "metadata", &meta) == 0
                         ? mesh_scalar(mesh_rd_get(&rd, meta, "resourceVersion"), &len)
                         : NULL;
    if (rv)
        snprintf(w->out->resource_version, sizeof(w->out->resource_version), "%.*s",
                 (int)(len < 127 ? len : 127), rv);
    if (t == MESH_BOOKMARK)
        return 0;
    char at[320];
    snprintf(at, sizeof(at), "%s:%u", w->source, w->line);
    rd.at = at;
    int rc = mesh_read_object(&rd, object, NULL, &w->out->object);
    if (rc < 0) {
        snprintf(w->err, w->errlen, "%s", rd.err);
        return w->rc = rc;
    }
    return 0;
}

int mesh_read_watch_event(const char *source, unsigned line, const char *data, size_t len,
                          mesh_watch_event_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    watch_ctx_t w = {.line = line, .out = out, .err = err, .errlen = errlen, .source = source};
    int rc = mesh_load_documents(source, data, len, &w.report, read_event, &w);
    if (rc == -EINVAL && w.report.nerrors)
        snprintf(err, errlen, "%s", w.report.errors[0]);
    mesh_report_free(&w.report);
    if (rc == 0)
        rc = w.rc;
    if (rc < 0) {
        mesh_object_unref(out->object);
        out->object = NULL;
    }
    return rc;
}
