/*
 * cfs_memory_limit_at() on directories laid out as /proc/self and the
 * cgroup mounts of v2, v1 and hybrid systems and of containers.
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <stdint.h>

#include "util/memlimit.h"

#define V2_MOUNT "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
#define V1_MOUNT "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
#define V1_UNLIMITED "9223372036854771712\n"

/* Write text to root/rel, creating its directories. */
static void put(const char *root, const char *rel, const char *text)
{
	char *path = g_build_filename(root, rel, NULL);
	char *dir = g_path_get_dirname(path);
	g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
	g_assert_true(g_file_set_contents(path, text, -1, NULL));
	g_free(dir);
	g_free(path);
}

/* A fresh directory holding proc/self/cgroup and proc/self/mountinfo. */
static char *system_new(const char *cgroup, const char *mountinfo)
{
	char *root = g_dir_make_tmp("unit_memlimit-XXXXXX", NULL);
	g_assert_nonnull(root);
	put(root, "proc/self/cgroup", cgroup);
	put(root, "proc/self/mountinfo", mountinfo);
	return root;
}

/* Remove path and everything under it; whether path itself went. */
static gboolean remove_tree(const char *path)
{
	GDir *dir = g_dir_open(path, 0, NULL);
	if (dir) {
		const char *name;
		while ((name = g_dir_read_name(dir))) {
			char *child = g_build_filename(path, name, NULL);
			remove_tree(child);
			g_free(child);
		}
		g_dir_close(dir);
	}
	return g_remove(path) == 0;
}

static void system_free(char *root)
{
	g_assert_true(remove_tree(root));
	g_free(root);
}

/* cgroup v2: the smallest of memory.max and memory.high, the group's and its parents'. */
static void test_v2_nested(void)
{
	char *root = system_new("0::/a/b\n", V2_MOUNT);
	put(root, "sys/fs/cgroup/a/memory.max", "1073741824\n");
	put(root, "sys/fs/cgroup/a/b/memory.max", "max\n");
	put(root, "sys/fs/cgroup/a/b/memory.high", "max\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_C(1) << 30);
	put(root, "sys/fs/cgroup/a/b/memory.high", "536870912\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_C(1) << 29);
	system_free(root);
}

/* No group sets a limit, or the files are missing: none. */
static void test_v2_unlimited(void)
{
	char *root = system_new("0::/a\n", V2_MOUNT);
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_MAX);
	put(root, "sys/fs/cgroup/a/memory.max", "max\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_MAX);
	system_free(root);
}

/* cgroup v1: memory.limit_in_bytes of the memory controller's hierarchy. */
static void test_v1(void)
{
	char *root = system_new("5:devices:/x\n4:memory:/x\n0::/\n", V1_MOUNT);
	put(root, "sys/fs/cgroup/memory/memory.limit_in_bytes", V1_UNLIMITED);
	put(root, "sys/fs/cgroup/memory/x/memory.limit_in_bytes", "268435456\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_C(256) << 20);
	system_free(root);
}

/* Hybrid: a v2 hierarchy without the memory controller beside v1's memory. */
static void test_hybrid(void)
{
	char *root = system_new("4:memory:/svc\n0::/svc\n", V1_MOUNT
				"41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
	put(root, "sys/fs/cgroup/unified/svc/cgroup.procs", "1\n");
	put(root, "sys/fs/cgroup/memory/svc/memory.limit_in_bytes", "134217728\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_C(128) << 20);
	system_free(root);
}

/*
 * A container: the hierarchy mounted from the pod's group, whose limit is
 * on the mount point itself; the mount point escaped as mountinfo does.
 */
static void test_container_mount_root(void)
{
	char *root = system_new(
		"0::/kubepods/pod1/c1\n",
		"30 23 0:26 /kubepods/pod1 /sys/fs/cgroup\\040x ro - cgroup2 cgroup2 rw\n");
	put(root, "sys/fs/cgroup x/c1/memory.max", "536870912\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_C(512) << 20);
	put(root, "sys/fs/cgroup x/memory.max", "268435456\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_C(256) << 20);
	system_free(root);
}

/*
 * A container with its own cgroup namespace: its group is "/", the root of
 * the mount, whose files are the container's; a first mount that does not
 * show the group is passed over.
 */
static void test_namespace_root(void)
{
	char *root = system_new(
		"0::/\n", "29 23 0:26 /other /mnt/elsewhere rw - cgroup2 cgroup2 rw\n" V2_MOUNT);
	put(root, "sys/fs/cgroup/memory.max", "536870912\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_C(512) << 20);
	system_free(root);
}

/* A group whose name only begins with dots is a group like another. */
static void test_dotted_name(void)
{
	char *root = system_new("0::/..x\n", V2_MOUNT);
	put(root, "sys/fs/cgroup/..x/memory.max", "268435456\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_C(256) << 20);
	system_free(root);
}

/* A group outside what the mount shows, or reached through "..", has no limit seen. */
static void test_outside_the_mount(void)
{
	char *root = system_new("0::/other\n",
				"30 23 0:26 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
	put(root, "sys/fs/cgroup/memory.max", "536870912\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_MAX);
	put(root, "proc/self/cgroup", "0::/kubepods/../x\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_MAX);
	put(root, "proc/self/cgroup", "0::/kubepodsx\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_MAX);
	system_free(root);
}

/* What is not a decimal number of bytes is no limit; nothing to read is none. */
static void test_not_a_number(void)
{
	const char *bad[] = { "", "-5\n", "12abc\n", " 7\n", "99999999999999999999999\n" };
	char *root = system_new("0::/a\n", V2_MOUNT);
	for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
		put(root, "sys/fs/cgroup/a/memory.max", bad[i]);
		g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_MAX);
	}
	put(root, "proc/self/cgroup", "garbage without colons\n");
	put(root, "proc/self/mountinfo", "1 2 3\n - \n\n");
	g_assert_cmpuint(cfs_memory_limit_at(root), ==, UINT64_MAX);
	system_free(root);
	g_assert_cmpuint(cfs_memory_limit_at("/nonexistent-unit_memlimit"), ==, UINT64_MAX);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/memlimit/v2-nested", test_v2_nested);
	g_test_add_func("/memlimit/v2-unlimited", test_v2_unlimited);
	g_test_add_func("/memlimit/v1", test_v1);
	g_test_add_func("/memlimit/hybrid", test_hybrid);
	g_test_add_func("/memlimit/container-mount-root", test_container_mount_root);
	g_test_add_func("/memlimit/namespace-root", test_namespace_root);
	g_test_add_func("/memlimit/dotted-name", test_dotted_name);
	g_test_add_func("/memlimit/outside-the-mount", test_outside_the_mount);
	g_test_add_func("/memlimit/not-a-number", test_not_a_number);
	return g_test_run();
}
