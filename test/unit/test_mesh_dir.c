/* The directory source: a scan becomes the events between what was served and what the files
 * hold; unchanged content yields nothing, a bad file keeps its last good objects, a removed
 * file removes its own, an object defined twice is served from its first place; and a mesh of
 * 1,000 Services, 5,000 endpoints and 5,000 Pods costs a few MiB, a change of one file only
 * that file's events. */
#include <errno.h>
#include <ftw.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "test/unit/test_mesh.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_mesh_dir.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    return nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes text to dir/name as editors and kubectl do: a new file renamed over the old. */
static void put(const char *name, const char *text)
{
    char path[512], tmp[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.put.tmp", dir);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static void drop(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(unlink(path), 0);
}

/* Scans d into a fresh batch b and report rep; returns the scan's code. */
static int scan(mesh_dir_t *d, mesh_batch_t *b, mesh_report_t *rep)
{
    mesh_batch_free(b);
    mesh_report_free(rep);
    return mesh_dir_scan(d, b, rep);
}

#define SVC(name, port)                                                                            \
    "kind: Service\nmetadata: {name: " name "}\nspec: {ports: [{port: " port "}]}\n"

static void test_mesh_dir_scans_manifests_sorted_and_not_recursively(void **state)
{
    (void)state;
    char sub[512];
    snprintf(sub, sizeof(sub), "%s/sub.yaml", dir);
    assert_int_equal(mkdir(sub, 0700), 0); /* a directory, even named like a manifest */
    put("sub.yaml/inner.yaml", SVC("inner", "1"));
    put("b.yaml", SVC("web", "80"));
    put("a.yml", "kind: Namespace\nmetadata: {name: shop}\n");
    put("c.json", "{\"kind\": \"Pod\", \"metadata\": {\"name\": \"p\"}, \"spec\": {}}");
    put("notes.txt", SVC("txt", "1"));
    put(".hidden.yaml", SVC("hidden", "1"));
    mesh_dir_t *d = mesh_dir_new(dir);
    mesh_batch_t b = {0};
    mesh_report_t rep = {0};
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 3);
    assert_int_equal(b.events[0].object->meta.kind, MESH_NAMESPACE); /* by kind, ns, name */
    assert_int_equal(b.events[1].object->meta.kind, MESH_SERVICE);
    assert_string_equal(b.events[1].object->meta.name, "web");
    assert_int_equal(b.events[2].object->meta.kind, MESH_POD);
    for (size_t i = 0; i < b.count; i++)
        assert_int_equal(b.events[i].type, MESH_ADDED);
    char want[512];
    snprintf(want, sizeof(want), "%s/b.yaml", dir);
    assert_string_equal(b.events[1].object->meta.file, want);
    assert_int_equal(rep.nerrors, 0);
    mesh_batch_free(&b);
    mesh_dir_free(d);
}

static void test_mesh_dir_unchanged_or_rewritten_with_the_same_content_yields_nothing(void **state)
{
    (void)state;
    put("a.yaml", SVC("web", "80") "---\n" SVC("api", "81"));
    mesh_dir_t *d = mesh_dir_new(dir);
    mesh_batch_t b = {0};
    mesh_report_t rep = {0};
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 2);
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 0);
    put("a.yaml", SVC("web", "80") "---\n" SVC("api", "81")); /* a new inode, same bytes */
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 0);
    /* other text, the same content: comments, order of documents and of keys */
    put("a.yaml", "# reordered\nkind: Service\nspec: {ports: [{port: 81}]}\nmetadata: {name: api}\n"
                  "---\n" SVC("web", "80"));
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 0);
    put("a.yaml", SVC("web", "80") "---\n" SVC("api", "82"));
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 1);
    assert_int_equal(b.events[0].type, MESH_MODIFIED);
    assert_string_equal(b.events[0].object->meta.name, "api");
    assert_int_equal(b.events[0].object->svc.ports[0].port, 82);
    mesh_batch_free(&b);
    mesh_dir_free(d);
}

