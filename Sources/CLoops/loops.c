#include "xai_loops.h"
#include <math.h>

// Each loop is compiled for AVX-512, AVX2 and the baseline, and the loader picks the best the CPU
// has (the package builds for baseline x86-64, whose SSE2 runs a 16-channel block in four steps).
// Lane-wise arithmetic gives the same bits at any vector width; contraction into FMAs would not,
// so it is off.
#pragma clang fp contract(off)
#if defined(__x86_64__) && defined(__linux__)
#define XAI_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define XAI_CLONES
#endif

XAI_CLONES void xai_relu_backward(const float *restrict g, const float *restrict y, float *restrict out, size_t n) {
    // Both loads unconditional, so that the select vectorizes.
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i], yi = y[i];
        out[i] = yi > 0.0f ? gi : 0.0f;
    }
}

XAI_CLONES void xai_clip_backward(const float *restrict g, const float *restrict v, float *restrict out, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i], vi = v[i];
        out[i] = (vi > lo && vi < hi) ? gi : 0.0f;
    }
}

XAI_CLONES void xai_gradient_store(float *restrict dx, const float *restrict acc, const float *restrict y, size_t n, int gate,
                                   float lo, float hi) {
    if (acc) for (size_t i = 0; i < n; i++) dx[i] = acc[i] + dx[i];
    if (gate == 1) {
        for (size_t i = 0; i < n; i++) {
            const float gi = dx[i], yi = y[i];
            dx[i] = yi > 0.0f ? gi : 0.0f;
        }
    } else if (gate == 2) {
        for (size_t i = 0; i < n; i++) {
            const float gi = dx[i], vi = y[i];
            dx[i] = (vi > lo && vi < hi) ? gi : 0.0f;
        }
    }
}

XAI_CLONES void xai_relu(const float *restrict x, float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = 0.0f >= x[i] ? 0.0f : x[i];
}

XAI_CLONES void xai_guided_relu_backward(const float *restrict g, const float *restrict y, float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i], yi = y[i];
        const float t = yi > 0.0f ? gi : 0.0f;
        out[i] = 0.0f >= t ? 0.0f : t;
    }
}

XAI_CLONES void xai_stabilized_divide(const float *restrict r, const float *restrict z, float *restrict out, size_t n, float s) {
    for (size_t i = 0; i < n; i++) {
        const float zi = z[i];
        out[i] = r[i] / (zi + (zi >= 0.0f ? s : -s));
    }
}

XAI_CLONES void xai_binary(int op, const float *restrict a, const float *restrict b, float *restrict out, size_t n) {
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

XAI_CLONES void xai_pool_plane(const float *src, float *dst, long w, long oh, long ow, const long *ywin, const long *xwin,
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

XAI_CLONES void xai_pool_backward_plane(const float *src, const float *gy, float *dst, long w, long oh, long ow,
                             const long *ywin, const long *xwin, int lanes, int is_max, int include_pad) {
    if (lanes == 16) pool_backward_plane(src, gy, dst, w, oh, ow, ywin, xwin, 16, is_max, include_pad);
    else if (lanes == 8) pool_backward_plane(src, gy, dst, w, oh, ow, ywin, xwin, 8, is_max, include_pad);
    else if (lanes == 1) pool_backward_plane(src, gy, dst, w, oh, ow, ywin, xwin, 1, is_max, include_pad);
}

XAI_CLONES void xai_col2im_blocked_rows(const float *cols, float *dx, long q0, int lanes, long h, long w, long oh, long ow,
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

// MARK: The OpenMP team

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

// GOMP_parallel is the entry point GCC compiles `#pragma omp parallel` to; libgomp (and LLVM's
// libomp, which exports the same ABI) provide it. It is looked up at run time rather than linked,
// so that this library runs the same with or without an OpenMP runtime.
typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
static gomp_parallel_fn gomp_parallel;
static pthread_once_t gomp_once = PTHREAD_ONCE_INIT;

static void find_gomp_parallel(void) {
    void *f = dlsym(RTLD_DEFAULT, "GOMP_parallel");
    if (!f) {
        // Loaded privately (Python's ctypes loads libxaic and its dependencies RTLD_LOCAL): ask
        // for the copy oneDNN already loaded, never load a second runtime.
        void *lib = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (lib) f = dlsym(lib, "GOMP_parallel");
    }
    gomp_parallel = (gomp_parallel_fn)f;
}

struct team_job {
    xai_chunk_body body;
    void *context;
    long chunks;
    atomic_long next;
};

static void team_worker(void *p) {
    struct team_job *job = p;
    long c;
    while ((c = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed)) < job->chunks) job->body(job->context, c);
}

int xai_team_available(void) {
    pthread_once(&gomp_once, find_gomp_parallel);
    return gomp_parallel != 0;
}

int xai_team_for(long chunks, xai_chunk_body body, void *context) {
    pthread_once(&gomp_once, find_gomp_parallel);
    if (!gomp_parallel) return 0;
    struct team_job job = {body, context, chunks, 0};
    gomp_parallel(team_worker, &job, 0, 0);
    return 1;
}

// The row's sum of f(x[j]) in float64 over 8 lanes, combined in a fixed order.
#define XAI_ROW_SUM(result, cols, expr) do { \
    double acc_[8] = {0, 0, 0, 0, 0, 0, 0, 0}; \
    long j_ = 0; \
    for (; j_ + 8 <= (cols); j_ += 8) \
        for (int l_ = 0; l_ < 8; l_++) { const long j = j_ + l_; acc_[l_] += (expr); } \
    double s_ = ((acc_[0] + acc_[1]) + (acc_[2] + acc_[3])) + ((acc_[4] + acc_[5]) + (acc_[6] + acc_[7])); \
    for (; j_ < (cols); j_++) { const long j = j_; s_ += (expr); } \
    (result) = s_; \
} while (0)

XAI_CLONES void xai_layer_norm_rows(const float *restrict x, const float *restrict scale, const float *restrict bias, float *restrict out,
                                    long rows, long cols, float eps) {
    for (long r = 0; r < rows; r++) {
        const float *restrict xr = x + r * cols;
        float *restrict o = out + r * cols;
        double sum, squares;
        XAI_ROW_SUM(sum, cols, (double)xr[j]);
        const double mean = sum / (double)cols;
        XAI_ROW_SUM(squares, cols, ((double)xr[j] - mean) * ((double)xr[j] - mean));
        const float inv = (float)(1.0 / sqrt(squares / (double)cols + (double)eps));
        const float m = (float)mean;
        if (bias) {
            for (long j = 0; j < cols; j++) o[j] = (xr[j] - m) * inv * scale[j] + bias[j];
        } else {
            for (long j = 0; j < cols; j++) o[j] = (xr[j] - m) * inv * scale[j];
        }
    }
}

XAI_CLONES void xai_layer_norm_backward_rows(const float *restrict g, const float *restrict x, const float *restrict scale, float *restrict out,
                                             long rows, long cols, float eps) {
    for (long r = 0; r < rows; r++) {
        const float *restrict xr = x + r * cols, *restrict gr = g + r * cols;
        float *restrict o = out + r * cols;
        double sum, squares, gs, gsx;
        XAI_ROW_SUM(sum, cols, (double)xr[j]);
        const double mean = sum / (double)cols;
        XAI_ROW_SUM(squares, cols, ((double)xr[j] - mean) * ((double)xr[j] - mean));
        const double inv = 1.0 / sqrt(squares / (double)cols + (double)eps);
        XAI_ROW_SUM(gs, cols, (double)gr[j] * (double)scale[j]);
        XAI_ROW_SUM(gsx, cols, (double)gr[j] * (double)scale[j] * (((double)xr[j] - mean) * inv));
        const float meanG = (float)(gs / (double)cols), meanGX = (float)(gsx / (double)cols);
        const float m = (float)mean, fi = (float)inv;
        for (long j = 0; j < cols; j++) {
            const float xhat = (xr[j] - m) * fi;
            o[j] = fi * (gr[j] * scale[j] - meanG - xhat * meanGX);
        }
    }
}

// exp(x) for x <= 0 (softmax's shifted inputs; larger x saturate at 88): 2^k p(r) with
// x = k ln2 + r, |r| <= ln2/2 and p the degree-7 Taylor polynomial, whose truncation error there is
// below 6e-9 relative; 2^k is built in the exponent bits. Branch-free, so the loops vectorise.
static inline float xai_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float k = __builtin_rintf(x * 1.44269504088896341f);
    // ln2 split in two so that k ln2 is subtracted without rounding (Cody-Waite).
    const float r = (x - k * 0.693145751953125f) - k * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { unsigned int u; float f; } scale = { .u = (unsigned int)((int)k + 127) << 23 };
    return p * scale.f;
}

