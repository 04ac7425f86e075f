/* The nesting bound of JSON from servers: a scan that needs no recursion. */
#include "formats/jsondepth.h"

#include <gio/gio.h>

/* The value of the 4 hex digits at p, of which n bytes are there; -1 if they are not. */
static long hex4(const char *p, size_t n)
{
	long v = 0;
	for (size_t k = 0; k < 4; k++) {
		int d = k < n ? g_ascii_xdigit_value(p[k]) : -1;
		if (d < 0)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/*
 * The length in bytes of the \u escape at text[i] (a backslash), 6, or 12
 * for a surrogate pair; 0 when it is not four hex digits or a surrogate is
 * alone (RFC 8259 section 7): json-glib 1.6 leaks memory refusing those.
 */
static size_t unicode_escape(const char *text, size_t len, size_t i)
{
	long code = hex4(text + i + 2, len - i - 2);
	if (code < 0xd800 || code > 0xdfff)
		return code < 0 ? 0 : 6;
	size_t j = i + 6;
	long low = code <= 0xdbff && j + 1 < len && text[j] == '\\' && text[j + 1] == 'u'
			   ? hex4(text + j + 2, len - j - 2) : -1;
	return low >= 0xdc00 && low <= 0xdfff ? 12 : 0;
}

/* The length of the escape at text[i] (a backslash): any but \u takes one byte more. */
static size_t escape_len(const char *text, size_t len, size_t i)
{
	return i + 1 < len && text[i + 1] == 'u' ? unicode_escape(text, len, i) : 2;
}

bool cfs_json_depth_ok(const char *text, size_t len, GError **error)
{
	unsigned depth = 0;
	bool in_string = false, begun = false; /* begun: a top-level value has */
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (in_string) {
			if (c == '\\') {
				size_t n = escape_len(text, len, i);
				if (n == 0) {
					g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
						    "not JSON: a bad \\u escape (at byte %zu)", i);
					return false;
				}
				i += n - 1;
			} else if (c == '"') {
				in_string = false;
			}
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
