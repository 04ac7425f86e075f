/* Streams that decompress zstd objects while their compressed pieces arrive. */
#include "cache/zstream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <zstd.h>

#include "util/errors.h"
#include "tree/object.h"
#include "util/stats.h"

/* The first piece is small so that a chunk's header and first items come out early. */
#define FIRST_PIECE (UINT64_C(64) << 10)
/* Pieces double up to this: large enough for few requests, small enough to decode as they land. */
#define MAX_PIECE (UINT64_C(8) << 20)
/* The longest frame header, RFC 8878 section 3.1.1.1: magic, descriptor, window, ID, size. */
#define FRAME_HEADER_MAX (4 + 1 + 1 + 4 + 8)
/* zstd's default limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT); larger windows are refused. */
#define WINDOW_LOG_LIMIT 27
/* zstd's smallest window (ZSTD_WINDOWLOG_MIN), for the smallest caps. */
#define WINDOW_LOG_FLOOR 10
/* A frame's window may take at most 1/N of the memory cap: the blocks need the rest. */
#define WINDOW_CAP_DIVISOR 4

/* What a failure says about the object. */
enum harm {
	PASSING,    /* the network: a later attempt may do */
	BAD_AFTER,  /* the data from the stream's position on: what came before was right */
	BAD_WHOLE,  /* the object (changed, gone) */
};

struct stream {
	struct cfs_zstd *z;
	struct cfs_object *obj;  /* the decompressed object; obj->compressed is fetched */
	ZSTD_DStream *ds;
	uint64_t reserved;       /* bytes of decoder state accounted to the sink */

	/* Guarded by z->lock. */
	uint64_t pos;            /* decompressed bytes delivered */
	uint64_t target;         /* decompress up to here */
	uint64_t demand_end;     /* readers wait for bytes up to here */
	uint64_t cpos;           /* compressed bytes asked for so far */
	uint64_t piece;          /* length of the next piece */
	bool fetching;           /* a piece is in flight */
	bool broken;             /* failed: not to be picked by new wants */
	uint64_t last_use;
	GList link;              /* in z->streams */

	/*
	 * The fetcher thread running its piece only: one piece at a time, each
	 * handed to the next (maybe in another fetcher thread) under z->lock.
	 */
	size_t frame_left;       /* last ZSTD_decompressStream() hint: 0 at the end of a frame */
	uint8_t header[FRAME_HEADER_MAX]; /* the next frame's header, as far as it came */
	size_t header_len;
	int error;               /* negative errno once decoding or a check failed */
	enum harm harm;
};

struct cfs_zstd {
	struct cfs_source source;
	const struct cfs_zstd_sink *sink;
	void *ctx;
	int window_log_max;

	GMutex lock;
	GQueue streams;          /* struct stream */
	uint64_t tick;
};

static const struct cfs_fetch_ops piece_ops;

static struct stream *stream_new(struct cfs_zstd *z, struct cfs_object *obj)
{
	struct stream *s = g_new0(struct stream, 1);
	s->z = z;
	s->obj = obj;
	s->ds = ZSTD_createDStream();
	ZSTD_DCtx_setParameter(s->ds, ZSTD_d_windowLogMax, z->window_log_max);
	s->piece = FIRST_PIECE;
	s->link.data = s;
	g_queue_push_tail_link(&z->streams, &s->link);
	cfs_stats_gauge_add(CFS_ZSTD_STREAMS, 1);
	return s;
}

/* Called without z->lock: the sink's release may take its own lock. */
static void stream_free(struct stream *s)
{
	if (s->reserved)
		s->z->sink->release(s->z->ctx, s->reserved);
	ZSTD_freeDStream(s->ds);
	cfs_stats_gauge_add(CFS_ZSTD_STREAMS, -1);
	g_free(s);
}

/* The stream of obj that has come furthest without passing off, or NULL. */
static struct stream *pick(struct cfs_zstd *z, const struct cfs_object *obj, uint64_t off)
{
	struct stream *best = NULL;
	for (GList *l = z->streams.head; l; l = l->next) {
		struct stream *s = l->data;
		if (s->obj == obj && !s->broken && s->pos <= off && (!best || s->pos > best->pos))
			best = s;
	}
	return best;
}

