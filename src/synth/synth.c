/*
 * synth.c — synthetic Landsat-8-like glacier scenes with a truth mask.
 *
 * Everything is built in world coordinates (metres of the projected CRS) and
 * derived from the seed through a counter-based hash (the splitmix64
 * finaliser), never rand(): the same parameters give the same bytes, on any
 * number of threads.
 *
 *  1. Terrain. A coarse grid (90 m, coarser for scenes over ~15 km, a
 *     quarter wider than the scene on each side) carries domain-warped
 *     fractal noise whose drainage tree (Priority-Flood, Barnes et al. 2014,
 *     with random growth across flats) runs to the domain edge. Elevations
 *     are then rebuilt as steady-state river profiles climbing from the edge
 *     (slope k A^-0.4 on channels, 35 degree hillslopes above the channel
 *     heads, nothing steeper than 42 degrees), which gives dendritic valleys
 *     between sharp ridges, scaled so that the 95th percentile is 5750 m
 *     (about 2000-7000 m in all). The full-resolution DEM samples that grid
 *     bicubically through a noise displacement and adds ridged detail that
 *     grows with the local relief.
 *  2. Ice. Balance flux: the specific mass balance rises linearly with height
 *     above the equilibrium-line altitude (params.snowline_m), capped at
 *     2 m/a, with melt slowed far below it (debris insulation). Pixels pass
 *     their flux downhill from high to low over the smooth terrain (multiple
 *     flow direction, weights slope^4), so accumulation basins feed tongues
 *     down the valleys until melt uses the flux up. Ice lies where flux
 *     passes over gentle ground (steep walls shed their snow as avalanches,
 *     which still feed the flux) or where a lot of it passes (icefalls).
 *     Thickness grows with flux; the ice surface spreads across the valley,
 *     so glaciers fill their valleys wall to wall, and becomes the DEM there.
 *     Specks are removed and pinholes filled; larger holes stay (nunataks).
 *  3. Surface. Debris covers each glacier from its terminus up part of the
 *     way to the ELA, plus lateral moraines; about half of the large valley
 *     glaciers end in a proglacial lake (their former tongue). Seasonal snow
 *     lies off the glaciers on high, gentle, north-facing ground: a share
 *     params.seasonal_snow of the ice-free ground gentler than 40 degrees
 *     above (snowline - 600 m). Meadows grow well below the snowline; rock
 *     mixes two lithologies. Clouds cover params.cloud_cover of the scene and
 *     cast shadows away from the sun.
 *  4. Radiometry. Per-class surface reflectance spectra for OLI B2-B7 (snow
 *     and ice bright in the visible and dark in SWIR1, so NDSI > 0.4; debris
 *     and rock flat 0.1-0.25; vegetation with a red edge; water dark in NIR
 *     and SWIR; clouds bright but brighter in SWIR1 than snow), mixed by
 *     sub-pixel fractions, lit by a late-summer morning sun (direct beam on
 *     the slope plus diffuse sky light), under clouds, with sensor noise.
 *
 * Truth is the ground: the mask is 1 on clean and debris-covered ice, also
 * under clouds; seasonal snow, lakes and clouds are 0.
 *
 * Output. The image is one GeoTIFF whose 7 bands are all UInt16 (GTiff holds
 * one data type per file): bands 1-6 "blue", "green", "red", "nir", "swir1",
 * "swir2" are surface reflectance x 10000 (no scale/offset metadata; the
 * REFLECTANCE metadata item says so), band 7 "elevation" is metres. Nodata is
 * 0 (GTiff keeps one value per file, so it applies to all bands); every value
 * is >= 1. The mask is a Byte GeoTIFF (1 = glacier, 0 = other, no nodata)
 * with a colour table and category names (GTiff drops colour-table alpha;
 * category names go to the .aux.xml sidecar). Both are tiled 256 x 256,
 * DEFLATE with PREDICTOR=2.
 *
 * Memory: about BYTES_PER_PIXEL bytes per pixel, checked against
 * gseg__memory_limit() before anything is allocated. Row loops run on all
 * CPUs; the result does not depend on the number of threads.
 */
#include "internal.h"

#include <cpl_conv.h>
#include <cpl_multiproc.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBANDS 6
#define MIN_SIZE 16
#define BYTES_PER_PIXEL 40 /* whole-scene buffers below, plus headroom */

/* ------------------------------------------------------------------------ */
/* Hashing and noise                                                        */

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t hash2(uint64_t key, int64_t a, int64_t b)
{
    return mix64(key ^ mix64((uint64_t)a * 0x9e3779b97f4a7c15ULL +
                             (uint64_t)b * 0xc2b2ae3d27d4eb4fULL + 0x165667b19e3779f9ULL));
}

/* Uniform in [0, 1) from 53 bits of h. */
static inline double unit(uint64_t h) { return (double)(h >> 11) * 0x1.0p-53; }

/* Approximately standard normal from one hash (Irwin-Hall of four 16-bit
 * uniforms: mean 2, variance 1/3). Cheap and plenty for sensor noise. */
