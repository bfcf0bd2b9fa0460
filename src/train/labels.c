/*
 * labels.c — training and evaluation labels from glacier outlines (RGI,
 * GLIMS, anything OGR reads), burnt onto each scene's own grid.
 *
 * Every polygon layer of the source is used. Outlines are reprojected to
 * the scene's CRS feature by feature with an OGRCoordinateTransformation in
 * longitude/easting-first order (what ogr2ogr -t_srs does: vertices are
 * transformed, edges are not densified), then burnt with
 * GDALRasterizeGeometries and ALL_TOUCHED=FALSE (what gdal_rasterize does
 * without -at): a pixel takes a polygon's class when its centre lies inside,
 * otherwise 0 (background); where polygons overlap the later feature wins.
 * With a class field, a feature of class 0 carves background out of the
 * features before it (GLIMS's internal rock inside its glacier) and one of
 * class 255 marks pixels as not labelled (an area nobody mapped).
 * Each mask is a tiled DEFLATE Byte GeoTIFF in /vsimem/ (nodata 255), so
 * memory is the compressed mask plus GDAL's block cache.
 */
#include "train.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <gdal_alg.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A scene's grid: what the mask must match. */
typedef struct grid {
    int w, h;
    double gt[6];
    OGRSpatialReferenceH srs; /* owned; longitude/easting first */
    double env[4];            /* minx, miny, maxx, maxy in the scene CRS */
} grid;

/* The reprojected outlines to burn on one scene, and their classes. */
typedef struct burn {
    OGRGeometryH *geom;
    double *val;
    int n, cap;
} burn;

static void burn_clear(burn *b)
{
    for (int i = 0; i < b->n; i++) OGR_G_DestroyGeometry(b->geom[i]);
    b->n = 0;
}

static gseg_status burn_add(burn *b, OGRGeometryH g, double v)
{
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 256;
        OGRGeometryH *ng = realloc(b->geom, (size_t)cap * sizeof *ng);
        if (ng) b->geom = ng;
        double *nv = ng ? realloc(b->val, (size_t)cap * sizeof *nv) : NULL;
        if (!nv) {
            OGR_G_DestroyGeometry(g);
            return gseg__err(GSEG_ERR_NOMEM, "out of memory");
        }
        b->val = nv;
        b->cap = cap;
    }
    b->geom[b->n] = g;
    b->val[b->n++] = v;
    return GSEG_OK;
}

static void grid_free(grid *g)
{
    if (g->srs) OSRDestroySpatialReference(g->srs);
    g->srs = NULL;
}

