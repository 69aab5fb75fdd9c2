/* /stats of any admin endpoint (see admin_stats.h): the query read once, the store listed,
 * filtered and rendered. */
#include <string.h>

#include "proxy/admin/admin_stats.h"

/* Keeps the entries of list[0..n) whose name re matches, in order. Returns how many. */
static int stats_filter(stats_entry_t *list, int n, const regex_t *re)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (regexec(re, list[i].name, 0, NULL, 0) == 0)
            list[k++] = list[i];
    return k;
}

static char *render(const admin_stats_view_t *view, bool json, const stats_entry_t *list, int n,
                    const regex_t *re)
{
    admin_stats_render_fn fn = view ? (json ? view->json : view->text) : NULL;
    if (fn)
        return fn(view->ctx, list, n, re);
    return json ? stats_render_json(list, n, NULL) : stats_render_text(list, n, NULL);
}

void admin_respond_stats(admin_response_t *r, const admin_request_t *rq, const stats_store_t *store,
                         const admin_stats_view_t *view)
{
    stats_entry_t *list;
    int n = stats_list(store, &list);
    if (n < 0) {
        admin_respond_text(r, 500, "out of memory\n");
        return;
    }
    /* Envoy's `filter` is a regular expression over stat names; keep the matching ones. */
    char filter[512];
    regex_t re, *rep = NULL;
    if (admin_query_param(rq->query, "filter", filter, sizeof(filter)) && filter[0]) {
        if (regcomp(&re, filter, REG_EXTENDED | REG_NOSUB) != 0) {
            stats_list_free(list);
            admin_respond_text(r, 400, "invalid regex in filter\n");
            return;
        }
        rep = &re;
        n = stats_filter(list, n, rep);
    }
    char format[32] = "";
    admin_query_param(rq->query, "format", format, sizeof(format));
    r->status = 200;
    if (strcmp(rq->path, "/stats/prometheus") == 0 || strcmp(format, "prometheus") == 0) {
        /* Text readouts are left out, as Envoy leaves them out of Prometheus. */
        r->content_type = "text/plain; version=0.0.4; charset=UTF-8";
        r->body = stats_render_prometheus(list, n);
    } else if (strcmp(format, "json") == 0) {
        r->content_type = "application/json";
        r->body = render(view, true, list, n, rep);
    } else if (format[0] == '\0' || strcmp(format, "text") == 0) {
        r->content_type = "text/plain; charset=UTF-8";
        r->body = render(view, false, list, n, rep);
    } else {
        admin_respond_text(r, 400, "unknown format; use text, json or prometheus\n");
    }
    if (rep)
        regfree(rep);
    stats_list_free(list);
}
