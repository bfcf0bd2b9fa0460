/*
 * cli.c — gseg-predict's command line, parsed into gseg_predict_params.
 * Lives in the library (as GDALTranslateOptionsNew does) so it is tested
 * without spawning processes, and so the tool's main stays a few lines.
 */
#include "predict.h"

#include <cpl_error.h>
#include <cpl_string.h>
#include <ogr_srs_api.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gseg_predict_cli {
    gseg_predict_params p;
    char **inputs;  /* CSL lists own the strings params point at */
    char **co;
    char **strs;
    int quiet, help, version;
    int band_files;        /* --band-file given: the inputs are one stack */
    const char *scene_list, *shard, *summary;
    int skip_existing;
};

static const char usage[] =
    "Usage: gseg-predict [--model SPEC] [--image_path] SCENE... [-o MASK]\n"
    "                    [--scene-list FILE] [--band-file FILE]...\n"
    "                    [--proba FILE] [--vector FILE] [-f FORMAT] [--quicklook FILE]\n"
    "                    [--min-area KM2] [--simplify M] [--t_srs SRS]\n"
    "                    [-of FORMAT] [-co KEY=VALUE]... [--tile N] [--overlap N]\n"
    "                    [--batch N] [--threads N] [--readers N] [--device DEV]\n"
    "                    [--precision P] [--tta] [--threshold T] [--resampling ALG]\n"
    "                    [--skip-existing] [--shard K/N] [--summary FILE]\n"
    "                    [-q] [--config KEY VALUE] [--help] [--version]\n"
    "\n"
    "Maps glaciers in satellite scenes and writes georeferenced masks (0 background,\n"
    "1 glacier or the model's classes, 255 nodata; Cloud-Optimized GeoTIFF by default).\n"
    "\n"
    "Model\n"
    "  --model SPEC        a .gseg network model file (see gseg-info), or\n"
    "                      ndsi:green=G,swir=S[,threshold=T] with G and S 1-based\n"
    "                      band numbers or band names (default threshold 0.4);\n"
    "                      default: $GSEG_MODEL, else ./model.gseg (gseg-train's output)\n"
    "Scenes\n"
    "  SCENE, --image_path SCENE...\n"
    "                      scenes to map: files (any GDAL path, incl. /vsizip/),\n"
    "                      folders (their raster files) or patterns ('L8/*.tif')\n"
    "  --scene-list FILE   one scene per line ('-' reads stdin; # comments)\n"
    "  --band-file FILE    stack files as the bands of ONE scene, in order, with the\n"
    "                      scene(s) given (repeatable); coarser files are resampled\n"
    "                      to the finest grid\n"
    "  --skip-existing     skip scenes whose outputs all exist (outputs are written\n"
    "                      atomically, so this resumes an interrupted run)\n"
    "  --shard K/N         map only scenes i with i mod N = K (default: from a Slurm\n"
    "                      job array, SLURM_ARRAY_TASK_ID/_MIN/_STEP/_COUNT)\n"
    "  --summary FILE      JSON summary of the run (scenes, pixels, glacier km2,\n"
    "                      timings, failures); '-' for stdout\n"
    "Outputs (FILE may be a template: {stem} {name} {ext} {dir} {index}, or a folder;\n"
    "several scenes need one)\n"
    "  -o, --output MASK   mask (default {dir}/{stem}_mask.tif beside the scene)\n"
    "  -of FORMAT          GDAL raster format of the mask and --proba (default COG)\n"
    "  -co KEY=VALUE       creation option for -of (repeatable)\n"
    "  --proba FILE        also write the blended model score (Float32): the glacier\n"
    "                      probability, one band per class for multi-class models,\n"
    "                      the NDSI itself for the NDSI baseline\n"
    "  --vector FILE       also write outlines (GeoPackage unless -f or the extension\n"
    "                      says otherwise), with area_km2 and perimeter_km computed on\n"
    "                      the ellipsoid\n"
    "  -f FORMAT           OGR vector format of --vector\n"
    "  --min-area KM2      drop outlines smaller than this (default 0.01 km2)\n"
    "  --simplify M        simplify outlines, preserving topology, tolerance in metres\n"
    "  --t_srs SRS         reproject outlines (EPSG:4326, WKT, PROJ string...)\n"
    "  --quicklook FILE    also write a PNG of the scene in natural colours with the\n"
    "                      outlines drawn on it\n"
    "  --quicklook-bands R,G,B  its bands (default: those named red, green, blue)\n"
    "  --quicklook-size N  its longer side in pixels (default 1024)\n"
    "Running\n"
    "  --tile N            tile size in pixels (default: the model's training tile,\n"
    "                      else 512)\n"
    "  --overlap N         tile overlap in pixels, blended smoothly (default: the\n"
    "                      model's, else tile/8)\n"
    "  --batch N           tiles per network call (default 4 on CPU, 16 on CUDA)\n"
    "  --threads N         network threads (default 0 = the CPUs this process may use)\n"
    "  --readers N         scene reader threads (default 2)\n"
    "  --device DEV        network device: cpu (default), cuda, cuda:N\n"
    "  --precision P       network precision: auto (default: bf16 on CPUs with\n"
    "                      avx512_bf16/AMX, else fp32; fp16 on CUDA), fp32, bf16, fp16\n"
    "  --tta               test-time augmentation: average 4 flipped passes (4x slower)\n"
    "  --threshold T       decision threshold on the score (default: the model's)\n"
    "  --resampling ALG    resampling of coarser stacked bands: nearest (default),\n"
    "                      bilinear, cubic, cubicspline, lanczos, average, mode\n"
    "  -q, --quiet         no progress and no result lines\n"
    "  --config KEY VALUE  set a GDAL configuration option (e.g. GDAL_CACHEMAX,\n"
    "                      GSEG_MAX_MEMORY)\n"
    "\n"
    "Exit status: 0 success, 1 failure (of any scene; the others still run),\n"
    "2 usage error.\n"
    "Examples:\n"
    "  gseg-predict --image_path scene.tif            (with ./model.gseg)\n"
    "  gseg-predict --model glaciers.gseg scenes/ -o 'out/{stem}_mask.tif' \\\n"
    "      --vector 'out/{stem}.gpkg' --skip-existing --summary out/run.json\n"
    "  gseg-predict --model ndsi:green=green,swir=swir1 scene.tif --vector scene.gpkg\n";

