/*
 * quicklook.c — the scene in natural colours with the class outlines drawn
 * on it, as a PNG, because people look before they read.
 *
 * The PNG's longer side is max_size pixels (the scene's size if smaller).
 * Each PNG pixel shows the scene pixel at the centre of its cell (nearest
 * neighbour, the position GDAL's own nearest RasterIO picks). The scene is
 * read through gseg_scene (band stacks, scale/offset and validity handled
 * there) in full-width strips of rows that hold sampled rows only: when the
 * PNG is much smaller than the scene, rows between samples are never read;
 * strips are aligned on the source's blocks. The mask is read by GDAL
 * straight onto the PNG's grid, from its overviews when it has them (a NULL
 * mask draws no outlines). Memory: about 26 bytes per PNG pixel plus one
 * strip of at most 256 scene rows (fewer for very wide scenes).
 *
 * Bands: rgb[] as given; rgb[0] alone shows that band in grey. With none
 * given: the bands named red/green/blue (case-insensitive), else B04/B03/B02,
 * else B4/B3/B2 (as descriptions, or as the "_B04"-style stems that name the
 * single-band files of a stack), else the bands whose GDAL colour
 * interpretation is red/green/blue, else band 1 in grey with a CPL warning.
 *
 * Colours: each band stretched linearly from its 2nd to its 98th percentile
 * over the valid sampled pixels; no data is transparent.
 *
 * Outlines: a pixel of class c (1..254) is on the outline when one of its 4
 * neighbours holds another value (another class, 0, 255) or lies outside the
 * image; it is painted class_rgba[c], opaque. So the line stays visible on
 * bright snow, pixels with data that touch an outline pixel (8-neighbours)
 * and are not outline pixels themselves are darkened to a quarter of their
 * brightness: a dark one-pixel halo on both sides of the line.
 */
#include "predict.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QL_DEFAULT_SIZE 1024
#define STRIP_MAX_ROWS 256
#define STRIP_BUDGET ((size_t)64 << 20) /* bytes of one strip with scratch */
#define MASK_NODATA 255

/* Outline colour of classes the table does not cover. */
static const uint8_t other_class_rgb[3] = {255, 0, 255};

/* One quicklook being made. */
typedef struct ql {
    const gseg__quicklook_params *p;
    const char *png;
    gseg_scene *scene;
    int nb;          /* selected bands: 3, or 1 for grey */
    int W, H;        /* scene size */
    int w, h;        /* PNG size */
    int *xs, *ys;    /* scene column of each PNG column, row of each PNG row */
    float *samples;  /* [nb][h][w] sampled values */
    uint8_t *valid;  /* [h][w] 1 where the scene has data; reused as edge map */
    uint8_t *mask;   /* [h][w] class of each PNG pixel (0 without a mask) */
    uint8_t *rgba;   /* [h][w][4] the image */
} ql;

static void ql_free(ql *q)
{
    gseg_scene_free(q->scene);
    free(q->xs);
    free(q->ys);
    free(q->samples);
    free(q->valid);
    free(q->mask);
    free(q->rgba);
}

/* ---- Band choice ---------------------------------------------------------- */

/* 1 if a band named `name` answers to `want`: equal (case-insensitively), or
 * a file stem ending in "_want" or holding "_want_" (bands of a stack of
 * single-band files are named after their files, "T43SFA_..._B04_10m"). */
static int name_is(const char *name, const char *want)
{
    size_t n = strlen(name), k = strlen(want);
    if (strcasecmp(name, want) == 0) return 1;
    if (n > k && name[n - k - 1] == '_' && strcasecmp(name + n - k, want) == 0) return 1;
    for (const char *s = strchr(name, '_'); s; s = strchr(s + 1, '_'))
        if (strncasecmp(s + 1, want, k) == 0 && s[1 + k] == '_') return 1;
    return 0;
}

/* 0-based stack indices of the red, green and blue bands of a scene opened
 * with every band, by band name; 1 if all three were found. */
