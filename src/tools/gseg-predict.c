/* gseg-predict — map glaciers in a scene: mask (COG), probabilities, outlines. */
#include "gseg.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

static void on_signal(int sig)
{
    gseg_remove_temp_files();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* GDAL failures reach the user once, through gseg_last_error(); warnings
 * (e.g. a scene without georeferencing) are shown as one line each. */
static void CPL_STDCALL on_gdal_message(CPLErr cls, CPLErrorNum no, const char *msg)
{
    (void)no;
    if (cls == CE_Warning) fprintf(stderr, "gseg-predict: warning: %s\n", msg);
    else if (cls == CE_Debug) CPLDefaultErrorHandler(cls, no, msg);
}

int main(int argc, char **argv)
{
    gseg_init();
    CPLSetErrorHandler(on_gdal_message);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--version") == 0) {
            printf("gseg-predict %s (%s)\n", gseg_version(), GDALVersionInfo("--version"));
            return 0;
        }
    argc = GDALGeneralCmdLineProcessor(argc, &argv, 0);
    if (argc < 1) return argc == 0 ? 0 : 2;

    gseg_predict_cli *cli = NULL;
    gseg_status st = gseg_predict_cli_parse(argc, argv, &cli);
    int rc = 0;
    if (st != GSEG_OK) {
        fprintf(stderr, "gseg-predict: %s\nTry 'gseg-predict --help'.\n", gseg_last_error());
        rc = st == GSEG_ERR_ARG ? 2 : 1;
    } else if (gseg_predict_cli_help(cli)) {
        fputs(gseg_predict_usage(), stdout);
    } else {
        int quiet = gseg_predict_cli_quiet(cli);
        gseg_predict_stats stats;
        st = gseg_predict(gseg_predict_cli_params(cli), quiet ? NULL : gseg_term_progress,
                          NULL, &stats);
        if (st != GSEG_OK) {
            fprintf(stderr, "gseg-predict: %s\n", gseg_last_error());
            rc = st == GSEG_ERR_ARG ? 2 : 1;
        } else if (!quiet) {
            const gseg_predict_params *p = gseg_predict_cli_params(cli);
            double share = stats.valid_pixels
                               ? 100.0 * (double)stats.class_pixels[1] / (double)stats.valid_pixels
                               : 0.0;
            printf("%s: glacier on %.2f %% of %lld valid pixels", p->inputs[0], share,
                   stats.valid_pixels);
            if (p->vector && stats.glacier_km2 == stats.glacier_km2) /* not NaN */
                printf("; %lld outlines, %.3f km2", stats.polygons, stats.glacier_km2);
            printf("\n");
        }
    }
    gseg_predict_cli_free(cli);
    CSLDestroy(argv);
    GDALDestroyDriverManager();
    return rc;
}
