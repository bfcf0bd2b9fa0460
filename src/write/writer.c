/*
 * writer.c — row bands in, a finished raster out, atomically.
 *
 * Formats that can Create() are written directly under a temporary name.
 * Formats that only CreateCopy() (COG, PNG, JPEG, ...) are streamed into a
 * temporary tiled GeoTIFF first and copied at close: the COG driver needs
 * the whole image to lay out overviews and tiles. Either way the result is
 * renamed onto the final path only when complete (atomic.c).
 *
 * Class masks also get a QGIS style, <stem>.qml beside the raster (QGIS
 * loads it as the layer's default style): a paletted renderer with each
 * class in its colour and background and nodata transparent, which a
 * GeoTIFF colour table cannot say (it has no alpha). It is written under the
 * temporary stem and renamed with the raster, before it.
 *
 * For COG the overviews are made here, while rows stream in, by nearest
 * neighbour (a class mask must not be averaged): the staging GeoTIFF gets
 * empty overview levels and each finished row that an overview samples is
 * written into it. The COG driver then copies the existing overviews instead
 * of regenerating them, which would read the whole image again with buffers
 * that grow with the scene. A user asking for another RESAMPLING gets GDAL's.
 */
#include "internal.h"
#include "json.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gseg_writer {
    char *path;        /* final path */
    char *tmp;         /* temporary final-format path */
    char *stage;       /* temporary GeoTIFF for CreateCopy-only formats */
    GDALDriverH drv;
    GDALDatasetH ds;   /* the dataset rows go into (tmp or stage) */
    char **co;         /* creation options for the final format */
    int width, height, nbands;
    GDALDataType type;
    int failed;
    int finished;      /* gseg_writer_finish succeeded: tmp is complete */
    char *qml;            /* QGIS style to write beside the raster, or NULL */
    int nlevels;          /* overviews built while streaming */
    int factors[32];
    void *ovrow;          /* one subsampled row of all bands */
};

gseg_writer_params gseg_writer_params_default(void)
{
    gseg_writer_params p;
    memset(&p, 0, sizeof p);
    p.nbands = 1;
    p.type = GSEG_BYTE;
    return p;
}

static void writer_free(gseg_writer *w)
{
    if (!w) return;
    if (w->ds) GDALClose(w->ds);
    gseg__discard(w->stage);
    gseg__discard(w->tmp);
    free(w->path);
    free(w->tmp);
    free(w->stage);
    CSLDestroy(w->co);
    free(w->ovrow);
    free(w->qml);
    free(w);
}

void gseg_writer_abort(gseg_writer *w) { writer_free(w); }

/* Creation options for the final format: the user's, plus defaults that suit
 * masks where the user said nothing. */
static char **final_options(GDALDriverH drv, const gseg_writer_params *p)
{
    char **co = NULL;
    for (const char *const *o = p->create_options; o && *o; o++) co = CSLAddString(co, *o);
    const char *name = GDALGetDriverShortName(drv);
    if (strcmp(name, "COG") == 0) {
        if (!CSLFetchNameValue(co, "RESAMPLING"))
            co = CSLSetNameValue(co, "RESAMPLING", p->type == GSEG_BYTE ? "NEAREST" : "AVERAGE");
        if (!CSLFetchNameValue(co, "COMPRESS")) co = CSLSetNameValue(co, "COMPRESS", "DEFLATE");
        if (!CSLFetchNameValue(co, "NUM_THREADS"))
            co = CSLSetNameValue(co, "NUM_THREADS", "ALL_CPUS");
    } else if (strcmp(name, "GTiff") == 0) {
        if (!CSLFetchNameValue(co, "TILED")) co = CSLSetNameValue(co, "TILED", "YES");
        if (!CSLFetchNameValue(co, "COMPRESS")) co = CSLSetNameValue(co, "COMPRESS", "DEFLATE");
        if (!CSLFetchNameValue(co, "BIGTIFF")) co = CSLSetNameValue(co, "BIGTIFF", "IF_SAFER");
    }
    return co;
}

