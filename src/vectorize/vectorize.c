/*
 * vectorize.c — class mask → glacier outlines with geodesic areas.
 *
 * GDALPolygonize streams the mask line by line into an in-memory layer; its
 * mask band is a VRT of the class band whose LUT maps class values 1..254 to
 * 1 and background (0), 255 and nodata to 0, so only class pixels become
 * polygons and no full-raster buffer is ever allocated. A second pass
 * measures each polygon on the ellipsoid (PROJ's geodesic.h: GDAL 3.6 has
 * no geodesic area), applies the minimum mapping unit, optionally
 * reprojects it and writes it to the output, which appears under its final
 * name only when complete.
 *
 * With a simplification tolerance, the polygons that pass the minimum
 * mapping unit (decided on the pixel outline, so the tolerance changes
 * shapes only, never which polygons are written) are simplified all
 * together by coverage.c, which keeps the topology of the layer: no two
 * outlines overlap, every polygon stays valid with its holes inside, an
 * edge two polygons share stays shared, and no polygon disappears. Their
 * areas and perimeters are those of the simplified outlines.
 *
 * GeoPackage output also carries its default QGIS style in the table
 * layer_styles (QGIS's own schema, as QGIS's "Save as default" writes it):
 * a categorized renderer on class_name in the class colours, semi-
 * transparent fills, solid outlines, no labels. QGIS applies it when the
 * layer is added.
 */
#include "coverage.h"
#include "internal.h"
#include "json.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <gdal.h>
#include <gdal_alg.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>

#include <geodesic.h>

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Polygonize is most of the work; the per-feature pass gets the rest. */
#define POLYGONIZE_SHARE 0.7
/* Edges longer than this are densified before measuring, so a straight edge
 * in a projected CRS follows the geodesic closely (error << 1 mm at 1 km). */
#define DENSIFY_M 1000.0

gseg_vectorize_params gseg_vectorize_params_default(void)
{
    gseg_vectorize_params p;
    memset(&p, 0, sizeof p);
    p.layer_name = "glaciers";
    p.band = 1;
    p.min_area_km2 = 0.01;
    return p;
}

enum { F_ID, F_CLASS, F_CLASS_NAME, F_AREA, F_PERIM, F_SOURCE, F_COUNT };

/* One call's state. Every handle and buffer here is owned by the call and
 * released by release(), on success and on every error path. */
typedef struct vec_ctx {
    const char *mask_path, *out_path;
    const gseg_vectorize_params *p;

    gseg_progress_fn fn;
    void *user;
    double lo, hi; /* share of the overall progress of the current phase */
    int cancelled;
    int last_permille;

    long long written, dropped; /* features written, polygons below the MMU */
    double area_sum;            /* km² written */

    GDALDriverH out_drv;
    GDALDatasetH mask_ds, vrt_ds, mem_ds, out_ds;
    GDALRasterBandH band;
    OGRLayerH mem_lyr, out_lyr;
    int in_tx;
    char *tmp; /* temporary output path, owned */
    int fld[F_COUNT];
    unsigned char seen[256]; /* classes written */

    OGRSpatialReferenceH srs;  /* mask CRS (traditional GIS axis order), or NULL */
    OGRSpatialReferenceH geog; /* its geographic base CRS, NULL if none */
    OGRSpatialReferenceH tsrs; /* output CRS if reprojecting */
    OGRCoordinateTransformationH to_geog, to_out;
    int has_area;   /* geodesic measures possible */
    int geographic; /* mask CRS is geographic */
    double m_per_unit;   /* projected/local CRS: metres per CRS unit */
    double rad_per_unit; /* geographic CRS: radians per CRS unit */
    double step;         /* densification step in CRS units */
    struct geod_geodesic geod;

    /* Scratch for ring measuring, reused across rings. */
    double *vx, *vy; /* ring vertices */
    size_t vcap;
    double *dx, *dy; /* densified vertices, then lon/lat */
    size_t dcap;
} vec_ctx;

/* GDALProgressFunc that maps the phase's [0,1] onto [lo,hi] of the caller's. */
static int CPL_STDCALL scaled_progress(double complete, const char *msg, void *arg)
{
    vec_ctx *c = arg;
    if (!c->fn || c->cancelled) return !c->cancelled;
    if (!c->fn(c->lo + (c->hi - c->lo) * complete, msg, c->user)) c->cancelled = 1;
    return !c->cancelled;
}

static gseg_status cancelled(const vec_ctx *c)
{
    return gseg__err(GSEG_ERR_CANCELLED, "%s: cancelled", c->out_path);
}

/* ------------------------------------------------------------------------ */
/* Output driver                                                            */

static int has_cap(GDALDriverH d, const char *cap)
{
    const char *v = GDALGetMetadataItem(d, cap, NULL);
    return v && EQUAL(v, "YES");
}

