/* json.c — strict JSON parser (DOM) and string builder; see json.h. */
#include "json.h"

#include <cpl_conv.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { JF_INT = 1, JF_NEGZERO = 2 };

struct gseg__json {
    uint8_t type;
    uint8_t flags;
    uint32_t n; /* array elements, object members, string bytes */
    union {
        double d;
        int64_t i;        /* integers (JF_INT), booleans */
        char *s;          /* strings: into the document's text copy */
        gseg__json **kids; /* arrays: n values; objects: 2n (key, value) */
    } v;
};

#define BLOCK_NODES 1024

typedef struct block {
    struct block *next;
    size_t used;
    gseg__json nodes[BLOCK_NODES];
} block;

/* The root is the first member, so the root pointer is the document. */
typedef struct doc {
    gseg__json root;
    char *text;
    block *blocks;
} doc;

typedef struct parser {
    char *t;
    size_t len, pos;
    char *err;
    size_t errlen;
    int failed;
    gseg_status st;
    doc *d;
    size_t nvalues, max_values;
    gseg__json **stack; /* children of the containers being parsed */
    size_t sn, scap;
    int depth;
} parser;

static void fail_at(parser *p, size_t at, const char *fmt, ...) GSEG__PRINTF(3, 4);
static void fail_at(parser *p, size_t at, const char *fmt, ...)
{
    if (p->failed) return;
    p->failed = 1;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "byte %zu: %s", at, msg);
    if (p->st == GSEG_OK) p->st = GSEG_ERR_FORMAT;
    gseg__err(p->st, "JSON: byte %zu: %s", at, msg);
}

static void fail_nomem(parser *p)
{
    p->st = GSEG_ERR_NOMEM;
    fail_at(p, p->pos, "out of memory");
}

/* A printable form of byte c for messages. */
static const char *show_char(unsigned char c, char buf[8])
{
    if (c >= 0x20 && c < 0x7f) snprintf(buf, 8, "'%c'", c);
    else snprintf(buf, 8, "0x%02x", c);
    return buf;
}

static gseg__json *new_node(parser *p, int type)
{
    if (p->nvalues >= p->max_values) {
        fail_at(p, p->pos, "too many values (more than %zu)", p->max_values);
        return NULL;
    }
    block *b = p->d->blocks;
    if (!b || b->used == BLOCK_NODES) {
        b = malloc(sizeof *b);
        if (!b) {
            fail_nomem(p);
            return NULL;
        }
        b->used = 0;
        b->next = p->d->blocks;
        p->d->blocks = b;
    }
    gseg__json *v = &b->nodes[b->used++];
    memset(v, 0, sizeof *v);
    v->type = (uint8_t)type;
    p->nvalues++;
    return v;
}

static int push(parser *p, gseg__json *v)
{
    if (p->sn == p->scap) {
        size_t cap = p->scap ? p->scap * 2 : 64;
        gseg__json **s = realloc(p->stack, cap * sizeof *s);
        if (!s) {
            fail_nomem(p);
            return 0;
        }
        p->stack = s;
        p->scap = cap;
    }
    p->stack[p->sn++] = v;
    return 1;
}

