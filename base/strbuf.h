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

/* Append to sb (borrowed; owns its buffer): s and fmt's arguments are borrowed and copied. */
void sb_append(strbuf_t *sb, const char *s, size_t n);
void sb_puts(strbuf_t *sb, const char *s);
void sb_printf(strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the string, new and owned by the caller (free with free()), and resets sb
 * (borrowed); NULL if any allocation failed. */
char *sb_take(strbuf_t *sb);
/* Frees sb's buffer and resets sb (the caller's). */
void sb_free(strbuf_t *sb);

#endif
