/* check_write.c — the raster writer: COG validity, metadata and
 * georeferencing round trips, formats with sidecars, the QGIS style
 * sidecar (.qml), atomicity, errors. */
#include "testutil.h"
#include "internal.h"

#include <cpl_conv.h>
#include <cpl_minixml.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#ifdef __linux__
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>
#endif

static const char *const names[] = {"background", "glacier"};
static const uint8_t rgba[][4] = {{0, 0, 0, 0}, {0, 170, 255, 255}};

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* A georeferencing source: a small scene with the given transform/CRS. */
static gseg_scene *georef_scene(const char *path, const double *gt, int epsg)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, 4, 4, 1, GDT_Byte, NULL);
    ck_assert_ptr_nonnull(ds);
    if (gt) GDALSetGeoTransform(ds, (double *)gt);
    if (epsg) {
        OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
        OSRImportFromEPSG(srs, epsg);
        GDALSetSpatialRef(ds, srs);
        OSRDestroySpatialReference(srs);
    }
    GDALClose(ds);
    const char *paths[] = {path};
    gseg_scene *s = NULL;
    ck_gseg(gseg_scene_open(paths, 1, NULL, &s));
    return s;
}

static gseg_writer_params mask_params(int w, int h, const gseg_scene *geo)
{
    gseg_writer_params p = gseg_writer_params_default();
    p.width = w;
    p.height = h;
    p.georef = geo;
    p.has_nodata = 1;
    p.nodata = 255;
    p.nclasses = 2;
    p.class_names = names;
    p.class_rgba = rgba;
    p.band_description = "glacier mask";
    return p;
}

static uint8_t pix(int x, int y) { return (x / 37 + y / 23) % 3 == 0 ? 255 : (uint8_t)((x ^ y) & 1); }

/* Writes a w x h mask in row bands of varying height. */
static void write_all(gseg_writer *wr, int w, int h)
{
    uint8_t *buf = malloc((size_t)w * 100);
    for (int y = 0, band = 0; y < h; band++) {
        int n = 1 + (band * 37) % 100;
        if (y + n > h) n = h - y;
        for (int r = 0; r < n; r++)
            for (int x = 0; x < w; x++) buf[(size_t)r * w + x] = pix(x, y + r);
        ck_gseg(gseg_writer_write_rows(wr, y, n, buf));
        y += n;
    }
    free(buf);
}

START_TEST(test_cog_round_trip)
{
    gseg_init();
    char *dir = tu_tmpdir("cog");
    char geo[4200], out[4200];
    snprintf(geo, sizeof geo, "%s/geo.tif", dir);
    snprintf(out, sizeof out, "%s/mask.tif", dir);
    const double gt[6] = {600000.0, 30.0, 0.0, 4100000.0, 0.0, -30.0};
    gseg_scene *s = georef_scene(geo, gt, 32643);
    int w = 1500, h = 1100;
    gseg_writer_params p = mask_params(w, h, s);
    const char *md[] = {"GSEG_MODEL=ndsi:green=3,swir=6", "GSEG_THRESHOLD=0.4", NULL};
    p.metadata = md;
    gseg_writer *wr = NULL;
    ck_gseg(gseg_writer_open(out, &p, &wr));
    write_all(wr, w, h);
    ck_assert(!exists(out)); /* nothing under the final name before close */
    ck_gseg(gseg_writer_close(wr, NULL, NULL));
    gseg_scene_free(s);

    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    ck_assert_ptr_nonnull(ds);
    double g2[6];
    ck_assert_int_eq(GDALGetGeoTransform(ds, g2), CE_None);
    for (int i = 0; i < 6; i++) ck_assert(g2[i] == gt[i]);
    ck_assert_str_eq(OSRGetAuthorityCode(GDALGetSpatialRef(ds), NULL), "32643");
    GDALRasterBandH b = GDALGetRasterBand(ds, 1);
    int has = 0;
    ck_assert(GDALGetRasterNoDataValue(b, &has) == 255 && has);
    ck_assert_str_eq(GDALGetDescription(b), "glacier mask");
    GDALColorTableH ct = GDALGetRasterColorTable(b);
    ck_assert_ptr_nonnull(ct);
    const GDALColorEntry *e = GDALGetColorEntry(ct, 1);
    ck_assert(e->c1 == 0 && e->c2 == 170 && e->c3 == 255);
    char **cats = GDALGetRasterCategoryNames(b);
    ck_assert(CSLCount(cats) >= 2 && strcmp(cats[0], "background") == 0 &&
              strcmp(cats[1], "glacier") == 0);
    ck_assert_str_eq(GDALGetMetadataItem(ds, "GSEG_MODEL", NULL), "ndsi:green=3,swir=6");
    ck_assert_int_ge(GDALGetOverviewCount(b), 1);
    uint8_t *back = malloc((size_t)w * h);
    ck_assert_int_eq(GDALRasterIO(b, GF_Read, 0, 0, w, h, back, w, h, GDT_Byte, 0, 0), CE_None);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) ck_assert(back[(size_t)y * w + x] == pix(x, y));
    /* overview pixels are mask values, never averages */
    GDALRasterBandH ov = GDALGetOverview(b, 0);
    int ow = GDALGetRasterBandXSize(ov), oh = GDALGetRasterBandYSize(ov);
    ck_assert_int_eq(ow, (w + 1) / 2);
    uint8_t *o = malloc((size_t)ow * oh);
    ck_assert_int_eq(GDALRasterIO(ov, GF_Read, 0, 0, ow, oh, o, ow, oh, GDT_Byte, 0, 0), CE_None);
    for (size_t i = 0; i < (size_t)ow * oh; i++) ck_assert(o[i] == 0 || o[i] == 1 || o[i] == 255);
    ck_assert(o[3 * ow + 5] == pix(2 * 5 + 1, 2 * 3 + 1));
    free(o);
    free(back);
    GDALClose(ds);
    ck_assert_int_eq(tu_system("/usr/bin/python3 -m osgeo_utils.samples.validate_cloud_optimized_geotiff "
                               "-q '%s'", out), 0);
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);
    free(dir);
}
END_TEST

