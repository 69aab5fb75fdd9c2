/* Certificate facts for the admin endpoint, read from the TLS contexts of the running snapshot:
 * Envoy's /certs document, the sidecar's own workload identity for /server_info, and the
 * certificate expiry gauges. Only public facts are read; private keys stay in the TLS engine. */
#ifndef REMORA_ADMIN_CERTS_H
#define REMORA_ADMIN_CERTS_H

#include <stdint.h>

#include <jansson.h>

#include "proxy/core/host.h"
#include "xds/snapshot/snapshot.h"

/* Envoy's admin.v3.Certificates for snap (borrowed): one entry per distinct TLS context
 * (listeners' filter chains first, then clusters, in config order; contexts sharing an engine
 * config are listed once), each with its trust bundle under "ca_cert" and its own chain, leaf
 * first, under "cert_chain". `now` is Unix seconds, for days_until_expiration. Returns a new
 * reference owned by the caller, or NULL when out of memory. */
json_t *admin_certs_json(const snapshot_t *snap, int64_t now);

/* The workload identities snap's (borrowed) contexts present: one object per distinct SPIFFE ID of
 * a leaf certificate (a leaf without one counts by its serial number), in config order, each with
 * spiffe_id (null when the leaf has none), subject, serial_number and not_after (the earliest
 * among leaves with that ID). Returns a new array owned by the caller (empty when no context has
 * a certificate), or NULL when out of memory. */
json_t *admin_certs_identities_json(const snapshot_t *snap);

/* Sets the gauges server.days_until_first_cert_expiring (Envoy's: whole days until the first
 * certificate of any context, trust bundles included, expires; 0 once one has, 2^32-1 without
 * TLS contexts) and server.cert_expiration_timestamp_seconds (the earliest not_after of the
 * leaf certificates the sidecar presents, Unix seconds; 0 without any), defining them on first
 * use, for the running snapshot of host (borrowed). Writes the main thread's stat slots: main
 * thread only. Returns 0 or a negative error. */
int admin_certs_update_gauges(const host_t *host, int64_t now);

#endif
