/* check_driver.c — the GDAL driver plugin GSEG through GDAL's own tools:
 * registration, pixels equal to gseg-predict's (NDSI and a network),
 * gdalwarp, descriptors and open options, clear errors for bad connection
 * strings, and libgseg loaded only when a GSEG dataset is opened. The
 * environment (GDAL_DRIVER_PATH) points GDAL at the build's plugin. */
#include "testutil.h"

#include <cpl_conv.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static char tool[1024], sample[1024];

static void setup(void)
{
    gseg_init();
    free(dir);
    dir = tu_tmpdir("check_driver");
    snprintf(tool, sizeof tool, "%s", tu_build("src/tools/gseg-predict"));
    snprintf(sample, sizeof sample, "%s",
             tu_src("sample_scenes/dataset/test/images/scene_001.tif"));
}

static const char *path(const char *name) { return tu_path(dir, name); }

/* Pixels of band b of two rasters are identical (NaN equals NaN). */
static void assert_same_band(const char *a, int ba, const char *b, int bb)
{
    GDALDatasetH da = GDALOpen(a, GA_ReadOnly), db = GDALOpen(b, GA_ReadOnly);
    ck_assert_msg(da && db, "cannot open %s or %s", a, b);
    int w = GDALGetRasterXSize(da), h = GDALGetRasterYSize(da);
    ck_assert_int_eq(w, GDALGetRasterXSize(db));
    ck_assert_int_eq(h, GDALGetRasterYSize(db));
    double *x = malloc((size_t)w * h * sizeof *x), *y = malloc((size_t)w * h * sizeof *y);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(da, ba), GF_Read, 0, 0, w, h, x, w, h,
                                  GDT_Float64, 0, 0), CE_None);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(db, bb), GF_Read, 0, 0, w, h, y, w, h,
                                  GDT_Float64, 0, 0), CE_None);
    size_t diff = 0;
    for (size_t i = 0; i < (size_t)w * h; i++)
        diff += !(x[i] == y[i] || (isnan(x[i]) && isnan(y[i])));
    ck_assert_msg(diff == 0, "%s band %d and %s band %d differ on %zu pixels", a, ba, b, bb, diff);
    free(x);
    free(y);
    GDALClose(da);
    GDALClose(db);
}

/* A scene with a nodata corner (so tiles are skipped and 255 appears). */
static void make_scene(const char *dst, const char *bands)
{
    ck_assert_int_eq(tu_system("gdal_translate -q %s -srcwin 0 0 400 330 '%s' '%s' && "
                               "/usr/bin/python3 -c \"from osgeo import gdal; d = gdal.Open('%s', 1); "
                               "[d.GetRasterBand(b + 1).WriteRaster(0, 0, 120, 90, bytes(120 * 90 * 2)) "
                               "for b in range(d.RasterCount)]\"",
                               bands, sample, dst, dst), 0);
}

START_TEST(test_registered_and_lazy)
{
    ck_assert_int_eq(tu_system("gdalinfo --formats | grep -q 'GSEG -raster- (ro'"), 0);
    ck_assert_int_eq(tu_system("gdalinfo --format GSEG | grep -q 'GSEG:'"), 0);
    /* the open-option list is valid XML (GDAL reports it otherwise) */
    ck_assert_int_eq(tu_system("gdalinfo --format GSEG 2>&1 | grep -q 'ERROR\\|Could not parse'"), 1);
    /* Other files never load libgseg (nor libtorch): the dynamic loader's
     * log of gdalinfo on a GeoTIFF names neither; opening a GSEG dataset
     * loads libgseg. */
    ck_assert_int_eq(tu_system("LD_DEBUG=files gdalinfo '%s' 2>'%s' >/dev/null", sample,
                               path("ld.txt")), 0);
    ck_assert_int_eq(tu_system("grep -q 'gdal_GSEG' '%s'", path("ld.txt")), 0);
    ck_assert_int_eq(tu_system("grep -q 'libgseg\\|libtorch' '%s'", path("ld.txt")), 1);
    ck_assert_int_eq(tu_system("LD_DEBUG=files gdalinfo 'GSEG:model=\"ndsi:green=2,swir=5\":%s' "
                               "2>'%s' >/dev/null", sample, path("ld.txt")), 0);
    ck_assert_int_eq(tu_system("grep -q 'libgseg' '%s'", path("ld.txt")), 0);
}
END_TEST

/* gdal_translate through the driver writes gseg-predict's mask, pixel for
 * pixel, with the NDSI baseline (the colon in the spec quoted). */
