/* Leaves of items: LitData PyTree and token items, MDS samples. */
#include "formats/leaves.h"

#include "formats/npy.h"

#include <gio/gio.h>
#include <string.h>

struct dtype {
	const char *descr; /* NumPy's little-endian type string; NULL: none fits a .npy file */
	unsigned size;
};

#define I1 { "|i1", 1 }
#define I2 { "<i2", 2 }
#define I4 { "<i4", 4 }
#define I8 { "<i8", 8 }
#define U1 { "|u1", 1 }
#define U2 { "<u2", 2 }
#define U4 { "<u4", 4 }
#define U8 { "<u8", 8 }
#define F2 { "<f2", 2 }
#define F4 { "<f4", 4 }
#define F8 { "<f8", 8 }
#define C8 { "<c8", 8 }
#define C16 { "<c16", 16 }
#define B1 { "|b1", 1 }
#define BF16 { NULL, 2 } /* torch.bfloat16: NumPy has no such type */

struct dtype_table {
	const struct dtype *v;
	guint n;
};

/* litdata constants.py _NUMPY_SCTYPES; the indexes after it (object, bytes, str, void) have
 * no fixed item size, so they are left out like any unknown index. */
static const struct dtype numpy_dtypes[] = { I1, I2, I4, I8, U1, U2, U4, U8, F2, F4, F8, C8, C16,
					     B1 };
/* litdata constants.py _TORCH_DTYPES_MAPPING: aliases (torch.float, torch.double...) repeat. */
static const struct dtype torch_dtypes[] = { F4, F4, F8, F8, C8, C8, C16, C16, F2, F2, BF16,
					     U1, I1, I2, I2, I4, I4, I8, I8, B1 };
static const struct dtype_table numpy_table = { numpy_dtypes, G_N_ELEMENTS(numpy_dtypes) };
static const struct dtype_table torch_table = { torch_dtypes, G_N_ELEMENTS(torch_dtypes) };

/* mosaicml streaming encodings.py NDArray: dtype names and their one-byte codes. */
static const struct mds_dtype {
	const char *name;
	uint8_t code;
	struct dtype dt;
} mds_dtypes[] = {
	{ "uint8", 8, U1 },    { "int8", 9, I1 },     { "uint16", 16, U2 }, { "int16", 17, I2 },
	{ "float16", 18, F2 }, { "uint32", 32, U4 },  { "int32", 33, I4 },  { "float32", 34, F4 },
	{ "uint64", 64, U8 },  { "int64", 65, I8 },   { "float64", 66, F8 },
};

enum leaf_kind {
	LEAF_RAW,     /* the bytes as they are */
	LEAF_FLAT,    /* values of a known dtype and no header: a 1-D array */
	LEAF_LITDATA, /* litdata NumpySerializer / TensorSerializer: uint32 dtype index, uint32
			 ndim, ndim uint32 dims, then the values */
	LEAF_MDS,     /* MDS NDArray: [dtype code: 1] [ndim << 2 | shape width: 1] [dims], values;
			 the bracketed parts are there only when the encoding leaves them open */
};

struct leaf {
	enum leaf_kind kind;
	const char *ext;                 /* of a LEAF_RAW leaf: static, or own_ext */
	char *own_ext;                   /* an extension taken from the format string */
	const struct dtype *dtype;       /* FLAT; MDS when the encoding fixes it, else NULL */
	const struct dtype_table *table; /* LITDATA: what the leaf's dtype index means */
	int ndim;                        /* MDS: dimensions the encoding fixes; -1: in the leaf */
	uint64_t *shape;                 /* MDS: the fixed dimensions */
	int64_t size;                    /* MDS: bytes of a fixed-size column; -1: variable */
	char *stem;                      /* the file name before ".<ext>": a key or the position */
};

enum layout {
	LAYOUT_PYTREE, /* uint32 size per leaf, then the leaves */
	LAYOUT_TOKENS, /* the whole item is one leaf */
	LAYOUT_MDS,    /* uint32 size per variable-size column, then every column */
};

struct cfs_leaf_schema {
	enum layout layout;
	guint n;
	guint n_var; /* MDS: the variable-size columns */
	struct leaf *leaves;
};

