import Foundation

/// NEST's online sine-wave regression, drawn as NEST's Python scripts draw it (numpy's legacy `RandomState`, float32
/// weights), so that a generated run equals the NEST run of the same seed bit for bit:
/// - `example`: `pynest/examples/eprop_plasticity/eprop_supervised_regression_sine-waves.py` (T = 1000, gradient
///   descent once per spike, the forced final update; weights scaled by 1 - kappa for `eprop_iaf` only);
/// - `test`: `testsuite/pytests/synapses/test_eprop_plasticity.py::test_eprop_regression` (T = 100, Adam for
///   `eprop_iaf` and gradient descent otherwise, an optimizer call every step; both `eprop_iaf` models scaled).
/// 100 frozen-Poisson inputs (p = 0.05, step 0 kept), 100 recurrent neurons, one readout learning a sum of four
/// sines (eprop-online-spec.md §0 and §6.2).
public enum OnlineSineWaveTask {
    public enum Preset: String, Codable, CaseIterable, Sendable {
        case example, test
    }

    /// The parameters the script sets for `model`.
    public static func parameters(_ model: OnlineNeuronModel, preset: Preset) -> OnlineNetworkParameters {
        let T = Double(sequence(preset)), scale = 1 - 0.97
        var r = OnlineRecurrentParameters(model: model)
        (r.cM, r.cReg, r.eL, r.isiTraceCutoff, r.fTarget, r.flushEventSendInterval) = (1, 300 / T, 0, 100, 10, T)
        (r.iE, r.kappa, r.kappaReg, r.surrogateGradient) = (0, 0.97, 0.97, .piecewiseLinear)
        (r.surrogateHeight, r.surrogateWidth, r.tRef, r.tauM, r.vTh) = (10, preset == .example ? 1 / 33.3 : 0.03, 0, 30, 0.03)
        switch model {
        case .eprop_iaf_psc_delta, .eprop_iaf_psc_delta_adapt: (r.vReset, r.cReg, r.vTh) = (-0.5, 2 / T / (scale * scale), 0.5)
        case .eprop_iaf_adapt where preset == .example: r.adaptBeta = 0
        case .eprop_iaf_adapt: (r.adaptBeta, r.adaptTau) = (0.0174, 2000)
        case .eprop_iaf: break
        }
        var p = OnlineNetworkParameters(nIn: 100, nRec: 100, nOut: 1, recurrent: r)
        (p.readout.cM, p.readout.eL, p.readout.isiTraceCutoff, p.readout.iE, p.readout.tauM) = (1, 0, 100, 0, 30)
        p.optimizer = OnlineOptimizerParameters(kind: preset == .test && model == .eprop_iaf ? .adam : .gradientDescent)
        (p.optimizer.batchSize, p.optimizer.eta, p.optimizer.optimizeEachStep) = (1, 1e-4 * (scale * scale), preset == .test)
        return p
    }

    /// Steps per sequence (T).
    public static func sequence(_ preset: Preset) -> Int { preset == .example ? 1000 : 100 }

    /// The run with `seed`: parameters, weights, input pattern and target drawn in the script's order.
    /// - connectionProbability: sparse connectivity (not in the script): after its draws, masks for input ->
    ///   recurrent, recurrent -> recurrent and recurrent -> readout drawn from the same generator as NEST's N-MNIST
    ///   script draws them (`createMask` with sparsity 1 - p); nil: every synapse.
    public static func generate(
        _ model: OnlineNeuronModel, preset: Preset, seed: UInt32 = 1, iterations: Int,
        connectionProbability: (inRec: Double, recRec: Double, recOut: Double)? = nil
    ) -> OnlineRunSpec {
        let p = parameters(model, preset: preset)
        let (nIn, nRec, nOut, T) = (p.nIn, p.nRec, p.nOut, sequence(preset))
        var rng = NumpyRandomState(seed: seed)
        // randn(n_in, n_rec).T / sqrt(n_in), randn(n_rec, n_rec).T / sqrt(n_rec) with a zero diagonal,
        // randn(n_rec, n_out).T / sqrt(n_rec), randn(n_rec, n_out) / sqrt(n_rec): each rounded to float32.
        let wIn = rng.normalWeights(post: nRec, pre: nIn, divisor: Double(nIn).squareRoot())
        let wRec = rng.normalWeights(post: nRec, pre: nRec, divisor: Double(nRec).squareRoot(), zeroDiagonal: true)
        let wOut = rng.normalWeights(post: nOut, pre: nRec, divisor: Double(nRec).squareRoot())
        let feedback = rng.normalWeights(post: nRec, pre: nOut, divisor: Double(nRec).squareRoot(), transposed: false)
        // The scripts rescale in float32 (numpy multiplies a float32 array by a Python float in float32).
        let scale = Float(1 - 0.97)
        func times(_ m: Matrix<Double>) -> [Double] { m.flat().map { Double(Float($0) * scale) } }
        func over(_ m: Matrix<Double>) -> [Double] { m.flat().map { Double(Float($0) / scale) } }
        let scaled: Set<OnlineNeuronModel> = preset == .example ? [.eprop_iaf] : [.eprop_iaf, .eprop_iaf_adapt]
        var weights = OnlineWeights(
            wIn: scaled.contains(model) ? times(wIn) : wIn.flat(), wRec: scaled.contains(model) ? times(wRec) : wRec.flat(),
            wOut: times(wOut), feedback: scaled.contains(model) ? times(feedback) : model.isPscDelta ? over(feedback) : feedback.flat())
        // rand(T, n_in) < 0.05, transposed to [n_in, T]; step 0 is kept (the parrots relay it).
        let u = rng.rand(T, nIn)
        var pattern = [Bool](repeating: false, count: nIn * T)
        for s in 0..<T { for i in 0..<nIn where u[s][i] < 0.05 { pattern[i * T + s] = true } }
        var target: [Double] = []
        for _ in 0..<nOut { target += InfiniteLoopTask.superimposedSines(&rng, steps: T, periods: [1000, 500, 333, 200]) }
        if let p = connectionProbability {
            weights.maskIn = rng.createMask(&weights.wIn, sparsity: 1 - p.inRec)
            weights.maskRec = rng.createMask(&weights.wRec, sparsity: 1 - p.recRec)
            weights.maskOut = rng.createMask(&weights.wOut, sparsity: 1 - p.recOut)
        }
        let stimulus = OnlineStimulus.frozenPattern(
            pattern: pattern, nIn: nIn, target: target, nOut: nOut, sequence: T, iterations: iterations,
            steps: iterations * T + 5, finalUpdate: preset == .example)
        return OnlineRunSpec(
            parameters: p, weights: weights, stimulus: stimulus, task: .frozenPattern(pattern: pattern, target: target),
            source: "NEST's sine-wave \(preset.rawValue), seed \(seed)")
    }
}
