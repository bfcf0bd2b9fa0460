/*
 * chips.c — gseg-tile: big scenes (with masks, or outlines burnt into masks)
 * cut into an archive of fixed-size chips that gseg-train reads like any
 * dataset (OUT/{train,val}/{images,masks}/<stem>_x<X>_y<Y>.tif), plus
 * OUT/index.csv describing every chip.
 *
 * Scenes are found and checked exactly as gseg-train finds and checks them
 * (gseg__tdata_discover / _labels / _prepare), so an archive holds only data
 * training would accept. Without a val/ folder in the source, a seeded share
 * of whole scenes (--val-fraction, --seed) goes to val/, so that no scene
 * has chips on both sides of the split. Windows come from the tile grid (gseg_grid, overlap
 * = tile - stride; the last row and column shift inward so chips keep their
 * full size). A window is kept when the share of pixels where every selected
 * band holds data reaches --min-valid; windows without any data are always
 * left out. Chips are cut by GDALTranslate -srcwin: same data type, band
 * descriptions, nodata, scale/offset, the window's geotransform (rotation
 * terms included) or GCPs, and the CRS.
 *
 * Output is atomic. A folder is built as OUT.partial and renamed; a .zip is
 * written through GDAL's /vsizip/ (sequential: each chip is made in /vsimem/
 * and then appended) under a registered temporary name that the tools'
 * signal handler removes, and renamed into place (gseg__commit).
 */
#include "train.h"
#include "json.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <ogr_srs_api.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char usage[] =
    "Usage: gseg-tile --data PATH -o OUT [--tile N] [--stride N] [--bands LIST]\n"
    "                 [--min-valid X] [--labels FILE [--label-field NAME]]\n"
    "                 [--val-fraction X] [--seed N] [-co KEY=VALUE]... [--overwrite]\n"
    "                 [-q]\n"
    "\n"
    "Cuts the scenes of PATH (as gseg-train reads it: train/images + train/masks,\n"
    "optionally val/..., or images/ + masks/; a folder, .zip/.tar archive or VSI\n"
    "path) into chips of N x N pixels, with their masks, and writes them in the\n"
    "same layout to OUT with an index (OUT/index.csv). OUT is a folder, or a .zip\n"
    "archive. gseg-train --data OUT reads the chips.\n"
    "\n"
    "  -o, --out OUT         output folder or .zip (refused if it exists)\n"
    "  --tile N              chip size in pixels (default 256)\n"
    "  --stride N            step between chips, 1..N (default N: no overlap)\n"
    "  --bands LIST          bands to keep (numbers or names); default every band\n"
    "  --min-valid X         skip chips with less than this share of pixels with\n"
    "                        data in every band (default 0.01); chips without\n"
    "                        data are always skipped\n"
    "  --labels FILE         glacier outlines (any OGR source, any CRS) burnt into\n"
    "                        masks instead of reading masks/\n"
    "  --label-field NAME    integer attribute holding the class (1..254; 0 carves\n"
    "                        background, 255 not labelled; default: every\n"
    "                        polygon is class 1)\n"
    "  --val-fraction X      when PATH has no val/ folder: share (0..0.9) of its\n"
    "                        scenes whose chips all go to OUT/val (default 0.2;\n"
    "                        at least one scene when there are two or more,\n"
    "                        never all; 0: every chip to OUT/train). Whole\n"
    "                        scenes, so that neighbouring chips never land on\n"
    "                        both sides. Ignored when PATH has val/: its split\n"
    "                        is kept\n"
    "  --seed N              chooses those scenes (default 1): same seed and\n"
    "                        scenes, same split\n"
    "  -co KEY=VALUE         GeoTIFF creation option for the chips (repeatable;\n"
    "                        default COMPRESS=DEFLATE with PREDICTOR=2 (3 for\n"
    "                        floating point) on images, TILED=YES for chips of\n"
    "                        at least 256 x 256)\n"
    "  --overwrite           replace an existing OUT\n"
    "  -q, --quiet           no progress, no summary\n";

typedef struct tile_opts {
    const char *data, *out, *labels, *field;
    int tile, stride, overwrite, quiet;
    double min_valid;
    double val_fraction;   /* share of scenes to val/ when the source has none */
    int seed;              /* chooses them */
    int val_given, seed_given; /* --val-fraction / --seed on the command line */
    char **bands; /* CSL or NULL */
    char **co;    /* CSL of KEY=VALUE or NULL */
} tile_opts;

/* One index row: the fixed columns as CSV text and the share of each class
 * value 0..ncls-1 among the chip's labelled pixels with data (cls NULL when
 * the chip holds class 0 only). */