/* Ask for the next compressed piece if the stream is short of its target. Under z->lock. */
static void kick(struct cfs_zstd *z, struct stream *s)
{
	uint64_t csize = s->obj->compressed->size;
	if (s->fetching || s->broken || s->pos >= s->target || s->cpos >= csize)
		return;
	uint64_t end = MIN(csize, s->cpos + s->piece);
	enum cfs_fetch_priority prio = s->pos < s->demand_end ? CFS_FETCH_DEMAND
							      : CFS_FETCH_READAHEAD;
	s->fetching = true;
	z->source.ops->submit(z->source.src, s->obj->compressed, s->cpos, end, prio, &piece_ops, s);
	s->cpos = end;
	s->piece = MIN(s->piece * 2, MAX_PIECE);
}

void cfs_zstd_want(struct cfs_zstd *z, struct cfs_object *obj, uint64_t off, uint64_t end,
		   enum cfs_fetch_priority prio)
{
	g_return_if_fail(obj->compressed->size > 0);
	g_mutex_lock(&z->lock);
	struct stream *s = pick(z, obj, off);
	if (!s)
		s = stream_new(z, obj);
	s->target = MAX(s->target, end);
	if (prio == CFS_FETCH_DEMAND)
		s->demand_end = MAX(s->demand_end, end);
	s->last_use = ++z->tick;
	kick(z, s);
	g_mutex_unlock(&z->lock);
}

bool cfs_zstd_forget(struct cfs_zstd *z, const struct cfs_object *obj)
{
	GSList *gone = NULL;
	bool busy = false;
	g_mutex_lock(&z->lock);
	for (GList *l = z->streams.head; l;) {
		struct stream *s = l->data;
		l = l->next;
		if (s->obj == obj && s->fetching) {
			busy = true;
		} else if (s->obj == obj) {
			g_queue_unlink(&z->streams, &s->link);
			gone = g_slist_prepend(gone, s);
		}
	}
	g_mutex_unlock(&z->lock);
	g_slist_free_full(gone, (GDestroyNotify)stream_free);
	return !busy;
}

/* Record the first failure of the stream; later pieces are ignored. */
static void fail(struct stream *s, int err, enum harm harm)
{
	if (s->error)
		return;
	s->error = err;
	s->harm = harm;
}

/*
 * The object's data is bad from the stream's position on: fail the
 * stream, and say so once per object (later streams that reach the same
 * place find the same fault).
 */
static void G_GNUC_PRINTF(2, 3) bad_data(struct stream *s, const char *fmt, ...)
{
	if (s->error)
		return;
	fail(s, -EIO, BAD_AFTER);
	if (!g_atomic_int_compare_and_exchange(&s->obj->bad_logged, 0, 1))
		return;
	va_list ap;
	va_start(ap, fmt);
	char *why = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	cfs_errors_report(s->obj->name, s->pos, s->obj->size - MIN(s->pos, s->obj->size), -EIO,
			  "%s: %s; EIO from here on", s->obj->compressed->name, why);
	g_free(why);
}

static int piece_on_response(void *ctx, const struct cfs_response_info *info)
{
	struct stream *s = ctx;
	int err = cfs_object_check_response(s->obj->compressed, info);
	if (err)
		fail(s, err, BAD_WHOLE);
	return err;
}

/* Drop every idle stream but keep: their windows are the memory another one needs. */
static void drop_idle(struct cfs_zstd *z, const struct stream *keep)
{
	GSList *gone = NULL;
	g_mutex_lock(&z->lock);
	for (GList *l = z->streams.head; l;) {
		struct stream *s = l->data;
		l = l->next;
		if (s != keep && !s->fetching) {
			g_queue_unlink(&z->streams, &s->link);
			gone = g_slist_prepend(gone, s);
		}
	}
	g_mutex_unlock(&z->lock);
	g_slist_free_full(gone, (GDestroyNotify)stream_free);
}

/*
 * Account the decoder's memory (its window is allocated at the frame
 * header), dropping idle streams when the cap has no room for it.
 */
static bool reserve_state(struct stream *s)
{
	size_t size = ZSTD_sizeof_DStream(s->ds);
	if (size <= s->reserved)
		return true;
	bool ok = s->z->sink->reserve(s->z->ctx, size - s->reserved);
	if (!ok) {
		drop_idle(s->z, s);
		ok = s->z->sink->reserve(s->z->ctx, size - s->reserved);
	}
	if (!ok) {
		if (!s->error)
			g_warning("%s: decoding needs %zu KiB, which the memory cap cannot hold now",
				  s->obj->name, size >> 10);
		fail(s, -EIO, PASSING);
		return false;
	}
	s->reserved = size;
	return true;
}

