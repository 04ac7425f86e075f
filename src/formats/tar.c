/* The member index of tar archives, from their headers: ustar, GNU and pax. */
#include "formats/tar.h"

#include <gio/gio.h>
#include <stdbool.h>
#include <string.h>

#include "util/times.h"

#define BLOCK CFS_TAR_BLOCK

/* ustar header fields (POSIX.1-2017 pax, "ustar Interchange Format"). */
#define NAME 0
#define NAME_LEN 100
#define SIZE 124
#define SIZE_LEN 12
#define MTIME 136
#define MTIME_LEN 12
#define CHKSUM 148
#define CHKSUM_LEN 8
#define TYPEFLAG 156
#define MAGIC 257
#define PREFIX 345
#define PREFIX_LEN 155

struct cfs_tar_scan {
	uint64_t size;              /* of the archive */
	uint64_t pos;               /* of the next header */
	uint64_t want;              /* bytes needed at pos: one block, a block and its record, or
				       two blocks after a zero block */
	enum cfs_tar_status status; /* CFS_TAR_NEED until the archive ends or fails */
	char *long_name;            /* GNU 'L': the path of the next member */
	char *pax_path;             /* pax 'x': the path of the next member */
	uint64_t pax_size;          /* pax 'x': the size of the next member, when has_pax_size */
	bool has_pax_size;
	int64_t pax_mtime_us; /* pax 'x': the mtime of the next member, or CFS_TIME_UNKNOWN */
};

void cfs_tar_member_free(gpointer member)
{
	struct cfs_tar_member *m = member;
	if (!m)
		return;
	g_free(m->path);
	g_free(m);
}

struct cfs_tar_scan *cfs_tar_scan_new(uint64_t archive_size)
{
	struct cfs_tar_scan *s = g_new0(struct cfs_tar_scan, 1);
	s->size = archive_size;
	s->want = BLOCK;
	s->status = CFS_TAR_NEED;
	s->pax_mtime_us = CFS_TIME_UNKNOWN;
	return s;
}

void cfs_tar_scan_free(struct cfs_tar_scan *s)
{
	if (!s)
		return;
	g_free(s->long_name);
	g_free(s->pax_path);
	g_free(s);
}

void cfs_tar_scan_want(const struct cfs_tar_scan *s, uint64_t *pos, uint64_t *len)
{
	*pos = s->pos;
	*len = MIN(s->want, s->size - s->pos);
}

static void fail(struct cfs_tar_scan *s, GError **error, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* Fails the scan with a message about the header at s->pos. */
static void fail(struct cfs_tar_scan *s, GError **error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *why = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
		    "tar header at byte %" G_GUINT64_FORMAT ": %s", s->pos, why);
	g_free(why);
	s->status = CFS_TAR_ERROR;
}

static bool is_zero(const uint8_t *b)
{
	for (unsigned i = 0; i < BLOCK; i++)
		if (b[i])
			return false;
	return true;
}

/* An octal field: optional spaces, digits, then spaces or NULs; empty is 0. */
static bool octal(const uint8_t *f, size_t n, uint64_t *v)
{
	const uint8_t *nul = memchr(f, '\0', n);
	size_t end = nul ? (size_t)(nul - f) : n, i = 0;
	while (i < end && f[i] == ' ')
		i++;
	while (end > i && f[end - 1] == ' ')
		end--;
	*v = 0;
	for (; i < end; i++) {
		if (f[i] < '0' || f[i] > '7' || *v >> 61)
			return false;
		*v = *v << 3 | (uint64_t)(f[i] - '0');
	}
	return true;
}

/* The size field: octal, or GNU base-256 (leading bit set; the next bit is the sign). */
static bool header_size(const uint8_t *h, uint64_t *v)
{
	const uint8_t *f = h + SIZE;
	if (!(f[0] & 0x80))
		return octal(f, SIZE_LEN, v);
	if (f[0] & 0x40)
		return false;
	*v = f[0] & 0x3f;
	for (unsigned i = 1; i < SIZE_LEN; i++) {
		if (*v >> 56)
			return false;
		*v = *v << 8 | f[i];
	}
	return true;
}

