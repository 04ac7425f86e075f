/*
 * S3 remotes: bucket and prefix, endpoint, addressing style, region, as the
 * AWS CLI finds them (AWS CLI User Guide, "Configuration and credential file
 * settings"), and the credential chain (remote/creds.h); listed with
 * ListObjectsV2.
 */
#include <gio/gio.h>
#include <string.h>

#include "remote/creds.h"
#include "remote/listing.h"
#include "util/options.h"
#include "remote/remote.h"
#include "util/url.h"
#include "remote_i.h"

/* SHA-256 of the empty body of a GET: the payload hash SigV4 signs (x-amz-content-sha256). */
#define EMPTY_PAYLOAD_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define DEFAULT_REGION "us-east-1"

static char *find_region(const struct cfs_options *opts, GKeyFile *config)
{
	if (opts->region)
		return g_strdup(opts->region);
	if (cfs_remote_env("AWS_REGION"))
		return g_strdup(cfs_remote_env("AWS_REGION"));
	if (cfs_remote_env("AWS_DEFAULT_REGION"))
		return g_strdup(cfs_remote_env("AWS_DEFAULT_REGION"));
	char *section = remote_aws_config_section(remote_aws_profile(opts));
	char *region = remote_aws_value(config, section, "region");
	g_free(section);
	return region ? region : g_strdup(DEFAULT_REGION);
}

/* Split "s3://BUCKET/PREFIX" into the bucket and the prefix without its outer slashes. */
static bool split_s3_url(const char *url, const char *shown, char **bucket, char **prefix,
			 GError **error)
{
	const char *rest = url + strlen("s3://");
	const char *slash = strchr(rest, '/');
	*bucket = slash ? g_strndup(rest, (gsize)(slash - rest)) : g_strdup(rest);
	bool ok = **bucket != '\0';
	for (const char *p = *bucket; ok && *p; p++)
		ok = g_ascii_isalnum(*p) || *p == '-' || *p == '.' || *p == '_';
	if (!ok) {
		g_set_error(error, G_URI_ERROR, G_URI_ERROR_BAD_HOST,
			    "malformed URL '%s': expected s3://BUCKET/PREFIX", shown);
		g_clear_pointer(bucket, g_free);
		return false;
	}
	char *p = g_strdup(slash ? slash : "");
	g_strstrip(p);
	while (*p == '/')
		memmove(p, p + 1, strlen(p));
	while (*p && p[strlen(p) - 1] == '/')
		p[strlen(p) - 1] = '\0';
	*prefix = p;
	return true;
}

static char *find_endpoint(const struct cfs_options *opts, const char *region)
{
	if (opts->endpoint)
		return g_strdup(opts->endpoint);
	if (cfs_remote_env("AWS_ENDPOINT_URL_S3"))
		return g_strdup(cfs_remote_env("AWS_ENDPOINT_URL_S3"));
	if (cfs_remote_env("AWS_ENDPOINT_URL"))
		return g_strdup(cfs_remote_env("AWS_ENDPOINT_URL"));
	return g_strdup_printf("https://s3.%s.amazonaws.com", region);
}

/*
 * Virtual-hosted style on AWS, where path style is deprecated; path style
 * elsewhere (MinIO, Ceph, local servers rarely resolve BUCKET.host). A bucket
 * with dots breaks the TLS name of a virtual host, so it goes by path.
 */
static bool use_virtual_hosts(const struct cfs_options *opts, const char *host,
			      const char *bucket)
{
	if (opts->s3_addressing)
		return g_str_equal(opts->s3_addressing, "virtual");
	return g_str_has_suffix(host, ".amazonaws.com") && !strchr(bucket, '.');
}

