/*
 * scene.c — a scene: the bands a model reads, from one file or a stack.
 *
 * A scene is a list of selected bands, each a (file, band) pair, on one
 * target pixel grid. For a single file the grid is the file's own, rotated
 * geotransforms and GCP-only georeferencing included. For a stack the grid is
 * the finest file's pixel grid cropped to the intersection of all extents;
 * coarser files are read through GDAL's resampling RasterIO with a
 * floating-point source window (the same machinery VRTs use), so no
 * resampling is written here. Reading every file directly, rather than
 * through one VRT, keeps each file's own mask and alpha bands in force.
 *
 * Validity of a pixel: every selected band holds data there — not the band's
 * nodata value, not masked by its mask/alpha band, and a finite number.
 */
#include "internal.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct src_file {
    char *path;
    GDALDatasetH ds;
    double gt[6];
    int has_gt;
    /* Target pixel (x, y) maps to source pixel (x * sx + ox, y * sy + oy). */
    double sx, sy, ox, oy;
    int same_grid; /* sx == sy == 1 and integral offsets */
    int alpha_known;       /* alpha below has been looked up */
    GDALRasterBandH alpha; /* the band marked Alpha, if any */
} src_file;

typedef struct sel_band {
    src_file *file;
    GDALRasterBandH band;
    int band_no;         /* 1-based in its file */
    GDALDataType type;
    int read_f64;        /* read as Float64 (exact nodata test for wide types) */
    int read_i64;        /* 64-bit integers: read as such, nodata tested exactly */
    double scale, offset;
    int has_nodata;
    double nodata;
    int64_t nodata_i64;  /* read_i64: the nodata value (UInt64: its bits) */
    int mask_flags;
    GDALRasterBandH mask; /* for per-dataset, alpha and explicit masks */
    char *name;
} sel_band;

struct gseg_scene {
    int nfiles;
    src_file *files;
    int nbands;
    sel_band *bands;
    int width, height;
    double gt[6];
    int has_gt;
    char *wkt;
    GDALRIOResampleAlg resample;
    /* scratch, grown as needed */
    double *f64;
    uint8_t *mbuf;
    size_t scratch_px;
};

gseg_scene_params gseg_scene_params_default(void)
{
    gseg_scene_params p = {NULL, "nearest"};
    return p;
}

int gseg_scene_width(const gseg_scene *s) { return s->width; }
int gseg_scene_height(const gseg_scene *s) { return s->height; }
int gseg_scene_nbands(const gseg_scene *s) { return s->nbands; }
const char *gseg_scene_path(const gseg_scene *s) { return s->files[0].path; }
const char *gseg_scene_crs_wkt(const gseg_scene *s) { return s->wkt ? s->wkt : ""; }

const char *gseg_scene_band_name(const gseg_scene *s, int i)
{
    if (i < 0 || i >= s->nbands) return "";
    return s->bands[i].name;
}

int gseg_scene_geotransform(const gseg_scene *s, double gt[6])
{
    memcpy(gt, s->gt, sizeof s->gt);
    return s->has_gt;
}

void gseg_scene_free(gseg_scene *s)
{
    if (!s) return;
    for (int i = 0; i < s->nfiles; i++) {
        if (s->files[i].ds) GDALClose(s->files[i].ds);
        free(s->files[i].path);
    }
    for (int i = 0; i < s->nbands; i++) free(s->bands[i].name);
    free(s->files);
    free(s->bands);
    free(s->wkt);
    free(s->f64);
    free(s->mbuf);
    free(s);
}

static int max_dimension(void)
{
    const char *v = CPLGetConfigOption("GSEG_MAX_DIMENSION", NULL);
    long n = v ? strtol(v, NULL, 10) : 0;
    return n > 0 && n < INT32_MAX ? (int)n : 1 << 20;
}