static inline float gauss(uint64_t h)
{
    float s = (float)(h & 0xffff) + (float)((h >> 16) & 0xffff) +
              (float)((h >> 32) & 0xffff) + (float)(h >> 48);
    return (s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

static const float grad16[16][2] = {
    {1.0f, 0.0f},         {0.9238795f, 0.3826834f},  {0.7071068f, 0.7071068f},
    {0.3826834f, 0.9238795f},  {0.0f, 1.0f},         {-0.3826834f, 0.9238795f},
    {-0.7071068f, 0.7071068f}, {-0.9238795f, 0.3826834f}, {-1.0f, 0.0f},
    {-0.9238795f, -0.3826834f}, {-0.7071068f, -0.7071068f}, {-0.3826834f, -0.9238795f},
    {0.0f, -1.0f},        {0.3826834f, -0.9238795f}, {0.7071068f, -0.7071068f},
    {0.9238795f, -0.3826834f}};

/* floor() without a libm call (the baseline x86-64 target has no roundsd). */
static inline double ffloor(double x)
{
    double t = (double)(int64_t)x;
    return t > x ? t - 1.0 : t;
}

static inline float fade(float t) { return t * t * t * (t * (t * 6.0f - 15.0f) + 10.0f); }

/* One row of 2-D gradient noise, about [-1, 1]: noise-space y = fy, x = fx0 +
 * i * dfx for i < w. Corner gradients are cached per lattice cell. Noise
 * whose wavelength spans 16 pixels or more is evaluated every 4th pixel and
 * interpolated linearly (an error far below its own variation). */
static void perlin_row(uint64_t key, double fy, double fx0, double dfx, int w, float *out)
{
    double iyd = ffloor(fy);
    int64_t iy = (int64_t)iyd;
    float ty = (float)(fy - iyd), sy = fade(ty);
    int64_t cix = INT64_MIN;
    const float *g00 = grad16[0], *g10 = g00, *g01 = g00, *g11 = g00;
    const int step = dfx > 0.0 && dfx <= 1.0 / 16.0 && w > 8 ? 4 : 1;
    for (int i = 0;; i += step) {
        if (i >= w) i = w - 1; /* the last sample sits on the last pixel */
        double fx = fx0 + i * dfx, ixd = ffloor(fx);
        int64_t ix = (int64_t)ixd;
        if (ix != cix) {
            cix = ix;
            g00 = grad16[hash2(key, ix, iy) & 15];
            g10 = grad16[hash2(key, ix + 1, iy) & 15];
            g01 = grad16[hash2(key, ix, iy + 1) & 15];
            g11 = grad16[hash2(key, ix + 1, iy + 1) & 15];
        }
        float tx = (float)(fx - ixd), sx = fade(tx);
        float n00 = g00[0] * tx + g00[1] * ty;
        float n10 = g10[0] * (tx - 1) + g10[1] * ty;
        float n01 = g01[0] * tx + g01[1] * (ty - 1);
        float n11 = g11[0] * (tx - 1) + g11[1] * (ty - 1);
        float a = n00 + sx * (n10 - n00), b = n01 + sx * (n11 - n01);
        out[i] = 1.41421356f * (a + sy * (b - a));
        if (step > 1 && i > 0) {
            int prev = i - step < 0 ? 0 : (i % step ? i - i % step : i - step);
            float v0 = out[prev], dv = (out[i] - v0) / (float)(i - prev);
            for (int k = 1; k < i - prev; k++) out[prev + k] = v0 + dv * (float)k;
        }
        if (i == w - 1) break;
    }
}

/* ------------------------------------------------------------------------ */
/* Scene state                                                              */

enum { F_DEM = 1, F_TREND, F_DEBRIS, F_SNOW, F_VEG, F_LITH, F_CLOUD, F_SURF,
       F_NOISE, F_STEEP, F_WARP_U, F_WARP_V, F_UPLIFT, F_FLATS, F_MISC };

typedef struct synth {
    gseg_synth_params p;
    int w, h;
    size_t n;
    uint64_t key;
    double ps, ela;
    double sun_az, sun_el;       /* degrees */
    double sun[3];               /* unit vector to the sun (east, north, up) */
    double debris_frac;          /* debris reaches this share of terminus -> ELA */
    float *z;       /* DEM, m; the ice surface over glaciers */
    float *zs;      /* smooth drained terrain for routing the ice, then scratch */
    float zs_top;   /* highest zs */
    float *q;       /* ice flux, m3/a, then scratch */
    uint32_t *order;/* pixels from high to low zs, then region labels */
    uint32_t *queue;/* breadth-first queue */
    uint8_t *ice;   /* 1 = glacier (the truth) */
    uint8_t *water; /* 1 = lake */
    uint8_t *debris, *snow, *veg, *lith, *cloud, *shadow; /* fractions 0..255 */
} synth;

static const int DX[8] = {1, 1, 0, -1, -1, -1, 0, 1};
static const int DY[8] = {0, 1, 1, 1, 0, -1, -1, -1};

static inline uint64_t field_key(const synth *s, int field, int octave)
{
    return mix64(s->key + (uint64_t)field * 0x100000001b3ULL + (uint64_t)octave * 0x9e3779b9ULL);
}

/* Sort key of pixel i: 0.1 m steps down from the highest smooth terrain. */
static inline uint32_t height_key(const synth *s, size_t i)
{
    return (uint32_t)((s->zs_top - s->zs[i]) * 10.0f);
}

/* World coordinates of pixel centres. */
static inline double world_x(const synth *s, double x) { return s->p.origin_x + (x + 0.5) * s->ps; }
static inline double world_y(const synth *s, double y) { return s->p.origin_y - (y + 0.5) * s->ps; }

/* Fractal Brownian motion row in about [-1, 1]: octaves from wavelength l0
 * (m) halving each time, down to two pixels or `octaves`; the field is
 * sampled at world position + (shift_x, shift_y). tmp: w floats. */
static void fbm_row(const synth *s, int field, int y, double l0, int octaves, float gain,
                    float *out, float *tmp, double shift_x, double shift_y)
{
    double X0 = world_x(s, 0) + shift_x, Y = world_y(s, y) + shift_y;
    float amp = 1.0f, norm = 0.0f;
    for (int i = 0; i < s->w; i++) out[i] = 0.0f;
    double l = l0;
    for (int o = 0; o < octaves && (o == 0 || l >= 2.0 * s->ps); o++, l *= 0.5, amp *= gain) {
        perlin_row(field_key(s, field, o), Y / l, X0 / l, s->ps / l, s->w, tmp);
        for (int i = 0; i < s->w; i++) out[i] += amp * tmp[i];
        norm += amp;
    }
    for (int i = 0; i < s->w; i++) out[i] /= norm;
}

static inline float smoothstep(float a, float b, float x)
{
    float t = (x - a) / (b - a);
    t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    return t * t * (3.0f - 2.0f * t);
}

static inline uint8_t to_u8(float f)
{
    return f <= 0.0f ? 0 : f >= 1.0f ? 255 : (uint8_t)(f * 255.0f + 0.5f);
}

/* DEM gradient (Horn): dz/dx towards east and dz/dy towards north. */
static void gradient(const synth *s, int x, int y, float *gx, float *gy)
{
    int xm = x > 0 ? x - 1 : x, xp = x < s->w - 1 ? x + 1 : x;
    int ym = y > 0 ? y - 1 : y, yp = y < s->h - 1 ? y + 1 : y;
    const float *z = s->z;
    size_t w = (size_t)s->w;
    float a = z[ym * w + xm], b = z[ym * w + x], c = z[ym * w + xp];
    float d = z[y * w + xm], f = z[y * w + xp];
    float g = z[yp * w + xm], hh = z[yp * w + x], i = z[yp * w + xp];
    float sx = (float)((xp - xm) * s->ps), sy = (float)((yp - ym) * s->ps);
    *gx = ((c + 2 * f + i) - (a + 2 * d + g)) / (4.0f * sx);
    *gy = ((a + 2 * b + c) - (g + 2 * hh + i)) / (4.0f * sy);
}

static inline float slope_deg(float gx, float gy)
{
    return atanf(sqrtf(gx * gx + gy * gy)) * (float)(180.0 / M_PI);
}

/* Value with fraction q of the selected samples below it (4096-bin
 * histogram). sel may be NULL. +HUGE_VAL if nothing is selected. */
static double quantile(const float *v, const uint8_t *sel, size_t n, double q)
{
    enum { NB = 4096 };
    float lo = INFINITY, hi = -INFINITY;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++)
        if (!sel || sel[i]) {
            lo = v[i] < lo ? v[i] : lo;
            hi = v[i] > hi ? v[i] : hi;
            cnt++;
        }
    if (!cnt) return HUGE_VAL;
    if (hi <= lo) return lo;
    size_t *hist = calloc(NB, sizeof *hist);
    if (!hist) return lo + q * ((double)hi - lo);
    double scale = NB / ((double)hi - lo);
    for (size_t i = 0; i < n; i++)
        if (!sel || sel[i]) {
            int b = (int)((v[i] - lo) * scale);
            hist[b >= NB ? NB - 1 : b]++;
        }
    double target = q * (double)cnt, acc = 0, r = hi;
    for (int b = 0; b < NB; b++) {
        if (acc + (double)hist[b] >= target) {
            double frac = hist[b] ? (target - acc) / (double)hist[b] : 0.0;
            r = lo + (b + frac) / scale;
            break;
        }
        acc += (double)hist[b];
    }
    free(hist);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Row-parallel loops                                                       */

/* fn(s, y, scratch, ctx) computes row y, writing only that row's pixels;
 * scratch holds nscratch rows of w floats private to the thread. */
typedef void (*row_fn)(const synth *s, int y, float *scratch, void *ctx);

typedef struct par_job {
    const synth *s;
    row_fn fn;
    void *ctx;
    int nscratch, y1;
    atomic_int next, failed;
} par_job;

enum { PAR_CHUNK = 8 };

static void par_worker(void *arg)
{
    par_job *j = arg;
    float *scratch = malloc(sizeof(float) * (size_t)j->s->w * (size_t)j->nscratch);
    if (!scratch) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (;;) {
        int y0 = atomic_fetch_add(&j->next, PAR_CHUNK);
        if (y0 >= j->y1) break;
        int y1 = y0 + PAR_CHUNK < j->y1 ? y0 + PAR_CHUNK : j->y1;
        for (int y = y0; y < y1; y++) j->fn(j->s, y, scratch, j->ctx);
    }
    free(scratch);
}

/* Runs fn over rows [y0, y1) on up to CPLGetNumCPUs() threads (the
 * caller's included). */
static gseg_status par_rows(const synth *s, int y0, int y1, int nscratch, row_fn fn, void *ctx)
{
    enum { MAX_THREADS = 32 };
    par_job j;
    j.s = s;
    j.fn = fn;
    j.ctx = ctx;
    j.nscratch = nscratch;
    j.y1 = y1;
    atomic_init(&j.next, y0);
    atomic_init(&j.failed, 0);
    int nt = CPLGetNumCPUs();
    int chunks = (y1 - y0 + PAR_CHUNK - 1) / PAR_CHUNK;
    nt = nt < 1 ? 1 : nt > MAX_THREADS ? MAX_THREADS : nt;
    nt = nt > chunks ? chunks : nt;
    CPLJoinableThread *th[MAX_THREADS];
    int started = 0;
    for (int t = 1; t < nt; t++)
        if ((th[started] = CPLCreateJoinableThread(par_worker, &j)) != NULL) started++;
    par_worker(&j);
    for (int t = 0; t < started; t++) CPLJoinThread(th[t]);
    if (atomic_load(&j.failed)) return gseg__err(GSEG_ERR_NOMEM, "out of memory for row buffers");
    return GSEG_OK;
}

/* Binary min-heap of (z, index) for Priority-Flood. */
typedef struct hnode {
    float z;
    uint32_t i;
} hnode;

typedef struct heap {
    hnode *a;
    size_t n, cap;
} heap;

static inline int hless(hnode x, hnode y) { return x.z < y.z || (x.z == y.z && x.i < y.i); }

static int heap_push(heap *h, float z, uint32_t i)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4096;
        hnode *a = realloc(h->a, cap * sizeof *a);
        if (!a) return 0;
        h->a = a;
        h->cap = cap;
    }
    size_t k = h->n++;
    hnode v = {z, i};
    while (k > 0) {
        size_t p = (k - 1) / 2;
        if (!hless(v, h->a[p])) break;
        h->a[k] = h->a[p];
        k = p;
    }
    h->a[k] = v;
    return 1;
}

static hnode heap_pop(heap *h)
{
    hnode top = h->a[0], v = h->a[--h->n];
    size_t k = 0;
    for (;;) {
        size_t c = 2 * k + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && hless(h->a[c + 1], h->a[c])) c++;
        if (!hless(h->a[c], v)) break;
        h->a[k] = h->a[c];
        k = c;
    }
    if (h->n) h->a[k] = v;
    return top;
}

/* ------------------------------------------------------------------------ */
/* 1. Terrain                                                               */

/* Terrain model constants (metres, degrees, km2). */
#define RELIEF_L0 16000.0   /* wavelength of the drainage noise */
#define RELIEF_WARP 0.35    /* its domain warp, in wavelengths */
#define CHANNEL_KM2 0.5     /* drainage area at a channel head */
#define CHANNEL_K 0.6f      /* channel slope at the head, m/m */
#define CHANNEL_THETA 0.4f  /* concavity: slope ~ area^-theta */
#define HILL_SLOPE 35.0     /* hillslopes above the channel heads */
#define MAX_SLOPE 42.0      /* nothing steeper on the coarse grid */
#define OUTLET_Z 2300.0f    /* base level, +-400 m */
#define RELIEF_P95 5750.0   /* 95th percentile of the coarse terrain, m */
#define CS_CELLS 512.0      /* coarse cells across a large scene's domain */

/* Priority-Flood+epsilon over a w x h grid from the cells flagged in seed
 * (the outlets): raises pits in z so every cell drains to a
 * seed, and records the visiting order (a cell's parent always comes
 * before it) and the direction 0-7 of the neighbour each cell was reached
 * from (8 = seed). Across flats cells grow in random order (jitter) rather
 * than in breadth-first fronts, which would drain them along straight
 * lines. seen: w*h bytes of scratch. Returns 0 when out of memory. */
