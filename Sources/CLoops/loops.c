#include "xai_loops.h"

void xai_relu_backward(const float *restrict g, const float *restrict y, float *restrict out, size_t n) {
    // Both loads unconditional, so that the select vectorizes.
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i], yi = y[i];
        out[i] = yi > 0.0f ? gi : 0.0f;
    }
}

void xai_clip_backward(const float *restrict g, const float *restrict v, float *restrict out, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i], vi = v[i];
        out[i] = (vi > lo && vi < hi) ? gi : 0.0f;
    }
}

void xai_relu(const float *restrict x, float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = 0.0f >= x[i] ? 0.0f : x[i];
}

void xai_binary(int op, const float *restrict a, const float *restrict b, float *restrict out, size_t n) {
    switch (op) {
    case 0: for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i]; break;
    case 1: for (size_t i = 0; i < n; i++) out[i] = a[i] - b[i]; break;
    case 2: for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i]; break;
    default: for (size_t i = 0; i < n; i++) out[i] = a[i] / b[i]; break;
    }
}

static inline float divisor(const long *yw, const long *xw, int include_pad) {
    return include_pad ? (float)(yw[2] * xw[2]) : (float)((yw[1] - yw[0]) * (xw[1] - xw[0]));
}

// L is a compile-time constant at every call site below, so each copy vectorizes over the lanes.
static inline __attribute__((always_inline)) void pool_plane(const float *restrict src, float *restrict dst, long w, long oh, long ow,
                                                             const long *ywin, const long *xwin, const int L, int is_max, int include_pad) {
    float acc[16];
    for (long oy = 0; oy < oh; oy++) {
        const long *yw = ywin + 3 * oy;
        for (long ox = 0; ox < ow; ox++) {
            const long *xw = xwin + 3 * ox;
            float *o = dst + (oy * ow + ox) * L;
            if (is_max) {
                for (int l = 0; l < L; l++) acc[l] = -__builtin_inff();
                for (long iy = yw[0]; iy < yw[1]; iy++)
                    for (long ix = xw[0]; ix < xw[1]; ix++) {
                        const float *v = src + (iy * w + ix) * L;
                        for (int l = 0; l < L; l++) acc[l] = v[l] >= acc[l] ? v[l] : acc[l];
                    }
                for (int l = 0; l < L; l++) o[l] = acc[l];
            } else {
                for (int l = 0; l < L; l++) acc[l] = 0.0f;
                for (long iy = yw[0]; iy < yw[1]; iy++)
                    for (long ix = xw[0]; ix < xw[1]; ix++) {
                        const float *v = src + (iy * w + ix) * L;
                        for (int l = 0; l < L; l++) acc[l] += v[l];
                    }
                const float div = divisor(yw, xw, include_pad);
                for (int l = 0; l < L; l++) o[l] = acc[l] / div;
            }
        }
    }
}

void xai_pool_plane(const float *src, float *dst, long w, long oh, long ow, const long *ywin, const long *xwin,
                    int lanes, int is_max, int include_pad) {
    if (lanes == 16) pool_plane(src, dst, w, oh, ow, ywin, xwin, 16, is_max, include_pad);
    else if (lanes == 8) pool_plane(src, dst, w, oh, ow, ywin, xwin, 8, is_max, include_pad);
    else if (lanes == 1) pool_plane(src, dst, w, oh, ow, ywin, xwin, 1, is_max, include_pad);
}

static inline __attribute__((always_inline)) void pool_backward_plane(const float *restrict src, const float *restrict gy, float *restrict dst,
                                                                      long w, long oh, long ow, const long *ywin, const long *xwin,
                                                                      const int L, int is_max, int include_pad) {
    float best_value[16];
    long best[16];
    for (long oy = 0; oy < oh; oy++) {
        const long *yw = ywin + 3 * oy;
        for (long ox = 0; ox < ow; ox++) {
            const long *xw = xwin + 3 * ox;
            const float *g = gy + (oy * ow + ox) * L;
            if (is_max) {
                const long first = yw[0] * w + xw[0];
                for (int l = 0; l < L; l++) { best[l] = first; best_value[l] = src[first * L + l]; }
                for (long iy = yw[0]; iy < yw[1]; iy++)
                    for (long ix = xw[0]; ix < xw[1]; ix++) {
                        const long at = iy * w + ix;
                        const float *v = src + at * L;
                        for (int l = 0; l < L; l++) {
                            const int better = v[l] > best_value[l];
                            best_value[l] = better ? v[l] : best_value[l];
                            best[l] = better ? at : best[l];
                        }
                    }
                for (int l = 0; l < L; l++) dst[best[l] * L + l] += g[l];
            } else {
                const float div = divisor(yw, xw, include_pad);
                for (long iy = yw[0]; iy < yw[1]; iy++)
                    for (long ix = xw[0]; ix < xw[1]; ix++) {
                        float *d = dst + (iy * w + ix) * L;
                        for (int l = 0; l < L; l++) d[l] += g[l] / div;
                    }
            }
        }
    }
}

void xai_pool_backward_plane(const float *src, const float *gy, float *dst, long w, long oh, long ow,
                             const long *ywin, const long *xwin, int lanes, int is_max, int include_pad) {
    if (lanes == 16) pool_backward_plane(src, gy, dst, w, oh, ow, ywin, xwin, 16, is_max, include_pad);
    else if (lanes == 8) pool_backward_plane(src, gy, dst, w, oh, ow, ywin, xwin, 8, is_max, include_pad);
    else if (lanes == 1) pool_backward_plane(src, gy, dst, w, oh, ow, ywin, xwin, 1, is_max, include_pad);
}

void xai_col2im_blocked_rows(const float *cols, float *dx, long q0, int lanes, long h, long w, long oh, long ow,
                             long kh, long kw, long stride_h, long stride_w, long pad_top, long pad_left,
                             long dilation_h, long dilation_w, long iy0, long iy1) {
    (void)h;
    for (long iy = iy0; iy < iy1; iy++) {
        float *row = dx + iy * w;
        for (long ix = 0; ix < w; ix++) row[ix] = 0;
        for (long ky = 0; ky < kh; ky++) {
            // Output row oy reads input row oy * stride - pad_top + ky * dilation.
            long t = iy + pad_top - ky * dilation_h;
            if (t < 0 || t % stride_h != 0) continue;
            long oy = t / stride_h;
            if (oy >= oh) continue;
            for (long kx = 0; kx < kw; kx++) {
                long q = q0 + ky * kw + kx;
                const float *src = cols + ((q / lanes) * oh + oy) * ow * lanes + q % lanes;
                // Output columns whose tap lands inside the row: 0 <= ox * stride - pad_left + kx * dilation < w.
                long offset = kx * dilation_w - pad_left;
                long ox0 = offset >= 0 ? 0 : (-offset + stride_w - 1) / stride_w;
                long ox1 = (w - 1 - offset) < 0 ? 0 : (w - 1 - offset) / stride_w + 1;
                if (ox1 > ow) ox1 = ow;
                for (long ox = ox0; ox < ox1; ox++) row[ox * stride_w + offset] += src[ox * lanes];
            }
        }
    }
}
