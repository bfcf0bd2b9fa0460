/* bench_model.c — model-only throughput of a gseg network model: forward
 * passes of a fixed batch of random tiles through gseg_model_forward (the
 * public API a prediction uses: normalisation, padding, the network,
 * sigmoid/softmax, copy-out), after untimed warm-up passes (oneDNN builds
 * its kernels at the first call of each shape).
 *
 *   bench_model MODEL.gseg [--tile 256] [--batch 4] [--threads 2]
 *               [--precision fp32|bf16|auto] [--iters 10] [--warmup 2]
 *
 * Prints one line of JSON: tiles_per_s, mpx_per_s (input megapixels per
 * second), gflop_s (the network's multiply-adds x 2 per second, counted
 * from the architecture), seconds, per-iteration min/median, settings. */
#include "gseg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Multiply-adds of one forward pass at h x w (multiples of 32) through a
 * U-Net with a torchvision ResNet encoder and decoder 256-128-64-32-16. */
static double unet_macs(const char *enc, int c, int k, int h, int w)
{
    int bneck = strcmp(enc, "resnet18") && strcmp(enc, "resnet34");
    int blocks[4] = {3, 4, 6, 3};
    if (!strcmp(enc, "resnet18")) blocks[0] = blocks[1] = blocks[2] = blocks[3] = 2;
    if (!strcmp(enc, "resnet101")) blocks[2] = 23;
    if (!strcmp(enc, "resnet152")) blocks[1] = 8, blocks[2] = 36;
    double hw = (double)h * w, mac = 49.0 * c * 64 * hw / 4; /* stem */
    double in = 64, res = hw / 16;
    for (int l = 0; l < 4; l++) {
        double p = 64 << l, out = bneck ? 4 * p : p;
        for (int b = 0; b < blocks[l]; b++) {
            int stride = b == 0 && l > 0 ? 2 : 1;
            double ro = res / (stride * stride);
            if (bneck)
                mac += in * p * res + 9 * p * p * ro + p * out * ro;
            else
                mac += 9 * in * p * ro + 9 * p * p * ro;
            if (b == 0 && (stride != 1 || in != out)) mac += in * out * ro;
            in = out;
            res = ro;
        }
    }
    double e = bneck ? 4 : 1, feat[5] = {512 * e, 256 * e, 128 * e, 64 * e, 64};
    const double dec[5] = {256, 128, 64, 32, 16};
    double din = feat[0];
    for (int i = 0; i < 5; i++) {
        double skip = i < 4 ? feat[i + 1] : 0, r = hw / (double)(1 << (2 * (4 - i)));
        mac += 9 * (din + skip) * dec[i] * r + 9 * dec[i] * dec[i] * r;
        din = dec[i];
    }
    return mac + 9.0 * 16 * k * hw;
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    int tile = 256, batch = 4, iters = 10, warmup = 2;
    gseg_model_options o = gseg_model_options_default();
    o.threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tile") && v) tile = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && v) batch = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) o.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--iters") && v) iters = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && v) warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--precision") && v) {
            if (gseg_precision_parse(argv[++i], &o.precision) != GSEG_OK) {
                fprintf(stderr, "bench_model: %s\n", gseg_last_error());
                return 2;
            }
        } else if (a[0] != '-' && !model) model = a;
        else {
            fprintf(stderr, "usage: bench_model MODEL.gseg [--tile N] [--batch N] [--threads N] "
                            "[--precision P] [--iters N] [--warmup N]\n");
            return 2;
        }
    }
    if (!model || tile < 32 || batch < 1 || iters < 1 || warmup < 0) {
        fprintf(stderr, "bench_model: give a model and sane --tile/--batch/--iters\n");
        return 2;
    }
    gseg_init();
    gseg_model *m = NULL;
    if (gseg_model_open(model, &o, &m) != GSEG_OK) {
        fprintf(stderr, "bench_model: %s\n", gseg_last_error());
        return 1;
    }
    int c = gseg_model_nbands(m), k = gseg_model_nscores(m);
    size_t plane = (size_t)tile * tile, nin = (size_t)batch * c * plane;
    float *x = malloc(nin * sizeof *x), *y = malloc((size_t)batch * k * plane * sizeof *y);
    double *t = malloc((size_t)iters * sizeof *t);
    if (!x || !y || !t) return 1;
    unsigned s = 12345;
    for (size_t i = 0; i < nin; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f;
    }
    for (int i = 0; i < warmup + iters; i++) {
        double t0 = now();
        if (gseg_model_forward(m, x, batch, tile, tile, NULL, y) != GSEG_OK) {
            fprintf(stderr, "bench_model: %s\n", gseg_last_error());
            return 1;
        }
        if (i >= warmup) t[i - warmup] = now() - t0;
    }
    double total = 0;
    for (int i = 0; i < iters; i++) total += t[i];
    qsort(t, (size_t)iters, sizeof *t, cmp);
    double tiles_s = batch * iters / total;
    double gflop = 2 * unet_macs(gseg_model_encoder(m), c, k, tile, tile) / 1e9;
    printf("{\"impl\": \"gseg\", \"encoder\": \"%s\", \"bands\": %d, \"outputs\": %d, "
           "\"tile\": %d, \"batch\": %d, \"threads\": %d, \"precision\": \"%s\", "
           "\"iters\": %d, \"tiles_per_s\": %.4f, \"mpx_per_s\": %.4f, \"gflop_s\": %.2f, "
           "\"gflop_per_tile\": %.3f, \"seconds\": %.3f, \"iter_min\": %.4f, "
           "\"iter_median\": %.4f}\n",
           gseg_model_encoder(m), c, k, tile, batch, o.threads, gseg_precision_str(o.precision),
           iters, tiles_s, tiles_s * (double)plane / 1e6, tiles_s * gflop, gflop, total, t[0],
           t[iters / 2]);
    free(x);
    free(y);
    free(t);
    gseg_model_free(m);
    return 0;
}