static gseg_status describe(gseg_writer *w, const gseg_writer_params *p)
{
    GDALDatasetH ds = w->ds;
    if (p->georef) {
        gseg_status st = gseg__scene_copy_georef(p->georef, ds);
        if (st != GSEG_OK) return gseg__err(st, "%s: %s", w->path, gseg_last_error());
    }
    for (const char *const *m = p->metadata; m && *m; m++) {
        char *key = NULL;
        const char *val = CPLParseNameValue(*m, &key);
        if (key && val) GDALSetMetadataItem(ds, key, val, NULL);
        CPLFree(key);
    }
    for (int b = 1; b <= w->nbands; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b);
        if (p->has_nodata) GDALSetRasterNoDataValue(band, p->nodata);
        if (p->band_names && p->band_names[b - 1])
            GDALSetDescription(band, p->band_names[b - 1]);
        else if (p->band_description)
            GDALSetDescription(band, p->band_description);
        if (p->type == GSEG_BYTE && p->nclasses > 0) {
            GDALColorTableH ct = GDALCreateColorTable(GPI_RGB);
            for (int i = 0; i < 256; i++) {
                GDALColorEntry e = {0, 0, 0, 0};
                if (i < p->nclasses && p->class_rgba) {
                    e.c1 = p->class_rgba[i][0];
                    e.c2 = p->class_rgba[i][1];
                    e.c3 = p->class_rgba[i][2];
                    e.c4 = p->class_rgba[i][3];
                }
                GDALSetColorEntry(ct, i, &e);
            }
            GDALSetRasterColorTable(band, ct);
            GDALSetRasterColorInterpretation(band, GCI_PaletteIndex);
            GDALDestroyColorTable(ct);
            if (p->class_names) {
                char **names = NULL;
                for (int i = 0; i < p->nclasses; i++)
                    names = CSLAddString(names, p->class_names[i] ? p->class_names[i] : "");
                GDALSetRasterCategoryNames(band, names);
                CSLDestroy(names);
            }
        }
    }
    return GSEG_OK;
}

/* Empty overview levels in the staging file, as many as the COG driver's
 * OVERVIEWS=AUTO would make: halve until the image fits in one block. */
static gseg_status plan_overviews(gseg_writer *w)
{
    if (strcmp(GDALGetDriverShortName(w->drv), "COG") != 0) return GSEG_OK;
    const char *ov = CSLFetchNameValue(w->co, "OVERVIEWS");
    const char *rs = CSLFetchNameValue(w->co, "RESAMPLING");
    if ((ov && !EQUAL(ov, "AUTO")) || (rs && !EQUAL(rs, "NEAREST"))) return GSEG_OK;
    const char *bsz = CSLFetchNameValue(w->co, "BLOCKSIZE");
    int bs = bsz ? atoi(bsz) : 512;
    if (bs < 16) bs = 512;
    for (int f = 2; w->nlevels < 32; f *= 2) {
        int pw = (w->width + f / 2 - 1) / (f / 2), ph = (w->height + f / 2 - 1) / (f / 2);
        if (pw <= bs && ph <= bs) break;
        w->factors[w->nlevels++] = f;
    }
    if (w->nlevels == 0) return GSEG_OK;
    CPLErrorReset();
    if (GDALBuildOverviews(w->ds, "NONE", w->nlevels, w->factors, 0, NULL, NULL, NULL) != CE_None)
        return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot create overviews", w->path);
    w->ovrow = gseg__malloc((size_t)(w->width / 2 + 1) * w->nbands,
                            (size_t)GDALGetDataTypeSizeBytes(w->type));
    return w->ovrow ? GSEG_OK : GSEG_ERR_NOMEM;
}

/* Writes the overview rows sampled from rows [y, y+nrows) of data. Overview
 * pixel (i, j) of factor f is source pixel (f*i + f/2, f*j + f/2), clamped. */