/* Moves the children pushed since `base` into container c. */
static int close_container(parser *p, gseg__json *c, size_t base, size_t per)
{
    size_t k = p->sn - base;
    if (k / per > UINT32_MAX) {
        fail_at(p, p->pos, "container too large");
        return 0;
    }
    c->n = (uint32_t)(k / per);
    if (k) {
        c->v.kids = malloc(k * sizeof *c->v.kids);
        if (!c->v.kids) {
            fail_nomem(p);
            return 0;
        }
        memcpy(c->v.kids, p->stack + base, k * sizeof *c->v.kids);
    }
    p->sn = base;
    return 1;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        char c = p->t[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* Length of the UTF-8 sequence at s (avail bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (avail < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

int gseg__utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq(u + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *w, unsigned cp)
{
    if (cp < 0x80) {
        w[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        w[0] = (char)(0xC0 | (cp >> 6));
        w[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        w[0] = (char)(0xE0 | (cp >> 12));
        w[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        w[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    w[0] = (char)(0xF0 | (cp >> 18));
    w[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    w[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    w[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the string at p->pos (a '"') in place: the decoded bytes are never
 * longer than the source, so they overwrite it; the closing quote's place
 * (or earlier) takes the terminating NUL. */
static gseg__json *parse_string(parser *p)
{
    size_t open = p->pos;
    gseg__json *v = new_node(p, GSEG__JSON_STRING);
    if (!v) return NULL;
    size_t start = ++p->pos, w = start;
    char *t = p->t;
    for (;;) {
        if (p->pos >= p->len) {
            fail_at(p, open, "unterminated string");
            return NULL;
        }
        unsigned char c = (unsigned char)t[p->pos];
        if (c == '"') break;
        if (c < 0x20) {
            fail_at(p, p->pos, "control character U+%04X in string (must be escaped)", c);
            return NULL;
        }
        if (c == '\\') {
            size_t esc = p->pos;
            if (p->pos + 1 >= p->len) {
                fail_at(p, open, "unterminated string");
                return NULL;
            }
            char e = t[p->pos + 1];
            char r = 0;
            switch (e) {
            case '"': r = '"'; break;
            case '\\': r = '\\'; break;
            case '/': r = '/'; break;
            case 'b': r = '\b'; break;
            case 'f': r = '\f'; break;
            case 'n': r = '\n'; break;
            case 'r': r = '\r'; break;
            case 't': r = '\t'; break;
            case 'u': break;
            default: {
                char b[8];
                fail_at(p, esc, "invalid escape '\\' followed by %s", show_char((unsigned char)e, b));
                return NULL;
            }
            }
            if (e != 'u') {
                t[w++] = r;
                p->pos += 2;
                continue;
            }
            unsigned cp;
            if (p->len - p->pos < 6 || !hex4(t + p->pos + 2, &cp)) {
                fail_at(p, esc, "invalid \\u escape (needs 4 hex digits)");
                return NULL;
            }
            p->pos += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail_at(p, esc, "lone low surrogate \\u%04X", cp);
                return NULL;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->len - p->pos < 6 || t[p->pos] != '\\' || t[p->pos + 1] != 'u' ||
                    !hex4(t + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    fail_at(p, esc, "high surrogate \\u%04X not followed by a low surrogate", cp);
                    return NULL;
                }
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            w += put_utf8(t + w, cp);
            continue;
        }
        if (c < 0x80) {
            t[w++] = (char)c;
            p->pos++;
            continue;
        }
        size_t k = utf8_seq((const unsigned char *)t + p->pos, p->len - p->pos);
        if (!k) {
            fail_at(p, p->pos, "invalid UTF-8 in string");
            return NULL;
        }
        for (size_t i = 0; i < k; i++) t[w++] = t[p->pos++];
    }
    if (w - start > UINT32_MAX) {
        fail_at(p, open, "string too long");
        return NULL;
    }
    t[w] = '\0'; /* w <= p->pos, the closing quote */
    p->pos++;
    v->v.s = t + start;
    v->n = (uint32_t)(w - start);
    return v;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static gseg__json *parse_number(parser *p)
{
    char *t = p->t;
    size_t start = p->pos;
    int neg = 0, isint = 1;
    if (t[p->pos] == '-') {
        neg = 1;
        p->pos++;
    }
    if (p->pos >= p->len || !is_digit(t[p->pos])) {
        fail_at(p, start, "invalid number (a digit must follow '-')");
        return NULL;
    }
    size_t dstart = p->pos;
    if (t[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->len && is_digit(t[p->pos])) {
            fail_at(p, start, "invalid number (leading zero)");
            return NULL;
        }
    } else {
        while (p->pos < p->len && is_digit(t[p->pos])) p->pos++;
    }
    size_t dend = p->pos;
    if (p->pos < p->len && t[p->pos] == '.') {
        isint = 0;
        p->pos++;
        if (p->pos >= p->len || !is_digit(t[p->pos])) {
            fail_at(p, start, "invalid number (a digit must follow '.')");
            return NULL;
        }
        while (p->pos < p->len && is_digit(t[p->pos])) p->pos++;
    }
    if (p->pos < p->len && (t[p->pos] == 'e' || t[p->pos] == 'E')) {
        isint = 0;
        p->pos++;
        if (p->pos < p->len && (t[p->pos] == '+' || t[p->pos] == '-')) p->pos++;
        if (p->pos >= p->len || !is_digit(t[p->pos])) {
            fail_at(p, start, "invalid number (a digit must follow the exponent)");
            return NULL;
        }
        while (p->pos < p->len && is_digit(t[p->pos])) p->pos++;
    }
    gseg__json *v = new_node(p, GSEG__JSON_NUMBER);
    if (!v) return NULL;
    if (isint) {
        uint64_t mag = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        int fits = 1;
        for (size_t i = dstart; i < dend && fits; i++) {
            unsigned dg = (unsigned)(t[i] - '0');
            if (mag > (lim - dg) / 10) fits = 0;
            else mag = mag * 10 + dg;
        }
        if (fits) {
            v->flags = JF_INT | (neg && mag == 0 ? JF_NEGZERO : 0);
            v->v.i = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag)
                         : (int64_t)mag;
            return v;
        }
    }
    /* t has a spare byte at t[len]; the text after the number is restored. */
    char save = t[p->pos];
    t[p->pos] = '\0';
    double d = CPLStrtod(t + start, NULL);
    t[p->pos] = save;
    if (!isfinite(d)) {
        fail_at(p, start, "number out of range of a double");
        return NULL;
    }
    v->v.d = d;
    return v;
}

static gseg__json *parse_value(parser *p);

static gseg__json *parse_array(parser *p)
{
    size_t open = p->pos;
    if (++p->depth > GSEG__JSON_MAX_DEPTH) {
        fail_at(p, open, "nesting deeper than %d", GSEG__JSON_MAX_DEPTH);
        return NULL;
    }
    gseg__json *a = new_node(p, GSEG__JSON_ARRAY);
    if (!a) return NULL;
    size_t base = p->sn;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->t[p->pos] == ']') {
        p->pos++;
    } else {
        for (;;) {
            gseg__json *v = parse_value(p);
            if (!v || !push(p, v)) return NULL;
            skip_ws(p);
            if (p->pos >= p->len) {
                fail_at(p, open, "unterminated array");
                return NULL;
            }
            char c = p->t[p->pos];
            if (c == ',') {
                p->pos++;
                continue;
            }
            if (c == ']') {
                p->pos++;
                break;
            }
            char b[8];
            fail_at(p, p->pos, "expected ',' or ']' in array, found %s", show_char((unsigned char)c, b));
            return NULL;
        }
    }
    if (!close_container(p, a, base, 1)) return NULL;
    p->depth--;
    return a;
}

static int key_cmp(const void *a, const void *b)
{
    const gseg__json *x = *(gseg__json *const *)a, *y = *(gseg__json *const *)b;
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    return memcmp(x->v.s, y->v.s, x->n);
}

/* Finds a duplicate key among the n members of o; NULL if none. */
static const gseg__json *find_duplicate(parser *p, const gseg__json *o)
{
    size_t n = o->n;
    if (n < 2) return NULL;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (key_cmp(&o->v.kids[2 * i], &o->v.kids[2 * j]) == 0) return o->v.kids[2 * i];
        return NULL;
    }
    gseg__json **keys = malloc(n * sizeof *keys);
    if (!keys) {
        fail_nomem(p);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) keys[i] = o->v.kids[2 * i];
    qsort(keys, n, sizeof *keys, key_cmp);
    const gseg__json *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (key_cmp(&keys[i - 1], &keys[i]) == 0) dup = keys[i];
    free(keys);
    return dup;
}

static gseg__json *parse_object(parser *p)
{
    size_t open = p->pos;
    if (++p->depth > GSEG__JSON_MAX_DEPTH) {
        fail_at(p, open, "nesting deeper than %d", GSEG__JSON_MAX_DEPTH);
        return NULL;
    }
    gseg__json *o = new_node(p, GSEG__JSON_OBJECT);
    if (!o) return NULL;
    size_t base = p->sn;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->t[p->pos] == '}') {
        p->pos++;
    } else {
        for (;;) {
            skip_ws(p);
            if (p->pos >= p->len) {
                fail_at(p, open, "unterminated object");
                return NULL;
            }
            if (p->t[p->pos] != '"') {
                char b[8];
                fail_at(p, p->pos, "expected a string key in object, found %s",
                        show_char((unsigned char)p->t[p->pos], b));
                return NULL;
            }
            gseg__json *k = parse_string(p);
            if (!k || !push(p, k)) return NULL;
            skip_ws(p);
            if (p->pos >= p->len || p->t[p->pos] != ':') {
                fail_at(p, p->pos, "expected ':' after an object key");
                return NULL;
            }
            p->pos++;
            gseg__json *v = parse_value(p);
            if (!v || !push(p, v)) return NULL;
            skip_ws(p);
            if (p->pos >= p->len) {
                fail_at(p, open, "unterminated object");
                return NULL;
            }
            char c = p->t[p->pos];
            if (c == ',') {
                p->pos++;
                continue;
            }
            if (c == '}') {
                p->pos++;
                break;
            }
            char b[8];
            fail_at(p, p->pos, "expected ',' or '}' in object, found %s", show_char((unsigned char)c, b));
            return NULL;
        }
    }
    if (!close_container(p, o, base, 2)) return NULL;
    const gseg__json *dup = find_duplicate(p, o);
    if (p->failed) return NULL;
    if (dup) {
        char name[64];
        size_t m = 0;
        for (size_t i = 0; i < dup->n && m < 48; i++) {
            unsigned char c = (unsigned char)dup->v.s[i];
            name[m++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
        name[m] = '\0';
        fail_at(p, open, "duplicate key \"%s%s\" in object", name, dup->n > m ? "..." : "");
        return NULL;
    }
    p->depth--;
    return o;
}

static gseg__json *parse_literal(parser *p, const char *word, int type, int64_t val)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->t + p->pos, word, n) != 0) {
        fail_at(p, p->pos, "invalid literal (expected %s)", word);
        return NULL;
    }
    gseg__json *v = new_node(p, type);
    if (!v) return NULL;
    v->v.i = val;
    p->pos += n;
    return v;
}

static gseg__json *parse_value(parser *p)
{
    skip_ws(p);
    if (p->pos >= p->len) {
        fail_at(p, p->pos, "unexpected end of input (expected a value)");
        return NULL;
    }
    char c = p->t[p->pos];
    switch (c) {
    case '{': return parse_object(p);
    case '[': return parse_array(p);
    case '"': return parse_string(p);
    case 't': return parse_literal(p, "true", GSEG__JSON_BOOL, 1);
    case 'f': return parse_literal(p, "false", GSEG__JSON_BOOL, 0);
    case 'n': return parse_literal(p, "null", GSEG__JSON_NULL, 0);
    default:
        if (c == '-' || is_digit(c)) return parse_number(p);
        {
            char b[8];
            fail_at(p, p->pos, "unexpected character %s (expected a value)", show_char((unsigned char)c, b));
        }
        return NULL;
    }
}

static void doc_free(doc *d)
{
    if (!d) return;
    for (block *b = d->blocks; b;) {
        for (size_t i = 0; i < b->used; i++) {
            gseg__json *v = &b->nodes[i];
            if ((v->type == GSEG__JSON_ARRAY || v->type == GSEG__JSON_OBJECT)) free(v->v.kids);
        }
        block *next = b->next;
        free(b);
        b = next;
    }
    free(d->text);
    free(d);
}

gseg__json *gseg__json_parse_ex(const char *text, size_t len, size_t max_values,
                                char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    parser p;
    memset(&p, 0, sizeof p);
    p.err = err;
    p.errlen = errlen;
    p.max_values = max_values;
    if (!text && len) {
        fail_at(&p, 0, "no text");
        return NULL;
    }
    p.d = calloc(1, sizeof *p.d);
    p.t = len < SIZE_MAX ? malloc(len + 1) : NULL;
    if (!p.d || !p.t) {
        free(p.t);
        free(p.d);
        fail_nomem(&p);
        return NULL;
    }
    if (len) memcpy(p.t, text, len);
    p.t[len] = '\0';
    p.len = len;
    p.d->text = p.t;
    gseg__json *root = parse_value(&p);
    if (root) {
        skip_ws(&p);
        if (p.pos != p.len) {
            char b[8];
            fail_at(&p, p.pos, "unexpected %s after the JSON value", show_char((unsigned char)p.t[p.pos], b));
        }
    }
    free(p.stack);
    if (p.failed) {
        doc_free(p.d);
        return NULL;
    }
    p.d->root = *root;
    root->type = GSEG__JSON_NULL; /* the copy owns the children */
    return &p.d->root;
}

gseg__json *gseg__json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    return gseg__json_parse_ex(text, len, 0x7fffffff, err, errlen);
}

void gseg__json_free(gseg__json *root)
{
    if (!root) return;
    doc *d = (doc *)root;
    if (root->type == GSEG__JSON_ARRAY || root->type == GSEG__JSON_OBJECT) free(root->v.kids);
    doc_free(d);
}

gseg__jtype gseg__json_type(const gseg__json *v)
{
    return v ? (gseg__jtype)v->type : GSEG__JSON_NULL;
}

const gseg__json *gseg__json_get(const gseg__json *obj, const char *key)
{
    if (!obj || obj->type != GSEG__JSON_OBJECT || !key) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->n; i++) {
        const gseg__json *k = obj->v.kids[2 * i];
        if (k->n == n && memcmp(k->v.s, key, n) == 0) return obj->v.kids[2 * i + 1];
    }
    return NULL;
}

size_t gseg__json_len(const gseg__json *v)
{
    if (!v) return 0;
    switch (v->type) {
    case GSEG__JSON_ARRAY:
    case GSEG__JSON_OBJECT:
    case GSEG__JSON_STRING: return v->n;
    default: return 0;
    }
}

const gseg__json *gseg__json_at(const gseg__json *v, size_t i)
{
    if (!v || i >= v->n) return NULL;
    if (v->type == GSEG__JSON_ARRAY) return v->v.kids[i];
    if (v->type == GSEG__JSON_OBJECT) return v->v.kids[2 * i + 1];
    return NULL;
}

const char *gseg__json_key_at(const gseg__json *obj, size_t i)
{
    if (!obj || obj->type != GSEG__JSON_OBJECT || i >= obj->n) return NULL;
    return obj->v.kids[2 * i]->v.s;
}

size_t gseg__json_key_len_at(const gseg__json *obj, size_t i)
{
    if (!obj || obj->type != GSEG__JSON_OBJECT || i >= obj->n) return 0;
    return obj->v.kids[2 * i]->n;
}

const char *gseg__json_str(const gseg__json *v)
{
    return v && v->type == GSEG__JSON_STRING ? v->v.s : NULL;
}

double gseg__json_num(const gseg__json *v)
{
    if (!v || v->type != GSEG__JSON_NUMBER) return NAN;
    if (v->flags & JF_NEGZERO) return -0.0;
    if (v->flags & JF_INT) return (double)v->v.i;
    return v->v.d;
}

int gseg__json_bool(const gseg__json *v)
{
    return v && v->type == GSEG__JSON_BOOL && v->v.i;
}

int gseg__json_int(const gseg__json *v, int64_t *out)
{
    if (!v || v->type != GSEG__JSON_NUMBER || !(v->flags & JF_INT)) return 0;
    if (out) *out = v->v.i;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* String builder                                                            */

void gseg__sbuf_init(gseg__sbuf *b) { memset(b, 0, sizeof *b); }

static gseg_status reserve(gseg__sbuf *b, size_t extra)
{
    if (b->st != GSEG_OK) return b->st;
    if (extra >= SIZE_MAX - b->len) return b->st = gseg__err(GSEG_ERR_NOMEM, "string too long");
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return GSEG_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *s = realloc(b->s, cap);
    if (!s) return b->st = gseg__err(GSEG_ERR_NOMEM, "out of memory growing a string to %zu bytes", cap);
    b->s = s;
    b->cap = cap;
    return GSEG_OK;
}

gseg_status gseg__sbuf_append(gseg__sbuf *b, const char *s, size_t n)
{
    gseg_status st = reserve(b, n);
    if (st != GSEG_OK) return st;
    if (n) memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return GSEG_OK;
}

gseg_status gseg__sbuf_puts(gseg__sbuf *b, const char *s)
{
    return gseg__sbuf_append(b, s, strlen(s));
}

gseg_status gseg__sbuf_appendf(gseg__sbuf *b, const char *fmt, ...)
{
    if (b->st != GSEG_OK) return b->st;
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    gseg_status st = n < 0 ? (b->st = gseg__err(GSEG_ERR_INTERNAL, "bad format string")) : reserve(b, (size_t)n);
    if (st == GSEG_OK) {
        vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
    return st;
}

gseg_status gseg__sbuf_append_jstr(gseg__sbuf *b, const char *s)
{
    if (b->st != GSEG_OK) return b->st;
    size_t n = strlen(s);
    if (!gseg__utf8_valid(s, n)) return gseg__err(GSEG_ERR_ARG, "string is not valid UTF-8");
    gseg_status st = reserve(b, n + 2);
    if (st != GSEG_OK) return st;
    b->s[b->len++] = '"';
    size_t run = 0; /* bytes copied verbatim, appended in runs */
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)s[i] : 0;
        int special = i == n || c < 0x20 || c == '"' || c == '\\';
        if (!special) continue;
        if (i > run && (st = gseg__sbuf_append(b, s + run, i - run)) != GSEG_OK) return st;
        run = i + 1;
        if (i == n) break;
        switch (c) {
        case '"': st = gseg__sbuf_append(b, "\\\"", 2); break;
        case '\\': st = gseg__sbuf_append(b, "\\\\", 2); break;
        case '\n': st = gseg__sbuf_append(b, "\\n", 2); break;
        case '\r': st = gseg__sbuf_append(b, "\\r", 2); break;
        case '\t': st = gseg__sbuf_append(b, "\\t", 2); break;
        case '\b': st = gseg__sbuf_append(b, "\\b", 2); break;
        case '\f': st = gseg__sbuf_append(b, "\\f", 2); break;
        default: st = gseg__sbuf_appendf(b, "\\u%04x", c); break;
        }
        if (st != GSEG_OK) return st;
    }
    return gseg__sbuf_append(b, "\"", 1);
}

char *gseg__sbuf_take(gseg__sbuf *b)
{
    if (b->st != GSEG_OK) {
        gseg__sbuf_free(b);
        return NULL;
    }
    char *s = b->s;
    if (!s) s = gseg__strdup("");
    memset(b, 0, sizeof *b);
    return s;
}

void gseg__sbuf_free(gseg__sbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

gseg_status gseg__json_write(gseg__sbuf *b, const gseg__json *v)
{
    switch (gseg__json_type(v)) {
    case GSEG__JSON_NULL: gseg__sbuf_puts(b, "null"); break;
    case GSEG__JSON_BOOL: gseg__sbuf_puts(b, gseg__json_bool(v) ? "true" : "false"); break;
    case GSEG__JSON_NUMBER: {
        int64_t i;
        if (gseg__json_int(v, &i))
            gseg__sbuf_appendf(b, "%lld", (long long)i);
        else
            gseg__sbuf_appendf(b, "%.17g", gseg__json_num(v));
        break;
    }
    case GSEG__JSON_STRING: gseg__sbuf_append_jstr(b, gseg__json_str(v)); break;
    case GSEG__JSON_ARRAY:
    case GSEG__JSON_OBJECT: {
        int obj = gseg__json_type(v) == GSEG__JSON_OBJECT;
        gseg__sbuf_puts(b, obj ? "{" : "[");
        for (size_t i = 0; i < gseg__json_len(v); i++) {
            if (i) gseg__sbuf_puts(b, ", ");
            if (obj) {
                gseg__sbuf_append_jstr(b, gseg__json_key_at(v, i));
                gseg__sbuf_puts(b, ": ");
            }
            gseg__json_write(b, gseg__json_at(v, i));
        }
        gseg__sbuf_puts(b, obj ? "}" : "]");
        break;
    }
    }
    return b->st;
}
