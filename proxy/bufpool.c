/* Slab free list: no locking, one pool per worker thread. */
#include "proxy/bufpool.h"

#include <stdlib.h>

void bufpool_init(bufpool_t *p, size_t max_free)
{
    p->free_list = NULL;
    p->nfree = 0;
    p->max_free = max_free;
}

char *bufpool_get(bufpool_t *p)
{
    if (p->free_list) {
        char *slab = p->free_list;
        p->free_list = *(void **)slab;
        p->nfree--;
        return slab;
    }
    return malloc(BUFPOOL_SLAB_SIZE);
}

void bufpool_put(bufpool_t *p, char *slab)
{
    if (slab == NULL)
        return;
    if (p->nfree >= p->max_free) {
        free(slab);
        return;
    }
    *(void **)slab = p->free_list;
    p->free_list = slab;
    p->nfree++;
}

void bufpool_destroy(bufpool_t *p)
{
    while (p->free_list) {
        void *next = *(void **)p->free_list;
        free(p->free_list);
        p->free_list = next;
    }
    p->nfree = 0;
}
