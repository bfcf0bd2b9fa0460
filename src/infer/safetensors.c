/* safetensors.c — hostile-input-safe safetensors reader and writer; see
 * safetensors.h. */
#include "safetensors.h"

#include "json.h"

#include <cpl_vsi.h>

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES 65536 /* conversion buffer; a multiple of every dtype size */

static const struct {
    const char *name;
    size_t size;
} dtypes[GSEG__ST_NDTYPES] = {
    [GSEG__ST_BOOL] = {"BOOL", 1}, [GSEG__ST_U8] = {"U8", 1},     [GSEG__ST_I8] = {"I8", 1},
    [GSEG__ST_I16] = {"I16", 2},   [GSEG__ST_U16] = {"U16", 2},   [GSEG__ST_I32] = {"I32", 4},
    [GSEG__ST_U32] = {"U32", 4},   [GSEG__ST_I64] = {"I64", 8},   [GSEG__ST_U64] = {"U64", 8},
    [GSEG__ST_F16] = {"F16", 2},   [GSEG__ST_BF16] = {"BF16", 2}, [GSEG__ST_F32] = {"F32", 4},
    [GSEG__ST_F64] = {"F64", 8},
};

/* dtypes of the format that this reader does not convert. */
static const char *const other_dtypes[] = {"F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3",
                                           "F6_E3M2", "F4",      "C64",     "C128"};

const char *gseg__st_dtype_name(gseg__st_dtype d)
{
    return (unsigned)d < GSEG__ST_NDTYPES ? dtypes[d].name : "?";
}

size_t gseg__st_dtype_size(gseg__st_dtype d)
{
    return (unsigned)d < GSEG__ST_NDTYPES ? dtypes[d].size : 0;
}

