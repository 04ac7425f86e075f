/* Spilled block files: encoding and the checks every read makes. */
#include "spill/spillfmt.h"

#include <gio/gio.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#define MAGIC "CFSBLK\r\n"
#define VERSION 1
#define FLAG_ZSTD 1u
#define FIXED 64
#define SUM 8
#define ZSTD_LEVEL 1

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The extents' bytes of data, one after the other, into out. */
static void gather_into(const struct cfs_extents *x, const uint8_t *data, uint8_t *out)
{
	for (uint32_t i = 0; i < x->n; i++) {
		memcpy(out, data + x->v[i].lo, x->v[i].hi - x->v[i].lo);
		out += x->v[i].hi - x->v[i].lo;
	}
}

/* The same, into a new buffer (g_malloc'd). */
static uint8_t *gather_payload(const struct cfs_extents *x, const uint8_t *data, uint32_t raw)
{
	uint8_t *out = g_malloc(MAX(raw, 1));
	gather_into(x, data, out);
	return out;
}

/* The payload zstd-compressed when that is smaller, else NULL. */
static uint8_t *shrink(const uint8_t *raw, uint32_t len, size_t *out_len)
{
	size_t cap = ZSTD_compressBound(len);
	uint8_t *z = g_malloc(cap);
	size_t n = ZSTD_compress(z, cap, raw, len, ZSTD_LEVEL);
	if (ZSTD_isError(n) || n >= len) {
		g_free(z);
		return NULL;
	}
	*out_len = n;
	return z;
}

/* XXH3-64 of the extents' bytes of data, one after the other. */
static uint64_t extents_hash(const struct cfs_extents *x, const uint8_t *data)
{
	XXH3_state_t *st = XXH3_createState();
	XXH3_64bits_reset(st);
	for (uint32_t i = 0; i < x->n; i++)
		XXH3_64bits_update(st, data + x->v[i].lo, x->v[i].hi - x->v[i].lo);
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

static GBytes *header_bytes(const struct cfs_spill_id *id, const struct cfs_extents *extents,
			    uint32_t raw_len, size_t stored_len, bool packed, uint64_t checksum)
{
	size_t name_len = strlen(id->name), etag_len = strlen(id->etag);
	size_t header = FIXED + name_len + etag_len + 8 * (size_t)extents->n + SUM;
	uint8_t *buf = g_malloc0(header);
	memcpy(buf, MAGIC, 8);
	put16(buf + 8, VERSION);
	put16(buf + 10, packed ? FLAG_ZSTD : 0);
	put32(buf + 12, (uint32_t)header);
	put64(buf + 16, id->index);
	put64(buf + 24, id->object_size);
	put32(buf + 32, id->len);
	put32(buf + 36, extents->n);
	put32(buf + 40, raw_len);
	put32(buf + 44, (uint32_t)stored_len);
	put16(buf + 48, (uint16_t)name_len);
	put16(buf + 50, (uint16_t)etag_len);
	put64(buf + 56, checksum);
	uint8_t *p = buf + FIXED;
	memcpy(p, id->name, name_len);
	memcpy(p + name_len, id->etag, etag_len);
	p += name_len + etag_len;
	for (uint32_t i = 0; i < extents->n; i++, p += 8) {
		put32(p, extents->v[i].lo);
		put32(p + 4, extents->v[i].hi);
	}
	put64(buf + header - SUM, XXH3_64bits(buf, header - SUM));
	return g_bytes_new_take(buf, header);
}

bool cfs_spill_id_fits(const struct cfs_spill_id *id)
{
	return strlen(id->name) <= CFS_SPILL_TEXT_MAX && strlen(id->etag) <= CFS_SPILL_TEXT_MAX;
}

void cfs_spill_prepare(const struct cfs_spill_id *id, const struct cfs_extents *extents,
		       const uint8_t *data, bool compress, struct cfs_spill_file *out)
{
	uint32_t raw_len = cfs_extents_bytes(extents);
	*out = (struct cfs_spill_file){ 0 };
	if (compress) {
		uint8_t *raw = gather_payload(extents, data, raw_len);
		out->packed = shrink(raw, raw_len, &out->packed_len);
		g_free(raw);
	}
	uint64_t sum = out->packed ? XXH3_64bits(out->packed, out->packed_len)
				   : extents_hash(extents, data);
	size_t stored = out->packed ? out->packed_len : raw_len;
	out->header = header_bytes(id, extents, raw_len, stored, out->packed != NULL, sum);
}

void cfs_spill_file_clear(struct cfs_spill_file *f)
{
	if (f->header)
		g_bytes_unref(f->header);
	g_free(f->packed);
	*f = (struct cfs_spill_file){ 0 };
}

GBytes *cfs_spill_encode(const struct cfs_spill_id *id, const struct cfs_extents *extents,
			 const uint8_t *data, bool compress)
{
	struct cfs_spill_file f;
	cfs_spill_prepare(id, extents, data, compress, &f);
	gsize header;
	const uint8_t *h = g_bytes_get_data(f.header, &header);
	size_t payload = f.packed ? f.packed_len : cfs_extents_bytes(extents);
	uint8_t *buf = g_malloc(header + payload);
	memcpy(buf, h, header);
	if (f.packed)
		memcpy(buf + header, f.packed, f.packed_len);
	else
		gather_into(extents, data, buf + header);
	cfs_spill_file_clear(&f);
	return g_bytes_new_take(buf, header + payload);
}

#define invalid(error, ...) \
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, __VA_ARGS__)

