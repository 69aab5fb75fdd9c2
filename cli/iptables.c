/* iptables.c — `remoractl iptables apply|clean`: parses flags, renders the nat rules as
 * iptables-restore text (a pure function, unit-tested) and feeds it to iptables-restore. */
#include "cli/iptables.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/flags.h"
#include "base/err.h"

#define DEFAULT_OUTBOUND_PORT 15001
#define DEFAULT_INBOUND_PORT  15006
#define DEFAULT_PROXY_ID      1337

/* 127.0.0.6 is the source address the inbound listener uses to reach the app over lo; its
 * traffic must never be captured again (Istio's InboundPassthroughClusterIpv4). */
#define INBOUND_PASSTHROUGH_SRC "127.0.0.6/32"

static const char USAGE[] =
    "usage: remoractl iptables apply|clean [flags]\n"
    "\n"
    "Install (apply) or remove (clean) the nat rules that steer this network namespace's TCP\n"
    "traffic into the sidecar: outbound connections to --outbound-port, inbound connections to\n"
    "--inbound-port. Rules are installed atomically with iptables-restore --noflush; apply is\n"
    "idempotent, clean deletes every REMORA_* chain and the jumps to them.\n"
    "\n"
    "flags:\n"
    "  --inbound-ports LIST|*          inbound ports to capture (default *: all)\n"
    "  --exclude-inbound-ports LIST    inbound ports never captured (default 15000,15021,15090)\n"
    "  --exclude-outbound-ports LIST   outbound destination ports never captured (default none)\n"
    "  --exclude-outbound-cidrs LIST   outbound destination IPv4 CIDRs never captured\n"
    "  --outbound-port PORT            where outbound traffic is redirected (default 15001)\n"
    "  --inbound-port PORT             where inbound traffic is redirected (default 15006)\n"
    "  --proxy-uid UID                 uid of the proxy, never captured (default 1337)\n"
    "  --proxy-gid GID                 gid of the proxy, never captured (default: the uid)\n"
    "  --dry-run                       print the iptables-restore input, change nothing\n"
    "  -h, --help                      this text\n"
    "\n"
    "LIST is comma separated (\"\" for none). Exit status: 0 ok, 1 iptables failed, 2 bad usage.\n";

/* ---- flag parsing --------------------------------------------------------------------------- */

/* Parses a decimal number in [min, max] from the n bytes at s; digits only, so "+1", " 1" and
 * "0x10" are rejected rather than silently reinterpreted. */
static int parse_uint(const char *s, size_t n, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
    unsigned long long v = 0;
    if (n == 0 || n > 10)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_port(const char *flag, const char *s, size_t n, uint16_t *out, char *err,
                      size_t errlen)
{
    unsigned long long v;
    if (parse_uint(s, n, 1, 65535, &v) < 0)
        return err_set(err, errlen, -EINVAL, "%s: bad port \"%.*s\" (want 1-65535)", flag, (int)n,
                       s);
    *out = (uint16_t)v;
    return 0;
}

static int parse_port_list(const char *flag, const char *s, ipt_ports_t *out, char *err,
                           size_t errlen)
{
    out->n = 0;
    if (*s == '\0')
        return 0;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (out->n == IPT_MAX_PORTS)
            return err_set(err, errlen, -EINVAL, "%s: more than %d ports", flag, IPT_MAX_PORTS);
        int rc = parse_port(flag, s, len, &out->port[out->n], err, errlen);
        if (rc < 0)
            return rc;
        out->n++;
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

static int parse_cidr(const char *flag, const char *s, size_t n, ipt_cidr_t *out, char *err,
                      size_t errlen)
{
    char addr[INET_ADDRSTRLEN];
    const char *slash = memchr(s, '/', n);
    size_t alen = slash ? (size_t)(slash - s) : n;
    unsigned long long prefix = 32;
    struct in_addr in;

    if (memchr(s, ':', n))
        return err_set(err, errlen, -EINVAL, "%s: \"%.*s\" is IPv6; only IPv4 CIDRs are supported",
                       flag, (int)n, s);
    if (alen == 0 || alen >= sizeof(addr))
        goto bad;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, &in) != 1)
        goto bad;
    if (slash && parse_uint(slash + 1, n - alen - 1, 0, 32, &prefix) < 0)
        goto bad;
    uint32_t mask = prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
    out->addr = ntohl(in.s_addr) & mask;
    out->prefix = (uint8_t)prefix;
    return 0;
bad:
    return err_set(err, errlen, -EINVAL, "%s: bad CIDR \"%.*s\" (want a.b.c.d/n)", flag, (int)n, s);
}

