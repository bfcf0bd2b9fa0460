/* check_predict.c — the NDSI pipeline end to end: seamless tiling, output
 * georeferencing, COG validity, the command line, bad input, atomicity. */
#include "testutil.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <geodesic.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GREEN 2
#define SWIR 5

static const double utm_gt[6] = {600000.0, 30.0, 0.0, 4000020.0, 0.0, -30.0};

/* A 6-band UInt16 scene (blue green red nir swir1 swir2) with snow-like and
 * rock-like areas, a nodata (0) corner, values near the NDSI threshold. */
static void make_scene(const char *path, int w, int h, const double *gt, int epsg)
{
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    const char *co[] = {"TILED=YES", "COMPRESS=DEFLATE", NULL};
    GDALDatasetH ds = GDALCreate(drv, path, w, h, 6, GDT_UInt16, (char **)co);
    ck_assert_ptr_nonnull(ds);
    if (gt) GDALSetGeoTransform(ds, (double *)gt);
    if (epsg) {
        OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
        OSRImportFromEPSG(srs, epsg);
        GDALSetSpatialRef(ds, srs);
        OSRDestroySpatialReference(srs);
    }
    const char *names[] = {"blue", "green", "red", "nir", "swir1", "swir2"};
    uint16_t *buf = malloc((size_t)w * h * sizeof *buf);
    for (int b = 0; b < 6; b++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double snow = 0.5 + 0.5 * sin(x * 0.05) * cos(y * 0.07 + x * 0.01);
                double noise = (double)((x * 7919 + y * 104729 + b * 31) % 997) / 997.0;
                double v;
                if (b == GREEN - 1) v = 1500 + 6000 * snow + 300 * noise;
                else if (b == SWIR - 1) v = 2500 - 1500 * snow + 400 * noise;
                else v = 1000 + 3000 * snow * (b + 1) / 6.0 + 200 * noise;
                if (x + y < 12) v = 0; /* nodata corner */
                buf[(size_t)y * w + x] = (uint16_t)v;
            }
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        ck_assert_int_eq(GDALRasterIO(band, GF_Write, 0, 0, w, h, buf, w, h, GDT_UInt16, 0, 0),
                         CE_None);
        GDALSetRasterNoDataValue(band, 0);
        GDALSetDescription(band, names[b]);
    }
    free(buf);
    GDALClose(ds);
}

/* Whole-scene NDSI mask computed directly from the bands, independently of
 * the tiler: 255 nodata, 1 where NDSI > thr. */
static uint8_t *whole_scene_mask(const char *path, float thr, float **ndsi_out)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    ck_assert_ptr_nonnull(ds);
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    float *g = malloc((size_t)w * h * 4), *s = malloc((size_t)w * h * 4);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, GREEN), GF_Read, 0, 0, w, h, g, w, h,
                                  GDT_Float32, 0, 0), CE_None);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, SWIR), GF_Read, 0, 0, w, h, s, w, h,
                                  GDT_Float32, 0, 0), CE_None);
    uint8_t *m = malloc((size_t)w * h);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        float sum = g[i] + s[i];
        float n = sum > 0 ? (g[i] - s[i]) / sum : -1.0f;
        m[i] = (g[i] == 0.0f || s[i] == 0.0f) ? 255 : n > thr ? 1 : 0; /* 0 is nodata */
        g[i] = n;
    }
    free(s);
    GDALClose(ds);
    if (ndsi_out) *ndsi_out = g;
    else free(g);
    return m;
}

static uint8_t *read_mask(const char *path, int *w, int *h)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    ck_assert_msg(ds != NULL, "cannot open %s", path);
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    uint8_t *m = malloc((size_t)*w * *h);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, 0, 0, *w, *h, m, *w, *h,
                                  GDT_Byte, 0, 0), CE_None);
    GDALClose(ds);
    return m;
}

static gseg_predict_params params_for(const char **inputs, int n, const char *out)
{
    gseg_predict_params p = gseg_predict_params_default();
    p.model = "ndsi:green=2,swir=5";
    p.inputs = inputs;
    p.ninputs = n;
    p.output = out;
    p.format = "GTiff";
    return p;
}

START_TEST(test_seam_identical_to_whole_scene)
{
    gseg_init();
    char *dir = tu_tmpdir("seam");
    char scene[4200], out[4200], proba[4200];
    snprintf(scene, sizeof scene, "%s/scene.tif", dir);
    make_scene(scene, 301, 253, utm_gt, 32643);
    float *ndsi = NULL;
    uint8_t *truth = whole_scene_mask(scene, 0.4f, &ndsi);
    const int cfg[][2] = {{512, 64}, {64, 16}, {100, 30}, {37, 36}, {128, 0}, {16, 8}, {300, 1}};
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
        snprintf(out, sizeof out, "%s/mask_%zu.tif", dir, c);
        snprintf(proba, sizeof proba, "%s/proba_%zu.tif", dir, c);
        const char *in[] = {scene};
        gseg_predict_params p = params_for(in, 1, out);
        p.tile = cfg[c][0];
        p.overlap = cfg[c][1];
        p.proba = proba;
        gseg_predict_stats st;
        ck_gseg(gseg_predict(&p, NULL, NULL, &st));
        int w, h;
        uint8_t *m = read_mask(out, &w, &h);
        ck_assert_int_eq(w, 301);
        ck_assert_int_eq(h, 253);
        size_t diff = 0, glacier = 0;
        for (size_t i = 0; i < (size_t)w * h; i++) {
            diff += m[i] != truth[i];
            glacier += m[i] == 1;
        }
        ck_assert_msg(diff == 0, "tile %d overlap %d: %zu pixels differ from whole-scene NDSI",
                      cfg[c][0], cfg[c][1], diff);
        ck_assert_msg(glacier > 1000 && glacier < (size_t)w * h - 1000, "degenerate test scene");
        ck_assert_int_eq(st.class_pixels[1], (long long)glacier);
        /* the score raster is the NDSI itself, bit for bit */
        GDALDatasetH pd = GDALOpen(proba, GA_ReadOnly);
        float *pv = malloc((size_t)w * h * 4);
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(pd, 1), GF_Read, 0, 0, w, h, pv, w, h,
                                      GDT_Float32, 0, 0), CE_None);
        GDALClose(pd);
        for (size_t i = 0; i < (size_t)w * h; i++)
            if (truth[i] != 255) ck_assert(pv[i] == ndsi[i]);
            else ck_assert(isnan(pv[i]));
        free(pv);
        free(m);
    }
    free(truth);
    free(ndsi);
    free(dir);
}
END_TEST

