/*
 * pem_page: the self-decrypting page's template, script and style
 * (milter-pgp/pem/page.html, page.js, page.css), built into the program as
 * C strings by milter-pgp/Makefile.inc (pem_page.c is generated).
 * page.html's @NAME@ markers are filled by pem.c.
 */
#ifndef MP_PEM_PAGE_H
#define MP_PEM_PAGE_H

extern const char mp_pem_page_html[];
extern const char mp_pem_page_js[];
extern const char mp_pem_page_css[];

#endif
