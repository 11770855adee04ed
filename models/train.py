"""Train the u2cm phase-2 dirty-page models, choose their decision thresholds on the training
workloads, and export them to ONNX (opset 17) with a .json sidecar.

Run with Debian's PyTorch: /usr/bin/python3 models/train.py [--full DIR] [--out DIR] [--loo]
  u2c data:  deno run -A models/export_eval.ts models/corpus/*.u2ct.gz   (→ .cache/predict-full)
  lstm data: deno run -A models/dataset.ts models/corpus/*.u2ct.gz       (→ .cache/predict-data)

Models (inputs x [N,16,5] = per step: own dirty bit, neighbours' mean dirty bit, own access bit,
neighbours' mean access bit, mapping-present bit (0 before the mapping appeared); f [N,F]
normalised system/process features; output p [N,3]):
  u2c  — LSTM(5→16) over the window; tokens = [LSTM state, Linear(F→16)(f), Linear(16→16)(own
         bits)]; 2-head self-attention over the 3 tokens; mean; 3 sigmoid heads. Trained on
         phase-1-unstable page-rounds in the distribution the online predictor sees them
         (export_eval.ts: uniform sample of every unstable page of every round, ≤ CAP per trace),
         each training trace weighted equally. The decision threshold per horizon step is the
         one maximising the mean whole-trace F1 over the TRAINING traces (stable pages' exact
         counts + the model's decisions on their unstable pages); it goes in the sidecar as
         `threshold` and src/predict applies it.
  lstm — baseline: LSTM(1→16) over the page's own dirty bits only, Linear(16→3), sigmoid; no
         attention, no features, no phase split (trained on dataset.ts samples of every page).
         Phase 2 online: the model's probability is blended with the container's own pattern
         frequencies (src/predict/frequencies.ts) as `onlinePrior` pseudo-observations; the prior
         (PRIORS) is chosen with the thresholds on the training traces (models/fulldata.py
         replays the blend exactly from the export).
Hyper-parameters (u2c): seed 0, Adam lr 3e-3, batch 512, 1 epoch (U2C_EPOCHS), ≤ 60 000 records
per training trace (U2C_CAP), BCE loss masked past the trace's end, hidden 16; thresholds
0.05–0.95 step 0.025; priors 0.5, 2, 8, 32. lstm: 3 epochs.
--loo also trains one model per held-out workload (models/loo/<kind>-no-<workload>.onnx) and
prints the proxy F1 of each held-out trace (models/fulldata.py; never used for training or for
the threshold).
"""
import argparse, json, os, sys, time
import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fulldata  # noqa: E402

HID = 16
C = 5  # channels per time step (src/predict/history.ts CHANNELS)
EPOCHS = int(os.environ.get("U2C_EPOCHS", "1"))
LSTM_EPOCHS = 3
BATCH = 512
LR = 3e-3
SEED = 0
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.025), 3)
PRIORS = [float(v) for v in os.environ.get("U2C_PRIORS", "0.5,2,8,32").split(",")]
CAP = int(os.environ.get("U2C_CAP", "60000"))  # training records per trace (0 = all exported)


class U2C(nn.Module):
    def __init__(self, window, nfeat):
        super().__init__()
        self.lstm = nn.LSTM(C, HID, batch_first=True)
        self.feat = nn.Linear(nfeat, HID)
        self.own = nn.Linear(window, HID)
        self.attn = nn.MultiheadAttention(HID, 2, batch_first=True)
        self.head = nn.Linear(HID, 3)

    def forward(self, x, f):
        _, (h, _) = self.lstm(x)
        tokens = torch.stack([h[0], torch.relu(self.feat(f)), torch.relu(self.own(x[:, :, 0]))], 1)
        a, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return torch.sigmoid(self.head((a + tokens).mean(1)))


class LSTMBase(nn.Module):
    def __init__(self, window, nfeat):
        super().__init__()
        self.lstm = nn.LSTM(1, HID, batch_first=True)
        self.head = nn.Linear(HID, 3)

    def forward(self, x):
        _, (h, _) = self.lstm(x[:, :, 0:1])
        return torch.sigmoid(self.head(h[0]))


