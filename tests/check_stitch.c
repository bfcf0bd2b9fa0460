/* check_stitch.c — blending is seamless, exact for per-pixel models, covers
 * every pixel once in raster order, and its memory does not grow with the
 * scene height. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A per-pixel "model": a value that depends only on the scene pixel. */
static float field(int x, int y, int k)
{
    uint32_t h = (uint32_t)x * 73856093u ^ (uint32_t)y * 19349663u ^ (uint32_t)k * 83492791u;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return (float)(h & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

typedef struct collect {
    int w, h, k;
    float *out;       /* [k][h][w] */
    uint8_t *valid;
    unsigned char *seen;
    int last_y, last_x_end, band_h;
    int order_ok;
} collect;

static gseg_status sink(void *user, gseg_window win, const float *scores, const uint8_t *valid)
{
    collect *c = user;
    /* raster order: same band continues left to right, or a new band starts
     * at x = 0 right below the previous one */
    if (win.y == c->last_y && win.h == c->band_h) {
        if (win.x != c->last_x_end) c->order_ok = 0;
    } else {
        if (win.x != 0 || c->last_x_end != c->w || win.y != c->last_y + c->band_h) c->order_ok = 0;
        c->last_y = win.y;
        c->band_h = win.h;
    }
    c->last_x_end = win.x + win.w;
    for (int y = 0; y < win.h; y++)
        for (int x = 0; x < win.w; x++) {
            size_t d = (size_t)(win.y + y) * c->w + win.x + x, s = (size_t)y * win.w + x;
            c->seen[d]++;
            c->valid[d] = valid[s];
            for (int k = 0; k < c->k; k++)
                c->out[(size_t)k * c->w * c->h + d] = scores[(size_t)k * win.w * win.h + s];
        }
    return GSEG_OK;
}

/* Runs a scene of w x h through the stitcher; tile (r, c) carries `fn` of the
 * pixel, or the constant tile_value(r, c) when fn is NULL. */
static void run(collect *c, int w, int h, int tile, int overlap, int k,
                float (*tile_value)(int r, int cc), int skip_index)
{
    memset(c, 0, sizeof *c);
    c->w = w;
    c->h = h;
    c->k = k;
    c->out = calloc((size_t)k * w * h, sizeof(float));
    c->valid = calloc((size_t)w * h, 1);
    c->seen = calloc((size_t)w * h, 1);
    c->last_y = 0;
    c->band_h = 0;
    c->last_x_end = w;
    c->order_ok = 1;
    gseg_grid g;
    ck_gseg(gseg_grid_init(&g, w, h, tile, overlap));
    gseg_stitcher *st = NULL;
    ck_gseg(gseg_stitcher_new(&g, k, sink, c, &st));
    float *sc = malloc((size_t)k * tile * tile * sizeof(float));
    uint8_t *va = malloc((size_t)tile * tile);
    for (int i = 0; i < gseg_grid_count(&g); i++) {
        gseg_tile t;
        ck_gseg(gseg_grid_tile(&g, NULL, i, &t));
        /* fill the whole padded tile, including garbage beyond the window */
        for (int kk = 0; kk < k; kk++)
            for (int y = 0; y < tile; y++)
                for (int x = 0; x < tile; x++)
                    sc[((size_t)kk * tile + y) * tile + x] =
                        (x < t.win.w && y < t.win.h)
                            ? (tile_value ? tile_value(t.row, t.col)
                                          : field(t.win.x + x, t.win.y + y, kk))
                            : 1e30f;
        for (int y = 0; y < tile; y++)
            for (int x = 0; x < tile; x++)
                va[(size_t)y * tile + x] = x < t.win.w && y < t.win.h;
        ck_gseg(gseg_stitcher_add(st, &t, i == skip_index ? NULL : sc, va));
    }
    gseg_stitcher_free(st);
    free(sc);
    free(va);
}

static void collect_free(collect *c)
{
    free(c->out);
    free(c->valid);
    free(c->seen);
}

START_TEST(test_exact_per_pixel)
{
    const int cfg[][4] = {
        /* w, h, tile, overlap */
        {100, 80, 32, 8},   {257, 129, 64, 16}, {64, 64, 64, 8},   {65, 65, 64, 8},
        {1, 1, 16, 4},      {10, 300, 16, 15},  {300, 10, 16, 0},  {200, 200, 40, 30},
        {129, 77, 16, 12},  {333, 222, 100, 1}, {50, 20, 512, 64}, {1000, 9, 64, 48},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof *cfg; i++) {
        collect c;
        int k = i % 3 == 0 ? 3 : 1;
        run(&c, cfg[i][0], cfg[i][1], cfg[i][2], cfg[i][3], k, NULL, -1);
        ck_assert_msg(c.order_ok, "windows out of raster order for config %zu", i);
        for (int y = 0; y < c.h; y++)
            for (int x = 0; x < c.w; x++) {
                size_t d = (size_t)y * c.w + x;
                ck_assert_msg(c.seen[d] == 1, "config %zu: pixel %d,%d delivered %d times", i, x,
                              y, c.seen[d]);
                ck_assert(c.valid[d] == 1);
                for (int kk = 0; kk < k; kk++)
                    ck_assert_msg(c.out[(size_t)kk * c.w * c.h + d] == field(x, y, kk),
                                  "config %zu: pixel %d,%d score %d differs", i, x, y, kk);
            }
        collect_free(&c);
    }
}
END_TEST

static float checker(int r, int cc) { return (float)((r + cc) % 2); }

START_TEST(test_smooth_blend)
{
    /* Tiles alternate 0 and 1: values must stay in [0, 1], change gradually
     * (no step larger than the raised-cosine slope allows) and reach both
     * extremes away from the zones. */
    int tile = 64, overlap = 16;
    collect c;
    run(&c, 400, 304, tile, overlap, 1, checker, -1); /* no shifted last tiles */
    float maxstep = 0;
    for (int y = 0; y < c.h; y++)
        for (int x = 0; x < c.w; x++) {
            float v = c.out[(size_t)y * c.w + x];
            ck_assert(v >= 0.0f && v <= 1.0f);
            if (x > 0) maxstep = fmaxf(maxstep, fabsf(v - c.out[(size_t)y * c.w + x - 1]));
            if (y > 0) maxstep = fmaxf(maxstep, fabsf(v - c.out[(size_t)(y - 1) * c.w + x]));
        }
    /* raised cosine over 16 px: max slope (pi/2)/16 ~ 0.098 per pixel */
    ck_assert_msg(maxstep < 0.1f, "largest jump %f", maxstep);
    ck_assert_msg(maxstep > 0.05f, "no transition at all? %f", maxstep);
    ck_assert(c.out[10 * c.w + 10] == 0.0f); /* tile (0,0) alone */
    ck_assert(c.out[10 * c.w + 80] == 1.0f); /* tile (0,1) alone: x in [64, 96) */
    collect_free(&c);
}
END_TEST

START_TEST(test_skipped_tile_is_nodata)
{
    collect c;
    run(&c, 200, 100, 64, 16, 1, NULL, 1); /* tile 1 (row 0, col 1) skipped */
    gseg_grid g;
    ck_gseg(gseg_grid_init(&g, 200, 100, 64, 16));
    gseg_tile t;
    ck_gseg(gseg_grid_tile(&g, NULL, 1, &t));
    /* the tile's centre is invalid; a pixel of tile 0 far from it is valid */
    int cx = t.win.x + t.win.w / 2, cy = t.win.y + t.win.h / 2 - 20;
    ck_assert_int_eq(c.valid[(size_t)cy * c.w + cx], 0);
    ck_assert_int_eq(c.valid[(size_t)5 * c.w + 5], 1);
    for (size_t i = 0; i < (size_t)c.w * c.h; i++) ck_assert(c.seen[i] == 1);
    collect_free(&c);
}
END_TEST

static gseg_status null_sink(void *u, gseg_window w, const float *s, const uint8_t *v)
{
    (void)u; (void)w; (void)s; (void)v;
    return GSEG_OK;
}

START_TEST(test_memory_independent_of_height)
{
    gseg_grid a, b;
    ck_gseg(gseg_grid_init(&a, 4096, 4096, 512, 64));
    ck_gseg(gseg_grid_init(&b, 4096, 1000000, 512, 64));
    gseg_stitcher *sa = NULL, *sb = NULL;
    ck_gseg(gseg_stitcher_new(&a, 1, null_sink, NULL, &sa));
    ck_gseg(gseg_stitcher_new(&b, 1, null_sink, NULL, &sb));
    size_t na = gseg_stitcher_buffer_bytes(sa), nb = gseg_stitcher_buffer_bytes(sb);
    ck_assert_uint_gt(na, 0);
    ck_assert_uint_eq(na, nb);
    /* and it is far below one float per scene pixel */
    ck_assert_uint_lt(na, (size_t)4096 * 4096 * sizeof(float) / 4);
    gseg_stitcher_free(sa);
    gseg_stitcher_free(sb);
}
END_TEST

START_TEST(test_order_enforced)
{
    gseg_grid g;
    ck_gseg(gseg_grid_init(&g, 100, 100, 32, 8));
    gseg_stitcher *s = NULL;
    ck_gseg(gseg_stitcher_new(&g, 1, null_sink, NULL, &s));
    gseg_tile t;
    ck_gseg(gseg_grid_tile(&g, NULL, 1, &t));
    ck_assert_int_eq(gseg_stitcher_add(s, &t, NULL, NULL), GSEG_ERR_ARG);
    gseg_stitcher_free(s);
    gseg_stitcher_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stitch");
    TCase *tc = tcase_create("blend");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_exact_per_pixel);
    tcase_add_test(tc, test_smooth_blend);
    tcase_add_test(tc, test_skipped_tile_is_nodata);
    tcase_add_test(tc, test_memory_independent_of_height);
    tcase_add_test(tc, test_order_enforced);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
