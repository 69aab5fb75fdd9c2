/* Certificate rotation on the main loop: the watched files, the settle-then-rebuild cycle and the
 * expiry check. The snapshot is rebuilt from a copy of the Bootstrap message the running one was
 * built from, so the files are all that can differ between the two; the TLS engine validates
 * the new pair while the snapshot is built, and a pair it refuses never reaches a worker. */
#include "proxy/server/cert_watch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "certs/tls.h"
#include "proxy/core/log.h"

#define SETTLE_MS          200       /* a certificate and its key written one after the other */
#define EXPIRY_ONLY_MS     60000     /* how often expiry is checked when files are not watched */
#define WARN_EVERY_S       86400     /* one warning per certificate per day */
#define CERT_FILE_MAX      (4 << 20) /* the snapshot refuses larger files too */
#define SIG_TRUST_AFTER_S  2         /* see look_at */
#define CONTENT_HASH_INIT  14695981039346656037ull
#define CONTENT_HASH_PRIME 1099511628211ull

/* What identifies a file's content cheaply: any write changes mtime or ctime, and a Kubernetes
 * secret volume's symlink swap changes the inode the path resolves to. */
typedef struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} file_sig_t;

typedef struct watched_file {
    char *path;      /* the DataSource's filename, as the config has it */
    uint64_t in_use; /* content hash of what the running snapshot read; 0: not one content */
    uint64_t seen;   /* content hash at the last look */
    file_sig_t sig;  /* the file at the last look, valid when sig_valid */
    bool sig_valid;  /* false: read the content at the next look */
    bool unreadable; /* logged already; logged again only after it was readable */
    bool synced;     /* in_use set from the snapshot being scanned */
} watched_file_t;

typedef struct watched_dir {
    uv_fs_event_t ev;
    char *path;
} watched_dir_t;

/* A certificate found within the warning window, and when it was last logged. */
typedef struct expiry_note {
    char key[384]; /* "issuer|serial" */
    int64_t warned_at;
} expiry_note_t;

struct cert_watch {
    const host_t *host;   /* borrowed */
    uint64_t interval_ms; /* the periodic look at the files; 0: not watched */
    int64_t warn_s;       /* expiry warning window; 0: no warning */
    uv_timer_t tick;      /* the periodic look, and the expiry check */
    uv_timer_t settle;
    watched_file_t *files;
    size_t n_files, cap_files;
    watched_dir_t *dirs;
    size_t n_dirs;
    expiry_note_t *notes;
    size_t n_notes;
    bool pending; /* the periodic look found new content; the settle timer rebuilds */
    int handles;  /* initialised handles not yet closed; cw goes with the last one after stop */
    stat_id_t rotation_ok, rotation_failed, expiring_soon;
};

/* ---- the TLS contexts of a snapshot ------------------------------------------------------ */

typedef void (*context_fn)(void *arg, const tls_context_config_t *t, const char *kind,
                           const char *name);

/* Calls fn for every TLS context of snap (borrowed): the listeners' filter chains, then the
 * clusters, each with where it is used ("listener" or "cluster", and its name). */
static void foreach_context(const snapshot_t *snap, context_fn fn, void *arg)
{
    for (size_t i = 0; i < snap->n_listeners; i++) {
        const snap_listener_t *l = &snap->listeners[i];
        size_t n = l->n_chains + (l->default_chain ? 1 : 0);
        for (size_t j = 0; j < n; j++) {
            const snap_chain_t *c = j < l->n_chains ? &l->chains[j] : l->default_chain;
            if (c->tls)
                fn(arg, c->tls, "listener", l->name);
        }
    }
    for (size_t i = 0; i < snap->n_clusters; i++)
        if (snap->clusters[i].tls)
            fn(arg, snap->clusters[i].tls, "cluster", snap->clusters[i].name);
}

/* ---- file content ------------------------------------------------------------------------ */

static uint64_t hash_more(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * CONTENT_HASH_PRIME;
    return h;
}

/* FNV-1a over the bytes, then the length; never 0, which marks "not one content". */
static uint64_t hash_end(uint64_t h, uint64_t len)
{
    h = hash_more(h, &len, sizeof(len));
    return h ? h : 1;
}

static uint64_t content_hash(const char *data, size_t len)
{
    return hash_end(hash_more(CONTENT_HASH_INIT, data, len), len);
}