static void test_mesh_dir_bad_file_keeps_its_last_good_objects(void **state)
{
    (void)state;
    put("a.yaml", SVC("web", "80") "---\n" SVC("api", "81"));
    mesh_dir_t *d = mesh_dir_new(dir);
    mesh_index_t *idx = mesh_index_new();
    mesh_batch_t b = {0};
    mesh_report_t rep = {0};
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(mesh_index_apply(idx, &b, NULL), 0);
    /* the second document breaks, and the first changes: neither is served */
    put("a.yaml", SVC("web", "90") "---\n" SVC("api", "abc"));
    assert_int_equal(scan(d, &b, &rep), -EINVAL);
    assert_int_equal(b.count, 0);
    assert_int_equal(rep.nerrors, 1);
    char want[512];
    snprintf(want, sizeof(want),
             "%s/a.yaml:7: document 2 (Service default/api): spec.ports[0].port: \"abc\" is not "
             "a port number (1-65535)",
             dir);
    assert_string_equal(rep.errors[0], want);
    assert_int_equal(mesh_index_get(idx, MESH_SERVICE, "default", "web")->svc.ports[0].port, 80);
    /* not read again while it does not change: no second report */
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(rep.nerrors, 0);
    assert_int_equal(b.count, 0);
    put("a.yaml", SVC("web", "90") "---\n" SVC("api", "81"));
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 1);
    assert_string_equal(b.events[0].object->meta.name, "web");
    mesh_batch_free(&b);
    /* a file that never read well serves nothing */
    put("b.yaml", "kind: Service\nmetadata: {name: broken\n");
    assert_int_equal(scan(d, &b, &rep), -EINVAL);
    assert_int_equal(b.count, 0);
    assert_non_null(strstr(rep.errors[0], "/b.yaml:"));
    assert_non_null(strstr(rep.errors[0], "document 1: YAML: "));
    mesh_report_free(&rep);
    mesh_index_free(idx);
    mesh_dir_free(d);
}

static void test_mesh_dir_removed_file_removes_its_objects(void **state)
{
    (void)state;
    put("a.yaml", SVC("web", "80"));
    put("b.yaml", SVC("api", "81") "---\nkind: Namespace\nmetadata: {name: shop}\n");
    mesh_dir_t *d = mesh_dir_new(dir);
    mesh_batch_t b = {0};
    mesh_report_t rep = {0};
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 3);
    drop("b.yaml");
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 2);
    assert_int_equal(b.events[0].type, MESH_DELETED);
    assert_int_equal(b.events[0].object->meta.kind, MESH_NAMESPACE);
    assert_int_equal(b.events[1].type, MESH_DELETED);
    assert_string_equal(b.events[1].object->meta.name, "api");
    mesh_batch_free(&b);
    mesh_dir_free(d);
}

static void test_mesh_dir_object_defined_twice_is_served_from_its_first_place(void **state)
{
    (void)state;
    put("a.yaml", SVC("web", "80"));
    put("b.yaml", "kind: Namespace\nmetadata: {name: n}\n---\n" SVC("web", "81"));
    mesh_dir_t *d = mesh_dir_new(dir);
    mesh_batch_t b = {0};
    mesh_report_t rep = {0};
    assert_int_equal(scan(d, &b, &rep), -EINVAL);
    assert_int_equal(b.count, 2);
    assert_int_equal(b.events[1].object->svc.ports[0].port, 80);
    assert_int_equal(rep.nerrors, 1);
    char want[512];
    snprintf(want, sizeof(want),
             "%s/b.yaml: document 2: Service default/web defined again (first in %s/a.yaml: "
             "document 1): ignored",
             dir, dir);
    assert_string_equal(rep.errors[0], want);
    /* the first place gone, the second is served */
    drop("a.yaml");
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 1);
    assert_int_equal(b.events[0].type, MESH_MODIFIED);
    assert_int_equal(b.events[0].object->svc.ports[0].port, 81);
    /* moved to another file with the same content: nothing to tell */
    put("c.yaml", SVC("web", "81"));
    drop("b.yaml");
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 1); /* the Namespace, gone with b.yaml */
    assert_int_equal(b.events[0].type, MESH_DELETED);
    assert_int_equal(b.events[0].object->meta.kind, MESH_NAMESPACE);
    mesh_batch_free(&b);
    mesh_report_free(&rep);
    mesh_dir_free(d);
}

static void test_mesh_dir_missing_directory_changes_nothing(void **state)
{
    (void)state;
    put("a.yaml", SVC("web", "80"));
    char gone[512];
    snprintf(gone, sizeof(gone), "%s/nowhere", dir);
    mesh_dir_t *d = mesh_dir_new(gone);
    mesh_batch_t b = {0};
    mesh_report_t rep = {0};
    assert_int_equal(scan(d, &b, &rep), -ENOENT);
    assert_int_equal(b.count, 0);
    assert_int_equal(rep.nerrors, 1);
    assert_non_null(strstr(rep.errors[0], "nowhere: No such file or directory"));
    mesh_report_free(&rep);
    mesh_dir_free(d);
}

