/* A protobuf encoder that writes a message's wire bytes straight into one buffer, its fields
 * named as the .proto names them and looked up in the generated descriptors, so what it writes
 * is checked against xds/proto without building protobuf-c structs. The view's resources are
 * written with it once and shared as bytes. */
#ifndef REMORA_XDS_VIEW_PB_WRITE_H
#define REMORA_XDS_VIEW_PB_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define PBW_MAX_DEPTH 24

/* The writer: the bytes so far, and the open submessages. An error (out of memory, a field the
 * descriptor lacks or of another type, nesting too deep) sticks: every later call does nothing
 * and pbw_finish reports it. */
typedef struct pbw {
    uint8_t *buf; /* owned until pbw_finish hands it out */
    size_t len, cap;
    struct {
        const ProtobufCMessageDescriptor *desc;
        size_t start; /* where the submessage's bytes begin */
    } stack[PBW_MAX_DEPTH];
    int depth; /* stack[0] is the top-level message */
    int err;   /* 0 or the first negative error */
    char what[160];
} pbw_t;

/* Starts a message of type desc (borrowed, static) in w (caller's storage). */
void pbw_init(pbw_t *w, const ProtobufCMessageDescriptor *desc);
/* Frees what w holds (after an error, or instead of pbw_finish). */
void pbw_reset(pbw_t *w);
/* Ends the top-level message: *out is the bytes (new, free()), *len their count. Returns 0, or
 * the error w met (then nothing is handed out; err, errlen receive its text). Every submessage
 * must have been ended. */
int pbw_finish(pbw_t *w, uint8_t **out, size_t *len, char *err, size_t errlen);

/* Fields of the message open now, by their .proto name (borrowed). A repeated field is written
 * by calling again. */
void pbw_string(pbw_t *w, const char *field, const char *value); /* value borrowed; NULL: skip */
void pbw_uint(pbw_t *w, const char *field, uint64_t value); /* uint32/uint64/enum/bool, varint */
/* Appends fields already encoded (len bytes at p, borrowed) to the message open now. */
void pbw_raw(pbw_t *w, const uint8_t *p, size_t len);
/* Opens the submessage `field`; pbw_end closes it. */
void pbw_begin(pbw_t *w, const char *field);
void pbw_end(pbw_t *w);
/* An empty submessage (e.g. `ads: {}`). */
void pbw_empty(pbw_t *w, const char *field);
/* A google.protobuf wrapper (UInt32Value, BoolValue) with `value`. */
void pbw_wrapped(pbw_t *w, const char *field, uint64_t value);
/* A google.protobuf.Duration of ms milliseconds. */
void pbw_duration_ms(pbw_t *w, const char *field, uint64_t ms);
/* Opens a google.protobuf.Any `field` holding a message of type desc (borrowed, static): its
 * type URL is written, then the fields that follow are desc's; pbw_end_any closes it. */
void pbw_begin_any(pbw_t *w, const char *field, const ProtobufCMessageDescriptor *desc);
void pbw_end_any(pbw_t *w);

/* 64-bit FNV-1a of len bytes at p (borrowed), continued from h (start with PBW_HASH_INIT). */
#define PBW_HASH_INIT 14695981039346656037ull
uint64_t pbw_hash(uint64_t h, const void *p, size_t len);

#endif