static void sig_of(const struct stat *st, file_sig_t *sig)
{
    *sig = (file_sig_t){st->st_dev, st->st_ino, st->st_size, st->st_mtim, st->st_ctim};
}

static bool sig_same(const file_sig_t *a, const struct stat *st)
{
    return a->dev == st->st_dev && a->ino == st->st_ino && a->size == st->st_size &&
           a->mtime.tv_sec == st->st_mtim.tv_sec && a->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           a->ctime.tv_sec == st->st_ctim.tv_sec && a->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* Hashes the file's content into *out and its identity into *st. Returns 0, or -1 with *why
 * saying what is wrong. Key bytes pass through a stack buffer that is wiped afterwards. */
static int hash_file(const char *path, struct stat *st, uint64_t *out, const char **why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        *why = strerror(errno);
        return -1;
    }
    int rc = -1;
    char buf[4096];
    if (fstat(fd, st) < 0) {
        *why = strerror(errno);
        goto out_close;
    }
    if (!S_ISREG(st->st_mode)) {
        *why = "not a regular file";
        goto out_close;
    }
    if (st->st_size > CERT_FILE_MAX) {
        *why = "larger than 4 MiB";
        goto out_close;
    }
    uint64_t h = CONTENT_HASH_INIT, len = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *why = strerror(errno);
            goto out_wipe;
        }
        if (n == 0)
            break;
        h = hash_more(h, buf, (size_t)n);
        len += (uint64_t)n;
    }
    *out = hash_end(h, len);
    rc = 0;
out_wipe:
    explicit_bzero(buf, sizeof(buf));
out_close:
    close(fd);
    return rc;
}

static bool file_unreadable(watched_file_t *f, const char *why)
{
    if (!f->unreadable)
        log_warn("certificate file '%s' cannot be read (%s); the certificates in use stay", f->path,
                 why);
    f->unreadable = true;
    f->sig_valid = false;
    return false;
}

/* Looks at one file; true when its content differs from the last look. A file whose size,
 * times and inode did not move is not read again. */
static bool look_at(watched_file_t *f)
{
    struct stat st;
    if (stat(f->path, &st) < 0)
        return file_unreadable(f, strerror(errno));
    if (f->sig_valid && sig_same(&f->sig, &st))
        return false;
    uint64_t h;
    const char *why;
    if (hash_file(f->path, &st, &h, &why) < 0)
        return file_unreadable(f, why);
    if (f->unreadable)
        log_info("certificate file '%s' is readable again", f->path);
    f->unreadable = false;
    sig_of(&st, &f->sig);
    /* File times move in coarse ticks: a rewrite of the same size in the tick of this read
     * would leave the same signature, so a file changed just now is read again next time. */
    time_t changed_at =
        st.st_mtim.tv_sec > st.st_ctim.tv_sec ? st.st_mtim.tv_sec : st.st_ctim.tv_sec;
    f->sig_valid = time(NULL) - changed_at > SIG_TRUST_AFTER_S;
    if (h == f->seen)
        return false; /* touched, or rewritten with the same bytes */
    f->seen = h;
    return true;
}

static bool look_at_files(cert_watch_t *cw)
{
    bool changed = false;
    for (size_t i = 0; i < cw->n_files; i++)
        changed |= look_at(&cw->files[i]);
    return changed;
}

static bool files_differ_from_snapshot(const cert_watch_t *cw)
{
    for (size_t i = 0; i < cw->n_files; i++)
        if (cw->files[i].seen != cw->files[i].in_use)
            return true;
    return false;
}

/* ---- the files of a snapshot ------------------------------------------------------------- */

typedef struct sync_scan {
    cert_watch_t *cw;
    int rc;
} sync_scan_t;

static int sync_data(cert_watch_t *cw, const tls_config_data_t *d)
{
    if (d->filename == NULL || d->data == NULL)
        return 0;
    uint64_t h = content_hash(d->data, d->len);
    watched_file_t *f = NULL;
    for (size_t i = 0; i < cw->n_files && f == NULL; i++)
        if (strcmp(cw->files[i].path, d->filename) == 0)
            f = &cw->files[i];
    if (f == NULL) {
        if (cw->n_files == cw->cap_files) {
            size_t cap = cw->cap_files ? cw->cap_files * 2 : 8;
            watched_file_t *v = realloc(cw->files, cap * sizeof(*v));
            if (v == NULL)
                return -ENOMEM;
            cw->files = v;
            cw->cap_files = cap;
        }
        f = &cw->files[cw->n_files];
        *f = (watched_file_t){.path = strdup(d->filename)};
        if (f->path == NULL)
            return -ENOMEM;
        cw->n_files++;
    }
    if (!f->synced) {
        f->in_use = h;
        f->synced = true;
    } else if (f->in_use != h) {
        /* Two contexts read the file at different moments and got different bytes: mark it so
         * the next look rebuilds and every context gets one content again. */
        f->in_use = 0;
    }
    return 0;
}

