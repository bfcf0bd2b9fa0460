/*
 * dataset.c — training data: discovering scenes and their masks, checking
 * that each mask lies on its image's grid, indexing where glacier is, and
 * per-band normalisation statistics by streaming.
 *
 * Layouts (PATH may be a folder, a .zip/.tar/.tar.gz/.tgz archive read in
 * place through GDAL's /vsizip/ and /vsitar/, or any VSI path):
 *   PATH/train/images/NAME.tif + PATH/train/masks/NAME.(tif...)  [+ PATH/val/...]
 *   PATH/images + PATH/masks                                    (no val/)
 * Masks are matched to images by file stem. Mask values: 0 background,
 * 1..K-1 classes, the mask's nodata (or 255) not labelled.
 * With labels from outlines (need_masks 0) masks/ folders are optional, and
 * PATH may also be a plain folder (or archive) of rasters.
 */
#include "train.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const kRasterExt[] = {"tif", "tiff", "jp2", "img", "vrt", "nc", "png", NULL};

static int is_raster(const char *name)
{
    const char *ext = CPLGetExtension(name);
    for (int i = 0; kRasterExt[i]; i++)
        if (strcasecmp(ext, kRasterExt[i]) == 0) return 1;
    return 0;
}

char *gseg__tdata_vsi_path(const char *path)
{
    size_t n = strlen(path);
    const char *pre = "";
    if (strncmp(path, "/vsi", 4) != 0) {
        if (n > 4 && strcasecmp(path + n - 4, ".zip") == 0) pre = "/vsizip/";
        else if ((n > 4 && strcasecmp(path + n - 4, ".tar") == 0) ||
                 (n > 7 && strcasecmp(path + n - 7, ".tar.gz") == 0) ||
                 (n > 4 && strcasecmp(path + n - 4, ".tgz") == 0))
            pre = "/vsitar/";
    }
    char *r = gseg__malloc(strlen(pre) + n + 1, 1);
    if (r) sprintf(r, "%s%s", pre, path);
    /* Drop a trailing slash so joins stay clean. */
    if (r && strlen(r) > 1 && r[strlen(r) - 1] == '/') r[strlen(r) - 1] = '\0';
    return r;
}

static int is_dir(const char *path)
{
    VSIStatBufL st;
    return VSIStatL(path, &st) == 0 && VSI_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted raster files of a folder (CSL list; caller destroys), hidden files
 * left out. Works inside /vsizip/ and /vsitar/ as in plain folders. */
static char **list_rasters(const char *dir)
{
    char **names = VSIReadDir(dir), **out = NULL;
    for (int i = 0; names && names[i]; i++)
        if (is_raster(names[i]) && names[i][0] != '.')
            out = CSLAddString(out, CPLFormFilename(dir, names[i], NULL));
    CSLDestroy(names);
    if (out) qsort(out, (size_t)CSLCount(out), sizeof *out, cmp_str); /* deterministic order */
    return out;
}

/* The mask of image `img` in folder `mdir`: same stem, any raster extension. */
static char *find_mask(const char *mdir, const char *img)
{
    char stem[1024];
    snprintf(stem, sizeof stem, "%s", CPLGetBasename(img));
    for (int i = 0; kRasterExt[i]; i++) {
        const char *cand = CPLFormFilename(mdir, stem, kRasterExt[i]);
        VSIStatBufL st;
        if (VSIStatL(cand, &st) == 0) return gseg__strdup(cand);
    }
    return NULL;
}

/* The length of a file stem without a band suffix, if it has one as
 * Landsat and Sentinel-2 band files do (LC09_..._SR_B3, T45RVL_..._B8A,
 * T45RVL_..._B03_10m), else 0. */
static size_t band_prefix(const char *stem)
{
    size_t n = strlen(stem);
    for (const char *res = "_10m\0_20m\0_60m\0"; *res; res += strlen(res) + 1)
        if (n > 4 && strcasecmp(stem + n - 4, res) == 0) {
            n -= 4;
            break;
        }
    size_t d = n;
    if (d > 0 && (stem[d - 1] == 'A' || stem[d - 1] == 'a')) d--; /* B8A */
    size_t digits = d;
    while (digits > 0 && stem[digits - 1] >= '0' && stem[digits - 1] <= '9') digits--;
    if (digits == d || d - digits > 2 || digits < 3) return 0;
    if ((stem[digits - 1] != 'B' && stem[digits - 1] != 'b') || stem[digits - 2] != '_') return 0;
    return digits - 2;
}

static int single_band(const char *path)
{
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER, NULL, NULL, NULL);
    CPLPopErrorHandler();
    int one = ds && GDALGetRasterCount(ds) == 1;
    if (ds) GDALClose(ds);
    return one;
}

