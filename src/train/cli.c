/*
 * cli.c — gseg-train's command line (parsed and run here, so that the main
 * is thin and tests can drive it in-process).
 */
#include "internal.h"

#include <cpl_string.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "Usage: gseg-train [--data PATH] [-o MODEL.gseg] [options]\n"
    "\n"
    "Trains a glacier segmentation network (ResNet U-Net) on scenes and masks.\n"
    "PATH (default ./dataset) holds train/images + train/masks (and optionally\n"
    "val/images + val/masks), or images/ + masks/; masks are matched to images by\n"
    "file stem (0 background, 1 glacier, ..., nodata not labelled). PATH may be a\n"
    ".zip, .tar or .tar.gz archive (read in place) or any GDAL VSI path.\n"
    "\n"
    "  --labels FILE         glacier outlines (RGI, GLIMS: GeoPackage, shapefile,\n"
    "                        .zip, any OGR source, any CRS) burnt onto each scene's\n"
    "                        grid instead of masks (masks/ then optional, ignored);\n"
    "                        PATH may then also be a plain folder of scenes\n"
    "  --label-field NAME    integer attribute holding the class (1..254; 0 carves\n"
    "                        background, 255 not labelled; later features win);\n"
    "                        default: every polygon is class 1\n"
    "  -o, --out FILE        best model by validation mean IoU (default model.gseg;\n"
    "                        its folder must exist); the last epoch goes to\n"
    "                        <stem>.last.gseg\n"
    "  --bands LIST          input bands (numbers or names); default every band\n"
    "  --classes LIST        class names (default background,glacier)\n"
    "  --backbone NAME       encoder: resnet50 (default), resnet18, resnet34,\n"
    "                        resnet101, resnet152 (also --encoder NAME)\n"
    "  --init-encoder FILE   torchvision ResNet weights (e.g. ImageNet) for the encoder\n"
    "  --epochs N            epochs (default 10)\n"
    "  --steps N             total steps instead of epochs\n"
    "  --steps-per-epoch N   default: training pixels / tile^2 / samples per step\n"
    "  --batch N             tiles per micro-batch (default 8)\n"
    "  --accum N             micro-batches per optimiser step (gradient\n"
    "                        accumulation; default 1): samples per step =\n"
    "                        batch x accum x processes\n"
    "  --tile N              tile size (default 256)\n"
    "  --lr X                peak learning rate, AdamW (default 1e-3)\n"
    "  --schedule NAME       cosine (default: linear warm-up, then cosine decay) or\n"
    "                        onecycle (PyTorch's OneCycleLR: lr and beta1 cycled)\n"
    "  --weight-decay X      (default 1e-4)\n"
    "  --warmup N            cosine warm-up steps (default 5 %% of the steps)\n"
    "  --glacier-share X     share of windows centred on glacier (default 0.5)\n"
    "  --val-fraction X      scenes held out for validation without val/ (0.2)\n"
    "  --patience N          stop after N epochs without improvement\n"
    "  --seed N              (default 1): same seed and threads, same weights\n"
    "  --loaders N           data loader threads (default 2)\n"
    "  --threads N           network threads (default: the CPUs this process may use)\n"
    "  --device DEV          cpu (default), cuda, cuda:N (several processes:\n"
    "                        cuda means cuda:LOCAL_RANK)\n"
    "  --precision P         auto (default: bf16 on CPUs with avx512_bf16/AMX and\n"
    "                        on CUDA, else fp32), fp32, bf16: mixed precision\n"
    "                        (autocast; weights and optimiser stay fp32)\n"
    "  --metrics FILE        CSV, or JSON lines if FILE ends .jsonl\n"
    "                        (default <stem>.metrics.csv)\n"
    "  --max-time SECONDS    end after the step that passes this training time\n"
    "                        (validating and checkpointing that epoch)\n"
    "  --resume              continue the run of <stem>.last.gseg (same options):\n"
    "                        same data stream, optimiser state and schedule\n"
    "  --resume-or-start     --resume if <stem>.last.gseg exists, else start\n"
    "                        (for requeued cluster jobs)\n"
    "  -q, --quiet           no progress\n"
    "  --config KEY VALUE    set a GDAL or gseg configuration option\n"
    "\n"
    "Ctrl-C stops after the current step and keeps the last checkpoint.\n"
    "\n"
    "Several processes (data parallel over torch.distributed: Gloo on CPU, NCCL on\n"
    "CUDA) start the same command under torchrun or srun, e.g.\n"
    "  torchrun --nproc_per_node 2 --no_python \\\n"
    "      gseg-train --data DIR -o m.gseg --threads 1\n"
    "They meet at MASTER_ADDR:MASTER_PORT (RANK, WORLD_SIZE, LOCAL_RANK; or an srun\n"
    "step's SLURM_PROCID, SLURM_STEP_NUM_TASKS); rank 0 reports and writes files.\n";

