/* The shared tier on memcached: the client, the lookup threads, the write-behind store threads. */
#include "shared/shared.h"

#include <gio/gio.h>
#include <libmemcached/memcached.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "util/stats.h"

#define LOOKUP_THREADS 4
/* Two: a store waits for each part's reply, and one thread falls behind a fast remote. */
#define STORE_THREADS 2
#define STORE_QUEUE_BYTES (UINT64_C(16) << 20) /* or two blocks, when more */
/* A lookup's total time, in --shared-cache-timeouts: then it is a miss (deadline_thread()). */
#define LOOKUP_DEADLINE_TIMEOUTS 2
#define RETRY_TIMEOUT_S 2 /* a failed server is skipped this long, then tried again */
#define MAX_SERVERS 64
/*
 * The largest allocation libmemcached may make while a tier thread talks to
 * a server: a part's value, plus room for libmemcached's own bookkeeping
 * then (the value string grows in 1 KiB steps, error records of about
 * 2 KiB, mget's array of a hash per key).
 */
#define TALK_ALLOC_MAX (CFS_SHARED_HEADER_BYTES + CFS_SHARED_PART_BYTES + (UINT32_C(64) << 10))

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
	GThreadPool *lookups; /* struct lookup, demand first (lookup_order()) */
	struct storer storers[STORE_THREADS];
	GThread *timer;        /* ends lookups at their deadline (deadline_thread()) */
	gint64 deadline_us;    /* a lookup's total time, from cfs_shared_lookup() */
	uint64_t queue_max;    /* bytes the store queue may hold */
	GMutex lock;           /* over the fields below */
	GCond wake;            /* the store threads' */
	GCond timer_wake;      /* the timer's */
	GQueue stores;         /* struct store, oldest first */
	uint64_t queued;       /* bytes of stores queued or being sent */
	GQueue deadlines;      /* struct lookup, earliest deadline first: all wait as long */
	uint64_t lookups_made; /* the order of the lookups, for FIFO within a priority */
	bool stopping;         /* lookups end as misses, stores are dropped */
	bool timer_stopping;
};

/*
 * A lookup, shared by the pool and the deadline queue (refs). Whoever ends
 * it first (its thread with its result, or the timer at its deadline)
 * calls done; once ended, buf is never written again.
 */
struct lookup {
	struct cfs_shared_hash hash;
	uint8_t *buf; /* the caller's block */
	uint32_t len;
	bool demand;
	uint64_t order;
	gint64 deadline; /* monotonic, in µs */
	GMutex lock;     /* over ended and each write into buf */
	bool ended;
	gint refs;
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

/*
 * The numeric address of host (its first, as getaddrinfo(3) orders them),
 * resolved once here: libmemcached would resolve a name at each connect,
 * with no bound on the time DNS takes.
 */
static char *resolve(const char *host, const char *spec, GError **error)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
	int rc = getaddrinfo(host, NULL, &hints, &ai);
	if (rc != 0) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--shared-cache: '%s': cannot resolve %s: %s", spec, host,
			    gai_strerror(rc));
		return NULL;
	}
	char address[NI_MAXHOST];
	rc = getnameinfo(ai->ai_addr, ai->ai_addrlen, address, sizeof(address), NULL, 0,
			 NI_NUMERICHOST);
	freeaddrinfo(ai);
	if (rc != 0) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--shared-cache: '%s': no numeric address for %s: %s", spec, host,
			    gai_strerror(rc));
		return NULL;
	}
	return g_strdup(address);
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
	char *address = resolve(host, spec, error);
	g_free(host);
	if (!address)
		return false;
	memcached_return_t rc = memcached_server_add(mc, address, (in_port_t)port);
	g_free(address);
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

/*
 * Set while a tier thread talks to a server: libmemcached then allocates a
 * value at the length the server declares (up to 4 GiB), so larger than
 * TALK_ALLOC_MAX is refused. The client's own structures, sized by the
 * server list, are made before (cfs_shared_new()).
 */
static _Thread_local bool talking;
/*
 * Set when an allocation was refused: memcached_fetch_result() then ends
 * with MEMCACHED_NOTFOUND, as at a clean end, with the value's body unread.
 */
static _Thread_local bool alloc_refused;

static bool refused(size_t size)
{
	bool refuse = talking && size > TALK_ALLOC_MAX;
	alloc_refused |= refuse;
	return refuse;
}

static void *bounded_malloc(const memcached_st *mc, size_t size, void *ctx)
{
	(void)mc, (void)ctx;
	return refused(size) ? NULL : malloc(size);
}

