import Foundation

// Parameters of NEST 3.10's online e-prop generation (`eprop_iaf`, `eprop_iaf_adapt`, `eprop_iaf_psc_delta`,
// `eprop_iaf_psc_delta_adapt`, `eprop_readout`, `eprop_synapse`), with NEST's names, defaults and units
// (eprop-online-spec.md §1.10). Voltages are absolute, as NEST sets and reads them; the engine keeps them
// relative to E_L.

/// The recurrent neuron model of the online generation (NEST's model names as raw values).
public enum OnlineNeuronModel: String, Codable, CaseIterable, Sendable {
    /// `eprop_iaf`: LIF, reset by subtraction of V_th in the spike's own step; keeps integrating while refractory.
    case eprop_iaf
    /// `eprop_iaf_adapt`: `eprop_iaf` with an adaptive threshold A = V_th + adapt_beta * a.
    case eprop_iaf_adapt
    /// `eprop_iaf_psc_delta`: LIF, reset to V_reset and clamped (input discarded) while refractory.
    case eprop_iaf_psc_delta
    /// `eprop_iaf_psc_delta_adapt`: `eprop_iaf_psc_delta` with an adaptive threshold.
    case eprop_iaf_psc_delta_adapt

    /// Whether the model has the adaptive threshold (and the trace epsilon).
    public var isAdaptive: Bool { self == .eprop_iaf_adapt || self == .eprop_iaf_psc_delta_adapt }
    /// Whether the model is one of the psc_delta pair (V_reset, clamping, `refractory_input`).
    public var isPscDelta: Bool { self == .eprop_iaf_psc_delta || self == .eprop_iaf_psc_delta_adapt }
}

/// A parameter value NEST would reject (or that this engine does not support), naming the parameter and
/// the condition it must meet, in NEST's style ("tau_m > 0 required.").
public struct OnlineParameterError: Error, CustomStringConvertible, Equatable {
    /// NEST's name of the parameter, e.g. `tau_m` or `optimizer.batch_size`.
    public let parameter: String
    /// The condition that failed, e.g. "tau_m > 0 required".
    public let condition: String
    public var description: String { "\(parameter): \(condition)." }
    public init(_ parameter: String, _ condition: String) { (self.parameter, self.condition) = (parameter, condition) }
}

/// Throws `OnlineParameterError(name, condition)` unless `ok`.
@inline(__always) func requireOnline(_ ok: Bool, _ name: String, _ condition: @autoclosure () -> String) throws {
    if !ok { throw OnlineParameterError(name, condition()) }
}

/// Parameters of the recurrent population (NEST 3.10 `GetDefaults` of the four models; §1.10).
public struct OnlineRecurrentParameters: Codable, Equatable, Sendable {
    public var model: OnlineNeuronModel = .eprop_iaf
    /// `C_m` (pF): membrane capacitance; enters only through current input (`I_e`).
    public var cM = 250.0
    /// `E_L` (mV): leak potential (the state is kept relative to it).
    public var eL = -70.0
    /// `I_e` (pA): constant external current (eprop_iaf(_adapt): acts from step 1; psc_delta: from step 0).
    public var iE = 0.0
    /// `tau_m` (ms): membrane time constant, one for the population.
    public var tauM = 10.0
    /// `t_ref` (ms): refractory period (semantics differ per model family, spec §1.8).
    public var tRef = 2.0
    /// `V_th` (mV): spike threshold (absolute).
    public var vTh = -55.0
    /// `V_min` (mV): lower bound of the membrane voltage (absolute); `-greatestFiniteMagnitude` as NEST's -DBL_MAX.
    public var vMin = -Double.greatestFiniteMagnitude
    /// `V_reset` (mV), psc_delta models: voltage after a spike (absolute); must be < V_th and >= V_min.
    public var vReset = -70.0
    /// `refractory_input`, psc_delta models: buffer (decayed) input that arrives while refractory.
    public var refractoryInput = false
    /// `adapt_beta` (1), adaptive models: prefactor of the adaptation in the threshold.
    public var adaptBeta = 1.0
    /// `adapt_tau` (ms), adaptive models: time constant of the adaptation.
    public var adaptTau = 10.0
    /// `c_reg` (1): firing-rate regularization strength.
    public var cReg = 0.0
    /// `f_target` (spikes/s, as it is set in NEST; NEST reads it back in spikes/ms): target rate.
    public var fTarget = 10.0
    /// `kappa` (1): low-pass filter of the eligibility trace, e_bar = kappa e_bar + e (no (1 - kappa)).
    public var kappa = 0.97
    /// `kappa_reg` (1): low-pass filter of the firing rate and of e_bar_reg.
    public var kappaReg = 0.97
    /// `surrogate_gradient_function`.
    public var surrogateGradient: SurrogateGradient = .piecewiseLinear
    /// `surrogate_gradient_height` (1/mV).
    public var surrogateHeight = 0.3
    /// `surrogate_gradient_width` (mV).
    public var surrogateWidth = 1.0
    /// `eprop_isi_trace_cutoff` (ms): of the synapses onto these neurons, only the entries within this time after
    /// a presynaptic spike contribute to the gradient; `.infinity` (NEST's default): all.
    public var isiTraceCutoff = Double.infinity
    /// `flush_event_send_interval` (ms): a neuron without a spike for this long sends a flush event
    /// (numerically neutral; it only moves the time at which NEST's stored weights are brought up to date in
    /// `optimize_each_step` mode). `.infinity`: never.
    public var flushEventSendInterval = Double.infinity

