/* libFuzzer target: milter-pgp's re-injection mark (inject.h), a header a
   client may send. The input's first line is the X-Mailward-Reinjected
   value, the rest the body. Nothing but the secret's holder can make a
   mark that checks, so a 1 here is a bug. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inject.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mp_inject *inj;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char dir[] = "/tmp/fuzzmark.XXXXXX";
	char path[64];
	struct mw_buf err = MW_BUF_INIT;
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/secret", dir);
	inj = mp_inject_new("smtp:127.0.0.1:10026", path, 1000, &err); /* makes the secret */
	if (inj == NULL) {
		fprintf(stderr, "%s\n", mw_buf_str(&err));
		abort();
	}
	remove(path);
	remove(dir);
	mw_buf_free(&err);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const rcpts[] = { "dave@example.com", "Erin@Example.com" };
	const char *text = (const char *)data;
	const char *nl = memchr(text, '\n', size);
	size_t vlen = nl != NULL ? (size_t)(nl - text) : size;
	const char *body = nl != NULL ? nl + 1 : text + size;
	char *value = malloc(vlen + 1);
	struct mw_buf err = MW_BUF_INIT;
	if (value == NULL)
		return 0;
	memcpy(value, text, vlen);
	value[vlen] = '\0';
	if (mp_inject_check(inj, value, "alice@example.org", rcpts, 2, body, size - (size_t)(body - text),
			    (time_t)1796000000, &err) != 0)
		abort();
	free(value);
	mw_buf_free(&err);
	return 0;
}
