/* check_net.c — the ResNet U-Net: shapes, the model file, BatchNorm
 * folding, bf16, training steps, and agreement with the Python peers
 * (torchvision's ResNet and segmentation-models-pytorch's Unet, run by
 * the scripts in tests/peers under /usr/bin/python3, exchanging safetensors files).
 *
 * libtorch's thread pool does not survive fork(): meson runs this suite
 * with CK_FORK=no. */
#include "testutil.h"

#include "internal.h"
#include "net.h"
#include "safetensors.h"

#include <cpl_conv.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;

static void setup(void)
{
    gseg_init();
    free(dir);
    dir = tu_tmpdir("check_net");
}

static const char *path(const char *name) { return tu_path(dir, name); }

/* Deterministic pseudo-random input in about [-2, 2]. */
static float *random_input(size_t n, unsigned seed)
{
    float *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((float)(s >> 8) / 16777216.0f) * 4.0f - 2.0f;
    }
    return x;
}

static gseg_model_def def_for(const char *encoder, int nbands, int nclasses)
{
    gseg_model_def d = gseg_model_def_default();
    d.encoder = encoder;
    d.nbands = nbands;
    d.nclasses = nclasses;
    d.seed = 7;
    return d;
}

static gseg_model_options fp32(int fold)
{
    gseg_model_options o = gseg_model_options_default();
    o.precision = GSEG_PRECISION_FP32;
    o.fold_bn = fold;
    o.threads = 2;
    return o;
}

/* Writes one float tensor x (N,C,H,W) to a safetensors file. */
static void write_input(const char *file, const float *x, int n, int c, int h, int w)
{
    gseg__st_writer *wr = gseg__st_writer_new();
    int64_t shape[4] = {n, c, h, w};
    ck_gseg(gseg__st_writer_add(wr, "x", GSEG__ST_F32, 4, shape, x));
    ck_gseg(gseg__st_writer_write(wr, file));
    gseg__st_writer_free(wr);
}

