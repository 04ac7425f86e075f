/* Listing pages parsed into entries: S3 ListObjectsV2 XML (GMarkup), HTTP index pages. */
#include "remote/listing.h"

#include "formats/jsondepth.h"
#include "util/times.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <string.h>

static void entry_clear(gpointer p)
{
	struct cfs_entry *e = p;
	g_free(e->name);
	g_free(e->etag);
}

static struct cfs_listing *listing_new(void)
{
	struct cfs_listing *l = g_new0(struct cfs_listing, 1);
	l->entries = g_array_new(FALSE, TRUE, sizeof(struct cfs_entry));
	g_array_set_clear_func(l->entries, entry_clear);
	return l;
}

void cfs_listing_free(struct cfs_listing *l)
{
	if (!l)
		return;
	g_array_free(l->entries, TRUE);
	g_free(l->next_token);
	g_free(l);
}

static void add_entry(struct cfs_listing *l, char *name, bool is_dir, uint64_t size, char *etag,
		      int64_t mtime_us)
{
	struct cfs_entry e = { name, is_dir, size, etag, mtime_us };
	g_array_append_val(l->entries, e);
}

/* ---- S3 ListObjectsV2 ---- */

struct s3_parse {
	struct cfs_listing *listing;
	const char *prefix;
	GString *text;          /* character data of the element being read */
	char *key, *etag;       /* of the Contents element being read */
	uint64_t size;
	int64_t mtime_us;
	bool saw_root;
};

static void s3_start(GMarkupParseContext *ctx, const char *element, const char **names,
		     const char **values, gpointer data, GError **error)
{
	(void)names, (void)values;
	struct s3_parse *p = data;
	const GSList *stack = g_markup_parse_context_get_element_stack(ctx);
	if (stack->next == NULL)
		p->saw_root = g_str_equal(element, "ListBucketResult");
	if (g_slist_length((GSList *)stack) > CFS_LISTING_MAX_DEPTH)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "ListObjectsV2: elements nested deeper than %u levels",
			    CFS_LISTING_MAX_DEPTH);
	g_string_truncate(p->text, 0);
}

/* A Size: decimal digits only, at most G_MAXINT64 (never CFS_SIZE_UNKNOWN). */
static bool s3_size(const char *text, uint64_t *size)
{
	guint64 v;
	if (!g_ascii_isdigit(*text) ||
	    !g_ascii_string_to_unsigned(text, 10, 0, G_MAXINT64, &v, NULL))
		return false;
	*size = v;
	return true;
}

/* The part of key below the prefix, or NULL when key is not below it. */
static const char *below_prefix(const char *key, const char *prefix)
{
	return g_str_has_prefix(key, prefix) ? key + strlen(prefix) : NULL;
}

static void s3_end_contents(struct s3_parse *p, GError **error)
{
	const char *rest = p->key ? below_prefix(p->key, p->prefix) : NULL;
	if (!rest) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "ListObjectsV2: key outside the prefix '%s'", p->prefix);
	} else if (*rest) { /* an empty rest is the prefix's own folder marker */
		add_entry(p->listing, g_strdup(rest), false, p->size, g_steal_pointer(&p->etag),
			  p->mtime_us);
	}
	g_clear_pointer(&p->key, g_free);
	g_clear_pointer(&p->etag, g_free);
	p->size = CFS_SIZE_UNKNOWN;
	p->mtime_us = CFS_TIME_UNKNOWN;
}

static void s3_end_prefix(struct s3_parse *p, const char *value, GError **error)
{
	const char *rest = below_prefix(value, p->prefix);
	if (!rest || !g_str_has_suffix(rest, "/")) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "ListObjectsV2: common prefix '%s' is not a directory below '%s'", value,
			    p->prefix);
		return;
	}
	add_entry(p->listing, g_strndup(rest, strlen(rest) - 1), true, CFS_SIZE_UNKNOWN, NULL,
		  CFS_TIME_UNKNOWN);
}

