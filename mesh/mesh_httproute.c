/* HTTPRoute (gateway.networking.k8s.io/v1, v1beta1) as GAMMA, the Gateway API's mesh profile,
 * reads it: the Service parents, and per rule the matches (path, exact headers, method), the
 * weighted Service backends and the request timeout. A match the mesh cannot express (a
 * regular expression, query parameters) fails the document rather than match more than it
 * says; filters are noted and not applied. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mesh/mesh_internal.h"

/* The Gateway API's limit on a backend's weight. */
#define ROUTE_WEIGHT_MAX 1000000
/* ... and on a rule's backends. */
#define ROUTE_BACKENDS_MAX 16

/* group "" or "core" (the core API group, as the Gateway API spells it both ways). */
static bool core_group(const char *group)
{
    return group == NULL || group[0] == '\0' || strcmp(group, "core") == 0;
}

/* ---- parentRefs ----------------------------------------------------------------------------- */

/* A parentRef: *svc says whether it is a Service (GAMMA); out is filled only then. */
static int read_parent(mesh_reader_t *rd, yaml_node_t *p, mesh_route_parent_t *out, bool *svc)
{
    const char *group, *kind, *ns;
    int rc = mesh_rd_str(rd, p, "group", false, &group);
    if (rc == 0)
        rc = mesh_rd_str(rd, p, "kind", false, &kind);
    if (rc == 0)
        rc = mesh_rd_str(rd, p, "namespace", false, &ns);
    if (rc == 0)
        rc = mesh_rd_str(rd, p, "name", true, &out->name);
    if (rc == 0)
        rc = mesh_rd_port(rd, p, "port", false, &out->port);
    if (rc == 0)
        rc = mesh_rd_str(rd, p, "sectionName", false, &out->section);
    if (rc < 0)
        return rc;
    /* The API's default parent is a Gateway (group gateway.networking.k8s.io, kind Gateway). */
    *svc = kind != NULL && strcmp(kind, "Service") == 0 && group != NULL && core_group(group);
    if (!*svc) {
        mesh_rd_note(rd, "parent %s %s is not a Service: ignored (only mesh routes are read)",
                     kind ? kind : "Gateway", out->name);
        return 0;
    }
    out->ns = ns ? ns : rd->obj->meta.ns;
    mesh_rd_hash(rd, "namespace", out->ns);
    return 0;
}

static int read_parents(mesh_reader_t *rd, yaml_node_t *spec, mesh_http_route_t *r)
{
    yaml_node_t *seq;
    if (mesh_rd_seq(rd, spec, "parentRefs", &seq) < 0)
        return -EINVAL;
    size_t n = seq ? (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start) : 0;
    if ((r->parents = mesh_alloc(rd->obj, n * sizeof(*r->parents))) == NULL)
        return mesh_rd_nomem(rd);
    size_t top = mesh_rd_push(rd, "parentRefs");
    for (size_t i = 0; i < n; i++) {
        size_t mark;
        yaml_node_t *item = mesh_rd_item(rd, seq, i, &mark);
        if (item == NULL || item->type != YAML_MAPPING_NODE)
            return mesh_rd_fail(rd, "must be a mapping");
        bool svc;
        int rc = read_parent(rd, item, &r->parents[r->nparents], &svc);
        if (rc < 0)
            return rc;
        if (svc)
            r->nparents++;
        else
            r->ignored_parents++;
        mesh_rd_pop(rd, mark);
    }
    mesh_rd_pop(rd, top);
    return 0;
}

/* ---- matches -------------------------------------------------------------------------------- */

static int read_header(mesh_reader_t *rd, yaml_node_t *h, void *out)
{
    static const char *const types[] = {"Exact"};
    mesh_route_header_t *hm = out;
    int type;
    int rc = mesh_rd_enum(rd, h, "type", types, 1, 0, &type);
    if (rc == 0)
        rc = mesh_rd_str(rd, h, "name", true, &hm->name);
    if (rc == 0)
        rc = mesh_rd_str(rd, h, "value", true, &hm->value);
    if (rc == 0 && hm->name[0] == '\0')
        rc = mesh_rd_fail_at(rd, "name", "must not be empty");
    return rc;
}

