/*
 * coverage.h — the outlines of one layer as a planar graph of shared edges,
 * simplified together so that their topology survives (coverage.c).
 * Private to src/vectorize.
 */
#ifndef GSEG_COVERAGE_H
#define GSEG_COVERAGE_H

#include "internal.h"

#include <ogr_api.h>

typedef struct gseg__cov gseg__cov;

/* An empty coverage for polygons from GDALPolygonize on a raster with
 * geotransform gt: every vertex on a pixel corner. */
gseg_status gseg__cov_new(const double gt[6], gseg__cov **out);
void gseg__cov_free(gseg__cov *c);

/* Adds a copy of one polygon (g stays the caller's) with a tag for the
 * caller (its class). */
gseg_status gseg__cov_add(gseg__cov *c, OGRGeometryH g, int tag);

/* Simplifies all polygons added, tolerance in CRS units (> 0), keeping
 * the topology: see coverage.c. Call once, after the last add. */
gseg_status gseg__cov_simplify(gseg__cov *c, double tolerance);

size_t gseg__cov_count(const gseg__cov *c);
/* Polygon i (in the order added) as simplified; *g is the caller's. */
gseg_status gseg__cov_polygon(gseg__cov *c, size_t i, OGRGeometryH *g, int *tag);

#endif
