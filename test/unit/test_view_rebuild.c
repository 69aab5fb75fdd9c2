/* The view's rebuild (xds/view/, given the view it replaces) against a build from nothing: after
 * each change of a long series (endpoints added, removed, not ready; services added and
 * removed; ports added; a namespace's mTLS mode changed; workloads added and removed; in a
 * registry whose order shuffles as it changes), both views hold the same groups and the same
 * resources, byte for byte, and the rebuild shares prev's blob of every resource whose bytes
 * did not change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xds/view/view.h"

#define MAX_SVCS  48
#define MAX_EPS   6
#define MAX_PORTS 3
#define MAX_WLS   32
#define N_NS      4

typedef struct tsvc {
    char name[16], vip[20], ext[32];
    char addr[MAX_EPS][20], zone[MAX_EPS][8], sa[MAX_EPS][8];
    view_port_t ports[MAX_PORTS];
    view_endpoint_t eps[MAX_EPS];
    view_service_t s;
} tsvc_t;

typedef struct twl {
    char name[16], ip[20];
    view_port_t ports[2];
    view_workload_t w;
} twl_t;

/* The registry as the tests change it: services and workloads in slots, added at the end and
 * removed by moving the last one in, so the registry's order is not the view's. */
typedef struct model {
    uint32_t rng;
    unsigned next_id;
    tsvc_t svcs[MAX_SVCS];
    size_t n_svcs;
    twl_t wls[MAX_WLS];
    size_t n_wls;
    view_namespace_t ns[N_NS];
    view_service_t reg_svcs[MAX_SVCS];
    view_workload_t reg_wls[MAX_WLS];
    view_registry_t reg;
} model_t;

static const char *const ns_names[N_NS] = {"default", "shop", "pay", "ops"};
static const view_port_t port_choices[] = {
    {80, "http", VIEW_PROTO_HTTP, 8080},  {9000, "tcp", VIEW_PROTO_TCP, 0},
    {8080, "grpc", VIEW_PROTO_GRPC, 0},   {443, "https", VIEW_PROTO_HTTPS, 8443},
    {15014, NULL, VIEW_PROTO_UNKNOWN, 0},
};
#define N_PORT_CHOICES (sizeof(port_choices) / sizeof(port_choices[0]))

static uint32_t rnd(model_t *m, uint32_t n)
{
    m->rng = m->rng * 1103515245u + 12345u;
    return (m->rng >> 8) % n;
}

static void add_endpoint(model_t *m, tsvc_t *t)
{
    size_t e = t->s.n_endpoints;
    if (e == MAX_EPS)
        return;
    unsigned id = m->next_id++;
    snprintf(t->addr[e], sizeof(t->addr[e]), "198.18.%u.%u", id / 250, id % 250 + 1);
    snprintf(t->zone[e], sizeof(t->zone[e]), "z%u", rnd(m, 3));
    snprintf(t->sa[e], sizeof(t->sa[e]), "sa%u", rnd(m, 2));
    t->eps[e] = (view_endpoint_t){t->addr[e], NULL, rnd(m, 5) != 0, rnd(m, 4) ? t->zone[e] : NULL,
                                  rnd(m, 4) ? t->sa[e] : NULL};
    t->s.n_endpoints++;
}

static void add_service(model_t *m)
{
    if (m->n_svcs == MAX_SVCS)
        return;
    tsvc_t *t = &m->svcs[m->n_svcs++];
    memset(t, 0, sizeof(*t));
    unsigned id = m->next_id++;
    snprintf(t->name, sizeof(t->name), "svc%u", id);
    snprintf(t->vip, sizeof(t->vip), "198.19.%u.%u", id / 250, id % 250 + 1);
    snprintf(t->ext, sizeof(t->ext), "ext%u.example.com", id);
    uint32_t k = rnd(m, 10);
    t->s.namespace_ = ns_names[rnd(m, N_NS)];
    t->s.name = t->name;
    t->s.kind = k < 7 ? VIEW_SVC_CLUSTER_IP : k < 9 ? VIEW_SVC_HEADLESS : VIEW_SVC_EXTERNAL_NAME;
    t->s.vip = t->vip;
    t->s.external_name = t->ext;
    t->ports[0] = port_choices[rnd(m, N_PORT_CHOICES)];
    t->s.ports = t->ports;
    t->s.n_ports = 1;
    t->s.endpoints = t->eps;
    if (t->s.kind != VIEW_SVC_EXTERNAL_NAME)
        for (uint32_t n = rnd(m, 4); n; n--)
            add_endpoint(m, t);
}