/* 100 files of 10 Services, each with an EndpointSlice of 5 endpoints and 5 Pods. */
static void write_mesh(int changed_file, int port)
{
    size_t cap = 1 << 20;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int f = 0; f < 100; f++) {
        size_t n = 0;
        for (int s = 0; s < 10; s++) {
            int k = f * 10 + s;
            n += (size_t)snprintf(
                text + n, cap - n,
                "kind: Service\nmetadata: {name: svc-%d, namespace: ns-%d, labels: {app: a%d}}\n"
                "spec: {clusterIP: 198.19.%d.%d, selector: {app: a%d}, ports: [{name: http, "
                "port: %d, targetPort: http}]}\n---\n"
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                "metadata: {name: svc-%d-x, namespace: ns-%d, labels: "
                "{kubernetes.io/service-name: svc-%d}}\naddressType: IPv4\n"
                "ports: [{name: http, port: 8080}]\nendpoints:\n",
                k, f, k, k / 250, k % 250, k, f == changed_file && s == 0 ? port : 80, k, f, k);
            for (int e = 0; e < 5; e++)
                n +=
                    (size_t)snprintf(text + n, cap - n,
                                     "- {addresses: [198.18.%d.%d], nodeName: node-%d, zone: z%d, "
                                     "targetRef: {kind: Pod, name: svc-%d-%d, namespace: ns-%d}}\n",
                                     (k * 5 + e) / 250, (k * 5 + e) % 250, e, e % 3, k, e, f);
            for (int e = 0; e < 5; e++)
                n += (size_t)snprintf(
                    text + n, cap - n,
                    "---\nkind: Pod\nmetadata: {name: svc-%d-%d, namespace: ns-%d, labels: "
                    "{app: a%d}, ownerReferences: [{kind: ReplicaSet, name: rs-%d}]}\n"
                    "spec: {serviceAccountName: sa-%d, nodeName: node-%d, containers: [{name: app, "
                    "ports: [{name: http, containerPort: 8080}]}]}\n"
                    "status: {phase: Running, podIP: 198.18.%d.%d, conditions: [{type: Ready, "
                    "status: \"True\"}]}\n",
                    k, e, f, k, k, k, e, (k * 5 + e) / 250, (k * 5 + e) % 250);
            n += (size_t)snprintf(text + n, cap - n, "---\n");
        }
        char name[32];
        snprintf(name, sizeof(name), "mesh-%03d.yaml", f);
        put(name, text);
    }
    free(text);
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void test_mesh_dir_a_thousand_services_cost_a_few_mib_and_one_file_its_own(void **state)
{
    (void)state;
    write_mesh(-1, 0);
    size_t before = heap_in_use();
    mesh_dir_t *d = mesh_dir_new(dir);
    mesh_index_t *idx = mesh_index_new();
    mesh_batch_t b = {0};
    mesh_report_t rep = {0};
    mesh_changes_t ch;
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 1000 + 1000 + 5000);
    assert_int_equal(mesh_index_apply(idx, &b, &ch), 0);
    mesh_batch_free(&b);
    mesh_changes_free(&ch);
    size_t eps = 0, n;
    for (int k = 0; k < 1000; k++) {
        char ns[16], name[16];
        snprintf(ns, sizeof(ns), "ns-%d", k / 10);
        snprintf(name, sizeof(name), "svc-%d", k);
        mesh_index_endpoints(idx, ns, name, &n);
        eps += n;
    }
    assert_int_equal(eps, 5000);
    size_t used = heap_in_use() - before;
#ifndef __SANITIZE_ADDRESS__ /* ASan's allocator is not what mallinfo2 reports */
    printf("mesh of 1,000 Services, 5,000 endpoints, 5,000 Pods: %.1f MiB of heap\n",
           (double)used / (1 << 20));
    assert_true(used < 8u << 20);
#else
    (void)used;
#endif
    /* one Service's port changes in one file: one event, that file's objects re-read */
    write_mesh(42, 81);
    drop("mesh-000.yaml"); /* and one file goes */
    assert_int_equal(scan(d, &b, &rep), 0);
    assert_int_equal(b.count, 1 + 70);
    size_t modified = 0;
    for (size_t i = 0; i < b.count; i++)
        modified += b.events[i].type == MESH_MODIFIED;
    assert_int_equal(modified, 1);
    assert_int_equal(mesh_index_apply(idx, &b, &ch), 0);
    assert_int_equal(ch.counts[MESH_SERVICE], 11);
    assert_int_equal(ch.nendpoints, 10);
    assert_int_equal(mesh_index_get(idx, MESH_SERVICE, "ns-42", "svc-420")->svc.ports[0].port, 81);
    mesh_changes_free(&ch);
    mesh_batch_free(&b);
    mesh_report_free(&rep);
    mesh_index_free(idx);
    mesh_dir_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mesh_dir_scans_manifests_sorted_and_not_recursively,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_mesh_dir_unchanged_or_rewritten_with_the_same_content_yields_nothing, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_mesh_dir_bad_file_keeps_its_last_good_objects, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mesh_dir_removed_file_removes_its_objects, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_mesh_dir_object_defined_twice_is_served_from_its_first_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mesh_dir_missing_directory_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_mesh_dir_a_thousand_services_cost_a_few_mib_and_one_file_its_own, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
