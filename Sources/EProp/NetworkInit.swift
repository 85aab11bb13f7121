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
    /// `[nIn, T]` frozen input pattern: 1 where input i spikes at sequence step s.
    public var inputSpikes: Matrix<Double>
    /// `[nOut, T]` target signal of one sequence.
    public var target: Matrix<Double>

    public var nIn: Int { wInRec.cols }
    public var nRec: Int { wInRec.rows }
    public var nOut: Int { wRecOut.rows }
    public var steps: Int { inputSpikes.cols }

    public init(
        wInRec: Matrix<Double>, wRecRec: Matrix<Double>, wRecOut: Matrix<Double>,
        wOutRecFeedback: Matrix<Double>, tauM: Matrix<Double>, inputSpikes: Matrix<Double>,
        target: Matrix<Double>
    ) {
        self.wInRec = wInRec
        self.wRecRec = wRecRec
        self.wRecOut = wRecOut
        self.wOutRecFeedback = wOutRecFeedback
        self.tauM = tauM
        self.inputSpikes = inputSpikes
        self.target = target
    }
}

/// The tutorial "learning to generate an infinite loop": frozen Poisson input, figure-eight target.
public enum InfiniteLoopTask {
    /// Draws weights and input with numpy's legacy `RandomState(seed)` in the tutorial's order
    /// (spec, pitfall 9), each weight matrix rounded to float32 after the division as the
    /// tutorial does. tau_m is then drawn from N(tau_m_mean, tau_m_std) by the same generator:
    /// NEST draws it with its own generator, which cannot be reproduced outside NEST.
    public static func generate(_ c: TrainingConfig) -> NetworkInit {
        var rng = NumpyRandomState(seed: c.seed)
        let (nIn, nRec, nOut, T) = (c.nIn, c.nRec, c.nOut, c.sequence)
        func float32(_ x: Double) -> Double { Double(Float(x)) }

        // 1. randn(n_in, n_rec).T / sqrt(n_in)
        let a = rng.randn(nIn, nRec)
        let wIn = Matrix<Double>(rows: nRec, cols: nIn)
        for j in 0..<nRec { for i in 0..<nIn { wIn[j, i] = float32(a[i][j] / Double(nIn).squareRoot()) } }
        // 2. randn(n_rec, n_rec).T / sqrt(n_rec), diagonal 0 (no autapses)
        let b = rng.randn(nRec, nRec)
        let wRec = Matrix<Double>(rows: nRec, cols: nRec)
        for j in 0..<nRec { for i in 0..<nRec where i != j { wRec[j, i] = float32(b[i][j] / Double(nRec).squareRoot()) } }
        // 3. randn(n_rec, n_out).T / sqrt(n_rec)
        let c3 = rng.randn(nRec, nOut)
        let wOut = Matrix<Double>(rows: nOut, cols: nRec)
        for k in 0..<nOut { for j in 0..<nRec { wOut[k, j] = float32(c3[j][k] / Double(nRec).squareRoot()) } }
        // 4. randn(n_rec, n_out) / sqrt(n_rec), not transposed: B_jk
        let d = rng.randn(nRec, nOut)
        let feedback = Matrix<Double>(rows: nRec, cols: nOut)
        for j in 0..<nRec { for k in 0..<nOut { feedback[j, k] = float32(d[j][k] / Double(nRec).squareRoot()) } }
        // 5. rand(T, n_in) < p, transposed, column 0 cleared (spikes at step 0 are dropped by NEST)
        let u = rng.rand(T, nIn)
        let input = Matrix<Double>(rows: nIn, cols: T)
        for s in 1..<T { for i in 0..<nIn where u[s][i] < c.inputSpikeProb { input[i, s] = 1 } }
        // tau_m ~ N(mean, std), eprop-dense's own draw (see above)
        let tau = Matrix<Double>(rows: 1, cols: nRec)
        for j in 0..<nRec { tau.p[j] = c.recurrent.tauMMean + c.recurrent.tauMStd * rng.normal() }

        return NetworkInit(
            wInRec: wIn, wRecRec: wRec, wRecOut: wOut, wOutRecFeedback: feedback, tauM: tau,
            inputSpikes: input, target: target(nOut: nOut, steps: T))
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