static int priority_flood(int w, int h, float *z, float eps, uint64_t jitter,
                          const uint8_t *seed, uint32_t *order, uint8_t *parent, uint8_t *seen)
{
    const size_t n = (size_t)w * (size_t)h;
    heap open = {0};
    size_t nout = 0;
    memcpy(seen, seed, n);
    for (size_t i = 0; i < n; i++)
        if (seed[i]) {
            parent[i] = 8;
            if (!heap_push(&open, z[i], (uint32_t)i)) goto nomem;
        }
    while (open.n) {
        uint32_t c = heap_pop(&open).i;
        order[nout++] = c;
        int cx = (int)(c % (unsigned)w), cy = (int)(c / (unsigned)w);
        float zc = z[c];
        for (int k = 0; k < 8; k++) {
            int nx = cx + DX[k], ny = cy + DY[k];
            if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
            size_t j = (size_t)ny * (size_t)w + (size_t)nx;
            if (seen[j]) continue;
            seen[j] = 1;
            parent[j] = (uint8_t)((k + 4) & 7); /* direction back to c */
            if (z[j] <= zc + eps)
                z[j] = fmaxf(z[j], zc + eps * (float)(0.2 + 2.0 * unit(hash2(jitter, (int64_t)j, 0))));
            if (!heap_push(&open, z[j], (uint32_t)j)) goto nomem;
        }
    }
    free(open.a);
    return 1;
nomem:
    free(open.a);
    return 0;
}

/* The coarse grid of large-scale relief. */
typedef struct coarse {
    int w, h;
    double x0, y0, cs; /* world position of cell (0,0) centre; spacing, m */
    float *z;
} coarse;

/* Two-pass chamfer: no cell rises more than `slope` (m/m) above its
 * neighbours. */
static void limit_slope(float *z, int W, int H, float slope, double cs)
{
    const float sa = slope * (float)cs, sd = sa * (float)M_SQRT2;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float *t = z + (size_t)y * W + x, v = *t;
            if (x > 0) v = fminf(v, t[-1] + sa);
            if (y > 0) {
                v = fminf(v, t[-W] + sa);
                if (x > 0) v = fminf(v, t[-W - 1] + sd);
                if (x < W - 1) v = fminf(v, t[-W + 1] + sd);
            }
            *t = v;
        }
    for (int y = H - 1; y >= 0; y--)
        for (int x = W - 1; x >= 0; x--) {
            float *t = z + (size_t)y * W + x, v = *t;
            if (x < W - 1) v = fminf(v, t[1] + sa);
            if (y < H - 1) {
                v = fminf(v, t[W] + sa);
                if (x < W - 1) v = fminf(v, t[W + 1] + sd);
                if (x > 0) v = fminf(v, t[W - 1] + sd);
            }
            *t = v;
        }
}

static gseg_status make_relief(const synth *s, coarse *c)
{
    /* At most ~CS_CELLS cells across: scenes larger than ~30 km get
     * proportionally larger landforms rather than a slow model. */
    double ext = fmax(s->w, s->h) * s->ps;
    c->cs = fmax(fmax(90.0, 2.0 * s->ps), ext * 1.5 / CS_CELLS);
    c->w = (int)ceil(s->w * s->ps * 1.5 / c->cs) + 4;
    c->h = (int)ceil(s->h * s->ps * 1.5 / c->cs) + 4;
    c->x0 = s->p.origin_x + 0.5 * s->w * s->ps - 0.5 * (c->w - 1) * c->cs;
    c->y0 = s->p.origin_y - 0.5 * s->h * s->ps + 0.5 * (c->h - 1) * c->cs;
    const int W = c->w, H = c->h;
    const size_t n = (size_t)W * (size_t)H;
    float *z = gseg__malloc(n, sizeof *z), *area = gseg__malloc(n, sizeof *area);
    float *up = gseg__malloc(n, sizeof *up), *wrow = gseg__malloc((size_t)W * 3, sizeof *wrow);
    uint32_t *order = gseg__malloc(n, sizeof *order);
    uint8_t *parent = gseg__malloc(n, 1), *seen = gseg__malloc(n, 1), *seed = gseg__malloc(n, 1);
    gseg_status st = GSEG_OK;
    if (!z || !area || !up || !wrow || !order || !parent || !seen || !seed) {
        st = GSEG_ERR_NOMEM;
        goto done;
    }
    const double L0 = RELIEF_L0;
    for (int j = 0; j < H; j++) {
        double Y = c->y0 - j * c->cs;
        float *wx = wrow, *wy = wrow + W, *t = wrow + 2 * W;
        float *zr = z + (size_t)j * W;
        /* Drainage noise, domain-warped (one displacement for all octaves). */
        perlin_row(field_key(s, F_DEM, 0), Y / L0, c->x0 / L0, c->cs / L0, W, wx);
        perlin_row(field_key(s, F_DEM, 1), Y / L0, c->x0 / L0, c->cs / L0, W, wy);
        for (int i = 0; i < W; i++) zr[i] = 0.0f;
        double l = L0;
        float amp = 1.0f;
        for (int o = 0; o < 6 && l >= 2.0 * c->cs; o++, l *= 0.5, amp *= 0.5f)
            for (int i = 0; i < W; i++) {
                double X = c->x0 + i * c->cs + RELIEF_WARP * L0 * wx[i];
                double Yw = Y + RELIEF_WARP * L0 * wy[i];
                perlin_row(field_key(s, F_DEM, 2 + o), Yw / l, X / l, 0.0, 1, t);
                zr[i] += amp * t[0] * 1000.0f;
            }
        /* Uplift: some massifs stand higher. */
        perlin_row(field_key(s, F_UPLIFT, 0), Y / 25000.0, c->x0 / 25000.0, c->cs / 25000.0, W,
                   up + (size_t)j * W);
        for (int i = 0; i < W; i++)
            seed[(size_t)j * W + i] = (uint8_t)(i == 0 || j == 0 || i == W - 1 || j == H - 1);
    }
    if (!priority_flood(W, H, z, 0.5f, field_key(s, F_FLATS, 0), seed, order, parent, seen)) {
        st = gseg__err(GSEG_ERR_NOMEM, "out of memory in the terrain model");
        goto done;
    }
    /* Drainage area (cells) down the flood tree. */
    for (size_t i = 0; i < n; i++) area[i] = 1.0f;
    for (size_t k = n; k-- > 0;) {
        uint32_t i = order[k];
        int d = parent[i];
        if (d == 8) continue;
        area[(size_t)((int)(i / (unsigned)W) + DY[d]) * W + (size_t)((int)(i % (unsigned)W) + DX[d])] += area[i];
    }
    /* Steady-state profiles from the outlets up. */
    const float ath = (float)(CHANNEL_KM2 / (c->cs * c->cs * 1e-6));
    const float hill = (float)tan(HILL_SLOPE * M_PI / 180.0);
    for (size_t k = 0; k < n; k++) {
        uint32_t i = order[k];
        int d = parent[i];
        if (d == 8) {
            z[i] = OUTLET_Z + 400.0f * up[i];
            continue;
        }
        size_t r = (size_t)((int)(i / (unsigned)W) + DY[d]) * W + (size_t)((int)(i % (unsigned)W) + DX[d]);
        float dist = (float)(c->cs * (d & 1 ? M_SQRT2 : 1.0));
        float sl = area[i] >= ath ? CHANNEL_K * powf(area[i] / ath, -CHANNEL_THETA) : hill;
        z[i] = z[r] + dist * expf(0.3f * up[i]) * sl;
    }
    /* Profiles climb on with the distance to the edge, so the relief
     * depends on the domain size: scale it to a fixed 95th percentile. */
    double p95 = quantile(z, NULL, n, 0.95);
    if (p95 > OUTLET_Z + 1.0) {
        float k = (float)((RELIEF_P95 - OUTLET_Z) / (p95 - OUTLET_Z));
        for (size_t i = 0; i < n; i++) z[i] = OUTLET_Z + k * (z[i] - OUTLET_Z);
    }
    /* Divides between long and short flow paths would leave cliffs. */
    limit_slope(z, W, H, (float)tan(MAX_SLOPE * M_PI / 180.0), c->cs);
    /* One [1 2 1] smoothing pass. */
    float *tmp = area;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            tmp[i] = x == 0 || x == W - 1 ? z[i] : 0.25f * (z[i - 1] + 2 * z[i] + z[i + 1]);
        }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            z[i] = y == 0 || y == H - 1 ? tmp[i] : 0.25f * (tmp[i - W] + 2 * tmp[i] + tmp[i + W]);
        }
    c->z = z;
    z = NULL;
done:
    free(z);
    free(area);
    free(up);
    free(wrow);
    free(order);
    free(parent);
    free(seen);
    free(seed);
    return st;
}

/* Catmull-Rom weights for fraction t. */
static inline void cubic_weights(float t, float wt[4])
{
    float t2 = t * t, t3 = t2 * t;
    wt[0] = 0.5f * (-t3 + 2 * t2 - t);
    wt[1] = 0.5f * (3 * t3 - 5 * t2 + 2);
    wt[2] = 0.5f * (-3 * t3 + 4 * t2 + t);
    wt[3] = 0.5f * (t3 - t2);
}

/* Bicubic sample of the coarse grid at (u, v) in cell units; *relief gets
 * the drop across the cell (m), which drives the roughness. */
