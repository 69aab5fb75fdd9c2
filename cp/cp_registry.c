/* One pass over the index per rebuild. Memory comes from a chain of blocks freed whole; strings
 * made here (workload names) live there too. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp/cp_registry.h"

typedef struct cp_reg_block {
    struct cp_reg_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} cp_reg_block_t;

static void *alloc(cp_registry_t *r, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    cp_reg_block_t *b = r->blocks;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->next = r->blocks;
        b->used = 0;
        b->cap = cap;
        r->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

static char *copy(cp_registry_t *r, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = alloc(r, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static view_protocol_t protocol_of(mesh_app_proto_t p)
{
    switch (p) {
    case MESH_PROTO_HTTP:
    case MESH_PROTO_GRPC_WEB:
        return VIEW_PROTO_HTTP;
    case MESH_PROTO_HTTP2:
        return VIEW_PROTO_HTTP2;
    case MESH_PROTO_GRPC:
        return VIEW_PROTO_GRPC;
    case MESH_PROTO_HTTPS:
        return VIEW_PROTO_HTTPS;
    case MESH_PROTO_TLS:
        return VIEW_PROTO_TLS;
    case MESH_PROTO_TCP:
    case MESH_PROTO_MONGO:
    case MESH_PROTO_MYSQL:
    case MESH_PROTO_REDIS:
        return VIEW_PROTO_TCP;
    default:
        return VIEW_PROTO_UNKNOWN;
    }
}

static view_mtls_t mtls_of(const char *s)
{
    if (s == NULL)
        return VIEW_MTLS_MESH;
    if (strcmp(s, "strict") == 0 || strcmp(s, "STRICT") == 0)
        return VIEW_MTLS_STRICT;
    if (strcmp(s, "permissive") == 0 || strcmp(s, "PERMISSIVE") == 0)
        return VIEW_MTLS_PERMISSIVE;
    if (strcmp(s, "off") == 0 || strcmp(s, "DISABLE") == 0 || strcmp(s, "disable") == 0)
        return VIEW_MTLS_OFF;
    return VIEW_MTLS_MESH;
}

static const char *label(const mesh_labels_t *l, const char *key)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return l->items[i].value;
    return NULL;
}

void cp_registry_workload_name(const mesh_object_t *pod, char *out, size_t outlen)
{
    const mesh_meta_t *m = &pod->meta;
    for (size_t i = 0; i < m->nowners; i++) {
        const mesh_owner_ref_t *o = &m->owners[i];
        if (o->kind == NULL || o->name == NULL)
            continue;
        size_t n = strlen(o->name);
        const char *hash = strrchr(o->name, '-');
        if (strcmp(o->kind, "ReplicaSet") == 0 && hash && hash != o->name)
            n = (size_t)(hash - o->name); /* web-7f9c6d -> web */
        snprintf(out, outlen, "%.*s", (int)n, o->name);
        return;
    }
    snprintf(out, outlen, "%s", m->name);
}

/* The port an endpoint listens on for service port sp: the endpoint's port of the same name (the
 * endpoints controller resolves named target ports per pod and names ports as the Service
 * does), else the service's numeric target port, else the port itself. */
static uint16_t endpoint_port(const mesh_endpoint_t *e, const mesh_svc_port_t *sp)
{
    for (size_t i = 0; i < e->nports; i++)
        if (e->ports[i].port && strcmp(e->ports[i].name, sp->name) == 0)
            return e->ports[i].port;
    if (e->nports == 1 && e->ports[0].port && sp->name[0] == '\0')
        return e->ports[0].port;
    return sp->target_port ? sp->target_port : sp->port;
}

