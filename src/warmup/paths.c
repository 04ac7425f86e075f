/* The files a warm-up is asked for, in order, and the chunkfs mounts they are on. */
#include <errno.h>
#include <inttypes.h>
#include <json-glib/json-glib.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "warmup_i.h"

/* Bounds of a walk: directory depth, and files of one run. */
#define WALK_DEPTH_MAX 64
#define FILES_MAX 10000000u
/* Longest value of the attribute read: five counters of at most 20 digits with their names. */
#define VALUE_MAX 256

static void wfile_free(gpointer p)
{
	struct wfile *f = p;
	g_free(f->path);
	g_free(f);
}

static void wmount_free(gpointer p)
{
	struct wmount *m = p;
	g_free(m->root);
	g_free(m);
}

void plan_init(struct wplan *plan)
{
	plan->files = g_ptr_array_new_with_free_func(wfile_free);
	plan->mounts = g_ptr_array_new_with_free_func(wmount_free);
	plan->seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
}

void plan_clear(struct wplan *plan)
{
	g_ptr_array_free(plan->files, TRUE);
	g_ptr_array_free(plan->mounts, TRUE);
	g_hash_table_destroy(plan->seen);
}

int read_residency(const char *path, const char *name, struct residency *out)
{
	char buf[VALUE_MAX];
	ssize_t n = getxattr(path, name, buf, sizeof(buf) - 1);
	if (n < 0)
		return errno;
	buf[n] = '\0';
	int got = sscanf(buf,
			 "size=%" SCNu64 " mem=%" SCNu64 " disk=%" SCNu64 " remote=%" SCNu64
			 " warm=%" SCNu64,
			 &out->size, &out->mem, &out->disk, &out->remote, &out->warm);
	return got == 5 ? 0 : EINVAL;
}

/* A member of .chunkfs/stats as a count; 0 when missing. */
static uint64_t stats_member(JsonObject *o, const char *name)
{
	gint64 v = json_object_has_member(o, name) ? json_object_get_int_member(o, name) : 0;
	return v > 0 ? (uint64_t)v : 0;
}

/* The caps of the chunkfs mount at root into m; false when root is not one. */
static bool read_caps(const char *root, struct wmount *m)
{
	char *stats = g_build_filename(root, ".chunkfs", "stats", NULL);
	JsonParser *parser = json_parser_new();
	bool ok = json_parser_load_from_file(parser, stats, NULL) &&
		  JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser));
	if (ok) {
		JsonObject *o = json_node_get_object(json_parser_get_root(parser));
		ok = json_object_has_member(o, "mem_cap");
		m->mem_cap = stats_member(o, "mem_cap");
		m->disk_cap = stats_member(o, "disk_cap");
	}
	g_object_unref(parser);
	g_free(stats);
	return ok;
}

/* The root of the mount that path (absolute, on device dev) is on: the last directory up on dev. */
static char *mount_root(const char *path, dev_t dev)
{
	char *root = g_strdup(path);
	for (unsigned i = 0; i < PATH_MAX && strcmp(root, "/") != 0; i++) {
		char *up = g_path_get_dirname(root);
		struct stat st;
		if (stat(up, &st) != 0 || st.st_dev != dev) {
			g_free(up);
			break;
		}
		g_free(root);
		root = up;
	}
	return root;
}

/* The chunkfs mount of path (absolute, on device dev), found once per device; NULL if none. */
static struct wmount *mount_of(struct wplan *plan, const char *path, dev_t dev)
{
	for (guint i = 0; i < plan->mounts->len; i++) {
		struct wmount *m = g_ptr_array_index(plan->mounts, i);
		if (m->dev == dev)
			return m;
	}
	struct wmount *m = g_new0(struct wmount, 1);
	m->dev = dev;
	m->root = mount_root(path, dev);
	if (!read_caps(m->root, m)) {
		wmount_free(m);
		return NULL;
	}
	g_ptr_array_add(plan->mounts, m);
	return m;
}

