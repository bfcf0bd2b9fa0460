/* check_scenes.c — scene lists of batch runs (files, folders, wildcard
 * patterns on local, /vsizip/ and /vsimem/ folders, list files and stdin,
 * duplicates, errors), output names from templates, and shards (K/N and
 * Slurm job arrays). */
#include "predict.h"
#include "testutil.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_LEN 4200

/* ---- helpers ------------------------------------------------------------ */

/* A 4x4 one-band Byte GeoTIFF (any GDAL path, /vsimem/ too). */
static void make_raster(const char *path)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, 4, 4, 1, GDT_Byte, NULL);
    ck_assert_msg(ds != NULL, "cannot create %s", path);
    GDALClose(ds);
}

/* A file holding text (any VSI path). */
static void make_text(const char *path, const char *text)
{
    VSILFILE *f = VSIFOpenL(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(VSIFWriteL(text, 1, strlen(text), f), strlen(text));
    VSIFCloseL(f);
}

/* Copies a local file into a zip archive entry (/vsizip/ZIP/NAME): the
 * archive is created by the first entry and extended by the next ones. */
static void zip_add(const char *zip, const char *name, const char *src)
{
    GByte *buf = NULL;
    vsi_l_offset size = 0;
    ck_assert(VSIIngestFile(NULL, src, &buf, &size, -1));
    char entry[PATH_LEN];
    snprintf(entry, sizeof entry, "/vsizip/%s/%s", zip, name);
    VSILFILE *f = VSIFOpenL(entry, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", entry);
    ck_assert_uint_eq(VSIFWriteL(buf, 1, (size_t)size, f), (size_t)size);
    VSIFCloseL(f);
    VSIFree(buf);
}

/* "dir/name" in a static ring of buffers (several per expression). */
static const char *P(const char *dir, const char *name)
{
    static char ring[16][PATH_LEN];
    static int next;
    char *b = ring[next++ % 16];
    size_t nd = strlen(dir), nn = strlen(name);
    ck_assert(nd + nn + 2 <= PATH_LEN);
    memcpy(b, dir, nd);
    b[nd] = '/';
    memcpy(b + nd + 1, name, nn + 1);
    return b;
}

/* Asserts that the CSL `got` holds exactly the NULL-terminated expected
 * strings, in order, then frees it. */
static void check_list(char **got, ...)
{
    va_list ap;
    va_start(ap, got);
    int i = 0;
    for (const char *e; (e = va_arg(ap, const char *)) != NULL; i++) {
        ck_assert_msg(i < CSLCount(got), "scene %d missing: expected %s", i, e);
        ck_assert_msg(strcmp(got[i], e) == 0, "scene %d: got %s, expected %s", i, got[i], e);
    }
    va_end(ap);
    ck_assert_msg(CSLCount(got) == i, "%d scenes, expected %d (extra: %s)", CSLCount(got), i,
                  CSLCount(got) > i ? got[i] : "");
    CSLDestroy(got);
}

/* gseg__scenes_expand that must succeed. */
static char **expand(const char *const *in, int n, const char *list)
{
    char **out = NULL;
    ck_gseg(gseg__scenes_expand(in, n, list, &out));
    ck_assert_ptr_nonnull(out);
    return out;
}

/* gseg__scenes_expand that must fail with status st and exactly message
 * msg; *out is NULL afterwards. */
static void expand_fails(const char *const *in, int n, const char *list, gseg_status st,
                         const char *msg)
{
    char *dummy[] = {NULL};
    char **out = dummy;
    gseg_status got = gseg__scenes_expand(in, n, list, &out);
    ck_assert_msg(got == st, "status %s, expected %s (%s)", gseg_status_str(got),
                  gseg_status_str(st), gseg_last_error());
    ck_assert_ptr_null(out);
    ck_assert_str_eq(gseg_last_error(), msg);
}

/* A folder of three rasters among things that are not scenes:
 *   a.tif b.tif c.dat          rasters (c.dat: identified by content)
 *   .hidden.tif, .a.gseg-tmp-1-1.tif   hidden rasters
 *   x.ovr, a.msk               rasters under sidecar names
 *   a.tif.aux.xml notes.txt meta.json sums.md5 out.gpkg out.shp   sidecars
 *   data.bin                   not a raster
 *   sub.tif/inner.tif          a subfolder */
static void make_scene_folder(const char *dir)
{
    make_raster(P(dir, "b.tif"));
    make_raster(P(dir, "c.dat"));
    make_raster(P(dir, "a.tif"));
    make_raster(P(dir, ".hidden.tif"));
    make_raster(P(dir, ".a.gseg-tmp-1-1.tif"));
    make_raster(P(dir, "x.ovr"));
    make_raster(P(dir, "a.msk"));
    make_text(P(dir, "a.tif.aux.xml"), "<PAMDataset></PAMDataset>\n");
    make_text(P(dir, "notes.txt"), "notes\n");
    make_text(P(dir, "meta.json"), "{}\n");
    make_text(P(dir, "sums.md5"), "0  a.tif\n");
    make_text(P(dir, "out.gpkg"), "");
    make_text(P(dir, "out.shp"), "");
    make_text(P(dir, "data.bin"), "not a raster at all\n");
    ck_assert_int_eq(mkdir(P(dir, "sub.tif"), 0755), 0);
    make_raster(P(dir, "sub.tif/inner.tif"));
}

/* ---- files and directories ---------------------------------------------- */

START_TEST(test_files_and_directories)
{
    gseg_init();
    char *dir = tu_tmpdir("scenes_dir");
    make_scene_folder(dir);
    char slashed[PATH_LEN];
    snprintf(slashed, sizeof slashed, "%s/", dir);

    /* a directory: its rasters, sorted; hidden files, sidecars, non-rasters
     * and subfolders skipped */
    const char *in1[] = {dir};
    check_list(expand(in1, 1, NULL), P(dir, "a.tif"), P(dir, "b.tif"), P(dir, "c.dat"), NULL);
    /* the same with a trailing slash */
    const char *in2[] = {slashed};
    check_list(expand(in2, 1, NULL), P(dir, "a.tif"), P(dir, "b.tif"), P(dir, "c.dat"), NULL);

    /* files are scenes whatever their names (sidecar and hidden ones too),
     * in the order given */
    const char *in3[] = {P(dir, "x.ovr"), P(dir, ".hidden.tif"), P(dir, "data.bin")};
    check_list(expand(in3, 3, NULL), P(dir, "x.ovr"), P(dir, ".hidden.tif"), P(dir, "data.bin"),
               NULL);

    /* inputs keep their order; duplicates are dropped, keeping the first */
    const char *in4[] = {P(dir, "b.tif"), dir, slashed, P(dir, "c.dat")};
    check_list(expand(in4, 4, NULL), P(dir, "b.tif"), P(dir, "a.tif"), P(dir, "c.dat"), NULL);
    const char *in5[] = {P(dir, "a.tif"), P(dir, "a.tif")};
    check_list(expand(in5, 2, NULL), P(dir, "a.tif"), NULL);

    /* a subfolder given explicitly is expanded */
    const char *in6[] = {P(dir, "sub.tif")};
    check_list(expand(in6, 1, NULL), P(dir, "sub.tif/inner.tif"), NULL);
    free(dir);
}
END_TEST

START_TEST(test_gdal_connection_string)
{
    /* GDAL paths that are not files, such as subdataset names, are scenes
     * when a raster driver recognises them */
    gseg_init();
    char *dir = tu_tmpdir("scenes_conn");
    make_raster(P(dir, "a.tif"));
    char conn[PATH_LEN];
    snprintf(conn, sizeof conn, "GTIFF_DIR:1:%s", P(dir, "a.tif"));
    const char *in[] = {conn};
    check_list(expand(in, 1, NULL), conn, NULL);
    const char *bad[] = {"NOSUCHDRIVER:x.tif"};
    expand_fails(bad, 1, NULL, GSEG_ERR_IO, "NOSUCHDRIVER:x.tif: no such file or directory");
    free(dir);
}
END_TEST

/* ---- wildcard patterns ---------------------------------------------------- */

START_TEST(test_patterns_local)
{
    gseg_init();
    char *dir = tu_tmpdir("scenes_glob");
    make_scene_folder(dir);
    /* matching files, sorted; hidden files and folders (sub.tif) left out */
    const char *in1[] = {P(dir, "*.tif")};
    check_list(expand(in1, 1, NULL), P(dir, "a.tif"), P(dir, "b.tif"), NULL);
    const char *in2[] = {P(dir, "[ab].tif")};
    check_list(expand(in2, 1, NULL), P(dir, "a.tif"), P(dir, "b.tif"), NULL);
    const char *in3[] = {P(dir, "?.dat")};
    check_list(expand(in3, 1, NULL), P(dir, "c.dat"), NULL);
    /* patterns skip sidecars, unless they name sidecars themselves */
    const char *in4[] = {P(dir, "a.*")};
    check_list(expand(in4, 1, NULL), P(dir, "a.tif"), NULL);
    const char *in4b[] = {P(dir, "a.*.xml")};
    check_list(expand(in4b, 1, NULL), P(dir, "a.tif.aux.xml"), NULL);
    /* a leading dot is matched only explicitly */
    const char *in5[] = {P(dir, ".*.tif")};
    check_list(expand(in5, 1, NULL), P(dir, ".a.gseg-tmp-1-1.tif"), P(dir, ".hidden.tif"),
               NULL);
    /* patterns, files and directories mixed, duplicates dropped */
    const char *in6[] = {P(dir, "b.tif"), P(dir, "*.tif"), dir};
    check_list(expand(in6, 3, NULL), P(dir, "b.tif"), P(dir, "a.tif"), P(dir, "c.dat"), NULL);
    /* a pattern without a folder: the current folder, names as they are */
    ck_assert_int_eq(chdir(dir), 0);
    const char *in7[] = {"*.tif"};
    check_list(expand(in7, 1, NULL), "a.tif", "b.tif", NULL);
    free(dir);
}
END_TEST

START_TEST(test_patterns_vsizip)
{
    gseg_init();
    char *dir = tu_tmpdir("scenes_zip");
    char src[PATH_LEN];
    snprintf(src, sizeof src, "%s/src.tif", dir);
    make_raster(src);
    make_text(P(dir, "notes.txt"), "notes\n");
    char zip[PATH_LEN], root[PATH_LEN + 16];
    snprintf(zip, sizeof zip, "%s/scenes.zip", dir);
    zip_add(zip, "b.tif", src);
    zip_add(zip, "a.tif", src);
    zip_add(zip, ".hidden.tif", src);
    zip_add(zip, "notes.txt", P(dir, "notes.txt"));
    zip_add(zip, "a.tif.aux.xml", P(dir, "notes.txt"));
    zip_add(zip, "sub/c.tif", src);
    zip_add(zip, "sub/d.tif", src);
    snprintf(root, sizeof root, "/vsizip/%s", zip);

    const char *in1[] = {P(root, "*.tif")};
    check_list(expand(in1, 1, NULL), P(root, "a.tif"), P(root, "b.tif"), NULL);
    const char *in2[] = {P(root, "sub/*")};
    check_list(expand(in2, 1, NULL), P(root, "sub/c.tif"), P(root, "sub/d.tif"), NULL);
    const char *in3[] = {P(root, "sub/[d-z].tif")};
    check_list(expand(in3, 1, NULL), P(root, "sub/d.tif"), NULL);
    /* the archive as a folder: its rasters */
    const char *in4[] = {root};
    check_list(expand(in4, 1, NULL), P(root, "a.tif"), P(root, "b.tif"), NULL);
    const char *in5[] = {P(root, "sub")};
    check_list(expand(in5, 1, NULL), P(root, "sub/c.tif"), P(root, "sub/d.tif"), NULL);
    /* a file inside the archive */
    const char *in6[] = {P(root, "sub/c.tif")};
    check_list(expand(in6, 1, NULL), P(root, "sub/c.tif"), NULL);
    /* nothing matching */
    char msg[PATH_LEN + 64];
    const char *in7[] = {P(root, "*.jp2")};
    snprintf(msg, sizeof msg, "%s: matches no file", in7[0]);
    expand_fails(in7, 1, NULL, GSEG_ERR_IO, msg);
    const char *in8[] = {P(root, "nosuch/*.tif")};
    snprintf(msg, sizeof msg, "%s: matches no file", in8[0]);
    expand_fails(in8, 1, NULL, GSEG_ERR_IO, msg);
    free(dir);
}
END_TEST

START_TEST(test_patterns_vsimem)
{
    gseg_init();
    char root[256];
    snprintf(root, sizeof root, "/vsimem/scenes-%ld", (long)getpid());
    ck_assert_int_eq(VSIMkdir(root, 0755), 0);
    make_raster(P(root, "s2.tif"));
    make_raster(P(root, "s1.tif"));
    make_raster(P(root, "s10.tif"));
    make_raster(P(root, "other.tif"));
    make_text(P(root, "s1.tif.aux.xml"), "<PAMDataset></PAMDataset>\n");
    make_text(P(root, "readme.txt"), "hello\n");

    const char *in1[] = {P(root, "s*.tif")};
    check_list(expand(in1, 1, NULL), P(root, "s1.tif"), P(root, "s10.tif"), P(root, "s2.tif"),
               NULL);
    const char *in2[] = {root};
    check_list(expand(in2, 1, NULL), P(root, "other.tif"), P(root, "s1.tif"), P(root, "s10.tif"),
               P(root, "s2.tif"), NULL);
    const char *in3[] = {P(root, "s1.tif")};
    check_list(expand(in3, 1, NULL), P(root, "s1.tif"), NULL);
    char msg[400];
    const char *in4[] = {P(root, "t*.tif")};
    snprintf(msg, sizeof msg, "%s: matches no file", in4[0]);
    expand_fails(in4, 1, NULL, GSEG_ERR_IO, msg);
    VSIRmdirRecursive(root);
}
END_TEST

/* ---- list files ------------------------------------------------------------ */

/* A list with comments, blank and whitespace-only lines, CRLF ends, padded
 * entries, a duplicate, entries that do not exist (taken as they are) and a
 * last line without a newline. */
static void write_list(const char *path, const char *dir)
{
    char text[4 * PATH_LEN];
    snprintf(text, sizeof text,
             "# scenes of the run\n"
             "  %s/b.tif  \r\n"
             "\n"
             "%s/a.tif\n"
             "   # an indented comment\n"
             "\t \r\n"
             "/not/checked/x.tif\n"
             "/not/checked/x.tif\n"
             "%s/*.tif\n"
             "last-line-without-newline",
             dir, dir, dir);
    make_text(path, text);
}

START_TEST(test_list_file)
{
    gseg_init();
    char *dir = tu_tmpdir("scenes_list");
    make_raster(P(dir, "a.tif"));
    make_raster(P(dir, "b.tif"));
    char list[PATH_LEN], pattern[PATH_LEN];
    snprintf(list, sizeof list, "%s/scenes.txt", dir);
    snprintf(pattern, sizeof pattern, "%s/*.tif", dir);
    write_list(list, dir);
    /* the inputs' scenes come first; list entries are not expanded */
    const char *in[] = {P(dir, "a.tif")};
    check_list(expand(in, 1, list), P(dir, "a.tif"), P(dir, "b.tif"), "/not/checked/x.tif",
               pattern, "last-line-without-newline", NULL);
    /* a list alone, here in /vsimem/ */
    char vlist[256];
    snprintf(vlist, sizeof vlist, "/vsimem/scenes-%ld.txt", (long)getpid());
    write_list(vlist, dir);
    check_list(expand(NULL, 0, vlist), P(dir, "b.tif"), P(dir, "a.tif"), "/not/checked/x.tif",
               pattern, "last-line-without-newline", NULL);
    VSIUnlink(vlist);
    /* lists that cannot be read */
    char msg[PATH_LEN + 64];
    const char *missing = P(dir, "missing.txt");
    snprintf(msg, sizeof msg, "%s: cannot read", missing);
    expand_fails(in, 1, missing, GSEG_ERR_IO, msg);
    snprintf(msg, sizeof msg, "%s: cannot read", dir);
    expand_fails(in, 1, dir, GSEG_ERR_IO, msg);
    free(dir);
}
END_TEST

START_TEST(test_list_stdin)
{
    gseg_init();
    char *dir = tu_tmpdir("scenes_stdin");
    make_raster(P(dir, "c.tif"));
    char list[PATH_LEN], pattern[PATH_LEN];
    snprintf(list, sizeof list, "%s/scenes.txt", dir);
    snprintf(pattern, sizeof pattern, "%s/*.tif", dir);
    write_list(list, dir);
    ck_assert_ptr_nonnull(freopen(list, "r", stdin));
    const char *in[] = {P(dir, "c.tif")};
    check_list(expand(in, 1, "-"), P(dir, "c.tif"), P(dir, "b.tif"), P(dir, "a.tif"),
               "/not/checked/x.tif", pattern, "last-line-without-newline", NULL);
    /* an empty stdin gives nothing */
    ck_assert_ptr_nonnull(freopen("/dev/null", "r", stdin));
    expand_fails(NULL, 0, "-", GSEG_ERR_ARG, "no scenes given");
    free(dir);
}
END_TEST

/* ---- errors --------------------------------------------------------------- */

START_TEST(test_missing_and_empty)
{
    gseg_init();
    char *dir = tu_tmpdir("scenes_err");
    make_raster(P(dir, "a.tif"));
    char msg[PATH_LEN + 64];
    /* a missing file, also after good inputs */
    const char *in1[] = {P(dir, "a.tif"), P(dir, "missing.tif")};
    snprintf(msg, sizeof msg, "%s: no such file or directory", in1[1]);
    expand_fails(in1, 2, NULL, GSEG_ERR_IO, msg);
    /* a missing folder */
    const char *in2[] = {P(dir, "nodir/a.tif")};
    snprintf(msg, sizeof msg, "%s: no such file or directory", in2[0]);
    expand_fails(in2, 1, NULL, GSEG_ERR_IO, msg);
    /* patterns matching nothing: no such name, only a folder, a missing
     * folder */
    ck_assert_int_eq(mkdir(P(dir, "x.tif.d"), 0755), 0);
    const char *pats[] = {P(dir, "*.jp2"), P(dir, "x.*.d"), P(dir, "nodir/*.tif")};
    for (int i = 0; i < 3; i++) {
        snprintf(msg, sizeof msg, "%s: matches no file", pats[i]);
        expand_fails(&pats[i], 1, NULL, GSEG_ERR_IO, msg);
    }
    /* nothing at all */
    expand_fails(NULL, 0, NULL, GSEG_ERR_ARG, "no scenes given");
    /* a folder without rasters, a list of comments */
    char *empty = tu_tmpdir("scenes_empty");
    make_text(P(empty, "notes.txt"), "no rasters here\n");
    make_text(P(empty, "a.tif.aux.xml"), "<PAMDataset></PAMDataset>\n");
    const char *in3[] = {empty};
    expand_fails(in3, 1, NULL, GSEG_ERR_ARG, "no scenes given");
    make_text(P(dir, "comments.txt"), "# nothing\n\n   \n");
    expand_fails(NULL, 0, P(dir, "comments.txt"), GSEG_ERR_ARG, "no scenes given");
    free(empty);
    free(dir);
}
END_TEST

/* ---- output names ------------------------------------------------------- */

/* gseg__output_path that must succeed with `expected`. */
static void check_output(const char *tmpl, const char *suffix, const char *scene, int index,
                         const char *expected)
{
    char *out = NULL;
    ck_gseg(gseg__output_path(tmpl, suffix, scene, index, &out));
    ck_assert_msg(out && strcmp(out, expected) == 0, "'%s' for %s: got %s, expected %s",
                  tmpl ? tmpl : "(null)", scene, out, expected);
    free(out);
}

/* gseg__output_path that must fail with GSEG_ERR_ARG and a message that
 * holds `part`. */
static void check_output_fails(const char *tmpl, const char *part)
{
    char *out = (char *)"unchanged";
    gseg_status st = gseg__output_path(tmpl, "_mask.tif", "in/x.tif", 0, &out);
    ck_assert_msg(st == GSEG_ERR_ARG, "'%s': %s", tmpl, gseg_status_str(st));
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(gseg_last_error(), part) && strstr(gseg_last_error(), tmpl),
                  "'%s': message '%s' lacks '%s'", tmpl, gseg_last_error(), part);
    ck_assert_ptr_null(strchr(gseg_last_error(), '\n'));
}

START_TEST(test_output_default)
{
    gseg_init();
    check_output(NULL, "_mask.tif", "in/x.tif", 0, "in/x_mask.tif");
    check_output(NULL, "_outlines.gpkg", "/data/in/x.tif", 5, "/data/in/x_outlines.gpkg");
    check_output(NULL, "_mask.tif", "x.tif", 0, "x_mask.tif");
    check_output(NULL, "_mask.tif", "/x.tif", 0, "/x_mask.tif");
    check_output(NULL, "_mask.tif", "in/x.y.jp2", 0, "in/x.y_mask.tif");
    check_output(NULL, "_mask.tif", "in/README", 0, "in/README_mask.tif");
    /* VSI scenes: the current folder */
    check_output(NULL, "_mask.tif", "/vsizip/in/a.zip/sub/x.tif", 0, "x_mask.tif");
    check_output(NULL, "_mask.tif", "/vsimem/x.tif", 0, "x_mask.tif");
    check_output(NULL, "_mask.tif", "/vsis3/bucket/scenes/x.tif", 0, "x_mask.tif");
    check_output(NULL, NULL, "in/x.tif", 0, "in/x");
    /* GDAL subdataset names: the file's folder and stem, with the subdataset */
    check_output(NULL, "_mask.tif", "NETCDF:\"in/s2.nc\":B03", 0, "in/s2_B03_mask.tif");
    check_output(NULL, "_mask.tif", "HDF5:\"/d/a.h5\"://grp/refl", 0, "/d/a_grp_refl_mask.tif");
    check_output(NULL, "_mask.tif", "GTIFF_DIR:2:in/x.tif", 0, "in/x_2_mask.tif");
    check_output("out/{stem}.tif", "", "NETCDF:\"in/s2.nc\":B03", 0, "out/s2_B03.tif");
    /* a stem far longer than the file name, several times (ASan: no overflow) */
    check_output("{stem}{stem}{stem}", "", "NETCDF:\"s.nc\":surface_reflectance_band_11_swir", 0,
                 "s_surface_reflectance_band_11_swirs_surface_reflectance_band_11_swir"
                 "s_surface_reflectance_band_11_swir");
}
END_TEST

START_TEST(test_output_template)
{
    gseg_init();
    const char *s = "/data/in/LC08_T1.tif";
    check_output("out/{stem}_{index}.{ext}", "_mask.tif", s, 3, "out/LC08_T1_3.tif");
    check_output("{dir}/masks/{name}", "_mask.tif", s, 0, "/data/in/masks/LC08_T1.tif");
    check_output("{dir}/{stem}_mask.tif", "_mask.tif", "x.tif", 0, "./x_mask.tif");
    check_output("m{index}.tif", "_mask.tif", s, 12345, "m12345.tif");
    check_output("{stem}{stem}.{ext}", "", "a.b.jp2", 0, "a.ba.b.jp2");
    check_output("out/{stem}[{ext}]", "", "in/README", 0, "out/README[]");
    /* literal braces */
    check_output("{{{stem}}}.tif", "", s, 0, "{LC08_T1}.tif");
    check_output("a}}b{{c.tif", "", s, 0, "a}b{c.tif");
    check_output("{{index}}_{index}.tif", "", s, 7, "{index}_7.tif");
    /* VSI scenes: {dir} is their folder as written */
    check_output("{dir}/{stem}.tif", "", "/vsizip/a.zip/x.tif", 0, "/vsizip/a.zip/x.tif");
    /* errors name the template and the culprit */
    check_output_fails("out/{bogus}.tif", "{bogus}");
    check_output_fails("out/{}.tif", "{}");
    check_output_fails("out/{Stem}.tif", "{Stem}");
    check_output_fails("out/{stem", "unclosed");
    check_output_fails("out/{{stem}}_{index", "unclosed");
}
END_TEST

START_TEST(test_output_directory)
{
    gseg_init();
    char *dir = tu_tmpdir("scenes_out");
    char slashed[PATH_LEN], expect[PATH_LEN];
    /* an existing directory, with or without a slash */
    snprintf(expect, sizeof expect, "%s/x_mask.tif", dir);
    check_output(dir, "_mask.tif", "in/x.tif", 0, expect);
    snprintf(slashed, sizeof slashed, "%s/", dir);
    check_output(slashed, "_mask.tif", "/vsizip/a.zip/x.tif", 1, expect);
    /* a trailing slash: a directory to be, not yet existing */
    check_output("new/masks/", "_outlines.gpkg", "in/x.tif", 0, "new/masks/x_outlines.gpkg");
    /* otherwise the name itself */
    check_output("out.tif", "_mask.tif", "in/x.tif", 4, "out.tif");
    check_output(P(dir, "out.tif"), "_mask.tif", "in/x.tif", 0, P(dir, "out.tif"));

    /* which outputs give each scene its own name */
    ck_assert_int_eq(gseg__output_is_template(NULL), 1);
    ck_assert_int_eq(gseg__output_is_template("out/{stem}.tif"), 1);
    ck_assert_int_eq(gseg__output_is_template("m{index}.tif"), 1);
    ck_assert_int_eq(gseg__output_is_template("{{{stem}}}.tif"), 1);
    ck_assert_int_eq(gseg__output_is_template("{bogus}.tif"), 1); /* output_path says why */
    ck_assert_int_eq(gseg__output_is_template(dir), 1);
    ck_assert_int_eq(gseg__output_is_template(slashed), 1);
    ck_assert_int_eq(gseg__output_is_template("new/masks/"), 1);
    ck_assert_int_eq(gseg__output_is_template("out.tif"), 0);
    ck_assert_int_eq(gseg__output_is_template(P(dir, "out.tif")), 0);
    ck_assert_int_eq(gseg__output_is_template("a{{b}}.tif"), 0); /* literal braces only */
    check_output("a{{b}}.tif", "_mask.tif", "in/x.tif", 0, "a{b}.tif");
    free(dir);
}
END_TEST

/* ---- shards ---------------------------------------------------------------- */

START_TEST(test_shard_parse)
{
    gseg_init();
    const struct { const char *s; int k, n; } good[] = {
        {"0/1", 0, 1}, {"0/4", 0, 4}, {"3/4", 3, 4}, {"99/100", 99, 100}, {"07/10", 7, 10}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        int k = -1, n = -1;
        ck_gseg(gseg__shard_parse(good[i].s, &k, &n));
        ck_assert_int_eq(k, good[i].k);
        ck_assert_int_eq(n, good[i].n);
    }
    const char *bad[] = {"4/4",  "5/4", "-1/4", "1/0",   "0/0",   "1/-2", "1",
                         "/4",   "1/",  "a/b",  "1/2x",  "1.0/2", " 1/2", "1/ 2",
                         "1//2", "1/2/3", "+1/2", "",    "99999999999/999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int k = -7, n = -7;
        ck_assert_msg(gseg__shard_parse(bad[i], &k, &n) == GSEG_ERR_ARG, "'%s' accepted", bad[i]);
        char msg[200];
        snprintf(msg, sizeof msg, "--shard '%s': expected K/N with 0 <= K < N", bad[i]);
        ck_assert_str_eq(gseg_last_error(), msg);
        ck_assert_int_eq(k, -7);
        ck_assert_int_eq(n, -7);
    }
}
END_TEST

/* Sets the Slurm array variables; NULL unsets one. */
static void slurm_env(const char *id, const char *count, const char *min, const char *step)
{
    const char *names[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT",
                           "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"};
    const char *vals[] = {id, count, min, step};
    for (int i = 0; i < 4; i++) {
        if (vals[i]) ck_assert_int_eq(setenv(names[i], vals[i], 1), 0);
        else ck_assert_int_eq(unsetenv(names[i]), 0);
    }
}

/* shard_from_env must return r, with k and n when r == 1, or a message
 * holding `part` when r == -1. */
static void check_env(int r, int k, int n, const char *part)
{
    int kk = -7, nn = -7;
    int got = gseg__shard_from_env(&kk, &nn);
    ck_assert_msg(got == r, "returned %d, expected %d (%s)", got, r, gseg_last_error());
    if (r == 1) {
        ck_assert_int_eq(kk, k);
        ck_assert_int_eq(nn, n);
    } else {
        ck_assert_int_eq(kk, -7);
        ck_assert_int_eq(nn, -7);
    }
    if (r == -1)
        ck_assert_msg(strstr(gseg_last_error(), part), "message '%s' lacks '%s'",
                      gseg_last_error(), part);
}

START_TEST(test_shard_from_env)
{
    gseg_init();
    /* not an array job */
    slurm_env(NULL, NULL, NULL, NULL);
    check_env(0, 0, 0, NULL);
    slurm_env("3", NULL, NULL, NULL);
    check_env(0, 0, 0, NULL);
    slurm_env(NULL, "4", "0", "1");
    check_env(0, 0, 0, NULL);
    /* --array=0-3: MIN and STEP default to 0 and 1 */
    slurm_env("0", "4", NULL, NULL);
    check_env(1, 0, 4, NULL);
    slurm_env("2", "4", NULL, NULL);
    check_env(1, 2, 4, NULL);
    slurm_env("3", "4", "0", "1");
    check_env(1, 3, 4, NULL);
    /* --array=1-8: offset by MIN */
    slurm_env("1", "8", "1", "1");
    check_env(1, 0, 8, NULL);
    slurm_env("8", "8", "1", "1");
    check_env(1, 7, 8, NULL);
    /* --array=10-25:5 (10 15 20 25) */
    slurm_env("10", "4", "10", "5");
    check_env(1, 0, 4, NULL);
    slurm_env("20", "4", "10", "5");
    check_env(1, 2, 4, NULL);
    slurm_env("25", "4", "10", "5");
    check_env(1, 3, 4, NULL);
    /* --array=0,3,7 (a list): tasks beyond the count, off the step */
    slurm_env("7", "3", "0", "1");
    check_env(-1, 0, 0, "use --shard K/N");
    slurm_env("3", "3", "0", NULL);
    check_env(-1, 0, 0, "use --shard K/N");
    slurm_env("12", "4", "10", "5");
    check_env(-1, 0, 0, "use --shard K/N");
    slurm_env("5", "4", "10", "5");
    check_env(-1, 0, 0, "use --shard K/N");
    slurm_env("1", "4", "0", "0");
    check_env(-1, 0, 0, "use --shard K/N");
    slurm_env("0", "0", NULL, NULL);
    check_env(-1, 0, 0, "use --shard K/N");
    /* values that are not integers */
    slurm_env("x", "4", NULL, NULL);
    check_env(-1, 0, 0, "SLURM_ARRAY_TASK_ID='x' is not an integer");
    slurm_env("1", "4.5", NULL, NULL);
    check_env(-1, 0, 0, "SLURM_ARRAY_TASK_COUNT='4.5' is not an integer");
    slurm_env("1", "4", "zero", NULL);
    check_env(-1, 0, 0, "SLURM_ARRAY_TASK_MIN='zero' is not an integer");
    slurm_env("1", "4", "0", "1x");
    check_env(-1, 0, 0, "SLURM_ARRAY_TASK_STEP='1x' is not an integer");
    slurm_env(NULL, NULL, NULL, NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scenes");
    TCase *tc = tcase_create("scenes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_files_and_directories);
    tcase_add_test(tc, test_gdal_connection_string);
    tcase_add_test(tc, test_patterns_local);
    tcase_add_test(tc, test_patterns_vsizip);
    tcase_add_test(tc, test_patterns_vsimem);
    tcase_add_test(tc, test_list_file);
    tcase_add_test(tc, test_list_stdin);
    tcase_add_test(tc, test_missing_and_empty);
    tcase_add_test(tc, test_output_default);
    tcase_add_test(tc, test_output_template);
    tcase_add_test(tc, test_output_directory);
    tcase_add_test(tc, test_shard_parse);
    tcase_add_test(tc, test_shard_from_env);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
