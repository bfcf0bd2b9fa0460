/* check_train.c — gseg-train: dataset discovery (folders, zip and tar
 * archives, stem matching), refusal of bad masks, the loss falling, the
 * same seed giving the same weights, checkpoints and metrics.
 * libtorch's thread pool does not survive fork(): CK_FORK=no. */
#include "testutil.h"

#include "dist.h"
#include "internal.h"
#include "net.h"
#include "train.h"

#include <cpl_conv.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir;

static const char *path(const char *name) { return tu_path(dir, name); }

/* dataset/{train,val}/{images,masks}/scene_N.tif: small synthetic scenes. */
static void make_dataset(const char *root, int ntrain, int nval, int size)
{
    ck_assert_int_eq(tu_system("mkdir -p %s/train/images %s/train/masks", root, root), 0);
    if (nval) ck_assert_int_eq(tu_system("mkdir -p %s/val/images %s/val/masks", root, root), 0);
    for (int i = 0; i < ntrain + nval; i++) {
        gseg_synth_params sp = gseg_synth_params_default();
        sp.width = sp.height = size;
        sp.seed = (unsigned long)(11 + i);
        char img[1100], mask[1100];
        const char *part = i < ntrain ? "train" : "val";
        snprintf(img, sizeof img, "%s/%s/images/scene_%d.tif", root, part, i);
        snprintf(mask, sizeof mask, "%s/%s/masks/scene_%d.tif", root, part, i);
        ck_gseg(gseg_synth_scene(&sp, img, mask, NULL));
    }
}

static void setup(void)
{
    gseg_init();
    free(dir);
    dir = tu_tmpdir("check_train");
}

START_TEST(test_discovery_layouts_and_archives)
{
    char root[1024];
    snprintf(root, sizeof root, "%s", path("ds"));
    make_dataset(root, 2, 1, 64);
    gseg__tdata d;
    ck_gseg(gseg__tdata_discover(&d, root, 1));
    ck_assert_int_eq(d.n, 3);
    ck_assert_int_eq(d.has_val, 1);
    ck_assert_int_eq(d.scenes[2].val, 1);
    ck_assert_ptr_nonnull(strstr(d.scenes[0].mask, "train/masks/scene_0.tif"));
    gseg__tdata_free(&d);
    /* The same inside a zip and a tar.gz, read in place. */
    ck_assert_int_eq(tu_system("cd %s && zip -qr ds.zip ds && tar czf ds.tar.gz ds", dir), 0);
    char zip[1100], tgz[1100];
    snprintf(zip, sizeof zip, "/vsizip/%s/ds.zip/ds", dir);
    snprintf(tgz, sizeof tgz, "/vsitar/%s/ds.tar.gz/ds", dir);
    ck_gseg(gseg__tdata_discover(&d, zip, 1));
    ck_assert_int_eq(d.n, 3);
    int nb;
    char **names = NULL;
    ck_gseg(gseg__tdata_prepare(&d, NULL, 2, &nb, &names));
    ck_assert_int_eq(nb, 7);
    ck_assert_str_eq(names[4], "swir1");
    for (int i = 0; names[i]; i++) free(names[i]);
    free(names);
    gseg__tdata_free(&d);
    ck_gseg(gseg__tdata_discover(&d, tgz, 1));
    ck_assert_int_eq(d.n, 3);
    gseg__tdata_free(&d);
    /* images/ + masks/ without train/: all training scenes. */
    ck_assert_int_eq(tu_system("mkdir -p %s/flat && cp -r %s/train/images %s/train/masks %s/flat/",
                               dir, root, root, dir), 0);
    ck_gseg(gseg__tdata_discover(&d, path("flat"), 1));
    ck_assert_int_eq(d.n, 2);
    ck_assert_int_eq(d.has_val, 0);
    gseg__tdata_free(&d);
    /* A missing mask, a missing folder. */
    ck_assert_int_eq(tu_system("rm %s/flat/masks/scene_1.tif", dir), 0);
    ck_assert_int_eq(gseg__tdata_discover(&d, path("flat"), 1), GSEG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "scene_1"));
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "stem"));
    ck_assert_int_eq(gseg__tdata_discover(&d, path("nowhere"), 1), GSEG_ERR_IO);
}
END_TEST

