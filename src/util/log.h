/*
 * Logging: GLib's g_message/g_warning/g_debug with the domain "chunkfs",
 * written one line each to the log file when there is one (--log-file),
 * else to stderr while the process is in the foreground and to syslog once
 * it has daemonized. Debug lines only with -d. Every line is escaped
 * (cfs_log_escape()).
 */
#ifndef CHUNKFS_LOG_H
#define CHUNKFS_LOG_H

#include <glib.h>
#include <stdbool.h>

/* Install the writer. Call once from main before logging. */
void cfs_log_init(bool debug);

/* Send every following line to syslog (after daemonizing), unless a log file is open. */
void cfs_log_to_syslog(void);

/*
 * Send every following line to the file at path, for hosts without syslog
 * (a container has no /dev/log). Opened once, here, with O_WRONLY |
 * O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC and mode 0600 when created
 * (a log names the objects read): a symbolic link is refused, so the
 * daemon cannot be pointed at another file, and so is anything but a
 * regular file (a FIFO without a reader would block). Each line, "TIME chunkfs[PID]
 * LEVEL: MESSAGE" with TIME in UTC as RFC 3339 with milliseconds, is one
 * write(2): lines of several threads never mix. The file stays open for
 * the life of the process, across daemonizing. Returns false with a
 * G_IO_ERROR naming the path and the reason when it cannot be opened.
 * Call once, from main, before any other thread exists.
 */
bool cfs_log_to_file(const char *path, GError **error);

/*
 * text made safe to write to a log or a terminal: every byte below 0x20,
 * 0x7f, a backslash, every byte that is not part of valid UTF-8, and the
 * bytes of C1 controls (U+0080 to U+009F) and of bidirectional overrides
 * and isolates (U+202A to U+202E, U+2066 to U+2069) are shown as \xNN
 * (lower-case hex); other valid UTF-8 is kept. Servers choose much
 * of what is logged (error messages, ETags, names), and a control
 * character could rewrite a terminal or forge a log line. Every line the
 * writer installed by cfs_log_init() writes goes through it, so callers
 * pass server text to g_warning() and the like as it is. Returns a new
 * string (g_free()); NULL gives "(null)". Thread-safe.
 */
char *cfs_log_escape(const char *text);

#endif
