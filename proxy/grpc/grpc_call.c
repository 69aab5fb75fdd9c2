/* gRPC calls on the client connection: each an HTTP/2 stream whose request body is the queue of
 * messages the caller sent (nghttp2 pulls it through a data provider), whose response is read
 * back into messages and ends with a grpc-status, from the server's trailers or synthesised
 * from what went wrong (see grpc_client.h). A call ends exactly once, in call_end. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/grpc/grpc_client_int.h"

/* :method :scheme :path :authority te content-type user-agent grpc-timeout */
#define GRPC_CALL_FIXED_HEADERS 8

/* ---- ending ------------------------------------------------------------------------------ */

static void call_unlink(grpc_call_t *call)
{
    grpc_conn_t *c = call->conn;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

static void call_free(grpc_call_t *call)
{
    grpc_sendq_clear(&call->sq);
    grpc_deframer_free(&call->deframer);
    free(call->grpc_message);
    free(call->end_message);
    free(call);
}

/* on_close now; the memory stays until the next loop turn, for callers up the stack that still
 * hold the call (a message being delivered, a list being walked). */
static void call_deliver(grpc_call_t *call, int code, const char *message)
{
    grpc_conn_t *c = call->conn;
    call->state = GRPC_CALL_ENDED;
    call->next = c->graveyard;
    c->graveyard = call;
    grpc_conn_kick(c);
    call->ops->on_close(call, code, message ? message : "", call->user);
}

/* Ends an open call: no frame of its stream reaches it again, the stream is reset with rst
 * (unless rst < 0: the stream has ended or will end by itself), and on_close runs now or, for
 * an end the caller asked for, at the next loop turn. */
static void call_end(grpc_call_t *call, int code, const char *message, int rst, bool now)
{
    grpc_conn_t *c = call->conn;
    if (call->state != GRPC_CALL_OPEN)
        return;
    call_unlink(call);
    if (call->stream_id > 0) {
        nghttp2_session_set_stream_user_data(c->h2, call->stream_id, NULL);
        if (rst >= 0 && c->state != GRPC_CONN_CLOSED)
            nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, call->stream_id, (uint32_t)rst);
    }
    if (now) {
        call_deliver(call, code, message);
        return;
    }
    call->state = GRPC_CALL_ENDING;
    call->end_code = code;
    call->end_message = strdup(message);
    call->next = NULL;
    grpc_call_t **tail = &c->ending;
    while (*tail)
        tail = &(*tail)->next;
    *tail = call;
    grpc_conn_kick(c);
}

/* The way a call that the server has finished with ends: the server's own status, unless it
 * broke the protocol. Our side is reset if it is still sending. */
static void call_end_of_stream(grpc_call_t *call)
{
    int rst = call->eof_sent ? -1 : NGHTTP2_NO_ERROR;
    if (call->grpc_status == GRPC_UNSET_STATUS)
        call_end(call, GRPC_INTERNAL, "server ended the stream without grpc-status", rst, true);
    else if (call->grpc_status == GRPC_OK && !grpc_deframer_idle(&call->deframer))
        call_end(call, GRPC_INTERNAL, "server ended the stream inside a message", rst, true);
    else
        call_end(call, call->grpc_status, call->grpc_message, rst, true);
}

void grpc_calls_deliver_ending(grpc_conn_t *c)
{
    while (c->ending) {
        grpc_call_t *call = c->ending;
        c->ending = call->next;
        call_deliver(call, call->end_code, call->end_message);
    }
}

void grpc_calls_end_all(grpc_conn_t *c, int code, const char *message)
{
    while (c->calls)
        call_end(c->calls, code, message, -1, true);
    grpc_calls_deliver_ending(c);
}

void grpc_calls_free_ended(grpc_conn_t *c)
{
    while (c->graveyard) {
        grpc_call_t *call = c->graveyard;
        c->graveyard = call->next;
        call_free(call);
    }
}

void grpc_calls_expire(grpc_conn_t *c)
{
    uint64_t now = grpc_conn_now(c);
    grpc_call_t *call = c->calls;
    while (call) {
        if (call->deadline && call->deadline <= now) {
            call_end(call, GRPC_DEADLINE_EXCEEDED, "deadline exceeded", NGHTTP2_CANCEL, true);
            call = c->calls; /* on_close may have ended others: walk again */
            continue;
        }
        call = call->next;
    }
    grpc_conn_arm_deadline(c);
}

/* ---- starting ---------------------------------------------------------------------------- */

static nghttp2_nv nv(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                        NGHTTP2_NV_FLAG_NONE};
}

static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud);