static int find_rgb_by_name(const gseg_scene *all, int idx[3])
{
    static const char *const sets[][3] = {
        {"red", "green", "blue"}, {"B04", "B03", "B02"}, {"B4", "B3", "B2"}};
    int nb = gseg_scene_nbands(all);
    for (size_t s = 0; s < sizeof sets / sizeof *sets; s++) {
        int found = 0;
        for (int c = 0; c < 3; c++) {
            idx[c] = -1;
            for (int i = 0; i < nb && idx[c] < 0; i++)
                if (name_is(gseg_scene_band_name(all, i), sets[s][c])) idx[c] = i;
            found += idx[c] >= 0;
        }
        if (found == 3) return 1;
    }
    return 0;
}

/* The same by GDAL colour interpretation (RGB GeoTIFFs, PNGs, JPEGs whose
 * bands have no description); 1 if all three were found. */
static int find_rgb_by_colour(const gseg__quicklook_params *p, int idx[3])
{
    static const GDALColorInterp want[3] = {GCI_RedBand, GCI_GreenBand, GCI_BlueBand};
    idx[0] = idx[1] = idx[2] = -1;
    int base = 0;
    for (int f = 0; f < p->nscene; f++) {
        GDALDatasetH ds = GDALOpenEx(p->scene[f], GDAL_OF_RASTER | GDAL_OF_READONLY, NULL,
                                     NULL, NULL);
        if (!ds) return 0;
        int n = GDALGetRasterCount(ds);
        for (int b = 0; b < n; b++)
            for (int c = 0; c < 3; c++)
                if (idx[c] < 0 &&
                    GDALGetRasterColorInterpretation(GDALGetRasterBand(ds, b + 1)) == want[c])
                    idx[c] = base + b;
        base += n;
        GDALClose(ds);
    }
    return idx[0] >= 0 && idx[1] >= 0 && idx[2] >= 0;
}

/* Band selectors for the automatic choice: red/green/blue by name or by
 * colour interpretation, else band 1 in grey (with a warning). sel[] gets
 * "N" strings in buf, *n the band count (3 or 1). */
static gseg_status auto_bands(const gseg__quicklook_params *p, char buf[3][16],
                              const char *sel[4], int *n)
{
    gseg_scene_params sp = gseg_scene_params_default();
    if (p->resampling) sp.resampling = p->resampling;
    gseg_scene *all = NULL;
    gseg_status st = gseg_scene_open(p->scene, p->nscene, &sp, &all);
    if (st != GSEG_OK) return st;
    int idx[3];
    *n = 3;
    if (!find_rgb_by_name(all, idx) && !find_rgb_by_colour(p, idx)) {
        CPLError(CE_Warning, CPLE_AppDefined,
                 "%s: no bands named red/green/blue (or B04/B03/B02, B4/B3/B2); the quicklook "
                 "shows band 1 (%s) in grey; --quicklook-bands R,G,B chooses others",
                 p->scene[0], gseg_scene_band_name(all, 0));
        idx[0] = 0;
        *n = 1;
    }
    gseg_scene_free(all);
    for (int c = 0; c < *n; c++) {
        snprintf(buf[c], sizeof buf[c], "%d", idx[c] + 1);
        sel[c] = buf[c];
    }
    sel[*n] = NULL;
    return GSEG_OK;
}

/* Opens the scene with the three bands to show (or one, in grey): rgb[]
 * as given (rgb[0] alone = that band in grey), else chosen automatically. */
static gseg_status open_scene(ql *q)
{
    const gseg__quicklook_params *p = q->p;
    const char *sel[4] = {NULL, NULL, NULL, NULL};
    char buf[3][16];
    int given = (p->rgb[0] != NULL) + (p->rgb[1] != NULL) + (p->rgb[2] != NULL);
    if (given == 3 || (given == 1 && p->rgb[0])) {
        for (int c = 0; c < given; c++) sel[c] = p->rgb[c];
        q->nb = given;
    } else if (given == 0) {
        gseg_status st = auto_bands(p, buf, sel, &q->nb);
        if (st != GSEG_OK) return st;
    } else {
        return gseg__err(GSEG_ERR_ARG, "quicklook: give three bands (red, green, blue) or none");
    }
    gseg_scene_params sp = gseg_scene_params_default();
    sp.bands = sel;
    if (p->resampling) sp.resampling = p->resampling;
    return gseg_scene_open(p->scene, p->nscene, &sp, &q->scene);
}

