/* /stats with Envoy's text readouts (stats that hold a string, such as
 * cluster_manager.cds.version_text): the host's readouts merged by name among the counters and
 * gauges of the store's rendering. Prometheus shows none, as Envoy does. */
#ifndef REMORA_ADMIN_READOUTS_H
#define REMORA_ADMIN_READOUTS_H

#include <regex.h>

#include "base/stats.h"
#include "proxy/core/host.h"

/* /stats as text: list's counters and gauges ("name: value") with host's text readouts
 * (`name: "value"`) among them by name, then list's histograms. list (n entries, already
 * filtered), host and re (the filter, or NULL: every readout) borrowed. A new string the caller
 * frees, or NULL when out of memory. */
char *admin_stats_text(const host_t *host, const stats_entry_t *list, int n, const regex_t *re);

/* /stats?format=json: Envoy's {"stats": [...]} with each text readout as {"name", "value":
 * "<text>"} among the counters and gauges. Arguments and result as admin_stats_text. */
char *admin_stats_json(const host_t *host, const stats_entry_t *list, int n, const regex_t *re);

#endif
