/* Internal to xds/snapshot*.c: the state of one snapshot build (the resource set, the TLS engine
 * cache, indexes of the set's route configurations, load assignments and secrets by name) and
 * how the builder resolves what listeners and clusters name in it: EDS (snapshot_eds.c), RDS
 * (snapshot_rds.c), SDS (snapshot_sds.c), the references kept (snapshot_refs.c). */
#ifndef REMORA_SNAPSHOT_BUILD_H
#define REMORA_SNAPSHOT_BUILD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xds/snapshot/resources.h"
#include "xds/snapshot/snapshot_tls.h"

struct Envoy__Config__Core__V3__ConfigSource;
struct Envoy__Config__Cluster__V3__Cluster;
struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment;
struct Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig;
struct Envoy__Extensions__TransportSockets__Tls__V3__Secret;
struct json_t;

/* The resources of one list by name, sorted, for lookups during the build. */
typedef struct snap_index_entry {
    const char *name;           /* borrowed from the resource's message */
    const config_resource_t *r; /* borrowed from the set */
} snap_index_entry_t;

typedef struct snap_index {
    snap_index_entry_t *v; /* owned */
    size_t n;
} snap_index_t;

/* One build: lives for the call of snapshot_build_resources, on whatever thread runs it. */
typedef struct snap_build {
    const config_resources_t *res; /* borrowed */
    snapshot_t *snap;              /* the snapshot being built (borrowed) */
    /* The snapshot this one follows (borrowed; NULL: none), whose clusters built from
     * unchanged inputs are shared, not built again (snapshot_share.c). */
    const snapshot_t *prev;
    /* The cluster being built (borrowed; NULL between clusters): EDS and SDS record in it what
     * it takes from the set (snap_share_dep). */
    struct snap_cluster_share *share;
    bool trial; /* a check only (snapshot_build_from): no cluster stats defined */
    snapshot_tls_cache_t tls_cache;
    snap_index_t route_configs; /* by RouteConfiguration.name */
    snap_index_t endpoints;     /* by ClusterLoadAssignment.cluster_name */
    size_t endpoints_next;      /* where the next cluster's assignment likely is in endpoints */
    snap_index_t secrets;       /* by Secret.name */
} snap_build_t;

/* Indexes b->res's route configurations, load assignments and secrets by name. A name given
 * twice in a list, or an empty one, is an error naming the resources by origin ("secret 'x':
 * given twice, ads.secrets[0] and ads.secrets[3]"). Returns 0, -EINVAL or -ENOMEM. */
int snap_build_index(snap_build_t *b, char *err, size_t errlen);

/* The resource of that name (borrowed from the set), or NULL. idx and name borrowed. */
const config_resource_t *snap_index_find(const snap_index_t *idx, const char *name);
/* The same, trying the place *next first and leaving *next after the name's place: clusters
 * come sorted, and mostly take the assignment of their own name, so the assignments they look
 * up come in idx's order and each is found by one comparison. */
const config_resource_t *snap_index_find_next(const snap_index_t *idx, const char *name,
                                              size_t *next);

/* Frees the indexes and the TLS cache of b (borrowed). */
void snap_build_free(snap_build_t *b);

/* Records that the snapshot's resources name `name` (copied) in list (borrowed), missing from
 * the set or not. Repeats are merged by snap_refs_finish. Returns 0 or -ENOMEM. */
int snap_refs_add(snap_ref_list_t *list, const char *name, bool missing);

/* The same for a name (borrowed) that lives as long as the snapshot whose list it goes in: a
 * string of one of its clusters' shares (an EDS cluster's eds_service), not copied. Every
 * cluster of a build names its load assignment, so copying each name was a copy per cluster
 * per update. Returns 0 or -ENOMEM. */
int snap_refs_add_borrowed(snap_ref_list_t *list, const char *name, bool missing);

/* Sorts each list of refs (borrowed) by name and drops repeats: the end of a build. was
 * (borrowed; NULL: none) is the last snapshot's finished lists: neighbours that are its strings
 * at its places are known in order and distinct without reading them. */
void snap_refs_finish(snap_refs_t *refs, const snap_refs_t *was);

/* Checks that a ConfigSource (borrowed; NULL when absent, allowed only with absent_ok) says
 * ADS, the one way Remora takes resources named by others. field names it in err
 * ("rds.config_source"). Returns 0 or -EINVAL. */
int snap_check_ads(const struct Envoy__Config__Core__V3__ConfigSource *cs, bool absent_ok,
                   const char *field, char *err, size_t errlen);

