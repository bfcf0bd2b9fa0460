/*
 * atomic.c — outputs appear complete or not at all.
 *
 * Each output is written under a hidden temporary name in its final folder
 * (same filesystem, so rename() is atomic) and renamed into place when
 * complete. Sidecars that GDAL writes beside a file (name.aux.xml, ENVI .hdr,
 * shapefile parts) share the temporary stem and are renamed with it, the main
 * file last, so the main file appearing means its sidecars are in place.
 *
 * Temporary paths are kept in a fixed table so gseg_remove_temp_files() can
 * unlink them from a signal handler without taking locks or allocating.
 *
 * A process killed with SIGKILL (a Slurm time limit, the OOM killer) cannot
 * clean up. Temporary names hold the host and PID of their writer
 * (".name.gseg-tmp-HOST-PID-N.ext"), so the next writer of the same output,
 * when it commits or discards its own, deletes those of processes of this
 * host that no longer exist; temporary files of live processes and of other
 * hosts (a shared cluster filesystem) are left alone.
 */
#include "internal.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define TMP_SLOTS 64
#define TMP_PATH_MAX 4096

typedef struct tmp_slot {
    atomic_int used;
    char path[TMP_PATH_MAX];
} tmp_slot;

/* Files GDAL may create beside an output while writing it: PAM sidecar,
 * the COG driver's temporary overviews, external overviews and masks. */
static const char *const sidecars[] = {"", ".aux.xml", ".ovr.tmp", ".ovr", ".msk"};
/* Sidecars that replace the output's extension instead: the QGIS style
 * <stem>.qml that gseg_writer writes beside class masks. */
static const char *const stem_sidecars[] = {".qml"};

static tmp_slot slots[TMP_SLOTS];
static atomic_uint tmp_counter;

static void slot_register(const char *path)
{
    if (strncmp(path, "/vsi", 4) == 0) return; /* not a local file */
    if (strlen(path) >= TMP_PATH_MAX) return;
    for (int i = 0; i < TMP_SLOTS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&slots[i].used, &expected, 2)) {
            strcpy(slots[i].path, path);
            atomic_store(&slots[i].used, 1);
            return;
        }
    }
}

static void slot_unregister(const char *path)
{
    for (int i = 0; i < TMP_SLOTS; i++)
        if (atomic_load(&slots[i].used) == 1 && strcmp(slots[i].path, path) == 0) {
            atomic_store(&slots[i].used, 0);
            return;
        }
}

/* Length of the stem of a temporary file name ".name.gseg-tmp-HOST-PID-N"
 * followed by the output's extension, if it has one: up to the first '.'
 * after the marker (HOST has none). Not the last '.' of the name: an output
 * without extension has none after its stem. Signal-safe. */
static size_t tmp_stem_len(const char *base)
{
    const char *m = strstr(base, ".gseg-tmp-");
    const char *e = m ? strchr(m + 10, '.') : strrchr(base, '.');
    return e && e != base ? (size_t)(e - base) : strlen(base);
}

void gseg_remove_temp_files(void)
{
    char buf[TMP_PATH_MAX + 16];
    for (int i = 0; i < TMP_SLOTS; i++) {
        if (atomic_load(&slots[i].used) != 1) continue;
        size_t n = strlen(slots[i].path);
        for (size_t k = 0; k < sizeof sidecars / sizeof *sidecars; k++) {
            size_t m = strlen(sidecars[k]);
            memcpy(buf, slots[i].path, n);
            memcpy(buf + n, sidecars[k], m + 1);
            unlink(buf);
        }
        const char *base = strrchr(slots[i].path, '/');
        base = base ? base + 1 : slots[i].path;
        size_t stem = (size_t)(base - slots[i].path) + tmp_stem_len(base);
        for (size_t k = 0; k < sizeof stem_sidecars / sizeof *stem_sidecars; k++) {
            size_t m = strlen(stem_sidecars[k]);
            memcpy(buf, slots[i].path, stem);
            memcpy(buf + stem, stem_sidecars[k], m + 1);
            unlink(buf);
        }
    }
}

/* Split "dir/name.ext" into its folder ("dir" or "."), its stem and ext
 * (".ext" or ""). Returns 0 if the path is too long. */
