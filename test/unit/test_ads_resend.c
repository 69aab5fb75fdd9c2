/* Specification of how the ADS client (xds/ads) takes a resource the server sends again: bytes
 * identical to those of the resource held are that resource, neither decoded nor validated again;
 * any other bytes are decoded, and validated unless they decode to the message held. Partial
 * acceptance, removal and delta's per-resource versions stay as for any resource. Behaviours the
 * two modes share run in both (test_x_sotw, test_x_delta).
 *
 * The responses' part of the client is included whole, its decoding of a resource counted on the
 * way to the real one (config_any_unpack_arena), so a test sees which resources were decoded. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xds/ads/ads.h"
#include "xds/config/config.h"

struct pb_arena;
int counted_any_unpack(const Google__Protobuf__Any *any, const ProtobufCMessageDescriptor *want,
                       ProtobufCMessage **out, struct pb_arena **arena, char *e, size_t elen);
#define config_any_unpack_arena counted_any_unpack
#include "xds/ads/ads_response.c"
#undef config_any_unpack_arena

static int decodes;

int counted_any_unpack(const Google__Protobuf__Any *any, const ProtobufCMessageDescriptor *want,
                       ProtobufCMessage **out, struct pb_arena **arena, char *e, size_t elen)
{
    decodes++;
    return config_any_unpack_arena(any, want, out, arena, e, elen);
}

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/duration.pb-c.h"

typedef Envoy__Config__Cluster__V3__Cluster cluster_t;

/* One resource as the server sends it: the name a delta Resource gives it, its version (delta),
 * its Any. Strings and bytes static or owned by the test's buffers. */
typedef struct res {
    const char *name;
    const char *version;
    Google__Protobuf__Any any;
    uint8_t bytes[256];
} res_t;

/* Cluster `name` with connect_timeout `seconds` (negative: invalid), as protobuf-c packs it;
 * `extra` bytes appended (NULL: none) encode the same message another way. */
static void cluster(res_t *r, const char *name, int64_t seconds, const char *version,
                    const char *extra)
{
    cluster_t c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    c.name = (char *)name;
    d.seconds = seconds;
    c.connect_timeout = &d;
    google__protobuf__any__init(&r->any);
    r->name = name;
    r->version = version;
    r->any.type_url = ADS_TYPE_CLUSTER;
    size_t len = protobuf_c_message_get_packed_size(&c.base);
    assert_true(len + (extra ? strlen(extra) : 0) <= sizeof(r->bytes));
    protobuf_c_message_pack(&c.base, r->bytes);
    if (extra) {
        memcpy(r->bytes + len, extra, strlen(extra));
        len += strlen(extra);
    }
    r->any.value.data = r->bytes;
    r->any.value.len = len;
}

static char err[2048];

/* Sends res[0..n) as one response of clusters: a DiscoveryResponse of version_info `version`, or
 * a DeltaDiscoveryResponse of each resource's own version, removing removed[0..nremoved). */
