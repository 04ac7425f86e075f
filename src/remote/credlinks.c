/*
 * The links of the credential chain, in the order of the AWS CLI (AWS SDKs
 * and Tools Reference Guide, "Understand the credential provider chain"):
 * the environment, web identity, the profile of the shared files,
 * container credentials, IMDSv2
 * (https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html).
 * Nothing here logs or quotes a key, a token or a process's output.
 */
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "creds_i.h"
#include "remote_i.h"
#include "util/options.h"

/* A token file (web identity, container authorization) is small; a larger one is refused. */
#define TOKEN_FILE_MAX (16 * 1024)
/* credential_process: how long it may run, in ms (the AWS CLI has no limit; a mount needs one). */
#define PROCESS_TIMEOUT_MS (60 * 1000)
/* STS and the container endpoint answer in well under a second; IMDS has its own timeouts. */
#define ENDPOINT_CONNECT_MS 2000
#define ENDPOINT_TIMEOUT_MS 10000
/*
 * IMDS: 1 s to connect, 2 s for the whole request, one retry, so that a machine
 * where nothing answers at IMDS's address goes on within about 2 s (the
 * SDKs' defaults: AWS SDKs and Tools Reference Guide, "IMDS credential
 * provider", metadata_service_timeout 1 s, metadata_service_num_attempts 1).
 */
#define IMDS_CONNECT_MS 1000
#define IMDS_TIMEOUT_MS 2000
#define IMDS_ATTEMPTS 2
#define IMDS_TOKEN_TTL_HEADER "X-aws-ec2-metadata-token-ttl-seconds: 21600"
#define IMDS_DEFAULT "http://169.254.169.254"
#define CONTAINER_HOST "http://169.254.170.2"
#define CONTAINER_AGENT_ECS "169.254.170.2"
#define CONTAINER_AGENT_EKS "169.254.170.23"
#define CONTAINER_AGENT_EKS_V6 "fd00:ec2::23"
#define STS_VERSION "2011-06-15"

void cred_link_clear(struct cred_link *l)
{
	cfs_aws_keys_unref(l->keys);
	g_free(l->url);
	if (l->auth_token)
		explicit_bzero(l->auth_token, strlen(l->auth_token));
	g_free(l->auth_token);
	g_free(l->token_file);
	g_free(l->role_arn);
	g_free(l->session_name);
	g_strfreev(l->argv);
	g_free(l->process_dir);
	cfs_aws_keys_unref(l->source_keys);
	g_free(l->sigv4);
	g_free(l->tls.ca_file);
	g_free(l->tls.ca_dir);
	memset(l, 0, sizeof(*l));
}

static struct cfs_aws_keys *static_keys(const struct cred_link *l, GError **error)
{
	(void)error;
	return cfs_aws_keys_ref(l->keys);
}

/*
 * Up to TOKEN_FILE_MAX + 1 bytes of fd into text (that size plus one for
 * the NUL): one more than a token may hold tells a file too long. The
 * length in *len; false with errno on a read error.
 */
static bool read_token_bytes(int fd, char *text, size_t *len)
{
	*len = 0;
	while (*len <= TOKEN_FILE_MAX) {
		ssize_t n = read(fd, text + *len, TOKEN_FILE_MAX + 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0;
		*len += (size_t)n;
	}
	return true;
}

/* Why the bytes read are not a token, or NULL. */
static const char *token_problem(const char *text, size_t len)
{
	if (len == 0)
		return "not a token: empty";
	if (len > TOKEN_FILE_MAX)
		return "not a token: over 16 KiB";
	return strlen(text) != len ? "not a token: NUL bytes in it" : NULL;
}

/*
 * A file holding a token: its text without the line end, at most
 * TOKEN_FILE_MAX bytes. Symlinks are followed (Kubernetes projects tokens
 * through them); anything but a regular file is refused before a read, so
 * that /dev/zero or a FIFO cannot hold a renewal.
 */
static char *read_token_file(const char *path, GError **error)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	const char *problem = NULL;
	char *text = g_malloc(TOKEN_FILE_MAX + 2);
	size_t len = 0;
	if (fd < 0 || fstat(fd, &st) != 0)
		problem = g_strerror(errno);
	else if (!S_ISREG(st.st_mode))
		problem = "not a regular file";
	else if (!read_token_bytes(fd, text, &len))
		problem = g_strerror(errno);
	text[len] = '\0';
	if (!problem)
		problem = token_problem(text, len);
	if (fd >= 0)
		close(fd);
	if (!problem)
		return g_strchomp(text);
	explicit_bzero(text, len);
	g_free(text);
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: %s", path, problem);
	return NULL;
}