typedef struct chip_row {
    char *text;
    int labelled; /* any labelled pixel with data: else the fractions are empty */
    int ncls;
    double *cls;
} chip_row;

typedef struct tiler {
    const tile_opts *o;
    char *out;    /* OUT without trailing slashes */
    int zip;      /* OUT ends in .zip */
    char *stage;  /* OUT.partial (folder) or the temporary zip file */
    char *root;   /* where chips go: stage, or /vsizip/<stage> */
    VSILFILE *zh; /* the zip being written, kept open so it stays one archive */
    chip_row *rows;
    int nrows, caprows;
    int maxclass; /* highest class value in any chip */
    int val_scenes; /* scenes whose chips go to val/ */
    int split_made; /* 1: chosen by --val-fraction (the source has no val/) */
    long long nchips[2], skipped, done, total;
    int made_dir[2][2];
    gseg_progress_fn progress;
} tiler;

/* ------------------------------------------------------------------------ */
/* Command line                                                              */

/* Returns 0 to run, 1 after --help, 2 on a usage error (message printed). */
static int parse_args(int argc, char **argv, tile_opts *o)
{
    memset(o, 0, sizeof *o);
    o->data = "dataset";
    o->tile = 256;
    o->min_valid = 0.01;
    o->val_fraction = 0.2;
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        static const char *const valued[] = {"--data", "-o", "--out", "--labels", "--label-field",
                                             "--tile", "--stride", "--min-valid", "--bands", "-co",
                                             "--val-fraction", "--seed", NULL};
        if (CSLFindString((char **)valued, a) >= 0 && !v) {
            fprintf(stderr, "gseg-tile: %s needs a value\nTry 'gseg-tile --help'.\n", a);
            return 2;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) o->quiet = 1;
        else if (!strcmp(a, "--overwrite")) o->overwrite = 1;
        else if (!strcmp(a, "--data")) o->data = argv[++i];
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) o->out = argv[++i];
        else if (!strcmp(a, "--labels")) o->labels = argv[++i];
        else if (!strcmp(a, "--label-field")) o->field = argv[++i];
        else if (!strcmp(a, "--tile")) {
            if (!gseg__tool_int("gseg-tile", a, argv[++i], 8, 16384, &o->tile)) return 2;
        } else if (!strcmp(a, "--stride")) {
            if (!gseg__tool_int("gseg-tile", a, argv[++i], 1, 16384, &o->stride)) return 2;
        } else if (!strcmp(a, "--min-valid")) {
            if (!gseg__tool_num("gseg-tile", a, argv[++i], 0, 1, &o->min_valid)) return 2;
        } else if (!strcmp(a, "--val-fraction")) {
            if (!gseg__tool_num("gseg-tile", a, argv[++i], 0, 0.9, &o->val_fraction)) return 2;
            o->val_given = 1;
        } else if (!strcmp(a, "--seed")) {
            if (!gseg__tool_int("gseg-tile", a, argv[++i], 0, 2147483647L, &o->seed)) return 2;
            o->seed_given = 1;
        } else if (!strcmp(a, "--bands")) {
            CSLDestroy(o->bands);
            o->bands = CSLTokenizeString2(argv[++i], ",",
                                          CSLT_STRIPLEADSPACES | CSLT_STRIPENDSPACES);
            if (!o->bands) {
                fprintf(stderr, "gseg-tile: --bands: empty list\n");
                return 2;
            }
        } else if (!strcmp(a, "-co")) {
            const char *kv = argv[++i], *eq = strchr(kv, '=');
            if (!eq || eq == kv) {
                fprintf(stderr, "gseg-tile: -co %s: expected KEY=VALUE\n", kv);
                return 2;
            }
            o->co = CSLAddString(o->co, kv);
        } else {
            fprintf(stderr, "gseg-tile: unknown option %s\nTry 'gseg-tile --help'.\n", a);
            return 2;
        }
    }
    if (!o->out || !*o->out) {
        fprintf(stderr, "gseg-tile: no output given (-o OUT)\nTry 'gseg-tile --help'.\n");
        return 2;
    }
    if (!o->stride) o->stride = o->tile;
    if (o->stride > o->tile) {
        fprintf(stderr, "gseg-tile: --stride %d is larger than the tile size %d\n", o->stride,
                o->tile);
        return 2;
    }
    if (o->field && !o->labels) {
        fprintf(stderr, "gseg-tile: --label-field needs --labels\n");
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Output staging                                                            */

static int path_exists(const char *p, int *dir)
{
    VSIStatBufL st;
    if (VSIStatL(p, &st) != 0) return 0;
    if (dir) *dir = VSI_ISDIR(st.st_mode);
    return 1;
}

static void remove_path(const char *p)
{
    int dir = 0;
    if (!path_exists(p, &dir)) return;
    if (dir) VSIRmdirRecursive(p);
    else VSIUnlink(p);
}

/* Refuses an existing OUT (without --overwrite) or a missing parent folder;
 * done before any work. */
static gseg_status check_out(tiler *t)
{
    const tile_opts *o = t->o;
    t->out = gseg__strdup(o->out);
    if (!t->out) return GSEG_ERR_NOMEM;
    for (size_t n = strlen(t->out); n > 1 && t->out[n - 1] == '/'; n--) t->out[n - 1] = '\0';
    size_t n = strlen(t->out);
    t->zip = n > 4 && strcasecmp(t->out + n - 4, ".zip") == 0;
    if (path_exists(t->out, NULL) && !o->overwrite)
        return gseg__err(GSEG_ERR_IO, "%s: already exists (use --overwrite to replace it)", t->out);
    const char *parent = CPLGetPath(t->out);
    if (*parent && !path_exists(parent, NULL))
        return gseg__err(GSEG_ERR_IO, "%s: no such folder", parent);
    return GSEG_OK;
}

/* Creates the staging area: OUT.partial, or a temporary zip beside OUT. */
static gseg_status stage_open(tiler *t)
{
    size_t n = strlen(t->out);
    if (t->zip) {
        t->stage = gseg__tmp_path(t->out);
        t->root = t->stage ? gseg__malloc(strlen(t->stage) + 9, 1) : NULL;
        if (!t->root) return GSEG_ERR_NOMEM;
        sprintf(t->root, "/vsizip/%s", t->stage);
        t->zh = VSIFOpenL(t->root, "wb");
        if (!t->zh) return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot create the archive", t->out);
        return GSEG_OK;
    }
    t->stage = gseg__malloc(n + 9, 1);
    if (!t->stage) return GSEG_ERR_NOMEM;
    sprintf(t->stage, "%s.partial", t->out);
    t->root = gseg__strdup(t->stage);
    if (!t->root) return GSEG_ERR_NOMEM;
    remove_path(t->stage); /* left by an interrupted run */
    if (VSIMkdir(t->stage, 0755) != 0)
        return gseg__err(GSEG_ERR_IO, "%s: cannot create folder: %s", t->stage, strerror(errno));
    return GSEG_OK;
}

static void stage_abort(tiler *t)
{
    if (t->zh) VSIFCloseL(t->zh);
    t->zh = NULL;
    if (t->zip && t->stage) gseg__discard(t->stage);
    else if (t->stage) remove_path(t->stage);
}

/* Renames the staged output onto OUT; an existing OUT (--overwrite) is moved
 * aside first and deleted once the new one is in place. */
static gseg_status stage_commit(tiler *t)
{
    if (t->zh && VSIFCloseL(t->zh) != 0) {
        t->zh = NULL;
        return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot finish the archive", t->out);
    }
    t->zh = NULL;
    char *aside = NULL;
    int dir = 0;
    /* rename() replaces a file atomically, but not a folder, nor a file by a
     * folder. */
    if (path_exists(t->out, &dir) && (dir || !t->zip)) {
        aside = CPLStrdup(CPLSPrintf("%s.old-%ld", t->out, (long)getpid()));
        if (VSIRename(t->out, aside) != 0) {
            gseg_status st = gseg__err(GSEG_ERR_IO, "%s: cannot move the old output aside: %s",
                                       t->out, strerror(errno));
            CPLFree(aside);
            return st;
        }
    }
    gseg_status st = GSEG_OK;
    if (t->zip) st = gseg__commit(t->stage, t->out);
    else if (VSIRename(t->stage, t->out) != 0)
        st = gseg__err(GSEG_ERR_IO, "%s: cannot rename %s into place: %s", t->out, t->stage,
                       strerror(errno));
    if (aside) {
        if (st == GSEG_OK) remove_path(aside);
        else VSIRename(aside, t->out);
        CPLFree(aside);
    }
    if (st == GSEG_OK) {
        free(t->stage);
        t->stage = NULL;
    }
    return st;
}

/* Writes a /vsimem/ file into the zip under `dest` and deletes it. */
static gseg_status zip_put(tiler *t, const char *mem, const char *dest)
{
    vsi_l_offset len = 0;
    GByte *buf = VSIGetMemFileBuffer(mem, &len, FALSE);
    if (!buf) return gseg__err(GSEG_ERR_INTERNAL, "%s: chip vanished from memory", mem);
    VSILFILE *f = VSIFOpenL(dest, "wb");
    gseg_status st = GSEG_OK;
    if (!f || VSIFWriteL(buf, 1, (size_t)len, f) != (size_t)len)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write %s into the archive", t->out, dest);
    if (f && VSIFCloseL(f) != 0 && st == GSEG_OK)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write %s into the archive", t->out, dest);
    VSIUnlink(mem);
    return st;
}

/* Writes text to root/name. */
static gseg_status put_text(tiler *t, const char *name, const char *text)
{
    const char *p = CPLFormFilename(t->root, name, NULL);
    VSILFILE *f = VSIFOpenL(p, "wb");
    size_t n = strlen(text);
    gseg_status st = GSEG_OK;
    if (!f || VSIFWriteL(text, 1, n, f) != n)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write", p);
    if (f && VSIFCloseL(f) != 0 && st == GSEG_OK)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write", p);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Chips                                                                     */

/* Band numbers of the selected bands in the scene's file: a number selects
 * itself; a name, the first band whose name (as gseg_scene reports it)
 * equals the one gseg_scene resolved. */
static gseg_status band_numbers(GDALDatasetH ds, const gseg_scene *img, const char *const *sel,
                                int *nums)
{
    int nb = gseg_scene_nbands(img), count = GDALGetRasterCount(ds);
    for (int i = 0; i < nb; i++) {
        char *e = NULL;
        long v = strtol(sel[i], &e, 10);
        nums[i] = e != sel[i] && !*e ? (int)v : 0;
        for (int j = 1; j <= count && !nums[i]; j++) {
            const char *d = GDALGetDescription(GDALGetRasterBand(ds, j));
            const char *nm = d && *d ? d : CPLSPrintf("band %d", j);
            if (!strcmp(nm, gseg_scene_band_name(img, i))) nums[i] = j;
        }
        if (nums[i] < 1 || nums[i] > count)
            return gseg__err(GSEG_ERR_INTERNAL, "%s: band '%s' not found again",
                             gseg_scene_path(img), sel[i]);
    }
    return GSEG_OK;
}

/* gdal_translate arguments for one chip. nums == NULL keeps every band;
 * mask != 0 keeps band 1 as Byte. Images get DEFLATE's predictor for their
 * type (horizontal differencing pays on smooth integer imagery; masks are
 * runs and need none). CSL list; caller destroys. */
static char **translate_args(const tile_opts *o, gseg_window w, const int *nums, int nb, int mask,
                             GDALDataType type)
{
    char **a = CSLAddString(NULL, "-of");
    a = CSLAddString(a, "GTiff");
    a = CSLAddString(a, "-srcwin");
    int v[4] = {w.x, w.y, w.w, w.h};
    for (int k = 0; k < 4; k++) a = CSLAddString(a, CPLSPrintf("%d", v[k]));
    if (mask) {
        a = CSLAddString(a, "-b");
        a = CSLAddString(a, "1");
        a = CSLAddString(a, "-ot");
        a = CSLAddString(a, "Byte");
    }
    for (int i = 0; !mask && nums && i < nb; i++) {
        a = CSLAddString(a, "-b");
        a = CSLAddString(a, CPLSPrintf("%d", nums[i]));
    }
    char **co = NULL;
    for (int i = 0; o->co && o->co[i]; i++) {
        char *key = NULL;
        const char *val = CPLParseNameValue(o->co[i], &key);
        if (key) co = CSLSetNameValue(co, key, val);
        CPLFree(key);
    }
    if (!CSLFetchNameValue(co, "COMPRESS")) co = CSLSetNameValue(co, "COMPRESS", "DEFLATE");
    const char *c = CSLFetchNameValue(co, "COMPRESS");
    int lossless = !strcasecmp(c, "DEFLATE") || !strcasecmp(c, "LZW") || !strcasecmp(c, "ZSTD") ||
                   !strcasecmp(c, "LZMA");
    if (!mask && lossless && !CSLFetchNameValue(co, "PREDICTOR"))
        co = CSLSetNameValue(co, "PREDICTOR", GDALDataTypeIsFloating(type) ? "3" : "2");
    if (w.w >= 256 && w.h >= 256 && !CSLFetchNameValue(co, "TILED"))
        co = CSLSetNameValue(co, "TILED", "YES");
    for (int i = 0; co && co[i]; i++) {
        a = CSLAddString(a, "-co");
        a = CSLAddString(a, co[i]);
    }
    CSLDestroy(co);
    return a;
}

static gseg_status translate(const tile_opts *o, GDALDatasetH src, const char *src_path,
                             const char *dst, gseg_window w, const int *nums, int nb, int mask)
{
    GDALRasterBandH b1 = GDALGetRasterBand(src, nums && !mask ? nums[0] : 1);
    char **args = translate_args(o, w, nums, nb, mask, GDALGetRasterDataType(b1));
    GDALTranslateOptions *to = GDALTranslateOptionsNew(args, NULL);
    CSLDestroy(args);
    if (!to) return gseg__gdal_err(GSEG_ERR_INTERNAL, "gdal_translate options");
    CPLErrorReset();
    int usage_err = 0;
    GDALDatasetH out = GDALTranslate(dst, src, to, &usage_err);
    GDALTranslateOptionsFree(to);
    if (out) GDALClose(out); /* void before GDAL 3.8: errors land in CPL */
    if (!out || CPLGetLastErrorType() == CE_Failure)
        return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot write chip %s of %s", dst,
                              CPLSPrintf("%d,%d %dx%d", w.x, w.y, w.w, w.h), src_path);
    return GSEG_OK;
}

/* Destination of chip `name` (images or masks of a split): a path in the
 * staging folder, or a /vsimem/ file to be appended to the zip then. */
static gseg_status chip_dest(tiler *t, int val, int mask, const char *name, char *dst,
                             size_t cap, char *entry, size_t ecap)
{
    snprintf(entry, ecap, "%s/%s/%s/%s.tif", t->root, val ? "val" : "train",
             mask ? "masks" : "images", name);
    if (t->zip) {
        snprintf(dst, cap, "/vsimem/gseg-tile-%p/%s.tif", (void *)t, name);
        return GSEG_OK;
    }
    snprintf(dst, cap, "%s", entry);
    if (!t->made_dir[val][mask]) {
        const char *d = CPLGetPath(entry);
        if (VSIMkdirRecursive(d, 0755) != 0)
            return gseg__err(GSEG_ERR_IO, "%s: cannot create folder: %s", d, strerror(errno));
        t->made_dir[val][mask] = 1;
    }
    return GSEG_OK;
}

static gseg_status write_chip(tiler *t, const gseg__tscene *s, GDALDatasetH src, int mask,
                              const char *name, gseg_window w, const int *nums, int nb)
{
    char dst[4096], entry[4096];
    gseg_status st = chip_dest(t, s->val, mask, name, dst, sizeof dst, entry, sizeof entry);
    if (st == GSEG_OK)
        st = translate(t->o, src, mask ? s->mask : s->image, dst, w, nums, nb, mask);
    if (t->zip) {
        /* PAM sidecar of things a GeoTIFF cannot hold */
        char aux[4200], aux_entry[4200];
        snprintf(aux, sizeof aux, "%s.aux.xml", dst);
        snprintf(aux_entry, sizeof aux_entry, "%s.aux.xml", entry);
        if (st == GSEG_OK) st = zip_put(t, dst, entry);
        if (st == GSEG_OK && path_exists(aux, NULL)) st = zip_put(t, aux, aux_entry);
        VSIUnlink(dst);
        VSIUnlink(aux);
    }
    return st;
}

/* Appends `s` to b as one CSV field (quoted when it needs to be). */
static void csv_field(gseg__sbuf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        gseg__sbuf_puts(b, s);
        return;
    }
    gseg__sbuf_puts(b, "\"");
    for (const char *p = s; *p; p++)
        gseg__sbuf_append(b, *p == '"' ? "\"\"" : p, *p == '"' ? 2 : 1); /* "" escapes " */
    gseg__sbuf_puts(b, "\"");
}

