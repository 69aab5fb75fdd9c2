/* Specification of the xDS load tool's shared parts (bench/xds_load_wire.c,
 * bench/xds_load_cache.c): the response reader finds each resource's bytes without decoding them
 * and refuses broken messages at every cut; the cache decodes identical bytes once and knows what a
 * cluster and a listener make a sidecar subscribe to. Messages are built with protobuf-c as a
 * control plane would send them. The tool's files are included, as they are not in the library. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench/xds_load_cache.c"
#include "bench/xds_load_wire.c"

#include "envoy/service/discovery/v3/discovery.pb-c.h"

typedef Envoy__Config__Cluster__V3__Cluster cluster_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig sds_t;

/* m (borrowed) packed into a new buffer (*len bytes). */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    protobuf_c_message_pack(m, b);
    return b;
}

/* An Any of type_url holding m's bytes (new; free with any_free). */
static Google__Protobuf__Any *any_of(const char *type_url, const ProtobufCMessage *m)
{
    Google__Protobuf__Any *a = malloc(sizeof(*a));
    assert_non_null(a);
    google__protobuf__any__init(a);
    a->type_url = (char *)type_url;
    a->value.data = pack(m, &a->value.len);
    return a;
}

static void any_free(Google__Protobuf__Any *a)
{
    free(a->value.data);
    free(a);
}

/* An EDS cluster named name with service (NULL: none) and, with secrets, an UpstreamTlsContext
 * taking certificate and validation context over SDS; packed. */
static uint8_t *eds_cluster(const char *name, const char *service, bool secrets, size_t *len)
{
    cluster_t c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    Envoy__Config__Cluster__V3__Cluster__EdsClusterConfig eds =
        ENVOY__CONFIG__CLUSTER__V3__CLUSTER__EDS_CLUSTER_CONFIG__INIT;
    c.name = (char *)name;
    c.cluster_discovery_type_case =
        ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
    c.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS;
    if (service)
        eds.service_name = (char *)service;
    c.eds_cluster_config = &eds;
    Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext up =
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__UPSTREAM_TLS_CONTEXT__INIT;
    common_tls_t common = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
    sds_t cert = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SDS_SECRET_CONFIG__INIT;
    sds_t ca = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SDS_SECRET_CONFIG__INIT;
    sds_t *certs[] = {&cert};
    Envoy__Config__Core__V3__TransportSocket ts = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT;
    Google__Protobuf__Any *any = NULL;
    if (secrets) {
        cert.name = "default", ca.name = "ROOTCA";
        common.n_tls_certificate_sds_secret_configs = 1;
        common.tls_certificate_sds_secret_configs = certs;
        common.validation_context_type_case =
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG;
        common.validation_context_sds_secret_config = &ca;
        up.common_tls_context = &common;
        any = any_of(UPSTREAM_TLS_URL, &up.base);
        ts.config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
        ts.typed_config = any;
        c.transport_socket = &ts;
    }
    uint8_t *b = pack(&c.base, len);
    if (any)
        any_free(any);
    return b;
}

static void assert_names(const char **v, size_t n, const char *want0, const char *want1)
{
    assert_int_equal(n, want1 ? 2 : want0 ? 1 : 0);
    if (want0)
        assert_string_equal(v[0], want0);
    if (want1)
        assert_string_equal(v[1], want1);
}

/* ---- the reader ------------------------------------------------------------------------- */

static void test_xds_load_reader_points_at_sotw_resources_bytes(void **state)
{
    (void)state;
    size_t la, lb;
    uint8_t *a = eds_cluster("a", NULL, false, &la), *b = eds_cluster("b", "svc", true, &lb);
    Google__Protobuf__Any anys[2], *pa[] = {&anys[0], &anys[1]};
    for (int i = 0; i < 2; i++) {
        google__protobuf__any__init(&anys[i]);
        anys[i].type_url = (char *)xl_type_url[XL_CDS];
    }
    anys[0].value = (ProtobufCBinaryData){la, a};
    anys[1].value = (ProtobufCBinaryData){lb, b};
    Envoy__Service__Discovery__V3__DiscoveryResponse r =
        ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
    r.version_info = "v1", r.nonce = "n1", r.type_url = (char *)xl_type_url[XL_CDS];
    r.n_resources = 2, r.resources = pa;
    size_t len;
    uint8_t *msg = pack(&r.base, &len);

    xl_response_t out;
    assert_int_equal(xl_response_read(false, msg, len, &out), 0);
    assert_int_equal(xl_type_of(out.type_url.p, out.type_url.n), XL_CDS);
    assert_memory_equal(out.version.p, "v1", 2);
    assert_memory_equal(out.nonce.p, "n1", 2);
    assert_int_equal(out.nres, 2);
    assert_int_equal(out.res[1].value.n, lb);
    assert_memory_equal(out.res[1].value.p, b, lb);
    assert_true(out.res[0].value.p >= msg && out.res[0].value.p < msg + len); /* not a copy */
    free(msg), free(a), free(b);
    xl_cache_free();
}

