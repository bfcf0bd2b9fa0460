/* grid.c — the tile grid: overlapping square tiles covering every pixel. */
#include "internal.h"

#include <limits.h>

/* Tiles along one axis of n pixels. */
static int axis_count(int n, int tile, int overlap)
{
    if (n <= tile) return 1;
    int step = tile - overlap;
    return 1 + (n - tile + step - 1) / step;
}

/* Start of tile i along an axis; the last tile shifts inward to end at n. */
static int axis_pos(int n, int tile, int overlap, int count, int i)
{
    if (n <= tile) return 0;
    if (i == count - 1) return n - tile;
    return i * (tile - overlap);
}

gseg_status gseg_grid_init(gseg_grid *g, int width, int height, int tile, int overlap)
{
    if (!g) return gseg__err(GSEG_ERR_ARG, "grid: NULL grid");
    if (width < 1 || height < 1)
        return gseg__err(GSEG_ERR_ARG, "grid: scene size %dx%d is empty", width, height);
    if (tile < 8)
        return gseg__err(GSEG_ERR_ARG, "tile size %d is too small (minimum 8)", tile);
    if (tile > 16384)
        return gseg__err(GSEG_ERR_ARG, "tile size %d is too large (maximum 16384)", tile);
    if (overlap < 0 || overlap >= tile)
        return gseg__err(GSEG_ERR_ARG,
                         "overlap %d must be at least 0 and smaller than the tile size %d",
                         overlap, tile);
    int ncols = axis_count(width, tile, overlap), nrows = axis_count(height, tile, overlap);
    /* tile indexes and gseg_grid_count are ints */
    if ((long long)ncols * nrows > INT_MAX)
        return gseg__err(GSEG_ERR_LIMIT,
                         "a %dx%d scene in tiles of %d overlapping by %d needs %lld tiles, more "
                         "than %d (use a larger tile or a smaller overlap)",
                         width, height, tile, overlap, (long long)ncols * nrows, INT_MAX);
    g->width = width;
    g->height = height;
    g->tile = tile;
    g->overlap = overlap;
    g->ncols = ncols;
    g->nrows = nrows;
    return GSEG_OK;
}

int gseg_grid_count(const gseg_grid *g) { return g ? g->ncols * g->nrows : 0; }

gseg_status gseg_grid_tile(const gseg_grid *g, const double gt[6], int index, gseg_tile *t)
{
    if (!g || !t || index < 0 || index >= gseg_grid_count(g))
        return gseg__err(GSEG_ERR_ARG, "grid: tile index %d out of range", index);
    static const double identity[6] = {0, 1, 0, 0, 0, 1};
    if (!gt) gt = identity;
    t->index = index;
    t->row = index / g->ncols;
    t->col = index % g->ncols;
    t->win.x = axis_pos(g->width, g->tile, g->overlap, g->ncols, t->col);
    t->win.y = axis_pos(g->height, g->tile, g->overlap, g->nrows, t->row);
    t->win.w = g->width < g->tile ? g->width : g->tile;
    t->win.h = g->height < g->tile ? g->height : g->tile;
    /* Rotation terms carry over unchanged; only the origin moves. */
    t->geotransform[0] = gt[0] + t->win.x * gt[1] + t->win.y * gt[2];
    t->geotransform[1] = gt[1];
    t->geotransform[2] = gt[2];
    t->geotransform[3] = gt[3] + t->win.x * gt[4] + t->win.y * gt[5];
    t->geotransform[4] = gt[4];
    t->geotransform[5] = gt[5];
    return GSEG_OK;
}
