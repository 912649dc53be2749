// GEMM on tensor cores: gemm_mma has gemm_tiled's signature and epilogue (see gemm.cl), and
// multiplies with warp-wide mma.sync.m16n8k8 TF32 instructions (sm_80 and later) through inline
// PTX, which NVIDIA's OpenCL compiler accepts as CUDA does. conv_mma_forward and
// conv_mma_backward are gemm.cl's implicit-GEMM convolutions (conv_tiled_*: same arguments, the
// batch folded into the columns, no column buffer) on the same core.
//   MMA_TERMS 1 (--precision tf32): each operand rounded to TF32 (10-bit mantissa, round to
//     nearest, ties away from zero: cvt.rna), products summed in fp32. PyTorch's default for
//     cuDNN convolutions.
//   MMA_TERMS 3 (--precision 3xtf32): each operand split as big + small, both TF32, and the sum
//     of small*big + big*small + big*big: fp32-class accuracy on tensor cores (CUTLASS's 3xTF32).
//   MMA_PTX 1: the instructions themselves. MMA_PTX 0: the same warp-level operation emulated
//     through local memory, on any OpenCL device: every other line of this kernel (tiles,
//     prefetch, fragment layouts, edges, epilogue) runs unchanged, so PoCL tests them, and the
//     emulated rounding is cvt.rna's, so maps under emulation show the precision's real error.
// Every loop that indexes the accumulators, fragments or prefetch registers is unrolled on the PTX
// path, zeroing and stores included, so they stay in registers: a single loop with a run-time
// index leaves the whole array in local memory, loaded and stored around every mma
// (PTXCompileTests compiles this file for sm_80 and checks). The emulation keeps them rolled
// (unrolled, its barriers make PoCL's compile 30 times slower).
// A work-group is MMA_WARPS_M x MMA_WARPS_N warps of 32 work-items (one-dimensional, so warps are
// runs of 32 consecutive ids); a warp computes MMA_TM x MMA_TN instruction tiles of 16 x 8, so a
// group computes a BM x BN tile of C, stepping through K in slices of MMA_BK. The next slice is
// read into registers while the current one is multiplied from local memory.
#ifndef MMA_PTX
#define MMA_PTX 0
#endif
#ifndef MMA_TERMS
#define MMA_TERMS 1
#endif
#ifndef MMA_WARPS_M
#define MMA_WARPS_M 2
#endif
#ifndef MMA_WARPS_N
#define MMA_WARPS_N 4
#endif
#ifndef MMA_TM
#define MMA_TM 4
#endif
#ifndef MMA_TN
#define MMA_TN 4
#endif
#ifndef MMA_BK
#define MMA_BK 16
#endif
// The helpers below take the kernels' register arrays by pointer: one that is not inlined
// leaves those arrays in local memory (LLVM declines to inline the larger ones by itself).
#define MMA_INLINE inline __attribute__((always_inline))
#if MMA_PTX
#define MMA_UNROLL _Pragma("unroll")
#else
#define MMA_UNROLL
#endif
#define MMA_THREADS (32 * MMA_WARPS_M * MMA_WARPS_N)
#define MMA_BM (MMA_WARPS_M * MMA_TM * 16)
#define MMA_BN (MMA_WARPS_N * MMA_TN * 8)
// Local rows are k-major and padded to 8 more than a multiple of 32 floats, so a fragment read
// (lanes t = 0..3 along k, g = 0..7 along m or n) touches 32 different banks.
#define MMA_SA (MMA_BM + 8)
#define MMA_SB (MMA_BN + 8)
// Elements of one slice each work-item carries between global and local memory.
#define MMA_A_PER ((MMA_BM * MMA_BK + MMA_THREADS - 1) / MMA_THREADS)
#define MMA_B_PER ((MMA_BN * MMA_BK + MMA_THREADS - 1) / MMA_THREADS)

// x rounded to TF32 as cvt.rna.tf32.f32 does: the 13 low mantissa bits rounded off, to nearest,
// ties away from zero; infinities and NaNs pass unchanged. The result is an fp32 value.
inline float to_tf32(const float x) {
#if MMA_PTX
    uint u;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(u) : "f"(x));
    return as_float(u);
#else
    const uint u = as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;
    return as_float((u + 0x1000u) & 0xffffe000u);
#endif
}