static uint64_t le(const uint8_t *p, unsigned width)
{
	uint64_t v = 0;
	for (unsigned i = width; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/* A decimal number of digits only, at most max. */
static bool parse_index(const char *s, uint64_t max, uint64_t *v)
{
	guint64 n;
	if (!g_ascii_isdigit(*s) || !g_ascii_string_to_unsigned(s, 10, 0, max, &n, NULL))
		return false;
	*v = n;
	return true;
}

static struct cfs_leaf_schema *schema_new(enum layout layout, guint n)
{
	struct cfs_leaf_schema *s = g_new0(struct cfs_leaf_schema, 1);
	s->layout = layout;
	s->n = n;
	s->leaves = g_new0(struct leaf, n);
	for (guint i = 0; i < n; i++)
		s->leaves[i] = (struct leaf){ .kind = LEAF_RAW,
					      .ext = "bin",
					      .ndim = -1,
					      .size = -1,
					      .stem = g_strdup_printf("%u", i) };
	return s;
}

void cfs_leaf_schema_free(struct cfs_leaf_schema *s)
{
	if (!s)
		return;
	for (guint i = 0; i < s->n; i++) {
		g_free(s->leaves[i].own_ext);
		g_free(s->leaves[i].shape);
		g_free(s->leaves[i].stem);
	}
	g_free(s->leaves);
	g_free(s);
}

/* ---- LitData ---- */

/* "no_header_numpy:N" and the like: raw values of the table's dtype N. */
static void litdata_flat(const char *index, const struct dtype_table *table, struct leaf *l)
{
	uint64_t i;
	if (parse_index(index, table->n - 1, &i) && table->v[i].descr) {
		l->kind = LEAF_FLAT;
		l->dtype = &table->v[i];
	}
}

/* The EXT of "file:EXT": litdata takes it from a file name, so it must be a plain word to be
 * part of ours. */
static void litdata_ext(const char *ext, struct leaf *l)
{
	size_t n = strlen(ext);
	if (n == 0 || n > CFS_LEAF_EXT_MAX)
		return;
	for (size_t i = 0; i < n; i++)
		if (!g_ascii_isalnum(ext[i]))
			return;
	l->own_ext = g_strdup(ext);
	l->ext = l->own_ext;
}

/* litdata serializers.py: the data_format name of each serializer. */
static void litdata_leaf(const char *format, struct leaf *l)
{
	static const struct {
		const char *format, *ext;
	} exts[] = { { "jpeg", "jpg" }, { "str", "txt" }, { "pickle", "pkl" },
		     { "tifffile", "tif" } };
	static const char *const with_ext[] = { "file:", "video:", "image:", "audio:" };
	for (guint i = 0; i < G_N_ELEMENTS(exts); i++)
		if (g_str_equal(format, exts[i].format))
			l->ext = exts[i].ext;
	for (guint i = 0; i < G_N_ELEMENTS(with_ext); i++)
		if (g_str_has_prefix(format, with_ext[i]))
			litdata_ext(format + strlen(with_ext[i]), l);
	if (g_str_equal(format, "numpy") || g_str_equal(format, "tensor")) {
		l->kind = LEAF_LITDATA;
		l->table = g_str_equal(format, "numpy") ? &numpy_table : &torch_table;
	} else if (g_str_has_prefix(format, "no_header_numpy:")) {
		litdata_flat(format + strlen("no_header_numpy:"), &numpy_table, l);
	} else if (g_str_has_prefix(format, "no_header_tensor:")) {
		litdata_flat(format + strlen("no_header_tensor:"), &torch_table, l);
	}
}

static bool is_no_header(const char *format)
{
	return g_str_has_prefix(format, "no_header_numpy:") ||
	       g_str_has_prefix(format, "no_header_tensor:");
}

struct cfs_leaf_schema *cfs_leaf_schema_litdata(const char *const *data_format, guint n,
						const char *item_loader)
{
	if (n == 0 || n > CFS_LEAF_MAX)
		return NULL;
	struct cfs_leaf_schema *s;
	if (!item_loader || g_str_equal(item_loader, "PyTreeLoader")) {
		s = schema_new(LAYOUT_PYTREE, n);
	} else if (g_str_equal(item_loader, "TokensLoader") && is_no_header(data_format[0])) {
		s = schema_new(LAYOUT_TOKENS, 1);
	} else {
		return NULL;
	}
	for (guint i = 0; i < s->n; i++)
		litdata_leaf(data_format[i], &s->leaves[i]);
	return s;
}

/* ---- MDS ---- */

static const struct dtype *mds_dtype_named(const char *name)
{
	for (guint i = 0; i < G_N_ELEMENTS(mds_dtypes); i++)
		if (g_str_equal(name, mds_dtypes[i].name))
			return &mds_dtypes[i].dt;
	return NULL;
}

static const struct dtype *mds_dtype_coded(uint8_t code)
{
	for (guint i = 0; i < G_N_ELEMENTS(mds_dtypes); i++)
		if (code == mds_dtypes[i].code)
			return &mds_dtypes[i].dt;
	return NULL;
}

/* "DIM,DIM,...": NDArray requires every dimension to be at least 1. */
static bool mds_shape(const char *text, struct leaf *l)
{
	char **dims = g_strsplit(text, ",", 0);
	guint n = g_strv_length(dims);
	uint64_t shape[CFS_NPY_MAX_DIMS];
	bool ok = n >= 1 && n <= CFS_NPY_MAX_DIMS;
	for (guint i = 0; ok && i < n; i++)
		ok = parse_index(dims[i], G_MAXUINT64, &shape[i]) && shape[i] >= 1;
	g_strfreev(dims);
	if (ok) {
		l->ndim = (int)n;
		l->shape = g_memdup2(shape, sizeof(uint64_t) * n);
	}
	return ok;
}

/* The arguments of "ndarray[:DTYPE[:SHAPE]]" (NDArray.from_str); NULL when there are none. */
static void mds_ndarray(const char *args, struct leaf *l)
{
	char **parts = g_strsplit(args ? args : "", ":", 0);
	guint n = g_strv_length(parts);
	const struct dtype *dtype = n >= 1 ? mds_dtype_named(parts[0]) : NULL;
	bool ok = n == 0 || (n <= 2 && dtype && (n == 1 || mds_shape(parts[1], l)));
	if (ok) {
		l->kind = LEAF_MDS;
		l->dtype = dtype;
	}
	g_strfreev(parts);
}

/* mosaicml streaming encodings.py: the encoding's name is what comes before any ':'. */
static void mds_leaf(const char *encoding, struct leaf *l)
{
	static const struct {
		const char *name, *ext;
	} exts[] = { { "jpeg", "jpg" },	   { "png", "png" },	     { "str", "txt" },
		     { "str_int", "txt" }, { "str_float", "txt" }, { "str_decimal", "txt" },
		     { "json", "json" },   { "pkl", "pkl" } };
	const char *colon = strchr(encoding, ':');
	char *name = g_strndup(encoding, colon ? (size_t)(colon - encoding) : strlen(encoding));
	for (guint i = 0; i < G_N_ELEMENTS(exts); i++)
		if (g_str_equal(name, exts[i].name))
			l->ext = exts[i].ext;
	if (g_str_equal(name, "ndarray"))
		mds_ndarray(colon ? colon + 1 : NULL, l);
	g_free(name);
}

struct cfs_leaf_schema *cfs_leaf_schema_mds(const char *const *encodings, const int64_t *sizes,
					    guint n)
{
	if (n == 0 || n > CFS_LEAF_MAX)
		return NULL;
	for (guint i = 0; i < n; i++)
		if (sizes[i] < -1)
			return NULL;
	struct cfs_leaf_schema *s = schema_new(LAYOUT_MDS, n);
	for (guint i = 0; i < n; i++) {
		s->leaves[i].size = sizes[i];
		s->n_var += sizes[i] < 0;
		mds_leaf(encodings[i], &s->leaves[i]);
	}
	return s;
}

/* ---- Names ---- */

/*
 * Whether a key can be a file name's stem: not empty, not "." or "..", no '/', no control
 * byte (which also rules out NUL, and the tabs and newlines that break `ls` output), valid
 * UTF-8, and room left for ".<ext>" within NAME_MAX (255). A key of digits only would read
 * as a position name, which another leaf may hold: refused too.
 */
static bool stem_ok(const char *key)
{
	size_t n = strlen(key);
	bool digits = true;
	if (n == 0 || n > CFS_LEAF_STEM_MAX || g_str_equal(key, ".") || g_str_equal(key, "..") ||
	    !g_utf8_validate(key, (gssize)n, NULL))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c == '/' || c < 0x20 || c == 0x7f)
			return false;
		digits &= g_ascii_isdigit(c) != 0;
	}
	return !digits;
}