/* The fixed fields, and the header's length and checksum; *need when more bytes are needed. */
static bool check_header(const uint8_t *buf, size_t len, uint64_t file_len, size_t *need,
			 GError **error)
{
	*need = 0;
	if (len < FIXED || memcmp(buf, MAGIC, 8) != 0) {
		invalid(error, "not a chunkfs block file");
		return false;
	}
	if (get16(buf + 8) != VERSION || (get16(buf + 10) & ~FLAG_ZSTD)) {
		invalid(error, "block file version %u, flags %#x", get16(buf + 8), get16(buf + 10));
		return false;
	}
	uint64_t header = get32(buf + 12);
	uint64_t want = FIXED + (uint64_t)get16(buf + 48) + get16(buf + 50) +
			8 * (uint64_t)get32(buf + 36) + SUM;
	if (header != want || header + get32(buf + 44) != file_len) {
		invalid(error, "truncated or malformed (%" G_GUINT64_FORMAT " bytes, the header says "
			"%" G_GUINT64_FORMAT ")", file_len, header + get32(buf + 44));
		return false;
	}
	if (header > len) {
		*need = header;
		return false;
	}
	if (XXH3_64bits(buf, header - SUM) != get64(buf + header - SUM)) {
		invalid(error, "header checksum mismatch");
		return false;
	}
	return true;
}

static bool same_text(const uint8_t *p, size_t n, const char *text)
{
	return strlen(text) == n && memcmp(p, text, n) == 0;
}

/* The block the header names must be the one wanted. */
static bool check_id(const uint8_t *buf, const struct cfs_spill_id *id, GError **error)
{
	uint16_t name_len = get16(buf + 48), etag_len = get16(buf + 50);
	if (!same_text(buf + FIXED, name_len, id->name) || get64(buf + 16) != id->index ||
	    get64(buf + 24) != id->object_size || get32(buf + 32) != id->len) {
		invalid(error, "holds another block (another object, size or index)");
		return false;
	}
	if (!same_text(buf + FIXED + name_len, etag_len, id->etag)) {
		invalid(error, "holds the block of another version of the object (ETag)");
		return false;
	}
	return true;
}

