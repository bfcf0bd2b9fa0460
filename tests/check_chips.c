/* check_chips.c — gseg-tile: chip names, counts and index rows; chip pixels
 * and georeferencing against the source windows read by GDAL; rotated
 * geotransforms; nodata chips skipped; .zip archives read through /vsizip/
 * and accepted by gseg-train's discovery; atomic output; usage errors;
 * labels burnt from outlines; the scene-level validation split (a source's
 * val/, or --val-fraction/--seed). Needs no libtorch. */
#include "testutil.h"

#include "internal.h"
#include "train.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

static char *dir;

static const char *path(const char *name) { return tu_path(dir, name); }

static void setup(void)
{
    gseg_init();
    free(dir);
    dir = tu_tmpdir("check_chips");
}

/* root/<split>/images/<name>.tif (+ masks/, + outlines root/<name>.gpkg). */
static void make_scene(const char *root, const char *split, const char *name, int w, int h,
                       unsigned long seed, int masks)
{
    ck_assert_int_eq(tu_system("mkdir -p %s/%s/images %s/%s/masks", root, split, root, split), 0);
    gseg_synth_params sp = gseg_synth_params_default();
    sp.width = w;
    sp.height = h;
    sp.seed = seed;
    char img[1100], mask[1100], gpkg[1100];
    snprintf(img, sizeof img, "%s/%s/images/%s.tif", root, split, name);
    snprintf(mask, sizeof mask, "%s/%s/masks/%s.tif", root, split, name);
    snprintf(gpkg, sizeof gpkg, "%s/%s.gpkg", root, name);
    ck_gseg(gseg_synth_scene(&sp, img, mask, masks ? NULL : gpkg));
    if (!masks) ck_assert_int_eq(tu_system("mv %s %s/%s.truth.tif", mask, root, name), 0);
}

/* Runs gseg_tile_tool_main in-process on a printf-formatted command line. */
static int tile(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char **argv = CSLTokenizeString2(cmd, " ", CSLT_HONOURSTRINGS);
    argv = CSLInsertString(argv, 0, "gseg-tile");
    int rc = gseg_tile_tool_main(CSLCount(argv), argv);
    CSLDestroy(argv);
    return rc;
}

/* The index as rows of fields (row 0 is the header). */
static char ***load_index(const char *p, int *nrows)
{
    char **lines = CSLLoad(p);
    ck_assert_msg(lines != NULL, "%s: cannot read", p);
    int n = CSLCount(lines);
    char ***rows = calloc((size_t)n + 1, sizeof *rows);
    for (int i = 0; i < n; i++)
        rows[i] = CSLTokenizeString2(lines[i], ",", CSLT_HONOURSTRINGS | CSLT_ALLOWEMPTYTOKENS);
    CSLDestroy(lines);
    *nrows = n;
    return rows;
}

static void free_index(char ***rows)
{
    for (int i = 0; rows[i]; i++) CSLDestroy(rows[i]);
    free(rows);
}

static int col(char ***rows, const char *name)
{
    int c = CSLFindString(rows[0], name);
    ck_assert_msg(c >= 0, "index has no column %s", name);
    return c;
}

/* Row of chip `name`, or -1. */
static int row_of(char ***rows, int n, const char *name)
{
    for (int i = 1; i < n; i++)
        if (!strcmp(rows[i][0], name)) return i;
    return -1;
}

/* Every band of window (x, y, w, h) of p in its own type, as GDAL reads it. */
static void *read_win(const char *p, int x, int y, int w, int h, int *nb, size_t *bytes)
{
    GDALDatasetH ds = GDALOpen(p, GA_ReadOnly);
    ck_assert_msg(ds != NULL, "%s: cannot open", p);
    *nb = GDALGetRasterCount(ds);
    GDALDataType t = GDALGetRasterDataType(GDALGetRasterBand(ds, 1));
    *bytes = (size_t)w * h * *nb * GDALGetDataTypeSizeBytes(t);
    void *buf = malloc(*bytes);
    ck_assert_int_eq(GDALDatasetRasterIO(ds, GF_Read, x, y, w, h, buf, w, h, t, *nb, NULL, 0, 0,
                                         0), CE_None);
    GDALClose(ds);
    return buf;
}

/* Chip `chip` holds exactly window (x, y) of `src`: pixels, type, size,
 * band descriptions, nodata, CRS, and GDAL's geotransform of that pixel. */
static void same_window(const char *chip, const char *src, int x, int y, int w, int h)
{
    GDALDatasetH c = GDALOpen(chip, GA_ReadOnly), s = GDALOpen(src, GA_ReadOnly);
    ck_assert_msg(c && s, "cannot open %s or %s", chip, src);
    ck_assert_int_eq(GDALGetRasterXSize(c), w);
    ck_assert_int_eq(GDALGetRasterYSize(c), h);
    ck_assert_int_eq(GDALGetRasterCount(c), GDALGetRasterCount(s));
    for (int b = 1; b <= GDALGetRasterCount(s); b++) {
        GDALRasterBandH cb = GDALGetRasterBand(c, b), sb = GDALGetRasterBand(s, b);
        ck_assert_int_eq(GDALGetRasterDataType(cb), GDALGetRasterDataType(sb));
        ck_assert_str_eq(GDALGetDescription(cb), GDALGetDescription(sb));
        int hc = 0, hs = 0;
        double nc = GDALGetRasterNoDataValue(cb, &hc), ns = GDALGetRasterNoDataValue(sb, &hs);
        ck_assert_int_eq(hc, hs);
        if (hs) ck_assert(nc == ns);
    }
    double gc[6], gs[6], ox, oy;
    ck_assert_int_eq(GDALGetGeoTransform(c, gc), CE_None);
    ck_assert_int_eq(GDALGetGeoTransform(s, gs), CE_None);
    GDALApplyGeoTransform(gs, x, y, &ox, &oy);
    ck_assert_msg(fabs(gc[0] - ox) < 1e-6 && fabs(gc[3] - oy) < 1e-6,
                  "%s: origin %.9g %.9g, expected %.9g %.9g", chip, gc[0], gc[3], ox, oy);
    for (int k = 1; k < 6; k++)
        if (k != 3) ck_assert_msg(gc[k] == gs[k], "%s: gt[%d] %g vs %g", chip, k, gc[k], gs[k]);
    OGRSpatialReferenceH rc = GDALGetSpatialRef(c), rs = GDALGetSpatialRef(s);
    ck_assert(rc && rs && OSRIsSame(rc, rs));
    GDALClose(c);
    GDALClose(s);
    int n1, n2;
    size_t b1, b2;
    void *a = read_win(chip, 0, 0, w, h, &n1, &b1), *b = read_win(src, x, y, w, h, &n2, &b2);
    ck_assert(b1 == b2 && memcmp(a, b, b1) == 0);
    free(a);
    free(b);
}

