// Batched GEMM with a fused bias + residual + activation epilogue, in three variants with one
// signature. C[b] (M x N, row stride ldc) = act(alpha * A[b] * B[b] + bias + R[b]), where element (i, k) of A is
// A[i * a_row + k * a_col] and element (k, j) of B is B[k * b_row + j * b_col], so transposes are
// strides. bias_mode: 0 none, 1 per column (bias[j], fully connected), 2 per row (bias[i], the
// output channel of a convolution), read from bias + bias_offset. Batch b = get_global_id(2)
// offsets A, B, C by their batch strides (one GEMM per image and group of a convolution).
// R (read when has_res) is laid out as C, with C's offset and strides: a ResNet's skip
// connection added in the store, so the block's sum and rectifier take no launches of their own.
// gate_out (read when gate, an activation code) is laid out as C too: the store multiplies by that
// activation's derivative at gate_out, its output (a backward's store, where act is the identity and p0,
// p1 are the gate's parameters: common.cl's gemm_epilogue_value).
// Activation codes as in common.cl.
//   gemm_tiled (GPUs): a work-group of (TS/WPT)^2 work-items computes a TS x TS tile of C through
//     local memory, each work-item a WPT x WPT register block, stepping through K in slices of TK.
//   gemm_rows (CPU devices such as PoCL, where barriers and local memory are slow): one work-item
//     per CPU_ROWS x 16 block of C with float16 vectors along N.
//   gemm_dot (CPU devices, A and B both contiguous along K): one work-item per 4 x 4 block of C
//     as dot products with float16 vectors along K.
//   gemm_epilogue: bias + activation over a C that another library's GEMM wrote (CLBlast).
// Tunables (-D): TS, WPT, TK, VW, DB, CPU_ROWS.
//   VW (1, 2 or 4): gemm_tiled loads each operand's slice in runs of VW elements along the axis
//     that is contiguous in memory (vloadVW where the run is whole and inside the matrix).
//   DB (0 or 1): gemm_tiled double-buffers its local tiles: the next K slice is loaded while the
//     current one is multiplied, one barrier per slice instead of two, at twice the local memory.
//   PF (0 or 1): the tiled kernels prefetch into registers: the next K slice is read from global
//     memory into each work-item's registers while the current one multiplies, and stored to local
//     memory after it, so the loads' latency hides behind the arithmetic (with DB, still one barrier
//     per slice). The same values reach the same local tiles: the same bits.
//   SB (1 or 4): gemm_tiled's WPT x WPT register block is made of SB x SB sub-blocks, a work-item's
//     rows and columns in runs of SB a quarter tile apart, so it reads its operands from local
//     memory as aligned float4s (rows padded by SB instead of 1 to keep them aligned).
#ifndef TS
#define TS 64
#endif
#ifndef WPT
#define WPT 4
#endif
#ifndef TK
#define TK 16
#endif
#ifndef VW
#define VW 1
#endif
#ifndef DB
#define DB 0
#endif
#ifndef SB
#define SB 1
#endif
#ifndef PF
#define PF 0
#endif
// Loops over a work-item's register block and prefetch registers are unrolled, so that every
// index into those arrays is a constant: an array indexed by a run-time counter is kept in local
// (off-chip) memory on GPUs, loaded and stored around every fma (PTXCompileTests compiles the
// tiled kernels for sm_80 and checks).
#define GEMM_UNROLL _Pragma("unroll")
#define RTS (TS / WPT)
#if SB > 1
#define TILE_STRIDE (TS + SB)
#else
#define TILE_STRIDE (TS + 1)
#endif
// Row (or column) i of work-item t's register block within the tile: runs of SB spaced RTS * SB
// apart (SB = 1: t + i * RTS).
#define SUB_INDEX(t, i) ((t) * SB + (i) % SB + ((i) / SB) * (RTS * SB))
#define TILE_FLOATS (TK * TILE_STRIDE)
// Runs of VW elements per operand slice each work-item carries (registers under PF).
#define TILE_RUNS ((TS * TK / VW + RTS * RTS - 1) / (RTS * RTS))
#define GEMM_CAT_(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)
#if VW == 1
#define LOAD_WHOLE(v, p) (v[0] = (p)[0])
#else
#define LOAD_WHOLE(v, p) GEMM_CAT(vstore, VW)(GEMM_CAT(vload, VW)(0, (p)), 0, v)
#endif

// VW elements from p into v: one vector load when `whole` (the run is contiguous and inside the
// matrix), else element by element from p + j * stride where `validj` holds, zero elsewhere.
#define LOAD_RUN(v, p, whole, stride, validj) do { \
        if (whole) { LOAD_WHOLE(v, p); } \
        else { GEMM_UNROLL for (int j = 0; j < VW; j++) v[j] = (validj) ? (p)[j * (stride)] : 0.0f; } \
    } while (0)

// Element run l of one K slice [k0, k0 + TK) of the A tile (rows m0..m0+TS): its VW values read into
// v, zero outside the matrix (fetch), then stored to As[kk][r] (put). Runs of VW elements go along
// A's contiguous axis, so neighbouring work-items read neighbouring addresses.
inline void tile_fetch_a_run(const int l, const int M, const int K, const int m0, const int k0,
                             __global const float* A, const int a_row, const int a_col, float* v) {
    if (a_row == 1 && a_col != 1) {          // A contiguous along M: runs of rows
        const int kk = l / (TS / VW), r = (l % (TS / VW)) * VW;
        const int gm = m0 + r, gk = k0 + kk;
        __global const float* p = A + gm + gk * a_col;
        LOAD_RUN(v, p, gk < K && gm + VW <= M, 1, gk < K && gm + j < M);
    } else {                                 // runs along K (contiguous when a_col == 1)
        const int r = l / (TK / VW), kk = (l % (TK / VW)) * VW;
        const int gm = m0 + r, gk = k0 + kk;
        __global const float* p = A + gm * a_row + gk * a_col;
        LOAD_RUN(v, p, a_col == 1 && gm < M && gk + VW <= K, a_col, gm < M && gk + j < K);
    }
}