/* Whether names[i] is used by another leaf (one that is a usable name). */
static bool stem_shared(const char *const *names, guint n, guint i)
{
	for (guint j = 0; j < n; j++)
		if (j != i && names[j] && g_str_equal(names[j], names[i]))
			return true;
	return false;
}

void cfs_leaf_schema_set_names(struct cfs_leaf_schema *s, const char *const *names)
{
	for (guint i = 0; i < s->n; i++) {
		if (!names[i] || !stem_ok(names[i]) || stem_shared(names, s->n, i))
			continue;
		g_free(s->leaves[i].stem);
		s->leaves[i].stem = g_strdup(names[i]);
	}
}

const char *cfs_leaf_stem(const struct cfs_leaf_schema *s, guint i)
{
	return s->leaves[i].stem;
}

int cfs_leaf_find(const struct cfs_leaf_schema *s, const char *stem)
{
	for (guint i = 0; i < s->n; i++)
		if (g_str_equal(s->leaves[i].stem, stem))
			return (int)i;
	return -1;
}

/* ---- Items ---- */

static bool leaf_equal(const struct leaf *a, const struct leaf *b)
{
	return a->kind == b->kind && g_str_equal(a->ext, b->ext) && g_str_equal(a->stem, b->stem) &&
	       a->dtype == b->dtype && a->table == b->table && a->ndim == b->ndim &&
	       a->size == b->size &&
	       (a->ndim <= 0 ||
		memcmp(a->shape, b->shape, sizeof(uint64_t) * (size_t)a->ndim) == 0);
}