/* Reads tensor `name` of a safetensors file; checks its element count. */
static float *read_tensor(const char *file, const char *name, int64_t numel)
{
    gseg__st_file *f = NULL;
    ck_gseg(gseg__st_open(file, &f));
    const gseg__st_tensor *t = gseg__st_find(f, name);
    ck_assert_msg(t != NULL, "%s: no tensor %s", file, name);
    ck_assert_int_eq(gseg__st_numel(t), numel);
    float *v = malloc((size_t)numel * sizeof *v);
    ck_gseg(gseg__st_read_f32(f, t, v, numel));
    gseg__st_close(f);
    return v;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

/* Runs "/usr/bin/python3 tests/peers/<fmt...>"; returns its exit status. */
static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

/* fp32 rounding differs between kernels (oneDNN's algorithms, folded
 * weights) and grows with depth and with the size of the activations, so
 * tolerances are relative to the largest value compared: 1e-4 of it. */
static int peer(const char *fmt, ...) GSEG__PRINTF(1, 2);
static int peer(const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tu_system("/usr/bin/python3 %s/%s", tu_src("tests/peers"), args);
}

/* The peers' PyTorch as major * 100 + minor (gseg__net_torch_version's
 * form), -1 if unknown. */
static int peer_torch_version(void)
{
    int v = -1, major, minor;
    if (tu_system("/usr/bin/python3 -c 'import torch; print(torch.__version__)' > %s 2>/dev/null",
                  path("peer_torch.txt")) != 0)
        return -1;
    FILE *f = fopen(path("peer_torch.txt"), "r");
    if (f && fscanf(f, "%d.%d", &major, &minor) == 2) v = major * 100 + minor;
    if (f) fclose(f);
    return v;
}

/* Makes every BatchNorm non-trivial: a few training steps would do, but
 * setting the statistics directly keeps the test fast and exact. */
static void perturb_bn(gseg_model *m)
{
    gseg__net *net = gseg__netmodel_net(m);
    for (int i = 0; i < gseg__net_tensor_count(net); i++) {
        const char *nm = gseg__net_tensor_name(net, i);
        int64_t n = gseg__net_tensor_numel(net, i);
        int mean = strstr(nm, "running_mean") != NULL, var = strstr(nm, "running_var") != NULL;
        int bnw = !mean && !var && strstr(nm, ".bn") && strstr(nm, ".weight");
        if (!mean && !var && !bnw) continue;
        float *v = malloc((size_t)n * sizeof *v);
        for (int64_t k = 0; k < n; k++) {
            float r = (float)((k * 2654435761u + (uint64_t)i * 97) % 1000) / 1000.0f;
            v[k] = mean ? 0.2f * (r - 0.5f) : var ? 0.5f + r : 0.8f + 0.4f * r;
        }
        ck_gseg(gseg__net_tensor_set(net, i, v, n));
        free(v);
    }
}

START_TEST(test_shapes_bands_and_odd_sizes)
{
    const int sizes[][2] = {{32, 32}, {33, 47}, {1, 1}, {70, 40}};
    for (int bands = 1; bands <= 12; bands++) {
        int classes = bands % 3 == 0 ? 3 : 2, outputs = classes == 2 ? 1 : classes;
        gseg_model_def d = def_for("resnet18", bands, classes);
        gseg_model_options o = fp32(1);
        gseg_model *m = NULL;
        ck_gseg(gseg_model_new(&d, &o, &m));
        ck_assert_int_eq(gseg_model_nbands(m), bands);
        ck_assert_int_eq(gseg_model_nscores(m), outputs);
        const int *hw = sizes[bands % 4];
        int n = 2, h = hw[0], w = hw[1];
        size_t plane = (size_t)h * w;
        float *x = random_input((size_t)n * bands * plane, (unsigned)bands);
        size_t nout = (size_t)n * outputs * plane;
        float *y = malloc((nout + 1) * sizeof *y);
        y[nout] = 12345.0f; /* guard: nothing written past the output */
        ck_gseg(gseg_model_forward(m, x, n, h, w, NULL, y));
        ck_assert_float_eq(y[nout], 12345.0f);
        for (size_t i = 0; i < nout; i++) ck_assert(y[i] >= 0.0f && y[i] <= 1.0f);
        if (outputs > 1)
            for (int b = 0; b < n; b++)
                for (size_t p = 0; p < plane; p++) {
                    double s = 0;
                    for (int k = 0; k < outputs; k++) s += y[((size_t)b * outputs + k) * plane + p];
                    ck_assert_double_eq_tol(s, 1.0, 1e-5);
                }
        free(x);
        free(y);
        gseg_model_free(m);
    }
}
END_TEST

START_TEST(test_resnet50_parameter_count)
{
    gseg_model_def d = def_for("resnet50", 3, 2);
    gseg_model *m = NULL;
    ck_gseg(gseg_model_new(&d, NULL, &m));
    /* segmentation-models-pytorch: Unet("resnet50", in_channels=3, classes=1) */
    ck_assert_int_eq(gseg__net_param_count(gseg__netmodel_net(m)), 32521105);
    ck_assert_str_eq(gseg_model_encoder(m), "resnet50");
    gseg_model_free(m);
}
END_TEST

START_TEST(test_save_load_bit_identical)
{
    gseg_model_def d = def_for("resnet34", 5, 3);
    const char *bands[] = {"B2", "B3", "B4", "B8", "B11"};
    const double mean[] = {100, 200, 300, 400, 500}, sd[] = {10, 20, 30, 40, 50};
    const char *classes[] = {"background", "clean ice", "debris"};
    d.bands = bands;
    d.mean = mean;
    d.std = sd;
    d.classes = classes;
    d.tile = 384;
    d.overlap = 48;
    gseg_model_options o = fp32(1);
    gseg_model *m = NULL, *r = NULL;
    ck_gseg(gseg_model_new(&d, &o, &m));
    perturb_bn(m);
    ck_gseg(gseg_model_set_provenance(m, "{\"epochs\": 3, \"note\": \"test \\u00e9\"}"));
    ck_gseg(gseg_model_save(m, path("m.gseg")));
    ck_gseg(gseg_model_open(path("m.gseg"), &o, &r));
    ck_assert_int_eq(gseg_model_tile(r), 384);
    ck_assert_int_eq(gseg_model_overlap(r), 48);
    ck_assert_str_eq(gseg_model_band(r, 3), "B8");
    char *js = gseg_model_describe(r, 1);
    ck_assert_ptr_nonnull(strstr(js, "\"clean ice\""));
    ck_assert_ptr_nonnull(strstr(js, "\"epochs\": 3"));
    ck_assert_ptr_nonnull(strstr(js, "\"std\": 50"));
    gseg_free(js);

    int n = 2, h = 45, w = 61;
    size_t in = (size_t)n * 5 * h * w, out = (size_t)n * 3 * h * w;
    float *x = random_input(in, 3), *y1 = malloc(out * 4), *y2 = malloc(out * 4);
    for (size_t i = 0; i < in; i++) x[i] = x[i] * 100 + 300;
    ck_gseg(gseg_model_forward(m, x, n, h, w, NULL, y1));
    ck_gseg(gseg_model_forward(r, x, n, h, w, NULL, y2));
    ck_assert_int_eq(memcmp(y1, y2, out * 4), 0);
    /* Saving the reloaded model gives the same state dict bytes. */
    ck_gseg(gseg_model_export(m, path("a.safetensors")));
    ck_gseg(gseg_model_export(r, path("b.safetensors")));
    ck_assert_int_eq(tu_system("cmp -s %s %s", path("a.safetensors"), path("b.safetensors")), 0);
    free(x);
    free(y1);
    free(y2);
    gseg_model_free(m);
    gseg_model_free(r);
}
END_TEST

/* The forward arena (src/infer/alloc.cpp) against the plain heap: the same
 * weights give bit-identical outputs over a run of shapes (a partial batch,
 * a new tile size, test-time augmentation's four passes), and each shape is
 * recorded once, even when shapes alternate (full and partial batches, as
 * the GDAL driver's tile rows give): later calls follow the plan. */
START_TEST(test_forward_arena)
{
    gseg_model_def d = def_for("resnet18", 3, 3);
    gseg_model_options o = fp32(1);
    gseg_model *m = NULL, *ref = NULL;
    ck_gseg(gseg_model_new(&d, &o, &m));
    ck_gseg(gseg_model_save(m, path("arena.gseg")));
    ck_gseg(gseg_model_open(path("arena.gseg"), &o, &ref));
    gseg__net *an = gseg__netmodel_net(m), *rn = gseg__netmodel_net(ref);
    ck_gseg(gseg__net_prepare(an, "cpu", GSEG_PRECISION_FP32, 2, 1));
    ck_gseg(gseg__net_prepare(rn, "cpu", GSEG_PRECISION_FP32, 2, 1));
    const struct { int n, h, w, tta; } calls[] = {
        {2, 64, 64, 0}, {2, 64, 64, 0}, {2, 64, 64, 0}, {1, 64, 64, 0}, {2, 64, 64, 0},
        {2, 64, 64, 0}, {1, 64, 64, 0}, {2, 48, 80, 1}, {2, 48, 80, 1}, {2, 48, 80, 1},
        {2, 64, 64, 0}};
    int shapes = 0; /* distinct shapes so far */
    size_t most = (size_t)2 * 3 * 64 * 80; /* 3 bands in, 3 classes out */
    float *x = random_input(most, 11), *a = malloc(most * 4), *b = malloc(most * 4);
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        int n = calls[i].n, h = calls[i].h, w = calls[i].w, seen = 0;
        for (size_t j = 0; j < i; j++)
            seen |= calls[j].n == n && calls[j].h == h && calls[j].w == w &&
                    calls[j].tta == calls[i].tta;
        shapes += !seen;
        gseg__net_set_tta(an, calls[i].tta);
        gseg__net_set_tta(rn, calls[i].tta);
        /* The reference's arena is never made (GSEG_FORWARD_ARENA=NO at its
         * first call). */
        CPLSetConfigOption("GSEG_FORWARD_ARENA", "NO");
        ck_gseg(gseg__net_forward(rn, x, n, 3, h, w, b, 1));
        CPLSetConfigOption("GSEG_FORWARD_ARENA", NULL);
        ck_gseg(gseg__net_forward(an, x, n, 3, h, w, a, 1));
        size_t out = (size_t)n * 3 * h * w, bytes = 0;
        int rec = 0;
        ck_assert_msg(memcmp(a, b, out * 4) == 0, "call %zu: the arena changed the output", i);
        gseg__net_arena_stats(an, &bytes, &rec);
        ck_assert_int_eq(rec, shapes);
        ck_assert_msg(bytes > 0, "call %zu: no plan", i);
        gseg__net_arena_stats(rn, &bytes, &rec);
        ck_assert_int_eq(bytes, 0);
        ck_assert_int_eq(rec, 0);
    }
    free(x);
    free(a);
    free(b);
    gseg_model_free(m);
    gseg_model_free(ref);
}
END_TEST

