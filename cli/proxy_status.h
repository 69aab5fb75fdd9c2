/* proxy_status.h — `remoractl proxy-status`: every sidecar connected to remora-cp and, per xDS
 * type, whether it is synced, stale or has NACKed, as `istioctl proxy-status` shows it. Reads
 * remora-cp's admin endpoint (GET /debug/syncz, docs/control-plane.md). */
#ifndef REMORA_CLI_PROXY_STATUS_H
#define REMORA_CLI_PROXY_STATUS_H

#include <stdio.h>

#include <jansson.h>

/* Writes the table of syncz (borrowed: the JSON document /debug/syncz serves) to out: one row per
 * proxy (NAME, CLUSTER, then CDS LDS EDS RDS SDS), then each NACK's error under the table; with
 * node (borrowed) non-NULL, that proxy alone with its versions sent and ACKed per type. Returns
 * 0, 1 when node is not connected, or -1 when syncz is not in the expected shape (a message on
 * stderr). */
int proxy_status_print(const json_t *syncz, const char *node, FILE *out);

/* The `remoractl proxy-status` command; argv[0] is "proxy-status" (argv borrowed). Returns the
 * exit status: 0, 1 when remora-cp cannot be read or the proxy is not connected, 2 for a usage
 * error. */
int proxy_status_main(int argc, char *argv[]);

#endif
