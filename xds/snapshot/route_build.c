/* Builds the route table from an Envoy v3 RouteConfiguration: honoured fields are copied, the
 * rest is an error naming its virtual host and route. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "envoy/config/route/v3/route.pb-c.h"
#include "xds/config/config.h"
#include "xds/snapshot/route.h"

typedef Envoy__Config__Route__V3__RouteConfiguration rc_msg_t;
typedef Envoy__Config__Route__V3__VirtualHost vhost_msg_t;
typedef Envoy__Config__Route__V3__Route route_msg_t;
typedef Envoy__Config__Route__V3__RouteAction action_msg_t;
typedef Envoy__Config__Route__V3__RouteMatch match_msg_t;
typedef Envoy__Config__Route__V3__HeaderMatcher hm_msg_t;
typedef Envoy__Config__Route__V3__RetryPolicy retry_msg_t;
typedef Envoy__Config__Core__V3__HeaderValueOption hvo_msg_t;
typedef Envoy__Type__Matcher__V3__StringMatcher sm_msg_t;

/* Build state: the error buffer and where we are, so every message starts with its place. */
typedef struct build_ctx {
    const snapshot_t *snap;
    bool validate_clusters;
    uint32_t max_body;
    char *err;
    size_t errlen;
    char where[512]; /* "virtual_host 'x': route 2" or "" at the top level */
} build_ctx_t;

static int fail(build_ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(build_ctx_t *c, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->where[0])
        snprintf(c->err, c->errlen, "%s: %s", c->where, msg);
    else
        snprintf(c->err, c->errlen, "%s", msg);
    return -EINVAL;
}

static int oom(build_ctx_t *c)
{
    snprintf(c->err, c->errlen, "out of memory building the route table");
    return -ENOMEM;
}

static char *lower_dup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (d)
        for (char *p = d; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    return d;
}

/* Envoy lets neither pseudo-headers nor Host be added or removed by header ops. */
static bool header_is_modifiable(const char *lower)
{
    return lower[0] != ':' && strcmp(lower, "host") != 0;
}

static int build_header_ops(build_ctx_t *c, const char *add_field, hvo_msg_t *const *add,
                            size_t n_add, const char *remove_field, char *const *remove,
                            size_t n_remove, route_header_ops_t *ops)
{
    if (n_add) {
        ops->add = calloc(n_add, sizeof(*ops->add));
        if (ops->add == NULL)
            return oom(c);
        ops->n_add = n_add;
    }
    for (size_t i = 0; i < n_add; i++) {
        const hvo_msg_t *o = add[i];
        route_header_add_t *a = &ops->add[i];
        const Envoy__Config__Core__V3__HeaderValue *h = o->header;
        if (h == NULL || h->key == NULL || h->key[0] == '\0')
            return fail(c, "%s[%zu]: header.key is required", add_field, i);
        a->name = lower_dup(h->key);
        if (a->name == NULL)
            return oom(c);
        if (!header_is_modifiable(a->name))
            return fail(c, "%s[%zu]: '%s' may not be modified (pseudo-headers and host)", add_field,
                        i, a->name);
        bool has_value = h->value && h->value[0];
        if (has_value && h->raw_value.len)
            return fail(c, "%s[%zu]: header '%s': only one of value and raw_value may be set",
                        add_field, i, a->name);
        if (h->raw_value.len) {
            if (memchr(h->raw_value.data, '\0', h->raw_value.len))
                return fail(c, "%s[%zu]: header '%s': raw_value contains a NUL byte", add_field, i,
                            a->name);
            a->value = strndup((const char *)h->raw_value.data, h->raw_value.len);
        } else {
            a->value = strdup(has_value ? h->value : "");
        }
        if (a->value == NULL)
            return oom(c);
        a->action = (route_append_t)o->append_action;
        if (o->append) {
            /* The deprecated BoolValue still works, but not together with append_action. */
            if (o->append_action !=
                ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__APPEND_IF_EXISTS_OR_ADD)
                return fail(c,
                            "%s[%zu]: header '%s': both append and append_action are set; use "
                            "append_action",
                            add_field, i, a->name);
            a->action =
                o->append->value ? HDR_APPEND_IF_EXISTS_OR_ADD : HDR_OVERWRITE_IF_EXISTS_OR_ADD;
        }
        if (a->action > HDR_OVERWRITE_IF_EXISTS)
            return fail(c, "%s[%zu]: header '%s': unknown append_action %d", add_field, i, a->name,
                        (int)o->append_action);
        a->keep_empty_value = o->keep_empty_value;
    }
    if (n_remove) {
        ops->remove = calloc(n_remove, sizeof(*ops->remove));
        if (ops->remove == NULL)
            return oom(c);
        ops->n_remove = n_remove;
    }
    for (size_t i = 0; i < n_remove; i++) {
        if (remove[i] == NULL || remove[i][0] == '\0')
            return fail(c, "%s[%zu]: empty header name", remove_field, i);
        ops->remove[i] = lower_dup(remove[i]);
        if (ops->remove[i] == NULL)
            return oom(c);
        if (!header_is_modifiable(ops->remove[i]))
            return fail(c, "%s[%zu]: '%s' may not be removed (pseudo-headers and host)",
                        remove_field, i, ops->remove[i]);
    }
    return 0;
}

