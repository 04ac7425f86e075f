/* The Code and Message of an S3 error body (GMarkup). */
#include "remote/s3error.h"

#include <glib.h>
#include <stdbool.h>

struct s3_error_parse {
	GString *text;
	char *code, *message;
};

static void s3_error_start(GMarkupParseContext *ctx, const char *element, const char **names,
			   const char **values, gpointer data, GError **error)
{
	(void)ctx, (void)element, (void)names, (void)values, (void)error;
	g_string_truncate(((struct s3_error_parse *)data)->text, 0);
}

static void s3_error_end(GMarkupParseContext *ctx, const char *element, gpointer data,
			 GError **error)
{
	(void)ctx, (void)error;
	struct s3_error_parse *p = data;
	if (g_str_equal(element, "Code") && !p->code)
		p->code = g_strdup(p->text->str);
	else if (g_str_equal(element, "Message") && !p->message)
		p->message = g_strdup(p->text->str);
}

static void s3_error_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer data,
			  GError **error)
{
	(void)ctx, (void)error;
	g_string_append_len(((struct s3_error_parse *)data)->text, text, (gssize)len);
}

/* Parse body into p (whose text is set); false when it is not well-formed XML. */
static bool s3_error_parse(const char *body, size_t len, struct s3_error_parse *p)
{
	static const GMarkupParser parser = { s3_error_start, s3_error_end, s3_error_text, NULL,
					      NULL };
	GMarkupParseContext *ctx = g_markup_parse_context_new(&parser, 0, p, NULL);
	bool ok = g_markup_parse_context_parse(ctx, body, (gssize)len, NULL) &&
		  g_markup_parse_context_end_parse(ctx, NULL);
	g_markup_parse_context_free(ctx);
	return ok;
}

static void s3_error_clear(struct s3_error_parse *p)
{
	g_string_free(p->text, TRUE);
	g_free(p->code);
	g_free(p->message);
}

char *cfs_s3_error_detail(const char *body, size_t len)
{
	if (!len)
		return NULL;
	struct s3_error_parse p = { .text = g_string_new(NULL) };
	char *result = NULL;
	if (s3_error_parse(body, len, &p) && p.code)
		result = g_strdup_printf(" (%s%s%s)", p.code, p.message ? ": " : "",
					 p.message ? p.message : "");
	s3_error_clear(&p);
	return result;
}

char *cfs_s3_error_code(const char *body, size_t len)
{
	if (!len)
		return NULL;
	struct s3_error_parse p = { .text = g_string_new(NULL) };
	char *code = s3_error_parse(body, len, &p) ? g_steal_pointer(&p.code) : NULL;
	s3_error_clear(&p);
	return code;
}