START_TEST(test_matches_numpy_peer)
{
    /* NDSI > 0.4 from numpy float32 over the whole scene, as an outside
     * reference, equals the tiled, blended output. */
    gseg_init();
    char *dir = tu_tmpdir("numpy");
    char scene[4200], out[4200];
    snprintf(scene, sizeof scene, "%s/scene.tif", dir);
    snprintf(out, sizeof out, "%s/mask.tif", dir);
    make_scene(scene, 700, 450, utm_gt, 32643);
    const char *in[] = {scene};
    gseg_predict_params p = params_for(in, 1, out);
    p.tile = 128;
    p.overlap = 32;
    p.format = NULL; /* COG */
    ck_gseg(gseg_predict(&p, NULL, NULL, NULL));
    int rc = tu_system(
        "/usr/bin/python3 -c \"\n"
        "import numpy as np, sys\n"
        "from osgeo import gdal\n"
        "s = gdal.Open('%s'); m = gdal.Open('%s').ReadAsArray()\n"
        "g = s.GetRasterBand(2).ReadAsArray().astype(np.float32)\n"
        "w = s.GetRasterBand(5).ReadAsArray().astype(np.float32)\n"
        "with np.errstate(all='ignore'): n = (g - w) / (g + w)\n"
        "ref = np.where((g == 0) | (w == 0), 255, (n > np.float32(0.4)).astype(np.uint8))\n"
        "bad = int((ref != m).sum()); print('numpy peer: differing pixels', bad)\n"
        "sys.exit(1 if bad else 0)\"",
        scene, out);
    ck_assert_int_eq(rc, 0);
    free(dir);
}
END_TEST

START_TEST(test_output_georef_and_cog)
{
    gseg_init();
    char *dir = tu_tmpdir("cog");
    char scene[4200], out[4200];
    snprintf(scene, sizeof scene, "%s/scene.tif", dir);
    make_scene(scene, 1200, 900, utm_gt, 32643);
    const char *in[] = {scene};
    gseg_predict_params p = params_for(in, 1, NULL); /* default name, default COG */
    p.format = NULL;
    ck_gseg(gseg_predict(&p, NULL, NULL, NULL));
    snprintf(out, sizeof out, "%s/scene_mask.tif", dir);
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    ck_assert_ptr_nonnull(ds);
    double gt[6];
    ck_assert_int_eq(GDALGetGeoTransform(ds, gt), CE_None);
    for (int i = 0; i < 6; i++) ck_assert(gt[i] == utm_gt[i]);
    OGRSpatialReferenceH srs = GDALGetSpatialRef(ds);
    ck_assert_ptr_nonnull(srs);
    ck_assert_str_eq(OSRGetAuthorityCode(srs, NULL), "32643");
    GDALRasterBandH b = GDALGetRasterBand(ds, 1);
    int has = 0;
    ck_assert(GDALGetRasterNoDataValue(b, &has) == 255 && has);
    ck_assert_ptr_nonnull(GDALGetRasterColorTable(b));
    ck_assert_int_ge(GDALGetOverviewCount(b), 1);
    ck_assert_str_eq(GDALGetMetadataItem(ds, "GSEG_MODEL", NULL), "ndsi:green=2,swir=5");
    char **cats = GDALGetRasterCategoryNames(b);
    ck_assert(CSLCount(cats) >= 2 && strcmp(cats[1], "glacier") == 0);
    GDALClose(ds);
    ck_assert_int_eq(tu_system("/usr/bin/python3 -m osgeo_utils.samples.validate_cloud_optimized_geotiff "
                               "-q '%s'", out), 0);
    free(dir);
}
END_TEST

static void CPL_STDCALL keep_warning(CPLErr cls, CPLErrorNum no, const char *msg)
{
    (void)no;
    if (cls == CE_Warning) snprintf(CPLGetErrorHandlerUserData(), 1024, "%s", msg);
}

/* Reference ground area of the glacier pixels of a mask: each pixel on its
 * own, its outline densified (4 points per side) into longitude, latitude
 * and its geodesic area taken there. Slow and simple, unlike the library. */
