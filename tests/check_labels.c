/* check_labels.c — labels from glacier outlines (--labels): discovery
 * without masks, masks burnt from outlines in another CRS compared pixel
 * for pixel with GDAL's own tools (ogr2ogr -t_srs + gdal_rasterize), rotated
 * grids, class fields, refusals, and gseg-evaluate with outlines against
 * gseg-evaluate with the mask they were polygonized from. No libtorch. */
#include "testutil.h"

#include "internal.h"
#include "train.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <ogr_api.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static char warned[4096];

static const char *path(const char *name) { return tu_path(dir, name); }

static void CPL_STDCALL on_message(CPLErr c, CPLErrorNum n, const char *msg)
{
    (void)n;
    size_t l = strlen(warned);
    if (c == CE_Warning && l < sizeof warned - 1)
        snprintf(warned + l, sizeof warned - l, "%s\n", msg);
}

static void setup(void)
{
    gseg_init();
    free(dir);
    dir = tu_tmpdir("check_labels");
    warned[0] = '\0';
}

/* A synthetic UTM 43N scene `name` (size x size, 30 m) in folder/images/,
 * its truth mask at name_truth.tif and, if outlines, its truth outlines in
 * EPSG:4326 at name_4326.gpkg (layer "glaciers", attribute "class"),
 * simplified so that edges cut pixels diagonally. */
static void make_scene(const char *folder, const char *name, int size, unsigned long seed,
                       double origin_x, int outlines)
{
    ck_assert_int_eq(tu_system("mkdir -p %s/images", folder), 0);
    gseg_synth_params sp = gseg_synth_params_default();
    sp.width = sp.height = size;
    sp.seed = seed;
    sp.origin_x = origin_x;
    sp.cloud_cover = 0;
    sp.snowline_m = 4300; /* glaciers even on small scenes */
    char img[1200], truth[1200], utm[1200];
    snprintf(img, sizeof img, "%s/images/%s.tif", folder, name);
    snprintf(truth, sizeof truth, "%s/%s_truth.tif", dir, name);
    snprintf(utm, sizeof utm, "%s/%s_utm.gpkg", dir, name);
    ck_gseg(gseg_synth_scene(&sp, img, truth, outlines ? utm : NULL));
    if (outlines)
        ck_assert_int_eq(tu_system("ogr2ogr -f GPKG -simplify 20 -t_srs EPSG:4326 %s/%s_4326.gpkg %s",
                                   dir, name, utm), 0);
}

/* Band 1 of a raster (malloc'd) and its size. */
static uint8_t *read_mask(const char *file, int *w, int *h)
{
    GDALDatasetH ds = GDALOpen(file, GA_ReadOnly);
    ck_assert_msg(ds != NULL, "cannot open %s", file);
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    uint8_t *m = malloc((size_t)*w * *h);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, 0, 0, *w, *h, m, *w, *h,
                                  GDT_Byte, 0, 0), CE_None);
    GDALClose(ds);
    return m;
}

/* Burns labels onto the one scene of folder; returns the status and, on
 * success, the mask (malloc'd). */
static gseg_status burn(const char *folder, const char *labels, const char *field, uint8_t **mask,
                        int *w, int *h)
{
    gseg__tdata d;
    gseg_status st = gseg__tdata_discover(&d, folder, 0);
    ck_assert_msg(st == GSEG_OK, "%s", gseg_last_error());
    ck_assert_int_eq(d.n, 1);
    st = gseg__tdata_labels(&d, labels, field);
    if (st == GSEG_OK) {
        ck_assert_int_eq(d.scenes[0].mask_is_mem, 1);
        *mask = read_mask(d.scenes[0].mask, w, h);
    }
    gseg__tdata_free(&d);
    return st;
}

/* GDAL's answer: outlines reprojected by ogr2ogr, burnt by gdal_rasterize
 * onto a zero copy of the scene's grid (gdal_translate keeps the
 * geotransform, rotation terms included). */
static uint8_t *gdal_peer(const char *image_, const char *labels_, const char *burn_opt, int *w,
                          int *h)
{
    char image[1024], labels[1024];
    snprintf(image, sizeof image, "%s", image_);
    snprintf(labels, sizeof labels, "%s", labels_);
    const char *srs = path("peer_srs.txt");
    ck_assert_int_eq(tu_system("gdalsrsinfo -o wkt %s > %s", image, srs), 0);
    ck_assert_int_eq(tu_system("rm -f %s %s", path("peer.gpkg"), path("peer.tif")), 0);
    ck_assert_int_eq(tu_system("ogr2ogr -f GPKG -t_srs %s %s %s", srs, path("peer.gpkg"), labels), 0);
    ck_assert_int_eq(tu_system("gdal_translate -q -ot Byte -b 1 -scale 0 65535 0 0 -a_nodata none "
                               "%s %s", image, path("peer.tif")), 0);
    ck_assert_int_eq(tu_system("gdal_rasterize -q -l glaciers %s %s %s", burn_opt, path("peer.gpkg"),
                               path("peer.tif")), 0);
    return read_mask(path("peer.tif"), w, h);
}

