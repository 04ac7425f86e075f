/* The shared tier on memcached: the client, the lookup threads, the write-behind store threads. */
#include "shared/shared.h"

#include <gio/gio.h>
#include <libmemcached/memcached.h>
#include <string.h>

#include "util/stats.h"

#define LOOKUP_THREADS 4
/* Two: a store waits for each part's reply, and one thread falls behind a fast remote. */
#define STORE_THREADS 2
#define STORE_QUEUE_BYTES (UINT64_C(16) << 20)
#define RETRY_TIMEOUT_S 2 /* a failed server is skipped this long, then tried again */
#define MAX_SERVERS 64

/* A store thread and its client. */
struct storer {
	struct cfs_shared *s;
	memcached_st *mc;
	GThread *thread;
};

struct cfs_shared {
	memcached_st *master; /* the servers and behaviours every clone copies */
	GAsyncQueue *idle;    /* memcached_st clones for the lookup threads */
	memcached_st *handles[LOOKUP_THREADS];
	GThreadPool *lookups; /* struct lookup */
	struct storer storers[STORE_THREADS];
	GMutex lock; /* over the fields below */
	GCond wake;
	GQueue stores;   /* struct store, oldest first */
	uint64_t queued; /* bytes of stores queued or being sent */
	bool stopping;
};

struct lookup {
	struct cfs_shared_hash hash;
	uint8_t *buf;
	uint32_t len;
	cfs_shared_done_fn done;
	void *ctx;
};

struct store {
	struct cfs_shared_hash hash;
	uint32_t len;
	uint8_t data[];
};

/* ---- the client ---- */

static bool bad_servers(const char *spec, const char *why, GError **error)
{
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		    "--shared-cache: '%s' %s (memcached://HOST:PORT[,HOST:PORT...])", spec, why);
	return false;
}

/* Add HOST:PORT (HOST may be [IPV6]) to mc. */
static bool add_server(memcached_st *mc, const char *spec, const char *item, GError **error)
{
	const char *colon = strrchr(item, ':');
	char *end;
	unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
	if (!colon || colon == item || !colon[1] || *end || port == 0 || port > 65535)
		return bad_servers(spec, "has a server that is not HOST:PORT", error);
	char *host = g_strndup(item, (size_t)(colon - item));
	size_t n = strlen(host);
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	memcached_return_t rc = memcached_server_add(mc, host, (in_port_t)port);
	g_free(host);
	if (rc != MEMCACHED_SUCCESS)
		return bad_servers(spec, memcached_strerror(mc, rc), error);
	return true;
}

static bool add_servers(memcached_st *mc, const char *spec, GError **error)
{
	if (!g_str_has_prefix(spec, "memcached://"))
		return bad_servers(spec, "does not start with memcached://", error);
	char **items = g_strsplit(spec + strlen("memcached://"), ",", MAX_SERVERS + 1);
	bool ok = items[0] && g_strv_length(items) <= MAX_SERVERS;
	if (!ok)
		bad_servers(spec, "names no server, or more than 64", error);
	for (unsigned i = 0; ok && items[i]; i++)
		ok = add_server(mc, spec, items[i], error);
	g_strfreev(items);
	return ok;
}

/*
 * Behaviours of the libmemcached documentation's memcached_behavior_set():
 * the timeouts bound every call, so a lookup's worst case is a few of them.
 */
static bool set_behaviours(memcached_st *mc, unsigned timeout_ms)
{
	static const memcached_behavior_t on[] = { MEMCACHED_BEHAVIOR_BINARY_PROTOCOL,
						   MEMCACHED_BEHAVIOR_NO_BLOCK,
						   MEMCACHED_BEHAVIOR_TCP_NODELAY };
	bool ok = true;
	for (size_t i = 0; i < G_N_ELEMENTS(on); i++)
		ok &= memcached_behavior_set(mc, on[i], 1) == MEMCACHED_SUCCESS;
	ok &= memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_DISTRIBUTION,
				     MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA) == MEMCACHED_SUCCESS;
	ok &= memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, timeout_ms) ==
	      MEMCACHED_SUCCESS;
	ok &= memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, timeout_ms) ==
	      MEMCACHED_SUCCESS;
	ok &= memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SND_TIMEOUT,
				     (uint64_t)timeout_ms * 1000) == MEMCACHED_SUCCESS;
	ok &= memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT,
				     (uint64_t)timeout_ms * 1000) == MEMCACHED_SUCCESS;
	ok &= memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SERVER_FAILURE_LIMIT, 1) ==
	      MEMCACHED_SUCCESS;
	ok &= memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, RETRY_TIMEOUT_S) ==
	      MEMCACHED_SUCCESS;
	return ok;
}

static memcached_st *client_new(const struct cfs_shared_config *cfg, GError **error)
{
	memcached_st *mc = memcached_create(NULL);
	if (!mc) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "--shared-cache: out of memory");
		return NULL;
	}
	if (!add_servers(mc, cfg->servers, error))
		goto fail;
	if (!set_behaviours(mc, cfg->timeout_ms)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "--shared-cache: libmemcached refused a behaviour");
		goto fail;
	}
	return mc;
