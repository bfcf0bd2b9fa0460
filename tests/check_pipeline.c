/* check_pipeline.c — the network prediction pipeline of gseg-predict
 * (reader threads → batches → network → blender thread → writer) run as
 * the tool, with small resnet18 networks on small scenes: georeferenced COG
 * output and the JSON summary, independence of threads/batch/readers,
 * tiling seams, test-time augmentation, refusal of scenes whose bands do
 * not match the model, multi-class probabilities, the default model, and
 * errors in the middle of a multi-scene run.
 *
 * libtorch's thread pool does not survive fork(): meson runs this suite
 * with CK_FORK=no. */
#include "testutil.h"

#include "internal.h"
#include "json.h"
#include "net.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static char tool[1024];  /* build/src/tools/gseg-predict */
static char sample[1024]; /* sample_scenes/.../scene_001.tif: 512 x 512, 7 bands */

static void setup(void)
{
    gseg_init();
    free(dir);
    dir = tu_tmpdir("check_pipeline");
    snprintf(tool, sizeof tool, "%s", tu_build("src/tools/gseg-predict"));
    snprintf(sample, sizeof sample, "%s",
             tu_src("sample_scenes/dataset/test/images/scene_001.tif"));
}

static const char *path(const char *name) { return tu_path(dir, name); }

/* ---- models ------------------------------------------------------------ */

static const char *const kBands[] = {"blue", "green", "red", "nir", "swir1", "swir2"};
static const double kMean[] = {2000, 2000, 2000, 2500, 1500, 1200};
static const double kStd[] = {1500, 1500, 1500, 1500, 1200, 1000};

/* Makes every BatchNorm non-trivial (as check_net.c does): setting the
 * statistics directly keeps the test fast and exact. */
static void perturb_bn(gseg_model *m)
{
    gseg__net *net = gseg__netmodel_net(m);
    for (int i = 0; i < gseg__net_tensor_count(net); i++) {
        const char *nm = gseg__net_tensor_name(net, i);
        int64_t n = gseg__net_tensor_numel(net, i);
        int mean = strstr(nm, "running_mean") != NULL, var = strstr(nm, "running_var") != NULL;
        int bnw = !mean && !var && strstr(nm, ".bn") && strstr(nm, ".weight");
        if (!mean && !var && !bnw) continue;
        float *v = malloc((size_t)n * sizeof *v);
        ck_assert_ptr_nonnull(v);
        for (int64_t k = 0; k < n; k++) {
            float r = (float)((k * 2654435761u + (uint64_t)i * 97) % 1000) / 1000.0f;
            v[k] = mean ? 0.2f * (r - 0.5f) : var ? 0.5f + r : 0.8f + 0.4f * r;
        }
        ck_gseg(gseg__net_tensor_set(net, i, v, n));
        free(v);
    }
}

/* A resnet18 U-Net over the six reflectance bands (by name, or by number
 * "1".."6" when named is 0) with realistic normalisation, saved to file. */
static void make_model(const char *file, int named, int nclasses, const char *const *classes)
{
    gseg_model_def d = gseg_model_def_default();
    d.encoder = "resnet18";
    d.nbands = 6;
    d.bands = named ? kBands : NULL;
    d.mean = kMean;
    d.std = kStd;
    d.nclasses = nclasses;
    d.classes = classes;
    d.tile = 256;
    d.overlap = 32;
    d.seed = 7;
    gseg_model *m = NULL;
    ck_gseg(gseg_model_new(&d, NULL, &m));
    perturb_bn(m);
    ck_gseg(gseg_model_save(m, file));
    gseg_model_free(m);
}

/* ---- scenes and rasters -------------------------------------------------- */

/* A window of the sample scene (bands: e.g. "" for all 7, "-b 1 -b 2"). */
static void crop(const char *dst, int x, int y, int w, int h, const char *bands)
{
    ck_assert_int_eq(tu_system("gdal_translate -q -of GTiff %s -srcwin %d %d %d %d '%s' '%s'",
                               bands, x, y, w, h, sample, dst), 0);
}

/* Writes 0 (the nodata value of every band) into window [x, x+w) x [y, y+h)
 * of every band: those pixels have no data. */
static void blank(const char *file, int x, int y, int w, int h)
{
    GDALDatasetH ds = GDALOpen(file, GA_Update);
    ck_assert_ptr_nonnull(ds);
    uint16_t *z = calloc((size_t)w * h, sizeof *z);
    for (int b = 1; b <= GDALGetRasterCount(ds); b++)
        ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, x, y, w, h, z, w, h,
                                      GDT_UInt16, 0, 0), CE_None);
    free(z);
    GDALClose(ds);
}

/* Band b of a raster as float32 (malloc'ed); *w, *h get its size. */
static float *read_f32(const char *file, int b, int *w, int *h)
{
    GDALDatasetH ds = GDALOpen(file, GA_ReadOnly);
    ck_assert_msg(ds != NULL, "cannot open %s", file);
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    float *v = malloc((size_t)*w * *h * sizeof *v);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Read, 0, 0, *w, *h, v, *w, *h,
                                  GDT_Float32, 0, 0), CE_None);
    GDALClose(ds);
    return v;
}

static uint8_t *read_u8(const char *file, int *w, int *h)
{
    GDALDatasetH ds = GDALOpen(file, GA_ReadOnly);
    ck_assert_msg(ds != NULL, "cannot open %s", file);
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    uint8_t *v = malloc((size_t)*w * *h);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, 0, 0, *w, *h, v, *w, *h,
                                  GDT_Byte, 0, 0), CE_None);
    GDALClose(ds);
    return v;
}

