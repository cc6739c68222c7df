/* Layer extraction settings shared by the layer sink, its tests and the fuzz harnesses. */
#ifndef CIMG_LAYER_INTERNAL_H
#define CIMG_LAYER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* The cap on one layer's uncompressed size (tar bytes, and the sum of its files' sizes), in
   bytes; 0 means none. From $CIMG_MAX_LAYER_SIZE if set, else "max-layer-size" in the cimg
   config files ($CIMG_CONFIG alone, else /etc/cimg/config.json then
   ~/.config/cimg/config.json), else 64 GiB. Returns 0, or -1 with err naming the bad setting. */
int cimg_layer_max_size (int64_t *out, cimg_error_t *err);

struct cimg_layer_sink;

/* The caller verifies the compressed bytes' digest itself (registry/pull.c: the download file
   hashes them, store/ingest.c) before cimg_layer_sink_finish, and passes that digest as
   expected_digest: the sink does not hash the same ~100 MB a second time on the thread that
   feeds it. */
void cimg_layer_sink_digest_verified (struct cimg_layer_sink *k);

/* Whether the ring to the extraction thread has room for at least min bytes now (or needs
   none: the extraction ended). When it does not, wake (arg) is called once, from the
   extraction thread, as soon as it does — so that a caller feeding several sinks from one
   thread can leave this one aside instead of blocking in cimg_layer_sink_write
   (registry/pull.c pauses the transfer). wake may be NULL: then nothing is called. */
bool cimg_layer_sink_has_room (struct cimg_layer_sink *k, size_t min, void (*wake) (void *),
                               void *arg);

/* After a successful cimg_layer_sink_finish that committed the layer: an fd on the file system
   it synced (syncfs) just before the commit, valid until cimg_layer_sink_free; -1 when it did
   not sync (the layer was already in the store). Whatever was written on that file system
   before the finish is durable. */
int cimg_layer_sink_synced_fd (struct cimg_layer_sink *k);

#endif
