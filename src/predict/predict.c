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

static char **output_metadata(const gseg_predict_params *p, const gseg_model *m, double thr,
                              int tile, int overlap)
{
    char **md = NULL;
    md = CSLSetNameValue(md, "GSEG_VERSION", gseg_version());
    md = CSLSetNameValue(md, "GSEG_MODEL", gseg_model_spec(m));
    md = CSLSetNameValue(md, "GSEG_SCORE", gseg_model_score_name(m));
    if (gseg_model_nscores(m) == 1) md = CSLSetNameValue(md, "GSEG_THRESHOLD", CPLSPrintf("%.15g", thr));
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

/* emit of the classifier: row bands into the mask and score writers. */
typedef struct writers {
    gseg_writer *mask, *proba;
} writers;

static gseg_status write_band(void *user, int y, int h, const uint8_t *mask, const float *scores)
{
    writers *w = user;
    gseg_status st = gseg_writer_write_rows(w->mask, y, h, mask);
    if (st == GSEG_OK && w->proba) st = gseg_writer_write_rows(w->proba, y, h, scores);
    return st;
}

static gseg_status open_writers(const gseg_predict_params *p, const gseg__job *j,
                                const char *out_path, char **md, writers *w)
{
    gseg_writer_params wp = gseg_writer_params_default();
    wp.format = p->format;
    wp.create_options = p->create_options;
    wp.width = j->grid.width;
    wp.height = j->grid.height;
    wp.nbands = 1;
    wp.type = GSEG_BYTE;
    wp.georef = j->scene;
    wp.has_nodata = 1;
    wp.nodata = GSEG__MASK_NODATA;
    wp.nclasses = j->nclasses;
    wp.class_names = j->class_names;
    wp.class_rgba = j->class_rgba;
    wp.band_description = "glacier mask";
    wp.metadata = (const char *const *)md;
    gseg_status st = gseg_writer_open(out_path, &wp, &w->mask);
    if (st != GSEG_OK || !p->proba) return st;
    wp.nbands = j->K;
    wp.type = GSEG_FLOAT32;
    wp.nodata = NAN;
    wp.nclasses = 0;
    wp.class_names = NULL;
    wp.class_rgba = NULL;
    wp.band_description = gseg_model_score_name(j->model);
    /* K-class models: one probability band per class, named */
    if (j->K > 1 && j->nclasses == j->K) wp.band_names = j->class_names;
    return gseg_writer_open(p->proba, &wp, &w->proba);
}

/* Refuses outputs that would overwrite an input or each other. */
static gseg_status check_outputs(const gseg_predict_params *p, const char *out_path)
{
    const char *outs[] = {out_path, p->proba, p->vector, p->quicklook};
    for (int o = 0; o < 4; o++) {
        for (int i = 0; outs[o] && i < p->ninputs; i++)
            if (same_file(outs[o], p->inputs[i]))
                return gseg__err(GSEG_ERR_ARG, "%s: output would overwrite an input",
                                 p->inputs[i]);
        for (int k = 0; outs[o] && k < o; k++)
            if (outs[k] && strcmp(outs[o], outs[k]) == 0)
                return gseg__err(GSEG_ERR_ARG, "%s: two outputs would have the same name",
                                 outs[o]);
    }
    /* The mask's QGIS style is <stem>.qml, which QGIS also loads as the style
     * of a vector file of that stem (a GeoPackage keeps its own inside). */
    if (p->vector && !EQUAL(CPLGetExtension(p->vector), "gpkg")) {
        char *a = CPLStrdup(CPLResetExtension(out_path, "qml"));
        int same = strcmp(a, CPLResetExtension(p->vector, "qml")) == 0;
        CPLFree(a);
        if (same)
            return gseg__err(GSEG_ERR_ARG,
                             "%s and %s would share the style file %s that QGIS loads for both: "
                             "give them different names",
                             out_path, p->vector, CPLResetExtension(out_path, "qml"));
    }
    return GSEG_OK;
}

gseg_status gseg_predict(const gseg_predict_params *p, gseg_progress_fn progress, void *user,
                         gseg_predict_stats *stats_out)
{
    gseg_predict_stats stats;
    memset(&stats, 0, sizeof stats);
    double t_start = now_s();
    if (!p) return gseg__err(GSEG_ERR_ARG, "predict: NULL parameters");
    if (!(p->min_area_km2 >= 0) || !(p->simplify_m >= 0))
        return gseg__err(GSEG_ERR_ARG, "--min-area and --simplify must be >= 0");
    if (p->quicklook_size < 0) return gseg__err(GSEG_ERR_ARG, "--quicklook-size must be >= 0");

    gseg__job job;
    gseg_stitcher *stitcher = NULL;
    writers w = {NULL, NULL};
    gseg__classify cls;
    memset(&cls, 0, sizeof cls);
    char *out_path = NULL;
    char **md = NULL, **rgb_store = NULL;
    const char *rgb[3] = {NULL, NULL, NULL};
    int vector_written = 0, quicklook_written = 0, proba_written = 0;
    gseg_status st = gseg__job_open(p, &job);
    if (st != GSEG_OK) {
        if (stats_out) *stats_out = stats;
        return st;
    }
    const gseg_grid *grid = &job.grid;
    if (p->vector && p->t_srs && *p->t_srs && !*gseg_scene_crs_wkt(job.scene)) {
        st = gseg__err(GSEG_ERR_ARG, "%s: no CRS, so outlines cannot be reprojected to '%s'",
                       p->inputs[0], p->t_srs);
        gseg__job_close(&job);
        if (stats_out) *stats_out = stats;
        return st;
    }
    for (int k = 0; k < 8; k++) stats.class_km2[k] = NAN; /* known: gseg__classify_init */
    stats.width = grid->width;
    stats.height = grid->height;
    stats.batch = job.batch;
    if (p->quicklook && p->quicklook_bands) {
        st = parse_rgb(p->quicklook_bands, &rgb_store, rgb);
        if (st != GSEG_OK) goto done;
    }

    gseg__pipe_params pp;
    gseg__job_pipe_params(&job, p, &pp);
    /* Plan memory before allocating any of it. */
    {
        size_t T = (size_t)grid->tile, W = (size_t)grid->width, K = (size_t)job.K;
        double need = (double)gseg__pipe_bytes(&pp)                      /* batch slots */
                      + (double)K * W * (grid->overlap + 1) * 4          /* stitch carry */
                      + (double)K * T * T * 4 + T * T                    /* stitch tile */
                      + (double)W * T * (1 + (p->proba ? 4.0 * K : 0))   /* row band */
                      + (p->auto_cache && !CPLGetConfigOption("GDAL_CACHEMAX", NULL)
                             ? (double)gseg__cache_need(job.scene, grid)      /* GDAL cache */
                             : 0.0);
        size_t lim = gseg__memory_limit();
        if (need > (double)lim) {
            st = gseg__err(GSEG_ERR_LIMIT,
                           "%s: a %dx%d scene with %d-pixel tiles in batches of %d needs %.0f "
                           "MiB, more than the %.0f MiB allowed (--config GSEG_MAX_MEMORY)",
                           p->inputs[0], grid->width, grid->height, grid->tile, pp.batch,
                           need / 1048576.0, lim / 1048576.0);
            goto done;
        }
    }
    if (p->auto_cache) gseg__size_cache(job.scene, grid);

    out_path = p->output ? gseg__strdup(p->output) : default_output(p->inputs[0]);
    if (!out_path) { st = GSEG_ERR_NOMEM; goto done; }
    st = check_outputs(p, out_path);
    if (st != GSEG_OK) goto done;
    md = output_metadata(p, job.model, job.threshold, job.tile, job.overlap);
    st = open_writers(p, &job, out_path, md, &w);
    if (st == GSEG_OK) st = gseg__classify_init(&cls, &job, p->proba != NULL, write_band, &w, &stats);
    if (st == GSEG_OK) st = gseg_stitcher_new(grid, job.K, gseg__classify_window, &cls, &stitcher);
    if (st != GSEG_OK) goto done;

    /* Share of progress: tiles, then finishing the rasters, then outlines,
     * then the quicklook. */
    double f_end = p->quicklook ? 0.95 : 1.0;
    double f_tiles = (p->vector ? 0.75 : 0.9) * f_end, f_write = (p->vector ? 0.85 : 1.0) * f_end;
    stats.pixels = (long long)grid->width * grid->height;
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
        stats.tile_pixels = (long long)ps.tiles_run * grid->tile * grid->tile;
        stats.readers = ps.readers;
        stats.model_seconds = ps.model_seconds;
        stats.model_wait_seconds = ps.model_wait_seconds;
    }
    if (st != GSEG_OK) goto done;
    /* Release the scene's cached blocks before the COG copy needs the cache. */
    gseg_scene_free(job.scene);
    job.scene = NULL;

    /* The outputs of a scene appear together: the rasters are finished
     * under their temporary names, outlines and quicklook are made from the
     * finished mask, and the rasters are renamed into place last, the mask
     * at the very end; a failure on the way removes what was written. So an
     * existing mask means a complete scene (--skip-existing). */
    {
        void *sc = progress ? GDALCreateScaledProgress(f_tiles, f_write, progress, user) : NULL;
        st = gseg_writer_finish(w.mask, progress ? GDALScaledProgress : NULL, sc);
        if (sc) GDALDestroyScaledProgress(sc);
        if (st == GSEG_OK && w.proba) st = gseg_writer_finish(w.proba, NULL, NULL);
        if (st != GSEG_OK) goto done;
    }
    const char *finished = gseg_writer_finished_path(w.mask);

    if (p->vector) {
        gseg_vectorize_params vp = gseg_vectorize_params_default();
        vp.format = p->vector_format;
        vp.min_area_km2 = p->min_area_km2;
        vp.simplify_m = p->simplify_m;
        vp.t_srs = p->t_srs;
        vp.source = CPLGetFilename(p->inputs[0]);
        vp.nclasses = job.nclasses;
        vp.class_names = job.class_names;
        vp.class_rgba = job.class_rgba;
        gseg_vectorize_stats vs;
        memset(&vs, 0, sizeof vs);
        void *sc = progress ? GDALCreateScaledProgress(f_write, f_end, progress, user) : NULL;
        st = gseg_vectorize(finished, p->vector, &vp, progress ? GDALScaledProgress : NULL, sc, &vs);
        if (sc) GDALDestroyScaledProgress(sc);
        stats.glacier_km2 = vs.area_km2;
        stats.polygons = vs.polygons;
        if (st != GSEG_OK) goto done;
        vector_written = 1;
    }

    if (p->quicklook) {
        gseg__quicklook_params qp;
        memset(&qp, 0, sizeof qp);
        qp.scene = p->inputs;
        qp.nscene = p->ninputs;
        qp.resampling = p->resampling;
        for (int i = 0; i < 3; i++) qp.rgb[i] = rgb[i];
        qp.mask = finished;
        qp.max_size = p->quicklook_size;
        qp.nclasses = job.nclasses;
        qp.class_rgba = job.class_rgba;
        st = gseg__quicklook_write(&qp, p->quicklook);
        if (st != GSEG_OK) goto done;
        quicklook_written = 1;
    }

    if (w.proba) {
        gseg_writer *wr = w.proba;
        w.proba = NULL;
        st = gseg_writer_commit(wr);
        if (st != GSEG_OK) goto done;
        proba_written = 1;
    }
    {
        gseg_writer *wr = w.mask;
        w.mask = NULL;
        st = gseg_writer_commit(wr);
    }
    if (st == GSEG_OK && progress) progress(1.0, NULL, user);

done:
    gseg_writer_abort(w.mask);
    gseg_writer_abort(w.proba);
    if (st != GSEG_OK) { /* take back the outputs this run renamed into place */
        if (vector_written) VSIUnlink(p->vector);
        if (quicklook_written) VSIUnlink(p->quicklook);
        if (proba_written) {
            VSIUnlink(p->proba);
            VSIUnlink(CPLSPrintf("%s.aux.xml", p->proba));
        }
    }
    gseg_stitcher_free(stitcher);
    gseg__classify_free(&cls);
    gseg__job_close(&job);
    free(out_path);
    CSLDestroy(md);
    CSLDestroy(rgb_store);
    stats.seconds = now_s() - t_start;
    if (stats_out) *stats_out = stats;
    return st;
}
