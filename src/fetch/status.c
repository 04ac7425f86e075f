/* The one map from a request that failed for good to the errno a reader gets. */
#include "fetch/fetch.h"

#include <errno.h>
#include <gio/gio.h>

int cfs_http_errno(long status, bool timed_out)
{
	if (timed_out)
		return -ETIMEDOUT;
	if (status == 404 || status == 410)
		return -ENOENT;
	if (status == 401 || status == 403)
		return -EACCES;
	return -EIO;
}

int cfs_fetch_error_errno(const GError *err)
{
	if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
		return -ENOENT;
	if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED))
		return -EACCES;
	if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
		return -ETIMEDOUT;
	return -EIO;
}
