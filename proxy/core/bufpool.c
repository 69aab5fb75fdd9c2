/* Slab free list: no locking, one pool per worker thread. */
#include "proxy/core/bufpool.h"

#include <stdlib.h>
#include <string.h>

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

void conn_buf_drop(bufpool_t *p, conn_buf_t *b)
{
    if (b->cap == BUFPOOL_SLAB_SIZE)
        bufpool_put(p, b->data);
    else
        free(b->data);
    b->data = NULL;
    b->cap = 0;
    b->len = 0;
}

void conn_buf_trim(bufpool_t *p, conn_buf_t *b)
{
    if (b->data && b->len == 0)
        conn_buf_drop(p, b);
}

size_t conn_buf_reserve(bufpool_t *p, conn_buf_t *b, size_t max)
{
    if (b->data == NULL) {
        b->data = bufpool_get(p);
        b->cap = b->data ? BUFPOOL_SLAB_SIZE : 0;
    } else if (b->cap - b->len < 4096 && b->cap < max) {
        size_t cap = b->cap * 2 > max ? max : b->cap * 2;
        char *nb = malloc(cap);
        if (nb) {
            memcpy(nb, b->data, b->len);
            size_t len = b->len;
            conn_buf_drop(p, b);
            b->data = nb;
            b->cap = cap;
            b->len = len;
        }
    }
    return b->cap - b->len;
}