/*
 * A buffer for an answer that holds keys or a token: as large as an answer
 * may be, so that it never grows and leaves a copy behind in freed memory.
 */
static GByteArray *secret_buffer(void)
{
	return g_byte_array_sized_new(CFS_CREDS_ANSWER_MAX);
}

/* An answer that held keys is overwritten before its memory goes back to the heap. */
static void wipe(GByteArray *b)
{
	if (b->len)
		explicit_bzero(b->data, b->len);
}

static void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	g_free(s);
}

/* One request through cred_http; an answer other than 200 is an error naming the status. */
static bool endpoint_get(const struct cfs_creds_request *req, const char *what, GByteArray *body,
			 GError **error)
{
	long status = 0;
	if (!cred_http(req, body, &status, error)) {
		g_prefix_error(error, "%s: ", what);
		return false;
	}
	if (status == 200)
		return true;
	g_set_error(error, G_IO_ERROR,
		    status == 403 || status == 401 ? G_IO_ERROR_PERMISSION_DENIED
						   : G_IO_ERROR_FAILED,
		    "%s: HTTP %ld", what, status);
	return false;
}

static struct cfs_aws_keys *parse_answer(GByteArray *body, enum cfs_creds_json_kind kind,
					 const char *what, GError **error)
{
	struct cfs_aws_keys *k = cfs_creds_parse_json((const char *)body->data, body->len, kind,
						      error);
	wipe(body);
	if (!k)
		g_prefix_error(error, "%s: ", what);
	return k;
}

/* ---- 1. The environment (AWS CLI User Guide, "Environment variables") ---- */

static bool configure_env(struct cred_link *l, const struct cred_where *w, GString *skipped)
{
	(void)w;
	l->name = "environment";
	if (!cfs_remote_env("AWS_ACCESS_KEY_ID") || !cfs_remote_env("AWS_SECRET_ACCESS_KEY")) {
		g_string_append(skipped, "environment: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
					 "not set");
		return false;
	}
	l->keys = cfs_aws_keys_new(cfs_remote_env("AWS_ACCESS_KEY_ID"),
				   cfs_remote_env("AWS_SECRET_ACCESS_KEY"),
				   cfs_remote_env("AWS_SESSION_TOKEN"), 0);
	l->fetch = static_keys;
	return true;
}

/*
 * ---- 2. Web identity: STS AssumeRoleWithWebIdentity (AWS STS API
 * Reference, "AssumeRoleWithWebIdentity"; AWS SDKs and Tools Reference
 * Guide, "Assume role credential provider": web_identity_token_file,
 * role_arn, role_session_name;
 * https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html,
 * https://docs.aws.amazon.com/sdkref/latest/guide/feature-assume-role-credentials.html).
 * The request is not signed: the token is the proof. POSTed as a form, so
 * that the token is in no URL. ----
 */

static char *form_value(const char *text)
{
	return g_uri_escape_string(text, NULL, FALSE);
}

static char *web_identity_body(const struct cred_link *l, const char *token)
{
	char *arn = form_value(l->role_arn), *session = form_value(l->session_name);
	char *tok = form_value(token);
	char *body = g_strconcat(
		"Action=AssumeRoleWithWebIdentity&Version=" STS_VERSION "&RoleArn=", arn,
		"&RoleSessionName=", session, "&WebIdentityToken=", tok, NULL);
	free_secret(tok);
	g_free(session);
	g_free(arn);
	return body;
}