static void *bounded_realloc(const memcached_st *mc, void *mem, size_t size, void *ctx)
{
	(void)mc, (void)ctx;
	return refused(size) ? NULL : realloc(mem, size);
}

static void *bounded_calloc(const memcached_st *mc, size_t n, size_t size, void *ctx)
{
	(void)mc, (void)ctx;
	size_t total;
	return __builtin_mul_overflow(n, size, &total) || refused(total) ? NULL : calloc(n, size);
}

static void plain_free(const memcached_st *mc, void *mem, void *ctx)
{
	(void)mc, (void)ctx;
	free(mem);
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
	/* Clones copy the allocators (libmemcached's memcached_clone()). */
	if (!set_behaviours(mc, cfg->timeout_ms) ||
	    memcached_set_memory_allocators(mc, bounded_malloc, plain_free, bounded_realloc,
					    bounded_calloc, NULL) != MEMCACHED_SUCCESS) {
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

/* Copy data into l's block at lo, unless l has ended (by its deadline): false then. */
static bool copy_part(struct lookup *l, uint32_t lo, const uint8_t *data, uint32_t len)
{
	g_mutex_lock(&l->lock);
	bool open = !l->ended;
	if (open)
		memcpy(l->buf + lo, data, len);
	g_mutex_unlock(&l->lock);
	return open;
}

/* Copy a result into l's block when it is the valid value of a part not yet had. */
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
	got[part] = copy_part(l, p.lo, data, p.len);
	return got[part];
}

/*
 * The fetch loop ended at the end of the replies, not in the middle of one.
 * A value longer than any part (its allocation refused) is a bad value.
 */
static bool fetch_ended_clean(memcached_return_t rc)
{
	if (alloc_refused) {
		cfs_stats_add(CFS_SHARED_BAD_VALUES, 1);
		return false;
	}
	return rc == MEMCACHED_END || rc == MEMCACHED_NOTFOUND || rc == MEMCACHED_SUCCESS;
}

/*
 * One mget of every part of l into its block; a block is had only when
 * every part came valid. The fetch loop is bounded by the parts asked. A
 * server answering more, or a loop ended by an error (a timeout, a value
 * refused its allocation with its body unread), leaves the handle's
 * connections closed (memcached_quit()): the rest of a reply is never read
 * as the next one.
 */
static bool fetch_block(memcached_st *mc, struct lookup *l)
{
	uint32_t parts = cfs_shared_parts(l->len), had = 0;
	const char **keys = g_new(const char *, parts);
	size_t *lens = g_new(size_t, parts);
	char *text = keys_of(&l->hash, l->len, keys, lens);
	bool *got = g_new0(bool, parts);
	talking = true;
	alloc_refused = false;
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
		if (!fetch_ended_clean(rc) || n > parts)
			memcached_quit(mc);
		memcached_result_free(&res);
	}
	talking = false;
	note_error(rc);
	g_free(got);
	g_free(text);
	g_free(lens);
	g_free(keys);
	return had == parts;
}

static void lookup_unref(struct lookup *l)
{
	if (!g_atomic_int_dec_and_test(&l->refs))
		return;
	g_mutex_clear(&l->lock);
	g_free(l);
}

static bool has_ended(struct lookup *l)
{
	g_mutex_lock(&l->lock);
	bool ended = l->ended;
	g_mutex_unlock(&l->lock);
	return ended;
}

/* End l: true for the first caller, who then calls done; from then on buf is not written. */
static bool end_once(struct lookup *l)
{
	g_mutex_lock(&l->lock);
	bool first = !l->ended;
	l->ended = true;
	g_mutex_unlock(&l->lock);
	return first;
}

/* End l with the result of its thread, unless its deadline ended it first. */
static void end_lookup(struct lookup *l, bool hit)
{
	if (!end_once(l))
		return;
	cfs_stats_add(hit ? CFS_SHARED_HITS : CFS_SHARED_MISSES, 1);
	if (hit)
		cfs_stats_add(CFS_SHARED_BYTES, l->len);
	l->done(l->ctx, hit);
}

static bool is_stopping(struct cfs_shared *s)
{
	g_mutex_lock(&s->lock);
	bool stopping = s->stopping;
	g_mutex_unlock(&s->lock);
	return stopping;
}

/*
 * A lookup thread. A lookup already ended by its deadline, or made while
 * stopping, does not touch the network.
 */
static void lookup_run(gpointer data, gpointer user)
{
	struct cfs_shared *s = user;
	struct lookup *l = data;
	bool hit = false;
	if (!has_ended(l) && !is_stopping(s)) {
		memcached_st *mc = g_async_queue_pop(s->idle);
		hit = fetch_block(mc, l);
		g_async_queue_push(s->idle, mc);
	}
	end_lookup(l, hit);
	lookup_unref(l);
}

