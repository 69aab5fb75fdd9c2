/* A bump allocator for protobuf-c (pb_arena.h). An arena is a chain of blocks, each one malloc
 * with a 16-byte header; a decode that outgrows its block takes another, twice as large (or the
 * size of the allocation asking for it). pb_arena_unpack sizes the first block to the message
 * (below), so a kept resource is one malloc. free is a no-op: protobuf-c frees only
 * its scratch arrays of scanned fields during a decode and, on a failed decode, the partial
 * message, whose memory goes with the arena. */
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>

#include "xds/config/pb_arena.h"

/* Every allocation starts at a multiple of this: protobuf-c's structs hold pointers, 64-bit
 * integers and doubles, nothing wider. */
typedef union {
    uint64_t u;
    double d;
    void *p;
} arena_unit_t;
#define ARENA_ALIGN alignof(arena_unit_t)

/* The first decode's first block: the message's own struct and this many bytes per encoded
 * byte (a decoded message is ~10 times its wire bytes: an Endpoint's SocketAddress is ~20 bytes
 * on the wire and a 100-byte struct plus its address string decoded), and some. */
#define GUESS_PER_BYTE 16
#define GUESS_EXTRA    256
#define BLOCK_MIN      256

/* A block: this header, then its bytes. The arena is its first block; only pb_arena_unpack's
 * measuring decode ever takes more. */
struct pb_arena {
    struct pb_arena *more; /* the next block (owned), or NULL */
    size_t size;           /* bytes after this header */
};

/* The allocator's state during one decode (on the stack: the blocks keep only their header). */
typedef struct arena_fill {
    ProtobufCAllocator alloc; /* allocator_data: this */
    pb_arena_t *first, *last; /* the blocks (first owned) */
    char *pos, *end;          /* the free part of the last block */
    size_t next;              /* the next block's size */
    size_t used;              /* bytes handed out */
} arena_fill_t;

static size_t align_up(size_t n)
{
    size_t a = ARENA_ALIGN;
    return (n + a - 1) & ~(a - 1);
}

#define HEAD align_up(sizeof(pb_arena_t))

/* Appends a block of `size` bytes to f; false when out of memory. */
static bool fill_block(arena_fill_t *f, size_t size)
{
    size = align_up(size);
    if (size > SIZE_MAX - HEAD)
        return false;
    pb_arena_t *b = malloc(HEAD + size);
    if (b == NULL)
        return false;
    *b = (pb_arena_t){.size = size};
    if (f->last)
        f->last->more = b;
    else
        f->first = b;
    f->last = b;
    f->pos = (char *)b + HEAD;
    f->end = f->pos + size;
    return true;
}

static void *arena_alloc(void *data, size_t size)
{
    arena_fill_t *f = data;
    size = align_up(size ? size : 1);
    if ((size_t)(f->end - f->pos) < size) {
        if (!fill_block(f, f->next > size ? f->next : size))
            return NULL;
        if (f->next <= SIZE_MAX / 4)
            f->next *= 2;
    }
    void *p = f->pos;
    f->pos += size;
    f->used += size;
    return p;
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

/* Decodes into a new arena whose first block is `first` bytes, its bytes used in *used; NULL
 * when it fails. */
static ProtobufCMessage *unpack_in(const ProtobufCMessageDescriptor *desc, size_t len,
                                   const uint8_t *data, size_t first, pb_arena_t **arena,
                                   size_t *used)
{
    arena_fill_t f = {.alloc = {.alloc = arena_alloc, .free = arena_free}};
    f.alloc.allocator_data = &f;
    f.next = first > BLOCK_MIN ? first : BLOCK_MIN;
    ProtobufCMessage *msg = NULL;
    if (fill_block(&f, first))
        msg = protobuf_c_message_unpack(desc, &f.alloc, len, data);
    if (msg == NULL) {
        pb_arena_free(f.first);
        f.first = NULL;
    }
    *arena = f.first;
    *used = f.used;
    return msg;
}

/* Decoding is deterministic: the same bytes ask for the same allocations in the same order. So
 * a first decode into a generous arena measures what the message takes, and unless that fit
 * closely, a second one decodes it into a single block of exactly that size. */
ProtobufCMessage *pb_arena_unpack(const ProtobufCMessageDescriptor *desc, size_t len,
                                  const uint8_t *data, pb_arena_t **arena)
{
    *arena = NULL;
    size_t guess = SIZE_MAX;
    if (len < (SIZE_MAX - desc->sizeof_message - GUESS_EXTRA) / GUESS_PER_BYTE)
        guess = desc->sizeof_message + GUESS_PER_BYTE * len + GUESS_EXTRA;
    pb_arena_t *a;
    size_t used;
    ProtobufCMessage *msg = unpack_in(desc, len, data, guess, &a, &used);
    if (msg == NULL)
        return NULL;
    if (a->more || a->size - used > used / 16) {
        pb_arena_t *exact;
        size_t again_used;
        ProtobufCMessage *again = unpack_in(desc, len, data, used, &exact, &again_used);
        pb_arena_free(a);
        if (again == NULL)
            return NULL; /* out of memory: the bytes decoded once */
        a = exact;
        msg = again;
    }
    *arena = a;
    return msg;
}

void pb_arena_free(pb_arena_t *a)
{
    for (pb_arena_t *next; a; a = next) {
        next = a->more;
        free(a);
    }
}

void pb_arena_stats(const pb_arena_t *a, size_t *blocks, size_t *bytes)
{
    *blocks = 0;
    *bytes = 0;
    for (; a; a = a->more) {
        (*blocks)++;
        *bytes += a->size;
    }
}
