/* The protobuf encoder of pb_write.h: fields by name through the descriptors, submessages
 * written in place and their length put in front when they end. */
#include "xds/view/pb_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "google/protobuf/any.pb-c.h"

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

static void fail(pbw_t *w, int err, const char *field, const char *why)
{
    if (w->err)
        return;
    w->err = err;
    const ProtobufCMessageDescriptor *d = w->depth >= 0 ? w->stack[w->depth].desc : NULL;
    snprintf(w->what, sizeof(w->what), "%s.%s: %s", d ? d->name : "?", field ? field : "?", why);
}

void pbw_init(pbw_t *w, const ProtobufCMessageDescriptor *desc)
{
    memset(w, 0, sizeof(*w));
    w->stack[0].desc = desc;
}

void pbw_reset(pbw_t *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

static bool room(pbw_t *w, size_t n)
{
    if (w->err)
        return false;
    if (w->len + n <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n)
        cap *= 2;
    uint8_t *b = realloc(w->buf, cap);
    if (b == NULL) {
        fail(w, -ENOMEM, NULL, "out of memory");
        return false;
    }
    w->buf = b;
    w->cap = cap;
    return true;
}

static size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static void put_varint(pbw_t *w, uint64_t v)
{
    if (room(w, 10))
        w->len += varint_put(w->buf + w->len, v);
}

/* The field of the open message, checked to be of one of the kinds wanted. */
static const ProtobufCFieldDescriptor *field_of(pbw_t *w, const char *name, bool message)
{
    if (w->err)
        return NULL;
    const ProtobufCMessageDescriptor *d = w->stack[w->depth].desc;
    /* The view writes millions of fields per build: a per-thread cache by (descriptor, name
     * address) saves the descriptor's binary search; a hit is confirmed by the name itself. */
    static _Thread_local struct {
        const ProtobufCMessageDescriptor *desc;
        const char *name;
        const ProtobufCFieldDescriptor *f;
    } cache[512];
    size_t slot = (((uintptr_t)d >> 4) ^ ((uintptr_t)name >> 1) ^ ((uintptr_t)name >> 9)) & 511;
    const ProtobufCFieldDescriptor *f = NULL;
    if (cache[slot].desc == d && cache[slot].name == name && strcmp(cache[slot].f->name, name) == 0)
        f = cache[slot].f;
    else if ((f = protobuf_c_message_descriptor_get_field_by_name(d, name)) != NULL)
        cache[slot].desc = d, cache[slot].name = name, cache[slot].f = f;
    if (f == NULL) {
        fail(w, -EINVAL, name, "no such field");
        return NULL;
    }
    bool is_message = f->type == PROTOBUF_C_TYPE_MESSAGE;
    if (is_message != message) {
        fail(w, -EINVAL, name, message ? "not a message field" : "a message field");
        return NULL;
    }
    return f;
}

static void put_tag(pbw_t *w, unsigned id, unsigned wire)
{
    put_varint(w, ((uint64_t)id << 3) | wire);
}

void pbw_string(pbw_t *w, const char *field, const char *value)
{
    const ProtobufCFieldDescriptor *f = field_of(w, field, false);
    if (f == NULL || value == NULL)
        return;
    if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_BYTES) {
        fail(w, -EINVAL, field, "not a string field");
        return;
    }
    size_t n = strlen(value);
    put_tag(w, f->id, WIRE_LEN);
    put_varint(w, n);
    if (room(w, n)) {
        memcpy(w->buf + w->len, value, n);
        w->len += n;
    }
}

void pbw_uint(pbw_t *w, const char *field, uint64_t value)
{
    const ProtobufCFieldDescriptor *f = field_of(w, field, false);
    if (f == NULL)
        return;
    switch (f->type) {
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_BOOL:
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_INT64:
        put_tag(w, f->id, WIRE_VARINT);
        put_varint(w, value);
        return;
    default:
        fail(w, -EINVAL, field, "not a varint field");
    }
}

void pbw_raw(pbw_t *w, const uint8_t *p, size_t len)
{
    if (len && room(w, len)) {
        memcpy(w->buf + w->len, p, len);
        w->len += len;
    }
}

static void open_frame(pbw_t *w, const ProtobufCMessageDescriptor *desc, const char *field)
{
    if (w->err)
        return;
    if (w->depth + 1 >= PBW_MAX_DEPTH) {
        fail(w, -E2BIG, field, "nested too deep");
        return;
    }
    w->depth++;
    w->stack[w->depth].desc = desc;
    w->stack[w->depth].start = w->len;
}

void pbw_begin(pbw_t *w, const char *field)
{
    const ProtobufCFieldDescriptor *f = field_of(w, field, true);
    if (f == NULL)
        return;
    put_tag(w, f->id, WIRE_LEN);
    open_frame(w, f->descriptor, field);
}

/* Closes the open frame: its bytes move up to make room for their length in front. */
void pbw_end(pbw_t *w)
{
    if (w->err)
        return;
    if (w->depth == 0) {
        fail(w, -EINVAL, NULL, "ended more submessages than were begun");
        return;
    }
    size_t start = w->stack[w->depth].start, n = w->len - start;
    uint8_t pre[10];
    size_t k = varint_put(pre, n);
    if (!room(w, k))
        return;
    memmove(w->buf + start + k, w->buf + start, n);
    memcpy(w->buf + start, pre, k);
    w->len += k;
    w->depth--;
}

void pbw_empty(pbw_t *w, const char *field)
{
    pbw_begin(w, field);
    pbw_end(w);
}

void pbw_wrapped(pbw_t *w, const char *field, uint64_t value)
{
    pbw_begin(w, field);
    pbw_uint(w, "value", value);
    pbw_end(w);
}

void pbw_duration_ms(pbw_t *w, const char *field, uint64_t ms)
{
    pbw_begin(w, field);
    if (ms / 1000)
        pbw_uint(w, "seconds", ms / 1000);
    if (ms % 1000)
        pbw_uint(w, "nanos", (ms % 1000) * 1000000);
    pbw_end(w);
}

void pbw_begin_any(pbw_t *w, const char *field, const ProtobufCMessageDescriptor *desc)
{
    char url[200];
    pbw_begin(w, field);
    if (w->err)
        return;
    if (w->stack[w->depth].desc != &google__protobuf__any__descriptor) {
        fail(w, -EINVAL, field, "not a google.protobuf.Any");
        return;
    }
    snprintf(url, sizeof(url), "type.googleapis.com/%s", desc->name);
    pbw_string(w, "type_url", url);
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
        &google__protobuf__any__descriptor, "value");
    put_tag(w, f->id, WIRE_LEN);
    open_frame(w, desc, field);
}

void pbw_end_any(pbw_t *w)
{
    pbw_end(w); /* the value */
    pbw_end(w); /* the Any */
}

int pbw_finish(pbw_t *w, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    if (!w->err && w->depth != 0)
        fail(w, -EINVAL, NULL, "a submessage was not ended");
    if (w->err) {
        int rc = err_set(err, errlen, w->err, "encoding %s", w->what);
        pbw_reset(w);
        return rc;
    }
    *out = w->buf ? w->buf : malloc(1);
    if (*out == NULL)
        return err_set(err, errlen, -ENOMEM, "out of memory");
    *len = w->len;
    w->buf = NULL;
    w->len = w->cap = 0;
    return 0;
}

uint64_t pbw_hash(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}
