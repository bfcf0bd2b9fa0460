/* check_odd.c — the odd-input sweep: a corpus of unusual, broken and hostile
 * inputs, generated here with GDAL (nothing is downloaded), run through
 * gseg-predict (the NDSI baseline and a small resnet18 network),
 * gseg-evaluate, gseg-train and the GDAL driver (gdal_translate, gdalinfo).
 *
 * Every run goes through `timeout 120` and `prlimit --as=4 GiB` (so a
 * multi-GiB allocation fails instead of succeeding) and must end either
 *   - ok: exit 0, the output complete, its georeferencing the input's
 *     exactly (geotransform with its rotation terms, CRS, GCPs, RPCs), no
 *     error line on stderr (warnings are allowed; some cases require one);
 *   - refused: exit 1 or 2, exactly one error line on stderr (warnings
 *     aside) that names the offending file (and, for mismatches, both
 *     files) and, where the case says so, the reason; no output under its
 *     final name and no temporary file left behind;
 * never a signal, a timeout, or an output that looks complete.
 *
 * The table "file → tool → outcome" goes to stderr (the test log and the CI
 * log). Cases whose wrong outcome is a known, reported bug in files this
 * suite does not own are marked XFAIL with the bug; they fail the suite
 * only with GSEG_ODD_STRICT=1 (and show XPASS once fixed).
 *
 * libtorch's thread pool does not survive fork(): meson runs this suite
 * with CK_FORK=no. */
#include "testutil.h"

#include "internal.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- paths ---------------------------------------------------------------- */

static char *dir;                 /* the suite's temporary folder */
static char predict_exe[1024], evaluate_exe[1024], train_exe[1024];
static int have_driver;           /* the GSEG plugin is built */
static int strict;                /* GSEG_ODD_STRICT=1: known bugs fail too */
static const char *const kNdsi = "ndsi:green=1,swir=2";
static char net_model[1024];      /* resnet18, bands "1","2", tile 64 */

static const char *P(const char *fmt, ...) GSEG__PRINTF(1, 2);
/* A path under the suite's folder (ring of buffers). */
static const char *P(const char *fmt, ...)
{
    static char buf[16][2048];
    static int k;
    k = (k + 1) % 16;
    int n = snprintf(buf[k], sizeof buf[k], "%s/", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf[k] + n, sizeof buf[k] - (size_t)n, fmt, ap);
    va_end(ap);
    return buf[k];
}

static void mkdirs(const char *path)
{
    ck_assert_msg(tu_system("mkdir -p '%s'", path) == 0, "cannot create %s", path);
}

static char *slurp(const char *file, size_t *len)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        if (len) *len = 0;
        char *e = malloc(1);
        e[0] = '\0';
        return e;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    if (len) *len = got;
    return s;
}

static void spit(const char *file, const void *data, size_t n)
{
    FILE *f = fopen(file, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", file);
    ck_assert_int_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* ---- the corpus: rasters -------------------------------------------------- */

static const double kGT[6] = {500000, 30, 0, 4000000, 0, -30};

typedef struct img_spec {
    int w, h, nb;
    GDALDataType type;
    const double *gt;        /* NULL: no geotransform */
    int epsg;                /* 0: no CRS */
    const char *const *co;   /* GTiff creation options */
    int nodata_set;
    double nodata;
} img_spec;

static img_spec spec(int w, int h, GDALDataType t)
{
    img_spec s = {w, h, 2, t, kGT, 32643, NULL, 0, 0};
    return s;
}

/* Pixel values of band b at (x, y): band 1 "green", band 2 "swir"; the
 * left half is glacier by NDSI (> 0.4), the right half is not. 10..119, so
 * every type from signed bytes up holds them. */
static double pattern(int b, int x, int y, int w)
{
    if (b == 0) return (x < w / 2 ? 100 : 60) + (x * 7 + y * 3) % 20;
    return (x < w / 2 ? 10 : 55) + (x * 5 + y * 11) % 10;
}

static void write_pattern(GDALDatasetH ds, int w, int h, int nb)
{
    double *row = malloc((size_t)w * sizeof *row);
    for (int b = 0; b < nb; b++)
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) row[x] = pattern(b % 2, x, y, w);
            ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, b + 1), GF_Write, 0, y, w, 1, row,
                                          w, 1, GDT_Float64, 0, 0), CE_None);
        }
    free(row);
}

static void set_srs(GDALDatasetH ds, int epsg)
{
    OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
    ck_assert_int_eq(OSRImportFromEPSG(srs, epsg), OGRERR_NONE);
    ck_assert_int_eq(GDALSetSpatialRef(ds, srs), CE_None);
    OSRDestroySpatialReference(srs);
}

/* Creates a GTiff after s and leaves it open (caller closes). */
static GDALDatasetH create_tif(const char *path, const img_spec *s)
{
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    GDALDatasetH ds = GDALCreate(drv, path, s->w, s->h, s->nb, s->type, (char **)s->co);
    ck_assert_msg(ds != NULL, "cannot create %s: %s", path, CPLGetLastErrorMsg());
    if (s->gt) ck_assert_int_eq(GDALSetGeoTransform(ds, (double *)s->gt), CE_None);
    if (s->epsg) set_srs(ds, s->epsg);
    for (int b = 1; s->nodata_set && b <= s->nb; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b);
        /* 64-bit nodata through its own API: GDAL 3.6's GTiff writes a
         * double -9.2e18 as "-9.22...e+18", read back as -9 */
        if (s->type == GDT_Int64)
            ck_assert_int_eq(GDALSetRasterNoDataValueAsInt64(band, (int64_t)s->nodata), CE_None);
        else if (s->type == GDT_UInt64)
            ck_assert_int_eq(GDALSetRasterNoDataValueAsUInt64(
                                 band, s->nodata >= 18446744073709551615.0 ? UINT64_MAX
                                                                          : (uint64_t)s->nodata),
                             CE_None);
        else
            ck_assert_int_eq(GDALSetRasterNoDataValue(band, s->nodata), CE_None);
    }
    write_pattern(ds, s->w, s->h, s->nb);
    return ds;
}

static void make_tif(const char *path, const img_spec *s) { GDALClose(create_tif(path, s)); }

/* One pixel of band b (Float64 write, converted by GDAL). */
static void put_px(GDALDatasetH ds, int b, int x, int y, double v)
{
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, x, y, 1, 1, &v, 1, 1,
                                  GDT_Float64, 0, 0), CE_None);
}

/* Byte offsets and sizes of the compressed blocks of a tiled GTiff whose
 * block row is >= row0 (all bands); returns their count. */
static int block_list(const char *file, int row0, long long *off, long long *size, int max)
{
    GDALDatasetH ds = GDALOpen(file, GA_ReadOnly);
    ck_assert_ptr_nonnull(ds);
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds), bw, bh, n = 0;
    GDALGetBlockSize(GDALGetRasterBand(ds, 1), &bw, &bh);
    for (int b = 1; b <= GDALGetRasterCount(ds); b++)
        for (int by = row0; by < (h + bh - 1) / bh; by++)
            for (int bx = 0; bx < (w + bw - 1) / bw; bx++) {
                char key[64];
                GDALRasterBandH band = GDALGetRasterBand(ds, b);
                snprintf(key, sizeof key, "BLOCK_OFFSET_%d_%d", bx, by);
                const char *o = GDALGetMetadataItem(band, key, "TIFF");
                snprintf(key, sizeof key, "BLOCK_SIZE_%d_%d", bx, by);
                const char *z = GDALGetMetadataItem(band, key, "TIFF");
                ck_assert(o && z && n < max);
                off[n] = atoll(o);
                size[n] = atoll(z);
                n++;
            }
    GDALClose(ds);
    return n;
}

/* A tiled, compressed copy of the pattern; then either its blocks from
 * block row 1 on are overwritten from a quarter of their length with
 * garbage (corrupt), or the file is cut at 60 % of its data (truncated). */
static void make_broken_ex(const char *path, const char *compress, int truncate, int mask)
{
    char c[64];
    snprintf(c, sizeof c, "COMPRESS=%s", compress);
    const char *co[] = {"TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32", c, "INTERLEAVE=BAND", NULL};
    img_spec s = spec(96, 80, strcmp(compress, "JPEG") == 0 || mask ? GDT_Byte : GDT_UInt16);
    s.co = co;
    if (mask) s.nb = 1;
    GDALDatasetH ds = create_tif(path, &s);
    if (mask) { /* a valid 0/1 mask until corrupted */
        uint8_t *v = malloc(96 * 80);
        for (int i = 0; i < 96 * 80; i++) v[i] = (i % 96) < 48;
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, 96, 80, v, 96, 80,
                                      GDT_Byte, 0, 0), CE_None);
        free(v);
    }
    GDALClose(ds);
    long long off[256], size[256];
    int n = block_list(path, truncate ? 0 : 1, off, size, 256);
    size_t len;
    unsigned char *data = (unsigned char *)slurp(path, &len);
    if (truncate) {
        long long end = 0;
        for (int i = 0; i < n; i++)
            if (off[i] + size[i] > end) end = off[i] + size[i];
        len = (size_t)(end * 6 / 10);
    } else {
        for (int i = 0; i < n; i++)
            for (long long k = off[i] + size[i] / 4; k < off[i] + size[i]; k++)
                data[k] = (unsigned char)((k * 131) & 0xFF);
    }
    spit(path, data, len);
    free(data);
}

static void make_broken(const char *path, const char *compress, int truncate)
{
    make_broken_ex(path, compress, truncate, 0);
}

/* A small striped TIFF whose ImageWidth and ImageLength tags then say
 * w x h: a tiny file declaring a huge raster. */
static void make_tiff_declaring(const char *path, uint32_t w, uint32_t h)
{
    const char *co[] = {"TILED=NO", "COMPRESS=NONE", NULL};
    img_spec s = spec(64, 64, GDT_Byte);
    s.co = co;
    make_tif(path, &s);
    size_t len;
    unsigned char *d = (unsigned char *)slurp(path, &len);
    ck_assert(len > 16 && d[0] == 'I' && d[1] == 'I' && d[2] == 42);
    uint32_t ifd = d[4] | d[5] << 8 | d[6] << 16 | (uint32_t)d[7] << 24;
    ck_assert(ifd + 2 < len);
    int n = d[ifd] | d[ifd + 1] << 8, patched = 0;
    for (int i = 0; i < n; i++) {
        unsigned char *e = d + ifd + 2 + 12 * i;
        int tag = e[0] | e[1] << 8;
        if (tag != 256 && tag != 257) continue;
        uint32_t v = tag == 256 ? w : h;
        e[2] = 4, e[3] = 0;                          /* LONG */
        e[4] = 1, e[5] = e[6] = e[7] = 0;            /* count 1 */
        for (int k = 0; k < 4; k++) e[8 + k] = (unsigned char)(v >> (8 * k));
        patched++;
    }
    ck_assert_int_eq(patched, 2);
    spit(path, d, len);
    free(d);
}

static void make_vrt_declaring(const char *path, long w, long h)
{
    char xml[512];
    int n = snprintf(xml, sizeof xml,
                     "<VRTDataset rasterXSize=\"%ld\" rasterYSize=\"%ld\">\n"
                     "  <VRTRasterBand dataType=\"UInt16\" band=\"1\"/>\n"
                     "  <VRTRasterBand dataType=\"UInt16\" band=\"2\"/>\n"
                     "</VRTDataset>\n", w, h);
    spit(path, xml, (size_t)n);
}

/* ENVI header declaring 500000 x 500000 UInt16 x 2 over a 100-byte file. */
static void make_envi_declaring(const char *path)
{
    const char *hdr = "ENVI\nsamples = 500000\nlines = 500000\nbands = 2\nheader offset = 0\n"
                      "file type = ENVI Standard\ndata type = 12\ninterleave = bsq\n"
                      "byte order = 0\n";
    spit(CPLResetExtension(path, "hdr"), hdr, strlen(hdr));
    unsigned char junk[100];
    for (int i = 0; i < 100; i++) junk[i] = (unsigned char)(i * 37);
    spit(path, junk, sizeof junk);
}

