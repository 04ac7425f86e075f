/* --metrics-addr: GET /metrics served by libmicrohttpd. */
#include "util/metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gio/gio.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "util/metrics.h"

/* Prometheus keeps one connection per target; the rest is room for a person with curl. */
#define MAX_CONNECTIONS 8
/* Seconds a connection may sit idle: how long a client that sends nothing holds a slot. */
#define CONNECTION_TIMEOUT_S 10
/* Connections the kernel queues, also while the mount starts and nothing accepts yet. */
#define LISTEN_BACKLOG 16
#define DEFAULT_HOST "127.0.0.1"
/* The media type of the text exposition format 0.0.4 (Prometheus' exposition_formats page). */
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define TEXT_TYPE "text/plain; charset=utf-8"

struct cfs_metrics_http {
	char *shown;               /* HOST:PORT or [IPV6]:PORT, for messages */
	int fd;                    /* the listening socket; -1 once libmicrohttpd owns it */
	struct MHD_Daemon *daemon; /* NULL until started */
};

static bool parse_port(const char *text, in_port_t *port)
{
	guint64 value;
	if (!g_ascii_string_to_unsigned(text, 10, 1, G_MAXUINT16, &value, NULL))
		return false;
	*port = htons((uint16_t)value);
	return true;
}

static bool parse_ipv4(const char *host, const char *port, struct sockaddr_storage *addr,
		       socklen_t *len)
{
	struct sockaddr_in *in = (struct sockaddr_in *)addr;
	in->sin_family = AF_INET;
	*len = sizeof(*in);
	return inet_pton(AF_INET, host, &in->sin_addr) == 1 && parse_port(port, &in->sin_port);
}

/* host is "[IPV6]", brackets included. */
static bool parse_ipv6(const char *host, const char *port, struct sockaddr_storage *addr,
		       socklen_t *len)
{
	size_t n = strlen(host);
	if (n < 2 || host[n - 1] != ']')
		return false;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
	in6->sin6_family = AF_INET6;
	*len = sizeof(*in6);
	char *inner = g_strndup(host + 1, n - 2);
	bool ok = inet_pton(AF_INET6, inner, &in6->sin6_addr) == 1;
	g_free(inner);
	return ok && parse_port(port, &in6->sin6_port);
}

bool cfs_metrics_http_parse_addr(const char *text, struct sockaddr_storage *addr, socklen_t *len)
{
	const char *colon = strrchr(text, ':');
	char *host = colon ? g_strndup(text, (size_t)(colon - text)) : g_strdup("");
	const char *port = colon ? colon + 1 : text;
	memset(addr, 0, sizeof(*addr));
	bool ok = host[0] == '[' ? parse_ipv6(host, port, addr, len)
				 : parse_ipv4(host[0] ? host : DEFAULT_HOST, port, addr, len);
	g_free(host);
	return ok;
}

/* HOST:PORT, or [IPV6]:PORT, of a parsed address. */
static char *format_addr(const struct sockaddr_storage *addr)
{
	char host[INET6_ADDRSTRLEN];
	if (addr->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		return g_strdup_printf("%s:%u", host, ntohs(in->sin_port));
	}
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
	inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
	return g_strdup_printf("[%s]:%u", host, ntohs(in6->sin6_port));
}

/* 127.0.0.0/8, ::1, and 127.0.0.0/8 mapped into IPv6: only this host can connect. */
static bool is_loopback(const struct sockaddr_storage *addr)
{
	if (addr->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
		return ntohl(in->sin_addr.s_addr) >> 24 == 127;
	}
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
}

