#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gpgme.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <uninorm.h>
#include <unistr.h>

#include "pem.h"
#include "pem_page.h"

#define BEGIN_LINE "-----BEGIN MAILWARD PEM-----"
#define END_LINE "-----END MAILWARD PEM-----"
#define KDF_NAME "pbkdf2-sha256"
#define KEY_LEN 32
#define TAG_LEN 16
#define SALT_LEN 16
#define IV_LEN 12
#define B64_WIDTH 76
/* Output buffers: a 64 MB message grows by a third in base64. */
#define OUT_MAX ((size_t)256 * 1024 * 1024)

extern char **environ;

static int fail(struct mw_buf *err, const char *what)
{
	mw_buf_puts(err, what);
	return -1;
}

/* ---------------------------------------------------------------- passwords */

int mp_pem_password_normalize(const char *in, size_t len, struct mw_buf *out, struct mw_buf *err)
{
	if (len == 0)
		return fail(err, "empty password");
	if (memchr(in, '\0', len) != NULL)
		return fail(err, "password holds a NUL byte");
	if (u8_check((const uint8_t *)in, len) != NULL)
		return fail(err, "password is not valid UTF-8");
	size_t n = 0;
	uint8_t *nfc = u8_normalize(UNINORM_NFC, (const uint8_t *)in, len, NULL, &n);
	if (nfc == NULL)
		return fail(err, "password: NFC normalisation failed");
	int r = 0;
	if (n > MP_PEM_MAX_PASSWORD)
		r = fail(err, "password longer than 4096 bytes");
	else if (mw_buf_append(out, nfc, n) < 0)
		r = fail(err, "password: out of memory");
	OPENSSL_cleanse(nfc, n);
	free(nfc);
	return r;
}

/* Crockford's base32, lower case: no i, l, o, u to misread. */
static const char alphabet[32] = "0123456789abcdefghjkmnpqrstvwxyz";

int mp_pem_password_generate(char *out, size_t outlen)
{
	unsigned char r[30];
	if (outlen < MP_PEM_GENERATED_SIZE || RAND_bytes(r, sizeof(r)) != 1)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < sizeof(r); i++) {
		if (i > 0 && i % 5 == 0)
			out[o++] = '-';
		out[o++] = alphabet[r[i] & 31]; /* 256 % 32 == 0: unbiased */
	}
	out[o] = '\0';
	OPENSSL_cleanse(r, sizeof(r));
	return 0;
}

/* ---------------------------------------------------------------- crypto */

static int derive(const struct mw_buf *pw, const unsigned char *salt, unsigned iter, unsigned char *key)
{
	return PKCS5_PBKDF2_HMAC(pw->data, (int)pw->len, salt, SALT_LEN, (int)iter, EVP_sha256(), KEY_LEN, key) == 1
		       ? 0
		       : -1;
}

/* AES-256-GCM; enc: 1 seals in into out (ciphertext || tag), 0 opens. */
static int gcm(int enc, const unsigned char *key, const unsigned char *iv, const struct mw_buf *aad,
	       const unsigned char *in, size_t inlen, unsigned char *out)
{
	if (inlen > INT_MAX)
		return -1;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0, ok = c != NULL;
	ok = ok && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1;
	ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) == 1;
	ok = ok && EVP_CipherInit_ex(c, NULL, NULL, key, iv, enc) == 1;
	ok = ok && EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)aad->data, (int)aad->len) == 1;
	ok = ok && EVP_CipherUpdate(c, out, &n, in, (int)inlen) == 1;
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(in + inlen)) == 1;
	ok = ok && EVP_CipherFinal_ex(c, out + n, &fin) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + inlen) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

static void b64(struct mw_buf *b, const unsigned char *p, size_t n)
{
	char tmp[4 * (SALT_LEN + 2) / 3 + 4];
	EVP_EncodeBlock((unsigned char *)tmp, p, (int)n);
	mw_buf_puts(b, tmp);
}

/* The parameters, canonical: the GCM additional data. */
static void params_line(struct mw_buf *b, const char *kind, unsigned iter, const unsigned char *salt,
			const unsigned char *iv)
{
	mw_buf_printf(b, "v=1;kind=%s;kdf=" KDF_NAME ";iter=%u;salt=", kind, iter);
	b64(b, salt, SALT_LEN);
	mw_buf_puts(b, ";iv=");
	b64(b, iv, IV_LEN);
}

