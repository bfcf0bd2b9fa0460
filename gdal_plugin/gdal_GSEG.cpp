/*
 * gdal_GSEG.cpp — GDAL driver "GSEG": a scene opened through a gseg model, as
 * a virtual raster computed on demand.
 *
 *   gdalinfo GSEG:model=glacier.gseg:scene.tif
 *   gdal_translate GSEG:model=glacier.gseg:tile=256:proba=yes:scene.tif out.tif
 *   gdal_translate GSEG:prediction.json out.tif      (a descriptor, below)
 *
 * Band 1 is the class mask (Byte, colour table, category names, nodata
 * 255); with proba=yes bands 2.. are the model's scores (Float32, one per
 * class for multi-class models). Blocks are read through gseg_predictor,
 * which runs gseg-predict's pipeline, stitcher and classifier one tile row
 * at a time and caches recent rows: the pixels equal gseg-predict's.
 *
 * libgseg is loaded lazily, with dlopen at the first Open of a GSEG
 * dataset, not linked: GDAL 3.6 loads every plugin whenever any GDAL tool
 * or QGIS starts, and libgseg brings libtorch (about 0.4 s and 130 MB per
 * process). Identify needs nothing from it, so gdalinfo on other files
 * pays nothing. The lookup order is $GSEG_LIBRARY, the loader's path
 * (libgseg.so.0), then the build and install folders compiled in.
 *
 * Connection strings: "GSEG:" then options KEY=VALUE each followed by ':',
 * then the scene path (which may itself hold ':', as /vsizip/ paths do).
 * A value holding ':' is written in double quotes:
 *   GSEG:model="ndsi:green=2,swir=5":tile=512:scene.tif
 * Options: model (required unless $GSEG_MODEL), tile, overlap, threshold,
 * precision, device, threads, batch, readers, proba. The same names work
 * as open options (-oo TILE=256); the connection string wins.
 *
 * Descriptor: a JSON file with "type": "gseg-prediction", "model", "scene"
 * (a path, or a list of band files stacked as one scene) and any of the
 * options above; relative paths are relative to the descriptor.
 */
#include "gdal_pam.h"
#include "gdal_priv.h"
#include "cpl_json.h"
#include "cpl_string.h"
#include "ogr_spatialref.h"

#include "gseg.h"

#include <dlfcn.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

/* ---- libgseg, loaded on first use ----------------------------------------- */

struct Api {
    gseg_predict_params (*params_default)();
    gseg_status (*precision_parse)(const char *, gseg_precision *);
    gseg_status (*device_check)(const char *);
    gseg_status (*open)(const gseg_predict_params *, int, gseg_predictor **);
    void (*free_)(gseg_predictor *);
    const gseg_predictor_info *(*info)(const gseg_predictor *);
    gseg_status (*read)(gseg_predictor *, gseg_window, uint8_t *, float *);
    int (*scene_geotransform)(const gseg_scene *, double *);
    const char *(*scene_crs_wkt)(const gseg_scene *);
    const char *(*model_score_name)(const gseg_model *);
    const char *(*model_spec)(const gseg_model *);
    const char *(*last_error)();
    const char *(*version)();
};

Api g_api;
bool g_api_ok = false;
std::once_flag g_api_once;
std::string g_api_error;

template <typename F> bool bind(void *lib, const char *name, F &fn)
{
    fn = reinterpret_cast<F>(dlsym(lib, name));
    if (!fn) g_api_error = std::string("libgseg has no ") + name + " (an older libgseg?)";
    return fn != nullptr;
}

