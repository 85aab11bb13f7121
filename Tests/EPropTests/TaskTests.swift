import EProp
import Foundation
import XCTest

final class TaskTests: XCTestCase {
    /// `--task sine-waves --seed 1` draws NEST's test_eprop_regression network (weights, input)
    /// bit for bit and its target to rounding (numpy's and glibc's sin may differ in the last bit).
    func testSineWavesReproducesNESTTestNetwork() throws {
        let dir = referenceDir.deletingLastPathComponent().appendingPathComponent("nest-3.10-sine-waves-seed1-iter3")
        let g = try TaskGenerator.generate(TrainingConfig.defaults(for: .sineWaves))
        for (m, name) in [(g.wInRec, "w_in_rec_init"), (g.wRecRec, "w_rec_rec_init"), (g.wRecOut, "w_rec_out_init"), (g.wOutRecFeedback, "w_out_rec_feedback"), (g.inputSpikes, "input_spike_bool_seq")] {
            let ref = try NPY.read(dir.appendingPathComponent("\(name).npy"))
            XCTAssertEqual([m.rows, m.cols], ref.shape, name)
            XCTAssertEqual(m.flat().map(\.bitPattern), ref.values.map(\.bitPattern), "\(name) differs")
        }
        let target = try NPY.read(dir.appendingPathComponent("target_signal_seq.npy")).values
        XCTAssertLessThanOrEqual(Difference(g.target.flat(), target).maxAbs, 1e-14)
        XCTAssertEqual(g.tauM.flat(), [Double](repeating: 30, count: 100))
    }

    /// Trials are balanced-ish, labelled by the majority of cues, with no input at step 0, and
    /// the generator's checkpointed state redraws the same trials.
    func testEvidenceAccumulationTrials() throws {
        var c = TrainingConfig.defaults(for: .evidenceAccumulation)
        c.optimizer.batchSize = 4
        let g = try TaskGenerator.generate(c)
        let trials = (0..<12).map { g.patterns.sequence($0) }
        for t in trials {
            XCTAssertEqual([t.input.rows, t.input.cols, t.target.rows], [40, 2250, 2])
            XCTAssertEqual((0..<40).map { t.input[$0, 0] }, [Double](repeating: 0, count: 40), "no input at step 0")
            // The recall group (inputs 20-29) fires only in the last 150 steps.
            XCTAssertEqual((20..<30).flatMap { i in (0..<2100).map { t.input[i, $0] } }.reduce(0, +), 0)
            XCTAssertEqual(t.target[0, 0] + t.target[1, 0], 1, "one-hot target")
        }
        XCTAssertGreaterThan(Set(trials.map { $0.target[1, 0] }).count, 1, "both classes occur")
        let state = try XCTUnwrap(g.patterns.generatorState(atBatch: 2))
        let again = try TaskGenerator.generate(c)
        again.patterns.restoreGenerator(state)
        XCTAssertEqual(again.patterns.sequence(8).input.flat(), trials[8].input.flat())
    }

    /// Cross entropy, mixed LIF/ALIF and symmetric feedback: both gradient methods agree, and B
    /// follows the readout weights.
    func testClassificationGradientsAgreeAndSymmetricFeedbackFollowsReadout() throws {
        var c = TrainingConfig.defaults(for: .evidenceAccumulation)
        (c.nRec, c.sequence, c.learningWindow, c.optimizer.batchSize, c.iterations, c.precision) = (30, 600, 150, 3, 2, .double)
        (c.feedback, c.recurrent.nAdaptive) = (.symmetric, 15)
        c.inputSpikeProb = 0.2
        var grads: [[Double]] = []
        for method in [GradientMethod.adjoint, .traces] {
            c.gradient = method
            let t = Trainer<Double>(config: c, initial: try TaskGenerator.generate(c))
            t.step()
            XCTAssertNotNil(t.results[0].accuracy)
            grads.append(t.gradients.all.flatMap { $0.flat() })
            for j in 0..<c.nRec { for k in 0..<c.nOut { XCTAssertEqual(t.net.feedback[j, k], t.net.wOut[k, j]) } }
        }
        let scale = grads[1].map(abs).max()!
        XCTAssertGreaterThan(scale, 0)
        XCTAssertLessThanOrEqual(Difference(grads[0], grads[1]).maxAbs / scale, GradientTests.relativeAgreement)
    }
}