static int fill_service(cp_registry_t *r, mesh_index_t *idx, const mesh_object_t *o,
                        view_service_t *out)
{
    const mesh_service_t *svc = &o->svc;
    out->namespace_ = o->meta.ns;
    out->name = o->meta.name;
    if (svc->type == MESH_SVC_EXTERNAL_NAME) {
        if (svc->external_name == NULL)
            return 1;
        out->kind = VIEW_SVC_EXTERNAL_NAME;
        out->external_name = svc->external_name;
    } else if (svc->headless) {
        out->kind = VIEW_SVC_HEADLESS;
    } else if (svc->cluster_ip && strcmp(svc->cluster_ip, "None") != 0) {
        out->kind = VIEW_SVC_CLUSTER_IP;
        out->vip = svc->cluster_ip;
    } else {
        return 1; /* no cluster IP yet */
    }
    /* TCP ports only: the sidecar captures TCP. */
    size_t *which = alloc(r, (svc->nports + 1) * sizeof(*which)), n = 0;
    view_port_t *ports = alloc(r, (svc->nports + 1) * sizeof(*ports));
    if (which == NULL || ports == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < svc->nports; i++) {
        const mesh_svc_port_t *sp = &svc->ports[i];
        if (sp->protocol != MESH_L4_TCP)
            continue;
        which[n] = i;
        ports[n] = (view_port_t){.port = sp->port,
                                 .name = sp->name[0] ? sp->name : NULL,
                                 .protocol = protocol_of(sp->mesh_protocol),
                                 .target_port = sp->target_port};
        n++;
    }
    if (n == 0)
        return 1;
    out->ports = ports;
    out->n_ports = n;
    size_t neps = 0;
    const mesh_endpoint_t *eps = mesh_index_endpoints(idx, o->meta.ns, o->meta.name, &neps);
    view_endpoint_t *ve = alloc(r, (neps + 1) * sizeof(*ve));
    const char **sas = alloc(r, (neps + 1) * sizeof(*sas));
    if (ve == NULL || sas == NULL)
        return -ENOMEM;
    size_t nsas = 0;
    for (size_t i = 0; i < neps; i++) {
        const mesh_endpoint_t *e = &eps[i];
        uint16_t *pp = alloc(r, n * sizeof(*pp));
        if (pp == NULL)
            return -ENOMEM;
        for (size_t k = 0; k < n; k++)
            pp[k] = endpoint_port(e, &svc->ports[which[k]]);
        const char *sa = NULL;
        if (e->target.kind && strcmp(e->target.kind, "Pod") == 0 && e->target.name) {
            const mesh_object_t *pod = mesh_index_get(
                idx, MESH_POD, e->target.ns ? e->target.ns : o->meta.ns, e->target.name);
            if (pod)
                sa = pod->pod.service_account;
        }
        if (sa == NULL) {
            const mesh_object_t *pod = mesh_index_pod_by_ip(idx, e->address);
            if (pod && strcmp(pod->meta.ns, o->meta.ns) == 0)
                sa = pod->pod.service_account;
        }
        ve[i] = (view_endpoint_t){.address = e->address,
                                  .ports = pp,
                                  .ready = e->ready && !e->terminating,
                                  .zone = e->zone,
                                  .service_account = sa};
        bool seen = sa == NULL;
        for (size_t k = 0; k < nsas && !seen; k++)
            seen = strcmp(sas[k], sa) == 0;
        if (!seen)
            sas[nsas++] = sa;
    }
    out->endpoints = ve;
    out->n_endpoints = neps;
    out->service_accounts = sas;
    out->n_service_accounts = nsas;
    return 0;
}

static int fill_workload(cp_registry_t *r, const mesh_object_t *o, view_workload_t *out)
{
    const mesh_pod_t *pod = &o->pod;
    if (pod->pod_ip == NULL || pod->phase == MESH_POD_SUCCEEDED || pod->phase == MESH_POD_FAILED)
        return 1;
    char wl[256];
    cp_registry_workload_name(o, wl, sizeof(wl));
    view_port_t *ports = alloc(r, (pod->nports + 1) * sizeof(*ports));
    view_label_t *labels = alloc(r, (o->meta.labels.count + 1) * sizeof(*labels));
    char *name = copy(r, wl);
    if (ports == NULL || labels == NULL || name == NULL)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < pod->nports; i++) {
        const mesh_container_port_t *cp = &pod->ports[i];
        if (cp->protocol != MESH_L4_TCP)
            continue;
        ports[n++] = (view_port_t){
            .port = cp->container_port,
            .name = cp->name,
            .protocol = protocol_of(mesh_port_protocol(cp->protocol, NULL, cp->name))};
    }
    for (size_t i = 0; i < o->meta.labels.count; i++)
        labels[i] = (view_label_t){o->meta.labels.items[i].key, o->meta.labels.items[i].value};
    *out = (view_workload_t){.namespace_ = o->meta.ns,
                             .name = o->meta.name,
                             .ip = pod->pod_ip,
                             .service_account = pod->service_account,
                             .workload_name = name,
                             .ports = ports,
                             .n_ports = n,
                             .labels = labels,
                             .n_labels = o->meta.labels.count};
    return 0;
}