/* Reads the grid of a scene; refuses scenes that cannot be placed. */
static gseg_status grid_read(const char *image, grid *g)
{
    memset(g, 0, sizeof *g);
    GDALDatasetH ds = GDALOpenEx(image, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    if (!ds) return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot open", image);
    gseg_status st = GSEG_OK;
    OGRSpatialReferenceH srs = GDALGetSpatialRef(ds);
    g->w = GDALGetRasterXSize(ds);
    g->h = GDALGetRasterYSize(ds);
    if (GDALGetGeoTransform(ds, g->gt) != CE_None)
        st = gseg__err(GSEG_ERR_FORMAT,
                       "%s: no geotransform; --labels needs a scene on a georeferenced grid", image);
    else if (!srs)
        st = gseg__err(GSEG_ERR_FORMAT, "%s: no CRS; cannot place label outlines on it", image);
    else if (!(g->srs = OSRClone(srs)))
        st = gseg__err(GSEG_ERR_NOMEM, "out of memory");
    GDALClose(ds);
    if (st != GSEG_OK) return st;
    OSRSetAxisMappingStrategy(g->srs, OAMS_TRADITIONAL_GIS_ORDER);
    g->env[0] = g->env[1] = HUGE_VAL;
    g->env[2] = g->env[3] = -HUGE_VAL;
    for (int k = 0; k < 4; k++) { /* corners: the grid may be rotated */
        double px = k & 1 ? g->w : 0, py = k & 2 ? g->h : 0;
        double x = g->gt[0] + px * g->gt[1] + py * g->gt[2];
        double y = g->gt[3] + px * g->gt[4] + py * g->gt[5];
        g->env[0] = fmin(g->env[0], x), g->env[1] = fmin(g->env[1], y);
        g->env[2] = fmax(g->env[2], x), g->env[3] = fmax(g->env[3], y);
    }
    return GSEG_OK;
}

static int is_polygonal(OGRwkbGeometryType t)
{
    t = wkbFlatten(t);
    return OGR_GT_IsSubClassOf(t, wkbCurvePolygon) || OGR_GT_IsSubClassOf(t, wkbMultiSurface);
}

/* The polygons of a geometry collection (what ST_MakeValid makes of many
 * invalid outlines: polygons with stray lines or points), as one
 * multipolygon; NULL if it holds none. */
static OGRGeometryH collection_polygons(OGRGeometryH gc)
{
    OGRGeometryH mp = OGR_G_CreateGeometry(wkbMultiPolygon);
    for (int i = 0; mp && i < OGR_G_GetGeometryCount(gc); i++) {
        OGRGeometryH sub = OGR_G_GetGeometryRef(gc, i);
        OGRwkbGeometryType t = wkbFlatten(OGR_G_GetGeometryType(sub));
        OGRGeometryH part = NULL;
        if (t == wkbGeometryCollection) part = collection_polygons(sub);
        else if (is_polygonal(t))
            part = OGR_G_ForceToMultiPolygon(OGR_G_HasCurveGeometry(sub, 0)
                                                 ? OGR_G_GetLinearGeometry(sub, 0, NULL)
                                                 : OGR_G_Clone(sub));
        for (int k = 0; part && k < OGR_G_GetGeometryCount(part); k++)
            OGR_G_AddGeometry(mp, OGR_G_GetGeometryRef(part, k));
        if (part) OGR_G_DestroyGeometry(part);
    }
    if (mp && OGR_G_GetGeometryCount(mp) == 0) {
        OGR_G_DestroyGeometry(mp);
        mp = NULL;
    }
    return mp;
}

/* Checks a layer once: a CRS, the class field; *fi gets the field's index
 * (-1 without field). */
static gseg_status layer_check(const char *file, OGRLayerH l, const char *field, int *fi)
{
    const char *name = OGR_L_GetName(l);
    *fi = -1;
    /* A GeoPackage's srs_id 0 / -1 ("Undefined geographic / Cartesian
     * SRS", what ogr2ogr -a_srs None writes) says as little as no CRS. */
    OGRSpatialReferenceH srs = OGR_L_GetSpatialRef(l);
    const char *sn = srs ? OSRGetName(srs) : NULL;
    if (!srs || (sn && strncmp(sn, "Undefined ", 10) == 0 && strstr(sn, " SRS")))
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s: layer %s has no CRS; assign the right one first "
                         "(ogr2ogr -a_srs EPSG:XXXX)", file, name);
    if (!field) return GSEG_OK;
    OGRFeatureDefnH fd = OGR_L_GetLayerDefn(l);
    *fi = OGR_FD_GetFieldIndex(fd, field);
    if (*fi < 0)
        return gseg__err(GSEG_ERR_ARG, "%s: layer %s has no field %s (--label-field)", file, name,
                         field);
    OGRFieldType ft = OGR_Fld_GetType(OGR_FD_GetFieldDefn(fd, *fi));
    if (ft != OFTInteger && ft != OFTInteger64 && ft != OFTReal && ft != OFTString)
        return gseg__err(GSEG_ERR_FORMAT, "%s: field %s of layer %s is not a number", file, field,
                         name);
    return GSEG_OK;
}