START_TEST(test_formats_and_options)
{
    gseg_init();
    char *dir = tu_tmpdir("formats");
    char out[4200];
    /* GTiff with a creation option */
    snprintf(out, sizeof out, "%s/lzw.tif", dir);
    gseg_writer_params p = mask_params(300, 200, NULL);
    p.format = "GTiff";
    const char *co[] = {"COMPRESS=LZW", NULL};
    p.create_options = co;
    gseg_writer *wr = NULL;
    ck_gseg(gseg_writer_open(out, &p, &wr));
    write_all(wr, 300, 200);
    ck_gseg(gseg_writer_close(wr, NULL, NULL));
    ck_assert_int_eq(tu_system("gdalinfo '%s' | grep -q 'COMPRESSION=LZW'", out), 0);

    /* ENVI writes a .hdr sidecar: it moves with the file */
    snprintf(out, sizeof out, "%s/mask.envi", dir);
    p = mask_params(300, 200, NULL);
    p.format = "ENVI";
    ck_gseg(gseg_writer_open(out, &p, &wr));
    write_all(wr, 300, 200);
    ck_gseg(gseg_writer_close(wr, NULL, NULL));
    char hdr[4200];
    snprintf(hdr, sizeof hdr, "%s/mask.hdr", dir);
    ck_assert(exists(out) && exists(hdr));
    ck_assert_int_eq(tu_system("gdalinfo -checksum '%s' | grep -q 'Checksum='", out), 0);

    /* a multi-band Float32 PNG-less raster, and a CreateCopy-only format */
    snprintf(out, sizeof out, "%s/scores.tif", dir);
    p = gseg_writer_params_default();
    p.width = 50;
    p.height = 40;
    p.nbands = 3;
    p.type = GSEG_FLOAT32;
    p.format = "GTiff";
    ck_gseg(gseg_writer_open(out, &p, &wr));
    float *f = malloc(3 * 50 * 40 * sizeof(float));
    for (int i = 0; i < 3 * 50 * 40; i++) f[i] = (float)i * 0.5f;
    ck_gseg(gseg_writer_write_rows(wr, 0, 40, f));
    ck_gseg(gseg_writer_close(wr, NULL, NULL));
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    float v = 0;
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(ds, 3), GF_Read, 7, 5, 1, 1, &v, 1, 1,
                                  GDT_Float32, 0, 0), CE_None);
    ck_assert(v == (float)(2 * 2000 + 5 * 50 + 7) * 0.5f);
    GDALClose(ds);
    free(f);

    snprintf(out, sizeof out, "%s/mask.png", dir);
    p = mask_params(64, 48, NULL);
    p.format = "PNG";
    ck_gseg(gseg_writer_open(out, &p, &wr));
    write_all(wr, 64, 48);
    ck_gseg(gseg_writer_close(wr, NULL, NULL));
    ck_assert_int_eq(tu_system("gdalinfo '%s' | grep -q 'Driver: PNG'", out), 0);
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);
    free(dir);
}
END_TEST