static int respond(ads_t *a, ads_result_t *r, const char *version, const char *nonce, res_t *res,
                   size_t n, const char **removed, size_t nremoved)
{
    Google__Protobuf__Any *anys[8];
    Envoy__Service__Discovery__V3__Resource rs[8], *prs[8];
    ProtobufCMessage *m;
    Envoy__Service__Discovery__V3__DiscoveryResponse sotw =
        ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse delta =
        ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
    for (size_t i = 0; i < n; i++) {
        anys[i] = &res[i].any;
        envoy__service__discovery__v3__resource__init(&rs[i]);
        rs[i].name = (char *)res[i].name;
        rs[i].version = (char *)(res[i].version ? res[i].version : version);
        rs[i].resource = &res[i].any;
        prs[i] = &rs[i];
    }
    if (ads_mode(a) == ADS_SOTW) {
        sotw.version_info = (char *)version;
        sotw.type_url = ADS_TYPE_CLUSTER;
        sotw.nonce = (char *)nonce;
        sotw.n_resources = n;
        sotw.resources = anys;
        m = &sotw.base;
    } else {
        delta.system_version_info = (char *)version;
        delta.type_url = ADS_TYPE_CLUSTER;
        delta.nonce = (char *)nonce;
        delta.n_resources = n;
        delta.resources = prs;
        delta.n_removed_resources = nremoved;
        delta.removed_resources = (char **)removed;
        m = &delta.base;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    protobuf_c_message_pack(m, buf);
    int rc = ads_on_response(a, buf, len, 1000, r, err, sizeof(err));
    free(buf);
    return rc;
}

static int validations;

static int count_validation(void *ctx, const char *type_url, const ProtobufCMessage *msg, char *e,
                            size_t elen)
{
    (void)ctx, (void)type_url, (void)msg, (void)e, (void)elen;
    validations++;
    return 0;
}

/* A client subscribed to every cluster, its first request gone, counting validations. */
static ads_t *client(ads_mode_t mode)
{
    ads_opts_t opts = {.mode = mode, .validate = count_validation};
    ads_t *a = ads_new(NULL, &opts);
    assert_non_null(a);
    assert_true(ads_subscribe(a, ADS_TYPE_CLUSTER, NULL, 0) >= 0);
    uint8_t *buf;
    size_t len;
    while (ads_next_request(a, &buf, &len) > 0)
        free(buf);
    validations = decodes = 0;
    return a;
}

static const ProtobufCMessage *held(ads_t *a, const char *name)
{
    ads_resource_info_t info;
    return ads_find(a, ADS_TYPE_CLUSTER, name, &info) == 0 ? info.msg : NULL;
}

static const char *version_of(ads_t *a, const char *name)
{
    ads_resource_info_t info;
    assert_int_equal(ads_find(a, ADS_TYPE_CLUSTER, name, &info), 0);
    return info.version;
}

/* Responds with res[0..n) and checks the verdict; returns whether the set changed. */
static bool take(ads_t *a, ads_verdict_t want, const char *version, res_t *res, size_t n)
{
    ads_result_t r;
    assert_int_equal(respond(a, &r, version, version, res, n, NULL, 0), 0);
    assert_int_equal(r.verdict, want);
    bool changed = ads_result_changed(&r);
    ads_result_free(&r);
    return changed;
}

#define BOTH_MODES(fn)                                                                             \
    static void fn##_sotw(void **state)                                                            \
    {                                                                                              \
        (void)state;                                                                               \
        fn(ADS_SOTW);                                                                              \
    }                                                                                              \
    static void fn##_delta(void **state)                                                           \
    {                                                                                              \
        (void)state;                                                                               \
        fn(ADS_DELTA);                                                                             \
    }
#define BOTH(fn) cmocka_unit_test(fn##_sotw), cmocka_unit_test(fn##_delta)

static void identical_resend_is_neither_decoded_nor_validated(ads_mode_t mode)
{
    ads_t *a = client(mode);
    res_t res[2];
    cluster(&res[0], "a", 1, NULL, NULL);
    cluster(&res[1], "b", 1, NULL, NULL);
    assert_true(take(a, ADS_ACKED, "v1", res, 2));
    assert_int_equal(decodes, 2);
    assert_int_equal(validations, 2);
    const ProtobufCMessage *ma = held(a, "a"), *mb = held(a, "b");
    assert_false(take(a, ADS_ACKED, "v2", res, 2));
    assert_int_equal(decodes, 2);
    assert_int_equal(validations, 2);
    assert_ptr_equal(held(a, "a"), ma); /* the message held, not a new decoding of it */
    assert_ptr_equal(held(a, "b"), mb);
    assert_string_equal(version_of(a, "a"), "v2");
    ads_free(a);
}
BOTH_MODES(identical_resend_is_neither_decoded_nor_validated)

static void changed_resource_alone_is_decoded_and_validated(ads_mode_t mode)
{
    ads_t *a = client(mode);
    res_t res[2];
    cluster(&res[0], "a", 1, NULL, NULL);
    cluster(&res[1], "b", 1, NULL, NULL);
    take(a, ADS_ACKED, "v1", res, 2);
    const ProtobufCMessage *ma = held(a, "a");
    cluster(&res[1], "b", 7, NULL, NULL);
    ads_result_t r;
    assert_int_equal(respond(a, &r, "v2", "n2", res, 2, NULL, 0), 0);
    assert_int_equal(r.verdict, ADS_ACKED);
    assert_int_equal(r.updated.n, 1);
    assert_string_equal(r.updated.v[0], "b");
    assert_int_equal(r.added.n + r.removed.n, 0);
    ads_result_free(&r);
    assert_int_equal(decodes, 3);
    assert_int_equal(validations, 3);
    assert_ptr_equal(held(a, "a"), ma);
    const cluster_t *b = (const cluster_t *)held(a, "b");
    assert_int_equal(b->connect_timeout->seconds, 7);
    ads_free(a);
}
BOTH_MODES(changed_resource_alone_is_decoded_and_validated)

/* The same message encoded otherwise (its name twice: the last wins, the same) is decoded and
 * found to be the one held: not validated, no change; its new bytes are then the ones held. */
static void reencoded_resend_is_decoded_but_not_validated(ads_mode_t mode)
{
    ads_t *a = client(mode);
    res_t res[1];
    cluster(&res[0], "a", 1, NULL, NULL);
    take(a, ADS_ACKED, "v1", res, 1);
    cluster(&res[0], "a", 1, NULL,
            "\x0a\x01"
            "a");
    assert_false(take(a, ADS_ACKED, "v2", res, 1));
    assert_int_equal(decodes, 2);
    assert_false(take(a, ADS_ACKED, "v3", res, 1));
    assert_int_equal(decodes, 2);
    assert_int_equal(validations, 1);
    assert_string_equal(version_of(a, "a"), "v3");
    ads_free(a);
}
BOTH_MODES(reencoded_resend_is_decoded_but_not_validated)

/* A rejected update keeps the last good message (A46); the good bytes sent again are that
 * message: accepted without a check, the rejection cleared. */
static void resend_of_the_last_good_after_a_rejection_clears_it(ads_mode_t mode)
{
    ads_t *a = client(mode);
    res_t res[1];
    cluster(&res[0], "a", 1, NULL, NULL);
    take(a, ADS_ACKED, "v1", res, 1);
    const ProtobufCMessage *ma = held(a, "a");
    res_t bad[1];
    cluster(&bad[0], "a", -1, NULL, NULL);
    assert_false(take(a, ADS_NACKED, "v2", bad, 1));
    assert_ptr_equal(held(a, "a"), ma);
    assert_false(take(a, ADS_ACKED, "v3", res, 1));
    assert_int_equal(decodes, 2);
    assert_int_equal(validations, 1); /* the bad one failed the field rules, before the hook */
    ads_resource_info_t info;
    assert_int_equal(ads_find(a, ADS_TYPE_CLUSTER, "a", &info), 0);
    assert_null(info.error);
    assert_ptr_equal(info.msg, ma);
    ads_free(a);
}
BOTH_MODES(resend_of_the_last_good_after_a_rejection_clears_it)

/* The held bytes in an Any of another type are not the resource held: they are rejected. */
static void held_bytes_under_another_type_are_rejected(ads_mode_t mode)
{
    ads_t *a = client(mode);
    res_t res[1];
    cluster(&res[0], "a", 1, NULL, NULL);
    take(a, ADS_ACKED, "v1", res, 1);
    const ProtobufCMessage *ma = held(a, "a");
    res[0].any.type_url = "type.googleapis.com/envoy.config.listener.v3.Listener";
    ads_result_t r;
    assert_int_equal(respond(a, &r, "v2", "n2", res, 1, NULL, 0), 0);
    assert_int_equal(r.verdict, ADS_NACKED);
    assert_non_null(strstr(r.error, "Any holds 'type.googleapis.com/envoy.config.listener"));
    assert_false(ads_result_changed(&r));
    ads_result_free(&r);
    assert_ptr_equal(held(a, "a"), ma);
    ads_free(a);
}
BOTH_MODES(held_bytes_under_another_type_are_rejected)

/* SotW: a cluster renamed is another resource (its bytes name it): the new name is added,
 * checked, and the old one, left out of the full set, removed. */
static void test_sotw_renamed_resource_replaces_the_old_name(void **state)
{
    (void)state;
    ads_t *a = client(ADS_SOTW);
    res_t res[1];
    cluster(&res[0], "a", 1, NULL, NULL);
    take(a, ADS_ACKED, "v1", res, 1);
    cluster(&res[0], "b", 1, NULL, NULL);
    ads_result_t r;
    assert_int_equal(respond(a, &r, "v2", "n2", res, 1, NULL, 0), 0);
    assert_int_equal(r.verdict, ADS_ACKED);
    assert_int_equal(r.added.n, 1);
    assert_string_equal(r.added.v[0], "b");
    assert_int_equal(r.removed.n, 1);
    assert_string_equal(r.removed.v[0], "a");
    ads_result_free(&r);
    assert_int_equal(decodes, 2);
    assert_int_equal(validations, 2);
    assert_null(held(a, "a"));
    ads_free(a);
}

/* Delta: a Resource named "b" carrying the bytes "a" came in names its message "a": rejected,
 * not taken as a resend of "a", which stays as it was. */
static void test_delta_held_bytes_under_another_name_are_rejected(void **state)
{
    (void)state;
    ads_t *a = client(ADS_DELTA);
    res_t res[1];
    cluster(&res[0], "a", 1, NULL, NULL);
    take(a, ADS_ACKED, "v1", res, 1);
    const ProtobufCMessage *ma = held(a, "a");
    res[0].name = "b";
    ads_result_t r;
    assert_int_equal(respond(a, &r, "v2", "n2", res, 1, NULL, 0), 0);
    assert_int_equal(r.verdict, ADS_NACKED);
    assert_string_equal(r.error, "cds['b']: the resource's name is 'a'");
    ads_result_free(&r);
    assert_null(held(a, "b"));
    assert_ptr_equal(held(a, "a"), ma);
    assert_string_equal(version_of(a, "a"), "v1");
    ads_free(a);
}

/* SotW: the full set minus one, the others resent as they were: the one left out goes, the
 * others stay as held, nothing is checked. */
static void test_sotw_resend_without_one_removes_it(void **state)
{
    (void)state;
    ads_t *a = client(ADS_SOTW);
    res_t res[2];
    cluster(&res[0], "a", 1, NULL, NULL);
    cluster(&res[1], "b", 1, NULL, NULL);
    take(a, ADS_ACKED, "v1", res, 2);
    const ProtobufCMessage *ma = held(a, "a");
    ads_result_t r;
    assert_int_equal(respond(a, &r, "v2", "n2", res, 1, NULL, 0), 0);
    assert_int_equal(r.verdict, ADS_ACKED);
    assert_int_equal(r.removed.n, 1);
    assert_string_equal(r.removed.v[0], "b");
    assert_int_equal(r.added.n + r.updated.n, 0);
    ads_result_free(&r);
    assert_int_equal(decodes, 2);
    assert_int_equal(validations, 2);
    assert_ptr_equal(held(a, "a"), ma);
    assert_null(held(a, "b"));
    /* b sent again as it was: new again, so decoded and checked again. */
    assert_true(take(a, ADS_ACKED, "v3", res, 2));
    assert_int_equal(decodes, 3);
    assert_int_equal(validations, 3);
    ads_free(a);
}

/* A name twice in one response, once resent as held and once changed, is rejected both times,
 * as any name twice is: the resource held stays. */
static void resend_and_change_of_one_name_are_both_rejected(ads_mode_t mode)
{
    ads_t *a = client(mode);
    res_t res[2];
    cluster(&res[0], "a", 1, NULL, NULL);
    take(a, ADS_ACKED, "v1", res, 1);
    const ProtobufCMessage *ma = held(a, "a");
    cluster(&res[1], "a", 2, NULL, NULL);
    ads_result_t r;
    assert_int_equal(respond(a, &r, "v2", "n2", res, 2, NULL, 0), 0);
    assert_int_equal(r.verdict, ADS_NACKED);
    assert_string_equal(r.error, "cds['a']: the name appears 2 times in the response");
    assert_false(ads_result_changed(&r));
    ads_result_free(&r);
    assert_ptr_equal(held(a, "a"), ma);
    ads_free(a);
}
BOTH_MODES(resend_and_change_of_one_name_are_both_rejected)

/* SotW: a response is read in place only where it holds nothing but Anys of a type_url and a
 * value; an Any with another field (unknown to Any) makes it decoded whole, with the same
 * outcome: the resend is still the resource held, the changed one decoded. */
static void test_sotw_any_with_an_unknown_field_is_taken_alike(void **state)
{
    (void)state;
    ads_t *a = client(ADS_SOTW);
    res_t res[2];
    cluster(&res[0], "a", 1, NULL, NULL);
    cluster(&res[1], "b", 1, NULL, NULL);
    take(a, ADS_ACKED, "v1", res, 2);
    const ProtobufCMessage *ma = held(a, "a");
    ProtobufCMessageUnknownField extra = {
        .tag = 3, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT, .len = 1, .data = (uint8_t *)"\x01"};
    res[0].any.base.n_unknown_fields = 1;
    res[0].any.base.unknown_fields = &extra;
    cluster(&res[1], "b", 4, NULL, NULL);
    ads_result_t r;
    assert_int_equal(respond(a, &r, "v2", "n2", res, 2, NULL, 0), 0);
    assert_int_equal(r.verdict, ADS_ACKED);
    assert_int_equal(r.updated.n, 1);
    assert_string_equal(r.updated.v[0], "b");
    ads_result_free(&r);
    assert_int_equal(decodes, 3);
    assert_ptr_equal(held(a, "a"), ma);
    assert_string_equal(version_of(a, "a"), "v2");
    ads_free(a);
}

/* Delta: each Resource carries its own version; one resent as it was takes the version it comes
 * with, and a new stream says each resource's own. */
static void test_delta_resend_takes_its_resource_version(void **state)
{
    (void)state;
    ads_t *a = client(ADS_DELTA);
    res_t res[2];
    cluster(&res[0], "a", 1, "a1", NULL);
    cluster(&res[1], "b", 1, "b1", NULL);
    take(a, ADS_ACKED, "s1", res, 2);
    res[0].version = "a2";
    cluster(&res[1], "b", 5, "b2", NULL);
    take(a, ADS_ACKED, "s2", res, 2);
    assert_int_equal(decodes, 3);
    assert_int_equal(validations, 3);
    assert_string_equal(version_of(a, "a"), "a2");
    assert_string_equal(version_of(a, "b"), "b2");
    const char *gone[] = {"b"};
    ads_result_t r;
    assert_int_equal(respond(a, &r, "s3", "n3", res, 1, gone, 1), 0);
    assert_int_equal(r.removed.n, 1);
    ads_result_free(&r);
    ads_reconnected(a);
    uint8_t *buf;
    size_t len;
    assert_int_equal(ads_next_request(a, &buf, &len), 1);
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *q =
        envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(q);
    assert_int_equal(q->n_initial_resource_versions, 1);
    assert_string_equal(q->initial_resource_versions[0]->key, "a");
    assert_string_equal(q->initial_resource_versions[0]->value, "a2");
    protobuf_c_message_free_unpacked(&q->base, NULL);
    ads_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(identical_resend_is_neither_decoded_nor_validated),
        BOTH(changed_resource_alone_is_decoded_and_validated),
        BOTH(reencoded_resend_is_decoded_but_not_validated),
        BOTH(resend_of_the_last_good_after_a_rejection_clears_it),
        BOTH(held_bytes_under_another_type_are_rejected),
        BOTH(resend_and_change_of_one_name_are_both_rejected),
        cmocka_unit_test(test_sotw_renamed_resource_replaces_the_old_name),
        cmocka_unit_test(test_delta_held_bytes_under_another_name_are_rejected),
        cmocka_unit_test(test_sotw_resend_without_one_removes_it),
        cmocka_unit_test(test_sotw_any_with_an_unknown_field_is_taken_alike),
        cmocka_unit_test(test_delta_resend_takes_its_resource_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