/* Rewrites mask 0 of a dataset with GDAL: a different size, a shifted
 * grid, another CRS, or an out-of-range class value. */
static void bad_mask(const char *root, int kind)
{
    char mask[1100], img[1100];
    snprintf(mask, sizeof mask, "%s/train/masks/scene_0.tif", root);
    snprintf(img, sizeof img, "%s/train/images/scene_0.tif", root);
    if (kind == 0)
        ck_assert_int_eq(tu_system("gdal_translate -q -srcwin 0 0 60 64 %s %s.tmp.tif && mv %s.tmp.tif %s",
                                   mask, mask, mask, mask), 0);
    else if (kind == 1)
        ck_assert_int_eq(tu_system("gdal_edit.py -a_ullr 0 64 64 0 %s 2>/dev/null || "
                                   "/usr/bin/python3 -c \"from osgeo import gdal; d=gdal.Open('%s',1); "
                                   "d.SetGeoTransform((0,1,0,64,0,-1))\"", mask, mask), 0);
    else if (kind == 2)
        ck_assert_int_eq(tu_system("/usr/bin/python3 -c \"from osgeo import gdal, osr; d=gdal.Open('%s',1); "
                                   "s=osr.SpatialReference(); s.ImportFromEPSG(32644); "
                                   "d.SetSpatialRef(s)\"", mask), 0);
    else
        ck_assert_int_eq(tu_system("/usr/bin/python3 -c \"from osgeo import gdal; d=gdal.Open('%s',1); "
                                   "b=d.GetRasterBand(1); import numpy as np; a=b.ReadAsArray(); "
                                   "a[5,7]=3; b.WriteArray(a)\"", mask), 0);
    (void)img;
}

START_TEST(test_bad_masks_refused)
{
    const char *what[] = {"60x64", "grid", "CRS", "value 3"};
    for (int kind = 0; kind < 4; kind++) {
        char root[1024];
        snprintf(root, sizeof root, "%s/bad%d", dir, kind);
        make_dataset(root, 1, 0, 64);
        bad_mask(root, kind);
        gseg__tdata d;
        ck_gseg(gseg__tdata_discover(&d, root, 1));
        int nb;
        char **names = NULL;
        gseg_status st = gseg__tdata_prepare(&d, NULL, 2, &nb, &names);
        ck_assert_int_eq(st, GSEG_ERR_FORMAT);
        ck_assert_msg(strstr(gseg_last_error(), what[kind]) != NULL, "'%s' lacks '%s'",
                      gseg_last_error(), what[kind]);
        ck_assert_ptr_nonnull(strstr(gseg_last_error(), "scene_0"));
        for (int i = 0; names && names[i]; i++) free(names[i]);
        free(names);
        gseg__tdata_free(&d);
    }
    /* two images with one stem (a.tif and a.vrt) would be one scene twice */
    char root[1024];
    snprintf(root, sizeof root, "%s/dupstem", dir);
    make_dataset(root, 1, 0, 64);
    ck_assert_int_eq(tu_system("cd %s/train/images && gdal_translate -q -of VRT scene_0.tif "
                               "scene_0.vrt", root), 0);
    gseg__tdata d;
    ck_assert_int_eq(gseg__tdata_discover(&d, root, 1), GSEG_ERR_FORMAT);
    ck_assert_msg(strstr(gseg_last_error(), "same file stem"), "%s", gseg_last_error());
}
END_TEST

static gseg_train_params small_run(const char *root, const char *out)
{
    gseg_train_params p = gseg_train_params_default();
    p.data = root;
    p.output = out;
    p.encoder = "resnet18";
    p.tile = 64;
    p.batch = 4;
    p.steps = 30;
    p.steps_per_epoch = 10;
    p.lr = 2e-3;
    p.loaders = 2;
    p.model_options.threads = 1;
    p.seed = 5;
    return p;
}

/* Warnings, each naming what it is about. */
typedef struct warnings {
    char text[4096];
} warnings;