int mp_pem_seal_envelope(const struct mp_pem_opts *o, const char *kind, const char *password,
			 const unsigned char *mime, size_t mime_len, struct mw_buf *out, struct mw_buf *err)
{
	unsigned iter = o->iterations ? o->iterations : MP_PEM_DEFAULT_ITERATIONS;
	if (iter < MP_PEM_MIN_ITERATIONS || iter > MP_PEM_MAX_ITERATIONS)
		return fail(err, "KDF iterations out of range");
	if (strcmp(kind, "message") != 0 && strcmp(kind, "reply") != 0)
		return fail(err, "envelope kind must be message or reply");
	if (mime_len > INT_MAX - TAG_LEN)
		return fail(err, "message too large to seal");
	struct mw_buf pw = MW_BUF_INIT;
	if (mp_pem_password_normalize(password, strlen(password), &pw, err) < 0) {
		mw_buf_wipe(&pw);
		return -1;
	}
	unsigned char salt[SALT_LEN], iv[IV_LEN], key[KEY_LEN];
	struct mw_buf aad = MW_BUF_INIT;
	unsigned char *ct = malloc(mime_len + TAG_LEN);
	int r = -1;
	if (ct == NULL) {
		fail(err, "out of memory");
	} else if (RAND_bytes(salt, SALT_LEN) != 1 || RAND_bytes(iv, IV_LEN) != 1) {
		fail(err, "no random bytes (RAND_bytes)");
	} else if (derive(&pw, salt, iter, key) < 0) {
		fail(err, "PBKDF2 failed");
	} else {
		params_line(&aad, kind, iter, salt, iv);
		if (gcm(1, key, iv, &aad, mime, mime_len, ct) < 0) {
			fail(err, "AES-256-GCM failed");
		} else {
			mw_buf_printf(out, BEGIN_LINE "\nVersion: 1\nKind: %s\nKDF: " KDF_NAME "\nIterations: %u\nSalt: ",
				      kind, iter);
			b64(out, salt, SALT_LEN);
			mw_buf_puts(out, "\nIV: ");
			b64(out, iv, IV_LEN);
			mw_buf_puts(out, "\n\n");
			size_t total = mime_len + TAG_LEN;
			char line[B64_WIDTH + 1];
			for (size_t i = 0; i < total; i += B64_WIDTH / 4 * 3) {
				size_t n = total - i < B64_WIDTH / 4 * 3 ? total - i : B64_WIDTH / 4 * 3;
				int w = EVP_EncodeBlock((unsigned char *)line, ct + i, (int)n);
				mw_buf_append(out, line, (size_t)w);
				mw_buf_putc(out, '\n');
			}
			mw_buf_puts(out, END_LINE "\n");
			r = mw_buf_failed(out) ? fail(err, "envelope: out of memory (or over the buffer's maximum)") : 0;
		}
	}
	OPENSSL_cleanse(key, sizeof(key));
	mw_buf_wipe(&pw);
	mw_buf_free(&aad);
	free(ct);
	return r;
}

/* ---------------------------------------------------------------- parsing */

static const unsigned char *find(const unsigned char *h, size_t hlen, const char *needle)
{
	return memmem(h, hlen, needle, strlen(needle));
}

/* Exactly n bytes from their padded base64 (no whitespace). */
static int b64_exact(const char *s, size_t slen, unsigned char *out, size_t n)
{
	size_t want = (n + 2) / 3 * 4;
	unsigned char tmp[64];
	if (slen != want || want > sizeof(tmp) / 4 * 3 + 4)
		return -1;
	int got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)slen);
	size_t pad = n % 3 == 0 ? 0 : 3 - n % 3;
	if (got < 0 || (size_t)got != n + pad)
		return -1;
	/* Canonical: the alphabet, then exactly the padding this length has. */
	for (size_t i = 0; i < slen; i++)
		if ((i < slen - pad) != (s[i] != '='))
			return -1;
	memcpy(out, tmp, n);
	return 0;
}

