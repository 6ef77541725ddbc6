/*
 * gpg: milter-pgp's OpenPGP operations, on GPGME.
 *
 * As the GPGME manual asks of threaded programs: mp_gpg_global_init() once
 * before any thread starts; one GPGME context per message (struct mp_gpg),
 * never shared between threads. The keyring is a GnuPG home directory; its
 * gpg-agent socket path must fit in 108 bytes, so a long keyring path is
 * reached through a short symlink (/tmp/mwpgp.XXXXXX/k).
 *
 * Keys: a recipient's key is used only when it, its user id for that exact
 * address and an encryption subkey are all valid: not expired, not revoked,
 * not disabled. The keyring is trusted as the admin's choice (key_trust =
 * local): no web of trust.
 *
 * Every function returns 0 (or the count said) or -1 with the reason in err.
 */
#ifndef MP_GPG_H
#define MP_GPG_H

#include <stddef.h>

#include "buf.h"

struct mp_gpg_home;
struct mp_gpg;

int mp_gpg_global_init(struct mw_buf *err);

/* keyring: the GnuPG home; passphrase_file: "" or a file whose first line
   is the secret keys' passphrase (held in memory, wiped at free). */
struct mp_gpg_home *mp_gpg_home_new(const char *keyring, const char *passphrase_file, struct mw_buf *err);
void mp_gpg_home_free(struct mp_gpg_home *h);
const char *mp_gpg_home_path(const struct mp_gpg_home *h);

struct mp_gpg *mp_gpg_new(struct mp_gpg_home *h, struct mw_buf *err);
void mp_gpg_free(struct mp_gpg *g);

/* 1 when addr has a usable encryption key, 0 when not, -1 on error. With
   add, the key joins the recipients of mp_gpg_encrypt(). */
int mp_gpg_recipient(struct mp_gpg *g, const char *addr, int add, struct mw_buf *err);
/* 1 when addr has a usable secret signing key (its default one, see
   milter-pgp-keys default): it signs from now on; 0 when not; -1. */
int mp_gpg_signer(struct mp_gpg *g, const char *addr, struct mw_buf *err);
/* A recipient key found elsewhere (keysrc.h), in a file gpg reads at
   encryption (its --recipient-file); fpr identifies it for duplicates. */
int mp_gpg_recipient_file(struct mp_gpg *g, const char *path, const char *fpr, struct mw_buf *err);
int mp_gpg_nrecipients(const struct mp_gpg *g);
int mp_gpg_has_signer(const struct mp_gpg *g);

/*
 * The input is head (headlen bytes) followed by in_fd from offset 0 to its
 * end; the armored output goes to out_fd. Encrypts to the recipients (and
 * signs in the same pass when a signer is set); opts: MP_GPG_HIDE throws
 * the key ids, MP_GPG_COMPRESS lets gpg compress before encrypting.
 */
#define MP_GPG_HIDE 1
#define MP_GPG_COMPRESS 2
int mp_gpg_encrypt(struct mp_gpg *g, int opts, const char *head, size_t headlen, int in_fd, int out_fd,
		   struct mw_buf *err);
/* A detached armored signature; micalg gets e.g. "pgp-sha256". */
int mp_gpg_sign(struct mp_gpg *g, const char *head, size_t headlen, int in_fd, int out_fd, char *micalg,
		size_t micalg_size, struct mw_buf *err);

/*
 * Autocrypt's keydata for addr's key pair (the one mp_gpg_signer() would
 * sign with): the primary key, the user id of addr, one encryption subkey
 * (the newest valid one) and their self-signatures, binary, appended to
 * out. 1, 0 when addr has no such key pair, -1 with err.
 */
int mp_gpg_autocrypt_key(struct mp_gpg *g, const char *addr, struct mw_buf *out, struct mw_buf *err);

#endif
