/*
 * modeltools.c — gseg-import, gseg-export and gseg-info as library
 * functions (argument parsing and running), so that their mains are thin
 * and the tests can drive them in-process.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXB 1024

typedef struct strlist {
    char *copy;
    const char *v[MAXB];
    int n;
} strlist;

/* Splits "a,b,c" in place into l. */
static gseg_status split(const char *opt, const char *s, strlist *l)
{
    free(l->copy);
    l->copy = gseg__strdup(s);
    l->n = 0;
    if (!l->copy) return GSEG_ERR_NOMEM;
    for (char *save = NULL, *t = strtok_r(l->copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (l->n == MAXB) return gseg__err(GSEG_ERR_ARG, "%s: more than %d values", opt, MAXB);
        l->v[l->n++] = t;
    }
    if (l->n == 0) return gseg__err(GSEG_ERR_ARG, "%s: empty list", opt);
    return GSEG_OK;
}

static gseg_status numbers(const char *opt, const strlist *l, double *out)
{
    for (int i = 0; i < l->n; i++) {
        char *end = NULL;
        errno = 0;
        out[i] = strtod(l->v[i], &end);
        if (end == l->v[i] || *end || errno || !isfinite(out[i]))
            return gseg__err(GSEG_ERR_ARG, "%s: '%s' is not a number", opt, l->v[i]);
    }
    return GSEG_OK;
}

static gseg_status integer(const char *opt, const char *s, long lo, long hi, long *out)
{
    return gseg__arg_long(opt, s, lo, hi, out);
}

static const char kImportUsage[] =
    "Usage: gseg-import WEIGHTS -o MODEL.gseg [options]\n"
    "       gseg-import --init-encoder FILE --bands LIST -o MODEL.gseg [options]\n"
    "\n"
    "Makes a gseg model file from a segmentation-models-pytorch Unet state dict\n"
    "(safetensors, or a torch.save file libtorch can read), or a new model whose\n"
    "encoder starts from a torchvision ResNet state dict (e.g. ImageNet weights).\n"
    "Encoder, band count and classes come from the weights unless given.\n"
    "\n"
    "  -o, --out FILE         the model file to write (.gseg)\n"
    "  --init-encoder FILE    torchvision ResNet state dict for the encoder; the\n"
    "                         decoder is freshly initialised\n"
    "  --encoder NAME         resnet18|resnet34|resnet50|resnet101|resnet152\n"
    "                         (with --init-encoder; default: from the file)\n"
    "  --bands LIST           input band selectors in order, e.g. B2,B3,B4,B8,B11,B12\n"
    "                         or a count; a count different from the weights'\n"
    "                         adapts the first convolution (SMP's patch_first_conv)\n"
    "  --mean LIST, --std LIST  per-band normalisation x' = (x - mean) / std\n"
    "  --classes LIST         class names of the mask values (default\n"
    "                         background,glacier)\n"
    "  --tile N, --overlap N  tiling the model was trained with (256, 32)\n"
    "  --threshold T          decision threshold of a binary model (0.5)\n"
    "  --seed N               initialisation of new weights (0)\n"
    "  -q, --quiet            no summary line\n";

static const char kExportUsage[] =
    "Usage: gseg-export MODEL.gseg -o OUT.safetensors [-q]\n"
    "\n"
    "Writes the model's weights as a bare safetensors state dict under\n"
    "segmentation-models-pytorch's names, for\n"
    "  model.load_state_dict(safetensors.torch.load_file(\"OUT.safetensors\"))\n"
    "(a .gseg file is itself a safetensors file; export drops gseg's metadata).\n";

static const char kInfoUsage[] =
    "Usage: gseg-info MODEL [--json]\n"
    "\n"
    "Prints a model's architecture, input bands and normalisation, classes,\n"
    "tiling, threshold and provenance.\n";

static int usage_error(const char *tool)
{
    fprintf(stderr, "%s: %s\nTry '%s --help'.\n", tool, gseg_last_error(), tool);
    return 2;
}

static int run_error(const char *tool, gseg_status st)
{
    fprintf(stderr, "%s: %s\n", tool, gseg_last_error());
    return st == GSEG_ERR_ARG ? 2 : 1;
}

#define NEED_ARG()                                                                   \
    do {                                                                             \
        if (i + 1 >= argc) {                                                         \
            gseg__err(GSEG_ERR_ARG, "%s needs a value", a);                          \
            goto usage;                                                              \
        }                                                                            \
    } while (0)

static int tool_import(int argc, char **argv)
{
    const char *tool = "gseg-import";
    const char *weights = NULL, *init = NULL, *out = NULL;
    strlist bands = {0}, means = {0}, stds = {0}, classes = {0};
    double *mean = NULL, *sd = NULL;
    int quiet = 0, rc = 0;
    gseg_model_def def = gseg_model_def_default();
    def.encoder = NULL;
    def.nclasses = 0;
    def.overlap = -1;
    long v;
    gseg_model *m = NULL;
    gseg_status st = GSEG_OK;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(kImportUsage, stdout);
            goto done;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            NEED_ARG();
            out = argv[++i];
        } else if (!strcmp(a, "--init-encoder")) {
            NEED_ARG();
            init = argv[++i];
        } else if (!strcmp(a, "--encoder")) {
            NEED_ARG();
            def.encoder = argv[++i];
        } else if (!strcmp(a, "--bands")) {
            NEED_ARG();
            if ((st = split(a, argv[++i], &bands)) != GSEG_OK) goto usage;
        } else if (!strcmp(a, "--mean")) {
            NEED_ARG();
            if ((st = split(a, argv[++i], &means)) != GSEG_OK) goto usage;
        } else if (!strcmp(a, "--std")) {
            NEED_ARG();
            if ((st = split(a, argv[++i], &stds)) != GSEG_OK) goto usage;
        } else if (!strcmp(a, "--classes")) {
            NEED_ARG();
            if ((st = split(a, argv[++i], &classes)) != GSEG_OK) goto usage;
        } else if (!strcmp(a, "--tile")) {
            NEED_ARG();
            if (integer(a, argv[++i], 32, 65536, &v) != GSEG_OK) goto usage;
            def.tile = (int)v;
        } else if (!strcmp(a, "--overlap")) {
            NEED_ARG();
            if (integer(a, argv[++i], 0, 65535, &v) != GSEG_OK) goto usage;
            def.overlap = (int)v;
        } else if (!strcmp(a, "--threshold")) {
            NEED_ARG();
            char *end = NULL;
            def.threshold = strtod(argv[++i], &end);
            if (*end || !(def.threshold > 0 && def.threshold < 1)) {
                gseg__err(GSEG_ERR_ARG, "--threshold '%s' must be in (0, 1)", argv[i]);
                goto usage;
            }
        } else if (!strcmp(a, "--seed")) {
            NEED_ARG();
            if (integer(a, argv[++i], 0, 2147483647L, &v) != GSEG_OK) goto usage;
            def.seed = (unsigned long long)v;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            gseg__err(GSEG_ERR_ARG, "unknown option %s", a);
            goto usage;
        } else if (!weights) {
            weights = a;
        } else {
            gseg__err(GSEG_ERR_ARG, "one weights file only ('%s' and '%s')", weights, a);
            goto usage;
        }
    }
    if (!out) {
        gseg__err(GSEG_ERR_ARG, "no output model given (-o MODEL.gseg)");
        goto usage;
    }
    if (!weights == !init) {
        gseg__err(GSEG_ERR_ARG, weights ? "give WEIGHTS or --init-encoder, not both"
                                        : "no weights given (WEIGHTS or --init-encoder FILE)");
        goto usage;
    }
    if (bands.n == 1 && integer("--bands", bands.v[0], 1, MAXB, &v) == GSEG_OK) {
        def.nbands = (int)v;
    } else if (bands.n) {
        def.nbands = bands.n;
        def.bands = bands.v;
    }
    if (init && !def.nbands) {
        gseg__err(GSEG_ERR_ARG, "--init-encoder needs --bands (the model's input bands)");
        goto usage;
    }
    if ((means.n && means.n != def.nbands) || (stds.n && stds.n != def.nbands)) {
        gseg__err(GSEG_ERR_ARG, "--mean and --std need one value per band (%d)", def.nbands);
        goto usage;
    }
    mean = calloc((size_t)def.nbands + 1, sizeof *mean);
    sd = calloc((size_t)def.nbands + 1, sizeof *sd);
    if (!mean || !sd) {
        st = gseg__err(GSEG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (means.n && numbers("--mean", &means, mean) != GSEG_OK) goto usage;
    if (stds.n && numbers("--std", &stds, sd) != GSEG_OK) goto usage;
    def.mean = means.n ? mean : NULL;
    def.std = stds.n ? sd : NULL;
    if (classes.n) {
        def.nclasses = classes.n;
        def.classes = classes.v;
    }

    if (weights) {
        st = gseg_model_import(weights, &def, NULL, &m);
    } else {
        if (!def.encoder) def.encoder = "resnet50";
        st = gseg_model_new(&def, NULL, &m);
        if (st == GSEG_OK) st = gseg_model_init_encoder(m, init);
        if (st == GSEG_OK) {
            char *prov = NULL;
            size_t n = strlen(init) * 2 + 160;
            prov = malloc(n);
            if (prov) {
                /* A JSON string for the path: escape quotes and backslashes. */
                char *p = prov;
                p += sprintf(p, "{\"gseg_version\": \"%s\", \"source\": \"encoder from ", gseg_version());
                for (const char *c = init; *c; c++) {
                    if (*c == '"' || *c == '\\') *p++ = '\\';
                    *p++ = (unsigned char)*c < 0x20 ? ' ' : *c;
                }
                sprintf(p, "; decoder initialised (seed %llu)\"}", def.seed);
                st = gseg_model_set_provenance(m, prov);
                free(prov);
            }
        }
    }
    if (st == GSEG_OK) st = gseg_model_save(m, out);
    if (st != GSEG_OK) goto fail;
    if (!quiet)
        printf("%s: %s U-Net, %d band%s, %d output%s\n", out,
               gseg_model_encoder(m),
               gseg_model_nbands(m), gseg_model_nbands(m) == 1 ? "" : "s", gseg_model_nscores(m),
               gseg_model_nscores(m) == 1 ? "" : "s");
    goto done;
usage:
    rc = usage_error(tool);
    goto done;
fail:
    rc = run_error(tool, st);
done:
    gseg_model_free(m);
    free(mean);
    free(sd);
    free(bands.copy);
    free(means.copy);
    free(stds.copy);
    free(classes.copy);
    return rc;
}

static int tool_export(int argc, char **argv)
{
    const char *tool = "gseg-export", *in = NULL, *out = NULL;
    int quiet = 0, rc = 0;
    gseg_model *m = NULL;
    gseg_status st;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(kExportUsage, stdout);
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            NEED_ARG();
            out = argv[++i];
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            gseg__err(GSEG_ERR_ARG, "unknown option %s", a);
            goto usage;
        } else if (!in) {
            in = a;
        } else {
            gseg__err(GSEG_ERR_ARG, "one model only ('%s' and '%s')", in, a);
            goto usage;
        }
    }
    if (!in || !out) {
        gseg__err(GSEG_ERR_ARG, in ? "no output given (-o OUT.safetensors)" : "no model given");
        goto usage;
    }
    st = gseg_model_open(in, NULL, &m);
    if (st == GSEG_OK) st = gseg_model_export(m, out);
    if (st != GSEG_OK) {
        rc = run_error(tool, st);
    } else if (!quiet) {
        printf("%s: state dict of %s (load with safetensors.torch.load_file)\n", out, in);
    }
    gseg_model_free(m);
    return rc;