fail:
	memcached_free(mc);
	return NULL;
}

static void note_error(memcached_return_t rc)
{
	if (rc == MEMCACHED_TIMEOUT)
		cfs_stats_add(CFS_SHARED_TIMEOUTS, 1);
}

/* ---- lookups ---- */

/* Keys of every part of a block of len bytes, and their lengths. */
static char *keys_of(const struct cfs_shared_hash *hash, uint32_t len, const char **keys,
		     size_t *lens)
{
	uint32_t parts = cfs_shared_parts(len);
	char *text = g_malloc((size_t)parts * CFS_SHARED_KEY_SIZE);
	for (uint32_t i = 0; i < parts; i++) {
		struct cfs_shared_part p = cfs_shared_part_of(hash, len, i);
		keys[i] = text + (size_t)i * CFS_SHARED_KEY_SIZE;
		cfs_shared_key(&p, text + (size_t)i * CFS_SHARED_KEY_SIZE);
		lens[i] = strlen(keys[i]);
	}
	return text;
}

/* The part of l a result's key names, or -1 when it is none of them. */
static int part_of_key(const struct lookup *l, const char *const *keys, const char *key, size_t n)
{
	const char *colon = memrchr(key, ':', n);
	if (!colon)
		return -1;
	uint32_t part = 0, parts = cfs_shared_parts(l->len);
	for (const char *p = colon + 1; p < key + n && part < parts; p++)
		part = g_ascii_isdigit(*p) ? part * 10 + (uint32_t)(*p - '0') : parts;
	if (part >= parts || strlen(keys[part]) != n || memcmp(keys[part], key, n) != 0)
		return -1;
	return (int)part;
}

/* Copy a result into l's buffer when it is the valid value of a part not yet had. */
static bool take_part(struct lookup *l, const char *const *keys, memcached_result_st *res,
		      bool *got)
{
	int part = part_of_key(l, keys, memcached_result_key_value(res),
			       memcached_result_key_length(res));
	if (part < 0 || got[part])
		return false;
	struct cfs_shared_part want = cfs_shared_part_of(&l->hash, l->len, (uint32_t)part);
	struct cfs_shared_part p;
	const uint8_t *data;
	if (cfs_shared_value_decode(memcached_result_value(res), memcached_result_length(res), &p,
				    &data) != 0 ||
	    !cfs_shared_part_equal(&p, &want)) {
		cfs_stats_add(CFS_SHARED_BAD_VALUES, 1);
		return false;
	}
	memcpy(l->buf + p.lo, data, p.len);
	got[part] = true;
	return true;
}

/*
 * One mget of every part; a block is had only when every part came valid.
 * The fetch loop is bounded by the parts asked: a server answering more
 * leaves the handle's connections closed (memcached_quit()) for a clean
 * next use.
 */
static bool fetch_block(memcached_st *mc, struct lookup *l)
{
	uint32_t parts = cfs_shared_parts(l->len), had = 0;
	const char **keys = g_new(const char *, parts);
	size_t *lens = g_new(size_t, parts);
	char *text = keys_of(&l->hash, l->len, keys, lens);
	bool *got = g_new0(bool, parts);
	memcached_return_t rc = memcached_mget(mc, keys, lens, parts);
	if (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_SOME_ERRORS) {
		/* On the stack: memcached_fetch_result() frees a result it allocated at the end. */
		memcached_result_st res;
		memcached_result_create(mc, &res);
		uint32_t n = 0;
		while (n <= parts && memcached_fetch_result(mc, &res, &rc)) {
			had += take_part(l, keys, &res, got);
			n++;
		}
		if (n > parts)
			memcached_quit(mc);
		memcached_result_free(&res);
	}
	note_error(rc);
	g_free(got);
	g_free(text);
	g_free(lens);
	g_free(keys);
	return had == parts;
}

static void lookup_run(gpointer data, gpointer user)
{
	struct cfs_shared *s = user;
	struct lookup *l = data;
	memcached_st *mc = g_async_queue_pop(s->idle);
	bool hit = fetch_block(mc, l);
	g_async_queue_push(s->idle, mc);
	cfs_stats_add(hit ? CFS_SHARED_HITS : CFS_SHARED_MISSES, 1);
	if (hit)
		cfs_stats_add(CFS_SHARED_BYTES, l->len);
	l->done(l->ctx, hit);
	g_free(l);
}

void cfs_shared_lookup(struct cfs_shared *s, const struct cfs_shared_id *id, uint8_t *buf,
		       uint32_t len, cfs_shared_done_fn done, void *ctx)
{
	struct lookup *l = g_new(struct lookup, 1);
	*l = (struct lookup){ cfs_shared_hash_of(id), buf, len, done, ctx };
	g_thread_pool_push(s->lookups, l, NULL);
}

/* ---- stores ---- */