/* Refuses single-band files that are the bands of one product (X_B3.tif,
 * X_B6.tif): each would be taken for a scene of its own, and the network
 * would learn from one band at a time. imgs is sorted, so the names that
 * start as X_B are contiguous. */
static gseg_status refuse_band_files(char **imgs, const char *dir)
{
    for (int i = 0; imgs[i]; i++) {
        char stem[1024];
        snprintf(stem, sizeof stem, "%s", CPLGetBasename(imgs[i]));
        size_t n = band_prefix(stem);
        int one = -1; /* imgs[i] is single-band: opened once, when needed */
        for (int k = i + 1; n && imgs[k]; k++) {
            const char *other = CPLGetBasename(imgs[k]);
            if (strncmp(stem, other, n + 2) != 0) break; /* past X_B... */
            if (band_prefix(other) != n) continue;
            if (one < 0) one = single_band(imgs[i]);
            if (!one) break;
            if (!single_band(imgs[k])) continue;
            return gseg__err(GSEG_ERR_FORMAT,
                             "%s: %s and %s look like two bands of one product (%.*s): a scene "
                             "must hold all its bands; stack them first, e.g. with gdalbuildvrt "
                             "-separate (docs/data.md)",
                             dir, CPLGetFilename(imgs[i]), CPLGetFilename(imgs[k]), (int)n, stem);
        }
    }
    return GSEG_OK;
}

static gseg_status add_pairs(gseg__tdata *d, const char *idir, const char *mdir, int val,
                             int need_masks)
{
    char **imgs = list_rasters(idir);
    gseg_status st = GSEG_OK;
    if (!imgs)
        st = gseg__err(GSEG_ERR_IO, "%s: no raster files (.tif, .tiff, .jp2, .img, .vrt, .nc, .png)", idir);
    else
        st = refuse_band_files(imgs, idir);
    for (int i = 0; imgs && imgs[i] && st == GSEG_OK; i++) {
        /* one scene per stem: masks are found by it (a.tif beside a.vrt
         * would be the same scene twice, on one mask) */
        for (int k = 0; k < i; k++)
            if (strcmp(CPLGetBasename(imgs[k]), CPLGetBasename(imgs[i])) == 0) {
                st = gseg__err(GSEG_ERR_FORMAT,
                               "%s and %s have the same file stem; masks are matched by stem: "
                               "keep one of them in %s",
                               imgs[k], imgs[i], idir);
                break;
            }
        if (st != GSEG_OK) break;
        char *mask = find_mask(mdir, imgs[i]);
        if (!mask && need_masks) {
            st = gseg__err(GSEG_ERR_IO,
                           "%s: no mask %s/%s.{tif,tiff,jp2,img,vrt,nc,png} (masks are matched "
                           "by file stem)",
                           imgs[i], mdir, CPLGetBasename(imgs[i]));
            break;
        }
        gseg__tscene *s = realloc(d->scenes, (size_t)(d->n + 1) * sizeof *s);
        if (!s) {
            free(mask);
            st = gseg__err(GSEG_ERR_NOMEM, "out of memory");
            break;
        }
        d->scenes = s;
        memset(&s[d->n], 0, sizeof *s);
        s[d->n].image = gseg__strdup(imgs[i]);
        s[d->n].mask = mask;
        s[d->n].val = val;
        d->n++;
    }
    CSLDestroy(imgs);
    return st;
}

char *gseg__tdata_sole_folder(const char *dir)
{
    char **e = VSIReadDir(dir);
    const char *only = NULL;
    int n = 0;
    for (int i = 0; e && e[i]; i++)
        if (e[i][0] != '.' && strcmp(e[i], "__MACOSX") != 0) {
            only = e[i];
            n++;
        }
    char *sub = NULL;
    VSIStatBufL st;
    if (n == 1 && VSIStatL(CPLFormFilename(dir, only, NULL), &st) == 0 && VSI_ISDIR(st.st_mode))
        sub = gseg__strdup(CPLFormFilename(dir, only, NULL));
    CSLDestroy(e);
    return sub;
}

