"""Train the u2cm phase-2 dirty-page models and export them to ONNX (opset 17).

Run with Debian's PyTorch: /usr/bin/python3 models/train.py [--data DIR] [--out DIR] [--loo]
Data comes from models/dataset.ts (same window code as the online predictor).

Models (inputs x [N,16,5] = per step: own dirty bit, neighbours' mean dirty bit, own access bit,
neighbours' mean access bit, mapping-present bit (0 before the mapping appeared); f [N,F] normalised system/process features; output p [N,3]):
  u2c  — LSTM(5→16) over the window; tokens = [LSTM state, Linear(F→16)(f), Linear(16→16)(own
         bits)]; 2-head self-attention over the 3 tokens; mean; 3 sigmoid heads. Trained on
         phase-1-unstable pages only (stable pages use the data-shift rule).
  lstm — baseline: LSTM(1→16) over the page's own dirty bits only, Linear(16→3), sigmoid; no
         attention, no features, no phase split (trained on every sampled page).
Hyper-parameters: seed 0, Adam lr 3e-3, batch 512, 3 epochs, BCE loss, hidden 16.
--loo also trains one model per held-out workload (models/loo/<kind>-no-<workload>.onnx).
"""
import argparse, json, os
import numpy as np
import torch
import torch.nn as nn

HID = 16
C = 5  # channels per time step (src/predict/history.ts CHANNELS)
EPOCHS = 3
BATCH = 512
LR = 3e-3
SEED = 0


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


def load(data, names, kind):
    idx = json.load(open(os.path.join(data, "index.json")))
    w = idx["window"]
    xs, fs, ys = [], [], []
    for t in idx["traces"]:
        if t["name"] not in names:
            continue
        n, F = t["n"], t["featureCount"]
        x = np.fromfile(os.path.join(data, t["name"] + ".x.f32"), np.float32).reshape(n, w, C)
        f = np.fromfile(os.path.join(data, t["name"] + ".f.f32"), np.float32).reshape(n, F)
        y = np.fromfile(os.path.join(data, t["name"] + ".y.u8"), np.uint8).reshape(n, 3)
        c = np.fromfile(os.path.join(data, t["name"] + ".c.u8"), np.uint8)
        keep = c == 0 if kind == "u2c" else np.ones(n, bool)
        xs.append(x[keep]); fs.append(f[keep]); ys.append(y[keep])
    return np.concatenate(xs), np.concatenate(fs), np.concatenate(ys).astype(np.float32), w


def train(kind, x, f, y, w):
    torch.manual_seed(SEED)
    g = np.random.default_rng(SEED)
    model = U2C(w, f.shape[1]) if kind == "u2c" else LSTMBase(w, f.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    X, Fe, Y = torch.from_numpy(x), torch.from_numpy(f), torch.from_numpy(y)
    for _ in range(EPOCHS):
        order = torch.from_numpy(g.permutation(len(X)))
        for i in range(0, len(X), BATCH):
            b = order[i:i + BATCH]
            p = model(X[b], Fe[b]) if kind == "u2c" else model(X[b])
            loss = nn.functional.binary_cross_entropy(p, Y[b])
            opt.zero_grad(); loss.backward(); opt.step()
    return model.eval()


def export(model, kind, w, nfeat, path, trained_on):
    x = torch.zeros(2, w, C); f = torch.zeros(2, nfeat)
    args, names = ((x, f), ["x", "f"]) if kind == "u2c" else ((x,), ["x"])
    axes = {n: {0: "n"} for n in names + ["p"]}
    torch.onnx.export(model, args, path, opset_version=17, input_names=names, output_names=["p"],
                      dynamic_axes=axes)
    meta = {"kind": kind, "window": w, "radius": 2, "horizon": 3, "featureCount": nfeat,
            "trainedOn": sorted(trained_on)}
    json.dump(meta, open(path[:-5] + ".json", "w"), indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=".cache/predict-data")
    ap.add_argument("--out", default="models")
    ap.add_argument("--loo", action="store_true")
    ap.add_argument("--kinds", default="u2c,lstm")
    a = ap.parse_args()
    torch.set_num_threads(1)
    idx = json.load(open(os.path.join(a.data, "index.json")))
    by_wl = {}
    for t in idx["traces"]:
        by_wl.setdefault(t["workload"], []).append(t["name"])
    everything = [n for ns in by_wl.values() for n in ns]
    for kind in a.kinds.split(","):
        x, f, y, w = load(a.data, everything, kind)
        export(train(kind, x, f, y, w), kind, w, f.shape[1],
               os.path.join(a.out, "u2c-predictor.onnx" if kind == "u2c" else "lstm.onnx"),
               list(by_wl))
        print(kind, "all", len(x), flush=True)
        if not a.loo:
            continue
        os.makedirs(os.path.join(a.out, "loo"), exist_ok=True)
        for held in by_wl:
            names = [n for wl, ns in by_wl.items() if wl != held for n in ns]
            x, f, y, w = load(a.data, names, kind)
            export(train(kind, x, f, y, w), kind, w, f.shape[1],
                   os.path.join(a.out, "loo", f"{kind}-no-{held}.onnx"),
                   [wl for wl in by_wl if wl != held])
            print(kind, "without", held, len(x), flush=True)


if __name__ == "__main__":
    main()