    public init(model: OnlineNeuronModel = .eprop_iaf) { self.model = model }

    /// Checks the values as NEST's `set_status` does (plus what this engine requires), throwing the first failure.
    public func validate(resolution dt: Double) throws {
        try requireOnline(cM > 0, "C_m", "Capacitance C_m > 0 required")
        try requireOnline(tauM > 0, "tau_m", "Membrane time constant tau_m > 0 required")
        try requireOnline(tRef >= 0, "t_ref", "Refractory time t_ref >= 0 required")
        try requireOnline(vTh > vMin, "V_th", "Spike threshold voltage V_th > minimal voltage V_min required")
        if model.isPscDelta {
            try requireOnline(vReset < vTh, "V_reset", "Reset voltage V_reset < spike threshold voltage V_th required")
            try requireOnline(vReset >= vMin, "V_reset", "Reset voltage V_reset >= minimal voltage V_min required")
        }
        if model.isAdaptive {
            try requireOnline(adaptBeta >= 0, "adapt_beta", "Threshold adaptation prefactor adapt_beta >= 0 required")
            try requireOnline(adaptTau > 0, "adapt_tau", "Threshold adaptation time constant adapt_tau > 0 required")
        }
        try requireOnline(cReg >= 0, "c_reg", "Firing rate regularization coefficient c_reg >= 0 required")
        try requireOnline(fTarget >= 0, "f_target", "Firing rate regularization target rate f_target >= 0 required")
        try requireOnline((0...1).contains(kappa), "kappa", "kappa from range [0, 1] required")
        try requireOnline((0...1).contains(kappaReg), "kappa_reg", "kappa_reg from range [0, 1] required")
        try requireOnline(surrogateHeight > 0, "surrogate_gradient_height", "surrogate_gradient_height > 0 required")
        try requireOnline(surrogateWidth > 0, "surrogate_gradient_width", "surrogate_gradient_width > 0 required")
        try validateCutoff(isiTraceCutoff, resolution: dt)
        try requireOnline(flushEventSendInterval > 0, "flush_event_send_interval", "flush_event_send_interval > 0 required")
    }
}

/// Checks `eprop_isi_trace_cutoff`: NEST requires >= 0; this engine also excludes a cutoff of exactly one step,
/// whose spike buffering NEST handles differently (spec §4.1: the spike lands one window late).
func validateCutoff(_ cutoff: Double, resolution dt: Double) throws {
    try requireOnline(cutoff >= 0, "eprop_isi_trace_cutoff", "Cutoff of integration of eprop trace between spikes >= 0 required")
    try requireOnline(
        nestSteps(cutoff, dt) != 1, "eprop_isi_trace_cutoff",
        "a cutoff of 0 or at least 2 steps (\(2 * dt) ms) required (one step is not supported)")
}

/// NEST's `Time::ms(x).get_steps()`: the number of steps nearest to `ms`, `Int.max` for infinity.
func nestSteps(_ ms: Double, _ dt: Double) -> Int {
    ms.isInfinite ? Int.max : Int((ms / dt).rounded())
}

/// `count` recurrent neurons of one model with one parameter set (in NEST: one `Create`).
public struct OnlineRecurrentGroup: Codable, Equatable, Sendable {
    public var count: Int
    public var parameters: OnlineRecurrentParameters

    public init(count: Int, parameters: OnlineRecurrentParameters) { (self.count, self.parameters) = (count, parameters) }
}