gseg_status gseg__tdata_discover(gseg__tdata *d, const char *path, int need_masks)
{
    memset(d, 0, sizeof *d);
    char *root = gseg__tdata_vsi_path(path);
    if (!root) return GSEG_ERR_NOMEM;
    gseg_status st = GSEG_OK;
    char tr[2048], va[2048];
    /* an archive of the dataset's folder (zip -r dataset.zip dataset/) */
    int archive = strcmp(root, path) != 0 && strncmp(root, "/vsi", 4) == 0;
    for (char *sub; archive && !is_dir(CPLFormFilename(root, "train", NULL)) &&
                    !is_dir(CPLFormFilename(root, "images", NULL)) &&
                    (sub = gseg__tdata_sole_folder(root)) != NULL;) {
        free(root);
        root = sub;
    }
    snprintf(tr, sizeof tr, "%s/train", root);
    snprintf(va, sizeof va, "%s/val", root);
    char im[2100], ma[2100];
    if (!is_dir(root)) {
        st = gseg__err(GSEG_ERR_IO, "%s: no such folder or archive", path);
    } else if (is_dir(tr)) {
        snprintf(im, sizeof im, "%s/images", tr);
        snprintf(ma, sizeof ma, "%s/masks", tr);
        st = add_pairs(d, im, ma, 0, need_masks);
        if (st == GSEG_OK && is_dir(va)) {
            snprintf(im, sizeof im, "%s/images", va);
            snprintf(ma, sizeof ma, "%s/masks", va);
            st = add_pairs(d, im, ma, 1, need_masks);
            d->has_val = st == GSEG_OK;
        }
    } else {
        snprintf(im, sizeof im, "%s/images", root);
        snprintf(ma, sizeof ma, "%s/masks", root);
        if (is_dir(im))
            st = add_pairs(d, im, ma, 0, need_masks);
        else if (!need_masks)
            st = add_pairs(d, root, ma, 0, 0); /* a plain folder of scenes */
        else
            st = gseg__err(GSEG_ERR_IO,
                           "%s: expected train/images + train/masks (or images/ + masks/) inside",
                           path);
    }
    free(root);
    if (st != GSEG_OK) gseg__tdata_free(d);
    return st;
}

void gseg__tdata_free(gseg__tdata *d)
{
    for (int i = 0; i < d->n; i++) {
        free(d->scenes[i].image);
        if (d->scenes[i].mask_is_mem) {
            VSIUnlink(d->scenes[i].mask);
            VSIUnlink(CPLSPrintf("%s.aux.xml", d->scenes[i].mask));
        }
        free(d->scenes[i].mask);
        free(d->scenes[i].glacier_blocks);
    }
    free(d->scenes);
    free(d->labels);
    d->labels = NULL;
    memset(d, 0, sizeof *d);
}

/* Checks the mask against its image and indexes 32x32 blocks that hold
 * a positive class. */