static void add_workload(model_t *m)
{
    if (m->n_wls == MAX_WLS)
        return;
    twl_t *t = &m->wls[m->n_wls++];
    unsigned id = m->next_id++;
    snprintf(t->name, sizeof(t->name), "pod%u", id);
    snprintf(t->ip, sizeof(t->ip), "198.18.200.%u", id % 250 + 1);
    t->ports[0] = port_choices[rnd(m, N_PORT_CHOICES)];
    t->ports[1] = port_choices[rnd(m, N_PORT_CHOICES)];
    if (t->ports[1].port == t->ports[0].port)
        t->ports[1].port++;
    t->w = (view_workload_t){ns_names[rnd(m, N_NS)], t->name, t->ip, "sa0", "app", t->ports,
                             1 + rnd(m, 2),          NULL,    0};
}

/* The registry of the model now (pointing into m). */
static const view_registry_t *registry(model_t *m)
{
    for (size_t i = 0; i < m->n_svcs; i++)
        m->reg_svcs[i] = m->svcs[i].s;
    for (size_t i = 0; i < m->n_wls; i++)
        m->reg_wls[i] = m->wls[i].w;
    m->reg = (view_registry_t){
        .mesh = {.trust_domain = "cluster.local",
                 .mtls = VIEW_MTLS_PERMISSIVE,
                 .outbound_port = 15001,
                 .inbound_port = 15006,
                 .inbound_source = "127.0.0.6"},
        .namespaces = m->ns,
        .n_namespaces = N_NS,
        .services = m->reg_svcs,
        .n_services = m->n_svcs,
        .workloads = m->reg_wls,
        .n_workloads = m->n_wls,
    };
    return &m->reg;
}

static void model_init(model_t *m, uint32_t seed)
{
    memset(m, 0, sizeof(*m));
    m->rng = seed;
    for (size_t i = 0; i < N_NS; i++)
        m->ns[i] = (view_namespace_t){ns_names[i], VIEW_MTLS_MESH};
    for (int i = 0; i < 24; i++)
        add_service(m);
    for (int i = 0; i < 12; i++)
        add_workload(m);
}

typedef enum {
    CH_ENDPOINT_ADDED,
    CH_ENDPOINT_REMOVED,
    CH_ENDPOINT_NOT_READY,
    CH_SERVICE_ADDED,
    CH_SERVICE_REMOVED,
    CH_PORT_ADDED,
    CH_MTLS_CHANGED,
    CH_WORKLOAD_ADDED,
    CH_WORKLOAD_REMOVED,
    CH_KINDS
} change_t;

static void change(model_t *m, change_t c)
{
    tsvc_t *t = m->n_svcs ? &m->svcs[rnd(m, (uint32_t)m->n_svcs)] : NULL;
    switch (c) {
    case CH_ENDPOINT_ADDED:
        if (t && t->s.kind != VIEW_SVC_EXTERNAL_NAME)
            add_endpoint(m, t);
        break;
    case CH_ENDPOINT_REMOVED:
        if (t && t->s.n_endpoints) {
            size_t e = rnd(m, (uint32_t)t->s.n_endpoints), last = --t->s.n_endpoints;
            memcpy(t->addr[e], t->addr[last], sizeof(t->addr[e]));
            memcpy(t->zone[e], t->zone[last], sizeof(t->zone[e]));
            memcpy(t->sa[e], t->sa[last], sizeof(t->sa[e]));
            t->eps[e] = t->eps[last];
            t->eps[e].address = t->addr[e];
            t->eps[e].zone = t->eps[last].zone ? t->zone[e] : NULL;
            t->eps[e].service_account = t->eps[last].service_account ? t->sa[e] : NULL;
        }
        break;
    case CH_ENDPOINT_NOT_READY:
        if (t && t->s.n_endpoints) {
            view_endpoint_t *e = &t->eps[rnd(m, (uint32_t)t->s.n_endpoints)];
            e->ready = !e->ready;
        }
        break;
    case CH_SERVICE_ADDED:
        add_service(m);
        break;
    case CH_SERVICE_REMOVED:
        if (t) {
            tsvc_t *last = &m->svcs[--m->n_svcs];
            if (t != last) {
                memcpy(t, last, sizeof(*t));
                t->s.name = t->name;
                t->s.vip = t->vip;
                t->s.external_name = t->ext;
                t->s.ports = t->ports;
                t->s.endpoints = t->eps;
                for (size_t e = 0; e < t->s.n_endpoints; e++) {
                    t->eps[e].address = t->addr[e];
                    t->eps[e].zone = last->eps[e].zone ? t->zone[e] : NULL;
                    t->eps[e].service_account = last->eps[e].service_account ? t->sa[e] : NULL;
                }
            }
        }
        break;
    case CH_PORT_ADDED:
        if (t && t->s.n_ports < MAX_PORTS) {
            view_port_t p = port_choices[rnd(m, N_PORT_CHOICES)];
            bool taken = false;
            for (size_t i = 0; i < t->s.n_ports; i++)
                taken |= t->ports[i].port == p.port;
            if (!taken)
                t->ports[t->s.n_ports++] = p;
        }
        break;
    case CH_MTLS_CHANGED: {
        view_namespace_t *n = &m->ns[rnd(m, N_NS)];
        n->mtls = (view_mtls_t)((n->mtls + 1) % 4);
        break;
    }
    case CH_WORKLOAD_ADDED:
        add_workload(m);
        break;
    case CH_WORKLOAD_REMOVED:
        if (m->n_wls) {
            twl_t *w = &m->wls[rnd(m, (uint32_t)m->n_wls)], *last = &m->wls[--m->n_wls];
            if (w != last) {
                memcpy(w, last, sizeof(*w));
                w->w.name = w->name;
                w->w.ip = w->ip;
                w->w.ports = w->ports;
            }
        }
        break;
    default:
        break;
    }
}

