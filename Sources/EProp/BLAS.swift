import COpenBLAS

/// The scalar types the engine runs in: `Float` (default, as TensorFlow and the design) and
/// `Double` (the path compared with NEST, which computes in double).
///
/// This is the only file that talks to BLAS. All matrices are row-major `[rows, cols]`.
public protocol Scalar: BinaryFloatingPoint & Sendable where Self.RawSignificand: FixedWidthInteger {
    /// `C = alpha * op(A) * op(B) + beta * C` with `op(A)` `[m, k]`, `op(B)` `[k, n]`, `C` `[m, n]`.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    /// `y = alpha * op(A) * x + beta * y` with `A` `[m, n]` (stored), `x` strided by `incX`.
    static func gemv(
        trans: Bool, m: Int, n: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int,
        x: UnsafePointer<Self>, incX: Int, beta: Self, y: UnsafeMutablePointer<Self>, incY: Int)
    /// Name of the scalar for logs and run records ("float" or "double").
    static var precisionName: String { get }
}

private func order(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float: Scalar {
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, order(transA), order(transB), Int32(m), Int32(n), Int32(k),
            alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    public static func gemv(
        trans: Bool, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, incX: Int, beta: Float, y: UnsafeMutablePointer<Float>, incY: Int
    ) {
        cblas_sgemv(
            CblasRowMajor, order(trans), Int32(m), Int32(n), alpha, a, Int32(lda),
            x, Int32(incX), beta, y, Int32(incY))
    }
    public static var precisionName: String { "float" }
}

extension Double: Scalar {
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(
            CblasRowMajor, order(transA), order(transB), Int32(m), Int32(n), Int32(k),
            alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    public static func gemv(
        trans: Bool, m: Int, n: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
        x: UnsafePointer<Double>, incX: Int, beta: Double, y: UnsafeMutablePointer<Double>, incY: Int
    ) {
        cblas_dgemv(
            CblasRowMajor, order(trans), Int32(m), Int32(n), alpha, a, Int32(lda),
            x, Int32(incX), beta, y, Int32(incY))
    }
    public static var precisionName: String { "double" }
}

/// OpenBLAS threading and identification. The engine sets one thread unless asked otherwise:
/// on these 2-core machines the default (2) slows the small per-step calls down (see README).
public enum BLASRuntime {
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var threads: Int { Int(openblas_get_num_threads()) }
    /// The kernel family OpenBLAS selected at load time, e.g. "Cooperlake".
    public static var coreName: String { String(cString: openblas_get_corename()) }
    /// OpenBLAS build configuration string, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ...".
    public static var config: String { String(cString: openblas_get_config()) }
}

extension Scalar {
    /// `out[rows, nPost] = alpha * x[rows, nPre] * w[nPost, nPre]^T + beta * out`:
    /// a GEMV for one row, a GEMM for a batch.
    @inline(__always)
    public static func rowsTimesTransposed(
        rows: Int, nPost: Int, nPre: Int, alpha: Self, x: UnsafePointer<Self>,
        w: UnsafePointer<Self>, beta: Self, out: UnsafeMutablePointer<Self>
    ) {
        if rows == 1 {
            gemv(trans: false, m: nPost, n: nPre, alpha: alpha, a: w, lda: nPre, x: x, incX: 1, beta: beta, y: out, incY: 1)
        } else {
            gemm(transA: false, transB: true, m: rows, n: nPost, k: nPre, alpha: alpha, a: x, lda: nPre, b: w, ldb: nPre, beta: beta, c: out, ldc: nPost)
        }
    }
}
