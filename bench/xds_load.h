/* xds_load: many simulated sidecars on one libuv loop, each its own gRPC connection and ADS
 * stream, measuring a control plane (bench/README.md, "xds_load"). This header joins the tool's
 * three files: the shared resource cache and wire reader (xds_load_cache.c), one sidecar's
 * stream and protocol state (xds_load_stream.c), and the run with its measurements
 * (xds_load.c). One thread: everything runs on the loop's. */
#ifndef REMORA_BENCH_XDS_LOAD_H
#define REMORA_BENCH_XDS_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proxy/grpc/grpc_client.h"

/* The resource types, in the order Envoy subscribes them. */
enum { XL_CDS, XL_EDS, XL_LDS, XL_RDS, XL_SDS, XL_NTYPES };

extern const char *const xl_type_url[XL_NTYPES];
extern const char *const xl_type_name[XL_NTYPES]; /* "cds", ... */

/* The type index of type_url[0..len), or -1 for a type the tool does not speak. */
int xl_type_of(const uint8_t *type_url, size_t len);

/* --- interned strings (xds_load_cache.c) ------------------------------------------------- */

/* The one copy of s[0..len) (borrowed), NUL-terminated, owned by the table until
 * xl_cache_free: equal strings get the same pointer, so names compare and sort by pointer.
 * NULL when out of memory. */
const char *xl_intern(const char *s, size_t len);

/* The interned copy of s[0..len) (borrowed) if there is one, else NULL. */
const char *xl_intern_find(const char *s, size_t len);

/* --- the resource cache ------------------------------------------------------------------ */

/* What the tool needs of one resource, decoded once for every sidecar that receives the same
 * bytes. refs[XL_REF_DEP]: the names the resource makes a sidecar subscribe to (a cluster: its
 * EDS service name; a listener: the route configurations its HTTP connection managers take over
 * RDS); refs[XL_REF_SDS]: the secrets its transport sockets take over SDS. All interned. */
enum { XL_REF_DEP, XL_REF_SDS, XL_NREFS };

typedef struct xl_res {
    struct xl_res *next; /* hash chain */
    uint64_t hash;
    size_t len;
    uint8_t *bytes; /* the resource's bytes, compared on a hash match */
    int type;
    bool bad;         /* did not decode as its type */
    const char *name; /* interned; "" when it has none */
    const char **refs[XL_NREFS];
    size_t nrefs[XL_NREFS];
} xl_res_t;

/* The cache's entry for bytes p[0..n) (borrowed) of type (decoded on the first sight of those
 * bytes, looked up afterwards). Entries are owned by the cache and live until xl_cache_free.
 * NULL when out of memory. */
const xl_res_t *xl_res_get(int type, const uint8_t *p, size_t n);

/* Cache counters: entries decoded, and lookups that found an entry. */
void xl_cache_counts(uint64_t *decoded, uint64_t *hits);

/* Frees the cache and every interned string. */
void xl_cache_free(void);

/* --- reading a response without decoding its resources ----------------------------------- */

typedef struct xl_bytes {
    const uint8_t *p;
    size_t n;
} xl_bytes_t;

typedef struct xl_wire_res {
    xl_bytes_t name;     /* delta: Resource.name (or resource_name.name) */
    xl_bytes_t version;  /* delta: Resource.version */
    xl_bytes_t type_url; /* Any.type_url */
    xl_bytes_t value;    /* Any.value */
    bool has_any;        /* delta: the Resource carries a resource */
} xl_wire_res_t;

typedef struct xl_response {
    xl_bytes_t version; /* SotW version_info, delta system_version_info */
    xl_bytes_t type_url;
    xl_bytes_t nonce;
    xl_wire_res_t *res;
    size_t nres;
    xl_bytes_t *removed; /* delta: removed_resources and removed_resource_names */
    size_t nremoved;
} xl_response_t;

/* Reads a DiscoveryResponse (delta false) or DeltaDiscoveryResponse (true) from p[0..n)
 * (borrowed) into *out, whose pointers point into p or into scratch arrays the reader reuses:
 * valid until the next call. Returns 0, -EBADMSG (not a response) or -ENOMEM. */
int xl_response_read(bool delta, const uint8_t *p, size_t n, xl_response_t *out);

/* Frees the reader's scratch arrays. */
void xl_wire_free(void);

/* --- the run and its sidecars ------------------------------------------------------------ */

typedef struct xl_run xl_run_t;
typedef struct xl_sidecar xl_sidecar_t;

typedef struct xl_meta {
    const char *key, *value; /* value may hold {pod} and {namespace} */
} xl_meta_t;

/* How a sidecar misbehaves (issue 14, point 7). The misbehaving ones are the last of the run's
 * sidecars, in this order, and count in none of the convergence rounds and marks: those measure
 * the well-behaved ones, which the misbehaving ones must not slow down. */
typedef enum xl_fault {
    XL_FAULT_NONE,
    XL_FAULT_NEVER_ACK, /* takes every response and never answers one */
    XL_FAULT_GARBAGE,   /* sends bytes that are no request as its first message, again and again */
    XL_FAULT_RECONNECT, /* ends its connection at its first response and connects again at once */
    XL_FAULT_SLOW,      /* sends its requests and never reads its socket (xds_load_fault.c) */
    XL_NFAULTS
} xl_fault_t;

extern const char *const xl_fault_name[XL_NFAULTS]; /* "never_ack", ... */