static int parse_cidr_list(const char *flag, const char *s, iptables_opts_t *o, char *err,
                           size_t errlen)
{
    o->n_exclude_outbound_cidrs = 0;
    if (*s == '\0')
        return 0;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (o->n_exclude_outbound_cidrs == IPT_MAX_CIDRS)
            return err_set(err, errlen, -EINVAL, "%s: more than %d CIDRs", flag, IPT_MAX_CIDRS);
        int rc = parse_cidr(flag, s, len, &o->exclude_outbound_cidrs[o->n_exclude_outbound_cidrs],
                            err, errlen);
        if (rc < 0)
            return rc;
        o->n_exclude_outbound_cidrs++;
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

static int parse_id(const char *flag, const char *s, uint32_t *out, char *err, size_t errlen)
{
    unsigned long long v;
    /* (uid_t)-1 means "unchanged" to the kernel, so it can never be a process's uid. */
    if (parse_uint(s, strlen(s), 0, 0xfffffffeu, &v) < 0)
        return err_set(err, errlen, -EINVAL, "%s: bad id \"%s\" (want a number)", flag, s);
    *out = (uint32_t)v;
    return 0;
}

void iptables_opts_default(iptables_opts_t *o)
{
    static const uint16_t exclude_inbound[] = {15000, 15021, 15090};

    memset(o, 0, sizeof(*o));
    o->inbound_all = true;
    for (size_t i = 0; i < sizeof(exclude_inbound) / sizeof(exclude_inbound[0]); i++)
        o->exclude_inbound_ports.port[o->exclude_inbound_ports.n++] = exclude_inbound[i];
    o->outbound_port = DEFAULT_OUTBOUND_PORT;
    o->inbound_port = DEFAULT_INBOUND_PORT;
    o->proxy_uid = DEFAULT_PROXY_ID;
    o->proxy_gid = DEFAULT_PROXY_ID;
}

enum flag_id {
    F_INBOUND_PORTS,
    F_EXCLUDE_INBOUND_PORTS,
    F_EXCLUDE_OUTBOUND_PORTS,
    F_EXCLUDE_OUTBOUND_CIDRS,
    F_OUTBOUND_PORT,
    F_INBOUND_PORT,
    F_PROXY_UID,
    F_PROXY_GID,
    F_DRY_RUN,
    F_HELP,
};

static const cli_flag_t FLAGS[] = {
    {"--inbound-ports", F_INBOUND_PORTS, true, 0},
    {"--exclude-inbound-ports", F_EXCLUDE_INBOUND_PORTS, true, 0},
    {"--exclude-outbound-ports", F_EXCLUDE_OUTBOUND_PORTS, true, 0},
    {"--exclude-outbound-cidrs", F_EXCLUDE_OUTBOUND_CIDRS, true, 0},
    {"--outbound-port", F_OUTBOUND_PORT, true, 0},
    {"--inbound-port", F_INBOUND_PORT, true, 0},
    {"--proxy-uid", F_PROXY_UID, true, 0},
    {"--proxy-gid", F_PROXY_GID, true, 0},
    {"--dry-run", F_DRY_RUN, false, 0},
    {"--help", F_HELP, false, 0},
    {"-h", F_HELP, false, 0},
};

static const cli_flag_t *find_flag(const char *arg, const char **inline_value)
{
    return cli_flag_find(FLAGS, sizeof(FLAGS) / sizeof(FLAGS[0]), arg, inline_value);
}

static int apply_flag(const cli_flag_t *f, const char *v, iptables_opts_t *o, bool *gid_set,
                      char *err, size_t errlen)
{
    switch (f->id) {
    case F_INBOUND_PORTS:
        o->inbound_all = strcmp(v, "*") == 0;
        if (o->inbound_all) {
            o->inbound_ports.n = 0;
            return 0;
        }
        return parse_port_list(f->name, v, &o->inbound_ports, err, errlen);
    case F_EXCLUDE_INBOUND_PORTS:
        return parse_port_list(f->name, v, &o->exclude_inbound_ports, err, errlen);
    case F_EXCLUDE_OUTBOUND_PORTS:
        return parse_port_list(f->name, v, &o->exclude_outbound_ports, err, errlen);
    case F_EXCLUDE_OUTBOUND_CIDRS:
        return parse_cidr_list(f->name, v, o, err, errlen);
    case F_OUTBOUND_PORT:
        return parse_port(f->name, v, strlen(v), &o->outbound_port, err, errlen);
    case F_INBOUND_PORT:
        return parse_port(f->name, v, strlen(v), &o->inbound_port, err, errlen);
    case F_PROXY_UID:
        return parse_id(f->name, v, &o->proxy_uid, err, errlen);
    case F_PROXY_GID:
        *gid_set = true;
        return parse_id(f->name, v, &o->proxy_gid, err, errlen);
    case F_DRY_RUN:
        o->dry_run = true;
        return 0;
    case F_HELP:
        o->help = true;
        return 0;
    }
    return err_set(err, errlen, -EINVAL, "internal error: unhandled flag %s", f->name);
}

int iptables_parse_args(int argc, char *const argv[], iptables_opts_t *o, char *err, size_t errlen)
{
    bool gid_set = false;

    iptables_opts_default(o);
    if (errlen > 0)
        err[0] = '\0';
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *value;
        const cli_flag_t *f;

        if (arg[0] != '-') {
            if (o->action != IPT_ACTION_NONE)
                return err_set(err, errlen, -EINVAL, "unexpected argument \"%s\"", arg);
            if (strcmp(arg, "apply") == 0)
                o->action = IPT_ACTION_APPLY;
            else if (strcmp(arg, "clean") == 0)
                o->action = IPT_ACTION_CLEAN;
            else
                return err_set(err, errlen, -EINVAL, "unknown action \"%s\" (want apply or clean)",
                               arg);
            continue;
        }
        f = find_flag(arg, &value);
        if (!f)
            return err_set(err, errlen, -EINVAL, "unknown flag \"%s\"", arg);
        if (!f->takes_value && value)
            return err_set(err, errlen, -EINVAL, "%s takes no value", f->name);
        if (f->takes_value && !value) {
            /* "--flag --other" almost surely lost the value; "" stays a valid empty list. */
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
                return err_set(err, errlen, -EINVAL, "%s needs a value", f->name);
            value = argv[++i];
        }
        int rc = apply_flag(f, value, o, &gid_set, err, errlen);
        if (rc < 0)
            return rc;
    }
    /* Istio's convention: the proxy runs with gid == uid unless told otherwise. */
    if (!gid_set)
        o->proxy_gid = o->proxy_uid;
    if (o->action == IPT_ACTION_NONE && !o->help)
        return err_set(err, errlen, -EINVAL, "missing action (want apply or clean)");
    return 0;
}

