/* The HTTP/2 downstream codec's abuse rules (h2_guard.c), one per test: each flood is judged at
 * the first frame past Envoy's limit and not before, legitimate traffic that looks alike is not
 * judged, and a verdict sticks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/http/h2/h2_guard.h"

static h2_guard_verdict_t begin(h2_guard_t *g, uint8_t type, uint8_t flags, int32_t id, size_t len)
{
    nghttp2_frame_hd hd = {.length = len, .stream_id = id, .type = type, .flags = flags};
    return h2_guard_frame_begin(g, &hd);
}

static void test_h2_guard_second_empty_data_frame_in_a_row_is_a_flood(void **state)
{
    (void)state;
    h2_guard_t g;
    h2_guard_init(&g, 1000);
    assert_int_equal(begin(&g, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, 20), H2G_OK);
    assert_int_equal(begin(&g, NGHTTP2_DATA, 0, 1, 0), H2G_OK);
    assert_int_equal(begin(&g, NGHTTP2_DATA, 0, 1, 0), H2G_EMPTY_FRAMES);
}

static void test_h2_guard_data_with_payload_or_end_stream_breaks_the_run(void **state)
{
    (void)state;
    h2_guard_t g;
    h2_guard_init(&g, 1000);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(begin(&g, NGHTTP2_DATA, 0, 1, 0), H2G_OK);
        assert_int_equal(begin(&g, NGHTTP2_DATA, 0, 1, 5), H2G_OK);
        assert_int_equal(h2_guard_data_recv(&g, 5, 5, false), H2G_OK);
    }
    assert_int_equal(begin(&g, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 1, 0), H2G_OK);
}

static void test_h2_guard_padding_only_data_counts_as_empty(void **state)
{
    (void)state;
    h2_guard_t g;
    h2_guard_init(&g, 1000);
    assert_int_equal(begin(&g, NGHTTP2_DATA, NGHTTP2_FLAG_PADDED, 1, 4), H2G_OK);
    assert_int_equal(h2_guard_data_recv(&g, 4, 0, false), H2G_OK);
    assert_int_equal(begin(&g, NGHTTP2_DATA, NGHTTP2_FLAG_PADDED, 1, 4), H2G_OK);
    assert_int_equal(h2_guard_data_recv(&g, 4, 0, false), H2G_EMPTY_FRAMES);
}

static void test_h2_guard_priority_frames_are_bounded_by_streams_opened(void **state)
{
    (void)state;
    h2_guard_t g;
    h2_guard_init(&g, 1000);
    assert_int_equal(begin(&g, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, 20), H2G_OK);
    for (int i = 0; i < 2 * H2G_PRIORITY_PER_STREAM; i++)
        assert_int_equal(begin(&g, NGHTTP2_PRIORITY, 0, 3, 5), H2G_OK);
    assert_int_equal(begin(&g, NGHTTP2_PRIORITY, 0, 3, 5), H2G_PRIORITY_FLOOD);
}

static void test_h2_guard_window_updates_are_bounded_by_data_sent(void **state)
{
    (void)state;
    h2_guard_t g;
    h2_guard_init(&g, 1000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(begin(&g, NGHTTP2_WINDOW_UPDATE, 0, 0, 4), H2G_OK);
    h2_guard_frame_sent(&g, NGHTTP2_DATA); /* 20 more */
    for (int i = 0; i < 2 * H2G_WINDOW_UPDATE_PER_DATA; i++)
        assert_int_equal(begin(&g, NGHTTP2_WINDOW_UPDATE, 0, 0, 4), H2G_OK);
    assert_int_equal(begin(&g, NGHTTP2_WINDOW_UPDATE, 0, 0, 4), H2G_WINDOW_FLOOD);
}

static void test_h2_guard_header_block_over_the_limit_across_continuations(void **state)
{
    (void)state;
    h2_guard_t g;
    h2_guard_init(&g, 1000);
    assert_int_equal(begin(&g, NGHTTP2_HEADERS, 0, 1, 400), H2G_OK);
    assert_int_equal(begin(&g, NGHTTP2_CONTINUATION, 0, 1, 600), H2G_OK);
    assert_int_equal(begin(&g, NGHTTP2_CONTINUATION, NGHTTP2_FLAG_END_HEADERS, 1, 1),
                     H2G_HEADER_OVERFLOW);
    assert_int_equal(h2_guard_goaway_code(H2G_HEADER_OVERFLOW), NGHTTP2_PROTOCOL_ERROR);
}