static gseg_status open_file(src_file *f, const char *path)
{
    f->path = gseg__strdup(path);
    if (!f->path) return GSEG_ERR_NOMEM;
    CPLErrorReset();
    f->ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    if (!f->ds) {
        VSIStatBufL sb;
        /* network file systems are not probed: a stat there costs a request */
        int network = strncmp(path, "/vsicurl", 8) == 0 || strncmp(path, "/vsis3", 6) == 0 ||
                      strncmp(path, "/vsigs", 6) == 0 || strncmp(path, "/vsiaz", 6) == 0 ||
                      strncmp(path, "/vsioss", 7) == 0 || strncmp(path, "/vsiswift", 9) == 0 ||
                      strncmp(path, "/vsihdfs", 8) == 0 || strncmp(path, "/vsiwebhdfs", 11) == 0;
        if (!network && VSIStatL(path, &sb) != 0)
            return gseg__err(GSEG_ERR_IO, "%s: no such file", path);
        return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot open as a raster", path);
    }
    if (GDALGetRasterCount(f->ds) < 1) {
        char **sub = GDALGetMetadata(f->ds, "SUBDATASETS");
        const char *first = CSLFetchNameValue(sub, "SUBDATASET_1_NAME");
        if (first)
            return gseg__err(GSEG_ERR_FORMAT,
                             "%s: has no bands of its own; open one of its subdatasets, e.g. %s",
                             path, first);
        return gseg__err(GSEG_ERR_FORMAT, "%s: has no raster bands", path);
    }
    int w = GDALGetRasterXSize(f->ds), h = GDALGetRasterYSize(f->ds), lim = max_dimension();
    if (w > lim || h > lim)
        return gseg__err(GSEG_ERR_LIMIT,
                         "%s: declares %d x %d pixels, more than %d on a side "
                         "(raise --config GSEG_MAX_DIMENSION if this is real)",
                         path, w, h, lim);
    f->has_gt = GDALGetGeoTransform(f->ds, f->gt) == CE_None;
    if (f->has_gt && (f->gt[1] == 0 || f->gt[5] == 0) && f->gt[2] == 0 && f->gt[4] == 0)
        return gseg__err(GSEG_ERR_FORMAT, "%s: geotransform has a zero pixel size", path);
    /* A transform that is not finite, or maps the pixel grid onto a line
     * (rotated or sheared with parallel rows and columns), places nothing:
     * every output would carry it on. */
    if (f->has_gt) {
        int finite = 1;
        for (int k = 0; k < 6; k++) finite &= isfinite(f->gt[k]) != 0;
        if (!finite)
            return gseg__err(GSEG_ERR_FORMAT,
                             "%s: geotransform is not finite (%g, %g, %g, %g, %g, %g)", path,
                             f->gt[0], f->gt[1], f->gt[2], f->gt[3], f->gt[4], f->gt[5]);
        /* the sine of the angle between a pixel's column and row steps,
         * scaled so that no pixel size under- or overflows it */
        double n1 = hypot(f->gt[1], f->gt[4]), n2 = hypot(f->gt[2], f->gt[5]);
        double sine = n1 > 0 && n2 > 0 ? (f->gt[1] / n1) * (f->gt[5] / n2) -
                                             (f->gt[2] / n2) * (f->gt[4] / n1)
                                       : 0;
        if (!(fabs(sine) > 1e-12))
            return gseg__err(GSEG_ERR_FORMAT,
                             "%s: geotransform is singular (%g, %g, %g, %g, %g, %g): its pixel "
                             "rows and columns are parallel",
                             path, f->gt[0], f->gt[1], f->gt[2], f->gt[3], f->gt[4], f->gt[5]);
    }
    if (!f->has_gt) {
        double id[6] = {0, 1, 0, 0, 0, 1};
        memcpy(f->gt, id, sizeof id);
    }
    return GSEG_OK;
}

/* Name by which a band is selected and reported: its description, else (a
 * single-band file in a stack) the file's stem, else "band N". */
static char *band_name(const src_file *f, GDALRasterBandH b, int band_no, int nfiles)
{
    const char *d = GDALGetDescription(b);
    if (d && *d) return gseg__strdup(d);
    if (nfiles > 1 && GDALGetRasterCount(f->ds) == 1) return gseg__strdup(CPLGetBasename(f->path));
    return gseg__strdup(CPLSPrintf("band %d", band_no));
}

/* "SWIR1" matches a band named "swir1"; "B3" also matches a file stem such as
 * "LC08_..._SR_B3" and "B03" one such as "T43SFA_..._B03_10m". */
static int name_matches(const char *name, const char *sel)
{
    if (strcasecmp(name, sel) == 0) return 1;
    size_t n = strlen(name), k = strlen(sel);
    if (n > k && name[n - k - 1] == '_' && strcasecmp(name + n - k, sel) == 0) return 1;
    for (const char *p = name; (p = strchr(p, '_')) != NULL; p++)
        if (strncasecmp(p + 1, sel, k) == 0 && p[1 + k] == '_') return 1;
    return 0;
}

