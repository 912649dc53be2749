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

// Gathers the input gradient from dcol (same layout as col): one work-item per input element sums
// the (ky, kx) taps that read it. No atomics. The store is fused (gradient_store_value).
__kernel void conv2d_col2im(__global const float* dcol, __global float* dx, const int dx_offset, const int images, const int8 g0, const int8 g1,
                            BACKWARD_STORE_ARGS) {
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
    dx[dx_offset + i] = gradient_store_value(acc, dx_offset + i, R, has_res, gate_out, gate, p0, p1);
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

// Input gradient of a depthwise convolution, gathered per input element, through the fused
// gradient store (common.cl).
__kernel void conv2d_depthwise_backward(__global const float* gy, __global const float* w, __global float* dx,
                                        const int images, const int8 g0, const int8 g1, BACKWARD_STORE_ARGS) {
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
    dx[i] = gradient_store_value(acc, i, R, has_res, gate_out, gate, p0, p1);
}

// Winograd F(2x2, 3x3) for 3x3, stride-1, undilated, ungrouped layers: each 2 x 2 block of outputs
// from a 4 x 4 input tile with 16 multiplications per (input, output) channel pair instead of 36.
// Y = A^T [(G g G^T) . (B^T d B)] A, the 16 elementwise products summed over input channels as 16
// GEMMs (gemm.cl). Layouts: U [16, Cout, C], V [16, C, P], M [16, Cout, P], where P counts the
// tiles of a chunk of images (image, tile row, tile column). Not the bits of a direct convolution:
// used for forward-only passes under --fast.
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1].

// Where tile p of a chunk lies: its image (returned) and the top-left output (oy0, ox0) of its
// m x m outputs; F(2x2, 3x3) and F(4x4, 3x3) share it.
inline int winograd_tile(const int p, const int TH, const int TW, const int m, int* oy0, int* ox0) {
    const int t = p % (TH * TW);
    *oy0 = (t / TW) * m;
    *ox0 = (t % TW) * m;
    return p / (TH * TW);
}

// y = act(v + residual) at output (oy, ox) of channel co of image `image`, v holding the bias;
// nothing past the output's edge (the last tiles' padding). g0 = (Cout, OH, OW, ...).
inline void winograd_store(__global float* y, __global const float* R, const int has_res, const long image, const int co,
                           const int8 g0, const int oy, const int ox, const float v, const int act, const float p0, const float p1) {
    const int CO = g0.s0, OH = g0.s1, OW = g0.s2;
    if (oy >= OH || ox >= OW) return;
    const long at = ((image * CO + co) * OH + oy) * OW + ox;
    float val = v;
    if (has_res) val += R[at];
    y[at] = unary_apply(act, val, p0, p1);
}

// U = G g G^T for one (output, input) channel pair.
__kernel void winograd_weights(__global const float* w, __global float* u, const int cout, const int cin) {
    const int i = get_global_id(0);
    if (i >= cout * cin) return;
    const int co = i / cin, c = i % cin;
    __global const float* g = w + (co * cin + c) * 9;
    float t[4][3];   // G g
    for (int j = 0; j < 3; j++) {
        const float g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
        t[0][j] = g0;
        t[1][j] = 0.5f * (g0 + g1 + g2);
        t[2][j] = 0.5f * (g0 - g1 + g2);
        t[3][j] = g2;
    }
    for (int r = 0; r < 4; r++) {
        const float a = t[r][0], b = t[r][1], c2 = t[r][2];
        const float row[4] = { a, 0.5f * (a + b + c2), 0.5f * (a - b + c2), c2 };
        for (int s = 0; s < 4; s++) u[((r * 4 + s) * cout + co) * cin + c] = row[s];
    }
}

