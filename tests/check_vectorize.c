/*
 * check_vectorize.c — gseg_vectorize: polygons, geodesic areas, MMU,
 * simplification, classes, reprojection, formats, atomicity, and the
 * default QGIS style of GeoPackage outputs (table layer_styles).
 *
 * References are independent of the code under test: UTM areas from the
 * transverse Mercator point scale factor (true area = projected area / k²),
 * geographic cells from the closed-form area of an ellipsoidal zone, and
 * GDAL's own ogrinfo for the output schema.
 */
#include "internal.h" /* gseg__simplify_batch */
#include "testutil.h"

#include <cpl_conv.h>
#include <cpl_minixml.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WGS84_A 6378137.0
#define WGS84_F (1 / 298.257223563)
#define UTM_K0 0.9996
#define PX 30.0

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* Writes a one-band GeoTIFF mask. epsg 0 = no CRS. */
static void write_mask_typed(const char *path, int w, int h, const void *data, GDALDataType t,
                             int epsg, const double gt[6], int has_nd, double nd)
{
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    GDALDatasetH ds = GDALCreate(drv, path, w, h, 1, t, NULL);
    ck_assert_msg(ds != NULL, "cannot create %s", path);
    GDALSetGeoTransform(ds, (double *)gt);
    if (epsg) {
        OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
        ck_assert_int_eq(OSRImportFromEPSG(srs, epsg), OGRERR_NONE);
        GDALSetSpatialRef(ds, srs);
        OSRRelease(srs);
    }
    GDALRasterBandH b = GDALGetRasterBand(ds, 1);
    if (has_nd) GDALSetRasterNoDataValue(b, nd);
    ck_assert_int_eq(GDALRasterIO(b, GF_Write, 0, 0, w, h, (void *)data, w, h, t, 0, 0), CE_None);
    GDALClose(ds);
}

static void write_mask(const char *path, int w, int h, const uint8_t *data, int epsg,
                       const double gt[6], int has_nd, double nd)
{
    write_mask_typed(path, w, h, data, GDT_Byte, epsg, gt, has_nd, nd);
}

/* UTM 43N (central meridian 75°E), about 34°N; x0 = easting of the left edge. */
static void utm_gt(double gt[6], double x0)
{
    gt[0] = x0; gt[1] = PX; gt[2] = 0;
    gt[3] = 3800000; gt[4] = 0; gt[5] = -PX;
}

/* Transverse Mercator point scale factor at easting offset E from the
 * central meridian (R² ~ M·N ~ 6371 km², error << 1e-5 here). */
static double utm_k(double e_off)
{
    const double r = 6371000.0;
    return UTM_K0 * (1 + e_off * e_off / (2 * UTM_K0 * UTM_K0 * r * r));
}

/* Area in km² of a zone between two parallels spanning dlon degrees on
 * WGS84 (closed form via the authalic function q). */
static double zone_area_km2(double lat1, double lat2, double dlon)
{
    double e2 = WGS84_F * (2 - WGS84_F), e = sqrt(e2);
    double q[2];
    for (int i = 0; i < 2; i++) {
        double s = sin((i ? lat2 : lat1) * M_PI / 180);
        q[i] = (1 - e2) * (s / (1 - e2 * s * s) - 1 / (2 * e) * log((1 - e * s) / (1 + e * s)));
    }
    return WGS84_A * WGS84_A / 2 * dlon * M_PI / 180 * fabs(q[1] - q[0]) / 1e6;
}

typedef struct feat {
    long long id;
    int cls;
    char name[64];
    char source[64];
    int area_null, source_null;
    double area, perim;
    int nrings, npoints, valid;
    OGREnvelope env;
} feat;

/* Reads every feature of the output's only layer (GeoPackage: beside the
 * table layer_styles); returns the count. Checks that ids run 1..n in
 * order. */
static int read_features(const char *path, feat *out, int max, char *drv_name, char *srs_code)
{
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_VECTOR, NULL, NULL, NULL);
    ck_assert_msg(ds != NULL, "cannot open %s", path);
    const char *drv = GDALGetDriverShortName(GDALGetDatasetDriver(ds));
    if (drv_name) strcpy(drv_name, drv);
    int gpkg = strcmp(drv, "GPKG") == 0;
    ck_assert_int_eq(GDALDatasetGetLayerCount(ds), gpkg ? 2 : 1);
    if (gpkg) ck_assert_ptr_nonnull(GDALDatasetGetLayerByName(ds, "layer_styles"));
    OGRLayerH l = GDALDatasetGetLayer(ds, 0);
    if (gpkg && strcmp(OGR_L_GetName(l), "layer_styles") == 0) l = GDALDatasetGetLayer(ds, 1);
    if (srs_code) {
        OGRSpatialReferenceH s = OGR_L_GetSpatialRef(l);
        const char *c = s ? OSRGetAuthorityCode(s, NULL) : NULL;
        strcpy(srs_code, c ? c : "");
    }
    OGRFeatureDefnH d = OGR_L_GetLayerDefn(l);
    int fi[7];
    const char *names[7] = {"id", "class", "class_name", "area_km2", "perimeter_km", "source"};
    for (int i = 0; i < 6; i++) {
        fi[i] = OGR_FD_GetFieldIndex(d, names[i]);
        if (fi[i] < 0 && i == 4) fi[i] = OGR_FD_GetFieldIndex(d, "perimeter_"); /* Shapefile */
        ck_assert_msg(fi[i] >= 0, "%s: no field %s", path, names[i]);
    }
    int n = 0;
    OGRFeatureH f;
    while ((f = OGR_L_GetNextFeature(l)) != NULL) {
        ck_assert_int_lt(n, max);
        feat *o = &out[n];
        memset(o, 0, sizeof *o);
        o->id = OGR_F_GetFieldAsInteger64(f, fi[0]);
        ck_assert_int_eq(o->id, n + 1);
        o->cls = OGR_F_GetFieldAsInteger(f, fi[1]);
        snprintf(o->name, sizeof o->name, "%s", OGR_F_GetFieldAsString(f, fi[2]));
        o->area_null = !OGR_F_IsFieldSetAndNotNull(f, fi[3]);
        o->area = OGR_F_GetFieldAsDouble(f, fi[3]);
        o->perim = OGR_F_GetFieldAsDouble(f, fi[4]);
        o->source_null = !OGR_F_IsFieldSetAndNotNull(f, fi[5]);
        snprintf(o->source, sizeof o->source, "%s", OGR_F_GetFieldAsString(f, fi[5]));
        OGRGeometryH g = OGR_F_GetGeometryRef(f);
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(wkbFlatten(OGR_G_GetGeometryType(g)), wkbPolygon);
        o->nrings = OGR_G_GetGeometryCount(g);
        for (int r = 0; r < o->nrings; r++)
            o->npoints += OGR_G_GetPointCount(OGR_G_GetGeometryRef(g, r));
        o->valid = OGR_G_IsValid(g);
        OGR_G_GetEnvelope(g, &o->env);
        OGR_F_Destroy(f);
        n++;
    }
    GDALClose(ds);
    return n;
}

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

/* Number of directory entries other than . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void rel_close(double got, double want, double rel, const char *what)
{
    ck_assert_msg(fabs(got - want) <= rel * fabs(want), "%s: got %.9g, expected %.9g (±%g %%)",
                  what, got, want, rel * 100);
}

/* A square of side px pixels at (x0, y0) in a w×h mask. */
static void fill_rect(uint8_t *m, int w, int x0, int y0, int sw, int sh, uint8_t v)
{
    for (int y = y0; y < y0 + sh; y++)
        for (int x = x0; x < x0 + sw; x++) m[(size_t)y * w + x] = v;
}