/* "EPSG:32643" when the CRS carries an EPSG code, else its WKT; "" without
 * CRS. Caller frees. */
static char *crs_text(GDALDatasetH ds)
{
    OGRSpatialReferenceH srs = GDALGetSpatialRef(ds);
    if (!srs) return gseg__strdup("");
    const char *auth = OSRGetAuthorityName(srs, NULL), *code = OSRGetAuthorityCode(srs, NULL);
    if (auth && code && !strcasecmp(auth, "EPSG")) return gseg__strdup(CPLSPrintf("EPSG:%s", code));
    char *w = NULL;
    const char *opts[] = {"FORMAT=WKT2_2018", NULL};
    char *r = OSRExportToWktEx(srs, &w, opts) == OGRERR_NONE ? gseg__strdup(w) : gseg__strdup("");
    CPLFree(w);
    return r;
}

/* Appends a row; takes text. cnt[0..maxv] counts lab labelled pixels. */
static gseg_status add_row(tiler *t, char *text, const long long *cnt, int maxv, long long lab)
{
    if (t->nrows == t->caprows) {
        int cap = t->caprows ? 2 * t->caprows : 256;
        chip_row *r = realloc(t->rows, (size_t)cap * sizeof *r);
        if (!r) {
            free(text);
            return gseg__err(GSEG_ERR_NOMEM, "out of memory");
        }
        t->rows = r;
        t->caprows = cap;
    }
    chip_row *r = &t->rows[t->nrows++];
    memset(r, 0, sizeof *r);
    r->text = text;
    r->labelled = lab > 0;
    if (maxv > t->maxclass) t->maxclass = maxv;
    if (maxv < 1) return GSEG_OK;
    r->cls = gseg__calloc((size_t)maxv + 1, sizeof *r->cls);
    if (!r->cls) return GSEG_ERR_NOMEM;
    r->ncls = maxv + 1;
    for (int k = 0; k <= maxv; k++) r->cls[k] = lab ? (double)cnt[k] / (double)lab : 0;
    return GSEG_OK;
}