/* The bucket's URL: endpoint + bucket, as a host name or as the first path segment. */
static char *bucket_url(const struct cfs_options *opts, const char *endpoint, const char *bucket,
			GError **error)
{
	char *dir = cfs_url_normalize_dir(endpoint, error);
	if (!dir)
		return NULL;
	GUri *uri = g_uri_parse(dir, G_URI_FLAGS_ENCODED, NULL);
	char *url;
	if (use_virtual_hosts(opts, g_uri_get_host(uri), bucket)) {
		char *host = g_strconcat(bucket, ".", g_uri_get_host(uri), NULL);
		GUri *v = g_uri_build(G_URI_FLAGS_ENCODED, g_uri_get_scheme(uri), NULL, host,
				      g_uri_get_port(uri), g_uri_get_path(uri), NULL, NULL);
		url = g_uri_to_string(v);
		g_uri_unref(v);
		g_free(host);
	} else {
		char *in_bucket = g_strconcat(bucket, "/", NULL);
		url = cfs_url_join(dir, in_bucket);
		g_free(in_bucket);
	}
	g_uri_unref(uri);
	g_free(dir);
	return url;
}

/*
 * SigV4 by libcurl with the chain's current keys at each request
 * (remote/creds.h); the payload hash of an empty body goes with every one.
 */
static bool set_signing(struct cfs_remote *r, const struct cfs_options *opts, const char *region,
			GKeyFile *config, GError **error)
{
	struct cfs_creds_tls tls = { r->ca_file, r->ca_dir, r->insecure };
	r->creds = cfs_creds_find(opts, region, config, &tls, error);
	if (!r->creds)
		return false;
	r->sigv4 = g_strdup_printf("aws:amz:%s:s3", region);
	GStrvBuilder *b = g_strv_builder_new();
	g_strv_builder_addv(b, (const char **)(r->headers ? r->headers : (char *[]){ NULL }));
	g_strv_builder_add(b, "x-amz-content-sha256: " EMPTY_PAYLOAD_SHA256);
	g_strfreev(r->headers);
	r->headers = g_strv_builder_end(b);
	g_strv_builder_unref(b);
	return true;
}

static bool s3_init(struct cfs_remote *r, const struct cfs_options *opts, GError **error)
{
	char *bucket = NULL, *prefix = NULL, *region = NULL, *endpoint = NULL;
	GKeyFile *config = remote_aws_file("AWS_CONFIG_FILE", "config");
	bool ok = split_s3_url(opts->url, r->shown, &bucket, &prefix, error);
	if (ok) {
		region = find_region(opts, config);
		endpoint = find_endpoint(opts, region);
		r->list_url = bucket_url(opts, endpoint, bucket, error);
		ok = r->list_url != NULL;
	}
	if (ok) {
		r->list_prefix = *prefix ? g_strconcat(prefix, "/", NULL) : g_strdup("");
		r->base_url = cfs_url_join(r->list_url, r->list_prefix);
	}
	if (ok && !opts->no_sign_request)
		ok = set_signing(r, opts, region, config, error);
	if (config)
		g_key_file_free(config);
	g_free(bucket);
	g_free(prefix);
	g_free(region);
	g_free(endpoint);
	return ok;
}

/* One ListObjectsV2 page; parameters in the order SigV4's canonical query string sorts them. */
static char *s3_list_url(const struct cfs_remote *r, const char *prefix, const char *token)
{
	char *p = g_uri_escape_string(prefix, NULL, FALSE);
	char *t = token ? g_uri_escape_string(token, NULL, FALSE) : NULL;
	char *url = g_strconcat(r->list_url, "?", t ? "continuation-token=" : "", t ? t : "",
				t ? "&" : "", "delimiter=%2F&list-type=2&prefix=", p, NULL);
	g_free(t);
	g_free(p);
	return url;
}

/* A bucket that cannot be listed says so: its error is the answer, not a cue to guess. */
static bool s3_unlisted(const GError *err)
{
	(void)err;
	return false;
}

static const struct cfs_remote_ops s3_ops = {
	.list_url = s3_list_url,
	.parse_listing = cfs_listing_parse_s3,
	.unlisted = s3_unlisted,
	.empty_root_may_be_object = true,
};

const struct remote_scheme cfs_remote_s3 = {
	.ca_env = "AWS_CA_BUNDLE",
	.init = s3_init,
	.ops = &s3_ops,
};
