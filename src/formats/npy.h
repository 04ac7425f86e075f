/*
 * The NumPy .npy file header, format version 1.0 (version 2.0, for
 * headers over 65535 bytes, is never needed: CFS_NPY_MAX_DIMS dimensions
 * fit): the magic "\x93NUMPY", the version, the header length (uint16
 * LE), then the ASCII dict
 * "{'descr': ..., 'fortran_order': False, 'shape': (...), }" padded with
 * spaces and a final '\n' so that the data starts at a multiple of 64.
 * Source: NumPy's "numpy.lib.format" documentation (NEP 1). The bytes are
 * those numpy.save writes (NumPy >= 1.24, which pads for the first
 * dimension to grow to 21 digits). Pure functions, thread-safe.
 */
#ifndef CHUNKFS_NPY_H
#define CHUNKFS_NPY_H

#include <glib.h>
#include <stdint.h>

/* NumPy's limit on array dimensions (NPY_MAXDIMS of NumPy 2). */
#define CFS_NPY_MAX_DIMS 64

/*
 * The .npy header for a C-order array of ndim (<= CFS_NPY_MAX_DIMS)
 * dimensions shape[0..ndim) whose dtype is descr, a NumPy array-protocol
 * type string such as "<f4", "|u1" or "|b1". ndim 0 is a scalar "()", ndim 1
 * is written "(n,)". Returns the header bytes (a new GBytes); its length is
 * a multiple of 64.
 */
GBytes *cfs_npy_header(const char *descr, const uint64_t *shape, unsigned ndim);

#endif