static gseg_status write_overview_rows(gseg_writer *w, int y, int nrows, const void *data)
{
    size_t px = (size_t)GDALGetDataTypeSizeBytes(w->type);
    size_t plane = (size_t)w->width * nrows;
    for (int l = 0; l < w->nlevels; l++) {
        int f = w->factors[l];
        int ow = (w->width + f - 1) / f, oh = (w->height + f - 1) / f;
        int j0 = y <= f / 2 ? 0 : (y - f / 2 + f - 1) / f;
        for (int j = j0; j < oh; j++) {
            int sy = f * j + f / 2;
            if (sy >= w->height) sy = w->height - 1;
            if (sy >= y + nrows) break;
            for (int b = 0; b < w->nbands; b++) {
                const char *row = (const char *)data + (b * plane + (size_t)(sy - y) * w->width) * px;
                char *dst = (char *)w->ovrow + (size_t)b * ow * px;
                for (int i = 0; i < ow; i++) {
                    int sx = f * i + f / 2;
                    if (sx >= w->width) sx = w->width - 1;
                    memcpy(dst + (size_t)i * px, row + (size_t)sx * px, px);
                }
                GDALRasterBandH ob = GDALGetOverview(GDALGetRasterBand(w->ds, b + 1), l);
                CPLErrorReset();
                if (!ob || GDALRasterIO(ob, GF_Write, 0, j, ow, 1, dst, ow, 1, w->type, 0, 0) !=
                               CE_None)
                    return gseg__gdal_err(GSEG_ERR_IO, "%s: overview write failed", w->path);
            }
        }
    }
    return GSEG_OK;
}

/* ------------------------------------------------------------------------ */
/* QGIS style                                                               */

/* The QGIS 3 style of a class mask: a paletted renderer on band 1, class 0
 * and the nodata value fully transparent, nearest-neighbour resampling. */
static char *build_qml(const gseg_writer_params *p)
{
    gseg__sbuf b;
    gseg__sbuf_init(&b);
    gseg__sbuf_appendf(&b, "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
                  "<!-- gseg class mask style: QGIS loads it as the default style of the raster "
                  "beside it. -->\n"
                  "<qgis version=\"3.22.0\" styleCategories=\"AllStyleCategories\" "
                  "hasScaleBasedVisibilityFlag=\"0\" minScale=\"1e+08\" maxScale=\"0\">\n"
                  "  <pipe>\n"
                  "    <provider>\n"
                  "      <resampling enabled=\"false\" maxOversampling=\"2\" "
                  "zoomedInResamplingMethod=\"nearestNeighbour\" "
                  "zoomedOutResamplingMethod=\"nearestNeighbour\"/>\n"
                  "    </provider>\n"
                  "    <rasterrenderer type=\"paletted\" band=\"1\" opacity=\"1\" "
                  "alphaBand=\"-1\" nodataColor=\"\">\n");
    int nd = -1;
    if (p->has_nodata && p->nodata >= 0 && p->nodata <= 255 && p->nodata == floor(p->nodata))
        nd = (int)p->nodata;
    if (nd >= 0)
        gseg__sbuf_appendf(&b, "      <rasterTransparency>\n"
                      "        <singleValuePixelList>\n"
                      "          <pixelListEntry min=\"%d\" max=\"%d\" percentTransparent=\"100\"/>\n"
                      "        </singleValuePixelList>\n"
                      "      </rasterTransparency>\n",
                  nd, nd);
    else
        gseg__sbuf_appendf(&b, "      <rasterTransparency/>\n");
    gseg__sbuf_appendf(&b, "      <minMaxOrigin>\n"
                  "        <limits>None</limits>\n"
                  "        <extent>WholeRaster</extent>\n"
                  "        <statAccuracy>Estimated</statAccuracy>\n"
                  "        <cumulativeCutLower>0.02</cumulativeCutLower>\n"
                  "        <cumulativeCutUpper>0.98</cumulativeCutUpper>\n"
                  "        <stdDevFactor>2</stdDevFactor>\n"
                  "      </minMaxOrigin>\n"
                  "      <colorPalette>\n");
    int n = p->nclasses < 256 ? p->nclasses : 256;
    for (int i = 0; i < n; i++) {
        if (i == nd) continue; /* nodata is never a class */
        const uint8_t *c = p->class_rgba ? p->class_rgba[i] : gseg__class_default_rgba(i);
        const char *name = p->class_names && p->class_names[i] ? p->class_names[i] : NULL;
        char *label = CPLEscapeString(name ? name : CPLSPrintf("class %d", i), -1, CPLES_XML);
        gseg__sbuf_appendf(&b,
                  "        <paletteEntry value=\"%d\" color=\"#%02x%02x%02x\" alpha=\"%d\" "
                  "label=\"%s\"/>\n",
                  i, c[0], c[1], c[2], i == 0 ? 0 : c[3], label);
        CPLFree(label);
    }
    gseg__sbuf_appendf(&b, "      </colorPalette>\n"
                  "    </rasterrenderer>\n"
                  "    <brightnesscontrast brightness=\"0\" contrast=\"0\" gamma=\"1\"/>\n"
                  "    <huesaturation saturation=\"0\" grayscaleMode=\"0\" colorizeOn=\"0\" "
                  "colorizeRed=\"255\" colorizeGreen=\"128\" colorizeBlue=\"128\" "
                  "colorizeStrength=\"100\" invertColors=\"0\"/>\n"
                  "    <rasterresampler maxOversampling=\"2\"/>\n"
                  "    <resamplingStage>resamplingFilter</resamplingStage>\n"
                  "  </pipe>\n"
                  "  <blendMode>0</blendMode>\n"
                  "</qgis>\n");
    if (b.st != GSEG_OK) {
        gseg__sbuf_free(&b);
        gseg__err(GSEG_ERR_NOMEM, "out of memory for the QGIS style");
        return NULL;
    }
    return gseg__sbuf_take(&b);
}