/* labels: the outlines the mask was burnt from, or NULL. */
static gseg_status index_mask(gseg__tscene *s, gseg_scene *img, int nclasses, const char *labels)
{
    if (!s->mask) return gseg__err(GSEG_ERR_ARG, "%s: no mask (and no --labels)", s->image);
    GDALDatasetH m = GDALOpenEx(s->mask, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    if (!m) return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot open mask", s->mask);
    gseg_status st = GSEG_OK;
    int w = GDALGetRasterXSize(m), h = GDALGetRasterYSize(m);
    double gi[6], gm[6];
    int hi = gseg_scene_geotransform(img, gi), hm = GDALGetGeoTransform(m, gm) == CE_None;
    if (w != gseg_scene_width(img) || h != gseg_scene_height(img)) {
        st = gseg__err(GSEG_ERR_FORMAT, "%s: mask is %dx%d but its image %s is %dx%d", s->mask, w,
                       h, s->image, gseg_scene_width(img), gseg_scene_height(img));
    } else if (hi && hm) {
        for (int k = 0; k < 6 && st == GSEG_OK; k++) {
            double tol = 1e-6 * fmax(fabs(gi[1]), fabs(gi[5]));
            if (fabs(gi[k] - gm[k]) > (k == 0 || k == 3 ? tol : 1e-9 * fmax(1, fabs(gi[k]))))
                st = gseg__err(GSEG_ERR_FORMAT,
                               "%s: mask grid differs from its image %s (geotransform term %d: "
                               "%.10g vs %.10g)",
                               s->mask, s->image, k, gm[k], gi[k]);
        }
    }
    if (st == GSEG_OK) {
        const char *wkt = gseg_scene_crs_wkt(img);
        OGRSpatialReferenceH ms = GDALGetSpatialRef(m);
        if (wkt && *wkt && ms) {
            OGRSpatialReferenceH is = OSRNewSpatialReference(wkt);
            /* The WKT carries no axis mapping (geographic CRSs come back
             * latitude first, the mask's GDAL keeps longitude first): compare
             * the CRSs themselves. */
            static const char *const same_opts[] = {"IGNORE_DATA_AXIS_TO_SRS_AXIS_MAPPING=YES",
                                                    NULL};
            if (is && !OSRIsSameEx(is, ms, same_opts))
                st = gseg__err(GSEG_ERR_FORMAT, "%s: mask CRS differs from its image %s", s->mask,
                               s->image);
            OSRDestroySpatialReference(is);
        }
    }
    GDALRasterBandH b = GDALGetRasterBand(m, 1);
    int has_nd = 0;
    double nd = b ? GDALGetRasterNoDataValue(b, &has_nd) : 0;
    s->mask_nodata = has_nd && nd >= 0 && nd <= 255 ? (int)nd : 255;
    if (s->mask_nodata < nclasses)
        CPLError(CE_Warning, CPLE_AppDefined,
                 "%s: the mask's nodata value %d is also a class value (%s): its pixels are "
                 "taken as not labelled; if they are labelled, unset it (gdal_edit.py "
                 "-unsetnodata)",
                 s->mask, s->mask_nodata, s->mask_nodata == 0 ? "background" : "a class");
    s->width = w;
    s->height = h;
    int bw = (w + 31) / 32, bh = (h + 31) / 32;
    uint8_t *row = st == GSEG_OK ? gseg__malloc((size_t)w * 32, 1) : NULL;
    uint8_t *blk = st == GSEG_OK ? gseg__calloc((size_t)bw, 1) : NULL;
    if (st == GSEG_OK && (!row || !blk)) st = GSEG_ERR_NOMEM;
    for (int by = 0; by < bh && st == GSEG_OK; by++) {
        int y0 = by * 32, rows = h - y0 < 32 ? h - y0 : 32;
        if (GDALRasterIO(b, GF_Read, 0, y0, w, rows, row, w, rows, GDT_Byte, 0, 0) != CE_None) {
            st = gseg__gdal_err(GSEG_ERR_IO, "%s: read error", s->mask);
            break;
        }
        memset(blk, 0, (size_t)bw);
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < w; x++) {
                int v = row[(size_t)y * w + x];
                if (gseg__unlabelled(s, v)) continue;
                if (v >= nclasses && s->mask_is_mem) { /* burnt from --labels */
                    st = gseg__err(GSEG_ERR_FORMAT,
                                   "%s: class %d on %s (pixel %d, %d) but there are %d classes "
                                   "(0..%d): give --classes with %d names",
                                   labels ? labels : "label outlines", v, s->image, x,
                                   y0 + y, nclasses, nclasses - 1, v + 1);
                    goto out;
                }
                if (v >= nclasses) {
                    st = gseg__err(GSEG_ERR_FORMAT,
                                   "%s: value %d at pixel (%d, %d) but the model has %d classes "
                                   "(0..%d; %d = not labelled)",
                                   s->mask, v, x, y0 + y, nclasses, nclasses - 1, s->mask_nodata);
                    goto out;
                }
                s->class_pixels[v < 8 ? v : 7]++;
                if (v > 0) blk[x / 32] = 1;
            }
        for (int bx = 0; bx < bw; bx++) {
            if (!blk[bx]) continue;
            if (s->nglacier % 1024 == 0) {
                int32_t *g = realloc(s->glacier_blocks, ((size_t)s->nglacier + 1024) * 2 * sizeof *g);
                if (!g) {
                    st = gseg__err(GSEG_ERR_NOMEM, "out of memory");
                    goto out;
                }
                s->glacier_blocks = g;
            }
            s->glacier_blocks[2 * s->nglacier] = bx * 32;
            s->glacier_blocks[2 * s->nglacier + 1] = y0;
            s->nglacier++;
        }
    }
out:
    free(row);
    free(blk);
    GDALClose(m);
    return st;
}

gseg_status gseg__tdata_prepare(gseg__tdata *d, const char *const *bands, int nclasses,
                                int *nbands_out, char ***band_names_out)
{
    gseg_scene_params sp = gseg_scene_params_default();
    sp.bands = bands;
    int nb = -1;
    gseg_status st = GSEG_OK;
    for (int i = 0; i < d->n && st == GSEG_OK; i++) {
        gseg__tscene *s = &d->scenes[i];
        gseg_scene *img = NULL;
        const char *p[1] = {s->image};
        st = gseg_scene_open(p, 1, &sp, &img);
        if (st != GSEG_OK) break;
        if (nb < 0) {
            nb = gseg_scene_nbands(img);
            char **names = gseg__calloc((size_t)nb + 1, sizeof *names);
            if (!names) st = GSEG_ERR_NOMEM;
            for (int b = 0; b < nb && st == GSEG_OK; b++) {
                /* Name bands by description where the file has them, so the
                 * model finds them in other scenes whatever their order. */
                const char *nm = gseg_scene_band_name(img, b);
                char num[16];
                snprintf(num, sizeof num, "%d", b + 1);
                names[b] = gseg__strdup(bands ? bands[b] : strncmp(nm, "band ", 5) ? nm : num);
                if (!names[b]) st = GSEG_ERR_NOMEM;
            }
            *band_names_out = names;
            *nbands_out = nb;
            if (st == GSEG_OK && !bands) {
                /* Later scenes are read by these names. */
                sp.bands = (const char *const *)names;
            }
        }
        if (st == GSEG_OK) st = index_mask(s, img, nclasses, d->labels);
        gseg_scene_free(img);
    }
    return st;
}

