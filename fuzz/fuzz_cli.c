/*
 * fuzz_cli.c — libFuzzer target: the command-line parsers.
 *
 * Input: text, one argument per line ('\n'; a '\0' ends an argument early,
 * as in C). argv[0] is "gseg-predict". Nothing is ever run: only parsers
 * that do no work are called.
 *   - gseg_predict_cli_parse on the whole argv, then the parameters'
 *     promises (counts, strings alive, overlap < tile, ranges);
 *   - for every argument: gseg__shard_parse, gseg_precision_parse,
 *     gseg__arg_long/int/double (ranges from the input), gseg_model_open of
 *     "ndsi:..." model specs (the NDSI spec parser; the fuzz build has no
 *     libtorch, and other specs would be file paths);
 *   - gseg__output_path and gseg__output_is_template with each argument as
 *     the template and the next as the scene, for the default suffixes;
 *   - gseg__shard_from_env with the first four arguments as the Slurm
 *     array variables.
 * Templates and paths reach VSIStatL (is it a folder?): arguments starting
 * with "/vsi" other than "/vsimem/" are not used as templates (no network,
 * no /vsistdin/).
 */
#include "fuzz_common.h"

#include "predict.h"

#include <cpl_error.h>

#include <limits.h>
#include <math.h>
#include <string.h>

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_predict_cli(int argc, char **argv)
{
    gseg_predict_cli *c = (gseg_predict_cli *)(uintptr_t)1;
    gseg_status st = gseg_predict_cli_parse(argc, argv, &c);
    if (st != GSEG_OK) {
        FUZZ_CHECK(c == NULL);
        FUZZ_CHECK(st == GSEG_ERR_ARG);
        FUZZ_CHECK(*gseg_last_error() != '\0');
        return;
    }
    FUZZ_CHECK(c != NULL);
    const gseg_predict_params *p = gseg_predict_cli_params(c);
    if (!gseg_predict_cli_help(c) && !gseg_predict_cli_version(c)) {
        FUZZ_CHECK(p->ninputs >= 0);
        for (int i = 0; i < p->ninputs; i++) FUZZ_CHECK(p->inputs[i] != NULL);
        FUZZ_CHECK(p->inputs == NULL || p->inputs[p->ninputs] == NULL);
        if (p->tile > 0) FUZZ_CHECK(p->tile >= 8 && p->tile <= 16384 && p->overlap < p->tile);
        FUZZ_CHECK(p->batch >= 0 && p->batch <= 4096);
        FUZZ_CHECK(p->readers >= 0 && p->readers <= 64);
        FUZZ_CHECK(p->model_options.threads >= 0 && p->model_options.threads <= 1024);
        FUZZ_CHECK(p->quicklook_size == 0 || (p->quicklook_size >= 16 && p->quicklook_size <= 16384));
        FUZZ_CHECK(p->min_area_km2 >= 0 && p->simplify_m >= 0);
        FUZZ_CHECK(isnan(p->threshold) || isfinite(p->threshold));
        for (const char *const *co = p->create_options; co && *co; co++)
            FUZZ_CHECK(strchr(*co, '=') != NULL);
        /* strings the parameters point at live as long as c */
        const char *strs[] = {p->model, p->output, p->format, p->proba, p->vector,
                              p->vector_format, p->t_srs, p->resampling, p->quicklook,
                              p->quicklook_bands, p->model_options.device};
        for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
            if (strs[i]) (void)strlen(strs[i]);
    }
    (void)gseg_predict_cli_quiet(c);
    gseg_predict_cli_free(c);
}

/* A template argument gseg may stat: local paths and /vsimem/ only. */
static int statable(const char *s)
{
    return strncmp(s, "/vsi", 4) != 0 || strncmp(s, "/vsimem/", 8) == 0;
}

static void check_output_path(const char *tmpl, const char *scene, int index)
{
    static const char *const suffixes[] = {"_mask.tif", "_outlines.gpkg", "", NULL};
    for (int i = 0; suffixes[i]; i++) {
        char *out = (char *)(uintptr_t)1;
        gseg_status st = gseg__output_path(tmpl, suffixes[i], scene, index, &out);
        if (st == GSEG_OK) {
            FUZZ_CHECK(out != NULL);
            (void)strlen(out);
            free(out);
        } else {
            FUZZ_CHECK(out == NULL && st == GSEG_ERR_ARG);
        }
    }
    if (tmpl) (void)gseg__output_is_template(tmpl);
}

