/*
 * job.c — what predicting a scene needs, shared by gseg_predict (whole
 * scenes, streamed) and gseg_predictor (random access): the model, the scene
 * opened with the model's bands (refused when they do not match), the
 * tiling, the classes and the threshold; and the classifier that turns the
 * stitcher's final windows into row bands of class bytes, scores, pixel
 * counts and areas. One code path, so a window read through the predictor
 * (the GDAL driver) is byte for byte what gseg-predict writes.
 */
#include "predict.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

gseg_status gseg__classify_init(gseg__classify *c, const gseg__job *j, int want_scores,
                                gseg__rows_fn emit, void *user, gseg_predict_stats *stats)
{
    memset(c, 0, sizeof *c);
    c->width = j->grid.width;
    c->nscores = j->K;
    c->cap_rows = j->grid.tile;
    c->threshold = j->threshold;
    c->emit = emit;
    c->user = user;
    c->stats = stats;
    c->mrow = gseg__malloc((size_t)c->cap_rows * c->width, 1);
    if (!c->mrow) return GSEG_ERR_NOMEM;
    if (stats) {
        double gt[6];
        int geo = gseg_scene_geotransform(j->scene, gt);
        c->areas = gseg__areas_new(geo ? gt : NULL, gseg_scene_crs_wkt(j->scene), c->width,
                                   j->grid.height);
        for (int k = 0; k < 8; k++) stats->class_km2[k] = c->areas ? 0.0 : NAN;
    }
    if (want_scores) {
        c->prow = gseg__malloc((size_t)j->K * c->cap_rows * c->width, sizeof(float));
        if (!c->prow) return GSEG_ERR_NOMEM;
    }
    return GSEG_OK;
}

void gseg__classify_free(gseg__classify *c)
{
    free(c->mrow);
    free(c->prow);
    gseg__areas_free(c->areas);
    memset(c, 0, sizeof *c);
}

/* Classes (and counts, areas, scores) of one final window into the row
 * band; a complete band goes to emit. */
gseg_status gseg__classify_window(void *user, gseg_window win, const float *scores,
                                  const uint8_t *valid)
{
    gseg__classify *b = user;
    if (win.h > b->cap_rows)
        return gseg__err(GSEG_ERR_INTERNAL, "row band of %d rows exceeds the buffer", win.h);
    size_t plane = (size_t)win.w * win.h;
    float thr = (float)b->threshold;
    gseg_predict_stats *s = b->stats;
    for (int y = 0; y < win.h; y++) {
        uint8_t *m = b->mrow + (size_t)y * b->width + win.x;
        const uint8_t *v = valid + (size_t)y * win.w;
        long long n[8] = {0}, nvalid = 0;
        /* pixel areas, summed per class */
        const double *cell = s && b->areas ? gseg__areas_row(b->areas, win.y + y) : NULL;
        double km2c[8] = {0};
        for (int x = 0; x < win.w; x++) {
            size_t i = (size_t)y * win.w + x;
            uint8_t cls;
            if (!v[x]) {
                cls = GSEG__MASK_NODATA;
            } else if (b->nscores == 1) {
                cls = scores[i] > thr ? 1 : 0;
            } else {
                int best = 0;
                for (int k = 1; k < b->nscores; k++)
                    if (scores[k * plane + i] > scores[best * plane + i]) best = k;
                cls = (uint8_t)best;
            }
            m[x] = cls;
            n[cls < 8 ? cls : 7] += cls != GSEG__MASK_NODATA;
            nvalid += v[x] != 0;
            if (cell && cls != GSEG__MASK_NODATA)
                km2c[cls < 8 ? cls : 7] += cell[(win.x + x) / GSEG__AREA_CELL];
        }
        if (s) {
            s->valid_pixels += nvalid;
            for (int k = 0; k < 8; k++) s->class_pixels[k] += n[k];
            for (int k = 0; cell && k < 8; k++) s->class_km2[k] += km2c[k];
        }
        if (b->prow)
            for (int k = 0; k < b->nscores; k++) {
                float *pr = b->prow + ((size_t)k * b->cap_rows + y) * b->width + win.x;
                const float *sr = scores + k * plane + (size_t)y * win.w;
                for (int x = 0; x < win.w; x++) pr[x] = v[x] ? sr[x] : NAN;
            }
    }
    if (win.x + win.w < b->width) return GSEG_OK;
    /* the row band is complete: scores packed [k][h][width] */
    for (int k = 1; b->prow && k < b->nscores; k++)
        memmove(b->prow + (size_t)k * win.h * b->width,
                b->prow + (size_t)k * b->cap_rows * b->width,
                (size_t)win.h * b->width * sizeof(float));
    return b->emit(b->user, win.y, win.h, b->mrow, b->prow);
}

