/* check_read.c — scenes: data types, scale/offset, nodata/mask/alpha, band
 * selection, stacks of mixed resolution, VSI paths, padding, bad files. */
#include "testutil.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double gt10[6] = {400000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0};

/* A single-band GeoTIFF whose pixel (x, y) holds base + x + 10 y. */
static void make_band(const char *path, GDALDataType type, int w, int h, double base,
                      const double *gt, int epsg)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, 1, type, NULL);
    ck_assert_ptr_nonnull(ds);
    double *v = malloc((size_t)w * h * sizeof *v);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) v[(size_t)y * w + x] = base + x + 10.0 * y;
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, w, h, v, w, h,
                                  GDT_Float64, 0, 0), CE_None);
    free(v);
    if (gt) GDALSetGeoTransform(ds, (double *)gt);
    if (epsg) {
        OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
        OSRImportFromEPSG(srs, epsg);
        GDALSetSpatialRef(ds, srs);
        OSRDestroySpatialReference(srs);
    }
    GDALClose(ds);
}

static gseg_scene *open1(const char *path, const char *const *bands)
{
    gseg_scene_params p = gseg_scene_params_default();
    p.bands = bands;
    gseg_scene *s = NULL;
    const char *paths[] = {path};
    ck_gseg(gseg_scene_open(paths, 1, &p, &s));
    return s;
}

START_TEST(test_types_scale_offset)
{
    gseg_init();
    const struct { GDALDataType t; double base; } cases[] = {
        {GDT_Byte, 100},         {GDT_UInt16, 60000},  {GDT_Int16, -30000},
        {GDT_UInt32, 4.0e9},     {GDT_Int32, -2.0e9},  {GDT_Float32, -1.5e3},
        {GDT_Float64, 1.0e12},   {GDT_Int64, -5.0e15}, {GDT_UInt64, 9.0e15},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = "/vsimem/types.tif";
        make_band(path, cases[i].t, 7, 5, cases[i].base, gt10, 32633);
        gseg_scene *s = open1(path, NULL);
        ck_assert_int_eq(gseg_scene_width(s), 7);
        ck_assert_int_eq(gseg_scene_nbands(s), 1);
        float data[35];
        uint8_t valid[35];
        size_t nvalid = 0;
        gseg_window win = {0, 0, 7, 5};
        ck_gseg(gseg_scene_read(s, win, 7, 5, data, valid, &nvalid));
        ck_assert_uint_eq(nvalid, 35);
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 7; x++) {
                double want = cases[i].base + x + 10.0 * y;
                if (cases[i].t == GDT_Float32) want = (float)want;
                ck_assert_msg(data[y * 7 + x] == (float)want, "%s pixel %d,%d: %.9g != %.9g",
                              GDALGetDataTypeName(cases[i].t), x, y, data[y * 7 + x],
                              (double)(float)want);
            }
        gseg_scene_free(s);
        VSIUnlink(path);
    }
    /* Landsat Collection 2 surface reflectance: UInt16 with scale and offset */
    const char *path = "/vsimem/l2.tif";
    make_band(path, GDT_UInt16, 4, 3, 20000, gt10, 32633);
    GDALDatasetH ds = GDALOpen(path, GA_Update);
    GDALSetRasterScale(GDALGetRasterBand(ds, 1), 0.0000275);
    GDALSetRasterOffset(GDALGetRasterBand(ds, 1), -0.2);
    GDALClose(ds);
    gseg_scene *s = open1(path, NULL);
    float data[12];
    gseg_window win = {0, 0, 4, 3};
    ck_gseg(gseg_scene_read(s, win, 4, 3, data, NULL, NULL));
    for (int i = 0; i < 12; i++) {
        double dn = 20000 + i % 4 + 10 * (i / 4);
        ck_assert_double_eq_tol(data[i], dn * 0.0000275 - 0.2, 1e-6);
    }
    gseg_scene_free(s);
    VSIUnlink(path);
}
END_TEST

