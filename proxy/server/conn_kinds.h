/* The kinds of connection every worker runs, with their hooks: the one place that names them,
 * so that the worker (proxy/core/worker.c) names none. */
#ifndef REMORA_CONN_KINDS_H
#define REMORA_CONN_KINDS_H

#include "proxy/core/worker.h"

/* The listeners and their sniffing connections, tcp_proxy sessions, HTTP connections and
 * upstream pools, in the order their hooks run (see worker_conn_kinds_t). Static: for
 * worker_start to borrow. */
extern const worker_conn_kinds_t conn_kinds;

#endif
