/*
 * predict.h — private interface of the prediction room (src/predict):
 * the tile pipeline of one scene (pipeline.c), lists of scenes and output
 * names for batch runs (scenes.c) and quicklooks (quicklook.c).
 */
#ifndef GSEG_PREDICT_H
#define GSEG_PREDICT_H

#include "internal.h"

#include "../core/area.h"

/* ---- Scene lists and output names (scenes.c) --------------------------- */

/* Expands the inputs of a batch run into scenes, in order:
 *   - a file (any GDAL or VSI path that exists) is one scene;
 *   - a directory gives the raster files directly inside it, sorted by name:
 *     hidden files (".name", e.g. gseg's temporary files) and sidecars
 *     (.aux.xml, .ovr, .msk, .xml, .txt, .json, .md5, .gpkg, .shp and the like)
 *     are skipped, and only files GDAL identifies as rasters are kept;
 *   - a path whose last component holds a wildcard (* ? [...]) gives the
 *     matching files of that folder, sorted (local and VSI folders alike,
 *     through VSIReadDir + fnmatch), sidecars skipped unless the pattern
 *     names them ("*.ovr");
 *   - list (may be NULL): a text file, or "-" for stdin, with one scene per
 *     line (blank lines and lines starting with '#' skipped, surrounding
 *     whitespace trimmed); its entries come after the inputs' and are taken
 *     as they are (not expanded).
 * Duplicates are dropped, keeping the first. *out is a CSL (CSLDestroy).
 * Errors: GSEG_ERR_IO "PATH: no such file or directory", "PATTERN: matches no
 * file", "LIST: cannot read"; GSEG_ERR_ARG "no scenes given" when the
 * result is empty. */
gseg_status gseg__scenes_expand(const char *const *inputs, int ninputs,
                                const char *list, char ***out);

/* The output path of one scene for an output whose default name is
 * "{stem}<suffix>" (suffix e.g. "_mask.tif", "_outlines.gpkg"):
 *   - tmpl NULL: beside the scene, {dir}/{stem}<suffix>; scenes on VSI paths
 *     (/vsi...) write to the current folder instead;
 *   - tmpl holding placeholders: {stem} (file name without its last
 *     extension), {name} (file name), {ext} (extension without the dot),
 *     {dir} (the scene's folder, "." if none), {index} (index, 0-based, in
 *     the full scene list), each replaced; "{{" and "}}" are literal braces;
 *     an unknown placeholder or an unclosed brace is GSEG_ERR_ARG naming it;
 *   - tmpl naming an existing directory, or ending in '/':
 *     tmpl/{stem}<suffix>;
 *   - otherwise tmpl itself (the caller refuses that for several scenes).
 * *out is freed with free(). */
gseg_status gseg__output_path(const char *tmpl, const char *suffix,
                              const char *scene, int index, char **out);
/* 1 if tmpl (may be NULL) gives each scene its own name: NULL, holds a
 * placeholder, names an existing directory, or ends in '/'. */
int gseg__output_is_template(const char *tmpl);

/* "K/N" with N >= 1 and 0 <= K < N; else GSEG_ERR_ARG ("--shard 'S': expected
 * K/N with 0 <= K < N"). */
gseg_status gseg__shard_parse(const char *s, int *k, int *n);
/* The shard of a Slurm job array task: k = (SLURM_ARRAY_TASK_ID -
 * SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP (MIN default 0, STEP default
 * 1), n = SLURM_ARRAY_TASK_COUNT. Returns 1 with k, n set; 0 when
 * SLURM_ARRAY_TASK_ID or SLURM_ARRAY_TASK_COUNT is unset (not an array
 * job); -1 with an error message set (GSEG_ERR_ARG) when the values are not
 * integers or k falls outside 0..n-1 (e.g. --array=0,3,7 lists: "use --shard
 * K/N"). */
int gseg__shard_from_env(int *k, int *n);

/* ---- Quicklooks (quicklook.c) -------------------------------------------- */

typedef struct gseg__quicklook_params {
    const char *const *scene; /* the scene's files (stacked as bands) */
    int nscene;
    const char *resampling;   /* of coarser stacked files, NULL = nearest */
    const char *rgb[3];       /* band selectors for red, green, blue; NULL =
                                 automatic (see quicklook.c) */
    const char *mask;         /* the finished class mask (1 band Byte, 0
                                 background, 1..254 classes, 255 nodata) on
                                 the scene's grid */
    int max_size;             /* longer side of the PNG in pixels (the scene's
                                 size if smaller); default 1024 */
    int nclasses;             /* outline colour of class c: class_rgba[c] */
    const uint8_t (*class_rgba)[4];
} gseg__quicklook_params;

/* Writes `png` (atomically): the scene in natural colours (2-98 % stretch
 * per band over valid pixels; pixels without data transparent) with the
 * outline of every class >= 1 drawn on it. Memory is bounded by the PNG's
 * size and one strip of scene rows, not by the scene. */
gseg_status gseg__quicklook_write(const gseg__quicklook_params *p, const char *png);

/* ---- What predicting a scene needs (job.c) ------------------------------ */

#define GSEG__MASK_NODATA 255


typedef struct gseg__job {
    gseg_model *model;          /* p->model_handle, or opened (owned) */
    int own_model;
    gseg_scene *scene;          /* with the model's bands, checked */
    gseg_scene_params sp;       /* how it was opened (readers reopen it) */
    const char **sel;
    gseg_grid grid;
    double gt[6];
    int tile, overlap, batch, readers;
    int K;                      /* scores per pixel */
    int nclasses;
    const char *const *class_names;
    const unsigned char (*class_rgba)[4];
    double threshold;
} gseg__job;

