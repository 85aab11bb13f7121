import Foundation

/// Recurrent neuron model (NEST name in the doc).
public enum NeuronModel: String, Codable, CaseIterable, Sendable {
    /// `eprop_iaf_adapt_bsshslm_2020`: LIF with an adaptive threshold.
    case alif
    /// `eprop_iaf_bsshslm_2020`: LIF without adaptation (beta = 0).
    case lif
}

/// Surrogate gradient psi(d) of the recurrent neurons, d = v - A (docs/mathematics.md §1.1; NEST 3.10 names).
public enum SurrogateGradient: String, Codable, CaseIterable, Sendable {
    case piecewiseLinear = "piecewise_linear"
    case exponential = "exponential"
    case fastSigmoidDerivative = "fast_sigmoid_derivative"
    case arctanDerivative = "arctan_derivative"
}

/// Loss of the readouts (NEST `loss`).
public enum LossFunction: String, Codable, CaseIterable, Sendable {
    /// Regression: y = u + E_L, err = y - y*, E = 0.5 sum (y - y*)^2.
    case meanSquaredError = "mean-squared-error"
    /// Classification: pi = softmax(u) across readouts (no max subtraction, as NEST),
    /// err = pi - pi*, E = -sum pi* log pi.
    case crossEntropy = "cross-entropy"
}

/// Feedback weights B of the learning signal L = B err.
public enum FeedbackKind: String, Codable, CaseIterable, Sendable {
    /// Random and fixed (NEST, the e-prop paper's "random e-prop").
    case random
    /// B follows the current readout weights, B = W_out^T (the paper's "symmetric e-prop").
    case symmetric
}

/// The task a run trains on (input pattern and target of every sequence).
public enum TaskKind: String, Codable, CaseIterable, Sendable {
    /// NEST's tutorial: frozen Poisson input, figure-eight target (2 readouts, MSE).
    case infiniteLoop = "infinite-loop"
    /// NEST's test_eprop_regression: frozen Poisson input, a superposition of sines (1 readout).
    case sineWaves = "sine-waves"
    /// Cue-based left/right decision of the e-prop paper and NEST's classification example
    /// (new trials every iteration, cross entropy, decision in the recall window).
    case evidenceAccumulation = "evidence-accumulation"
    /// Classification of the samples of an event dataset (`TrainingConfig.trainData`, SHD,
    /// N-MNIST or your own in the event-list format, docs/event-format.md): one sample per
    /// sequence, a new random order every epoch, cross entropy, decision over the learning window.
    case eventClassification = "event-classification"
}

public enum OptimizerKind: String, Codable, CaseIterable, Sendable {
    case adam
    case gradientDescent = "gradient-descent"
}

/// How the e-prop gradient is computed; both give the same gradient up to rounding.
public enum GradientMethod: String, Codable, CaseIterable, Sendable {
    /// Eligibility traces kept as `[nRec, nPre]` matrices and advanced every step (docs/mathematics.md §5.2,
    /// the NEST/TensorFlow formulation).
    case traces
    /// Exact per-neuron backward recursion plus one GEMM per weight matrix (docs/mathematics.md §5.4).
    case adjoint
    /// Not e-prop: backpropagation through time, the exact gradient of the simulated network
    /// with the surrogate derivative at the spikes (docs/mathematics.md §5.5).
    case bptt
}

/// How spikes enter sums: dense BLAS products over the 0/1 spike matrices (the reference), or
/// gathers and scatters over the spikes that occurred (equal up to summation order, faster at
/// the 1-10 % activity of these networks).
public enum Kernel: String, Codable, CaseIterable, Sendable {
    case blas
    case sparse
}

/// The kernel a run asks for: one of the two, or `auto`, which picks the faster one for the
/// run's spike density before the first iteration (`KernelResolution`).
public enum KernelChoice: String, Codable, CaseIterable, Sendable {
    case auto
    case blas
    case sparse

    /// The kernel asked for by name, nil for `auto`.
    public var fixed: Kernel? { Kernel(rawValue: rawValue) }
}

public enum Precision: String, Codable, CaseIterable, Sendable {
    case float, double
}

