/*
 * fuzz_scene.c — libFuzzer target: the scene reader (src/read/scene.c) and
 * the tile grid (src/tile/grid.c) on rasters in /vsimem/.
 *
 * Input: either one raster file's bytes, or several files in a layout
 * modelled on GDAL's fuzzer-friendly archives (plain text markers, so
 * libFuzzer's mutations keep the file boundaries)
 *
 *     FUZZER_FRIENDLY_ARCHIVE\n
 *     ***NEWFILE***:a.tif\n<bytes of a.tif>***NEWFILE***:b.tif\n<bytes>...
 *
 * (a file's bytes run up to the next "***NEWFILE***:"). Files whose names
 * are sidecars (.hdr, .aux.xml, .ovr, .msk, ...) sit beside the scene files;
 * the others are stacked in order as the bands of one scene (up to 4 files:
 * stack_grid, resampled reads); a file named "bands" holds band selectors
 * (comma- or newline-separated), else every band is read. The last 8 bytes
 * of the input (still part of the file: trailing bytes are ignored by the
 * formats) choose the tiling, the resampling and one extra window.
 *
 * Then: gseg_scene_open; the accessors; gseg_grid_init and gseg_grid_tile
 * over the scene with their invariants (every tile inside the scene, the
 * first at 0, the last at the edge, no gaps, at least `overlap` shared);
 * gseg_scene_read of the first, a middle and the last tile padded to the
 * tile size, a fuzz-chosen window and a corner pixel, checking the padding
 * (edge replication) and the validity mask; windows gseg must refuse; a
 * reopen selecting bands by number and by name; the georeferencing copied
 * onto a MEM dataset.
 *
 * Bounds the harness keeps (so that a finding is about gseg, not about the
 * harness asking GDAL for gigabytes): reads whose buffers exceed
 * gseg__memory_limit() (GSEG_MAX_MEMORY, 64M here) are skipped as
 * gseg_predict refuses such jobs; files whose GDAL blocks exceed 64 MB are
 * not read (GDAL allocates a whole block to read any pixel of it, all bands
 * of it for pixel-interleaved files); JPEG and
 * PNG files (decoded sequentially by GDAL) are read only up to 2^26 pixels.
 * Scenes are capped on a side by gseg's own GSEG_MAX_DIMENSION (default).
 */
#include "fuzz_common.h"

#include "internal.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_vsi.h>
#include <gdal.h>

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#define DIR "/vsimem/fuzz_scene"
#define MAGIC "FUZZER_FRIENDLY_ARCHIVE\n"
#define NEWFILE "***NEWFILE***:"
#define MAX_FILES 8
#define MAX_SCENE_FILES 4
#define MAX_SELECTORS 8
#define MAX_BLOCK_BYTES ((size_t)64 << 20)
#define MAX_SEQ_PIXELS ((double)(1 << 26))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const sidecar_ext[] = {".hdr", ".aux.xml", ".ovr", ".msk", ".aux", ".ige",
                                          ".rrd", ".tfw", ".wld", ".prj", ".rpb", ".imd",
                                          ".j2w", ".pgw", ".jgw", ".xml", ".txt", NULL};

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

static int is_sidecar(const char *name)
{
    for (int i = 0; sidecar_ext[i]; i++)
        if (ends_with(name, sidecar_ext[i])) return 1;
    return 0;
}

static void put_file(const char *path, const uint8_t *p, size_t n)
{
    VSILFILE *fp = VSIFOpenL(path, "wb");
    if (!fp) return;
    if (n) (void)VSIFWriteL(p, 1, n, fp);
    (void)VSIFCloseL(fp);
}

static const uint8_t *find(const uint8_t *p, const uint8_t *end, const char *s)
{
    size_t k = strlen(s);
    for (; p + k <= end; p++)
        if (memcmp(p, s, k) == 0) return p;
    return NULL;
}

typedef struct input {
    char paths[MAX_SCENE_FILES][96];
    int npaths;
    char sel_buf[256];
    const char *sel[MAX_SELECTORS + 1];
    int nsel;
} input;

/* Band selectors from the "bands" file: up to 8, comma/newline-separated. */
static void parse_selectors(input *in, const uint8_t *p, size_t n)
{
    if (n >= sizeof in->sel_buf) n = sizeof in->sel_buf - 1;
    memcpy(in->sel_buf, p, n);
    in->sel_buf[n] = '\0';
    char *save = NULL;
    for (char *t = strtok_r(in->sel_buf, ",\n", &save); t && in->nsel < MAX_SELECTORS;
         t = strtok_r(NULL, ",\n", &save))
        in->sel[in->nsel++] = t;
    in->sel[in->nsel] = NULL;
}

