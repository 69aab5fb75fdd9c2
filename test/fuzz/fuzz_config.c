/* libFuzzer harness for the config path: any bytes as a Bootstrap YAML; what loads is rendered
 * as JSON and built into a snapshot, so the generic walkers and the translation to the running
 * config all see hostile shapes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "xds/config/config.h"
#include "xds/snapshot/snapshot.h"
#include "test/unit/snap_opts.h"

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    ProtobufCMessage *msg = NULL;
    if (config_yaml_load((const char *)data, size, "fuzz.yaml",
                         &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg, err,
                         sizeof(err)) != 0)
        return 0;
    json_t *j = config_to_json(msg);
    char *text = json_dumps(j, JSON_COMPACT);
    free(text);
    json_decref(j);
    /* snapshot_build takes the message whether it succeeds or not. */
    stats_store_t *stats = stats_store_new(2);
    snapshot_t *snap = NULL;
    if (stats == NULL) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return 0;
    }
    if (snapshot_build(msg, &test_snap_opts, stats, 2, &snap, err, sizeof(err)) == 0) {
        char *dump = snapshot_config_dump(snap);
        free(dump);
        snapshot_unref(snap);
    }
    stats_store_free(stats);
    return 0;
}