/* Demand lookups first, then in the order they were made. */
static gint lookup_order(gconstpointer a, gconstpointer b, gpointer user)
{
	const struct lookup *x = a, *y = b;
	(void)user;
	if (x->demand != y->demand)
		return x->demand ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* End l as a miss when its deadline passes before its thread ended it. */
static void expire(struct lookup *l)
{
	if (!end_once(l))
		return;
	cfs_stats_add(CFS_SHARED_TIMEOUTS, 1);
	cfs_stats_add(CFS_SHARED_MISSES, 1);
	l->done(l->ctx, false);
}

/*
 * The timer: ends each lookup at its deadline, whatever its thread is
 * doing (libmemcached's timeouts restart with each byte, so a trickling
 * server could hold a thread for long). All lookups wait as long, so the
 * queue in the order they were made is in the order of their deadlines.
 */
static gpointer deadline_thread(gpointer data)
{
	struct cfs_shared *s = data;
	g_mutex_lock(&s->lock);
	while (!s->timer_stopping) {
		struct lookup *l = g_queue_peek_head(&s->deadlines);
		if (!l) {
			g_cond_wait(&s->timer_wake, &s->lock);
		} else if (!has_ended(l) && g_get_monotonic_time() < l->deadline) {
			g_cond_wait_until(&s->timer_wake, &s->lock, l->deadline);
		} else {
			g_queue_pop_head(&s->deadlines);
			g_mutex_unlock(&s->lock);
			expire(l);
			lookup_unref(l);
			g_mutex_lock(&s->lock);
		}
	}
	g_mutex_unlock(&s->lock);
	return NULL;
}

void cfs_shared_lookup(struct cfs_shared *s, const struct cfs_shared_id *id, uint8_t *buf,
		       uint32_t len, bool demand, cfs_shared_done_fn done, void *ctx)
{
	struct lookup *l = g_new(struct lookup, 1);
	*l = (struct lookup){ .hash = cfs_shared_hash_of(id),
			      .buf = buf,
			      .len = len,
			      .demand = demand,
			      .deadline = g_get_monotonic_time() + s->deadline_us,
			      .refs = 2,
			      .done = done,
			      .ctx = ctx };
	g_mutex_init(&l->lock);
	g_mutex_lock(&s->lock);
	l->order = s->lookups_made++;
	bool first = g_queue_is_empty(&s->deadlines);
	g_queue_push_tail(&s->deadlines, l);
	if (first)
		g_cond_signal(&s->timer_wake);
	g_mutex_unlock(&s->lock);
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
	talking = true; /* a thread of the tier's own, which only talks to the servers */
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
	bool ok = !s->stopping && s->queued + len <= s->queue_max;
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
	s->deadline_us = (gint64)LOOKUP_DEADLINE_TIMEOUTS * cfg->timeout_ms * 1000;
	s->queue_max = MAX(STORE_QUEUE_BYTES, 2 * cfg->block_size);
	g_mutex_init(&s->lock);
	g_cond_init(&s->wake);
	g_cond_init(&s->timer_wake);
	g_queue_init(&s->stores);
	g_queue_init(&s->deadlines);
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
	g_thread_pool_set_sort_function(s->lookups, lookup_order, NULL);
	s->timer = g_thread_new("shared-timer", deadline_thread, s);
	for (unsigned i = 0; i < STORE_THREADS; i++)
		s->storers[i].thread = g_thread_new("shared-store", store_thread, &s->storers[i]);
}

/* Stop the timer once no lookup is left to end, and free what its queue holds. */
static void stop_timer(struct cfs_shared *s)
{
	if (s->timer) {
		g_mutex_lock(&s->lock);
		s->timer_stopping = true;
		g_cond_signal(&s->timer_wake);
		g_mutex_unlock(&s->lock);
		g_thread_join(s->timer);
	}
	struct lookup *l;
	while ((l = g_queue_pop_head(&s->deadlines)))
		lookup_unref(l);
}

void cfs_shared_free(struct cfs_shared *s)
{
	if (!s)
		return;
	g_mutex_lock(&s->lock);
	s->stopping = true;
	g_cond_broadcast(&s->wake);
	g_mutex_unlock(&s->lock);
	if (s->lookups)
		g_thread_pool_free(s->lookups, FALSE, TRUE);
	stop_timer(s);
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
	g_cond_clear(&s->timer_wake);
	g_cond_clear(&s->wake);
	g_mutex_clear(&s->lock);
	g_free(s);
}