static void sync_context(void *arg, const tls_context_config_t *t, const char *kind,
                         const char *name)
{
    (void)kind;
    (void)name;
    sync_scan_t *sc = arg;
    const tls_config_data_t *items[] = {&t->cert_chain, &t->private_key, &t->trusted_ca};
    for (size_t i = 0; i < 3 && sc->rc == 0; i++)
        sc->rc = sync_data(sc->cw, items[i]);
}

/* Takes what snap (borrowed) read from each file as the content in use, adding files not
 * watched yet; every file is read again at the next look. Returns 0 or -ENOMEM. */
static int sync_files(cert_watch_t *cw, const snapshot_t *snap)
{
    for (size_t i = 0; i < cw->n_files; i++)
        cw->files[i].synced = false;
    sync_scan_t sc = {cw, 0};
    foreach_context(snap, sync_context, &sc);
    for (size_t i = 0; i < cw->n_files; i++) {
        cw->files[i].seen = cw->files[i].in_use;
        cw->files[i].sig_valid = false;
    }
    return sc.rc;
}

/* ---- expiry ------------------------------------------------------------------------------- */

typedef struct expiry_scan {
    cert_watch_t *cw;
    int64_t now;
    expiry_note_t *notes; /* the certificates in the window this time */
    size_t n, cap;
    int rc;
} expiry_scan_t;