/// Parameters of the recurrent population (`eprop_iaf_adapt_bsshslm_2020`), as the tutorial sets them.
public struct RecurrentParameters: Codable, Equatable, Sendable {
    public var model: NeuronModel = .alif
    /// With `alif`: how many recurrent neurons adapt, the last ones (NEST's classification example
    /// creates 50 LIF, then 50 ALIF neurons); `nil`: all.
    public var nAdaptive: Int? = nil
    /// `adapt_tau` (ms): time constant of the adaptive threshold.
    public var adaptTau = 2000.0
    /// `adapt_beta` (1): prefactor of the adaptive threshold. `nil`: the tutorial's
    /// 1.7 (1 - exp(-1/adapt_tau)) / (1 - exp(-1/tau_m_mean)).
    public var adaptBeta: Double? = nil
    /// `C_m` (pF): membrane capacitance; only scales the external current `I_e`.
    public var cM = 250.0
    /// `c_reg` (1): firing-rate regularization strength.
    public var cReg = 150.0
    /// `E_L` (mV): resting potential (the state is kept relative to it).
    public var eL = 0.0
    /// `f_target` (spikes/s): target rate of the regularizer.
    public var fTarget = 20.0
    /// `gamma` (1), NEST 3.8 form: surrogate height = gamma / V_th unless `surrogateHeight` is set.
    public var gamma = 0.3
    /// `surrogate_gradient_height` (1/mV), NEST 3.10 form; `nil`: gamma / V_th.
    public var surrogateHeight: Double? = nil
    /// `surrogate_gradient_width` (mV), NEST 3.10 form; `nil`: V_th.
    public var surrogateWidth: Double? = nil
    /// `I_e` (pA): constant external current.
    public var iE = 0.0
    /// `regular_spike_arrival`: false scales spike input by (1 - exp(-dt/tau_m)), true by 1.
    public var regularSpikeArrival = false
    /// `surrogate_gradient_function`.
    public var surrogateGradient: SurrogateGradient = .piecewiseLinear
    /// `t_ref` (ms): refractory period.
    public var tRef = 0.0
    /// Mean of the per-neuron `tau_m` (ms); also the tau in the tutorial's `adapt_beta`.
    public var tauMMean = 30.0
    /// Standard deviation of the per-neuron `tau_m` (ms).
    public var tauMStd = 2.0
    /// `V_th` (mV): base spike threshold (absolute).
    public var vTh = 0.03
    /// `V_min` (mV): lower bound of the membrane voltage (absolute); `-infinity`: none.
    public var vMin = -Double.infinity

    public init() {}

    public var resolvedAdaptBeta: Double { model == .alif ? resolvedAdaptBeta(adaptive: true) : 0 }

    /// beta of an adaptive neuron.
    public func resolvedAdaptBeta(adaptive: Bool) -> Double {
        guard adaptive else { return 0 }
        return adaptBeta ?? 1.7 * (1 - Foundation.exp(-1 / adaptTau)) / (1 - Foundation.exp(-1 / tauMMean))
    }
    public var resolvedHeight: Double { surrogateHeight ?? gamma / (vTh - eL) }
    public var resolvedWidth: Double { surrogateWidth ?? (vTh - eL) }
}

/// Parameters of the readout population (`eprop_readout_bsshslm_2020`, mean squared error).
public struct ReadoutParameters: Codable, Equatable, Sendable {
    /// `loss`.
    public var loss: LossFunction = .meanSquaredError
    /// `tau_m` (ms) of the readouts; also the synapses' `tau_m_readout` (the filter kappa).
    public var tauM = 50.0
    /// `C_m` (pF): only scales `I_e`.
    public var cM = 1.0
    /// `E_L` (mV).
    public var eL = 0.0
    /// `I_e` (pA).
    public var iE = 0.0
    /// `regular_spike_arrival`.
    public var regularSpikeArrival = false
    public init() {}
}

/// Optimizer of `eprop_synapse_bsshslm_2020` (NEST's `optimizer` dictionary).
public struct OptimizerParameters: Codable, Equatable, Sendable {
    public var kind: OptimizerKind = .adam
    /// `batch_size`: consecutive sequences whose mean gradient makes one optimizer step.
    public var batchSize = 1
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-8
    /// `eta`: learning rate.
    public var eta = 5e-3
    /// `Wmin`, `Wmax` (pA): weights are clipped to this range after every step.
    public var wMin = -100.0
    public var wMax = 100.0
    public init() {}
}

