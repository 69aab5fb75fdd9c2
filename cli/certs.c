/* certs.c — `remoractl certs root|intermediate|issue`: parses flags and durations, then lets
 * certs/ca.c make the keys and certificates and write them where they were asked for. */
#include "cli/certs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certs/ca.h"
#include "cli/flags.h"
#include "base/err.h"

static const char USAGE[] =
    "usage: remoractl certs root|intermediate|issue [flags]\n"
    "\n"
    "Make the certificates of a mesh: a root CA, intermediate CAs signed by it, and workload\n"
    "certificates for SPIFFE IDs, in directories laid out as Istio's (root-cert.pem,\n"
    "ca-cert.pem, ca-key.pem, cert-chain.pem, key.pem).\n"
    "\n"
    "  root          make a self-signed root CA\n"
    "  intermediate  sign an intermediate CA with a root or another intermediate\n"
    "  issue         issue a workload certificate for a SPIFFE ID\n"
    "\n"
    "remoractl certs <subcommand> --help describes each.\n";

static const char USAGE_ROOT[] =
    "usage: remoractl certs root --out DIR [--rsa] [--ttl 87600h] [--org NAME] [--force]\n"
    "\n"
    "Make a self-signed root CA: DIR/root-cert.pem (mode 0644) and DIR/root-key.pem (0600).\n"
    "Its subject is \"O=<org>, CN=Root CA\"; it may sign CAs and certificates without a limit\n"
    "on the path length below it.\n"
    "\n"
    "flags:\n"
    "  --out DIR    where to write (created with mode 0755 if missing)\n"
    "  --rsa        an RSA-2048 key instead of ECDSA P-256\n"
    "  --ttl DUR    lifetime (default 87600h: 10 years)\n"
    "  --org NAME   the organization in the subject (default Remora)\n"
    "  --force      replace the files of an existing CA in DIR (never done otherwise)\n"
    "  -h, --help   this text\n"
    "\n"
    "DUR is a number and a unit, s, m, h or d (90s, 30m, 24h, 365d), or several (1h30m).\n"
    "Exit status: 0 ok, 1 failed (the reason on stderr), 2 bad usage.\n";

static const char USAGE_INTERMEDIATE[] =
    "usage: remoractl certs intermediate --ca DIR --out DIR2 [--ttl 8760h] [--rsa] [--org NAME]\n"
    "                                    [--pathlen N] [--force]\n"
    "\n"
    "Sign an intermediate CA with the CA in DIR: a root directory (root-cert.pem, root-key.pem)\n"
    "or an intermediate one (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem). Writes\n"
    "DIR2/ca-cert.pem, DIR2/ca-key.pem (mode 0600), DIR2/cert-chain.pem (ca-cert.pem, then the\n"
    "issuer's intermediates; never the root) and DIR2/root-cert.pem. Its subject is\n"
    "\"O=<org>, CN=Intermediate CA\" (\"Intermediate CA <n>\" n levels below the root); it\n"
    "never outlives its issuer (the TTL is cut short).\n"
    "\n"
    "flags:\n"
    "  --ca DIR      the issuing CA\n"
    "  --out DIR2    where to write (created with mode 0755 if missing)\n"
    "  --ttl DUR     lifetime (default 8760h: 1 year)\n"
    "  --rsa         an RSA-2048 key instead of ECDSA P-256\n"
    "  --org NAME    the organization in the subject (default: the issuer's)\n"
    "  --pathlen N   CA levels allowed below the new one (default: one less than the issuer\n"
    "                allows, or 0 when it sets no limit: the new CA signs workloads only)\n"
    "  --force       replace the files of an existing CA in DIR2 (never done otherwise)\n"
    "  -h, --help    this text\n"
    "\n"
    "DUR is a number and a unit, s, m, h or d (90s, 30m, 24h, 365d), or several (1h30m).\n"
    "Exit status: 0 ok, 1 failed (the reason on stderr), 2 bad usage.\n";

