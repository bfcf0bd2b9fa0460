/*
 * area.c — pixel areas and spacings on the ellipsoid (see area.h).
 */
#include "area.h"
#include "internal.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <geodesic.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct gseg__areas {
    double gt[6];
    int width, height, ncells;
    int north_up_geographic;   /* one area per row */
    OGRCoordinateTransformationH to_geog; /* to lon, lat degrees, same datum */
    double a, e2;              /* the ellipsoid */
    struct geod_geodesic geod;
    int row;                   /* of km2: a scene row (north-up geographic) or a cell row; -1 */
    double *km2;               /* [ncells] */
    double *x, *y;             /* [2 (ncells + 1)] corners of a cell row */
    int *ok;
};

gseg__areas *gseg__areas_new(const double *gt, const char *wkt, int width, int height)
{
    if (!gt || !wkt || !*wkt || width <= 0 || height <= 0) return NULL;
    OGRSpatialReferenceH srs = OSRNewSpatialReference(wkt);
    if (!srs) return NULL;
    gseg__areas *a = NULL;
    OGRSpatialReferenceH geog = NULL;
    if (!OSRIsGeographic(srs) && !OSRIsProjected(srs)) goto done;
    geog = OSRCloneGeogCS(srs);
    OGRErr e1 = OGRERR_FAILURE, e2 = OGRERR_FAILURE;
    double semi = geog ? OSRGetSemiMajor(geog, &e1) : 0;
    double invf = geog ? OSRGetInvFlattening(geog, &e2) : 0;
    if (!geog || e1 != OGRERR_NONE || e2 != OGRERR_NONE || !(semi > 0)) goto done;
    a = gseg__calloc(1, sizeof *a);
    if (!a) goto done;
    memcpy(a->gt, gt, sizeof a->gt);
    a->width = width;
    a->height = height;
    a->ncells = (width + GSEG__AREA_CELL - 1) / GSEG__AREA_CELL;
    a->row = -1;
    double f = invf != 0 ? 1.0 / invf : 0.0;
    a->a = semi;
    a->e2 = f * (2 - f);
    geod_init(&a->geod, semi, f);
    OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(geog, OAMS_TRADITIONAL_GIS_ORDER);
    CPLPushErrorHandler(CPLQuietErrorHandler);
    a->to_geog = OCTNewCoordinateTransformation(srs, geog);
    CPLPopErrorHandler();
    a->north_up_geographic = OSRIsGeographic(srs) && gt[2] == 0 && gt[4] == 0;
    size_t n = (size_t)a->ncells + 1;
    a->km2 = gseg__malloc(n, sizeof *a->km2);
    a->x = gseg__malloc(4 * n, sizeof *a->x);
    a->ok = gseg__malloc(2 * n, sizeof *a->ok);
    if (!a->to_geog || !a->km2 || !a->x || !a->ok) {
        gseg__areas_free(a);
        a = NULL;
        goto done;
    }
    a->y = a->x + 2 * n;
done:
    if (geog) OSRDestroySpatialReference(geog);
    OSRDestroySpatialReference(srs);
    return a;
}

void gseg__areas_free(gseg__areas *a)
{
    if (!a) return;
    if (a->to_geog) OCTDestroyCoordinateTransformation(a->to_geog);
    free(a->km2);
    free(a->x);
    free(a->ok);
    free(a);
}

/* Pixel (px, py) (corner coordinates) to longitude, latitude in degrees, n
 * points in place; ok[i] 0 where PROJ failed. */
static void to_lonlat(gseg__areas *a, double *x, double *y, int *ok, int n)
{
    for (int i = 0; i < n; i++) {
        double px = x[i], py = y[i];
        x[i] = a->gt[0] + px * a->gt[1] + py * a->gt[2];
        y[i] = a->gt[3] + px * a->gt[4] + py * a->gt[5];
    }
    CPLPushErrorHandler(CPLQuietErrorHandler);
    OCTTransformEx(a->to_geog, n, x, y, NULL, ok);
    CPLPopErrorHandler();
    for (int i = 0; i < n; i++) ok[i] = ok[i] && isfinite(x[i]) && isfinite(y[i]);
}