static double pixel_by_pixel_km2(const char *scene, const uint8_t *m, int w, int h)
{
    GDALDatasetH ds = GDALOpen(scene, GA_ReadOnly);
    double gt[6];
    ck_assert_int_eq(GDALGetGeoTransform(ds, gt), CE_None);
    OGRSpatialReferenceH srs = OSRClone(GDALGetSpatialRef(ds));
    OGRSpatialReferenceH geog = OSRCloneGeogCS(srs);
    OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(geog, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(srs, geog);
    ck_assert_ptr_nonnull(ct);
    struct geod_geodesic g;
    geod_init(&g, OSRGetSemiMajor(geog, NULL), 1 / OSRGetInvFlattening(geog, NULL));
    static const int cx[4] = {0, 1, 1, 0}, cy[4] = {0, 0, 1, 1};
    double total = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (m[(size_t)y * w + x] != 1) continue;
            double lon[16], lat[16], a = 0;
            for (int k = 0; k < 16; k++) {
                int c = k / 4, d = (c + 1) % 4;
                double t = (k % 4) / 4.0;
                double px = x + cx[c] + (cx[d] - cx[c]) * t, py = y + cy[c] + (cy[d] - cy[c]) * t;
                lon[k] = gt[0] + px * gt[1] + py * gt[2];
                lat[k] = gt[3] + px * gt[4] + py * gt[5];
            }
            ck_assert(OCTTransform(ct, 16, lon, lat, NULL));
            geod_polygonarea(&g, lat, lon, 16, &a, NULL);
            total += fabs(a);
        }
    OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(geog);
    OSRDestroySpatialReference(srs);
    GDALClose(ds);
    return total / 1e6;
}

/* Per-class areas are each pixel's area on the ellipsoid, whatever the
 * grid: UTM far from its central meridian, polar stereographic around and
 * away from the pole (where |det(geotransform)| is 2-6 % off), a rotated
 * geographic grid and a north-up one. */
START_TEST(test_class_areas_on_the_ellipsoid)
{
    gseg_init();
    char *dir = tu_tmpdir("areas");
    struct {
        const char *name;
        double gt[6];
        int epsg;
    } grids[] = {
        {"utm_edge", {200000, 30, 0, 4000000, 0, -30}, 32645},
        {"pole", {-96000, 1000, 0, 96000, 0, -1000}, 3031},
        {"ps_away", {-1500000, 250, 0, 800000, 0, -250}, 3031},
        {"geo_rotated", {10, 0.00707, 0.00707, 68, 0.00707, -0.00707}, 4326},
        {"geo", {-73.2, 0.002, 0, -49.5, 0, -0.002}, 4326},
    };
    for (size_t i = 0; i < sizeof grids / sizeof *grids; i++) {
        char scene[4200], out[4200];
        snprintf(scene, sizeof scene, "%s/%s.tif", dir, grids[i].name);
        snprintf(out, sizeof out, "%s/%s_mask.tif", dir, grids[i].name);
        make_scene(scene, 192, 176, grids[i].gt, grids[i].epsg);
        const char *in[] = {scene};
        gseg_predict_params p = params_for(in, 1, out);
        p.tile = 64;
        p.overlap = 8;
        gseg_predict_stats st;
        ck_gseg(gseg_predict(&p, NULL, NULL, &st));
        int w, h;
        uint8_t *m = read_mask(out, &w, &h);
        double ref = pixel_by_pixel_km2(scene, m, w, h);
        double flat = (double)st.class_pixels[1] * fabs(grids[i].gt[1] * grids[i].gt[5] -
                                                         grids[i].gt[2] * grids[i].gt[4]) / 1e6;
        ck_assert_msg(st.class_pixels[1] > 1000, "%s: %lld glacier pixels", grids[i].name,
                      st.class_pixels[1]);
        ck_assert_msg(fabs(st.class_km2[1] / ref - 1) < 1e-4,
                      "%s: glacier %.6f km2, pixel by pixel %.6f (flat %.6f)", grids[i].name,
                      st.class_km2[1], ref, flat);
        free(m);
    }
    free(dir);
}
END_TEST

START_TEST(test_rotated_and_missing_georef)
{
    gseg_init();
    char *dir = tu_tmpdir("rot");
    char scene[4200], out[4200];
    const double rot[6] = {350000.5, 21.2132, 21.2132, 5000000.25, 21.2132, -21.2132};
    snprintf(scene, sizeof scene, "%s/rot.tif", dir);
    snprintf(out, sizeof out, "%s/rot_mask.tif", dir);
    make_scene(scene, 200, 150, rot, 32611);
    const char *in[] = {scene};
    gseg_predict_params p = params_for(in, 1, out);
    p.tile = 64;
    p.overlap = 8;
    ck_gseg(gseg_predict(&p, NULL, NULL, NULL));
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    double gt[6];
    ck_assert_int_eq(GDALGetGeoTransform(ds, gt), CE_None);
    for (int i = 0; i < 6; i++) ck_assert(gt[i] == rot[i]);
    GDALClose(ds);

    snprintf(scene, sizeof scene, "%s/nogeo.tif", dir);
    snprintf(out, sizeof out, "%s/nogeo_mask.tif", dir);
    make_scene(scene, 100, 80, NULL, 0);
    char warning[1024] = "";
    CPLPushErrorHandlerEx(keep_warning, warning);
    ck_gseg(gseg_predict(&p, NULL, NULL, NULL));
    CPLPopErrorHandler();
    ck_assert_msg(strstr(warning, "nogeo.tif") && strstr(warning, "no georeferencing"),
                  "warning was '%s'", warning);
    /* a geotransform without a CRS: said, as areas are unknown */
    char scene2[4200], out2[4200];
    snprintf(scene2, sizeof scene2, "%s/nocrs.tif", dir);
    snprintf(out2, sizeof out2, "%s/nocrs_mask.tif", dir);
    make_scene(scene2, 100, 80, utm_gt, 0);
    const char *in2[] = {scene2};
    gseg_predict_params p2 = params_for(in2, 1, out2);
    warning[0] = '\0';
    gseg_predict_stats st2;
    CPLPushErrorHandlerEx(keep_warning, warning);
    ck_gseg(gseg_predict(&p2, NULL, NULL, &st2));
    CPLPopErrorHandler();
    ck_assert_msg(strstr(warning, "nocrs.tif") && strstr(warning, "no CRS"), "warning was '%s'",
                  warning);
    ck_assert(isnan(st2.class_km2[1]));
    ds = GDALOpen(out, GA_ReadOnly);
    ck_assert_ptr_nonnull(ds);
    ck_assert_int_ne(GDALGetGeoTransform(ds, gt), CE_None);
    ck_assert_ptr_null(GDALGetSpatialRef(ds));
    GDALClose(ds);
    free(dir);
}
END_TEST

