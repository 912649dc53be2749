// OpenBLAS's CBLAS interface. Debian keeps the header under an architecture folder;
// pkg-config `openblas` supplies the include path.
#include <cblas.h>

#include <stddef.h>

// LAPACK's symmetric eigensolver (relatively robust representations), which Debian's OpenBLAS
// exports with the rest of LAPACK; Fortran calling convention, the character arguments' lengths
// passed last. EigenCAM takes the top eigenvector of a Gram matrix with it.
void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a, const int *lda,
             const double *vl, const double *vu, const int *il, const int *iu, const double *abstol, int *m,
             double *w, double *z, const int *ldz, int *isuppz, double *work, const int *lwork, int *iwork,
             const int *liwork, int *info, size_t jobz_length, size_t range_length, size_t uplo_length);