/* ---- running the tools ----------------------------------------------------- */

typedef struct run_result {
    int rc;         /* exit code, or -1 */
    int sig;        /* terminating signal, or 0 */
    int timeout;
    double seconds;
    char *err;      /* stderr */
} run_result;

/* Starts `cmd` (a shell command line) under timeout and prlimit, stdout to
 * out_file, stderr to err_file. */
static pid_t start_cmd(const char *cmd, const char *out_file, const char *err_file)
{
    char *full = NULL;
    ck_assert(asprintf(&full, "exec timeout -k 5 120 prlimit --as=4294967296 %s", cmd) > 0);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int o = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        execl("/bin/sh", "sh", "-c", full, (char *)NULL);
        _exit(127);
    }
    free(full);
    return pid;
}

/* The outcome of a finished command from its wait status. */
static run_result result_of(int status, double seconds, const char *err_file)
{
    run_result r = {-1, 0, 0, seconds, NULL};
    if (WIFSIGNALED(status)) {
        r.sig = WTERMSIG(status);
        if (r.sig == SIGKILL && r.seconds > 119) r.timeout = 1, r.sig = 0;
    } else if (WIFEXITED(status)) {
        r.rc = WEXITSTATUS(status);
        if (r.rc == 124) r.timeout = 1;
        else if (r.rc > 128) r.sig = r.rc - 128, r.rc = -1;
    }
    r.err = slurp(err_file, NULL);
    return r;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- expectations ------------------------------------------------------------ */

typedef enum kind { OK = 1, WARN, REFUSE, SKIP } kind;

typedef struct expect {
    kind k;
    const char *why;   /* REFUSE: a word of the reason, or NULL; WARN: of the warning;
                          OK: of a warning that must not appear */
    const char *also;  /* REFUSE: a second file the line must name, or NULL */
    const char *bug;   /* known bug (reported): a wrong outcome is XFAIL */
} expect;

#define E_OK {OK, NULL, NULL, NULL}
#define E_WARN(w) {WARN, w, NULL, NULL}
#define E_REFUSE(w) {REFUSE, w, NULL, NULL}
#define E_REFUSE2(w, other) {REFUSE, w, other, NULL}
#define E_SKIP {SKIP, NULL, NULL, NULL}

/* The table. */
typedef struct row {
    char file[64], tool[20], outcome[200], verdict[8], detail[160];
    double seconds;
    int seq; /* order of submission: the table's order */
} row;
static row *rows;
static int nrows, cap_rows, nfail, nxfail, nxpass, cur_seq;
static char failures[16384];

static void add_row(const char *file, const char *tool, const char *outcome, const char *verdict,
                    double secs, const char *detail)
{
    if (nrows == cap_rows) {
        cap_rows = cap_rows ? 2 * cap_rows : 256;
        rows = realloc(rows, (size_t)cap_rows * sizeof *rows);
        ck_assert_ptr_nonnull(rows);
    }
    row *r = &rows[nrows++];
    snprintf(r->file, sizeof r->file, "%s", file);
    snprintf(r->tool, sizeof r->tool, "%s", tool);
    snprintf(r->outcome, sizeof r->outcome, "%s", outcome);
    snprintf(r->verdict, sizeof r->verdict, "%s", verdict);
    snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "");
    r->seconds = secs;
    r->seq = cur_seq;
    fprintf(stderr, "odd: %-24s %-15s %-6s %5.1fs  %s%s%s\n", file, tool, verdict, secs, outcome,
            detail && *detail ? "  -- " : "", detail ? detail : "");
    if (strcmp(verdict, "FAIL") == 0) {
        size_t l = strlen(failures);
        snprintf(failures + l, sizeof failures - l, "\n  %s / %s: %s%s%s", file, tool, outcome,
                 detail && *detail ? " -- " : "", detail ? detail : "");
    }
}

/* Lines of stderr that are not warnings; a GDAL tool's ERROR lines only. */
static int error_lines(const char *err, int gdal_tool, char *first, size_t n)
{
    int count = 0;
    if (first && n) first[0] = '\0';
    const char *p = err;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[4096];
        int m = (int)(len < sizeof line - 1 ? len : sizeof line - 1);
        snprintf(line, sizeof line, "%.*s", m, p);
        int is_err;
        /* GDAL's own wrapper of a failed block read of the GSEG dataset
         * repeats the driver's message ("...: IReadBlock failed at ...:
         * GSEG: <message>"): not a line of its own */
        if (gdal_tool) {
            const char *rb = strstr(line, "IReadBlock failed"), *gs = strstr(line, ": GSEG: ");
            is_err = strncmp(line, "ERROR", 5) == 0 && !(rb && gs && gs > rb);
        } else {
            is_err = len > 0 && !strstr(line, ": warning: ") && strncmp(line, "Warning ", 8) != 0;
        }
        if (is_err) {
            if (count == 0 && first) snprintf(first, n, "%s", line);
            count++;
        }
        p += len + (e ? 1 : 0);
    }
    return count;
}

static int warning_lines(const char *err, const char *word)
{
    int n = 0;
    for (const char *p = err; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[4096];
        int m = (int)(len < sizeof line - 1 ? len : sizeof line - 1);
        snprintf(line, sizeof line, "%.*s", m, p);
        if ((strstr(line, ": warning: ") || strncmp(line, "Warning ", 8) == 0) &&
            (!word || strstr(line, word)))
            n++;
        p += len + (e ? 1 : 0);
    }
    return n;
}

