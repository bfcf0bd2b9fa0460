/*
 * batch.c — gseg-predict over many scenes: expand the inputs, name each
 * scene's outputs from templates, keep this shard's share, skip finished
 * scenes, run the others with one model, report each failure and go on,
 * and write a JSON summary of the run.
 *
 * Outputs are written atomically (src/write), so "the mask exists" means
 * "the scene is done": --skip-existing resumes an interrupted run, and the
 * shards of a Slurm job array never coordinate — scene i belongs to shard
 * i mod N of the full, ordered list.
 */
#include "predict.h"
#include "json.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { OUT_MASK, OUT_PROBA, OUT_VECTOR, OUT_QUICKLOOK, NOUT };
static const char *const out_suffix[NOUT] = {"_mask.tif", "_proba.tif", "_outlines.gpkg",
                                             "_quicklook.png"};
static const char *const out_key[NOUT] = {"mask", "proba", "vector", "quicklook"};
static const char *const out_opt[NOUT] = {"-o", "--proba", "--vector", "--quicklook"};

typedef struct scene_job {
    char **files;     /* the scene: one file, or a band stack */
    char *out[NOUT];  /* NULL where that output is not asked for */
    int index;        /* in the full list */
    const char *status; /* "ok", "skipped", "failed" */
    char *error;
    gseg_predict_stats stats;
} scene_job;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const char *templ(const gseg__batch *b, int o)
{
    const gseg_predict_params *p = &b->p;
    return o == OUT_MASK ? p->output : o == OUT_PROBA ? p->proba
                                     : o == OUT_VECTOR ? p->vector : p->quicklook;
}

/* --model, else $GSEG_MODEL, else ./model.gseg (where gseg-train writes by
 * default), like the seed's predict.py with its default model path. */
static gseg_status resolve_model(const gseg__batch *b, const char **model)
{
    *model = b->p.model;
    if (*model && **model) return GSEG_OK;
    const char *env = getenv("GSEG_MODEL");
    if (env && *env) {
        *model = env;
        return GSEG_OK;
    }
    VSIStatBufL sb;
    if (VSIStatL("model.gseg", &sb) == 0) {
        *model = "model.gseg";
        return GSEG_OK;
    }
    return gseg__err(GSEG_ERR_ARG,
                     "no model given and ./model.gseg does not exist: use --model FILE.gseg "
                     "(or set GSEG_MODEL), or --model ndsi:green=G,swir=S for the NDSI baseline");
}

static void jobs_free(scene_job *j, int n)
{
    for (int i = 0; j && i < n; i++) {
        CSLDestroy(j[i].files);
        for (int o = 0; o < NOUT; o++) free(j[i].out[o]);
        free(j[i].error);
    }
    free(j);
}

/* The scenes and their output names, over the whole list (so every shard
 * names and filters alike). Scenes that are outputs of another scene (a
 * rerun over the folder it wrote to) are dropped; two scenes writing the
 * same file are refused. */
static gseg_status plan(const gseg__batch *b, scene_job **out, int *nout)
{
    char **scenes = NULL;
    gseg_status st = GSEG_OK;
    if (b->stack) {
        for (int i = 0; i < b->ninputs; i++) scenes = CSLAddString(scenes, b->inputs[i]);
    } else {
        st = gseg__scenes_expand(b->inputs, b->ninputs, b->scene_list, &scenes);
        if (st != GSEG_OK) return st;
    }
    int n = b->stack ? 1 : CSLCount(scenes);
    for (int o = 0; o < NOUT && n > 1; o++)
        if (templ(b, o) && !gseg__output_is_template(templ(b, o))) {
            CSLDestroy(scenes);
            return gseg__err(GSEG_ERR_ARG,
                             "%s %s names one file but there are %d scenes: use a folder or a "
                             "template such as 'out/{stem}%s'",
                             out_opt[o], templ(b, o), n, out_suffix[o]);
        }
    scene_job *j = gseg__calloc((size_t)n, sizeof *j);
    if (!j) {
        CSLDestroy(scenes);
        return GSEG_ERR_NOMEM;
    }
    for (int i = 0; i < n && st == GSEG_OK; i++) {
        j[i].index = i;
        j[i].status = "not run";
        j[i].files = b->stack ? CSLDuplicate(scenes) : CSLAddString(NULL, scenes[i]);
        for (int o = 0; o < NOUT && st == GSEG_OK; o++)
            if (o == OUT_MASK || templ(b, o))
                st = gseg__output_path(templ(b, o), out_suffix[o], j[i].files[0], i, &j[i].out[o]);
    }
    CSLDestroy(scenes);
    /* drop scenes that another scene writes; refuse shared outputs */
    int kept = 0;
    for (int i = 0; i < n && st == GSEG_OK; i++) {
        int is_output = 0;
        for (int k = 0; k < n && !is_output; k++)
            for (int o = 0; o < NOUT && k != i; o++)
                if (j[k].out[o] && strcmp(j[k].out[o], j[i].files[0]) == 0) is_output = 1;
        for (int k = 0; k < i && st == GSEG_OK; k++)
            for (int o = 0; o < NOUT; o++)
                if (j[i].out[o] && j[k].out[o] && strcmp(j[i].out[o], j[k].out[o]) == 0) {
                    st = gseg__err(GSEG_ERR_ARG, "%s and %s would both write %s: use {dir} or "
                                   "{index} in the output template", j[k].files[0],
                                   j[i].files[0], j[i].out[o]);
                    break;
                }
        if (is_output && n > 1) {
            CSLDestroy(j[i].files);
            for (int o = 0; o < NOUT; o++) free(j[i].out[o]);
            continue;
        }
        j[kept++] = j[i];
    }
    if (st != GSEG_OK) {
        jobs_free(j, kept);
        return st;
    }
    *out = j;
    *nout = kept;
    return GSEG_OK;
}

