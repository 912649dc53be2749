// Softmax and log-softmax along one axis of a tensor viewed as [outer, n, inner]: one work-item per
// (outer, inner) row. Backward takes the forward output y.

__kernel void softmax_forward(__global const float* x, __global float* y, const int rows, const int n, const int inner, const int is_log) {
    const int t = get_global_id(0);
    if (t >= rows) return;
    const int base = (t / inner) * n * inner + t % inner;
    float m = -INFINITY;
    for (int j = 0; j < n; j++) m = fmax(m, x[base + j * inner]);
    float s = 0.0f;
    for (int j = 0; j < n; j++) s += exp(x[base + j * inner] - m);
    float ls = log(s);
    for (int j = 0; j < n; j++) {
        int i = base + j * inner;
        y[i] = is_log ? x[i] - m - ls : exp(x[i] - m) / s;
    }
}

__kernel void softmax_backward(__global const float* gy, __global const float* y, __global float* dx, const int rows,
                               const int n, const int inner, const int is_log) {
    const int t = get_global_id(0);
    if (t >= rows) return;
    const int base = (t / inner) * n * inner + t % inner;
    float s = 0.0f;
    for (int j = 0; j < n; j++) { int i = base + j * inner; s += is_log ? gy[i] : gy[i] * y[i]; }
    for (int j = 0; j < n; j++) {
        int i = base + j * inner;
        dx[i] = is_log ? gy[i] - exp(y[i]) * s : y[i] * (gy[i] - s);
    }
}
