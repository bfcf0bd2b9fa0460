/* check_safetensors.c — the strict JSON parser and writer (src/core/json.c)
 * and the safetensors reader/writer (src/infer/safetensors.c): round trips
 * for every dtype, RFC 8259 edge cases, hostile files that must fail with a
 * one-line error and never crash, and files made by plain Python. */
#include "testutil.h"

#include "../src/core/json.h"
#include "../src/infer/safetensors.h"

#include <cpl_conv.h>
#include <cpl_vsi.h>
#include <gdal.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

static gseg__json *parse(const char *s) { return gseg__json_parse(s, strlen(s), NULL, 0); }

START_TEST(test_json_valid)
{
    gseg__json *j = parse(" {\"a\": [1, -2.5, true, false, null, \"x\"], \"b\": {\"c\": {}}, \"d\": []}\r\n\t");
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(gseg__json_type(j), GSEG__JSON_OBJECT);
    ck_assert_uint_eq(gseg__json_len(j), 3);
    ck_assert_str_eq(gseg__json_key_at(j, 0), "a");
    ck_assert_str_eq(gseg__json_key_at(j, 2), "d");
    const gseg__json *a = gseg__json_get(j, "a");
    ck_assert_uint_eq(gseg__json_len(a), 6);
    int64_t i;
    ck_assert(gseg__json_int(gseg__json_at(a, 0), &i) && i == 1);
    ck_assert(!gseg__json_int(gseg__json_at(a, 1), &i));
    ck_assert(gseg__json_num(gseg__json_at(a, 1)) == -2.5);
    ck_assert(gseg__json_bool(gseg__json_at(a, 2)) == 1);
    ck_assert(gseg__json_type(gseg__json_at(a, 3)) == GSEG__JSON_BOOL && !gseg__json_bool(gseg__json_at(a, 3)));
    ck_assert_int_eq(gseg__json_type(gseg__json_at(a, 4)), GSEG__JSON_NULL);
    ck_assert_str_eq(gseg__json_str(gseg__json_at(a, 5)), "x");
    ck_assert_ptr_null(gseg__json_at(a, 6));
    ck_assert_ptr_null(gseg__json_get(j, "zz"));
    ck_assert_ptr_null(gseg__json_get(a, "a"));
    ck_assert_ptr_null(gseg__json_str(a));
    ck_assert(isnan(gseg__json_num(a)));
    ck_assert_int_eq(gseg__json_type(gseg__json_get(gseg__json_get(j, "b"), "c")), GSEG__JSON_OBJECT);
    ck_assert_uint_eq(gseg__json_len(gseg__json_get(j, "d")), 0);
    gseg__json_free(j);

    /* Scalars at top level, numbers. */
    j = parse("-0");
    ck_assert(gseg__json_int(j, &i) && i == 0);
    ck_assert(gseg__json_num(j) == 0 && signbit(gseg__json_num(j)));
    gseg__json_free(j);
    j = parse("-0.0");
    ck_assert(!gseg__json_int(j, &i) && signbit(gseg__json_num(j)));
    gseg__json_free(j);
    j = parse("9223372036854775807");
    ck_assert(gseg__json_int(j, &i) && i == INT64_MAX);
    gseg__json_free(j);
    j = parse("-9223372036854775808");
    ck_assert(gseg__json_int(j, &i) && i == INT64_MIN);
    gseg__json_free(j);
    j = parse("9223372036854775808"); /* 2^63: a number, not an int64 */
    ck_assert(!gseg__json_int(j, &i) && gseg__json_num(j) == 9223372036854775808.0);
    gseg__json_free(j);
    j = parse("9007199254740993"); /* 2^53 + 1: exact as int64, not as double */
    ck_assert(gseg__json_int(j, &i) && i == 9007199254740993LL);
    gseg__json_free(j);
    j = parse("123456789012345678901234567890");
    ck_assert(!gseg__json_int(j, &i) && gseg__json_num(j) > 1.2e29);
    gseg__json_free(j);
    j = parse("1e3");
    ck_assert(!gseg__json_int(j, &i) && gseg__json_num(j) == 1000.0);
    gseg__json_free(j);
    j = parse("1E-999"); /* underflow is fine */
    ck_assert(j && gseg__json_num(j) == 0.0);
    gseg__json_free(j);
    j = parse("0.5e+1");
    ck_assert(j && gseg__json_num(j) == 5.0);
    gseg__json_free(j);

    /* Strings: escapes, surrogate pairs, U+0000, raw UTF-8. */
    j = parse("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 \\u20AC \xc3\xa9\"");
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(gseg__json_str(j), "q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9");
    gseg__json_free(j);
    j = parse("{\"a\\u0000b\": \"x\\u0000\"}");
    ck_assert_ptr_nonnull(j);
    ck_assert_uint_eq(gseg__json_key_len_at(j, 0), 3);
    ck_assert_uint_eq(gseg__json_len(gseg__json_at(j, 0)), 2);
    ck_assert_ptr_null(gseg__json_get(j, "a"));
    gseg__json_free(j);
    /* Not NUL-terminated input. */
    const char buf[] = {'[', '1', ']', 'x'};
    j = gseg__json_parse(buf, 3, NULL, 0);
    ck_assert_ptr_nonnull(j);
    gseg__json_free(j);

    /* Depth 64 is fine. */
    char deep[200];
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    j = gseg__json_parse(deep, 128, NULL, 0);
    ck_assert_ptr_nonnull(j);
    gseg__json_free(j);

    /* Many keys: duplicate detection through the sorted path. */
    gseg__sbuf b = {0};
    gseg__sbuf_puts(&b, "{");
    for (int k = 0; k < 1000; k++) gseg__sbuf_appendf(&b, "%s\"k%d\":%d", k ? "," : "", k, k);
    gseg__sbuf_puts(&b, "}");
    j = gseg__json_parse(b.s, b.len, NULL, 0);
    ck_assert_ptr_nonnull(j);
    ck_assert_uint_eq(gseg__json_len(j), 1000);
    ck_assert(gseg__json_int(gseg__json_get(j, "k777"), &i) && i == 777);
    gseg__json_free(j);
    gseg__sbuf_free(&b);
    gseg__json_free(NULL);
}
END_TEST

static void expect_invalid(const char *s, size_t n, const char *why)
{
    char err[256] = "unset";
    gseg__json *j = gseg__json_parse(s, n, err, sizeof err);
    ck_assert_msg(j == NULL, "accepted invalid JSON (%s): %.*s", why, (int)n, s);
    ck_assert_msg(strncmp(err, "byte ", 5) == 0 && strlen(err) > 8, "bad message for %s: %s", why, err);
    ck_assert_msg(!strchr(err, '\n'), "multi-line message: %s", err);
}