static int all_outputs_exist(const scene_job *j)
{
    VSIStatBufL sb;
    for (int o = 0; o < NOUT; o++)
        if (j->out[o] && VSIStatL(j->out[o], &sb) != 0) return 0;
    return 1;
}

static gseg_status make_dirs(const scene_job *j)
{
    gseg_status st = GSEG_OK;
    for (int o = 0; o < NOUT && st == GSEG_OK; o++)
        if (j->out[o]) st = gseg__make_parent(j->out[o]);
    return st;
}

static void result_line(FILE *f, const scene_job *j, int vector)
{
    const gseg_predict_stats *s = &j->stats;
    double share = s->valid_pixels ? 100.0 * (double)s->class_pixels[1] / (double)s->valid_pixels
                                   : 0.0;
    fprintf(f, "%s: glacier on %.2f %% of %lld valid pixels", j->files[0], share,
            s->valid_pixels);
    if (!isnan(s->class_km2[1])) fprintf(f, " (%.3f km2)", s->class_km2[1]);
    if (vector && !isnan(s->glacier_km2))
        fprintf(f, "; %lld outlines, %.3f km2", s->polygons, s->glacier_km2);
    fprintf(f, " -> %s\n", j->out[OUT_MASK]);
}

static void jnum(gseg__sbuf *b, const char *key, double v)
{
    if (isfinite(v)) gseg__sbuf_appendf(b, ", \"%s\": %.10g", key, v);
    else gseg__sbuf_appendf(b, ", \"%s\": null", key);
}

static void json_scene(gseg__sbuf *b, const scene_job *j, int ncls, const char *const *cnames)
{
    const gseg_predict_stats *s = &j->stats;
    gseg__sbuf_puts(b, "    {\"input\": ");
    gseg__sbuf_append_jstr(b, j->files[0]);
    if (CSLCount(j->files) > 1) {
        gseg__sbuf_puts(b, ", \"band_files\": [");
        for (int i = 0; j->files[i]; i++) {
            if (i) gseg__sbuf_puts(b, ", ");
            gseg__sbuf_append_jstr(b, j->files[i]);
        }
        gseg__sbuf_puts(b, "]");
    }
    gseg__sbuf_appendf(b, ", \"index\": %d, \"status\": \"%s\"", j->index, j->status);
    if (j->error) {
        gseg__sbuf_puts(b, ", \"error\": ");
        gseg__sbuf_append_jstr(b, j->error);
    }
    gseg__sbuf_puts(b, ", \"outputs\": {");
    for (int o = 0, first = 1; o < NOUT; o++)
        if (j->out[o]) {
            gseg__sbuf_appendf(b, "%s\"%s\": ", first ? "" : ", ", out_key[o]);
            gseg__sbuf_append_jstr(b, j->out[o]);
            first = 0;
        }
    gseg__sbuf_puts(b, "}");
    if (strcmp(j->status, "ok") == 0) {
        gseg__sbuf_appendf(b, ", \"width\": %d, \"height\": %d, \"pixels\": %lld, "
                              "\"valid_pixels\": %lld, \"classes\": {",
                           s->width, s->height, s->pixels, s->valid_pixels);
        for (int k = 0; k < ncls && k < 8; k++) {
            gseg__sbuf_puts(b, k ? ", " : "");
            gseg__sbuf_append_jstr(b, cnames[k]);
            gseg__sbuf_appendf(b, ": {\"pixels\": %lld", s->class_pixels[k]);
            jnum(b, "km2", s->class_km2[k]);
            gseg__sbuf_puts(b, "}");
        }
        gseg__sbuf_puts(b, "}");
        jnum(b, "glacier_km2", s->class_km2[1]);
        if (j->out[OUT_VECTOR]) {
            gseg__sbuf_appendf(b, ", \"outlines\": %lld", s->polygons);
            jnum(b, "outline_km2", s->glacier_km2);
        }
        gseg__sbuf_appendf(b, ", \"tiles\": %d, \"tiles_skipped\": %d, \"tile_pixels\": %lld, "
                              "\"batch\": %d, \"readers\": %d",
                           s->tiles, s->tiles_skipped, s->tile_pixels, s->batch, s->readers);
        jnum(b, "seconds", s->seconds);
        jnum(b, "model_seconds", s->model_seconds);
        jnum(b, "model_wait_seconds", s->model_wait_seconds);
    }
    gseg__sbuf_puts(b, "}");
}