/* A printable, bounded copy of a string from a file, for one-line messages. */
static const char *pretty(const char *s, char buf[100])
{
    size_t m = 0, i = 0;
    for (; s[i] && m < 80; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[m++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (s[i]) {
        while (m > 0 && ((unsigned char)buf[m - 1] & 0xC0) == 0x80) m--; /* whole UTF-8 */
        if (m > 0 && (unsigned char)buf[m - 1] >= 0xC0) m--;
        memcpy(buf + m, "...", 4);
    } else {
        buf[m] = '\0';
    }
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                    */

struct gseg__st_file {
    char *path;
    VSILFILE *fp;
    uint64_t file_size, data_start, data_size;
    gseg__json *doc;
    int n;
    gseg__st_tensor *t;              /* by data offset */
    const gseg__st_tensor **by_name; /* by strcmp of name */
    int nmeta;
    const char **mkey, **mval;
};

void gseg__st_close(gseg__st_file *f)
{
    if (!f) return;
    if (f->fp) (void)VSIFCloseL(f->fp);
    gseg__json_free(f->doc);
    free(f->t);
    free(f->by_name);
    free(f->mkey);
    free(f->mval);
    free(f->path);
    free(f);
}

typedef struct tsort {
    gseg__st_tensor t;
    size_t order; /* header order, for ties */
} tsort;

static int by_offset(const void *a, const void *b)
{
    const tsort *x = a, *y = b;
    if (x->t.offset != y->t.offset) return x->t.offset < y->t.offset ? -1 : 1;
    if (x->t.nbytes != y->t.nbytes) return x->t.nbytes < y->t.nbytes ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int by_name(const void *a, const void *b)
{
    const gseg__st_tensor *x = *(const gseg__st_tensor *const *)a;
    const gseg__st_tensor *y = *(const gseg__st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static uint64_t ld_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static gseg_status parse_meta(gseg__st_file *f, const gseg__json *m)
{
    const char *path = f->path;
    char b1[100], b2[100];
    if (gseg__json_type(m) != GSEG__JSON_OBJECT)
        return gseg__err(GSEG_ERR_FORMAT, "%s: \"__metadata__\" is not an object", path);
    size_t n = gseg__json_len(m);
    f->mkey = gseg__calloc(n, sizeof *f->mkey);
    f->mval = gseg__calloc(n, sizeof *f->mval);
    if (!f->mkey || !f->mval) return GSEG_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *k = gseg__json_key_at(m, i);
        const gseg__json *v = gseg__json_at(m, i);
        if (gseg__json_key_len_at(m, i) != strlen(k))
            return gseg__err(GSEG_ERR_FORMAT, "%s: metadata key '%s' contains a NUL character", path,
                             pretty(k, b1));
        if (gseg__json_type(v) != GSEG__JSON_STRING)
            return gseg__err(GSEG_ERR_FORMAT, "%s: metadata '%s' is not a string", path, pretty(k, b1));
        if (gseg__json_len(v) != strlen(gseg__json_str(v)))
            return gseg__err(GSEG_ERR_FORMAT, "%s: metadata '%s' value '%s' contains a NUL character",
                             path, pretty(k, b1), pretty(gseg__json_str(v), b2));
        f->mkey[i] = k;
        f->mval[i] = gseg__json_str(v);
    }
    f->nmeta = (int)n;
    return GSEG_OK;
}

/* Checks one tensor entry and fills *t. */
static gseg_status parse_tensor(const gseg__st_file *f, const char *name, const gseg__json *e,
                                gseg__st_tensor *t)
{
    const char *path = f->path;
    char nb[100], db[100];
    const char *pn = pretty(name, nb);
    if (gseg__json_type(e) != GSEG__JSON_OBJECT)
        return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': entry is not an object", path, pn);
    t->name = name;

    const gseg__json *dt = gseg__json_get(e, "dtype");
    if (!dt) return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': no \"dtype\"", path, pn);
    const char *ds = gseg__json_str(dt);
    if (!ds) return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is not a string", path, pn);
    int d = -1;
    for (int i = 0; i < GSEG__ST_NDTYPES; i++)
        if (strcmp(ds, dtypes[i].name) == 0 && strlen(ds) == gseg__json_len(dt)) d = i;
    if (d < 0) {
        for (size_t i = 0; i < sizeof other_dtypes / sizeof *other_dtypes; i++)
            if (strcmp(ds, other_dtypes[i]) == 0)
                return gseg__err(GSEG_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported",
                                 path, pn, ds);
        return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, pn, pretty(ds, db));
    }
    t->dtype = (gseg__st_dtype)d;

    const gseg__json *sh = gseg__json_get(e, "shape");
    if (!sh) return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': no \"shape\"", path, pn);
    if (gseg__json_type(sh) != GSEG__JSON_ARRAY)
        return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array", path, pn);
    size_t nd = gseg__json_len(sh);
    if (nd > GSEG__ST_MAX_DIMS)
        return gseg__err(GSEG_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d supported)",
                         path, pn, nd, GSEG__ST_MAX_DIMS);
    t->ndim = (int)nd;
    int64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        int64_t v;
        if (!gseg__json_int(gseg__json_at(sh, i), &v) || v < 0)
            return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer",
                             path, pn, i);
        t->shape[i] = v;
        if (v && numel > INT64_MAX / v) overflow = 1;
        else numel *= v;
    }
    size_t es = dtypes[d].size;
    if (overflow || numel > INT64_MAX / (int64_t)es)
        return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': shape overflows 64 bits", path, pn);
    uint64_t need = (uint64_t)numel * es;

    const gseg__json *off = gseg__json_get(e, "data_offsets");
    if (!off) return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': no \"data_offsets\"", path, pn);
    int64_t b, en;
    if (gseg__json_type(off) != GSEG__JSON_ARRAY || gseg__json_len(off) != 2 ||
        !gseg__json_int(gseg__json_at(off, 0), &b) || !gseg__json_int(gseg__json_at(off, 1), &en) ||
        b < 0 || en < 0)
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s: tensor '%s': \"data_offsets\" is not two integers in [0, 2^63)", path, pn);
    if (b > en)
        return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRId64 ", %" PRId64 "] are reversed",
                         path, pn, b, en);
    if ((uint64_t)en > f->data_size)
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%" PRId64 ", %" PRId64 "] end past the data section (%" PRIu64 " bytes)",
                         path, pn, b, en, f->data_size);
    if ((uint64_t)(en - b) != need)
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s: tensor '%s': %" PRId64 " %s elements need %" PRIu64 " bytes but data_offsets [%" PRId64 ", %" PRId64 "] hold %" PRId64,
                         path, pn, numel, dtypes[d].name, need, b, en, en - b);
    t->offset = (uint64_t)b;
    t->nbytes = need;
    return GSEG_OK;
}

