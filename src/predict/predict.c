/*
 * predict.c — one scene through read → tile → infer → stitch → write →
 * vectorize.
 *
 * Tiles are read and inferred in row-major order; the stitcher hands back
 * final windows, which are thresholded into a row band (mask bytes and, if
 * asked for, float scores) and written as soon as the band is complete. So
 * memory is bounded by the tile size, overlap and scene width, never by the
 * scene height.
 */
#include "internal.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

gseg_predict_params gseg_predict_params_default(void)
{
    gseg_predict_params p;
    memset(&p, 0, sizeof p);
    p.min_area_km2 = 0.01;
    p.tile = 0;
    p.overlap = -1;
    p.model_options = gseg_model_options_default();
    p.threshold = NAN;
    p.auto_cache = 1;
    return p;
}

/* Class table of masks: 0 background, 1 glacier, 255 nodata. */
static const char *const class_names[] = {"background", "glacier"};
static const unsigned char class_rgba[][4] = {{0, 0, 0, 0}, {0, 170, 255, 255}};
#define MASK_NODATA 255

typedef struct band_sink {
    gseg_writer *mask, *proba;
    int width, nscores;
    double threshold;
    uint8_t *mrow;   /* [rows][width] */
    float *prow;     /* [nscores][rows][width] when writing scores */
    int cap_rows;    /* rows the band buffers hold */
    gseg_predict_stats *stats;
} band_sink;

static gseg_status sink_window(void *user, gseg_window win, const float *scores,
                               const uint8_t *valid)
{
    band_sink *b = user;
    if (win.h > b->cap_rows)
        return gseg__err(GSEG_ERR_INTERNAL, "row band of %d rows exceeds the buffer", win.h);
    size_t plane = (size_t)win.w * win.h;
    float thr = (float)b->threshold;
    for (int y = 0; y < win.h; y++) {
        uint8_t *m = b->mrow + (size_t)y * b->width + win.x;
        const uint8_t *v = valid + (size_t)y * win.w;
        for (int x = 0; x < win.w; x++) {
            size_t i = (size_t)y * win.w + x;
            uint8_t cls;
            if (!v[x]) {
                cls = MASK_NODATA;
            } else if (b->nscores == 1) {
                cls = scores[i] > thr ? 1 : 0;
            } else {
                int best = 0;
                for (int k = 1; k < b->nscores; k++)
                    if (scores[k * plane + i] > scores[best * plane + i]) best = k;
                cls = (uint8_t)best;
            }
            m[x] = cls;
            b->stats->class_pixels[cls < 8 ? cls : 7] += cls != MASK_NODATA;
            b->stats->valid_pixels += v[x] != 0;
        }
        if (b->prow)
            for (int k = 0; k < b->nscores; k++) {
                float *pr = b->prow + ((size_t)k * b->cap_rows + y) * b->width + win.x;
                const float *sr = scores + k * plane + (size_t)y * win.w;
                for (int x = 0; x < win.w; x++) pr[x] = v[x] ? sr[x] : NAN;
            }
    }
    if (win.x + win.w < b->width) return GSEG_OK;
    /* the row band is complete */
    gseg_status st = gseg_writer_write_rows(b->mask, win.y, win.h, b->mrow);
    if (st == GSEG_OK && b->proba) {
        if (b->nscores == 1) {
            st = gseg_writer_write_rows(b->proba, win.y, win.h, b->prow);
        } else { /* pack [k][h][w] for the writer */
            for (int k = 1; k < b->nscores; k++)
                memmove(b->prow + (size_t)k * win.h * b->width,
                        b->prow + (size_t)k * b->cap_rows * b->width,
                        (size_t)win.h * b->width * sizeof(float));
            st = gseg_writer_write_rows(b->proba, win.y, win.h, b->prow);
        }
    }
    return st;
}

/* "dir/scene.tif" -> "dir/scene_mask.tif"; VSI inputs write to the current
 * folder. Caller frees. */
static char *default_output(const char *input)
{
    const char *stem = CPLGetBasename(input);
    if (strncmp(input, "/vsi", 4) == 0)
        return gseg__strdup(CPLSPrintf("%s_mask.tif", stem));
    const char *dir = CPLGetPath(input);
    char *d = gseg__strdup(dir);
    if (!d) return NULL;
    char *out = gseg__strdup(CPLFormFilename(*d ? d : NULL, CPLSPrintf("%s_mask", stem), "tif"));
    free(d);
    return out;
}

