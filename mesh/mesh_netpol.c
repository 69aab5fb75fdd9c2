/* NetworkPolicy (networking.k8s.io/v1): the pod selector, policy types and the ingress and
 * egress rules with their peers and ports. Kept in the index for authorization. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mesh/mesh_internal.h"

static int read_expr(mesh_reader_t *rd, yaml_node_t *e, mesh_sel_expr_t *out)
{
    static const char *const ops[] = {"In", "NotIn", "Exists", "DoesNotExist"};
    int op;
    int rc = mesh_rd_str(rd, e, "key", true, &out->key);
    if (rc == 0)
        rc = mesh_rd_enum(rd, e, "operator", ops, 4, -1, &op);
    if (rc == 0 && op < 0)
        rc = mesh_rd_fail_at(rd, "operator", "missing");
    if (rc == 0)
        rc = mesh_rd_strings(rd, e, "values", &out->values, &out->nvalues);
    if (rc < 0)
        return rc;
    out->op = (mesh_sel_op_t)op;
    if ((op == MESH_SEL_IN || op == MESH_SEL_NOT_IN) && out->nvalues == 0)
        return mesh_rd_fail_at(rd, "values", "%s needs at least one", ops[op]);
    if ((op == MESH_SEL_EXISTS || op == MESH_SEL_DOES_NOT_EXIST) && out->nvalues > 0)
        return mesh_rd_fail_at(rd, "values", "must be empty for %s", ops[op]);
    return 0;
}

/* The label selector at key: *present says whether it was given (an empty one selects all). */
static int read_selector(mesh_reader_t *rd, yaml_node_t *map, const char *key, bool *present,
                         mesh_selector_t *out)
{
    yaml_node_t *sel, *seq;
    if (mesh_rd_map(rd, map, key, &sel) < 0)
        return -EINVAL;
    if (present)
        *present = sel != NULL;
    if (sel == NULL)
        return 0;
    size_t top = mesh_rd_push(rd, key);
    int rc = mesh_rd_labels(rd, sel, "matchLabels", &out->match_labels);
    if (rc == 0)
        rc = mesh_rd_seq(rd, sel, "matchExpressions", &seq);
    if (rc < 0)
        return rc;
    size_t n = seq ? (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start) : 0;
    if ((out->exprs = mesh_alloc(rd->obj, n * sizeof(*out->exprs))) == NULL)
        return mesh_rd_nomem(rd);
    size_t mid = mesh_rd_push(rd, "matchExpressions");
    for (size_t i = 0; i < n; i++, out->nexprs++) {
        size_t mark;
        yaml_node_t *e = mesh_rd_item(rd, seq, i, &mark);
        if (e == NULL || e->type != YAML_MAPPING_NODE)
            return mesh_rd_fail(rd, "must be a mapping");
        if (read_expr(rd, e, &out->exprs[i]) < 0)
            return -EINVAL;
        mesh_rd_pop(rd, mark);
    }
    mesh_rd_pop(rd, mid);
    mesh_rd_pop(rd, top);
    return 0;
}

static int read_peer(mesh_reader_t *rd, yaml_node_t *p, mesh_np_peer_t *out)
{
    yaml_node_t *block;
    int rc = read_selector(rd, p, "podSelector", &out->has_pod_selector, &out->pod_selector);
    if (rc == 0)
        rc = read_selector(rd, p, "namespaceSelector", &out->has_ns_selector, &out->ns_selector);
    if (rc == 0)
        rc = mesh_rd_map(rd, p, "ipBlock", &block);
    if (rc < 0 || block == NULL)
        return rc;
    if (out->has_pod_selector || out->has_ns_selector)
        return mesh_rd_fail_at(rd, "ipBlock", "not with podSelector or namespaceSelector");
    size_t mark = mesh_rd_push(rd, "ipBlock");
    rc = mesh_rd_str(rd, block, "cidr", true, &out->ip_block);
    if (rc == 0)
        rc = mesh_rd_strings(rd, block, "except", &out->except, &out->nexcept);
    if (rc == 0 && !strchr(out->ip_block, '/'))
        rc = mesh_rd_fail_at(rd, "cidr", "\"%.64s\" is not a CIDR", out->ip_block);
    mesh_rd_pop(rd, mark);
    return rc;
}

