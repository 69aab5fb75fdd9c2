/* Certificate rotation from files: watches the files the running snapshot's TLS contexts were
 * read from and, when their content changes, builds the snapshot again from the same bootstrap
 * and publishes it; warns about certificates close to expiry. Main thread only. */
#ifndef REMORA_CERT_WATCH_H
#define REMORA_CERT_WATCH_H

#include "proxy/server/server.h"

typedef struct cert_watch cert_watch_t;

/* Starts watching s->snap's certificate, key and trust bundle files on s->loop, as s->opts
 * asks: the directory of each file with libuv fs events plus a look every
 * cert_check_interval_ms (0: no watching), and certificates expiring within cert_expiry_warn_s
 * logged and counted (0: no warning). A content change is read after a short settling delay;
 * a snapshot that builds is handed to the workers and becomes s->snap, one that does not is
 * logged and counted, and the snapshot in use stays. Defines the server.cert_* stats. s is
 * borrowed and must outlive the watch. On success *out is owned by the caller, who ends it with
 * cert_watch_stop. Returns 0 or -ENOMEM (or a stats error). */
int cert_watch_start(server_t *s, cert_watch_t **out);

/* Stops watching: closes the handles and frees cw once they are closed (a later turn of
 * s->loop). NULL is ignored. */
void cert_watch_stop(cert_watch_t *cw);

#endif
