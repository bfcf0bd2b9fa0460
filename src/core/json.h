/*
 * json.h — a small strict JSON (RFC 8259) DOM and a string builder.
 * Internal to libgseg (gseg__ prefix).
 *
 * Parsing is strict: one value, optional surrounding whitespace, nothing
 * else; no comments, trailing commas, leading zeros, NaN/Infinity, BOM,
 * control characters or invalid UTF-8 in strings, bad escapes or lone
 * surrogates, duplicate object keys, nesting deeper than 64, or numbers
 * whose magnitude overflows a double (1e999).
 *
 * Numbers keep their double value and, when the literal is an integer
 * (no fraction, no exponent) that fits, the exact int64 value.
 *
 * Memory is proportional to the input; gseg__json_parse_ex bounds the number
 * of values for inputs that come from untrusted files.
 */
#ifndef GSEG_JSON_H
#define GSEG_JSON_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

typedef enum gseg__jtype {
    GSEG__JSON_NULL,
    GSEG__JSON_BOOL,
    GSEG__JSON_NUMBER,
    GSEG__JSON_STRING,
    GSEG__JSON_ARRAY,
    GSEG__JSON_OBJECT
} gseg__jtype;

/* Deepest nesting of arrays/objects accepted. */
#define GSEG__JSON_MAX_DEPTH 64

typedef struct gseg__json gseg__json;

/* Parses text[0..len) (need not be NUL-terminated). Returns the root value,
 * or NULL with a one-line message "byte N: reason" in err (if err != NULL)
 * and gseg__err set to GSEG_ERR_FORMAT (GSEG_ERR_NOMEM when out of memory). */
gseg__json *gseg__json_parse(const char *text, size_t len, char *err, size_t errlen);
/* Same, failing once the document would hold more than max_values values
 * (keys count as values). */
gseg__json *gseg__json_parse_ex(const char *text, size_t len, size_t max_values,
                                char *err, size_t errlen);
/* Frees a document: only for a root returned by a parse function. NULL ok. */
void gseg__json_free(gseg__json *root);

/* Accessors. All accept NULL and values of the wrong type, answering with
 * NULL / 0 / NaN as described. Returned pointers live as long as the root. */
gseg__jtype gseg__json_type(const gseg__json *v);            /* NULL -> NULL type */
/* Member of an object by key (exact byte comparison); NULL if absent. */
const gseg__json *gseg__json_get(const gseg__json *obj, const char *key);
/* Elements of an array, members of an object, bytes of a string; else 0. */
size_t gseg__json_len(const gseg__json *v);
/* Element i of an array, or the value of member i of an object. */
const gseg__json *gseg__json_at(const gseg__json *v, size_t i);
/* Key of member i of an object (in document order). */
const char *gseg__json_key_at(const gseg__json *obj, size_t i);
/* Byte length of that key (keys may contain U+0000). */
size_t gseg__json_key_len_at(const gseg__json *obj, size_t i);
/* NUL-terminated UTF-8 of a string (may contain U+0000: see gseg__json_len). */
const char *gseg__json_str(const gseg__json *v);
/* Value of a number (NaN if not a number); "-0" gives -0.0. */
double gseg__json_num(const gseg__json *v);
/* 1 for true, 0 otherwise. */
int gseg__json_bool(const gseg__json *v);
/* 1 and *out set if v is a number written as an integer literal that fits in
 * int64 ("-0" gives 0); 0 otherwise (fractions, exponents, out of range). */
int gseg__json_int(const gseg__json *v, int64_t *out);

/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
int gseg__utf8_valid(const char *s, size_t n);

/* A growable string, always NUL-terminated once something was appended.
 * Errors are sticky: after a failure every append returns the same status
 * and b->st holds it. Zero-initialise ({0}) or use gseg__sbuf_init. */
typedef struct gseg__sbuf {
    char *s;
    size_t len, cap;
    gseg_status st;
} gseg__sbuf;

void gseg__sbuf_init(gseg__sbuf *b);
gseg_status gseg__sbuf_append(gseg__sbuf *b, const char *s, size_t n);
gseg_status gseg__sbuf_puts(gseg__sbuf *b, const char *s);
gseg_status gseg__sbuf_appendf(gseg__sbuf *b, const char *fmt, ...) GSEG__PRINTF(2, 3);
/* Appends s as a quoted JSON string, escaping '"', '\\' and control
 * characters. Fails with GSEG_ERR_ARG if s is not valid UTF-8. */
gseg_status gseg__sbuf_append_jstr(gseg__sbuf *b, const char *s);
/* Detaches the string (caller frees; "" allocated if empty), resets b.
 * NULL if b is in error (b is then freed). */
char *gseg__sbuf_take(gseg__sbuf *b);
/* Appends a parsed value as JSON text (", " and ": " separators; integers
 * as integers, other numbers with 17 digits, so parsing it again gives the
 * same document). Strings holding U+0000 are cut there. */
gseg_status gseg__json_write(gseg__sbuf *b, const gseg__json *v);
void gseg__sbuf_free(gseg__sbuf *b);

#endif