/* Writes the input's files under DIR and lists the scene files. */
static void unpack(input *in, const uint8_t *data, size_t size)
{
    memset(in, 0, sizeof *in);
    size_t ml = strlen(MAGIC);
    if (size < ml || memcmp(data, MAGIC, ml) != 0) {
        snprintf(in->paths[0], sizeof in->paths[0], DIR "/scene");
        put_file(in->paths[0], data, size);
        in->npaths = 1;
        return;
    }
    const uint8_t *end = data + size, *p = find(data + ml, end, NEWFILE);
    for (int nfiles = 0; p && nfiles < MAX_FILES; nfiles++) {
        p += strlen(NEWFILE);
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        char name[48];
        size_t k = 0;
        for (const uint8_t *q = p; q < nl && k < sizeof name - 1; q++)
            name[k++] = (isalnum(*q) || *q == '.' || *q == '_' || *q == '-') ? (char)*q : '_';
        name[k] = '\0';
        if (k == 0) strcpy(name, "_");
        else if (name[0] == '.') name[0] = '_';
        const uint8_t *body = nl + 1, *next = find(body, end, NEWFILE);
        size_t n = (size_t)((next ? next : end) - body);
        if (strcmp(name, "bands") == 0) {
            parse_selectors(in, body, n);
        } else {
            char path[96];
            snprintf(path, sizeof path, DIR "/%s", name);
            put_file(path, body, n);
            if (!is_sidecar(name) && in->npaths < MAX_SCENE_FILES) {
                int dup = 0;
                for (int i = 0; i < in->npaths; i++) dup |= strcmp(in->paths[i], path) == 0;
                if (!dup) snprintf(in->paths[in->npaths++], sizeof in->paths[0], "%s", path);
            }
        }
        p = next;
    }
}

/* What the harness allows itself to read (see the header comment). */
typedef struct limits {
    int readable;   /* no block above MAX_BLOCK_BYTES, no oversized sequential file */
} limits;

static void probe(const input *in, limits *lim)
{
    lim->readable = 1;
    for (int i = 0; i < in->npaths; i++) {
        GDALDatasetH ds = GDALOpenEx(in->paths[i], GDAL_OF_RASTER | GDAL_OF_READONLY, NULL,
                                     NULL, NULL);
        if (!ds) continue;
        /* Only the allow-listed drivers may ever open a scene. */
        FUZZ_CHECK(fuzz_driver_allowed(GDALGetDriverShortName(GDALGetDatasetDriver(ds))));
        const char *drv = GDALGetDriverShortName(GDALGetDatasetDriver(ds));
        double px = (double)GDALGetRasterXSize(ds) * GDALGetRasterYSize(ds);
        if ((strcmp(drv, "JPEG") == 0 || strcmp(drv, "PNG") == 0) && px > MAX_SEQ_PIXELS)
            lim->readable = 0;
        int nb = GDALGetRasterCount(ds);
        /* a pixel-interleaved file's block holds every band: GDAL allocates
         * it whole (a 262-byte TIFF declaring 53713 bands of 2^20 x 1
         * strips asked for 56 GB) */
        const char *il = GDALGetMetadataItem(ds, "INTERLEAVE", "IMAGE_STRUCTURE");
        double per_block = il && strcasecmp(il, "PIXEL") == 0 ? nb : 1;
        for (int b = 1; b <= nb && lim->readable; b++) {
            GDALRasterBandH band = GDALGetRasterBand(ds, b);
            for (int m = 0; m < 2 && band; m++) {
                int bw = 0, bh = 0;
                GDALGetBlockSize(band, &bw, &bh);
                double bytes = (double)bw * bh * per_block *
                               GDALGetDataTypeSizeBytes(GDALGetRasterDataType(band));
                if (bytes > (double)MAX_BLOCK_BYTES) lim->readable = 0;
                band = m == 0 ? GDALGetMaskBand(band) : NULL;
            }
        }
        GDALClose(ds);
    }
    CPLErrorReset();
}

static int min_i(int a, int b) { return a < b ? a : b; }

/* The tile grid's promises, on one axis: tiles of min(n, tile) pixels,
 * the first at 0, the last ending at n, each starting after the previous
 * one, no gaps, and neighbours sharing at least `overlap` pixels. */
