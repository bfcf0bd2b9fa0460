/*
 * check_synth.c — gseg_synth_scene: determinism, file layout and
 * georeferencing, value ranges, and the physics a learned model is meant to
 * exploit: NDSI = (green - swir1) / (green + swir1) > 0.4 finds clean ice in
 * the accumulation areas but misses the debris-covered tongues, and flags
 * seasonal snow that the truth does not count as glacier. The checks read
 * the files back through GDAL and recompute everything from the bands.
 */
#include "testutil.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A scene read back: bands as float, mask as bytes. */
typedef struct scene {
    int w, h;
    float *band[7]; /* blue green red nir swir1 swir2 elevation */
    uint8_t *mask;
} scene;

static void scene_read(scene *sc, const char *img, const char *msk)
{
    GDALDatasetH ds = GDALOpen(img, GA_ReadOnly);
    ck_assert_msg(ds != NULL, "cannot open %s", img);
    ck_assert_int_eq(GDALGetRasterCount(ds), 7);
    sc->w = GDALGetRasterXSize(ds);
    sc->h = GDALGetRasterYSize(ds);
    size_t n = (size_t)sc->w * sc->h;
    for (int b = 0; b < 7; b++) {
        sc->band[b] = malloc(n * sizeof(float));
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, b + 1), GF_Read, 0, 0, sc->w, sc->h,
                                      sc->band[b], sc->w, sc->h, GDT_Float32, 0, 0),
                         CE_None);
    }
    GDALClose(ds);
    ds = GDALOpen(msk, GA_ReadOnly);
    ck_assert_msg(ds != NULL, "cannot open %s", msk);
    ck_assert_int_eq(GDALGetRasterXSize(ds), sc->w);
    ck_assert_int_eq(GDALGetRasterYSize(ds), sc->h);
    sc->mask = malloc(n);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, 0, 0, sc->w, sc->h, sc->mask,
                                  sc->w, sc->h, GDT_Byte, 0, 0),
                     CE_None);
    GDALClose(ds);
}

static void scene_free(scene *sc)
{
    for (int b = 0; b < 7; b++) free(sc->band[b]);
    free(sc->mask);
}

static double ndsi(const scene *sc, size_t i)
{
    double g = sc->band[1][i], s = sc->band[4][i];
    return (g - s) / (g + s);
}

