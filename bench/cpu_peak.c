/* cpu_peak.c — the CPU's measured peak of the two arithmetic kinds the
 * network runs on: fp32 fused multiply-add (AVX-512 VFMADD, or AVX2 FMA)
 * and bf16 dot products (AVX512_BF16 VDPBF16PS), on N threads at once.
 *
 *   cpu_peak [--threads 2] [--seconds 1]
 *
 * Prints one line of JSON: fp32_gflop_s, bf16_gflop_s (0 without
 * avx512_bf16), and their ratio. A network's achieved GFLOP/s (bench_model)
 * over these says how close to the machine it runs, and the ratio bounds
 * what bf16 can gain over fp32 on this CPU: AMX (Sapphire Rapids and later)
 * raises it to ~16x, AVX512_BF16 alone to 2x on CPUs whose fp32 and bf16
 * instructions share the same vector pipes (AMD Zen 4).
 *
 * Each thread runs a loop of independent accumulator chains (enough to
 * cover the instructions' latency), so throughput, not latency, bounds it.
 * Flops: an fp32 FMA lane is 2; a VDPBF16PS fp32 lane does two bf16
 * products and their sum into the accumulator: 4. */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHAINS 12
#define INNER 1000

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct job {
    int bf16;
    double seconds, flops;
    float sink;
} job;

/* Twelve independent accumulator chains in one asm statement per step, so
 * that the compiler can neither keep them in memory, split them into
 * separate loops nor shortcut them. */
#define ZMM12 "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), \
              "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11)
#define OP12(op)                                                                            \
    op " %12, %13, %0\n\t" op " %12, %13, %1\n\t" op " %12, %13, %2\n\t"                    \
    op " %12, %13, %3\n\t" op " %12, %13, %4\n\t" op " %12, %13, %5\n\t"                    \
    op " %12, %13, %6\n\t" op " %12, %13, %7\n\t" op " %12, %13, %8\n\t"                    \
    op " %12, %13, %9\n\t" op " %12, %13, %10\n\t" op " %12, %13, %11\n\t"

__attribute__((target("avx512f"))) static double chains(int bf16, double seconds, float *sink)
{
    __m512 a0 = _mm512_set1_ps(0.f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
           a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    /* x = x + b*c with tiny values: no overflow, no denormals (bf16 1.0 is 0x3f80) */
    const __m512 b = _mm512_set1_ps(1e-3f), c = _mm512_set1_ps(1e-3f);
    const __m512i h = _mm512_set1_epi16(0x3f80);
    double t0 = now(), flops = 0;
    while (now() - t0 < seconds) {
        if (bf16) {
            for (int k = 0; k < INNER; k++)
                __asm__ volatile(OP12("vdpbf16ps") : ZMM12 : "v"(h), "v"(h));
            flops += (double)INNER * CHAINS * 16 * 4;
        } else {
            for (int k = 0; k < INNER; k++)
                __asm__ volatile(OP12("vfmadd231ps") : ZMM12 : "v"(b), "v"(c));
            flops += (double)INNER * CHAINS * 16 * 2;
        }
    }
    double t = now() - t0;
    __m512 s = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    float out[16];
    _mm512_storeu_ps(out, s);
    *sink = out[0];
    return flops / t;
}

static void *run(void *arg)
{
    job *j = arg;
    j->flops = chains(j->bf16, j->seconds, &j->sink);
    return NULL;
}

/* GFLOP/s of all threads running the same loop at once. */
static double measure(int threads, int bf16, double seconds)
{
    pthread_t t[256];
    job j[256];
    for (int i = 0; i < threads; i++) {
        memset(&j[i], 0, sizeof j[i]);
        j[i].bf16 = bf16;
        j[i].seconds = seconds;
        if (pthread_create(&t[i], NULL, run, &j[i]) != 0) {
            fprintf(stderr, "cpu_peak: cannot start thread %d\n", i);
            exit(1);
        }
    }
    double sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        sum += j[i].flops;
    }
    return sum / 1e9;
}

int main(int argc, char **argv)
{
    int threads = 2;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: cpu_peak [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || !(seconds > 0)) {
        fprintf(stderr, "cpu_peak: --threads 1..256, --seconds > 0\n");
        return 2;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "cpu_peak: this CPU has no AVX-512\n");
        return 1;
    }
    int has_bf16 = __builtin_cpu_supports("avx512bf16");
    /* best of three, alternating, against frequency and neighbour noise */
    double fp32 = 0, bf16 = 0;
    for (int r = 0; r < 3; r++) {
        double f = measure(threads, 0, seconds / 3);
        if (f > fp32) fp32 = f;
        if (has_bf16) {
            double b = measure(threads, 1, seconds / 3);
            if (b > bf16) bf16 = b;
        }
    }
    printf("{\"threads\": %d, \"fp32_gflop_s\": %.1f, \"bf16_gflop_s\": %.1f, "
           "\"bf16_over_fp32\": %.2f}\n",
           threads, fp32, bf16, bf16 > 0 ? bf16 / fp32 : 0.0);
    return 0;
}