/* Area in m² of the quadrilateral of corners q[0..3] (indices into a->x,
 * a->y, lon/lat degrees). */
static double quad_m2(const gseg__areas *a, const int q[4])
{
    const double rad = M_PI / 180;
    double lam[4], phi[4], area = 0, pc = 0, span = 0;
    for (int k = 0; k < 4; k++) {
        double d = a->x[q[k]] - a->x[q[0]]; /* across the antimeridian */
        d -= 360 * floor((d + 180) / 360);
        lam[k] = (a->x[q[0]] + d) * rad;
        phi[k] = a->y[q[k]] * rad;
        pc += phi[k] / 4;
        span = fmax(span, fabs(d) * rad);
    }
    if (fabs(pc) < 80 * rad && span < 0.1) {
        for (int k = 0; k < 4; k++)
            area += lam[k] * phi[(k + 1) % 4] - lam[(k + 1) % 4] * phi[k];
        double w = 1 - a->e2 * sin(pc) * sin(pc);
        double mn = a->a * a->a * (1 - a->e2) / (w * w); /* M·N */
        return fabs(area) / 2 * mn * cos(pc);
    }
    /* around a pole, or a cell many degrees wide */
    double la[4], lo[4];
    for (int k = 0; k < 4; k++) la[k] = a->y[q[k]], lo[k] = a->x[q[k]];
    geod_polygonarea(&a->geod, la, lo, 4, &area, NULL);
    return fabs(area);
}

const double *gseg__areas_row(gseg__areas *a, int y)
{
    int n = a->ncells;
    if (a->north_up_geographic) { /* one pixel's area fills the row */
        if (a->row == y) return a->km2;
        a->row = y;
        double px[4] = {0, 1, 1, 0}, py[4] = {y, y, y + 1, y + 1};
        memcpy(a->x, px, sizeof px);
        memcpy(a->y, py, sizeof py);
        to_lonlat(a, a->x, a->y, a->ok, 4);
        static const int q[4] = {0, 1, 2, 3};
        int ok = a->ok[0] && a->ok[1] && a->ok[2] && a->ok[3];
        double v = ok ? quad_m2(a, q) / 1e6 : NAN;
        for (int i = 0; i < n; i++) a->km2[i] = v;
        return a->km2;
    }
    int r = y / GSEG__AREA_CELL;
    if (a->row == r) return a->km2;
    a->row = r;
    int y0 = r * GSEG__AREA_CELL;
    int y1 = y0 + GSEG__AREA_CELL < a->height ? y0 + GSEG__AREA_CELL : a->height;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i <= n; i++) {
            a->x[k * (n + 1) + i] = i * GSEG__AREA_CELL < a->width ? i * GSEG__AREA_CELL : a->width;
            a->y[k * (n + 1) + i] = k ? y1 : y0;
        }
    to_lonlat(a, a->x, a->y, a->ok, 2 * (n + 1));
    for (int i = 0; i < n; i++) {
        int q[4] = {i, i + 1, n + 1 + i + 1, n + 1 + i}; /* a ring of corners */
        int ok = a->ok[q[0]] && a->ok[q[1]] && a->ok[q[2]] && a->ok[q[3]];
        int cw = (i + 1) * GSEG__AREA_CELL < a->width ? GSEG__AREA_CELL
                                                      : a->width - i * GSEG__AREA_CELL;
        a->km2[i] = ok ? quad_m2(a, q) / 1e6 / ((double)cw * (y1 - y0)) : NAN;
    }
    return a->km2;
}

void gseg__areas_spacing(gseg__areas *a, int x, int y, double *dx, double *dy)
{
    double px[3] = {x + 0.5, x + 1.5, x + 0.5}, py[3] = {y + 0.5, y + 0.5, y + 1.5};
    int ok[3];
    to_lonlat(a, px, py, ok, 3);
    double sx = NAN, sy = NAN;
    if (ok[0] && ok[1]) geod_inverse(&a->geod, py[0], px[0], py[1], px[1], &sx, NULL, NULL);
    if (ok[0] && ok[2]) geod_inverse(&a->geod, py[0], px[0], py[2], px[2], &sy, NULL, NULL);
    *dx = sx;
    *dy = sy;
}
