import Foundation

/// Constants derived once from the parameters and the time step (dt = 1 ms), in the engine's
/// scalar. Voltages are relative to E_L, as NEST keeps them (docs/mathematics.md §1.1).
/// A class: the time step takes it every step, and copying a struct of five matrices cost
/// five retains and releases each time (3 % of a tutorial iteration).
public final class Propagators<S: Scalar>: Sendable {
    /// `[1, nRec]` membrane propagator alpha_j = exp(-dt / tau_m,j).
    public let alpha: Matrix<S>
    /// `[1, nRec]` spike input scale zeta_j: 1 - alpha_j, or 1 with regular spike arrival.
    public let zeta: Matrix<S>
    /// `[1, nRec]` external-current propagator (tau_m,j / C_m)(1 - alpha_j) (mV/pA).
    public let currentScale: Matrix<S>
    /// Adaptation propagator rho = exp(-dt / adapt_tau).
    public let rho: S
    /// `[1, nRec]` adaptation prefactor beta_j (0 for plain LIF neurons).
    public let beta: Matrix<S>
    /// Readout propagator kappa = exp(-dt / tau_m,out); also the eligibility filter.
    public let kappa: S
    /// Readout spike input scale: 1 - kappa, or 1 with regular spike arrival.
    public let zetaOut: S
    /// Readout external-current propagator (tau_out / C_m,out)(1 - kappa).
    public let currentScaleOut: S
    /// V_th - E_L (mV): base threshold, and the size of the reset.
    public let vTh: S
    /// V_min - E_L (mV), or -infinity.
    public let vMin: S
    /// Surrogate height h (1/mV) and width w (mV).
    public let height: S
    public let width: S
    public let surrogate: SurrogateGradient
    /// Refractory steps n_ref = round(t_ref / dt); a spike blocks steps s+1 ... s+n_ref-1.
    public let refractorySteps: Int32
    /// Target rate f* in spikes per step.
    public let fTargetPerStep: S
    /// I_e of the recurrent neurons and of the readouts (pA).
    public let iE: S
    public let iEOut: S
    /// E_L of the readouts (mV): y = u + E_L.
    public let eLOut: S

    public init(config c: TrainingConfig, tauM: Matrix<Double>) {
        let dt = 1.0
        let r = c.recurrent
        let n = tauM.count
        alpha = Matrix(rows: 1, cols: n)
        zeta = Matrix(rows: 1, cols: n)
        currentScale = Matrix(rows: 1, cols: n)
        for j in 0..<n {
            let a = Foundation.exp(-dt / tauM.p[j])
            alpha.p[j] = S(a)
            zeta.p[j] = S(r.regularSpikeArrival ? 1 : 1 - a)
            currentScale.p[j] = S(tauM.p[j] / r.cM * (1 - a))
        }
        rho = S(Foundation.exp(-dt / r.adaptTau))
        // The last nAdaptive neurons adapt (NEST's examples create the LIF population first).
        beta = Matrix(rows: 1, cols: n)
        let adaptive = r.model == .lif ? 0 : min(r.nAdaptive ?? n, n)
        for j in (n - adaptive)..<n { beta.p[j] = S(r.resolvedAdaptBeta(adaptive: true)) }
        let k = Foundation.exp(-dt / c.readout.tauM)
        kappa = S(k)
        zetaOut = S(c.readout.regularSpikeArrival ? 1 : 1 - k)
        currentScaleOut = S(c.readout.tauM / c.readout.cM * (1 - k))
        vTh = S(r.vTh - r.eL)
        vMin = r.vMin == -.infinity ? -.infinity : S(r.vMin - r.eL)
        height = S(r.resolvedHeight)
        width = S(r.resolvedWidth)
        surrogate = r.surrogateGradient
        refractorySteps = Int32((r.tRef / dt).rounded())
        fTargetPerStep = S(r.fTarget * dt / 1000)
        iE = S(r.iE)
        iEOut = S(c.readout.iE)
        eLOut = S(c.readout.eL)
    }

    /// Replaces each distance d = v - A in `d[0 ..< count]` by psi(d), or 0 where the neuron is
    /// refractory. One loop per function, so that each vectorizes.
    @inline(__always) func surrogateGradient(_ d: UnsafeMutablePointer<S>, count: Int, refractory: UnsafePointer<Int32>) {
        let (h, w) = (height, width)
        switch surrogate {
        case .piecewiseLinear: for j in 0..<count { d[j] = refractory[j] == 0 ? Self.piecewiseLinear(abs(d[j]) / w, h) : 0 }
        case .exponential: for j in 0..<count { d[j] = refractory[j] == 0 ? Self.exponential(abs(d[j]) / w, h) : 0 }
        case .fastSigmoidDerivative: for j in 0..<count { d[j] = refractory[j] == 0 ? Self.fastSigmoidDerivative(abs(d[j]) / w, h) : 0 }
        case .arctanDerivative: for j in 0..<count { d[j] = refractory[j] == 0 ? Self.arctanDerivative(abs(d[j]) / w, h) : 0 }
        }
    }

