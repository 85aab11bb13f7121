import Foundation

/// numpy's legacy `RandomState`: the MT19937 generator with numpy's integer seeding, its
/// 53-bit `random_sample` and its polar Box-Muller `gauss` (which caches the second value).
/// Drawn in the tutorial's order, it reproduces the tutorial's weights and inputs bit for bit.
public struct NumpyRandomState: Codable, Sendable {
    private var key = [UInt32](repeating: 0, count: 624)
    private var pos = 624
    private var hasGauss = false
    private var gauss = 0.0

    /// `np.random.seed(seed)` for an integer seed in 0 ... 2^32 - 1.
    public init(seed: UInt32) {
        var s = seed
        for i in 0..<624 {
            key[i] = s
            s = 1_812_433_253 &* (s ^ (s >> 30)) &+ UInt32(i + 1)
        }
    }

    private mutating func refill() {
        // In place and in index order, as MT19937 defines it: entry i reads entries i + 1 and
        // i + 397 (mod 624), the wrapped ones already renewed. Three index ranges instead of a
        // modulo per entry; the twist's conditional XOR as a mask.
        key.withUnsafeMutableBufferPointer { k in
            @inline(__always) func twist(_ i: Int, _ next: Int, _ far: Int) {
                let y = (k[i] & 0x8000_0000) | (k[next] & 0x7fff_ffff)
                k[i] = k[far] ^ (y >> 1) ^ ((0 &- (y & 1)) & 0x9908_b0df)
            }
            for i in 0..<227 { twist(i, i + 1, i + 397) }
            for i in 227..<623 { twist(i, i + 1, i - 227) }
            twist(623, 0, 396)
        }
        pos = 0
    }

    /// Next 32-bit output of MT19937 (tempered).
    public mutating func nextUInt32() -> UInt32 {
        if pos == 624 { refill() }
        var y = key[pos]
        pos += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    /// `np.random.random_sample()`: uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double {
        let a = Double(nextUInt32() >> 5), b = Double(nextUInt32() >> 6)
        return (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `np.random.standard_normal()` in the legacy polar form.
    public mutating func normal() -> Double {
        if hasGauss {
            hasGauss = false
            return gauss
        }
        var x1 = 0.0, x2 = 0.0, r2 = 0.0
        repeat {
            x1 = 2 * uniform() - 1
            x2 = 2 * uniform() - 1
            r2 = x1 * x1 + x2 * x2
        } while r2 >= 1 || r2 == 0
        let f = (-2 * Foundation.log(r2) / r2).squareRoot()
        gauss = f * x1
        hasGauss = true
        return f * x2
    }

    /// `np.random.randn(rows, cols)` in C order.
    public mutating func randn(_ rows: Int, _ cols: Int) -> [[Double]] {
        (0..<rows).map { _ in (0..<cols).map { _ in normal() } }
    }

    /// Weights `[post, pre]` drawn as numpy's `randn(pre, post).T / divisor` (or `randn(post, pre)
    /// / divisor` when `transposed` is false), rounded to float32 after the division as NEST's
    /// sine-wave scripts do (`float32`; the N-MNIST example keeps float64); optionally with a zero
    /// diagonal (no autapses).
    public mutating func normalWeights(
        post: Int, pre: Int, divisor: Double, transposed: Bool = true, zeroDiagonal: Bool = false, float32: Bool = true
    ) -> Matrix<Double> {
        let draws = transposed ? randn(pre, post) : randn(post, pre)
        let w = Matrix<Double>(rows: post, cols: pre)
        for j in 0..<post {
            for i in 0..<pre where !(zeroDiagonal && i == j) {
                let x = (transposed ? draws[i][j] : draws[j][i]) / divisor
                w[j, i] = float32 ? Double(Float(x)) : x
            }
        }
        return w
    }

    /// numpy's `random_interval(max)`: uniform in 0 ... max by masked rejection (32-bit draws below 2^32).
    public mutating func interval(_ max: UInt32) -> UInt32 {
        guard max > 0 else { return 0 }
        var mask = max
        for shift in [1, 2, 4, 8, 16] as [UInt32] { mask |= mask >> shift }
        while true {
            let v = nextUInt32() & mask
            if v <= max { return v }
        }
    }

    /// `np.random.permutation(n)` (legacy `shuffle` of `arange(n)`: Fisher-Yates from the end).
    public mutating func permutation(_ n: Int) -> [Int] {
        var a = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) { a.swapAt(i, Int(interval(UInt32(i)))) }
        return a
    }

    /// `np.random.rand(rows, cols)` in C order.
    public mutating func rand(_ rows: Int, _ cols: Int) -> [[Double]] {
        (0..<rows).map { _ in (0..<cols).map { _ in uniform() } }
    }
}
