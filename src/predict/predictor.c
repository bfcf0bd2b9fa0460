/*
 * predictor.c — random access to a scene's prediction, for the GDAL driver
 * and other viewers.
 *
 * A window is served from row bands: the rows the stitcher delivers for one
 * tile row. A missing band is computed by running its tile row through the
 * same pipeline, stitcher and classifier as gseg_predict — so the bytes are
 * gseg-predict's — after seeking the stitcher to the tile row above (whose
 * own output is discarded: it only rebuilds the blend carry). Reading bands
 * in order (gdal_translate) continues the stitcher without re-running
 * anything; recent bands are kept in a small LRU cache.
 */
#include "predict.h"

#include <cpl_conv.h>
#include <cpl_string.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct band {
    int row;          /* tile row, -1 if empty */
    int y0, y1;       /* scene rows */
    uint8_t *mask;    /* [y1-y0][width] */
    float *scores;    /* [K][y1-y0][width] or NULL */
    unsigned long used;
} band;

struct gseg_predictor {
    gseg_predict_params p;      /* strings below are owned copies */
    char **inputs;
    char *model;
    gseg__job job;
    gseg_predictor_info info;
    gseg_stitcher *stitcher;
    gseg__classify cls;
    int want_scores;
    int next_row;               /* the stitcher continues exactly here; -1 */
    int capture;                /* tile row whose band is being kept; -1 */
    band *cache;
    int ncache;
    unsigned long clock;
};

static band *find_band(gseg_predictor *pr, int row)
{
    for (int i = 0; i < pr->ncache; i++)
        if (pr->cache[i].row == row) return &pr->cache[i];
    return NULL;
}

/* The least recently used slot, emptied. */
static band *free_band(gseg_predictor *pr)
{
    band *b = &pr->cache[0];
    for (int i = 1; i < pr->ncache; i++)
        if (pr->cache[i].used < b->used) b = &pr->cache[i];
    b->row = -1;
    return b;
}

/* emit of the classifier: keeps the band of the tile row being captured. */
static gseg_status keep_band(void *user, int y, int h, const uint8_t *mask, const float *scores)
{
    gseg_predictor *pr = user;
    if (pr->capture < 0) return GSEG_OK;
    int y0, y1;
    gseg_stitcher_rows(pr->stitcher, pr->capture, &y0, &y1);
    if (y != y0) return GSEG_OK; /* the row above, rebuilding the carry */
    if (h != y1 - y0)
        return gseg__err(GSEG_ERR_INTERNAL, "predictor: band of %d rows, %d expected", h,
                         y1 - y0);
    band *b = free_band(pr);
    size_t W = (size_t)pr->job.grid.width;
    memcpy(b->mask, mask, (size_t)h * W);
    if (pr->want_scores) memcpy(b->scores, scores, (size_t)pr->job.K * h * W * sizeof(float));
    b->row = pr->capture;
    b->y0 = y0;
    b->y1 = y1;
    b->used = ++pr->clock;
    return GSEG_OK;
}

/* Computes the band of tile row r into the cache. */
static gseg_status compute(gseg_predictor *pr, int r)
{
    const gseg_grid *g = &pr->job.grid;
    int start = r;
    gseg_status st = GSEG_OK;
    if (pr->next_row != r) {
        start = r > 0 ? r - 1 : 0;
        st = gseg_stitcher_seek(pr->stitcher, start);
    }
    gseg__pipe_params pp;
    gseg__job_pipe_params(&pr->job, &pr->p, &pp);
    pp.stitcher = pr->stitcher;
    pp.first_tile = start * g->ncols;
    pp.ntiles = (r - start + 1) * g->ncols;
    pr->capture = r;
    pr->next_row = -1;
    gseg__pipe_stats ps;
    if (st == GSEG_OK) st = gseg__pipe_run(&pp, &ps);
    pr->capture = -1;
    if (st != GSEG_OK) return st;
    pr->next_row = r + 1 < g->nrows ? r + 1 : -1;
    return find_band(pr, r) ? GSEG_OK
                            : gseg__err(GSEG_ERR_INTERNAL, "predictor: tile row %d not kept", r);
}