/* The whole of a text file, NUL-terminated (malloc'ed). */
static char *slurp(const char *file, size_t *len)
{
    FILE *f = fopen(file, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", file);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return s;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static gseg__json *read_json(const char *file)
{
    size_t n;
    char *s = slurp(file, &n), err[256] = "";
    gseg__json *j = gseg__json_parse(s, n, err, sizeof err);
    ck_assert_msg(j != NULL, "%s: %s", file, err);
    free(s);
    return j;
}

static double jnum(const gseg__json *o, const char *key)
{
    const gseg__json *v = gseg__json_get(o, key);
    ck_assert_msg(gseg__json_type(v) == GSEG__JSON_NUMBER, "summary: no number '%s'", key);
    return gseg__json_num(v);
}

static const char *jstr(const gseg__json *o, const char *key)
{
    const char *s = gseg__json_str(gseg__json_get(o, key));
    ck_assert_msg(s != NULL, "summary: no string '%s'", key);
    return s;
}

/* Bits of two float rasters (every band) compared. */
static void assert_same_raster(const char *a, const char *b, int nbands)
{
    for (int k = 1; k <= nbands; k++) {
        int w, h, w2, h2;
        float *x = read_f32(a, k, &w, &h), *y = read_f32(b, k, &w2, &h2);
        ck_assert(w == w2 && h == h2);
        size_t differ = 0, n = (size_t)w * h;
        double worst = 0;
        for (size_t i = 0; i < n; i++)
            if (memcmp(&x[i], &y[i], sizeof *x) != 0) {
                differ++;
                worst = fmax(worst, fabs((double)x[i] - y[i]));
            }
        ck_assert_msg(differ == 0, "%s and %s: band %d differs on %zu of %zu pixels (max %g)",
                      a, b, k, differ, n, worst);
        free(x);
        free(y);
    }
}

static void assert_same_mask(const char *a, const char *b)
{
    int w, h, w2, h2;
    uint8_t *x = read_u8(a, &w, &h), *y = read_u8(b, &w2, &h2);
    ck_assert(w == w2 && h == h2);
    ck_assert_msg(memcmp(x, y, (size_t)w * h) == 0, "masks %s and %s differ", a, b);
    free(x);
    free(y);
}

/* Category names of band 1 of a raster. GDAL 3.6's GeoTIFF driver loads
 * the .aux.xml (where they live) lazily, on GetDescription, GetMetadata,
 * the georeferencing..., but not on GetCategoryNames: ask for the
 * description first (the mask's is "glacier mask"). */
static char **categories(GDALDatasetH ds)
{
    GDALRasterBandH b = GDALGetRasterBand(ds, 1);
    ck_assert_str_eq(GDALGetDescription(b), "glacier mask");
    return GDALGetRasterCategoryNames(b);
}

/* 1 if nothing named like the outputs of stem (mask, or gseg's hidden
 * temporary files) is in folder d. */
static int no_outputs(const char *d, const char *stem)
{
    return tu_system("ls -A '%s' | grep -q -e '^%s_' -e '^\\.'", d, stem) == 1;
}

/* ---- 1. output: COG, georeferencing, classes, summary ------------------ */

/* A 300 x 260 window of the sample scene, with no data in its top-left 140
 * x 140 pixels, so that with 128-pixel tiles overlapping by 32 exactly one
 * tile (the first) has no valid pixel and is skipped. */
static void nodata_scene(const char *file)
{
    crop(file, 100, 150, 300, 260, "");
    blank(file, 0, 0, 140, 140);
}

/* Tiles of a grid whose window lies in the blank corner of nodata_scene. */
static int tiles_in_blank(int w, int h, int tile, int overlap)
{
    gseg_grid g;
    ck_gseg(gseg_grid_init(&g, w, h, tile, overlap));
    int n = 0;
    for (int i = 0; i < gseg_grid_count(&g); i++) {
        gseg_tile t;
        ck_gseg(gseg_grid_tile(&g, NULL, i, &t));
        n += t.win.x + t.win.w <= 140 && t.win.y + t.win.h <= 140;
    }
    return n;
}

START_TEST(test_output_georef_classes_summary)
{
    const char *classes[] = {"ground", "ice"};
    char model[1024], scene[1024], mask[1024];
    snprintf(model, sizeof model, "%s", path("net.gseg"));
    snprintf(scene, sizeof scene, "%s", path("scene.tif"));
    snprintf(mask, sizeof mask, "%s", path("scene_mask.tif"));
    make_model(model, 1, 2, classes);
    nodata_scene(scene);
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --tile 128 --overlap 32 "
                               "--precision fp32 --threads 2 --summary %s",
                               tool, model, scene, mask, path("sum.json")), 0);

    /* A Cloud-Optimized GeoTIFF on exactly the scene's grid and CRS. */
    ck_assert_int_eq(tu_system("gdalinfo '%s' | grep -q 'LAYOUT=COG'", mask), 0);
    GDALDatasetH in = GDALOpen(scene, GA_ReadOnly), out = GDALOpen(mask, GA_ReadOnly);
    ck_assert(in && out);
    ck_assert_int_eq(GDALGetRasterXSize(out), 300);
    ck_assert_int_eq(GDALGetRasterYSize(out), 260);
    ck_assert_int_eq(GDALGetRasterCount(out), 1);
    double g1[6], g2[6];
    ck_assert_int_eq(GDALGetGeoTransform(in, g1), CE_None);
    ck_assert_int_eq(GDALGetGeoTransform(out, g2), CE_None);
    for (int i = 0; i < 6; i++) ck_assert_double_eq(g1[i], g2[i]);
    OGRSpatialReferenceH s1 = GDALGetSpatialRef(in), s2 = GDALGetSpatialRef(out);
    ck_assert(s1 && s2 && OSRIsSame(s1, s2));

    /* The model's class names and colours (RGB: GeoTIFF palettes hold no
     * alpha); nodata (255) transparent. */
    gseg_model *m = NULL;
    ck_gseg(gseg_model_open(model, NULL, &m));
    const char *const *names = NULL;
    const unsigned char(*rgba)[4] = NULL;
    ck_assert_int_eq(gseg__model_classes(m, &names, &rgba), 2);
    GDALRasterBandH band = GDALGetRasterBand(out, 1);
    char **cats = categories(out);
    ck_assert_int_eq(CSLCount(cats), 2);
    ck_assert_str_eq(cats[0], "ground");
    ck_assert_str_eq(cats[1], "ice");
    GDALColorTableH ct = GDALGetRasterColorTable(band);
    ck_assert_ptr_nonnull(ct);
    for (int k = 0; k < 2; k++) {
        const GDALColorEntry *e = GDALGetColorEntry(ct, k);
        ck_assert_msg(e->c1 == rgba[k][0] && e->c2 == rgba[k][1] && e->c3 == rgba[k][2],
                      "class %d: colour %d,%d,%d, the model's %d,%d,%d", k, e->c1, e->c2, e->c3,
                      rgba[k][0], rgba[k][1], rgba[k][2]);
    }
    ck_assert_int_eq(GDALGetColorEntry(ct, 255)->c4, 0);
    int has_nd = 0;
    ck_assert_double_eq(GDALGetRasterNoDataValue(band, &has_nd), 255);
    ck_assert(has_nd);
    gseg_model_free(m);
    GDALClose(in);
    GDALClose(out);

    /* Pixel counts of the mask: 255 exactly on the blank corner. */
    int w, h;
    uint8_t *v = read_u8(mask, &w, &h);
    long long n[256] = {0};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t c = v[(size_t)y * w + x];
            n[c]++;
            ck_assert_msg((c == 255) == (x < 140 && y < 140), "pixel %d,%d is %d", x, y, c);
        }
    free(v);
    ck_assert_int_eq(n[0] + n[1] + n[255], (long long)w * h);
    double px_km2 = fabs(g1[1] * g1[5]) / 1e6;
    fprintf(stderr, "predict output: %lld ground, %lld ice, %lld nodata pixels\n", n[0], n[1],
            n[255]);
    ck_assert_msg(n[0] > 0 && n[1] > 0, "the mask holds a single class: the check below "
                                        "would be vacuous");

    /* The summary agrees with the mask and the tiling. */
    gseg__json *j = read_json(path("sum.json"));
    ck_assert_int_eq((int)jnum(j, "scenes_ok"), 1);
    ck_assert_int_eq((int)jnum(j, "scenes_failed"), 0);
    const gseg__json *s = gseg__json_at(gseg__json_get(j, "scenes"), 0);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(jstr(s, "status"), "ok");
    ck_assert_str_eq(jstr(gseg__json_get(s, "outputs"), "mask"), mask);
    int tiles = (int)jnum(s, "tiles"), skipped = (int)jnum(s, "tiles_skipped");
    gseg_grid g;
    ck_gseg(gseg_grid_init(&g, 300, 260, 128, 32));
    ck_assert_int_eq(tiles, gseg_grid_count(&g)); /* 3 x 3 */
    ck_assert_int_eq(skipped, tiles_in_blank(300, 260, 128, 32));
    ck_assert_int_eq(skipped, 1);
    ck_assert_int_eq((long long)jnum(s, "tile_pixels"), (long long)(tiles - skipped) * 128 * 128);
    ck_assert_int_eq((long long)jnum(j, "tile_pixels"), (long long)(tiles - skipped) * 128 * 128);
    ck_assert(jnum(s, "model_seconds") > 0);
    ck_assert(jnum(s, "seconds") >= jnum(s, "model_seconds"));
    ck_assert_int_eq((long long)jnum(s, "pixels"), (long long)w * h);
    ck_assert_int_eq((long long)jnum(s, "valid_pixels"), n[0] + n[1]);
    const gseg__json *cls = gseg__json_get(s, "classes");
    ck_assert_int_eq((long long)jnum(gseg__json_get(cls, "ground"), "pixels"), n[0]);
    ck_assert_int_eq((long long)jnum(gseg__json_get(cls, "ice"), "pixels"), n[1]);
    double km2 = jnum(s, "glacier_km2");
    fprintf(stderr, "predict output: glacier_km2 %.6f, %lld pixels x %.6f km2 = %.6f\n", km2,
            n[1], px_km2, (double)n[1] * px_km2);
    /* areas on the ellipsoid: UTM's scale factor keeps them within 0.2 %
     * of the pixel size squared (check_predict checks them exactly) */
    ck_assert_double_eq_tol(km2, (double)n[1] * px_km2, 2e-3 * km2);
    ck_assert_double_eq_tol(jnum(gseg__json_get(cls, "ground"), "km2"), (double)n[0] * px_km2,
                            2e-3 * (double)n[0] * px_km2);
    ck_assert_double_eq_tol(jnum(j, "glacier_km2"), km2, 1e-9 * fmax(1.0, km2));
    gseg__json_free(j);
}
END_TEST