static int read_match(mesh_reader_t *rd, yaml_node_t *m, void *out)
{
    static const char *const path_types[] = {"PathPrefix", "Exact"};
    static const char *const methods[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                          "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    mesh_route_match_t *rm = out;
    yaml_node_t *path, *query;
    int type = MESH_PATH_PREFIX, method = -1;
    int rc = mesh_rd_map(rd, m, "path", &path);
    if (rc == 0 && path) {
        size_t mark = mesh_rd_push(rd, "path");
        rc = mesh_rd_enum(rd, path, "type", path_types, 2, MESH_PATH_PREFIX, &type);
        if (rc == 0)
            rc = mesh_rd_str(rd, path, "value", false, &rm->path);
        if (rc == 0 && rm->path && rm->path[0] != '/')
            rc = mesh_rd_fail_at(rd, "value", "\"%.64s\" does not start with /", rm->path);
        if (rc == 0)
            mesh_rd_pop(rd, mark);
    }
    if (rc == 0)
        rc = mesh_rd_maps(rd, m, "headers", sizeof(mesh_route_header_t), read_header,
                          (void **)&rm->headers, &rm->nheaders);
    if (rc == 0)
        rc = mesh_rd_enum(rd, m, "method", methods, sizeof(methods) / sizeof(methods[0]), -1,
                          &method);
    if (rc == 0)
        rc = mesh_rd_seq(rd, m, "queryParams", &query);
    if (rc == 0 && query && query->data.sequence.items.top != query->data.sequence.items.start)
        rc = mesh_rd_fail_at(rd, "queryParams", "not supported");
    if (rc < 0)
        return rc;
    rm->path_type = (mesh_path_type_t)type;
    if (rm->path == NULL) {
        rm->path = "/";
        mesh_rd_hash(rd, "path", rm->path);
    }
    rm->method = method >= 0 ? methods[method] : NULL;
    return 0;
}

/* ---- backends and timeouts ------------------------------------------------------------------ */

static int read_backend(mesh_reader_t *rd, yaml_node_t *b, void *out)
{
    mesh_route_backend_t *be = out;
    const char *group, *kind;
    long weight;
    int rc = mesh_rd_str(rd, b, "group", false, &group);
    if (rc == 0)
        rc = mesh_rd_str(rd, b, "kind", false, &kind);
    if (rc == 0)
        rc = mesh_rd_str(rd, b, "namespace", false, &be->ns);
    if (rc == 0)
        rc = mesh_rd_str(rd, b, "name", true, &be->name);
    if (rc == 0)
        rc = mesh_rd_port(rd, b, "port", false, &be->port);
    if (rc == 0)
        rc = mesh_rd_uint(rd, b, "weight", 0, ROUTE_WEIGHT_MAX, 1, &weight);
    if (rc < 0)
        return rc;
    be->weight = (uint32_t)weight;
    be->service = core_group(group) && (kind == NULL || strcmp(kind, "Service") == 0);
    if (!be->service)
        mesh_rd_note(rd, "backend %s %s is not a Service: its share of requests fails (500)",
                     kind ? kind : "Service", be->name);
    if (be->ns == NULL) {
        be->ns = rd->obj->meta.ns;
        mesh_rd_hash(rd, "namespace", be->ns);
    }
    return 0;
}

/* A Gateway API Duration: 1 to 4 of <1-5 digits><h|m|s|ms> ("1h30m", "500ms", "0s"); ms in
 * *out, capped at UINT32_MAX. False when the text is not one. */
static bool parse_duration(const char *s, uint32_t *out)
{
    uint64_t total = 0;
    int parts = 0;
    while (*s) {
        uint64_t v = 0;
        int digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 6) {
            v = v * 10 + (uint64_t)(*s++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 5 || ++parts > 4)
            return false;
        if (s[0] == 'm' && s[1] == 's') {
            s += 2;
        } else if (*s == 'h' || *s == 'm' || *s == 's') {
            v *= *s == 'h' ? 3600000 : *s == 'm' ? 60000 : 1000;
            s++;
        } else {
            return false;
        }
        total += v;
    }
    if (parts == 0)
        return false;
    *out = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
    return true;
}

static int read_timeouts(mesh_reader_t *rd, yaml_node_t *rule, mesh_route_rule_t *out)
{
    yaml_node_t *t;
    const char *req;
    if (mesh_rd_map(rd, rule, "timeouts", &t) < 0)
        return -EINVAL;
    if (t == NULL)
        return 0;
    size_t mark = mesh_rd_push(rd, "timeouts");
    int rc = mesh_rd_str(rd, t, "request", false, &req);
    if (rc == 0 && req && !parse_duration(req, &out->timeout_ms))
        rc = mesh_rd_fail_at(rd, "request", "\"%.64s\" is not a duration (1h, 30s, 500ms, ...)",
                             req);
    if (rc < 0)
        return rc;
    out->has_timeout = req != NULL;
    mesh_rd_pop(rd, mark);
    return 0;
}

static int read_rule(mesh_reader_t *rd, yaml_node_t *r, void *out)
{
    mesh_route_rule_t *rule = out;
    yaml_node_t *filters;
    int rc = mesh_rd_maps(rd, r, "matches", sizeof(mesh_route_match_t), read_match,
                          (void **)&rule->matches, &rule->nmatches);
    if (rc == 0)
        rc = mesh_rd_maps(rd, r, "backendRefs", sizeof(mesh_route_backend_t), read_backend,
                          (void **)&rule->backends, &rule->nbackends);
    /* the API's limit, which also keeps a rule's total weight within 32 bits */
    if (rc == 0 && rule->nbackends > ROUTE_BACKENDS_MAX)
        rc = mesh_rd_fail_at(rd, "backendRefs", "%zu backends; at most %d", rule->nbackends,
                             ROUTE_BACKENDS_MAX);
    if (rc == 0)
        rc = read_timeouts(rd, r, rule);
    if (rc == 0)
        rc = mesh_rd_seq(rd, r, "filters", &filters);
    if (rc == 0 && filters &&
        filters->data.sequence.items.top != filters->data.sequence.items.start)
        mesh_rd_note(rd, "filters are not applied");
    return rc;
}

int mesh_read_http_route(mesh_reader_t *rd, yaml_node_t *root)
{
    mesh_http_route_t *r = &rd->obj->route;
    yaml_node_t *spec;
    if (mesh_rd_map(rd, root, "spec", &spec) < 0)
        return -EINVAL;
    if (spec == NULL)
        return mesh_rd_fail_at(rd, "spec", "missing");
    size_t mark = mesh_rd_push(rd, "spec");
    int rc = read_parents(rd, spec, r);
    if (rc == 0)
        rc = mesh_rd_maps(rd, spec, "rules", sizeof(mesh_route_rule_t), read_rule,
                          (void **)&r->rules, &r->nrules);
    if (rc < 0)
        return rc;
    mesh_rd_pop(rd, mark);
    return 0;
}
