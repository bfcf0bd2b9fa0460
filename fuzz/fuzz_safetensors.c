/*
 * fuzz_safetensors.c — libFuzzer target: the model-file parser.
 *
 * Input: the bytes of a .gseg / .safetensors file, written to /vsimem/.
 *   1. gseg__st_open (header length, JSON header, every tensor entry,
 *      __metadata__), then the reader's promises: tensors sorted by data
 *      offset, inside the data section, sizes = numel x dtype size, no two
 *      non-empty tensors sharing a byte, lookups by name and metadata key
 *      consistent; every tensor (up to 1M elements) read as float and as
 *      int64.
 *   2. The model metadata: the JSON under __metadata__["gseg"] through
 *      gseg__json_parse and the accessors gseg's model loader
 *      (src/infer/netmodel.c, meta_parse) uses. netmodel.c itself is built
 *      only with libtorch and builds the network from the metadata, so the
 *      fuzzer stops at the JSON layer it parses with.
 *   3. The header bytes straight through gseg__json_parse_ex (small value
 *      budget) whatever the length prefix says, and every parsed document
 *      written back with gseg__json_write (as the model loader keeps a
 *      file's provenance) and parsed again: it must give the same document.
 *   4. A file that opened is written again through gseg__st_writer (to
 *      /vsimem/) and reopened: same tensors, same bytes, same metadata.
 */
#include "fuzz_common.h"

#include "json.h"
#include "safetensors.h"

#include <cpl_error.h>
#include <cpl_vsi.h>

#include <math.h>
#include <string.h>

#define DIR "/vsimem/fuzz_st"
#define PATH DIR "/model.gseg"
#define COPY DIR "/copy.gseg"
#define MAX_READ_ELEMS (1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- JSON: comparison --------------------------------------------------- */

/* 1 if a string or key of v holds U+0000 (the writer takes C strings). */
static int has_nul(const gseg__json *v)
{
    switch (gseg__json_type(v)) {
    case GSEG__JSON_STRING: return strlen(gseg__json_str(v)) != gseg__json_len(v);
    case GSEG__JSON_ARRAY:
    case GSEG__JSON_OBJECT:
        for (size_t i = 0; i < gseg__json_len(v); i++) {
            if (gseg__json_type(v) == GSEG__JSON_OBJECT &&
                strlen(gseg__json_key_at(v, i)) != gseg__json_key_len_at(v, i))
                return 1;
            if (has_nul(gseg__json_at(v, i))) return 1;
        }
        return 0;
    default: return 0;
    }
}

static int json_equal(const gseg__json *a, const gseg__json *b)
{
    if (gseg__json_type(a) != gseg__json_type(b)) return 0;
    switch (gseg__json_type(a)) {
    case GSEG__JSON_NULL: return 1;
    case GSEG__JSON_BOOL: return gseg__json_bool(a) == gseg__json_bool(b);
    case GSEG__JSON_NUMBER: {
        int64_t x, y;
        if (gseg__json_int(a, &x)) return gseg__json_int(b, &y) && x == y;
        return gseg__json_num(a) == gseg__json_num(b);
    }
    case GSEG__JSON_STRING:
        return gseg__json_len(a) == gseg__json_len(b) &&
               memcmp(gseg__json_str(a), gseg__json_str(b), gseg__json_len(a)) == 0;
    case GSEG__JSON_ARRAY:
    case GSEG__JSON_OBJECT:
        if (gseg__json_len(a) != gseg__json_len(b)) return 0;
        for (size_t i = 0; i < gseg__json_len(a); i++) {
            if (gseg__json_type(a) == GSEG__JSON_OBJECT &&
                strcmp(gseg__json_key_at(a, i), gseg__json_key_at(b, i)) != 0)
                return 0;
            if (!json_equal(gseg__json_at(a, i), gseg__json_at(b, i))) return 0;
        }
        return 1;
    }
    return 0;
}

