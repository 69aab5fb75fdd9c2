/* SDS: the secrets a TLS context names by SdsSecretConfig, taken from the secrets of the
 * resource set being built (over ADS, the one config source Remora takes), and the merge of a
 * combined validation context with its default, as Envoy does. The secrets' fields are read by
 * the same code as inline tls_certificates and validation_context (snapshot_tls.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "base/err.h"
#include "xds/snapshot/snapshot_build.h"

typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret secret_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig sds_msg_t;

static const char *secret_type(int type_case)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &envoy__extensions__transport_sockets__tls__v3__secret__descriptor, (unsigned)type_case);
    return f ? f->name : "no type";
}

int snapshot_sds_secret(snap_build_t *b, const sds_msg_t *sds, int want_case,
                        const secret_msg_t **out, char *origin, size_t olen, char *err,
                        size_t errlen)
{
    *out = NULL;
    /* Without sds_config Envoy looks for a static secret of the bootstrap, which Remora's
     * bootstrap does not have: only secrets over ADS are taken. */
    if (sds->sds_config == NULL)
        return err_set(err, errlen, -EINVAL,
                       "sds_config is required: secrets come over ADS (sds_config: {ads: {}}); "
                       "static secrets are not supported");
    int rc = snap_check_ads(sds->sds_config, false, "sds_config", err, errlen);
    if (rc < 0)
        return rc;
    if (sds->name == NULL || sds->name[0] == '\0')
        return err_set(err, errlen, -EINVAL, "name is required");
    const config_resource_t *r = snap_index_find(&b->secrets, sds->name);
    if (snap_refs_add(&b->snap->references.secrets, sds->name, r == NULL) < 0 ||
        snap_share_dep(b, SNAP_DYN_SECRETS, sds->name, r) < 0)
        return err_set(err, errlen, -ENOMEM, "out of memory");
    if (r == NULL) {
        snprintf(origin, olen, "secret '%s'", sds->name);
        return 0;
    }
    const secret_msg_t *s = (const secret_msg_t *)r->msg;
    snprintf(origin, olen, "secret '%s' (%s[%zu])", sds->name, r->origin, r->index);
    if ((int)s->type_case != want_case)
        return err_set(err, errlen, -EINVAL, "%s: holds %s where %s is wanted", origin,
                       secret_type((int)s->type_case), secret_type(want_case));
    *out = s;
    return 0;
}

int snapshot_sds_merge_validation(const ProtobufCMessage *dflt, const ProtobufCMessage *sds,
                                  ProtobufCMessage **out)
{
    /* Messages read one after the other on the wire merge as MergeFrom does: a later scalar
     * or oneof member wins, a later message merges into the earlier, repeated fields append. */
    size_t la = dflt ? protobuf_c_message_get_packed_size(dflt) : 0;
    size_t lb = protobuf_c_message_get_packed_size(sds);
    uint8_t *buf = malloc(la + lb + 1);
    if (buf == NULL)
        return -ENOMEM;
    if (dflt)
        protobuf_c_message_pack(dflt, buf);
    protobuf_c_message_pack(sds, buf + la);
    *out = protobuf_c_message_unpack(sds->descriptor, NULL, la + lb, buf);
    free(buf);
    return *out ? 0 : -ENOMEM;
}
