/* check_quicklook.c — gseg__quicklook_write: PNG size, natural colours with a
 * 2-98 % stretch, transparency, outlines exactly on the class boundaries with
 * their dark halo, automatic band choice (names, Sentinel-2 names, stacks,
 * grey fallback with a warning), refusals, and nothing left behind.
 *
 * The expected image is recomputed here independently of quicklook.c from
 * the spec: the scene and the mask sampled by GDAL's own nearest RasterIO
 * onto the PNG grid, percentiles by sorting. */
#include "testutil.h"

#include "predict.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <gdal.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const six_names[] = {"blue", "green", "red", "nir", "swir1", "swir2"};

/* Class 1 outline colour as gseg-predict uses it; class 2 has alpha 128 (drawn
 * opaque anyway); class 3 is beyond the table (magenta). */
static const uint8_t rgba3[3][4] = {{0, 0, 0, 0}, {0, 170, 255, 255}, {255, 200, 0, 128}};

/* Class of scene pixel (x, y) of the test scenes: 255 in the nodata corner
 * (x + y < 40), 1 in an ellipse, 2 in a rectangle touching it, 3 in a small
 * disc, 0 elsewhere. Coordinates are relative to a 300 x 200 layout. */
static uint8_t truth_class(int x, int y, int w, int h)
{
    double u = x * 300.0 / w, v = y * 200.0 / h;
    if (u + v < 40) return 255;
    if ((u - 170) * (u - 170) / (70.0 * 70) + (v - 110) * (v - 110) / (45.0 * 45) < 1) return 1;
    if (u >= 215 && u < 285 && v >= 20 && v < 100) return 2;
    if ((u - 60) * (u - 60) + (v - 150) * (v - 150) < 18 * 18) return 3;
    return 0;
}

/* Value of band b (0-based) at (x, y): every band a different pattern, so a
 * wrong band choice changes the picture; glacier bright; 0 = nodata. */
static uint16_t band_value(int b, int x, int y, int w, int h)
{
    uint8_t c = truth_class(x, y, w, h);
    if (c == 255) return 0;
    double v = 800 + 37 * b + ((b % 2) ? (4 + b) * x : (3 + b) * y);
    v += (double)((x * 7919 + y * 104729 + b * 3571) % 499);
    if (c == 1 || c == 2) v += 3000 + 500 * b;
    return (uint16_t)v;
}

/* A UInt16 GeoTIFF of nb bands, band i being band_value(first + i); names
 * (may be NULL) become the band descriptions; nodata 0. */
static void make_scene(const char *path, int w, int h, int nb, int first,
                       const char *const *names)
{
    const char *co[] = {"TILED=YES", "COMPRESS=DEFLATE", NULL};
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, nb, GDT_UInt16,
                                 (char **)co);
    ck_assert_ptr_nonnull(ds);
    uint16_t *buf = malloc((size_t)w * h * sizeof *buf);
    for (int b = 0; b < nb; b++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) buf[(size_t)y * w + x] = band_value(first + b, x, y, w, h);
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        ck_assert_int_eq(GDALRasterIO(band, GF_Write, 0, 0, w, h, buf, w, h, GDT_UInt16, 0, 0),
                         CE_None);
        GDALSetRasterNoDataValue(band, 0);
        if (names) GDALSetDescription(band, names[b]);
    }
    free(buf);
    GDALClose(ds);
}

/* The class mask of make_scene's layout (Byte, nodata 255); overviews (nearest)
 * when asked for. */
static void make_mask(const char *path, int w, int h, int overviews)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, 1, GDT_Byte, NULL);
    ck_assert_ptr_nonnull(ds);
    uint8_t *m = malloc((size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) m[(size_t)y * w + x] = truth_class(x, y, w, h);
    GDALRasterBandH band = GDALGetRasterBand(ds, 1);
    ck_assert_int_eq(GDALRasterIO(band, GF_Write, 0, 0, w, h, m, w, h, GDT_Byte, 0, 0), CE_None);
    GDALSetRasterNoDataValue(band, 255);
    if (overviews) {
        int f[] = {2, 4};
        ck_assert_int_eq(GDALBuildOverviews(ds, "NEAREST", 2, f, 0, NULL, NULL, NULL), CE_None);
    }
    free(m);
    GDALClose(ds);
}