/* Whole file as bytes; *len gets its size. */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int same_bytes(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static int exists(const char *path)
{
    VSIStatBufL sb;
    return VSIStatL(path, &sb) == 0;
}

/* Paths under a fresh folder; static buffers, one set per call site. */
#define PATH(buf, dir, name) (snprintf(buf, sizeof buf, "%s/%s", dir, name), buf)

static gseg_synth_params small_params(unsigned long seed)
{
    gseg_synth_params p = gseg_synth_params_default();
    p.width = 256;
    p.height = 192;
    p.seed = seed;
    return p;
}

/* No temporary file of the atomic writers is left in dir. */
static void assert_no_temp_files(const char *dir)
{
    char **entries = VSIReadDir(dir);
    for (char **e = entries; e && *e; e++)
        ck_assert_msg(strstr(*e, "gseg-tmp") == NULL, "temporary file left behind: %s", *e);
    CSLDestroy(entries);
}

/* ------------------------------------------------------------------------ */

START_TEST(test_defaults)
{
    gseg_init();
    gseg_synth_params p = gseg_synth_params_default();
    ck_assert_int_eq(p.width, 512);
    ck_assert_int_eq(p.height, 512);
    ck_assert_uint_eq(p.seed, 1);
    ck_assert_double_eq(p.pixel_size, 30.0);
    ck_assert_int_eq(p.epsg, 32643);
    ck_assert_double_eq(p.snowline_m, 4800.0);
    ck_assert_double_eq(p.cloud_cover, 0.1);
    ck_assert_double_eq(p.seasonal_snow, 0.3);
    /* The default origin lies inside UTM 43N's usable range. */
    ck_assert(p.origin_x > 166000 && p.origin_x + p.width * p.pixel_size < 834000);
    ck_assert(p.origin_y > 2000000 && p.origin_y < 6000000);
}
END_TEST

START_TEST(test_deterministic)
{
    gseg_init();
    char *dir = tu_tmpdir("synth-det");
    char a[4200], am[4200], b[4200], bm[4200], c[4200], cm[4200];
    gseg_synth_params p = small_params(42);
    ck_gseg(gseg_synth_scene(&p, PATH(a, dir, "a.tif"), PATH(am, dir, "am.tif"), NULL));
    ck_gseg(gseg_synth_scene(&p, PATH(b, dir, "b.tif"), PATH(bm, dir, "bm.tif"), NULL));
    ck_assert_msg(same_bytes(a, b), "same seed, different image files");
    ck_assert_msg(same_bytes(am, bm), "same seed, different mask files");
    p.seed = 43;
    ck_gseg(gseg_synth_scene(&p, PATH(c, dir, "c.tif"), PATH(cm, dir, "cm.tif"), NULL));
    ck_assert_msg(!same_bytes(a, c), "different seeds, same image");
    scene s1, s2;
    scene_read(&s1, a, am);
    scene_read(&s2, c, cm);
    size_t n = (size_t)s1.w * s1.h, diff = 0;
    for (size_t i = 0; i < n; i++) diff += s1.band[6][i] != s2.band[6][i];
    ck_assert_msg(diff > n / 2, "different seeds share %zu of %zu elevations", n - diff, n);
    scene_free(&s1);
    scene_free(&s2);
    assert_no_temp_files(dir);
    free(dir);
}
END_TEST

START_TEST(test_layout)
{
    gseg_init();
    char *dir = tu_tmpdir("synth-layout");
    char img[4200], msk[4200];
    gseg_synth_params p = small_params(5);
    p.pixel_size = 20.0;
    p.epsg = 32644;
    p.origin_x = 400000;
    p.origin_y = 3500000;
    ck_gseg(gseg_synth_scene(&p, PATH(img, dir, "i.tif"), PATH(msk, dir, "m.tif"), NULL));

    static const char *names[7] = {"blue", "green", "red", "nir", "swir1", "swir2", "elevation"};
    const char *files[2] = {img, msk};
    for (int f = 0; f < 2; f++) {
        GDALDatasetH ds = GDALOpen(files[f], GA_ReadOnly);
        ck_assert_ptr_nonnull(ds);
        ck_assert_str_eq(GDALGetDriverShortName(GDALGetDatasetDriver(ds)), "GTiff");
        ck_assert_int_eq(GDALGetRasterXSize(ds), 256);
        ck_assert_int_eq(GDALGetRasterYSize(ds), 192);
        double gt[6];
        ck_assert_int_eq(GDALGetGeoTransform(ds, gt), CE_None);
        ck_assert_double_eq_tol(gt[0], 400000.0, 1e-6);
        ck_assert_double_eq_tol(gt[3], 3500000.0, 1e-6);
        ck_assert_double_eq_tol(gt[1], 20.0, 1e-9);
        ck_assert_double_eq_tol(gt[5], -20.0, 1e-9);
        ck_assert_double_eq(gt[2], 0.0);
        ck_assert_double_eq(gt[4], 0.0);
        OGRSpatialReferenceH srs = GDALGetSpatialRef(ds);
        ck_assert_ptr_nonnull(srs);
        OGRSpatialReferenceH copy = OSRClone(srs);
        OSRAutoIdentifyEPSG(copy);
        const char *code = OSRGetAuthorityCode(copy, NULL);
        ck_assert_ptr_nonnull(code);
        ck_assert_int_eq(atoi(code), 32644);
        OSRRelease(copy);
        const char *compression = GDALGetMetadataItem(ds, "COMPRESSION", "IMAGE_STRUCTURE");
        ck_assert_ptr_nonnull(compression);
        ck_assert_str_eq(compression, "DEFLATE");
        int bx, by;
        GDALGetBlockSize(GDALGetRasterBand(ds, 1), &bx, &by);
        ck_assert_int_eq(bx, 256);
        ck_assert_int_eq(by, 256);
        if (f == 0) {
            for (int b = 0; b < 7; b++) {
                GDALRasterBandH bh = GDALGetRasterBand(ds, b + 1);
                ck_assert_str_eq(GDALGetDescription(bh), names[b]);
                ck_assert_int_eq(GDALGetRasterDataType(bh), GDT_UInt16);
                int has;
                double nd = GDALGetRasterNoDataValue(bh, &has);
                ck_assert(has && nd == 0.0);
            }
            ck_assert_ptr_nonnull(GDALGetMetadataItem(ds, "REFLECTANCE", NULL));
        } else {
            GDALRasterBandH bh = GDALGetRasterBand(ds, 1);
            ck_assert_int_eq(GDALGetRasterDataType(bh), GDT_Byte);
            GDALColorTableH ct = GDALGetRasterColorTable(bh);
            ck_assert_ptr_nonnull(ct);
            ck_assert_int_ge(GDALGetColorEntryCount(ct), 2);
            char **cats = GDALGetRasterCategoryNames(bh);
            ck_assert_int_ge(CSLCount(cats), 2);
            ck_assert_str_eq(cats[1], "glacier");
        }
        GDALClose(ds);
    }
    free(dir);
}
END_TEST

/* Values: reflectance never 0 (nodata) and in a physical range, elevation
 * in metres of a high mountain range, mask 0/1 with plausible glacier
 * cover, cloud-free reflectance within the spectra. */
START_TEST(test_values)
{
    gseg_init();
    char *dir = tu_tmpdir("synth-values");
    char img[4200], msk[4200];
    gseg_synth_params p = gseg_synth_params_default();
    ck_gseg(gseg_synth_scene(&p, PATH(img, dir, "i.tif"), PATH(msk, dir, "m.tif"), NULL));
    scene sc;
    scene_read(&sc, img, msk);
    size_t n = (size_t)sc.w * sc.h, glacier = 0;
    float zmin = 1e9f, zmax = -1e9f;
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 6; b++) {
            ck_assert_msg(sc.band[b][i] >= 1.0f, "band %d pixel %zu is 0", b + 1, i);
            ck_assert_msg(sc.band[b][i] <= 16000.0f, "band %d pixel %zu = %g", b + 1, i,
                          sc.band[b][i]);
        }
        zmin = fminf(zmin, sc.band[6][i]);
        zmax = fmaxf(zmax, sc.band[6][i]);
        ck_assert_msg(sc.mask[i] <= 1, "mask value %d", sc.mask[i]);
        glacier += sc.mask[i];
    }
    double frac = (double)glacier / n;
    ck_assert_msg(frac > 0.10 && frac < 0.50, "glacier fraction %.3f", frac);
    ck_assert_msg(zmin > 1500 && zmin < 3500 && zmax > 5500 && zmax < 8000,
                  "elevations %g .. %g m", zmin, zmax);
    /* Glaciers reach above the snowline and end below it. */
    float gmin = 1e9f, gmax = -1e9f;
    for (size_t i = 0; i < n; i++)
        if (sc.mask[i]) {
            gmin = fminf(gmin, sc.band[6][i]);
            gmax = fmaxf(gmax, sc.band[6][i]);
        }
    ck_assert_msg(gmin < p.snowline_m - 300 && gmax > p.snowline_m + 300,
                  "glaciers span %g .. %g m", gmin, gmax);
    scene_free(&sc);
    free(dir);
}
END_TEST