void load_api()
{
    std::vector<std::string> tries;
    if (const char *env = getenv("GSEG_LIBRARY")) tries.push_back(env);
    tries.push_back("libgseg.so.0");
#ifdef GSEG_BUILD_LIBDIR
    tries.push_back(std::string(GSEG_BUILD_LIBDIR) + "/libgseg.so.0");
#endif
#ifdef GSEG_INSTALL_LIBDIR
    tries.push_back(std::string(GSEG_INSTALL_LIBDIR) + "/libgseg.so.0");
#endif
    void *lib = nullptr;
    std::string errs;
    for (const auto &t : tries) {
        lib = dlopen(t.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (lib) break;
        errs = dlerror();
    }
    if (!lib) {
        g_api_error = "cannot load libgseg (" + errs + "); set GSEG_LIBRARY to its path";
        return;
    }
    g_api_ok = bind(lib, "gseg_predict_params_default", g_api.params_default) &&
               bind(lib, "gseg_precision_parse", g_api.precision_parse) &&
               bind(lib, "gseg_device_check", g_api.device_check) &&
               bind(lib, "gseg_predictor_open", g_api.open) &&
               bind(lib, "gseg_predictor_free", g_api.free_) &&
               bind(lib, "gseg_predictor_get_info", g_api.info) &&
               bind(lib, "gseg_predictor_read", g_api.read) &&
               bind(lib, "gseg_scene_geotransform", g_api.scene_geotransform) &&
               bind(lib, "gseg_scene_crs_wkt", g_api.scene_crs_wkt) &&
               bind(lib, "gseg_model_score_name", g_api.model_score_name) &&
               bind(lib, "gseg_model_spec", g_api.model_spec) &&
               bind(lib, "gseg_last_error", g_api.last_error) &&
               bind(lib, "gseg_version", g_api.version);
    /* the library stays loaded for the life of the process */
}

bool api()
{
    std::call_once(g_api_once, load_api);
    if (!g_api_ok) CPLError(CE_Failure, CPLE_AppDefined, "GSEG: %s", g_api_error.c_str());
    return g_api_ok;
}

/* While alive, GDAL errors raised inside libgseg on this thread are not
 * shown: libgseg folds them into its own message (the file, the band and
 * GDAL's reason), which the driver reports once as "GSEG: ...". Warnings
 * are passed on when it ends. */
class QuietErrors {
  public:
    QuietErrors() { CPLPushErrorHandlerEx(on_message, this); }
    ~QuietErrors()
    {
        CPLPopErrorHandler();
        for (const auto &w : warnings_) CPLError(CE_Warning, CPLE_AppDefined, "%s", w.c_str());
    }
    QuietErrors(const QuietErrors &) = delete;
    QuietErrors &operator=(const QuietErrors &) = delete;

  private:
    std::vector<std::string> warnings_;
    static void CPL_STDCALL on_message(CPLErr cls, CPLErrorNum no, const char *msg)
    {
        auto *self = static_cast<QuietErrors *>(CPLGetErrorHandlerUserData());
        if (cls == CE_Debug) CPLDefaultErrorHandler(cls, no, msg);
        else if (cls == CE_Warning) self->warnings_.emplace_back(msg);
    }
};

/* ---- what to open ------------------------------------------------------- */

const char *const kKeys[] = {"model",   "tile",  "overlap", "threshold", "precision",
                             "device",  "threads", "batch", "readers",   "proba"};

bool known_key(const std::string &k)
{
    for (const char *key : kKeys)
        if (EQUAL(k.c_str(), key)) return true;
    return false;
}

struct Spec {
    std::vector<std::string> scene;          /* files stacked as one scene */
    std::vector<std::pair<std::string, std::string>> opts;
    std::string origin;                      /* for messages */

    const char *get(const char *key) const
    {
        for (auto it = opts.rbegin(); it != opts.rend(); ++it)
            if (EQUAL(it->first.c_str(), key)) return it->second.c_str();
        return nullptr;
    }
};

/* "GSEG:k=v:k="v:w":path" -> options and the scene path. */
bool parse_connection(const char *s, Spec &spec)
{
    std::string rest(s + 5);
    for (;;) {
        size_t eq = rest.find('=');
        size_t colon = rest.find(':');
        if (eq == std::string::npos || (colon != std::string::npos && colon < eq)) break;
        std::string key = rest.substr(0, eq);
        if (!known_key(key)) {
            /* name=value followed by ':' is an option, not a scene path */
            bool ident = !key.empty() && colon != std::string::npos &&
                         key.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                               "0123456789_") == std::string::npos;
            if (ident) {
                CPLError(CE_Failure, CPLE_OpenFailed,
                         "GSEG: unknown option '%s' in '%s' (model, tile, overlap, threshold, "
                         "precision, device, threads, batch, readers, proba)",
                         key.c_str(), s);
                return false;
            }
            break;
        }
        std::string value;
        size_t end;
        if (eq + 1 < rest.size() && rest[eq + 1] == '"') {
            size_t close = rest.find('"', eq + 2);
            if (close == std::string::npos) {
                CPLError(CE_Failure, CPLE_OpenFailed, "GSEG: unclosed quote after %s=", key.c_str());
                return false;
            }
            value = rest.substr(eq + 2, close - eq - 2);
            end = close + 1;
        } else {
            end = rest.find(':', eq + 1);
            if (end == std::string::npos) {
                CPLError(CE_Failure, CPLE_OpenFailed,
                         "GSEG: '%s' names no scene: GSEG:model=FILE.gseg:SCENE", s);
                return false;
            }
            value = rest.substr(eq + 1, end - eq - 1);
        }
        if (end >= rest.size() || rest[end] != ':') {
            CPLError(CE_Failure, CPLE_OpenFailed, "GSEG: expected ':' after %s=%s in '%s'",
                     key.c_str(), value.c_str(), s);
            return false;
        }
        spec.opts.emplace_back(key, value);
        rest = rest.substr(end + 1);
    }
    if (rest.empty()) {
        CPLError(CE_Failure, CPLE_OpenFailed,
                 "GSEG: '%s' names no scene: GSEG:model=FILE.gseg:SCENE", s);
        return false;
    }
    spec.scene.push_back(rest);
    spec.origin = s;
    return true;
}