/* Reads a PNG as interleaved RGBA; asserts it has 4 Byte bands. */
static uint8_t *read_png(const char *path, int *w, int *h)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    ck_assert_msg(ds != NULL, "cannot open %s", path);
    ck_assert_str_eq(GDALGetDriverShortName(GDALGetDatasetDriver(ds)), "PNG");
    ck_assert_int_eq(GDALGetRasterCount(ds), 4);
    ck_assert_int_eq(GDALGetRasterDataType(GDALGetRasterBand(ds, 1)), GDT_Byte);
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    uint8_t *px = malloc((size_t)*w * *h * 4);
    ck_assert_int_eq(GDALDatasetRasterIO(ds, GF_Read, 0, 0, *w, *h, px, *w, *h, GDT_Byte, 4, NULL,
                                         4, 4 * *w, 1), CE_None);
    GDALClose(ds);
    return px;
}

/* Band `band` (1-based) of `path` sampled by GDAL's nearest RasterIO onto a
 * w x h grid, as float. */
static float *sample_band(const char *path, int band, int w, int h)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    ck_assert_ptr_nonnull(ds);
    float *v = malloc((size_t)w * h * sizeof *v);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, band), GF_Read, 0, 0,
                                  GDALGetRasterXSize(ds), GDALGetRasterYSize(ds), v, w, h,
                                  GDT_Float32, 0, 0), CE_None);
    GDALClose(ds);
    return v;
}

static uint8_t *sample_mask(const char *path, int w, int h)
{
    float *f = sample_band(path, 1, w, h);
    uint8_t *m = malloc((size_t)w * h);
    for (size_t i = 0; i < (size_t)w * h; i++) m[i] = (uint8_t)f[i];
    free(f);
    return m;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The quicklook without outlines, from the spec: bands[3] (1-based in the
 * single-file scene `path`) sampled onto w x h, valid where every band is
 * not 0, each stretched from its 2nd to 98th percentile (nearest rank). */
static uint8_t *expected_base(const char *path, const int bands[3], int w, int h)
{
    size_t n = (size_t)w * h;
    float *v[3];
    for (int c = 0; c < 3; c++) v[c] = sample_band(path, bands[c], w, h);
    uint8_t *out = calloc(n, 4);
    for (int c = 0; c < 3; c++) {
        float *s = malloc(n * sizeof *s);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (v[0][i] != 0 && v[1][i] != 0 && v[2][i] != 0) s[k++] = v[c][i];
        ck_assert(k > 0);
        qsort(s, k, sizeof *s, cmp_float);
        double lo = s[(size_t)floor(0.02 * (double)(k - 1) + 0.5)];
        double hi = s[(size_t)floor(0.98 * (double)(k - 1) + 0.5)];
        ck_assert(hi > lo);
        for (size_t i = 0; i < n; i++) {
            if (v[0][i] == 0 || v[1][i] == 0 || v[2][i] == 0) continue;
            double t = (v[c][i] - lo) / (hi - lo) * 255.0 + 0.5;
            out[4 * i + c] = t <= 0 ? 0 : t >= 255 ? 255 : (uint8_t)t;
            out[4 * i + 3] = 255;
        }
        free(s);
    }
    for (int c = 0; c < 3; c++) free(v[c]);
    return out;
}

/* Outline pixels of a mask on the PNG grid: class 1..254 with a 4-neighbour
 * of another value or at the image border. */
static uint8_t *boundary(const uint8_t *m, int w, int h)
{
    uint8_t *e = calloc((size_t)w * h, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t c = m[(size_t)y * w + x];
            if (c == 0 || c == 255) continue;
            int edge = x == 0 || y == 0 || x == w - 1 || y == h - 1;
            if (!edge)
                edge = m[(size_t)y * w + x - 1] != c || m[(size_t)y * w + x + 1] != c ||
                       m[(size_t)(y - 1) * w + x] != c || m[(size_t)(y + 1) * w + x] != c;
            e[(size_t)y * w + x] = (uint8_t)edge;
        }
    return e;
}

/* 1 if a pixel 8-adjacent to (x, y) is in e. */
static int near_edge(const uint8_t *e, int w, int h, int x, int y)
{
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            int u = x + dx, v = y + dy;
            if (u >= 0 && v >= 0 && u < w && v < h && e[(size_t)v * w + u]) return 1;
        }
    return 0;
}

