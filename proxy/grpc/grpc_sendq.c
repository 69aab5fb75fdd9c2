/* A call's outgoing messages, framed as they are pulled (see grpc_sendq.h). */
#include <stdlib.h>
#include <string.h>

#include "proxy/grpc/grpc_sendq.h"

grpc_sendq_msg_t *grpc_sendq_msg_copy(const void *msg, size_t len)
{
    grpc_sendq_msg_t *m = malloc(sizeof(*m) + len);
    if (m == NULL)
        return NULL;
    *m = (grpc_sendq_msg_t){.len = GRPC_FRAME_PREFIX + len, .msg = m->data};
    grpc_frame_prefix(m->prefix, (uint32_t)len);
    if (len)
        memcpy(m->data, msg, len);
    return m;
}

grpc_sendq_msg_t *grpc_sendq_msg_shared(const void *msg, size_t len, void (*release)(void *arg),
                                        void *arg)
{
    grpc_sendq_msg_t *m = malloc(sizeof(*m));
    if (m == NULL)
        return NULL;
    *m = (grpc_sendq_msg_t){
        .len = GRPC_FRAME_PREFIX + len, .msg = msg, .release = release, .arg = arg};
    grpc_frame_prefix(m->prefix, (uint32_t)len);
    return m;
}

void grpc_sendq_msg_free(grpc_sendq_msg_t *m)
{
    if (m == NULL)
        return;
    if (m->release)
        m->release(m->arg);
    free(m);
}

void grpc_sendq_push(grpc_sendq_t *q, grpc_sendq_msg_t *m)
{
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->bytes += m->len;
}

/* Copies m's bytes [at, at + n) (prefix, then message) into out. */
static void msg_copy_out(const grpc_sendq_msg_t *m, size_t at, size_t n, uint8_t *out)
{
    if (at < GRPC_FRAME_PREFIX) {
        size_t k = GRPC_FRAME_PREFIX - at < n ? GRPC_FRAME_PREFIX - at : n;
        memcpy(out, m->prefix + at, k);
        out += k;
        at += k;
        n -= k;
    }
    if (n)
        memcpy(out, m->msg + (at - GRPC_FRAME_PREFIX), n);
}

size_t grpc_sendq_pull(grpc_sendq_t *q, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap && q->head) {
        grpc_sendq_msg_t *m = q->head;
        size_t take = m->len - m->off < cap - n ? m->len - m->off : cap - n;
        msg_copy_out(m, m->off, take, buf + n);
        m->off += take;
        n += take;
        if (m->off == m->len) {
            q->head = m->next;
            if (q->head == NULL)
                q->tail = NULL;
            grpc_sendq_msg_free(m);
        }
    }
    q->bytes -= n;
    return n;
}

void grpc_sendq_clear(grpc_sendq_t *q)
{
    while (q->head) {
        grpc_sendq_msg_t *m = q->head;
        q->head = m->next;
        grpc_sendq_msg_free(m);
    }
    q->tail = NULL;
    q->bytes = 0;
}
