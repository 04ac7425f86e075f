/* Remote objects and the checks every response must pass. */
#include "tree/object.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "util/errors.h"
#include "cache/source.h"
#include "util/stats.h"
#include "util/times.h"

static GMutex etag_lock;

/*
 * Objects nobody holds that the memory tier may still use, and what it is
 * asked before one is freed. The waiting objects are those whose requests,
 * reads, spills or streams were running when their last reference went:
 * as many as the memory tier has work in flight.
 */
static struct {
	GMutex lock;
	GPtrArray *waiting;
	cfs_object_release_fn release;
	void *ctx;
} released;

struct cfs_object *cfs_object_new(uint32_t id, const char *name, const char *url, uint64_t size)
{
	struct cfs_object *obj = g_new0(struct cfs_object, 1);
	obj->refs = 1;
	obj->id = id;
	obj->name = g_strdup(name);
	obj->url = g_strdup(url);
	obj->size = size;
	obj->mtime_us = CFS_TIME_UNKNOWN;
	cfs_stats_gauge_add(CFS_OBJECTS, 1);
	return obj;
}

int64_t cfs_object_mtime(const struct cfs_object *obj)
{
	const struct cfs_object *source = obj->compressed ? obj->compressed : obj;
	return __atomic_load_n(&source->mtime_us, __ATOMIC_RELAXED);
}

struct cfs_object *cfs_object_ref(struct cfs_object *obj)
{
	__atomic_add_fetch(&obj->refs, 1, __ATOMIC_RELAXED);
	return obj;
}

/* Returns the compressed object obj held, whose reference the caller drops. */
static struct cfs_object *object_free(struct cfs_object *obj)
{
	struct cfs_object *compressed = obj->compressed;
	g_free(obj->name);
	g_free(obj->url);
	g_free(obj->etag);
	g_free(obj);
	cfs_stats_gauge_add(CFS_OBJECTS, -1);
	return compressed;
}

/*
 * Add obj (NULL: none) to the objects waiting, then ask about each: free
 * those the memory tier let go of, keep waiting the others. No lock is
 * held while asking: the memory tier may answer reads meanwhile, whose
 * ends may drop the last reference to another object and come here.
 */
static void release_objects(struct cfs_object *obj)
{
	g_mutex_lock(&released.lock);
	GPtrArray *asked = released.waiting ? released.waiting : g_ptr_array_new();
	released.waiting = NULL;
	cfs_object_release_fn release = released.release;
	void *ctx = released.ctx;
	g_mutex_unlock(&released.lock);
	if (obj)
		g_ptr_array_add(asked, obj);
	GPtrArray *kept = g_ptr_array_new();
	for (guint i = 0; i < asked->len; i++) {
		struct cfs_object *o = g_ptr_array_index(asked, i);
		if (release && !release(ctx, o))
			g_ptr_array_add(kept, o);
		else
			cfs_object_unref(object_free(o)); /* its compressed one, which has none */
	}
	g_ptr_array_free(asked, TRUE);
	g_mutex_lock(&released.lock);
	if (!released.waiting)
		released.waiting = g_ptr_array_new();
	g_ptr_array_extend_and_steal(released.waiting, kept);
	if (released.waiting->len == 0)
		g_clear_pointer(&released.waiting, g_ptr_array_unref);
	g_mutex_unlock(&released.lock);
}

void cfs_object_unref(struct cfs_object *obj)
{
	if (obj && __atomic_sub_fetch(&obj->refs, 1, __ATOMIC_ACQ_REL) == 0)
		release_objects(obj);
}

void cfs_objects_set_release(cfs_object_release_fn release, void *ctx)
{
	g_mutex_lock(&released.lock);
	released.release = release;
	released.ctx = ctx;
	g_mutex_unlock(&released.lock);
	release_objects(NULL);
}

/* The opaque tag without the weakness indicator (RFC 9110 section 8.8.3). */
static const char *opaque_tag(const char *etag)
{
	return g_str_has_prefix(etag, "W/") ? etag + 2 : etag;
}

char *cfs_object_etag(struct cfs_object *obj)
{
	g_mutex_lock(&etag_lock);
	char *etag = g_strdup(obj->etag);
	g_mutex_unlock(&etag_lock);
	return etag;
}

int cfs_object_check_response(struct cfs_object *obj, const struct cfs_response_info *info)
{
	if (info->total_size != obj->size) {
		cfs_errors_report(obj->name, 0, 0, -EIO, "the server says %" G_GUINT64_FORMAT
				  " bytes, the index %" G_GUINT64_FORMAT "; refusing to serve it",
				  info->total_size, obj->size);
		return -EIO;
	}
	if (!info->etag)
		return 0;
	int err = 0;
	g_mutex_lock(&etag_lock);
	if (!obj->etag) {
		obj->etag = g_strdup(info->etag);
	} else if (strcmp(opaque_tag(obj->etag), opaque_tag(info->etag)) != 0) {
		cfs_errors_report(obj->name, 0, 0, -EIO, "ETag changed from %s to %s; the object "
				  "changed on the server", obj->etag, info->etag);
		err = -EIO;
	}
	g_mutex_unlock(&etag_lock);
	return err;
}
