/* check_crash.c — crash safety and resource limits of the tools:
 * gseg-predict and gseg-train killed with SIGKILL at random moments (20
 * times each) never leave an incomplete file under a final name nor a
 * damaged checkpoint, and their reruns (--skip-existing, --resume-or-start)
 * end exactly like uninterrupted runs; a full disk and a file size limit
 * give one clear error and no output; two processes writing the same path
 * leave one complete file; memory stays bounded by the settings under a
 * `ulimit -v` that a whole-scene approach would exceed; failing runs release
 * their files, threads and temporary files. */
#include "testutil.h"

#include <cpl_conv.h>
#include <dirent.h>
#include <gdal.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *dir;
static char predict[1024], train[1024];

static void setup(void)
{
    gseg_init();
    free(dir);
    dir = tu_tmpdir("check_crash");
    snprintf(predict, sizeof predict, "%s", tu_build("src/tools/gseg-predict"));
    snprintf(train, sizeof train, "%s", tu_build("src/tools/gseg-train"));
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
}

static const char *path(const char *name) { return tu_path(dir, name); }

/* Runs `sh -c cmd` and SIGKILLs it after delay_us (unless it ends first);
 * returns 1 if it was killed, 0 if it finished with exit 0. */
static int run_and_kill(const char *cmd, long delay_us)
{
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    long waited = 0;
    int status = 0;
    while (waited < delay_us) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
        usleep(10000);
        waited += 10000;
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? 1 : WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int count_entries(const char *d)
{
    DIR *dp = opendir(d);
    int n = 0;
    if (!dp) return -1;
    for (struct dirent *e; (e = readdir(dp));) n += e->d_name[0] != '.';
    closedir(dp);
    return n;
}

/* A 2600 x 2600 scene: about a second of work for the NDSI model. */
static void make_scene(const char *file, int size)
{
    gseg_synth_params sp = gseg_synth_params_default();
    sp.width = sp.height = size;
    sp.seed = 4;
    ck_gseg(gseg_synth_scene(&sp, file, path("truth.tif"), NULL));
}

START_TEST(test_predict_killed_20_times)
{
    make_scene(path("scene.tif"), 2600);
    const char *args = "--model ndsi:green=green,swir=swir1 -q --tile 256 --vector";
    ck_assert_int_eq(tu_system("'%s' %s '%s' '%s' -o '%s' && gdalinfo -checksum '%s' | "
                               "grep Checksum > '%s'", predict, args, path("ref.gpkg"),
                               path("scene.tif"), path("ref.tif"), path("ref.tif"),
                               path("ref.sum")), 0);
    int killed = 0;
    for (int round = 0; round < 20; round++) {
        tu_system("rm -rf '%s' && mkdir '%s'", path("out"), path("out"));
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "exec '%s' %s '%s' '%s' -o '%s'", predict, args,
                 path("out/m.gpkg"), path("scene.tif"), path("out/m.tif"));
        int r = run_and_kill(cmd, 20000 + rand() % 2500000);
        ck_assert_int_ge(r, 0);
        killed += r;
        /* under the final names: nothing, or complete files */
        if (access(path("out/m.tif"), F_OK) == 0) {
            ck_assert_msg(tu_system("gdalinfo -checksum '%s' | grep Checksum | cmp -s - '%s'",
                                    path("out/m.tif"), path("ref.sum")) == 0,
                          "round %d: an incomplete mask under its final name", round);
            ck_assert_int_eq(tu_system("ogrinfo -q -ro '%s' glaciers >/dev/null", path("out/m.gpkg")),
                             0);
        }
        /* the rerun completes the scene (or skips it when it was done) */
        ck_assert_int_eq(tu_system("'%s' %s '%s' '%s' -o '%s' --skip-existing", predict, args,
                                   path("out/m.gpkg"), path("scene.tif"), path("out/m.tif")), 0);
        ck_assert_int_eq(tu_system("gdalinfo -checksum '%s' | grep Checksum | cmp -s - '%s'",
                                   path("out/m.tif"), path("ref.sum")), 0);
        ck_assert_int_eq(tu_system("test \"$(ogrinfo -q -ro -sql 'SELECT COUNT(*) FROM glaciers' "
                                   "'%s')\" = \"$(ogrinfo -q -ro -sql 'SELECT COUNT(*) FROM "
                                   "glaciers' '%s')\"", path("out/m.gpkg"), path("ref.gpkg")), 0);
        /* and removes the temporary files the killed run could not */
        ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", path("out")), 1);
    }
    fprintf(stderr, "predict: %d of 20 runs killed before they finished\n", killed);
    ck_assert_int_ge(killed, 10);
}
END_TEST