/* The class of a feature: 1, or its field value, an integer in 0..255. */
static gseg_status feature_class(const char *file, OGRLayerH l, OGRFeatureH f, int fi, double *v)
{
    *v = 1;
    if (fi < 0) return GSEG_OK;
    const char *field = OGR_Fld_GetNameRef(OGR_F_GetFieldDefnRef(f, fi));
    long long fid = (long long)OGR_F_GetFID(f);
    if (!OGR_F_IsFieldSetAndNotNull(f, fi))
        return gseg__err(GSEG_ERR_FORMAT, "%s: layer %s, feature %lld: no %s value", file,
                         OGR_L_GetName(l), fid, field);
    const char *s = OGR_F_GetFieldAsString(f, fi);
    char *e = NULL;
    double x = strtod(s, &e);
    while (e && *e == ' ') e++;
    if (!*s || !e || *e || x != floor(x) || x < 0 || x > 255)
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s: layer %s, feature %lld: %s = %s is not an integer in 0..255 "
                         "(0 background, 1..254 classes, 255 not labelled)",
                         file, OGR_L_GetName(l), fid, field, s);
    *v = x;
    return GSEG_OK;
}

/* Limits the layer to features near the scene (an R-tree lookup in
 * GeoPackages and indexed shapefiles): the scene's extent in the layer's
 * CRS, densified, plus a margin. No filter where that is not a plain box. */
static void layer_filter(OGRLayerH l, OGRSpatialReferenceH lsrs, const grid *g)
{
    OGRCoordinateTransformationH inv = OCTNewCoordinateTransformation(g->srs, lsrs);
    double x0, y0, x1, y1;
    CPLPushErrorHandler(CPLQuietErrorHandler);
    int ok = inv && OCTTransformBounds(inv, g->env[0], g->env[1], g->env[2], g->env[3], &x0, &y0,
                                       &x1, &y1, 21);
    CPLPopErrorHandler();
    CPLErrorReset();
    if (inv) OCTDestroyCoordinateTransformation(inv);
    if (ok && isfinite(x0) && isfinite(y0) && isfinite(x1) && isfinite(y1) && x0 <= x1 && y0 <= y1) {
        double mx = 0.01 * (x1 - x0), my = 0.01 * (y1 - y0);
        OGR_L_SetSpatialFilterRect(l, x0 - mx, y0 - my, x1 + mx, y1 + my);
    } else {
        OGR_L_SetSpatialFilter(l, NULL);
    }
}