/* Checks png against base with the outlines of mask m (on the PNG grid):
 * outline pixels in their class colour, opaque; the halo a quarter of the
 * base; every other pixel exactly the base. Returns the outline count. */
static size_t check_outlines(const uint8_t *png, const uint8_t *base, const uint8_t *m, int w,
                             int h)
{
    uint8_t *e = boundary(m, w, h);
    size_t edges = 0, halo = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            const uint8_t *p = png + 4 * i, *b = base + 4 * i;
            if (e[i]) {
                const uint8_t *want = m[i] < 3 ? rgba3[m[i]] : (const uint8_t[]){255, 0, 255};
                ck_assert_msg(p[0] == want[0] && p[1] == want[1] && p[2] == want[2] &&
                                  p[3] == 255,
                              "outline pixel %d,%d (class %d) is %d,%d,%d,%d", x, y, m[i], p[0],
                              p[1], p[2], p[3]);
                edges++;
            } else if (b[3] && near_edge(e, w, h, x, y)) {
                for (int c = 0; c < 3; c++)
                    ck_assert_msg(p[c] == b[c] >> 2, "halo pixel %d,%d", x, y);
                ck_assert_int_eq(p[3], 255);
                halo++;
            } else {
                ck_assert_msg(memcmp(p, b, 4) == 0,
                              "pixel %d,%d is %d,%d,%d,%d, expected %d,%d,%d,%d", x, y, p[0],
                              p[1], p[2], p[3], b[0], b[1], b[2], b[3]);
            }
        }
    ck_assert(halo > edges / 2);
    free(e);
    return edges;
}

/* The names in dir, sorted and joined by spaces. */
static char *listing(const char *dir)
{
    char **names = NULL;
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            names = CSLAddString(names, e->d_name);
    closedir(d);
    int n = CSLCount(names);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    char *out = calloc(1, 8192);
    for (int i = 0; i < n; i++) snprintf(out + strlen(out), 8192 - strlen(out), "%s%s",
                                         i ? " " : "", names[i]);
    CSLDestroy(names);
    return out;
}

static void ck_listing(const char *dir, const char *want)
{
    char *got = listing(dir);
    ck_assert_msg(strcmp(got, want) == 0, "files in %s: '%s', expected '%s'", dir, got, want);
    free(got);
}

static gseg__quicklook_params params(const char **scene, int n, const char *mask, int max_size)
{
    gseg__quicklook_params p;
    memset(&p, 0, sizeof p);
    p.scene = scene;
    p.nscene = n;
    p.mask = mask;
    p.max_size = max_size;
    p.nclasses = 3;
    p.class_rgba = rgba3;
    return p;
}

/* Warnings GDAL reported while a handler is pushed. */
typedef struct warnings {
    int count;
    char last[1024];
} warnings;

static void CPL_STDCALL keep_warnings(CPLErr cls, CPLErrorNum no, const char *msg)
{
    (void)no;
    warnings *w = CPLGetErrorHandlerUserData();
    if (cls != CE_Warning) return;
    w->count++;
    snprintf(w->last, sizeof w->last, "%s", msg);
}

/* Writes a quicklook, asserting success and no warning. */
static void ql_ok(const gseg__quicklook_params *p, const char *png)
{
    warnings wn = {0, ""};
    CPLPushErrorHandlerEx(keep_warnings, &wn);
    gseg_status st = gseg__quicklook_write(p, png);
    CPLPopErrorHandler();
    ck_assert_msg(st == GSEG_OK, "quicklook: %s", gseg_last_error());
    ck_assert_msg(wn.count == 0, "unexpected warning: %s", wn.last);
}

/* Scene + mask + quicklook of a w x h scene at max_size; checks the PNG is
 * pw x ph and exactly the expected image. */
