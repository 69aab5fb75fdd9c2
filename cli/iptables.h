/* iptables.h — `remoractl iptables`: the pod init step that installs (or removes) the nat rules
 * steering a pod's TCP traffic into the sidecar (outbound → 15001, inbound → 15006). */
#ifndef REMORA_CLI_IPTABLES_H
#define REMORA_CLI_IPTABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPT_MAX_PORTS 64
#define IPT_MAX_CIDRS 64

/* Our chains, all in the nat table. Anything named REMORA_* is ours and `clean` deletes it. */
#define IPT_CHAIN_PREFIX      "REMORA_"
#define IPT_CHAIN_INBOUND     "REMORA_INBOUND"
#define IPT_CHAIN_IN_REDIRECT "REMORA_IN_REDIRECT"
#define IPT_CHAIN_OUTPUT      "REMORA_OUTPUT"
#define IPT_CHAIN_REDIRECT    "REMORA_REDIRECT"

typedef enum ipt_action {
    IPT_ACTION_NONE = 0,
    IPT_ACTION_APPLY,
    IPT_ACTION_CLEAN,
} ipt_action_t;

typedef struct ipt_ports {
    uint16_t port[IPT_MAX_PORTS];
    size_t n;
} ipt_ports_t;

/* An IPv4 network: addr in host byte order with the host bits cleared. */
typedef struct ipt_cidr {
    uint32_t addr;
    uint8_t prefix;
} ipt_cidr_t;

typedef struct iptables_opts {
    ipt_action_t action;
    bool help;
    bool dry_run;
    bool inbound_all; /* --inbound-ports "*": capture every port not excluded */
    ipt_ports_t inbound_ports;
    ipt_ports_t exclude_inbound_ports;
    ipt_ports_t exclude_outbound_ports;
    ipt_cidr_t exclude_outbound_cidrs[IPT_MAX_CIDRS];
    size_t n_exclude_outbound_cidrs;
    uint16_t outbound_port;
    uint16_t inbound_port;
    uint32_t proxy_uid;
    uint32_t proxy_gid;
} iptables_opts_t;

/* Fills *opts (the caller's) with the defaults (capture all inbound ports except 15000,15021,15090;
 * outbound to 15001, inbound to 15006; proxy uid and gid 1337). */
void iptables_opts_default(iptables_opts_t *opts);

/* Parses `apply|clean [flags]` (argv[0] is the action word, or a flag when only --help is given)
 * into *opts (the caller's; argv borrowed for the call), starting from the defaults. Returns 0, or
 * -EINVAL with a message naming the bad flag or value written to err (borrowed, errlen bytes). */
int iptables_parse_args(int argc, char *const argv[], iptables_opts_t *opts, char *err,
                        size_t errlen);

/* Renders the iptables-restore --noflush input that installs our chains as opts (borrowed)
 * describes.
 * saved is the current `iptables-save -t nat` text (borrowed; NULL means nothing installed):
 * jumps to our chains that already exist in the exact wanted form are kept, any other jump to a
 * REMORA_* chain from a built-in chain is deleted, so applying twice leaves one copy.
 * On success *out is a new NUL-terminated string the caller frees with free(). Returns 0 or
 * -ENOMEM. */
int iptables_render_apply(const iptables_opts_t *opts, const char *saved, char **out);

/* Renders the input that deletes every jump to a REMORA_* chain and every REMORA_* chain found
 * in saved (borrowed). *out is a new string the caller frees, or NULL when nothing of ours is
 * installed. Returns 0 or -ENOMEM. */
int iptables_render_clean(const char *saved, char **out);

/* The `remoractl iptables` subcommand; argv[0] is "iptables" (argv borrowed). Returns the process
 * exit status: 0 ok, 1 when iptables-save/iptables-restore fail, 2 for a usage error. */
int iptables_main(int argc, char *argv[]);

#endif