/* EDS: for an EDS cluster m (borrowed; c borrowed, its kind set), checks eds_cluster_config,
 * sets c->eds_service, records the reference and finds the ClusterLoadAssignment: *la is the
 * set's (borrowed) or NULL when the set has none (c->awaiting_assignment: no endpoints yet);
 * where (the caller's, wlen bytes) names it for the endpoints' errors ("cluster 'x': load
 * assignment 'svc' (ads.endpoints[2])"). Returns 0, -EINVAL with err naming `what`, or -ENOMEM. */
int snapshot_eds_assignment(snap_build_t *b, const struct Envoy__Config__Cluster__V3__Cluster *m,
                            snap_cluster_t *c,
                            const struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment **la,
                            char *where, size_t wlen, const char *what, char *err, size_t errlen);

/* SDS: the Secret an SdsSecretConfig (borrowed) names, whose `type` must be want_case (a
 * Secret's type oneof case); the name is recorded as referenced. *out is the set's Secret
 * (borrowed) or NULL when the set lacks it (recorded as missing); origin (the caller's, olen
 * bytes) reads "secret 'x' (ads.secrets[2])" for errors about its fields. err is bare ("sds_config:
 * only ads is supported ..."), for the caller to prefix. Returns 0, -EINVAL or -ENOMEM. */
int snapshot_sds_secret(
    snap_build_t *b,
    const struct Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig *sds, int want_case,
    const struct Envoy__Extensions__TransportSockets__Tls__V3__Secret **out, char *origin,
    size_t olen, char *err, size_t errlen);

/* The validation context of a combined_validation_context: its default context (borrowed; NULL:
 * none) merged with the one from SDS (borrowed) the way protobuf's MergeFrom merges, as Envoy
 * merges them: the SDS one's set fields replace the default's, lists are joined. *out is a new
 * CertificateValidationContext owned by the caller (protobuf_c_message_free_unpacked). Returns
 * 0 or -ENOMEM. */
int snapshot_sds_merge_validation(const ProtobufCMessage *dflt, const ProtobufCMessage *sds,
                                  ProtobufCMessage **out);

/* A CidrRange (c borrowed) into *out (the caller's); err names `what` ("... prefix_ranges:
 * '1.2.3' is not an IP address"). Returns 0 or -EINVAL (snapshot_addr.c). */
struct Envoy__Config__Core__V3__CidrRange;
int snap_parse_cidr(const struct Envoy__Config__Core__V3__CidrRange *c, snap_cidr_t *out,
                    const char *what, char *err, size_t errlen);

/* FNV-1a of the string s (borrowed), for the tables by name. */
uint64_t snap_name_hash(const char *s);

/* Whether messages a and b (borrowed) hold the same config: the same type and every field,
 * unknown fields included, equal (snapshot_equal.c). A "no" may be wrong, a "yes" never. */
bool snap_message_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);

/* Starts the table of ix (owned by the snapshot, freed with free(ix->slot)) for n names.
 * Returns 0 or -ENOMEM. */
int snap_name_index_init(snap_name_index_t *ix, size_t n);
/* Adds entry i of the array at base (borrowed; entries `stride` bytes apart, each starting
 * with its `char *name`) to ix (borrowed) unless an entry of that name is in it already.
 * Returns the place of that entry, or -1 when i went in. */
long snap_name_index_add(snap_name_index_t *ix, const void *base, size_t stride, size_t i);
/* The place in base of the entry named `name` (borrowed), or -1. */
long snap_name_index_find(const snap_name_index_t *ix, const void *base, size_t stride,
                          const char *name);
/* The same two with the name's snap_name_hash given, for a caller that looks a name up more
 * than once. */
long snap_name_index_add_hashed(snap_name_index_t *ix, const void *base, size_t stride, size_t i,
                                uint64_t hash);
long snap_name_index_find_hashed(const snap_name_index_t *ix, const void *base, size_t stride,
                                 const char *name, uint64_t hash);

/* Cluster sharing (snapshot_share.c): every built cluster has a share, which owns what copies
 * of it in several snapshots point at (name, endpoints, TLS, DNS, runtime link) and what it was
 * built from (its Cluster's copy, the load assignment and secrets it took). */

/* Gives c (borrowed, zeroed) a new share recording src (a reference is taken; NULL: a static
 * cluster) and stats (borrowed). Returns 0 or -ENOMEM. */