static long count_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    long k = 0;
    for (size_t i = 0; i < n; i++) k += a[i] != b[i];
    return k;
}

static long count_value(const uint8_t *a, size_t n, int v)
{
    long k = 0;
    for (size_t i = 0; i < n; i++) k += a[i] == v;
    return k;
}

START_TEST(test_discovery_without_masks)
{
    /* A plain folder of scenes (and the same zipped). */
    make_scene(path("flat"), "a", 64, 1, 500000, 0);
    make_scene(path("flat"), "b", 64, 2, 500000, 0);
    ck_assert_int_eq(tu_system("cd %s/flat && mv images/a.tif images/b.tif . && rmdir images && "
                               "zip -q ../flat.zip a.tif b.tif", dir), 0);
    gseg__tdata d;
    ck_gseg(gseg__tdata_discover(&d, path("flat"), 0));
    ck_assert_int_eq(d.n, 2);
    ck_assert_ptr_null(d.scenes[0].mask);
    ck_assert_ptr_nonnull(strstr(d.scenes[1].image, "b.tif"));
    gseg__tdata_free(&d);
    ck_gseg(gseg__tdata_discover(&d, path("flat.zip"), 0));
    ck_assert_int_eq(d.n, 2);
    gseg__tdata_free(&d);
    /* With masks required, the plain folder is refused. */
    ck_assert_int_eq(gseg__tdata_discover(&d, path("flat"), 1), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "images"));
    /* train/images + val/images, no masks/; one image with a mask keeps it. */
    make_scene(path("tv/train"), "a", 64, 1, 500000, 0);
    make_scene(path("tv/val"), "b", 64, 2, 500000, 0);
    ck_assert_int_eq(tu_system("mkdir -p %s/tv/train/masks && cp %s %s/tv/train/masks/a.tif", dir,
                               path("a_truth.tif"), dir), 0);
    ck_gseg(gseg__tdata_discover(&d, path("tv"), 0));
    ck_assert_int_eq(d.n, 2);
    ck_assert_int_eq(d.has_val, 1);
    ck_assert_int_eq(d.scenes[1].val, 1);
    ck_assert_ptr_nonnull(strstr(d.scenes[0].mask, "masks/a.tif"));
    ck_assert_ptr_null(d.scenes[1].mask);
    gseg__tdata_free(&d);
    ck_assert_int_eq(gseg__tdata_discover(&d, path("tv"), 1), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "val/images/b.tif"));
    /* Archives of the folder itself (zip -r x.zip x/, tar czf): the same. */
    ck_assert_int_eq(tu_system("cd %s && zip -qr tv.zip tv && tar czf flat.tar.gz flat/a.tif flat/b.tif",
                               dir), 0);
    ck_gseg(gseg__tdata_discover(&d, path("tv.zip"), 0));
    ck_assert_int_eq(d.n, 2);
    ck_assert_int_eq(d.has_val, 1);
    ck_assert_ptr_nonnull(strstr(d.scenes[0].image, "/vsizip/"));
    ck_assert_ptr_nonnull(strstr(d.scenes[0].mask, "tv/train/masks/a.tif"));
    gseg__tdata_free(&d);
    ck_gseg(gseg__tdata_discover(&d, path("flat.tar.gz"), 0));
    ck_assert_int_eq(d.n, 2);
    gseg__tdata_free(&d);
    /* A folder without any raster. */
    ck_assert_int_eq(tu_system("mkdir -p %s/empty", dir), 0);
    ck_assert_int_eq(gseg__tdata_discover(&d, path("empty"), 0), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "no raster files"));
    /* A product's band files (Landsat, Sentinel-2 naming) are not scenes of
     * their own: refused, naming two of them and the way to stack them. */
    static const char *const products[][3] = {
        {"LC09_L2SP_146039_20220815_20220817_02_T1_SR_B3", "LC09_L2SP_146039_20220815_20220817_02_T1_SR_B6",
         "LC09_L2SP_146039_20220815_20220817_02_T1_ST_B10"},
        {"T45RVL_20230101T045141_B03_10m", "T45RVL_20230101T045141_B11_20m",
         "T45RVL_20230101T045141_B8A_20m"},
    };
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(tu_system("rm -rf %s/bands && mkdir -p %s/bands", dir, dir), 0);
        for (int b = 0; b < 3; b++)
            ck_assert_int_eq(tu_system("gdal_translate -q -b 1 %s/flat/a.tif %s/bands/%s.tif", dir, dir,
                                       products[k][b]), 0);
        ck_assert_int_eq(gseg__tdata_discover(&d, path("bands"), 0), GSEG_ERR_FORMAT);
        const char *e = gseg_last_error();
        ck_assert_msg(strstr(e, products[k][0]) && strstr(e, "two bands of one product") &&
                          strstr(e, "gdalbuildvrt -separate") && !strchr(e, '\n'), "%s", e);
        /* their stack is a scene */
        ck_assert_int_eq(tu_system("cd %s/bands && rm -rf ../vrt && mkdir ../vrt && "
                                   "gdalbuildvrt -q -separate ../vrt/stack.vrt *.tif", dir), 0);
        ck_gseg(gseg__tdata_discover(&d, path("vrt"), 0));
        ck_assert_int_eq(d.n, 1);
        GDALDatasetH vrt = GDALOpen(d.scenes[0].image, GA_ReadOnly);
        ck_assert_msg(vrt && GDALGetRasterCount(vrt) == 3, "%s", d.scenes[0].image);
        GDALClose(vrt);
        gseg__tdata_free(&d);
    }
    /* One file with a band-like name, or multi-band files so named, are
     * scenes. */
    ck_assert_int_eq(tu_system("rm -rf %s/bands && mkdir -p %s/bands && cp %s/flat/a.tif %s/bands/x_B3.tif "
                               "&& cp %s/flat/b.tif %s/bands/x_B4.tif && gdal_translate -q -b 1 %s/flat/a.tif "
                               "%s/bands/y_B3.tif", dir, dir, dir, dir, dir, dir, dir, dir), 0);
    ck_gseg(gseg__tdata_discover(&d, path("bands"), 0));
    ck_assert_int_eq(d.n, 3);
    gseg__tdata_free(&d);
}
END_TEST