static gseg_status read_header(gseg__st_file *f)
{
    const char *path = f->path;
    char b1[100], b2[100];
    if (VSIFSeekL(f->fp, 0, SEEK_END) != 0)
        return gseg__err(GSEG_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    f->file_size = VSIFTellL(f->fp);
    if (f->file_size < 8)
        return gseg__err(GSEG_ERR_FORMAT, "%s: truncated: %" PRIu64 " bytes, too short for a safetensors header",
                         path, f->file_size);
    unsigned char len8[8];
    if (VSIFSeekL(f->fp, 0, SEEK_SET) != 0 || VSIFReadL(len8, 1, 8, f->fp) != 8)
        return gseg__err(GSEG_ERR_IO, "%s: cannot read the header length", path);
    uint64_t n = ld_u64(len8);
    if (n > GSEG__ST_MAX_HEADER)
        return gseg__err(GSEG_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the limit of %u bytes",
                         path, n, GSEG__ST_MAX_HEADER);
    if (n > f->file_size - 8)
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s: truncated: header says %" PRIu64 " bytes but the file has %" PRIu64 " after the length",
                         path, n, f->file_size - 8);
    f->data_start = 8 + n;
    f->data_size = f->file_size - f->data_start;

    char *text = gseg__malloc((size_t)n ? (size_t)n : 1, 1);
    if (!text) return GSEG_ERR_NOMEM;
    if (VSIFReadL(text, 1, (size_t)n, f->fp) != (size_t)n) {
        free(text);
        return gseg__err(GSEG_ERR_IO, "%s: cannot read the %" PRIu64 "-byte header", path, n);
    }
    if (n == 0 || text[0] != '{') {
        free(text);
        return gseg__err(GSEG_ERR_FORMAT, "%s: header is not a JSON object", path);
    }
    char jerr[200];
    f->doc = gseg__json_parse_ex(text, (size_t)n, GSEG__ST_MAX_VALUES, jerr, sizeof jerr);
    free(text);
    if (!f->doc) {
        gseg_status s = strstr(jerr, "out of memory") ? GSEG_ERR_NOMEM : GSEG_ERR_FORMAT;
        return gseg__err(s, "%s: header is not valid JSON: %s", path, jerr);
    }
    const gseg__json *root = f->doc;
    if (gseg__json_type(root) != GSEG__JSON_OBJECT)
        return gseg__err(GSEG_ERR_FORMAT, "%s: header is not a JSON object", path);

    size_t nk = gseg__json_len(root);
    tsort *ts = gseg__calloc(nk, sizeof *ts);
    if (!ts) return GSEG_ERR_NOMEM;
    size_t nt = 0;
    gseg_status st = GSEG_OK;
    for (size_t i = 0; i < nk && st == GSEG_OK; i++) {
        const char *k = gseg__json_key_at(root, i);
        const gseg__json *v = gseg__json_at(root, i);
        if (gseg__json_key_len_at(root, i) != strlen(k)) {
            st = gseg__err(GSEG_ERR_FORMAT, "%s: tensor name '%s' contains a NUL character", path, pretty(k, b1));
        } else if (strcmp(k, "__metadata__") == 0) {
            st = parse_meta(f, v);
        } else {
            st = parse_tensor(f, k, v, &ts[nt].t);
            ts[nt].order = nt;
            nt++;
        }
    }
    if (st == GSEG_OK) {
        qsort(ts, nt, sizeof *ts, by_offset);
        /* No two tensors share a byte (empty tensors occupy none). */
        uint64_t end = 0;
        size_t last = 0;
        for (size_t i = 0; i < nt && st == GSEG_OK; i++) {
            const gseg__st_tensor *t = &ts[i].t;
            if (!t->nbytes) continue;
            if (t->offset < end) {
                const gseg__st_tensor *u = &ts[last].t;
                st = gseg__err(GSEG_ERR_FORMAT,
                               "%s: tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64 ", %" PRIu64 "] overlap",
                               path, pretty(u->name, b1), u->offset, u->offset + u->nbytes,
                               pretty(t->name, b2), t->offset, t->offset + t->nbytes);
            }
            end = t->offset + t->nbytes;
            last = i;
        }
    }
    if (st == GSEG_OK) {
        f->t = gseg__calloc(nt, sizeof *f->t);
        f->by_name = gseg__calloc(nt, sizeof *f->by_name);
        if (!f->t || !f->by_name) st = GSEG_ERR_NOMEM;
    }
    if (st == GSEG_OK) {
        for (size_t i = 0; i < nt; i++) {
            f->t[i] = ts[i].t;
            f->by_name[i] = &f->t[i];
        }
        qsort(f->by_name, nt, sizeof *f->by_name, by_name);
        f->n = (int)nt;
    }
    free(ts);
    return st;
}

