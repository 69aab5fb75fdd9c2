/* A call's send queue: the bytes pulled are each message's 5-byte prefix and its bytes, in order,
 * however small the pieces HTTP/2 asks for; the count of bytes not yet pulled follows; the
 * caller's shared bytes are released exactly once, when they are out or dropped, and copied
 * messages do not depend on the caller's buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/grpc/grpc_sendq.h"

static int releases;

static void count_release(void *arg)
{
    (void)arg;
    releases++;
}

/* Pulls q dry in pieces of step bytes into out; returns the bytes pulled. */
static size_t pull_all(grpc_sendq_t *q, size_t step, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        size_t want = cap - n < step ? cap - n : step;
        size_t got = grpc_sendq_pull(q, out + n, want);
        assert_true(got <= want);
        if (got == 0)
            return n;
        n += got;
    }
}

/* Expected: each message framed, one after the other. */
static size_t frame_all(const char *const *msgs, size_t n, uint8_t *out)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t ml = strlen(msgs[i]);
        grpc_frame_prefix(out + len, (uint32_t)ml);
        memcpy(out + len + GRPC_FRAME_PREFIX, msgs[i], ml);
        len += GRPC_FRAME_PREFIX + ml;
    }
    return len;
}

static void test_grpc_sendq_pulls_prefixed_messages_in_order_at_any_piece_size(void **state)
{
    (void)state;
    const char *msgs[] = {"hello", "", "a longer message, split over many pieces", "x"};
    uint8_t want[256], got[256];
    size_t want_len = frame_all(msgs, 4, want);
    for (size_t step = 1; step <= want_len + 1; step++) {
        grpc_sendq_t q = {0};
        char copy[64];
        for (size_t i = 0; i < 4; i++) {
            /* Copies must not depend on the caller's buffer: it is overwritten after each push. */
            strcpy(copy, msgs[i]);
            grpc_sendq_msg_t *m = grpc_sendq_msg_copy(copy, strlen(copy));
            assert_non_null(m);
            grpc_sendq_push(&q, m);
            memset(copy, '#', sizeof(copy));
        }
        assert_int_equal(q.bytes, want_len);
        assert_int_equal(pull_all(&q, step, got, sizeof(got)), want_len);
        assert_memory_equal(got, want, want_len);
        assert_int_equal(q.bytes, 0);
        assert_null(q.head);
        assert_null(q.tail);
    }
}

static void test_grpc_sendq_counts_the_bytes_not_yet_pulled(void **state)
{
    (void)state;
    grpc_sendq_t q = {0};
    grpc_sendq_push(&q, grpc_sendq_msg_copy("0123456789", 10));
    grpc_sendq_push(&q, grpc_sendq_msg_copy("abc", 3));
    assert_int_equal(q.bytes, 15 + 8);
    uint8_t buf[32];
    assert_int_equal(grpc_sendq_pull(&q, buf, 3), 3); /* inside the first prefix */
    assert_int_equal(q.bytes, 20);
    /* The rest of the first, and 2 bytes of the next one's prefix. */
    assert_int_equal(grpc_sendq_pull(&q, buf, 14), 14);
    assert_int_equal(q.bytes, 6);
    assert_non_null(q.head);
    grpc_sendq_push(&q, grpc_sendq_msg_copy("z", 1));
    assert_int_equal(q.bytes, 12);
    assert_int_equal(grpc_sendq_pull(&q, buf, sizeof(buf)), 12);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(grpc_sendq_pull(&q, buf, sizeof(buf)), 0);
}

static void test_grpc_sendq_releases_shared_bytes_once_they_are_out(void **state)
{
    (void)state;
    releases = 0;
    static const char shared[] = "shared response";
    grpc_sendq_t q = {0};
    grpc_sendq_push(&q, grpc_sendq_msg_shared(shared, strlen(shared), count_release, NULL));
    uint8_t got[64], want[64];
    const char *msgs[] = {shared};
    size_t want_len = frame_all(msgs, 1, want);
    assert_int_equal(grpc_sendq_pull(&q, got, want_len - 1), want_len - 1);
    assert_int_equal(releases, 0); /* one byte is still to go */
    assert_int_equal(grpc_sendq_pull(&q, got + want_len - 1, 10), 1);
    assert_int_equal(releases, 1);
    assert_memory_equal(got, want, want_len);
}

static void test_grpc_sendq_clear_releases_every_shared_message_once(void **state)
{
    (void)state;
    releases = 0;
    grpc_sendq_t q = {0};
    grpc_sendq_push(&q, grpc_sendq_msg_shared("one", 3, count_release, NULL));
    grpc_sendq_push(&q, grpc_sendq_msg_copy("two", 3));
    grpc_sendq_push(&q, grpc_sendq_msg_shared("three", 5, count_release, NULL));
    uint8_t buf[4];
    grpc_sendq_pull(&q, buf, sizeof(buf)); /* the first is under way */
    grpc_sendq_clear(&q);
    assert_int_equal(releases, 2);
    assert_int_equal(q.bytes, 0);
    assert_null(q.head);
    assert_null(q.tail);
    grpc_sendq_clear(&q); /* an empty queue: nothing more */
    assert_int_equal(releases, 2);
    grpc_sendq_msg_free(grpc_sendq_msg_shared("unqueued", 8, count_release, NULL));
    assert_int_equal(releases, 3);
    grpc_sendq_msg_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grpc_sendq_pulls_prefixed_messages_in_order_at_any_piece_size),
        cmocka_unit_test(test_grpc_sendq_counts_the_bytes_not_yet_pulled),
        cmocka_unit_test(test_grpc_sendq_releases_shared_bytes_once_they_are_out),
        cmocka_unit_test(test_grpc_sendq_clear_releases_every_shared_message_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
