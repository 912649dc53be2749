// Device noise and running sums. Sources/XAICore/CounterRandom.swift is the definition; these
// kernels spell the same float32 arithmetic, so every backend gives the same bits. That needs
// every product and sum rounded on its own (no contraction into fused multiply-adds) and IEEE's
// correctly rounded division and square root (the backend builds this file with
// -cl-fp32-correctly-rounded-divide-sqrt).
#pragma OPENCL FP_CONTRACT OFF

// ln u for u in (0, 1]: u = m 2^e, m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh((m - 1) / (m + 1)).
inline float log_unit(float u) {
    uint bits = as_uint(u);
    int e = (int)(bits >> 23) - 127;
    bits = (bits & 0x007FFFFFu) | 0x3F800000u;
    if (bits > 0x3FB504F3u) { bits -= 0x00800000u; e += 1; }
    float m = as_float(bits);
    float s = (m - 1.0f) / (m + 1.0f), z = s * s;
    float series = s * (2.0f + z * (0.6666667f + z * (0.4f + z * (0.2857143f + z * 0.22222222f))));
    float fe = (float)e;
    return fe * 0.69314575f + (series + fe * 1.4286068e-06f);
}

// Two standard normals from two words: the radius from a, the angle's quadrant and reflected
// fraction from b (the reduction is exact).
inline float2 box_muller(uint a, uint b) {
    float u = (float)((a >> 8) + 1u) * 5.9604645e-08f;
    float r = sqrt(-2.0f * log_unit(u));
    uint k = b >> 8;
    float f = (float)(k & 0x3FFFFFu) * 2.3841858e-07f;
    int low = f <= 0.5f;
    float theta = (low ? f : 1.0f - f) * 1.5707964f;
    float t = theta * theta;
    float sn = theta * (1.0f + t * (-0.16666667f + t * (0.008333334f + t * (-0.0001984127f + t * 2.7557319e-06f))));
    float cs = 1.0f + t * (-0.5f + t * (0.041666668f + t * (-0.0013888889f + t * (2.4801588e-05f + t * -2.755732e-07f))));
    float s = low ? sn : cs, c = low ? cs : sn;
    switch (k >> 22) {
    case 0: return (float2)(r * c, r * s);
    case 1: return (float2)(r * -s, r * c);
    case 2: return (float2)(r * -c, r * -s);
    default: return (float2)(r * s, r * -c);
    }
}

// out[k, i] = item[i] + sigma * z with z value i of stream firstStream + k: one work-item per
// block of 4 values of one copy (global: [ceil(per / 4), copies]).
__kernel void noise_copies(__global const float *item, __global float *out, int per, int copies, float sigma,
                           uint seed_lo, uint seed_hi, uint stream_lo, uint stream_hi) {
    int block = get_global_id(0), k = get_global_id(1);
    int i = block * 4;
    if (i >= per || k >= copies) return;
    ulong stream = (((ulong)stream_hi << 32) | (ulong)stream_lo) + (ulong)k;
    uint4 w = philox4x32_10((uint4)((uint)block, 0u, (uint)stream, (uint)(stream >> 32)), (uint2)(seed_lo, seed_hi));
    float2 a = box_muller(w.x, w.y), b = box_muller(w.z, w.w);
    float z[4] = {a.x, a.y, b.x, b.y};
    __global float *row = out + (long)k * per;
    for (int lane = 0; lane < 4 && i + lane < per; ++lane) row[i + lane] = item[i + lane] + sigma * z[lane];
}

inline void neumaier(float *s, float *c, float v) {
    float t = *s + v;
    if (fabs(*s) >= fabs(v)) *c += (*s - t) + v; else *c += (v - t) + *s;
    *s = t;
}

// The running-sum state [sum, compensation, squares, compensation] (item values each) after
// adding the rows in order; state is read only when has_state.
__kernel void running_sum(__global const float *rows, __global const float *state, __global float *out,
                          int count, int item, int absolute, int has_state) {
    int i = get_global_id(0);
    if (i >= item) return;
    float s = 0.0f, sc = 0.0f, q = 0.0f, qc = 0.0f;
    if (has_state) { s = state[i]; sc = state[item + i]; q = state[2 * item + i]; qc = state[3 * item + i]; }
    for (int k = 0; k < count; ++k) {
        float g = rows[(long)k * item + i];
        float v = absolute ? fabs(g) : g;
        neumaier(&s, &sc, v);
        neumaier(&q, &qc, v * v);
    }
    out[i] = s; out[item + i] = sc; out[2 * item + i] = q; out[3 * item + i] = qc;
}

