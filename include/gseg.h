/*
 * gseg.h — public C API of libgseg, the glacier segmentation engine.
 *
 * Data flows read → tile → infer → stitch → write → vectorize:
 *
 *   gseg_scene   reads a GDAL raster (or a stack of files) as float tiles with
 *                a validity mask                                  (src/read)
 *   gseg_grid    cuts the scene into overlapping, georeferenced tiles (src/tile)
 *   gseg_model   turns a batch of tiles into per-pixel class scores (src/infer)
 *   gseg_stitcher blends overlapping tile scores back into final pixels, row
 *                band by row band, holding only the open rows      (src/stitch)
 *   gseg_writer  writes row bands to any GDAL format (COG by default),
 *                atomically                                       (src/write)
 *   gseg_vectorize turns a class mask into outlines with areas   (src/vectorize)
 *   gseg_predict runs all of the above for one scene            (src/predict)
 *
 * Conventions
 *   - Every function returning gseg_status sets a thread-local message on
 *     failure, read with gseg_last_error(); valid until the next gseg call on
 *     the same thread.
 *   - Constructors return the object through an out-parameter and set it to
 *     NULL on failure. Every *_open / *_new pairs with a *_free; *_free(NULL)
 *     is a no-op.
 *   - Strings passed in are borrowed (copied if kept). Strings returned live
 *     as long as the object they came from unless stated otherwise.
 *   - Threads: all functions are re-entrant. One object is used by one thread
 *     at a time. Each scene owns its own GDAL dataset handles (GDAL datasets
 *     are not thread-safe), so readers on other threads open their own scene.
 *   - Progress callbacks are called on the caller's thread only.
 *   - Call gseg_init() once before anything else (it registers GDAL drivers).
 *     The library never installs a CPL error handler.
 */
#ifndef GSEG_H
#define GSEG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(GSEG_BUILDING)
#define GSEG_API __declspec(dllexport)
#elif defined(__GNUC__)
#define GSEG_API __attribute__((visibility("default")))
#else
#define GSEG_API
#endif

/* ------------------------------------------------------------------------ */
/* Version, status, errors                                                  */

#define GSEG_VERSION_MAJOR 0
#define GSEG_VERSION_MINOR 1
#define GSEG_VERSION_PATCH 0
#define GSEG_VERSION_STRING "0.1.0"

typedef enum gseg_status {
    GSEG_OK = 0,
    GSEG_ERR_ARG,         /* invalid argument or option (a usage error)     */
    GSEG_ERR_IO,          /* a file could not be opened, read or written    */
    GSEG_ERR_FORMAT,      /* a file was read but its content is unusable    */
    GSEG_ERR_NOMEM,       /* out of memory                                  */
    GSEG_ERR_LIMIT,       /* the job would exceed a resource limit          */
    GSEG_ERR_CANCELLED,   /* a progress callback returned 0                 */
    GSEG_ERR_UNSUPPORTED, /* valid request this build cannot do             */
    GSEG_ERR_INTERNAL     /* a bug: please report it                        */
} gseg_status;

/* Static string naming a status ("invalid argument", ...). */
GSEG_API const char *gseg_status_str(gseg_status s);

/* The last error message on this thread ("" if none). Valid until the next
 * gseg call on this thread. */
GSEG_API const char *gseg_last_error(void);

/* "0.1.0". Static. */
GSEG_API const char *gseg_version(void);

/* Registers GDAL/OGR drivers. Safe to call more than once and from several
 * threads. */
GSEG_API void gseg_init(void);

/* Deletes the temporary files of outputs still being written by this process.
 * Async-signal-safe: meant for SIGINT/SIGTERM handlers of tools, so an
 * interrupted run leaves neither a partial output nor its temporary file. */
GSEG_API void gseg_remove_temp_files(void);

/* Same type as GDALProgressFunc, so GDALTermProgress plugs in directly.
 * complete is in [0, 1]; returning 0 cancels the operation, which then
 * fails with GSEG_ERR_CANCELLED. May be NULL wherever it is accepted. */
typedef int (*gseg_progress_fn)(double complete, const char *msg, void *user);

/* Progress on stderr in GDAL's style, "0...10...20...30...40...50...60...70
 * ...80...90...100 - done.", for tools whose stdout carries data. Restarts
 * when complete goes back to 0. user is ignored. Always returns 1. */
GSEG_API int gseg_term_progress(double complete, const char *msg, void *user);

/* ------------------------------------------------------------------------ */
/* Geometry: pixel windows, tiles, the tile grid                   (src/tile) */