/* ---- Grid ----------------------------------------------------------------- */

/* PNG size and the scene pixel sampled for each PNG column and row: the one
 * holding the cell's centre, as GDAL's nearest RasterIO computes it. */
static gseg_status plan_grid(ql *q, int max_size)
{
    q->W = gseg_scene_width(q->scene);
    q->H = gseg_scene_height(q->scene);
    int longer = q->W > q->H ? q->W : q->H;
    if (longer <= max_size) {
        q->w = q->W;
        q->h = q->H;
    } else {
        double f = (double)max_size / longer;
        q->w = q->W >= q->H ? max_size : (int)fmax(1.0, floor(q->W * f + 0.5));
        q->h = q->H >= q->W ? max_size : (int)fmax(1.0, floor(q->H * f + 0.5));
    }
    q->xs = gseg__malloc((size_t)q->w, sizeof *q->xs);
    q->ys = gseg__malloc((size_t)q->h, sizeof *q->ys);
    if (!q->xs || !q->ys) return GSEG_ERR_NOMEM;
    for (int i = 0; i < q->w; i++) {
        int x = (int)((i + 0.5) * ((double)q->W / q->w) + 1e-10);
        q->xs[i] = x < q->W ? x : q->W - 1;
    }
    for (int j = 0; j < q->h; j++) {
        int y = (int)((j + 0.5) * ((double)q->H / q->h) + 1e-10);
        q->ys[j] = y < q->H ? y : q->H - 1;
    }
    return GSEG_OK;
}

/* ---- Reading -------------------------------------------------------------- */

/* Reads the mask's band 1 onto the PNG grid (nearest; GDAL uses overviews
 * when the mask has them). Refuses a mask whose size is not the scene's. */
static gseg_status read_mask(ql *q)
{
    const char *path = q->p->mask;
    if (!path) return GSEG_OK; /* no outlines: q->mask stays all 0 */
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    if (!ds) {
        VSIStatBufL sb;
        if (VSIStatL(path, &sb) != 0) return gseg__err(GSEG_ERR_IO, "%s: no such file", path);
        return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot open the mask as a raster", path);
    }
    gseg_status st = GSEG_OK;
    int mw = GDALGetRasterXSize(ds), mh = GDALGetRasterYSize(ds);
    if (GDALGetRasterCount(ds) < 1) {
        st = gseg__err(GSEG_ERR_FORMAT, "%s: the mask has no raster bands", path);
    } else if (mw != q->W || mh != q->H) {
        st = gseg__err(GSEG_ERR_ARG, "%s: the mask is %dx%d pixels but the scene %s is %dx%d",
                       path, mw, mh, q->p->scene[0], q->W, q->H);
    } else {
        GDALRasterIOExtraArg ex;
        INIT_RASTERIO_EXTRA_ARG(ex);
        ex.eResampleAlg = GRIORA_NearestNeighbour;
        CPLErrorReset();
        if (GDALRasterIOEx(GDALGetRasterBand(ds, 1), GF_Read, 0, 0, mw, mh, q->mask, q->w, q->h,
                           GDT_Byte, 0, 0, &ex) != CE_None)
            st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot read the mask", path);
    }
    GDALClose(ds);
    return st;
}

/* Scene rows a strip may hold: at most STRIP_MAX_ROWS, and few enough that
 * the strip, the reader's scratch and validity fit in STRIP_BUDGET; a
 * multiple of the source's block height when that fits, so that strips
 * aligned on it never split a row of blocks (each is decoded once even when
 * GDAL's cache cannot hold two rows of blocks). */
static int strip_rows(const ql *q)
{
    size_t per_row = (size_t)q->W * ((size_t)q->nb * sizeof(float) + sizeof(double) + 3);
    size_t rows = STRIP_BUDGET / per_row;
    if (rows > STRIP_MAX_ROWS) rows = STRIP_MAX_ROWS;
    int bw = 0, bh = 0;
    gseg__scene_block_size(q->scene, &bw, &bh);
    if (bh > 0 && rows >= (size_t)bh) rows -= rows % (size_t)bh;
    return rows < 1 ? 1 : (int)rows;
}