START_TEST(test_folded_equals_unfolded)
{
    gseg_model_def d = def_for("resnet50", 6, 2);
    gseg_model_options of = fp32(1), ou = fp32(0);
    gseg_model *m = NULL, *u = NULL;
    ck_gseg(gseg_model_new(&d, &of, &m));
    perturb_bn(m);
    ck_gseg(gseg_model_save(m, path("f.gseg")));
    ck_gseg(gseg_model_open(path("f.gseg"), &ou, &u));
    int n = 2, h = 64, w = 96;
    size_t in = (size_t)n * 6 * h * w, out = (size_t)n * h * w;
    float *x = random_input(in, 5), *a = malloc(out * 4), *b = malloc(out * 4);
    ck_gseg(gseg__net_prepare(gseg__netmodel_net(m), "cpu", GSEG_PRECISION_FP32, 2, 1));
    ck_gseg(gseg__net_prepare(gseg__netmodel_net(u), "cpu", GSEG_PRECISION_FP32, 2, 0));
    ck_gseg(gseg__net_forward(gseg__netmodel_net(m), x, n, 6, h, w, a, 1));
    ck_gseg(gseg__net_forward(gseg__netmodel_net(u), x, n, 6, h, w, b, 1));
    double diff = max_abs_diff(a, b, out), scale = max_abs(b, out);
    fprintf(stderr, "folded vs unfolded BatchNorm, logits: max |diff| = %.3g (max |logit| %.3g)\n",
            diff, scale);
    ck_assert_msg(diff < 1e-4 * fmax(1.0, scale), "folded differs from unfolded by %g", diff);
    free(x);
    free(a);
    free(b);
    gseg_model_free(m);
    gseg_model_free(u);
}
END_TEST

/* A resnet18 U-Net trained for `steps` on a pixel rule (glacier where band 0
 * > band 1); x and t get the n x 2 x 32 x 32 tiles and targets. */
static gseg_model *train_rule_net(int steps, int n, float **x, float **t, uint8_t **v,
                                  double *first, double *last)
{
    gseg_model_def d = def_for("resnet18", 2, 2);
    gseg_model_options o = fp32(1);
    gseg_model *m = NULL;
    ck_gseg(gseg_model_new(&d, &o, &m));
    gseg__net *net = gseg__netmodel_net(m);
    ck_gseg(gseg__net_train_setup(net, 3e-3, 1e-4, GSEG_PRECISION_FP32));
    int h = 32, w = 32;
    size_t plane = (size_t)h * w;
    *x = random_input((size_t)n * 2 * plane, 21);
    *t = malloc((size_t)n * plane * 4);
    *v = malloc((size_t)n * plane);
    for (int b = 0; b < n; b++)
        for (size_t i = 0; i < plane; i++) {
            const float *xb = *x + (size_t)b * 2 * plane;
            (*t)[b * plane + i] = xb[i] > xb[plane + i];
            (*v)[b * plane + i] = i % 17 != 0; /* some pixels excluded */
        }
    for (int step = 0; step < steps; step++) {
        double loss;
        ck_gseg(gseg__net_train_step(net, *x, n, 2, h, w, *t, *v, &loss));
        if (step == 0) *first = loss;
        *last = loss;
    }
    return m;
}

START_TEST(test_bf16_agrees_with_fp32)
{
    if (!gseg__cpu_has_bf16())
        fprintf(stderr, "note: no native bf16 on this CPU (avx512_bf16/AMX): oneDNN emulates it\n");
    /* On a trained network, whose outputs are decided. */
    float *x, *t;
    uint8_t *v;
    double first, last;
    int n = 4;
    size_t out = (size_t)n * 32 * 32;
    gseg_model *m = train_rule_net(60, n, &x, &t, &v, &first, &last);
    gseg__net *net = gseg__netmodel_net(m);
    float *p = malloc(out * 4), *q = malloc(out * 4);
    ck_gseg(gseg__net_prepare(net, "cpu", GSEG_PRECISION_FP32, 2, 1));
    ck_gseg(gseg__net_forward(net, x, n, 2, 32, 32, p, 0));
    ck_gseg(gseg__net_prepare(net, "cpu", GSEG_PRECISION_BF16, 2, 1));
    ck_assert_int_eq(gseg__net_precision(net), GSEG_PRECISION_BF16);
    ck_gseg(gseg__net_forward(net, x, n, 2, 32, 32, q, 0));
    double sum = 0, mx = 0;
    size_t agree = 0;
    for (size_t i = 0; i < out; i++) {
        double d = fabs((double)p[i] - q[i]);
        sum += d;
        mx = fmax(mx, d);
        agree += (p[i] > 0.5f) == (q[i] > 0.5f);
    }
    double share = (double)agree / (double)out;
    fprintf(stderr, "bf16 vs fp32, trained resnet18: probabilities mean |diff| %.4f, max %.4f; "
                    "masks agree on %.3f %% of pixels\n", sum / (double)out, mx, 100 * share);
    ck_assert_msg(sum / (double)out < 0.01, "bf16 mean |diff| %g", sum / (double)out);
    ck_assert_msg(share >= 0.99, "bf16 masks agree on %g only", share);
    free(x);
    free(t);
    free(v);
    free(p);
    free(q);
    gseg_model_free(m);

    /* AUTO picks bf16 exactly when the CPU has it. */
    gseg_model_def d = def_for("resnet18", 2, 2);
    ck_gseg(gseg_model_new(&d, NULL, &m));
    float z[2 * 32 * 32] = {0}, y[32 * 32];
    ck_gseg(gseg_model_forward(m, z, 1, 32, 32, NULL, y));
    ck_assert_int_eq(gseg__net_precision(gseg__netmodel_net(m)),
                     gseg__cpu_has_bf16() ? GSEG_PRECISION_BF16 : GSEG_PRECISION_FP32);
    gseg_model_free(m);
}
END_TEST