START_TEST(test_json_invalid)
{
    static const struct {
        const char *s, *why;
    } cases[] = {
        {"", "empty"},
        {"  ", "blank"},
        {"{", "open object"},
        {"[", "open array"},
        {"[1,]", "trailing comma in array"},
        {"{\"a\":1,}", "trailing comma in object"},
        {"[,1]", "leading comma"},
        {"[1 2]", "missing comma"},
        {"{\"a\" 1}", "missing colon"},
        {"{a:1}", "unquoted key"},
        {"{1:1}", "number key"},
        {"'a'", "single quotes"},
        {"01", "leading zero"},
        {"-01", "negative leading zero"},
        {"1.", "dot without digits"},
        {".5", "leading dot"},
        {"-", "lone minus"},
        {"+1", "plus sign"},
        {"1e", "empty exponent"},
        {"1e+", "empty signed exponent"},
        {"0x10", "hex"},
        {"1e999", "overflow"},
        {"-1e999", "negative overflow"},
        {"[1e400]", "overflow in array"},
        {"NaN", "NaN"},
        {"Infinity", "Infinity"},
        {"-Infinity", "-Infinity"},
        {"tru", "short true"},
        {"nul", "short null"},
        {"True", "capital True"},
        {"[1] x", "trailing garbage"},
        {"{} {}", "two values"},
        {"1 2", "two numbers"},
        {"{\"a\":1,\"a\":2}", "duplicate key"},
        {"{\"a\":{\"b\":1,\"b\":1}}", "nested duplicate key"},
        {"{\"\\u0061\":1,\"a\":2}", "duplicate after unescaping"},
        {"\"\\ud800\"", "lone high surrogate"},
        {"\"\\udc00\"", "lone low surrogate"},
        {"\"\\ud800\\u0041\"", "high surrogate + non-low"},
        {"\"\\ud800\\ud800\"", "two high surrogates"},
        {"\"\\ud800x\"", "high surrogate + char"},
        {"\"\\x41\"", "bad escape"},
        {"\"\\u12\"", "short \\u"},
        {"\"\\u12g4\"", "non-hex \\u"},
        {"\"\\\"", "escaped closing quote"},
        {"\"abc", "unterminated string"},
        {"\"a\nb\"", "raw newline"},
        {"\"a\tb\"", "raw tab"},
        {"\"\x01\"", "raw control"},
        {"\"\xff\"", "invalid UTF-8 byte"},
        {"\"\xc0\xaf\"", "overlong UTF-8"},
        {"\"\xe0\x80\xaf\"", "overlong 3-byte UTF-8"},
        {"\"\xed\xa0\x80\"", "UTF-8 encoded surrogate"},
        {"\"\xf4\x90\x80\x80\"", "above U+10FFFF"},
        {"\"\xe2\x82\"", "truncated UTF-8"},
        {"\xef\xbb\xbf{}", "BOM"},
        {"// c\n1", "comment"},
        {"[1]//", "trailing comment"},
        {"{\"a\":1}\v", "vertical tab"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        expect_invalid(cases[k].s, strlen(cases[k].s), cases[k].why);
    expect_invalid("1\0", 2, "embedded NUL");
    expect_invalid("[\0]", 3, "NUL in array");

    char deep[300];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    expect_invalid(deep, 130, "depth 65");
    memset(deep, '[', 300);
    expect_invalid(deep, 300, "depth 300, unterminated");
    for (int k = 0; k < 65; k++) memcpy(deep + 4 * k, "{\"\":", 4);
    expect_invalid(deep, 260, "object depth 65");

    char err[256];
    ck_assert_ptr_null(gseg__json_parse("[1,]", 4, err, sizeof err));
    ck_assert_str_eq(err, "byte 3: unexpected character ']' (expected a value)");
    ck_assert_ptr_null(gseg__json_parse("{\"k\":1,\"k\":2}", 13, err, sizeof err));
    ck_assert_msg(strstr(err, "duplicate key \"k\""), "%s", err);

    /* Many keys, duplicate at the end (sorted path). */
    gseg__sbuf b = {0};
    gseg__sbuf_puts(&b, "{");
    for (int k = 0; k < 100; k++) gseg__sbuf_appendf(&b, "\"k%d\":0,", k);
    gseg__sbuf_puts(&b, "\"k42\":1}");
    expect_invalid(b.s, b.len, "duplicate among 101 keys");
    gseg__sbuf_free(&b);

    /* The value limit. */
    ck_assert_ptr_null(gseg__json_parse_ex("[1,2,3]", 7, 3, err, sizeof err));
    ck_assert_msg(strstr(err, "too many values"), "%s", err);
    gseg__json *j = gseg__json_parse_ex("[1,2,3]", 7, 4, err, sizeof err);
    ck_assert_ptr_nonnull(j);
    gseg__json_free(j);
}
END_TEST

START_TEST(test_sbuf)
{
    gseg__sbuf b;
    gseg__sbuf_init(&b);
    const char *nasty = "q\"b\\s/\n\r\t\b\f\x01\x1f \xc3\xa9\xf0\x9f\x98\x80 end";
    ck_gseg(gseg__sbuf_puts(&b, "["));
    ck_gseg(gseg__sbuf_append_jstr(&b, nasty));
    ck_gseg(gseg__sbuf_appendf(&b, ",%d,%s,", 42, "true"));
    ck_gseg(gseg__sbuf_append_jstr(&b, ""));
    ck_gseg(gseg__sbuf_puts(&b, "]"));
    ck_assert_uint_eq(strlen(b.s), b.len);
    gseg__json *j = gseg__json_parse(b.s, b.len, NULL, 0);
    ck_assert_msg(j != NULL, "%s", b.s);
    ck_assert_str_eq(gseg__json_str(gseg__json_at(j, 0)), nasty);
    ck_assert_str_eq(gseg__json_str(gseg__json_at(j, 3)), "");
    gseg__json_free(j);
    ck_assert_int_eq(gseg__sbuf_append_jstr(&b, "\xff"), GSEG_ERR_ARG);
    char *s = gseg__sbuf_take(&b);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_null(b.s);
    free(s);
    s = gseg__sbuf_take(&b);
    ck_assert_str_eq(s, "");
    free(s);
    /* A long appendf grows the buffer. */
    for (int k = 0; k < 1000; k++) ck_gseg(gseg__sbuf_appendf(&b, "%08d", k));
    ck_assert_uint_eq(b.len, 8000);
    ck_assert(strncmp(b.s + 7992, "00000999", 8) == 0);
    gseg__sbuf_free(&b);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* safetensors round trips                                                   */

static const char *const all_names[GSEG__ST_NDTYPES] = {"BOOL", "U8",  "I8",  "I16", "U16", "I32", "U32",
                                                        "I64",  "U64", "F16", "BF16", "F32", "F64"};

START_TEST(test_dtype_table)
{
    GDALAllRegister();
    static const size_t sizes[GSEG__ST_NDTYPES] = {1, 1, 1, 2, 2, 4, 4, 8, 8, 2, 2, 4, 8};
    for (int d = 0; d < GSEG__ST_NDTYPES; d++) {
        ck_assert_str_eq(gseg__st_dtype_name((gseg__st_dtype)d), all_names[d]);
        ck_assert_uint_eq(gseg__st_dtype_size((gseg__st_dtype)d), sizes[d]);
    }
    ck_assert_str_eq(gseg__st_dtype_name((gseg__st_dtype)99), "?");
    ck_assert_uint_eq(gseg__st_dtype_size((gseg__st_dtype)-1), 0);
}
END_TEST

/* Six values of each dtype (raw little-endian bytes) and what they read as. */
typedef struct sample {
    gseg__st_dtype d;
    unsigned char bytes[6 * 8];
    float f[6];
    int64_t i[6]; /* valid when ints */
    int ints;     /* read_i64 succeeds */
} sample;

static void put(unsigned char *p, uint64_t v, int n)
{
    for (int k = 0; k < n; k++) p[k] = (unsigned char)(v >> (8 * k));
}

static void make_samples(sample s[GSEG__ST_NDTYPES])
{
    memset(s, 0, sizeof(sample) * GSEG__ST_NDTYPES);
    for (int d = 0; d < GSEG__ST_NDTYPES; d++) s[d].d = (gseg__st_dtype)d;
    const int64_t iv[6] = {0, 1, -1, 100, -128, 127};
    /* signed and unsigned integers */
    for (int k = 0; k < 6; k++) {
        int64_t v = iv[k];
        put(s[GSEG__ST_I8].bytes + k, (uint64_t)v, 1);
        put(s[GSEG__ST_I16].bytes + 2 * k, (uint64_t)(v * 200), 2);
        put(s[GSEG__ST_I32].bytes + 4 * k, (uint64_t)(v * 16000000), 4);
        put(s[GSEG__ST_I64].bytes + 8 * k, (uint64_t)(v * 70000000000000LL), 8);
        s[GSEG__ST_I8].i[k] = v;
        s[GSEG__ST_I16].i[k] = v * 200;
        s[GSEG__ST_I32].i[k] = v * 16000000;
        s[GSEG__ST_I64].i[k] = v * 70000000000000LL;
        uint64_t u = (uint64_t)(v + 128);
        put(s[GSEG__ST_U8].bytes + k, u, 1);
        put(s[GSEG__ST_U16].bytes + 2 * k, u * 250, 2);
        put(s[GSEG__ST_U32].bytes + 4 * k, u * 16000000, 4);
        put(s[GSEG__ST_U64].bytes + 8 * k, u * 70000000000000ULL, 8);
        s[GSEG__ST_U8].i[k] = (int64_t)u;
        s[GSEG__ST_U16].i[k] = (int64_t)(u * 250);
        s[GSEG__ST_U32].i[k] = (int64_t)(u * 16000000);
        s[GSEG__ST_U64].i[k] = (int64_t)(u * 70000000000000ULL);
        s[GSEG__ST_BOOL].bytes[k] = (unsigned char)(k & 1);
        s[GSEG__ST_BOOL].i[k] = k & 1;
    }
    for (int d = GSEG__ST_BOOL; d <= GSEG__ST_U64; d++) {
        s[d].ints = 1;
        for (int k = 0; k < 6; k++) s[d].f[k] = (float)s[d].i[k];
    }
    /* F16: 1, -2, 0.5, 65504, smallest subnormal, -inf */
    const uint16_t h[6] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0xFC00};
    const float hf[6] = {1.0f, -2.0f, 0.5f, 65504.0f, 0x1p-24f, -INFINITY};
    /* BF16: 1, -3, 0.15625, 2^100, -0, 7 */
    const uint16_t bf[6] = {0x3F80, 0xC040, 0x3E20, 0x7180, 0x8000, 0x40E0};
    const float bff[6] = {1.0f, -3.0f, 0.15625f, 0x1p100f, -0.0f, 7.0f};
    const float f32[6] = {3.25f, -1e-40f, 1e30f, 0.1f, -0.0f, 123456.0f};
    const double f64[6] = {0.1, -1e300, 1e-300, 3.0, 16777217.0, -7.5};
    for (int k = 0; k < 6; k++) {
        put(s[GSEG__ST_F16].bytes + 2 * k, h[k], 2);
        s[GSEG__ST_F16].f[k] = hf[k];
        put(s[GSEG__ST_BF16].bytes + 2 * k, bf[k], 2);
        s[GSEG__ST_BF16].f[k] = bff[k];
        memcpy(s[GSEG__ST_F32].bytes + 4 * k, &f32[k], 4); /* host is little-endian */
        s[GSEG__ST_F32].f[k] = f32[k];
        memcpy(s[GSEG__ST_F64].bytes + 8 * k, &f64[k], 8);
        s[GSEG__ST_F64].f[k] = (float)f64[k];
    }
}

static void check_sample(gseg__st_file *f, const sample *s, const char *name)
{
    const gseg__st_tensor *t = gseg__st_find(f, name);
    ck_assert_msg(t != NULL, "tensor %s missing", name);
    ck_assert_str_eq(t->name, name);
    ck_assert_int_eq(t->dtype, s->d);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert(t->shape[0] == 2 && t->shape[1] == 3);
    ck_assert_int_eq(gseg__st_numel(t), 6);
    ck_assert_uint_eq(t->nbytes, 6 * gseg__st_dtype_size(s->d));
    float fv[6];
    ck_gseg(gseg__st_read_f32(f, t, fv, 6));
    for (int k = 0; k < 6; k++) {
        if (isinf(s->f[k])) ck_assert(fv[k] == s->f[k]);
        else ck_assert_msg(fv[k] == s->f[k] && signbit(fv[k]) == signbit(s->f[k]),
                           "%s[%d]: %g != %g", name, k, (double)fv[k], (double)s->f[k]);
    }
    int64_t iv[6];
    gseg_status st = gseg__st_read_i64(f, t, iv, 6);
    if (s->ints) {
        ck_assert_msg(st == GSEG_OK, "%s", gseg_last_error());
        for (int k = 0; k < 6; k++) ck_assert_msg(iv[k] == s->i[k], "%s[%d]", name, k);
    } else {
        ck_assert_int_eq(st, GSEG_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(gseg_last_error(), "is not an integer"));
    }
    /* n must equal numel */
    ck_assert_int_eq(gseg__st_read_f32(f, t, fv, 5), GSEG_ERR_ARG);
}

static void roundtrip(const char *path)
{
    sample s[GSEG__ST_NDTYPES];
    make_samples(s);
    gseg__st_writer *w = gseg__st_writer_new();
    ck_assert_ptr_nonnull(w);
    const int64_t shape[2] = {2, 3};
    char names[GSEG__ST_NDTYPES][64];
    for (int d = 0; d < GSEG__ST_NDTYPES; d++) {
        snprintf(names[d], sizeof names[d], "layer%d.%s \"w\"", d, all_names[d]);
        ck_gseg(gseg__st_writer_add(w, names[d], (gseg__st_dtype)d, 2, shape, s[d].bytes));
    }
    const int64_t zero[3] = {4, 0, 2};
    ck_gseg(gseg__st_writer_add(w, "empty", GSEG__ST_F32, 3, zero, NULL));
    double pi = 3.5;
    ck_gseg(gseg__st_writer_add(w, "scalar", GSEG__ST_F64, 0, NULL, &pi));
    ck_gseg(gseg__st_writer_meta(w, "format", "pt"));
    ck_gseg(gseg__st_writer_meta(w, "gseg", "{\"classes\": [\"a\", \"b\"]}\n\xc3\xa9"));
    ck_gseg(gseg__st_writer_meta(w, "format", "pt2")); /* replaces */
    ck_gseg(gseg__st_writer_meta(w, "", ""));
    /* argument errors */
    ck_assert_int_eq(gseg__st_writer_add(w, "empty", GSEG__ST_F32, 3, zero, NULL), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg__st_writer_add(w, "__metadata__", GSEG__ST_F32, 0, NULL, &pi), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg__st_writer_add(w, "bad", (gseg__st_dtype)13, 0, NULL, &pi), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg__st_writer_add(w, "bad", GSEG__ST_F32, 9, shape, &pi), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg__st_writer_add(w, "bad", GSEG__ST_F32, 2, shape, NULL), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg__st_writer_add(w, "\xff", GSEG__ST_F32, 0, NULL, &pi), GSEG_ERR_ARG);
    const int64_t neg[1] = {-1}, huge[2] = {INT64_MAX / 2, 3};
    ck_assert_int_eq(gseg__st_writer_add(w, "bad", GSEG__ST_F32, 1, neg, &pi), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg__st_writer_add(w, "bad", GSEG__ST_F32, 2, huge, &pi), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg__st_writer_meta(w, "k", "\xc0\xaf"), GSEG_ERR_ARG);
    ck_gseg(gseg__st_writer_write(w, path));
    gseg__st_writer_free(w);

    /* Layout: header length a multiple of 8, padded with spaces. */
    VSILFILE *fp = VSIFOpenL(path, "rb");
    ck_assert_ptr_nonnull(fp);
    unsigned char len8[8];
    ck_assert_uint_eq(VSIFReadL(len8, 1, 8, fp), 8);
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--) n = n << 8 | len8[k];
    ck_assert_uint_eq(n % 8, 0);
    char *hdr = calloc(1, (size_t)n + 1);
    ck_assert_uint_eq(VSIFReadL(hdr, 1, (size_t)n, fp), n);
    ck_assert_int_eq(hdr[0], '{');
    ck_assert_ptr_null(strchr(hdr, '\n')); /* escaped */
    free(hdr);
    ck_assert_int_eq(VSIFCloseL(fp), 0);

    gseg__st_file *f = NULL;
    ck_gseg(gseg__st_open(path, &f));
    ck_assert_int_eq(gseg__st_count(f), GSEG__ST_NDTYPES + 2);
    for (int d = 0; d < GSEG__ST_NDTYPES; d++) check_sample(f, &s[d], names[d]);
    /* data-offset order, contiguous */
    uint64_t end = 0;
    for (int k = 0; k < gseg__st_count(f); k++) {
        const gseg__st_tensor *t = gseg__st_at(f, k);
        ck_assert_uint_ge(t->offset, end);
        end = t->offset + t->nbytes;
    }
    ck_assert_ptr_null(gseg__st_at(f, -1));
    ck_assert_ptr_null(gseg__st_at(f, gseg__st_count(f)));
    ck_assert_str_eq(gseg__st_at(f, 0)->name, names[0]); /* order added */
    const gseg__st_tensor *t = gseg__st_find(f, "empty");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 3);
    ck_assert_int_eq(gseg__st_numel(t), 0);
    ck_assert_uint_eq(t->nbytes, 0);
    ck_gseg(gseg__st_read_f32(f, t, NULL, 0));
    t = gseg__st_find(f, "scalar");
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_int_eq(gseg__st_numel(t), 1);
    float fv;
    ck_gseg(gseg__st_read_f32(f, t, &fv, 1));
    ck_assert(fv == 3.5f);
    int64_t iv;
    ck_assert_int_eq(gseg__st_read_i64(f, t, &iv, 1), GSEG_ERR_FORMAT); /* 3.5 */
    ck_assert_ptr_null(gseg__st_find(f, "nope"));
    ck_assert_ptr_null(gseg__st_find(f, NULL));
    ck_assert_int_eq(gseg__st_meta_count(f), 3);
    ck_assert_str_eq(gseg__st_meta_key(f, 0), "format");
    ck_assert_str_eq(gseg__st_meta(f, "format"), "pt2");
    ck_assert_str_eq(gseg__st_meta(f, "gseg"), "{\"classes\": [\"a\", \"b\"]}\n\xc3\xa9");
    ck_assert_str_eq(gseg__st_meta(f, ""), "");
    ck_assert_ptr_null(gseg__st_meta(f, "nope"));
    ck_assert_ptr_null(gseg__st_meta_key(f, 3));
    /* a tensor of another file is refused */
    gseg__st_tensor other = *gseg__st_at(f, 0);
    ck_assert_int_eq(gseg__st_read_f32(f, &other, &fv, 6), GSEG_ERR_ARG);
    gseg__st_close(f);
    gseg__st_close(NULL);
}