/* Resampling of coarser stacked bands, by the names GDAL's tools use. */
static const struct {
    const char *name;
    GDALRIOResampleAlg alg;
} kResampling[] = {
    {"nearest", GRIORA_NearestNeighbour}, {"bilinear", GRIORA_Bilinear},
    {"cubic", GRIORA_Cubic},              {"cubicspline", GRIORA_CubicSpline},
    {"lanczos", GRIORA_Lanczos},          {"average", GRIORA_Average},
    {"mode", GRIORA_Mode},
};

static gseg_status resampling_alg(const char *name, GDALRIOResampleAlg *alg)
{
    for (size_t i = 0; i < sizeof kResampling / sizeof *kResampling; i++)
        if (strcasecmp(name, kResampling[i].name) == 0) {
            *alg = kResampling[i].alg;
            return GSEG_OK;
        }
    return gseg__err(GSEG_ERR_ARG,
                     "--resampling '%s': expected nearest, bilinear, cubic, cubicspline, "
                     "lanczos, average or mode",
                     name);
}

gseg_status gseg__resampling_check(const char *name)
{
    GDALRIOResampleAlg alg;
    return resampling_alg(name, &alg);
}

/* The file's alpha band (the first with colour interpretation Alpha), if any
 * and not `band` itself. Looked up once per file: a scene may declare tens of
 * thousands of bands. */
static GDALRasterBandH alpha_band(src_file *f, GDALRasterBandH band)
{
    if (!f->alpha_known) {
        f->alpha_known = 1;
        for (int i = 1; i <= GDALGetRasterCount(f->ds) && !f->alpha; i++) {
            GDALRasterBandH a = GDALGetRasterBand(f->ds, i);
            if (GDALGetRasterColorInterpretation(a) == GCI_AlphaBand) f->alpha = a;
        }
    }
    return f->alpha != band ? f->alpha : NULL;
}

static gseg_status setup_band(sel_band *b, const char *scene_path)
{
    b->type = GDALGetRasterDataType(b->band);
    if (GDALDataTypeIsComplex(b->type))
        return gseg__err(GSEG_ERR_FORMAT, "%s: band %d: complex data (%s) is not supported",
                         scene_path, b->band_no, GDALGetDataTypeName(b->type));
    b->read_f64 = !(b->type == GDT_Byte || b->type == GDT_UInt16 || b->type == GDT_Int16 ||
                    b->type == GDT_Float32);
#if GDAL_VERSION_NUM >= GDAL_COMPUTE_VERSION(3, 5, 0)
    b->read_i64 = b->type == GDT_Int64 || b->type == GDT_UInt64;
#endif
    int ok = 0;
    b->scale = GDALGetRasterScale(b->band, &ok);
    if (!ok || b->scale == 0 || !isfinite(b->scale)) b->scale = 1.0;
    b->offset = GDALGetRasterOffset(b->band, &ok);
    if (!ok || !isfinite(b->offset)) b->offset = 0.0;
    b->mask_flags = GDALGetMaskFlags(b->band);
#if GDAL_VERSION_NUM >= GDAL_COMPUTE_VERSION(3, 5, 0)
    if (b->type == GDT_Int64) { /* exact: a double cannot hold every 64-bit value */
        b->nodata_i64 = GDALGetRasterNoDataValueAsInt64(b->band, &b->has_nodata);
        b->nodata = (double)b->nodata_i64;
    } else if (b->type == GDT_UInt64) {
        uint64_t u = GDALGetRasterNoDataValueAsUInt64(b->band, &b->has_nodata);
        memcpy(&b->nodata_i64, &u, sizeof u);
        b->nodata = (double)u;
    } else
#endif
        b->nodata = GDALGetRasterNoDataValue(b->band, &b->has_nodata);
    if (!(b->mask_flags & GMF_ALL_VALID) && !(b->mask_flags & GMF_NODATA)) {
        b->mask = GDALGetMaskBand(b->band);
        if (!b->mask)
            return gseg__gdal_err(GSEG_ERR_FORMAT, "%s: band %d: cannot get its mask band",
                                  scene_path, b->band_no);
    } else {
        /* GDAL takes an alpha band for the mask of 2- and 4-band files only
         * (grey + alpha, RGBA); a 7-band scene from gdalwarp -dstalpha has
         * one too. Any band marked alpha masks the others here. */
        b->mask = alpha_band(b->file, b->band);
    }
    if (b->mask) {
        /* a mask file (.msk) on another grid than its image */
        int mw = GDALGetRasterBandXSize(b->mask), mh = GDALGetRasterBandYSize(b->mask);
        int w = GDALGetRasterBandXSize(b->band), h = GDALGetRasterBandYSize(b->band);
        if (mw != w || mh != h) {
            GDALDatasetH mds = GDALGetBandDataset(b->mask);
            const char *mname = mds ? GDALGetDescription(mds) : "";
            return gseg__err(GSEG_ERR_FORMAT,
                             "%s: band %d: its mask band%s%s is %dx%d but the band is %dx%d",
                             b->file->path, b->band_no, *mname ? " in " : "", mname, mw, mh, w,
                             h);
        }
    }
    return GSEG_OK;
}