/* The tile row whose band holds scene row y (bands partition the rows). */
static int row_of(const gseg_predictor *pr, int y)
{
    int lo = 0, hi = pr->job.grid.nrows - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2, y0, y1;
        gseg_stitcher_rows(pr->stitcher, mid, &y0, &y1);
        if (y0 <= y) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

gseg_status gseg_predictor_read(gseg_predictor *pr, gseg_window win, uint8_t *mask,
                                float *scores)
{
    if (!pr) return gseg__err(GSEG_ERR_ARG, "predictor: NULL");
    const gseg_grid *g = &pr->job.grid;
    if (win.w < 1 || win.h < 1 || win.x < 0 || win.y < 0 || win.x + win.w > g->width ||
        win.y + win.h > g->height)
        return gseg__err(GSEG_ERR_ARG, "%s: window %d,%d %dx%d is outside the %dx%d scene",
                         pr->inputs[0], win.x, win.y, win.w, win.h, g->width, g->height);
    if (scores && !pr->want_scores)
        return gseg__err(GSEG_ERR_ARG, "predictor: opened without scores");
    size_t W = (size_t)g->width, plane = (size_t)win.w * win.h;
    for (int y = win.y; y < win.y + win.h;) {
        int r = row_of(pr, y);
        band *b = find_band(pr, r);
        if (!b) {
            gseg_status st = compute(pr, r);
            if (st != GSEG_OK) return st;
            b = find_band(pr, r);
        }
        b->used = ++pr->clock;
        int y1 = b->y1 < win.y + win.h ? b->y1 : win.y + win.h;
        size_t bh = (size_t)(b->y1 - b->y0);
        for (int yy = y; yy < y1; yy++) {
            size_t src = (size_t)(yy - b->y0) * W + win.x, dst = (size_t)(yy - win.y) * win.w;
            if (mask) memcpy(mask + dst, b->mask + src, (size_t)win.w);
            for (int k = 0; scores && k < pr->job.K; k++)
                memcpy(scores + k * plane + dst, b->scores + k * bh * W + src,
                       (size_t)win.w * sizeof(float));
        }
        y = y1;
    }
    return GSEG_OK;
}

/* Cache size in bands: GSEG_PREDICTOR_CACHE bytes (default 256 MB), at
 * least 3 bands (a block spans at most two; one more for the row above). */
static int cache_bands(const gseg_predictor *pr)
{
    const gseg_grid *g = &pr->job.grid;
    double per = (double)g->width * g->tile * (1 + (pr->want_scores ? 4.0 * pr->job.K : 0));
    double budget = CPLAtofM(CPLGetConfigOption("GSEG_PREDICTOR_CACHE", "268435456"));
    int n = (int)fmin(budget / per, g->nrows);
    return n < 3 ? 3 : n;
}

static gseg_status alloc_cache(gseg_predictor *pr)
{
    pr->ncache = cache_bands(pr);
    pr->cache = gseg__calloc((size_t)pr->ncache, sizeof *pr->cache);
    if (!pr->cache) return GSEG_ERR_NOMEM;
    size_t W = (size_t)pr->job.grid.width, H = (size_t)pr->job.grid.tile;
    for (int i = 0; i < pr->ncache; i++) {
        band *b = &pr->cache[i];
        b->row = -1;
        b->mask = gseg__malloc(W * H, 1);
        if (!b->mask) return GSEG_ERR_NOMEM;
        if (pr->want_scores) {
            b->scores = gseg__malloc((size_t)pr->job.K * W * H, sizeof(float));
            if (!b->scores) return GSEG_ERR_NOMEM;
        }
    }
    return GSEG_OK;
}

gseg_status gseg_predictor_open(const gseg_predict_params *p, int want_scores,
                                gseg_predictor **out)
{
    if (!out) return gseg__err(GSEG_ERR_ARG, "predictor: NULL output");
    *out = NULL;
    if (!p || !p->inputs || p->ninputs < 1) return gseg__err(GSEG_ERR_ARG, "no input scene given");
    gseg_predictor *pr = gseg__calloc(1, sizeof *pr);
    if (!pr) return GSEG_ERR_NOMEM;
    pr->p = *p;
    for (int i = 0; i < p->ninputs; i++) pr->inputs = CSLAddString(pr->inputs, p->inputs[i]);
    pr->p.inputs = (const char *const *)pr->inputs;
    pr->model = p->model ? gseg__strdup(p->model) : NULL;
    pr->p.model = pr->model;
    pr->p.output = pr->p.proba = pr->p.vector = pr->p.quicklook = NULL;
    pr->want_scores = want_scores != 0;
    pr->next_row = -1;
    pr->capture = -1;
    gseg_status st = gseg__job_open(&pr->p, &pr->job);
    if (st == GSEG_OK)
        st = gseg__classify_init(&pr->cls, &pr->job, pr->want_scores, keep_band, pr, NULL);
    if (st == GSEG_OK)
        st = gseg_stitcher_new(&pr->job.grid, pr->job.K, gseg__classify_window, &pr->cls,
                               &pr->stitcher);
    if (st == GSEG_OK) st = alloc_cache(pr);
    if (st != GSEG_OK) {
        gseg_predictor_free(pr);
        return st;
    }
    gseg_predictor_info *i = &pr->info;
    i->width = pr->job.grid.width;
    i->height = pr->job.grid.height;
    i->nscores = pr->job.K;
    i->nclasses = pr->job.nclasses;
    i->class_names = pr->job.class_names;
    i->class_rgba = pr->job.class_rgba;
    i->tile = pr->job.tile;
    i->overlap = pr->job.overlap;
    i->threshold = pr->job.threshold;
    i->model = pr->job.model;
    i->scene = pr->job.scene;
    *out = pr;
    return GSEG_OK;
}

void gseg_predictor_free(gseg_predictor *pr)
{
    if (!pr) return;
    for (int i = 0; pr->cache && i < pr->ncache; i++) {
        free(pr->cache[i].mask);
        free(pr->cache[i].scores);
    }
    free(pr->cache);
    gseg_stitcher_free(pr->stitcher);
    gseg__classify_free(&pr->cls);
    gseg__job_close(&pr->job);
    CSLDestroy(pr->inputs);
    free(pr->model);
    free(pr);
}

const gseg_predictor_info *gseg_predictor_get_info(const gseg_predictor *pr)
{
    return pr ? &pr->info : NULL;
}
