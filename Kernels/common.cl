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

// The derivative of unary op `code` at v, v its input, or its output when from_output (codes
// whose derivative the output does not give return 1 there). unary_backward's, and the gradient
// stores' below.
inline float unary_derivative(int code, float v, float p0, float p1, int from_output) {
    if (from_output) {
        switch (code) {
        case 1: return v > 0.0f ? 1.0f : 0.0f;
        case 2: return (v > p0 && v < p1) ? 1.0f : 0.0f;
        case 3: return v >= 0.0f ? 1.0f : p0;
        case 4: return v * (1.0f - v);
        case 5: return 1.0f - v * v;
        case 12: return v;
        case 13: return 0.5f / v;
        default: return 1.0f;
        }
    }
    switch (code) {
    case 1: return v > 0.0f ? 1.0f : 0.0f;
    case 2: return (v > p0 && v < p1) ? 1.0f : 0.0f;
    case 3: return v >= 0.0f ? 1.0f : p0;
    case 4: { float s = 1.0f / (1.0f + exp(-v)); return s * (1.0f - s); }
    case 5: { float t = tanh(v); return 1.0f - t * t; }
    case 6: { float s = 1.0f / (1.0f + exp(-v)); return s * (1.0f + v * (1.0f - s)); }
    case 7: { float u = p0 * v + p1; return (u > 0.0f && u < 1.0f) ? p0 : 0.0f; }
    case 8: return v < -3.0f ? 0.0f : (v > 3.0f ? 1.0f : (2.0f * v + 3.0f) / 6.0f);
    case 9: return 0.5f * (1.0f + erf(v * 0.70710678118654752f)) + v * exp(-0.5f * v * v) * 0.39894228040143268f;
    case 10: {
        float t = tanh(0.79788456080286536f * (v + 0.044715f * v * v * v));
        return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * 0.79788456080286536f * (1.0f + 3.0f * 0.044715f * v * v);
    }
    case 11: return 1.12837916709551257f * exp(-v * v);
    case 12: return exp(v);
    case 13: return 0.5f / sqrt(v);
    case 14: return p0 == 0.0f ? 0.0f : (p0 == 2.0f ? 2.0f * v : p0 * pow(v, p0 - 1.0f));
    default: return 1.0f;
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

// The arguments of a fused gradient store, after an input gradient kernel's own (R and gate_out
// laid out as its dx).
#define BACKWARD_STORE_ARGS __global const float* R, const int has_res, __global const float* gate_out, const int gate, \
                            const float p0, const float p1

// A gradient's store, fused (XAICore's GradientStore): the gradient v of a value at element `at`,
// plus R[at], the gradient its other consumers already carried back (has_res), times the
// derivative of the activation `gate` (a code as above; 0 none) whose output gate_out is, with that
// activation's parameters p0, p1. The same operations in the same order as the separate
// binary_same add (R + v) and unary_backward (v * derivative): the same bits.
inline float gradient_store_value(float v, const int at, __global const float* R, const int has_res,
                                  __global const float* gate_out, const int gate, const float p0, const float p1) {
    if (has_res) v = R[at] + v;
    if (gate) v = v * unary_derivative(gate, gate_out[at], p0, p1, 1);
    return v;
}

// Element (i, j) of a GEMM's C after its fused epilogue: act(alpha * acc + bias + R[i][j]), bias
// per column (bias_mode 1) or per row (2), R laid out as C (gemm.cl's header), then times the
// derivative of activation `gate` at gate_out[i][j] (gate_out laid out as C; a backward's store, where act is
// the identity and p0, p1 are the gate's parameters). One definition for every kernel that
// multiplies (gemm_tiled, gemm_mma), so their stores cannot drift apart.
inline float gemm_epilogue_value(const float acc, const int i, const int j, const float alpha,
                                 __global const float* bias, const int bias_offset, const int bias_mode,
                                 __global const float* R, const int has_res, __global const float* gate_out, const int gate,
                                 const int ldc, const int act, const float p0, const float p1) {
    float v = alpha * acc;
    if (bias_mode == 1) v += bias[bias_offset + j];
    else if (bias_mode == 2) v += bias[bias_offset + i];
    if (has_res) v += R[i * ldc + j];
    v = unary_apply(act, v, p0, p1);
    if (gate) v = v * unary_derivative(gate, gate_out[i * ldc + j], p0, p1, 1);
    return v;
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
