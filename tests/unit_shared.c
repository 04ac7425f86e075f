/*
 * Unit tests of the shared tier's keys and values (shared/value.h): the
 * documented key of a known identity (the same as the Python of
 * tests/cfsutil.py computes), the parts of a block, and value headers
 * encoded and decoded back, with every field, the length and the checksum
 * checked; and the order in which the tier's lookup threads take queued
 * lookups (shared/shared.h), against a memcached of the test's own that
 * answers one lookup at a time; run by `meson test`.
 */
#include <errno.h>
#include <glib.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shared/shared.h"
#include "shared/value.h"

static const struct cfs_shared_id known = {
	"http://127.0.0.1:8080/chunk-0-0.bin", "\"abc-12\"", 3000000, 1048576, 2, false
};

static void test_keys(void)
{
	struct cfs_shared_hash h = cfs_shared_hash_of(&known);
	struct cfs_shared_part p = cfs_shared_part_of(&h, 1048576, 3);
	char key[CFS_SHARED_KEY_SIZE];
	cfs_shared_key(&p, key);
	/* XXH3-128 of the identity text, as python3-xxhash's xxh3_128_hexdigest() gives it */
	g_assert_cmpstr(key, ==, "chunkfs:f300500238db1f28ca395963fcbaacf2:3");
	struct cfs_shared_id decompressed = known;
	decompressed.decompressed = true;
	h = cfs_shared_hash_of(&decompressed);
	p = cfs_shared_part_of(&h, 1048576, 0);
	cfs_shared_key(&p, key);
	g_assert_cmpstr(key, ==, "chunkfs:324f7720978633ece743ae3b363a1c50:0");
	struct cfs_shared_part last = cfs_shared_part_of(&h, 64u << 20, 255);
	cfs_shared_key(&last, key);
	g_assert_cmpuint(strlen(key) + 1, <=, CFS_SHARED_KEY_SIZE);
}

/* URLs that differ only in their query (a presigned URL's signature) are other blocks. */
static void test_url_query(void)
{
	struct cfs_shared_id a = known, b = known;
	a.url = "http://127.0.0.1:8080/chunk-0-0.bin?X-Amz-Signature=aaaa";
	b.url = "http://127.0.0.1:8080/chunk-0-0.bin?X-Amz-Signature=bbbb";
	struct cfs_shared_hash ha = cfs_shared_hash_of(&a), hb = cfs_shared_hash_of(&b);
	g_assert_true(memcmp(ha.b, hb.b, sizeof(ha.b)) != 0);
}

static void test_parts(void)
{
	struct cfs_shared_hash h = cfs_shared_hash_of(&known);
	g_assert_cmpuint(cfs_shared_parts(1), ==, 1);
	g_assert_cmpuint(cfs_shared_parts(CFS_SHARED_PART_BYTES), ==, 1);
	g_assert_cmpuint(cfs_shared_parts(CFS_SHARED_PART_BYTES + 1), ==, 2);
	g_assert_cmpuint(cfs_shared_parts(1048576), ==, 4);
	g_assert_cmpuint(cfs_shared_parts(64u << 20), ==, 256);
	/* Lengths above the largest block, where block_len + part - 1 would wrap. */
	g_assert_cmpuint(cfs_shared_parts(CFS_SHARED_MAX_BLOCK + 1), ==, 0);
	g_assert_cmpuint(cfs_shared_parts(UINT32_MAX), ==, 0);
	struct cfs_shared_part p = cfs_shared_part_of(&h, 900000, 3);
	g_assert_cmpuint(p.lo, ==, 3 * CFS_SHARED_PART_BYTES);
	g_assert_cmpuint(p.len, ==, 900000 - 3 * CFS_SHARED_PART_BYTES);
	g_assert_cmpuint(p.parts, ==, 4);
}