static void test_h2_guard_ninth_continuation_of_a_block_is_an_overflow(void **state)
{
    (void)state;
    h2_guard_t g;
    h2_guard_init(&g, 1000);
    for (int block = 0; block < 3; block++) { /* the count starts again at each HEADERS */
        assert_int_equal(begin(&g, NGHTTP2_HEADERS, 0, 1 + 2 * block, 10), H2G_OK);
        for (int i = 0; i < H2G_MAX_CONTINUATIONS; i++)
            assert_int_equal(begin(&g, NGHTTP2_CONTINUATION, 0, 1 + 2 * block, 1), H2G_OK);
    }
    assert_int_equal(begin(&g, NGHTTP2_CONTINUATION, 0, 5, 1), H2G_HEADER_OVERFLOW);
}

static void test_h2_guard_each_header_block_counts_on_its_own(void **state)
{
    (void)state;
    h2_guard_t g;
    h2_guard_init(&g, 1000);
    for (int32_t id = 1; id < 100; id += 2)
        assert_int_equal(begin(&g, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, id, 900), H2G_OK);
}

static void test_h2_guard_rapid_reset_needs_enough_streams_and_half_premature(void **state)
{
    (void)state;
    h2_guard_t g;
    h2_guard_init(&g, 1000);
    for (int i = 0; i < H2G_RESET_MIN_STREAMS - 1; i++)
        assert_int_equal(h2_guard_stream_closed(&g, true), H2G_OK);
    assert_int_equal(h2_guard_stream_closed(&g, true), H2G_PREMATURE_RESETS);
    assert_int_equal(h2_guard_goaway_code(H2G_PREMATURE_RESETS), NGHTTP2_ENHANCE_YOUR_CALM);

    h2_guard_init(&g, 1000); /* a client that cancels a third of its streams */
    for (int i = 0; i < 3 * H2G_RESET_MIN_STREAMS; i++)
        assert_int_equal(h2_guard_stream_closed(&g, i % 3 == 0), H2G_OK);
}

static void test_h2_guard_nghttp2_floods_are_verdicts_and_other_errors_not(void **state)
{
    (void)state;
    h2_guard_t g;
    h2_guard_init(&g, 1000);
    assert_int_equal(h2_guard_session_error(&g, NGHTTP2_ERR_PROTO), H2G_OK);
    assert_int_equal(h2_guard_session_error(&g, NGHTTP2_ERR_FLOODED), H2G_CONTROL_FLOOD);
    h2_guard_init(&g, 1000);
    assert_int_equal(h2_guard_session_error(&g, NGHTTP2_ERR_TOO_MANY_CONTINUATIONS),
                     H2G_HEADER_OVERFLOW);
}

static void test_h2_guard_verdict_sticks(void **state)
{
    (void)state;
    h2_guard_t g;
    h2_guard_init(&g, 1000);
    for (int i = 0; i < 6; i++)
        begin(&g, NGHTTP2_WINDOW_UPDATE, 0, 0, 4);
    assert_int_equal(g.verdict, H2G_WINDOW_FLOOD);
    assert_int_equal(begin(&g, NGHTTP2_DATA, 0, 1, 0), H2G_WINDOW_FLOOD);
    assert_int_equal(begin(&g, NGHTTP2_DATA, 0, 1, 0), H2G_WINDOW_FLOOD);
    assert_int_equal(h2_guard_session_error(&g, NGHTTP2_ERR_FLOODED), H2G_WINDOW_FLOOD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h2_guard_second_empty_data_frame_in_a_row_is_a_flood),
        cmocka_unit_test(test_h2_guard_data_with_payload_or_end_stream_breaks_the_run),
        cmocka_unit_test(test_h2_guard_padding_only_data_counts_as_empty),
        cmocka_unit_test(test_h2_guard_priority_frames_are_bounded_by_streams_opened),
        cmocka_unit_test(test_h2_guard_window_updates_are_bounded_by_data_sent),
        cmocka_unit_test(test_h2_guard_header_block_over_the_limit_across_continuations),
        cmocka_unit_test(test_h2_guard_ninth_continuation_of_a_block_is_an_overflow),
        cmocka_unit_test(test_h2_guard_each_header_block_counts_on_its_own),
        cmocka_unit_test(test_h2_guard_rapid_reset_needs_enough_streams_and_half_premature),
        cmocka_unit_test(test_h2_guard_nghttp2_floods_are_verdicts_and_other_errors_not),
        cmocka_unit_test(test_h2_guard_verdict_sticks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