/* Writes the style as <temporary stem>.qml: gseg__commit renames it to
 * <final stem>.qml before the raster, gseg__discard removes it with it. */
static gseg_status write_qml(const gseg_writer *w)
{
    /* The stem as atomic.c cuts it: up to the last '.' of the file name. */
    const char *slash = strrchr(w->tmp, '/');
    const char *base = slash ? slash + 1 : w->tmp;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) dot = base + strlen(base);
    char *path = CPLStrdup(CPLSPrintf("%.*s.qml", (int)(dot - w->tmp), w->tmp));
    size_t n = strlen(w->qml);
    gseg_status st = GSEG_OK;
    VSILFILE *f = VSIFOpenL(path, "wb");
    if (!f) {
        st = gseg__err(GSEG_ERR_IO, "%s: cannot create its QGIS style %s", w->path,
                       CPLGetFilename(path));
    } else {
        int ok = VSIFWriteL(w->qml, 1, n, f) == n;
        ok = VSIFCloseL(f) == 0 && ok;
        if (!ok)
            st = gseg__err(GSEG_ERR_IO, "%s: cannot write its QGIS style (disk full?)", w->path);
    }
    if (st != GSEG_OK) VSIUnlink(path);
    CPLFree(path);
    return st;
}

/* The format or creation option that would compress a class mask with
 * loss (as the user would name it), NULL if none. */
static const char *lossy_setting(const char *format, const char *const *co)
{
    const char *comp = CSLFetchNameValue((char **)co, "COMPRESS");
    int lossless = CPLFetchBool((CSLConstList)co, "LOSSLESS", FALSE) || CPLFetchBool((CSLConstList)co, "WEBP_LOSSLESS", FALSE);
    if (EQUAL(format, "JPEG")) return "-of JPEG";
    if (EQUAL(format, "WEBP") && !lossless) return "-of WEBP (without -co LOSSLESS=YES)";
    if (EQUAL(format, "JP2OpenJPEG") && !CPLFetchBool((CSLConstList)co, "REVERSIBLE", FALSE))
        return "-of JP2OpenJPEG (without -co REVERSIBLE=YES)";
    if (comp && EQUAL(comp, "JPEG")) return "-co COMPRESS=JPEG";
    if (comp && EQUAL(comp, "WEBP") && !lossless) return "-co COMPRESS=WEBP";
    if (comp && EQUAL(comp, "JXL") && !CPLFetchBool((CSLConstList)co, "JXL_LOSSLESS", TRUE))
        return "-co COMPRESS=JXL with JXL_LOSSLESS=NO";
    return NULL;
}