/* ---- 2. threads, batch and readers do not change results ---------------- */

START_TEST(test_threads_batch_readers_bit_identical)
{
    char model[1024], scene[1024];
    snprintf(model, sizeof model, "%s", path("net.gseg"));
    snprintf(scene, sizeof scene, "%s", path("scene.tif"));
    make_model(model, 1, 2, NULL);
    nodata_scene(scene); /* 9 tiles of 128, the first skipped */
    /* threads, batch, readers: batches of 1; of 3 (3 full batches, the
     * first with a skipped tile); of 4 (4, 4, 1); the readers and the
     * blender overlapping the network, taking turns with it (pipeline.c),
     * and as the machine decides */
    const int runs[][3] = {{1, 1, 1}, {2, 3, 2}, {2, 4, 3}};
    const char *turns[] = {"NO", "YES", "AUTO"};
    const char *precs[] = {"fp32", "bf16"};
    for (int p = 0; p < 2; p++) {
        if (p == 1 && !gseg__cpu_has_bf16()) {
            fprintf(stderr, "note: no native bf16 on this CPU: bf16 runs skipped\n");
            continue;
        }
        char ref_p[1024], ref_m[1024];
        for (int r = 0; r < 3; r++) {
            char mp[64], pp[64];
            snprintf(mp, sizeof mp, "m_%s_%d.tif", precs[p], r);
            snprintf(pp, sizeof pp, "p_%s_%d.tif", precs[p], r);
            ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --proba %s "
                                       "--tile 128 --overlap 32 --precision %s --threads %d "
                                       "--batch %d --readers %d --config GSEG_PIPELINE_TURNS %s",
                                       tool, model, scene, path(mp), path(pp), precs[p],
                                       runs[r][0], runs[r][1], runs[r][2], turns[r]), 0);
            if (r == 0) {
                snprintf(ref_m, sizeof ref_m, "%s", path(mp));
                snprintf(ref_p, sizeof ref_p, "%s", path(pp));
            } else {
                assert_same_raster(ref_p, path(pp), 1);
                assert_same_mask(ref_m, path(mp));
            }
        }
        fprintf(stderr, "%s: threads/batch/readers/turns 1/1/1/no, 2/3/2/yes, 2/4/3/auto: "
                "bit-identical\n", precs[p]);
    }
    /* --precision auto (the default) is bf16 on CPUs with native bf16, fp32
     * elsewhere; the summary names what ran, not "auto" */
    const char *used = gseg__cpu_has_bf16() ? "bf16" : "fp32";
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --tile 128 --overlap 32 "
                               "--threads 2 --summary %s", tool, model, scene, path("m_auto.tif"),
                               path("auto.json")), 0);
    assert_same_mask(path(CPLSPrintf("m_%s_0.tif", used)), path("m_auto.tif"));
    gseg__json *j = read_json(path("auto.json"));
    ck_assert_str_eq(jstr(j, "precision"), used);
    ck_assert_int_eq((int)jnum(j, "threads"), 2);
    gseg__json_free(j);
    /* --threads 0 means the CPUs the process may run on (its affinity, as
     * under a Slurm task binding), not every core of the machine */
    ck_assert_int_eq(tu_system("taskset -c 0 %s -q --model %s --image_path %s -o %s --tile 128 "
                               "--overlap 32 --threads 0 --summary %s", tool, model, scene,
                               path("m_one.tif"), path("one.json")), 0);
    j = read_json(path("one.json"));
    ck_assert_int_eq((int)jnum(j, "threads"), 1);
    gseg__json_free(j);
    assert_same_mask(path("m_auto.tif"), path("m_one.tif"));
}
END_TEST