/* (a) Outlines in EPSG:4326, scene in UTM 43N: the same mask as ogr2ogr
 * -t_srs + gdal_rasterize. Both transform the vertices with PROJ (no edge
 * densification) and burn pixel centres with the same rasterizer, so not
 * one pixel may differ. The same outlines as a zipped shapefile: the same. */
START_TEST(test_utm_scene_4326_outlines_match_gdal)
{
    make_scene(path("a"), "s", 160, 4, 500000, 1);
    char img[1024], labels[1024];
    snprintf(img, sizeof img, "%s", path("a/images/s.tif"));
    snprintf(labels, sizeof labels, "%s", path("s_4326.gpkg"));
    uint8_t *m = NULL, *peer;
    int w, h, pw, ph;
    ck_gseg(burn(path("a"), labels, NULL, &m, &w, &h));
    peer = gdal_peer(img, labels, "-burn 1", &pw, &ph);
    ck_assert_int_eq(w, 160);
    ck_assert_int_eq(pw, w);
    ck_assert_int_eq(ph, h);
    size_t n = (size_t)w * h;
    long glacier = count_value(m, n, 1);
    fprintf(stderr, "labels: %ld glacier pixels of %zu, %ld differ from gdal_rasterize\n", glacier, n,
            count_diff(m, peer, n));
    ck_assert_msg(glacier > 200 && glacier < (long)n - 200, "glacier pixels: %ld", glacier);
    ck_assert_int_eq(count_value(m, n, 0) + glacier, (long)n);
    ck_assert_int_eq(count_diff(m, peer, n), 0);
    /* Close to the truth mask the outlines came from (simplified outlines:
     * a few pixels along edges). */
    uint8_t *truth = read_mask(path("s_truth.tif"), &pw, &ph);
    ck_assert_msg(count_diff(m, truth, n) < (long)n / 50, "%ld pixels off the truth",
                  count_diff(m, truth, n));
    /* A zipped shapefile, opened in place. */
    ck_assert_int_eq(tu_system("cd %s && ogr2ogr -f 'ESRI Shapefile' shp %s && cd shp && "
                               "zip -q ../outlines.zip glaciers.*", dir, labels), 0);
    uint8_t *z = NULL;
    ck_gseg(burn(path("a"), path("outlines.zip"), NULL, &z, &w, &h));
    ck_assert_int_eq(count_diff(z, peer, n), 0);
    /* Geometry collections (ST_MakeValid's output for many invalid
     * outlines: polygons with a stray point) burn their polygons. */
    ck_assert_int_eq(tu_system("cd %s && ogr2ogr -f GPKG gc.gpkg %s -nln glaciers -nlt "
                               "GEOMETRYCOLLECTION -dialect sqlite -sql \"SELECT "
                               "ST_Collect(geom, ST_Centroid(geom)) AS geom FROM glaciers\" && "
                               "ogrinfo -q gc.gpkg glaciers | grep -q 'GEOMETRYCOLLECTION (POINT'",
                               dir, labels), 0);
    uint8_t *gcm = NULL;
    ck_gseg(burn(path("a"), path("gc.gpkg"), NULL, &gcm, &w, &h));
    ck_assert_int_eq(count_diff(gcm, peer, n), 0);
    free(gcm);
    free(m), free(peer), free(truth), free(z);
}
END_TEST