typedef struct gseg_window {
    int x, y; /* top-left pixel in the scene */
    int w, h; /* size in pixels */
} gseg_window;

/* The tile grid of a scene: square tiles of `tile` pixels overlapping by
 * `overlap` pixels. Every scene pixel is covered; the last row and column of
 * tiles shift inward so they end at the scene edge; a scene smaller than a
 * tile yields one tile whose window is the whole scene (the model input is
 * padded). Plain data, filled by gseg_grid_init. */
typedef struct gseg_grid {
    int width, height; /* scene size */
    int tile, overlap;
    int ncols, nrows;  /* tiles across, down */
} gseg_grid;

typedef struct gseg_tile {
    int index;              /* row-major index, 0 .. ncols*nrows-1 */
    int row, col;
    gseg_window win;        /* in-scene pixels, w,h <= tile */
    double geotransform[6]; /* GDAL geotransform of the tile's own raster */
} gseg_tile;

/* Fails with GSEG_ERR_ARG unless width, height >= 1, tile >= 8 and
 * 0 <= overlap < tile; with GSEG_ERR_LIMIT if the grid would have more than
 * INT_MAX tiles. */
GSEG_API gseg_status gseg_grid_init(gseg_grid *g, int width, int height,
                                    int tile, int overlap);
GSEG_API int gseg_grid_count(const gseg_grid *g);
/* Fills *t for tile `index`. scene_gt may be NULL (identity transform). */
GSEG_API gseg_status gseg_grid_tile(const gseg_grid *g, const double scene_gt[6],
                                    int index, gseg_tile *t);

/* ------------------------------------------------------------------------ */
/* Scenes                                                          (src/read) */

typedef struct gseg_scene gseg_scene;

typedef struct gseg_scene_params {
    /* Bands to read, as a NULL-terminated list of selectors: a 1-based band
     * number ("5") or a band description, matched case-insensitively
     * ("SWIR1"). NULL reads every band. Numbers count over the whole stack. */
    const char *const *bands;
    /* Resampling used to bring coarser stacked files onto the finest grid:
     * any GDAL resampling name. Default "nearest". */
    const char *resampling;
} gseg_scene_params;

GSEG_API gseg_scene_params gseg_scene_params_default(void);

/* Opens a scene: one file (all of its bands), or several files stacked as
 * bands in the order given. Any GDAL-readable path or VSI path works.
 * Stacked files must share a CRS and overlap; files of coarser resolution are
 * resampled to the finest one through a GDAL VRT, on the intersection of their
 * extents aligned to the finest file's pixel grid. */
GSEG_API gseg_status gseg_scene_open(const char *const *paths, int npaths,
                                     const gseg_scene_params *p,
                                     gseg_scene **out);
GSEG_API void gseg_scene_free(gseg_scene *s);

GSEG_API int gseg_scene_width(const gseg_scene *s);
GSEG_API int gseg_scene_height(const gseg_scene *s);
GSEG_API int gseg_scene_nbands(const gseg_scene *s); /* selected bands */
/* First input path. */
GSEG_API const char *gseg_scene_path(const gseg_scene *s);
/* Description of selected band i (0-based), or "band N" if it has none. */
GSEG_API const char *gseg_scene_band_name(const gseg_scene *s, int i);
/* Fills gt and returns 1 if the scene has a geotransform; else fills the
 * identity transform and returns 0. */
GSEG_API int gseg_scene_geotransform(const gseg_scene *s, double gt[6]);
/* WKT of the scene's CRS, "" if none. */
GSEG_API const char *gseg_scene_crs_wkt(const gseg_scene *s);

/* Reads window `win` of every selected band as float32, scale and offset
 * applied, into data[band][pad_h][pad_w] (band-sequential). Pixels outside
 * the window (when pad_w > win.w or pad_h > win.h) are filled by replicating
 * the window's edge and marked invalid. valid[pad_h][pad_w] (may be NULL)
 * receives 1 where every band holds data (not nodata, not masked by a mask or
 * alpha band, not NaN) and 0 elsewhere; *nvalid (may be NULL) the count of
 * valid pixels. */
GSEG_API gseg_status gseg_scene_read(gseg_scene *s, gseg_window win,
                                     int pad_w, int pad_h, float *data,
                                     uint8_t *valid, size_t *nvalid);

/* ------------------------------------------------------------------------ */
/* Models                                                         (src/infer) */

typedef struct gseg_model gseg_model;

/* Numeric precision of network inference. AUTO: bf16 on CPUs with native
 * bf16 (avx512_bf16 or AMX), fp32 on other CPUs, fp16 on CUDA. fp16 needs
 * CUDA. */
