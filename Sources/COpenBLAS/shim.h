/* Debian's libopenblas-dev (CBLAS, openblas_* extras) and liblapacke-dev.
   OpenBLAS is built NO_LAPACKE on Debian, so LAPACKE is linked separately. */
#ifndef COPENBLAS_SHIM_H
#define COPENBLAS_SHIM_H
#include <cblas.h>
#include <lapacke.h>
#endif