/* A pod that declares no container port (most do not) still takes the ports its Services send
 * to: each ready endpoint's port joins its workload's ports, with the Service port's protocol,
 * as Istio builds inbound chains from the Services that select a pod. */
typedef struct extra_port {
    struct extra_port *next;
    view_port_t port;
} extra_port_t;

static int wl_by_ip_cmp(const void *a, const void *b)
{
    return strcmp((*(const view_workload_t *const *)a)->ip,
                  (*(const view_workload_t *const *)b)->ip);
}

/* Whether w declares port or has it already from a Service (x). A declared port whose name says
 * nothing of its protocol (most are unnamed) takes the Service port's (proto), as Istio reads
 * the protocol of an inbound port from the Services that send to it: a gRPC Service's pods get
 * an HTTP/2 inbound cluster without naming their container ports. */
static bool has_port(view_workload_t *w, const extra_port_t *x, uint16_t port,
                     view_protocol_t proto)
{
    for (size_t i = 0; i < w->n_ports; i++)
        if (w->ports[i].port == port) {
            if (w->ports[i].protocol == VIEW_PROTO_UNKNOWN)
                ((view_port_t *)w->ports)[i].protocol = proto;
            return true;
        }
    for (; x; x = x->next)
        if (x->port.port == port)
            return true;
    return false;
}

static int add_service_ports(cp_registry_t *r)
{
    size_t nw = r->reg.n_workloads;
    if (nw == 0)
        return 0;
    view_workload_t **by_ip = alloc(r, nw * sizeof(*by_ip));
    extra_port_t **extra = alloc(r, nw * sizeof(*extra));
    if (by_ip == NULL || extra == NULL)
        return -ENOMEM;
    view_workload_t *wl = (view_workload_t *)r->reg.workloads;
    for (size_t i = 0; i < nw; i++)
        by_ip[i] = &wl[i];
    qsort(by_ip, nw, sizeof(*by_ip), wl_by_ip_cmp);
    for (size_t s = 0; s < r->reg.n_services; s++) {
        const view_service_t *svc = &r->reg.services[s];
        for (size_t e = 0; e < svc->n_endpoints; e++) {
            const view_endpoint_t *ep = &svc->endpoints[e];
            view_workload_t key = {.ip = ep->address}, *kp = &key;
            view_workload_t **hit = bsearch(&kp, by_ip, nw, sizeof(*by_ip), wl_by_ip_cmp);
            if (hit == NULL || !ep->ready)
                continue;
            size_t w = (size_t)(*hit - wl);
            for (size_t k = 0; k < svc->n_ports; k++) {
                uint16_t port = ep->ports && ep->ports[k]   ? ep->ports[k]
                                : svc->ports[k].target_port ? svc->ports[k].target_port
                                                            : svc->ports[k].port;
                if (has_port(&wl[w], extra[w], port, svc->ports[k].protocol))
                    continue;
                extra_port_t *x = alloc(r, sizeof(*x));
                if (x == NULL)
                    return -ENOMEM;
                x->port = (view_port_t){
                    .port = port, .name = svc->ports[k].name, .protocol = svc->ports[k].protocol};
                x->next = extra[w];
                extra[w] = x;
            }
        }
    }
    for (size_t w = 0; w < nw; w++) {
        if (extra[w] == NULL)
            continue;
        size_t n = wl[w].n_ports;
        for (const extra_port_t *x = extra[w]; x; x = x->next)
            n++;
        view_port_t *ports = alloc(r, n * sizeof(*ports));
        if (ports == NULL)
            return -ENOMEM;
        memcpy(ports, wl[w].ports, wl[w].n_ports * sizeof(*ports));
        n = wl[w].n_ports;
        for (const extra_port_t *x = extra[w]; x; x = x->next)
            ports[n++] = x->port;
        wl[w].ports = ports;
        wl[w].n_ports = n;
    }
    return 0;
}