/* The last one counts when an element is repeated, as a hostile page may do. */
static void set_text(char **field, const char *value)
{
	g_free(*field);
	*field = g_strdup(value);
}

static void s3_end(GMarkupParseContext *ctx, const char *element, gpointer data, GError **error)
{
	struct s3_parse *p = data;
	const GSList *stack = g_markup_parse_context_get_element_stack(ctx);
	const char *parent = stack->next ? stack->next->data : "";
	const char *value = p->text->str;
	if (g_str_equal(parent, "Contents")) {
		if (g_str_equal(element, "Key"))
			set_text(&p->key, value);
		else if (g_str_equal(element, "ETag"))
			set_text(&p->etag, value);
		else if (g_str_equal(element, "LastModified") &&
			 !cfs_iso8601_parse(value, &p->mtime_us))
			p->mtime_us = CFS_TIME_UNKNOWN;
		else if (g_str_equal(element, "Size") && !s3_size(value, &p->size))
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				    "ListObjectsV2: Size '%s' is not a number of bytes", value);
	} else if (g_str_equal(element, "Contents")) {
		s3_end_contents(p, error);
	} else if (g_str_equal(parent, "CommonPrefixes") && g_str_equal(element, "Prefix")) {
		s3_end_prefix(p, value, error);
	} else if (g_str_equal(parent, "ListBucketResult")) {
		if (g_str_equal(element, "IsTruncated"))
			p->listing->truncated = g_str_equal(value, "true");
		else if (g_str_equal(element, "NextContinuationToken"))
			set_text(&p->listing->next_token, value);
	}
	g_string_truncate(p->text, 0);
}

static void s3_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer data,
		    GError **error)
{
	(void)ctx, (void)error;
	g_string_append_len(((struct s3_parse *)data)->text, text, (gssize)len);
}

struct cfs_listing *cfs_listing_parse_s3(const char *xml, size_t len, const char *prefix,
					 GError **error)
{
	static const GMarkupParser parser = { s3_start, s3_end, s3_text, NULL, NULL };
	struct s3_parse p = { .listing = listing_new(),
			      .prefix = prefix,
			      .text = g_string_new(NULL),
			      .size = CFS_SIZE_UNKNOWN,
			      .mtime_us = CFS_TIME_UNKNOWN };
	GMarkupParseContext *ctx = g_markup_parse_context_new(&parser, 0, &p, NULL);
	/* An empty body may come as NULL, which GMarkup refuses without an error. */
	bool ok = g_markup_parse_context_parse(ctx, xml ? xml : "", (gssize)len, error) &&
		  g_markup_parse_context_end_parse(ctx, error);
	if (ok && !p.saw_root) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "not a ListObjectsV2 response (no ListBucketResult)");
		ok = false;
	}
	g_markup_parse_context_free(ctx);
	g_string_free(p.text, TRUE);
	g_free(p.key);
	g_free(p.etag);
	if (!ok) {
		cfs_listing_free(p.listing);
		return NULL;
	}
	return p.listing;
}

/* ---- HTTP index pages ---- */

/*
 * A member of o that is a value of type type, or NULL (also when o is):
 * json-glib's typed getters log a critical for an array or an object.
 */
static JsonNode *value_member(JsonObject *o, const char *key, GType type)
{
	JsonNode *n = o ? json_object_get_member(o, key) : NULL;
	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == type ? n : NULL;
}

/* An autoindex "mtime" (nginx writes an IMF-fixdate), or CFS_TIME_UNKNOWN. */
static int64_t json_mtime(JsonNode *mtime)
{
	const char *text = mtime ? json_node_get_string(mtime) : NULL;
	int64_t s;
	if (!text ||
	    !cfs_http_date_parse(text, strlen(text), g_get_real_time() / G_USEC_PER_SEC, &s))
		return CFS_TIME_UNKNOWN;
	return s * G_USEC_PER_SEC;
}