XAI_CLONES void xai_softmax_rows(const float *restrict x, float *restrict y, long rows, long n, int is_log) {
    for (long r = 0; r < rows; r++) {
        const float *restrict xr = x + r * n;
        float *restrict yr = y + r * n;
        float m = -INFINITY;
        for (long j = 0; j < n; j++) m = xr[j] > m ? xr[j] : m;
        for (long j = 0; j < n; j++) yr[j] = xai_expf(xr[j] - m);
        double sum;
        XAI_ROW_SUM(sum, n, (double)yr[j]);
        if (is_log) {
            const float shift = m + (float)log(sum);
            for (long j = 0; j < n; j++) yr[j] = xr[j] - shift;
        } else {
            const float s = (float)sum;
            for (long j = 0; j < n; j++) yr[j] = yr[j] / s;
        }
    }
}

XAI_CLONES void xai_softmax_backward_rows(const float *restrict g, const float *restrict y, float *restrict out, long rows, long n, int is_log) {
    for (long r = 0; r < rows; r++) {
        const float *restrict gr = g + r * n, *restrict yr = y + r * n;
        float *restrict o = out + r * n;
        double total;
        if (is_log) {
            XAI_ROW_SUM(total, n, (double)gr[j]);
            const float s = (float)total;
            for (long j = 0; j < n; j++) o[j] = gr[j] - xai_expf(yr[j]) * s;
        } else {
            XAI_ROW_SUM(total, n, (double)gr[j] * (double)yr[j]);
            const float s = (float)total;
            for (long j = 0; j < n; j++) o[j] = yr[j] * (gr[j] - s);
        }
    }
}

// dst[i * dst_stride + j] = src[i + j * src_stride] for i < rows, j < cols: one matrix of a
// transpose whose source is contiguous along i and whose destination is contiguous along j
// (NCHW <-> NHWC). Square tiles keep both sides' cache lines in L1 while they are used; the
// element-by-element walk of a row-at-a-time copy touches a new source line for every element.
XAI_CLONES void xai_transpose_tiles(const float *restrict src, float *restrict dst, long rows, long cols,
                                    long src_stride, long dst_stride) {
    enum { T = 16 };
    for (long i0 = 0; i0 < rows; i0 += T) {
        const long i1 = i0 + T < rows ? i0 + T : rows;
        for (long j0 = 0; j0 < cols; j0 += T) {
            const long j1 = j0 + T < cols ? j0 + T : cols;
            for (long i = i0; i < i1; i++) {
                float *restrict d = dst + i * dst_stride;
                const float *restrict s = src + i;
                for (long j = j0; j < j1; j++) d[j] = s[j * src_stride];
            }
        }
    }
}
