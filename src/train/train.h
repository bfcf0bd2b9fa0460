/*
 * train.h — internal interface between the training files (src/train).
 */
#ifndef GSEG_TRAIN_H
#define GSEG_TRAIN_H

#include "internal.h"

#include <stdint.h>

/* One scene with its mask. */
typedef struct gseg__tscene {
    char *image, *mask;
    int val;                 /* 1: validation scene */
    int width, height;
    int mask_nodata;         /* mask value meaning "not labelled" */
    long long class_pixels[8];
    int32_t *glacier_blocks; /* x, y of 32x32 blocks holding a positive class */
    int nglacier;
} gseg__tscene;

typedef struct gseg__tdata {
    gseg__tscene *scenes;
    int n;
    int has_val; /* a val/ folder was found */
} gseg__tdata;

/* Finds the scenes and masks under path (folder, archive or VSI path). */
gseg_status gseg__tdata_discover(gseg__tdata *d, const char *path);
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

#endif
