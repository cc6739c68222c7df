/* Layer extraction settings shared by the layer sink, its tests and the fuzz harnesses. */
#ifndef CIMG_LAYER_INTERNAL_H
#define CIMG_LAYER_INTERNAL_H

#include <stdint.h>

#include "util/util.h"

/* The cap on one layer's uncompressed size (tar bytes, and the sum of its files' sizes), in
   bytes; 0 means none. From $CIMG_MAX_LAYER_SIZE if set, else "max-layer-size" in the cimg
   config files ($CIMG_CONFIG alone, else /etc/cimg/config.json then
   ~/.config/cimg/config.json), else 64 GiB. Returns 0, or -1 with err naming the bad setting. */
int cimg_layer_max_size (int64_t *out, cimg_error_t *err);

#endif