static bool add_file(struct wplan *plan, const char *path, struct wmount *m)
{
	if (g_hash_table_contains(plan->seen, path))
		return true;
	if (plan->files->len >= FILES_MAX) {
		fprintf(stderr, "chunkfs warmup: more than %u files\n", FILES_MAX);
		return false;
	}
	g_hash_table_add(plan->seen, g_strdup(path));
	struct wfile *f = g_new0(struct wfile, 1);
	f->path = g_strdup(path);
	f->mount = m;
	g_ptr_array_add(plan->files, f);
	return true;
}

static gint by_name(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of a directory's entries to walk, sorted; views of what it lists left out. */
static GPtrArray *walk_names(GDir *dir)
{
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	const char *name;
	while ((name = g_dir_read_name(dir)) && names->len < FILES_MAX)
		if (name[0] != '.')
			g_ptr_array_add(names, g_strdup(name));
	g_ptr_array_sort(names, by_name);
	return names;
}

/* NAME.tar.d beside NAME.tar in names: the archive's members, warmed with the archive. */
static bool is_tar_view(GPtrArray *names, const char *name)
{
	if (!g_str_has_suffix(name, ".tar.d"))
		return false;
	char *tar = g_strndup(name, strlen(name) - 2);
	bool found = g_ptr_array_find_with_equal_func(names, tar, g_str_equal, NULL);
	g_free(tar);
	return found;
}

static bool add_path(struct wplan *plan, const char *path, struct wmount *m, unsigned depth);

static bool add_dir(struct wplan *plan, const char *path, struct wmount *m, unsigned depth)
{
	GError *error = NULL;
	GDir *dir = depth < WALK_DEPTH_MAX ? g_dir_open(path, 0, &error) : NULL;
	if (!dir) {
		fprintf(stderr, "chunkfs warmup: %s: %s\n", path,
			error ? error->message : "directories nested too deep");
		g_clear_error(&error);
		return false;
	}
	GPtrArray *names = walk_names(dir);
	g_dir_close(dir);
	bool ok = true;
	for (guint i = 0; ok && i < names->len; i++) {
		const char *name = g_ptr_array_index(names, i);
		char *child = g_build_filename(path, name, NULL);
		ok = is_tar_view(names, name) || add_path(plan, child, m, depth + 1);
		g_free(child);
	}
	g_ptr_array_free(names, TRUE);
	return ok;
}

static bool add_path(struct wplan *plan, const char *path, struct wmount *m, unsigned depth)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		fprintf(stderr, "chunkfs warmup: %s: %s\n", path, g_strerror(errno));
		return false;
	}
	if (S_ISDIR(st.st_mode))
		return add_dir(plan, path, m, depth);
	if (S_ISREG(st.st_mode))
		return add_file(plan, path, m);
	fprintf(stderr, "chunkfs warmup: %s: not a file or a directory\n", path);
	return false;
}

/* A path named on the command line or on stdin: checked to be inside a chunkfs mount. */
static bool add_named(struct wplan *plan, const char *name)
{
	char *path = g_canonicalize_filename(name, NULL);
	struct stat st;
	struct wmount *m = NULL;
	bool ok = false;
	if (stat(path, &st) != 0)
		fprintf(stderr, "chunkfs warmup: %s: %s\n", name, g_strerror(errno));
	else if (!(m = mount_of(plan, path, st.st_dev)))
		fprintf(stderr, "chunkfs warmup: %s: not inside a chunkfs mount\n", name);
	else
		ok = add_path(plan, path, m, 0);
	g_free(path);
	return ok;
}

/* The paths of stdin, one a line (an empty line is skipped). */
static bool add_stdin(struct wplan *plan)
{
	char line[PATH_MAX + 2];
	bool ok = true;
	for (unsigned n = 0; ok && n < FILES_MAX && fgets(line, sizeof(line), stdin); n++) {
		size_t len = strcspn(line, "\n");
		if (line[len] != '\n' && !feof(stdin)) {
			fprintf(stderr, "chunkfs warmup: line %u of stdin: longer than %d bytes\n",
				n + 1, PATH_MAX);
			return false;
		}
		line[len] = '\0';
		ok = len == 0 || add_named(plan, line);
	}
	return ok;
}

bool plan_add(struct wplan *plan, const char *path)
{
	return strcmp(path, "-") == 0 ? add_stdin(plan) : add_named(plan, path);
}