START_TEST(test_atomicity)
{
    gseg_init();
    char *dir = tu_tmpdir("atomic");
    char out[4200], aux[4300];
    snprintf(out, sizeof out, "%s/m.tif", dir);
    snprintf(aux, sizeof aux, "%s.aux.xml", out);
    gseg_writer_params p = mask_params(100, 100, NULL);
    gseg_writer *wr = NULL;
    /* abort leaves the folder empty */
    ck_gseg(gseg_writer_open(out, &p, &wr));
    write_all(wr, 100, 100);
    gseg_writer_abort(wr);
    ck_assert_int_eq(tu_system("test -z \"$(ls -A '%s')\"", dir), 0);
    /* the signal-handler cleanup removes the temporary files of open writers */
    ck_gseg(gseg_writer_open(out, &p, &wr));
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 0);
    gseg_remove_temp_files();
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);
    gseg_writer_abort(wr);
    /* replacing an older output drops its stale sidecar */
    FILE *fp = fopen(out, "w");
    fputs("old", fp);
    fclose(fp);
    fp = fopen(aux, "w");
    fputs("<PAMDataset><Metadata><MDI key=\"STALE\">1</MDI></Metadata></PAMDataset>", fp);
    fclose(fp);
    p = gseg_writer_params_default();
    p.width = 10;
    p.height = 10;
    p.format = "GTiff";
    ck_gseg(gseg_writer_open(out, &p, &wr));
    uint8_t z[100] = {0};
    ck_gseg(gseg_writer_write_rows(wr, 0, 10, z));
    ck_gseg(gseg_writer_close(wr, NULL, NULL));
    ck_assert(!exists(aux));
    ck_assert_int_eq(tu_system("gdalinfo '%s' | grep -q 'Size is 10, 10'", out), 0);
    /* Temporary files of a killed writer (SIGKILL: no cleanup) go when the
     * output is next written; those of live writers and other hosts stay. */
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    *strchrnul(host, '.') = '\0';
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    const char *kept[] = {CPLSPrintf("%s/.m.gseg-tmp-%s-%ld-0.tif", dir, host, (long)getppid()),
                          CPLSPrintf("%s/.m.gseg-tmp-otherhost-%ld-0.tif", dir, (long)dead),
                          CPLSPrintf("%s/.n.gseg-tmp-%s-%ld-0.tif", dir, host, (long)dead)};
    const char *gone[] = {CPLSPrintf("%s/.m.gseg-tmp-%s-%ld-3.tif", dir, host, (long)dead),
                          CPLSPrintf("%s/.m.gseg-tmp-%s-%ld-3.tif.aux.xml", dir, host, (long)dead),
                          CPLSPrintf("%s/.m.gseg-tmp-%s-%ld-3.qml", dir, host, (long)dead)};
    char *names[6];
    for (int i = 0; i < 6; i++) {
        names[i] = CPLStrdup(i < 3 ? kept[i] : gone[i - 3]);
        fp = fopen(names[i], "w");
        ck_assert_ptr_nonnull(fp);
        fclose(fp);
    }
    ck_gseg(gseg_writer_open(out, &p, &wr));
    ck_gseg(gseg_writer_write_rows(wr, 0, 10, z));
    ck_gseg(gseg_writer_close(wr, NULL, NULL));
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(exists(names[i]) == (i < 3), "%s %s", names[i], i < 3 ? "removed" : "left");
        CPLFree(names[i]);
    }
    free(dir);
}
END_TEST

/* Outputs named without an extension, or in a folder with a dot, land
 * exactly at their name, sidecars beside them, no temporary file left. */
