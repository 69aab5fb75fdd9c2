/* Process-wide leveled logging to stderr: one line per event, prefixed with time, level and
 * thread name. Formatting is skipped entirely when the level is off. */
#ifndef REMORA_LOG_H
#define REMORA_LOG_H

typedef enum { LOG_TRACE, LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } log_level_t;

extern log_level_t log_current_level;

/* Parses "trace".."error"/"off" (name borrowed); returns 0 and sets *out, or -EINVAL. */
int log_level_parse(const char *name, log_level_t *out);
/* Returns a static string. */
const char *log_level_name(log_level_t level);
void log_set_level(log_level_t level);
/* Names the calling thread in log lines ("main", "worker 0"); copies name. */
void log_set_thread_name(const char *name);
/* fmt and its arguments borrowed for the call. */
void log_write(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_AT(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= log_current_level)                                                          \
            log_write((level), __VA_ARGS__);                                                       \
    } while (0)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)

#endif