static const char USAGE_ISSUE[] =
    "usage: remoractl certs issue --ca DIR --out DIR2 --spiffe-id ID [--ttl 24h]\n"
    "       remoractl certs issue --ca DIR --out DIR2 --ns NS --sa SA [--trust-domain TD]\n"
    "                             [--ttl 24h]\n"
    "\n"
    "Issue a workload certificate for a SPIFFE ID (spiffe://<trust domain>/<path>), signed by\n"
    "the CA in DIR (a root or an intermediate directory). Writes DIR2/key.pem (mode 0600),\n"
    "DIR2/cert-chain.pem (the certificate, then the intermediates) and DIR2/root-cert.pem,\n"
    "replacing earlier ones: issuing again is how a workload's certificate is rotated.\n"
    "The certificate has an empty subject and the ID as its only (critical) URI SAN; its\n"
    "not-before is a minute in the past and it never outlives its issuer.\n"
    "\n"
    "flags:\n"
    "  --ca DIR            the issuing CA\n"
    "  --out DIR2          where to write (created with mode 0755 if missing)\n"
    "  --spiffe-id ID      the identity, e.g. spiffe://cluster.local/ns/default/sa/web\n"
    "  --ns NS --sa SA     shorthand for spiffe://<TD>/ns/<NS>/sa/<SA>\n"
    "  --trust-domain TD   the trust domain for --ns/--sa (default cluster.local)\n"
    "  --ttl DUR           lifetime (default 24h)\n"
    "  -h, --help          this text\n"
    "\n"
    "DUR is a number and a unit, s, m, h or d (90s, 30m, 24h, 365d), or several (1h30m).\n"
    "Exit status: 0 ok, 1 failed (the reason on stderr), 2 bad usage.\n";

typedef enum certs_sub {
    SUB_NONE = 0,
    SUB_ROOT = 1,
    SUB_INTERMEDIATE = 2,
    SUB_ISSUE = 4,
} certs_sub_t;

#define SUB_ALL (SUB_ROOT | SUB_INTERMEDIATE | SUB_ISSUE)

static const struct sub_def {
    const char *name;
    certs_sub_t id;
    const char *usage;
} SUBS[] = {
    {"root", SUB_ROOT, USAGE_ROOT},
    {"intermediate", SUB_INTERMEDIATE, USAGE_INTERMEDIATE},
    {"issue", SUB_ISSUE, USAGE_ISSUE},
};

#define N_SUBS (sizeof(SUBS) / sizeof(SUBS[0]))

typedef struct certs_args {
    const struct sub_def *sub; /* NULL: `remoractl certs --help` */
    const char *out, *ca, *spiffe_id, *ns, *sa, *trust_domain, *org;
    int64_t ttl_s; /* 0: the default for the kind */
    int pathlen;   /* -1: the default */
    bool rsa, force, help;
} certs_args_t;

enum flag_id {
    F_OUT,
    F_CA,
    F_TTL,
    F_RSA,
    F_ORG,
    F_PATHLEN,
    F_FORCE,
    F_SPIFFE_ID,
    F_NS,
    F_SA,
    F_TRUST_DOMAIN,
    F_HELP,
};

static const cli_flag_t FLAGS[] = {
    {"--out", F_OUT, true, SUB_ALL},
    {"--ca", F_CA, true, SUB_INTERMEDIATE | SUB_ISSUE},
    {"--ttl", F_TTL, true, SUB_ALL},
    {"--rsa", F_RSA, false, SUB_ROOT | SUB_INTERMEDIATE},
    {"--org", F_ORG, true, SUB_ROOT | SUB_INTERMEDIATE},
    {"--pathlen", F_PATHLEN, true, SUB_INTERMEDIATE},
    {"--force", F_FORCE, false, SUB_ROOT | SUB_INTERMEDIATE},
    {"--spiffe-id", F_SPIFFE_ID, true, SUB_ISSUE},
    {"--ns", F_NS, true, SUB_ISSUE},
    {"--sa", F_SA, true, SUB_ISSUE},
    {"--trust-domain", F_TRUST_DOMAIN, true, SUB_ISSUE},
    {"--help", F_HELP, false, SUB_ALL},
    {"-h", F_HELP, false, SUB_ALL},
};

/* ---- durations and flags ------------------------------------------------------------------ */

int certs_parse_duration(const char *s, int64_t *seconds)
{
    int64_t total = 0;

    if (*s == '\0')
        return -EINVAL;
    while (*s != '\0') {
        int64_t v = 0, unit;
        if (*s < '0' || *s > '9')
            return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
            v = v * 10 + (*s - '0');
            if (v > CA_MAX_TTL_S)
                return -EINVAL;
        }
        switch (*s++) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return -EINVAL;
        }
        if (v > (CA_MAX_TTL_S - total) / unit)
            return -EINVAL;
        total += v * unit;
    }
    if (total == 0)
        return -EINVAL;
    *seconds = total;
    return 0;
}

static const cli_flag_t *find_flag(const char *arg, const char **inline_value)
{
    return cli_flag_find(FLAGS, sizeof(FLAGS) / sizeof(FLAGS[0]), arg, inline_value);
}