def load_samples(data, names):
    """lstm baseline data (dataset.ts samples)."""
    idx = json.load(open(os.path.join(data, "index.json")))
    w = idx["window"]
    xs, fs, ys = [], [], []
    for t in idx["traces"]:
        if t["name"] not in names:
            continue
        n, F = t["n"], t["featureCount"]
        xs.append(np.fromfile(os.path.join(data, t["name"] + ".x.f32"), np.float32).reshape(n, w, C))
        fs.append(np.fromfile(os.path.join(data, t["name"] + ".f.f32"), np.float32).reshape(n, F))
        ys.append(np.fromfile(os.path.join(data, t["name"] + ".y.u8"), np.uint8).reshape(n, 3))
    return np.concatenate(xs), np.concatenate(fs), np.concatenate(ys).astype(np.float32), w


def train(kind, x, f, y, m, sw):
    """Minibatch Adam on BCE; `m` masks labels past the trace's end, `sw` weights samples."""
    torch.manual_seed(SEED)
    g = np.random.default_rng(SEED)
    model = U2C(x.shape[1], f.shape[1]) if kind == "u2c" else LSTMBase(x.shape[1], f.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    X, Fe, Y = torch.from_numpy(x), torch.from_numpy(f), torch.from_numpy(y)
    M = torch.from_numpy(m.astype(np.float32)) * torch.from_numpy(sw.astype(np.float32))[:, None]
    for _ in range(EPOCHS if kind == "u2c" else LSTM_EPOCHS):
        order = torch.from_numpy(g.permutation(len(X)))
        for i in range(0, len(X), BATCH):
            b = order[i:i + BATCH]
            p = model(X[b], Fe[b]) if kind == "u2c" else model(X[b])
            loss = (nn.functional.binary_cross_entropy(p, Y[b], reduction="none") * M[b]).sum()
            loss = loss / M[b].sum().clamp(min=1)
            opt.zero_grad(); loss.backward(); opt.step()
    return model.eval()


def predict(model, x, f):
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 65536):
            out.append(model(torch.from_numpy(x[i:i + 65536]), torch.from_numpy(f[i:i + 65536])).numpy())
    return np.concatenate(out) if out else np.zeros((0, 3), np.float32)


def choose(traces, probs):
    """The online prior (one for all steps) and per-step thresholds with the best mean
    whole-trace F1 over `traces` (training traces only)."""
    best = (-1.0, None, None)
    for prior in PRIORS:
        blended = [fulldata.blend(p, DATA[t["name"]][5], COUNTS[t["name"]], prior)
                   for t, p in zip(traces, probs)]
        thr, total = [], 0.0
        for s in range(3):
            scores = [np.mean([fulldata.trace_f1(t, b[:, s] >= th, *DATA[t["name"]][2:5], s)
                               for t, b in zip(traces, blended)]) for th in THRESHOLDS]
            thr.append(float(THRESHOLDS[int(np.argmax(scores))]))
            total += max(scores) if s == 0 else 0.0  # the prior is chosen on h=1
        if total > best[0]:
            best = (total, prior, thr)
    return best[1], best[2]


DATA = {}
COUNTS = {}


def export(model, kind, w, nfeat, path, trained_on, threshold=None, prior=None):
    x = torch.zeros(2, w, C); f = torch.zeros(2, nfeat)
    args, names = ((x, f), ["x", "f"]) if kind == "u2c" else ((x,), ["x"])
    axes = {n: {0: "n"} for n in names + ["p"]}
    torch.onnx.export(model, args, path, opset_version=17, input_names=names, output_names=["p"],
                      dynamic_axes=axes)
    meta = {"kind": kind, "window": w, "radius": 2, "horizon": 3, "featureCount": nfeat,
            "trainedOn": sorted(trained_on)}
    if threshold is not None:
        meta["threshold"] = threshold
    if prior is not None:
        meta["onlinePrior"] = prior
    json.dump(meta, open(path[:-5] + ".json", "w"), indent=1)