START_TEST(test_train_step_drives_loss_down)
{
    float *x, *t;
    uint8_t *v;
    double first, last;
    int n = 4, h = 32, w = 32;
    size_t plane = (size_t)h * w;
    gseg_model *m = train_rule_net(40, n, &x, &t, &v, &first, &last);
    gseg__net *net = gseg__netmodel_net(m);
    gseg_model_options o = fp32(1);
    fprintf(stderr, "training: loss %.4f -> %.4f after 40 steps\n", first, last);
    ck_assert_msg(last < 0.5 * first, "loss %g -> %g", first, last);
    /* The trained net predicts the rule on its (training) tiles. */
    float *y = malloc((size_t)n * plane * 4);
    ck_gseg(gseg__net_forward(net, x, n, 2, h, w, y, 0));
    size_t right = 0;
    for (size_t i = 0; i < (size_t)n * plane; i++) right += (y[i] > 0.5f) == (t[i] > 0.5f);
    fprintf(stderr, "training: %.1f %% of pixels right\n", 100.0 * right / (n * plane));
    ck_assert(right > 0.8 * n * plane);
    /* Multi-class loss runs too. */
    gseg_model *mc = NULL;
    gseg_model_def d3 = def_for("resnet18", 2, 3);
    ck_gseg(gseg_model_new(&d3, &o, &mc));
    ck_gseg(gseg__net_train_setup(gseg__netmodel_net(mc), 1e-3, 0, GSEG_PRECISION_FP32));
    for (size_t i = 0; i < (size_t)n * plane; i++) t[i] = (float)(i % 3);
    double l3;
    ck_gseg(gseg__net_train_step(gseg__netmodel_net(mc), x, n, 2, h, w, t, NULL, &l3));
    ck_assert(isfinite(l3) && l3 > 0);
    free(x);
    free(t);
    free(v);
    free(y);
    gseg_model_free(m);
    gseg_model_free(mc);
}
END_TEST

START_TEST(test_torchvision_encoder_features)
{
    ck_assert_int_eq(peer("tv_peer.py make --arch resnet50 --seed 5 --out %s",
                          path("tv.safetensors")), 0);
    int n = 2, c = 3, h = 96, w = 64;
    float *x = random_input((size_t)n * c * h * w, 9);
    write_input(path("tv_in.safetensors"), x, n, c, h, w);
    ck_assert_int_eq(peer("tv_peer.py features --weights %s --input %s --out %s",
                          path("tv.safetensors"), path("tv_in.safetensors"),
                          path("tv_out.safetensors")), 0);
    gseg_model_def d = def_for("resnet50", 3, 2);
    gseg_model_options o = fp32(0);
    gseg_model *m = NULL;
    ck_gseg(gseg_model_new(&d, &o, &m));
    ck_gseg(gseg_model_init_encoder(m, path("tv.safetensors")));
    gseg__net *net = gseg__netmodel_net(m);
    for (int fold = 0; fold <= 1; fold++) {
        ck_gseg(gseg__net_prepare(net, "cpu", GSEG_PRECISION_FP32, 2, fold));
        for (int level = 1; level <= 5; level++) {
            int64_t cap = (int64_t)n * 2048 * h * w / 4, shape[4];
            float *f = malloc((size_t)cap * 4);
            ck_gseg(gseg__net_features(net, x, n, c, h, w, level, f, cap, shape));
            int64_t numel = shape[0] * shape[1] * shape[2] * shape[3];
            char name[8];
            snprintf(name, sizeof name, "f%d", level);
            float *ref = read_tensor(path("tv_out.safetensors"), name, numel);
            double mx = 0, scale = 0;
            for (int64_t i = 0; i < numel; i++) {
                mx = fmax(mx, fabs((double)f[i] - ref[i]));
                scale = fmax(scale, fabs((double)ref[i]));
            }
            fprintf(stderr, "torchvision %s: f%d [%lld,%lld,%lld,%lld] max |diff| %.3g (max |f| %.3g)\n",
                    fold ? "folded" : "unfolded", level, (long long)shape[0], (long long)shape[1],
                    (long long)shape[2], (long long)shape[3], mx, scale);
            ck_assert_msg(mx < 1e-4 * fmax(1.0, scale), "f%d differs by %g", level, mx);
            free(f);
            free(ref);
        }
    }
    free(x);
    gseg_model_free(m);
}
END_TEST

/* gseg and SMP agree on the same weights: SMP -> safetensors -> gseg, and
 * gseg -> safetensors -> SMP. */
static void compare_with_smp(const char *encoder, int bands, int classes_out, const char *weights,
                             gseg_model *m)
{
    int n = 2, h = 64, w = 96;
    float *x = random_input((size_t)n * bands * h * w, 13);
    write_input(path("smp_in.safetensors"), x, n, bands, h, w);
    ck_assert_int_eq(peer("smp_peer.py forward --encoder %s --bands %d --classes %d --weights %s "
                          "--input %s --out %s --threads 2",
                          encoder, bands, classes_out, weights, path("smp_in.safetensors"),
                          path("smp_out.safetensors")), 0);
    size_t out = (size_t)n * classes_out * h * w;
    float *ref = read_tensor(path("smp_out.safetensors"), "logits", (int64_t)out);
    float *y = malloc(out * 4);
    gseg__net *net = gseg__netmodel_net(m);
    for (int fold = 0; fold <= 1; fold++) {
        ck_gseg(gseg__net_prepare(net, "cpu", GSEG_PRECISION_FP32, 2, fold));
        ck_gseg(gseg__net_forward(net, x, n, bands, h, w, y, 1));
        double mx = max_abs_diff(y, ref, out), scale = max_abs(ref, out);
        fprintf(stderr, "SMP %s %d bands %d outputs (%s BN): max |logit diff| %.3g (max |logit| %.3g)\n",
                encoder, bands, classes_out, fold ? "folded" : "unfolded", mx, scale);
        ck_assert_msg(mx < 1e-4 * fmax(1.0, scale), "gseg and SMP differ by %g", mx);
    }
    free(x);
    free(ref);
    free(y);
}

START_TEST(test_smp_to_gseg)
{
    ck_assert_int_eq(peer("smp_peer.py make --encoder resnet50 --bands 4 --classes 1 --seed 1 "
                          "--out %s", path("smp.safetensors")), 0);
    ck_assert_int_eq(tu_system("%s %s -o %s --bands B3,B4,B8,B11 -q", tu_build("src/tools/gseg-import"),
                               path("smp.safetensors"), path("smp.gseg")), 0);
    gseg_model *m = NULL;
    gseg_model_options o = fp32(1);
    ck_gseg(gseg_model_open(path("smp.gseg"), &o, &m));
    compare_with_smp("resnet50", 4, 1, path("smp.safetensors"), m);
    gseg_model_free(m);
    /* A 3-class resnet34 too. */
    ck_assert_int_eq(peer("smp_peer.py make --encoder resnet34 --bands 2 --classes 3 --seed 2 "
                          "--out %s", path("smp3.safetensors")), 0);
    ck_gseg(gseg_model_import(path("smp3.safetensors"), NULL, &o, &m));
    ck_assert_int_eq(gseg_model_nscores(m), 3);
    compare_with_smp("resnet34", 2, 3, path("smp3.safetensors"), m);
    gseg_model_free(m);
}
END_TEST