/* Builds the target grid of a stack and each file's mapping onto it. */
static gseg_status stack_grid(gseg_scene *s)
{
    src_file *fs = s->files;
    int n = s->nfiles;
    int ngt = 0;
    for (int i = 0; i < n; i++) ngt += fs[i].has_gt;
    if (ngt != 0 && ngt != n)
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s and %s: cannot stack a georeferenced file with one that has no "
                         "geotransform", fs[0].path, fs[fs[0].has_gt ? 1 : 0].path);
    if (ngt == 0) { /* stack pixel by pixel: sizes must agree */
        for (int i = 1; i < n; i++)
            if (GDALGetRasterXSize(fs[i].ds) != GDALGetRasterXSize(fs[0].ds) ||
                GDALGetRasterYSize(fs[i].ds) != GDALGetRasterYSize(fs[0].ds))
                return gseg__err(GSEG_ERR_FORMAT,
                                 "%s and %s: no geotransform and different sizes; cannot stack",
                                 fs[0].path, fs[i].path);
        s->width = GDALGetRasterXSize(fs[0].ds);
        s->height = GDALGetRasterYSize(fs[0].ds);
        memcpy(s->gt, fs[0].gt, sizeof s->gt);
        for (int i = 0; i < n; i++) {
            fs[i].sx = fs[i].sy = 1;
            fs[i].ox = fs[i].oy = 0;
            fs[i].same_grid = 1;
        }
        return GSEG_OK;
    }
    OGRSpatialReferenceH ref = NULL;
    int ref_i = 0;
    for (int i = 0; i < n; i++) {
        if (fs[i].gt[2] != 0 || fs[i].gt[4] != 0)
            return gseg__err(GSEG_ERR_UNSUPPORTED,
                             "%s: rotated geotransform; stacks need north-up files "
                             "(warp it first with gdalwarp)", fs[i].path);
        if (fs[i].gt[5] > 0)
            return gseg__err(GSEG_ERR_UNSUPPORTED,
                             "%s: south-up geotransform; stacks need north-up files "
                             "(warp it first with gdalwarp)", fs[i].path);
        OGRSpatialReferenceH srs = GDALGetSpatialRef(fs[i].ds);
        if (i == 0) {
            ref = srs;
        } else if ((ref == NULL) != (srs == NULL) ||
                   (ref && !OSRIsSameEx(ref, srs, (const char *[]){"IGNORE_DATA_AXIS_TO_SRS_AXIS_MAPPING=YES", "CRITERION=EQUIVALENT_EXCEPT_AXIS_ORDER_GEOGCRS", NULL}))) {
            const char *a = ref ? OSRGetName(ref) : "none";
            const char *b = srs ? OSRGetName(srs) : "none";
            return gseg__err(GSEG_ERR_FORMAT,
                             "%s (%s) and %s (%s) are on different CRSs; warp them onto one "
                             "grid first (gdalwarp)", fs[0].path, a ? a : "?", fs[i].path,
                             b ? b : "?");
        }
        if (fabs(fs[i].gt[1]) * fabs(fs[i].gt[5]) <
            fabs(fs[ref_i].gt[1]) * fabs(fs[ref_i].gt[5]) * (1 - 1e-9))
            ref_i = i;
    }
    /* Intersection of extents. */
    double xmin = -HUGE_VAL, xmax = HUGE_VAL, ymin = -HUGE_VAL, ymax = HUGE_VAL;
    for (int i = 0; i < n; i++) {
        double x0 = fs[i].gt[0], y1 = fs[i].gt[3];
        double x1 = x0 + GDALGetRasterXSize(fs[i].ds) * fs[i].gt[1];
        double y0 = y1 + GDALGetRasterYSize(fs[i].ds) * fs[i].gt[5];
        xmin = fmax(xmin, x0);
        xmax = fmin(xmax, x1);
        ymin = fmax(ymin, y0);
        ymax = fmin(ymax, y1);
    }
    const double *rg = fs[ref_i].gt;
    /* Snap inward onto the reference grid (tolerating rounding). */
    double c0 = ceil((xmin - rg[0]) / rg[1] - 1e-6), c1 = floor((xmax - rg[0]) / rg[1] + 1e-6);
    double r0 = ceil((ymax - rg[3]) / rg[5] - 1e-6), r1 = floor((ymin - rg[3]) / rg[5] + 1e-6);
    if (!(c1 - c0 >= 1 && r1 - r0 >= 1)) {
        if (n == 2)
            return gseg__err(GSEG_ERR_FORMAT, "%s and %s do not overlap", fs[0].path,
                             fs[1].path);
        return gseg__err(GSEG_ERR_FORMAT, "%s and the other %d stacked files do not overlap",
                         fs[ref_i].path, n - 1);
    }
    /* The common grid lies inside the finest file, so it is no larger than
     * GSEG_MAX_DIMENSION unless degenerate geotransforms (pixel sizes near
     * 0, coordinates overflowing) made the arithmetic meaningless. */
    if (c1 - c0 > max_dimension() || r1 - r0 > max_dimension())
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s and the other stacked files: their geotransforms give no usable "
                         "common grid", fs[ref_i].path);
    s->width = (int)(c1 - c0);
    s->height = (int)(r1 - r0);
    s->gt[0] = rg[0] + c0 * rg[1];
    s->gt[1] = rg[1];
    s->gt[2] = 0;
    s->gt[3] = rg[3] + r0 * rg[5];
    s->gt[4] = 0;
    s->gt[5] = rg[5];
    for (int i = 0; i < n; i++) {
        src_file *f = &fs[i];
        f->sx = s->gt[1] / f->gt[1];
        f->sy = s->gt[5] / f->gt[5];
        f->ox = (s->gt[0] - f->gt[0]) / f->gt[1];
        f->oy = (s->gt[3] - f->gt[3]) / f->gt[5];
        f->same_grid = fabs(f->sx - 1) < 1e-9 && fabs(f->sy - 1) < 1e-9 &&
                       fabs(f->ox - floor(f->ox + 0.5)) < 1e-6 &&
                       fabs(f->oy - floor(f->oy + 0.5)) < 1e-6;
        if (f->same_grid) {
            f->ox = floor(f->ox + 0.5);
            f->oy = floor(f->oy + 0.5);
        }
        /* The common grid lies inside every file (up to the snapping
         * tolerance), so every window maps to a source window inside the
         * file. Degenerate geotransforms break that (and would overflow the
         * int source offsets of read_window): refuse them here. */
        double fx1 = f->ox + s->width * f->sx, fy1 = f->oy + s->height * f->sy;
        if (!(f->sx > 0 && f->sy > 0 && f->ox >= -1 && f->oy >= -1 &&
              fx1 <= GDALGetRasterXSize(f->ds) + 1.0 && fy1 <= GDALGetRasterYSize(f->ds) + 1.0))
            return gseg__err(GSEG_ERR_FORMAT,
                             "%s: its geotransform does not map the stack's common grid into "
                             "the file (degenerate pixel size?); cannot stack", f->path);
    }
    return GSEG_OK;
}