/* NDSI on cloud-free scenes: the accumulation areas (glacier above the
 * snowline) are clean snow and ice, NDSI > 0.4; the lowest tenth of the
 * glacier area (the tongues) is mostly debris-covered, NDSI < 0.4; overall
 * NDSI misses part of the truth, so its IoU is clearly below 1. */
START_TEST(test_ndsi_physics)
{
    gseg_init();
    char *dir = tu_tmpdir("synth-ndsi");
    char img[4200], msk[4200];
    unsigned long seeds[3] = {1, 2, 3};
    for (int k = 0; k < 3; k++) {
        gseg_synth_params p = gseg_synth_params_default();
        p.seed = seeds[k];
        p.cloud_cover = 0.0;
        ck_gseg(gseg_synth_scene(&p, PATH(img, dir, "i.tif"), PATH(msk, dir, "m.tif"), NULL));
        scene sc;
        scene_read(&sc, img, msk);
        size_t n = (size_t)sc.w * sc.h;

        /* Elevation below which the lowest 10 % of the glacier lies. */
        size_t ng = 0;
        float *gz = malloc(n * sizeof *gz);
        for (size_t i = 0; i < n; i++)
            if (sc.mask[i]) gz[ng++] = sc.band[6][i];
        ck_assert_uint_gt(ng, 1000);
        float lo = gz[0], hi = gz[0];
        for (size_t i = 0; i < ng; i++) lo = fminf(lo, gz[i]), hi = fmaxf(hi, gz[i]);
        float z10 = lo;
        for (float step = (hi - lo) / 1000; z10 < hi; z10 += step) {
            size_t below = 0;
            for (size_t i = 0; i < ng; i++) below += gz[i] < z10;
            if (below >= ng / 10) break;
        }
        free(gz);

        size_t acc = 0, acc_hi = 0, tongue = 0, tongue_lo = 0, tp = 0, fp = 0, fn = 0;
        for (size_t i = 0; i < n; i++) {
            int pred = ndsi(&sc, i) > 0.4, truth = sc.mask[i];
            tp += pred && truth;
            fp += pred && !truth;
            fn += !pred && truth;
            if (!truth) continue;
            if (sc.band[6][i] > p.snowline_m + 200) {
                acc++;
                acc_hi += pred;
            } else if (sc.band[6][i] < z10) {
                tongue++;
                tongue_lo += !pred;
            }
        }
        double acc_share = (double)acc_hi / acc, tongue_share = (double)tongue_lo / tongue;
        double iou = (double)tp / (tp + fp + fn);
        ck_assert_msg(acc_share > 0.9, "seed %lu: only %.3f of the accumulation area has NDSI > 0.4",
                      seeds[k], acc_share);
        ck_assert_msg(tongue_share > 0.6, "seed %lu: only %.3f of the tongues has NDSI < 0.4",
                      seeds[k], tongue_share);
        ck_assert_msg(iou > 0.45 && iou < 0.92, "seed %lu: NDSI IoU %.3f", seeds[k], iou);
        scene_free(&sc);
    }
    free(dir);
}
END_TEST

