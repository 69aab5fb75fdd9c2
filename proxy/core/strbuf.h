/* A growable NUL-terminated string for building admin responses and rendered stats. */
#ifndef REMORA_STRBUF_H
#define REMORA_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    int failed; /* set when an allocation failed; later appends are ignored */
} strbuf_t;

void sb_append(strbuf_t *sb, const char *s, size_t n);
void sb_puts(strbuf_t *sb, const char *s);
void sb_printf(strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the string (caller frees) and resets sb; NULL if any allocation failed. */
char *sb_take(strbuf_t *sb);
void sb_free(strbuf_t *sb);

#endif