static gseg_status write_summary(const gseg__batch *b, const char *model, scene_job *j, int n,
                                 int k, int nshards, double seconds, gseg_model *m)
{
    const char *const *cnames = NULL;
    const unsigned char (*rgba)[4] = NULL;
    int ncls = gseg__model_classes(m, &cnames, &rgba);
    /* what the network ran in, not what was asked ("auto") */
    gseg_precision used = gseg__model_precision_used(m);
    if (used == GSEG_PRECISION_AUTO) used = b->p.model_options.precision;
    int nok = 0, nskip = 0, nfail = 0;
    long long px = 0, tpx = 0;
    double km2 = 0, model_s = 0;
    for (int i = 0; i < n; i++) {
        nok += strcmp(j[i].status, "ok") == 0;
        nskip += strcmp(j[i].status, "skipped") == 0;
        nfail += strcmp(j[i].status, "failed") == 0;
        if (strcmp(j[i].status, "ok") != 0) continue;
        px += j[i].stats.pixels;
        tpx += j[i].stats.tile_pixels;
        km2 += j[i].stats.class_km2[1];
        model_s += j[i].stats.model_seconds;
    }
    time_t t = time(NULL);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    gseg__sbuf s;
    gseg__sbuf_init(&s);
    gseg__sbuf_appendf(&s, "{\"gseg_version\": \"%s\", \"finished\": \"%s\", \"model\": ",
                       gseg_version(), when);
    gseg__sbuf_append_jstr(&s, model);
    gseg__sbuf_appendf(&s, ", \"device\": ");
    gseg__sbuf_append_jstr(&s, b->p.model_options.device ? b->p.model_options.device : "cpu");
    gseg__sbuf_appendf(&s, ", \"precision\": \"%s\", \"threads\": %d, \"shard\": [%d, %d], "
                           "\"scenes_total\": %d, \"scenes_ok\": %d, \"scenes_skipped\": %d, "
                           "\"scenes_failed\": %d, \"pixels\": %lld, \"tile_pixels\": %lld",
                       gseg_precision_str(used), gseg__model_cpu_threads(m), k, nshards, n, nok,
                       nskip, nfail, px, tpx);
    jnum(&s, "glacier_km2", km2);
    jnum(&s, "seconds", seconds);
    jnum(&s, "model_seconds", model_s);
    gseg__sbuf_puts(&s, ", \"scenes\": [\n");
    for (int i = 0; i < n; i++) {
        json_scene(&s, &j[i], ncls, cnames);
        gseg__sbuf_puts(&s, i + 1 < n ? ",\n" : "\n");
    }
    gseg__sbuf_puts(&s, "]}\n");
    if (s.st != GSEG_OK) {
        gseg__sbuf_free(&s);
        return s.st;
    }
    gseg_status st = GSEG_OK;
    if (strcmp(b->summary, "-") == 0) {
        fputs(s.s, stdout);
        fflush(stdout);
    } else {
        st = gseg__make_parent(b->summary);
        if (st == GSEG_OK) st = gseg__write_file_atomic(b->summary, s.s, s.len);
    }
    gseg__sbuf_free(&s);
    return st;
}