/* POST the form body to STS (signed when req says so) and parse the XML answer. */
static struct cfs_aws_keys *sts_call(struct cfs_creds_request *req, GError **error)
{
	GByteArray *answer = secret_buffer();
	struct cfs_aws_keys *k = NULL;
	GError *err = NULL;
	long status = 0;
	if (!cred_http(req, answer, &status, &err))
		g_propagate_prefixed_error(error, err, "STS: ");
	else if (!(k = cfs_creds_parse_sts((const char *)answer->data, answer->len, error)))
		g_prefix_error(error, "STS (HTTP %ld): ", status);
	wipe(answer);
	g_byte_array_unref(answer);
	return k;
}

static struct cfs_aws_keys *web_identity_keys(const struct cred_link *l, GError **error)
{
	char *token = read_token_file(l->token_file, error);
	if (!token)
		return NULL;
	char *body = web_identity_body(l, token);
	free_secret(token);
	static const char *const headers[] = { "Content-Type: application/x-www-form-urlencoded",
					       "Accept: application/xml", NULL };
	struct cfs_creds_request req = { .method = "POST",
					 .url = l->url,
					 .headers = headers,
					 .body = body,
					 .connect_timeout_ms = ENDPOINT_CONNECT_MS,
					 .timeout_ms = ENDPOINT_TIMEOUT_MS,
					 .tls = &l->tls };
	struct cfs_aws_keys *k = sts_call(&req, error);
	free_secret(body);
	return k;
}

static char *sts_url(const char *region)
{
	const char *endpoint = cfs_remote_env("AWS_ENDPOINT_URL_STS");
	if (!endpoint)
		endpoint = cfs_remote_env("AWS_ENDPOINT_URL");
	if (endpoint)
		return g_strdup(endpoint);
	return g_strdup_printf("https://sts.%s.amazonaws.com/", region);
}

/* A path made absolute now: the daemon chdirs to / (fuse_daemonize) before it renews. */
static char *absolute_path(const char *path)
{
	return g_canonicalize_filename(path, NULL);
}

static bool configure_web_identity(struct cred_link *l, const struct cred_where *w,
				   GString *skipped)
{
	l->name = "web identity";
	char *section = remote_aws_config_section(remote_aws_profile(w->opts));
	char *file = g_strdup(cfs_remote_env("AWS_WEB_IDENTITY_TOKEN_FILE"));
	char *arn = g_strdup(cfs_remote_env("AWS_ROLE_ARN"));
	char *session = g_strdup(cfs_remote_env("AWS_ROLE_SESSION_NAME"));
	if (!file && !arn) {
		g_free(session);
		file = remote_aws_value(w->config, section, "web_identity_token_file");
		arn = remote_aws_value(w->config, section, "role_arn");
		session = remote_aws_value(w->config, section, "role_session_name");
	}
	bool ok = file && arn;
	if (ok) {
		*l = (struct cred_link){ .name = "web identity",
					 .fetch = web_identity_keys,
					 .url = sts_url(w->region),
					 .token_file = absolute_path(file),
					 .role_arn = arn,
					 .session_name = session ? session
								 : g_strdup("chunkfs-session") };
	} else {
		g_string_append(skipped, "web identity: AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN "
					 "not set, nor web_identity_token_file/role_arn");
		g_free(arn), g_free(session);
	}
	g_free(file);
	g_free(section);
	return ok;
}

/*
 * ---- 3. The profile of the shared files (AWS SDKs and Tools Reference
 * Guide, "Shared config and credentials files"), in botocore's order: a
 * role_arn with source_profile, its keys in the credentials file, its
 * credential_process ("Process credential provider",
 * https://docs.aws.amazon.com/sdkref/latest/guide/feature-process-credentials.html),
 * its keys in the config file. ----
 */

/* Keys of one section, or NULL unless both the access key and the secret are there. */
static struct cfs_aws_keys *section_keys(GKeyFile *kf, const char *section)
{
	char *id = remote_aws_value(kf, section, "aws_access_key_id");
	char *secret = remote_aws_value(kf, section, "aws_secret_access_key");
	char *token = remote_aws_value(kf, section, "aws_session_token");
	struct cfs_aws_keys *k = id && secret ? cfs_aws_keys_new(id, secret, token, 0) : NULL;
	g_free(id);
	free_secret(secret);
	free_secret(token);
	return k;
}