/* Names in folder d (hidden ones too), ';'-joined into buf; returns count. */
static int list_dir(const char *d, char *buf, size_t n)
{
    DIR *dd = opendir(d);
    int k = 0;
    buf[0] = '\0';
    if (!dd) return 0;
    struct dirent *e;
    while ((e = readdir(dd)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s", k ? ";" : "", e->d_name);
        k++;
    }
    closedir(dd);
    return k;
}

static int has_tmp_file(const char *names)
{
    return strstr(names, "gseg-tmp") != NULL || strstr(names, "gseg-evaluate-") != NULL;
}

/* ---- georeferencing --------------------------------------------------------- */

typedef struct grid_exp {
    int w, h;
    int has_gt;
    double gt[6];
} grid_exp;

/* 1 if the georeferencing of out is that of ref (or of the grid g when g
 * is given: size and geotransform from g, the CRS still from ref). */
static int same_georef(const char *ref, const char *out, const grid_exp *g, char *why, size_t n)
{
    GDALDatasetH a = GDALOpenEx(ref, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    GDALDatasetH b = GDALOpenEx(out, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    int ok = 1;
    why[0] = '\0';
    if (!a || !b) {
        snprintf(why, n, "cannot open %s", !a ? ref : out);
        ok = 0;
        goto done;
    }
    int w = g ? g->w : GDALGetRasterXSize(a), h = g ? g->h : GDALGetRasterYSize(a);
    if (GDALGetRasterXSize(b) != w || GDALGetRasterYSize(b) != h) {
        snprintf(why, n, "output is %dx%d, expected %dx%d", GDALGetRasterXSize(b),
                 GDALGetRasterYSize(b), w, h);
        ok = 0;
        goto done;
    }
    double ga[6], gb[6];
    int ha = g ? g->has_gt : GDALGetGeoTransform(a, ga) == CE_None;
    if (g) memcpy(ga, g->gt, sizeof ga);
    int hb = GDALGetGeoTransform(b, gb) == CE_None;
    if (ha != hb) {
        snprintf(why, n, "geotransform %s in the output", ha ? "lost" : "invented");
        ok = 0;
        goto done;
    }
    for (int i = 0; ha && i < 6; i++)
        if (ga[i] != gb[i]) {
            snprintf(why, n, "geotransform term %d: %.17g, expected %.17g", i, gb[i], ga[i]);
            ok = 0;
            goto done;
        }
    OGRSpatialReferenceH sa = GDALGetSpatialRef(a), sb = GDALGetSpatialRef(b);
    if ((sa == NULL) != (sb == NULL) || (sa && !OSRIsSame(sa, sb))) {
        snprintf(why, n, "CRS %s", sa ? (sb ? "differs" : "lost") : "invented");
        ok = 0;
        goto done;
    }
    int na = GDALGetGCPCount(a), nb = GDALGetGCPCount(b);
    if (na != nb) {
        snprintf(why, n, "%d GCPs in the output, %d in the input", nb, na);
        ok = 0;
        goto done;
    }
    const GDAL_GCP *pa = GDALGetGCPs(a), *pb = GDALGetGCPs(b);
    for (int i = 0; i < na; i++)
        if (pa[i].dfGCPPixel != pb[i].dfGCPPixel || pa[i].dfGCPLine != pb[i].dfGCPLine ||
            pa[i].dfGCPX != pb[i].dfGCPX || pa[i].dfGCPY != pb[i].dfGCPY ||
            pa[i].dfGCPZ != pb[i].dfGCPZ) {
            snprintf(why, n, "GCP %d differs", i);
            ok = 0;
            goto done;
        }
    if (na) {
        OGRSpatialReferenceH ca = GDALGetGCPSpatialRef(a), cb = GDALGetGCPSpatialRef(b);
        if ((ca == NULL) != (cb == NULL) || (ca && !OSRIsSame(ca, cb))) {
            snprintf(why, n, "GCP CRS differs");
            ok = 0;
            goto done;
        }
    }
    char **ra = GDALGetMetadata(a, "RPC"), **rb = GDALGetMetadata(b, "RPC");
    for (int i = 0; ra && ra[i]; i++) {
        char *key = NULL;
        const char *va = CPLParseNameValue(ra[i], &key);
        const char *vb = key ? CSLFetchNameValue(rb, key) : NULL;
        int same = vb != NULL;
        if (same) { /* number lists, compared as numbers */
            char **ta = CSLTokenizeString(va), **tb = CSLTokenizeString(vb);
            same = CSLCount(ta) == CSLCount(tb);
            for (int k = 0; same && ta[k]; k++) same = CPLAtof(ta[k]) == CPLAtof(tb[k]);
            CSLDestroy(ta);
            CSLDestroy(tb);
        }
        if (!same) {
            snprintf(why, n, "RPC %s %s", key ? key : "?", vb ? "differs" : "lost");
            ok = 0;
        }
        CPLFree(key);
        if (!ok) goto done;
    }
done:
    if (a) GDALClose(a);
    if (b) GDALClose(b);
    return ok;
}

/* Band 1 of a raster as bytes (malloc'ed), NULL if unreadable. */
static uint8_t *read_mask(const char *file, int *w, int *h)
{
    GDALDatasetH ds = GDALOpen(file, GA_ReadOnly);
    if (!ds) return NULL;
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    uint8_t *v = malloc((size_t)*w * *h);
    if (GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, 0, 0, *w, *h, v, *w, *h, GDT_Byte, 0, 0) !=
        CE_None) {
        free(v);
        v = NULL;
    }
    GDALClose(ds);
    return v;
}

/* ---- one run, judged --------------------------------------------------------- */

typedef struct check {
    const char *file;      /* the table's name of the input */
    const char *tool;      /* the table's name of the tool */
    const char *name;      /* what a refusal must name (a file's basename) */
    expect e;
    int gdal_tool;         /* gdal_translate / gdalinfo: ERROR lines */
    const char *out_dir;   /* where outputs go: checked for leftovers */
    const char *output;    /* final output that must exist on success (or NULL) */
    const char *georef_ref;/* compare the output's georeferencing with this file */
    const grid_exp *grid;  /* ... or with this grid */
    const char *same_mask; /* the output mask must equal this one (or NULL) */
    const int *nodata_px;  /* x, y, 255-or-not triples (ending -1): see kSpecialPx */
    const char *tmp_dir;   /* TMPDIR of the run: must be empty afterwards */
} check;

/* A message for the table: the suite's folder left out of paths, cut to
 * 170 characters. */
static const char *short_line(const char *line)
{
    static char buf[4096], out[180];
    size_t k = 0, dl = strlen(dir);
    for (const char *p = line; *p && k < sizeof buf - 1;) {
        if (strncmp(p, dir, dl) == 0 && p[dl] == '/') {
            p += dl + 1;
            continue;
        }
        buf[k++] = *p++;
    }
    buf[k] = '\0';
    if (k < sizeof out) return buf;
    snprintf(out, sizeof out, "%.170s...", buf);
    return out;
}

static void judge(const check *c, const run_result *r)
{
    if (c->e.k == SKIP) return;
    char outcome[256], detail[1024] = "", first[4096], names[4096] = "";
    int nerr = error_lines(r->err, c->gdal_tool, first, sizeof first);
    int ok_run = 0;
    if (r->sig)
        snprintf(outcome, sizeof outcome, "CRASH (signal %d)", r->sig);
    else if (r->timeout)
        snprintf(outcome, sizeof outcome, "TIMEOUT");
    else if (r->rc == 0)
        snprintf(outcome, sizeof outcome, "ok%s",
                 warning_lines(r->err, NULL) ? " (with warning)" : ""), ok_run = 1;
    else
        snprintf(outcome, sizeof outcome, "refused (exit %d): %s", r->rc,
                 nerr ? short_line(first) : "(no message)");
    int pass = 1;
    if (c->out_dir) list_dir(c->out_dir, names, sizeof names);
    if (r->sig || r->timeout) {
        pass = 0;
    } else if (c->e.k == OK || c->e.k == WARN) {
        if (!ok_run) {
            pass = 0;
            snprintf(detail, sizeof detail, "expected ok");
        } else if (nerr) {
            pass = 0;
            snprintf(detail, sizeof detail, "error line on success: %s", short_line(first));
        } else if (c->e.k == WARN && !warning_lines(r->err, c->e.why)) {
            pass = 0;
            snprintf(detail, sizeof detail, "no warning about '%s'", c->e.why ? c->e.why : "");
        } else if (c->output && !exists(c->output)) {
            pass = 0;
            snprintf(detail, sizeof detail, "no output %s", c->output);
        } else if (has_tmp_file(names)) {
            pass = 0;
            snprintf(detail, sizeof detail, "temporary files left: %.900s", names);
        } else if (c->output && (c->georef_ref || c->grid) &&
                   !same_georef(c->georef_ref, c->output, c->grid, detail, sizeof detail)) {
            pass = 0;
        }
        if (pass && c->output && (c->same_mask || c->nodata_px)) {
            int w, h, w2, h2;
            uint8_t *m = read_mask(c->output, &w, &h);
            if (!m) {
                pass = 0;
                snprintf(detail, sizeof detail, "cannot read the output mask");
            }
            if (pass && c->same_mask) {
                uint8_t *ref = read_mask(c->same_mask, &w2, &h2);
                if (!ref || w != w2 || h != h2 || memcmp(m, ref, (size_t)w * h) != 0) {
                    pass = 0;
                    snprintf(detail, sizeof detail, "mask differs from %s",
                             CPLGetFilename(c->same_mask));
                }
                free(ref);
            }
            for (const int *p = c->nodata_px; pass && p && p[0] >= 0; p += 3)
                if ((m[(size_t)p[1] * w + p[0]] == 255) != p[2]) {
                    pass = 0;
                    snprintf(detail, sizeof detail, "pixel %d,%d is %d, %s", p[0], p[1],
                             m[(size_t)p[1] * w + p[0]],
                             p[2] ? "not 255 (no data)" : "but it holds data");
                }
            free(m);
        }
        /* last, so that the output is checked whatever the warnings say */
        if (pass && c->e.k == OK && c->e.why && warning_lines(r->err, c->e.why)) {
            pass = 0;
            snprintf(detail, sizeof detail, "a warning '%s...' that is not true", c->e.why);
        }
    } else { /* REFUSE */
        if (ok_run) {
            pass = 0;
            snprintf(detail, sizeof detail, "expected a refusal");
        } else if (r->rc != 1 && r->rc != 2) {
            pass = 0;
            snprintf(detail, sizeof detail, "exit %d, expected 1 or 2", r->rc);
        } else if (nerr != 1) {
            pass = 0;
            snprintf(detail, sizeof detail, "%d error lines, expected one", nerr);
        } else if (c->name && !strstr(first, c->name)) {
            pass = 0;
            snprintf(detail, sizeof detail, "the message does not name %s", c->name);
        } else if (c->e.also && !strstr(first, c->e.also)) {
            pass = 0;
            snprintf(detail, sizeof detail, "the message does not name %s", c->e.also);
        } else if (c->e.why && !strcasestr(first, c->e.why)) {
            pass = 0;
            snprintf(detail, sizeof detail, "the reason is not '%s'", c->e.why);
        } else if (c->output && exists(c->output)) {
            pass = 0;
            snprintf(detail, sizeof detail, "an output exists under the final name");
        } else if (c->out_dir && *names) {
            pass = 0;
            snprintf(detail, sizeof detail, "files left by a refused run: %.900s", names);
        }
    }
    if (pass && c->tmp_dir) {
        char t[4096];
        if (list_dir(c->tmp_dir, t, sizeof t) > 0) {
            pass = 0;
            snprintf(detail, sizeof detail, "left in TMPDIR: %.900s", t);
        }
    }
    const char *verdict = "PASS";
    if (!pass && c->e.bug) {
        verdict = "XFAIL";
        nxfail++;
        size_t l = strlen(detail);
        snprintf(detail + l, sizeof detail - l, "%sknown bug: %s", l ? "; " : "", c->e.bug);
        if (strict) verdict = "FAIL", nfail++;
    } else if (!pass) {
        verdict = "FAIL";
        nfail++;
    } else if (c->e.bug) {
        verdict = "XPASS";
        nxpass++;
    }
    add_row(c->file, c->tool, outcome, verdict, r->seconds, detail);
    if (!pass && !c->e.bug && *r->err) {
        /* the whole stderr of failures, for the log */
        fprintf(stderr, "odd:   stderr of %s / %s:\n%s", c->file, c->tool, r->err);
        if (r->err[strlen(r->err) - 1] != '\n') fputc('\n', stderr);
    }
}

static int run_index;

/* A fresh folder for one run's outputs, and its TMPDIR inside. */
static const char *new_run_dir(char *tmp, size_t n)
{
    static char d[2048];
    snprintf(d, sizeof d, "%s/runs/%03d", dir, ++run_index);
    mkdirs(d);
    snprintf(tmp, n, "%s/runs/%03d.tmp", dir, run_index);
    mkdirs(tmp);
    return d;
}

/* ---- the image corpus --------------------------------------------------------- */

typedef struct img_case {
    const char *file;             /* name in the corpus (extension gives the format) */
    void (*make)(const char *path);
    expect predict, predict_net, evaluate, driver;
    const int *nodata_px;         /* pixels that must be 255 in the mask */
    const char *same_as;          /* its mask must equal that case's (NDSI and net) */
    int train;                    /* 1: in the dataset of valid odd scenes; 2: refused alone */
    expect train_e;               /* for train == 2 */
} img_case;

#define CASE_GT(name, ...)                                                              \
    static void mk_##name(const char *path)                                             \
    {                                                                                   \
        static const double g[6] = {__VA_ARGS__};                                       \
        img_spec s = spec(96, 80, GDT_UInt16);                                          \
        s.gt = g;                                                                       \
        make_tif(path, &s);                                                             \
    }
CASE_GT(north_up, 500000, 30, 0, 4000000, 0, -30)
CASE_GT(rotated, 500000, 25.980762113533157, 15, 4000000, 15, -25.980762113533157)
CASE_GT(sheared, 500000, 30, 7.5, 4000000, 0, -30)
CASE_GT(south_up, 500000, 30, 0, 3997600, 0, 30)
CASE_GT(rot90, 500000, 0, 30, 4000000, 30, 0)
CASE_GT(singular_gt, 500000, 30, 30, 4000000, 30, 30)
CASE_GT(nan_gt, NAN, 30, 0, 4000000, 0, -30)
CASE_GT(inf_gt, 500000, INFINITY, 0, 4000000, 0, -30)

static void mk_geographic(const char *path)
{
    static const double g[6] = {77.0, 0.00025, 0, 35.5, 0, -0.00025};
    img_spec s = spec(96, 80, GDT_UInt16);
    s.gt = g;
    s.epsg = 4326;
    make_tif(path, &s);
}

static void mk_gcp_only(const char *path)
{
    img_spec s = spec(96, 80, GDT_UInt16);
    s.gt = NULL;
    s.epsg = 0;
    GDALDatasetH ds = create_tif(path, &s);
    GDAL_GCP g[4];
    GDALInitGCPs(4, g);
    const double px[4][4] = {{0, 0, 77.0, 35.0}, {96, 0, 77.03, 35.002},
                             {0, 80, 76.998, 34.978}, {96, 80, 77.029, 34.98}};
    for (int i = 0; i < 4; i++) {
        g[i].dfGCPPixel = px[i][0];
        g[i].dfGCPLine = px[i][1];
        g[i].dfGCPX = px[i][2];
        g[i].dfGCPY = px[i][3];
        g[i].dfGCPZ = 4100 + i;
    }
    OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
    OSRImportFromEPSG(srs, 4326);
    ck_assert_int_eq(GDALSetGCPs2(ds, 4, g, srs), CE_None);
    OSRDestroySpatialReference(srs);
    GDALDeinitGCPs(4, g);
    GDALClose(ds);
}

static void mk_rpc_only(const char *path)
{
    img_spec s = spec(96, 80, GDT_UInt16);
    s.gt = NULL;
    s.epsg = 0;
    GDALDatasetH ds = create_tif(path, &s);
    char num[512] = "0 0 -1", den[512] = "1", snum[512] = "0 1";
    for (int i = 0; i < 17; i++) strcat(num, " 0");
    for (int i = 0; i < 19; i++) strcat(den, " 0");
    for (int i = 0; i < 18; i++) strcat(snum, " 0");
    char **md = NULL;
    md = CSLSetNameValue(md, "LINE_OFF", "40");
    md = CSLSetNameValue(md, "SAMP_OFF", "48");
    md = CSLSetNameValue(md, "LAT_OFF", "35.0");
    md = CSLSetNameValue(md, "LONG_OFF", "77.0");
    md = CSLSetNameValue(md, "HEIGHT_OFF", "4000");
    md = CSLSetNameValue(md, "LINE_SCALE", "40");
    md = CSLSetNameValue(md, "SAMP_SCALE", "48");
    md = CSLSetNameValue(md, "LAT_SCALE", "0.01");
    md = CSLSetNameValue(md, "LONG_SCALE", "0.012");
    md = CSLSetNameValue(md, "HEIGHT_SCALE", "1000");
    md = CSLSetNameValue(md, "LINE_NUM_COEFF", num);
    md = CSLSetNameValue(md, "LINE_DEN_COEFF", den);
    md = CSLSetNameValue(md, "SAMP_NUM_COEFF", snum);
    md = CSLSetNameValue(md, "SAMP_DEN_COEFF", den);
    ck_assert_int_eq(GDALSetMetadata(ds, md, "RPC"), CE_None);
    CSLDestroy(md);
    GDALClose(ds);
}

static void mk_no_georef(const char *path)
{
    img_spec s = spec(96, 80, GDT_UInt16);
    s.gt = NULL;
    s.epsg = 0;
    make_tif(path, &s);
}

#define CASE_SIZE(name, W, H)                                                           \
    static void mk_##name(const char *path)                                             \
    {                                                                                   \
        img_spec s = spec(W, H, GDT_UInt16);                                            \
        make_tif(path, &s);                                                             \
    }
CASE_SIZE(px_1x1, 1, 1)
CASE_SIZE(px_1x300, 1, 300)
CASE_SIZE(px_300x1, 300, 1)
CASE_SIZE(px_300x300, 300, 300)

static void mk_huge_vrt(const char *path) { make_vrt_declaring(path, 2000000, 2000000); }
static void mk_big_vrt(const char *path) { make_vrt_declaring(path, 1000000, 1000000); }
static void mk_huge_tags(const char *path) { make_tiff_declaring(path, 3000000000u, 3000000000u); }
static void mk_huge_envi(const char *path) { make_envi_declaring(path); }

static void mk_deflate_corrupt(const char *path) { make_broken(path, "DEFLATE", 0); }
static void mk_deflate_trunc(const char *path) { make_broken(path, "DEFLATE", 1); }
static void mk_lzw_corrupt(const char *path) { make_broken(path, "LZW", 0); }
static void mk_lzw_trunc(const char *path) { make_broken(path, "LZW", 1); }
static void mk_jpeg_corrupt(const char *path) { make_broken(path, "JPEG", 0); }
static void mk_jpeg_trunc(const char *path) { make_broken(path, "JPEG", 1); }

/* NaN and +-Inf in either band. */
/* Pixel lists: x, y, and 1 if the mask must say "no data" (255) there, 0 if
 * it must not; -1 ends the list. */
static const int kSpecialPx[] = {3, 4, 1, 50, 7, 1, 70, 30, 1, 10, 60, 1, 20, 20, 0, -1};
static void mk_nan_inf(const char *path)
{
    img_spec s = spec(96, 80, GDT_Float32);
    GDALDatasetH ds = create_tif(path, &s);
    put_px(ds, 1, 3, 4, NAN);
    put_px(ds, 1, 50, 7, INFINITY);
    put_px(ds, 2, 70, 30, -INFINITY);
    put_px(ds, 2, 10, 60, NAN);
    GDALClose(ds);
}

/* nodata at the type's limits, and in the pixels listed in kLimitPx. */
static const int kLimitPx[] = {0, 0, 1, 95, 79, 1, 1, 0, 0, -1};
static void limit_nodata(const char *path, GDALDataType t, double nd)
{
    img_spec s = spec(96, 80, t);
    s.nodata_set = 1;
    s.nodata = nd;
    GDALDatasetH ds = create_tif(path, &s);
    if (t == GDT_UInt64) { /* a double 2^64 would become 0 */
        uint64_t v = UINT64_MAX;
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, 1, 1, &v, 1, 1,
                                      GDT_UInt64, 0, 0), CE_None);
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 2), GF_Write, 95, 79, 1, 1, &v, 1, 1,
                                      GDT_UInt64, 0, 0), CE_None);
        v = UINT64_MAX - 1; /* one below nodata: data (a double cannot tell them apart) */
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 1, 0, 1, 1, &v, 1, 1,
                                      GDT_UInt64, 0, 0), CE_None);
    } else {
        put_px(ds, 1, 0, 0, nd);
        put_px(ds, 2, 95, 79, nd);
    }
    GDALClose(ds);
}
static void mk_nodata_fltmax(const char *path) { limit_nodata(path, GDT_Float32, FLT_MAX); }
static void mk_nodata_fltmin(const char *path) { limit_nodata(path, GDT_Float32, -FLT_MAX); }
static void mk_nodata_dblmax(const char *path) { limit_nodata(path, GDT_Float64, DBL_MAX); }
static void mk_nodata_nan(const char *path) { limit_nodata(path, GDT_Float32, NAN); }
static void mk_nodata_u16max(const char *path) { limit_nodata(path, GDT_UInt16, 65535); }
static void mk_nodata_i64min(const char *path) { limit_nodata(path, GDT_Int64, (double)INT64_MIN); }
static void mk_nodata_u32max(const char *path) { limit_nodata(path, GDT_UInt32, 4294967295.0); }
static void mk_nodata_u64max(const char *path)
{
    limit_nodata(path, GDT_UInt64, 18446744073709551615.0);
}

