/* The nesting bound of JSON from servers: a scan that needs no recursion. */
#include "chunkfs/jsondepth.h"

#include <gio/gio.h>

bool cfs_json_depth_ok(const char *text, size_t len, GError **error)
{
	unsigned depth = 0;
	bool in_string = false, begun = false; /* begun: a top-level value has */
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '\'' || c == '/' || c == '#') {
			/*
			 * Not JSON outside a string, but json-glib's scanner takes
			 * single-quoted strings and comments, inside which a '"' would
			 * hide the brackets after it from this count.
			 */
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				    "not JSON: '%c' outside a string (at byte %zu)", c, i);
			return false;
		} else if ((c == '[' || c == '{') && depth == 0 && begun) {
			/* json-glib 1.6 leaks the nodes of a second top-level value. */
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				    "not JSON: a second value (at byte %zu)", i);
			return false;
		} else if (c == '[' || c == '{') {
			if (++depth > CFS_JSON_MAX_DEPTH) {
				g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
					    "JSON nested deeper than %u levels (at byte %zu)",
					    CFS_JSON_MAX_DEPTH, i);
				return false;
			}
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
		begun |= !g_ascii_isspace(c);
	}
	return true;
}