/* Sizes GDAL's block cache for the tiling unless the user set GDAL_CACHEMAX:
 * enough for a row of source blocks under one row of tiles (so striped files
 * are decompressed once) plus the output's blocks, at least 64 MiB. */
static void size_cache(const gseg_scene *s, const gseg_grid *g)
{
    if (CPLGetConfigOption("GDAL_CACHEMAX", NULL)) return;
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
    size_t floor_ = (size_t)64 << 20;
    if (need < floor_) need = floor_;
    GDALSetCacheMax64((GIntBig)need);
}

static char **output_metadata(const gseg_predict_params *p, const gseg_model *m, double thr,
                              int tile, int overlap)
{
    char **md = NULL;
    md = CSLSetNameValue(md, "GSEG_VERSION", gseg_version());
    md = CSLSetNameValue(md, "GSEG_MODEL", gseg_model_spec(m));
    md = CSLSetNameValue(md, "GSEG_SCORE", gseg_model_score_name(m));
    if (gseg_model_nscores(m) == 1) md = CSLSetNameValue(md, "GSEG_THRESHOLD", CPLSPrintf("%.17g", thr));
    md = CSLSetNameValue(md, "GSEG_TILE", CPLSPrintf("%d", tile));
    md = CSLSetNameValue(md, "GSEG_OVERLAP", CPLSPrintf("%d", overlap));
    char *in = NULL;
    for (int i = 0; i < p->ninputs; i++) {
        const char *prev = in ? in : "";
        char *n = CPLStrdup(CPLSPrintf("%s%s%s", prev, i ? ";" : "", p->inputs[i]));
        CPLFree(in);
        in = n;
    }
    md = CSLSetNameValue(md, "GSEG_INPUT", in);
    CPLFree(in);
    return md;
}

