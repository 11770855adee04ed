"""Train the u2cm phase-2 window model and export it to ONNX (opset 17) with a .json sidecar.

Run with Debian's PyTorch: /usr/bin/python3 models/train_windows.py [--data DIR] [--out DIR] [--loo]
  data: deno run -A models/export_windows.ts models/corpus/*.u2ct.gz   (→ .cache/predict-windows)

Model (inputs x [N,16,5] as the tick model's, f [N,F] normalised features, g [N,4] long-run
inputs: log time since the last write, write share, log mapping age, never-written bit; output
w [N,K] = cumulative hazard -ln(1 - P(written within window class k)), K = 9 classes of
100 ms ... 30 s): LSTM(5->16) over the window; tokens = [LSTM state, Linear(F->16)(f),
Linear(16->16)(own bits), Linear(4->16)(g)]; 2-head self-attention over the 4 tokens, residual,
mean; Linear(16->K) -> softplus -> cumulative sum (so the answer never shrinks as the window
grows). Loss: BCE of 1 - exp(-w) against "written within the class", masked where the trace ends
too early to know, each training trace the same weight. Seed 0, Adam lr 3e-3, batch 512, 2 epochs,
<= 30 000 records per training trace, torch 1 thread.
--loo also trains one model per held-out workload (models/loo/u2c-windows-no-<workload>.onnx) and
prints its held-out per-class F1 at p >= 0.5 (never used for training).
"""
import argparse, json, os, time
import numpy as np
import torch
import torch.nn as nn

HID = 16
C = 5
EPOCHS = int(os.environ.get("U2C_WIN_EPOCHS", "2"))
CAP = int(os.environ.get("U2C_WIN_CAP", "30000"))
BATCH = 512
LR = 3e-3
SEED = 0
PRIOR = float(os.environ.get("U2C_WIN_PRIOR", "200"))


class U2CWindows(nn.Module):
    def __init__(self, window, nfeat, nlong, k):
        super().__init__()
        self.lstm = nn.LSTM(C, HID, batch_first=True)
        self.feat = nn.Linear(nfeat, HID)
        self.own = nn.Linear(window, HID)
        self.long = nn.Linear(nlong, HID)
        self.attn = nn.MultiheadAttention(HID, 2, batch_first=True)
        self.head = nn.Linear(HID, k)

    def forward(self, x, f, g):
        _, (h, _) = self.lstm(x)
        tokens = torch.stack([h[0], torch.relu(self.feat(f)), torch.relu(self.own(x[:, :, 0])),
                              torch.relu(self.long(g))], 1)
        a, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        z = self.head((a + tokens).mean(1))
        return torch.cumsum(nn.functional.softplus(z), 1)


def load(data, t, idx):
    n, F, W, L = t["n"], t["featureCount"], idx["window"], idx["longRun"]
    K = len(idx["windowsMs"])
    x = np.fromfile(os.path.join(data, t["name"] + ".x.f32"), np.float32).reshape(n, W, C)
    f = np.fromfile(os.path.join(data, t["name"] + ".f.f32"), np.float32).reshape(n, F)
    g = np.fromfile(os.path.join(data, t["name"] + ".g.f32"), np.float32).reshape(n, L)
    yy = np.fromfile(os.path.join(data, t["name"] + ".y.u16"), np.uint16).reshape(n, 2)
    bits = (1 << np.arange(K)).astype(np.uint16)
    y = ((yy[:, :1] & bits) != 0).astype(np.float32)
    m = ((yy[:, 1:] & bits) != 0).astype(np.float32)
    return x, f, g, y, m


