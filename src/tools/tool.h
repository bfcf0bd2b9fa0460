/*
 * tool.h — what every gseg tool's main does around its work, in one place:
 * gseg_init, GDAL warnings as one line each (failures reach the user
 * through gseg_last_error), --version, GDAL's general options (--config,
 * --debug ...), and SIGINT/SIGTERM removing temporary files. Private to
 * src/tools; each tool is one translation unit.
 */
#ifndef GSEG_TOOL_H
#define GSEG_TOOL_H

#include "gseg.h"

#include <cpl_error.h>
#include <cpl_string.h>
#include <gdal.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char *tool_name;
static void (*tool_interrupt)(void);

/* With an interrupt hook, the first signal calls it (the tool finishes
 * cleanly); otherwise, and on a second signal, temporary files go and the
 * process dies of the signal. */
static void tool_on_signal(int sig)
{
    static volatile sig_atomic_t seen;
    if (tool_interrupt && !seen) {
        seen = 1;
        tool_interrupt();
        return;
    }
    gseg_remove_temp_files();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void CPL_STDCALL tool_on_gdal_message(CPLErr cls, CPLErrorNum no, const char *msg)
{
    if (cls == CE_Warning) fprintf(stderr, "%s: warning: %s\n", tool_name, msg);
    else if (cls == CE_Debug) CPLDefaultErrorHandler(cls, no, msg);
}

/* Runs run(argc, argv) (argv after GDAL's general options) and returns its
 * exit code. interrupt may be NULL. */
static int tool_main(const char *name, int argc, char **argv, int (*run)(int, char **),
                     void (*interrupt)(void))
{
    tool_name = name;
    tool_interrupt = interrupt;
    gseg_init();
    CPLSetErrorHandler(tool_on_gdal_message);
    signal(SIGINT, tool_on_signal);
    signal(SIGTERM, tool_on_signal);
    /* A file-size limit (ulimit -f) then fails the write with EFBIG, which
     * is reported like a full disk, instead of killing the process. */
    signal(SIGXFSZ, SIG_IGN);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s (%s)\n", name, gseg_version(), GDALVersionInfo("--version"));
            return 0;
        }
    argc = GDALGeneralCmdLineProcessor(argc, &argv, 0);
    if (argc < 1) return argc == 0 ? 0 : 2;
    int rc = run(argc, argv);
    CSLDestroy(argv);
    GDALDestroyDriverManager();
    return rc;
}

#endif