/// Everything that defines a training run.
public struct TrainingConfig: Codable, Equatable, Sendable {
    public var task: TaskKind = .infiniteLoop
    public var feedback: FeedbackKind = .random
    public var nIn = 100
    public var nRec = 200
    public var nOut = 2
    /// `steps["sequence"]`: time steps (of 1 ms) per sequence = per update interval.
    public var sequence = 1258
    /// `steps["learning_window"]`: the last steps of each sequence with a non-zero error; `nil`: the whole sequence.
    public var learningWindow: Int? = nil
    /// Training iterations; one iteration is one batch of `optimizer.batchSize` sequences.
    public var iterations = 5
    /// `input_spike_prob`: spike probability per step of the frozen Poisson input.
    public var inputSpikeProb = 0.05
    /// numpy seed of weights and input (and, in eprop-dense, of tau_m).
    public var seed: UInt32 = 1
    /// `average_gradient`: divide the gradient by the learning window.
    public var averageGradient = false
    /// Reproduce NEST's missing L(T-1) term for inputs that spike at step 1 of the next sequence (docs/mathematics.md §6.2).
    public var nestMissingLearningSignal = true
    /// With `gradient` bptt: whether the reset -V_th z(s-1) carries gradient (the exact derivative).
    public var bpttThroughReset = true
    /// Also compute the BPTT gradient of every batch (same weights, same batch, not used for
    /// training) and report how the e-prop gradient compares with it.
    public var compareGradients = false
    public var recurrent = RecurrentParameters()
    public var readout = ReadoutParameters()
    public var optimizer = OptimizerParameters()
    public var precision: Precision = .float
    public var gradient: GradientMethod = .adjoint
    public var kernel: KernelChoice = .auto
    /// Worker threads simulating the shards of a batch (results do not depend on it).
    public var threads = 1
    /// Task event-classification: the event-list `.npz` of the training split
    /// (docs/event-format.md); its sizes are n_in, n_out (the classes) and sequence.
    public var trainData: String? = nil
    /// An event-list `.npz` of a held-out split, evaluated with frozen weights every
    /// `evaluateEvery` iterations and after the last.
    public var testData: String? = nil
    /// Evaluate on `testData` every this many iterations (nil or 0: after the last only).
    public var evaluateEvery: Int? = nil

    public init() {}

    public var resolvedLearningWindow: Int { learningWindow ?? sequence }