/* protoc-c generates one map-entry struct per typed_per_filter_config field (route configuration,
 * virtual host, route), all with this layout; the builder reads them through it. */
typedef struct {
    ProtobufCMessage base;
    char *key;
    Google__Protobuf__Any *value;
} any_map_entry_t;

static int build_filter_configs(build_ctx_t *c, void *const *entries, size_t n,
                                route_filter_configs_t *out)
{
    if (n == 0)
        return 0;
    out->v = calloc(n, sizeof(*out->v));
    if (out->v == NULL)
        return oom(c);
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        const any_map_entry_t *e = entries[i];
        route_filter_config_t *f = &out->v[i];
        if (e->value == NULL || e->value->type_url == NULL || e->value->type_url[0] == '\0')
            return fail(c, "typed_per_filter_config '%s': the Any has no type", e->key);
        f->filter = strdup(e->key ? e->key : "");
        f->type_url = strdup(e->value->type_url);
        f->value = malloc(e->value->value.len ? e->value->value.len : 1);
        if (f->filter == NULL || f->type_url == NULL || f->value == NULL)
            return oom(c);
        if (e->value->value.len)
            memcpy(f->value, e->value->value.data, e->value->value.len);
        f->value_len = e->value->value.len;
    }
    return 0;
}

static int build_string_matcher(build_ctx_t *c, size_t i, const sm_msg_t *sm,
                                route_header_matcher_t *h)
{
    const char *v = NULL;
    switch (sm->match_pattern_case) {
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
        h->kind = ROUTE_HDR_EXACT;
        v = sm->exact;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
        h->kind = ROUTE_HDR_PREFIX;
        v = sm->prefix;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
        h->kind = ROUTE_HDR_SUFFIX;
        v = sm->suffix;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
        h->kind = ROUTE_HDR_CONTAINS;
        v = sm->contains;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX:
        return fail(c, "headers[%zu] '%s': string_match.safe_regex is not supported", i, h->name);
    default:
        return fail(c,
                    "headers[%zu] '%s': string_match needs one of exact, prefix, suffix or "
                    "contains",
                    i, h->name);
    }
    h->ignore_case = sm->ignore_case;
    h->value = strdup(v ? v : "");
    return h->value ? 0 : oom(c);
}

