/* Remote objects and the checks every response must pass. */
#include "chunkfs/object.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "chunkfs/errors.h"
#include "chunkfs/source.h"

static GMutex etag_lock;

struct cfs_object *cfs_object_new(uint32_t id, const char *name, const char *url, uint64_t size)
{
	struct cfs_object *obj = g_new0(struct cfs_object, 1);
	obj->id = id;
	obj->name = g_strdup(name);
	obj->url = g_strdup(url);
	obj->size = size;
	return obj;
}

void cfs_object_free(struct cfs_object *obj)
{
	g_free(obj->name);
	g_free(obj->url);
	g_free(obj->etag);
	g_free(obj);
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
