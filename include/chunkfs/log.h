/*
 * Logging: GLib's g_message/g_warning/g_debug with the domain "chunkfs",
 * written one line each to stderr while the process is in the foreground and
 * to syslog once it has daemonized. Debug lines only with -d.
 */
#ifndef CHUNKFS_LOG_H
#define CHUNKFS_LOG_H

#include <stdbool.h>

/* Install the writer. Call once from main before logging. */
void cfs_log_init(bool debug);

/* Send every following line to syslog (after daemonizing). */
void cfs_log_to_syslog(void);

#endif