START_TEST(test_nodata_nan_mask_alpha)
{
    gseg_init();
    /* nodata at the type limit, NaN and Inf in float data */
    const char *path = "/vsimem/nd.tif";
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, 4, 1, 2, GDT_Float32, NULL);
    float b1[4] = {1, -3.4e38f, 3, 4}, b2[4] = {NAN, 2, INFINITY, 4};
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, 4, 1, b1, 4, 1,
                                  GDT_Float32, 0, 0), CE_None);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 2), GF_Write, 0, 0, 4, 1, b2, 4, 1,
                                  GDT_Float32, 0, 0), CE_None);
    GDALSetRasterNoDataValue(GDALGetRasterBand(ds, 1), (double)-3.4e38f);
    GDALClose(ds);
    gseg_scene *s = open1(path, NULL);
    float data[8];
    uint8_t valid[4];
    size_t n = 0;
    gseg_window win = {0, 0, 4, 1};
    ck_gseg(gseg_scene_read(s, win, 4, 1, data, valid, &n));
    /* valid only where both bands hold a finite non-nodata value */
    ck_assert(valid[0] == 0 && valid[1] == 0 && valid[2] == 0 && valid[3] == 1);
    ck_assert_uint_eq(n, 1);
    gseg_scene_free(s);
    /* band selection limits validity to the selected bands */
    const char *only1[] = {"1", NULL};
    s = open1(path, only1);
    ck_gseg(gseg_scene_read(s, win, 4, 1, data, valid, &n));
    ck_assert(valid[0] == 1 && valid[1] == 0 && valid[2] == 1 && valid[3] == 1);
    gseg_scene_free(s);
    VSIUnlink(path);

    /* a per-dataset mask band */
    char *dir = tu_tmpdir("mask");
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/masked.tif", dir);
    make_band(mpath, GDT_UInt16, 6, 2, 100, gt10, 32633);
    ds = GDALOpen(mpath, GA_Update);
    ck_assert_int_eq(GDALCreateDatasetMaskBand(ds, GMF_PER_DATASET), CE_None);
    uint8_t m[12] = {255, 255, 0, 0, 255, 255, 255, 0, 255, 255, 255, 255};
    ck_assert_int_eq(GDALRasterIO(GDALGetMaskBand(GDALGetRasterBand(ds, 1)), GF_Write, 0, 0, 6, 2,
                                  m, 6, 2, GDT_Byte, 0, 0), CE_None);
    GDALClose(ds);
    s = open1(mpath, NULL);
    uint8_t v12[12];
    float d12[12];
    gseg_window w12 = {0, 0, 6, 2};
    ck_gseg(gseg_scene_read(s, w12, 6, 2, d12, v12, &n));
    for (int i = 0; i < 12; i++) ck_assert_int_eq(v12[i], m[i] ? 1 : 0);
    ck_assert_uint_eq(n, 9);
    gseg_scene_free(s);

    /* an alpha band */
    snprintf(mpath, sizeof mpath, "%s/alpha.tif", dir);
    const char *co[] = {"ALPHA=YES", NULL};
    ds = GDALCreate(GDALGetDriverByName("GTiff"), mpath, 3, 1, 2, GDT_Byte, (char **)co);
    uint8_t d[3] = {10, 20, 30}, a[3] = {255, 0, 128};
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, 3, 1, d, 3, 1, GDT_Byte, 0, 0), CE_None);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 2), GF_Write, 0, 0, 3, 1, a, 3, 1, GDT_Byte, 0, 0), CE_None);
    GDALClose(ds);
    const char *b1sel[] = {"1", NULL};
    s = open1(mpath, b1sel);
    gseg_window w3 = {0, 0, 3, 1};
    ck_gseg(gseg_scene_read(s, w3, 3, 1, d12, v12, &n));
    ck_assert(v12[0] == 1 && v12[1] == 0 && v12[2] == 1);
    ck_assert(d12[0] == 10 && d12[2] == 30);
    gseg_scene_free(s);

    /* an alpha band among many (gdalwarp -dstalpha on a 7-band scene: GDAL
     * itself only uses alpha for 2- and 4-band files), UInt16, beside a
     * band with a nodata value: both apply */
    snprintf(mpath, sizeof mpath, "%s/alpha7.tif", dir);
    ds = GDALCreate(GDALGetDriverByName("GTiff"), mpath, 3, 1, 8, GDT_UInt16, NULL);
    uint16_t d16[3] = {10, 0, 30}, n16[3] = {10, 5, 30}, a16[3] = {65535, 65535, 0};
    for (int b = 1; b <= 7; b++)
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, 0, 0, 3, 1,
                                      b == 2 ? n16 : d16, 3, 1, GDT_UInt16, 0, 0), CE_None);
    GDALSetRasterNoDataValue(GDALGetRasterBand(ds, 2), 5); /* GTiff: all bands' */
    GDALRasterBandH ab = GDALGetRasterBand(ds, 8);
    ck_assert_int_eq(GDALRasterIO(ab, GF_Write, 0, 0, 3, 1, a16, 3, 1, GDT_UInt16, 0, 0), CE_None);
    GDALSetRasterColorInterpretation(ab, GCI_AlphaBand);
    GDALClose(ds);
    const char *sel7[][3] = {{"1", "3", NULL}, {"1", "2", NULL}};
    const uint8_t want7[][3] = {{1, 1, 0}, {1, 0, 0}};
    for (int k = 0; k < 2; k++) {
        s = open1(mpath, sel7[k]);
        float d6[6];
        ck_gseg(gseg_scene_read(s, w3, 3, 1, d6, v12, &n));
        for (int i = 0; i < 3; i++) ck_assert_int_eq(v12[i], want7[k][i]);
        gseg_scene_free(s);
    }
    free(dir);
}
END_TEST