static int apply_flag(const cli_flag_t *f, const char *v, certs_args_t *a, char *err, size_t errlen)
{
    switch (f->id) {
    case F_OUT:
        a->out = v;
        return 0;
    case F_CA:
        a->ca = v;
        return 0;
    case F_TTL:
        if (certs_parse_duration(v, &a->ttl_s) < 0)
            return err_set(err, errlen, -EINVAL,
                           "--ttl: bad duration \"%s\" (want e.g. 90s, 30m, 24h or 365d, more than "
                           "zero and at most 100 years)",
                           v);
        return 0;
    case F_RSA:
        a->rsa = true;
        return 0;
    case F_ORG:
        a->org = v;
        return 0;
    case F_PATHLEN: {
        char *end;
        long n = strtol(v, &end, 10);
        if (*v < '0' || *v > '9' || *end != '\0' || n > CA_MAX_PATHLEN)
            return err_set(err, errlen, -EINVAL, "--pathlen: bad value \"%s\" (want 0 to %d)", v,
                           CA_MAX_PATHLEN);
        a->pathlen = (int)n;
        return 0;
    }
    case F_FORCE:
        a->force = true;
        return 0;
    case F_SPIFFE_ID:
        a->spiffe_id = v;
        return 0;
    case F_NS:
        a->ns = v;
        return 0;
    case F_SA:
        a->sa = v;
        return 0;
    case F_TRUST_DOMAIN:
        a->trust_domain = v;
        return 0;
    case F_HELP:
        a->help = true;
        return 0;
    }
    return err_set(err, errlen, -EINVAL, "internal error: unhandled flag %s", f->name);
}

/* The flags a subcommand cannot do without, and those that exclude each other. */
static int check_required(const certs_args_t *a, char *err, size_t errlen)
{
    unsigned sub = a->sub->id;
    if (!a->out)
        return err_set(err, errlen, -EINVAL, "missing --out DIR");
    if ((sub & (SUB_INTERMEDIATE | SUB_ISSUE)) && !a->ca)
        return err_set(err, errlen, -EINVAL, "missing --ca DIR (the issuing CA's directory)");
    if (sub != SUB_ISSUE)
        return 0;
    if (a->spiffe_id && (a->ns || a->sa || a->trust_domain))
        return err_set(err, errlen, -EINVAL,
                       "give either --spiffe-id or --ns/--sa/--trust-domain, not both");
    if (!a->spiffe_id && !a->ns && !a->sa)
        return err_set(err, errlen, -EINVAL, "missing --spiffe-id ID (or --ns NS --sa SA)");
    if (!a->spiffe_id && (!a->ns || !a->sa))
        return err_set(err, errlen, -EINVAL, "--ns and --sa go together");
    return 0;
}

/* Parses `<subcommand> [flags]` or `--help` (argv borrowed; *a points into it). Returns 0, or
 * -EINVAL with the reason in err. */
static int parse_args(int argc, char *const argv[], certs_args_t *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    a->pathlen = -1;
    if (argc == 0)
        return err_set(err, errlen, -EINVAL,
                       "missing subcommand (want root, intermediate or issue)");
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
        strcmp(argv[0], "help") == 0) {
        a->help = true;
        return 0;
    }
    for (size_t i = 0; i < N_SUBS; i++)
        if (strcmp(argv[0], SUBS[i].name) == 0)
            a->sub = &SUBS[i];
    if (!a->sub)
        return err_set(err, errlen, -EINVAL,
                       "unknown subcommand \"%s\" (want root, intermediate or issue)", argv[0]);

    for (int i = 1; i < argc; i++) {
        const char *value;
        const cli_flag_t *f = find_flag(argv[i], &value);
        if (!f && argv[i][0] != '-')
            return err_set(err, errlen, -EINVAL, "unexpected argument \"%s\"", argv[i]);
        if (!f)
            return err_set(err, errlen, -EINVAL, "unknown flag \"%s\"", argv[i]);
        if (!(f->scope & a->sub->id))
            return err_set(err, errlen, -EINVAL, "%s is not a flag of certs %s", f->name,
                           a->sub->name);
        if (!f->takes_value && value)
            return err_set(err, errlen, -EINVAL, "%s takes no value", f->name);
        if (f->takes_value && !value) {
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
                return err_set(err, errlen, -EINVAL, "%s needs a value", f->name);
            value = argv[++i];
        }
        int rc = apply_flag(f, value, a, err, errlen);
        if (rc < 0)
            return rc;
    }
    return a->help ? 0 : check_required(a, err, errlen);
}

/* ---- running ------------------------------------------------------------------------------ */

static const char *iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

/* Prints the one line a failure gets and returns the exit status for it. */
static int report(const certs_args_t *a, int rc, const char *err)
{
    fprintf(stderr, "remoractl certs %s: %s%s\n", a->sub->name, err,
            rc == -EEXIST ? " (--force replaces it)" : "");
    return 1;
}

static void note_clamped(const certs_args_t *a, const ca_issued_t *c)
{
    char when[32];
    if (c->clamped)
        fprintf(stderr,
                "remoractl certs %s: note: valid only until %s, when the issuing CA expires\n",
                a->sub->name, iso_time(c->not_after, when));
}