/* Relative paths of a descriptor are relative to its folder. */
std::string relative_to(const std::string &dir, const std::string &p)
{
    if (p.empty() || !CPLIsFilenameRelative(p.c_str()) || STARTS_WITH(p.c_str(), "/vsi") ||
        p.find(':') != std::string::npos)
        return p;
    return CPLFormFilename(dir.c_str(), p.c_str(), nullptr);
}

bool parse_descriptor(const char *path, Spec &spec)
{
    CPLJSONDocument doc;
    bool loaded;
    std::string why;
    {
        CPLErrorStateBackuper keep;
        CPLPushErrorHandler(CPLQuietErrorHandler);
        loaded = doc.Load(path);
        if (!loaded) why = CPLGetLastErrorMsg();
        CPLPopErrorHandler();
    }
    if (!loaded)
        CPLError(CE_Failure, CPLE_OpenFailed, "GSEG: %s: %s", path, why.c_str());
    if (!loaded) return false;
    CPLJSONObject root = doc.GetRoot();
    for (const CPLJSONObject &child : root.GetChildren()) {
        std::string k = child.GetName();
        if (k != "type" && k != "scene" && !known_key(k))
            CPLError(CE_Warning, CPLE_AppDefined, "GSEG: %s: unknown key \"%s\" ignored", path,
                     k.c_str());
    }
    if (root.GetString("type") != "gseg-prediction") {
        CPLError(CE_Failure, CPLE_OpenFailed, "%s: not a gseg-prediction descriptor", path);
        return false;
    }
    std::string dir = CPLGetPath(path);
    CPLJSONObject scene = root.GetObj("scene");
    if (scene.GetType() == CPLJSONObject::Type::Array) {
        CPLJSONArray a = scene.ToArray();
        for (int i = 0; i < a.Size(); i++) spec.scene.push_back(relative_to(dir, a[i].ToString()));
    } else if (scene.GetType() == CPLJSONObject::Type::String) {
        spec.scene.push_back(relative_to(dir, scene.ToString()));
    }
    if (spec.scene.empty() || spec.scene[0].empty()) {
        CPLError(CE_Failure, CPLE_OpenFailed, "%s: \"scene\" must be a path or a list of paths",
                 path);
        return false;
    }
    for (const char *key : kKeys) {
        CPLJSONObject v = root.GetObj(key);
        if (!v.IsValid()) continue;
        std::string val = v.GetType() == CPLJSONObject::Type::Boolean
                              ? std::string(v.ToBool() ? "yes" : "no")
                              : v.ToString();
        if (EQUAL(key, "model")) val = relative_to(dir, val);
        spec.opts.emplace_back(key, val);
    }
    spec.origin = path;
    return true;
}

