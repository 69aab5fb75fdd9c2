/* xds_load: N simulated sidecars (one process, one libuv loop, one gRPC connection and ADS
 * stream each) against a control plane on loopback, measuring what issue 14 asks of it: how long
 * until every sidecar holds a full config (at start, and again after the control plane
 * restarts), how long from a change ("mark" on stdin) until every sidecar that got new endpoints
 * has ACKed them, and the bytes per change. Prints key=value records on stdout (bench/README.md,
 * "xds_load: many simulated sidecars").
 *
 *   xds_load [--addr 127.0.0.1:15010] [--sidecars N] [--delta] [--converge] [--stdin] ...
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/xds_load.h"

#define LABEL_MAX 64

/* One convergence round: all sidecars at start, or again after streams were lost. */
typedef struct round {
    unsigned id;
    uint64_t start_ns;       /* tool start, or the first loss after all were full */
    uint64_t first_ready_ns; /* a later round: the first connection up again */
    double *ms;              /* per sidecar that became full in the round: ms since origin */
    size_t n;
} round_t;

/* One mark: a change the bench script made, and the EDS responses that followed it. */
typedef struct mark {
    bool open;
    unsigned id;
    char label[LABEL_MAX];
    unsigned expect;    /* finish once this many sidecars ACKed (0: by settling) */
    uint64_t t0;        /* when the mark was read */
    unsigned sidecars;  /* sidecars that got an EDS response after t0 */
    unsigned acked;     /* of them, those that ACKed one */
    uint64_t responses; /* EDS responses after t0, and how many were NACKed */
    uint64_t nacks;
    uint64_t first_ack, last_ack;
    uint64_t bytes[XL_NTYPES + 1]; /* by type; [XL_NTYPES] unknown types */
} mark_t;

struct xl_run {
    uv_loop_t *loop;
    xl_opts_t o;
    struct sockaddr_storage addr;
    xl_sidecar_t **sc; /* [0, ngood) well-behaved, then the misbehaving ones (NULL: slow) */
    xl_slow_t **slow;
    unsigned n, ngood, nslow;
    uint64_t fc[XL_NFAULTS][XL_NFC]; /* what the misbehaving ones did */
    /* per sidecar: the last mark it got an EDS response in, and the last it ACKed one in */
    unsigned *mark_got, *mark_acked;
    uint64_t start_ns;
    /* totals */
    uint64_t bytes[XL_NTYPES + 1], msgs[XL_NTYPES + 1];
    uint64_t acks[XL_NTYPES], nacks[XL_NTYPES];
    uint64_t bad_responses, readies, losses, connect_failures;
    uint64_t self_ns_max, self_ns_sum, answers;
    /* convergence */
    unsigned nfull;
    bool all_full;
    round_t first, last; /* the first round, and the last one after it */
    unsigned rounds;
    /* marks */
    mark_t mark;
    double *mark_ms;
    size_t nmarks, mark_cap;
    uint64_t mark_bytes_sum, mark_sidecars_sum;
    uv_timer_t settle, mark_timeout, duration;
    /* input and ending */
    uv_pipe_t in_pipe;
    uv_tty_t in_tty;
    uv_stream_t *in;
    char line[512];
    size_t line_len;
    uv_signal_t sigint, sigterm;
    bool finishing;
};

const char *const xl_fault_name[XL_NFAULTS] = {"none", "never_ack", "garbage", "reconnect", "slow"};
const char *const xl_fc_name[XL_NFC] = {"streams", "responses", "bytes",
                                        "garbage", "written",   "lost"};

uint64_t xl_now_ns(void)
{
    return uv_hrtime();
}

uv_loop_t *xl_run_loop(xl_run_t *x)
{
    return x->loop;
}

const xl_opts_t *xl_run_opts(const xl_run_t *x)
{
    return &x->o;
}

const struct sockaddr *xl_run_addr(const xl_run_t *x)
{
    return (const struct sockaddr *)&x->addr;
}