/* Sizes GDAL's block cache for the tiling unless the user set GDAL_CACHEMAX:
 * enough for a row of source blocks under one row of tiles (so striped files
 * are decompressed once) plus the output's blocks, at least 32 MiB. */
size_t gseg__cache_need(const gseg_scene *s, const gseg_grid *g)
{
    int bw = 0, bh = 0;
    gseg__scene_block_size(s, &bw, &bh);
    size_t bpp = gseg__scene_bytes_per_pixel(s);
    size_t w = (size_t)g->width;
    size_t need;
    if (bw >= g->width / 2) /* striped: full-width blocks */
        need = w * (size_t)(g->tile + (bh > 0 ? bh : 1)) * bpp;
    else
        need = (size_t)(g->tile + 2 * bw) * (size_t)(g->tile + 2 * bh) * bpp * 2;
    need += w * 512 * 5; /* output blocks: mask + scores */
    need += need / 4;
    size_t floor_ = (size_t)32 << 20;
    return need < floor_ ? floor_ : need;
}

void gseg__size_cache(const gseg_scene *s, const gseg_grid *g)
{
    if (CPLGetConfigOption("GDAL_CACHEMAX", NULL)) return;
    GDALSetCacheMax64((GIntBig)gseg__cache_need(s, g));
}

/* 1 if every selector is a plain band number. */
static int numeric_bands(const gseg_model *m)
{
    for (int i = 0; i < gseg_model_nbands(m); i++) {
        const char *b = gseg_model_band(m, i);
        char *end = NULL;
        strtol(b, &end, 10);
        if (end == b || *end) return 0;
    }
    return 1;
}

/* "N (a, b, c)" of the scene's bands, or of the model's. Static buffer per
 * call site is not needed: returns a CPLSPrintf ring buffer string. */
static const char *band_list(const gseg_scene *s, const gseg_model *m)
{
    char buf[768] = "";
    int n = s ? gseg_scene_nbands(s) : gseg_model_nbands(m);
    for (int i = 0; i < n; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "%s%s", i ? ", " : "",
                 s ? gseg_scene_band_name(s, i) : gseg_model_band(m, i));
    }
    return CPLSPrintf("%d (%s)", n, buf);
}

/* Opens the scene with the model's bands. A scene whose bands do not match
 * the model is refused naming the bands expected and found: selectors the
 * scene lacks, or (for network models trained on unnamed bands) a band
 * count different from the model's, which would feed it the wrong bands. */
static gseg_status open_scene(const gseg_predict_params *p, gseg_model *model,
                              const gseg_scene_params *sp, gseg_scene **out)
{
    gseg_status st = gseg_scene_open(p->inputs, p->ninputs, sp, out);
    int network = strcmp(gseg_model_kind(model), "network") == 0;
    if (st == GSEG_OK && !(network && numeric_bands(model))) return GSEG_OK;
    if (st != GSEG_OK && st != GSEG_ERR_ARG) return st;
    gseg_scene *all = NULL;
    gseg_scene_params any = *sp;
    any.bands = NULL;
    char why[512];
    snprintf(why, sizeof why, "%s", gseg_last_error());
    if (gseg_scene_open(p->inputs, p->ninputs, &any, &all) != GSEG_OK) {
        gseg__err(st, "%s", why);
        return st;
    }
    if (st == GSEG_OK && gseg_scene_nbands(all) == gseg_model_nbands(model)) {
        gseg_scene_free(all);
        return GSEG_OK;
    }
    const char *expected = CPLSPrintf("%s", band_list(NULL, model));
    char exp_copy[900];
    snprintf(exp_copy, sizeof exp_copy, "%s", expected);
    const char *found = band_list(all, NULL);
    if (st == GSEG_OK) {
        gseg_scene_free(*out);
        *out = NULL;
        st = gseg__err(GSEG_ERR_ARG,
                       "%s: the scene's bands do not match the model %s: it expects %s bands "
                       "by number, the scene has %s; stack the bands the model was trained "
                       "on (gdalbuildvrt -separate, or --band-file)",
                       p->inputs[0], gseg_model_spec(model), exp_copy, found);
    } else {
        st = gseg__err(GSEG_ERR_ARG,
                       "%s: the scene's bands do not match the model %s: it expects %s, the "
                       "scene has %s (%s)",
                       p->inputs[0], gseg_model_spec(model), exp_copy, found, why);
    }
    gseg_scene_free(all);
    return st;
}

/* Default batch: small on CPU (latency of the first kernels, cache), large
 * on CUDA and for the per-pixel baseline. */
static int default_batch(const gseg_predict_params *p, const gseg_model *m)
{
    if (p->batch > 0) return p->batch;
    const char *dev = p->model_options.device;
    if (strcmp(gseg_model_kind(m), "network") != 0) return 16;
    return dev && strncmp(dev, "cuda", 4) == 0 ? 16 : 4;
}


