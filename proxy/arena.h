/* Per-stream bump allocator: everything a request needs (its copied head, added headers,
 * filter state) comes from one arena freed whole when the stream ends. */
#ifndef REMORA_ARENA_H
#define REMORA_ARENA_H

#include <stddef.h>

typedef struct arena_chunk arena_chunk_t;

typedef struct arena {
    arena_chunk_t *head;
    size_t used; /* bytes used in head */
} arena_t;

void arena_init(arena_t *a);
/* Returns size bytes aligned to 16, or NULL when memory is exhausted. Owned by the arena. */
void *arena_alloc(arena_t *a, size_t size);
/* Copies n bytes into the arena and NUL-terminates them. */
char *arena_strndup(arena_t *a, const char *s, size_t n);
/* Frees every chunk. The arena may be used again afterwards. */
void arena_free(arena_t *a);

#endif