inline void tile_put_a_run(const int l, const int a_row, const int a_col, const float* v, __local float* As) {
    if (a_row == 1 && a_col != 1) {
        const int kk = l / (TS / VW), r = (l % (TS / VW)) * VW;
        GEMM_UNROLL for (int j = 0; j < VW; j++) As[kk * TILE_STRIDE + r + j] = v[j];
    } else {
        const int r = l / (TK / VW), kk = (l % (TK / VW)) * VW;
        GEMM_UNROLL for (int j = 0; j < VW; j++) As[(kk + j) * TILE_STRIDE + r] = v[j];
    }
}

inline void tile_load_a_run(const int l, const int M, const int K, const int m0, const int k0,
                            __global const float* A, const int a_row, const int a_col, __local float* As) {
    float v[VW];
    tile_fetch_a_run(l, M, K, m0, k0, A, a_row, a_col, v);
    tile_put_a_run(l, a_row, a_col, v, As);
}

// A run along N of a B tile into Bs[kb][c..c+VW): B contiguous along N, and the convolutions' tiles.
inline void tile_put_n_run(const int l, const float* v, __local float* Bs) {
    const int kb = l / (TS / VW), c = (l % (TS / VW)) * VW;
    GEMM_UNROLL for (int j = 0; j < VW; j++) Bs[kb * TILE_STRIDE + c + j] = v[j];
}

// The same for the B tile (columns n0..n0+TS) into Bs[kk][c].
inline void tile_fetch_b_run(const int l, const int N, const int K, const int n0, const int k0,
                             __global const float* B, const int b_row, const int b_col, float* v) {
    if (b_row == 1 && b_col != 1) {          // B contiguous along K: runs of k
        const int c = l / (TK / VW), kb = (l % (TK / VW)) * VW;
        const int gn = n0 + c, gk = k0 + kb;
        __global const float* p = B + gk + gn * b_col;
        LOAD_RUN(v, p, gn < N && gk + VW <= K, 1, gn < N && gk + j < K);
    } else {                                 // runs along N (contiguous when b_col == 1)
        const int kb = l / (TS / VW), c = (l % (TS / VW)) * VW;
        const int gn = n0 + c, gk = k0 + kb;
        __global const float* p = B + gk * b_row + gn * b_col;
        LOAD_RUN(v, p, b_col == 1 && gk < K && gn + VW <= N, b_col, gk < K && gn + j < N);
    }
}

inline void tile_put_b_run(const int l, const int b_row, const int b_col, const float* v, __local float* Bs) {
    if (b_row == 1 && b_col != 1) {
        const int c = l / (TK / VW), kb = (l % (TK / VW)) * VW;
        GEMM_UNROLL for (int j = 0; j < VW; j++) Bs[(kb + j) * TILE_STRIDE + c] = v[j];
    } else {
        tile_put_n_run(l, v, Bs);
    }
}

inline void tile_load_b_run(const int l, const int N, const int K, const int n0, const int k0,
                            __global const float* B, const int b_row, const int b_col, __local float* Bs) {
    float v[VW];
    tile_fetch_b_run(l, N, K, n0, k0, B, b_row, b_col, v);
    tile_put_b_run(l, b_row, b_col, v, Bs);
}

// One K slice of both tiles, every work-item of the group taking its share of the runs.
void gemm_tiled_load(const int M, const int N, const int K, const int m0, const int n0, const int k0, const int lid,
                     __global const float* A, const int a_row, const int a_col,
                     __global const float* B, const int b_row, const int b_col,
                     __local float* As, __local float* Bs) {
    for (int l = lid; l < TS * TK / VW; l += RTS * RTS) {
        tile_load_a_run(l, M, K, m0, k0, A, a_row, a_col, As);
        tile_load_b_run(l, N, K, n0, k0, B, b_row, b_col, Bs);
    }
}

// acc += the slice's product: row ty and column tx of the work-group, k along the slice.
#if SB == 4
#define MULTIPLY_SLICE(as, bs, acc) do { \
        for (int kk = 0; kk < TK; kk++) { \
            float av[WPT], bv[WPT]; \
            GEMM_UNROLL for (int q = 0; q < WPT / 4; q++) { \
                const float4 a4 = vload4(0, (as) + kk * TILE_STRIDE + ty * 4 + q * (RTS * 4)); \
                const float4 b4 = vload4(0, (bs) + kk * TILE_STRIDE + tx * 4 + q * (RTS * 4)); \
                av[4 * q] = a4.x; av[4 * q + 1] = a4.y; av[4 * q + 2] = a4.z; av[4 * q + 3] = a4.w; \
                bv[4 * q] = b4.x; bv[4 * q + 1] = b4.y; bv[4 * q + 2] = b4.z; bv[4 * q + 3] = b4.w; \
            } \
            GEMM_UNROLL for (int i = 0; i < WPT; i++) GEMM_UNROLL for (int j = 0; j < WPT; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]); \
        } \
    } while (0)
#else
#define MULTIPLY_SLICE(as, bs, acc) do { \
        for (int kk = 0; kk < TK; kk++) { \
            float av[WPT], bv[WPT]; \
            GEMM_UNROLL for (int i = 0; i < WPT; i++) av[i] = (as)[kk * TILE_STRIDE + SUB_INDEX(ty, i)]; \
            GEMM_UNROLL for (int j = 0; j < WPT; j++) bv[j] = (bs)[kk * TILE_STRIDE + SUB_INDEX(tx, j)]; \
            GEMM_UNROLL for (int i = 0; i < WPT; i++) GEMM_UNROLL for (int j = 0; j < WPT; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]); \
        } \
    } while (0)
#endif

