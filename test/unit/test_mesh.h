/* Helpers the mesh tests share: fixtures read whole, text read as a manifest, objects found by
 * kind and name. */
#ifndef REMORA_TEST_MESH_H
#define REMORA_TEST_MESH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh.h"

#define MESH_FIXTURES "test/unit/fixtures/mesh"

/* The whole file at path, NUL-terminated, new (free it); fails the test when unreadable. */
static inline char *fixture(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("%s: cannot open", path);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* Reads text as the file "mem.yaml"; returns mesh_read_buffer's code. */
static inline int read_text(const char *text, mesh_read_t *r)
{
    return mesh_read_buffer("mem.yaml", text, strlen(text), r);
}

/* The object of kind named ns/name in r, or NULL. */
static inline mesh_object_t *find(const mesh_read_t *r, mesh_kind_t kind, const char *ns,
                                  const char *name)
{
    for (size_t i = 0; i < r->count; i++)
        if (r->objects[i]->meta.kind == kind && strcmp(r->objects[i]->meta.ns, ns) == 0 &&
            strcmp(r->objects[i]->meta.name, name) == 0)
            return r->objects[i];
    return NULL;
}

/* The one object text holds (which must read without error); a new reference. */
static inline mesh_object_t *read_one(const char *text)
{
    mesh_read_t r;
    int rc = read_text(text, &r);
    if (rc != 0 || r.count != 1)
        fail_msg("read %d, %zu objects: %s", rc, r.count,
                 r.report.nerrors ? r.report.errors[0] : "");
    mesh_object_t *obj = mesh_object_ref(r.objects[0]);
    mesh_read_free(&r);
    return obj;
}

/* The first error reading text gives (copied into buf); fails the test when it reads. */
static inline const char *read_error(const char *text, char *buf, size_t cap)
{
    mesh_read_t r;
    int rc = read_text(text, &r);
    if (rc != -EINVAL || r.report.nerrors == 0)
        fail_msg("read %d without an error", rc);
    snprintf(buf, cap, "%s", r.report.errors[0]);
    mesh_read_free(&r);
    return buf;
}

static inline const char *label(const mesh_labels_t *l, const char *key)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return l->items[i].value;
    return NULL;
}

#endif