/* Reprojects the features of layer l that reach the scene into b. */
static gseg_status collect(const char *file, OGRLayerH l, int fi, const grid *g, burn *b)
{
    OGRSpatialReferenceH lsrs = OSRClone(OGR_L_GetSpatialRef(l));
    if (!lsrs) return gseg__err(GSEG_ERR_NOMEM, "out of memory");
    OSRSetAxisMappingStrategy(lsrs, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(lsrs, g->srs);
    gseg_status st = GSEG_OK;
    if (!ct)
        st = gseg__gdal_err(GSEG_ERR_FORMAT, "%s: layer %s: no transformation to the scene's CRS",
                            file, OGR_L_GetName(l));
    if (st == GSEG_OK) layer_filter(l, lsrs, g);
    OGR_L_ResetReading(l);
    OGRFeatureH f;
    while (st == GSEG_OK && (f = OGR_L_GetNextFeature(l)) != NULL) {
        OGRGeometryH geom = OGR_F_GetGeometryRef(f), own = NULL;
        double v;
        if (geom && wkbFlatten(OGR_G_GetGeometryType(geom)) == wkbGeometryCollection)
            geom = own = collection_polygons(geom); /* its polygons; none: nothing to burn */
        if (!geom || OGR_G_IsEmpty(geom)) {
            if (own) OGR_G_DestroyGeometry(own);
            OGR_F_Destroy(f);
            continue;
        }
        if (!is_polygonal(OGR_G_GetGeometryType(geom))) {
            st = gseg__err(GSEG_ERR_FORMAT, "%s: layer %s, feature %lld is a %s, not a polygon",
                           file, OGR_L_GetName(l), (long long)OGR_F_GetFID(f),
                           OGR_G_GetGeometryName(geom));
        } else if ((st = feature_class(file, l, f, fi, &v)) == GSEG_OK) {
            OGRGeometryH c = OGR_G_HasCurveGeometry(geom, 0) ? OGR_G_GetLinearGeometry(geom, 0, NULL)
                                                             : OGR_G_Clone(geom);
            OGREnvelope e;
            if (!c || OGR_G_Transform(c, ct) != OGRERR_NONE) {
                st = gseg__gdal_err(GSEG_ERR_FORMAT,
                                    "%s: layer %s, feature %lld: cannot reproject to the scene's CRS",
                                    file, OGR_L_GetName(l), (long long)OGR_F_GetFID(f));
                if (c) OGR_G_DestroyGeometry(c);
            } else if (OGR_G_GetEnvelope(c, &e), e.MaxX < g->env[0] || e.MinX > g->env[2] ||
                                                     e.MaxY < g->env[1] || e.MinY > g->env[3]) {
                OGR_G_DestroyGeometry(c); /* off the scene */
            } else {
                st = burn_add(b, c, v);
            }
        }
        if (own) OGR_G_DestroyGeometry(own);
        OGR_F_Destroy(f);
    }
    OGR_L_SetSpatialFilter(l, NULL);
    if (ct) OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(lsrs);
    return st;
}

/* Writes the mask at path: the scene's grid, 0 everywhere, b burnt in. */
static gseg_status rasterize(const char *path, const grid *g, const burn *b)
{
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    char **co = CSLSetNameValue(NULL, "TILED", "YES");
    co = CSLSetNameValue(co, "COMPRESS", "DEFLATE");
    GDALDatasetH ds = drv ? GDALCreate(drv, path, g->w, g->h, 1, GDT_Byte, co) : NULL;
    CSLDestroy(co);
    if (!ds) return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot create", path);
    GDALRasterBandH band = GDALGetRasterBand(ds, 1);
    gseg_status st = GSEG_OK;
    if (GDALSetGeoTransform(ds, (double *)g->gt) != CE_None || GDALSetSpatialRef(ds, g->srs) != CE_None ||
        GDALFillRaster(band, 0, 0) != CE_None || GDALSetRasterNoDataValue(band, 255) != CE_None)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write", path);
    if (st == GSEG_OK && b->n) {
        int one = 1;
        char **ro = CSLSetNameValue(NULL, "ALL_TOUCHED", "FALSE");
        if (GDALRasterizeGeometries(ds, 1, &one, b->n, b->geom, NULL, NULL, b->val, ro, NULL,
                                    NULL) != CE_None)
            st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot burn the outlines", path);
        CSLDestroy(ro);
    }
    GDALClose(ds);
    if (st == GSEG_OK && CPLGetLastErrorType() == CE_Failure)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write", path);
    return st;
}

/* Burns the outlines of every checked layer onto scene s. */
static gseg_status label_scene(gseg__tdata *d, int i, const char *labels, OGRLayerH *layers,
                               const int *fields, int nl, burn *b)
{
    gseg__tscene *s = &d->scenes[i];
    grid g;
    gseg_status st = grid_read(s->image, &g);
    for (int k = 0; k < nl && st == GSEG_OK; k++) st = collect(labels, layers[k], fields[k], &g, b);
    char path[1200];
    snprintf(path, sizeof path, "/vsimem/gseg_labels/%p_%d/%s.tif", (void *)d, i,
             CPLGetBasename(s->image));
    CPLErrorReset();
    if (st == GSEG_OK) st = rasterize(path, &g, b);
    if (st == GSEG_OK && b->n == 0) {
        CPLError(CE_Warning, CPLE_AppDefined,
                 "%s: no outline of %s overlaps this scene; its mask is all background",
                 s->image, labels);
        CPLErrorReset();
    }
    if (st == GSEG_OK) {
        char *m = gseg__strdup(path);
        if (!m) st = GSEG_ERR_NOMEM;
        else {
            free(s->mask);
            s->mask = m;
            s->mask_is_mem = 1;
        }
    }
    if (st != GSEG_OK) VSIUnlink(path);
    burn_clear(b);
    grid_free(&g);
    return st;
}

/* The polygon layers of src, each checked. Layers of points or lines (as in
 * GLIMS downloads) are skipped with a warning; tables without geometry
 * (a GeoPackage's layer_styles, attribute tables) silently. */
static gseg_status pick_layers(const char *labels, GDALDatasetH src, const char *field,
                               OGRLayerH *layers, int *fields, int *nl)
{
    int n = GDALDatasetGetLayerCount(src);
    *nl = 0;
    for (int k = 0; k < n; k++) {
        OGRLayerH l = GDALDatasetGetLayer(src, k);
        OGRwkbGeometryType t = wkbFlatten(OGR_L_GetGeomType(l));
        if (t == wkbNone) continue;
        if (t != wkbUnknown && t != wkbGeometryCollection && !is_polygonal(t)) {
            CPLError(CE_Warning, CPLE_AppDefined, "%s: layer %s holds %s geometries: ignored",
                     labels, OGR_L_GetName(l), OGRGeometryTypeToName(t));
            CPLErrorReset();
            continue;
        }
        int fi;
        gseg_status st = layer_check(labels, l, field, &fi);
        if (st != GSEG_OK) return st;
        layers[*nl] = l;
        fields[(*nl)++] = fi;
    }
    if (*nl == 0) return gseg__err(GSEG_ERR_FORMAT, "%s: no polygon layer", labels);
    return GSEG_OK;
}

/* Opens label outlines: a file, folder or VSI path; an archive is read in
 * place, at its root or, if that is no vector source, at the folder its
 * root leads to. */
static GDALDatasetH open_outlines(const char *labels)
{
    const unsigned flags = GDAL_OF_VECTOR | GDAL_OF_READONLY;
    char *path = gseg__tdata_vsi_path(labels);
    if (!path) return NULL;
    int archive = strcmp(path, labels) != 0 && strncmp(path, "/vsi", 4) == 0;
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDatasetH ds = archive ? GDALOpenEx(path, flags, NULL, NULL, NULL) : NULL;
    for (char *sub; archive && !ds && (sub = gseg__tdata_sole_folder(path)) != NULL;) {
        free(path);
        path = sub;
        ds = GDALOpenEx(path, flags, NULL, NULL, NULL);
    }
    CPLPopErrorHandler();
    CPLErrorReset();
    if (!ds) ds = GDALOpenEx(archive ? path : labels, flags | GDAL_OF_VERBOSE_ERROR, NULL, NULL, NULL);
    free(path);
    return ds;
}

gseg_status gseg__tdata_labels(gseg__tdata *d, const char *labels, const char *field)
{
    if (!labels || !*labels) return gseg__err(GSEG_ERR_ARG, "no label outlines given (--labels FILE)");
    if (field && !*field) return gseg__err(GSEG_ERR_ARG, "%s: empty --label-field", labels);
    free(d->labels);
    d->labels = gseg__strdup(labels);
    GDALDatasetH src = open_outlines(labels);
    if (!src)
        return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot open label outlines (any OGR vector format)",
                              labels);
    int nlayers = GDALDatasetGetLayerCount(src), nl = 0;
    OGRLayerH *layers = gseg__calloc((size_t)nlayers + 1, sizeof *layers);
    int *fields = gseg__calloc((size_t)nlayers + 1, sizeof *fields);
    gseg_status st = layers && fields ? GSEG_OK : GSEG_ERR_NOMEM;
    if (st == GSEG_OK) st = pick_layers(labels, src, field, layers, fields, &nl);
    /* Labels replace masks found in masks/ folders: say so once. */
    int had = 0;
    for (int i = 0; i < d->n; i++) had += d->scenes[i].mask && !d->scenes[i].mask_is_mem;
    if (st == GSEG_OK && had) {
        CPLError(CE_Warning, CPLE_AppDefined,
                 "%d scene(s) have masks (masks/ folder) which are ignored: labels come from %s",
                 had, labels);
        CPLErrorReset();
    }
    burn b = {0};
    for (int i = 0; i < d->n && st == GSEG_OK; i++)
        st = label_scene(d, i, labels, layers, fields, nl, &b);
    free(b.geom);
    free(b.val);
    free(layers);
    free(fields);
    GDALClose(src);
    return st;
}