START_TEST(test_band_stack_files)
{
    /* The same bands as two single-band files give the same mask. */
    gseg_init();
    char *dir = tu_tmpdir("stack");
    char scene[4200], g[4200], s[4200], out1[4200], out2[4200];
    snprintf(scene, sizeof scene, "%s/scene.tif", dir);
    snprintf(g, sizeof g, "%s/LC08_T1_SR_B3.TIF", dir);
    snprintf(s, sizeof s, "%s/LC08_T1_SR_B6.TIF", dir);
    snprintf(out1, sizeof out1, "%s/m1.tif", dir);
    snprintf(out2, sizeof out2, "%s/m2.tif", dir);
    make_scene(scene, 260, 190, utm_gt, 32643);
    ck_assert_int_eq(tu_system("gdal_translate -q -b 2 '%s' '%s' && gdal_translate -q -b 5 '%s' '%s'",
                               scene, g, scene, s), 0);
    const char *in1[] = {scene};
    gseg_predict_params p = params_for(in1, 1, out1);
    p.tile = 64;
    p.overlap = 16;
    ck_gseg(gseg_predict(&p, NULL, NULL, NULL));
    const char *in2[] = {g, s};
    p = params_for(in2, 2, out2);
    p.model = "ndsi:green=B3,swir=B6"; /* band names from Landsat file stems */
    p.tile = 64;
    p.overlap = 16;
    ck_gseg(gseg_predict(&p, NULL, NULL, NULL));
    int w, h, w2, h2;
    uint8_t *a = read_mask(out1, &w, &h), *b = read_mask(out2, &w2, &h2);
    ck_assert(w == w2 && h == h2);
    ck_assert(memcmp(a, b, (size_t)w * h) == 0);
    free(a);
    free(b);
    free(dir);
}
END_TEST

START_TEST(test_nodata_tiles_skipped)
{
    /* A scene whose right half is nodata: those tiles are skipped and the
     * mask says nodata (255) there and nowhere else. */
    gseg_init();
    char *dir = tu_tmpdir("skip");
    char scene[4200], out[4200];
    snprintf(scene, sizeof scene, "%s/half.tif", dir);
    snprintf(out, sizeof out, "%s/half_mask.tif", dir);
    make_scene(scene, 400, 200, utm_gt, 32643);
    GDALDatasetH ds = GDALOpen(scene, GA_Update);
    uint16_t *zero = calloc(200 * 200, sizeof *zero);
    for (int b = 1; b <= 6; b++)
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, 200, 0, 200, 200, zero,
                                      200, 200, GDT_UInt16, 0, 0), CE_None);
    GDALClose(ds);
    free(zero);
    const char *in[] = {scene};
    gseg_predict_params p = params_for(in, 1, out);
    p.tile = 64;
    p.overlap = 8;
    gseg_predict_stats st;
    ck_gseg(gseg_predict(&p, NULL, NULL, &st));
    ck_assert_int_gt(st.tiles_skipped, 0);
    ck_assert_int_lt(st.tiles_skipped, st.tiles);
    int w, h;
    uint8_t *m = read_mask(out, &w, &h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = m[(size_t)y * w + x];
            if (x >= 200) ck_assert_int_eq(v, 255);
            else if (x + y >= 12) ck_assert_int_ne(v, 255);
        }
    ck_assert_int_eq(st.valid_pixels, 200LL * 200 - 78); /* minus the nodata corner */
    free(m);
    free(dir);
}
END_TEST

