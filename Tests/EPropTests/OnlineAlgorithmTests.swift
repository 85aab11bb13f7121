import EProp
import Foundation
import XCTest

/// The engine's own equivalences (eprop-online-spec.md §4.4, §5.3) and parameter validation.
final class OnlineAlgorithmTests: XCTestCase {
    /// The network of NEST's regression test with its inputs and initial weights (NEST's export), modified by `edit`.
    private func run<S: Scalar>(
        _: S.Type, _ model: OnlineNeuronModel, edit: (inout OnlineNetworkParameters) -> Void
    ) throws -> OnlineSimulation<S> {
        var p = OnlineNESTReferenceTests.regressionParameters(model)
        edit(&p)
        let ref = try OnlineNESTReferenceTests.regressionReference(model, parameters: p)
        let sim = try OnlineSimulation<S>(parameters: p, weights: ref.weights, stimulus: ref.stimulus)
        sim.run()
        return sim
    }

    private func assertIdentical(_ a: OnlineSimulation<Double>, _ b: OnlineSimulation<Double>, _ what: String) {
        XCTAssertEqual(a.loss, b.loss, "\(what): loss")
        XCTAssertEqual(a.spikeSteps, b.spikeSteps, "\(what): spike steps")
        XCTAssertEqual(a.spikeNeurons, b.spikeNeurons, "\(what): spike neurons")
        for k in OnlineProjectionKind.allCases {
            let d = Difference(a.weights(k, stored: false), b.weights(k, stored: false))
            XCTAssertEqual(d.maxAbs, 0, "\(what) \(k.rawValue): \(d)")
        }
    }

    /// §5.3: with an infinite cutoff and optimize_each_step, the plain every-step algorithm (every synapse, every
    /// entry, every step) is bitwise the lazy exact one: before a column's first spike its traces and gradients
    /// are 0, and Adam's absolute step counter makes the beta powers equal.
    func testEveryStepEqualsExactWithoutCutoff() throws {
        for (model, kind) in [(OnlineNeuronModel.eprop_iaf, OptimizerKind.adam), (.eprop_iaf_psc_delta_adapt, .gradientDescent)] {
            func noCutoff(_ p: inout OnlineNetworkParameters) {
                (p.recurrent.isiTraceCutoff, p.readout.isiTraceCutoff, p.optimizer.kind) = (.infinity, .infinity, kind)
            }
            let exact = try run(Double.self, model) { noCutoff(&$0) }
            let everyStep = try run(Double.self, model) {
                noCutoff(&$0)
                $0.algorithm = .everyStep
            }
            assertIdentical(exact, everyStep, "\(model.rawValue) \(kind.rawValue)")
            // The cutoff matters: with NEST's 100 ms the weights differ (the comparison has teeth).
            let withCutoff = try run(Double.self, model) { $0.optimizer.kind = kind }
            XCTAssertNotEqual(withCutoff.weights(.inputToRecurrent, stored: false), exact.weights(.inputToRecurrent, stored: false))
        }
    }

    /// §4.4: gradient descent with batch 1 gives the same result once per spike as once per entry (up to rounding,
    /// since the gradient does not depend on w inside a window); with Adam the two modes differ.
    func testPerSpikeOptimizationEqualsPerStepForGradientDescentBatch1() throws {
        // Without flush events NEST's stored weights are, in both modes, those of each column's last spike.
        func noFlush(_ p: inout OnlineNetworkParameters) { p.recurrent.flushEventSendInterval = .infinity }
        let perStep = try run(Double.self, .eprop_iaf_adapt) { noFlush(&$0) }
        let perSpike = try run(Double.self, .eprop_iaf_adapt) {
            noFlush(&$0)
            $0.optimizer.optimizeEachStep = false
        }
        XCTAssertEqual(perStep.spikeSteps, perSpike.spikeSteps)
        XCTAssertEqual(perStep.spikeNeurons, perSpike.spikeNeurons)
        for (a, b) in zip(perStep.loss, perSpike.loss) { XCTAssertEqual(a, b, accuracy: 1e-12 * abs(b)) }
        for k in OnlineProjectionKind.allCases {
            // The spec measured 8.5e-17 between NEST's two modes (summation order of the per-entry steps).
            let d = Difference(perStep.weights(k), perSpike.weights(k))
            report("per-spike vs per-step GD batch 1, \(k.rawValue): \(d)")
            XCTAssertLessThanOrEqual(d.maxAbs, 1e-15, "\(k.rawValue): \(d)")
        }
        // Adam once per spike (ISI sum at the oldest pending iteration, then zero iterations) is another algorithm.
        let adamPerStep = try run(Double.self, .eprop_iaf) { _ in }
        let adamPerSpike = try run(Double.self, .eprop_iaf) { $0.optimizer.optimizeEachStep = false }
        let d = Difference(adamPerStep.weights(.recurrentToReadout, stored: false), adamPerSpike.weights(.recurrentToReadout, stored: false))
        XCTAssertGreaterThan(d.maxAbs, 1e-6, "Adam per spike should differ from per step: \(d)")
    }

    /// Batches count time steps (absolute time): gradient descent with batch 50 differs between per-step and
    /// per-spike calls (spec §4.4: not equivalent for B > 1).
    func testBatchSizeCountsTimeSteps() throws {
        let perStep = try run(Double.self, .eprop_iaf_adapt) { $0.optimizer.batchSize = 50 }
        let perSpike = try run(Double.self, .eprop_iaf_adapt) {
            $0.optimizer.batchSize = 50
            $0.optimizer.optimizeEachStep = false
        }
        let d = Difference(perStep.weights(.inputToRecurrent, stored: false), perSpike.weights(.inputToRecurrent, stored: false))
        XCTAssertGreaterThan(d.maxAbs, 1e-9, "batch 50: per step and per spike should differ: \(d)")
    }