/* The extents, sorted, disjoint and inside the block, adding up to the payload. */
static bool read_extents(const uint8_t *buf, uint32_t block_len, struct cfs_extents *out,
			 GError **error)
{
	uint32_t n = get32(buf + 36);
	const uint8_t *p = buf + FIXED + get16(buf + 48) + get16(buf + 50);
	uint64_t total = 0, prev = 0;
	for (uint32_t i = 0; i < n; i++, p += 8) {
		uint32_t lo = get32(p), hi = get32(p + 4);
		if (lo >= hi || hi > block_len || (i > 0 && lo <= prev)) {
			invalid(error, "extent %u [%u, %u) is out of order or out of the block", i,
				lo, hi);
			cfs_extents_clear(out);
			return false;
		}
		cfs_extents_add(out, lo, hi);
		total += hi - lo;
		prev = hi;
	}
	bool raw = !(get16(buf + 10) & FLAG_ZSTD);
	if (total != get32(buf + 40) || (raw && total != get32(buf + 44))) {
		invalid(error, "extents hold %" G_GUINT64_FORMAT " bytes, the header says %u", total,
			get32(buf + 40));
		cfs_extents_clear(out);
		return false;
	}
	return true;
}

bool cfs_spill_read_header(const uint8_t *buf, size_t len, uint64_t file_len,
			   const struct cfs_spill_id *id, struct cfs_spill_layout *out,
			   size_t *need, GError **error)
{
	memset(out, 0, sizeof(*out));
	if (!check_header(buf, len, file_len, need, error))
		return false;
	if (!check_id(buf, id, error) || !read_extents(buf, id->len, &out->extents, error))
		return false;
	out->header = get32(buf + 12);
	out->compressed = get16(buf + 10) & FLAG_ZSTD;
	out->raw = get32(buf + 40);
	out->stored = get32(buf + 44);
	out->checksum = get64(buf + 56);
	return true;
}

void cfs_spill_layout_clear(struct cfs_spill_layout *l)
{
	cfs_extents_clear(&l->extents);
}

bool cfs_spill_check_raw(const struct cfs_spill_layout *l, const uint8_t *data, GError **error)
{
	bool ok = extents_hash(&l->extents, data) == l->checksum;
	if (!ok)
		invalid(error, "payload checksum mismatch");
	return ok;
}

/* Place a raw payload's extents where they belong in data. */
static void place_raw(const struct cfs_spill_layout *l, const uint8_t *payload, uint8_t *data)
{
	for (uint32_t i = 0; i < l->extents.n; i++) {
		memcpy(data + l->extents.v[i].lo, payload, l->extents.v[i].hi - l->extents.v[i].lo);
		payload += l->extents.v[i].hi - l->extents.v[i].lo;
	}
}

bool cfs_spill_unpack(const struct cfs_spill_layout *l, const uint8_t *payload, uint8_t *data,
		      GError **error)
{
	if (XXH3_64bits(payload, l->stored) != l->checksum) {
		invalid(error, "payload checksum mismatch");
		return false;
	}
	uint8_t *raw = g_malloc(MAX(l->raw, 1));
	size_t n = ZSTD_decompress(raw, l->raw, payload, l->stored);
	bool ok = !ZSTD_isError(n) && n == l->raw;
	if (!ok)
		invalid(error, "compressed payload does not decompress to %u bytes", l->raw);
	if (ok)
		place_raw(l, raw, data);
	g_free(raw);
	return ok;
}

bool cfs_spill_decode(const uint8_t *buf, size_t len, const struct cfs_spill_id *id,
		      uint8_t *data, struct cfs_extents *extents, GError **error)
{
	struct cfs_spill_layout l;
	size_t need;
	if (!cfs_spill_read_header(buf, len, len, id, &l, &need, error))
		return false;
	const uint8_t *payload = buf + l.header;
	uint8_t *scratch = g_malloc(MAX(id->len, 1));
	bool ok;
	if (l.compressed) {
		ok = cfs_spill_unpack(&l, payload, scratch, error);
	} else {
		place_raw(&l, payload, scratch);
		ok = cfs_spill_check_raw(&l, scratch, error);
	}
	for (uint32_t i = 0; ok && i < l.extents.n; i++) {
		memcpy(data + l.extents.v[i].lo, scratch + l.extents.v[i].lo,
		       l.extents.v[i].hi - l.extents.v[i].lo);
		cfs_extents_add(extents, l.extents.v[i].lo, l.extents.v[i].hi);
	}
	g_free(scratch);
	cfs_spill_layout_clear(&l);
	return ok;
}