static gseg_status pick_driver(vec_ctx *c)
{
    const char *name = c->p->format;
    if (!name) {
        /* Explicit table first: several drivers claim some extensions. */
        static const char *const table[][2] = {
            {"gpkg", "GPKG"},          {"shp", "ESRI Shapefile"},
            {"geojson", "GeoJSON"},    {"json", "GeoJSON"},
            {"geojsonl", "GeoJSONSeq"}, {"geojsons", "GeoJSONSeq"},
            {"fgb", "FlatGeobuf"},     {"kml", "KML"},
            {"gml", "GML"},            {"sqlite", "SQLite"},
            {"csv", "CSV"},            {"parquet", "Parquet"},
            {"arrow", "Arrow"},        {"feather", "Arrow"},
        };
        const char *ext = CPLGetExtension(c->out_path);
        for (size_t i = 0; !name && i < sizeof table / sizeof table[0]; i++)
            if (EQUAL(ext, table[i][0])) name = table[i][1];
        for (int i = 0; !name && *ext && i < GDALGetDriverCount(); i++) {
            GDALDriverH d = GDALGetDriver(i);
            const char *exts = GDALGetMetadataItem(d, GDAL_DMD_EXTENSIONS, NULL);
            if (!exts || !has_cap(d, GDAL_DCAP_VECTOR) || !has_cap(d, GDAL_DCAP_CREATE))
                continue;
            char **list = CSLTokenizeString(exts);
            if (CSLFindString(list, ext) >= 0) name = GDALGetDriverShortName(d);
            CSLDestroy(list);
        }
        if (!name) name = "GPKG";
    }
    c->out_drv = GDALGetDriverByName(name);
    if (!c->out_drv)
        return gseg__err(c->p->format ? GSEG_ERR_ARG : GSEG_ERR_UNSUPPORTED,
                         "%s: unknown or unavailable vector format '%s'", c->out_path, name);
    if (!has_cap(c->out_drv, GDAL_DCAP_VECTOR) || !has_cap(c->out_drv, GDAL_DCAP_CREATE))
        return gseg__err(GSEG_ERR_ARG, "%s: format '%s' cannot create vector files",
                         c->out_path, name);
    return GSEG_OK;
}

/* ------------------------------------------------------------------------ */
/* Input mask                                                               */

static gseg_status open_mask(vec_ctx *c)
{
    CPLErrorReset();
    c->mask_ds = GDALOpenEx(c->mask_path, GDAL_OF_RASTER | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR,
                            NULL, NULL, NULL);
    if (!c->mask_ds) return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot open", c->mask_path);
    int nb = GDALGetRasterCount(c->mask_ds);
    if (c->p->band < 1 || c->p->band > nb)
        return gseg__err(GSEG_ERR_ARG, "%s: band %d requested, the file has %d", c->mask_path,
                         c->p->band, nb);
    c->band = GDALGetRasterBand(c->mask_ds, c->p->band);
    GDALDataType t = GDALGetRasterDataType(c->band);
    if (t != GDT_Byte)
        return gseg__err(GSEG_ERR_FORMAT, "%s: band %d is %s, a class mask must be Byte",
                         c->mask_path, c->p->band, GDALGetDataTypeName(t));

    /* LUT: 1 for class values, 0 for background, 255 and nodata. Only the
     * points where the value changes are listed (the LUT interpolates
     * linearly between points, exactly at integers here). */
    int has_nd = 0;
    double nd = GDALGetRasterNoDataValue(c->band, &has_nd);
    unsigned char keep[256];
    for (int v = 0; v < 256; v++) keep[v] = v >= 1 && v <= 254;
    if (has_nd && nd >= 0 && nd <= 255 && nd == floor(nd)) keep[(int)nd] = 0;
    char lut[256 * 8 + 1];
    size_t len = 0;
    for (int v = 0; v < 256; v++)
        if (v == 0 || v == 255 || keep[v] != keep[v - 1] || keep[v] != keep[v + 1])
            len += (size_t)snprintf(lut + len, sizeof lut - len, "%s%d:%d", len ? "," : "", v,
                                    keep[v]);

    int w = GDALGetRasterXSize(c->mask_ds), h = GDALGetRasterYSize(c->mask_ds);
    char *esc = CPLEscapeString(c->mask_path, -1, CPLES_XML);
    const char *fmt =
        "<VRTDataset rasterXSize=\"%d\" rasterYSize=\"%d\">"
        "<VRTRasterBand dataType=\"Byte\" band=\"1\"><ComplexSource>"
        "<SourceFilename relativeToVRT=\"0\">%s</SourceFilename>"
        "<SourceBand>%d</SourceBand>"
        "<SrcRect xOff=\"0\" yOff=\"0\" xSize=\"%d\" ySize=\"%d\"/>"
        "<DstRect xOff=\"0\" yOff=\"0\" xSize=\"%d\" ySize=\"%d\"/>"
        "<LUT>%s</LUT></ComplexSource></VRTRasterBand></VRTDataset>";
    int n = snprintf(NULL, 0, fmt, w, h, esc, c->p->band, w, h, w, h, lut);
    char *xml = n > 0 ? gseg__malloc((size_t)n + 1, 1) : NULL;
    if (xml) snprintf(xml, (size_t)n + 1, fmt, w, h, esc, c->p->band, w, h, w, h, lut);
    CPLFree(esc);
    if (!xml) return GSEG_ERR_NOMEM;
    const char *const vrt_only[] = {"VRT", NULL};
    CPLErrorReset();
    c->vrt_ds = GDALOpenEx(xml, GDAL_OF_RASTER | GDAL_OF_VERBOSE_ERROR, vrt_only, NULL, NULL);
    free(xml);
    if (!c->vrt_ds)
        return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot build the class mask", c->mask_path);
    return GSEG_OK;
}