static void check_scene(const char *name, int w, int h, int max_size, int pw, int ph,
                        int overviews)
{
    gseg_init();
    char *dir = tu_tmpdir(name);
    char scene[4200], mask[4200], png[4200], bare[4200];
    snprintf(scene, sizeof scene, "%s/scene.tif", dir);
    snprintf(mask, sizeof mask, "%s/mask.tif", dir);
    snprintf(png, sizeof png, "%s/ql.png", dir);
    snprintf(bare, sizeof bare, "%s/bare.png", dir);
    make_scene(scene, w, h, 6, 0, six_names);
    make_mask(mask, w, h, overviews);
    const char *in[] = {scene};
    gseg__quicklook_params p = params(in, 1, mask, max_size);
    ql_ok(&p, png);
    p.mask = NULL; /* no outlines */
    ql_ok(&p, bare);

    int qw, qh;
    uint8_t *img = read_png(png, &qw, &qh), *bimg = read_png(bare, &qw, &qh);
    ck_assert_int_eq(qw, pw);
    ck_assert_int_eq(qh, ph);
    /* without outlines: the stretched scene, bands red green blue = 3 2 1 */
    uint8_t *base = expected_base(scene, (const int[]){3, 2, 1}, pw, ph);
    size_t n = (size_t)pw * ph, transparent = 0, lo[3] = {0}, hi[3] = {0}, opaque = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(memcmp(bimg + 4 * i, base + 4 * i, 4) == 0, "pixel %zu differs", i);
        transparent += base[4 * i + 3] == 0;
        opaque += base[4 * i + 3] == 255;
        for (int c = 0; c < 3 && base[4 * i + 3]; c++) {
            lo[c] += base[4 * i + c] <= 5;
            hi[c] += base[4 * i + c] >= 250;
        }
    }
    /* not blank, stretched: each channel reaches both ends on a few % of pixels */
    ck_assert(transparent > 0 && opaque + transparent == n);
    for (int c = 0; c < 3; c++)
        ck_assert_msg(lo[c] >= opaque / 100 && hi[c] >= opaque / 100 && lo[c] < opaque / 5 &&
                          hi[c] < opaque / 5,
                      "channel %d: %zu dark, %zu bright of %zu", c, lo[c], hi[c], opaque);
    /* with outlines: exactly on the boundary of the mask sampled the same way */
    uint8_t *m = sample_mask(mask, pw, ph);
    if (!overviews) /* centre sampling: the mask's nodata is the scene's */
        for (size_t i = 0; i < n; i++) ck_assert_int_eq(m[i] == 255, base[4 * i + 3] == 0);
    size_t edges = check_outlines(img, base, m, pw, ph);
    ck_assert(edges > 20);
    ck_listing(dir, "bare.png mask.tif ql.png scene.tif");
    free(m);
    free(base);
    free(img);
    free(bimg);
    free(dir);
}

/* A south-up grid (geotransform term 5 > 0) and an east-left one (term 1
 * < 0) are shown north up and west left: the quicklook of the same pixels
 * with a north-up geotransform, flipped. */
START_TEST(test_north_up)
{
    gseg_init();
    char *dir = tu_tmpdir("northup");
    const double gts[3][6] = {{500000, 30, 0, 4000000, 0, -30},
                              {500000, 30, 0, 3990000, 0, 30},
                              {510000, -30, 0, 4000000, 0, -30}};
    uint8_t *img[3];
    int w = 0, h = 0;
    for (int k = 0; k < 3; k++) {
        char scene[4200], mask[4200], png[4200];
        snprintf(scene, sizeof scene, "%s/s%d.tif", dir, k);
        snprintf(mask, sizeof mask, "%s/m%d.tif", dir, k);
        snprintf(png, sizeof png, "%s/q%d.png", dir, k);
        make_scene(scene, 90, 70, 6, 0, six_names);
        make_mask(mask, 90, 70, 0);
        for (int f = 0; f < 2; f++) {
            GDALDatasetH ds = GDALOpen(f ? mask : scene, GA_Update);
            GDALSetGeoTransform(ds, (double *)gts[k]);
            GDALClose(ds);
        }
        const char *in[] = {scene};
        gseg__quicklook_params p = params(in, 1, mask, 0);
        ql_ok(&p, png);
        img[k] = read_png(png, &w, &h);
    }
    ck_assert_int_eq(w, 90);
    ck_assert_int_eq(h, 70);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            ck_assert(!memcmp(img[1] + 4 * ((size_t)y * w + x),
                              img[0] + 4 * ((size_t)(h - 1 - y) * w + x), 4));
            ck_assert(!memcmp(img[2] + 4 * ((size_t)y * w + x),
                              img[0] + 4 * ((size_t)y * w + w - 1 - x), 4));
        }
    for (int k = 0; k < 3; k++) free(img[k]);
    free(dir);
}
END_TEST