/* A disc; returns its pixel count. */
static int fill_disc(uint8_t *m, int w, int h, double cx, double cy, double r, uint8_t v)
{
    int n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (hypot(x + 0.5 - cx, y + 0.5 - cy) <= r) {
                m[(size_t)y * w + x] = v;
                n++;
            }
    return n;
}

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

/* ------------------------------------------------------------------------ */
/* Geodesic areas                                                           */

/* A 100×100-pixel square on the central meridian and one 200 km east of
 * it: areas follow 1/k², which a planar computation (9 km² for both) misses. */
START_TEST(test_square_utm)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_square");
    double offs[2] = {0, 200000};
    for (int i = 0; i < 2; i++) {
        int w = 200, h = 200;
        uint8_t *m = calloc((size_t)w * h, 1);
        fill_rect(m, w, 50, 50, 100, 100, 1);
        double gt[6];
        /* Square centre at easting 500000 + off. */
        utm_gt(gt, 500000 + offs[i] - 100 * PX);
        char *mask = path_in(dir, i ? "sq_east.tif" : "sq_cm.tif");
        char *out = path_in(dir, i ? "sq_east.gpkg" : "sq_cm.gpkg");
        write_mask(mask, w, h, m, 32643, gt, 0, 0);
        gseg_vectorize_stats st;
        ck_gseg(gseg_vectorize(mask, out, NULL, NULL, NULL, &st));
        feat f[4];
        ck_assert_int_eq(read_features(out, f, 4, NULL, NULL), 1);
        ck_assert_int_eq(st.polygons, 1);
        ck_assert_int_eq(st.dropped, 0);
        /* Integrate 1/k² across the 100 pixel columns; horizontal edges
         * likewise, vertical edges at their own easting. */
        double want = 0, want_perim = 0;
        for (int c = 0; c < 100; c++) {
            double e = offs[i] + (c - 50 + 0.5) * PX;
            want += 100 * PX * PX / (utm_k(e) * utm_k(e));
            want_perim += 2 * PX / utm_k(e);
        }
        want_perim += 100 * PX / utm_k(offs[i] - 50 * PX) + 100 * PX / utm_k(offs[i] + 50 * PX);
        rel_close(f[0].area, want / 1e6, 1e-4, "square area");
        rel_close(st.area_km2, want / 1e6, 1e-4, "stats area");
        rel_close(f[0].perim, want_perim / 1e3, 2e-4, "square perimeter");
        ck_assert_int_eq(f[0].cls, 1);
        ck_assert_str_eq(f[0].name, "glacier");
        ck_assert(f[0].source_null);
        /* Not planar: 9 km² would be 0.08 % (on the meridian) off. */
        ck_assert(fabs(f[0].area - 9.0) > 5e-4);
        free(m);
        free(mask);
        free(out);
    }
    free(dir);
}
END_TEST

START_TEST(test_disc_utm)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_disc");
    int w = 240, h = 240;
    uint8_t *m = calloc((size_t)w * h, 1);
    int n = fill_disc(m, w, h, 120, 120, 100, 1);
    double gt[6];
    utm_gt(gt, 500000 - 120 * PX);
    char *mask = path_in(dir, "disc.tif"), *out = path_in(dir, "disc.gpkg");
    write_mask(mask, w, h, m, 32643, gt, 0, 0);
    ck_gseg(gseg_vectorize(mask, out, NULL, NULL, NULL, NULL));
    feat f[2];
    ck_assert_int_eq(read_features(out, f, 2, NULL, NULL), 1);
    rel_close(f[0].area, n * PX * PX / (UTM_K0 * UTM_K0) / 1e6, 1e-4, "disc area");
    ck_assert_int_eq(f[0].nrings, 1);
    ck_assert(f[0].valid);
    free(m);
    free(mask);
    free(out);
    free(dir);
}
END_TEST

/* Cells bounded by parallels and meridians in EPSG:4326: 1°×1° at the
 * equator (~12 308 km²) and at 60°N, and 10°×1° at 70°N, where the
 * geodesic between the corners strays ~8 km poleward of the parallel (an
 * undensified outline would be ~0.4 % off). */
START_TEST(test_geographic_cell)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_geo");
    const struct { double lat0, dlon, px; } cases[] = {{0, 1, 0.01}, {60, 1, 0.01}, {70, 10, 0.1}};
    for (int i = 0; i < 3; i++) {
        int nc = (int)lround(cases[i].dlon / cases[i].px), nr = (int)lround(1 / cases[i].px);
        int w = nc + 20, h = nr + 20;
        double px = cases[i].px, lat0 = cases[i].lat0;
        uint8_t *m = calloc((size_t)w * h, 1);
        fill_rect(m, w, 10, 10, nc, nr, 1);
        double gt[6] = {75 - 10 * px, px, 0, lat0 + 1 + 10 * px, 0, -px};
        char name[64];
        snprintf(name, sizeof name, "geo%d.tif", i);
        char *mask = path_in(dir, name);
        snprintf(name, sizeof name, "geo%d.gpkg", i);
        char *out = path_in(dir, name);
        write_mask(mask, w, h, m, 4326, gt, 0, 0);
        ck_gseg(gseg_vectorize(mask, out, NULL, NULL, NULL, NULL));
        feat f[2];
        char code[32];
        ck_assert_int_eq(read_features(out, f, 2, NULL, code), 1);
        ck_assert_str_eq(code, "4326");
        double want = zone_area_km2(lat0, lat0 + 1, cases[i].dlon);
        rel_close(f[0].area, want, 2e-4, "cell area");
        if (i == 0) rel_close(f[0].area, 12308, 0.01, "equatorial 1° cell");
        /* Perimeter: two meridian arcs (M at mid-latitude) and two parallel
         * arcs (N cos φ). */
        double e2 = WGS84_F * (2 - WGS84_F), r1 = M_PI / 180, par = 0;
        for (int k = 0; k < 2; k++) {
            double s = sin((lat0 + k) * r1);
            par += WGS84_A / sqrt(1 - e2 * s * s) * cos((lat0 + k) * r1) * cases[i].dlon * r1;
        }
        double sm = sin((lat0 + 0.5) * r1);
        double mer = 2 * WGS84_A * (1 - e2) / pow(1 - e2 * sm * sm, 1.5) * r1;
        rel_close(f[0].perim, (par + mer) / 1e3, 1e-4, "cell perimeter");
        free(m);
        free(mask);
        free(out);
    }
    free(dir);
}
END_TEST

/* A ring-shaped glacier keeps its nunatak as a hole: area = outer − hole. */
START_TEST(test_ring_hole)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_ring");
    int w = 100, h = 100;
    uint8_t *m = calloc((size_t)w * h, 1);
    fill_rect(m, w, 20, 20, 60, 60, 1);
    fill_rect(m, w, 40, 40, 20, 20, 0);
    double gt[6];
    utm_gt(gt, 500000 - 50 * PX);
    char *mask = path_in(dir, "ring.tif"), *out = path_in(dir, "ring.gpkg");
    write_mask(mask, w, h, m, 32643, gt, 0, 0);
    ck_gseg(gseg_vectorize(mask, out, NULL, NULL, NULL, NULL));
    feat f[2];
    ck_assert_int_eq(read_features(out, f, 2, NULL, NULL), 1);
    ck_assert_int_eq(f[0].nrings, 2);
    ck_assert(f[0].valid);
    rel_close(f[0].area, (3600 - 400) * PX * PX / (UTM_K0 * UTM_K0) / 1e6, 1e-4, "ring area");
    rel_close(f[0].perim, (240 + 80) * PX / UTM_K0 / 1e3, 1e-4, "ring perimeter");
    free(m);
    free(mask);
    free(out);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Minimum mapping unit                                                     */

