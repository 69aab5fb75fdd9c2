/* The ADS state machine alone under an endpoint push (docs/performance.md, "ADS: taking in a
 * response"): a client subscribed to the endpoints of N clusters takes a state-of-the-world
 * response with all N ClusterLoadAssignments (5 endpoints each), then P pushes that each change
 * one cluster's endpoints and resend the others unchanged, as go-control-plane's snapshot cache
 * does. Each push is taken in, listed as the snapshot build would list it and ACKed inside
 * push_once, so `valgrind --tool=callgrind --toggle-collect=push_once` counts the ADS part of a
 * push and nothing else. Prints the heap the client holds (mallinfo2) and the validate calls.
 *
 *   build/bench/ads_push [clusters (1000)] [pushes (10)] [delta]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/ads/ads.h"

#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"

#define EPS 5

typedef Envoy__Config__Endpoint__V3__ClusterLoadAssignment cla_t;

static unsigned long validations;

static int count_validation(void *ctx, const char *type_url, const ProtobufCMessage *msg, char *err,
                            size_t errlen)
{
    (void)ctx, (void)type_url, (void)msg, (void)err, (void)errlen;
    validations++;
    return 0;
}

/* The bytes of cluster c's assignment, its endpoints on ports base+0..EPS-1. */
static void pack_cla(Google__Protobuf__Any *any, const char *name, unsigned base)
{
    cla_t c = ENVOY__CONFIG__ENDPOINT__V3__CLUSTER_LOAD_ASSIGNMENT__INIT;
    Envoy__Config__Endpoint__V3__LocalityLbEndpoints loc =
        ENVOY__CONFIG__ENDPOINT__V3__LOCALITY_LB_ENDPOINTS__INIT;
    Envoy__Config__Endpoint__V3__LocalityLbEndpoints *locs[] = {&loc};
    Envoy__Config__Endpoint__V3__LbEndpoint ep[EPS], *eps[EPS];
    Envoy__Config__Endpoint__V3__Endpoint e[EPS];
    Envoy__Config__Core__V3__Address addr[EPS];
    Envoy__Config__Core__V3__SocketAddress sa[EPS];
    for (int i = 0; i < EPS; i++) {
        envoy__config__endpoint__v3__lb_endpoint__init(&ep[i]);
        envoy__config__endpoint__v3__endpoint__init(&e[i]);
        envoy__config__core__v3__address__init(&addr[i]);
        envoy__config__core__v3__socket_address__init(&sa[i]);
        sa[i].address = "127.0.0.1";
        sa[i].port_specifier_case =
            ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
        sa[i].port_value = base + (unsigned)i;
        addr[i].address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
        addr[i].socket_address = &sa[i];
        e[i].address = &addr[i];
        ep[i].host_identifier_case =
            ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT;
        ep[i].endpoint = &e[i];
        eps[i] = &ep[i];
    }
    loc.n_lb_endpoints = EPS;
    loc.lb_endpoints = eps;
    c.cluster_name = (char *)name;
    c.n_endpoints = 1;
    c.endpoints = locs;
    free(any->value.data);
    any->value.len = protobuf_c_message_get_packed_size(&c.base);
    any->value.data = malloc(any->value.len);
    protobuf_c_message_pack(&c.base, any->value.data);
}

/* The response's bytes: a DiscoveryResponse or a DeltaDiscoveryResponse of every assignment. */
static uint8_t *pack_response(bool delta, Google__Protobuf__Any **anys, char **names, size_t n,
                              const char *version, size_t *len)
{
    uint8_t *buf;
    if (!delta) {
        Envoy__Service__Discovery__V3__DiscoveryResponse m =
            ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
        m.version_info = (char *)version;
        m.nonce = (char *)version;
        m.type_url = ADS_TYPE_ENDPOINT;
        m.n_resources = n;
        m.resources = anys;
        *len = protobuf_c_message_get_packed_size(&m.base);
        buf = malloc(*len);
        protobuf_c_message_pack(&m.base, buf);
        return buf;
    }
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse m =
        ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
    Envoy__Service__Discovery__V3__Resource *rs = calloc(n, sizeof(*rs)),
                                            **prs = calloc(n, sizeof(*prs));
    for (size_t i = 0; i < n; i++) {
        envoy__service__discovery__v3__resource__init(&rs[i]);
        rs[i].name = names[i];
        rs[i].version = (char *)version;
        rs[i].resource = anys[i];
        prs[i] = &rs[i];
    }
    m.system_version_info = (char *)version;
    m.nonce = (char *)version;
    m.type_url = ADS_TYPE_ENDPOINT;
    m.n_resources = n;
    m.resources = prs;
    *len = protobuf_c_message_get_packed_size(&m.base);
    buf = malloc(*len);
    protobuf_c_message_pack(&m.base, buf);
    free(rs);
    free(prs);
    return buf;
}