/* A listening socket on addr, or a negative errno. */
static int listen_on(const struct sockaddr_storage *addr, socklen_t len)
{
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A remount binds the port again while the last mount's connections are in TIME_WAIT. */
	int on = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
	    bind(fd, (const struct sockaddr *)addr, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

struct cfs_metrics_http *cfs_metrics_http_bind(const char *text, GError **error)
{
	struct sockaddr_storage addr;
	socklen_t len;
	if (!cfs_metrics_http_parse_addr(text, &addr, &len)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "--metrics-addr '%s': not [HOST:]PORT (HOST an IPv4 address or an IPv6 "
			    "address in brackets, PORT from 1 to 65535)",
			    text);
		return NULL;
	}
	struct cfs_metrics_http *m = g_new0(struct cfs_metrics_http, 1);
	m->shown = format_addr(&addr);
	m->fd = listen_on(&addr, len);
	if (m->fd < 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(-m->fd),
			    "--metrics-addr %s: %s", m->shown, g_strerror(-m->fd));
		cfs_metrics_http_free(m);
		return NULL;
	}
	if (!is_loopback(&addr))
		g_warning("--metrics-addr %s: the metrics are reachable from the network, not only "
			  "from this host",
			  m->shown);
	return m;
}

/* Messages about clients, which choose them: debug lines, so that none can flood the log. */
static void log_mhd(void *cls, const char *format, va_list ap)
{
	(void)cls;
	char *msg = g_strdup_vprintf(format, ap);
	g_debug("metrics server: %s", g_strchomp(msg));
	g_free(msg);
}

/* Queue r (NULL: out of memory, the connection is closed) with its Content-Type; frees r. */
static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *r,
			     const char *type)
{
	if (!r)
		return MHD_NO;
	enum MHD_Result ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	/* RFC 9110 section 15.5.6: a 405 lists the methods the resource supports. */
	if (ok == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED)
		ok = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (ok == MHD_YES)
		ok = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
								 MHD_RESPMEM_PERSISTENT);
	return queue(conn, status, r, TEXT_TYPE);
}

static enum MHD_Result reply_metrics(struct MHD_Connection *conn)
{
	uint64_t len;
	char *body = cfs_metrics_render(&len);
	struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, body,
										    g_free);
	if (!r)
		g_free(body);
	return queue(conn, MHD_HTTP_OK, r, METRICS_TYPE);
}

/*
 * Answered on the first call, before any request body: nothing here reads
 * one, and libmicrohttpd discards it (or closes the connection).
 */
static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **req_cls)
{
	(void)cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;
	if (!g_str_equal(method, MHD_HTTP_METHOD_GET) && !g_str_equal(method, MHD_HTTP_METHOD_HEAD))
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	if (!g_str_equal(url, "/metrics"))
		return reply_text(conn, MHD_HTTP_NOT_FOUND,
				  "not found: the metrics are at /metrics\n");
	return reply_metrics(conn);
}

bool cfs_metrics_http_start(struct cfs_metrics_http *m, GError **error)
{
	struct MHD_OptionItem options[] = {
		{ MHD_OPTION_LISTEN_SOCKET, m->fd, NULL },
		{ MHD_OPTION_CONNECTION_LIMIT, MAX_CONNECTIONS, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S, NULL },
		{ MHD_OPTION_END, 0, NULL },
	};
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC |
			 MHD_USE_ERROR_LOG;
	/* the logger first, so that it gets libmicrohttpd's messages about the others */
	m->daemon = MHD_start_daemon(flags, 0, NULL, NULL, answer, NULL, MHD_OPTION_EXTERNAL_LOGGER,
				     log_mhd, NULL, MHD_OPTION_ARRAY, options, MHD_OPTION_END);
	if (!m->daemon) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "--metrics-addr %s: libmicrohttpd could not start (-d logs why)",
			    m->shown);
		return false;
	}
	m->fd = -1; /* MHD_stop_daemon() closes it */
	g_message("metrics on http://%s/metrics", m->shown);
	return true;
}

void cfs_metrics_http_free(struct cfs_metrics_http *m)
{
	if (!m)
		return;
	if (m->daemon)
		MHD_stop_daemon(m->daemon);
	if (m->fd >= 0)
		close(m->fd);
	g_free(m->shown);
	g_free(m);
}