static int build_header_matcher(build_ctx_t *c, size_t i, const hm_msg_t *m,
                                route_header_matcher_t *h)
{
    if (m->name == NULL || m->name[0] == '\0')
        return fail(c, "headers[%zu]: name is required", i);
    h->name = lower_dup(m->name);
    if (h->name == NULL)
        return oom(c);
    h->invert = m->invert_match;
    h->treat_missing_as_empty = m->treat_missing_header_as_empty;
    const char *v = NULL;
    switch (m->header_match_specifier_case) {
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER__NOT_SET:
        /* Envoy: no specifier means "the header is present". */
        h->kind = ROUTE_HDR_PRESENT;
        h->present = true;
        return 0;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH:
        h->kind = ROUTE_HDR_PRESENT;
        h->present = m->present_match;
        return 0;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_RANGE_MATCH:
        h->kind = ROUTE_HDR_RANGE;
        h->range_start = m->range_match->start;
        h->range_end = m->range_match->end;
        return 0;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH:
        return build_string_matcher(c, i, m->string_match, h);
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH:
        return fail(c, "headers[%zu] '%s': safe_regex_match is not supported", i, h->name);
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH:
        h->kind = ROUTE_HDR_EXACT;
        v = m->exact_match;
        break;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH:
        h->kind = ROUTE_HDR_PREFIX;
        v = m->prefix_match;
        break;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH:
        h->kind = ROUTE_HDR_SUFFIX;
        v = m->suffix_match;
        break;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_CONTAINS_MATCH:
        h->kind = ROUTE_HDR_CONTAINS;
        v = m->contains_match;
        break;
    default:
        return fail(c, "headers[%zu] '%s': unknown match specifier", i, h->name);
    }
    h->value = strdup(v ? v : "");
    return h->value ? 0 : oom(c);
}

static int build_match(build_ctx_t *c, const match_msg_t *m, route_entry_t *r)
{
    if (m == NULL)
        return fail(c, "match is required");
    const char *s = NULL;
    switch (m->path_specifier_case) {
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX:
        r->match_kind = ROUTE_MATCH_PREFIX;
        s = m->prefix;
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH:
        r->match_kind = ROUTE_MATCH_PATH;
        s = m->path;
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH_SEPARATED_PREFIX:
        r->match_kind = ROUTE_MATCH_PATH_SEPARATED_PREFIX;
        s = m->path_separated_prefix;
        /* Envoy's rule: no '?' or '#', and no trailing '/' (the separator is implied). */
        if (s == NULL || strlen(s) < 2 || strpbrk(s, "?#") || s[strlen(s) - 1] == '/')
            return fail(c,
                        "match: path_separated_prefix '%s' must have 2+ characters, no '?' or "
                        "'#', and not end in '/'",
                        s ? s : "");
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_CONNECT_MATCHER:
        r->match_kind = ROUTE_MATCH_CONNECT;
        s = "";
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX:
        return fail(c, "safe_regex is not supported");
    default:
        return fail(c, "match: one of prefix, path, path_separated_prefix or connect_matcher is "
                       "required");
    }
    r->match = strdup(s ? s : "");
    if (r->match == NULL)
        return oom(c);
    r->match_len = (uint32_t)strlen(r->match);
    r->case_sensitive = m->case_sensitive ? m->case_sensitive->value : true;
    if (m->n_headers) {
        r->headers = calloc(m->n_headers, sizeof(*r->headers));
        if (r->headers == NULL)
            return oom(c);
        r->n_headers = m->n_headers;
    }
    for (size_t i = 0; i < m->n_headers; i++) {
        int rc = build_header_matcher(c, i, m->headers[i], &r->headers[i]);
        if (rc)
            return rc;
        r->headers[i].value_len = r->headers[i].value ? (uint32_t)strlen(r->headers[i].value) : 0;
    }
    return 0;
}

static int resolve_cluster(build_ctx_t *c, const char *field, route_cluster_t *rc)
{
    if (rc->name == NULL)
        return oom(c);
    if (rc->name[0] == '\0')
        return fail(c, "%s: cluster name is empty", field);
    rc->cluster = c->snap ? snapshot_find_cluster(c->snap, rc->name) : NULL;
    if (rc->cluster == NULL && c->snap && c->validate_clusters)
        return fail(c, "%s: unknown cluster '%s' (validate_clusters is on)", field, rc->name);
    return 0;
}

