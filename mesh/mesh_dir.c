/* The directory source: a scan of a directory of manifests becomes the watch events that turn
 * what was served into what the files now hold. Only files whose size, inode or times changed
 * are read; each object is claimed by the places that define it, and the first place (by file
 * name, then document) is served. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mesh/mesh_internal.h"

#define MESH_FILE_MAX (64u << 20)

typedef struct dfile {
    char *name;      /* in the directory */
    char *path;      /* the directory and the name: what messages say */
    struct stat sig; /* at the last read, when have_sig */
    bool have_sig;
    bool read; /* hash and len are those of the last good content */
    uint64_t hash;
    size_t len;
    mesh_object_t **objs; /* the last good objects (references) */
    size_t nobjs;
} dfile_t;

typedef struct claim {
    dfile_t *file;
    mesh_object_t *obj; /* borrowed from file->objs */
} claim_t;

typedef struct dkey {
    mesh_kind_t kind;
    bool touched;
    const char *ns;   /* in text */
    const char *name; /* in text */
    claim_t *claims;  /* by file name, then document and item; &one when one */
    size_t nclaims;
    claim_t one;
    mesh_object_t *served; /* reference; NULL when nothing is served */
    char text[];           /* ns and name */
} dkey_t;

struct mesh_dir {
    char *path;
    mesh_vec_t files; /* dfile_t by name */
    mesh_vec_t keys;  /* dkey_t by kind, namespace, name */
    mesh_vec_t touched;
};

