/*
 * cli.c — gseg-predict's command line, parsed into gseg_predict_params.
 * Lives in the library (as GDALTranslateOptionsNew does) so it is tested
 * without spawning processes, and so the tool's main stays a few lines.
 */
#include "internal.h"

#include <cpl_string.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct gseg_predict_cli {
    gseg_predict_params p;
    char **inputs;  /* CSL lists own the strings params point at */
    char **co;
    char **strs;
    int quiet, help, version;
};

static const char usage[] =
    "Usage: gseg-predict --model SPEC --image_path SCENE [SCENE...] [-o MASK]\n"
    "                    [--band-file FILE]... [--proba FILE] [--vector FILE] [-f FORMAT]\n"
    "                    [--min-area KM2] [--simplify M] [--t_srs SRS]\n"
    "                    [-of FORMAT] [-co KEY=VALUE]... [--tile N] [--overlap N]\n"
    "                    [--threshold T] [--resampling ALG] [--device DEV]\n"
    "                    [--precision P] [--threads N] [-q] [--config KEY VALUE]\n"
    "                    [--help] [--version]\n"
    "\n"
    "Maps glaciers in a satellite scene and writes a georeferenced mask\n"
    "(0 background, 1 glacier, 255 nodata; a Cloud-Optimized GeoTIFF by default).\n"
    "\n"
    "  --model SPEC        the model: a .gseg network model file (see gseg-info), or\n"
    "                      ndsi:green=G,swir=S[,threshold=T] with G and S 1-based\n"
    "                      band numbers or band names (default threshold 0.4);\n"
    "                      e.g. ndsi:green=3,swir=6 for a Landsat 8 stack B1..B7\n"
    "  --image_path SCENE  the scene; several files are stacked as bands in order\n"
    "                      (Landsat/Sentinel-2 band files; coarser bands are resampled\n"
    "                      to the finest grid). SCENE may be any GDAL path, incl. /vsizip/\n"
    "  --band-file FILE    add one file to the band stack (repeatable)\n"
    "  -o, --output MASK   mask path (default: <scene>_mask.tif beside the scene)\n"
    "  -of FORMAT          GDAL raster format of the mask and --proba (default COG)\n"
    "  -co KEY=VALUE       creation option for -of (repeatable)\n"
    "  --proba FILE        also write the blended model score (Float32; for NDSI the\n"
    "                      NDSI itself)\n"
    "  --vector FILE       also write glacier outlines (GeoPackage unless -f or the\n"
    "                      extension says otherwise), with area_km2 and perimeter_km\n"
    "                      computed on the ellipsoid\n"
    "  -f FORMAT           OGR vector format of --vector\n"
    "  --min-area KM2      drop outlines smaller than this (default 0.01 km2)\n"
    "  --simplify M        simplify outlines, preserving topology, tolerance in metres\n"
    "  --t_srs SRS         reproject outlines (EPSG:4326, WKT, PROJ string...)\n"
    "  --tile N            tile size in pixels (default: the model's training tile,\n"
    "                      else 512)\n"
    "  --overlap N         tile overlap in pixels, blended smoothly (default: the\n"
    "                      model's, else tile/8)\n"
    "  --threshold T       decision threshold on the score (default: the model's)\n"
    "  --resampling ALG    resampling of coarser stacked bands (default nearest)\n"
    "  --device DEV        network device: cpu (default), cuda, cuda:N\n"
    "  --precision P       network precision: auto (default: bf16 on CPUs with\n"
    "                      avx512_bf16/AMX, else fp32; fp16 on CUDA), fp32, bf16, fp16\n"
    "  --threads N         network threads (default 0 = all cores)\n"
    "  -q, --quiet         no progress output\n"
    "  --config KEY VALUE  set a GDAL configuration option (e.g. GDAL_CACHEMAX,\n"
    "                      GSEG_MAX_MEMORY)\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n"
    "Example:\n"
    "  gseg-predict --model ndsi:green=green,swir=swir1 --image_path scene.tif \\\n"
    "      -o scene_mask.tif --vector scene_outlines.gpkg\n";

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
        if (CSLCount(c->inputs) == 0)
            st = gseg__err(GSEG_ERR_ARG, "no input scene given (--image_path SCENE)");
        else if (c->p.tile > 0 && c->p.overlap >= c->p.tile)
            st = gseg__err(GSEG_ERR_ARG, "--overlap %d must be smaller than --tile %d",
                           c->p.overlap, c->p.tile);
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
