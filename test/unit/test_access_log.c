/* Access log: Envoy's default line, every command, JSON typing and escaping, buffering, and
 * whole lines when several workers share a file or a pipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/http/access_log.h"

#define H(n, v)                                                                                    \
    {                                                                                              \
        n, v, sizeof(n) - 1, sizeof(v) - 1                                                         \
    }

static http_header_t req_h[] = {
    H("Host", "svc.ns:80"),     H("User-Agent", "curl/8.0"), H("X-Forwarded-For", "10.0.0.1"),
    H("x-request-id", "req-1"), H("X-Custom", "abc"),
};
static http_headers_t req_headers = {req_h, 5, 5};
static http_header_t resp_h[] = {H("x-envoy-upstream-service-time", "12"),
                                 H("Content-Type", "text/plain")};
static http_headers_t resp_headers = {resp_h, 2, 2};

/* 2024-01-02T03:04:05.678901Z */
#define START_US 1704164645678901ull

static access_log_entry_t full_entry(void)
{
    return (access_log_entry_t){.start_us = START_US,
                                .request_headers = &req_headers,
                                .response_headers = &resp_headers,
                                .method = "GET",
                                .method_len = 3,
                                .path = "/api?x=1",
                                .path_len = 8,
                                .authority = "svc.ns:80",
                                .authority_len = 9,
                                .protocol = "HTTP/1.1",
                                .response_code = 200,
                                .response_flags = "-",
                                .bytes_received = 10,
                                .bytes_sent = 20,
                                .duration_ms = 30,
                                .upstream_service_time_ms = 12,
                                .upstream_host = "198.18.0.3:8080",
                                .upstream_cluster = "outbound|80||svc.ns.svc.cluster.local",
                                .route_name = "default",
                                .downstream_remote = "198.18.0.2:40000",
                                .downstream_local = "198.19.0.1:80",
                                .request_id = "req-1",
                                .request_duration_ms = 1,
                                .response_duration_ms = 25};
}

static access_log_entry_t empty_entry(void)
{
    return (access_log_entry_t){
        .upstream_service_time_ms = -1, .request_duration_ms = -1, .response_duration_ms = -1};
}

typedef struct tmpfile_path {
    char path[64];
} tmp_path_t;