/// Parameters of the readouts (`eprop_readout`; §1.7, §1.10).
public struct OnlineReadoutParameters: Codable, Equatable, Sendable {
    /// `C_m` (pF).
    public var cM = 250.0
    /// `E_L` (mV): readout signal y = V + E_L.
    public var eL = 0.0
    /// `I_e` (pA): constant external current, latched at the end of each step (acts from step 1).
    public var iE = 0.0
    /// `tau_m` (ms): membrane time constant; kappa_out = exp(-dt / tau_m) also filters the readout synapses' z_bar.
    public var tauM = 10.0
    /// `V_min` (mV): lower bound of the membrane voltage (absolute).
    public var vMin = -Double.greatestFiniteMagnitude
    /// `eprop_isi_trace_cutoff` (ms) of the synapses recurrent -> readout.
    public var isiTraceCutoff = Double.infinity

    public init() {}

    public func validate(resolution dt: Double) throws {
        try requireOnline(cM > 0, "C_m", "Capacitance C_m > 0 required")
        try requireOnline(tauM > 0, "tau_m", "Membrane time constant tau_m > 0 required")
        try validateCutoff(isiTraceCutoff, resolution: dt)
    }
}

/// The `optimizer` common property of `eprop_synapse` (`models/weight_optimizer.cpp`; §4.3).
public struct OnlineOptimizerParameters: Codable, Equatable, Sendable {
    /// `type`: `gradient_descent` or `adam`.
    public var kind: OptimizerKind = .gradientDescent
    /// `batch_size` (time steps): the optimizer steps when an update index crosses a multiple of it (absolute time).
    public var batchSize = 1
    /// `eta` (1): learning rate. NEST's per-synapse optimizer starts at 1e-4 and takes its first step with the
    /// first value `eta` was ever changed to (see `OnlineSimulation.setEta`).
    public var eta = 1e-4
    /// `optimize_each_step`: one optimizer call per processed history entry (true, NEST's default) or one per
    /// presynaptic spike with the summed gradient (false, the examples).
    public var optimizeEachStep = true
    /// `Wmin`, `Wmax` (pA): weights are clipped to this range after every optimizer step.
    public var wMin = -100.0
    public var wMax = 100.0
    /// Adam's `beta_1`, `beta_2` and `epsilon` (NEST 3.10 defaults).
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-7

    public init(kind: OptimizerKind = .gradientDescent) { self.kind = kind }

    public func validate() throws {
        try requireOnline(batchSize > 0, "optimizer.batch_size", "Optimization batch_size > 0 required")
        try requireOnline(eta >= 0, "optimizer.eta", "Learning rate eta >= 0 required")
        try requireOnline(wMin <= wMax, "optimizer.Wmin", "Minimal weight Wmin <= maximal weight Wmax required")
        if kind == .adam {
            try requireOnline(beta1 >= 0 && beta1 < 1, "optimizer.beta_1", "For Adam optimizer, beta_1 from interval [0,1) required")
            try requireOnline(beta2 >= 0 && beta2 < 1, "optimizer.beta_2", "For Adam optimizer, beta_2 from interval [0,1) required")
            try requireOnline(epsilon >= 0, "optimizer.epsilon", "For Adam optimizer, epsilon >= 0 required")
        }
    }
}

/// How the engine schedules the synapse work (spec §5.1 and §5.3).
public enum OnlineAlgorithm: String, Codable, CaseIterable, Sendable {
    /// NEST's lazy semantics on a time grid (§5.1): per presynaptic column, `t_last`, the cutoff and the pending
    /// decay; per-step or per-spike optimizer calls. Exact for every setting.
    case exact
    /// The plain dense algorithm (§5.3): every synapse processes every entry and calls the optimizer every step.
    /// Exact (equal to `exact`) only with an infinite cutoff and `optimize_each_step`; refused otherwise.
    case everyStep = "every-step"
}

/// Everything that defines an online e-prop network besides its weights and stimulus.
public struct OnlineNetworkParameters: Codable, Equatable, Sendable {
    /// Number of inputs (parrot neurons), recurrent neurons and readouts.
    public var nIn: Int
    public var nRec: Int
    public var nOut: Int
    /// `resolution` (ms): the time step dt.
    public var resolution = 1.0
    /// The recurrent neurons' parameters: all nRec of them, or the first nRec - (the counts of `moreRecurrent`).
    public var recurrent: OnlineRecurrentParameters
    /// Mixed populations (NEST: several `Create` calls joined into one recurrent population, e.g. `eprop_iaf` and
    /// `eprop_iaf_adapt`, or neurons with their own tau_m): the groups after the first, in neuron order. Empty: one
    /// population.
    public var moreRecurrent: [OnlineRecurrentGroup] = []
    public var readout = OnlineReadoutParameters()
    public var optimizer = OnlineOptimizerParameters()
    /// `flush_event_send_interval` (ms) of the input parrot neurons (NEST default infinity).
    public var inputFlushEventSendInterval = Double.infinity
    public var algorithm: OnlineAlgorithm = .exact