/* (b) A rotated grid (geotransform terms 2 and 4 non-zero): the mask keeps
 * the scene's geotransform exactly and matches gdal_rasterize on it. */
START_TEST(test_rotated_grid_matches_gdal)
{
    make_scene(path("r"), "s", 160, 2, 500000, 1);
    char img[1024];
    snprintf(img, sizeof img, "%s", path("r/images/s.tif"));
    const double th = 20 * M_PI / 180;
    const double gt_rot[6] = {500000 + 1500, 30 * cos(th), 30 * sin(th),
                              4000000 - 600, 30 * sin(th), -30 * cos(th)};
    GDALDatasetH ds = GDALOpen(img, GA_Update);
    ck_assert_ptr_nonnull(ds);
    ck_assert_int_eq(GDALSetGeoTransform(ds, (double *)gt_rot), CE_None);
    GDALClose(ds);
    gseg__tdata d;
    ck_gseg(gseg__tdata_discover(&d, path("r"), 0));
    ck_gseg(gseg__tdata_labels(&d, path("s_4326.gpkg"), NULL));
    double gt[6];
    ds = GDALOpen(d.scenes[0].mask, GA_ReadOnly);
    ck_assert_ptr_nonnull(ds);
    ck_assert_int_eq(GDALGetGeoTransform(ds, gt), CE_None);
    for (int k = 0; k < 6; k++) ck_assert_double_eq(gt[k], gt_rot[k]);
    int has = 0;
    ck_assert_double_eq(GDALGetRasterNoDataValue(GDALGetRasterBand(ds, 1), &has), 255);
    ck_assert_int_eq(has, 1);
    char **md = GDALGetMetadata(ds, "IMAGE_STRUCTURE");
    ck_assert_str_eq(CSLFetchNameValueDef(md, "COMPRESSION", ""), "DEFLATE");
    int bw, bh;
    GDALGetBlockSize(GDALGetRasterBand(ds, 1), &bw, &bh);
    ck_assert_int_eq(bh, 256); /* tiled, not strips */
    GDALClose(ds);
    int w, h, pw, ph;
    uint8_t *m = read_mask(d.scenes[0].mask, &w, &h);
    char mem[1024];
    snprintf(mem, sizeof mem, "%s", d.scenes[0].mask);
    gseg__tdata_free(&d);
    VSIStatBufL sb;
    ck_assert_int_ne(VSIStatL(mem, &sb), 0); /* freed with the data */
    uint8_t *peer = gdal_peer(img, path("s_4326.gpkg"), "-burn 1", &pw, &ph);
    size_t n = (size_t)w * h;
    long glacier = count_value(m, n, 1);
    ck_assert_msg(glacier > 100 && glacier < (long)n - 100, "glacier pixels: %ld", glacier);
    ck_assert_int_eq(count_diff(m, peer, n), 0);
    /* Not the same as on the unrotated grid: the rotation is applied. */
    uint8_t *truth = read_mask(path("s_truth.tif"), &pw, &ph);
    ck_assert_int_gt(count_diff(m, truth, n), (long)n / 50);
    free(m), free(peer), free(truth);
}
END_TEST

/* (c) --label-field: classes 1 and 2 from an attribute, as gdal_rasterize
 * -a gives them. */
START_TEST(test_label_field_classes)
{
    make_scene(path("c"), "s", 160, 4, 500000, 1);
    ck_assert_int_eq(tu_system("ogr2ogr -f GPKG %s %s -nln glaciers -sql "
                               "\"SELECT *, CASE WHEN fid %% 2 = 0 THEN 2 ELSE 1 END AS cls "
                               "FROM glaciers\"", path("cls.gpkg"), path("s_4326.gpkg")), 0);
    uint8_t *m = NULL;
    int w, h, pw, ph;
    ck_gseg(burn(path("c"), path("cls.gpkg"), "cls", &m, &w, &h));
    uint8_t *peer = gdal_peer(path("c/images/s.tif"), path("cls.gpkg"), "-a cls", &pw, &ph);
    size_t n = (size_t)w * h;
    long c1 = count_value(m, n, 1), c2 = count_value(m, n, 2);
    ck_assert_msg(c1 > 20 && c2 > 20, "class 1: %ld, class 2: %ld pixels", c1, c2);
    ck_assert_int_eq(count_value(m, n, 0) + c1 + c2, (long)n);
    ck_assert_int_eq(count_diff(m, peer, n), 0);
    free(m), free(peer);
    /* class 2 where the model has 2 classes: the error names the outlines
     * and says how many class names are needed */
    gseg__tdata d;
    ck_gseg(gseg__tdata_discover(&d, path("c"), 0));
    ck_gseg(gseg__tdata_labels(&d, path("cls.gpkg"), "cls"));
    char **names = NULL;
    int nb = 0;
    ck_assert_int_eq(gseg__tdata_prepare(&d, NULL, 2, &nb, &names), GSEG_ERR_FORMAT);
    ck_assert_msg(strstr(gseg_last_error(), "cls.gpkg: class 2") &&
                      strstr(gseg_last_error(), "--classes with 3 names"),
                  "%s", gseg_last_error());
    CSLDestroy(names);
    gseg__tdata_free(&d);
}
END_TEST

