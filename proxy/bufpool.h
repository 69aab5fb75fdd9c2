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

void bufpool_init(bufpool_t *p, size_t max_free);
/* A slab of BUFPOOL_SLAB_SIZE bytes, or NULL when memory is exhausted. Caller owns it. */
char *bufpool_get(bufpool_t *p);
/* Takes the slab back. NULL is ignored. */
void bufpool_put(bufpool_t *p, char *slab);
void bufpool_destroy(bufpool_t *p);

#endif