gseg_status gseg__writer_check(const char *format, const char *const *co, int mask)
{
    GDALDriverH drv = GDALGetDriverByName(format);
    if (!drv || !GDALGetMetadataItem(drv, GDAL_DCAP_RASTER, NULL))
        return gseg__err(GSEG_ERR_ARG, "unknown raster format '%s' (gdalinfo --formats lists them)",
                         format);
    if (!GDALGetMetadataItem(drv, GDAL_DCAP_CREATE, NULL) &&
        !GDALGetMetadataItem(drv, GDAL_DCAP_CREATECOPY, NULL))
        return gseg__err(GSEG_ERR_ARG, "format '%s' cannot be written by GDAL", format);
    if (EQUAL(format, "MEM") || EQUAL(format, "VRT"))
        return gseg__err(GSEG_ERR_ARG, "format '%s' writes no raster file; use COG or GTiff",
                         format);
    const char *lossy = mask ? lossy_setting(format, co) : NULL;
    if (lossy)
        return gseg__err(GSEG_ERR_ARG,
                         "%s is lossy and would change the mask's class values; use COG, GTiff "
                         "or PNG, or a lossless setting",
                         lossy);
    return GSEG_OK;
}

gseg_status gseg_writer_open(const char *path, const gseg_writer_params *p, gseg_writer **out)
{
    if (!out) return gseg__err(GSEG_ERR_ARG, "writer: NULL output");
    *out = NULL;
    if (!path || !*path) return gseg__err(GSEG_ERR_ARG, "no output path given");
    if (!p || p->width < 1 || p->height < 1 || p->nbands < 1 ||
        (p->type != GSEG_BYTE && p->type != GSEG_FLOAT32))
        return gseg__err(GSEG_ERR_ARG, "%s: bad raster writer parameters", path);
    const char *format = p->format && *p->format ? p->format : "COG";
    gseg_status cst = gseg__writer_check(format, p->create_options, p->type == GSEG_BYTE);
    if (cst != GSEG_OK) return cst;
    GDALDriverH drv = GDALGetDriverByName(format);
    int can_create = GDALGetMetadataItem(drv, GDAL_DCAP_CREATE, NULL) != NULL;

    gseg_writer *w = gseg__calloc(1, sizeof *w);
    if (!w) return GSEG_ERR_NOMEM;
    w->drv = drv;
    w->width = p->width;
    w->height = p->height;
    w->nbands = p->nbands;
    w->type = p->type == GSEG_BYTE ? GDT_Byte : GDT_Float32;
    w->path = gseg__strdup(path);
    w->tmp = gseg__tmp_path(path);
    w->co = final_options(drv, p);
    gseg_status st = w->path && w->tmp ? GSEG_OK : GSEG_ERR_NOMEM;
    if (st == GSEG_OK) {
        CPLErrorReset();
        if (can_create) {
            w->ds = GDALCreate(drv, w->tmp, w->width, w->height, w->nbands, w->type, w->co);
        } else {
            w->stage = gseg__tmp_path(path);
            const char *sco[] = {"TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512",
                                 "COMPRESS=ZSTD", "ZSTD_LEVEL=1", "BIGTIFF=IF_SAFER",
                                 "SPARSE_OK=FALSE", NULL};
            if (w->stage)
                w->ds = GDALCreate(GDALGetDriverByName("GTiff"), w->stage, w->width, w->height,
                                   w->nbands, w->type, (char **)sco);
        }
        if (!w->ds) st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot create", path);
    }
    if (st == GSEG_OK) st = describe(w, p);
    if (st == GSEG_OK && w->stage) st = plan_overviews(w);
    if (st == GSEG_OK && p->type == GSEG_BYTE && p->nclasses > 0 && !(w->qml = build_qml(p)))
        st = GSEG_ERR_NOMEM;
    if (st != GSEG_OK) {
        writer_free(w);
        return st;
    }
    *out = w;
    return GSEG_OK;
}

gseg_status gseg_writer_write_rows(gseg_writer *w, int y, int nrows, const void *data)
{
    if (!w || !data || y < 0 || nrows < 1 || y + nrows > w->height)
        return gseg__err(GSEG_ERR_ARG, "writer: rows %d..%d out of range", y, y + nrows);
    CPLErrorReset();
    if (GDALDatasetRasterIO(w->ds, GF_Write, 0, y, w->width, nrows, (void *)data, w->width, nrows,
                            w->type, w->nbands, NULL, 0, 0, 0) != CE_None) {
        w->failed = 1;
        return gseg__gdal_err(GSEG_ERR_IO, "%s: write failed", w->path);
    }
    if (w->nlevels) {
        gseg_status st = write_overview_rows(w, y, nrows, data);
        if (st != GSEG_OK) w->failed = 1;
        return st;
    }
    return GSEG_OK;
}

