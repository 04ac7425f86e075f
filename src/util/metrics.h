/*
 * The counters of stats.h in the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), rendered
 * as .chunkfs/metrics.
 */
#ifndef CHUNKFS_METRICS_H
#define CHUNKFS_METRICS_H

#include <glib.h>
#include <stdint.h>

/*
 * Render every counter and gauge of stats.h, and the TTFB histogram in
 * seconds, in the text exposition format 0.0.4: one "# HELP" and one
 * "# TYPE" line per metric family, names prefixed chunkfs_, counters ending
 * _total, byte quantities _bytes, one series per tier (label tier="memory"
 * or "disk") where a quantity exists per tier. Returns a g_malloc'd string
 * the caller frees; *len gets its length in bytes. Thread-safe; like
 * cfs_stats_render, not a consistent snapshot across counters.
 */
char *cfs_metrics_render(uint64_t *len);

/*
 * Append name to out as a metric or label name: the format allows
 * [a-zA-Z_:][a-zA-Z0-9_:]* for metric names and no escape in them, so every
 * other byte becomes '_' (and an empty name "_"). Not thread-safe on out.
 */
void cfs_metrics_append_name(GString *out, const char *name);

/*
 * Append value to out escaped as a label value between double quotes:
 * backslash as \\, double quote as \", line feed as \n (format 0.0.4,
 * "Text format details"). The quotes are not appended. Not thread-safe on out.
 */
void cfs_metrics_append_label_value(GString *out, const char *value);

/*
 * Append text to out escaped as a HELP docstring: backslash as \\ and line
 * feed as \n (format 0.0.4). Not thread-safe on out.
 */
void cfs_metrics_append_help(GString *out, const char *text);

#endif