/* The mask is the truth of the ground: clouds and seasonal snow change the
 * image, never the mask. Seasonal snow adds NDSI > 0.4 off the glaciers;
 * clouds are bright in the visible but their NDSI stays below snow's. */
START_TEST(test_truth_is_ground)
{
    gseg_init();
    char *dir = tu_tmpdir("synth-truth");
    char img[3][4200], msk[3][4200];
    const double clouds[3] = {0.0, 0.0, 0.5}, snow[3] = {0.0, 0.8, 0.8};
    scene sc[3];
    for (int k = 0; k < 3; k++) {
        gseg_synth_params p = small_params(9);
        p.cloud_cover = clouds[k];
        p.seasonal_snow = snow[k];
        snprintf(img[k], sizeof img[k], "%s/i%d.tif", dir, k);
        snprintf(msk[k], sizeof msk[k], "%s/m%d.tif", dir, k);
        ck_gseg(gseg_synth_scene(&p, img[k], msk[k], NULL));
        scene_read(&sc[k], img[k], msk[k]);
    }
    ck_assert_msg(same_bytes(msk[0], msk[1]), "seasonal snow changed the truth mask");
    ck_assert_msg(same_bytes(msk[0], msk[2]), "clouds changed the truth mask");
    ck_assert_msg(!same_bytes(img[0], img[1]) && !same_bytes(img[1], img[2]),
                  "snow or clouds did not change the image");

    size_t n = (size_t)sc[0].w * sc[0].h, snow0 = 0, snow1 = 0, land = 0, cloud = 0, cloud_hi = 0;
    for (size_t i = 0; i < n; i++) {
        /* Off-glacier land (lakes are dark in NIR) with NDSI > 0.4. */
        if (!sc[0].mask[i] && sc[0].band[3][i] > 800) {
            land++;
            snow0 += ndsi(&sc[0], i) > 0.4;
            snow1 += ndsi(&sc[1], i) > 0.4;
        }
        /* Pixels that clouds made bright. */
        if (sc[2].band[0][i] > 4000 && sc[1].band[0][i] < 2500) {
            cloud++;
            cloud_hi += ndsi(&sc[2], i) > 0.4;
        }
    }
    ck_assert_msg(snow0 < land / 50, "no seasonal snow, yet %zu of %zu bare pixels look like snow",
                  snow0, land);
    ck_assert_msg(snow1 > snow0 + land / 20, "seasonal snow barely shows: %zu vs %zu of %zu",
                  snow1, snow0, land);
    ck_assert_msg(cloud > n / 10, "clouds brighten only %zu of %zu pixels", cloud, n);
    ck_assert_msg(cloud_hi < cloud / 50, "%zu of %zu cloud pixels have NDSI > 0.4", cloud_hi, cloud);
    for (int k = 0; k < 3; k++) scene_free(&sc[k]);
    free(dir);
}
END_TEST

