/*
 * evaluate.c — gseg-evaluate: a model against labelled scenes.
 *
 * Each scene goes through gseg_predict exactly as a user's prediction
 * would (tiling, blending, thresholds), into a temporary folder (or
 * --save-masks DIR); the mask is compared with the truth over pixels that
 * are labelled in the truth and have data in the scene:
 *   confusion matrix (truth x prediction), per class IoU, F1 (= Dice),
 *   precision, recall; accuracy and mean IoU; glacier area predicted and
 *   true (km², planar in projected CRSs, on the sphere of equal area for
 *   geographic ones); and the mean boundary distance in metres — the mean,
 *   over boundary pixels of each mask, of the distance to the nearest
 *   boundary pixel of the other (symmetric), by an exact Euclidean distance
 *   transform (Felzenszwalb & Huttenlocher).
 */
#include "internal.h"
#include "../core/area.h"
#include "json.h"
#include "../train/train.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXK 16

typedef struct evres {
    char name[256];
    int K;
    long long conf[MAXK * MAXK];
    double km2_pred, km2_true;
    double bdist_sum;
    long long bdist_n;
} evres;

/* 1-D squared distance transform of f (n samples, s2 the squared spacing
 * between them) into d. */
static void edt1(const double *f, double *d, int n, double s2, int *v, double *z)
{
    int k = 0;
    v[0] = 0;
    z[0] = -HUGE_VAL;
    z[1] = HUGE_VAL;
    for (int q = 1; q < n; q++) {
        double s;
        for (;;) {
            s = ((f[q] + s2 * q * q) - (f[v[k]] + s2 * v[k] * v[k])) / (2.0 * s2 * (q - v[k]));
            if (s <= z[k] && k > 0) k--;
            else break;
        }
        if (s <= z[k]) { /* k == 0 and the parabola of v[0] is dominated */
            v[0] = q;
            z[0] = -HUGE_VAL;
            z[1] = HUGE_VAL;
            continue;
        }
        k++;
        v[k] = q;
        z[k] = s;
        z[k + 1] = HUGE_VAL;
    }
    k = 0;
    for (int q = 0; q < n; q++) {
        while (z[k + 1] < q) k++;
        d[q] = s2 * (q - v[k]) * (q - v[k]) + f[v[k]];
    }
}

/* Squared Euclidean distance to the nearest set pixel of b, with pixels
 * sx[y] wide in row y and sy high (metres; 1 for pixel units). Exact on a
 * grid with one width; with the width varying by row (geographic grids,
 * pixels narrowing towards the poles) each row's own width is used for
 * its distances along the row. */
static double *edt(const uint8_t *b, int w, int h, const double *sx, double sy)
{
    int n = w > h ? w : h;
    double *g = gseg__malloc((size_t)w * h, sizeof *g), *f = gseg__malloc((size_t)n, sizeof *f),
           *d = gseg__malloc((size_t)n, sizeof *d), *z = gseg__malloc((size_t)n + 1, sizeof *z);
    int *v = gseg__malloc((size_t)n, sizeof *v);
    if (!g || !f || !d || !z || !v) {
        free(g), free(f), free(d), free(z), free(v);
        return NULL;
    }
    const double INF = 1e20;
    for (int x = 0; x < w; x++) {
        for (int y = 0; y < h; y++) f[y] = b[(size_t)y * w + x] ? 0 : INF;
        edt1(f, d, h, sy * sy, v, z);
        for (int y = 0; y < h; y++) g[(size_t)y * w + x] = d[y];
    }
    for (int y = 0; y < h; y++) {
        memcpy(f, g + (size_t)y * w, (size_t)w * sizeof *f);
        edt1(f, d, w, sx[y] * sx[y], v, z);
        memcpy(g + (size_t)y * w, d, (size_t)w * sizeof *d);
    }
    free(f), free(d), free(z), free(v);
    return g;
}

/* Boundary pixels of the positive class (pixel positive with a 4-neighbour
 * that is not, or on the raster edge). */
static uint8_t *boundary(const uint8_t *pos, int w, int h)
{
    uint8_t *b = gseg__calloc((size_t)w * h, 1);
    if (!b) return NULL;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (!pos[i]) continue;
            b[i] = x == 0 || y == 0 || x == w - 1 || y == h - 1 || !pos[i - 1] || !pos[i + 1] ||
                   !pos[i - w] || !pos[i + w];
        }
    return b;
}

