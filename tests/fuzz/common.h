/*
 * What the fuzz targets share. Every target links common.c, whose
 * LLVMFuzzerInitialize() drops GLib's log lines (a target feeding bad data
 * on purpose would spend its time writing warnings) but aborts on a
 * critical or an error, as on a crash. Also the checks of one item's
 * leaves (fuzz_chunk, fuzz_leaves).
 */
#ifndef CHUNKFS_FUZZ_COMMON_H
#define CHUNKFS_FUZZ_COMMON_H

#include <stdint.h>

#include "formats/leaves.h"

/* libFuzzer's hook, called once before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * Locate the leaves of the item[0, len) under schema s as the item views
 * do (from a copy of its size table only) and describe each from a copy of
 * its probe bytes; abort() when a leaf leaves the item, the leaves do not
 * tile it, a failure is not G_IO_ERROR_INVALID_DATA or a .npy prefix is
 * malformed.
 */
void fuzz_check_item(const struct cfs_leaf_schema *s, const uint8_t *item, uint64_t len);

#endif
