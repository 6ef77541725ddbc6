/* libFuzzer target: the password modes' parsers of message text
   (pwmode.h): the input is a Subject value, a password header value and a
   template at once. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pwmode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct mw_buf out = MW_BUF_INIT;
	if (mp_pw_subject_untag(text, "[secure]", &out) && mw_buf_len(&out) > strlen(text))
		abort(); /* removing a tag never makes it longer */
	char *pw = mp_pw_from_header(text);
	if (pw != NULL && (pw[0] == '\0' || strlen(pw) > MP_PW_MAX_PASSWORD))
		abort();
	mp_pw_free(pw);
	struct mp_pw_fill f = { text, text, text, text, text };
	mw_buf_reset(&out);
	mp_pw_fill_template(text, &f, 1, &out);
	mw_buf_free(&out);
	free(text);
	return 0;
}