/* A value of part 1 of a block of 300000 bytes, its data a pattern. */
static uint8_t *make_value(struct cfs_shared_part *p, size_t *n)
{
	struct cfs_shared_hash h = cfs_shared_hash_of(&known);
	*p = cfs_shared_part_of(&h, 300000, 1);
	uint8_t *data = g_malloc(p->len);
	for (uint32_t i = 0; i < p->len; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	*n = CFS_SHARED_HEADER_BYTES + p->len;
	uint8_t *value = g_malloc(*n);
	cfs_shared_value_encode(p, data, value);
	g_free(data);
	return value;
}

static void test_roundtrip(void)
{
	struct cfs_shared_part want, got;
	size_t n;
	uint8_t *value = make_value(&want, &n);
	const uint8_t *data = NULL;
	g_assert_cmpint(cfs_shared_value_decode(value, n, &got, &data), ==, 0);
	g_assert_true(cfs_shared_part_equal(&got, &want));
	g_assert_true(data == value + CFS_SHARED_HEADER_BYTES);
	for (uint32_t i = 0; i < got.len; i++)
		g_assert_cmpuint(data[i], ==, (uint8_t)(i * 7 + 3));
	g_free(value);
}

/* Any one byte of header or data changed, any length but the right one: refused. */
static void test_refused(void)
{
	struct cfs_shared_part want, got;
	size_t n;
	uint8_t *value = make_value(&want, &n);
	const uint8_t *data;
	for (size_t i = 0; i < n; i += i < CFS_SHARED_HEADER_BYTES ? 1 : 997) {
		value[i] ^= 0x20;
		g_assert_cmpint(cfs_shared_value_decode(value, n, &got, &data), ==, -EBADMSG);
		value[i] ^= 0x20;
	}
	size_t lens[] = { 0, 1, CFS_SHARED_HEADER_BYTES - 1, CFS_SHARED_HEADER_BYTES, n - 1 };
	for (size_t i = 0; i < G_N_ELEMENTS(lens); i++)
		g_assert_cmpint(cfs_shared_value_decode(value, lens[i], &got, &data), ==, -EBADMSG);
	uint8_t *longer = g_malloc0(n + 1);
	memcpy(longer, value, n);
	g_assert_cmpint(cfs_shared_value_decode(longer, n + 1, &got, &data), ==, -EBADMSG);
	g_free(longer);
	g_free(value);
}

/*
 * A header declaring a block of nearly 4 GiB as one part, checksum right:
 * refused (block_len + part - 1 once wrapped, making it one part).
 */
static void test_huge_block_refused(void)
{
	struct cfs_shared_hash h = cfs_shared_hash_of(&known);
	struct cfs_shared_part p = cfs_shared_part_of(&h, CFS_SHARED_PART_BYTES, 0);
	p.block_len = UINT32_MAX - 16;
	uint8_t *value = g_malloc0(CFS_SHARED_HEADER_BYTES + p.len);
	cfs_shared_value_encode(&p, value + CFS_SHARED_HEADER_BYTES, value);
	struct cfs_shared_part got;
	const uint8_t *data;
	g_assert_cmpint(
		cfs_shared_value_decode(value, CFS_SHARED_HEADER_BYTES + p.len, &got, &data), ==,
		-EBADMSG);
	g_free(value);
}

/* A valid value of another block or another part is decoded, and told apart. */
static void test_other_identity(void)
{
	struct cfs_shared_part want, got;
	size_t n;
	uint8_t *value = make_value(&want, &n);
	const uint8_t *data;
	g_assert_cmpint(cfs_shared_value_decode(value, n, &got, &data), ==, 0);
	struct cfs_shared_id other_id = known;
	other_id.etag = "\"abc-13\"";
	struct cfs_shared_hash other = cfs_shared_hash_of(&other_id);
	struct cfs_shared_part other_part = cfs_shared_part_of(&other, 300000, 1);
	g_assert_false(cfs_shared_part_equal(&got, &other_part));
	struct cfs_shared_part part0 = cfs_shared_part_of(&want.hash, 300000, 0);
	g_assert_false(cfs_shared_part_equal(&got, &part0));
	g_free(value);
}

/* ---- lookups in order: demand first, then as made ---- */

#define WAIT_US (20 * G_USEC_PER_SEC)
#define OP_NOOP 0x0a
#define OP_GETKQ 0x0d
#define BODY_MAX 4096 /* a get's body: at most a key of 250 bytes */

/*
 * A memcached of the test's own on 127.0.0.1, binary protocol (memcached's
 * protocol_binary.txt): it records the key of every quiet get, in the
 * order they come, and answers the NOOP that ends libmemcached's mget
 * (the gets unanswered: a miss) only while the test allows one more, so
 * that each lookup thread is held until the test frees exactly one.
 */
struct fake {
	int listener;
	uint16_t port;
	GThread *acceptor;
	GMutex lock;
	GCond cond;
	GPtrArray *keys;   /* char *, every quiet get's key as it came */
	GPtrArray *conns;  /* GThread * of each connection */
	GArray *fds;       /* int, each connection's socket */
	unsigned noops;    /* NOOPs read */
	unsigned allowed;  /* NOOPs that may be answered */
	unsigned answered; /* NOOPs answered */
	bool stopping;
};

struct conn {
	struct fake *f;
	int fd;
};

static bool read_full(int fd, uint8_t *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

/* Wait until NOOP number f->noops may be answered; false once stopping. Lock held. */
static bool wait_allowed(struct fake *f)
{
	while (!f->stopping && f->answered >= f->allowed)
		g_cond_wait(&f->cond, &f->lock);
	return !f->stopping;
}

/* Note one request of opcode op and body; false when its connection ends. */
static bool note_request(struct fake *f, uint8_t op, const uint8_t *body, uint16_t keylen,
			 uint8_t extlen)
{
	bool go = true;
	g_mutex_lock(&f->lock);
	if (op == OP_GETKQ)
		g_ptr_array_add(f->keys, g_strndup((const char *)body + extlen, keylen));
	if (op == OP_NOOP) {
		f->noops++;
		g_cond_broadcast(&f->cond);
		go = wait_allowed(f);
		f->answered += go;
	}
	g_mutex_unlock(&f->lock);
	return go;
}

static gpointer serve_conn(gpointer data)
{
	struct conn *k = data;
	uint8_t hdr[24], body[BODY_MAX];
	while (read_full(k->fd, hdr, sizeof(hdr))) {
		uint32_t bodylen = (uint32_t)hdr[8] << 24 | (uint32_t)hdr[9] << 16 |
				   (uint32_t)hdr[10] << 8 | hdr[11];
		uint16_t keylen = (uint16_t)(hdr[2] << 8 | hdr[3]);
		if (bodylen > sizeof(body) || (size_t)keylen + hdr[4] > bodylen ||
		    !read_full(k->fd, body, bodylen) ||
		    !note_request(k->f, hdr[1], body, keylen, hdr[4]))
			break;
		if (hdr[1] != OP_NOOP)
			continue;
		uint8_t reply[24] = { 0x81, OP_NOOP };
		memcpy(reply + 12, hdr + 12, 4); /* the opaque */
		if (write(k->fd, reply, sizeof(reply)) != sizeof(reply))
			break;
	}
	g_free(k);
	return NULL;
}

static gpointer accept_conns(gpointer data)
{
	struct fake *f = data;
	int fd;
	while ((fd = accept(f->listener, NULL, NULL)) >= 0) {
		struct conn *k = g_new(struct conn, 1);
		*k = (struct conn){ f, fd };
		g_mutex_lock(&f->lock);
		g_array_append_val(f->fds, fd);
		g_ptr_array_add(f->conns, g_thread_new("fake-conn", serve_conn, k));
		g_mutex_unlock(&f->lock);
	}
	return NULL;
}

static void fake_start(struct fake *f)
{
	*f = (struct fake){ .keys = g_ptr_array_new_with_free_func(g_free),
			    .conns = g_ptr_array_new(),
			    .fds = g_array_new(FALSE, FALSE, sizeof(int)) };
	g_mutex_init(&f->lock);
	g_cond_init(&f->cond);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	f->listener = socket(AF_INET, SOCK_STREAM, 0);
	g_assert_cmpint(f->listener, >=, 0);
	g_assert_cmpint(bind(f->listener, (struct sockaddr *)&a, sizeof(a)), ==, 0);
	g_assert_cmpint(listen(f->listener, 16), ==, 0);
	g_assert_cmpint(getsockname(f->listener, (struct sockaddr *)&a, &len), ==, 0);
	f->port = ntohs(a.sin_port);
	f->acceptor = g_thread_new("fake-accept", accept_conns, f);
}

/* End every connection (the tier's clients are freed already) and free what f holds. */
static void fake_stop(struct fake *f)
{
	g_mutex_lock(&f->lock);
	f->stopping = true;
	g_cond_broadcast(&f->cond);
	g_mutex_unlock(&f->lock);
	shutdown(f->listener, SHUT_RDWR); /* accept() fails from now on */
	g_thread_join(f->acceptor);
	for (guint i = 0; i < f->fds->len; i++)
		shutdown(g_array_index(f->fds, int, i), SHUT_RDWR);
	for (guint i = 0; i < f->conns->len; i++)
		g_thread_join(g_ptr_array_index(f->conns, i));
	for (guint i = 0; i < f->fds->len; i++)
		close(g_array_index(f->fds, int, i));
	close(f->listener);
	g_array_free(f->fds, TRUE);
	g_ptr_array_free(f->conns, TRUE);
	g_ptr_array_free(f->keys, TRUE);
	g_cond_clear(&f->cond);
	g_mutex_clear(&f->lock);
}

/* Wait until f has read n NOOPs: n lookups have reached it. */
static void fake_wait_noops(struct fake *f, unsigned n)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_US;
	g_mutex_lock(&f->lock);
	while (f->noops < n)
		g_assert_true(g_cond_wait_until(&f->cond, &f->lock, deadline) || f->noops >= n);
	g_mutex_unlock(&f->lock);
}

static void fake_allow(struct fake *f, unsigned n)
{
	g_mutex_lock(&f->lock);
	f->allowed += n;
	g_cond_broadcast(&f->cond);
	g_mutex_unlock(&f->lock);
}

#define HELD 4   /* lookups holding the tier's four lookup threads */
#define QUEUED 9 /* lookups queued behind them: readahead ones, then a demand one */
#define LOOKUP_LEN 4096

/* The lookups' ends, counted. */
static GMutex ends_lock;
static GCond ends_cond;
static unsigned ends, hits;

static void count_end(void *ctx, bool hit)
{
	(void)ctx;
	g_mutex_lock(&ends_lock);
	ends++;
	hits += hit;
	g_cond_broadcast(&ends_cond);
	g_mutex_unlock(&ends_lock);
}

/* The key of the only part of the block of index idx (its lookup's). */
static char *key_of(uint64_t idx)
{
	struct cfs_shared_id id = known;
	id.index = idx;
	struct cfs_shared_hash h = cfs_shared_hash_of(&id);
	struct cfs_shared_part p = cfs_shared_part_of(&h, LOOKUP_LEN, 0);
	char *key = g_malloc(CFS_SHARED_KEY_SIZE);
	cfs_shared_key(&p, key);
	return key;
}

static void lookup(struct cfs_shared *s, uint8_t *bufs, uint64_t idx, bool demand)
{
	struct cfs_shared_id id = known;
	id.index = idx;
	cfs_shared_lookup(s, &id, bufs + idx * LOOKUP_LEN, LOOKUP_LEN, demand, count_end, NULL);
}

/*
 * The four lookup threads held by four lookups, then readahead lookups
 * queued, then a demand one: the threads, freed one at a time, take the
 * demand lookup first, then the readahead ones in the order they were
 * made. The server's order of keys tells which lookup each freed thread
 * took. The timeout (10 s, a deadline of 20 s) ends none of them.
 */
static void test_demand_first(void)
{
	struct fake f;
	fake_start(&f);
	char *servers = g_strdup_printf("memcached://127.0.0.1:%u", f.port);
	struct cfs_shared_config cfg = { servers, 10000, UINT64_C(1) << 20 };
	struct cfs_shared *s = cfs_shared_new(&cfg, NULL);
	g_assert_nonnull(s);
	cfs_shared_start(s);
	uint8_t *bufs = g_malloc((HELD + QUEUED) * LOOKUP_LEN);
	for (uint64_t i = 0; i < HELD; i++)
		lookup(s, bufs, i, false);
	fake_wait_noops(&f, HELD);
	for (uint64_t i = HELD; i < HELD + QUEUED; i++)
		lookup(s, bufs, i, i == HELD + QUEUED - 1);
	for (unsigned i = 1; i <= QUEUED; i++) {
		fake_allow(&f, 1);
		fake_wait_noops(&f, HELD + i);
	}
	fake_allow(&f, HELD);
	gint64 deadline = g_get_monotonic_time() + WAIT_US;
	g_mutex_lock(&ends_lock);
	while (ends < HELD + QUEUED)
		g_assert_true(g_cond_wait_until(&ends_cond, &ends_lock, deadline) ||
			      ends >= HELD + QUEUED);
	g_mutex_unlock(&ends_lock);
	g_assert_cmpuint(hits, ==, 0);
	cfs_shared_free(s);
	g_assert_cmpuint(f.keys->len, ==, HELD + QUEUED);
	for (unsigned i = 0; i < QUEUED; i++) {
		uint64_t want = i == 0 ? HELD + QUEUED - 1 : HELD + i - 1;
		char *key = key_of(want);
		g_assert_cmpstr(g_ptr_array_index(f.keys, HELD + i), ==, key);
		g_free(key);
	}
	fake_stop(&f);
	g_free(bufs);
	g_free(servers);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/shared/keys", test_keys);
	g_test_add_func("/shared/parts", test_parts);
	g_test_add_func("/shared/roundtrip", test_roundtrip);
	g_test_add_func("/shared/refused", test_refused);
	g_test_add_func("/shared/other-identity", test_other_identity);
	g_test_add_func("/shared/huge-block-refused", test_huge_block_refused);
	g_test_add_func("/shared/url-query", test_url_query);
	g_test_add_func("/shared/demand-first", test_demand_first);
	return g_test_run();
}
