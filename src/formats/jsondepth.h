/*
 * A bound on the nesting of JSON from servers, checked before json-glib
 * parses it: json-glib's parser recurses once per level, so a text nested
 * deep enough (an index.json or a JSON autoindex page of 200,000 '[')
 * would overflow the thread's stack. Pure function, thread-safe.
 */
#ifndef CHUNKFS_JSONDEPTH_H
#define CHUNKFS_JSONDEPTH_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Deepest nesting of arrays and objects accepted in a JSON text from a
 * server (a dataset index needs 4, nginx's autoindex 2).
 */
#define CFS_JSON_MAX_DEPTH 64

/*
 * Whether the len bytes of text nest arrays and objects at most
 * CFS_JSON_MAX_DEPTH deep, counting '[' and '{' outside strings (a
 * backslash in a string escapes the next byte). Only the nesting is
 * checked, in one pass with constant stack, plus the three bytes that are
 * not JSON outside a string but that json-glib's scanner would take as
 * the start of a single-quoted string or a comment, where a '"' would hide
 * the brackets after it from the count: ' / #; and an array or object after
 * a first top-level value (json-glib 1.6 leaks the nodes of such a second
 * value when it refuses the text), and a \u escape that is not four hex
 * digits or a surrogate not in a pair (RFC 8259 section 7; json-glib leaks
 * there too). The parser finds any other fault. Else
 * false with *error set (G_IO_ERROR_INVALID_DATA), e.g. "JSON nested
 * deeper than 64 levels (at byte 64)".
 */
bool cfs_json_depth_ok(const char *text, size_t len, GError **error);

#endif