/* Copies the sampled pixels of PNG rows j0..j1 from a strip that starts at
 * scene row ys[j0] (data[nb][rows][W], valid[rows][W]). */
static void take_samples(ql *q, int j0, int j1, int rows, const float *data,
                         const uint8_t *valid)
{
    size_t plane = (size_t)q->w * q->h, splane = (size_t)q->W * rows;
    for (int j = j0; j <= j1; j++) {
        size_t srow = (size_t)(q->ys[j] - q->ys[j0]) * q->W;
        for (int i = 0; i < q->w; i++) {
            size_t o = (size_t)j * q->w + i, s = srow + (size_t)q->xs[i];
            q->valid[o] = valid[s];
            for (int b = 0; b < q->nb; b++)
                q->samples[b * plane + o] = data[b * splane + s];
        }
    }
}

/* Reads the sampled pixels in full-width strips. The scene is cut into
 * bands of strip_rows() rows; a strip reads, within one band, from its
 * first to its last sampled row, so rows that no PNG row samples are skipped
 * when the PNG is much smaller than the scene. */
static gseg_status read_samples(ql *q)
{
    int cap = strip_rows(q);
    float *data = gseg__malloc((size_t)q->W * cap * q->nb, sizeof *data);
    uint8_t *valid = gseg__malloc((size_t)q->W * cap, 1);
    gseg_status st = data && valid ? GSEG_OK : GSEG_ERR_NOMEM;
    for (int j0 = 0, j1; st == GSEG_OK && j0 < q->h; j0 = j1 + 1) {
        for (j1 = j0; j1 + 1 < q->h && q->ys[j1 + 1] / cap == q->ys[j0] / cap; j1++) {}
        int rows = q->ys[j1] - q->ys[j0] + 1;
        gseg_window win = {0, q->ys[j0], q->W, rows};
        st = gseg_scene_read(q->scene, win, q->W, rows, data, valid, NULL);
        if (st == GSEG_OK) take_samples(q, j0, j1, rows, data, valid);
    }
    free(data);
    free(valid);
    return st;
}

/* ---- Colours -------------------------------------------------------------- */

/* The k-th smallest of a[0..n) (0-based; reorders a): Hoare's selection. */
static float kth_smallest(float *a, ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t l = 0, m = n - 1;
    while (l < m) {
        float x = a[k];
        ptrdiff_t i = l, j = m;
        do {
            while (a[i] < x) i++;
            while (x < a[j]) j--;
            if (i <= j) {
                float t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        } while (i <= j);
        if (j < k) l = i;
        if (k < i) m = j;
    }
    return a[k];
}

/* 2nd and 98th percentiles (nearest rank) of band b over the valid sampled
 * pixels; 0 and 0 when there are none. scratch holds w*h floats. */
static void stretch_range(const ql *q, int b, float *scratch, float *lo, float *hi)
{
    size_t plane = (size_t)q->w * q->h, n = 0;
    const float *v = q->samples + b * plane;
    for (size_t i = 0; i < plane; i++)
        if (q->valid[i]) scratch[n++] = v[i];
    *lo = *hi = 0.0f;
    if (n == 0) return;
    ptrdiff_t klo = (ptrdiff_t)floor(0.02 * (double)(n - 1) + 0.5);
    ptrdiff_t khi = (ptrdiff_t)floor(0.98 * (double)(n - 1) + 0.5);
    *lo = kth_smallest(scratch, (ptrdiff_t)n, klo);
    *hi = kth_smallest(scratch, (ptrdiff_t)n, khi);
}

/* v mapped linearly from [lo, hi] onto 0..255, clamped; mid-grey when the
 * band is constant. */
static uint8_t stretch(float v, float lo, float hi)
{
    if (!(hi > lo)) return v < lo ? 0 : v > lo ? 255 : 128;
    double t = ((double)v - lo) / ((double)hi - lo) * 255.0 + 0.5;
    return t <= 0 ? 0 : t >= 255 ? 255 : (uint8_t)t;
}

/* Fills rgba with the stretched scene: opaque where the scene has data,
 * transparent black elsewhere. One band is shown grey. */
static gseg_status compose(ql *q)
{
    size_t plane = (size_t)q->w * q->h;
    float *scratch = gseg__malloc(plane, sizeof *scratch);
    if (!scratch) return GSEG_ERR_NOMEM;
    float lo[3], hi[3];
    for (int b = 0; b < q->nb; b++) stretch_range(q, b, scratch, &lo[b], &hi[b]);
    free(scratch);
    for (size_t i = 0; i < plane; i++) {
        uint8_t *px = q->rgba + 4 * i;
        for (int c = 0; c < 3; c++) {
            int b = q->nb == 1 ? 0 : c;
            px[c] = q->valid[i] ? stretch(q->samples[b * plane + i], lo[b], hi[b]) : 0;
        }
        px[3] = q->valid[i] ? 255 : 0;
    }
    return GSEG_OK;
}

/* ---- Outlines ------------------------------------------------------------- */

/* 1 if PNG pixel (x, y) holds a class 1..254 that one of its 4 neighbours
 * (or the outside of the image) does not. */
static int on_outline(const uint8_t *m, int w, int h, int x, int y)
{
    uint8_t c = m[(size_t)y * w + x];
    if (c == 0 || c == MASK_NODATA) return 0;
    if (x == 0 || y == 0 || x == w - 1 || y == h - 1) return 1;
    const uint8_t *p = m + (size_t)y * w + x;
    return p[-1] != c || p[1] != c || p[-w] != c || p[w] != c;
}

/* 1 if one of the 8 neighbours of (x, y) is marked in edge. */
static int touches_edge(const uint8_t *edge, int w, int h, int x, int y)
{
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            int nx = x + dx, ny = y + dy;
            if (nx >= 0 && ny >= 0 && nx < w && ny < h && edge[(size_t)ny * w + nx]) return 1;
        }
    return 0;
}