gseg_status gseg__st_open(const char *path, gseg__st_file **out)
{
    if (!out) return gseg__err(GSEG_ERR_ARG, "gseg__st_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return gseg__err(GSEG_ERR_ARG, "safetensors: no path given");
    VSIStatBufL sb;
    if (VSIStatL(path, &sb) != 0) return gseg__err(GSEG_ERR_IO, "%s: no such file", path);
    if (VSI_ISDIR(sb.st_mode)) return gseg__err(GSEG_ERR_IO, "%s: is a directory", path);
    gseg__st_file *f = gseg__calloc(1, sizeof *f);
    if (!f) return GSEG_ERR_NOMEM;
    f->path = gseg__strdup(path);
    if (!f->path) {
        free(f);
        return GSEG_ERR_NOMEM;
    }
    errno = 0;
    f->fp = VSIFOpenL(path, "rb");
    gseg_status st;
    if (!f->fp)
        st = gseg__err(GSEG_ERR_IO, "%s: cannot open: %s", path, errno ? strerror(errno) : "unknown error");
    else
        st = read_header(f);
    if (st != GSEG_OK) {
        gseg__st_close(f);
        return st;
    }
    *out = f;
    return GSEG_OK;
}

int gseg__st_count(const gseg__st_file *f) { return f ? f->n : 0; }

const gseg__st_tensor *gseg__st_at(const gseg__st_file *f, int i)
{
    return f && i >= 0 && i < f->n ? &f->t[i] : NULL;
}

const gseg__st_tensor *gseg__st_find(const gseg__st_file *f, const char *name)
{
    if (!f || !name || !f->n) return NULL;
    gseg__st_tensor key = {.name = name};
    const gseg__st_tensor *kp = &key;
    const gseg__st_tensor **r = bsearch(&kp, f->by_name, (size_t)f->n, sizeof *f->by_name, by_name);
    return r ? *r : NULL;
}

const char *gseg__st_meta(const gseg__st_file *f, const char *key)
{
    if (!f || !key) return NULL;
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->mkey[i], key) == 0) return f->mval[i];
    return NULL;
}

int gseg__st_meta_count(const gseg__st_file *f) { return f ? f->nmeta : 0; }

const char *gseg__st_meta_key(const gseg__st_file *f, int i)
{
    return f && i >= 0 && i < f->nmeta ? f->mkey[i] : NULL;
}

int64_t gseg__st_numel(const gseg__st_tensor *t)
{
    if (!t) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i]; /* checked at open */
    return n;
}

static uint16_t ld16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t ld32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t ld64(const unsigned char *p) { return ld_u64(p); }

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double bits_f64(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) {
        float v = (float)mant * 0x1p-24f; /* zero or subnormal */
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | mant << 13);
    return bits_f32(sign | (exp + 112) << 23 | mant << 13);
}

static float f64_to_f32(double d)
{
    if (d >= 0x1.ffffffp127) return INFINITY; /* rounds to infinity */
    if (d <= -0x1.ffffffp127) return -INFINITY;
    if (d > FLT_MAX) return FLT_MAX;
    if (d < -FLT_MAX) return -FLT_MAX;
    return (float)d;
}

/* Element i of a chunk as a double (exact for every dtype but U64/I64
 * beyond 2^53, which only matter for float output). */
static double elem_f64(gseg__st_dtype d, const unsigned char *p)
{
    switch (d) {
    case GSEG__ST_BOOL: return p[0] != 0;
    case GSEG__ST_U8: return p[0];
    case GSEG__ST_I8: return (int8_t)p[0];
    case GSEG__ST_I16: return (int16_t)ld16(p);
    case GSEG__ST_U16: return ld16(p);
    case GSEG__ST_I32: return (int32_t)ld32(p);
    case GSEG__ST_U32: return ld32(p);
    case GSEG__ST_I64: return (double)(int64_t)ld64(p);
    case GSEG__ST_U64: return (double)ld64(p);
    case GSEG__ST_F16: return half_to_float(ld16(p));
    case GSEG__ST_BF16: return bits_f32((uint32_t)ld16(p) << 16);
    case GSEG__ST_F32: return bits_f32(ld32(p));
    case GSEG__ST_F64: return bits_f64(ld64(p));
    }
    return 0;
}