START_TEST(test_gseg_to_smp)
{
    gseg_model_def d = def_for("resnet50", 7, 2);
    gseg_model_options o = fp32(1);
    gseg_model *m = NULL;
    ck_gseg(gseg_model_new(&d, &o, &m));
    perturb_bn(m);
    ck_gseg(gseg_model_save(m, path("g.gseg")));
    ck_assert_int_eq(tu_system("%s %s -o %s -q", tu_build("src/tools/gseg-export"), path("g.gseg"),
                               path("g.safetensors")), 0);
    /* Both the export and the .gseg itself load strictly into SMP. */
    ck_assert_int_eq(peer("smp_peer.py check-load --encoder resnet50 --bands 7 --classes 1 "
                          "--weights %s", path("g.safetensors")), 0);
    ck_assert_int_eq(peer("smp_peer.py check-load --encoder resnet50 --bands 7 --classes 1 "
                          "--weights %s", path("g.gseg")), 0);
    compare_with_smp("resnet50", 7, 1, path("g.gseg"), m);
    gseg_model_free(m);
}
END_TEST

START_TEST(test_first_conv_adapted_like_smp)
{
    /* 3-band weights meet 6 and 1 bands: SMP's patch_first_conv. */
    ck_assert_int_eq(peer("smp_peer.py make --encoder resnet18 --bands 3 --classes 1 --seed 4 "
                          "--out %s", path("p3.safetensors")), 0);
    for (int nb = 1; nb <= 6; nb += 5) {
        char out[64];
        snprintf(out, sizeof out, "patched%d.safetensors", nb);
        ck_assert_int_eq(peer("smp_peer.py patch --weights %s --bands %d --out %s",
                              path("p3.safetensors"), nb, path(out)), 0);
        gseg_model_def d = gseg_model_def_default();
        d.encoder = NULL;
        d.nbands = nb;
        gseg_model *m = NULL;
        ck_gseg(gseg_model_import(path("p3.safetensors"), &d, NULL, &m));
        gseg__net *net = gseg__netmodel_net(m);
        int i = gseg__net_tensor_find(net, "encoder.conv1.weight");
        int64_t numel = gseg__net_tensor_numel(net, i);
        ck_assert_int_eq(numel, 64 * nb * 49);
        float *got = malloc((size_t)numel * 4);
        ck_gseg(gseg__net_tensor_get(net, i, got, numel));
        float *ref = read_tensor(path(out), "encoder.conv1.weight", numel);
        ck_assert_msg(max_abs_diff(got, ref, (size_t)numel) < 1e-6, "patched conv differs");
        free(got);
        free(ref);
        gseg_model_free(m);
    }
}
END_TEST

START_TEST(test_torch_save_files)
{
    /* A plain dict saved by torch.save is read; state_dict()'s OrderedDict
     * is refused with the conversion one-liner. */
    ck_assert_int_eq(peer("smp_peer.py make --encoder resnet18 --bands 3 --classes 1 --seed 6 "
                          "--out %s --pth-plain %s --pth-state-dict %s",
                          path("t.safetensors"), path("plain.pth"), path("od.pth")), 0);
    gseg_model *a = NULL, *b = NULL;
    gseg_model_options o = fp32(1);
    ck_gseg(gseg_model_import(path("t.safetensors"), NULL, &o, &a));
    gseg_status st = gseg_model_import(path("plain.pth"), NULL, &o, &b);
    if (st == GSEG_OK) {
        int n = 1, h = 40, w = 40;
        float *x = random_input((size_t)n * 3 * h * w, 2), *p = malloc(h * w * 4), *q = malloc(h * w * 4);
        ck_gseg(gseg_model_forward(a, x, n, h, w, NULL, p));
        ck_gseg(gseg_model_forward(b, x, n, h, w, NULL, q));
        ck_assert_int_eq(memcmp(p, q, (size_t)h * w * 4), 0);
        free(x);
        free(p);
        free(q);
    } else {
        /* libtorch 1.13 reads plain dicts; where a later libtorch does not,
         * the message must say what to do. */
        fprintf(stderr, "plain-dict pickle on libtorch %d: %s\n", gseg__net_torch_version(),
                gseg_last_error());
        ck_assert_int_ge(gseg__net_torch_version(), 200);
        ck_assert_ptr_nonnull(strstr(gseg_last_error(), "safetensors"));
    }
    gseg_model *c = NULL;
    st = gseg_model_import(path("od.pth"), NULL, &o, &c);
    if (st != GSEG_OK) {
        fprintf(stderr, "state_dict() pickle: %s\n", gseg_last_error());
        ck_assert_ptr_nonnull(strstr(gseg_last_error(), "od.pth"));
        ck_assert_ptr_nonnull(strstr(gseg_last_error(), "save_file"));
    }
    gseg_model_free(a);
    gseg_model_free(b);
    gseg_model_free(c);
}
END_TEST

/* Expects opening `file` as a model to fail with a message naming it and
 * containing `what`. */
static void refused(const char *file, const char *what)
{
    gseg_model *m = NULL;
    gseg_status st = gseg_model_open(file, NULL, &m);
    ck_assert_msg(st != GSEG_OK, "%s was accepted", file);
    ck_assert_ptr_null(m);
    const char *e = gseg_last_error();
    ck_assert_msg(strstr(e, file) != NULL, "message does not name the file: %s", e);
    ck_assert_msg(strstr(e, what) != NULL, "message '%s' lacks '%s'", e, what);
    ck_assert_msg(strchr(e, '\n') == NULL, "message spans lines: %s", e);
}

