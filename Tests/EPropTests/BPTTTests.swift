import EProp
import XCTest

/// BPTT (`--gradient bptt`) against e-prop where theory says they are equal, and the gradient
/// comparison. The gradient itself is checked against JAX by notebooks-data/crossval/bptt_check.py.
final class BPTTTests: XCTestCase {
    /// Float64, the same sums in another order: measured 1e-16 ... 1e-15 of the largest entry.
    static let equalityRtol = 1e-12

    private func gradients(_ c: TrainingConfig, _ initial: NetworkInit) -> [[Double]] {
        let t = Trainer<Double>(config: c, initial: initial)
        t.step()
        return t.gradients.all.map { $0.flat() }
    }

    private func maxRelativeDifference(_ a: [Double], _ b: [Double]) -> Double {
        let scale = b.map(abs).max()!
        XCTAssertGreaterThan(scale, 0, "a zero gradient would make the comparison trivial")
        return zip(a, b).map { abs($0 - $1) }.max()! / scale
    }

    /// Without recurrent weights and adaptation, with symmetric feedback and the reset's gradient
    /// stopped (as e-prop's eligibility traces assume), e-prop's truncation drops nothing: both
    /// e-prop forms equal BPTT.
    func testEpropEqualsBPTTWithoutRecurrenceOrAdaptation() {
        var c = smallConfig()
        (c.recurrent.model, c.feedback, c.nestMissingLearningSignal, c.bpttThroughReset) = (.lif, .symmetric, false, false)
        let initial = InfiniteLoopTask.generate(c)
        initial.wRecRec.fill(0)
        var bptt = c
        bptt.gradient = .bptt
        let reference = gradients(bptt, initial)
        for method in [GradientMethod.adjoint, .traces] {
            c.gradient = method
            for (name, (e, b)) in zip(["in", "rec", "out"], zip(gradients(c, initial), reference)) {
                XCTAssertLessThanOrEqual(maxRelativeDifference(e, b), Self.equalityRtol, "\(method) gradient \(name)")
            }
        }
    }

    /// With recurrence, adaptation or the reset's gradient, e-prop is an approximation: the
    /// gradients differ (so the equality above is not trivial).
    func testEpropDiffersFromBPTTWithRecurrence() {
        var c = smallConfig()
        (c.feedback, c.nestMissingLearningSignal) = (.symmetric, false)
        let initial = InfiniteLoopTask.generate(c)
        var bptt = c
        bptt.gradient = .bptt
        let (e, b) = (gradients(c, initial), gradients(bptt, initial))
        XCTAssertGreaterThan(maxRelativeDifference(e[1], b[1]), 1e-3)
        XCTAssertLessThanOrEqual(maxRelativeDifference(e[2], b[2]), Self.equalityRtol, "the readout gradient is exact in e-prop")
    }

    /// The BLAS and sparse kernels sum the same BPTT products in different orders.
    func testKernelsAgree() {
        var c = smallConfig()
        (c.gradient, c.recurrent.tRef) = (.bptt, 2)
        let initial = InfiniteLoopTask.generate(c)
        var blas = c
        blas.kernel = .blas
        for (name, (s, b)) in zip(["in", "rec", "out"], zip(gradients(c, initial), gradients(blas, initial))) {
            XCTAssertLessThanOrEqual(maxRelativeDifference(s, b), Self.equalityRtol, "gradient \(name)")
        }
    }

    /// Batched and threaded as e-prop: the same weights bit for bit with 1 and 2 workers.
    func testThreadCountDoesNotChangeBPTT() {
        var c = smallConfig()
        (c.gradient, c.optimizer.batchSize, c.iterations, c.precision) = (.bptt, Trainer<Float>.shardSize + 3, 2, .float)
        let initial = InfiniteLoopTask.generate(c)
        var weights: [[UInt32]] = []
        for threads in [1, 2] {
            c.threads = threads
            let t = train(Float.self, c, initial)
            weights.append(t.net.trained.flatMap { $0.flat(as: Float.self) }.map(\.bitPattern))
        }
        XCTAssertEqual(weights[0], weights[1])
    }

    /// `compareGradients` reports without changing the training, in both precisions.
    func testComparisonLeavesTrainingUnchanged() {
        for precision in [Precision.float, .double] {
            var c = smallConfig()
            (c.iterations, c.precision) = (3, precision)
            let initial = InfiniteLoopTask.generate(c)
            var compared = c
            compared.compareGradients = true
            func losses<S: Scalar>(_: S.Type, _ config: TrainingConfig) -> [IterationResult] { train(S.self, config, initial).results }
            let (plain, withComparison) = precision == .float
                ? (losses(Float.self, c), losses(Float.self, compared)) : (losses(Double.self, c), losses(Double.self, compared))
            XCTAssertEqual(plain.map(\.loss).map(\.bitPattern), withComparison.map(\.loss).map(\.bitPattern))
            for r in withComparison {
                let cosine = r.gradientCosine!
                XCTAssertTrue(cosine.allSatisfy { $0 >= -1 - 1e-12 && $0 <= 1 + 1e-12 }, "\(cosine)")
                XCTAssertEqual(cosine[2], 1, accuracy: precision == .double ? 1e-12 : 1e-5, "the readout gradient is the same")
                XCTAssertEqual(r.gradientNormRatio![2], 1, accuracy: precision == .double ? 1e-12 : 1e-5)
            }
        }
    }
}