/* ---- reading iptables-save output ----------------------------------------------------------- */

/* A rule line of the nat table that jumps from a chain that is not ours into one of ours. */
typedef struct saved_jump {
    const char *chain; /* points into the line, chain_len bytes */
    size_t chain_len;
    const char *spec; /* everything after "-A CHAIN ", spec_len bytes */
    size_t spec_len;
} saved_jump_t;

static bool is_ours(const char *s, size_t n)
{
    size_t plen = strlen(IPT_CHAIN_PREFIX);
    return n > plen && strncmp(s, IPT_CHAIN_PREFIX, plen) == 0;
}

/* True if the rule's target (-j or -g) is one of our chains. */
static bool spec_targets_ours(const char *spec, size_t n)
{
    const char *end = spec + n;
    for (const char *p = spec; p + 3 < end; p++) {
        if ((p == spec || p[-1] == ' ') && p[0] == '-' && (p[1] == 'j' || p[1] == 'g') &&
            p[2] == ' ') {
            const char *t = p + 3;
            const char *te = memchr(t, ' ', (size_t)(end - t));
            if (is_ours(t, te ? (size_t)(te - t) : (size_t)(end - t)))
                return true;
        }
    }
    return false;
}

typedef void (*saved_visit_fn)(void *ctx, const char *chain_decl, size_t decl_len,
                               const saved_jump_t *jump);

