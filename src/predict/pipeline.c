/*
 * pipeline.c — the tiles of one scene through readers → network → blender,
 * overlapped.
 *
 *   reader threads ──► batch slots ──► network (caller's thread) ──► blender
 *   (own GDAL handles,  (bounded pool)   (gseg model forward)          thread
 *    read + normalise)                                                 (stitcher,
 *                                                                       sink, writer)
 *
 * Tiles are grouped into batches of `batch` consecutive tiles (row-major).
 * A fixed pool of slots carries a batch from stage to stage: a reader claims
 * a free slot and the next batch number, fills it (tiles without any valid
 * pixel are marked empty and take no room), and marks it ready; the network
 * takes batches strictly in order and writes the scores into the same slot;
 * the blender feeds them to the stitcher in order (its sink writes finished
 * row bands) and frees the slot. So memory is the pool (readers + 3 slots),
 * whatever the scene size, and the order of tiles reaching the stitcher —
 * hence the result — does not depend on the number of readers or threads.
 *
 * One mutex and one condition variable guard the slot states; every change
 * is broadcast (a batch takes milliseconds to seconds, so contention is
 * nil). The first error, from any thread, stops every stage; the caller's
 * thread re-raises its message.
 *
 * Taking turns. When the network's threads fill every CPU the process may
 * use (a CPU network with --threads 0 or as many threads as cores), the
 * readers and the blender do not run while the network computes: they wait
 * before each tile until the network is between batches. Running beside it
 * would not overlap anything, as there is no free core; it would preempt
 * one of the network's threads, and every operator ends in a barrier, so
 * the other threads spin until the preempted one runs again: a reader's
 * millisecond of CPU cost the network about two. Measured on a 2-core CPU
 * (4096^2 x 7 bands, ResNet-50, tile 256, batch 4): taking turns made a
 * scene 2-6 % faster in fp32 and in bf16; the network then waits 1-3 %
 * of the time, which is what reading, blending and writing cost on both
 * cores. The pool still bounds memory: the network runs until it
 * finds no ready batch, then the readers and the blender catch up on
 * every core. With a GPU, or CPU threads to spare, the stages overlap
 * freely. GSEG_PIPELINE_TURNS=YES|NO (a GDAL config option) overrides the
 * choice.
 *
 * GDAL messages of the reader and blender threads do not reach the
 * process's error handler from those threads: a thread-local handler drops
 * errors (the failing call's status carries the message, CPLGetLastErrorMsg
 * included, and the caller reports it once) and keeps warnings, which the
 * caller's thread re-emits after each batch, each distinct one once. So a
 * host application (the GDAL driver inside gdal_translate or QGIS) sees one
 * error per failure, and only from the thread that called gseg.
 */
#include "predict.h"

#include <cpl_error.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { FREE, FILLING, READY, INFERRED };

typedef struct slot {
    int state, batch;
    int first, ntiles; /* tiles [first, first + ntiles) */
    int nrun;          /* tiles with data: stored contiguously */
    uint8_t *empty;    /* [batch] 1 if tile first+i has no valid pixel */
    float *in;         /* [nrun][bands][T][T], normalised */
    uint8_t *valid;    /* [nrun][T][T] */
    float *scores;     /* [nrun][K][T][T] */
} slot;

