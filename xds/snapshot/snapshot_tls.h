/* Internal to xds/snapshot*.c: TLS transport sockets (snapshot_tls.c, their SDS secrets through
 * snapshot_sds.c) and the TLS side of filter chain matching (transport_protocol, server_names;
 * snapshot_tls_match.c), parsed into the structs of snapshot.h. */
#ifndef REMORA_SNAPSHOT_TLS_H
#define REMORA_SNAPSHOT_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "xds/snapshot/snapshot.h"

struct Envoy__Config__Core__V3__TransportSocket;
struct Envoy__Extensions__TransportSockets__Tls__V3__Secret;
struct Envoy__Config__Listener__V3__FilterChainMatch;
struct tls_engine_entry;
struct snap_build;
struct tls_config_opts;
struct tls_config;

/* The engine configs built so far by a build that makes no snapshot (snapshot_tls_check_secret),
 * so that identical TLS contexts share one: owned by that build (a local of it). A snapshot
 * build keeps its entries in its snapshot instead (snapshot_t.tls_engines), where the next build
 * finds them. Starts zeroed; emptied with snapshot_tls_cache_free. */
typedef struct snapshot_tls_cache {
    struct tls_engine_entry *head;
} snapshot_tls_cache_t;

/* Parses a transport_socket (borrowed) for a cluster (TLS_CONFIG_CLIENT) or a filter chain
 * (TLS_CONFIG_SERVER), reading the files its DataSources name. build (borrowed) is the build
 * it is part of: secrets named over SDS come from its resource set (one the set lacks leaves
 * the context awaiting_secret, with no engine), and its engine config is the one an identical
 * context got earlier in the build or in the snapshot the build follows (build->prev), so the
 * same bytes give the same engine config across builds; a new one otherwise. *out is a new config
 * owned by the caller (free with snapshot_tls_free), or NULL for raw_buffer. On error returns
 * negative, *out is NULL and err reads "<what>: transport_socket: <field>: <what is wrong>". */
int snapshot_tls_parse(const struct Envoy__Config__Core__V3__TransportSocket *ts,
                       tls_config_role_t role, const char *what, struct snap_build *build,
                       tls_context_config_t **out, char *err, size_t errlen);

/* Checks a Secret s (borrowed) on its own, as a TLS context taking it would: a tls_certificate's
 * chain and key (files read) make a server config, a validation_context's trusted_ca a trust
 * bundle; other types pass. So a bad secret is refused when it arrives, even while the context
 * naming it still waits for its other secret. Returns 0, -ENOMEM, or -EINVAL with err naming
 * the field ("tls_certificate.certificate_chain: ..."). */
int snapshot_tls_check_secret(const struct Envoy__Extensions__TransportSockets__Tls__V3__Secret *s,
                              char *err, size_t errlen);

/* Drops the cache's (borrowed) references to the engine configs (the contexts built keep theirs)
 * and empties it. */
void snapshot_tls_cache_free(snapshot_tls_cache_t *cache);

/* snapshot_tls_engine.c: the engine config for o (borrowed) in build b (borrowed): the one b
 * made or took already for identical options, else b->prev's, else a new one. *out gets a new
 * reference. Returns 0, -ENOMEM, or the engine's error with err set. */
int snapshot_tls_engine_get(struct snap_build *b, const struct tls_config_opts *o,
                            struct tls_config **out, char *err, size_t errlen);

/* The end of a snapshot build b (borrowed): the snapshot keeps, for the build after it, the
 * entries of b->prev whose engine configs it uses without having asked for them (clusters it
 * shares with b->prev, snapshot_share.c), so they stay the same objects over any number of
 * builds. */
void snapshot_tls_keep_engines(struct snap_build *b);

/* Drops the engine configs snapshot s (borrowed) kept for the next build: snapshot_free. */
void snapshot_tls_engines_free(snapshot_t *s);

/* Takes t: frees it and everything it owns, wiping the private key first. NULL is a no-op. */
void snapshot_tls_free(tls_context_config_t *t);

/* Whether a listener filter (name, or type URL when not NULL; both borrowed for the call) is
 * envoy.filters.listener.tls_inspector. */
bool snapshot_tls_is_inspector(const char *name, const char *type_url);

/* Sets c->transport and c->server_names (owned by c, freed with snapshot_tls_free_match) from
 * fm (borrowed; what borrowed for the call). Both criteria need the listener's
 * tls_inspector: without it they are an error naming `what`. */
int snapshot_tls_parse_match(const struct Envoy__Config__Listener__V3__FilterChainMatch *fm,
                             bool tls_inspector, snap_chain_t *c, const char *what, char *err,
                             size_t errlen);

/* Frees what snapshot_tls_parse_match allocated in c (borrowed). */
void snapshot_tls_free_match(snap_chain_t *c);

/* Whether the TLS criteria of two chains could take the same connection: the same transport
 * and either no server_names on both or a name in common. a and b borrowed. */
bool snapshot_tls_same_match(const snap_chain_t *a, const snap_chain_t *b);

#endif
