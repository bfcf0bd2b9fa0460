/*
 * predict.c — one scene through read → tile → infer → stitch → write →
 * vectorize (→ quicklook).
 *
 * The tiles run through the overlapped pipeline of pipeline.c (reader
 * threads, the network on this thread, the blender thread); the stitcher
 * hands back final windows, which the sink below thresholds into a row band
 * (mask bytes and, if asked for, float scores) and writes as soon as the
 * band is complete. So memory is bounded by the tile size, batch, overlap
 * and scene width, never by the scene height.
 */
#include "predict.h"

#include <geodesic.h>
#include <ogr_srs_api.h>
#include <time.h>

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

/* Ground area of the pixels of a row, for the per-class areas. */
typedef struct px_area {
    int kind;       /* 0 unknown, 1 constant (projected), 2 per row (geographic) */
    double km2;     /* kind 1 */
    double gt[6];
    double deg_per_unit;
    struct geod_geodesic geod;
} px_area;

static void px_area_init(px_area *a, const gseg_scene *s)
{
    memset(a, 0, sizeof *a);
    const char *wkt = gseg_scene_crs_wkt(s);
    if (!gseg_scene_geotransform(s, a->gt) || !*wkt) return;
    OGRSpatialReferenceH srs = OSRNewSpatialReference(wkt);
    if (!srs) return;
    if (OSRIsGeographic(srs)) {
        OGRErr e1 = OGRERR_NONE, e2 = OGRERR_NONE;
        double semi = OSRGetSemiMajor(srs, &e1), invf = OSRGetInvFlattening(srs, &e2);
        double rad = OSRGetAngularUnits(srs, NULL);
        if (e1 == OGRERR_NONE && e2 == OGRERR_NONE && semi > 0 && rad > 0) {
            geod_init(&a->geod, semi, invf != 0 ? 1.0 / invf : 0.0);
            a->deg_per_unit = rad * 180.0 / M_PI;
            a->kind = 2;
        }
    } else if (OSRIsProjected(srs)) {
        double m = OSRGetLinearUnits(srs, NULL);
        a->km2 = fabs(a->gt[1] * a->gt[5] - a->gt[2] * a->gt[4]) * m * m / 1e6;
        a->kind = 1;
    }
    OSRDestroySpatialReference(srs);
}

/* km² of one pixel of row y (at column x; geographic pixels vary with
 * latitude only, to within rounding for rotated grids). NaN if unknown. */
static double px_area_km2(const px_area *a, int x, int y)
{
    if (a->kind == 1) return a->km2;
    if (a->kind != 2) return NAN;
    double lat[4], lon[4], area = 0;
    static const int cx[4] = {0, 1, 1, 0}, cy[4] = {0, 0, 1, 1};
    for (int i = 0; i < 4; i++) {
        double px = x + cx[i], py = y + cy[i];
        lon[i] = (a->gt[0] + px * a->gt[1] + py * a->gt[2]) * a->deg_per_unit;
        lat[i] = (a->gt[3] + px * a->gt[4] + py * a->gt[5]) * a->deg_per_unit;
    }
    geod_polygonarea(&a->geod, lat, lon, 4, &area, NULL);
    return fabs(area) / 1e6;
}