static tmp_path_t tmp_path(void)
{
    tmp_path_t t;
    snprintf(t.path, sizeof(t.path), "/tmp/remora-al-XXXXXX");
    int fd = mkstemp(t.path);
    assert_true(fd >= 0);
    close(fd);
    return t;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Renders one entry with the given text format and returns the line (caller frees). */
static char *render_text(const char *format, const access_log_entry_t *e)
{
    tmp_path_t t = tmp_path();
    access_log_t *log;
    char err[256] = "";
    assert_int_equal(access_log_open(t.path, format, NULL, NULL, 0, 1, &log, err, sizeof(err)), 0);
    access_log_write(log, 0, e);
    access_log_close(log);
    char *s = slurp(t.path);
    unlink(t.path);
    return s;
}

static char *render_json(const char *const *keys, const char *const *formats, size_t n,
                         const access_log_entry_t *e)
{
    tmp_path_t t = tmp_path();
    access_log_t *log;
    char err[256] = "";
    int rc = access_log_open(t.path, NULL, keys, formats, n, 1, &log, err, sizeof(err));
    if (rc != 0)
        fail_msg("open: %s", err);
    access_log_write(log, 0, e);
    access_log_close(log);
    char *s = slurp(t.path);
    unlink(t.path);
    return s;
}

static void test_access_log_default_format_is_envoys(void **state)
{
    (void)state;
    access_log_entry_t e = full_entry();
    char *line = render_text(NULL, &e);
    assert_string_equal(line, "[2024-01-02T03:04:05.678Z] \"GET /api?x=1 HTTP/1.1\" 200 - 10 20 30 "
                              "12 \"10.0.0.1\" \"curl/8.0\" \"req-1\" \"svc.ns:80\" "
                              "\"198.18.0.3:8080\"\n");
    free(line);
}

static void test_access_log_default_format_prefers_original_path(void **state)
{
    (void)state;
    http_header_t h[] = {H("X-Envoy-Original-Path", "/before/rewrite")};
    http_headers_t hs = {h, 1, 1};
    access_log_entry_t e = full_entry();
    e.request_headers = &hs;
    char *line = render_text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(:PATH)%", &e);
    assert_string_equal(line, "/before/rewrite /api?x=1\n");
    free(line);
}

static void test_access_log_renders_the_downstream_tls_peer(void **state)
{
    (void)state;
    access_log_entry_t e = full_entry();
    const char *fmt = "%DOWNSTREAM_PEER_URI_SAN% %DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_TLS_CIPHER% "
                      "%REQUESTED_SERVER_NAME%";
    char *line = render_text(fmt, &e);
    assert_string_equal(line, "- - - -\n");
    free(line);
    e.downstream_peer_uri_san = "spiffe://cluster.local/ns/default/sa/client";
    e.downstream_tls_version = "TLSv1.2";
    e.downstream_tls_cipher = "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256";
    e.requested_server_name = "outbound_.80_._.b.default.svc.cluster.local";
    line = render_text(fmt, &e);
    assert_string_equal(line, "spiffe://cluster.local/ns/default/sa/client TLSv1.2 "
                              "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256 "
                              "outbound_.80_._.b.default.svc.cluster.local\n");
    free(line);
}

static void test_access_log_missing_values_print_dash(void **state)
{
    (void)state;
    access_log_entry_t e = empty_entry();
    char *line = render_text(NULL, &e);
    assert_string_equal(line, "[1970-01-01T00:00:00.000Z] \"- - -\" 0 - 0 0 0 - \"-\" \"-\" \"-\" "
                              "\"-\" \"-\"\n");
    free(line);
    line = render_text("%REQUEST_DURATION% %RESPONSE_DURATION% %UPSTREAM_CLUSTER% %ROUTE_NAME% "
                       "%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% "
                       "%RESP(X-NONE)% %REQ(X-NONE?X-ALSO-NONE)%",
                       &e);
    assert_string_equal(line, "- - - - - - - -\n");
    free(line);
}

static void test_access_log_custom_format_renders_every_command(void **state)
{
    (void)state;
    access_log_entry_t e = full_entry();
    char *line = render_text(
        "%START_TIME% %REQ(:METHOD)% %REQ(:PATH)% %REQ(:AUTHORITY)% %REQ(x-custom)% "
        "%RESP(CONTENT-TYPE)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% "
        "%BYTES_SENT% %DURATION% %REQUEST_DURATION% %RESPONSE_DURATION% %UPSTREAM_HOST% "
        "%UPSTREAM_CLUSTER% %ROUTE_NAME% %DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% "
        "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% 100%%",
        &e);
    assert_string_equal(line, "2024-01-02T03:04:05.678Z GET /api?x=1 svc.ns:80 abc text/plain "
                              "HTTP/1.1 200 - 10 20 30 1 25 198.18.0.3:8080 "
                              "outbound|80||svc.ns.svc.cluster.local default 198.18.0.2:40000 "
                              "198.19.0.1:80 198.18.0.2 198.19.0.1 100%\n");
    free(line);
}

static void test_access_log_start_time_takes_a_format(void **state)
{
    (void)state;
    access_log_entry_t e = full_entry();
    char *line =
        render_text("%START_TIME(%Y/%m/%d %H:%M:%S.%3f|%6f|%f|%s|%E3S|%j %a %b|%z %Z)%", &e);
    assert_string_equal(line, "2024/01/02 03:04:05.678|678901|678901000|1704164645|05.678|"
                              "002 Tue Jan|+0000 UTC\n");
    free(line);
    e.start_us = 1835481599ull * 1000000; /* 2028-02-29T23:59:59Z: a leap day */
    line = render_text("%START_TIME(%F %T %j)% %START_TIME%", &e);
    assert_string_equal(line, "2028-02-29 23:59:59 060 2028-02-29T23:59:59.000Z\n");
    free(line);
}

static void test_access_log_req_max_length_truncates(void **state)
{
    (void)state;
    access_log_entry_t e = full_entry();
    char *line = render_text("%REQ(USER-AGENT):4% %REQ(:PATH):0% %REQ(X-NONE):3%", &e);
    assert_string_equal(line, "curl  -\n");
    free(line);
}

static void test_access_log_falls_back_to_entry_fields(void **state)
{
    (void)state;
    /* No Host/x-request-id/x-envoy-upstream-service-time headers: the entry's fields. */
    access_log_entry_t e = full_entry();
    e.request_headers = NULL;
    e.response_headers = NULL;
    char *line = render_text(
        "%REQ(:AUTHORITY)% %REQ(X-REQUEST-ID)% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", &e);
    assert_string_equal(line, "svc.ns:80 req-1 12\n");
    free(line);
    e.authority = NULL;
    e.request_headers = &req_headers;
    line = render_text("%REQ(:AUTHORITY)%", &e);
    assert_string_equal(line, "svc.ns:80\n");
    free(line);
}

static void test_access_log_json_keeps_types_and_nulls(void **state)
{
    (void)state;
    const char *keys[] = {"code", "duration", "path", "upstream", "mixed", "literal", "ua"};
    const char *formats[] = {"%RESPONSE_CODE%",
                             "%DURATION%",
                             "%REQ(:PATH)%",
                             "%UPSTREAM_HOST%",
                             "%PROTOCOL% %UPSTREAM_HOST%!",
                             "static",
                             "%REQ(USER-AGENT):4%"};
    access_log_entry_t e = full_entry();
    e.upstream_host = NULL;
    char *line = render_json(keys, formats, 7, &e);
    assert_string_equal(line,
                        "{\"code\":200,\"duration\":30,\"path\":\"/api?x=1\",\"upstream\":null,"
                        "\"mixed\":\"HTTP/1.1 -!\",\"literal\":\"static\",\"ua\":\"curl\"}\n");
    free(line);
}

static void test_access_log_json_escapes_quotes_controls_and_bad_utf8(void **state)
{
    (void)state;
    static const char ua[] = "a\"b\\c\n\t\x01\x7f caf\xc3\xa9 \xe2\x82\xac \xff\xc3(";
    http_header_t h[] = {{"user-agent", ua, 10, sizeof(ua) - 1}};
    http_headers_t hs = {h, 1, 1};
    access_log_entry_t e = full_entry();
    e.request_headers = &hs;
    const char *keys[] = {"ua", "k\"ey"};
    const char *formats[] = {"%REQ(USER-AGENT)%", "x\"y"};
    char *line = render_json(keys, formats, 2, &e);
    assert_string_equal(line, "{\"ua\":\"a\\\"b\\\\c\\n\\t\\u0001\\u007f caf\xc3\xa9 \xe2\x82\xac "
                              "\\u00ff\\u00c3(\",\"k\\\"ey\":\"x\\\"y\"}\n");
    free(line);
}

static void test_access_log_unknown_command_is_named(void **state)
{
    (void)state;
    access_log_t *log = NULL;
    char err[256] = "";
    assert_int_equal(access_log_open("/dev/null", "%REQ(:PATH)% %NOPE(x)%", NULL, NULL, 0, 1, &log,
                                     err, sizeof(err)),
                     -EINVAL);
    assert_null(log);
    assert_non_null(strstr(err, "%NOPE%"));
    assert_int_equal(
        access_log_open("/dev/null", "%REQ(:PATH%", NULL, NULL, 0, 1, &log, err, sizeof(err)),
        -EINVAL);
    assert_int_equal(
        access_log_open("/dev/null", "%REQ%", NULL, NULL, 0, 1, &log, err, sizeof(err)), -EINVAL);
    assert_int_equal(
        access_log_open("/dev/null", "%DURATION", NULL, NULL, 0, 1, &log, err, sizeof(err)),
        -EINVAL);
    const char *keys[] = {"x"};
    const char *formats[] = {"%BOGUS%"};
    assert_int_equal(
        access_log_open("/dev/null", NULL, keys, formats, 1, 1, &log, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "json_format.x"));
    assert_non_null(strstr(err, "%BOGUS%"));
    assert_int_equal(
        access_log_open("/nonexistent/dir/log", NULL, NULL, NULL, 0, 1, &log, err, sizeof(err)),
        -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/dir/log"));
}

static void test_access_log_accepts_istios_default_format(void **state)
{
    (void)state;
    access_log_t *log = NULL;
    char err[256] = "";
    const char *istio =
        "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
        "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% "
        "%CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" "
        "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
        "\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" "
        "\"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% "
        "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
        "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";
    assert_int_equal(access_log_open("/dev/null", istio, NULL, NULL, 0, 1, &log, err, sizeof(err)),
                     0);
    access_log_close(log);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

static void test_access_log_buffers_until_threshold(void **state)
{
    (void)state;
    tmp_path_t t = tmp_path();
    access_log_t *log;
    char err[256];
    assert_int_equal(
        access_log_open(t.path, "%REQ(:PATH)%", NULL, NULL, 0, 2, &log, err, sizeof(err)), 0);
    char path[100];
    memset(path, 'p', 99);
    path[99] = '\0';
    access_log_entry_t e = full_entry();
    e.path = path;
    e.path_len = 99; /* 100-byte lines */
    unsigned needed = (ACCESS_LOG_FLUSH_BYTES + 99) / 100;
    for (unsigned i = 1; i < needed; i++) {
        access_log_write(log, 0, &e);
        assert_int_equal(file_size(t.path), 0);
    }
    access_log_write(log, 0, &e);
    assert_int_equal(file_size(t.path), (off_t)needed * 100);
    access_log_write(log, 1, &e);
    access_log_write(log, 0, &e);
    assert_int_equal(file_size(t.path), (off_t)needed * 100);
    access_log_flush(log, 1);
    assert_int_equal(file_size(t.path), (off_t)needed * 100 + 100);
    assert_int_equal(access_log_dropped(log), 0);
    access_log_close(log);
    assert_int_equal(file_size(t.path), (off_t)needed * 100 + 200);
    unlink(t.path);
}

static void test_access_log_truncates_a_line_longer_than_the_buffer(void **state)
{
    (void)state;
    size_t n = ACCESS_LOG_BUFFER_BYTES + 100;
    char *big = malloc(n);
    memset(big, 'x', n);
    access_log_entry_t e = full_entry();
    e.path = big;
    e.path_len = n;
    char *line = render_text("%REQ(:PATH)%", &e);
    assert_int_equal(strlen(line), ACCESS_LOG_BUFFER_BYTES);
    assert_int_equal(line[ACCESS_LOG_BUFFER_BYTES - 1], '\n');
    assert_int_equal(line[ACCESS_LOG_BUFFER_BYTES - 2], 'x');
    free(line);
    free(big);
}

/* --- many writers ------------------------------------------------------------------------ */

#define LINES_PER_WORKER 4000

typedef struct writer_arg {
    access_log_t *log;
    unsigned worker;
} writer_arg_t;

/* Lines of varying length: "w<worker> <seq> <filler>" where the filler length is seq % 300. */
static void *writer(void *p)
{
    writer_arg_t *a = p;
    char path[400];
    for (unsigned i = 0; i < LINES_PER_WORKER; i++) {
        int n = snprintf(path, sizeof(path), "w%u %u ", a->worker, i);
        memset(path + n, 'a' + (char)a->worker, i % 300);
        access_log_entry_t e = full_entry();
        e.path = path;
        e.path_len = (size_t)n + i % 300;
        access_log_write(a->log, a->worker, &e);
    }
    access_log_flush(a->log, a->worker);
    return NULL;
}

/* Every line is one writer's, whole, and each writer's lines come in order. */
static void check_lines(const char *text, unsigned nwriters)
{
    unsigned next[8] = {0};
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        unsigned w, seq;
        int off;
        assert_int_equal(sscanf(p, "w%u %u%n", &w, &seq, &off), 2);
        assert_int_equal(p[off++], ' ');
        assert_true(w < nwriters);
        assert_int_equal(seq, next[w]);
        next[w]++;
        size_t filler = (size_t)(nl - p) - (size_t)off;
        assert_int_equal(filler, seq % 300);
        for (size_t i = 0; i < filler; i++)
            assert_int_equal(p[off + i], 'a' + (char)(w % 2));
        p = nl + 1;
    }
    for (unsigned w = 0; w < nwriters; w++)
        assert_int_equal(next[w], LINES_PER_WORKER);
}

static void test_access_log_two_workers_one_file_lines_intact(void **state)
{
    (void)state;
    tmp_path_t t = tmp_path();
    access_log_t *log;
    char err[256];
    assert_int_equal(
        access_log_open(t.path, "%REQ(:PATH)%", NULL, NULL, 0, 2, &log, err, sizeof(err)), 0);
    pthread_t th[2];
    writer_arg_t args[2] = {{log, 0}, {log, 1}};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, writer, &args[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(access_log_dropped(log), 0);
    access_log_close(log);
    char *text = slurp(t.path);
    check_lines(text, 2);
    free(text);
    unlink(t.path);
}

typedef struct drain_arg {
    int fd;
    char *buf;
    size_t len, cap;
} drain_arg_t;

static void *drain(void *p)
{
    drain_arg_t *d = p;
    for (;;) {
        if (d->cap - d->len < 65536) {
            d->cap = d->cap * 2 + 65536;
            d->buf = realloc(d->buf, d->cap);
        }
        ssize_t n = read(d->fd, d->buf + d->len, d->cap - d->len - 1);
        if (n <= 0)
            break;
        d->len += (size_t)n;
        usleep(100); /* let the pipe fill so writers contend */
    }
    d->buf[d->len] = '\0';
    return NULL;
}

static void test_access_log_two_logs_sharing_a_pipe_never_interleave(void **state)
{
    (void)state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", pfd[1]);
    /* Two logs on the same pipe, like two listeners logging to /dev/stdout. */
    access_log_t *a, *b;
    char err[256];
    assert_int_equal(access_log_open(path, "%REQ(:PATH)%", NULL, NULL, 0, 1, &a, err, sizeof(err)),
                     0);
    assert_int_equal(access_log_open(path, "%REQ(:PATH)%", NULL, NULL, 0, 2, &b, err, sizeof(err)),
                     0);
    drain_arg_t d = {.fd = pfd[0]};
    pthread_t reader, th[2];
    pthread_create(&reader, NULL, drain, &d);
    writer_arg_t args[2] = {{a, 0}, {b, 1}};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, writer, &args[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    access_log_close(a);
    access_log_close(b);
    close(pfd[1]);
    pthread_join(reader, NULL);
    close(pfd[0]);
    check_lines(d.buf, 2);
    free(d.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_log_default_format_is_envoys),
        cmocka_unit_test(test_access_log_default_format_prefers_original_path),
        cmocka_unit_test(test_access_log_renders_the_downstream_tls_peer),
        cmocka_unit_test(test_access_log_missing_values_print_dash),
        cmocka_unit_test(test_access_log_custom_format_renders_every_command),
        cmocka_unit_test(test_access_log_start_time_takes_a_format),
        cmocka_unit_test(test_access_log_req_max_length_truncates),
        cmocka_unit_test(test_access_log_falls_back_to_entry_fields),
        cmocka_unit_test(test_access_log_json_keeps_types_and_nulls),
        cmocka_unit_test(test_access_log_json_escapes_quotes_controls_and_bad_utf8),
        cmocka_unit_test(test_access_log_unknown_command_is_named),
        cmocka_unit_test(test_access_log_accepts_istios_default_format),
        cmocka_unit_test(test_access_log_buffers_until_threshold),
        cmocka_unit_test(test_access_log_truncates_a_line_longer_than_the_buffer),
        cmocka_unit_test(test_access_log_two_workers_one_file_lines_intact),
        cmocka_unit_test(test_access_log_two_logs_sharing_a_pipe_never_interleave),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