START_TEST(test_roundtrip_file)
{
    GDALAllRegister();
    char *dir = tu_tmpdir("st_roundtrip");
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    roundtrip(path);
    /* Overwrite in place, and nothing temporary is left behind. */
    roundtrip(path);
    ck_assert_int_eq(tu_system("test $(ls -a '%s' | wc -l) -eq 3", dir), 0);
    free(dir);
}
END_TEST

START_TEST(test_roundtrip_vsimem)
{
    GDALAllRegister();
    roundtrip("/vsimem/st/model.safetensors");
    VSIUnlink("/vsimem/st/model.safetensors");
}
END_TEST

START_TEST(test_empty_and_chunked)
{
    GDALAllRegister();
    /* No tensors, no metadata: "{}" padded to 8. */
    gseg__st_writer *w = gseg__st_writer_new();
    ck_gseg(gseg__st_writer_write(w, "/vsimem/empty.safetensors"));
    gseg__st_writer_free(w);
    vsi_l_offset sz = 0;
    GByte *raw = VSIGetMemFileBuffer("/vsimem/empty.safetensors", &sz, FALSE);
    ck_assert_uint_eq(sz, 16);
    ck_assert(memcmp(raw, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
    gseg__st_file *f = NULL;
    ck_gseg(gseg__st_open("/vsimem/empty.safetensors", &f));
    ck_assert_int_eq(gseg__st_count(f), 0);
    ck_assert_int_eq(gseg__st_meta_count(f), 0);
    ck_assert_ptr_null(gseg__st_find(f, "x"));
    gseg__st_close(f);
    VSIUnlink("/vsimem/empty.safetensors");

    /* Larger than one conversion chunk, in three dtypes. */
    const int64_t n = 100003;
    float *a = malloc(sizeof(float) * n), *back = malloc(sizeof(float) * n);
    uint16_t *bf = malloc(2 * n);
    int32_t *i32 = malloc(4 * n);
    int64_t *i64 = malloc(8 * n);
    for (int64_t k = 0; k < n; k++) {
        a[k] = (float)k * 0.25f - 1000.0f;
        uint32_t u;
        memcpy(&u, &a[k], 4);
        bf[k] = (uint16_t)(u >> 16);
        i32[k] = (int32_t)(k * 7 - 300000);
    }
    w = gseg__st_writer_new();
    ck_gseg(gseg__st_writer_add(w, "a", GSEG__ST_F32, 1, &n, a));
    ck_gseg(gseg__st_writer_add(w, "bf", GSEG__ST_BF16, 1, &n, bf));
    ck_gseg(gseg__st_writer_add(w, "i", GSEG__ST_I32, 1, &n, i32));
    ck_gseg(gseg__st_writer_write(w, "/vsimem/big.safetensors"));
    gseg__st_writer_free(w);
    ck_gseg(gseg__st_open("/vsimem/big.safetensors", &f));
    ck_gseg(gseg__st_read_f32(f, gseg__st_find(f, "a"), back, n));
    ck_assert(memcmp(a, back, sizeof(float) * n) == 0);
    ck_gseg(gseg__st_read_f32(f, gseg__st_find(f, "bf"), back, n));
    for (int64_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &back[k], 4);
        ck_assert(u == (uint32_t)bf[k] << 16);
    }
    ck_gseg(gseg__st_read_i64(f, gseg__st_find(f, "i"), i64, n));
    for (int64_t k = 0; k < n; k++) ck_assert(i64[k] == i32[k]);
    gseg__st_close(f);
    VSIUnlink("/vsimem/big.safetensors");
    free(a);
    free(back);
    free(bf);
    free(i32);
    free(i64);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Hostile files                                                             */

/* Writes an 8-byte length (hlen, or strlen(header) if hlen < 0), the header
 * and ndata bytes of data to a /vsimem/ file. */
static void mem_file(const char *path, const char *header, int64_t hlen, size_t ndata)
{
    VSILFILE *fp = VSIFOpenL(path, "wb");
    ck_assert_ptr_nonnull(fp);
    uint64_t n = hlen < 0 ? strlen(header) : (uint64_t)hlen;
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)(n >> (8 * k));
    ck_assert_uint_eq(VSIFWriteL(len8, 1, 8, fp), 8);
    size_t hl = strlen(header);
    ck_assert_uint_eq(VSIFWriteL(header, 1, hl, fp), hl);
    for (size_t k = 0; k < ndata; k++) {
        unsigned char b = (unsigned char)k;
        ck_assert_uint_eq(VSIFWriteL(&b, 1, 1, fp), 1);
    }
    ck_assert_int_eq(VSIFCloseL(fp), 0);
}

static void expect_fail(const char *path, gseg_status want, const char *needle)
{
    gseg__st_file *f = (gseg__st_file *)1;
    gseg_status st = gseg__st_open(path, &f);
    const char *e = gseg_last_error();
    ck_assert_msg(st == want, "%s: expected %s, got %s: %s", needle, gseg_status_str(want),
                  gseg_status_str(st), e);
    ck_assert_ptr_null(f);
    ck_assert_msg(strncmp(e, path, strlen(path)) == 0, "error does not name the file: %s", e);
    ck_assert_msg(strstr(e, needle), "expected '%s' in: %s", needle, e);
    ck_assert_msg(!strchr(e, '\n') && !strchr(e, '\r'), "multi-line error: %s", e);
}

static void hostile(const char *header, size_t ndata, gseg_status want, const char *needle)
{
    const char *p = "/vsimem/hostile.safetensors";
    mem_file(p, header, -1, ndata);
    expect_fail(p, want, needle);
    VSIUnlink(p);
}

START_TEST(test_hostile_length)
{
    GDALAllRegister();
    const char *p = "/vsimem/h.safetensors";
    VSILFILE *fp = VSIFOpenL(p, "wb");
    ck_assert_int_eq(VSIFCloseL(fp), 0);
    expect_fail(p, GSEG_ERR_FORMAT, "truncated: 0 bytes");
    fp = VSIFOpenL(p, "wb");
    ck_assert_uint_eq(VSIFWriteL("\x02\0\0\0\0\0\0", 1, 7, fp), 7);
    ck_assert_int_eq(VSIFCloseL(fp), 0);
    expect_fail(p, GSEG_ERR_FORMAT, "truncated: 7 bytes");
    mem_file(p, "{}", 4096, 90);
    expect_fail(p, GSEG_ERR_FORMAT, "truncated: header says 4096 bytes but the file has 92");
    mem_file(p, "{}", INT64_MAX, 0);
    expect_fail(p, GSEG_ERR_FORMAT, "exceeds the limit");
    mem_file(p, "{}", 100000001, 0);
    expect_fail(p, GSEG_ERR_FORMAT, "exceeds the limit");
    mem_file(p, "", 0, 0);
    expect_fail(p, GSEG_ERR_FORMAT, "not a JSON object");
    mem_file(p, "{}", 3, 0); /* a length one past the header */
    expect_fail(p, GSEG_ERR_FORMAT, "truncated");
    mem_file(p, "{}", 1, 10); /* "{" then data bytes */
    expect_fail(p, GSEG_ERR_FORMAT, "not valid JSON");
    VSIUnlink(p);
    expect_fail("/vsimem/none.safetensors", GSEG_ERR_IO, "no such file");
    char *dir = tu_tmpdir("st_dir");
    expect_fail(dir, GSEG_ERR_IO, "is a directory");
    free(dir);
    gseg__st_file *f;
    ck_assert_int_eq(gseg__st_open(NULL, &f), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg__st_open("x", NULL), GSEG_ERR_ARG);
}
END_TEST

#define T(name, body) "\"" name "\":{" body "}"

START_TEST(test_hostile_header)
{
    GDALAllRegister();
    hostile("[1,2]", 0, GSEG_ERR_FORMAT, "not a JSON object");
    hostile(" {}", 0, GSEG_ERR_FORMAT, "not a JSON object");
    hostile("\"{}\"", 0, GSEG_ERR_FORMAT, "not a JSON object");
    hostile("{\"a\":", 0, GSEG_ERR_FORMAT, "not valid JSON: byte");
    hostile("{}x", 0, GSEG_ERR_FORMAT, "not valid JSON");
    hostile("{} \n\x01", 0, GSEG_ERR_FORMAT, "not valid JSON");
    hostile("{\"a\":1,\"a\":1}", 0, GSEG_ERR_FORMAT, "duplicate key");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]") ","
                T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]") "}",
            8, GSEG_ERR_FORMAT, "duplicate key \"w\"");
    hostile("{\"w\":[]}", 0, GSEG_ERR_FORMAT, "tensor 'w': entry is not an object");
    hostile("{" T("w", "\"shape\":[],\"data_offsets\":[0,4]") "}", 4, GSEG_ERR_FORMAT, "no \"dtype\"");
    hostile("{" T("w", "\"dtype\":1,\"shape\":[],\"data_offsets\":[0,4]") "}", 4, GSEG_ERR_FORMAT,
            "\"dtype\" is not a string");
    hostile("{" T("encoder.conv1.weight", "\"dtype\":\"Q7\",\"shape\":[],\"data_offsets\":[0,4]") "}", 4,
            GSEG_ERR_FORMAT, "tensor 'encoder.conv1.weight': unknown dtype 'Q7'");
    hostile("{" T("w", "\"dtype\":\"f32\",\"shape\":[],\"data_offsets\":[0,4]") "}", 4, GSEG_ERR_FORMAT,
            "unknown dtype 'f32'");
    hostile("{" T("w", "\"dtype\":\"F32\\u0000\",\"shape\":[],\"data_offsets\":[0,4]") "}", 4,
            GSEG_ERR_FORMAT, "unknown dtype");
    hostile("{" T("w", "\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]") "}", 4,
            GSEG_ERR_UNSUPPORTED, "dtype F8_E4M3 is not supported");
    hostile("{" T("w", "\"dtype\":\"F32\",\"data_offsets\":[0,4]") "}", 4, GSEG_ERR_FORMAT, "no \"shape\"");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]") "}", 4, GSEG_ERR_FORMAT,
            "\"shape\" is not an array");
    hostile("{" T("w", "\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]") "}", 1,
            GSEG_ERR_UNSUPPORTED, "9 dimensions");
    hostile("{" T("w", "\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]") "}", 1, GSEG_ERR_FORMAT,
            "shape[0] is not a non-negative integer");
    hostile("{" T("w", "\"dtype\":\"U8\",\"shape\":[1, 1.0],\"data_offsets\":[0,1]") "}", 1, GSEG_ERR_FORMAT,
            "shape[1] is not a non-negative integer");
    hostile("{" T("w", "\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]") "}", 1, GSEG_ERR_FORMAT,
            "shape[0]");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,0]") "}", 0,
            GSEG_ERR_FORMAT, "shape overflows");
    hostile("{" T("w", "\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]") "}", 0,
            GSEG_ERR_FORMAT, "shape overflows");
    hostile("{" T("w", "\"dtype\":\"U8\",\"shape\":[9223372036854775807,9223372036854775807,0],"
                       "\"data_offsets\":[0,0]") "}",
            0, GSEG_ERR_FORMAT, "shape overflows");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[1]") "}", 4, GSEG_ERR_FORMAT, "no \"data_offsets\"");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]") "}", 4, GSEG_ERR_FORMAT,
            "not two integers");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]") "}", 8, GSEG_ERR_FORMAT,
            "not two integers");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]") "}", 4, GSEG_ERR_FORMAT,
            "not two integers");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]") "}", 4, GSEG_ERR_FORMAT,
            "not two integers");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]") "}", 4,
            GSEG_ERR_FORMAT, "not two integers");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e400]") "}", 4, GSEG_ERR_FORMAT,
            "not valid JSON");
    hostile("{" T("x", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[10,5]") "}", 12, GSEG_ERR_FORMAT,
            "tensor 'x': data_offsets [10, 5] are reversed");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]") "}", 8, GSEG_ERR_FORMAT,
            "data_offsets [0, 16] end past the data section (8 bytes)");
    hostile("{" T("w", "\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[9,9]") "}", 8, GSEG_ERR_FORMAT,
            "end past the data section");
    hostile("{" T("w", "\"dtype\":\"U8\",\"shape\":[9007199254740993],"
                       "\"data_offsets\":[0,9007199254740993]") "}",
            8, GSEG_ERR_FORMAT, "[0, 9007199254740993] end past");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]") "}", 8, GSEG_ERR_FORMAT,
            "2 F32 elements need 8 bytes but data_offsets [0, 4] hold 4");
    hostile("{" T("w", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]") "}", 8, GSEG_ERR_FORMAT,
            "need 4 bytes");
    hostile("{" T("a", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]") ","
                T("b", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]") "}",
            12, GSEG_ERR_FORMAT, "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
    hostile("{" T("b", "\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[2,5]") ","
                T("c", "\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[6,7]") ","
                T("a", "\"dtype\":\"U8\",\"shape\":[7],\"data_offsets\":[0,7]") "}",
            8, GSEG_ERR_FORMAT, "overlap");
    hostile("{" T("a", "\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]") ","
                T("b", "\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]") "}",
            4, GSEG_ERR_FORMAT, "overlap");
    hostile("{\"__metadata__\":{\"a\":1}}", 0, GSEG_ERR_FORMAT, "metadata 'a' is not a string");
    hostile("{\"__metadata__\":{\"a\":null}}", 0, GSEG_ERR_FORMAT, "metadata 'a' is not a string");
    hostile("{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0, GSEG_ERR_FORMAT, "not a string");
    hostile("{\"__metadata__\":[\"a\"]}", 0, GSEG_ERR_FORMAT, "\"__metadata__\" is not an object");
    hostile("{\"__metadata__\":\"x\"}", 0, GSEG_ERR_FORMAT, "\"__metadata__\" is not an object");
    hostile("{\"__metadata__\":{\"a\":\"x\\u0000y\"}}", 0, GSEG_ERR_FORMAT, "NUL character");
    hostile("{\"a\\u0000b\":{}}", 0, GSEG_ERR_FORMAT, "NUL character");
    /* A name with a newline and a very long name: the error stays one
     * bounded line. */
    hostile("{" T("line\\nbreak\\r", "\"dtype\":\"Q\",\"shape\":[],\"data_offsets\":[0,0]") "}", 0,
            GSEG_ERR_FORMAT, "tensor 'line?break?'");
    gseg__sbuf b = {0};
    gseg__sbuf_puts(&b, "{\"");
    for (int k = 0; k < 5000; k++) gseg__sbuf_puts(&b, "n");
    gseg__sbuf_puts(&b, "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1]}}");
    hostile(b.s, 4, GSEG_ERR_FORMAT, "nnn...': 1 F32 elements");
    ck_assert_uint_lt(strlen(gseg_last_error()), 400);
    gseg__sbuf_free(&b);
    /* Too deep. */
    char deep[300] = "{\"__metadata__\":";
    size_t l = strlen(deep);
    memset(deep + l, '[', 70);
    memset(deep + l + 70, ']', 70);
    strcpy(deep + l + 140, "}");
    hostile(deep, 0, GSEG_ERR_FORMAT, "nesting deeper than 64");
}
END_TEST