/* Chip bands 1..n equal source bands nums[0..n) over window (x, y). */
static void same_window_bands(const char *chip, const char *src, int x, int y, const int *nums, int n)
{
    GDALDatasetH c = GDALOpen(chip, GA_ReadOnly), s = GDALOpen(src, GA_ReadOnly);
    ck_assert(c && s);
    int w = GDALGetRasterXSize(c), h = GDALGetRasterYSize(c);
    double *a = malloc((size_t)w * h * sizeof *a), *b = malloc((size_t)w * h * sizeof *b);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(c, i + 1), GF_Read, 0, 0, w, h, a, w, h,
                                      GDT_Float64, 0, 0), CE_None);
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(s, nums[i]), GF_Read, x, y, w, h, b, w, h,
                                      GDT_Float64, 0, 0), CE_None);
        ck_assert(memcmp(a, b, (size_t)w * h * sizeof *a) == 0);
    }
    free(a);
    free(b);
    GDALClose(c);
    GDALClose(s);
}

/* Glacier share of a mask chip over its pixels other than nodata. */
static double glacier_share(const char *mask)
{
    int nb;
    size_t n;
    GDALDatasetH ds = GDALOpen(mask, GA_ReadOnly);
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds), has = 0;
    double nd = GDALGetRasterNoDataValue(GDALGetRasterBand(ds, 1), &has);
    GDALClose(ds);
    uint8_t *m = read_win(mask, 0, 0, w, h, &nb, &n);
    long long lab = 0, g = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        if (has && m[i] == nd) continue;
        lab++;
        g += m[i] > 0;
    }
    free(m);
    return lab ? (double)g / (double)lab : 0;
}

