/*
 * Private to the remote module: the links of the credential chain
 * (credlinks.c), which creds.c walks, keeps and renews from.
 */
#ifndef CHUNKFS_CREDS_I_H
#define CHUNKFS_CREDS_I_H

#include <glib.h>
#include <stdbool.h>

#include "remote/creds.h"

/* One link of the chain, configured from the environment and the shared files. */
struct cred_link {
	const char *name; /* for messages: "environment", "IMDS", ... */
	/* New keys from the source (one reference), or NULL with *error set. Blocks. */
	struct cfs_aws_keys *(*fetch)(const struct cred_link *l, GError **error);
	struct cfs_aws_keys *keys; /* environment and profile: the static keys */
	char *url;                 /* the endpoint: container, IMDS, STS */
	char *auth_token;          /* container: the Authorization value; secret */
	char *token_file;          /* container: the file of that value; web identity: the token */
	char *role_arn, *session_name;    /* web identity, assume role */
	struct cfs_aws_keys *source_keys; /* assume role: the source profile's keys */
	char *sigv4;       /* assume role: CURLOPT_AWS_SIGV4's "aws:amz:REGION:sts" */
	char **argv;       /* credential_process, split as a shell would, not run by one */
	char *process_dir; /* credential_process's working directory: where chunkfs started */
	struct cfs_creds_tls tls; /* the remote's TLS trust, for STS and https endpoints */
};

/* Where the chain's HTTP requests go (cfs_creds_set_http()). */
extern cfs_creds_http_fn cred_http;

/* What the links are configured from: each shared file is read once, for all of them. */
struct cred_where {
	const struct cfs_options *opts;  /* --profile */
	const char *region;              /* STS's */
	GKeyFile *config, *shared;       /* the AWS config and credentials files, or NULL */
	const struct cfs_creds_tls *tls; /* copied into each link */
};

/*
 * Configure the links of the chain from w in their order into links (an
 * array of at least CRED_LINKS_MAX); each link not configured adds
 * "NAME: why" to skipped. Returns how many were configured.
 */
#define CRED_LINKS_MAX 8
unsigned cred_links_configure(struct cred_link *links, const struct cred_where *w,
			      GString *skipped);
/* Free what a configured link holds. */
void cred_link_clear(struct cred_link *l);

#endif