/* Send every part of st; false at the first part a server did not take. */
static bool send_block(memcached_st *mc, const struct store *st, uint8_t *value)
{
	for (uint32_t i = 0; i < cfs_shared_parts(st->len); i++) {
		struct cfs_shared_part p = cfs_shared_part_of(&st->hash, st->len, i);
		char key[CFS_SHARED_KEY_SIZE];
		cfs_shared_key(&p, key);
		cfs_shared_value_encode(&p, st->data + p.lo, value);
		memcached_return_t rc = memcached_set(mc, key, strlen(key), (const char *)value,
						      CFS_SHARED_HEADER_BYTES + p.len, 0, 0);
		if (rc != MEMCACHED_SUCCESS) {
			note_error(rc);
			return false;
		}
	}
	return true;
}

/* The next store to send, or NULL once stopping. */
static struct store *next_store(struct cfs_shared *s)
{
	g_mutex_lock(&s->lock);
	while (!s->stopping && g_queue_is_empty(&s->stores))
		g_cond_wait(&s->wake, &s->lock);
	struct store *st = s->stopping ? NULL : g_queue_pop_head(&s->stores);
	g_mutex_unlock(&s->lock);
	return st;
}

static gpointer store_thread(gpointer data)
{
	struct storer *t = data;
	struct cfs_shared *s = t->s;
	uint8_t *value = g_malloc(CFS_SHARED_HEADER_BYTES + CFS_SHARED_PART_BYTES);
	struct store *st;
	while ((st = next_store(s))) {
		bool ok = send_block(t->mc, st, value);
		cfs_stats_add(ok ? CFS_SHARED_STORES : CFS_SHARED_STORE_FAILURES, 1);
		g_mutex_lock(&s->lock);
		s->queued -= st->len;
		g_mutex_unlock(&s->lock);
		g_free(st);
	}
	g_free(value);
	return NULL;
}

/* Room for len more bytes in the queue, taken; false when full or stopping. */
static bool reserve(struct cfs_shared *s, uint32_t len)
{
	g_mutex_lock(&s->lock);
	bool ok = !s->stopping && s->queued + len <= STORE_QUEUE_BYTES;
	if (ok)
		s->queued += len;
	g_mutex_unlock(&s->lock);
	return ok;
}

void cfs_shared_store(struct cfs_shared *s, const struct cfs_shared_id *id, const uint8_t *data,
		      uint32_t len)
{
	if (!reserve(s, len)) {
		cfs_stats_add(CFS_SHARED_STORE_DROPS, 1);
		return;
	}
	struct store *st = g_malloc(sizeof(*st) + len);
	st->hash = cfs_shared_hash_of(id);
	st->len = len;
	memcpy(st->data, data, len);
	g_mutex_lock(&s->lock);
	g_queue_push_tail(&s->stores, st);
	g_cond_signal(&s->wake);
	g_mutex_unlock(&s->lock);
}

/* ---- the tier ---- */

struct cfs_shared *cfs_shared_new(const struct cfs_shared_config *cfg, GError **error)
{
	memcached_st *master = client_new(cfg, error);
	if (!master)
		return NULL;
	struct cfs_shared *s = g_new0(struct cfs_shared, 1);
	s->master = master;
	s->idle = g_async_queue_new();
	g_mutex_init(&s->lock);
	g_cond_init(&s->wake);
	g_queue_init(&s->stores);
	bool ok = true;
	for (unsigned i = 0; i < LOOKUP_THREADS; i++) {
		s->handles[i] = memcached_clone(NULL, master);
		ok &= s->handles[i] != NULL;
	}
	for (unsigned i = 0; i < STORE_THREADS; i++) {
		s->storers[i] = (struct storer){ s, memcached_clone(NULL, master), NULL };
		ok &= s->storers[i].mc != NULL;
	}
	if (!ok) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "--shared-cache: out of memory copying the memcached client");
		cfs_shared_free(s);
		return NULL;
	}
	for (unsigned i = 0; i < LOOKUP_THREADS; i++)
		g_async_queue_push(s->idle, s->handles[i]);
	return s;
}

void cfs_shared_start(struct cfs_shared *s)
{
	s->lookups = g_thread_pool_new(lookup_run, s, LOOKUP_THREADS, FALSE, NULL);
	for (unsigned i = 0; i < STORE_THREADS; i++)
		s->storers[i].thread = g_thread_new("shared-store", store_thread, &s->storers[i]);
}

void cfs_shared_free(struct cfs_shared *s)
{
	if (!s)
		return;
	if (s->lookups)
		g_thread_pool_free(s->lookups, FALSE, TRUE);
	g_mutex_lock(&s->lock);
	s->stopping = true;
	g_cond_broadcast(&s->wake);
	g_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < STORE_THREADS; i++)
		if (s->storers[i].thread)
			g_thread_join(s->storers[i].thread);
	struct store *st;
	while ((st = g_queue_pop_head(&s->stores))) {
		cfs_stats_add(CFS_SHARED_STORE_DROPS, 1);
		g_free(st);
	}
	for (unsigned i = 0; i < LOOKUP_THREADS; i++)
		memcached_free(s->handles[i]); /* NULL is a no-op */
	for (unsigned i = 0; i < STORE_THREADS; i++)
		memcached_free(s->storers[i].mc);
	memcached_free(s->master);
	g_async_queue_unref(s->idle);
	g_cond_clear(&s->wake);
	g_mutex_clear(&s->lock);
	g_free(s);
}