/* The accessors' promises on any value. */
static void walk(const gseg__json *v, int depth)
{
    FUZZ_CHECK(depth <= GSEG__JSON_MAX_DEPTH + 1);
    gseg__jtype t = gseg__json_type(v);
    FUZZ_CHECK(t >= GSEG__JSON_NULL && t <= GSEG__JSON_OBJECT);
    size_t n = gseg__json_len(v);
    FUZZ_CHECK(gseg__json_at(v, n) == NULL);
    FUZZ_CHECK(isnan(gseg__json_num(v)) == (t != GSEG__JSON_NUMBER));
    if (t == GSEG__JSON_STRING) {
        const char *s = gseg__json_str(v);
        FUZZ_CHECK(s && s[n] == '\0' && gseg__utf8_valid(s, n));
    }
    if (t == GSEG__JSON_NUMBER) FUZZ_CHECK(isfinite(gseg__json_num(v)));
    for (size_t i = 0; (t == GSEG__JSON_ARRAY || t == GSEG__JSON_OBJECT) && i < n; i++) {
        const gseg__json *c = gseg__json_at(v, i);
        FUZZ_CHECK(c != NULL);
        if (t == GSEG__JSON_OBJECT) {
            const char *k = gseg__json_key_at(v, i);
            size_t kl = gseg__json_key_len_at(v, i);
            FUZZ_CHECK(k && k[kl] == '\0' && gseg__utf8_valid(k, kl));
            /* keys are unique, so a lookup by a NUL-free key finds this one */
            if (strlen(k) == kl) FUZZ_CHECK(gseg__json_get(v, k) == c);
        }
        walk(c, depth + 1);
    }
}

/* Writes doc back as compact JSON and parses it again: the same document. */
static void round_trip(const gseg__json *doc)
{
    if (has_nul(doc)) return;
    gseg__sbuf b = {0};
    FUZZ_CHECK(gseg__json_write(&b, doc) == GSEG_OK);
    char *text = gseg__sbuf_take(&b);
    FUZZ_CHECK(text != NULL);
    char err[200];
    gseg__json *again = gseg__json_parse(text, strlen(text), err, sizeof err);
    if (!again) fprintf(stderr, "reparse of '%.200s' failed: %s\n", text, err);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(json_equal(doc, again));
    gseg__json_free(again);
    free(text);
}

static void check_json(const char *text, size_t len, size_t max_values)
{
    char err[200];
    gseg__json *doc = gseg__json_parse_ex(text, len, max_values, err, sizeof err);
    if (!doc) {
        FUZZ_CHECK(err[0] != '\0');
        return;
    }
    walk(doc, 0);
    round_trip(doc);
    gseg__json_free(doc);
}

/* The fields netmodel.c's loader reads from the "gseg" metadata. */
static void model_metadata(const char *meta)
{
    char err[160] = "";
    gseg__json *doc = gseg__json_parse(meta, strlen(meta), err, sizeof err);
    if (!doc) {
        FUZZ_CHECK(err[0] != '\0');
        return;
    }
    walk(doc, 0);
    round_trip(doc);
    int64_t v;
    (void)gseg__json_int(gseg__json_get(doc, "gseg_format"), &v);
    const gseg__json *arch = gseg__json_get(doc, "architecture");
    (void)gseg__json_str(gseg__json_get(arch, "name"));
    (void)gseg__json_str(gseg__json_get(arch, "encoder"));
    (void)gseg__json_int(gseg__json_get(arch, "in_channels"), &v);
    (void)gseg__json_int(gseg__json_get(arch, "outputs"), &v);
    const gseg__json *bands = gseg__json_get(doc, "bands");
    for (size_t i = 0; i < gseg__json_len(bands); i++) {
        const gseg__json *b = gseg__json_at(bands, i);
        (void)gseg__json_str(gseg__json_get(b, "name"));
        (void)gseg__json_num(gseg__json_get(b, "mean"));
        (void)gseg__json_num(gseg__json_get(b, "std"));
    }
    const gseg__json *classes = gseg__json_get(doc, "classes");
    for (size_t i = 0; i < gseg__json_len(classes); i++) {
        const gseg__json *c = gseg__json_at(classes, i);
        (void)gseg__json_str(gseg__json_get(c, "name"));
        (void)gseg__json_str(gseg__json_get(c, "color"));
    }
    (void)gseg__json_num(gseg__json_get(doc, "threshold"));
    (void)gseg__json_int(gseg__json_get(doc, "tile"), &v);
    (void)gseg__json_int(gseg__json_get(doc, "overlap"), &v);
    gseg__json_free(doc);
}