static void write_blobs(const char *mask, int epsg)
{
    int w = 100, h = 60;
    uint8_t *m = calloc((size_t)w * h, 1);
    fill_rect(m, w, 2, 2, 20, 20, 1);  /* 0.36 km² */
    fill_rect(m, w, 30, 2, 4, 4, 1);   /* 0.0144 km²: kept */
    fill_rect(m, w, 40, 2, 3, 3, 1);   /* 0.0081 km²: dropped */
    fill_rect(m, w, 50, 2, 2, 2, 1);   /* 0.0036 km² */
    fill_rect(m, w, 60, 2, 1, 1, 1);   /* 0.0009 km² */
    double gt[6];
    utm_gt(gt, 500000 - 50 * PX);
    write_mask(mask, w, h, m, epsg, gt, 0, 0);
    free(m);
}

START_TEST(test_mmu)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_mmu");
    char *mask = path_in(dir, "blobs.tif"), *out = path_in(dir, "blobs.gpkg");
    write_blobs(mask, 32643);

    gseg_vectorize_stats st;
    ck_gseg(gseg_vectorize(mask, out, NULL, NULL, NULL, &st));
    feat f[8];
    int n = read_features(out, f, 8, NULL, NULL);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(st.polygons, 2);
    ck_assert_int_eq(st.dropped, 3);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_double_ge(f[i].area, 0.01);
        sum += f[i].area;
    }
    rel_close(st.area_km2, sum, 1e-9, "stats area = sum of features");

    gseg_vectorize_params p = gseg_vectorize_params_default();
    p.min_area_km2 = 0.005;
    ck_gseg(gseg_vectorize(mask, out, &p, NULL, NULL, &st));
    ck_assert_int_eq(read_features(out, f, 8, NULL, NULL), 3); /* overwritten, not appended */
    ck_assert_int_eq(st.dropped, 2);

    p.min_area_km2 = 0;
    ck_gseg(gseg_vectorize(mask, out, &p, NULL, NULL, &st));
    ck_assert_int_eq(read_features(out, f, 8, NULL, NULL), 5);
    ck_assert_int_eq(st.polygons, 5);
    ck_assert_int_eq(st.dropped, 0);
    free(mask);
    free(out);
    free(dir);
}
END_TEST

/* Without CRS: areas NULL, no MMU, total area unknown (NaN). */
START_TEST(test_no_crs)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_nocrs");
    char *mask = path_in(dir, "blobs.tif"), *out = path_in(dir, "blobs.gpkg");
    write_blobs(mask, 0);
    gseg_vectorize_stats st;
    ck_gseg(gseg_vectorize(mask, out, NULL, NULL, NULL, &st));
    feat f[8];
    char code[32];
    ck_assert_int_eq(read_features(out, f, 8, NULL, code), 5);
    ck_assert_str_eq(code, "");
    for (int i = 0; i < 5; i++) ck_assert(f[i].area_null);
    ck_assert_int_eq(st.polygons, 5);
    ck_assert_int_eq(st.dropped, 0);
    ck_assert(isnan(st.area_km2));
    free(mask);
    free(out);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Simplification                                                           */

static void simplify_case(const char *dir, int epsg, const double gt[6], double tol)
{
    int w = 240, h = 240;
    uint8_t *m = calloc((size_t)w * h, 1);
    fill_disc(m, w, h, 120, 120, 100, 1);
    fill_disc(m, w, h, 120, 120, 30, 0); /* a nunatak */
    char *mask = path_in(dir, "disc.tif"), *out0 = path_in(dir, "full.gpkg"),
         *out1 = path_in(dir, "simple.gpkg");
    write_mask(mask, w, h, m, epsg, gt, 0, 0);
    ck_gseg(gseg_vectorize(mask, out0, NULL, NULL, NULL, NULL));
    gseg_vectorize_params p = gseg_vectorize_params_default();
    p.simplify_m = tol;
    ck_gseg(gseg_vectorize(mask, out1, &p, NULL, NULL, NULL));
    feat a[2], b[2];
    ck_assert_int_eq(read_features(out0, a, 2, NULL, NULL), 1);
    ck_assert_int_eq(read_features(out1, b, 2, NULL, NULL), 1);
    ck_assert_msg(b[0].npoints * 2 < a[0].npoints, "vertices %d -> %d", a[0].npoints,
                  b[0].npoints);
    ck_assert(b[0].valid);
    ck_assert_int_eq(b[0].nrings, 2);
    rel_close(b[0].area, a[0].area, 0.01, "simplified area");
    ck_assert(b[0].area != a[0].area);
    free(m);
    free(mask);
    free(out0);
    free(out1);
}

START_TEST(test_simplify_utm)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_simplify");
    double gt[6];
    utm_gt(gt, 500000 - 120 * PX);
    simplify_case(dir, 32643, gt, 30);
    free(dir);
}
END_TEST

/* In EPSG:4326 the tolerance is converted to degrees: 30 m taken as 30°
 * would collapse the outline. */
START_TEST(test_simplify_geographic)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_simplify_geo");
    double gt[6] = {75.0, 0.0005, 0, 61.0, 0, -0.0005}; /* ~27 m × 56 m at 60.9°N */
    simplify_case(dir, 4326, gt, 60);
    free(dir);
}
END_TEST

/* Topology under simplification. A mask built to break it: chains of
 * rough squares touching at corners (4-connected polygons of one class),
 * four polygons of two classes meeting at one corner, a glacier with
 * nunataks one pixel inside its margin and an island in a hole, two
 * classes sharing a long ragged edge with islands of each in the other,
 * and small polygons in a bay a large tolerance would cut across. */

#define TOPO_W 160
#define TOPO_H 160

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Background notches along the edges of a square, corners kept. */
static void rough_square(uint8_t *m, int x0, int y0, int side, uint8_t v, uint32_t *rng)
{
    fill_rect(m, TOPO_W, x0, y0, side, side, v);
    for (int i = 1; i < side - 1; i++) {
        if (lcg(rng) % 3 == 0) m[(size_t)y0 * TOPO_W + x0 + i] = 0;
        if (lcg(rng) % 3 == 0) m[(size_t)(y0 + side - 1) * TOPO_W + x0 + i] = 0;
        if (lcg(rng) % 3 == 0) m[(size_t)(y0 + i) * TOPO_W + x0] = 0;
        if (lcg(rng) % 3 == 0) m[(size_t)(y0 + i) * TOPO_W + x0 + side - 1] = 0;
    }
}