START_TEST(test_names_without_extension)
{
    gseg_init();
    char *dir = tu_tmpdir("noext");
    ck_assert_int_eq(tu_system("mkdir -p '%s/runs.v2'", dir), 0);
    const char *outs[] = {CPLSPrintf("%s/glacier_model", dir), CPLSPrintf("%s/runs.v2/m", dir),
                          CPLSPrintf("%s/.hidden", dir)};
    for (int i = 0; i < 3; i++) {
        char *out = CPLStrdup(outs[i]);
        ck_gseg(gseg__write_file_atomic(out, "abc", 3));
        ck_assert_int_eq(tu_system("test \"$(cat '%s')\" = abc", out), 0);
        /* a raster: GTiff with a PAM sidecar and a QGIS style */
        char *ras = CPLStrdup(CPLSPrintf("%s_mask", out));
        gseg_writer_params p = mask_params(60, 40, NULL);
        p.format = "GTiff";
        gseg_writer *wr = NULL;
        ck_gseg(gseg_writer_open(ras, &p, &wr));
        write_all(wr, 60, 40);
        ck_gseg(gseg_writer_close(wr, NULL, NULL));
        ck_assert_int_eq(tu_system("gdalinfo '%s' | grep -q 'Size is 60, 40'", ras), 0);
        CPLFree(ras);
        CPLFree(out);
    }
    ck_assert_int_eq(tu_system("find '%s' -name '*gseg-tmp*' | grep -q .", dir), 1);
    /* the signal-handler cleanup finds them too */
    gseg_writer_params p = mask_params(60, 40, NULL);
    gseg_writer *wr = NULL;
    ck_gseg(gseg_writer_open(CPLSPrintf("%s/killed", dir), &p, &wr));
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 0);
    gseg_remove_temp_files();
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);
    gseg_writer_abort(wr);
    free(dir);
}
END_TEST

START_TEST(test_georef_carried)
{
    gseg_init();
    char *dir = tu_tmpdir("georef");
    char geo[4200], out[4200];
    const double sheared[6] = {1234.5, 9.5, 1.25, 5678.25, -0.75, -10.5};
    const double south_up[6] = {500000.0, 30.0, 0.0, 4000000.0, 0.0, 30.0};
    const double *gts[] = {sheared, south_up};
    for (int k = 0; k < 2; k++) {
        snprintf(geo, sizeof geo, "%s/geo%d.tif", dir, k);
        snprintf(out, sizeof out, "%s/out%d.tif", dir, k);
        gseg_scene *s = georef_scene(geo, gts[k], 32633);
        gseg_writer_params p = mask_params(20, 10, s);
        gseg_writer *wr = NULL;
        ck_gseg(gseg_writer_open(out, &p, &wr));
        write_all(wr, 20, 10);
        ck_gseg(gseg_writer_close(wr, NULL, NULL));
        gseg_scene_free(s);
        GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
        double g[6];
        ck_assert_int_eq(GDALGetGeoTransform(ds, g), CE_None);
        for (int i = 0; i < 6; i++) ck_assert_msg(g[i] == gts[k][i], "case %d term %d", k, i);
        GDALClose(ds);
    }
    /* GCP-only georeferencing */
    snprintf(geo, sizeof geo, "%s/gcp.tif", dir);
    snprintf(out, sizeof out, "%s/gcp_out.tif", dir);
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), geo, 4, 4, 1, GDT_Byte, NULL);
    GDAL_GCP gcps[3];
    GDALInitGCPs(3, gcps);
    double xy[3][4] = {{0, 0, 10.0, 50.0}, {4, 0, 10.1, 50.0}, {0, 4, 10.0, 49.9}};
    for (int i = 0; i < 3; i++) {
        gcps[i].dfGCPPixel = xy[i][0];
        gcps[i].dfGCPLine = xy[i][1];
        gcps[i].dfGCPX = xy[i][2];
        gcps[i].dfGCPY = xy[i][3];
    }
    OGRSpatialReferenceH wgs = OSRNewSpatialReference(NULL);
    OSRImportFromEPSG(wgs, 4326);
    ck_assert_int_eq(GDALSetGCPs2(ds, 3, gcps, wgs), CE_None);
    GDALDeinitGCPs(3, gcps);
    OSRDestroySpatialReference(wgs);
    GDALClose(ds);
    const char *paths[] = {geo};
    gseg_scene *s = NULL;
    ck_gseg(gseg_scene_open(paths, 1, NULL, &s));
    gseg_writer_params p = mask_params(4, 4, s);
    gseg_writer *wr = NULL;
    ck_gseg(gseg_writer_open(out, &p, &wr));
    write_all(wr, 4, 4);
    ck_gseg(gseg_writer_close(wr, NULL, NULL));
    gseg_scene_free(s);
    ds = GDALOpen(out, GA_ReadOnly);
    ck_assert_int_eq(GDALGetGCPCount(ds), 3);
    ck_assert(GDALGetGCPs(ds)[1].dfGCPX == 10.1);
    ck_assert_str_eq(OSRGetAuthorityCode(GDALGetGCPSpatialRef(ds), NULL), "4326");
    GDALClose(ds);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The QGIS style sidecar                                                   */

