/* model.c — the model interface: a batch of tiles in, per-pixel scores out.
 * Backends (NDSI here; the libtorch network later) fill a vtable. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const kPrecisions[] = {"auto", "fp32", "bf16", "fp16"};

const char *const gseg__binary_classes[2] = {"background", "glacier"};

static const unsigned char kDefaultRGBA[8][4] = {
    {0, 0, 0, 0},         /* background: transparent */
    {0, 170, 255, 255},   /* glacier / class 1: ice blue */
    {139, 90, 43, 255},   /* class 2: debris brown */
    {255, 200, 0, 255},   {230, 60, 60, 255}, {120, 200, 80, 255},
    {170, 90, 200, 255},  {90, 200, 200, 255},
};

const unsigned char *gseg__class_default_rgba(int k)
{
    return kDefaultRGBA[k <= 0 ? 0 : 1 + (k - 1) % 7];
}

/* the binary pair is the table's first two rows */
const unsigned char (*const gseg__binary_rgba)[4] = kDefaultRGBA;

const char *gseg_precision_str(gseg_precision p)
{
    return (unsigned)p < 4 ? kPrecisions[p] : "?";
}

gseg_status gseg_precision_parse(const char *s, gseg_precision *out)
{
    for (int i = 0; i < 4; i++)
        if (s && strcasecmp(s, kPrecisions[i]) == 0) {
            *out = (gseg_precision)i;
            return GSEG_OK;
        }
    return gseg__err(GSEG_ERR_ARG, "--precision '%s': expected auto, fp32, bf16 or fp16",
                     s ? s : "");
}

gseg_status gseg_device_check(const char *d)
{
    if (d && (strcmp(d, "cpu") == 0 || strcmp(d, "cuda") == 0 ||
              (strncmp(d, "cuda:", 5) == 0 && d[5] && strspn(d + 5, "0123456789") == strlen(d + 5))))
        return GSEG_OK;
    return gseg__err(GSEG_ERR_ARG, "--device '%s': expected cpu, cuda or cuda:N", d ? d : "");
}

gseg_model_options gseg_model_options_default(void)
{
    gseg_model_options o;
    memset(&o, 0, sizeof o);
    o.device = "cpu";
    o.precision = GSEG_PRECISION_AUTO;
    o.fold_bn = 1;
    return o;
}

void gseg_free(void *p) { free(p); }

#ifdef GSEG_HAVE_TORCH
int gseg_have_network(void) { return 1; }
#else
/* Builds without libtorch: the network entry points say so. */
#define NO_NET gseg__err(GSEG_ERR_UNSUPPORTED, "this gseg was built without libtorch " \
                         "(meson -Dtorch=enabled): network models are not available")
int gseg_have_network(void) { return 0; }
gseg_model_def gseg_model_def_default(void)
{
    gseg_model_def d;
    memset(&d, 0, sizeof d);
    return d;
}
gseg_status gseg_model_new(const gseg_model_def *d, const gseg_model_options *o, gseg_model **m)
{
    (void)d, (void)o;
    if (m) *m = NULL;
    return NO_NET;
}
gseg_status gseg_model_import(const char *w, const gseg_model_def *d, const gseg_model_options *o,
                              gseg_model **m)
{
    (void)w, (void)d, (void)o;
    if (m) *m = NULL;
    return NO_NET;
}
gseg_status gseg_model_init_encoder(gseg_model *m, const char *w) { (void)m, (void)w; return NO_NET; }
gseg_status gseg_model_save(gseg_model *m, const char *p) { (void)m, (void)p; return NO_NET; }
gseg_status gseg_model_export(gseg_model *m, const char *p) { (void)m, (void)p; return NO_NET; }
gseg_status gseg_model_set_provenance(gseg_model *m, const char *j) { (void)m, (void)j; return NO_NET; }
char *gseg_model_describe(const gseg_model *m, int json)
{
    if (!m) return NULL;
    char *s = gseg__malloc(strlen(m->spec) + 64, 1);
    if (s)
        sprintf(s, json ? "{\"kind\": \"ndsi\", \"spec\": \"%s\"}\n" : "Model: %s (ndsi)\n",
                m->spec);
    return s;
}
const char *gseg_model_encoder(const gseg_model *m) { (void)m; return NULL; }
gseg_train_params gseg_train_params_default(void)
{
    gseg_train_params p;
    memset(&p, 0, sizeof p);
    return p;
}
gseg_status gseg_train(const gseg_train_params *p, gseg_progress_fn f, void *u, gseg_train_stats *s)
{
    (void)p, (void)f, (void)u, (void)s;
    return NO_NET;
}
void gseg_train_interrupt(void) {}
int gseg_train_tool_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    NO_NET;
    return 1;
}
gseg_precision gseg__model_precision_used(const gseg_model *m)
{
    (void)m;
    return GSEG_PRECISION_AUTO;
}
int gseg__model_classes(const gseg_model *m, const char *const **n, const unsigned char (**c)[4])
{
    (void)m;
    *n = gseg__binary_classes;
    *c = gseg__binary_rgba;
    return 2;
}
#endif

