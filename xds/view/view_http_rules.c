/* The rules of routes attached to a service (the Gateway API's HTTPRoute with a Service parent,
 * GAMMA): on the service's virtual hosts they replace the default route, one Envoy route per
 * match, in the Gateway API's precedence, to one cluster, to weighted clusters, or a 500 when
 * no backend can take the requests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/view/view_internal.h"

/* A match of a rule: rule index in the service's rules, match index (n_matches 0: the implicit
 * prefix "/"). */
typedef struct rule_ref {
    const view_http_rule_t *rule;
    size_t ri, mi;
} rule_ref_t;

static const view_route_match_t match_all = {.path_type = VIEW_PATH_PREFIX, .path = "/"};

static const view_route_match_t *ref_match(const rule_ref_t *r)
{
    return r->rule->n_matches ? &r->rule->matches[r->mi] : &match_all;
}

static const char *match_path(const view_route_match_t *m)
{
    return m->path ? m->path : "/";
}

/* The Gateway API's order: an exact path before a prefix, a longer path before a shorter, a
 * method before none, more header matches before fewer; then the routes' order and the rules'
 * (the registry lists them so), then the matches'. */
static int ref_cmp(const void *x, const void *y)
{
    const rule_ref_t *a = x, *b = y;
    const view_route_match_t *ma = ref_match(a), *mb = ref_match(b);
    if (ma->path_type != mb->path_type)
        return ma->path_type == VIEW_PATH_EXACT ? -1 : 1;
    size_t la = strlen(match_path(ma)), lb = strlen(match_path(mb));
    if (la != lb)
        return la > lb ? -1 : 1;
    if ((ma->method != NULL) != (mb->method != NULL))
        return ma->method ? -1 : 1;
    if (ma->n_headers != mb->n_headers)
        return ma->n_headers > mb->n_headers ? -1 : 1;
    if (a->ri != b->ri)
        return a->ri < b->ri ? -1 : 1;
    return a->mi < b->mi ? -1 : a->mi > b->mi;
}

static bool rule_on_port(const view_http_rule_t *r, uint16_t port)
{
    return r->port == 0 || r->port == port;
}

bool vr_on_port(const view_builder_t *b, size_t si, size_t pi)
{
    const view_service_t *s = b->svcs[si];
    if (!view_proto_http(s->ports[pi].protocol))
        return false;
    for (size_t i = 0; i < s->n_http_rules; i++)
        if (rule_on_port(&s->http_rules[i], s->ports[pi].port))
            return true;
    return false;
}

/* The service backend be sends to (its index in b->svcs), or -1 when it cannot take requests:
 * not a service of the registry, or without the port (*port: the one it is sent to). */
static int backend_target(const view_builder_t *b, const view_backend_t *be, uint16_t vh_port,
                          uint16_t *port)
{
    *port = be->port ? be->port : vh_port;
    int ti = be->invalid ? -1 : vb_find_service(b, be->namespace_, be->name);
    if (ti < 0)
        return -1;
    const view_service_t *t = b->svcs[ti];
    for (size_t p = 0; p < t->n_ports; p++)
        if (t->ports[p].port == *port)
            return ti;
    return -1;
}

void vr_input(const view_builder_t *b, size_t si, view_input_t *in)
{
    const view_service_t *s = b->svcs[si];
    vin_u64(in, s->n_http_rules);
    for (size_t i = 0; i < s->n_http_rules; i++) {
        const view_http_rule_t *r = &s->http_rules[i];
        vin_u64(in, r->port);
        vin_u64(in, r->has_timeout);
        vin_u64(in, r->timeout_ms);
        vin_str(in, r->route_ns);
        vin_str(in, r->route_name);
        vin_u64(in, r->rule_index);
        vin_u64(in, r->n_matches);
        for (size_t m = 0; m < r->n_matches; m++) {
            const view_route_match_t *rm = &r->matches[m];
            vin_u64(in, rm->path_type);
            vin_str(in, rm->path);
            vin_str(in, rm->method);
            vin_u64(in, rm->n_headers);
            for (size_t h = 0; h < rm->n_headers; h++) {
                vin_str(in, rm->headers[h].name);
                vin_str(in, rm->headers[h].value);
            }
        }
        vin_u64(in, r->n_backends);
        for (size_t k = 0; k < r->n_backends; k++) {
            const view_backend_t *be = &r->backends[k];
            vin_str(in, be->namespace_);
            vin_str(in, be->name);
            vin_u64(in, be->port);
            vin_u64(in, be->weight);
            vin_u64(in, be->invalid);
            /* what the backend resolves to: its host, kind and ports */
            int ti = be->invalid ? -1 : vb_find_service(b, be->namespace_, be->name);
            vin_str(in, ti < 0 ? NULL : b->hosts[ti]);
            if (ti < 0)
                continue;
            const view_service_t *t = b->svcs[ti];
            vin_u64(in, t->kind);
            vin_u64(in, t->n_ports);
            for (size_t p = 0; p < t->n_ports; p++)
                vin_u64(in, t->ports[p].port);
        }
    }
}