// d = a * b + d for one warp: a 16 x 8 (row-major fragment a[4]), b 8 x 8 (b[2]), d 16 x 8 (d[4]).
// Lane l holds, with g = l / 4 and t = l % 4:
//   a[0] = A[g][t], a[1] = A[g + 8][t], a[2] = A[g][t + 4], a[3] = A[g + 8][t + 4];
//   b[0] = B[t][g], b[1] = B[t + 4][g];
//   d[0] = D[g][2t], d[1] = D[g][2t + 1], d[2] = D[g + 8][2t], d[3] = D[g + 8][2t + 1].
// The emulation stages the fragments in the warp's scratch (`ws`, 192 floats) between barriers
// that every work-item of the group reaches, as every call site is uniform.
#if MMA_PTX
#define MMA_M16N8K8(d, a, b, lane, ws) \
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};" \
        : "=f"((d)[0]), "=f"((d)[1]), "=f"((d)[2]), "=f"((d)[3]) \
        : "r"(as_uint((a)[0])), "r"(as_uint((a)[1])), "r"(as_uint((a)[2])), "r"(as_uint((a)[3])), \
          "r"(as_uint((b)[0])), "r"(as_uint((b)[1])), \
          "f"((d)[0]), "f"((d)[1]), "f"((d)[2]), "f"((d)[3]))
#else
#define MMA_M16N8K8(d, a, b, lane, ws) mma_emulated((d), (a), (b), (lane), (ws))
inline void mma_emulated(float* d, const float* a, const float* b, const int lane, __local float* ws) {
    const int g = lane / 4, t = lane % 4;
    __local float* As = ws;          // 16 x 8, row-major
    __local float* Bs = ws + 128;    // 8 x 8, k-major
    As[g * 8 + t] = a[0];
    As[(g + 8) * 8 + t] = a[1];
    As[g * 8 + t + 4] = a[2];
    As[(g + 8) * 8 + t + 4] = a[3];
    Bs[t * 8 + g] = b[0];
    Bs[(t + 4) * 8 + g] = b[1];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = 0; r < 4; r++) {
        const int row = g + (r / 2) * 8, col = 2 * t + r % 2;
        float s = d[r];
        for (int k = 0; k < 8; k++) s = fma(As[row * 8 + k], Bs[k * 8 + col], s);
        d[r] = s;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}
#endif

// Element e of this work-item's share of a slice: its (row, k) within the A tile, or (column, k)
// within the B tile, along whichever axis of the operand is contiguous (along_k), so neighbouring
// work-items read neighbouring addresses.
#define MMA_A_COORD(e, lid, along_k, r, kk) do { \
        const int l_ = (lid) + (e) * MMA_THREADS; \
        if (along_k) { r = l_ / MMA_BK; kk = l_ % MMA_BK; } else { kk = l_ / MMA_BM; r = l_ % MMA_BM; } \
    } while (0)
#define MMA_B_COORD(e, lid, along_k, c, kk) do { \
        const int l_ = (lid) + (e) * MMA_THREADS; \
        if (along_k) { c = l_ / MMA_BK; kk = l_ % MMA_BK; } else { kk = l_ / MMA_BN; c = l_ % MMA_BN; } \
    } while (0)

// One slice [k0, k0 + MMA_BK) of A (rows m0.., element (i, k) at A[i * a_row + k * a_col]) into
// registers, zero outside the matrix.
MMA_INLINE void mma_fetch_a(const int M, const int K, const int m0, const int k0, const int lid,
                        __global const float* A, const int a_row, const int a_col, float* ra) {
    MMA_UNROLL
    for (int e = 0; e < MMA_A_PER; e++) {
        int r, kk;
        MMA_A_COORD(e, lid, a_col == 1, r, kk);
        const int gm = m0 + r, gk = k0 + kk;
        ra[e] = (r < MMA_BM && gm < M && gk < K) ? A[gm * a_row + gk * a_col] : 0.0f;
    }
}

// The same for B (columns n0.., element (k, j) at B[k * b_row + j * b_col]).
MMA_INLINE void mma_fetch_b(const int N, const int K, const int n0, const int k0, const int lid,
                        __global const float* B, const int b_row, const int b_col, float* rb) {
    MMA_UNROLL
    for (int e = 0; e < MMA_B_PER; e++) {
        int c, kk;
        MMA_B_COORD(e, lid, b_row == 1, c, kk);
        const int gn = n0 + c, gk = k0 + kk;
        rb[e] = (c < MMA_BN && gn < N && gk < K) ? B[gk * b_row + gn * b_col] : 0.0f;
    }
}

