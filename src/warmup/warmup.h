/*
 * `chunkfs warmup [--jobs N] [--check] PATH...`: fetch the files named
 * (files or directories inside a chunkfs mount, or "-" for a list of
 * paths on stdin) into the mount's cache tiers ahead of a job, in the
 * order given, without reading them through the page cache, with a
 * progress bar on a terminal and a line every 2 s otherwise; --check
 * only says how much of each is in memory, on disk or only remote.
 */
#ifndef CHUNKFS_WARMUP_H
#define CHUNKFS_WARMUP_H

/*
 * Run the command: argv[0] is "warmup", the rest its options and paths.
 * Returns the exit status: 0 when every file was warmed (or checked), 1
 * when one failed or did not fit under the caps, 2 for a usage error or a
 * path outside a chunkfs mount. Writes to stdout (--check) and stderr.
 * Not thread-safe (one per process).
 */
int cfs_warmup_main(int argc, char **argv);

#endif