static int build_weighted(build_ctx_t *c, const Envoy__Config__Route__V3__WeightedCluster *w,
                          route_entry_t *r)
{
    if (w->n_clusters == 0)
        return fail(c, "weighted_clusters: clusters is empty");
    r->clusters = calloc(w->n_clusters, sizeof(*r->clusters));
    if (r->clusters == NULL)
        return oom(c);
    r->n_clusters = w->n_clusters;
    uint64_t sum = 0;
    for (size_t i = 0; i < w->n_clusters; i++) {
        const Envoy__Config__Route__V3__WeightedCluster__ClusterWeight *cw = w->clusters[i];
        route_cluster_t *rc = &r->clusters[i];
        char field[64];
        snprintf(field, sizeof(field), "weighted_clusters[%zu]", i);
        if (cw->cluster_header && cw->cluster_header[0])
            return fail(c, "%s: cluster_header is not supported", field);
        rc->name = strdup(cw->name ? cw->name : "");
        int rcode = resolve_cluster(c, field, rc);
        if (rcode)
            return rcode;
        rc->weight = cw->weight ? cw->weight->value : 0;
        sum += rc->weight;
        rcode = build_header_ops(c, "request_headers_to_add", cw->request_headers_to_add,
                                 cw->n_request_headers_to_add, "request_headers_to_remove",
                                 cw->request_headers_to_remove, cw->n_request_headers_to_remove,
                                 &rc->request_ops);
        if (rcode == 0)
            rcode = build_header_ops(c, "response_headers_to_add", cw->response_headers_to_add,
                                     cw->n_response_headers_to_add, "response_headers_to_remove",
                                     cw->response_headers_to_remove,
                                     cw->n_response_headers_to_remove, &rc->response_ops);
        if (rcode)
            return rcode;
    }
    if (sum == 0)
        return fail(c, "weighted_clusters: the total weight is 0");
    /* route_pick_cluster scales a 32-bit random value by the total: keep the product in 64 bits. */
    if (sum > UINT32_MAX)
        return fail(c, "weighted_clusters: the total weight %llu is over %u",
                    (unsigned long long)sum, UINT32_MAX);
    if (w->total_weight && w->total_weight->value && w->total_weight->value != sum)
        return fail(c, "weighted_clusters: the weights add up to %llu, not total_weight %u",
                    (unsigned long long)sum, w->total_weight->value);
    r->total_weight = sum;
    return 0;
}

static int build_retry(build_ctx_t *c, const retry_msg_t *p, route_entry_t *r)
{
    if (p == NULL)
        return 0;
    r->retry_on = strdup(p->retry_on ? p->retry_on : "");
    if (r->retry_on == NULL)
        return oom(c);
    r->retry_num = p->num_retries ? p->num_retries->value : ROUTE_DEFAULT_NUM_RETRIES;
    r->per_try_timeout_ms = config_duration_ms(p->per_try_timeout, 0);
    return 0;
}

static int build_action(build_ctx_t *c, const action_msg_t *a, route_entry_t *r)
{
    r->action = ROUTE_ACTION_ROUTE;
    int rc;
    switch (a->cluster_specifier_case) {
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER:
        r->clusters = calloc(1, sizeof(*r->clusters));
        if (r->clusters == NULL)
            return oom(c);
        r->n_clusters = 1;
        r->clusters[0].name = strdup(a->cluster ? a->cluster : "");
        r->clusters[0].weight = 1;
        r->total_weight = 1;
        rc = resolve_cluster(c, "route", &r->clusters[0]);
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS:
        rc = build_weighted(c, a->weighted_clusters, r);
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER_HEADER:
        return fail(c, "cluster_header is not supported");
    default:
        return fail(c, "route: one of cluster or weighted_clusters is required");
    }
    if (rc)
        return rc;
    if (a->regex_rewrite)
        return fail(c, "regex_rewrite is not supported");
    switch (a->host_rewrite_specifier_case) {
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL:
        if (a->host_rewrite_literal && a->host_rewrite_literal[0]) {
            r->host_rewrite = strdup(a->host_rewrite_literal);
            if (r->host_rewrite == NULL)
                return oom(c);
        }
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_AUTO_HOST_REWRITE:
        r->auto_host_rewrite = a->auto_host_rewrite && a->auto_host_rewrite->value;
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_HEADER:
        return fail(c, "host_rewrite_header is not supported");
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_PATH_REGEX:
        return fail(c, "host_rewrite_path_regex is not supported");
    default:
        break;
    }
    if (a->prefix_rewrite && a->prefix_rewrite[0]) {
        r->prefix_rewrite = strdup(a->prefix_rewrite);
        if (r->prefix_rewrite == NULL)
            return oom(c);
    }
    for (size_t i = 0; i < a->n_upgrade_configs; i++) {
        const Envoy__Config__Route__V3__RouteAction__UpgradeConfig *u = a->upgrade_configs[i];
        if (u->enabled && !u->enabled->value)
            continue;
        if (u->upgrade_type == NULL || strcasecmp(u->upgrade_type, "CONNECT") != 0)
            return fail(c, "upgrade_configs: only CONNECT is supported per route");
        if (u->connect_config == NULL)
            return fail(c, "upgrade_configs: CONNECT needs connect_config (forwarding CONNECT "
                           "to an upstream proxy is not supported)");
        if (u->connect_config->allow_post)
            return fail(c, "upgrade_configs: connect_config.allow_post is not supported");
        r->connect_terminate = true;
    }
    switch (a->cluster_not_found_response_code) {
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_NOT_FOUND_RESPONSE_CODE__NOT_FOUND:
        r->cluster_not_found_status = 404;
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_NOT_FOUND_RESPONSE_CODE__INTERNAL_SERVER_ERROR:
        r->cluster_not_found_status = 500;
        break;
    default:
        r->cluster_not_found_status = 503;
        break;
    }
    r->timeout_ms = config_duration_ms(a->timeout, ROUTE_DEFAULT_TIMEOUT_MS);
    r->has_idle_timeout = a->idle_timeout != NULL;
    r->idle_timeout_ms = config_duration_ms(a->idle_timeout, 0);
    return build_retry(c, a->retry_policy, r);
}