static void CPL_STDCALL keep_warnings(CPLErr cls, CPLErrorNum no, const char *msg)
{
    (void)no;
    warnings *w = CPLGetErrorHandlerUserData();
    if (cls == CE_Warning && strlen(w->text) + strlen(msg) + 2 < sizeof w->text) {
        strcat(w->text, msg);
        strcat(w->text, "\n");
    }
}

/* PNG masks are found; a mask whose nodata is a class value, a training
 * without validation scenes and a tile larger than every scene are warned
 * about. */
START_TEST(test_png_masks_and_warnings)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/pngmask", dir);
    make_dataset(root, 1, 0, 64);
    ck_assert_int_eq(tu_system("cd %s/train/masks && gdal_translate -q -of PNG scene_0.tif "
                               "scene_0.png && rm scene_0.tif", root), 0);
    gseg__tdata d;
    ck_gseg(gseg__tdata_discover(&d, root, 1));
    ck_assert_int_eq(d.n, 1);
    ck_assert_msg(strstr(d.scenes[0].mask, "scene_0.png"), "%s", d.scenes[0].mask);
    gseg__tdata_free(&d);
    /* nodata 0 on the mask: background is then not labelled */
    ck_assert_int_eq(tu_system("cd %s/train/masks && gdal_translate -q -a_nodata 0 -of PNG "
                               "scene_0.png nd.png && mv nd.png scene_0.png", root), 0);
    warnings w = {""};
    ck_gseg(gseg__tdata_discover(&d, root, 1));
    int nb = 0;
    char **names = NULL;
    CPLPushErrorHandlerEx(keep_warnings, &w);
    ck_gseg(gseg__tdata_prepare(&d, NULL, 2, &nb, &names));
    CPLPopErrorHandler();
    ck_assert_msg(strstr(w.text, "scene_0.png") && strstr(w.text, "nodata value 0"), "%s", w.text);
    for (int i = 0; names && names[i]; i++) free(names[i]);
    free(names);
    gseg__tdata_free(&d);
    ck_assert_int_eq(tu_system("cd %s/train/masks && gdal_translate -q -a_nodata 255 -of PNG "
                               "scene_0.png nd.png && mv nd.png scene_0.png", root), 0);
    gseg_train_params p = small_run(root, path("pngmask.gseg"));
    p.tile = 128;
    p.steps = 1;
    p.steps_per_epoch = 1;
    p.metrics = path("pngmask.jsonl");
    w.text[0] = '\0';
    CPLPushErrorHandlerEx(keep_warnings, &w);
    ck_gseg(gseg_train(&p, NULL, NULL, NULL));
    CPLPopErrorHandler();
    ck_assert_msg(strstr(w.text, "--tile 128 is larger than every scene"), "%s", w.text);
    ck_assert_msg(strstr(w.text, "no validation scenes"), "%s", w.text);
    /* JSON lines stay JSON without a validation score (null, not nan) */
    ck_assert_int_eq(tu_system("/usr/bin/python3 -c \"import json, sys; "
                               "r = [json.loads(l) for l in open(sys.argv[1])]; "
                               "assert len(r) == 1 and r[0]['val_miou'] is None, r\" %s",
                               path("pngmask.jsonl")), 0);
}
END_TEST

