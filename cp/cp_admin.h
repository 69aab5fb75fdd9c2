/* remora-cp's admin endpoint: its stats (/stats, /stats/prometheus), /ready, and /debug/syncz,
 * the state of every connected sidecar that `remoractl proxy-status` reads. Main loop only. */
#ifndef REMORA_CP_ADMIN_H
#define REMORA_CP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include <jansson.h>

#include "cp/cp_stats.h"

typedef struct cp_admin cp_admin_t;

/* What the endpoint asks of the control plane; ctx is the one given to cp_admin_start. */
typedef struct cp_admin_ops {
    /* True once the mesh has been read and the xDS port listens. */
    bool (*ready)(void *ctx);
    /* /debug/syncz: {"proxies": [{"node", "cluster", "mode", "types": {"CDS": {"state",
     * "sent", "acked", "error"}, ...}}]} (docs/control-plane.md); a new reference. */
    json_t *(*syncz)(void *ctx);
} cp_admin_ops_t;

/* Serves on addr (borrowed for the call) on loop; stats, ops and ctx are borrowed and must
 * outlive the endpoint. *out is the caller's, ended with cp_admin_stop. Returns 0 or a negative
 * libuv error with err naming the address. */
int cp_admin_start(uv_loop_t *loop, const struct sockaddr *addr, cp_stats_t *stats,
                   const cp_admin_ops_t *ops, void *ctx, cp_admin_t **out, char *err,
                   size_t errlen);

/* The address it accepts on (the port the kernel gave for port 0) into out. */
int cp_admin_address(const cp_admin_t *a, struct sockaddr_storage *out);

/* Stops serving; a (taken) is freed. NULL is ignored. */
void cp_admin_stop(cp_admin_t *a);

#endif
