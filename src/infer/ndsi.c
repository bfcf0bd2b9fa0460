/*
 * ndsi.c — the Normalised Difference Snow Index baseline:
 *   NDSI = (green - swir) / (green + swir), glacier where NDSI > threshold.
 * The score is the NDSI itself (in [-1, 1]); where green + swir <= 0 (no
 * signal, or negative surface reflectance) the score is -1: not snow.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static gseg_status ndsi_forward(gseg_model *m, const float *in, int n, int h, int w,
                                const uint8_t *valid, float *out)
{
    (void)m;
    (void)valid;
    size_t plane = (size_t)h * w;
    for (int b = 0; b < n; b++) {
        const float *g = in + (size_t)b * 2 * plane, *s = g + plane;
        float *o = out + (size_t)b * plane;
        for (size_t i = 0; i < plane; i++) {
            float sum = g[i] + s[i];
            o[i] = sum > 0.0f ? (g[i] - s[i]) / sum : -1.0f;
        }
    }
    return GSEG_OK;
}

static const gseg__model_vt ndsi_vt = {"ndsi", ndsi_forward, NULL, NULL, NULL};

gseg_status gseg__ndsi_open(const char *args, gseg_model *m)
{
    char *green = NULL, *swir = NULL;
    double thr = 0.4;
    gseg_status st = GSEG_OK;
    char *copy = gseg__strdup(args);
    if (!copy) return GSEG_ERR_NOMEM;
    for (char *save = NULL, *kv = strtok_r(copy, ",", &save); kv && st == GSEG_OK;
         kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv || !eq[1]) {
            st = gseg__err(GSEG_ERR_ARG, "ndsi model: '%s' is not KEY=VALUE", kv);
            break;
        }
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(kv, "green") == 0) {
            free(green);
            green = gseg__strdup(v);
        } else if (strcmp(kv, "swir") == 0 || strcmp(kv, "swir1") == 0) {
            free(swir);
            swir = gseg__strdup(v);
        } else if (strcmp(kv, "threshold") == 0) {
            char *end = NULL;
            thr = strtod(v, &end);
            if (!end || *end || !isfinite(thr) || thr <= -1.0 || thr >= 1.0)
                st = gseg__err(GSEG_ERR_ARG,
                               "ndsi model: threshold '%s' must be a number in (-1, 1)", v);
        } else {
            st = gseg__err(GSEG_ERR_ARG,
                           "ndsi model: unknown key '%s' (expected green, swir, threshold)", kv);
        }
    }
    free(copy);
    if (st == GSEG_OK && (!green || !swir))
        st = gseg__err(GSEG_ERR_ARG,
                       "ndsi model needs both bands: ndsi:green=G,swir=S[,threshold=T] "
                       "(1-based band numbers or band names), e.g. ndsi:green=3,swir=6 for "
                       "Landsat 8");
    if (st != GSEG_OK) {
        free(green);
        free(swir);
        return st;
    }
    m->bands = gseg__calloc(2, sizeof *m->bands);
    if (!m->bands) {
        free(green);
        free(swir);
        return GSEG_ERR_NOMEM;
    }
    m->bands[0] = green;
    m->bands[1] = swir;
    m->nbands = 2;
    m->nscores = 1;
    m->threshold = thr;
    m->score_name = "NDSI";
    m->vt = &ndsi_vt;
    return GSEG_OK;
}