START_TEST(test_bad_model_files)
{
    gseg_model_def d = def_for("resnet18", 3, 2);
    gseg_model *m = NULL;
    ck_gseg(gseg_model_new(&d, NULL, &m));
    char good[1024];
    snprintf(good, sizeof good, "%s", path("good.gseg"));
    ck_gseg(gseg_model_save(m, good));
    gseg_model_free(m);
    m = NULL;

    refused(path("absent.gseg"), "no such file");
    ck_assert_int_eq(tu_system(": > %s", path("empty.gseg")), 0);
    refused(path("empty.gseg"), "");
    ck_assert_int_eq(tu_system("head -c 100000 %s > %s", good, path("trunc.gseg")), 0);
    refused(path("trunc.gseg"), "");
    ck_assert_int_eq(tu_system("head -c 5 %s > %s", good, path("trunc5.gseg")), 0);
    refused(path("trunc5.gseg"), "");
    ck_assert_int_eq(tu_system("head -c 1000000 /dev/urandom > %s", path("random.gseg")), 0);
    refused(path("random.gseg"), "");
    /* Metadata edits keep the header length: same-length substitutions. */
    ck_assert_int_eq(tu_system("sed 's/gseg_format\\\\\": 1/gseg_format\\\\\": 9/' %s > %s", good,
                               path("future.gseg")), 0);
    refused(path("future.gseg"), "newer");
    ck_assert_int_eq(tu_system("sed 's/\\\\\"unet\\\\\"/\\\\\"fpn_\\\\\"/' %s > %s", good,
                               path("arch.gseg")), 0);
    refused(path("arch.gseg"), "architecture");
    ck_assert_int_eq(tu_system("sed 's/\\\\\"in_channels\\\\\": 3/\\\\\"in_channels\\\\\": 4/' %s > %s",
                               good, path("bands.gseg")), 0);
    refused(path("bands.gseg"), "");
    ck_assert_int_eq(tu_system("sed 's/\"gseg\":/\"gsex\":/' %s > %s",
                               good, path("nometa.gseg")), 0);
    refused(path("nometa.gseg"), "gseg-import");
    /* A state dict of another shape. */
    ck_assert_int_eq(peer("smp_peer.py make --encoder resnet18 --bands 3 --classes 1 --seed 1 "
                          "--out %s", path("r18.safetensors")), 0);
    gseg_model_def d50 = gseg_model_def_default();
    d50.encoder = NULL; /* from the weights */
    gseg_status st = gseg_model_import(path("r18.safetensors"), &d50, NULL, &m);
    ck_assert_int_eq(st, GSEG_OK);
    gseg_model_free(m);
    m = NULL;
    d50.encoder = "resnet50";
    st = gseg_model_import(path("r18.safetensors"), &d50, NULL, &m);
    ck_assert_int_ne(st, GSEG_OK);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "resnet18"));
    /* Tools: exit codes 1 (bad file) and 2 (usage). */
    ck_assert_int_eq(tu_system("%s %s 2>/dev/null", tu_build("src/tools/gseg-info"),
                               path("trunc.gseg")), 1);
    ck_assert_int_eq(tu_system("%s --bogus 2>/dev/null", tu_build("src/tools/gseg-info")), 2);
    ck_assert_int_eq(tu_system("%s %s 2>/dev/null", tu_build("src/tools/gseg-import"),
                               path("r18.safetensors")), 2);
    ck_assert_int_eq(tu_system("%s -o %s %s 2>/dev/null", tu_build("src/tools/gseg-export"),
                               path("x.safetensors"), path("future.gseg")), 1);
}
END_TEST

/* One optimiser step over two accumulated micro-batches equals PyTorch's
 * (SMP, the same loss, torch.optim.AdamW) on the same weights and data:
 * the loss, its gradients, gradient accumulation, AdamW and BatchNorm's
 * running statistics, for a binary and a 3-class model, in fp32 and under
 * bf16 autocast.
 * With gseg on the peer's own libtorch the step is bit-identical. With gseg
 * on another (the pip wheel's libtorch 2.x against Debian's PyTorch 1.13)
 * the kernels round differently, and Adam's first step, lr * g / (|g| +
 * eps), turns the rounding of small gradients into steps that differ by up
 * to 2 lr: PyTorch 1.13 alone, on 1 thread instead of 2, moves 0.15 % of
 * the weights (fp32) and 15 % (bf16) by more than 0.1 lr differently, and
 * a float64 step is about as far from its fp32 step on 1 thread (0.18 %)
 * as from libtorch 2.15's (0.24 %).
 * Across versions only the bulk of the step is compared; an error in the
 * loss, the accumulation, AdamW or autocast moves far more weights (bf16
 * against fp32: 19 %, a mean difference of 0.38 lr). */
