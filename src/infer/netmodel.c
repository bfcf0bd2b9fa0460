/*
 * netmodel.c — network models behind gseg_model: the .gseg file format,
 * weight import/export, and the forward pass (normalise, then the libtorch
 * shim in net.cpp).
 *
 * A .gseg file IS a safetensors file: the U-Net's state dict under
 * segmentation-models-pytorch's names (float32, num_batches_tracked int64),
 * and in __metadata__ two strings: "format": "pt" (what SMP/Hugging Face
 * write) and "gseg": a JSON document:
 *   {"gseg_format": 1,
 *    "architecture": {"name": "unet", "encoder": "resnet50",
 *                     "decoder_channels": [256,128,64,32,16],
 *                     "in_channels": 6, "outputs": 1},
 *    "bands": [{"name": "B2", "mean": 0, "std": 10000}, ...],
 *    "classes": [{"name": "background", "color": "#000000"}, ...],
 *    "threshold": 0.5, "tile": 256, "overlap": 32,
 *    "provenance": {"gseg_version": "...", "created": "...", ...}}
 * so `safetensors.torch.load_file("m.gseg")` + `load_state_dict` works in
 * Python with no conversion. A reader refuses a gseg_format newer than it
 * knows. All files go through GDAL's VSI (zip, http, /vsimem/ ...).
 */
#include "internal.h"
#include "json.h"
#include "net.h"
#include "safetensors.h"

#include <cpl_vsi.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GSEG_FORMAT_VERSION 1
/* torch.save files are read whole; beyond this they are refused. */
#define MAX_PICKLE_BYTES ((vsi_l_offset)4 << 30)

typedef struct netimpl {
    gseg__net *net;
    char *encoder;
    int outputs;
    int nclasses;
    char **classes;
    unsigned char (*rgba)[4];
    double *mean, *std;
    char *provenance; /* JSON object */
    gseg_model_options opt;
    char *device;
    int prepared;
    int inference_only; /* release unfolded weights once prepared */
    float *buf;
    size_t buf_n;
} netimpl;

/* ---- helpers ------------------------------------------------------------ */

static char *xstrdup(const char *s) { return gseg__strdup(s ? s : ""); }

static void free_strv(char **v, int n)
{
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void netimpl_free(gseg_model *m)
{
    netimpl *ni = m->impl;
    if (!ni) return;
    gseg__net_free(ni->net);
    free(ni->encoder);
    free_strv(ni->classes, ni->nclasses);
    free(ni->rgba);
    free(ni->mean);
    free(ni->std);
    free(ni->provenance);
    free(ni->device);
    free(ni->buf);
    free(ni);
    m->impl = NULL;
}

void gseg__netmodel_inference_only(gseg_model *m)
{
    netimpl *ni = m->impl;
    ni->inference_only = 1;
    if (ni->prepared) gseg__net_release_unfolded(ni->net);
}

int gseg__netmodel_cpu_threads(const gseg_model *m)
{
    const netimpl *ni = m->impl;
    int n = gseg__net_cpu_threads(ni->net);
    if (n >= 0) return n;
    /* not prepared yet: what gseg__net_prepare will set */
    if (ni->device && strncmp(ni->device, "cuda", 4) == 0) return 0;
    return ni->opt.threads > 0 ? ni->opt.threads : gseg__cpu_count();
}

static gseg_status ensure_prepared(gseg_model *m)
{
    netimpl *ni = m->impl;
    if (ni->prepared) return GSEG_OK;
    /* inference only: the unfolded weights go layer by layer as they fold */
    if (ni->inference_only) gseg__net_release_unfolded(ni->net);
    gseg_status st = gseg__net_prepare(ni->net, ni->device, ni->opt.precision, ni->opt.threads,
                                       ni->opt.fold_bn);
    if (st == GSEG_OK) ni->prepared = 1;
    gseg__net_set_tta(ni->net, ni->opt.tta);
    if (st == GSEG_OK && ni->inference_only) st = gseg__net_release_unfolded(ni->net);
    return st;
}

/* (x - mean) / std per band; pixels without data (or not finite) become 0,
 * the normalised mean, so padding and holes do not disturb their
 * neighbours. */
static void net_normalise(const gseg_model *m, float *in, int n, int h, int w,
                          const uint8_t *valid)
{
    const netimpl *ni = m->impl;
    size_t plane = (size_t)h * w;
    for (int t = 0; t < n; t++)
        for (int c = 0; c < m->nbands; c++) {
            float *x = in + ((size_t)t * m->nbands + c) * plane;
            const uint8_t *v = valid ? valid + (size_t)t * plane : NULL;
            float mu = (float)ni->mean[c], inv = (float)(1.0 / ni->std[c]);
            for (size_t i = 0; i < plane; i++)
                x[i] = (!v || v[i]) && isfinite(x[i]) ? (x[i] - mu) * inv : 0.0f;
        }
}

static gseg_status net_forward_normalised(gseg_model *m, float *in, int n, int h, int w,
                                          const uint8_t *valid, float *out)
{
    (void)valid;
    netimpl *ni = m->impl;
    gseg_status st = ensure_prepared(m);
    if (st != GSEG_OK) return st;
    return gseg__net_forward(ni->net, in, n, m->nbands, h, w, out, 0);
}

static gseg_status net_forward(gseg_model *m, const float *in, int n, int h, int w,
                               const uint8_t *valid, float *out)
{
    netimpl *ni = m->impl;
    size_t total = (size_t)n * m->nbands * h * w;
    if (total > ni->buf_n) {
        float *b = gseg__malloc(total, sizeof *b);
        if (!b) return GSEG_ERR_NOMEM;
        free(ni->buf);
        ni->buf = b;
        ni->buf_n = total;
    }
    memcpy(ni->buf, in, total * sizeof *in);
    net_normalise(m, ni->buf, n, h, w, valid);
    return net_forward_normalised(m, ni->buf, n, h, w, valid, out);
}

static const gseg__model_vt net_vt = {"network", net_forward, netimpl_free, net_normalise,
                                      net_forward_normalised};

/* ---- weight sets: tensors by name, from safetensors or torch.save ------- */

typedef struct wtensor {
    char *name;
    int ndim;
    int64_t shape[GSEG__ST_MAX_DIMS];
    int is_int;
    void *data; /* float or int64_t; NULL until read for safetensors */
    int64_t numel;
    int used;
    const gseg__st_tensor *src; /* where to read data from (safetensors) */
} wtensor;

/* A state dict: names and shapes, with the data of safetensors files read
 * one tensor at a time as it is applied (so loading a model holds one copy
 * of the weights, in the net, plus one tensor). */
typedef struct wset {
    const char *path;
    wtensor *t;
    int n, cap;
    gseg__st_file *f; /* the file the tensors are read from */
    int owns_f;       /* wset_free closes f */
} wset;

/* Frees the set, and closes its file when it owns it. */
static void wset_free(wset *ws)
{
    for (int i = 0; i < ws->n; i++) {
        free(ws->t[i].name);
        free(ws->t[i].data);
    }
    free(ws->t);
    if (ws->owns_f) gseg__st_close(ws->f);
    memset(ws, 0, sizeof *ws);
}

static wtensor *wset_find(wset *ws, const char *name)
{
    for (int i = 0; i < ws->n; i++)
        if (strcmp(ws->t[i].name, name) == 0) return &ws->t[i];
    return NULL;
}

static gseg_status wset_add(void *user, const char *name, int ndim, const int64_t *shape,
                            int is_int, const void *data)
{
    wset *ws = user;
    if (ndim > GSEG__ST_MAX_DIMS)
        return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s' has %d dimensions", ws->path, name, ndim);
    if (wset_find(ws, name))
        return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s' appears twice", ws->path, name);
    if (ws->n == ws->cap) {
        int cap = ws->cap ? ws->cap * 2 : 512;
        wtensor *t = realloc(ws->t, (size_t)cap * sizeof *t);
        if (!t) return gseg__err(GSEG_ERR_NOMEM, "out of memory");
        ws->t = t;
        ws->cap = cap;
    }
    wtensor *t = &ws->t[ws->n];
    memset(t, 0, sizeof *t);
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->numel *= shape[d];
    }
    t->ndim = ndim;
    t->is_int = is_int;
    t->name = gseg__strdup(name);
    if (data) /* pickles arrive whole; safetensors data is read when applied */
        t->data = gseg__malloc(t->numel ? (size_t)t->numel : 1,
                               is_int ? sizeof(int64_t) : sizeof(float));
    if (!t->name || (data && !t->data)) {
        free(t->name);
        free(t->data);
        return GSEG_ERR_NOMEM;
    }
    if (data) memcpy(t->data, data, (size_t)t->numel * (is_int ? sizeof(int64_t) : sizeof(float)));
    ws->n++;
    return GSEG_OK;
}