// The K loop of every tiled kernel: acc (zeroed by the caller) += the product over k in [0, K_),
// slice by slice in order, so an element's sum is the same chain of fmas whoever loads the
// tiles. LOAD_SLICE(k0, as, bs) is the kernel's loader of one slice into the local tiles As, Bs.
// With DB the next slice loads while the current one multiplies: one barrier per slice. Every
// pass ends on a barrier, so a kernel may run the loop again (one convolution tap after another).
// With PF the kernel also defines FETCH_SLICE(k0, ra, rb) (a slice into registers ra, rb:
// float[TILE_RUNS][VW] each) and PUT_SLICE(as, bs, ra, rb) (registers into local tiles).
#if PF
#define TILED_K_LOOP(K_, acc) do { \
        float ra_[TILE_RUNS][VW], rb_[TILE_RUNS][VW]; \
        int cur_ = 0; \
        FETCH_SLICE(0, ra_, rb_); \
        PUT_SLICE(As, Bs, ra_, rb_); \
        barrier(CLK_LOCAL_MEM_FENCE); \
        for (int k0 = 0; k0 < (K_); k0 += TK) { \
            const bool next_ = k0 + TK < (K_); \
            /* The next slice's loads are in flight while this one multiplies. */ \
            if (next_) FETCH_SLICE(k0 + TK, ra_, rb_); \
            MULTIPLY_SLICE(As + cur_ * TILE_FLOATS, Bs + cur_ * TILE_FLOATS, acc); \
            if (DB) { \
                /* The other buffer was last read in the previous slice, before its closing barrier. */ \
                if (next_) PUT_SLICE(As + (1 - cur_) * TILE_FLOATS, Bs + (1 - cur_) * TILE_FLOATS, ra_, rb_); \
                barrier(CLK_LOCAL_MEM_FENCE); \
                cur_ = 1 - cur_; \
            } else { \
                barrier(CLK_LOCAL_MEM_FENCE); \
                if (next_) { PUT_SLICE(As, Bs, ra_, rb_); barrier(CLK_LOCAL_MEM_FENCE); } \
            } \
        } \
    } while (0)
#else
#define TILED_K_LOOP(K_, acc) do { \
        int cur_ = 0; \
        if (DB) { LOAD_SLICE(0, As, Bs); barrier(CLK_LOCAL_MEM_FENCE); } \
        for (int k0 = 0; k0 < (K_); k0 += TK) { \
            if (DB) { \
                /* The other buffer was last read in the previous slice, before its closing barrier. */ \
                if (k0 + TK < (K_)) LOAD_SLICE(k0 + TK, As + (1 - cur_) * TILE_FLOATS, Bs + (1 - cur_) * TILE_FLOATS); \
            } else { \
                LOAD_SLICE(k0, As, Bs); \
                barrier(CLK_LOCAL_MEM_FENCE); \
            } \
            MULTIPLY_SLICE(As + cur_ * TILE_FLOATS, Bs + cur_ * TILE_FLOATS, acc); \
            barrier(CLK_LOCAL_MEM_FENCE); \
            if (DB) cur_ = 1 - cur_; \
        } \
    } while (0)
#endif

__kernel __attribute__((reqd_work_group_size(RTS, RTS, 1)))
void gemm_tiled(const int M, const int N, const int K,
                __global const float* A, const int a_offset, const int a_row, const int a_col, const int a_batch,
                __global const float* B, const int b_offset, const int b_row, const int b_col, const int b_batch,
                __global float* C, const int c_offset, const int ldc, const int c_batch,
                const float alpha, __global const float* bias, const int bias_offset, const int bias_mode,
                __global const float* R, const int has_res, __global const float* gate_out, const int gate,
                const int act, const float p0, const float p1) {
    const int tx = get_local_id(0), ty = get_local_id(1);   // tx along N, ty along M
    const int n0 = get_group_id(0) * TS, m0 = get_group_id(1) * TS;
    const int b = get_global_id(2);
    A += a_offset + b * a_batch;
    B += b_offset + b * b_batch;
    C += c_offset + b * c_batch;
    R += c_offset + b * c_batch;
    gate_out += c_offset + b * c_batch;

    // Aligned for the sub-blocks' float4 reads.
    __local float As[(DB + 1) * TILE_FLOATS] __attribute__((aligned(16)));
    __local float Bs[(DB + 1) * TILE_FLOATS] __attribute__((aligned(16)));
    float acc[WPT][WPT];
    GEMM_UNROLL for (int i = 0; i < WPT; i++) GEMM_UNROLL for (int j = 0; j < WPT; j++) acc[i][j] = 0.0f;

    const int lid = ty * RTS + tx;
#define LOAD_SLICE(k0_, as_, bs_) gemm_tiled_load(M, N, K, m0, n0, (k0_), lid, A, a_row, a_col, B, b_row, b_col, (as_), (bs_))
#define FETCH_SLICE(k0_, ra, rb) do { \
        GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) { \
            const int l = lid + q * (RTS * RTS); \
            if (l < TS * TK / VW) { \
                tile_fetch_a_run(l, M, K, m0, (k0_), A, a_row, a_col, ra[q]); \
                tile_fetch_b_run(l, N, K, n0, (k0_), B, b_row, b_col, rb[q]); \
            } \
        } \
    } while (0)
#define PUT_SLICE(as_, bs_, ra, rb) do { \
        GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) { \
            const int l = lid + q * (RTS * RTS); \
            if (l < TS * TK / VW) { \
                tile_put_a_run(l, a_row, a_col, ra[q], (as_)); \
                tile_put_b_run(l, b_row, b_col, rb[q], (bs_)); \
            } \
        } \
    } while (0)
    TILED_K_LOOP(K, acc);
#undef LOAD_SLICE
#undef FETCH_SLICE
#undef PUT_SLICE
    GEMM_UNROLL
    for (int i = 0; i < WPT; i++) {
        int gm = m0 + SUB_INDEX(ty, i);
        if (gm >= M) continue;
        GEMM_UNROLL
        for (int j = 0; j < WPT; j++) {
            int gn = n0 + SUB_INDEX(tx, j);
            if (gn >= N) continue;
            C[gm * ldc + gn] = gemm_epilogue_value(acc[i][j], gm, gn, alpha, bias, bias_offset, bias_mode, R, has_res, gate_out, gate, ldc, act, p0, p1);
        }
    }
}

// The epilogue alone, in place: C[b][i][j] = act(C[b][i][j] + bias + R[b][i][j]), times the gate's
// derivative at gate_out[b][i][j], for a C another GEMM wrote (alpha already applied). One work-item per
// element; axis 2 is the batch.
__kernel void gemm_epilogue(const int M, const int N, __global float* C, const int c_offset, const int ldc, const int c_batch,
                            __global const float* bias, const int bias_offset, const int bias_mode,
                            __global const float* R, const int has_res, __global const float* gate_out, const int gate,
                            const int act, const float p0, const float p1) {
    const int j = get_global_id(0), i = get_global_id(1), b = get_global_id(2);
    if (j >= N || i >= M) return;
    const int at = c_offset + b * c_batch + i * ldc + j;
    float v = C[at];
    if (bias_mode == 1) v += bias[bias_offset + j];
    else if (bias_mode == 2) v += bias[bias_offset + i];
    if (has_res) v += R[at];
    v = unary_apply(act, v, p0, p1);
    if (gate) v = v * unary_derivative(gate, gate_out[at], p0, p1, 1);
    C[at] = v;
}

