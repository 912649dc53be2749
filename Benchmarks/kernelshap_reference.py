#!/usr/bin/env python3
"""KernelSHAP's accuracy on ResNet-50's superpixel game, against a reference from many evaluations.

For a 45-segment picture no exact Shapley values exist, so this script records the game once: the
logit of the explained class for 14,072 coalitions (the full and empty ones; every coalition of 1,
2, m-2 and m-1 segments; 6,000 random complementary pairs of the other sizes, half drawn by the
Shapley kernel, half by uniform size) through xai's own Python package, and fits a reference to all
of them (KernelSHAP's constrained weighted least squares with every size stratum given its exact
kernel mass). Then:

  * `simulate`: re-implements KernelSHAP's estimator as xai runs it (sizes 1 and m-1 enumerated,
    the others drawn in complementary pairs by the kernel) with and without the control variate
    (`CoalitionSurrogate`), draws its coalitions from the recorded ones, and reports over 30 seeds
    the mean relative L2 error of the full-budget answer against the reference, its Spearman
    correlation with it, and the split-half correlation xai reports;
  * `score RAW.npy ...`: the same error and correlation for maps `xai explain` wrote
    (`<out>/<image>/kernelshap.raw.npy`; the segments must be the recorded ones).

    python3 Benchmarks/kernelshap_reference.py record OUT      # about 8 minutes on 2 cores
    python3 Benchmarks/kernelshap_reference.py simulate OUT
    python3 Benchmarks/kernelshap_reference.py score OUT RAW.npy ...

Needs numpy, scipy and the built library (`make build`; XAI_LIBRARY points at libxaic.so).
"""
import json
import os
import sys
import time

import numpy as np
from scipy.stats import spearmanr

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PHOTO = os.path.join(ROOT, "Tests/Fixtures/images/photo.jpg")


def record(out):
    sys.path.insert(0, os.path.join(ROOT, "python"))
    os.environ.setdefault("XAI_LIBRARY", os.path.join(ROOT, ".build/release/libxaic.so"))
    import xai
    model = xai.Model("resnet50")
    x = xai.preprocess(PHOTO, model)
    e = model.explain(x, method="kernelshap", samples=50, progress=False)  # xai's segments and target
    seg, target = e.segments[0].astype(np.int64), int(e.targets[0])
    m = int(seg.max()) + 1
    rng = np.random.default_rng(1)
    rows = [np.ones(m, bool), np.zeros(m, bool)]
    for single in (True, False):
        for i in range(m):
            r = np.zeros(m, bool) if single else np.ones(m, bool)
            r[i] = single
            rows.append(r)
    for i in range(m):
        for j in range(i + 1, m):
            r = np.zeros(m, bool)
            r[[i, j]] = True
            rows += [r, ~r]
    sizes = np.arange(3, m - 2)
    kernel = (m - 1) / (sizes * (m - sizes))
    kernel /= kernel.sum()
    for t in range(6000):
        s = rng.choice(sizes, p=kernel) if t % 2 == 0 else rng.choice(sizes)
        r = np.zeros(m, bool)
        r[rng.choice(m, s, replace=False)] = True
        rows += [r, ~r]
    z = np.array(rows)
    y = np.empty(len(z))
    start = time.time()
    for b in range(0, len(z), 32):
        mask = z[b:b + 32][:, seg].astype(np.float32)
        y[b:b + 32] = model.predict(x[0][None] * mask[:, None])[:, target]  # baseline 0, as xai's default
        if b % 1280 == 0:
            print(f"{b}/{len(z)} coalitions, {time.time() - start:.0f} s", flush=True)
    os.makedirs(out, exist_ok=True)
    np.savez_compressed(os.path.join(out, "game.npz"), coalitions=z, scores=y, segments=seg, target=target)