/* Valid but unusual files. */
START_TEST(test_lenient_valid)
{
    GDALAllRegister();
    const char *p = "/vsimem/ok.safetensors";
    /* Unknown keys ignored, spaces, empty tensors anywhere, a gap and trailing
     * bytes after the last tensor, tensors listed out of offset order. */
    mem_file(p, "{" T("b", "\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6],\"extra\":[1]") ","
                    T("e", "\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[5,5]") ","
                    T("a", "\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]") ","
                    "\"__metadata__\":{}}     ",
             -1, 9);
    gseg__st_file *f = NULL;
    ck_gseg(gseg__st_open(p, &f));
    ck_assert_int_eq(gseg__st_count(f), 3);
    ck_assert_str_eq(gseg__st_at(f, 0)->name, "a");
    ck_assert_str_eq(gseg__st_at(f, 1)->name, "b");
    ck_assert_str_eq(gseg__st_at(f, 2)->name, "e");
    ck_assert_int_eq(gseg__st_meta_count(f), 0);
    int64_t v[2];
    ck_gseg(gseg__st_read_i64(f, gseg__st_find(f, "b"), v, 2));
    ck_assert(v[0] == 4 && v[1] == 5);
    gseg__st_close(f);
    VSIUnlink(p);
}
END_TEST