/* What the xDS client does with one response before its build: take it in, list the resources
 * for the build, pack the ACK. */
__attribute__((noinline)) static int take(ads_t *a, const uint8_t *buf, size_t len, uint64_t now)
{
    ads_result_t r;
    char err[512];
    if (ads_on_response(a, buf, len, now, &r, err, sizeof(err)) < 0 || r.verdict != ADS_ACKED) {
        fprintf(stderr, "ads_push: response not ACKed: %s\n", err);
        return -1;
    }
    ads_result_free(&r);
    config_resources_t res = {0};
    if (ads_resources(a, &res) < 0)
        return -1;
    config_resources_free(&res);
    uint8_t *req;
    size_t rlen;
    while (ads_next_request(a, &req, &rlen) > 0)
        free(req);
    return 0;
}

/* A push after the first response: what callgrind counts. */
__attribute__((noinline)) static int push_once(ads_t *a, const uint8_t *buf, size_t len,
                                               uint64_t now)
{
    return take(a, buf, len, now);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    int pushes = argc > 2 ? atoi(argv[2]) : 10;
    bool delta = argc > 3 && strcmp(argv[3], "delta") == 0;
    char **names = calloc(n, sizeof(*names));
    Google__Protobuf__Any **anys = calloc(n, sizeof(*anys));
    for (size_t i = 0; i < n; i++) {
        names[i] = malloc(32);
        snprintf(names[i], 32, "c%zu", i);
        anys[i] = calloc(1, sizeof(**anys));
        google__protobuf__any__init(anys[i]);
        anys[i]->type_url = ADS_TYPE_ENDPOINT;
        pack_cla(anys[i], names[i], 10000);
    }
    struct mallinfo2 before = mallinfo2();
    ads_opts_t opts = {.mode = delta ? ADS_DELTA : ADS_SOTW, .validate = count_validation};
    ads_t *a = ads_new(NULL, &opts);
    if (a == NULL || ads_subscribe(a, ADS_TYPE_ENDPOINT, (const char *const *)names, n) < 0)
        return 1;
    uint8_t *req;
    size_t len;
    while (ads_next_request(a, &req, &len) > 0)
        free(req);
    char version[32] = "v0";
    uint8_t *buf = pack_response(delta, anys, names, n, version, &len);
    if (take(a, buf, len, 1) < 0)
        return 1;
    free(buf);
    struct mallinfo2 applied = mallinfo2();
    unsigned long first = validations;
    for (int k = 1; k <= pushes; k++) {
        pack_cla(anys[(size_t)k % n], names[(size_t)k % n], 20000 + (unsigned)k * 10);
        snprintf(version, sizeof(version), "v%d", k);
        buf = pack_response(delta, anys, names, n, version, &len);
        if (push_once(a, buf, len, 1 + (uint64_t)k) < 0)
            return 1;
        free(buf);
    }
    struct mallinfo2 after = mallinfo2();
    printf("clusters %zu, %s, response %zu bytes\n", n, delta ? "delta" : "sotw", len);
    printf("heap held by the client after the first response: %zu bytes (%.1f per cluster)\n",
           applied.uordblks - before.uordblks,
           (double)(applied.uordblks - before.uordblks) / (double)n);
    printf("after %d pushes: %zu bytes\n", pushes, after.uordblks - before.uordblks);
    printf("validations: %lu for the first response, %lu for %d pushes\n", first,
           validations - first, pushes);
    ads_free(a);
    for (size_t i = 0; i < n; i++) {
        free(anys[i]->value.data);
        free(anys[i]);
        free(names[i]);
    }
    free(anys);
    free(names);
    return 0;
}
