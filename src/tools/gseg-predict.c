/* gseg-predict — map glaciers in a scene: mask (COG), probabilities, outlines. */
#include "tool.h"

static int run(int argc, char **argv)
{
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
    return rc;
}

int main(int argc, char **argv) { return tool_main("gseg-predict", argc, argv, run, NULL); }
