/*
 * safetensors.h — reader and writer of the safetensors format
 * (https://github.com/huggingface/safetensors). Internal to libgseg.
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON object
 * (possibly padded with trailing spaces), then the data section. Each tensor
 * entry is "name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}
 * with offsets relative to the data section; an optional "__metadata__"
 * object maps strings to strings. Data is little-endian, row-major.
 *
 * The reader treats files as hostile: the header is bounded
 * (GSEG__ST_MAX_HEADER bytes, and by the file size), every entry is checked
 * (known dtype, 0..8 non-negative dims, offsets inside the data section,
 * size == numel x dtype size without overflow, no two tensors sharing
 * bytes, string metadata), and failures are one-line gseg__err messages
 * "path: reason" with GSEG_ERR_FORMAT (GSEG_ERR_IO for I/O failures,
 * GSEG_ERR_UNSUPPORTED for valid files this reader cannot represent: more
 * than 8 dimensions, the F8/F6/F4/complex dtypes). Unknown keys inside a
 * tensor entry are ignored, as the reference implementation does.
 * Tensor data is only read on demand, in bounded chunks.
 */
#ifndef GSEG_SAFETENSORS_H
#define GSEG_SAFETENSORS_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/* Largest header accepted (the reference implementation's limit). */
#define GSEG__ST_MAX_HEADER 100000000u
/* Largest number of JSON values in a header (about 10 per tensor). */
#define GSEG__ST_MAX_VALUES 8000000u
#define GSEG__ST_MAX_DIMS 8

typedef enum gseg__st_dtype {
    GSEG__ST_BOOL,
    GSEG__ST_U8,
    GSEG__ST_I8,
    GSEG__ST_I16,
    GSEG__ST_U16,
    GSEG__ST_I32,
    GSEG__ST_U32,
    GSEG__ST_I64,
    GSEG__ST_U64,
    GSEG__ST_F16,
    GSEG__ST_BF16,
    GSEG__ST_F32,
    GSEG__ST_F64
} gseg__st_dtype;
#define GSEG__ST_NDTYPES 13

typedef struct gseg__st_tensor {
    const char *name;
    gseg__st_dtype dtype;
    int ndim;
    int64_t shape[GSEG__ST_MAX_DIMS];
    uint64_t offset, nbytes; /* offset relative to the data section */
} gseg__st_tensor;

typedef struct gseg__st_file gseg__st_file;

/* Opens any GDAL VSI path; reads and validates the header only. */
gseg_status gseg__st_open(const char *path, gseg__st_file **out);
void gseg__st_close(gseg__st_file *f); /* NULL ok */
int gseg__st_count(const gseg__st_file *f);
/* Tensors in file order of their data offsets (ties: header order). */
const gseg__st_tensor *gseg__st_at(const gseg__st_file *f, int i);
const gseg__st_tensor *gseg__st_find(const gseg__st_file *f, const char *name);
/* Metadata, in header order; NULL if absent. */
const char *gseg__st_meta(const gseg__st_file *f, const char *key);
int gseg__st_meta_count(const gseg__st_file *f);
const char *gseg__st_meta_key(const gseg__st_file *f, int i);
/* Product of the dims (1 for a scalar). */
int64_t gseg__st_numel(const gseg__st_tensor *t);
/* Reads tensor t (from this file) converted to float; n must equal numel. */
gseg_status gseg__st_read_f32(gseg__st_file *f, const gseg__st_tensor *t, float *dst, int64_t n);
/* Reads integer tensors, and float tensors whose values are all exact
 * integers in int64 range (else GSEG_ERR_FORMAT naming the element). */
gseg_status gseg__st_read_i64(gseg__st_file *f, const gseg__st_tensor *t, int64_t *dst, int64_t n);
const char *gseg__st_dtype_name(gseg__st_dtype d); /* "F32"; "?" if invalid */
size_t gseg__st_dtype_size(gseg__st_dtype d);      /* bytes; 0 if invalid */

typedef struct gseg__st_writer gseg__st_writer;
gseg__st_writer *gseg__st_writer_new(void); /* NULL (error set) if out of memory */
/* Sets a metadata entry (replacing an earlier value of the same key). */
gseg_status gseg__st_writer_meta(gseg__st_writer *w, const char *key, const char *value);
/* Adds a tensor. data (little-endian, row-major, numel x dtype size bytes)
 * is borrowed until gseg__st_writer_write; it may be NULL if that size is 0.
 * Names must be unique, valid UTF-8 and not "__metadata__". */
gseg_status gseg__st_writer_add(gseg__st_writer *w, const char *name, gseg__st_dtype dtype,
                                int ndim, const int64_t *shape, const void *data);
/* Writes atomically (temporary file + rename). Header padded with spaces to
 * a multiple of 8; tensors packed contiguously in the order added.
 * GSEG_ERR_UNSUPPORTED on a big-endian host. */
gseg_status gseg__st_writer_write(gseg__st_writer *w, const char *path);
void gseg__st_writer_free(gseg__st_writer *w); /* NULL ok */

#endif
