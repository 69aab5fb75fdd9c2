/* HTTP access logs in Envoy's substitution format (text or JSON lines), rendered by worker
 * threads into per-worker buffers and written with write(2) in whole lines, without locks. */
#ifndef REMORA_ACCESS_LOG_H
#define REMORA_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/http/http.h"

/* One finished (or failed) request, as the connection manager saw it. Everything is borrowed
 * for the duration of access_log_write only. NULL strings and negative times mean "no value". */
typedef struct access_log_entry {
    uint64_t start_us;                      /* wall clock, µs since the epoch */
    const http_headers_t *request_headers;  /* for %REQ(NAME)%; may be NULL */
    const http_headers_t *response_headers; /* for %RESP(NAME)%; may be NULL */
    const char *method;                     /* :method */
    size_t method_len;
    const char *path; /* :path */
    size_t path_len;
    const char *authority; /* :authority (Host for HTTP/1.1) */
    size_t authority_len;
    const char *protocol;       /* "HTTP/1.1", "HTTP/2" */
    int response_code;          /* 0: none sent (printed as 0, as Envoy does) */
    const char *response_flags; /* "UF,URX"; NULL or "" prints "-" */
    uint64_t bytes_received, bytes_sent, duration_ms;
    int64_t upstream_service_time_ms; /* -1: none */
    const char *upstream_host;        /* "198.18.0.3:8080" */
    const char *upstream_cluster;
    const char *route_name;
    const char *downstream_remote; /* "ip:port" */
    const char *downstream_local;  /* "ip:port" */
    const char *request_id;        /* x-request-id used */
    /* Added to the brief's struct for %REQUEST_DURATION% / %RESPONSE_DURATION%: start to the
     * last request byte, start to the first response byte from upstream. -1: none. Note that a
     * zero-initialised entry reads as 0 ms. */
    int64_t request_duration_ms;
    int64_t response_duration_ms;
    /* The downstream connection's TLS, when it has one (NULL otherwise): the client
     * certificate's SPIFFE ID, the protocol version and suite, and the SNI it asked for. */
    const char *downstream_peer_uri_san;
    const char *downstream_tls_version;
    const char *downstream_tls_cipher;
    const char *requested_server_name;
} access_log_entry_t;

typedef struct access_log access_log_t;

/* A worker flushes when its buffer passes this many bytes (and on its ~1 s timer). */
#define ACCESS_LOG_FLUSH_BYTES (32u * 1024)
/* Per-worker buffer size; one rendered line longer than what is left after the flush threshold
 * is truncated to fit (and still ends in '\n'). */
#define ACCESS_LOG_BUFFER_BYTES (96u * 1024)

/* Opens an access log. path: a file (created 0644, appended to), "/dev/stdout" or "/dev/stderr"
 * (the process's fd 1 / 2, not reopened). text_format NULL selects Envoy's default format
 *   [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
 *   %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
 *   %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
 *   "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n
 * and a text format without a trailing newline gets one. n_json > 0 selects JSON lines instead
 * (text_format is then ignored): one object per line with json_keys[i] in order, each value
 * formatted by json_formats[i]; a format that is exactly one command gives a number for numeric
 * commands and null for a missing value, anything else a string. The strings are copied.
 * nworkers: buffers for workers 0..nworkers-1. Returns 0 and *out, or a negative errno with a
 * message in err (unknown command, bad syntax, cannot open). Main thread. path and the formats
 * are borrowed for the call; *out is new, owned by the caller, closed with access_log_close. */
int access_log_open(const char *path, const char *text_format, const char *const *json_keys,
                    const char *const *json_formats, size_t n_json, unsigned nworkers,
                    access_log_t **out, char *err, size_t errlen);

/* Renders e (borrowed for the call) into the worker's buffer of log (borrowed) (no allocation) and
 * writes the buffer out once it passes ACCESS_LOG_FLUSH_BYTES. Only worker `worker` may call this
 * and access_log_flush for its index. */
void access_log_write(access_log_t *log, unsigned worker, const access_log_entry_t *e);

/* Writes out the worker's buffered lines of log (borrowed); the worker calls it on a ~1 s timer and
 * at exit. */
void access_log_flush(access_log_t *log, unsigned worker);

/* Lines dropped because write(2) failed (disk full, closed pipe), summed over workers. log
 * borrowed. */
uint64_t access_log_dropped(const access_log_t *log);

/* Takes log: flushes every buffer and frees it (NULL is a no-op). Main thread, after the workers
 * have stopped. */
void access_log_close(access_log_t *log);

#endif