static void opts_from_args(const certs_args_t *a, ca_opts_t *o)
{
    ca_opts_default(o);
    o->key_type = a->rsa ? CA_KEY_RSA_2048 : CA_KEY_EC_P256;
    o->ttl_s = a->ttl_s;
    o->org = a->org;
    o->pathlen = a->pathlen;
}

static int run_root(const certs_args_t *a)
{
    ca_opts_t o;
    ca_issued_t c;
    char err[1024], when[32];

    opts_from_args(a, &o);
    int rc = ca_make_root(&o, &c, err, sizeof(err));
    if (rc < 0)
        return report(a, rc, err);
    rc = ca_save_dir(a->out, CA_LAYOUT_ROOT, &c, a->force, err, sizeof(err));
    if (rc == 0)
        printf("root CA in %s: root-cert.pem, root-key.pem; valid until %s\n", a->out,
               iso_time(c.not_after, when));
    ca_issued_free(&c);
    return rc < 0 ? report(a, rc, err) : 0;
}

static int run_intermediate(const certs_args_t *a)
{
    ca_opts_t o;
    ca_issued_t c;
    ca_issuer_t *issuer;
    char err[1024], when[32];

    opts_from_args(a, &o);
    int rc = ca_issuer_load_dir(a->ca, &issuer, err, sizeof(err));
    if (rc < 0)
        return report(a, rc, err);
    rc = ca_make_intermediate(issuer, &o, &c, err, sizeof(err));
    ca_issuer_free(issuer);
    if (rc < 0)
        return report(a, rc, err);
    rc = ca_save_dir(a->out, CA_LAYOUT_INTERMEDIATE, &c, a->force, err, sizeof(err));
    if (rc == 0) {
        printf("intermediate CA in %s: ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem; "
               "valid until %s\n",
               a->out, iso_time(c.not_after, when));
        note_clamped(a, &c);
    }
    ca_issued_free(&c);
    return rc < 0 ? report(a, rc, err) : 0;
}

static int run_issue(const certs_args_t *a)
{
    char id[CA_SPIFFE_ID_MAX + 1], why[512], err[1024], when[32];
    ca_opts_t o;
    ca_issued_t c;
    ca_issuer_t *issuer;
    int rc;

    if (a->spiffe_id) {
        snprintf(id, sizeof(id), "%s", a->spiffe_id);
        rc = ca_validate_spiffe_id(a->spiffe_id, why, sizeof(why));
    } else {
        const char *td = a->trust_domain ? a->trust_domain : CA_DEFAULT_TD;
        snprintf(id, sizeof(id), CA_SPIFFE_SCHEME "%s/ns/%s/sa/%s", td, a->ns, a->sa);
        char built[CA_SPIFFE_ID_MAX + 1];
        rc = ca_spiffe_id_build(td, a->ns, a->sa, built, sizeof(built), why, sizeof(why));
    }
    if (rc < 0) {
        fprintf(stderr, "remoractl certs issue: bad SPIFFE ID \"%.300s%s\": %s\n", id,
                strlen(id) > 300 ? "..." : "", why);
        return 1;
    }

    opts_from_args(a, &o);
    rc = ca_issuer_load_dir(a->ca, &issuer, err, sizeof(err));
    if (rc < 0)
        return report(a, rc, err);
    rc = ca_issue_workload(issuer, id, &o, &c, err, sizeof(err));
    ca_issuer_free(issuer);
    if (rc < 0)
        return report(a, rc, err);
    rc = ca_save_dir(a->out, CA_LAYOUT_WORKLOAD, &c, true, err, sizeof(err));
    if (rc == 0) {
        printf("%s in %s: key.pem, cert-chain.pem, root-cert.pem; valid until %s\n", id, a->out,
               iso_time(c.not_after, when));
        note_clamped(a, &c);
    }
    ca_issued_free(&c);
    return rc < 0 ? report(a, rc, err) : 0;
}

int certs_main(int argc, char *argv[])
{
    certs_args_t a;
    char err[512];

    if (parse_args(argc - 1, argv + 1, &a, err, sizeof(err)) < 0) {
        const char *sub = a.sub ? a.sub->name : NULL;
        fprintf(stderr, "remoractl certs%s%s: %s\n(see remoractl certs%s%s --help)\n",
                sub ? " " : "", sub ? sub : "", err, sub ? " " : "", sub ? sub : "");
        return 2;
    }
    if (a.help) {
        fputs(a.sub ? a.sub->usage : USAGE, stdout);
        return 0;
    }
    switch (a.sub->id) {
    case SUB_ROOT:
        return run_root(&a);
    case SUB_INTERMEDIATE:
        return run_intermediate(&a);
    case SUB_ISSUE:
        return run_issue(&a);
    case SUB_NONE:
        break;
    }
    return 2;
}