static view_t *build(const view_registry_t *reg, const view_t *prev)
{
    view_t *v = NULL;
    char err[256];
    if (view_build(reg, prev, &v, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    return v;
}

/* a and b hold the same groups and resources, byte for byte. */
static void assert_same_view(const view_t *a, const view_t *b, const char *step)
{
    if (a->n != b->n)
        fail_msg("%s: %zu groups rebuilt, %zu from nothing", step, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const view_group_t *ga = &a->groups[i], *gb = &b->groups[i];
        if (ga->kind != gb->kind || strcmp(ga->key, gb->key) != 0 || ga->n != gb->n ||
            ga->hash != gb->hash || strcmp(ga->type_url, gb->type_url) != 0)
            fail_msg("%s: group %d '%s' (%zu resources) differs from %d '%s' (%zu)", step,
                     (int)ga->kind, ga->key, ga->n, (int)gb->kind, gb->key, gb->n);
        for (size_t j = 0; j < ga->n; j++) {
            const view_resource_t *ra = &ga->v[j], *rb = &gb->v[j];
            if (strcmp(ra->name, rb->name) != 0 || strcmp(ra->type_url, rb->type_url) != 0 ||
                ra->blob->len != rb->blob->len || ra->blob->hash != rb->blob->hash ||
                memcmp(ra->blob->bytes, rb->blob->bytes, ra->blob->len) != 0)
                fail_msg("%s: group %d '%s': resource '%s' differs from '%s'", step, (int)ga->kind,
                         ga->key, ra->name, rb->name);
        }
    }
}

/* Every resource of v whose bytes are those of prev's resource of that group and name is
 * prev's blob; returns how many changed, came or went. */
static size_t assert_shares_prev(const view_t *v, const view_t *prev, const char *step)
{
    size_t changed = 0;
    for (size_t i = 0; i < v->n; i++) {
        const view_group_t *g = &v->groups[i];
        const view_group_t *pg = view_find_group(prev, g->kind, g->key);
        for (size_t j = 0; j < g->n; j++) {
            const view_resource_t *r = &g->v[j], *p = view_group_resource(pg, r->name);
            if (p && p->blob->len == r->blob->len &&
                memcmp(p->blob->bytes, r->blob->bytes, r->blob->len) == 0) {
                if (p->blob != r->blob)
                    fail_msg("%s: group %d '%s': '%s' unchanged but not shared", step, (int)g->kind,
                             g->key, r->name);
            } else {
                changed++;
            }
        }
    }
    for (size_t i = 0; i < prev->n; i++) {
        const view_group_t *pg = &prev->groups[i];
        const view_group_t *g = view_find_group(v, pg->kind, pg->key);
        for (size_t j = 0; j < pg->n; j++)
            changed += view_group_resource(g, pg->v[j].name) == NULL;
    }
    return changed;
}

static const char *const change_names[CH_KINDS] = {
    "endpoint added", "endpoint removed", "endpoint readiness",
    "service added",  "service removed",  "port added",
    "mTLS changed",   "workload added",   "workload removed",
};

/* Runs `steps` changes of kinds chosen by the seed, a rebuild and a build from nothing after
 * each; returns how many steps changed some resource. */
static size_t run_series(uint32_t seed, int steps, int only)
{
    static model_t m;
    model_init(&m, seed);
    view_t *prev = build(registry(&m), NULL);
    size_t changed_steps = 0;
    for (int s = 0; s < steps; s++) {
        change_t c = only >= 0 ? (change_t)only : (change_t)rnd(&m, CH_KINDS);
        change(&m, c);
        char step[96];
        snprintf(step, sizeof(step), "seed %u step %d (%s)", seed, s, change_names[c]);
        const view_registry_t *reg = registry(&m);
        view_t *inc = build(reg, prev);
        view_t *full = build(reg, NULL);
        assert_same_view(inc, full, step);
        changed_steps += assert_shares_prev(inc, prev, step) != 0;
        view_free(full);
        view_free(prev);
        prev = inc;
    }
    view_free(prev);
    return changed_steps;
}

static void test_rebuild_equals_a_build_from_nothing_after_each_kind_of_change(void **state)
{
    (void)state;
    for (int c = 0; c < CH_KINDS; c++) /* and the changes change something */
        if (run_series(7u + (uint32_t)c, 12, c) == 0)
            fail_msg("12 changes '%s' changed nothing", change_names[c]);
}

static void test_rebuild_equals_a_build_from_nothing_over_random_series(void **state)
{
    (void)state;
    for (uint32_t seed = 1; seed <= 6; seed++)
        assert_true(run_series(seed, 60, -1) > 30);
}

/* A view built from nothing and rebuilt with no change: every blob and group is prev's. */
static void test_rebuild_without_change_shares_everything(void **state)
{
    (void)state;
    static model_t m;
    model_init(&m, 99);
    view_t *a = build(registry(&m), NULL);
    view_t *b = build(registry(&m), a);
    assert_int_equal(assert_shares_prev(b, a, "no change"), 0);
    assert_same_view(a, b, "no change");
    view_free(a);
    view_free(b);
}

/* One endpoint not ready: exactly the assignments of that service change. */
static void test_endpoint_change_changes_only_its_services_assignments(void **state)
{
    (void)state;
    static model_t m;
    model_init(&m, 5);
    tsvc_t *t = NULL;
    for (size_t i = 0; i < m.n_svcs && t == NULL; i++)
        if (m.svcs[i].s.kind == VIEW_SVC_CLUSTER_IP && m.svcs[i].s.n_endpoints &&
            m.svcs[i].eps[0].ready)
            t = &m.svcs[i];
    assert_non_null(t);
    view_t *a = build(registry(&m), NULL);
    t->eps[0].ready = false;
    view_t *b = build(registry(&m), a);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "|%s.%s.svc.cluster.local", t->name, t->s.namespace_);
    size_t changed = 0;
    for (size_t i = 0; i < b->n; i++) {
        const view_group_t *g = &b->groups[i];
        const view_group_t *pg = view_find_group(a, g->kind, g->key);
        for (size_t j = 0; j < g->n; j++)
            if (view_group_resource(pg, g->v[j].name)->blob != g->v[j].blob) {
                changed++;
                assert_int_equal(g->kind, VIEW_GROUP_ENDPOINTS);
                assert_non_null(strstr(g->v[j].name, prefix));
            }
    }
    assert_true(changed >= 1 && changed <= 2 * t->s.n_ports);
    view_free(a);
    view_free(b);
}

/* A change that makes the registry one the view cannot express (a Service added with another's
 * host) is refused given prev as from nothing, with the same error, and prev still serves as
 * the base of the next rebuild. */
static void test_rebuild_refuses_what_a_build_from_nothing_refuses(void **state)
{
    (void)state;
    static model_t m;
    model_init(&m, 11);
    view_t *a = build(registry(&m), NULL);
    static char host[64];
    snprintf(host, sizeof(host), "%s.%s.svc.cluster.local", m.svcs[0].name, m.svcs[0].s.namespace_);
    add_service(&m);
    m.svcs[m.n_svcs - 1].s.host = host;
    m.svcs[m.n_svcs - 1].s.kind = m.svcs[0].s.kind;
    m.svcs[m.n_svcs - 1].s.n_ports = 1;
    m.svcs[m.n_svcs - 1].ports[0] = m.svcs[0].ports[0];
    char err_full[256] = "", err_inc[256] = "";
    view_t *v = NULL;
    assert_true(view_build(registry(&m), NULL, &v, err_full, sizeof(err_full)) < 0);
    assert_null(v);
    assert_true(view_build(registry(&m), a, &v, err_inc, sizeof(err_inc)) < 0);
    assert_null(v);
    assert_non_null(strstr(err_full, "made twice"));
    assert_string_equal(err_inc, err_full);
    m.n_svcs--; /* the change undone: the rebuild from a is a again */
    view_t *b = build(registry(&m), a);
    assert_int_equal(assert_shares_prev(b, a, "undone"), 0);
    view_free(a);
    view_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rebuild_equals_a_build_from_nothing_after_each_kind_of_change),
        cmocka_unit_test(test_rebuild_equals_a_build_from_nothing_over_random_series),
        cmocka_unit_test(test_rebuild_without_change_shares_everything),
        cmocka_unit_test(test_endpoint_change_changes_only_its_services_assignments),
        cmocka_unit_test(test_rebuild_refuses_what_a_build_from_nothing_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