START_TEST(test_bad_input)
{
    gseg_init();
    char *dir = tu_tmpdir("bad");
    char scene[4200], bad[4200], out[4200], f[4200];
    snprintf(scene, sizeof scene, "%s/scene.tif", dir);
    snprintf(bad, sizeof bad, "%s/corrupt.tif", dir);
    snprintf(out, sizeof out, "%s/out.tif", dir);
    make_scene(scene, 64, 64, utm_gt, 32643);
    FILE *fp = fopen(bad, "wb");
    for (int i = 0; i < 5000; i++) fputc((i * 7919) & 0xff, fp);
    fclose(fp);

    const char *in[] = {bad};
    gseg_predict_params p = params_for(in, 1, out);
    ck_assert_int_eq(gseg_predict(&p, NULL, NULL, NULL), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "corrupt.tif"));
    ck_assert_ptr_null(strchr(gseg_last_error(), '\n'));

    const char *in2[] = {scene};
    p = params_for(in2, 1, out);
    p.model = "ndsi:green=2,swir=9";
    ck_assert_int_eq(gseg_predict(&p, NULL, NULL, NULL), GSEG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "band 9"));
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "scene.tif"));

    p.model = "ndsi:green=2";
    ck_assert_int_eq(gseg_predict(&p, NULL, NULL, NULL), GSEG_ERR_ARG);
    p.model = "ndsi:green=2,swir=5,threshold=abc";
    ck_assert_int_eq(gseg_predict(&p, NULL, NULL, NULL), GSEG_ERR_ARG);
    p.model = "resnet9000.pt";
    ck_assert_int_ne(gseg_predict(&p, NULL, NULL, NULL), GSEG_OK);

    p = params_for(in2, 1, "/nonexistent-dir/out.tif");
    ck_assert_int_eq(gseg_predict(&p, NULL, NULL, NULL), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "/nonexistent-dir/out.tif"));

    p = params_for(in2, 1, scene); /* would overwrite the input */
    ck_assert_int_eq(gseg_predict(&p, NULL, NULL, NULL), GSEG_ERR_ARG);

    /* stacked files on different CRSs, and disjoint files */
    snprintf(f, sizeof f, "%s/other_crs.tif", dir);
    make_scene(f, 64, 64, utm_gt, 32644);
    const char *in3[] = {scene, f};
    p = params_for(in3, 2, out);
    p.model = "ndsi:green=2,swir=11";
    ck_assert_int_eq(gseg_predict(&p, NULL, NULL, NULL), GSEG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "other_crs.tif"));
    const double far_gt[6] = {900000.0, 30.0, 0.0, 3000000.0, 0.0, -30.0};
    snprintf(f, sizeof f, "%s/far.tif", dir);
    make_scene(f, 64, 64, far_gt, 32643);
    in3[1] = f;
    ck_assert_int_eq(gseg_predict(&p, NULL, NULL, NULL), GSEG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "overlap"));

    /* a file declaring absurd dimensions */
    snprintf(f, sizeof f, "%s/huge.tif", dir);
    const char *co[] = {"SPARSE_OK=YES", "TILED=YES", "BIGTIFF=YES", NULL};
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), f, 2000000, 2000000, 6, GDT_UInt16,
                                 (char **)co);
    ck_assert_ptr_nonnull(ds);
    GDALClose(ds);
    in3[0] = f;
    p = params_for(in3, 1, out);
    ck_assert_int_eq(gseg_predict(&p, NULL, NULL, NULL), GSEG_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "huge.tif"));

    /* nothing was left behind under the output name */
    struct stat sb;
    ck_assert_int_ne(stat(out, &sb), 0);
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);
    free(dir);
}
END_TEST

START_TEST(test_cli_parse)
{
    gseg_init();
    gseg_predict_cli *c = NULL;
    char *ok[] = {"gseg-predict", "--model", "ndsi:green=3,swir=6", "--image_path", "a.tif", "b.tif",
                  "-o", "m.tif", "-of", "GTiff", "-co", "COMPRESS=LZW", "-co", "TILED=YES",
                  "--tile", "256", "--overlap", "32", "--vector", "o.gpkg", "--min-area", "0.5",
                  "--simplify", "15", "-f", "GeoJSON", "--t_srs", "EPSG:4326", "--threshold", "0.3",
                  "--band-file", "c.tif", "-q", NULL};
    ck_gseg(gseg_predict_cli_parse(33, ok, &c));
    const gseg_predict_params *p = gseg_predict_cli_params(c);
    ck_assert_str_eq(p->model, "ndsi:green=3,swir=6");
    ck_assert_int_eq(p->ninputs, 3);
    ck_assert_str_eq(p->inputs[0], "a.tif");
    ck_assert_str_eq(p->inputs[2], "c.tif");
    ck_assert_str_eq(p->output, "m.tif");
    ck_assert_str_eq(p->format, "GTiff");
    ck_assert_str_eq(p->create_options[1], "TILED=YES");
    ck_assert_int_eq(p->tile, 256);
    ck_assert_int_eq(p->overlap, 32);
    ck_assert_str_eq(p->vector, "o.gpkg");
    ck_assert_str_eq(p->vector_format, "GeoJSON");
    ck_assert_double_eq(p->min_area_km2, 0.5);
    ck_assert_double_eq(p->simplify_m, 15);
    ck_assert_double_eq(p->threshold, 0.3);
    ck_assert_int_eq(gseg_predict_cli_quiet(c), 1);
    gseg_predict_cli_free(c);

    char *help[] = {"gseg-predict", "--help", NULL};
    ck_gseg(gseg_predict_cli_parse(2, help, &c));
    ck_assert(gseg_predict_cli_help(c));
    ck_assert_ptr_nonnull(strstr(gseg_predict_usage(), "--image_path"));
    gseg_predict_cli_free(c);

    struct { int argc; char *argv[8]; const char *msg; } bad[] = {
        {3, {"p", "--model", "ndsi:green=1,swir=2"}, "no input"},
        {5, {"p", "--image_path", "a.tif", "--tile", "abc"}, "--tile"},
        {5, {"p", "--image_path", "a.tif", "--tile", "4"}, "--tile"},
        {7, {"p", "--image_path", "a.tif", "--tile", "64", "--overlap", "64"}, "overlap"},
        {4, {"p", "a.tif", "-co", "NOVALUE"}, "KEY=VALUE"},
        {3, {"p", "a.tif", "--bogus"}, "unknown option --bogus"},
        {3, {"p", "a.tif", "--tile"}, "needs a value"},
        {4, {"p", "a.tif", "--min-area", "-1"}, "--min-area"},
        /* values every scene would fail on */
        {4, {"p", "a.tif", "-of", "MEM"}, "writes no raster file"},
        {4, {"p", "a.tif", "-of", "NOSUCH"}, "unknown raster format"},
        {4, {"p", "a.tif", "-of", "JPEG"}, "lossy"},
        {6, {"p", "a.tif", "-of", "GTiff", "-co", "COMPRESS=JPEG"}, "lossy"},
        {4, {"p", "a.tif", "--device", "gpu"}, "--device 'gpu'"},
        {4, {"p", "a.tif", "--device", "cuda:x"}, "--device 'cuda:x'"},
        {4, {"p", "a.tif", "--resampling", "foo"}, "--resampling 'foo'"},
        {4, {"p", "a.tif", "--t_srs", "EPSG:99999"}, "--t_srs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(gseg_predict_cli_parse(bad[i].argc, bad[i].argv, &c), GSEG_ERR_ARG);
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(gseg_last_error(), bad[i].msg), "case %zu: '%s'", i, gseg_last_error());
    }
}
END_TEST

