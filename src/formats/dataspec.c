/* LitData config.data_spec (torch pytree treespec_dumps) to leaf key paths (dataspec.h). */
#include "formats/dataspec.h"

#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <string.h>

#include "formats/jsondepth.h"
#include "formats/leaves.h"
#include "dsjson_i.h"

struct walk {
	GPtrArray *names; /* one per leaf found so far */
	guint n;          /* leaves data_format declares */
	GString *path;    /* the key path down to the node being walked */
	bool named;       /* a string dict key is on the path */
	bool bad;         /* a key on the path is not a string, or the path outgrew a stem */
};

/* A JSON text from the index (data_spec, or a context inside it), depth-checked first. */
static JsonParser *parse_text(const char *text)
{
	JsonParser *parser = json_parser_new();
	size_t len = strlen(text);
	if (!cfs_json_depth_ok(text, len, NULL) ||
	    !json_parser_load_from_data(parser, text, (gssize)len, NULL) ||
	    !json_parser_get_root(parser)) {
		g_object_unref(parser);
		return NULL;
	}
	return parser;
}

/*
 * The keys of a dict node, from its context (torch _pytree `_treespec_to_json`:
 * json.dumps of the key list; `_dict_flatten` lists them in children order). *parser
 * owns them; NULL when the context is not such a list.
 */
static JsonArray *dict_keys(JsonObject *node, const char *type, JsonParser **parser)
{
	const char *context = cfs_json_string(node, "context");
	*parser = context ? parse_text(context) : NULL;
	if (!*parser)
		return NULL;
	JsonNode *root = json_parser_get_root(*parser);
	/* torch _pytree `_defaultdict_serialize`: {"default_factory_module", ..., "dict_context"} */
	if (g_str_equal(type, "collections.defaultdict"))
		return JSON_NODE_HOLDS_OBJECT(root)
			       ? cfs_json_array(json_node_get_object(root), "dict_context")
			       : NULL;
	return JSON_NODE_HOLDS_ARRAY(root) ? json_node_get_array(root) : NULL;
}

static bool is_dict(const char *type)
{
	return g_str_equal(type, "builtins.dict") || g_str_equal(type, "collections.OrderedDict") ||
	       g_str_equal(type, "collections.defaultdict");
}

/* Append child i's component to the path: its key when it has one, else its index. */
static void path_push(struct walk *w, JsonArray *keys, guint i)
{
	const char *key = keys ? cfs_json_string_at(keys, i) : NULL;
	char index[16];
	const char *part = key ? key : index;
	g_snprintf(index, sizeof(index), "%u", i);
	w->named |= key != NULL;
	/* A key that is not a string (an int key, say) is no file name. */
	w->bad |= keys && !key;
	size_t len = w->path->len + (w->path->len > 0) + strlen(part);
	if (len > CFS_LEAF_STEM_MAX) {
		w->bad = true;
		return;
	}
	if (w->path->len > 0)
		g_string_append_c(w->path, '.');
	g_string_append(w->path, part);
}

static bool add_leaf(struct walk *w)
{
	if (w->names->len >= w->n)
		return false;
	g_ptr_array_add(w->names, w->named && !w->bad ? g_strdup(w->path->str) : NULL);
	return true;
}

static bool walk_node(struct walk *w, JsonNode *node, guint depth);

/* Walk the children of a container node, each under its key or index. */
static bool walk_children(struct walk *w, JsonArray *children, JsonArray *keys, guint depth)
{
	bool ok = true;
	for (guint i = 0; ok && i < json_array_get_length(children); i++) {
		size_t mark = w->path->len;
		bool named = w->named, bad = w->bad;
		path_push(w, keys, i);
		ok = walk_node(w, json_array_get_element(children, i), depth + 1);
		g_string_truncate(w->path, mark);
		w->named = named;
		w->bad = bad;
	}
	return ok;
}

static bool walk_node(struct walk *w, JsonNode *node, guint depth)
{
	JsonObject *o = JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
	JsonArray *children = o ? cfs_json_array(o, "children_spec") : NULL;
	JsonNode *type = o ? json_object_get_member(o, "type") : NULL;
	if (!children || !type || depth > CFS_DATA_SPEC_MAX_DEPTH)
		return false;
	if (JSON_NODE_HOLDS_NULL(type))
		return json_array_get_length(children) == 0 && add_leaf(w);
	const char *name = cfs_json_string(o, "type");
	if (!name)
		return false;
	JsonParser *context = NULL;
	JsonArray *keys = is_dict(name) ? dict_keys(o, name, &context) : NULL;
	bool ok = !is_dict(name) ||
		  (keys && json_array_get_length(keys) == json_array_get_length(children));
	ok = ok && walk_children(w, children, keys, depth);
	if (context)
		g_object_unref(context);
	return ok;
}

/* `[1, NODE]`: torch _pytree `treespec_dumps` with protocol 1, the only one it has. */
static JsonNode *root_node(JsonParser *parser)
{
	JsonNode *root = json_parser_get_root(parser);
	JsonArray *a = JSON_NODE_HOLDS_ARRAY(root) ? json_node_get_array(root) : NULL;
	if (!a || json_array_get_length(a) != 2)
		return NULL;
	JsonNode *version = json_array_get_element(a, 0);
	if (!JSON_NODE_HOLDS_VALUE(version) || json_node_get_value_type(version) != G_TYPE_INT64 ||
	    json_node_get_int(version) != 1)
		return NULL;
	return json_array_get_element(a, 1);
}

GPtrArray *cfs_data_spec_names(const char *data_spec, guint n)
{
	JsonParser *parser = parse_text(data_spec);
	JsonNode *root = parser ? root_node(parser) : NULL;
	struct walk w = { g_ptr_array_new_with_free_func(g_free), n, g_string_new(NULL), false,
			  false };
	bool ok = root && walk_node(&w, root, 0) && w.names->len == n;
	if (parser)
		g_object_unref(parser);
	g_string_free(w.path, TRUE);
	if (!ok) {
		g_ptr_array_unref(w.names);
		return NULL;
	}
	return w.names;
}