typedef struct term {
    int tty;
} term;

static int on_progress(double complete, const char *msg, void *user)
{
    term *t = user;
    (void)complete;
    if (!msg) return 1;
    /* Step lines are redrawn on a terminal; every other line is kept. */
    int epoch_line = !(strstr(msg, " step ") && strstr(msg, "ETA"));
    if (t->tty)
        fprintf(stderr, epoch_line ? "\r\033[K%s\n" : "\r\033[K%s", msg);
    else if (epoch_line)
        fprintf(stderr, "%s\n", msg);
    return 1;
}

int gseg_train_tool_main(int argc, char **argv)
{
    gseg_train_params p = gseg_train_params_default();
    p.output = "model.gseg";
    p.distributed = 1; /* torchrun / srun */
    char **bands = NULL, **classes = NULL;
    int quiet = 0, rc = 0, nclasses_given = 0;
    long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED()                                                                     \
    if (!v) {                                                                      \
        fprintf(stderr, "gseg-train: %s needs a value\nTry 'gseg-train --help'.\n", a); \
        rc = 2;                                                                    \
        goto out;                                                                  \
    }                                                                              \
    i++;
#define BAD()   \
    {           \
        rc = 2; \
        goto out; \
    }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf(usage);
            goto out;
        } else if (!strcmp(a, "--data")) {
            NEED();
            p.data = v;
        } else if (!strcmp(a, "--labels")) {
            NEED();
            p.labels = v;
        } else if (!strcmp(a, "--label-field")) {
            NEED();
            p.label_field = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            NEED();
            p.output = v;
        } else if (!strcmp(a, "--bands")) {
            NEED();
            CSLDestroy(bands);
            bands = CSLTokenizeString2(v, ",", 0);
        } else if (!strcmp(a, "--classes")) {
            NEED();
            CSLDestroy(classes);
            classes = CSLTokenizeString2(v, ",", 0);
            nclasses_given = CSLCount(classes);
        } else if (!strcmp(a, "--backbone") || !strcmp(a, "--encoder")) {
            NEED();
            p.encoder = v;
        } else if (!strcmp(a, "--init-encoder")) {
            NEED();
            p.init_encoder = v;
        } else if (!strcmp(a, "--epochs")) {
            NEED();
            if (!gseg__tool_int("gseg-train", a, v, 1, 100000, &p.epochs)) BAD();
        } else if (!strcmp(a, "--steps")) {
            NEED();
            if (!gseg__tool_int("gseg-train", a, v, 1, 100000000, &p.steps)) BAD();
        } else if (!strcmp(a, "--steps-per-epoch")) {
            NEED();
            if (!gseg__tool_int("gseg-train", a, v, 1, 100000000, &p.steps_per_epoch)) BAD();
        } else if (!strcmp(a, "--batch")) {
            NEED();
            if (!gseg__tool_int("gseg-train", a, v, 1, 4096, &p.batch)) BAD();
        } else if (!strcmp(a, "--tile")) {
            NEED();
            if (!gseg__tool_int("gseg-train", a, v, 32, 4096, &p.tile)) BAD();
        } else if (!strcmp(a, "--lr")) {
            NEED();
            if (!gseg__tool_num("gseg-train", a, v, 1e-9, 10, &p.lr)) BAD();
        } else if (!strcmp(a, "--weight-decay")) {
            NEED();
            if (!gseg__tool_num("gseg-train", a, v, 0, 10, &p.weight_decay)) BAD();
        } else if (!strcmp(a, "--warmup")) {
            NEED();
            if (!gseg__tool_int("gseg-train", a, v, 0, 100000000, &p.warmup)) BAD();
        } else if (!strcmp(a, "--glacier-share")) {
            NEED();
            if (!gseg__tool_num("gseg-train", a, v, 0, 1, &p.glacier_share)) BAD();
        } else if (!strcmp(a, "--val-fraction")) {
            NEED();
            if (!gseg__tool_num("gseg-train", a, v, 0, 0.9, &p.val_fraction)) BAD();
        } else if (!strcmp(a, "--patience")) {
            NEED();
            if (!gseg__tool_int("gseg-train", a, v, 0, 100000, &p.patience)) BAD();
        } else if (!strcmp(a, "--seed")) {
            NEED();
            int s32;
            if (!gseg__tool_int("gseg-train", a, v, 0, 2147483647L, &s32)) BAD();
            seed = s32;
        } else if (!strcmp(a, "--loaders")) {
            NEED();
            if (!gseg__tool_int("gseg-train", a, v, 1, 64, &p.loaders)) BAD();
        } else if (!strcmp(a, "--threads")) {
            NEED();
            if (!gseg__tool_int("gseg-train", a, v, 0, 1024, &p.model_options.threads)) BAD();
        } else if (!strcmp(a, "--device")) {
            NEED();
            p.model_options.device = v;
        } else if (!strcmp(a, "--precision")) {
            NEED();
            if (gseg_precision_parse(v, &p.model_options.precision) != GSEG_OK) {
                fprintf(stderr, "gseg-train: %s\n", gseg_last_error());
                BAD();
            }
        } else if (!strcmp(a, "--accum")) {
            NEED();
            if (!gseg__tool_int("gseg-train", a, v, 1, 4096, &p.accum)) BAD();
        } else if (!strcmp(a, "--schedule")) {
            NEED();
            if (!strcmp(v, "cosine")) {
                p.schedule = GSEG_SCHEDULE_COSINE;
            } else if (!strcmp(v, "onecycle")) {
                p.schedule = GSEG_SCHEDULE_ONECYCLE;
            } else {
                fprintf(stderr, "gseg-train: --schedule %s: expected cosine or onecycle\n", v);
                BAD();
            }
        } else if (!strcmp(a, "--metrics")) {
            NEED();
            p.metrics = v;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(a, "--max-time")) {
            NEED();
            if (!gseg__tool_num("gseg-train", a, v, 1, 1e9, &p.max_seconds)) BAD();
        } else if (!strcmp(a, "--resume")) {
            p.resume = 1;
        } else if (!strcmp(a, "--resume-or-start")) {
            p.resume = 2;
        } else {
            fprintf(stderr, "gseg-train: unknown option %s\nTry 'gseg-train --help'.\n", a);
            BAD();
        }
    }
    p.seed = (unsigned long long)seed;
    p.bands = (const char *const *)bands;
    if (nclasses_given) {
        if (nclasses_given < 2) {
            fprintf(stderr, "gseg-train: --classes needs at least two names\n");
            BAD();
        }
        p.nclasses = nclasses_given;
        p.classes = (const char *const *)classes;
    }
    {
        term t = {isatty(2)};
        gseg_train_stats s;
        gseg_status st = gseg_train(&p, quiet ? NULL : on_progress, &t, &s);
        if (t.tty && !quiet) fputc('\n', stderr);
        if (st != GSEG_OK) {
            fprintf(stderr, "gseg-train: %s\n", gseg_last_error());
            rc = st == GSEG_ERR_ARG ? 2 : 1;
        } else if (!quiet && s.rank == 0) {
            printf("%s: %ld steps in %.0f s (%.2f samples/s, %.1f %% waiting for data); "
                   "best val mIoU %.4f at epoch %d; weights digest %016llx\n",
                   p.output, s.steps, s.seconds, s.samples_per_s, 100 * s.wait_share,
                   s.best_miou, s.best_epoch, s.digest);
        } else if (!quiet) {
            printf("rank %d of %d: %ld steps; weights digest %016llx (rank 0 writes the model)\n",
                   s.rank, s.processes, s.steps, s.digest);
        }
    }
out:
    CSLDestroy(bands);
    CSLDestroy(classes);
    return rc;
#undef NEED
#undef BAD
}