START_TEST(test_chips_of_a_scene)
{
    char root[1100];
    snprintf(root, sizeof root, "%s", path("ds"));
    make_scene(root, "train", "alpha", 300, 200, 3, 1);
    ck_assert_int_eq(tile("--data %s -o %s --tile 128 -q", root, path("chips")), 0);
    /* 300 x 200 in 128-px chips: x 0, 128, 172 (the last shifted inward),
     * y 0, 72. */
    const int xs[] = {0, 128, 172}, ys[] = {0, 72};
    int n;
    char ***rows = load_index(path("chips/index.csv"), &n);
    ck_assert_int_eq(n, 1 + 6);
    ck_assert_str_eq(CSLGetField(rows[0], 0), "chip");
    ck_assert_int_eq(CSLCount(rows[0]), 16); /* binary masks: no class columns */
    char src[1100], srcm[1100];
    snprintf(src, sizeof src, "%s", path("ds/train/images/alpha.tif"));
    snprintf(srcm, sizeof srcm, "%s", path("ds/train/masks/alpha.tif"));
    GDALDatasetH s = GDALOpen(src, GA_ReadOnly);
    double gs[6];
    GDALGetGeoTransform(s, gs);
    GDALClose(s);
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 3; i++) {
            char name[64], img[1100], msk[1100];
            snprintf(name, sizeof name, "alpha_x%d_y%d", xs[i], ys[j]);
            snprintf(img, sizeof img, "%s/chips/train/images/%s.tif", dir, name);
            snprintf(msk, sizeof msk, "%s/chips/train/masks/%s.tif", dir, name);
            same_window(img, src, xs[i], ys[j], 128, 128);
            same_window(msk, srcm, xs[i], ys[j], 128, 128);
            int r = row_of(rows, n, name);
            ck_assert_msg(r > 0, "no index row for %s", name);
            ck_assert_str_eq(rows[r][col(rows, "split")], "train");
            ck_assert_str_eq(rows[r][col(rows, "scene")], "alpha.tif");
            ck_assert_int_eq(atoi(rows[r][col(rows, "x")]), xs[i]);
            ck_assert_int_eq(atoi(rows[r][col(rows, "y")]), ys[j]);
            ck_assert_int_eq(atoi(rows[r][col(rows, "width")]), 128);
            ck_assert_str_eq(rows[r][col(rows, "crs")], "EPSG:32643");
            ck_assert(fabs(atof(rows[r][col(rows, "valid_fraction")]) - 1) < 1e-9);
            double ox, oy;
            GDALApplyGeoTransform(gs, xs[i], ys[j], &ox, &oy);
            ck_assert(fabs(atof(rows[r][col(rows, "gt0")]) - ox) < 1e-6);
            ck_assert(fabs(atof(rows[r][col(rows, "gt3")]) - oy) < 1e-6);
            ck_assert(atof(rows[r][col(rows, "gt5")]) == gs[5]);
            double gf = atof(rows[r][col(rows, "glacier_fraction")]);
            ck_assert_msg(fabs(gf - glacier_share(msk)) < 2e-6, "%s: glacier %g vs %g", name, gf,
                          glacier_share(msk));
        }
    /* The synthetic scene holds glacier: some chip says so. */
    double gmax = 0;
    for (int r = 1; r < n; r++) gmax = fmax(gmax, atof(rows[r][col(rows, "glacier_fraction")]));
    ck_assert(gmax > 0);
    free_index(rows);
    ck_assert_int_eq(tu_system("test ! -e %s.partial", path("chips")), 0);

    /* Overlap: stride 64 gives x 0, 64, 128, 172 and y 0, 64, 72. */
    ck_assert_int_eq(tile("--data %s -o %s --tile 128 --stride 64 -q", root, path("ov")), 0);
    rows = load_index(path("ov/index.csv"), &n);
    ck_assert_int_eq(n, 1 + 4 * 3);
    ck_assert_int_gt(row_of(rows, n, "alpha_x64_y64"), 0);
    free_index(rows);
    same_window(path("ov/train/images/alpha_x64_y64.tif"), src, 64, 64, 128, 128);

    /* A scene smaller than the tile: one chip, the whole scene. */
    ck_assert_int_eq(tile("--data %s -o %s --tile 512 -q", root, path("big")), 0);
    same_window(path("big/train/images/alpha_x0_y0.tif"), src, 0, 0, 300, 200);
    /* Default compression: DEFLATE, with the integer predictor on images. */
    GDALDatasetH c = GDALOpen(path("chips/train/images/alpha_x0_y0.tif"), GA_ReadOnly);
    ck_assert_str_eq(GDALGetMetadataItem(c, "COMPRESSION", "IMAGE_STRUCTURE"), "DEFLATE");
    ck_assert_str_eq(GDALGetMetadataItem(c, "PREDICTOR", "IMAGE_STRUCTURE"), "2");
    GDALClose(c);
    c = GDALOpen(path("chips/train/masks/alpha_x0_y0.tif"), GA_ReadOnly);
    ck_assert_str_eq(GDALGetMetadataItem(c, "COMPRESSION", "IMAGE_STRUCTURE"), "DEFLATE");
    ck_assert_ptr_null(GDALGetMetadataItem(c, "PREDICTOR", "IMAGE_STRUCTURE"));
    GDALClose(c);
    /* --bands keeps those bands, in that order; -co replaces a default. */
    ck_assert_int_eq(tile("--data %s -o %s --tile 128 --bands swir1,2 -co COMPRESS=LZW -q", root,
                          path("sel")), 0);
    c = GDALOpen(path("sel/train/images/alpha_x0_y0.tif"), GA_ReadOnly);
    ck_assert_int_eq(GDALGetRasterCount(c), 2);
    ck_assert_str_eq(GDALGetDescription(GDALGetRasterBand(c, 1)), "swir1");
    ck_assert_str_eq(GDALGetDescription(GDALGetRasterBand(c, 2)), "green");
    ck_assert_str_eq(GDALGetMetadataItem(c, "COMPRESSION", "IMAGE_STRUCTURE"), "LZW");
    GDALClose(c);
    same_window_bands(path("sel/train/images/alpha_x128_y72.tif"), src, 128, 72, (int[]){5, 2}, 2);
}
END_TEST

/* Sets the geotransform of a raster in place. */
static void set_gt(const char *p, const double gt[6])
{
    GDALDatasetH ds = GDALOpen(p, GA_Update);
    ck_assert_ptr_nonnull(ds);
    ck_assert_int_eq(GDALSetGeoTransform(ds, (double *)gt), CE_None);
    GDALClose(ds);
}

START_TEST(test_rotated_geotransform)
{
    char root[1100];
    snprintf(root, sizeof root, "%s", path("rot"));
    make_scene(root, "train", "r", 200, 160, 4, 1);
    const double gt[6] = {500000, 30, 7.5, 4000000, 5.25, -30};
    set_gt(path("rot/train/images/r.tif"), gt);
    set_gt(path("rot/train/masks/r.tif"), gt);
    ck_assert_int_eq(tile("--data %s -o %s --tile 96 -q", root, path("rchips")), 0);
    /* x 0, 96, 104; y 0, 64 */
    same_window(path("rchips/train/images/r_x104_y64.tif"), path("rot/train/images/r.tif"), 104,
                64, 96, 96);
    GDALDatasetH c = GDALOpen(path("rchips/train/images/r_x104_y64.tif"), GA_ReadOnly);
    double g[6];
    GDALGetGeoTransform(c, g);
    GDALClose(c);
    ck_assert(g[2] == 7.5 && g[4] == 5.25);
    int n;
    char ***rows = load_index(path("rchips/index.csv"), &n);
    int r = row_of(rows, n, "r_x104_y64");
    ck_assert_int_gt(r, 0);
    ck_assert(atof(rows[r][col(rows, "gt2")]) == 7.5 && atof(rows[r][col(rows, "gt4")]) == 5.25);
    ck_assert(fabs(atof(rows[r][col(rows, "gt0")]) - g[0]) < 1e-6);
    ck_assert(fabs(atof(rows[r][col(rows, "gt3")]) - g[3]) < 1e-6);
    free_index(rows);
}
END_TEST

