/*
 * libFuzzer target: the zstd streams (zstream.c) decompressing a remote
 * object as its pieces arrive, behind a fetcher of this file that serves
 * the compressed bytes from the input in slices of sizes the input chooses.
 * Input:
 *   byte 0     flags: bit 0 the first response gives a wrong object size;
 *              bit 1 the first request stops half-way with -EIO; bits 2-3
 *              the memory the sink grants the streams (all of the cap,
 *              256 KiB, 1 MiB, none); bits 4-7 n: the payload is repeated
 *              1 + 4n times (frames follow frames: several pieces)
 *   bytes 1-3  the decompressed size the index declares (low 20 bits)
 *   bytes 4-9  three wants (start, end) in 256ths of that size
 *   byte 10    the seed of the slice sizes and of how many pieces land
 *              between wants
 *   then       the payload: zstd frames, or anything
 * The streams' output is checked against libzstd decompressing the whole
 * object (all that it gives fed a byte at a time) with the window limit
 * zstream.h documents (a quarter of the cap): every byte delivered must be
 * libzstd's, at its offset, within the declared size; every want must end
 * delivered or failed (never left waiting); a good object must come out
 * whole with no failure; and every byte of memory reserved must be
 * released.
 */
#include <errno.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_frameHeaderSize(), ZSTD_nextSrcSizeToDecompress() */
#include <zstd.h>

#include "tree/object.h"
#include "cache/source.h"
#include "cache/zstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP (UINT64_C(64) << 20)
#define WINDOW_LOG_MAX 24 /* log2(CAP / 4) */
#define PREFIX 11
#define N_WANTS 3
#define MAX_OBJECT (UINT64_C(8) << 20)

struct request {
	uint64_t start, end;
	const struct cfs_fetch_ops *ops;
	void *ctx;
};

/* One input's run. */
static struct run {
	uint8_t flags;
	const uint8_t *object; /* the compressed bytes */
	uint64_t csize;
	GByteArray *reference; /* libzstd's output, up to one byte past the declared size */
	bool reference_ok;     /* exactly the declared size, in whole frames */
	struct cfs_object *obj;
	GQueue requests;
	unsigned served;
	uint32_t rng;
	uint64_t delivered;    /* bytes [0, delivered) came out */
	unsigned failures;
	uint64_t reserved, budget;
	bool refused;
} run;

static uint32_t next_random(void)
{
	run.rng ^= run.rng << 13;
	run.rng ^= run.rng >> 17;
	run.rng ^= run.rng << 5;
	return run.rng;
}

/* The source of the streams: requests queue here until want_all() answers them. */
static void submit(void *src, const struct cfs_object *obj, uint64_t start, uint64_t end,
		   enum cfs_fetch_priority prio, const struct cfs_fetch_ops *ops, void *ctx)
{
	(void)src, (void)obj, (void)prio;
	if (start >= end || end > run.csize)
		abort(); /* an empty range, or one past the object */
	struct request *r = g_new(struct request, 1);
	*r = (struct request){ start, end, ops, ctx };
	g_queue_push_tail(&run.requests, r);
}

static void deliver(void *ctx, struct cfs_object *obj, uint64_t off, const void *buf, size_t len)
{
	(void)ctx;
	if (obj != run.obj || off > run.delivered || off + len > obj->size ||
	    off + len > run.reference->len || memcmp(run.reference->data + off, buf, len) != 0)
		abort(); /* a gap, past the size, or not what libzstd makes of the object */
	run.delivered = MAX(run.delivered, off + len);
}

static void failed(void *ctx, struct cfs_object *obj, uint64_t off, int err, bool permanent)
{
	(void)ctx;
	if (obj != run.obj || err >= 0 || (permanent && off > obj->size))
		abort();
	run.failures++;
}

static bool reserve(void *ctx, uint64_t bytes)
{
	(void)ctx;
	if (run.reserved + bytes > run.budget) {
		run.refused = true;
		return false;
	}
	run.reserved += bytes;
	return true;
}

