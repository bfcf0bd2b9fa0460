/* fuzz_common.c — see fuzz_common.h. */
#include "fuzz_common.h"

#include "gseg.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <gdal.h>

#include <string.h>

/*
 * The drivers a gseg user's scene comes through, and only those:
 *   GTiff        GeoTIFF and COG (COG is a write-only driver: GTiff reads it)
 *   PNG, JPEG    quicklook-style and legacy scenes (JPEG also inside GTiff)
 *   JP2OpenJPEG  Sentinel-2 L1C/L2A band files
 *   HFA          Erdas Imagine .img (older Landsat/ASTER products)
 *   ENVI         .hdr-labelled raw (SNAP and ENVI exports), the header in
 *                the same archive (see fuzz_scene.c)
 *   MEM          never opened from a file name here (the names are the
 *                harness's own); GDAL uses it internally for resampled reads
 * Left out on purpose:
 *   VRT (and DERIVED) a VRT names other files: fuzzed bytes would make GDAL
 *                read arbitrary local files, devices (/dev/zero) or URLs
 *                (/vsicurl/), so runs would be neither hermetic nor bounded;
 *                VRT's XML is fuzzed by GDAL's own OSS-Fuzz targets. gseg
 *                reads stacks file by file (no VRT), so nothing of gseg's is
 *                lost.
 *   netCDF       libnetcdf/HDF5 read real files only (no /vsimem/ in this
 *                GDAL build) and their parsers are not gseg's code.
 *   everything else: exotic formats whose parser bugs are GDAL's, found and
 *                fixed through OSS-Fuzz, and noise for gseg's fuzzing.
 */
static const char *const allowed[] = {"GTiff", "PNG", "JPEG", "JP2OpenJPEG", "HFA", "ENVI",
                                      "MEM", NULL};

int fuzz_driver_allowed(const char *name)
{
    for (int i = 0; name && allowed[i]; i++)
        if (strcmp(name, allowed[i]) == 0) return 1;
    return 0;
}

void fuzz_init(void)
{
    static int done;
    if (done) return;
    done = 1;
    /* Hermetic: no plugins (an installed gdal_GSEG.so or others). */
    CPLSetConfigOption("GDAL_DRIVER_PATH", "disable");
    /* GDAL's block cache: 16 MB, whatever gseg__size_cache would plan. */
    CPLSetConfigOption("GDAL_CACHEMAX", "16");
    /* gseg's own budget, read by gseg__memory_limit(): the harness refuses
     * reads above it as gseg_predict refuses jobs above it. */
    CPLSetConfigOption("GSEG_MAX_MEMORY", "64M");
    CPLSetConfigOption("GDAL_NUM_THREADS", "1");
    CPLSetConfigOption("GDAL_HTTP_TIMEOUT", "1");
    CPLSetConfigOption("CPL_DEBUG", "OFF");
    CPLSetErrorHandler(CPLQuietErrorHandler);
    gseg_init();
    for (int i = GDALGetDriverCount() - 1; i >= 0; i--) {
        GDALDriverH d = GDALGetDriver(i);
        if (!fuzz_driver_allowed(GDALGetDriverShortName(d))) {
            GDALDeregisterDriver(d);
            GDALDestroyDriver(d);
        }
    }
}

/* libFuzzer calls this once before the first input, in every target. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    return 0;
}