// CPU variant: no local memory, no barriers; each work-item computes CPU_ROWS rows x 16 columns
// of C with explicit float16 vectors (AVX-512 or two AVX2 registers per row), walking K once.
#ifndef CPU_ROWS
#define CPU_ROWS 8
#endif

__kernel void gemm_rows(const int M, const int N, const int K,
                        __global const float* A, const int a_offset, const int a_row, const int a_col, const int a_batch,
                        __global const float* B, const int b_offset, const int b_row, const int b_col, const int b_batch,
                        __global float* C, const int c_offset, const int ldc, const int c_batch,
                        const float alpha, __global const float* bias, const int bias_offset, const int bias_mode,
                        __global const float* R, const int has_res, __global const float* gate_out, const int gate,
                        const int act, const float p0, const float p1) {
    const int n0 = get_global_id(0) * 16, m0 = get_global_id(1) * CPU_ROWS;
    const int b = get_global_id(2);
    if (n0 >= N || m0 >= M) return;
    A += a_offset + b * a_batch;
    B += b_offset + b * b_batch;
    C += c_offset + b * c_batch;
    R += c_offset + b * c_batch;
    gate_out += c_offset + b * c_batch;
    const int rows = min(CPU_ROWS, M - m0);
    const int cols = min(16, N - n0);
    float16 acc[CPU_ROWS];
    for (int i = 0; i < CPU_ROWS; i++) acc[i] = (float16)(0.0f);
    __global const float* a_ptr[CPU_ROWS];
    for (int i = 0; i < CPU_ROWS; i++) a_ptr[i] = A + (m0 + min(i, rows - 1)) * a_row;
    if (cols == 16 && b_col == 1) {
        for (int k = 0; k < K; k++) {
            const float16 bv = vload16(0, B + k * b_row + n0);
            for (int i = 0; i < CPU_ROWS; i++) acc[i] = fma((float16)(a_ptr[i][k * a_col]), bv, acc[i]);
        }
    } else {
        for (int k = 0; k < K; k++) {
            float bs[16];
            for (int j = 0; j < 16; j++) bs[j] = j < cols ? B[k * b_row + (n0 + j) * b_col] : 0.0f;
            const float16 bv = vload16(0, bs);
            for (int i = 0; i < CPU_ROWS; i++) acc[i] = fma((float16)(a_ptr[i][k * a_col]), bv, acc[i]);
        }
    }
    for (int i = 0; i < rows; i++) {
        float out[16];
        vstore16(acc[i], 0, out);
        const int gm = m0 + i;
        for (int j = 0; j < cols; j++) {
            float v = alpha * out[j];
            if (bias_mode == 1) v += bias[bias_offset + n0 + j];
            else if (bias_mode == 2) v += bias[bias_offset + gm];
            if (has_res) v += R[gm * ldc + n0 + j];
            v = unary_apply(act, v, p0, p1);
            if (gate) v = v * unary_derivative(gate, gate_out[gm * ldc + n0 + j], p0, p1, 1);
            C[gm * ldc + n0 + j] = v;
        }
    }
}

