// Elementwise ops on flat float32 arrays (any layout; shapes are resolved on the host).
// Unary op codes as in common.cl (UnaryOp.code in XAICore/Ops.swift).
// unary_derivative is common.cl's.
// Binary op codes: 0 add, 1 sub, 2 mul, 3 div. Broadcasting passes up to 8 output extents and the
// operands' strides (0 along broadcast axes) as int8 vectors.

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