typedef enum gseg_precision {
    GSEG_PRECISION_AUTO = 0,
    GSEG_PRECISION_FP32,
    GSEG_PRECISION_BF16,
    GSEG_PRECISION_FP16
} gseg_precision;

/* "auto", "fp32", "bf16", "fp16". Static. */
GSEG_API const char *gseg_precision_str(gseg_precision p);
/* Parses one of the names above (case-insensitive). */
GSEG_API gseg_status gseg_precision_parse(const char *s, gseg_precision *out);
/* Checks a device name: "cpu", "cuda" or "cuda:N" (GSEG_ERR_ARG with a
 * message otherwise). Whether that device exists is known only when a
 * network is prepared on it. */
GSEG_API gseg_status gseg_device_check(const char *device);

/* How a network model runs (ignored by the NDSI baseline). */
typedef struct gseg_model_options {
    const char *device;       /* "cpu" (default), "cuda", "cuda:N" */
    gseg_precision precision; /* default GSEG_PRECISION_AUTO */
    int threads;              /* intra-op threads, 0 = every CPU the
                                 process may run on (its affinity); the
                                 setting is process-wide in libtorch */
    int fold_bn;              /* fold BatchNorm into the convolutions
                                 (default 1; 0 is for checks, fp32 only) */
    int tta;                  /* test-time augmentation: 0 none (default);
                                 1 flips: the mean of the probabilities of
                                 4 passes (as is, flipped left-right,
                                 up-down, both) */
} gseg_model_options;

GSEG_API gseg_model_options gseg_model_options_default(void);

/* Opens a model from a spec:
 *   ndsi:green=G,swir=S[,threshold=T]   NDSI = (G - S) / (G + S) > T
 *       G and S are band selectors (1-based number or band description);
 *       T defaults to 0.4. The score is the NDSI itself.
 *   PATH                                a .gseg network model file (any
 *       GDAL VSI path), in builds with the libtorch backend.
 * opt may be NULL (defaults). The caller frees *out with gseg_model_free. */
GSEG_API gseg_status gseg_model_open(const char *spec,
                                     const gseg_model_options *opt,
                                     gseg_model **out);
GSEG_API void gseg_model_free(gseg_model *m);

/* 1 if this build has the libtorch network backend. */
GSEG_API int gseg_have_network(void);

/* A new network model, before training or importing weights. */
typedef struct gseg_model_def {
    const char *encoder;            /* "resnet50" (default), "resnet18",
                                       "resnet34", "resnet101", "resnet152" */
    int nbands;                     /* input bands, >= 1 */
    const char *const *bands;       /* nbands scene band selectors (number,
                                       description or file-stem suffix);
                                       NULL = "1".."nbands" */
    const double *mean, *std;       /* per band normalisation, x' = (x -
                                       mean) / std; NULL = 0 and 1 */
    int nclasses;                   /* mask classes: 2 (default) = binary
                                       model, one sigmoid output; K > 2 =
                                       K softmax outputs */
    const char *const *classes;     /* nclasses names; NULL = "background",
                                       "glacier" (binary) or "class_N" */
    int tile, overlap;              /* tiling used in training: 256, 32 */
    double threshold;               /* binary decision threshold: 0.5 */
    unsigned long long seed;        /* weight initialisation: 0 */
} gseg_model_def;

GSEG_API gseg_model_def gseg_model_def_default(void);

/* A network model with freshly initialised weights (PyTorch's defaults).
 * opt may be NULL. */
GSEG_API gseg_status gseg_model_new(const gseg_model_def *def,
                                    const gseg_model_options *opt,
                                    gseg_model **out);

/* Makes a network model from a state dict laid out as segmentation-models-
 * pytorch's Unet (a safetensors file, or a torch.save pickle where libtorch
 * can read it). Encoder, band count and output count come from the
 * weights; def (may be NULL) gives band names, normalisation, classes,
 * tiling and threshold; def->nbands different from the weights' adapts the
 * first convolution as SMP's patch_first_conv does. */
GSEG_API gseg_status gseg_model_import(const char *weights,
                                       const gseg_model_def *def,
                                       const gseg_model_options *opt,
                                       gseg_model **out);

/* Loads a torchvision ResNet state dict (e.g. ImageNet weights; keys with
 * or without an "encoder." prefix; fc.* ignored) into the encoder of m,
 * adapting the first convolution to m's band count. */
GSEG_API gseg_status gseg_model_init_encoder(gseg_model *m, const char *weights);