    // The four surrogate gradients psi of x = |v - A| / width with height h (docs/mathematics.md
    // §1.1): the one place of their formulas.
    @inline(__always) static func piecewiseLinear(_ x: S, _ h: S) -> S { h * max(0, 1 - x) }
    @inline(__always) static func exponential(_ x: S, _ h: S) -> S { h * S(Foundation.exp(-Double(x))) }
    @inline(__always) static func fastSigmoidDerivative(_ x: S, _ h: S) -> S { h / ((1 + x) * (1 + x)) }
    @inline(__always) static func arctanDerivative(_ x: S, _ h: S) -> S { h / (1 + x * x) }
}

/// The cross-entropy readout's output pi_k = exp(u_k + E_L) / sum_k' exp(u_k' + E_L) across the
/// readouts, without subtracting the maximum, as NEST (docs/mathematics.md §1.3); used by the
/// time step and the recorder alike.
enum Softmax {
    /// The denominator over the `count` readouts `u`.
    @inline(__always) static func denominator<S: Scalar>(_ u: UnsafePointer<S>, count: Int, eL: S) -> Double {
        var sum = 0.0
        for k in 0..<count { sum += Foundation.exp(Double(u[k] + eL)) }
        return sum
    }

    /// pi_k for one readout.
    @inline(__always) static func output<S: Scalar>(_ uk: S, eL: S, denominator: Double) -> Double {
        Foundation.exp(Double(uk + eL)) / denominator
    }
}

/// The trained weight matrices; every per-matrix list (weights, gradients, optimizer moments,
/// checkpoint and output files) uses this order.
public enum TrainedMatrix: Int, CaseIterable, Sendable {
    case inRec, recRec, recOut
    /// The name of the matrix in NEST's exports and the run folder (`w_in_rec_final.npy`, ...).
    public var name: String {
        switch self {
        case .inRec: "w_in_rec"
        case .recRec: "w_rec_rec"
        case .recOut: "w_rec_out"
        }
    }
}

/// The trainable network: weights in the engine's scalar, layout `[post, pre]` as NEST.
public final class Network<S: Scalar>: @unchecked Sendable {
    public let nIn: Int, nRec: Int, nOut: Int
    /// `[nRec, nIn]` input -> recurrent weights (pA).
    public let wIn: Matrix<S>
    /// `[nRec, nRec]` recurrent weights (pA); the diagonal (autapses) stays 0.
    public let wRec: Matrix<S>
    /// `[nOut, nRec]` recurrent -> readout weights (pA).
    public let wOut: Matrix<S>
    /// `[nRec, nOut]` fixed feedback weights B (pA).
    public let feedback: Matrix<S>
    public let prop: Propagators<S>
    /// Feedback follows the readout weights (B = W_out^T) instead of staying fixed.
    public let symmetricFeedback: Bool
    /// `[nIn, nRec]` and `[nRec, nRec]` transposed copies for the sparse kernel: row i holds the
    /// weights of presynaptic neuron i to every recurrent neuron. Refreshed after each update.
    public let wInT: Matrix<S>
    public let wRecT: Matrix<S>
    /// `[nOut, nRec]` transposed feedback weights (fixed).
    public let feedbackT: Matrix<S>

    /// The trained matrices in the order of `TrainedMatrix`.
    public var trained: [Matrix<S>] { [wIn, wRec, wOut] }

    public init(_ initial: NetworkInit, config: TrainingConfig) {
        nIn = initial.nIn
        nRec = initial.nRec
        nOut = initial.nOut
        wIn = initial.wInRec.converted(to: S.self)
        wRec = initial.wRecRec.converted(to: S.self)
        wOut = initial.wRecOut.converted(to: S.self)
        feedback = initial.wOutRecFeedback.converted(to: S.self)
        prop = Propagators(config: config, tauM: initial.tauM)
        symmetricFeedback = config.feedback == .symmetric
        wInT = Matrix(rows: nIn, cols: nRec)
        wRecT = Matrix(rows: nRec, cols: nRec)
        feedbackT = Matrix(rows: nOut, cols: nRec)
        refreshTransposes()
    }

    /// Copies the weights into `wInT` and `wRecT`, and the feedback into `feedbackT` (with
    /// symmetric feedback, B follows the readout weights first: B_jk = W_out,kj).
    public func refreshTransposes() {
        wIn.transpose(into: wInT)
        wRec.transpose(into: wRecT)
        for j in 0..<nRec {
            for k in 0..<nOut {
                if symmetricFeedback { feedback[j, k] = wOut[k, j] }
                feedbackT[k, j] = feedback[j, k]
            }
        }
    }
}
