/*
 * The AWS shared files, ~/.aws/config and ~/.aws/credentials (AWS SDKs and
 * Tools Reference Guide, "Shared config and credentials files"), read as
 * the AWS CLI reads them.
 */
#include <gio/gio.h>

#include "util/options.h"
#include "remote_i.h"

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

GKeyFile *remote_aws_file(const char *env_name, const char *file_name)
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

char *remote_aws_value(GKeyFile *kf, const char *section, const char *key)
{
	char *value = kf ? g_key_file_get_string(kf, section, key, NULL) : NULL;
	if (value && !*g_strstrip(value))
		g_clear_pointer(&value, g_free);
	return value;
}

const char *remote_aws_profile(const struct cfs_options *opts)
{
	if (opts->profile)
		return opts->profile;
	return cfs_remote_env("AWS_PROFILE") ? cfs_remote_env("AWS_PROFILE") : "default";
}

char *remote_aws_config_section(const char *profile)
{
	return g_str_equal(profile, "default") ? g_strdup("default")
					       : g_strconcat("profile ", profile, NULL);
}