/* ---- 3. tiling changes results only near seams ------------------------- */

/* Distance in pixels from pixel x to the nearest seam of a tiling along
 * one axis: tile window edges inside the scene (an edge at e lies between
 * pixels e - 1 and e; a pixel next to it is at distance 0). Scene borders
 * are no seams: every tiling sees them alike. */
static void seam_distance(int n, int tile, int overlap, int *dist)
{
    gseg_grid g;
    ck_gseg(gseg_grid_init(&g, n, n, tile, overlap));
    for (int x = 0; x < n; x++) dist[x] = n;
    for (int c = 0; c < g.ncols; c++) {
        gseg_tile t;
        ck_gseg(gseg_grid_tile(&g, NULL, c, &t)); /* row 0: columns */
        int edges[2] = {t.win.x, t.win.x + t.win.w};
        for (int k = 0; k < 2; k++) {
            int e = edges[k];
            if (e <= 0 || e >= n) continue;
            for (int x = 0; x < n; x++) {
                int d = x >= e ? x - e : e - 1 - x;
                if (d < dist[x]) dist[x] = d;
            }
        }
    }
}

START_TEST(test_tiling_changes_only_seams)
{
    char model[1024];
    snprintf(model, sizeof model, "%s", path("net.gseg"));
    make_model(model, 1, 2, NULL);
    /* The whole 512 x 512 sample: 3 x 3 tiles of 256 (overlap 64), 2 x 2
     * of 320 (overlap 96); square, so one axis' seams serve both. */
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --proba %s --tile 256 "
                               "--overlap 64 --precision fp32 --threads 2",
                               tool, model, sample, path("a.tif"), path("a_p.tif")), 0);
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --proba %s --tile 320 "
                               "--overlap 96 --precision fp32 --threads 2",
                               tool, model, sample, path("b.tif"), path("b_p.tif")), 0);
    int w, h, w2, h2;
    float *p = read_f32(path("a_p.tif"), 1, &w, &h), *q = read_f32(path("b_p.tif"), 1, &w2, &h2);
    uint8_t *ma = read_u8(path("a.tif"), &w2, &h2), *mb = read_u8(path("b.tif"), &w2, &h2);
    ck_assert(w == 512 && h == 512 && w2 == w && h2 == h);
    int *da = malloc(512 * sizeof *da), *db = malloc(512 * sizeof *db);
    seam_distance(512, 256, 64, da);
    seam_distance(512, 320, 96, db);

    /* Seam distance of a pixel: to the nearest seam of either tiling, in x
     * or y. near: <= 48 px; far: > 48 px (the brief's split); remote: > 96
     * px (the top-left 96 x 96 corner here). */
    size_t n = 0, big = 0, agree = 0, cnt[3] = {0, 0, 0}, bigc[3] = {0, 0, 0};
    double sum = 0, sumc[3] = {0, 0, 0}, maxc[3] = {0, 0, 0};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (isnan(p[i]) || isnan(q[i])) {
                ck_assert(isnan(p[i]) && isnan(q[i]));
                continue;
            }
            double d = fabs((double)p[i] - q[i]);
            int dist = da[x];
            if (da[y] < dist) dist = da[y];
            if (db[x] < dist) dist = db[x];
            if (db[y] < dist) dist = db[y];
            n++;
            sum += d;
            big += d > 0.01;
            agree += ma[i] == mb[i];
            for (int c = 0; c < 3; c++) {
                if ((c == 0 && dist > 48) || (c == 1 && dist <= 48) || (c == 2 && dist <= 96))
                    continue;
                cnt[c]++;
                sumc[c] += d;
                bigc[c] += d > 0.01;
                maxc[c] = fmax(maxc[c], d);
            }
        }
    ck_assert_msg(cnt[0] > 5000 && cnt[1] > 5000 && cnt[2] > 5000, "near %zu, far %zu, "
                  "remote %zu pixels", cnt[0], cnt[1], cnt[2]);
    double mean = sum / (double)n, share = (double)agree / (double)n, m[3];
    for (int c = 0; c < 3; c++) m[c] = sumc[c] / (double)cnt[c];
    fprintf(stderr, "tiling 256/64 vs 320/96: |dp| > 0.01 on %.2f %% of %zu pixels, mean |dp| "
                    "%.5f; masks agree on %.3f %%\n", 100.0 * big / n, n, mean, 100 * share);
    const char *what[3] = {"<= 48 px from a seam", "> 48 px", "> 96 px"};
    for (int c = 0; c < 3; c++)
        fprintf(stderr, "  %-21s %6zu px: mean |dp| %.5f, max %.4f, |dp| > 0.01 on %.2f %%\n",
                what[c], cnt[c], m[c], maxc[c], 100.0 * bigc[c] / cnt[c]);
    /* Bounds. Both tilings run the same network on the same pixels, but a
     * U-Net's deepest features (stride 32, 3 x 3 convolutions) see about
     * +-128 px, so a tile's zero padding reaches far inside it: measured
     * with this model (seed 7, perturbed BatchNorm) near seams mean |dp|
     * 0.035, > 48 px 0.015 (ratio 0.43), > 96 px 0.0023 (ratio 0.07); by
     * 16-px bins the difference stays ~0.035 up to 32 px and falls to
     * 0.002 beyond 96 px. Masks agree on 98.98 %: 1.2 % of the pixels lie
     * within 0.02 of the threshold, so a 99 % bound would be hair-trigger.
     * What a pipeline fault (a tile misplaced, batches or tiles out of
     * order, scores of one tile blended into another) does instead is
     * change pixels far from every seam as much as near ones: the ratios
     * go to ~1 (a 2-px shift of the scores alone changes 2.8 % of the mask
     * pixels and gives mean |dp| 0.046 everywhere). */
    ck_assert_msg(m[0] > 0.005, "the tilings agree near seams (%g): the test is vacuous", m[0]);
    ck_assert_msg(share >= 0.98, "masks agree on %.3f %% only", 100 * share);
    ck_assert_msg(m[1] < 0.75 * m[0], "> 48 px from seams mean |dp| %g, near %g", m[1], m[0]);
    ck_assert_msg(m[2] < 0.25 * m[0], "> 96 px from seams mean |dp| %g, near %g", m[2], m[0]);
    free(p);
    free(q);
    free(ma);
    free(mb);
    free(da);
    free(db);
}
END_TEST

