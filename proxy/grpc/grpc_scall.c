/* gRPC calls on the server's connections: each an HTTP/2 stream whose request headers are checked
 * and routed by :path to a method, whose request body is de-framed into messages for it, and
 * whose response is the queue of messages the method sent (nghttp2 pulls it through a data
 * provider) ended by grpc-status trailers. A call ends for its method exactly once (call_end,
 * delivered at the next loop turn); its memory lives until its stream is gone too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/grpc/grpc_server_int.h"

#define GRPC_STATUS_TEXT_MAX 12 /* a decimal int and a NUL */
#define GRPC_RESPONSE_FIXED  5  /* :status content-type grpc-status grpc-message accept-enc */

/* ---- metadata ----------------------------------------------------------------------------- */

static nghttp2_nv nv(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                        NGHTTP2_NV_FLAG_NONE};
}

/* Copies md[0..n) into b (its pairs and strings in one block). */
static int md_block_set(grpc_md_block_t *b, const grpc_metadata_t *md, size_t n)
{
    size_t size = n * sizeof(nghttp2_nv);
    for (size_t i = 0; i < n; i++) {
        if (!grpc_metadata_key_ok(md[i].key))
            return -EINVAL;
        size += strlen(md[i].key) + 1 + (md[i].value ? strlen(md[i].value) : 0) + 1;
    }
    nghttp2_nv *v = n ? malloc(size) : NULL;
    if (n && v == NULL)
        return -ENOMEM;
    char *p = (char *)(v + n);
    for (size_t i = 0; i < n; i++) {
        const char *val = md[i].value ? md[i].value : "";
        size_t kl = strlen(md[i].key), vl = strlen(val);
        memcpy(p, md[i].key, kl + 1);
        memcpy(p + kl + 1, val, vl + 1);
        v[i] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)p + kl + 1, kl, vl, NGHTTP2_NV_FLAG_NONE};
        p += kl + vl + 2;
    }
    free(b->nv);
    b->nv = v;
    b->n = n;
    return 0;
}

/* Keeps one request header for grpc_scall_metadata (within GRPC_SCALL_MD_MAX; more is dropped). */
static void md_keep(grpc_scall_t *call, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    size_t need = call->md_len + kl + vl + 2;
    if (need > GRPC_SCALL_MD_MAX)
        return;
    if (need > call->md_cap) {
        size_t cap = call->md_cap ? call->md_cap * 2 : 512;
        while (cap < need)
            cap *= 2;
        char *m = realloc(call->md, cap);
        if (m == NULL)
            return;
        call->md = m;
        call->md_cap = cap;
    }
    memcpy(call->md + call->md_len, k, kl);
    call->md[call->md_len + kl] = '\0';
    memcpy(call->md + call->md_len + kl + 1, v, vl);
    call->md[call->md_len + kl + 1 + vl] = '\0';
    call->md_len = need;
}

/* ---- ending and freeing ------------------------------------------------------------------- */

static void call_free(grpc_scall_t *call)
{
    grpc_sendq_clear(&call->sq);
    grpc_deframer_free(&call->deframer);
    free(call->path);
    free(call->md);
    free(call->status_msg);
    free(call->init_md.nv);
    free(call->trail_md.nv);
    free(call->end_message);
    free(call);
}

