/* The remote of a mount: base URL, headers and TLS trust, per scheme. */
#include "remote/remote.h"

#include <gio/gio.h>
#include <stdlib.h>

#include "util/options.h"
#include "util/url.h"
#include "s3_i.h"

const char *cfs_remote_env(const char *name)
{
	const char *value = getenv(name);
	return value && *value ? value : NULL;
}

/* The CA trust the curl tool would use; first_env is consulted before the curl variables. */
static void choose_ca(struct cfs_remote *r, const struct cfs_options *opts, const char *first_env)
{
	const char *file = opts->cacert;
	if (!file && first_env)
		file = cfs_remote_env(first_env);
	if (!file)
		file = cfs_remote_env("CURL_CA_BUNDLE");
	if (!file)
		file = cfs_remote_env("SSL_CERT_FILE");
	r->ca_file = g_strdup(file);
	r->ca_dir = g_strdup(cfs_remote_env("SSL_CERT_DIR"));
	r->insecure = opts->insecure;
}

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

static bool is_s3(const char *url)
{
	return g_ascii_strncasecmp(url, "s3://", 5) == 0;
}

struct cfs_remote *cfs_remote_new(const struct cfs_options *opts, GError **error)
{
	struct cfs_remote *r = g_new0(struct cfs_remote, 1);
	r->shown = cfs_url_redact(opts->url);
	r->headers = g_strdupv(opts->headers);
	bool ok;
	if (is_s3(opts->url)) {
		r->s3 = true;
		choose_ca(r, opts, "AWS_CA_BUNDLE");
		ok = cfs_remote_s3_init(r, opts, error);
	} else {
		choose_ca(r, opts, NULL);
		r->netrc = find_netrc();
		r->base_url = cfs_url_normalize_dir(opts->url, error);
		ok = r->base_url != NULL;
	}
	if (!ok) {
		cfs_remote_free(r);
		return NULL;
	}
	if (r->insecure)
		g_warning("TLS certificates of %s are not verified (--insecure): anyone on the path "
			  "can change the data", r->shown);
	return r;
}

void cfs_remote_free(struct cfs_remote *r)
{
	if (!r)
		return;
	g_free(r->base_url);
	g_free(r->list_url);
	g_free(r->list_prefix);
	g_free(r->shown);
	g_strfreev(r->headers);
	g_free(r->ca_file);
	g_free(r->ca_dir);
	g_free(r->netrc);
	g_free(r->sigv4);
	g_free(r->access_key);
	g_free(r->secret_key);
	g_free(r);
}
