/* Micro-measurement of the control plane's view (xds/view/): the time of a full build of a
 * registry of S services (2 ports each, 5 endpoints each, in 10 namespaces, a workload per
 * service, permissive mTLS with one strict namespace, as test_view_snapshot.c's scale test)
 * and of a rebuild given the view it replaces after one change of each kind, and the heap a
 * view holds. It measures and prints; it never fails on a number.
 *
 *   build/bench/view [services [rounds [change]]]   defaults: 1000 services, 21 rounds, every
 *                                                   change (0-5, in the table's order)
 *
 * Profile one kind of rebuild with valgrind --tool=callgrind --toggle-collect=rebuild. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xds/view/view.h"

#define EPS 5
#define NS  10

typedef struct mesh {
    size_t n;
    char (*names)[32], (*vips)[32], (*ips)[EPS][32];
    char nss[NS][16];
    view_service_t *svcs;
    view_endpoint_t (*eps)[EPS];
    view_workload_t *wls;
    view_namespace_t ns_modes[2];
    view_registry_t reg;
} mesh_t;

static const view_port_t ports[] = {{80, "http", VIEW_PROTO_HTTP, 8080},
                                    {9000, "tcp", VIEW_PROTO_TCP, 9000}};
static const view_port_t ports3[] = {{80, "http", VIEW_PROTO_HTTP, 8080},
                                     {9000, "tcp", VIEW_PROTO_TCP, 9000},
                                     {8443, "grpc", VIEW_PROTO_GRPC, 8443}};
static const view_port_t pod_ports[] = {{8080, "http", VIEW_PROTO_HTTP, 0},
                                        {9000, "tcp", VIEW_PROTO_TCP, 0}};

/* A registry of n services, room for one more (new: mesh_free). */
static mesh_t *mesh_new(size_t n)
{
    mesh_t *m = calloc(1, sizeof(*m));
    size_t cap = n + 1;
    m->names = calloc(cap, sizeof(*m->names));
    m->vips = calloc(cap, sizeof(*m->vips));
    m->ips = calloc(cap, sizeof(*m->ips));
    m->svcs = calloc(cap, sizeof(*m->svcs));
    m->eps = calloc(cap, sizeof(*m->eps));
    m->wls = calloc(cap, sizeof(*m->wls));
    if (!m->names || !m->vips || !m->ips || !m->svcs || !m->eps || !m->wls)
        exit(1);
    for (size_t k = 0; k < NS; k++)
        snprintf(m->nss[k], sizeof(m->nss[k]), "ns%zu", k);
    for (size_t i = 0; i < cap; i++) {
        snprintf(m->names[i], sizeof(m->names[i]), "svc%zu", i);
        snprintf(m->vips[i], sizeof(m->vips[i]), "198.19.%zu.%zu", i / 250, i % 250 + 1);
        for (size_t e = 0; e < EPS; e++) {
            size_t k = i * EPS + e;
            snprintf(m->ips[i][e], sizeof(m->ips[i][e]), "198.18.%zu.%zu", k / 250 % 256,
                     k % 250 + 1);
            m->eps[i][e] = (view_endpoint_t){m->ips[i][e], NULL, true, e % 2 ? "zone-b" : "zone-a",
                                             m->names[i]};
        }
        m->svcs[i] = (view_service_t){.namespace_ = m->nss[i % NS],
                                      .name = m->names[i],
                                      .vip = m->vips[i],
                                      .ports = ports,
                                      .n_ports = 2,
                                      .endpoints = m->eps[i],
                                      .n_endpoints = EPS};
        m->wls[i] = (view_workload_t){m->nss[i % NS],
                                      m->names[i],
                                      m->ips[i][0],
                                      m->names[i],
                                      m->names[i],
                                      pod_ports,
                                      2,
                                      NULL,
                                      0};
    }
    m->ns_modes[0] = (view_namespace_t){"ns0", VIEW_MTLS_STRICT};
    m->ns_modes[1] = (view_namespace_t){"ns1", VIEW_MTLS_MESH};
    m->n = n;
    m->reg = (view_registry_t){
        .mesh = {.trust_domain = "cluster.local",
                 .mtls = VIEW_MTLS_PERMISSIVE,
                 .outbound_port = 15001,
                 .inbound_port = 15006,
                 .inbound_source = "127.0.0.6"},
        .namespaces = m->ns_modes,
        .n_namespaces = 2,
        .services = m->svcs,
        .n_services = n,
        .workloads = m->wls,
        .n_workloads = n,
    };
    return m;
}