// The implicit kernels' B tiles run along n (MMA_B_COORD with along_k 0), and every element of a
// work-item's share of a slice then lies in one column, lid % MMA_BN, at k = lid / MMA_BN + e *
// MMA_B_STEP: the column's pixel is decoded once per kernel, and no gather divides inside the
// K loop except to find the slice's first (channel, tap).
#if MMA_THREADS % MMA_BN != 0 || (MMA_BN * MMA_BK) % MMA_THREADS != 0
#error "the implicit kernels' gathers need MMA_THREADS a multiple of MMA_BN and a slice a multiple of MMA_THREADS"
#endif
#define MMA_B_STEP (MMA_THREADS / MMA_BN)

// B of an implicit forward (gemm.cl's conv_fetch_b_run): element (k, n) is the input under tap
// k = (ci, ky, kx) of output pixel n, zero in the padding. This work-item's column reads xc (its
// image, its group's first channel) around (iy0, ix0), the top-left of its pixel's window;
// `inside` is 0 past the last column.
MMA_INLINE void mma_fetch_x(const int K, const int k0, const int lid, __global const float* xc, const int inside,
                            const int iy0, const int ix0, const int8 g0, const int8 g1, float* rb) {
    CONV_GEOMETRY;
    int gk = k0 + lid / MMA_BN;
    int ci = gk / taps, ky = (gk - ci * taps) / KW, kx = gk - ci * taps - ky * KW;
    MMA_UNROLL
    for (int e = 0; e < MMA_B_PER; e++) {
        const int yy = iy0 + ky * DH, xx = ix0 + kx * DW;
        rb[e] = (inside && gk < K && yy >= 0 && yy < H && xx >= 0 && xx < W) ? xc[(ci * H + yy) * W + xx] : 0.0f;
        // The next k of this work-item: MMA_B_STEP taps on, carried into rows and channels.
        gk += MMA_B_STEP;
        kx += MMA_B_STEP;
        while (kx >= KW) { kx -= KW; ky++; }
        while (ky >= KH) { ky -= KH; ci++; }
    }
}

// B of one tap of an implicit input gradient (conv_fetch_dy_run): element (co, n) is the output
// gradient at the output pixel the tap maps input pixel n to, zero where it maps to none. This
// work-item's column reads gyg + at + co * plane, or nothing where `at` is negative (no such
// pixel, or past the last column).
MMA_INLINE void mma_fetch_dy(const int K, const int k0, const int lid, __global const float* gyg, const int at, const int plane,
                             float* rb) {
    MMA_UNROLL
    for (int e = 0; e < MMA_B_PER; e++) {
        const int co = k0 + lid / MMA_BN + e * MMA_B_STEP;
        rb[e] = (at >= 0 && co < K) ? gyg[at + co * plane] : 0.0f;
    }
}

// The registers into the local tiles As[k][m], Bs[k][n] (along_k as the fetch read them).
MMA_INLINE void mma_stash(const int lid, const int a_along_k, const int b_along_k, const float* ra, const float* rb,
                      __local float* As, __local float* Bs) {
    MMA_UNROLL
    for (int e = 0; e < MMA_A_PER; e++) {
        int r, kk;
        MMA_A_COORD(e, lid, a_along_k, r, kk);
        if (r < MMA_BM) As[kk * MMA_SA + r] = ra[e];
    }
    MMA_UNROLL
    for (int e = 0; e < MMA_B_PER; e++) {
        int c, kk;
        MMA_B_COORD(e, lid, b_along_k, c, kk);
        if (c < MMA_BN) Bs[kk * MMA_SB + c] = rb[e];
    }
}

