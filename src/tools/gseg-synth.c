/* gseg-synth — synthetic Landsat-8-like glacier scenes with truth masks, one
 * scene or a train/test data set. A small dev tool, so its option parsing
 * lives here rather than in the library. */
#include "gseg.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: gseg-synth [--size N | --width W --height H] [--seed S]\n"
    "                  [--pixel-size M] [--epsg CODE] [--origin X Y]\n"
    "                  [--snowline M] [--clouds F] [--snow F]\n"
    "                  [--outlines FILE.gpkg] [-q]\n"
    "                  IMAGE.tif MASK.tif\n"
    "       gseg-synth --dataset DIR [--train N] [--test N] [scene options]\n"
    "       gseg-synth --help | --version\n"
    "\n"
    "Writes a synthetic Landsat-8-like glacier scene: IMAGE.tif holds bands blue,\n"
    "green, red, nir, swir1, swir2 (UInt16 reflectance x 10000) and elevation\n"
    "(UInt16 metres); MASK.tif the truth (Byte, 1 = glacier incl. debris cover).\n"
    "Their folders must exist; --dataset creates its own.\n"
    "\n"
    "  --size N          N x N pixels (default 512)\n"
    "  --width W, --height H\n"
    "  --seed S          random seed (default 1); same seed, same files\n"
    "  --pixel-size M    metres (default 30)\n"
    "  --epsg CODE       projected CRS (default 32643, UTM 43N)\n"
    "  --origin X Y      upper-left corner in CRS units (default 500000 4000000)\n"
    "  --snowline M      equilibrium-line altitude (default 4800)\n"
    "  --clouds F        cloud cover fraction 0..1 (default 0.1)\n"
    "  --snow F          seasonal snow fraction 0..1 (default 0.3)\n"
    "  --outlines FILE   truth outlines (GeoPackage)\n"
    "  --dataset DIR     write DIR/{train,test}/{images,masks}/scene_NNN.tif and\n"
    "                    DIR/outlines/{train,test}_scene_NNN.gpkg; scene k (train\n"
    "                    first, counted from 0) uses seed S+k and its own origin\n"
    "  --train N, --test N  scenes per split (default 6 and 2)\n"
    "  -q, --quiet       no progress\n"
    "  --config KEY VALUE and the other GDAL general options are accepted.\n";

typedef struct opts {
    gseg_synth_params p;
    const char *image, *mask, *outlines, *dataset;
    int ntrain, ntest, quiet, help;
} opts;

static int fail_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "gseg-synth: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'gseg-synth --help'.\n");
    return 2;
}

static int to_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int to_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

/* Returns 0 or the exit code of a usage error (already reported). */
static int parse(int argc, char **argv, opts *o)
{
    o->p = gseg_synth_params_default();
    o->ntrain = 6;
    o->ntest = 2;
    const char *pos[2];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        long l;
        double d;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            o->help = 1;
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = 1;
        } else if (!strcmp(a, "--size") || !strcmp(a, "--width") || !strcmp(a, "--height") ||
                   !strcmp(a, "--train") || !strcmp(a, "--test") || !strcmp(a, "--epsg")) {
            if (!has || !to_long(argv[++i], 0, INT_MAX, &l))
                return fail_usage("%s needs a non-negative integer", a);
            if (!strcmp(a, "--size")) o->p.width = o->p.height = (int)l;
            else if (!strcmp(a, "--width")) o->p.width = (int)l;
            else if (!strcmp(a, "--height")) o->p.height = (int)l;
            else if (!strcmp(a, "--train")) o->ntrain = (int)l;
            else if (!strcmp(a, "--test")) o->ntest = (int)l;
            else o->p.epsg = (int)l;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            if (!has || argv[i + 1][0] == '-') return fail_usage("%s needs a non-negative integer", a);
            o->p.seed = strtoul(argv[++i], &end, 10);
            if (errno || *end || end == argv[i]) return fail_usage("%s needs a non-negative integer", a);
        } else if (!strcmp(a, "--pixel-size") || !strcmp(a, "--snowline") ||
                   !strcmp(a, "--clouds") || !strcmp(a, "--snow")) {
            if (!has || !to_double(argv[++i], &d)) return fail_usage("%s needs a number", a);
            if (!strcmp(a, "--pixel-size")) o->p.pixel_size = d;
            else if (!strcmp(a, "--snowline")) o->p.snowline_m = d;
            else if (!strcmp(a, "--clouds")) o->p.cloud_cover = d;
            else o->p.seasonal_snow = d;
        } else if (!strcmp(a, "--origin")) {
            if (i + 2 >= argc || !to_double(argv[i + 1], &o->p.origin_x) ||
                !to_double(argv[i + 2], &o->p.origin_y))
                return fail_usage("%s needs two numbers X Y", a);
            i += 2;
        } else if (!strcmp(a, "--outlines") || !strcmp(a, "--dataset")) {
            if (!has) return fail_usage("%s needs a path", a);
            if (!strcmp(a, "--outlines")) o->outlines = argv[++i];
            else o->dataset = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return fail_usage("unknown option %s", a);
        } else {
            if (npos == 2) return fail_usage("unexpected argument %s", a);
            pos[npos++] = a;
        }
    }
    if (o->dataset) {
        if (npos) return fail_usage("--dataset takes no IMAGE/MASK arguments (got %s)", pos[0]);
        if (o->outlines) return fail_usage("%s", "--outlines cannot be combined with --dataset");
        if (o->ntrain + (long)o->ntest < 1 || o->ntrain + (long)o->ntest > 100000)
            return fail_usage("%s", "--train + --test must be between 1 and 100000");
    } else if (npos != 2) {
        return fail_usage("%s", "IMAGE.tif and MASK.tif are required");
    }
    if (npos == 2) {
        o->image = pos[0];
        o->mask = pos[1];
    }
    return 0;
}

