// 2-D max and average pooling on [N, C, H, W] (planes = N * C), PyTorch window semantics
// (XAICore/Geometry.swift poolWindow): a window starts at o * stride - padBefore, its padded end
// is clipped to size + padAfter (the average's divisor with count_include_pad), then to the input.
// Geometry: g = (H, W, OH, OW, kH, kW, strideH, strideW), pads = (top, left, bottom, right).
// Backward gathers per input element over the windows that contain it; max pooling credits only
// the first maximum of each window (row-major scan), as PyTorch does.

inline void pool_window(int o, int size, int k, int s, int p0, int p1, int* start, int* end, int* padded) {
    int st = o * s - p0;
    int e = min(st + k, size + p1);
    *padded = e - st;
    *start = max(st, 0);
    *end = min(e, size);
}

__kernel void pool2d_forward(__global const float* x, __global float* y, const int planes, const int8 g, const int4 pads,
                             const int is_max, const int include_pad) {
    const int H = g.s0, W = g.s1, OH = g.s2, OW = g.s3;
    const int i = get_global_id(0);
    if (i >= planes * OH * OW) return;
    const int ox = i % OW, oy = (i / OW) % OH, pl = i / (OW * OH);
    int y0, y1, py, x0, x1, px;
    pool_window(oy, H, g.s4, g.s6, pads.s0, pads.s2, &y0, &y1, &py);
    pool_window(ox, W, g.s5, g.s7, pads.s1, pads.s3, &x0, &x1, &px);
    __global const float* src = x + (long)pl * H * W;
    float acc = is_max ? -INFINITY : 0.0f;
    for (int iy = y0; iy < y1; iy++)
        for (int ix = x0; ix < x1; ix++) {
            float v = src[iy * W + ix];
            acc = is_max ? fmax(acc, v) : acc + v;
        }
    if (!is_max) acc /= (float)(include_pad ? py * px : (y1 - y0) * (x1 - x0));
    y[i] = acc;
}

__kernel void pool2d_backward(__global const float* x, __global const float* gy, __global float* dx, const int planes,
                              const int8 g, const int4 pads, const int is_max, const int include_pad) {
    const int H = g.s0, W = g.s1, OH = g.s2, OW = g.s3, KH = g.s4, KW = g.s5, SH = g.s6, SW = g.s7;
    const int i = get_global_id(0);
    if (i >= planes * H * W) return;
    const int ix = i % W, iy = (i / W) % H, pl = i / (W * H);
    __global const float* src = x + (long)pl * H * W;
    __global const float* g_out = gy + (long)pl * OH * OW;
    // Output windows that can contain (iy, ix): o * S - P <= i < o * S - P + K.
    // A conservative range; membership is tested below.
    int oy_lo = max(0, (iy + pads.s0 - KH) / SH), oy_hi = min(OH - 1, (iy + pads.s0) / SH + 1);
    int ox_lo = max(0, (ix + pads.s1 - KW) / SW), ox_hi = min(OW - 1, (ix + pads.s1) / SW + 1);
    float acc = 0.0f;
    for (int oy = oy_lo; oy <= oy_hi; oy++) {
        int y0, y1, py;
        pool_window(oy, H, KH, SH, pads.s0, pads.s2, &y0, &y1, &py);
        if (iy < y0 || iy >= y1) continue;
        for (int ox = ox_lo; ox <= ox_hi; ox++) {
            int x0, x1, px;
            pool_window(ox, W, KW, SW, pads.s1, pads.s3, &x0, &x1, &px);
            if (ix < x0 || ix >= x1) continue;
            float go = g_out[oy * OW + ox];
            if (is_max) {
                int best = y0 * W + x0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        if (src[yy * W + xx] > src[best]) best = yy * W + xx;
                if (best == iy * W + ix) acc += go;
            } else {
                acc += go / (float)(include_pad ? py * px : (y1 - y0) * (x1 - x0));
            }
        }
    }
    dx[i] = acc;
}
