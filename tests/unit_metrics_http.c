/*
 * Unit tests of --metrics-addr's syntax (util/metrics_http.h): the default
 * host, IPv6 in brackets, ports at and past their bounds, and what is not an
 * address (names, bare IPv6); run by `meson test`.
 */
#include <arpa/inet.h>
#include <gio/gio.h>
#include <glib.h>
#include <netinet/in.h>
#include <string.h>

#include "util/metrics_http.h"

struct good {
	const char *text;
	int family;
	const char *host; /* as inet_ntop writes it */
	unsigned port;
};

static const struct good goods[] = {
	{ "9100", AF_INET, "127.0.0.1", 9100 },
	{ ":9100", AF_INET, "127.0.0.1", 9100 },
	{ "127.0.0.1:1", AF_INET, "127.0.0.1", 1 },
	{ "0.0.0.0:65535", AF_INET, "0.0.0.0", 65535 },
	{ "10.1.2.3:80", AF_INET, "10.1.2.3", 80 },
	{ "[::1]:9100", AF_INET6, "::1", 9100 },
	{ "[::]:9100", AF_INET6, "::", 9100 },
	{ "[::ffff:127.0.0.1]:9100", AF_INET6, "::ffff:127.0.0.1", 9100 },
};

static const char *const bads[] = {
	"",
	":",
	"0",
	"65536",
	"99999999999999999999",
	"-1",
	"+80",
	" 80",
	"80 ",
	"0x50",
	"127.0.0.1",
	"127.0.0.1:",
	"127.0.0.1:0",
	"127.1:80",
	"1.2.3.4.5:80",
	"localhost:9100",
	"::1:9100",
	"[::1]",
	"[::1]:",
	"[::1]9100",
	"[::1:9100",
	"::1]:9100",
	"[]:9100",
	"[127.0.0.1]:80",
	"[::1]:0",
	"[fe80::1%lo]:80",
};

static void check_good(const struct good *g)
{
	struct sockaddr_storage addr;
	socklen_t len = 0;
	g_assert_true(cfs_metrics_http_parse_addr(g->text, &addr, &len));
	g_assert_cmpint(addr.ss_family, ==, g->family);
	char host[INET6_ADDRSTRLEN];
	if (g->family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&addr;
		g_assert_cmpuint(len, ==, sizeof(*in));
		g_assert_nonnull(inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host)));
		g_assert_cmpuint(ntohs(in->sin_port), ==, g->port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr;
		g_assert_cmpuint(len, ==, sizeof(*in6));
		g_assert_nonnull(inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host)));
		g_assert_cmpuint(ntohs(in6->sin6_port), ==, g->port);
	}
	g_assert_cmpstr(host, ==, g->host);
}

static void test_good(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(goods); i++) {
		g_test_message("%s", goods[i].text);
		check_good(&goods[i]);
	}
}

static void test_bad(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(bads); i++) {
		struct sockaddr_storage addr;
		socklen_t len;
		g_test_message("'%s'", bads[i]);
		g_assert_false(cfs_metrics_http_parse_addr(bads[i], &addr, &len));
	}
}

/* The error names what was given, and nothing is bound. */
static void test_bind_refuses_bad(void)
{
	GError *error = NULL;
	g_assert_null(cfs_metrics_http_bind("localhost:9100", &error));
	g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
	g_assert_nonnull(strstr(error->message, "'localhost:9100'"));
	g_error_free(error);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/metrics_http/good", test_good);
	g_test_add_func("/metrics_http/bad", test_bad);
	g_test_add_func("/metrics_http/bind_refuses_bad", test_bind_refuses_bad);
	return g_test_run();
}