static gseg_status convert_f32(const gseg__st_tensor *t, const unsigned char *buf, size_t k, float *dst)
{
    size_t es = dtypes[t->dtype].size;
    switch (t->dtype) {
    case GSEG__ST_F32:
        for (size_t i = 0; i < k; i++) dst[i] = bits_f32(ld32(buf + 4 * i));
        break;
    case GSEG__ST_I64:
        for (size_t i = 0; i < k; i++) dst[i] = (float)(int64_t)ld64(buf + 8 * i);
        break;
    case GSEG__ST_U64:
        for (size_t i = 0; i < k; i++) dst[i] = (float)ld64(buf + 8 * i);
        break;
    case GSEG__ST_F64:
        for (size_t i = 0; i < k; i++) dst[i] = f64_to_f32(bits_f64(ld64(buf + 8 * i)));
        break;
    default:
        for (size_t i = 0; i < k; i++) dst[i] = (float)elem_f64(t->dtype, buf + es * i);
        break;
    }
    return GSEG_OK;
}

static gseg_status convert_i64(const gseg__st_file *f, const gseg__st_tensor *t, const unsigned char *buf,
                               size_t k, int64_t *dst, int64_t first)
{
    size_t es = dtypes[t->dtype].size;
    char nb[100];
    for (size_t i = 0; i < k; i++) {
        const unsigned char *p = buf + es * i;
        if (t->dtype == GSEG__ST_I64) {
            dst[i] = (int64_t)ld64(p);
        } else if (t->dtype == GSEG__ST_U64) {
            uint64_t u = ld64(p);
            if (u > INT64_MAX)
                return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': element %" PRId64 " (%" PRIu64 ") exceeds int64",
                                 f->path, pretty(t->name, nb), first + (int64_t)i, u);
            dst[i] = (int64_t)u;
        } else {
            double d = elem_f64(t->dtype, p);
            if (!(d >= -0x1p63 && d < 0x1p63) || d != trunc(d))
                return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s': element %" PRId64 " (%g) is not an integer in int64 range",
                                 f->path, pretty(t->name, nb), first + (int64_t)i, d);
            dst[i] = (int64_t)d;
        }
    }
    return GSEG_OK;
}

static gseg_status st_read(gseg__st_file *f, const gseg__st_tensor *t, void *dst, int64_t n, int as_i64)
{
    if (!f || !t) return gseg__err(GSEG_ERR_ARG, "safetensors read: NULL file or tensor");
    uintptr_t tp = (uintptr_t)t, lo = (uintptr_t)f->t, hi = (uintptr_t)(f->t + f->n);
    if (tp < lo || tp >= hi) return gseg__err(GSEG_ERR_ARG, "%s: tensor is not from this file", f->path);
    char nb[100];
    int64_t numel = gseg__st_numel(t);
    if (n != numel)
        return gseg__err(GSEG_ERR_ARG, "%s: tensor '%s' has %" PRId64 " elements, not %" PRId64, f->path,
                         pretty(t->name, nb), numel, n);
    if (!numel) return GSEG_OK;
    if (!dst) return gseg__err(GSEG_ERR_ARG, "%s: tensor '%s': no destination", f->path, pretty(t->name, nb));
    size_t es = dtypes[t->dtype].size;
    if (VSIFSeekL(f->fp, f->data_start + t->offset, SEEK_SET) != 0)
        return gseg__err(GSEG_ERR_IO, "%s: tensor '%s': cannot seek", f->path, pretty(t->name, nb));
    unsigned char *buf = gseg__malloc(CHUNK_BYTES, 1);
    if (!buf) return GSEG_ERR_NOMEM;
    gseg_status st = GSEG_OK;
    for (int64_t done = 0; done < n && st == GSEG_OK;) {
        size_t k = CHUNK_BYTES / es;
        if ((int64_t)k > n - done) k = (size_t)(n - done);
        if (VSIFReadL(buf, es, k, f->fp) != k) {
            st = gseg__err(GSEG_ERR_IO, "%s: tensor '%s': read failed or the file is truncated", f->path,
                           pretty(t->name, nb));
            break;
        }
        if (as_i64) st = convert_i64(f, t, buf, k, (int64_t *)dst + done, done);
        else st = convert_f32(t, buf, k, (float *)dst + done);
        done += (int64_t)k;
    }
    free(buf);
    return st;
}

