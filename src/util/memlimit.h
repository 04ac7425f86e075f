/*
 * The memory this process may use: the smallest memory limit of the control
 * groups it runs in (a container's, a systemd unit's), so that defaults
 * sized from memory fit inside it rather than inside the machine.
 */
#ifndef CFS_UTIL_MEMLIMIT_H
#define CFS_UTIL_MEMLIMIT_H

#include <stdint.h>

/**
 * cfs_memory_limit_at() - the smallest memory limit, in bytes, over the
 * control group of this process and the groups above it, as far as the
 * mounted hierarchy shows them: cgroup v2's memory.max and memory.high
 * ("max" is none), cgroup v1's memory.limit_in_bytes of the memory
 * controller (Linux Documentation/admin-guide/cgroup-v2.rst, "Memory
 * Interface Files"; cgroup-v1/memory.rst). The groups come from
 * ROOT/proc/self/cgroup and where their hierarchies are mounted from
 * ROOT/proc/self/mountinfo (proc(5)).
 * @root: the directory every path read is under: "/" for this system; a
 *        directory laid out the same way for tests. Not retained.
 *
 * Each file is read up to a bound (a longer one is parsed as far as the
 * bound); a file that is missing, unreadable or not a number counts as no
 * limit. Thread-safe.
 *
 * Return: the limit in bytes, or UINT64_MAX when no group sets one.
 */
uint64_t cfs_memory_limit_at(const char *root);

#endif