/* The whole file, NUL-terminated; NULL if it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    fclose(f);
    s[got] = '\0';
    return s;
}

/* The paletteEntry of value v, or NULL. */
static CPLXMLNode *palette_entry(CPLXMLNode *palette, int v)
{
    for (CPLXMLNode *e = palette ? palette->psChild : NULL; e; e = e->psNext)
        if (e->eType == CXT_Element && strcmp(e->pszValue, "paletteEntry") == 0 &&
            atoi(CPLGetXMLValue(e, "value", "-1")) == v)
            return e;
    return NULL;
}

/* Parses path as a QGIS paletted raster style and checks the classes of
 * mask_params (background transparent, glacier 0,170,255) and nodata 255. */
static void check_qml(const char *path, const char *glacier_label)
{
    char *text = slurp(path);
    ck_assert_msg(text != NULL, "%s: missing", path);
    CPLErrorReset();
    CPLXMLNode *root = CPLParseXMLString(text);
    ck_assert_msg(root != NULL, "%s: not valid XML: %s", path, CPLGetLastErrorMsg());
    CPLXMLNode *qgis = CPLSearchXMLNode(root, "=qgis");
    ck_assert_msg(qgis != NULL, "%s: no <qgis> root", path);
    CPLXMLNode *rr = CPLGetXMLNode(qgis, "pipe.rasterrenderer");
    ck_assert_ptr_nonnull(rr);
    ck_assert_str_eq(CPLGetXMLValue(rr, "type", ""), "paletted");
    ck_assert_str_eq(CPLGetXMLValue(rr, "band", ""), "1");
    CPLXMLNode *palette = CPLGetXMLNode(rr, "colorPalette");
    ck_assert_ptr_nonnull(palette);
    CPLXMLNode *bg = palette_entry(palette, 0), *gl = palette_entry(palette, 1);
    ck_assert_ptr_nonnull(bg);
    ck_assert_ptr_nonnull(gl);
    ck_assert_ptr_null(palette_entry(palette, 2));
    ck_assert_str_eq(CPLGetXMLValue(bg, "alpha", ""), "0");
    ck_assert_str_eq(CPLGetXMLValue(bg, "label", ""), "background");
    ck_assert_str_eq(CPLGetXMLValue(gl, "color", ""), "#00aaff");
    ck_assert_str_eq(CPLGetXMLValue(gl, "alpha", ""), "255");
    ck_assert_str_eq(CPLGetXMLValue(gl, "label", ""), glacier_label);
    CPLXMLNode *nd = CPLGetXMLNode(rr, "rasterTransparency.singleValuePixelList.pixelListEntry");
    ck_assert_ptr_nonnull(nd);
    ck_assert_str_eq(CPLGetXMLValue(nd, "min", ""), "255");
    ck_assert_str_eq(CPLGetXMLValue(nd, "max", ""), "255");
    ck_assert_str_eq(CPLGetXMLValue(nd, "percentTransparent", ""), "100");
    CPLDestroyXMLNode(root);
    free(text);
}

typedef struct close_watch {
    const char *final_path, *final_qml;
    int calls, seen_early;
} close_watch;

/* Progress of gseg_writer_close: nothing under the final names yet. */
static int watch_progress(double complete, const char *msg, void *user)
{
    (void)complete;
    (void)msg;
    close_watch *c = user;
    c->calls++;
    if (exists(c->final_path) || exists(c->final_qml)) c->seen_early = 1;
    return 1;
}

static int cancel_progress(double complete, const char *msg, void *user)
{
    (void)complete;
    (void)msg;
    (void)user;
    return 0;
}