/* Seconds as microseconds, or CFS_TIME_UNKNOWN past what they can hold. */
static int64_t seconds_us(uint64_t secs)
{
	return secs > (uint64_t)(G_MAXINT64 / G_USEC_PER_SEC) ? CFS_TIME_UNKNOWN
							      : (int64_t)secs * G_USEC_PER_SEC;
}

/*
 * The mtime field: seconds since the epoch, octal or GNU base-256; a time
 * before the epoch (base-256's sign bit) or a malformed field is unknown,
 * never an error: a member's time only shows in stat.
 */
static int64_t header_mtime(const uint8_t *h)
{
	const uint8_t *f = h + MTIME;
	uint64_t v;
	if (!(f[0] & 0x80))
		return octal(f, MTIME_LEN, &v) ? seconds_us(v) : CFS_TIME_UNKNOWN;
	if (f[0] & 0x40)
		return CFS_TIME_UNKNOWN;
	v = f[0] & 0x3f;
	for (unsigned i = 1; i < MTIME_LEN; i++) {
		if (v >> 56)
			return CFS_TIME_UNKNOWN;
		v = v << 8 | f[i];
	}
	return seconds_us(v);
}

/*
 * A pax mtime value (POSIX.1-2017 pax, "mtime": decimal seconds since the
 * epoch, a sign and a fraction allowed) in microseconds, or
 * CFS_TIME_UNKNOWN when it is not one or out of range.
 */
static int64_t pax_mtime(const uint8_t *val, size_t len)
{
	size_t i = len && val[0] == '-';
	bool negative = i == 1;
	uint64_t secs = 0, frac_us = 0, scale = G_USEC_PER_SEC;
	size_t first_digit = i;
	for (; i < len && g_ascii_isdigit(val[i]); i++) {
		if (secs > (uint64_t)(G_MAXINT64 / G_USEC_PER_SEC) / 10)
			return CFS_TIME_UNKNOWN;
		secs = secs * 10 + (uint64_t)(val[i] - '0');
	}
	if (i == first_digit)
		return CFS_TIME_UNKNOWN;
	if (i < len && val[i] == '.') {
		for (i++; i < len && g_ascii_isdigit(val[i]); i++) {
			scale /= 10; /* digits past the microsecond add nothing */
			frac_us += (uint64_t)(val[i] - '0') * scale;
		}
	}
	int64_t us = seconds_us(secs);
	if (i != len || us == CFS_TIME_UNKNOWN || us > G_MAXINT64 - (int64_t)frac_us)
		return CFS_TIME_UNKNOWN;
	return negative ? -us - (int64_t)frac_us : us + (int64_t)frac_us;
}

/* The sum of the header's bytes with the checksum field as spaces; old tars summed signed
 * chars, which GNU tar and Python's tarfile still accept. */
static bool checksum_ok(const uint8_t *h)
{
	uint64_t stored, sum = 0;
	int64_t signed_sum = 0;
	if (!octal(h + CHKSUM, CHKSUM_LEN, &stored))
		return false;
	for (unsigned i = 0; i < BLOCK; i++) {
		uint8_t c = i >= CHKSUM && i < CHKSUM + CHKSUM_LEN ? ' ' : h[i];
		sum += c;
		signed_sum += (int8_t)c;
	}
	return stored == sum || (int64_t)stored == signed_sum;
}

/* Moves past a header and n bytes of data padded to a block, the padding of the archive's
 * last member being optional. */
static void advance(struct cfs_tar_scan *s, uint64_t n)
{
	uint64_t rest = s->size - s->pos, padded = n + (BLOCK - n % BLOCK) % BLOCK;
	s->pos = padded >= rest ? s->size : s->pos + padded;
	s->want = BLOCK;
}

/* One zero block ends the archive when a second one or the archive's end follows. */
static void zero_block(struct cfs_tar_scan *s, const uint8_t *h, uint64_t avail, GError **error)
{
	if (s->size - s->pos < 2 * BLOCK) {
		s->status = CFS_TAR_END;
	} else if (avail < 2 * BLOCK) {
		s->want = 2 * BLOCK;
	} else if (is_zero(h + BLOCK)) {
		s->status = CFS_TAR_END;
	} else {
		fail(s, error, "a lone zero block before more headers");
	}
}

