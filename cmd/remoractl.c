/* remoractl.c — the operator CLI: dispatches `remoractl <command> ...` to the command's own
 * module through one small table. */
#include <stdio.h>
#include <string.h>

#include "cli/certs.h"
#include "cli/iptables.h"
#include "cli/proxy_status.h"

/* A command's run function gets argv starting at the command name and returns the exit status. */
typedef struct command {
    const char *name;
    int (*run)(int argc, char *argv[]);
    const char *summary;
} command_t;

static const command_t COMMANDS[] = {
    {"iptables", iptables_main, "install or remove the pod's traffic capture rules"},
    {"certs", certs_main, "make a root CA, intermediates and workload certificates"},
    {"proxy-status", proxy_status_main, "every sidecar of remora-cp: synced, stale or NACKed"},
};

#define N_COMMANDS (sizeof(COMMANDS) / sizeof(COMMANDS[0]))

static void usage(FILE *f)
{
    fputs("usage: remoractl <command> [args]\n\ncommands:\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fputs("\nremoractl <command> --help describes each command.\n", f);
}

int main(int argc, char *argv[])
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], COMMANDS[i].name) == 0)
            return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "remoractl: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
