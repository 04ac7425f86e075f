/* URL handling on GUri (RFC 3986): validation, joining, redaction. */
#include "util/url.h"

#include <gio/gio.h>
#include <stdbool.h>
#include <string.h>

/*
 * The length of what text starts with that looks like "SCHEME:" and slashes
 * ("https://", "https:/", "https//"), 0 when there are no slashes after it:
 * "user:secret@host" starts with userinfo, not a scheme.
 */
static size_t scheme_prefix_len(const char *text)
{
	size_t n = strspn(text,
			  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
	if (text[n] == ':')
		n++;
	size_t slashes = strspn(text + n, "/");
	return slashes ? n + slashes : 0;
}

/*
 * A text GUri cannot parse, or parses without a host, is shown as typed, so
 * that the user sees the mistake, with what may be secret masked as in a
 * parsed URL: everything after the scheme's slashes up to the last '@'
 * before the query (a mistyped "https:/user:pw@host" still hides pw), and
 * everything after '?'.
 */
static char *redact_text(const char *text)
{
	size_t start = scheme_prefix_len(text);
	size_t end = strcspn(text, "?#");
	const char *at = g_strrstr_len(text + start, (gssize)(end - start), "@");
	const char *rest = at ? at + 1 : text + start;
	size_t rest_len = strcspn(rest, "?");
	return g_strdup_printf("%.*s%s%.*s%s", (int)start, text, at ? "***@" : "", (int)rest_len,
			       rest, rest[rest_len] ? "?***" : "");
}

char *cfs_url_redact(const char *url)
{
	GUri *uri = g_uri_parse(url, G_URI_FLAGS_ENCODED | G_URI_FLAGS_PARSE_RELAXED, NULL);
	if (!uri || !g_uri_get_host(uri) || !*g_uri_get_host(uri)) {
		/*
		 * "user:secret@host/path" parses as scheme "user" and a path
		 * holding the secret; "https:///u:pw@host" with an empty host
		 */
		g_clear_pointer(&uri, g_uri_unref);
		return redact_text(url);
	}
	GUri *safe = g_uri_build(G_URI_FLAGS_ENCODED, g_uri_get_scheme(uri),
				 g_uri_get_userinfo(uri) ? "***" : NULL, g_uri_get_host(uri),
				 g_uri_get_port(uri), g_uri_get_path(uri),
				 g_uri_get_query(uri) ? "***" : NULL, NULL);
	char *text = g_uri_to_string(safe);
	g_uri_unref(safe);
	g_uri_unref(uri);
	return text;
}

char *cfs_url_normalize_dir(const char *text, GError **error)
{
	GError *err = NULL;
	GUri *uri = g_uri_parse(text, G_URI_FLAGS_ENCODED, &err);
	if (!uri) {
		char *safe = cfs_url_redact(text);
		g_set_error(error, G_URI_ERROR, err->code, "malformed URL '%s': %s", safe, err->message);
		g_free(safe);
		g_error_free(err);
		return NULL;
	}
	const char *scheme = g_uri_get_scheme(uri);
	const char *host = g_uri_get_host(uri);
	char *result = NULL;
	char *safe = cfs_url_redact(text);
	if (g_ascii_strcasecmp(scheme, "http") != 0 && g_ascii_strcasecmp(scheme, "https") != 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
			    "unsupported URL scheme '%s' in '%s' (http:// and https:// are supported)",
			    scheme, safe);
	} else if (!host || !*host) {
		g_set_error(error, G_URI_ERROR, G_URI_ERROR_BAD_HOST, "URL '%s' has no host", safe);
	} else if (g_uri_get_fragment(uri)) {
		g_set_error(error, G_URI_ERROR, G_URI_ERROR_BAD_FRAGMENT,
			    "URL '%s' has a fragment; give the dataset directory", safe);
	} else {
		const char *path = g_uri_get_path(uri);
		bool slash = *path && path[strlen(path) - 1] == '/';
		char *dir = g_strconcat(*path ? path : "/", slash || !*path ? "" : "/", NULL);
		GUri *norm = g_uri_build(G_URI_FLAGS_ENCODED, scheme, g_uri_get_userinfo(uri), host,
					 g_uri_get_port(uri), dir, g_uri_get_query(uri), NULL);
		result = g_uri_to_string(norm);
		g_uri_unref(norm);
		g_free(dir);
	}
	g_free(safe);
	g_uri_unref(uri);
	return result;
}

char *cfs_url_join(const char *base, const char *path)
{
	GUri *uri = g_uri_parse(base, G_URI_FLAGS_ENCODED, NULL);
	g_return_val_if_fail(uri != NULL, NULL);
	char *escaped = g_uri_escape_string(path, "/", FALSE);
	char *full = g_strconcat(g_uri_get_path(uri), escaped, NULL);
	GUri *joined = g_uri_build(G_URI_FLAGS_ENCODED, g_uri_get_scheme(uri),
				   g_uri_get_userinfo(uri), g_uri_get_host(uri), g_uri_get_port(uri),
				   full, g_uri_get_query(uri), NULL);
	char *text = g_uri_to_string(joined);
	g_uri_unref(joined);
	g_free(full);
	g_free(escaped);
	g_uri_unref(uri);
	return text;
}

char *cfs_url_parent_dir(const char *url)
{
	size_t end = strcspn(url, "?#");
	while (end > 0 && url[end - 1] == '/')
		end--;
	while (end > 0 && url[end - 1] != '/')
		end--;
	return g_strndup(url, end);
}

char *cfs_url_dir_as_file(const char *dir_url)
{
	GUri *uri = g_uri_parse(dir_url, G_URI_FLAGS_ENCODED, NULL);
	g_return_val_if_fail(uri != NULL, NULL);
	const char *path = g_uri_get_path(uri);
	size_t len = strlen(path);
	char *text = NULL;
	if (len > 1 && path[len - 1] == '/') {
		char *file = g_strndup(path, len - 1);
		GUri *f = g_uri_build(G_URI_FLAGS_ENCODED, g_uri_get_scheme(uri),
				      g_uri_get_userinfo(uri), g_uri_get_host(uri),
				      g_uri_get_port(uri), file, g_uri_get_query(uri), NULL);
		text = g_uri_to_string(f);
		g_uri_unref(f);
		g_free(file);
	}
	g_uri_unref(uri);
	return text;
}