/* Reads a DataSource body the way Envoy does at load time, capped at c->max_body bytes. */
static int read_body(build_ctx_t *c, const Envoy__Config__Core__V3__DataSource *ds,
                     route_entry_t *r)
{
    const char *data = NULL;
    size_t len = 0;
    char *owned = NULL;
    switch (ds->specifier_case) {
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
        data = ds->inline_string ? ds->inline_string : "";
        len = strlen(data);
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
        data = (const char *)ds->inline_bytes.data;
        len = ds->inline_bytes.len;
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE:
        data = getenv(ds->environment_variable ? ds->environment_variable : "");
        if (data == NULL)
            return fail(c, "direct_response: body: environment variable '%s' is not set",
                        ds->environment_variable ? ds->environment_variable : "");
        len = strlen(data);
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME: {
        int fd = open(ds->filename ? ds->filename : "", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return fail(c, "direct_response: body: cannot open '%s': %s",
                        ds->filename ? ds->filename : "", strerror(errno));
        /* One byte over the limit is enough to know the file is too big. */
        owned = malloc((size_t)c->max_body + 1);
        if (owned == NULL) {
            close(fd);
            return oom(c);
        }
        while (len <= c->max_body) {
            ssize_t n = read(fd, owned + len, (size_t)c->max_body + 1 - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                int e = errno;
                close(fd);
                free(owned);
                return fail(c, "direct_response: body: cannot read '%s': %s", ds->filename,
                            strerror(e));
            }
            if (n == 0)
                break;
            len += (size_t)n;
        }
        close(fd);
        data = owned;
        break;
    }
    default:
        return 0; /* no body */
    }
    if (len > c->max_body) {
        free(owned);
        return fail(c,
                    "direct_response: body is %s%zu bytes; the maximum is %u "
                    "(max_direct_response_body_size_bytes)",
                    owned ? "over " : "", owned ? (size_t)c->max_body : len, c->max_body);
    }
    r->direct_body = malloc(len + 1);
    if (r->direct_body == NULL) {
        free(owned);
        return oom(c);
    }
    if (len)
        memcpy(r->direct_body, data, len);
    r->direct_body[len] = '\0';
    r->direct_body_len = len;
    free(owned);
    return 0;
}

static int build_route(build_ctx_t *c, const route_msg_t *m, const retry_msg_t *vhost_retry,
                       route_entry_t *r)
{
    r->name = strdup(m->name ? m->name : "");
    if (r->name == NULL)
        return oom(c);
    int rc = build_match(c, m->match, r);
    if (rc)
        return rc;
    switch (m->action_case) {
    case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE:
        rc = build_action(c, m->route, r);
        if (rc == 0 && r->match_kind == ROUTE_MATCH_CONNECT && !r->connect_terminate)
            rc = fail(c, "connect_matcher routes need upgrade_configs CONNECT with "
                         "connect_config");
        if (rc == 0 && m->route->retry_policy == NULL)
            rc = build_retry(c, vhost_retry, r);
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_DIRECT_RESPONSE: {
        const Envoy__Config__Route__V3__DirectResponseAction *d = m->direct_response;
        r->action = ROUTE_ACTION_DIRECT_RESPONSE;
        if (d->status < 200 || d->status > 599)
            return fail(c, "direct_response: status %u is outside 200-599", d->status);
        r->direct_status = d->status;
        if (d->body)
            rc = read_body(c, d->body, r);
        break;
    }
    case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_REDIRECT:
        return fail(c, "redirect is not supported yet");
    case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_FILTER_ACTION:
        return fail(c, "filter_action is not supported");
    case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_NON_FORWARDING_ACTION:
        return fail(c, "non_forwarding_action is not supported");
    default:
        return fail(c, "the route has no action (route, redirect or direct_response)");
    }
    if (rc)
        return rc;
    rc = build_header_ops(c, "request_headers_to_add", m->request_headers_to_add,
                          m->n_request_headers_to_add, "request_headers_to_remove",
                          m->request_headers_to_remove, m->n_request_headers_to_remove,
                          &r->request_ops);
    if (rc == 0)
        rc = build_header_ops(c, "response_headers_to_add", m->response_headers_to_add,
                              m->n_response_headers_to_add, "response_headers_to_remove",
                              m->response_headers_to_remove, m->n_response_headers_to_remove,
                              &r->response_ops);
    if (rc == 0)
        rc = build_filter_configs(c, (void *const *)m->typed_per_filter_config,
                                  m->n_typed_per_filter_config, &r->filter_configs);
    return rc;
}

static int build_vhost(build_ctx_t *c, size_t idx, const vhost_msg_t *m, route_vhost_t *v)
{
    if (m->name == NULL || m->name[0] == '\0') {
        snprintf(c->where, sizeof(c->where), "virtual_host %zu", idx);
        return fail(c, "name is required");
    }
    snprintf(c->where, sizeof(c->where), "virtual_host '%s'", m->name);
    v->name = strdup(m->name);
    if (v->name == NULL)
        return oom(c);
    if (m->n_domains == 0)
        return fail(c, "domains is empty");
    v->domains = calloc(m->n_domains, sizeof(*v->domains));
    if (v->domains == NULL)
        return oom(c);
    v->n_domains = m->n_domains;
    for (size_t i = 0; i < m->n_domains; i++) {
        v->domains[i] = lower_dup(m->domains[i]);
        if (v->domains[i] == NULL)
            return oom(c);
        if (v->domains[i][0] == '\0')
            return fail(c, "domains[%zu] is empty", i);
    }
    v->require_tls = (route_tls_t)m->require_tls;
    if (v->require_tls > ROUTE_TLS_ALL)
        return fail(c, "unknown require_tls %d", (int)m->require_tls);
    int rc = build_header_ops(c, "request_headers_to_add", m->request_headers_to_add,
                              m->n_request_headers_to_add, "request_headers_to_remove",
                              m->request_headers_to_remove, m->n_request_headers_to_remove,
                              &v->request_ops);
    if (rc == 0)
        rc = build_header_ops(c, "response_headers_to_add", m->response_headers_to_add,
                              m->n_response_headers_to_add, "response_headers_to_remove",
                              m->response_headers_to_remove, m->n_response_headers_to_remove,
                              &v->response_ops);
    if (rc == 0)
        rc = build_filter_configs(c, (void *const *)m->typed_per_filter_config,
                                  m->n_typed_per_filter_config, &v->filter_configs);
    if (rc)
        return rc;
    if (m->n_routes) {
        v->routes = calloc(m->n_routes, sizeof(*v->routes));
        if (v->routes == NULL)
            return oom(c);
        v->n_routes = m->n_routes;
    }
    for (size_t i = 0; i < m->n_routes; i++) {
        const route_msg_t *rm = m->routes[i];
        if (rm->name && rm->name[0])
            snprintf(c->where, sizeof(c->where), "virtual_host '%s': route %zu ('%s')", m->name, i,
                     rm->name);
        else
            snprintf(c->where, sizeof(c->where), "virtual_host '%s': route %zu", m->name, i);
        rc = build_route(c, rm, m->retry_policy, &v->routes[i]);
        if (rc)
            return rc;
    }
    c->where[0] = '\0';
    return 0;
}

/* Builds the table; validate_default is validate_clusters when the config leaves it unset. */
static int build_table(const rc_msg_t *m, const snapshot_t *snap, bool validate_default,
                       route_table_t **out, char *err, size_t errlen)
{
    build_ctx_t c = {.snap = snap, .err = err, .errlen = errlen};
    *out = NULL;
    if (m == NULL) {
        snprintf(err, errlen, "route_config is missing");
        return -EINVAL;
    }
    c.validate_clusters = m->validate_clusters ? m->validate_clusters->value : validate_default;
    c.max_body = m->max_direct_response_body_size_bytes
                     ? m->max_direct_response_body_size_bytes->value
                     : ROUTE_DEFAULT_MAX_DIRECT_BODY;

    route_table_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return oom(&c);
    int rc = 0;
    t->name = strdup(m->name ? m->name : "");
    if (t->name == NULL) {
        rc = oom(&c);
        goto fail;
    }
    t->most_specific_header_mutations_wins = m->most_specific_header_mutations_wins;
    t->ignore_port_in_host_matching = m->ignore_port_in_host_matching;
    rc = build_header_ops(&c, "request_headers_to_add", m->request_headers_to_add,
                          m->n_request_headers_to_add, "request_headers_to_remove",
                          m->request_headers_to_remove, m->n_request_headers_to_remove,
                          &t->request_ops);
    if (rc == 0)
        rc = build_header_ops(&c, "response_headers_to_add", m->response_headers_to_add,
                              m->n_response_headers_to_add, "response_headers_to_remove",
                              m->response_headers_to_remove, m->n_response_headers_to_remove,
                              &t->response_ops);
    if (rc == 0)
        rc = build_filter_configs(&c, (void *const *)m->typed_per_filter_config,
                                  m->n_typed_per_filter_config, &t->filter_configs);
    if (rc)
        goto fail;
    if (m->n_internal_only_headers) {
        t->internal_only_headers = calloc(m->n_internal_only_headers, sizeof(char *));
        if (t->internal_only_headers == NULL) {
            rc = oom(&c);
            goto fail;
        }
        t->n_internal_only = m->n_internal_only_headers;
    }
    for (size_t i = 0; i < m->n_internal_only_headers; i++) {
        t->internal_only_headers[i] = lower_dup(m->internal_only_headers[i]);
        if (t->internal_only_headers[i] == NULL) {
            rc = oom(&c);
            goto fail;
        }
    }
    if (m->n_virtual_hosts) {
        t->vhosts = calloc(m->n_virtual_hosts, sizeof(*t->vhosts));
        if (t->vhosts == NULL) {
            rc = oom(&c);
            goto fail;
        }
        t->n_vhosts = m->n_virtual_hosts;
    }
    for (size_t i = 0; i < m->n_virtual_hosts; i++) {
        rc = build_vhost(&c, i, m->virtual_hosts[i], &t->vhosts[i]);
        if (rc)
            goto fail;
    }
    rc = route_index_domains(t, err, errlen);
    if (rc)
        goto fail;
    *out = t;
    return 0;

fail:
    route_table_free(t);
    return rc;
}

int route_table_build(const void *route_config, const snapshot_t *snap, route_table_t **out,
                      char *err, size_t errlen)
{
    /* Envoy's default for a route table defined in place (route_config): a route to a cluster
     * the config does not have is an error unless validate_clusters is false. */
    return build_table(route_config, snap, true, out, err, errlen);
}

int route_table_build_rds(const void *route_config, const snapshot_t *snap, route_table_t **out,
                          char *err, size_t errlen)
{
    /* Envoy's default for one from RDS: the clusters may come later. */
    return build_table(route_config, snap, false, out, err, errlen);
}