START_TEST(test_tool_end_to_end)
{
    gseg_init();
    char *dir = tu_tmpdir("tool");
    char scene[4200], err[4200];
    snprintf(scene, sizeof scene, "%s/scene.tif", dir);
    snprintf(err, sizeof err, "%s/stderr.txt", dir);
    make_scene(scene, 400, 300, utm_gt, 32643);
    const char *tool = tu_build("src/tools/gseg-predict");
    ck_assert_int_eq(tu_system("'%s' --model ndsi:green=green,swir=swir1 --image_path '%s' "
                               "--vector '%s/outlines.gpkg' --min-area 0.001 --tile 128 "
                               "--overlap 16 2>'%s'", tool, scene, dir, err), 0);
    /* GDAL-style progress on stderr */
    ck_assert_int_eq(tu_system("grep -q '0\\.\\.\\.10\\.\\.\\.20' '%s'", err), 0);
    ck_assert_int_eq(tu_system("gdalinfo '%s/scene_mask.tif' | grep -q 'LAYOUT=COG'", dir), 0);
    ck_assert_int_eq(tu_system("ogrinfo -so '%s/outlines.gpkg' glaciers | grep -q 'area_km2'", dir), 0);
    ck_assert_int_eq(tu_system("ogrinfo -so '%s/outlines.gpkg' glaciers | "
                               "grep -q 'Feature Count: [1-9]'", dir), 0);
    /* usage errors exit 2, failures exit 1 with one line naming the file */
    ck_assert_int_eq(tu_system("'%s' --image_path '%s' --tile x 2>/dev/null", tool, scene), 2);
    ck_assert_int_eq(tu_system("'%s' --model ndsi:green=2,swir=5 --image_path '%s/missing.tif' -q "
                               "2>'%s'", tool, dir, err), 1);
    ck_assert_int_eq(tu_system("test $(wc -l < '%s') -eq 1 && grep -q 'missing.tif' '%s'", err, err), 0);
    ck_assert_int_eq(tu_system("'%s' --help | grep -q -- --min-area", tool), 0);
    ck_assert_int_eq(tu_system("'%s' --version | grep -q '%s'", tool, gseg_version()), 0);
    free(dir);
}
END_TEST

/* Kill gseg-predict at random moments: the final name never holds a partial
 * file; SIGTERM also removes the temporary files. */
START_TEST(test_killed_run_leaves_no_output)
{
    gseg_init();
    char *dir = tu_tmpdir("kill");
    char scene[4200], out[4200];
    snprintf(scene, sizeof scene, "%s/big.tif", dir);
    snprintf(out, sizeof out, "%s/big_mask.tif", dir);
    make_scene(scene, 2500, 2500, utm_gt, 32643);
    const char *tool = tu_build("src/tools/gseg-predict");
    /* A complete run, to compare against. */
    ck_assert_int_eq(tu_system("'%s' --model ndsi:green=2,swir=5 --image_path '%s' -o '%s/ref.tif' "
                               "-q --tile 256 && gdalinfo -checksum '%s/ref.tif' | grep Checksum > "
                               "'%s/ref.sum'", tool, scene, dir, dir, dir), 0);
    srand((unsigned)time(NULL));
    int completed = 0, killed = 0;
    for (int round = 0; round < 8; round++) {
        unlink(out);
        int sig = round % 2 ? SIGTERM : SIGKILL;
        pid_t pid = fork();
        if (pid == 0) {
            execl(tool, tool, "--model", "ndsi:green=2,swir=5", "--image_path", scene, "-o", out,
                  "-q", "--tile", "256", (char *)NULL);
            _exit(127);
        }
        usleep((useconds_t)(50000 + rand() % 900000));
        kill(pid, sig);
        int status = 0;
        waitpid(pid, &status, 0);
        struct stat sb;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            completed++;
            ck_assert_int_eq(tu_system("gdalinfo -checksum '%s' >/dev/null 2>&1", out), 0);
        } else {
            killed++;
            /* Killed after the rename (while exiting): then the file must
             * be the whole result. */
            if (stat(out, &sb) == 0)
                ck_assert_msg(tu_system("gdalinfo -checksum '%s' | grep Checksum | cmp -s - '%s/ref.sum'",
                                        out, dir) == 0,
                              "killed run left an incomplete %s", out);
            if (sig == SIGTERM)
                ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);
        }
        tu_system("rm -f '%s'/.*gseg-tmp*", dir);
    }
    ck_assert_int_gt(killed, 0);
    (void)completed;
    free(dir);
}
END_TEST


