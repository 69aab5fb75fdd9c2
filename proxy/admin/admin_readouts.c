/* /stats text and JSON with the host's text readouts merged among the store's counters and
 * gauges: the store keeps numbers only, so strings such as the last accepted xDS version come
 * from the host when /stats is read. */
#include "proxy/admin/admin_readouts.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"

typedef struct readout {
    char *name, *value;
} readout_t;

typedef struct readouts {
    readout_t *v;
    size_t n, cap;
    const regex_t *re;
    bool oom;
} readouts_t;

static void collect(void *arg, const char *name, const char *value)
{
    readouts_t *r = arg;
    if (r->oom || (r->re && regexec(r->re, name, 0, NULL, 0) != 0))
        return;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        readout_t *v = realloc(r->v, cap * sizeof(*v));
        if (v == NULL) {
            r->oom = true;
            return;
        }
        r->v = v;
        r->cap = cap;
    }
    readout_t *e = &r->v[r->n];
    e->name = strdup(name);
    e->value = strdup(value ? value : "");
    if (e->name == NULL || e->value == NULL) {
        free(e->name);
        free(e->value);
        r->oom = true;
        return;
    }
    r->n++;
}

static void readouts_free(readouts_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].name);
        free(r->v[i].value);
    }
    free(r->v);
}

/* The host's readouts that re (or NULL) keeps, in *r (the caller's; freed with readouts_free).
 * Returns 0 or -1 when out of memory. */
static int readouts_get(const host_t *host, const regex_t *re, readouts_t *r)
{
    memset(r, 0, sizeof(*r));
    r->re = re;
    host_text_readouts(host, collect, r);
    return r->oom ? -1 : 0;
}

/* value as Envoy's text rendering quotes it: between double quotes, `"` and `\` escaped. */
static void put_quoted(strbuf_t *sb, const char *value)
{
    sb_puts(sb, "\"");
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_append(sb, "\\", 1);
        sb_append(sb, p, 1);
    }
    sb_puts(sb, "\"");
}

char *admin_stats_text(const host_t *host, const stats_entry_t *list, int n, const regex_t *re)
{
    readouts_t r;
    if (readouts_get(host, re, &r) < 0) {
        readouts_free(&r);
        return NULL;
    }
    strbuf_t sb = {0};
    sb_puts(&sb, "");
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (list[i].kind == STAT_HISTOGRAM)
            continue;
        for (; k < r.n && strcmp(r.v[k].name, list[i].name) < 0; k++) {
            sb_printf(&sb, "%s: ", r.v[k].name);
            put_quoted(&sb, r.v[k].value);
            sb_puts(&sb, "\n");
        }
        sb_printf(&sb, "%s: %lld\n", list[i].name, (long long)list[i].value);
    }
    for (; k < r.n; k++) {
        sb_printf(&sb, "%s: ", r.v[k].name);
        put_quoted(&sb, r.v[k].value);
        sb_puts(&sb, "\n");
    }
    readouts_free(&r);
    /* The histograms, as the store renders them, after every counter, gauge and readout. */
    stats_entry_t *hist = malloc(((size_t)n + 1) * sizeof(*hist));
    int nh = 0;
    for (int i = 0; hist && i < n; i++)
        if (list[i].kind == STAT_HISTOGRAM)
            hist[nh++] = list[i];
    char *htext = hist ? stats_render_text(hist, nh, NULL) : NULL;
    free(hist);
    if (htext == NULL) {
        sb_free(&sb);
        return NULL;
    }
    sb_puts(&sb, htext);
    free(htext);
    return sb_take(&sb);
}

char *admin_stats_json(const host_t *host, const stats_entry_t *list, int n, const regex_t *re)
{
    char *text = stats_render_json(list, n, NULL);
    readouts_t r;
    int rc = readouts_get(host, re, &r);
    if (text == NULL || rc < 0 || r.n == 0) {
        readouts_free(&r);
        if (rc < 0) {
            free(text);
            return NULL;
        }
        return text;
    }
    json_t *root = json_loads(text, 0, NULL);
    json_t *stats = json_object_get(root, "stats");
    if (!json_is_array(stats)) {
        json_decref(root);
        readouts_free(&r);
        return text;
    }
    /* Each readout goes before the first stat that sorts after it, or before the histograms
     * (the last element, without a name), or at the end. */
    for (size_t k = 0; k < r.n; k++) {
        size_t i = 0;
        for (; i < json_array_size(stats); i++) {
            const char *name = json_string_value(json_object_get(json_array_get(stats, i), "name"));
            if (name == NULL || strcmp(name, r.v[k].name) > 0)
                break;
        }
        json_array_insert_new(stats, i,
                              json_pack("{s:s, s:s}", "name", r.v[k].name, "value", r.v[k].value));
    }
    readouts_free(&r);
    char *out = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(root);
    if (out == NULL)
        return text;
    free(text);
    return out;
}