// V = B^T d B for one (image, channel, tile) of the chunk of `images` images from image `n0`.
// g0 = (C, H, W, tilesH, tilesW, padTop, padLeft, 0).
__kernel void winograd_input(__global const float* x, __global float* v, const int n0, const int images, const int8 g0) {
    const int C = g0.s0, H = g0.s1, W = g0.s2, TH = g0.s3, TW = g0.s4, PT = g0.s5, PL = g0.s6;
    const int i = get_global_id(0);
    const int P = images * TH * TW;
    if (i >= C * P) return;
    const int c = i / P, p = i % P;
    int y0, x0;
    const int n = winograd_tile(p, TH, TW, 2, &y0, &x0);
    y0 -= PT;
    x0 -= PL;
    __global const float* xc = x + ((long)(n0 + n) * C + c) * H * W;
    float d[4][4];
    for (int r = 0; r < 4; r++) {
        const int yy = y0 + r;
        for (int s = 0; s < 4; s++) {
            const int xx = x0 + s;
            d[r][s] = yy >= 0 && yy < H && xx >= 0 && xx < W ? xc[yy * W + xx] : 0.0f;
        }
    }
    float e[4][4];   // B^T d
    for (int s = 0; s < 4; s++) {
        e[0][s] = d[0][s] - d[2][s];
        e[1][s] = d[1][s] + d[2][s];
        e[2][s] = d[2][s] - d[1][s];
        e[3][s] = d[1][s] - d[3][s];
    }
    for (int r = 0; r < 4; r++) {
        const float row[4] = { e[r][0] - e[r][2], e[r][1] + e[r][2], e[r][2] - e[r][1], e[r][1] - e[r][3] };
        for (int s = 0; s < 4; s++) v[((long)(r * 4 + s) * C + c) * P + p] = row[s];
    }
}

// y = act(A^T m A + bias + residual) for one (image, output channel, tile) of the chunk.
// g0 = (Cout, OH, OW, tilesH, tilesW, 0, 0, 0).
__kernel void winograd_output(__global const float* m, __global const float* bias, const int has_bias,
                              __global const float* R, const int has_res, __global float* y,
                              const int n0, const int images, const int8 g0, const int act, const float p0, const float p1) {
    const int CO = g0.s0, TH = g0.s3, TW = g0.s4;
    const int i = get_global_id(0);
    const int P = images * TH * TW;
    if (i >= CO * P) return;
    const int co = i / P, p = i % P;
    int oy0, ox0;
    const int n = winograd_tile(p, TH, TW, 2, &oy0, &ox0);
    float q[4][4];
    for (int e = 0; e < 16; e++) q[e / 4][e % 4] = m[((long)e * CO + co) * P + p];
    float h[2][4];   // A^T q
    for (int s = 0; s < 4; s++) {
        h[0][s] = q[0][s] + q[1][s] + q[2][s];
        h[1][s] = q[1][s] - q[2][s] - q[3][s];
    }
    const float b = has_bias ? bias[co] : 0.0f;
    for (int r = 0; r < 2; r++) {
        const float out[2] = { h[r][0] + h[r][1] + h[r][2], h[r][1] - h[r][2] - h[r][3] };
        for (int s = 0; s < 2; s++) winograd_store(y, R, has_res, n0 + n, co, g0, oy0 + r, ox0 + s, out[s] + b, act, p0, p1);
    }
}

// Winograd F(4x4, 3x3) (Lavin and Gray's points 0, 1, -1, 2, -2): each 4 x 4 block of outputs from
// a 6 x 6 input tile with 36 multiplications per channel pair instead of 144 (F(2x2, 3x3): 64).
// Its transforms cost more and round more (G's sixths, A^T's eights), so each layer takes the
// tile the tuner measured faster. Layouts as F(2x2, 3x3)'s with 36 in place of 16.
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
//   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1],
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].

// o = G (a, b, c): one column (or row) of G g.
inline void winograd4_g(const float a, const float b, const float c, float* o) {
    const float even = a + c, odd = b;
    o[0] = 0.25f * a;
    o[1] = -(even + odd) / 6.0f;
    o[2] = -(even - odd) / 6.0f;
    const float quarter = a * 0.25f + c;   // a / 24 + c / 6 = (a / 4 + c) / 6
    o[3] = (quarter + 0.5f * odd) / 6.0f;
    o[4] = (quarter - 0.5f * odd) / 6.0f;
    o[5] = c;
}

