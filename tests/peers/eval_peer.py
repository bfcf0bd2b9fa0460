#!/usr/bin/python3
"""gseg-evaluate peer: recomputes its metrics with scikit-learn.

  eval_peer.py REPORT.json PRED_DIR TRUTH_MASKS_DIR

For every scene of REPORT (gseg-evaluate --json), reads PRED_DIR/<stem>_pred.tif
and TRUTH_MASKS_DIR/<stem>.tif with GDAL, keeps pixels labelled in the truth
(not 255, nor its nodata) whose prediction has data (not 255), maps the
truth to 0/1 for binary reports, and checks the confusion matrix, accuracy,
per-class IoU (jaccard_score), F1, precision and recall against the report
(1e-6); and the mean boundary distance in metres with SciPy's Euclidean
distance transform, the pixel spacing taken at the scene's centre (the
meridian and parallel radii of curvature of the ellipsoid for geographic
grids; 0.5 %). Exits 1 with the first difference.
"""
import json
import os
import sys

import math

import numpy as np
from osgeo import gdal
from scipy import ndimage
from sklearn import metrics as skm


def spacing(ds):
    """Metres between pixel centres (along a column, along a row) at the centre."""
    gt = ds.GetGeoTransform()
    srs = ds.GetSpatialRef()
    if srs is None or not srs.IsGeographic():
        u = srs.GetLinearUnits() if srs is not None else 1.0
        return math.hypot(gt[2], gt[5]) * u, math.hypot(gt[1], gt[4]) * u
    a, invf = srs.GetSemiMajor(), srs.GetInvFlattening()
    f = 1 / invf if invf else 0
    e2 = f * (2 - f)
    lat = math.radians(gt[3] + gt[5] * ds.RasterYSize / 2)
    w = 1 - e2 * math.sin(lat) ** 2
    m = a * (1 - e2) / w ** 1.5  # meridian radius
    n = a / math.sqrt(w)  # prime vertical radius
    return abs(gt[5]) * math.pi / 180 * m, abs(gt[1]) * math.pi / 180 * n * math.cos(lat)


def boundary(x):
    return x & ~ndimage.binary_erosion(x, border_value=0)


def bdist(p, t, sampling):
    bp, bt = boundary(p), boundary(t)
    if not bp.any() or not bt.any():
        return None
    d = np.concatenate([ndimage.distance_transform_edt(~bt, sampling=sampling)[bp],
                        ndimage.distance_transform_edt(~bp, sampling=sampling)[bt]])
    return float(d.mean())


def main():
    report, pred_dir, truth_dir = sys.argv[1:4]
    rep = json.load(open(report))
    checked = 0
    for sc in rep["scenes"]:
        stem = os.path.splitext(sc["scene"])[0]
        p_ds = gdal.Open(os.path.join(pred_dir, stem + "_pred.tif"))
        t_ds = gdal.Open(os.path.join(truth_dir, stem + ".tif"))
        p2 = p_ds.GetRasterBand(1).ReadAsArray().astype(int)
        tb = t_ds.GetRasterBand(1)
        nd = tb.GetNoDataValue()
        t2 = tb.ReadAsArray().astype(int)
        nd = 255 if nd is None else int(nd)
        keep2 = (t2 != nd) & (t2 != 255) & (p2 != 255)
        k = len(sc["classes"])
        want_b = bdist((p2 > 0) & keep2, (t2 > 0) & keep2, spacing(p_ds))
        got_b = sc["boundary_distance_m"]
        if (want_b is None) != (got_b is None) or (
                want_b is not None and abs(got_b - want_b) > 5e-3 * want_b):
            sys.exit(f"{stem}: boundary distance {got_b} m != SciPy {want_b} m")
        keep = keep2.ravel()
        t = t2.ravel()[keep]
        p = p2.ravel()[keep]
        if k == 2:
            t = (t > 0).astype(int)
        labels = list(range(k))
        cm = skm.confusion_matrix(t, p, labels=labels)
        if cm.tolist() != sc["confusion"]:
            sys.exit(f"{stem}: confusion {sc['confusion']} != sklearn {cm.tolist()}")
        want = {
            "iou": skm.jaccard_score(t, p, labels=labels, average=None, zero_division=0),
            "f1": skm.f1_score(t, p, labels=labels, average=None, zero_division=0),
            "precision": skm.precision_score(t, p, labels=labels, average=None, zero_division=0),
            "recall": skm.recall_score(t, p, labels=labels, average=None, zero_division=0),
        }
        for c, cls in enumerate(sc["classes"]):
            for key, arr in want.items():
                got = cls[key]
                if got is None:
                    continue
                if abs(got - arr[c]) > 1e-6:
                    sys.exit(f"{stem} class {c} {key}: gseg {got} != sklearn {arr[c]}")
        acc = skm.accuracy_score(t, p)
        if abs(sc["accuracy"] - acc) > 1e-6:
            sys.exit(f"{stem}: accuracy {sc['accuracy']} != sklearn {acc}")
        checked += 1
    print(f"ok: {checked} scenes agree with scikit-learn")


if __name__ == "__main__":
    main()
