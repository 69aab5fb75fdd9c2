/* What the unit tests build snapshots with: the network filters the proxy ships, and no cluster
 * runtime state unless a test links one (test_cluster_state.c). */
#ifndef REMORA_TEST_SNAP_OPTS_H
#define REMORA_TEST_SNAP_OPTS_H

#include "filters/registry.h"
#include "xds/snapshot/snapshot.h"

static const snap_build_opts_t test_snap_opts = {.filters = &filter_registry};

#endif