static int same_file(const char *a, const char *b)
{
    VSIStatBufL sa, sb;
    if (strcmp(a, b) == 0) return 1;
    if (VSIStatL(a, &sa) != 0 || VSIStatL(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

gseg_status gseg_predict(const gseg_predict_params *p, gseg_progress_fn progress, void *user,
                         gseg_predict_stats *stats_out)
{
    gseg_predict_stats stats;
    memset(&stats, 0, sizeof stats);
    if (!p) return gseg__err(GSEG_ERR_ARG, "predict: NULL parameters");
    if (!p->inputs || p->ninputs < 1) return gseg__err(GSEG_ERR_ARG, "no input scene given");
    if (!p->model_handle && (!p->model || !*p->model))
        return gseg__err(GSEG_ERR_ARG,
                         "no model given: use --model ndsi:green=G,swir=S (e.g. ndsi:green=3,swir=6 "
                         "for Landsat 8) or a model file");
    if (!(p->min_area_km2 >= 0) || !(p->simplify_m >= 0))
        return gseg__err(GSEG_ERR_ARG, "--min-area and --simplify must be >= 0");

    gseg_model *model = NULL;
    gseg_scene *scene = NULL;
    gseg_stitcher *stitcher = NULL;
    gseg_writer *wmask = NULL, *wproba = NULL;
    band_sink bs;
    memset(&bs, 0, sizeof bs);
    float *in = NULL, *scores = NULL;
    uint8_t *valid = NULL;
    char *out_path = NULL;
    char **md = NULL;
    int K = 0;
    gseg_status st = p->model_handle ? GSEG_OK
                                     : gseg_model_open(p->model, &p->model_options, &model);
    if (p->model_handle) model = p->model_handle;
    if (st != GSEG_OK) goto done;
    K = gseg_model_nscores(model);
    /* Tiling: as asked, else as the model was trained, else 512/64. */
    int tile = p->tile > 0 ? p->tile : gseg_model_tile(model) > 0 ? gseg_model_tile(model) : 512;
    int overlap = p->overlap >= 0 ? p->overlap
                  : p->tile <= 0 && gseg_model_tile(model) > 0 ? gseg_model_overlap(model)
                                                               : tile / 8;
    if (overlap >= tile) {
        st = gseg__err(GSEG_ERR_ARG, "--overlap %d must be smaller than the tile size %d",
                       overlap, tile);
        goto done;
    }
    /* Mask classes: the model's (network models), else background/glacier. */
    const char *const *cnames = class_names;
    const unsigned char (*crgba)[4] = class_rgba;
    int ncls = gseg__model_classes(model, &cnames, &crgba);
    if (ncls == 0) {
        ncls = 2;
        cnames = class_names;
        crgba = class_rgba;
    }
    double thr = isnan(p->threshold) ? gseg_model_threshold(model) : p->threshold;

    {
        int nb = gseg_model_nbands(model);
        const char **sel = gseg__calloc((size_t)nb + 1, sizeof *sel);
        if (!sel) { st = GSEG_ERR_NOMEM; goto done; }
        for (int i = 0; i < nb; i++) sel[i] = gseg_model_band(model, i);
        gseg_scene_params sp = gseg_scene_params_default();
        sp.bands = sel;
        if (p->resampling) sp.resampling = p->resampling;
        st = gseg_scene_open(p->inputs, p->ninputs, &sp, &scene);
        free(sel);
        if (st != GSEG_OK) goto done;
    }
    double gt[6];
    if (!gseg_scene_geotransform(scene, gt) && !*gseg_scene_crs_wkt(scene))
        CPLError(CE_Warning, CPLE_AppDefined,
                 "%s: no georeferencing; the mask will have none and outline areas are unknown",
                 p->inputs[0]);

    gseg_grid grid;
    st = gseg_grid_init(&grid, gseg_scene_width(scene), gseg_scene_height(scene), tile,
                        overlap);
    if (st != GSEG_OK) goto done;

    /* Plan memory before allocating any of it. */
    {
        size_t T = (size_t)grid.tile, W = (size_t)grid.width, C = (size_t)gseg_model_nbands(model);
        size_t band_rows = T;
        double need = (double)(C + 2 * K) * T * T * 4 + T * T          /* tile buffers */
                      + (double)K * W * (grid.overlap + 1) * 4           /* stitch carry */
                      + (double)W * band_rows * (1 + (p->proba ? 4.0 * K : 0)); /* row band */
        size_t lim = gseg__memory_limit();
        if (need > (double)lim) {
            st = gseg__err(GSEG_ERR_LIMIT,
                           "%s: a %dx%d scene with %d-pixel tiles needs %.0f MiB, more than the "
                           "%.0f MiB allowed (--config GSEG_MAX_MEMORY)",
                           p->inputs[0], grid.width, grid.height, grid.tile, need / 1048576.0,
                           lim / 1048576.0);
            goto done;
        }
        bs.cap_rows = (int)band_rows;
    }
    if (p->auto_cache) size_cache(scene, &grid);

    out_path = p->output ? gseg__strdup(p->output) : default_output(p->inputs[0]);
    if (!out_path) { st = GSEG_ERR_NOMEM; goto done; }
    for (int i = 0; i < p->ninputs; i++)
        if (same_file(out_path, p->inputs[i]) ||
            (p->proba && same_file(p->proba, p->inputs[i]))) {
            st = gseg__err(GSEG_ERR_ARG, "%s: output would overwrite an input", p->inputs[i]);
            goto done;
        }
    if (p->proba && strcmp(p->proba, out_path) == 0) {
        st = gseg__err(GSEG_ERR_ARG, "%s: --proba and the mask are the same file", out_path);
        goto done;
    }

    md = output_metadata(p, model, thr, tile, overlap);
    {
        gseg_writer_params wp = gseg_writer_params_default();
        wp.format = p->format;
        wp.create_options = p->create_options;
        wp.width = grid.width;
        wp.height = grid.height;
        wp.nbands = 1;
        wp.type = GSEG_BYTE;
        wp.georef = scene;
        wp.has_nodata = 1;
        wp.nodata = MASK_NODATA;
        wp.nclasses = ncls;
        wp.class_names = cnames;
        wp.class_rgba = crgba;
        wp.band_description = "glacier mask";
        wp.metadata = (const char *const *)md;
        st = gseg_writer_open(out_path, &wp, &wmask);
        if (st != GSEG_OK) goto done;
        if (p->proba) {
            wp.nbands = K;
            wp.type = GSEG_FLOAT32;
            wp.nodata = NAN;
            wp.nclasses = 0;
            wp.band_description = gseg_model_score_name(model);
            wp.format = p->format;
            st = gseg_writer_open(p->proba, &wp, &wproba);
            if (st != GSEG_OK) goto done;
        }
    }

    bs.mask = wmask;
    bs.proba = wproba;
    bs.width = grid.width;
    bs.nscores = K;
    bs.threshold = thr;
    bs.stats = &stats;
    bs.mrow = gseg__malloc((size_t)bs.cap_rows * grid.width, 1);
    if (!bs.mrow) { st = GSEG_ERR_NOMEM; goto done; }
    if (wproba) {
        bs.prow = gseg__malloc((size_t)K * bs.cap_rows * grid.width, sizeof(float));
        if (!bs.prow) { st = GSEG_ERR_NOMEM; goto done; }
    }
    st = gseg_stitcher_new(&grid, K, sink_window, &bs, &stitcher);
    if (st != GSEG_OK) goto done;

    size_t T = (size_t)grid.tile;
    int C = gseg_model_nbands(model);
    in = gseg__malloc((size_t)C * T * T, sizeof(float));
    scores = in ? gseg__malloc((size_t)K * T * T, sizeof(float)) : NULL;
    valid = scores ? gseg__malloc(T * T, 1) : NULL;
    if (!valid) { st = GSEG_ERR_NOMEM; goto done; }

    /* Share of progress: tiles, then finishing the rasters, then outlines. */
    double f_tiles = p->vector ? 0.75 : 0.9, f_write = p->vector ? 0.85 : 1.0;
    int ntiles = gseg_grid_count(&grid);
    stats.tiles = ntiles;
    stats.pixels = (long long)grid.width * grid.height;
    for (int i = 0; i < ntiles && st == GSEG_OK; i++) {
        gseg_tile t;
        size_t nvalid = 0;
        st = gseg_grid_tile(&grid, gt, i, &t);
        if (st == GSEG_OK) st = gseg_scene_read(scene, t.win, grid.tile, grid.tile, in, valid, &nvalid);
        if (st != GSEG_OK) break;
        if (nvalid == 0) {
            stats.tiles_skipped++;
            st = gseg_stitcher_add(stitcher, &t, NULL, NULL);
        } else {
            st = gseg_model_forward(model, in, 1, grid.tile, grid.tile, valid, scores);
            if (st == GSEG_OK) st = gseg_stitcher_add(stitcher, &t, scores, valid);
        }
        if (st == GSEG_OK && progress &&
            !progress(f_tiles * (i + 1) / ntiles, NULL, user))
            st = gseg__err(GSEG_ERR_CANCELLED, "%s: cancelled", out_path);
    }
    if (st != GSEG_OK) goto done;
    /* Release the scene's cached blocks before the COG copy needs the cache. */
    gseg_scene_free(scene);
    scene = NULL;

    {
        void *sc = progress ? GDALCreateScaledProgress(f_tiles, f_write, progress, user) : NULL;
        gseg_writer *w = wmask;
        wmask = NULL;
        st = gseg_writer_close(w, progress ? GDALScaledProgress : NULL, sc);
        if (sc) GDALDestroyScaledProgress(sc);
        if (st == GSEG_OK && wproba) {
            w = wproba;
            wproba = NULL;
            st = gseg_writer_close(w, NULL, NULL);
        }
        if (st != GSEG_OK) goto done;
    }

    if (p->vector) {
        gseg_vectorize_params vp = gseg_vectorize_params_default();
        vp.format = p->vector_format;
        vp.min_area_km2 = p->min_area_km2;
        vp.simplify_m = p->simplify_m;
        vp.t_srs = p->t_srs;
        vp.source = CPLGetFilename(p->inputs[0]);
        vp.nclasses = ncls;
        vp.class_names = cnames;
        gseg_vectorize_stats vs;
        memset(&vs, 0, sizeof vs);
        void *sc = progress ? GDALCreateScaledProgress(f_write, 1.0, progress, user) : NULL;
        st = gseg_vectorize(out_path, p->vector, &vp, progress ? GDALScaledProgress : NULL, sc, &vs);
        if (sc) GDALDestroyScaledProgress(sc);
        stats.glacier_km2 = vs.area_km2;
        stats.polygons = vs.polygons;
    }

done:
    gseg_writer_abort(wmask);
    gseg_writer_abort(wproba);
    gseg_stitcher_free(stitcher);
    gseg_scene_free(scene);
    if (model != p->model_handle) gseg_model_free(model);
    free(in);
    free(scores);
    free(valid);
    free(bs.mrow);
    free(bs.prow);
    free(out_path);
    CSLDestroy(md);
    if (stats_out) *stats_out = stats;
    return st;
}
