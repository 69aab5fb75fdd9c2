/* The paths are few and read-only: remora-cp's state changes only through the mesh directory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cp/cp_admin.h"

#include "proxy/admin/admin_http.h"
#include "proxy/admin/admin_stats.h"

struct cp_admin {
    admin_http_t *http;
    cp_stats_t *stats;
    const cp_admin_ops_t *ops;
    void *ctx;
};

static const char HELP[] = "remora-cp admin commands:\n"
                           "  /stats              counters, gauges and histograms as text\n"
                           "                      (?format=json|prometheus, ?filter=REGEX)\n"
                           "  /stats/prometheus   the same in Prometheus' text format\n"
                           "  /ready              200 once the mesh is read and xDS listens\n"
                           "  /debug/syncz        every connected sidecar's xDS state (JSON)\n";

static void handle(void *ctx, const admin_request_t *rq, admin_response_t *r)
{
    cp_admin_t *a = ctx;
    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
        admin_respond_text(r, 405, "method not allowed\n");
        return;
    }
    const char *p = rq->path;
    if (strcmp(p, "/") == 0 || strcmp(p, "/help") == 0) {
        admin_respond_text(r, 200, HELP);
    } else if (strcmp(p, "/stats") == 0 || strcmp(p, "/stats/prometheus") == 0) {
        admin_respond_stats(r, rq, a->stats->store, NULL);
    } else if (strcmp(p, "/ready") == 0) {
        bool ready = a->ops->ready(a->ctx);
        admin_respond_text(r, ready ? 200 : 503, ready ? "LIVE\n" : "not ready\n");
    } else if (strcmp(p, "/debug/syncz") == 0) {
        admin_respond_json(r, a->ops->syncz(a->ctx));
    } else {
        admin_respond_text(r, 404, "invalid path; GET / lists the admin commands\n");
    }
}

int cp_admin_start(uv_loop_t *loop, const struct sockaddr *addr, cp_stats_t *stats,
                   const cp_admin_ops_t *ops, void *ctx, cp_admin_t **out, char *err, size_t errlen)
{
    cp_admin_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->stats = stats;
    a->ops = ops;
    a->ctx = ctx;
    int rc = admin_http_start(loop, addr, "admin", handle, a, &a->http, err, errlen);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int cp_admin_address(const cp_admin_t *a, struct sockaddr_storage *out)
{
    return admin_http_address(a->http, out);
}

void cp_admin_stop(cp_admin_t *a)
{
    if (a == NULL)
        return;
    admin_http_stop(a->http);
    free(a);
}