char *xl_subst(const char *pattern, const char *const *keys, const char *const *vals, size_t n)
{
    size_t cap = strlen(pattern) + 1, len = 0;
    for (size_t k = 0; k < n; k++)
        cap += strlen(vals[k]) * 4; /* generous: a key may appear a few times */
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    for (const char *p = pattern; *p;) {
        size_t k = 0;
        while (k < n && strncmp(p, keys[k], strlen(keys[k])) != 0)
            k++;
        const char *add = k < n ? vals[k] : p;
        size_t alen = k < n ? strlen(vals[k]) : 1;
        if (len + alen + 1 > cap) {
            char *grown = realloc(out, cap = (len + alen + 1) * 2);
            if (grown == NULL) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + len, add, alen);
        len += alen;
        p += k < n ? strlen(keys[k]) : 1;
    }
    out[len] = '\0';
    return out;
}

/* --- distributions ----------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile q (0..1] of v[0..n) (sorted here). */
static double pct(double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    size_t r = (size_t)ceil(q * (double)n);
    return v[r ? r - 1 : 0];
}

static void print_dist(const char *prefix, double *v, size_t n)
{
    printf(" %s_p50=%.3f %s_p99=%.3f %s_max=%.3f", prefix, pct(v, n, 0.5), prefix, pct(v, n, 0.99),
           prefix, pct(v, n, 1.0));
}

static double ms_between(uint64_t a, uint64_t b)
{
    return b > a ? (double)(b - a) / 1e6 : 0;
}

/* --- convergence ------------------------------------------------------------------------- */

static void finish(xl_run_t *x);

static void round_begin(xl_run_t *x, round_t *r, uint64_t now)
{
    free(r->ms);
    memset(r, 0, sizeof(*r));
    r->id = ++x->rounds;
    r->start_ns = now;
    r->ms = calloc(x->n, sizeof(*r->ms));
}

static round_t *round_now(xl_run_t *x)
{
    return x->rounds <= 1 ? &x->first : &x->last;
}

static void round_print(xl_run_t *x, round_t *r, bool complete)
{
    uint64_t origin = r->id == 1 ? r->start_ns : r->first_ready_ns;
    printf("converge round=%u complete=%d sidecars=%zu of=%u since=%s", r->id, complete, r->n,
           x->ngood, r->id == 1 ? "start" : "reconnect");
    if (r->id > 1)
        printf(" down_ms=%.3f", ms_between(r->start_ns, origin));
    print_dist("ms", r->ms, r->n);
    printf("\n");
    fflush(stdout);
}

void xl_run_on_fault(xl_run_t *x, xl_fault_t f, int counter, uint64_t n)
{
    x->fc[f][counter] += n;
}

void xl_run_on_ready(xl_run_t *x, xl_sidecar_t *s)
{
    if (xl_sidecar_fault(s) != XL_FAULT_NONE)
        return;
    x->readies++;
    round_t *r = round_now(x);
    if (r->id > 1 && r->first_ready_ns == 0)
        r->first_ready_ns = xl_now_ns();
}

void xl_run_on_lost(xl_run_t *x, xl_sidecar_t *s, bool was_full, bool was_ready, const char *why)
{
    if (xl_sidecar_fault(s) != XL_FAULT_NONE) {
        x->fc[xl_sidecar_fault(s)][XL_FC_LOST]++;
        return;
    }
    x->losses++;
    x->connect_failures += !was_ready;
    if (x->losses <= 10 && !x->finishing)
        fprintf(stderr, "xds_load: sidecar %u: %s (%s)%s\n", xl_sidecar_index(s),
                was_ready ? "stream ended" : "connection failed", why,
                x->losses == 10 ? "; further losses are only counted" : "");
    if (!was_full)
        return;
    x->nfull--;
    if (x->all_full && !x->finishing) {
        /* The first loss after every sidecar held a full config starts a new round. */
        x->all_full = false;
        round_begin(x, &x->last, xl_now_ns());
    }
}

void xl_run_on_full(xl_run_t *x, xl_sidecar_t *s, uint64_t now)
{
    (void)s;
    round_t *r = round_now(x);
    x->nfull++;
    uint64_t origin = r->id == 1 ? r->start_ns : r->first_ready_ns;
    if (r->ms && r->n < x->ngood)
        r->ms[r->n++] = ms_between(origin, now);
    if (x->nfull < x->ngood || x->all_full)
        return;
    x->all_full = true;
    round_print(x, r, true);
    if (x->o.converge)
        finish(x);
}

