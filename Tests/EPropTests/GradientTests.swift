import EProp
import XCTest

/// The two gradient methods compute the same gradient (docs/mathematics.md §5.4: the adjoint form is exact).
final class GradientTests: XCTestCase {
    /// Largest gradient difference relative to the largest gradient entry, in Float64.
    /// Both are exact rearrangements of the same sums; measured differences are ~1e-15, the
    /// bound leaves room for summation-order effects across BLAS kernels.
    static let relativeAgreement = 1e-11

    /// Compares the adjoint gradient (sparse kernel) with the traces gradient (BLAS kernel), or
    /// with `variant` applied to the second run instead.
    private func compare(_ configure: (inout TrainingConfig) -> Void, variant: ((inout TrainingConfig) -> Void)? = nil, file: StaticString = #filePath, line: UInt = #line) {
        var c = smallConfig()
        configure(&c)
        let initial = InfiniteLoopTask.generate(c)
        var results: [Trainer<Double>] = []
        for second in [false, true] {
            var c = c
            (c.gradient, c.kernel) = (.adjoint, .sparse)
            if second {
                if let variant { variant(&c) } else { (c.gradient, c.kernel) = (.traces, .blas) }
            }
            let t = Trainer<Double>(config: c, initial: initial)
            t.step()
            results.append(t)
        }
        let (a, b) = (results[0], results[1])
        XCTAssertGreaterThan(a.results[0].rateHz, 0, "no spikes: the comparison would be trivial", file: file, line: line)
        for (ga, gb, name) in zip3(a.gradients.all, b.gradients.all, ["in", "rec", "out"]) {
            let scale = gb.flat().map(abs).max()!
            XCTAssertGreaterThan(scale, 0, "gradient \(name) is zero", file: file, line: line)
            let d = Difference(ga.flat(), gb.flat())
            XCTAssertLessThanOrEqual(d.maxAbs / scale, Self.relativeAgreement, "gradient \(name): \(d), scale \(scale)", file: file, line: line)
        }
    }

    func testTutorialModel() { compare { _ in } }
    func testSparseAndBLASKernelsAgree() {
        compare({ _ in }, variant: { $0.kernel = .blas })
        compare({ $0.optimizer.batchSize = 3 }, variant: { $0.kernel = .blas })
        compare({ _ in }, variant: { $0.gradient = .traces; $0.kernel = .sparse })
    }
    func testPlainLIF() { compare { $0.recurrent.model = .lif } }
    func testBatchOfThree() { compare { $0.optimizer.batchSize = 3; $0.iterations = 2 } }
    func testShortLearningWindowAndAveraging() { compare { $0.learningWindow = 120; $0.averageGradient = true } }
    func testWithoutNESTQuirk() { compare { $0.nestMissingLearningSignal = false } }
    func testRegularSpikeArrivalAndRefractoriness() { compare { $0.recurrent.regularSpikeArrival = true; $0.recurrent.tRef = 3 } }
    func testOtherSurrogates() {
        for f in SurrogateGradient.allCases { compare { $0.recurrent.surrogateGradient = f } }
    }

    /// The small task must exercise the quirk: some inputs spike at step 1.
    func testSmallTaskHasStepOneInputs() {
        let i = InfiniteLoopTask.generate(smallConfig())
        XCTAssertTrue((0..<i.nIn).contains { i.inputSpikes[$0, 1] != 0 })
    }

    /// Float32 and Float64 simulate the same spikes on the small task in the first iteration.
    func testFloatMatchesDoubleSpikes() {
        var c = smallConfig()
        c.iterations = 1
        let initial = InfiniteLoopTask.generate(c)
        let d = train(Double.self, c, initial)
        let f = train(Float.self, c, initial)
        assertSameSpikes(f.recorder.spikesRec.times, f.recorder.spikesRec.senders, d.recorder.spikesRec.times, d.recorder.spikesRec.senders, sequence: c.sequence)
    }
}

func zip3<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
    (0..<min(a.count, b.count, c.count)).map { (a[$0], b[$0], c[$0]) }
}

/// Results must not depend on the number of worker threads (fixed shards, fixed reduction order).
final class DeterminismTests: XCTestCase {
    func testThreadCountDoesNotChangeResults() {
        var c = smallConfig()
        (c.optimizer.batchSize, c.iterations, c.precision) = (Trainer<Float>.shardSize + 3, 3, .float)
        let initial = InfiniteLoopTask.generate(c)
        var weights: [[Float]] = []
        for threads in [1, 2] {
            c.threads = threads
            let t = train(Float.self, c, initial)
            weights.append(t.net.wIn.flat(as: Float.self) + t.net.wRec.flat(as: Float.self) + t.net.wOut.flat(as: Float.self))
        }
        XCTAssertEqual(weights[0].map(\.bitPattern), weights[1].map(\.bitPattern), "weights differ between 1 and 2 threads")
    }
}
