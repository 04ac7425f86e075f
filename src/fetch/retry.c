/* How long a request may take through all its attempts: the read bound. */
#include "fetch/fetch.h"

#include <glib.h>

#include "retry_i.h"
#include "util/options.h"

unsigned cfs_fetch_read_bound_ms(const struct cfs_options *opts)
{
	uint64_t attempt_ms = ((uint64_t)opts->connect_timeout_s + opts->timeout_s + 1) * 1000;
	uint64_t wait_ms = MAX((uint64_t)opts->timeout_s * 1000, BACKOFF_MAX_US / 1000);
	uint64_t ms = (opts->retries + 1) * attempt_ms + opts->retries * wait_ms + 1000;
	return (unsigned)MIN(ms, (uint64_t)G_MAXUINT);
}
