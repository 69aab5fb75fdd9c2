/* Resolution of DNS clusters' host names on the main loop. Each (cluster, name) is one target
 * with its own refresh timer and at most one lookup in flight; what a snapshot build reads is
 * the target's addresses from its last good answer. A STRICT_DNS target keeps its answer as a
 * sorted set, so an answer in another order is no change; a LOGICAL_DNS target keeps the one
 * address it connects to for as long as the answers still hold it, so a name whose answers
 * rotate does not rebuild the config at every refresh. */
#include "proxy/server/dns.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/core/log.h"

typedef struct dns_target {
    dns_t *dns;
    char *cluster; /* the cluster's name */
    char *host;
    bool logical;
    snap_dns_family_t family;
    uint64_t refresh_ms, jitter_ms, failure_base_ms, failure_max_ms;
    stat_id_t attempt, success, failure;
    uv_timer_t timer; /* the next lookup */
    uv_getaddrinfo_t req;
    bool in_flight;                 /* req is with libuv */
    bool answered;                  /* its first lookup has ended */
    bool known;                     /* addrs holds a good answer (possibly empty for STRICT_DNS) */
    bool failing;                   /* the last lookup failed (logged once per run of failures) */
    struct sockaddr_storage *addrs; /* ports 0; sorted for STRICT_DNS, one for LOGICAL_DNS */
    size_t n;
    uint64_t backoff_ms; /* failure backoff ceiling for the next failure; 0: the base */
} dns_target_t;

struct dns {
    const host_t *host; /* borrowed */
    dns_target_t *targets;
    size_t n_targets;
    size_t unanswered; /* targets whose first lookup has not ended */
    void (*on_ready)(void *arg);
    void *on_ready_arg;
    snap_resolver_t resolver;
    uv_timer_t rebuild; /* coalesces the changes of one loop turn into one rebuild */
    bool dirty;         /* the addresses differ from those of the installed snapshot */
    bool stopping;
    int handles; /* initialised handles not yet closed */
    int lookups; /* lookups whose callback has not run */
    uint64_t rng;
};

bool dns_status_is_empty_answer(int status)
{
    return status == UV_EAI_NONAME || status == UV_EAI_NODATA || status == UV_EAI_ADDRFAMILY;
}

static uint64_t next_random(dns_t *d)
{
    d->rng ^= d->rng >> 12; /* xorshift64*: for jitter only */
    d->rng ^= d->rng << 25;
    d->rng ^= d->rng >> 27;
    return d->rng * 2685821657736338717ull;
}

/* ---- addresses ------------------------------------------------------------------------------ */

static int addr_cmp(const void *pa, const void *pb)
{
    const struct sockaddr_storage *a = pa, *b = pb;
    if (a->ss_family != b->ss_family)
        return a->ss_family < b->ss_family ? -1 : 1;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
    return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                  &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr));
}

/* The IPv4 and IPv6 addresses of res (borrowed), ports 0, that the family setting takes, in
 * the resolver's order, into a new array *out (owned by the caller). Returns how many, or
 * -ENOMEM. */
static int collect(const struct addrinfo *res, snap_dns_family_t family,
                   struct sockaddr_storage **out)
{
    size_t n = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        n++;
    struct sockaddr_storage *v = calloc(n ? n : 1, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    size_t k = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&v[k++];
            s4->sin_family = AF_INET;
            s4->sin_addr = ((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
        } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&v[k++];
            const struct sockaddr_in6 *src = (const struct sockaddr_in6 *)ai->ai_addr;
            s6->sin6_family = AF_INET6;
            s6->sin6_addr = src->sin6_addr;
            s6->sin6_scope_id = src->sin6_scope_id;
        }
    }
    *out = v;
    return (int)snapshot_dns_select(family, v, k);
}

static size_t sort_unique(struct sockaddr_storage *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), addr_cmp);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (addr_cmp(&v[i], &v[k - 1]) != 0)
            v[k++] = v[i];
    return k;
}

