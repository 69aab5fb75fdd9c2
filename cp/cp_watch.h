/* Watching the mesh directory: file-system events on it, debounced, become one call to rescan
 * it (an isolated change at once, a burst at its end). remora-cp's main loop only. */
#ifndef REMORA_CP_WATCH_H
#define REMORA_CP_WATCH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct cp_watch cp_watch_t;

typedef struct cp_watch_opts {
    uint64_t debounce_ms;  /* quiet time after the last event before a rescan (Istio: 100 ms) */
    uint64_t max_delay_ms; /* a rescan comes at most this long after the first event of a burst,
                              even if events go on (Istio's debounce max: 10 s) */
    uint64_t poll_ms;      /* also rescan this often, events or not (0: never); a fallback for
                              file systems without events */
    /* The first event after at least debounce_ms without a rescan is answered after only this
     * much quiet (0: every burst waits debounce_ms): an isolated change goes out at once, and
     * what follows it within debounce_ms waits for the trailing rescan, so a burst costs at
     * most two rescans. */
    uint64_t leading_ms;
} cp_watch_opts_t;

/* Watches dir (borrowed for the call; copied) on loop (borrowed; must outlive the watch): after a
 * burst of changes in it, on_change(arg) runs once, debounced as opts (borrowed) says. Nothing
 * runs at start: the caller scans once itself. On success *out is owned by the caller, who ends
 * it with cp_watch_stop. Returns 0, or a negative libuv error with err naming the directory. */
int cp_watch_start(uv_loop_t *loop, const char *dir, const cp_watch_opts_t *opts,
                   void (*on_change)(void *arg), void *arg, cp_watch_t **out, char *err,
                   size_t errlen);

/* Events seen and rescans asked for so far (for stats). */
uint64_t cp_watch_events(const cp_watch_t *w);
uint64_t cp_watch_rescans(const cp_watch_t *w);

/* For on_change: how long the rescan it runs for waited, from the first event of its burst (ms;
 * 0 for a poll's). */
uint64_t cp_watch_last_delay_ms(const cp_watch_t *w);

/* Stops watching; w (taken) is freed once its handles are closed. NULL is ignored. */
void cp_watch_stop(cp_watch_t *w);

#endif
