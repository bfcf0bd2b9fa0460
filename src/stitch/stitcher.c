/*
 * stitcher.c — blends overlapping tile scores into final pixels, streaming.
 *
 * Along each axis, consecutive tiles i and i+1 overlap; their blend zone is
 * `overlap` pixels wide (narrower where the overlap is, or where zones would
 * touch), centred in the overlap. Outside zones each pixel belongs to exactly
 * one tile; inside a zone the value is a + b(t) * (c - a) with a the earlier
 * tile's score, c the later one's and b a raised-cosine ramp from 0 to 1. In
 * that form a == c gives a exactly, so a per-pixel model stitches bit for bit
 * like a whole-scene computation. Weights are separable (x ramp, then y
 * ramp), so blending runs in two passes: across a row of tiles with a carry
 * of the previous tile's right zone, then down with a carry of the previous
 * tile row's bottom zone. Tiles must arrive in row-major order.
 *
 * Buffers: the vertical carry (width x zone x nscores), the horizontal carry
 * (zone x tile x nscores) and one tile of output: memory grows with the scene
 * width and the overlap, never with its height.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct axis {
    int n;        /* tiles along the axis */
    int size;     /* scene pixels along the axis */
    int *pos;     /* tile starts */
    int *z0, *z1; /* blend zone between tile i and i+1: [z0[i], z1[i]) */
    float *ramp;  /* ramp[i][j]: weight of tile i+1 at z0[i] + j */
    int maxzone;
} axis;

struct gseg_stitcher {
    gseg_grid g;
    int k; /* scores per pixel */
    gseg_stitch_sink sink;
    void *user;
    axis ax, ay;
    float *hcarry;   /* [k][tile rows][maxzone x] */
    float *vcarry;   /* [k][maxzone y][width] */
    float *out;      /* [k][tile][tile] */
    uint8_t *vout;   /* [tile][tile] */
    float *hrow;     /* one row of horizontally blended values */
    int next;        /* index of the next tile expected */
    size_t bytes;
};

/* Start of the pixels tile i owns (zone or exclusive), and its exclusive
 * range [excl0, excl1), along an axis. */
static int own0(const axis *a, int i) { return i == 0 ? 0 : a->z0[i - 1]; }
static int excl0(const axis *a, int i) { return i == 0 ? 0 : a->z1[i - 1]; }
static int excl1(const axis *a, int i) { return i == a->n - 1 ? a->size : a->z0[i]; }
static int own1(const axis *a, int i) { return i == a->n - 1 ? a->size : a->z1[i]; }

static void axis_free(axis *a)
{
    free(a->pos);
    free(a->z0);
    free(a->z1);
    free(a->ramp);
}

static gseg_status axis_init(axis *a, int size, int tile, int overlap, int n,
                             const gseg_grid *g, int is_x)
{
    a->n = n;
    a->size = size;
    a->pos = gseg__calloc((size_t)n, sizeof *a->pos);
    a->z0 = gseg__calloc((size_t)n, sizeof *a->z0);
    a->z1 = gseg__calloc((size_t)n, sizeof *a->z1);
    if (!a->pos || !a->z0 || !a->z1) return GSEG_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        gseg_tile t;
        gseg_status st = gseg_grid_tile(g, NULL, is_x ? i : i * g->ncols, &t);
        if (st != GSEG_OK) return st;
        a->pos[i] = is_x ? t.win.x : t.win.y;
    }
    /* Zone lengths: at most the overlap, within both tiles, and short
     * enough that neighbouring zones never meet (half a zone fits between
     * an overlap's midpoint and the next one's). */
    a->maxzone = 0;
    for (int i = 0; i + 1 < n; i++) {
        double mid = (a->pos[i + 1] + a->pos[i] + tile) / 2.0;
        int o = a->pos[i] + tile - a->pos[i + 1];
        double room = 1e300;
        if (i > 0) room = fmin(room, mid - (a->pos[i] + a->pos[i - 1] + tile) / 2.0);
        if (i + 2 < n) room = fmin(room, (a->pos[i + 2] + a->pos[i + 1] + tile) / 2.0 - mid);
        int len = overlap < o ? overlap : o;
        if (len > room) len = (int)room;
        if (len < 0) len = 0;
        a->z0[i] = a->pos[i + 1] + (o - len) / 2;
        a->z1[i] = a->z0[i] + len;
        if (i > 0 && a->z0[i] < a->z1[i - 1]) a->z0[i] = a->z1[i - 1];
        if (a->z1[i] < a->z0[i]) a->z1[i] = a->z0[i];
        if (a->z1[i] - a->z0[i] > a->maxzone) a->maxzone = a->z1[i] - a->z0[i];
    }
    a->ramp = gseg__calloc((size_t)(n > 1 ? n - 1 : 1) * (a->maxzone ? a->maxzone : 1),
                           sizeof *a->ramp);
    if (!a->ramp) return GSEG_ERR_NOMEM;
    for (int i = 0; i + 1 < n; i++) {
        int len = a->z1[i] - a->z0[i];
        for (int j = 0; j < len; j++) {
            double t = (j + 0.5) / len;
            a->ramp[(size_t)i * a->maxzone + j] = (float)(0.5 - 0.5 * cos(M_PI * t));
        }
    }
    return GSEG_OK;
}