START_TEST(test_translate_equals_predict_ndsi)
{
    make_scene(path("scene.tif"), "");
    const char *spec = "ndsi:green=green,swir=swir1";
    ck_assert_int_eq(tu_system("'%s' -q --model %s '%s' -o '%s' --proba '%s' --tile 128 "
                               "--overlap 24", tool, spec, path("scene.tif"), path("ref.tif"),
                               path("refp.tif")), 0);
    ck_assert_int_eq(tu_system("gdal_translate -q 'GSEG:model=\"%s\":tile=128:overlap=24:%s' "
                               "'%s'", spec, path("scene.tif"), path("drv.tif")), 0);
    assert_same_band(path("drv.tif"), 1, path("ref.tif"), 1);
    /* score band straight from the driver */
    char conn[2048];
    snprintf(conn, sizeof conn, "GSEG:model=\"%s\":tile=128:overlap=24:proba=yes:%s", spec,
             path("scene.tif"));
    assert_same_band(conn, 2, path("refp.tif"), 1);
    /* georeferencing and classes as the scene and gseg-predict have them */
    GDALDatasetH d = GDALOpen(conn, GA_ReadOnly), s = GDALOpen(path("scene.tif"), GA_ReadOnly);
    ck_assert(d && s);
    double g1[6], g2[6];
    ck_assert_int_eq(GDALGetGeoTransform(d, g1), CE_None);
    ck_assert_int_eq(GDALGetGeoTransform(s, g2), CE_None);
    for (int i = 0; i < 6; i++) ck_assert_double_eq(g1[i], g2[i]);
    ck_assert(OSRIsSame(GDALGetSpatialRef(d), GDALGetSpatialRef(s)));
    GDALRasterBandH m = GDALGetRasterBand(d, 1);
    ck_assert_int_eq(GDALGetRasterDataType(m), GDT_Byte);
    ck_assert_ptr_nonnull(GDALGetRasterColorTable(m));
    char **cats = GDALGetRasterCategoryNames(m);
    ck_assert(cats && cats[0] && cats[1] && strcmp(cats[1], "glacier") == 0);
    int ok = 0;
    ck_assert_double_eq(GDALGetRasterNoDataValue(m, &ok), 255);
    ck_assert(ok);
    ck_assert_str_eq(GDALGetMetadataItem(d, "GSEG_TILE", NULL), "128");
    GDALClose(d);
    GDALClose(s);
}
END_TEST

/* The same with a network model: a COG written by gdal_translate -of COG
 * holds gseg-predict's mask exactly. */
START_TEST(test_translate_equals_predict_network)
{
    if (!gseg_have_network()) return;
    const char *bands[] = {"blue", "green", "red", "nir", "swir1", "swir2"};
    const double mean[] = {2000, 2000, 2000, 2500, 1500, 1200};
    const double sd[] = {1500, 1500, 1500, 1500, 1200, 1000};
    gseg_model_def def = gseg_model_def_default();
    def.encoder = "resnet18";
    def.nbands = 6;
    def.bands = bands;
    def.mean = mean;
    def.std = sd;
    def.tile = 128;
    def.overlap = 32;
    def.seed = 3;
    gseg_model *m = NULL;
    ck_gseg(gseg_model_new(&def, NULL, &m));
    ck_gseg(gseg_model_save(m, path("net.gseg")));
    gseg_model_free(m);
    make_scene(path("scene.tif"), "-b 1 -b 2 -b 3 -b 4 -b 5 -b 6");
    ck_assert_int_eq(tu_system("'%s' -q --model '%s' '%s' -o '%s' --precision fp32 --threads 2",
                               tool, path("net.gseg"), path("scene.tif"), path("ref.tif")), 0);
    ck_assert_int_eq(tu_system("gdal_translate -q -of COG 'GSEG:model=%s:precision=fp32:%s' '%s'",
                               path("net.gseg"), path("scene.tif"), path("drv.tif")), 0);
    assert_same_band(path("drv.tif"), 1, path("ref.tif"), 1);
    /* a JSON descriptor with relative paths and a band stack of two files */
    ck_assert_int_eq(tu_system("cd '%s' && gdal_translate -q -b 1 -b 2 -b 3 scene.tif a.tif && "
                               "gdal_translate -q -b 4 -b 5 -b 6 scene.tif b.tif", dir), 0);
    FILE *f = fopen(path("pred.json"), "w");
    fprintf(f, "{\"type\": \"gseg-prediction\", \"model\": \"net.gseg\", "
               "\"scene\": [\"a.tif\", \"b.tif\"], \"precision\": \"fp32\", \"proba\": false}\n");
    fclose(f);
    assert_same_band(path("pred.json"), 1, path("ref.tif"), 1);
    /* open options; the connection string's values win over them */
    ck_assert_int_eq(tu_system("gdalinfo -oo TILE=64 -oo MODEL='%s' 'GSEG:tile=128:%s' | "
                               "grep -q GSEG_TILE=128", path("net.gseg"), path("scene.tif")), 0);
    ck_assert_int_eq(tu_system("gdalinfo -oo TILE=64 -oo MODEL='%s' 'GSEG:%s' | "
                               "grep -q GSEG_TILE=64", path("net.gseg"), path("scene.tif")), 0);
}
END_TEST

