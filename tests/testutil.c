/* testutil.c — helpers shared by the Check suites. */
#include "testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The folder of this suite run's files: tu_run sets it, the forked tests
 * inherit it, and tu_run removes it when every test passed. */
#define RUNDIR_ENV "GSEG_TEST_RUNDIR"

char *tu_tmpdir(const char *name)
{
    const char *run = getenv(RUNDIR_ENV);
    const char *root = getenv("GSEG_TEST_BUILDDIR");
    char *p = malloc(4096);
    if (run)
        snprintf(p, 4096, "%s/%s-%ld", run, name, (long)getpid());
    else
        snprintf(p, 4096, "%s/testtmp/%s-%ld", root ? root : "/tmp", name, (long)getpid());
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", p, p);
    if (system(cmd) != 0) ck_abort_msg("cannot create %s", p);
    return p;
}

static const char *under(const char *env, const char *rel)
{
    static _Thread_local char buf[4096];
    const char *root = getenv(env);
    snprintf(buf, sizeof buf, "%s/%s", root ? root : ".", rel);
    return buf;
}

const char *tu_src(const char *rel) { return under("GSEG_TEST_SRCDIR", rel); }
const char *tu_build(const char *rel) { return under("GSEG_TEST_BUILDDIR", rel); }

const char *tu_path(const char *dir, const char *name)
{
    static char buf[16][1024];
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

int tu_system(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int r = system(cmd);
    if (r == -1 || !WIFEXITED(r)) return -1;
    return WEXITSTATUS(r);
}

int tu_run(Suite *s)
{
    const char *root = getenv("GSEG_TEST_BUILDDIR");
    char run[4096];
    snprintf(run, sizeof run, "%s/testtmp/run-%ld", root ? root : "/tmp", (long)getpid());
    setenv(RUNDIR_ENV, run, 1);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    /* a failed run's files stay for a look; a passed run's go (scenes and
     * models of several hundred MB would otherwise pile up run after run) */
    if (failed)
        fprintf(stderr, "test files kept in %s\n", run);
    else
        tu_system("rm -rf '%s'", run);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

Suite *tu_suite(const char *name, const tu_case *cases, size_t n, double timeout,
                void (*setup)(void))
{
    Suite *s = suite_create(name);
    for (size_t i = 0; i < n; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, timeout);
        if (setup) tcase_add_checked_fixture(tc, setup, NULL);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}
