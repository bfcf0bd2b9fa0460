/*
 * train.h — internal interface between the training files (src/train).
 */
#ifndef GSEG_TRAIN_H
#define GSEG_TRAIN_H

#include "internal.h"

#include <stdint.h>

/* One scene with its mask. */
typedef struct gseg__tscene {
    char *image, *mask;      /* mask: NULL until labels are burnt (--labels) */
    int mask_is_mem;         /* mask is a /vsimem/ raster owned by the scene */
    int val;                 /* 1: validation scene */
    int width, height;
    int mask_nodata;         /* mask nodata (255 if none); it and 255 are "not labelled" */
    long long class_pixels[8];
    int32_t *glacier_blocks; /* x, y of 32x32 blocks holding a positive class */
    int nglacier;
} gseg__tscene;

/* A mask value that labels nothing: 255, or the mask's own nodata. */
static inline int gseg__unlabelled(const gseg__tscene *s, int v)
{
    return v == 255 || v == s->mask_nodata;
}

typedef struct gseg__tdata {
    gseg__tscene *scenes;
    int n;
    int has_val; /* a val/ folder was found */
    char *labels; /* the outlines burnt into the masks (--labels), or NULL */
} gseg__tdata;

/* path as GDAL reads it: archives (.zip, .tar, .tar.gz, .tgz) get their
 * /vsizip/ or /vsitar/ prefix, a trailing slash goes; malloc'd. */
char *gseg__tdata_vsi_path(const char *path);
/* The one folder dir holds, if it holds nothing else (hidden entries and
 * __MACOSX aside): where `zip -r x.zip x/` and GLIMS downloads keep their
 * files. malloc'd, or NULL. */
char *gseg__tdata_sole_folder(const char *dir);
/* Finds the scenes and masks under path (folder, archive or VSI path).
 * need_masks 0 (labels come from outlines): images without a mask are kept
 * with mask NULL, and a masks/ folder is not required. */
gseg_status gseg__tdata_discover(gseg__tdata *d, const char *path, int need_masks);
/* Burns label outlines (any OGR vector source: GeoPackage, shapefile, zip
 * archives through VSI; any CRS) onto the grid of every scene, reprojected
 * to the scene's CRS: each scene's mask becomes a tiled DEFLATE Byte GeoTIFF
 * in /vsimem/ (mask_is_mem; freed by gseg__tdata_free). field: integer
 * attribute holding the class (1..K-1; 0 background and 255 not labelled
 * burn too), or NULL: every polygon is class 1. Pixels outside the polygons
 * are 0 (background). An archive whose outlines sit in a folder (GLIMS
 * downloads) is opened at that folder. */
gseg_status gseg__tdata_labels(gseg__tdata *d, const char *labels, const char *field);
/* Opens every scene once: checks masks (size, grid, CRS, values < nclasses)
 * and indexes glacier blocks. bands (NULL = every band of the first scene)
 * selects the model's inputs; *band_names (malloc'd, NULL-terminated) gets
 * their names, by description where the first scene has them. */
gseg_status gseg__tdata_prepare(gseg__tdata *d, const char *const *bands, int nclasses,
                                int *nbands, char ***band_names);
/* Mean and standard deviation of each band over the valid pixels of the
 * training scenes, streamed window by window. */
gseg_status gseg__tdata_stats(gseg__tdata *d, const char *const *bands, int nb, double *mean,
                              double *sd);
void gseg__tdata_free(gseg__tdata *d);

/* splitmix64: the next value of the stream whose state is *s. */
static inline uint64_t gseg__splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Learning-rate schedule (schedule.c): lr and AdamW beta1 (0 = leave as
 * is) for optimiser step `step` (0-based) of `total`. */
typedef struct gseg__sched {
    gseg_schedule kind;
    double lr;          /* peak */
    long total, warmup; /* warmup: cosine only */
} gseg__sched;
void gseg__sched_at(const gseg__sched *s, long step, double *lr, double *beta1);

#endif
