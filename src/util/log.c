/*
 * One line per message: to the --log-file when there is one, else to
 * stderr in the foreground and to syslog once daemonized.
 */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

static bool log_debug;
static bool log_syslog;
static int log_fd = -1;

static int syslog_priority(GLogLevelFlags level)
{
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		return LOG_ERR;
	if (level & G_LOG_LEVEL_WARNING)
		return LOG_WARNING;
	if (level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO))
		return LOG_INFO;
	return LOG_DEBUG;
}

static const char *level_name(GLogLevelFlags level)
{
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		return "error";
	if (level & G_LOG_LEVEL_WARNING)
		return "warning";
	if (level & G_LOG_LEVEL_DEBUG)
		return "debug";
	return "info";
}

static const char *field(const GLogField *fields, gsize n, const char *key)
{
	for (gsize i = 0; i < n; i++)
		if (g_strcmp0(fields[i].key, key) == 0 && fields[i].length < 0)
			return fields[i].value;
	return NULL;
}

static void write_stderr_line(GLogLevelFlags level, const char *msg)
{
	GDateTime *now = g_date_time_new_now_local();
	char *stamp = g_date_time_format(now, "%H:%M:%S.%f");
	stamp[12] = '\0'; /* milliseconds */
	fprintf(stderr, "%s chunkfs[%s]: %s\n", stamp, level_name(level), msg);
	g_free(stamp);
	g_date_time_unref(now);
}

/*
 * A line of the log file: one write(2), so that with O_APPEND the lines of
 * several threads (or of several mounts sharing the file) never mix. A
 * failed write has nowhere to be reported and is dropped.
 */
static void write_file_line(GLogLevelFlags level, const char *msg)
{
	GDateTime *now = g_date_time_new_now_utc();
	char *stamp = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S.%fZ");
	memmove(stamp + 23, stamp + 26, strlen(stamp + 26) + 1); /* microseconds to milliseconds */
	char *line = g_strdup_printf("%s chunkfs[%d] %s: %s\n", stamp, (int)getpid(),
				     level_name(level), msg);
	ssize_t rc = write(log_fd, line, strlen(line));
	(void)rc;
	g_free(line);
	g_free(stamp);
	g_date_time_unref(now);
}

static GLogWriterOutput writer(GLogLevelFlags level, const GLogField *fields, gsize n,
			       gpointer data)
{
	(void)data;
	if ((level & G_LOG_LEVEL_DEBUG) && !log_debug)
		return G_LOG_WRITER_HANDLED;
	char *msg = cfs_log_escape(field(fields, n, "MESSAGE") ?: "");
	if (log_fd >= 0)
		write_file_line(level, msg);
	else if (log_syslog)
		syslog(syslog_priority(level), "%s", msg);
	else
		write_stderr_line(level, msg);
	g_free(msg);
	return G_LOG_WRITER_HANDLED;
}

/*
 * A character beyond ASCII that a terminal shows rather than obeys: not a
 * C1 control (U+0080 to U+009F, such as U+009B, CSI), nor a bidirectional
 * embedding, override or isolate (U+202A to U+202E, U+2066 to U+2069),
 * which would reorder the rest of the line.
 */
static bool shown_as_is(gunichar c)
{
	return c >= 0xa0 && !(c >= 0x202a && c <= 0x202e) && !(c >= 0x2066 && c <= 0x2069);
}

char *cfs_log_escape(const char *text)
{
	if (!text)
		return g_strdup("(null)");
	GString *out = g_string_sized_new(strlen(text));
	const char *p = text;
	while (*p) {
		const char *end;
		gunichar c = g_utf8_get_char_validated(p, -1);
		bool valid = c != (gunichar)-1 && c != (gunichar)-2;
		if (valid && (c < 0x80 ? c >= 0x20 && c != 0x7f && c != '\\' : shown_as_is(c))) {
			end = g_utf8_next_char(p);
			g_string_append_len(out, p, end - p);
			p = end;
		} else {
			g_string_append_printf(out, "\\x%02x", (unsigned char)*p);
			p++;
		}
	}
	return g_string_free(out, FALSE);
}

void cfs_log_init(bool debug)
{
	log_debug = debug;
	g_log_set_writer_func(writer, NULL, NULL);
}

void cfs_log_to_syslog(void)
{
	openlog("chunkfs", LOG_PID, LOG_DAEMON);
	log_syslog = true;
}

bool cfs_log_to_file(const char *path, GError **error)
{
	/* O_NONBLOCK: opening a FIFO nobody reads would otherwise hang the mount. */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
		      0600);
	if (fd < 0) {
		int e = errno;
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot open the log file %s: %s",
			    path, e == ELOOP ? "it is a symbolic link" : g_strerror(e));
		return false;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE,
			    "cannot log to %s: not a regular file", path);
		close(fd);
		return false;
	}
	log_fd = fd;
	return true;
}