static void check_axis(int n, int tile, int overlap, const int *pos, int k)
{
    int size = min_i(n, tile);
    for (int i = 0; i < k; i++) {
        FUZZ_CHECK(pos[i] >= 0 && pos[i] <= n - size);
        if (i == 0) FUZZ_CHECK(pos[i] == 0);
        if (i > 0) {
            FUZZ_CHECK(pos[i] > pos[i - 1]);
            FUZZ_CHECK(pos[i - 1] + size >= pos[i] + overlap);
        }
    }
    FUZZ_CHECK(pos[k - 1] + size == n);
}

static void check_grid(const gseg_grid *g, const double gt[6])
{
    FUZZ_CHECK(g->ncols >= 1 && g->nrows >= 1);
    long long count = (long long)g->ncols * g->nrows;
    int n = gseg_grid_count(g);
    FUZZ_CHECK(n == count);
    gseg_tile t;
    /* the first row and the first column carry every x and y position */
    int *pos = malloc(sizeof *pos * (size_t)(g->ncols > g->nrows ? g->ncols : g->nrows));
    FUZZ_CHECK(pos != NULL);
    for (int c = 0; c < g->ncols; c++) {
        FUZZ_CHECK(gseg_grid_tile(g, gt, c, &t) == GSEG_OK);
        FUZZ_CHECK(t.row == 0 && t.col == c && t.index == c);
        FUZZ_CHECK(t.win.w == min_i(g->width, g->tile) && t.win.h == min_i(g->height, g->tile));
        FUZZ_CHECK(t.win.y == 0);
        pos[c] = t.win.x;
    }
    check_axis(g->width, g->tile, g->overlap, pos, g->ncols);
    for (int r = 0; r < g->nrows; r++) {
        FUZZ_CHECK(gseg_grid_tile(g, gt, r * g->ncols, &t) == GSEG_OK);
        FUZZ_CHECK(t.row == r && t.col == 0 && t.win.x == 0);
        pos[r] = t.win.y;
    }
    check_axis(g->height, g->tile, g->overlap, pos, g->nrows);
    free(pos);
    /* the last tile, and the linear terms of its geotransform */
    FUZZ_CHECK(gseg_grid_tile(g, gt, n - 1, &t) == GSEG_OK);
    FUZZ_CHECK(t.win.x + t.win.w == g->width && t.win.y + t.win.h == g->height);
    FUZZ_CHECK(memcmp(&t.geotransform[1], &gt[1], sizeof(double)) == 0 &&
               memcmp(&t.geotransform[5], &gt[5], sizeof(double)) == 0);
    /* indexes out of range */
    FUZZ_CHECK(gseg_grid_tile(g, gt, -1, &t) == GSEG_ERR_ARG);
    FUZZ_CHECK(gseg_grid_tile(g, gt, n, &t) == GSEG_ERR_ARG);
}

/* Reads win padded to pad_w x pad_h if the harness's bounds allow, and
 * checks padding and validity. */
static void read_window(gseg_scene *s, const limits *lim, gseg_window win, int pad_w, int pad_h)
{
    if (!lim->readable) return;
    int nb = gseg_scene_nbands(s);
    double plane = (double)pad_w * pad_h;
    double bytes = plane * nb * 4 + plane + (double)win.w * win.h * 10;
    if (bytes > (double)gseg__memory_limit()) return;
    float *data = malloc((size_t)plane * nb * sizeof *data);
    uint8_t *valid = malloc((size_t)plane);
    FUZZ_CHECK(data && valid);
    size_t nvalid = (size_t)-1;
    gseg_status st = gseg_scene_read(s, win, pad_w, pad_h, data, valid, &nvalid);
    /* a window inside the scene is never a usage error; a broken file may
     * fail to read */
    FUZZ_CHECK(st == GSEG_OK || st == GSEG_ERR_IO || st == GSEG_ERR_FORMAT ||
               st == GSEG_ERR_NOMEM);
    if (st == GSEG_OK) {
        size_t n = 0;
        for (int y = 0; y < pad_h; y++)
            for (int x = 0; x < pad_w; x++) {
                uint8_t v = valid[(size_t)y * pad_w + x];
                FUZZ_CHECK(v <= 1);
                FUZZ_CHECK(v == 0 || (x < win.w && y < win.h));
                n += v;
            }
        FUZZ_CHECK(n == nvalid);
        for (int b = 0; b < nb; b++) {
            const float *d = data + (size_t)b * pad_w * pad_h;
            for (int y = 0; y < pad_h; y++) {
                const float *row = d + (size_t)y * pad_w;
                if (y >= win.h) {
                    FUZZ_CHECK(memcmp(row, d + (size_t)(win.h - 1) * pad_w,
                                      (size_t)pad_w * sizeof *row) == 0);
                    continue;
                }
                for (int x = win.w; x < pad_w; x++)
                    FUZZ_CHECK(memcmp(&row[x], &row[win.w - 1], sizeof *row) == 0);
            }
        }
        /* the same window without the optional outputs */
        st = gseg_scene_read(s, win, pad_w, pad_h, data, NULL, NULL);
        FUZZ_CHECK(st == GSEG_OK || st == GSEG_ERR_IO || st == GSEG_ERR_FORMAT ||
                   st == GSEG_ERR_NOMEM);
    }
    free(data);
    free(valid);
}

