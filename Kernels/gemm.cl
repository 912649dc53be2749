// Batched, tiled GEMM with register blocking and a fused bias + activation epilogue.
// C[b] (M x N, row stride ldc) = act(alpha * A[b] * B[b] + bias), where element (i, k) of A is
// A[i * a_row + k * a_col] and element (k, j) of B is B[k * b_row + j * b_col], so transposes are
// strides. bias_mode: 0 none, 1 per column (bias[j], fully connected), 2 per row (bias[i], the
// output channel of a convolution), read from bias + bias_offset. Batch b = get_global_id(2) offsets A, B, C by their batch
// strides. Activation codes as in common.cl.
// Tunables: a work-group of (TS/WPT)^2 work-items computes a TS x TS tile of C, each work-item a
// WPT x WPT block, stepping through K in slices of TK.
#ifndef TS
#define TS 64
#endif
#ifndef WPT
#define WPT 4
#endif
#ifndef TK
#define TK 16
#endif
#define RTS (TS / WPT)

__kernel __attribute__((reqd_work_group_size(RTS, RTS, 1)))
void gemm_tiled(const int M, const int N, const int K,
                __global const float* A, const int a_offset, const int a_row, const int a_col, const int a_batch,
                __global const float* B, const int b_offset, const int b_row, const int b_col, const int b_batch,
                __global float* C, const int c_offset, const int ldc, const int c_batch,
                const float alpha, __global const float* bias, const int bias_offset, const int bias_mode,
                const int act, const float p0, const float p1) {
    const int tx = get_local_id(0), ty = get_local_id(1);   // tx along N, ty along M
    const int n0 = get_group_id(0) * TS, m0 = get_group_id(1) * TS;
    const int b = get_global_id(2);
    A += a_offset + b * a_batch;
    B += b_offset + b * b_batch;
    C += c_offset + b * c_batch;

    __local float As[TK][TS + 1];
    __local float Bs[TK][TS + 1];
    float acc[WPT][WPT];
    for (int i = 0; i < WPT; i++) for (int j = 0; j < WPT; j++) acc[i][j] = 0.0f;

    const int lid = ty * RTS + tx;
    for (int k0 = 0; k0 < K; k0 += TK) {
        // Cooperative loads: TS * TK elements of each tile, RTS * RTS work-items.
        for (int l = lid; l < TS * TK; l += RTS * RTS) {
            int r = l / TK, kk = l % TK;           // A tile: row r of the M block, column kk
            int gm = m0 + r, gk = k0 + kk;
            As[kk][r] = (gm < M && gk < K) ? A[gm * a_row + gk * a_col] : 0.0f;
            int c = l % TS, kb = l / TS;           // B tile: row kb, column c of the N block
            int gn = n0 + c, gkb = k0 + kb;
            Bs[kb][c] = (gn < N && gkb < K) ? B[gkb * b_row + gn * b_col] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TK; kk++) {
            float av[WPT], bv[WPT];
            for (int i = 0; i < WPT; i++) av[i] = As[kk][ty + i * RTS];
            for (int j = 0; j < WPT; j++) bv[j] = Bs[kk][tx + j * RTS];
            for (int i = 0; i < WPT; i++) for (int j = 0; j < WPT; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < WPT; i++) {
        int gm = m0 + ty + i * RTS;
        if (gm >= M) continue;
        for (int j = 0; j < WPT; j++) {
            int gn = n0 + tx + j * RTS;
            if (gn >= N) continue;
            float v = alpha * acc[i][j];
            if (bias_mode == 1) v += bias[bias_offset + gn];
            else if (bias_mode == 2) v += bias[bias_offset + gm];
            C[gm * ldc + gn] = unary_apply(act, v, p0, p1);
        }
    }
}
