/*
 * libFuzzer target: cfs_creds_parse_json() on the answer of IMDS, a
 * container endpoint or a credential_process (the first byte picks which),
 * handed over as a copy of exactly its bytes. Keys, when parsed, have a
 * non-empty access key and secret.
 */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>

#include "remote/credparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum cfs_creds_json_kind kind = data[0] & 1 ? CFS_CREDS_JSON_PROCESS
						    : CFS_CREDS_JSON_ENDPOINT;
	char *body = g_memdup2(data + 1, size - 1);
	struct cfs_aws_keys *k = cfs_creds_parse_json(body, size - 1, kind, NULL);
	if (k && (!*k->access_key || !*k->secret_key || k->expiration < 0))
		abort();
	cfs_aws_keys_unref(k);
	g_free(body);
	return 0;
}
