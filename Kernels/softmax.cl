// Softmax and log-softmax along one axis of a tensor viewed as [outer, n, inner]: one work-item per
// (outer, inner) row. Backward takes the forward output y. Layer normalisation of contiguous rows,
// one work-item per row, likewise.

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

// A row's mean and 1 / sqrt(variance + eps).
inline void row_statistics(__global const float* xr, const int cols, const float eps, float* mean, float* inv) {
    float sum = 0.0f;
    for (int j = 0; j < cols; j++) sum += xr[j];
    const float m = sum / (float)cols;
    float squares = 0.0f;
    for (int j = 0; j < cols; j++) { const float d = xr[j] - m; squares += d * d; }
    *mean = m;
    *inv = 1.0f / sqrt(squares / (float)cols + eps);
}

// (x - mean) / sqrt(var + eps) * scale + bias over each row of `cols` values (bias used when has_bias).
__kernel void layer_norm_forward(__global const float* x, __global const float* scale, __global const float* bias, __global float* y,
                                 const int rows, const int cols, const float eps, const int has_bias) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = x + (long)r * cols;
    __global float* yr = y + (long)r * cols;
    float mean, inv;
    row_statistics(xr, cols, eps, &mean, &inv);
    for (int j = 0; j < cols; j++) yr[j] = (xr[j] - mean) * inv * scale[j] + (has_bias ? bias[j] : 0.0f);
}

// The gradient with respect to x: inv * (g s - mean(g s) - xhat mean(g s xhat)).
__kernel void layer_norm_backward(__global const float* g, __global const float* x, __global const float* scale, __global float* dx,
                                  const int rows, const int cols, const float eps) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = x + (long)r * cols;
    __global const float* gr = g + (long)r * cols;
    __global float* dr = dx + (long)r * cols;
    float mean, inv;
    row_statistics(xr, cols, eps, &mean, &inv);
    float gs = 0.0f, gsx = 0.0f;
    for (int j = 0; j < cols; j++) {
        const float v = gr[j] * scale[j];
        gs += v;
        gsx += v * (xr[j] - mean) * inv;
    }
    const float meanG = gs / (float)cols, meanGX = gsx / (float)cols;
    for (int j = 0; j < cols; j++) dr[j] = inv * (gr[j] * scale[j] - meanG - (xr[j] - mean) * inv * meanGX);
}