/* Writes m as a .gseg file (atomically): a safetensors file holding the
 * state dict under SMP's names, with gseg's metadata as JSON under the
 * "gseg" key of __metadata__; Python's safetensors reads it as is. */
GSEG_API gseg_status gseg_model_save(gseg_model *m, const char *path);
/* Writes the bare state dict as safetensors (metadata {"format": "pt"}),
 * for SMP's load_state_dict. Atomic. */
GSEG_API gseg_status gseg_model_export(gseg_model *m, const char *path);

/* A description of m (architecture, bands, normalisation, classes, tiling,
 * provenance): JSON when json != 0, else text. The caller frees it with
 * gseg_free. NULL on failure. */
GSEG_API char *gseg_model_describe(const gseg_model *m, int json);
/* Frees memory gseg returned. */
GSEG_API void gseg_free(void *p);

/* Provenance of a network model: a JSON object (training data, epochs,
 * metrics, ...) stored in the model file; replaces the previous one. */
GSEG_API gseg_status gseg_model_set_provenance(gseg_model *m, const char *json);

/* The encoder of a network model ("resnet50"), NULL for other models. */
GSEG_API const char *gseg_model_encoder(const gseg_model *m);

/* gseg-import, gseg-export and gseg-info: parse argv (argv[0] is the
 * program name) and run; returns the exit code (0, 1 failure, 2 usage) and
 * prints to stdout/stderr. tool is the program name. */
GSEG_API int gseg_model_tool_main(const char *tool, int argc, char **argv);

/* Tile size and overlap the model was trained with (0 if unknown). */
GSEG_API int gseg_model_tile(const gseg_model *m);
GSEG_API int gseg_model_overlap(const gseg_model *m);

/* "ndsi" ... Static. */
GSEG_API const char *gseg_model_kind(const gseg_model *m);
/* The spec or path the model was opened from. */
GSEG_API const char *gseg_model_spec(const gseg_model *m);
/* Input channels and the scene band selector feeding channel i. */
GSEG_API int gseg_model_nbands(const gseg_model *m);
GSEG_API const char *gseg_model_band(const gseg_model *m, int i);
/* Output channels: 1 for a binary model (score > threshold is glacier), K
 * for a K-class model (argmax). */
GSEG_API int gseg_model_nscores(const gseg_model *m);
GSEG_API double gseg_model_threshold(const gseg_model *m);
/* Name of what the score means ("NDSI", "glacier probability"). */
GSEG_API const char *gseg_model_score_name(const gseg_model *m);

/* in[n][nbands][h][w] -> out[n][nscores][h][w]. valid[n][h][w] may be NULL;
 * scores of invalid pixels are unspecified. */
GSEG_API gseg_status gseg_model_forward(gseg_model *m, const float *in, int n,
                                        int h, int w, const uint8_t *valid,
                                        float *out);

/* ------------------------------------------------------------------------ */
/* Stitching                                                     (src/stitch) */

typedef struct gseg_stitcher gseg_stitcher;

/* Receives final pixels: scores[k][win.h][win.w] for k < nscores and
 * valid[win.h][win.w], both with row stride win.w, valid for the call only.
 * Windows arrive in raster order: all windows of one row band (same y and h)
 * from left to right, then the next band; together they cover every scene
 * pixel exactly once. Returns GSEG_OK or an error status to abort. */
typedef gseg_status (*gseg_stitch_sink)(void *user, gseg_window win,
                                        const float *scores,
                                        const uint8_t *valid);

/* Tiles overlap; where two tiles overlap, their scores are blended across a
 * zone of `overlap` pixels centred in the overlap with a raised-cosine ramp
 * (separable in x and y). Blending is exact for per-pixel models: where two
 * tiles agree the blended value equals theirs bit for bit. Memory holds the
 * blend zones of the open row of tiles: O(width * overlap), independent of
 * the scene height. */
GSEG_API gseg_status gseg_stitcher_new(const gseg_grid *g, int nscores,
                                       gseg_stitch_sink sink, void *user,
                                       gseg_stitcher **out);
GSEG_API void gseg_stitcher_free(gseg_stitcher *s);
/* Adds tile t (tiles must come in index order, none missing). scores is
 * [nscores][tile][tile] and valid [tile][tile] with the window's pixels in the
 * top-left corner; scores == NULL marks a skipped (all-nodata) tile. */
GSEG_API gseg_status gseg_stitcher_add(gseg_stitcher *s, const gseg_tile *t,
                                       const float *scores,
                                       const uint8_t *valid);