usage:
    return usage_error(tool);
}

static int tool_info(int argc, char **argv)
{
    const char *tool = "gseg-info", *in = NULL;
    int json = 0, rc = 0;
    gseg_model *m = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(kInfoUsage, stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (a[0] == '-' && a[1]) {
            gseg__err(GSEG_ERR_ARG, "unknown option %s", a);
            return usage_error(tool);
        } else if (!in) {
            in = a;
        } else {
            gseg__err(GSEG_ERR_ARG, "one model only ('%s' and '%s')", in, a);
            return usage_error(tool);
        }
    }
    if (!in) {
        gseg__err(GSEG_ERR_ARG, "no model given");
        return usage_error(tool);
    }
    gseg_status st = gseg_model_open(in, NULL, &m);
    char *s = st == GSEG_OK ? gseg_model_describe(m, json) : NULL;
    if (st != GSEG_OK)
        rc = run_error(tool, st);
    else if (!s)
        rc = run_error(tool, GSEG_ERR_NOMEM);
    else
        fputs(s, stdout);
    gseg_free(s);
    gseg_model_free(m);
    return rc;
}

int gseg_model_tool_main(const char *tool, int argc, char **argv)
{
    if (!tool) tool = "";
    const char *base = strrchr(tool, '/');
    base = base ? base + 1 : tool;
    if (!strcmp(base, "gseg-import")) return tool_import(argc, argv);
    if (!strcmp(base, "gseg-export")) return tool_export(argc, argv);
    if (!strcmp(base, "gseg-info")) return tool_info(argc, argv);
    fprintf(stderr, "gseg: unknown model tool '%s'\n", tool);
    return 2;
}