static gseg_status resolve_bands(gseg_scene *s, const char *const *sel)
{
    int total = 0;
    for (int i = 0; i < s->nfiles; i++) total += GDALGetRasterCount(s->files[i].ds);
    /* every (file, band) in stack order */
    sel_band *all = gseg__calloc((size_t)total, sizeof *all);
    if (!all) return GSEG_ERR_NOMEM;
    gseg_status st = GSEG_OK;
    int k = 0;
    for (int i = 0; i < s->nfiles; i++)
        for (int b = 1; b <= GDALGetRasterCount(s->files[i].ds); b++, k++) {
            all[k].file = &s->files[i];
            all[k].band_no = b;
            all[k].band = GDALGetRasterBand(s->files[i].ds, b);
            all[k].name = band_name(&s->files[i], all[k].band, b, s->nfiles);
            if (!all[k].name) st = GSEG_ERR_NOMEM;
        }
    int nsel = 0;
    if (sel)
        while (sel[nsel]) nsel++;
    int nb = sel ? nsel : total;
    if (st == GSEG_OK && nb == 0) st = gseg__err(GSEG_ERR_ARG, "no bands selected");
    if (st == GSEG_OK) {
        s->bands = gseg__calloc((size_t)nb, sizeof *s->bands);
        if (!s->bands) st = GSEG_ERR_NOMEM;
    }
    for (int i = 0; st == GSEG_OK && i < nb; i++) {
        int idx = i;
        if (sel) {
            char *end = NULL;
            long v = strtol(sel[i], &end, 10);
            if (end != sel[i] && *end == '\0') {
                if (v < 1 || v > total) {
                    st = gseg__err(GSEG_ERR_ARG, "%s: band %ld requested but the scene has %d band%s",
                                   s->files[0].path, v, total, total == 1 ? "" : "s");
                    break;
                }
                idx = (int)v - 1;
            } else {
                idx = -1;
                for (int j = 0; j < total && idx < 0; j++)
                    if (name_matches(all[j].name, sel[i])) idx = j;
                /* single-band files of a stack also answer to their file stem */
                for (int j = 0; j < total && idx < 0 && s->nfiles > 1; j++)
                    if (GDALGetRasterCount(all[j].file->ds) == 1 &&
                        name_matches(CPLGetBasename(all[j].file->path), sel[i]))
                        idx = j;
                if (idx < 0) {
                    char names[512] = "";
                    for (int j = 0; j < total; j++) {
                        size_t l = strlen(names);
                        snprintf(names + l, sizeof names - l, "%s%s", j ? ", " : "", all[j].name);
                    }
                    st = gseg__err(GSEG_ERR_ARG, "%s: no band named '%s' (bands: %s)",
                                   s->files[0].path, sel[i], names);
                    break;
                }
            }
        }
        s->bands[i] = all[idx];
        s->bands[i].name = gseg__strdup(all[idx].name);
        if (!s->bands[i].name) { st = GSEG_ERR_NOMEM; break; }
        s->nbands = i + 1;
        st = setup_band(&s->bands[i], s->files[0].path);
    }
    for (int j = 0; j < total; j++) free(all[j].name);
    free(all);
    return st;
}