static int read_np_port(mesh_reader_t *rd, yaml_node_t *p, mesh_np_port_t *out)
{
    int rc = mesh_rd_l4(rd, p, "protocol", &out->protocol);
    if (rc == 0)
        rc = mesh_rd_port_or_name(rd, p, "port", &out->port, &out->port_name);
    if (rc == 0)
        rc = mesh_rd_port(rd, p, "endPort", false, &out->end_port);
    if (rc == 0 && out->end_port && (out->port == 0 || out->end_port < out->port))
        rc = mesh_rd_fail_at(rd, "endPort", "needs a numeric port no greater than it");
    return rc;
}

static int peer_fn(mesh_reader_t *rd, yaml_node_t *node, void *out)
{
    return read_peer(rd, node, out);
}

static int port_fn(mesh_reader_t *rd, yaml_node_t *node, void *out)
{
    return read_np_port(rd, node, out);
}

static int read_rule(mesh_reader_t *rd, yaml_node_t *node, const char *peers_key, mesh_np_rule_t *r)
{
    int rc = mesh_rd_maps(rd, node, peers_key, sizeof(mesh_np_peer_t), peer_fn, (void **)&r->peers,
                          &r->npeers);
    if (rc == 0)
        rc = mesh_rd_maps(rd, node, "ports", sizeof(mesh_np_port_t), port_fn, (void **)&r->ports,
                          &r->nports);
    return rc;
}

static int ingress_fn(mesh_reader_t *rd, yaml_node_t *node, void *out)
{
    return read_rule(rd, node, "from", out);
}

static int egress_fn(mesh_reader_t *rd, yaml_node_t *node, void *out)
{
    return read_rule(rd, node, "to", out);
}

int mesh_read_network_policy(mesh_reader_t *rd, yaml_node_t *root)
{
    mesh_network_policy_t *np = &rd->obj->np;
    yaml_node_t *spec, *types;
    if (mesh_rd_map(rd, root, "spec", &spec) < 0)
        return -EINVAL;
    if (spec == NULL)
        return mesh_rd_fail_at(rd, "spec", "missing");
    size_t mark = mesh_rd_push(rd, "spec");
    bool has_selector;
    int rc = read_selector(rd, spec, "podSelector", &has_selector, &np->pod_selector);
    if (rc == 0 && !has_selector)
        rc = mesh_rd_fail_at(rd, "podSelector", "missing ({} selects every pod)");
    if (rc == 0)
        rc = mesh_rd_maps(rd, spec, "ingress", sizeof(mesh_np_rule_t), ingress_fn,
                          (void **)&np->ingress_rules, &np->ningress_rules);
    if (rc == 0)
        rc = mesh_rd_maps(rd, spec, "egress", sizeof(mesh_np_rule_t), egress_fn,
                          (void **)&np->egress_rules, &np->negress_rules);
    if (rc == 0)
        rc = mesh_rd_seq(rd, spec, "policyTypes", &types);
    if (rc < 0)
        return rc;
    if (types == NULL) { /* the API's default */
        np->ingress = true;
        np->egress = np->negress_rules > 0;
        mesh_rd_pop(rd, mark);
        return 0;
    }
    const char **names;
    size_t n;
    if (mesh_rd_strings(rd, spec, "policyTypes", &names, &n) < 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], "Ingress") == 0)
            np->ingress = true;
        else if (strcmp(names[i], "Egress") == 0)
            np->egress = true;
        else {
            char key[32];
            snprintf(key, sizeof(key), "policyTypes[%zu]", i);
            return mesh_rd_fail_at(rd, key, "\"%.64s\" is not Ingress or Egress", names[i]);
        }
    }
    mesh_rd_pop(rd, mark);
    return 0;
}