/*
 * Read the process's stdout (fd) into out until it closes, within
 * CFS_CREDS_ANSWER_MAX bytes and by deadline_us (monotonic). False with
 * *error set otherwise.
 */
static bool read_bounded(int fd, GByteArray *out, gint64 deadline_us, GError **error)
{
	guint8 buf[4096];
	for (;;) {
		gint64 left_ms = (deadline_us - g_get_monotonic_time()) / 1000;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int ready = left_ms > 0 ? poll(&p, 1, (int)MIN(left_ms, G_MAXINT)) : 0;
		if (ready == 0) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
				    "no answer within %d s", PROCESS_TIMEOUT_MS / 1000);
			return false;
		}
		ssize_t n = ready > 0 ? read(fd, buf, sizeof(buf)) : -1;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
				    "reading its output: %s", g_strerror(errno));
			return false;
		}
		if (n == 0)
			return true;
		if (out->len + (size_t)n > CFS_CREDS_ANSWER_MAX) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
				    "output over %d bytes", CFS_CREDS_ANSWER_MAX);
			return false;
		}
		g_byte_array_append(out, buf, (guint)n);
		explicit_bzero(buf, (size_t)n);
	}
}

/* How often a process that closed its stdout is checked for having exited, in ms. */
#define REAP_POLL_MS 10

/*
 * The exit status of pid, which is killed unless it exits by deadline_us
 * (monotonic) or at once when kill_now (its output was refused); a killed
 * process's status says so.
 */
static int reap(GPid pid, bool kill_now, gint64 deadline_us)
{
	int status = 0;
	pid_t done = 0;
	while (!kill_now && (done = waitpid(pid, &status, WNOHANG)) == 0 &&
	       g_get_monotonic_time() < deadline_us)
		poll(NULL, 0, REAP_POLL_MS);
	if (done != pid) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	g_spawn_close_pid(pid);
	return status;
}

/*
 * Run the command without a shell, read its stdout within the bounds
 * (PROCESS_TIMEOUT_MS, CFS_CREDS_ANSWER_MAX), parse it as JSON of Version 1
 * ("Process credential provider"). Its stderr goes to ours: it is the
 * user's own program, and it is where it says why it failed.
 */
static struct cfs_aws_keys *process_keys(const struct cred_link *l, GError **error)
{
	GPid pid;
	int out_fd = -1;
	if (!g_spawn_async_with_pipes(l->process_dir, l->argv, NULL,
				      G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
				      &pid, NULL, &out_fd, NULL, error)) {
		g_prefix_error(error, "credential_process %s: ", l->argv[0]);
		return NULL;
	}
	GByteArray *body = secret_buffer();
	gint64 deadline = g_get_monotonic_time() + (gint64)PROCESS_TIMEOUT_MS * 1000;
	bool read_all = read_bounded(out_fd, body, deadline, error);
	close(out_fd);
	int status = reap(pid, !read_all, deadline);
	struct cfs_aws_keys *k = NULL;
	if (read_all && !g_spawn_check_wait_status(status, error))
		read_all = false;
	if (!read_all)
		g_prefix_error(error, "credential_process %s: ", l->argv[0]);
	else
		k = parse_answer(body, CFS_CREDS_JSON_PROCESS, "credential_process", error);
	wipe(body);
	g_byte_array_unref(body);
	return k;
}

/* The command split as a shell would split it, to be run without one. */
static bool configure_process(struct cred_link *l, const char *command, const char *profile,
			      GError **error)
{
	char **argv = NULL;
	if (!g_shell_parse_argv(command, NULL, &argv, error)) {
		g_prefix_error(error, "profile '%s': credential_process: ", profile);
		return false;
	}
	l->argv = argv;
	/* The directory chunkfs started in: the daemon's own is / once it daemonizes. */
	l->process_dir = g_get_current_dir();
	l->fetch = process_keys;
	return true;
}