static void mesh_free(mesh_t *m)
{
    free(m->names);
    free(m->vips);
    free(m->ips);
    free(m->svcs);
    free(m->eps);
    free(m->wls);
    free(m);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static view_t *build(const view_registry_t *reg, const view_t *prev)
{
    view_t *v = NULL;
    char err[256];
    if (view_build(reg, prev, &v, err, sizeof(err)) != 0) {
        fprintf(stderr, "view bench: %s\n", err);
        exit(1);
    }
    return v;
}

/* A rebuild alone: a function of its own for the profiler's toggle. */
static __attribute__((noinline)) view_t *rebuild(const view_registry_t *reg, const view_t *prev)
{
    return build(reg, prev);
}

static int dbl_cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* The change a rebuild is measured after: applied to m before the rebuild (round r), undone
 * after it. */
typedef enum { NONE, ENDPOINT, SERVICE, PORT, MTLS, FULL, KINDS } change_t;
static const char *const labels[] = {
    "nothing changed",
    "one endpoint not ready",
    "one Service added",
    "one port added to a Service",
    "a namespace's mTLS mode changed",
    "full build (no prev)",
};

static void apply(mesh_t *m, change_t c, size_t r, bool undo)
{
    size_t i = (r * 37) % m->n;
    switch (c) {
    case ENDPOINT:
        m->eps[i][r % EPS].ready = undo;
        break;
    case SERVICE: /* in each namespace in turn: where it sorts decides how much is hashed */
        m->svcs[m->n].namespace_ = m->nss[r % NS];
        m->wls[m->n].namespace_ = m->nss[r % NS];
        m->reg.n_services = m->n + !undo;
        break;
    case PORT:
        m->svcs[i].ports = undo ? ports : ports3;
        m->svcs[i].n_ports = undo ? 2 : 3;
        break;
    case MTLS:
        m->ns_modes[1].mtls = undo ? VIEW_MTLS_MESH : VIEW_MTLS_OFF;
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000;
    int rounds = argc > 2 ? atoi(argv[2]) : 21;
    int only = argc > 3 ? atoi(argv[3]) : -1;
    if (n == 0 || rounds <= 0) {
        fprintf(stderr, "usage: %s [services [rounds]]\n", argv[0]);
        return 2;
    }
    mesh_t *m = mesh_new(n);
    malloc_trim(0);
    size_t before = heap_in_use();
    double t0 = now_ms();
    view_t *base = build(&m->reg, NULL);
    double first = now_ms() - t0;
    size_t after = heap_in_use();
    size_t resources = 0, bytes = 0;
    for (size_t g = 0; g < base->n; g++)
        for (size_t j = 0; j < base->groups[g].n; j++, resources++)
            bytes += base->groups[g].v[j].blob->len;
    printf(
        "%zu services (2 ports, %d endpoints each), %zu workloads, %d namespaces: %zu groups, "
        "%zu resources, %zu bytes counted per group; heap of the view and its memo: %.1f MiB; the "
        "first build (a fresh process: cold heap and caches) %.1f ms\n\n",
        n, EPS, n, NS, base->n, resources, bytes, (double)(after - before) / (1 << 20), first);
    printf("| rebuild after | min (ms) | median (ms) | max (ms) |\n|---|---:|---:|---:|\n");
    double *t = calloc((size_t)rounds, sizeof(*t));
    for (change_t c = NONE; c < KINDS; c++) {
        if (only >= 0 && (int)c != only)
            continue;
        for (int r = 0; r < rounds; r++) {
            apply(m, c, (size_t)r, false);
            double t0 = now_ms();
            view_t *v = rebuild(&m->reg, c == FULL ? NULL : base);
            t[r] = now_ms() - t0;
            view_free(v);
            apply(m, c, (size_t)r, true);
        }
        qsort(t, (size_t)rounds, sizeof(*t), dbl_cmp);
        printf("| %s | %.2f | %.2f | %.2f |\n", labels[c], t[0], t[rounds / 2], t[rounds - 1]);
    }
    free(t);
    view_free(base);
    mesh_free(m);
    return 0;
}