static gseg_status setup_crs(vec_ctx *c)
{
    OGRSpatialReferenceH s = GDALGetSpatialRef(c->mask_ds);
    if (s) {
        c->srs = OSRClone(s);
        OSRSetAxisMappingStrategy(c->srs, OAMS_TRADITIONAL_GIS_ORDER);
        c->geographic = OSRIsGeographic(c->srs);
        c->m_per_unit = OSRGetLinearUnits(c->srs, NULL);
        c->rad_per_unit = OSRGetAngularUnits(c->srs, NULL);
        if (!(c->m_per_unit > 0)) c->m_per_unit = 1.0;
        if (!(c->rad_per_unit > 0)) c->rad_per_unit = M_PI / 180.0;
        /* Local (engineering) CRSs have no ellipsoid: no areas, as without CRS. */
        c->geog = OSRCloneGeogCS(c->srs);
    } else {
        c->m_per_unit = 1.0;
    }
    if (c->geog) {
        OSRSetAxisMappingStrategy(c->geog, OAMS_TRADITIONAL_GIS_ORDER);
        OGRErr e1 = OGRERR_NONE, e2 = OGRERR_NONE;
        double a = OSRGetSemiMajor(c->geog, &e1);
        double invf = OSRGetInvFlattening(c->geog, &e2);
        if (e1 != OGRERR_NONE || e2 != OGRERR_NONE || !(a > 0))
            return gseg__err(GSEG_ERR_FORMAT, "%s: the CRS has no usable ellipsoid", c->mask_path);
        geod_init(&c->geod, a, invf != 0 ? 1.0 / invf : 0.0);
        CPLErrorReset();
        c->to_geog = OCTNewCoordinateTransformation(c->srs, c->geog);
        if (!c->to_geog)
            return gseg__gdal_err(GSEG_ERR_FORMAT, "%s: cannot convert the CRS to longitude/latitude",
                                  c->mask_path);
        c->has_area = 1;
        c->step = c->geographic ? DENSIFY_M / a / c->rad_per_unit : DENSIFY_M / c->m_per_unit;
    }
    if (c->p->t_srs) {
        c->tsrs = OSRNewSpatialReference(NULL);
        CPLErrorReset();
        if (OSRSetFromUserInput(c->tsrs, c->p->t_srs) != OGRERR_NONE)
            return gseg__gdal_err(GSEG_ERR_ARG, "cannot parse output CRS '%s'", c->p->t_srs);
        OSRSetAxisMappingStrategy(c->tsrs, OAMS_TRADITIONAL_GIS_ORDER);
        if (!c->srs)
            return gseg__err(GSEG_ERR_ARG, "%s: has no CRS, cannot reproject outlines to '%s'",
                             c->mask_path, c->p->t_srs);
        CPLErrorReset();
        c->to_out = OCTNewCoordinateTransformation(c->srs, c->tsrs);
        if (!c->to_out)
            return gseg__gdal_err(GSEG_ERR_ARG, "%s: cannot reproject outlines to '%s'",
                                  c->mask_path, c->p->t_srs);
    }
    return GSEG_OK;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */

static gseg_status add_field(vec_ctx *c, int slot, const char *name, OGRFieldType t)
{
    OGRFieldDefnH fd = OGR_Fld_Create(name, t);
    CPLErrorReset();
    OGRErr e = OGR_L_CreateField(c->out_lyr, fd, TRUE);
    OGR_Fld_Destroy(fd);
    if (e != OGRERR_NONE)
        return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot create field %s", c->out_path, name);
    /* By position: some drivers rename fields (Shapefile's 10-character limit). */
    c->fld[slot] = OGR_FD_GetFieldCount(OGR_L_GetLayerDefn(c->out_lyr)) - 1;
    return GSEG_OK;
}

static gseg_status create_output(vec_ctx *c)
{
    const char *drv = GDALGetDriverShortName(c->out_drv);
    c->tmp = gseg__tmp_path(c->out_path);
    if (!c->tmp) return GSEG_ERR_ARG;
    CPLErrorReset();
    c->out_ds = GDALCreate(c->out_drv, c->tmp, 0, 0, 0, GDT_Unknown, NULL);
    if (!c->out_ds)
        return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot create with driver %s", c->out_path, drv);
    const char *layer = c->p->layer_name ? c->p->layer_name : "glaciers";
    char **lco = NULL;
    if (EQUAL(drv, "CSV")) lco = CSLSetNameValue(lco, "GEOMETRY", "AS_WKT");
    CPLErrorReset();
    c->out_lyr = GDALDatasetCreateLayer(c->out_ds, layer, c->tsrs ? c->tsrs : c->srs, wkbPolygon,
                                        lco);
    CSLDestroy(lco);
    if (!c->out_lyr)
        return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot create layer %s with driver %s",
                              c->out_path, layer, drv);
    gseg_status st;
    if ((st = add_field(c, F_ID, "id", OFTInteger)) ||
        (st = add_field(c, F_CLASS, "class", OFTInteger)) ||
        (st = add_field(c, F_CLASS_NAME, "class_name", OFTString)) ||
        (st = add_field(c, F_AREA, "area_km2", OFTReal)) ||
        (st = add_field(c, F_PERIM, "perimeter_km", OFTReal)) ||
        (st = add_field(c, F_SOURCE, "source", OFTString)))
        return st;
    /* One transaction: GPKG/SQLite would otherwise commit every feature.
     * Drivers without transactions just decline. Syncing first makes GPKG
     * create its (deferred) table outside the transaction, so a rollback
     * leaves a consistent file to close. */
    OGR_L_SyncToDisk(c->out_lyr);
    c->in_tx = GDALDatasetStartTransaction(c->out_ds, FALSE) == OGRERR_NONE;
    return GSEG_OK;
}

/* ------------------------------------------------------------------------ */
/* Default QGIS style (GeoPackage)                                          */

static const char *class_name(const vec_ctx *c, int cls, char *buf, size_t cap);

static const uint8_t *class_rgba(const vec_ctx *c, int cls)
{
    if (c->p->class_rgba && cls >= 0 && cls < c->p->nclasses) return c->p->class_rgba[cls];
    return gseg__class_default_rgba(cls); /* the model's defaults, as on the mask */
}