/* Bytes held by the stitcher's buffers. */
GSEG_API size_t gseg_stitcher_buffer_bytes(const gseg_stitcher *s);
/* Random access: the next tile expected becomes the first of tile row
 * `row`. The carry from the row above is then stale, so the windows this
 * row delivers in its top blend zone are not final; feed row - 1 first
 * (discarding what it delivers) to get row `row` exact. */
GSEG_API gseg_status gseg_stitcher_seek(gseg_stitcher *s, int row);
/* Scene rows [*y0, *y1) that the windows of tile row `row` cover. */
GSEG_API void gseg_stitcher_rows(const gseg_stitcher *s, int row, int *y0, int *y1);

/* ------------------------------------------------------------------------ */
/* Raster writing                                                 (src/write) */

typedef struct gseg_writer gseg_writer;

typedef enum gseg_type { GSEG_BYTE = 1, GSEG_FLOAT32 = 6 } gseg_type;

typedef struct gseg_writer_params {
    const char *format;                 /* GDAL driver; NULL = "COG" */
    const char *const *create_options;  /* NULL-terminated KEY=VALUE, or NULL */
    int width, height, nbands;
    gseg_type type;
    const gseg_scene *georef;  /* CRS, geotransform, GCPs copied from here */
    int has_nodata;
    double nodata;
    /* Byte masks: class table. Entry i names class i and gives its RGBA
     * colour; the nodata value is shown transparent. With classes, a QGIS
     * style <stem>.qml (paletted, class 0 and nodata transparent) is
     * written beside the raster, atomically with it. */
    int nclasses;
    const char *const *class_names;
    const uint8_t (*class_rgba)[4];
    const char *band_description;        /* may be NULL */
    const char *const *band_names;       /* nbands descriptions, one per band
                                            (e.g. class names of per-class
                                            probabilities); NULL = all
                                            band_description */
    const char *const *metadata;         /* NULL-terminated KEY=VALUE */
} gseg_writer_params;

GSEG_API gseg_writer_params gseg_writer_params_default(void);

/* Starts writing `path` under a temporary name in the same folder; nothing
 * appears under `path` until gseg_writer_close succeeds. Formats that only
 * support CreateCopy (COG, PNG, ...) are written through a temporary GeoTIFF. */
GSEG_API gseg_status gseg_writer_open(const char *path,
                                      const gseg_writer_params *p,
                                      gseg_writer **out);
/* Writes rows [y, y+nrows) of all bands: data[band][nrows][width]. */
GSEG_API gseg_status gseg_writer_write_rows(gseg_writer *w, int y, int nrows,
                                            const void *data);
/* Finishes the file (COG conversion, overviews) and renames it into place.
 * Frees w whatever the outcome; on failure nothing is left behind. Same as
 * gseg_writer_finish then gseg_writer_commit. */
GSEG_API gseg_status gseg_writer_close(gseg_writer *w, gseg_progress_fn progress,
                                       void *user);
/* Finishes the file under its temporary name without renaming it, so
 * several outputs can appear together (and later steps can read it:
 * gseg_writer_finished_path). On failure w still needs abort. */
GSEG_API gseg_status gseg_writer_finish(gseg_writer *w, gseg_progress_fn progress,
                                        void *user);
/* The complete temporary file after gseg_writer_finish, else NULL. */
GSEG_API const char *gseg_writer_finished_path(const gseg_writer *w);
/* Renames a finished file into place (sidecars first). Frees w. */
GSEG_API gseg_status gseg_writer_commit(gseg_writer *w);
/* Discards everything written. Frees w. */
GSEG_API void gseg_writer_abort(gseg_writer *w);

/* ------------------------------------------------------------------------ */
/* Vectorising                                                (src/vectorize) */

typedef struct gseg_vectorize_params {
    const char *format;        /* OGR driver; NULL = from extension, else GPKG */
    const char *layer_name;    /* NULL = "glaciers" */
    int band;                  /* mask band, default 1 */
    double min_area_km2;       /* minimum mapping unit, default 0.01 */
    double simplify_m;         /* simplification tolerance in metres, 0 = none;
                                  converted to degrees for geographic CRSs, taken
                                  as map units when the mask has no CRS. All
                                  outlines are simplified together, keeping the
                                  topology: valid, non-overlapping, shared edges
                                  shared, none dropped */
    const char *t_srs;         /* output CRS (any OSR user input), NULL = mask's */
    const char *source;        /* value of the `source` attribute, may be NULL */
    int nclasses;              /* class names for the `class_name` attribute */
    const char *const *class_names;
    /* Class colours (RGBA, nclasses entries) for the default QGIS style
     * stored with GeoPackage output (table layer_styles); NULL = gseg's
     * defaults (glacier 0,170,255). */
    const uint8_t (*class_rgba)[4];
} gseg_vectorize_params;