/* Closes ds and reports whether GDAL signalled a failure meanwhile (a full
 * disk shows up here, when the last blocks are flushed). */
static int close_ok(GDALDatasetH ds)
{
    CPLErrorReset();
    GDALFlushCache(ds);
    int ok = CPLGetLastErrorType() != CE_Failure && CPLGetLastErrorType() != CE_Fatal;
    GDALClose(ds);
    return ok && CPLGetLastErrorType() != CE_Failure && CPLGetLastErrorType() != CE_Fatal;
}

/* The caller's progress, remembering a cancel: some drivers (COG) stop
 * without raising CPLE_UserInterrupt when the callback returns 0. */
typedef struct progress_wrap {
    gseg_progress_fn fn;
    void *user;
    int cancelled;
} progress_wrap;

static int CPL_STDCALL wrapped_progress(double complete, const char *msg, void *arg)
{
    progress_wrap *pw = arg;
    if (!pw->fn(complete, msg, pw->user)) pw->cancelled = 1;
    return !pw->cancelled;
}

gseg_status gseg_writer_finish(gseg_writer *w, gseg_progress_fn progress, void *user)
{
    if (!w) return gseg__err(GSEG_ERR_ARG, "writer: NULL");
    if (w->finished) return GSEG_OK;
    gseg_status st = w->failed ? gseg__err(GSEG_ERR_IO, "%s: an earlier write failed", w->path)
                               : GSEG_OK;
    GDALDatasetH ds = w->ds;
    w->ds = NULL;
    if (!close_ok(ds) && st == GSEG_OK)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: writing failed%s", w->path, gseg__space_hint(w->tmp));
    if (st == GSEG_OK && w->stage) {
        CPLErrorReset();
        GDALDatasetH src = GDALOpenEx(w->stage, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
        GDALDatasetH dst = NULL;
        if (!src)
            st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot reopen the staging file", w->path);
        progress_wrap pw = {progress, user, 0};
        if (src)
            dst = GDALCreateCopy(w->drv, w->tmp, src, FALSE, w->co,
                                 progress ? wrapped_progress : NULL, &pw);
        if (src && !dst) {
            st = pw.cancelled || CPLGetLastErrorNo() == CPLE_UserInterrupt
                     ? gseg__err(GSEG_ERR_CANCELLED, "%s: cancelled", w->path)
                     : gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write as %s%s", w->path,
                                      GDALGetDriverShortName(w->drv), gseg__space_hint(w->tmp));
        }
        if (dst && !close_ok(dst))
            st = gseg__gdal_err(GSEG_ERR_IO, "%s: writing failed%s", w->path,
                                gseg__space_hint(w->tmp));
        if (src) GDALClose(src);
        gseg__discard(w->stage);
        free(w->stage);
        w->stage = NULL;
    } else if (st == GSEG_OK && progress && !progress(1.0, NULL, user)) {
        st = gseg__err(GSEG_ERR_CANCELLED, "%s: cancelled", w->path);
    }
    if (st == GSEG_OK && w->qml) st = write_qml(w);
    if (st == GSEG_OK) w->finished = 1;
    return st;
}

const char *gseg_writer_finished_path(const gseg_writer *w)
{
    return w && w->finished ? w->tmp : NULL;
}

gseg_status gseg_writer_commit(gseg_writer *w)
{
    if (!w) return gseg__err(GSEG_ERR_ARG, "writer: NULL");
    gseg_status st = w->finished ? gseg__commit(w->tmp, w->path)
                                 : gseg__err(GSEG_ERR_ARG, "%s: commit before finish", w->path);
    if (st == GSEG_OK) {
        free(w->tmp);
        w->tmp = NULL;
    }
    writer_free(w);
    return st;
}

gseg_status gseg_writer_close(gseg_writer *w, gseg_progress_fn progress, void *user)
{
    gseg_status st = gseg_writer_finish(w, progress, user);
    if (st != GSEG_OK) {
        writer_free(w);
        return st;
    }
    return gseg_writer_commit(w);
}