static int split_path(const char *path, char *dir, char *stem, char *ext, size_t cap)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    if (strlen(path) >= cap) return 0;
    if (slash) {
        memcpy(dir, path, dlen ? dlen : 1);
        dir[dlen ? dlen : 1] = '\0';
    } else {
        strcpy(dir, ".");
    }
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) dot = base + strlen(base);
    memcpy(stem, base, (size_t)(dot - base));
    stem[dot - base] = '\0';
    strcpy(ext, dot);
    return 1;
}

/* This host's name as it appears in temporary names: up to the first '.',
 * characters other than [A-Za-z0-9_] replaced by '_'. */
static void host_tag(char *out, size_t cap)
{
    char h[256] = "";
    if (gethostname(h, sizeof h - 1) != 0 || !*h) snprintf(h, sizeof h, "localhost");
    size_t i = 0;
    for (; h[i] && h[i] != '.' && i + 1 < cap; i++) {
        char c = h[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
}

char *gseg__tmp_path(const char *final_path)
{
    char dir[TMP_PATH_MAX], stem[TMP_PATH_MAX], ext[TMP_PATH_MAX];
    if (!final_path || !split_path(final_path, dir, stem, ext, TMP_PATH_MAX)) {
        gseg__err(GSEG_ERR_ARG, "output path is too long");
        return NULL;
    }
    unsigned n = atomic_fetch_add(&tmp_counter, 1);
    const char *slash = strrchr(final_path, '/');
    int plen = slash ? (int)(slash - final_path + 1) : 0;
    char host[64];
    host_tag(host, sizeof host);
    char *p = gseg__malloc(strlen(final_path) + 128, 1);
    if (!p) return NULL;
    sprintf(p, "%.*s.%s.gseg-tmp-%s-%ld-%u%s", plen, final_path, stem, host, (long)getpid(), n,
            ext);
    slot_register(p);
    return p;
}

/* 1 if `name`, a temporary file of the same output from this host (it
 * starts with tmp's stem up to "PID-N", pl bytes), belongs to a process that
 * no longer exists. */
static int stale(const char *name, size_t pl)
{
    char *end = NULL;
    long pid = strtol(name + pl, &end, 10);
    if (end == name + pl || *end != '-' || pid <= 0 || pid == (long)getpid()) return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH; /* EPERM: alive, not ours */
}

/* Files in tmp's folder whose name starts with tmp's stem. CSL list; the
 * caller frees with CSLDestroy. The same listing removes the temporary
 * files of the same output left by dead processes of this host (a run
 * killed with SIGKILL), so the next writer of an output commits or
 * discards it without leftovers. */
static char **tmp_siblings(const char *tmp_path, char *dir, char *stem)
{
    char ext[TMP_PATH_MAX];
    if (!split_path(tmp_path, dir, stem, ext, TMP_PATH_MAX)) return NULL;
    const char *base = strrchr(tmp_path, '/') ? strrchr(tmp_path, '/') + 1 : tmp_path;
    size_t stl = tmp_stem_len(base);
    memcpy(stem, base, stl);
    stem[stl] = '\0';
    char **entries = VSIReadDir(dir);
    char **out = NULL;
    size_t sl = strlen(stem);
    /* ".name.gseg-tmp-HOST-PID-N": the prefix before PID */
    size_t pl = sl;
    for (int dashes = 0; pl > 0 && dashes < 2;)
        if (stem[--pl] == '-') dashes++;
    int local = strncmp(tmp_path, "/vsi", 4) != 0 && pl > 0;
    pl++;
    for (char **e = entries; e && *e; e++) {
        if (strncmp(*e, stem, sl) == 0 && ((*e)[sl] == '.' || (*e)[sl] == '\0'))
            out = CSLAddString(out, *e);
        else if (local && strncmp(*e, stem, pl) == 0 && stale(*e, pl))
            VSIUnlink(CPLFormFilename(dir, *e, NULL));
    }
    CSLDestroy(entries);
    return out;
}

gseg_status gseg__commit(const char *tmp_path, const char *final_path)
{
    char dir[TMP_PATH_MAX], stem[TMP_PATH_MAX];
    char fdir[TMP_PATH_MAX], fstem[TMP_PATH_MAX], fext[TMP_PATH_MAX];
    if (!split_path(final_path, fdir, fstem, fext, TMP_PATH_MAX))
        return gseg__err(GSEG_ERR_ARG, "%s: output path is too long", final_path);
    char **sib = tmp_siblings(tmp_path, dir, stem);
    const char *tmp_base = strrchr(tmp_path, '/') ? strrchr(tmp_path, '/') + 1 : tmp_path;
    size_t sl = strlen(stem);
    const char *fslash = strrchr(final_path, '/');
    int plen = fslash ? (int)(fslash - final_path + 1) : 0;
    gseg_status st = GSEG_OK;

    /* A stale sidecar of an older output must not describe the new one. */
    char *stale = CPLStrdup(CPLSPrintf("%s.aux.xml", final_path));
    int new_has_aux = 0;
    for (char **e = sib; e && *e; e++)
        if (strcmp(*e + sl, CPLSPrintf("%s.aux.xml", fext)) == 0) new_has_aux = 1;
    VSIStatBufL sb;
    if (!new_has_aux && VSIStatL(stale, &sb) == 0) VSIUnlink(stale);
    CPLFree(stale);

    for (int pass = 0; pass < 2 && st == GSEG_OK; pass++) {
        for (char **e = sib; e && *e; e++) {
            int is_main = strcmp(*e, tmp_base) == 0;
            if (is_main != (pass == 1)) continue;
            char *from = CPLStrdup(CPLFormFilename(dir, *e, NULL));
            char *to = CPLStrdup(CPLSPrintf("%.*s%s%s", plen, final_path, fstem, *e + sl));
            if (VSIRename(from, to) != 0)
                st = gseg__err(GSEG_ERR_IO, "%s: cannot rename temporary file into place: %s",
                               final_path, strerror(errno));
            CPLFree(from);
            CPLFree(to);
        }
    }
    CSLDestroy(sib);
    if (st != GSEG_OK) gseg__discard(tmp_path);
    slot_unregister(tmp_path);
    return st;
}

void gseg__discard(const char *tmp_path)
{
    if (!tmp_path) return;
    char dir[TMP_PATH_MAX], stem[TMP_PATH_MAX];
    char **sib = tmp_siblings(tmp_path, dir, stem);
    for (char **e = sib; e && *e; e++) VSIUnlink(CPLFormFilename(dir, *e, NULL));
    CSLDestroy(sib);
    VSIUnlink(tmp_path); /* /vsimem/ paths are not listed by VSIReadDir of "." */
    slot_unregister(tmp_path);
}

gseg_status gseg__write_file_atomic(const char *path, const void *data, size_t n)
{
    char *tmp = gseg__tmp_path(path);
    if (!tmp) return gseg__err(GSEG_ERR_ARG, "%s: bad output path", path);
    VSILFILE *f = VSIFOpenL(tmp, "wb");
    gseg_status st = GSEG_OK;
    if (!f) {
        st = gseg__err(GSEG_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    } else {
        int ok = VSIFWriteL(data, 1, n, f) == n;
        ok = VSIFCloseL(f) == 0 && ok;
        if (!ok) st = gseg__err(GSEG_ERR_IO, "%s: write failed (disk full?)", path);
    }
    if (st == GSEG_OK) st = gseg__commit(tmp, path);
    if (st != GSEG_OK) gseg__discard(tmp);
    free(tmp);
    return st;
}

const char *gseg__space_hint(const char *path)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        return " (a file size limit is set: ulimit -f)";
    char *dir = gseg__strdup(path ? CPLGetPath(path) : ".");
    GIntBig free_bytes = dir ? VSIGetDiskFreeSpace(*dir ? dir : ".") : -1;
    free(dir);
    /* "full": less room than a few blocks of a raster */
    return free_bytes >= 0 && free_bytes < (1 << 20) ? " (the disk is full)" : "";
}

gseg_status gseg__make_parent(const char *path)
{
    char *dir = gseg__strdup(CPLGetPath(path));
    if (!dir) return GSEG_ERR_NOMEM;
    gseg_status st = GSEG_OK;
    VSIStatBufL sb;
    size_t n = strlen(dir);
    /* each prefix ending before a '/', then the whole folder */
    for (size_t i = 1; i <= n && st == GSEG_OK; i++) {
        if (i < n && dir[i] != '/') continue;
        char c = dir[i];
        dir[i] = '\0';
        if (VSIStatL(dir, &sb) != 0 && VSIMkdir(dir, 0755) != 0 && VSIStatL(dir, &sb) != 0)
            st = gseg__err(GSEG_ERR_IO, "%s: cannot create the folder %s", path, dir);
        dir[i] = c;
    }
    free(dir);
    return st;
}