#define CASE_TYPE(name, T, ...)                                                         \
    static void mk_##name(const char *path)                                             \
    {                                                                                   \
        static const char *const co[] = {__VA_ARGS__};                                  \
        img_spec s = spec(96, 80, T);                                                   \
        s.co = co;                                                                      \
        make_tif(path, &s);                                                             \
    }
CASE_TYPE(type_byte, GDT_Byte, NULL)
CASE_TYPE(type_int8, GDT_Byte, "PIXELTYPE=SIGNEDBYTE", NULL)
CASE_TYPE(type_uint16, GDT_UInt16, NULL)
CASE_TYPE(type_int16, GDT_Int16, NULL)
CASE_TYPE(type_uint32, GDT_UInt32, NULL)
CASE_TYPE(type_int32, GDT_Int32, NULL)
CASE_TYPE(type_uint64, GDT_UInt64, NULL)
CASE_TYPE(type_int64, GDT_Int64, NULL)
CASE_TYPE(type_float16, GDT_Float32, "NBITS=16", NULL)
CASE_TYPE(type_float32, GDT_Float32, NULL)
CASE_TYPE(type_float64, GDT_Float64, NULL)
CASE_TYPE(type_cint16, GDT_CInt16, NULL)
CASE_TYPE(type_cint32, GDT_CInt32, NULL)
CASE_TYPE(type_cfloat32, GDT_CFloat32, NULL)
CASE_TYPE(type_cfloat64, GDT_CFloat64, NULL)

static void mk_one_band(const char *path)
{
    img_spec s = spec(96, 80, GDT_UInt16);
    s.nb = 1;
    make_tif(path, &s);
}

/* A per-dataset mask (GDAL's .msk or internal mask) hiding the top-left
 * 10 x 10 pixels; or a .msk sidecar on another grid (48 x 40). */
static const int kMaskPx[] = {0, 0, 1, 9, 9, 1, 10, 10, 0, 50, 50, 0, -1};
static void mk_mask_band(const char *path)
{
    img_spec s = spec(96, 80, GDT_UInt16);
    GDALDatasetH ds = create_tif(path, &s);
    ck_assert_int_eq(GDALCreateDatasetMaskBand(ds, GMF_PER_DATASET), CE_None);
    GDALRasterBandH m = GDALGetMaskBand(GDALGetRasterBand(ds, 1));
    uint8_t *v = malloc(96 * 80);
    for (int i = 0; i < 96 * 80; i++) v[i] = (i % 96 < 10 && i / 96 < 10) ? 0 : 255;
    ck_assert_int_eq(GDALRasterIO(m, GF_Write, 0, 0, 96, 80, v, 96, 80, GDT_Byte, 0, 0), CE_None);
    free(v);
    GDALClose(ds);
}

static void mk_mask_band_48x40(const char *path)
{
    img_spec s = spec(96, 80, GDT_UInt16);
    make_tif(path, &s);
    char msk[2100];
    snprintf(msk, sizeof msk, "%s.msk", path);
    GDALDatasetH m = GDALCreate(GDALGetDriverByName("GTiff"), msk, 48, 40, 1, GDT_Byte, NULL);
    ck_assert_ptr_nonnull(m);
    GDALFillRaster(GDALGetRasterBand(m, 1), 255, 0);
    GDALSetMetadataItem(m, "INTERNAL_MASK_FLAGS_1", "2", NULL);
    GDALSetMetadataItem(m, "INTERNAL_MASK_FLAGS_2", "2", NULL);
    GDALClose(m);
}

static void mk_all_nodata(const char *path)
{
    img_spec s = spec(96, 80, GDT_UInt16);
    s.nodata_set = 1;
    s.nodata = 0;
    GDALDatasetH ds = create_tif(path, &s);
    for (int b = 1; b <= 2; b++) GDALFillRaster(GDALGetRasterBand(ds, b), 0, 0);
    GDALClose(ds);
}

static const char *const kNoGeoWarn = "no georeferencing";
#define WARN_NOGEO E_WARN(kNoGeoWarn)
/* Per tool: predict (NDSI), predict_net, evaluate, driver; E_SKIP where a
 * run would add nothing the others do not check (the network and the
 * evaluation read scenes through the same reader as the NDSI baseline), to
 * keep the sweep within a few minutes. train: 1 = in the dataset of valid
 * odd scenes trained on together, 2 = a dataset of its own, expecting
 * train_e. */
