/* libFuzzer harness for gRPC framing and header text. The input as a stream of DATA payloads:
 * deframed whole and in pieces it must give the same messages and the same error, and the
 * messages framed again must give back exactly the bytes taken. The input as header text:
 * grpc-message decodes within bounds and survives encode-then-decode, grpc-status gives a code
 * that exists, and a grpc-timeout that parses formats again to no shorter a deadline. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/grpc/grpc_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* What one deframing came to. */
typedef struct deframe_sum {
    int error;
    size_t messages;
    size_t taken; /* input bytes up to the end of the last whole message */
    uint64_t hash;
    bool idle;
} deframe_sum_t;

static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static void deframe(const uint8_t *in, size_t len, size_t step, size_t max, deframe_sum_t *s,
                    uint8_t *reframed)
{
    grpc_deframer_t d;
    grpc_deframer_init(&d, max);
    memset(s, 0, sizeof(*s));
    s->hash = 1469598103934665603ULL;
    size_t out = 0;
    for (size_t at = 0; at < len && s->error == 0;) {
        size_t piece = len - at < step ? len - at : step;
        const uint8_t *p = in + at, *msg;
        size_t left = piece, n;
        int rc;
        while ((rc = grpc_deframer_next(&d, &p, &left, &msg, &n)) == 1) {
            CHECK(n <= d.max_message);
            CHECK(n == 0 || (msg >= in + at && msg + n <= in + at + piece) ||
                  (msg >= d.buf && msg + n <= d.buf + d.buf_cap));
            s->hash = hash_bytes(s->hash, msg, n);
            s->messages++;
            s->taken = at + (size_t)(p - (in + at));
            if (reframed) {
                grpc_frame_prefix(reframed + out, (uint32_t)n);
                if (n)
                    memcpy(reframed + out + GRPC_FRAME_PREFIX, msg, n);
                out += GRPC_FRAME_PREFIX + n;
            }
        }
        if (rc < 0) {
            CHECK(rc == -EMSGSIZE || rc == -ENOTSUP || rc == -EPROTO || rc == -ENOMEM);
            s->error = rc;
            CHECK(grpc_deframer_next(&d, &p, &left, &msg, &n) == rc);
            break;
        }
        CHECK(left == 0);
        at += piece;
    }
    s->idle = s->error == 0 && grpc_deframer_idle(&d);
    if (reframed) /* the framing is canonical: framing again gives back the bytes taken */
        CHECK(out == s->taken && (out == 0 || memcmp(reframed, in, out) == 0));
    grpc_deframer_free(&d);
}

static void frames(const uint8_t *in, size_t len)
{
    size_t max = len % 2 ? 64 : 65536;
    size_t step = 1 + len % 7;
    uint8_t *reframed = malloc(len + GRPC_FRAME_PREFIX);
    if (reframed == NULL)
        return;
    deframe_sum_t whole, split;
    deframe(in, len, len ? len : 1, max, &whole, reframed);
    deframe(in, len, step, max, &split, NULL);
    CHECK(whole.error == split.error && whole.messages == split.messages);
    CHECK(whole.taken == split.taken && whole.hash == split.hash && whole.idle == split.idle);
    free(reframed);
}

static void text(const uint8_t *data, size_t len)
{
    const char *in = (const char *)data;
    char *dec = malloc(len + 1), *enc = malloc(3 * len + 1), *again = malloc(len + 1);
    if (dec && enc && again) {
        size_t n = grpc_message_decode(in, len, dec, len + 1);
        CHECK(n <= len && dec[n] == '\0');
        size_t e = grpc_message_encode(dec, n, enc, 3 * n + 1);
        CHECK(e <= 3 * n && e == strlen(enc));
        CHECK(grpc_message_decode(enc, e, again, n + 1) == n && memcmp(again, dec, n) == 0);
    }
    free(dec);
    free(enc);
    free(again);

    int code = -1;
    if (grpc_status_parse(in, len, &code) == 0)
        CHECK(code >= GRPC_OK && code <= GRPC_UNAUTHENTICATED);

    uint64_t ms;
    if (grpc_timeout_parse(in, len, &ms) == 0) {
        char t[GRPC_TIMEOUT_TEXT_MAX];
        size_t tn = grpc_timeout_format(ms, t);
        uint64_t back;
        CHECK(tn < GRPC_TIMEOUT_TEXT_MAX && grpc_timeout_parse(t, tn, &back) == 0 && back >= ms);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    frames(data, size);
    text(data, size);
    return 0;
}
