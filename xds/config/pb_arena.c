/* A bump allocator for protobuf-c (pb_arena.h). The arena's header and its first block are one
 * malloc, sized from the encoded length; a decode that outgrows it takes more blocks, each twice
 * the last (or the size of the allocation asking for it); pb_arena_unpack sizes the first
 * block to the message (below), so a resource is one malloc. free is a no-op: protobuf-c frees only
 * its scratch arrays of scanned fields during a decode and, on a failed decode, the partial
 * message, whose memory goes with the arena. */
#include <stdalign.h>
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

typedef struct arena_block {
    struct arena_block *next;
    size_t size; /* bytes after this header */
} arena_block_t;

struct pb_arena {
    ProtobufCAllocator alloc; /* allocator_data: the arena */
    arena_block_t *more;      /* the blocks after the first, the newest first (owned) */
    char *pos, *end;          /* the free part of the block in use */
    size_t first;             /* the first block's size, after this header */
    size_t next;              /* the next block's size */
    size_t used;              /* bytes handed out, for pb_arena_stats */
};

static size_t align_up(size_t n)
{
    size_t a = ARENA_ALIGN;
    return (n + a - 1) & ~(a - 1);
}

static void *arena_alloc(void *data, size_t size)
{
    pb_arena_t *a = data;
    size = align_up(size ? size : 1);
    if ((size_t)(a->end - a->pos) < size) {
        size_t want = a->next > size ? a->next : size;
        if (want > SIZE_MAX - sizeof(arena_block_t) - ARENA_ALIGN)
            return NULL;
        arena_block_t *b = malloc(align_up(sizeof(*b)) + want);
        if (b == NULL)
            return NULL;
        b->next = a->more;
        b->size = want;
        a->more = b;
        a->pos = (char *)b + align_up(sizeof(*b));
        a->end = a->pos + want;
        if (a->next <= SIZE_MAX / 4)
            a->next *= 2;
    }
    void *p = a->pos;
    a->pos += size;
    a->used += size;
    return p;
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

/* A new arena whose first block gives `first` bytes, or NULL. */
static pb_arena_t *arena_new(size_t first)
{
    size_t head = align_up(sizeof(pb_arena_t));
    first = align_up(first);
    if (first > SIZE_MAX - head)
        return NULL;
    pb_arena_t *a = malloc(head + first);
    if (a == NULL)
        return NULL;
    *a = (pb_arena_t){
        .alloc = {.alloc = arena_alloc, .free = arena_free, .allocator_data = a},
        .pos = (char *)a + head,
        .end = (char *)a + head + first,
        .first = first,
        .next = first > BLOCK_MIN ? first : BLOCK_MIN,
    };
    return a;
}

/* Decodes into a new arena whose first block is `first` bytes; NULL when it fails. */
static ProtobufCMessage *unpack_in(const ProtobufCMessageDescriptor *desc, size_t len,
                                   const uint8_t *data, size_t first, pb_arena_t **arena)
{
    pb_arena_t *a = arena_new(first);
    ProtobufCMessage *msg = a ? protobuf_c_message_unpack(desc, &a->alloc, len, data) : NULL;
    if (msg == NULL) {
        pb_arena_free(a);
        a = NULL;
    }
    *arena = a;
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
    ProtobufCMessage *msg = unpack_in(desc, len, data, guess, &a);
    if (msg == NULL)
        return NULL;
    if (a->more || a->first - a->used > a->used / 16) {
        pb_arena_t *exact;
        ProtobufCMessage *again = unpack_in(desc, len, data, a->used, &exact);
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
    if (a == NULL)
        return;
    for (arena_block_t *b = a->more, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(a);
}

void pb_arena_stats(const pb_arena_t *a, size_t *blocks, size_t *reserved, size_t *used)
{
    *blocks = 1;
    *reserved = a->first;
    for (const arena_block_t *b = a->more; b; b = b->next) {
        (*blocks)++;
        *reserved += b->size;
    }
    *used = a->used;
}
