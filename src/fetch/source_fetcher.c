/* The fetcher as a source (source.h): the daemon's memory tier gets its bytes over HTTP. */
#include "fetch/fetch.h"
#include "tree/object.h"

static void fetcher_submit(void *src, const struct cfs_object *obj, uint64_t start, uint64_t end,
			   enum cfs_fetch_priority prio, const struct cfs_fetch_ops *ops, void *ctx)
{
	cfs_fetcher_submit(src, obj->name, obj->url, start, end, prio, ops, ctx);
}

static void fetcher_submit_head(void *src, const struct cfs_object *obj,
				const struct cfs_fetch_ops *ops, void *ctx)
{
	cfs_fetcher_submit_head(src, obj->name, obj->url, ops, ctx);
}

static const struct cfs_source_ops fetcher_ops = {
	.submit = fetcher_submit,
	.submit_head = fetcher_submit_head,
};

struct cfs_source cfs_fetcher_source(struct cfs_fetcher *f)
{
	return (struct cfs_source){ &fetcher_ops, f };
}