static float coarse_sample(const coarse *c, double u, double v, float *relief)
{
    int ux = (int)ffloor(u), vy = (int)ffloor(v);
    float wx[4], wy[4], val = 0.0f;
    cubic_weights((float)(u - ux), wx);
    cubic_weights((float)(v - vy), wy);
    for (int j = 0; j < 4; j++) {
        int yy = vy - 1 + j;
        yy = yy < 0 ? 0 : yy >= c->h ? c->h - 1 : yy;
        const float *row = c->z + (size_t)yy * c->w;
        float acc = 0.0f;
        for (int i = 0; i < 4; i++) {
            int xx = ux - 1 + i;
            xx = xx < 0 ? 0 : xx >= c->w ? c->w - 1 : xx;
            acc += wx[i] * row[xx];
        }
        val += wy[j] * acc;
    }
    int xx = ux < 0 ? 0 : ux >= c->w - 1 ? c->w - 2 : ux;
    int yy = vy < 0 ? 0 : vy >= c->h - 1 ? c->h - 2 : vy;
    const float *r0 = c->z + (size_t)yy * c->w + xx, *r1 = r0 + c->w;
    float gx = r0[1] - r0[0] + r1[1] - r1[0], gy = r1[0] - r0[0] + r1[1] - r0[1];
    *relief = 0.5f * sqrtf(gx * gx + gy * gy);
    return val;
}

/* Full-resolution terrain, one row: the coarse relief sampled through a
 * noise displacement (bends the grid-aligned drainage lines) plus ridged
 * detail whose amplitude grows with the local relief. zs keeps the smooth
 * part, along which the ice is routed. */
static void terrain_row(const synth *s, int y, float *scr, void *ctx)
{
    const coarse *c = ctx;
    float *wu = scr, *wv = scr + s->w, *det = scr + 2 * s->w, *trend = scr + 3 * s->w;
    float *tmp = scr + 4 * s->w;
    double X0 = world_x(s, 0), Y = world_y(s, y), l = 3.0 * c->cs;
    fbm_row(s, F_WARP_U, y, 8.0 * c->cs, 3, 0.5f, wu, tmp, 0, 0);
    fbm_row(s, F_WARP_V, y, 8.0 * c->cs, 3, 0.5f, wv, tmp, 0, 0);
    fbm_row(s, F_TREND, y, 80000.0, 2, 0.5f, trend, tmp, 0, 0);
    float amp = 1.0f;
    for (int i = 0; i < s->w; i++) det[i] = 0.0f;
    for (int o = 0; o < 6 && l >= 2.0 * s->ps; o++, l *= 0.5, amp *= 0.4f) {
        perlin_row(field_key(s, F_DEM, 10 + o), Y / l, X0 / l, s->ps / l, s->w, tmp);
        for (int i = 0; i < s->w; i++) {
            float r = 1.0f - fabsf(tmp[i]);
            det[i] += amp * (r * r - 0.45f);
        }
    }
    float *z = s->z + (size_t)y * s->w, *zs = s->zs + (size_t)y * s->w;
    double v0 = (c->y0 - Y) / c->cs;
    for (int x = 0; x < s->w; x++) {
        double u = (world_x(s, x) - c->x0) / c->cs + 0.8 * wu[x];
        float relief;
        zs[x] = coarse_sample(c, u, v0 + 0.8 * wv[x], &relief) + 300.0f * trend[x];
        z[x] = zs[x] + (6.0f + 0.2f * relief) * det[x];
    }
}

static gseg_status make_terrain(synth *s)
{
    coarse c = {0};
    gseg_status st = make_relief(s, &c);
    if (st == GSEG_OK) st = par_rows(s, 0, s->h, 5, terrain_row, &c);
    free(c.z);
    return st;
}

/* Orders the pixels from high to low smooth terrain (counting sort on 0.1 m
 * steps), the order in which ice flux is passed downhill. */
static gseg_status sort_by_height(synth *s)
{
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < s->n; i++) {
        lo = s->zs[i] < lo ? s->zs[i] : lo;
        hi = s->zs[i] > hi ? s->zs[i] : hi;
    }
    size_t nb = (size_t)((hi - lo) * 10.0f) + 2;
    uint32_t *cnt = gseg__calloc(nb + 1, sizeof *cnt);
    if (!cnt) return GSEG_ERR_NOMEM;
    s->zs_top = hi;
    for (size_t i = 0; i < s->n; i++) cnt[height_key(s, i) + 1]++;
    for (size_t b = 0; b < nb; b++) cnt[b + 1] += cnt[b];
    for (size_t i = 0; i < s->n; i++) s->order[cnt[height_key(s, i)]++] = (uint32_t)i;
    free(cnt);
    return GSEG_OK;
}

/* ------------------------------------------------------------------------ */
/* 2. Ice                                                                   */

#define ICE_MIN_FLUX 50.0   /* m2/a per metre of pixel edge: a thin, slow glacier */
#define ICE_MAX_SLOPE 30.0  /* steeper ground sheds its snow (+-6 degrees) */
#define ICE_FALL_FLUX 200.0 /* times the minimum: ice stays even on steep ground */
#define ICE_THICK_K 15.0f   /* thickness H = K (flux / minimum)^0.3, m */
#define ICE_SPREAD_DROP 0.06f /* fall of the ice surface towards the margins */

/* Specific mass balance at elevation z, m w.e. per year. */
static inline double mass_balance(const synth *s, double z)
{
    double dz = z - s->ela;
    if (dz >= 0) return fmin(0.01 * dz, 2.0);
    if (dz > -300) return 0.005 * dz;
    return -1.5 + 0.002 * (dz + 300); /* melt slowed under debris */
}

static void route_ice(synth *s)
{
    const size_t n = s->n, w = (size_t)s->w;
    const double area = s->ps * s->ps;
    for (size_t i = 0; i < n; i++) s->q[i] = (float)(mass_balance(s, s->z[i]) * area);
    for (size_t k = 0; k < n; k++) {
        uint32_t c = s->order[k];
        float qc = s->q[c];
        if (qc <= 0.0f) continue;
        int cx = (int)(c % w), cy = (int)(c / w);
        uint32_t kc = height_key(s, c);
        float wt[8], sum = 0.0f;
        size_t nb[8];
        for (int d = 0; d < 8; d++) {
            wt[d] = 0.0f;
            nb[d] = c;
            int nx = cx + DX[d], ny = cy + DY[d];
            if (nx < 0 || ny < 0 || nx >= s->w || ny >= s->h) continue;
            size_t j = (size_t)ny * w + (size_t)nx;
            nb[d] = j;
            /* Only to pixels later in the order: strictly lower keys. */
            if (height_key(s, j) <= kc) continue;
            float sl = (s->zs[c] - s->zs[j]) / (float)(d & 1 ? M_SQRT2 * s->ps : s->ps);
            sl *= sl;
            wt[d] = sl * sl;
            sum += wt[d];
        }
        if (sum <= 0.0f) continue; /* a pit: the ice ends here */
        for (int d = 0; d < 8; d++)
            if (wt[d] > 0.0f) s->q[nb[d]] += qc * wt[d] / sum;
    }
}

/* Box filter of a 0/1 byte image with radius r, threshold at half: smooths
 * outlines. tmp holds n uint16. */
static gseg_status majority(uint8_t *m, int w, int h, int r, uint16_t *tmp)
{
    int *col = gseg__malloc((size_t)w, sizeof *col);
    if (!col) return GSEG_ERR_NOMEM;
    /* Horizontal sums into tmp. */
    for (int y = 0; y < h; y++) {
        const uint8_t *row = m + (size_t)y * w;
        int acc = 0;
        for (int x = -r; x <= r; x++) acc += row[x < 0 ? 0 : x >= w ? w - 1 : x];
        for (int x = 0; x < w; x++) {
            tmp[(size_t)y * w + x] = (uint16_t)acc;
            int xo = x - r, xi = x + r + 1;
            acc += row[xi >= w ? w - 1 : xi] - row[xo < 0 ? 0 : xo];
        }
    }
    /* Vertical sums, thresholded back into m. */
    int full = (2 * r + 1) * (2 * r + 1);
    for (int x = 0; x < w; x++) col[x] = 0;
    for (int y = -r; y <= r; y++) {
        int yy = y < 0 ? 0 : y >= h ? h - 1 : y;
        for (int x = 0; x < w; x++) col[x] += tmp[(size_t)yy * w + x];
    }
    for (int y = 0; y < h; y++) {
        int yo = y - r < 0 ? 0 : y - r, yi = y + r + 1 >= h ? h - 1 : y + r + 1;
        for (int x = 0; x < w; x++) {
            m[(size_t)y * w + x] = (uint8_t)(2 * col[x] > full);
            col[x] += tmp[(size_t)yi * w + x] - tmp[(size_t)yo * w + x];
        }
    }
    free(col);
    return GSEG_OK;
}

/* Labels 4-connected components of pixels where m[i] == val; returns their
 * count. label[i] = component number (1-based) or 0; sizes[] (if not NULL)
 * is grown to hold the pixel count per label. */
static uint32_t label_components(const synth *s, const uint8_t *m, uint8_t val,
                                 uint32_t *label, uint32_t *queue, uint32_t **sizes)
{
    const size_t n = s->n, w = (size_t)s->w;
    uint32_t nl = 0;
    size_t cap = 0;
    uint32_t *sz = NULL;
    for (size_t i = 0; i < n; i++) label[i] = 0;
    for (size_t i0 = 0; i0 < n; i0++) {
        if (m[i0] != val || label[i0]) continue;
        nl++;
        size_t head = 0, tail = 0;
        queue[tail++] = (uint32_t)i0;
        label[i0] = nl;
        while (head < tail) {
            uint32_t c = queue[head++];
            int cx = (int)(c % w), cy = (int)(c / w);
            for (int d = 0; d < 8; d += 2) {
                int nx = cx + DX[d], ny = cy + DY[d];
                if (nx < 0 || ny < 0 || nx >= s->w || ny >= s->h) continue;
                size_t j = (size_t)ny * w + (size_t)nx;
                if (m[j] != val || label[j]) continue;
                label[j] = nl;
                queue[tail++] = (uint32_t)j;
            }
        }
        if (sizes) {
            if (nl >= cap) {
                size_t nc = cap ? cap * 2 : 256;
                uint32_t *t = realloc(sz, nc * sizeof *t);
                if (!t) {
                    free(sz);
                    *sizes = NULL;
                    return 0;
                }
                sz = t;
                cap = nc;
            }
            sz[nl] = (uint32_t)tail;
        }
    }
    if (sizes) *sizes = sz;
    return nl;
}

