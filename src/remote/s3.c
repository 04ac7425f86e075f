/*
 * S3 remotes: bucket and prefix, endpoint, addressing style, region and the
 * credentials, found in the order the AWS CLI uses (AWS CLI User Guide,
 * "Configuration and credential file settings"): the environment, then the
 * profile in the shared credentials file, then in the config file; listed
 * with ListObjectsV2.
 */
#include <gio/gio.h>
#include <string.h>

#include "remote/listing.h"
#include "util/options.h"
#include "remote/remote.h"
#include "util/url.h"
#include "remote_i.h"

/* SHA-256 of the empty body of a GET: the payload hash SigV4 signs (x-amz-content-sha256). */
#define EMPTY_PAYLOAD_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define DEFAULT_REGION "us-east-1"

struct credentials {
	char *access_key, *secret_key, *session_token;
};

static void credentials_clear(struct credentials *c)
{
	g_free(c->access_key);
	g_free(c->secret_key);
	g_free(c->session_token);
	memset(c, 0, sizeof(*c));
}

/*
 * The AWS tools read these files with Python's configparser, which also takes
 * ';' comment lines; GKeyFile only knows '#'.
 */
static void semicolon_comments_to_hash(char *text)
{
	bool line_start = true; /* only blanks since the last newline */
	for (char *p = text; *p; p++) {
		if (line_start && *p == ';')
			*p = '#';
		if (*p == '\n')
			line_start = true;
		else if (*p != ' ' && *p != '\t')
			line_start = false;
	}
}

/* An AWS shared file (INI): AWS_* variable name for its path, else ~/.aws/NAME. */
static GKeyFile *load_aws_file(const char *env_name, const char *file_name)
{
	char *path = g_strdup(cfs_remote_env(env_name));
	if (!path)
		path = g_build_filename(g_get_home_dir(), ".aws", file_name, NULL);
	GKeyFile *kf = g_key_file_new();
	GError *err = NULL;
	char *text = NULL;
	gsize len = 0;
	if (g_file_get_contents(path, &text, &len, &err)) {
		semicolon_comments_to_hash(text);
		g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &err);
	}
	if (err) {
		if (!g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			g_warning("%s: %s", path, err->message);
		g_clear_error(&err);
		g_key_file_free(kf);
		kf = NULL;
	}
	g_free(text);
	g_free(path);
	return kf;
}

static char *key_value(GKeyFile *kf, const char *section, const char *key)
{
	char *value = kf ? g_key_file_get_string(kf, section, key, NULL) : NULL;
	if (value && !*g_strstrip(value))
		g_clear_pointer(&value, g_free);
	return value;
}

/* Keys of one section; true when both the access key and the secret are there. */
static bool section_credentials(GKeyFile *kf, const char *section, struct credentials *c)
{
	c->access_key = key_value(kf, section, "aws_access_key_id");
	c->secret_key = key_value(kf, section, "aws_secret_access_key");
	c->session_token = key_value(kf, section, "aws_session_token");
	if (c->access_key && c->secret_key)
		return true;
	credentials_clear(c);
	return false;
}

static const char *profile_name(const struct cfs_options *opts)
{
	if (opts->profile)
		return opts->profile;
	return cfs_remote_env("AWS_PROFILE") ? cfs_remote_env("AWS_PROFILE") : "default";
}

/* The config file names a profile's section "profile NAME", except "default". */
static char *config_section(const char *profile)
{
	return g_str_equal(profile, "default") ? g_strdup("default")
					      : g_strconcat("profile ", profile, NULL);
}

static bool env_credentials(struct credentials *c)
{
	if (!cfs_remote_env("AWS_ACCESS_KEY_ID") || !cfs_remote_env("AWS_SECRET_ACCESS_KEY"))
		return false;
	c->access_key = g_strdup(cfs_remote_env("AWS_ACCESS_KEY_ID"));
	c->secret_key = g_strdup(cfs_remote_env("AWS_SECRET_ACCESS_KEY"));
	c->session_token = g_strdup(cfs_remote_env("AWS_SESSION_TOKEN"));
	return true;
}

static bool profile_credentials(const char *profile, GKeyFile *config, struct credentials *c)
{
	GKeyFile *shared = load_aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
	char *section = config_section(profile);
	bool found = section_credentials(shared, profile, c) ||
		     section_credentials(config, section, c);
	g_free(section);
	if (shared)
		g_key_file_free(shared);
	return found;
}

/*
 * The environment's keys first, then the profile's; as with the AWS CLI, a
 * profile named with --profile comes first (and the environment's keys are
 * still used when that profile holds none, e.g. one that only sets a region).
 */
static bool find_credentials(const struct cfs_options *opts, GKeyFile *config,
			     struct credentials *c, GError **error)
{
	const char *profile = profile_name(opts);
	bool found = opts->profile ? profile_credentials(profile, config, c) || env_credentials(c)
				   : env_credentials(c) || profile_credentials(profile, config, c);
	if (!found)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			    "no AWS credentials: none in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY nor "
			    "for profile '%s' in ~/.aws/credentials or ~/.aws/config "
			    "(use --no-sign-request for a public bucket)", profile);
	return found;
}

static char *find_region(const struct cfs_options *opts, GKeyFile *config)
{
	if (opts->region)
		return g_strdup(opts->region);
	if (cfs_remote_env("AWS_REGION"))
		return g_strdup(cfs_remote_env("AWS_REGION"));
	if (cfs_remote_env("AWS_DEFAULT_REGION"))
		return g_strdup(cfs_remote_env("AWS_DEFAULT_REGION"));
	char *section = config_section(profile_name(opts));
	char *region = key_value(config, section, "region");
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

static void set_signing(struct cfs_remote *r, const char *region, struct credentials *c)
{
	r->sigv4 = g_strdup_printf("aws:amz:%s:s3", region);
	r->access_key = g_steal_pointer(&c->access_key);
	r->secret_key = g_steal_pointer(&c->secret_key);
	GStrvBuilder *b = g_strv_builder_new();
	g_strv_builder_addv(b, (const char **)(r->headers ? r->headers : (char *[]){ NULL }));
	g_strv_builder_add(b, "x-amz-content-sha256: " EMPTY_PAYLOAD_SHA256);
	if (c->session_token) {
		char *token = g_strconcat("x-amz-security-token: ", c->session_token, NULL);
		g_strv_builder_add(b, token);
		g_free(token);
	}
	g_strfreev(r->headers);
	r->headers = g_strv_builder_end(b);
	g_strv_builder_unref(b);
}

static bool s3_init(struct cfs_remote *r, const struct cfs_options *opts, GError **error)
{
	char *bucket = NULL, *prefix = NULL, *region = NULL, *endpoint = NULL;
	struct credentials creds = { 0 };
	GKeyFile *config = load_aws_file("AWS_CONFIG_FILE", "config");
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
	if (ok && !opts->no_sign_request) {
		ok = find_credentials(opts, config, &creds, error);
		if (ok)
			set_signing(r, region, &creds);
	}
	credentials_clear(&creds);
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
