/*
 * fuzz_common.h — shared set-up of the libFuzzer targets (see
 * fuzz/README.md): GDAL restricted to the drivers gseg's users feed it, small
 * caches and memory limits, a quiet error handler, and a check macro that
 * turns a broken invariant into a crash libFuzzer reports.
 */
#ifndef GSEG_FUZZ_COMMON_H
#define GSEG_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Once per process: fuzz_common.c's LLVMFuzzerInitialize, shared by every
 * target, calls it. Registers GDAL's drivers,
 * then deregisters all but the allow-list (fuzz_common.c says why), sets
 * GDAL_CACHEMAX, GSEG_MAX_MEMORY and friends, and silences GDAL's error
 * output (gseg folds GDAL's messages into its own; the library installs no
 * handler, the tools do). */
void fuzz_init(void);

/* 1 if GDAL's driver `name` (short name) is on the allow-list. */
int fuzz_driver_allowed(const char *name);

/* An invariant of gseg's API that the input broke: abort, so libFuzzer
 * records the input as a crash. */
#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

#endif