START_TEST(test_gdalwarp_through_driver)
{
    make_scene(path("scene.tif"), "");
    ck_assert_int_eq(tu_system("gdalwarp -q -overwrite -t_srs EPSG:4326 -r near "
                               "'GSEG:model=\"ndsi:green=green,swir=swir1\":%s' '%s'",
                               path("scene.tif"), path("warped.tif")), 0);
    ck_assert_int_eq(tu_system("gdalinfo '%s' | grep -q 'ID\\[\"EPSG\",4326\\]'",
                               path("warped.tif")), 0);
    /* glacier pixels survive the warp */
    ck_assert_int_eq(tu_system("gdalinfo -hist '%s' | grep -A1 'buckets from' | tail -1 | "
                               "awk '{exit !($2 > 0)}'", path("warped.tif")), 0);
}
END_TEST

/* Bad connection strings: GDAL's error line with the reason, exit 1, no
 * crash (a crash would give a signal, not 1). */
START_TEST(test_bad_connection_strings)
{
    make_scene(path("scene.tif"), "");
    const struct {
        const char *conn;
        const char *msg;
    } bad[] = {
        {"GSEG:", "names no scene"},
        {"GSEG:model=x.gseg", "names no scene"},
        {"GSEG:model=\"ndsi:green=1:SCENE", "unclosed quote"},
        {"GSEG:tile=abc:model=\"ndsi:green=1,swir=2\":SCENE", "tile=abc"},
        {"GSEG:tile=4:model=\"ndsi:green=1,swir=2\":SCENE", "tile=4"},
        {"GSEG:precision=fp8:model=\"ndsi:green=1,swir=2\":SCENE", "fp8"},
        {"GSEG:model=\"ndsi:green=1,swir=2\":/nonexistent/scene.tif", "scene.tif"},
        {"GSEG:model=/nonexistent/m.gseg:SCENE", "m.gseg"},
        {"GSEG:model=\"ndsi:green=nope,swir=2\":SCENE", "nope"},
        {"GSEG:model=\"ndsi:green=1,swir=2\":overlap=600:SCENE", "overlap 600"},
        {"GSEG:model=\"ndsi:green=1,swir=2\":bogus=1:SCENE", "unknown option"},
        {"GSEG:model=\"ndsi:green=1,swir=2\":proba=maybe:SCENE", "proba=maybe"},
        {"GSEG:model=\"ndsi:green=1,swir=2\":device=gpu:SCENE", "device=gpu"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char conn[2048];
        const char *at = strstr(bad[i].conn, "SCENE");
        if (at)
            snprintf(conn, sizeof conn, "%.*s%s", (int)(at - bad[i].conn), bad[i].conn,
                     path("scene.tif"));
        else
            snprintf(conn, sizeof conn, "%s", bad[i].conn);
        int rc = tu_system("GSEG_MODEL= gdalinfo '%s' >/dev/null 2>'%s'", conn, path("err.txt"));
        ck_assert_msg(rc == 1, "case %zu (%s): exit %d", i, conn, rc);
        ck_assert_msg(tu_system("grep -q 'ERROR.*%s' '%s'", bad[i].msg, path("err.txt")) == 0,
                      "case %zu (%s): no error naming '%s'", i, conn, bad[i].msg);
    }
    /* a descriptor that is not one, and a missing model in it */
    FILE *f = fopen(path("bad.json"), "w");
    fprintf(f, "{\"type\": \"gseg-prediction\", \"scene\": 5}\n");
    fclose(f);
    ck_assert_int_eq(tu_system("gdalinfo '%s' 2>&1 | grep -q 'scene'", path("bad.json")), 0);
    /* a misspelt key is said, with the file */
    f = fopen(path("typo.json"), "w");
    fprintf(f, "{\"type\": \"gseg-prediction\", \"scene\": \"%s\", \"modle\": \"x\"}\n",
            path("scene.tif"));
    fclose(f);
    ck_assert_int_eq(tu_system("GSEG_MODEL= gdalinfo '%s' 2>&1 | grep -q 'typo.json: unknown key "
                               "\"modle\"'", path("typo.json")), 0);
    /* read-only */
    ck_assert_int_ne(tu_system("/usr/bin/python3 -c \"from osgeo import gdal; gdal.UseExceptions(); "
                               "gdal.Open('GSEG:model=\\\"ndsi:green=1,swir=2\\\":%s', 1)\" "
                               "2>/dev/null", path("scene.tif")), 0);
}
END_TEST

int main(void)
{
    const tu_case tests[] = {
        {"registered", test_registered_and_lazy},
        {"ndsi", test_translate_equals_predict_ndsi},
        {"network", test_translate_equals_predict_network},
        {"warp", test_gdalwarp_through_driver},
        {"errors", test_bad_connection_strings},
    };
    return tu_run(tu_suite("driver", tests, sizeof tests / sizeof *tests, 600, setup));
}