// acc += the product of the local tiles' slice for this warp's MMA_TM x MMA_TN tiles of 16 x 8
// (rows from wm, columns from wn within the block), eight k at a time.
MMA_INLINE void mma_multiply_slice(__local const float* As, __local const float* Bs, float acc[MMA_TM][MMA_TN][4],
                               const int wm, const int wn, const int lane, __local float* ws) {
    const int g = lane / 4, t = lane % 4;
    MMA_UNROLL
    for (int kk = 0; kk < MMA_BK; kk += 8) {
        float b_big[MMA_TN][2];
#if MMA_TERMS == 3
        float b_small[MMA_TN][2];
#endif
        MMA_UNROLL
        for (int j = 0; j < MMA_TN; j++) {
            const int col = wn + j * 8 + g;
            MMA_UNROLL
            for (int h = 0; h < 2; h++) {
                const float v = Bs[(kk + t + 4 * h) * MMA_SB + col];
                b_big[j][h] = to_tf32(v);
#if MMA_TERMS == 3
                b_small[j][h] = to_tf32(v - b_big[j][h]);
#endif
            }
        }
        MMA_UNROLL
        for (int i = 0; i < MMA_TM; i++) {
            const int row = wm + i * 16 + g;
            float a_big[4];
#if MMA_TERMS == 3
            float a_small[4];
#endif
            MMA_UNROLL
            for (int q = 0; q < 4; q++) {
                const float v = As[(kk + t + 4 * (q / 2)) * MMA_SA + row + 8 * (q % 2)];
                a_big[q] = to_tf32(v);
#if MMA_TERMS == 3
                a_small[q] = to_tf32(v - a_big[q]);
#endif
            }
            MMA_UNROLL
            for (int j = 0; j < MMA_TN; j++) {
#if MMA_TERMS == 3
                // The small terms first, so the big product is added to their sum.
                MMA_M16N8K8(acc[i][j], a_small, b_big[j], lane, ws);
                MMA_M16N8K8(acc[i][j], a_big, b_small[j], lane, ws);
#endif
                MMA_M16N8K8(acc[i][j], a_big, b_big[j], lane, ws);
            }
        }
    }
}

// Every accumulator element (i, j, r) of a work-item, unrolled on the PTX path (see above).
#define MMA_FOR_EACH_ACCUMULATOR \
    MMA_UNROLL for (int i = 0; i < MMA_TM; i++) \
    MMA_UNROLL for (int j = 0; j < MMA_TN; j++) \
    MMA_UNROLL for (int r = 0; r < 4; r++)

MMA_INLINE void mma_zero(float acc[MMA_TM][MMA_TN][4]) {
    MMA_FOR_EACH_ACCUMULATOR acc[i][j][r] = 0.0f;
}

// Row and column within the block of accumulator element r of the warp's tile (i, j): d[r] of the
// m16n8 fragment (see MMA_M16N8K8).
#define MMA_ROW(i, r) (wm + (i) * 16 + g + ((r) / 2) * 8)
#define MMA_COL(j, r) (wn + (j) * 8 + 2 * t + (r) % 2)

// What every kernel here declares: its work-item's place (lane, g, t, the warp's wm and wn), the
// local tiles, the emulation's scratch (a null pointer on the PTX path, which never reads it),
// and acc, zeroed.
#if MMA_PTX
#define MMA_SCRATCH __local float* ws = 0
#else
// The emulated instructions' staging, 192 floats per warp.
#define MMA_SCRATCH __local float scratch[MMA_WARPS_M * MMA_WARPS_N * 192]; __local float* ws = scratch + warp * 192
#endif
#define MMA_PROLOGUE \
    const int lid = get_local_id(0), lane = lid % 32, warp = lid / 32; \
    const int g = lane / 4, t = lane % 4; \
    const int wm = (warp / MMA_WARPS_N) * (MMA_TM * 16), wn = (warp % MMA_WARPS_N) * (MMA_TN * 8); \
    __local float As[MMA_BK * MMA_SA]; \
    __local float Bs[MMA_BK * MMA_SB]; \
    MMA_SCRATCH; \
    float acc[MMA_TM][MMA_TN][4]; \
    mma_zero(acc)

// The K loop of every kernel here: acc += the product over k in [0, K_), slice by slice in order
// (so an element's sum is the same chain of instructions whoever fetches the tiles). The kernel
// defines MMA_FETCH(k0, ra, rb) (a slice of both operands into registers) and MMA_STASH(ra, rb)
// (the registers into As and Bs). The next slice's loads are in flight while this one multiplies.
#define MMA_K_LOOP(K_, acc) do { \
        float ra_[MMA_A_PER], rb_[MMA_B_PER]; \
        MMA_FETCH(0, ra_, rb_); \
        for (int k0 = 0; k0 < (K_); k0 += MMA_BK) { \
            MMA_STASH(ra_, rb_); \
            barrier(CLK_LOCAL_MEM_FENCE); \
            if (k0 + MMA_BK < (K_)) MMA_FETCH(k0 + MMA_BK, ra_, rb_); \
            mma_multiply_slice(As, Bs, acc, wm, wn, lane, ws); \
            barrier(CLK_LOCAL_MEM_FENCE); \
        } \
    } while (0)

