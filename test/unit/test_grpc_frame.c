/* gRPC framing and header text: messages come out the same however their bytes are split,
 * whole ones are handed out in place, limits and flags we do not negotiate are refused for good,
 * feeding hands messages out until the call says stop, an error is worded as each end words it,
 * and grpc-status, grpc-message and grpc-timeout read and write as the gRPC HTTP/2 protocol
 * specifies. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/grpc/grpc_frame.h"

/* Appends a framed message to buf at *len. */
static void put_message(uint8_t *buf, size_t *len, const char *msg, size_t n)
{
    grpc_frame_prefix(buf + *len, (uint32_t)n);
    memcpy(buf + *len + GRPC_FRAME_PREFIX, msg, n);
    *len += GRPC_FRAME_PREFIX + n;
}

/* Feeds in[0..len) in pieces of `step` bytes and records each message, joined by '|'. */
static int deframe_all(grpc_deframer_t *d, const uint8_t *in, size_t len, size_t step, char *out,
                       size_t cap)
{
    size_t o = 0;
    int count = 0;
    out[0] = '\0';
    for (size_t at = 0; at < len;) {
        size_t piece = len - at < step ? len - at : step;
        const uint8_t *p = in + at;
        size_t left = piece;
        for (;;) {
            const uint8_t *msg;
            size_t n;
            int rc = grpc_deframer_next(d, &p, &left, &msg, &n);
            if (rc < 0)
                return rc;
            if (rc == 0)
                break;
            assert_true(o + n + 2 < cap);
            memcpy(out + o, msg, n);
            o += n;
            out[o++] = '|';
            out[o] = '\0';
            count++;
        }
        assert_int_equal(left, 0);
        at += piece;
    }
    return count;
}

static void test_grpc_frame_prefix_is_flag_then_big_endian_length(void **state)
{
    (void)state;
    uint8_t p[GRPC_FRAME_PREFIX];
    grpc_frame_prefix(p, 0x01020304);
    const uint8_t want[] = {0, 1, 2, 3, 4};
    assert_memory_equal(p, want, sizeof(want));
}

static void test_grpc_frame_whole_message_is_handed_out_in_place(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t len = 0;
    put_message(buf, &len, "hello", 5);
    grpc_deframer_t d;
    grpc_deframer_init(&d, 0);
    const uint8_t *in = buf, *msg;
    size_t left = len, n;
    assert_int_equal(grpc_deframer_next(&d, &in, &left, &msg, &n), 1);
    assert_ptr_equal(msg, buf + GRPC_FRAME_PREFIX);
    assert_int_equal(n, 5);
    assert_int_equal(left, 0);
    assert_true(grpc_deframer_idle(&d));
    assert_null(d.buf);
    grpc_deframer_free(&d);
}

static void test_grpc_frame_several_messages_in_one_input(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t len = 0;
    put_message(buf, &len, "one", 3);
    put_message(buf, &len, "", 0);
    put_message(buf, &len, "three", 5);
    grpc_deframer_t d;
    grpc_deframer_init(&d, 0);
    char out[128];
    assert_int_equal(deframe_all(&d, buf, len, len, out, sizeof(out)), 3);
    assert_string_equal(out, "one||three|");
    grpc_deframer_free(&d);
}