typedef struct band_sink {
    gseg_writer *mask, *proba;
    int width, nscores;
    double threshold;
    uint8_t *mrow;   /* [rows][width] */
    float *prow;     /* [nscores][rows][width] when writing scores */
    int cap_rows;    /* rows the band buffers hold */
    gseg_predict_stats *stats;
    struct px_area *area;
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
        long long n[8] = {0};
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
            n[cls < 8 ? cls : 7] += cls != MASK_NODATA;
            b->stats->valid_pixels += v[x] != 0;
        }
        double km2 = px_area_km2(b->area, win.x + win.w / 2, win.y + y);
        for (int k = 0; k < 8; k++) {
            b->stats->class_pixels[k] += n[k];
            b->stats->class_km2[k] += n[k] ? (double)n[k] * km2 : 0.0;
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

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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

/* Parses "R,G,B" band selectors into sel[3] (pointers into *store). */
static gseg_status parse_rgb(const char *spec, char ***store, const char *sel[3])
{
    *store = CSLTokenizeString2(spec, ",", CSLT_STRIPLEADSPACES | CSLT_STRIPENDSPACES);
    if (CSLCount(*store) != 3)
        return gseg__err(GSEG_ERR_ARG, "--quicklook-bands '%s': expected three bands R,G,B",
                         spec);
    for (int i = 0; i < 3; i++) sel[i] = (*store)[i];
    return GSEG_OK;
}

gseg_status gseg_predict(const gseg_predict_params *p, gseg_progress_fn progress, void *user,
                         gseg_predict_stats *stats_out)
{
    gseg_predict_stats stats;
    memset(&stats, 0, sizeof stats);
    double t_start = now_s();
    if (!p) return gseg__err(GSEG_ERR_ARG, "predict: NULL parameters");
    if (!p->inputs || p->ninputs < 1) return gseg__err(GSEG_ERR_ARG, "no input scene given");
    if (!p->model_handle && (!p->model || !*p->model))
        return gseg__err(GSEG_ERR_ARG,
                         "no model given: use --model ndsi:green=G,swir=S (e.g. ndsi:green=3,swir=6 "
                         "for Landsat 8) or a model file");
    if (!(p->min_area_km2 >= 0) || !(p->simplify_m >= 0))
        return gseg__err(GSEG_ERR_ARG, "--min-area and --simplify must be >= 0");
    if (p->batch < 0 || p->readers < 0 || p->quicklook_size < 0)
        return gseg__err(GSEG_ERR_ARG, "--batch, --readers and --quicklook-size must be >= 0");

    gseg_model *model = NULL;
    gseg_scene *scene = NULL;
    gseg_stitcher *stitcher = NULL;
    gseg_writer *wmask = NULL, *wproba = NULL;
    band_sink bs;
    memset(&bs, 0, sizeof bs);
    px_area area;
    memset(&area, 0, sizeof area);
    char *out_path = NULL;
    char **md = NULL, **rgb_store = NULL;
    const char **sel = NULL;
    const char *rgb[3] = {NULL, NULL, NULL};
    int K = 0;
    gseg_scene_params sp = gseg_scene_params_default();
    gseg_status st = p->model_handle ? GSEG_OK
                                     : gseg_model_open(p->model, &p->model_options, &model);
    if (p->model_handle) model = p->model_handle;
    if (st != GSEG_OK) goto done;
    if (!p->model_handle) gseg__model_inference_only(model);
    if (p->quicklook && p->quicklook_bands) {
        st = parse_rgb(p->quicklook_bands, &rgb_store, rgb);
        if (st != GSEG_OK) goto done;
    }
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
        sel = gseg__calloc((size_t)nb + 1, sizeof *sel);
        if (!sel) { st = GSEG_ERR_NOMEM; goto done; }
        for (int i = 0; i < nb; i++) sel[i] = gseg_model_band(model, i);
        sp.bands = sel;
        if (p->resampling) sp.resampling = p->resampling;
        st = open_scene(p, model, &sp, &scene);
        if (st != GSEG_OK) goto done;
    }
    double gt[6];
    if (!gseg_scene_geotransform(scene, gt) && !*gseg_scene_crs_wkt(scene))
        CPLError(CE_Warning, CPLE_AppDefined,
                 "%s: no georeferencing; the mask will have none and outline areas are unknown",
                 p->inputs[0]);
    px_area_init(&area, scene);
    for (int k = 0; k < 8; k++) stats.class_km2[k] = area.kind ? 0.0 : NAN;

    gseg_grid grid;
    st = gseg_grid_init(&grid, gseg_scene_width(scene), gseg_scene_height(scene), tile,
                        overlap);
    if (st != GSEG_OK) goto done;
    stats.width = grid.width;
    stats.height = grid.height;

    gseg__pipe_params pp;
    memset(&pp, 0, sizeof pp);
    pp.paths = p->inputs;
    pp.npaths = p->ninputs;
    pp.scene_params = &sp;
    pp.scene = scene;
    pp.grid = &grid;
    pp.gt = gt;
    pp.model = model;
    pp.batch = default_batch(p, model);
    pp.readers = p->readers > 0 ? p->readers : 2;
    stats.batch = pp.batch;

    /* Plan memory before allocating any of it. */
    {
        size_t T = (size_t)grid.tile, W = (size_t)grid.width;
        size_t band_rows = T;
        double need = (double)gseg__pipe_bytes(&pp)                      /* batch slots */
                      + (double)K * W * (grid.overlap + 1) * 4           /* stitch carry */
                      + (double)K * T * T * 4 + T * T                    /* stitch tile */
                      + (double)W * band_rows * (1 + (p->proba ? 4.0 * K : 0)); /* row band */
        size_t lim = gseg__memory_limit();
        if (need > (double)lim) {
            st = gseg__err(GSEG_ERR_LIMIT,
                           "%s: a %dx%d scene with %d-pixel tiles in batches of %d needs %.0f "
                           "MiB, more than the %.0f MiB allowed (--config GSEG_MAX_MEMORY)",
                           p->inputs[0], grid.width, grid.height, grid.tile, pp.batch,
                           need / 1048576.0, lim / 1048576.0);
            goto done;
        }
        bs.cap_rows = (int)band_rows;
    }
    if (p->auto_cache) size_cache(scene, &grid);

    out_path = p->output ? gseg__strdup(p->output) : default_output(p->inputs[0]);
    if (!out_path) { st = GSEG_ERR_NOMEM; goto done; }
    const char *outs[] = {out_path, p->proba, p->vector, p->quicklook};
    for (int o = 0; o < 4; o++) {
        for (int i = 0; outs[o] && i < p->ninputs; i++)
            if (same_file(outs[o], p->inputs[i])) {
                st = gseg__err(GSEG_ERR_ARG, "%s: output would overwrite an input", p->inputs[i]);
                goto done;
            }
        for (int j = 0; outs[o] && j < o; j++)
            if (outs[j] && strcmp(outs[o], outs[j]) == 0) {
                st = gseg__err(GSEG_ERR_ARG, "%s: two outputs would have the same name",
                               outs[o]);
                goto done;
            }
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
            wp.class_names = NULL;
            wp.class_rgba = NULL;
            wp.band_description = gseg_model_score_name(model);
            /* K-class models: one probability band per class, named */
            if (K > 1 && ncls == K) wp.band_names = cnames;
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
    bs.area = &area;
    bs.mrow = gseg__malloc((size_t)bs.cap_rows * grid.width, 1);
    if (!bs.mrow) { st = GSEG_ERR_NOMEM; goto done; }
    if (wproba) {
        bs.prow = gseg__malloc((size_t)K * bs.cap_rows * grid.width, sizeof(float));
        if (!bs.prow) { st = GSEG_ERR_NOMEM; goto done; }
    }
    st = gseg_stitcher_new(&grid, K, sink_window, &bs, &stitcher);
    if (st != GSEG_OK) goto done;

    /* Share of progress: tiles, then finishing the rasters, then outlines,
     * then the quicklook. */
    double f_end = p->quicklook ? 0.95 : 1.0;
    double f_tiles = (p->vector ? 0.75 : 0.9) * f_end, f_write = (p->vector ? 0.85 : 1.0) * f_end;
    stats.pixels = (long long)grid.width * grid.height;
    pp.stitcher = stitcher;
    pp.progress = progress;
    pp.user = user;
    pp.progress_share = f_tiles;
    pp.name = out_path;
    {
        gseg__pipe_stats ps;
        st = gseg__pipe_run(&pp, &ps);
        stats.tiles = ps.tiles;
        stats.tiles_skipped = ps.tiles - ps.tiles_run;
        stats.tile_pixels = (long long)ps.tiles_run * grid.tile * grid.tile;
        stats.readers = ps.readers;
        stats.model_seconds = ps.model_seconds;
        stats.model_wait_seconds = ps.model_wait_seconds;
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
        void *sc = progress ? GDALCreateScaledProgress(f_write, f_end, progress, user) : NULL;
        st = gseg_vectorize(out_path, p->vector, &vp, progress ? GDALScaledProgress : NULL, sc, &vs);
        if (sc) GDALDestroyScaledProgress(sc);
        stats.glacier_km2 = vs.area_km2;
        stats.polygons = vs.polygons;
        if (st != GSEG_OK) goto done;
    }

    if (p->quicklook) {
        gseg__quicklook_params qp;
        memset(&qp, 0, sizeof qp);
        qp.scene = p->inputs;
        qp.nscene = p->ninputs;
        qp.resampling = p->resampling;
        for (int i = 0; i < 3; i++) qp.rgb[i] = rgb[i];
        qp.mask = out_path;
        qp.max_size = p->quicklook_size;
        qp.nclasses = ncls;
        qp.class_rgba = crgba;
        st = gseg__quicklook_write(&qp, p->quicklook);
        if (st == GSEG_OK && progress) progress(1.0, NULL, user);
    }

done:
    gseg_writer_abort(wmask);
    gseg_writer_abort(wproba);
    gseg_stitcher_free(stitcher);
    gseg_scene_free(scene);
    if (model != p->model_handle) gseg_model_free(model);
    free(bs.mrow);
    free(bs.prow);
    free(out_path);
    free(sel);
    CSLDestroy(md);
    CSLDestroy(rgb_store);
    stats.seconds = now_s() - t_start;
    if (stats_out) *stats_out = stats;
    return st;
}