/* --- marks ------------------------------------------------------------------------------- */

static void mark_finish(xl_run_t *x)
{
    mark_t *m = &x->mark;
    if (!m->open)
        return;
    m->open = false;
    uv_timer_stop(&x->settle);
    uv_timer_stop(&x->mark_timeout);
    uint64_t total = 0;
    for (int t = 0; t <= XL_NTYPES; t++)
        total += m->bytes[t];
    double ms = ms_between(m->t0, m->last_ack);
    printf("mark label=%s sidecars=%u acked=%u responses=%" PRIu64 " nacks=%" PRIu64
           " ms=%.3f first_ms=%.3f bytes=%" PRIu64,
           m->label, m->sidecars, m->acked, m->responses, m->nacks, ms,
           ms_between(m->t0, m->first_ack), total);
    for (int t = 0; t < XL_NTYPES; t++)
        printf(" bytes_%s=%" PRIu64, xl_type_name[t], m->bytes[t]);
    printf(" bytes_per_sidecar=%.1f\n", m->sidecars ? (double)total / m->sidecars : 0.0);
    fflush(stdout);
    if (m->sidecars == 0)
        return;
    if (x->nmarks == x->mark_cap) {
        size_t cap = x->mark_cap ? x->mark_cap * 2 : 64;
        double *v = realloc(x->mark_ms, cap * sizeof(*v));
        if (v == NULL)
            return;
        x->mark_ms = v, x->mark_cap = cap;
    }
    x->mark_ms[x->nmarks++] = ms;
    x->mark_bytes_sum += total;
    x->mark_sidecars_sum += m->sidecars;
}

static void on_mark_timer(uv_timer_t *t)
{
    mark_finish(t->data);
}

static void mark_begin(xl_run_t *x, const char *label, unsigned expect)
{
    mark_finish(x);
    mark_t *m = &x->mark;
    unsigned id = m->id + 1;
    memset(m, 0, sizeof(*m));
    m->open = true, m->id = id, m->expect = expect;
    snprintf(m->label, sizeof(m->label), "%s", label);
    m->t0 = xl_now_ns();
    printf("marked label=%s\n", m->label); /* the script may make its change now */
    fflush(stdout);
    uv_timer_start(&x->mark_timeout, on_mark_timer, x->o.mark_timeout_ms, 0);
}

void xl_run_on_bytes(xl_run_t *x, int type, size_t n)
{
    int i = type < 0 ? XL_NTYPES : type;
    x->bytes[i] += n;
    x->msgs[i]++;
    if (x->mark.open)
        x->mark.bytes[i] += n;
}

void xl_run_on_answer(xl_run_t *x, xl_sidecar_t *s, int type, uint64_t rx_ns, uint64_t ack_ns,
                      bool ok)
{
    (ok ? x->acks : x->nacks)[type]++;
    uint64_t self = ack_ns - rx_ns;
    x->self_ns_sum += self, x->answers++;
    if (self > x->self_ns_max)
        x->self_ns_max = self;
    mark_t *m = &x->mark;
    if (!m->open || type != XL_EDS || rx_ns < m->t0)
        return;
    unsigned idx = xl_sidecar_index(s);
    m->responses++;
    if (x->mark_got[idx] != m->id) {
        x->mark_got[idx] = m->id;
        m->sidecars++;
    }
    if (!ok) {
        m->nacks++;
    } else {
        if (x->mark_acked[idx] != m->id) {
            x->mark_acked[idx] = m->id;
            m->acked++;
        }
        m->last_ack = ack_ns;
        if (m->first_ack == 0)
            m->first_ack = ack_ns;
    }
    if (m->expect && m->acked >= m->expect)
        mark_finish(x);
    else
        uv_timer_start(&x->settle, on_mark_timer, x->o.settle_ms, 0);
}

void xl_run_on_bad_response(xl_run_t *x, xl_sidecar_t *s)
{
    if (xl_sidecar_fault(s) != XL_FAULT_NONE)
        return;
    x->bad_responses++;
}

/* --- input: mark and quit on stdin ------------------------------------------------------- */