/* Writes value v into every band of window (x, y, w, h). */
static void fill(const char *p, int x, int y, int w, int h, int v)
{
    GDALDatasetH ds = GDALOpen(p, GA_Update);
    ck_assert_ptr_nonnull(ds);
    for (int b = 1; b <= GDALGetRasterCount(ds); b++)
        for (int yy = y; yy < y + h; yy++)
            for (int xx = x; xx < x + w; xx++) {
                uint16_t u = (uint16_t)v;
                ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, xx, yy, 1, 1, &u,
                                              1, 1, GDT_UInt16, 0, 0), CE_None);
            }
    GDALClose(ds);
}

START_TEST(test_nodata_chips_skipped)
{
    char root[1100];
    snprintf(root, sizeof root, "%s", path("nd"));
    make_scene(root, "train", "n", 192, 64, 5, 1);
    /* chip x0: no data; chip x64: one pixel of data; chip x128: full. */
    char img[1100];
    snprintf(img, sizeof img, "%s", path("nd/train/images/n.tif"));
    GDALDatasetH ds = GDALOpen(img, GA_Update);
    uint16_t *zero = calloc(128 * 64, sizeof *zero);
    for (int b = 1; b <= GDALGetRasterCount(ds); b++)
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, 0, 0, 128, 64, zero, 128,
                                      64, GDT_UInt16, 0, 0), CE_None);
    GDALClose(ds);
    free(zero);
    fill(img, 70, 9, 1, 1, 1234);
    ck_assert_int_eq(tile("--data %s -o %s --tile 64 -q", root, path("c1")), 0);
    int n;
    char ***rows = load_index(path("c1/index.csv"), &n);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(rows[1][0], "n_x128_y0");
    free_index(rows);
    ck_assert_int_eq(tu_system("test ! -e %s/c1/train/images/n_x0_y0.tif", dir), 0);
    /* --min-valid 0 keeps the one-pixel chip, never the empty one. */
    ck_assert_int_eq(tile("--data %s -o %s --tile 64 --min-valid 0 -q", root, path("c2")), 0);
    rows = load_index(path("c2/index.csv"), &n);
    ck_assert_int_eq(n, 3);
    int r = row_of(rows, n, "n_x64_y0");
    ck_assert_int_gt(r, 0);
    ck_assert(fabs(atof(rows[r][col(rows, "valid_fraction")]) - 1.0 / 4096) < 1e-6);
    ck_assert_int_lt(row_of(rows, n, "n_x0_y0"), 0);
    free_index(rows);
    /* Nothing left: a failure, and no output. */
    ds = GDALOpen(img, GA_Update);
    zero = calloc(192 * 64, sizeof *zero);
    for (int b = 1; b <= GDALGetRasterCount(ds); b++)
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, 0, 0, 192, 64, zero, 192,
                                      64, GDT_UInt16, 0, 0), CE_None);
    GDALClose(ds);
    free(zero);
    ck_assert_int_eq(tile("--data %s -o %s --tile 64 -q", root, path("c3")), 1);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "no training chip"));
    ck_assert_int_eq(tu_system("test ! -e %s/c3 && test ! -e %s/c3.partial", dir, dir), 0);
}
END_TEST

START_TEST(test_zip_archive_is_a_dataset)
{
    char root[1100];
    snprintf(root, sizeof root, "%s", path("z"));
    make_scene(root, "train", "a", 160, 160, 6, 1);
    make_scene(root, "train", "b", 130, 140, 7, 1);
    make_scene(root, "val", "c", 128, 128, 8, 1);
    ck_assert_int_eq(tile("--data %s -o %s --tile 64 -q", root, path("folder")), 0);
    ck_assert_int_eq(tile("--data %s -o %s --tile 64 -q", root, path("chips.zip")), 0);
    /* No temporary file left beside the archive. */
    ck_assert_int_eq(tu_system("ls -a %s | grep -q gseg-tmp", dir), 1);
    char z[1100];
    snprintf(z, sizeof z, "/vsizip/%s", path("chips.zip"));
    int n, nf;
    char ***rows = load_index(CPLSPrintf("%s/index.csv", z), &n);
    char ***frows = load_index(path("folder/index.csv"), &nf);
    /* a: 3 x 3, b: 3 x 3, c: 2 x 2 */
    ck_assert_int_eq(n, 1 + 9 + 9 + 4);
    ck_assert_int_eq(nf, n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < CSLCount(frows[i]); k++) ck_assert_str_eq(rows[i][k], frows[i][k]);
    int r = row_of(rows, n, "c_x64_y64");
    ck_assert_str_eq(rows[r][col(rows, "split")], "val");
    free_index(rows);
    free_index(frows);
    same_window(CPLSPrintf("%s/val/images/c_x64_y64.tif", z), path("z/val/images/c.tif"), 64, 64,
                64, 64);
    same_window(CPLSPrintf("%s/train/masks/b_x66_y76.tif", z), path("z/train/masks/b.tif"), 66,
                76, 64, 64);
    /* gseg-train's discovery and checks accept it, plain path or /vsizip/. */
    gseg__tdata d;
    ck_gseg(gseg__tdata_discover(&d, path("chips.zip"), 1));
    ck_assert_int_eq(d.n, 22);
    ck_assert_int_eq(d.has_val, 1);
    int nval = 0;
    for (int i = 0; i < d.n; i++) nval += d.scenes[i].val;
    ck_assert_int_eq(nval, 4);
    int nb;
    char **names = NULL;
    ck_gseg(gseg__tdata_prepare(&d, NULL, 2, &nb, &names));
    ck_assert_int_eq(nb, 7);
    ck_assert_str_eq(names[4], "swir1");
    for (int i = 0; names[i]; i++) free(names[i]);
    free(names);
    gseg__tdata_free(&d);
    ck_gseg(gseg__tdata_discover(&d, path("folder"), 1));
    ck_assert_int_eq(d.n, 22);
    gseg__tdata_free(&d);
}
END_TEST

