/* READY=1 and STOPPING=1 for systemd's Type=notify, with libsystemd's sd_notify. */
#include "util/notify.h"

#include <glib.h>
#include <systemd/sd-daemon.h>

#include "util/log.h"

/* sd_notify: > 0 sent, 0 no NOTIFY_SOCKET (not run by a service manager), < 0 a -errno. */
static void send_state(const char *what, const char *state)
{
	int rc = sd_notify(0, state);
	if (rc < 0)
		g_warning("cannot notify the service manager of %s through NOTIFY_SOCKET %s: %s",
			  what, g_getenv("NOTIFY_SOCKET"), g_strerror(-rc));
}

void cfs_notify_ready(const char *url, const char *mountpoint)
{
	char *status = g_strdup_printf("serving %s on %s", url, mountpoint);
	char *escaped = cfs_log_escape(status);
	char *state = g_strdup_printf("READY=1\nSTATUS=%s", escaped);
	send_state("readiness", state);
	g_free(state);
	g_free(escaped);
	g_free(status);
}

void cfs_notify_stopping(void)
{
	send_state("the stop", "STOPPING=1");
}