/* One command line: "mark LABEL [EXPECT]" or "quit"; anything else is reported and ignored. */
static void command(xl_run_t *x, char *line)
{
    char *save = NULL;
    char *word = strtok_r(line, " \t\r", &save);
    if (word == NULL)
        return;
    if (strcmp(word, "quit") == 0) {
        finish(x);
    } else if (strcmp(word, "mark") == 0) {
        char *label = strtok_r(NULL, " \t\r", &save);
        char *expect = strtok_r(NULL, " \t\r", &save);
        mark_begin(x, label ? label : "-", expect ? (unsigned)strtoul(expect, NULL, 10) : 0);
    } else {
        fprintf(stderr, "xds_load: unknown command '%s' (mark LABEL [EXPECT], quit)\n", word);
    }
}

static void in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    xl_run_t *x = h->data;
    buf->base = x->line + x->line_len;
    buf->len = sizeof(x->line) - 1 - x->line_len;
}

static void in_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    xl_run_t *x = st->data;
    if (n < 0) {
        finish(x); /* stdin closed: the script is done */
        return;
    }
    x->line_len += (size_t)n;
    char *nl;
    while ((nl = memchr(x->line, '\n', x->line_len)) != NULL) {
        *nl = '\0';
        size_t used = (size_t)(nl - x->line) + 1;
        command(x, x->line);
        if (x->finishing)
            return;
        memmove(x->line, nl + 1, x->line_len - used);
        x->line_len -= used;
    }
    if (x->line_len >= sizeof(x->line) - 1)
        x->line_len = 0; /* a line too long for any command: dropped */
}

static int input_open(xl_run_t *x)
{
    uv_handle_type kind = uv_guess_handle(0);
    int rc;
    if (kind == UV_TTY) {
        rc = uv_tty_init(x->loop, &x->in_tty, 0, 1);
        x->in = (uv_stream_t *)&x->in_tty;
    } else if (kind == UV_NAMED_PIPE) {
        if ((rc = uv_pipe_init(x->loop, &x->in_pipe, 0)) == 0)
            rc = uv_pipe_open(&x->in_pipe, 0);
        x->in = (uv_stream_t *)&x->in_pipe;
    } else {
        fprintf(stderr, "xds_load: --stdin needs a pipe, FIFO or terminal on stdin\n");
        return -EINVAL;
    }
    if (rc < 0) {
        fprintf(stderr, "xds_load: stdin: %s\n", uv_strerror(rc));
        if (!uv_is_closing((uv_handle_t *)x->in))
            uv_close((uv_handle_t *)x->in, NULL);
        x->in = NULL;
        return rc;
    }
    x->in->data = x;
    return uv_read_start(x->in, in_alloc, in_read);
}

/* --- the end: summary and closing -------------------------------------------------------- */

