/*
 * args.c — option values of the command-line tools: one parser for
 * integers and one for numbers, so every tool words the error alike.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>

gseg_status gseg__arg_long(const char *opt, const char *v, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || errno || x < lo || x > hi)
        return gseg__err(GSEG_ERR_ARG, "%s: '%s' is not an integer in [%ld, %ld]", opt,
                         v ? v : "", lo, hi);
    *out = x;
    return GSEG_OK;
}

gseg_status gseg__arg_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    long x;
    gseg_status st = gseg__arg_long(opt, v, lo, hi, &x);
    if (st == GSEG_OK) *out = (int)x;
    return st;
}

gseg_status gseg__arg_double(const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end = NULL;
    double x = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || !isfinite(x) || x < lo || x > hi)
        return gseg__err(GSEG_ERR_ARG, "%s: '%s' is not a number in [%g, %g]", opt, v ? v : "",
                         lo, hi);
    *out = x;
    return GSEG_OK;
}

int gseg__tool_int(const char *tool, const char *opt, const char *v, long lo, long hi, int *out)
{
    if (gseg__arg_int(opt, v, (int)lo, (int)hi, out) == GSEG_OK) return 1;
    fprintf(stderr, "%s: %s\n", tool, gseg_last_error());
    return 0;
}

int gseg__tool_num(const char *tool, const char *opt, const char *v, double lo, double hi,
                   double *out)
{
    if (gseg__arg_double(opt, v, lo, hi, out) == GSEG_OK) return 1;
    fprintf(stderr, "%s: %s\n", tool, gseg_last_error());
    return 0;
}