static bool holds(const struct sockaddr_storage *v, size_t n, const struct sockaddr_storage *a)
{
    for (size_t i = 0; i < n; i++)
        if (addr_cmp(&v[i], a) == 0)
            return true;
    return false;
}

/* Takes a good answer v[0..n) (owned from here) as t's addresses. Returns whether they differ
 * from what t held. */
static bool take_answer(dns_target_t *t, struct sockaddr_storage *v, size_t n)
{
    if (t->logical) {
        /* The address in use stays while the answer holds it; else the answer's first. */
        if (t->known && t->n == 1 && holds(v, n, &t->addrs[0])) {
            free(v);
            return false;
        }
        n = 1; /* LOGICAL_DNS takes no empty answer: v[0] is there */
    } else {
        n = sort_unique(v, n);
    }
    bool changed = n != t->n; /* nothing known yet is no address */
    for (size_t i = 0; !changed && i < n; i++)
        changed = addr_cmp(&v[i], &t->addrs[i]) != 0;
    free(t->addrs);
    t->addrs = v;
    t->n = n;
    t->known = true;
    return changed;
}

static void describe(const dns_target_t *t, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < t->n && used < len; i++) {
        char ip[80];
        snapshot_format_addr((const struct sockaddr *)&t->addrs[i], ip, sizeof(ip));
        char *colon = strrchr(ip, ':'); /* the port is 0 here: leave it out */
        if (colon)
            *colon = '\0';
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", ip);
    }
    if (t->n == 0)
        snprintf(buf, len, "no address");
}

/* ---- the resolver snapshots read ------------------------------------------------------------ */

static int lookup(void *ctx, const char *cluster, const char *host,
                  const struct sockaddr_storage **addrs, size_t *n)
{
    const dns_t *d = ctx;
    for (size_t i = 0; i < d->n_targets; i++) {
        const dns_target_t *t = &d->targets[i];
        if (t->known && strcmp(t->cluster, cluster) == 0 && strcmp(t->host, host) == 0) {
            *addrs = t->addrs;
            *n = t->n;
            return 0;
        }
    }
    return -ENOENT;
}

const snap_resolver_t *dns_resolver(const dns_t *d)
{
    return d ? &d->resolver : NULL;
}

/* ---- rebuild -------------------------------------------------------------------------------- */

/* Builds the next snapshot with the addresses held now and installs it. On failure the
 * snapshot in use stays and d->dirty stays set: the next answer tries again. */
static void rebuild(dns_t *d)
{
    const host_t *h = d->host;
    snapshot_t *next = NULL;
    char err[1024];
    if (snapshot_rebuild(host_snapshot(h), &d->resolver, h->stats, &next, err, sizeof(err)) < 0) {
        log_error("DNS: the config could not be rebuilt with the new addresses; the addresses in "
                  "use stay: %s",
                  err);
        return;
    }
    d->dirty = false;
    host_install_snapshot(h, next);
    log_info("DNS: new connections use config version %" PRIu64, host_snapshot(h)->version);
}

static void on_rebuild(uv_timer_t *timer)
{
    rebuild(timer->data);
}

/* ---- lookups -------------------------------------------------------------------------------- */

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res);

static void start_lookup(dns_target_t *t)
{
    dns_t *d = t->dns;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    if (t->family == SNAP_DNS_V4_ONLY)
        hints.ai_family = AF_INET;
    else if (t->family == SNAP_DNS_V6_ONLY)
        hints.ai_family = AF_INET6;
    stats_inc(d->host->slots, t->attempt);
    d->lookups++;
    t->in_flight = true;
    int rc = uv_getaddrinfo(d->host->loop, &t->req, on_resolved, t->host, NULL, &hints);
    if (rc < 0)
        on_resolved(&t->req, rc, NULL); /* ends like a lookup that failed */
}

static void on_timer(uv_timer_t *timer)
{
    start_lookup(timer->data);
}