START_TEST(test_qml_sidecar)
{
    gseg_init();
    char *dir = tu_tmpdir("qml");
    char out[4200], qml[4200];
    snprintf(out, sizeof out, "%s/m.tif", dir);
    snprintf(qml, sizeof qml, "%s/m.qml", dir);
    gseg_writer_params p = mask_params(300, 200, NULL);
    gseg_writer *wr = NULL;

    /* Aborted or cancelled writes leave neither the raster nor its style. */
    ck_gseg(gseg_writer_open(out, &p, &wr));
    write_all(wr, 300, 200);
    gseg_writer_abort(wr);
    ck_assert_int_eq(tu_system("test -z \"$(ls -A '%s')\"", dir), 0);
    ck_gseg(gseg_writer_open(out, &p, &wr));
    write_all(wr, 300, 200);
    ck_assert_int_eq(gseg_writer_close(wr, cancel_progress, NULL), GSEG_ERR_CANCELLED);
    ck_assert_int_eq(tu_system("test -z \"$(ls -A '%s')\"", dir), 0);

    /* COG: the style appears with the raster, not before. */
    ck_gseg(gseg_writer_open(out, &p, &wr));
    write_all(wr, 300, 200);
    close_watch cw = {out, qml, 0, 0};
#ifdef __linux__
    int ino = inotify_init1(IN_NONBLOCK);
    ck_assert_int_ge(ino, 0);
    ck_assert_int_ge(inotify_add_watch(ino, dir, IN_MOVED_TO), 0);
#endif
    ck_gseg(gseg_writer_close(wr, watch_progress, &cw));
    ck_assert_int_ge(cw.calls, 1);
    ck_assert_msg(!cw.seen_early, "final names appeared before the COG was complete");
    ck_assert(exists(out) && exists(qml));
#ifdef __linux__
    /* Renamed into place: the style (a sidecar) before the raster. */
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t len = read(ino, buf, sizeof buf);
    ck_assert_int_gt(len, 0);
    int order = 0, qml_at = 0, tif_at = 0;
    for (char *e = buf; e < buf + len;) {
        struct inotify_event *ev = (struct inotify_event *)e;
        if (ev->len && strcmp(ev->name, "m.qml") == 0) qml_at = ++order;
        else if (ev->len && strcmp(ev->name, "m.tif") == 0) tif_at = ++order;
        else if (ev->len) ++order;
        e += sizeof *ev + ev->len;
    }
    close(ino);
    ck_assert_msg(qml_at > 0 && tif_at > 0 && qml_at < tif_at,
                  "rename order: m.qml #%d, m.tif #%d", qml_at, tif_at);
#endif
    check_qml(qml, "glacier");
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);
    /* QGIS reads the mask's own colour table too: the style agrees with it. */
    GDALDatasetH ds = GDALOpen(out, GA_ReadOnly);
    const GDALColorEntry *ce = GDALGetColorEntry(GDALGetRasterColorTable(GDALGetRasterBand(ds, 1)), 1);
    ck_assert(ce->c1 == 0 && ce->c2 == 170 && ce->c3 == 255);
    GDALClose(ds);

    /* Every format: PNG (CreateCopy), ENVI (its own .hdr sidecar), GTiff. */
    const char *fmts[][2] = {{"PNG", "m2.png"}, {"ENVI", "m3.envi"}, {"GTiff", "m4.tif"}};
    for (int i = 0; i < 3; i++) {
        snprintf(out, sizeof out, "%s/%s", dir, fmts[i][1]);
        snprintf(qml, sizeof qml, "%s/%.2s.qml", dir, fmts[i][1]);
        gseg_writer_params q = mask_params(64, 48, NULL);
        q.format = fmts[i][0];
        ck_gseg(gseg_writer_open(out, &q, &wr));
        write_all(wr, 64, 48);
        ck_gseg(gseg_writer_close(wr, NULL, NULL));
        ck_assert_msg(exists(out) && exists(qml), "%s: %s missing", fmts[i][0], qml);
        check_qml(qml, "glacier");
    }

    /* Class names are escaped; without classes (scores) no style. */
    snprintf(out, sizeof out, "%s/esc.tif", dir);
    snprintf(qml, sizeof qml, "%s/esc.qml", dir);
    const char *odd[] = {"background", "ice & \"snow\" <firn>"};
    p = mask_params(20, 10, NULL);
    p.class_names = odd;
    ck_gseg(gseg_writer_open(out, &p, &wr));
    write_all(wr, 20, 10);
    ck_gseg(gseg_writer_close(wr, NULL, NULL));
    check_qml(qml, "ice & \"snow\" <firn>");

    /* Ten classes without colours: the default table, whose colours repeat
     * from class 8 on but never as the background's transparency. */
    snprintf(out, sizeof out, "%s/many.tif", dir);
    snprintf(qml, sizeof qml, "%s/many.qml", dir);
    p = mask_params(20, 10, NULL);
    p.nclasses = 10;
    p.class_names = NULL;
    p.class_rgba = NULL;
    ck_gseg(gseg_writer_open(out, &p, &wr));
    write_all(wr, 20, 10);
    ck_gseg(gseg_writer_close(wr, NULL, NULL));
    {
        char *text = slurp(qml);
        ck_assert_ptr_nonnull(text);
        CPLXMLNode *root = CPLParseXMLString(text);
        CPLXMLNode *pal = CPLGetXMLNode(CPLSearchXMLNode(root, "=qgis"),
                                        "pipe.rasterrenderer.colorPalette");
        ck_assert_ptr_nonnull(pal);
        ck_assert_str_eq(CPLGetXMLValue(palette_entry(pal, 0), "alpha", ""), "0");
        for (int k = 1; k < 10; k++) {
            CPLXMLNode *e = palette_entry(pal, k);
            ck_assert_msg(e != NULL, "class %d: no palette entry", k);
            ck_assert_msg(strcmp(CPLGetXMLValue(e, "alpha", ""), "255") == 0,
                          "class %d is transparent", k);
        }
        ck_assert_str_eq(CPLGetXMLValue(palette_entry(pal, 1), "color", ""), "#00aaff");
        ck_assert_str_eq(CPLGetXMLValue(palette_entry(pal, 8), "color", ""), "#00aaff");
        ck_assert_str_ne(CPLGetXMLValue(palette_entry(pal, 2), "color", ""), "#00aaff");
        CPLDestroyXMLNode(root);
        free(text);
    }
    snprintf(out, sizeof out, "%s/scores.tif", dir);
    snprintf(qml, sizeof qml, "%s/scores.qml", dir);
    p = gseg_writer_params_default();
    p.width = 20;
    p.height = 10;
    p.type = GSEG_FLOAT32;
    ck_gseg(gseg_writer_open(out, &p, &wr));
    float f[200] = {0};
    ck_gseg(gseg_writer_write_rows(wr, 0, 10, f));
    ck_gseg(gseg_writer_close(wr, NULL, NULL));
    ck_assert(exists(out) && !exists(qml));

    /* The signal-handler cleanup removes a temporary style too. */
    snprintf(out, sizeof out, "%s/sig.tif", dir);
    p = mask_params(20, 10, NULL);
    p.format = "GTiff";
    ck_gseg(gseg_writer_open(out, &p, &wr));
    ck_assert_int_eq(tu_system("cd '%s' && for f in .sig.gseg-tmp-*.tif; do "
                               ": > \"${f%%.tif}.qml\"; done && ls -a | grep -q 'gseg-tmp.*qml'",
                               dir), 0);
    gseg_remove_temp_files();
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);
    gseg_writer_abort(wr);
    free(dir);
}
END_TEST