START_TEST(test_atomic_output)
{
    char root[1100];
    snprintf(root, sizeof root, "%s", path("at"));
    make_scene(root, "train", "a", 128, 128, 9, 1);
    make_scene(root, "train", "b", 128, 128, 10, 1);
    /* An existing output is refused and left alone; --overwrite replaces it. */
    ck_assert_int_eq(tu_system("mkdir -p %s/out && touch %s/out/keep %s/out.zip", dir, dir, dir), 0);
    ck_assert_int_eq(tile("--data %s -o %s --tile 64 -q", root, path("out")), 1);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "already exists"));
    ck_assert_int_eq(tile("--data %s -o %s --tile 64 -q", root, path("out.zip")), 1);
    ck_assert_int_eq(tu_system("test -e %s/out/keep && test ! -s %s/out.zip", dir, dir), 0);
    ck_assert_int_eq(tile("--data %s -o %s --tile 64 --overwrite -q", root, path("out")), 0);
    ck_assert_int_eq(tile("--data %s -o %s/ --tile 64 --overwrite -q", root, path("out.zip")), 0);
    ck_assert_int_eq(tu_system("test ! -e %s/out/keep && test -s %s/out/index.csv && test -s %s/out.zip",
                               dir, dir, dir), 0);
    ck_assert_int_eq(tu_system("ls -a %s | grep -q 'old-\\|partial\\|gseg-tmp'", dir), 1);
    /* A failure half-way (scene b unreadable once its chips are cut): no
     * output, no staging left; a stale OUT.partial is cleared. */
    ck_assert_int_eq(tu_system("cd %s/at/train/images && gdal_translate -q -co TILED=YES -co BLOCKXSIZE=16 "
                               "-co BLOCKYSIZE=16 b.tif b2.tif && mv b2.tif b.tif && "
                               "/usr/bin/python3 -c \"import os; f='b.tif'; os.truncate(f, os.path.getsize(f) * 2 // 3)\"",
                               dir), 0);
    ck_assert_int_eq(tu_system("mkdir -p %s/new.partial/train", dir), 0);
    for (int zip = 0; zip < 2; zip++) {
        const char *out = path(zip ? "new.zip" : "new");
        ck_assert_int_eq(tile("--data %s -o %s --tile 64 -q", root, out), 1);
        ck_assert_msg(strstr(gseg_last_error(), "b.tif") != NULL, "%s", gseg_last_error());
        ck_assert_int_eq(tu_system("test ! -e %s && test ! -e %s.partial", out, out), 0);
    }
    ck_assert_int_eq(tu_system("ls -a %s | grep -q 'gseg-tmp'", dir), 1);
}
END_TEST