/* Turns components of value val smaller than min_px into the other value. */
static gseg_status remove_small(synth *s, uint8_t *m, uint8_t val, uint32_t min_px)
{
    uint32_t *sizes = NULL;
    uint32_t nl = label_components(s, m, val, s->order, s->queue, &sizes);
    if (nl && !sizes) return gseg__err(GSEG_ERR_NOMEM, "out of memory labelling regions");
    for (size_t i = 0; i < s->n; i++)
        if (s->order[i] && sizes[s->order[i]] < min_px) m[i] = (uint8_t)!val;
    free(sizes);
    return GSEG_OK;
}

/* Box mean of v over the pixels where m is set (normalised convolution),
 * radius r, into out (which must not alias v). */
static gseg_status masked_box_mean(const synth *s, const float *v, const uint8_t *m, int r,
                                   float *out)
{
    const int w = s->w, h = s->h;
    float *sv = gseg__malloc(s->n, sizeof *sv), *sc = gseg__malloc(s->n, sizeof *sc);
    double *cv = gseg__malloc((size_t)w * 2, sizeof *cv);
    if (!sv || !sc || !cv) {
        free(sv);
        free(sc);
        free(cv);
        return GSEG_ERR_NOMEM;
    }
    for (int y = 0; y < h; y++) {
        const float *vr = v + (size_t)y * w;
        const uint8_t *mr = m + (size_t)y * w;
        double a = 0, c = 0;
        for (int x = -r; x <= r; x++) {
            int xx = x < 0 ? 0 : x >= w ? w - 1 : x;
            if (mr[xx]) {
                a += vr[xx];
                c += 1;
            }
        }
        for (int x = 0; x < w; x++) {
            sv[(size_t)y * w + x] = (float)a;
            sc[(size_t)y * w + x] = (float)c;
            int xo = x - r < 0 ? 0 : x - r, xi = x + r + 1 >= w ? w - 1 : x + r + 1;
            if (mr[xi]) {
                a += vr[xi];
                c += 1;
            }
            if (mr[xo]) {
                a -= vr[xo];
                c -= 1;
            }
        }
    }
    double *ca = cv, *cc = cv + w;
    for (int x = 0; x < w; x++) ca[x] = cc[x] = 0.0;
    for (int y = -r; y <= r; y++) {
        int yy = y < 0 ? 0 : y >= h ? h - 1 : y;
        for (int x = 0; x < w; x++) {
            ca[x] += sv[(size_t)yy * w + x];
            cc[x] += sc[(size_t)yy * w + x];
        }
    }
    for (int y = 0; y < h; y++) {
        int yo = y - r < 0 ? 0 : y - r, yi = y + r + 1 >= h ? h - 1 : y + r + 1;
        for (int x = 0; x < w; x++) {
            out[(size_t)y * w + x] = cc[x] > 0.5 ? (float)(ca[x] / cc[x]) : 0.0f;
            ca[x] += sv[(size_t)yi * w + x] - sv[(size_t)yo * w + x];
            cc[x] += sc[(size_t)yi * w + x] - sc[(size_t)yo * w + x];
        }
    }
    free(sv);
    free(sc);
    free(cv);
    return GSEG_OK;
}

/* Where the flux can hold ice: enough of it over gentle ground, or a lot of
 * it anywhere (icefalls). Avalanches off steep walls still feed the flux. */
static void ice_seed_row(const synth *s, int y, float *scr, void *ctx)
{
    (void)ctx;
    const float qmin = (float)(ICE_MIN_FLUX * s->ps);
    float *steep = scr, *tmp = scr + s->w;
    fbm_row(s, F_STEEP, y, 1500.0, 2, 0.5f, steep, tmp, 0, 0);
    for (int x = 0; x < s->w; x++) {
        size_t i = (size_t)y * s->w + (size_t)x;
        float gx, gy, q = s->q[i];
        gradient(s, x, y, &gx, &gy);
        s->ice[i] = (uint8_t)(q > qmin && (slope_deg(gx, gy) < ICE_MAX_SLOPE + 6.0f * steep[x] ||
                                           q > ICE_FALL_FLUX * qmin));
    }
}

/* Ice has thickness: each seeded pixel sets an ice surface H ~ flux^0.3
 * above its bed, which spreads sideways and uphill (where the ice thins)
 * with a slight fall towards the margins, never down-valley. Every pixel
 * below the spread surface is ice, so glaciers fill their valleys. */
static void spread_ice(synth *s, float *lev)
{
    const size_t w = (size_t)s->w;
    const float qmin = (float)(ICE_MIN_FLUX * s->ps);
    const float drop = ICE_SPREAD_DROP * (float)s->ps, dropd = drop * (float)M_SQRT2;
    const float *z = s->z;
    for (size_t i = 0; i < s->n; i++)
        lev[i] = s->ice[i] ? z[i] + ICE_THICK_K * powf(s->q[i] / qmin, 0.3f) : -INFINITY;
#define SPREAD(j, dd)                                                                      \
    do {                                                                                   \
        if (lev[j] > z[j] && z[i] > z[j] - (dd)) v = fmaxf(v, lev[j] - (dd));              \
    } while (0)
    for (int pass = 0; pass < 2; pass++) {
        for (int y = 0; y < s->h; y++)
            for (int x = 0; x < s->w; x++) {
                size_t i = (size_t)y * w + (size_t)x;
                float v = lev[i];
                if (x > 0) SPREAD(i - 1, drop);
                if (y > 0) {
                    SPREAD(i - w, drop);
                    if (x > 0) SPREAD(i - w - 1, dropd);
                    if (x < s->w - 1) SPREAD(i - w + 1, dropd);
                }
                lev[i] = v;
            }
        for (int y = s->h - 1; y >= 0; y--)
            for (int x = s->w - 1; x >= 0; x--) {
                size_t i = (size_t)y * w + (size_t)x;
                float v = lev[i];
                if (x < s->w - 1) SPREAD(i + 1, drop);
                if (y < s->h - 1) {
                    SPREAD(i + w, drop);
                    if (x < s->w - 1) SPREAD(i + w + 1, dropd);
                    if (x > 0) SPREAD(i + w - 1, dropd);
                }
                lev[i] = v;
            }
    }
#undef SPREAD
    for (size_t i = 0; i < s->n; i++) s->ice[i] = lev[i] > z[i];
}

static gseg_status map_ice(synth *s)
{
    const double px_area = s->ps * s->ps;
    float *lev = s->zs; /* routing is done: scratch from here on */
    gseg_status st = par_rows(s, 0, s->h, 2, ice_seed_row, NULL);
    if (st != GSEG_OK) return st;
    spread_ice(s, lev);
    int r = (int)lround(45.0 / s->ps);
    if (r >= 1 && (st = majority(s->ice, s->w, s->h, r, (uint16_t *)s->q)) != GSEG_OK) return st;
    /* Specks below 0.02 km2 go, pinholes below 0.002 km2 are filled; larger
     * holes stay (nunataks). */
    st = remove_small(s, s->ice, 1, (uint32_t)ceil(0.02e6 / px_area));
    if (st == GSEG_OK) st = remove_small(s, s->ice, 0, (uint32_t)ceil(0.002e6 / px_area));
    if (st != GSEG_OK) return st;
    /* The DEM over the glaciers becomes a smooth ice surface: the box mean
     * of the spread surface, never below the bed. */
    uint8_t *has = s->snow; /* scratch until map_surface */
    for (size_t i = 0; i < s->n; i++) has[i] = s->ice[i] && lev[i] > s->z[i];
    r = (int)lround(120.0 / s->ps);
    st = masked_box_mean(s, lev, has, r < 1 ? 1 : r, s->q);
    if (st != GSEG_OK) return st;
    for (size_t i = 0; i < s->n; i++)
        if (s->ice[i] && s->q[i] > s->z[i]) s->z[i] = s->q[i];
    return GSEG_OK;
}

/* ------------------------------------------------------------------------ */
/* 3. Surface classes                                                       */

#define LAKE_SHARE 0.06   /* a lake takes up to this share of its glacier */
#define LAKE_CHANCE 0.5   /* of a large valley glacier ending in a lake */
#define SNOW_MAX_SLOPE 40.0
#define SNOW_BELOW 600.0  /* seasonal snow from this far below the snowline */

typedef struct debris_ctx {
    const uint32_t *label;
    const float *zterm; /* terminus elevation per glacier */
} debris_ctx;

/* Debris covers each glacier from its terminus up a share (varying in
 * space) of the way to the ELA, hummocky with bare ice cliffs; lateral
 * moraines line the margins of the lower tongue. Also the lithology. */
