/*
 * HTTP(S) remotes: a base URL whose directories are listed by the server's
 * index pages (listing.h), with HTTP authentication from the URL or
 * ~/.netrc as the curl tool finds it.
 */
#include <gio/gio.h>

#include "remote/listing.h"
#include "util/options.h"
#include "remote/remote.h"
#include "util/url.h"
#include "remote_i.h"

/*
 * ~/.netrc, where the curl tool looks for it, when it exists now: libcurl
 * would otherwise try to open it at every request.
 */
static char *find_netrc(void)
{
	char *path = g_build_filename(g_get_home_dir(), ".netrc", NULL);
	if (g_file_test(path, G_FILE_TEST_EXISTS))
		return path;
	g_free(path);
	return NULL;
}

static bool http_init(struct cfs_remote *r, const struct cfs_options *opts, GError **error)
{
	r->netrc = find_netrc();
	r->base_url = cfs_url_normalize_dir(opts->url, error);
	r->list_prefix = g_strdup("");
	return r->base_url != NULL;
}

/* An index page lists a whole directory: there is no next page to ask for. */
static char *http_list_url(const struct cfs_remote *r, const char *prefix, const char *token)
{
	(void)token;
	return cfs_url_join(r->base_url, prefix);
}

static struct cfs_listing *http_parse_listing(const char *data, size_t len, const char *prefix,
					      GError **error)
{
	(void)prefix;
	return cfs_listing_parse_http(data, len, error);
}

static bool http_unlisted(const GError *err)
{
	return g_error_matches(err, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED) ||
	       g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
	       g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
}

static const struct cfs_remote_ops http_ops = {
	.list_url = http_list_url,
	.parse_listing = http_parse_listing,
	.unlisted = http_unlisted,
};

const struct remote_scheme cfs_remote_http = {
	.ca_env = NULL,
	.init = http_init,
	.ops = &http_ops,
};