/*
 * role_arn + source_profile: STS AssumeRole (AWS STS API Reference,
 * "AssumeRole",
 * https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html;
 * AWS SDKs and Tools Reference Guide, "Assume role credential provider"),
 * signed with SigV4 for service sts by libcurl with the source profile's
 * keys, which must be keys of the shared files (a source profile that
 * itself assumes a role is not followed).
 */
static struct cfs_aws_keys *assume_role_keys(const struct cred_link *l, GError **error)
{
	char *arn = form_value(l->role_arn), *session = form_value(l->session_name);
	char *body = g_strconcat("Action=AssumeRole&Version=" STS_VERSION "&RoleArn=", arn,
				 "&RoleSessionName=", session, NULL);
	char *token = l->source_keys->session_token
			      ? g_strconcat("x-amz-security-token: ", l->source_keys->session_token,
					    NULL)
			      : NULL;
	const char *headers[] = { "Content-Type: application/x-www-form-urlencoded",
				  "Accept: application/xml", token, NULL };
	struct cfs_creds_request req = { .method = "POST",
					 .url = l->url,
					 .headers = headers,
					 .body = body,
					 .connect_timeout_ms = ENDPOINT_CONNECT_MS,
					 .timeout_ms = ENDPOINT_TIMEOUT_MS,
					 .tls = &l->tls,
					 .sigv4 = l->sigv4,
					 .sign_keys = l->source_keys };
	struct cfs_aws_keys *k = sts_call(&req, error);
	free_secret(token);
	g_free(body);
	g_free(session);
	g_free(arn);
	return k;
}

/* A profile's shared files (not owned) and its section names. */
struct profile {
	const char *name;
	char *section; /* in the config file */
	GKeyFile *shared, *config;
};

/* Keys of the profile name in the credentials file, else in the config file. */
static struct cfs_aws_keys *profile_keys(const struct profile *p, const char *name)
{
	char *section = remote_aws_config_section(name);
	struct cfs_aws_keys *k = section_keys(p->shared, name);
	if (!k)
		k = section_keys(p->config, section);
	g_free(section);
	return k;
}

/* False without *error when the profile assumes no role with a source profile. */
static bool configure_assume_role(struct cred_link *l, const struct profile *p, const char *region,
				  GError **error)
{
	char *arn = remote_aws_value(p->config, p->section, "role_arn");
	char *source = remote_aws_value(p->config, p->section, "source_profile");
	char *credential_source = remote_aws_value(p->config, p->section, "credential_source");
	struct cfs_aws_keys *keys = arn && source ? profile_keys(p, source) : NULL;
	if (arn && credential_source && !source)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
			    "profile '%s': role_arn with credential_source is not supported",
			    p->name);
	if (arn && source && !keys)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			    "profile '%s': role_arn: source_profile '%s' has no keys", p->name,
			    source);
	if (keys) {
		char *session = remote_aws_value(p->config, p->section, "role_session_name");
		*l = (struct cred_link){ .name = "assume role",
					 .fetch = assume_role_keys,
					 .url = sts_url(region),
					 .role_arn = g_steal_pointer(&arn),
					 .session_name = session ? session
								 : g_strdup("chunkfs-session"),
					 .source_keys = keys,
					 .sigv4 = g_strdup_printf("aws:amz:%s:sts", region) };
	}
	g_free(arn);
	g_free(source);
	g_free(credential_source);
	return keys != NULL;
}

static bool configure_static(struct cred_link *l, GKeyFile *kf, const char *section)
{
	l->keys = section_keys(kf, section);
	if (!l->keys)
		return false;
	l->name = "profile";
	l->fetch = static_keys;
	return true;
}

/* credential_process of the profile, in either file; false without *error when none. */
static bool configure_process_of(struct cred_link *l, const struct profile *p, GError **error)
{
	char *command = remote_aws_value(p->shared, p->name, "credential_process");
	if (!command)
		command = remote_aws_value(p->config, p->section, "credential_process");
	bool ok = command && configure_process(l, command, p->name, error);
	if (ok)
		l->name = "credential_process";
	g_free(command);
	return ok;
}