gseg_status gseg_scene_open(const char *const *paths, int npaths, const gseg_scene_params *p,
                            gseg_scene **out)
{
    if (!out) return gseg__err(GSEG_ERR_ARG, "scene: NULL output");
    *out = NULL;
    if (!paths || npaths < 1) return gseg__err(GSEG_ERR_ARG, "no input scene given");
    gseg_scene_params def = gseg_scene_params_default();
    if (!p) p = &def;
    gseg_scene *s = gseg__calloc(1, sizeof *s);
    if (!s) return GSEG_ERR_NOMEM;
    gseg_status st = GSEG_OK;
    s->files = gseg__calloc((size_t)npaths, sizeof *s->files);
    if (!s->files) st = GSEG_ERR_NOMEM;
    for (int i = 0; st == GSEG_OK && i < npaths; i++) {
        s->nfiles = i + 1;
        st = open_file(&s->files[i], paths[i]);
    }
    s->resample = GRIORA_NearestNeighbour;
    if (st == GSEG_OK && p->resampling && *p->resampling)
        st = resampling_alg(p->resampling, &s->resample);
    if (st == GSEG_OK) {
        if (npaths == 1) {
            src_file *f = &s->files[0];
            s->width = GDALGetRasterXSize(f->ds);
            s->height = GDALGetRasterYSize(f->ds);
            memcpy(s->gt, f->gt, sizeof s->gt);
            f->sx = f->sy = 1;
            f->ox = f->oy = 0;
            f->same_grid = 1;
        } else {
            st = stack_grid(s);
        }
    }
    if (st == GSEG_OK) {
        s->has_gt = s->files[0].has_gt;
        OGRSpatialReferenceH srs = GDALGetSpatialRef(s->files[0].ds);
        if (srs) {
            char *w = NULL;
            if (OSRExportToWkt(srs, &w) == OGRERR_NONE) s->wkt = gseg__strdup(w);
            CPLFree(w);
        }
        st = resolve_bands(s, p->bands);
    }
    if (st != GSEG_OK) {
        gseg_scene_free(s);
        return st;
    }
    *out = s;
    return GSEG_OK;
}

static gseg_status grow_scratch(gseg_scene *s, size_t px)
{
    if (px <= s->scratch_px) return GSEG_OK;
    double *f = realloc(s->f64, px * sizeof *f);
    if (f) s->f64 = f;
    uint8_t *m = realloc(s->mbuf, px);
    if (m) s->mbuf = m;
    if (!f || !m) return gseg__err(GSEG_ERR_NOMEM, "out of memory for a %zu-pixel window", px);
    s->scratch_px = px;
    return GSEG_OK;
}

/* Reads band b's window (target-grid pixels) into buf (w x h, line stride w)
 * as `type`, resampling through GDAL when the file is on another grid. */