/* One pax record's value for a keyword this scanner uses; an empty value removes it. */
static bool pax_apply(struct cfs_tar_scan *s, const char *key, size_t key_len, const uint8_t *val,
		      size_t val_len)
{
	if (key_len == 4 && memcmp(key, "path", 4) == 0) {
		g_free(s->pax_path);
		s->pax_path = val_len ? g_strndup((const char *)val, val_len) : NULL;
	} else if (key_len == 4 && memcmp(key, "size", 4) == 0) {
		s->has_pax_size = val_len > 0;
		s->pax_size = 0;
		for (size_t i = 0; i < val_len; i++) {
			if (!g_ascii_isdigit(val[i]) || s->pax_size > (G_MAXUINT64 - 9) / 10)
				return false;
			s->pax_size = s->pax_size * 10 + (uint64_t)(val[i] - '0');
		}
	} else if (key_len == 5 && memcmp(key, "mtime", 5) == 0) {
		s->pax_mtime_us = pax_mtime(val, val_len);
	}
	return true;
}

/* The pax record "LEN keyword=value\n" at the start of p[0..n); LEN counts the whole record. */
static bool pax_record(struct cfs_tar_scan *s, const uint8_t *p, uint64_t n, bool apply,
		       uint64_t *len)
{
	uint64_t digits = 0;
	*len = 0;
	while (digits < n && g_ascii_isdigit(p[digits]) && *len <= n)
		*len = *len * 10 + (uint64_t)(p[digits++] - '0');
	if (digits == 0 || digits == n || p[digits] != ' ' || *len > n || *len < digits + 3 ||
	    p[*len - 1] != '\n')
		return false;
	const uint8_t *kv = p + digits + 1, *end = p + *len - 1;
	const uint8_t *eq = memchr(kv, '=', (size_t)(end - kv));
	if (!eq || eq == kv)
		return false;
	return !apply ||
	       pax_apply(s, (const char *)kv, (size_t)(eq - kv), eq + 1, (size_t)(end - eq - 1));
}

/* The records of a pax header; NULs after the last one are padding. Only an 'x' header
 * (apply) changes the next member. */
static bool pax_records(struct cfs_tar_scan *s, const uint8_t *p, uint64_t n, bool apply,
			GError **error)
{
	uint64_t len;
	for (uint64_t i = 0; i < n && p[i] != '\0'; i += len) {
		if (!pax_record(s, p + i, n - i, apply, &len)) {
			fail(s, error, "malformed pax record at byte %" G_GUINT64_FORMAT " of %"
			     G_GUINT64_FORMAT, i, n);
			return false;
		}
	}
	return true;
}

/* GNU 'L'/'K' and pax 'x'/'g' (and Solaris 'X') headers: records for the next member. */
static bool is_meta(char type)
{
	return type == 'L' || type == 'K' || type == 'x' || type == 'X' || type == 'g';
}

static void meta(struct cfs_tar_scan *s, const uint8_t *h, uint64_t avail, char type,
		 uint64_t size, GError **error)
{
	if (size > CFS_TAR_MAX_META) {
		fail(s, error, "'%c' record of %" G_GUINT64_FORMAT
		     " bytes is over the %u-byte limit", type, size, CFS_TAR_MAX_META);
		return;
	}
	if (size > s->size - s->pos - BLOCK) {
		fail(s, error, "'%c' record of %" G_GUINT64_FORMAT " bytes runs past the end (%"
		     G_GUINT64_FORMAT ")", type, size, s->size);
		return;
	}
	if (avail < BLOCK + size) {
		s->want = BLOCK + size;
		return;
	}
	const uint8_t *data = h + BLOCK;
	if (type == 'L') {
		g_free(s->long_name);
		s->long_name = g_strndup((const char *)data, size);
	} else if (type != 'K' && !pax_records(s, data, size, type != 'g', error)) {
		return;
	}
	advance(s, BLOCK + size);
}