static void print_summary(xl_run_t *x)
{
    uint64_t now = xl_now_ns(), bytes = 0, msgs = 0, acks = 0, nacks = 0;
    for (int t = 0; t <= XL_NTYPES; t++)
        bytes += x->bytes[t], msgs += x->msgs[t];
    for (int t = 0; t < XL_NTYPES; t++)
        acks += x->acks[t], nacks += x->nacks[t];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    uint64_t decoded, hits;
    xl_cache_counts(&decoded, &hits);
    printf(
        "summary mode=%s sidecars=%u faulty=%u elapsed_s=%.3f full=%u rounds=%u connects=%" PRIu64
        " disconnects=%" PRIu64 " connect_failures=%" PRIu64 " responses=%" PRIu64 " bytes=%" PRIu64
        " acks=%" PRIu64 " nacks=%" PRIu64 " bad_responses=%" PRIu64,
        x->o.delta ? "delta" : "sotw", x->ngood, x->n - x->ngood,
        ms_between(x->start_ns, now) / 1e3, x->nfull, x->rounds, x->readies, x->losses,
        x->connect_failures, msgs, bytes, acks, nacks, x->bad_responses);
    for (int t = 0; t < XL_NTYPES; t++)
        printf(" responses_%s=%" PRIu64 " bytes_%s=%" PRIu64 " acks_%s=%" PRIu64
               " nacks_%s=%" PRIu64,
               xl_type_name[t], x->msgs[t], xl_type_name[t], x->bytes[t], xl_type_name[t],
               x->acks[t], xl_type_name[t], x->nacks[t]);
    printf(" converge_complete=%d", x->first.n == x->ngood);
    print_dist("converge_ms", x->first.ms, x->first.n);
    printf(" restart_rounds=%u restart_complete=%d", x->rounds > 1 ? x->rounds - 1 : 0,
           x->rounds > 1 && x->last.n == x->ngood);
    print_dist("restart_ms", x->last.ms, x->last.n);
    printf(" marks=%zu", x->nmarks);
    print_dist("mark_ms", x->mark_ms, x->nmarks);
    printf(" mark_bytes_avg=%.1f mark_bytes_per_sidecar=%.1f",
           x->nmarks ? (double)x->mark_bytes_sum / (double)x->nmarks : 0.0,
           x->mark_sidecars_sum ? (double)x->mark_bytes_sum / (double)x->mark_sidecars_sum : 0.0);
    printf(" answer_us_avg=%.1f answer_us_max=%.1f cache_decoded=%" PRIu64 " cache_hits=%" PRIu64,
           x->answers ? (double)x->self_ns_sum / (double)x->answers / 1e3 : 0.0,
           (double)x->self_ns_max / 1e3, decoded, hits);
    for (int f = 1; f < XL_NFAULTS; f++)
        for (int c = 0; c < XL_NFC && x->o.faults[f]; c++)
            printf(" fault_%s_%s=%" PRIu64, xl_fault_name[f], xl_fc_name[c], x->fc[f][c]);
    printf(" cpu_user_s=%.3f cpu_sys_s=%.3f maxrss_kb=%ld\n",
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss);
    fflush(stdout);
}

static void close_if_open(uv_handle_t *h)
{
    if (h && !uv_is_closing(h))
        uv_close(h, NULL);
}

/* Reports what is pending and closes every handle; the loop then ends. */
static void finish(xl_run_t *x)
{
    if (x->finishing)
        return;
    x->finishing = true;
    mark_finish(x);
    if (!x->all_full && x->rounds > 0)
        round_print(x, round_now(x), false);
    for (unsigned i = 0; i < x->nslow; i++) /* first: closing counts what waits unread */
        if (x->slow[i])
            xl_slow_close(x->slow[i]);
    print_summary(x);
    for (unsigned i = 0; i < x->n; i++)
        if (x->sc[i])
            xl_sidecar_close(x->sc[i]);
    close_if_open((uv_handle_t *)&x->settle);
    close_if_open((uv_handle_t *)&x->mark_timeout);
    close_if_open((uv_handle_t *)&x->duration);
    close_if_open((uv_handle_t *)&x->sigint);
    close_if_open((uv_handle_t *)&x->sigterm);
    close_if_open((uv_handle_t *)x->in);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    finish(h->data);
}

static void on_duration(uv_timer_t *t)
{
    finish(t->data);
}

/* --- setup ------------------------------------------------------------------------------- */

static const char usage[] =
    "usage: xds_load [options]\n"
    "  --addr ADDR:PORT        the control plane, on loopback (127.0.0.1:15010)\n"
    "  --sidecars N            simulated sidecars (1000; with --nodes: the file's lines)\n"
    "  --delta                 DeltaAggregatedResources (default: StreamAggregatedResources)\n"
    "  --nodes FILE            node ids, one <pod>.<namespace> a line\n"
    "  --node-pattern PAT      node ids without --nodes, {i} the index (load-{i}.default)\n"
    "  --node-cluster NAME     Node.cluster (load)\n"
    "  --meta KEY=VALUE        a Node.metadata string ({pod}, {namespace} replaced); repeatable\n"
    "  --converge              exit once every sidecar holds a full config\n"
    "  --stdin                 read commands on stdin: 'mark LABEL [EXPECT]', 'quit'\n"
    "  --duration S            exit after S seconds\n"
    "  --settle-ms MS          a mark ends MS after its last EDS ACK (500)\n"
    "  --mark-timeout-ms MS    a mark ends MS after it began at the latest (10000)\n"
    "  --connect-timeout-ms MS TCP connect and the server's SETTINGS (10000)\n"
    "  --never-ack N           the last sidecars: N never answer a response,\n"
    "  --garbage N             N send garbage as their first message, again and again,\n"
    "  --reconnect-loop N      N end their stream at its first response, reconnect 10 ms later,\n"
    "  --slow-reader N         N never read their socket (after asking CDS, LDS and --slow-eds)\n"
    "  --slow-eds NAME         an EDS name the slow readers ask for; repeatable\n"
    "Output: key=value records on stdout (converge, mark, summary); see bench/README.md.\n";

