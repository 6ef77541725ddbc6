/*
 * pamloop: logs in through real libpam, as a PAM-using server does:
 * pam_start, pam_authenticate, pam_acct_mgmt, pam_end, once per user
 * USERPREFIX0 .. USERPREFIX(N-1), answering every prompt with ANSWER (the
 * current code, from the caller). Prints one line:
 *
 *   logins=N ok=K seconds=S per_s=R p50_us=.. p99_us=..
 *
 *   pamloop SERVICE USERPREFIX N ANSWER
 */
#define _GNU_SOURCE
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *answer;

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	(void)data;
	struct pam_response *r = calloc((size_t)n, sizeof(*r));
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++)
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
			r[i].resp = strdup(answer);
	*resp = r;
	return PAM_SUCCESS;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: pamloop SERVICE USERPREFIX N ANSWER\n");
		return 2;
	}
	int n = atoi(argv[3]), ok = 0;
	answer = argv[4];
	double *lat = calloc((size_t)(n > 0 ? n : 1), sizeof(*lat));
	struct pam_conv c = { conv, NULL };
	double t0 = now();
	for (int i = 0; i < n; i++) {
		char user[128];
		snprintf(user, sizeof(user), "%s%d", argv[2], i);
		pam_handle_t *h = NULL;
		double t = now();
		if (pam_start(argv[1], user, &c, &h) != PAM_SUCCESS)
			return 1;
		int r = pam_authenticate(h, 0);
		if (r == PAM_SUCCESS)
			r = pam_acct_mgmt(h, 0);
		pam_end(h, r);
		lat[i] = now() - t;
		ok += r == PAM_SUCCESS;
	}
	double s = now() - t0;
	qsort(lat, (size_t)n, sizeof(*lat), cmp);
	printf("logins=%d ok=%d seconds=%.3f per_s=%.0f p50_us=%.0f p99_us=%.0f\n", n, ok, s, n / s,
	       lat[n / 2] * 1e6, lat[(size_t)((n - 1) * 0.99)] * 1e6);
	free(lat);
	return 0;
}