bool is_descriptor(GDALOpenInfo *oi)
{
    if (!oi->pabyHeader || oi->nHeaderBytes < 10) return false;
    if (!EQUAL(CPLGetExtension(oi->pszFilename), "json")) return false;
    const char *h = reinterpret_cast<const char *>(oi->pabyHeader);
    return strstr(h, "\"gseg-prediction\"") != nullptr;
}

/* ---- the dataset ---------------------------------------------------------- */

constexpr int kBlock = 256;

class GSEGDataset final : public GDALPamDataset {
    friend class GSEGBand;

  public:
    ~GSEGDataset() override
    {
        if (pred_) g_api.free_(pred_);
        if (!gcps_.empty()) GDALDeinitGCPs((int)gcps_.size(), gcps_.data());
    }
    static int Identify(GDALOpenInfo *oi);
    static GDALDataset *Open(GDALOpenInfo *oi);
    CPLErr GetGeoTransform(double *gt) override;
    /* The scene's own GDAL datasets belong to the predictor: GDAL's driver
     * manager, closing every dataset at shutdown, asks this first so they
     * are not closed twice. */
    int CloseDependentDatasets() override
    {
        if (!pred_) return FALSE;
        g_api.free_(pred_);
        pred_ = nullptr;
        return TRUE;
    }
    const OGRSpatialReference *GetSpatialRef() const override
    {
        return srs_.IsEmpty() ? nullptr : &srs_;
    }
    int GetGCPCount() override { return (int)gcps_.size(); }
    const GDAL_GCP *GetGCPs() override { return gcps_.empty() ? nullptr : gcps_.data(); }
    const OGRSpatialReference *GetGCPSpatialRef() const override
    {
        return gcp_srs_.IsEmpty() ? nullptr : &gcp_srs_;
    }

  private:
    gseg_predictor *pred_ = nullptr;
    const gseg_predictor_info *info_ = nullptr;
    double gt_[6] = {0, 1, 0, 0, 0, 1};
    bool has_gt_ = false;
    OGRSpatialReference srs_;
    std::vector<GDAL_GCP> gcps_;
    OGRSpatialReference gcp_srs_;
    std::vector<std::string> scene_;

    void copy_gcps_and_rpc();
};

/* A single-file scene without a geotransform may be georeferenced by GCPs
 * or RPCs: gseg-predict copies them onto its mask (gseg__scene_copy_georef),
 * and so does the virtual raster, read from the scene file itself. */
void GSEGDataset::copy_gcps_and_rpc()
{
    if (has_gt_ || scene_.size() != 1) return;
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDataset *src = GDALDataset::Open(scene_[0].c_str(), GDAL_OF_RASTER);
    CPLPopErrorHandler();
    if (!src) return;
    if (src->GetGCPCount() > 0) {
        GDAL_GCP *dup = GDALDuplicateGCPs(src->GetGCPCount(), src->GetGCPs());
        gcps_.assign(dup, dup + src->GetGCPCount());
        CPLFree(dup); /* the strings now belong to gcps_ */
        if (const OGRSpatialReference *g = src->GetGCPSpatialRef()) gcp_srs_ = *g;
    }
    if (char **rpc = src->GetMetadata("RPC")) SetMetadata(rpc, "RPC");
    GDALClose(src);
}

