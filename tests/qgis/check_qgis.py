#!/usr/bin/python3
"""check_qgis.py — gseg's outputs and GDAL driver in a real, headless QGIS.

Run by `meson test check_qgis` (tests/meson.build) with Debian's
python3-qgis:

    check_qgis.py --predict BUILD/src/tools/gseg-predict --scene SCENE.tif

(or $GSEG_PREDICT and $GSEG_SCENE); GSEG_KEEP_TMP=1 keeps the temporary
folder (mask, outlines, the rendered map).

1. gseg-predict (NDSI model) maps the scene into a temporary folder: a COG
   mask (with its QGIS style mask.qml beside it) and GeoPackage outlines
   (with their default style in the layer_styles table).
2. QGIS loads the COG mask, the outlines and the scene as a GSEG: virtual
   raster through the gdal_GSEG plugin (GDAL_DRIVER_PATH); each must be
   valid, in the scene's CRS and on the scene's extent (the outlines inside
   it). The default styles must have been applied: the outlines categorized
   on class_name in the glacier colour, the mask paletted with a
   transparent background. The virtual raster's pixels must equal the
   mask's, and the two render alike.
3. A map of the three layers over the scene (bands 3/2/1 as RGB) is
   rendered to PNG and checked not to be blank (many colours, the glacier
   colour present). With GSEG_UPDATE_SCREENSHOT=1 it is also saved as
   docs/images/qgis_scene_001.png, the screenshot of the documentation.

Headless and isolated: Qt's offscreen platform, a temporary QGIS profile
(QGIS_CUSTOM_CONFIG_PATH), XDG_RUNTIME_DIR and XDG cache/config/data
folders; nothing of the user's QGIS is read or written. Exit status 0 when
every check passes, 1 otherwise (the failed check, or the missing
python3-qgis, says what).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

GLACIER_RGB = (0, 170, 255)
MODEL = "ndsi:green=green,swir=swir1"
SIZE = 800


class CheckFailed(Exception):
    pass


def check(cond, what, detail=""):
    """Records one check: prints it, raises CheckFailed when it fails."""
    if not cond:
        raise CheckFailed(what + (": " + detail if detail else ""))
    print("ok  " + what, flush=True)


def scene_reference(path):
    """CRS (authid), extent (xmin, ymin, xmax, ymax) and pixel size of the
    scene, read with GDAL's own Python bindings."""
    from osgeo import gdal, osr
    gdal.UseExceptions()
    ds = gdal.Open(path)
    gt = ds.GetGeoTransform()
    w, h = ds.RasterXSize, ds.RasterYSize
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    srs.AutoIdentifyEPSG()
    authid = "%s:%s" % (srs.GetAuthorityName(None), srs.GetAuthorityCode(None))
    xs = [gt[0], gt[0] + w * gt[1]]
    ys = [gt[3], gt[3] + h * gt[5]]
    extent = (min(xs), min(ys), max(xs), max(ys))
    return authid, extent, (abs(gt[1]), abs(gt[5])), ds.RasterCount


def image_array(img):
    """A QImage as an H x W x 4 uint8 RGBA numpy array."""
    import numpy as np
    from qgis.PyQt.QtGui import QImage
    img = img.convertToFormat(QImage.Format_RGBA8888)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    rows = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())
    return rows[:, :img.width() * 4].reshape(img.height(), img.width(), 4).copy()


def render(layers, crs, extent, size, background):
    """Renders layers (top first) with QGIS's parallel renderer; returns
    the QImage."""
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(crs)
    settings.setOutputSize(QSize(size, size))
    settings.setExtent(extent)
    settings.setBackgroundColor(background)
    settings.setOutputDpi(96)
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    errors = ["%s: %s" % (e.layerID, e.message) for e in job.errors()]
    check(not errors, "rendered %d layer(s) without errors" % len(layers), "; ".join(errors))
    return job.renderedImage()