static void debris_row(const synth *s, int y, float *scr, void *ctx)
{
    const debris_ctx *d = ctx;
    float *a = scr, *b = scr + s->w, *tmp = scr + 2 * s->w;
    const size_t w = (size_t)s->w;
    fbm_row(s, F_DEBRIS, y, 4000.0, 3, 0.5f, a, tmp, 0, 0);
    fbm_row(s, F_LITH, y, 6000.0, 4, 0.55f, b, tmp, 0, 0);
    for (int x = 0; x < s->w; x++) {
        size_t i = (size_t)y * w + (size_t)x;
        s->lith[i] = to_u8(smoothstep(-0.25f, 0.25f, b[x]));
        float f = 0.0f;
        float zt = s->ice[i] ? d->zterm[d->label[i]] : INFINITY;
        if (zt < s->ela - 150.0) {
            float ela = (float)s->ela;
            float onset = zt + (float)(s->debris_frac * (1.0 + 0.5 * a[x])) * (ela - zt);
            f = smoothstep(-40.0f, 120.0f, onset - s->z[i]);
            if (s->z[i] < onset + 0.5f * (ela - onset)) {
                int edge = 0;
                for (int k = 0; k < 8 && !edge; k += 2) {
                    int nx = x + DX[k], ny = y + DY[k];
                    if (nx >= 0 && ny >= 0 && nx < s->w && ny < s->h)
                        edge = !s->ice[(size_t)ny * w + (size_t)nx];
                }
                if (edge && f < 0.7f) f = 0.7f;
            }
            f *= 0.85f + 0.12f * (float)unit(hash2(s->key ^ F_DEBRIS, (int64_t)i, 0));
        }
        s->debris[i] = to_u8(f);
    }
}

/* Proglacial lakes: about half of the large valley glaciers have retreated
 * from an overdeepening, now a lake where their tongue ended. The lake takes
 * the lowest pixels of the glacier, up to LAKE_SHARE of its area, and has a
 * flat surface at the old terminus. */
static gseg_status make_lakes(synth *s, const uint32_t *label, const float *zterm, uint32_t nl)
{
    enum { NB = 64 }; /* 1 m bins above the terminus */
    uint32_t *hist = gseg__calloc(((size_t)nl + 1) * NB, sizeof *hist);
    uint32_t *size = gseg__calloc((size_t)nl + 1, sizeof *size);
    float *level = gseg__malloc((size_t)nl + 1, sizeof *level);
    if (!hist || !size || !level) {
        free(hist);
        free(size);
        free(level);
        return GSEG_ERR_NOMEM;
    }
    for (size_t i = 0; i < s->n; i++)
        if (label[i]) {
            size[label[i]]++;
            int b = (int)(s->z[i] - zterm[label[i]]);
            if (b < NB) hist[(size_t)label[i] * NB + b]++;
        }
    const double min_px = 1.0e6 / (s->ps * s->ps); /* 1 km2 */
    for (uint32_t k = 1; k <= nl; k++) {
        level[k] = -INFINITY;
        uint64_t hk = hash2(s->key, F_MISC + 10, k);
        if (size[k] < min_px || zterm[k] > s->ela - 300.0 || unit(hk) >= LAKE_CHANCE) continue;
        double cap = LAKE_SHARE * size[k] * (0.4 + 0.6 * unit(mix64(hk)));
        uint32_t acc = 0;
        int b = 0;
        while (b < NB && acc + hist[(size_t)k * NB + b] <= cap) acc += hist[(size_t)k * NB + b++];
        if (b >= 2 && acc >= 20) level[k] = zterm[k] + (float)b;
    }
    for (size_t i = 0; i < s->n; i++)
        if (label[i] && s->z[i] < level[label[i]]) {
            s->ice[i] = 0;
            s->debris[i] = 0;
            s->water[i] = 1;
            s->z[i] = zterm[label[i]];
        }
    free(hist);
    free(size);
    free(level);
    return GSEG_OK;
}

/* Seasonal snow score (high, gentle, north-facing, patchy) and whether the
 * pixel may carry snow at all; vegetation well below the snowline. */
static void snow_veg_row(const synth *s, int y, float *scr, void *ctx)
{
    float *score = ctx, *a = scr, *b = scr + s->w, *tmp = scr + 2 * s->w;
    uint8_t *elig = s->snow; /* replaced by the snow fraction afterwards */
    fbm_row(s, F_SNOW, y, 2500.0, 4, 0.55f, a, tmp, 0, 0);
    fbm_row(s, F_VEG, y, 1500.0, 3, 0.5f, b, tmp, 0, 0);
    for (int x = 0; x < s->w; x++) {
        size_t i = (size_t)y * s->w + (size_t)x;
        float gx, gy;
        gradient(s, x, y, &gx, &gy);
        float slope = slope_deg(gx, gy);
        float north = -gy / sqrtf(1.0f + gx * gx + gy * gy); /* northward normal */
        float z = s->z[i];
        int bare = !s->ice[i] && !s->water[i];
        elig[i] = (uint8_t)(bare && slope < SNOW_MAX_SLOPE && z > s->ela - SNOW_BELOW);
        score[i] = (float)((z - (s->ela - 1000.0)) / 900.0) + 1.2f * north + a[x] - slope / 90.0f;
        float tree = (float)s->ela - 1250.0f + 250.0f * b[x];
        float v = smoothstep(0.0f, 350.0f, tree - z) * (1.0f - smoothstep(25.0f, 40.0f, slope)) *
                  (0.55f + 0.4f * b[x]);
        s->veg[i] = bare ? to_u8(v) : 0;
    }
}

static gseg_status map_surface(synth *s)
{
    uint32_t *label = s->order;
    uint32_t nl = label_components(s, s->ice, 1, label, s->queue, NULL);
    float *zterm = gseg__malloc((size_t)nl + 1, sizeof *zterm);
    if (!zterm) return GSEG_ERR_NOMEM;
    for (uint32_t k = 0; k <= nl; k++) zterm[k] = INFINITY;
    for (size_t i = 0; i < s->n; i++)
        if (label[i] && s->z[i] < zterm[label[i]]) zterm[label[i]] = s->z[i];
    debris_ctx dc = {label, zterm};
    gseg_status st = par_rows(s, 0, s->h, 3, debris_row, &dc);
    if (st == GSEG_OK) st = make_lakes(s, label, zterm, nl);
    free(zterm);
    if (st != GSEG_OK) return st;

    float *score = s->q; /* scratch */
    st = par_rows(s, 0, s->h, 3, snow_veg_row, score);
    if (st != GSEG_OK) return st;
    double t = s->p.seasonal_snow > 0
                   ? quantile(score, s->snow, s->n, 1.0 - s->p.seasonal_snow)
                   : HUGE_VAL;
    for (size_t i = 0; i < s->n; i++)
        s->snow[i] = s->snow[i] ? to_u8(smoothstep((float)t - 0.08f, (float)t + 0.08f, score[i])) : 0;
    return GSEG_OK;
}

/* Clouds: fBm thresholded at the quantile that gives cloud_cover; shadows
 * are the same field seen from the cloud height along the sun's direction. */
typedef struct cloud_ctx {
    float *field;
    float lo, hi;
    double sx, sy; /* shadow displacement, m */
} cloud_ctx;

static void cloud_row(const synth *s, int y, float *scr, void *ctx)
{
    cloud_ctx *c = ctx;
    fbm_row(s, F_CLOUD, y, 7000.0, 6, 0.6f, c->field + (size_t)y * s->w, scr, 0, 0);
}

static void shadow_row(const synth *s, int y, float *scr, void *ctx)
{
    cloud_ctx *c = ctx;
    fbm_row(s, F_CLOUD, y, 7000.0, 4, 0.6f, scr, scr + s->w, c->sx, c->sy);
    for (int x = 0; x < s->w; x++)
        s->shadow[(size_t)y * s->w + x] = to_u8(smoothstep(c->lo, c->hi, scr[x] + 0.035f));
}

static gseg_status map_clouds(synth *s)
{
    if (s->p.cloud_cover <= 0.0) {
        memset(s->cloud, 0, s->n);
        memset(s->shadow, 0, s->n);
        return GSEG_OK;
    }
    cloud_ctx c;
    c.field = s->q;
    gseg_status st = par_rows(s, 0, s->h, 1, cloud_row, &c);
    if (st != GSEG_OK) return st;
    double t = quantile(c.field, NULL, s->n, 1.0 - s->p.cloud_cover);
    c.lo = (float)t - 0.05f;
    c.hi = (float)t + 0.12f;
    for (size_t i = 0; i < s->n; i++) s->cloud[i] = to_u8(smoothstep(c.lo, c.hi, c.field[i] + 0.035f));
    double height = 1500.0 + 1500.0 * unit(hash2(s->key, F_MISC, 3));
    double d = height / tan(s->sun_el * M_PI / 180.0), az = s->sun_az * M_PI / 180.0;
    /* The shadow at p is cast by the cloud at p + d towards the sun. */
    c.sx = d * sin(az);
    c.sy = d * cos(az);
    return par_rows(s, 0, s->h, 2, shadow_row, &c);
}

/* ------------------------------------------------------------------------ */
/* 4. Radiometry and output                                                 */

/* Surface reflectance, OLI B2 B3 B4 B5 B6 B7. */
static const float SP_SNOW[NBANDS] = {0.90f, 0.88f, 0.85f, 0.74f, 0.10f, 0.08f};
static const float SP_FIRN[NBANDS] = {0.76f, 0.74f, 0.71f, 0.58f, 0.07f, 0.05f};
static const float SP_ICE[NBANDS] = {0.52f, 0.47f, 0.41f, 0.28f, 0.04f, 0.03f};
static const float SP_DIRTY[NBANDS] = {0.30f, 0.29f, 0.28f, 0.23f, 0.06f, 0.05f};
static const float SP_ROCK_A[NBANDS] = {0.11f, 0.14f, 0.17f, 0.22f, 0.27f, 0.23f};
static const float SP_ROCK_B[NBANDS] = {0.06f, 0.08f, 0.10f, 0.13f, 0.17f, 0.15f};
static const float SP_VEG[NBANDS] = {0.035f, 0.07f, 0.045f, 0.32f, 0.17f, 0.08f};
static const float SP_WATER[NBANDS] = {0.10f, 0.12f, 0.085f, 0.03f, 0.008f, 0.005f};
static const float SP_CLOUD[NBANDS] = {0.62f, 0.60f, 0.59f, 0.57f, 0.40f, 0.26f};
/* Share of diffuse skylight in the irradiance per band. */
static const float DIFFUSE[NBANDS] = {0.25f, 0.18f, 0.14f, 0.10f, 0.06f, 0.05f};