const char *gseg_predict_usage(void) { return usage; }

void gseg_predict_cli_free(gseg_predict_cli *c)
{
    if (!c) return;
    CSLDestroy(c->inputs);
    CSLDestroy(c->co);
    CSLDestroy(c->strs);
    free(c);
}

const gseg_predict_params *gseg_predict_cli_params(const gseg_predict_cli *c) { return &c->p; }
int gseg_predict_cli_quiet(const gseg_predict_cli *c) { return c->quiet; }
int gseg_predict_cli_help(const gseg_predict_cli *c) { return c->help; }
int gseg_predict_cli_version(const gseg_predict_cli *c) { return c->version; }

static gseg_status parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    return gseg__arg_int(opt, v, lo, hi, out);
}

static gseg_status parse_double(const char *opt, const char *v, double lo, double *out)
{
    return gseg__arg_double(opt, v, lo, HUGE_VAL, out);
}

/* Keeps a copy of s alive as long as c; returns it. */
static const char *keep(gseg_predict_cli *c, const char *s)
{
    c->strs = CSLAddString(c->strs, s);
    return c->strs[CSLCount(c->strs) - 1];
}

static gseg_status check_values(const gseg_predict_cli *c);

gseg_status gseg_predict_cli_parse(int argc, char **argv, gseg_predict_cli **out)
{
    if (!out) return gseg__err(GSEG_ERR_ARG, "cli: NULL output");
    *out = NULL;
    gseg_predict_cli *c = gseg__calloc(1, sizeof *c);
    if (!c) return GSEG_ERR_NOMEM;
    c->p = gseg_predict_params_default();
    gseg_status st = GSEG_OK;

    for (int i = 1; i < argc && st == GSEG_OK; i++) {
        const char *a = argv[i];
        /* options taking one value */
#define VALUE()                                                                          \
    (i + 1 < argc ? argv[++i]                                                             \
                  : (st = gseg__err(GSEG_ERR_ARG, "option %s needs a value", a), (char *)NULL))
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            c->help = 1;
            break;
        } else if (strcmp(a, "--version") == 0) {
            c->version = 1;
            break;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            c->quiet = 1;
        } else if (strcmp(a, "--model") == 0 || strcmp(a, "-m") == 0) {
            const char *v = VALUE();
            if (v) c->p.model = keep(c, v);
        } else if (strcmp(a, "--image_path") == 0 || strcmp(a, "--image-path") == 0) {
            int n = 0;
            while (i + 1 < argc && (argv[i + 1][0] != '-' || argv[i + 1][1] == '\0')) {
                c->inputs = CSLAddString(c->inputs, argv[++i]);
                n++;
            }
            if (n == 0) st = gseg__err(GSEG_ERR_ARG, "option %s needs a value", a);
        } else if (strcmp(a, "--band-file") == 0) {
            const char *v = VALUE();
            if (v) c->inputs = CSLAddString(c->inputs, v);
            c->band_files = 1;
        } else if (strcmp(a, "--scene-list") == 0) {
            const char *v = VALUE();
            if (v) c->scene_list = keep(c, v);
        } else if (strcmp(a, "--skip-existing") == 0) {
            c->skip_existing = 1;
        } else if (strcmp(a, "--shard") == 0) {
            const char *v = VALUE();
            int k, n;
            if (v) st = gseg__shard_parse(v, &k, &n);
            if (v && st == GSEG_OK) c->shard = keep(c, v);
        } else if (strcmp(a, "--summary") == 0) {
            const char *v = VALUE();
            if (v) c->summary = keep(c, v);
        } else if (strcmp(a, "--batch") == 0) {
            const char *v = VALUE();
            if (v) st = parse_int(a, v, 1, 4096, &c->p.batch);
        } else if (strcmp(a, "--readers") == 0) {
            const char *v = VALUE();
            if (v) st = parse_int(a, v, 1, 64, &c->p.readers);
        } else if (strcmp(a, "--tta") == 0) {
            c->p.model_options.tta = 1;
        } else if (strcmp(a, "--quicklook") == 0) {
            const char *v = VALUE();
            if (v) c->p.quicklook = keep(c, v);
        } else if (strcmp(a, "--quicklook-bands") == 0) {
            const char *v = VALUE();
            if (v) c->p.quicklook_bands = keep(c, v);
        } else if (strcmp(a, "--quicklook-size") == 0) {
            const char *v = VALUE();
            if (v) st = parse_int(a, v, 16, 16384, &c->p.quicklook_size);
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            const char *v = VALUE();
            if (v) c->p.output = keep(c, v);
        } else if (strcmp(a, "-of") == 0) {
            const char *v = VALUE();
            if (v) c->p.format = keep(c, v);
        } else if (strcmp(a, "-co") == 0) {
            const char *v = VALUE();
            if (v && !strchr(v, '='))
                st = gseg__err(GSEG_ERR_ARG, "-co: '%s' is not KEY=VALUE", v);
            else if (v)
                c->co = CSLAddString(c->co, v);
        } else if (strcmp(a, "--proba") == 0) {
            const char *v = VALUE();
            if (v) c->p.proba = keep(c, v);
        } else if (strcmp(a, "--vector") == 0) {
            const char *v = VALUE();
            if (v) c->p.vector = keep(c, v);
        } else if (strcmp(a, "-f") == 0) {
            const char *v = VALUE();
            if (v) c->p.vector_format = keep(c, v);
        } else if (strcmp(a, "--min-area") == 0) {
            const char *v = VALUE();
            if (v) st = parse_double(a, v, 0, &c->p.min_area_km2);
        } else if (strcmp(a, "--simplify") == 0) {
            const char *v = VALUE();
            if (v) st = parse_double(a, v, 0, &c->p.simplify_m);
        } else if (strcmp(a, "--t_srs") == 0 || strcmp(a, "--t-srs") == 0) {
            const char *v = VALUE();
            if (v) c->p.t_srs = keep(c, v);
        } else if (strcmp(a, "--tile") == 0) {
            const char *v = VALUE();
            if (v) st = parse_int(a, v, 8, 16384, &c->p.tile);
        } else if (strcmp(a, "--overlap") == 0) {
            const char *v = VALUE();
            if (v) st = parse_int(a, v, 0, 16383, &c->p.overlap);
        } else if (strcmp(a, "--threshold") == 0) {
            const char *v = VALUE();
            if (v) st = parse_double(a, v, -HUGE_VAL, &c->p.threshold);
        } else if (strcmp(a, "--device") == 0) {
            const char *v = VALUE();
            if (v) c->p.model_options.device = keep(c, v);
        } else if (strcmp(a, "--precision") == 0) {
            const char *v = VALUE();
            if (v) st = gseg_precision_parse(v, &c->p.model_options.precision);
        } else if (strcmp(a, "--threads") == 0) {
            const char *v = VALUE();
            if (v) st = parse_int(a, v, 0, 1024, &c->p.model_options.threads);
        } else if (strcmp(a, "--resampling") == 0 || strcmp(a, "-r") == 0) {
            const char *v = VALUE();
            if (v) c->p.resampling = keep(c, v);
        } else if (a[0] == '-' && a[1] != '\0') {
            st = gseg__err(GSEG_ERR_ARG, "unknown option %s", a);
        } else {
            c->inputs = CSLAddString(c->inputs, a); /* positional scene file */
        }
#undef VALUE
    }
    if (st == GSEG_OK && !c->help && !c->version) {
        if (CSLCount(c->inputs) == 0 && !c->scene_list)
            st = gseg__err(GSEG_ERR_ARG, "no input scene given (--image_path SCENE)");
        else if (c->band_files && c->scene_list)
            st = gseg__err(GSEG_ERR_ARG, "--band-file stacks one scene; it does not combine "
                                         "with --scene-list (stack band files in a VRT: "
                                         "gdalbuildvrt -separate)");
        else if (c->p.tile > 0 && c->p.overlap >= c->p.tile)
            st = gseg__err(GSEG_ERR_ARG, "--overlap %d must be smaller than --tile %d",
                           c->p.overlap, c->p.tile);
        else
            st = check_values(c);
    }
    if (st != GSEG_OK) {
        gseg_predict_cli_free(c);
        return st;
    }
    c->p.inputs = (const char *const *)c->inputs;
    c->p.ninputs = CSLCount(c->inputs);
    c->p.create_options = (const char *const *)c->co;
    *out = c;
    return GSEG_OK;
}