def fit(traces, data, idx):
    g0 = np.random.default_rng(SEED)
    parts = []
    for t in traces:
        x, f, g, y, m = DATA[t["name"]]
        if CAP and len(x) > CAP:
            pick = np.sort(g0.choice(len(x), CAP, replace=False))
            x, f, g, y, m = x[pick], f[pick], g[pick], y[pick], m[pick]
        parts.append((x, f, g, y, m, np.full(len(x), 1.0 / max(1, len(x)), np.float32)))
    X, Fe, G, Y, M, SW = (np.concatenate([p[i] for p in parts]) for i in range(6))
    SW *= len(SW) / SW.sum()
    torch.manual_seed(SEED)
    model = U2CWindows(X.shape[1], Fe.shape[1], G.shape[1], Y.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    X, Fe, G, Y = map(torch.from_numpy, (X, Fe, G, Y))
    Mw = torch.from_numpy(M) * torch.from_numpy(SW)[:, None]
    rng = np.random.default_rng(SEED)
    for _ in range(EPOCHS):
        order = torch.from_numpy(rng.permutation(len(X)))
        for i in range(0, len(X), BATCH):
            b = order[i:i + BATCH]
            p = (1 - torch.exp(-model(X[b], Fe[b], G[b]))).clamp(1e-6, 1 - 1e-6)
            loss = (nn.functional.binary_cross_entropy(p, Y[b], reduction="none") * Mw[b]).sum()
            loss = loss / Mw[b].sum().clamp(min=1)
            opt.zero_grad(); loss.backward(); opt.step()
    return model.eval()


def f1_report(model, t):
    x, f, g, y, m = DATA[t["name"]]
    with torch.no_grad():
        p = 1 - np.exp(-model(torch.from_numpy(x), torch.from_numpy(f), torch.from_numpy(g)).numpy())
    out = []
    for k in range(y.shape[1]):
        ok = m[:, k] > 0
        pr, yt = p[ok, k] >= 0.5, y[ok, k] > 0
        tp = (pr & yt).sum(); fp = (pr & ~yt).sum(); fn = (~pr & yt).sum()
        out.append(2 * tp / max(1, 2 * tp + fp + fn))
    return out


def export(model, path, idx, nfeat, trained_on):
    W, L = idx["window"], idx["longRun"]
    args = (torch.zeros(2, W, C), torch.zeros(2, nfeat), torch.zeros(2, L))
    axes = {n: {0: "n"} for n in ["x", "f", "g", "w"]}
    torch.onnx.export(model, args, path, opset_version=17, input_names=["x", "f", "g"],
                      output_names=["w"], dynamic_axes=axes)
    json.dump({"kind": "u2c-windows", "window": W, "radius": idx["radius"], "featureCount": nfeat,
               "windowsMs": idx["windowsMs"], "trainedOn": sorted(trained_on), "prior": PRIOR},
              open(path[:-5] + ".json", "w"), indent=1)


DATA = {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=".cache/predict-windows")
    ap.add_argument("--out", default="models")
    ap.add_argument("--loo", action="store_true")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    idx = json.load(open(os.path.join(a.data, "index.json")))
    traces = idx["traces"]
    for t in traces:
        DATA[t["name"]] = load(a.data, t, idx)
    nfeat = traces[0]["featureCount"]
    wls = sorted({t["workload"] for t in traces})
    if not a.only:
        t0 = time.time()
        model = fit(traces, a.data, idx)
        export(model, os.path.join(a.out, "u2c-windows.onnx"), idx, nfeat, wls)
        print("u2c-windows all", f"{time.time() - t0:.0f}s", flush=True)
    if not a.loo:
        return
    os.makedirs(os.path.join(a.out, "loo"), exist_ok=True)
    for held in (a.only.split(",") if a.only else wls):
        t0 = time.time()
        model = fit([t for t in traces if t["workload"] != held], a.data, idx)
        export(model, os.path.join(a.out, "loo", f"u2c-windows-no-{held}.onnx"), idx, nfeat,
               [w for w in wls if w != held])
        for t in traces:
            if t["workload"] == held:
                print(f"held-out {held:10s} {t['name']:12s} F1 by class " +
                      " ".join(f"{v:.3f}" for v in f1_report(model, t)),
                      f"{time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