static uint8_t *topology_mask(void)
{
    uint8_t *m = calloc((size_t)TOPO_W * TOPO_H, 1);
    uint32_t rng = 12345;
    /* Two chains of squares touching at corners, of classes 1 and 2 (the
     * second ends on the first's fifth square). */
    for (int k = 0; k < 6; k++) rough_square(m, 4 + 8 * k, 4 + 8 * k, 8, 1, &rng);
    for (int k = 0; k < 5; k++) rough_square(m, 4 + 8 * k, 68 - 8 * k, 8, 2, &rng);
    /* Four polygons, two classes, one corner. */
    fill_rect(m, TOPO_W, 60, 4, 3, 3, 1);
    fill_rect(m, TOPO_W, 63, 7, 3, 3, 1);
    fill_rect(m, TOPO_W, 63, 4, 3, 3, 2);
    fill_rect(m, TOPO_W, 60, 7, 3, 3, 2);
    /* A ragged glacier, nunataks just inside its margin, an island of each
     * class in a hole. */
    fill_disc(m, TOPO_W, TOPO_H, 115, 40, 32, 1);
    for (int y = 0; y < 80; y++)
        for (int x = 80; x < TOPO_W; x++)
            if (lcg(&rng) % 5 == 0 && hypot(x + 0.5 - 115, y + 0.5 - 40) > 29)
                m[y * TOPO_W + x] = 0;
    for (int a = 0; a < 12; a++) {
        int x = (int)lround(115 + 28 * cos(a * M_PI / 6));
        int y = (int)lround(40 + 28 * sin(a * M_PI / 6));
        fill_rect(m, TOPO_W, x - 1, y - 1, 2, 2, 0);
    }
    fill_rect(m, TOPO_W, 105, 30, 20, 20, 0);
    fill_rect(m, TOPO_W, 110, 35, 4, 4, 1);
    fill_rect(m, TOPO_W, 117, 40, 4, 4, 2);
    /* Two classes along a ragged edge, islands of each in the other; the
     * edge's ends meet the background (three regions at a corner). */
    int b = 40;
    for (int y = 90; y < 150; y++) {
        b += (int)(lcg(&rng) % 5) - 2;
        b = b < 25 ? 25 : b > 55 ? 55 : b;
        for (int x = 10; x < 70; x++) m[y * TOPO_W + x] = x < b ? 1 : 2;
    }
    fill_rect(m, TOPO_W, 14, 100, 3, 3, 2);
    fill_rect(m, TOPO_W, 15, 130, 2, 4, 2);
    fill_rect(m, TOPO_W, 64, 120, 3, 3, 1);
    /* A ragged block with a bay, small polygons in the bay. */
    fill_rect(m, TOPO_W, 90, 100, 60, 50, 1);
    fill_rect(m, TOPO_W, 105, 100, 30, 8, 0);
    for (int x = 90; x < 150; x++)
        if (lcg(&rng) % 2) m[149 * TOPO_W + x] = 0;
    fill_rect(m, TOPO_W, 118, 102, 2, 2, 1);
    fill_rect(m, TOPO_W, 126, 101, 2, 3, 2);
    fill_rect(m, TOPO_W, 110, 100, 1, 1, 1);
    return m;
}

typedef struct outlines {
    int n;
    OGRGeometryH g[512];
    int cls[512];
} outlines;

static void read_outlines(const char *path, outlines *o)
{
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_VECTOR, NULL, NULL, NULL);
    ck_assert_msg(ds != NULL, "cannot open %s", path);
    OGRLayerH l = GDALDatasetGetLayerByName(ds, "glaciers");
    ck_assert_ptr_nonnull(l);
    o->n = 0;
    OGRFeatureH f;
    while ((f = OGR_L_GetNextFeature(l)) != NULL) {
        ck_assert_int_lt(o->n, 512);
        o->cls[o->n] = OGR_F_GetFieldAsInteger(f, OGR_F_GetFieldIndex(f, "class"));
        o->g[o->n++] = OGR_G_Clone(OGR_F_GetGeometryRef(f));
        OGR_F_Destroy(f);
    }
    GDALClose(ds);
}

static void free_outlines(outlines *o)
{
    for (int i = 0; i < o->n; i++) OGR_G_DestroyGeometry(o->g[i]);
    o->n = 0;
}

static int vertex_count(const outlines *o)
{
    int n = 0;
    for (int i = 0; i < o->n; i++)
        for (int r = 0; r < OGR_G_GetGeometryCount(o->g[i]); r++)
            n += OGR_G_GetPointCount(OGR_G_GetGeometryRef(o->g[i], r));
    return n;
}

static OGRGeometryH ring_polygon(OGRGeometryH ring)
{
    OGRGeometryH p = OGR_G_CreateGeometry(wkbPolygon);
    OGR_G_AddGeometry(p, ring);
    return p;
}

/* Every polygon valid with its holes inside its shell; no two overlap
 * (intersections of at most 1e-3 m², rounding). Returns the number of
 * failures, each reported. */
static int topology_errors(const outlines *o, const char *what)
{
    int bad = 0;
    for (int i = 0; i < o->n; i++) {
        if (!OGR_G_IsValid(o->g[i])) {
            fprintf(stderr, "%s: polygon %d is invalid\n", what, i + 1);
            bad++;
        }
        OGRGeometryH shell = ring_polygon(OGR_G_GetGeometryRef(o->g[i], 0));
        for (int r = 1; r < OGR_G_GetGeometryCount(o->g[i]); r++) {
            OGRGeometryH hole = ring_polygon(OGR_G_GetGeometryRef(o->g[i], r));
            if (!OGR_G_Within(hole, shell)) {
                fprintf(stderr, "%s: polygon %d, hole %d outside its shell\n", what, i + 1, r);
                bad++;
            }
            OGR_G_DestroyGeometry(hole);
        }
        OGR_G_DestroyGeometry(shell);
    }
    for (int i = 0; i < o->n; i++)
        for (int j = i + 1; j < o->n; j++) {
            if (!OGR_G_Intersects(o->g[i], o->g[j])) continue;
            OGRGeometryH x = OGR_G_Intersection(o->g[i], o->g[j]);
            double a = x ? OGR_G_Area(x) : 0;
            if (x) OGR_G_DestroyGeometry(x);
            if (a > 1e-3) {
                fprintf(stderr, "%s: polygons %d and %d overlap by %g m²\n", what, i + 1, j + 1,
                        a);
                bad++;
            }
        }
    return bad;
}

/* Length shared by the outlines of the largest polygons of classes 1 and
 * 2 within x < 80 pixels (the ragged edge). */
static double shared_edge_m(const outlines *o, double x_max)
{
    int best[3] = {-1, -1, -1};
    double area[3] = {0, 0, 0};
    for (int i = 0; i < o->n; i++) {
        OGREnvelope e;
        OGR_G_GetEnvelope(o->g[i], &e);
        int k = o->cls[i];
        if (k < 1 || k > 2 || e.MaxX > x_max || e.MaxY > 3800000 - 85 * PX) continue;
        double a = OGR_G_Area(o->g[i]);
        if (a > area[k]) area[k] = a, best[k] = i;
    }
    ck_assert(best[1] >= 0 && best[2] >= 0);
    OGRGeometryH x = OGR_G_Intersection(o->g[best[1]], o->g[best[2]]);
    double len = x ? OGR_G_Length(x) : 0;
    if (x) OGR_G_DestroyGeometry(x);
    return len;
}

