import Foundation

/// The phases of a training iteration, in the order of the step (README "Performance" accounts
/// for each: its time, its work and the bound that work implies on the machine).
public enum Phase: Int, CaseIterable, Sendable {
    /// Forward pass, per time step: synaptic input (gathers or GEMV), neuron update (membrane,
    /// adaptation, surrogate, spikes), readout (membrane, error, loss), learning signal.
    case synapticInput, neurons, readout, learningSignal
    /// Gradient: the per-neuron backward recursion (with the regularizer), the scatter of its
    /// W~ rows into the gradient (or the gradient GEMMs), and the readout gradient.
    case backwardScan, gradientScatter, readoutGradient
    /// Per iteration: loading sequences, the gradient exchange, recording and loss
    /// bookkeeping, the optimizer step (with the transposed weight copies), the NaN checks.
    case loading, exchange, bookkeeping, optimizer, checks

    /// The name in `run.json`.
    public var name: String { String(describing: self) }
}

/// Wall time per phase, accumulated when profiling (`--profile-phases`). Reading the clock costs
/// about 20 ns, eight times per time step, so runs profile only when asked; a run that does not
/// has no clock, and each lap is one nil check.
public final class PhaseClock: @unchecked Sendable {
    /// `[Phase.allCases.count]` seconds accumulated per phase.
    private let seconds: UnsafeMutablePointer<Double>
    /// Nanoseconds at the last lap.
    private var last: UInt64 = 0

    public init() {
        seconds = .allocate(capacity: Phase.allCases.count)
        seconds.initialize(repeating: 0, count: Phase.allCases.count)
        start()
    }

    deinit { seconds.deallocate() }

    @inline(__always) static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }

    /// Starts timing from now (the time since the last lap counts for no phase).
    @inline(__always) public func start() { last = Self.now() }

    /// Adds the time since the last lap (or start) to `phase`.
    @inline(__always) public func lap(_ phase: Phase) {
        let t = Self.now()
        seconds[phase.rawValue] += Double(t &- last) * 1e-9
        last = t
    }

    /// Seconds per phase so far, and zero again.
    public func take() -> [Double] {
        defer { seconds.update(repeating: 0, count: Phase.allCases.count) }
        return (0..<Phase.allCases.count).map { seconds[$0] }
    }
}
