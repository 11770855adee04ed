"""Offline baselines of `u2cm predict-eval`: random forest (python3-sklearn) and ARIMA on dirty
counts (python3-statsmodels). Run by predict-eval with Debian's /usr/bin/python3:

  /usr/bin/python3 models/baselines.py --tables DIR --models random-forest,arima

DIR holds manifest.json ({"traces": [{"name", "trace", "workload", "eval", "train"}]}) and per
trace the page-pattern tables written by predict-eval (src/predict/pattern_table.ts):
NAME.rows.u32 (10 columns: round, own last 8 dirty bits, neighbours dirty in the latest round,
neighbours dirty in the latest 4, neighbours, mapping age ≤ 16, pages, dirty at t+1..t+3),
NAME.rounds.u32 (round, future-round-exists flags ×3) and NAME.counts.u32 (dirty pages per round).
Prints {"results": [...]} rows in predict-eval's JSON format on stdout.

random-forest — leave-one-workload-out: for a trace of workload W, a RandomForestRegressor
  (30 trees, depth ≤ 12, leaves ≥ 20 pages, seed 0, one job) fitted on the pattern rows of the
  `train` traces of other workloads (page-weighted, every training trace the same total weight,
  ≤ 400 000 rows sampled), target = share of the pattern's pages dirty at t+1..t+3; a page is
  predicted dirty at p ≥ 0.5; the expected count is Σ p.
arima — per trace, online: ARIMA(2,0,1) with a constant on the dirty-page count series of the
  rounds seen so far (refitted every 50 rounds, re-filtered with fixed parameters in between);
  the forecast count N for t+h is given to the N pages ranked most recently dirty (own bits,
  then dirty neighbours), ties shared pro rata. Needs no training data.
"""
import argparse, json, os, sys, warnings

import numpy as np

COLS = 10
HORIZON = 3


def load(d, name):
    rows = np.fromfile(os.path.join(d, name + ".rows.u32"), np.uint32).reshape(-1, COLS).astype(np.int64)
    rounds = np.fromfile(os.path.join(d, name + ".rounds.u32"), np.uint32).reshape(-1, 4).astype(np.int64)
    counts = np.fromfile(os.path.join(d, name + ".counts.u32"), np.uint32).astype(np.float64)
    return rows, rounds, counts


def features(rows):
    own = rows[:, 1]
    bits = [(own >> k) & 1 for k in range(8)]
    return np.stack(bits + [rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5]], 1).astype(np.float32)


def score(rows, rounds, probs, decide):
    """predict-eval's metrics from per-row probabilities `probs` [r,3] and decisions `decide` [r,3]
    (a decision may be fractional: the share of the row's pages predicted dirty)."""
    out = []
    valid_round = {int(r[0]): r[1:] for r in rounds}
    pages = rows[:, 6].astype(np.float64)
    t = rows[:, 0]
    for s in range(HORIZON):
        ok = np.array([valid_round[int(x)][s] == 1 for x in np.unique(t)])
        valid_t = np.unique(t)[ok]
        m = np.isin(t, valid_t)
        d = rows[m, 7 + s].astype(np.float64)
        n = pages[m]
        q = decide[m, s]
        tp = (q * d).sum(); fp = (q * (n - d)).sum()
        fn = ((1 - q) * d).sum(); tn = ((1 - q) * (n - d)).sum()
        prec = tp / (tp + fp) if tp + fp > 0 else 0.0
        rec = tp / (tp + fn) if tp + fn > 0 else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
        tot = tp + fp + fn + tn
        # count error per round
        idx = np.searchsorted(valid_t, t[m])
        exp = np.bincount(idx, weights=probs[m, s] * n, minlength=len(valid_t))
        act = np.bincount(idx, weights=d, minlength=len(valid_t))
        nz = act > 0
        mape = float(np.mean(np.abs(exp[nz] - act[nz]) / act[nz])) if nz.any() else 0.0
        out.append({"horizon": s + 1, "f1": f1, "precision": prec, "recall": rec,
                    "accuracy": (tp + tn) / tot if tot > 0 else 0.0, "count_mape": mape})
    return out