bool vr_grpc_differs(const view_builder_t *b, size_t si)
{
    const view_service_t *s = b->svcs[si];
    for (size_t i = 0; i < s->n_http_rules; i++)
        for (size_t k = 0; k < s->http_rules[i].n_backends; k++) {
            const view_backend_t *be = &s->http_rules[i].backends[k];
            int ti = be->invalid ? -1 : vb_find_service(b, be->namespace_, be->name);
            if (ti >= 0 && view_grpc_own_cluster(b->svcs[ti]))
                return true;
        }
    return false;
}

static void cluster_name(const view_builder_t *b, int ti, uint16_t port, bool grpc, char *buf,
                         size_t cap)
{
    if (grpc && view_grpc_own_cluster(b->svcs[ti]))
        snprintf(buf, cap, VIEW_GRPC_CLUSTER_FMT, port, b->hosts[ti]);
    else
        snprintf(buf, cap, "outbound|%u||%s", port, b->hosts[ti]);
}

static void write_match(pbw_t *w, const view_route_match_t *m)
{
    pbw_begin(w, "match");
    pbw_string(w, m->path_type == VIEW_PATH_EXACT ? "path" : "prefix", match_path(m));
    for (size_t h = 0; h < m->n_headers; h++) {
        pbw_begin(w, "headers");
        pbw_string(w, "name", m->headers[h].name);
        pbw_begin(w, "string_match");
        pbw_string(w, "exact", m->headers[h].value);
        pbw_end(w);
        pbw_end(w);
    }
    if (m->method) {
        pbw_begin(w, "headers");
        pbw_string(w, "name", ":method");
        pbw_begin(w, "string_match");
        pbw_string(w, "exact", m->method);
        pbw_end(w);
        pbw_end(w);
    }
    pbw_end(w);
}

/* The action of rule r on a virtual host of port vh_port: its backends of weight > 0 that can
 * take requests; none: a 500, as the Gateway API asks of a rule without a valid backend. */
static void write_action(const view_builder_t *b, pbw_t *w, const view_http_rule_t *r,
                         uint16_t vh_port, bool grpc)
{
    char buf[600];
    size_t live = 0, last = 0;
    uint16_t port;
    for (size_t k = 0; k < r->n_backends; k++)
        if (r->backends[k].weight && backend_target(b, &r->backends[k], vh_port, &port) >= 0) {
            live++;
            last = k;
        }
    if (live == 0) {
        pbw_begin(w, "direct_response");
        pbw_uint(w, "status", 500);
        pbw_end(w);
        return;
    }
    pbw_begin(w, "route");
    if (live == 1) {
        int ti = backend_target(b, &r->backends[last], vh_port, &port);
        cluster_name(b, ti, port, grpc, buf, sizeof(buf));
        pbw_string(w, "cluster", buf);
    } else {
        pbw_begin(w, "weighted_clusters");
        for (size_t k = 0; k < r->n_backends; k++) {
            int ti = backend_target(b, &r->backends[k], vh_port, &port);
            if (r->backends[k].weight == 0 || ti < 0)
                continue;
            cluster_name(b, ti, port, grpc, buf, sizeof(buf));
            pbw_begin(w, "clusters");
            pbw_string(w, "name", buf);
            pbw_wrapped(w, "weight", r->backends[k].weight);
            pbw_end(w);
        }
        pbw_end(w);
    }
    if (r->has_timeout)
        pbw_duration_ms(w, "timeout", r->timeout_ms);
    pbw_end(w);
}

int vr_write(const view_builder_t *b, pbw_t *w, size_t si, size_t pi, bool grpc)
{
    const view_service_t *s = b->svcs[si];
    uint16_t port = s->ports[pi].port;
    size_t n = 0;
    for (size_t i = 0; i < s->n_http_rules; i++)
        if (rule_on_port(&s->http_rules[i], port))
            n += s->http_rules[i].n_matches ? s->http_rules[i].n_matches : 1;
    rule_ref_t stack[64], *refs = n <= 64 ? stack : calloc(n, sizeof(*refs));
    if (refs == NULL)
        return -ENOMEM;
    n = 0;
    for (size_t i = 0; i < s->n_http_rules; i++) {
        const view_http_rule_t *r = &s->http_rules[i];
        if (!rule_on_port(r, port))
            continue;
        for (size_t m = 0; m < (r->n_matches ? r->n_matches : 1); m++)
            refs[n++] = (rule_ref_t){r, i, m};
    }
    qsort(refs, n, sizeof(*refs), ref_cmp);
    for (size_t k = 0; k < n; k++) {
        const view_http_rule_t *r = refs[k].rule;
        char name[600];
        snprintf(name, sizeof(name), "%s.%s.%u.%zu", r->route_ns ? r->route_ns : "",
                 r->route_name ? r->route_name : "", r->rule_index, refs[k].mi);
        pbw_begin(w, "routes");
        pbw_string(w, "name", name);
        write_match(w, ref_match(&refs[k]));
        write_action(b, w, r, port, grpc);
        pbw_end(w);
    }
    if (refs != stack)
        free(refs);
    return 0;
}
