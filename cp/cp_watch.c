/* A burst of events (an editor's save, `kubectl get -o yaml > file`, a ConfigMap's symlink swap)
 * is one rescan: each event restarts a quiet timer of debounce_ms, and a burst that never goes
 * quiet is cut at max_delay_ms after its first event. With leading_ms, the first event after a
 * quiet spell (no rescan for debounce_ms) waits only leading_ms of quiet: a lone change is not
 * held back, and the events that follow it within debounce_ms make one trailing rescan. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp/cp_watch.h"

#include "proxy/core/log.h"

struct cp_watch {
    uv_fs_event_t event;
    uv_timer_t quiet; /* the debounce */
    uv_timer_t poll;
    cp_watch_opts_t opts;
    void (*on_change)(void *arg);
    void *arg;
    uint64_t burst_start; /* uv_now of the first event not yet answered; 0: none */
    uint64_t last_rescan; /* uv_now of the last rescan; 0: none yet */
    uint64_t last_delay;  /* first event of its burst to the last rescan, ms; 0: a poll */
    bool leading;         /* the quiet timer is a leading one */
    uint64_t events, rescans;
    bool event_on;
    int open_handles;
    char *dir;
};

static void rescan(cp_watch_t *w)
{
    uint64_t now = uv_now(w->quiet.loop);
    w->last_delay = w->burst_start ? now - w->burst_start : 0;
    w->burst_start = 0;
    w->leading = false;
    w->last_rescan = uv_now(w->quiet.loop);
    uv_timer_stop(&w->quiet);
    w->rescans++;
    w->on_change(w->arg);
}

static void on_quiet(uv_timer_t *t)
{
    rescan(t->data);
}

static void on_poll(uv_timer_t *t)
{
    rescan(t->data);
}

static void on_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    (void)name;
    (void)events;
    cp_watch_t *w = h->data;
    if (status < 0) {
        log_warn("mesh: watching %s: %s", w->dir, uv_strerror(status));
        return;
    }
    w->events++;
    uint64_t now = uv_now(h->loop);
    bool quiet_spell = !uv_is_active((uv_handle_t *)&w->quiet) &&
                       (w->last_rescan == 0 || now - w->last_rescan >= w->opts.debounce_ms);
    if (w->burst_start == 0)
        w->burst_start = now;
    uint64_t due = w->opts.debounce_ms;
    if (w->opts.leading_ms && (quiet_spell || w->leading)) {
        w->leading = true;
        due = w->opts.leading_ms;
    }
    uint64_t cut = w->burst_start + w->opts.max_delay_ms;
    if (w->opts.max_delay_ms && now + due > cut)
        due = cut > now ? cut - now : 0;
    uv_timer_start(&w->quiet, on_quiet, due, 0);
}

int cp_watch_start(uv_loop_t *loop, const char *dir, const cp_watch_opts_t *opts,
                   void (*on_change)(void *arg), void *arg, cp_watch_t **out, char *err,
                   size_t errlen)
{
    cp_watch_t *w = calloc(1, sizeof(*w));
    if (w == NULL || (w->dir = strdup(dir)) == NULL) {
        free(w);
        snprintf(err, errlen, "mesh: watching %s: out of memory", dir);
        return -ENOMEM;
    }
    w->opts = *opts;
    w->on_change = on_change;
    w->arg = arg;
    uv_fs_event_init(loop, &w->event);
    uv_timer_init(loop, &w->quiet);
    uv_timer_init(loop, &w->poll);
    w->event.data = w->quiet.data = w->poll.data = w;
    w->open_handles = 3;
    int rc = uv_fs_event_start(&w->event, on_event, dir, 0);
    if (rc < 0 && w->opts.poll_ms == 0) {
        snprintf(err, errlen, "mesh: watching %s: %s", dir, uv_strerror(rc));
        cp_watch_stop(w);
        return rc;
    }
    w->event_on = rc == 0;
    if (rc < 0)
        log_warn("mesh: no file-system events for %s (%s): polling every %llu ms", dir,
                 uv_strerror(rc), (unsigned long long)w->opts.poll_ms);
    if (w->opts.poll_ms)
        uv_timer_start(&w->poll, on_poll, w->opts.poll_ms, w->opts.poll_ms);
    *out = w;
    return 0;
}

uint64_t cp_watch_events(const cp_watch_t *w)
{
    return w->events;
}

uint64_t cp_watch_last_delay_ms(const cp_watch_t *w)
{
    return w->last_delay;
}

uint64_t cp_watch_rescans(const cp_watch_t *w)
{
    return w->rescans;
}

static void on_closed(uv_handle_t *h)
{
    cp_watch_t *w = h->data;
    if (--w->open_handles == 0) {
        free(w->dir);
        free(w);
    }
}

void cp_watch_stop(cp_watch_t *w)
{
    if (w == NULL)
        return;
    if (w->event_on)
        uv_fs_event_stop(&w->event);
    uv_close((uv_handle_t *)&w->event, on_closed);
    uv_close((uv_handle_t *)&w->quiet, on_closed);
    uv_close((uv_handle_t *)&w->poll, on_closed);
}