def random_forest(d, traces, target, cache):
    from sklearn.ensemble import RandomForestRegressor
    wl = target["workload"]
    if wl not in cache:
        xs, ys, ws = [], [], []
        # the same training set in the same order however the traces were named on the command line
        for t in sorted(traces, key=lambda t: os.path.basename(t["trace"])):
            if not t["train"] or t["workload"] == wl:
                continue
            rows, rounds, _ = load(d, t["name"])
            pages = rows[:, 6].astype(np.float64)
            # labels only where all three future rounds exist
            keep = np.isin(rows[:, 0], rounds[rounds[:, 1:].min(1) == 1, 0])
            xs.append(features(rows[keep]))
            ys.append(rows[keep, 7:10] / pages[keep, None])
            ws.append(pages[keep] / pages[keep].sum())
        if not xs:
            raise SystemExit(f"random-forest: no training trace of a workload other than {wl}")
        x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
        g = np.random.default_rng(0)
        if len(x) > 400_000:
            pick = g.choice(len(x), 400_000, replace=False, p=w / w.sum())
            x, y, w = x[pick], y[pick], np.ones(400_000)
        rf = RandomForestRegressor(n_estimators=30, max_depth=12, min_samples_leaf=20,
                                   random_state=0, n_jobs=1)
        rf.fit(x, y, sample_weight=w * len(w) / w.sum())
        cache[wl] = rf
    rows, rounds, _ = load(d, target["name"])
    p = np.clip(cache[wl].predict(features(rows)), 0, 1)
    return score(rows, rounds, p, (p >= 0.5).astype(np.float64))


def arima(d, target):
    from statsmodels.tsa.arima.model import ARIMA
    rows, rounds, counts = load(d, target["name"])
    n_rounds = len(counts)
    fc = np.zeros((n_rounds, HORIZON))
    res = None
    warnings.simplefilter("ignore")
    for r in rounds[:, 0]:
        series = counts[1:r + 1]  # round 0 is the baseline scan
        if res is None or (r % 50) == 0:
            try:
                res = ARIMA(series, order=(2, 0, 1), trend="c").fit()
            except Exception:  # noqa: BLE001 — a failed fit falls back to the last count
                res = None
        try:
            f = res.apply(series).forecast(HORIZON) if res is not None else None
        except Exception:  # noqa: BLE001
            f = None
        fc[r] = np.maximum(0, f if f is not None else np.repeat(series[-1], HORIZON))
    # rank pages: most recently dirty first (own bits as a reversed binary number), then neighbours
    own = rows[:, 1]
    rev = sum(((own >> k) & 1) << (7 - k) for k in range(8))
    rank = rev * 64 + rows[:, 2] * 8 + rows[:, 3]
    decide = np.zeros((len(rows), HORIZON))
    t = rows[:, 0]
    for r in np.unique(t):
        idx = np.nonzero(t == r)[0]
        idx = idx[np.argsort(-rank[idx], kind="stable")]
        pages = rows[idx, 6].astype(np.float64)
        before = np.concatenate([[0], np.cumsum(pages)[:-1]])
        for s in range(HORIZON):
            want = fc[r, s]
            decide[idx, s] = np.clip((want - before) / pages, 0, 1)
    return score(rows, rounds, decide, decide)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", required=True)
    ap.add_argument("--models", default="random-forest,arima")
    a = ap.parse_args()
    models = [m for m in a.models.split(",") if m]
    need = {"random-forest": ("sklearn", "python3-sklearn"), "arima": ("statsmodels", "python3-statsmodels")}
    for m in models:
        if m not in need:
            print(f"unknown baseline {m}", file=sys.stderr); sys.exit(2)
        try:
            __import__(need[m][0])
        except ImportError:
            print(f"{m} needs the Debian package {need[m][1]} (apt-get install {need[m][1]})",
                  file=sys.stderr)
            sys.exit(5)
    traces = json.load(open(os.path.join(a.tables, "manifest.json")))["traces"]
    results, cache = [], {}
    for t in traces:
        if not t["eval"]:
            continue
        for m in models:
            scores = random_forest(a.tables, traces, t, cache) if m == "random-forest" else arima(a.tables, t)
            for s in scores:
                results.append({"trace": t["trace"], "model": m, "horizon": s["horizon"],
                                **{k: round(float(s[k]), 4) for k in
                                   ("f1", "precision", "recall", "accuracy", "count_mape")}})
            print(f"{m} {t['name']} h1 F1 {scores[0]['f1']:.4f}", file=sys.stderr, flush=True)
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
