/*
 * libFuzzer target: cfs_npy_header(), whose shapes come from the leaves of
 * items (remote data). Input: 1 byte choosing the dtype (byte % 15), 1 byte
 * the number of dimensions (byte % (CFS_NPY_MAX_DIMS + 1)), then the
 * dimensions, uint64 LE each (missing bytes are zero). The header is read
 * back as NumPy would (numpy.lib.format, version 1.0): magic, version,
 * header length, the dict, and the shape must be the one given.
 */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every dtype the leaves can name (leaves.c). */
static const char *const descrs[] = { "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8",
				      "<f2", "<f4", "<f8", "<c8", "<c16", "|b1", "|b1" };

static uint64_t le64(const uint8_t *p, size_t avail)
{
	uint64_t v = 0;
	for (size_t i = MIN(avail, 8); i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/* The dict's "(d0, d1, ...)" ("(d0,)" for one) read back; false when it is not shape. */
static bool shape_matches(const char *dict, const uint64_t *shape, unsigned ndim)
{
	const char *p = strstr(dict, "'shape': (");
	if (!p)
		return false;
	p += strlen("'shape': (");
	for (unsigned i = 0; i < ndim; i++) {
		char *end;
		if (!g_ascii_isdigit(*p) || g_ascii_strtoull(p, &end, 10) != shape[i])
			return false;
		p = end;
		const char *sep = i + 1 < ndim ? ", " : ndim == 1 ? "," : "";
		if (!g_str_has_prefix(p, sep))
			return false;
		p += strlen(sep);
	}
	return g_str_has_prefix(p, "), }");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const char *descr = descrs[data[0] % G_N_ELEMENTS(descrs)];
	unsigned ndim = data[1] % (CFS_NPY_MAX_DIMS + 1);
	uint64_t shape[CFS_NPY_MAX_DIMS];
	for (unsigned i = 0; i < ndim; i++) {
		size_t at = 2 + (size_t)i * 8;
		shape[i] = at < size ? le64(data + at, size - at) : 0;
	}
	GBytes *h = cfs_npy_header(descr, shape, ndim);
	size_t n;
	const uint8_t *b = g_bytes_get_data(h, &n);
	if (n % 64 != 0 || n < 64 || memcmp(b, "\x93NUMPY\x01\x00", 8) != 0 ||
	    (size_t)(b[8] | b[9] << 8) != n - 10 || b[n - 1] != '\n')
		abort();
	char *dict = g_strndup((const char *)b + 10, n - 10);
	char *want = g_strdup_printf("{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
	if (strlen(dict) != n - 10 || !g_str_has_prefix(dict, want) ||
	    !shape_matches(dict, shape, ndim))
		abort();
	g_free(want);
	g_free(dict);
	g_bytes_unref(h);
	return 0;
}