/* Ground reflectance of pixel i before illumination. */
static void ground_reflectance(const synth *s, size_t i, float surf, float *g)
{
    float rock[NBANDS];
    float lith = s->lith[i] / 255.0f;
    for (int b = 0; b < NBANDS; b++) rock[b] = SP_ROCK_A[b] + lith * (SP_ROCK_B[b] - SP_ROCK_A[b]);
    float z = s->z[i], ela = (float)s->ela;
    if (s->water[i]) {
        float turbid = 0.8f + 0.4f * surf;
        for (int b = 0; b < NBANDS; b++) g[b] = SP_WATER[b] * turbid;
    } else if (s->ice[i]) {
        /* Snow above the late-summer snowline, firn around it, bare ice
         * getting dirtier towards the terminus, debris over it. */
        float cover = smoothstep(ela - 60.0f, ela + 120.0f, z + 80.0f * surf);
        float dirt = smoothstep(0.0f, 700.0f, ela - z);
        float fresh = smoothstep(ela + 300.0f, ela + 900.0f, z);
        float d = s->debris[i] / 255.0f;
        for (int b = 0; b < NBANDS; b++) {
            float top = SP_FIRN[b] + fresh * (SP_SNOW[b] - SP_FIRN[b]);
            float bare = SP_ICE[b] + dirt * (SP_DIRTY[b] - SP_ICE[b]);
            float clean = bare + cover * (top - bare);
            g[b] = clean + d * (0.95f * rock[b] - clean);
        }
    } else {
        float v = s->veg[i] / 255.0f, sn = s->snow[i] / 255.0f;
        for (int b = 0; b < NBANDS; b++) {
            float ground = rock[b] + v * (SP_VEG[b] - rock[b]);
            g[b] = ground + sn * (SP_SNOW[b] - ground);
        }
    }
}

typedef struct reflect_ctx {
    uint16_t *buf; /* [NBANDS + 1][rows][w] */
    int y0;
    size_t plane;
} reflect_ctx;

/* One output row: reflectance lit by the direct beam on the slope (cloud
 * shadows remove most of it) plus diffuse sky light, under clouds, with
 * sub-pixel texture and sensor noise; then the elevation. */
static void reflect_row(const synth *s, int y, float *scr, void *ctx)
{
    const reflect_ctx *rc = ctx;
    float *surf = scr, *tmp = scr + s->w;
    const uint64_t nkey = s->key ^ F_NOISE;
    fbm_row(s, F_SURF, y, 600.0, 3, 0.5f, surf, tmp, 0, 0);
    uint16_t *out = rc->buf + (size_t)(y - rc->y0) * s->w;
    for (int x = 0; x < s->w; x++) {
        size_t i = (size_t)y * s->w + (size_t)x;
        float g[NBANDS], gx, gy;
        ground_reflectance(s, i, surf[x], g);
        gradient(s, x, y, &gx, &gy);
        float inv = 1.0f / sqrtf(1.0f + gx * gx + gy * gy);
        float cosi = (-gx * (float)s->sun[0] - gy * (float)s->sun[1] + (float)s->sun[2]) * inv;
        float direct = (cosi > 0.0f ? cosi : 0.0f) / (float)s->sun[2];
        direct *= 1.0f - 0.88f * (s->shadow[i] / 255.0f);
        float sky = 0.5f * (1.0f + inv);
        float a = s->cloud[i] / 255.0f;
        float tex = 1.0f + 0.006f * gauss(hash2(nkey, (int64_t)i, 7));
        for (int b = 0; b < NBANDS; b++) {
            float lit = g[b] * ((1.0f - DIFFUSE[b]) * direct + DIFFUSE[b] * sky);
            float v = lit + a * (SP_CLOUD[b] * (0.8f + 0.2f * a) - lit);
            v = v * tex + (0.0008f + 0.002f * v) * gauss(hash2(nkey, (int64_t)i, b));
            float dn = v * 10000.0f + 0.5f;
            out[b * rc->plane + (size_t)x] = dn < 1.0f ? 1 : dn > 65535.0f ? 65535 : (uint16_t)dn;
        }
        float ez = s->z[i] + 0.5f;
        out[NBANDS * rc->plane + (size_t)x] = ez < 1.0f ? 1 : ez > 65535.0f ? 65535 : (uint16_t)ez;
    }
}

static gseg_status set_georef(const synth *s, GDALDatasetH ds, const char *path)
{
    double gt[6] = {s->p.origin_x, s->ps, 0.0, s->p.origin_y, 0.0, -s->ps};
    OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
    gseg_status st = GSEG_OK;
    if (OSRImportFromEPSG(srs, s->p.epsg) != OGRERR_NONE)
        st = gseg__gdal_err(GSEG_ERR_ARG, "%s: unknown EPSG code %d", path, s->p.epsg);
    else if (GDALSetGeoTransform(ds, gt) != CE_None || GDALSetSpatialRef(ds, srs) != CE_None)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot set georeferencing", path);
    OSRDestroySpatialReference(srs);
    return st;
}

static GDALDatasetH create_tiff(const char *tmp, const char *path, int w, int h, int nb,
                                GDALDataType type, gseg_status *st)
{
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    if (!drv) {
        *st = gseg__err(GSEG_ERR_UNSUPPORTED, "%s: GDAL has no GTiff driver", path);
        return NULL;
    }
    /* The bands are noise-like at the pixel scale: DEFLATE level 1 packs
     * them as tightly as level 6, faster. Threaded compression writes the
     * same bytes whatever the number of threads. */
    const char *opts[] = {"TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256",
                          "COMPRESS=DEFLATE", "ZLEVEL=1", "PREDICTOR=2",
                          "INTERLEAVE=BAND", "NUM_THREADS=ALL_CPUS", "BIGTIFF=IF_SAFER", NULL};
    CPLErrorReset();
    GDALDatasetH ds = GDALCreate(drv, tmp, w, h, nb, type, (char **)opts);
    if (!ds) *st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot create", path);
    return ds;
}

/* Closes ds and reports a write error GDAL raised on the way. */
static gseg_status close_checked(GDALDatasetH ds, const char *path)
{
    CPLErrorReset();
    GDALClose(ds);
    if (CPLGetLastErrorType() >= CE_Failure)
        return gseg__gdal_err(GSEG_ERR_IO, "%s: write failed", path);
    return GSEG_OK;
}

static gseg_status write_image(const synth *s, const char *tmp, const char *path)
{
    static const char *const names[NBANDS + 1] = {"blue", "green", "red", "nir",
                                                  "swir1", "swir2", "elevation"};
    static const char *const wl[NBANDS] = {"0.482", "0.561", "0.655", "0.865", "1.609", "2.201"};
    static const char *const fwhm[NBANDS] = {"0.060", "0.057", "0.037", "0.028", "0.085", "0.187"};
    gseg_status st = GSEG_OK;
    GDALDatasetH ds = create_tiff(tmp, path, s->w, s->h, NBANDS + 1, GDT_UInt16, &st);
    if (!ds) return st;
    st = set_georef(s, ds, path);
    if (st != GSEG_OK) {
        GDALClose(ds);
        return st;
    }
    GDALSetMetadataItem(ds, "SENSOR", "synthetic Landsat 8 OLI (gseg-synth)", NULL);
    GDALSetMetadataItem(ds, "REFLECTANCE",
                        "bands 1-6: surface reflectance x 10000, no offset; band 7: elevation, m",
                        NULL);
    GDALSetMetadataItem(ds, "SYNTH_SEED", CPLSPrintf("%lu", s->p.seed), NULL);
    GDALSetMetadataItem(ds, "SYNTH_SNOWLINE_M", CPLSPrintf("%.1f", s->ela), NULL);
    GDALSetMetadataItem(ds, "SYNTH_CLOUD_COVER", CPLSPrintf("%.3f", s->p.cloud_cover), NULL);
    GDALSetMetadataItem(ds, "SYNTH_SEASONAL_SNOW", CPLSPrintf("%.3f", s->p.seasonal_snow), NULL);
    GDALSetMetadataItem(ds, "SUN_AZIMUTH", CPLSPrintf("%.2f", s->sun_az), NULL);
    GDALSetMetadataItem(ds, "SUN_ELEVATION", CPLSPrintf("%.2f", s->sun_el), NULL);
    for (int b = 0; b <= NBANDS; b++) {
        GDALRasterBandH bh = GDALGetRasterBand(ds, b + 1);
        GDALSetDescription(bh, names[b]);
        GDALSetRasterNoDataValue(bh, 0.0);
        if (b < NBANDS) {
            GDALSetMetadataItem(bh, "CENTRAL_WAVELENGTH_UM", wl[b], "IMAGERY");
            GDALSetMetadataItem(bh, "FWHM_UM", fwhm[b], "IMAGERY");
        } else {
            GDALSetRasterUnitType(bh, "m");
        }
    }
    /* One row of tiles at a time. */
    const int rows = 256;
    reflect_ctx rc;
    rc.plane = (size_t)s->w * (size_t)rows;
    rc.buf = gseg__malloc(rc.plane * (NBANDS + 1), sizeof *rc.buf);
    if (!rc.buf) {
        GDALClose(ds);
        return GSEG_ERR_NOMEM;
    }
    int bands[NBANDS + 1] = {1, 2, 3, 4, 5, 6, 7};
    for (int y0 = 0; y0 < s->h && st == GSEG_OK; y0 += rows) {
        int nr = s->h - y0 < rows ? s->h - y0 : rows;
        rc.y0 = y0;
        st = par_rows(s, y0, y0 + nr, 2, reflect_row, &rc);
        if (st != GSEG_OK) break;
        CPLErrorReset();
        if (GDALDatasetRasterIO(ds, GF_Write, 0, y0, s->w, nr, rc.buf, s->w, nr, GDT_UInt16,
                                NBANDS + 1, bands, 0, 0,
                                (GSpacing)(rc.plane * sizeof *rc.buf)) != CE_None)
            st = gseg__gdal_err(GSEG_ERR_IO, "%s: write failed", path);
    }
    free(rc.buf);
    gseg_status cst = close_checked(ds, path);
    return st != GSEG_OK ? st : cst;
}