/* Windows gseg_scene_read must refuse, whatever the scene. */
static void refuse_windows(gseg_scene *s)
{
    int w = gseg_scene_width(s), h = gseg_scene_height(s);
    const struct {
        gseg_window win;
        int pad_w, pad_h;
    } bad[] = {
        {{0, 0, 0, 1}, 1, 1},
        {{0, 0, 1, 0}, 1, 1},
        {{-1, 0, 1, 1}, 1, 1},
        {{0, -1, 1, 1}, 1, 1},
        {{0, 0, 1, 1}, 0, 1},
        {{0, 0, 1, 1}, 1, 0},
        {{w, 0, 1, 1}, 1, 1},
        {{0, h, 1, 1}, 1, 1},
        {{0, 0, w + 1, 1}, w + 1, 1},
        {{INT_MAX, 0, 1, 1}, 1, 1},
        {{0, INT_MAX, 1, 1}, 1, 1},
        {{1, 0, INT_MAX, 1}, INT_MAX, 1},
        {{0, 1, 1, INT_MAX}, 1, INT_MAX},
        {{w - 1, 0, INT_MAX, 1}, INT_MAX, 1},
    };
    float buf[4];
    uint8_t valid[4];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gseg_status st = gseg_scene_read(s, bad[i].win, bad[i].pad_w, bad[i].pad_h, buf, valid, NULL);
        FUZZ_CHECK(st == GSEG_ERR_ARG);
    }
    FUZZ_CHECK(gseg_scene_read(s, (gseg_window){0, 0, 1, 1}, 1, 1, NULL, NULL, NULL) ==
               GSEG_ERR_ARG);
}

/* 1 if strtol takes all of s (gseg then reads it as a band number). */
static int numeric(const char *s)
{
    char *end = NULL;
    (void)strtol(s, &end, 10);
    return end != s && *end == '\0';
}

/* Reopens the scene selecting a band by number and its first band by the
 * name gseg reports for it: both must resolve. */
static void reopen_by_selectors(const input *in, gseg_scene *s)
{
    const char *name0 = gseg_scene_band_name(s, 0);
    int total = gseg_scene_nbands(s);
    char num[16], name[256];
    /* the last band when every band is selected, else the first */
    snprintf(num, sizeof num, "%d", in->nsel ? 1 : total);
    snprintf(name, sizeof name, "%s", name0);
    const char *sel[] = {num, name, NULL};
    const char *paths[MAX_SCENE_FILES];
    for (int i = 0; i < in->npaths; i++) paths[i] = in->paths[i];
    gseg_scene_params p = gseg_scene_params_default();
    p.bands = sel;
    gseg_scene *s2 = NULL;
    gseg_status st = gseg_scene_open(paths, in->npaths, &p, &s2);
    if (st == GSEG_OK) {
        FUZZ_CHECK(gseg_scene_nbands(s2) == 2);
        FUZZ_CHECK(gseg_scene_width(s2) == gseg_scene_width(s) &&
                   gseg_scene_height(s2) == gseg_scene_height(s));
        gseg_scene_free(s2);
    } else {
        FUZZ_CHECK(s2 == NULL);
        /* a name longer than the buffer, or one that reads as a number, may
         * not resolve; a file that opened once may fail to open again only
         * through GDAL (I/O) */
        FUZZ_CHECK(strlen(name0) >= sizeof name || numeric(name) || st == GSEG_ERR_IO ||
                   st == GSEG_ERR_FORMAT);
    }
}

