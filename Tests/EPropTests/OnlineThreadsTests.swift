import EProp
import Foundation
import XCTest

/// Helper threads (`OnlineSimulation(threads:)`) share each entry's synapse columns: results are bitwise those of one
/// thread.
final class OnlineThreadsTests: XCTestCase {
    /// A network above the helpers' threshold (264 + 264 neurons, 140 k synapses), NEST's test setup, drawn from a
    /// seed: per-step Adam with the cutoff, and per-spike gradient descent.
    private func network(perSpike: Bool) -> (OnlineNetworkParameters, OnlineWeights, OnlineStimulus) {
        let (n, T, iterations) = (264, 100, 2)
        var p = OnlineSineWaveTask.parameters(.eprop_iaf, preset: .test)
        (p.nIn, p.nRec) = (n, n)
        p.optimizer.optimizeEachStep = !perSpike
        var rng = NumpyRandomState(seed: 3)
        let scale = 0.03
        let wIn = rng.normalWeights(post: n, pre: n, divisor: Double(n).squareRoot()).flat().map { $0 * scale }
        let wRec = rng.normalWeights(post: n, pre: n, divisor: Double(n).squareRoot(), zeroDiagonal: true).flat().map { $0 * scale }
        let wOut = rng.normalWeights(post: 1, pre: n, divisor: Double(n).squareRoot()).flat().map { $0 * scale }
        let feedback = rng.normalWeights(post: n, pre: 1, divisor: Double(n).squareRoot(), transposed: false).flat()
        let pattern = (0..<n * T).map { _ in rng.uniform() < 0.05 }
        let target = (0..<T).map { sin(Double($0) / 10) }
        let stimulus = OnlineStimulus.frozenPattern(
            pattern: pattern, nIn: n, target: target, nOut: 1, sequence: T, iterations: iterations, steps: iterations * T + 5,
            finalUpdate: perSpike)
        return (p, OnlineWeights(wIn: wIn, wRec: wRec, wOut: wOut, feedback: feedback), stimulus)
    }

    func testTwoThreadsEqualOneBitwise() throws {
        for perSpike in [false, true] {
            let (p, w, s) = network(perSpike: perSpike)
            let one = try OnlineSimulation<Double>(parameters: p, weights: w, stimulus: s, threads: 1)
            let two = try OnlineSimulation<Double>(parameters: p, weights: w, stimulus: s, threads: 2)
            XCTAssertEqual(two.helperThreads, 1, "the network must be large enough for a helper")
            one.run()
            two.run()
            XCTAssertGreaterThan(one.spikeSteps.count, 100)
            XCTAssertEqual(one.loss, two.loss)
            XCTAssertEqual(one.spikeSteps, two.spikeSteps)
            XCTAssertEqual(one.spikeNeurons, two.spikeNeurons)
            for k in OnlineProjectionKind.allCases {
                XCTAssertEqual(one.weights(k, stored: true), two.weights(k, stored: true), "\(k.rawValue), per spike \(perSpike)")
            }
        }
        // Small networks stay on one thread (helpers would cost more than they take over).
        let ref = try OnlineNESTReferenceTests.regressionReference(.eprop_iaf)
        XCTAssertEqual(try OnlineSimulation<Double>(parameters: ref.parameters, weights: ref.weights, stimulus: ref.stimulus, threads: 2).helperThreads, 0)
    }
}