static gseg_status write_mask(const synth *s, const char *tmp, const char *path)
{
    gseg_status st = GSEG_OK;
    GDALDatasetH ds = create_tiff(tmp, path, s->w, s->h, 1, GDT_Byte, &st);
    if (!ds) return st;
    st = set_georef(s, ds, path);
    if (st != GSEG_OK) {
        GDALClose(ds);
        return st;
    }
    GDALSetMetadataItem(ds, "SYNTH_SEED", CPLSPrintf("%lu", s->p.seed), NULL);
    GDALRasterBandH bh = GDALGetRasterBand(ds, 1);
    GDALSetDescription(bh, "glacier");
    GDALColorTableH ct = GDALCreateColorTable(GPI_RGB);
    GDALColorEntry bg = {128, 128, 128, 64}, gl = {160, 210, 255, 255};
    GDALSetColorEntry(ct, 0, &bg);
    GDALSetColorEntry(ct, 1, &gl);
    GDALSetRasterColorTable(bh, ct);
    GDALDestroyColorTable(ct);
    const char *cats[] = {gseg__binary_classes[0], gseg__binary_classes[1], NULL};
    GDALSetRasterCategoryNames(bh, (char **)cats);
    CPLErrorReset();
    if (GDALRasterIO(bh, GF_Write, 0, 0, s->w, s->h, s->ice, s->w, s->h, GDT_Byte, 0, 0) !=
        CE_None)
        st = gseg__gdal_err(GSEG_ERR_IO, "%s: write failed", path);
    gseg_status cst = close_checked(ds, path);
    return st != GSEG_OK ? st : cst;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */

gseg_synth_params gseg_synth_params_default(void)
{
    gseg_synth_params p;
    memset(&p, 0, sizeof p);
    p.width = 512;
    p.height = 512;
    p.seed = 1;
    p.pixel_size = 30.0;
    p.epsg = 32643;
    p.origin_x = 500000.0;  /* 75 E, the zone's central meridian */
    p.origin_y = 4000000.0; /* about 36.1 N: Karakoram */
    p.snowline_m = 4800.0;
    p.cloud_cover = 0.1;
    p.seasonal_snow = 0.3;
    return p;
}

static gseg_status check_params(const gseg_synth_params *p, const char *image_path,
                                const char *mask_path)
{
    if (!p || !image_path || !*image_path || !mask_path || !*mask_path)
        return gseg__err(GSEG_ERR_ARG, "gseg_synth_scene: params, image and mask paths are required");
    const char *f = image_path;
    if (p->width < MIN_SIZE || p->height < MIN_SIZE)
        return gseg__err(GSEG_ERR_ARG, "%s: scene size %d x %d is too small (at least %d x %d)",
                         f, p->width, p->height, MIN_SIZE, MIN_SIZE);
    if (!(p->pixel_size > 0.0 && p->pixel_size <= 10000.0))
        return gseg__err(GSEG_ERR_ARG, "%s: pixel size %g m is out of range (0, 10000]", f,
                         p->pixel_size);
    if (!(p->cloud_cover >= 0.0 && p->cloud_cover <= 1.0))
        return gseg__err(GSEG_ERR_ARG, "%s: cloud cover %g is not a fraction in [0, 1]", f,
                         p->cloud_cover);
    if (!(p->seasonal_snow >= 0.0 && p->seasonal_snow <= 1.0))
        return gseg__err(GSEG_ERR_ARG, "%s: seasonal snow %g is not a fraction in [0, 1]", f,
                         p->seasonal_snow);
    if (!(p->snowline_m >= 0.0 && p->snowline_m <= 9000.0))
        return gseg__err(GSEG_ERR_ARG, "%s: snowline %g m is out of range [0, 9000]", f,
                         p->snowline_m);
    if (!isfinite(p->origin_x) || !isfinite(p->origin_y))
        return gseg__err(GSEG_ERR_ARG, "%s: the origin is not finite", f);
    double npx = (double)p->width * (double)p->height;
    if (npx >= 4294967295.0)
        return gseg__err(GSEG_ERR_LIMIT, "%s: scene size %d x %d exceeds 2^32 pixels", f,
                         p->width, p->height);
    double need = npx * BYTES_PER_PIXEL, limit = (double)gseg__memory_limit();
    if (need > limit)
        return gseg__err(GSEG_ERR_LIMIT,
                         "%s: a %d x %d scene needs about %.0f MiB, more than the memory limit "
                         "of %.0f MiB (GSEG_MAX_MEMORY)",
                         f, p->width, p->height, need / 1048576.0, limit / 1048576.0);
    OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
    int ok = OSRImportFromEPSG(srs, p->epsg) == OGRERR_NONE;
    int proj = ok && OSRIsProjected(srs);
    OSRDestroySpatialReference(srs);
    if (!ok) return gseg__err(GSEG_ERR_ARG, "%s: unknown EPSG code %d", f, p->epsg);
    if (!proj)
        return gseg__err(GSEG_ERR_ARG, "%s: EPSG:%d is not a projected CRS (pixel size is in metres)",
                         f, p->epsg);
    return GSEG_OK;
}

static void synth_free(synth *s)
{
    free(s->z);
    free(s->zs);
    free(s->q);
    free(s->order);
    free(s->queue);
    free(s->ice);
    free(s->water);
    free(s->debris);
    free(s->snow);
    free(s->veg);
    free(s->lith);
    free(s->cloud);
    free(s->shadow);
}

static gseg_status synth_alloc(synth *s)
{
    const size_t n = s->n;
    s->z = gseg__malloc(n, sizeof(float));
    s->zs = s->z ? gseg__malloc(n, sizeof(float)) : NULL;
    s->q = s->zs ? gseg__malloc(n, sizeof(float)) : NULL;
    s->order = s->q ? gseg__malloc(n, sizeof(uint32_t)) : NULL;
    s->queue = s->order ? gseg__malloc(n, sizeof(uint32_t)) : NULL;
    uint8_t **u8[] = {&s->ice, &s->water, &s->debris, &s->snow,
                      &s->veg, &s->lith, &s->cloud, &s->shadow};
    int ok = s->queue != NULL;
    for (size_t k = 0; ok && k < sizeof u8 / sizeof *u8; k++) ok = (*u8[k] = gseg__malloc(n, 1)) != NULL;
    if (ok) memset(s->water, 0, n);
    return ok ? GSEG_OK : GSEG_ERR_NOMEM;
}

gseg_status gseg_synth_scene(const gseg_synth_params *p, const char *image_path,
                             const char *mask_path, const char *outlines_path)
{
    gseg__clear_error();
    gseg_status st = check_params(p, image_path, mask_path);
    if (st != GSEG_OK) return st;

    synth s;
    memset(&s, 0, sizeof s);
    s.p = *p;
    s.w = p->width;
    s.h = p->height;
    s.n = (size_t)p->width * (size_t)p->height;
    s.key = mix64((uint64_t)p->seed ^ 0x67736567u /* "gseg" */);
    s.ps = p->pixel_size;
    s.ela = p->snowline_m;
    s.sun_az = 140.0 + 25.0 * unit(hash2(s.key, F_MISC, 1));
    s.sun_el = 42.0 + 14.0 * unit(hash2(s.key, F_MISC, 2));
    s.debris_frac = 0.15 + 0.25 * unit(hash2(s.key, F_MISC, 4));
    double az = s.sun_az * M_PI / 180.0, el = s.sun_el * M_PI / 180.0;
    s.sun[0] = sin(az) * cos(el);
    s.sun[1] = cos(az) * cos(el);
    s.sun[2] = sin(el);

    char *tmp_img = NULL, *tmp_mask = NULL;
    st = synth_alloc(&s);
    if (st == GSEG_OK) st = make_terrain(&s);
    if (st == GSEG_OK) st = sort_by_height(&s);
    if (st == GSEG_OK) {
        route_ice(&s);
        st = map_ice(&s);
    }
    if (st == GSEG_OK) st = map_surface(&s);
    if (st == GSEG_OK) st = map_clouds(&s);

    if (st == GSEG_OK && !(tmp_img = gseg__tmp_path(image_path))) st = GSEG_ERR_ARG;
    if (st == GSEG_OK && !(tmp_mask = gseg__tmp_path(mask_path))) st = GSEG_ERR_ARG;
    if (st == GSEG_OK) st = write_image(&s, tmp_img, image_path);
    if (st == GSEG_OK) st = write_mask(&s, tmp_mask, mask_path);
    synth_free(&s);
    /* Both files are complete before either appears. */
    if (st == GSEG_OK) st = gseg__commit(tmp_img, image_path);
    else gseg__discard(tmp_img);
    if (st == GSEG_OK) st = gseg__commit(tmp_mask, mask_path);
    else gseg__discard(tmp_mask);
    free(tmp_img);
    free(tmp_mask);
    if (st != GSEG_OK || !outlines_path) return st;

    gseg_vectorize_params vp = gseg_vectorize_params_default();
    vp.source = "gseg-synth truth";
    vp.nclasses = 2;
    vp.class_names = gseg__binary_classes;
    return gseg_vectorize(mask_path, outlines_path, &vp, NULL, NULL, NULL);
}
