/*
 * Private to the remote module: the kinds of remote (schemes) that
 * cfs_remote_new() (remote.c) chooses from by the URL, each in its own file
 * (http.c, s3.c). remote.c calls into them, never the other
 * way round.
 */
#ifndef CHUNKFS_REMOTE_I_H
#define CHUNKFS_REMOTE_I_H

#include <glib.h>
#include <stdbool.h>
#include <stdlib.h>

struct cfs_options;
struct cfs_remote;
struct cfs_remote_ops;

struct remote_scheme {
	/* A variable naming a CA bundle, consulted before the curl tool's (CURL_CA_BUNDLE...) */
	const char *ca_env;
	/*
	 * Fill r (whose shown, headers and CA trust are set) from opts->url:
	 * base_url, list_url and list_prefix, and the credentials. False with
	 * *error set (the messages of cfs_remote_new(), remote.h); r is then
	 * freed by the caller.
	 */
	bool (*init)(struct cfs_remote *r, const struct cfs_options *opts, GError **error);
	const struct cfs_remote_ops *ops;
};

extern const struct remote_scheme cfs_remote_http;
extern const struct remote_scheme cfs_remote_s3;

/* The value of the environment variable name, or NULL when it is unset or empty. */
static inline const char *cfs_remote_env(const char *name)
{
	const char *value = getenv(name);
	return value && *value ? value : NULL;
}

/*
 * An AWS shared file as a GKeyFile: the path in the variable env_name, else
 * ~/.aws/file_name; ';' comment lines taken as configparser takes them.
 * NULL when it does not exist, or is not INI (then with one warning naming
 * the file). Free with g_key_file_free().
 */
GKeyFile *remote_aws_file(const char *env_name, const char *file_name);
/* The value of key in section of kf (may be NULL), stripped; NULL when absent or blank. */
char *remote_aws_value(GKeyFile *kf, const char *section, const char *key);
/* The profile: --profile, else AWS_PROFILE, else "default". */
const char *remote_aws_profile(const struct cfs_options *opts);
/* The config file names a profile's section "profile NAME", except "default". g_malloc'd. */
char *remote_aws_config_section(const char *profile);

#endif