/* Submits the request headers; the body follows from the call's queue. */
static int call_submit(grpc_conn_t *c, grpc_call_t *call, const grpc_call_opts_t *o)
{
    nghttp2_nv *nva = malloc((GRPC_CALL_FIXED_HEADERS + o->n_metadata) * sizeof(*nva));
    if (nva == NULL)
        return -ENOMEM;
    char timeout[GRPC_TIMEOUT_TEXT_MAX];
    size_t n = 0;
    nva[n++] = nv(":method", "POST");
    nva[n++] = nv(":scheme", c->https ? "https" : "http");
    nva[n++] = nv(":path", o->path);
    nva[n++] = nv(":authority", o->authority ? o->authority : c->authority);
    nva[n++] = nv("te", "trailers");
    nva[n++] = nv("content-type", "application/grpc");
    nva[n++] = nv("user-agent", c->user_agent);
    if (o->timeout_ms) {
        grpc_timeout_format(o->timeout_ms, timeout);
        nva[n++] = nv("grpc-timeout", timeout);
    }
    for (size_t i = 0; i < o->n_metadata; i++)
        nva[n++] = nv(o->metadata[i].key, o->metadata[i].value ? o->metadata[i].value : "");
    nghttp2_data_provider body = {.source.ptr = call, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(c->h2, NULL, nva, n, &body, call);
    free(nva);
    if (id == NGHTTP2_ERR_NOMEM)
        return -ENOMEM;
    if (id < 0)
        return -ENOTCONN; /* stream ids used up: the caller needs a new connection */
    call->stream_id = id;
    return 0;
}

int grpc_call_start(grpc_conn_t *c, const grpc_call_opts_t *o, const grpc_call_ops_t *ops,
                    void *user, grpc_call_t **out)
{
    if (c->released || c->state == GRPC_CONN_DRAINING || c->state == GRPC_CONN_CLOSED)
        return -ENOTCONN;
    if (o == NULL || o->path == NULL || o->path[0] != '/' || ops == NULL || ops->on_close == NULL)
        return -EINVAL;
    for (size_t i = 0; i < o->n_metadata; i++)
        if (!grpc_metadata_key_ok(o->metadata[i].key))
            return -EINVAL;
    grpc_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return -ENOMEM;
    call->conn = c;
    call->ops = ops;
    call->user = user;
    call->grpc_status = GRPC_UNSET_STATUS;
    grpc_deframer_init(&call->deframer, c->max_recv_message);
    int rc = call_submit(c, call, o);
    if (rc < 0) {
        call_free(call);
        return rc;
    }
    if (o->timeout_ms)
        call->deadline = grpc_conn_now(c) + o->timeout_ms;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    grpc_conn_arm_deadline(c);
    grpc_conn_kick(c);
    *out = call;
    return 0;
}

/* ---- sending ----------------------------------------------------------------------------- */

static void call_resume(grpc_call_t *call)
{
    if (call->deferred) {
        call->deferred = false;
        nghttp2_session_resume_data(call->conn->h2, call->stream_id);
    }
    grpc_conn_kick(call->conn);
}

int grpc_call_send(grpc_call_t *call, const void *msg, size_t len)
{
    if (call->state != GRPC_CALL_OPEN)
        return -ECANCELED;
    if (call->send_closed)
        return -EPIPE;
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    grpc_sendq_msg_t *m = grpc_sendq_msg_copy(msg, len);
    if (m == NULL)
        return -ENOMEM;
    grpc_sendq_push(&call->sq, m);
    call_resume(call);
    return 0;
}

int grpc_call_close_send(grpc_call_t *call)
{
    if (call->state != GRPC_CALL_OPEN)
        return -ECANCELED;
    if (!call->send_closed) {
        call->send_closed = true;
        call_resume(call);
    }
    return 0;
}

void grpc_call_cancel(grpc_call_t *call)
{
    call_end(call, GRPC_CANCELLED, "cancelled by the client", NGHTTP2_CANCEL, false);
}

size_t grpc_call_queued_bytes(const grpc_call_t *call)
{
    return call->sq.bytes;
}

int32_t grpc_call_stream_id(const grpc_call_t *call)
{
    return call->stream_id;
}

/* nghttp2 asks for the request body: the queued messages, then END_STREAM once half-closed. */
static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)src;
    (void)ud;
    grpc_call_t *call = nghttp2_session_get_stream_user_data(s, stream_id);
    if (call == NULL || call->state != GRPC_CALL_OPEN)
        return NGHTTP2_ERR_DEFERRED; /* ended: its RST_STREAM is on the way */
    size_t n = grpc_sendq_pull(&call->sq, buf, length);
    if (call->sq.head == NULL && call->send_closed) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        call->eof_sent = true;
        return (ssize_t)n;
    }
    if (n == 0) {
        call->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* ---- receiving --------------------------------------------------------------------------- */

static bool content_type_grpc(const uint8_t *v, size_t len)
{
    static const char want[] = "application/grpc";
    size_t n = sizeof(want) - 1;
    return len >= n && memcmp(v, want, n) == 0 && (len == n || v[n] == '+' || v[n] == ';');
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    grpc_conn_t *c = ud;
    if (c->state == GRPC_CONN_CLOSED)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    grpc_call_t *call = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (call == NULL || call->state != GRPC_CALL_OPEN)
        return 0;
    if (!call->got_response && namelen == 7 && memcmp(name, ":status", 7) == 0) {
        call->http_status = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            call->http_status = call->http_status * 10 + (value[i] - '0');
        call->bad_content_type = true; /* until a content-type says otherwise */
    } else if (!call->got_response && namelen == 12 && memcmp(name, "content-type", 12) == 0) {
        call->bad_content_type = !content_type_grpc(value, valuelen);
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        if (grpc_status_parse((const char *)value, valuelen, &call->grpc_status) < 0)
            call->grpc_status = GRPC_UNKNOWN;
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        free(call->grpc_message);
        call->grpc_message = malloc(valuelen + 1);
        if (call->grpc_message)
            grpc_message_decode((const char *)value, valuelen, call->grpc_message, valuelen + 1);
    }
    return 0;
}

/* The response headers are complete: a gRPC response is a 200 of application/grpc. Returns
 * whether the call goes on. */
static bool call_check_response(grpc_call_t *call)
{
    char msg[96];
    if (call->http_status >= 100 && call->http_status < 200) {
        call->http_status = 0; /* an interim response: the real one follows */
        return true;
    }
    call->got_response = true;
    if (call->http_status != 200) {
        snprintf(msg, sizeof(msg), "HTTP status code %d", call->http_status);
        call_end(call, grpc_code_from_http(call->http_status), msg, NGHTTP2_CANCEL, true);
        return false;
    }
    if (call->bad_content_type) {
        call_end(call, GRPC_INTERNAL, "response content-type is not application/grpc",
                 NGHTTP2_CANCEL, true);
        return false;
    }
    return true;
}

void grpc_call_frame_received(grpc_conn_t *c, const nghttp2_frame *frame)
{
    grpc_call_t *call = nghttp2_session_get_stream_user_data(c->h2, frame->hd.stream_id);
    if (call == NULL || call->state != GRPC_CALL_OPEN)
        return;
    if (frame->hd.type == NGHTTP2_HEADERS && !call->got_response && !call_check_response(call))
        return;
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        call_end_of_stream(call);
}

static const grpc_deframe_texts_t RESPONSE_TEXTS = {
    .too_large = "received a message over the limit of",
    .compressed = "received a compressed message; none was negotiated",
    .no_memory = "out of memory for a received message",
    .bad_flag = "received a message with a bad flag",
};

static bool call_deliver_message(void *arg, const uint8_t *msg, size_t len)
{
    grpc_call_t *call = arg;
    call->ops->on_message(call, msg, len, call->user);
    return call->state == GRPC_CALL_OPEN;
}

/* Hands every whole message of data[0..len) to the caller, until the call ends. */
static void call_take_data(grpc_call_t *call, const uint8_t *data, size_t len)
{
    int rc = grpc_deframer_feed(&call->deframer, data, len, call_deliver_message, call);
    if (rc < 0) {
        char msg[128];
        int code = grpc_deframe_status(rc, &call->deframer, &RESPONSE_TEXTS, msg, sizeof(msg));
        call_end(call, code, msg, NGHTTP2_CANCEL, true);
    }
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    grpc_conn_t *c = ud;
    if (c->state == GRPC_CONN_CLOSED)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    grpc_call_t *call = nghttp2_session_get_stream_user_data(s, stream_id);
    if (call && call->state == GRPC_CALL_OPEN && !call->got_response)
        call_end(call, GRPC_INTERNAL, "DATA before the response headers", NGHTTP2_CANCEL, true);
    else if (call && call->state == GRPC_CALL_OPEN)
        call_take_data(call, data, len);
    if (c->state == GRPC_CONN_CLOSED) /* the caller closed the connection from on_message */
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    /* The bytes are taken (handed out or copied into the deframer): open the window again. */
    nghttp2_session_consume(s, stream_id, len);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud)
{
    grpc_conn_t *c = ud;
    grpc_call_t *call = nghttp2_session_get_stream_user_data(s, stream_id);
    if (call == NULL || call->state != GRPC_CALL_OPEN || c->state == GRPC_CONN_CLOSED)
        return 0;
    char msg[96];
    if (error_code == NGHTTP2_REFUSED_STREAM)
        snprintf(msg, sizeof(msg), "stream refused by the server before it ran");
    else
        snprintf(msg, sizeof(msg), "stream reset: %s", nghttp2_http2_strerror(error_code));
    call_end(call, grpc_code_from_h2_error(error_code), msg, -1, true);
    return 0;
}

/* A request's HEADERS could not go out (a GOAWAY came first, the connection is going): the
 * server never saw the call. */
static int on_frame_not_send(nghttp2_session *s, const nghttp2_frame *frame, int error, void *ud)
{
    (void)s;
    grpc_conn_t *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    /* The stream never opened, so nghttp2 has no user data for it: find the call by its id. */
    grpc_call_t *call = c->calls;
    while (call && call->stream_id != frame->hd.stream_id)
        call = call->next;
    if (call == NULL)
        return 0;
    char msg[96];
    snprintf(msg, sizeof(msg), "call could not start: %s", nghttp2_strerror(error));
    call_end(call, GRPC_UNAVAILABLE, msg, -1, true);
    return 0;
}

void grpc_calls_install_callbacks(nghttp2_session_callbacks *cbs)
{
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
}
