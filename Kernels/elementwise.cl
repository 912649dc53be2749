// Elementwise ops on flat float32 arrays (any layout; shapes are resolved on the host).
// Unary op codes as in common.cl (UnaryOp.code in XAICore/Ops.swift).
// Binary op codes: 0 add, 1 sub, 2 mul, 3 div. Broadcasting passes up to 8 output extents and the
// operands' strides (0 along broadcast axes) as int8 vectors.

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

inline float binary_apply(int op, float a, float b) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    default: return a / b;
    }
}

__kernel void fill(__global float* out, const float value, const int n) {
    int i = get_global_id(0);
    if (i < n) out[i] = value;
}

__kernel void unary_forward(__global const float* x, __global float* out, const int n,
                            const int code, const float p0, const float p1) {
    int i = get_global_id(0);
    if (i < n) out[i] = unary_apply(code, x[i], p0, p1);
}

__kernel void unary_backward(__global const float* g, __global const float* v, __global float* out, const int n,
                             const int code, const float p0, const float p1, const int from_output) {
    int i = get_global_id(0);
    if (i < n) out[i] = g[i] * unary_derivative(code, v[i], p0, p1, from_output);
}

__kernel void binary_same(__global const float* a, __global const float* b, __global float* out, const int n, const int op) {
    int i = get_global_id(0);
    if (i < n) out[i] = binary_apply(op, a[i], b[i]);
}

__kernel void binary_broadcast(__global const float* a, __global const float* b, __global float* out, const int n,
                               const int op, const int rank, const int8 dims, const int8 sa, const int8 sb) {
    int i = get_global_id(0);
    if (i >= n) return;
    int dv[8] = {dims.s0, dims.s1, dims.s2, dims.s3, dims.s4, dims.s5, dims.s6, dims.s7};
    int av[8] = {sa.s0, sa.s1, sa.s2, sa.s3, sa.s4, sa.s5, sa.s6, sa.s7};
    int bv[8] = {sb.s0, sb.s1, sb.s2, sb.s3, sb.s4, sb.s5, sb.s6, sb.s7};
    int rem = i, oa = 0, ob = 0;
    for (int d = rank - 1; d >= 0; d--) {
        int c = rem % dv[d];
        rem /= dv[d];
        oa += c * av[d];
        ob += c * bv[d];
    }
    out[i] = binary_apply(op, a[oa], b[ob]);
}