/* SimpleFill properties, in both the <Option> map QGIS >= 3.20 writes and
 * the <prop> list every QGIS 3 reads. */
static void fill_props(gseg__sbuf *b, const char *const kv[][2], int n)
{
    gseg__sbuf_appendf(b, "          <Option type=\"Map\">\n");
    for (int i = 0; i < n; i++)
        gseg__sbuf_appendf(b, "            <Option type=\"QString\" name=\"%s\" value=\"%s\"/>\n", kv[i][0],
                  kv[i][1]);
    gseg__sbuf_appendf(b, "          </Option>\n");
    for (int i = 0; i < n; i++)
        gseg__sbuf_appendf(b, "          <prop k=\"%s\" v=\"%s\"/>\n", kv[i][0], kv[i][1]);
}

/* The QML of the outlines: categorized on class_name, one category per
 * class of the class table (background excepted) and per class written. */
static char *style_qml(const vec_ctx *c)
{
    gseg__sbuf b;
    gseg__sbuf_init(&b);
    gseg__sbuf_appendf(&b, "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
                  "<qgis version=\"3.22.0\" styleCategories=\"Symbology|Labeling\" "
                  "labelsEnabled=\"0\">\n"
                  "  <renderer-v2 type=\"categorizedSymbol\" attr=\"class_name\" "
                  "symbollevels=\"0\" enableorderby=\"0\" forceraster=\"0\">\n"
                  "    <categories>\n");
    int ncat = 0, cls_of[256];
    for (int cls = 1; cls < 255; cls++)
        if (cls < c->p->nclasses || c->seen[cls] || (c->p->nclasses == 0 && cls == 1))
            cls_of[ncat++] = cls;
    char buf[32];
    for (int i = 0; i < ncat; i++) {
        char *name = CPLEscapeString(class_name(c, cls_of[i], buf, sizeof buf), -1, CPLES_XML);
        gseg__sbuf_appendf(&b,
                  "      <category value=\"%s\" label=\"%s\" symbol=\"%d\" render=\"true\"/>\n",
                  name, name, i);
        CPLFree(name);
    }
    gseg__sbuf_appendf(&b, "    </categories>\n"
                  "    <symbols>\n");
    for (int i = 0; i < ncat; i++) {
        const uint8_t *rgba = class_rgba(c, cls_of[i]);
        /* Fill: the class colour at 40 % of its opacity; outline: the class
         * colour darkened, opaque, so it shows over the mask too. */
        char fill[32], line[32];
        snprintf(fill, sizeof fill, "%d,%d,%d,%d", rgba[0], rgba[1], rgba[2],
                 (int)lround(rgba[3] * 0.4));
        snprintf(line, sizeof line, "%d,%d,%d,255", rgba[0] * 3 / 5, rgba[1] * 3 / 5,
                 rgba[2] * 3 / 5);
        const char *const kv[][2] = {
            {"color", fill},         {"style", "solid"},           {"outline_color", line},
            {"outline_style", "solid"}, {"outline_width", "0.4"}, {"outline_width_unit", "MM"},
            {"joinstyle", "round"},
        };
        gseg__sbuf_appendf(&b,
                  "      <symbol type=\"fill\" name=\"%d\" alpha=\"1\" clip_to_extent=\"1\" "
                  "force_rhr=\"0\">\n"
                  "        <layer class=\"SimpleFill\" enabled=\"1\" locked=\"0\" pass=\"0\">\n",
                  i);
        fill_props(&b, kv, (int)(sizeof kv / sizeof kv[0]));
        gseg__sbuf_appendf(&b, "        </layer>\n"
                      "      </symbol>\n");
    }
    gseg__sbuf_appendf(&b, "    </symbols>\n"
                  "    <rotation/>\n"
                  "    <sizescale/>\n"
                  "  </renderer-v2>\n"
                  "  <blendMode>0</blendMode>\n"
                  "  <featureBlendMode>0</featureBlendMode>\n"
                  "  <layerGeometryType>2</layerGeometryType>\n"
                  "</qgis>\n");
    if (b.st != GSEG_OK) {
        gseg__sbuf_free(&b);
        gseg__err(GSEG_ERR_NOMEM, "out of memory for the QGIS style");
        return NULL;
    }
    return gseg__sbuf_take(&b);
}

static int style_field(OGRLayerH l, const char *name, OGRFieldType t, int width)
{
    OGRFieldDefnH fd = OGR_Fld_Create(name, t);
    if (width) OGR_Fld_SetWidth(fd, width);
    if (strcmp(name, "useAsDefault") == 0) OGR_Fld_SetSubType(fd, OFSTBoolean);
    if (t == OFTDateTime) OGR_Fld_SetDefault(fd, "CURRENT_TIMESTAMP");
    OGRErr e = OGR_L_CreateField(l, fd, TRUE);
    OGR_Fld_Destroy(fd);
    return e == OGRERR_NONE;
}

/* The layer_styles table with the outlines' default style, as QGIS creates
 * it (QgsOgrProviderMetadata::saveStyle): FID "id", empty catalog and
 * schema, useAsDefault = 1. */