/* Calls visit for each of our chain declarations and each jump into our chains from another
 * chain, in the nat table of saved. */
static void saved_scan(const char *saved, saved_visit_fn visit, void *ctx)
{
    bool in_nat = false;
    const char *line = saved;

    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len >= 1 && line[0] == '*') {
            in_nat = len == 4 && strncmp(line, "*nat", 4) == 0;
        } else if (len == 6 && strncmp(line, "COMMIT", 6) == 0) {
            in_nat = false;
        } else if (in_nat && line[0] == ':') {
            const char *sp = memchr(line, ' ', len);
            size_t nlen = sp ? (size_t)(sp - line - 1) : len - 1;
            if (is_ours(line + 1, nlen))
                visit(ctx, line + 1, nlen, NULL);
        } else if (in_nat && len > 3 && strncmp(line, "-A ", 3) == 0) {
            const char *chain = line + 3;
            const char *sp = memchr(chain, ' ', len - 3);
            if (sp) {
                saved_jump_t j = {
                    .chain = chain,
                    .chain_len = (size_t)(sp - chain),
                    .spec = sp + 1,
                    .spec_len = len - (size_t)(sp + 1 - line),
                };
                if (!is_ours(j.chain, j.chain_len) && spec_targets_ours(j.spec, j.spec_len))
                    visit(ctx, NULL, 0, &j);
            }
        }
        line = nl ? nl + 1 : NULL;
    }
}

/* ---- rendering ------------------------------------------------------------------------------ */

/* A jump from a built-in chain into ours that apply wants to exist exactly once. */
typedef struct wanted_jump {
    const char *chain;
    const char *spec;
    bool present;
} wanted_jump_t;

struct apply_ctx {
    FILE *f;
    wanted_jump_t *wanted;
    size_t n_wanted;
};

static bool span_eq(const char *s, size_t n, const char *z)
{
    return strlen(z) == n && memcmp(s, z, n) == 0;
}

static void apply_visit(void *arg, const char *decl, size_t decl_len, const saved_jump_t *j)
{
    struct apply_ctx *c = arg;
    (void)decl;
    (void)decl_len;
    if (!j)
        return;
    for (size_t i = 0; i < c->n_wanted; i++) {
        wanted_jump_t *w = &c->wanted[i];
        if (!w->present && span_eq(j->chain, j->chain_len, w->chain) &&
            span_eq(j->spec, j->spec_len, w->spec)) {
            w->present = true;
            return;
        }
    }
    /* A duplicate, or a jump of another shape (older flags, hand-made): drop it so exactly one
     * wanted copy remains. */
    fprintf(c->f, "-D %.*s %.*s\n", (int)j->chain_len, j->chain, (int)j->spec_len, j->spec);
}

static void put_cidr(FILE *f, const ipt_cidr_t *c)
{
    fprintf(f, "%u.%u.%u.%u/%u", c->addr >> 24, (c->addr >> 16) & 0xff, (c->addr >> 8) & 0xff,
            c->addr & 0xff, c->prefix);
}

/* The owner rules for one id, in Istio's order: (1) the proxy calling its own pod's address
 * over lo is inbound traffic for this pod, so it goes through the inbound listener;
 * (2) anyone else talking over lo (the app to itself) is left alone; (3) all other traffic of
 * the proxy leaves untouched, which is what keeps the proxy from capturing itself. */
