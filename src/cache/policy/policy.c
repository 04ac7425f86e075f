/* The policy a tier was given, and the bookkeeping every policy shares. */
#include "cache/policy/policy.h"

#include <glib.h>

struct cfs_policy {
	const struct cfs_policy_ops *ops;
	void *state;
	uint64_t seq;
};

static const struct cfs_policy_ops *const policies[] = {
	&cfs_policy_lru,
	&cfs_policy_lfu,
	&cfs_policy_fifo,
};

static const struct cfs_policy_ops *find(const char *name)
{
	for (unsigned i = 0; name && i < G_N_ELEMENTS(policies); i++)
		if (g_str_equal(policies[i]->name, name))
			return policies[i];
	return NULL;
}

bool cfs_policy_known(const char *name)
{
	return find(name) != NULL;
}

struct cfs_policy *cfs_policy_new(const char *name)
{
	const struct cfs_policy_ops *ops = find(name);
	if (!ops)
		return NULL;
	struct cfs_policy *p = g_new0(struct cfs_policy, 1);
	p->ops = ops;
	p->state = ops->create();
	return p;
}

void cfs_policy_free(struct cfs_policy *p)
{
	if (!p)
		return;
	p->ops->destroy(p->state);
	g_free(p);
}

void cfs_policy_add(struct cfs_policy *p, struct cfs_policy_entry *e)
{
	e->seq = ++p->seq;
	e->uses = 0;
	p->ops->add(p->state, e);
}

void cfs_policy_remove(struct cfs_policy *p, struct cfs_policy_entry *e)
{
	p->ops->remove(p->state, e);
	e->pos = NULL;
}

void cfs_policy_use(struct cfs_policy *p, struct cfs_policy_entry *e)
{
	e->uses++;
	p->ops->touch(p->state, e, true);
}

void cfs_policy_release(struct cfs_policy *p, struct cfs_policy_entry *e)
{
	p->ops->touch(p->state, e, false);
}

bool cfs_policy_adds_first(const struct cfs_policy *p)
{
	return p->ops->adds_first;
}

struct cfs_policy_entry *cfs_policy_first(struct cfs_policy *p)
{
	return p->ops->first(p->state);
}

struct cfs_policy_entry *cfs_policy_next(struct cfs_policy *p, struct cfs_policy_entry *e)
{
	return p->ops->next(p->state, e);
}

struct cfs_policy_entry *cfs_policy_victim(struct cfs_policy *p,
					   bool (*can_evict)(struct cfs_policy_entry *e, void *ctx),
					   void *ctx)
{
	for (struct cfs_policy_entry *e = cfs_policy_first(p); e; e = cfs_policy_next(p, e))
		if (can_evict(e, ctx))
			return e;
	return NULL;
}