START_TEST(test_training_learns_and_is_reproducible)
{
    char root[1024], out1[1024], out2[1024];
    snprintf(root, sizeof root, "%s", path("ds"));
    make_dataset(root, 3, 1, 128);
    snprintf(out1, sizeof out1, "%s", path("a.gseg"));
    /* in folders that do not exist yet: gseg-train creates them */
    snprintf(out2, sizeof out2, "%s", path("new/sub/b.gseg"));
    gseg_train_params p = small_run(root, out1);
    p.metrics = path("a.jsonl");
    gseg_train_stats s1, s2;
    /* the loaders take turns with the trainer here, not in the second run */
    CPLSetConfigOption("GSEG_PIPELINE_TURNS", "YES");
    ck_gseg(gseg_train(&p, NULL, NULL, &s1));
    fprintf(stderr, "train: %ld steps, final loss %.4f, best val mIoU %.4f (epoch %d), %.2f samples/s, "
                    "%.1f %% waiting for data\n",
            s1.steps, s1.final_loss, s1.best_miou, s1.best_epoch, s1.samples_per_s,
            100 * s1.wait_share);
    ck_assert_int_eq(s1.steps, 30);
    ck_assert_int_eq(s1.epochs, 3);
    ck_assert(s1.best_miou > 0 && s1.best_miou <= 1);
    /* Metrics: one JSON line per epoch, the loss falling. */
    FILE *f = fopen(path("a.jsonl"), "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    double first = -1, last = -1;
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        const char *l = strstr(line, "\"train_loss\": ");
        ck_assert_ptr_nonnull(l);
        double v = atof(l + 14);
        if (first < 0) first = v;
        last = v;
        lines++;
    }
    fclose(f);
    ck_assert_int_eq(lines, 3);
    fprintf(stderr, "train: epoch loss %.4f -> %.4f\n", first, last);
    ck_assert_msg(last < first, "loss did not fall: %g -> %g", first, last);
    /* Checkpoints: the best model opens and names its bands; last exists. */
    gseg_model *m = NULL;
    ck_gseg(gseg_model_open(out1, NULL, &m));
    ck_assert_int_eq(gseg_model_nbands(m), 7);
    ck_assert_str_eq(gseg_model_band(m, 1), "green");
    ck_assert_int_eq(gseg_model_tile(m), 64);
    char *js = gseg_model_describe(m, 1);
    ck_assert_ptr_nonnull(strstr(js, "\"val_miou\""));
    gseg_free(js);
    gseg_model_free(m);
    ck_assert_int_eq(tu_system("test -s %s", path("a.last.gseg")), 0);
    /* Same seed, same threads: the same weights, bit for bit, whether the
     * loaders take turns with the trainer or run beside it. */
    p.output = out2;
    p.metrics = path("b.csv");
    CPLSetConfigOption("GSEG_PIPELINE_TURNS", "NO");
    ck_gseg(gseg_train(&p, NULL, NULL, &s2));
    CPLSetConfigOption("GSEG_PIPELINE_TURNS", NULL);
    gseg_model *a = NULL, *b = NULL;
    ck_gseg(gseg_model_open(path("a.last.gseg"), NULL, &a));
    ck_gseg(gseg_model_open(path("new/sub/b.last.gseg"), NULL, &b));
    ck_gseg(gseg_model_export(a, path("a.safetensors")));
    ck_gseg(gseg_model_export(b, path("b.safetensors")));
    ck_assert_int_eq(tu_system("cmp -s %s %s", path("a.safetensors"), path("b.safetensors")), 0);
    gseg_model_free(a);
    gseg_model_free(b);
    /* The command line: usage errors exit 2, a bad dataset 1. */
    const char *tool = tu_build("src/tools/gseg-train");
    ck_assert_int_eq(tu_system("%s --epochs 0 2>/dev/null", tool), 2);
    ck_assert_int_eq(tu_system("%s --bogus 2>/dev/null", tool), 2);
    ck_assert_int_eq(tu_system("%s --data %s/none -o %s -q 2>/dev/null", tu_build("src/tools/gseg-train"),
                               dir, path("x.gseg")), 1);
}
END_TEST

static int stop_at_7(double complete, const char *msg, void *user)
{
    (void)complete;
    int *n = user;
    if (msg && strstr(msg, " step ")) (*n)++;
    return *n < 7;
}

/* A run stopped mid-epoch and resumed ends with the same weights as the
 * run that was never stopped. */