int snap_share_new(snap_cluster_t *c, snap_kept_t *src, stats_store_t *stats);
/* Records that the cluster b is building (b->share; none: nothing recorded) takes the resource
 * of kind (SNAP_DYN_ENDPOINTS or SNAP_DYN_SECRETS) named `name` (copied), r the set's
 * (borrowed) or NULL when missing. Returns 0 or -ENOMEM. */
int snap_share_dep(snap_build_t *b, int kind, const char *name, const config_resource_t *r);
/* Records that c (borrowed) was linked to the runtime state of states (a reference is taken)
 * through runtime (static), for its share to unlink it last. */
void snap_share_linked(snap_cluster_t *c, const snap_cluster_runtime_t *runtime, void *states);
/* Whether the stat ids of was (borrowed, built) are those c (borrowed, its stat_name and tls
 * set) would define in st: the same store, stat name and TLS or not. */
bool snap_cluster_same_stats(const snap_cluster_t *was, const snap_cluster_t *c,
                             const stats_store_t *st);
/* prev's (borrowed) cluster named `name` (borrowed; h its snap_name_hash; src the holder of the
 * Cluster resource it comes from, or NULL), or NULL; tried at place i first. Borrowed from prev. */
const snap_cluster_t *snap_prev_cluster(const snapshot_t *prev, size_t i, const char *name,
                                        uint64_t h, const snap_kept_t *src);
/* Whether c (borrowed, built) was built from the Cluster resource whose holder is src (borrowed;
 * NULL: never): then it has that resource's name, found without reading a string. */
bool snap_cluster_built_from(const snap_cluster_t *c, const snap_kept_t *src);
/* Drops c's reference (c borrowed, a copy in a snapshot being freed); the last frees what the
 * copies point at. Any thread. Reads of c only its share and what the share owns (name,
 * stat_name, endpoints and n_endpoints, tls, dns, eds_service, lb and shared): a share block
 * keeps those alone (snap_share_block_end). */
void snap_cluster_release(snap_cluster_t *c);

/* A snapshot's clusters hold their shares through blocks of this many places. */
#define SNAP_SHARE_BLOCK 64
/* Ends the block of s's clusters from `from` (a multiple of SNAP_SHARE_BLOCK; s borrowed, being
 * built, total its clusters to come) to s->n_clusters. Bit i of counted marks cluster from + i
 * as holding a reference to its share (built, or shared by snap_cluster_reuse); the others are
 * copies of prev's (borrowed) at the same places, by snap_cluster_reuse_plain, holding none.
 * With none counted and prev's block there of the same size, s takes a reference to prev's
 * block; else a new block takes a reference for each cluster that holds none. Returns 0, or
 * -ENOMEM with the counted ones released and s->n_clusters back at from. */
int snap_share_block_end(snapshot_t *s, const snapshot_t *prev, size_t from, uint64_t counted,
                         size_t total);
/* Drops s's references to its blocks (s borrowed, being freed); the last reference to a block
 * releases its clusters' shares (snap_cluster_release). Any thread. */
void snap_share_blocks_free(snapshot_t *s);
/* Whether old (borrowed, a cluster of b->prev of the same name) stands for the cluster r
 * (borrowed, of b's set) would build: the same Cluster resource, the same load assignment and
 * secrets, the same DataSource file bytes, the same DNS answers (resolver borrowed), stats and
 * runtime state. If so, *c (zeroed) becomes a copy of old sharing its parts, its references
 * recorded in b's snapshot, and 1 is returned; else 0, or -ENOMEM. */
int snap_cluster_reuse(snap_build_t *b, const snap_cluster_t *old, const config_resource_t *r,
                       const snap_resolver_t *resolver, stats_store_t *stats, snap_cluster_t *c);

/* Records in c (borrowed, just built by b, its share's deps complete) what the next build
 * compares to share it cheaply (plain_src, plain_eds), when its inputs allow. */
void snap_cluster_mark_plain(snap_cluster_t *c);
/* The cheap form of snap_cluster_reuse for old (borrowed), the cluster at the same place in
 * b->prev, and r (borrowed), the set's Cluster there: when old is plain and r is the same held
 * Cluster, and old's load assignment is the same held one at the place b expects the next
 * assignment, and b->prev was built with b's stats and cluster runtime, *c (uninitialised)
 * becomes a copy of old sharing its parts, its assignment's name recorded in b's snapshot, and
 * 1 is returned; else 0 (nothing done: try snap_cluster_reuse), or -ENOMEM. c takes no
 * reference to the share: its block does (snap_share_block_end). Reads old and the set's
 * lists only, not old's share, name or deps: an update that changed a few clusters' inputs
 * costs little for the others. */