__kernel __attribute__((reqd_work_group_size(MMA_THREADS, 1, 1)))
void gemm_mma(const int M, const int N, const int K,
              __global const float* A, const int a_offset, const int a_row, const int a_col, const int a_batch,
              __global const float* B, const int b_offset, const int b_row, const int b_col, const int b_batch,
              __global float* C, const int c_offset, const int ldc, const int c_batch,
              const float alpha, __global const float* bias, const int bias_offset, const int bias_mode,
              __global const float* R, const int has_res, __global const float* gate_out, const int gate,
              const int act, const float p0, const float p1) {
    MMA_PROLOGUE;
    const int n0 = get_group_id(0) * MMA_BN, m0 = get_group_id(1) * MMA_BM;
    const int b = get_global_id(2);
    A += a_offset + b * a_batch;
    B += b_offset + b * b_batch;
    C += c_offset + b * c_batch;
    R += c_offset + b * c_batch;
    gate_out += c_offset + b * c_batch;
#define MMA_FETCH(k0_, ra, rb) do { \
        mma_fetch_a(M, K, m0, (k0_), lid, A, a_row, a_col, ra); \
        mma_fetch_b(N, K, n0, (k0_), lid, B, b_row, b_col, rb); \
    } while (0)
#define MMA_STASH(ra, rb) mma_stash(lid, a_col == 1, b_row == 1, ra, rb, As, Bs)
    MMA_K_LOOP(K, acc);
#undef MMA_FETCH
#undef MMA_STASH
    MMA_FOR_EACH_ACCUMULATOR {
        const int gm = m0 + MMA_ROW(i, r), gn = n0 + MMA_COL(j, r);
        if (gm < M && gn < N) {
            C[gm * ldc + gn] = gemm_epilogue_value(acc[i][j][r], gm, gn, alpha, bias, bias_offset, bias_mode, R, has_res, gate_out, gate, ldc, act, p0, p1);
        }
    }
}

// Forward convolution (conv_tiled_forward's arguments): a work-group computes MMA_BM output
// channels of one group (axis 2) x MMA_BN columns running over every image's output pixels; the
// store adds bias and skip and applies the activation, as gemm_epilogue_value does on the im2col
// path (alpha 1), so the two lowerings give the same bits.
__kernel __attribute__((reqd_work_group_size(MMA_THREADS, 1, 1)))
void conv_mma_forward(__global const float* x, __global const float* w, __global const float* bias, const int has_bias,
                      __global const float* R, const int has_res, __global float* y,
                      const int8 g0, const int8 g1, const int act, const float p0, const float p1) {
    CONV_GEOMETRY;
    MMA_PROLOGUE;
    const int n0 = get_group_id(0) * MMA_BN, m0 = get_group_id(1) * MMA_BM, group = get_global_id(2);
    const int NT = IMAGES * plane;
    __global const float* A = w + group * coutG * kG;
    // This work-item's column of B: output pixel (image, oy, ox).
    const int column = min(n0 + lid % MMA_BN, NT - 1), inside = n0 + lid % MMA_BN < NT;
    const int image = column / plane, oy = (column - image * plane) / OW, ox = column - image * plane - oy * OW;
    __global const float* xc = x + (image * C + group * cinG) * H * W;
#define MMA_FETCH(k0_, ra, rb) do { \
        mma_fetch_a(coutG, kG, m0, (k0_), lid, A, kG, 1, ra); \
        mma_fetch_x(kG, (k0_), lid, xc, inside, oy * SH - PT, ox * SW - PL, g0, g1, rb); \
    } while (0)
#define MMA_STASH(ra, rb) mma_stash(lid, 1, 0, ra, rb, As, Bs)
    MMA_K_LOOP(kG, acc);
#undef MMA_FETCH
#undef MMA_STASH
    MMA_FOR_EACH_ACCUMULATOR {
        const int gm = m0 + MMA_ROW(i, r), gn = n0 + MMA_COL(j, r);
        if (gm < coutG && gn < NT) {
            const int co = group * coutG + gm, img = gn / plane, at = (img * CO + co) * plane + gn - img * plane;
            float v = acc[i][j][r];
            if (has_bias) v += bias[co];
            if (has_res) v += R[at];
            y[at] = unary_apply(act, v, p0, p1);
        }
    }
}

