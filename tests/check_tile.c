/* check_tile.c — the tile grid covers every pixel, shifts the last tiles
 * inward, pads small scenes, and georeferences each tile. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Checks coverage and placement for one configuration. */
static void check_cover(int w, int h, int tile, int overlap)
{
    gseg_grid g;
    ck_gseg(gseg_grid_init(&g, w, h, tile, overlap));
    unsigned char *cov = calloc((size_t)w * h, 1);
    int n = gseg_grid_count(&g);
    ck_assert_int_eq(n, g.ncols * g.nrows);
    for (int i = 0; i < n; i++) {
        gseg_tile t;
        ck_gseg(gseg_grid_tile(&g, NULL, i, &t));
        ck_assert_int_eq(t.index, i);
        ck_assert_int_eq(t.row * g.ncols + t.col, i);
        ck_assert(t.win.x >= 0 && t.win.y >= 0);
        ck_assert_int_le(t.win.x + t.win.w, w);
        ck_assert_int_le(t.win.y + t.win.h, h);
        ck_assert_int_eq(t.win.w, w < tile ? w : tile);
        ck_assert_int_eq(t.win.h, h < tile ? h : tile);
        if (t.col == g.ncols - 1) ck_assert_int_eq(t.win.x + t.win.w, w);
        if (t.row == g.nrows - 1) ck_assert_int_eq(t.win.y + t.win.h, h);
        if (t.col > 0 && t.col < g.ncols - 1) ck_assert_int_eq(t.win.x, t.col * (tile - overlap));
        for (int y = t.win.y; y < t.win.y + t.win.h; y++)
            for (int x = t.win.x; x < t.win.x + t.win.w; x++)
                if (cov[(size_t)y * w + x] < 255) cov[(size_t)y * w + x]++;
    }
    for (size_t i = 0; i < (size_t)w * h; i++) ck_assert_msg(cov[i] >= 1, "pixel %zu uncovered", i);
    /* No more tiles than needed: dropping the last column would leave pixels. */
    if (w > tile) ck_assert_int_eq(g.ncols, 1 + (w - tile + (tile - overlap) - 1) / (tile - overlap));
    free(cov);
}

START_TEST(test_cover_many)
{
    const int sizes[] = {1, 7, 8, 63, 64, 65, 100, 257};
    const int tiles[][2] = {{8, 0}, {16, 4}, {64, 16}, {32, 31}, {128, 0}};
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
        for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b += 2)
            for (size_t t = 0; t < sizeof tiles / sizeof *tiles; t++)
                check_cover(sizes[a], sizes[b], tiles[t][0], tiles[t][1]);
    check_cover(1000, 999, 64, 16);
    check_cover(10980, 3, 512, 64); /* a Sentinel-2 10 m row */
}
END_TEST

START_TEST(test_small_scene_padded)
{
    gseg_grid g;
    ck_gseg(gseg_grid_init(&g, 1, 1, 512, 64));
    ck_assert_int_eq(gseg_grid_count(&g), 1);
    gseg_tile t;
    ck_gseg(gseg_grid_tile(&g, NULL, 0, &t));
    ck_assert_int_eq(t.win.w, 1);
    ck_assert_int_eq(t.win.h, 1);
    ck_gseg(gseg_grid_init(&g, 300, 200, 512, 64));
    ck_assert_int_eq(gseg_grid_count(&g), 1);
    ck_gseg(gseg_grid_tile(&g, NULL, 0, &t));
    ck_assert_int_eq(t.win.w, 300);
    ck_assert_int_eq(t.win.h, 200);
}
END_TEST

START_TEST(test_tile_equal_scene)
{
    gseg_grid g;
    ck_gseg(gseg_grid_init(&g, 512, 512, 512, 64));
    ck_assert_int_eq(gseg_grid_count(&g), 1);
    ck_gseg(gseg_grid_init(&g, 513, 512, 512, 64));
    ck_assert_int_eq(g.ncols, 2);
    gseg_tile t;
    ck_gseg(gseg_grid_tile(&g, NULL, 1, &t));
    ck_assert_int_eq(t.win.x, 1); /* shifted inward to end at the edge */
}
END_TEST