int snap_cluster_reuse_plain(snap_build_t *b, const snap_cluster_t *old, const config_resource_t *r,
                             const stats_store_t *stats, snap_cluster_t *c);

/* Defines the stats of cluster c (its stat_name and tls set; borrowed) into c->st in st
 * (borrowed), or takes the ids of was (borrowed; NULL: none), the last snapshot's cluster of
 * that name, when they name the same stats (snap_cluster_same_stats). Returns 0 or negative. */
int snapshot_define_cluster_stats(stats_store_t *st, snap_cluster_t *c, const snap_cluster_t *was);
/* Defines the stats of listener l (its chains built; borrowed) into l->st, in st (borrowed).
 * Returns 0 or negative. */
int snapshot_define_listener_stats(stats_store_t *st, snap_listener_t *l);

/* snapshot_build_resources, following prev (borrowed; NULL: none): prev's xDS resource copies
 * that came again unchanged are shared, not copied, and so are its clusters whose inputs did not
 * change. With prev, res's bootstrap may be prev's own (borrowed, bootstrap NULL: the snapshot
 * then keeps none, until its caller gives it a reference to prev's holder of it) or a copy of it
 * (bootstrap, taken); either way res->static_validated. A trial
 * (a snapshot dropped at once, to check resources) defines no cluster stats: the clusters of a
 * refused resource leave none behind. */
int snapshot_build_from(config_resources_t *res, void *bootstrap, const snap_build_opts_t *opts,
                        const snapshot_t *prev, bool trial, stats_store_t *stats, unsigned nworkers,
                        snapshot_t **out, char *err, size_t errlen);

/* The kinds of resources, in the order of the set's lists. */
enum {
    SNAP_DYN_LISTENERS,
    SNAP_DYN_CLUSTERS,
    SNAP_DYN_ROUTE_CONFIGS,
    SNAP_DYN_ENDPOINTS,
    SNAP_DYN_SECRETS,
    SNAP_DYN_KINDS
};

/* The copies of res's xDS resources (res borrowed) a snapshot keeps, into *out (new, owned by
 * the snapshot: snapshot_dynamic_free); *out NULL when res has none. A resource equal to the one
 * of its kind and name in prev (borrowed; NULL: none) shares prev's copy. Returns 0 or -ENOMEM. */
int snapshot_dynamic_keep(const config_resources_t *res, const struct snap_dynamic *prev,
                          struct snap_dynamic **out);

/* Marks every copy of d (borrowed) validated: its build validated them all. */
void snapshot_dynamic_validated(const struct snap_dynamic *d);

/* Takes d: frees the copies. NULL is a no-op. */
void snapshot_dynamic_free(struct snap_dynamic *d);

/* Points res's xDS resources (res borrowed; its lists in the order snapshot_dynamic_keep saw
 * them) at d's copies (borrowed, d must outlive res), so a build reads, and keeps pointers
 * into, what the snapshot owns. */
void snapshot_dynamic_use(const struct snap_dynamic *d, config_resources_t *res);

/* Whether entry j of kind in a and b (borrowed; NULL: none) is in one chunk the two share: what
 * a build shares with the last one, for tests. */
bool snapshot_dynamic_shared_at(const struct snap_dynamic *a, const struct snap_dynamic *b,
                                int kind, size_t j);

/* Adds d's resources (borrowed, d must outlive res) to res (borrowed) as xDS resources, in
 * their lists: how a rebuild builds from what the snapshot kept. Returns 0 or -ENOMEM. */
int snapshot_dynamic_add(const struct snap_dynamic *d, config_resources_t *res);

/* The kept resources of one kind (d borrowed; NULL: none) as the list of Envoy's admin config
 * dump for them (dynamic_listeners, dynamic_active_clusters, dynamic_route_configs,
 * dynamic_endpoint_configs, dynamic_active_secrets; secrets redacted): a new JSON array the
 * caller owns, or NULL when there are none. */
struct json_t *snapshot_dynamic_json(const struct snap_dynamic *d, int kind);

/* Reads the Cluster m's (borrowed) typed_extension_protocol_options into c->http2 (c
 * borrowed): HTTP/1.1, or HTTP/2 for the cluster the ADS stream goes to (ads_cluster), which is
 * all HTTP/2 serves yet. Returns 0, or -EINVAL with err naming `what` and the key. */
int snapshot_cluster_protocol(const void *cluster_msg, snap_cluster_t *c, bool ads_cluster,
                              const char *what, char *err, size_t errlen);

#endif