START_TEST(test_band_selection)
{
    gseg_init();
    const char *path = "/vsimem/sel.tif";
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, 2, 2, 3, GDT_UInt16, NULL);
    const char *names[] = {"Green", "SWIR1", "nir"};
    for (int b = 0; b < 3; b++) {
        uint16_t v[4] = {(uint16_t)(b * 100 + 1), (uint16_t)(b * 100 + 2), (uint16_t)(b * 100 + 3),
                         (uint16_t)(b * 100 + 4)};
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, b + 1), GF_Write, 0, 0, 2, 2, v, 2, 2,
                                      GDT_UInt16, 0, 0), CE_None);
        GDALSetDescription(GDALGetRasterBand(ds, b + 1), names[b]);
    }
    GDALClose(ds);
    const char *sel[] = {"swir1", "3", "GREEN", NULL};
    gseg_scene *s = open1(path, sel);
    ck_assert_int_eq(gseg_scene_nbands(s), 3);
    ck_assert_str_eq(gseg_scene_band_name(s, 0), "SWIR1");
    float d[12];
    gseg_window win = {0, 0, 2, 2};
    ck_gseg(gseg_scene_read(s, win, 2, 2, d, NULL, NULL));
    ck_assert(d[0] == 101 && d[4] == 201 && d[8] == 1 && d[11] == 4);
    gseg_scene_free(s);

    gseg_scene_params p = gseg_scene_params_default();
    const char *paths[] = {path};
    const char *bad1[] = {"4", NULL};
    p.bands = bad1;
    ck_assert_int_eq(gseg_scene_open(paths, 1, &p, &s), GSEG_ERR_ARG);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "/vsimem/sel.tif"));
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "band 4"));
    const char *bad2[] = {"red", NULL};
    p.bands = bad2;
    ck_assert_int_eq(gseg_scene_open(paths, 1, &p, &s), GSEG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "'red'"));
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "Green, SWIR1, nir"));
    const char *bad3[] = {"0", NULL};
    p.bands = bad3;
    ck_assert_int_eq(gseg_scene_open(paths, 1, &p, &s), GSEG_ERR_ARG);
    VSIUnlink(path);
}
END_TEST

