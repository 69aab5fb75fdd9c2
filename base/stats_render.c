/* The admin endpoint's renderings of a stats list: Envoy's text and JSON forms, and the
 * Prometheus text exposition format. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/stats.h"
#include "base/stats_names.h"
#include "base/strbuf.h"

/* Envoy's supported quantiles, in percent. */
static const double quantiles_pct[] = {0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100};
#define N_QUANTILES (sizeof(quantiles_pct) / sizeof(quantiles_pct[0]))

/* s (borrowed) as a Prometheus label name. */
static void prom_name_put(strbuf_t *sb, const char *s)
{
    char buf[256];
    size_t len = prom_name_len(s);
    char *tmp = len < sizeof(buf) ? buf : malloc(len + 1);
    if (tmp == NULL) {
        sb->failed = 1;
        return;
    }
    prom_name_write(tmp, s, true);
    sb_append(sb, tmp, len);
    if (tmp != buf)
        free(tmp);
}

static bool filtered_out(const stats_entry_t *e, const char *filter)
{
    return filter && strstr(e->name, filter) == NULL;
}

/* Milliseconds from microseconds with up to three decimals and no trailing zeros: "0.5", "12". */
static void put_ms(strbuf_t *sb, uint64_t us)
{
    char frac[8];
    int n = snprintf(frac, sizeof(frac), "%03u", (unsigned)(us % 1000));
    while (n > 0 && frac[n - 1] == '0')
        frac[--n] = '\0';
    sb_printf(sb, "%llu%s%s", (unsigned long long)(us / 1000), n ? "." : "", frac);
}

char *stats_render_text(const stats_entry_t *list, int n, const char *filter)
{
    strbuf_t sb = {0};
    sb_puts(&sb, "");
    for (int i = 0; i < n; i++) {
        if (list[i].kind != STAT_HISTOGRAM && !filtered_out(&list[i], filter))
            sb_printf(&sb, "%s: %lld\n", list[i].name, (long long)list[i].value);
    }
    /* Envoy lists histograms after counters and gauges, as P<q>(interval,cumulative). Remora
     * keeps no per-interval data, so the interval is always nan, as Envoy shows it for a quiet
     * interval. */
    for (int i = 0; i < n; i++) {
        const stats_entry_t *e = &list[i];
        if (e->kind != STAT_HISTOGRAM || filtered_out(e, filter))
            continue;
        sb_printf(&sb, "%s:", e->name);
        if (e->hist->count == 0)
            sb_puts(&sb, " No recorded values");
        for (size_t q = 0; q < N_QUANTILES && e->hist->count; q++)
            sb_printf(&sb, " P%g(nan,%g)", quantiles_pct[q],
                      stats_histogram_quantile(e->hist, quantiles_pct[q] / 100));
        sb_puts(&sb, "\n");
    }
    return sb_take(&sb);
}

static void json_string(strbuf_t *sb, const char *s)
{
    sb_puts(sb, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sb_printf(sb, "\\%c", c);
        else if (c < 0x20)
            sb_printf(sb, "\\u%04x", c);
        else
            sb_append(sb, (const char *)&c, 1);
    }
    sb_puts(sb, "\"");
}

char *stats_render_json(const stats_entry_t *list, int n, const char *filter)
{
    strbuf_t sb = {0};
    sb_puts(&sb, "{\"stats\":[");
    bool first = true;
    int nhist = 0;
    for (int i = 0; i < n; i++) {
        if (filtered_out(&list[i], filter))
            continue;
        if (list[i].kind == STAT_HISTOGRAM) {
            nhist++;
            continue;
        }
        sb_puts(&sb, first ? "\n{\"name\":" : ",\n{\"name\":");
        json_string(&sb, list[i].name);
        sb_printf(&sb, ",\"value\":%lld}", (long long)list[i].value);
        first = false;
    }
    /* Envoy's shape: one last array element holding every histogram's quantiles. */
    if (nhist) {
        sb_puts(&sb, first ? "\n" : ",\n");
        sb_puts(&sb, "{\"histograms\":{\"supported_quantiles\":[");
        for (size_t q = 0; q < N_QUANTILES; q++)
            sb_printf(&sb, "%s%g", q ? "," : "", quantiles_pct[q]);
        sb_puts(&sb, "],\"computed_quantiles\":[");
        bool first_h = true;
        for (int i = 0; i < n; i++) {
            const stats_entry_t *e = &list[i];
            if (e->kind != STAT_HISTOGRAM || filtered_out(e, filter))
                continue;
            sb_puts(&sb, first_h ? "\n{\"name\":" : ",\n{\"name\":");
            json_string(&sb, e->name);
            sb_puts(&sb, ",\"values\":[");
            for (size_t q = 0; q < N_QUANTILES; q++) {
                sb_printf(&sb, "%s{\"interval\":null,\"cumulative\":", q ? "," : "");
                if (e->hist->count)
                    sb_printf(&sb, "%g}",
                              stats_histogram_quantile(e->hist, quantiles_pct[q] / 100));
                else
                    sb_puts(&sb, "null}");
            }
            sb_puts(&sb, "]}");
            first_h = false;
        }
        sb_puts(&sb, "\n]}}");
    }
    sb_puts(&sb, "\n]}\n");
    return sb_take(&sb);
}

