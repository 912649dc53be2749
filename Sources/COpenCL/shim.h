// Kernels stay within OpenCL C 1.2 so they run on PoCL, NVIDIA, AMD and Intel alike.
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <CL/cl_ext.h>