static void test_grpc_frame_same_messages_at_every_split(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t len = 0;
    char big[1000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    put_message(buf, &len, "x", 1);
    put_message(buf, &len, big, sizeof(big));
    put_message(buf, &len, "", 0);
    put_message(buf, &len, "tail", 4);
    char want[2048], got[2048];
    grpc_deframer_t d;
    grpc_deframer_init(&d, 0);
    assert_int_equal(deframe_all(&d, buf, len, len, want, sizeof(want)), 4);
    grpc_deframer_free(&d);
    for (size_t step = 1; step <= 13; step++) {
        grpc_deframer_init(&d, 0);
        assert_int_equal(deframe_all(&d, buf, len, step, got, sizeof(got)), 4);
        assert_string_equal(got, want);
        assert_true(grpc_deframer_idle(&d));
        grpc_deframer_free(&d);
    }
}

static void test_grpc_frame_partial_prefix_or_body_is_not_idle(void **state)
{
    (void)state;
    uint8_t buf[16];
    size_t len = 0;
    put_message(buf, &len, "abc", 3);
    grpc_deframer_t d;
    grpc_deframer_init(&d, 0);
    const uint8_t *in = buf, *msg;
    size_t left = 2, n;
    assert_int_equal(grpc_deframer_next(&d, &in, &left, &msg, &n), 0);
    assert_false(grpc_deframer_idle(&d));
    left = 4; /* rest of the prefix and one body byte */
    assert_int_equal(grpc_deframer_next(&d, &in, &left, &msg, &n), 0);
    assert_false(grpc_deframer_idle(&d));
    left = 2;
    assert_int_equal(grpc_deframer_next(&d, &in, &left, &msg, &n), 1);
    assert_memory_equal(msg, "abc", 3);
    assert_true(grpc_deframer_idle(&d));
    grpc_deframer_free(&d);
}

static void test_grpc_frame_message_over_the_limit_is_refused_for_good(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t len = 0;
    put_message(buf, &len, "1234", 4); /* exactly the limit: fine */
    put_message(buf, &len, "12345", 5);
    put_message(buf, &len, "1", 1);
    grpc_deframer_t d;
    grpc_deframer_init(&d, 4);
    const uint8_t *in = buf, *msg;
    size_t left = len, n;
    assert_int_equal(grpc_deframer_next(&d, &in, &left, &msg, &n), 1);
    assert_int_equal(grpc_deframer_next(&d, &in, &left, &msg, &n), -EMSGSIZE);
    size_t after = left;
    assert_int_equal(grpc_deframer_next(&d, &in, &left, &msg, &n), -EMSGSIZE);
    assert_int_equal(left, after);
    grpc_deframer_free(&d);
}

static void test_grpc_frame_announced_length_is_checked_before_any_body(void **state)
{
    (void)state;
    /* 4 GiB - 1 announced: refused on the prefix alone, nothing allocated. */
    const uint8_t buf[] = {0, 0xff, 0xff, 0xff, 0xff};
    grpc_deframer_t d;
    grpc_deframer_init(&d, 0);
    const uint8_t *in = buf, *msg;
    size_t left = sizeof(buf), n;
    assert_int_equal(grpc_deframer_next(&d, &in, &left, &msg, &n), -EMSGSIZE);
    assert_null(d.buf);
    grpc_deframer_free(&d);
}

static void test_grpc_frame_compressed_message_is_refused(void **state)
{
    (void)state;
    const uint8_t buf[] = {1, 0, 0, 0, 1, 'x'};
    grpc_deframer_t d;
    grpc_deframer_init(&d, 0);
    const uint8_t *in = buf, *msg;
    size_t left = sizeof(buf), n;
    assert_int_equal(grpc_deframer_next(&d, &in, &left, &msg, &n), -ENOTSUP);
    grpc_deframer_free(&d);
}

static void test_grpc_frame_unknown_flag_is_a_protocol_error(void **state)
{
    (void)state;
    const uint8_t buf[] = {0x80, 0, 0, 0, 0};
    grpc_deframer_t d;
    grpc_deframer_init(&d, 0);
    const uint8_t *in = buf, *msg;
    size_t left = sizeof(buf), n;
    assert_int_equal(grpc_deframer_next(&d, &in, &left, &msg, &n), -EPROTO);
    grpc_deframer_free(&d);
}

typedef struct feed_log {
    char seen[64];
    int count;
    int stop_after; /* 0: never stop */
} feed_log_t;

static bool log_message(void *arg, const uint8_t *msg, size_t len)
{
    feed_log_t *l = arg;
    size_t at = strlen(l->seen);
    memcpy(l->seen + at, msg, len);
    l->seen[at + len] = '|';
    l->seen[at + len + 1] = '\0';
    return ++l->count != l->stop_after;
}

static void test_grpc_frame_feed_hands_out_messages_until_told_to_stop(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t len = 0;
    put_message(buf, &len, "ab", 2);
    put_message(buf, &len, "", 0);
    put_message(buf, &len, "cde", 3);
    grpc_deframer_t d;
    grpc_deframer_init(&d, 0);
    feed_log_t all = {.stop_after = 0};
    assert_int_equal(grpc_deframer_feed(&d, buf, len, log_message, &all), 0);
    assert_string_equal(all.seen, "ab||cde|");
    assert_true(grpc_deframer_idle(&d));
    grpc_deframer_free(&d);

    grpc_deframer_init(&d, 0);
    feed_log_t first = {.stop_after = 1};
    assert_int_equal(grpc_deframer_feed(&d, buf, len, log_message, &first), 0);
    assert_string_equal(first.seen, "ab|");
    grpc_deframer_free(&d);
}

static void test_grpc_frame_feed_stops_at_an_error_after_the_good_messages(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t len = 0;
    put_message(buf, &len, "ok", 2);
    const uint8_t compressed[] = {1, 0, 0, 0, 1, 'x'};
    memcpy(buf + len, compressed, sizeof(compressed));
    len += sizeof(compressed);
    grpc_deframer_t d;
    grpc_deframer_init(&d, 0);
    feed_log_t l = {.stop_after = 0};
    assert_int_equal(grpc_deframer_feed(&d, buf, len, log_message, &l), -ENOTSUP);
    assert_string_equal(l.seen, "ok|");
    grpc_deframer_free(&d);
}

static void test_grpc_frame_deframe_errors_map_to_a_status_in_the_sides_words(void **state)
{
    (void)state;
    const grpc_deframe_texts_t t = {"too big:", "zipped", "no memory", "bad flag"};
    grpc_deframer_t d;
    grpc_deframer_init(&d, 1000);
    char msg[64];
    assert_int_equal(grpc_deframe_status(-EMSGSIZE, &d, &t, msg, sizeof(msg)),
                     GRPC_RESOURCE_EXHAUSTED);
    assert_string_equal(msg, "too big: 1000 bytes");
    assert_int_equal(grpc_deframe_status(-ENOMEM, &d, &t, msg, sizeof(msg)),
                     GRPC_RESOURCE_EXHAUSTED);
    assert_string_equal(msg, "no memory");
    assert_int_equal(grpc_deframe_status(-ENOTSUP, &d, &t, msg, sizeof(msg)), GRPC_INTERNAL);
    assert_string_equal(msg, "zipped");
    assert_int_equal(grpc_deframe_status(-EPROTO, &d, &t, msg, sizeof(msg)), GRPC_INTERNAL);
    assert_string_equal(msg, "bad flag");
    grpc_deframer_free(&d);
}

static void test_grpc_frame_status_is_decimal_and_unknown_codes_are_unknown(void **state)
{
    (void)state;
    int code = -1;
    assert_int_equal(grpc_status_parse("0", 1, &code), 0);
    assert_int_equal(code, GRPC_OK);
    assert_int_equal(grpc_status_parse("14", 2, &code), 0);
    assert_int_equal(code, GRPC_UNAVAILABLE);
    assert_int_equal(grpc_status_parse("17", 2, &code), 0);
    assert_int_equal(code, GRPC_UNKNOWN);
    assert_int_equal(grpc_status_parse("999999999", 9, &code), 0);
    assert_int_equal(code, GRPC_UNKNOWN);
    const char *bad[] = {"", "1a", "-1", " 1", "1 ", "1234567890", "+3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(grpc_status_parse(bad[i], strlen(bad[i]), &code), -EINVAL);
    assert_string_equal(grpc_code_name(GRPC_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
    assert_string_equal(grpc_code_name(99), "UNKNOWN");
}

static void test_grpc_frame_message_is_percent_decoded(void **state)
{
    (void)state;
    char out[64];
    const char *in = "no%20such%20method: %E2%82%AC";
    assert_int_equal(grpc_message_decode(in, strlen(in), out, sizeof(out)), 19);
    assert_string_equal(out, "no such method: \xe2\x82\xac");
}

static void test_grpc_frame_malformed_percent_is_kept_not_failed(void **state)
{
    (void)state;
    char out[64];
    const char *in = "100% sure %zz %4";
    grpc_message_decode(in, strlen(in), out, sizeof(out));
    assert_string_equal(out, in);
    /* A short buffer cuts the text and still ends it. */
    assert_int_equal(grpc_message_decode("abcdef", 6, out, 4), 3);
    assert_string_equal(out, "abc");
}

static void test_grpc_frame_message_encoding_round_trips_every_byte(void **state)
{
    (void)state;
    char raw[256], enc[3 * 256 + 1], dec[257];
    for (int i = 0; i < 256; i++)
        raw[i] = (char)i;
    size_t n = grpc_message_encode(raw, sizeof(raw), enc, sizeof(enc));
    assert_int_equal(n, strlen(enc));
    for (size_t i = 0; i < n; i++)
        assert_true(enc[i] >= 0x20 && enc[i] <= 0x7e);
    assert_int_equal(grpc_message_decode(enc, n, dec, sizeof(dec)), 256);
    assert_memory_equal(dec, raw, 256);
    /* Printable ASCII but '%' stays as it is. */
    assert_int_equal(grpc_message_encode("a b%", 4, enc, sizeof(enc)), 6);
    assert_string_equal(enc, "a b%25");
    /* Too small a buffer: what fits, ended, and the length it needed. */
    assert_int_equal(grpc_message_encode("%%", 2, enc, 4), 6);
    assert_string_equal(enc, "%25");
}

static void test_grpc_frame_timeout_uses_the_finest_unit_that_fits(void **state)
{
    (void)state;
    char t[GRPC_TIMEOUT_TEXT_MAX];
    struct {
        uint64_t ms;
        const char *want;
    } cases[] = {
        {0, "0m"},
        {250, "250m"},
        {99999999, "99999999m"},
        {100000000, "100000S"},
        {100000001, "100001S"}, /* rounded up: never earlier than our deadline */
        {99999999000ULL, "99999999S"},
        {99999999001ULL, "1666667M"},
        {UINT64_MAX, "99999999H"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = grpc_timeout_format(cases[i].ms, t);
        assert_string_equal(t, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
        uint64_t back;
        assert_int_equal(grpc_timeout_parse(t, n, &back), 0);
        assert_true(back >= cases[i].ms || cases[i].ms == UINT64_MAX);
    }
}

static void test_grpc_frame_timeout_parse_takes_every_unit_and_refuses_the_rest(void **state)
{
    (void)state;
    uint64_t ms;
    assert_int_equal(grpc_timeout_parse("2H", 2, &ms), 0);
    assert_int_equal(ms, 7200000);
    assert_int_equal(grpc_timeout_parse("3M", 2, &ms), 0);
    assert_int_equal(ms, 180000);
    assert_int_equal(grpc_timeout_parse("1S", 2, &ms), 0);
    assert_int_equal(ms, 1000);
    assert_int_equal(grpc_timeout_parse("1500u", 5, &ms), 0);
    assert_int_equal(ms, 2);
    assert_int_equal(grpc_timeout_parse("1n", 2, &ms), 0);
    assert_int_equal(ms, 1);
    const char *bad[] = {"", "S", "1", "1s", "123456789S", "-1S", "1 S"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(grpc_timeout_parse(bad[i], strlen(bad[i]), &ms), -EINVAL);
}

static void test_grpc_frame_http_and_h2_errors_map_as_grpc_specifies(void **state)
{
    (void)state;
    assert_int_equal(grpc_code_from_http(400), GRPC_INTERNAL);
    assert_int_equal(grpc_code_from_http(401), GRPC_UNAUTHENTICATED);
    assert_int_equal(grpc_code_from_http(403), GRPC_PERMISSION_DENIED);
    assert_int_equal(grpc_code_from_http(404), GRPC_UNIMPLEMENTED);
    assert_int_equal(grpc_code_from_http(429), GRPC_UNAVAILABLE);
    assert_int_equal(grpc_code_from_http(502), GRPC_UNAVAILABLE);
    assert_int_equal(grpc_code_from_http(503), GRPC_UNAVAILABLE);
    assert_int_equal(grpc_code_from_http(504), GRPC_UNAVAILABLE);
    assert_int_equal(grpc_code_from_http(500), GRPC_UNKNOWN);
    assert_int_equal(grpc_code_from_http(302), GRPC_UNKNOWN);
    assert_int_equal(grpc_code_from_h2_error(0x7), GRPC_UNAVAILABLE);
    assert_int_equal(grpc_code_from_h2_error(0x8), GRPC_CANCELLED);
    assert_int_equal(grpc_code_from_h2_error(0xb), GRPC_RESOURCE_EXHAUSTED);
    assert_int_equal(grpc_code_from_h2_error(0xc), GRPC_PERMISSION_DENIED);
    assert_int_equal(grpc_code_from_h2_error(0x0), GRPC_INTERNAL);
    assert_int_equal(grpc_code_from_h2_error(0x1), GRPC_INTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grpc_frame_prefix_is_flag_then_big_endian_length),
        cmocka_unit_test(test_grpc_frame_whole_message_is_handed_out_in_place),
        cmocka_unit_test(test_grpc_frame_several_messages_in_one_input),
        cmocka_unit_test(test_grpc_frame_same_messages_at_every_split),
        cmocka_unit_test(test_grpc_frame_partial_prefix_or_body_is_not_idle),
        cmocka_unit_test(test_grpc_frame_message_over_the_limit_is_refused_for_good),
        cmocka_unit_test(test_grpc_frame_announced_length_is_checked_before_any_body),
        cmocka_unit_test(test_grpc_frame_compressed_message_is_refused),
        cmocka_unit_test(test_grpc_frame_unknown_flag_is_a_protocol_error),
        cmocka_unit_test(test_grpc_frame_feed_hands_out_messages_until_told_to_stop),
        cmocka_unit_test(test_grpc_frame_feed_stops_at_an_error_after_the_good_messages),
        cmocka_unit_test(test_grpc_frame_deframe_errors_map_to_a_status_in_the_sides_words),
        cmocka_unit_test(test_grpc_frame_status_is_decimal_and_unknown_codes_are_unknown),
        cmocka_unit_test(test_grpc_frame_message_is_percent_decoded),
        cmocka_unit_test(test_grpc_frame_malformed_percent_is_kept_not_failed),
        cmocka_unit_test(test_grpc_frame_message_encoding_round_trips_every_byte),
        cmocka_unit_test(test_grpc_frame_timeout_uses_the_finest_unit_that_fits),
        cmocka_unit_test(test_grpc_frame_timeout_parse_takes_every_unit_and_refuses_the_rest),
        cmocka_unit_test(test_grpc_frame_http_and_h2_errors_map_as_grpc_specifies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
