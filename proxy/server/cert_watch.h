/* Certificate rotation from files: watches the files the running snapshot's TLS contexts were
 * read from and, when their content changes, builds the snapshot again from the same bootstrap
 * and publishes it; warns about certificates close to expiry. Main thread only. */
#ifndef REMORA_CERT_WATCH_H
#define REMORA_CERT_WATCH_H

#include <stdint.h>

#include "proxy/core/host.h"

typedef struct cert_watch cert_watch_t;

/* Starts watching the certificate, key and trust bundle files of host's running snapshot on
 * host->loop: the directory of each file with libuv fs events plus a look every
 * check_interval_ms (0: no watching), and certificates expiring within expiry_warn_s logged and
 * counted (0: no warning). A content change is read after a short settling delay; a snapshot
 * that builds (with host_resolver's DNS addresses) is installed with host_install_snapshot, one
 * that does not is logged and counted, and the snapshot in use stays. Defines the
 * server.cert_* stats. host is borrowed and must outlive the watch. On success *out is owned by
 * the caller, who ends it with cert_watch_stop. Returns 0 or -ENOMEM (or a stats error). */
int cert_watch_start(const host_t *host, uint64_t check_interval_ms, int64_t expiry_warn_s,
                     cert_watch_t **out);

/* Stops watching: closes the handles and frees cw (taken) once they are closed (a later turn of
 * the host's loop). NULL is ignored. */
void cert_watch_stop(cert_watch_t *cw);

#endif