/* Opens the model (unless p->model_handle) and the scene, resolves tiling,
 * classes, threshold, batch and readers. On failure everything is freed. */
gseg_status gseg__job_open(const gseg_predict_params *p, gseg__job *j);
void gseg__job_close(gseg__job *j);
/* Pipeline parameters for the job's scene, model and grid (no stitcher,
 * progress or range set). */
struct gseg__pipe_params;
void gseg__job_pipe_params(const gseg__job *j, const gseg_predict_params *p,
                           struct gseg__pipe_params *pp);
/* GDAL's block cache sized for the tiling, unless GDAL_CACHEMAX is set;
 * gseg__cache_need is that size (part of the memory plan). */
size_t gseg__cache_need(const gseg_scene *s, const gseg_grid *g);
void gseg__size_cache(const gseg_scene *s, const gseg_grid *g);

/* Receives a complete row band: rows [y, y+h) of the mask (width bytes per
 * row) and, when asked for, the scores [K][h][width] (NaN without data). */
typedef gseg_status (*gseg__rows_fn)(void *user, int y, int h, const uint8_t *mask,
                                     const float *scores);

/* The stitcher's sink: final windows → classes (threshold or argmax; 255
 * without data), pixel counts and areas per class into stats (may be
 * NULL), scores if asked for; whole row bands go to emit. */
typedef struct gseg__classify {
    int width, nscores, cap_rows;
    double threshold;
    uint8_t *mrow;              /* [cap_rows][width] */
    float *prow;                /* [nscores][cap_rows][width] or NULL */
    gseg__areas *areas;         /* pixel areas, when stats are kept and known */
    gseg_predict_stats *stats;
    gseg__rows_fn emit;
    void *user;
} gseg__classify;

gseg_status gseg__classify_init(gseg__classify *c, const gseg__job *j, int want_scores,
                                gseg__rows_fn emit, void *user, gseg_predict_stats *stats);
void gseg__classify_free(gseg__classify *c);
/* A gseg_stitch_sink; user is the gseg__classify. */
gseg_status gseg__classify_window(void *user, gseg_window win, const float *scores,
                                  const uint8_t *valid);

/* ---- The tile pipeline of one scene (pipeline.c) ------------------------ */

typedef struct gseg__pipe_params {
    const char *const *paths;   /* the scene's files, for readers' own handles */
    int npaths;
    const gseg_scene_params *scene_params;
    gseg_scene *scene;          /* open scene (reader 1 reads through it) */
    const gseg_grid *grid;
    const double *gt;           /* scene geotransform */
    gseg_model *model;          /* used by the caller's thread only */
    gseg_stitcher *stitcher;    /* fed in tile order by the blender thread;
                                   its sink runs on that thread */
    int batch;                  /* tiles per network call, >= 1 */
    int readers;                /* reader threads, >= 1 */
    gseg_progress_fn progress;  /* called on the caller's thread with
                                   progress_share * tiles done / tiles */
    void *user;
    double progress_share;
    const char *name;           /* for messages (the output path) */
    int first_tile, ntiles;     /* run tiles [first_tile, first_tile +
                                   ntiles); ntiles 0 = every tile */
} gseg__pipe_params;

typedef struct gseg__pipe_stats {
    int tiles, tiles_run, batches, readers;
    double model_seconds;       /* in the network */
    double model_wait_seconds;  /* the network waiting for readers */
    double blend_seconds;       /* stitching and writing row bands */
} gseg__pipe_stats;

/* Runs the tiles (every tile of the grid, or the range asked for, in index
 * order) through readers → network → blender (see pipeline.c). Returns the
 * first error of any stage. */
gseg_status gseg__pipe_run(const gseg__pipe_params *p, gseg__pipe_stats *stats);
/* Bytes of the batch slots the pipeline allocates for p. */
size_t gseg__pipe_bytes(const gseg__pipe_params *p);

/* ---- Runs over many scenes (batch.c) ------------------------------------ */

typedef struct gseg__batch {
    gseg_predict_params p;      /* settings of every scene; output, proba,
                                   vector and quicklook are templates for
                                   gseg__output_path (the mask always gets
                                   one); model NULL = $GSEG_MODEL, else
                                   ./model.gseg */
    const char *const *inputs;  /* scenes, folders, patterns */
    int ninputs;
    int stack;                  /* 1: the inputs are one scene's band files */
    const char *scene_list;     /* list file or "-", may be NULL */
    int skip_existing;          /* skip scenes whose outputs all exist */
    const char *shard;          /* "K/N"; NULL = from a Slurm job array, else
                                   all scenes */
    const char *summary;        /* JSON summary file, "-" = stdout, or NULL */
    int quiet;                  /* no result lines */
    const char *tool;           /* program name for messages */
} gseg__batch;

/* Runs every scene of this shard (see batch.c); prints one line per result
 * (stdout, or stderr when the summary goes to stdout) and one per failure
 * (stderr). Returns the exit code: 0 all done, 1 some scene failed (the
 * others still ran), 2 usage error. progress (may be NULL) restarts at 0
 * for each scene. */
int gseg__predict_batch(const gseg__batch *b, gseg_progress_fn progress, void *user);

#endif