/* ---- 4. test-time augmentation ------------------------------------------ */

/* Writes src flipped left-right (fx) and/or up-down (fy) to dst, bands,
 * names and nodata kept. The georeferencing is irrelevant here: src's is
 * copied as is, only to keep the tool from warning about its absence. */
static void write_flipped(const char *src, const char *dst, int fx, int fy)
{
    GDALDatasetH in = GDALOpen(src, GA_ReadOnly);
    ck_assert_ptr_nonnull(in);
    int w = GDALGetRasterXSize(in), h = GDALGetRasterYSize(in), nb = GDALGetRasterCount(in);
    GDALDatasetH out = GDALCreate(GDALGetDriverByName("GTiff"), dst, w, h, nb, GDT_UInt16, NULL);
    ck_assert_ptr_nonnull(out);
    double gt[6];
    if (GDALGetGeoTransform(in, gt) == CE_None) GDALSetGeoTransform(out, gt);
    GDALSetProjection(out, GDALGetProjectionRef(in));
    uint16_t *a = malloc((size_t)w * h * 2), *b = malloc((size_t)w * h * 2);
    for (int k = 1; k <= nb; k++) {
        GDALRasterBandH bi = GDALGetRasterBand(in, k), bo = GDALGetRasterBand(out, k);
        ck_assert_int_eq(GDALRasterIO(bi, GF_Read, 0, 0, w, h, a, w, h, GDT_UInt16, 0, 0),
                         CE_None);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                b[(size_t)y * w + x] = a[(size_t)(fy ? h - 1 - y : y) * w + (fx ? w - 1 - x : x)];
        ck_assert_int_eq(GDALRasterIO(bo, GF_Write, 0, 0, w, h, b, w, h, GDT_UInt16, 0, 0),
                         CE_None);
        GDALSetDescription(bo, GDALGetDescription(bi));
        int has = 0;
        double nd = GDALGetRasterNoDataValue(bi, &has);
        if (has) GDALSetRasterNoDataValue(bo, nd);
    }
    free(a);
    free(b);
    GDALClose(out);
    GDALClose(in);
}

START_TEST(test_tta_is_mean_of_flips)
{
    char model[1024];
    snprintf(model, sizeof model, "%s", path("net.gseg"));
    make_model(model, 1, 2, NULL);
    crop(path("s0.tif"), 120, 90, 256, 256, "-b 1 -b 2 -b 3 -b 4 -b 5 -b 6");
    write_flipped(path("s0.tif"), path("s1.tif"), 1, 0);
    write_flipped(path("s0.tif"), path("s2.tif"), 0, 1);
    write_flipped(path("s0.tif"), path("s3.tif"), 1, 1);
    const int fx[4] = {0, 1, 0, 1}, fy[4] = {0, 0, 1, 1};
    /* One tile, the whole scene: TTA flips exactly the scene. */
    const char *opts = "--tile 256 --overlap 0 --precision fp32 --threads 2";
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --proba %s --tta %s",
                               tool, model, path("s0.tif"), path("t.tif"), path("t_p.tif"),
                               opts), 0);
    int w, h;
    float *tta = read_f32(path("t_p.tif"), 1, &w, &h);
    ck_assert(w == 256 && h == 256);
    double *mean = calloc((size_t)w * h, sizeof *mean);
    float *plain0 = NULL;
    for (int f = 0; f < 4; f++) {
        char s[64], m[64], pr[64];
        snprintf(s, sizeof s, "s%d.tif", f);
        snprintf(m, sizeof m, "m%d.tif", f);
        snprintf(pr, sizeof pr, "p%d.tif", f);
        ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --proba %s %s", tool,
                                   model, path(s), path(m), path(pr), opts), 0);
        int w2, h2;
        float *p = read_f32(path(pr), 1, &w2, &h2);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) /* flipped back */
                mean[(size_t)y * w + x] +=
                    p[(size_t)(fy[f] ? h - 1 - y : y) * w + (fx[f] ? w - 1 - x : x)] / 4.0;
        if (f == 0) plain0 = p;
        else free(p);
    }
    double worst = 0, from_plain = 0;
    size_t n = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        if (isnan(tta[i])) {
            ck_assert(isnan(mean[i]));
            continue;
        }
        n++;
        worst = fmax(worst, fabs(tta[i] - mean[i]));
        from_plain = fmax(from_plain, fabs((double)tta[i] - plain0[i]));
    }
    fprintf(stderr, "tta: max |tta - mean of 4 flipped runs| = %.3g on %zu pixels (max |tta - "
                    "plain| %.3g)\n", worst, n, from_plain);
    ck_assert(n > 0);
    ck_assert_msg(worst <= 1e-5, "TTA differs from the mean of flips by %g", worst);
    /* and it is not the plain prediction (else the check proves nothing) */
    ck_assert_msg(from_plain > 1e-3, "TTA equals the plain prediction (%g)", from_plain);
    free(tta);
    free(mean);
    free(plain0);
}
END_TEST

/* ---- 5. scenes whose bands do not match the model ---------------------- */