static int is_int_dtype(gseg__st_dtype d)
{
    return d != GSEG__ST_F16 && d != GSEG__ST_BF16 && d != GSEG__ST_F32 && d != GSEG__ST_F64;
}

/* Names and shapes of a safetensors file; f must stay open until the set
 * is applied. */
static gseg_status wset_from_safetensors(gseg__st_file *f, wset *ws)
{
    ws->f = f;
    for (int i = 0; i < gseg__st_count(f); i++) {
        const gseg__st_tensor *t = gseg__st_at(f, i);
        gseg_status st = wset_add(ws, t->name, t->ndim, t->shape, is_int_dtype(t->dtype), NULL);
        if (st != GSEG_OK) return st;
        ws->t[ws->n - 1].src = t;
    }
    return GSEG_OK;
}

/* The data of t, read from the file on first use. */
static gseg_status wtensor_read(wset *ws, wtensor *t)
{
    if (t->data) return GSEG_OK;
    t->data = gseg__malloc(t->numel ? (size_t)t->numel : 1,
                           t->is_int ? sizeof(int64_t) : sizeof(float));
    if (!t->data) return GSEG_ERR_NOMEM;
    return t->is_int ? gseg__st_read_i64(ws->f, t->src, t->data, t->numel)
                     : gseg__st_read_f32(ws->f, t->src, t->data, t->numel);
}

/* Frees data that can be read again. */
static void wtensor_drop(wtensor *t)
{
    if (!t->src) return;
    free(t->data);
    t->data = NULL;
}

/* Reads a state dict from a safetensors file or a torch.save file. */
static gseg_status wset_load(const char *path, wset *ws, gseg__st_file **stf)
{
    ws->path = path;
    if (stf) *stf = NULL;
    VSILFILE *fp = VSIFOpenL(path, "rb");
    if (!fp) return gseg__err(GSEG_ERR_IO, "%s: cannot open (no such file, or no permission)", path);
    unsigned char head[9] = {0};
    size_t got = VSIFReadL(head, 1, sizeof head, fp);
    int zip = got >= 4 && memcmp(head, "PK\003\004", 4) == 0;
    int pickle = got >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5;
    if (!zip && !pickle) {
        VSIFCloseL(fp);
        gseg__st_file *f = NULL;
        gseg_status st = gseg__st_open(path, &f);
        if (st != GSEG_OK) return st;
        st = wset_from_safetensors(f, ws);
        if (st != GSEG_OK) {
            gseg__st_close(f);
            ws->f = NULL;
        } else if (stf) {
            *stf = f;
        } else {
            ws->owns_f = 1;
        }
        return st;
    }
    /* torch.save: the whole file goes to libtorch's unpickler. */
    VSIFSeekL(fp, 0, SEEK_END);
    vsi_l_offset size = VSIFTellL(fp);
    if (size > MAX_PICKLE_BYTES) {
        VSIFCloseL(fp);
        return gseg__err(GSEG_ERR_LIMIT, "%s: %llu bytes is too large for a torch.save file", path,
                         (unsigned long long)size);
    }
    char *bytes = gseg__malloc((size_t)size, 1);
    if (!bytes) {
        VSIFCloseL(fp);
        return GSEG_ERR_NOMEM;
    }
    VSIFSeekL(fp, 0, SEEK_SET);
    size_t rd = VSIFReadL(bytes, 1, (size_t)size, fp);
    VSIFCloseL(fp);
    gseg_status st = rd == (size_t)size
                         ? gseg__pickle_tensors(path, bytes, (size_t)size, wset_add, ws)
                         : gseg__err(GSEG_ERR_IO, "%s: read error", path);
    free(bytes);
    return st;
}