// CPU-friendly variant for A and B both contiguous along K (C = A * B^T, as a fully connected
// layer): each work-item computes a 4 x 4 block of C as 16 dot products, float16 vectors along K.
__kernel void gemm_dot(const int M, const int N, const int K,
                       __global const float* A, const int a_offset, const int a_row, const int a_col, const int a_batch,
                       __global const float* B, const int b_offset, const int b_row, const int b_col, const int b_batch,
                       __global float* C, const int c_offset, const int ldc, const int c_batch,
                       const float alpha, __global const float* bias, const int bias_offset, const int bias_mode,
                       __global const float* R, const int has_res, __global const float* gate_out, const int gate,
                       const int act, const float p0, const float p1) {
    const int n0 = get_global_id(0) * 4, m0 = get_global_id(1) * 4;
    const int b = get_global_id(2);
    if (n0 >= N || m0 >= M) return;
    A += a_offset + b * a_batch;
    B += b_offset + b * b_batch;
    C += c_offset + b * c_batch;
    R += c_offset + b * c_batch;
    gate_out += c_offset + b * c_batch;
    __global const float* ar[4];
    __global const float* bc[4];
    for (int i = 0; i < 4; i++) ar[i] = A + min(m0 + i, M - 1) * a_row;
    for (int j = 0; j < 4; j++) bc[j] = B + min(n0 + j, N - 1) * b_col;
    float16 acc[4][4];
    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = (float16)(0.0f);
    const int k16 = K / 16 * 16;
    for (int k = 0; k < k16; k += 16) {
        float16 av[4], bv[4];
        for (int i = 0; i < 4; i++) av[i] = vload16(0, ar[i] + k);
        for (int j = 0; j < 4; j++) bv[j] = vload16(0, bc[j] + k);
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }
    for (int i = 0; i < 4; i++) {
        const int gm = m0 + i;
        if (gm >= M) break;
        for (int j = 0; j < 4; j++) {
            const int gn = n0 + j;
            if (gn >= N) break;
            float16 v16 = acc[i][j];
            float8 h8 = v16.lo + v16.hi;
            float4 h4 = h8.lo + h8.hi;
            float2 h2 = h4.lo + h4.hi;
            float s = h2.x + h2.y;
            for (int k = k16; k < K; k++) s = fma(ar[i][k], bc[j][k], s);
            float v = alpha * s;
            if (bias_mode == 1) v += bias[bias_offset + gn];
            else if (bias_mode == 2) v += bias[bias_offset + gm];
            if (has_res) v += R[gm * ldc + gn];
            v = unary_apply(act, v, p0, p1);
            if (gate) v = v * unary_derivative(gate, gate_out[gm * ldc + gn], p0, p1, 1);
            C[gm * ldc + gn] = v;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Implicit-GEMM convolutions: the GEMMs of conv.cl's im2col path, with each element of the column
// matrix read from the input where the GEMM needs it instead of written to a buffer first
// (geometry and layouts: CONV_GEOMETRY in common.cl). Each output element is the same chain of
// fmas as on the im2col path, in the same order (k over (c, ky, kx) forward; per tap (ky, kx) in
// order, a sum over output channels, the taps added as conv2d_col2im adds them backward), so the
// two paths give the same bits and the backend may pick either per layer by speed alone.

// Forward, CPU devices (gemm_rows' shape): one work-item per CPU_ROWS output channels x a run of
// up to 16 output pixels on one output row (axis 0: row * ceil(OW / 16) + run) of one image and
// group (axis 2: image * groups + group), float16 vectors along the pixels. A tap then reads one
// input row: nothing where that row is padding, 16 neighbouring inputs at unit stride inside it
// (every other one of 32 at stride 2).
__kernel void conv_rows_forward(__global const float* x, __global const float* w, __global const float* bias, const int has_bias,
                                __global const float* R, const int has_res, __global float* y,
                                const int8 g0, const int8 g1, const int act, const float p0, const float p1) {
    CONV_GEOMETRY;
    const int runs = (OW + 15) / 16;
    const int oy = get_global_id(0) / runs, ox0 = get_global_id(0) % runs * 16;
    const int m0 = get_global_id(1) * CPU_ROWS, z = get_global_id(2);
    const int n = z / G, g = z % G;
    if (oy >= OH || m0 >= coutG || n >= IMAGES) return;
    const int rows = min(CPU_ROWS, coutG - m0), cols = min(16, OW - ox0);
    const int iy0 = oy * SH - PT, ix0 = ox0 * SW - PL;
    float16 acc[CPU_ROWS];
    for (int i = 0; i < CPU_ROWS; i++) acc[i] = (float16)(0.0f);
    __global const float* a_ptr[CPU_ROWS];
    for (int i = 0; i < CPU_ROWS; i++) a_ptr[i] = w + (g * coutG + m0 + min(i, rows - 1)) * kG;
    __global const float* xg = x + (n * C + g * cinG) * H * W;
    int k = 0;
    for (int c = 0; c < cinG; c++) {
        __global const float* xc = xg + c * H * W;
        for (int ky = 0; ky < KH; ky++) {
            const int iy = iy0 + ky * DH;
            const bool row_inside = iy >= 0 && iy < H;
            __global const float* xr = xc + iy * W;
            for (int kx = 0; kx < KW; kx++, k++) {
                float16 bv = (float16)(0.0f);
                const int ix = ix0 + kx * DW;
                if (row_inside) {
                    if (SW == 1 && ix >= 0 && ix + 16 <= W) {
                        bv = vload16(0, xr + ix);
                    } else if (SW == 2 && ix >= 0 && ix + 32 <= W) {
                        // Every other input of 32 neighbours.
                        const float16 lo = vload16(0, xr + ix), hi = vload16(0, xr + ix + 16);
                        bv = (float16)(lo.even, hi.even);
                    } else {
                        float bs[16];
                        for (int j = 0; j < 16; j++) {
                            const int xx = ix + j * SW;
                            bs[j] = j < cols && xx >= 0 && xx < W ? xr[xx] : 0.0f;
                        }
                        bv = vload16(0, bs);
                    }
                }
                for (int i = 0; i < CPU_ROWS; i++) acc[i] = fma((float16)(a_ptr[i][k]), bv, acc[i]);
            }
        }
    }
    for (int i = 0; i < rows; i++) {
        float out[16];
        vstore16(acc[i], 0, out);
        const int co = g * coutG + m0 + i;
        for (int j = 0; j < cols; j++) {
            const int at = (n * CO + co) * plane + oy * OW + ox0 + j;
            float v = out[j];
            if (has_bias) v += bias[co];
            if (has_res) v += R[at];
            y[at] = unary_apply(act, v, p0, p1);
        }
    }
}

// Input gradient, CPU devices: one work-item per CPU_ROWS input channels x a run of up to 16 input
// pixels on one input row, of one image and group. For each tap, the sum over output channels of
// weight x output gradient at the output pixel the tap maps the input pixel to; taps with no such
// pixel add nothing (a tap whose output row does not exist is skipped whole).
__kernel void conv_rows_backward(__global const float* gy, __global const float* w, __global float* dx,
                                 const int8 g0, const int8 g1, BACKWARD_STORE_ARGS) {
    CONV_GEOMETRY;
    const int runs = (W + 15) / 16;
    const int iy = get_global_id(0) / runs, ix0 = get_global_id(0) % runs * 16;
    const int m0 = get_global_id(1) * CPU_ROWS, z = get_global_id(2);
    const int n = z / G, g = z % G;
    if (iy >= H || m0 >= cinG || n >= IMAGES) return;
    const int rows = min(CPU_ROWS, cinG - m0), cols = min(16, W - ix0);
    float16 acc[CPU_ROWS];
    for (int i = 0; i < CPU_ROWS; i++) acc[i] = (float16)(0.0f);
    __global const float* gyg = gy + (n * CO + g * coutG) * plane;
    for (int ky = 0; ky < KH; ky++) {
        const int oy = tap_output(iy, PT, ky, DH, SH, OH);
        if (oy < 0) continue;
        for (int kx = 0; kx < KW; kx++) {
            int off[16];
            int any = 0;
            for (int j = 0; j < 16; j++) {
                const int ox = tap_output(ix0 + j, PL, kx, DW, SW, OW);
                off[j] = j < cols && ox >= 0 ? oy * OW + ox : -1;
                any |= off[j] >= 0;
            }
            if (!any) continue;
            const int16 valid = (int16)(off[0], off[1], off[2], off[3], off[4], off[5], off[6], off[7],
                                        off[8], off[9], off[10], off[11], off[12], off[13], off[14], off[15]) >= (int16)(0);
            const bool run = off[0] >= 0 && off[15] == off[0] + 15;
            __global const float* a_ptr[CPU_ROWS];
            for (int i = 0; i < CPU_ROWS; i++) a_ptr[i] = w + g * coutG * kG + (m0 + min(i, rows - 1)) * taps + ky * KW + kx;
            float16 t[CPU_ROWS];
            for (int i = 0; i < CPU_ROWS; i++) t[i] = (float16)(0.0f);
            for (int co = 0; co < coutG; co++) {
                __global const float* gp = gyg + co * plane;
                float16 bv;
                if (run) {
                    bv = vload16(0, gp + off[0]);
                } else {
                    float bs[16];
                    for (int j = 0; j < 16; j++) bs[j] = off[j] >= 0 ? gp[off[j]] : 0.0f;
                    bv = vload16(0, bs);
                }
                for (int i = 0; i < CPU_ROWS; i++) t[i] = fma((float16)(a_ptr[i][co * kG]), bv, t[i]);
            }
            for (int i = 0; i < CPU_ROWS; i++) acc[i] += select((float16)(0.0f), t[i], valid);
        }
    }
    for (int i = 0; i < rows; i++) {
        float out[16];
        vstore16(acc[i], 0, out);
        const int at = (n * C + g * cinG + m0 + i) * (H * W) + iy * W + ix0;
        for (int j = 0; j < cols; j++) dx[at + j] = gradient_store_value(out[j], at + j, R, has_res, gate_out, gate, p0, p1);
    }
}

// Forward, GPUs (gemm_tiled's core): a work-group computes TS output channels x TS columns, the
// columns running over every image's output pixels (the batch folded into N); axis 2 is the group.
// The B tile is gathered from the input, VW columns a run.
inline void conv_fetch_b_run(const int l, const int NT, const int K, const int n0, const int k0,
                             __global const float* xg, const int8 g0, const int8 g1, float* v) {
    CONV_GEOMETRY;
    const int kb = l / (TS / VW), c = (l % (TS / VW)) * VW;
    const int gk = k0 + kb;
    const int ci = gk / taps, t = gk - ci * taps, ky = t / KW, kx = t - ky * KW;
    GEMM_UNROLL for (int j = 0; j < VW; j++) {
        const int gn = n0 + c + j;
        v[j] = 0.0f;
        if (gk < K && gn < NT) {
            const int img = gn / plane, p = gn - img * plane, oy = p / OW, ox = p - oy * OW;
            const int yy = oy * SH - PT + ky * DH, xx = ox * SW - PL + kx * DW;
            if (yy >= 0 && yy < H && xx >= 0 && xx < W) v[j] = xg[((img * C + ci) * H + yy) * W + xx];
        }
    }
}

inline void conv_load_b_run(const int l, const int NT, const int K, const int n0, const int k0,
                            __global const float* xg, const int8 g0, const int8 g1, __local float* Bs) {
    float v[VW];
    conv_fetch_b_run(l, NT, K, n0, k0, xg, g0, g1, v);
    tile_put_n_run(l, v, Bs);
}

// Where a group's work-items are a whole multiple of a B row's runs (every tile shape the tuner
// tries but ts32/wpt8/vw1), all runs of a work-item (l = lid + q * RTS^2) start at one column,
// (lid % CONV_ROW_RUNS) * VW, their k rows CONV_KB_STEP apart: the implicit kernels then decode
// their VW columns' pixels once per kernel, and a slice's gather divides only to find its first
// (channel, tap), advancing by carries (in the PTX of the tuner's shapes, 2 divisions per slice
// where decoding every element took 5 to 11 per run). The same values reach the same places in
// the local tiles: the same bits.
#define CONV_ROW_RUNS (TS / VW)
#define CONV_FIXED_COLUMNS ((RTS * RTS) % CONV_ROW_RUNS == 0)
#define CONV_KB_STEP ((RTS * RTS) / CONV_ROW_RUNS)

// This work-item's VW columns of a forward's B: for each, its image's offset in the input (-1
// past the last column) and the top-left (y0, x0) of its output pixel's window.
#define CONV_X_COLUMNS(n0, lid) \
    int xo_[VW], y0_[VW], x0_[VW]; \
    GEMM_UNROLL for (int j = 0; j < VW; j++) { \
        const int gn = (n0) + ((lid) % CONV_ROW_RUNS) * VW + j, img = gn / plane, p = gn - img * plane, oy = p / OW; \
        xo_[j] = gn < NT ? img * C * H * W : -1; \
        y0_[j] = oy * SH - PT; \
        x0_[j] = (p - oy * OW) * SW - PL; \
    }

// Every run of this work-item in slice [k0, k0 + TK) of a forward's B, as conv_fetch_b_run reads
// them: rb[q] is run l = lid + q * RTS^2 (values past the slice's runs are never stored).
inline void conv_fetch_x_runs(const int K, const int k0, const int lid, __global const float* xg,
                              const int* xo, const int* y0, const int* x0, const int8 g0, const int8 g1,
                              float rb[TILE_RUNS][VW]) {
    CONV_GEOMETRY;
    int kb = lid / CONV_ROW_RUNS, gk = k0 + kb;
    int ci = gk / taps, ky = (gk - ci * taps) / KW, kx = gk - ci * taps - ky * KW;
    GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) {
        GEMM_UNROLL for (int j = 0; j < VW; j++) {
            const int yy = y0[j] + ky * DH, xx = x0[j] + kx * DW;
            rb[q][j] = (kb < TK && gk < K && xo[j] >= 0 && yy >= 0 && yy < H && xx >= 0 && xx < W)
                ? xg[xo[j] + (ci * H + yy) * W + xx] : 0.0f;
        }
        kb += CONV_KB_STEP;
        gk += CONV_KB_STEP;
        kx += CONV_KB_STEP;
        while (kx >= KW) { kx -= KW; ky++; }
        while (ky >= KH) { ky -= KH; ci++; }
    }
}

__kernel __attribute__((reqd_work_group_size(RTS, RTS, 1)))
void conv_tiled_forward(__global const float* x, __global const float* w, __global const float* bias, const int has_bias,
                        __global const float* R, const int has_res, __global float* y,
                        const int8 g0, const int8 g1, const int act, const float p0, const float p1) {
    CONV_GEOMETRY;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int n0 = get_group_id(0) * TS, m0 = get_group_id(1) * TS, g = get_global_id(2);
    const int NT = IMAGES * plane;
    __global const float* A = w + g * coutG * kG;
    __global const float* xg = x + g * cinG * H * W;
    __local float As[(DB + 1) * TILE_FLOATS] __attribute__((aligned(16)));
    __local float Bs[(DB + 1) * TILE_FLOATS] __attribute__((aligned(16)));
    float acc[WPT][WPT];
    GEMM_UNROLL for (int i = 0; i < WPT; i++) GEMM_UNROLL for (int j = 0; j < WPT; j++) acc[i][j] = 0.0f;
    const int lid = ty * RTS + tx;
#if CONV_FIXED_COLUMNS
    CONV_X_COLUMNS(n0, lid);
#define LOAD_SLICE(k0_, as_, bs_) do { \
        float rb_[TILE_RUNS][VW]; \
        conv_fetch_x_runs(kG, (k0_), lid, xg, xo_, y0_, x0_, g0, g1, rb_); \
        GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) { \
            const int l = lid + q * (RTS * RTS); \
            if (l < TS * TK / VW) { \
                tile_load_a_run(l, coutG, kG, m0, (k0_), A, kG, 1, (as_)); \
                tile_put_n_run(l, rb_[q], (bs_)); \
            } \
        } \
    } while (0)
#define FETCH_SLICE(k0_, ra, rb) do { \
        conv_fetch_x_runs(kG, (k0_), lid, xg, xo_, y0_, x0_, g0, g1, rb); \
        GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) { \
            const int l = lid + q * (RTS * RTS); \
            if (l < TS * TK / VW) tile_fetch_a_run(l, coutG, kG, m0, (k0_), A, kG, 1, ra[q]); \
        } \
    } while (0)
