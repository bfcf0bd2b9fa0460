/*
 * schedule.c — learning-rate schedules of gseg-train, as PyTorch defines
 * them, so that a run can be reproduced in Python:
 *   cosine:   linear warm-up to lr over `warmup` steps, then cosine decay to 0;
 *   onecycle: torch.optim.lr_scheduler.OneCycleLR with its defaults
 *             (pct_start 0.3, div_factor 25, final_div_factor 1e4, cosine
 *             annealing, beta1 cycled between 0.95 and 0.85).
 */
#include "train.h"

#include <math.h>

static double anneal(double from, double to, double pct)
{
    return to + (from - to) / 2.0 * (cos(M_PI * pct) + 1.0);
}

void gseg__sched_at(const gseg__sched *s, long step, double *lr, double *beta1)
{
    *beta1 = 0; /* unchanged */
    if (s->kind == GSEG_SCHEDULE_ONECYCLE) {
        const double pct_start = 0.3, max_m = 0.95, base_m = 0.85;
        double lr0 = s->lr / 25.0, lr_min = lr0 / 1e4;
        double end1 = pct_start * (double)s->total - 1.0, end2 = (double)s->total - 1.0;
        if ((double)step <= end1) {
            double pct = end1 > 0 ? (double)step / end1 : 1.0;
            *lr = anneal(lr0, s->lr, pct);
            *beta1 = anneal(max_m, base_m, pct);
        } else {
            double pct = end2 > end1 ? ((double)step - end1) / (end2 - end1) : 1.0;
            *lr = anneal(s->lr, lr_min, pct);
            *beta1 = anneal(base_m, max_m, pct);
        }
        return;
    }
    if (step < s->warmup)
        *lr = s->lr * (double)(step + 1) / (double)s->warmup;
    else
        *lr = 0.5 * s->lr *
              (1 + cos(M_PI * (double)(step - s->warmup) / (double)fmax(1, (double)(s->total - s->warmup))));
}