START_TEST(test_simplify_topology)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_topology");
    uint8_t *m = topology_mask();
    double gt[6];
    utm_gt(gt, 500000);
    char *mask = path_in(dir, "topo.tif"), *out0 = path_in(dir, "full.gpkg"),
         *out1 = path_in(dir, "simple.gpkg");
    write_mask(mask, TOPO_W, TOPO_H, m, 32643, gt, 0, 0);
    gseg_vectorize_params p = gseg_vectorize_params_default();
    p.min_area_km2 = 0;
    gseg_vectorize_stats st0, st1;
    ck_gseg(gseg_vectorize(mask, out0, &p, NULL, NULL, &st0));
    outlines a, b;
    read_outlines(out0, &a);
    ck_assert_int_eq(topology_errors(&a, "unsimplified"), 0);
    ck_assert_int_gt(a.n, 30);
    double edge0 = shared_edge_m(&a, 500000 + 80 * PX);
    /* The edge runs 60 pixels from top to bottom. */
    ck_assert_double_gt(edge0, 60 * PX);

    const double tol[] = {45, 150, 360, 900};
    const size_t batch[] = {gseg__simplify_batch, 64};
    for (size_t t = 0; t < sizeof tol / sizeof tol[0]; t++)
        for (size_t k = 0; k < 2; k++) {
            char what[64];
            snprintf(what, sizeof what, "--simplify %g, batches of %zu", tol[t], batch[k]);
            gseg__simplify_batch = batch[k];
            p.simplify_m = tol[t];
            ck_gseg(gseg_vectorize(mask, out1, &p, NULL, NULL, &st1));
            read_outlines(out1, &b);
            ck_assert_msg(b.n == a.n, "%s: %d polygons, %d unsimplified", what, b.n, a.n);
            ck_assert_int_eq(st1.polygons, st0.polygons);
            ck_assert_int_eq(st1.dropped, st0.dropped);
            ck_assert_msg(topology_errors(&b, what) == 0, "%s: topology broken", what);
            /* It did simplify. */
            ck_assert_msg(vertex_count(&b) < 0.7 * vertex_count(&a),
                          "%s: %d vertices, %d unsimplified", what, vertex_count(&b),
                          vertex_count(&a));
            /* The edge the classes share stays shared: end points stay, so
             * it is at least as long as the straight line between them. */
            double edge = shared_edge_m(&b, 500000 + 80 * PX);
            ck_assert_msg(edge >= 59 * PX && edge <= edge0,
                          "%s: shared edge %g m (%g m unsimplified)", what, edge, edge0);
            free_outlines(&b);
        }
    gseg__simplify_batch = batch[0];
    free_outlines(&a);
    free(m);
    free(mask);
    free(out0);
    free(out1);
    free(dir);
}
END_TEST

/* A random 4-connected blob of n pixels grown from (x, y), within a
 * 9×9 box. */
static void random_blob(uint8_t *m, int w, int x, int y, int n, uint32_t *rng)
{
    m[y * w + x] = 1;
    for (int k = 1; k < n;) {
        int px = x - 4 + (int)(lcg(rng) % 9), py = y - 4 + (int)(lcg(rng) % 9);
        int nb = 0;
        for (int d = 0; d < 4; d++) {
            int qx = px + (d == 0) - (d == 1), qy = py + (d == 2) - (d == 3);
            nb += m[qy * w + qx];
        }
        if (!m[py * w + px] && nb) m[py * w + px] = 1, k++;
    }
}

/* The minimum mapping unit is decided on the pixel outline: which blobs
 * near it (10 to 13 pixels, the unit 11.1) are written does not depend on
 * the tolerance, though simplification moves their areas either way. */
START_TEST(test_simplify_mmu)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_simplify_mmu");
    int w = 160, h = 160;
    uint8_t *m = calloc((size_t)w * h, 1);
    uint32_t rng = 777;
    for (int y = 8; y < h - 8; y += 12)
        for (int x = 8; x < w - 8; x += 12)
            random_blob(m, w, x, y, 10 + (int)(lcg(&rng) % 4), &rng);
    double gt[6];
    utm_gt(gt, 500000);
    char *mask = path_in(dir, "blobs.tif"), *out = path_in(dir, "blobs.gpkg");
    write_mask(mask, w, h, m, 32643, gt, 0, 0);
    gseg_vectorize_stats st0, st;
    ck_gseg(gseg_vectorize(mask, out, NULL, NULL, NULL, &st0));
    ck_assert(st0.polygons > 20 && st0.dropped > 20);
    const double tol[] = {30, 60, 150};
    for (size_t t = 0; t < sizeof tol / sizeof tol[0]; t++) {
        gseg_vectorize_params p = gseg_vectorize_params_default();
        p.simplify_m = tol[t];
        ck_gseg(gseg_vectorize(mask, out, &p, NULL, NULL, &st));
        ck_assert_msg(st.polygons == st0.polygons && st.dropped == st0.dropped,
                      "--simplify %g: %lld written, %lld dropped; unsimplified %lld, %lld", tol[t],
                      st.polygons, st.dropped, st0.polygons, st0.dropped);
        feat f[256];
        ck_assert_int_eq(read_features(out, f, 256, NULL, NULL), st0.polygons);
        for (int i = 0; i < st0.polygons; i++) ck_assert(f[i].valid);
    }
    free(m);
    free(mask);
    free(out);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Classes                                                                  */

START_TEST(test_classes)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_classes");
    int w = 60, h = 20;
    uint8_t *m = calloc((size_t)w * h, 1);
    fill_rect(m, w, 0, 0, 10, 20, 1);
    fill_rect(m, w, 10, 0, 10, 20, 2);  /* touches class 1 */
    fill_rect(m, w, 20, 0, 10, 20, 255);
    fill_rect(m, w, 30, 0, 10, 20, 7);  /* nodata */
    fill_rect(m, w, 40, 0, 10, 20, 3);
    double gt[6];
    utm_gt(gt, 500000);
    char *mask = path_in(dir, "classes.tif"), *out = path_in(dir, "classes.gpkg");
    write_mask(mask, w, h, m, 32643, gt, 1, 7);

    gseg_vectorize_params p = gseg_vectorize_params_default();
    p.min_area_km2 = 0;
    p.source = "unit-test model";
    ck_gseg(gseg_vectorize(mask, out, &p, NULL, NULL, NULL));
    feat f[8];
    int n = read_features(out, f, 8, NULL, NULL);
    ck_assert_int_eq(n, 3);
    int seen[4] = {0};
    for (int i = 0; i < n; i++) {
        ck_assert(f[i].cls >= 1 && f[i].cls <= 3);
        seen[f[i].cls]++;
        ck_assert_str_eq(f[i].source, "unit-test model");
        rel_close(f[i].area, 200 * PX * PX / 1e6, 0.01, "class block area");
        if (f[i].cls == 1) ck_assert_str_eq(f[i].name, "glacier");
        if (f[i].cls == 2) ck_assert_str_eq(f[i].name, "class 2");
        if (f[i].cls == 3) ck_assert_str_eq(f[i].name, "class 3");
    }
    ck_assert_int_eq(seen[1], 1);
    ck_assert_int_eq(seen[2], 1);
    ck_assert_int_eq(seen[3], 1);

    const char *names[] = {"background", "clean ice", "debris-covered ice"};
    p.nclasses = 3;
    p.class_names = names;
    ck_gseg(gseg_vectorize(mask, out, &p, NULL, NULL, NULL));
    ck_assert_int_eq(read_features(out, f, 8, NULL, NULL), 3);
    for (int i = 0; i < 3; i++) {
        if (f[i].cls == 1) ck_assert_str_eq(f[i].name, "clean ice");
        if (f[i].cls == 2) ck_assert_str_eq(f[i].name, "debris-covered ice");
        if (f[i].cls == 3) ck_assert_str_eq(f[i].name, "class 3");
    }

    /* Nodata that is a class value hides that class. */
    write_mask(mask, w, h, m, 32643, gt, 1, 1);
    ck_gseg(gseg_vectorize(mask, out, &p, NULL, NULL, NULL));
    n = read_features(out, f, 8, NULL, NULL);
    ck_assert_int_eq(n, 3); /* 2, 3 and now 7 */
    for (int i = 0; i < n; i++) ck_assert_int_ne(f[i].cls, 1);
    free(m);
    free(mask);
    free(out);
    free(dir);
}
END_TEST