#define OK4 E_OK, E_OK, E_OK, E_OK
#define OK_ND E_OK, E_SKIP, E_SKIP, E_OK
#define REF4(w) E_REFUSE(w), E_REFUSE(w), E_REFUSE(w), E_REFUSE(w)
#define REF_ND(w) E_REFUSE(w), E_SKIP, E_SKIP, E_REFUSE(w)
#define OK_N E_OK, E_SKIP, E_SKIP, E_SKIP
#define REF_N(w) E_REFUSE(w), E_SKIP, E_SKIP, E_SKIP
/* GCP- and RPC-only scenes: carried, with no warning that the mask has none */
#define GCP_OK {OK, "the mask will have none", NULL, NULL}
static img_case img_cases[] = {
    /* georeferencing: carried exactly, rotation terms included */
    {"north_up.tif", mk_north_up, OK4, NULL, NULL, 1, E_OK},
    {"rotated.tif", mk_rotated, OK4, NULL, NULL, 1, E_OK},
    {"sheared.tif", mk_sheared, OK4, NULL, NULL, 1, E_OK},
    {"south_up.tif", mk_south_up, OK4, NULL, NULL, 1, E_OK},
    {"rot90.tif", mk_rot90, OK4, NULL, NULL, 0, E_OK},
    {"singular_gt.tif", mk_singular_gt, REF4("singular"), NULL, NULL, 2, E_REFUSE("singular")},
    {"nan_gt.tif", mk_nan_gt, REF_ND("not finite"), NULL, NULL, 0, E_OK},
    {"inf_gt.tif", mk_inf_gt, REF_N("not finite"), NULL, NULL, 0, E_OK},
    {"geographic.tif", mk_geographic, OK4, NULL, NULL, 1, E_OK},
    /* carried as GCPs / RPC metadata, with no warning that the mask has no
     * georeferencing */
    {"gcp_only.tif", mk_gcp_only, GCP_OK, GCP_OK, GCP_OK, GCP_OK, NULL, NULL, 1, E_OK},
    {"rpc_only.tif", mk_rpc_only, GCP_OK, GCP_OK, GCP_OK, GCP_OK, NULL, NULL, 0, E_OK},
    {"no_georef.tif", mk_no_georef, WARN_NOGEO, WARN_NOGEO, WARN_NOGEO, WARN_NOGEO, NULL, NULL,
     1, E_OK},
    /* sizes */
    {"px_1x1.tif", mk_px_1x1, OK4, NULL, NULL, 1, E_OK},
    {"px_1x300.tif", mk_px_1x300, OK4, NULL, NULL, 1, E_OK},
    {"px_300x1.tif", mk_px_300x1, OK4, NULL, NULL, 1, E_OK},
    {"px_300x300.tif", mk_px_300x300, OK_ND, NULL, NULL, 0, E_OK},
    /* huge dimensions declared by tiny files: refused before allocating */
    {"huge_vrt.vrt", mk_huge_vrt, REF4("more than"), NULL, NULL, 2, E_REFUSE("more than")},
    {"huge_tags.tif", mk_huge_tags, E_REFUSE("too large"), E_SKIP, E_REFUSE("too large"),
     E_REFUSE("too large"), NULL, NULL, 0, E_OK},
    {"huge_envi.img", mk_huge_envi, E_REFUSE("too small"), E_SKIP, E_SKIP, E_REFUSE("too small"),
     NULL, NULL, 2, E_REFUSE("too small")},
    /* within GSEG_MAX_DIMENSION: the memory plan must refuse it (the
     * driver only opens it here) */
    {"big_vrt.vrt", mk_big_vrt, E_REFUSE("MiB"), E_SKIP, E_SKIP,
     WARN_NOGEO, NULL, NULL, 0, E_OK},
    /* broken compressed blocks */
    {"deflate_corrupt.tif", mk_deflate_corrupt, E_REFUSE("read"), E_REFUSE("read"),
     E_REFUSE("read"), E_REFUSE("read"), NULL, NULL, 2, E_REFUSE("read")},
    {"deflate_trunc.tif", mk_deflate_trunc, E_REFUSE("read"), E_SKIP, E_SKIP, E_SKIP,
     NULL, NULL, 0, E_OK},
    {"lzw_corrupt.tif", mk_lzw_corrupt, E_REFUSE("read"), E_SKIP, E_SKIP, E_SKIP, NULL,
     NULL, 0, E_OK},
    {"lzw_trunc.tif", mk_lzw_trunc, E_REFUSE("read"), E_SKIP, E_SKIP, E_SKIP, NULL,
     NULL, 0, E_OK},
    {"jpeg_corrupt.tif", mk_jpeg_corrupt, E_REFUSE("read"), E_SKIP, E_SKIP, E_SKIP,
     NULL, NULL, 0, E_OK},
    {"jpeg_trunc.tif", mk_jpeg_trunc, E_REFUSE("read"), E_SKIP, E_SKIP, E_REFUSE("read"), NULL,
     NULL, 2, E_REFUSE("read")},
    /* values: NaN, +-Inf and nodata at the types' limits are no data */
    {"nan_inf.tif", mk_nan_inf, OK4, kSpecialPx, NULL, 1, E_OK},
    {"nodata_fltmax.tif", mk_nodata_fltmax, E_OK, E_OK, E_SKIP, E_OK, kLimitPx, NULL, 0, E_OK},
    {"nodata_fltmin.tif", mk_nodata_fltmin, OK_N, kLimitPx, NULL, 0, E_OK},
    {"nodata_dblmax.tif", mk_nodata_dblmax, OK_N, kLimitPx, NULL, 0, E_OK},
    {"nodata_nan.tif", mk_nodata_nan, OK_N, kLimitPx, NULL, 0, E_OK},
    {"nodata_u16max.tif", mk_nodata_u16max, OK_N, kLimitPx, NULL, 0, E_OK},
    {"nodata_u32max.tif", mk_nodata_u32max, OK_N, kLimitPx, NULL, 0, E_OK},
    {"nodata_i64min.tif", mk_nodata_i64min, OK_N, kLimitPx, NULL, 0, E_OK},
    {"nodata_u64max.tif", mk_nodata_u64max, OK_N, kLimitPx, NULL, 0, E_OK},
    {"all_nodata.tif", mk_all_nodata, OK4, NULL, NULL, 2, E_REFUSE("no valid")},
    /* mask bands: masked pixels are no data; a mask file on another grid
     * than its image is refused naming it */
    {"mask_band.tif", mk_mask_band, E_OK, E_OK, E_SKIP, E_OK, kMaskPx, NULL, 0, E_OK},
    {"mask_band_48x40.tif", mk_mask_band_48x40, E_REFUSE2("mask band", ".msk"), E_SKIP,
     E_REFUSE2("mask band", ".msk"), E_REFUSE2("mask band", ".msk"), NULL, NULL, 2,
     E_REFUSE2("mask band", ".msk")},
    /* types: every real type gives the Byte scene's mask */
    {"type_byte.tif", mk_type_byte, E_OK, E_OK, E_SKIP, E_OK, NULL, NULL, 0, E_OK},
    {"type_int8.tif", mk_type_int8, OK_N, NULL, "type_byte.tif", 0, E_OK},
    {"type_uint16.tif", mk_type_uint16, OK_N, NULL, "type_byte.tif", 0, E_OK},
    {"type_int16.tif", mk_type_int16, OK_N, NULL, "type_byte.tif", 0, E_OK},
    {"type_uint32.tif", mk_type_uint32, OK_N, NULL, "type_byte.tif", 0, E_OK},
    {"type_int32.tif", mk_type_int32, OK_N, NULL, "type_byte.tif", 0, E_OK},
    {"type_uint64.tif", mk_type_uint64, OK4, NULL, "type_byte.tif", 1, E_OK},
    {"type_int64.tif", mk_type_int64, OK4, NULL, "type_byte.tif", 1, E_OK},
    {"type_float16.tif", mk_type_float16, E_OK, E_OK, E_SKIP, E_OK, NULL, "type_byte.tif", 1,
     E_OK},
    {"type_float32.tif", mk_type_float32, OK_N, NULL, "type_byte.tif", 0, E_OK},
    {"type_float64.tif", mk_type_float64, OK_N, NULL, "type_byte.tif", 0, E_OK},
    {"type_cint16.tif", mk_type_cint16, REF4("complex"), NULL, NULL, 2, E_REFUSE("complex")},
    {"type_cint32.tif", mk_type_cint32, REF_N("complex"), NULL, NULL, 0, E_OK},
    {"type_cfloat32.tif", mk_type_cfloat32, REF_N("complex"), NULL, NULL, 0, E_OK},
    {"type_cfloat64.tif", mk_type_cfloat64, REF_N("complex"), NULL, NULL, 0, E_OK},
    /* bands */
    {"one_band.tif", mk_one_band, REF4("band"), NULL, NULL, 0, E_OK},
};
#define NIMG ((int)(sizeof img_cases / sizeof *img_cases))

static const char *corpus(const img_case *c)
{
    return P("corpus/%s/images/%s", CPLGetBasename(c->file), c->file);
}

/* The truth mask of an image case: its size and georeferencing, the left
 * half glacier. Images that cannot be opened get a 96 x 80 mask. */
static void make_truth(const char *image, const char *mask)
{
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDatasetH im = GDALOpen(image, GA_ReadOnly);
    CPLPopErrorHandler();
    int w = 96, h = 80, has_gt = 0;
    double gt[6];
    OGRSpatialReferenceH srs = NULL;
    if (im && GDALGetRasterXSize(im) <= 4096 && GDALGetRasterYSize(im) <= 4096) {
        w = GDALGetRasterXSize(im);
        h = GDALGetRasterYSize(im);
        has_gt = GDALGetGeoTransform(im, gt) == CE_None;
        srs = GDALGetSpatialRef(im) ? OSRClone(GDALGetSpatialRef(im)) : NULL;
    }
    if (im) GDALClose(im);
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), mask, w, h, 1, GDT_Byte, NULL);
    ck_assert_ptr_nonnull(ds);
    if (has_gt) GDALSetGeoTransform(ds, gt);
    if (srs) GDALSetSpatialRef(ds, srs);
    uint8_t *v = malloc((size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) v[(size_t)y * w + x] = x < w / 2 || w == 1;
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, w, h, v, w, h,
                                  GDT_Byte, 0, 0), CE_None);
    free(v);
    GDALClose(ds);
    if (srs) OSRDestroySpatialReference(srs);
}

/* ---- runs per tool ----------------------------------------------------------------- */

typedef struct tool_run {
    const char *file, *tool, *name;
    expect e;
    const char *georef_ref;
    const grid_exp *grid;
    const char *same_mask;
    const int *nodata_px;
} tool_run;

/* ---- a pool of runs: GSEG_ODD_JOBS (default 2) at a time ----------------------------- */

typedef struct job {
    check c;                 /* strings owned by the job */
    grid_exp grid;
    char *strs[12];
    int nstrs;
    char *out_file, *err_file, *run_dir;
    int train;               /* check and delete the trained model afterwards */
    int seq;
    pid_t pid;
    double t0;
} job;

static job **running;
static int nrunning, max_jobs = 2;

static const char *keep(job *j, const char *s)
{
    if (!s) return NULL;
    ck_assert(j->nstrs < 12);
    return j->strs[j->nstrs++] = strdup(s);
}

static void job_done(job *j, int status)
{
    run_result r = result_of(status, now_s() - j->t0, j->err_file);
    cur_seq = j->seq;
    judge(&j->c, &r);
    if (j->train) {
        if (r.rc == 0 && j->c.e.k == OK) {
            gseg_model *m = NULL;
            if (gseg_model_open(j->c.output, NULL, &m) != GSEG_OK)
                add_row(j->c.file, j->c.tool, "model unreadable", "FAIL", 0, gseg_last_error());
            gseg_model_free(m);
        }
        /* checkpoints are big (the model twice and the optimiser state) */
        tu_system("rm -f '%s'/*.gseg '%s'/*.state", j->run_dir, j->run_dir);
    }
    free(r.err);
    for (int i = 0; i < j->nstrs; i++) free(j->strs[i]);
    free(j->out_file);
    free(j->err_file);
    free(j->run_dir);
    free(j);
}

/* Waits until one running job ends and judges it. */
static void pool_wait_one(void)
{
    for (;;) {
        for (int i = 0; i < nrunning; i++) {
            int status = 0;
            pid_t p = waitpid(running[i]->pid, &status, WNOHANG);
            if (p == 0 || (p < 0 && errno == EINTR)) continue;
            ck_assert_msg(p == running[i]->pid, "waitpid: %s", strerror(errno));
            job *j = running[i];
            running[i] = running[--nrunning];
            job_done(j, status);
            return;
        }
        usleep(10000);
    }
}

/* Waits for every running job (before comparing with their outputs). */
static void pool_drain(void)
{
    while (nrunning) pool_wait_one();
}

static void submit(job *j, const char *cmd)
{
    if (!running) {
        const char *v = getenv("GSEG_ODD_JOBS");
        if (v && atoi(v) > 0) max_jobs = atoi(v);
        running = calloc((size_t)max_jobs, sizeof *running);
    }
    while (nrunning >= max_jobs) pool_wait_one();
    j->t0 = now_s();
    j->pid = start_cmd(cmd, j->out_file, j->err_file);
    running[nrunning++] = j;
}

/* A job for tool_run t with a fresh run folder (and its TMPDIR); *tmp
 * gets the TMPDIR. */
static job *new_job(const tool_run *t, int gdal_tool, const char **d, const char **tmp)
{
    static int seq;
    job *j = calloc(1, sizeof *j);
    j->seq = ++seq;
    char tb[2048];
    *d = keep(j, new_run_dir(tb, sizeof tb));
    *tmp = keep(j, tb);
    j->run_dir = strdup(*d);
    ck_assert(asprintf(&j->err_file, "%s.err", *d) > 0);
    ck_assert(asprintf(&j->out_file, "%s.out", *d) > 0);
    j->c.file = keep(j, t->file);
    j->c.tool = t->tool;
    j->c.name = keep(j, t->name);
    j->c.e = t->e;
    j->c.e.also = keep(j, t->e.also);
    j->c.gdal_tool = gdal_tool;
    j->c.georef_ref = keep(j, t->georef_ref);
    if (t->grid) {
        j->grid = *t->grid;
        j->c.grid = &j->grid;
    }
    j->c.same_mask = keep(j, t->same_mask);
    j->c.nodata_px = t->nodata_px;
    j->c.tmp_dir = *tmp;
    return j;
}

/* gseg-predict on inputs (a scene, or a stack with --band-file) with model;
 * the mask goes to <run dir>/<stem>_mask.tif. Returns the mask path (static)
 * for later comparisons. */
static const char *run_predict(const tool_run *t, const char *model, const char *inputs)
{
    if (t->e.k == SKIP) return NULL;
    const char *d, *tmp;
    job *j = new_job(t, 0, &d, &tmp);
    static char mask[2100];
    snprintf(mask, sizeof mask, "%s/%s_mask.tif", d, CPLGetBasename(t->file));
    j->c.out_dir = d;
    j->c.output = keep(j, mask);
    int net = strncmp(model, "ndsi:", 5) != 0;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "env TMPDIR='%s' '%s' -q --model '%s' %s -o '%s'%s", tmp,
             predict_exe, model, inputs, mask, net ? " --precision fp32 --threads 2" : "");
    submit(j, cmd);
    return mask;
}

/* gdal_translate of a GSEG: dataset (scene spec or descriptor) to GTiff. */
static void run_driver(const tool_run *t, const char *conn)
{
    if (!have_driver || t->e.k == SKIP) return;
    const char *d, *tmp;
    job *j = new_job(t, 1, &d, &tmp);
    char out[2100], cmd[8192];
    snprintf(out, sizeof out, "%s/drv.tif", d);
    j->c.output = keep(j, out);
    snprintf(cmd, sizeof cmd, "env TMPDIR='%s' gdal_translate -q '%s' '%s'", tmp, conn, out);
    submit(j, cmd);
}

