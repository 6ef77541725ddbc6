/*
 * pipeline: what milter-auth does to one message, step by step, whoever
 * feeds it: the libmilter callbacks (milter.c) or the test mode (-t).
 * Both drive the same calls in the same order, so the test mode shows
 * exactly what the milter would do.
 *
 *   ma_msg_new -> connect -> helo -> mail -> rcpt... -> header... -> eoh
 *   -> body... -> eom (-> ma_msg_next for the next message of the
 *   connection) -> ma_msg_free
 *
 * The configuration and its engines are shared by all threads; a struct
 * ma_msg belongs to one connection (one thread at a time) and holds a
 * reference on the configuration it started with. The struct ma_outcome filled by eom is the
 * caller's; ma_outcome_free() releases it.
 */
#ifndef MA_PIPELINE_H
#define MA_PIPELINE_H

#include <stddef.h>

#include "buf.h"
#include "madkim.h"
#include "madmarc.h"
#include "maconf.h"
#include "spf.h"

enum ma_action {
	MA_ACCEPT,
	MA_REJECT,
	MA_TEMPFAIL,
	MA_QUARANTINE, /* Postfix hold queue (smfi_quarantine) */
};

struct ma_change {
	int add;       /* 1: add a header, 0: delete one */
	char *name;
	char *value;   /* add: the value (folded with "\n\t") */
	int index;     /* delete: which one of the headers with this name (1-based) */
};

struct ma_outcome {
	enum ma_action action;
	char rcode[4];          /* "550", "451" */
	char xcode[10];         /* "5.7.1" */
	struct mw_buf text;     /* reply text, or the quarantine reason */
	struct ma_change *changes; /* as many as needed: one per forged A-R */
	int nchanges, changes_cap;
	struct mw_buf log;      /* the one log line for this message */
	/* where the time went (wall clock, nanoseconds) */
	unsigned long long spf_ns, dkim_ns, dmarc_ns, total_ns;
};

void ma_outcome_init(struct ma_outcome *o);
void ma_outcome_free(struct ma_outcome *o);

struct ma_msg;

/* Takes a reference on conf (started with ma_conf_start) for its life. */
struct ma_msg *ma_msg_new(struct ma_conf *conf);
void ma_msg_free(struct ma_msg *m);
/* Ends one message and readies the next on the same connection. */
void ma_msg_next(struct ma_msg *m);

void ma_msg_connect(struct ma_msg *m, const char *client_ip, const char *client_name);
void ma_msg_helo(struct ma_msg *m, const char *helo);
/* sender without angle brackets ("" for the null sender); auth_user may be NULL. */
void ma_msg_mail(struct ma_msg *m, const char *sender, const char *auth_user);
void ma_msg_rcpt(struct ma_msg *m, const char *rcpt);
/* value as received after the colon, leading space and folds kept. */
void ma_msg_header(struct ma_msg *m, const char *name, const char *value);
void ma_msg_eoh(struct ma_msg *m);
void ma_msg_body(struct ma_msg *m, const unsigned char *data, size_t len);
/* 0 once the body can make no difference (no DKIM signature to verify):
   the MTA may skip sending the rest. */
int ma_msg_wants_body(const struct ma_msg *m);
/* Decides. qid names the message in the log; dice (0..99) is for DMARC
   pct sampling, -1 for a random one. */
void ma_msg_eom(struct ma_msg *m, const char *qid, int dice, struct ma_outcome *out);

#endif
