/* Unit tests of the redirect checks (fetch/redirect.h); run by `meson test`. */
#include <gio/gio.h>
#include <string.h>

#include "fetch/redirect.h"

#define FIRST "https://user:pw@data.example:8443/set/chunk-0.bin"

static void test_statuses(void)
{
	const long followed[] = { 301, 302, 303, 307, 308 };
	for (guint i = 0; i < G_N_ELEMENTS(followed); i++)
		g_assert_true(cfs_redirect_status(followed[i]));
	const long others[] = { 0, 200, 206, 300, 304, 305, 306, 309, 404, 503 };
	for (guint i = 0; i < G_N_ELEMENTS(others); i++)
		g_assert_false(cfs_redirect_status(others[i]));
}

static void test_origin(void)
{
	static const struct {
		const char *a, *b;
		bool same;
	} cases[] = {
		{ "http://h/a", "http://h/b?x=1", true },
		{ "http://h/a", "http://h:80/b", true },
		{ "https://h/a", "https://h:443/b", true },
		{ "HTTP://Host.Example/a", "http://host.example/b", true },
		{ "http://u:p@h/a", "http://h/b", true },
		{ "http://h/a", "https://h/a", false },
		{ "http://h/a", "http://h:8080/a", false },
		{ "http://h:8080/a", "http://h:8081/a", false },
		{ "http://h/a", "http://g/a", false },
		{ "http://127.0.0.1/a", "http://localhost/a", false },
		{ "http://h/a", "not a url", false },
		{ "http://h/a", NULL, false },
	};
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++)
		g_assert_cmpint(cfs_url_same_origin(cases[i].a, cases[i].b), ==, cases[i].same);
}

/* A hop within the origin keeps the credentials and, with no userinfo of its own, the login. */
static void test_same_origin_hop(void)
{
	struct cfs_redirect_chain c = { 0 };
	cfs_redirect_start(&c, FIRST);
	g_assert_cmpstr(cfs_redirect_url(&c), ==, FIRST);
	GError *err = NULL;
	g_assert_true(cfs_redirect_follow(&c, "https://DATA.example:8443/other/x?v=2", &err));
	g_assert_no_error(err);
	g_assert_false(c.plain);
	g_assert_cmpuint(c.hops, ==, 1);
	g_assert_cmpstr(cfs_redirect_url(&c), ==, "https://user:pw@DATA.example:8443/other/x?v=2");
	g_assert_true(cfs_redirect_follow(&c, "https://me:x@data.example:8443/y", &err));
	g_assert_cmpstr(cfs_redirect_url(&c), ==, "https://me:x@data.example:8443/y");
	cfs_redirect_clear(&c);
}

/* Another host, port or scheme makes the chain plain for good, even back at the origin. */
static void test_cross_origin_hop(void)
{
	const char *elsewhere[] = { "https://cdn.example/x?X-Amz-Signature=s",
				    "https://data.example/x", "https://data.example:9443/x" };
	for (guint i = 0; i < G_N_ELEMENTS(elsewhere); i++) {
		struct cfs_redirect_chain c = { 0 };
		cfs_redirect_start(&c, FIRST);
		GError *err = NULL;
		g_assert_true(cfs_redirect_follow(&c, elsewhere[i], &err));
		g_assert_true(c.plain);
		g_assert_cmpstr(cfs_redirect_url(&c), ==, elsewhere[i]);
		g_assert_true(cfs_redirect_follow(&c, "https://data.example:8443/back", &err));
		g_assert_true(c.plain);
		g_assert_cmpstr(cfs_redirect_url(&c), ==, "https://data.example:8443/back");
		cfs_redirect_clear(&c);
	}
	struct cfs_redirect_chain c = { 0 };
	cfs_redirect_start(&c, "http://h/a");
	g_assert_true(cfs_redirect_follow(&c, "https://h/a", NULL));
	g_assert_true(c.plain);
	cfs_redirect_start(&c, "http://h/a");
	g_assert_false(c.plain);
	g_assert_cmpuint(c.hops, ==, 0);
	g_assert_cmpstr(cfs_redirect_url(&c), ==, "http://h/a");
	cfs_redirect_clear(&c);
}

/* A refused target leaves the chain as it was; the message shows the target without secrets. */
static void assert_refused(const char *first, const char *target, int code)
{
	struct cfs_redirect_chain c = { 0 };
	cfs_redirect_start(&c, first);
	GError *err = NULL;
	g_assert_false(cfs_redirect_follow(&c, target, &err));
	g_assert_error(err, G_IO_ERROR, code);
	g_assert_null(strstr(err->message, "secret"));
	g_assert_cmpstr(cfs_redirect_url(&c), ==, first);
	g_assert_cmpuint(c.hops, ==, 0);
	g_error_free(err);
	cfs_redirect_clear(&c);
}

static void test_refused(void)
{
	assert_refused(FIRST, "ftp://u:secret@data.example/x", G_IO_ERROR_NOT_SUPPORTED);
	assert_refused(FIRST, "file:///etc/passwd", G_IO_ERROR_NOT_SUPPORTED);
	assert_refused(FIRST, "gopher://h/x?secret", G_IO_ERROR_NOT_SUPPORTED);
	assert_refused(FIRST, "http://data.example:8443/x?token=secret", G_IO_ERROR_NOT_SUPPORTED);
	assert_refused(FIRST, "http://cdn.example/x", G_IO_ERROR_NOT_SUPPORTED);
	assert_refused(FIRST, "https:///x", G_IO_ERROR_INVALID_DATA);
	assert_refused(FIRST, "not a url", G_IO_ERROR_INVALID_DATA);
	assert_refused(FIRST, NULL, G_IO_ERROR_INVALID_DATA);
	/* http to https is an upgrade, and http to http another origin is allowed. */
	struct cfs_redirect_chain c = { 0 };
	cfs_redirect_start(&c, "http://h/a");
	g_assert_true(cfs_redirect_follow(&c, "http://g/a", NULL));
	g_assert_true(cfs_redirect_follow(&c, "https://g/a", NULL));
	g_assert_false(cfs_redirect_follow(&c, "http://g/b", NULL));
	cfs_redirect_clear(&c);
}

static void test_hop_limit(void)
{
	struct cfs_redirect_chain c = { 0 };
	cfs_redirect_start(&c, "http://h/a");
	for (unsigned i = 0; i < CFS_REDIRECT_MAX_HOPS; i++) {
		char *next = g_strdup_printf("http://h/hop%u", i);
		g_assert_true(cfs_redirect_follow(&c, next, NULL));
		g_free(next);
	}
	GError *err = NULL;
	g_assert_false(cfs_redirect_follow(&c, "http://h/one-more?sig=secret", &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_TOO_MANY_LINKS);
	g_assert_nonnull(strstr(err->message, "http://h/one-more?***"));
	g_assert_cmpstr(cfs_redirect_url(&c), ==, "http://h/hop4");
	g_error_free(err);
	cfs_redirect_clear(&c);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/redirect/statuses", test_statuses);
	g_test_add_func("/redirect/origin", test_origin);
	g_test_add_func("/redirect/same-origin", test_same_origin_hop);
	g_test_add_func("/redirect/cross-origin", test_cross_origin_hop);
	g_test_add_func("/redirect/refused", test_refused);
	g_test_add_func("/redirect/hop-limit", test_hop_limit);
	return g_test_run();
}