mesh_dir_t *mesh_dir_new(const char *path)
{
    mesh_dir_t *d = calloc(1, sizeof(*d));
    if (d && (d->path = strdup(path)) == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

static void file_free(dfile_t *f)
{
    for (size_t i = 0; i < f->nobjs; i++)
        mesh_object_unref(f->objs[i]);
    free(f->objs);
    free(f->name);
    free(f->path);
    free(f);
}

static void key_free(dkey_t *k)
{
    mesh_object_unref(k->served);
    if (k->claims != &k->one)
        free(k->claims);
    free(k);
}

void mesh_dir_free(mesh_dir_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->files.count; i++)
        file_free(d->files.items[i]);
    for (size_t i = 0; i < d->keys.count; i++)
        key_free(d->keys.items[i]);
    mesh_vec_free(&d->files);
    mesh_vec_free(&d->keys);
    mesh_vec_free(&d->touched);
    free(d->path);
    free(d);
}

static int cmp_file_name(const void *key, const void *item)
{
    return strcmp(key, item);
}

static int cmp_file(const void *key, const void *item)
{
    return strcmp(key, ((const dfile_t *)item)->name);
}

static int cmp_key(const void *key, const void *item)
{
    const mesh_key_t *k = key;
    const dkey_t *o = item;
    if (k->kind != o->kind)
        return k->kind < o->kind ? -1 : 1;
    int c = strcmp(k->ns, o->ns);
    return c ? c : strcmp(k->name, o->name);
}

/* ---- claims ------------------------------------------------------------------------------- */

static int touch(mesh_dir_t *d, dkey_t *k)
{
    if (k->touched)
        return 0;
    k->touched = true;
    return mesh_vec_insert(&d->touched, d->touched.count, k);
}

static int claim_cmp(const claim_t *a, const claim_t *b)
{
    int c = strcmp(a->file->name, b->file->name);
    if (c == 0)
        c = (int)a->obj->meta.doc - (int)b->obj->meta.doc;
    return c ? c : (int)a->obj->meta.item - (int)b->obj->meta.item;
}

static dkey_t *key_new(const mesh_object_t *obj)
{
    size_t ns = strlen(obj->meta.ns) + 1, name = strlen(obj->meta.name) + 1;
    dkey_t *k = calloc(1, sizeof(*k) + ns + name);
    if (k == NULL)
        return NULL;
    k->kind = obj->meta.kind;
    memcpy(k->text, obj->meta.ns, ns);
    memcpy(k->text + ns, obj->meta.name, name);
    k->ns = k->text;
    k->name = k->text + ns;
    k->claims = &k->one;
    return k;
}

static int claim(mesh_dir_t *d, dfile_t *f, mesh_object_t *obj)
{
    mesh_key_t key = mesh_key_of(obj);
    bool found;
    size_t at = mesh_vec_find(&d->keys, &key, cmp_key, &found);
    dkey_t *k = found ? d->keys.items[at] : key_new(obj);
    if (k == NULL || (!found && mesh_vec_insert(&d->keys, at, k) < 0)) {
        if (k)
            key_free(k);
        return -ENOMEM;
    }
    claim_t *claims = k->claims;
    if (k->nclaims > 0) { /* a duplicate: rare, so its claims grow one by one */
        claims = malloc((k->nclaims + 1) * sizeof(*claims));
        if (claims == NULL)
            return -ENOMEM;
        memcpy(claims, k->claims, k->nclaims * sizeof(*claims));
        if (k->claims != &k->one)
            free(k->claims);
        k->claims = claims;
    }
    claim_t c = {f, obj};
    size_t i = k->nclaims;
    while (i > 0 && claim_cmp(&c, &claims[i - 1]) < 0) {
        claims[i] = claims[i - 1];
        i--;
    }
    claims[i] = c;
    k->nclaims++;
    return touch(d, k);
}

static int unclaim(mesh_dir_t *d, dfile_t *f, mesh_object_t *obj)
{
    mesh_key_t key = mesh_key_of(obj);
    bool found;
    size_t at = mesh_vec_find(&d->keys, &key, cmp_key, &found);
    if (!found)
        return 0;
    dkey_t *k = d->keys.items[at];
    for (size_t i = 0; i < k->nclaims; i++)
        if (k->claims[i].file == f && k->claims[i].obj == obj) {
            memmove(&k->claims[i], &k->claims[i + 1], (k->nclaims - i - 1) * sizeof(claim_t));
            k->nclaims--;
            break;
        }
    return touch(d, k);
}

/* ---- reading files ------------------------------------------------------------------------ */

static bool same_sig(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static int read_all(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        if (n == cap) {
            char *bigger = cap >= MESH_FILE_MAX ? NULL : realloc(buf, cap * 2);
            if (bigger == NULL) {
                rc = cap >= MESH_FILE_MAX ? -EFBIG : -ENOMEM;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : 0;
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    if (buf == NULL)
        return -ENOMEM;
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Takes what f now holds (r's objects) in place of what it held. */
static int replace_objects(mesh_dir_t *d, dfile_t *f, mesh_read_t *r)
{
    int rc = 0;
    for (size_t i = 0; i < f->nobjs && rc == 0; i++)
        rc = unclaim(d, f, f->objs[i]);
    for (size_t i = 0; i < f->nobjs; i++)
        mesh_object_unref(f->objs[i]);
    free(f->objs);
    f->objs = r->objects;
    f->nobjs = r->count;
    r->objects = NULL;
    r->count = 0;
    for (size_t i = 0; i < f->nobjs && rc == 0; i++)
        rc = claim(d, f, f->objs[i]);
    return rc;
}

/* Reads f again; an error is reported and leaves its objects as they were. */
static int load(mesh_dir_t *d, dfile_t *f, const struct stat *st, mesh_report_t *report,
                bool *failed)
{
    char *data = NULL;
    size_t len = 0;
    f->sig = *st;
    f->have_sig = true;
    int rc = read_all(f->path, &data, &len);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        *failed = true;
        return mesh_report_error(report, "%s: %s", f->path,
                                 rc == -EFBIG ? "larger than 64 MiB" : strerror(-rc));
    }
    uint64_t hash = mesh_hash(MESH_FNV_INIT, data, len);
    if (f->read && hash == f->hash && len == f->len) {
        free(data); /* touched, not changed */
        return 0;
    }
    mesh_read_t r;
    rc = mesh_read_buffer(f->path, data, len, &r);
    free(data);
    int moved = mesh_report_move(report, &r.report);
    if (rc == 0 && moved == 0) {
        rc = replace_objects(d, f, &r);
        f->read = true;
        f->hash = hash;
        f->len = len;
    } else if (rc == -EINVAL) {
        *failed = true;
        rc = moved;
    }
    mesh_read_free(&r);
    return rc;
}

/* ---- the scan ----------------------------------------------------------------------------- */

static bool wanted(const char *name)
{
    size_t n = strlen(name);
    if (name[0] == '.')
        return false;
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".json") == 0);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(const char *path, mesh_vec_t *names)
{
    DIR *dir = opendir(path);
    if (dir == NULL)
        return -errno;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (errno = 0, e = readdir(dir)) != NULL;) {
        if (!wanted(e->d_name))
            continue;
        char *name = strdup(e->d_name);
        rc = name ? mesh_vec_insert(names, names->count, name) : -ENOMEM;
        if (rc < 0)
            free(name);
    }
    if (rc == 0 && errno)
        rc = -errno;
    closedir(dir);
    if (names->count > 1)
        qsort(names->items, names->count, sizeof(*names->items), cmp_names);
    return rc;
}

static void remove_file(mesh_dir_t *d, size_t at, int *rc)
{
    dfile_t *f = d->files.items[at];
    for (size_t i = 0; i < f->nobjs && *rc == 0; i++)
        *rc = unclaim(d, f, f->objs[i]);
    mesh_vec_remove(&d->files, at);
    file_free(f);
}

static dfile_t *file_new(const mesh_dir_t *d, const char *name)
{
    dfile_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->name = strdup(name);
    if (f->name == NULL || asprintf(&f->path, "%s/%s", d->path, name) < 0) {
        f->path = NULL;
        file_free(f);
        return NULL;
    }
    return f;
}

/* Reads the files that are new or changed and forgets those gone. */
static int sync_files(mesh_dir_t *d, mesh_vec_t *names, mesh_report_t *report, bool *failed)
{
    int rc = 0;
    for (size_t i = d->files.count; i-- > 0 && rc == 0;) {
        bool found;
        mesh_vec_find(names, ((dfile_t *)d->files.items[i])->name, cmp_file_name, &found);
        if (!found)
            remove_file(d, i, &rc);
    }
    for (size_t i = 0; i < names->count && rc == 0; i++) {
        struct stat st;
        bool found;
        size_t at = mesh_vec_find(&d->files, names->items[i], cmp_file, &found);
        dfile_t *f = found ? d->files.items[at] : file_new(d, names->items[i]);
        if (f == NULL || (!found && mesh_vec_insert(&d->files, at, f) < 0)) {
            if (f)
                file_free(f);
            return -ENOMEM;
        }
        if (stat(f->path, &st) < 0 || !S_ISREG(st.st_mode))
            continue; /* gone since the listing, or not a file: the next scan sees */
        if (!f->have_sig || !same_sig(&st, &f->sig))
            rc = load(d, f, &st, report, failed);
    }
    return rc;
}

static void where(const mesh_object_t *o, char *out, size_t cap)
{
    if (o->meta.item)
        snprintf(out, cap, "%s: document %u, item %u", o->meta.file, o->meta.doc, o->meta.item);
    else
        snprintf(out, cap, "%s: document %u", o->meta.file, o->meta.doc);
}

/* Reports every place beyond the first that defines k. */
static int report_duplicates(const dkey_t *k, mesh_report_t *report)
{
    char first[512], again[512];
    where(k->claims[0].obj, first, sizeof(first));
    for (size_t i = 1; i < k->nclaims; i++) {
        where(k->claims[i].obj, again, sizeof(again));
        int rc =
            mesh_report_error(report, "%s: %s %s%s%s defined again (first in %s): ignored", again,
                              mesh_kind_name(k->kind), k->ns, k->ns[0] ? "/" : "", k->name, first);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int cmp_touched(const void *a, const void *b)
{
    const dkey_t *x = *(dkey_t *const *)a, *y = *(dkey_t *const *)b;
    mesh_key_t k = {x->kind, x->ns, x->name};
    return cmp_key(&k, y);
}

/* The event that takes k from what was served to its first claim, if any. */
static int resolve(mesh_dir_t *d, dkey_t *k, mesh_batch_t *out, mesh_report_t *report, bool *failed)
{
    mesh_object_t *now = k->nclaims ? k->claims[0].obj : NULL;
    int rc = 0;
    k->touched = false;
    if (k->nclaims > 1) {
        *failed = true;
        rc = report_duplicates(k, report);
    }
    if (rc == 0 && now == NULL && k->served)
        rc = mesh_batch_add(out, MESH_DELETED, k->served);
    else if (rc == 0 && now && (k->served == NULL || !mesh_object_same(k->served, now)))
        rc = mesh_batch_add(out, k->served ? MESH_MODIFIED : MESH_ADDED, now);
    if (rc < 0)
        return rc;
    mesh_object_unref(k->served);
    k->served = now ? mesh_object_ref(now) : NULL; /* the same content from where it is now */
    if (now == NULL) {
        mesh_key_t key = {k->kind, k->ns, k->name};
        bool found;
        size_t at = mesh_vec_find(&d->keys, &key, cmp_key, &found);
        if (found)
            mesh_vec_remove(&d->keys, at);
        key_free(k);
    }
    return 0;
}

int mesh_dir_scan(mesh_dir_t *d, mesh_batch_t *out, mesh_report_t *report)
{
    mesh_report_t local = {0}, *rep = report ? report : &local;
    mesh_vec_t names = {0};
    bool failed = false;
    int rc = list_dir(d->path, &names);
    if (rc < 0 && rc != -ENOMEM) {
        mesh_report_error(rep, "%s: %s", d->path, strerror(-rc));
    } else if (rc == 0) {
        rc = sync_files(d, &names, rep, &failed);
        if (d->touched.count > 1)
            qsort(d->touched.items, d->touched.count, sizeof(void *), cmp_touched);
        for (size_t i = 0; i < d->touched.count; i++) {
            int r = resolve(d, d->touched.items[i], out, rep, &failed);
            rc = rc ? rc : r;
        }
        d->touched.count = 0;
    }
    for (size_t i = 0; i < names.count; i++)
        free(names.items[i]);
    mesh_vec_free(&names);
    mesh_report_free(&local);
    return rc < 0 ? rc : failed ? -EINVAL : 0;
}
