/*
 * libFuzzer target: cfs_creds_parse_sts() on the body of an STS answer to
 * AssumeRole or AssumeRoleWithWebIdentity, handed over as a copy of
 * exactly its bytes. Keys, when parsed, have an access key, a secret, a
 * session token and an expiration.
 */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>

#include "remote/credparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = g_memdup2(data, size);
	struct cfs_aws_keys *k = cfs_creds_parse_sts(body, size, NULL);
	if (k && (!*k->access_key || !*k->secret_key || !k->session_token || !k->expiration))
		abort();
	cfs_aws_keys_unref(k);
	g_free(body);
	return 0;
}