START_TEST(test_outlines)
{
    gseg_init();
    char *dir = tu_tmpdir("synth-outlines");
    char img[4200], msk[4200], out[4200];
    gseg_synth_params p = gseg_synth_params_default();
    ck_gseg(gseg_synth_scene(&p, PATH(img, dir, "i.tif"), PATH(msk, dir, "m.tif"),
                             PATH(out, dir, "o.gpkg")));
    GDALDatasetH ds = GDALOpenEx(out, GDAL_OF_VECTOR, NULL, NULL, NULL);
    ck_assert_ptr_nonnull(ds);
    ck_assert_int_ge(GDALDatasetGetLayerCount(ds), 1);
    OGRLayerH lyr = GDALDatasetGetLayer(ds, 0);
    ck_assert_int_ge(OGR_L_GetFeatureCount(lyr, 1), 1);
    GDALClose(ds);
    assert_no_temp_files(dir);
    free(dir);
}
END_TEST

START_TEST(test_bad_arguments)
{
    gseg_init();
    char *dir = tu_tmpdir("synth-bad");
    char img[4200], msk[4200];
    PATH(img, dir, "i.tif");
    PATH(msk, dir, "m.tif");
    gseg_synth_params p = gseg_synth_params_default();

    p.width = 0;
    ck_assert_int_eq(gseg_synth_scene(&p, img, msk, NULL), GSEG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "i.tif"));
    p = gseg_synth_params_default();
    p.height = 15;
    ck_assert_int_eq(gseg_synth_scene(&p, img, msk, NULL), GSEG_ERR_ARG);
    p = gseg_synth_params_default();
    p.width = p.height = 2000000000;
    ck_assert_int_eq(gseg_synth_scene(&p, img, msk, NULL), GSEG_ERR_LIMIT);
    p = gseg_synth_params_default();
    p.width = p.height = 60000; /* under 2^32 pixels, far over any memory limit */
    ck_assert_int_eq(gseg_synth_scene(&p, img, msk, NULL), GSEG_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "memory"));
    p = gseg_synth_params_default();
    p.pixel_size = -30;
    ck_assert_int_eq(gseg_synth_scene(&p, img, msk, NULL), GSEG_ERR_ARG);
    p = gseg_synth_params_default();
    p.pixel_size = NAN;
    ck_assert_int_eq(gseg_synth_scene(&p, img, msk, NULL), GSEG_ERR_ARG);
    p = gseg_synth_params_default();
    p.cloud_cover = 1.5;
    ck_assert_int_eq(gseg_synth_scene(&p, img, msk, NULL), GSEG_ERR_ARG);
    p = gseg_synth_params_default();
    p.seasonal_snow = -0.1;
    ck_assert_int_eq(gseg_synth_scene(&p, img, msk, NULL), GSEG_ERR_ARG);
    p = gseg_synth_params_default();
    p.epsg = 4326; /* geographic: pixel sizes are metres */
    ck_assert_int_eq(gseg_synth_scene(&p, img, msk, NULL), GSEG_ERR_ARG);
    p = gseg_synth_params_default();
    p.epsg = 1;
    ck_assert_int_eq(gseg_synth_scene(&p, img, msk, NULL), GSEG_ERR_ARG);
    p = gseg_synth_params_default();
    ck_assert_int_eq(gseg_synth_scene(NULL, img, msk, NULL), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg_synth_scene(&p, NULL, msk, NULL), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg_synth_scene(&p, img, NULL, NULL), GSEG_ERR_ARG);
    /* The memory limit is honoured. */
    CPLSetConfigOption("GSEG_MAX_MEMORY", "1M");
    ck_assert_int_eq(gseg_synth_scene(&p, img, msk, NULL), GSEG_ERR_LIMIT);
    CPLSetConfigOption("GSEG_MAX_MEMORY", NULL);
    /* An unwritable place fails cleanly. */
    ck_assert_int_eq(gseg_synth_scene(&p, "/nonexistent-dir/i.tif", msk, NULL), GSEG_ERR_IO);
    ck_assert(strchr(gseg_last_error(), '\n') == NULL);
    ck_assert(!exists(img) && !exists(msk));
    assert_no_temp_files(dir);
    free(dir);
}
END_TEST