bool cfs_leaf_schema_equal(const struct cfs_leaf_schema *a, const struct cfs_leaf_schema *b)
{
	if (!a || !b)
		return a == b;
	if (a->layout != b->layout || a->n != b->n)
		return false;
	for (guint i = 0; i < a->n; i++)
		if (!leaf_equal(&a->leaves[i], &b->leaves[i]))
			return false;
	return true;
}

guint cfs_leaf_count(const struct cfs_leaf_schema *s)
{
	return s->n;
}

uint64_t cfs_leaf_table_bytes(const struct cfs_leaf_schema *s)
{
	switch (s->layout) {
	case LAYOUT_PYTREE:
		return 4 * (uint64_t)s->n;
	case LAYOUT_MDS:
		return 4 * (uint64_t)s->n_var;
	case LAYOUT_TOKENS:
		break;
	}
	return 0;
}

bool cfs_leaves_locate(const struct cfs_leaf_schema *s, const uint8_t *head, size_t head_len,
		       uint64_t item_len, struct cfs_leaf *out, GError **error)
{
	uint64_t table = cfs_leaf_table_bytes(s);
	if (item_len < table) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "item of %" G_GUINT64_FORMAT " bytes is shorter than its size table (%"
			    G_GUINT64_FORMAT " bytes)", item_len, table);
		return false;
	}
	if (head_len < table) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "size table truncated: %zu of %" G_GUINT64_FORMAT " bytes", head_len,
			    table);
		return false;
	}
	uint64_t pos = table;
	const uint8_t *next_size = head;
	for (guint i = 0; i < s->n; i++) {
		uint64_t len;
		if (s->layout == LAYOUT_TOKENS) {
			len = item_len;
		} else if (s->layout == LAYOUT_MDS && s->leaves[i].size >= 0) {
			len = (uint64_t)s->leaves[i].size;
		} else {
			len = le(next_size, 4);
			next_size += 4;
		}
		out[i] = (struct cfs_leaf){ pos, len };
		pos = len > G_MAXUINT64 - pos ? G_MAXUINT64 : pos + len;
	}
	if (pos != item_len) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "leaves and size table add up to %" G_GUINT64_FORMAT
			    " bytes, the item has %" G_GUINT64_FORMAT, pos, item_len);
		return false;
	}
	return true;
}