static void put_owner_rules(FILE *f, const char *match, uint32_t id)
{
    fprintf(f, "-A %s -o lo ! -d 127.0.0.1/32 -m owner --%s-owner %u -j %s\n", IPT_CHAIN_OUTPUT,
            match, id, IPT_CHAIN_IN_REDIRECT);
    fprintf(f, "-A %s -o lo -m owner ! --%s-owner %u -j RETURN\n", IPT_CHAIN_OUTPUT, match, id);
    fprintf(f, "-A %s -m owner --%s-owner %u -j RETURN\n", IPT_CHAIN_OUTPUT, match, id);
}

static int close_stream(FILE *f, char **buf)
{
    if (ferror(f)) {
        fclose(f);
        free(*buf);
        *buf = NULL;
        return -ENOMEM;
    }
    if (fclose(f) != 0) {
        free(*buf);
        *buf = NULL;
        return -ENOMEM;
    }
    return 0;
}

int iptables_render_apply(const iptables_opts_t *o, const char *saved, char **out)
{
    char *buf = NULL;
    size_t size = 0;
    bool inbound = o->inbound_all || o->inbound_ports.n > 0;
    /* PREROUTING last: without inbound capture only the first entry is wanted. */
    wanted_jump_t wanted[] = {
        {"OUTPUT", "-p tcp -j " IPT_CHAIN_OUTPUT, false},
        {"PREROUTING", "-p tcp -j " IPT_CHAIN_INBOUND, false},
    };
    FILE *f = open_memstream(&buf, &size);

    *out = NULL;
    if (!f)
        return -ENOMEM;
    fputs("# remoractl iptables apply (feed to iptables-restore --noflush)\n*nat\n", f);
    /* Declaring a chain with --noflush creates it, or empties it if it exists: re-applying
     * replaces our rules instead of appending a second copy. */
    fprintf(f, ":%s - [0:0]\n:%s - [0:0]\n:%s - [0:0]\n:%s - [0:0]\n", IPT_CHAIN_INBOUND,
            IPT_CHAIN_IN_REDIRECT, IPT_CHAIN_OUTPUT, IPT_CHAIN_REDIRECT);

    struct apply_ctx ctx = {f, wanted, inbound ? 2 : 1};
    if (saved)
        saved_scan(saved, apply_visit, &ctx);

    fprintf(f, "-A %s -p tcp -j REDIRECT --to-ports %u\n", IPT_CHAIN_IN_REDIRECT, o->inbound_port);
    fprintf(f, "-A %s -p tcp -j REDIRECT --to-ports %u\n", IPT_CHAIN_REDIRECT, o->outbound_port);

    /* Inbound: exclusions first, so an excluded port stays reachable even when listed. */
    for (size_t i = 0; i < o->exclude_inbound_ports.n; i++)
        fprintf(f, "-A %s -p tcp --dport %u -j RETURN\n", IPT_CHAIN_INBOUND,
                o->exclude_inbound_ports.port[i]);
    if (o->inbound_all) {
        fprintf(f, "-A %s -p tcp -j %s\n", IPT_CHAIN_INBOUND, IPT_CHAIN_IN_REDIRECT);
    } else {
        for (size_t i = 0; i < o->inbound_ports.n; i++)
            fprintf(f, "-A %s -p tcp --dport %u -j %s\n", IPT_CHAIN_INBOUND,
                    o->inbound_ports.port[i], IPT_CHAIN_IN_REDIRECT);
    }

    /* Outbound, in Istio's order: port exclusions; the inbound listener's own connections to the
     * app; owner rules (the proxy never captures itself); localhost; CIDR exclusions;
     * everything else to the outbound listener. */
    for (size_t i = 0; i < o->exclude_outbound_ports.n; i++)
        fprintf(f, "-A %s -p tcp --dport %u -j RETURN\n", IPT_CHAIN_OUTPUT,
                o->exclude_outbound_ports.port[i]);
    fprintf(f, "-A %s -o lo -s %s -j RETURN\n", IPT_CHAIN_OUTPUT, INBOUND_PASSTHROUGH_SRC);
    put_owner_rules(f, "uid", o->proxy_uid);
    put_owner_rules(f, "gid", o->proxy_gid);
    fprintf(f, "-A %s -d 127.0.0.1/32 -j RETURN\n", IPT_CHAIN_OUTPUT);
    for (size_t i = 0; i < o->n_exclude_outbound_cidrs; i++) {
        fprintf(f, "-A %s -d ", IPT_CHAIN_OUTPUT);
        put_cidr(f, &o->exclude_outbound_cidrs[i]);
        fputs(" -j RETURN\n", f);
    }
    fprintf(f, "-A %s -j %s\n", IPT_CHAIN_OUTPUT, IPT_CHAIN_REDIRECT);

    /* Jumps last, once our chains are complete; within one restore commit this is atomic anyway,
     * but it keeps the text readable top-down. */
    for (size_t i = 0; i < ctx.n_wanted; i++)
        if (!wanted[i].present)
            fprintf(f, "-A %s %s\n", wanted[i].chain, wanted[i].spec);
    fputs("COMMIT\n", f);

    int rc = close_stream(f, &buf);
    if (rc == 0)
        *out = buf;
    return rc;
}

