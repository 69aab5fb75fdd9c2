/* Error messages written into a caller's buffer: the one helper behind every function that
 * returns a negative error and says in `err` what went wrong and where. It includes nothing of
 * the project, so every folder uses it. */
#ifndef REMORA_ERR_H
#define REMORA_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* Formats fmt (and its arguments, borrowed for the call) into err (borrowed, errlen bytes, always
 * NUL-terminated; nothing is written when err is NULL or errlen is 0) and returns rc, so that a
 * failure is one statement: `return err_set(err, errlen, -EINVAL, "cluster '%s': defined twice",
 * name);` */
int err_set(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* err_set with a va_list (ap is consumed), for helpers that put their own context around it. */
int err_vset(char *err, size_t errlen, int rc, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
