import EProp
import Foundation
import XCTest

/// Sparse connectivity (connection masks, as NEST's N-MNIST example): the compact per-column storage is the dense one
/// where every synapse exists, absent synapses are never trained, and bad masks are refused by name. (The agreement
/// with NEST on sparse networks is in `OnlineNMNISTTests` and crossval_online.py.)
final class OnlineSparseTests: XCTestCase {
    /// The dense connectivity written out as masks: every synapse, no autapses.
    private func fullMasks(_ p: OnlineNetworkParameters, _ w: OnlineWeights) -> OnlineWeights {
        var w = w
        w.maskIn = [Bool](repeating: true, count: p.nRec * p.nIn)
        w.maskRec = (0..<p.nRec * p.nRec).map { $0 / p.nRec != $0 % p.nRec }
        w.maskOut = [Bool](repeating: true, count: p.nOut * p.nRec)
        return w
    }

    /// Random masks (a fixed generator) with the weights put to 0 where they are false.
    private func randomMasks(_ p: OnlineNetworkParameters, _ w: OnlineWeights, absent: (Double, Double, Double)) -> OnlineWeights {
        var rng = NumpyRandomState(seed: 5)
        func draw(_ count: Int, _ q: Double, _ pre: Int, noDiagonal: Bool) -> [Bool] {
            (0..<count).map { k in rng.uniform() >= q && !(noDiagonal && k / pre == k % pre) }
        }
        var w = w
        w.maskIn = draw(p.nRec * p.nIn, absent.0, p.nIn, noDiagonal: false)
        w.maskRec = draw(p.nRec * p.nRec, absent.1, p.nRec, noDiagonal: true)
        w.maskOut = draw(p.nOut * p.nRec, absent.2, p.nRec, noDiagonal: false)
        w.wIn = zip(w.wIn, w.maskIn!).map { $1 ? $0 : 0 }
        w.wRec = zip(w.wRec, w.maskRec!).map { $1 ? $0 : 0 }
        w.wOut = zip(w.wOut, w.maskOut!).map { $1 ? $0 : 0 }
        return w
    }

    /// Each of the four regression networks (per-step Adam and gradient descent, cutoff, flush events) and the
    /// sine-wave example (per-spike gradient descent, the forced final update): with masks that hold every synapse
    /// the sparse code path gives bitwise the dense one's loss, spikes and weights.
    func testFullMasksEqualDenseBitwise() throws {
        var runs = try OnlineNeuronModel.allCases.map { try OnlineNESTReferenceTests.regressionReference($0) }
        runs.append(try OnlineNESTReferenceTests.exampleReference())
        for ref in runs {
            let dense = try OnlineSimulation<Double>(parameters: ref.parameters, weights: ref.weights, stimulus: ref.stimulus)
            let sparse = try OnlineSimulation<Double>(
                parameters: ref.parameters, weights: fullMasks(ref.parameters, ref.weights), stimulus: ref.stimulus)
            // The example's first two iterations (its per-spike path; all of it would add two minutes in debug builds).
            let steps = ref.stimulus.sequence >= 1000 ? 2 * ref.stimulus.sequence + 2 : ref.stimulus.steps
            dense.simulate(steps: steps)
            sparse.simulate(steps: steps)
            let what = ref.dir.lastPathComponent
            XCTAssertEqual(dense.loss, sparse.loss, "\(what): loss")
            XCTAssertEqual(dense.spikeSteps, sparse.spikeSteps, "\(what): spike steps")
            XCTAssertEqual(dense.spikeNeurons, sparse.spikeNeurons, "\(what): spike neurons")
            for k in OnlineProjectionKind.allCases {
                for stored in [false, true] {
                    let d = Difference(dense.weights(k, stored: stored), sparse.weights(k, stored: stored))
                    XCTAssertEqual(d.maxAbs, 0, "\(what) \(k.rawValue) stored \(stored): \(d)")
                }
                XCTAssertEqual(dense.mask(k), sparse.mask(k), "\(what) \(k.rawValue): mask")
            }
        }
    }