START_TEST(test_resume_continues_the_same_run)
{
    char root[1024], a[1024], b[1024];
    snprintf(root, sizeof root, "%s", path("ds"));
    make_dataset(root, 2, 1, 96);
    snprintf(a, sizeof a, "%s", path("a.gseg"));
    snprintf(b, sizeof b, "%s", path("b.gseg"));
    gseg_train_params p = small_run(root, a);
    p.steps = 20;
    ck_gseg(gseg_train(&p, NULL, NULL, NULL));
    p.output = b;
    int n = 0;
    ck_assert_int_eq(gseg_train(&p, stop_at_7, &n, NULL), GSEG_ERR_CANCELLED);
    ck_assert_int_eq(tu_system("ls %s | grep -q 'b.last.7.state'", dir), 0);
    p.resume = 1;
    /* resuming with options other than the run's is refused, naming them */
    gseg_train_params q = p;
    q.batch = p.batch + 1;
    ck_assert_int_eq(gseg_train(&q, NULL, NULL, NULL), GSEG_ERR_ARG);
    ck_assert_msg(strstr(gseg_last_error(), "--batch"), "%s", gseg_last_error());
    q = p;
    q.encoder = strcmp(p.encoder ? p.encoder : "resnet50", "resnet34") ? "resnet34" : "resnet18";
    ck_assert_int_eq(gseg_train(&q, NULL, NULL, NULL), GSEG_ERR_ARG);
    ck_assert_msg(strstr(gseg_last_error(), "--backbone"), "%s", gseg_last_error());
    q = p;
    q.seed = p.seed + 1;
    ck_assert_int_eq(gseg_train(&q, NULL, NULL, NULL), GSEG_ERR_ARG);
    ck_assert_msg(strstr(gseg_last_error(), "--seed"), "%s", gseg_last_error());
    gseg_train_stats s;
    ck_gseg(gseg_train(&p, NULL, NULL, &s));
    ck_assert_int_eq(s.steps, 20);
    /* one metrics row per epoch, with the same epoch losses as the run
     * that was not stopped (the stopped epoch's row waits for its end) */
    ck_assert_int_eq(tu_system("cut -d, -f1,2,4 %s > %s && cut -d, -f1,2,4 %s | cmp -s - %s",
                               path("a.metrics.csv"), path("a.cols"), path("b.metrics.csv"),
                               path("a.cols")), 0);
    ck_assert_int_eq(tu_system("ls %s | grep -c 'b.last.*state' | grep -qx 1", dir), 0);
    gseg_model *ma = NULL, *mb = NULL;
    ck_gseg(gseg_model_open(path("a.last.gseg"), NULL, &ma));
    ck_gseg(gseg_model_open(path("b.last.gseg"), NULL, &mb));
    ck_gseg(gseg_model_export(ma, path("a.safetensors")));
    ck_gseg(gseg_model_export(mb, path("b.safetensors")));
    ck_assert_int_eq(tu_system("cmp -s %s %s", path("a.safetensors"), path("b.safetensors")), 0);
    gseg_model_free(ma);
    gseg_model_free(mb);
    /* Nothing left to do: --resume is refused clearly; --resume-or-start
     * (a requeued job) finds the run complete, with the same weights. */
    ck_assert_int_eq(gseg_train(&p, NULL, NULL, NULL), GSEG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "nothing to resume"));
    gseg_train_stats again;
    p.resume = 2;
    ck_gseg(gseg_train(&p, NULL, NULL, &again));
    ck_assert_int_eq(again.steps, 20);
    ck_assert_uint_eq(again.digest, s.digest);
}
END_TEST

/* gseg-evaluate's metrics equal scikit-learn's on the same arrays, for the
 * NDSI baseline on the sample test scenes. */
