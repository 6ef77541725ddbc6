/* libFuzzer target: the configuration file parser (common/conf). */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

struct fconf {
	char *s;
	int b;
	unsigned long long u, d, z, o;
	int e;
	char **l;
	char *sock;
	int ncustom;
};

static int parse_custom(void *target, const char *value, struct mw_buf *err)
{
	struct fconf *f = target;
	if (value[0] == '!') {
		mw_buf_puts(err, "bang");
		return -1;
	}
	f->ncustom++;
	return 0;
}

static const char *const choices[] = { "a", "b", NULL };
static const struct mw_conf_key schema[] = {
	{ .name = "s", .type = MW_CONF_STRING, .offset = offsetof(struct fconf, s), .def = "x" },
	{ .name = "b", .type = MW_CONF_BOOL, .offset = offsetof(struct fconf, b), .def = "no" },
	{ .name = "u", .type = MW_CONF_UINT, .offset = offsetof(struct fconf, u), .def = "1", .max = 1000 },
	{ .name = "d", .type = MW_CONF_DURATION, .offset = offsetof(struct fconf, d), .def = "1s" },
	{ .name = "z", .type = MW_CONF_SIZE, .offset = offsetof(struct fconf, z), .def = "1k" },
	{ .name = "o", .type = MW_CONF_OCTAL, .offset = offsetof(struct fconf, o), .def = "0660" },
	{ .name = "e", .type = MW_CONF_ENUM, .offset = offsetof(struct fconf, e), .def = "a", .choices = choices },
	{ .name = "l", .type = MW_CONF_LIST, .offset = offsetof(struct fconf, l), .flags = MW_CONF_MULTI },
	{ .name = "sock", .type = MW_CONF_SOCKET, .offset = offsetof(struct fconf, sock) },
	{ .name = "secret", .type = MW_CONF_STRING, .offset = offsetof(struct fconf, s), .flags = MW_CONF_SECRET },
	{ .name = "c", .type = MW_CONF_CUSTOM, .flags = MW_CONF_MULTI, .parse = parse_custom },
	{ .name = NULL },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fconf f;
	memset(&f, 0, sizeof(f));
	struct mw_conf *cfg = mw_conf_new(schema, &f);
	if (cfg == NULL)
		return 0;
	if (mw_conf_load_string(cfg, "fuzz", (const char *)data, size) == 0) {
		FILE *out = fopen("/dev/null", "w");
		if (out != NULL) {
			mw_conf_print(cfg, out);
			fclose(out);
		}
	} else if (mw_conf_error(cfg)[0] == '\0') {
		abort(); /* every failure must say why */
	}
	mw_conf_free(cfg);
	return 0;
}