START_TEST(test_stack_mixed_resolution)
{
    gseg_init();
    char *dir = tu_tmpdir("stack");
    char fine[4200], coarse[4200], shifted[4200];
    snprintf(fine, sizeof fine, "%s/T43SFA_B03_10m.tif", dir);
    snprintf(coarse, sizeof coarse, "%s/T43SFA_B11_20m.tif", dir);
    snprintf(shifted, sizeof shifted, "%s/shifted.tif", dir);
    const double gt20[6] = {400000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0};
    make_band(fine, GDT_UInt16, 40, 30, 1000, gt10, 32643);
    make_band(coarse, GDT_UInt16, 20, 15, 5000, gt20, 32643);
    gseg_scene_params p = gseg_scene_params_default();
    const char *sel[] = {"B11", "B03", NULL}; /* Sentinel-2 style stems */
    p.bands = sel;
    const char *paths[] = {coarse, fine};
    gseg_scene *s = NULL;
    ck_gseg(gseg_scene_open(paths, 2, &p, &s));
    ck_assert_int_eq(gseg_scene_width(s), 40);
    ck_assert_int_eq(gseg_scene_height(s), 30);
    double gt[6];
    ck_assert_int_eq(gseg_scene_geotransform(s, gt), 1);
    for (int i = 0; i < 6; i++) ck_assert(gt[i] == gt10[i]);
    float *d = malloc(2 * 40 * 30 * sizeof(float));
    gseg_window win = {0, 0, 40, 30};
    ck_gseg(gseg_scene_read(s, win, 40, 30, d, NULL, NULL));
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 40; x++) {
            ck_assert(d[y * 40 + x] == 5000 + x / 2 + 10 * (y / 2)); /* nearest */
            ck_assert(d[1200 + y * 40 + x] == 1000 + x + 10 * y);
        }
    /* a window reads the same values as the whole */
    float dw[2 * 7 * 5];
    gseg_window w2 = {13, 9, 7, 5};
    ck_gseg(gseg_scene_read(s, w2, 7, 5, dw, NULL, NULL));
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++) ck_assert(dw[y * 7 + x] == d[(9 + y) * 40 + 13 + x]);
    gseg_scene_free(s);
    /* independent check of the resampling: gdal_translate onto the fine grid */
    ck_assert_int_eq(tu_system("gdal_translate -q -r near -outsize 40 30 '%s' '%s/ref.tif'", coarse,
                               dir), 0);

    /* partial overlap: the intersection on the fine grid */
    const double gts[6] = {400100.0, 20.0, 0.0, 4999900.0, 0.0, -20.0};
    make_band(shifted, GDT_UInt16, 20, 15, 7000, gts, 32643);
    const char *paths2[] = {fine, shifted};
    ck_gseg(gseg_scene_open(paths2, 2, NULL, &s));
    ck_assert_int_eq(gseg_scene_width(s), 30);  /* 400100 .. 400400 */
    ck_assert_int_eq(gseg_scene_height(s), 20); /* 4999900 .. 4999700 */
    gseg_scene_geotransform(s, gt);
    ck_assert(gt[0] == 400100.0 && gt[3] == 4999900.0 && gt[1] == 10.0);
    gseg_window w3 = {0, 0, 2, 2};
    float d3[8];
    ck_gseg(gseg_scene_read(s, w3, 2, 2, d3, NULL, NULL));
    ck_assert(d3[0] == 1000 + 10 + 100); /* fine pixel (10, 10) */
    ck_assert(d3[4] == 7000);            /* shifted pixel (0, 0) */
    gseg_scene_free(s);

    /* different CRSs and disjoint extents are refused */
    char other[4200];
    snprintf(other, sizeof other, "%s/other.tif", dir);
    make_band(other, GDT_UInt16, 40, 30, 0, gt10, 32644);
    const char *paths3[] = {fine, other};
    ck_assert_int_eq(gseg_scene_open(paths3, 2, NULL, &s), GSEG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "other.tif"));
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "T43SFA_B03_10m.tif"));
    const double far[6] = {900000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0};
    make_band(other, GDT_UInt16, 40, 30, 0, far, 32643);
    ck_assert_int_eq(gseg_scene_open(paths3, 2, NULL, &s), GSEG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "overlap"));
    free(d);
    free(dir);
}
END_TEST