static gseg_status write_style(vec_ctx *c)
{
    char *qml = style_qml(c);
    if (!qml) return GSEG_ERR_NOMEM;
    gseg_status st = GSEG_OK;
    char **lco = CSLSetNameValue(NULL, "FID", "id");
    CPLErrorReset();
    OGRLayerH l = GDALDatasetCreateLayer(c->out_ds, "layer_styles", NULL, wkbNone, lco);
    CSLDestroy(lco);
    int ok = l != NULL;
    static const struct {
        const char *name;
        OGRFieldType type;
        int width;
    } fields[] = {
        {"f_table_catalog", OFTString, 256}, {"f_table_schema", OFTString, 256},
        {"f_table_name", OFTString, 256},    {"f_geometry_column", OFTString, 256},
        {"styleName", OFTString, 30},        {"styleQML", OFTString, 0},
        {"styleSLD", OFTString, 0},          {"useAsDefault", OFTInteger, 0},
        {"description", OFTString, 0},       {"owner", OFTString, 30},
        {"ui", OFTString, 30},               {"update_time", OFTDateTime, 0},
    };
    for (size_t i = 0; ok && i < sizeof fields / sizeof fields[0]; i++)
        ok = style_field(l, fields[i].name, fields[i].type, fields[i].width);
    if (ok) {
        OGRFeatureDefnH d = OGR_L_GetLayerDefn(l);
        OGRFeatureH f = OGR_F_Create(d);
        const char *table = OGR_L_GetName(c->out_lyr);
        const char *geom = OGR_L_GetGeometryColumn(c->out_lyr);
        OGR_F_SetFieldString(f, OGR_FD_GetFieldIndex(d, "f_table_catalog"), "");
        OGR_F_SetFieldString(f, OGR_FD_GetFieldIndex(d, "f_table_schema"), "");
        OGR_F_SetFieldString(f, OGR_FD_GetFieldIndex(d, "f_table_name"), table);
        OGR_F_SetFieldString(f, OGR_FD_GetFieldIndex(d, "f_geometry_column"),
                             geom && *geom ? geom : "geom");
        OGR_F_SetFieldString(f, OGR_FD_GetFieldIndex(d, "styleName"), table);
        OGR_F_SetFieldString(f, OGR_FD_GetFieldIndex(d, "styleQML"), qml);
        OGR_F_SetFieldString(f, OGR_FD_GetFieldIndex(d, "styleSLD"), "");
        OGR_F_SetFieldInteger(f, OGR_FD_GetFieldIndex(d, "useAsDefault"), 1);
        OGR_F_SetFieldString(f, OGR_FD_GetFieldIndex(d, "description"),
                             "gseg: classes in the colours of the mask");
        OGR_F_SetFieldString(f, OGR_FD_GetFieldIndex(d, "owner"), "");
        time_t now = time(NULL);
        struct tm tm;
        if (gmtime_r(&now, &tm))
            OGR_F_SetFieldDateTimeEx(f, OGR_FD_GetFieldIndex(d, "update_time"),
                                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                     tm.tm_min, (float)tm.tm_sec, 100);
        ok = OGR_L_CreateFeature(l, f) == OGRERR_NONE;
        OGR_F_Destroy(f);
    }
    if (!ok) st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write the layer_styles table", c->out_path);
    free(qml);
    return st;
}

static gseg_status finish_output(vec_ctx *c)
{
    if (c->in_tx) {
        c->in_tx = 0;
        CPLErrorReset();
        if (GDALDatasetCommitTransaction(c->out_ds) != OGRERR_NONE)
            return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write", c->out_path);
    }
    if (EQUAL(GDALGetDriverShortName(c->out_drv), "GPKG")) {
        gseg_status st = write_style(c);
        if (st != GSEG_OK) return st;
    }
    /* Some drivers (FlatGeobuf, GeoJSON) write on close: watch for errors. */
    CPLErrorReset();
    GDALClose(c->out_ds);
    c->out_ds = NULL;
    if (CPLGetLastErrorType() == CE_Failure)
        return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write", c->out_path);
    gseg_status st = gseg__commit(c->tmp, c->out_path); /* discards on failure */
    free(c->tmp);
    c->tmp = NULL;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Measures                                                                 */

static int reserve(double **a, double **b, size_t *cap, size_t n)
{
    if (n <= *cap) return 1;
    size_t m = *cap ? *cap : 256;
    while (m < n) m *= 2;
    double *na = realloc(*a, m * sizeof **a);
    if (na) *a = na;
    double *nb = na ? realloc(*b, m * sizeof **b) : NULL;
    if (nb) *b = nb;
    if (!na || !nb) {
        gseg__err(GSEG_ERR_NOMEM, "out of memory for a ring of %zu vertices", n);
        return 0;
    }
    *cap = m;
    return 1;
}

/* Geodesic |area| (m²) and perimeter (m) of one ring, edges densified to
 * c->step in CRS units first. */
static gseg_status ring_measure(vec_ctx *c, OGRGeometryH ring, double *area, double *perim)
{
    *area = *perim = 0;
    int n = OGR_G_GetPointCount(ring);
    if (n < 3) return GSEG_OK;
    if (!reserve(&c->vx, &c->vy, &c->vcap, (size_t)n)) return GSEG_ERR_NOMEM;
    OGR_G_GetPoints(ring, c->vx, sizeof(double), c->vy, sizeof(double), NULL, 0);
    if (c->vx[n - 1] == c->vx[0] && c->vy[n - 1] == c->vy[0]) n--; /* implicit closure */
    if (n < 3) return GSEG_OK;

    size_t m = 0;
    for (int i = 0; i < n; i++) {
        int j = i + 1 < n ? i + 1 : 0;
        double len = hypot(c->vx[j] - c->vx[i], c->vy[j] - c->vy[i]);
        double k = ceil(len / c->step);
        m += k > 1 ? (k < 1e6 ? (size_t)k : 1000000) : 1;
    }
    if (m > INT_MAX) return gseg__err(GSEG_ERR_LIMIT, "%s: ring too long", c->mask_path);
    if (!reserve(&c->dx, &c->dy, &c->dcap, m)) return GSEG_ERR_NOMEM;
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        int j = i + 1 < n ? i + 1 : 0;
        double ex = c->vx[j] - c->vx[i], ey = c->vy[j] - c->vy[i];
        double k = ceil(hypot(ex, ey) / c->step);
        size_t parts = k > 1 ? (k < 1e6 ? (size_t)k : 1000000) : 1;
        for (size_t s = 0; s < parts; s++) {
            double t = (double)s / (double)parts;
            c->dx[o] = c->vx[i] + t * ex;
            c->dy[o] = c->vy[i] + t * ey;
            o++;
        }
    }
    if (!OCTTransform(c->to_geog, (int)m, c->dx, c->dy, NULL))
        return gseg__err(GSEG_ERR_FORMAT, "%s: outline outside the area of use of its CRS",
                         c->mask_path);
    double a = 0, p = 0;
    geod_polygonarea(&c->geod, c->dy, c->dx, (int)m, &a, &p); /* lats, lons */
    *area = fabs(a);
    *perim = p;
    return GSEG_OK;
}