/* Training killed 12 times (with the 20 kills of gseg-predict above, the
 * tools are killed 32 times per run): the checkpoint under its final name always
 * loads, and --resume-or-start ends with the weights of a run never
 * killed (same seed and threads: the same run, exactly). */
START_TEST(test_train_killed_12_times)
{
    if (!gseg_have_network()) return;
    ck_assert_int_eq(tu_system("mkdir -p '%s/ds/train/images' '%s/ds/train/masks' "
                               "'%s/ds/val/images' '%s/ds/val/masks'", dir, dir, dir, dir), 0);
    for (int i = 0; i < 3; i++) {
        gseg_synth_params sp = gseg_synth_params_default();
        sp.width = sp.height = 96;
        sp.seed = (unsigned long)(20 + i);
        char img[1100], mask[1100];
        const char *part = i < 2 ? "train" : "val";
        snprintf(img, sizeof img, "%s/ds/%s/images/s%d.tif", dir, part, i);
        snprintf(mask, sizeof mask, "%s/ds/%s/masks/s%d.tif", dir, part, i);
        ck_gseg(gseg_synth_scene(&sp, img, mask, NULL));
    }
    const char *args = "--backbone resnet18 --tile 64 --batch 2 --steps 12 --steps-per-epoch 3 "
                       "--threads 1 --loaders 1 --seed 3";
    ck_assert_int_eq(tu_system("cd '%s' && '%s' --data ds -o ref.gseg %s > ref.txt", dir, train,
                               args), 0);
    ck_assert_int_eq(tu_system("cd '%s' && sed -n 's/.*weights digest //p' ref.txt > ref.digest && "
                               "test -s ref.digest", dir), 0);
    int killed = 0;
    for (int round = 0; round < 12; round++) {
        tu_system("cd '%s' && rm -f run.* .run.*", dir);
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "cd '%s' && exec '%s' --data ds -o run.gseg %s -q", dir, train,
                 args);
        int r = run_and_kill(cmd, 300000 + rand() % 4000000);
        ck_assert_int_ge(r, 0);
        killed += r;
        /* whatever is under a final name loads */
        for (const char *f = "run.gseg"; f; f = strcmp(f, "run.gseg") ? NULL : "run.last.gseg") {
            if (access(path(f), F_OK) != 0) continue;
            gseg_model *m = NULL;
            ck_assert_msg(gseg_model_open(path(f), NULL, &m) == GSEG_OK,
                          "round %d: %s does not load: %s", round, f, gseg_last_error());
            gseg_model_free(m);
        }
        if (r == 0) continue; /* it finished before the kill */
        ck_assert_int_eq(tu_system("cd '%s' && '%s' --data ds -o run.gseg %s --resume-or-start "
                                   "> run.txt 2>&1", dir, train, args), 0);
        ck_assert_msg(tu_system("cd '%s' && sed -n 's/.*weights digest //p' run.txt | "
                                "cmp -s - ref.digest", dir) == 0,
                      "round %d: the resumed run ends with other weights", round);
    }
    fprintf(stderr, "train: %d of 12 runs killed before they finished\n", killed);
    ck_assert_int_ge(killed, 6);
}
END_TEST

/* A full disk (a 400 kB tmpfs, when this test may mount one) and a file
 * size limit: exit 1, one line saying so, nothing under the final names,
 * no temporary file left. */