#else
#define LOAD_SLICE(k0_, as_, bs_) do { \
        for (int l = lid; l < TS * TK / VW; l += RTS * RTS) { \
            tile_load_a_run(l, coutG, kG, m0, (k0_), A, kG, 1, (as_)); \
            conv_load_b_run(l, NT, kG, n0, (k0_), xg, g0, g1, (bs_)); \
        } \
    } while (0)
#define FETCH_SLICE(k0_, ra, rb) do { \
        GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) { \
            const int l = lid + q * (RTS * RTS); \
            if (l < TS * TK / VW) { \
                tile_fetch_a_run(l, coutG, kG, m0, (k0_), A, kG, 1, ra[q]); \
                conv_fetch_b_run(l, NT, kG, n0, (k0_), xg, g0, g1, rb[q]); \
            } \
        } \
    } while (0)
#endif
#define PUT_SLICE(as_, bs_, ra, rb) do { \
        GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) { \
            const int l = lid + q * (RTS * RTS); \
            if (l < TS * TK / VW) { \
                tile_put_a_run(l, kG, 1, ra[q], (as_)); \
                tile_put_n_run(l, rb[q], (bs_)); \
            } \
        } \
    } while (0)
    TILED_K_LOOP(kG, acc);
#undef LOAD_SLICE
#undef FETCH_SLICE
#undef PUT_SLICE
    GEMM_UNROLL
    for (int i = 0; i < WPT; i++) {
        const int gm = m0 + SUB_INDEX(ty, i);
        if (gm >= coutG) continue;
        const int co = g * coutG + gm;
        GEMM_UNROLL
        for (int j = 0; j < WPT; j++) {
            const int gn = n0 + SUB_INDEX(tx, j);
            if (gn >= NT) continue;
            const int img = gn / plane, at = (img * CO + co) * plane + gn - img * plane;
            float v = acc[i][j];
            if (has_bias) v += bias[co];
            if (has_res) v += R[at];
            y[at] = unary_apply(act, v, p0, p1);
        }
    }
}

