// OpenBLAS's CBLAS interface. Debian keeps the header under an architecture folder;
// pkg-config `openblas` supplies the include path.
#include <cblas.h>