/* A GLIMS-like layer (glims_polygons.shp, EPSG:4326, attribute line_type)
 * from the synthetic outlines: a square of internal rock inside every
 * glacier, stored before the glaciers, and debris polygons. */
static void make_glims(const char *outlines, const char *shp)
{
    GDALDatasetH in = GDALOpenEx(outlines, GDAL_OF_VECTOR, NULL, NULL, NULL);
    ck_assert_ptr_nonnull(in);
    OGRLayerH gl = GDALDatasetGetLayerByName(in, "glaciers");
    ck_assert_ptr_nonnull(gl);
    GDALDatasetH out = GDALCreate(GDALGetDriverByName("ESRI Shapefile"), shp, 0, 0, 0, GDT_Unknown,
                                  NULL);
    ck_assert_ptr_nonnull(out);
    OGRLayerH l = GDALDatasetCreateLayer(out, "glims_polygons", OGR_L_GetSpatialRef(gl), wkbPolygon,
                                         NULL);
    ck_assert_ptr_nonnull(l);
    OGRFieldDefnH fd = OGR_Fld_Create("line_type", OFTString);
    ck_assert_int_eq(OGR_L_CreateField(l, fd, TRUE), OGRERR_NONE);
    OGR_Fld_Destroy(fd);
    static const char *const kinds[] = {"intrnl_rock", "debris_cov", "glac_bound"};
    for (int k = 0; k < 3; k++) {
        OGR_L_ResetReading(gl);
        OGRFeatureH f;
        while ((f = OGR_L_GetNextFeature(gl)) != NULL) {
            OGRGeometryH g = OGR_F_GetGeometryRef(f), w;
            if (k == 2) {
                w = OGR_G_Clone(g);
            } else { /* about 5 x 4 pixels of 30 m around a point inside */
                OGRGeometryH p = OGR_G_PointOnSurface(g);
                double x = OGR_G_GetX(p, 0), y = OGR_G_GetY(p, 0), d = 0.0007;
                OGR_G_DestroyGeometry(p);
                char wkt[256], *wp = wkt;
                snprintf(wkt, sizeof wkt, "POLYGON ((%.9f %.9f,%.9f %.9f,%.9f %.9f,%.9f %.9f,%.9f %.9f))",
                         x - d, y - d, x - d, y + d, x + d, y + d, x + d, y - d, x - d, y - d);
                ck_assert_int_eq(OGR_G_CreateFromWkt(&wp, OGR_L_GetSpatialRef(gl), &w), OGRERR_NONE);
            }
            OGRFeatureH o = OGR_F_Create(OGR_L_GetLayerDefn(l));
            OGR_F_SetFieldString(o, 0, kinds[k]);
            OGR_F_SetGeometryDirectly(o, w);
            ck_assert_int_eq(OGR_L_CreateFeature(l, o), OGRERR_NONE);
            OGR_F_Destroy(o);
            OGR_F_Destroy(f);
        }
    }
    GDALClose(out);
    GDALClose(in);
}

/* GLIMS's internal rock carves background out of its glacier with the
 * recipe of gseg-train.md (class 0, burnt after the glaciers), and class 255
 * marks pixels as not labelled, kept out of the class check. */
