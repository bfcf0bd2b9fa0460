/*
 * area.h — the ground area and size of raster pixels, on the ellipsoid of
 * the raster's CRS. Internal to libgseg; used by prediction's per-class
 * areas and by evaluation's areas and boundary distances.
 *
 * A north-up geographic grid has the same pixel area along a row: the
 * geodesic area of a pixel's four corners (PROJ geodesic.h). Any other grid
 * with a CRS (projected, or geographic but rotated) is cut into cells of
 * GSEG__AREA_CELL² pixels whose corners are transformed to longitude and
 * latitude on the CRS's own datum; a cell's pixels get its mean pixel
 * area: the area element M·N·cos φ dφ dλ at the cell's centre times its
 * extent in λ, φ, or near a pole, where that breaks down, the geodesic area
 * of its corners. A projected pixel's area differs from |det(geotransform)|
 * by the projection's areal scale: under 0.1 % in UTM, 2–6 % in polar
 * stereographic at 70–90°.
 *
 * An instance is used by one thread at a time.
 */
#ifndef GSEG_AREA_H
#define GSEG_AREA_H

#define GSEG__AREA_CELL 16

typedef struct gseg__areas gseg__areas;

/* NULL without a geotransform (gt NULL) or CRS (wkt NULL or ""), or when
 * PROJ cannot relate the CRS to longitude and latitude: areas unknown. */
gseg__areas *gseg__areas_new(const double *gt, const char *wkt, int width, int height);
void gseg__areas_free(gseg__areas *a); /* NULL ok */
/* km² of the pixels of row y: pixel x's is the value [x / GSEG__AREA_CELL];
 * NaN where a corner cannot be transformed (outside the projection's
 * domain). Valid until the next call; cheapest row by row in order. */
const double *gseg__areas_row(gseg__areas *a, int y);
/* Ground distance in metres between the centres of neighbouring pixels of
 * row y at column x: along the row (*dx) and down the column (*dy); NaN
 * where unknown. */
void gseg__areas_spacing(gseg__areas *a, int x, int y, double *dx, double *dy);

#endif
