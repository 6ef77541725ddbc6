/*
 * conf: the one configuration file format of every mailward daemon.
 *
 *   # a comment (only at the start of a line)
 *   dns_timeout = 5s
 *   rule = sasl_username 250/1h 1000/1d
 *       action=defer             <- leading white space continues the line
 *   include = /etc/mailward/local.conf
 *
 * Strict on purpose: an unknown key, a bad value, a key given twice (unless
 * the schema lets it repeat), a syntax error or an unreadable file is an
 * error "file:line: what is wrong", and the daemon refuses to start. No
 * variable expansion, no quoting: a value is the rest of the line, trimmed.
 * Includes are read relative to the including file's directory, at most
 * MW_CONF_MAX_DEPTH deep.
 *
 * A component describes its keys in a schema (an array of struct mw_conf_key
 * ending with { NULL }) whose entries say where in the component's own
 * struct (the target) each value goes. Defaults are written as they would
 * be in the file and go through the same parser, so they are checked too.
 *
 * Memory: the struct mw_conf owns every string and list it stores in the
 * target and frees them in mw_conf_free(); the target itself belongs to
 * the caller and must outlive the mw_conf. To reload, load a new target
 * with a new mw_conf and swap once it succeeded.
 */
#ifndef MW_CONF_H
#define MW_CONF_H

#include <stddef.h>
#include <stdio.h>

#include "buf.h"

#define MW_CONF_MAX_DEPTH 8
#define MW_CONF_MAX_FILE_SIZE (1024 * 1024)
#define MW_CONF_MAX_LINE (64 * 1024)

enum mw_conf_type {
	MW_CONF_STRING,   /* char *: the value (never NULL once set) */
	MW_CONF_BOOL,     /* int: 0 or 1 (yes/no, true/false, on/off) */
	MW_CONF_UINT,     /* unsigned long long in [min, max] */
	MW_CONF_DURATION, /* unsigned long long milliseconds in [min, max] ("5s", "1h") */
	MW_CONF_SIZE,     /* unsigned long long bytes in [min, max] ("10m") */
	MW_CONF_ENUM,     /* int: index into choices */
	MW_CONF_LIST,     /* char **: NULL-terminated words (split at spaces and commas) */
	MW_CONF_SOCKET,   /* char *: a socket spec that mw_sock_parse() accepts */
	MW_CONF_OCTAL,    /* unsigned long long: a file mode such as 0660 (at most 07777) */
	MW_CONF_CUSTOM,   /* parse() turns the value into whatever the component needs */
};

/* flags */
#define MW_CONF_SECRET 1u   /* -n prints it as <hidden> */
#define MW_CONF_MULTI 2u    /* may be given many times: LIST appends, CUSTOM parses each */
#define MW_CONF_REQUIRED 4u /* must be set (no default) */

struct mw_conf_key {
	const char *name;
	enum mw_conf_type type;
	size_t offset;              /* offsetof(target struct, field) */
	const char *def;            /* default, written as in the file; NULL: unset */
	unsigned flags;
	unsigned long long min, max; /* UINT, DURATION, SIZE; max 0 means no maximum */
	const char *const *choices;  /* ENUM: NULL-terminated */
	/* CUSTOM: 0, or -1 with a message in err (no file:line, it is added). */
	int (*parse)(void *target, const char *value, struct mw_buf *err);
	/* CUSTOM: frees what parse() stored in the target (may be NULL). */
	void (*release)(void *target);
	const char *help;            /* one line, shown by -n before the key */
};

struct mw_conf;

struct mw_conf *mw_conf_new(const struct mw_conf_key *schema, void *target);
/* Applies the defaults, then reads the file. 0, or -1 and mw_conf_error(). */
int mw_conf_load_file(struct mw_conf *cfg, const char *path);
/* The same from memory; name is used in messages. */
int mw_conf_load_string(struct mw_conf *cfg, const char *name, const char *text, size_t len);
/* "file:line: message" of the first error. */
const char *mw_conf_error(const struct mw_conf *cfg);
/* Where a key got its value: "file:line"; for a key left at its default,
   the file loaded (so cross-key errors name it), or "default". */
const char *mw_conf_where(const struct mw_conf *cfg, const char *key);
int mw_conf_is_set(const struct mw_conf *cfg, const char *key);
/* For checks across keys after loading: records "where: key: message"
   as the error and returns -1. */
int mw_conf_fail(struct mw_conf *cfg, const char *key, const char *fmt, ...) MW_PRINTF(3, 4);
/* The effective configuration, every key, in schema order (-n). */
void mw_conf_print(const struct mw_conf *cfg, FILE *out);
void mw_conf_free(struct mw_conf *cfg);

#endif
