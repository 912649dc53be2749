// Memory-bound loops of the CPU backend, in C so that the compiler vectorizes them (Swift leaves
// the same loops over captured pointers scalar). Each computes exactly what the plain Swift loop of
// the same op computes, NaN included: no fast-math, no reassociation.
#ifndef XAI_LOOPS_H
#define XAI_LOOPS_H
#include <stddef.h>

/// out[i] = y[i] > 0 ? g[i] : 0 (ReLU's gradient from its output or input).
void xai_relu_backward(const float *g, const float *y, float *out, size_t n);
/// out[i] = lo < v[i] < hi ? g[i] : 0 (clip's and ReLU6's gradient from its output or input).
void xai_clip_backward(const float *g, const float *v, float *out, size_t n, float lo, float hi);
/// out[i] = 0 >= x[i] ? 0 : x[i] (Swift's max(x, 0); NaN stays NaN).
void xai_relu(const float *x, float *out, size_t n);
/// out[i] = a[i] op b[i]; op: 0 add, 1 subtract, 2 multiply, 3 divide.
void xai_binary(int op, const float *a, const float *b, float *out, size_t n);
/// A gradient's store in place (XAICore's GradientStore): dx[i] = acc[i] + dx[i] where acc is not
/// NULL, then the gate: gate 1, ReLU's (y[i] > 0 ? dx[i] : 0); gate 2, clip's (lo < y[i] < hi ?
/// dx[i] : 0); 0 none. The same bits as xai_binary's add, then xai_relu_backward or xai_clip_backward.
void xai_gradient_store(float *dx, const float *acc, const float *y, size_t n, int gate, float lo, float hi);
/// out[i] = relu(y[i] > 0 ? g[i] : 0) (guided backpropagation at a ReLU; NaN as the two loops give it).
void xai_guided_relu_backward(const float *g, const float *y, float *out, size_t n);
/// out[i] = r[i] / (z[i] + (z[i] >= 0 ? s : -s)) (LRP's stabilised division, Zennit's `stabilize`).
void xai_stabilized_divide(const float *r, const float *z, float *out, size_t n, float s);

/// Pooling of one channel block of `lanes` channels stored pixel-major (`[h][w][lanes]`). `ywin`
/// and `xwin` hold (start, end, padded extent) per output row and column; windows are visited in
/// row-major order, as the plain loop visits them.
void xai_pool_plane(const float *src, float *dst, long w, long oh, long ow, const long *ywin, const long *xwin,
                    int lanes, int is_max, int count_include_pad);
/// The gradient of xai_pool_plane, accumulated into `dst` (zeroed by the caller): max sends each
/// lane's gradient to the first maximum of its window, average spreads it evenly.
void xai_pool_backward_plane(const float *src, const float *gy, float *dst, long w, long oh, long ow,
                             const long *ywin, const long *xwin, int lanes, int is_max, int count_include_pad);

/// Rows `iy0..<iy1` of one input channel's gradient (`dx`, `w` wide, overwritten) gathered from a
/// convolution's columns stored channel-blocked: `cols` is one image's `[ceil(K / lanes)][oh][ow][lanes]`
/// with K indexed by (channel, ky, kx) and `q0` the index of (this channel, 0, 0). Element (iy, ix)
/// sums every column entry whose tap lands on it (the adjoint of im2col), taps in (ky, kx) order.
void xai_col2im_blocked_rows(const float *cols, float *dx, long q0, int lanes, long h, long w, long oh, long ow,
                             long kh, long kw, long stride_h, long stride_w, long pad_top, long pad_left,
                             long dilation_h, long dilation_w, long iy0, long iy1);

/// Layer normalisation of `rows` rows of `cols` values: (x - mean) / sqrt(var + eps) * scale + bias
/// (`bias` may be NULL). Mean and variance are summed in float64 over 8 fixed lanes, so every vector
/// width gives the same bits.
void xai_layer_norm_rows(const float *x, const float *scale, const float *bias, float *out, long rows, long cols, float eps);
/// The gradient of xai_layer_norm_rows with respect to x: inv * (g s - mean(g s) - xhat mean(g s xhat)).
void xai_layer_norm_backward_rows(const float *g, const float *x, const float *scale, float *out, long rows, long cols, float eps);

/// Softmax (log-softmax when `is_log`) of each of `rows` contiguous rows of `n` values. exp is
/// evaluated by a vectorisable polynomial (range reduction to [-ln2/2, ln2/2], degree-7 Taylor
/// series: relative error below 1e-7), sums in float64 over 8 fixed lanes.
void xai_softmax_rows(const float *x, float *y, long rows, long n, int is_log);
/// The gradient of xai_softmax_rows given its output y: y (g - sum(g y)), or g - exp(y) sum(g) for log.
void xai_softmax_backward_rows(const float *g, const float *y, float *out, long rows, long n, int is_log);

/// One chunk of a parallel loop: `body(context, chunk)`.
typedef void (*xai_chunk_body)(void *context, long chunk);
/// Runs `body(context, 0) ... body(context, chunks - 1)` on the OpenMP team that oneDNN's
/// primitives run on (chunks handed out dynamically) and returns 1 when they have all finished, or
/// returns 0 at once, having run nothing, when no OpenMP runtime is loaded in the process. Sharing
/// oneDNN's team matters on a machine with few cores: its threads busy-wait for the next primitive,
/// and a second pool (Dispatch) running the loops between primitives would compete with them.
int xai_team_for(long chunks, xai_chunk_body body, void *context);
/// 1 when xai_team_for runs on an OpenMP team, 0 when it would run nothing.
int xai_team_available(void);
/// `dst[i * dst_stride + j] = src[i + j * src_stride]` for `i < rows`, `j < cols`, in L1-sized tiles.
void xai_transpose_tiles(const float *src, float *dst, long rows, long cols, long src_stride, long dst_stride);
#endif