START_TEST(test_downsampled)
{
    check_scene("down", 300, 200, 120, 120, 80, 0);
}
END_TEST

START_TEST(test_full_size_default)
{
    check_scene("full", 300, 200, 0, 300, 200, 0); /* 0 = 1024: the scene's size */
}
END_TEST

START_TEST(test_tall_in_strips)
{
    /* 700 rows read in strips of at most 256; the longer side is the height */
    check_scene("tall", 210, 700, 350, 105, 350, 0);
}
END_TEST

START_TEST(test_mask_overviews)
{
    check_scene("ovr", 300, 200, 75, 75, 50, 1);
}
END_TEST

START_TEST(test_sparse_rows)
{
    /* 300 scene rows per PNG row, more than a strip holds: every strip is one
     * sampled row, the rows between are not read */
    gseg_init();
    char *dir = tu_tmpdir("sparse");
    char scene[4200], png[4200];
    snprintf(scene, sizeof scene, "%s/scene.tif", dir);
    snprintf(png, sizeof png, "%s/ql.png", dir);
    make_scene(scene, 900, 3000, 3, 0, six_names);
    const char *in[] = {scene};
    gseg__quicklook_params p = params(in, 1, NULL, 10);
    ql_ok(&p, png);
    int w, h;
    uint8_t *img = read_png(png, &w, &h);
    ck_assert_int_eq(w, 3);
    ck_assert_int_eq(h, 10);
    uint8_t *base = expected_base(scene, (const int[]){3, 2, 1}, w, h);
    ck_assert(memcmp(img, base, (size_t)w * h * 4) == 0);
    free(base);
    free(img);
    free(dir);
}
END_TEST

START_TEST(test_stacks_and_band_names)
{
    gseg_init();
    char *dir = tu_tmpdir("stack");
    char scene[4200], mask[4200], ref[4200], png[4200], a[4200], b[4200];
    snprintf(scene, sizeof scene, "%s/scene.tif", dir);
    snprintf(mask, sizeof mask, "%s/mask.tif", dir);
    snprintf(ref, sizeof ref, "%s/ref.png", dir);
    snprintf(a, sizeof a, "%s/a.tif", dir);
    snprintf(b, sizeof b, "%s/b.tif", dir);
    make_scene(scene, 300, 200, 6, 0, six_names);
    make_mask(mask, 300, 200, 0);
    const char *in[] = {scene};
    gseg__quicklook_params p = params(in, 1, mask, 100);
    ql_ok(&p, ref);
    int w, h;
    uint8_t *want = read_png(ref, &w, &h);

    /* two files: blue green | red nir swir1 swir2, red in the second */
    make_scene(a, 300, 200, 2, 0, six_names);
    make_scene(b, 300, 200, 4, 2, six_names + 2);
    const char *stack[] = {a, b};
    /* Sentinel-2 names, upper case; single-band files named by stem */
    const char *s2names[] = {"B02", "B03", "B04", "B08"};
    const char *s2[4];
    char s2path[4][4200];
    for (int i = 0; i < 4; i++) {
        snprintf(s2path[i], sizeof s2path[i], "%s/T43SFA_20200801_%s_10m.tif", dir, s2names[i]);
        make_scene(s2path[i], 300, 200, 1, i, NULL);
        s2[i] = s2path[i];
    }
    const char *s2desc[] = {"nir", "B02", "B03", "B04"}; /* one file, described */
    snprintf(png, sizeof png, "%s/s2desc.tif", dir);
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), png, 300, 200, 4, GDT_UInt16, NULL);
    uint16_t *buf = malloc(300 * 200 * 2);
    for (int k = 0; k < 4; k++) {
        int src = k == 0 ? 3 : k - 1;
        for (int y = 0; y < 200; y++)
            for (int x = 0; x < 300; x++) buf[y * 300 + x] = band_value(src, x, y, 300, 200);
        GDALRasterBandH band = GDALGetRasterBand(ds, k + 1);
        ck_assert_int_eq(GDALRasterIO(band, GF_Write, 0, 0, 300, 200, buf, 300, 200, GDT_UInt16,
                                      0, 0), CE_None);
        GDALSetRasterNoDataValue(band, 0);
        GDALSetDescription(band, s2desc[k]);
    }
    free(buf);
    GDALClose(ds);
    char s2file[4200];
    snprintf(s2file, sizeof s2file, "%s", png);
    const char *s2one[] = {s2file};

    struct { const char *const *in; int n; const char *rgb[3]; const char *out; } cases[] = {
        {stack, 2, {NULL, NULL, NULL}, "stack.png"},
        {stack, 2, {"3", "2", "1"}, "stack_numbers.png"},
        {stack, 2, {"RED", "Green", "blue"}, "stack_names.png"},
        {s2, 4, {NULL, NULL, NULL}, "s2_stems.png"},
        {s2one, 1, {NULL, NULL, NULL}, "s2_desc.png"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        p = params((const char **)cases[c].in, cases[c].n, mask, 100);
        memcpy(p.rgb, cases[c].rgb, sizeof p.rgb);
        snprintf(png, sizeof png, "%s/%s", dir, cases[c].out);
        ql_ok(&p, png);
        int gw, gh;
        uint8_t *got = read_png(png, &gw, &gh);
        ck_assert_int_eq(gw, w);
        ck_assert_int_eq(gh, h);
        ck_assert_msg(memcmp(got, want, (size_t)w * h * 4) == 0, "%s differs from the reference",
                      cases[c].out);
        free(got);
    }
    /* the bands were told apart: another choice gives another picture */
    p = params(in, 1, mask, 100);
    p.rgb[0] = "nir", p.rgb[1] = "green", p.rgb[2] = "blue";
    snprintf(png, sizeof png, "%s/false.png", dir);
    ql_ok(&p, png);
    uint8_t *other = read_png(png, &w, &h);
    ck_assert(memcmp(other, want, (size_t)w * h * 4) != 0);
    free(other);
    free(want);
    free(dir);
}
END_TEST

