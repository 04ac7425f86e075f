/*
 * Unit tests of remote/credparse.c: the credentials answers of IMDS, the
 * container endpoint, credential_process and STS, good and bad, and that
 * no error message quotes a value of the answer.
 */
#include <gio/gio.h>
#include <string.h>

#include "remote/credparse.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static struct cfs_aws_keys *json(const char *text, enum cfs_creds_json_kind kind, GError **e)
{
	return cfs_creds_parse_json(text, strlen(text), kind, e);
}

static void test_endpoint_json(void)
{
	struct cfs_aws_keys *k = json("{\"Code\":\"Success\",\"AccessKeyId\":\"ASIA1\","
				      "\"SecretAccessKey\":\"" SECRET "\",\"Token\":\"tok\","
				      "\"Expiration\":\"2026-12-07T12:00:00Z\"}",
				      CFS_CREDS_JSON_ENDPOINT, NULL);
	g_assert_nonnull(k);
	g_assert_cmpstr(k->access_key, ==, "ASIA1");
	g_assert_cmpstr(k->secret_key, ==, SECRET);
	g_assert_cmpstr(k->session_token, ==, "tok");
	g_assert_cmpint(k->expiration, ==, 1796644800);
	cfs_aws_keys_unref(k);
}

static void test_process_json(void)
{
	struct cfs_aws_keys *k = json("{\"Version\":1,\"AccessKeyId\":\"AKIA1\","
				      "\"SecretAccessKey\":\"" SECRET "\"}",
				      CFS_CREDS_JSON_PROCESS, NULL);
	g_assert_nonnull(k);
	g_assert_null(k->session_token);
	g_assert_cmpint(k->expiration, ==, 0);
	cfs_aws_keys_unref(k);
}

/* Each answer is refused, and the message never holds the secret in it. */
static void test_bad_json(void)
{
	static const struct {
		const char *text;
		enum cfs_creds_json_kind kind;
	} bad[] = {
		{ "", CFS_CREDS_JSON_ENDPOINT },
		{ "  ", CFS_CREDS_JSON_ENDPOINT },
		{ "[1]", CFS_CREDS_JSON_ENDPOINT },
		{ "{\"AccessKeyId\":\"A\"}", CFS_CREDS_JSON_ENDPOINT },
		{ "{\"Code\":\"Failure\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" SECRET "\"}",
		  CFS_CREDS_JSON_ENDPOINT },
		{ "{\"Version\":2,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" SECRET "\"}",
		  CFS_CREDS_JSON_PROCESS },
		{ "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" SECRET "\"}",
		  CFS_CREDS_JSON_PROCESS },
		{ "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" SECRET
		  "\",\"Expiration\":\"" SECRET "\"}",
		  CFS_CREDS_JSON_ENDPOINT },
		{ "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":42}", CFS_CREDS_JSON_ENDPOINT },
	};
	for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
		GError *err = NULL;
		g_assert_null(json(bad[i].text, bad[i].kind, &err));
		g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
		g_assert_null(strstr(err->message, SECRET));
		g_error_free(err);
	}
}

static void test_too_long(void)
{
	size_t len = CFS_CREDS_ANSWER_MAX + 1;
	char *text = g_malloc(len);
	memset(text, ' ', len);
	GError *err = NULL;
	g_assert_null(cfs_creds_parse_json(text, len, CFS_CREDS_JSON_ENDPOINT, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_clear_error(&err);
	g_assert_null(cfs_creds_parse_sts(text, len, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_error_free(err);
	g_free(text);
}

static struct cfs_aws_keys *sts(const char *text, GError **e)
{
	return cfs_creds_parse_sts(text, strlen(text), e);
}

static void test_sts(void)
{
	struct cfs_aws_keys *k = sts("<AssumeRoleResponse><AssumeRoleResult><Credentials>"
				     "<AccessKeyId>ASIA2</AccessKeyId><SecretAccessKey>" SECRET
				     "</SecretAccessKey><SessionToken>t&amp;k</SessionToken>"
				     "<Expiration>2026-12-07T12:00:00.000Z</Expiration>"
				     "</Credentials></AssumeRoleResult></AssumeRoleResponse>",
				     NULL);
	g_assert_nonnull(k);
	g_assert_cmpstr(k->access_key, ==, "ASIA2");
	g_assert_cmpstr(k->session_token, ==, "t&k");
	g_assert_cmpint(k->expiration, ==, 1796644800);
	cfs_aws_keys_unref(k);
}

static void test_sts_errors(void)
{
	GError *err = NULL;
	g_assert_null(sts("<ErrorResponse><Error><Code>ExpiredTokenException</Code>"
			  "<Message>" SECRET "</Message></Error></ErrorResponse>",
			  &err));
	g_assert_nonnull(strstr(err->message, "ExpiredTokenException"));
	g_assert_null(strstr(err->message, SECRET));
	g_clear_error(&err);
	g_assert_null(
		sts("<ErrorResponse><Error><Code>" SECRET "</Code></Error></ErrorResponse>", &err));
	g_assert_null(strstr(err->message, SECRET));
	g_clear_error(&err);
	/* Keys outside Credentials are not taken, nor an answer without an Expiration. */
	g_assert_null(sts("<R><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
			  "<SessionToken>T</SessionToken><Expiration>2026-12-07T12:00:00Z"
			  "</Expiration></R>",
			  &err));
	g_clear_error(&err);
	g_assert_null(sts("<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S"
			  "</SecretAccessKey><SessionToken>T</SessionToken></Credentials></R>",
			  &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_error_free(err);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/credparse/endpoint-json", test_endpoint_json);
	g_test_add_func("/credparse/process-json", test_process_json);
	g_test_add_func("/credparse/bad-json", test_bad_json);
	g_test_add_func("/credparse/too-long", test_too_long);
	g_test_add_func("/credparse/sts", test_sts);
	g_test_add_func("/credparse/sts-errors", test_sts_errors);
	return g_test_run();
}