static void format_span(int64_t s, char *buf, size_t len)
{
    if (s >= 86400)
        snprintf(buf, len, "%" PRId64 "d %" PRId64 "h", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(buf, len, "%" PRId64 "h %" PRId64 "m", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(buf, len, "%" PRId64 "m", s / 60);
    else
        snprintf(buf, len, "%" PRId64 "s", s);
}

static void warn_expiring(const tls_context_config_t *t, const char *kind, const char *name,
                          const identity_cert_info_t *info, int64_t now)
{
    char when[40] = "?", span[32];
    time_t at = (time_t)info->not_after;
    struct tm tm;
    if (gmtime_r(&at, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    int64_t left = info->not_after - now;
    format_span(left >= 0 ? left : -left, span, sizeof(span));
    log_warn("certificate of %s '%s' %s %s%s, at %s: %s, serial %s, file %s", kind, name,
             left >= 0 ? "expires in" : "expired", span, left >= 0 ? "" : " ago", when,
             info->spiffe_id ? info->spiffe_id : info->subject, info->serial,
             t->cert_chain.filename ? t->cert_chain.filename : "<inline>");
}

static void expiry_context(void *arg, const tls_context_config_t *t, const char *kind,
                           const char *name)
{
    expiry_scan_t *sc = arg;
    cert_watch_t *cw = sc->cw;
    if (sc->rc < 0 || t->engine == NULL || t->cert_chain.data == NULL)
        return;
    identity_cert_info_t info;
    if (tls_config_cert_info(t->engine, false, 0, sc->now, &info) < 0)
        return;
    if (info.not_after - sc->now > cw->warn_s)
        goto out;
    char key[sizeof(sc->notes->key)];
    snprintf(key, sizeof(key), "%s|%s", info.issuer, info.serial);
    for (size_t i = 0; i < sc->n; i++)
        if (strcmp(sc->notes[i].key, key) == 0)
            goto out; /* the same certificate in another context */
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 4;
        expiry_note_t *v = realloc(sc->notes, cap * sizeof(*v));
        if (v == NULL) {
            sc->rc = -ENOMEM;
            goto out;
        }
        sc->notes = v;
        sc->cap = cap;
    }
    expiry_note_t *note = &sc->notes[sc->n++];
    memcpy(note->key, key, sizeof(key));
    note->warned_at = INT64_MIN;
    for (size_t i = 0; i < cw->n_notes; i++)
        if (strcmp(cw->notes[i].key, key) == 0)
            note->warned_at = cw->notes[i].warned_at;
    if (note->warned_at == INT64_MIN || sc->now - note->warned_at >= WARN_EVERY_S) {
        warn_expiring(t, kind, name, &info, sc->now);
        note->warned_at = sc->now;
    }
out:
    identity_cert_info_free(&info);
}

/* Counts the leaf certificates of the running snapshot that expire within the window (each one
 * once, however many contexts use it) into server.cert_expiring_soon, and logs each at most once a
 * day. */
static void check_expiry(cert_watch_t *cw)
{
    if (cw->warn_s <= 0)
        return;
    expiry_scan_t sc = {.cw = cw, .now = (int64_t)time(NULL)};
    foreach_context(host_snapshot(cw->host), expiry_context, &sc);
    if (sc.rc < 0) {
        free(sc.notes); /* keep the old notes: at worst a warning comes twice */
        return;
    }
    free(cw->notes);
    cw->notes = sc.notes;
    cw->n_notes = sc.n;
    host_set_gauge(cw->host, cw->expiring_soon, (int64_t)sc.n);
}

/* ---- rebuild and publish ------------------------------------------------------------------ */

/* "a.pem, b.pem" for the files whose content differs from the snapshot's. */
static void changed_list(const cert_watch_t *cw, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cw->n_files && n < len; i++)
        if (cw->files[i].seen != cw->files[i].in_use)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", cw->files[i].path);
}

static void on_settle(uv_timer_t *t);

/* Reads the files SETTLE_MS from the first sign of a change, however many follow meanwhile. */
static void arm_settle(cert_watch_t *cw)
{
    if (!uv_is_active((uv_handle_t *)&cw->settle))
        uv_timer_start(&cw->settle, on_settle, SETTLE_MS, 0);
}

static void rotate(cert_watch_t *cw)
{
    const host_t *h = cw->host;
    char changed[512], err[1024];
    changed_list(cw, changed, sizeof(changed));
    snapshot_t *next = NULL;
    /* With the DNS addresses held now, so a rotation keeps the resolved endpoints. */
    if (snapshot_rebuild(host_snapshot(h), host_resolver(h), h->stats, &next, err, sizeof(err)) <
        0) {
        /* The files' content stays recorded as seen: the next change tries again, a touch
         * does not. */
        stats_inc(h->slots, cw->rotation_failed);
        log_error("certificate rotation failed, the certificates in use stay (changed: %s): %s",
                  changed, err);
        return;
    }
    host_install_snapshot(h, next);
    stats_inc(h->slots, cw->rotation_ok);
    log_info("certificates rotated (changed: %s): new connections use config version %" PRIu64,
             changed, host_snapshot(h)->version);
    if (sync_files(cw, host_snapshot(h)) < 0)
        log_error("certificate watch: out of memory; some files may not be watched");
    /* A write that landed while the snapshot was built is seen now, not at the next tick. */
    if (look_at_files(cw) && files_differ_from_snapshot(cw)) {
        cw->pending = true;
        arm_settle(cw);
    }
    check_expiry(cw);
}

/* ---- timers and fs events ------------------------------------------------------------------ */

static void on_settle(uv_timer_t *t)
{
    cert_watch_t *cw = t->data;
    bool changed = look_at_files(cw) || cw->pending;
    cw->pending = false;
    if (!changed)
        return;
    if (files_differ_from_snapshot(cw))
        rotate(cw);
    else
        log_info("certificate files hold the content in use again: nothing to rotate");
}

static void on_tick(uv_timer_t *t)
{
    cert_watch_t *cw = t->data;
    if (cw->interval_ms > 0 && look_at_files(cw)) {
        cw->pending = true;
        arm_settle(cw);
    }
    check_expiry(cw);
}

/* Any change in a watched directory: the files themselves say whether it matters. Watching
 * directories, not files, sees a Kubernetes secret volume swap its ..data symlink. */
static void on_dir_event(uv_fs_event_t *ev, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    cert_watch_t *cw = ev->data;
    if (status < 0)
        log_debug("certificate watch: event error: %s", uv_strerror(status));
    arm_settle(cw);
}

static void dir_of(const char *path, char *out, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(out, len, ".");
    else if (slash == path)
        snprintf(out, len, "/");
    else
        snprintf(out, len, "%.*s", (int)(slash - path), path);
}

/* One fs event handle per distinct directory of the watched files. A directory that cannot be
 * watched is still looked at by the periodic check. */
static int watch_dirs(cert_watch_t *cw)
{
    cw->dirs = calloc(cw->n_files ? cw->n_files : 1, sizeof(*cw->dirs));
    if (cw->dirs == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < cw->n_files; i++) {
        char dir[4096];
        dir_of(cw->files[i].path, dir, sizeof(dir));
        bool known = false;
        for (size_t j = 0; j < cw->n_dirs && !known; j++)
            known = strcmp(cw->dirs[j].path, dir) == 0;
        if (known)
            continue;
        watched_dir_t *d = &cw->dirs[cw->n_dirs];
        if ((d->path = strdup(dir)) == NULL)
            return -ENOMEM;
        cw->n_dirs++;
        uv_fs_event_init(cw->host->loop, &d->ev);
        d->ev.data = cw;
        cw->handles++;
        int rc = uv_fs_event_start(&d->ev, on_dir_event, dir, 0);
        if (rc < 0)
            log_warn("cannot watch directory '%s' (%s): its certificate files are looked at "
                     "every %" PRIu64 " ms only",
                     dir, uv_strerror(rc), cw->interval_ms);
    }
    return 0;
}

static void cert_watch_free(cert_watch_t *cw)
{
    for (size_t i = 0; i < cw->n_files; i++)
        free(cw->files[i].path);
    free(cw->files);
    for (size_t i = 0; i < cw->n_dirs; i++)
        free(cw->dirs[i].path);
    free(cw->dirs);
    free(cw->notes);
    free(cw);
}

static void on_handle_closed(uv_handle_t *h)
{
    cert_watch_t *cw = h->data;
    if (--cw->handles == 0)
        cert_watch_free(cw);
}

static int define_stats(cert_watch_t *cw)
{
    struct {
        stat_id_t *id;
        stat_kind_t kind;
        const char *metric;
    } defs[] = {
        {&cw->rotation_ok, STAT_COUNTER, "cert_rotation_ok"},
        {&cw->rotation_failed, STAT_COUNTER, "cert_rotation_failed"},
        {&cw->expiring_soon, STAT_GAUGE, "cert_expiring_soon"},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        int64_t id =
            stats_define(cw->host->stats, defs[i].kind, "server", NULL, NULL, defs[i].metric);
        if (id < 0)
            return (int)id;
        *defs[i].id = (stat_id_t)id;
    }
    return 0;
}

int cert_watch_start(const host_t *host, uint64_t check_interval_ms, int64_t expiry_warn_s,
                     cert_watch_t **out)
{
    *out = NULL;
    cert_watch_t *cw = calloc(1, sizeof(*cw));
    if (cw == NULL)
        return -ENOMEM;
    cw->host = host;
    cw->interval_ms = check_interval_ms;
    cw->warn_s = expiry_warn_s;
    uv_timer_init(host->loop, &cw->tick);
    uv_timer_init(host->loop, &cw->settle);
    cw->tick.data = cw->settle.data = cw;
    cw->handles = 2;
    int rc = define_stats(cw);
    if (rc == 0)
        rc = sync_files(cw, host_snapshot(host));
    uint64_t interval = check_interval_ms;
    if (rc == 0 && interval > 0)
        rc = watch_dirs(cw);
    if (rc < 0) {
        cert_watch_stop(cw);
        return rc;
    }
    if (interval == 0 && expiry_warn_s > 0)
        interval = EXPIRY_ONLY_MS;
    if (interval > 0)
        uv_timer_start(&cw->tick, on_tick, interval, interval);
    if (check_interval_ms > 0 && cw->n_files > 0)
        log_info("watching %zu certificate file(s) in %zu director%s for rotation", cw->n_files,
                 cw->n_dirs, cw->n_dirs == 1 ? "y" : "ies");
    check_expiry(cw);
    *out = cw;
    return 0;
}

void cert_watch_stop(cert_watch_t *cw)
{
    if (cw == NULL)
        return;
    for (size_t i = 0; i < cw->n_dirs; i++)
        uv_close((uv_handle_t *)&cw->dirs[i].ev, on_handle_closed);
    uv_close((uv_handle_t *)&cw->tick, on_handle_closed);
    uv_close((uv_handle_t *)&cw->settle, on_handle_closed);
}