int gseg__predict_batch(const gseg__batch *b, gseg_progress_fn progress, void *user)
{
    double t0 = now_s();
    const char *tool = b->tool ? b->tool : "gseg-predict";
    const char *model_spec = NULL;
    scene_job *jobs = NULL;
    int njobs = 0, k = 0, nshards = 1;
    gseg_model *model = NULL;
    gseg_status st = resolve_model(b, &model_spec);
    if (st == GSEG_OK && b->shard) {
        st = gseg__shard_parse(b->shard, &k, &nshards);
    } else if (st == GSEG_OK) {
        int r = gseg__shard_from_env(&k, &nshards);
        if (r < 0) st = GSEG_ERR_ARG;
        if (r == 0) k = 0, nshards = 1;
    }
    if (st == GSEG_OK) st = plan(b, &jobs, &njobs);
    if (st != GSEG_OK) {
        fprintf(stderr, "%s: %s\n", tool, gseg_last_error());
        return st == GSEG_ERR_ARG ? 2 : 1;
    }
    /* this shard's scenes, in order */
    int n = 0;
    for (int i = 0; i < njobs; i++) {
        if (i % nshards != k) {
            CSLDestroy(jobs[i].files);
            for (int o = 0; o < NOUT; o++) free(jobs[i].out[o]);
            continue;
        }
        jobs[n++] = jobs[i];
    }
    /* The summary records the run's failures: a path it cannot be written
     * to is found now, not after hours of work. */
    if (b->summary && strcmp(b->summary, "-") != 0) {
        st = gseg__make_parent(b->summary);
        char *tmp = st == GSEG_OK ? gseg__tmp_path(b->summary) : NULL;
        VSILFILE *f = tmp ? VSIFOpenL(tmp, "wb") : NULL;
        if (st == GSEG_OK && !f)
            st = gseg__err(GSEG_ERR_IO, "%s: cannot create: %s", b->summary, strerror(errno));
        if (f) VSIFCloseL(f);
        if (tmp) gseg__discard(tmp);
        free(tmp);
        if (st != GSEG_OK) {
            fprintf(stderr, "%s: --summary: %s\n", tool, gseg_last_error());
            jobs_free(jobs, n);
            return 1;
        }
    }
    st = gseg_model_open(model_spec, &b->p.model_options, &model);
    if (st == GSEG_OK) gseg__model_inference_only(model);
    if (st != GSEG_OK) {
        fprintf(stderr, "%s: %s\n", tool, gseg_last_error());
        jobs_free(jobs, n);
        return st == GSEG_ERR_ARG ? 2 : 1;
    }
    FILE *info = b->summary && strcmp(b->summary, "-") == 0 ? stderr : stdout;
    int failed = 0, cancelled = 0;
    for (int i = 0; i < n && !cancelled; i++) {
        scene_job *j = &jobs[i];
        if (b->skip_existing && all_outputs_exist(j)) {
            j->status = "skipped";
            if (!b->quiet) fprintf(info, "%s: done before, skipped\n", j->files[0]);
            continue;
        }
        if (!b->quiet && n > 1) fprintf(stderr, "[%d/%d] %s\n", i + 1, n, j->files[0]);
        gseg_predict_params p = b->p;
        p.model = model_spec;
        p.model_handle = model;
        p.inputs = (const char *const *)j->files;
        p.ninputs = CSLCount(j->files);
        p.output = j->out[OUT_MASK];
        p.proba = j->out[OUT_PROBA];
        p.vector = j->out[OUT_VECTOR];
        p.quicklook = j->out[OUT_QUICKLOOK];
        st = make_dirs(j);
        if (st == GSEG_OK) st = gseg_predict(&p, progress, user, &j->stats);
        if (st == GSEG_OK) {
            j->status = "ok";
            if (!b->quiet) result_line(info, j, p.vector != NULL);
        } else {
            /* every failure line names its scene (messages from deep
             * inside, e.g. out of memory, do not) */
            const char *e = gseg_last_error();
            j->status = "failed";
            j->error = strstr(e, j->files[0]) || strstr(e, CPLGetFilename(j->files[0]))
                           ? gseg__strdup(e)
                           : gseg__strdup(CPLSPrintf("%s: %s", j->files[0], e));
            fprintf(stderr, "%s: %s\n", tool, j->error ? j->error : e);
            failed++;
            cancelled = st == GSEG_ERR_CANCELLED;
        }
    }
    int rc = failed ? 1 : 0;
    if (n > 1 && failed && !b->quiet)
        fprintf(stderr, "%s: %d of %d scenes failed\n", tool, failed, n);
    if (b->summary &&
        write_summary(b, model_spec, jobs, n, k, nshards, now_s() - t0, model) != GSEG_OK) {
        fprintf(stderr, "%s: %s\n", tool, gseg_last_error());
        rc = 1;
    }
    gseg_model_free(model);
    jobs_free(jobs, n);
    return rc;
}