typedef struct gseg_vectorize_stats {
    long long polygons;     /* features written */
    long long dropped;      /* polygons below min_area_km2 (their pixel area:
                               simplification never changes the count) */
    double area_km2;        /* total area written; NaN when the mask has no CRS */
} gseg_vectorize_stats;

GSEG_API gseg_vectorize_params gseg_vectorize_params_default(void);

/* Polygonizes the mask (0 background, 1..254 classes, 255 and the band's
 * nodata ignored) into `out_path` (written atomically): one feature per
 * 4-connected polygon of one class, holes kept, with attributes id, class,
 * class_name, area_km2 and perimeter_km (geodesic, on the CRS's ellipsoid;
 * NULL when the mask has no CRS) and source. stats may be NULL. */
GSEG_API gseg_status gseg_vectorize(const char *mask_path, const char *out_path,
                                    const gseg_vectorize_params *p,
                                    gseg_progress_fn progress, void *user,
                                    gseg_vectorize_stats *stats);

/* ------------------------------------------------------------------------ */
/* Prediction of one scene                                      (src/predict) */

typedef struct gseg_predict_params {
    const char *model;                /* spec or model file, required */
    gseg_model *model_handle;         /* or an open model (borrowed, not
                                         freed; used by this call only):
                                         several scenes, one model load */
    const char *const *inputs;        /* scene files (stacked as bands) */
    int ninputs;
    const char *output;               /* mask; NULL = <stem>_mask.tif beside inputs[0] */
    const char *format;               /* mask format; NULL = COG */
    const char *const *create_options;/* NULL-terminated KEY=VALUE, or NULL */
    const char *proba;                /* score raster (Float32), or NULL */
    const char *vector;               /* outlines, or NULL */
    const char *vector_format;        /* NULL = from extension, else GPKG */
    double min_area_km2;              /* default 0.01 */
    double simplify_m;                /* default 0 */
    const char *t_srs;                /* outline CRS, NULL = scene's */
    int tile, overlap;                /* 0 and -1 (default) = the model's
                                         training tiling, else 512 and 64 */
    gseg_model_options model_options; /* device, precision, threads */
    const char *resampling;           /* for coarser stacked bands, NULL = nearest */
    double threshold;                 /* NaN (default) = the model's */
    /* Bound GDAL's block cache to what the tiling needs unless the user set
     * GDAL_CACHEMAX. Changes a process-wide GDAL setting. Default 1. */
    int auto_cache;
    int batch;                        /* tiles per network call; 0 = 4 for
                                         networks on CPU, 16 on CUDA and for
                                         NDSI */
    int readers;                      /* reader threads, each with its own
                                         GDAL handles; 0 = 2 */
    const char *quicklook;            /* PNG: the scene in natural colours
                                         with the outlines, or NULL */
    const char *quicklook_bands;      /* "R,G,B" band selectors, NULL = the
                                         bands named red, green, blue */
    int quicklook_size;               /* longer side in pixels, 0 = 1024 */
} gseg_predict_params;

typedef struct gseg_predict_stats {
    int width, height;
    long long pixels;        /* scene pixels */
    long long valid_pixels;  /* pixels with data */
    long long class_pixels[8]; /* pixels per class value 0..7 */
    double class_km2[8];     /* their area on the ellipsoid of the scene's
                                CRS (each pixel's own area, for projected
                                CRSs too); NaN without georeferencing */
    int tiles, tiles_skipped;
    long long tile_pixels;   /* pixels through the model: tiles run x tile^2 */
    int batch, readers;      /* as run */
    double glacier_km2;      /* outline area, when outlines were written */
    long long polygons;
    double seconds;          /* the whole scene, outputs included */
    double model_seconds;    /* inside the network */
    double model_wait_seconds; /* the network waiting for tiles */
} gseg_predict_stats;

GSEG_API gseg_predict_params gseg_predict_params_default(void);
/* Runs read → tile → infer → stitch → write (→ vectorize) for one scene.
 * stats may be NULL. */
GSEG_API gseg_status gseg_predict(const gseg_predict_params *p,
                                  gseg_progress_fn progress, void *user,
                                  gseg_predict_stats *stats);

/* ------------------------------------------------------------------------ */
/* Random access to a prediction                                (src/predict) */

/* A scene's prediction read window by window, computed on demand one tile
 * row at a time with gseg_predict's tiling, blending and thresholds: the
 * bytes equal those gseg_predict writes for the same parameters. Recent
 * tile rows are cached (GSEG_PREDICTOR_CACHE bytes, default 256 MB);
 * reading top to bottom computes every tile once. The engine of the GDAL
 * driver. One thread at a time. */