static int parse_uint(const char *s, size_t len, unsigned *out)
{
	unsigned long v = 0;
	if (len == 0 || len > 9 || (len > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = (unsigned)v;
	return 0;
}

/* One "Name: value" header line of the envelope. */
static int header(struct mp_pem_params *p, const char *line, size_t len, unsigned *seen, struct mw_buf *err)
{
	static const char *const names[] = { "Version", "Kind", "KDF", "Iterations", "Salt", "IV" };
	const char *colon = memchr(line, ':', len);
	if (colon == NULL)
		return fail(err, "envelope: header line without a colon");
	size_t nlen = (size_t)(colon - line);
	const char *v = colon + 1;
	size_t vlen = len - nlen - 1;
	while (vlen > 0 && *v == ' ')
		v++, vlen--;
	size_t i;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == nlen && memcmp(line, names[i], nlen) == 0)
			break;
	if (i == sizeof(names) / sizeof(names[0]))
		return fail(err, "envelope: unknown header");
	if (*seen & (1u << i))
		return fail(err, "envelope: repeated header");
	*seen |= 1u << i;
	switch (i) {
	case 0:
		if (parse_uint(v, vlen, &p->version) < 0 || p->version != 1)
			return fail(err, "envelope: unsupported version (this program reads version 1)");
		return 0;
	case 1:
		if (!(vlen == 7 && memcmp(v, "message", 7) == 0) && !(vlen == 5 && memcmp(v, "reply", 5) == 0))
			return fail(err, "envelope: unknown kind");
		memcpy(p->kind, v, vlen);
		p->kind[vlen] = '\0';
		return 0;
	case 2:
		if (vlen != strlen(KDF_NAME) || memcmp(v, KDF_NAME, vlen) != 0)
			return fail(err, "envelope: unsupported KDF");
		return 0;
	case 3:
		if (parse_uint(v, vlen, &p->iterations) < 0 || p->iterations < MP_PEM_MIN_ITERATIONS ||
		    p->iterations > MP_PEM_MAX_ITERATIONS)
			return fail(err, "envelope: iterations out of range");
		return 0;
	case 4:
		return b64_exact(v, vlen, p->salt, SALT_LEN) < 0 ? fail(err, "envelope: bad salt") : 0;
	default:
		return b64_exact(v, vlen, p->iv, IV_LEN) < 0 ? fail(err, "envelope: bad IV") : 0;
	}
}

int mp_pem_parse(const unsigned char *file, size_t len, struct mp_pem_params *p, struct mw_buf *err)
{
	memset(p, 0, sizeof(*p));
	mw_buf_init(&p->aad, 4096);
	mw_buf_init(&p->ct, OUT_MAX);
	const unsigned char *b = find(file, len, BEGIN_LINE);
	if (b == NULL)
		return fail(err, "no encrypted envelope in this file");
	const unsigned char *s = b + strlen(BEGIN_LINE), *end = file + len;
	const unsigned char *e = find(s, (size_t)(end - s), END_LINE);
	if (e == NULL)
		return fail(err, "envelope: no end line (file cut short?)");
	unsigned seen = 0;
	/* Header lines up to an empty line; CR and trailing blanks ignored. */
	for (;;) {
		const unsigned char *nl = memchr(s, '\n', (size_t)(e - s));
		if (nl == NULL)
			return fail(err, "envelope: no empty line after the headers");
		const unsigned char *ls = s;
		size_t ll = (size_t)(nl - s);
		s = nl + 1;
		while (ll > 0 && (ls[ll - 1] == '\r' || ls[ll - 1] == ' ' || ls[ll - 1] == '\t'))
			ll--;
		if (ls == b + strlen(BEGIN_LINE) && ll == 0)
			continue; /* the end of the BEGIN line itself */
		if (ll == 0)
			break;
		if (ll > 200)
			return fail(err, "envelope: header line too long");
		if (header(p, (const char *)ls, ll, &seen, err) < 0)
			return -1;
	}
	if (seen != 0x3f)
		return fail(err, "envelope: a header is missing");
	params_line(&p->aad, p->kind, p->iterations, p->salt, p->iv);

	/* The base64 body; EVP_Decode* skips CR, LF, spaces and tabs. */
	size_t blen = (size_t)(e - s);
	if (blen / 4 * 3 > OUT_MAX)
		return fail(err, "envelope: too large");
	unsigned char *raw = malloc(blen / 4 * 3 + 80);
	EVP_ENCODE_CTX *d = EVP_ENCODE_CTX_new();
	int r = -1;
	if (raw == NULL || d == NULL) {
		fail(err, "out of memory");
	} else {
		size_t got = 0;
		int n = 0, ok = 1;
		EVP_DecodeInit(d);
		for (size_t off = 0; ok && off < blen; off += 65536) {
			size_t chunk = blen - off < 65536 ? blen - off : 65536;
			ok = EVP_DecodeUpdate(d, raw + got, &n, s + off, (int)chunk) >= 0;
			got += (size_t)(n > 0 ? n : 0);
		}
		ok = ok && EVP_DecodeFinal(d, raw + got, &n) == 1;
		if (ok)
			got += (size_t)n;
		if (!ok)
			fail(err, "envelope: bad base64");
		else if (got < TAG_LEN)
			fail(err, "envelope: too short");
		else if (mw_buf_append(&p->ct, raw, got) < 0)
			fail(err, "envelope: too large");
		else
			r = 0;
	}
	EVP_ENCODE_CTX_free(d);
	free(raw);
	return r;
}

void mp_pem_params_free(struct mp_pem_params *p)
{
	mw_buf_free(&p->aad);
	mw_buf_free(&p->ct);
}

int mp_pem_open(const char *password, const unsigned char *file, size_t len, struct mw_buf *mime_out,
		struct mw_buf *err)
{
	struct mp_pem_params p;
	if (mp_pem_parse(file, len, &p, err) < 0) {
		mp_pem_params_free(&p);
		return -1;
	}
	struct mw_buf pw = MW_BUF_INIT;
	unsigned char key[KEY_LEN];
	size_t n = p.ct.len - TAG_LEN;
	unsigned char *pt = malloc(n + 1);
	int r = -1;
	if (pt == NULL)
		fail(err, "out of memory");
	else if (mp_pem_password_normalize(password, strlen(password), &pw, err) < 0)
		;
	else if (derive(&pw, p.salt, p.iterations, key) < 0)
		fail(err, "PBKDF2 failed");
	else if (gcm(0, key, p.iv, &p.aad, (const unsigned char *)p.ct.data, n, pt) < 0)
		fail(err, "wrong password, or the file was changed");
	else if (mw_buf_append(mime_out, pt, n) < 0)
		fail(err, "decrypted message too large");
	else
		r = 0;
	OPENSSL_cleanse(key, sizeof(key));
	mw_buf_wipe(&pw);
	if (pt != NULL) {
		OPENSSL_cleanse(pt, n);
		free(pt);
	}
	mp_pem_params_free(&p);
	return r;
}

/* ---------------------------------------------------------------- the page */

struct strings {
	const char *key, *en, *fr;
};

/* Every text of the page, in the languages shipped. */
static const struct strings page_strings[] = {
	{ "title", "Encrypted message", "Message chiffré" },
	{ "intro",
	  "This message is encrypted. Enter the password the sender gave you (by phone, by text message...) to read "
	  "it. Everything happens in this browser, offline: nothing is sent anywhere.",
	  "Ce message est chiffré. Saisissez le mot de passe que l'expéditeur vous a donné (par téléphone, par "
	  "SMS...) pour le lire. Tout se passe dans ce navigateur, hors ligne : rien n'est envoyé nulle part." },
	{ "from", "From", "De" },
	{ "date", "Date", "Date" },
	{ "hint", "Password hint", "Indice du mot de passe" },
	{ "password", "Password", "Mot de passe" },
	{ "open", "Open", "Ouvrir" },
	{ "working", "Decrypting...", "Déchiffrement..." },
	{ "wrong", "Wrong password, or the file is damaged. Nothing was decrypted. Check the password and try again.",
	  "Mot de passe incorrect, ou fichier abîmé. Rien n'a été déchiffré. Vérifiez le mot de passe et réessayez." },
	{ "nocrypto", "This browser cannot decrypt (no WebCrypto). Open the file in a current Firefox, Chrome, Edge or "
		      "Safari.",
	  "Ce navigateur ne sait pas déchiffrer (pas de WebCrypto). Ouvrez le fichier dans un Firefox, Chrome, Edge ou "
	  "Safari récent." },
	{ "empty", "Enter the password first.", "Saisissez d'abord le mot de passe." },
	{ "subject", "Subject", "Objet" },
	{ "attachments", "Attachments", "Pièces jointes" },
	{ "formatted", "Formatted version (remote content blocked)", "Version mise en forme (contenu distant bloqué)" },
	{ "reply", "Reply, encrypted with the same password", "Répondre, chiffré avec le même mot de passe" },
	{ "replytext", "Your reply", "Votre réponse" },
	{ "replyfiles", "Files to attach", "Fichiers à joindre" },
	{ "replymake", "Encrypt the reply", "Chiffrer la réponse" },
	{ "replydone",
	  "Done. Attach reply.html to an email to the sender, or use the link below to write that email.",
	  "C'est fait. Joignez reply.html à un courriel pour l'expéditeur, ou utilisez le lien ci-dessous pour "
	  "écrire ce courriel." },
	{ "replydownload", "Download reply.html", "Télécharger reply.html" },
	{ "replymail", "Write the email with the encrypted reply", "Écrire le courriel avec la réponse chiffrée" },
	{ "replybig", "The reply is too large for a link: attach reply.html instead.",
	  "La réponse est trop grande pour un lien : joignez plutôt reply.html." },
	{ "replysubject", "Encrypted reply", "Réponse chiffrée" },
	{ "isreply", "This is an encrypted reply.", "Ceci est une réponse chiffrée." },
};

static const char *string_for(const char *lang, const char *key, size_t klen)
{
	for (size_t i = 0; i < sizeof(page_strings) / sizeof(page_strings[0]); i++)
		if (strlen(page_strings[i].key) == klen && memcmp(page_strings[i].key, key, klen) == 0)
			return strcmp(lang, "fr") == 0 ? page_strings[i].fr : page_strings[i].en;
	return NULL;
}

static void html_escape(struct mw_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&': mw_buf_puts(b, "&amp;"); break;
		case '<': mw_buf_puts(b, "&lt;"); break;
		case '>': mw_buf_puts(b, "&gt;"); break;
		case '"': mw_buf_puts(b, "&quot;"); break;
		case '\'': mw_buf_puts(b, "&#39;"); break;
		default: mw_buf_putc(b, (unsigned char)*s);
		}
	}
}

