import EProp
import XCTest

/// One time step of a three-neuron network against values computed by hand, and each BLAS
/// wrapper against a naive loop.
final class StepTests: XCTestCase {
    /// Float64 agreement with the hand computation: the same operations in another order
    /// (Python, by hand), so only a few ulps apart; 1e-13 leaves room for that and nothing else.
    static let handTolerance = 1e-13

    /// Expected values per step, computed independently in Python from the equations of
    /// docs/mathematics.md §1.1 and §1.3 (one loop, no matrices): tau_m = 10, 20, 30 ms,
    /// adapt_beta 0.5, adapt_tau 100 ms, V_th 1 mV, piecewise-linear surrogate with height
    /// gamma / V_th = 0.3 and width 1, readout tau_m 5 ms, inputs 0 at steps 1, 2 and input 1 at
    /// step 2 (the input at step 0 is dropped, §6.1), W_in = [[30, 0], [0.5, 10], [1, 1]],
    /// W_rec = [[0, 2, 0], [5, 0, 0], [0, 0, 0]], W_out = [[1, 2, 3]], B = [1, -1, 0.5],
    /// target 0.1, 0.2, 0.3. Neuron 0 spikes at steps 1 and 2 and adapts; neurons 1 and 2 stay
    /// below threshold with a non-zero surrogate gradient.
    static let expected: [(v: [Double], a: [Double], psi: [Double], z: [Double], u: Double, err: Double, l: [Double])] = [
        ([0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], 0, -0.1, [-0.1, 0.1, -0.05]),
        ([2.8548774589212145, 0.024385287749642992, 0.0327838995179941], [0, 0, 0], [0, 0.007315586324892897, 0.00983516985539823],
         [1, 0, 0], 0.18126924692201818, -0.018730753077981832, [-0.018730753077981832, 0.018730753077981832, -0.009365376538990916]),
        ([4.438077407660547, 0.77913992347131, 0.09727691448637635], [1, 0, 0], [0, 0.233741977041393, 0.029183074345912895],
         [1, 0, 0], 0.3296799539643608, 0.029679953964360795, [0.029679953964360795, -0.029679953964360795, 0.014839976982180397]),
    ]

    func testThreeNeuronStepsEqualHandComputation() {
        var c = TrainingConfig()
        (c.nIn, c.nRec, c.nOut, c.sequence) = (2, 3, 1, 3)
        (c.recurrent.adaptBeta, c.recurrent.adaptTau, c.recurrent.vTh, c.recurrent.gamma) = (0.5, 100, 1, 0.3)
        c.readout.tauM = 5
        let initial = NetworkInit(
            wInRec: Matrix(rows: 3, cols: 2, [30, 0, 0.5, 10, 1, 1]),
            wRecRec: Matrix(rows: 3, cols: 3, [0, 2, 0, 5, 0, 0, 0, 0, 0]),
            wRecOut: Matrix(rows: 1, cols: 3, [1, 2, 3]),
            wOutRecFeedback: Matrix(rows: 3, cols: 1, [1, -1, 0.5]),
            tauM: Matrix(rows: 1, cols: 3, [10, 20, 30]),
            inputSpikes: Matrix(rows: 2, cols: 3, [1, 1, 1, 0, 0, 1]),
            target: Matrix(rows: 1, cols: 3, [0.1, 0.2, 0.3]))
        for kernel in Kernel.allCases {
            let net = Network<Double>(initial, config: c)
            let seq = SequenceBuffers<Double>(batch: 1, steps: 3, nIn: 2, nRec: 3, nOut: 1, nRecord: 3)
            seq.setSequence(0, input: initial.inputSpikes, target: initial.target)
            seq.isFirstOfRun.p[0] = 1
            seq.beginSequence(learningWindow: 3)
            for (s, e) in Self.expected.enumerated() {
                seq.advance(s, net, kernel: kernel)
                func check(_ actual: UnsafeMutablePointer<Double>, _ wanted: [Double], _ name: String) {
                    for j in 0..<wanted.count {
                        XCTAssertEqual(actual[j], wanted[j], accuracy: Self.handTolerance * max(1, abs(wanted[j])), "\(kernel) step \(s) \(name)[\(j)]")
                    }
                }
                check(seq.vRecord.row(s), e.v, "v")
                check(seq.aRecord.row(s), e.a, "a")
                check(seq.psi.row(s), e.psi, "psi")
                check(seq.z.row(s + 1), e.z, "z")
                check(seq.u.row(s), [e.u], "u")
                check(seq.err.row(s), [e.err], "err")
                check(seq.learningSignal.row(s), e.l, "L")
            }
        }
    }

    // MARK: BLAS wrappers