START_TEST(test_train_step_matches_pytorch)
{
    const int n = 2, c = 3, h = 64, w = 64, M = 2;
    const double lr = 1e-3, wd = 1e-2;
    size_t plane = (size_t)h * w;
    int pv = peer_torch_version(), same = pv == gseg__net_torch_version();
    if (!same)
        fprintf(stderr, "train step: gseg on libtorch %d, the peer on PyTorch %d: comparing the bulk of the step\n",
                gseg__net_torch_version(), pv);
    for (int run = 0; run < 3; run++) {
        /* binary fp32, 3 classes fp32, binary under bf16 autocast */
        int classes = run == 1 ? 3 : 2, outs = classes == 2 ? 1 : classes;
        gseg_precision prec = run == 2 ? GSEG_PRECISION_BF16 : GSEG_PRECISION_FP32;
        gseg_model_def d = def_for("resnet18", c, classes);
        gseg_model *m = NULL;
        gseg_model_options o = fp32(0);
        ck_gseg(gseg_model_new(&d, &o, &m));
        char before[1024], in[1024], after[1024];
        snprintf(before, sizeof before, "%s", path("step_w.safetensors"));
        snprintf(in, sizeof in, "%s", path("step_in.safetensors"));
        snprintf(after, sizeof after, "%s", path("step_out.safetensors"));
        ck_gseg(gseg_model_export(m, before));
        /* The writer borrows names and data until it writes. */
        gseg__st_writer *wr = gseg__st_writer_new();
        float *x[2], *t[2], *vf[2];
        uint8_t *v[2];
        char nm[2][3][8];
        int64_t sx[4] = {n, c, h, w}, st3[3] = {n, h, w};
        for (int i = 0; i < M; i++) {
            x[i] = random_input((size_t)n * c * plane, 31 + i);
            t[i] = malloc((size_t)n * plane * sizeof(float));
            v[i] = malloc((size_t)n * plane);
            vf[i] = malloc((size_t)n * plane * sizeof(float));
            for (size_t k = 0; k < (size_t)n * plane; k++) {
                size_t b = k / plane, p = k % plane;
                float a = x[i][b * c * plane + p], e = x[i][b * c * plane + plane + p];
                t[i][k] = classes == 2 ? (float)(a > e) : (float)((a > e) + (a > 1.0f));
                v[i][k] = (uint8_t)(k % 13 != 0);
                vf[i][k] = v[i][k];
            }
            snprintf(nm[i][0], 8, "x%d", i);
            snprintf(nm[i][1], 8, "t%d", i);
            snprintf(nm[i][2], 8, "v%d", i);
            ck_gseg(gseg__st_writer_add(wr, nm[i][0], GSEG__ST_F32, 4, sx, x[i]));
            ck_gseg(gseg__st_writer_add(wr, nm[i][1], GSEG__ST_F32, 3, st3, t[i]));
            ck_gseg(gseg__st_writer_add(wr, nm[i][2], GSEG__ST_F32, 3, st3, vf[i]));
        }
        ck_gseg(gseg__st_writer_write(wr, in));
        gseg__st_writer_free(wr);
        ck_assert_int_eq(peer("smp_peer.py train --encoder resnet18 --bands %d --classes %d "
                              "--weights %s --input %s --micro %d --lr %g --wd %g --threads 2 --precision %s "
                              "--out %s", c, outs, before, in, M, lr, wd, gseg_precision_str(prec),
                              after), 0);
        gseg__net *net = gseg__netmodel_net(m);
        ck_gseg(gseg__net_prepare(net, "cpu", GSEG_PRECISION_FP32, 2, 0));
        ck_gseg(gseg__net_train_setup(net, lr, wd, prec));
        for (int i = 0; i < M; i++) {
            double loss;
            ck_gseg(gseg__net_train_accumulate(net, x[i], n, c, h, w, t[i], v[i], 1.0 / M, &loss));
        }
        ck_gseg(gseg__net_train_apply(net, NULL));
        /* Compare every tensor: the step moves weights by about lr. */
        gseg__st_file *f = NULL, *f0 = NULL;
        ck_gseg(gseg__st_open(after, &f));
        ck_gseg(gseg__st_open(before, &f0));
        double worst = 0, worst_stat = 0, moved = 0, sum = 0;
        long long off = 0, far = 0, total = 0;
        for (int i = 0; i < gseg__net_tensor_count(net); i++) {
            if (gseg__net_tensor_is_int(net, i)) continue;
            const char *name = gseg__net_tensor_name(net, i);
            int64_t ne = gseg__net_tensor_numel(net, i);
            const gseg__st_tensor *pt = gseg__st_find(f, name);
            ck_assert_msg(pt != NULL, "PyTorch's state has no %s", name);
            float *a = malloc((size_t)ne * 4), *b = malloc((size_t)ne * 4), *b0 = malloc((size_t)ne * 4);
            ck_gseg(gseg__net_tensor_get(net, i, a, ne));
            ck_gseg(gseg__st_read_f32(f, pt, b, ne));
            ck_gseg(gseg__st_read_f32(f0, gseg__st_find(f0, name), b0, ne));
            int is_stat = strstr(name, "running_") != NULL;
            for (int64_t k = 0; k < ne; k++) {
                double dlt = fabs((double)a[k] - b[k]);
                if (is_stat) {
                    worst_stat = fmax(worst_stat, dlt / fmax(1.0, fabs(b[k])));
                } else {
                    worst = fmax(worst, dlt);
                    moved = fmax(moved, fabs((double)a[k] - b0[k]));
                    off += dlt > 1e-3 * lr;
                    far += dlt > 0.1 * lr;
                    sum += dlt;
                    total++;
                }
            }
            free(a);
            free(b);
            free(b0);
        }
        gseg__st_close(f);
        gseg__st_close(f0);
        double mean = sum / (double)total;
        fprintf(stderr, "train step vs PyTorch (%d classes, %s): weights moved up to %.3g; max |w diff| "
                        "%.3g (lr %g), %lld of %lld weights off by > 1e-3 lr, %lld by > 0.1 lr, mean "
                        "|w diff| %.3g lr; BatchNorm statistics max rel diff %.3g\n",
                classes, gseg_precision_str(prec), moved, worst, lr, off, total, far, mean / lr,
                worst_stat);
        ck_assert_msg(moved > 0.5 * lr, "the step did not move the weights (%g)", moved);
        if (same) {
            /* Adam's first step is lr * g / (|g| + eps): only gradients
             * near eps (1e-8) are sensitive to rounding. */
            ck_assert_msg(worst < 0.1 * lr, "weights differ by %g", worst);
            ck_assert_msg(off < total / 10000, "%lld weights differ by > 1e-3 lr", off);
            ck_assert_msg(worst_stat < 1e-5, "BatchNorm statistics differ by %g", worst_stat);
        } else {
            /* Measured on libtorch 2.15 against PyTorch 1.13: fp32 0.22 %
             * of the weights, mean 0.004 lr, statistics 7e-7; bf16 3.4 %,
             * 0.07 lr, 1.6e-4. */
            int bf = prec != GSEG_PRECISION_FP32;
            ck_assert_msg(far < total / (bf ? 10 : 100), "%lld of %lld weights differ by > 0.1 lr", far,
                          total);
            ck_assert_msg(mean < (bf ? 0.15 : 0.02) * lr, "weights differ by %g lr on average",
                          mean / lr);
            ck_assert_msg(worst_stat < (bf ? 1e-3 : 1e-5), "BatchNorm statistics differ by %g",
                          worst_stat);
        }
        for (int i = 0; i < M; i++) {
            free(x[i]);
            free(t[i]);
            free(v[i]);
            free(vf[i]);
        }
        gseg_model_free(m);
    }
}
END_TEST

START_TEST(test_devices_and_precision)
{
    gseg_model_def d = def_for("resnet18", 3, 2);
    gseg_model_options o = gseg_model_options_default();
    o.device = "cuda";
    gseg_model *m = NULL;
    ck_gseg(gseg_model_new(&d, &o, &m));
    float x[3 * 32 * 32] = {0}, y[32 * 32];
    gseg_status st = gseg_model_forward(m, x, 1, 32, 32, NULL, y);
    ck_assert_int_eq(st, GSEG_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "cuda"));
    gseg_model_free(m);
    o.device = "tpu";
    ck_gseg(gseg_model_new(&d, &o, &m));
    ck_assert_int_eq(gseg_model_forward(m, x, 1, 32, 32, NULL, y), GSEG_ERR_ARG);
    gseg_model_free(m);
    o.device = "cpu";
    o.precision = GSEG_PRECISION_FP16;
    ck_gseg(gseg_model_new(&d, &o, &m));
    ck_assert_int_eq(gseg_model_forward(m, x, 1, 32, 32, NULL, y), GSEG_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "fp16"));
    gseg_model_free(m);
    gseg_precision p;
    ck_gseg(gseg_precision_parse("BF16", &p));
    ck_assert_int_eq(p, GSEG_PRECISION_BF16);
    ck_assert_int_eq(gseg_precision_parse("fp8", &p), GSEG_ERR_ARG);
}
END_TEST