static void check_values(const char *a, const char *b)
{
    int k = -7, n = -7;
    if (gseg__shard_parse(a, &k, &n) == GSEG_OK) FUZZ_CHECK(n >= 1 && k >= 0 && k < n);
    else FUZZ_CHECK(k == -7 && n == -7);
    gseg_precision pr;
    if (gseg_precision_parse(a, &pr) == GSEG_OK) FUZZ_CHECK(pr >= GSEG_PRECISION_AUTO && pr <= GSEG_PRECISION_FP16);
    /* ranges from the other argument (or the widest) */
    long lo = LONG_MIN, hi = LONG_MAX, lv;
    if (b) {
        char *end;
        lo = strtol(b, &end, 10);
        hi = *end ? strtol(end + 1, NULL, 10) : LONG_MAX;
    }
    if (gseg__arg_long("--opt", a, lo, hi, &lv) == GSEG_OK) FUZZ_CHECK(lv >= lo && lv <= hi);
    int iv;
    int ilo = lo < INT_MIN ? INT_MIN : lo > INT_MAX ? INT_MAX : (int)lo;
    int ihi = hi < INT_MIN ? INT_MIN : hi > INT_MAX ? INT_MAX : (int)hi;
    if (gseg__arg_int("--opt", a, ilo, ihi, &iv) == GSEG_OK) FUZZ_CHECK(iv >= ilo && iv <= ihi);
    double dlo = b ? strtod(b, NULL) : -HUGE_VAL, dv;
    if (isnan(dlo)) dlo = -HUGE_VAL; /* callers pass real bounds */
    if (gseg__arg_double("--opt", a, dlo, HUGE_VAL, &dv) == GSEG_OK)
        FUZZ_CHECK(isfinite(dv) && dv >= dlo);
    if (strncmp(a, "ndsi:", 5) == 0 || strcmp(a, "ndsi") == 0) {
        gseg_model *m = (gseg_model *)(uintptr_t)1;
        gseg_status st = gseg_model_open(a, NULL, &m);
        if (st == GSEG_OK) {
            FUZZ_CHECK(m != NULL && gseg_model_nbands(m) == 2 && gseg_model_nscores(m) == 1);
            FUZZ_CHECK(gseg_model_band(m, 0) && gseg_model_band(m, 1));
            double t = gseg_model_threshold(m);
            FUZZ_CHECK(t > -1 && t < 1);
            FUZZ_CHECK(strcmp(gseg_model_spec(m), a) == 0);
            char *d = gseg_model_describe(m, 1);
            free(d);
            gseg_model_free(m);
        } else {
            FUZZ_CHECK(m == NULL && st == GSEG_ERR_ARG);
        }
    }
}

static void check_slurm(int argc, char **argv)
{
    static const char *const vars[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT",
                                       "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"};
    /* putenv of buffers of our own: setenv copies each new value and glibc
     * never frees the copies, which grows without bound over a run */
    static char env[4][300];
    for (int i = 0; i < 4; i++) {
        if (i + 1 < argc) {
            snprintf(env[i], sizeof env[i], "%s=%.256s", vars[i], argv[i + 1]);
            putenv(env[i]);
        } else {
            unsetenv(vars[i]);
        }
    }
    int k = -7, n = -7;
    int r = gseg__shard_from_env(&k, &n);
    FUZZ_CHECK(r >= -1 && r <= 1);
    if (r == 1) FUZZ_CHECK(n >= 1 && k >= 0 && k < n);
    else FUZZ_CHECK(k == -7 && n == -7);
    for (int i = 0; i < 4; i++) unsetenv(vars[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a NUL-terminated copy split into lines */
    char *buf = malloc(size + 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)"gseg-predict";
    for (char *p = buf; argc <= MAX_ARGS;) {
        argv[argc++] = p;
        char *nl = memchr(p, '\n', size - (size_t)(p - buf));
        if (!nl) break;
        *nl = '\0';
        p = nl + 1;
    }
    if (size == 0) argc = 1;
    argv[argc] = NULL;

    check_predict_cli(argc, argv);
    for (int i = 1; i < argc; i++) {
        check_values(argv[i], i + 1 < argc ? argv[i + 1] : NULL);
        const char *scene = i + 1 < argc ? argv[i + 1] : "scene.tif";
        if (statable(argv[i])) check_output_path(argv[i], scene, i - 1);
        check_output_path(NULL, argv[i], i);
    }
    check_slurm(argc, argv);
    free(buf);
    CPLErrorReset();
    return 0;
}