START_TEST(test_vsi_paths)
{
    gseg_init();
    char *dir = tu_tmpdir("vsi");
    char tif[4200], vsi[4300];
    snprintf(tif, sizeof tif, "%s/b.tif", dir);
    make_band(tif, GDT_UInt16, 8, 6, 300, gt10, 32633);
    ck_assert_int_eq(tu_system("cd '%s' && /usr/bin/python3 -m zipfile -c s.zip b.tif && "
                               "tar cf s.tar b.tif", dir), 0);
    const char *fmt[] = {"/vsizip/%s/s.zip/b.tif", "/vsitar/%s/s.tar/b.tif"};
    for (int k = 0; k < 2; k++) {
        snprintf(vsi, sizeof vsi, fmt[k], dir);
        gseg_scene *s = open1(vsi, NULL);
        float d[48];
        gseg_window win = {0, 0, 8, 6};
        ck_gseg(gseg_scene_read(s, win, 8, 6, d, NULL, NULL));
        for (int i = 0; i < 48; i++) ck_assert(d[i] == 300 + i % 8 + 10 * (i / 8));
        ck_assert_str_eq(gseg_scene_path(s), vsi);
        gseg_scene_free(s);
    }
    free(dir);
}
END_TEST

START_TEST(test_padding_and_windows)
{
    gseg_init();
    const char *path = "/vsimem/pad.tif";
    make_band(path, GDT_Int16, 10, 8, 0, gt10, 32633);
    gseg_scene *s = open1(path, NULL);
    float d[6 * 5];
    uint8_t v[6 * 5];
    gseg_window win = {7, 5, 3, 3}; /* bottom-right corner, padded to 6 x 5 */
    size_t n = 0;
    ck_gseg(gseg_scene_read(s, win, 6, 5, d, v, &n));
    ck_assert_uint_eq(n, 9);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 6; x++) {
            int sx = x < 3 ? x : 2, sy = y < 3 ? y : 2; /* edge replicated */
            ck_assert(d[y * 6 + x] == 7 + sx + 10 * (5 + sy));
            ck_assert_int_eq(v[y * 6 + x], x < 3 && y < 3);
        }
    gseg_window out = {8, 5, 3, 3};
    ck_assert_int_eq(gseg_scene_read(s, out, 3, 3, d, v, &n), GSEG_ERR_ARG);
    gseg_window neg = {-1, 0, 3, 3};
    ck_assert_int_eq(gseg_scene_read(s, neg, 3, 3, d, v, &n), GSEG_ERR_ARG);
    gseg_scene_free(s);
    VSIUnlink(path);
}
END_TEST

START_TEST(test_georef_accessors)
{
    gseg_init();
    const char *path = "/vsimem/rot.tif";
    const double rot[6] = {1000.5, 7.0710678, 7.0710678, 2000.25, 7.0710678, -7.0710678};
    make_band(path, GDT_Byte, 5, 5, 1, rot, 32633);
    gseg_scene *s = open1(path, NULL);
    double gt[6];
    ck_assert_int_eq(gseg_scene_geotransform(s, gt), 1);
    for (int i = 0; i < 6; i++) ck_assert(gt[i] == rot[i]);
    ck_assert_ptr_nonnull(strstr(gseg_scene_crs_wkt(s), "32633"));
    gseg_scene_free(s);
    make_band(path, GDT_Byte, 5, 5, 1, NULL, 0);
    s = open1(path, NULL);
    ck_assert_int_eq(gseg_scene_geotransform(s, gt), 0);
    ck_assert(gt[0] == 0 && gt[1] == 1 && gt[5] == 1);
    ck_assert_str_eq(gseg_scene_crs_wkt(s), "");
    gseg_scene_free(s);
    VSIUnlink(path);
}
END_TEST