static bool parse_json_index(const char *text, size_t len, struct cfs_listing *l)
{
	JsonParser *parser = json_parser_new_immutable();
	bool ok = json_parser_load_from_data(parser, text, (gssize)len, NULL);
	JsonNode *root = ok ? json_parser_get_root(parser) : NULL;
	ok = root && JSON_NODE_HOLDS_ARRAY(root);
	JsonArray *items = ok ? json_node_get_array(root) : NULL;
	for (guint i = 0; ok && i < json_array_get_length(items); i++) {
		JsonNode *item = json_array_get_element(items, i);
		JsonObject *o = JSON_NODE_HOLDS_OBJECT(item) ? json_node_get_object(item) : NULL;
		JsonNode *name = value_member(o, "name", G_TYPE_STRING);
		JsonNode *type = value_member(o, "type", G_TYPE_STRING);
		JsonNode *size = value_member(o, "size", G_TYPE_INT64);
		JsonNode *mtime = value_member(o, "mtime", G_TYPE_STRING);
		if (!name) {
			ok = false;
			break;
		}
		bool dir = type && g_str_equal(json_node_get_string(type), "directory");
		gint64 bytes = size && !dir ? json_node_get_int(size) : -1;
		add_entry(l, g_strdup(json_node_get_string(name)), dir,
			  bytes < 0 ? CFS_SIZE_UNKNOWN : (uint64_t)bytes, NULL, json_mtime(mtime));
	}
	g_object_unref(parser);
	return ok;
}

/* A link to a direct child ("name" or "name/"), decoded; NULL for anything else. */
static char *child_of_link(const char *href, bool *is_dir)
{
	if (!*href || strpbrk(href, "?#:") || href[0] == '/' || g_str_has_prefix(href, "."))
		return NULL;
	char *name = g_uri_unescape_string(href, NULL);
	if (!name)
		return NULL;
	size_t n = strlen(name);
	*is_dir = n > 1 && name[n - 1] == '/';
	if (*is_dir)
		name[n - 1] = '\0';
	if (!*name || strchr(name, '/')) {
		g_free(name);
		return NULL;
	}
	return name;
}

static bool parse_html_index(const char *text, size_t len, struct cfs_listing *l)
{
	if (len == 0)
		return false; /* no links; and text may be NULL, which g_strndup() passes on */
	char *page = g_strndup(text, len);
	if (!g_strrstr(page, "<a ") && !g_strrstr(page, "<A ")) {
		g_free(page);
		return false;
	}
	GRegex *re = g_regex_new("<a\\s[^>]*href\\s*=\\s*\"([^\"]*)\"", G_REGEX_CASELESS, 0, NULL);
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GMatchInfo *m;
	g_regex_match(re, page, 0, &m);
	for (; g_match_info_matches(m); g_match_info_next(m, NULL)) {
		char *href = g_match_info_fetch(m, 1);
		bool dir = false;
		char *name = child_of_link(href, &dir);
		if (name && g_hash_table_add(seen, g_strdup(name)))
			add_entry(l, name, dir, CFS_SIZE_UNKNOWN, NULL, CFS_TIME_UNKNOWN);
		else
			g_free(name);
		g_free(href);
	}
	g_match_info_free(m);
	g_hash_table_destroy(seen);
	g_regex_unref(re);
	g_free(page);
	return true;
}

struct cfs_listing *cfs_listing_parse_http(const char *text, size_t len, GError **error)
{
	struct cfs_listing *l = listing_new();
	/* By index: an empty body may come as NULL, which takes no pointer arithmetic. */
	size_t i = 0;
	while (i < len && g_ascii_isspace(text[i]))
		i++;
	bool json = i < len && text[i] == '[';
	if (json && !cfs_json_depth_ok(text, len, error)) {
		g_prefix_error(error, "not a JSON autoindex: ");
		cfs_listing_free(l);
		return NULL;
	}
	bool ok = json ? parse_json_index(text, len, l) : parse_html_index(text, len, l);
	if (!ok) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "not a directory listing (neither JSON autoindex nor HTML links)");
		cfs_listing_free(l);
		return NULL;
	}
	return l;
}
