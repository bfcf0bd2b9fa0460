/*
 * internal.h — symbols shared between libgseg's source files (gseg__ prefix).
 * Not installed.
 */
#ifndef GSEG_INTERNAL_H
#define GSEG_INTERNAL_H

#include "gseg.h"

#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__)
#define GSEG__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define GSEG__PRINTF(a, b)
#endif


/* Sets this thread's error message and returns s. */
gseg_status gseg__err(gseg_status s, const char *fmt, ...) GSEG__PRINTF(2, 3);
/* Same, appending ": <CPLGetLastErrorMsg()>" when GDAL has a message. */
gseg_status gseg__gdal_err(gseg_status s, const char *fmt, ...) GSEG__PRINTF(2, 3);
void gseg__clear_error(void);

/* malloc/calloc that fail with GSEG_ERR_NOMEM set; n*size overflow-checked. */
void *gseg__calloc(size_t n, size_t size);
void *gseg__malloc(size_t n, size_t size);
char *gseg__strdup(const char *s);

/* Atomic outputs (src/write/atomic.c).
 * gseg__tmp_path: a fresh temporary path in final_path's folder that keeps
 * its extension ("dir/.name.gseg-tmp-PID-N.ext"); caller frees. The path is
 * registered so gseg_remove_temp_files() can delete it from a signal handler.
 * gseg__commit renames the temporary file and any sidecars that share its
 * stem (name.aux.xml, .hdr, ...) onto the final name, the main file last, and
 * forgets it. gseg__discard deletes them and forgets it. */
char *gseg__tmp_path(const char *final_path);
gseg_status gseg__commit(const char *tmp_path, const char *final_path);
void gseg__discard(const char *tmp_path);
/* " (the disk is full)" or " (a file size limit is set: ulimit -f)" when
 * that explains a failed write of path, else "": for messages after GDAL's
 * own, which rarely say so. */
const char *gseg__space_hint(const char *path);
/* Whether GDAL can write `format` as a raster file with creation options
 * co, and, for a class mask (mask 1), without loss: GSEG_ERR_ARG with a
 * one-line message otherwise (MEM, VRT, JPEG, COMPRESS=JPEG, ...). */
gseg_status gseg__writer_check(const char *format, const char *const *co, int mask);
/* Whether `name` is a resampling gseg_scene_params.resampling takes
 * (nearest, bilinear, ...): GSEG_ERR_ARG with a message otherwise. */
gseg_status gseg__resampling_check(const char *name);
/* Writes n bytes to path through a temporary file and gseg__commit. */
gseg_status gseg__write_file_atomic(const char *path, const void *data, size_t n);
/* Creates the folder of output `path` and its parents where missing, as
 * `mkdir -p` does (VSIMkdirRecursive of GDAL < 3.8 fails on relative
 * paths); the error names path and the folder. */
gseg_status gseg__make_parent(const char *path);

/* The memory a job may plan for, in bytes: GSEG_MAX_MEMORY config option
 * (e.g. "2G", "512M"), default half of physical RAM. */
size_t gseg__memory_limit(void);

/* The CPUs this process may run on (its affinity mask: what a Slurm task
 * or taskset grants, not every core of the node); >= 1. */
int gseg__cpu_count(void);
/* Whether the helper threads of a pipeline (prediction's readers and
 * blender, training's loaders) should take turns with a computation that
 * keeps busy_threads CPU threads busy, rather than run beside it: when
 * those fill every CPU (see pipeline.c). The GDAL config option
 * GSEG_PIPELINE_TURNS=YES|NO overrides; AUTO (default) decides. */
int gseg__take_turns(int busy_threads);

/* Models (src/infer): a vtable behind gseg_model. */
typedef struct gseg__model_vt {
    const char *kind;
    gseg_status (*forward)(gseg_model *m, const float *in, int n, int h, int w,
                           const uint8_t *valid, float *out);
    void (*free)(gseg_model *m);
    /* Optional split of forward for pipelines: normalise (any thread, reads
     * only constants of m) in place, then forward_normalised (the thread
     * using m). NULL: forward takes raw values. */
    void (*normalise)(const gseg_model *m, float *in, int n, int h, int w,
                      const uint8_t *valid);
    gseg_status (*forward_normalised)(gseg_model *m, float *in, int n, int h, int w,
                                      const uint8_t *valid, float *out);
} gseg__model_vt;

struct gseg_model {
    const gseg__model_vt *vt;
    char *spec;
    int nbands;
    char **bands;        /* nbands scene band selectors */
    int nscores;
    double threshold;
    const char *score_name;
    int tile, overlap; /* from training; 0 = unknown */
    void *impl;
};

gseg_status gseg__ndsi_open(const char *args, gseg_model *m);
/* gseg_model_forward in two halves: normalise a batch in place (thread-safe:
 * reads only m's constants), then run it (the thread using m). For models
 * without normalisation the first does nothing. */