static gseg_status read_window(const sel_band *b, GDALRasterBandH band,
                               gseg_window win, void *buf, GDALDataType type,
                               GDALRIOResampleAlg alg)
{
    const src_file *f = b->file;
    GDALRasterIOExtraArg ex;
    INIT_RASTERIO_EXTRA_ARG(ex);
    int xoff = win.x, yoff = win.y, xs = win.w, ys = win.h;
    if (!f->same_grid || f->ox != 0 || f->oy != 0) {
        double fx = win.x * f->sx + f->ox, fy = win.y * f->sy + f->oy;
        double fw = win.w * f->sx, fh = win.h * f->sy;
        if (f->same_grid) {
            xoff = (int)(fx + 0.5);
            yoff = (int)(fy + 0.5);
        } else {
            ex.eResampleAlg = alg;
            ex.bFloatingPointWindowValidity = TRUE;
            ex.dfXOff = fx;
            ex.dfYOff = fy;
            ex.dfXSize = fw;
            ex.dfYSize = fh;
            xoff = (int)floor(fx);
            yoff = (int)floor(fy);
            xs = (int)ceil(fx + fw) - xoff;
            ys = (int)ceil(fy + fh) - yoff;
            int bw = GDALGetRasterBandXSize(band), bh = GDALGetRasterBandYSize(band);
            if (xoff + xs > bw) xs = bw - xoff;
            if (yoff + ys > bh) ys = bh - yoff;
            if (xs < 1) xs = 1;
            if (ys < 1) ys = 1;
        }
    }
    CPLErrorReset();
    if (GDALRasterIOEx(band, GF_Read, xoff, yoff, xs, ys, buf, win.w, win.h, type, 0, 0, &ex) !=
        CE_None)
        return gseg__gdal_err(GSEG_ERR_IO, "%s: band %d: read of window %d,%d %dx%d failed",
                              f->path, b->band_no, win.x, win.y, win.w, win.h);
    return GSEG_OK;
}

gseg_status gseg_scene_read(gseg_scene *s, gseg_window win, int pad_w, int pad_h, float *data,
                            uint8_t *valid, size_t *nvalid)
{
    if (!s || !data) return gseg__err(GSEG_ERR_ARG, "scene read: NULL argument");
    /* win.w > width - win.x, not win.x + win.w > width: no int overflow */
    if (win.w < 1 || win.h < 1 || win.x < 0 || win.y < 0 || win.w > s->width - win.x ||
        win.h > s->height - win.y || pad_w < win.w || pad_h < win.h)
        return gseg__err(GSEG_ERR_ARG, "%s: window %d,%d %dx%d (padded %dx%d) is outside the %dx%d scene",
                         s->files[0].path, win.x, win.y, win.w, win.h, pad_w, pad_h, s->width,
                         s->height);
    size_t npx = (size_t)win.w * win.h;
    gseg_status st = grow_scratch(s, npx);
    if (st != GSEG_OK) return st;
    size_t plane = (size_t)pad_w * pad_h;
    /* validity of the window, packed w x h; 1 until a band says otherwise */
    uint8_t *okw = gseg__malloc(npx, 1);
    if (!okw) return GSEG_ERR_NOMEM;
    memset(okw, 1, npx);

    for (int bi = 0; bi < s->nbands; bi++) {
        const sel_band *b = &s->bands[bi];
        float *dst = data + (size_t)bi * plane;
        /* read packed w x h at the start of the plane (or scratch), then spread */
        if (b->read_f64) {
#if GDAL_VERSION_NUM >= GDAL_COMPUTE_VERSION(3, 5, 0)
            if (b->read_i64) { /* 64-bit integers in place of the doubles */
                st = read_window(b, b->band, win, s->f64, b->type, s->resample);
                if (st != GSEG_OK) break;
                for (size_t i = 0; i < npx; i++) {
                    int64_t raw;
                    memcpy(&raw, &s->f64[i], sizeof raw);
                    if (b->has_nodata && raw == b->nodata_i64) okw[i] = 0;
                    double v;
                    if (b->type == GDT_UInt64) {
                        uint64_t u;
                        memcpy(&u, &raw, sizeof u);
                        v = (double)u;
                    } else {
                        v = (double)raw;
                    }
                    s->f64[i] = v * b->scale + b->offset;
                }
            } else
#endif
            {
                st = read_window(b, b->band, win, s->f64, GDT_Float64, s->resample);
                if (st != GSEG_OK) break;
                for (size_t i = 0; i < npx; i++) {
                    double v = s->f64[i];
                    if (!isfinite(v) || (b->has_nodata && v == b->nodata)) okw[i] = 0;
                    s->f64[i] = v * b->scale + b->offset;
                }
            }
            for (int y = 0; y < win.h; y++)
                for (int x = 0; x < win.w; x++)
                    dst[(size_t)y * pad_w + x] = (float)s->f64[(size_t)y * win.w + x];
        } else {
            float *tmp = (float *)s->f64; /* room for npx floats */
            st = read_window(b, b->band, win, tmp, GDT_Float32, s->resample);
            if (st != GSEG_OK) break;
            float nd = (float)b->nodata;
            int nd_ok = b->has_nodata && (double)nd == b->nodata;
            for (size_t i = 0; i < npx; i++) {
                float v = tmp[i];
                if (!isfinite(v) || (nd_ok && v == nd)) okw[i] = 0; /* NaN nodata too */
            }
            for (int y = 0; y < win.h; y++) {
                const float *srow = tmp + (size_t)y * win.w;
                float *drow = dst + (size_t)y * pad_w;
                if (b->scale == 1.0 && b->offset == 0.0) {
                    memcpy(drow, srow, (size_t)win.w * sizeof *drow);
                } else {
                    float sc = (float)b->scale, of = (float)b->offset;
                    for (int x = 0; x < win.w; x++) drow[x] = srow[x] * sc + of;
                }
            }
        }
        if (b->mask) {
            st = read_window(b, b->mask, win, s->mbuf, GDT_Byte, GRIORA_NearestNeighbour);
            if (st != GSEG_OK) break;
            for (size_t i = 0; i < npx; i++)
                if (!s->mbuf[i]) okw[i] = 0;
        }
        /* pad by replicating the edge */
        for (int y = 0; y < pad_h; y++) {
            float *row = dst + (size_t)y * pad_w;
            if (y >= win.h) memcpy(row, dst + (size_t)(win.h - 1) * pad_w, (size_t)pad_w * sizeof *row);
            else
                for (int x = win.w; x < pad_w; x++) row[x] = row[win.w - 1];
        }
    }
    if (st == GSEG_OK) {
        size_t n = 0;
        for (size_t i = 0; i < npx; i++) n += okw[i];
        if (nvalid) *nvalid = n;
        if (valid) {
            memset(valid, 0, plane);
            for (int y = 0; y < win.h; y++)
                memcpy(valid + (size_t)y * pad_w, okw + (size_t)y * win.w, (size_t)win.w);
        }
    }
    free(okw);
    return st;
}