/* ---- architecture from a state dict -------------------------------------- */

static int count_blocks(wset *ws, const char *prefix, int layer)
{
    int n = 0;
    char key[128];
    for (;; n++) {
        snprintf(key, sizeof key, "%slayer%d.%d.conv1.weight", prefix, layer, n);
        if (!wset_find(ws, key)) return n;
    }
}

static gseg_status guess_arch(wset *ws, const char *prefix, const char **encoder, int *in_ch,
                              int *outputs)
{
    char key[128];
    snprintf(key, sizeof key, "%sconv1.weight", prefix);
    wtensor *c1 = wset_find(ws, key);
    if (!c1 || c1->ndim != 4 || c1->is_int)
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s: no tensor '%s': not a %s state dict", ws->path, key,
                         *prefix ? "segmentation-models-pytorch Unet" : "torchvision ResNet");
    *in_ch = (int)c1->shape[1];
    int blocks[4];
    for (int l = 0; l < 4; l++) blocks[l] = count_blocks(ws, prefix, l + 1);
    snprintf(key, sizeof key, "%slayer1.0.conv3.weight", prefix);
    int bottleneck = wset_find(ws, key) != NULL;
    *encoder = gseg__net_encoder_guess(bottleneck, blocks);
    if (!*encoder)
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s: encoder with %s blocks %d-%d-%d-%d is not a ResNet gseg knows "
                         "(resnet18/34/50/101/152)",
                         ws->path, bottleneck ? "bottleneck" : "basic", blocks[0], blocks[1],
                         blocks[2], blocks[3]);
    if (outputs) {
        wtensor *h = wset_find(ws, "segmentation_head.0.weight");
        if (!h || h->ndim != 4)
            return gseg__err(GSEG_ERR_FORMAT,
                             "%s: no tensor 'segmentation_head.0.weight': not a "
                             "segmentation-models-pytorch Unet state dict",
                             ws->path);
        *outputs = (int)h->shape[0];
    }
    return GSEG_OK;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* SMP's patch_first_conv, generalised: a first convolution trained on `cw`
 * bands meets `n`: n == 1 sums the kernels; otherwise kernel i is the
 * trained kernel i % cw, all scaled by cw / n. */
static float *adapt_first_conv(const wtensor *t, int n)
{
    int64_t co = t->shape[0], cw = t->shape[1], k = t->shape[2] * t->shape[3];
    float *dst = gseg__calloc((size_t)(co * n * k), sizeof *dst);
    if (!dst) return NULL;
    const float *src = t->data;
    for (int64_t o = 0; o < co; o++)
        for (int i = 0; i < n; i++)
            for (int64_t j = 0; j < k; j++) {
                float *d = &dst[(o * n + i) * k + j];
                if (n == 1) {
                    for (int64_t c = 0; c < cw; c++) *d += src[(o * cw + c) * k + j];
                } else {
                    *d = src[(o * cw + i % cw) * k + j] * (float)cw / (float)n;
                }
            }
    return dst;
}

/* Copies the weight set into the net. prefix "" = the whole state dict by
 * SMP names; "encoder." = encoder only, the set's names lacking it
 * (torchvision) or carrying it. Strict: every net tensor (in scope) must be
 * present with its shape, except num_batches_tracked; unknown tensors are
 * refused. */
static gseg_status apply_wset(gseg__net *net, wset *ws, int encoder_only)
{
    int n = gseg__net_tensor_count(net);
    for (int i = 0; i < ws->n; i++) ws->t[i].used = 0;
    for (int i = 0; i < n; i++) {
        const char *name = gseg__net_tensor_name(net, i);
        if (encoder_only && strncmp(name, "encoder.", 8) != 0) continue;
        wtensor *t = wset_find(ws, name);
        if (!t && encoder_only) t = wset_find(ws, name + 8);
        int is_nbt = strstr(name, "num_batches_tracked") != NULL;
        if (!t) {
            if (is_nbt) continue;
            return gseg__err(GSEG_ERR_FORMAT, "%s: missing tensor '%s'", ws->path,
                             encoder_only ? name + 8 : name);
        }
        t->used = 1;
        gseg_status rst = wtensor_read(ws, t);
        if (rst != GSEG_OK) return rst;
        int nd = gseg__net_tensor_ndim(net, i);
        int64_t want[GSEG__ST_MAX_DIMS];
        int same = nd == t->ndim;
        for (int d = 0; d < nd && d < GSEG__ST_MAX_DIMS; d++) {
            want[d] = gseg__net_tensor_dim(net, i, d);
            if (same && want[d] != t->shape[d]) same = 0;
        }
        const void *src = t->data;
        float *adapted = NULL;
        int64_t *ints = NULL;
        float *floats = NULL;
        if (!same && strcmp(name, "encoder.conv1.weight") == 0 && t->ndim == 4 && !t->is_int &&
            t->shape[0] == want[0] && t->shape[2] == want[2] && t->shape[3] == want[3]) {
            adapted = adapt_first_conv(t, (int)want[1]);
            if (!adapted) return GSEG_ERR_NOMEM;
            src = adapted;
            same = 1;
        }
        if (!same) {
            char a[96], b[96];
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, nd, want);
            return gseg__err(GSEG_ERR_FORMAT,
                             "%s: tensor '%s' has shape %s; gseg's %s U-Net (decoder channels "
                             "256,128,64,32,16) has %s",
                             ws->path, name, a, gseg__net_tensor_is_int(net, i) ? "" : "", b);
        }
        int64_t numel = gseg__net_tensor_numel(net, i);
        /* Types: the net holds float32 or int64; convert as needed. */
        if (gseg__net_tensor_is_int(net, i) && !t->is_int) {
            ints = gseg__malloc((size_t)numel, sizeof *ints);
            if (!ints) return GSEG_ERR_NOMEM;
            for (int64_t k = 0; k < numel; k++) ints[k] = (int64_t)((const float *)src)[k];
            src = ints;
        } else if (!gseg__net_tensor_is_int(net, i) && t->is_int) {
            floats = gseg__malloc((size_t)numel, sizeof *floats);
            if (!floats) return GSEG_ERR_NOMEM;
            for (int64_t k = 0; k < numel; k++) floats[k] = (float)((const int64_t *)src)[k];
            src = floats;
        }
        if (!gseg__net_tensor_is_int(net, i)) {
            const float *f = src;
            for (int64_t k = 0; k < numel; k++)
                if (!isfinite(f[k])) {
                    free(adapted);
                    free(floats);
                    return gseg__err(GSEG_ERR_FORMAT, "%s: tensor '%s' holds NaN or infinity",
                                     ws->path, name);
                }
        }
        gseg_status st = gseg__net_tensor_set(net, i, src, numel);
        free(adapted);
        free(ints);
        free(floats);
        wtensor_drop(t);
        if (st != GSEG_OK) return st;
    }
    for (int i = 0; i < ws->n; i++) {
        const char *nm = ws->t[i].name;
        if (ws->t[i].used) continue;
        if (encoder_only && (strncmp(nm, "fc.", 3) == 0 || strncmp(nm, "encoder.fc.", 11) == 0))
            continue; /* torchvision's classifier */
        return gseg__err(GSEG_ERR_FORMAT, "%s: unexpected tensor '%s' (not part of gseg's %s)",
                         ws->path, nm, encoder_only ? "ResNet encoder" : "U-Net");
    }
    return GSEG_OK;
}

