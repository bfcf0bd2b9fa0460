/*
 * scenes.c — the scenes of a batch run and their output names:
 * inputs (files, folders, wildcard patterns, list files) expanded into a
 * sorted, duplicate-free scene list; output paths from name templates; the
 * shard of a run given as K/N or by a Slurm job array.
 *
 * Folders and patterns are read through GDAL's VSI API, so /vsizip/,
 * /vsimem/ and cloud folders behave like local ones.
 */
#include "predict.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_hash_set.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- The growing scene list ------------------------------------------- */

/* A NULL-terminated list owned as a CSL (VSI allocations, so CSLDestroy
 * frees it), with a hash set of its strings to drop duplicates in O(1). */
typedef struct scene_list {
    char **v;
    size_t n, cap;
    CPLHashSet *seen; /* borrows the strings of v */
} scene_list;

/* Appends a copy of path unless it is already in the list. */
static gseg_status list_add(scene_list *l, const char *path)
{
    if (CPLHashSetLookup(l->seen, path)) return GSEG_OK;
    if (l->n + 1 >= l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = VSIRealloc(l->v, cap * sizeof *v);
        if (!v) return gseg__err(GSEG_ERR_NOMEM, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    char *copy = VSIStrdup(path);
    if (!copy) return gseg__err(GSEG_ERR_NOMEM, "out of memory");
    l->v[l->n++] = copy;
    l->v[l->n] = NULL;
    CPLHashSetInsert(l->seen, copy);
    return GSEG_OK;
}

/* ---- Names and files -------------------------------------------------- */

/* Extensions of files that sit beside rasters but are not scenes: GDAL's
 * sidecars (.aux.xml, .ovr, .msk, world files, ENVI headers, RPCs),
 * metadata, checksums, vector outputs and documents. */
static const char *const sidecar_ext[] = {
    "xml", "ovr", "msk", "aux", "rrd", "txt", "json", "geojson", "md5", "sha1", "sha256",
    "gpkg", "shp", "shx", "dbf", "prj", "cpg", "qix", "sbn", "sbx", "kml", "kmz", "gml",
    "gfs", "csv", "hdr", "rpb", "imd", "tfw", "tifw", "wld", "jgw", "pgw", "j2w", "md",
    "html", "log", "yaml", "yml", "lock", "tmp", NULL};

/* The extension of a file name (after its last dot, not a leading one),
 * "" if none. */
static const char *name_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && dot != name ? dot + 1 : "";
}

static int is_sidecar(const char *name)
{
    const char *ext = name_ext(name);
    for (int i = 0; sidecar_ext[i]; i++)
        if (EQUAL(ext, sidecar_ext[i])) return 1;
    return 0;
}

/* 1 if path is a directory, 0 if it is something else, -1 if it does not
 * exist. */
static int path_kind(const char *path)
{
    VSIStatBufL st;
    if (VSIStatExL(path, &st, VSI_STAT_EXISTS_FLAG | VSI_STAT_NATURE_FLAG) != 0) return -1;
    return VSI_ISDIR(st.st_mode) ? 1 : 0;
}

/* Extensions of satellite scene files: a file named so that GDAL does not
 * recognise (a broken download, an empty file) is still listed, so that
 * it fails with its message instead of vanishing from the run. */
static int scene_ext(const char *name)
{
    static const char *const ext[] = {"tif", "tiff", "jp2", "j2k", "vrt", "img", "nc",
                                      "hdf", "h5",  "he5", "ntf", NULL};
    const char *e = name_ext(name);
    for (int i = 0; ext[i]; i++)
        if (EQUAL(e, ext[i])) return 1;
    return 0;
}

/* Whether a file of a folder (or a pattern's match) is a scene: a raster
 * GDAL opens, unless gseg-predict wrote it (its GSEG_VERSION metadata: a
 * mask, probabilities or quicklook of an earlier run, under whatever
 * name); or a file GDAL cannot open but that a pattern named or that is
 * named as a scene, so that it fails by name. One open per file. */
static int lists_as_scene(const char *path, const char *name, int pattern)
{
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    int ours = ds && GDALGetMetadataItem(ds, "GSEG_VERSION", NULL) != NULL;
    if (ds) GDALClose(ds);
    CPLPopErrorHandler();
    CPLErrorReset();
    return ds ? !ours : pattern || scene_ext(name);
}

/* 1 if some raster driver of GDAL recognises path (quietly). */
static int gdal_identifies(const char *path)
{
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDriverH d = GDALIdentifyDriverEx(path, GDAL_OF_RASTER, NULL, NULL);
    CPLPopErrorHandler();
    CPLErrorReset();
    return d != NULL;
}

/* The part of a path after its last '/'. */
static const char *last_component(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int has_wildcard(const char *s) { return strpbrk(s, "*?[") != NULL; }

/* A GDAL connection string such as NETCDF:"f.nc":var or GTIFF_DIR:2:f.tif:
 * a driver prefix of letters, digits and '_' followed by ':'. */
static int has_driver_prefix(const char *s)
{
    const char *p = s;
    while (isalnum((unsigned char)*p) || *p == '_') p++;
    return p > s && *p == ':';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- Folders and patterns --------------------------------------------- */

/* Adds the files of folder `dir` whose names pass: with a pattern, those
 * matching it (fnmatch; a leading dot must be matched explicitly), except
 * sidecars unless the pattern itself names sidecars ("*.ovr"), so that
 * "scene_*" skips scene_1.tif.aux.xml; without, the raster files (no hidden
 * files, no sidecars, identified by GDAL).
 * Each is added as prefix + name, in name order; *matched counts them. */
static gseg_status add_folder(scene_list *l, const char *dir, const char *prefix,
                              const char *pattern, int *matched)
{
    char **names = VSIReadDir(*dir ? dir : ".");
    int nnames = CSLCount(names), nkeep = 0;
    if (nnames > 1) qsort(names, (size_t)nnames, sizeof *names, cmp_str);
    gseg_status st = GSEG_OK;
    for (int i = 0; i < nnames && st == GSEG_OK; i++) {
        const char *name = names[i];
        if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
        if (pattern ? fnmatch(pattern, name, FNM_PERIOD) != 0 ||
                          (is_sidecar(name) && !is_sidecar(pattern))
                    : name[0] == '.' || is_sidecar(name))
            continue;
        char *path = CPLStrdup(CPLSPrintf("%s%s", prefix, name));
        if (path_kind(path) == 0 && lists_as_scene(path, name, pattern != NULL)) {
            nkeep++;
            st = list_add(l, path);
        }
        CPLFree(path);
    }
    CSLDestroy(names);
    if (matched) *matched = nkeep;
    return st;
}

/* A directory: its raster files. */
static gseg_status add_directory(scene_list *l, const char *dir)
{
    size_t len = strlen(dir);
    int slash = len > 0 && dir[len - 1] == '/';
    char *prefix = CPLStrdup(CPLSPrintf("%s%s", dir, slash ? "" : "/"));
    gseg_status st = add_folder(l, dir, prefix, NULL, NULL);
    CPLFree(prefix);
    return st;
}

/* A path whose last component holds a wildcard: the matching files of its
 * folder ("dir/" kept as the prefix of each match; none for "*.tif"). */
static gseg_status add_pattern(scene_list *l, const char *path)
{
    size_t plen = (size_t)(last_component(path) - path);
    char *prefix = CPLStrdup(path);
    prefix[plen] = '\0';
    char *dir = CPLStrdup(prefix);
    if (plen > 1) dir[plen - 1] = '\0'; /* "dir/" -> "dir", "/" stays */
    int matched = 0;
    gseg_status st = add_folder(l, dir, prefix, path + plen, &matched);
    CPLFree(dir);
    CPLFree(prefix);
    if (st == GSEG_OK && matched == 0)
        return gseg__err(GSEG_ERR_IO, "%s: matches no file", path);
    return st;
}

/* One input: a file, a directory, a pattern or a GDAL connection string. */
static gseg_status add_input(scene_list *l, const char *in)
{
    int kind = path_kind(in);
    if (kind == 1) return add_directory(l, in);
    if (kind == 0) return list_add(l, in);
    if (has_wildcard(last_component(in))) return add_pattern(l, in);
    if (has_driver_prefix(in) && gdal_identifies(in)) return list_add(l, in);
    return gseg__err(GSEG_ERR_IO, "%s: no such file or directory", in);
}

/* ---- List files ------------------------------------------------------- */

/* All of stdin into a NUL-terminated VSI buffer, NULL on a read error. */
static char *read_stdin(void)
{
    size_t n = 0, cap = 4096;
    char *buf = VSIMalloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, stdin);
        if (ferror(stdin)) break;
        if (feof(stdin)) {
            buf[n] = '\0';
            return buf;
        }
        if (n + 1 >= cap) {
            char *b = VSIRealloc(buf, cap * 2);
            if (!b) break;
            buf = b;
            cap *= 2;
        }
    }
    VSIFree(buf);
    return NULL;
}

/* The scenes of a list file ("-" = stdin), one a line, added as written. */
static gseg_status add_list(scene_list *l, const char *list)
{
    char *text = NULL;
    if (strcmp(list, "-") == 0) {
        text = read_stdin();
    } else {
        GByte *buf = NULL;
        vsi_l_offset size = 0;
        CPLPushErrorHandler(CPLQuietErrorHandler);
        int ok = VSIIngestFile(NULL, list, &buf, &size, -1);
        CPLPopErrorHandler();
        CPLErrorReset();
        text = ok ? (char *)buf : NULL;
    }
    if (!text) return gseg__err(GSEG_ERR_IO, "%s: cannot read", list);
    gseg_status st = GSEG_OK;
    for (char *line = text; line && st == GSEG_OK;) {
        char *end = strchr(line, '\n'), *next = end ? end + 1 : NULL;
        if (!end) end = line + strlen(line);
        while (line < end && isspace((unsigned char)*line)) line++;
        while (end > line && isspace((unsigned char)end[-1])) end--;
        *end = '\0';
        if (*line && *line != '#') st = list_add(l, line);
        line = next;
    }
    VSIFree(text);
    return st;
}

gseg_status gseg__scenes_expand(const char *const *inputs, int ninputs, const char *list,
                                char ***out)
{
    if (!out) return gseg__err(GSEG_ERR_ARG, "scenes: NULL output");
    *out = NULL;
    scene_list l = {NULL, 0, 0, CPLHashSetNew(CPLHashSetHashStr, CPLHashSetEqualStr, NULL)};
    gseg_status st = GSEG_OK;
    for (int i = 0; i < ninputs && st == GSEG_OK; i++)
        if (inputs[i]) st = add_input(&l, inputs[i]);
    if (st == GSEG_OK && list) st = add_list(&l, list);
    if (st == GSEG_OK && l.n == 0) st = gseg__err(GSEG_ERR_ARG, "no scenes given");
    CPLHashSetDestroy(l.seen);
    if (st != GSEG_OK) {
        CSLDestroy(l.v);
        return st;
    }
    *out = l.v;
    return GSEG_OK;
}

/* ---- Output names ----------------------------------------------------- */

/* The parts of a scene path that templates can name. */
typedef struct scene_parts {
    char *dir;  /* folder, "" if none */
    char *name; /* file name */
    char *stem; /* name without its last extension */
    const char *ext;
} scene_parts;

static void parts_free(scene_parts *p)
{
    CPLFree(p->dir);
    CPLFree(p->name);
    CPLFree(p->stem);
}

/* A GDAL subdataset name — DRIVER:"file":sub (netCDF, HDF5), DRIVER:file:sub,
 * GTIFF_DIR:N:file — split into the file and the subdataset; 0 if the scene
 * is not one (an existing file, a VSI path, a bare "C:" drive). */
static int subdataset_split(const char *scene, char **file, char **sub)
{
    size_t k = strspn(scene, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
    VSIStatBufL sb;
    if (k < 2 || scene[k] != ':' || VSIStatL(scene, &sb) == 0) return 0;
    const char *rest = scene + k + 1;
    char **tok = NULL;
    if (*rest == '"') {
        const char *close = strchr(rest + 1, '"');
        if (!close) return 0;
        *file = CPLStrdup(CPLSPrintf("%.*s", (int)(close - rest - 1), rest + 1));
        *sub = CPLStrdup(close[1] == ':' ? close + 2 : close + 1);
    } else {
        tok = CSLTokenizeString2(rest, ":", CSLT_ALLOWEMPTYTOKENS);
        int f = -1;
        for (int i = 0; tok && tok[i] && f < 0; i++)
            if (VSIStatL(tok[i], &sb) == 0) f = i;
        for (int i = 0; tok && tok[i] && f < 0; i++)
            if (strchr(tok[i], '.')) f = i;
        if (f < 0) {
            CSLDestroy(tok);
            return 0;
        }
        *file = CPLStrdup(tok[f]);
        char *joined = CPLStrdup("");
        for (int i = 0; tok[i]; i++) {
            if (i == f || !*tok[i]) continue;
            char *j = CPLStrdup(CPLSPrintf("%s%s%s", joined, *joined ? "_" : "", tok[i]));
            CPLFree(joined);
            joined = j;
        }
        *sub = joined;
        CSLDestroy(tok);
    }
    /* a name part: "//group/var" -> "group_var" */
    char *w = *sub;
    while (*w == '/') memmove(w, w + 1, strlen(w));
    for (; *w; w++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *w))
            *w = '_';
    return 1;
}

static void parts_split(const char *scene, scene_parts *p)
{
    char *file = NULL, *sub = NULL;
    if (subdataset_split(scene, &file, &sub)) {
        parts_split(file, p);
        if (*sub) {
            char *stem = CPLStrdup(CPLSPrintf("%s_%s", p->stem, sub));
            CPLFree(p->stem);
            p->stem = stem;
        }
        CPLFree(file);
        CPLFree(sub);
        return;
    }
    const char *name = last_component(scene);
    size_t dlen = name == scene ? 0 : name - scene == 1 ? 1 : (size_t)(name - scene) - 1;
    p->dir = CPLStrdup(scene);
    p->dir[dlen] = '\0'; /* "/x.tif" -> "/" */
    p->name = CPLStrdup(name);
    p->ext = name_ext(p->name);
    p->stem = CPLStrdup(p->name);
    if (*p->ext) p->stem[p->ext - 1 - p->name] = '\0';
}

static const char *const kPlaceholders[] = {"stem", "name", "ext", "dir", "index"};
enum { NPLACEHOLDERS = sizeof kPlaceholders / sizeof *kPlaceholders };

/* The text a placeholder {key} (klen bytes) stands for, NULL if unknown.
 * `num` holds the formatted index. */
static const char *placeholder(const char *key, size_t klen, const scene_parts *p,
                               const char *num)
{
    const char *vals[NPLACEHOLDERS] = {p->stem, p->name, p->ext, *p->dir ? p->dir : ".", num};
    for (int i = 0; i < NPLACEHOLDERS; i++)
        if (strlen(kPlaceholders[i]) == klen && strncmp(key, kPlaceholders[i], klen) == 0)
            return vals[i];
    return NULL;
}

/* Fills the placeholders of tmpl into a new CPL string (*out). */
static gseg_status fill_template(const char *tmpl, const scene_parts *p, int index, char **out)
{
    char num[16];
    snprintf(num, sizeof num, "%d", index);
    /* every '{' may stand for the longest value (a subdataset's stem is
     * longer than its file name) */
    size_t longest = 0;
    for (int i = 0; i < NPLACEHOLDERS; i++) {
        size_t l = strlen(placeholder(kPlaceholders[i], strlen(kPlaceholders[i]), p, num));
        if (l > longest) longest = l;
    }
    size_t cap = strlen(tmpl) + 1;
    for (const char *q = tmpl; *q; q++)
        if (*q == '{') cap += longest;
    char *r = CPLMalloc(cap), *w = r;
    for (const char *q = tmpl; *q;) {
        if ((q[0] == '{' && q[1] == '{') || (q[0] == '}' && q[1] == '}')) {
            *w++ = *q;
            q += 2;
        } else if (*q == '{') {
            const char *close = strchr(q, '}');
            const char *v = close ? placeholder(q + 1, (size_t)(close - q - 1), p, num) : NULL;
            if (!v) {
                CPLFree(r);
                if (!close)
                    return gseg__err(GSEG_ERR_ARG, "output template '%s': unclosed brace '%s'",
                                     tmpl, q);
                return gseg__err(GSEG_ERR_ARG,
                                 "output template '%s': unknown placeholder '%.*s' (known: "
                                 "{stem} {name} {ext} {dir} {index}; {{ and }} for braces)",
                                 tmpl, (int)(close - q + 1), q);
            }
            w += sprintf(w, "%s", v);
            q = close + 1;
        } else {
            *w++ = *q++;
        }
    }
    *w = '\0';
    *out = r;
    return GSEG_OK;
}

/* 1 if tmpl holds a '{' that is not part of "{{" (a placeholder, maybe a
 * bad one that fill_template reports). */
static int has_placeholder(const char *tmpl)
{
    for (const char *q = tmpl; *q; q++) {
        if (q[0] == '{' && q[1] == '{') q++;
        else if (q[0] == '{') return 1;
    }
    return 0;
}

static int ends_with_slash(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[n - 1] == '/';
}

int gseg__output_is_template(const char *tmpl)
{
    return !tmpl || has_placeholder(tmpl) || ends_with_slash(tmpl) || path_kind(tmpl) == 1;
}

gseg_status gseg__output_path(const char *tmpl, const char *suffix, const char *scene,
                              int index, char **out)
{
    if (!out || !scene) return gseg__err(GSEG_ERR_ARG, "output path: NULL argument");
    *out = NULL;
    if (!suffix) suffix = "";
    scene_parts p;
    parts_split(scene, &p);
    char *r = NULL; /* CPL string */
    gseg_status st = GSEG_OK;
    if (!tmpl) {
        /* beside the scene; VSI scenes and bare names: the current folder */
        int here = !*p.dir || strncmp(scene, "/vsi", 4) == 0;
        r = CPLStrdup(CPLSPrintf("%s%s%s%s", here ? "" : p.dir,
                                 here || ends_with_slash(p.dir) ? "" : "/", p.stem, suffix));
    } else if (strpbrk(tmpl, "{}")) {
        st = fill_template(tmpl, &p, index, &r);
    } else if (ends_with_slash(tmpl) || path_kind(tmpl) == 1) {
        r = CPLStrdup(CPLSPrintf("%s%s%s%s", tmpl, ends_with_slash(tmpl) ? "" : "/", p.stem,
                                 suffix));
    } else {
        r = CPLStrdup(tmpl);
    }
    parts_free(&p);
    if (st != GSEG_OK) return st;
    *out = gseg__strdup(r);
    CPLFree(r);
    return *out ? GSEG_OK : GSEG_ERR_NOMEM;
}

/* ---- Shards ----------------------------------------------------------- */

/* Parses all of s as a decimal int (optional sign, no spaces). */
static int parse_int(const char *s, int *v)
{
    if (!s || !*s || isspace((unsigned char)*s)) return 0;
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (*end || errno || x < INT_MIN || x > INT_MAX) return 0;
    *v = (int)x;
    return 1;
}

gseg_status gseg__shard_parse(const char *s, int *k, int *n)
{
    const char *slash = s ? strchr(s, '/') : NULL;
    int kk = -1, nn = 0;
    if (slash && isdigit((unsigned char)s[0]) && isdigit((unsigned char)slash[1])) {
        char *ks = CPLStrdup(s);
        ks[slash - s] = '\0';
        int ok = parse_int(ks, &kk) && parse_int(slash + 1, &nn);
        CPLFree(ks);
        if (!ok) kk = -1;
    }
    if (nn < 1 || kk < 0 || kk >= nn)
        return gseg__err(GSEG_ERR_ARG, "--shard '%s': expected K/N with 0 <= K < N",
                         s ? s : "");
    *k = kk;
    *n = nn;
    return GSEG_OK;
}

/* A Slurm variable as an int: 0 if unset or empty (*v = dflt), 1 if set,
 * -1 with the error message set if it is not an integer. */
static int env_int(const char *name, int dflt, int *v)
{
    const char *s = getenv(name);
    *v = dflt;
    if (!s || !*s) return 0;
    if (parse_int(s, v)) return 1;
    gseg__err(GSEG_ERR_ARG, "%s='%s' is not an integer", name, s);
    return -1;
}

int gseg__shard_from_env(int *k, int *n)
{
    const char *sid = getenv("SLURM_ARRAY_TASK_ID"), *scount = getenv("SLURM_ARRAY_TASK_COUNT");
    if (!sid || !*sid || !scount || !*scount) return 0; /* not an array job */
    int id, count, min, step;
    if (env_int("SLURM_ARRAY_TASK_ID", 0, &id) < 0 ||
        env_int("SLURM_ARRAY_TASK_COUNT", 0, &count) < 0 ||
        env_int("SLURM_ARRAY_TASK_MIN", 0, &min) < 0 ||
        env_int("SLURM_ARRAY_TASK_STEP", 1, &step) < 0)
        return -1;
    long long off = (long long)id - min;
    if (count < 1 || step < 1 || off < 0 || off % step != 0 || off / step >= count) {
        gseg__err(GSEG_ERR_ARG,
                  "Slurm array task %d (min %d, step %d, count %d) is not one of K/N shards of "
                  "a range array (e.g. --array=0,3,7 lists): use --shard K/N",
                  id, min, step, count);
        return -1;
    }
    *k = (int)(off / step);
    *n = count;
    return 1;
}
