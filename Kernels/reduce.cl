// Reductions over a set of axes, keeping them (XAICore ReducePlan): an output element enumerates
// the kept axes (extents kd, input strides ks, innermost last); it walks the reduced axes (rd, rs).
// Up to 8 axes of each kind, passed as int8 vectors with their counts. op: 0 sum, 1 mean, 2 max.
// Backward: sum/mean broadcast the gradient; max shares it equally among tied maxima.

inline int plan_offset(int linear, int count, int8 dims, int8 strides) {
    int d[8] = {dims.s0, dims.s1, dims.s2, dims.s3, dims.s4, dims.s5, dims.s6, dims.s7};
    int s[8] = {strides.s0, strides.s1, strides.s2, strides.s3, strides.s4, strides.s5, strides.s6, strides.s7};
    int off = 0;
    for (int i = count - 1; i >= 0; i--) {
        off += (linear % d[i]) * s[i];
        linear /= d[i];
    }
    return off;
}

__kernel void reduce_forward(__global const float* x, __global float* y, const int outputs, const int reduced,
                             const int nk, const int8 kd, const int8 ks, const int nr, const int8 rd, const int8 rs, const int op) {
    const int o = get_global_id(0);
    if (o >= outputs) return;
    const int base = plan_offset(o, nk, kd, ks);
    float acc = op == 2 ? -INFINITY : 0.0f;
    for (int r = 0; r < reduced; r++) {
        float v = x[base + plan_offset(r, nr, rd, rs)];
        acc = op == 2 ? fmax(acc, v) : acc + v;
    }
    y[o] = op == 1 ? acc / (float)reduced : acc;
}

__kernel void reduce_backward(__global const float* x, __global const float* gy, __global float* dx, const int outputs,
                              const int reduced, const int nk, const int8 kd, const int8 ks, const int nr, const int8 rd,
                              const int8 rs, const int op) {
    const int o = get_global_id(0);
    if (o >= outputs) return;
    const int base = plan_offset(o, nk, kd, ks);
    if (op != 2) {
        float g = op == 1 ? gy[o] / (float)reduced : gy[o];
        for (int r = 0; r < reduced; r++) dx[base + plan_offset(r, nr, rd, rs)] = g;
        return;
    }
    float m = -INFINITY;
    int ties = 0;
    for (int r = 0; r < reduced; r++) {
        float v = x[base + plan_offset(r, nr, rd, rs)];
        if (v > m) { m = v; ties = 1; } else if (v == m) ties++;
    }
    float g = gy[o] / (float)ties;
    for (int r = 0; r < reduced; r++) {
        int i = base + plan_offset(r, nr, rd, rs);
        dx[i] = x[i] == m ? g : 0.0f;
    }
}