gseg_status gseg__st_read_f32(gseg__st_file *f, const gseg__st_tensor *t, float *dst, int64_t n)
{
    return st_read(f, t, dst, n, 0);
}

gseg_status gseg__st_read_i64(gseg__st_file *f, const gseg__st_tensor *t, int64_t *dst, int64_t n)
{
    return st_read(f, t, dst, n, 1);
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */

typedef struct wtensor {
    char *name;
    gseg__st_dtype dtype;
    int ndim;
    int64_t shape[GSEG__ST_MAX_DIMS];
    const void *data;
    uint64_t nbytes;
} wtensor;

struct gseg__st_writer {
    wtensor *t;
    size_t n, cap;
    char **mkey, **mval;
    size_t nm, mcap;
};

gseg__st_writer *gseg__st_writer_new(void) { return gseg__calloc(1, sizeof(gseg__st_writer)); }

void gseg__st_writer_free(gseg__st_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
    for (size_t i = 0; i < w->nm; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->t);
    free(w->mkey);
    free(w->mval);
    free(w);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap * 2 : 16;
    if (c < need) c = need;
    if (c > SIZE_MAX / elem) {
        gseg__err(GSEG_ERR_NOMEM, "too many entries");
        return 0;
    }
    void *q = realloc(*p, c * elem);
    if (!q) {
        gseg__err(GSEG_ERR_NOMEM, "out of memory");
        return 0;
    }
    *p = q;
    *cap = c;
    return 1;
}

gseg_status gseg__st_writer_meta(gseg__st_writer *w, const char *key, const char *value)
{
    if (!w || !key || !value) return gseg__err(GSEG_ERR_ARG, "safetensors metadata: NULL argument");
    if (!gseg__utf8_valid(key, strlen(key)) || !gseg__utf8_valid(value, strlen(value)))
        return gseg__err(GSEG_ERR_ARG, "safetensors metadata: key or value is not valid UTF-8");
    char *v = gseg__strdup(value);
    if (!v) return GSEG_ERR_NOMEM;
    for (size_t i = 0; i < w->nm; i++)
        if (strcmp(w->mkey[i], key) == 0) {
            free(w->mval[i]);
            w->mval[i] = v;
            return GSEG_OK;
        }
    size_t c1 = w->mcap, c2 = w->mcap;
    char *k = gseg__strdup(key);
    if (!k || !grow((void **)&w->mkey, &c1, w->nm + 1, sizeof *w->mkey) ||
        !grow((void **)&w->mval, &c2, w->nm + 1, sizeof *w->mval)) {
        free(k);
        free(v);
        return GSEG_ERR_NOMEM;
    }
    w->mcap = c1 < c2 ? c1 : c2;
    w->mkey[w->nm] = k;
    w->mval[w->nm] = v;
    w->nm++;
    return GSEG_OK;
}

gseg_status gseg__st_writer_add(gseg__st_writer *w, const char *name, gseg__st_dtype dtype, int ndim,
                                const int64_t *shape, const void *data)
{
    if (!w || !name) return gseg__err(GSEG_ERR_ARG, "safetensors add: NULL writer or name");
    char nb[100];
    const char *pn = pretty(name, nb);
    if (!gseg__utf8_valid(name, strlen(name)))
        return gseg__err(GSEG_ERR_ARG, "safetensors add: tensor name '%s' is not valid UTF-8", pn);
    if (strcmp(name, "__metadata__") == 0)
        return gseg__err(GSEG_ERR_ARG, "safetensors add: \"__metadata__\" is reserved");
    if ((unsigned)dtype >= GSEG__ST_NDTYPES)
        return gseg__err(GSEG_ERR_ARG, "safetensors add: tensor '%s': invalid dtype %d", pn, (int)dtype);
    if (ndim < 0 || ndim > GSEG__ST_MAX_DIMS || (ndim && !shape))
        return gseg__err(GSEG_ERR_ARG, "safetensors add: tensor '%s': ndim %d not in [0, %d]", pn, ndim,
                         GSEG__ST_MAX_DIMS);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return gseg__err(GSEG_ERR_ARG, "safetensors add: tensor '%s' added twice", pn);
    wtensor t = {.dtype = dtype, .ndim = ndim, .data = data};
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return gseg__err(GSEG_ERR_ARG, "safetensors add: tensor '%s': negative dimension", pn);
        if (shape[i] && numel > INT64_MAX / shape[i])
            return gseg__err(GSEG_ERR_ARG, "safetensors add: tensor '%s': shape overflows", pn);
        numel *= shape[i];
        t.shape[i] = shape[i];
    }
    int64_t es = (int64_t)dtypes[dtype].size;
    if (numel > INT64_MAX / es)
        return gseg__err(GSEG_ERR_ARG, "safetensors add: tensor '%s': shape overflows", pn);
    t.nbytes = (uint64_t)(numel * es);
    if (t.nbytes && !data) return gseg__err(GSEG_ERR_ARG, "safetensors add: tensor '%s': no data", pn);
    if (t.nbytes > SIZE_MAX) return gseg__err(GSEG_ERR_ARG, "safetensors add: tensor '%s': too large", pn);
    if (!grow((void **)&w->t, &w->cap, w->n + 1, sizeof *w->t)) return GSEG_ERR_NOMEM;
    if (!(t.name = gseg__strdup(name))) return GSEG_ERR_NOMEM;
    w->t[w->n++] = t;
    return GSEG_OK;
}