/* Values that would fail every scene alike are usage errors, found before
 * any work: the output format, the device, the resampling, the outlines'
 * CRS. */
static gseg_status check_values(const gseg_predict_cli *c)
{
    const char *of = c->p.format && *c->p.format ? c->p.format : "COG";
    gseg_status st = gseg__writer_check(of, (const char *const *)c->co, 1);
    if (st != GSEG_OK) return st;
    if (c->p.model_options.device && (st = gseg_device_check(c->p.model_options.device)))
        return st;
    if (c->p.resampling && *c->p.resampling && (st = gseg__resampling_check(c->p.resampling)))
        return st;
    if (c->p.t_srs && *c->p.t_srs) {
        OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
        CPLPushErrorHandler(CPLQuietErrorHandler);
        OGRErr e = OSRSetFromUserInput(srs, c->p.t_srs);
        CPLPopErrorHandler();
        OSRDestroySpatialReference(srs);
        if (e != OGRERR_NONE)
            return gseg__err(GSEG_ERR_ARG, "--t_srs '%s': not a CRS GDAL knows", c->p.t_srs);
    }
    return GSEG_OK;
}

int gseg_predict_tool_main(int argc, char **argv)
{
    gseg_predict_cli *c = NULL;
    gseg_status st = gseg_predict_cli_parse(argc, argv, &c);
    if (st != GSEG_OK) {
        fprintf(stderr, "gseg-predict: %s\nTry 'gseg-predict --help'.\n", gseg_last_error());
        return st == GSEG_ERR_ARG ? 2 : 1;
    }
    if (c->help) {
        fputs(usage, stdout);
        gseg_predict_cli_free(c);
        return 0;
    }
    gseg__batch b;
    memset(&b, 0, sizeof b);
    b.p = c->p;
    b.inputs = (const char *const *)c->inputs;
    b.ninputs = CSLCount(c->inputs);
    b.stack = c->band_files;
    b.scene_list = c->scene_list;
    b.skip_existing = c->skip_existing;
    b.shard = c->shard;
    b.summary = c->summary;
    b.quiet = c->quiet;
    b.tool = "gseg-predict";
    int rc = gseg__predict_batch(&b, c->quiet ? NULL : gseg_term_progress, NULL);
    gseg_predict_cli_free(c);
    return rc;
}