/* The command-line tool: one scene, a data set, exit codes. */
START_TEST(test_tool)
{
    gseg_init();
    char *dir = tu_tmpdir("synth-tool");
    char tool[4200];
    snprintf(tool, sizeof tool, "%s", tu_build("src/tools/gseg-synth"));
    if (!exists(tool)) {
        free(dir);
        return; /* tool not built in this configuration */
    }
    ck_assert_int_eq(tu_system("'%s' -q --size 64 --seed 3 '%s/a.tif' '%s/m.tif'", tool, dir, dir),
                     0);
    char a[4200], m[4200];
    gseg_synth_params p = gseg_synth_params_default();
    p.width = p.height = 64;
    p.seed = 3;
    ck_gseg(gseg_synth_scene(&p, PATH(a, dir, "b.tif"), PATH(m, dir, "bm.tif"), NULL));
    ck_assert_msg(same_bytes(PATH(a, dir, "a.tif"), PATH(m, dir, "b.tif")),
                  "tool and library differ");
    ck_assert_int_eq(tu_system("'%s' -q --dataset '%s/ds' --train 2 --test 1 --size 64 --seed 7",
                               tool, dir),
                     0);
    const char *files[] = {"ds/train/images/scene_001.tif", "ds/train/images/scene_002.tif",
                           "ds/train/masks/scene_002.tif", "ds/test/images/scene_001.tif",
                           "ds/test/masks/scene_001.tif", "ds/outlines/train_scene_001.gpkg",
                           "ds/outlines/test_scene_001.gpkg"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        ck_assert_msg(exists(PATH(a, dir, files[i])), "missing %s", files[i]);
    ck_assert_msg(!same_bytes(PATH(a, dir, "ds/train/images/scene_001.tif"),
                              PATH(m, dir, "ds/train/images/scene_002.tif")),
                  "data set scenes share a seed");
    /* Scenes of a data set do not overlap. */
    double g1[6], g2[6];
    GDALDatasetH d1 = GDALOpen(PATH(a, dir, "ds/train/images/scene_001.tif"), GA_ReadOnly);
    GDALDatasetH d2 = GDALOpen(PATH(m, dir, "ds/test/images/scene_001.tif"), GA_ReadOnly);
    GDALGetGeoTransform(d1, g1);
    GDALGetGeoTransform(d2, g2);
    ck_assert(fabs(g1[0] - g2[0]) >= 64 * 30 || fabs(g1[3] - g2[3]) >= 64 * 30);
    GDALClose(d1);
    GDALClose(d2);
    ck_assert_int_eq(tu_system("'%s' --size 8 '%s/x.tif' '%s/y.tif' 2>/dev/null", tool, dir, dir), 2);
    ck_assert_int_eq(tu_system("'%s' --no-such-option 2>/dev/null", tool), 2);
    ck_assert_int_eq(tu_system("'%s' '%s/only-one.tif' 2>/dev/null", tool, dir), 2);
    ck_assert_int_eq(tu_system("'%s' /nonexistent-dir/x.tif '%s/y.tif' 2>/dev/null", tool, dir), 1);
    ck_assert_int_eq(tu_system("'%s' --help >/dev/null", tool), 0);
    ck_assert_int_eq(tu_system("'%s' --version >/dev/null", tool), 0);
    free(dir);
}
END_TEST

static Suite *synth_suite(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("synth");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_ndsi_physics);
    tcase_add_test(tc, test_truth_is_ground);
    tcase_add_test(tc, test_outlines);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_tool);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(synth_suite()); }