/* Several scenes in one folder, for the batch tests: n scenes of slightly
 * different sizes; returns the folder (caller frees). */
static char *make_scene_folder(const char *name, int n, int size)
{
    char *dir = tu_tmpdir(name);
    char path[4300];
    snprintf(path, sizeof path, "%s/in", dir);
    mkdir(path, 0755);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/in/scene_%02d.tif", dir, i);
        make_scene(path, size + 7 * i, size - 5 * i, utm_gt, 32643);
    }
    return dir;
}

/* Shards 0/2 and 1/2 (given, or from a Slurm job array's environment)
 * together write exactly the files of one unsharded run, byte for byte. */
START_TEST(test_batch_shards_equal_unsharded)
{
    gseg_init();
    char *dir = make_scene_folder("shards", 5, 160);
    const char *tool = tu_build("src/tools/gseg-predict");
    const char *common = "--model ndsi:green=2,swir=5 -q -of GTiff --tile 64 --overlap 8";
    ck_assert_int_eq(tu_system("cd '%s' && '%s' %s in -o 'all/{stem}.tif' --vector 'all/{stem}.gpkg'",
                               dir, tool, common), 0);
    ck_assert_int_eq(tu_system("cd '%s' && '%s' %s in -o 'sh/{stem}.tif' --shard 0/2 && "
                               "SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=2 '%s' %s in "
                               "-o 'sh/{stem}.tif'", dir, tool, common, tool, common), 0);
    ck_assert_int_eq(tu_system("cd '%s' && test $(ls all/*.tif | wc -l) -eq 5 && "
                               "test \"$(cd all && ls *.tif)\" = \"$(cd sh && ls *.tif)\"", dir), 0);
    ck_assert_int_eq(tu_system("cd '%s' && for f in all/*.tif; do cmp -s $f sh/${f#all/} || exit 1; "
                               "done", dir), 0);
    /* shard 1/2 alone wrote scenes 1 and 3 of 0..4 */
    ck_assert_int_eq(tu_system("cd '%s' && rm -r sh && SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_MIN=4 "
                               "SLURM_ARRAY_TASK_COUNT=2 '%s' %s in -o sh/ && test \"$(cd sh && ls *.tif)\" = "
                               "\"$(printf 'scene_01_mask.tif\\nscene_03_mask.tif')\"",
                               dir, tool, common), 0);
    /* a bad shard is a usage error */
    ck_assert_int_eq(tu_system("cd '%s' && '%s' %s in -o sh/ --shard 2/2 2>/dev/null", dir, tool,
                               common), 2);
    free(dir);
}
END_TEST

/* A run over several scenes killed at a random moment, rerun with
 * --skip-existing, ends with every output equal to an uninterrupted run's;
 * finished scenes are not redone. */
START_TEST(test_batch_killed_then_skip_existing)
{
    gseg_init();
    char *dir = make_scene_folder("resume", 4, 1100);
    const char *tool = tu_build("src/tools/gseg-predict");
    const char *common = "--model ndsi:green=2,swir=5 -q --tile 256 --overlap 32";
    ck_assert_int_eq(tu_system("cd '%s' && '%s' %s in -o ref/ && cd ref && "
                               "for f in *.tif; do gdalinfo -checksum $f | grep Checksum; done "
                               "> ../ref.sum", dir, tool, common), 0);
    srand((unsigned)time(NULL));
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(tu_system("rm -rf '%s/out'", dir), 0);
        char cmd[8600];
        snprintf(cmd, sizeof cmd, "cd '%s' && exec '%s' %s in -o out/", dir, tool, common);
        pid_t pid = fork();
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
            _exit(127);
        }
        usleep((useconds_t)(100000 + rand() % 1500000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        /* every mask under its final name is complete */
        ck_assert_int_eq(tu_system("cd '%s' && mkdir -p out && for f in $(cd out && ls *.tif 2>/dev/null); do "
                                   "gdalinfo -checksum out/$f | grep Checksum | "
                                   "grep -qxF -f - ref.sum || exit 1; done", dir), 0);
        int done_before = tu_system("cd '%s' && ls out/*.tif >/dev/null 2>&1", dir) == 0;
        /* SIGKILL leaves the killed run's hidden temporary files; the
         * rerun removes them as it writes the same outputs */
        ck_assert_int_eq(tu_system("cd '%s' && '%s' %s in -o out/ --skip-existing "
                                   "--summary run.json", dir, tool, common), 0);
        ck_assert_int_eq(tu_system("cd '%s' && cd out && for f in *.tif; do gdalinfo -checksum "
                                   "$f | grep Checksum; done | cmp -s - ../ref.sum", dir), 0);
        ck_assert_int_eq(tu_system("cd '%s' && ls -a out | grep -q gseg-tmp", dir), 1);
        if (done_before)
            ck_assert_int_eq(tu_system("grep -q '\"scenes_skipped\": [1-9]' '%s/run.json'", dir), 0);
    }
    free(dir);
}
END_TEST

/* A failed scene is reported and skipped, the others run, the exit code
 * says so, and the summary lists everything. */
