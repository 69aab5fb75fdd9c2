/* proxy_status.c — reads /debug/syncz from remora-cp's admin endpoint over a plain blocking HTTP
 * GET (loopback or the cluster network; no TLS: the admin endpoint is not exposed) and prints it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli/proxy_status.h"

#include "cli/flags.h"

#define DEFAULT_CP_ADMIN "127.0.0.1:15014"
#define MAX_RESPONSE     (64u << 20)

static const char *const TYPES[] = {"CDS", "LDS", "EDS", "RDS", "SDS"};
#define N_TYPES (sizeof(TYPES) / sizeof(TYPES[0]))

static const char *type_state(const json_t *proxy, const char *type)
{
    const json_t *t = json_object_get(json_object_get(proxy, "types"), type);
    const char *s = json_string_value(json_object_get(t, "state"));
    return s ? s : "NOT SENT";
}

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? s : dflt;
}

static void print_one(const json_t *p, FILE *out)
{
    fprintf(out, "NAME:     %s\n", str_or(p, "node", "-"));
    fprintf(out, "CLUSTER:  %s\n", str_or(p, "cluster", "-"));
    fprintf(out, "STREAM:   %s\n", str_or(p, "mode", "-"));
    fprintf(out, "\n%-5s %-10s %-24s %-24s %s\n", "TYPE", "STATE", "SENT", "ACKED", "ERROR");
    for (size_t i = 0; i < N_TYPES; i++) {
        const json_t *t = json_object_get(json_object_get(p, "types"), TYPES[i]);
        fprintf(out, "%-5s %-10s %-24s %-24s %s\n", TYPES[i], type_state(p, TYPES[i]),
                str_or(t, "sent", "-"), str_or(t, "acked", "-"), str_or(t, "error", ""));
    }
}

int proxy_status_print(const json_t *syncz, const char *node, FILE *out)
{
    const json_t *proxies = json_object_get(syncz, "proxies");
    if (!json_is_array(proxies)) {
        fprintf(stderr, "remoractl proxy-status: the control plane's answer has no \"proxies\" "
                        "list\n");
        return -1;
    }
    size_t i;
    const json_t *p;
    if (node) {
        json_array_foreach(proxies, i, p) if (strcmp(str_or(p, "node", ""), node) == 0)
        {
            print_one(p, out);
            return 0;
        }
        fprintf(stderr, "remoractl proxy-status: %s is not connected to the control plane\n", node);
        return 1;
    }
    int wname = 4, wcluster = 7;
    json_array_foreach(proxies, i, p)
    {
        int n = (int)strlen(str_or(p, "node", "-")), c = (int)strlen(str_or(p, "cluster", "-"));
        wname = n > wname ? n : wname;
        wcluster = c > wcluster ? c : wcluster;
    }
    fprintf(out, "%-*s  %-*s", wname, "NAME", wcluster, "CLUSTER");
    for (size_t k = 0; k < N_TYPES; k++)
        fprintf(out, "  %-10s", TYPES[k]);
    fputc('\n', out);
    json_array_foreach(proxies, i, p)
    {
        fprintf(out, "%-*s  %-*s", wname, str_or(p, "node", "-"), wcluster,
                str_or(p, "cluster", "-"));
        for (size_t k = 0; k < N_TYPES; k++)
            fprintf(out, "  %-10s", type_state(p, TYPES[k]));
        fputc('\n', out);
    }
    json_array_foreach(proxies, i, p) for (size_t k = 0; k < N_TYPES; k++)
    {
        const json_t *t = json_object_get(json_object_get(p, "types"), TYPES[k]);
        const char *e = str_or(t, "error", NULL);
        if (e)
            fprintf(out, "\n%s %s NACKed: %s\n", str_or(p, "node", "-"), TYPES[k], e);
    }
    return 0;
}

/* GET path from host:port; the body (new, NUL-terminated) into *body. Returns 0 or -1 with a
 * message on stderr. */
static int http_get(const char *addr, const char *path, char **body)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof(host)) {
        fprintf(stderr, "remoractl proxy-status: --cp-admin: '%s' is not HOST:PORT\n", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "remoractl proxy-status: %s: %s\n", addr, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 10};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        fprintf(stderr,
                "remoractl proxy-status: cannot reach remora-cp's admin endpoint at %s: %s\n", addr,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, addr);
    if (write(fd, req, (size_t)n) != n) {
        fprintf(stderr, "remoractl proxy-status: %s: %s\n", addr, strerror(errno));
        close(fd);
        return -1;
    }
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    ssize_t got;
    while (buf && (got = read(fd, buf + len, cap - 1 - len)) > 0) {
        len += (size_t)got;
        if (len + 1 == cap) {
            char *nb = cap < MAX_RESPONSE ? realloc(buf, cap * 2) : NULL;
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    if (buf == NULL) {
        fprintf(stderr, "remoractl proxy-status: %s: answer too large\n", addr);
        return -1;
    }
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    int status = 0;
    if (sep == NULL || sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
        fprintf(stderr, "remoractl proxy-status: %s%s answered %d\n", addr, path, status);
        free(buf);
        return -1;
    }
    memmove(buf, sep + 4, strlen(sep + 4) + 1);
    *body = buf;
    return 0;
}

enum { F_CP_ADMIN, F_HELP };

static const cli_flag_t FLAGS[] = {
    {"--cp-admin", F_CP_ADMIN, true, 0},
    {"--help", F_HELP, false, 0},
};

static void usage(FILE *f)
{
    fputs("usage: remoractl proxy-status [--cp-admin HOST:PORT] [NODE]\n"
          "  every sidecar connected to remora-cp, and per xDS type whether it is SYNCED (its\n"
          "  last response ACKed), STALE (sent, not answered yet), NACKED (the error is shown)\n"
          "  or NOT SENT; with NODE (<pod>.<namespace>), that sidecar's versions sent and ACKed\n"
          "  --cp-admin   remora-cp's admin endpoint (default " DEFAULT_CP_ADMIN ")\n",
          f);
}

int proxy_status_main(int argc, char *argv[])
{
    const char *admin = DEFAULT_CP_ADMIN, *node = NULL;
    for (int i = 1; i < argc; i++) {
        const char *inline_value = NULL;
        const cli_flag_t *f =
            cli_flag_find(FLAGS, sizeof(FLAGS) / sizeof(FLAGS[0]), argv[i], &inline_value);
        if (f == NULL) {
            if (argv[i][0] == '-' || node) {
                fprintf(stderr, "remoractl proxy-status: unexpected argument '%s'\n", argv[i]);
                usage(stderr);
                return 2;
            }
            node = argv[i];
            continue;
        }
        if (f->id == F_HELP) {
            usage(stdout);
            return 0;
        }
        const char *v = inline_value ? inline_value : (i + 1 < argc ? argv[++i] : NULL);
        if (v == NULL) {
            fprintf(stderr, "remoractl proxy-status: %s needs a value\n", f->name);
            return 2;
        }
        admin = v;
    }
    char *body = NULL;
    if (http_get(admin, "/debug/syncz", &body) < 0)
        return 1;
    json_error_t jerr;
    json_t *doc = json_loads(body, 0, &jerr);
    free(body);
    if (doc == NULL) {
        fprintf(stderr, "remoractl proxy-status: the control plane's answer is not JSON: %s\n",
                jerr.text);
        return 1;
    }
    int rc = proxy_status_print(doc, node, stdout);
    json_decref(doc);
    return rc == 0 ? 0 : 1;
}
