/* The admin endpoint on the main loop (Envoy's paths), and the kubelet's readiness port. What it
 * reports and does to the process goes through the host API (proxy/core/host.h). */
#ifndef REMORA_ADMIN_H
#define REMORA_ADMIN_H

#include <stddef.h>
#include <sys/socket.h>

#include "proxy/core/host.h"

typedef struct admin admin_t;

/* Serves the admin endpoint on addr (borrowed for the call) for host (borrowed; must outlive the
 * endpoint), on host->loop. On success *out is owned by the caller, who ends it with admin_stop.
 * Returns 0 or a negative libuv error, with a message naming the address in err. */
int admin_start(const host_t *host, const struct sockaddr *addr, admin_t **out, char *err,
                size_t errlen);

/* The kubelet's readiness port: GET /healthz/ready only; otherwise as admin_start. */
int admin_start_health(const host_t *host, const struct sockaddr *addr, admin_t **out, char *err,
                       size_t errlen);

/* Closes the endpoint; a (taken) is freed once its handle is closed. NULL is ignored. */
void admin_stop(admin_t *a);

#endif