static void release(void *ctx, uint64_t bytes)
{
	(void)ctx;
	if (bytes > run.reserved)
		abort();
	run.reserved -= bytes;
}

static const struct cfs_zstd_sink sink = { deliver, failed, reserve, release };

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * The length of the frame header at p, of the n bytes left (RFC 8878
 * sections 3.1.1.1 and 3.1.2); all n when it cannot be told, as when there
 * are fewer than 5.
 */
static uint64_t frame_header_len(const uint8_t *p, uint64_t n)
{
	if (n >= 4 && (le32(p) & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START)
		return ZSTD_SKIPPABLEHEADERSIZE;
	size_t len = ZSTD_frameHeaderSize(p, (size_t)n);
	return ZSTD_isError(len) ? n : len;
}

/* Feed d in, with all its output flushed (up to one byte past size): its last return value. */
static size_t reference_feed(ZSTD_DCtx *d, ZSTD_inBuffer *in, uint64_t size)
{
	static uint8_t out_buf[1 << 16];
	size_t ret = 0;
	bool full = true;
	while (!ZSTD_isError(ret) && run.reference->len <= size && (in->pos < in->size || full)) {
		ZSTD_outBuffer out = { out_buf, sizeof(out_buf), 0 };
		ret = ZSTD_decompressStream(d, &out, in);
		g_byte_array_append(run.reference, out_buf, (guint)out.pos);
		full = out.pos == out.size;
	}
	return ret;
}

/*
 * One pass of a new decoder over the object into run.reference: each
 * frame's header a byte at a time, then each block header, block, checksum
 * or skippable content in a call of its own, and from slow_from on a byte
 * at a time. Returns where the call that failed began when it had more
 * than a byte, else UINT64_MAX.
 */
static uint64_t reference_pass(uint64_t size, uint64_t slow_from)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, WINDOW_LOG_MAX);
	size_t ret = 0;
	uint64_t header_end = 0, step = 1, at;
	g_byte_array_set_size(run.reference, 0);
	for (at = 0; at < run.csize && run.reference->len <= size; at += step) {
		if (ret == 0)
			header_end = at + frame_header_len(run.object + at, run.csize - at);
		step = at < header_end || at >= slow_from ? 1 : ZSTD_nextSrcSizeToDecompress(d);
		step = MIN(MAX(step, 1), run.csize - at);
		ZSTD_inBuffer in = { run.object + at, (size_t)step, 0 };
		ret = reference_feed(d, &in, size);
		if (ZSTD_isError(ret))
			break;
	}
	run.reference_ok = run.csize > 0 && !ZSTD_isError(ret) && ret == 0 &&
			   run.reference->len == size;
	ZSTD_freeDCtx(d);
	return ZSTD_isError(ret) && step > 1 ? at : UINT64_MAX;
}

/*
 * libzstd's output for the whole object (up to one byte past size), and
 * whether it is exactly size bytes of whole frames: what libzstd gives
 * fed a byte at a time, which is the most any cutting of the object into
 * pieces can give. Fed a whole frame at once, libzstd decodes it in one
 * pass, all or nothing; fed a header's start with more, it may take a
 * pre-1.0 frame; when a call fails, the output of that call is lost, and
 * a raw block fed a byte at a time comes out up to the byte that fails.
 * So a pass feeds headers a byte at a time and the rest a unit a call
 * (far fewer calls); when a call of more than a byte failed, a second pass
 * (libzstd is deterministic) feeds from that call's start a byte at a time.
 */
static void decompress_reference(uint64_t size)
{
	run.reference = g_byte_array_new();
	uint64_t failed_at = reference_pass(size, UINT64_MAX);
	if (failed_at != UINT64_MAX)
		reference_pass(size, failed_at);
}