START_TEST(test_band_mismatch_refused)
{
    char named[1024], numbered[1024], s5[1024], s7[1024];
    snprintf(named, sizeof named, "%s", path("named.gseg"));
    snprintf(numbered, sizeof numbered, "%s", path("numbered.gseg"));
    make_model(named, 1, 2, NULL);
    make_model(numbered, 0, 2, NULL);
    ck_assert_int_eq(tu_system("mkdir -p %s %s", path("five"), path("seven")), 0);
    snprintf(s5, sizeof s5, "%s", path("five/scene5.tif"));
    snprintf(s7, sizeof s7, "%s", path("seven/scene7.tif"));
    crop(s5, 0, 0, 96, 80, "-b 1 -b 2 -b 3 -b 4 -b 5"); /* no swir2 */
    crop(s7, 0, 0, 96, 80, "");                         /* 7 bands */

    /* Named bands, one missing: exit 1, one line naming everything. */
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s --precision fp32 2> %s", tool,
                               named, s5, path("err5.txt")), 1);
    char *e = slurp(path("err5.txt"), NULL);
    fprintf(stderr, "refusal (named): %s", e);
    ck_assert_msg(count_lines(e) == 1, "expected one line, got: %s", e);
    ck_assert_ptr_nonnull(strstr(e, s5));
    ck_assert_ptr_nonnull(strstr(e, named));
    ck_assert_ptr_nonnull(strstr(e, "6 (blue, green, red, nir, swir1, swir2)"));
    ck_assert_ptr_nonnull(strstr(e, "5 (blue, green, red, nir, swir1)"));
    free(e);
    ck_assert(no_outputs(path("five"), "scene5"));

    /* Numbered bands ("1".."6") on a 7-band scene: which six? Refused. */
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s --precision fp32 2> %s", tool,
                               numbered, s7, path("err7.txt")), 1);
    e = slurp(path("err7.txt"), NULL);
    fprintf(stderr, "refusal (numbered): %s", e);
    ck_assert_msg(count_lines(e) == 1, "expected one line, got: %s", e);
    ck_assert_ptr_nonnull(strstr(e, s7));
    ck_assert_ptr_nonnull(strstr(e, numbered));
    ck_assert_ptr_nonnull(strstr(e, "6 (1, 2, 3, 4, 5, 6)"));
    ck_assert_ptr_nonnull(strstr(e, "7 (blue, green, red, nir, swir1, swir2, elevation)"));
    free(e);
    ck_assert(no_outputs(path("seven"), "scene7"));

    /* The numbered model does take a 6-band scene (the check is not a
     * blanket refusal). */
    crop(path("seven/scene6.tif"), 0, 0, 96, 80, "-b 1 -b 2 -b 3 -b 4 -b 5 -b 6");
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s --precision fp32", tool,
                               numbered, path("seven/scene6.tif")), 0);
    ck_assert_int_eq(tu_system("test -f %s", path("seven/scene6_mask.tif")), 0);
}
END_TEST

/* ---- 6. multi-class models ---------------------------------------------- */

START_TEST(test_multiclass_probabilities)
{
    const char *classes[] = {"background", "clean_ice", "debris"};
    char model[1024], scene[1024];
    snprintf(model, sizeof model, "%s", path("three.gseg"));
    snprintf(scene, sizeof scene, "%s", path("scene.tif"));
    make_model(model, 1, 3, classes);
    nodata_scene(scene);
    /* the model's tiling: 256 overlapping by 32, 2 x 2 tiles */
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --proba %s "
                               "--precision fp32 --threads 2",
                               tool, model, scene, path("m.tif"), path("p.tif")), 0);
    GDALDatasetH ds = GDALOpen(path("p.tif"), GA_ReadOnly);
    ck_assert_ptr_nonnull(ds);
    ck_assert_int_eq(GDALGetRasterCount(ds), 3);
    for (int k = 0; k < 3; k++) {
        GDALRasterBandH b = GDALGetRasterBand(ds, k + 1);
        ck_assert_int_eq(GDALGetRasterDataType(b), GDT_Float32);
        ck_assert_str_eq(GDALGetDescription(b), classes[k]);
    }
    GDALClose(ds);
    int w, h;
    float *p[3];
    for (int k = 0; k < 3; k++) p[k] = read_f32(path("p.tif"), k + 1, &w, &h);
    uint8_t *m = read_u8(path("m.tif"), &w, &h);
    double worst = 0;
    long long count[3] = {0, 0, 0};
    size_t nvalid = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        if (m[i] == 255) {
            for (int k = 0; k < 3; k++) ck_assert(isnan(p[k][i]));
            continue;
        }
        nvalid++;
        double s = 0;
        int best = 0;
        for (int k = 0; k < 3; k++) {
            ck_assert(p[k][i] >= 0 && p[k][i] <= 1);
            s += p[k][i];
            if (p[k][i] > p[best][i]) best = k;
        }
        worst = fmax(worst, fabs(s - 1));
        ck_assert_msg(m[i] == best, "pixel %zu: mask %d, argmax %d", i, m[i], best);
        count[best]++;
    }
    fprintf(stderr, "3 classes: %zu valid pixels, argmax %lld / %lld / %lld, max |sum - 1| "
                    "%.3g\n", nvalid, count[0], count[1], count[2], worst);
    ck_assert_int_eq(nvalid, (size_t)w * h - 140 * 140);
    ck_assert_msg(worst <= 1e-4, "probabilities sum to 1 within %g only", worst);
    /* mask categories are the class names */
    ds = GDALOpen(path("m.tif"), GA_ReadOnly);
    char **cats = categories(ds);
    ck_assert_int_eq(CSLCount(cats), 3);
    for (int k = 0; k < 3; k++) ck_assert_str_eq(cats[k], classes[k]);
    GDALClose(ds);
    for (int k = 0; k < 3; k++) free(p[k]);
    free(m);
}
END_TEST

/* ---- 7. the default model ----------------------------------------------- */

