/* Chunked bump allocator: a 4 KiB first chunk covers a typical request; larger needs get
 * chunks of their own size. */
#include "proxy/core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 4096

struct arena_chunk {
    arena_chunk_t *next;
    size_t size;
    _Alignas(16) char data[];
};

void arena_cache_init(arena_cache_t *c, unsigned max)
{
    c->free = NULL;
    c->n = 0;
    c->max = max;
}

void arena_cache_free(arena_cache_t *c)
{
    while (c->free) {
        arena_chunk_t *next = c->free->next;
        free(c->free);
        c->free = next;
    }
    c->n = 0;
}

void arena_init(arena_t *a, arena_cache_t *cache)
{
    a->head = NULL;
    a->used = 0;
    a->cache = cache;
}

static arena_chunk_t *chunk_new(arena_t *a, size_t csize)
{
    arena_cache_t *cache = a->cache;
    if (csize == ARENA_CHUNK && cache && cache->free) {
        arena_chunk_t *c = cache->free;
        cache->free = c->next;
        cache->n--;
        return c;
    }
    arena_chunk_t *c = malloc(sizeof(*c) + csize);
    if (c)
        c->size = csize;
    return c;
}

void *arena_alloc(arena_t *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (a->head == NULL || a->used + size > a->head->size) {
        size_t csize = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        arena_chunk_t *c = chunk_new(a, csize);
        if (c == NULL)
            return NULL;
        c->next = a->head;
        a->head = c;
        a->used = 0;
    }
    void *p = a->head->data + a->used;
    a->used += size;
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void arena_free(arena_t *a)
{
    while (a->head) {
        arena_chunk_t *c = a->head;
        a->head = c->next;
        arena_cache_t *cache = a->cache;
        if (c->size == ARENA_CHUNK && cache && cache->n < cache->max) {
            c->next = cache->free;
            cache->free = c;
            cache->n++;
        } else {
            free(c);
        }
    }
    a->used = 0;
}
