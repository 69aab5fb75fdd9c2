/* Per-stream bump allocator: everything a request needs (its copied head, added headers,
 * filter state) comes from one arena freed whole when the stream ends. Standard-size chunks
 * come from and go back to a per-worker cache, so a steady stream of requests does not malloc. */
#ifndef REMORA_ARENA_H
#define REMORA_ARENA_H

#include <stddef.h>

typedef struct arena_chunk arena_chunk_t;

/* Free standard-size chunks of one thread (a worker); never shared between threads. */
typedef struct arena_cache {
    arena_chunk_t *free;
    unsigned n, max;
} arena_cache_t;

typedef struct arena {
    arena_chunk_t *head;
    size_t used;          /* bytes used in head */
    arena_cache_t *cache; /* borrowed; may be NULL */
} arena_t;

/* Holds at most max free chunks (4 KiB each). c is the caller's (borrowed). */
void arena_cache_init(arena_cache_t *c, unsigned max);
/* Frees the cached chunks (c itself stays the caller's); no arena may use the cache afterwards. */
void arena_cache_free(arena_cache_t *c);

/* a: the caller's (borrowed). cache: borrowed, may be NULL (plain malloc); must outlive a's
 * chunks. */
void arena_init(arena_t *a, arena_cache_t *cache);
/* Returns size bytes aligned to 16, or NULL when memory is exhausted. Owned by the arena. */
void *arena_alloc(arena_t *a, size_t size);
/* Copies n bytes of s (borrowed for the call) into the arena and NUL-terminates them. Returns
 * a string owned by the arena (valid until arena_free), or NULL when memory is exhausted. */
char *arena_strndup(arena_t *a, const char *s, size_t n);
/* Frees every chunk (standard ones back to the cache); what arena_alloc returned is gone. a is
 * borrowed and may be used again. */
void arena_free(arena_t *a);

#endif