START_TEST(test_class_zero_carves_and_255_is_unlabelled)
{
    make_scene(path("g"), "s", 160, 4, 500000, 1);
    make_glims(path("s_4326.gpkg"), path("glims_polygons.shp"));
    /* the recipe, as documented */
    ck_assert_int_eq(tu_system("ogr2ogr -f GPKG %s %s -nln glaciers -dialect SQLite -sql "
                               "\"SELECT *, CASE line_type WHEN 'intrnl_rock' THEN 0 ELSE 1 END AS cls "
                               "FROM glims_polygons WHERE line_type IN ('glac_bound', 'intrnl_rock') "
                               "ORDER BY cls DESC\"", path("glims.gpkg"), path("glims_polygons.shp")), 0);
    ck_assert_int_eq(tu_system("ogr2ogr -f GPKG %s %s -nln glaciers -where \"line_type = 'glac_bound'\"",
                               path("bound.gpkg"), path("glims_polygons.shp")), 0);
    uint8_t *m = NULL, *b = NULL;
    int w, h, bw, bh, pw, ph;
    ck_gseg(burn(path("g"), path("glims.gpkg"), "cls", &m, &w, &h));
    ck_gseg(burn(path("g"), path("bound.gpkg"), NULL, &b, &bw, &bh));
    ck_assert(w == bw && h == bh);
    size_t n = (size_t)w * h;
    long carved = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(m[i] == b[i] || (b[i] == 1 && m[i] == 0), "pixel %zu: %d, glaciers alone %d",
                      i, m[i], b[i]);
        carved += m[i] != b[i];
    }
    ck_assert_msg(carved >= 20 && count_value(m, n, 1) > 10 * carved, "carved %ld, glacier %ld",
                  carved, count_value(m, n, 1));
    uint8_t *peer = gdal_peer(path("g/images/s.tif"), path("glims.gpkg"), "-a cls", &pw, &ph);
    ck_assert_int_eq(count_diff(m, peer, n), 0);
    free(m), free(peer);

    /* A GLIMS download zip (and tar.gz) keeps its shapefiles in a folder,
     * with points and lines beside the polygons: opened at that folder,
     * the same mask as the shapefile itself. */
    ck_assert_int_eq(tu_system("cd %s && mkdir -p z/glims_download_7 && cp glims_polygons.* z/glims_download_7/ "
                               "&& ogr2ogr z/glims_download_7/glims_points.shp s_4326.gpkg -nlt POINT "
                               "-dialect SQLite -sql \"SELECT ST_PointOnSurface(geom) FROM glaciers\" "
                               "&& cd z && zip -qr ../glims_download_7.zip glims_download_7 "
                               "&& tar czf ../glims_download_7.tar.gz glims_download_7", dir), 0);
    free(b);
    ck_gseg(burn(path("g"), path("glims_polygons.shp"), NULL, &b, &bw, &bh));
    const char *archives[] = {"glims_download_7.zip", "glims_download_7.tar.gz"};
    for (int k = 0; k < 2; k++) {
        ck_gseg(burn(path("g"), path(archives[k]), NULL, &m, &w, &h));
        ck_assert_int_eq(count_diff(m, b, n), 0);
        free(m);
    }
    free(b);

    /* 255: not labelled, not a class above --classes */
    ck_assert_int_eq(tu_system("ogr2ogr -f GPKG %s %s -nln glaciers -sql \"SELECT *, CASE WHEN fid = 1 "
                               "THEN 255 ELSE 1 END AS cls FROM glaciers\"", path("u.gpkg"),
                               path("s_4326.gpkg")), 0);
    ck_gseg(burn(path("g"), path("u.gpkg"), "cls", &m, &w, &h));
    ck_assert_int_gt(count_value(m, n, 255), 0);
    ck_assert_int_gt(count_value(m, n, 1), 0);
    free(m);
    gseg__tdata d;
    ck_gseg(gseg__tdata_discover(&d, path("g"), 0));
    ck_gseg(gseg__tdata_labels(&d, path("u.gpkg"), "cls"));
    char **names = NULL;
    int nb = 0;
    ck_gseg(gseg__tdata_prepare(&d, NULL, 2, &nb, &names));
    CSLDestroy(names);
    gseg__tdata_free(&d);
}
END_TEST

static void expect_error(const char *folder, const char *labels, const char *field, gseg_status want,
                         const char *what1, const char *what2)
{
    uint8_t *m = NULL;
    int w, h;
    gseg_status st = burn(folder, labels, field, &m, &w, &h);
    ck_assert_msg(st == want, "%s: status %s (%s)", labels, gseg_status_str(st), gseg_last_error());
    const char *e = gseg_last_error();
    ck_assert_msg(strstr(e, what1) && (!what2 || strstr(e, what2)), "'%s' lacks '%s' / '%s'", e,
                  what1, what2 ? what2 : "");
    ck_assert_ptr_null(strchr(e, '\n'));
}