    /// Absent synapses stay 0 and are not followed by the weight recorder; present ones train; the masks read back.
    func testAbsentSynapsesAreNeverTrained() throws {
        for model in [OnlineNeuronModel.eprop_iaf, .eprop_iaf_psc_delta_adapt] {
            let ref = try OnlineNESTReferenceTests.regressionReference(model)
            let p = ref.parameters
            let w = randomMasks(p, ref.weights, absent: (0.75, 0.9, 0.3))
            let everything = OnlineWeightRecorderSelection(
                inputSenders: Array(0..<p.nIn), recurrentSenders: Array(0..<p.nRec), recurrentTargets: Array(0..<p.nRec),
                readoutTargets: Array(0..<p.nOut))
            let sim = try OnlineSimulation<Double>(parameters: p, weights: w, stimulus: ref.stimulus, weightRecorder: everything)
            sim.run()
            for (k, mask, initial) in [
                (OnlineProjectionKind.inputToRecurrent, w.maskIn!, w.wIn), (.recurrentToRecurrent, w.maskRec!, w.wRec),
                (.recurrentToReadout, w.maskOut!, w.wOut),
            ] {
                XCTAssertEqual(sim.mask(k), mask, "\(model.rawValue) \(k.rawValue): mask")
                for stored in [false, true] {
                    let final = sim.weights(k, stored: stored)
                    let nonzeroAbsent = zip(final, mask).filter { !$0.1 && $0.0 != 0 }.count
                    XCTAssertEqual(nonzeroAbsent, 0, "\(model.rawValue) \(k.rawValue): absent synapses with a weight")
                    let trained = zip(zip(final, initial), mask).filter { $0.1 && $0.0.0 != $0.0.1 }.count
                    XCTAssertGreaterThan(trained, mask.filter { $0 }.count / 4, "\(model.rawValue) \(k.rawValue): present synapses trained")
                }
            }
            let r = sim.weightRecord
            XCTAssertFalse(r.weights.isEmpty)
            for e in r.weights.indices {
                let (i, j) = (Int(r.senders[e]), Int(r.targets[e]))
                let exists: Bool
                switch (r.senderPopulations[e], r.targetPopulations[e]) {
                case (0, _): exists = w.maskIn![j * p.nIn + i]
                case (_, 0): exists = w.maskRec![j * p.nRec + i]
                default: exists = w.maskOut![j * p.nRec + i]
                }
                XCTAssertTrue(exists, "\(model.rawValue): weight-recorder event \(e) of an absent synapse \(i) -> \(j)")
            }
        }
    }

    /// A weight where the mask has no synapse, an autapse in the recurrent mask, or a mask of the wrong shape is
    /// refused, naming the array.
    func testBadMasksAreRefusedByName() throws {
        let ref = try OnlineNESTReferenceTests.regressionReference(.eprop_iaf)
        let p = ref.parameters
        func refusal(_ edit: (inout OnlineWeights) -> Void) -> String {
            var w = fullMasks(p, ref.weights)
            edit(&w)
            do {
                _ = try OnlineSimulation<Double>(parameters: p, weights: w, stimulus: ref.stimulus)
                return "accepted"
            } catch let e as OnlineParameterError { return e.description } catch { return "\(error)" }
        }
        XCTAssertTrue(refusal { $0.maskIn![3] = false }.hasPrefix("weights.wIn: 0 where mask_in_rec is false required (entry [0, 3]"))
        XCTAssertTrue(refusal { $0.maskRec![5 * p.nRec + 5] = true }.hasPrefix("mask_rec_rec: a false diagonal required"))
        XCTAssertTrue(refusal { $0.maskOut!.removeLast() }.hasPrefix("mask_rec_out: the shape of w_rec_out"))
        XCTAssertEqual(refusal { _ in }, "accepted")
    }
}

/// Sparse connectivity against NEST 3.10: NEST's sine-wave example with connection probabilities 0.5 / 0.2 / 1
/// (notebooks-data/reference/nest-3.10-online-variants/sparse_example_iaf_p0.5_0.2_1).
final class OnlineSparseNESTTests: XCTestCase {
    let dir = onlineReferenceRoot.appendingPathComponent("nest-3.10-online-variants/sparse_example_iaf_p0.5_0.2_1")

    /// The export replays bit for bit, and `OnlineSineWaveTask.generate(connectionProbability:)` (the CLI's
    /// `--connection-probability`) draws NEST's masks, weights and pattern from seed 1.
    func testSparseExampleEqualsNESTBitForBit() throws {
        let ref = try OnlineReference(dir: dir)
        let sim = try OnlineSimulation<Double>(parameters: ref.parameters, weights: ref.weights, stimulus: ref.stimulus)
        sim.run()
        assertSameOnlineSpikes(sim, ref)
        XCTAssertEqual(sim.loss, ref.loss)
        for (k, name) in OnlineReference.names {
            XCTAssertEqual(sim.weights(k, stored: true), ref.final[k]!, "\(name)_final")
            XCTAssertEqual(sim.mask(k), try NPY.read(dir.appendingPathComponent("mask_\(name.dropFirst(2)).npy")).values.map { $0 != 0 })
        }
        XCTAssertEqual(ref.weights.maskRec!.filter { $0 }.count, 1938)
        let generated = OnlineSineWaveTask.generate(.eprop_iaf, preset: .example, seed: 1, iterations: 2, connectionProbability: (0.5, 0.2, 1))
        XCTAssertEqual(generated.weights, ref.weights)
        XCTAssertEqual(generated.stimulus, ref.stimulus)
    }
}
