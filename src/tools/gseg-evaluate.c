/* gseg-evaluate — a model against labelled scenes.
 * Parsing and running live in the library (gseg_evaluate_tool_main). */
#include "gseg.h"

#include <cpl_error.h>
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

static void CPL_STDCALL on_gdal_message(CPLErr cls, CPLErrorNum no, const char *msg)
{
    if (cls == CE_Warning) fprintf(stderr, "gseg-evaluate: warning: %s\n", msg);
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
            printf("gseg-evaluate %s (%s)\n", gseg_version(), GDALVersionInfo("--version"));
            return 0;
        }
    argc = GDALGeneralCmdLineProcessor(argc, &argv, 0);
    if (argc < 1) return argc == 0 ? 0 : 2;
    int rc = gseg_evaluate_tool_main(argc, argv);
    CSLDestroy(argv);
    GDALDestroyDriverManager();
    return rc;
}
