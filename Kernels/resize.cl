// Bilinear resize of [planes, H, W] to [planes, OH, OW] with PyTorch's source mapping
// (XAICore bilinearSource): align_corners maps the corner pixels onto each other; otherwise
// half-pixel centres, clamped at 0. Backward gathers per input pixel over the output pixels whose
// two taps can reach it (no atomics).

inline float source_coord(int dst, int in_size, int out_size, int align) {
    if (align) return out_size > 1 ? (float)dst * (float)(in_size - 1) / (float)(out_size - 1) : 0.0f;
    return fmax(((float)dst + 0.5f) * (float)in_size / (float)out_size - 0.5f, 0.0f);
}

inline void taps(int dst, int in_size, int out_size, int align, int* i0, int* i1, float* t) {
    float s = source_coord(dst, in_size, out_size, align);
    int a = min((int)s, in_size - 1);
    *i0 = a;
    *i1 = min(a + 1, in_size - 1);
    *t = s - (float)a;
}

__kernel void resize_bilinear_forward(__global const float* x, __global float* y, const int planes, const int4 dims, const int align) {
    const int H = dims.s0, W = dims.s1, OH = dims.s2, OW = dims.s3;
    const int i = get_global_id(0);
    if (i >= planes * OH * OW) return;
    const int ox = i % OW, oy = (i / OW) % OH, pl = i / (OW * OH);
    int y0, y1, x0, x1; float ty, tx;
    taps(oy, H, OH, align, &y0, &y1, &ty);
    taps(ox, W, OW, align, &x0, &x1, &tx);
    __global const float* s = x + (long)pl * H * W;
    float top = (1.0f - tx) * s[y0 * W + x0] + tx * s[y0 * W + x1];
    float bottom = (1.0f - tx) * s[y1 * W + x0] + tx * s[y1 * W + x1];
    y[i] = (1.0f - ty) * top + ty * bottom;
}

// Output range along one axis whose taps may include input index i (conservative, then tested).
// Half-pixel: source s = (o + 0.5) * in / out - 0.5 reaches i for s in [i - 1, i + 1).
// Align corners: s = o * (in - 1) / (out - 1), the same interval; a single input pixel is reached by all.
inline void reach(int i, int in_size, int out_size, int align, int* lo, int* hi) {
    if (align && in_size == 1) { *lo = 0; *hi = out_size - 1; return; }
    if (align && out_size == 1) { *lo = 0; *hi = 0; return; }
    float scale = align ? (float)(out_size - 1) / (float)(in_size - 1) : (float)out_size / (float)in_size;
    *lo = max(0, (int)floor(((float)i - 1.0f) * scale) - 2);
    *hi = min(out_size - 1, (int)ceil(((float)i + 2.0f) * scale) + 2);
}

__kernel void resize_bilinear_backward(__global const float* gy, __global float* dx, const int planes, const int4 dims, const int align) {
    const int H = dims.s0, W = dims.s1, OH = dims.s2, OW = dims.s3;
    const int i = get_global_id(0);
    if (i >= planes * H * W) return;
    const int ix = i % W, iy = (i / W) % H, pl = i / (W * H);
    int ylo, yhi, xlo, xhi;
    reach(iy, H, OH, align, &ylo, &yhi);
    reach(ix, W, OW, align, &xlo, &xhi);
    __global const float* g = gy + (long)pl * OH * OW;
    float acc = 0.0f;
    for (int oy = ylo; oy <= yhi; oy++) {
        int y0, y1; float ty;
        taps(oy, H, OH, align, &y0, &y1, &ty);
        float wy = (y0 == iy ? 1.0f - ty : 0.0f) + (y1 == iy ? ty : 0.0f);
        if (wy == 0.0f) continue;
        for (int ox = xlo; ox <= xhi; ox++) {
            int x0, x1; float tx;
            taps(ox, W, OW, align, &x0, &x1, &tx);
            float wx = (x0 == ix ? 1.0f - tx : 0.0f) + (x1 == ix ? tx : 0.0f);
            if (wx != 0.0f) acc += g[oy * OW + ox] * wy * wx;
        }
    }
    dx[i] = acc;
}
