/* remora-cp: the control plane. Parses the command line and runs cp/ on one loop until SIGTERM
 * or SIGINT. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/duration.h"
#include "cp/cp.h"
#include "proxy/core/log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remora-cp --mesh DIR [options]\n"
            "  -m, --mesh DIR          Kubernetes manifests (YAML or JSON) to serve, watched\n"
            "      --listen A          the xDS port, IP:PORT (default 127.0.0.1:15010)\n"
            "      --admin A           the admin endpoint, IP:PORT (default 127.0.0.1:15014)\n"
            "      --ca DIR            the mesh CA (remoractl certs root or intermediate): sign\n"
            "                          each sidecar's certificate and serve it over SDS\n"
            "      --tls               mutual TLS on the xDS port (then 127.0.0.1:15012 by\n"
            "                          default): sidecars present a certificate from --ca and\n"
            "                          get only their own identity's config\n"
            "      --identity ID       the SPIFFE ID remora-cp presents with --tls\n"
            "                          (spiffe://<trust domain>/ns/remora-system/sa/remora-cp)\n"
            "      --mtls MODE         off, permissive or strict between sidecars (default off;\n"
            "                          a Namespace annotation remora.io/mtls overrides it)\n"
            "      --trust-domain TD   SPIFFE trust domain and DNS suffix (cluster.local)\n"
            "      --debounce D        quiet time after a change before pushing (100ms)\n"
            "      --debounce-max D    push at most this long after a change's first event (10s)\n"
            "      --debounce-leading D  a lone change after a quiet spell waits only this\n"
            "                          (10ms; 0: every change waits --debounce)\n"
            "      --poll D            also rescan the directory this often (default 0: never)\n"
            "      --cert-ttl D        workload certificates' lifetime (24h)\n"
            "      --keepalive D       PING a sidecar connection after this long without a\n"
            "                          frame from it; no answer in 20s closes it (30s)\n"
            "  -l, --log-level L       trace, debug, info, warning, error, off (default info)\n"
            "  -h, --help              this text\n");
}

static int parse_addr(const char *flag, const char *text, struct sockaddr_storage *out)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (colon == NULL || (size_t)(colon - text) >= sizeof(host) || colon[1] == '\0' || *end ||
        port < 0 || port > 65535) {
        fprintf(stderr, "remora-cp: %s: '%s' is not IP:PORT\n", flag, text);
        return -1;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) != 0 &&
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) != 0) {
        fprintf(stderr, "remora-cp: %s: '%s' is not an IP address\n", flag, host);
        return -1;
    }
    return 0;
}

static int parse_ms(const char *flag, const char *text, uint64_t *out)
{
    if (duration_parse_ms(text, out) == 0)
        return 0;
    fprintf(stderr, "remora-cp: %s: '%s' is not a duration (e.g. 100ms, 10s, 24h)\n", flag, text);
    return -1;
}

static cp_t *running;

static void on_signal(uv_signal_t *h, int signum)
{
    log_info("remora-cp: %s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    cp_stop(running, 0);
    running = NULL;
    uv_close((uv_handle_t *)h, NULL);
    uv_signal_t *other = h->data;
    uv_close((uv_handle_t *)other, NULL);
}

enum {
    O_LISTEN = 256,
    O_ADMIN,
    O_CA,
    O_TLS,
    O_IDENTITY,
    O_MTLS,
    O_TD,
    O_DEB,
    O_DEBMAX,
    O_DEBLEAD,
    O_POLL,
    O_KEEPALIVE,
    O_TTL
};

/* The options that take a duration: 0, or -1 after saying what is wrong. */
static int timing_opt(int c, const char *arg, cp_opts_t *o)
{
    uint64_t ms;
    switch (c) {
    case O_DEB:
        return parse_ms("--debounce", arg, &o->debounce_ms);
    case O_DEBMAX:
        return parse_ms("--debounce-max", arg, &o->debounce_max_ms);
    case O_DEBLEAD:
        return parse_ms("--debounce-leading", arg, &o->debounce_leading_ms);
    case O_POLL:
        return parse_ms("--poll", arg, &o->poll_ms);
    case O_KEEPALIVE:
        if (parse_ms("--keepalive", arg, &ms) < 0 || ms < 1000 || ms > 86400000) {
            fprintf(stderr, "remora-cp: --keepalive: from 1s to 24h\n");
            return -1;
        }
        o->keepalive_ms = (uint32_t)ms;
        return 0;
    default: /* O_TTL */
        if (parse_ms("--cert-ttl", arg, &ms) < 0 || ms < 10000) {
            fprintf(stderr, "remora-cp: --cert-ttl: at least 10s\n");
            return -1;
        }
        o->cert_ttl_s = (int64_t)(ms / 1000);
        return 0;
    }
}