typedef struct pipe {
    const gseg__pipe_params *p;
    int T, C, K, nbatches, nslots;
    int first, count; /* the tiles run: [first, first + count) */
    slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int next_batch; /* next batch a reader claims */
    gseg_status st; /* first error */
    char msg[1024];
    int turns;      /* readers and blender wait while the network runs */
    int net_busy;   /* the network is inside a forward call */
    double wait_s;  /* network time spent waiting for readers */
    double blend_s;
    /* GDAL warnings of the worker threads, for the caller's thread */
    pthread_mutex_t warn_mu;
    char warn[8][512];
    int nwarn, warned; /* kept, already re-emitted */
} pipe_t;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Records the first error (with this thread's message) and wakes everyone.
 * Called with the mutex held. */
static void fail_locked(pipe_t *q, gseg_status st)
{
    if (q->st == GSEG_OK) {
        q->st = st;
        snprintf(q->msg, sizeof q->msg, "%s", gseg_last_error());
    }
    pthread_cond_broadcast(&q->cv);
}

static void fail(pipe_t *q, gseg_status st)
{
    pthread_mutex_lock(&q->mu);
    fail_locked(q, st);
    pthread_mutex_unlock(&q->mu);
}

/* Waits until the slot holding batch b is in `state`; NULL on error. */
static slot *wait_batch(pipe_t *q, int b, int state)
{
    slot *found = NULL;
    pthread_mutex_lock(&q->mu);
    while (q->st == GSEG_OK && !found) {
        for (int i = 0; i < q->nslots && !found; i++)
            if (q->slots[i].batch == b && q->slots[i].state == state) found = &q->slots[i];
        if (!found) pthread_cond_wait(&q->cv, &q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return found;
}

static void set_state(pipe_t *q, slot *s, int state)
{
    pthread_mutex_lock(&q->mu);
    s->state = state;
    if (state == FREE) s->batch = -1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* With turns (see the top of the file): waits while the network runs. */
static void take_turn(pipe_t *q)
{
    if (!q->turns) return;
    pthread_mutex_lock(&q->mu);
    while (q->st == GSEG_OK && q->net_busy) pthread_cond_wait(&q->cv, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

static void set_net_busy(pipe_t *q, int busy)
{
    if (!q->turns) return;
    pthread_mutex_lock(&q->mu);
    q->net_busy = busy;
    if (!busy) pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* The error handler of the worker threads (see the top of the file). */
static void CPL_STDCALL worker_message(CPLErr cls, CPLErrorNum no, const char *msg)
{
    pipe_t *q = CPLGetErrorHandlerUserData();
    if (cls == CE_Debug) CPLDefaultErrorHandler(cls, no, msg);
    if (cls != CE_Warning) return;
    pthread_mutex_lock(&q->warn_mu);
    int seen = 0;
    for (int i = 0; i < q->nwarn && !seen; i++) seen = strncmp(q->warn[i], msg, 511) == 0;
    if (!seen && q->nwarn < 8) snprintf(q->warn[q->nwarn++], sizeof q->warn[0], "%s", msg);
    pthread_mutex_unlock(&q->warn_mu);
}

/* On the caller's thread: warnings of the workers not yet emitted. */
static void emit_warnings(pipe_t *q)
{
    pthread_mutex_lock(&q->warn_mu);
    for (; q->warned < q->nwarn; q->warned++)
        CPLError(CE_Warning, CPLE_AppDefined, "%s", q->warn[q->warned]);
    pthread_mutex_unlock(&q->warn_mu);
}

/* Reads and normalises the tiles of the batch in s. */
static gseg_status fill(pipe_t *q, gseg_scene *scene, slot *s)
{
    const gseg__pipe_params *p = q->p;
    size_t plane = (size_t)q->T * q->T;
    s->nrun = 0;
    for (int i = 0; i < s->ntiles; i++) {
        take_turn(q);
        gseg_tile t;
        gseg_status st = gseg_grid_tile(p->grid, p->gt, s->first + i, &t);
        float *in = s->in + (size_t)s->nrun * q->C * plane;
        uint8_t *valid = s->valid + (size_t)s->nrun * plane;
        size_t nvalid = 0;
        if (st == GSEG_OK) st = gseg_scene_read(scene, t.win, q->T, q->T, in, valid, &nvalid);
        if (st != GSEG_OK) return st;
        s->empty[i] = nvalid == 0;
        if (nvalid == 0) continue;
        gseg__model_normalise(p->model, in, 1, q->T, q->T, valid);
        s->nrun++;
    }
    return GSEG_OK;
}

typedef struct reader_arg {
    pipe_t *q;
    int id;
} reader_arg;

static void *reader_main(void *arg)
{
    pipe_t *q = ((reader_arg *)arg)->q;
    const gseg__pipe_params *p = q->p;
    CPLPushErrorHandlerEx(worker_message, q);
    gseg_scene *own = NULL, *scene = p->scene;
    if (((reader_arg *)arg)->id > 0) { /* GDAL handles are per thread */
        /* quiet: the caller's open of the same files said it all */
        CPLPushErrorHandler(CPLQuietErrorHandler);
        gseg_status st = gseg_scene_open(p->paths, p->npaths, p->scene_params, &own);
        CPLPopErrorHandler();
        if (st != GSEG_OK) {
            fail(q, st);
            CPLPopErrorHandler();
            return NULL;
        }
        scene = own;
    }
    for (;;) {
        slot *s = NULL;
        pthread_mutex_lock(&q->mu);
        while (q->st == GSEG_OK && q->next_batch < q->nbatches && !s) {
            for (int i = 0; i < q->nslots && !s; i++)
                if (q->slots[i].state == FREE) s = &q->slots[i];
            if (!s) pthread_cond_wait(&q->cv, &q->mu);
        }
        if (s) {
            s->state = FILLING;
            s->batch = q->next_batch++;
        }
        pthread_mutex_unlock(&q->mu);
        if (!s) break;
        s->first = q->first + s->batch * p->batch;
        int left = q->first + q->count - s->first;
        s->ntiles = left < p->batch ? left : p->batch;
        gseg_status st = fill(q, scene, s);
        if (st != GSEG_OK) {
            fail(q, st);
            break;
        }
        set_state(q, s, READY);
    }
    gseg_scene_free(own);
    CPLPopErrorHandler();
    return NULL;
}

/* The blender: every tile of every batch, in order, into the stitcher. */
static void *blender_main(void *arg)
{
    pipe_t *q = arg;
    const gseg__pipe_params *p = q->p;
    size_t plane = (size_t)q->T * q->T;
    CPLPushErrorHandlerEx(worker_message, q);
    for (int b = 0; b < q->nbatches; b++) {
        slot *s = wait_batch(q, b, INFERRED);
        if (!s) break;
        double t0 = now_s();
        gseg_status st = GSEG_OK;
        for (int i = 0, k = 0; i < s->ntiles && st == GSEG_OK; i++) {
            take_turn(q);
            gseg_tile t;
            st = gseg_grid_tile(p->grid, p->gt, s->first + i, &t);
            if (st != GSEG_OK) break;
            if (s->empty[i]) {
                st = gseg_stitcher_add(p->stitcher, &t, NULL, NULL);
            } else {
                st = gseg_stitcher_add(p->stitcher, &t, s->scores + (size_t)k * q->K * plane,
                                       s->valid + (size_t)k * plane);
                k++;
            }
        }
        q->blend_s += now_s() - t0;
        if (st != GSEG_OK) {
            fail(q, st);
            break;
        }
        set_state(q, s, FREE);
    }
    CPLPopErrorHandler();
    return NULL;
}

static void free_slots(pipe_t *q)
{
    for (int i = 0; q->slots && i < q->nslots; i++) {
        free(q->slots[i].empty);
        free(q->slots[i].in);
        free(q->slots[i].valid);
        free(q->slots[i].scores);
    }
    free(q->slots);
}

static gseg_status alloc_slots(pipe_t *q, int batch)
{
    size_t plane = (size_t)q->T * q->T, B = (size_t)batch;
    q->slots = gseg__calloc((size_t)q->nslots, sizeof *q->slots);
    if (!q->slots) return GSEG_ERR_NOMEM;
    for (int i = 0; i < q->nslots; i++) {
        slot *s = &q->slots[i];
        s->batch = -1;
        s->empty = gseg__malloc(B, 1);
        s->in = gseg__malloc(B * q->C * plane, sizeof(float));
        s->valid = gseg__malloc(B * plane, 1);
        s->scores = gseg__malloc(B * q->K * plane, sizeof(float));
        if (!s->empty || !s->in || !s->valid || !s->scores) return GSEG_ERR_NOMEM;
    }
    return GSEG_OK;
}

size_t gseg__pipe_bytes(const gseg__pipe_params *p)
{
    size_t plane = (size_t)p->grid->tile * p->grid->tile;
    size_t C = (size_t)gseg_model_nbands(p->model), K = (size_t)gseg_model_nscores(p->model);
    size_t per_slot = (size_t)p->batch * plane * ((C + K) * sizeof(float) + 1);
    return (size_t)(p->readers + 3) * per_slot;
}

/* The network stage, on the caller's thread: batches in order. */
static void run_network(pipe_t *q, gseg__pipe_stats *stats)
{
    const gseg__pipe_params *p = q->p;
    int ntiles = q->count, done = 0;
    for (int b = 0; b < q->nbatches; b++) {
        double t0 = now_s();
        slot *s = wait_batch(q, b, READY);
        double t1 = now_s();
        emit_warnings(q);
        q->wait_s += t1 - t0;
        if (!s) return;
        gseg_status st = GSEG_OK;
        set_net_busy(q, 1);
        if (s->nrun > 0)
            st = gseg__model_forward_normalised(p->model, s->in, s->nrun, q->T, q->T, s->valid,
                                                s->scores);
        set_net_busy(q, 0);
        stats->model_seconds += now_s() - t1;
        stats->tiles_run += s->nrun;
        if (st != GSEG_OK) {
            fail(q, st);
            return;
        }
        done += s->ntiles;
        set_state(q, s, INFERRED);
        if (p->progress && !p->progress(p->progress_share * done / ntiles, NULL, p->user)) {
            fail(q, gseg__err(GSEG_ERR_CANCELLED, "%s: cancelled", p->name));
            return;
        }
    }
}

gseg_status gseg__pipe_run(const gseg__pipe_params *p, gseg__pipe_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    if (p->batch < 1 || p->readers < 1)
        return gseg__err(GSEG_ERR_ARG, "pipeline: batch and readers must be >= 1");
    pipe_t q;
    memset(&q, 0, sizeof q);
    q.p = p;
    q.turns = gseg__take_turns(gseg__model_cpu_threads(p->model));
    q.T = p->grid->tile;
    q.C = gseg_model_nbands(p->model);
    q.K = gseg_model_nscores(p->model);
    int all = gseg_grid_count(p->grid);
    q.first = p->ntiles > 0 ? p->first_tile : 0;
    q.count = p->ntiles > 0 ? p->ntiles : all;
    if (q.first < 0 || q.count < 1 || q.first + q.count > all)
        return gseg__err(GSEG_ERR_ARG, "pipeline: tiles %d..%d of %d", q.first,
                         q.first + q.count - 1, all);
    int ntiles = q.count;
    q.nbatches = (ntiles + p->batch - 1) / p->batch;
    int readers = p->readers < q.nbatches ? p->readers : q.nbatches;
    q.nslots = readers + 3;
    gseg_status st = alloc_slots(&q, p->batch);
    if (st != GSEG_OK) {
        free_slots(&q);
        return st;
    }
    pthread_mutex_init(&q.mu, NULL);
    pthread_mutex_init(&q.warn_mu, NULL);
    pthread_cond_init(&q.cv, NULL);

    pthread_t blender, *rt = gseg__calloc((size_t)readers, sizeof *rt);
    reader_arg *ra = gseg__calloc((size_t)readers, sizeof *ra);
    int started = 0, blender_started = 0;
    if (!rt || !ra) st = GSEG_ERR_NOMEM;
    if (st == GSEG_OK) {
        if (pthread_create(&blender, NULL, blender_main, &q) == 0)
            blender_started = 1;
        else
            st = gseg__err(GSEG_ERR_LIMIT, "%s: cannot start the blender thread", p->name);
    }
    while (st == GSEG_OK && started < readers) {
        ra[started].q = &q;
        ra[started].id = started;
        if (pthread_create(&rt[started], NULL, reader_main, &ra[started]) == 0)
            started++;
        else
            st = gseg__err(GSEG_ERR_LIMIT, "%s: cannot start reader thread %d", p->name,
                           started + 1);
    }
    if (st != GSEG_OK)
        fail(&q, st);
    else
        run_network(&q, stats);
    /* readers and blender stop on their own once everything is done or on
     * the first error */
    for (int i = 0; i < started; i++) pthread_join(rt[i], NULL);
    if (blender_started) pthread_join(blender, NULL);
    emit_warnings(&q);
    if (q.st != GSEG_OK) st = gseg__err(q.st, "%s", q.msg);

    stats->tiles = ntiles;
    stats->batches = q.nbatches;
    stats->readers = readers;
    stats->model_wait_seconds = q.wait_s;
    stats->blend_seconds = q.blend_s;
    pthread_cond_destroy(&q.cv);
    pthread_mutex_destroy(&q.mu);
    pthread_mutex_destroy(&q.warn_mu);
    free(rt);
    free(ra);
    free_slots(&q);
    return st;
}