/* Index row of one chip: counts classes over pixels with data and a label. */
static gseg_status index_chip(tiler *t, const gseg__tscene *s, const char *name, gseg_window w,
                              const double tgt[6], int has_gt, const char *crs, size_t nvalid,
                              const uint8_t *valid, const uint8_t *m)
{
    long long cnt[256] = {0}, lab = 0;
    int maxv = 0;
    for (size_t i = 0; i < (size_t)w.w * w.h; i++) {
        if (!valid[i] || gseg__unlabelled(s, m[i])) continue;
        cnt[m[i]]++;
        lab++;
        if (m[i] > maxv) maxv = m[i];
    }
    gseg__sbuf b = {0};
    csv_field(&b, name);
    gseg__sbuf_appendf(&b, ",%s,", s->val ? "val" : "train");
    csv_field(&b, CPLGetFilename(s->image));
    gseg__sbuf_appendf(&b, ",%d,%d,%d,%d", w.x, w.y, w.w, w.h);
    for (int k = 0; k < 6; k++)
        if (has_gt) gseg__sbuf_appendf(&b, ",%.17g", tgt[k]);
        else gseg__sbuf_puts(&b, ",");
    gseg__sbuf_puts(&b, ",");
    csv_field(&b, crs);
    gseg__sbuf_appendf(&b, ",%.6f", (double)nvalid / ((double)w.w * w.h));
    if (lab) gseg__sbuf_appendf(&b, ",%.6f", 1.0 - (double)cnt[0] / (double)lab);
    else gseg__sbuf_puts(&b, ","); /* no labelled pixel: no fraction */
    char *text = gseg__sbuf_take(&b);
    if (!text) return gseg__err(GSEG_ERR_NOMEM, "out of memory");
    return add_row(t, text, cnt, maxv, lab);
}

