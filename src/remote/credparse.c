/* The JSON and XML answers of the credential chain's endpoints, parsed into keys. */
#include "remote/credparse.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "formats/jsondepth.h"

struct cfs_aws_keys *cfs_aws_keys_new(const char *access_key, const char *secret_key,
				      const char *session_token, int64_t expiration)
{
	struct cfs_aws_keys *k = g_new0(struct cfs_aws_keys, 1);
	k->refs = 1;
	k->access_key = g_strdup(access_key);
	k->secret_key = g_strdup(secret_key);
	k->session_token = g_strdup(session_token);
	k->expiration = expiration;
	return k;
}

struct cfs_aws_keys *cfs_aws_keys_ref(struct cfs_aws_keys *keys)
{
	__atomic_fetch_add(&keys->refs, 1, __ATOMIC_RELAXED);
	return keys;
}

static void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	g_free(s);
}

void cfs_aws_keys_unref(struct cfs_aws_keys *keys)
{
	if (!keys || __atomic_sub_fetch(&keys->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	g_free(keys->access_key);
	free_secret(keys->secret_key);
	free_secret(keys->session_token);
	g_free(keys);
}

static gboolean invalid(GError **error, const char *what)
{
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "credentials answer: %s", what);
	return FALSE;
}

/* Expiration in ISO 8601 (always UTC 'Z' in the AWS answers), as Unix seconds. */
static bool parse_expiration(const char *text, int64_t *out)
{
	GDateTime *t = g_date_time_new_from_iso8601(text, NULL);
	if (!t)
		return false;
	*out = g_date_time_to_unix(t);
	g_date_time_unref(t);
	return *out > 0;
}

/* A member's non-empty string value, or NULL (absent, or not a string). */
static const char *member_string(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);
	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
		return NULL;
	const char *s = json_node_get_string(n);
	return s && *s ? s : NULL;
}

/* The members the kind requires besides the keys: Version 1, or a Code of "Success". */
static bool kind_fields_ok(JsonObject *o, enum cfs_creds_json_kind kind, GError **error)
{
	if (kind == CFS_CREDS_JSON_PROCESS) {
		JsonNode *v = json_object_get_member(o, "Version");
		if (!v || !JSON_NODE_HOLDS_VALUE(v) ||
		    json_node_get_value_type(v) != G_TYPE_INT64 || json_node_get_int(v) != 1)
			return invalid(error, "no \"Version\": 1");
		return true;
	}
	if (json_object_has_member(o, "Code") && g_strcmp0(member_string(o, "Code"), "Success"))
		return invalid(error, "\"Code\" is not \"Success\"");
	return true;
}

static struct cfs_aws_keys *keys_from_object(JsonObject *o, enum cfs_creds_json_kind kind,
					     GError **error)
{
	if (!kind_fields_ok(o, kind, error))
		return NULL;
	const char *id = member_string(o, "AccessKeyId");
	const char *secret = member_string(o, "SecretAccessKey");
	const char *token = member_string(o, kind == CFS_CREDS_JSON_PROCESS ? "SessionToken"
									    : "Token");
	const char *expiration = member_string(o, "Expiration");
	int64_t expires = 0;
	if (!id || !secret) {
		invalid(error, "no AccessKeyId and SecretAccessKey strings");
		return NULL;
	}
	if (expiration && !parse_expiration(expiration, &expires)) {
		invalid(error, "Expiration is not an ISO 8601 time");
		return NULL;
	}
	return cfs_aws_keys_new(id, secret, token, expires);
}

struct cfs_aws_keys *cfs_creds_parse_json(const char *data, size_t len,
					  enum cfs_creds_json_kind kind, GError **error)
{
	if (!len || len > CFS_CREDS_ANSWER_MAX) {
		invalid(error, len ? "longer than 64 KiB" : "empty");
		return NULL;
	}
	if (!cfs_json_depth_ok(data, len, error))
		return NULL;
	JsonParser *parser = json_parser_new_immutable();
	struct cfs_aws_keys *keys = NULL;
	JsonNode *root = NULL;
	if (!json_parser_load_from_data(parser, data, (gssize)len, NULL))
		invalid(error, "not JSON");
	else if (!(root = json_parser_get_root(parser)) || !JSON_NODE_HOLDS_OBJECT(root))
		invalid(error, "not a JSON object");
	else
		keys = keys_from_object(json_node_get_object(root), kind, error);
	g_object_unref(parser);
	return keys;
}