    public init(nIn: Int, nRec: Int, nOut: Int, recurrent: OnlineRecurrentParameters) {
        (self.nIn, self.nRec, self.nOut, self.recurrent) = (nIn, nRec, nOut, recurrent)
    }

    /// Every recurrent group in neuron order: the first (`recurrent`) and `moreRecurrent`.
    public var recurrentGroups: [OnlineRecurrentGroup] {
        [OnlineRecurrentGroup(count: nRec - moreRecurrent.reduce(0) { $0 + $1.count }, parameters: recurrent)] + moreRecurrent
    }

    /// The parameters of recurrent neuron j.
    public func recurrentParameters(ofNeuron j: Int) -> OnlineRecurrentParameters {
        var first = 0
        for g in recurrentGroups {
            if j < first + g.count { return g.parameters }
            first += g.count
        }
        preconditionFailure("neuron \(j) of \(nRec)")
    }

    public func validate() throws {
        try requireOnline(nIn > 0, "nIn", "nIn > 0 required")
        try requireOnline(nRec > 0, "nRec", "nRec > 0 required")
        try requireOnline(nOut > 0, "nOut", "nOut > 0 required")
        try requireOnline(resolution > 0, "resolution", "resolution > 0 required")
        try requireOnline(
            moreRecurrent.allSatisfy { $0.count > 0 } && recurrentGroups[0].count > 0, "moreRecurrent",
            "groups of at least one neuron, leaving at least one of nRec = \(nRec) to the first, required")
        for g in recurrentGroups { try g.parameters.validate(resolution: resolution) }
        try readout.validate(resolution: resolution)
        try optimizer.validate()
        try requireOnline(
            inputFlushEventSendInterval > 0, "flush_event_send_interval", "flush_event_send_interval > 0 required (inputs)")
        if algorithm == .everyStep {
            try requireOnline(
                recurrentGroups.allSatisfy { $0.parameters.isiTraceCutoff.isInfinite } && readout.isiTraceCutoff.isInfinite,
                "eprop_isi_trace_cutoff",
                "an infinite cutoff (recurrent and readout) required by the every-step algorithm (use the exact one)")
            try requireOnline(
                optimizer.optimizeEachStep, "optimizer.optimize_each_step",
                "optimize_each_step = true required by the every-step algorithm (use the exact one)")
        }
    }
}

/// Constants derived once from the recurrent parameters and dt (NEST's `Variables_`).
struct OnlineRecurrentConstants {
    /// `P_v_m_` = exp(-dt / tau_m): membrane propagator, also the z_bar filter of synapses onto these neurons.
    let alpha: Double
    /// `P_i_in_` = tau_m / C_m (1 - alpha): propagator of the current input.
    let pI: Double
    /// `P_adapt_` = exp(-dt / adapt_tau) (1 for non-adaptive models; unused there).
    let rho: Double
    /// beta (0 for non-adaptive models).
    let beta: Double
    /// `RefractoryCounts_` = round(t_ref / dt).
    let nRef: Int
    /// Cutoff C in steps (`Int.max`: none).
    let cutoff: Int
    /// f* dt: the target rate in spikes per step (f_target / 1000 * dt, spec §1.6 and §6.18).
    let fTargetPerStep: Double
    /// V_th, V_reset, V_min relative to E_L.
    let vTh: Double, vReset: Double, vMin: Double
    /// Steps between flush events (`Int.max`: none).
    let flushInterval: Int

    init(_ p: OnlineRecurrentParameters, dt: Double) {
        alpha = Foundation.exp(-dt / p.tauM)
        pI = p.tauM / p.cM * (1 - alpha)
        rho = p.model.isAdaptive ? Foundation.exp(-dt / p.adaptTau) : 1
        beta = p.model.isAdaptive ? p.adaptBeta : 0
        nRef = nestSteps(p.tRef, dt)
        cutoff = nestSteps(p.isiTraceCutoff, dt)
        fTargetPerStep = p.fTarget / 1000 * dt
        vTh = p.vTh - p.eL
        vReset = p.vReset - p.eL
        vMin = p.vMin == -Double.greatestFiniteMagnitude ? p.vMin : p.vMin - p.eL
        flushInterval = nestSteps(p.flushEventSendInterval, dt)
    }
}
