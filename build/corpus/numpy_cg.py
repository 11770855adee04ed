"""Corpus workload: CG on a banded SPD system (NPB-CG analogue). Usage: numpy_cg.py SECONDS [N]."""
import sys, time
import numpy as np

rng = np.random.default_rng(0)
n, bands = (int(sys.argv[2]) if len(sys.argv) > 2 else 20000), 12
offs = rng.choice(np.arange(1, 2000), bands, replace=False)
vals = rng.uniform(0.0, 0.05, bands)


def matvec(x):
    y = 2.0 * x
    for o, v in zip(offs, vals):
        y[o:] += v * x[:-o]
        y[:-o] += v * x[o:]
    return y


end = time.time() + float(sys.argv[1])
rounds = 0
while time.time() < end and rounds < 100000:
    b = rng.standard_normal(n)
    x = np.zeros(n)
    r = b - matvec(x)
    p = r.copy()
    rs = r @ r
    for _ in range(200):
        ap = matvec(p)
        a = rs / (p @ ap)
        x += a * p
        r -= a * ap
        nrs = r @ r
        if nrs < 1e-20:
            break
        p = r + (nrs / rs) * p
        rs = nrs
    rounds += 1