START_TEST(test_evaluate_matches_sklearn)
{
    char data[1024];
    snprintf(data, sizeof data, "%s", tu_src("sample_scenes/dataset/test"));
    ck_assert_int_eq(tu_system("%s --model ndsi:green=green,swir=swir1 --data %s -q --json %s "
                               "--save-masks %s > %s", tu_build("src/tools/gseg-evaluate"), data,
                               path("ev.json"), path("pred"), path("ev.txt")), 0);
    ck_assert_int_eq(tu_system("grep -q 'scene_001.tif' %s", path("ev.txt")), 0);
    ck_assert_int_eq(tu_system("/usr/bin/python3 %s/eval_peer.py %s %s %s/masks",
                               tu_src("tests/peers"), path("ev.json"), path("pred"), data), 0);
    /* --json -: stdout is the JSON alone, the same report */
    ck_assert_int_eq(tu_system("%s --model ndsi:green=green,swir=swir1 --data %s -q --json - "
                               "2>/dev/null | /usr/bin/python3 -c 'import json, sys; "
                               "a = json.load(sys.stdin); b = json.load(open(sys.argv[1])); "
                               "sys.exit(a != b)' %s", tu_build("src/tools/gseg-evaluate"), data,
                               path("ev.json")), 0);
    /* A geographic grid (pixels 0.0004° × 0.0002° at 36°N) and a mask
     * whose nodata is 254 with pixels of 255, both unlabelled: the same
     * comparison with SciPy's distances in metres. */
    ck_assert_int_eq(tu_system("mkdir -p %s/images %s/masks && "
                               "gdalwarp -q -t_srs EPSG:4326 -tr 0.0004 0.0002 -r near "
                               "-dstnodata 0 %s/images/scene_001.tif %s/images/g.tif && "
                               "gdalwarp -q -t_srs EPSG:4326 -tr 0.0004 0.0002 -r near "
                               "-dstnodata 254 %s/masks/scene_001.tif %s/masks/g.tif && "
                               "/usr/bin/python3 -c \"from osgeo import gdal; "
                               "d = gdal.Open('%s/masks/g.tif', 1); a = d.ReadAsArray(); "
                               "a[:40, :] = 255; d.GetRasterBand(1).WriteArray(a)\"",
                               path("geo"), path("geo"), data, path("geo"), data, path("geo"),
                               path("geo")), 0);
    ck_assert_int_eq(tu_system("%s --model ndsi:green=green,swir=swir1 --data %s -q --json %s "
                               "--save-masks %s > /dev/null", tu_build("src/tools/gseg-evaluate"),
                               path("geo"), path("geo.json"), path("geopred")), 0);
    ck_assert_int_eq(tu_system("/usr/bin/python3 %s/eval_peer.py %s %s %s/masks",
                               tu_src("tests/peers"), path("geo.json"), path("geopred"),
                               path("geo")), 0);
    /* A model that does not exist: exit 1, one line. */
    ck_assert_int_eq(tu_system("%s --model %s --data %s -q 2>/dev/null",
                               tu_build("src/tools/gseg-evaluate"), path("none.gseg"), data), 1);
}
END_TEST

/* The one-cycle schedule equals PyTorch's OneCycleLR (lr and beta1) step
 * for step; the cosine one warms up linearly and decays to 0. */
START_TEST(test_schedules_match_pytorch)
{
    const long total = 37;
    gseg__sched oc = {GSEG_SCHEDULE_ONECYCLE, 3e-3, total, 0};
    FILE *f = fopen(path("sched.txt"), "w");
    ck_assert_ptr_nonnull(f);
    for (long k = 0; k < total; k++) {
        double lr, b1;
        gseg__sched_at(&oc, k, &lr, &b1);
        fprintf(f, "%.17g %.17g\n", lr, b1);
    }
    fclose(f);
    ck_assert_int_eq(tu_system(
        "/usr/bin/python3 -c \"\n"
        "import torch\n"
        "p = torch.nn.Parameter(torch.zeros(1))\n"
        "o = torch.optim.AdamW([p], lr=1)\n"
        "s = torch.optim.lr_scheduler.OneCycleLR(o, max_lr=3e-3, total_steps=%ld)\n"
        "rows = [tuple(map(float, l.split())) for l in open('%s')]\n"
        "worst = 0\n"
        "for k, (lr, b1) in enumerate(rows):\n"
        "    g = o.param_groups[0]\n"
        "    worst = max(worst, abs(g['lr'] - lr) / 3e-3, abs(g['betas'][0] - b1))\n"
        "    o.step(); s.step()\n"
        "print('one-cycle vs PyTorch: max rel diff', worst)\n"
        "assert len(rows) == %ld and worst < 1e-12, worst\n\"", total, path("sched.txt"), total), 0);
    gseg__sched cs = {GSEG_SCHEDULE_COSINE, 1e-3, 100, 10};
    double lr, b1;
    gseg__sched_at(&cs, 0, &lr, &b1);
    ck_assert_double_eq_tol(lr, 1e-4, 1e-15);
    ck_assert_double_eq(b1, 0);
    gseg__sched_at(&cs, 9, &lr, &b1);
    ck_assert_double_eq_tol(lr, 1e-3, 1e-15);
    gseg__sched_at(&cs, 10, &lr, &b1);
    ck_assert_double_eq_tol(lr, 1e-3, 1e-15);
    gseg__sched_at(&cs, 55, &lr, &b1);
    ck_assert_double_eq_tol(lr, 0.5e-3, 1e-15);
    gseg__sched_at(&cs, 99, &lr, &b1);
    ck_assert(lr > 0 && lr < 1e-6);
}
END_TEST

