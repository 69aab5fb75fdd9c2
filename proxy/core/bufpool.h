/* Per-worker pool of fixed-size read slabs: reads land straight in a slab, the slab travels
 * with the write that forwards it, and returns to the pool when that write completes. */
#ifndef REMORA_BUFPOOL_H
#define REMORA_BUFPOOL_H

#include <stddef.h>

#define BUFPOOL_SLAB_SIZE (32 * 1024)

typedef struct bufpool {
    void *free_list; /* singly linked through each slab's first bytes */
    size_t nfree;
    size_t max_free; /* slabs kept for reuse; the rest go back to malloc */
} bufpool_t;

/* p: the caller's (borrowed). */
void bufpool_init(bufpool_t *p, size_t max_free);
/* A slab of BUFPOOL_SLAB_SIZE bytes, or NULL when memory is exhausted. Caller owns it. */
char *bufpool_get(bufpool_t *p);
/* Takes the slab back (ownership moves to the pool). NULL is ignored. */
void bufpool_put(bufpool_t *p, char *slab);
/* Frees the slabs kept for reuse (p itself stays the caller's); slabs handed out stay their
 * holders'. */
void bufpool_destroy(bufpool_t *p);

/* A connection's read buffer: a pool slab while it fits one, grown by malloc beyond, and
 * given back whenever it holds no bytes, so idle connections hold no memory. */
typedef struct conn_buf {
    char *data;
    size_t len; /* bytes waiting in data[0..len) */
    size_t cap;
} conn_buf_t;

/* Room for a read (p and b borrowed; b's data is owned by b): takes a slab when there is no buffer,
 * and grows (up to max) when less than 4 KiB is free. Returns the free space (possibly 0 when
 * memory is short). */
size_t conn_buf_reserve(bufpool_t *p, conn_buf_t *b, size_t max);
/* Gives b's buffer back to p (whatever it holds); p and b borrowed. */
void conn_buf_drop(bufpool_t *p, conn_buf_t *b);
/* Gives b's buffer back to p if no bytes wait in it; p and b borrowed. */
void conn_buf_trim(bufpool_t *p, conn_buf_t *b);

#endif
