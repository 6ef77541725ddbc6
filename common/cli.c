#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "daemon.h"
#include "log.h"

struct mw_conf *mw_cli_reload_config(const struct mw_conf_key *schema, void *target,
				     const char *path, mw_cli_validate_fn *validate,
				     struct mw_buf *err)
{
	struct mw_conf *cfg = mw_conf_new(schema, target);
	if (cfg == NULL) {
		mw_buf_puts(err, "out of memory");
		return NULL;
	}
	if (mw_conf_load_file(cfg, path) < 0 || (validate != NULL && validate(cfg, target) < 0)) {
		mw_buf_puts(err, mw_conf_error(cfg));
		mw_conf_free(cfg);
		return NULL;
	}
	return cfg;
}

struct mw_conf *mw_cli_load_config(const struct mw_conf_key *schema, void *target,
				   const char *path, unsigned flags, mw_cli_validate_fn *validate)
{
	struct mw_buf err = MW_BUF_INIT;
	struct mw_conf *cfg = mw_cli_reload_config(schema, target, path, validate, &err);

	if (cfg == NULL) {
		/* stderr first: this is what the admin running -C reads. */
		fprintf(stderr, "%s\n", mw_buf_str(&err));
		fflush(stderr);
		exit(MW_EXIT_CONFIG);
	}
	mw_buf_free(&err);
	if (flags & MW_CLI_PRINT) {
		mw_conf_print(cfg, stdout);
		fflush(stdout);
		exit(0);
	}
	if (flags & MW_CLI_CHECK) {
		printf("%s: configuration OK\n", path);
		fflush(stdout);
		exit(0);
	}
	return cfg;
}