/* Fills *o from the command line: 0, or the exit status (help: 0 after printing it, as -1; a
 * usage error: 2). */
static int parse_args(int argc, char *argv[], cp_opts_t *o_out)
{
    bool listen_given = false;
    static const struct option longopts[] = {
        {"mesh", required_argument, NULL, 'm'},
        {"listen", required_argument, NULL, O_LISTEN},
        {"admin", required_argument, NULL, O_ADMIN},
        {"ca", required_argument, NULL, O_CA},
        {"tls", no_argument, NULL, O_TLS},
        {"identity", required_argument, NULL, O_IDENTITY},
        {"mtls", required_argument, NULL, O_MTLS},
        {"trust-domain", required_argument, NULL, O_TD},
        {"debounce", required_argument, NULL, O_DEB},
        {"debounce-max", required_argument, NULL, O_DEBMAX},
        {"debounce-leading", required_argument, NULL, O_DEBLEAD},
        {"poll", required_argument, NULL, O_POLL},
        {"cert-ttl", required_argument, NULL, O_TTL},
        {"keepalive", required_argument, NULL, O_KEEPALIVE},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cp_opts_t o;
    cp_opts_default(&o);
    int c;
    while ((c = getopt_long(argc, argv, "m:l:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            o.mesh_dir = optarg;
            break;
        case O_LISTEN:
            listen_given = true;
            if (parse_addr("--listen", optarg, &o.listen) < 0)
                return 2;
            break;
        case O_ADMIN:
            if (parse_addr("--admin", optarg, &o.admin) < 0)
                return 2;
            break;
        case O_CA:
            o.ca_dir = optarg;
            break;
        case O_TLS:
            o.tls = true;
            break;
        case O_IDENTITY:
            o.identity = optarg;
            break;
        case O_MTLS:
            if (strcmp(optarg, "off") != 0 && strcmp(optarg, "permissive") != 0 &&
                strcmp(optarg, "strict") != 0) {
                fprintf(stderr, "remora-cp: --mtls: '%s': want off, permissive or strict\n",
                        optarg);
                return 2;
            }
            o.mtls = optarg;
            break;
        case O_TD:
            o.trust_domain = optarg;
            break;
        case O_DEB:
        case O_DEBMAX:
        case O_DEBLEAD:
        case O_POLL:
        case O_KEEPALIVE:
        case O_TTL:
            if (timing_opt(c, optarg, &o) < 0)
                return 2;
            break;
        case 'l': {
            log_level_t level;
            if (log_level_parse(optarg, &level) < 0) {
                fprintf(stderr, "remora-cp: --log-level: '%s' is not a level\n", optarg);
                return 2;
            }
            log_set_level(level);
            break;
        }
        case 'h':
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (o.tls && o.ca_dir == NULL) {
        fprintf(stderr, "remora-cp: --tls needs --ca: the xDS port's certificate comes from it\n");
        return 2;
    }
    if (o.tls && !listen_given)
        uv_ip4_addr("127.0.0.1", 15012, (struct sockaddr_in *)&o.listen);
    *o_out = o;
    return 0;
}

int main(int argc, char *argv[])
{
    cp_opts_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (o.mesh_dir == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (o.ca_dir == NULL && strcmp(o.mtls, "off") != 0) {
        fprintf(stderr, "remora-cp: --mtls %s needs --ca: sidecars need certificates\n", o.mtls);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* A rebuild frees the last view's changed parts and allocates the next one's: without this,
     * glibc hands the freed pages back and the next rebuild faults them in again (a Service
     * added cost 15-33 ms instead of 5.5-9; docs/control-plane-view.md, "Cost"). */
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    /* Setting the trim threshold also freezes glibc's mmap threshold at 128 KiB, so every
     * response over that (a sidecar's listeners, 670 KiB at 1,000 Services) was mapped, faulted
     * in page by page and unmapped again: half of remora-cp's CPU while 1,000 sidecars
     * converged. Responses come from the heap, whose freed blocks the next ones reuse. */
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    uv_loop_t *loop = uv_default_loop();
    char err[1024];
    if (cp_start(loop, &o, &running, err, sizeof(err)) < 0) {
        fprintf(stderr, "remora-cp: %s\n", err);
        uv_run(loop, UV_RUN_DEFAULT);
        return 1;
    }
    uv_signal_t term, intr;
    uv_signal_init(loop, &term);
    uv_signal_init(loop, &intr);
    term.data = &intr;
    intr.data = &term;
    uv_signal_start(&term, on_signal, SIGTERM);
    uv_signal_start(&intr, on_signal, SIGINT);
    log_info("remora-cp: serving %s", o.mesh_dir);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}
