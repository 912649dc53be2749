// CLBlast's C API (Debian's libclblast-dev 1.5): tuned OpenCL BLAS, used as one of the OpenCL
// backend's GEMM engines.
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <clblast_c.h>
