/* libFuzzer harness for the manifest reader: any bytes as a file of Kubernetes manifests. The
 * result must agree with itself (an error reported exactly when the code says so, every object
 * named, a second reading the same), the index must take the objects in and give them all
 * back, and the same bytes as watch-event lines must feed the recorded-API source. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static void check_read(const mesh_read_t *r, int rc)
{
    CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    CHECK(rc != 0 || r->report.nerrors == 0);
    CHECK(rc != -EINVAL || r->report.nerrors > 0);
    for (size_t i = 0; i < r->count; i++) {
        const mesh_object_t *o = r->objects[i];
        CHECK((unsigned)o->meta.kind < MESH_KIND_COUNT);
        CHECK(o->meta.name && o->meta.name[0] && o->meta.ns && o->meta.uid);
        CHECK((o->meta.kind == MESH_NAMESPACE) == (o->meta.ns[0] == '\0'));
        if (o->meta.kind == MESH_SERVICE)
            for (size_t p = 0; p < o->svc.nports; p++)
                CHECK(o->svc.ports[p].port > 0 && (o->svc.ports[p].target_port > 0) !=
                                                      (o->svc.ports[p].target_port_name != NULL));
        if (o->meta.kind == MESH_HTTP_ROUTE) {
            for (size_t p = 0; p < o->route.nparents; p++)
                CHECK(o->route.parents[p].ns && o->route.parents[p].name);
            for (size_t i = 0; i < o->route.nrules; i++) {
                const mesh_route_rule_t *rule = &o->route.rules[i];
                for (size_t m = 0; m < rule->nmatches; m++)
                    CHECK(rule->matches[m].path && rule->matches[m].path[0] == '/');
                for (size_t b = 0; b < rule->nbackends; b++)
                    CHECK(rule->backends[b].ns && rule->backends[b].name &&
                          rule->backends[b].weight <= 1000000);
            }
        }
    }
}

static void index_round_trip(const mesh_read_t *r)
{
    mesh_index_t *idx = mesh_index_new();
    mesh_batch_t add = {0}, del = {0};
    if (idx == NULL)
        return;
    for (size_t i = 0; i < r->count; i++)
        if (mesh_batch_add(&add, MESH_ADDED, r->objects[i]) < 0 ||
            mesh_batch_add(&del, MESH_DELETED, r->objects[i]) < 0)
            goto out;
    mesh_changes_t ch;
    if (mesh_index_apply(idx, &add, &ch) < 0)
        goto out;
    CHECK(ch.events.count <= r->count);
    mesh_changes_free(&ch);
    size_t n, held = 0;
    for (int k = 0; k < MESH_KIND_COUNT; k++) {
        mesh_object_t *const *list = mesh_index_list(idx, (mesh_kind_t)k, &n);
        for (size_t i = 1; i < n; i++)
            CHECK(mesh_object_cmp(list[i - 1], list[i]) < 0);
        held += n;
    }
    mesh_object_t *const *svcs = mesh_index_list(idx, MESH_SERVICE, &n);
    for (size_t i = 0; i < n; i++) {
        size_t m;
        const mesh_endpoint_t *eps =
            mesh_index_endpoints(idx, svcs[i]->meta.ns, svcs[i]->meta.name, &m);
        for (size_t e = 1; e < m; e++)
            CHECK(strcmp(eps[e - 1].address, eps[e].address) < 0);
        if (svcs[i]->svc.cluster_ip && !svcs[i]->svc.headless)
            CHECK(mesh_index_service_by_ip(idx, svcs[i]->svc.cluster_ip) != NULL);
    }
    if (mesh_index_apply(idx, &del, &ch) == 0) {
        CHECK(ch.events.count == held);
        for (int k = 0; k < MESH_KIND_COUNT; k++) {
            mesh_index_list(idx, (mesh_kind_t)k, &n);
            CHECK(n == 0);
        }
        mesh_changes_free(&ch);
    }
out:
    mesh_batch_free(&add);
    mesh_batch_free(&del);
    mesh_index_free(idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    mesh_read_t r, again;
    int rc = mesh_read_buffer("fuzz.yaml", text, size, &r);
    check_read(&r, rc);
    int rc2 = mesh_read_buffer("fuzz.yaml", text, size, &again);
    if (rc != -ENOMEM && rc2 != -ENOMEM) {
        CHECK(rc == rc2 && r.count == again.count);
        for (size_t i = 0; i < r.count; i++)
            CHECK(mesh_object_same(r.objects[i], again.objects[i]));
    }
    mesh_read_free(&again);
    index_round_trip(&r);
    mesh_read_free(&r);

    mesh_api_t *api = mesh_api_new();
    mesh_batch_t b = {0};
    mesh_report_t rep = {0};
    if (api) {
        rc = mesh_api_watch(api, "fuzz.jsonl", text, size, &b, &rep);
        CHECK(rc == 0 || rc == -EINVAL || rc == -EPROTO || rc == -ENOMEM);
        CHECK(rc == 0 || rc == -ENOMEM || rep.nerrors > 0);
        mesh_batch_free(&b);
        rc = mesh_api_list(api, MESH_SERVICE, "fuzz.json", text, size, &b, &rep);
        CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
        mesh_batch_free(&b);
        mesh_report_free(&rep);
        mesh_api_free(api);
    }
    return 0;
}