def fit_u2c(traces):
    """Train on `traces` (equal weight per trace) and choose thresholds on them."""
    xs, fs, ys, ms, sws = [], [], [], [], []
    g = np.random.default_rng(SEED)
    for t in traces:
        x, f, y, v, w, _ = DATA[t["name"]]
        if CAP and len(x) > CAP:
            pick = np.sort(g.choice(len(x), CAP, replace=False))
            x, f, y, v = x[pick], f[pick], y[pick], v[pick]
        xs.append(x); fs.append(f); ys.append(y); ms.append(v)
        sws.append(np.full(len(x), 1.0 / max(1, len(x)), np.float32))
    sw = np.concatenate(sws); sw *= len(sw) / sw.sum()
    model = train("u2c", np.concatenate(xs), np.concatenate(fs), np.concatenate(ys),
                  np.concatenate(ms), sw)
    probs = [predict(model, DATA[t["name"]][0], DATA[t["name"]][1]) for t in traces]
    prior, thr = choose(traces, probs)
    return model, thr, prior


def report(label, model, thr, prior, traces):
    for t in traces:
        x, f, y, v, w, rec = DATA[t["name"]]
        p = fulldata.blend(predict(model, x, f), rec, COUNTS[t["name"]], prior)
        f1 = [fulldata.trace_f1(t, p[:, s] >= thr[s], y, v, w, s) for s in range(3)]
        lv = [fulldata.exact_f1(t, "unstableLastValue", s) for s in range(3)]
        print(f"{label:22s} {t['name']:12s} u2c " + " ".join(f"{a:.4f}" for a in f1) +
              "  last-value " + " ".join(f"{a:.4f}" for a in lv), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", default=".cache/predict-full")
    ap.add_argument("--data", default=".cache/predict-data")
    ap.add_argument("--out", default="models")
    ap.add_argument("--loo", action="store_true")
    ap.add_argument("--kinds", default="u2c")
    ap.add_argument("--only", default="", help="comma-separated held-out workloads (proxy runs)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    for kind in a.kinds.split(","):
        if kind == "u2c":
            idx = fulldata.load_index(a.full)
            traces = idx["traces"]
            for t in traces:
                DATA[t["name"]] = fulldata.load_trace(a.full, t)
                COUNTS[t["name"]] = fulldata.online_counts(a.full, t)
            wls = sorted({t["workload"] for t in traces})
            if not a.only:
                t0 = time.time()
                model, thr, prior = fit_u2c(traces)
                export(model, "u2c", fulldata.WINDOW, traces[0]["featureCount"],
                       os.path.join(a.out, "u2c-predictor.onnx"), wls, thr, prior)
                print("u2c all", thr, prior, f"{time.time() - t0:.0f}s", flush=True)
            if not a.loo:
                continue
            os.makedirs(os.path.join(a.out, "loo"), exist_ok=True)
            for held in (a.only.split(",") if a.only else wls):
                t0 = time.time()
                train_t = [t for t in traces if t["workload"] != held]
                model, thr, prior = fit_u2c(train_t)
                export(model, "u2c", fulldata.WINDOW, traces[0]["featureCount"],
                       os.path.join(a.out, "loo", f"u2c-no-{held}.onnx"),
                       [wl for wl in wls if wl != held], thr, prior)
                print("u2c without", held, thr, prior, f"{time.time() - t0:.0f}s", flush=True)
                report(f"held-out {held}", model, thr, prior,
                       [t for t in traces if t["workload"] == held])
        else:
            idx = json.load(open(os.path.join(a.data, "index.json")))
            by_wl = {}
            for t in idx["traces"]:
                by_wl.setdefault(t["workload"], []).append(t["name"])
            everything = [n for ns in by_wl.values() for n in ns]
            x, f, y, w = load_samples(a.data, everything)
            ones = np.ones(len(x), np.float32)
            export(train(kind, x, f, y, np.ones_like(y), ones), kind, w, f.shape[1],
                   os.path.join(a.out, "lstm.onnx"), list(by_wl))
            if not a.loo:
                continue
            for held in by_wl:
                names = [n for wl, ns in by_wl.items() if wl != held for n in ns]
                x, f, y, w = load_samples(a.data, names)
                export(train(kind, x, f, y, np.ones_like(y), np.ones(len(x), np.float32)), kind, w,
                       f.shape[1], os.path.join(a.out, "loo", f"{kind}-no-{held}.onnx"),
                       [wl for wl in by_wl if wl != held])


if __name__ == "__main__":
    main()