typedef struct xl_opts {
    const char *addr; /* "127.0.0.1:15010" */
    bool delta;
    unsigned sidecars;
    const char *node_pattern; /* "{i}" replaced by the index */
    const char *nodes_file;   /* one <pod>.<namespace> per line, or NULL */
    const char *node_cluster;
    xl_meta_t *meta;
    size_t nmeta;
    bool converge;     /* exit once every sidecar holds a full config */
    bool read_stdin;   /* mark/quit commands on stdin */
    double duration_s; /* 0: until told to stop */
    uint64_t settle_ms;
    uint64_t mark_timeout_ms;
    uint32_t connect_timeout_ms;
    unsigned faults[XL_NFAULTS]; /* how many sidecars misbehave in each way ([0] unused) */
    const char **slow_eds;       /* the EDS names the slow readers ask for */
    size_t nslow_eds;
} xl_opts_t;

/* A new sidecar number idx of run x (borrowed; outlives it) with node id `id` (borrowed;
 * copied), misbehaving as fault says (not XL_FAULT_SLOW: xl_slow_new), not connected. NULL when
 * out of memory. */
xl_sidecar_t *xl_sidecar_new(xl_run_t *x, unsigned idx, const char *id, xl_fault_t fault);

/* s's (borrowed) way of misbehaving, XL_FAULT_NONE for a well-behaved one. */
xl_fault_t xl_sidecar_fault(const xl_sidecar_t *s);

/* Connects s (borrowed) now, or after delay_ms. */
void xl_sidecar_start(xl_sidecar_t *s, uint64_t delay_ms);

/* Closes s's connection and timer; s is freed once libuv has closed them (run the loop). Takes
 * s. */
void xl_sidecar_close(xl_sidecar_t *s);

/* s's (borrowed) index in the run. */
unsigned xl_sidecar_index(const xl_sidecar_t *s);

/* Per-sidecar per-type numbers for the summary (s borrowed). */
typedef struct xl_type_counts {
    uint64_t responses, acks, nacks, bytes;
    uint64_t rx_ns, ack_ns; /* last response's arrival, its answer's leaving (monotonic ns) */
} xl_type_counts_t;
void xl_sidecar_counts(const xl_sidecar_t *s, int type, xl_type_counts_t *out);

/* What the run (xds_load.c) learns from the sidecars. All borrow s. */
uv_loop_t *xl_run_loop(xl_run_t *x);
const xl_opts_t *xl_run_opts(const xl_run_t *x);
const struct sockaddr *xl_run_addr(const xl_run_t *x);
/* A stream of s became ready (connected, call started). */
void xl_run_on_ready(xl_run_t *x, xl_sidecar_t *s);
/* s lost its stream (its config is not full any more until it ACKs every type again); was_ready:
 * its connection had come up; why (static): a gRPC status or libuv error name. */
void xl_run_on_lost(xl_run_t *x, xl_sidecar_t *s, bool was_full, bool was_ready, const char *why);
/* s received a message of n bytes of type (-1: unknown) at now_ns. */
void xl_run_on_bytes(xl_run_t *x, int type, size_t n);
/* s answered a response of type that arrived at rx_ns, at ack_ns: ACK (ok) or NACK. */
void xl_run_on_answer(xl_run_t *x, xl_sidecar_t *s, int type, uint64_t rx_ns, uint64_t ack_ns,
                      bool ok);
/* s now holds a full config (every type it subscribes ACKed on this stream), at now_ns. */
void xl_run_on_full(xl_run_t *x, xl_sidecar_t *s, uint64_t now_ns);
/* A response did not decode: s ends its stream and reconnects. */
void xl_run_on_bad_response(xl_run_t *x, xl_sidecar_t *s);

/* What the misbehaving sidecars did, per kind, printed in the summary as fault_KIND_COUNTER. */
enum {
    XL_FC_STREAMS,   /* streams started (ADS calls; the slow reader's connection) */
    XL_FC_RESPONSES, /* responses received (never answered) */
    XL_FC_BYTES,     /* their bytes */
    XL_FC_GARBAGE,   /* garbage messages sent */
    XL_FC_WRITTEN,   /* bytes the slow reader wrote */
    XL_FC_LOST,      /* streams or connections the control plane ended */
    XL_NFC
};
extern const char *const xl_fc_name[XL_NFC];

/* A sidecar misbehaving as f added n to its kind's counter. */
void xl_run_on_fault(xl_run_t *x, xl_fault_t f, int counter, uint64_t n);

/* --- the slow reader (xds_load_fault.c) -------------------------------------------------- */

typedef struct xl_slow xl_slow_t;

/* A new slow reader of run x (borrowed; outlives it) with node id `id` (borrowed; copied): a
 * plain TCP connection with a small receive buffer, on which it writes the HTTP/2 preface, its
 * settings (the largest windows, so HTTP/2 flow control never holds the control plane back), one
 * ADS call and its first requests (CDS and LDS, and EDS for the options' slow_eds), and which it
 * then never reads, so the control plane's writes to it back up. Connects at once. NULL when out
 * of memory or when the socket cannot be made. */
xl_slow_t *xl_slow_new(xl_run_t *x, const char *id);

/* Closes s's connection; s is freed once libuv has closed it (run the loop). Takes s. */
void xl_slow_close(xl_slow_t *s);

/* Frees the request and response scratch buffers the sidecars share. */
void xl_stream_scratch_free(void);

/* A new string (free()) of pattern (borrowed) with each keys[i] replaced by vals[i] (n pairs,
 * borrowed), or NULL when out of memory. */
char *xl_subst(const char *pattern, const char *const *keys, const char *const *vals, size_t n);

/* Monotonic nanoseconds. */
uint64_t xl_now_ns(void);

#endif
