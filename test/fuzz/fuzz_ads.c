/* libFuzzer harness for the ADS client's state machine (xds/ads): responses of either mode, mixed
 * with reconnects and subscription changes, against a client subscribed to every type. After
 * each step every request owed is packed and decoded again, and the resource set and the dump
 * are read, so hostile responses meet every path that keeps or hands out what they brought; the
 * set is also translated into a snapshot (on a bootstrap of nothing but a node), its references
 * listed and its config dumped, as the xDS client does with every change.
 *
 * Input: one byte of flags (bit 0 delta mode, bit 1 node on the first message only, bit 2 a
 * validate hook refusing names that start with 'b'), then steps of [op][length, 2 bytes little
 * endian][payload]: op % 4 == 0 feeds the payload as a response, 1 reconnects, 2 subscribes the
 * type op / 4 % 5 to the payload's comma-separated names, 3 reads the set. Bytes that do not
 * form a step are fed whole as one response. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test/unit/snap_opts.h"
#include "xds/ads/ads.h"
#include "xds/snapshot/resources.h"

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STEPS 64
#define MAX_NAMES 16

static const char *const types[] = {ADS_TYPE_CLUSTER, ADS_TYPE_ENDPOINT, ADS_TYPE_LISTENER,
                                    ADS_TYPE_ROUTE, ADS_TYPE_SECRET};

static int refuse_b(void *ctx, const char *type_url, const ProtobufCMessage *msg, char *err,
                    size_t errlen)
{
    (void)ctx;
    (void)type_url;
    /* Every resource type keeps its name in its first field. */
    const char *name = *(char *const *)((const char *)msg + msg->descriptor->fields[0].offset);
    if (msg->descriptor->fields[0].type == PROTOBUF_C_TYPE_STRING && name && name[0] == 'b') {
        strncpy(err, "refused", errlen);
        return -1;
    }
    return 0;
}

/* Packs every request owed and decodes it again. */
static void drain(ads_t *a)
{
    uint8_t *buf;
    size_t len;
    for (int i = 0; i < 64 && ads_next_request(a, &buf, &len) > 0; i++) {
        const ProtobufCMessageDescriptor *d =
            ads_mode(a) == ADS_DELTA
                ? &envoy__service__discovery__v3__delta_discovery_request__descriptor
                : &envoy__service__discovery__v3__discovery_request__descriptor;
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf);
        if (m == NULL)
            abort(); /* the client packed something that does not decode */
        protobuf_c_message_free_unpacked(m, NULL);
        free(buf);
    }
}

/* The snapshot xDS resources are built on: a bootstrap with a node only (kept for the run). */
static snapshot_t *base_snapshot(stats_store_t **stats)
{
    static snapshot_t *base;
    static stats_store_t *store;
    if (base == NULL) {
        char err[256];
        store = stats_store_new(2);
        Envoy__Config__Bootstrap__V3__Bootstrap *b = malloc(sizeof(*b));
        Envoy__Config__Core__V3__Node *node = malloc(sizeof(*node));
        if (store == NULL || b == NULL || node == NULL)
            abort();
        envoy__config__bootstrap__v3__bootstrap__init(b);
        envoy__config__core__v3__node__init(node);
        node->id = strdup("fuzz.default");
        b->node = node;
        if (snapshot_build(b, &test_snap_opts, store, 2, &base, err, sizeof(err)) < 0)
            abort();
    }
    *stats = store;
    return base;
}

/* What the xDS client does with a changed set: translate it, list its references, dump it. */
static void translate(const config_resources_t *res)
{
    stats_store_t *stats;
    snapshot_t *base = base_snapshot(&stats), *next = NULL;
    char err[512];
    if (snapshot_build_dynamic(base, res, NULL, stats, &next, err, sizeof(err)) < 0)
        return;
    snap_refs_t refs;
    if (snapshot_references(next, &refs) >= 0)
        snapshot_refs_free(&refs);
    free(snapshot_config_dump(next));
    snapshot_unref(next);
}

static void read_state(ads_t *a)
{
    config_resources_t res = {0};
    if (ads_resources(a, &res) == 0)
        translate(&res);
    config_resources_free(&res);
    for (size_t t = 0; t < 5; t++) {
        ads_resource_info_t *info;
        size_t n;
        if (ads_dump(a, types[t], &info, &n) == 0)
            free(info);
        ads_type_status_t st;
        ads_type_status(a, types[t], &st);
    }
}

static void feed(ads_t *a, const uint8_t *p, size_t len)
{
    char err[256];
    ads_result_t r;
    if (ads_on_response(a, p, len, 1, &r, err, sizeof(err)) == 0)
        ads_result_free(&r);
}

static void subscribe(ads_t *a, unsigned type, const uint8_t *p, size_t len)
{
    char *copy = malloc(len + 1), *names[MAX_NAMES];
    size_t n = 0;
    memcpy(copy, p, len);
    copy[len] = '\0';
    for (char *s = copy, *tok; n < MAX_NAMES && (tok = strsep(&s, ",")) != NULL;)
        names[n++] = tok;
    ads_subscribe(a, types[type % 5], (const char *const *)names, n);
    free(copy);
}

static ads_t *start(uint8_t flags)
{
    Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;
    node.id = "fuzz";
    ads_opts_t opts = {.mode = (flags & 1) ? ADS_DELTA : ADS_SOTW,
                       .node_on_first_message_only = flags & 2,
                       .validate = (flags & 4) ? refuse_b : NULL};
    ads_t *a = ads_new(&node, &opts);
    if (a == NULL)
        return NULL;
    const char *names[] = {"a", "b", "c"};
    ads_subscribe(a, ADS_TYPE_CLUSTER, NULL, 0);
    ads_subscribe(a, ADS_TYPE_LISTENER, NULL, 0);
    ads_subscribe(a, ADS_TYPE_ENDPOINT, names, 3);
    ads_subscribe(a, ADS_TYPE_ROUTE, names, 3);
    ads_subscribe(a, ADS_TYPE_SECRET, names, 3);
    drain(a);
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    ads_t *a = start(data[0]);
    if (a == NULL)
        return 0;
    const uint8_t *p = data + 1, *end = data + size;
    int steps = 0;
    while (steps < MAX_STEPS && end - p >= 3) {
        uint8_t op = p[0];
        size_t len = (size_t)p[1] | (size_t)p[2] << 8;
        if ((size_t)(end - p - 3) < len)
            break;
        const uint8_t *payload = p + 3;
        if (op % 4 == 0)
            feed(a, payload, len);
        else if (op % 4 == 1)
            ads_reconnected(a);
        else if (op % 4 == 2)
            subscribe(a, op / 4, payload, len);
        else
            read_state(a);
        drain(a);
        p = payload + len;
        steps++;
    }
    if (steps == 0)
        feed(a, data + 1, size - 1);
    drain(a);
    read_state(a);
    ads_free(a);
    return 0;
}
