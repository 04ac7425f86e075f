/*
 * Temporary AWS credentials as the endpoints of the credential chain answer
 * them (remote/creds.h): the JSON of IMDS, of the container endpoint and of
 * a credential_process, and the XML of STS. Everything parsed here comes
 * from outside chunkfs and holds secrets: sizes are bounded, and no error
 * message quotes the input. Pure: no I/O, thread-safe.
 */
#ifndef CHUNKFS_CREDPARSE_H
#define CHUNKFS_CREDPARSE_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest answer parsed, in bytes: a real one is under 2 KiB (a session token ~1 KiB). */
#define CFS_CREDS_ANSWER_MAX (64 * 1024)

/*
 * One set of AWS keys, immutable once made and shared by reference count:
 * a request takes a reference to the current set and signs with it while
 * the refresh swaps in the next (remote/creds.h).
 */
struct cfs_aws_keys {
	int refs;            /* atomic */
	char *access_key;    /* AccessKeyId */
	char *secret_key;    /* never logged */
	char *session_token; /* NULL for long-term keys; never logged */
	int64_t expiration;  /* Unix time in s when they expire, 0 for never */
	unsigned generation; /* set by the credential chain: which refresh made them */
};

/*
 * New keys with one reference, copying the strings (session_token may be
 * NULL); expiration in Unix seconds, 0 for never. Thread-safe.
 */
struct cfs_aws_keys *cfs_aws_keys_new(const char *access_key, const char *secret_key,
				      const char *session_token, int64_t expiration);
/* Another reference to keys (not NULL); returns keys. Thread-safe. */
struct cfs_aws_keys *cfs_aws_keys_ref(struct cfs_aws_keys *keys);
/*
 * Drop a reference (NULL is ignored); the last one overwrites the secret
 * and the token with zeros before freeing them, so that freed memory holds
 * no secret. Thread-safe.
 */
void cfs_aws_keys_unref(struct cfs_aws_keys *keys);

/* What a JSON answer must hold besides the keys. */
enum cfs_creds_json_kind {
	/*
	 * IMDS (EC2 User Guide, "Retrieve security credentials from instance
	 * metadata") and the container endpoint (AWS SDKs and Tools Reference
	 * Guide, "Container credential provider"): Token; a "Code", when present,
	 * must be "Success".
	 */
	CFS_CREDS_JSON_ENDPOINT,
	/*
	 * credential_process (AWS SDKs and Tools Reference Guide, "Process
	 * credential provider"): "Version": 1, SessionToken.
	 */
	CFS_CREDS_JSON_PROCESS,
};

/*
 * Parse the len bytes of data (no terminating NUL needed) as the JSON
 * object of kind: AccessKeyId and SecretAccessKey (non-empty strings), the
 * session token when present, Expiration when present (ISO 8601, e.g.
 * "2026-12-07T07:00:00Z"). At most CFS_CREDS_ANSWER_MAX bytes, nested at
 * most CFS_JSON_MAX_DEPTH. Returns new keys (one reference) or NULL with
 * *error set (G_IO_ERROR_INVALID_DATA, naming the field at fault but never
 * quoting a value).
 */
struct cfs_aws_keys *cfs_creds_parse_json(const char *data, size_t len,
					  enum cfs_creds_json_kind kind, GError **error);

/*
 * Parse the len bytes of an STS answer to AssumeRole or
 * AssumeRoleWithWebIdentity (AWS STS API Reference, "AssumeRole",
 * "AssumeRoleWithWebIdentity": the Credentials element of the Result with
 * AccessKeyId, SecretAccessKey, SessionToken, Expiration), with GMarkup.
 * At most CFS_CREDS_ANSWER_MAX bytes. Returns new keys (one reference) or
 * NULL with *error set (G_IO_ERROR_INVALID_DATA, never quoting a value;
 * for an STS <Error>, its Code, which is not secret).
 */
struct cfs_aws_keys *cfs_creds_parse_sts(const char *data, size_t len, GError **error);

#endif