// Input gradient (conv_tiled_backward's arguments): MMA_BM input channels x MMA_BN columns over
// every image's input pixels; one K loop over the output channels per tap, its sum added where
// the tap reaches the pixel, taps in order as conv2d_col2im adds them.
__kernel __attribute__((reqd_work_group_size(MMA_THREADS, 1, 1)))
void conv_mma_backward(__global const float* gy, __global const float* w, __global float* dx,
                       const int8 g0, const int8 g1, BACKWARD_STORE_ARGS) {
    CONV_GEOMETRY;
    MMA_PROLOGUE;
    const int n0 = get_group_id(0) * MMA_BN, m0 = get_group_id(1) * MMA_BM, group = get_global_id(2);
    const int HW = H * W, NT = IMAGES * HW;
    __global const float* gyg = gy + group * coutG * plane;
    // This work-item's column of B: input pixel (image, iy, ix).
    const int column = n0 + lid % MMA_BN, image = column / HW, iy = (column - image * HW) / W, ix = column - image * HW - iy * W;
    // The input pixel (row, column) of each column of C this work-item accumulates (MMA_COL(j, h):
    // 2 per instruction tile), decoded once: the taps' masks below then divide by nothing at unit
    // stride (decoding them per tap took about 112 integer divisions a tap).
    int acc_y[MMA_TN][2], acc_x[MMA_TN][2];
    MMA_UNROLL
    for (int j = 0; j < MMA_TN; j++) {
        MMA_UNROLL
        for (int h = 0; h < 2; h++) {
            const int p = min(n0 + MMA_COL(j, h), NT - 1) % HW;
            acc_y[j][h] = p / W;
            acc_x[j][h] = p - acc_y[j][h] * W;
        }
    }
    for (int ky = 0; ky < KH; ky++) {
        for (int kx = 0; kx < KW; kx++) {
            // A[c][co] = w[group * coutG + co][c][ky][kx].
            __global const float* A = w + group * coutG * kG + ky * KW + kx;
            // Where the column reads the output gradient under this tap (less co * plane), or -1.
            const int oy = tap_output(iy, PT, ky, DH, SH, OH), ox = tap_output(ix, PL, kx, DW, SW, OW);
            const int at = column < NT && oy >= 0 && ox >= 0 ? image * CO * plane + oy * OW + ox : -1;
            float tap_acc[MMA_TM][MMA_TN][4];
            mma_zero(tap_acc);
#define MMA_FETCH(k0_, ra, rb) do { \
        mma_fetch_a(cinG, coutG, m0, (k0_), lid, A, taps, kG, ra); \
        mma_fetch_dy(coutG, (k0_), lid, gyg, at, plane, rb); \
    } while (0)
#define MMA_STASH(ra, rb) mma_stash(lid, kG == 1, 0, ra, rb, As, Bs)
            MMA_K_LOOP(coutG, tap_acc);
#undef MMA_FETCH
#undef MMA_STASH
            MMA_UNROLL
            for (int j = 0; j < MMA_TN; j++) {
                MMA_UNROLL
                for (int h = 0; h < 2; h++) {
                    if (!tap_reaches(acc_y[j][h], PT, ky, DH, SH, OH) || !tap_reaches(acc_x[j][h], PL, kx, DW, SW, OW)) continue;
                    // Accumulator elements r = h and h + 2 hold column MMA_COL(j, h) (rows g and g + 8).
                    MMA_UNROLL
                    for (int i = 0; i < MMA_TM; i++) {
                        acc[i][j][h] += tap_acc[i][j][h];
                        acc[i][j][h + 2] += tap_acc[i][j][h + 2];
                    }
                }
            }
        }
    }
    MMA_FOR_EACH_ACCUMULATOR {
        const int gm = m0 + MMA_ROW(i, r), gn = n0 + MMA_COL(j, r);
        if (gm < cinG && gn < NT) {
            const int img = gn / HW, at = (img * C + group * cinG + gm) * HW + gn - img * HW;
            dx[at] = gradient_store_value(acc[i][j][r], at, R, has_res, gate_out, gate, p0, p1);
        }
    }
}
