/*
 * The memory limit of this process's control groups. A container or a
 * systemd unit with MemoryMax= sees the whole machine in sysconf(), and a
 * memory tier sized from that, faulted in from mounting on, could take most
 * of the group's memory from the loader beside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "util/memlimit.h"

/* memory.max and the like hold one number. */
#define LIMIT_FILE_MAX 64
/* /proc/self/cgroup: a line per hierarchy. */
#define CGROUP_FILE_MAX (64 << 10)
/* /proc/self/mountinfo: a line per mount, and a host may have thousands. */
#define MOUNTINFO_MAX (4 << 20)
/* Groups walked up from the process's. */
#define DEPTH_MAX 64

static const char *const v2_files[] = { "memory.max", "memory.high", NULL };
static const char *const v1_files[] = { "memory.limit_in_bytes", NULL };

/* Up to max bytes of the file at path as a string (g_free), or NULL. */
static char *read_text(const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *text = g_malloc(max + 1);
	size_t len = 0;
	while (len < max) {
		ssize_t n = read(fd, text + len, max - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	text[len] = '\0';
	return text;
}

/* The limit in dir/name: a decimal number of bytes; "max", no file or anything else: none. */
static uint64_t limit_in(const char *dir, const char *name)
{
	char *path = g_build_filename(dir, name, NULL);
	char *text = read_text(path, LIMIT_FILE_MAX);
	g_free(path);
	uint64_t limit = UINT64_MAX;
	if (text && g_ascii_isdigit(text[0])) {
		char *end;
		errno = 0;
		guint64 n = g_ascii_strtoull(text, &end, 10);
		if (errno == 0 && (*end == '\0' || *end == '\n'))
			limit = n;
	}
	g_free(text);
	return limit;
}

/* The smallest limit of files in dir and the directories above it, up to top. */
static uint64_t walk_up(const char *top, const char *dir, const char *const *files)
{
	uint64_t min = UINT64_MAX;
	char *at = g_strdup(dir);
	for (unsigned depth = 0; depth < DEPTH_MAX; depth++) {
		for (const char *const *f = files; *f; f++)
			min = MIN(min, limit_in(at, *f));
		if (strlen(at) <= strlen(top))
			break;
		char *up = g_path_get_dirname(at);
		g_free(at);
		at = up;
	}
	g_free(at);
	return min;
}

/* Whether the comma-separated list has item. */
static bool listed(const char *list, const char *item)
{
	char **items = g_strsplit(list, ",", -1);
	bool found = g_strv_contains((const char *const *)items, item);
	g_strfreev(items);
	return found;
}

/*
 * The path in its hierarchy of this process's group (g_free): of cgroup v2
 * without controller, else of the v1 hierarchy with it. NULL: none.
 */
static char *group_of(const char *cgroup, const char *controller)
{
	char **lines = g_strsplit(cgroup, "\n", -1);
	char *path = NULL;
	for (char **l = lines; *l && !path; l++) {
		char **f = g_strsplit(*l, ":", 3);
		if (g_strv_length(f) == 3 &&
		    (controller ? listed(f[1], controller) : !strcmp(f[0], "0") && !*f[1]))
			path = g_strdup(f[2]);
		g_strfreev(f);
	}
	g_strfreev(lines);
	return path;
}

/* The part of group below root, a mount's root in the hierarchy; NULL: not below it. */
static const char *below(const char *group, const char *root)
{
	size_t skip = strcmp(root, "/") ? strlen(root) : 0;
	if (strncmp(group, root, skip) != 0 || (group[skip] != '/' && group[skip] != '\0'))
		return NULL;
	return group + skip + strspn(group + skip, "/");
}

/* Whether path has a ".." component: a group outside the cgroup namespace's root. */
static bool climbs(const char *path)
{
	char **parts = g_strsplit(path, "/", -1);
	bool up = g_strv_contains((const char *const *)parts, "..");
	g_strfreev(parts);
	return up;
}

/*
 * The directory of group under the mount of the hierarchy's root at point
 * (both escaped as in mountinfo), g_free; *top: the mount point's (g_free).
 * NULL: the mount does not show the group.
 */
static char *dir_in_mount(const char *prefix, const char *root_esc, const char *point_esc,
			  const char *group, char **top)
{
	char *root = g_strcompress(root_esc);
	const char *rel = below(group, root);
	char *dir = NULL;
	if (rel) {
		char *point = g_strcompress(point_esc);
		*top = g_build_filename(prefix, point, NULL);
		dir = g_build_filename(*top, rel, NULL);
		g_free(point);
	}
	g_free(root);
	return dir;
}

/*
 * The directory of group in the first mount of the hierarchy of fstype
 * (with controller among its options, if given) that shows it, g_free;
 * *top: that mount point's (g_free). NULL: none does (proc(5),
 * /proc/pid/mountinfo).
 */
static char *group_dir(const char *prefix, const char *mountinfo, const char *fstype,
		       const char *controller, const char *group, char **top)
{
	char **lines = g_strsplit(mountinfo, "\n", -1);
	char *dir = NULL;
	for (char **l = lines; *l && !dir; l++) {
		char **f = g_strsplit(*l, " ", -1);
		guint n = g_strv_length(f), dash = 6;
		while (dash < n && strcmp(f[dash], "-") != 0)
			dash++;
		if (dash + 3 < n && !strcmp(f[dash + 1], fstype) &&
		    (!controller || listed(f[dash + 3], controller)))
			dir = dir_in_mount(prefix, f[3], f[4], group, top);
		g_strfreev(f);
	}
	g_strfreev(lines);
	return dir;
}

/* The limit of group (a path in its hierarchy) and the groups above it that its mount shows. */
static uint64_t hierarchy_limit(const char *prefix, const char *mountinfo, const char *fstype,
				const char *controller, const char *group, const char *const *files)
{
	char *top;
	char *dir = climbs(group) ? NULL
				  : group_dir(prefix, mountinfo, fstype, controller, group, &top);
	if (!dir)
		return UINT64_MAX;
	uint64_t limit = walk_up(top, dir, files);
	g_free(dir);
	g_free(top);
	return limit;
}

uint64_t cfs_memory_limit_at(const char *root)
{
	char *path = g_build_filename(root, "proc/self/cgroup", NULL);
	char *cgroup = read_text(path, CGROUP_FILE_MAX);
	g_free(path);
	path = g_build_filename(root, "proc/self/mountinfo", NULL);
	char *mountinfo = cgroup ? read_text(path, MOUNTINFO_MAX) : NULL;
	g_free(path);
	uint64_t limit = UINT64_MAX;
	char *group;
	if (mountinfo && (group = group_of(cgroup, NULL))) {
		limit = MIN(limit,
			    hierarchy_limit(root, mountinfo, "cgroup2", NULL, group, v2_files));
		g_free(group);
	}
	if (mountinfo && (group = group_of(cgroup, "memory"))) {
		limit = MIN(limit,
			    hierarchy_limit(root, mountinfo, "cgroup", "memory", group, v1_files));
		g_free(group);
	}
	g_free(mountinfo);
	g_free(cgroup);
	return limit;
}