/* "127.0.0.1:15010" or "[::1]:15010" into x->addr; loopback only. */
static int parse_addr(xl_run_t *x, const char *s)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -EINVAL;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || port == 0 || port > 65535)
        return -EINVAL;
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = '\0';
        if (strcmp(host, "::1") != 0)
            return -EINVAL;
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&x->addr);
    }
    if (strncmp(host, "127.", 4) != 0)
        return -EINVAL;
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&x->addr);
}

/* --meta KEY=VALUE (arg borrowed, split in place). */
static int add_meta(xl_opts_t *o, char *arg)
{
    char *eq = strchr(arg, '=');
    xl_meta_t *m = realloc(o->meta, (o->nmeta + 1) * sizeof(*m));
    if (eq == NULL || m == NULL) {
        fprintf(stderr, "xds_load: --meta wants KEY=VALUE, got '%s'\n", arg);
        free(m ? m : o->meta);
        o->meta = NULL;
        return -EINVAL;
    }
    *eq = '\0';
    o->meta = m;
    o->meta[o->nmeta++] = (xl_meta_t){arg, eq + 1};
    return 0;
}

/* --slow-eds NAME (borrowed). */
static int add_slow_eds(xl_opts_t *o, const char *name)
{
    const char **v = realloc(o->slow_eds, (o->nslow_eds + 1) * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    o->slow_eds = v;
    o->slow_eds[o->nslow_eds++] = name;
    return 0;
}

/* The command line: the options and their ids. */
enum {
    O_ADDR = 256,
    O_NODES,
    O_PATTERN,
    O_CLUSTER,
    O_META,
    O_DURATION,
    O_SETTLE,
    O_TIMEOUT,
    O_CONNECT,
    O_NEVER_ACK,
    O_GARBAGE,
    O_RECONNECT,
    O_SLOW,
    O_SLOW_EDS
};
static const struct option longs[] = {
    {"addr", required_argument, NULL, O_ADDR},
    {"sidecars", required_argument, NULL, 'n'},
    {"delta", no_argument, NULL, 'd'},
    {"nodes", required_argument, NULL, O_NODES},
    {"node-pattern", required_argument, NULL, O_PATTERN},
    {"node-cluster", required_argument, NULL, O_CLUSTER},
    {"meta", required_argument, NULL, O_META},
    {"converge", no_argument, NULL, 'c'},
    {"stdin", no_argument, NULL, 's'},
    {"duration", required_argument, NULL, O_DURATION},
    {"settle-ms", required_argument, NULL, O_SETTLE},
    {"mark-timeout-ms", required_argument, NULL, O_TIMEOUT},
    {"connect-timeout-ms", required_argument, NULL, O_CONNECT},
    {"never-ack", required_argument, NULL, O_NEVER_ACK},
    {"garbage", required_argument, NULL, O_GARBAGE},
    {"reconnect-loop", required_argument, NULL, O_RECONNECT},
    {"slow-reader", required_argument, NULL, O_SLOW},
    {"slow-eds", required_argument, NULL, O_SLOW_EDS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_opts(xl_run_t *x, int argc, char **argv)
{
    xl_opts_t *o = &x->o;
    const char *addr = "127.0.0.1:15010";
    int c;
    while ((c = getopt_long(argc, argv, "n:dcsh", longs, NULL)) != -1) {
        switch (c) {
        case O_ADDR:
            addr = optarg;
            break;
        case 'n':
            o->sidecars = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            o->delta = true;
            break;
        case O_NODES:
            o->nodes_file = optarg;
            break;
        case O_PATTERN:
            o->node_pattern = optarg;
            break;
        case O_CLUSTER:
            o->node_cluster = optarg;
            break;
        case O_META:
            if (add_meta(o, optarg) < 0)
                return -EINVAL;
            break;
        case 'c':
            o->converge = true;
            break;
        case 's':
            o->read_stdin = true;
            break;
        case O_DURATION:
            o->duration_s = strtod(optarg, NULL);
            break;
        case O_SETTLE:
            o->settle_ms = strtoull(optarg, NULL, 10);
            break;
        case O_TIMEOUT:
            o->mark_timeout_ms = strtoull(optarg, NULL, 10);
            break;
        case O_CONNECT:
            o->connect_timeout_ms = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case O_NEVER_ACK:
        case O_GARBAGE:
        case O_RECONNECT:
        case O_SLOW:
            o->faults[XL_FAULT_NEVER_ACK + (c - O_NEVER_ACK)] = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case O_SLOW_EDS:
            if (add_slow_eds(o, optarg) < 0)
                return -ENOMEM;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            fputs(usage, stderr);
            return -EINVAL;
        }
    }
    if (optind < argc || parse_addr(x, addr) < 0) {
        fprintf(stderr, "xds_load: %s\n",
                optind < argc ? "unexpected arguments" : "--addr wants a loopback ADDR:PORT");
        return -EINVAL;
    }
    return 0;
}

/* The node ids: the file's lines, or the pattern for 0..sidecars-1. *ids is new. */
static int node_ids(xl_run_t *x, char ***ids)
{
    xl_opts_t *o = &x->o;
    char **v = NULL;
    size_t n = 0;
    if (o->nodes_file) {
        FILE *f = fopen(o->nodes_file, "r");
        if (f == NULL) {
            fprintf(stderr, "xds_load: %s: %s\n", o->nodes_file, strerror(errno));
            return -errno;
        }
        char line[512];
        while (fgets(line, sizeof(line), f) && (o->sidecars == 0 || n < o->sidecars)) {
            line[strcspn(line, " \t\r\n")] = '\0';
            if (line[0] == '\0' || line[0] == '#')
                continue;
            char **nv = realloc(v, (n + 1) * sizeof(*v));
            if (nv == NULL || (nv[n] = strdup(line)) == NULL)
                break;
            v = nv, n++;
        }
        fclose(f);
        if (o->sidecars && n < o->sidecars)
            fprintf(stderr, "xds_load: %s has %zu node ids, fewer than --sidecars %u\n",
                    o->nodes_file, n, o->sidecars);
        o->sidecars = (unsigned)n;
    } else {
        if ((v = calloc(o->sidecars ? o->sidecars : 1, sizeof(*v))) == NULL)
            return -ENOMEM;
        for (; n < o->sidecars; n++) {
            char i[16];
            snprintf(i, sizeof(i), "%zu", n);
            const char *keys[] = {"{i}"}, *vals[] = {i};
            if ((v[n] = xl_subst(o->node_pattern, keys, vals, 1)) == NULL)
                break;
        }
        o->sidecars = (unsigned)n;
    }
    *ids = v;
    return n ? 0 : -EINVAL;
}

/* One descriptor per connection, plus some: raised as far as allowed, or a message. */
static int raise_nofile(unsigned conns)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)conns + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
        return 0;
    struct rlimit want = {need, rl.rlim_max >= need ? rl.rlim_max : need};
    if (setrlimit(RLIMIT_NOFILE, &want) == 0)
        return 0;
    fprintf(stderr,
            "xds_load: %u connections need %lu file descriptors; the hard limit is %lu and cannot "
            "be raised (raise it: ulimit -Hn, or run as root)\n",
            conns, (unsigned long)need, (unsigned long)rl.rlim_max);
    return -EMFILE;
}

static int run_start(xl_run_t *x, char **ids)
{
    uv_timer_init(x->loop, &x->settle);
    uv_timer_init(x->loop, &x->mark_timeout);
    uv_timer_init(x->loop, &x->duration);
    x->settle.data = x->mark_timeout.data = x->duration.data = x;
    uv_signal_init(x->loop, &x->sigint);
    uv_signal_init(x->loop, &x->sigterm);
    x->sigint.data = x->sigterm.data = x;
    uv_signal_start(&x->sigint, on_signal, SIGINT);
    uv_signal_start(&x->sigterm, on_signal, SIGTERM);
    if (x->o.duration_s > 0)
        uv_timer_start(&x->duration, on_duration, (uint64_t)(x->o.duration_s * 1e3), 0);
    if (x->o.read_stdin && input_open(x) < 0)
        return -EINVAL;
    unsigned bad = 0;
    for (int f = 1; f < XL_NFAULTS; f++)
        bad += x->o.faults[f];
    if (bad >= x->n) {
        fprintf(stderr, "xds_load: %u misbehaving sidecars leave none of %u well-behaved\n", bad,
                x->n);
        return -EINVAL;
    }
    x->ngood = x->n - bad;
    x->nslow = x->o.faults[XL_FAULT_SLOW];
    x->slow = calloc(x->nslow ? x->nslow : 1, sizeof(*x->slow));
    x->sc = calloc(x->n, sizeof(*x->sc));
    x->mark_got = calloc(x->n, sizeof(*x->mark_got));
    x->mark_acked = calloc(x->n, sizeof(*x->mark_acked));
    if (!x->sc || !x->slow || !x->mark_got || !x->mark_acked)
        return -ENOMEM;
    x->start_ns = xl_now_ns();
    round_begin(x, &x->first, x->start_ns);
    if (x->first.ms == NULL)
        return -ENOMEM;
    unsigned i = 0, k = 0;
    for (; i < x->ngood; i++) {
        if ((x->sc[i] = xl_sidecar_new(x, i, ids[i], XL_FAULT_NONE)) == NULL)
            return -ENOMEM;
        xl_sidecar_start(x->sc[i], 0); /* all at once */
    }
    for (int f = 1; f < XL_NFAULTS; f++)
        for (unsigned j = 0; j < x->o.faults[f]; j++, i++) {
            if (f == XL_FAULT_SLOW) {
                if ((x->slow[k++] = xl_slow_new(x, ids[i])) == NULL)
                    return -ENOMEM;
                continue;
            }
            if ((x->sc[i] = xl_sidecar_new(x, i, ids[i], (xl_fault_t)f)) == NULL)
                return -ENOMEM;
            xl_sidecar_start(x->sc[i], 0);
        }
    fprintf(stderr, "xds_load: %u sidecars (%s) to %s, %u of them misbehaving\n", x->n,
            x->o.delta ? "delta" : "sotw", "the control plane", bad);
    return 0;
}

int main(int argc, char **argv)
{
    static xl_run_t run;
    xl_run_t *x = &run;
    x->o = (xl_opts_t){.sidecars = 0,
                       .node_pattern = "load-{i}.default",
                       .node_cluster = "load",
                       .settle_ms = 500,
                       .mark_timeout_ms = 10000};
    char **ids = NULL;
    int rc = parse_opts(x, argc, argv);
    if (rc == 0 && x->o.sidecars == 0 && x->o.nodes_file == NULL)
        x->o.sidecars = 1000;
    if (rc == 0 && (rc = node_ids(x, &ids)) < 0)
        fprintf(stderr, "xds_load: no sidecars to run\n");
    x->n = x->o.sidecars;
    if (rc == 0)
        rc = raise_nofile(x->n);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)getpid() ^ (unsigned)xl_now_ns());
    x->loop = uv_default_loop();
    bool started = rc == 0;
    if (started && (rc = run_start(x, ids)) < 0)
        fprintf(stderr, "xds_load: cannot start: %s\n", strerror(-rc));
    if (started) {
        if (rc < 0)
            finish(x);
        uv_run(x->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(x->loop);
    for (unsigned i = 0; ids && i < x->n; i++)
        free(ids[i]);
    free(ids);
    free(x->sc), free(x->slow), free((void *)x->o.slow_eds), free(x->mark_got), free(x->mark_acked),
        free(x->mark_ms), free(x->o.meta);
    free(x->first.ms), free(x->last.ms);
    xl_cache_free();
    xl_stream_scratch_free();
    return rc < 0 ? 1 : 0;
}