/* Whether comparing a w x h scene fits the memory limit: whole-scene
 * buffers, six bytes and two distance maps per pixel. */
static gseg_status compare_fits(const char *image, const char *truth_path, int w, int h)
{
    double need = 22.0 * (double)w * (double)h, lim = (double)gseg__memory_limit();
    if (need <= lim) return GSEG_OK;
    return gseg__err(GSEG_ERR_LIMIT,
                     "%s: comparing its %dx%d prediction with %s needs %.0f MiB, more than the "
                     "%.0f MiB allowed (--config GSEG_MAX_MEMORY)",
                     image, w, h, truth_path, need / 1048576.0, lim / 1048576.0);
}

/* The same, for a scene not predicted yet (its image's size). */
static gseg_status scene_fits(const char *image, const char *truth_path)
{
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDatasetH ds = GDALOpenEx(image, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    CPLPopErrorHandler();
    if (!ds) return GSEG_OK; /* the prediction will say why */
    gseg_status st =
        compare_fits(image, truth_path, GDALGetRasterXSize(ds), GDALGetRasterYSize(ds));
    GDALClose(ds);
    return st;
}

/* Compares the prediction of `image` (pred_path, on the image's grid with
 * its georeferencing) with the truth mask. A truth on another grid is
 * refused, naming both files, as gseg-train does: another size, or, where
 * both are georeferenced, another geotransform or CRS. */
static gseg_status compare(const char *pred_path, const char *truth_path, const char *image,
                           int K, evres *r)
{
    GDALDatasetH p = GDALOpenEx(pred_path, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    GDALDatasetH t = GDALOpenEx(truth_path, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    gseg_status st = GSEG_OK;
    uint8_t *a = NULL, *b = NULL, *pp = NULL, *tp = NULL, *pb = NULL, *tb = NULL;
    double *dp = NULL, *dt = NULL, *sx = NULL;
    gseg__areas *areas = NULL;
    if (!p || !t) {
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot open", !p ? pred_path : truth_path);
        goto done;
    }
    int w = GDALGetRasterXSize(t), h = GDALGetRasterYSize(t);
    if (GDALGetRasterXSize(p) != w || GDALGetRasterYSize(p) != h) {
        st = gseg__err(GSEG_ERR_FORMAT, "%s: mask is %dx%d but its image %s is %dx%d", truth_path,
                       w, h, image, GDALGetRasterXSize(p), GDALGetRasterYSize(p));
        goto done;
    }
    double gi[6], gm[6];
    if (GDALGetGeoTransform(p, gi) == CE_None && GDALGetGeoTransform(t, gm) == CE_None) {
        double tol = 1e-6 * fmax(fabs(gi[1]), fabs(gi[5]));
        for (int k = 0; k < 6; k++)
            if (fabs(gi[k] - gm[k]) > (k == 0 || k == 3 ? tol : 1e-9 * fmax(1, fabs(gi[k])))) {
                st = gseg__err(GSEG_ERR_FORMAT,
                               "%s: mask grid differs from its image %s (geotransform term %d: "
                               "%.10g vs %.10g)",
                               truth_path, image, k, gm[k], gi[k]);
                goto done;
            }
    }
    OGRSpatialReferenceH si = GDALGetSpatialRef(p), sm = GDALGetSpatialRef(t);
    static const char *const same_opts[] = {"IGNORE_DATA_AXIS_TO_SRS_AXIS_MAPPING=YES", NULL};
    if (si && sm && !OSRIsSameEx(si, sm, same_opts)) {
        st = gseg__err(GSEG_ERR_FORMAT, "%s: mask CRS differs from its image %s", truth_path,
                       image);
        goto done;
    }
    size_t n = (size_t)w * h;
    if ((st = compare_fits(image, truth_path, w, h)) != GSEG_OK) goto done;
    a = gseg__malloc(n, 1);
    b = gseg__malloc(n, 1);
    pp = gseg__calloc(n, 1);
    tp = gseg__calloc(n, 1);
    if (!a || !b || !pp || !tp) {
        st = GSEG_ERR_NOMEM;
        goto done;
    }
    if (GDALRasterIO(GDALGetRasterBand(p, 1), GF_Read, 0, 0, w, h, a, w, h, GDT_Byte, 0, 0) ||
        GDALRasterIO(GDALGetRasterBand(t, 1), GF_Read, 0, 0, w, h, b, w, h, GDT_Byte, 0, 0)) {
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: read error", truth_path);
        goto done;
    }
    int has = 0;
    double nd = GDALGetRasterNoDataValue(GDALGetRasterBand(t, 1), &has);
    int tnd = has && nd >= 0 && nd <= 255 ? (int)nd : 255;
    if (tnd < K)
        CPLError(CE_Warning, CPLE_AppDefined,
                 "%s: the mask's nodata value %d is also a class value: its pixels are taken "
                 "as not labelled; if they are labelled, unset it (gdal_edit.py -unsetnodata)",
                 truth_path, tnd);
    /* Areas and distances on the prediction's grid: the image's, which a
     * truth without georeferencing does not carry. */
    double gt[6];
    int geo = GDALGetGeoTransform(p, gt) == CE_None;
    char *wkt = NULL;
    if (si) OSRExportToWkt(si, &wkt);
    areas = gseg__areas_new(geo ? gt : NULL, wkt, w, h);
    CPLFree(wkt);
    for (int y = 0; y < h; y++) {
        const double *cell = areas ? gseg__areas_row(areas, y) : NULL;
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            int tv = b[i], pv = a[i];
            double pkm2 = cell ? cell[x / GSEG__AREA_CELL] : NAN;
            /* not labelled (255 or the mask's nodata), or no data */
            if (tv == tnd || tv == 255 || pv == 255) continue;
            if (K == 2) tv = tv > 0;
            if (tv >= K || pv >= K) {
                st = gseg__err(GSEG_ERR_FORMAT, "%s: value %d at (%d, %d) outside 0..%d",
                               tv >= K ? truth_path : pred_path, tv >= K ? tv : pv, x, y, K - 1);
                goto done;
            }
            r->conf[tv * K + pv]++;
            pp[i] = pv > 0;
            tp[i] = tv > 0;
            r->km2_pred += pv > 0 ? pkm2 : 0;
            r->km2_true += tv > 0 ? pkm2 : 0;
        }
    }
    /* Boundary distance, both ways. */
    pb = boundary(pp, w, h);
    tb = boundary(tp, w, h);
    if (!pb || !tb) {
        st = GSEG_ERR_NOMEM;
        goto done;
    }
    int anyp = 0, anyt = 0;
    for (size_t i = 0; i < n; i++) anyp |= pb[i], anyt |= tb[i];
    if (anyp && anyt) {
        /* Pixel spacing in metres, per row at the centre column; pixels
         * without georeferencing count as 1 m. */
        sx = gseg__malloc((size_t)h, sizeof *sx);
        if (!sx) {
            st = GSEG_ERR_NOMEM;
            goto done;
        }
        double sy = 1, dy = 1;
        for (int y = 0; y < h; y++) {
            sx[y] = 1;
            if (areas) gseg__areas_spacing(areas, w / 2, y, &sx[y], &dy);
            if (!(sx[y] > 0)) sx[y] = 1;
            if (y == h / 2 && dy > 0) sy = dy;
        }
        dp = edt(pb, w, h, sx, sy);
        dt = edt(tb, w, h, sx, sy);
        if (!dp || !dt) {
            st = GSEG_ERR_NOMEM;
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            if (pb[i]) r->bdist_sum += sqrt(dt[i]), r->bdist_n++;
            if (tb[i]) r->bdist_sum += sqrt(dp[i]), r->bdist_n++;
        }
    }
done:
    free(a), free(b), free(pp), free(tp), free(pb), free(tb), free(dp), free(dt), free(sx);
    gseg__areas_free(areas);
    if (p) GDALClose(p);
    if (t) GDALClose(t);
    return st;
}

typedef struct metrics {
    double iou[MAXK], f1[MAXK], prec[MAXK], rec[MAXK], acc, miou;
    long long n;
} metrics;

static void derive(const evres *r, metrics *m)
{
    int K = r->K;
    long long tot = 0, diag = 0;
    double s = 0;
    int ns = 0;
    for (int c = 0; c < K; c++) {
        long long tp = r->conf[c * K + c], fp = 0, fn = 0;
        for (int j = 0; j < K; j++)
            if (j != c) fp += r->conf[j * K + c], fn += r->conf[c * K + j];
        m->iou[c] = tp + fp + fn ? (double)tp / (double)(tp + fp + fn) : NAN;
        m->f1[c] = 2 * tp + fp + fn ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : NAN;
        m->prec[c] = tp + fp ? (double)tp / (double)(tp + fp) : NAN;
        m->rec[c] = tp + fn ? (double)tp / (double)(tp + fn) : NAN;
        if (!isnan(m->iou[c])) s += m->iou[c], ns++;
        diag += tp;
    }
    for (int i = 0; i < K * K; i++) tot += r->conf[i];
    m->n = tot;
    m->acc = tot ? (double)diag / (double)tot : NAN;
    m->miou = ns ? s / ns : NAN;
}

static void json_str(FILE *f, const char *s)
{
    gseg__sbuf b = {0};
    gseg__sbuf_append_jstr(&b, s);
    char *t = gseg__sbuf_take(&b);
    fputs(t ? t : "\"\"", f);
    free(t);
}

static void json_num(FILE *f, double v)
{
    if (isnan(v)) fputs("null", f);
    else fprintf(f, "%.6f", v);
}

static void json_res(FILE *f, const evres *r, const char *const *cls)
{
    metrics m;
    derive(r, &m);
    fputs("{\"scene\": ", f);
    json_str(f, r->name);
    fprintf(f, ", \"pixels\": %lld, \"accuracy\": ", m.n);
    json_num(f, m.acc);
    fputs(", \"mean_iou\": ", f);
    json_num(f, m.miou);
    fputs(", \"classes\": [", f);
    for (int c = 0; c < r->K; c++) {
        fputs(c ? ", {\"name\": " : "{\"name\": ", f);
        json_str(f, cls[c]);
        fputs(", \"iou\": ", f);
        json_num(f, m.iou[c]);
        fputs(", \"f1\": ", f);
        json_num(f, m.f1[c]);
        fputs(", \"precision\": ", f);
        json_num(f, m.prec[c]);
        fputs(", \"recall\": ", f);
        json_num(f, m.rec[c]);
        fputs("}", f);
    }
    fputs("], \"confusion\": [", f);
    for (int i = 0; i < r->K; i++) {
        fputs(i ? ", [" : "[", f);
        for (int j = 0; j < r->K; j++) fprintf(f, "%s%lld", j ? ", " : "", r->conf[i * r->K + j]);
        fputs("]", f);
    }
    fprintf(f, "], \"glacier_km2_pred\": %.6f, \"glacier_km2_true\": %.6f, \"area_error_pct\": ",
            r->km2_pred, r->km2_true);
    json_num(f, r->km2_true > 0 ? 100 * (r->km2_pred - r->km2_true) / r->km2_true : NAN);
    fputs(", \"boundary_distance_m\": ", f);
    json_num(f, r->bdist_n ? r->bdist_sum / (double)r->bdist_n : NAN);
    fputs("}", f);
}

static void text_res(FILE *f, const evres *r)
{
    metrics m;
    derive(r, &m);
    fprintf(f, "%-24s %10lld %6.4f %6.4f %6.4f %6.4f %6.4f %6.4f %9.3f %9.3f %8.1f\n", r->name, m.n,
            m.acc, m.miou, m.iou[1], m.f1[1], m.prec[1], m.rec[1], r->km2_pred, r->km2_true,
            r->bdist_n ? r->bdist_sum / (double)r->bdist_n : NAN);
}

static const char usage[] =
    "Usage: gseg-evaluate [--model SPEC] [--data PATH] [--json FILE] [options]\n"
    "\n"
    "Predicts each labelled scene of PATH (default ./dataset/test: images/ + masks/,\n"
    "masks matched by file stem; or train/ + val/; folders, archives or VSI paths)\n"
    "with the model, as gseg-predict does, and compares with the truth: confusion\n"
    "matrix, IoU / F1 (Dice) / precision / recall per class, accuracy, mean IoU,\n"
    "glacier area predicted vs true, and the mean boundary distance in metres.\n"
    "\n"
    "  -m, --model SPEC    a .gseg model or ndsi:green=G,swir=S[,threshold=T]\n"
    "                      (default model.gseg)\n"
    "  --labels FILE       truth from glacier outlines (any OGR source, any CRS)\n"
    "                      burnt onto each scene's grid instead of masks; PATH may\n"
    "                      then be a plain folder of scenes\n"
    "  --label-field NAME  integer attribute holding the class (1..254; 0 carves\n"
    "                      background, 255 not labelled; default: all 1)\n"
    "  --json FILE         also write the report as JSON ('-': to stdout, and the\n"
    "                      table to stderr)\n"
    "  --save-masks DIR    keep the predicted masks there\n"
    "  --tile N, --overlap N, --threshold T, --device DEV, --precision P,\n"
    "  --threads N         as in gseg-predict\n"
    "  -q, --quiet         no progress\n"
    "  --config KEY VALUE  set a GDAL or gseg configuration option\n";

int gseg_evaluate_tool_main(int argc, char **argv)
{
    const char *model = "model.gseg", *data = NULL, *json = NULL, *keep = NULL;
    const char *labels = NULL, *label_field = NULL;
    gseg_predict_params pp = gseg_predict_params_default();
    int quiet = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(a, "-q") && strcmp(a, "--quiet") && strcmp(a, "-h") && strcmp(a, "--help");
        if (takes && !v) {
            fprintf(stderr, "gseg-evaluate: %s needs a value\nTry 'gseg-evaluate --help'.\n", a);
            return 2;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--model") || !strcmp(a, "-m")) model = argv[++i];
        else if (!strcmp(a, "--data")) data = argv[++i];
        else if (!strcmp(a, "--labels")) labels = argv[++i];
        else if (!strcmp(a, "--label-field")) label_field = argv[++i];
        else if (!strcmp(a, "--json")) json = argv[++i];
        else if (!strcmp(a, "--save-masks")) keep = argv[++i];
        else if (!strcmp(a, "--tile") || !strcmp(a, "--overlap") || !strcmp(a, "--threads")) {
            double x;
            if (!gseg__tool_num("gseg-evaluate", a, argv[++i], 0, 65536, &x)) return 2;
            if (x != floor(x)) {
                fprintf(stderr, "gseg-evaluate: %s: '%s' is not an integer\n", a, argv[i]);
                return 2;
            }
            if (!strcmp(a, "--tile")) pp.tile = (int)x;
            else if (!strcmp(a, "--overlap")) pp.overlap = (int)x;
            else pp.model_options.threads = (int)x;
        } else if (!strcmp(a, "--threshold")) {
            if (!gseg__tool_num("gseg-evaluate", a, argv[++i], -1e300, 1e300, &pp.threshold)) return 2;
        } else if (!strcmp(a, "--device")) pp.model_options.device = argv[++i];
        else if (!strcmp(a, "--precision")) {
            if (gseg_precision_parse(argv[++i], &pp.model_options.precision) != GSEG_OK) {
                fprintf(stderr, "gseg-evaluate: %s\n", gseg_last_error());
                return 2;
            }
        } else {
            fprintf(stderr, "gseg-evaluate: unknown option %s\nTry 'gseg-evaluate --help'.\n", a);
            return 2;
        }
    }
    if (label_field && !labels) {
        fprintf(stderr, "gseg-evaluate: --label-field needs --labels FILE\n");
        return 2;
    }
    if (!data) {
        VSIStatBufL sb;
        data = VSIStatL("dataset/test", &sb) == 0 ? "dataset/test" : "dataset";
    }
    /* Classes from the model. */
    gseg_model *m = NULL;
    gseg_status st = gseg_model_open(model, &pp.model_options, &m);
    if (st == GSEG_OK) gseg__model_inference_only(m);
    if (st != GSEG_OK) {
        fprintf(stderr, "gseg-evaluate: %s\n", gseg_last_error());
        return st == GSEG_ERR_ARG ? 2 : 1;
    }
    const char *const *cls = NULL;
    const unsigned char (*rgba)[4] = NULL;
    int K = gseg__model_classes(m, &cls, &rgba);
    if (K > MAXK) {
        fprintf(stderr, "gseg-evaluate: %d classes: at most %d\n", K, MAXK);
        gseg_model_free(m);
        return 1;
    }
    gseg__tdata d;
    st = gseg__tdata_discover(&d, data, !labels);
    if (st == GSEG_OK && labels && (st = gseg__tdata_labels(&d, labels, label_field)) != GSEG_OK)
        gseg__tdata_free(&d);
    char tmpdir[1024] = "";
    if (st == GSEG_OK && !keep) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/gseg-evaluate-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) st = gseg__err(GSEG_ERR_IO, "%s: cannot create a temporary folder", tmpdir);
    } else if (st == GSEG_OK) { /* --save-masks DIR: created, or the error names it */
        st = gseg__make_parent(CPLFormFilename(keep, "mask.tif", NULL));
    }
    int scene_failed = 0;
    evres *res = st == GSEG_OK ? gseg__calloc((size_t)d.n + 1, sizeof *res) : NULL;
    if (st == GSEG_OK && !res) st = GSEG_ERR_NOMEM;
    evres *all = res ? &res[d.n] : NULL;
    if (all) {
        snprintf(all->name, sizeof all->name, "all");
        all->K = K;
    }
    for (int i = 0; i < d.n && st == GSEG_OK; i++) {
        evres *r = &res[i];
        r->K = K;
        snprintf(r->name, sizeof r->name, "%s", CPLGetFilename(d.scenes[i].image));
        char out[2048];
        snprintf(out, sizeof out, "%s/%s_pred.tif", keep ? keep : tmpdir, CPLGetBasename(d.scenes[i].image));
        gseg_predict_params q = pp;
        q.model = model;
        q.model_handle = m; /* loaded once for all scenes */
        q.inputs = (const char *const *)&d.scenes[i].image;
        q.ninputs = 1;
        q.output = out;
        q.format = "GTiff";
        if (!quiet) fprintf(stderr, "%s\n", d.scenes[i].image);
        st = scene_fits(d.scenes[i].image, d.scenes[i].mask ? d.scenes[i].mask : d.scenes[i].image);
        if (st == GSEG_OK) st = gseg_predict(&q, NULL, NULL, NULL);
        if (st == GSEG_OK) st = compare(out, d.scenes[i].mask, d.scenes[i].image, K, r);
        scene_failed = st != GSEG_OK;
        if (!keep) {
            VSIUnlink(out);
            VSIUnlink(CPLSPrintf("%s.aux.xml", out));
            VSIUnlink(CPLResetExtension(out, "qml"));
        }
        for (int k = 0; k < K * K; k++) all->conf[k] += r->conf[k];
        all->km2_pred += r->km2_pred;
        all->km2_true += r->km2_true;
        all->bdist_sum += r->bdist_sum;
        all->bdist_n += r->bdist_n;
    }
    if (*tmpdir) rmdir(tmpdir);
    if (st != GSEG_OK) {
        fprintf(stderr, "gseg-evaluate: %s\n", gseg_last_error());
        /* a scene that cannot be used (wrong bands, say) is a failure like
         * in gseg-predict (1), not a usage error (2) */
        rc = st == GSEG_ERR_ARG && !scene_failed ? 2 : 1;
    } else {
        /* with --json -, stdout is the JSON alone (for jq); the table goes
         * to stderr, as gseg-predict --summary - does with its lines */
        FILE *t = json && !strcmp(json, "-") ? stderr : stdout;
        fprintf(t, "Model: %s\nData: %s (%d scenes)\n\n", model, data, d.n);
        fprintf(t, "%-24s %10s %6s %6s %6s %6s %6s %6s %9s %9s %8s\n", "scene", "pixels", "acc",
                "mIoU", "IoU1", "F1_1", "prec1", "rec1", "km2 pred", "km2 true", "bdist m");
        fprintf(t, "(class 1 = %s; bdist = mean boundary distance)\n", cls[1]);
        for (int i = 0; i <= d.n; i++) text_res(t, &res[i]);
        if (json) {
            FILE *f = strcmp(json, "-") ? fopen(json, "w") : stdout;
            if (!f) {
                fprintf(stderr, "gseg-evaluate: %s: cannot write\n", json);
                rc = 1;
            } else {
                fputs("{\"model\": ", f);
                json_str(f, model);
                fputs(", \"data\": ", f);
                json_str(f, data);
                fputs(", \"overall\": ", f);
                json_res(f, all, cls);
                fputs(", \"scenes\": [", f);
                for (int i = 0; i < d.n; i++) {
                    if (i) fputs(", ", f);
                    json_res(f, &res[i], cls);
                }
                fputs("]}\n", f);
                if (f != stdout) fclose(f);
            }
        }
    }
    free(res);
    gseg__tdata_free(&d);
    gseg_model_free(m);
    return rc;
}
