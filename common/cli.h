/*
 * cli: what every daemon's main() does with its configuration file.
 *
 *   -c FILE  the file (each daemon has its own default path)
 *   -n       print the effective configuration (defaults included), exit 0
 *   -C       check the file and exit 0 ("FILE: configuration OK")
 *
 * A bad file prints "file:line: what is wrong" on stderr and exits with
 * MW_EXIT_CONFIG (2), before anything is bound or forked. Daemon code only:
 * it exits.
 */
#ifndef MW_CLI_H
#define MW_CLI_H

#include "conf.h"

#define MW_CLI_PRINT 1u /* -n */
#define MW_CLI_CHECK 2u /* -C */

/* Cross-key checks after loading: 0, or mw_conf_fail(...) (-1). */
typedef int mw_cli_validate_fn(struct mw_conf *cfg, void *target);

/* Loads path into target; returns the mw_conf that owns its values, or
   exits as described above. validate may be NULL. */
struct mw_conf *mw_cli_load_config(const struct mw_conf_key *schema, void *target,
				   const char *path, unsigned flags, mw_cli_validate_fn *validate);

/* For SIGHUP: the same without exiting; NULL with the message in err. */
struct mw_conf *mw_cli_reload_config(const struct mw_conf_key *schema, void *target,
				     const char *path, mw_cli_validate_fn *validate,
				     struct mw_buf *err);

#endif
