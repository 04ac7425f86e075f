/*
 * Logging: GLib's g_message/g_warning/g_debug with the domain "chunkfs",
 * written one line each to stderr while the process is in the foreground and
 * to syslog once it has daemonized. Debug lines only with -d. Every line is
 * escaped (cfs_log_escape()).
 */
#ifndef CHUNKFS_LOG_H
#define CHUNKFS_LOG_H

#include <stdbool.h>

/* Install the writer. Call once from main before logging. */
void cfs_log_init(bool debug);

/* Send every following line to syslog (after daemonizing). */
void cfs_log_to_syslog(void);

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