START_TEST(test_default_model)
{
    char run[1024], empty[1024], scene[1024], mask[1024], other[1024];
    snprintf(run, sizeof run, "%s", path("run"));
    snprintf(empty, sizeof empty, "%s", path("empty"));
    snprintf(scene, sizeof scene, "%s", path("scenes/s.tif"));
    snprintf(mask, sizeof mask, "%s", path("scenes/s_mask.tif"));
    snprintf(other, sizeof other, "%s", path("three.gseg"));
    ck_assert_int_eq(tu_system("mkdir -p %s %s %s", run, empty, path("scenes")), 0);
    make_model(path("run/model.gseg"), 1, 2, NULL);
    const char *classes[] = {"background", "clean_ice", "debris"};
    make_model(other, 1, 3, classes);
    crop(scene, 200, 200, 96, 96, "");

    /* ./model.gseg of the current folder; the mask beside the scene. */
    ck_assert_int_eq(tu_system("cd %s && env -u GSEG_MODEL %s -q --image_path %s "
                               "--precision fp32", run, tool, scene), 0);
    GDALDatasetH ds = GDALOpen(mask, GA_ReadOnly);
    ck_assert_msg(ds != NULL, "no mask beside the scene");
    ck_assert_str_eq(GDALGetMetadataItem(ds, "GSEG_MODEL", NULL), "model.gseg");
    ck_assert_int_eq(CSLCount(categories(ds)), 2);
    GDALClose(ds);
    ck_assert_int_eq(tu_system("test -e %s/s_mask.tif", run), 1);

    /* GSEG_MODEL wins over ./model.gseg. */
    ck_assert_int_eq(tu_system("rm -f %s %s.aux.xml", mask, mask), 0);
    ck_assert_int_eq(tu_system("cd %s && GSEG_MODEL=%s %s -q --image_path %s "
                               "--precision fp32", run, other, tool, scene), 0);
    ds = GDALOpen(mask, GA_ReadOnly);
    ck_assert_ptr_nonnull(ds);
    ck_assert_str_eq(GDALGetMetadataItem(ds, "GSEG_MODEL", NULL), other);
    ck_assert_int_eq(CSLCount(categories(ds)), 3);
    GDALClose(ds);

    /* Neither: a usage error that says what to do. */
    ck_assert_int_eq(tu_system("cd %s && env -u GSEG_MODEL %s -q --image_path %s 2> %s", empty,
                               tool, scene, path("err.txt")), 2);
    char *e = slurp(path("err.txt"), NULL);
    fprintf(stderr, "no model: %s", e);
    ck_assert_ptr_nonnull(strstr(e, "model.gseg"));
    free(e);
}
END_TEST

/* ---- 8. an unreadable scene in a multi-scene run ------------------------ */

/* Overwrites with 0xFF (an invalid zlib header) the compressed blocks of
 * every band whose block row is in the lower half of the raster, so
 * opening works but reading those tiles fails. */
static void corrupt_lower_half(const char *file)
{
    GDALDatasetH ds = GDALOpen(file, GA_ReadOnly);
    ck_assert_ptr_nonnull(ds);
    int h = GDALGetRasterYSize(ds), w = GDALGetRasterXSize(ds);
    int bw, bh;
    GDALGetBlockSize(GDALGetRasterBand(ds, 1), &bw, &bh);
    ck_assert_msg(bh < h / 2, "%s is not tiled", file);
    int nbx = (w + bw - 1) / bw, nby = (h + bh - 1) / bh;
    long long off[4096], size[4096];
    int n = 0;
    for (int b = 1; b <= GDALGetRasterCount(ds); b++)
        for (int by = nby / 2; by < nby; by++)
            for (int bx = 0; bx < nbx; bx++) {
                GDALRasterBandH band = GDALGetRasterBand(ds, b);
                char key[64];
                snprintf(key, sizeof key, "BLOCK_OFFSET_%d_%d", bx, by);
                const char *o = GDALGetMetadataItem(band, key, "TIFF");
                snprintf(key, sizeof key, "BLOCK_SIZE_%d_%d", bx, by);
                const char *s = GDALGetMetadataItem(band, key, "TIFF");
                ck_assert(o && s && n < 4096);
                off[n] = atoll(o);
                size[n] = atoll(s);
                n++;
            }
    GDALClose(ds);
    FILE *f = fopen(file, "r+b");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(fseek(f, (long)off[i], SEEK_SET), 0);
        for (long long k = 0; k < size[i]; k++) fputc(0xFF, f);
    }
    fclose(f);
}

START_TEST(test_corrupt_scene_in_batch_run)
{
    char model[1024], good1[1024], bad[1024], good2[1024], sd[1024];
    snprintf(model, sizeof model, "%s", path("net.gseg"));
    snprintf(sd, sizeof sd, "%s", path("scenes"));
    snprintf(good1, sizeof good1, "%s", path("scenes/good1.tif"));
    snprintf(bad, sizeof bad, "%s", path("scenes/corrupt.tif"));
    snprintf(good2, sizeof good2, "%s", path("scenes/good2.tif"));
    make_model(model, 1, 2, NULL);
    ck_assert_int_eq(tu_system("mkdir -p %s", sd), 0);
    crop(good1, 0, 0, 160, 140, "");
    crop(good2, 300, 300, 150, 170, "");
    ck_assert_int_eq(tu_system("gdal_translate -q -srcwin 100 100 300 260 -co TILED=YES "
                               "-co BLOCKXSIZE=64 -co BLOCKYSIZE=64 -co COMPRESS=DEFLATE '%s' '%s'",
                               sample, bad), 0);
    corrupt_lower_half(bad);
    /* the upper half still reads, the lower does not */
    ck_assert_int_eq(tu_system("gdal_translate -q -srcwin 0 0 300 64 '%s' %s 2>/dev/null", bad,
                               path("top.tif")), 0);
    ck_assert_int_ne(tu_system("gdal_translate -q '%s' %s 2>/dev/null", bad, path("all.tif")), 0);

    /* 128-pixel tiles in batches of 1 with 2 readers: several batches are
     * in flight when a reader fails, and the readers wait for their turn
     * (pipeline.c) while the network runs. A hang fails through timeout
     * (124). */
    int rc = tu_system("timeout 300 %s -q --model %s --image_path %s %s %s --tile 128 "
                       "--overlap 32 --batch 1 --readers 2 --precision fp32 --threads 2 "
                       "--config GSEG_PIPELINE_TURNS YES --summary %s 2> %s",
                       tool, model, good1, bad, good2, path("sum.json"), path("err.txt"));
    char *e = slurp(path("err.txt"), NULL);
    fprintf(stderr, "corrupt scene: exit %d, stderr:\n%s", rc, e);
    ck_assert_msg(rc != 124, "gseg-predict hung on a corrupt scene");
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(e, bad));
    ck_assert_int_eq(tu_system("test -f %s/good1_mask.tif && test -f %s/good2_mask.tif", sd, sd),
                     0);
    ck_assert(no_outputs(sd, "corrupt"));
    ck_assert_int_eq(tu_system("ls -A %s | grep -q gseg-tmp", sd), 1);
    /* the scene after the failure is mapped as in a run of its own (here
     * with the stages overlapping): the failed pipeline left nothing behind
     * in the shared model */
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --tile 128 --overlap 32 "
                               "--batch 1 --readers 2 --precision fp32 --threads 2 "
                               "--config GSEG_PIPELINE_TURNS NO",
                               tool, model, good2, path("alone.tif")), 0);
    assert_same_mask(path("scenes/good2_mask.tif"), path("alone.tif"));

    gseg__json *j = read_json(path("sum.json"));
    ck_assert_int_eq((int)jnum(j, "scenes_total"), 3);
    ck_assert_int_eq((int)jnum(j, "scenes_ok"), 2);
    ck_assert_int_eq((int)jnum(j, "scenes_failed"), 1);
    const gseg__json *sc = gseg__json_get(j, "scenes");
    ck_assert_int_eq(gseg__json_len(sc), 3);
    const char *inputs[3] = {good1, bad, good2};
    for (int i = 0; i < 3; i++) {
        const gseg__json *s = gseg__json_at(sc, (size_t)i);
        ck_assert_str_eq(jstr(s, "input"), inputs[i]);
        ck_assert_str_eq(jstr(s, "status"), i == 1 ? "failed" : "ok");
    }
    const char *err = jstr(gseg__json_at(sc, 1), "error");
    ck_assert_msg(*err && strstr(e, err), "summary error '%s' is not the failure reported", err);
    ck_assert_ptr_nonnull(strstr(err, "corrupt.tif"));
    gseg__json_free(j);
    free(e);
}
END_TEST