/* ---- building a model ----------------------------------------------------- */

static gseg_status set_meta(gseg_model *m, const gseg_model_def *def, int nbands, int outputs)
{
    netimpl *ni = m->impl;
    m->nbands = nbands;
    m->nscores = outputs;
    m->bands = gseg__calloc((size_t)nbands, sizeof *m->bands);
    ni->mean = gseg__calloc((size_t)nbands, sizeof *ni->mean);
    ni->std = gseg__calloc((size_t)nbands, sizeof *ni->std);
    if (!m->bands || !ni->mean || !ni->std) return GSEG_ERR_NOMEM;
    for (int i = 0; i < nbands; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i + 1);
        m->bands[i] = xstrdup(def && def->bands && def->bands[i] ? def->bands[i] : num);
        if (!m->bands[i]) return GSEG_ERR_NOMEM;
        ni->mean[i] = def && def->mean ? def->mean[i] : 0.0;
        ni->std[i] = def && def->std ? def->std[i] : 1.0;
        if (!isfinite(ni->mean[i]) || !isfinite(ni->std[i]) || !(ni->std[i] > 0))
            return gseg__err(GSEG_ERR_ARG, "band %s: mean %g / std %g: std must be > 0", m->bands[i],
                             ni->mean[i], ni->std[i]);
    }
    int nclasses = outputs == 1 ? 2 : outputs;
    if (def && def->nclasses && def->nclasses != nclasses)
        return gseg__err(GSEG_ERR_ARG,
                         "%d classes asked, but the network has %d output%s (%d classes)",
                         def->nclasses, outputs, outputs == 1 ? "" : "s", nclasses);
    ni->nclasses = nclasses;
    ni->classes = gseg__calloc((size_t)nclasses, sizeof *ni->classes);
    ni->rgba = gseg__calloc((size_t)nclasses, sizeof *ni->rgba);
    if (!ni->classes || !ni->rgba) return GSEG_ERR_NOMEM;
    for (int k = 0; k < nclasses; k++) {
        char nm[32];
        if (nclasses == 2)
            snprintf(nm, sizeof nm, "%s", gseg__binary_classes[k]);
        else
            snprintf(nm, sizeof nm, k ? "class_%d" : "background", k);
        ni->classes[k] = xstrdup(def && def->classes && def->classes[k] ? def->classes[k] : nm);
        if (!ni->classes[k]) return GSEG_ERR_NOMEM;
        memcpy(ni->rgba[k], gseg__class_default_rgba(k), 4);
    }
    m->tile = def && def->tile > 0 ? def->tile : 256;
    m->overlap = def && def->overlap >= 0 ? def->overlap : 32;
    if (m->overlap >= m->tile)
        return gseg__err(GSEG_ERR_ARG, "overlap %d must be smaller than the tile %d", m->overlap,
                         m->tile);
    m->threshold = def && def->threshold > 0 && def->threshold < 1 ? def->threshold : 0.5;
    m->score_name = outputs == 1 ? "glacier probability" : "class probability";
    return GSEG_OK;
}

static gseg_status new_shell(const gseg_model_options *opt, const char *spec, gseg_model **out)
{
    *out = NULL;
    gseg_model *m = gseg__calloc(1, sizeof *m);
    netimpl *ni = gseg__calloc(1, sizeof *ni);
    if (!m || !ni) {
        free(m);
        free(ni);
        return GSEG_ERR_NOMEM;
    }
    m->vt = &net_vt;
    m->impl = ni;
    ni->opt = opt ? *opt : gseg_model_options_default();
    ni->device = xstrdup(ni->opt.device ? ni->opt.device : "cpu");
    m->spec = xstrdup(spec);
    if (!ni->device || !m->spec) {
        gseg_model_free(m);
        return GSEG_ERR_NOMEM;
    }
    *out = m;
    return GSEG_OK;
}

