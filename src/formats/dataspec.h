/*
 * The item structure LitData records in index.json's config.data_spec:
 * torch's pytree TreeSpec serialisation (torch/utils/_pytree.py
 * `treespec_dumps`, protocol 1), a JSON text `[1, NODE]` where NODE is
 * {"type": TYPE, "context": CONTEXT, "children_spec": [NODE...]}, TYPE
 * null for a leaf, else the container's serialized type name
 * ("builtins.dict", "builtins.list", "builtins.tuple",
 * "collections.OrderedDict", "collections.defaultdict",
 * "collections.namedtuple"...), and CONTEXT a JSON text of its own: for a
 * dict the list of its keys in children order (`json.dumps(context)` in
 * `_treespec_to_json`), for a defaultdict an object whose "dict_context"
 * is that list. litdata streaming/writer.py `BinaryWriter.serialize`
 * stores `treespec_dumps(tree_flatten(item)[1])`, and data_format holds
 * one entry per leaf in tree_flatten's order (depth first, children in
 * order), which item_loader.py `PyTreeLoader` undoes with tree_unflatten.
 * Pure function, thread-safe.
 */
#ifndef CHUNKFS_DATASPEC_H
#define CHUNKFS_DATASPEC_H

#include <glib.h>

/*
 * Deepest nesting of containers read, far past any item a loader writes; it bounds the
 * recursion over the tree below what the JSON depth check (jsondepth.h) lets through.
 */
#define CFS_DATA_SPEC_MAX_DEPTH 16

/*
 * The key path of each of the n leaves data_spec describes, in leaf
 * order: the dict keys from the root down joined by '.', a list or tuple
 * child (or any container's child that has no key) adding its index
 * ("boxes.0"); NULL for a leaf with no string dict key on its path (an
 * item that is a list or tuple) or under a key that is not a string.
 * The paths are not checked as file names (cfs_leaf_schema_set_names()
 * does). Returns a new array of n entries (each a g_free'd string or NULL;
 * free with g_ptr_array_unref()), or NULL when data_spec cannot be read:
 * not JSON (or nested deeper than CFS_JSON_MAX_DEPTH, jsondepth.h), not
 * protocol 1, a node or a dict's keys malformed, containers nested deeper
 * than CFS_DATA_SPEC_MAX_DEPTH, or a number of leaves other than n.
 * Never reads more than n + 1 leaves.
 */
GPtrArray *cfs_data_spec_names(const char *data_spec, guint n);

#endif