/* The STS answer's fields: the text of the innermost element being read, and what it said. */
struct sts_parse {
	GString *text;
	bool in_credentials, in_error;
	char *id, *secret, *token, *expiration, *code;
};

static void sts_start(GMarkupParseContext *ctx, const char *element, const char **names,
		      const char **values, gpointer data, GError **error)
{
	(void)ctx, (void)names, (void)values, (void)error;
	struct sts_parse *p = data;
	if (g_str_equal(element, "Credentials"))
		p->in_credentials = true;
	else if (g_str_equal(element, "Error"))
		p->in_error = true;
	g_string_truncate(p->text, 0);
}

/* Keep the first value of a field; a repeated one is ignored rather than trusted twice. */
static void keep_first(char **field, GString *text)
{
	if (!*field)
		*field = g_strdup(text->str);
}

static void sts_end(GMarkupParseContext *ctx, const char *element, gpointer data, GError **error)
{
	(void)ctx, (void)error;
	struct sts_parse *p = data;
	if (g_str_equal(element, "Credentials"))
		p->in_credentials = false;
	else if (p->in_error && g_str_equal(element, "Code"))
		keep_first(&p->code, p->text);
	else if (!p->in_credentials)
		return;
	else if (g_str_equal(element, "AccessKeyId"))
		keep_first(&p->id, p->text);
	else if (g_str_equal(element, "SecretAccessKey"))
		keep_first(&p->secret, p->text);
	else if (g_str_equal(element, "SessionToken"))
		keep_first(&p->token, p->text);
	else if (g_str_equal(element, "Expiration"))
		keep_first(&p->expiration, p->text);
	g_string_truncate(p->text, 0);
}

static void sts_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer data,
		     GError **error)
{
	(void)ctx, (void)error;
	g_string_append_len(((struct sts_parse *)data)->text, text, (gssize)len);
}

/* The code of an STS error: letters only, so that it can be quoted without quoting a secret. */
static void sts_error(const struct sts_parse *p, GError **error)
{
	bool plain = p->code && *p->code && strlen(p->code) < 64;
	for (const char *c = p->code; plain && *c; c++)
		plain = g_ascii_isalnum(*c);
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "STS answered the error %s",
		    plain ? p->code : "(no readable Code)");
}

static struct cfs_aws_keys *sts_keys(const struct sts_parse *p, GError **error)
{
	int64_t expires = 0;
	if (p->code) {
		sts_error(p, error);
		return NULL;
	}
	if (!p->id || !*p->id || !p->secret || !*p->secret || !p->token || !*p->token) {
		invalid(error, "no Credentials with AccessKeyId, SecretAccessKey and SessionToken");
		return NULL;
	}
	if (!p->expiration || !parse_expiration(p->expiration, &expires)) {
		invalid(error, "no Expiration in ISO 8601");
		return NULL;
	}
	return cfs_aws_keys_new(p->id, p->secret, p->token, expires);
}

static void sts_parse_clear(struct sts_parse *p)
{
	explicit_bzero(p->text->str, p->text->allocated_len);
	g_string_free(p->text, TRUE);
	g_free(p->id);
	free_secret(p->secret);
	free_secret(p->token);
	g_free(p->expiration);
	g_free(p->code);
}

struct cfs_aws_keys *cfs_creds_parse_sts(const char *data, size_t len, GError **error)
{
	static const GMarkupParser parser = { sts_start, sts_end, sts_text, NULL, NULL };
	if (!len || len > CFS_CREDS_ANSWER_MAX) {
		invalid(error, len ? "longer than 64 KiB" : "empty");
		return NULL;
	}
	/* As long as the answer: the text of an element is no longer, so it never moves unzeroed. */
	struct sts_parse p = { .text = g_string_sized_new(len + 1) };
	GMarkupParseContext *ctx = g_markup_parse_context_new(&parser, 0, &p, NULL);
	struct cfs_aws_keys *keys = NULL;
	if (g_markup_parse_context_parse(ctx, data, (gssize)len, NULL) &&
	    g_markup_parse_context_end_parse(ctx, NULL))
		keys = sts_keys(&p, error);
	else
		invalid(error, "not well-formed XML");
	g_markup_parse_context_free(ctx);
	sts_parse_clear(&p);
	return keys;
}
