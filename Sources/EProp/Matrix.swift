/// A dense row-major matrix `[rows, cols]` that owns its storage, or views a part of a larger
/// buffer that another object owns.
///
/// Storage is allocated once, zero-filled, and never reallocated, so the time loop can hold
/// raw pointers (`p`) without ARC or uniqueness checks. A vector is a matrix with one row.
public final class Matrix<S: Scalar>: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    /// Base address of the `rows * cols` elements; element `[r, c]` is `p[r * cols + c]`.
    public let p: UnsafeMutablePointer<S>
    private let allocation: UnsafeMutableRawPointer?
    /// What owns the viewed storage (kept alive as long as the view).
    private let owner: AnyObject?

    public var count: Int { rows * cols }

    public init(rows: Int, cols: Int) {
        precondition(rows >= 0 && cols >= 0, "matrix shape must be non-negative")
        self.rows = rows
        self.cols = cols
        // glibc maps every large block at the same offset within a page, so the per-synapse
        // matrices of the trace kernel would alias modulo 4 KiB (2x slower, see the OpenBLAS
        // notes). Successive matrices start 0, 64, ..., 960 bytes into their allocation instead.
        let n = max(rows * cols, 1)
        let stagger = matrixStagger.next()
        allocation = .allocate(byteCount: n * MemoryLayout<S>.stride + 1024, alignment: 64)
        p = (allocation! + stagger).bindMemory(to: S.self, capacity: n)
        p.initialize(repeating: 0, count: n)
        owner = nil
    }

    /// A view of `rows * cols` initialized elements at `p`, which `owner` keeps allocated.
    public init(rows: Int, cols: Int, viewing p: UnsafeMutablePointer<S>, owner: AnyObject) {
        precondition(rows >= 0 && cols >= 0, "matrix shape must be non-negative")
        (self.rows, self.cols, self.p, self.owner, allocation) = (rows, cols, p, owner, nil)
    }

    public convenience init(rows: Int, cols: Int, _ values: [S]) {
        precondition(values.count == rows * cols, "expected \(rows * cols) values, got \(values.count)")
        self.init(rows: rows, cols: cols)
        for i in 0..<values.count { p[i] = values[i] }
    }

    deinit { allocation?.deallocate() }

    public subscript(r: Int, c: Int) -> S {
        get { p[r * cols + c] }
        set { p[r * cols + c] = newValue }
    }

    /// Pointer to the first element of row `r` (wrapping multiplication: no overflow check in
    /// the hot loops that call it; the product is below `count`, which was allocated).
    @inline(__always) public func row(_ r: Int) -> UnsafeMutablePointer<S> { p + r &* cols }

    public func fill(_ value: S) { p.update(repeating: value, count: count) }

    /// `dst[j, i] = self[i, j]`, or `+=` when `adding`, for the whole matrix (`dst` is
    /// `[cols, rows]`). In tiles of 32 x 32, so that neither side is read or written with a
    /// stride of a whole row for long (a plain double loop over 200 x 200 took 3 times as many
    /// instructions as the tiles).
    func transpose(into dst: Matrix<S>, adding: Bool = false) {
        precondition(dst.rows == cols && dst.cols == rows)
        let (src, out, R, C, tile) = (p, dst.p, rows, cols, 32)
        for i0 in stride(from: 0, to: R, by: tile) {
            for j0 in stride(from: 0, to: C, by: tile) {
                for j in j0..<min(j0 + tile, C) {
                    let o = out + j &* R
                    if adding {
                        for i in i0..<min(i0 + tile, R) { o[i] += src[i &* C &+ j] }
                    } else {
                        for i in i0..<min(i0 + tile, R) { o[i] = src[i &* C &+ j] }
                    }
                }
            }
        }
    }

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

extension Duration {
    /// The duration in seconds.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

/// Hands out start offsets 0, 64, ..., 960 bytes in turn (a data race between threads only
/// repeats an offset, which is harmless).
private final class Stagger: @unchecked Sendable {
    private var counter = 0
    func next() -> Int {
        counter = (counter + 1) % 16
        return counter * 64
    }
}
private let matrixStagger = Stagger()
