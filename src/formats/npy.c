/* .npy headers, byte for byte as numpy.save writes them. */
#include "formats/npy.h"

#include <stdio.h>
#include <string.h>

#define MAGIC "\x93NUMPY\x01\x00"
#define PREAMBLE 10 /* magic, version 1.0, uint16 header length */
#define ALIGN 64
/* numpy.lib.format's GROWTH_AXIS_MAX_DIGITS: NumPy >= 1.24 pads the dict so that the first
 * dimension can grow to this many digits in place. */
#define GROWTH_DIGITS 21

GBytes *cfs_npy_header(const char *descr, const uint64_t *shape, unsigned ndim)
{
	g_return_val_if_fail(ndim <= CFS_NPY_MAX_DIMS, NULL);
	GString *h = g_string_new(NULL);
	g_string_append_len(h, MAGIC "\0\0", PREAMBLE);
	g_string_append_printf(h, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
	for (unsigned i = 0; i < ndim; i++)
		g_string_append_printf(h, "%s%" G_GUINT64_FORMAT, i ? ", " : "", shape[i]);
	g_string_append(h, ndim == 1 ? ",), }" : "), }");
	if (ndim > 0) {
		int digits = snprintf(NULL, 0, "%" G_GUINT64_FORMAT, shape[0]);
		for (int i = digits; i < GROWTH_DIGITS; i++)
			g_string_append_c(h, ' ');
	}
	/* Like numpy, a full 64 bytes of padding when the dict plus '\n' already aligns. */
	gsize pad = ALIGN - (h->len + 1) % ALIGN;
	for (gsize i = 0; i < pad; i++)
		g_string_append_c(h, ' ');
	g_string_append_c(h, '\n');
	/* At most 64 dimensions of 20 digits: the length always fits version 1.0's uint16. */
	guint16 dict_len = GUINT16_TO_LE((guint16)(h->len - PREAMBLE));
	memcpy(h->str + 8, &dict_len, sizeof(dict_len));
	return g_string_free_to_bytes(h);
}