static void copy_georef(gseg_scene *s)
{
    GDALDriverH mem = GDALGetDriverByName("MEM");
    if (!mem) return;
    GDALDatasetH ds = GDALCreate(mem, "", 1, 1, 1, GDT_Byte, NULL);
    if (!ds) return;
    gseg_status st = gseg__scene_copy_georef(s, ds);
    FUZZ_CHECK(st == GSEG_OK || st == GSEG_ERR_IO);
    GDALClose(ds);
}

static void run(const input *in, const uint8_t tail[8])
{
    limits lim;
    probe(in, &lim);

    static const char *const resampling[] = {"nearest", "bilinear", "cubic", "cubicspline",
                                             "lanczos", "average", "mode", NULL};
    gseg_scene_params p = gseg_scene_params_default();
    p.bands = in->nsel ? in->sel : NULL;
    p.resampling = resampling[tail[4] % 8];
    const char *paths[MAX_SCENE_FILES];
    for (int i = 0; i < in->npaths; i++) paths[i] = in->paths[i];
    gseg_scene *s = (gseg_scene *)(uintptr_t)1;
    gseg_status st = gseg_scene_open(paths, in->npaths, &p, &s);
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "scene: %d file(s), open: %s %s\n", in->npaths, gseg_status_str(st),
                st == GSEG_OK ? "" : gseg_last_error());
    if (st != GSEG_OK) {
        FUZZ_CHECK(s == NULL);
        FUZZ_CHECK(st > GSEG_OK && st <= GSEG_ERR_INTERNAL && st != GSEG_ERR_INTERNAL);
        FUZZ_CHECK(*gseg_last_error() != '\0');
        return;
    }
    int w = gseg_scene_width(s), h = gseg_scene_height(s), nb = gseg_scene_nbands(s);
    FUZZ_CHECK(w >= 1 && h >= 1 && nb >= 1);
    FUZZ_CHECK(!in->nsel || nb == in->nsel);
    for (int i = 0; i < nb; i++) FUZZ_CHECK(gseg_scene_band_name(s, i) != NULL);
    FUZZ_CHECK(strcmp(gseg_scene_path(s), in->paths[0]) == 0);
    (void)strlen(gseg_scene_crs_wkt(s));
    double gt[6];
    (void)gseg_scene_geotransform(s, gt);
    FUZZ_CHECK(gseg__scene_bytes_per_pixel(s) >= (size_t)nb);
    int bw = 0, bh = 0;
    gseg__scene_block_size(s, &bw, &bh);

    /* the tiling: small tiles half of the time, else anything gseg accepts */
    int tile = (tail[0] & 0x80) ? 8 + tail[1] % 249 : 8 + (((tail[0] & 0x7f) << 8) | tail[1]) % 16377;
    int overlap = ((tail[2] << 8) | tail[3]) % tile;
    gseg_grid g;
    st = gseg_grid_init(&g, w, h, tile, overlap);
    FUZZ_CHECK(st == GSEG_OK || st == GSEG_ERR_LIMIT);
    if (st == GSEG_OK) {
        check_grid(&g, gt);
        int n = gseg_grid_count(&g);
        int idx[3] = {0, n / 2, n - 1};
        for (int i = 0; i < 3; i++) {
            if (i && idx[i] == idx[i - 1]) continue;
            gseg_tile t;
            FUZZ_CHECK(gseg_grid_tile(&g, gt, idx[i], &t) == GSEG_OK);
            read_window(s, &lim, t.win, g.tile, g.tile);
        }
    }
    /* a fuzz-chosen window, padded a little */
    gseg_window win;
    win.x = (int)((long long)tail[5] * (w - 1) / 255);
    win.y = (int)((long long)tail[6] * (h - 1) / 255);
    win.w = 1 + (int)((tail[5] ^ tail[6]) % (unsigned)min_i(w - win.x, 64));
    win.h = 1 + (int)((tail[5] + tail[6]) % (unsigned)min_i(h - win.y, 64));
    read_window(s, &lim, win, win.w + (tail[7] & 7), win.h + ((tail[7] >> 3) & 7));
    /* the bottom-right pixel, padded to 8 x 8 */
    read_window(s, &lim, (gseg_window){w - 1, h - 1, 1, 1}, 8, 8);
    refuse_windows(s);
    reopen_by_selectors(in, s);
    copy_georef(s);
    gseg_scene_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in;
    unpack(&in, data, size);
    uint8_t tail[8] = {0};
    if (size >= 8) memcpy(tail, data + size - 8, 8);
    if (in.npaths > 0) run(&in, tail);
    VSIRmdirRecursive(DIR);
    CPLErrorReset();
    return 0;
}
