/* Whether two messages are the same config, field by field: how a build tells a resource that
 * came again unchanged (the copy the last snapshot kept serves again) from one that changed. It
 * errs towards "different": a false "same" would keep a stale config, a false "different" only
 * costs a copy. */
#include <string.h>

#include "xds/snapshot/snapshot_build.h"

/* Bytes of one element of a field of type t, as protobuf-c lays out repeated fields. */
static size_t elt_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default: /* PROTOBUF_C_TYPE_MESSAGE */
        return sizeof(ProtobufCMessage *);
    }
}

/* One value of type t at a and at b. Floating point compares bit for bit (-0.0 and 0.0 differ:
 * "different" is the safe answer). */
static bool value_equal(ProtobufCType t, const void *a, const void *b)
{
    switch (t) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *x = *(char *const *)a, *y = *(char *const *)b;
        return x == y || (x && y && strcmp(x, y) == 0);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *x = a, *y = b;
        return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *x = *(ProtobufCMessage *const *)a;
        const ProtobufCMessage *y = *(ProtobufCMessage *const *)b;
        return x == y || (x && y && snap_message_equal(x, y));
    }
    default:
        return memcmp(a, b, elt_size(t)) == 0;
    }
}

static bool unknown_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    if (a->n_unknown_fields != b->n_unknown_fields)
        return false;
    for (unsigned i = 0; i < a->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *x = &a->unknown_fields[i], *y = &b->unknown_fields[i];
        if (x->tag != y->tag || x->wire_type != y->wire_type || x->len != y->len ||
            (x->len && memcmp(x->data, y->data, x->len) != 0))
            return false;
    }
    return true;
}

bool snap_message_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    if (a == b)
        return true;
    if (a->descriptor != b->descriptor || !unknown_equal(a, b))
        return false;
    const char *pa = (const char *)a, *pb = (const char *)b;
    const ProtobufCMessageDescriptor *d = a->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(pa + f->quantifier_offset);
            if (n != *(const size_t *)(pb + f->quantifier_offset))
                return false;
            const char *va = *(char *const *)(pa + f->offset),
                       *vb = *(char *const *)(pb + f->offset);
            size_t sz = elt_size(f->type);
            for (size_t j = 0; j < n; j++)
                if (!value_equal(f->type, va + j * sz, vb + j * sz))
                    return false;
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t ca = *(const uint32_t *)(pa + f->quantifier_offset);
            if (ca != *(const uint32_t *)(pb + f->quantifier_offset))
                return false;
            if (ca != f->id)
                continue; /* another member of the oneof is the one set */
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
                   f->type != PROTOBUF_C_TYPE_MESSAGE) {
            protobuf_c_boolean ha = *(const protobuf_c_boolean *)(pa + f->quantifier_offset);
            if (ha != *(const protobuf_c_boolean *)(pb + f->quantifier_offset))
                return false;
        }
        if (!value_equal(f->type, pa + f->offset, pb + f->offset))
            return false;
    }
    return true;
}