/* Area = |exterior| − Σ|holes|; perimeter over all rings. km², km. */
static gseg_status polygon_measure(vec_ctx *c, OGRGeometryH g, double *area_km2, double *perim_km)
{
    double area = 0, perim = 0;
    int nr = OGR_G_GetGeometryCount(g);
    for (int r = 0; r < nr; r++) {
        double a, p;
        gseg_status st = ring_measure(c, OGR_G_GetGeometryRef(g, r), &a, &p);
        if (st) return st;
        area += r == 0 ? a : -a;
        perim += p;
    }
    *area_km2 = area > 0 ? area * 1e-6 : 0;
    *perim_km = perim * 1e-3;
    return GSEG_OK;
}

/* Metres per radian along the longer of a degree of latitude and of
 * longitude at latitude lat (radians). */
static double metres_per_radian(const vec_ctx *c, double lat)
{
    double s = sin(lat), f = c->geod.f, e2 = f * (2 - f);
    double w = sqrt(1 - e2 * s * s);
    double n_rad = c->geod.a / w;                      /* prime vertical radius */
    double m_rad = c->geod.a * (1 - e2) / (w * w * w); /* meridional radius */
    return fmax(m_rad, n_rad * cos(lat));
}

/* simplify_m in CRS units for outlines within envelope e. Without a CRS
 * the units are unknown and taken as metres (the usual case: a UTM mask
 * that lost its CRS). */
static double simplify_tolerance(const vec_ctx *c, const OGREnvelope *e)
{
    if (!c->geographic || !c->geog) return c->p->simplify_m / c->m_per_unit;
    /* Geographic CRS: degrees are not metres. Convert with the most metres
     * per degree over the envelope's latitudes (at its ends, or the
     * equator if it spans it), so no outline moves more than simplify_m. */
    double lat0 = e->MinY * c->rad_per_unit, lat1 = e->MaxY * c->rad_per_unit;
    double r = fmax(metres_per_radian(c, lat0), metres_per_radian(c, lat1));
    if (lat0 < 0 && lat1 > 0) r = fmax(r, metres_per_radian(c, 0));
    return c->p->simplify_m / r / c->rad_per_unit;
}

/* ------------------------------------------------------------------------ */
/* The two passes                                                           */

static gseg_status polygonize(vec_ctx *c)
{
    GDALDriverH mem = GDALGetDriverByName("Memory");
    if (!mem) return gseg__err(GSEG_ERR_UNSUPPORTED, "GDAL's Memory vector driver is missing");
    CPLErrorReset();
    c->mem_ds = GDALCreate(mem, "gseg_vectorize", 0, 0, 0, GDT_Unknown, NULL);
    c->mem_lyr = c->mem_ds ? GDALDatasetCreateLayer(c->mem_ds, "polygons", NULL, wkbPolygon, NULL)
                           : NULL;
    if (!c->mem_lyr) return gseg__gdal_err(GSEG_ERR_INTERNAL, "cannot create an in-memory layer");
    OGRFieldDefnH fd = OGR_Fld_Create("class", OFTInteger);
    OGRErr e = OGR_L_CreateField(c->mem_lyr, fd, TRUE);
    OGR_Fld_Destroy(fd);
    if (e != OGRERR_NONE) return gseg__gdal_err(GSEG_ERR_INTERNAL, "cannot create an in-memory field");

    c->lo = 0;
    c->hi = POLYGONIZE_SHARE;
    CPLErrorReset();
    /* No options: 4-connected. Reads one line of each band at a time. */
    CPLErr err = GDALPolygonize(c->band, GDALGetRasterBand(c->vrt_ds, 1), c->mem_lyr, 0, NULL,
                                scaled_progress, c);
    if (c->cancelled) return cancelled(c);
    if (err != CE_None) return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot polygonize", c->mask_path);
    /* The source is no longer needed; free its handles and cache now. */
    GDALClose(c->vrt_ds);
    c->vrt_ds = NULL;
    return GSEG_OK;
}

static const char *class_name(const vec_ctx *c, int cls, char *buf, size_t cap)
{
    if (cls >= 0 && cls < c->p->nclasses && c->p->class_names && c->p->class_names[cls])
        return c->p->class_names[cls];
    if (cls == 1) return gseg__binary_classes[1];
    snprintf(buf, cap, "class %d", cls);
    return buf;
}

