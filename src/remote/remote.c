/* The remote of a mount: base URL, headers and TLS trust, per scheme. */
#include "remote/remote.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <unistd.h>

#include "remote/creds.h"
#include "util/options.h"
#include "util/url.h"
#include "remote_i.h"

/* The CA bundle the environment names, first_env before the curl tool's variables; or NULL. */
static const char *env_ca_file(const char *first_env, const char **name)
{
	const char *names[] = { first_env, "CURL_CA_BUNDLE", "SSL_CERT_FILE" };
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		if (names[i] && cfs_remote_env(names[i])) {
			*name = names[i];
			return cfs_remote_env(names[i]);
		}
	}
	return NULL;
}

/*
 * The CA trust the curl tool would use: --cacert (checked by the options),
 * else the environment's bundle, which is the environment's to fix: an
 * unreadable one is warned about, and fails only the TLS connections.
 */
static void choose_ca(struct cfs_remote *r, const struct cfs_options *opts, const char *first_env)
{
	const char *name = NULL;
	const char *file = opts->cacert ? opts->cacert : env_ca_file(first_env, &name);
	if (name && access(file, R_OK) != 0)
		g_warning("%s=%s: %s: TLS certificates cannot be verified", name, file,
			  g_strerror(errno));
	r->ca_file = g_strdup(file);
	r->ca_dir = g_strdup(cfs_remote_env("SSL_CERT_DIR"));
	r->insecure = opts->insecure;
}

#define ACCEPTED_FORMS "http://HOST/PATH/, https://HOST/PATH/ or s3://BUCKET/PREFIX"

/*
 * The kind of remote url is, by its scheme (RFC 3986 section 3.1, followed
 * by "//" and an authority); NULL with *error, naming the URL as shown and
 * the forms a mount takes, for a text without one or another scheme.
 */
static const struct remote_scheme *scheme_of(const char *url, const char *shown, GError **error)
{
	const char *scheme = g_uri_peek_scheme(url); /* lowercase, or NULL */
	if (!scheme || !g_str_has_prefix(url + strlen(scheme) + 1, "//")) {
		g_set_error(error, G_URI_ERROR, G_URI_ERROR_BAD_SCHEME,
			    "URL '%s' does not start with a scheme and '//': give " ACCEPTED_FORMS,
			    shown);
		return NULL;
	}
	if (g_str_equal(scheme, "s3"))
		return &cfs_remote_s3;
	if (g_str_equal(scheme, "http") || g_str_equal(scheme, "https"))
		return &cfs_remote_http;
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
		    "unsupported URL scheme '%s' in '%s': chunkfs takes " ACCEPTED_FORMS, scheme,
		    shown);
	return NULL;
}

struct cfs_remote *cfs_remote_new(const struct cfs_options *opts, GError **error)
{
	struct cfs_remote *r = g_new0(struct cfs_remote, 1);
	r->shown = cfs_url_redact(opts->url);
	r->headers = g_strdupv(opts->headers);
	const struct remote_scheme *scheme = scheme_of(opts->url, r->shown, error);
	if (scheme) {
		r->ops = scheme->ops;
		choose_ca(r, opts, scheme->ca_env);
	}
	if (!scheme || !scheme->init(r, opts, error)) {
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