/* As botocore: an assumed role, then keys of the credentials file, the process, the config. */
static bool configure_profile(struct cred_link *l, const struct cred_where *w, GString *skipped)
{
	struct profile p = { remote_aws_profile(w->opts), NULL, w->shared, w->config };
	p.section = remote_aws_config_section(p.name);
	GError *err = NULL;
	bool ok = configure_assume_role(l, &p, w->region, &err) ||
		  (!err && configure_static(l, p.shared, p.name)) ||
		  (!err && configure_process_of(l, &p, &err)) ||
		  (!err && configure_static(l, p.config, p.section));
	if (err)
		g_string_append(skipped, err->message);
	else if (!ok)
		g_string_append_printf(skipped,
				       "profile '%s': no keys, credential_process nor "
				       "role_arn with source_profile in the shared files",
				       p.name);
	g_clear_error(&err);
	g_free(p.section);
	return ok;
}

/*
 * ---- 4. Container credentials (AWS SDKs and Tools Reference Guide,
 * "Container credential provider"): a GET of the full URI, or of
 * 169.254.170.2 and the relative URI, with the Authorization header from
 * AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read at every request: EKS Pod
 * Identity rotates it), else AWS_CONTAINER_AUTHORIZATION_TOKEN
 * (https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html). ----
 */

static struct cfs_aws_keys *container_keys(const struct cred_link *l, GError **error)
{
	char *token = l->token_file ? read_token_file(l->token_file, error)
				    : g_strdup(l->auth_token);
	if (l->token_file && !token) {
		g_prefix_error(error, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: ");
		return NULL;
	}
	if (token && strpbrk(token, "\r\n")) { /* it would end the header and start another */
		g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				    "the container authorization token holds a line break");
		free_secret(token);
		return NULL;
	}
	char *auth = token ? g_strconcat("Authorization: ", token, NULL) : NULL;
	const char *headers[] = { auth, NULL };
	struct cfs_creds_request req = { .method = "GET",
					 .url = l->url,
					 .headers = headers,
					 .connect_timeout_ms = ENDPOINT_CONNECT_MS,
					 .timeout_ms = ENDPOINT_TIMEOUT_MS,
					 .tls = &l->tls };
	GByteArray *body = secret_buffer();
	struct cfs_aws_keys *k = NULL;
	if (endpoint_get(&req, "container endpoint", body, error))
		k = parse_answer(body, CFS_CREDS_JSON_ENDPOINT, "container endpoint", error);
	g_byte_array_unref(body);
	free_secret(auth);
	free_secret(token);
	return k;
}

/* Whether address is one of the ECS and EKS agents' (the SDKs' list). */
static bool agent_address(GInetAddress *address)
{
	static const char *const agents[] = { CONTAINER_AGENT_ECS, CONTAINER_AGENT_EKS,
					      CONTAINER_AGENT_EKS_V6 };
	bool found = false;
	for (size_t i = 0; !found && i < G_N_ELEMENTS(agents); i++) {
		GInetAddress *agent = g_inet_address_new_from_string(agents[i]);
		found = g_inet_address_equal(address, agent);
		g_object_unref(agent);
	}
	return found;
}

/* A host the token may go to over plain HTTP: localhost, a loopback address, an agent's. */
static bool plain_http_host(const char *host)
{
	if (!host)
		return false;
	if (g_str_equal(host, "localhost"))
		return true;
	GInetAddress *address = g_inet_address_new_from_string(host);
	if (!address)
		return false; /* a name: "127.attacker.example" is no loopback address */
	bool ok = g_inet_address_get_is_loopback(address) || agent_address(address);
	g_object_unref(address);
	return ok;
}

/*
 * The SDKs send the token over plain HTTP only to the host itself or to the
 * ECS and EKS agents' link-local addresses; a full URI elsewhere must be
 * https ("Container credential provider": AWS_CONTAINER_CREDENTIALS_FULL_URI).
 */
