"""Load models/export_eval.ts output and score predictions the way `u2cm predict-eval` does.

Records are phase-1-unstable page-rounds sampled uniformly per trace (weight = 1/rate); the
phase-1-stable pages' confusion counts are exact (index.json). `trace_f1` combines the two, so
the F1 it returns estimates predict-eval's whole-trace F1 of a u2c predictor whose phase-2
decision on unstable pages is `pred`.
"""
import json, os
import numpy as np

WINDOW = 16
C = 5  # channels per step (src/predict/history.ts CHANNELS)


def load_index(data):
    return json.load(open(os.path.join(data, "index.json")))


def windows(rec, window=WINDOW):
    """Model input x [n, window, 5] from records (same layout as src/predict/history.ts writeWindow)."""
    n = len(rec)
    x = np.zeros((n, window, C), np.float32)
    own = rec[:, 0].astype(np.uint64)
    nbs = [rec[:, i].astype(np.uint64) for i in range(1, 5)]
    ncount = rec[:, 5].astype(np.float32)
    age = rec[:, 6].astype(np.int64)
    safe = np.maximum(ncount, 1)
    for t in range(window):
        bit = np.uint64(window - 1 - t)
        x[:, t, 0] = (own >> bit) & np.uint64(1)
        nd = sum(((b >> bit) & np.uint64(1)).astype(np.float32) for b in nbs)
        x[:, t, 1] = np.where(ncount > 0, nd / safe, 0)
        x[:, t, 4] = (window - 1 - t) < age
    return x


def load_trace(data, t, window=WINDOW):
    """(x, f, y [n,3] float, valid [n,3] bool, w [n]) of one trace entry of index.json."""
    name, F = t["name"], t["featureCount"]
    rec = np.fromfile(os.path.join(data, name + ".r.u32"), np.uint32).reshape(-1, 8)
    yb = np.fromfile(os.path.join(data, name + ".y.u8"), np.uint8)
    w = np.fromfile(os.path.join(data, name + ".w.f32"), np.float32)
    feats = np.fromfile(os.path.join(data, name + ".f.f32"), np.float32).reshape(-1, F)
    y = np.stack([(yb >> s) & 1 for s in range(3)], 1).astype(np.float32)
    valid = np.stack([(yb >> (4 + s)) & 1 for s in range(3)], 1).astype(bool)
    return windows(rec, window), feats[rec[:, 7]], y, valid, w, rec


def f1_from(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp > 0 else 0.0
    r = tp / (tp + fn) if tp + fn > 0 else 0.0
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def trace_f1(t, pred, y, valid, w, s):
    """Whole-trace F1 at horizon step s (0-based) with decisions `pred` on the sampled unstable pages."""
    st = t["stable"]
    m = valid[:, s]
    yy, pp, ww = y[m, s] > 0.5, pred[m], w[m]
    tp = st["tp"][s] + ww[pp & yy].sum()
    fp = st["fp"][s] + ww[pp & ~yy].sum()
    fn = st["fn"][s] + ww[~pp & yy].sum()
    return f1_from(tp, fp, fn)


def exact_f1(t, key, s):
    """Exact whole-trace F1 when unstable pages use `key` (unstableLastValue / unstableDataShift)."""
    st, u = t["stable"], t[key]
    return f1_from(st["tp"][s] + u["tp"][s], st["fp"][s] + u["fp"][s], st["fn"][s] + u["fn"][s])


PATTERN_KEYS = 3 << 8  # src/predict/frequencies.ts


def record_keys(rec):
    """patternKey of each record's page at its round (own last 8 bits, adjacent pages' latest bit)."""
    own = (rec[:, 0] & 0xFF).astype(np.int64)
    return own * 3 + (rec[:, 2] & 1).astype(np.int64) + (rec[:, 3] & 1).astype(np.int64)


def online_counts(data, t):
    """Cumulative (seen, dirty) [3, rounds+1, PATTERN_KEYS] of every unstable page-round of the
    trace: index r+1 holds the counts of rounds ≤ r (src/predict/frequencies.ts learns the
    outcome of round r at step s when round r+s+1 arrives)."""
    k = np.fromfile(os.path.join(data, t["name"] + ".k.u32"), np.uint32).reshape(-1, 7).astype(np.int64)
    k = k[k[:, 2] == 0][:, [0, 1, 3, 4, 5, 6]]  # unstable rows: round, key, pages, dirty ×3
    R = t["rounds"]
    seen = np.zeros((3, R + 1, PATTERN_KEYS)); dirty = np.zeros((3, R + 1, PATTERN_KEYS))
    for s in range(3):
        np.add.at(seen[s], (k[:, 0] + 1, k[:, 1]), k[:, 2])
        np.add.at(dirty[s], (k[:, 0] + 1, k[:, 1]), k[:, 3 + s])
    return np.cumsum(seen, 1), np.cumsum(dirty, 1)


def blend(p_model, rec, counts, prior):
    """Phase-2 probability online: (dirty + prior·p_model) / (seen + prior), counts known then."""
    seen, dirty = counts
    key = record_keys(rec)
    r = rec[:, 7].astype(np.int64)
    out = np.empty_like(p_model, dtype=np.float64)
    for s in range(3):
        known = np.maximum(r - s - 1 + 1, 0)  # rounds ≤ r-s-1 → cumulative index r-s
        n = seen[s][known, key]; d = dirty[s][known, key]
        out[:, s] = (d + prior * p_model[:, s]) / (n + prior)
    return out
