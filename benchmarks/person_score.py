"""Does a better person score lift COCO AP? The same joints of one model on the person-crops dev split, ranked by
different person scores: the shipped one (mean confident-joint confidence), ridge regressions fitted on the train
split's true OKS (from the 17 confidences; plus each token's max probability and entropy), and the true OKS itself
(the ceiling of any score).

    python -m benchmarks.person_score [--model edge_pct/weights/pct_lite.pt] [--json runs/person_score.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import add_data_arg, data_dir

RIDGE_LAMBDA = 100.0  # on standardised features; 1 and 10 scored within 0.003 AP of it


def true_oks(persons, joints: np.ndarray) -> np.ndarray:
    """(N,) OKS of joints (N, 17, 2) against the persons' labels, as COCO computes it."""
    from edge_pct.core.keypoints import OKS_SIGMAS

    gt, seen = persons.keypoints, persons.keypoints[..., 2] > 0
    d2 = ((joints - gt[..., :2]) ** 2).sum(-1)
    e = d2 / ((2 * np.array(OKS_SIGMAS)) ** 2 * (persons.areas[:, None] + np.spacing(1)) * 2)
    return np.where(seen.any(1), (np.exp(-e) * seen).sum(1) / np.maximum(seen.sum(1), 1), 0.0)


def features(conf: np.ndarray, tokens: np.ndarray | None) -> np.ndarray:
    """conf (N, 17); tokens (N, 2M) per-token max probability and entropy, or None -> (N, F)."""
    from edge_pct.eval.evaluate import instance_scores

    f = [conf, np.sort(conf, 1), conf.mean(1, keepdims=True), instance_scores(conf)[:, None]]
    if tokens is not None:
        m = tokens.shape[1] // 2
        f += [tokens, np.sort(tokens[:, :m], 1), tokens.mean(1, keepdims=True)]
    return np.concatenate(f, 1)


def fit_ridge(x: np.ndarray, y: np.ndarray, lam: float = RIDGE_LAMBDA):
    """A ridge regression on standardised features -> predict(x) function."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    a = (x - mu) / sd
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y - y.mean()))
    return lambda z: ((z - mu) / sd) @ w + y.mean()


def main() -> None:
    from edge_pct.core.geometry import to_model_input
    from edge_pct.core.package import DEFAULT_MODEL
    from edge_pct.data.person_crops import load_person_crops, person_crops_coco
    from edge_pct.data.topdown import load_coco_persons
    from edge_pct.engines.model_files import open_backend
    from edge_pct.eval.coco import keypoint_results, oks_ap
    from edge_pct.eval.evaluate import Estimator, instance_scores, predict_persons

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--json", type=Path)
    add_data_arg(ap)
    args = ap.parse_args()
    root = data_dir() / "coco" / "person_crops"
    backend = open_backend(args.model, "onnxruntime")
    captured: list[np.ndarray] = []

    def run(crops: np.ndarray) -> dict[str, np.ndarray]:
        out = backend(to_model_input(crops))
        probs = out["token_probs"]
        captured.append(np.column_stack([probs.max(-1), -(probs * np.log(probs + 1e-9)).sum(-1)]))
        return {"joints": out["joints"], "confidence": out["confidence"]}

    est = Estimator("pct", backend.input_size, run)
    train = load_person_crops(root, "train")
    j_train, c_train, _, _ = predict_persons(est, train)
    t_train = np.concatenate(captured)
    captured.clear()
    with tempfile.TemporaryDirectory() as tmp:
        ann = Path(tmp) / "dev.json"
        ann.write_text(json.dumps(person_crops_coco(load_person_crops(root, "dev"))))
        dev = load_coco_persons(ann, root / "crops")
        j_dev, c_dev, _, _ = predict_persons(est, dev)
        t_dev = np.concatenate(captured)
        y_train, y_dev = true_oks(train, j_train), true_oks(dev, j_dev)
        scores = {"shipped: mean confident-joint confidence": instance_scores(c_dev)}
        for name, tok_train, tok_dev in (("ridge on confidences", None, None),
                                         ("ridge on confidences + token max prob and entropy", t_train, t_dev)):
            scores[name] = fit_ridge(features(c_train, tok_train), y_train)(features(c_dev, tok_dev))
        scores["true OKS (ceiling)"] = y_dev
        rows = []
        for name, s in scores.items():
            r = oks_ap(ann, keypoint_results(dev.image_ids, j_dev, c_dev, s))
            rows.append({"score": name, "ap": r["ap"], "ap50": r["ap50"], "ap75": r["ap75"],
                         "corr_true_oks": float(np.corrcoef(s, y_dev)[0, 1])})
    print(f"crops dev, {len(dev)} persons; fitted on {len(train)} train-split persons")
    print("| person score | AP | AP50 | AP75 | corr. with true OKS |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['score']} | {r['ap']:.3f} | {r['ap50']:.3f} | {r['ap75']:.3f} | {r['corr_true_oks']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
