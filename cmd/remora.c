/* remora: the sidecar data plane. Parses the command line and runs the server. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/duration.h"
#include "filters/registry.h"
#include "proxy/core/log.h"
#include "proxy/server/server.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: remora --config FILE [options]\n"
        "  -c, --config FILE        Envoy v3 bootstrap in YAML (also --config-path)\n"
        "      --validate           check the config and exit: 0 valid, 1 not\n"
        "      --mode validate      the same, Envoy's spelling\n"
        "      --concurrency N      worker threads (default: number of cores)\n"
        "      --drain-time-s N     on SIGTERM, wait up to N s for connections; close those of\n"
        "                           a removed or changed listener N s after (default 30)\n"
        "      --admin-address A    admin endpoint IP:PORT, overriding the bootstrap\n"
        "      --health-address A   serve GET /healthz/ready on IP:PORT (e.g. 0.0.0.0:15021)\n"
        "      --cert-check-interval D\n"
        "                           look at certificate files every D for rotation, besides\n"
        "                           fs events (default 10s; 0: no rotation)\n"
        "      --cert-expiry-warn D warn about own certificates expiring within D (default\n"
        "                           7d; 0: off)\n"
        "  -l, --log-level L        trace, debug, info, warning, error, off (default info)\n"
        "  -h, --help               this text\n");
}

/* A duration (base/duration.h), or -1 after saying what is wrong. */
static int parse_duration_ms(const char *flag, const char *text, uint64_t *out_ms)
{
    if (duration_parse_ms(text, out_ms) == 0)
        return 0;
    fprintf(stderr, "remora: %s: '%s' is not a duration (e.g. 500ms, 10s, 24h, 7d, or 0)\n", flag,
            text);
    return -1;
}

static int parse_uint(const char *flag, const char *text, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (*text == '\0' || *end != '\0' || text[0] == '-' || v > max) {
        fprintf(stderr, "remora: %s: '%s' is not a number from 0 to %u\n", flag, text, max);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        OPT_VALIDATE = 256,
        OPT_MODE,
        OPT_CONCURRENCY,
        OPT_DRAIN,
        OPT_ADMIN,
        OPT_HEALTH,
        OPT_CERT_CHECK,
        OPT_CERT_WARN,
    };
    static const struct option long_opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"config-path", required_argument, NULL, 'c'},
        {"validate", no_argument, NULL, OPT_VALIDATE},
        {"mode", required_argument, NULL, OPT_MODE},
        {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
        {"drain-time-s", required_argument, NULL, OPT_DRAIN},
        {"admin-address", required_argument, NULL, OPT_ADMIN},
        {"health-address", required_argument, NULL, OPT_HEALTH},
        {"cert-check-interval", required_argument, NULL, OPT_CERT_CHECK},
        {"cert-expiry-warn", required_argument, NULL, OPT_CERT_WARN},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    server_options_t opts = {
        .filters = &filter_registry,
        .drain_time_s = 30,
        .cert_check_interval_ms = 10000,
        .cert_expiry_warn_s = 7 * 86400,
    };
    uint64_t ms;
    log_level_t level;
    int c;
    while ((c = getopt_long(argc, argv, "c:l:h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            opts.config_path = optarg;
            break;
        case OPT_VALIDATE:
            opts.validate_only = true;
            break;
        case OPT_MODE:
            if (strcmp(optarg, "validate") == 0) {
                opts.validate_only = true;
            } else if (strcmp(optarg, "serve") != 0) {
                fprintf(stderr, "remora: --mode: '%s' is not serve or validate\n", optarg);
                return 2;
            }
            break;
        case OPT_CONCURRENCY:
            if (parse_uint("--concurrency", optarg, 256, &opts.concurrency) < 0)
                return 2;
            break;
        case OPT_DRAIN:
            if (parse_uint("--drain-time-s", optarg, 86400, &opts.drain_time_s) < 0)
                return 2;
            break;
        case OPT_ADMIN:
            opts.admin_addr = optarg;
            break;
        case OPT_HEALTH:
            opts.health_addr = optarg;
            break;
        case OPT_CERT_CHECK:
            if (parse_duration_ms("--cert-check-interval", optarg, &opts.cert_check_interval_ms) <
                0)
                return 2;
            break;
        case OPT_CERT_WARN:
            if (parse_duration_ms("--cert-expiry-warn", optarg, &ms) < 0)
                return 2;
            opts.cert_expiry_warn_s = (int64_t)(ms / 1000);
            break;
        case 'l':
            if (log_level_parse(optarg, &level) < 0) {
                fprintf(stderr, "remora: --log-level: unknown level '%s'\n", optarg);
                return 2;
            }
            log_set_level(level);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "remora: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (opts.config_path == NULL) {
        fprintf(stderr, "remora: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    return server_run(&opts);
}