static void test_xds_load_reader_takes_delta_names_versions_and_removals(void **state)
{
    (void)state;
    size_t la;
    uint8_t *a = eds_cluster("a", NULL, false, &la);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)xl_type_url[XL_CDS];
    any.value = (ProtobufCBinaryData){la, a};
    Envoy__Service__Discovery__V3__Resource res = ENVOY__SERVICE__DISCOVERY__V3__RESOURCE__INIT;
    res.name = "a", res.version = "3", res.resource = &any;
    Envoy__Service__Discovery__V3__Resource *pres[] = {&res};
    Envoy__Service__Discovery__V3__ResourceName rn =
        ENVOY__SERVICE__DISCOVERY__V3__RESOURCE_NAME__INIT;
    rn.name = "c";
    Envoy__Service__Discovery__V3__ResourceName *prn[] = {&rn};
    char *removed[] = {"b"};
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse r =
        ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
    r.system_version_info = "7", r.nonce = "n9", r.type_url = (char *)xl_type_url[XL_CDS];
    r.n_resources = 1, r.resources = pres;
    r.n_removed_resources = 1, r.removed_resources = removed;
    r.n_removed_resource_names = 1, r.removed_resource_names = prn;
    size_t len;
    uint8_t *msg = pack(&r.base, &len);

    xl_response_t out;
    assert_int_equal(xl_response_read(true, msg, len, &out), 0);
    assert_int_equal(out.nres, 1);
    assert_true(out.res[0].has_any);
    assert_memory_equal(out.res[0].name.p, "a", 1);
    assert_memory_equal(out.res[0].version.p, "3", 1);
    assert_int_equal(out.res[0].value.n, la);
    assert_int_equal(out.nremoved, 2);
    assert_memory_equal(out.removed[0].p, "b", 1);
    assert_memory_equal(out.removed[1].p, "c", 1);
    free(msg), free(a);
    xl_cache_free();
}

static void test_xds_load_reader_refuses_broken_messages_at_every_cut(void **state)
{
    (void)state;
    size_t la;
    uint8_t *a = eds_cluster("a", "svc", true, &la);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT, *pa[] = {&any};
    any.type_url = (char *)xl_type_url[XL_CDS];
    any.value = (ProtobufCBinaryData){la, a};
    Envoy__Service__Discovery__V3__DiscoveryResponse r =
        ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
    r.version_info = "v1", r.nonce = "n1", r.type_url = (char *)xl_type_url[XL_CDS];
    r.n_resources = 1, r.resources = pa;
    size_t len;
    uint8_t *msg = pack(&r.base, &len);
    xl_response_t out;
    /* Each cut either ends between fields (a shorter valid message) or is refused: never more
     * resource bytes than were there. */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *part = malloc(cut ? cut : 1);
        memcpy(part, msg, cut);
        int rc = xl_response_read(false, part, cut, &out);
        assert_true(rc == 0 || rc == -EBADMSG);
        if (rc == 0)
            assert_true(out.nres == 0 || out.res[0].value.n == la);
        free(part);
    }
    static const uint8_t huge_length[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    assert_int_equal(xl_response_read(false, huge_length, sizeof(huge_length), &out), -EBADMSG);
    static const uint8_t group[] = {0x0b, 0x0c};
    assert_int_equal(xl_response_read(false, group, sizeof(group), &out), -EBADMSG);
    static const uint8_t version_as_varint[] = {0x08, 0x01};
    assert_int_equal(xl_response_read(false, version_as_varint, 2, &out), -EBADMSG);
    static const uint8_t endless_varint[] = {0x20, 0x80, 0x80, 0x80};
    assert_int_equal(xl_response_read(true, endless_varint, 4, &out), -EBADMSG);
    free(msg), free(a);
    xl_cache_free();
}

/* ---- the cache -------------------------------------------------------------------------- */

static void test_xds_load_cache_decodes_identical_bytes_once(void **state)
{
    (void)state;
    size_t l1, l2;
    uint8_t *b1 = eds_cluster("a", NULL, false, &l1), *b2 = eds_cluster("a", NULL, false, &l2);
    const xl_res_t *r1 = xl_res_get(XL_CDS, b1, l1), *r2 = xl_res_get(XL_CDS, b2, l2);
    uint64_t decoded, hits;
    xl_cache_counts(&decoded, &hits);
    assert_ptr_equal(r1, r2);
    assert_int_equal(decoded, 1);
    assert_int_equal(hits, 1);
    /* The same bytes as another type are another resource. */
    assert_ptr_not_equal(xl_res_get(XL_RDS, b1, l1), r1);
    free(b1), free(b2);
    xl_cache_free();
}