/* Sets the share of the overall progress of the next phase. */
static void phase(vec_ctx *c, double lo, double hi)
{
    c->lo = lo;
    c->hi = hi;
    c->last_permille = -1;
}

/* Progress after done of total items of the phase. */
static gseg_status tick(vec_ctx *c, GIntBig done, GIntBig total)
{
    int permille = total > 0 ? (int)(1000 * done / total) : 1000;
    if (permille == c->last_permille) return GSEG_OK;
    c->last_permille = permille;
    return scaled_progress(permille / 1000.0, NULL, c) ? GSEG_OK : cancelled(c);
}

/* The next polygon of the in-memory layer (NULL or empty possible) and
 * its class; *more = 0 at the end. */
static OGRGeometryH next_polygon(vec_ctx *c, int *cls, int *more)
{
    OGRFeatureH f = OGR_L_GetNextFeature(c->mem_lyr);
    *more = f != NULL;
    if (!f) return NULL;
    *cls = OGR_F_GetFieldAsInteger(f, 0);
    OGRGeometryH g = OGR_F_StealGeometry(f);
    OGR_F_Destroy(f);
    return g;
}

/* Area and perimeter of g where the CRS allows; with keep, whether g
 * passes the minimum mapping unit (always without areas: no CRS). */
static gseg_status measure(vec_ctx *c, OGRGeometryH g, double *area, double *perim, int *keep)
{
    *area = *perim = 0;
    if (keep) *keep = g && !OGR_G_IsEmpty(g);
    if (!g || !c->has_area || (keep && !*keep)) return GSEG_OK;
    gseg_status st = polygon_measure(c, g, area, perim);
    if (keep) *keep = st == GSEG_OK && *area >= c->p->min_area_km2;
    return st;
}

/* Writes one outline; takes g. */
static gseg_status write_feature(vec_ctx *c, int cls, OGRGeometryH g, double area, double perim)
{
    if (c->to_out) {
        CPLErrorReset();
        if (OGR_G_Transform(g, c->to_out) != OGRERR_NONE) {
            OGR_G_DestroyGeometry(g);
            return gseg__gdal_err(GSEG_ERR_FORMAT, "%s: cannot reproject an outline to '%s'",
                                  c->mask_path, c->p->t_srs);
        }
    }
    char buf[32];
    OGRFeatureH of = OGR_F_Create(OGR_L_GetLayerDefn(c->out_lyr));
    OGR_F_SetFieldInteger64(of, c->fld[F_ID], c->written + 1);
    OGR_F_SetFieldInteger(of, c->fld[F_CLASS], cls);
    OGR_F_SetFieldString(of, c->fld[F_CLASS_NAME], class_name(c, cls, buf, sizeof buf));
    if (c->has_area) {
        OGR_F_SetFieldDouble(of, c->fld[F_AREA], area);
        OGR_F_SetFieldDouble(of, c->fld[F_PERIM], perim);
    } else {
        OGR_F_SetFieldNull(of, c->fld[F_AREA]);
        OGR_F_SetFieldNull(of, c->fld[F_PERIM]);
    }
    if (c->p->source)
        OGR_F_SetFieldString(of, c->fld[F_SOURCE], c->p->source);
    else
        OGR_F_SetFieldNull(of, c->fld[F_SOURCE]);
    OGR_F_SetGeometryDirectly(of, g);
    CPLErrorReset();
    gseg_status st = GSEG_OK;
    if (OGR_L_CreateFeature(c->out_lyr, of) != OGRERR_NONE)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write a feature", c->out_path);
    OGR_F_Destroy(of);
    c->written++;
    c->seen[cls & 255] = 1;
    c->area_sum += area;
    return st;
}

/* Each polygon GDALPolygonize found that passes the minimum mapping unit
 * goes to take (which owns it), with its class, area and perimeter;
 * c->dropped counts the others (below the unit, or empty), so taken +
 * dropped is what GDALPolygonize found. Progress up to `share`. */
typedef gseg_status (*take_fn)(vec_ctx *c, int cls, OGRGeometryH g, double area, double perim,
                               void *user);

static gseg_status each_polygon(vec_ctx *c, double share, take_fn take, void *user)
{
    GIntBig total = OGR_L_GetFeatureCount(c->mem_lyr, TRUE), done = 0;
    gseg_status st = GSEG_OK;
    phase(c, POLYGONIZE_SHARE, share);
    OGR_L_ResetReading(c->mem_lyr);
    int cls = 0, more = 1;
    while (st == GSEG_OK && more) {
        OGRGeometryH g = next_polygon(c, &cls, &more);
        if (!more) break;
        double area, perim;
        int keep;
        st = measure(c, g, &area, &perim, &keep);
        if (st == GSEG_OK && keep) {
            st = take(c, cls, g, area, perim, user);
            g = NULL;
        } else if (st == GSEG_OK) {
            c->dropped++;
        }
        if (g) OGR_G_DestroyGeometry(g);
        if (st == GSEG_OK) st = tick(c, ++done, total);
    }
    return st;
}

static gseg_status take_write(vec_ctx *c, int cls, OGRGeometryH g, double area, double perim,
                              void *user)
{
    (void)user;
    return write_feature(c, cls, g, area, perim);
}

/* The polygons as GDALPolygonize found them, streamed. */
static gseg_status write_features(vec_ctx *c) { return each_polygon(c, 1.0, take_write, NULL); }

/* Into the coverage, and the envelope of their vertices. */
typedef struct collecting {
    gseg__cov *cov;
    OGREnvelope env;
    int any;
} collecting;