gseg_status gseg__job_open(const gseg_predict_params *p, gseg__job *j)
{
    memset(j, 0, sizeof *j);
    j->sp = gseg_scene_params_default();
    if (!p->inputs || p->ninputs < 1) return gseg__err(GSEG_ERR_ARG, "no input scene given");
    if (!p->model_handle && (!p->model || !*p->model))
        return gseg__err(GSEG_ERR_ARG,
                         "no model given: use --model ndsi:green=G,swir=S (e.g. ndsi:green=3,swir=6 "
                         "for Landsat 8) or a model file");
    if (p->batch < 0 || p->readers < 0)
        return gseg__err(GSEG_ERR_ARG, "--batch and --readers must be >= 0");
    gseg_status st = GSEG_OK;
    if (p->model_handle) {
        j->model = p->model_handle;
    } else {
        st = gseg_model_open(p->model, &p->model_options, &j->model);
        if (st != GSEG_OK) return st;
        j->own_model = 1;
        gseg__model_inference_only(j->model);
    }
    gseg_model *m = j->model;
    j->K = gseg_model_nscores(m);
    /* Tiling: as asked, else as the model was trained, else 512/64. */
    j->tile = p->tile > 0 ? p->tile : gseg_model_tile(m) > 0 ? gseg_model_tile(m) : 512;
    j->overlap = p->overlap >= 0 ? p->overlap
                 : p->tile <= 0 && gseg_model_tile(m) > 0 ? gseg_model_overlap(m)
                                                          : j->tile / 8;
    if (j->overlap >= j->tile) {
        st = gseg__err(GSEG_ERR_ARG, "the overlap %d must be smaller than the tile size %d",
                       j->overlap, j->tile);
        gseg__job_close(j);
        return st;
    }
    /* Mask classes (255 is nodata): the model's, or background/glacier. */
    j->nclasses = gseg__model_classes(m, &j->class_names, &j->class_rgba);
    j->threshold = isnan(p->threshold) ? gseg_model_threshold(m) : p->threshold;
    int nb = gseg_model_nbands(m);
    j->sel = gseg__calloc((size_t)nb + 1, sizeof *j->sel);
    if (!j->sel) st = GSEG_ERR_NOMEM;
    for (int i = 0; st == GSEG_OK && i < nb; i++) j->sel[i] = gseg_model_band(m, i);
    j->sp.bands = j->sel;
    if (p->resampling) j->sp.resampling = p->resampling;
    if (st == GSEG_OK) st = open_scene(p, m, &j->sp, &j->scene);
    if (st == GSEG_OK) {
        int georef = gseg__scene_georef_kind(j->scene);
        gseg_scene_geotransform(j->scene, j->gt);
        if (georef == GSEG_GEOREF_NONE)
            CPLError(CE_Warning, CPLE_AppDefined,
                     "%s: no georeferencing; the mask will have none and outline areas are "
                     "unknown", p->inputs[0]);
        else if (georef == GSEG_GEOREF_GT && !*gseg_scene_crs_wkt(j->scene))
            CPLError(CE_Warning, CPLE_AppDefined,
                     "%s: a geotransform but no CRS; areas are unknown, so no km² and no "
                     "--min-area (assign one: gdal_edit.py -a_srs EPSG:...)", p->inputs[0]);
        else if (georef != GSEG_GEOREF_GT)
            CPLError(CE_Warning, CPLE_AppDefined,
                     "%s: georeferenced by %s only; the mask carries them, but outlines are in "
                     "pixel coordinates and their areas are unknown", p->inputs[0],
                     georef == GSEG_GEOREF_GCP ? "ground control points" : "RPC metadata");
        st = gseg_grid_init(&j->grid, gseg_scene_width(j->scene), gseg_scene_height(j->scene),
                            j->tile, j->overlap);
    }
    j->batch = default_batch(p, m);
    j->readers = p->readers > 0 ? p->readers : 2;
    if (st != GSEG_OK) gseg__job_close(j);
    return st;
}

void gseg__job_close(gseg__job *j)
{
    gseg_scene_free(j->scene);
    if (j->own_model) gseg_model_free(j->model);
    free(j->sel);
    memset(j, 0, sizeof *j);
}

void gseg__job_pipe_params(const gseg__job *j, const gseg_predict_params *p,
                           gseg__pipe_params *pp)
{
    memset(pp, 0, sizeof *pp);
    pp->paths = p->inputs;
    pp->npaths = p->ninputs;
    pp->scene_params = &j->sp;
    pp->scene = j->scene;
    pp->grid = &j->grid;
    pp->gt = j->gt;
    pp->model = j->model;
    pp->batch = j->batch;
    pp->readers = j->readers;
    pp->name = p->inputs[0];
}