/* JSON that is also safe inside a <script> data block. */
static void json_strings(struct mw_buf *b, const char *lang)
{
	mw_buf_putc(b, '{');
	for (size_t i = 0; i < sizeof(page_strings) / sizeof(page_strings[0]); i++) {
		mw_buf_printf(b, "%s\"%s\":\"", i ? "," : "", page_strings[i].key);
		for (const char *s = strcmp(lang, "fr") == 0 ? page_strings[i].fr : page_strings[i].en; *s; s++) {
			unsigned char c = (unsigned char)*s;
			if (c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c < 0x20)
				mw_buf_printf(b, "\\u%04x", c);
			else
				mw_buf_putc(b, c);
		}
		mw_buf_putc(b, '"');
	}
	mw_buf_putc(b, '}');
}

/* 'sha256-BASE64' of an inline script or style, for the page's CSP. */
static void csp_hash(struct mw_buf *b, const char *text)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	char enc[64];
	EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL);
	EVP_EncodeBlock((unsigned char *)enc, md, (int)mdlen);
	mw_buf_printf(b, "'sha256-%s'", enc);
}

/* Only a value safe in the page: printable, no line breaks. */
static const char *clean(const char *s)
{
	if (s == NULL)
		return "";
	for (const char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "";
	return s;
}

static int page(const struct mp_pem_opts *o, const struct mw_buf *env, struct mw_buf *out, struct mw_buf *err)
{
	const char *lang = o->lang != NULL && strcmp(o->lang, "fr") == 0 ? "fr" : "en";
	const char *t = mp_pem_page_html;
	while (*t != '\0') {
		const char *at = strchr(t, '@');
		if (at == NULL) {
			mw_buf_puts(out, t);
			break;
		}
		mw_buf_append(out, t, (size_t)(at - t));
		const char *close = strchr(at + 1, '@');
		if (close == NULL)
			return fail(err, "page template: unmatched @");
		const char *name = at + 1;
		size_t nlen = (size_t)(close - name);
		const char *s;
#define IS(lit) (nlen == strlen(lit) && memcmp(name, lit, nlen) == 0)
		if (IS("LANG"))
			mw_buf_puts(out, lang);
		else if (IS("CSP")) {
			/* srcdoc frames inherit this policy; data:/blob: images only. */
			mw_buf_puts(out, "default-src 'none'; script-src ");
			csp_hash(out, mp_pem_page_js);
			mw_buf_puts(out, "; style-src ");
			csp_hash(out, mp_pem_page_css);
			mw_buf_puts(out, "; img-src data: blob:; frame-src 'self' blob: data:; child-src 'self' blob: data:;"
					 " base-uri 'none'; form-action 'none'");
		} else if (IS("CSS"))
			mw_buf_puts(out, mp_pem_page_css);
		else if (IS("JS"))
			mw_buf_puts(out, mp_pem_page_js);
		else if (IS("ENVELOPE"))
			mw_buf_append(out, env->data, env->len);
		else if (IS("STRINGS"))
			json_strings(out, lang);
		else if (IS("SENDER"))
			html_escape(out, clean(o->sender));
		else if (IS("DATE"))
			html_escape(out, clean(o->date));
		else if (IS("HINT"))
			html_escape(out, clean(o->hint));
		else if (IS("NOSENDER"))
			mw_buf_puts(out, clean(o->sender)[0] ? "" : " hidden");
		else if (IS("NODATE"))
			mw_buf_puts(out, clean(o->date)[0] ? "" : " hidden");
		else if (IS("NOHINT"))
			mw_buf_puts(out, clean(o->hint)[0] ? "" : " hidden");
		else if ((s = string_for(lang, name, nlen)) != NULL)
			html_escape(out, s);
		else
			return fail(err, "page template: unknown @name@");
#undef IS
		t = close + 1;
	}
	return mw_buf_failed(out) ? fail(err, "page: out of memory") : 0;
}

static int write_all(FILE *out, const struct mw_buf *b, struct mw_buf *err)
{
	if (b->len > 0 && fwrite(b->data, 1, b->len, out) != b->len)
		return mw_buf_printf(err, "write: %s", strerror(errno)), -1;
	if (fflush(out) != 0)
		return mw_buf_printf(err, "write: %s", strerror(errno)), -1;
	return 0;
}

int mp_pem_seal_html(const struct mp_pem_opts *o, const char *password, const unsigned char *mime, size_t mime_len,
		     FILE *out, struct mw_buf *err)
{
	struct mw_buf env, html;
	mw_buf_init(&env, OUT_MAX);
	mw_buf_init(&html, OUT_MAX);
	int r = mp_pem_seal_envelope(o, "message", password, mime, mime_len, &env, err);
	if (r == 0)
		r = page(o, &env, &html, err);
	if (r == 0)
		r = write_all(out, &html, err);
	mw_buf_free(&env);
	mw_buf_free(&html);
	return r;
}

/* ---------------------------------------------------------------- message.asc */

int mp_pem_global_init(struct mw_buf *err)
{
	if (gpgme_check_version(NULL) == NULL)
		return fail(err, "GPGME: version check failed");
	gpgme_error_t e = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP);
	if (e != 0) {
		mw_buf_printf(err, "GPGME: no usable gpg (install the Debian package gnupg): %s", gpgme_strerror(e));
		return -1;
	}
	return 0;
}