gseg_status gseg__tdata_stats(gseg__tdata *d, const char *const *bands, int nb, double *mean,
                              double *sd)
{
    double *n = gseg__calloc((size_t)nb, sizeof *n), *mu = gseg__calloc((size_t)nb, sizeof *mu),
           *m2 = gseg__calloc((size_t)nb, sizeof *m2);
    const int T = 256;
    float *buf = gseg__malloc((size_t)nb * T * T, sizeof *buf);
    uint8_t *valid = gseg__malloc((size_t)T * T, 1);
    gseg_status st = n && mu && m2 && buf && valid ? GSEG_OK : GSEG_ERR_NOMEM;
    gseg_scene_params sp = gseg_scene_params_default();
    sp.bands = bands;
    for (int i = 0; i < d->n && st == GSEG_OK; i++) {
        if (d->scenes[i].val) continue;
        gseg_scene *img = NULL;
        const char *p[1] = {d->scenes[i].image};
        st = gseg_scene_open(p, 1, &sp, &img);
        int W = st == GSEG_OK ? gseg_scene_width(img) : 0, H = st == GSEG_OK ? gseg_scene_height(img) : 0;
        /* Big scenes: a regular subsample of windows, at most ~64 Mpx. */
        long long px = (long long)W * H;
        int step = px > 64LL << 20 ? (int)ceil(sqrt((double)px / (64LL << 20))) : 1;
        for (int y = 0, wy = 0; y < H && st == GSEG_OK; y += T, wy++)
            for (int x = 0, wx = 0; x < W && st == GSEG_OK; x += T, wx++) {
                if ((wx + wy) % step) continue;
                gseg_window win = {x, y, W - x < T ? W - x : T, H - y < T ? H - y : T};
                st = gseg_scene_read(img, win, win.w, win.h, buf, valid, NULL);
                size_t plane = (size_t)win.w * win.h;
                for (int b = 0; b < nb && st == GSEG_OK; b++) {
                    /* Chan et al.: merge this window's mean and M2. */
                    double wn = 0, wm = 0, wm2 = 0;
                    const float *v = buf + (size_t)b * plane;
                    for (size_t k = 0; k < plane; k++) {
                        if (!valid[k]) continue;
                        wn++;
                        double dlt = v[k] - wm;
                        wm += dlt / wn;
                        wm2 += dlt * (v[k] - wm);
                    }
                    if (wn == 0) continue;
                    double tot = n[b] + wn, dl = wm - mu[b];
                    mu[b] += dl * wn / tot;
                    m2[b] += wm2 + dl * dl * n[b] * wn / tot;
                    n[b] = tot;
                }
            }
        gseg_scene_free(img);
    }
    int ntrain = 0, first = -1;
    for (int i = 0; i < d->n; i++)
        if (!d->scenes[i].val && ntrain++ == 0) first = i;
    for (int b = 0; b < nb && st == GSEG_OK; b++) {
        if (n[b] < 2) {
            if (ntrain > 1)
                st = gseg__err(GSEG_ERR_FORMAT,
                               "%s and the other %d training scenes: band %s: no valid training "
                               "pixels (all nodata, masked or NaN)",
                               d->scenes[first].image, ntrain - 1, bands ? bands[b] : "?");
            else
                st = gseg__err(GSEG_ERR_FORMAT,
                               "%s: band %s: no valid training pixels (all nodata, masked or NaN)",
                               first >= 0 ? d->scenes[first].image : "dataset",
                               bands ? bands[b] : "?");
            break;
        }
        mean[b] = mu[b];
        sd[b] = sqrt(m2[b] / (n[b] - 1));
        if (!(sd[b] > 0)) sd[b] = 1; /* a constant band: leave it centred */
    }
    free(n);
    free(mu);
    free(m2);
    free(buf);
    free(valid);
    return st;
}
