/* /stats for an admin endpoint, the sidecar's and remora-cp's alike: a store's stats as text,
 * JSON or Prometheus (chosen by the path /stats/prometheus or ?format=), narrowed by
 * ?filter=REGEX, as Envoy's admin answers them. The text and JSON renderings can be the caller's
 * (the sidecar adds its text readouts among the stats). */
#ifndef REMORA_ADMIN_STATS_H
#define REMORA_ADMIN_STATS_H

#include <regex.h>

#include "base/stats.h"
#include "proxy/admin/admin_http.h"

/* Renders list[0..n) (borrowed, already filtered) for ctx (borrowed); re (borrowed) is the filter,
 * or NULL: none was given. A new string the caller frees, or NULL when out of memory. */
typedef char *(*admin_stats_render_fn)(const void *ctx, const stats_entry_t *list, int n,
                                       const regex_t *re);

/* The caller's text and JSON renderings; NULL (either, or the whole view) renders the store's
 * stats alone (stats_render_text, stats_render_json). */
typedef struct admin_stats_view {
    admin_stats_render_fn text;
    admin_stats_render_fn json;
    const void *ctx;
} admin_stats_view_t;

/* Answers rq (borrowed: GET /stats or /stats/prometheus) into r with store's (borrowed) stats:
 * ?format=text (the default), json or prometheus (the path /stats/prometheus is that), any
 * other format 400; ?filter= a POSIX extended regular expression that keeps matching names, an
 * invalid one 400; 500 when out of memory. view borrowed, may be NULL. */
void admin_respond_stats(admin_response_t *r, const admin_request_t *rq, const stats_store_t *store,
                         const admin_stats_view_t *view);

#endif