static void test_xds_load_cluster_references_its_eds_name_and_secrets(void **state)
{
    (void)state;
    size_t l1, l2;
    uint8_t *b1 = eds_cluster("c", "c-svc", true, &l1), *b2 = eds_cluster("a", NULL, false, &l2);
    const xl_res_t *c = xl_res_get(XL_CDS, b1, l1), *a = xl_res_get(XL_CDS, b2, l2);
    assert_false(c->bad);
    assert_string_equal(c->name, "c");
    assert_names(c->refs[XL_REF_DEP], c->nrefs[XL_REF_DEP], "c-svc", NULL);
    assert_names(c->refs[XL_REF_SDS], c->nrefs[XL_REF_SDS], "default", "ROOTCA");
    assert_names(a->refs[XL_REF_DEP], a->nrefs[XL_REF_DEP], "a", NULL); /* no service name */
    assert_names(a->refs[XL_REF_SDS], a->nrefs[XL_REF_SDS], NULL, NULL);
    /* Names are interned: the reference is the one copy of the name. */
    assert_ptr_equal(a->refs[XL_REF_DEP][0], xl_intern_find("a", 1));
    assert_ptr_equal(a->name, a->refs[XL_REF_DEP][0]);
    free(b1), free(b2);
    xl_cache_free();
}

/* A filter chain whose HTTP connection manager takes route configuration rds over RDS, with a
 * DownstreamTlsContext taking secret cert over SDS when cert is not NULL. */
static Envoy__Config__Listener__V3__FilterChain *hcm_chain(const char *rds, const char *cert)
{
    Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm =
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
    Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds r =
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__RDS__INIT;
    r.route_config_name = (char *)rds;
    hcm.route_specifier_case =
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
    hcm.rds = &r;
    Envoy__Config__Listener__V3__FilterChain *fc = calloc(1, sizeof(*fc));
    Envoy__Config__Listener__V3__Filter *f = calloc(1, sizeof(*f));
    Envoy__Config__Listener__V3__Filter **fs = calloc(1, sizeof(*fs));
    assert_true(fc && f && fs);
    envoy__config__listener__v3__filter_chain__init(fc);
    envoy__config__listener__v3__filter__init(f);
    f->config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
    f->typed_config = any_of(HCM_URL, &hcm.base);
    fs[0] = f;
    fc->n_filters = 1, fc->filters = fs;
    if (cert) {
        Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext d =
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__INIT;
        common_tls_t common =
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
        sds_t s = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SDS_SECRET_CONFIG__INIT,
              *ps[] = {&s};
        s.name = (char *)cert;
        common.n_tls_certificate_sds_secret_configs = 1;
        common.tls_certificate_sds_secret_configs = ps;
        d.common_tls_context = &common;
        Envoy__Config__Core__V3__TransportSocket *ts = calloc(1, sizeof(*ts));
        assert_non_null(ts);
        envoy__config__core__v3__transport_socket__init(ts);
        ts->config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
        ts->typed_config = any_of(DOWNSTREAM_TLS_URL, &d.base);
        fc->transport_socket = ts;
    }
    return fc;
}

static void chain_free(Envoy__Config__Listener__V3__FilterChain *fc)
{
    any_free(fc->filters[0]->typed_config);
    free(fc->filters[0]);
    free(fc->filters);
    if (fc->transport_socket) {
        any_free(fc->transport_socket->typed_config);
        free(fc->transport_socket);
    }
    free(fc);
}

static void test_xds_load_listener_references_routes_and_secrets_of_every_chain(void **state)
{
    (void)state;
    Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
    Envoy__Config__Listener__V3__FilterChain *chains[] = {hcm_chain("r1", NULL)};
    l.name = "http";
    l.n_filter_chains = 1, l.filter_chains = chains;
    l.default_filter_chain = hcm_chain("r2", "cert");
    size_t len;
    uint8_t *b = pack(&l.base, &len);
    const xl_res_t *r = xl_res_get(XL_LDS, b, len);
    assert_false(r->bad);
    assert_string_equal(r->name, "http");
    assert_names(r->refs[XL_REF_DEP], r->nrefs[XL_REF_DEP], "r1", "r2");
    assert_names(r->refs[XL_REF_SDS], r->nrefs[XL_REF_SDS], "cert", NULL);
    chain_free(chains[0]), chain_free(l.default_filter_chain);
    free(b);
    xl_cache_free();
}

static void test_xds_load_undecodable_bytes_are_kept_as_bad(void **state)
{
    (void)state;
    static const uint8_t broken[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    for (int t = 0; t < XL_NTYPES; t++) {
        const xl_res_t *r = xl_res_get(t, broken, sizeof(broken));
        assert_non_null(r);
        assert_true(r->bad);
        assert_string_equal(r->name, "");
        assert_ptr_equal(xl_res_get(t, broken, sizeof(broken)), r); /* not decoded again */
    }
    xl_cache_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xds_load_reader_points_at_sotw_resources_bytes),
        cmocka_unit_test(test_xds_load_reader_takes_delta_names_versions_and_removals),
        cmocka_unit_test(test_xds_load_reader_refuses_broken_messages_at_every_cut),
        cmocka_unit_test(test_xds_load_cache_decodes_identical_bytes_once),
        cmocka_unit_test(test_xds_load_cluster_references_its_eds_name_and_secrets),
        cmocka_unit_test(test_xds_load_listener_references_routes_and_secrets_of_every_chain),
        cmocka_unit_test(test_xds_load_undecodable_bytes_are_kept_as_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