START_TEST(test_command_line)
{
    char root[1100];
    snprintf(root, sizeof root, "%s", path("cl"));
    make_scene(root, "train", "a", 64, 64, 12, 1);
    const char *exe = tu_build("src/tools/gseg-tile");
    char e[1100];
    snprintf(e, sizeof e, "%s", exe);
    const struct {
        const char *args;
        int rc;
        const char *msg;
    } cases[] = {
        {"--data DS -o OUT --bogus", 2, "unknown option --bogus"},
        {"--data DS", 2, "-o OUT"},
        {"--data DS -o OUT --tile", 2, "--tile needs a value"},
        {"--data DS -o OUT --tile 4", 2, "--tile: '4'"},
        {"--data DS -o OUT --tile 64 --stride 65", 2, "--stride 65"},
        {"--data DS -o OUT --min-valid 1.5", 2, "--min-valid: '1.5'"},
        {"--data DS -o OUT --val-fraction 1", 2, "--val-fraction: '1'"},
        {"--data DS -o OUT --val-fraction", 2, "--val-fraction needs a value"},
        {"--data DS -o OUT --seed -1", 2, "--seed: '-1'"},
        {"--data DS -o OUT -co COMPRESS", 2, "KEY=VALUE"},
        {"--data DS -o OUT --label-field class", 2, "--label-field needs --labels"},
        {"--data DS -o OUT --bands nir9", 2, "no band named 'nir9'"},
        {"--data DS/nowhere -o OUT", 1, "nowhere"},
        {"--data DS -o OUT/missing/deep", 1, "no such folder"},
        {"--data DS -o OUT --labels DS/none.gpkg", 1, "none.gpkg"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[1024] = "", *o = args;
        for (const char *p = cases[i].args; *p; p++) {
            if (!strncmp(p, "DS", 2)) o += sprintf(o, "%s", root), p++;
            else if (!strncmp(p, "OUT", 3)) o += sprintf(o, "%s", path("o")), p += 2;
            else *o++ = *p, *o = '\0';
        }
        /* in-process (spawning the tool costs its libraries' load time) */
        fflush(stderr);
        int saved = dup(2), fd = open(path("err"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        close(fd);
        CPLPushErrorHandler(CPLQuietErrorHandler); /* as the tool's own handler */
        int rc = tile("-q %s", args);
        CPLPopErrorHandler();
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        ck_assert_msg(rc == cases[i].rc, "%s: exit %d, expected %d", args, rc, cases[i].rc);
        char **lines = CSLLoad(path("err"));
        ck_assert_msg(lines && strncmp(lines[0], "gseg-tile: ", 11) == 0 &&
                          strstr(lines[0], cases[i].msg),
                      "%s: stderr '%s' lacks '%s'", args, lines ? lines[0] : "", cases[i].msg);
        /* one line; a usage error may add the --help hint */
        ck_assert_int_le(CSLCount(lines), cases[i].rc == 2 ? 2 : 1);
        CSLDestroy(lines);
        ck_assert_int_eq(tu_system("test ! -e %s", path("o")), 0);
    }
    /* The executable: exit codes, --help, --version. */
    ck_assert_int_eq(tu_system("%s --data %s --tile 3 2>/dev/null", e, root), 2);
    ck_assert_int_eq(tu_system("%s --data %s/nowhere -o %s 2>/dev/null", e, root, path("o")), 1);
    ck_assert_int_eq(tu_system("%s --help | grep -q -- --min-valid", e), 0);
    ck_assert_int_eq(tu_system("%s --help | grep -q -- --val-fraction", e), 0);
    ck_assert_int_eq(tu_system("%s --version | grep -q gseg-tile", e), 0);
    /* Progress on stderr as GDAL tools show it, a summary on stdout. */
    ck_assert_int_eq(tu_system("%s --data %s -o %s --tile 32 2>%s >%s", e, root, path("p"),
                               path("prog"), path("sum")), 0);
    ck_assert_int_eq(tu_system("grep -q '^0\\.\\.\\.10\\.\\.\\.20.*100 - done' %s", path("prog")), 0);
    ck_assert_int_eq(tu_system("grep -q '4 chips (4 train, 0 val)' %s", path("sum")), 0);
    /* Two scenes of a split with one stem would give clashing chip names. */
    ck_assert_int_eq(tu_system("cd %s/train/images && gdal_translate -q -of VRT a.tif a.vrt", root),
                     0);
    ck_assert_int_eq(tile("--data %s -o %s -q", root, path("dup")), 1);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "same file stem"));
    /* A name with a comma is quoted in the index. */
    ck_assert_int_eq(tu_system("cd %s/train && mv images/a.vrt images/b,c.vrt && "
                               "cp masks/a.tif 'masks/b,c.tif'", root), 0);
    ck_assert_int_eq(tile("--data %s -o %s --tile 64 --val-fraction 0 -q", root, path("q")), 0);
    int n;
    char ***rows = load_index(path("q/index.csv"), &n);
    ck_assert_int_eq(n, 3);
    int r = row_of(rows, n, "b,c_x0_y0");
    ck_assert_int_gt(r, 0);
    ck_assert_str_eq(rows[r][col(rows, "scene")], "b,c.vrt");
    ck_assert_str_eq(rows[r][col(rows, "crs")], "EPSG:32643");
    free_index(rows);
    ck_assert_int_eq(tu_system("grep -q '^\"b,c_x0_y0\",train,\"b,c.vrt\",0,0,64' %s",
                               path("q/index.csv")), 0);
}
END_TEST

START_TEST(test_classes_columns)
{
    char root[1100];
    snprintf(root, sizeof root, "%s", path("k"));
    make_scene(root, "train", "m", 128, 64, 13, 1);
    /* class 2 on a 10 x 8 block of chip x64; 255 (not labelled) on 4 px */
    GDALDatasetH ds = GDALOpen(path("k/train/masks/m.tif"), GA_Update);
    uint8_t two[80], nd[4] = {255, 255, 255, 255};
    memset(two, 2, sizeof two);
    GDALRasterBandH b = GDALGetRasterBand(ds, 1);
    ck_assert_int_eq(GDALRasterIO(b, GF_Write, 70, 3, 10, 8, two, 10, 8, GDT_Byte, 0, 0), CE_None);
    ck_assert_int_eq(GDALRasterIO(b, GF_Write, 100, 50, 4, 1, nd, 4, 1, GDT_Byte, 0, 0), CE_None);
    GDALClose(ds);
    ck_assert_int_eq(tile("--data %s -o %s --tile 64 -q", root, path("kc")), 0);
    int n;
    char ***rows = load_index(path("kc/index.csv"), &n);
    ck_assert_int_eq(CSLCount(rows[0]), 18);
    int r = row_of(rows, n, "m_x64_y0");
    /* count class 1 and 2 over the mask chip, 255 left out */
    int nb;
    size_t bytes;
    uint8_t *m = read_win(path("kc/train/masks/m_x64_y0.tif"), 0, 0, 64, 64, &nb, &bytes);
    long long c[3] = {0}, lab = 0;
    for (int i = 0; i < 64 * 64; i++)
        if (m[i] != 255) c[m[i]]++, lab++;
    free(m);
    ck_assert_int_eq(lab, 64 * 64 - 4);
    ck_assert_int_eq(c[2], 80);
    ck_assert(fabs(atof(rows[r][col(rows, "class_2_fraction")]) - (double)c[2] / lab) < 1e-6);
    ck_assert(fabs(atof(rows[r][col(rows, "class_1_fraction")]) - (double)c[1] / lab) < 1e-6);
    ck_assert(fabs(atof(rows[r][col(rows, "glacier_fraction")]) - (double)(c[1] + c[2]) / lab) <
              1e-6);
    free_index(rows);
}
END_TEST

START_TEST(test_labels_from_outlines)
{
    char root[1100];
    snprintf(root, sizeof root, "%s", path("ol"));
    make_scene(root, "train", "s", 256, 192, 2, 0);
    /* No masks/: the outlines of the synthetic scene are burnt instead. */
    ck_assert_int_eq(tu_system("rm -r %s/train/masks", root), 0);
    ck_assert_int_eq(tile("--data %s -o %s --tile 128 --labels %s/s.gpkg -q", root, path("oc"),
                          root), 0);
    int n;
    char ***rows = load_index(path("oc/index.csv"), &n);
    ck_assert_int_eq(n, 1 + 2 * 2);
    free_index(rows);
    /* The masks equal gdal_rasterize's burn of the outlines on the scene's
     * grid (the outlines leave out truth polygons under 0.01 km2). */
    ck_assert_int_eq(tu_system("cd %s && gdal_create -q -if train/images/s.tif -bands 1 -ot Byte "
                               "-burn 0 peer.tif && gdal_rasterize -q -burn 1 -l glaciers s.gpkg peer.tif",
                               root), 0);
    const int xs[] = {0, 128}, ys[] = {0, 64};
    long long diff = 0, glacier = 0;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            int nb;
            size_t b1, b2;
            uint8_t *a = read_win(path(CPLSPrintf("oc/train/masks/s_x%d_y%d.tif", xs[i], ys[j])), 0,
                                  0, 128, 128, &nb, &b1);
            uint8_t *t = read_win(path("ol/peer.tif"), xs[i], ys[j], 128, 128, &nb, &b2);
            for (size_t k = 0; k < b1; k++) diff += a[k] != t[k], glacier += t[k] > 0;
            free(a);
            free(t);
        }
    ck_assert_int_gt(glacier, 0);
    ck_assert_msg(diff == 0, "%lld pixels differ from gdal_rasterize's", diff);
}
END_TEST