/* Draws the outlines: outline pixels in their class colour (opaque), a dark
 * halo (a quarter of the brightness) on the pixels with data around them.
 * edge is w*h bytes of scratch. */
static void draw_outlines(ql *q, uint8_t *edge)
{
    const gseg__quicklook_params *p = q->p;
    int w = q->w, h = q->h;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) edge[(size_t)y * w + x] = (uint8_t)on_outline(q->mask, w, h, x, y);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            uint8_t *px = q->rgba + 4 * i;
            if (edge[i] || px[3] == 0 || !touches_edge(edge, w, h, x, y)) continue;
            for (int c = 0; c < 3; c++) px[c] >>= 2;
        }
    for (size_t i = 0; i < (size_t)w * h; i++) {
        if (!edge[i]) continue;
        int c = q->mask[i];
        const uint8_t *rgb = c < p->nclasses && p->class_rgba ? p->class_rgba[c] : other_class_rgb;
        memcpy(q->rgba + 4 * i, rgb, 3);
        q->rgba[4 * i + 3] = 255;
    }
}

/* ---- Writing -------------------------------------------------------------- */

/* Copies rgba into a MEM dataset and that into tmp as a PNG, with PAM
 * sidecars off for this thread so only the PNG appears. */
static gseg_status write_png(const ql *q, const char *tmp)
{
    GDALDriverH mem = GDALGetDriverByName("MEM"), drv = GDALGetDriverByName("PNG");
    if (!mem || !drv)
        return gseg__err(GSEG_ERR_UNSUPPORTED, "%s: this GDAL has no MEM or PNG driver", q->png);
    CPLErrorReset();
    GDALDatasetH ds = GDALCreate(mem, "", q->w, q->h, 4, GDT_Byte, NULL);
    if (!ds) return gseg__gdal_err(GSEG_ERR_NOMEM, "%s: cannot make the image", q->png);
    static const GDALColorInterp ci[4] = {GCI_RedBand, GCI_GreenBand, GCI_BlueBand,
                                          GCI_AlphaBand};
    for (int b = 0; b < 4; b++) GDALSetRasterColorInterpretation(GDALGetRasterBand(ds, b + 1), ci[b]);
    gseg_status st = GSEG_OK;
    if (GDALDatasetRasterIO(ds, GF_Write, 0, 0, q->w, q->h, q->rgba, q->w, q->h, GDT_Byte, 4,
                            NULL, 4, 4 * q->w, 1) != CE_None)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot make the image", q->png);
    const char *old = CPLGetThreadLocalConfigOption("GDAL_PAM_ENABLED", NULL);
    char *saved = old ? CPLStrdup(old) : NULL;
    CPLSetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO");
    if (st == GSEG_OK) {
        CPLErrorReset();
        /* marked as gseg's, as masks are: a rerun over the folder does not
         * take it for a scene */
        GDALSetMetadataItem(ds, "GSEG_VERSION", gseg_version(), NULL);
        GDALSetMetadataItem(ds, "GSEG_OUTPUT", "quicklook", NULL);
        const char *co[] = {"WRITE_METADATA_AS_TEXT=YES", NULL};
        GDALDatasetH out = GDALCreateCopy(drv, tmp, ds, FALSE, (char **)co, NULL, NULL);
        if (out) GDALClose(out);
        if (!out || CPLGetLastErrorType() == CE_Failure || CPLGetLastErrorType() == CE_Fatal)
            st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write the PNG", q->png);
    }
    CPLSetThreadLocalConfigOption("GDAL_PAM_ENABLED", saved);
    CPLFree(saved);
    GDALClose(ds);
    return st;
}