/* ---- Leaves as files ---- */

static bool self_describing(const struct leaf *l)
{
	return l->kind == LEAF_LITDATA || (l->kind == LEAF_MDS && (!l->dtype || l->ndim < 0));
}

size_t cfs_leaf_probe_bytes(const struct cfs_leaf_schema *s, guint i, uint64_t leaf_len)
{
	return self_describing(&s->leaves[i]) ? (size_t)MIN(leaf_len, CFS_LEAF_PROBE_BYTES) : 0;
}

/* An array found in a leaf: its values start at header bytes into the leaf. */
struct array {
	const struct dtype *dtype;
	unsigned ndim;
	uint64_t shape[CFS_NPY_MAX_DIMS];
	uint64_t header;
};

static bool litdata_array(const struct leaf *l, const uint8_t *probe, size_t probe_len,
			  struct array *a)
{
	if (probe_len < 8)
		return false;
	uint64_t index = le(probe, 4), ndim = le(probe + 4, 4);
	if (index >= l->table->n || ndim > CFS_NPY_MAX_DIMS || probe_len < 8 + 4 * ndim)
		return false;
	a->dtype = &l->table->v[index];
	a->ndim = (unsigned)ndim;
	for (unsigned d = 0; d < a->ndim; d++)
		a->shape[d] = le(probe + 8 + 4 * d, 4);
	a->header = 8 + 4 * ndim;
	return true;
}

static bool mds_array(const struct leaf *l, const uint8_t *probe, size_t probe_len,
		      struct array *a)
{
	size_t pos = 0;
	a->dtype = l->dtype;
	if (!a->dtype) {
		if (probe_len < 1 || !(a->dtype = mds_dtype_coded(probe[0])))
			return false;
		pos = 1;
	}
	if (l->ndim >= 0) {
		a->ndim = (unsigned)l->ndim;
		memcpy(a->shape, l->shape, sizeof(uint64_t) * a->ndim);
	} else {
		if (probe_len < pos + 1)
			return false;
		a->ndim = probe[pos] >> 2; /* six bits: at most 63 < CFS_NPY_MAX_DIMS */
		unsigned width = 1u << (probe[pos] & 3);
		pos++;
		if (probe_len < pos + (size_t)width * a->ndim)
			return false;
		for (unsigned d = 0; d < a->ndim; d++, pos += width)
			a->shape[d] = le(probe + pos, width);
	}
	a->header = pos;
	return true;
}

/* The array in a leaf, when the leaf holds one that a .npy file can show. */
static bool leaf_array(const struct leaf *l, const uint8_t *probe, size_t probe_len,
		       uint64_t leaf_len, struct array *a)
{
	bool found = false;
	switch (l->kind) {
	case LEAF_FLAT:
		*a = (struct array){ .dtype = l->dtype, .ndim = 1,
				     .shape = { leaf_len / l->dtype->size } };
		found = true;
		break;
	case LEAF_LITDATA:
		found = litdata_array(l, probe, probe_len, a);
		break;
	case LEAF_MDS:
		found = mds_array(l, probe, probe_len, a);
		break;
	case LEAF_RAW:
		break;
	}
	if (!found || !a->dtype->descr || a->header > leaf_len)
		return false;
	uint64_t bytes = a->dtype->size;
	for (unsigned d = 0; d < a->ndim; d++)
		if (!g_uint64_checked_mul(&bytes, bytes, a->shape[d]))
			return false;
	return bytes == leaf_len - a->header;
}

void cfs_leaf_describe(const struct cfs_leaf_schema *s, guint i, const uint8_t *probe,
		       size_t probe_len, uint64_t leaf_len, struct cfs_leaf_file *out)
{
	const struct leaf *l = &s->leaves[i];
	struct array a;
	if (leaf_array(l, probe, probe_len, leaf_len, &a)) {
		GBytes *header = cfs_npy_header(a.dtype->descr, a.shape, a.ndim);
		*out = (struct cfs_leaf_file){ "npy", header, a.header, leaf_len - a.header };
		return;
	}
	*out = (struct cfs_leaf_file){ l->kind == LEAF_RAW ? l->ext : "bin", NULL, 0, leaf_len };
}