static void run_gdalinfo(const tool_run *t, const char *conn)
{
    if (!have_driver || t->e.k == SKIP) return;
    const char *d, *tmp;
    job *j = new_job(t, 1, &d, &tmp);
    j->c.out_dir = d;
    j->c.georef_ref = NULL;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "env TMPDIR='%s' gdalinfo '%s'", tmp, conn);
    submit(j, cmd);
}

/* A job of a tool whose output is <run dir>/name, a file that is no raster:
 * the raster checks (georeferencing, grid, masks) do not apply. */
static job *file_job(const tool_run *t, const char *name, const char **out, const char **tmp)
{
    const char *d;
    job *j = new_job(t, 0, &d, tmp);
    char o[2100];
    snprintf(o, sizeof o, "%s/%s", d, name);
    j->c.out_dir = d;
    j->c.output = *out = keep(j, o);
    j->c.georef_ref = NULL;
    j->c.grid = NULL;
    j->c.same_mask = NULL;
    j->c.nodata_px = NULL;
    return j;
}

/* gseg-evaluate on a dataset folder (images/ + masks/), or with labels. */
static void run_evaluate(const tool_run *t, const char *model, const char *data,
                         const char *labels)
{
    if (t->e.k == SKIP) return;
    const char *tmp, *json;
    job *j = file_job(t, "report.json", &json, &tmp);
    char cmd[8192], lab[2200] = "";
    if (labels) snprintf(lab, sizeof lab, " --labels '%s'", labels);
    int net = strncmp(model, "ndsi:", 5) != 0;
    snprintf(cmd, sizeof cmd, "env TMPDIR='%s' '%s' -q --model '%s' --data '%s'%s --json '%s'%s",
             tmp, evaluate_exe, model, data, lab, json,
             net ? " --precision fp32 --threads 2" : "");
    submit(j, cmd);
}

/* gseg-train for two steps on a dataset folder (or scenes + labels). */
static void run_train(const tool_run *t, const char *data, const char *labels)
{
    if (t->e.k == SKIP) return;
    const char *tmp, *model;
    job *j = file_job(t, "model.gseg", &model, &tmp);
    char cmd[8192], lab[2200] = "";
    j->train = 1;
    if (labels) snprintf(lab, sizeof lab, " --labels '%s'", labels);
    snprintf(cmd, sizeof cmd,
             "env TMPDIR='%s' '%s' -q --data '%s'%s -o '%s' --steps 2 --batch 2 --tile 64 "
             "--encoder resnet18 --threads 2 --loaders 2 --precision fp32",
             tmp, train_exe, data, lab, model);
    submit(j, cmd);
}

/* ---- models ----------------------------------------------------------------------- */

static void make_net_model(const char *file, int nbands)
{
    static const double mean[3] = {80, 30, 50}, sd[3] = {20, 20, 20};
    gseg_model_def d = gseg_model_def_default();
    d.encoder = "resnet18";
    d.nbands = nbands;
    d.mean = mean;
    d.std = sd;
    d.tile = 64;
    d.overlap = 16;
    d.seed = 5;
    gseg_model *m = NULL;
    ck_gseg(gseg_model_new(&d, NULL, &m));
    ck_gseg(gseg_model_save(m, file));
    gseg_model_free(m);
}

/* ---- the tests --------------------------------------------------------------------- */

static void setup(void)
{
    static int done;
    gseg_init();
    if (done) return; /* one folder and one corpus for every test of the run */
    done = 1;
    dir = tu_tmpdir("check_odd");
    snprintf(predict_exe, sizeof predict_exe, "%s", tu_build("src/tools/gseg-predict"));
    snprintf(evaluate_exe, sizeof evaluate_exe, "%s", tu_build("src/tools/gseg-evaluate"));
    snprintf(train_exe, sizeof train_exe, "%s", tu_build("src/tools/gseg-train"));
    const char *dp = getenv("GDAL_DRIVER_PATH");
    have_driver = dp && tu_system("test -f '%s/gdal_GSEG.so'", dp) == 0;
    if (!have_driver)
        fprintf(stderr, "odd: no GDAL_DRIVER_PATH/gdal_GSEG.so: driver runs skipped\n");
    const char *s = getenv("GSEG_ODD_STRICT");
    strict = s && *s && strcmp(s, "0") != 0;
    snprintf(net_model, sizeof net_model, "%s", P("models/net.gseg"));
    mkdirs(P("models"));
    make_net_model(net_model, 2);
}

/* The image corpus, each case in corpus/<stem>/{images,masks}/ (a dataset
 * gseg-evaluate and gseg-train read as it is). */
static void ensure_corpus(void)
{
    static int done;
    if (done) return;
    done = 1;
    for (int i = 0; i < NIMG; i++) {
        img_case *c = &img_cases[i];
        mkdirs(P("corpus/%s/images", CPLGetBasename(c->file)));
        mkdirs(P("corpus/%s/masks", CPLGetBasename(c->file)));
        c->make(corpus(c));
        make_truth(corpus(c), P("corpus/%s/masks/%s.tif", CPLGetBasename(c->file),
                                CPLGetBasename(c->file)));
    }
}

static const img_case *find_case(const char *file)
{
    for (int i = 0; i < NIMG; i++)
        if (strcmp(img_cases[i].file, file) == 0) return &img_cases[i];
    ck_abort_msg("no case %s", file);
    return NULL;
}

static int by_seq(const void *a, const void *b)
{
    const row *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static void print_table(const char *title)
{
    qsort(rows, (size_t)nrows, sizeof *rows, by_seq);
    fprintf(stderr, "\n==== odd-input sweep: %s (%d runs) ====\n", title, nrows);
    fprintf(stderr, "%-24s  %-15s  %-6s  %6s  %s\n", "file", "tool", "result", "time", "outcome");
    double total = 0;
    for (int i = 0; i < nrows; i++) {
        fprintf(stderr, "%-24s  %-15s  %-6s  %5.1fs  %s%s%s\n", rows[i].file, rows[i].tool,
                rows[i].verdict, rows[i].seconds, rows[i].outcome,
                strcmp(rows[i].verdict, "PASS") && *rows[i].detail ? "  -- " : "",
                strcmp(rows[i].verdict, "PASS") ? rows[i].detail : "");
        total += rows[i].seconds;
    }
    fprintf(stderr, "==== %d runs in %.0f s: %d failed, %d known bugs (XFAIL), %d XPASS ====\n\n",
            nrows, total, nfail, nxfail, nxpass);
    nrows = 0;
}

static void finish(const char *title)
{
    pool_drain();
    print_table(title);
    int f = nfail;
    nfail = nxfail = nxpass = 0;
    char msg[16384];
    snprintf(msg, sizeof msg, "%s", failures);
    failures[0] = '\0';
    ck_assert_msg(f == 0, "%d odd-input runs failed:%s", f, msg);
}

/* Every image case through gseg-predict (NDSI and network), gseg-evaluate
 * (with a truth mask on its grid) and the driver (gdal_translate). */
START_TEST(test_images)
{
    ensure_corpus();
    char ndsi_ref[2100] = "", net_ref[2100] = "";
    for (int i = 0; i < NIMG; i++) {
        img_case *c = &img_cases[i];
        char in[2200], img[2100];
        snprintf(img, sizeof img, "%s", corpus(c));
        snprintf(in, sizeof in, "'%s'", img);
        const char *name = c->file;
        tool_run t = {c->file, "predict-ndsi", name, c->predict, img, NULL, NULL, c->nodata_px};
        if (c->same_as && *ndsi_ref) t.same_mask = ndsi_ref;
        if (c->predict.k != SKIP) {
            const char *m = run_predict(&t, kNdsi, in);
            if (strcmp(c->file, "type_byte.tif") == 0) snprintf(ndsi_ref, sizeof ndsi_ref, "%s", m);
        }
        t.tool = "predict-net";
        t.e = c->predict_net;
        t.same_mask = c->same_as && *net_ref ? net_ref : NULL;
        if (c->predict_net.k != SKIP) {
            const char *m = run_predict(&t, net_model, in);
            if (strcmp(c->file, "type_byte.tif") == 0) snprintf(net_ref, sizeof net_ref, "%s", m);
        }
        if (strcmp(c->file, "type_byte.tif") == 0) pool_drain(); /* the reference masks */
        t.tool = "evaluate-ndsi";
        t.e = c->evaluate;
        if (c->evaluate.k != SKIP)
            run_evaluate(&t, kNdsi, P("corpus/%s", CPLGetBasename(c->file)), NULL);
        char conn[2400];
        snprintf(conn, sizeof conn, "GSEG:model=\"%s\":%s", kNdsi, img);
        t.e = c->driver;
        t.same_mask = NULL;
        t.nodata_px = c->nodata_px;
        if (strcmp(c->file, "big_vrt.vrt") == 0) {
            t.tool = "gdalinfo";
            run_gdalinfo(&t, conn);
        } else {
            t.tool = "gdal_translate";
            run_driver(&t, conn);
        }
    }
    finish("images");
}
END_TEST

/* ---- band stacks ------------------------------------------------------------------ */

/* One band of the pattern (band b of it) on grid gt / epsg, w x h. */
static void make_band_file(const char *path, int b, int w, int h, const double *gt, int epsg)
{
    img_spec s = spec(w, h, GDT_UInt16);
    s.nb = 1;
    s.gt = gt;
    s.epsg = epsg;
    GDALDatasetH ds = create_tif(path, &s);
    if (b == 1) { /* the swir pattern in band 1 */
        double *row = malloc((size_t)w * sizeof *row);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) row[x] = pattern(1, x, y, w);
            ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, y, w, 1, row, w,
                                          1, GDT_Float64, 0, 0), CE_None);
        }
        free(row);
    }
    GDALClose(ds);
}

typedef struct stack_case {
    const char *name;       /* the table's name */
    const char *a, *b;      /* green file, swir file (in corpus/stacks) */
    expect e;
    const char *name_in;    /* what a refusal names */
    const char *ref;        /* OK: the output's grid is this file's ... */
    grid_exp grid;          /* ... or this one (w > 0) */
} stack_case;