struct clean_ctx {
    FILE *jumps;   /* "-D" lines */
    FILE *chains;  /* "-F" lines */
    FILE *deletes; /* "-X" lines */
    size_t n;
};

static void clean_visit(void *arg, const char *decl, size_t decl_len, const saved_jump_t *j)
{
    struct clean_ctx *c = arg;
    if (j) {
        fprintf(c->jumps, "-D %.*s %.*s\n", (int)j->chain_len, j->chain, (int)j->spec_len, j->spec);
    } else {
        /* Flush every chain before deleting any: a chain still referenced by another of ours
         * cannot be deleted. */
        fprintf(c->chains, "-F %.*s\n", (int)decl_len, decl);
        fprintf(c->deletes, "-X %.*s\n", (int)decl_len, decl);
    }
    c->n++;
}

int iptables_render_clean(const char *saved, char **out)
{
    char *bufs[3] = {NULL, NULL, NULL};
    size_t sizes[3];
    FILE *fs[3] = {NULL, NULL, NULL};
    int rc = -ENOMEM;

    *out = NULL;
    for (int i = 0; i < 3; i++) {
        fs[i] = open_memstream(&bufs[i], &sizes[i]);
        if (!fs[i])
            goto out_streams;
    }
    struct clean_ctx ctx = {fs[0], fs[1], fs[2], 0};
    if (saved)
        saved_scan(saved, clean_visit, &ctx);
    for (int i = 0; i < 3; i++) {
        int crc = close_stream(fs[i], &bufs[i]);
        fs[i] = NULL;
        if (crc < 0)
            goto out_streams;
    }
    rc = 0;
    if (ctx.n > 0 &&
        asprintf(out,
                 "# remoractl iptables clean (feed to iptables-restore --noflush)\n*nat\n"
                 "%s%s%sCOMMIT\n",
                 bufs[0], bufs[1], bufs[2]) < 0) {
        *out = NULL;
        rc = -ENOMEM;
    }
out_streams:
    for (int i = 0; i < 3; i++) {
        if (fs[i])
            fclose(fs[i]);
        free(bufs[i]);
    }
    return rc;
}

/* ---- running iptables-save / iptables-restore ----------------------------------------------- */