START_TEST(test_truncated_after_open)
{
    GDALAllRegister();
    char *dir = tu_tmpdir("st_trunc");
    char path[4200];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    int64_t n = 200000;
    float *data = calloc((size_t)n, sizeof *data);
    gseg__st_writer *w = gseg__st_writer_new();
    ck_gseg(gseg__st_writer_add(w, "w", GSEG__ST_F32, 1, &n, data));
    ck_gseg(gseg__st_writer_write(w, path));
    gseg__st_writer_free(w);
    gseg__st_file *f = NULL;
    ck_gseg(gseg__st_open(path, &f));
    ck_assert_int_eq(truncate(path, 500), 0);
    ck_assert_int_eq(gseg__st_read_f32(f, gseg__st_find(f, "w"), data, n), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "truncated"));
    gseg__st_close(f);
    free(data);
    /* Writing into a missing folder fails cleanly. */
    w = gseg__st_writer_new();
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", dir);
    ck_assert_int_eq(gseg__st_writer_write(w, bad), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "cannot create"));
    gseg__st_writer_free(w);
    free(dir);
}
END_TEST

START_TEST(test_read_i64_range)
{
    GDALAllRegister();
    const char *p = "/vsimem/i.safetensors";
    const uint64_t u[2] = {5, UINT64_MAX};
    const float fl[3] = {3.0f, -2.0f, 0x1p63f};
    const int64_t two = 2, three = 3;
    gseg__st_writer *w = gseg__st_writer_new();
    ck_gseg(gseg__st_writer_add(w, "u", GSEG__ST_U64, 1, &two, u));
    ck_gseg(gseg__st_writer_add(w, "f", GSEG__ST_F32, 1, &three, fl));
    ck_gseg(gseg__st_writer_add(w, "f2", GSEG__ST_F32, 1, &two, fl));
    ck_gseg(gseg__st_writer_write(w, p));
    gseg__st_writer_free(w);
    gseg__st_file *f = NULL;
    ck_gseg(gseg__st_open(p, &f));
    int64_t v[3];
    ck_assert_int_eq(gseg__st_read_i64(f, gseg__st_find(f, "u"), v, 2), GSEG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "element 1 (18446744073709551615) exceeds int64"));
    ck_assert_int_eq(gseg__st_read_i64(f, gseg__st_find(f, "f"), v, 3), GSEG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "element 2"));
    ck_gseg(gseg__st_read_i64(f, gseg__st_find(f, "f2"), v, 2));
    ck_assert(v[0] == 3 && v[1] == -2);
    float x[2];
    ck_gseg(gseg__st_read_f32(f, gseg__st_find(f, "u"), x, 2));
    ck_assert(x[0] == 5.0f && x[1] == 0x1p64f);
    gseg__st_close(f);
    VSIUnlink(p);
}
END_TEST

