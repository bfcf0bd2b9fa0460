/* testutil.h — helpers shared by the Check suites. */
#ifndef GSEG_TESTUTIL_H
#define GSEG_TESTUTIL_H
#include "gseg.h"
#include <check.h>

/* Asserts st == GSEG_OK, printing gseg_last_error() otherwise. */
#define ck_gseg(expr)                                                          \
    do {                                                                       \
        gseg_status st_ = (expr);                                              \
        ck_assert_msg(st_ == GSEG_OK, "%s -> %s: %s", #expr,                   \
                      gseg_status_str(st_), gseg_last_error());                \
    } while (0)

/* A fresh empty directory under the build tree (or /tmp); caller frees. */
char *tu_tmpdir(const char *name);
/* Source-tree path of a file (e.g. "sample_scenes/..."); static buffer. */
const char *tu_src(const char *rel);
/* Build-tree path of a file (e.g. "src/tools/gseg-predict"); static buffer. */
const char *tu_build(const char *rel);
/* "dir/name" in one of 16 rotating static buffers (so several can be used in
 * one call). */
const char *tu_path(const char *dir, const char *name);
/* Runs a shell command, returns its exit status (or -1). */
int tu_system(const char *fmt, ...);
/* A named test for tu_suite. */
typedef struct tu_case {
    const char *name;
    const TTest *test;
} tu_case;
/* A suite with one Check case per test (so CK_RUN_CASE=name runs one
 * alone), each with the timeout and the fixture setup (may be NULL). */
Suite *tu_suite(const char *name, const tu_case *cases, size_t n, double timeout,
                void (*setup)(void));
/* Runs the suite with CK_ENV and returns an exit code for main(). */
int tu_run(Suite *s);
#endif
