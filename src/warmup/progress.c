/* How far a warm-up is: a bar on a terminal, plain lines otherwise; the lines of --check. */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "warmup_i.h"

/* A terminal's bar is redrawn this often; a log gets a line this often. */
#define BAR_EVERY_US (200 * 1000)
#define LINE_EVERY_US (2 * 1000 * 1000)
#define BAR_WIDTH 24

static gint64 last_shown_us;
static bool bar_drawn;

char *human_size(uint64_t bytes)
{
	return g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);
}

/* Whole percent of part in whole; empty of an empty whole, all of it else. */
static unsigned percent(uint64_t part, uint64_t whole)
{
	return whole ? (unsigned)((double)part * 100.0 / (double)whole) : (part ? 100 : 0);
}

/* The rate (bytes per second) and the ETA in seconds (-1: unknown) of t since start_us. */
static void rate_eta(const struct wtotals *t, gint64 start_us, double *rate, gint64 *eta)
{
	double secs = (double)(g_get_monotonic_time() - start_us) / 1e6;
	uint64_t moved = t->bytes_done - MIN(t->bytes_done, t->bytes_at_start);
	*rate = secs > 0 ? (double)moved / secs : 0;
	*eta = *rate > 0 ? (gint64)((double)(t->bytes - MIN(t->bytes, t->bytes_done)) / *rate) : -1;
}

/* "files a/b, X of Y, R/s, ETA" as one string (g_free() it). */
static char *summary(const struct wtotals *t, gint64 start_us, const char *sep)
{
	double rate;
	gint64 eta;
	rate_eta(t, start_us, &rate, &eta);
	char *done = human_size(t->bytes_done), *all = human_size(t->bytes);
	char *speed = human_size((uint64_t)rate);
	char *eta_text = eta < 0 ? g_strdup("ETA --")
				 : g_strdup_printf("ETA %" G_GINT64_FORMAT ":%02" G_GINT64_FORMAT,
						   eta / 60, eta % 60);
	char *out = g_strdup_printf("%3u%%%s%u/%u files%s%s of %s%s%s/s%s%s",
				    t->bytes ? percent(t->bytes_done, t->bytes) : 100, sep,
				    t->files_done, t->files, sep, done, all, sep, speed, sep,
				    eta_text);
	g_free(done);
	g_free(all);
	g_free(speed);
	g_free(eta_text);
	return out;
}

static void draw_bar(const struct wtotals *t, gint64 start_us)
{
	unsigned filled = (t->bytes ? percent(t->bytes_done, t->bytes) : 100) * BAR_WIDTH / 100;
	char bar[BAR_WIDTH + 1];
	for (unsigned i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	char *text = summary(t, start_us, "  ");
	fprintf(stderr, "\r[%s] %s\033[K", bar, text);
	fflush(stderr);
	g_free(text);
	bar_drawn = true;
}

void progress_show(const struct wtotals *t, gint64 start_us, bool force)
{
	bool tty = isatty(STDERR_FILENO);
	gint64 now = g_get_monotonic_time();
	if (!force && now - last_shown_us < (tty ? BAR_EVERY_US : LINE_EVERY_US))
		return;
	last_shown_us = now;
	if (tty) {
		draw_bar(t, start_us);
		return;
	}
	char *text = summary(t, start_us, ", ");
	fprintf(stderr, "chunkfs warmup: %s\n", text);
	g_free(text);
}

void progress_end(void)
{
	if (bar_drawn)
		fputc('\n', stderr);
	bar_drawn = false;
}

void print_check(const char *what, const struct residency *r)
{
	char *size = human_size(r->size);
	printf("%s: %s, memory %" PRIu64 " (%u%%), disk %" PRIu64 " (%u%%), remote %" PRIu64
	       " (%u%%), cached %u%%\n",
	       what, size, r->mem, percent(r->mem, r->size), r->disk, percent(r->disk, r->size),
	       r->remote, percent(r->remote, r->size),
	       r->size ? percent(r->size - r->remote, r->size) : 100);
	g_free(size);
}