/* The random-access predictor (the GDAL driver's engine) serves windows in
 * any order that are byte for byte gseg-predict's mask and probabilities:
 * blocks out of order, windows straddling tile-row bands, a cache of three
 * bands forcing recomputation. */
START_TEST(test_predictor_windows_equal_predict)
{
    char model[1024], scene[1024], mask[1024], proba[1024];
    snprintf(model, sizeof model, "%s", path("net.gseg"));
    snprintf(scene, sizeof scene, "%s", path("scene.tif"));
    snprintf(mask, sizeof mask, "%s", path("mask.tif"));
    snprintf(proba, sizeof proba, "%s", path("proba.tif"));
    make_model(model, 1, 2, NULL);
    crop(scene, 0, 0, 300, 420, "-b 1 -b 2 -b 3 -b 4 -b 5 -b 6");
    blank(scene, 0, 0, 90, 140);
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --proba %s --tile 128 "
                               "--overlap 40 --precision fp32 --threads 2", tool, model, scene,
                               mask, proba), 0);
    int w, h;
    uint8_t *ref = read_u8(mask, &w, &h);
    float *pref = read_f32(proba, 1, &w, &h);

    CPLSetConfigOption("GSEG_PREDICTOR_CACHE", "1"); /* the minimum: 3 bands */
    gseg_predict_params p = gseg_predict_params_default();
    const char *in[] = {scene};
    p.inputs = in;
    p.ninputs = 1;
    p.model = model;
    p.tile = 128;
    p.overlap = 40;
    p.model_options.precision = GSEG_PRECISION_FP32;
    p.model_options.threads = 2;
    gseg_predictor *pr = NULL;
    ck_gseg(gseg_predictor_open(&p, 1, &pr));
    CPLSetConfigOption("GSEG_PREDICTOR_CACHE", NULL);
    const gseg_predictor_info *info = gseg_predictor_get_info(pr);
    ck_assert_int_eq(info->width, w);
    ck_assert_int_eq(info->height, h);
    uint8_t *m = malloc((size_t)w * h);
    float *q = malloc((size_t)w * h * sizeof *q);
    /* 64x64 blocks, bottom-up and right-to-left, then a few odd windows */
    const int B = 64;
    for (int by = (h - 1) / B; by >= 0; by--)
        for (int bx = (w - 1) / B; bx >= 0; bx--) {
            gseg_window win = {bx * B, by * B, B, B};
            if (win.x + win.w > w) win.w = w - win.x;
            if (win.y + win.h > h) win.h = h - win.y;
            uint8_t *bm = malloc((size_t)win.w * win.h);
            float *bp = malloc((size_t)win.w * win.h * sizeof *bp);
            ck_gseg(gseg_predictor_read(pr, win, bm, bp));
            for (int y = 0; y < win.h; y++) {
                memcpy(m + (size_t)(win.y + y) * w + win.x, bm + (size_t)y * win.w, win.w);
                memcpy(q + (size_t)(win.y + y) * w + win.x, bp + (size_t)y * win.w,
                       win.w * sizeof *q);
            }
            free(bm);
            free(bp);
        }
    ck_assert_int_eq(memcmp(m, ref, (size_t)w * h), 0);
    for (size_t i = 0; i < (size_t)w * h; i++)
        ck_assert_msg(isnan(pref[i]) ? isnan(q[i]) : q[i] == pref[i], "pixel %zu: %g vs %g", i,
                      q[i], pref[i]);
    /* one tall window across every band, read twice (cached, then not) */
    gseg_window tall = {37, 0, 101, h};
    uint8_t *tm = malloc((size_t)tall.w * tall.h);
    for (int round = 0; round < 2; round++) {
        ck_gseg(gseg_predictor_read(pr, tall, tm, NULL));
        for (int y = 0; y < h; y++)
            ck_assert_int_eq(memcmp(tm + (size_t)y * tall.w, ref + (size_t)y * w + tall.x,
                                    tall.w), 0);
    }
    gseg_window outside = {250, 400, 60, 30};
    ck_assert_int_eq(gseg_predictor_read(pr, outside, tm, NULL), GSEG_ERR_ARG);
    free(tm);
    gseg_predictor_free(pr);
    free(m);
    free(q);
    free(ref);
    free(pref);
}
END_TEST

int main(void)
{
    /* One case per test, so CK_RUN_CASE=tiling (say) runs one alone. */
    const tu_case tests[] = {
        {"output", test_output_georef_classes_summary},
        {"determinism", test_threads_batch_readers_bit_identical},
        {"tiling", test_tiling_changes_only_seams},
        {"tta", test_tta_is_mean_of_flips},
        {"bands", test_band_mismatch_refused},
        {"multiclass", test_multiclass_probabilities},
        {"default_model", test_default_model},
        {"corrupt", test_corrupt_scene_in_batch_run},
        {"predictor", test_predictor_windows_equal_predict},
    };
    return tu_run(tu_suite("pipeline", tests, sizeof tests / sizeof *tests, 900, setup));
}