static void call_unlink(grpc_scall_t *call)
{
    grpc_sconn_t *c = call->conn;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

static void call_bury(grpc_scall_t *call)
{
    grpc_sconn_t *c = call->conn;
    call->later = c->graveyard;
    c->graveyard = call;
    grpc_sconn_kick(c);
}

/* The call is over for its method: on_close with code and message at the next loop turn. */
static void call_end(grpc_scall_t *call, int code, const char *message)
{
    grpc_sconn_t *c = call->conn;
    if (call->state != GRPC_SCALL_OPEN)
        return;
    call->state = GRPC_SCALL_ENDING;
    call->end_code = code;
    call->end_message = strdup(message ? message : "");
    call->later = NULL;
    grpc_scall_t **tail = &c->ending;
    while (*tail)
        tail = &(*tail)->later;
    *tail = call;
    grpc_sconn_kick(c);
}

void grpc_scalls_deliver(grpc_sconn_t *c)
{
    for (grpc_scall_t *call = c->calls; call;) {
        if (call->state == GRPC_SCALL_OPEN && call->writable_due) {
            call->writable_due = false;
            if (call->method->ops->on_writable)
                call->method->ops->on_writable(call, call->user);
            call = c->calls; /* the callback may have changed the list: walk again */
            continue;
        }
        call = call->next;
    }
    while (c->ending) {
        grpc_scall_t *call = c->ending;
        c->ending = call->later;
        call->later = NULL;
        if (--c->ncalls == 0)
            c->idle_since = grpc_sconn_now(c);
        /* Still ENDING during on_close: a grpc_server_close from there leaves it to us. */
        call->method->ops->on_close(call, call->end_code,
                                    call->end_message ? call->end_message : "", call->user);
        call->state = GRPC_SCALL_DONE;
        if (call->stream_gone)
            call_bury(call);
    }
}

void grpc_scalls_free_done(grpc_sconn_t *c)
{
    while (c->graveyard) {
        grpc_scall_t *call = c->graveyard;
        c->graveyard = call->later;
        call_free(call);
    }
}

void grpc_scalls_end_all(grpc_sconn_t *c, int code, const char *message)
{
    while (c->calls) {
        grpc_scall_t *call = c->calls;
        call_unlink(call);
        call->stream_gone = true;
        if (call->state == GRPC_SCALL_OPEN)
            call_end(call, code, message);
        else if (call->state == GRPC_SCALL_HEADERS || call->state == GRPC_SCALL_DONE) {
            call->state = GRPC_SCALL_DONE;
            call_bury(call);
        }
    }
    grpc_scalls_deliver(c);
}

/* ---- responding --------------------------------------------------------------------------- */

static ssize_t read_body(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud);

/* Submits headers that end the stream (a trailers-only response, or a refusal with another HTTP
 * status): :status, content-type, the status, its message, then the metadata of both blocks. */
static int call_submit_final(grpc_scall_t *call, const char *http_status, int code,
                             const char *message)
{
    grpc_sconn_t *c = call->conn;
    size_t n_md = call->init_md.n + call->trail_md.n;
    nghttp2_nv *nva = malloc((GRPC_RESPONSE_FIXED + n_md) * sizeof(*nva));
    size_t mlen = message ? strlen(message) : 0;
    char *enc = malloc(3 * mlen + 1);
    if (nva == NULL || enc == NULL) {
        free(nva);
        free(enc);
        return -ENOMEM;
    }
    char status[GRPC_STATUS_TEXT_MAX];
    snprintf(status, sizeof(status), "%d", code);
    grpc_message_encode(message ? message : "", mlen, enc, 3 * mlen + 1);
    size_t n = 0;
    nva[n++] = nv(":status", http_status);
    nva[n++] = nv("content-type", "application/grpc");
    nva[n++] = nv("grpc-status", status);
    if (mlen)
        nva[n++] = nv("grpc-message", enc);
    if (call->init_md.n)
        memcpy(nva + n, call->init_md.nv, call->init_md.n * sizeof(*nva));
    n += call->init_md.n;
    if (call->trail_md.n)
        memcpy(nva + n, call->trail_md.nv, call->trail_md.n * sizeof(*nva));
    n += call->trail_md.n;
    int rv = nghttp2_submit_response(c->h2, call->stream_id, nva, n, NULL);
    free(nva);
    free(enc);
    if (rv == 0) {
        call->headers_sent = true;
        call->finishing = true;
        grpc_sconn_kick(c);
    }
    return rv == 0 ? 0 : -ENOMEM;
}

/* Submits the response headers (the messages follow from the queue). */
static int call_submit_headers(grpc_scall_t *call)
{
    grpc_sconn_t *c = call->conn;
    nghttp2_nv *nva = malloc((GRPC_RESPONSE_FIXED + call->init_md.n) * sizeof(*nva));
    if (nva == NULL)
        return -ENOMEM;
    size_t n = 0;
    nva[n++] = nv(":status", "200");
    nva[n++] = nv("content-type", "application/grpc");
    nva[n++] = nv("grpc-accept-encoding", "identity");
    if (call->init_md.n)
        memcpy(nva + n, call->init_md.nv, call->init_md.n * sizeof(*nva));
    n += call->init_md.n;
    nghttp2_data_provider body = {.source.ptr = call, .read_callback = read_body};
    int rv = nghttp2_submit_response(c->h2, call->stream_id, nva, n, &body);
    free(nva);
    if (rv != 0)
        return -ENOMEM;
    call->headers_sent = true;
    return 0;
}

/* Submits the trailers: the status, its message, the trailing metadata. */
static int call_submit_trailers(grpc_scall_t *call)
{
    grpc_sconn_t *c = call->conn;
    size_t mlen = call->status_msg ? strlen(call->status_msg) : 0;
    nghttp2_nv *nva = malloc((2 + call->trail_md.n) * sizeof(*nva));
    char *enc = malloc(3 * mlen + 1);
    if (nva == NULL || enc == NULL) {
        free(nva);
        free(enc);
        return -ENOMEM;
    }
    char status[GRPC_STATUS_TEXT_MAX];
    snprintf(status, sizeof(status), "%d", call->status);
    grpc_message_encode(call->status_msg ? call->status_msg : "", mlen, enc, 3 * mlen + 1);
    size_t n = 0;
    nva[n++] = nv("grpc-status", status);
    if (mlen)
        nva[n++] = nv("grpc-message", enc);
    if (call->trail_md.n)
        memcpy(nva + n, call->trail_md.nv, call->trail_md.n * sizeof(*nva));
    n += call->trail_md.n;
    int rv = nghttp2_submit_trailer(c->h2, call->stream_id, nva, n);
    free(nva);
    free(enc);
    return rv == 0 ? 0 : -ENOMEM;
}

static void call_resume(grpc_scall_t *call)
{
    if (call->deferred && !call->stream_gone) {
        call->deferred = false;
        nghttp2_session_resume_data(call->conn->h2, call->stream_id);
    }
    grpc_sconn_kick(call->conn);
}

/* Sets the status the call ends with and sends it after what is queued. */
static int call_finish(grpc_scall_t *call, int code, const char *message)
{
    free(call->status_msg);
    call->status_msg = message && message[0] ? strdup(message) : NULL;
    call->status = code;
    if (!call->headers_sent)
        return call_submit_final(call, "200", code, message);
    call->finishing = true;
    call_resume(call);
    return 0;
}

/* The server ends a running call with an error: what is queued is dropped, the client gets
 * code and message, and so does the method's on_close. */
static void call_fail(grpc_scall_t *call, int code, const char *message)
{
    if (call->state != GRPC_SCALL_OPEN)
        return;
    log_debug("grpc server: %s from %s: %s: %s", call->path, call->conn->name, grpc_code_name(code),
              message);
    grpc_sendq_clear(&call->sq);
    if (!call->finishing && !call->stream_gone && call_finish(call, code, message) < 0)
        nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    call_end(call, code, message);
}

void grpc_scalls_finish_all(grpc_sconn_t *c, int code, const char *message)
{
    for (grpc_scall_t *call = c->calls; call; call = call->next)
        call_fail(call, code, message);
}

void grpc_scalls_expire(grpc_sconn_t *c)
{
    uint64_t now = grpc_sconn_now(c);
    for (grpc_scall_t *call = c->calls; call; call = call->next)
        if (call->state == GRPC_SCALL_OPEN && call->deadline && call->deadline <= now)
            call_fail(call, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
    grpc_sconn_arm_deadline(c);
}

/* nghttp2 asks for the response body: the queued messages, then the trailers once finishing. */
static ssize_t read_body(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)h2;
    (void)stream_id;
    (void)ud;
    grpc_scall_t *call = src->ptr;
    size_t n = grpc_sendq_pull(&call->sq, buf, length);
    if (call->writable_armed && call->sq.bytes < call->conn->srv->o.send_low_water) {
        call->writable_armed = false;
        call->writable_due = true;
        grpc_sconn_kick(call->conn);
    }
    if (call->sq.head == NULL && call->finishing) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (call_submit_trailers(call) < 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        return (ssize_t)n;
    }
    if (n == 0) {
        call->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* ---- the caller's functions --------------------------------------------------------------- */

void grpc_scall_set_user(grpc_scall_t *call, void *user)
{
    call->user = user;
}

const char *grpc_scall_path(const grpc_scall_t *call)
{
    return call->path ? call->path : "";
}

const char *grpc_scall_metadata(const grpc_scall_t *call, const char *key)
{
    for (size_t at = 0; at < call->md_len;) {
        const char *k = call->md + at;
        const char *v = k + strlen(k) + 1;
        if (strcmp(k, key) == 0)
            return v;
        at = (size_t)(v - call->md) + strlen(v) + 1;
    }
    return NULL;
}

const char *grpc_scall_peer_id(const grpc_scall_t *call)
{
    return call->conn->peer_id;
}

uint64_t grpc_scall_time_left(const grpc_scall_t *call)
{
    if (call->deadline == 0)
        return UINT64_MAX;
    uint64_t now = grpc_sconn_now(call->conn);
    return call->deadline > now ? call->deadline - now : 0;
}

int grpc_scall_set_metadata(grpc_scall_t *call, const grpc_metadata_t *md, size_t n)
{
    if (call->state != GRPC_SCALL_OPEN)
        return -ECANCELED;
    if (call->headers_sent)
        return -EALREADY;
    return md_block_set(&call->init_md, md, n);
}

/* Queues m (taken) on call. */
static int call_queue(grpc_scall_t *call, grpc_sendq_msg_t *m)
{
    if (!call->headers_sent) {
        int rc = call_submit_headers(call);
        if (rc < 0) {
            grpc_sendq_msg_free(m);
            return rc;
        }
    }
    grpc_sendq_push(&call->sq, m);
    if (call->sq.bytes >= call->conn->srv->o.send_low_water)
        call->writable_armed = true;
    call_resume(call);
    return 0;
}

static int send_check(const grpc_scall_t *call, size_t len)
{
    if (call->state != GRPC_SCALL_OPEN)
        return -ECANCELED;
    if (call->finishing)
        return -EPIPE;
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    return 0;
}

int grpc_scall_send(grpc_scall_t *call, const void *msg, size_t len)
{
    int rc = send_check(call, len);
    if (rc < 0)
        return rc;
    grpc_sendq_msg_t *m = grpc_sendq_msg_copy(msg, len);
    if (m == NULL)
        return -ENOMEM;
    return call_queue(call, m);
}

int grpc_scall_send_shared(grpc_scall_t *call, const void *msg, size_t len,
                           void (*release)(void *arg), void *arg)
{
    int rc = send_check(call, len);
    grpc_sendq_msg_t *m = rc == 0 ? grpc_sendq_msg_shared(msg, len, release, arg) : NULL;
    if (m == NULL) {
        if (release)
            release(arg);
        return rc < 0 ? rc : -ENOMEM;
    }
    return call_queue(call, m);
}

int grpc_scall_finish(grpc_scall_t *call, int code, const char *message, const grpc_metadata_t *md,
                      size_t n)
{
    if (call->state != GRPC_SCALL_OPEN)
        return -ECANCELED;
    if (call->finishing)
        return -EALREADY;
    int rc = md_block_set(&call->trail_md, md, n);
    return rc < 0 ? rc : call_finish(call, code, message);
}

size_t grpc_scall_pending_bytes(const grpc_scall_t *call)
{
    return call->sq.bytes;
}

int32_t grpc_scall_stream_id(const grpc_scall_t *call)
{
    return call->stream_id;
}

/* ---- requests ----------------------------------------------------------------------------- */

static bool value_is(const uint8_t *v, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(v, want, len) == 0;
}

static bool content_type_grpc(const uint8_t *v, size_t len)
{
    static const char want[] = "application/grpc";
    size_t n = sizeof(want) - 1;
    return len >= n && memcmp(v, want, n) == 0 && (len == n || v[n] == '+' || v[n] == ';');
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *ud)
{
    grpc_sconn_t *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    grpc_scall_t *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* refuses the stream */
    call->conn = c;
    call->stream_id = frame->hd.stream_id;
    grpc_deframer_init(&call->deframer, c->srv->o.max_recv_message);
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, call);
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    grpc_scall_t *call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (call == NULL || call->state != GRPC_SCALL_HEADERS)
        return 0; /* the client's trailers, or a stream we did not take */
    if (value_is(name, namelen, ":method")) {
        call->post = value_is(value, valuelen, "POST");
    } else if (value_is(name, namelen, ":path")) {
        free(call->path);
        call->path = strndup((const char *)value, valuelen);
        if (call->path == NULL)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    } else if (value_is(name, namelen, "content-type")) {
        call->ct_ok = content_type_grpc(value, valuelen);
    } else if (value_is(name, namelen, "te")) {
        call->te_ok = value_is(value, valuelen, "trailers");
    } else if (value_is(name, namelen, "grpc-timeout")) {
        uint64_t ms;
        if (grpc_timeout_parse((const char *)value, valuelen, &ms) < 0) {
            call->reject_code = GRPC_INTERNAL;
            call->reject_why = "malformed grpc-timeout";
        } else {
            call->deadline = grpc_sconn_now(call->conn) + (ms ? ms : 1);
        }
    } else if (value_is(name, namelen, "grpc-encoding")) {
        if (!value_is(value, valuelen, "identity")) {
            call->reject_code = GRPC_UNIMPLEMENTED;
            call->reject_why = "grpc-encoding not supported: only identity is";
        }
    } else if (namelen && name[0] != ':') {
        md_keep(call, name, namelen, value, valuelen);
    }
    return 0;
}

/* Refuses a request before any method sees it: a final response, and the stream is done. */
static void call_refuse(grpc_scall_t *call, const char *http_status, int code, const char *why)
{
    log_debug("grpc server: refused %s from %s: %s", call->path ? call->path : "(no :path)",
              call->conn->name, why);
    call->state = GRPC_SCALL_DONE;
    if (call_submit_final(call, http_status, code, why) < 0)
        nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
}

/* The request headers are complete: checked, then routed to a method. */
static void call_start(grpc_sconn_t *c, grpc_scall_t *call)
{
    char why[160];
    if (!call->post) {
        call_refuse(call, "405", GRPC_INTERNAL, "gRPC requires :method POST");
        return;
    }
    if (!call->ct_ok) {
        call_refuse(call, "415", GRPC_INVALID_ARGUMENT, "content-type is not application/grpc");
        return;
    }
    if (!call->te_ok) {
        call_refuse(call, "200", GRPC_INTERNAL, "gRPC requires te: trailers");
        return;
    }
    if (call->reject_code) {
        call_refuse(call, "200", call->reject_code, call->reject_why);
        return;
    }
    const grpc_method_t *m =
        call->path ? grpc_server_find_method(c->srv, call->path, strlen(call->path)) : NULL;
    if (m == NULL) {
        snprintf(why, sizeof(why), "unknown method %.120s", call->path ? call->path : "(none)");
        call_refuse(call, "200", GRPC_UNIMPLEMENTED, why);
        return;
    }
    call->state = GRPC_SCALL_OPEN;
    call->method = m;
    call->user = m->user;
    c->ncalls++;
    if (call->deadline)
        grpc_sconn_arm_deadline(c);
    m->ops->on_start(call, call->user);
}

/* The client's END_STREAM: no more messages. */
static void call_half_closed(grpc_scall_t *call)
{
    call->remote_closed = true;
    if (call->state != GRPC_SCALL_OPEN)
        return;
    if (!grpc_deframer_idle(&call->deframer)) {
        call_fail(call, GRPC_INTERNAL, "the request ended inside a message");
        return;
    }
    if (call->method->ops->on_half_close)
        call->method->ops->on_half_close(call, call->user);
}

void grpc_scall_frame_received(grpc_sconn_t *c, const nghttp2_frame *frame)
{
    grpc_scall_t *call = nghttp2_session_get_stream_user_data(c->h2, frame->hd.stream_id);
    if (call == NULL)
        return;
    if (frame->hd.type == NGHTTP2_HEADERS && call->state == GRPC_SCALL_HEADERS)
        call_start(c, call);
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !call->remote_closed)
        call_half_closed(call);
}

static const grpc_deframe_texts_t REQUEST_TEXTS = {
    .too_large = "request message larger than the limit of",
    .compressed = "compressed message without an agreed grpc-encoding",
    .no_memory = "out of memory for a request message",
    .bad_flag = "request message with a bad flag byte",
};

static bool call_deliver_message(void *arg, const uint8_t *msg, size_t len)
{
    grpc_scall_t *call = arg;
    call->method->ops->on_message(call, msg, len, call->user);
    return call->state == GRPC_SCALL_OPEN;
}

/* Hands every whole message of data[0..len) to the method, until the call ends. */
static void call_take_data(grpc_scall_t *call, const uint8_t *data, size_t len)
{
    int rc = grpc_deframer_feed(&call->deframer, data, len, call_deliver_message, call);
    if (rc < 0) {
        char msg[128];
        int code = grpc_deframe_status(rc, &call->deframer, &REQUEST_TEXTS, msg, sizeof(msg));
        call_fail(call, code, msg);
    }
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    grpc_sconn_t *c = ud;
    grpc_scall_t *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (call && call->state == GRPC_SCALL_OPEN && !call->remote_closed)
        call_take_data(call, data, len);
    if (c->state == GRPC_SCONN_CLOSED) /* the server was closed from on_message */
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    /* The bytes are taken (handed out, copied into the deframer, or dropped): open the window. */
    nghttp2_session_consume(h2, stream_id, len);
    return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *ud)
{
    grpc_sconn_t *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    c->ping_strikes = 0; /* PINGs while we send are not a flood */
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    grpc_scall_t *call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (call == NULL)
        return 0;
    call->trailers_sent = true;
    if (call->state == GRPC_SCALL_OPEN)
        call_end(call, call->status, call->status_msg);
    /* Our side is done: a client still sending is told to stop, and the stream can go. */
    if (!nghttp2_session_get_stream_remote_close(h2, frame->hd.stream_id))
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *ud)
{
    (void)ud;
    grpc_scall_t *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (call == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(h2, stream_id, NULL);
    call_unlink(call);
    call->stream_gone = true;
    if (call->state == GRPC_SCALL_OPEN) {
        char msg[96];
        snprintf(msg, sizeof(msg), "the client reset the stream (%s)",
                 nghttp2_http2_strerror(error_code));
        call_end(call, GRPC_CANCELLED, msg);
    } else if (call->state != GRPC_SCALL_ENDING) {
        call->state = GRPC_SCALL_DONE;
        call_bury(call);
    }
    return 0;
}

void grpc_scalls_install_callbacks(nghttp2_session_callbacks *cbs)
{
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
}