// The B tile of one backward tap: output gradient at the output pixel tap (ky, kx) maps each
// input pixel (column) to, zero where it maps to none.
inline void conv_fetch_dy_run(const int l, const int NT, const int K, const int n0, const int k0, const int ky, const int kx,
                              __global const float* gyg, const int8 g0, const int8 g1, float* v) {
    CONV_GEOMETRY;
    const int kb = l / (TS / VW), c = (l % (TS / VW)) * VW;
    const int co = k0 + kb;
    GEMM_UNROLL for (int j = 0; j < VW; j++) {
        const int gn = n0 + c + j;
        v[j] = 0.0f;
        if (co < K && gn < NT) {
            const int img = gn / (H * W), p = gn - img * (H * W), iy = p / W, ix = p - iy * W;
            const int oy = tap_output(iy, PT, ky, DH, SH, OH), ox = tap_output(ix, PL, kx, DW, SW, OW);
            if (oy >= 0 && ox >= 0) v[j] = gyg[(img * CO + co) * plane + oy * OW + ox];
        }
    }
}

inline void conv_load_dy_run(const int l, const int NT, const int K, const int n0, const int k0, const int ky, const int kx,
                             __global const float* gyg, const int8 g0, const int8 g1, __local float* Bs) {
    float v[VW];
    conv_fetch_dy_run(l, NT, K, n0, k0, ky, kx, gyg, g0, g1, v);
    tile_put_n_run(l, v, Bs);
}

// With CONV_FIXED_COLUMNS, this work-item's VW columns of an input gradient's B: for each, its
// image's offset in the output gradient (-1 past the last column) and its input pixel (iy, ix).
#define CONV_DY_COLUMNS(n0, lid) \
    int dyo_[VW], iy_[VW], ix_[VW]; \
    GEMM_UNROLL for (int j = 0; j < VW; j++) { \
        const int gn = (n0) + ((lid) % CONV_ROW_RUNS) * VW + j, img = gn / HW, p = gn - img * HW; \
        dyo_[j] = gn < NT ? img * CO * plane : -1; \
        iy_[j] = p / W; \
        ix_[j] = p - iy_[j] * W; \
    }

// Where each column reads the output gradient under tap (ky, kx), less co * plane, or -1 where the
// tap maps its pixel to none: once per tap.
#define CONV_DY_TAP(ky, kx) \
    int at_[VW]; \
    GEMM_UNROLL for (int j = 0; j < VW; j++) { \
        const int oy = tap_output(iy_[j], PT, (ky), DH, SH, OH), ox = tap_output(ix_[j], PL, (kx), DW, SW, OW); \
        at_[j] = dyo_[j] >= 0 && oy >= 0 && ox >= 0 ? dyo_[j] + oy * OW + ox : -1; \
    }

