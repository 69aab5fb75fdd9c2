/* libFuzzer harness for the HTTP/2 downstream codec's frame layer: the input, after the client
 * preface, as what a client sends on one connection, fed in pieces (the first byte picks their
 * size) to an nghttp2 server session with the codec's options (h2_guard_options) and its abuse
 * rules (h2_guard.c) wired to the same callbacks as proxy/http/h2/h2_server.c. Every request is
 * answered with a small body so DATA frames go out. Checked: a verdict, once given, never
 * changes and stops the input at the next frame; a callback failure always carries one; the
 * GOAWAY code of a verdict is ENHANCE_YOUR_CALM or PROTOCOL_ERROR; the session's output drains
 * after the GOAWAY; no stream state leaks (ASan). The connection manager behind the codec
 * (routing, filters, sockets) is not part of it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "proxy/http/h2/h2_guard.h"
#include "proxy/http/h2/h2_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* Small enough for the fuzzer's inputs to reach the header block rule. */
#define FUZZ_MAX_BLOCK 4096
#define FUZZ_BODY      "0123456789abcdef0123456789abcdef"

typedef struct fuzz_stream {
    struct fuzz_stream *prev, *next;
    int32_t id;
    bool client_reset, answered;
} fuzz_stream_t;

typedef struct fuzz_conn {
    h2_guard_t guard;
    h2_guard_verdict_t seen; /* the verdict as first seen */
    unsigned frames_after_verdict;
    uint64_t headers_begun;
    fuzz_stream_t *streams;
    size_t body_left;
} fuzz_conn_t;

static void stream_free(fuzz_conn_t *f, fuzz_stream_t *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        f->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    free(st);
}

static void watch_verdict(fuzz_conn_t *f)
{
    if (f->seen == H2G_OK)
        f->seen = f->guard.verdict;
    CHECK(f->guard.verdict == f->seen);
}

static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user)
{
    (void)session;
    fuzz_conn_t *f = user;
    if (f->guard.verdict)
        CHECK(++f->frames_after_verdict == 1); /* the frame that stops the input */
    if (hd->type == NGHTTP2_HEADERS)
        f->headers_begun++;
    int rv = h2_guard_frame_begin(&f->guard, hd) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
    watch_verdict(f);
    return rv;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    fuzz_conn_t *f = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    fuzz_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->id = frame->hd.stream_id;
    st->next = f->streams;
    if (st->next)
        st->next->prev = st;
    f->streams = st;
    nghttp2_session_set_stream_user_data(session, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)session, (void)frame, (void)flags, (void)user;
    CHECK(nlen == 0 || name != NULL);
    CHECK(vlen == 0 || value != NULL);
    return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user)
{
    (void)session, (void)id, (void)source, (void)user;
    size_t n = sizeof(FUZZ_BODY) - 1 < length ? sizeof(FUZZ_BODY) - 1 : length;
    memcpy(buf, FUZZ_BODY, n);
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    fuzz_conn_t *f = user;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_DATA &&
        h2_guard_data_recv(&f->guard, frame->hd.length, frame->hd.length - frame->data.padlen,
                           end)) {
        watch_verdict(f);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    fuzz_stream_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st && frame->hd.type == NGHTTP2_RST_STREAM)
        st->client_reset = true;
    if (st && frame->hd.type == NGHTTP2_HEADERS && !st->answered) {
        st->answered = true;
        const nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0}};
        nghttp2_data_provider dp = {.read_callback = read_body};
        nghttp2_submit_response(session, st->id, nv, 1, &dp);
    }
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)session;
    fuzz_conn_t *f = user;
    h2_guard_frame_sent(&f->guard, frame->hd.type);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *user)
{
    (void)error_code;
    fuzz_conn_t *f = user;
    fuzz_stream_t *st = nghttp2_session_get_stream_user_data(session, id);
    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    h2_guard_stream_closed(&f->guard, st->client_reset && !st->answered);
    watch_verdict(f);
    stream_free(f, st);
    return 0;
}

static void drain(nghttp2_session *session)
{
    for (int i = 0; i < 1000; i++) {
        const uint8_t *out;
        ssize_t n = nghttp2_session_mem_send(session, &out);
        if (n <= 0)
            return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t step = size ? (size_t)data[0] * 7 + 1 : 1;
    if (size) {
        data++;
        size--;
    }
    fuzz_conn_t f = {0};
    h2_guard_init(&f.guard, FUZZ_MAX_BLOCK);
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    nghttp2_session *session;
    CHECK(nghttp2_session_callbacks_new(&cbs) == 0 && nghttp2_option_new(&opt) == 0);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    h2_guard_options(opt, 100);
    CHECK(nghttp2_session_server_new2(&session, cbs, &f, opt) == 0);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    CHECK(nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, 1) == 0);

    ssize_t rv = nghttp2_session_mem_recv(session, (const uint8_t *)H2_PREFACE, H2_PREFACE_LEN);
    CHECK(rv == H2_PREFACE_LEN);
    for (size_t off = 0; off < size && rv >= 0 && f.guard.verdict == H2G_OK;) {
        size_t n = size - off < step ? size - off : step;
        rv = nghttp2_session_mem_recv(session, data + off, n);
        CHECK(rv < 0 || (size_t)rv == n);
        off += n;
        if (rv >= 0)
            drain(session);
    }
    if (rv == NGHTTP2_ERR_CALLBACK_FAILURE)
        CHECK(f.guard.verdict != H2G_OK); /* only a verdict fails a callback here */
    h2_guard_verdict_t v = rv < 0 ? h2_guard_session_error(&f.guard, (int)rv) : f.guard.verdict;
    watch_verdict(&f);
    CHECK(f.guard.streams <= f.headers_begun);
    if (v != H2G_OK) {
        uint32_t code = h2_guard_goaway_code(v);
        CHECK(code == NGHTTP2_ENHANCE_YOUR_CALM || code == NGHTTP2_PROTOCOL_ERROR);
        nghttp2_session_terminate_session(session, code);
        drain(session);
    }
    nghttp2_session_del(session);
    while (f.streams)
        stream_free(&f, f.streams);
    return 0;
}