    /// Flush events are numerically neutral (spec §4.5): intervals of 7 ms (inputs and recurrent neurons) and none
    /// give the same spikes, losses and current weights. They only move NEST's stored weights forward, and only in
    /// per-step mode (per spike, weights change at spikes only).
    func testFlushEventsAreNumericallyNeutral() throws {
        for perStep in [true, false] {
            let none = try run(Double.self, .eprop_iaf) {
                $0.recurrent.flushEventSendInterval = .infinity
                $0.optimizer.optimizeEachStep = perStep
            }
            let seven = try run(Double.self, .eprop_iaf) {
                ($0.recurrent.flushEventSendInterval, $0.inputFlushEventSendInterval) = (7, 7)
                $0.optimizer.optimizeEachStep = perStep
            }
            assertIdentical(none, seven, "flush 7 ms vs none, optimize_each_step \(perStep)")
            let stored = Difference(seven.weights(.inputToRecurrent), none.weights(.inputToRecurrent))
            if perStep {
                XCTAssertGreaterThan(stored.maxAbs, 0, "per step, flush events update the stored weights")
            } else {
                XCTAssertEqual(stored.maxAbs, 0, "per spike, flush events leave the stored weights: \(stored)")
            }
        }
    }

    /// Float32 runs the generic code end to end.
    func testFloat32RunsTheRegressionNetwork() throws {
        let f = try run(Float.self, .eprop_iaf_psc_delta) { _ in }
        let ref = try OnlineNESTReferenceTests.regressionReference(.eprop_iaf_psc_delta)
        XCTAssertEqual(f.loss.count, 5)
        report("Float32 eprop_iaf_psc_delta: loss \(f.loss) vs NEST \(ref.loss)")
        XCTAssertTrue(f.loss.allSatisfy(\.isFinite))
        // The first iteration, before weights have drifted much in Float32 (measured rel. diff. in the message).
        XCTAssertEqual(f.loss[0], ref.loss[0], accuracy: 1e-3 * ref.loss[0], "Float32 \(f.loss) vs NEST \(ref.loss)")
    }

    // MARK: validation

    private func assertRejected(
        _ parameter: String, file: StaticString = #filePath, line: UInt = #line, _ edit: (inout OnlineNetworkParameters) -> Void
    ) {
        var p = OnlineNESTReferenceTests.regressionParameters(.eprop_iaf_psc_delta)
        edit(&p)
        XCTAssertThrowsError(try p.validate(), file: file, line: line) { error in
            guard let e = error as? OnlineParameterError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(e.parameter, parameter, "\(e)", file: file, line: line)
            XCTAssertTrue(e.description.contains("required"), "\(e)", file: file, line: line)
        }
    }

    func testValidationNamesParameterAndCondition() throws {
        XCTAssertNoThrow(try OnlineNESTReferenceTests.regressionParameters(.eprop_iaf_psc_delta).validate())
        assertRejected("tau_m") { $0.recurrent.tauM = 0 }
        assertRejected("C_m") { $0.readout.cM = -1 }
        assertRejected("V_reset") { $0.recurrent.vReset = 0.6 }  // >= V_th = 0.5
        assertRejected("kappa") { $0.recurrent.kappa = 1.5 }
        assertRejected("kappa_reg") { $0.recurrent.kappaReg = -0.1 }
        assertRejected("c_reg") { $0.recurrent.cReg = -1 }
        assertRejected("surrogate_gradient_width") { $0.recurrent.surrogateWidth = 0 }
        assertRejected("eprop_isi_trace_cutoff") { $0.recurrent.isiTraceCutoff = -1 }
        assertRejected("eprop_isi_trace_cutoff") { $0.readout.isiTraceCutoff = 1 }
        assertRejected("flush_event_send_interval") { $0.recurrent.flushEventSendInterval = 0 }
        assertRejected("optimizer.batch_size") { $0.optimizer.batchSize = 0 }
        assertRejected("optimizer.eta") { $0.optimizer.eta = -1 }
        assertRejected("optimizer.Wmin") { ($0.optimizer.wMin, $0.optimizer.wMax) = (1, -1) }
        assertRejected("optimizer.beta_1") {
            $0.optimizer.kind = .adam
            $0.optimizer.beta1 = 1
        }
        // The every-step algorithm is exact only without cutoff and with optimize_each_step: refused otherwise.
        assertRejected("eprop_isi_trace_cutoff") { $0.algorithm = .everyStep }
        assertRejected("optimizer.optimize_each_step") {
            $0.recurrent.isiTraceCutoff = .infinity
            $0.readout.isiTraceCutoff = .infinity
            $0.optimizer.optimizeEachStep = false
            $0.algorithm = .everyStep
        }
        // Initial weights outside [Wmin, Wmax] are rejected, as NEST does.
        let ref = try OnlineNESTReferenceTests.regressionReference(.eprop_iaf)
        var w = ref.weights
        w.wRec[1] = 200
        XCTAssertThrowsError(try OnlineSimulation<Double>(parameters: ref.parameters, weights: w, stimulus: ref.stimulus)) {
            XCTAssertEqual(($0 as? OnlineParameterError)?.parameter, "weights.wRec")
        }
    }
}