/* How long after a failure the name is looked up again: dns_refresh_rate, or with
 * dns_failure_refresh_rate Envoy's jittered exponential backoff (a random time below a ceiling
 * that starts at base_interval and doubles up to max_interval). */
static uint64_t failure_delay(dns_target_t *t)
{
    if (t->failure_base_ms == 0)
        return t->refresh_ms;
    uint64_t ceiling = t->backoff_ms ? t->backoff_ms : t->failure_base_ms;
    t->backoff_ms = ceiling < t->failure_max_ms / 2 ? ceiling * 2 : t->failure_max_ms;
    return next_random(t->dns) % ceiling;
}

static void maybe_free(dns_t *d);

/* Records the end of a lookup: v[0..n) (owned) when rc is 0 or an empty answer, else the
 * libuv error; then arms the next lookup. */
static void lookup_done(dns_target_t *t, int rc, struct sockaddr_storage *v, size_t n)
{
    dns_t *d = t->dns;
    stats_slots_t *slots = d->host->slots;
    bool good = rc == 0 || dns_status_is_empty_answer(rc);
    if (rc != 0)
        n = 0;
    if (t->logical && n == 0)
        good = false; /* Envoy's LOGICAL_DNS takes no empty answer */
    uint64_t delay;
    if (good) {
        stats_inc(slots, t->success);
        if (t->failing && t->known)
            log_info("DNS: cluster '%s': '%s' resolves again", t->cluster, t->host);
        t->failing = false;
        t->backoff_ms = 0;
        if (v == NULL)
            v = calloc(1, sizeof(*v));
        if (v && take_answer(t, v, n)) {
            char list[512];
            describe(t, list, sizeof(list));
            log_info("DNS: cluster '%s': '%s' resolves to %s", t->cluster, t->host, list);
            d->dirty = true;
        }
        delay = t->refresh_ms + (t->jitter_ms ? next_random(d) % t->jitter_ms : 0);
    } else {
        free(v);
        stats_inc(slots, t->failure);
        if (!t->failing)
            log_warn("DNS: cluster '%s': cannot resolve '%s' (%s); %s", t->cluster, t->host,
                     rc ? uv_strerror(rc) : "no address",
                     t->known ? "its last addresses stay" : "it has no endpoints yet");
        t->failing = true;
        delay = failure_delay(t);
    }
    uv_timer_start(&t->timer, on_timer, delay, 0);
    if (!t->answered) {
        t->answered = true;
        if (--d->unanswered == 0) {
            /* The first round is complete: the server starts with what it found. */
            if (d->dirty)
                rebuild(d);
            d->on_ready(d->on_ready_arg);
        }
    } else if (d->unanswered == 0 && d->dirty && !uv_is_active((uv_handle_t *)&d->rebuild)) {
        uv_timer_start(&d->rebuild, on_rebuild, 0, 0);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    dns_target_t *t = req->data;
    dns_t *d = t->dns;
    d->lookups--;
    t->in_flight = false;
    struct sockaddr_storage *v = NULL;
    int n = 0;
    if (status == 0 && !d->stopping) {
        /* An answer with none of the families taken is an empty one (n == 0). */
        n = collect(res, t->family, &v);
        status = n < 0 ? UV_ENOMEM : 0;
    }
    uv_freeaddrinfo(res);
    if (d->stopping) {
        maybe_free(d);
        return;
    }
    lookup_done(t, status, v, n > 0 ? (size_t)n : 0);
}

/* ---- start and stop ------------------------------------------------------------------------- */

static void dns_free(dns_t *d)
{
    for (size_t i = 0; i < d->n_targets; i++) {
        free(d->targets[i].cluster);
        free(d->targets[i].host);
        free(d->targets[i].addrs);
    }
    free(d->targets);
    free(d);
}

static void maybe_free(dns_t *d)
{
    if (d->stopping && d->handles == 0 && d->lookups == 0)
        dns_free(d);
}

static void on_target_closed(uv_handle_t *h)
{
    dns_t *d = ((dns_target_t *)h->data)->dns;
    d->handles--;
    maybe_free(d);
}

static void on_rebuild_closed(uv_handle_t *h)
{
    dns_t *d = h->data;
    d->handles--;
    maybe_free(d);
}

static bool has_target(const dns_t *d, const char *cluster, const char *host)
{
    for (size_t i = 0; i < d->n_targets; i++)
        if (strcmp(d->targets[i].cluster, cluster) == 0 && strcmp(d->targets[i].host, host) == 0)
            return true;
    return false;
}

static int add_target(dns_t *d, const snap_cluster_t *c, const char *host)
{
    const snap_dns_t *cd = c->dns;
    dns_target_t *t = &d->targets[d->n_targets];
    *t = (dns_target_t){
        .dns = d,
        .cluster = strdup(c->name),
        .host = strdup(host),
        .logical = c->kind == CLUSTER_LOGICAL_DNS,
        .family = cd->family,
        .refresh_ms = cd->refresh_ms,
        .jitter_ms = cd->jitter_ms,
        .failure_base_ms = cd->failure_base_ms,
        .failure_max_ms = cd->failure_max_ms,
        .attempt = c->st.update_attempt,
        .success = c->st.update_success,
        .failure = c->st.update_failure,
    };
    d->n_targets++;
    if (t->cluster == NULL || t->host == NULL)
        return -ENOMEM;
    t->req.data = t;
    uv_timer_init(d->host->loop, &t->timer);
    t->timer.data = t;
    d->handles++;
    return 0;
}

int dns_start(const host_t *host, void (*on_ready)(void *arg), void *arg, dns_t **out)
{
    *out = NULL;
    const snapshot_t *snap = host_snapshot(host);
    size_t names = 0;
    for (size_t i = 0; i < snap->n_clusters; i++) {
        const snap_dns_t *cd = snap->clusters[i].dns;
        for (size_t j = 0; cd && j < cd->n_targets; j++)
            names += !cd->targets[j].literal;
    }
    if (names == 0)
        return 0;
    dns_t *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->targets = calloc(names, sizeof(*d->targets))) == NULL) {
        free(d);
        return -ENOMEM;
    }
    d->host = host;
    d->on_ready = on_ready;
    d->on_ready_arg = arg;
    d->resolver = (snap_resolver_t){.lookup = lookup, .ctx = d};
    d->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)d;
    uv_timer_init(host->loop, &d->rebuild);
    d->rebuild.data = d;
    d->handles = 1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < snap->n_clusters; i++) {
        const snap_cluster_t *c = &snap->clusters[i];
        for (size_t j = 0; rc == 0 && c->dns && j < c->dns->n_targets; j++) {
            const snap_dns_target_t *st = &c->dns->targets[j];
            if (!st->literal && !has_target(d, c->name, st->host))
                rc = add_target(d, c, st->host);
        }
        if (c->dns && c->dns->respect_ttl)
            log_info("cluster '%s': respect_dns_ttl has no effect: the system resolver gives no "
                     "TTLs, so names are looked up every %" PRIu64 " ms",
                     c->name, c->dns->refresh_ms);
    }
    if (rc < 0) {
        dns_stop(d);
        return rc;
    }
    d->unanswered = d->n_targets;
    for (size_t i = 0; i < d->n_targets; i++)
        uv_timer_start(&d->targets[i].timer, on_timer, 0, 0);
    log_info("DNS: resolving %zu host name(s) before the listeners start", d->n_targets);
    *out = d;
    return 0;
}

void dns_stop(dns_t *d)
{
    if (d == NULL)
        return;
    d->stopping = true;
    for (size_t i = 0; i < d->n_targets; i++) {
        dns_target_t *t = &d->targets[i];
        if (t->in_flight)
            uv_cancel((uv_req_t *)&t->req); /* fails harmlessly unless still queued */
        if (t->timer.data)
            uv_close((uv_handle_t *)&t->timer, on_target_closed);
    }
    uv_close((uv_handle_t *)&d->rebuild, on_rebuild_closed);
}