static gpgme_error_t asc_passphrase(void *hook, const char *uid_hint, const char *info, int prev_bad, int fd)
{
	const struct mw_buf *pw = hook;
	(void)uid_hint;
	(void)info;
	if (prev_bad)
		return gpgme_error(GPG_ERR_CANCELED);
	if (gpgme_io_writen(fd, pw->data, pw->len) < 0 || gpgme_io_writen(fd, "\n", 1) < 0)
		return gpgme_error(GPG_ERR_CANCELED);
	return 0;
}

/* The throw-away home: its agent stopped, its few files removed. */
static void home_remove(const char *dir)
{
	char *argv[] = { "gpgconf", "--homedir", (char *)dir, "--kill", "gpg-agent", NULL };
	pid_t pid;
	if (posix_spawnp(&pid, "gpgconf", NULL, NULL, argv, environ) == 0) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	static const char *const files[] = { "gpg.conf", "pubring.kbx", "pubring.kbx~", "trustdb.gpg",
					     "random_seed", "S.gpg-agent", "S.gpg-agent.browser",
					     "S.gpg-agent.extra", "S.gpg-agent.ssh", ".gpg-v21-migrated" };
	struct mw_buf p = MW_BUF_INIT;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		mw_buf_setf(&p, "%s/%s", dir, files[i]);
		(void)unlink(mw_buf_str(&p));
	}
	mw_buf_setf(&p, "%s/private-keys-v1.d", dir);
	(void)rmdir(mw_buf_str(&p));
	mw_buf_free(&p);
	(void)rmdir(dir);
}

