/// A dense row-major matrix `[rows, cols]` that owns its storage.
///
/// Storage is allocated once, zero-filled, and never reallocated, so the time loop can hold
/// raw pointers (`p`) without ARC or uniqueness checks. A vector is a matrix with one row.
public final class Matrix<S: Scalar>: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    /// Base address of the `rows * cols` elements; element `[r, c]` is `p[r * cols + c]`.
    public let p: UnsafeMutablePointer<S>

    public var count: Int { rows * cols }

    public init(rows: Int, cols: Int) {
        precondition(rows >= 0 && cols >= 0, "matrix shape must be non-negative")
        self.rows = rows
        self.cols = cols
        // Pad by 1 KiB so that large buffers do not share an address modulo 4 KiB
        // (glibc mmaps big blocks page aligned; aliasing slows the trace kernels, see README).
        p = .allocate(capacity: max(rows * cols, 1) + 256)
        p.initialize(repeating: 0, count: max(rows * cols, 1) + 256)
    }

    public convenience init(rows: Int, cols: Int, _ values: [S]) {
        precondition(values.count == rows * cols, "expected \(rows * cols) values, got \(values.count)")
        self.init(rows: rows, cols: cols)
        for i in 0..<values.count { p[i] = values[i] }
    }

    deinit { p.deallocate() }

    public subscript(r: Int, c: Int) -> S {
        get { p[r * cols + c] }
        set { p[r * cols + c] = newValue }
    }

    /// Pointer to the first element of row `r`.
    @inline(__always) public func row(_ r: Int) -> UnsafeMutablePointer<S> { p + r * cols }

    public func fill(_ value: S) { p.update(repeating: value, count: count) }

    public func copy(from other: Matrix<S>) {
        precondition(other.rows == rows && other.cols == cols, "shape mismatch in copy")
        p.update(from: other.p, count: count)
    }

    /// The elements as a flat array (row-major), converted to `T`.
    public func flat<T: BinaryFloatingPoint>(as: T.Type = Double.self) -> [T] {
        (0..<count).map { T(p[$0]) }
    }

    /// A copy converted to another scalar type.
    public func converted<T: Scalar>(to: T.Type) -> Matrix<T> {
        let m = Matrix<T>(rows: rows, cols: cols)
        for i in 0..<count { m.p[i] = T(p[i]) }
        return m
    }
}