/* The member's path as the headers before it and its own give it. */
static char *member_path(struct cfs_tar_scan *s, const uint8_t *h)
{
	if (s->pax_path) {
		g_clear_pointer(&s->long_name, g_free);
		return g_steal_pointer(&s->pax_path);
	}
	if (s->long_name)
		return g_steal_pointer(&s->long_name);
	char *name = g_strndup((const char *)h + NAME, NAME_LEN);
	/* Only POSIX ustar has the prefix; GNU's "ustar  " keeps times there. */
	if (memcmp(h + MAGIC, "ustar\0", 6) != 0 || h[PREFIX] == '\0')
		return name;
	char *prefix = g_strndup((const char *)h + PREFIX, PREFIX_LEN);
	char *path = g_strconcat(prefix, "/", name, NULL);
	g_free(prefix);
	g_free(name);
	return path;
}

static void member(struct cfs_tar_scan *s, const uint8_t *h, char type, uint64_t size,
		   GPtrArray *out, GError **error)
{
	if (s->has_pax_size)
		size = s->pax_size;
	/* Links, devices, directories and FIFOs have no data whatever their size says (as
	 * Python's tarfile reads them). */
	if (type && memchr("123456", type, 6))
		size = 0;
	uint64_t offset = s->pos + BLOCK;
	if (size > s->size - offset) {
		fail(s, error, "member of %" G_GUINT64_FORMAT " bytes runs past the end (%"
		     G_GUINT64_FORMAT ")", size, s->size);
		return;
	}
	struct cfs_tar_member *m = g_new(struct cfs_tar_member, 1);
	m->path = member_path(s, h);
	m->type = type == '\0' || type == '7' ? '0' : type;
	m->offset = offset;
	m->size = size;
	m->mtime_us = s->pax_mtime_us != CFS_TIME_UNKNOWN ? s->pax_mtime_us : header_mtime(h);
	g_ptr_array_add(out, m);
	s->has_pax_size = false;
	s->pax_mtime_us = CFS_TIME_UNKNOWN;
	advance(s, BLOCK + size);
}

/* The header at s->pos, with avail >= s->want bytes from it in h: consumed, or s->want
 * raised when it needs more, or the scan ended. */
static void step(struct cfs_tar_scan *s, const uint8_t *h, uint64_t avail, GPtrArray *out,
		 GError **error)
{
	uint64_t size;
	if (is_zero(h))
		zero_block(s, h, avail, error);
	else if (!checksum_ok(h))
		fail(s, error, "bad checksum");
	else if (!header_size(h, &size))
		fail(s, error, "the size field is not a number");
	else if (is_meta((char)h[TYPEFLAG]))
		meta(s, h, avail, (char)h[TYPEFLAG], size, error);
	else
		member(s, h, (char)h[TYPEFLAG], size, out, error);
}

enum cfs_tar_status cfs_tar_scan_feed(struct cfs_tar_scan *s, uint64_t pos, const uint8_t *buf,
				      size_t len, GPtrArray *out, GError **error)
{
	uint64_t want_pos, want_len;
	cfs_tar_scan_want(s, &want_pos, &want_len);
	if (s->status == CFS_TAR_ERROR || pos != want_pos || len < want_len) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "tar scan fed %zu bytes at %" G_GUINT64_FORMAT ", it wanted %"
			    G_GUINT64_FORMAT " at %" G_GUINT64_FORMAT "%s", len, pos, want_len,
			    want_pos, s->status == CFS_TAR_ERROR ? " and had failed" : "");
		return CFS_TAR_ERROR;
	}
	uint64_t end = pos + MIN((uint64_t)len, s->size - pos);
	while (s->status == CFS_TAR_NEED) {
		if (s->pos == s->size) {
			s->status = CFS_TAR_END;
		} else if (s->size - s->pos < BLOCK) {
			fail(s, error, "truncated: the archive ends %" G_GUINT64_FORMAT
			     " bytes into it", s->size - s->pos);
		} else if (s->pos <= end && end - s->pos >= MIN(s->want, s->size - s->pos)) {
			step(s, buf + (s->pos - pos), end - s->pos, out, error);
		} else {
			break;
		}
	}
	return s->status;
}