/* An all-background mask gives an empty but valid layer. */
START_TEST(test_empty_mask)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_empty");
    int w = 50, h = 50;
    uint8_t *m = calloc((size_t)w * h, 1);
    fill_rect(m, w, 10, 10, 10, 10, 255);
    double gt[6];
    utm_gt(gt, 500000);
    char *mask = path_in(dir, "empty.tif"), *out = path_in(dir, "empty.gpkg");
    write_mask(mask, w, h, m, 32643, gt, 0, 0);
    gseg_vectorize_stats st;
    ck_gseg(gseg_vectorize(mask, out, NULL, NULL, NULL, &st));
    feat f[2];
    ck_assert_int_eq(read_features(out, f, 2, NULL, NULL), 0);
    ck_assert_int_eq(st.polygons, 0);
    ck_assert_double_eq(st.area_km2, 0);
    free(m);
    free(mask);
    free(out);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Reprojection, formats, schema                                            */

START_TEST(test_t_srs)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_tsrs");
    char *mask = path_in(dir, "blobs.tif"), *out0 = path_in(dir, "utm.gpkg"),
         *out1 = path_in(dir, "wgs84.gpkg");
    write_blobs(mask, 32643);
    ck_gseg(gseg_vectorize(mask, out0, NULL, NULL, NULL, NULL));
    gseg_vectorize_params p = gseg_vectorize_params_default();
    p.t_srs = "EPSG:4326";
    ck_gseg(gseg_vectorize(mask, out1, &p, NULL, NULL, NULL));
    feat a[4], b[4];
    char ca[32], cb[32];
    ck_assert_int_eq(read_features(out0, a, 4, NULL, ca), 2);
    ck_assert_int_eq(read_features(out1, b, 4, NULL, cb), 2);
    ck_assert_str_eq(ca, "32643");
    ck_assert_str_eq(cb, "4326");
    for (int i = 0; i < 2; i++) {
        ck_assert_double_eq_tol(a[i].area, b[i].area, 1e-12);
        ck_assert_double_eq_tol(a[i].perim, b[i].perim, 1e-12);
        /* Longitude first, near 75°E, 34°N. */
        ck_assert(b[i].env.MinX > 74.5 && b[i].env.MaxX < 75.5);
        ck_assert(b[i].env.MinY > 34 && b[i].env.MaxY < 34.5);
    }
    p.t_srs = "not a CRS";
    ck_assert_int_eq(gseg_vectorize(mask, out1, &p, NULL, NULL, NULL), GSEG_ERR_ARG);
    free(mask);
    free(out0);
    free(out1);
    free(dir);
}
END_TEST

START_TEST(test_ogrinfo_schema)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_ogrinfo");
    char *mask = path_in(dir, "blobs.tif"), *out = path_in(dir, "out.gpkg"),
         *info = path_in(dir, "info.txt");
    write_blobs(mask, 32643);
    ck_gseg(gseg_vectorize(mask, out, NULL, NULL, NULL, NULL));
    ck_assert_int_eq(tu_system("ogrinfo -so '%s' glaciers > '%s' 2>&1", out, info), 0);
    const char *expect[] = {"Layer name: glaciers", "Geometry: Polygon", "Feature Count: 2",
                            "id: Integer", "class: Integer", "class_name: String",
                            "area_km2: Real", "perimeter_km: Real", "source: String",
                            "UTM zone 43N"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        ck_assert_msg(tu_system("grep -q '%s' '%s'", expect[i], info) == 0,
                      "ogrinfo output lacks '%s'", expect[i]);

    gseg_vectorize_params p = gseg_vectorize_params_default();
    p.layer_name = "outlines";
    ck_gseg(gseg_vectorize(mask, out, &p, NULL, NULL, NULL));
    ck_assert_int_eq(tu_system("ogrinfo -so '%s' outlines > /dev/null 2>&1", out), 0);
    free(mask);
    free(out);
    free(info);
    free(dir);
}
END_TEST

START_TEST(test_formats)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_formats");
    char *mask = path_in(dir, "blobs.tif");
    write_blobs(mask, 32643);
    const struct { const char *name, *format, *driver; } cases[] = {
        {"out.shp", NULL, "ESRI Shapefile"},
        {"out.geojson", NULL, "GeoJSON"},
        {"out.fgb", NULL, "FlatGeobuf"},
        {"out.kml", NULL, "KML"},
        {"out.gpkg", NULL, "GPKG"},
        {"out.data", NULL, "GPKG"},          /* unknown extension */
        {"forced.gpkg", "GeoJSON", "GeoJSON"}, /* format wins over extension */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = path_in(dir, cases[i].name);
        gseg_vectorize_params p = gseg_vectorize_params_default();
        p.format = cases[i].format;
        ck_gseg(gseg_vectorize(mask, out, &p, NULL, NULL, NULL));
        feat f[4];
        char drv[64];
        ck_assert_int_eq(read_features(out, f, 4, drv, NULL), 2);
        /* KML may be read back by LIBKML. */
        if (strcmp(cases[i].driver, "KML") || strcmp(drv, "LIBKML"))
            ck_assert_str_eq(drv, cases[i].driver);
        for (int k = 0; k < 2; k++) ck_assert_double_ge(f[k].area, 0.01);
        free(out);
    }
    /* Shapefile sidecars were renamed with the main file; no temporaries. */
    char *dbf = path_in(dir, "out.dbf");
    ck_assert(file_exists(dbf));
    free(dbf);
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);

    gseg_vectorize_params p = gseg_vectorize_params_default();
    char *out = path_in(dir, "bad.gpkg");
    p.format = "NoSuchDriver";
    ck_assert_int_eq(gseg_vectorize(mask, out, &p, NULL, NULL, NULL), GSEG_ERR_ARG);
    p.format = "GTiff"; /* raster only */
    ck_assert_int_eq(gseg_vectorize(mask, out, &p, NULL, NULL, NULL), GSEG_ERR_ARG);
    ck_assert(!file_exists(out));
    free(out);
    free(mask);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Default QGIS style (GeoPackage)                                          */

typedef struct style_row {
    int count, defaults;
    char table[64], geom[64], schema[8], name[64];
    char *qml;
} style_row;

/* The layer_styles table of a GeoPackage, as QGIS reads it: the schema
 * QGIS creates (FID id and the 12 columns) and its rows. */
