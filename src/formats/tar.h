/*
 * Reading the member index of a tar archive from its headers, without
 * reading the members' data: POSIX ustar (name with the prefix field),
 * GNU tar ('L' long names, 'K' long link names, base-256 sizes and times)
 * and pax ('x' extended headers with path, size and mtime records, 'g'
 * global headers).
 * Sources: POSIX.1-2017 "pax" (ustar Interchange Format, pax Extended
 * Header), GNU tar manual "Basic Tar Format".
 *
 * Streaming: the caller asks the scanner which bytes it needs next
 * (cfs_tar_scan_want) and feeds a window that starts there; the scanner
 * consumes every header in the window and jumps over data. One scanner
 * per archive; not thread-safe; no I/O.
 */
#ifndef CHUNKFS_TAR_H
#define CHUNKFS_TAR_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#define CFS_TAR_BLOCK 512
/* Largest GNU long name or pax header accepted, in bytes. */
#define CFS_TAR_MAX_META (1u << 20)

struct cfs_tar_member {
	char *path;      /* as stored (pax path, GNU long name, or ustar prefix "/" name) */
	char type;       /* typeflag; '\0' and '7' (contiguous) are reported as '0' */
	uint64_t offset; /* bytes: where the member's data starts in the archive */
	uint64_t size;   /* bytes of data (pax size wins over the header's); 0 for links,
			    devices, directories and FIFOs, as Python's tarfile reads them */
	int64_t mtime_us; /* microseconds since the epoch: pax mtime, else the header's mtime
			     field; CFS_TIME_UNKNOWN (util/times.h) when malformed or negative
			     there, which is no error */
};

/* Free a struct cfs_tar_member and its path (a GDestroyNotify); member may be NULL. */
void cfs_tar_member_free(gpointer member);

enum cfs_tar_status {
	CFS_TAR_NEED,  /* feed the bytes cfs_tar_scan_want() names */
	CFS_TAR_END,   /* the end-of-archive marker (two zero blocks, or one followed by the
			  archive's end), or the archive's end at a header boundary */
	CFS_TAR_ERROR,
};

struct cfs_tar_scan;

/* A scanner of an archive of archive_size bytes, wanting its first header. */
struct cfs_tar_scan *cfs_tar_scan_new(uint64_t archive_size);
/* Free s and the names it was putting together; s may be NULL. */
void cfs_tar_scan_free(struct cfs_tar_scan *s);

/*
 * The bytes the scanner needs next: [*pos, *pos + *len), with *len at
 * most CFS_TAR_MAX_META + CFS_TAR_BLOCK and never past archive_size
 * (0 once the scan is at the archive's end).
 */
void cfs_tar_scan_want(const struct cfs_tar_scan *s, uint64_t *pos, uint64_t *len);

/*
 * Feed bytes [pos, pos + len) of the archive: pos must be the *pos that
 * cfs_tar_scan_want() gave and len at least its *len (more is better: every
 * header inside the window is consumed in this call). Appends a
 * struct cfs_tar_member * per member found (regular files, directories,
 * links and others alike; GNU long-name and pax records are applied, not
 * reported) to out, which takes ownership (free with cfs_tar_member_free).
 * Returns CFS_TAR_NEED when more bytes are wanted, CFS_TAR_END when the
 * archive is complete, or CFS_TAR_ERROR with *error set
 * (G_IO_ERROR_INVALID_DATA) and a message naming the byte offset of the
 * header and the problem: a bad header checksum, a size field that is not
 * a number, a member whose data runs past archive_size, a GNU or pax
 * record longer than CFS_TAR_MAX_META, a malformed pax record, a header
 * cut by the archive's end, a lone zero block before more headers.
 * Members found before an error stay in out. A window other than the one
 * wanted, or a feed after CFS_TAR_ERROR, fails with
 * G_IO_ERROR_INVALID_ARGUMENT.
 */
enum cfs_tar_status cfs_tar_scan_feed(struct cfs_tar_scan *s, uint64_t pos, const uint8_t *buf,
				      size_t len, GPtrArray *out, GError **error);

#endif