static gseg_status step(tiler *t, void *user)
{
    t->done++;
    if (t->progress && !t->progress((double)t->done / (double)t->total, NULL, user))
        return gseg__err(GSEG_ERR_CANCELLED, "cancelled");
    return GSEG_OK;
}

/* Every chip of scene s. names: the selected bands (by gseg_scene rules);
 * keep_all: copy every band rather than only those. */
static gseg_status scene_chips(tiler *t, const gseg__tscene *s, char **names, int keep_all,
                               void *user)
{
    gseg_scene_params sp = gseg_scene_params_default();
    sp.bands = (const char *const *)names;
    gseg_scene *img = NULL;
    const char *p[1] = {s->image};
    gseg_status st = gseg_scene_open(p, 1, &sp, &img);
    if (st != GSEG_OK) return st;
    GDALDatasetH src = GDALOpenEx(s->image, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    GDALDatasetH msk = GDALOpenEx(s->mask, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    int nb = gseg_scene_nbands(img), T = t->o->tile;
    int *nums = gseg__calloc((size_t)nb, sizeof *nums);
    float *buf = gseg__malloc((size_t)nb * T * T, sizeof *buf);
    uint8_t *valid = gseg__malloc((size_t)T * T, 1), *m = gseg__malloc((size_t)T * T, 1);
    char *crs = src ? crs_text(src) : NULL;
    gseg_grid g;
    double gt[6];
    int has_gt = gseg_scene_geotransform(img, gt);
    if (!src || !msk)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot open", !src ? s->image : s->mask);
    else if (!nums || !buf || !valid || !m || !crs)
        st = GSEG_ERR_NOMEM;
    if (st == GSEG_OK) st = band_numbers(src, img, sp.bands, nums);
    if (st == GSEG_OK) st = gseg_grid_init(&g, s->width, s->height, T, T - t->o->stride);
    char stem[1024];
    snprintf(stem, sizeof stem, "%s", CPLGetBasename(s->image));
    for (int i = 0; st == GSEG_OK && i < gseg_grid_count(&g); i++) {
        gseg_tile tl;
        size_t nvalid = 0;
        st = gseg_grid_tile(&g, gt, i, &tl);
        gseg_window w = tl.win;
        if (st == GSEG_OK) st = gseg_scene_read(img, w, w.w, w.h, buf, valid, &nvalid);
        if (st != GSEG_OK) break;
        if (nvalid == 0 || (double)nvalid < t->o->min_valid * w.w * w.h) {
            t->skipped++;
            st = step(t, user);
            continue;
        }
        if (GDALRasterIO(GDALGetRasterBand(msk, 1), GF_Read, w.x, w.y, w.w, w.h, m, w.w, w.h,
                         GDT_Byte, 0, 0) != CE_None) {
            st = gseg__gdal_err(GSEG_ERR_IO, "%s: read error", s->mask);
            break;
        }
        char name[1100];
        snprintf(name, sizeof name, "%s_x%d_y%d", stem, w.x, w.y);
        st = write_chip(t, s, src, 0, name, w, keep_all ? NULL : nums, nb);
        if (st == GSEG_OK) st = write_chip(t, s, msk, 1, name, w, NULL, 0);
        if (st == GSEG_OK)
            st = index_chip(t, s, name, w, tl.geotransform, has_gt, crs, nvalid, valid, m);
        if (st == GSEG_OK) t->nchips[s->val]++;
        if (st == GSEG_OK) st = step(t, user);
    }
    free(nums), free(buf), free(valid), free(m), free(crs);
    if (src) GDALClose(src);
    if (msk) GDALClose(msk);
    gseg_scene_free(img);
    return st;
}

/* index.csv: one row per chip, the per-class columns when a mask holds
 * classes above 1. */
static gseg_status write_index(tiler *t)
{
    gseg__sbuf b = {0};
    gseg__sbuf_puts(&b, "chip,split,scene,x,y,width,height,gt0,gt1,gt2,gt3,gt4,gt5,crs,"
                        "valid_fraction,glacier_fraction");
    int K = t->maxclass > 1 ? t->maxclass : 0;
    for (int k = 1; k <= K; k++) gseg__sbuf_appendf(&b, ",class_%d_fraction", k);
    gseg__sbuf_puts(&b, "\n");
    for (int i = 0; i < t->nrows; i++) {
        const chip_row *r = &t->rows[i];
        gseg__sbuf_puts(&b, r->text);
        for (int k = 1; k <= K; k++)
            if (r->labelled) gseg__sbuf_appendf(&b, ",%.6f", k < r->ncls ? r->cls[k] : 0.0);
            else gseg__sbuf_puts(&b, ",");
        gseg__sbuf_puts(&b, "\n");
    }
    char *text = gseg__sbuf_take(&b);
    if (!text) return gseg__err(GSEG_ERR_NOMEM, "out of memory");
    gseg_status st = put_text(t, "index.csv", text);
    free(text);
    return st;
}

/* Chips are named by scene stem: two scenes of a split must not share one. */
static gseg_status check_stems(const gseg__tdata *d)
{
    for (int i = 0; i < d->n; i++) {
        char a[1024];
        snprintf(a, sizeof a, "%s", CPLGetBasename(d->scenes[i].image));
        for (int j = 0; j < i; j++)
            if (d->scenes[i].val == d->scenes[j].val &&
                !strcmp(a, CPLGetBasename(d->scenes[j].image)))
                return gseg__err(GSEG_ERR_FORMAT,
                                 "%s: same file stem as %s: chip names would collide",
                                 d->scenes[i].image, d->scenes[j].image);
    }
    return GSEG_OK;
}

static int by_image(const void *a, const void *b)
{
    const gseg__tscene *x = *(const gseg__tscene *const *)a, *y = *(const gseg__tscene *const *)b;
    return strcmp(x->image, y->image);
}

/* Without a source val/: ceil(X * n) scenes (at least 1 when n >= 2, at most
 * n - 1) go whole to val/, the first of the scenes sorted by path and then
 * shuffled (Fisher-Yates, splitmix64 seeded by --seed): the choice depends
 * only on the seed and the scenes, not on the order they were listed in. */
static gseg_status split_scenes(tiler *t, gseg__tdata *d)
{
    const tile_opts *o = t->o;
    if (d->has_val) {
        for (int i = 0; i < d->n; i++) t->val_scenes += d->scenes[i].val;
        if (o->val_given || o->seed_given)
            fprintf(stderr, "gseg-tile: warning: %s has a val/ folder: its split is kept and %s "
                            "ignored\n",
                    o->data, o->val_given && o->seed_given ? "--val-fraction and --seed are"
                             : o->val_given                ? "--val-fraction is"
                                                           : "--seed is");
        return GSEG_OK;
    }
    t->split_made = 1;
    if (d->n < 2 || o->val_fraction <= 0) return GSEG_OK;
    int want = (int)ceil(o->val_fraction * d->n - 1e-9);
    if (want < 1) want = 1;
    if (want > d->n - 1) want = d->n - 1;
    gseg__tscene **sc = gseg__calloc((size_t)d->n, sizeof *sc);
    if (!sc) return GSEG_ERR_NOMEM;
    for (int i = 0; i < d->n; i++) sc[i] = &d->scenes[i];
    qsort(sc, (size_t)d->n, sizeof *sc, by_image);
    uint64_t r = (uint64_t)o->seed ^ 0x5eedull;
    for (int i = d->n - 1; i > 0; i--) {
        int j = (int)(gseg__splitmix64(&r) % (uint64_t)(i + 1));
        gseg__tscene *k = sc[i];
        sc[i] = sc[j];
        sc[j] = k;
    }
    for (int k = 0; k < want; k++) sc[k]->val = 1;
    t->val_scenes = want;
    free(sc);
    return GSEG_OK;
}

static gseg_status run(tiler *t, gseg__tdata *d, void *user)
{
    const tile_opts *o = t->o;
    gseg_status st = check_out(t);
    if (st == GSEG_OK) st = gseg__tdata_discover(d, o->data, o->labels == NULL);
    if (st == GSEG_OK && o->labels) st = gseg__tdata_labels(d, o->labels, o->field);
    if (st == GSEG_OK) st = check_stems(d); /* before the split: it cannot hide a clash */
    if (st == GSEG_OK) st = split_scenes(t, d);
    int nb = 0;
    char **names = NULL;
    /* Checks masks as training will (size, grid, CRS, values) and sizes. */
    if (st == GSEG_OK)
        st = gseg__tdata_prepare(d, (const char *const *)o->bands, 255, &nb, &names);
    if (st == GSEG_OK) st = stage_open(t);
    for (int i = 0; st == GSEG_OK && i < d->n; i++) {
        gseg_grid g;
        st = gseg_grid_init(&g, d->scenes[i].width, d->scenes[i].height, o->tile,
                            o->tile - o->stride);
        t->total += gseg_grid_count(&g);
    }
    if (st == GSEG_OK && t->progress) t->progress(0, NULL, user);
    for (int i = 0; st == GSEG_OK && i < d->n; i++)
        st = scene_chips(t, &d->scenes[i], names, o->bands == NULL, user);
    if (st == GSEG_OK && t->nchips[0] == 0)
        st = gseg__err(GSEG_ERR_FORMAT,
                       "%s: no training chip has %g %% of its pixels with data (--min-valid)",
                       o->data, 100 * o->min_valid);
    if (st == GSEG_OK) st = write_index(t);
    if (st == GSEG_OK) st = stage_commit(t);
    for (int i = 0; names && names[i]; i++) free(names[i]);
    free(names);
    return st;
}

int gseg_tile_tool_main(int argc, char **argv)
{
    tile_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) {
        CSLDestroy(o.bands);
        CSLDestroy(o.co);
        return rc == 1 ? 0 : rc;
    }
    tiler t;
    memset(&t, 0, sizeof t);
    t.o = &o;
    t.progress = o.quiet ? NULL : gseg_term_progress;
    gseg__tdata d;
    memset(&d, 0, sizeof d);
    gseg_status st = run(&t, &d, NULL);
    if (st != GSEG_OK) {
        stage_abort(&t);
        fprintf(stderr, "gseg-tile: %s\n", gseg_last_error());
        rc = st == GSEG_ERR_ARG ? 2 : 1;
    } else if (!o.quiet) {
        char how[96];
        if (t.split_made)
            snprintf(how, sizeof how, "--val-fraction %g, --seed %d", o.val_fraction, o.seed);
        else
            snprintf(how, sizeof how, "the source's val/");
        printf("%s: %lld chips (%lld train, %lld val) of %dx%d from %d scenes, %d of them to "
               "val/ (%s); %lld windows skipped (less than %g %% with data)\n",
               t.out, t.nchips[0] + t.nchips[1], t.nchips[0], t.nchips[1], o.tile, o.tile, d.n,
               t.val_scenes, how, t.skipped, 100 * o.min_valid);
    }
    for (int i = 0; i < t.nrows; i++) free(t.rows[i].text), free(t.rows[i].cls);
    free(t.rows);
    free(t.out);
    free(t.stage);
    free(t.root);
    gseg__tdata_free(&d);
    CSLDestroy(o.bands);
    CSLDestroy(o.co);
    return rc;
}
