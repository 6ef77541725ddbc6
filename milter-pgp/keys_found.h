/*
 * keys_found: the milter-pgp-keys commands about keys beyond the keyring
 * (keysrc.h, pins.h) and about publishing ours:
 *
 *   refresh              look up again every address pinned or found
 *   pin ADDR [FPR]       pin ADDR to FPR, or to the key found for it now
 *   accept ADDR          the changed key seen for ADDR becomes its pin
 *   publish-wkd DIR [DOMAIN...]
 *                        the Web Key Directory of our key pairs, for a web
 *                        server: DIR/advanced is the document root of
 *                        openpgpkey.DOMAIN, DIR/direct/DOMAIN that of DOMAIN
 *
 * and the pinned state that list prints. Each returns the exit status.
 */
#ifndef MP_KEYS_FOUND_H
#define MP_KEYS_FOUND_H

#include <gpgme.h>

#include "pgpconf.h"

int mp_keys_refresh(struct mp_conf *conf, gpgme_ctx_t ctx, int argc, char **argv);
int mp_keys_pin(struct mp_conf *conf, gpgme_ctx_t ctx, int argc, char **argv);
int mp_keys_accept(struct mp_conf *conf, gpgme_ctx_t ctx, int argc, char **argv);
int mp_keys_publish_wkd(struct mp_conf *conf, gpgme_ctx_t ctx, int argc, char **argv);
/* The "pins:" section of list. */
void mp_keys_list_pins(struct mp_conf *conf);

#endif
