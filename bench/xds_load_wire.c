/* xds_load's reader of discovery responses: it walks the protobuf wire format of a
 * DiscoveryResponse or DeltaDiscoveryResponse and points at each resource's bytes, copying and
 * decoding nothing, so a sidecar's cost per response is a walk over it (the resources
 * themselves go through the shared cache, xds_load_cache.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench/xds_load.h"

typedef struct cursor {
    const uint8_t *p, *end;
} cursor_t;

static int read_varint(cursor_t *c, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p >= c->end)
            return -EBADMSG;
        uint8_t b = *c->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = x;
            return 0;
        }
    }
    return -EBADMSG;
}

/* The next field of c: its number and wire type, and for a length-delimited one its bytes.
 * Returns 1 with a field, 0 at the end, -EBADMSG when the bytes are not protobuf. */
static int next_field(cursor_t *c, uint32_t *field, xl_bytes_t *bytes)
{
    if (c->p >= c->end)
        return 0;
    uint64_t tag, v;
    if (read_varint(c, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
        return -EBADMSG;
    *field = (uint32_t)(tag >> 3);
    bytes->p = NULL, bytes->n = 0;
    switch (tag & 7) {
    case 0:
        return read_varint(c, &v) < 0 ? -EBADMSG : 1;
    case 1:
        if (c->end - c->p < 8)
            return -EBADMSG;
        c->p += 8;
        return 1;
    case 2:
        if (read_varint(c, &v) < 0 || v > (uint64_t)(c->end - c->p))
            return -EBADMSG;
        bytes->p = c->p, bytes->n = (size_t)v;
        c->p += v;
        return 2;
    case 5:
        if (c->end - c->p < 4)
            return -EBADMSG;
        c->p += 4;
        return 1;
    default:
        return -EBADMSG;
    }
}

/* A field this reader takes must be length-delimited: anything else is a broken message. */
#define WANT_BYTES(kind)                                                                           \
    do {                                                                                           \
        if ((kind) != 2)                                                                           \
            return -EBADMSG;                                                                       \
    } while (0)

static int read_any(xl_bytes_t in, xl_wire_res_t *r)
{
    cursor_t c = {in.p, in.p + in.n};
    uint32_t f;
    xl_bytes_t b;
    int kind;
    r->has_any = true;
    while ((kind = next_field(&c, &f, &b)) > 0) {
        if (f == 1 || f == 2)
            WANT_BYTES(kind);
        if (f == 1)
            r->type_url = b;
        else if (f == 2)
            r->value = b;
    }
    return kind;
}

/* ResourceName { string name = 1; ... } */
static int read_resource_name(xl_bytes_t in, xl_bytes_t *name)
{
    cursor_t c = {in.p, in.p + in.n};
    uint32_t f;
    xl_bytes_t b;
    int kind;
    while ((kind = next_field(&c, &f, &b)) > 0)
        if (f == 1) {
            WANT_BYTES(kind);
            *name = b;
        }
    return kind;
}

/* Resource { version = 1; Any resource = 2; name = 3; ResourceName resource_name = 8 } */
static int read_delta_resource(xl_bytes_t in, xl_wire_res_t *r)
{
    cursor_t c = {in.p, in.p + in.n};
    uint32_t f;
    xl_bytes_t b;
    int kind;
    while ((kind = next_field(&c, &f, &b)) > 0) {
        if (f == 1 || f == 2 || f == 3 || f == 8)
            WANT_BYTES(kind);
        if (f == 1)
            r->version = b;
        else if (f == 2 && read_any(b, r) < 0)
            return -EBADMSG;
        else if (f == 3)
            r->name = b;
        else if (f == 8 && r->name.n == 0 && read_resource_name(b, &r->name) < 0)
            return -EBADMSG;
    }
    return kind;
}

static xl_wire_res_t *res_scratch;
static size_t res_cap;
static xl_bytes_t *removed_scratch;
static size_t removed_cap;

static int grow(void **v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *nv = realloc(*v, n * size);
    if (nv == NULL)
        return -ENOMEM;
    *v = nv;
    *cap = n;
    return 0;
}

static int add_resource(xl_response_t *out, bool delta, xl_bytes_t b)
{
    if (grow((void **)&res_scratch, &res_cap, out->nres + 1, sizeof(*res_scratch)) < 0)
        return -ENOMEM;
    out->res = res_scratch;
    xl_wire_res_t *r = &res_scratch[out->nres++];
    memset(r, 0, sizeof(*r));
    return delta ? read_delta_resource(b, r) : read_any(b, r);
}

static int add_removed(xl_response_t *out, xl_bytes_t name)
{
    if (grow((void **)&removed_scratch, &removed_cap, out->nremoved + 1, sizeof(*removed_scratch)) <
        0)
        return -ENOMEM;
    out->removed = removed_scratch;
    removed_scratch[out->nremoved++] = name;
    return 0;
}

int xl_response_read(bool delta, const uint8_t *p, size_t n, xl_response_t *out)
{
    memset(out, 0, sizeof(*out));
    cursor_t c = {p, p + n};
    uint32_t f;
    xl_bytes_t b;
    int kind = 0, rc = 0;
    while (rc >= 0 && (kind = next_field(&c, &f, &b)) > 0) {
        bool taken = f == 1 || f == 2 || f == 4 || f == 5 || (delta && (f == 6 || f == 8));
        if (taken && kind != 2)
            return -EBADMSG;
        if (f == 1)
            out->version = b;
        else if (f == 2)
            rc = add_resource(out, delta, b);
        else if (f == 4)
            out->type_url = b;
        else if (f == 5)
            out->nonce = b;
        else if (delta && f == 6)
            rc = add_removed(out, b);
        else if (delta && f == 8) {
            xl_bytes_t name = {NULL, 0};
            rc = read_resource_name(b, &name);
            if (rc >= 0)
                rc = add_removed(out, name);
        }
    }
    if (rc < 0)
        return rc == -ENOMEM ? -ENOMEM : -EBADMSG;
    return kind < 0 ? -EBADMSG : 0;
}

void xl_wire_free(void)
{
    free(res_scratch);
    free(removed_scratch);
    res_scratch = NULL, removed_scratch = NULL;
    res_cap = removed_cap = 0;
}