typedef struct gseg_predictor gseg_predictor;

typedef struct gseg_predictor_info {
    int width, height;
    int nscores;                        /* score bands */
    int nclasses;                       /* mask classes */
    const char *const *class_names;
    const unsigned char (*class_rgba)[4];
    int tile, overlap;
    double threshold;
    const gseg_model *model;
    const gseg_scene *scene;            /* CRS, geotransform, GCPs */
} gseg_predictor_info;

/* p as for gseg_predict (its output paths are ignored); want_scores keeps
 * the scores for gseg_predictor_read's `scores`. */
GSEG_API gseg_status gseg_predictor_open(const gseg_predict_params *p, int want_scores,
                                         gseg_predictor **out);
GSEG_API void gseg_predictor_free(gseg_predictor *pr);
/* Lives as long as pr. */
GSEG_API const gseg_predictor_info *gseg_predictor_get_info(const gseg_predictor *pr);
/* Window win of the mask (mask[win.h][win.w], 255 without data; may be
 * NULL) and of the scores (scores[nscores][win.h][win.w], NaN without
 * data; NULL unless opened with want_scores). */
GSEG_API gseg_status gseg_predictor_read(gseg_predictor *pr, gseg_window win,
                                         uint8_t *mask, float *scores);

/* ------------------------------------------------------------------------ */
/* Command lines (GDAL-utility style: parsing lives here, mains stay thin)  */

typedef struct gseg_predict_cli gseg_predict_cli;

/* Parses gseg-predict's arguments (argv[0] is the program name; GDAL's
 * general options such as --config are expected to have been processed by
 * GDALGeneralCmdLineProcessor). On a usage error returns GSEG_ERR_ARG with a
 * message. */
GSEG_API gseg_status gseg_predict_cli_parse(int argc, char **argv,
                                            gseg_predict_cli **out);
GSEG_API void gseg_predict_cli_free(gseg_predict_cli *c);
/* Parameters parsed; strings live as long as c. */
GSEG_API const gseg_predict_params *gseg_predict_cli_params(const gseg_predict_cli *c);
GSEG_API int gseg_predict_cli_quiet(const gseg_predict_cli *c);
/* 1 if --help / --version was asked for (then nothing else is parsed). */
GSEG_API int gseg_predict_cli_help(const gseg_predict_cli *c);
GSEG_API int gseg_predict_cli_version(const gseg_predict_cli *c);
/* The usage text. Static. */
GSEG_API const char *gseg_predict_usage(void);
/* gseg-predict's command line: parses argv and maps every scene given
 * (files, folders, patterns, --scene-list), reporting failed scenes and
 * going on; returns the exit code (0, 1 some scene failed, 2 usage). */
GSEG_API int gseg_predict_tool_main(int argc, char **argv);

/* ------------------------------------------------------------------------ */
/* Training                                                       (src/train) */

typedef enum gseg_schedule {
    GSEG_SCHEDULE_COSINE = 0,  /* linear warm-up, then cosine decay */
    GSEG_SCHEDULE_ONECYCLE = 1 /* PyTorch's OneCycleLR (lr and beta1) */
} gseg_schedule;

typedef struct gseg_train_params {
    const char *data;            /* dataset: folder, .zip/.tar(.gz) archive or
                                    VSI path with train/{images,masks} (and
                                    val/), or images/ + masks/; "dataset" */
    const char *labels;          /* glacier outlines (any OGR source, any
                                    CRS) burnt onto each scene's grid
                                    instead of masks/, which are then
                                    ignored; NULL = masks */
    const char *label_field;     /* integer attribute of labels holding the
                                    class (1..254); NULL = every polygon is
                                    class 1 */
    const char *output;          /* best model (.gseg), required; the last
                                    epoch goes to <stem>.last.gseg */
    const char *encoder;         /* "resnet50" */
    const char *const *bands;    /* NULL-terminated selectors; NULL = every
                                    band of the first scene */
    int nclasses;                /* 2 (binary) */
    const char *const *classes;  /* nclasses names, or NULL */
    const char *init_encoder;    /* torchvision ResNet weights, or NULL */
    int epochs;                  /* 10 */
    int steps;                   /* > 0: total steps instead of epochs */
    int steps_per_epoch;         /* 0: training pixels / tile^2 / batch */
    int batch, tile;             /* 8, 256 */
    double lr, weight_decay;     /* AdamW: 1e-3, 1e-4 */
    int warmup;                  /* linear warm-up steps; -1 = 5 % */
    gseg_schedule schedule;      /* GSEG_SCHEDULE_COSINE */
    int accum;                   /* micro-batches per optimiser step
                                    (gradient accumulation): 1 */
    double glacier_share;        /* share of windows centred on labelled
                                    glacier: 0.5 */
    double val_fraction;         /* scenes held out when there is no val/ */
    unsigned long long seed;     /* 1 */
    int loaders;                 /* data loader threads: 2 */
    int patience;                /* early stop after N epochs without a
                                    better val mIoU; 0 = never */
    const char *metrics;         /* CSV, or JSON lines if it ends .jsonl;
                                    NULL = <stem>.metrics.csv */
    double max_seconds;          /* > 0: end (successfully) after the step
                                    that passes this training time */
    int resume;                  /* 1: continue from <stem>.last.gseg and its
                                    optimiser state: the same run, exactly;
                                    2: resume if that file exists, else
                                    start (requeued cluster jobs) */
    int distributed;             /* 1: join the process group described by
                                    the environment (torchrun's RANK,
                                    WORLD_SIZE, MASTER_ADDR, MASTER_PORT, or
                                    an srun step's SLURM_*); 0: one process */
    gseg_model_options model_options;
} gseg_train_params;