START_TEST(test_full_disk_and_file_size_limit)
{
    make_scene(path("scene.tif"), 700);
    const char *args = "--model ndsi:green=green,swir=swir1 -q";
    ck_assert_int_eq(mkdir(path("full"), 0755), 0);
    int mounted = tu_system("mount -t tmpfs -o size=400k tmpfs '%s' 2>/dev/null",
                            path("full")) == 0;
    if (mounted) {
        ck_assert_int_eq(tu_system("'%s' %s '%s' -o '%s' --proba '%s' --vector '%s' 2>'%s'",
                                   predict, args, path("scene.tif"), path("full/m.tif"),
                                   path("full/p.tif"), path("full/v.gpkg"), path("err.txt")), 1);
        ck_assert_int_eq(tu_system("test $(wc -l < '%s') -eq 1 && grep -q 'disk is full\\|disk full' "
                                   "'%s'", path("err.txt"), path("err.txt")), 0);
        ck_assert_int_eq(count_entries(path("full")), 0);
        ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", path("full")), 1);
        ck_assert_int_eq(tu_system("umount '%s'", path("full")), 0);
    } else {
        fprintf(stderr, "full disk: cannot mount a tmpfs here (not root?); file size limit only\n");
    }
    ck_assert_int_eq(tu_system("prlimit --fsize=150000 '%s' %s '%s' -o '%s' --proba '%s' 2>'%s'",
                               predict, args, path("scene.tif"), path("full/m.tif"),
                               path("full/p.tif"), path("err.txt")), 1);
    ck_assert_int_eq(tu_system("test $(wc -l < '%s') -eq 1 && grep -q 'ulimit -f' '%s'",
                               path("err.txt"), path("err.txt")), 0);
    ck_assert_int_eq(count_entries(path("full")), 0);
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", path("full")), 1);
}
END_TEST

/* Two processes writing the same mask at once: the path ends up holding
 * one of the two complete results, never a mixture or a broken file. */
START_TEST(test_two_writers_same_output)
{
    make_scene(path("scene.tif"), 1200);
    for (int t = 0; t < 2; t++)
        ck_assert_int_eq(tu_system("'%s' --model ndsi:green=green,swir=swir1,threshold=0.%d -q "
                                   "'%s' -o '%s' && gdalinfo -checksum '%s' | grep Checksum > '%s'",
                                   predict, 3 + 2 * t, path("scene.tif"), path(t ? "b.tif" : "a.tif"),
                                   path(t ? "b.tif" : "a.tif"), path(t ? "b.sum" : "a.sum")), 0);
    ck_assert_int_ne(tu_system("cmp -s '%s' '%s'", path("a.sum"), path("b.sum")), 0);
    for (int round = 0; round < 5; round++) {
        ck_assert_int_eq(tu_system("rm -f '%s'; for t in 3 5; do '%s' --model "
                                   "ndsi:green=green,swir=swir1,threshold=0.$t -q '%s' -o '%s' & "
                                   "done; wait", path("m.tif"), predict, path("scene.tif"),
                                   path("m.tif")), 0);
        ck_assert_int_eq(tu_system("gdalinfo -checksum '%s' | grep Checksum > '%s' && "
                                   "(cmp -s '%s' '%s' || cmp -s '%s' '%s')", path("m.tif"),
                                   path("m.sum"), path("m.sum"), path("a.sum"), path("m.sum"),
                                   path("b.sum")), 0);
        ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);
    }
}
END_TEST

/* Memory is bounded by the settings, not the scene: a 16384^2 scene maps
 * under a 1.2 GB address-space limit, where reading just the two NDSI bands
 * of the whole scene as floats would take 2.1 GB. */