START_TEST(test_stacks)
{
    static const double g30[6] = {500000, 30, 0, 4000000, 0, -30};
    static const double g60[6] = {500000, 60, 0, 4000000, 0, -60};
    static const double shift[6] = {500015, 30, 0, 4000000, 0, -30};
    static const double far[6] = {900000, 30, 0, 4000000, 0, -30};
    static const double rot[6] = {500000, 25.980762113533157, 15, 4000000, 15, -25.980762113533157};
    mkdirs(P("corpus/stacks"));
#define SF(n) P("corpus/stacks/%s", n)
    make_band_file(SF("green30.tif"), 0, 96, 80, g30, 32643);
    make_band_file(SF("swir30.tif"), 1, 96, 80, g30, 32643);
    make_band_file(SF("green60.tif"), 0, 48, 40, g60, 32643);
    make_band_file(SF("swir60.tif"), 1, 48, 40, g60, 32643);
    make_band_file(SF("swir30_utm44.tif"), 1, 96, 80, g30, 32644);
    make_band_file(SF("swir30_nocrs.tif"), 1, 96, 80, g30, 0);
    make_band_file(SF("swir30_shift.tif"), 1, 96, 80, shift, 32643);
    make_band_file(SF("swir30_far.tif"), 1, 96, 80, far, 32643);
    make_band_file(SF("swir30_rot.tif"), 1, 96, 80, rot, 32643);
    make_band_file(SF("swir_nogt.tif"), 1, 96, 80, NULL, 0);
    make_band_file(SF("green_nogt.tif"), 0, 96, 80, NULL, 0);
    make_band_file(SF("swir_nogt_90.tif"), 1, 90, 80, NULL, 0);
    const stack_case cases[] = {
        {"stack_same_grid", "green30.tif", "swir30.tif", E_OK, NULL, "green30.tif", {0}},
        {"stack_30m+60m", "green30.tif", "swir60.tif", E_OK, NULL, "green30.tif", {0}},
        {"stack_60m+30m", "green60.tif", "swir30.tif", E_OK, NULL, "swir30.tif", {0}},
        {"stack_half_px_shift", "green30.tif", "swir30_shift.tif", E_OK, NULL, "green30.tif",
         {95, 80, 1, {500030, 30, 0, 4000000, 0, -30}}},
        {"stack_crs_mismatch", "green30.tif", "swir30_utm44.tif",
         E_REFUSE2("different CRS", "swir30_utm44.tif"), "green30.tif", NULL, {0}},
        {"stack_crs_missing", "green30.tif", "swir30_nocrs.tif",
         E_REFUSE2("different CRS", "swir30_nocrs.tif"), "green30.tif", NULL, {0}},
        {"stack_disjoint", "green30.tif", "swir30_far.tif",
         E_REFUSE2("overlap", "swir30_far.tif"), "green30.tif", NULL, {0}},
        {"stack_rotated", "green30.tif", "swir30_rot.tif", E_REFUSE("rotated"),
         "swir30_rot.tif", NULL, {0}},
        {"stack_gt+no_gt", "green30.tif", "swir_nogt.tif",
         E_REFUSE2("no geotransform", "swir_nogt.tif"), "green30.tif", NULL, {0}},
        {"stack_no_gt", "green_nogt.tif", "swir_nogt.tif", WARN_NOGEO, NULL, "green_nogt.tif", {0}},
        {"stack_no_gt_sizes", "green_nogt.tif", "swir_nogt_90.tif",
         E_REFUSE2("different sizes", "swir_nogt_90.tif"), "green_nogt.tif", NULL, {0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const stack_case *c = &cases[i];
        char a[2100], b[2100], in[4400], ref[2100];
        snprintf(a, sizeof a, "%s", SF(c->a));
        snprintf(b, sizeof b, "%s", SF(c->b));
        snprintf(ref, sizeof ref, "%s", c->ref ? SF(c->ref) : "");
        snprintf(in, sizeof in, "'%s' --band-file '%s'", a, b);
        tool_run t = {c->name, "predict-ndsi", c->name_in, c->e, c->ref ? ref : NULL,
                      c->grid.w ? &c->grid : NULL, NULL, NULL};
        run_predict(&t, kNdsi, in);
        /* the driver reads a stack through a descriptor */
        char desc[2100], json[5000];
        snprintf(desc, sizeof desc, "%s", P("corpus/stacks/%s.json", c->name));
        int n = snprintf(json, sizeof json,
                         "{\"type\": \"gseg-prediction\", \"model\": \"%s\", \"scene\": [\"%s\", "
                         "\"%s\"]}\n", kNdsi, a, b);
        spit(desc, json, (size_t)n);
        t.tool = "gdal_translate";
        run_driver(&t, desc);
    }
#undef SF
    finish("band stacks");
}
END_TEST

/* ---- masks against their image (gseg-evaluate, gseg-train) ------------------------ */

typedef struct mask_case {
    const char *name;
    void (*make)(const char *image, const char *mask); /* mask == NULL: no mask */
    expect evaluate, train;
    const char *name_in;   /* what a refusal names: "image", "mask" or a file name */
} mask_case;

static void mask_like(const char *image, const char *mask, int w, int h, const double *gt,
                      int epsg, int value7)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), mask, w, h, 1, GDT_Byte, NULL);
    ck_assert_ptr_nonnull(ds);
    if (gt) GDALSetGeoTransform(ds, (double *)gt);
    if (epsg) set_srs(ds, epsg);
    uint8_t *v = malloc((size_t)w * h);
    for (int i = 0; i < w * h; i++) v[i] = (i % w) < w / 2;
    if (value7) v[5 * w + 7] = 7;
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, w, h, v, w, h,
                                  GDT_Byte, 0, 0), CE_None);
    free(v);
    GDALClose(ds);
    (void)image;
}

static void mm_ok(const char *i, const char *m) { mask_like(i, m, 96, 80, kGT, 32643, 0); }
static void mm_size(const char *i, const char *m) { mask_like(i, m, 90, 80, kGT, 32643, 0); }
static void mm_shift(const char *i, const char *m)
{
    static const double g[6] = {500030, 30, 0, 4000000, 0, -30};
    mask_like(i, m, 96, 80, g, 32643, 0);
}
static void mm_res(const char *i, const char *m)
{
    static const double g[6] = {500000, 15, 0, 4000000, 0, -15};
    mask_like(i, m, 96, 80, g, 32643, 0);
}
static void mm_rotated(const char *i, const char *m)
{
    static const double g[6] = {500000, 25.980762113533157, 15, 4000000, 15, -25.980762113533157};
    mask_like(i, m, 96, 80, g, 32643, 0);
}
static void mm_crs(const char *i, const char *m) { mask_like(i, m, 96, 80, kGT, 32644, 0); }
static void mm_nogeo(const char *i, const char *m) { mask_like(i, m, 96, 80, NULL, 0, 0); }
static void mm_value7(const char *i, const char *m) { mask_like(i, m, 96, 80, kGT, 32643, 1); }
static void mm_huge(const char *i, const char *m)
{
    (void)i;
    make_vrt_declaring(CPLResetExtension(m, "vrt"), 2000000, 2000000);
}
static void mm_corrupt(const char *i, const char *m)
{
    (void)i;
    make_broken_ex(m, "DEFLATE", 0, 1);
}
static void mm_empty_file(const char *i, const char *m)
{
    (void)i;
    spit(m, "", 0);
}
static void mm_missing(const char *i, const char *m)
{
    (void)i;
    (void)m;
}

#define MISMATCH {REFUSE, "differ", NULL, NULL}
static const mask_case mask_cases[] = {
    {"mask_ok", mm_ok, E_OK, E_SKIP, NULL},
    {"mask_90x80", mm_size, {REFUSE, "90x80", NULL, NULL}, {REFUSE, "90x80", NULL, NULL}, "both"},
    {"mask_shifted", mm_shift, MISMATCH, MISMATCH, "both"},
    {"mask_15m", mm_res, MISMATCH, MISMATCH, "both"},
    {"mask_rotated", mm_rotated, MISMATCH, MISMATCH, "both"},
    {"mask_utm44", mm_crs, {REFUSE, "CRS", NULL, NULL}, {REFUSE, "CRS", NULL, NULL}, "both"},
    {"mask_no_georef", mm_nogeo, E_OK, E_SKIP, NULL},
    {"mask_value_7", mm_value7, E_OK, {REFUSE, "value 7", NULL, NULL}, "mask"},
    {"mask_huge_vrt", mm_huge, {REFUSE, "2000000", NULL, NULL}, {REFUSE, "2000000", NULL, NULL},
     "both"},
    {"mask_corrupt", mm_corrupt, {REFUSE, "read", NULL, NULL}, {REFUSE, "read", NULL, NULL},
     "mask"},
    {"mask_empty_file", mm_empty_file, E_REFUSE("open"), E_REFUSE("open"), "mask"},
    {"mask_missing", mm_missing, E_REFUSE("no mask"), E_REFUSE("no mask"), "image"},
};

START_TEST(test_masks)
{
    for (size_t i = 0; i < sizeof mask_cases / sizeof *mask_cases; i++) {
        const mask_case *c = &mask_cases[i];
        char img[2100], mask[2100], data[2100];
        snprintf(data, sizeof data, "%s", P("corpus/%s", c->name));
        mkdirs(P("corpus/%s/images", c->name));
        mkdirs(P("corpus/%s/masks", c->name));
        snprintf(img, sizeof img, "%.1900s/images/%s.tif", data, c->name);
        snprintf(mask, sizeof mask, "%.1900s/masks/%s.tif", data, c->name);
        mk_north_up(img);
        c->make(img, mask);
        const char *mfile = c->make == mm_huge ? CPLGetFilename(CPLResetExtension(mask, "vrt"))
                                               : CPLGetFilename(mask);
        char mname[256], iname[256];
        snprintf(mname, sizeof mname, "masks/%s", mfile);
        snprintf(iname, sizeof iname, "images/%s.tif", c->name);
        const char *name = !c->name_in ? NULL
                           : !strcmp(c->name_in, "image") ? iname
                                                           : mname;
        expect ev = c->evaluate, tr = c->train;
        if (c->name_in && !strcmp(c->name_in, "both")) ev.also = tr.also = iname;
        tool_run t = {c->name, "evaluate-ndsi", name, ev, NULL, NULL, NULL, NULL};
        run_evaluate(&t, kNdsi, data, NULL);
        t.tool = "train";
        t.e = tr;
        if (tr.k != SKIP) run_train(&t, data, NULL);
    }
    finish("masks");
}
END_TEST

/* ---- label outlines (gseg-evaluate --labels, gseg-train --labels) ----------------- */

/* A vector file with one layer of the given WKT geometries ("" = empty
 * geometry of the layer's type, NULL entries end the list, "-" = a feature
 * without geometry). epsg 0: no CRS; -1: a local (unknown) CRS. */
static void make_vector(const char *path, const char *driver, OGRwkbGeometryType type, int epsg,
                        const char *const *wkt)
{
    GDALDriverH drv = GDALGetDriverByName(driver);
    ck_assert_ptr_nonnull(drv);
    GDALDatasetH ds = GDALCreate(drv, path, 0, 0, 0, GDT_Unknown, NULL);
    ck_assert_msg(ds != NULL, "cannot create %s", path);
    OGRSpatialReferenceH srs = NULL;
    if (epsg > 0) {
        srs = OSRNewSpatialReference(NULL);
        OSRImportFromEPSG(srs, epsg);
    } else if (epsg < 0) {
        srs = OSRNewSpatialReference("LOCAL_CS[\"unknown\",UNIT[\"metre\",1]]");
    }
    OGRLayerH l = GDALDatasetCreateLayer(ds, "outlines", srs, type, NULL);
    ck_assert_ptr_nonnull(l);
    OGRFieldDefnH fd = OGR_Fld_Create("name", OFTString);
    OGR_L_CreateField(l, fd, TRUE);
    OGR_Fld_Destroy(fd);
    for (int i = 0; wkt && wkt[i]; i++) {
        OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(l));
        OGR_F_SetFieldString(f, 0, wkt[i]);
        if (strcmp(wkt[i], "-") != 0) {
            OGRGeometryH g = NULL;
            if (!*wkt[i]) {
                g = OGR_G_CreateGeometry(wkbFlatten(type) == wkbUnknown ? wkbPolygon : type);
            } else {
                char *w = (char *)wkt[i];
                ck_assert_int_eq(OGR_G_CreateFromWkt(&w, srs, &g), OGRERR_NONE);
            }
            OGR_F_SetGeometryDirectly(f, g);
        }
        /* (GPKG warns about polygons in a multipolygon layer: that is the
         * point) */
        CPLPushErrorHandler(CPLQuietErrorHandler);
        OGRErr e = OGR_L_CreateFeature(l, f);
        CPLPopErrorHandler();
        ck_assert_int_eq(e, OGRERR_NONE);
        OGR_F_Destroy(f);
    }
    if (srs) OSRDestroySpatialReference(srs);
    GDALClose(ds);
}

typedef struct label_case {
    const char *file;      /* in corpus/labels */
    const char *scenes;    /* "lb" (a georeferenced scene) or "lb_nogeo" */
    expect evaluate, train;
    int name_scene;        /* a refusal names the scene instead of the labels */
} label_case;