/* ---- HTTPRoutes (GAMMA) --------------------------------------------------------------------- */

static int svc_key_cmp(const void *key, const void *item)
{
    const view_service_t *a = key, *b = item;
    int c = strcmp(a->namespace_, b->namespace_);
    return c ? c : strcmp(a->name, b->name);
}

/* The rules of route o as the view takes them (port 0: set per parent), in out (o->route.nrules
 * of them). */
static int route_rules(cp_registry_t *r, const mesh_object_t *o, view_http_rule_t *out)
{
    const mesh_http_route_t *hr = &o->route;
    for (size_t i = 0; i < hr->nrules; i++) {
        const mesh_route_rule_t *mr = &hr->rules[i];
        view_route_match_t *m = alloc(r, (mr->nmatches + 1) * sizeof(*m));
        view_backend_t *be = alloc(r, (mr->nbackends + 1) * sizeof(*be));
        if (m == NULL || be == NULL)
            return -ENOMEM;
        for (size_t k = 0; k < mr->nmatches; k++) {
            const mesh_route_match_t *mm = &mr->matches[k];
            view_header_match_t *h = alloc(r, (mm->nheaders + 1) * sizeof(*h));
            if (h == NULL)
                return -ENOMEM;
            for (size_t j = 0; j < mm->nheaders; j++)
                h[j] = (view_header_match_t){mm->headers[j].name, mm->headers[j].value};
            m[k] = (view_route_match_t){
                .path_type = mm->path_type == MESH_PATH_EXACT ? VIEW_PATH_EXACT : VIEW_PATH_PREFIX,
                .path = mm->path,
                .headers = h,
                .n_headers = mm->nheaders,
                .method = mm->method};
        }
        for (size_t k = 0; k < mr->nbackends; k++) {
            const mesh_route_backend_t *mb = &mr->backends[k];
            be[k] = (view_backend_t){.namespace_ = mb->ns,
                                     .name = mb->name,
                                     .port = mb->port,
                                     .weight = mb->weight,
                                     .invalid = !mb->service};
        }
        out[i] = (view_http_rule_t){.matches = m,
                                    .n_matches = mr->nmatches,
                                    .backends = be,
                                    .n_backends = mr->nbackends,
                                    .has_timeout = mr->has_timeout,
                                    .timeout_ms = mr->timeout_ms,
                                    .route_ns = o->meta.ns,
                                    .route_name = o->meta.name,
                                    .rule_index = (uint32_t)i};
    }
    return 0;
}

/* The service parent p names in svcs[0..n) (sorted by namespace and name), and the port it
 * attaches to (*port, 0: every port); NULL when there is no such service or port. */
static view_service_t *parent_service(view_service_t *svcs, size_t n, const mesh_route_parent_t *p,
                                      uint16_t *port)
{
    view_service_t key = {.namespace_ = p->ns, .name = p->name};
    view_service_t *s = n ? bsearch(&key, svcs, n, sizeof(*svcs), svc_key_cmp) : NULL;
    *port = p->port;
    if (s == NULL || p->section == NULL)
        return s;
    for (size_t i = 0; i < s->n_ports; i++)
        if (s->ports[i].name && strcmp(s->ports[i].name, p->section) == 0 &&
            (p->port == 0 || p->port == s->ports[i].port)) {
            *port = s->ports[i].port;
            return s;
        }
    return NULL;
}

/* Gives the services of r the rules of the HTTPRoutes whose parent they are, in the routes'
 * order (namespace, then name). */