int mp_pem_seal_asc(const struct mp_pem_opts *o, const char *password, const unsigned char *mime, size_t mime_len,
		    FILE *out, struct mw_buf *err)
{
	const char *tmp = o->tmpdir != NULL ? o->tmpdir : getenv("TMPDIR");
	if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 60) /* the agent socket must fit in 108 bytes */
		tmp = "/tmp";
	struct mw_buf dir = MW_BUF_INIT, conf = MW_BUF_INIT, pw = MW_BUF_INIT;
	gpgme_ctx_t ctx = NULL;
	gpgme_data_t in = NULL, ciph = NULL;
	gpgme_error_t e;
	int r = -1;
	if (mp_pem_password_normalize(password, strlen(password), &pw, err) < 0)
		goto done;
	mw_buf_setf(&dir, "%s/mwpem.XXXXXX", tmp);
	if (mw_buf_failed(&dir) || mkdtemp(dir.data) == NULL) {
		mw_buf_printf(err, "mkdtemp %s: %s", mw_buf_str(&dir), strerror(errno));
		mw_buf_reset(&dir);
		goto done;
	}
	/* AES-256 and the strongest iterated S2K gpg 2.2 knows. */
	mw_buf_setf(&conf, "%s/gpg.conf", dir.data);
	FILE *cf = fopen(conf.data, "we");
	if (cf == NULL || fputs("cipher-algo AES256\ns2k-cipher-algo AES256\ns2k-digest-algo SHA512\n"
			       "s2k-mode 3\ns2k-count 65011712\nno-random-seed-file\n",
			       cf) < 0 ||
	    fclose(cf) != 0) {
		mw_buf_printf(err, "%s: %s", conf.data, strerror(errno));
		goto done;
	}
	if ((e = gpgme_new(&ctx)) != 0 || (e = gpgme_set_protocol(ctx, GPGME_PROTOCOL_OpenPGP)) != 0 ||
	    (e = gpgme_ctx_set_engine_info(ctx, GPGME_PROTOCOL_OpenPGP, NULL, dir.data)) != 0 ||
	    (e = gpgme_set_pinentry_mode(ctx, GPGME_PINENTRY_MODE_LOOPBACK)) != 0 ||
	    (e = gpgme_set_ctx_flag(ctx, "no-symkey-cache", "1")) != 0) {
		mw_buf_printf(err, "GPGME: %s", gpgme_strerror(e));
		goto done;
	}
	gpgme_set_armor(ctx, 1);
	gpgme_set_offline(ctx, 1);
	gpgme_set_passphrase_cb(ctx, asc_passphrase, &pw);
	if ((e = gpgme_data_new_from_mem(&in, (const char *)mime, mime_len, 0)) != 0 ||
	    (e = gpgme_data_new(&ciph)) != 0) {
		mw_buf_printf(err, "GPGME: %s", gpgme_strerror(e));
		goto done;
	}
	gpgme_data_set_encoding(ciph, GPGME_DATA_ENCODING_ARMOR);
	if ((e = gpgme_op_encrypt(ctx, NULL, GPGME_ENCRYPT_SYMMETRIC | GPGME_ENCRYPT_NO_COMPRESS, in, ciph)) != 0) {
		mw_buf_printf(err, "gpg --symmetric: %s", gpgme_strerror(e));
		goto done;
	}
	size_t n = 0;
	char *armored = gpgme_data_release_and_get_mem(ciph, &n);
	ciph = NULL;
	if (armored == NULL) {
		fail(err, "GPGME: no output");
		goto done;
	}
	if (fwrite(armored, 1, n, out) != n || fflush(out) != 0)
		mw_buf_printf(err, "write: %s", strerror(errno));
	else
		r = 0;
	gpgme_free(armored);
done:
	gpgme_data_release(in);
	gpgme_data_release(ciph);
	gpgme_release(ctx);
	if (dir.len > 0)
		home_remove(dir.data);
	mw_buf_free(&dir);
	mw_buf_free(&conf);
	mw_buf_wipe(&pw);
	return r;
}
