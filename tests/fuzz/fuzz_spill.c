/*
 * libFuzzer target of the spill tier's block files. The input both is read
 * as a block file (anything must be refused or decoded without a fault) and
 * describes a block: mode byte (bit 0: compress), a uint16 LE byte to flip
 * (0xffff: none), an extent count (at most 8) and uint16 LE pairs (start,
 * length) inside a 4 KiB block, then the block's bytes (repeated to fill
 * it). That block is encoded and decoded back: untouched it must come back
 * whole; with any byte of its file flipped it must be refused. Both files
 * are also read as the spill tier reads one: a short probe of the header,
 * then as many bytes as it asks for.
 */
#include <gio/gio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "spill/spillfmt.h"

#define LEN 4096
/* Shorter than most headers here, so that the second read is taken. */
#define PROBE 80

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct cfs_spill_id id = { "fuzz/object.bin", "\"etag\"", 5 * LEN, 3, LEN };

static uint16_t u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* The header of the file data[0, size) read from a probe, then whole; whether it was accepted. */
static bool probe_header(const uint8_t *data, size_t size)
{
	struct cfs_spill_layout l;
	size_t len = size < PROBE ? size : PROBE, need;
	GError *err = NULL;
	bool ok = cfs_spill_read_header(data, len, size, &id, &l, &need, &err);
	if (!ok && !err) {
		if (need <= len || need > size)
			abort(); /* asked for bytes it had, or that the file lacks */
		ok = cfs_spill_read_header(data, need, size, &id, &l, &need, &err);
		if (!ok && !err)
			abort(); /* the whole header must decide */
	}
	if (ok)
		cfs_spill_layout_clear(&l);
	else
		g_error_free(err);
	return ok;
}

static void decode_raw(const uint8_t *data, size_t size)
{
	probe_header(data, size);
	uint8_t *copy = g_memdup2(data, size), *block = g_malloc0(LEN);
	struct cfs_extents got = { 0 };
	GError *err = NULL;
	if (!cfs_spill_decode(copy, size, &id, block, &got, &err))
		g_error_free(err);
	for (uint32_t i = 0; i < got.n; i++)
		if (got.v[i].lo >= got.v[i].hi || got.v[i].hi > LEN)
			abort();
	cfs_extents_clear(&got);
	g_free(block);
	g_free(copy);
}

/* The block the input describes; returns false when it is too short to describe one. */
static bool describe(const uint8_t *data, size_t size, uint8_t *block, struct cfs_extents *x)
{
	if (size < 4)
		return false;
	unsigned n = data[3] % 9;
	const uint8_t *p = data + 4;
	if (size < 4 + 4 * (size_t)n + 1)
		return false;
	for (unsigned i = 0; i < n; i++, p += 4) {
		uint32_t lo = u16(p) % LEN, len = u16(p + 2) % (LEN - lo) + 1;
		cfs_extents_add(x, lo, lo + len);
	}
	/* The bytes repeated: block[i] = p[i % rest], copied in doubling runs, not a byte a turn. */
	size_t rest = MIN(size - (size_t)(p - data), LEN);
	memcpy(block, p, rest);
	for (size_t filled = rest; filled < LEN; filled *= 2)
		memcpy(block + filled, block, MIN(filled, LEN - filled));
	return true;
}

static void roundtrip(const uint8_t *data, size_t size)
{
	uint8_t *block = g_malloc(LEN), *back = g_malloc0(LEN);
	struct cfs_extents x = { 0 }, got = { 0 };
	if (describe(data, size, block, &x)) {
		GBytes *file = cfs_spill_encode(&id, &x, block, data[0] & 1);
		gsize len;
		const uint8_t *bytes = g_bytes_get_data(file, &len);
		uint8_t *copy = g_memdup2(bytes, len);
		uint16_t flip = u16(data + 1);
		bool flipped = flip != 0xffff && flip < len;
		if (flipped)
			copy[flip] ^= 0x5a;
		if (!probe_header(copy, len) && !flipped)
			abort(); /* a good file's header was refused */
		GError *err = NULL;
		bool ok = cfs_spill_decode(copy, len, &id, back, &got, &err);
		if (ok == flipped)
			abort(); /* a flipped byte got through, or a good file was refused */
		for (uint32_t i = 0; ok && i < x.n; i++)
			if (memcmp(back + x.v[i].lo, block + x.v[i].lo, x.v[i].hi - x.v[i].lo) != 0 ||
			    !cfs_extents_covers(&got, x.v[i].lo, x.v[i].hi))
				abort();
		if (err)
			g_error_free(err);
		g_free(copy);
		g_bytes_unref(file);
	}
	cfs_extents_clear(&x);
	cfs_extents_clear(&got);
	g_free(block);
	g_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode_raw(data, size);
	roundtrip(data, size);
	return 0;
}