START_TEST(test_grey_fallback)
{
    gseg_init();
    char *dir = tu_tmpdir("grey");
    char scene[4200], mask[4200], png[4200];
    snprintf(scene, sizeof scene, "%s/plain.tif", dir);
    snprintf(mask, sizeof mask, "%s/mask.tif", dir);
    snprintf(png, sizeof png, "%s/ql.png", dir);
    make_scene(scene, 300, 200, 6, 0, NULL); /* no descriptions */
    make_mask(mask, 300, 200, 0);
    const char *in[] = {scene};
    gseg__quicklook_params p = params(in, 1, mask, 150);
    warnings wn = {0, ""};
    CPLPushErrorHandlerEx(keep_warnings, &wn);
    gseg_status st = gseg__quicklook_write(&p, png);
    CPLPopErrorHandler();
    ck_assert_msg(st == GSEG_OK, "%s", gseg_last_error());
    ck_assert_int_eq(wn.count, 1);
    ck_assert_msg(strstr(wn.last, "band 1") && strstr(wn.last, "--quicklook-bands") &&
                      strstr(wn.last, scene) && !strchr(wn.last, '\n'),
                  "warning: %s", wn.last);
    int w, h;
    uint8_t *img = read_png(png, &w, &h);
    ck_assert_int_eq(w, 150);
    ck_assert_int_eq(h, 100);
    /* grey: band 1 in all three channels, outlines aside */
    uint8_t *base = expected_base(scene, (const int[]){1, 1, 1}, w, h);
    uint8_t *m = sample_mask(mask, w, h);
    check_outlines(img, base, m, w, h);
    for (size_t i = 0; i < (size_t)w * h; i++)
        ck_assert(base[4 * i] == base[4 * i + 1] && base[4 * i] == base[4 * i + 2]);
    /* one band given alone is shown grey too, without a warning */
    p.rgb[0] = "1";
    snprintf(png, sizeof png, "%s/one.png", dir);
    ql_ok(&p, png);
    uint8_t *one = read_png(png, &w, &h);
    ck_assert(memcmp(one, img, (size_t)w * h * 4) == 0);
    ck_listing(dir, "mask.tif one.png plain.tif ql.png");
    free(one);
    free(m);
    free(base);
    free(img);
    free(dir);
}
END_TEST

