import Foundation

/// The initial state of a network and its task, in double precision and NEST's layout
/// (weights `[post, pre]`). It comes from the tutorial's generator (`InfiniteLoopTask`) or a
/// NEST export (`NESTExport`), and is converted to the engine's scalar by `Network`.
public struct NetworkInit: Sendable {
    /// `[nRec, nIn]` input -> recurrent weights (pA).
    public var wInRec: Matrix<Double>
    /// `[nRec, nRec]` recurrent weights (pA), zero diagonal.
    public var wRecRec: Matrix<Double>
    /// `[nOut, nRec]` recurrent -> readout weights (pA).
    public var wRecOut: Matrix<Double>
    /// `[nRec, nOut]` fixed random feedback weights B_jk (pA).
    public var wOutRecFeedback: Matrix<Double>
    /// `[1, nRec]` membrane time constant of each recurrent neuron (ms).
    public var tauM: Matrix<Double>
    /// Input `[nIn, T]` (1 where input i spikes at step s) and target `[nOut, T]` of each sequence.
    public var patterns: Patterns

    public var nIn: Int { wInRec.cols }
    public var nRec: Int { wInRec.rows }
    public var nOut: Int { wRecOut.rows }
    public var steps: Int { patterns.steps }
    /// The first sequence's input pattern and target (the only ones of a frozen task).
    public var inputSpikes: Matrix<Double> { patterns.sequence(0).input }
    public var target: Matrix<Double> { patterns.sequence(0).target }

    public init(
        wInRec: Matrix<Double>, wRecRec: Matrix<Double>, wRecOut: Matrix<Double>,
        wOutRecFeedback: Matrix<Double>, tauM: Matrix<Double>, patterns: Patterns
    ) {
        self.wInRec = wInRec
        self.wRecRec = wRecRec
        self.wRecOut = wRecOut
        self.wOutRecFeedback = wOutRecFeedback
        self.tauM = tauM
        self.patterns = patterns
    }

    /// A frozen task: the same input and target in every sequence.
    public init(
        wInRec: Matrix<Double>, wRecRec: Matrix<Double>, wRecOut: Matrix<Double>,
        wOutRecFeedback: Matrix<Double>, tauM: Matrix<Double>, inputSpikes: Matrix<Double>,
        target: Matrix<Double>
    ) {
        self.init(wInRec: wInRec, wRecRec: wRecRec, wRecOut: wRecOut, wOutRecFeedback: wOutRecFeedback, tauM: tauM,
                  patterns: Patterns(fixed: [(inputSpikes, target)]))
    }
}

/// The frozen regression tasks: NEST's tutorial "learning to generate an infinite loop"
/// (figure-eight target) and NEST's test_eprop_regression (superimposed sines).
public enum InfiniteLoopTask {
    /// Draws weights and input with numpy's legacy `RandomState(seed)` in the tutorial's order
    /// (docs/mathematics.md §7.4), each weight matrix rounded to float32 after the division as the
    /// tutorial does. tau_m is then drawn from N(tau_m_mean, tau_m_std) by the same generator:
    /// NEST draws it with its own generator, which cannot be reproduced outside NEST.
    public static func generate(_ c: TrainingConfig) -> NetworkInit {
        var rng = NumpyRandomState(seed: c.seed)
        let (nIn, nRec, nOut, T) = (c.nIn, c.nRec, c.nOut, c.sequence)
        // 1. randn(n_in, n_rec).T / sqrt(n_in); 2. randn(n_rec, n_rec).T / sqrt(n_rec), diagonal 0;
        // 3. randn(n_rec, n_out).T / sqrt(n_rec); 4. randn(n_rec, n_out) / sqrt(n_rec), not transposed: B_jk
        let wIn = rng.normalWeights(post: nRec, pre: nIn, divisor: Double(nIn).squareRoot())
        let wRec = rng.normalWeights(post: nRec, pre: nRec, divisor: Double(nRec).squareRoot(), zeroDiagonal: true)
        let wOut = rng.normalWeights(post: nOut, pre: nRec, divisor: Double(nRec).squareRoot())
        let feedback = rng.normalWeights(post: nRec, pre: nOut, divisor: Double(nRec).squareRoot(), transposed: false)
        // 5. rand(T, n_in) < p, transposed, column 0 cleared (spikes at step 0 are dropped by NEST)
        let u = rng.rand(T, nIn)
        let input = Matrix<Double>(rows: nIn, cols: T)
        for s in 1..<T { for i in 0..<nIn where u[s][i] < c.inputSpikeProb { input[i, s] = 1 } }
        let target: Matrix<Double>
        if c.task == .sineWaves {
            target = Matrix(rows: nOut, cols: T)
            for k in 0..<nOut {
                let sines = superimposedSines(&rng, steps: T, periods: [1000, 500, 333, 200])
                for s in 0..<T { target[k, s] = sines[s] }
            }
        } else {
            target = Self.target(nOut: nOut, steps: T)
        }
        // tau_m ~ N(mean, std), eprop-dense's own draw (see above); std 0: fixed, no draw.
        let tau = Matrix<Double>(rows: 1, cols: nRec)
        for j in 0..<nRec { tau.p[j] = c.recurrent.tauMMean + (c.recurrent.tauMStd == 0 ? 0 : c.recurrent.tauMStd * rng.normal()) }

        return NetworkInit(
            wInRec: wIn, wRecRec: wRec, wRecOut: wOut, wOutRecFeedback: feedback, tauM: tau,
            inputSpikes: input, target: target)
    }

    /// NEST's test target: sines of the given periods with amplitudes U(0.5, 2) and phases
    /// U(0, 2 pi), summed, shifted to start at 0 and scaled to a maximum magnitude of 1.
    static func superimposedSines(_ rng: inout NumpyRandomState, steps T: Int, periods: [Int]) -> [Double] {
        let amplitudes = periods.map { _ in 0.5 + 1.5 * rng.uniform() }
        let phases = periods.map { _ in 2 * Double.pi * rng.uniform() }
        var sum = [Double](repeating: 0, count: T)
        for (n, period) in periods.enumerated() {
            let stop = phases[n] + 2 * Double.pi * Double(T / period)
            let step = (stop - phases[n]) / Double(T - 1)
            for s in 0..<T { sum[s] += amplitudes[n] * Foundation.sin(s == T - 1 ? stop : phases[n] + Double(s) * step) }
        }
        let first = sum[0]
        for s in 0..<T { sum[s] -= first }
        let scale = max(sum.map(abs).max() ?? 0, 1e-6)
        return sum.map { $0 / scale }
    }

    /// Readout k follows sin(linspace(0, 2 (k+1) pi, T)): the figure eight for two readouts.
    public static func target(nOut: Int, steps T: Int) -> Matrix<Double> {
        let m = Matrix<Double>(rows: nOut, cols: T)
        for k in 0..<nOut {
            let stop = 2 * Double(k + 1) * Double.pi
            let step = stop / Double(T - 1)  // numpy.linspace: i * step, last element = stop
            for s in 0..<T { m[k, s] = Foundation.sin(s == T - 1 ? stop : Double(s) * step) }
        }
        return m
    }
}
