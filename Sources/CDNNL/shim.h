// oneDNN (Debian's libdnnl-dev, 2.x C API). Its 2.x descriptor functions were removed in 3.0, so
// every call lives in one file (XAICPU/OneDNN.swift).
#include <oneapi/dnnl/dnnl.h>

// Execution argument indices as constants (the header defines them through other macros).
static const int xai_dnnl_arg_src = DNNL_ARG_SRC;
static const int xai_dnnl_arg_dst = DNNL_ARG_DST;
static const int xai_dnnl_arg_weights = DNNL_ARG_WEIGHTS;
static const int xai_dnnl_arg_bias = DNNL_ARG_BIAS;
static const int xai_dnnl_arg_diff_src = DNNL_ARG_DIFF_SRC;
static const int xai_dnnl_arg_diff_dst = DNNL_ARG_DIFF_DST;
static const int xai_dnnl_arg_from = DNNL_ARG_FROM;
static const int xai_dnnl_arg_to = DNNL_ARG_TO;
static const int xai_dnnl_arg_scratchpad = DNNL_ARG_SCRATCHPAD;
// A fused depthwise post-op's weights and bias.
static const int xai_dnnl_arg_depthwise_weights = DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS;
static const int xai_dnnl_arg_depthwise_bias = DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS;
// The second input of the first post-op (a binary post-op's tensor).
static const int xai_dnnl_arg_first_post_op_src1 = DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1;