static char *now_iso(void)
{
    char buf[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return gseg__strdup(buf);
}

static gseg_status default_provenance(netimpl *ni, const char *source)
{
    gseg__sbuf b = {0};
    char *date = now_iso();
    gseg__sbuf_appendf(&b, "{\"gseg_version\": \"%s\", \"created\": \"%s\", \"source\": ",
                       gseg_version(), date ? date : "");
    gseg__sbuf_append_jstr(&b, source);
    gseg__sbuf_puts(&b, "}");
    free(date);
    free(ni->provenance);
    ni->provenance = gseg__sbuf_take(&b);
    return ni->provenance ? GSEG_OK : GSEG_ERR_NOMEM;
}

gseg_model_def gseg_model_def_default(void)
{
    gseg_model_def d;
    memset(&d, 0, sizeof d);
    d.encoder = "resnet50";
    d.nclasses = 2;
    d.tile = 256;
    d.overlap = 32;
    d.threshold = 0.5;
    return d;
}

gseg_status gseg_model_new(const gseg_model_def *def, const gseg_model_options *opt,
                           gseg_model **out)
{
    if (!out) return gseg__err(GSEG_ERR_ARG, "gseg_model_new: NULL output");
    *out = NULL;
    if (!def || def->nbands < 1)
        return gseg__err(GSEG_ERR_ARG, "a new model needs at least one input band");
    int nclasses = def->nclasses ? def->nclasses : 2;
    if (nclasses < 2 || nclasses > 255)
        return gseg__err(GSEG_ERR_ARG, "%d classes: a model has 2 to 255 classes", nclasses);
    int outputs = nclasses == 2 ? 1 : nclasses;
    gseg_model *m;
    gseg_status st = new_shell(opt, "(new model)", &m);
    if (st != GSEG_OK) return st;
    netimpl *ni = m->impl;
    const char *enc = def->encoder ? def->encoder : "resnet50";
    ni->encoder = xstrdup(enc);
    st = ni->encoder ? gseg__net_new(enc, def->nbands, outputs, def->seed, &ni->net) : GSEG_ERR_NOMEM;
    if (st == GSEG_OK) st = set_meta(m, def, def->nbands, outputs);
    if (st == GSEG_OK) {
        char src[96];
        snprintf(src, sizeof src, "initialised by gseg (seed %llu)", def->seed);
        st = default_provenance(ni, src);
    }
    if (st != GSEG_OK) {
        gseg_model_free(m);
        return st;
    }
    ni->outputs = outputs;
    *out = m;
    return GSEG_OK;
}

gseg_status gseg_model_import(const char *weights, const gseg_model_def *def,
                              const gseg_model_options *opt, gseg_model **out)
{
    if (!out) return gseg__err(GSEG_ERR_ARG, "gseg_model_import: NULL output");
    *out = NULL;
    if (!weights || !*weights) return gseg__err(GSEG_ERR_ARG, "no weights file given");
    wset ws = {0};
    gseg_status st = wset_load(weights, &ws, NULL);
    const char *encoder = NULL;
    int in_ch = 0, outputs = 0;
    if (st == GSEG_OK) st = guess_arch(&ws, "encoder.", &encoder, &in_ch, &outputs);
    if (st == GSEG_OK && def && def->encoder && strcmp(def->encoder, encoder) != 0)
        st = gseg__err(GSEG_ERR_ARG, "%s: the weights are a %s encoder, not %s", weights, encoder,
                       def->encoder);
    if (st != GSEG_OK) {
        wset_free(&ws);
        return st;
    }
    int nbands = def && def->nbands > 0 ? def->nbands : in_ch;
    gseg_model *m;
    st = new_shell(opt, weights, &m);
    if (st != GSEG_OK) {
        wset_free(&ws);
        return st;
    }
    netimpl *ni = m->impl;
    ni->encoder = xstrdup(encoder);
    ni->outputs = outputs;
    st = ni->encoder ? gseg__net_new(encoder, nbands, outputs, 0, &ni->net) : GSEG_ERR_NOMEM;
    if (st == GSEG_OK) st = apply_wset(ni->net, &ws, 0);
    if (st == GSEG_OK) st = set_meta(m, def, nbands, outputs);
    if (st == GSEG_OK) {
        char src[4200];
        snprintf(src, sizeof src, "imported from %s%s", weights,
                 nbands != in_ch ? " (first convolution adapted to the band count)" : "");
        st = default_provenance(ni, src);
    }
    wset_free(&ws);
    if (st != GSEG_OK) {
        gseg_model_free(m);
        return st;
    }
    *out = m;
    return GSEG_OK;
}

gseg_status gseg_model_init_encoder(gseg_model *m, const char *weights)
{
    if (!m || m->vt != &net_vt)
        return gseg__err(GSEG_ERR_ARG, "--init-encoder needs a network model");
    netimpl *ni = m->impl;
    wset ws = {0};
    gseg_status st = wset_load(weights, &ws, NULL);
    const char *encoder = NULL;
    int in_ch = 0;
    if (st == GSEG_OK) {
        const char *prefix = wset_find(&ws, "encoder.conv1.weight") ? "encoder." : "";
        st = guess_arch(&ws, prefix, &encoder, &in_ch, NULL);
    }
    if (st == GSEG_OK && strcmp(encoder, ni->encoder) != 0)
        st = gseg__err(GSEG_ERR_ARG, "%s: a %s encoder, but the model's is %s", weights, encoder,
                       ni->encoder);
    if (st == GSEG_OK) st = apply_wset(ni->net, &ws, 1);
    wset_free(&ws);
    if (st == GSEG_OK) ni->prepared = 0;
    return st;
}

/* ---- the .gseg file --------------------------------------------------------- */

static gseg_status meta_json(const gseg_model *m, int pretty, char **out)
{
    const netimpl *ni = m->impl;
    const char *nl = pretty ? "\n  " : " ";
    gseg__sbuf b = {0};
    gseg__sbuf_appendf(&b, "{%s\"gseg_format\": %d,%s\"architecture\": {\"name\": \"unet\", "
                           "\"encoder\": \"%s\", \"decoder_channels\": [256, 128, 64, 32, 16], "
                           "\"in_channels\": %d, \"outputs\": %d, \"parameters\": %lld},%s"
                           "\"bands\": [",
                       nl, GSEG_FORMAT_VERSION, nl, ni->encoder, m->nbands, m->nscores,
                       (long long)gseg__net_param_count(ni->net), nl);
    for (int i = 0; i < m->nbands; i++) {
        gseg__sbuf_puts(&b, i ? ", {\"name\": " : "{\"name\": ");
        gseg__sbuf_append_jstr(&b, m->bands[i]);
        gseg__sbuf_appendf(&b, ", \"mean\": %.17g, \"std\": %.17g}", ni->mean[i], ni->std[i]);
    }
    gseg__sbuf_appendf(&b, "],%s\"classes\": [", nl);
    for (int k = 0; k < ni->nclasses; k++) {
        gseg__sbuf_puts(&b, k ? ", {\"name\": " : "{\"name\": ");
        gseg__sbuf_append_jstr(&b, ni->classes[k]);
        gseg__sbuf_appendf(&b, ", \"color\": \"#%02x%02x%02x%02x\"}", ni->rgba[k][0],
                           ni->rgba[k][1], ni->rgba[k][2], ni->rgba[k][3]);
    }
    gseg__sbuf_appendf(&b, "],%s\"threshold\": %.17g,%s\"tile\": %d,%s\"overlap\": %d,%s"
                           "\"provenance\": %s%s}",
                       nl, m->threshold, nl, m->tile, nl, m->overlap, nl,
                       ni->provenance ? ni->provenance : "{}", pretty ? "\n" : "");
    *out = gseg__sbuf_take(&b);
    return *out ? GSEG_OK : b.st ? b.st : GSEG_ERR_NOMEM;
}

/* Writes the state dict (and, if with_meta, gseg's metadata) atomically. */
/* A model file's contents taken at one moment: the safetensors writer and
 * the tensor copies it points to. */
struct gseg__model_image {
    gseg__st_writer *w;
    void **bufs;
    int n;
    char *meta;
};

void gseg__model_image_free(gseg__model_image *img)
{
    if (!img) return;
    gseg__st_writer_free(img->w);
    for (int i = 0; img->bufs && i < img->n; i++) free(img->bufs[i]);
    free(img->bufs);
    free(img->meta);
    free(img);
}

static gseg_status image_take(gseg_model *m, int with_meta, gseg__model_image **out)
{
    *out = NULL;
    if (!m || m->vt != &net_vt)
        return gseg__err(GSEG_ERR_ARG, "only network models can be saved");
    netimpl *ni = m->impl;
    gseg__model_image *img = gseg__calloc(1, sizeof *img);
    if (!img) return GSEG_ERR_NOMEM;
    img->n = gseg__net_tensor_count(ni->net);
    img->bufs = gseg__calloc((size_t)img->n, sizeof *img->bufs);
    img->w = gseg__st_writer_new();
    gseg_status st = img->bufs && img->w ? GSEG_OK : GSEG_ERR_NOMEM;
    if (st == GSEG_OK) st = gseg__st_writer_meta(img->w, "format", "pt");
    if (st == GSEG_OK && with_meta) st = meta_json(m, 0, &img->meta);
    if (st == GSEG_OK && with_meta) st = gseg__st_writer_meta(img->w, "gseg", img->meta);
    for (int i = 0; i < img->n && st == GSEG_OK; i++) {
        int is_int = gseg__net_tensor_is_int(ni->net, i);
        int64_t numel = gseg__net_tensor_numel(ni->net, i), shape[GSEG__ST_MAX_DIMS];
        int nd = gseg__net_tensor_ndim(ni->net, i);
        for (int d = 0; d < nd; d++) shape[d] = gseg__net_tensor_dim(ni->net, i, d);
        img->bufs[i] = gseg__malloc(numel ? (size_t)numel : 1, is_int ? 8 : 4);
        if (!img->bufs[i]) {
            st = GSEG_ERR_NOMEM;
            break;
        }
        st = gseg__net_tensor_get(ni->net, i, img->bufs[i], numel);
        if (st == GSEG_OK)
            st = gseg__st_writer_add(img->w, gseg__net_tensor_name(ni->net, i),
                                     is_int ? GSEG__ST_I64 : GSEG__ST_F32, nd, shape, img->bufs[i]);
    }
    if (st != GSEG_OK) {
        gseg__model_image_free(img);
        return st;
    }
    *out = img;
    return GSEG_OK;
}

gseg_status gseg__model_image_take(gseg_model *m, gseg__model_image **out)
{
    return image_take(m, 1, out);
}

gseg_status gseg__model_image_write(const gseg__model_image *img, const char *path)
{
    if (!path || !*path) return gseg__err(GSEG_ERR_ARG, "no output path given");
    return gseg__st_writer_write(img->w, path);
}

static gseg_status write_file(gseg_model *m, const char *path, int with_meta)
{
    if (!path || !*path) return gseg__err(GSEG_ERR_ARG, "no output path given");
    gseg__model_image *img = NULL;
    gseg_status st = image_take(m, with_meta, &img);
    if (st == GSEG_OK) st = gseg__model_image_write(img, path);
    gseg__model_image_free(img);
    return st;
}

gseg_status gseg_model_save(gseg_model *m, const char *path) { return write_file(m, path, 1); }
gseg_status gseg_model_export(gseg_model *m, const char *path) { return write_file(m, path, 0); }

static int parse_rgba(const char *s, unsigned char rgba[4])
{
    unsigned v[4] = {0, 0, 0, 255};
    size_t n = s ? strlen(s) : 0;
    if ((n != 7 && n != 9) || s[0] != '#') return 0;
    for (size_t i = 1; i < n; i++)
        if (!strchr("0123456789abcdefABCDEF", s[i])) return 0;
    for (size_t i = 0; i < (n - 1) / 2; i++) {
        char hex[3] = {s[1 + 2 * i], s[2 + 2 * i], 0};
        v[i] = (unsigned)strtoul(hex, NULL, 16);
    }
    for (int i = 0; i < 4; i++) rgba[i] = (unsigned char)v[i];
    return 1;
}

#define BAD(...) gseg__err(GSEG_ERR_FORMAT, __VA_ARGS__)

static gseg_status meta_int(const char *path, const gseg__json *o, const char *key, int lo, int hi,
                            int *out)
{
    int64_t v;
    if (!gseg__json_int(gseg__json_get(o, key), &v) || v < lo || v > hi)
        return BAD("%s: metadata '%s' must be an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)v;
    return GSEG_OK;
}

/* Fills m (shell with net already created) from the "gseg" metadata. */
static gseg_status meta_parse(gseg_model *m, const char *path, const gseg__json *doc)
{
    netimpl *ni = m->impl;
    const gseg__json *bands = gseg__json_get(doc, "bands");
    const gseg__json *classes = gseg__json_get(doc, "classes");
    int nb = (int)gseg__json_len(bands), nc = (int)gseg__json_len(classes);
    if (gseg__json_type(bands) != GSEG__JSON_ARRAY || nb != m->nbands)
        return BAD("%s: metadata 'bands' must list the %d input bands", path, m->nbands);
    int want_nc = m->nscores == 1 ? 2 : m->nscores;
    if (gseg__json_type(classes) != GSEG__JSON_ARRAY || nc != want_nc)
        return BAD("%s: metadata 'classes' must list %d classes for %d output%s", path, want_nc,
                   m->nscores, m->nscores == 1 ? "" : "s");
    const char **bn = gseg__calloc((size_t)nb, sizeof *bn);
    const char **cn = gseg__calloc((size_t)nc, sizeof *cn);
    double *mean = gseg__calloc((size_t)nb, sizeof *mean), *sd = gseg__calloc((size_t)nb, sizeof *sd);
    gseg_status st = bn && cn && mean && sd ? GSEG_OK : GSEG_ERR_NOMEM;
    for (int i = 0; i < nb && st == GSEG_OK; i++) {
        const gseg__json *b = gseg__json_at(bands, (size_t)i);
        bn[i] = gseg__json_str(gseg__json_get(b, "name"));
        mean[i] = gseg__json_num(gseg__json_get(b, "mean"));
        sd[i] = gseg__json_num(gseg__json_get(b, "std"));
        if (!bn[i] || !*bn[i] || !isfinite(mean[i]) || !(sd[i] > 0) || !isfinite(sd[i]))
            st = BAD("%s: metadata band %d needs a name, a mean and a std > 0", path, i + 1);
    }
    for (int k = 0; k < nc && st == GSEG_OK; k++) {
        cn[k] = gseg__json_str(gseg__json_get(gseg__json_at(classes, (size_t)k), "name"));
        if (!cn[k]) st = BAD("%s: metadata class %d has no name", path, k);
    }
    gseg_model_def def = gseg_model_def_default();
    def.nbands = nb;
    def.bands = bn;
    def.mean = mean;
    def.std = sd;
    def.nclasses = nc;
    def.classes = cn;
    double thr = gseg__json_num(gseg__json_get(doc, "threshold"));
    if (st == GSEG_OK && !(thr > 0 && thr < 1))
        st = BAD("%s: metadata 'threshold' must be a number in (0, 1)", path);
    def.threshold = thr;
    if (st == GSEG_OK) st = meta_int(path, doc, "tile", 32, 65536, &def.tile);
    if (st == GSEG_OK) st = meta_int(path, doc, "overlap", 0, 65535, &def.overlap);
    if (st == GSEG_OK) st = set_meta(m, &def, nb, m->nscores);
    for (int k = 0; k < nc && st == GSEG_OK; k++) {
        const char *col = gseg__json_str(gseg__json_get(gseg__json_at(classes, (size_t)k), "color"));
        if (col && !parse_rgba(col, ni->rgba[k]))
            st = BAD("%s: metadata class '%s': color '%s' is not #RRGGBB[AA]", path, cn[k], col);
    }
    free(bn);
    free(cn);
    free(mean);
    free(sd);
    return st;
}

static gseg_status copy_provenance(netimpl *ni, const gseg__json *doc)
{
    const gseg__json *p = gseg__json_get(doc, "provenance");
    if (gseg__json_type(p) != GSEG__JSON_OBJECT) return default_provenance(ni, "unknown");
    gseg__sbuf b = {0};
    gseg__json_write(&b, p);
    free(ni->provenance);
    ni->provenance = gseg__sbuf_take(&b);
    return ni->provenance ? GSEG_OK : GSEG_ERR_NOMEM;
}

gseg_status gseg__netmodel_open(const char *path, const gseg_model_options *opt, gseg_model **out)
{
    *out = NULL;
    gseg__st_file *f = NULL;
    gseg_status st = gseg__st_open(path, &f);
    if (st != GSEG_OK) return st;
    const char *meta = gseg__st_meta(f, "gseg");
    if (!meta) {
        gseg__st_close(f);
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s: a safetensors file without gseg metadata (a bare state dict?); make "
                         "a model from it with: gseg-import %s -o MODEL.gseg",
                         path, path);
    }
    char jerr[160] = "";
    gseg__json *doc = gseg__json_parse(meta, strlen(meta), jerr, sizeof jerr);
    if (!doc) {
        gseg__st_close(f);
        return BAD("%s: gseg metadata is not valid JSON (%s)", path, jerr);
    }
    int64_t ver = 0;
    const gseg__json *arch = gseg__json_get(doc, "architecture");
    const char *name = gseg__json_str(gseg__json_get(arch, "name"));
    const char *encoder = gseg__json_str(gseg__json_get(arch, "encoder"));
    int in_ch = 0, outputs = 0;
    if (!gseg__json_int(gseg__json_get(doc, "gseg_format"), &ver) || ver < 1)
        st = BAD("%s: gseg metadata has no valid 'gseg_format'", path);
    else if (ver > GSEG_FORMAT_VERSION)
        st = gseg__err(GSEG_ERR_UNSUPPORTED,
                       "%s: model format version %lld is newer than this gseg %s reads (%d); "
                       "upgrade gseg",
                       path, (long long)ver, gseg_version(), GSEG_FORMAT_VERSION);
    else if (!name || strcmp(name, "unet") != 0)
        st = BAD("%s: architecture '%s' is not one gseg knows (unet)", path, name ? name : "");
    else if (!encoder || !gseg__net_encoder_known(encoder))
        st = BAD("%s: encoder '%s' is not one gseg knows (resnet18/34/50/101/152)", path,
                 encoder ? encoder : "");
    if (st == GSEG_OK) st = meta_int(path, arch, "in_channels", 1, 4096, &in_ch);
    if (st == GSEG_OK) st = meta_int(path, arch, "outputs", 1, 255, &outputs);
    gseg_model *m = NULL;
    if (st == GSEG_OK) st = new_shell(opt, path, &m);
    if (st == GSEG_OK) {
        netimpl *ni = m->impl;
        m->nbands = in_ch;
        m->nscores = outputs;
        ni->outputs = outputs;
        ni->encoder = xstrdup(encoder);
        st = ni->encoder ? gseg__net_new(encoder, in_ch, outputs, 0, &ni->net) : GSEG_ERR_NOMEM;
        /* set_meta allocates these again from the parsed values. */
        if (st == GSEG_OK) st = meta_parse(m, path, doc);
        if (st == GSEG_OK) st = copy_provenance(ni, doc);
        wset ws = {0};
        ws.path = path;
        if (st == GSEG_OK) st = wset_from_safetensors(f, &ws);
        if (st == GSEG_OK) st = apply_wset(ni->net, &ws, 0);
        wset_free(&ws);
    }
    gseg__json_free(doc);
    gseg__st_close(f);
    if (st != GSEG_OK) {
        gseg_model_free(m);
        return st;
    }
    *out = m;
    return GSEG_OK;
}

/* ---- description, provenance, accessors ---------------------------------------- */

char *gseg_model_describe(const gseg_model *m, int json)
{
    if (!m) return NULL;
    gseg__sbuf b = {0};
    if (m->vt != &net_vt) {
        if (json) {
            gseg__sbuf_puts(&b, "{\"kind\": ");
            gseg__sbuf_append_jstr(&b, m->vt->kind);
            gseg__sbuf_puts(&b, ", \"spec\": ");
            gseg__sbuf_append_jstr(&b, m->spec);
            gseg__sbuf_appendf(&b, ", \"threshold\": %.17g}\n", m->threshold);
        } else {
            gseg__sbuf_appendf(&b, "Model: %s (%s)\nThreshold: %g\n", m->spec, m->vt->kind,
                               m->threshold);
        }
        return gseg__sbuf_take(&b);
    }
    const netimpl *ni = m->impl;
    if (json) {
        char *meta = NULL;
        if (meta_json(m, 1, &meta) != GSEG_OK) return NULL;
        return meta;
    }
    gseg__sbuf_appendf(&b, "Model: %s\n", m->spec);
    gseg__sbuf_appendf(&b, "Architecture: U-Net, %s encoder, decoder 256-128-64-32-16, "
                           "%.1f M parameters\n",
                       ni->encoder, (double)gseg__net_param_count(ni->net) / 1e6);
    gseg__sbuf_appendf(&b, "Input bands: %d\n", m->nbands);
    for (int i = 0; i < m->nbands; i++)
        gseg__sbuf_appendf(&b, "  %d: %-12s mean %-12g std %g\n", i + 1, m->bands[i], ni->mean[i],
                           ni->std[i]);
    gseg__sbuf_appendf(&b, "Output: %s\n",
                       m->nscores == 1 ? "binary (sigmoid)" : "classes (softmax)");
    for (int k = 0; k < ni->nclasses; k++)
        gseg__sbuf_appendf(&b, "  %d: %-12s #%02x%02x%02x\n", k, ni->classes[k], ni->rgba[k][0],
                           ni->rgba[k][1], ni->rgba[k][2]);
    if (m->nscores == 1) gseg__sbuf_appendf(&b, "Threshold: %g\n", m->threshold);
    gseg__sbuf_appendf(&b, "Tile: %d, overlap %d\n", m->tile, m->overlap);
    gseg__sbuf_appendf(&b, "Provenance: %s\n", ni->provenance ? ni->provenance : "{}");
    return gseg__sbuf_take(&b);
}

gseg_status gseg_model_set_provenance(gseg_model *m, const char *json)
{
    if (!m || m->vt != &net_vt) return gseg__err(GSEG_ERR_ARG, "provenance: not a network model");
    char err[160] = "";
    gseg__json *doc = json ? gseg__json_parse(json, strlen(json), err, sizeof err) : NULL;
    int ok = doc && gseg__json_type(doc) == GSEG__JSON_OBJECT;
    gseg__json_free(doc);
    if (!ok) return gseg__err(GSEG_ERR_ARG, "provenance must be a JSON object%s%s", *err ? ": " : "", err);
    netimpl *ni = m->impl;
    char *copy = gseg__strdup(json);
    if (!copy) return GSEG_ERR_NOMEM;
    free(ni->provenance);
    ni->provenance = copy;
    return GSEG_OK;
}

/* For tests and tools in the library: the shim network behind a model. */
gseg__net *gseg__netmodel_net(gseg_model *m)
{
    return m && m->vt == &net_vt ? ((netimpl *)m->impl)->net : NULL;
}

gseg_precision gseg__model_precision_used(const gseg_model *m)
{
    if (!m || m->vt != &net_vt) return GSEG_PRECISION_AUTO;
    const netimpl *ni = m->impl;
    return ni->prepared ? gseg__net_precision(ni->net) : GSEG_PRECISION_AUTO;
}

/* Class names and colours for writing masks. */
int gseg__model_classes(const gseg_model *m, const char *const **names,
                        const unsigned char (**rgba)[4])
{
    if (!m || m->vt != &net_vt) {
        *names = gseg__binary_classes;
        *rgba = gseg__binary_rgba;
        return 2;
    }
    const netimpl *ni = m->impl;
    *names = (const char *const *)ni->classes;
    *rgba = (const unsigned char(*)[4])ni->rgba;
    return ni->nclasses;
}

const char *gseg_model_encoder(const gseg_model *m)
{
    return m && m->vt == &net_vt ? ((const netimpl *)m->impl)->encoder : NULL;
}

void gseg__model_norm(const gseg_model *m, int band, double *mean, double *sd)
{
    const netimpl *ni = m && m->vt == &net_vt ? m->impl : NULL;
    *mean = ni && band >= 0 && band < m->nbands ? ni->mean[band] : 0.0;
    *sd = ni && band >= 0 && band < m->nbands ? ni->std[band] : 1.0;
}
