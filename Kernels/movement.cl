// Data movement (XAICore MovementPlan): permute, slice, pad and concat are each a fill of the
// output (pad) plus strided copies of boxes of the inputs. One work-item per copied element:
// element i of the box (row-major over dims) is read at src_offset + sum(idx * src_strides) and
// written at dst_offset + sum(idx * dst_strides). Up to 8 axes (the host merges contiguous ones).

inline int box_offset(int linear, const int rank, const int8 dims, const int8 strides) {
    int d[8] = {dims.s0, dims.s1, dims.s2, dims.s3, dims.s4, dims.s5, dims.s6, dims.s7};
    int s[8] = {strides.s0, strides.s1, strides.s2, strides.s3, strides.s4, strides.s5, strides.s6, strides.s7};
    int off = 0;
    for (int a = rank - 1; a >= 0; a--) {
        off += (linear % d[a]) * s[a];
        linear /= d[a];
    }
    return off;
}

__kernel void copy_strided(__global const float* src, const int src_offset, __global float* dst, const int dst_offset,
                           const int count, const int rank, const int8 dims, const int8 src_strides, const int8 dst_strides) {
    const int i = get_global_id(0);
    if (i >= count) return;
    dst[dst_offset + box_offset(i, rank, dims, dst_strides)] = src[src_offset + box_offset(i, rank, dims, src_strides)];
}
