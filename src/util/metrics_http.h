/*
 * --metrics-addr: .chunkfs/metrics (metrics.h) served over HTTP/1.1 as
 * GET /metrics, for a Prometheus scraper, by libmicrohttpd on a thread of
 * its own. The thread only renders the counters, which are atomics: a
 * scrape never waits for, nor holds up, a FUSE request.
 *
 * Start-up is split around daemonizing (fuse_daemonize forks, and a thread
 * does not survive a fork): cfs_metrics_http_bind() before the mount, so
 * that a port in use fails the mount, cfs_metrics_http_start() after.
 */
#ifndef CHUNKFS_METRICS_HTTP_H
#define CHUNKFS_METRICS_HTTP_H

#include <glib.h>
#include <stdbool.h>
#include <sys/socket.h>

struct cfs_metrics_http;

/*
 * Parse text, "[HOST:]PORT" or "[IPV6]:PORT", into *addr and *len: HOST is
 * a dotted IPv4 address, IPV6 an IPv6 address between brackets (RFC 3986
 * section 3.2.2), and an empty or missing HOST means 127.0.0.1; PORT is a
 * decimal number from 1 to 65535. No name is resolved. Returns false, with
 * *addr undefined, on anything else. Thread-safe.
 */
bool cfs_metrics_http_parse_addr(const char *text, struct sockaddr_storage *addr, socklen_t *len);

/*
 * A listening TCP socket on text (cfs_metrics_http_parse_addr()'s syntax),
 * not served yet: connections wait in its backlog until
 * cfs_metrics_http_start(). Logs one warning when the address is not a
 * loopback address (the metrics are then reachable from the network).
 * Fails, with a G_IO_ERROR whose message names text, when text does not
 * parse (G_IO_ERROR_INVALID_ARGUMENT) or socket(2), bind(2) or listen(2)
 * fail (the code of their errno: a port in use is
 * G_IO_ERROR_ADDRESS_IN_USE). Free the result with cfs_metrics_http_free().
 * Call from the main thread.
 */
struct cfs_metrics_http *cfs_metrics_http_bind(const char *text, GError **error);

/*
 * Serve the socket of m from libmicrohttpd's internal polling thread: GET
 * and HEAD of /metrics answer 200 with cfs_metrics_render()'s text and
 * Content-Type "text/plain; version=0.0.4; charset=utf-8" (the Prometheus
 * text exposition format 0.0.4), any other path 404, any other method 405
 * with "Allow: GET, HEAD" (RFC 9110 section 15.5.6). At most 8 connections
 * at once; a connection idle for 10 s is closed. Call once, from the
 * process that serves the mount (after daemonizing). Fails with a
 * G_IO_ERROR naming the address when libmicrohttpd cannot start (its
 * thread, its event loop); m then serves nothing and still needs
 * cfs_metrics_http_free().
 */
bool cfs_metrics_http_start(struct cfs_metrics_http *m, GError **error);

/*
 * Stop serving (waits for the thread, closes every connection without
 * waiting for its client) and close the socket. NULL is a no-op. Call from
 * the thread that called cfs_metrics_http_start().
 */
void cfs_metrics_http_free(struct cfs_metrics_http *m);

#endif