/* gseg-predict runs a .gseg model through the engine: the mask keeps the
 * scene's grid and CRS, and tiling only matters at blended seams. */
START_TEST(test_predict_with_network_model)
{
    const char *bands[] = {"blue", "green", "red", "nir", "swir1", "swir2"};
    const double mean[] = {2000, 2000, 2000, 2500, 1500, 1200};
    const double sd[] = {1500, 1500, 1500, 1500, 1200, 1000};
    gseg_model_def d = def_for("resnet18", 6, 2);
    d.bands = bands;
    d.mean = mean;
    d.std = sd;
    d.tile = 256;
    d.overlap = 32;
    gseg_model *m = NULL;
    ck_gseg(gseg_model_new(&d, NULL, &m));
    perturb_bn(m);
    char model[1024];
    snprintf(model, sizeof model, "%s", path("net.gseg"));
    ck_gseg(gseg_model_save(m, model));
    gseg_model_free(m);
    char tool[1024], scene[1024];
    snprintf(tool, sizeof tool, "%s", tu_build("src/tools/gseg-predict"));
    snprintf(scene, sizeof scene, "%s", tu_src("sample_scenes/dataset/test/images/scene_001.tif"));
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --proba %s --threads 2 "
                               "--precision fp32", tool, model, scene, path("a.tif"),
                               path("a_p.tif")), 0);
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --proba %s --tile 320 "
                               "--overlap 64 --threads 1 --precision fp32", tool, model, scene,
                               path("b.tif"), path("b_p.tif")), 0);
    GDALDatasetH in = GDALOpen(scene, GA_ReadOnly), a = GDALOpen(path("a.tif"), GA_ReadOnly);
    GDALDatasetH pa = GDALOpen(path("a_p.tif"), GA_ReadOnly), pb = GDALOpen(path("b_p.tif"), GA_ReadOnly);
    ck_assert(in && a && pa && pb);
    double g1[6], g2[6];
    GDALGetGeoTransform(in, g1);
    GDALGetGeoTransform(a, g2);
    for (int i = 0; i < 6; i++) ck_assert_double_eq(g1[i], g2[i]);
    ck_assert_int_eq(GDALGetRasterXSize(a), GDALGetRasterXSize(in));
    OGRSpatialReferenceH s1 = GDALGetSpatialRef(in), s2 = GDALGetSpatialRef(a);
    ck_assert(s1 && s2 && OSRIsSame(s1, s2));
    ck_assert_str_eq(GDALGetMetadataItem(a, "GSEG_TILE", NULL), "256"); /* the model's */
    int w = GDALGetRasterXSize(a), h = GDALGetRasterYSize(a);
    float *p = malloc((size_t)w * h * 4), *q = malloc((size_t)w * h * 4);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(pa, 1), GF_Read, 0, 0, w, h, p, w, h,
                                  GDT_Float32, 0, 0), CE_None);
    ck_assert_int_eq(GDALRasterIO(GDALGetRasterBand(pb, 1), GF_Read, 0, 0, w, h, q, w, h,
                                  GDT_Float32, 0, 0), CE_None);
    /* Different tilings: the same network on different context; most
     * pixels see the same scores, all are probabilities. */
    size_t close = 0, n = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        if (isnan(p[i])) continue;
        ck_assert(p[i] >= 0 && p[i] <= 1 && !isnan(q[i]));
        n++;
        close += fabsf(p[i] - q[i]) < 0.05f;
    }
    fprintf(stderr, "network predict: tile 256/32 vs 320/64: %.1f %% of pixels within 0.05\n",
            100.0 * close / n);
    ck_assert(n > 0 && close > 0.5 * n);
    free(p);
    free(q);
    GDALClose(in);
    GDALClose(a);
    GDALClose(pa);
    GDALClose(pb);
    /* A model whose bands the scene lacks is refused, naming the band. */
    const char *bad[] = {"blue", "green", "red", "nir", "swir1", "B99"};
    d.bands = bad;
    ck_gseg(gseg_model_new(&d, NULL, &m));
    ck_gseg(gseg_model_save(m, path("bad.gseg")));
    gseg_model_free(m);
    ck_assert_int_ne(tu_system("%s -q --model %s --image_path %s -o %s 2> %s", tool,
                               path("bad.gseg"), scene, path("c.tif"), path("err.txt")), 0);
    ck_assert_int_eq(tu_system("grep -q B99 %s", path("err.txt")), 0);
    /* --device cuda on a CPU build: a clear failure, exit 1. */
    ck_assert_int_eq(tu_system("%s -q --model %s --image_path %s -o %s --device cuda 2> %s", tool,
                               model, scene, path("d.tif"), path("err2.txt")), 1);
    ck_assert_int_eq(tu_system("grep -q cuda %s", path("err2.txt")), 0);
    ck_assert_int_eq(tu_system("test -e %s", path("d.tif")), 1);
}
END_TEST

Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *core = tcase_create("core"), *peers = tcase_create("peers"),
          *files = tcase_create("files");
    TCase *all[] = {core, peers, files};
    for (int i = 0; i < 3; i++) {
        tcase_set_timeout(all[i], 900);
        tcase_add_checked_fixture(all[i], setup, NULL);
        suite_add_tcase(s, all[i]);
    }
    tcase_add_test(core, test_shapes_bands_and_odd_sizes);
    tcase_add_test(core, test_resnet50_parameter_count);
    tcase_add_test(core, test_save_load_bit_identical);
    tcase_add_test(core, test_folded_equals_unfolded);
    tcase_add_test(core, test_forward_arena);
    tcase_add_test(core, test_bf16_agrees_with_fp32);
    tcase_add_test(core, test_train_step_drives_loss_down);
    tcase_add_test(core, test_devices_and_precision);
    tcase_add_test(peers, test_torchvision_encoder_features);
    tcase_add_test(peers, test_smp_to_gseg);
    tcase_add_test(peers, test_gseg_to_smp);
    tcase_add_test(peers, test_first_conv_adapted_like_smp);
    tcase_add_test(peers, test_train_step_matches_pytorch);
    tcase_add_test(files, test_torch_save_files);
    tcase_add_test(files, test_bad_model_files);
    tcase_add_test(files, test_predict_with_network_model);
    return s;
}

int main(void) { return tu_run(net_suite()); }