// o = B^T (d0 .. d5).
inline void winograd4_bt(const float* d, float* o) {
    o[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    o[1] = d[3] + d[4] - 4.0f * (d[1] + d[2]);
    o[2] = 4.0f * (d[1] - d[2]) + d[4] - d[3];
    o[3] = 2.0f * (d[3] - d[1]) + d[4] - d[2];
    o[4] = 2.0f * (d[1] - d[3]) + d[4] - d[2];
    o[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

// o = A^T (q0 .. q5).
inline void winograd4_at(const float* q, float* o) {
    const float s12 = q[1] + q[2], d12 = q[1] - q[2], s34 = q[3] + q[4], d34 = q[3] - q[4];
    o[0] = q[0] + s12 + s34;
    o[1] = d12 + 2.0f * d34;
    o[2] = s12 + 4.0f * s34;
    o[3] = d12 + 8.0f * d34 + q[5];
}

// U = G g G^T for one (output, input) channel pair.
__kernel void winograd4_weights(__global const float* w, __global float* u, const int cout, const int cin) {
    const int i = get_global_id(0);
    if (i >= cout * cin) return;
    const int co = i / cin, c = i % cin;
    __global const float* g = w + (co * cin + c) * 9;
    float t[3][6];   // (G g)^T: column j of G g as row j
    for (int j = 0; j < 3; j++) winograd4_g(g[j], g[3 + j], g[6 + j], t[j]);
    for (int r = 0; r < 6; r++) {
        float row[6];
        winograd4_g(t[0][r], t[1][r], t[2][r], row);
        for (int s = 0; s < 6; s++) u[((r * 6 + s) * cout + co) * cin + c] = row[s];
    }
}

// V = B^T d B for one (image, channel, tile) of the chunk of `images` images from image `n0`.
// g0 = (C, H, W, tilesH, tilesW, padTop, padLeft, 0).
__kernel void winograd4_input(__global const float* x, __global float* v, const int n0, const int images, const int8 g0) {
    const int C = g0.s0, H = g0.s1, W = g0.s2, TH = g0.s3, TW = g0.s4, PT = g0.s5, PL = g0.s6;
    const int i = get_global_id(0);
    const int P = images * TH * TW;
    if (i >= C * P) return;
    const int c = i / P, p = i % P;
    int y0, x0;
    const int n = winograd_tile(p, TH, TW, 4, &y0, &x0);
    y0 -= PT;
    x0 -= PL;
    __global const float* xc = x + ((long)(n0 + n) * C + c) * H * W;
    float e[6][6];   // (B^T d)^T: column s of B^T d as row s
    for (int s = 0; s < 6; s++) {
        const int xx = x0 + s;
        float col[6];
        for (int r = 0; r < 6; r++) {
            const int yy = y0 + r;
            col[r] = yy >= 0 && yy < H && xx >= 0 && xx < W ? xc[yy * W + xx] : 0.0f;
        }
        winograd4_bt(col, e[s]);
    }
    for (int r = 0; r < 6; r++) {
        float col[6], row[6];
        for (int s = 0; s < 6; s++) col[s] = e[s][r];
        winograd4_bt(col, row);
        for (int s = 0; s < 6; s++) v[((long)(r * 6 + s) * C + c) * P + p] = row[s];
    }
}

// y = act(A^T m A + bias + residual) for one (image, output channel, tile) of the chunk.
// g0 = (Cout, OH, OW, tilesH, tilesW, 0, 0, 0).
__kernel void winograd4_output(__global const float* m, __global const float* bias, const int has_bias,
                               __global const float* R, const int has_res, __global float* y,
                               const int n0, const int images, const int8 g0, const int act, const float p0, const float p1) {
    const int CO = g0.s0, OH = g0.s1, OW = g0.s2, TH = g0.s3, TW = g0.s4;
    const int i = get_global_id(0);
    const int P = images * TH * TW;
    if (i >= CO * P) return;
    const int co = i / P, p = i % P;
    int oy0, ox0;
    const int n = winograd_tile(p, TH, TW, 4, &oy0, &ox0);
    float h[6][4];   // (A^T q)^T: column s of A^T q as row s
    for (int s = 0; s < 6; s++) {
        float col[6];
        for (int r = 0; r < 6; r++) col[r] = m[((long)(r * 6 + s) * CO + co) * P + p];
        winograd4_at(col, h[s]);
    }
    const float b = has_bias ? bias[co] : 0.0f;
    for (int r = 0; r < 4; r++) {
        if (oy0 + r >= OH) continue;
        float row[6], out[4];
        for (int s = 0; s < 6; s++) row[s] = h[s][r];
        winograd4_at(row, out);
        for (int s = 0; s < 4; s++) winograd_store(y, R, has_res, n0 + n, co, g0, oy0 + r, ox0 + s, out[s] + b, act, p0, p1);
    }
}