START_TEST(test_bad_files)
{
    gseg_init();
    char *dir = tu_tmpdir("badread");
    char path[4200];
    gseg_scene *s = NULL;
    const char *paths[] = {path};

    snprintf(path, sizeof path, "%s/missing.tif", dir);
    ck_assert_int_eq(gseg_scene_open(paths, 1, NULL, &s), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "missing.tif: no such file"));

    snprintf(path, sizeof path, "%s/random.tif", dir);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 4096; i++) fputc((i * 2654435761u) >> 24, f);
    fclose(f);
    ck_assert_int_eq(gseg_scene_open(paths, 1, NULL, &s), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "random.tif"));

    /* truncated: the header survives, the data does not */
    char full[4200];
    snprintf(full, sizeof full, "%s/full.tif", dir);
    snprintf(path, sizeof path, "%s/truncated.tif", dir);
    make_band(full, GDT_UInt16, 300, 300, 1, gt10, 32633);
    ck_assert_int_eq(tu_system("head -c 90000 '%s' > '%s'", full, path), 0);
    gseg_status st = gseg_scene_open(paths, 1, NULL, &s);
    if (st == GSEG_OK) {
        float *d = malloc(300 * 300 * sizeof(float));
        gseg_window win = {0, 0, 300, 300};
        ck_assert_int_eq(gseg_scene_read(s, win, 300, 300, d, NULL, NULL), GSEG_ERR_IO);
        ck_assert_ptr_nonnull(strstr(gseg_last_error(), "truncated.tif"));
        free(d);
        gseg_scene_free(s);
    }

    /* absurd declared dimensions in a tiny sparse file */
    snprintf(path, sizeof path, "%s/huge.tif", dir);
    const char *co[] = {"SPARSE_OK=YES", "TILED=YES", "BIGTIFF=YES", NULL};
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, 3000000, 10, 1, GDT_Byte,
                                 (char **)co);
    GDALClose(ds);
    ck_assert_int_eq(gseg_scene_open(paths, 1, NULL, &s), GSEG_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "huge.tif"));

    /* complex data */
    snprintf(path, sizeof path, "%s/complex.tif", dir);
    ds = GDALCreate(GDALGetDriverByName("GTiff"), path, 4, 4, 1, GDT_CFloat32, NULL);
    GDALClose(ds);
    ck_assert_int_eq(gseg_scene_open(paths, 1, NULL, &s), GSEG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "complex"));
    ck_assert_ptr_null(s);
    free(dir);
}
END_TEST

/* ---- Inputs found by fuzz/fuzz_scene.c (fuzz/corpus/fuzz_scene/regress-*) */

/* Writes the files of a fuzz_scene input under /vsimem/<dir>/ as the
 * harness does (one raster, or fuzz_scene.c's archive of several files)
 * and fills paths with its scene files; returns their count. */
