#!/usr/bin/python3
"""gseg-evaluate peer: recomputes its metrics with scikit-learn.

  eval_peer.py REPORT.json PRED_DIR TRUTH_MASKS_DIR

For every scene of REPORT (gseg-evaluate --json), reads PRED_DIR/<stem>_pred.tif
and TRUTH_MASKS_DIR/<stem>.tif with GDAL, keeps pixels labelled in the truth
(not its nodata, default 255) whose prediction has data (not 255), maps the
truth to 0/1 for binary reports, and checks the confusion matrix, accuracy,
per-class IoU (jaccard_score), F1, precision and recall against the report
(1e-6). Exits 1 with the first difference.
"""
import json
import os
import sys

import numpy as np
from osgeo import gdal
from sklearn import metrics as skm


def main():
    report, pred_dir, truth_dir = sys.argv[1:4]
    rep = json.load(open(report))
    checked = 0
    for sc in rep["scenes"]:
        stem = os.path.splitext(sc["scene"])[0]
        p_ds = gdal.Open(os.path.join(pred_dir, stem + "_pred.tif"))
        t_ds = gdal.Open(os.path.join(truth_dir, stem + ".tif"))
        p = p_ds.GetRasterBand(1).ReadAsArray().ravel().astype(int)
        tb = t_ds.GetRasterBand(1)
        nd = tb.GetNoDataValue()
        t = tb.ReadAsArray().ravel().astype(int)
        nd = 255 if nd is None else int(nd)
        keep = (t != nd) & (p != 255)
        k = len(sc["classes"])
        t = t[keep]
        p = p[keep]
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
