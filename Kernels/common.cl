// Shared by every kernel family (prepended to each program): the pointwise functions of
// XAICore's UnaryOp, by code: 0 identity, 1 relu, 2 clip(p0, p1), 3 leaky relu(p0), 4 sigmoid,
// 5 tanh, 6 silu, 7 hard sigmoid(p0, p1), 8 hard swish, 9 gelu (erf), 10 gelu (tanh), 11 erf,
// 12 exp, 13 sqrt, 14 pow(p0).

inline float unary_apply(int code, float x, float p0, float p1) {
    switch (code) {
    case 1: return x > 0.0f ? x : 0.0f;
    case 2: return fmin(fmax(x, p0), p1);
    case 3: return x >= 0.0f ? x : p0 * x;
    case 4: return 1.0f / (1.0f + exp(-x));
    case 5: return tanh(x);
    case 6: return x / (1.0f + exp(-x));
    case 7: return fmin(fmax(p0 * x + p1, 0.0f), 1.0f);
    case 8: return x * fmin(fmax(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case 9: return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f));
    case 10: return 0.5f * x * (1.0f + tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case 11: return erf(x);
    case 12: return exp(x);
    case 13: return sqrt(x);
    case 14: return p0 == 2.0f ? x * x : pow(x, p0);
    default: return x;
    }
}

// The output coordinate whose tap k reads input coordinate i along one axis of a convolution, or
// -1 if none (conv.cl's col2im and depthwise gradients, gemm.cl's implicit input gradients).
inline int tap_output(int i, int pad, int k, int dilation, int stride, int out_size) {
    int t = i + pad - k * dilation;
    if (t < 0 || t % stride != 0) return -1;
    t /= stride;
    return t < out_size ? t : -1;
}

// Whether tap k reaches output pixel i along one axis, tap_output(...) >= 0, without its divisions
// at unit stride: the input gradients' per-tap masks (conv_tiled_backward, conv_mma_backward).
inline __attribute__((always_inline)) int tap_reaches(const int i, const int pad, const int k, const int dilation, const int stride,
                                                      const int out_size) {
    if (stride != 1) return tap_output(i, pad, k, dilation, stride, out_size) >= 0;
    const int t = i + pad - k * dilation;
    return t >= 0 && t < out_size;
}

// The geometry of an implicit-GEMM convolution (gemm.cl's and mma.cl's), from the launch's
// g0 = (C, H, W, kH, kW, OH, OW, groups) and g1 = (strideH, strideW, padTop, padLeft, dilationH,
// dilationW, Cout, images); layouts as conv.cl: x [N, C, H, W], weights [Cout, C/groups, kH, kW],
// y [N, Cout, OH, OW].
#define CONV_GEOMETRY \
    const int C = g0.s0, H = g0.s1, W = g0.s2, KH = g0.s3, KW = g0.s4, OH = g0.s5, OW = g0.s6, G = g0.s7; \
    const int SH = g1.s0, SW = g1.s1, PT = g1.s2, PL = g1.s3, DH = g1.s4, DW = g1.s5, CO = g1.s6, IMAGES = g1.s7; \
    const int plane = OH * OW, taps = KH * KW, cinG = C / G, coutG = CO / G, kG = cinG * taps

// Element (i, j) of a GEMM's C after its fused epilogue: act(alpha * acc + bias + R[i][j]), bias
// per column (bias_mode 1) or per row (2), R laid out as C (gemm.cl's header). One definition for
// every kernel that multiplies (gemm_tiled, gemm_mma), so their stores cannot drift apart.
inline float gemm_epilogue_value(const float acc, const int i, const int j, const float alpha,
                                 __global const float* bias, const int bias_offset, const int bias_mode,
                                 __global const float* R, const int has_res, const int ldc,
                                 const int act, const float p0, const float p1) {
    float v = alpha * acc;
    if (bias_mode == 1) v += bias[bias_offset + j];
    else if (bias_mode == 2) v += bias[bias_offset + i];
    if (has_res) v += R[i * ldc + j];
    return unary_apply(act, v, p0, p1);
}

// Philox4x32-10, the counter-based generator of random.cl's noise and mask.cl's RISE grids
// (Sources/XAICore/CounterRandom.swift is the definition).
// Salmon et al., SC 2011: 10 rounds, the key bumped by the Weyl constants between them.
inline uint4 philox4x32_10(uint4 c, uint2 k) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) { k.x += 0x9E3779B9u; k.y += 0xBB67AE85u; }
        uint hi0 = mul_hi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
        uint hi1 = mul_hi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
        c = (uint4)(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}