static int fuzz_scene_input(const char *name, const char *dir, char paths[][128], int max)
{
    static const char magic[] = "FUZZER_FRIENDLY_ARCHIVE\n", mark[] = "***NEWFILE***:";
    GByte *data = NULL;
    vsi_l_offset size = 0;
    ck_assert(VSIIngestFile(NULL, tu_src(CPLSPrintf("fuzz/corpus/fuzz_scene/%s", name)), &data,
                            &size, -1));
    const char *p = (const char *)data, *end = p + size;
    int n = 0;
    if (size < sizeof magic - 1 || memcmp(p, magic, sizeof magic - 1) != 0) {
        snprintf(paths[n++], 128, "%s/scene", dir);
        VSIFCloseL(VSIFileFromMemBuffer(paths[0], data, size, TRUE));
        return n;
    }
    const char *q = strstr(p + sizeof magic - 1, mark);
    while (q) {
        const char *nm = q + sizeof mark - 1, *nl = memchr(nm, '\n', (size_t)(end - nm));
        if (!nl) break;
        const char *body = nl + 1, *next = body;
        while (next + sizeof mark - 1 <= end && memcmp(next, mark, sizeof mark - 1) != 0) next++;
        if (next + sizeof mark - 1 > end) next = end;
        char path[128];
        snprintf(path, sizeof path, "%s/%.*s", dir, (int)(nl - nm), nm);
        VSILFILE *f = VSIFOpenL(path, "wb");
        ck_assert_ptr_nonnull(f);
        VSIFWriteL(body, 1, (size_t)(next - body), f);
        VSIFCloseL(f);
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= strcmp(paths[i], path) == 0;
        if (!dup && n < max && !strstr(path, ".aux.xml") && !strstr(path, ".hdr"))
            snprintf(paths[n++], 128, "%s", path);
        q = next < end ? next : NULL;
    }
    CPLFree(data);
    return n;
}

START_TEST(test_fuzz_window_overflow)
{
    /* Windows near INT_MAX: the bounds check computed win.x + win.w in int,
     * which overflowed (UB) instead of refusing the window. */
    gseg_init();
    char paths[1][128];
    fuzz_scene_input("regress-scene-window-overflow", "/vsimem/fuzzwin", paths, 1);
    gseg_scene *s = open1(paths[0], NULL);
    int w = gseg_scene_width(s), h = gseg_scene_height(s);
    const gseg_window bad[] = {{INT_MAX, 0, 1, 1}, {0, INT_MAX, 1, 1}, {1, 0, INT_MAX, 1},
                               {0, 1, 1, INT_MAX}, {w - 1, 0, INT_MAX, 1}, {0, h - 1, 1, INT_MAX}};
    ck_assert_int_le(gseg_scene_nbands(s), 4);
    float d[4 * 4];
    uint8_t v[4];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_int_eq(gseg_scene_read(s, bad[i], bad[i].w, bad[i].h, d, v, NULL), GSEG_ERR_ARG);
    ck_gseg(gseg_scene_read(s, (gseg_window){w - 1, h - 1, 1, 1}, 2, 2, d, v, NULL));
    gseg_scene_free(s);
    VSIRmdirRecursive("/vsimem/fuzzwin");
}
END_TEST

START_TEST(test_fuzz_degenerate_stack)
{
    /* Two GeoTIFFs with absurd pixel sizes (tiny and ~1e233) stacked:
     * stack_grid accepted them and read_window converted a source offset of
     * -3e274 to int (UB). Refused at open now: every stacked file must
     * cover the common grid. */
    gseg_init();
    char paths[4][128];
    int n = fuzz_scene_input("regress-stack-degenerate-geotransform", "/vsimem/fuzzstack", paths, 4);
    ck_assert_int_eq(n, 2);
    const char *pp[] = {paths[0], paths[1]};
    gseg_scene *s = NULL;
    ck_assert_int_eq(gseg_scene_open(pp, 2, NULL, &s), GSEG_ERR_FORMAT);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "cannot stack"));
    VSIRmdirRecursive("/vsimem/fuzzstack");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("read");
    TCase *tc = tcase_create("scene");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_types_scale_offset);
    tcase_add_test(tc, test_nodata_nan_mask_alpha);
    tcase_add_test(tc, test_band_selection);
    tcase_add_test(tc, test_stack_mixed_resolution);
    tcase_add_test(tc, test_vsi_paths);
    tcase_add_test(tc, test_padding_and_windows);
    tcase_add_test(tc, test_georef_accessors);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_fuzz_window_overflow);
    tcase_add_test(tc, test_fuzz_degenerate_stack);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
