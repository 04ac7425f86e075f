/*
 * Readiness for a service manager: systemd's notification protocol
 * (sd_notify(3)), through libsystemd. Without NOTIFY_SOCKET in the
 * environment both functions do nothing.
 */
#ifndef CHUNKFS_NOTIFY_H
#define CHUNKFS_NOTIFY_H

/*
 * Tell the service manager the mount serves: READY=1 and a STATUS= line
 * naming url (already redacted: the mount table's source) and mountpoint,
 * their control characters escaped so that neither can add a line to the
 * message. Call from the process that serves (the daemon after
 * fuse_daemonize's fork): with a forking daemon systemd accepts it only
 * under NotifyAccess=all, so a Type=notify unit runs chunkfs with -f.
 * A failure to send is logged as a warning naming NOTIFY_SOCKET and the
 * errno; the mount goes on. Not thread-safe (sd_notify reads the
 * environment): call from the main thread.
 */
void cfs_notify_ready(const char *url, const char *mountpoint);

/*
 * Tell the service manager that the mount is going away: STOPPING=1. Call
 * when the session loop has ended, before the tear-down. Errors and
 * threads as for cfs_notify_ready().
 */
void cfs_notify_stopping(void);

#endif