    /// A deterministic matrix `[rows, cols]` with entries in [-1, 1).
    private func filled<S: Scalar>(_ rows: Int, _ cols: Int, seed: Int) -> Matrix<S> {
        Matrix(rows: rows, cols: cols, (0..<(rows * cols)).map { S(Double((($0 + seed) * 7919) % 2001) / 1000 - 1) })
    }

    /// BLAS and the naive loops sum the same products in different orders: a relative 1e-12
    /// (Double) or 1e-5 (Float) of the sum of absolute products bounds that.
    private func tolerance<S: Scalar>(_: S.Type) -> Double { S.self == Double.self ? 1e-12 : 1e-5 }

    private func checkGEMM<S: Scalar>(_: S.Type) {
        let (m, n, k) = (5, 4, 3)
        for transA in [false, true] {
            for transB in [false, true] {
                let a: Matrix<S> = transA ? filled(k, m, seed: 1) : filled(m, k, seed: 1)
                let b: Matrix<S> = transB ? filled(n, k, seed: 2) : filled(k, n, seed: 2)
                let c: Matrix<S> = filled(m, n, seed: 3)
                let c0 = c.flat()
                S.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1.5, a: a.p, lda: a.cols, b: b.p, ldb: b.cols, beta: -0.5, c: c.p, ldc: n)
                for i in 0..<m {
                    for j in 0..<n {
                        var sum = 0.0, scale = 0.0
                        for q in 0..<k {
                            let product = Double(transA ? a[q, i] : a[i, q]) * Double(transB ? b[j, q] : b[q, j])
                            sum += product
                            scale += abs(product)
                        }
                        let want = 1.5 * sum - 0.5 * c0[i * n + j]
                        XCTAssertEqual(Double(c[i, j]), want, accuracy: tolerance(S.self) * (1.5 * scale + 0.5 * abs(c0[i * n + j]) + 1), "\(S.self) gemm transA \(transA) transB \(transB) [\(i), \(j)]")
                    }
                }
            }
        }
    }

    private func checkGEMV<S: Scalar>(_: S.Type) {
        let (m, n) = (6, 4)
        let a: Matrix<S> = filled(m, n, seed: 4)
        for trans in [false, true] {
            let (lenX, lenY) = trans ? (m, n) : (n, m)
            // x strided by 2 and y by 3, as the gradient's column updates use them.
            let x: Matrix<S> = filled(1, 2 * lenX, seed: 5), y: Matrix<S> = filled(1, 3 * lenY, seed: 6)
            let y0 = y.flat()
            S.gemv(trans: trans, m: m, n: n, alpha: 2, a: a.p, lda: n, x: x.p, incX: 2, beta: 0.25, y: y.p, incY: 3)
            for r in 0..<(3 * lenY) {
                guard r % 3 == 0 else {
                    XCTAssertEqual(Double(y.p[r]), y0[r], "\(S.self) gemv wrote outside its stride at \(r)")
                    continue
                }
                let i = r / 3
                var sum = 0.0, scale = 0.0
                for q in 0..<lenX {
                    let product = Double(trans ? a[q, i] : a[i, q]) * Double(x.p[2 * q])
                    sum += product
                    scale += abs(product)
                }
                XCTAssertEqual(Double(y.p[r]), 2 * sum + 0.25 * y0[r], accuracy: tolerance(S.self) * (2 * scale + 1), "\(S.self) gemv trans \(trans) [\(i)]")
            }
        }
    }

    /// `out = alpha x w^T + beta out`, one row (GEMV) and several rows (GEMM).
    private func checkRowsTimesTransposed<S: Scalar>(_: S.Type) {
        let (nPost, nPre) = (4, 3)
        let w: Matrix<S> = filled(nPost, nPre, seed: 7)
        for rows in [1, 3] {
            let x: Matrix<S> = filled(rows, nPre, seed: 8), out: Matrix<S> = filled(rows, nPost, seed: 9)
            let out0 = out.flat()
            S.rowsTimesTransposed(rows: rows, nPost: nPost, nPre: nPre, alpha: -1, x: x.p, w: w.p, beta: 2, out: out.p)
            for r in 0..<rows {
                for j in 0..<nPost {
                    let sum = (0..<nPre).reduce(0.0) { $0 + Double(x[r, $1]) * Double(w[j, $1]) }
                    XCTAssertEqual(Double(out[r, j]), -sum + 2 * out0[r * nPost + j], accuracy: tolerance(S.self) * 10, "\(S.self) rows \(rows) [\(r), \(j)]")
                }
            }
        }
    }

    func testGEMMAgainstNaiveLoop() { checkGEMM(Float.self); checkGEMM(Double.self) }
    func testGEMVAgainstNaiveLoop() { checkGEMV(Float.self); checkGEMV(Double.self) }
    func testRowsTimesTransposedAgainstNaiveLoop() { checkRowsTimesTransposed(Float.self); checkRowsTimesTransposed(Double.self) }
}
