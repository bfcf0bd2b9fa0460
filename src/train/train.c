/*
 * train.c — gseg_train: scenes + masks -> a trained .gseg model.
 *
 *   discover (dataset.c) -> per-band statistics -> new model
 *   loader threads: random windows -> normalise -> augment -> batch queue
 *   main thread: AdamW steps (warm-up + cosine, or one-cycle; gradients
 *   accumulated over --accum micro-batches; autocast bf16 where asked),
 *   validation each epoch (confusion matrix, IoU), best and last
 *   checkpoints, metrics file.
 *
 * Threads: each loader owns its own GDAL handles (a gseg_scene and a mask
 * dataset per scene, opened lazily). Micro-batch q of this process is made
 * by loader q % L from a random stream seeded by (seed, q * world + rank),
 * and the trainer takes them in order, so the data — and with the same
 * threads, the weights — depend only on the seed, never on thread timing.
 * When the network's threads fill every CPU, the loaders take turns with
 * the trainer: they start a sample only while the trainer waits for data,
 * so the queue drains and refills instead of the loaders preempting the
 * network's threads (the reason is in pipeline.c). Measured on 2 cores
 * (resnet50, 256^2, batch 4, bf16, 4 alternating pairs of runs): 4.12
 * against 3.97 samples/s, with 1 % of the time waiting for data.
 *
 * Several processes (torchrun, srun; dist.h): each rank draws its own
 * micro-batches (the global stream interleaved by rank), gradients are
 * averaged in the optimiser step, validation scenes are shared out and
 * their confusion matrices summed, so every rank takes the same decisions;
 * only rank 0 reports and writes files.
 */
#include "train.h"
#include "../infer/dist.h"
#include "../infer/net.h"
#include "json.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t g_stop;

void gseg_train_interrupt(void) { g_stop = 1; }

gseg_train_params gseg_train_params_default(void)
{
    gseg_train_params p;
    memset(&p, 0, sizeof p);
    p.data = "dataset";
    p.encoder = "resnet50";
    p.nclasses = 2;
    p.epochs = 10;
    p.batch = 8;
    p.tile = 256;
    p.lr = 1e-3;
    p.weight_decay = 1e-4;
    p.warmup = -1;
    p.glacier_share = 0.5;
    p.val_fraction = 0.2;
    p.seed = 1;
    p.loaders = 2;
    p.accum = 1;
    p.model_options = gseg_model_options_default();
    return p;
}

/* ---- random numbers: splitmix64 ------------------------------------------ */

static uint64_t mix(uint64_t *s) { return gseg__splitmix64(s); }
static double uni(uint64_t *s) { return (double)(mix(s) >> 11) * (1.0 / 9007199254740992.0); }
static int below(uint64_t *s, int n) { return n > 0 ? (int)(uni(s) * n) : 0; }

/* ---- the batch queue and its loaders --------------------------------------- */

typedef struct batch {
    long index; /* -1 = empty */
    float *x, *t;
    uint8_t *v;
} batch;

typedef struct loader_ctx {
    const gseg_train_params *p;
    gseg__tdata *d;
    const int *train_idx;
    int ntrain;
    double *weights; /* cumulative, per training scene */
    const char *const *bands;
    int nb;
    const double *mean, *sd;
    int T, B, nloaders;
    int rank, world;
    batch *slots;
    int depth;
    long next_needed; /* batches below this were consumed */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int turns, busy; /* with turns, loaders wait unless the trainer waits */
    gseg_status err;
    char errmsg[512];
    double wait_s;
} loader_ctx;

typedef struct loader {
    loader_ctx *c;
    int id;
    gseg_scene **scenes;
    GDALDatasetH *masks;
    float *tile;
    uint8_t *valid, *mask;
} loader;

/* Rotates/flips a square T x T plane in place (k quarter turns, then a
 * mirror), using tmp. */
static void orient_f(float *a, float *tmp, int T, int k, int flip)
{
    for (int y = 0; y < T; y++)
        for (int x = 0; x < T; x++) {
            int sx = x, sy = y, t;
            for (int r = 0; r < k; r++) {
                t = sx;
                sx = T - 1 - sy;
                sy = t;
            }
            if (flip) sx = T - 1 - sx;
            tmp[(size_t)y * T + x] = a[(size_t)sy * T + sx];
        }
    memcpy(a, tmp, (size_t)T * T * sizeof *a);
}