class GSEGBand final : public GDALPamRasterBand {
  public:
    GSEGBand(GSEGDataset *ds, int band, int score) : score_(score)
    {
        poDS = ds;
        nBand = band;
        nRasterXSize = ds->GetRasterXSize();
        nRasterYSize = ds->GetRasterYSize();
        nBlockXSize = kBlock;
        nBlockYSize = kBlock;
        eDataType = score < 0 ? GDT_Byte : GDT_Float32;
        const gseg_predictor_info *i = ds->info_;
        if (score < 0) {
            SetDescription("glacier mask");
            table_ = std::make_unique<GDALColorTable>();
            for (int c = 0; c < 256; c++) {
                GDALColorEntry e = {0, 0, 0, 0};
                if (c < i->nclasses) {
                    e.c1 = i->class_rgba[c][0];
                    e.c2 = i->class_rgba[c][1];
                    e.c3 = i->class_rgba[c][2];
                    e.c4 = i->class_rgba[c][3];
                }
                table_->SetColorEntry(c, &e);
            }
            for (int c = 0; c < i->nclasses; c++) names_.AddString(i->class_names[c]);
        } else if (i->nscores > 1 && i->nclasses == i->nscores) {
            SetDescription(i->class_names[score]);
        } else {
            SetDescription(g_api.model_score_name(i->model));
        }
    }
    CPLErr IReadBlock(int bx, int by, void *data) override;
    GDALColorTable *GetColorTable() override { return table_.get(); }
    GDALColorInterp GetColorInterpretation() override
    {
        return table_ ? GCI_PaletteIndex : GCI_GrayIndex;
    }
    char **GetCategoryNames() override { return score_ < 0 ? names_.List() : nullptr; }
    double GetNoDataValue(int *ok) override
    {
        if (ok) *ok = TRUE;
        return score_ < 0 ? 255.0 : std::nan("");
    }

  private:
    int score_; /* -1 mask, else score band */
    std::unique_ptr<GDALColorTable> table_;
    CPLStringList names_;
};

CPLErr GSEGBand::IReadBlock(int bx, int by, void *data)
{
    auto *ds = static_cast<GSEGDataset *>(poDS);
    gseg_window win = {bx * kBlock, by * kBlock, kBlock, kBlock};
    if (win.x + win.w > nRasterXSize) win.w = nRasterXSize - win.x;
    if (win.y + win.h > nRasterYSize) win.h = nRasterYSize - win.y;
    size_t n = (size_t)win.w * win.h;
    gseg_status st;
    {
        QuietErrors quiet;
        if (score_ < 0) {
            std::vector<uint8_t> m(n);
            st = g_api.read(ds->pred_, win, m.data(), nullptr);
            auto *out = static_cast<uint8_t *>(data);
            std::fill(out, out + (size_t)kBlock * kBlock, 255);
            for (int y = 0; st == GSEG_OK && y < win.h; y++)
                memcpy(out + (size_t)y * kBlock, m.data() + (size_t)y * win.w, win.w);
        } else {
            std::vector<float> s(n * ds->info_->nscores);
            st = g_api.read(ds->pred_, win, nullptr, s.data());
            auto *out = static_cast<float *>(data);
            std::fill(out, out + (size_t)kBlock * kBlock, std::nanf(""));
            for (int y = 0; st == GSEG_OK && y < win.h; y++)
                memcpy(out + (size_t)y * kBlock, s.data() + score_ * n + (size_t)y * win.w,
                       win.w * sizeof(float));
        }
    }
    if (st != GSEG_OK) {
        CPLError(CE_Failure, CPLE_AppDefined, "GSEG: %s", g_api.last_error());
        return CE_Failure;
    }
    return CE_None;
}

CPLErr GSEGDataset::GetGeoTransform(double *gt)
{
    memcpy(gt, gt_, sizeof gt_);
    return has_gt_ ? CE_None : CE_Failure;
}

int GSEGDataset::Identify(GDALOpenInfo *oi)
{
    return STARTS_WITH_CI(oi->pszFilename, "GSEG:") || is_descriptor(oi);
}

/* Applies an integer option (connection string or -oo). */
bool int_opt(const Spec &s, const char *key, int lo, int hi, int *out)
{
    const char *v = s.get(key);
    if (!v) return true;
    char *end = nullptr;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) {
        CPLError(CE_Failure, CPLE_IllegalArg, "GSEG: %s=%s: expected an integer in [%d, %d]", key,
                 v, lo, hi);
        return false;
    }
    *out = (int)x;
    return true;
}

