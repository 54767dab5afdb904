# BLAS for row-major float32/float64 arrays, through scipy.linalg.cython_blas (no BLAS to link).
#
# Row-major C = A @ B is column-major C^T = B^T @ A^T, so each *_rowmajor wrapper swaps operands
# once here and nowhere else; gemm_colmajor is BLAS's own convention, for feature-major arrays.
# All functions are nogil and never fail.
from cython cimport floating
from scipy.linalg cimport cython_blas


cdef inline void gemm_rowmajor(
    int n, int m, int p,
    const floating* a, int lda,        # IN  (n, p) row-major, row stride lda
    const floating* b, int ldb,        # IN  (p, m) row-major, row stride ldb
    floating* c, int ldc,              # OUT (n, m) row-major, row stride ldc
) noexcept nogil:
    """c = a @ b."""
    cdef char no = b'N'
    cdef floating one = 1.0, zero = 0.0
    if floating is double:
        cython_blas.dgemm(&no, &no, &m, &n, &p, &one, <double*> b, &ldb, <double*> a, &lda,
                          &zero, c, &ldc)
    else:
        cython_blas.sgemm(&no, &no, &m, &n, &p, &one, <float*> b, &ldb, <float*> a, &lda,
                          &zero, c, &ldc)


cdef inline void syrk_rowmajor(
    int n, int d,
    const floating* z,                 # IN  (n, d) row-major, contiguous
    floating* c,                       # OUT (d, d) row-major: lower triangle of z.T @ z
    floating beta,                     # IN  c = z.T @ z + beta * c (beta = 0 overwrites)
) noexcept nogil:
    """Lower triangle (row-major) of the scatter matrix z.T @ z; the upper triangle is untouched."""
    cdef char upper = b'U', no = b'N'
    cdef floating one = 1.0
    if floating is double:
        cython_blas.dsyrk(&upper, &no, &d, &n, &one, <double*> z, &d, &beta, c, &d)
    else:
        cython_blas.ssyrk(&upper, &no, &d, &n, &one, <float*> z, &d, &beta, c, &d)


cdef inline void gemm_tn_rowmajor(
    int n, int k, int m,
    const floating* a,                 # IN  (n, k) row-major, contiguous
    const floating* b, int ldb,        # IN  (n, m) row-major, row stride ldb
    floating* c,                       # OUT (k, m) row-major, contiguous
    floating beta,                     # IN  c = a.T @ b + beta * c (beta = 0 overwrites)
) noexcept nogil:
    """c = a.T @ b + beta * c: weighted sums of feature rows in one call."""
    cdef char no = b'N', tr = b'T'
    cdef floating one = 1.0
    if floating is double:
        cython_blas.dgemm(&no, &tr, &m, &k, &n, &one, <double*> b, &ldb, <double*> a, &k,
                          &beta, c, &m)
    else:
        cython_blas.sgemm(&no, &tr, &m, &k, &n, &one, <float*> b, &ldb, <float*> a, &k,
                          &beta, c, &m)


cdef inline void gemm_colmajor(
    char transa, char transb, int m, int n, int p,
    const floating* a, int lda,        # IN  op(a) (m, p), column-major, leading dimension lda
    const floating* b, int ldb,        # IN  op(b) (p, n), column-major, leading dimension ldb
    floating* c, int ldc,              # OUT (m, n) column-major, leading dimension ldc
) noexcept nogil:
    """c = op(a) @ op(b), op = transpose for b'T', identity for b'N'."""
    cdef floating one = 1.0, zero = 0.0
    if floating is double:
        cython_blas.dgemm(&transa, &transb, &m, &n, &p, &one, <double*> a, &lda, <double*> b,
                          &ldb, &zero, c, &ldc)
    else:
        cython_blas.sgemm(&transa, &transb, &m, &n, &p, &one, <float*> a, &lda, <float*> b,
                          &ldb, &zero, c, &ldc)
