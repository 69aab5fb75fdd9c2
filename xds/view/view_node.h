/* What the view reads from an xDS node (the Node of a DiscoveryRequest): its pod and namespace
 * from the id, and from Istio's metadata keys NAMESPACE, SERVICE_ACCOUNT, WORKLOAD_NAME and
 * GENERATOR ("grpc": a proxyless gRPC client). */
#ifndef REMORA_XDS_VIEW_NODE_H
#define REMORA_XDS_VIEW_NODE_H

#include "xds/view/view.h"

struct Envoy__Config__Core__V3__Node;

/* Fills *out from node (borrowed; out's strings point into it and into out->buf, so out lives
 * no longer than node). The id gives pod and namespace (view_node_parse_id); metadata
 * NAMESPACE, when set, is the namespace, and an id that names no pod is then still served by
 * namespace. Returns 0, or -EINVAL when neither says the namespace. */
int view_node_from_proto(const struct Envoy__Config__Core__V3__Node *node, view_node_t *out);

#endif