GDALDataset *GSEGDataset::Open(GDALOpenInfo *oi)
{
    if (!Identify(oi)) return nullptr;
    if (oi->eAccess == GA_Update) {
        CPLError(CE_Failure, CPLE_NotSupported, "GSEG: datasets are read-only");
        return nullptr;
    }
    Spec spec;
    /* open options first: the connection string's own values win */
    for (char **o = oi->papszOpenOptions; o && *o; o++) {
        char *key = nullptr;
        const char *val = CPLParseNameValue(*o, &key);
        if (key && val && known_key(key)) spec.opts.emplace_back(CPLString(key).tolower(), val);
        CPLFree(key);
    }
    bool ok = STARTS_WITH_CI(oi->pszFilename, "GSEG:") ? parse_connection(oi->pszFilename, spec)
                                                        : parse_descriptor(oi->pszFilename, spec);
    if (!ok || !api()) return nullptr;

    gseg_predict_params p = g_api.params_default();
    std::string model = spec.get("model") ? spec.get("model") : "";
    if (model.empty() && getenv("GSEG_MODEL")) model = getenv("GSEG_MODEL");
    if (model.empty()) {
        CPLError(CE_Failure, CPLE_OpenFailed,
                 "GSEG: %s: no model: GSEG:model=FILE.gseg:SCENE (or GSEG_MODEL)",
                 spec.origin.c_str());
        return nullptr;
    }
    p.model = model.c_str();
    double thr = NAN;
    if (const char *t = spec.get("threshold")) {
        char *end = nullptr;
        thr = CPLStrtod(t, &end);
        if (end == t || *end || !std::isfinite(thr)) {
            CPLError(CE_Failure, CPLE_IllegalArg, "GSEG: threshold=%s is not a number", t);
            return nullptr;
        }
    }
    p.threshold = thr;
    if (!int_opt(spec, "tile", 8, 16384, &p.tile) || !int_opt(spec, "overlap", 0, 16383, &p.overlap) ||
        !int_opt(spec, "threads", 0, 1024, &p.model_options.threads) ||
        !int_opt(spec, "batch", 1, 4096, &p.batch) || !int_opt(spec, "readers", 1, 64, &p.readers))
        return nullptr;
    if (const char *pr = spec.get("precision"))
        if (g_api.precision_parse(pr, &p.model_options.precision) != GSEG_OK) {
            CPLError(CE_Failure, CPLE_IllegalArg, "GSEG: %s", g_api.last_error());
            return nullptr;
        }
    std::string device = spec.get("device") ? spec.get("device") : "cpu";
    if (g_api.device_check(device.c_str()) != GSEG_OK) {
        CPLError(CE_Failure, CPLE_IllegalArg, "GSEG: device=%s: %s", device.c_str(),
                 g_api.last_error());
        return nullptr;
    }
    p.model_options.device = device.c_str();
    const char *pv = spec.get("proba");
    static const char *const bools[] = {"yes", "no", "true", "false", "on", "off", "1", "0"};
    bool proba_ok = !pv;
    for (const char *b : bools) proba_ok = proba_ok || EQUAL(pv, b);
    if (!proba_ok) {
        CPLError(CE_Failure, CPLE_IllegalArg, "GSEG: proba=%s: expected yes or no", pv);
        return nullptr;
    }
    bool proba = pv && CPLTestBool(pv);
    p.auto_cache = 0; /* the host application owns GDAL's cache */
    std::vector<const char *> inputs;
    for (const auto &s : spec.scene) inputs.push_back(s.c_str());
    p.inputs = inputs.data();
    p.ninputs = (int)inputs.size();

    auto ds = std::make_unique<GSEGDataset>();
    /* no PAM (.aux.xml): a connection string names no file to keep it beside */
    ds->nPamFlags |= GPF_DISABLED;
    gseg_status st;
    {
        QuietErrors quiet;
        st = g_api.open(&p, proba, &ds->pred_);
    }
    if (st != GSEG_OK) {
        CPLError(CE_Failure, CPLE_OpenFailed, "GSEG: %s", g_api.last_error());
        return nullptr;
    }
    ds->info_ = g_api.info(ds->pred_);
    ds->scene_ = spec.scene;
    ds->nRasterXSize = ds->info_->width;
    ds->nRasterYSize = ds->info_->height;
    ds->has_gt_ = g_api.scene_geotransform(ds->info_->scene, ds->gt_) != 0;
    const char *wkt = g_api.scene_crs_wkt(ds->info_->scene);
    if (wkt && *wkt) {
        ds->srs_.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
        ds->srs_.importFromWkt(wkt);
    }
    ds->copy_gcps_and_rpc();
    ds->SetBand(1, new GSEGBand(ds.get(), 1, -1));
    for (int k = 0; proba && k < ds->info_->nscores; k++)
        ds->SetBand(2 + k, new GSEGBand(ds.get(), 2 + k, k));
    ds->SetMetadataItem("GSEG_VERSION", g_api.version());
    ds->SetMetadataItem("GSEG_MODEL", g_api.model_spec(ds->info_->model));
    ds->SetMetadataItem("GSEG_TILE", CPLSPrintf("%d", ds->info_->tile));
    ds->SetMetadataItem("GSEG_OVERLAP", CPLSPrintf("%d", ds->info_->overlap));
    if (ds->info_->nscores == 1)
        ds->SetMetadataItem("GSEG_THRESHOLD", CPLSPrintf("%.15g", ds->info_->threshold));
    ds->SetDescription(oi->pszFilename);
    ds->SetMetadataItem("INTERLEAVE", "BAND", "IMAGE_STRUCTURE");
    return ds.release();
}

} /* namespace */