static gseg_status take_collect(vec_ctx *c, int cls, OGRGeometryH g, double area,
                                double perim, void *user)
{
    (void)c, (void)area, (void)perim;
    collecting *k = user;
    OGREnvelope e;
    OGR_G_GetEnvelope(g, &e);
    if (!k->any) k->env = e;
    k->env.MinX = fmin(k->env.MinX, e.MinX);
    k->env.MinY = fmin(k->env.MinY, e.MinY);
    k->env.MaxX = fmax(k->env.MaxX, e.MaxX);
    k->env.MaxY = fmax(k->env.MaxY, e.MaxY);
    k->any = 1;
    gseg_status st = gseg__cov_add(k->cov, g, cls);
    OGR_G_DestroyGeometry(g);
    return st;
}

/* Polygons that pass the minimum mapping unit into coverage cov, and the
 * envelope of their vertices; the in-memory layer is freed after. */
static gseg_status collect(vec_ctx *c, gseg__cov *cov, OGREnvelope *env)
{
    collecting k = {cov, {0, 0, 0, 0}, 0};
    gseg_status st = each_polygon(c, 0.8, take_collect, &k);
    *env = k.env;
    GDALClose(c->mem_ds);
    c->mem_ds = NULL;
    c->mem_lyr = NULL;
    return st;
}

/* The polygons simplified together (coverage.c), then measured and
 * written in GDALPolygonize's order. */
static gseg_status write_simplified(vec_ctx *c)
{
    double gt[6] = {0, 1, 0, 0, 0, 1}; /* GDALPolygonize's default too */
    GDALGetGeoTransform(c->mask_ds, gt);
    gseg__cov *cov;
    gseg_status st = gseg__cov_new(gt, &cov);
    if (st != GSEG_OK) return st;
    OGREnvelope env = {0, 0, 0, 0};
    st = collect(c, cov, &env);
    if (st == GSEG_OK) st = gseg__cov_simplify(cov, simplify_tolerance(c, &env));
    phase(c, 0.85, 1.0);
    size_t n = gseg__cov_count(cov);
    for (size_t i = 0; st == GSEG_OK && i < n; i++) {
        OGRGeometryH g;
        int cls;
        double area, perim;
        st = gseg__cov_polygon(cov, i, &g, &cls);
        if (st == GSEG_OK) st = measure(c, g, &area, &perim, NULL);
        if (st == GSEG_OK) st = write_feature(c, cls, g, area, perim);
        else if (g) OGR_G_DestroyGeometry(g);
        if (st == GSEG_OK) st = tick(c, (GIntBig)i + 1, (GIntBig)n);
    }
    gseg__cov_free(cov);
    return st;
}

static void release(vec_ctx *c, int failed)
{
    if (c->out_ds) {
        if (c->in_tx) GDALDatasetRollbackTransaction(c->out_ds);
        GDALClose(c->out_ds);
    }
    if (c->tmp && failed) gseg__discard(c->tmp);
    free(c->tmp);
    if (c->mem_ds) GDALClose(c->mem_ds);
    if (c->vrt_ds) GDALClose(c->vrt_ds);
    if (c->mask_ds) GDALClose(c->mask_ds);
    if (c->to_geog) OCTDestroyCoordinateTransformation(c->to_geog);
    if (c->to_out) OCTDestroyCoordinateTransformation(c->to_out);
    if (c->srs) OSRRelease(c->srs);
    if (c->geog) OSRRelease(c->geog);
    if (c->tsrs) OSRRelease(c->tsrs);
    free(c->vx);
    free(c->vy);
    free(c->dx);
    free(c->dy);
}

gseg_status gseg_vectorize(const char *mask_path, const char *out_path,
                           const gseg_vectorize_params *p, gseg_progress_fn progress,
                           void *user, gseg_vectorize_stats *stats)
{
    gseg_vectorize_params def = gseg_vectorize_params_default();
    if (!p) p = &def;
    if (stats) memset(stats, 0, sizeof *stats);
    if (!mask_path || !out_path)
        return gseg__err(GSEG_ERR_ARG, "gseg_vectorize: mask and output paths are required");
    if (!(p->min_area_km2 >= 0) || !isfinite(p->min_area_km2))
        return gseg__err(GSEG_ERR_ARG, "minimum area must be >= 0 km², got %g", p->min_area_km2);
    if (!(p->simplify_m >= 0) || !isfinite(p->simplify_m))
        return gseg__err(GSEG_ERR_ARG, "simplification tolerance must be >= 0 m, got %g",
                         p->simplify_m);
    if (p->nclasses < 0 || (p->nclasses > 0 && !p->class_names))
        return gseg__err(GSEG_ERR_ARG, "class names: %d announced, none given", p->nclasses);

    vec_ctx c;
    memset(&c, 0, sizeof c);
    c.mask_path = mask_path;
    c.out_path = out_path;
    c.p = p;
    c.fn = progress;
    c.user = user;

    gseg_status st;
    if (!(st = pick_driver(&c)) && !(st = open_mask(&c)) && !(st = setup_crs(&c)) &&
        !(st = create_output(&c)) && !(st = polygonize(&c)) &&
        !(st = p->simplify_m > 0 ? write_simplified(&c) : write_features(&c)) &&
        !(st = scaled_progress(1.0, NULL, &c) ? GSEG_OK : cancelled(&c)))
        st = finish_output(&c);
    if (stats) {
        stats->polygons = c.written;
        stats->dropped = c.dropped;
        /* NaN: areas unknown (no CRS); the tools warn about it. */
        stats->area_km2 = c.has_area ? c.area_sum : NAN;
    }
    release(&c, st != GSEG_OK);
    return st;
}