int gseg_model_tile(const gseg_model *m) { return m ? m->tile : 0; }
int gseg_model_overlap(const gseg_model *m) { return m ? m->overlap : 0; }

gseg_status gseg_model_open(const char *spec, const gseg_model_options *opt, gseg_model **out)
{
    if (!out) return gseg__err(GSEG_ERR_ARG, "model: NULL output");
    *out = NULL;
    if (!spec || !*spec) return gseg__err(GSEG_ERR_ARG, "no model given (--model)");
    if (strncmp(spec, "ndsi:", 5) != 0 && strcmp(spec, "ndsi") != 0) {
#ifdef GSEG_HAVE_TORCH
        return gseg__netmodel_open(spec, opt, out);
#else
        (void)opt;
        return gseg__err(GSEG_ERR_UNSUPPORTED,
                         "%s: this gseg was built without libtorch, so it runs only the NDSI "
                         "baseline (ndsi:green=G,swir=S[,threshold=T])", spec);
#endif
    }
    gseg_model *m = gseg__calloc(1, sizeof *m);
    if (!m) return GSEG_ERR_NOMEM;
    m->spec = gseg__strdup(spec);
    if (!m->spec) {
        free(m);
        return GSEG_ERR_NOMEM;
    }
    gseg_status st = gseg__ndsi_open(spec[4] ? spec + 5 : "", m);
    if (st != GSEG_OK) {
        gseg_model_free(m);
        return st;
    }
    *out = m;
    return GSEG_OK;
}

void gseg_model_free(gseg_model *m)
{
    if (!m) return;
    if (m->vt && m->vt->free) m->vt->free(m);
    for (int i = 0; m->bands && i < m->nbands; i++) free(m->bands[i]);
    free(m->bands);
    free(m->spec);
    free(m);
}

const char *gseg_model_kind(const gseg_model *m) { return m->vt->kind; }
const char *gseg_model_spec(const gseg_model *m) { return m->spec; }
int gseg_model_nbands(const gseg_model *m) { return m->nbands; }
const char *gseg_model_band(const gseg_model *m, int i)
{
    return i >= 0 && i < m->nbands ? m->bands[i] : NULL;
}
int gseg_model_nscores(const gseg_model *m) { return m->nscores; }
double gseg_model_threshold(const gseg_model *m) { return m->threshold; }
const char *gseg_model_score_name(const gseg_model *m) { return m->score_name; }

gseg_status gseg_model_forward(gseg_model *m, const float *in, int n, int h, int w,
                               const uint8_t *valid, float *out)
{
    if (!m || !in || !out || n < 1 || h < 1 || w < 1)
        return gseg__err(GSEG_ERR_ARG, "model forward: bad arguments");
    return m->vt->forward(m, in, n, h, w, valid, out);
}

void gseg__model_normalise(const gseg_model *m, float *in, int n, int h, int w,
                           const uint8_t *valid)
{
    if (m->vt->normalise) m->vt->normalise(m, in, n, h, w, valid);
}

gseg_status gseg__model_forward_normalised(gseg_model *m, float *in, int n, int h, int w,
                                           const uint8_t *valid, float *out)
{
    if (!m->vt->normalise) return m->vt->forward(m, in, n, h, w, valid, out);
    return m->vt->forward_normalised(m, in, n, h, w, valid, out);
}

int gseg__model_cpu_threads(const gseg_model *m)
{
#ifdef GSEG_HAVE_TORCH
    if (strcmp(m->vt->kind, "network") == 0) return gseg__netmodel_cpu_threads(m);
#else
    (void)m;
#endif
    return 1;
}

void gseg__model_inference_only(gseg_model *m)
{
#ifdef GSEG_HAVE_TORCH
    if (m && strcmp(m->vt->kind, "network") == 0) gseg__netmodel_inference_only(m);
#else
    (void)m;
#endif
}