/* ---- The quicklook -------------------------------------------------------- */

/* Allocates the PNG-sized buffers. */
static gseg_status alloc_buffers(ql *q)
{
    size_t plane = (size_t)q->w * q->h;
    q->samples = gseg__malloc(plane * q->nb, sizeof *q->samples);
    q->valid = gseg__malloc(plane, 1);
    q->mask = gseg__calloc(plane, 1);
    q->rgba = gseg__malloc(plane, 4);
    return q->samples && q->valid && q->mask && q->rgba ? GSEG_OK : GSEG_ERR_NOMEM;
}

/* Everything up to the finished RGBA image in memory. */
static gseg_status render(ql *q)
{
    const gseg__quicklook_params *p = q->p;
    gseg_status st = open_scene(q);
    if (st == GSEG_OK) st = plan_grid(q, p->max_size > 0 ? p->max_size : QL_DEFAULT_SIZE);
    if (st == GSEG_OK) st = alloc_buffers(q);
    if (st == GSEG_OK) st = read_mask(q);
    if (st == GSEG_OK) st = read_samples(q);
    if (st == GSEG_OK) st = compose(q);
    if (st == GSEG_OK) draw_outlines(q, q->valid); /* validity is in alpha now */
    return st;
}

/* A picture is looked at north up and west left: rows of a south-up grid
 * (geotransform term 5 > 0) and columns of an east-left one (term 1 < 0)
 * are flipped. Rotated grids are drawn as stored. */
static void orient_north_up(ql *q)
{
    double gt[6];
    if (!gseg_scene_geotransform(q->scene, gt) || gt[2] != 0 || gt[4] != 0) return;
    for (int y = 0; y < q->h; y++)
        for (int x = 0; x < q->w; x++) {
            int ty = gt[5] > 0 ? q->h - 1 - y : y, tx = gt[1] < 0 ? q->w - 1 - x : x;
            size_t a = (size_t)y * q->w + x, b = (size_t)ty * q->w + tx;
            if (b <= a) continue; /* each pair once */
            uint8_t t[4];
            memcpy(t, q->rgba + 4 * a, 4);
            memcpy(q->rgba + 4 * a, q->rgba + 4 * b, 4);
            memcpy(q->rgba + 4 * b, t, 4);
        }
}

gseg_status gseg__quicklook_write(const gseg__quicklook_params *p, const char *png)
{
    if (!p) return gseg__err(GSEG_ERR_ARG, "quicklook: NULL parameters");
    if (!png || !*png) return gseg__err(GSEG_ERR_ARG, "quicklook: no output path given");
    ql q;
    memset(&q, 0, sizeof q);
    q.p = p;
    q.png = png;
    gseg_status st = render(&q);
    if (st == GSEG_OK) orient_north_up(&q);
    if (st == GSEG_OK) {
        char *tmp = gseg__tmp_path(png);
        st = tmp ? write_png(&q, tmp) : GSEG_ERR_ARG; /* too long, or out of memory */
        if (st == GSEG_OK) st = gseg__commit(tmp, png);
        else gseg__discard(tmp);
        free(tmp);
    }
    ql_free(&q);
    return st;
}