static char *build_header(const gseg__st_writer *w)
{
    gseg__sbuf b = {0};
    gseg__sbuf_puts(&b, "{");
    if (w->nm) {
        gseg__sbuf_puts(&b, "\"__metadata__\":{");
        for (size_t i = 0; i < w->nm; i++) {
            if (i) gseg__sbuf_puts(&b, ",");
            gseg__sbuf_append_jstr(&b, w->mkey[i]);
            gseg__sbuf_puts(&b, ":");
            gseg__sbuf_append_jstr(&b, w->mval[i]);
        }
        gseg__sbuf_puts(&b, "}");
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const wtensor *t = &w->t[i];
        if (i || w->nm) gseg__sbuf_puts(&b, ",");
        gseg__sbuf_append_jstr(&b, t->name);
        gseg__sbuf_appendf(&b, ":{\"dtype\":\"%s\",\"shape\":[", dtypes[t->dtype].name);
        for (int d = 0; d < t->ndim; d++) gseg__sbuf_appendf(&b, "%s%" PRId64, d ? "," : "", t->shape[d]);
        gseg__sbuf_appendf(&b, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    gseg__sbuf_puts(&b, "}");
    while (b.st == GSEG_OK && b.len % 8) gseg__sbuf_puts(&b, " ");
    return gseg__sbuf_take(&b);
}

gseg_status gseg__st_writer_write(gseg__st_writer *w, const char *path)
{
    if (!w || !path || !*path) return gseg__err(GSEG_ERR_ARG, "safetensors write: NULL writer or path");
    const uint16_t one = 1;
    if (*(const unsigned char *)&one != 1)
        return gseg__err(GSEG_ERR_UNSUPPORTED, "%s: writing safetensors needs a little-endian host", path);
    char *hdr = build_header(w);
    if (!hdr) return GSEG_ERR_NOMEM;
    size_t n = strlen(hdr);
    char *tmp = gseg__tmp_path(path);
    if (!tmp) {
        free(hdr);
        return GSEG_ERR_ARG;
    }
    gseg_status st = GSEG_OK;
    errno = 0;
    VSILFILE *fp = VSIFOpenL(tmp, "wb");
    if (!fp) {
        st = gseg__err(GSEG_ERR_IO, "%s: cannot create: %s", path, errno ? strerror(errno) : "unknown error");
    } else {
        unsigned char len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)n >> (8 * i));
        int ok = VSIFWriteL(len8, 1, 8, fp) == 8 && VSIFWriteL(hdr, 1, n, fp) == n;
        for (size_t i = 0; ok && i < w->n; i++)
            if (w->t[i].nbytes)
                ok = VSIFWriteL(w->t[i].data, 1, (size_t)w->t[i].nbytes, fp) == (size_t)w->t[i].nbytes;
        int e = errno;
        if (VSIFCloseL(fp) != 0) ok = 0;
        if (!ok) st = gseg__err(GSEG_ERR_IO, "%s: write failed: %s", path, e ? strerror(e) : "unknown error");
    }
    if (st == GSEG_OK) st = gseg__commit(tmp, path); /* discards on failure */
    else gseg__discard(tmp);
    free(tmp);
    free(hdr);
    return st;
}