    /// Checks every parameter; the error names the parameter and the condition it must meet.
    public func validate() throws {
        func require(_ ok: Bool, _ name: String, _ condition: String) throws {
            if !ok { throw ConfigError(parameter: name, requirement: condition) }
        }
        // Every real-valued parameter must be a number first: "eta > 0 required" is no help for
        // --eta inf, and a NaN gamma must not be blamed on the surrogate height it sets.
        let r = recurrent, o = optimizer
        let reals: [(Double?, String, String)] = [
            (inputSpikeProb, "input_spike_prob", ""), (r.tauMMean, "tau_m_mean", "ms"), (r.tauMStd, "tau_m_std", "ms"),
            (r.adaptTau, "adapt_tau", "ms"), (r.adaptBeta, "adapt_beta", ""), (r.cM, "C_m", "pF"), (r.cReg, "c_reg", ""),
            (r.eL, "E_L", "mV"), (r.fTarget, "f_target", "spikes/s"), (r.gamma, "gamma", ""),
            (r.surrogateHeight, "surrogate_gradient_height", "1/mV"), (r.surrogateWidth, "surrogate_gradient_width", "mV"),
            (r.iE, "I_e", "pA"), (r.tRef, "t_ref", "ms"), (r.vTh, "V_th", "mV"), (r.vMin.isNaN ? r.vMin : nil, "V_min", "mV"),
            (readout.tauM, "readout.tau_m", "ms"), (readout.cM, "readout.C_m", "pF"), (readout.eL, "readout.E_L", "mV"),
            (readout.iE, "readout.I_e", "pA"), (o.eta, "eta", ""), (o.beta1, "beta_1", ""), (o.beta2, "beta_2", ""),
            (o.epsilon, "epsilon", ""), (o.wMin.isNaN ? o.wMin : nil, "Wmin", "pA"), (o.wMax.isNaN ? o.wMax : nil, "Wmax", "pA"),
        ]
        for case let (value?, name, unit) in reals where !value.isFinite {
            try require(false, name, "a finite number required\(unit.isEmpty ? "" : " (\(unit))"), got \(value)")
        }
        try require(nIn > 0, "n_in", "n_in > 0 required (number of input neurons)")
        try require(nRec > 0, "n_rec", "n_rec > 0 required (number of recurrent neurons)")
        try require(nOut > 0, "n_out", "n_out > 0 required (number of readout neurons)")
        try require(sequence >= 2, "sequence", "sequence >= 2 time steps required")
        let lw = resolvedLearningWindow
        try require(lw >= 1 && lw <= sequence, "learning_window", "1 <= learning_window <= sequence (\(sequence)) required")
        try require(iterations >= 1, "iterations", "iterations >= 1 required")
        try require(inputSpikeProb >= 0 && inputSpikeProb <= 1, "input_spike_prob", "0 <= input_spike_prob <= 1 required")
        try require(threads >= 1, "threads", "threads >= 1 required")
        try require(r.tauMMean > 0, "tau_m_mean", "tau_m_mean > 0 required (ms)")
        try require(r.tauMStd >= 0, "tau_m_std", "tau_m_std >= 0 required (ms)")
        try require(r.adaptTau > 0, "adapt_tau", "adapt_tau > 0 required (ms)")
        try require(r.resolvedAdaptBeta >= 0, "adapt_beta", "adapt_beta >= 0 required")
        try require(r.cM > 0, "C_m", "C_m > 0 required (pF)")
        try require(r.model == .alif || r.nAdaptive == nil, "n_adaptive", "n_adaptive applies to the adaptive model only (model alif)")
        try require((r.nAdaptive ?? 0) >= 0 && (r.nAdaptive ?? 0) <= nRec, "n_adaptive", "0 <= n_adaptive <= n_rec (\(nRec)) required")
        try require(readout.loss == .meanSquaredError || nOut >= 2, "n_out", "n_out >= 2 required for the cross-entropy loss (softmax across readouts)")
        try require(r.cReg >= 0, "c_reg", "c_reg >= 0 required")
        try require(r.fTarget >= 0, "f_target", "f_target >= 0 required (spikes/s)")
        try require(r.gamma >= 0, "gamma", "gamma >= 0 required")
        try require(r.vTh > r.eL, "V_th", "V_th > E_L required (mV)")
        try require(r.vMin < r.vTh, "V_min", "V_min < V_th required (mV)")
        try require(r.tRef >= 0, "t_ref", "t_ref >= 0 required (ms)")
        try require(r.resolvedHeight >= 0, "surrogate_gradient_height", "surrogate_gradient_height >= 0 required")
        try require(r.resolvedWidth > 0, "surrogate_gradient_width", "surrogate_gradient_width > 0 required (mV)")
        try require(readout.tauM > 0, "readout.tau_m", "readout tau_m > 0 required (ms)")
        try require(readout.cM > 0, "readout.C_m", "readout C_m > 0 required (pF)")
        try require(o.batchSize >= 1, "batch_size", "batch_size >= 1 required")
        try require(o.eta > 0, "eta", "eta > 0 required")
        try require(o.beta1 >= 0 && o.beta1 < 1, "beta_1", "0 <= beta_1 < 1 required")
        try require(o.beta2 >= 0 && o.beta2 < 1, "beta_2", "0 <= beta_2 < 1 required")
        try require(o.epsilon > 0, "epsilon", "epsilon > 0 required")
        try require(o.wMin <= o.wMax, "Wmin", "Wmin <= Wmax required (pA)")
        try require((task == .eventClassification) == (trainData != nil), "train_data",
                    task == .eventClassification ? "task event-classification trains on an event dataset: give its training split (.npz, docs/event-format.md)" : "an event dataset is trained with task event-classification")
        try require(trainData == nil || readout.loss == .crossEntropy, "loss", "event datasets are labelled classes: use the cross-entropy loss")
        try require(testData == nil || trainData != nil, "test_data", "held-out evaluation needs a training split (train_data) of the same kind")
        try require((evaluateEvery ?? 0) >= 0, "evaluate_every", "evaluate_every >= 0 required (0: after the last iteration only)")
        try require(evaluateEvery == nil || testData != nil, "evaluate_every", "evaluations need a held-out split (test_data)")
        try require(!(compareGradients && gradient == .bptt), "compare_gradients", "compares e-prop with BPTT: use it with gradient adjoint or traces")
        try require((gradient != .bptt && !compareGradients) || r.vMin == -.infinity, "V_min", "a finite V_min is not supported with gradient bptt (the clamp's derivative is not tracked)")
    }
}

/// A parameter that violates its condition. `parameter` is the library's name of it (NEST's name
/// where NEST has one, `readout.` in front of a readout's); a front end maps it to its own.
public struct ConfigError: Error, CustomStringConvertible {
    public let parameter: String
    public let requirement: String
    public init(parameter: String, requirement: String) {
        (self.parameter, self.requirement) = (parameter, requirement)
    }
    public var description: String { "invalid \(parameter): \(requirement)" }
}
