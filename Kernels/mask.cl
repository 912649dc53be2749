// Perturbation masks built on the device from compact descriptions (XAICore MaskSpec): a mask
// value of 1 keeps the image, 0 shows the baseline.
// kind 0, segments: labels [H, W] (segment ids as floats) + `words` uint bit words per sample.
// kind 1, rectangles: int4 (y0, x0, y1, x1) per sample, the rectangle clipped to the image on the
// host (so no overflow here); 0 for y0 <= y < y1 and x0 <= x < x1.
// kind 2, grids: cells [N, gh, gw] bilinearly upsampled (half-pixel, clamped) to (uh, uw) and
// cropped at int2 shifts (dy, dx) per sample.
// kind 3, ranks: labels holds each pixel's rank [H, W] (as floats), rects one int count per sample,
// words (g.s2) is 1 when the pixels ranked below the count keep the image (insertion), 0 when they
// show the baseline (deletion).
// RISE's random grids (MaskSpec.randomGrids) are drawn into cells and shifts by rise_grids below,
// then built as kind 2.
// Geometry: g = (H, W, words, gh, gw, uh, uw, kind).

inline float grid_source(int dst, int in_size, int out_size, int* i0, int* i1) {
    float s = fmax(((float)dst + 0.5f) * (float)in_size / (float)out_size - 0.5f, 0.0f);
    int a = min((int)s, in_size - 1);
    *i0 = a;
    *i1 = min(a + 1, in_size - 1);
    return s - (float)a;
}

inline float mask_value(int n, int y, int x, const int8 g, __global const float* labels, __global const uint* bits,
                        __global const int* rects, __global const float* cells, __global const int* shifts) {
    const int H = g.s0, W = g.s1;
    if (g.s7 == 0) {
        int s = (int)labels[y * W + x];
        return ((bits[n * g.s2 + (s >> 5)] >> (s & 31)) & 1u) ? 1.0f : 0.0f;
    }
    if (g.s7 == 3) {
        const int first = labels[y * W + x] < (float)rects[n];
        return (first == (g.s2 == 1)) ? 1.0f : 0.0f;
    }
    if (g.s7 == 1) {
        int y0 = rects[4 * n], x0 = rects[4 * n + 1], y1 = rects[4 * n + 2], x1 = rects[4 * n + 3];
        return (y >= y0 && y < y1 && x >= x0 && x < x1) ? 0.0f : 1.0f;
    }
    const int gh = g.s3, gw = g.s4, uh = g.s5, uw = g.s6;
    int y0, y1, x0, x1;
    float ty = grid_source(y + shifts[2 * n], gh, uh, &y0, &y1);
    float tx = grid_source(x + shifts[2 * n + 1], gw, uw, &x0, &x1);
    __global const float* c = cells + (long)n * gh * gw;
    float top = (1.0f - tx) * c[y0 * gw + x0] + tx * c[y0 * gw + x1];
    float bottom = (1.0f - tx) * c[y1 * gw + x0] + tx * c[y1 * gw + x1];
    return (1.0f - ty) * top + ty * bottom;
}

__kernel void mask_build(__global float* out, const int samples, const int8 g, __global const float* labels,
                         __global const uint* bits, __global const int* rects, __global const float* cells, __global const int* shifts) {
    const int i = get_global_id(0);
    const int H = g.s0, W = g.s1;
    if (i >= samples * H * W) return;
    const int x = i % W, y = (i / W) % H, n = i / (W * H);
    out[i] = mask_value(n, y, x, g, labels, bits, rects, cells, shifts);
}

__kernel void mask_composite(__global const float* image, __global const float* baseline, __global float* out,
                             const int samples, const int channels, const int8 g, __global const float* labels,
                             __global const uint* bits, __global const int* rects, __global const float* cells, __global const int* shifts) {
    const int p = get_global_id(0);        // pixel
    const int n = get_global_id(1);        // sample
    const int H = g.s0, W = g.s1;
    if (p >= H * W || n >= samples) return;
    const float m = mask_value(n, p / W, p % W, g, labels, bits, rects, cells, shifts);
    for (int c = 0; c < channels; c++) {
        float a = image[c * H * W + p], b = baseline[c * H * W + p];
        out[((long)n * channels + c) * H * W + p] = b + m * (a - b);
    }
}

// RISE's random grids (Sources/XAICore/RandomGrids.swift is the definition): mask first + k takes
// words 0 .. cells + 1 of the counter (i / 4, 0x52495345, m low, m high), lane i % 4. Cell i keeps
// the image when the word's top 24 bits are below keep; the shift is mul_hi(word, cellH) and
// mul_hi(next word, cellW). One work-item per mask (global: [count]).
__kernel void rise_grids(__global float *cells_out, __global int *shifts_out, int count, int cells, uint keep,
                         int cell_h, int cell_w, uint first_lo, uint first_hi, uint seed_lo, uint seed_hi) {
    int k = get_global_id(0);
    if (k >= count) return;
    ulong m = (((ulong)first_hi << 32) | (ulong)first_lo) + (ulong)k;
    __global float *row = cells_out + (long)k * cells;
    for (int block = 0; block * 4 < cells + 2; ++block) {
        uint4 w = philox4x32_10((uint4)((uint)block, 0x52495345u, (uint)m, (uint)(m >> 32)), (uint2)(seed_lo, seed_hi));
        uint lanes[4] = {w.x, w.y, w.z, w.w};
        for (int lane = 0; lane < 4; ++lane) {
            int i = block * 4 + lane;
            if (i < cells) row[i] = (lanes[lane] >> 8) < keep ? 1.0f : 0.0f;
            else if (i == cells) shifts_out[2 * k] = (int)mul_hi(lanes[lane], (uint)cell_h);
            else if (i == cells + 1) shifts_out[2 * k + 1] = (int)mul_hi(lanes[lane], (uint)cell_w);
        }
    }
}
