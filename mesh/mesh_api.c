/* The recorded API source: List responses and watch events, as the Kubernetes API sends them,
 * turned into the same events as the directory source, with the informer's semantics (a list
 * is the whole truth for its kind; watch events apply in order; the resourceVersion moves with
 * each). A live watch only has to add HTTP around it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh_internal.h"

struct mesh_api {
    mesh_vec_t objs; /* references, by kind, namespace, name */
    char resource_version[128];
};

mesh_api_t *mesh_api_new(void)
{
    return calloc(1, sizeof(mesh_api_t));
}

void mesh_api_free(mesh_api_t *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->objs.count; i++)
        mesh_object_unref(a->objs.items[i]);
    mesh_vec_free(&a->objs);
    free(a);
}

const char *mesh_api_resource_version(const mesh_api_t *a)
{
    return a->resource_version;
}

/* Puts obj (borrowed) in place of what a holds under its key, with the event it makes. */
static int put(mesh_api_t *a, mesh_object_t *obj, mesh_batch_t *out)
{
    mesh_key_t key = mesh_key_of(obj);
    bool found;
    size_t at = mesh_vec_find(&a->objs, &key, mesh_key_cmp_object, &found);
    mesh_object_t *old = found ? a->objs.items[at] : NULL;
    if (old && mesh_object_same(old, obj))
        return 0;
    int rc = mesh_batch_add(out, old ? MESH_MODIFIED : MESH_ADDED, obj);
    if (rc == 0 && !found && (rc = mesh_vec_insert(&a->objs, at, obj)) < 0)
        mesh_object_unref(out->events[--out->count].object);
    if (rc < 0)
        return rc;
    a->objs.items[at] = mesh_object_ref(obj);
    mesh_object_unref(old);
    return 0;
}

static int drop(mesh_api_t *a, mesh_object_t *obj, mesh_batch_t *out)
{
    mesh_key_t key = mesh_key_of(obj);
    bool found;
    size_t at = mesh_vec_find(&a->objs, &key, mesh_key_cmp_object, &found);
    if (!found)
        return 0;
    int rc = mesh_batch_add(out, MESH_DELETED, obj);
    if (rc == 0) {
        mesh_object_unref(a->objs.items[at]);
        mesh_vec_remove(&a->objs, at);
    }
    return rc;
}

static int cmp_objects(const void *a, const void *b)
{
    return mesh_object_cmp(*(mesh_object_t *const *)a, *(mesh_object_t *const *)b);
}

int mesh_api_list(mesh_api_t *a, mesh_kind_t kind, const char *source, const char *data, size_t len,
                  mesh_batch_t *out, mesh_report_t *report)
{
    mesh_report_t local = {0}, *rep = report ? report : &local;
    mesh_read_t r;
    int rc = mesh_read_buffer(source, data, len, &r), put_rc = 0;
    if (rc == -ENOMEM)
        goto done;
    size_t kept = 0;
    for (size_t i = 0; i < r.count; i++) {
        mesh_object_t *o = r.objects[i];
        if (o->meta.kind == kind) {
            r.objects[kept++] = o;
            continue;
        }
        rc = -EINVAL;
        mesh_report_error(&r.report, "%s: document %u, item %u: a %s in a list of %s", source,
                          o->meta.doc, o->meta.item, mesh_kind_name(o->meta.kind),
                          mesh_kind_name(kind));
        mesh_object_unref(o);
    }
    r.count = kept;
    if (r.count > 1)
        qsort(r.objects, r.count, sizeof(*r.objects), cmp_objects);
    for (size_t i = 0; i < r.count && put_rc == 0; i++)
        put_rc = put(a, r.objects[i], out);
    /* What the list no longer has is gone; unless an item could not be read, since it might be
     * one of those. */
    for (size_t i = a->objs.count; rc == 0 && i-- > 0 && put_rc == 0;) {
        mesh_object_t *o = a->objs.items[i];
        if (o->meta.kind != kind ||
            (r.count && bsearch(&o, r.objects, r.count, sizeof(*r.objects), cmp_objects)))
            continue;
        put_rc = drop(a, o, out);
    }
    if (r.resource_version)
        snprintf(a->resource_version, sizeof(a->resource_version), "%s", r.resource_version);
    if (mesh_report_move(rep, &r.report) < 0 || put_rc < 0)
        rc = -ENOMEM;
done:
    mesh_read_free(&r);
    mesh_report_free(&local);
    return rc;
}

/* Applies one line's event. */
static int watch_line(mesh_api_t *a, const char *source, unsigned lineno, const char *line,
                      size_t n, mesh_batch_t *out, mesh_report_t *rep)
{
    mesh_watch_event_t ev;
    char err[1024];
    int rc = mesh_read_watch_event(source, lineno, line, n, &ev, err, sizeof(err));
    if (rc == -EINVAL || rc == -EPROTO)
        return mesh_report_error(rep, "%s", err) < 0 ? -ENOMEM : rc;
    if (rc < 0)
        return rc;
    if (ev.resource_version[0])
        memcpy(a->resource_version, ev.resource_version, sizeof(a->resource_version));
    if (ev.object == NULL) {
        rep->skipped += ev.type != MESH_BOOKMARK;
        return 0;
    }
    rc = ev.type == MESH_DELETED ? drop(a, ev.object, out) : put(a, ev.object, out);
    mesh_object_unref(ev.object);
    return rc;
}

int mesh_api_watch(mesh_api_t *a, const char *source, const char *data, size_t len,
                   mesh_batch_t *out, mesh_report_t *report)
{
    mesh_report_t local = {0}, *rep = report ? report : &local;
    int rc = 0;
    unsigned lineno = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (data + at)) : len - at;
        const char *line = data + at;
        at += n + (nl != NULL);
        lineno++;
        size_t i = 0;
        while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
            i++;
        if (i == n)
            continue;
        int r = watch_line(a, source, lineno, line, n, out, rep);
        if (r == -ENOMEM || r == -EPROTO) {
            rc = r;
            break;
        }
        if (r < 0)
            rc = r;
    }
    mesh_report_free(&local);
    return rc;
}