static void read_styles(const char *path, style_row *r)
{
    memset(r, 0, sizeof *r);
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_VECTOR, NULL, NULL, NULL);
    ck_assert_ptr_nonnull(ds);
    OGRLayerH l = GDALDatasetGetLayerByName(ds, "layer_styles");
    ck_assert_msg(l != NULL, "%s: no layer_styles table", path);
    ck_assert_int_eq(wkbFlatten(OGR_L_GetGeomType(l)), wkbNone);
    ck_assert_str_eq(OGR_L_GetFIDColumn(l), "id");
    OGRFeatureDefnH d = OGR_L_GetLayerDefn(l);
    const char *cols[] = {"f_table_catalog", "f_table_schema", "f_table_name",
                          "f_geometry_column", "styleName", "styleQML", "styleSLD",
                          "useAsDefault", "description", "owner", "ui", "update_time"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        ck_assert_msg(OGR_FD_GetFieldIndex(d, cols[i]) >= 0, "layer_styles lacks %s", cols[i]);
    ck_assert_int_eq(OGR_Fld_GetType(OGR_FD_GetFieldDefn(d, OGR_FD_GetFieldIndex(d, "update_time"))),
                     OFTDateTime);
    OGRFeatureH f;
    while ((f = OGR_L_GetNextFeature(l)) != NULL) {
        r->count++;
        if (OGR_F_GetFieldAsInteger(f, OGR_FD_GetFieldIndex(d, "useAsDefault")) == 1) {
            r->defaults++;
            int si = OGR_FD_GetFieldIndex(d, "f_table_schema");
            ck_assert(OGR_F_IsFieldSetAndNotNull(f, si)); /* '' as QGIS filters on it */
            snprintf(r->schema, sizeof r->schema, "%s", OGR_F_GetFieldAsString(f, si));
            snprintf(r->table, sizeof r->table, "%s",
                     OGR_F_GetFieldAsString(f, OGR_FD_GetFieldIndex(d, "f_table_name")));
            snprintf(r->geom, sizeof r->geom, "%s",
                     OGR_F_GetFieldAsString(f, OGR_FD_GetFieldIndex(d, "f_geometry_column")));
            snprintf(r->name, sizeof r->name, "%s",
                     OGR_F_GetFieldAsString(f, OGR_FD_GetFieldIndex(d, "styleName")));
            ck_assert(OGR_F_IsFieldSetAndNotNull(f, OGR_FD_GetFieldIndex(d, "update_time")));
            free(r->qml);
            r->qml = strdup(OGR_F_GetFieldAsString(f, OGR_FD_GetFieldIndex(d, "styleQML")));
        }
        OGR_F_Destroy(f);
    }
    /* The outlines' geometry column, which the style names. */
    OGRLayerH out = GDALDatasetGetLayer(ds, 0);
    if (strcmp(OGR_L_GetName(out), "layer_styles") == 0) out = GDALDatasetGetLayer(ds, 1);
    ck_assert_str_eq(r->geom, OGR_L_GetGeometryColumn(out));
    ck_assert_str_eq(r->table, OGR_L_GetName(out));
    GDALClose(ds);
}

/* The fill symbol of the category with value `value` in a parsed QML. */
static CPLXMLNode *category_symbol(CPLXMLNode *renderer, const char *value)
{
    const char *sym = NULL;
    for (CPLXMLNode *c = CPLGetXMLNode(renderer, "categories") ?
                             CPLGetXMLNode(renderer, "categories")->psChild : NULL;
         c; c = c->psNext)
        if (c->eType == CXT_Element && strcmp(CPLGetXMLValue(c, "value", ""), value) == 0)
            sym = CPLGetXMLValue(c, "symbol", NULL);
    if (!sym) return NULL;
    for (CPLXMLNode *s = CPLGetXMLNode(renderer, "symbols")->psChild; s; s = s->psNext)
        if (s->eType == CXT_Element && strcmp(CPLGetXMLValue(s, "name", ""), sym) == 0)
            return s;
    return NULL;
}

/* Property k of the symbol's first layer, in its <Option type="Map">. */
static const char *symbol_prop(CPLXMLNode *symbol, const char *k)
{
    CPLXMLNode *map = CPLGetXMLNode(symbol, "layer.Option");
    for (CPLXMLNode *o = map ? map->psChild : NULL; o; o = o->psNext)
        if (o->eType == CXT_Element && strcmp(CPLGetXMLValue(o, "name", ""), k) == 0)
            return CPLGetXMLValue(o, "value", NULL);
    return NULL;
}

START_TEST(test_layer_styles)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_styles");
    int w = 60, h = 20;
    uint8_t *m = calloc((size_t)w * h, 1);
    fill_rect(m, w, 0, 0, 10, 20, 1);
    fill_rect(m, w, 20, 0, 10, 20, 2);
    fill_rect(m, w, 40, 0, 10, 20, 5); /* beyond the class table */
    double gt[6];
    utm_gt(gt, 500000);
    char *mask = path_in(dir, "classes.tif"), *out = path_in(dir, "classes.gpkg");
    write_mask(mask, w, h, m, 32643, gt, 0, 0);

    /* Defaults: one category per class written, glacier in 0,170,255. */
    gseg_vectorize_params p = gseg_vectorize_params_default();
    p.min_area_km2 = 0;
    ck_gseg(gseg_vectorize(mask, out, &p, NULL, NULL, NULL));
    style_row r;
    read_styles(out, &r);
    ck_assert_int_eq(r.count, 1);
    ck_assert_int_eq(r.defaults, 1);
    ck_assert_str_eq(r.table, "glaciers");
    ck_assert_str_eq(r.schema, "");
    ck_assert_str_eq(r.name, "glaciers");
    CPLErrorReset();
    CPLXMLNode *root = CPLParseXMLString(r.qml);
    ck_assert_msg(root != NULL, "styleQML is not valid XML: %s", CPLGetLastErrorMsg());
    CPLXMLNode *qgis = CPLSearchXMLNode(root, "=qgis");
    ck_assert_ptr_nonnull(qgis);
    ck_assert_str_eq(CPLGetXMLValue(qgis, "labelsEnabled", ""), "0");
    ck_assert_ptr_null(CPLGetXMLNode(qgis, "labeling"));
    CPLXMLNode *rend = CPLGetXMLNode(qgis, "renderer-v2");
    ck_assert_ptr_nonnull(rend);
    ck_assert_str_eq(CPLGetXMLValue(rend, "type", ""), "categorizedSymbol");
    ck_assert_str_eq(CPLGetXMLValue(rend, "attr", ""), "class_name");
    CPLXMLNode *g = category_symbol(rend, "glacier");
    ck_assert_msg(g != NULL, "no category for glacier");
    ck_assert_str_eq(CPLGetXMLValue(g, "type", ""), "fill");
    ck_assert_str_eq(symbol_prop(g, "color"), "0,170,255,102"); /* semi-transparent */
    ck_assert_str_eq(symbol_prop(g, "style"), "solid");
    ck_assert_str_eq(symbol_prop(g, "outline_style"), "solid");
    const char *oc = symbol_prop(g, "outline_color");
    ck_assert(oc && strlen(oc) > 4 && strcmp(oc + strlen(oc) - 4, ",255") == 0);
    ck_assert_ptr_nonnull(category_symbol(rend, "class 2"));
    ck_assert_ptr_nonnull(category_symbol(rend, "class 5"));
    ck_assert_ptr_null(category_symbol(rend, "class 3")); /* not in the mask */
    CPLDestroyXMLNode(root);
    free(r.qml);

    /* Named classes with their colours; names escaped; another layer name. */
    const char *names[] = {"background", "clean ice", "debris & <rock>"};
    const uint8_t rgba[][4] = {{0, 0, 0, 0}, {10, 20, 30, 200}, {200, 100, 50, 255}};
    p.nclasses = 3;
    p.class_names = names;
    p.class_rgba = rgba;
    p.layer_name = "outlines";
    ck_gseg(gseg_vectorize(mask, out, &p, NULL, NULL, NULL));
    read_styles(out, &r);
    ck_assert_int_eq(r.count, 1);
    ck_assert_str_eq(r.table, "outlines");
    root = CPLParseXMLString(r.qml);
    ck_assert_ptr_nonnull(root);
    rend = CPLGetXMLNode(CPLSearchXMLNode(root, "=qgis"), "renderer-v2");
    g = category_symbol(rend, "clean ice");
    ck_assert_ptr_nonnull(g);
    ck_assert_str_eq(symbol_prop(g, "color"), "10,20,30,80");
    g = category_symbol(rend, "debris & <rock>");
    ck_assert_ptr_nonnull(g);
    ck_assert_str_eq(symbol_prop(g, "color"), "200,100,50,102");
    ck_assert_ptr_nonnull(category_symbol(rend, "class 5"));
    ck_assert_ptr_null(category_symbol(rend, "background"));
    ck_assert_ptr_null(category_symbol(rend, "glacier"));
    CPLDestroyXMLNode(root);
    free(r.qml);

    /* GDAL's ogrinfo sees one default style for the outlines layer,
     * naming the classes. */
    ck_assert_int_eq(tu_system("ogrinfo -ro -q '%s' | grep -q 'layer_styles (None)'", out), 0);
    ck_assert_int_eq(tu_system("ogrinfo -ro -q '%s' -sql \"SELECT COUNT(*) AS n FROM layer_styles "
                               "WHERE useAsDefault = 1 AND f_table_name = 'outlines' AND "
                               "f_table_schema = '' AND styleQML LIKE '%%clean ice%%'\" | "
                               "grep -q 'n (Integer) = 1'", out), 0);

    /* Other formats carry no style table. */
    char *geojson = path_in(dir, "classes.geojson");
    ck_gseg(gseg_vectorize(mask, geojson, &p, NULL, NULL, NULL));
    GDALDatasetH ds = GDALOpenEx(geojson, GDAL_OF_VECTOR, NULL, NULL, NULL);
    ck_assert_int_eq(GDALDatasetGetLayerCount(ds), 1);
    GDALClose(ds);
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);
    free(geojson);
    free(m);
    free(mask);
    free(out);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors, atomicity, cancellation                                          */