/* mkdir -p (VSIMkdirRecursive of GDAL < 3.8 fails on relative paths). */
static int mkdirs(const char *path)
{
    char *p = CPLStrdup(path);
    VSIStatBufL sb;
    int ok = 1;
    for (char *c = p + 1; ok; c++) {
        if (*c != '/' && *c != '\0') continue;
        char end = *c;
        *c = '\0';
        if (VSIStatL(p, &sb) != 0) VSIMkdir(p, 0755);
        ok = VSIStatL(p, &sb) == 0 && VSI_ISDIR(sb.st_mode);
        *c = end;
        if (!end) break;
    }
    if (!ok) fprintf(stderr, "gseg-synth: %s: cannot create folder\n", path);
    CPLFree(p);
    return ok;
}

/* Scene k of a data set: seed S+k and a tile of a grid of non-overlapping
 * footprints (1 km apart) starting at the given origin. */
static gseg_status dataset(const opts *o)
{
    static const char *split[2] = {"train", "test"};
    const char *dir = o->dataset;
    const char *sub[] = {"train/images", "train/masks", "test/images", "test/masks", "outlines"};
    for (int i = 0; i < 5; i++) {
        if (i < 4 && (i < 2 ? o->ntrain : o->ntest) == 0) continue;
        if (!mkdirs(CPLFormFilename(dir, sub[i], NULL))) return GSEG_ERR_IO;
    }
    int total = o->ntrain + o->ntest;
    int ncols = (int)ceil(sqrt((double)total));
    double stepx = o->p.width * o->p.pixel_size + 1000.0;
    double stepy = o->p.height * o->p.pixel_size + 1000.0;
    for (int k = 0; k < total; k++) {
        int s = k < o->ntrain ? 0 : 1, idx = (s ? k - o->ntrain : k) + 1;
        gseg_synth_params p = o->p;
        p.seed = o->p.seed + (unsigned long)k;
        p.origin_x = o->p.origin_x + (k % ncols) * stepx;
        p.origin_y = o->p.origin_y - (k / ncols) * stepy;
        char *img = CPLStrdup(CPLSPrintf("%s/%s/images/scene_%03d.tif", dir, split[s], idx));
        char *msk = CPLStrdup(CPLSPrintf("%s/%s/masks/scene_%03d.tif", dir, split[s], idx));
        char *out = CPLStrdup(CPLSPrintf("%s/outlines/%s_scene_%03d.gpkg", dir, split[s], idx));
        gseg_status st = gseg_synth_scene(&p, img, msk, out);
        CPLFree(img);
        CPLFree(msk);
        CPLFree(out);
        if (st != GSEG_OK) return st;
        if (!o->quiet) GDALTermProgress((k + 1.0) / total, NULL, NULL);
    }
    return GSEG_OK;
}

/* GDAL errors come back in gseg_last_error(), printed once on one line;
 * warnings are shown as they come. */
static void CPL_STDCALL on_cpl_error(CPLErr cls, CPLErrorNum num, const char *msg)
{
    (void)num;
    if (cls == CE_Warning) fprintf(stderr, "gseg-synth: warning: %s\n", msg);
}

static void on_signal(int sig)
{
    gseg_remove_temp_files();
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(int argc, char **argv)
{
    gseg_init();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--version") == 0) {
            printf("gseg-synth %s (%s)\n", gseg_version(), GDALVersionInfo("--version"));
            return 0;
        }
    argc = GDALGeneralCmdLineProcessor(argc, &argv, 0);
    if (argc < 1) return argc == 0 ? 0 : 2;
    CPLSetErrorHandler(on_cpl_error);

    opts o;
    memset(&o, 0, sizeof o);
    int rc = parse(argc, argv, &o);
    if (rc == 0 && o.help) {
        fputs(usage, stdout);
    } else if (rc == 0) {
        gseg_status st = o.dataset ? dataset(&o)
                                   : gseg_synth_scene(&o.p, o.image, o.mask, o.outlines);
        if (st != GSEG_OK) {
            if (*gseg_last_error()) fprintf(stderr, "gseg-synth: %s\n", gseg_last_error());
            rc = st == GSEG_ERR_ARG ? 2 : 1;
        }
    }
    CSLDestroy(argv);
    GDALDestroyDriverManager();
    return rc;
}