static int fill_routes(cp_registry_t *r, mesh_index_t *idx)
{
    size_t nroutes, n = r->reg.n_services;
    mesh_object_t *const *routes = mesh_index_list(idx, MESH_HTTP_ROUTE, &nroutes);
    view_service_t *svcs = (view_service_t *)r->reg.services;
    if (nroutes == 0 || n == 0)
        return 0;
    size_t *count = alloc(r, n * sizeof(*count));
    if (count == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < nroutes; i++)
        for (size_t k = 0; k < routes[i]->route.nparents; k++) {
            uint16_t port;
            view_service_t *s = parent_service(svcs, n, &routes[i]->route.parents[k], &port);
            if (s)
                count[s - svcs] += routes[i]->route.nrules;
        }
    for (size_t j = 0; j < n; j++)
        if (count[j] &&
            (svcs[j].http_rules = alloc(r, count[j] * sizeof(view_http_rule_t))) == NULL)
            return -ENOMEM;
    for (size_t i = 0; i < nroutes; i++) {
        const mesh_http_route_t *hr = &routes[i]->route;
        view_http_rule_t *rules = alloc(r, (hr->nrules + 1) * sizeof(*rules));
        if (rules == NULL || route_rules(r, routes[i], rules) < 0)
            return -ENOMEM;
        for (size_t k = 0; k < hr->nparents; k++) {
            uint16_t port;
            view_service_t *s = parent_service(svcs, n, &hr->parents[k], &port);
            if (s == NULL)
                continue;
            view_http_rule_t *to = (view_http_rule_t *)s->http_rules + s->n_http_rules;
            for (size_t j = 0; j < hr->nrules; j++) {
                to[j] = rules[j];
                to[j].port = port;
            }
            s->n_http_rules += hr->nrules;
        }
    }
    return 0;
}

int cp_registry_fill(mesh_index_t *idx, const view_mesh_t *mesh, cp_registry_t *out)
{
    memset(out, 0, sizeof(*out));
    out->reg.mesh = *mesh;
    size_t nns, nsvc, npod;
    mesh_object_t *const *nss = mesh_index_list(idx, MESH_NAMESPACE, &nns);
    mesh_object_t *const *svcs = mesh_index_list(idx, MESH_SERVICE, &nsvc);
    mesh_object_t *const *pods = mesh_index_list(idx, MESH_POD, &npod);
    view_namespace_t *vns = alloc(out, (nns + 1) * sizeof(*vns));
    view_service_t *vsvc = alloc(out, (nsvc + 1) * sizeof(*vsvc));
    view_workload_t *vwl = alloc(out, (npod + 1) * sizeof(*vwl));
    if (vns == NULL || vsvc == NULL || vwl == NULL)
        goto oom;
    size_t n = 0;
    for (size_t i = 0; i < nns; i++) {
        view_mtls_t m = mtls_of(label(&nss[i]->meta.annotations, CP_MTLS_ANNOTATION));
        if (m != VIEW_MTLS_MESH)
            vns[n++] = (view_namespace_t){.name = nss[i]->meta.name, .mtls = m};
    }
    out->reg.namespaces = vns;
    out->reg.n_namespaces = n;
    n = 0;
    for (size_t i = 0; i < nsvc; i++) {
        int rc = fill_service(out, idx, svcs[i], &vsvc[n]);
        if (rc < 0)
            goto oom;
        if (rc == 0)
            n++;
        else
            out->skipped_services++;
    }
    out->reg.services = vsvc;
    out->reg.n_services = n;
    n = 0;
    for (size_t i = 0; i < npod; i++) {
        int rc = fill_workload(out, pods[i], &vwl[n]);
        if (rc < 0)
            goto oom;
        n += rc == 0;
    }
    out->reg.workloads = vwl;
    out->reg.n_workloads = n;
    if (add_service_ports(out) < 0 || fill_routes(out, idx) < 0)
        goto oom;
    return 0;
oom:
    cp_registry_free(out);
    return -ENOMEM;
}

void cp_registry_free(cp_registry_t *r)
{
    cp_reg_block_t *b = r->blocks;
    while (b) {
        cp_reg_block_t *next = b->next;
        free(b);
        b = next;
    }
    memset(r, 0, sizeof(*r));
}