class Game:
    def __init__(self, out):
        d = np.load(os.path.join(out, "game.npz"))
        self.z, self.y, self.segments = d["coalitions"], d["scores"], d["segments"]
        self.m = m = self.z.shape[1]
        self.full, self.empty = self.y[0], self.y[1]
        size = self.z.sum(1)
        self.enumerated = [i for i in range(len(self.z)) if size[i] in (1, m - 1)]
        self.pairs = {}  # smaller size -> first row of each (coalition, complement) pair
        for i in range(2 + 2 * m, len(self.z) - 1, 2):
            self.pairs.setdefault(min(size[i], size[i + 1]), []).append(i)
        idx, w = list(self.enumerated), [self.kernel(1) * 2 / (2 * m)] * len(self.enumerated)
        for s, firsts in self.pairs.items():
            mass = self.kernel(s) * (1 if 2 * s == m else 2)
            for i in firsts:
                idx += [i, i + 1]
                w += [mass / (2 * len(firsts))] * 2
        self.reference = self.plain(np.array(idx), np.array(w))

    def kernel(self, s):
        return (self.m - 1) / (s * (self.m - s))

    def wls(self, idx, w, y, total, base):
        """KernelSHAP's fit: weighted least squares with sum(phi) == total (last player eliminated)."""
        x = self.z[idx].astype(float)
        last = x[:, -1:]
        a = x[:, :-1] - last
        t = y - base - last[:, 0] * total
        p = np.linalg.solve((a * w[:, None]).T @ a + 1e-10 * np.eye(self.m - 1), (a * w[:, None]).T @ t)
        return np.append(p, total - p.sum())

    def plain(self, idx, w):
        return self.wls(idx, w, self.y[idx], self.full - self.empty, self.empty)

    def controlled(self, idx, w, ridge=0.03):
        """xai's CoalitionSurrogate (at least 2 rows per parameter of u and a; a ridge on the c_i)."""
        m, k = self.m, self.m - 1
        x = self.z[idx].astype(float)
        size = x.sum(1).astype(int)
        seen = sorted(set(size))
        onehot = (size[:, None] == np.array(seen)[None]).astype(float)
        b = lambda s: ((np.asarray(s) - m / 2) / m) ** 2
        if len(idx) < 2 * (k + len(seen)):
            return self.plain(idx, w)
        features = np.c_[x[:, :k], onehot, x * b(size)[:, None]]
        penalty = np.r_[np.zeros(k + len(seen)), np.full(m, ridge * w.mean())]
        coef = np.linalg.solve((features * w[:, None]).T @ features + np.diag(penalty) + 1e-12 * np.eye(len(penalty)),
                               (features * w[:, None]).T @ self.y[idx])
        g = features @ coef
        a = np.append(coef[:k], 0)
        c = coef[k + len(seen):]
        u_all = self.full - a.sum() - b(m) * c.sum()
        t = np.arange(m)
        own = b(t + 1).mean()
        other = (t / (m - 1) * (b(t + 1) - b(t))).mean()
        shapley = a + (u_all - self.empty) / m + c * own + (c.sum() - c) * other
        return self.wls(idx, w, self.y[idx] - g, 0.0, 0.0) + shapley

    def draw(self, rng, budget):
        """Enumerated sizes 1 and m-1, then complementary pairs with sizes drawn by the kernel."""
        m = self.m
        levels = np.arange(2, (m + 1) // 2)
        p = np.array([self.kernel(s) for s in levels])
        p /= p.sum()
        order = {s: rng.permutation(len(f)) for s, f in self.pairs.items()}
        used = dict.fromkeys(self.pairs, 0)
        firsts = []
        for _ in range((budget - len(self.enumerated)) // 2):
            s = rng.choice(levels, p=p)
            firsts.append(self.pairs[s][order[s][used[s] % len(order[s])]])
            used[s] += 1
        return firsts

    def estimate(self, firsts, controlled):
        m = self.m
        idx = np.array(self.enumerated + [i for f in firsts for i in (f, f + 1)])
        total = sum(self.kernel(s) * 2 for s in range(1, m // 2 + 1))
        w = np.r_[np.full(len(self.enumerated), self.kernel(1) * 2 / (2 * m)),
                  np.full(2 * len(firsts), (total - self.kernel(1) * 2) / (2 * len(firsts)))]
        return self.controlled(idx, w) if controlled else self.plain(idx, w)

    def versus_reference(self, phi):
        r = self.reference
        return float(np.linalg.norm(phi - r) / np.linalg.norm(r)), float(spearmanr(phi, r)[0])


def simulate(out):
    game = Game(out)
    rows = []
    for budget in (300, 520, 600, 1000):
        for controlled in (False, True):
            errors, ranks, halves = [], [], []
            for seed in range(30):
                firsts = game.draw(np.random.default_rng(500 + seed), budget)
                n = len(firsts)
                e, r = game.versus_reference(game.estimate(firsts, controlled))
                errors.append(e)
                ranks.append(r)
                halves.append(spearmanr(game.estimate(firsts[:n // 2], controlled), game.estimate(firsts[n // 2:], controlled))[0])
            row = dict(samples=budget, controlVariate=controlled, relativeError=float(np.mean(errors)),
                       spearmanWithReference=float(np.mean(ranks)), splitHalf=float(np.mean(halves)), splitHalfMin=float(np.min(halves)))
            rows.append(row)
            print(json.dumps(row))
    with open(os.path.join(out, "simulation.json"), "w") as f:
        json.dump(rows, f, indent=1)


def score(out, paths):
    game = Game(out)
    for path in paths:
        e, r = game.versus_reference(np.load(path).ravel())
        print(f"{path}: relative error {e:.3f}, Spearman with the reference {r:.3f}")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("record", "simulate", "score"):
        sys.exit(__doc__)
    {"record": lambda: record(sys.argv[2]), "simulate": lambda: simulate(sys.argv[2]),
     "score": lambda: score(sys.argv[2], sys.argv[3:])}[sys.argv[1]]()