/* Runs tile() with stderr (and stdout) sent to files under dir: err, out. */
static int tile_captured(const char *fmt, const char *data, const char *out)
{
    fflush(stdout);
    fflush(stderr);
    int se = dup(2), so = dup(1);
    int fe = open(path("err"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fo = open(path("stdout.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fe, 2);
    dup2(fo, 1);
    close(fe);
    close(fo);
    int rc = tile(fmt, data, out);
    fflush(stdout);
    fflush(stderr);
    dup2(se, 2);
    dup2(so, 1);
    close(se);
    close(so);
    return rc;
}

/* Scenes of the val split in index p, as ",a,b," in index order; checks that
 * no scene has chips in both splits, that every chip lies under its split's
 * folder, and counts the scenes of each split. */
static void split_of(const char *where, char *val, size_t cap, int *ntrain, int *nval)
{
    char out[1200];
    snprintf(out, sizeof out, "%s", where); /* may be a CPLSPrintf buffer */
    int n;
    char ***rows = load_index(CPLSPrintf("%s/index.csv", out), &n);
    int cs = col(rows, "split"), cn = col(rows, "scene");
    char **tr = NULL, **va = NULL;
    for (int i = 1; i < n; i++) {
        const char *sp = rows[i][cs], *sc = rows[i][cn];
        ck_assert(!strcmp(sp, "train") || !strcmp(sp, "val"));
        int is_val = !strcmp(sp, "val");
        if (is_val && CSLFindString(va, sc) < 0) va = CSLAddString(va, sc);
        if (!is_val && CSLFindString(tr, sc) < 0) tr = CSLAddString(tr, sc);
        ck_assert_msg(CSLFindString(is_val ? tr : va, sc) < 0,
                      "scene %s has chips in both splits", sc);
        VSIStatBufL st;
        for (int m = 0; m < 2; m++)
            ck_assert_msg(VSIStatL(CPLSPrintf("%s/%s/%s/%s.tif", out, sp, m ? "masks" : "images",
                                              rows[i][0]), &st) == 0 && st.st_size > 0,
                          "%s: chip %s missing under %s/", out, rows[i][0], sp);
    }
    *ntrain = CSLCount(tr);
    *nval = CSLCount(va);
    snprintf(val, cap, ",");
    for (int i = 0; va && va[i]; i++)
        snprintf(val + strlen(val), cap - strlen(val), "%s,", va[i]);
    CSLDestroy(tr);
    CSLDestroy(va);
    free_index(rows);
}

START_TEST(test_val_split_by_scene)
{
    char root[1100];
    snprintf(root, sizeof root, "%s", path("vs"));
    const char *names[] = {"s1", "s2", "s3", "s4", "s5"};
    for (int i = 0; i < 5; i++) make_scene(root, "train", names[i], 64, 64, 20 + i, 1);
    /* 0.4 of 5 scenes: 2 whole scenes to val/, with every chip of theirs. */
    ck_assert_int_eq(tile_captured("--data %s -o %s --tile 32 --val-fraction 0.4", root,
                                   path("v1")), 0);
    ck_assert_int_eq(tu_system("grep -q 'from 5 scenes, 2 of them to val/' %s",
                               path("stdout.txt")), 0);
    ck_assert_int_eq(tu_system("grep -q 'warning' %s", path("err")), 1);
    char a[256], b[256];
    int ntr, nva;
    split_of(path("v1"), a, sizeof a, &ntr, &nva);
    ck_assert_int_eq(nva, 2);
    ck_assert_int_eq(ntr, 3);
    int n;
    char ***rows = load_index(path("v1/index.csv"), &n);
    ck_assert_int_eq(n, 1 + 5 * 4); /* 2 x 2 chips per scene, none skipped */
    free_index(rows);
    ck_assert_int_eq(tu_system("test $(ls %s/val/images/*.tif | wc -l) -eq 8 && "
                               "test $(ls %s/train/masks/*.tif | wc -l) -eq 12",
                               path("v1"), path("v1")), 0);
    /* gseg-train then sees the archive's val/ and keeps that split. */
    gseg__tdata d;
    ck_gseg(gseg__tdata_discover(&d, path("v1"), 1));
    ck_assert_int_eq(d.has_val, 1);
    int nv = 0;
    for (int i = 0; i < d.n; i++) nv += d.scenes[i].val;
    ck_assert_int_eq(nv, 8);
    gseg__tdata_free(&d);
    /* Same seed (1 is the default), same split, also as a .zip. */
    ck_assert_int_eq(tile("--data %s -o %s --tile 32 --val-fraction 0.4 --seed 1 -q", root,
                          path("v2.zip")), 0);
    split_of(CPLSPrintf("/vsizip/%s", path("v2.zip")), b, sizeof b, &ntr, &nva);
    ck_assert_str_eq(a, b);
    /* Another seed may choose other scenes; some seed does. */
    int differs = 0;
    for (int seed = 2; seed < 12 && !differs; seed++) {
        const char *o = path(CPLSPrintf("v_seed%d", seed));
        ck_assert_int_eq(tile("--data %s -o %s --tile 32 --val-fraction 0.4 --seed %d -q", root, o,
                              seed), 0);
        split_of(o, b, sizeof b, &ntr, &nva);
        ck_assert_int_eq(nva, 2);
        differs = strcmp(a, b) != 0;
        /* and it is reproducible */
        ck_assert_int_eq(tile("--data %s -o %s --tile 32 --val-fraction 0.4 --seed %d -q "
                              "--overwrite", root, o, seed), 0);
        char c[256];
        split_of(o, c, sizeof c, &ntr, &nva);
        ck_assert_str_eq(b, c);
    }
    ck_assert(differs);
    /* Default 0.2: one scene; a large share still leaves one to train. */
    ck_assert_int_eq(tile("--data %s -o %s --tile 32 -q", root, path("v3")), 0);
    split_of(path("v3"), b, sizeof b, &ntr, &nva);
    ck_assert_int_eq(nva, 1);
    ck_assert_int_eq(ntr, 4);
    ck_assert_int_eq(tile("--data %s -o %s --tile 32 --val-fraction 0.9 -q", root, path("v4")), 0);
    split_of(path("v4"), b, sizeof b, &ntr, &nva);
    ck_assert_int_eq(nva, 4);
    ck_assert_int_eq(ntr, 1);
    /* --val-fraction 0: every chip to train/, no val/ folder. */
    ck_assert_int_eq(tile_captured("--data %s -o %s --tile 32 --val-fraction 0", root,
                                   path("v0")), 0);
    ck_assert_int_eq(tu_system("grep -q '20 chips (20 train, 0 val).*5 scenes, 0 of them' %s",
                               path("stdout.txt")), 0);
    split_of(path("v0"), b, sizeof b, &ntr, &nva);
    ck_assert_int_eq(nva, 0);
    ck_assert_int_eq(ntr, 5);
    ck_assert_int_eq(tu_system("test ! -e %s/val", path("v0")), 0);
    /* One scene: nothing to hold out. */
    char one[1100];
    snprintf(one, sizeof one, "%s", path("vone"));
    make_scene(one, "train", "only", 64, 64, 30, 1);
    ck_assert_int_eq(tile("--data %s -o %s --tile 32 --val-fraction 0.5 -q", one, path("v5")), 0);
    split_of(path("v5"), b, sizeof b, &ntr, &nva);
    ck_assert_int_eq(nva, 0);
}
END_TEST

START_TEST(test_val_split_from_source)
{
    char root[1100];
    snprintf(root, sizeof root, "%s", path("vf"));
    make_scene(root, "train", "t1", 64, 64, 40, 1);
    make_scene(root, "train", "t2", 64, 64, 41, 1);
    make_scene(root, "train", "t3", 64, 64, 42, 1);
    make_scene(root, "val", "w1", 64, 64, 43, 1);
    /* The source's val/ decides: --val-fraction is ignored, with one warning. */
    for (int k = 0; k < 3; k++) {
        static const char *const opts[] = {"", "--val-fraction 0.5", "--val-fraction 0 --seed 3"};
        const char *o = path(CPLSPrintf("f%d", k));
        char fmt[256];
        snprintf(fmt, sizeof fmt, "--data %%s -o %%s --tile 32 -q %s", opts[k]);
        ck_assert_int_eq(tile_captured(fmt, root, o), 0);
        char **lines = CSLLoad(path("err"));
        if (k == 0) {
            ck_assert_int_eq(CSLCount(lines), 0);
        } else {
            ck_assert_int_eq(CSLCount(lines), 1);
            ck_assert_ptr_nonnull(strstr(lines[0], "gseg-tile: warning:"));
            ck_assert_ptr_nonnull(strstr(lines[0], "--val-fraction"));
            ck_assert_ptr_nonnull(strstr(lines[0], "val/"));
        }
        CSLDestroy(lines);
        char v[256];
        int ntr, nva;
        split_of(o, v, sizeof v, &ntr, &nva);
        ck_assert_str_eq(v, ",w1.tif,");
        ck_assert_int_eq(ntr, 3);
    }
    /* The summary counts the source's val/ scenes. */
    ck_assert_int_eq(tile_captured("--data %s -o %s --tile 32", root, path("f3")), 0);
    ck_assert_int_eq(tu_system("grep -q '16 chips (12 train, 4 val).*4 scenes, 1 of them to val/ "
                               "(the source' %s", path("stdout.txt")), 0);
}
END_TEST

Suite *chips_suite(void)
{
    Suite *s = suite_create("chips");
    TCase *tc = tcase_create("chips");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_chips_of_a_scene);
    tcase_add_test(tc, test_rotated_geotransform);
    tcase_add_test(tc, test_nodata_chips_skipped);
    tcase_add_test(tc, test_zip_archive_is_a_dataset);
    tcase_add_test(tc, test_atomic_output);
    tcase_add_test(tc, test_command_line);
    tcase_add_test(tc, test_classes_columns);
    tcase_add_test(tc, test_labels_from_outlines);
    tcase_add_test(tc, test_val_split_by_scene);
    tcase_add_test(tc, test_val_split_from_source);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(chips_suite()); }
