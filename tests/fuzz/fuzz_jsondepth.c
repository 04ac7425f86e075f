/*
 * libFuzzer target: cfs_json_depth_ok(), the pre-scan that keeps json-glib's
 * recursive parser off texts nested deeper than CFS_JSON_MAX_DEPTH. What
 * it lets through is parsed with json-glib, as the daemon does next; a
 * text json-glib accepts must then nest no deeper than the bound (else the
 * scan counted differently from the parser, and a deeper text could
 * overflow the stack).
 */
#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <stdint.h>
#include <stdlib.h>

#include "formats/jsondepth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Depth of node's arrays and objects, iteratively; 0 for a value. */
static unsigned depth_of(JsonNode *root)
{
	GPtrArray *stack = g_ptr_array_new(); /* nodes whose children are still to visit */
	GArray *depths = g_array_new(FALSE, FALSE, sizeof(unsigned));
	unsigned deepest = 0, zero = 0;
	g_ptr_array_add(stack, root);
	g_array_append_val(depths, zero);
	while (stack->len) {
		JsonNode *n = g_ptr_array_steal_index(stack, stack->len - 1);
		unsigned d = g_array_index(depths, unsigned, depths->len - 1);
		g_array_set_size(depths, depths->len - 1);
		GList *children = NULL;
		if (JSON_NODE_HOLDS_ARRAY(n))
			children = json_array_get_elements(json_node_get_array(n));
		else if (JSON_NODE_HOLDS_OBJECT(n))
			children = json_object_get_values(json_node_get_object(n));
		else
			continue;
		deepest = MAX(deepest, d + 1);
		for (GList *c = children; c; c = c->next) {
			unsigned next = d + 1;
			g_ptr_array_add(stack, c->data);
			g_array_append_val(depths, next);
		}
		g_list_free(children);
	}
	g_ptr_array_free(stack, TRUE);
	g_array_free(depths, TRUE);
	return deepest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = g_memdup2(data, size);
	GError *err = NULL;
	if (!cfs_json_depth_ok(text, size, &err)) {
		if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA))
			abort();
		g_error_free(err);
		g_free(text);
		return 0;
	}
	if (err)
		abort();
	JsonParser *parser = json_parser_new_immutable();
	if (json_parser_load_from_data(parser, (const char *)data, (gssize)size, NULL) &&
	    json_parser_get_root(parser) &&
	    depth_of(json_parser_get_root(parser)) > CFS_JSON_MAX_DEPTH)
		abort();
	g_object_unref(parser);
	g_free(text);
	return 0;
}
