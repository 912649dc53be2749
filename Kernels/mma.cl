// GEMM on tensor cores: gemm_mma has gemm_tiled's signature and epilogue (see gemm.cl), and
// multiplies with warp-wide mma.sync.m16n8k8 TF32 instructions (sm_80 and later) through inline
// PTX, which NVIDIA's OpenCL compiler accepts as CUDA does.
//   MMA_TERMS 1 (--precision tf32): each operand rounded to TF32 (10-bit mantissa, round to
//     nearest, ties away from zero: cvt.rna), products summed in fp32. PyTorch's default for
//     cuDNN convolutions.
//   MMA_TERMS 3 (--precision 3xtf32): each operand split as big + small, both TF32, and the sum
//     of small*big + big*small + big*big: fp32-class accuracy on tensor cores (CUTLASS's 3xTF32).
//   MMA_PTX 1: the instructions themselves. MMA_PTX 0: the same warp-level operation emulated
//     through local memory, on any OpenCL device: every other line of this kernel (tiles,
//     prefetch, fragment layouts, edges, epilogue) runs unchanged, so PoCL tests them, and the
//     emulated rounding is cvt.rna's, so maps under emulation show the precision's real error.
// Loops over a warp's tiles and fragments are unrolled on the PTX path, so the accumulators and
// fragments stay in registers (inline asm operands must be registers); the emulation keeps them
// rolled (unrolled, its barriers make PoCL's compile 30 times slower).
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

// Element e of this work-item's share of the A slice [k0, k0 + MMA_BK): its (row, k) within the
// tile, along whichever axis of A is contiguous, so neighbouring work-items read neighbouring
// addresses.
#define MMA_A_COORD(e, lid, a_col, r, kk) do { \
        const int l_ = (lid) + (e) * MMA_THREADS; \
        if ((a_col) == 1) { r = l_ / MMA_BK; kk = l_ % MMA_BK; } else { kk = l_ / MMA_BM; r = l_ % MMA_BM; } \
    } while (0)
#define MMA_B_COORD(e, lid, b_row, c, kk) do { \
        const int l_ = (lid) + (e) * MMA_THREADS; \
        if ((b_row) == 1) { c = l_ / MMA_BK; kk = l_ % MMA_BK; } else { kk = l_ / MMA_BN; c = l_ % MMA_BN; } \
    } while (0)

// One slice of both operands into registers, zero outside the matrices.
inline void mma_fetch(const int M, const int N, const int K, const int m0, const int n0, const int k0, const int lid,
                      __global const float* A, const int a_row, const int a_col,
                      __global const float* B, const int b_row, const int b_col, float* ra, float* rb) {
    for (int e = 0; e < MMA_A_PER; e++) {
        int r, kk;
        MMA_A_COORD(e, lid, a_col, r, kk);
        const int gm = m0 + r, gk = k0 + kk;
        ra[e] = (r < MMA_BM && gm < M && gk < K) ? A[gm * a_row + gk * a_col] : 0.0f;
    }
    for (int e = 0; e < MMA_B_PER; e++) {
        int c, kk;
        MMA_B_COORD(e, lid, b_row, c, kk);
        const int gn = n0 + c, gk = k0 + kk;
        rb[e] = (c < MMA_BN && gn < N && gk < K) ? B[gk * b_row + gn * b_col] : 0.0f;
    }
}

// The registers into the local tiles As[k][m], Bs[k][n].
inline void mma_stash(const int lid, const int a_col, const int b_row, const float* ra, const float* rb,
                      __local float* As, __local float* Bs) {
    for (int e = 0; e < MMA_A_PER; e++) {
        int r, kk;
        MMA_A_COORD(e, lid, a_col, r, kk);
        if (r < MMA_BM) As[kk * MMA_SA + r] = ra[e];
    }
    for (int e = 0; e < MMA_B_PER; e++) {
        int c, kk;
        MMA_B_COORD(e, lid, b_row, c, kk);
        if (c < MMA_BN) Bs[kk * MMA_SB + c] = rb[e];
    }
}

__kernel __attribute__((reqd_work_group_size(MMA_THREADS, 1, 1)))
void gemm_mma(const int M, const int N, const int K,
              __global const float* A, const int a_offset, const int a_row, const int a_col, const int a_batch,
              __global const float* B, const int b_offset, const int b_row, const int b_col, const int b_batch,
              __global float* C, const int c_offset, const int ldc, const int c_batch,
              const float alpha, __global const float* bias, const int bias_offset, const int bias_mode,
              __global const float* R, const int has_res,
              const int act, const float p0, const float p1) {
    const int lid = get_local_id(0), lane = lid % 32, warp = lid / 32;
    const int g = lane / 4, t = lane % 4;
    const int wm = (warp / MMA_WARPS_N) * (MMA_TM * 16), wn = (warp % MMA_WARPS_N) * (MMA_TN * 8);
    const int n0 = get_group_id(0) * MMA_BN, m0 = get_group_id(1) * MMA_BM;
    const int b = get_global_id(2);
    A += a_offset + b * a_batch;
    B += b_offset + b * b_batch;
    C += c_offset + b * c_batch;
    R += c_offset + b * c_batch;

    __local float As[MMA_BK * MMA_SA];
    __local float Bs[MMA_BK * MMA_SB];
#if !MMA_PTX
    // The emulated instructions' staging, 192 floats per warp (the PTX path has no use for it).
    __local float scratch[MMA_WARPS_M * MMA_WARPS_N * 192];
    __local float* ws = scratch + warp * 192;
#endif
    float acc[MMA_TM][MMA_TN][4];
    for (int i = 0; i < MMA_TM; i++) for (int j = 0; j < MMA_TN; j++) for (int r = 0; r < 4; r++) acc[i][j][r] = 0.0f;

    float ra[MMA_A_PER], rb[MMA_B_PER];
    mma_fetch(M, N, K, m0, n0, 0, lid, A, a_row, a_col, B, b_row, b_col, ra, rb);
    for (int k0 = 0; k0 < K; k0 += MMA_BK) {
        mma_stash(lid, a_col, b_row, ra, rb, As, Bs);
        barrier(CLK_LOCAL_MEM_FENCE);
        // The next slice's loads are in flight while this one multiplies.
        if (k0 + MMA_BK < K) mma_fetch(M, N, K, m0, n0, k0 + MMA_BK, lid, A, a_row, a_col, B, b_row, b_col, ra, rb);
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
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    for (int i = 0; i < MMA_TM; i++) {
        for (int j = 0; j < MMA_TN; j++) {
            for (int r = 0; r < 4; r++) {
                const int gm = m0 + wm + i * 16 + g + (r / 2) * 8, gn = n0 + wn + j * 8 + 2 * t + r % 2;
                if (gm >= M || gn >= N) continue;
                C[gm * ldc + gn] = gemm_epilogue_value(acc[i][j][r], gm, gn, alpha, bias, bias_offset, bias_mode, R, has_res, ldc, act, p0, p1);
            }
        }
    }
}