def run_checks(args, tmp, keep):
    from qgis.core import (QgsCategorizedSymbolRenderer, QgsContrastEnhancement,
                           QgsMultiBandColorRenderer, QgsPalettedRasterRenderer,
                           QgsRasterLayer, QgsRectangle, QgsVectorLayer)
    from qgis.PyQt.QtGui import QColor
    import numpy as np

    # QGIS writes statistics (.aux.xml) beside rasters it renders: work on a
    # copy, never beside the source tree's sample scene.
    copy = os.path.join(tmp, os.path.basename(args.scene))
    shutil.copyfile(args.scene, copy)
    args.scene = copy
    authid, ext, px, nbands = scene_reference(args.scene)
    tol = 1e-6 * min(px)
    print("scene %s: %s, extent %.3f %.3f %.3f %.3f, pixel %g x %g"
          % (os.path.basename(args.scene), authid, *ext, *px), flush=True)

    # 1. gseg-predict: COG mask + GeoPackage outlines.
    mask = os.path.join(tmp, "mask.tif")
    gpkg = os.path.join(tmp, "outlines.gpkg")
    t0 = time.time()
    proc = subprocess.run([args.predict, "--model", MODEL, args.scene, "-o", mask,
                           "--vector", gpkg, "-q"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(proc.returncode == 0, "gseg-predict wrote the mask and outlines (%.1f s)"
          % (time.time() - t0), "exit %d: %s" % (proc.returncode, proc.stdout.strip()))
    qml = os.path.join(tmp, "mask.qml")
    check(os.path.isfile(mask) and os.path.isfile(gpkg) and os.path.isfile(qml),
          "mask.tif, mask.qml and outlines.gpkg exist", " ".join(sorted(os.listdir(tmp))))

    # 2. The layers.
    def same_extent(layer_ext):
        return (abs(layer_ext.xMinimum() - ext[0]) <= tol and abs(layer_ext.yMinimum() - ext[1]) <= tol
                and abs(layer_ext.xMaximum() - ext[2]) <= tol and abs(layer_ext.yMaximum() - ext[3]) <= tol)

    layers = {}
    layers["mask"] = QgsRasterLayer(mask, "glacier mask", "gdal")
    layers["outlines"] = QgsVectorLayer(gpkg + "|layername=glaciers", "glacier outlines", "ogr")
    gseg_uri = 'GSEG:model="%s":%s' % (MODEL, args.scene)
    layers["gseg"] = QgsRasterLayer(gseg_uri, "gseg (virtual)", "gdal")
    layers["scene"] = QgsRasterLayer(args.scene, "scene", "gdal")
    for name, layer in layers.items():
        hint = " (is gdal_GSEG.so in GDAL_DRIVER_PATH?)" if name == "gseg" else ""
        check(layer.isValid(), "%s layer is valid" % name, layer.source() + hint)
        check(layer.crs().authid() == authid, "%s layer CRS is %s" % (name, authid),
              layer.crs().authid() or "(none)")
    for name in ("mask", "gseg", "scene"):
        e = layers[name].extent()
        check(same_extent(e), "%s layer extent is the scene's (within %g)" % (name, tol),
              e.toString())
    check(layers["gseg"].dataProvider().name() == "gdal" and layers["gseg"].bandCount() >= 1,
          "GSEG: dataset opened by QGIS's GDAL provider through the plugin")
    oe = layers["outlines"].extent()
    check(layers["outlines"].featureCount() > 0 and not oe.isEmpty()
          and oe.xMinimum() >= ext[0] - tol and oe.yMinimum() >= ext[1] - tol
          and oe.xMaximum() <= ext[2] + tol and oe.yMaximum() <= ext[3] + tol,
          "outlines: %d glacier polygon(s) inside the scene's extent"
          % layers["outlines"].featureCount(), oe.toString())

    # Default styles.
    r = layers["outlines"].renderer()
    check(isinstance(r, QgsCategorizedSymbolRenderer),
          "outlines: default style from layer_styles applied (categorized renderer)",
          type(r).__name__)
    check(r.classAttribute() in ("class_name", "class"),
          "outlines: categorized on %s" % r.classAttribute())
    cats = {c.value(): c for c in r.categories()}
    check("glacier" in cats or 1 in cats, "outlines: a category for glacier", str(list(cats)))
    sym = (cats.get("glacier") or cats.get(1)).symbol()
    fill = sym.color()
    check((fill.red(), fill.green(), fill.blue()) == GLACIER_RGB and 0 < fill.alpha() < 255,
          "outlines: glacier fill is %s, semi-transparent (alpha %d)" % (str(GLACIER_RGB), fill.alpha()),
          str(fill.getRgb()))
    stroke = sym.symbolLayer(0).strokeColor()
    check(stroke.alpha() == 255, "outlines: solid outline %s" % str(stroke.getRgb()[:3]))
    check(not layers["outlines"].labelsEnabled(), "outlines: labels off")

    r = layers["mask"].renderer()
    check(isinstance(r, QgsPalettedRasterRenderer),
          "mask: default style mask.qml applied (paletted renderer)", type(r).__name__)
    classes = {int(c.value): c for c in r.classes()}
    check(0 in classes and classes[0].color.alpha() == 0, "mask: background (class 0) transparent",
          str({k: c.color.getRgb() for k, c in classes.items()}))
    g = classes.get(1)
    check(g is not None and (g.color.red(), g.color.green(), g.color.blue()) == GLACIER_RGB
          and g.color.alpha() == 255 and g.label == "glacier",
          "mask: class 1 'glacier' in %s" % str(GLACIER_RGB))
    prov = layers["mask"].dataProvider()
    check(prov.sourceHasNoDataValue(1) and prov.sourceNoDataValue(1) == 255,
          "mask: nodata 255 (transparent)")

    # The virtual raster computes the same mask as gseg-predict wrote.
    w, h = layers["mask"].width(), layers["mask"].height()
    full = QgsRectangle(*ext)
    a = layers["mask"].dataProvider().block(1, full, w, h)
    b = layers["gseg"].dataProvider().block(1, full, w, h)
    va = np.frombuffer(bytes(a.data()), np.uint8)
    vb = np.frombuffer(bytes(b.data()), np.uint8)
    check(va.size == w * h and va.size == vb.size and np.array_equal(va, vb),
          "GSEG: virtual raster pixels equal the COG mask's (%d x %d)" % (w, h),
          "%d of %d differ" % (int(np.count_nonzero(va != vb)), va.size) if va.size == vb.size else "")
    nglacier = int(np.count_nonzero(va == 1))
    check(nglacier > 0, "mask: %d glacier pixels" % nglacier)

    # 3. Rendering. Mask alone on a transparent canvas: background
    # transparent, glaciers in their colour; the virtual raster alike.
    clear = QColor(0, 0, 0, 0)
    crs = layers["scene"].crs()
    im_mask = image_array(render([layers["mask"]], crs, full, 256, clear))
    im_gseg = image_array(render([layers["gseg"]], crs, full, 256, clear))
    transparent = np.count_nonzero(im_mask[..., 3] == 0)
    check(transparent > 0, "mask rendered alone: background transparent (%d px)" % transparent)
    blue = np.all(np.abs(im_mask[..., :3].astype(int) - GLACIER_RGB) <= 2, axis=2) & (im_mask[..., 3] == 255)
    check(np.count_nonzero(blue) > 0, "mask rendered alone: glacier colour present (%d px)"
          % np.count_nonzero(blue))
    diff = np.count_nonzero(np.any(im_mask != im_gseg, axis=2))
    check(diff <= im_mask.shape[0] * im_mask.shape[1] // 1000,
          "GSEG layer renders like the mask (%d px differ)" % diff)

    # The map: outlines over the mask over the virtual raster over the
    # scene as true colour (red, green, blue = bands 3, 2, 1).
    scene = layers["scene"]
    if nbands >= 3:
        rgb = QgsMultiBandColorRenderer(scene.dataProvider(), 3, 2, 1)
        for setter, band in ((rgb.setRedContrastEnhancement, 3),
                             (rgb.setGreenContrastEnhancement, 2),
                             (rgb.setBlueContrastEnhancement, 1)):
            ce = QgsContrastEnhancement(scene.dataProvider().dataType(band))
            ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
            stats = scene.dataProvider().cumulativeCut(band, 0.02, 0.98, full, 250000)
            ce.setMinimumValue(stats[0])
            ce.setMaximumValue(stats[1])
            setter(ce)
        scene.setRenderer(rgb)
    img = render([layers["outlines"], layers["mask"], layers["gseg"], scene], crs, full, SIZE,
                 QColor(255, 255, 255))
    png = os.path.join(tmp, "qgis_scene.png")
    check(img.save(png, "PNG"), "map saved as PNG (%d x %d)" % (img.width(), img.height()))
    arr = image_array(img)
    colours = len(np.unique(arr[..., :3].reshape(-1, 3), axis=0))
    check(colours >= 100, "map is not blank: %d distinct colours" % colours)
    blue = np.all(np.abs(arr[..., :3].astype(int) - GLACIER_RGB) <= 3, axis=2)
    share = np.count_nonzero(blue) / blue.size
    check(share > 0.001, "map shows the glacier colour (%.1f %% of pixels)" % (100 * share))
    outline = sym.symbolLayer(0).strokeColor()
    dark = np.all(np.abs(arr[..., :3].astype(int) - (outline.red(), outline.green(), outline.blue())) <= 12,
                  axis=2)
    check(np.count_nonzero(dark) > 0, "map shows the outlines (%d px)" % np.count_nonzero(dark))

    if os.environ.get("GSEG_UPDATE_SCREENSHOT") == "1":
        dest = args.screenshot
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(png, dest + ".tmp")
        os.replace(dest + ".tmp", dest)
        print("screenshot updated: %s" % dest, flush=True)
    elif keep:
        print("map: %s" % png, flush=True)
    layers.clear()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--predict", default=os.environ.get("GSEG_PREDICT"),
                    help="the gseg-predict executable (default $GSEG_PREDICT)")
    ap.add_argument("--scene", default=os.environ.get("GSEG_SCENE"),
                    help="the sample scene (default $GSEG_SCENE)")
    ap.add_argument("--screenshot", default=os.path.join(here, "..", "..", "docs", "images",
                                                         "qgis_scene_001.png"),
                    help="where GSEG_UPDATE_SCREENSHOT=1 saves the map")
    args = ap.parse_args()
    if not args.predict or not args.scene:
        ap.error("--predict and --scene (or $GSEG_PREDICT and $GSEG_SCENE) are required")
    args.screenshot = os.path.abspath(args.screenshot)

    keep = os.environ.get("GSEG_KEEP_TMP") == "1"
    tmp = tempfile.mkdtemp(prefix="gseg-qgis-")
    # Headless and isolated from any user QGIS set-up; set before Qt starts.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime:
        runtime = os.path.join(tmp, "runtime")
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    os.chmod(runtime, 0o700)
    os.environ["XDG_RUNTIME_DIR"] = runtime
    profile = os.path.join(tmp, "profile")
    os.environ["QGIS_CUSTOM_CONFIG_PATH"] = profile
    # Qt's caches and settings (QGIS's network cache goes to
    # XDG_CACHE_HOME) stay in the temporary folder too.
    for var in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        os.environ[var] = os.path.join(tmp, var.lower())
    os.environ.setdefault("QGIS_DISABLE_MESSAGE_HOOKS", "1")
    os.environ.setdefault("QGIS_NO_OVERRIDE_IMPORT", "1")
    print("QGIS profile %s, GDAL_DRIVER_PATH=%s" % (profile, os.environ.get("GDAL_DRIVER_PATH", "")),
          flush=True)

    try:
        from qgis.core import Qgis, QgsApplication
    except ImportError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        print("FAIL QGIS's Python bindings are missing (scripts/test.sh installs them; "
              "or apt-get install python3-qgis): %s" % e, flush=True)
        return 1

    t0 = time.time()
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False, profile)
    app.initQgis()
    print("QGIS %s started headless in %.1f s" % (Qgis.QGIS_VERSION, time.time() - t0), flush=True)
    rc = 0
    try:
        run_checks(args, tmp, keep)
        print("PASS: all QGIS checks passed (%.1f s)" % (time.time() - t0), flush=True)
    except CheckFailed as e:
        print("FAIL " + str(e), flush=True)
        rc = 1
    except Exception as e:  # an unexpected error is a failure too, with its cause
        import traceback
        traceback.print_exc()
        print("FAIL unexpected error: %s" % e, flush=True)
        rc = 1
    # Every layer (hence every GDAL dataset) is gone before QGIS closes
    # GDAL's driver manager.
    import gc
    gc.collect()
    app.exitQgis()
    if keep:
        print("kept %s" % tmp, flush=True)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