gseg_status gseg_stitcher_new(const gseg_grid *g, int nscores, gseg_stitch_sink sink, void *user,
                              gseg_stitcher **out)
{
    if (!out) return gseg__err(GSEG_ERR_ARG, "stitcher: NULL output");
    *out = NULL;
    if (!g || !sink || nscores < 1 || nscores > 256)
        return gseg__err(GSEG_ERR_ARG, "stitcher: bad arguments");
    gseg_stitcher *s = gseg__calloc(1, sizeof *s);
    if (!s) return GSEG_ERR_NOMEM;
    s->g = *g;
    s->k = nscores;
    s->sink = sink;
    s->user = user;
    gseg_status st = axis_init(&s->ax, g->width, g->tile, g->overlap, g->ncols, g, 1);
    if (st == GSEG_OK) st = axis_init(&s->ay, g->height, g->tile, g->overlap, g->nrows, g, 0);
    if (st == GSEG_OK) {
        size_t t = (size_t)g->tile, k = (size_t)nscores;
        size_t nh = k * t * (size_t)(s->ax.maxzone ? s->ax.maxzone : 1);
        size_t nv = k * (size_t)(s->ay.maxzone ? s->ay.maxzone : 1) * (size_t)g->width;
        s->hcarry = gseg__malloc(nh, sizeof(float));
        s->vcarry = s->hcarry ? gseg__malloc(nv, sizeof(float)) : NULL;
        s->out = s->vcarry ? gseg__malloc(k * t * t, sizeof(float)) : NULL;
        s->vout = s->out ? gseg__malloc(t * t, 1) : NULL;
        s->hrow = s->vout ? gseg__malloc(t, sizeof(float)) : NULL;
        if (!s->hrow) st = GSEG_ERR_NOMEM;
        s->bytes = (nh + nv + k * t * t + t) * sizeof(float) + t * t;
    }
    if (st != GSEG_OK) {
        gseg_stitcher_free(s);
        return st;
    }
    *out = s;
    return GSEG_OK;
}

void gseg_stitcher_free(gseg_stitcher *s)
{
    if (!s) return;
    axis_free(&s->ax);
    axis_free(&s->ay);
    free(s->hcarry);
    free(s->vcarry);
    free(s->out);
    free(s->vout);
    free(s->hrow);
    free(s);
}

size_t gseg_stitcher_buffer_bytes(const gseg_stitcher *s) { return s ? s->bytes : 0; }

gseg_status gseg_stitcher_seek(gseg_stitcher *s, int row)
{
    if (!s || row < 0 || row >= s->g.nrows)
        return gseg__err(GSEG_ERR_ARG, "stitcher: seek to tile row %d of %d", row,
                         s ? s->g.nrows : 0);
    s->next = row * s->g.ncols;
    return GSEG_OK;
}

void gseg_stitcher_rows(const gseg_stitcher *s, int row, int *y0, int *y1)
{
    *y0 = own0(&s->ay, row);
    *y1 = excl1(&s->ay, row);
}