typedef struct gseg_train_stats {
    int epochs, best_epoch;
    long steps;
    double best_miou;            /* validation mean IoU of the saved model */
    double final_loss;
    double seconds, samples_per_s;
    double wait_share;           /* time the trainer waited for data */
    int rank, processes;         /* this process among those training */
    unsigned long long digest;   /* of the final weights (FNV-1a); every
                                    process ends with rank 0's */
} gseg_train_stats;

GSEG_API gseg_train_params gseg_train_params_default(void);
/* Trains a model. progress gets a message per step and per epoch;
 * returning 0 stops after the step with the last checkpoint written
 * (GSEG_ERR_CANCELLED). stats may be NULL. */
GSEG_API gseg_status gseg_train(const gseg_train_params *p,
                                gseg_progress_fn progress, void *user,
                                gseg_train_stats *stats);
/* Asks a running gseg_train to stop after its current step, writing the
 * last checkpoint (async-signal-safe: for SIGINT handlers). */
GSEG_API void gseg_train_interrupt(void);
/* gseg-evaluate's command line: predicts labelled scenes and compares them
 * with the truth (see docs); returns the exit code. Works in builds without
 * libtorch for the NDSI baseline. */
GSEG_API int gseg_evaluate_tool_main(int argc, char **argv);
/* gseg-train's command line: parses argv and runs; returns the exit code. */
GSEG_API int gseg_train_tool_main(int argc, char **argv);
/* gseg-tile's command line: cuts the scenes of a training dataset (with
 * masks or outlines) into an archive of chips with an index, readable by
 * gseg-train (see docs/gseg-tile.md); returns the exit code. Needs no
 * libtorch. */
GSEG_API int gseg_tile_tool_main(int argc, char **argv);

/* ------------------------------------------------------------------------ */
/* Synthetic scenes                                               (src/synth) */

typedef struct gseg_synth_params {
    int width, height;      /* default 512 x 512 */
    unsigned long seed;     /* default 1 */
    double pixel_size;      /* metres, default 30 */
    int epsg;               /* projected CRS, default 32643 (UTM 43N) */
    double origin_x, origin_y; /* upper-left corner in CRS units, default 500000, 4000000 */
    double snowline_m;      /* equilibrium-line altitude, default 4800 */
    double cloud_cover;     /* fraction 0..1, default 0.1 */
    double seasonal_snow;   /* 0..1, default 0.3 */
} gseg_synth_params;

GSEG_API gseg_synth_params gseg_synth_params_default(void);

/* Writes a synthetic Landsat-8-like scene: image_path (GeoTIFF, 7 UInt16
 * bands: blue, green, red, NIR, SWIR1, SWIR2 as reflectance x 10000, and
 * elevation in metres; nodata 0 on every band and no pixel is 0), mask_path
 * (Byte truth mask, 1 = glacier clean or debris-covered, 0 = other) and, if
 * outlines_path is not NULL, truth outlines (GeoPackage). Deterministic for a
 * given seed. seasonal_snow is the share of ice-free ground near the snowline
 * under snow. */
GSEG_API gseg_status gseg_synth_scene(const gseg_synth_params *p,
                                      const char *image_path,
                                      const char *mask_path,
                                      const char *outlines_path);

#ifdef __cplusplus
}
#endif
#endif /* GSEG_H */