static bool container_host_allowed(const char *url)
{
	GUri *uri = g_uri_parse(url, G_URI_FLAGS_NONE, NULL);
	if (!uri)
		return false;
	bool ok = g_str_equal(g_uri_get_scheme(uri), "https") ||
		  (g_str_equal(g_uri_get_scheme(uri), "http") &&
		   plain_http_host(g_uri_get_host(uri)));
	g_uri_unref(uri);
	return ok;
}

static bool configure_container(struct cred_link *l, const struct cred_where *w, GString *skipped)
{
	(void)w;
	l->name = "container";
	const char *rel = cfs_remote_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = cfs_remote_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	if (rel)
		l->url = g_strconcat(CONTAINER_HOST, *rel == '/' ? "" : "/", rel, NULL);
	else if (full && container_host_allowed(full))
		l->url = g_strdup(full);
	if (!l->url) {
		g_string_append(skipped, full ? "container: AWS_CONTAINER_CREDENTIALS_FULL_URI is "
						"neither https nor a loopback or agent address"
					      : "container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/"
						"FULL_URI not set");
		return false;
	}
	const char *token_file = cfs_remote_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	l->token_file = token_file ? absolute_path(token_file) : NULL;
	if (!l->token_file)
		l->auth_token = g_strdup(cfs_remote_env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
	l->fetch = container_keys;
	return true;
}

/*
 * ---- 5. IMDSv2 (EC2 User Guide, "Use the Instance Metadata Service to
 * access instance metadata" and "Retrieve security credentials from
 * instance metadata"): PUT /latest/api/token with the TTL header, then GET
 * the role's name and its credentials with the token. A token PUT refused
 * with 403, 404 or 405 means IMDSv2 is off or not there: the SDKs then
 * fall back to IMDSv1 (no token), unless AWS_EC2_METADATA_V1_DISABLED is
 * true ("IMDS credential provider",
 * https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-credentials.html). ----
 */

/* One IMDS request with its retry; the answer's status in *status. */
static bool imds_request(const struct cred_link *l, const char *method, const char *url,
			 const char *header, GByteArray *body, long *status, GError **error)
{
	const char *headers[] = { header, NULL };
	struct cfs_creds_request req = { .method = method,
					 .url = url,
					 .headers = headers,
					 .connect_timeout_ms = IMDS_CONNECT_MS,
					 .timeout_ms = IMDS_TIMEOUT_MS,
					 .tls = &l->tls };
	bool ok = false;
	for (unsigned i = 0; !ok && i < IMDS_ATTEMPTS; i++) {
		g_clear_error(error);
		ok = cred_http(&req, body, status, error);
	}
	return ok;
}

static bool env_true(const char *name)
{
	return cfs_remote_env(name) && !g_ascii_strcasecmp(cfs_remote_env(name), "true");
}

/* A token fit for a header: 1 to 4096 visible ASCII characters (no CR or LF to inject a header). */
static bool header_value_ok(const GByteArray *b)
{
	for (guint i = 0; i < b->len; i++)
		if (b->data[i] < 0x21 || b->data[i] > 0x7e)
			return false;
	return b->len && b->len <= 4096;
}

/* The session token's header, or NULL for IMDSv1 when the docs allow the fallback. */
static bool imds_token(const struct cred_link *l, char **header, GError **error)
{
	char *url = g_strconcat(l->url, "/latest/api/token", NULL);
	GByteArray *body = secret_buffer();
	long status = 0;
	bool ok = imds_request(l, "PUT", url, IMDS_TOKEN_TTL_HEADER, body, &status, error);
	*header = NULL;
	if (ok && status == 200 && header_value_ok(body)) {
		g_byte_array_append(body, (const guint8 *)"", 1);
		*header = g_strconcat("X-aws-ec2-metadata-token: ", (char *)body->data, NULL);
	} else if (ok && status == 200) {
		g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				    "token request: not a token");
		ok = false;
	} else if (ok && (status == 403 || status == 404 || status == 405) &&
		   !env_true("AWS_EC2_METADATA_V1_DISABLED")) {
		g_debug("IMDS: token refused (HTTP %ld): trying IMDSv1", status);
	} else if (ok) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "token request: HTTP %ld",
			    status);
		ok = false;
	}
	wipe(body);
	g_byte_array_unref(body);
	g_free(url);
	return ok;
}