extern "C" __attribute__((visibility("default"))) void GDALRegister_GSEG()
{
    if (!GDAL_CHECK_VERSION("GSEG")) return;
    if (GDALGetDriverByName("GSEG") != nullptr) return;
    auto *drv = new GDALDriver();
    drv->SetDescription("GSEG");
    drv->SetMetadataItem(GDAL_DCAP_RASTER, "YES");
    drv->SetMetadataItem(GDAL_DMD_LONGNAME, "gseg glacier segmentation (a scene through a model)");
    drv->SetMetadataItem(GDAL_DMD_HELPTOPIC, "docs/gdal-driver.md (gseg)");
    drv->SetMetadataItem(GDAL_DMD_CONNECTION_PREFIX, "GSEG:");
    drv->SetMetadataItem(GDAL_DMD_EXTENSION, "json");
    drv->SetMetadataItem(GDAL_DCAP_VIRTUALIO, "YES");
    drv->SetMetadataItem(
        GDAL_DMD_OPENOPTIONLIST,
        "<OpenOptionList>"
        "<Option name='MODEL' type='string' description='.gseg model file or ndsi:... spec'/>"
        "<Option name='TILE' type='int' description='tile size (default: as trained)'/>"
        "<Option name='OVERLAP' type='int' description='tile overlap (default: as trained)'/>"
        "<Option name='THRESHOLD' type='float' description='decision threshold'/>"
        "<Option name='PRECISION' type='string-select' default='auto'>"
        "<Value>auto</Value><Value>fp32</Value><Value>bf16</Value><Value>fp16</Value></Option>"
        "<Option name='DEVICE' type='string' default='cpu' description='cpu, cuda, cuda:N'/>"
        "<Option name='THREADS' type='int' default='0' description='network threads (0 = all)'/>"
        "<Option name='BATCH' type='int' description='tiles per network call'/>"
        "<Option name='READERS' type='int' default='2' description='reader threads'/>"
        "<Option name='PROBA' type='boolean' default='NO' description='add score bands'/>"
        "</OpenOptionList>");
    drv->pfnIdentify = GSEGDataset::Identify;
    drv->pfnOpen = GSEGDataset::Open;
    GetGDALDriverManager()->RegisterDriver(drv);
}