/* ---- safetensors -------------------------------------------------------- */

static void put_file(const char *path, const uint8_t *p, size_t n)
{
    VSILFILE *fp = VSIFOpenL(path, "wb");
    FUZZ_CHECK(fp != NULL);
    if (n) FUZZ_CHECK(VSIFWriteL(p, 1, n, fp) == n);
    FUZZ_CHECK(VSIFCloseL(fp) == 0);
}

static int is_int_dtype(gseg__st_dtype d)
{
    return d != GSEG__ST_F16 && d != GSEG__ST_BF16 && d != GSEG__ST_F32 && d != GSEG__ST_F64;
}

/* Reads every tensor of f; bytes[i] (may be NULL) receives tensor i's raw
 * bytes from the input (data_start = 8 + header length). */
static void check_file(gseg__st_file *f, const uint8_t *data, size_t size)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
    FUZZ_CHECK(hlen <= size - 8);
    uint64_t data_size = size - 8 - hlen;
    int n = gseg__st_count(f);
    FUZZ_CHECK(n >= 0);
    FUZZ_CHECK(gseg__st_at(f, -1) == NULL && gseg__st_at(f, n) == NULL);
    uint64_t end = 0, prev = 0;
    for (int i = 0; i < n; i++) {
        const gseg__st_tensor *t = gseg__st_at(f, i);
        FUZZ_CHECK(t && t->name);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= GSEG__ST_MAX_DIMS);
        size_t es = gseg__st_dtype_size(t->dtype);
        FUZZ_CHECK(es > 0);
        int64_t numel = gseg__st_numel(t);
        FUZZ_CHECK(numel >= 0);
        for (int d = 0; d < t->ndim; d++) FUZZ_CHECK(t->shape[d] >= 0);
        FUZZ_CHECK(t->nbytes == (uint64_t)numel * es);
        FUZZ_CHECK(t->offset <= data_size && t->nbytes <= data_size - t->offset);
        FUZZ_CHECK(t->offset >= prev);
        prev = t->offset;
        if (t->nbytes) {
            FUZZ_CHECK(t->offset >= end);
            end = t->offset + t->nbytes;
        }
        FUZZ_CHECK(gseg__st_find(f, t->name) == t);
        FUZZ_CHECK(strcmp(gseg__st_dtype_name(t->dtype), "?") != 0);
        if (numel > MAX_READ_ELEMS) continue;
        float *fv = malloc((size_t)(numel ? numel : 1) * sizeof *fv);
        int64_t *iv = malloc((size_t)(numel ? numel : 1) * sizeof *iv);
        FUZZ_CHECK(fv && iv);
        FUZZ_CHECK(gseg__st_read_f32(f, t, fv, numel) == GSEG_OK);
        gseg_status st = gseg__st_read_i64(f, t, iv, numel);
        FUZZ_CHECK(st == GSEG_OK || (st == GSEG_ERR_FORMAT && (!is_int_dtype(t->dtype) ||
                                                                t->dtype == GSEG__ST_U64)));
        if (numel) FUZZ_CHECK(gseg__st_read_f32(f, t, fv, numel - 1) == GSEG_ERR_ARG);
        free(fv);
        free(iv);
    }
    FUZZ_CHECK(gseg__st_find(f, NULL) == NULL);
    int nm = gseg__st_meta_count(f);
    FUZZ_CHECK(nm >= 0 && gseg__st_meta_key(f, nm) == NULL);
    for (int i = 0; i < nm; i++) {
        const char *k = gseg__st_meta_key(f, i);
        FUZZ_CHECK(k != NULL);
        const char *v = gseg__st_meta(f, k);
        FUZZ_CHECK(v != NULL);
    }
    const char *meta = gseg__st_meta(f, "gseg");
    if (meta) model_metadata(meta);
}

