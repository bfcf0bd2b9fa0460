/* error.c — thread-local error messages, status names, allocation helpers,
 * and what the machine allows (memory limit, CPUs, taking turns). */
#include "internal.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_multiproc.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_api.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char err_msg[1024];

const char *gseg_status_str(gseg_status s)
{
    switch (s) {
    case GSEG_OK: return "success";
    case GSEG_ERR_ARG: return "invalid argument";
    case GSEG_ERR_IO: return "input/output error";
    case GSEG_ERR_FORMAT: return "invalid file content";
    case GSEG_ERR_NOMEM: return "out of memory";
    case GSEG_ERR_LIMIT: return "resource limit exceeded";
    case GSEG_ERR_CANCELLED: return "cancelled";
    case GSEG_ERR_UNSUPPORTED: return "not supported";
    case GSEG_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *gseg_last_error(void) { return err_msg; }

const char *gseg_version(void) { return GSEG_VERSION_STRING; }

void gseg__clear_error(void) { err_msg[0] = '\0'; }

gseg_status gseg__err(gseg_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    return s;
}

gseg_status gseg__gdal_err(gseg_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    const char *g = CPLGetLastErrorMsg();
    if (g && *g && n >= 0 && (size_t)n < sizeof err_msg - 3) {
        /* GDAL messages may span lines; keep the error on one line. */
        char *p = err_msg + n;
        size_t room = sizeof err_msg - (size_t)n;
        snprintf(p, room, ": %s", g);
        for (; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
    }
    return s;
}

void *gseg__malloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        gseg__err(GSEG_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    void *p = malloc(n && size ? n * size : 1);
    if (!p) gseg__err(GSEG_ERR_NOMEM, "out of memory allocating %zu bytes", n * size);
    return p;
}

void *gseg__calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) gseg__err(GSEG_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

char *gseg__strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = gseg__malloc(n, 1);
    if (d) memcpy(d, s, n);
    return d;
}

void gseg_init(void)
{
    GDALAllRegister(); /* idempotent and thread-safe in GDAL >= 2 */
}

int gseg__cpu_count(void)
{
    int n = CPLGetNumCPUs(); /* honours sched_getaffinity */
    return n > 0 ? n : 1;
}

int gseg__take_turns(int busy_threads)
{
    const char *v = CPLGetConfigOption("GSEG_PIPELINE_TURNS", "AUTO");
    if (!EQUAL(v, "AUTO")) return CPLTestBool(v);
    return busy_threads >= gseg__cpu_count();
}

size_t gseg__memory_limit(void)
{
    const char *v = CPLGetConfigOption("GSEG_MAX_MEMORY", NULL);
    if (v && *v) {
        char *end = NULL;
        double x = strtod(v, &end);
        if (end && x > 0) {
            switch (*end) {
            case 'k': case 'K': x *= 1024.0; break;
            case 'm': case 'M': x *= 1024.0 * 1024; break;
            case 'g': case 'G': x *= 1024.0 * 1024 * 1024; break;
            case 't': case 'T': x *= 1024.0 * 1024 * 1024 * 1024; break;
            default: break;
            }
            return x >= (double)SIZE_MAX ? SIZE_MAX : (size_t)x;
        }
    }
    GIntBig phys = CPLGetUsablePhysicalRAM();
    if (phys <= 0) return (size_t)4 << 30;
    return (size_t)(phys / 2);
}

int gseg_term_progress(double complete, const char *msg, void *user)
{
    (void)msg;
    (void)user;
    static _Thread_local int last = -1; /* last tick printed, in 2.5 % steps */
    int tick = (int)(complete * 40.0 + 1e-9);
    if (tick > 40) tick = 40;
    if (tick < last) last = -1; /* a new run */
    while (last < tick) {
        last++;
        if (last % 4 == 0) fprintf(stderr, "%d", last / 4 * 10);
        else fputc('.', stderr);
        if (last == 40) fputs(" - done.\n", stderr);
    }
    fflush(stderr);
    return 1;
}
