// Convolution helpers around gemm.cl. Layouts: x [N, C, H, W], weights [Cout, C/groups, kH, kW],
// col [images, groups, C/groups * kH * kW, OH * OW] (im2col of a chunk of images), all row-major.
// Geometry arrives as int8 vectors: g0 = (C, H, W, kH, kW, OH, OW, groups),
// g1 = (strideH, strideW, padTop, padLeft, dilationH, dilationW, 0, 0).

__kernel void conv2d_im2col(__global const float* x, const int x_offset, __global float* col, const int images, const int8 g0, const int8 g1) {
    const int C = g0.s0, H = g0.s1, W = g0.s2, KH = g0.s3, KW = g0.s4, OH = g0.s5, OW = g0.s6;
    const int SH = g1.s0, SW = g1.s1, PT = g1.s2, PL = g1.s3, DH = g1.s4, DW = g1.s5;
    // One work-item per element of col, in col's own order so that writes are contiguous:
    // image n, row r = (c, ky, kx) over all channels, output pixel p.
    const int i = get_global_id(0);
    const int plane = OH * OW, rows = C * KH * KW;
    if (i >= images * rows * plane) return;
    const int p = i % plane, r = (i / plane) % rows, n = i / (plane * rows);
    const int kx = r % KW, ky = (r / KW) % KH, c = r / (KW * KH);
    const int oy = p / OW, ox = p % OW;
    const int iy = oy * SH - PT + ky * DH, ix = ox * SW - PL + kx * DW;
    float v = 0.0f;
    if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = x[x_offset + ((n * C + c) * H + iy) * W + ix];
    col[i] = v;
}

// The output coordinate whose tap k reads input coordinate i along one axis, or -1 if none.
inline int tap_output(int i, int pad, int k, int dilation, int stride, int out_size) {
    int t = i + pad - k * dilation;
    if (t < 0 || t % stride != 0) return -1;
    t /= stride;
    return t < out_size ? t : -1;
}

// Gathers the input gradient from dcol (same layout as col): one work-item per input element sums
// the (ky, kx) taps that read it. No atomics.
__kernel void conv2d_col2im(__global const float* dcol, __global float* dx, const int dx_offset, const int images, const int8 g0, const int8 g1) {
    const int C = g0.s0, H = g0.s1, W = g0.s2, KH = g0.s3, KW = g0.s4, OH = g0.s5, OW = g0.s6;
    const int SH = g1.s0, SW = g1.s1, PT = g1.s2, PL = g1.s3, DH = g1.s4, DW = g1.s5;
    const int i = get_global_id(0);
    if (i >= images * C * H * W) return;
    const int ix = i % W, iy = (i / W) % H, c = (i / (W * H)) % C, n = i / (W * H * C);
    float acc = 0.0f;
    for (int ky = 0; ky < KH; ky++) {
        const int oy = tap_output(iy, PT, ky, DH, SH, OH);
        if (oy < 0) continue;
        for (int kx = 0; kx < KW; kx++) {
            const int ox = tap_output(ix, PL, kx, DW, SW, OW);
            if (ox < 0) continue;
            acc += dcol[((long)n * C * KH * KW + (c * KH + ky) * KW + kx) * (OH * OW) + oy * OW + ox];
        }
    }
    dx[dx_offset + i] = acc;
}

// One filter per channel (groups == C == Cout), with bias and activation epilogue (codes as common.cl).
__kernel void conv2d_depthwise(__global const float* x, __global const float* w, __global const float* bias, const int has_bias,
                               __global float* y, const int images, const int8 g0, const int8 g1,
                               const int act, const float p0, const float p1) {
    const int C = g0.s0, H = g0.s1, W = g0.s2, KH = g0.s3, KW = g0.s4, OH = g0.s5, OW = g0.s6;
    const int SH = g1.s0, SW = g1.s1, PT = g1.s2, PL = g1.s3, DH = g1.s4, DW = g1.s5;
    const int i = get_global_id(0);
    if (i >= images * C * OH * OW) return;
    const int ox = i % OW, oy = (i / OW) % OH, c = (i / (OW * OH)) % C, n = i / (OW * OH * C);
    float acc = has_bias ? bias[c] : 0.0f;
    for (int ky = 0; ky < KH; ky++) {
        int iy = oy * SH - PT + ky * DH;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < KW; kx++) {
            int ix = ox * SW - PL + kx * DW;
            if (ix >= 0 && ix < W) acc += x[((n * C + c) * H + iy) * W + ix] * w[(c * KH + ky) * KW + kx];
        }
    }
    y[i] = unary_apply(act, acc, p0, p1);
}

// Input gradient of a depthwise convolution, gathered per input element.
__kernel void conv2d_depthwise_backward(__global const float* gy, __global const float* w, __global float* dx,
                                        const int images, const int8 g0, const int8 g1) {
    const int C = g0.s0, H = g0.s1, W = g0.s2, KH = g0.s3, KW = g0.s4, OH = g0.s5, OW = g0.s6;
    const int SH = g1.s0, SW = g1.s1, PT = g1.s2, PL = g1.s3, DH = g1.s4, DW = g1.s5;
    const int i = get_global_id(0);
    if (i >= images * C * H * W) return;
    const int ix = i % W, iy = (i / W) % H, c = (i / (W * H)) % C, n = i / (W * H * C);
    float acc = 0.0f;
    for (int ky = 0; ky < KH; ky++) {
        const int oy = tap_output(iy, PT, ky, DH, SH, OH);
        if (oy < 0) continue;
        for (int kx = 0; kx < KW; kx++) {
            const int ox = tap_output(ix, PL, kx, DW, SW, OW);
            if (ox < 0) continue;
            acc += gy[((n * C + c) * OH + oy) * OW + ox] * w[(c * KH + ky) * KW + kx];
        }
    }
    dx[i] = acc;
}
