/*
 * libFuzzer target: cfs_s3_error_detail() on the body of an S3 error
 * response, handed over as a copy of exactly its bytes. A detail, when
 * there is one, is " (Code)" or " (Code: Message)".
 */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remote/s3error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = g_memdup2(data, size);
	char *detail = cfs_s3_error_detail(body, size);
	if (detail && (!g_str_has_prefix(detail, " (") || !g_str_has_suffix(detail, ")")))
		abort();
	g_free(detail);
	g_free(body);
	return 0;
}