START_TEST(test_bad_args)
{
    gseg_grid g;
    ck_assert_int_eq(gseg_grid_init(&g, 100, 100, 64, 64), GSEG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "overlap"));
    ck_assert_int_eq(gseg_grid_init(&g, 100, 100, 64, 100), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg_grid_init(&g, 100, 100, 64, -1), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg_grid_init(&g, 0, 100, 64, 8), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg_grid_init(&g, 100, 100, 4, 0), GSEG_ERR_ARG);
    ck_gseg(gseg_grid_init(&g, 100, 100, 64, 8));
    gseg_tile t;
    ck_assert_int_eq(gseg_grid_tile(&g, NULL, gseg_grid_count(&g), &t), GSEG_ERR_ARG);
    ck_assert_int_eq(gseg_grid_tile(&g, NULL, -1, &t), GSEG_ERR_ARG);
}
END_TEST

START_TEST(test_tile_geotransform)
{
    /* A rotated, sheared geotransform: each tile's origin is the scene
     * transform applied to its top-left pixel; the linear terms carry over. */
    const double gt[6] = {500000.0, 29.5, 3.25, 4000000.0, -2.5, -30.25};
    gseg_grid g;
    ck_gseg(gseg_grid_init(&g, 1000, 700, 256, 32));
    for (int i = 0; i < gseg_grid_count(&g); i++) {
        gseg_tile t;
        ck_gseg(gseg_grid_tile(&g, gt, i, &t));
        double ex = gt[0] + t.win.x * gt[1] + t.win.y * gt[2];
        double ey = gt[3] + t.win.x * gt[4] + t.win.y * gt[5];
        ck_assert_double_eq_tol(t.geotransform[0], ex, 1e-6);
        ck_assert_double_eq_tol(t.geotransform[3], ey, 1e-6);
        ck_assert(t.geotransform[1] == gt[1] && t.geotransform[2] == gt[2]);
        ck_assert(t.geotransform[4] == gt[4] && t.geotransform[5] == gt[5]);
        /* a pixel of the tile maps to the same place as in the scene */
        double px = 17, py = 5;
        double tx = t.geotransform[0] + px * t.geotransform[1] + py * t.geotransform[2];
        double sx = gt[0] + (t.win.x + px) * gt[1] + (t.win.y + py) * gt[2];
        ck_assert_double_eq_tol(tx, sx, 1e-6);
    }
}
END_TEST

START_TEST(test_tile_count_overflow)
{
    /* Found by fuzz/fuzz_scene.c (fuzz/corpus/fuzz_scene/regress-grid-count-
     * overflow): a PNG declaring 1,000,000 x 1,000,000 pixels in tiles of 15
     * overlapping by 2 needs 5.9e9 tiles, and gseg_grid_count's ncols * nrows
     * overflowed int (UB; garbage tile counts and indexes). gseg_grid_init
     * now refuses grids of more than INT_MAX tiles. */
    gseg_init();
    gseg_scene *s = NULL;
    const char *path[] = {tu_src("fuzz/corpus/fuzz_scene/regress-grid-count-overflow")};
    ck_gseg(gseg_scene_open(path, 1, NULL, &s));
    gseg_grid g;
    ck_assert_int_eq(gseg_grid_init(&g, gseg_scene_width(s), gseg_scene_height(s), 15, 2),
                     GSEG_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "tiles"));
    gseg_scene_free(s);
    ck_assert_int_eq(gseg_grid_init(&g, 1 << 20, 1 << 20, 8, 7), GSEG_ERR_LIMIT);
    /* the largest square grid that fits: 46340 x 46340 tiles */
    ck_gseg(gseg_grid_init(&g, 46340 + 7, 46340 + 7, 8, 7));
    ck_assert_int_eq(gseg_grid_count(&g), 46340 * 46340);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tile");
    TCase *tc = tcase_create("grid");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cover_many);
    tcase_add_test(tc, test_small_scene_padded);
    tcase_add_test(tc, test_tile_equal_scene);
    tcase_add_test(tc, test_bad_args);
    tcase_add_test(tc, test_tile_geotransform);
    tcase_add_test(tc, test_tile_count_overflow);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