START_TEST(test_labels)
{
    mkdirs(P("corpus/labels"));
    mkdirs(P("corpus/lb/images"));
    mkdirs(P("corpus/lb_nogeo/images"));
    mk_north_up(P("corpus/lb/images/scene.tif"));
    mk_no_georef(P("corpus/lb_nogeo/images/scene.tif"));
    /* scene: x 500000..502880, y 3997600..4000000 (EPSG:32643) */
    const char *invalid[] = {
        "POLYGON ((500000 4000000,501440 3997600,501440 4000000,500000 3997600,500000 4000000))",
        "POLYGON ((500100 3999900,501000 3999900,501000 3998000,500100 3998000,500100 3999900))",
        "POLYGON ((500200 3999000,500900 3999000,500900 3998500,500200 3998500,500200 3999000),"
        "(499000 3990000,499100 3990000,499100 3990100,499000 3990000))",
        "", "-",
        "MULTIPOLYGON (((500300 3999500,500300 3999500,500300 3999500,500300 3999500)))",
        NULL};
    const char *empty[] = {"", "-", "", NULL};
    const char *square[] = {
        "POLYGON ((500100 3999900,501000 3999900,501000 3998000,500100 3998000,500100 3999900))",
        NULL};
    const char *points[] = {"POINT (500500 3999000)", NULL};
    const char *mixed[] = {
        "POLYGON ((500100 3999900,501000 3999900,501000 3998000,500100 3998000,500100 3999900))",
        "LINESTRING (500100 3999900,501000 3998000)", NULL};
    const char *far[] = {"POLYGON ((-70 -33,-69.9 -33,-69.9 -33.1,-70 -33.1,-70 -33))", NULL};
    const char *curved[] = {"CURVEPOLYGON (CIRCULARSTRING (500500 3999000,501000 3999500,"
                            "501500 3999000,501000 3998500,500500 3999000))", NULL};
    const char *huge[] = {"POLYGON ((1e300 1e300,2e300 1e300,2e300 2e300,1e300 1e300))", NULL};
#define LF(n) P("corpus/labels/%s", n)
    make_vector(LF("invalid_geoms.gpkg"), "GPKG", wkbMultiPolygon, 32643, invalid);
    make_vector(LF("empty_geoms.gpkg"), "GPKG", wkbPolygon, 32643, empty);
    make_vector(LF("no_features.gpkg"), "GPKG", wkbPolygon, 32643, NULL);
    make_vector(LF("no_crs.shp"), "ESRI Shapefile", wkbPolygon, 0, square);
    make_vector(LF("unknown_crs.gpkg"), "GPKG", wkbPolygon, -1, square);
    make_vector(LF("points.gpkg"), "GPKG", wkbPoint, 32643, points);
    make_vector(LF("mixed_types.gpkg"), "GPKG", wkbUnknown, 32643, mixed);
    make_vector(LF("far_away.gpkg"), "GPKG", wkbPolygon, 4326, far);
    make_vector(LF("curved.gpkg"), "GPKG", wkbCurvePolygon, 32643, curved);
    make_vector(LF("huge_coords.gpkg"), "GPKG", wkbPolygon, 32643, huge);
    make_vector(LF("on_no_georef.gpkg"), "GPKG", wkbPolygon, 32643, square);
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 89 + 7);
    memcpy(junk, "SQLite format 3", 16);
    spit(LF("garbage.gpkg"), junk, sizeof junk);
    const label_case cases[] = {
        {"invalid_geoms.gpkg", "lb", E_OK, E_OK, 0},
        {"empty_geoms.gpkg", "lb", E_WARN("no outline"), E_SKIP, 0},
        {"no_features.gpkg", "lb", E_WARN("no outline"), E_SKIP, 0},
        {"no_crs.shp", "lb", E_REFUSE("no CRS"), E_REFUSE("no CRS"), 0},
        {"unknown_crs.gpkg", "lb", E_REFUSE("CRS"), E_REFUSE("CRS"), 0},
        {"points.gpkg", "lb", E_REFUSE("no polygon"), E_REFUSE("no polygon"), 0},
        {"mixed_types.gpkg", "lb", E_REFUSE("not a polygon"), E_SKIP, 0},
        {"far_away.gpkg", "lb", E_WARN("no outline"), E_SKIP, 0},
        {"curved.gpkg", "lb", E_OK, E_SKIP, 0},
        {"huge_coords.gpkg", "lb", E_WARN("no outline"), E_SKIP, 0},
        {"garbage.gpkg", "lb", E_REFUSE(NULL), E_REFUSE(NULL), 0},
        {"on_no_georef.gpkg", "lb_nogeo", E_REFUSE("geotransform"), E_REFUSE("geotransform"), 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const label_case *c = &cases[i];
        char lab[2100], data[2100];
        snprintf(lab, sizeof lab, "%s", LF(c->file));
        snprintf(data, sizeof data, "%s", P("corpus/%s", c->scenes));
        tool_run t = {c->file, "evaluate-ndsi", c->name_scene ? "scene.tif" : c->file,
                      c->evaluate, NULL, NULL, NULL, NULL};
        run_evaluate(&t, kNdsi, data, lab);
        t.tool = "train";
        t.e = c->train;
        if (c->train.k != SKIP) run_train(&t, data, lab);
    }
#undef LF
    finish("label outlines");
}
END_TEST

/* ---- model files -------------------------------------------------------------------- */

typedef struct model_case {
    const char *file;
    expect e;
    int name_scene; /* a refusal names the scene (and the model) */
} model_case;

/* A variant of the model file: its first `nkeep` bytes (the header), with
 * `patch` (npatch bytes) written at offset at, extended to `size` bytes
 * with zeros. The zeros are a hole in the file: the variants cost no disk
 * space and no writing time. */
static void model_variant(const char *dst, const char *good, size_t nkeep, size_t size,
                          size_t at, const void *patch, size_t npatch)
{
    int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "cannot write %s", dst);
    ck_assert(write(fd, good, nkeep) == (ssize_t)nkeep);
    if (npatch) ck_assert(pwrite(fd, patch, npatch, (off_t)at) == (ssize_t)npatch);
    ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
    close(fd);
}

/* The header of the model, patched: the first `from` becomes `to` (same
 * length). */
static void header_patch(const char *good, size_t hend, const char *from, const char *to,
                         size_t *at)
{
    size_t k = strlen(from);
    ck_assert_int_eq(k, strlen(to));
    for (size_t i = 8; i + k <= hend; i++)
        if (memcmp(good + i, from, k) == 0) {
            *at = i;
            return;
        }
    ck_abort_msg("model header: no '%s'", from);
}

START_TEST(test_models)
{
    ensure_corpus();
#define MF(n) P("models/%s", n)
    size_t n;
    char *good = slurp(net_model, &n);
    ck_assert(n > 1000);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = hlen << 8 | (unsigned char)good[k];
    ck_assert(hlen + 8 + 4 < n);
    size_t hend = 8 + (size_t)hlen;
    /* Weights are zeros in all variants but these: the refusals come from
     * the header (or the one NaN weight), before the weights matter. */
    model_variant(MF("truncated.gseg"), good, hend, n / 2, 0, NULL, 0);
    model_variant(MF("truncated_header.gseg"), good, 4000, 4000, 0, NULL, 0);
    spit(MF("empty.gseg"), "", 0);
    spit(MF("text.gseg"), "this is not a model\n", 20);
    char junk[30];
    memset(junk, 'x', sizeof junk);
    model_variant(MF("garbled_header.gseg"), good, hend, n, 30, junk, sizeof junk);
    const unsigned char huge[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
    model_variant(MF("huge_header.gseg"), good, hend, n, 0, huge, 8); /* 2^63 - 1 bytes */
    const unsigned char qnan[4] = {0x00, 0x00, 0xC0, 0x7F};
    model_variant(MF("nan_weight.gseg"), good, hend, n, hend, qnan, 4); /* the first weight */
    const struct {
        const char *file, *from, *to;
    } patches[] = {
        {"future_format.gseg", "\\\"gseg_format\\\": 1,", "\\\"gseg_format\\\": 7,"},
        {"in_channels_3.gseg", "\\\"in_channels\\\": 2,", "\\\"in_channels\\\": 3,"},
        {"tile_10.gseg", "\\\"tile\\\": 64,", "\\\"tile\\\": 10,"},
        {"bare_state_dict.gseg", "\"gseg\":\"", "\"gsex\":\""},
    };
    for (size_t i = 0; i < sizeof patches / sizeof *patches; i++) {
        size_t at = 0;
        header_patch(good, hend, patches[i].from, patches[i].to, &at);
        model_variant(MF(patches[i].file), good, hend, n, at, patches[i].to,
                      strlen(patches[i].to));
    }
    free(good);
    make_net_model(MF("three_bands.gseg"), 3);
    const model_case cases[] = {
        {"net.gseg", E_OK, 0},
        {"truncated.gseg", E_REFUSE(NULL), 0},
        {"truncated_header.gseg", E_REFUSE(NULL), 0},
        {"empty.gseg", E_REFUSE(NULL), 0},
        {"text.gseg", E_REFUSE(NULL), 0},
        {"garbled_header.gseg", E_REFUSE(NULL), 0},
        {"huge_header.gseg", E_REFUSE(NULL), 0},
        {"nan_weight.gseg", E_REFUSE("NaN"), 0},
        {"future_format.gseg", E_REFUSE("version 7"), 0},
        {"in_channels_3.gseg", E_REFUSE(NULL), 0},
        {"tile_10.gseg", E_REFUSE("tile"), 0},
        {"three_bands.gseg", E_REFUSE2("bands", "three_bands.gseg"), 1},
        {"bare_state_dict.gseg", E_REFUSE("gseg-import"), 0},
    };
    const img_case *scene = find_case("north_up.tif");
    char img[2100], in[2200];
    snprintf(img, sizeof img, "%s", corpus(scene));
    snprintf(in, sizeof in, "'%s'", img);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const model_case *c = &cases[i];
        char model[2100];
        snprintf(model, sizeof model, "%s", MF(c->file));
        tool_run t = {c->file, "predict", c->name_scene ? "north_up.tif" : c->file, c->e, img,
                      NULL, NULL, NULL};
        run_predict(&t, model, in);
        t.tool = "evaluate";
        t.georef_ref = NULL;
        run_evaluate(&t, model, P("corpus/north_up"), NULL);
        char conn[4400];
        snprintf(conn, sizeof conn, "GSEG:model=%s:precision=fp32:threads=2:%s", model, img);
        t.tool = "gdal_translate";
        t.georef_ref = img;
        run_driver(&t, conn);
    }
#undef MF
    finish("model files");
}
END_TEST

/* ---- training ------------------------------------------------------------------------ */

/* gseg-train on the valid odd scenes together (one run: it must succeed),
 * and on each refused scene alone. */
START_TEST(test_train)
{
    ensure_corpus();
    mkdirs(P("train/valid/train/images"));
    mkdirs(P("train/valid/train/masks"));
    char list[1024] = "";
    for (int i = 0; i < NIMG; i++) {
        const img_case *c = &img_cases[i];
        if (c->train != 1) continue;
        const char *stem = CPLGetBasename(c->file);
        ck_assert_int_eq(tu_system("cp '%s' '%s' && cp '%s' '%s'", corpus(c),
                                   P("train/valid/train/images/%s", c->file),
                                   P("corpus/%s/masks/%s.tif", stem, stem),
                                   P("train/valid/train/masks/%s.tif", stem)), 0);
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", l ? "," : "", stem);
    }
    fprintf(stderr, "odd: train/valid holds %s\n", list);
    tool_run t = {"valid odd scenes", "train", NULL, {OK, NULL, NULL, NULL}, NULL, NULL, NULL,
                  NULL};
    run_train(&t, P("train/valid"), NULL);
    for (int i = 0; i < NIMG; i++) {
        const img_case *c = &img_cases[i];
        if (c->train != 2) continue;
        t.file = c->file;
        t.name = c->file;
        t.e = c->train_e;
        run_train(&t, P("corpus/%s", CPLGetBasename(c->file)), NULL);
    }
    finish("training");
}
END_TEST

Suite *odd_suite(void)
{
    Suite *s = suite_create("odd");
    const struct {
        const char *name;
        const TTest *test;
    } tests[] = {
        {"images", test_images},
        {"stacks", test_stacks},
        {"masks", test_masks},
        {"labels", test_labels},
        {"models", test_models},
        {"train", test_train},
    };
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
        TCase *tc = tcase_create(tests[i].name);
        tcase_set_timeout(tc, 1800);
        tcase_add_checked_fixture(tc, setup, NULL);
        tcase_add_test(tc, tests[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    int rc = tu_run(odd_suite());
    /* the corpus and outputs stay for a look after a failure */
    if (rc == EXIT_SUCCESS && dir) tu_system("rm -rf '%s'", dir);
    return rc;
}