START_TEST(test_errors)
{
    gseg_init();
    char *dir = tu_tmpdir("werr");
    char out[4200];
    gseg_writer_params p = mask_params(10, 10, NULL);
    gseg_writer *wr = NULL;
    p.format = "NoSuchFormat";
    snprintf(out, sizeof out, "%s/x.tif", dir);
    ck_assert_int_eq(gseg_writer_open(out, &p, &wr), GSEG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "NoSuchFormat"));
    ck_assert_ptr_null(wr);
    p.format = NULL;
    snprintf(out, sizeof out, "%s/missing/dir/x.tif", dir);
    ck_assert_int_eq(gseg_writer_open(out, &p, &wr), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "missing/dir/x.tif"));
    snprintf(out, sizeof out, "%s/x.tif", dir);
    ck_gseg(gseg_writer_open(out, &p, &wr));
    uint8_t row[10] = {0};
    ck_assert_int_eq(gseg_writer_write_rows(wr, 10, 1, row), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg_writer_write_rows(wr, -1, 1, row), GSEG_ERR_ARG);
    gseg_writer_abort(wr);
    gseg_writer_abort(NULL);
    ck_assert_int_eq(tu_system("test -z \"$(ls -A '%s')\"", dir), 0);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("write");
    TCase *tc = tcase_create("writer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cog_round_trip);
    tcase_add_test(tc, test_formats_and_options);
    tcase_add_test(tc, test_atomicity);
    tcase_add_test(tc, test_names_without_extension);
    tcase_add_test(tc, test_georef_carried);
    tcase_add_test(tc, test_qml_sidecar);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