gseg_status gseg__scene_copy_georef(const gseg_scene *s, void *dsv)
{
    GDALDatasetH ds = dsv;
    GDALDatasetH src = s->files[0].ds;
    CPLErrorReset();
    if (s->has_gt) {
        if (GDALSetGeoTransform(ds, (double *)s->gt) != CE_None)
            return gseg__gdal_err(GSEG_ERR_IO, "cannot set the geotransform");
        if (s->wkt && GDALSetProjection(ds, s->wkt) != CE_None)
            return gseg__gdal_err(GSEG_ERR_IO, "cannot set the CRS");
    } else if (s->nfiles == 1 && GDALGetGCPCount(src) > 0) {
        if (GDALSetGCPs2(ds, GDALGetGCPCount(src), GDALGetGCPs(src), GDALGetGCPSpatialRef(src)) !=
            CE_None)
            return gseg__gdal_err(GSEG_ERR_IO, "cannot set the ground control points");
    } else if (s->wkt) {
        GDALSetProjection(ds, s->wkt);
    }
    if (s->nfiles == 1) {
        char **rpc = GDALGetMetadata(src, "RPC");
        if (rpc) GDALSetMetadata(ds, rpc, "RPC");
    }
    return GSEG_OK;
}

int gseg__scene_georef_kind(const gseg_scene *s)
{
    if (s->has_gt) return GSEG_GEOREF_GT;
    if (s->nfiles == 1 && GDALGetGCPCount(s->files[0].ds) > 0) return GSEG_GEOREF_GCP;
    if (s->nfiles == 1 && GDALGetMetadata(s->files[0].ds, "RPC")) return GSEG_GEOREF_RPC;
    return s->wkt ? GSEG_GEOREF_GT : GSEG_GEOREF_NONE;
}

size_t gseg__scene_bytes_per_pixel(const gseg_scene *s)
{
    size_t n = 0;
    for (int i = 0; i < s->nbands; i++) n += (size_t)GDALGetDataTypeSizeBytes(s->bands[i].type);
    return n;
}

void gseg__scene_block_size(const gseg_scene *s, int *bw, int *bh)
{
    GDALGetBlockSize(s->bands[0].band, bw, bh);
}
