/*
 * Unit tests of the one map from a failed request to an errno
 * (cfs_http_errno(), cfs_fetch_error_errno() of fetch/fetch.h); run by
 * `meson test`.
 */
#include <errno.h>
#include <gio/gio.h>

#include "fetch/fetch.h"

static void test_statuses(void)
{
	static const struct {
		long status;
		int err;
	} cases[] = {
		{ 404, -ENOENT }, { 410, -ENOENT }, { 401, -EACCES }, { 403, -EACCES },
		{ 0, -EIO },      { 400, -EIO },    { 405, -EIO },    { 416, -EIO },
		{ 500, -EIO },    { 503, -EIO },    { 429, -EIO },    { 408, -EIO },
	};
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_assert_cmpint(cfs_http_errno(cases[i].status, false), ==, cases[i].err);
		g_assert_cmpint(cfs_http_errno(cases[i].status, true), ==, -ETIMEDOUT);
	}
}

/* A blocking request's GError (its code from g_io_error_from_errno()) maps back to the errno. */
static void test_round_trip(void)
{
	static const long statuses[] = { 0, 401, 403, 404, 410, 500 };
	for (guint i = 0; i < G_N_ELEMENTS(statuses); i++) {
		for (int timed_out = 0; timed_out <= 1; timed_out++) {
			int err = cfs_http_errno(statuses[i], timed_out);
			GError *e = g_error_new(G_IO_ERROR, g_io_error_from_errno(-err), "HTTP %ld",
						statuses[i]);
			g_assert_cmpint(cfs_fetch_error_errno(e), ==, err);
			g_error_free(e);
		}
	}
}

static void test_other_errors(void)
{
	static const int codes[] = { G_IO_ERROR_FAILED, G_IO_ERROR_HOST_UNREACHABLE,
				     G_IO_ERROR_MESSAGE_TOO_LARGE, G_IO_ERROR_INVALID_DATA };
	for (guint i = 0; i < G_N_ELEMENTS(codes); i++) {
		GError *e = g_error_new_literal(G_IO_ERROR, codes[i], "failed");
		g_assert_cmpint(cfs_fetch_error_errno(e), ==, -EIO);
		g_error_free(e);
	}
	GError *e = g_error_new_literal(G_FILE_ERROR, G_FILE_ERROR_NOENT, "not an I/O error");
	g_assert_cmpint(cfs_fetch_error_errno(e), ==, -EIO);
	g_error_free(e);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/errno/statuses", test_statuses);
	g_test_add_func("/errno/round-trip", test_round_trip);
	g_test_add_func("/errno/other-errors", test_other_errors);
	return g_test_run();
}