/* Asserts the call fails with st, a one-line message holding each of the
 * strings in has (NULL-terminated), and no PNG. */
static void ck_refused(const gseg__quicklook_params *p, const char *png, gseg_status want,
                       const char *const *has)
{
    CPLPushErrorHandler(CPLQuietErrorHandler);
    gseg_status st = gseg__quicklook_write(p, png);
    CPLPopErrorHandler();
    const char *msg = gseg_last_error();
    ck_assert_msg(st == want, "status %s (%s), expected %s", gseg_status_str(st), msg,
                  gseg_status_str(want));
    ck_assert_msg(*msg && !strchr(msg, '\n'), "message: '%s'", msg);
    for (; *has; has++) ck_assert_msg(strstr(msg, *has), "'%s' not in '%s'", *has, msg);
    FILE *f = fopen(png, "rb");
    ck_assert_msg(f == NULL, "%s exists after a failure", png);
}

START_TEST(test_refusals_leave_nothing)
{
    gseg_init();
    char *dir = tu_tmpdir("refuse");
    char scene[4200], mask[4200], small[4200], png[4200], missing[4200], nodir[4200];
    snprintf(scene, sizeof scene, "%s/scene.tif", dir);
    snprintf(mask, sizeof mask, "%s/mask.tif", dir);
    snprintf(small, sizeof small, "%s/small.tif", dir);
    snprintf(png, sizeof png, "%s/ql.png", dir);
    snprintf(missing, sizeof missing, "%s/nomask.tif", dir);
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/ql.png", dir);
    make_scene(scene, 300, 200, 6, 0, six_names);
    make_mask(mask, 300, 200, 0);
    make_mask(small, 299, 200, 0);
    const char *in[] = {scene};

    gseg__quicklook_params p = params(in, 1, small, 100);
    ck_refused(&p, png, GSEG_ERR_ARG, (const char *[]){small, scene, "299x200", "300x200", NULL});
    p.mask = missing;
    ck_refused(&p, png, GSEG_ERR_IO, (const char *[]){missing, NULL});
    p.mask = mask;
    p.rgb[0] = "red", p.rgb[1] = "green", p.rgb[2] = "purple";
    ck_refused(&p, png, GSEG_ERR_ARG, (const char *[]){scene, "purple", NULL});
    p.rgb[0] = "9", p.rgb[1] = "2", p.rgb[2] = "1";
    ck_refused(&p, png, GSEG_ERR_ARG, (const char *[]){scene, "9", NULL});
    p.rgb[2] = NULL;
    ck_refused(&p, png, GSEG_ERR_ARG, (const char *[]){"three bands", NULL});
    memset(p.rgb, 0, sizeof p.rgb);
    const char *nosuch[] = {missing};
    p.scene = nosuch;
    ck_refused(&p, png, GSEG_ERR_IO, (const char *[]){missing, NULL});
    p.scene = in;
    ck_refused(&p, nodir, GSEG_ERR_IO, (const char *[]){nodir, NULL});
    ck_listing(dir, "mask.tif scene.tif small.tif");

    /* success replaces an old file and its stale sidecar, leaving only the PNG */
    tu_system("echo old > '%s' && echo '<PAMDataset/>' > '%s.aux.xml'", png, png);
    ql_ok(&p, png);
    ck_listing(dir, "mask.tif ql.png scene.tif small.tif");
    int w, h;
    free(read_png(png, &w, &h));
    ck_assert_int_eq(w, 100);
    /* a failure leaves the previous PNG as it was */
    p.mask = small;
    gseg_status st = gseg__quicklook_write(&p, png);
    ck_assert_int_eq(st, GSEG_ERR_ARG);
    ck_listing(dir, "mask.tif ql.png scene.tif small.tif");
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quicklook");
    TCase *tc = tcase_create("quicklook");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_downsampled);
    tcase_add_test(tc, test_north_up);
    tcase_add_test(tc, test_full_size_default);
    tcase_add_test(tc, test_tall_in_strips);
    tcase_add_test(tc, test_mask_overviews);
    tcase_add_test(tc, test_sparse_rows);
    tcase_add_test(tc, test_stacks_and_band_names);
    tcase_add_test(tc, test_grey_fallback);
    tcase_add_test(tc, test_refusals_leave_nothing);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
