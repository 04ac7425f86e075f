/* The remote of a mount: base URL, headers and TLS trust, per scheme. */
#include "remote/remote.h"

#include "remote/creds.h"
#include "util/options.h"
#include "util/url.h"
#include "remote_i.h"

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

/* The kind of remote url is: S3 for s3://, else HTTP (whose init refuses other schemes). */
static const struct remote_scheme *scheme_of(const char *url)
{
	return g_ascii_strncasecmp(url, "s3://", 5) == 0 ? &cfs_remote_s3 : &cfs_remote_http;
}

struct cfs_remote *cfs_remote_new(const struct cfs_options *opts, GError **error)
{
	struct cfs_remote *r = g_new0(struct cfs_remote, 1);
	r->shown = cfs_url_redact(opts->url);
	r->headers = g_strdupv(opts->headers);
	const struct remote_scheme *scheme = scheme_of(opts->url);
	r->ops = scheme->ops;
	choose_ca(r, opts, scheme->ca_env);
	if (!scheme->init(r, opts, error)) {
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
	cfs_creds_free(r->creds);
	g_free(r);
}
