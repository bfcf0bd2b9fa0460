/* model.c — the model interface: a batch of tiles in, per-pixel scores out.
 * Backends (NDSI here; the libtorch network later) fill a vtable. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

gseg_status gseg_model_open(const char *spec, gseg_model **out)
{
    if (!out) return gseg__err(GSEG_ERR_ARG, "model: NULL output");
    *out = NULL;
    if (!spec || !*spec) return gseg__err(GSEG_ERR_ARG, "no model given (--model)");
    gseg_model *m = gseg__calloc(1, sizeof *m);
    if (!m) return GSEG_ERR_NOMEM;
    m->spec = gseg__strdup(spec);
    if (!m->spec) {
        free(m);
        return GSEG_ERR_NOMEM;
    }
    gseg_status st;
    if (strncmp(spec, "ndsi:", 5) == 0 || strcmp(spec, "ndsi") == 0)
        st = gseg__ndsi_open(spec[4] ? spec + 5 : "", m);
    else
        st = gseg__err(GSEG_ERR_UNSUPPORTED,
                       "%s: unknown model; this build knows the NDSI baseline "
                       "(ndsi:green=G,swir=S[,threshold=T])", spec);
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
    for (int i = 0; i < m->nbands; i++) free(m->bands[i]);
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
