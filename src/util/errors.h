/*
 * The mount's most recent failures, shown in .chunkfs/errors, so that a
 * user whose loader died of EIO or SIGBUS can see which object and range
 * failed and why, with cat, without access to the daemon's log.
 *
 * A ring of the last CFS_ERRORS_KEPT failures; older ones are dropped, the
 * total is the "errors" counter of .chunkfs/stats. Every failure is also
 * logged as a warning, once, by the same call.
 */
#ifndef CHUNKFS_ERRORS_H
#define CHUNKFS_ERRORS_H

#include <glib.h>
#include <stdint.h>

/* Failures .chunkfs/errors lists: about 100 KiB at most with the bound below. */
#define CFS_ERRORS_KEPT 100
/* Bytes kept of an object's name and of a cause, each after escaping. */
#define CFS_ERRORS_TEXT_MAX 512

/*
 * Report that bytes [offset, offset + length) of object failed with err (a
 * negative errno, as the reader is answered) because of cause (printf
 * format, its text often quoting the server): logs one warning line,
 * "OBJECT bytes FIRST-LAST: CAUSE (ENAME)", and records the failure with
 * the current time. length 0 means the failure is not about a byte range
 * (a listing, an index, a HEAD): the line then reads "OBJECT: CAUSE
 * (ENAME)". object is the path below the mount root. The object name and
 * the cause are escaped as cfs_log_escape() does and cut to
 * CFS_ERRORS_TEXT_MAX bytes in the ring (the log line is not cut).
 * Copies what it keeps. Thread-safe; never blocks on anything but a short
 * internal lock.
 */
void cfs_errors_report(const char *object, uint64_t offset, uint64_t length, int err,
		       const char *cause, ...) G_GNUC_PRINTF(5, 6);

/*
 * The ring as text, oldest first: a header line "time\tobject\trange\t
 * errno\tcause", then one line per failure with those five columns
 * separated by tabs: the time in UTC as RFC 3339 with milliseconds
 * (2026-12-06T10:11:12.345Z), the object, the range as FIRST-LAST (bytes,
 * inclusive, as in an HTTP Range; "-" for none), the errno's symbolic name
 * (EIO), the cause. Columns hold no tab or newline: they are escaped.
 * Returns a g_malloc'd string the caller frees; *len gets its length in
 * bytes. Thread-safe.
 */
char *cfs_errors_render(uint64_t *len);

#endif