void gseg__model_normalise(const gseg_model *m, float *in, int n, int h, int w,
                           const uint8_t *valid);
gseg_status gseg__model_forward_normalised(gseg_model *m, float *in, int n, int h, int w,
                                           const uint8_t *valid, float *out);
/* Marks m as used for prediction only: a network model then frees the
 * weights its folded inference does not need once prepared (reading,
 * saving or training it fails afterwards). No-op for other models. */
void gseg__model_inference_only(gseg_model *m);
void gseg__netmodel_inference_only(gseg_model *m);
/* The CPU threads a forward call of m keeps busy: the network's intra-op
 * threads on the CPU, 0 on a GPU, 1 for the NDSI baseline (the caller's
 * thread alone). */
int gseg__model_cpu_threads(const gseg_model *m);
int gseg__netmodel_cpu_threads(const gseg_model *m);
/* Network models (src/infer/netmodel.c, builds with libtorch only). */
gseg_status gseg__netmodel_open(const char *path, const gseg_model_options *opt,
                                gseg_model **out);
/* Class names and RGBA colours of a model's mask values; returns their
 * count: a network model's own, else the binary pair (background,
 * glacier). Pointers live as long as m. */
int gseg__model_classes(const gseg_model *m, const char *const **names,
                        const unsigned char (**rgba)[4]);
/* The binary pair's names and colours (as gseg__class_default_rgba's). */
extern const char *const gseg__binary_classes[2];
extern const unsigned char (*const gseg__binary_rgba)[4]; /* [2] */
/* The default RGBA colour of class k, used where a model names no colours:
 * 0 transparent background, 1 ice blue, 2 debris brown, then four more;
 * from class 8 on the colours of classes 1..7 repeat (never the
 * background's transparency). */
const unsigned char *gseg__class_default_rgba(int k);
/* Normalisation of input band `band` of a network model (0 and 1 for
 * others). */
void gseg__model_norm(const gseg_model *m, int band, double *mean, double *sd);
struct gseg__net;
/* The shim network behind a network model, NULL for other models. */
struct gseg__net *gseg__netmodel_net(gseg_model *m);
/* A network model's file contents copied at one moment (weights and
 * metadata, provenance included), to write later from any thread: training
 * takes one per checkpoint and writes it while the next steps run. */
typedef struct gseg__model_image gseg__model_image;
gseg_status gseg__model_image_take(gseg_model *m, gseg__model_image **out);
gseg_status gseg__model_image_write(const gseg__model_image *img, const char *path);
void gseg__model_image_free(gseg__model_image *img);
/* The precision a network model runs in once it has run (AUTO resolved);
 * GSEG_PRECISION_AUTO before that and for other models. */
gseg_precision gseg__model_precision_used(const gseg_model *m);



/* Outlines (src/vectorize/coverage.c): edges go to GEOS's simplifier in
 * batches of about this many vertices, to bound its memory; tests lower it
 * so that batches meet. */
extern size_t gseg__simplify_batch;

/* Scenes (src/read). Copies the scene's georeferencing (CRS + geotransform,
 * or GCPs + their CRS, and RPC metadata) onto a GDAL dataset being written.
 * `ds` is a GDALDatasetH. */
gseg_status gseg__scene_copy_georef(const gseg_scene *s, void *ds);
/* What gseg__scene_copy_georef carries: GSEG_GEOREF_GT (a geotransform or a
 * CRS), GSEG_GEOREF_GCP (ground control points), GSEG_GEOREF_RPC (RPC
 * metadata only), or GSEG_GEOREF_NONE. */
enum { GSEG_GEOREF_NONE, GSEG_GEOREF_GT, GSEG_GEOREF_GCP, GSEG_GEOREF_RPC };
int gseg__scene_georef_kind(const gseg_scene *s);
/* Bytes per pixel of one row the reader keeps while reading a window
 * (all selected bands, in the source type). */
size_t gseg__scene_bytes_per_pixel(const gseg_scene *s);
/* Block size of the first selected band's source (for cache sizing). */
void gseg__scene_block_size(const gseg_scene *s, int *bw, int *bh);
/* Option values of the tools (args.c): an integer or a finite number in
 * [lo, hi]; otherwise GSEG_ERR_ARG and "OPT: 'V' is not an integer in
 * [LO, HI]" as the message. */
gseg_status gseg__arg_long(const char *opt, const char *v, long lo, long hi, long *out);
gseg_status gseg__arg_int(const char *opt, const char *v, int lo, int hi, int *out);
gseg_status gseg__arg_double(const char *opt, const char *v, double lo, double hi, double *out);
/* The same for a tool's main: prints "TOOL: message" on stderr and
 * returns 0 on a bad value, 1 otherwise. */
int gseg__tool_int(const char *tool, const char *opt, const char *v, long lo, long hi, int *out);
int gseg__tool_num(const char *tool, const char *opt, const char *v, double lo, double hi,
                   double *out);

#endif