/* (d) Refusals, each one line naming the file. */
START_TEST(test_errors_name_the_file)
{
    make_scene(path("e"), "s", 128, 5, 500000, 1);
    char gpkg[1024];
    snprintf(gpkg, sizeof gpkg, "%s", path("s_4326.gpkg"));
    expect_error(path("e"), path("nope.gpkg"), NULL, GSEG_ERR_IO, "nope.gpkg", "cannot open");
    /* A shapefile without .prj: no CRS, never guessed. */
    ck_assert_int_eq(tu_system("ogr2ogr -f 'ESRI Shapefile' %s %s glaciers && rm %s",
                               path("nocrs.shp"), gpkg, path("nocrs.prj")), 0);
    expect_error(path("e"), path("nocrs.shp"), NULL, GSEG_ERR_FORMAT, "nocrs.shp", "no CRS");
    /* nor a GeoPackage's "Undefined geographic SRS" (srs_id 0) */
    ck_assert_int_eq(tu_system("ogr2ogr -f GPKG %s %s -a_srs None", path("undef.gpkg"), gpkg), 0);
    expect_error(path("e"), path("undef.gpkg"), NULL, GSEG_ERR_FORMAT, "undef.gpkg", "no CRS");
    expect_error(path("e"), gpkg, "nosuch", GSEG_ERR_ARG, "s_4326.gpkg", "no field nosuch");
    /* Class 300 on feature 1 (fid 1 lies on the scene: every outline does). */
    ck_assert_int_eq(tu_system("ogr2ogr -f GPKG %s %s -nln glaciers -sql \"SELECT *, CASE WHEN fid = 1 "
                               "THEN 300 ELSE 1 END AS cls FROM glaciers\"", path("bad.gpkg"), gpkg), 0);
    expect_error(path("e"), path("bad.gpkg"), "cls", GSEG_ERR_FORMAT, "bad.gpkg", "feature 1: cls = 300");
    uint8_t *m = NULL; /* the synthetic outlines' own `class` (1) is fine */
    int w, h;
    ck_gseg(burn(path("e"), gpkg, "class", &m, &w, &h));
    ck_assert_int_gt(count_value(m, (size_t)w * h, 1), 0);
    free(m);
    /* Negative: refused too (0 and 255 are burnt: background, not labelled). */
    ck_assert_int_eq(tu_system("ogr2ogr -f GPKG %s %s -nln glaciers -sql \"SELECT *, -1 AS cls "
                               "FROM glaciers\"", path("neg.gpkg"), gpkg), 0);
    expect_error(path("e"), path("neg.gpkg"), "cls", GSEG_ERR_FORMAT, "neg.gpkg",
                 "= -1 is not an integer in 0..255");
    /* A scene without a CRS: refused, naming the scene. */
    ck_assert_int_eq(tu_system("mkdir -p %s/nocrs && gdal_translate -q -co PROFILE=BASELINE -co TFW=YES "
                               "%s %s/nocrs/s.tif && rm -f %s/nocrs/s.tif.aux.xml", dir,
                               path("e/images/s.tif"), dir, dir), 0);
    expect_error(path("nocrs"), gpkg, NULL, GSEG_ERR_FORMAT, "nocrs/s.tif", "no CRS");
    /* Not a vector source at all. */
    expect_error(path("e"), path("e/images/s.tif"), NULL, GSEG_ERR_IO, "s.tif", "cannot open");
}
END_TEST

/* No outline on the scene: a warning naming it, an all-background mask (an
 * ice-free scene is legitimate training data). Masks found in masks/ are
 * replaced, with a warning. */
START_TEST(test_no_overlap_warns_and_masks_are_replaced)
{
    make_scene(path("w"), "s", 128, 2, 500000, 1);
    make_scene(path("far"), "f", 64, 7, 300000, 0); /* 200 km west */
    CPLPushErrorHandler(on_message);
    uint8_t *m = NULL;
    int w, h;
    ck_gseg(burn(path("far"), path("s_4326.gpkg"), NULL, &m, &w, &h));
    ck_assert_int_eq(count_value(m, (size_t)w * h, 0), (long)w * h);
    ck_assert_msg(strstr(warned, "far/images/f.tif: no outline") != NULL, "warnings: %s", warned);
    free(m);
    /* On the right scene no such warning; masks/ ignored with a warning. */
    warned[0] = '\0';
    ck_assert_int_eq(tu_system("mkdir -p %s/w/masks && gdal_translate -q -scale 0 1 0 0 %s %s/w/masks/s.tif",
                               dir, path("s_truth.tif"), dir), 0);
    gseg__tdata d;
    ck_gseg(gseg__tdata_discover(&d, path("w"), 0));
    ck_assert_ptr_nonnull(strstr(d.scenes[0].mask, "w/masks/s.tif"));
    ck_gseg(gseg__tdata_labels(&d, path("s_4326.gpkg"), NULL));
    CPLPopErrorHandler();
    ck_assert_msg(strstr(warned, "1 scene(s) have masks") && !strstr(warned, "no outline"),
                  "warnings: %s", warned);
    ck_assert_int_eq(d.scenes[0].mask_is_mem, 1);
    int nb;
    char **names = NULL;
    ck_gseg(gseg__tdata_prepare(&d, NULL, 2, &nb, &names));
    ck_assert_int_gt(d.scenes[0].class_pixels[1], 0); /* the outlines, not the all-0 mask */
    ck_assert_int_gt(d.scenes[0].nglacier, 0);
    for (int i = 0; names[i]; i++) free(names[i]);
    free(names);
    gseg__tdata_free(&d);
}
END_TEST