START_TEST(test_memory_bounded_under_ulimit)
{
#if defined(__SANITIZE_ADDRESS__)
    fprintf(stderr, "ulimit -v: skipped under AddressSanitizer (its shadow memory)\n");
    return;
#endif
    ck_assert_int_eq(tu_system("gdal_create -q -outsize 16384 16384 -bands 6 -ot Byte "
                               "-burn 40 -burn 90 -burn 40 -burn 30 -burn 20 -burn 10 "
                               "-a_srs EPSG:32643 -a_ullr 500000 4000000 991520 3508480 "
                               "-co TILED=YES -co COMPRESS=DEFLATE '%s'", path("big.tif")), 0);
    ck_assert_int_eq(tu_system("prlimit --as=1258291200 '%s' --model ndsi:green=2,swir=5 -q "
                               "'%s' -o '%s' -of GTiff -co TILED=YES -co COMPRESS=DEFLATE",
                               predict, path("big.tif"), path("big_mask.tif")), 0);
    ck_assert_int_eq(tu_system("gdalinfo '%s' | grep -q 'Size is 16384, 16384'",
                               path("big_mask.tif")), 0);
    /* and the limit is real: much less memory fails cleanly (exit 1, one
     * line, no output) — or the libraries do not even load (exit 127) */
    int rc = tu_system("prlimit --as=650000000 '%s' --model ndsi:green=2,swir=5 -q '%s' -o '%s' "
                       "2>'%s'", predict, path("big.tif"), path("small.tif"), path("err.txt"));
    ck_assert_msg(rc == 1 || rc == 127, "exit %d under a 650 MB limit", rc);
    if (rc == 1) ck_assert_int_eq(tu_system("test $(wc -l < '%s') -eq 1", path("err.txt")), 0);
    ck_assert_int_eq(access(path("small.tif"), F_OK), -1);
}
END_TEST

static int count_dir(const char *d)
{
    DIR *dp = opendir(d);
    int n = 0;
    if (!dp) return -1;
    while (readdir(dp)) n++;
    closedir(dp);
    return n;
}

static int cancel_at_half(double complete, const char *msg, void *user)
{
    (void)msg, (void)user;
    return complete < 0.5;
}

/* Failing runs (missing scene, unwritable folder, corrupt data mid-scene,
 * cancelled) release every file, thread and temporary file. */
START_TEST(test_error_paths_release_resources)
{
    make_scene(path("scene.tif"), 600);
    /* a half-downloaded scene: the header is fine, later blocks are gone */
    ck_assert_int_eq(tu_system("cp '%s' '%s' && truncate -s $(($(stat -c %%s '%s') / 2)) '%s'",
                               path("scene.tif"), path("bad.tif"), path("bad.tif"),
                               path("bad.tif")), 0);
    struct {
        const char *scene, *out;
        gseg_progress_fn progress;
    } runs[] = {
        {"missing.tif", "o1.tif", NULL},
        {"scene.tif", "nodir/o2.tif", NULL},
        {"bad.tif", "o3.tif", NULL},
        {"scene.tif", "o4.tif", cancel_at_half},
    };
    /* one warm-up run opens GDAL's lazily created state */
    gseg_predict_params p = gseg_predict_params_default();
    p.model = "ndsi:green=green,swir=swir1";
    p.tile = 128;
    const char *in0[] = {path("scene.tif")};
    p.inputs = in0;
    p.ninputs = 1;
    p.output = path("warm.tif");
    ck_gseg(gseg_predict(&p, NULL, NULL, NULL));
    int fds = count_dir("/proc/self/fd"), threads = count_dir("/proc/self/task");
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
            char scene[1100], out[1100];
            snprintf(scene, sizeof scene, "%s", path(runs[i].scene));
            snprintf(out, sizeof out, "%s", path(runs[i].out));
            const char *in[] = {scene};
            p.inputs = in;
            p.output = out;
            p.readers = 2;
            ck_assert_msg(gseg_predict(&p, runs[i].progress, NULL, NULL) != GSEG_OK,
                          "%s -> %s succeeded", runs[i].scene, runs[i].out);
            ck_assert_int_eq(access(out, F_OK), -1);
        }
    ck_assert_int_eq(count_dir("/proc/self/fd"), fds);
    ck_assert_int_eq(count_dir("/proc/self/task"), threads);
    ck_assert_int_eq(tu_system("ls -a '%s' | grep -q gseg-tmp", dir), 1);
}
END_TEST

int main(void)
{
    const tu_case tests[] = {
        {"predict_kill", test_predict_killed_20_times},
        {"train_kill", test_train_killed_12_times},
        {"full_disk", test_full_disk_and_file_size_limit},
        {"two_writers", test_two_writers_same_output},
        {"ulimit", test_memory_bounded_under_ulimit},
        {"resources", test_error_paths_release_resources},
    };
    return tu_run(tu_suite("crash", tests, sizeof tests / sizeof *tests, 900, setup));
}
