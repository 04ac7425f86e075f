/* The ring of recent failures behind .chunkfs/errors. */
#include "util/errors.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/stats.h"

struct failure {
	gint64 time_us;   /* wall clock, microseconds since the epoch */
	char *object;     /* escaped, cut */
	uint64_t offset, length;
	int err;          /* negative errno */
	char *cause;      /* escaped, cut */
};

static GMutex ring_lock;  /* guards the three below */
static struct failure ring[CFS_ERRORS_KEPT];
static unsigned ring_next;   /* where the next failure goes */
static unsigned ring_used;

static const char *errno_name(int err)
{
	return strerrorname_np(-err) ?: "EUNKNOWN";
}

/*
 * text escaped and cut to CFS_ERRORS_TEXT_MAX bytes, at a character
 * boundary: remote text chooses its length, the ring's size must not
 * depend on it.
 */
static char *kept_text(const char *text)
{
	char *escaped = cfs_log_escape(text);
	size_t len = strlen(escaped);
	if (len > CFS_ERRORS_TEXT_MAX) {
		char *cut = g_utf8_find_prev_char(escaped, escaped + CFS_ERRORS_TEXT_MAX + 1);
		*cut = '\0';
	}
	return escaped;
}

static void record(const char *object, uint64_t offset, uint64_t length, int err,
		   const char *cause)
{
	struct failure f = { g_get_real_time(), kept_text(object), offset, length, err,
			     kept_text(cause) };
	g_mutex_lock(&ring_lock);
	struct failure old = ring[ring_next];
	ring[ring_next] = f;
	ring_next = (ring_next + 1) % CFS_ERRORS_KEPT;
	ring_used = MIN(ring_used + 1, CFS_ERRORS_KEPT);
	g_mutex_unlock(&ring_lock);
	g_free(old.object);
	g_free(old.cause);
	cfs_stats_add(CFS_ERRORS, 1);
}

void cfs_errors_report(const char *object, uint64_t offset, uint64_t length, int err,
		       const char *cause, ...)
{
	va_list ap;
	va_start(ap, cause);
	char *why = g_strdup_vprintf(cause, ap);
	va_end(ap);
	if (length)
		g_warning("%s bytes %" PRIu64 "-%" PRIu64 ": %s (%s)", object, offset,
			  offset + length - 1, why, errno_name(err));
	else
		g_warning("%s: %s (%s)", object, why, errno_name(err));
	record(object, offset, length, err, why);
	g_free(why);
}

/* RFC 3339 in UTC with milliseconds: 2026-12-06T10:11:12.345Z. */
static void append_time(GString *out, gint64 time_us)
{
	time_t secs = (time_t)(time_us / G_USEC_PER_SEC);
	struct tm tm;
	char stamp[32];
	gmtime_r(&secs, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	g_string_append_printf(out, "%s.%03dZ", stamp, (int)(time_us % G_USEC_PER_SEC / 1000));
}

static void append_failure(GString *out, const struct failure *f)
{
	append_time(out, f->time_us);
	g_string_append_printf(out, "\t%s\t", f->object);
	if (f->length)
		g_string_append_printf(out, "%" PRIu64 "-%" PRIu64, f->offset,
				       f->offset + f->length - 1);
	else
		g_string_append_c(out, '-');
	g_string_append_printf(out, "\t%s\t%s\n", errno_name(f->err), f->cause);
}

char *cfs_errors_render(uint64_t *len)
{
	GString *out = g_string_new("time\tobject\trange\terrno\tcause\n");
	g_mutex_lock(&ring_lock);
	unsigned first = (ring_next + CFS_ERRORS_KEPT - ring_used) % CFS_ERRORS_KEPT;
	for (unsigned i = 0; i < ring_used; i++)
		append_failure(out, &ring[(first + i) % CFS_ERRORS_KEPT]);
	g_mutex_unlock(&ring_lock);
	*len = out->len;
	return g_string_free(out, FALSE);
}