/* The fetcher's side of one request: the response, the body in slices, the end. */
static void serve(struct request *r)
{
	bool first = run.served++ == 0;
	struct cfs_response_info info = { run.csize + (first && (run.flags & 1)), NULL };
	int err = r->ops->on_response(r->ctx, &info);
	uint64_t end = first && (run.flags & 2) ? r->start + (r->end - r->start) / 2 : r->end;
	for (uint64_t off = r->start; !err && off < end;) {
		uint64_t slice = 1 + next_random() % 8192, len = MIN(end - off, slice);
		r->ops->on_data(r->ctx, off, run.object + off, (size_t)len);
		off += len;
	}
	r->ops->on_done(r->ctx, err ? err : end < r->end ? -EIO : 0);
	g_free(r);
}

static void serve_some(unsigned n)
{
	struct request *r;
	for (unsigned i = 0; i < n && (r = g_queue_pop_head(&run.requests)); i++)
		serve(r);
}

/* Every want is delivered or failed once no request is left; a good object never fails. */
static void check_wants(const uint64_t *ends, const unsigned *failures_before, unsigned n)
{
	bool faults = (run.flags & 3) || run.refused || !run.reference_ok;
	for (unsigned i = 0; i < n; i++)
		if (run.delivered < ends[i] && run.failures == failures_before[i])
			abort(); /* a reader of these bytes would wait for ever */
	if (!faults && run.failures)
		abort();
}

static void want_all(struct cfs_zstd *z, const uint8_t *spec)
{
	uint64_t ends[N_WANTS];
	unsigned failures_before[N_WANTS], n = 0;
	for (unsigned i = 0; i < N_WANTS; i++) {
		uint64_t start = run.obj->size * spec[2 * i] / 256;
		uint64_t end = run.obj->size * (spec[2 * i + 1] + 1u) / 256;
		if (start >= end || run.csize == 0)
			continue; /* an empty compressed object is never wanted (zstream.h) */
		ends[n] = end;
		failures_before[n++] = run.failures;
		cfs_zstd_want(z, run.obj, start, end, i ? CFS_FETCH_READAHEAD : CFS_FETCH_DEMAND);
		serve_some(next_random() % 3);
	}
	serve_some(UINT_MAX);
	check_wants(ends, failures_before, n);
}

static const uint64_t budgets[] = { CAP, 256 << 10, 1 << 20, 0 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < PREFIX)
		return 0;
	const uint8_t *payload = data + PREFIX;
	size_t payload_len = size - PREFIX, reps = 1 + (size_t)(data[0] >> 4) * 4;
	uint64_t declared = (data[1] | data[2] << 8 | (uint32_t)data[3] << 16) & 0xfffff;
	if (payload_len * reps > MAX_OBJECT)
		return 0;
	uint8_t *object = g_malloc(MAX(payload_len * reps, 1));
	for (size_t i = 0; i < reps; i++)
		memcpy(object + i * payload_len, payload, payload_len);
	run = (struct run){ .flags = data[0], .object = object, .csize = payload_len * reps,
			    .rng = 0x9e3779b9u ^ data[10], .budget = budgets[(data[0] >> 2) & 3] };
	g_queue_init(&run.requests);
	decompress_reference(declared);
	struct cfs_object *compressed = cfs_object_new(0, "fuzz.bin.zstd", "http://127.0.0.1/f",
						       run.csize);
	run.obj = cfs_object_new(1, "fuzz.bin", NULL, declared);
	run.obj->compressed = compressed;
	static const struct cfs_source_ops source_ops = { submit, NULL };
	const struct cfs_source source = { &source_ops, NULL };
	struct cfs_zstd *z = cfs_zstd_new(&source, &sink, NULL, CAP);
	want_all(z, data + 4);
	cfs_zstd_free(z);
	if (run.reserved)
		abort(); /* memory accounted to the cap and never given back */
	cfs_object_unref(run.obj); /* and compressed, which it holds */
	g_byte_array_free(run.reference, TRUE);
	g_free(object);
	return 0;
}