/* Gradient accumulation, one-cycle and the precision are applied and
 * recorded in the model's provenance. */
START_TEST(test_accumulation_schedule_precision)
{
    char root[1024], out[1024];
    snprintf(root, sizeof root, "%s", path("ds"));
    make_dataset(root, 2, 1, 96);
    snprintf(out, sizeof out, "%s", path("acc.gseg"));
    gseg_train_params p = small_run(root, out);
    p.batch = 2;
    p.accum = 3;
    p.steps = 8;
    p.steps_per_epoch = 4;
    p.schedule = GSEG_SCHEDULE_ONECYCLE;
    p.model_options.precision = GSEG_PRECISION_AUTO;
    p.resume = 2; /* --resume-or-start: nothing yet, so a fresh start */
    gseg_train_stats s;
    ck_gseg(gseg_train(&p, NULL, NULL, &s));
    ck_assert_int_eq(s.steps, 8);
    ck_assert_int_eq(s.processes, 1);
    /* ... and later the same command continues from the checkpoint. */
    p.steps = 12;
    ck_gseg(gseg_train(&p, NULL, NULL, &s));
    ck_assert_int_eq(s.steps, 12);
    p.resume = 0;
    p.steps = 8;
    gseg_model *m = NULL;
    ck_gseg(gseg_model_open(out, NULL, &m));
    char *js = gseg_model_describe(m, 1);
    ck_assert_ptr_nonnull(strstr(js, "\"accum\": 3"));
    ck_assert_ptr_nonnull(strstr(js, "\"schedule\": \"onecycle\""));
    /* auto: bf16 where the CPU computes it natively, fp32 elsewhere. */
    ck_assert_ptr_nonnull(strstr(js, gseg__cpu_has_bf16() ? "\"precision\": \"bf16\""
                                                          : "\"precision\": \"fp32\""));
    gseg_free(js);
    gseg_model_free(m);
    /* fp16 training is refused (it would need loss scaling); accum 0 too. */
    p.model_options.precision = GSEG_PRECISION_FP16;
    ck_assert_int_eq(gseg_train(&p, NULL, NULL, NULL), GSEG_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(gseg_last_error(), "bf16"));
    p.model_options.precision = GSEG_PRECISION_FP32;
    p.accum = 0;
    ck_assert_int_eq(gseg_train(&p, NULL, NULL, NULL), GSEG_ERR_ARG);
}
END_TEST

/* Two gseg-train processes on localhost (Gloo) end with bit-identical
 * weights; only rank 0 writes files. A rank whose peers never come fails
 * with a clear message. */