/* Mutates a valid file byte by byte and by truncation: open either fails
 * with a message or yields tensors that read without error. */
START_TEST(test_mutations)
{
    GDALAllRegister();
    const char *src = "/vsimem/m0.safetensors", *p = "/vsimem/m.safetensors";
    sample s[GSEG__ST_NDTYPES];
    make_samples(s);
    gseg__st_writer *w = gseg__st_writer_new();
    const int64_t shape[2] = {2, 3};
    for (int d = 0; d < GSEG__ST_NDTYPES; d++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", d);
        ck_gseg(gseg__st_writer_add(w, name, (gseg__st_dtype)d, 2, shape, s[d].bytes));
    }
    ck_gseg(gseg__st_writer_meta(w, "k", "v\\\"\xc3\xa9"));
    ck_gseg(gseg__st_writer_write(w, src));
    gseg__st_writer_free(w);
    vsi_l_offset sz = 0;
    GByte *orig = VSIGetMemFileBuffer(src, &sz, FALSE);
    unsigned char *buf = malloc((size_t)sz);
    uint32_t rng = 12345;
    int opened = 0, failed = 0;
    for (int iter = 0; iter < 4000; iter++) {
        memcpy(buf, orig, (size_t)sz);
        size_t len = (size_t)sz;
        if (iter < (int)sz) {
            len = (size_t)iter; /* every truncation */
        } else {
            int flips = 1 + iter % 3;
            for (int k = 0; k < flips; k++) {
                rng = rng * 1103515245u + 12345u;
                size_t at = (rng >> 8) % (iter % 2 ? (size_t)sz : 8 + (size_t)(orig[0] | orig[1] << 8));
                rng = rng * 1103515245u + 12345u;
                static const char interesting[] = "{}[]\",:0123456789-e. \\u\x00\xff";
                buf[at] = iter % 5 ? (unsigned char)interesting[(rng >> 8) % (sizeof interesting - 1)]
                                   : (unsigned char)(rng >> 16);
            }
        }
        VSILFILE *fp = VSIFileFromMemBuffer(p, buf, len, FALSE);
        ck_assert_ptr_nonnull(fp);
        ck_assert_int_eq(VSIFCloseL(fp), 0);
        gseg__st_file *f = NULL;
        gseg_status st = gseg__st_open(p, &f);
        if (st != GSEG_OK) {
            failed++;
            ck_assert_ptr_null(f);
            ck_assert(*gseg_last_error() && !strchr(gseg_last_error(), '\n'));
        } else {
            opened++;
            for (int k = 0; k < gseg__st_count(f); k++) {
                const gseg__st_tensor *t = gseg__st_at(f, k);
                int64_t n = gseg__st_numel(t);
                ck_assert(n >= 0 && t->nbytes <= sz);
                float *fv = malloc(sizeof(float) * (size_t)(n ? n : 1));
                ck_gseg(gseg__st_read_f32(f, t, fv, n));
                free(fv);
            }
            for (int k = 0; k < gseg__st_meta_count(f); k++)
                ck_assert_ptr_nonnull(gseg__st_meta(f, gseg__st_meta_key(f, k)));
            gseg__st_close(f);
        }
        VSIUnlink(p);
    }
    ck_assert_int_gt(opened, 0);
    ck_assert_int_gt(failed, 0);
    free(buf);
    VSIUnlink(src);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Against plain Python (struct + json), the format's reference layout       */

static int have_python(void) { return access("/usr/bin/python3", X_OK) == 0; }

START_TEST(test_python_writes)
{
    GDALAllRegister();
    if (!have_python()) return;
    char *dir = tu_tmpdir("st_py");
    char script[4200], path[4200];
    snprintf(script, sizeof script, "%s/w.py", dir);
    snprintf(path, sizeof path, "%s/py.safetensors", dir);
    FILE *fp = fopen(script, "w");
    ck_assert_ptr_nonnull(fp);
    /* What the safetensors Python package writes: sorted keys, compact
     * separators, __metadata__ first, contiguous data, space padding. */
    fputs("import json, struct, sys\n"
          "tensors = [\n"
          "  ('encoder.conv1.weight', 'F32', [2, 2], struct.pack('<4f', 1.5, -2.0, 0.25, 1e-3)),\n"
          "  ('decoder.bias', 'F16', [3], struct.pack('<3e', 1.0, -0.5, 65504.0)),\n"
          "  ('steps', 'I64', [], struct.pack('<q', -(2**40))),\n"
          "  ('mask', 'BOOL', [2], bytes([1, 0])),\n"
          "  ('zero', 'F64', [0], b''),\n"
          "  ('w64', 'F64', [1, 2], struct.pack('<2d', 1e300, -0.1)),\n"
          "]\n"
          "hdr = {'__metadata__': {'format': 'pt', 'note': 'caf\\u00e9 \"q\"\\n'}}\n"
          "off = 0\n"
          "data = b''\n"
          "for name, dt, shape, raw in tensors:\n"
          "    hdr[name] = {'dtype': dt, 'shape': shape, 'data_offsets': [off, off + len(raw)]}\n"
          "    off += len(raw); data += raw\n"
          "h = json.dumps(hdr, separators=(',', ':')).encode()\n"
          "h += b' ' * ((8 - len(h) % 8) % 8)\n"
          "open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + data)\n",
          fp);
    ck_assert_int_eq(fclose(fp), 0);
    ck_assert_int_eq(tu_system("/usr/bin/python3 '%s' '%s'", script, path), 0);

    gseg__st_file *f = NULL;
    ck_gseg(gseg__st_open(path, &f));
    ck_assert_int_eq(gseg__st_count(f), 6);
    ck_assert_str_eq(gseg__st_meta(f, "format"), "pt");
    ck_assert_str_eq(gseg__st_meta(f, "note"), "caf\xc3\xa9 \"q\"\n");
    float v[4];
    const gseg__st_tensor *t = gseg__st_find(f, "encoder.conv1.weight");
    ck_assert(t && t->dtype == GSEG__ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 2);
    ck_gseg(gseg__st_read_f32(f, t, v, 4));
    ck_assert(v[0] == 1.5f && v[1] == -2.0f && v[2] == 0.25f && v[3] == 1e-3f);
    ck_gseg(gseg__st_read_f32(f, gseg__st_find(f, "decoder.bias"), v, 3));
    ck_assert(v[0] == 1.0f && v[1] == -0.5f && v[2] == 65504.0f);
    int64_t iv[2];
    ck_gseg(gseg__st_read_i64(f, gseg__st_find(f, "steps"), iv, 1));
    ck_assert(iv[0] == -(INT64_C(1) << 40));
    ck_gseg(gseg__st_read_i64(f, gseg__st_find(f, "mask"), iv, 2));
    ck_assert(iv[0] == 1 && iv[1] == 0);
    ck_assert_int_eq(gseg__st_numel(gseg__st_find(f, "zero")), 0);
    ck_gseg(gseg__st_read_f32(f, gseg__st_find(f, "w64"), v, 2));
    ck_assert(isinf(v[0]) && v[0] > 0 && v[1] == -0.1f);
    ck_assert_str_eq(gseg__st_at(f, 0)->name, "encoder.conv1.weight");
    gseg__st_close(f);
    free(dir);
}
END_TEST

START_TEST(test_python_reads)
{
    GDALAllRegister();
    if (!have_python()) return;
    char *dir = tu_tmpdir("st_pyr");
    char script[4200], path[4200];
    snprintf(script, sizeof script, "%s/r.py", dir);
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    const float a[6] = {1, 2, 3, -4.5f, 0.125f, 1e20f};
    const int32_t b[2] = {-7, 2000000000};
    const uint16_t h[2] = {0x3C00, 0xC500}; /* 1, -5 */
    const int64_t sa[2] = {2, 3}, sb = 2;
    gseg__st_writer *w = gseg__st_writer_new();
    ck_gseg(gseg__st_writer_add(w, "a.weight", GSEG__ST_F32, 2, sa, a));
    ck_gseg(gseg__st_writer_add(w, "b", GSEG__ST_I32, 1, &sb, b));
    ck_gseg(gseg__st_writer_add(w, "h\xc3\xa9", GSEG__ST_F16, 1, &sb, h));
    ck_gseg(gseg__st_writer_meta(w, "format", "pt"));
    ck_gseg(gseg__st_writer_meta(w, "q", "a\"b\\c\n\x01"));
    ck_gseg(gseg__st_writer_write(w, path));
    gseg__st_writer_free(w);
    FILE *fp = fopen(script, "w");
    ck_assert_ptr_nonnull(fp);
    /* The checks of the Rust reference's validate(): header parses as UTF-8
     * JSON, every entry's offsets are contiguous from 0 and cover the data
     * section exactly, nbytes == numel x size. */
    fputs("import json, struct, sys\n"
          "raw = open(sys.argv[1], 'rb').read()\n"
          "n, = struct.unpack('<Q', raw[:8])\n"
          "assert n % 8 == 0, n\n"
          "hdr = json.loads(raw[8:8 + n].decode('utf-8'))\n"
          "data = raw[8 + n:]\n"
          "meta = hdr.pop('__metadata__')\n"
          "assert meta == {'format': 'pt', 'q': 'a\"b\\\\c\\n\\x01'}, meta\n"
          "sizes = {'F32': 4, 'I32': 4, 'F16': 2}\n"
          "end = 0\n"
          "for name, e in sorted(hdr.items(), key=lambda kv: kv[1]['data_offsets']):\n"
          "    b, en = e['data_offsets']\n"
          "    assert b == end, (name, b, end)\n"
          "    numel = 1\n"
          "    for d in e['shape']: numel *= d\n"
          "    assert en - b == numel * sizes[e['dtype']], name\n"
          "    end = en\n"
          "assert end == len(data)\n"
          "def get(name, fmt):\n"
          "    b, en = hdr[name]['data_offsets']\n"
          "    return list(struct.unpack('<' + fmt * ((en - b) // struct.calcsize(fmt)), data[b:en]))\n"
          "assert hdr['a.weight']['shape'] == [2, 3] and hdr['a.weight']['dtype'] == 'F32'\n"
          "assert get('a.weight', 'f') == [1, 2, 3, -4.5, 0.125, struct.unpack('<f', struct.pack('<f', 1e20))[0]]\n"
          "assert get('b', 'i') == [-7, 2000000000]\n"
          "assert get('h\\u00e9', 'e') == [1.0, -5.0]\n"
          "print('python-ok')\n",
          fp);
    ck_assert_int_eq(fclose(fp), 0);
    ck_assert_int_eq(tu_system("/usr/bin/python3 '%s' '%s'", script, path), 0);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tj = tcase_create("json");
    tcase_add_test(tj, test_json_valid);
    tcase_add_test(tj, test_json_invalid);
    tcase_add_test(tj, test_sbuf);
    suite_add_tcase(s, tj);
    TCase *tc = tcase_create("safetensors");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_dtype_table);
    tcase_add_test(tc, test_roundtrip_file);
    tcase_add_test(tc, test_roundtrip_vsimem);
    tcase_add_test(tc, test_empty_and_chunked);
    tcase_add_test(tc, test_hostile_length);
    tcase_add_test(tc, test_hostile_header);
    tcase_add_test(tc, test_lenient_valid);
    tcase_add_test(tc, test_truncated_after_open);
    tcase_add_test(tc, test_read_i64_range);
    tcase_add_test(tc, test_mutations);
    tcase_add_test(tc, test_python_writes);
    tcase_add_test(tc, test_python_reads);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