/* JSON number after "key": in a gseg-evaluate report. */
static double json_num(const char *file, const char *key)
{
    FILE *f = fopen(file, "r");
    ck_assert_ptr_nonnull(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    char k[128];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(buf, k);
    ck_assert_msg(p != NULL, "%s: no %s", file, key);
    return atof(p + strlen(k));
}

/* (e) gseg-evaluate (NDSI baseline) with the truth mask polygonized by
 * gdal_polygonize.py and reprojected to EPSG:4326 gives the metrics it
 * gives with the mask itself. */
START_TEST(test_evaluate_with_outlines_matches_masks)
{
    make_scene(path("ev"), "s", 160, 5, 500000, 0);
    ck_assert_int_eq(tu_system("mkdir -p %s/ev/masks && cp %s %s/ev/masks/s.tif", dir,
                               path("s_truth.tif"), dir), 0);
    ck_assert_int_eq(tu_system("gdal_polygonize.py -q %s -f GPKG %s glaciers DN && "
                               "ogr2ogr -f GPKG -t_srs EPSG:4326 -where 'DN = 1' %s %s",
                               path("s_truth.tif"), path("poly.gpkg"), path("truth_4326.gpkg"),
                               path("poly.gpkg")), 0);
    ck_assert_int_eq(tu_system("mkdir -p %s/evl/images && cp %s %s/evl/images/", dir,
                               path("ev/images/s.tif"), dir), 0);
    char *a1[] = {"gseg-evaluate", "--model", "ndsi:green=green,swir=swir1", "--data",
                  (char *)path("ev"), "-q", "--json", (char *)path("masks.json"), NULL};
    ck_assert_int_eq(gseg_evaluate_tool_main(8, a1), 0);
    char *a2[] = {"gseg-evaluate", "--model", "ndsi:green=green,swir=swir1", "--data",
                  (char *)path("evl"), "--labels", (char *)path("truth_4326.gpkg"), "-q",
                  "--json", (char *)path("labels.json"), NULL};
    ck_assert_int_eq(gseg_evaluate_tool_main(10, a2), 0);
    const char *keys[] = {"pixels", "accuracy", "mean_iou", "glacier_km2_true", "glacier_km2_pred"};
    for (int k = 0; k < 5; k++) {
        double x = json_num(path("masks.json"), keys[k]), y = json_num(path("labels.json"), keys[k]);
        fprintf(stderr, "evaluate: %s masks %.6f, outlines %.6f\n", keys[k], x, y);
        ck_assert_msg(fabs(x - y) <= 1e-3 * fmax(1, fabs(x)), "%s: %g vs %g", keys[k], x, y);
    }
    ck_assert(json_num(path("masks.json"), "glacier_km2_true") > 0.5);
    /* Usage: a field without outlines; outlines that do not open. */
    char *a3[] = {"gseg-evaluate", "--model", "ndsi:green=green,swir=swir1", "--data",
                  (char *)path("evl"), "--label-field", "cls", "-q", NULL};
    ck_assert_int_eq(gseg_evaluate_tool_main(8, a3), 2);
    char *a4[] = {"gseg-evaluate", "--model", "ndsi:green=green,swir=swir1", "--data",
                  (char *)path("evl"), "--labels", (char *)path("none.gpkg"), "-q", NULL};
    ck_assert_int_eq(gseg_evaluate_tool_main(8, a4), 1);
    /* Without --labels the folder without masks is refused. */
    char *a5[] = {"gseg-evaluate", "--model", "ndsi:green=green,swir=swir1", "--data",
                  (char *)path("evl"), "-q", NULL};
    ck_assert_int_eq(gseg_evaluate_tool_main(6, a5), 1);
}
END_TEST

Suite *labels_suite(void)
{
    Suite *s = suite_create("labels");
    TCase *tc = tcase_create("labels");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_discovery_without_masks);
    tcase_add_test(tc, test_utm_scene_4326_outlines_match_gdal);
    tcase_add_test(tc, test_rotated_grid_matches_gdal);
    tcase_add_test(tc, test_label_field_classes);
    tcase_add_test(tc, test_class_zero_carves_and_255_is_unlabelled);
    tcase_add_test(tc, test_errors_name_the_file);
    tcase_add_test(tc, test_no_overlap_warns_and_masks_are_replaced);
    tcase_add_test(tc, test_evaluate_with_outlines_matches_masks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(labels_suite()); }
