import EProp
import Foundation
import XCTest

/// Settings the four regression runs leave at one value, against NEST 3.10 on the test's task with 40 inputs and 40
/// recurrent neurons (`nest_online_export.py --variants`, notebooks-data/reference/nest-3.10-online-variants):
/// refractoriness of both families, the three other surrogates, `refractory_input`, Adam once per spike, batches of
/// 3, 7 and 50 steps, per-spike gradient descent with batches, no cutoff, a cutoff of 7 ms, flush intervals of 7 and
/// 50 ms, and the spec's [C] items I_e and V_min (recurrent and readout).
final class OnlineNESTVariantTests: XCTestCase {
    private func check(_ name: String) throws {
        // The variant's parameters come from its params.json (VARIANTS in nest_online_export.py).
        let ref = try OnlineReference(dir: onlineReferenceRoot.appendingPathComponent("nest-3.10-online-variants/\(name)"))
        let sim = try OnlineSimulation<Double>(parameters: ref.parameters, weights: ref.weights, stimulus: ref.stimulus)
        sim.run()
        let dl = maxRelativeLossDifference(sim.loss, ref.loss)
        report("\(name): loss max rel. diff. \(dl), \(sim.spikeSteps.count) spikes")
        XCTAssertLessThanOrEqual(dl, OnlineNESTReferenceTests.lossRtol, "\(name): loss \(sim.loss) vs NEST \(ref.loss)")
        assertSameOnlineSpikes(sim, ref)
        for (k, r) in relativeWeightDifferences(sim, ref) {
            report("\(name) \(k.rawValue): max |W - W_NEST| / max |dW| = \(r.rel) (\(r.diff.maxAbs) / \(r.change))")
            XCTAssertLessThanOrEqual(r.rel, OnlineNESTReferenceTests.weightRelTol, "\(name) \(k.rawValue): \(r.diff), max |dW| \(r.change)")
            XCTAssertGreaterThan(r.change, 0, "\(name) \(k.rawValue): NEST's weights did not change")
        }
    }

    func testAdaptAdamPerSpike() throws { try check("iaf_adapt_adam_per_spike") }
    func testIafRefractory3ArctanAdamBatch7() throws { try check("iaf_tref3_arctan_adam_batch7") }
    func testPscDeltaRefractory2ExponentialNoCutoffFlush50RefractoryInput() throws {
        try check("psc_delta_tref2_exponential_nocutoff_flush50_refractory_input")
    }
    func testPscDeltaAdaptRefractory2FastSigmoidBatch50PerSpike() throws {
        try check("psc_delta_adapt_tref2_fast_sigmoid_gd_batch50_per_spike")
    }
    func testIafCurrentVMinCutoff7Flush7() throws { try check("iaf_I_e_V_min_cutoff7_flush7") }
    func testPscDeltaCurrentVMinAdamBatch3() throws { try check("psc_delta_I_e_V_min_adam_batch3") }

    /// Mixed populations: 20 eprop_iaf_psc_delta_adapt, 10 eprop_iaf_psc_delta (t_ref 2, cutoff 30) and 10
    /// eprop_iaf_adapt in one recurrent population, kappa 0.95 or 0.97 per neuron, gradient descent per spike; the
    /// export's groups as the loader reads them, and every value bitwise NEST's.
    func testMixedPopulationsWithKappaPerNeuron() throws {
        let name = "mixed_psc_delta_adapt_psc_delta_iaf_adapt_kappa_per_neuron"
        try check(name)
        let ref = try OnlineReference(dir: onlineReferenceRoot.appendingPathComponent("nest-3.10-online-variants/\(name)"))
        let models = (0..<40).map { ref.parameters.recurrentParameters(ofNeuron: $0).model }
        XCTAssertEqual(models, [OnlineNeuronModel](repeating: .eprop_iaf_psc_delta_adapt, count: 20)
            + [OnlineNeuronModel](repeating: .eprop_iaf_psc_delta, count: 10) + [OnlineNeuronModel](repeating: .eprop_iaf_adapt, count: 10))
        XCTAssertEqual((0..<40).map { ref.parameters.recurrentParameters(ofNeuron: $0).kappa }, (0..<40).map { $0 % 3 == 0 ? 0.95 : 0.97 })
        XCTAssertEqual(ref.parameters.recurrentParameters(ofNeuron: 25).tRef, 2)
        let sim = try OnlineSimulation<Double>(parameters: ref.parameters, weights: ref.weights, stimulus: ref.stimulus)
        sim.run()
        XCTAssertEqual(sim.loss, ref.loss, "bitwise")
        for (k, name) in OnlineReference.names { XCTAssertEqual(sim.weights(k, stored: true), ref.final[k]!, "\(name)_final bitwise") }
    }
}