/* Writes f's tensors and metadata through the writer and reopens them. */
static void rewrite(gseg__st_file *f, const uint8_t *data)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
    const uint8_t *section = data + 8 + hlen;
    gseg__st_writer *w = gseg__st_writer_new();
    FUZZ_CHECK(w != NULL);
    int n = gseg__st_count(f), nm = gseg__st_meta_count(f);
    for (int i = 0; i < nm; i++) {
        const char *k = gseg__st_meta_key(f, i);
        FUZZ_CHECK(gseg__st_writer_meta(w, k, gseg__st_meta(f, k)) == GSEG_OK);
    }
    int added = 0;
    for (int i = 0; i < n; i++) {
        const gseg__st_tensor *t = gseg__st_at(f, i);
        gseg_status st = gseg__st_writer_add(w, t->name, t->dtype, t->ndim, t->shape,
                                             t->nbytes ? section + t->offset : NULL);
        /* names come from valid JSON (UTF-8, unique, not __metadata__) */
        FUZZ_CHECK(st == GSEG_OK);
        added++;
    }
    gseg_status st = gseg__st_writer_write(w, COPY);
    gseg__st_writer_free(w);
    FUZZ_CHECK(st == GSEG_OK);
    gseg__st_file *g = NULL;
    st = gseg__st_open(COPY, &g);
    if (st != GSEG_OK) fprintf(stderr, "reopen: %s\n", gseg_last_error());
    FUZZ_CHECK(st == GSEG_OK);
    FUZZ_CHECK(gseg__st_count(g) == added && gseg__st_meta_count(g) == nm);
    for (int i = 0; i < nm; i++) {
        const char *k = gseg__st_meta_key(f, i);
        FUZZ_CHECK(gseg__st_meta(g, k) && strcmp(gseg__st_meta(g, k), gseg__st_meta(f, k)) == 0);
    }
    for (int i = 0; i < n; i++) {
        const gseg__st_tensor *t = gseg__st_at(f, i), *u = gseg__st_find(g, t->name);
        FUZZ_CHECK(u && u->dtype == t->dtype && u->ndim == t->ndim && u->nbytes == t->nbytes);
        FUZZ_CHECK(memcmp(u->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim) == 0);
    }
    gseg__st_close(g);
    VSIUnlink(COPY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    put_file(PATH, data, size);
    gseg__st_file *f = (gseg__st_file *)(uintptr_t)1;
    gseg_status st = gseg__st_open(PATH, &f);
    if (st == GSEG_OK) {
        FUZZ_CHECK(f != NULL && size >= 8);
        check_file(f, data, size);
        if (size <= (1u << 20)) rewrite(f, data);
        gseg__st_close(f);
    } else {
        FUZZ_CHECK(f == NULL);
        FUZZ_CHECK(st == GSEG_ERR_FORMAT || st == GSEG_ERR_UNSUPPORTED || st == GSEG_ERR_IO ||
                   st == GSEG_ERR_NOMEM);
        FUZZ_CHECK(*gseg_last_error() != '\0');
    }
    /* the header bytes as JSON whatever the length prefix says */
    if (size > 8) {
        check_json((const char *)data + 8, size - 8, 64);
        check_json((const char *)data + 8, size - 8, 1u << 20);
    }
    VSIRmdirRecursive(DIR);
    CPLErrorReset();
    return 0;
}