static bool emit(struct stream *s, const uint8_t *buf, size_t len)
{
	if (s->pos + len > s->obj->size) {
		bad_data(s, "decompresses to more than the index's %" PRIu64 " bytes",
			 s->obj->size);
		return false;
	}
	s->z->sink->deliver(s->z->ctx, s->obj, s->pos, buf, len);
	cfs_stats_add(CFS_DECOMPRESSED_BYTES, len);
	g_mutex_lock(&s->z->lock);
	s->pos += len;
	g_mutex_unlock(&s->z->lock);
	return true;
}

/*
 * The output buffer of ZSTD_decompressStream(), one per fetcher thread
 * (pieces of different streams are decompressed at once by several), of
 * ZSTD_DStreamOutSize() bytes.
 */
static GPrivate out_buffer = G_PRIVATE_INIT(g_free);

static uint8_t *thread_out_buffer(void)
{
	uint8_t *buf = g_private_get(&out_buffer);
	if (!buf) {
		buf = g_malloc(ZSTD_DStreamOutSize());
		g_private_set(&out_buffer, buf);
	}
	return buf;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool skippable_magic(const uint8_t *p)
{
	return (le32(p) & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START;
}

/*
 * The length of the frame header whose first have bytes are h, as far as
 * they tell: 4 until the magic number is in, 8 for a skippable frame (RFC
 * 8878 section 3.1.2), 5 until the descriptor is in, then what the
 * descriptor says (section 3.1.1.1): no window descriptor in a single
 * segment, a dictionary ID of 0-4 bytes, a content size of 0-8 bytes.
 */
static size_t header_need(const uint8_t *h, size_t have)
{
	static const uint8_t id_len[4] = { 0, 1, 2, 4 }, size_len[4] = { 0, 2, 4, 8 };
	if (have < 4)
		return 4;
	if (skippable_magic(h))
		return 8;
	if (have < 5)
		return 5;
	bool single = h[4] & 0x20;
	return 5 + !single + id_len[h[4] & 3] + (h[4] >> 6 ? size_len[h[4] >> 6] : single);
}

/*
 * At a frame's start: gather its whole header from in (over pieces if it
 * is cut), refusing any magic number but RFC 8878's. libzstd also takes
 * frames of its pre-1.0 formats, but only when their magic number starts
 * the bytes of one call, and when a header it gathered over calls is bad
 * it looks for one at the start of the call that completed it: the same
 * object would decode or fail depending on how the network cut it. Handed
 * whole, a header is judged from its own first bytes. False when more
 * bytes are needed or the frame is refused.
 */
static bool gather_header(struct stream *s, ZSTD_inBuffer *in, uint64_t off)
{
	size_t need = header_need(s->header, s->header_len);
	while (s->header_len < need && in->pos < in->size) {
		size_t n = MIN(need - s->header_len, in->size - in->pos);
		memcpy(s->header + s->header_len, (const uint8_t *)in->src + in->pos, n);
		s->header_len += n;
		in->pos += n;
		if (s->header_len == 4 && le32(s->header) != ZSTD_MAGICNUMBER &&
		    !skippable_magic(s->header)) {
			bad_data(s, "no zstd frame (RFC 8878) before compressed byte %" PRIu64,
				 off + in->pos);
			return false;
		}
		need = header_need(s->header, s->header_len);
	}
	return s->header_len == need;
}

static void piece_on_data(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct stream *s = ctx;
	uint8_t *outbuf = thread_out_buffer();
	ZSTD_inBuffer in = { buf, len, 0 };
	while (!s->error) {
		ZSTD_inBuffer header, *src = &in;
		if (s->frame_left == 0) {
			if (!gather_header(s, &in, off))
				break;
			header = (ZSTD_inBuffer){ s->header, s->header_len, 0 };
			s->header_len = 0;
			src = &header;
		}
		ZSTD_outBuffer out = { outbuf, ZSTD_DStreamOutSize(), 0 };
		size_t ret = ZSTD_decompressStream(s->ds, &out, src);
		if (ZSTD_isError(ret)) {
			bad_data(s, "bad zstd data near compressed byte %" PRIu64 ": %s",
				 off + in.pos, ZSTD_getErrorName(ret));
			break;
		}
		s->frame_left = ret;
		if (!reserve_state(s) || (out.pos && !emit(s, outbuf, out.pos)))
			break;
		if (in.pos == in.size && out.pos < out.size)
			break; /* all input used and all output flushed */
	}
}

/* The compressed object ended: the frames must have ended with it, at the index's size. */
static void check_end(struct stream *s)
{
	if (s->error)
		return;
	if (s->frame_left != 0 || s->header_len != 0)
		bad_data(s, "the last zstd frame is truncated");
	else if (s->pos != s->obj->size)
		bad_data(s, "decompresses to %" PRIu64 " bytes, the index says %" PRIu64, s->pos,
			 s->obj->size);
}

/* Unlink idle streams beyond the limit, least recently used first. Under z->lock. */
static GSList *trim_idle(struct cfs_zstd *z)
{
	GSList *gone = NULL;
	guint idle = 0;
	for (GList *l = z->streams.head; l; l = l->next)
		idle += !((struct stream *)l->data)->fetching;
	while (idle > CFS_ZSTD_IDLE_MAX) {
		struct stream *oldest = NULL;
		for (GList *l = z->streams.head; l; l = l->next) {
			struct stream *s = l->data;
			if (!s->fetching && (!oldest || s->last_use < oldest->last_use))
				oldest = s;
		}
		g_queue_unlink(&z->streams, &oldest->link);
		gone = g_slist_prepend(gone, oldest);
		idle--;
	}
	return gone;
}

static void piece_on_done(void *ctx, int err)
{
	struct stream *s = ctx;
	struct cfs_zstd *z = s->z;
	if (err)
		fail(s, err, err == -ENOENT ? BAD_WHOLE : PASSING);
	bool last = !s->error && s->cpos >= s->obj->compressed->size;
	if (last)
		check_end(s);
	g_mutex_lock(&z->lock);
	s->fetching = false;
	bool ended = s->error || last;
	if (ended) {
		s->broken = true;
		g_queue_unlink(&z->streams, &s->link);
	} else {
		kick(z, s);
	}
	GSList *gone = trim_idle(z);
	g_mutex_unlock(&z->lock);
	g_slist_free_full(gone, (GDestroyNotify)stream_free);
	/*
	 * A stream that goes on is no longer this thread's: its next piece may
	 * already run in another fetcher thread, or an idle one be dropped.
	 */
	if (!ended)
		return;
	if (s->error)
		z->sink->failed(z->ctx, s->obj, s->harm == BAD_WHOLE ? 0 : s->pos, s->error,
				s->harm != PASSING);
	stream_free(s);
}

static const struct cfs_fetch_ops piece_ops = {
	.on_response = piece_on_response,
	.on_data = piece_on_data,
	.on_done = piece_on_done,
};

/* The largest window a frame may ask for: a quarter of the cap, within zstd's limits. */
static int window_log_max(uint64_t cap)
{
	int log = 63 - __builtin_clzll(MAX(cap / WINDOW_CAP_DIVISOR, 1));
	return CLAMP(log, WINDOW_LOG_FLOOR, WINDOW_LOG_LIMIT);
}

struct cfs_zstd *cfs_zstd_new(const struct cfs_source *source, const struct cfs_zstd_sink *sink,
			      void *sink_ctx, uint64_t cap)
{
	struct cfs_zstd *z = g_new0(struct cfs_zstd, 1);
	z->source = *source;
	z->sink = sink;
	z->ctx = sink_ctx;
	z->window_log_max = window_log_max(cap);
	g_mutex_init(&z->lock);
	g_queue_init(&z->streams);
	return z;
}

void cfs_zstd_free(struct cfs_zstd *z)
{
	if (!z)
		return;
	GList *l;
	/* The links are the streams' own: g_queue_pop_head() would free one to GSlice. */
	while ((l = g_queue_pop_head_link(&z->streams))) {
		struct stream *s = l->data;
		g_warn_if_fail(!s->fetching);
		stream_free(s);
	}
	g_mutex_clear(&z->lock);
	g_free(z);
}