START_TEST(test_two_processes_gloo)
{
    char root[1024], tool[1024];
    snprintf(root, sizeof root, "%s", path("ds"));
    make_dataset(root, 2, 1, 96);
    snprintf(tool, sizeof tool, "%s", tu_build("src/tools/gseg-train"));
    /* A port of our own: the test's pid spreads concurrent runs. */
    int port = 20000 + (int)(getpid() % 20000);
    const char *args = "--backbone resnet18 --tile 64 --batch 2 --accum 2 --steps 4 "
                       "--steps-per-epoch 2 --threads 1 --loaders 1 --seed 3";
    if (!gseg__dist_available()) {
        ck_assert_int_eq(tu_system("cd %s && WORLD_SIZE=2 RANK=0 MASTER_PORT=%d %s --data %s -o d0.gseg "
                                   "%s > r0.txt 2>&1", dir, port, tool, root, args), 1);
        ck_assert_int_eq(tu_system("grep -q 'libgloo-dev' %s", path("r0.txt")), 0);
        return;
    }
    int rc = tu_system("cd %s && export MASTER_ADDR=127.0.0.1 MASTER_PORT=%d WORLD_SIZE=2 "
                       "GSEG_DIST_TIMEOUT=120; "
                       "(RANK=1 LOCAL_RANK=1 %s --data %s -o d1.gseg %s > r1.txt 2>&1; echo $? > r1.rc) & "
                       "RANK=0 LOCAL_RANK=0 %s --data %s -o d0.gseg %s > r0.txt 2>&1; echo $? > r0.rc; wait",
                       dir, port, tool, root, args, tool, root, args);
    ck_assert_int_eq(rc, 0);
    tu_system("cat %s/r0.txt %s/r1.txt >&2", dir, dir);
    ck_assert_int_eq(tu_system("grep -qx 0 %s && grep -qx 0 %s", path("r0.rc"), path("r1.rc")), 0);
    /* The same digest on both ranks. */
    ck_assert_int_eq(tu_system("a=$(sed -n 's/.*weights digest \\([0-9a-f]*\\).*/\\1/p' %s/r0.txt); "
                               "b=$(sed -n 's/.*weights digest \\([0-9a-f]*\\).*/\\1/p' %s/r1.txt); "
                               "test -n \"$a\" && test \"$a\" = \"$b\"", dir, dir), 0);
    ck_assert_int_eq(tu_system("grep -q 'joining 2 processes' %s", path("r0.txt")), 0);
    ck_assert_int_eq(tu_system("test -s %s && test -s %s", path("d0.gseg"), path("d0.last.gseg")), 0);
    ck_assert_int_eq(tu_system("ls %s | grep -q '^d1'", dir), 1);
    /* The model records the two processes and the digest is its weights'. */
    gseg_model *m = NULL;
    ck_gseg(gseg_model_open(path("d0.last.gseg"), NULL, &m));
    char *js = gseg_model_describe(m, 1);
    ck_assert_ptr_nonnull(strstr(js, "\"processes\": 2"));
    gseg_free(js);
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)gseg__net_digest(gseg__netmodel_net(m)));
    gseg_model_free(m);
    ck_assert_int_eq(tu_system("grep -q 'digest %s' %s", want, path("r0.txt")), 0);
    /* Alone: rank 1 of 2 waits GSEG_DIST_TIMEOUT, then says why. */
    ck_assert_int_eq(tu_system("cd %s && MASTER_ADDR=127.0.0.1 MASTER_PORT=%d WORLD_SIZE=2 RANK=1 "
                               "GSEG_DIST_TIMEOUT=3 %s --data %s -o d2.gseg %s > r2.txt 2>&1",
                               dir, port + 1, tool, root, args), 1);
    tu_system("cat %s/r2.txt >&2", dir);
    ck_assert_int_eq(tu_system("grep -q 'rank 1 of 2' %s", path("r2.txt")), 0);
    /* In one line: c10d's own log of the failure (with its backtrace) is
     * hushed, whether c10 logs through glog or not. */
    ck_assert_int_eq(tu_system("test \"$(wc -l < %s)\" -eq 1", path("r2.txt")), 0);
    ck_assert_int_eq(tu_system("ls %s | grep -q '^d2'", dir), 1);
    /* Inconsistent environment: a usage error. */
    ck_assert_int_eq(tu_system("cd %s && WORLD_SIZE=2 RANK=5 %s --data %s -o d3.gseg %s 2> r3.txt",
                               dir, tool, root, args), 2);
    ck_assert_int_eq(tu_system("grep -q RANK %s", path("r3.txt")), 0);
}
END_TEST

Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 1200);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_discovery_layouts_and_archives);
    tcase_add_test(tc, test_bad_masks_refused);
    tcase_add_test(tc, test_training_learns_and_is_reproducible);
    tcase_add_test(tc, test_png_masks_and_warnings);
    tcase_add_test(tc, test_evaluate_matches_sklearn);
    tcase_add_test(tc, test_resume_continues_the_same_run);
    tcase_add_test(tc, test_schedules_match_pytorch);
    tcase_add_test(tc, test_accumulation_schedule_precision);
    tcase_add_test(tc, test_two_processes_gloo);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(train_suite()); }