START_TEST(test_errors)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_errors");
    char *mask = path_in(dir, "blobs.tif"), *out = path_in(dir, "out.gpkg");
    write_blobs(mask, 32643);

    /* Missing mask: error names the file, nothing written. */
    char *missing = path_in(dir, "no_such_mask.tif");
    ck_assert_int_eq(gseg_vectorize(missing, out, NULL, NULL, NULL, NULL), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), missing));
    ck_assert(!file_exists(out));
    free(missing);

    /* Unwritable output folders (tests may run as root: use a folder that
     * cannot exist rather than permissions). */
    char *bad[3];
    bad[0] = path_in(dir, "blobs.tif/out.gpkg");
    bad[1] = path_in(dir, "no/such/dir/out.gpkg");
    bad[2] = path_in(dir, "no/such/dir/out.shp");
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(gseg_vectorize(mask, bad[i], NULL, NULL, NULL, NULL), GSEG_ERR_IO);
        ck_assert_ptr_nonnull(strstr(gseg_last_error(), bad[i]));
        ck_assert(!file_exists(bad[i]));
        free(bad[i]);
    }
    ck_assert_int_eq(dir_entries(dir), 1); /* only the mask */

    gseg_vectorize_params p = gseg_vectorize_params_default();
    p.band = 2;
    ck_assert_int_eq(gseg_vectorize(mask, out, &p, NULL, NULL, NULL), GSEG_ERR_ARG);
    p = gseg_vectorize_params_default();
    p.min_area_km2 = -1;
    ck_assert_int_eq(gseg_vectorize(mask, out, &p, NULL, NULL, NULL), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg_vectorize(NULL, out, NULL, NULL, NULL, NULL), GSEG_ERR_ARG);

    /* Not a Byte mask. */
    char *i16 = path_in(dir, "int16.tif");
    int16_t v[16] = {0, 1, 1, 0};
    double gt[6];
    utm_gt(gt, 500000);
    write_mask_typed(i16, 4, 4, v, GDT_Int16, 32643, gt, 0, 0);
    ck_assert_int_eq(gseg_vectorize(i16, out, NULL, NULL, NULL, NULL), GSEG_ERR_FORMAT);
    ck_assert(!file_exists(out));
    free(i16);
    ck_assert_int_eq(dir_entries(dir), 2); /* the two masks */
    free(mask);
    free(out);
    free(dir);
}
END_TEST

typedef struct cancel_at {
    double at;  /* cancel once complete >= at */
    int calls;
    double last;
    int monotonic;
} cancel_at;

static int cancel_cb(double complete, const char *msg, void *user)
{
    (void)msg;
    cancel_at *c = user;
    if (complete < c->last) c->monotonic = 0;
    c->last = complete;
    c->calls++;
    return complete < c->at;
}

START_TEST(test_cancel)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_cancel");
    char *outdir = tu_tmpdir("vec_cancel_out");
    char *mask = path_in(dir, "blobs.tif");
    write_blobs(mask, 32643);
    const char *names[] = {"out.gpkg", "out.shp", "out.fgb"};
    for (int i = 0; i < 3; i++) {
        char *out = path_in(outdir, names[i]);
        /* During polygonize (first call), then during the feature pass. */
        double at[2] = {0, 0.8};
        for (int k = 0; k < 2; k++) {
            cancel_at c = {at[k], 0, 0, 1};
            ck_assert_int_eq(gseg_vectorize(mask, out, NULL, cancel_cb, &c, NULL),
                             GSEG_ERR_CANCELLED);
            ck_assert_int_ge(c.calls, 1);
            ck_assert(!file_exists(out));
            ck_assert_int_eq(dir_entries(outdir), 0);
        }
        /* Full run: progress is monotonic and ends at 1. */
        cancel_at c = {2, 0, 0, 1};
        ck_gseg(gseg_vectorize(mask, out, NULL, cancel_cb, &c, NULL));
        ck_assert(c.monotonic);
        ck_assert_double_eq(c.last, 1.0);
        ck_assert(file_exists(out));
        ck_assert_int_eq(tu_system("rm -f '%s'/out.*", outdir), 0);
        free(out);
    }
    free(mask);
    free(dir);
    free(outdir);
}
END_TEST

/* Masks in /vsimem/ work and are read through the VRT class mask. */
START_TEST(test_vsimem)
{
    gseg_init();
    char *dir = tu_tmpdir("vec_vsimem");
    const char *mask = "/vsimem/check_vectorize/blobs.tif";
    write_blobs(mask, 32643);
    char *out = path_in(dir, "out.gpkg");
    gseg_vectorize_stats st;
    ck_gseg(gseg_vectorize(mask, out, NULL, NULL, NULL, &st));
    ck_assert_int_eq(st.polygons, 2);
    VSIUnlink(mask);
    free(out);
    free(dir);
}
END_TEST

static Suite *vectorize_suite(void)
{
    Suite *s = suite_create("vectorize");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_square_utm);
    tcase_add_test(t, test_disc_utm);
    tcase_add_test(t, test_geographic_cell);
    tcase_add_test(t, test_ring_hole);
    tcase_add_test(t, test_mmu);
    tcase_add_test(t, test_no_crs);
    tcase_add_test(t, test_simplify_utm);
    tcase_add_test(t, test_simplify_geographic);
    tcase_add_test(t, test_simplify_topology);
    tcase_add_test(t, test_simplify_mmu);
    tcase_add_test(t, test_classes);
    tcase_add_test(t, test_empty_mask);
    tcase_add_test(t, test_t_srs);
    tcase_add_test(t, test_ogrinfo_schema);
    tcase_add_test(t, test_formats);
    tcase_add_test(t, test_layer_styles);
    tcase_add_test(t, test_errors);
    tcase_add_test(t, test_cancel);
    tcase_add_test(t, test_vsimem);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(vectorize_suite()); }