static gseg_status make_sample(loader *L, uint64_t *rng, float *x, float *t, uint8_t *v)
{
    loader_ctx *c = L->c;
    int T = c->T, nb = c->nb;
    size_t plane = (size_t)T * T;
    double r = uni(rng) * c->weights[c->ntrain - 1];
    int k = 0;
    while (k < c->ntrain - 1 && c->weights[k] < r) k++;
    int si = c->train_idx[k];
    gseg__tscene *s = &c->d->scenes[si];
    if (!L->scenes[si]) {
        gseg_scene_params sp = gseg_scene_params_default();
        sp.bands = c->bands;
        const char *pth[1] = {s->image};
        gseg_status st = gseg_scene_open(pth, 1, &sp, &L->scenes[si]);
        if (st != GSEG_OK) return st;
        L->masks[si] = GDALOpenEx(s->mask, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
        if (!L->masks[si]) return gseg__gdal_err(GSEG_ERR_IO, "%s: cannot open mask", s->mask);
    }
    int W = s->width, H = s->height;
    int wx, wy;
    if (s->nglacier && uni(rng) < c->p->glacier_share) {
        int g = below(rng, s->nglacier);
        int cx = s->glacier_blocks[2 * g] + below(rng, 32), cy = s->glacier_blocks[2 * g + 1] + below(rng, 32);
        wx = cx - T / 2 + below(rng, T / 2) - T / 4;
        wy = cy - T / 2 + below(rng, T / 2) - T / 4;
    } else {
        wx = below(rng, W - T + 1 > 0 ? W - T + 1 : 1);
        wy = below(rng, H - T + 1 > 0 ? H - T + 1 : 1);
    }
    if (wx > W - T) wx = W - T;
    if (wy > H - T) wy = H - T;
    if (wx < 0) wx = 0;
    if (wy < 0) wy = 0;
    gseg_window win = {wx, wy, W - wx < T ? W - wx : T, H - wy < T ? H - wy : T};
    gseg_status st = gseg_scene_read(L->scenes[si], win, T, T, x, v, NULL);
    if (st != GSEG_OK) return st;
    memset(L->mask, s->mask_nodata, plane);
    if (GDALRasterIO(GDALGetRasterBand(L->masks[si], 1), GF_Read, win.x, win.y, win.w, win.h,
                     L->mask, win.w, win.h, GDT_Byte, 1, T) != CE_None)
        return gseg__gdal_err(GSEG_ERR_IO, "%s: read error", s->mask);
    int binary = c->p->nclasses == 2;
    for (size_t i = 0; i < plane; i++) {
        int m = L->mask[i];
        if (gseg__unlabelled(s, m)) v[i] = 0;
        t[i] = binary ? (float)(m > 0 && v[i]) : (float)(v[i] ? m : 0);
    }
    /* Normalise; brightness/contrast jitter on valid pixels. */
    double gain = 1.0 + 0.2 * (uni(rng) - 0.5), bias = 0.2 * (uni(rng) - 0.5);
    for (int b = 0; b < nb; b++) {
        float *xb = x + (size_t)b * plane, mu = (float)c->mean[b], inv = (float)(1.0 / c->sd[b]);
        for (size_t i = 0; i < plane; i++)
            xb[i] = v[i] ? (float)(((xb[i] - mu) * inv) * gain + bias) : 0.0f;
    }
    int turns = below(rng, 4), flip = below(rng, 2);
    if (turns || flip) {
        for (int b = 0; b < nb; b++) orient_f(x + (size_t)b * plane, L->tile, T, turns, flip);
        orient_f(t, L->tile, T, turns, flip);
        float *vf = L->tile + plane; /* second half of tmp holds v as float */
        for (size_t i = 0; i < plane; i++) vf[i] = v[i];
        orient_f(vf, L->tile, T, turns, flip);
        for (size_t i = 0; i < plane; i++) v[i] = vf[i] > 0.5f;
    }
    return GSEG_OK;
}

/* With turns: waits until the trainer waits for data; returns c->stop. */
static int take_turn(loader_ctx *c)
{
    if (!c->turns) return 0;
    pthread_mutex_lock(&c->mu);
    while (!c->stop && c->busy) pthread_cond_wait(&c->cv, &c->mu);
    int stop = c->stop;
    pthread_mutex_unlock(&c->mu);
    return stop;
}

static void *loader_main(void *arg)
{
    loader *L = arg;
    loader_ctx *c = L->c;
    size_t plane = (size_t)c->T * c->T;
    for (long b = c->next_needed + L->id;; b += c->nloaders) {
        pthread_mutex_lock(&c->mu);
        while (!c->stop && b - c->next_needed >= c->depth) pthread_cond_wait(&c->cv, &c->mu);
        int stop = c->stop;
        pthread_mutex_unlock(&c->mu);
        if (stop) break;
        batch *s = &c->slots[b % c->depth];
        uint64_t g = (uint64_t)b * (uint64_t)c->world + (uint64_t)c->rank;
        uint64_t rng = c->p->seed * 0x9e3779b97f4a7c15ull + g * 0xd1b54a32d192ed03ull;
        mix(&rng);
        gseg_status st = GSEG_OK;
        int i = 0;
        for (; i < c->B && st == GSEG_OK && !take_turn(c); i++)
            st = make_sample(L, &rng, s->x + (size_t)i * c->nb * plane, s->t + (size_t)i * plane,
                             s->v + (size_t)i * plane);
        if (st == GSEG_OK && i < c->B) break; /* stopped */
        pthread_mutex_lock(&c->mu);
        if (st != GSEG_OK && c->err == GSEG_OK) {
            c->err = st;
            snprintf(c->errmsg, sizeof c->errmsg, "%s", gseg_last_error());
        }
        s->index = st == GSEG_OK ? b : -2;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        if (st != GSEG_OK) break;
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Waits for batch b; NULL on a loader error (message set). */
static batch *take(loader_ctx *c, long b)
{
    double t0 = now_s();
    batch *s = &c->slots[b % c->depth];
    pthread_mutex_lock(&c->mu);
    if (s->index != b && c->turns) { /* the loaders' turn */
        c->busy = 0;
        pthread_cond_broadcast(&c->cv);
    }
    while (s->index != b && c->err == GSEG_OK) pthread_cond_wait(&c->cv, &c->mu);
    c->busy = 1;
    gseg_status err = c->err;
    pthread_mutex_unlock(&c->mu);
    c->wait_s += now_s() - t0;
    if (s->index != b) {
        gseg__err(err, "%s", c->errmsg);
        return NULL;
    }
    return s;
}

static void release(loader_ctx *c, long b)
{
    pthread_mutex_lock(&c->mu);
    c->next_needed = b + 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ---- validation -------------------------------------------------------------- */

/* The confusion matrix conf[K][K] (truth x prediction) of the val scenes,
 * tile by tile (padded at the edges); with several ranks, each takes every
 * world-th val scene and the matrices are summed. */
static gseg_status validate(gseg__net *net, gseg__tdata *d, const char *const *bands, int nb,
                            const double *mean, const double *sd, int K, int T,
                            gseg__dist *dist, double *conf)
{
    size_t plane = (size_t)T * T;
    int outs = K == 2 ? 1 : K;
    float *x = gseg__malloc((size_t)nb * plane, sizeof *x), *y = gseg__malloc((size_t)outs * plane, sizeof *y);
    uint8_t *v = gseg__malloc(plane, 1), *m = gseg__malloc(plane, 1);
    gseg_status st = x && y && v && m ? GSEG_OK : GSEG_ERR_NOMEM;
    memset(conf, 0, (size_t)K * K * sizeof *conf);
    gseg_scene_params sp = gseg_scene_params_default();
    sp.bands = bands;
    for (int i = 0, nv = 0; i < d->n && st == GSEG_OK; i++) {
        gseg__tscene *s = &d->scenes[i];
        if (!s->val || nv++ % gseg__dist_world(dist) != gseg__dist_rank(dist)) continue;
        gseg_scene *img = NULL;
        const char *pth[1] = {s->image};
        st = gseg_scene_open(pth, 1, &sp, &img);
        GDALDatasetH md = st == GSEG_OK ? GDALOpenEx(s->mask, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL) : NULL;
        if (st == GSEG_OK && !md) st = gseg__gdal_err(GSEG_ERR_IO, "%s: cannot open mask", s->mask);
        for (int y0 = 0; y0 < s->height && st == GSEG_OK; y0 += T)
            for (int x0 = 0; x0 < s->width && st == GSEG_OK; x0 += T) {
                gseg_window win = {x0, y0, s->width - x0 < T ? s->width - x0 : T,
                                   s->height - y0 < T ? s->height - y0 : T};
                st = gseg_scene_read(img, win, T, T, x, v, NULL);
                if (st != GSEG_OK) break;
                if (GDALRasterIO(GDALGetRasterBand(md, 1), GF_Read, win.x, win.y, win.w, win.h, m,
                                 win.w, win.h, GDT_Byte, 1, T) != CE_None) {
                    st = gseg__gdal_err(GSEG_ERR_IO, "%s: read error", s->mask);
                    break;
                }
                for (int b = 0; b < nb; b++)
                    for (size_t k = 0; k < plane; k++) {
                        float *xb = x + (size_t)b * plane;
                        xb[k] = v[k] ? (float)((xb[k] - mean[b]) / sd[b]) : 0.0f;
                    }
                st = gseg__net_forward(net, x, 1, nb, T, T, y, 0);
                for (int yy = 0; yy < win.h && st == GSEG_OK; yy++)
                    for (int xx = 0; xx < win.w; xx++) {
                        size_t k = (size_t)yy * T + xx;
                        int truth = m[k];
                        if (!v[k] || gseg__unlabelled(s, truth)) continue;
                        if (K == 2) truth = truth > 0;
                        int pred = 0;
                        if (outs == 1) {
                            pred = y[k] > 0.5f;
                        } else {
                            for (int c = 1; c < outs; c++)
                                if (y[(size_t)c * plane + k] > y[(size_t)pred * plane + k]) pred = c;
                        }
                        if (truth < K) conf[truth * K + pred] += 1;
                    }
            }
        if (md) GDALClose(md);
        gseg_scene_free(img);
    }
    free(x);
    free(y);
    free(v);
    free(m);
    /* Every rank gets here, also after an error, so none waits forever. */
    double failed = st != GSEG_OK;
    gseg_status dst = gseg__dist_allreduce_f64(dist, &failed, 1);
    if (dst == GSEG_OK && st == GSEG_OK) dst = gseg__dist_allreduce_f64(dist, conf, K * K);
    if (st == GSEG_OK && failed > 0) st = gseg__err(GSEG_ERR_IO, "validation failed on another rank");
    return st != GSEG_OK ? st : dst;
}

static double iou_of(const double *conf, int K, int c)
{
    double tp = conf[c * K + c], fp = 0, fn = 0;
    for (int j = 0; j < K; j++)
        if (j != c) {
            fp += conf[j * K + c];
            fn += conf[c * K + j];
        }
    return tp + fp + fn > 0 ? tp / (tp + fp + fn) : NAN;
}

/* ---- the run ---------------------------------------------------------------- */

static char *sibling(const char *out, const char *suffix)
{
    size_t n = strlen(out);
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - out) : n;
    char *s = gseg__malloc(stem + strlen(suffix) + 1, 1);
    if (s) {
        memcpy(s, out, stem);
        strcpy(s + stem, suffix);
    }
    return s;
}

/* Checkpoints are written by a thread of their own while training goes
 * on. The training thread copies the weights (with their provenance) and
 * the optimiser state, a fraction of a second; the writer then writes best
 * (if improved), the optimiser state (state_name, beside last_path), and
 * last_path naming it, each atomically, and removes older state files: a
 * crash anywhere leaves a consistent pair. One checkpoint is in flight at a
 * time; the next one, and the end of the run, wait for it, and a failed
 * write ends the training with its message. */
typedef struct ckpt {
    pthread_t th;
    int running;
    gseg__model_image *img;
    void *state;
    size_t state_n;
    char *best_path, *last_path, *state_path;
    gseg_status st;
    char msg[1024];
} ckpt;

static void ckpt_release(ckpt *c)
{
    gseg__model_image_free(c->img);
    free(c->state);
    free(c->best_path);
    free(c->last_path);
    free(c->state_path);
    c->img = NULL;
    c->state = NULL;
    c->best_path = c->last_path = c->state_path = NULL;
}

static void *ckpt_main(void *arg)
{
    ckpt *c = arg;
    gseg_status st = GSEG_OK;
    if (c->best_path) st = gseg__model_image_write(c->img, c->best_path);
    if (st == GSEG_OK) st = gseg__write_file_atomic(c->state_path, c->state, c->state_n);
    if (st == GSEG_OK) st = gseg__model_image_write(c->img, c->last_path);
    if (st == GSEG_OK) {
        char dir[2048], stem[1024];
        snprintf(dir, sizeof dir, "%s", CPLGetPath(c->last_path));
        snprintf(stem, sizeof stem, "%s", CPLGetBasename(c->last_path));
        const char *keep = CPLGetFilename(c->state_path);
        size_t bl = strlen(stem);
        char **files = VSIReadDir(dir);
        for (int f = 0; files && files[f]; f++) {
            const char *nm = files[f];
            size_t n = strlen(nm);
            if (strncmp(nm, stem, bl) == 0 && nm[bl] == '.' && n > 6 &&
                strcmp(nm + n - 6, ".state") == 0 && strcmp(nm, keep) != 0)
                VSIUnlink(CPLFormFilename(dir, nm, NULL));
        }
        CSLDestroy(files);
    }
    c->st = st;
    if (st != GSEG_OK) snprintf(c->msg, sizeof c->msg, "%s", gseg_last_error());
    return NULL;
}

/* Waits for the checkpoint in flight, if any; its status. */
static gseg_status ckpt_wait(ckpt *c)
{
    if (!c->running) return GSEG_OK;
    pthread_join(c->th, NULL);
    c->running = 0;
    ckpt_release(c);
    return c->st == GSEG_OK ? GSEG_OK : gseg__err(c->st, "%s", c->msg);
}

/* Takes a checkpoint of m and net now and starts writing it. */
static gseg_status ckpt_start(ckpt *c, gseg_model *m, gseg__net *net, const char *prov,
                              const char *best_path, const char *last_path,
                              const char *state_name)
{
    gseg_status st = ckpt_wait(c);
    if (st == GSEG_OK) st = gseg_model_set_provenance(m, prov);
    if (st == GSEG_OK) st = gseg__model_image_take(m, &c->img);
    if (st == GSEG_OK) st = gseg__net_opt_image(net, &c->state, &c->state_n);
    if (st == GSEG_OK) {
        c->best_path = best_path ? gseg__strdup(best_path) : NULL;
        c->last_path = gseg__strdup(last_path);
        c->state_path = gseg__strdup(CPLFormFilename(CPLGetPath(last_path), state_name, NULL));
        if ((best_path && !c->best_path) || !c->last_path || !c->state_path) st = GSEG_ERR_NOMEM;
    }
    if (st != GSEG_OK) {
        ckpt_release(c);
        return st;
    }
    c->st = GSEG_OK;
    if (pthread_create(&c->th, NULL, ckpt_main, c) == 0) {
        c->running = 1;
        return GSEG_OK;
    }
    ckpt_main(c); /* no thread to be had: write it here */
    ckpt_release(c);
    return c->st == GSEG_OK ? GSEG_OK : gseg__err(c->st, "%s", c->msg);
}

/* Joins the process group the environment describes, if any (*dist NULL
 * for one process); *device gets the device to train on: with several
 * processes, "cuda" is cuda:LOCAL_RANK. */
static gseg_status join(const gseg_train_params *p, gseg_progress_fn progress, void *user,
                        char *device, size_t cap, gseg__dist **dist)
{
    *dist = NULL;
    snprintf(device, cap, "%s", p->model_options.device ? p->model_options.device : "cpu");
    if (!p->distributed) return GSEG_OK;
    gseg__dist_env e;
    gseg_status st = gseg__dist_env_read(&e);
    if (st != GSEG_OK || e.world == 1) return st;
    if (!strcmp(device, "cuda")) snprintf(device, cap, "cuda:%d", e.local_rank);
    if (progress && e.rank == 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "joining %d processes (%s) at %s:%d", e.world, e.source, e.addr,
                 e.port);
        progress(0.0, msg, user);
    }
    /* How long a rank waits for the others (rendezvous, each collective). */
    const char *to = CPLGetConfigOption("GSEG_DIST_TIMEOUT", "1800");
    double timeout = CPLAtof(to);
    if (!(timeout >= 1 && timeout <= 1e6))
        return gseg__err(GSEG_ERR_ARG, "GSEG_DIST_TIMEOUT=%s: expected seconds, 1..1e6", to);
    return gseg__dist_new(&e, !strncmp(device, "cuda", 4), timeout, dist);
}

/* What a checkpoint says of its run (provenance.training). */
typedef struct run_state {
    long steps;
    int best_epoch, stale;
    double best;
    double seconds;             /* of training so far */
    double epoch_loss_sum;      /* of a partly done epoch: its steps' losses */
    int epoch_steps;
    char state_file[1024];
} run_state;

/* A resumed run must go on as it started: the options that shape the
 * data stream, the schedule and the network must equal the checkpoint's
 * (provenance.training and the architecture). */
static gseg_status same_run(const gseg__json *doc, const gseg__json *t, const char *path,
                            const gseg_train_params *p, int world)
{
    const char *enc = gseg__json_str(gseg__json_get(gseg__json_get(doc, "architecture"), "encoder"));
    const char *want = p->encoder ? p->encoder : "resnet50";
    if (enc && strcmp(enc, want) != 0)
        return gseg__err(GSEG_ERR_ARG, "%s: the run was started with --backbone %s, not %s; "
                                       "resume with the options it started with",
                         path, enc, want);
    const struct { const char *key, *opt; double now; } nums[] = {
        {"tile", "--tile", p->tile},   {"batch", "--batch", p->batch},
        {"accum", "--accum", p->accum}, {"processes", "processes (WORLD_SIZE)", world},
        {"seed", "--seed", (double)p->seed}, {"lr", "--lr", p->lr},
    };
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        const gseg__json *j = gseg__json_get(t, nums[i].key);
        double was = j ? gseg__json_num(j) : NAN;
        /* lr is recorded with 6 digits (%g) */
        if (!isnan(was) && fabs(was - nums[i].now) > 1e-5 * fmax(fabs(was), fabs(nums[i].now)))
            return gseg__err(GSEG_ERR_ARG, "%s: the run was started with %s %.10g, not %.10g; "
                                           "resume with the options it started with",
                             path, nums[i].opt, was, nums[i].now);
    }
    const char *sch = gseg__json_str(gseg__json_get(t, "schedule"));
    const char *now = p->schedule == GSEG_SCHEDULE_ONECYCLE ? "onecycle" : "cosine";
    if (sch && strcmp(sch, now) != 0)
        return gseg__err(GSEG_ERR_ARG, "%s: the run was started with --schedule %s, not %s; "
                                       "resume with the options it started with",
                         path, sch, now);
    return GSEG_OK;
}

static gseg_status read_run_state(gseg_model *m, const char *path, const gseg_train_params *p,
                                  int world, run_state *rs)
{
    char *js = gseg_model_describe(m, 1);
    char err[160] = "";
    gseg__json *doc = js ? gseg__json_parse(js, strlen(js), err, sizeof err) : NULL;
    free(js);
    const gseg__json *t = gseg__json_get(gseg__json_get(doc, "provenance"), "training");
    int64_t v;
    gseg_status st = GSEG_OK;
    const char *sf = gseg__json_str(gseg__json_get(t, "state"));
    if (!t || !gseg__json_int(gseg__json_get(t, "steps"), &v) || !sf)
        st = gseg__err(GSEG_ERR_FORMAT, "%s: not a gseg-train checkpoint (no training state)", path);
    else if ((st = same_run(doc, t, path, p, world)) != GSEG_OK) {
        /* message set */
    } else {
        rs->steps = (long)v;
        rs->best = gseg__json_num(gseg__json_get(t, "best_miou"));
        rs->best_epoch = gseg__json_int(gseg__json_get(t, "best_epoch"), &v) ? (int)v : 0;
        rs->stale = gseg__json_int(gseg__json_get(t, "stale"), &v) ? (int)v : 0;
        double sec = gseg__json_num(gseg__json_get(t, "seconds"));
        rs->seconds = isfinite(sec) && sec > 0 ? sec : 0;
        if (gseg__json_int(gseg__json_get(t, "epoch_steps"), &v) && v > 0) {
            rs->epoch_steps = (int)v;
            rs->epoch_loss_sum = gseg__json_num(gseg__json_get(t, "epoch_loss_sum"));
        }
        snprintf(rs->state_file, sizeof rs->state_file, "%s", CPLFormFilename(CPLGetPath(path), sf, NULL));
    }
    gseg__json_free(doc);
    return st;
}

gseg_status gseg_train(const gseg_train_params *p, gseg_progress_fn progress, void *user,
                       gseg_train_stats *stats)
{
    if (!p || !p->output || !*p->output) return gseg__err(GSEG_ERR_ARG, "no output model given (-o MODEL.gseg)");
    if (p->tile < 32 || p->tile > 4096 || p->batch < 1 || p->loaders < 1 || p->nclasses < 2 ||
        p->nclasses > 255 || !(p->lr > 0) || p->accum < 1 || p->accum > 4096)
        return gseg__err(GSEG_ERR_ARG,
                         "training: tile 32..4096, batch >= 1, accum 1..4096, classes 2..255, lr > 0");
    gseg_train_stats S;
    memset(&S, 0, sizeof S);
    g_stop = 0;
    /* Several processes: meet first, so that a missing rank fails early. */
    gseg__dist *dist = NULL;
    char device[64];
    gseg_status jst = join(p, progress, user, device, sizeof device, &dist);
    if (jst != GSEG_OK) return jst;
    int rank = gseg__dist_rank(dist), world = gseg__dist_world(dist);
    if (rank != 0) progress = NULL; /* rank 0 reports */
    gseg__tdata d;
    gseg_status st = p->label_field && !p->labels
                         ? gseg__err(GSEG_ERR_ARG, "a label field needs label outlines (--labels FILE)")
                         : gseg__tdata_discover(&d, p->data ? p->data : "dataset", !p->labels);
    if (st == GSEG_OK && p->labels && (st = gseg__tdata_labels(&d, p->labels, p->label_field)))
        gseg__tdata_free(&d);
    if (st != GSEG_OK) {
        gseg__dist_free(dist);
        return st;
    }
    int nb = 0;
    char **names = NULL;
    double *mean = NULL, *sd = NULL;
    gseg_model *m = NULL;
    loader_ctx c;
    memset(&c, 0, sizeof c);
    loader *L = NULL;
    pthread_t *th = NULL;
    int nthreads = 0;
    int *train_idx = NULL;
    FILE *mf = NULL;
    char *last_path = NULL, *metrics_path = NULL;
    int ntrain = 0, nval = 0;

    st = gseg__tdata_prepare(&d, p->bands, p->nclasses, &nb, &names);
    /* Validation split: val/ if present, else a seeded share of scenes. */
    if (st == GSEG_OK && !d.has_val && d.n > 1 && p->val_fraction > 0) {
        int want = (int)ceil(p->val_fraction * d.n);
        if (want >= d.n) want = d.n - 1;
        uint64_t r = p->seed ^ 0x5eedull;
        for (int k = 0; k < want;) {
            int i = below(&r, d.n);
            if (!d.scenes[i].val) {
                d.scenes[i].val = 1;
                k++;
            }
        }
    }
    train_idx = st == GSEG_OK ? gseg__calloc((size_t)d.n, sizeof *train_idx) : NULL;
    c.weights = st == GSEG_OK ? gseg__calloc((size_t)d.n, sizeof *c.weights) : NULL;
    if (st == GSEG_OK && (!train_idx || !c.weights)) st = GSEG_ERR_NOMEM;
    long long train_px = 0;
    for (int i = 0; i < d.n && st == GSEG_OK; i++) {
        if (d.scenes[i].val) {
            nval++;
            continue;
        }
        train_px += (long long)d.scenes[i].width * d.scenes[i].height;
        c.weights[ntrain] = (double)train_px;
        train_idx[ntrain++] = i;
    }
    if (st == GSEG_OK && ntrain == 0) st = gseg__err(GSEG_ERR_ARG, "%s: no training scenes", p->data);
    int wmax = 0, hmax = 0;
    for (int i = 0; st == GSEG_OK && i < d.n; i++)
        wmax = d.scenes[i].width > wmax ? d.scenes[i].width : wmax,
        hmax = d.scenes[i].height > hmax ? d.scenes[i].height : hmax;
    if (st == GSEG_OK && rank == 0 && p->tile > wmax && p->tile > hmax)
        CPLError(CE_Warning, CPLE_AppDefined,
                 "--tile %d is larger than every scene (at most %dx%d): windows are partly "
                 "padding; a smaller --tile trains faster on the same pixels",
                 p->tile, wmax, hmax);
    if (st == GSEG_OK && nval == 0 && p->val_fraction > 0 && rank == 0)
        CPLError(CE_Warning, CPLE_AppDefined,
                 "%s: no validation scenes (one scene and no val/ folder): the model written "
                 "is the last one, not the best on held-out scenes",
                 p->data ? p->data : "dataset");

    mean = gseg__calloc((size_t)nb + 1, sizeof *mean);
    sd = gseg__calloc((size_t)nb + 1, sizeof *sd);
    if (st == GSEG_OK && (!mean || !sd)) st = GSEG_ERR_NOMEM;
    run_state rs;
    memset(&rs, 0, sizeof rs);
    rs.best = -1;
    int resume = p->resume == 1;
    if (st == GSEG_OK) {
        last_path = sibling(p->output, ".last.gseg");
        if (!last_path) st = GSEG_ERR_NOMEM;
        VSIStatBufL sb;
        if (last_path && p->resume == 2) resume = VSIStatL(last_path, &sb) == 0;
    }
    if (st == GSEG_OK && resume) {
        /* The checkpoint carries the model, its normalisation and the run's
         * position; the data stream is a function of (seed, step). */
        st = gseg_model_open(last_path, &p->model_options, &m);
        if (st == GSEG_OK) st = read_run_state(m, last_path, p, world, &rs);
        if (st == GSEG_OK && gseg_model_nbands(m) != nb)
            st = gseg__err(GSEG_ERR_ARG, "%s: the checkpoint has %d bands, the data %d", last_path,
                           gseg_model_nbands(m), nb);
        for (int b = 0; b < nb && st == GSEG_OK; b++) {
            gseg__model_norm(m, b, &mean[b], &sd[b]);
        }
    } else if (st == GSEG_OK) {
        if (progress) progress(0.0, "computing band statistics", user);
        st = gseg__tdata_stats(&d, (const char *const *)names, nb, mean, sd);
    }
    if (st == GSEG_OK && !resume) {
        gseg_model_def def = gseg_model_def_default();
        def.encoder = p->encoder ? p->encoder : "resnet50";
        def.nbands = nb;
        def.bands = (const char *const *)names;
        def.mean = mean;
        def.std = sd;
        def.nclasses = p->nclasses;
        def.classes = p->classes;
        def.tile = p->tile;
        def.overlap = p->tile / 8;
        def.seed = p->seed;
        st = gseg_model_new(&def, &p->model_options, &m);
    }
    if (st == GSEG_OK && p->init_encoder && !resume) st = gseg_model_init_encoder(m, p->init_encoder);
    gseg__net *net = m ? gseg__netmodel_net(m) : NULL;
    if (st == GSEG_OK)
        st = gseg__net_prepare(net, device, GSEG_PRECISION_FP32, p->model_options.threads, 0);
    if (st == GSEG_OK) st = gseg__net_train_setup(net, p->lr, p->weight_decay, p->model_options.precision);
    if (st == GSEG_OK && resume) st = gseg__net_opt_load(net, rs.state_file);
    if (st == GSEG_OK && dist) st = gseg__net_attach_dist(net, dist);

    /* Steps: --steps, else epochs x (training pixels / tile area / samples
     * per step: batch x accum x processes). */
    double per_step = (double)p->batch * p->accum * world;
    int steps_per_epoch = p->steps_per_epoch > 0
                              ? p->steps_per_epoch
                              : (int)fmax(1.0, ceil((double)train_px / ((double)p->tile * p->tile) / per_step));
    long total = p->steps > 0 ? p->steps : (long)p->epochs * steps_per_epoch;
    int epochs = (int)((total + steps_per_epoch - 1) / steps_per_epoch);
    gseg__sched sched = {p->schedule, p->lr, total, p->warmup >= 0 ? p->warmup : total / 20};

    /* Loaders. */
    size_t plane = (size_t)p->tile * p->tile;
    if (st == GSEG_OK) {
        c.p = p;
        c.d = &d;
        c.train_idx = train_idx;
        c.ntrain = ntrain;
        c.bands = (const char *const *)names;
        c.nb = nb;
        c.mean = mean;
        c.sd = sd;
        c.T = p->tile;
        c.B = p->batch;
        c.nloaders = p->loaders;
        c.rank = rank;
        c.world = world;
        c.depth = 2 * p->loaders;
        c.turns = gseg__take_turns(gseg__net_cpu_threads(net));
        c.busy = 1;
        c.next_needed = rs.steps * p->accum;
        c.slots = gseg__calloc((size_t)c.depth, sizeof *c.slots);
        L = gseg__calloc((size_t)p->loaders, sizeof *L);
        th = gseg__calloc((size_t)p->loaders, sizeof *th);
        if (!c.slots || !L || !th) st = GSEG_ERR_NOMEM;
        for (int i = 0; i < c.depth && st == GSEG_OK; i++) {
            c.slots[i].index = -1;
            c.slots[i].x = gseg__malloc((size_t)p->batch * nb * plane, sizeof(float));
            c.slots[i].t = gseg__malloc((size_t)p->batch * plane, sizeof(float));
            c.slots[i].v = gseg__malloc((size_t)p->batch * plane, 1);
            if (!c.slots[i].x || !c.slots[i].t || !c.slots[i].v) st = GSEG_ERR_NOMEM;
        }
        pthread_mutex_init(&c.mu, NULL);
        pthread_cond_init(&c.cv, NULL);
        for (int i = 0; i < p->loaders && st == GSEG_OK; i++) {
            L[i].c = &c;
            L[i].id = i;
            L[i].scenes = gseg__calloc((size_t)d.n, sizeof *L[i].scenes);
            L[i].masks = gseg__calloc((size_t)d.n, sizeof *L[i].masks);
            L[i].tile = gseg__malloc(2 * plane, sizeof(float));
            L[i].mask = gseg__malloc(plane, 1);
            if (!L[i].scenes || !L[i].masks || !L[i].tile || !L[i].mask) {
                st = GSEG_ERR_NOMEM;
                break;
            }
            if (pthread_create(&th[i], NULL, loader_main, &L[i]) != 0) {
                st = gseg__err(GSEG_ERR_INTERNAL, "cannot start a loader thread");
                break;
            }
            nthreads++;
        }
    }
    if (st == GSEG_OK && rank == 0) {
        metrics_path = p->metrics ? gseg__strdup(p->metrics) : sibling(p->output, ".metrics.csv");
        if (!metrics_path) st = GSEG_ERR_NOMEM;
        if (st == GSEG_OK) st = gseg__make_parent(p->output);
        if (st == GSEG_OK) st = gseg__make_parent(metrics_path);
    }
    int jsonl = 0;
    if (st == GSEG_OK && rank == 0) {
        size_t n = strlen(metrics_path);
        jsonl = n > 6 && strcmp(metrics_path + n - 6, ".jsonl") == 0;
        mf = fopen(metrics_path, resume ? "a" : "w");
        if (!mf) st = gseg__err(GSEG_ERR_IO, "%s: cannot write metrics", metrics_path);
        else if (!jsonl && !resume) fprintf(mf, "epoch,step,lr,train_loss,val_miou,val_iou_glacier,seconds,samples_per_s\n");
    }

    /* Training. */
    int K = p->nclasses, best_epoch = rs.best_epoch, stale = rs.stale;
    double best = rs.best, t0 = now_s(), loss_sum = 0;
    double *conf = gseg__calloc((size_t)K * K, sizeof *conf);
    if (st == GSEG_OK && !conf) st = GSEG_ERR_NOMEM;
    long step = rs.steps, step0 = rs.steps;
    int timed_out = 0;
    double cur_lr = p->lr;
    S.epochs = (int)(step / steps_per_epoch);
    ckpt ck;
    memset(&ck, 0, sizeof ck);
    if (st == GSEG_OK && step >= total) {
        /* Killed after its last checkpoint: the models are written (the best
         * before the last). --resume-or-start, as a requeued job runs it,
         * finds the run complete; an explicit --resume has nothing to do. */
        if (p->resume == 1)
            st = gseg__err(GSEG_ERR_ARG, "%s: already at step %ld of %ld; nothing to resume",
                           last_path, step, total);
        else if (progress)
            progress(1.0, CPLSPrintf("%s: already at step %ld of %ld: the run is complete",
                                     last_path, step, total), user);
    }
    for (int ep = (int)(step / steps_per_epoch) + 1; ep <= epochs && step < total && st == GSEG_OK;
         ep++) {
        /* an epoch a stopped run left partly done goes on with its loss */
        int resumed = step == step0 && step % steps_per_epoch != 0 && !isnan(rs.epoch_loss_sum);
        int nloss = resumed ? rs.epoch_steps : 0;
        loss_sum = resumed ? rs.epoch_loss_sum : 0;
        for (int k = (int)(step % steps_per_epoch); k < steps_per_epoch && step < total && st == GSEG_OK;
             k++) {
            double lr, beta1, loss = 0;
            gseg__sched_at(&sched, step, &lr, &beta1);
            st = gseg__net_set_lr(net, lr, beta1);
            cur_lr = lr;
            for (int a = 0; a < p->accum && st == GSEG_OK; a++) {
                long q = step * p->accum + a;
                batch *b = take(&c, q);
                if (!b) {
                    st = gseg__err(c.err ? c.err : GSEG_ERR_INTERNAL, "%s", gseg_last_error());
                    break;
                }
                double l = 0;
                st = gseg__net_train_accumulate(net, b->x, p->batch, nb, p->tile, p->tile, b->t,
                                                b->v, 1.0 / p->accum, &l);
                release(&c, q);
                loss += l / p->accum;
            }
            if (st != GSEG_OK) break;
            if (progress) {
                double el = now_s() - t0, rate = (double)(step + 1 - step0) * per_step / el;
                double eta = (double)(total - step - 1) * per_step / rate;
                char msg[200];
                snprintf(msg, sizeof msg, "epoch %d/%d step %ld/%ld loss %.4f lr %.2e %.1f samples/s ETA %.0f s",
                         ep, epochs, step + 1, total, loss, lr, rate, eta);
                if (!progress((double)(step + 1) / (double)total, msg, user)) g_stop = 1;
            }
            /* A stop request (Ctrl-C or the progress callback: 1,
             * --max-time: 1024) from any rank ends the run after this step
             * on every rank: it travels with this step's gradients. */
            double flag = (g_stop ? 1 : 0) +
                          (p->max_seconds > 0 && now_s() - t0 > p->max_seconds ? 1024 : 0);
            st = gseg__net_train_apply(net, &flag);
            if (st != GSEG_OK) break;
            step++;
            loss_sum += loss;
            nloss++;
            S.final_loss = loss;
            if (flag > 0) {
                if (fmod(flag, 1024) > 0)
                    st = gseg__err(GSEG_ERR_CANCELLED, "interrupted at step %ld; last weights in %s",
                                   step, last_path);
                else
                    timed_out = 1;
                break;
            }
        }
        if (st != GSEG_OK && st != GSEG_ERR_CANCELLED) break;
        /* Validation, checkpoints, metrics. */
        double miou = NAN, giou = NAN;
        gseg_status vst = GSEG_OK;
        if (nval) {
            vst = validate(net, &d, (const char *const *)names, nb, mean, sd, K, p->tile, dist, conf);
            if (vst == GSEG_OK) {
                double s = 0;
                int n = 0;
                for (int k = 0; k < K; k++) {
                    double v = iou_of(conf, K, k);
                    if (!isnan(v)) s += v, n++;
                }
                miou = n ? s / n : NAN;
                giou = iou_of(conf, K, 1);
            }
        }
        if (vst != GSEG_OK) {
            st = vst;
            break;
        }
        /* seconds of training, over the runs it took */
        double el = now_s() - t0, total_s = rs.seconds + el;
        /* a stop mid-epoch: checkpointed, but its row waits for the epoch's end */
        int partial = step % steps_per_epoch != 0 && step < total;
        int improved = nval == 0 || (!isnan(miou) && miou > best);
        if (improved) {
            best = isnan(miou) ? best : miou;
            best_epoch = ep;
            stale = 0;
        } else {
            stale++;
        }
        if (rank == 0) {
            char state_name[512], prov[2048];
            snprintf(state_name, sizeof state_name, "%s.%ld.state", CPLGetBasename(last_path), step);
            snprintf(prov, sizeof prov,
                     "{\"gseg_version\": \"%s\", \"source\": \"trained by gseg-train\", \"training\": "
                     "{\"epochs\": %d, \"steps\": %ld, \"batch\": %d, \"accum\": %d, \"processes\": %d, "
                     "\"tile\": %d, \"lr\": %g, \"schedule\": \"%s\", \"precision\": \"%s\", "
                     "\"seed\": %llu, \"train_scenes\": %d, \"val_scenes\": %d, \"val_miou\": %.6f, "
                     "\"val_iou_glacier\": %.6f, \"best_miou\": %.17g, \"best_epoch\": %d, "
                     "\"stale\": %d, \"state\": \"%s\", \"seconds\": %.1f, "
                     "\"epoch_steps\": %d, \"epoch_loss_sum\": %.17g}}",
                     gseg_version(), ep, step, p->batch, p->accum, world, p->tile, p->lr,
                     p->schedule == GSEG_SCHEDULE_ONECYCLE ? "onecycle" : "cosine",
                     gseg_precision_str(gseg__net_train_precision(net)), p->seed, ntrain, nval,
                     isnan(miou) ? -1.0 : miou, isnan(giou) ? -1.0 : giou, best, best_epoch, stale,
                     state_name, total_s, partial ? nloss : 0, partial ? loss_sum : 0.0);
            gseg_status cst = ckpt_start(&ck, m, net, prov, improved ? p->output : NULL,
                                         last_path, state_name);
            if (cst != GSEG_OK) {
                st = cst;
                break;
            }
        }
        double rate = (double)(step - step0) * per_step / el;
        double tl = nloss ? loss_sum / nloss : NAN;
        if (!mf || partial) {
            /* not rank 0, or the epoch is not done */
        } else if (jsonl) {
            char v[3][32]; /* JSON has no NaN: null */
            const double x[3] = {tl, miou, giou};
            for (int i = 0; i < 3; i++)
                snprintf(v[i], sizeof v[i], isfinite(x[i]) ? "%.6f" : "null", x[i]);
            fprintf(mf, "{\"epoch\": %d, \"step\": %ld, \"lr\": %.3e, \"train_loss\": %s, \"val_miou\": %s, "
                        "\"val_iou_glacier\": %s, \"seconds\": %.2f, \"samples_per_s\": %.3f}\n",
                    ep, step, cur_lr, v[0], v[1], v[2], total_s, rate);
        } else
            fprintf(mf, "%d,%ld,%.3e,%.6f,%.6f,%.6f,%.2f,%.3f\n", ep, step,
                    cur_lr, tl, miou, giou, total_s, rate);
        if (mf) fflush(mf);
        if (progress && !partial) {
            char msg[200];
            snprintf(msg, sizeof msg, "epoch %d/%d: train loss %.4f, val mIoU %.4f, glacier IoU %.4f%s",
                     ep, epochs, nloss ? loss_sum / nloss : NAN, miou, giou, improved ? " (best)" : "");
            progress((double)step / (double)total, msg, user);
        }
        S.epochs = ep;
        if (st == GSEG_ERR_CANCELLED || timed_out) break;
        if (p->patience > 0 && stale >= p->patience) break;
    }
    {
        gseg_status cst = ckpt_wait(&ck); /* the last checkpoint is on disk */
        if (cst != GSEG_OK && (st == GSEG_OK || st == GSEG_ERR_CANCELLED)) st = cst;
    }
    /* Every rank must end with rank 0's model: one pass over the weights. */
    if (st == GSEG_OK || st == GSEG_ERR_CANCELLED) S.digest = gseg__net_digest(net);
    if (dist && (st == GSEG_OK || st == GSEG_ERR_CANCELLED)) {
        uint64_t h = S.digest;
        double v[2] = {rank == 0 ? (double)(h >> 32) : 0, rank == 0 ? (double)(h & 0xffffffffu) : 0};
        gseg_status dst = gseg__dist_allreduce_f64(dist, v, 2);
        double differ = (((uint64_t)v[0] << 32) | (uint64_t)v[1]) != h;
        if (dst == GSEG_OK) dst = gseg__dist_allreduce_f64(dist, &differ, 1);
        if (dst != GSEG_OK)
            st = dst;
        else if (differ > 0)
            st = gseg__err(GSEG_ERR_INTERNAL, "%.0f of %d processes ended with weights other than "
                           "rank 0's", differ, world);
    }
    S.steps = step;
    S.best_miou = best;
    S.best_epoch = best_epoch;
    S.seconds = now_s() - t0;
    S.samples_per_s = S.seconds > 0 ? (double)(step - step0) * per_step / S.seconds : 0;
    S.wait_share = S.seconds > 0 ? c.wait_s / S.seconds : 0;
    S.rank = rank;
    S.processes = world;

    /* Stop the loaders. */
    if (nthreads) {
        pthread_mutex_lock(&c.mu);
        c.stop = 1;
        pthread_cond_broadcast(&c.cv);
        pthread_mutex_unlock(&c.mu);
        for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    }
    for (int i = 0; L && i < p->loaders; i++) {
        for (int k = 0; L[i].scenes && k < d.n; k++) {
            gseg_scene_free(L[i].scenes[k]);
            if (L[i].masks[k]) GDALClose(L[i].masks[k]);
        }
        free(L[i].scenes);
        free(L[i].masks);
        free(L[i].tile);
        free(L[i].mask);
    }
    if (c.slots) {
        pthread_mutex_destroy(&c.mu);
        pthread_cond_destroy(&c.cv);
        for (int i = 0; i < c.depth; i++) {
            free(c.slots[i].x);
            free(c.slots[i].t);
            free(c.slots[i].v);
        }
    }
    free(c.slots);
    free(L);
    free(th);
    if (mf) fclose(mf);
    free(conf);
    free(last_path);
    free(metrics_path);
    free(train_idx);
    free(c.weights);
    free(mean);
    free(sd);
    for (int i = 0; names && names[i]; i++) free(names[i]);
    free(names);
    gseg_model_free(m);
    gseg__dist_free(dist);
    gseg__tdata_free(&d);
    if (stats) *stats = S;
    return st;
}