static int wait_child(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Forks and execs argv with child_stdin / child_stdout (when >= 0) as its stdin / stdout, after
 * closing close_fd (the parent's end of the pipe). stderr is inherited, so the tool's own
 * messages reach the user. Returns the child's pid, or -1 with errno set. */
static pid_t spawn(char *const argv[], int child_stdin, int child_stdout, int close_fd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (child_stdin >= 0 && dup2(child_stdin, STDIN_FILENO) < 0)
        _exit(127);
    if (child_stdout >= 0 && dup2(child_stdout, STDOUT_FILENO) < 0)
        _exit(127);
    if (close_fd >= 0)
        close(close_fd);
    execvp(argv[0], argv);
    fprintf(stderr, "remoractl iptables: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Runs argv and collects its stdout into *out (new string, caller frees). Returns the exit
 * status (>= 0) or a negative errno when it could not be run at all. */
static int run_capture(char *const argv[], char **out)
{
    int fds[2];
    char *buf = NULL;
    size_t len = 0, cap = 0;

    *out = NULL;
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = spawn(argv, -1, fds[1], fds[0]);
    int err = pid < 0 ? -errno : 0;
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return err;
    }
    for (;;) {
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap ? cap * 2 : 16384);
            if (!nb) {
                err = -ENOMEM;
                break;
            }
            buf = nb;
            cap = cap ? cap * 2 : 16384;
        }
        ssize_t n = read(fds[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = -errno;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    int status = wait_child(pid);
    if (err < 0 || status != 0) {
        free(buf);
        return err < 0 ? err : status;
    }
    if (buf)
        buf[len] = '\0';
    *out = buf ? buf : strdup("");
    return *out ? 0 : -ENOMEM;
}

/* Runs argv with text on its stdin. Returns its exit status or a negative errno. */
static int run_feed(char *const argv[], const char *text)
{
    int fds[2];
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    int err = 0;

    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = spawn(argv, fds[0], -1, fds[1]);
    if (pid < 0)
        err = -errno;
    close(fds[0]);
    if (pid < 0) {
        close(fds[1]);
        return err;
    }
    /* If the tool dies early we want its exit status, not to be killed by SIGPIPE. */
    sigaction(SIGPIPE, &ign, &old);
    for (size_t off = 0, len = strlen(text); off < len;) {
        ssize_t n = write(fds[1], text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break; /* EPIPE: the exit status below says why */
        off += (size_t)n;
    }
    close(fds[1]);
    sigaction(SIGPIPE, &old, NULL);
    return wait_child(pid);
}

/* ---- the subcommand ------------------------------------------------------------------------- */

static int read_current(char **saved)
{
    char *argv[] = {"iptables-save", "-t", "nat", NULL};
    int rc = run_capture(argv, saved);
    if (rc < 0)
        fprintf(stderr, "remoractl iptables: reading current rules with iptables-save: %s\n",
                strerror(-rc));
    else if (rc > 0)
        fprintf(stderr, "remoractl iptables: iptables-save -t nat failed (exit status %d)\n", rc);
    return rc == 0 ? 0 : -EIO;
}

int iptables_main(int argc, char *argv[])
{
    iptables_opts_t opts;
    char err[256];
    char *saved = NULL, *text = NULL;
    int status = 1;

    if (iptables_parse_args(argc - 1, argv + 1, &opts, err, sizeof(err)) < 0) {
        fprintf(stderr, "remoractl iptables: %s\n(see remoractl iptables --help)\n", err);
        return 2;
    }
    if (opts.help) {
        fputs(USAGE, stdout);
        return 0;
    }

    /* Only root can read the ruleset; a non-root dry run shows a fresh install instead, which
     * is what the init container would feed into a new pod. */
    bool can_read = !(opts.dry_run && geteuid() != 0);
    if (can_read && read_current(&saved) < 0)
        goto out;

    int rc = opts.action == IPT_ACTION_APPLY ? iptables_render_apply(&opts, saved, &text)
                                             : iptables_render_clean(saved, &text);
    if (rc < 0) {
        fprintf(stderr, "remoractl iptables: rendering rules: %s\n", strerror(-rc));
        goto out;
    }
    if (opts.dry_run) {
        if (!can_read)
            puts("# not root: current rules not read; showing the rules for a fresh namespace");
        if (text)
            fputs(text, stdout);
        else if (can_read)
            puts("# nothing of ours is installed; clean has nothing to do");
        status = 0;
        goto out;
    }
    if (!text) {
        status = 0; /* clean with nothing installed */
        goto out;
    }

    char *restore[] = {"iptables-restore", "--noflush", "-w", NULL};
    rc = run_feed(restore, text);
    if (rc < 0) {
        fprintf(stderr, "remoractl iptables: running iptables-restore: %s\n", strerror(-rc));
        goto out;
    }
    if (rc > 0) {
        fprintf(stderr,
                "remoractl iptables: iptables-restore failed (exit status %d); the rules were "
                "left unchanged\n",
                rc);
        goto out;
    }
    status = 0;
out:
    free(saved);
    free(text);
    return status;
}