static void prom_label_value(strbuf_t *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            sb_puts(sb, "\\\\");
        else if (*s == '"')
            sb_puts(sb, "\\\"");
        else if (*s == '\n')
            sb_puts(sb, "\\n");
        else
            sb_append(sb, s, 1);
    }
}

/* {tag="v",…[,le="…"]} or nothing; `le` goes last, as the exposition format expects. */
static void prom_labels(strbuf_t *sb, const stats_entry_t *e, const char *le)
{
    if (e->n_tags == 0 && le == NULL)
        return;
    sb_puts(sb, "{");
    for (size_t i = 0; i < e->n_tags; i++) {
        if (i)
            sb_puts(sb, ",");
        prom_name_put(sb, e->tags[i].name);
        sb_puts(sb, "=\"");
        prom_label_value(sb, e->tags[i].value);
        sb_puts(sb, "\"");
    }
    if (le)
        sb_printf(sb, "%sle=\"%s\"", e->n_tags ? "," : "", le);
    sb_puts(sb, "}");
}

/* Groups by family so each family has one TYPE line and adjacent samples, then orders the
 * samples by their label values. */
static int family_cmp(const void *a, const void *b)
{
    const stats_entry_t *x = a, *y = b;
    int c = strcmp(x->prom_family, y->prom_family);
    for (size_t i = 0; c == 0 && i < x->n_tags && i < y->n_tags; i++)
        c = strcmp(x->tags[i].value, y->tags[i].value);
    if (c == 0)
        c = (x->n_tags > y->n_tags) - (x->n_tags < y->n_tags);
    return c;
}

static void prom_histogram(strbuf_t *sb, const stats_entry_t *e)
{
    uint64_t cum = 0;
    strbuf_t le = {0};
    for (unsigned b = 0; b < STATS_HIST_BUCKETS; b++) {
        cum += e->hist->buckets[b];
        sb_free(&le);
        if (b < STATS_HIST_BOUNDS)
            put_ms(&le, stats_hist_bounds_us[b]);
        else
            sb_puts(&le, "+Inf");
        sb_printf(sb, "%s_bucket", e->prom_family);
        prom_labels(sb, e, le.failed ? "+Inf" : le.data);
        sb_printf(sb, " %llu\n", (unsigned long long)cum);
    }
    sb_free(&le);
    sb_printf(sb, "%s_sum", e->prom_family);
    prom_labels(sb, e, NULL);
    sb_puts(sb, " ");
    put_ms(sb, e->hist->sum_us);
    sb_printf(sb, "\n%s_count", e->prom_family);
    prom_labels(sb, e, NULL);
    sb_printf(sb, " %llu\n", (unsigned long long)cum);
}

char *stats_render_prometheus(const stats_entry_t *list, int n)
{
    stats_entry_t *sorted = malloc((n ? n : 1) * sizeof(*sorted));
    if (sorted == NULL)
        return NULL;
    memcpy(sorted, list, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), family_cmp);
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    strbuf_t sb = {0};
    sb_puts(&sb, "");
    for (int i = 0; i < n; i++) {
        const stats_entry_t *e = &sorted[i];
        if (i == 0 || strcmp(sorted[i - 1].prom_family, e->prom_family) != 0)
            sb_printf(&sb, "# TYPE %s %s\n", e->prom_family, type_names[e->kind]);
        if (e->kind == STAT_HISTOGRAM) {
            prom_histogram(&sb, e);
            continue;
        }
        sb_puts(&sb, e->prom_family);
        prom_labels(&sb, e, NULL);
        sb_printf(&sb, " %lld\n", (long long)e->value);
    }
    free(sorted);
    return sb_take(&sb);
}