// Every run of this work-item in slice [k0, k0 + TK) of one tap's B, as conv_fetch_dy_run reads
// them (rb[q]: run l = lid + q * RTS^2).
inline void conv_fetch_dy_runs(const int K, const int k0, const int lid, __global const float* gyg, const int* at,
                               const int plane, float rb[TILE_RUNS][VW]) {
    GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) {
        const int kb = lid / CONV_ROW_RUNS + q * CONV_KB_STEP, co = k0 + kb;
        GEMM_UNROLL for (int j = 0; j < VW; j++) rb[q][j] = (kb < TK && co < K && at[j] >= 0) ? gyg[at[j] + co * plane] : 0.0f;
    }
}

// Input gradient, GPUs: TS input channels x TS columns over every image's input pixels; one
// tiled K loop over the output channels per tap, its sum added where the tap reaches a pixel.
__kernel __attribute__((reqd_work_group_size(RTS, RTS, 1)))
void conv_tiled_backward(__global const float* gy, __global const float* w, __global float* dx,
                         const int8 g0, const int8 g1, BACKWARD_STORE_ARGS) {
    CONV_GEOMETRY;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int n0 = get_group_id(0) * TS, m0 = get_group_id(1) * TS, g = get_global_id(2);
    const int HW = H * W, NT = IMAGES * HW;
    __global const float* gyg = gy + g * coutG * plane;
    __local float As[(DB + 1) * TILE_FLOATS] __attribute__((aligned(16)));
    __local float Bs[(DB + 1) * TILE_FLOATS] __attribute__((aligned(16)));
    float acc[WPT][WPT];
    GEMM_UNROLL for (int i = 0; i < WPT; i++) GEMM_UNROLL for (int j = 0; j < WPT; j++) acc[i][j] = 0.0f;
    const int lid = ty * RTS + tx;
#if CONV_FIXED_COLUMNS
    CONV_DY_COLUMNS(n0, lid);
#endif
    // The input pixel (row, column) of each column this work-item accumulates, decoded once: the
    // taps' masks below then divide by nothing at unit stride (decoded per tap, each took WPT x 3
    // divisions and tap_output's 4 more per column).
    int acc_y[WPT], acc_x[WPT];
    GEMM_UNROLL
    for (int j = 0; j < WPT; j++) {
        const int p = min(n0 + SUB_INDEX(tx, j), NT - 1) % HW;
        acc_y[j] = p / W;
        acc_x[j] = p - acc_y[j] * W;
    }
    for (int ky = 0; ky < KH; ky++) {
        for (int kx = 0; kx < KW; kx++) {
            // A[c][co] = w[g * coutG + co][c][ky][kx].
            __global const float* A = w + g * coutG * kG + ky * KW + kx;
            float tacc[WPT][WPT];
            GEMM_UNROLL for (int i = 0; i < WPT; i++) GEMM_UNROLL for (int j = 0; j < WPT; j++) tacc[i][j] = 0.0f;
#if CONV_FIXED_COLUMNS
            CONV_DY_TAP(ky, kx);
#define LOAD_SLICE(k0_, as_, bs_) do { \
        float rb_[TILE_RUNS][VW]; \
        conv_fetch_dy_runs(coutG, (k0_), lid, gyg, at_, plane, rb_); \
        GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) { \
            const int l = lid + q * (RTS * RTS); \
            if (l < TS * TK / VW) { \
                tile_load_a_run(l, cinG, coutG, m0, (k0_), A, taps, kG, (as_)); \
                tile_put_n_run(l, rb_[q], (bs_)); \
            } \
        } \
    } while (0)
#define FETCH_SLICE(k0_, ra, rb) do { \
        conv_fetch_dy_runs(coutG, (k0_), lid, gyg, at_, plane, rb); \
        GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) { \
            const int l = lid + q * (RTS * RTS); \
            if (l < TS * TK / VW) tile_fetch_a_run(l, cinG, coutG, m0, (k0_), A, taps, kG, ra[q]); \
        } \
    } while (0)
#else
#define LOAD_SLICE(k0_, as_, bs_) do { \
        for (int l = lid; l < TS * TK / VW; l += RTS * RTS) { \
            tile_load_a_run(l, cinG, coutG, m0, (k0_), A, taps, kG, (as_)); \
            conv_load_dy_run(l, NT, coutG, n0, (k0_), ky, kx, gyg, g0, g1, (bs_)); \
        } \
    } while (0)
#define FETCH_SLICE(k0_, ra, rb) do { \
        GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) { \
            const int l = lid + q * (RTS * RTS); \
            if (l < TS * TK / VW) { \
                tile_fetch_a_run(l, cinG, coutG, m0, (k0_), A, taps, kG, ra[q]); \
                conv_fetch_dy_run(l, NT, coutG, n0, (k0_), ky, kx, gyg, g0, g1, rb[q]); \
            } \
        } \
    } while (0)
#endif
#define PUT_SLICE(as_, bs_, ra, rb) do { \
        GEMM_UNROLL for (int q = 0; q < TILE_RUNS; q++) { \
            const int l = lid + q * (RTS * RTS); \
            if (l < TS * TK / VW) { \
                tile_put_a_run(l, taps, kG, ra[q], (as_)); \
                tile_put_n_run(l, rb[q], (bs_)); \
            } \
        } \
    } while (0)
            TILED_K_LOOP(coutG, tacc);
#undef LOAD_SLICE
#undef FETCH_SLICE
#undef PUT_SLICE
            GEMM_UNROLL
            for (int j = 0; j < WPT; j++) {
                if (!tap_reaches(acc_y[j], PT, ky, DH, SH, OH) || !tap_reaches(acc_x[j], PL, kx, DW, SW, OW)) continue;
                GEMM_UNROLL for (int i = 0; i < WPT; i++) acc[i][j] += tacc[i][j];
            }
        }
    }
    GEMM_UNROLL
    for (int i = 0; i < WPT; i++) {
        const int gm = m0 + SUB_INDEX(ty, i);
        if (gm >= cinG) continue;
        GEMM_UNROLL
        for (int j = 0; j < WPT; j++) {
            const int gn = n0 + SUB_INDEX(tx, j);
            if (gn >= NT) continue;
            const int img = gn / HW, at = (img * C + g * cinG + gm) * HW + gn - img * HW;
            dx[at] = gradient_store_value(acc[i][j], at, R, has_res, gate_out, gate, p0, p1);
        }
    }
}
