/* The set of named resources translation takes, whatever their source: the bootstrap file's
 * static_resources, and what ADS delivers. Lists of borrowed messages plus the bootstrap-level
 * settings, so the snapshot builder has one input and runs one validation over it (internal to
 * xds/). */
#ifndef REMORA_XDS_RESOURCES_H
#define REMORA_XDS_RESOURCES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "xds/snapshot/snapshot.h"

struct Envoy__Config__Core__V3__Node;
struct Envoy__Config__Bootstrap__V3__Admin;
struct Envoy__Config__Bootstrap__V3__LayeredRuntime;
struct Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources;

/* A resource that came over xDS, held once: made by the ADS state machine when the resource
 * arrived (or changed), or by a build for a resource given without one, and shared by reference
 * by the state machine, every snapshot that kept it since and the clusters built from it
 * (snapshot_dynamic.c). Nothing in it changes once a snapshot holding it is published;
 * `validated` is set by whoever checked it first (the ADS state machine, which runs
 * config_validate on every resource it takes, or the build that first took it), before that. */
typedef struct snap_kept {
    _Atomic int refs;
    bool validated;         /* it passed config_validate */
    ProtobufCMessage *msg;  /* owned: in arena, or freed on its own when arena is NULL */
    struct pb_arena *arena; /* owned: the memory of msg (the ADS state machine's decodes) */
    char *name;             /* the name its source gave it (owned), or NULL */
    uint64_t hash;          /* snap_name_hash of name (0 without one), for the tables by name */
    bool borrowed;          /* msg is its caller's, not freed here (snap_kept_borrow) */
} snap_kept_t;

/* A new snap_kept_t with one reference holding msg (taken: freed here on failure) and a copy
 * of name (borrowed; NULL: none), or NULL when out of memory. */
snap_kept_t *snap_kept_new(ProtobufCMessage *msg, const char *name);
/* snap_kept_new for a message that lives in arena (taken with msg: freed here on failure, and
 * with the last reference by pb_arena_free, which touches no shared state). */
snap_kept_t *snap_kept_new_arena(ProtobufCMessage *msg, struct pb_arena *arena, const char *name);
/* A holder of msg (borrowed: it must outlive every reference, and is not freed with the last),
 * marked validated when `validated` (msg passed config_validate), with no name: how a caller
 * hands a build a message it checks and drops at once (a trial), which the build then neither
 * copies nor validates again. NULL when out of memory. */
snap_kept_t *snap_kept_borrow(const ProtobufCMessage *msg, bool validated);
/* Adds a reference to k (NULL: none) and returns it. */
snap_kept_t *snap_kept_ref(snap_kept_t *k);
/* Drops a reference (taken); the last frees the copy. NULL is a no-op. Any thread. */
void snap_kept_unref(snap_kept_t *k);

/* One resource and where it came from, for errors (config_resource_where): "<origin>[<index>]"
 * for a resource known by its place in a list, "<origin>['<name>']" for one its source names. */
typedef struct config_resource {
    ProtobufCMessage *msg; /* borrowed from whoever owns the set's messages */
    const char *origin;    /* a static string: "static_resources.listeners", "lds" */
    size_t index;          /* its place there */
    /* xDS: the version_info it came with (borrowed, "" when the server gave none); NULL: a
     * static resource, the bootstrap's. /config_dump shows the xDS ones as dynamic. */
    const char *version;
    const char *name; /* the name its source gives it (xDS), borrowed like msg; or NULL */
    /* The held resource msg points into (borrowed), or NULL. Given by the source (the ADS
     * state machine's, which the snapshot then keeps by reference instead of a copy of its
     * own) or set by the build (snapshot_dynamic_use): the snapshot's copy, shared with the
     * snapshots that kept the same resource; and whether that copy passed validation in an
     * earlier build (it is not validated again). */
    snap_kept_t *kept;
    bool validated;
} config_resource_t;

typedef struct config_resource_list {
    config_resource_t *v; /* owned by the set */
    size_t n, cap;
} config_resource_list_t;

typedef struct config_resources {
    /* The Bootstrap the set was made from (borrowed), or NULL. Validation covers its fields
     * besides static_resources (whose resources are in the lists below) as a whole. */
    const ProtobufCMessage *bootstrap;
    /* Bootstrap-level settings (borrowed; NULL when absent). */
    const struct Envoy__Config__Core__V3__Node *node;
    const struct Envoy__Config__Bootstrap__V3__Admin *admin;
    const struct Envoy__Config__Bootstrap__V3__LayeredRuntime *runtime;
    const struct Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources *dynamic;
    /* The named resources, in the order they were given. */
    config_resource_list_t listeners;     /* envoy.config.listener.v3.Listener */
    config_resource_list_t clusters;      /* envoy.config.cluster.v3.Cluster */
    config_resource_list_t route_configs; /* envoy.config.route.v3.RouteConfiguration (RDS) */
    config_resource_list_t endpoints;     /* envoy.config.endpoint.v3.ClusterLoadAssignment (EDS) */
    config_resource_list_t secrets; /* envoy.extensions.transport_sockets.tls.v3.Secret (SDS) */
    /* The bootstrap's fields and static resources were validated already: the set was made from
     * a running snapshot's Bootstrap (a copy of it), so validation skips them. */
    bool static_validated;
} config_resources_t;

/* Appends msg (borrowed; must outlive list) to list, named "<origin>[<index>]" (origin a static
 * string), as a static resource. Returns 0 or -ENOMEM. */
