// CHOLMOD (SuiteSparse, Debian's libsuitesparse-dev): sparse Cholesky factorisation, for ROAD's
// linear imputation (XAIMetrics/ROAD.swift). Debian ships no pkg-config file for it.
#include <suitesparse/cholmod.h>