gseg_status gseg_stitcher_add(gseg_stitcher *s, const gseg_tile *t, const float *scores,
                              const uint8_t *valid)
{
    if (!s || !t) return gseg__err(GSEG_ERR_ARG, "stitcher: NULL argument");
    if (t->index != s->next)
        return gseg__err(GSEG_ERR_ARG, "stitcher: tile %d added, tile %d expected (row-major order)",
                         t->index, s->next);
    if (scores && !valid) return gseg__err(GSEG_ERR_ARG, "stitcher: scores without validity");
    s->next++;
    const axis *ax = &s->ax, *ay = &s->ay;
    const int r = t->row, c = t->col, T = s->g.tile;
    const int cx0 = own0(ax, c), cx1 = excl1(ax, c); /* columns this tile delivers */
    const int lz1 = excl0(ax, c);                    /* end of the left zone */
    const int rz0 = ax->z0[c], rz1 = own1(ax, c);    /* right zone (if c < n-1) */
    const int ry0 = own0(ay, r), ry1 = own1(ay, r);
    const int tz1 = excl0(ay, r);                    /* end of the top zone */
    const int dy1 = excl1(ay, r);                    /* rows delivered end here */
    const int bz0 = dy1;                             /* bottom zone start */
    const int ow = cx1 - cx0, oh = dy1 - ry0;
    const size_t hzw = (size_t)(ax->maxzone ? ax->maxzone : 1);
    const size_t plane = (size_t)T * T, oplane = (size_t)ow * oh;
    const float *lramp = c > 0 ? ax->ramp + (size_t)(c - 1) * ax->maxzone : NULL;
    const float *tramp = r > 0 ? ay->ramp + (size_t)(r - 1) * ay->maxzone : NULL;
    const int tz0 = r > 0 ? ay->z0[r - 1] : 0, lz0 = c > 0 ? ax->z0[c - 1] : 0;

    for (int k = 0; k < s->k; k++) {
        float *hc = s->hcarry + (size_t)k * T * hzw;
        float *vc = s->vcarry + (size_t)k * (ay->maxzone ? ay->maxzone : 1) * s->g.width;
        float *o = s->out + (size_t)k * oplane;
        for (int y = ry0; y < ry1; y++) {
            /* the tile's row y, indexed by tile-local column */
            const float *src = scores ? scores + k * plane + (size_t)(y - t->win.y) * T : NULL;
            const int tx = t->win.x;
            float *hcr = hc + (size_t)(y - ry0) * hzw;
            /* horizontal pass over the delivered columns */
            for (int x = cx0; x < cx1; x++) {
                float v = src ? src[x - tx] : 0.0f;
                if (x < lz1) {
                    float a = hcr[x - lz0];
                    v = a + lramp[x - lz0] * (v - a);
                }
                s->hrow[x - cx0] = v;
            }
            /* keep this tile's right zone for the next tile of the row */
            if (c < ax->n - 1)
                for (int x = rz0; x < rz1; x++) hcr[x - rz0] = src ? src[x - tx] : 0.0f;
            /* vertical pass */
            if (y < tz1) {
                float *vr = vc + (size_t)(y - tz0) * s->g.width;
                float ry = tramp[y - tz0];
                float *orow = o + (size_t)(y - ry0) * ow;
                for (int x = cx0; x < cx1; x++) {
                    float a = vr[x];
                    orow[x - cx0] = a + ry * (s->hrow[x - cx0] - a);
                }
            } else if (y < dy1) {
                memcpy(o + (size_t)(y - ry0) * ow, s->hrow, (size_t)ow * sizeof(float));
            } else {
                memcpy(vc + (size_t)(y - bz0) * s->g.width + cx0, s->hrow,
                       (size_t)ow * sizeof(float));
            }
        }
    }
    if (ow < 1 || oh < 1) return GSEG_OK;
    for (int y = ry0; y < dy1; y++) {
        uint8_t *vr = s->vout + (size_t)(y - ry0) * ow;
        if (scores)
            memcpy(vr, valid + (size_t)(y - t->win.y) * T + (cx0 - t->win.x), (size_t)ow);
        else
            memset(vr, 0, (size_t)ow);
    }
    gseg_window win = {cx0, ry0, ow, oh};
    return s->sink(s->user, win, s->out, s->vout);
}
