// Reductions over a set of axes, keeping them (XAICore ReducePlan): an output element enumerates
// the kept axes (extents kd, input strides ks, innermost last); it walks the reduced axes (rd, rs).
// Up to 8 axes of each kind, passed as int8 vectors with their counts. op: 0 sum, 1 mean, 2 max,
// 3 min. Backward: sum/mean broadcast the gradient; max and min share it equally among the ties.
// The host merges axes that are contiguous in memory, so most plans have one or two of each kind.
// Tunable: REDUCE_GROUP, work-items per output in reduce_forward_group (a power of two).

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

// The common case of one (merged) reduced axis needs no division.
inline int reduced_offset(int r, int nr, int8 rd, int8 rs) {
    return nr == 1 ? r * rs.s0 : plan_offset(r, nr, rd, rs);
}

__kernel void reduce_forward(__global const float* x, __global float* y, const int outputs, const int reduced,
                             const int nk, const int8 kd, const int8 ks, const int nr, const int8 rd, const int8 rs, const int op) {
    const int o = get_global_id(0);
    if (o >= outputs) return;
    const int base = plan_offset(o, nk, kd, ks);
    if (op == 2 || op == 3) {
        // min as the max of -x
        const float sign = op == 2 ? 1.0f : -1.0f;
        float m = -INFINITY;
        for (int r = 0; r < reduced; r++) m = fmax(m, sign * x[base + reduced_offset(r, nr, rd, rs)]);
        y[o] = sign * m;
        return;
    }
    // Compensated (Kahan) sum: float32 results stay within a few ulps of the float64 reference
    // even for sums over millions of elements.
    float acc = 0.0f, comp = 0.0f;
    for (int r = 0; r < reduced; r++) {
        float v = x[base + reduced_offset(r, nr, rd, rs)] - comp;
        float t = acc + v;
        comp = (t - acc) - v;
        acc = t;
    }
    y[o] = op == 1 ? acc / (float)reduced : acc;
}

// Few outputs, long reductions (a whole-tensor sum, a bias gradient): one work-group of
// REDUCE_GROUP work-items per output, each summing a strided share, then a tree in local memory.
#ifndef REDUCE_GROUP
#define REDUCE_GROUP 256
#endif

__kernel __attribute__((reqd_work_group_size(REDUCE_GROUP, 1, 1)))
void reduce_forward_group(__global const float* x, __global float* y, const int outputs, const int reduced,
                          const int nk, const int8 kd, const int8 ks, const int nr, const int8 rd, const int8 rs, const int op) {
    __local float part[REDUCE_GROUP];
    const int o = get_group_id(0), lid = get_local_id(0);
    const int base = plan_offset(o, nk, kd, ks);
    const int extremum = op == 2 || op == 3;
    const float sign = op == 3 ? -1.0f : 1.0f;
    float acc = extremum ? -INFINITY : 0.0f, comp = 0.0f;
    for (int r = lid; r < reduced; r += REDUCE_GROUP) {
        float v = sign * x[base + reduced_offset(r, nr, rd, rs)];
        if (extremum) {
            acc = fmax(acc, v);
        } else {
            v -= comp;
            float t = acc + v;
            comp = (t - acc) - v;
            acc = t;
        }
    }
    part[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = REDUCE_GROUP / 2; s > 0; s >>= 1) {
        if (lid < s) part[lid] = extremum ? fmax(part[lid], part[lid + s]) : part[lid] + part[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) y[o] = op == 1 ? part[0] / (float)reduced : sign * part[0];
}

__kernel void reduce_backward(__global const float* x, __global const float* gy, __global float* dx, const int outputs,
                              const int reduced, const int nk, const int8 kd, const int8 ks, const int nr, const int8 rd,
                              const int8 rs, const int op) {
    const int o = get_global_id(0);
    if (o >= outputs) return;
    const int base = plan_offset(o, nk, kd, ks);
    if (op != 2 && op != 3) {
        float g = op == 1 ? gy[o] / (float)reduced : gy[o];
        for (int r = 0; r < reduced; r++) dx[base + reduced_offset(r, nr, rd, rs)] = g;
        return;
    }
    const float sign = op == 2 ? 1.0f : -1.0f;
    float m = -INFINITY;
    int ties = 0;
    for (int r = 0; r < reduced; r++) {
        float v = sign * x[base + reduced_offset(r, nr, rd, rs)];
        if (v > m) { m = v; ties = 1; } else if (v == m) ties++;
    }
    float g = gy[o] / (float)ties;
    for (int r = 0; r < reduced; r++) {
        int i = base + reduced_offset(r, nr, rd, rs);
        dx[i] = sign * x[i] == m ? g : 0.0f;
    }
}