START_TEST(test_batch_failures_and_summary)
{
    gseg_init();
    char *dir = make_scene_folder("failures", 2, 120);
    const char *tool = tu_build("src/tools/gseg-predict");
    char list[4400];
    snprintf(list, sizeof list, "%s/list.txt", dir);
    FILE *f = fopen(list, "w");
    fprintf(f, "# scenes\nin/scene_00.tif\n\nin/missing.tif\n  in/scene_01.tif  \n");
    fclose(f);
    ck_assert_int_eq(tu_system("cd '%s' && '%s' --model ndsi:green=2,swir=5 --scene-list list.txt "
                               "-o 'out/{index}_{stem}.tif' --summary out/run.json "
                               ">stdout.txt 2>stderr.txt", dir, tool), 1);
    ck_assert_int_eq(tu_system("cd '%s' && test -f out/0_scene_00.tif && test -f "
                               "out/2_scene_01.tif && test ! -e out/1_missing.tif", dir), 0);
    ck_assert_int_eq(tu_system("cd '%s' && grep -q 'missing.tif' stderr.txt && "
                               "grep -q '1 of 3 scenes failed' stderr.txt && "
                               "test $(grep -c 'glacier on' stdout.txt) -eq 2", dir), 0);
    ck_assert_int_eq(tu_system(
        "cd '%s' && /usr/bin/python3 -c \"import json; s = json.load(open('out/run.json')); "
        "st = [x['status'] for x in s['scenes']]; "
        "assert st == ['ok', 'failed', 'ok'], st; "
        "assert s['scenes_failed'] == 1 and 'missing.tif' in s['scenes'][1]['error']; "
        "ok = s['scenes'][0]; "
        "assert ok['pixels'] == ok['width'] * ok['height'] == 120 * 120; "
        "g = ok['classes']['glacier']; assert abs(g['km2'] / (g['pixels'] * 900e-6) - 1) < 1e-3; "
        "assert abs(s['glacier_km2'] - sum(x['glacier_km2'] for x in s['scenes'] if x['status'] == 'ok')) < 1e-6\"",
        dir), 0);
    /* stdin lists; the summary on stdout moves the result lines to stderr */
    ck_assert_int_eq(tu_system("cd '%s' && ls in/*.tif | '%s' --model ndsi:green=2,swir=5 -q "
                               "--scene-list - -o out2/ --summary - | /usr/bin/python3 -c "
                               "\"import json, sys; assert json.load(sys.stdin)['scenes_ok'] == 2\"",
                               dir, tool), 0);
    /* a broken file in a folder (zero bytes, named as a scene) fails by
     * name; it is not skipped as if it were not a scene */
    ck_assert_int_eq(tu_system("cd '%s' && mkdir -p in3 && cp in/scene_00.tif in3/ && : > "
                               "in3/broken.TIF && : > in3/notes.txt && '%s' --model "
                               "ndsi:green=2,swir=5 -q in3 -o out3/ 2>err3.txt; test $? -eq 1 "
                               "&& grep -q 'broken.TIF' err3.txt && ! grep -q notes err3.txt && "
                               "test -f out3/scene_00_mask.tif",
                               dir, tool), 0);
    /* outputs written into the scenes' folder are not scenes of a rerun,
     * so {index} stays the same and --skip-existing skips everything */
    ck_assert_int_eq(tu_system("cd '%s' && mkdir -p in5 && cp in/scene_0*.tif in5/ && "
                               "'%s' --model ndsi:green=2,swir=5 -q in5 -o 'in5/{index}_{stem}.tif' "
                               "--quicklook 'in5/{stem}_ql.png' && ls in5 > before.txt && "
                               "'%s' --model ndsi:green=2,swir=5 in5 -o 'in5/{index}_{stem}.tif' "
                               "--quicklook 'in5/{stem}_ql.png' --skip-existing > skip.txt 2>&1 && "
                               "test $(grep -c 'skipped' skip.txt) -eq 2 && ls in5 | cmp -s - "
                               "before.txt && test -f in5/1_scene_01.tif",
                               dir, tool, tool), 0);
    /* a mask and a shapefile of one stem would share the QGIS style file */
    ck_assert_int_eq(tu_system("cd '%s' && '%s' --model ndsi:green=2,swir=5 -q in/scene_00.tif "
                               "-o q.tif --vector q.shp 2>errq.txt; test $? -eq 1 && grep -q "
                               "'share the style file' errq.txt && test ! -e q.tif",
                               dir, tool), 0);
    /* a summary that cannot be written fails the run before any scene */
    ck_assert_int_eq(tu_system("cd '%s' && '%s' --model ndsi:green=2,swir=5 -q in -o out4/ "
                               "--summary /proc/none/run.json 2>err4.txt; test $? -eq 1 && "
                               "grep -q 'summary' err4.txt && test ! -e out4",
                               dir, tool), 0);
    /* one output name for several scenes is a usage error, before any work */
    ck_assert_int_eq(tu_system("cd '%s' && '%s' --model ndsi:green=2,swir=5 in -o one.tif "
                               "2>err.txt; test $? -eq 2 && grep -q 'template' err.txt && "
                               "test ! -e one.tif", dir, tool), 0);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("predict");
    TCase *tc = tcase_create("ndsi");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_seam_identical_to_whole_scene);
    tcase_add_test(tc, test_matches_numpy_peer);
    tcase_add_test(tc, test_output_georef_and_cog);
    tcase_add_test(tc, test_rotated_and_missing_georef);
    tcase_add_test(tc, test_class_areas_on_the_ellipsoid);
    tcase_add_test(tc, test_band_stack_files);
    tcase_add_test(tc, test_nodata_tiles_skipped);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_cli_parse);
    tcase_add_test(tc, test_tool_end_to_end);
    tcase_add_test(tc, test_killed_run_leaves_no_output);
    tcase_add_test(tc, test_batch_shards_equal_unsharded);
    tcase_add_test(tc, test_batch_killed_then_skip_existing);
    tcase_add_test(tc, test_batch_failures_and_summary);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
