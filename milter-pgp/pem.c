#include "config.h"

#include "pem.h"

/* First commit: the API only; the implementation follows. */

int mp_pem_global_init(struct mw_buf *err)
{
	(void)err;
	return 0;
}

static int todo(struct mw_buf *err)
{
	mw_buf_puts(err, "password-encrypted messages: not implemented yet");
	return -1;
}

int mp_pem_seal_html(const struct mp_pem_opts *o, const char *password, const unsigned char *mime, size_t mime_len,
		     FILE *out, struct mw_buf *err)
{
	(void)o, (void)password, (void)mime, (void)mime_len, (void)out;
	return todo(err);
}

int mp_pem_seal_envelope(const struct mp_pem_opts *o, const char *kind, const char *password,
			 const unsigned char *mime, size_t mime_len, struct mw_buf *out, struct mw_buf *err)
{
	(void)o, (void)kind, (void)password, (void)mime, (void)mime_len, (void)out;
	return todo(err);
}

int mp_pem_seal_asc(const struct mp_pem_opts *o, const char *password, const unsigned char *mime, size_t mime_len,
		    FILE *out, struct mw_buf *err)
{
	(void)o, (void)password, (void)mime, (void)mime_len, (void)out;
	return todo(err);
}

int mp_pem_parse(const unsigned char *file, size_t len, struct mp_pem_params *p, struct mw_buf *err)
{
	(void)file, (void)len, (void)p;
	return todo(err);
}

void mp_pem_params_free(struct mp_pem_params *p)
{
	(void)p;
}

int mp_pem_open(const char *password, const unsigned char *file, size_t len, struct mw_buf *mime_out,
		struct mw_buf *err)
{
	(void)password, (void)file, (void)len, (void)mime_out;
	return todo(err);
}

int mp_pem_password_generate(char *out, size_t outlen)
{
	(void)out, (void)outlen;
	return -1;
}

int mp_pem_password_normalize(const char *in, size_t len, struct mw_buf *out, struct mw_buf *err)
{
	(void)in, (void)len, (void)out;
	return todo(err);
}