int config_resources_add(config_resource_list_t *list, ProtobufCMessage *msg, const char *origin,
                         size_t index);

/* Makes room in list (borrowed) for `more` resources past those it holds, so that many appends
 * allocate nothing (a caller that knows the count: a set of 1,000 resources otherwise grows
 * through 8 reallocations). Returns 0 or -ENOMEM. */
int config_resources_reserve(config_resource_list_t *list, size_t more);

/* Appends msg as config_resources_add does, as a resource that came over xDS with version_info
 * `version` (borrowed, must outlive list; NULL reads ""). Returns 0 or -ENOMEM. */
int config_resources_add_xds(config_resource_list_t *list, ProtobufCMessage *msg,
                             const char *origin, size_t index, const char *version);

/* Appends msg (borrowed; must outlive list) to list, named "<origin>['<name>']" (origin a static
 * string; name borrowed, must outlive list): a resource its source knows by name, as xDS does.
 * index is its place in the source's order. Returns 0 or -ENOMEM. */
int config_resources_add_named(config_resource_list_t *list, ProtobufCMessage *msg,
                               const char *origin, size_t index, const char *name);

/* Writes where r (borrowed) came from into buf (len bytes, always NUL-terminated):
 * "static_resources.clusters[2]", or "cds['backend']" for a named resource (a long name cut
 * short with "..."). Returns buf. */
char *config_resource_where(const config_resource_t *r, char *buf, size_t len);

/* Fills *out from a Bootstrap (an Envoy__Config__Bootstrap__V3__Bootstrap*, borrowed: the set's
 * messages point into it): static_resources.listeners and .clusters become resources named by
 * their place there, node, admin, layered_runtime and dynamic_resources the settings. Returns 0,
 * or -ENOMEM with err saying so and *out empty. Free the lists with config_resources_free. */
int config_resources_from_bootstrap(void *bootstrap, config_resources_t *out, char *err,
                                    size_t errlen);

/* Frees the lists of res (borrowed; not their messages) and empties it. */
void config_resources_free(config_resources_t *res);

/* The validation every source goes through (config_validate on each message of res, borrowed):
 * the bootstrap's own fields, or without one the settings, then every resource, named by where
 * it came from. What an earlier build validated is skipped: resources marked validated, and the
 * bootstrap's fields and static resources when res->static_validated.
 * Returns 0, or negative with err naming the field path
 * ("static_resources.clusters[0].connect_timeout: duration must not be negative"). */
int config_resources_validate(const config_resources_t *res, char *err, size_t errlen);

/* Builds a snapshot from res (borrowed; listeners without a name get one written into their
 * message, for /config_dump to show), after config_resources_validate. Listeners and clusters
 * take the route configurations (RDS), load assignments (EDS) and secrets (SDS) they name from
 * res's other lists; one a list lacks is not an error but awaited (snapshot_references). Takes
 * `bootstrap` (the message res's static messages point into, kept by the snapshot for
 * /config_dump; freed on error); the snapshot keeps copies of res's xDS resources. opts
 * (borrowed; NULL: nothing) gives DNS clusters' addresses and the table of the clusters'
 * runtime state. Same contract otherwise as snapshot_build. */
int snapshot_build_resources(config_resources_t *res, void *bootstrap,
                             const snap_build_opts_t *opts, stats_store_t *stats, unsigned nworkers,
                             snapshot_t **out, char *err, size_t errlen);

/* Builds the next snapshot from a copy of cur's Bootstrap (cur borrowed) and the xDS resources
 * of dyn (borrowed; each with its name and version; the new snapshot keeps copies of them for
 * rebuilds and /config_dump, in place of cur's, sharing cur's where a resource is unchanged),
 * with what cur was built with: how an xDS client makes the next config. A cluster whose inputs
 * did not change is cur's, shared with cur (docs/xds.md, "What a build shares with the last
 * one"). DNS addresses from resolver (borrowed; NULL: none). Same contract otherwise as
 * snapshot_build. */
int snapshot_build_dynamic(const snapshot_t *cur, const config_resources_t *dyn,
                           const snap_resolver_t *resolver, stats_store_t *stats, snapshot_t **out,
                           char *err, size_t errlen);

/* Whether dyn (borrowed) translates on top of cur's Bootstrap (cur borrowed): the build
 * snapshot_build_dynamic would do, without DNS addresses, the clusters' runtime state or their
 * stats, its snapshot dropped at once; cur's Bootstrap is read in place, cur's clusters are
 * shared, and when dyn holds only clusters and load assignments the Bootstrap's listeners are
 * left out (such resources cannot make a listener fail). Each Secret of dyn is checked on its
 * own too (snapshot_tls_check_secret: a context naming it may still wait for another secret and
 * make no engine). How one resource is checked alone before it is accepted. Returns 0, or
 * negative with err saying what and where. */
int snapshot_check_dynamic(const snapshot_t *cur, const config_resources_t *dyn,
                           stats_store_t *stats, char *err, size_t errlen);

/* snapshot_check_dynamic that keeps its snapshot: *out is new (snapshot_unref), for a caller
 * that needs what the trial built, e.g. where a listener would bind (its listeners are cur's
 * bootstrap's, then dyn's in order). Never to be installed: it links no runtime state. Returns
 * 0, or negative with err set and *out NULL. */
int snapshot_trial_dynamic(const snapshot_t *cur, const config_resources_t *dyn,
                           stats_store_t *stats, snapshot_t **out, char *err, size_t errlen);

#endif
