/// The kernel a run uses, and why (`run.json` `kernel`).
///
/// Both kernels compute the same sums. Per time step the sparse kernel adds one weight row per
/// presynaptic spike, so its work grows with the spike density d (the fraction of the nIn + nRec
/// presynaptic neurons that spike in a step); the BLAS kernel multiplies whole matrices whatever
/// the spikes. `auto` takes BLAS when d is above `crossoverDensity`, measured on the run's first
/// sequence with its initial weights: one forward pass before the first iteration, the same in
/// every process and on resume, so the choice is reproducible.
public struct KernelResolution: Codable, Equatable, Sendable {
    /// What the configuration asked for.
    public let requested: KernelChoice
    /// What the run uses.
    public let used: Kernel
    /// `auto`: the presynaptic spike density of the first sequence (spikes per neuron and step).
    public let density: Double?
    /// `auto`: the density above which the BLAS kernel is the faster.
    public let crossoverDensity: Double?
    /// In words, for `run.json` and the log.
    public let reason: String

    enum CodingKeys: String, CodingKey {
        case requested, used, density, reason
        case crossoverDensity = "crossover_density"
    }

    /// Where BLAS starts to win: the BLAS kernel's cost per synapse and step over the sparse
    /// kernel's per presynaptic spike and postsynaptic neuron, in the two phases the choice
    /// changes (synaptic input and gradient scatter). Measured with `--profile-phases` on the
    /// tutorial (n_rec 200, 300 iterations, 2.3 % density, Float32, this project's 2-core AMD EPYC
    /// machine, 2026-12-02): BLAS 0.042 ns per synapse and step, sparse 0.20 ns per spike and
    /// neuron, so equal at 21 %. These networks spike far less (tutorial 0.3-2.3 %, evidence
    /// accumulation 1-2 %, n_rec 1600 0.5 %), so `auto` keeps the sparse kernel for them.
    public static let crossoverDensity = 0.21

    /// A kernel fixed by the configuration.
    public init(fixed kernel: Kernel) {
        (requested, used, density, crossoverDensity) = (KernelChoice(rawValue: kernel.rawValue)!, kernel, nil, nil)
        reason = "\(kernel.rawValue), as configured"
    }

    /// `auto` at presynaptic spike density `density`.
    public init(autoAtDensity density: Double) {
        let crossover = Self.crossoverDensity
        (requested, self.density, crossoverDensity) = (.auto, density, crossover)
        used = density > crossover ? .blas : .sparse
        reason = String(format: "auto: %.3g %% of the presynaptic neurons spike per step in the first sequence, %@ the crossover %.3g %% above which the BLAS kernel is faster",
                        density * 100, density > crossover ? "above" : "below", crossover * 100)
    }

    /// Resolves `choice` for a network: for `auto`, simulates one sequence that `load` puts
    /// into `seq` (forward only, sparse kernel) and measures its density.
    static func resolve<S: Scalar>(_ choice: KernelChoice, _ net: Network<S>, _ seq: SequenceBuffers<S>, learningWindow: Int, load: () -> Void) -> KernelResolution {
        if let kernel = choice.fixed { return KernelResolution(fixed: kernel) }
        load()
        seq.forward(net, learningWindow: learningWindow, kernel: .sparse)
        let (rows, T) = (seq.batch * seq.steps, seq.steps)
        var spikes = 0
        for r in 0..<rows { spikes += seq.inputSpikes.count[r] + seq.recurrentSpikes.count[r] }
        return KernelResolution(autoAtDensity: Double(spikes) / Double(seq.batch * T * (seq.nIn + seq.nRec)))
    }
}
