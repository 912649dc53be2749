#!/usr/bin/env python3
"""The most exact incremental occlusion can save on ResNet-50 (issue 13), counted in FLOPs.

An occluded copy differs from the clean image only inside its window. Recomputing, at every
convolution, only the output rows and columns whose receptive field meets the changed region of
that convolution's input (and keeping the clean activations elsewhere) is exact. This counts the
multiply-adds of that recomputation for every window of an occlusion run (window 16, stride 8 on
224x224: 729 windows) against a full forward, through ResNet-50's bottlenecks: the changed region
after a block is the union of its main path's and its skip path's. Pooling changes the region but
costs no multiply-adds; the classifier's global pool and fully connected layer are left out (the
changed region covers the whole 7x7 map long before them).

It is a ceiling: an implementation also pays for gathering the windows, splicing them into the
clean activations and launching many small convolutions.

    python3 Benchmarks/incremental_occlusion_ceiling.py [--window 16] [--stride 8] [--size 224]
"""
import argparse
import math


def resnet50():
    """The stem, then each bottleneck as (main path convolutions, skip convolution or None);
    a convolution is (in channels, out channels, kernel, stride, pad), a pool (kernel, stride, pad)."""
    stem = [("conv", (3, 64, 7, 2, 3)), ("pool", (3, 2, 1))]
    blocks = []
    for cin, mid, cout, stride, count in [(64, 64, 256, 1, 3), (256, 128, 512, 2, 4), (512, 256, 1024, 2, 6), (1024, 512, 2048, 2, 3)]:
        for i in range(count):
            s, ci = (stride, cin) if i == 0 else (1, cout)
            main = [(ci, mid, 1, 1, 0), (mid, mid, 3, s, 1), (mid, cout, 1, 1, 0)]
            blocks.append((main, (ci, cout, 1, s, 0) if i == 0 else None))
    return stem, blocks


def step(region, size, kernel, stride, pad):
    """The output region a changed input region reaches, and the output size."""
    out = (size + 2 * pad - kernel) // stride + 1
    lo = lambda a: max(0, math.ceil((a + pad - kernel + 1) / stride))
    hi = lambda b: min(out - 1, (b + pad) // stride)
    y0, y1, x0, x1 = region
    return (lo(y0), hi(y1), lo(x0), hi(x1)), out


def costs(y, x, window, size):
    """(full, incremental) multiply-adds for one occluded copy with its window at (y, x)."""
    stem, blocks = resnet50()
    region, h = (y, y + window - 1, x, x + window - 1), size
    full = inc = 0.0

    def conv(region, h, c):
        cin, cout, k, s, p = c
        new, o = step(region, h, k, s, p)
        macs = o * o * cin * cout * k * k
        area = (new[1] - new[0] + 1) * (new[3] - new[2] + 1)
        return new, o, macs, macs * area / (o * o)

    for kind, c in stem:
        if kind == "conv":
            region, h, f, g = conv(region, h, c)
            full, inc = full + f, inc + g
        else:
            region, h = step(region, h, *c)
    for main, skip in blocks:
        start, start_h = region, h
        for c in main:
            region, h, f, g = conv(region, h, c)
            full, inc = full + f, inc + g
        if skip:
            other, _, f, g = conv(start, start_h, skip)
            full, inc = full + f, inc + g
        else:
            other = start
        region = (min(region[0], other[0]), max(region[1], other[1]), min(region[2], other[2]), max(region[3], other[3]))
    return full, inc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    positions = range(0, a.size - a.window + 1, a.stride)
    total_full = total_inc = 0.0
    for y in positions:
        for x in positions:
            f, g = costs(y, x, a.window, a.size)
            total_full, total_inc = total_full + f, total_inc + g
    n = len(positions) ** 2
    centre = (a.size - a.window) // 2
    f, g = costs(centre, centre, a.window, a.size)
    print(f"{n} windows of {a.window} (stride {a.stride}) on {a.size}x{a.size}: a full forward is {total_full / n / 1e9:.2f} GMAC, "
          f"the exact incremental one {total_inc / n / 1e9:.2f} GMAC on average: at most {total_full / total_inc:.2f}x fewer FLOPs "
          f"({f / g:.2f}x for the centre window)")


if __name__ == "__main__":
    main()