static bool imds_get(const struct cred_link *l, const char *url, const char *header,
		     GByteArray *body, GError **error)
{
	long status = 0;
	if (!imds_request(l, "GET", url, header, body, &status, error))
		return false;
	if (status == 200)
		return true;
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "GET %s: HTTP %ld",
		    strstr(url, "/latest/"), status);
	return false;
}

/* The characters of an IAM role name (IAM API Reference, "CreateRole": [\w+=,.@-]+). */
static bool iam_name(const char *name)
{
	for (const char *c = name; *c; c++)
		if (!g_ascii_isalnum(*c) && !strchr("_+=,.@-", *c))
			return false;
	return *name && strlen(name) <= 64;
}

/* The instance profile's role: the first line of the listing, which holds one name. */
static char *imds_role(const struct cred_link *l, const char *base, const char *header,
		       GError **error)
{
	GByteArray *body = secret_buffer();
	char *role = NULL;
	if (imds_get(l, base, header, body, error)) {
		role = g_strndup((const char *)body->data, body->len);
		role[strcspn(role, "\r\n")] = '\0';
		if (!iam_name(g_strstrip(role)))
			g_clear_pointer(&role, g_free);
		if (!role)
			g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
					    "no instance profile role name");
	}
	g_byte_array_unref(body);
	return role;
}

static struct cfs_aws_keys *imds_keys(const struct cred_link *l, GError **error)
{
	char *header = NULL;
	struct cfs_aws_keys *k = NULL;
	if (!imds_token(l, &header, error)) {
		g_prefix_error(error, "%s: ", l->url);
		return NULL;
	}
	char *base = g_strconcat(l->url, "/latest/meta-data/iam/security-credentials/", NULL);
	char *role = imds_role(l, base, header, error);
	if (role) {
		char *url = g_strconcat(base, role, NULL);
		GByteArray *body = secret_buffer();
		if (imds_get(l, url, header, body, error))
			k = parse_answer(body, CFS_CREDS_JSON_ENDPOINT, "credentials", error);
		g_byte_array_unref(body);
		g_free(url);
	}
	if (!k)
		g_prefix_error(error, "%s: ", l->url);
	g_free(role);
	g_free(base);
	free_secret(header);
	return k;
}

static bool configure_imds(struct cred_link *l, const struct cred_where *w, GString *skipped)
{
	(void)w;
	l->name = "IMDS";
	if (env_true("AWS_EC2_METADATA_DISABLED")) {
		g_string_append(skipped, "IMDS: AWS_EC2_METADATA_DISABLED=true");
		return false;
	}
	const char *endpoint = cfs_remote_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	l->url = g_strdup(endpoint ? endpoint : IMDS_DEFAULT);
	while (g_str_has_suffix(l->url, "/"))
		l->url[strlen(l->url) - 1] = '\0';
	l->fetch = imds_keys;
	return true;
}

typedef bool (*configure_fn)(struct cred_link *l, const struct cred_where *w, GString *skipped);

unsigned cred_links_configure(struct cred_link *links, const struct cred_where *w, GString *skipped)
{
	/* As with the AWS CLI, a profile named with --profile comes before the environment. */
	configure_fn chain[] = { configure_env, configure_web_identity, configure_profile,
				 configure_container, configure_imds };
	if (w->opts->profile) {
		chain[0] = configure_profile;
		chain[2] = configure_env;
	}
	unsigned n = 0;
	for (unsigned i = 0; i < G_N_ELEMENTS(chain); i++) {
		gsize before = skipped->len;
		if (before)
			g_string_append(skipped, "; ");
		if (chain[i](&links[n], w, skipped)) {
			g_string_truncate(skipped, before);
			links[n].tls = (struct cfs_creds_tls){ g_strdup(w->tls->ca_file),
							       g_strdup(w->tls->ca_dir),
							       w->tls->insecure };
			n++;
		} else {
			cred_link_clear(&links[n]);
		}
	}
	return n;
}
