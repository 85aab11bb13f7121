import Foundation

/// The `eprop_synapse`s of one projection (input -> recurrent, recurrent -> recurrent or recurrent -> readout) as
/// dense per-synapse state plus NEST's lazy bookkeeping per presynaptic column (eprop-online-spec.md §2, §4.1,
/// §5.1).
///
/// Layout: every per-synapse array is **pre-major**, `[nPre, nPost]` (index `i * nPost + j` for i -> j), so that
/// the synapses of one presynaptic neuron, which NEST updates together at that neuron's events, are contiguous.
/// `weights()` returns NEST's `[post, pre]`.
///
/// All synapses of a column share one schedule (their targets share one cutoff and one membrane propagator), so
/// z_bar, `t_last` and `decay_pending` are per column.
final class OnlineProjection<S: Scalar> {
    enum Target {
        /// Onto recurrent neurons: z_bar, e_bar, e_bar_reg (and epsilon for the adaptive models), g = L e_bar + F e_bar_reg.
        case recurrent
        /// Onto readouts: z_bar only, g = err z_bar.
        case readout
    }

    let nPre: Int
    let nPost: Int
    let target: Target
    let adaptive: Bool
    /// Recurrent -> recurrent: the autapse i -> i does not exist (its weight stays 0, it is never trained).
    let excludeDiagonal: Bool
    /// Cutoff C of the targets in steps (`Int.max`: none).
    let cutoff: Int
    /// `optimize_each_step`.
    let perStep: Bool
    /// Propagators: z_bar filter (the target's alpha or kappa_out), kappa, kappa_reg, 1 - kappa_reg, rho, beta.
    let alpha: S, kappa: S, kappaReg: S, oneMinusKappaReg: S, rho: S, beta: S
    /// The same in Double, for NEST's decay by std::pow.
    let alphaD: Double, kappaD: Double, kappaRegD: Double, rhoD: Double

    // MARK: per synapse, [nPre, nPost] (pre-major)
    /// Current weight W.
    var w: [S]
    /// NEST's stored weight: W as of the presynaptic neuron's last delivered event (what GetStatus reads).
    var wStored: [S]
    /// e_bar, e_bar_reg, epsilon (recurrent targets; epsilon only adaptive).
    var eBar: [S]
    var eBarReg: [S]
    var eps: [S]
    /// The optimizer's cumulative gradient c and Adam's m, v.
    var c: [S]
    var m: [S]
    var v: [S]
    /// Per-spike mode: the gradient summed since the presynaptic neuron's last spike.
    var gSum: [S]

    // MARK: per column, [nPre]
    /// z_bar_i (one per column: the targets share the propagator).
    var zBar: [S]
    /// Stamp of the column's last spike (flush events do not count); 0 = none yet.
    var tLast: [Int]
    /// Entries past the cutoff whose decay is still to be applied (NEST's `decay_steps_`).
    var decayPending: [Int]

    /// Scratch [nPost]: the gradient of one entry for the per-step optimizer call.
    var gColumn: [S]
    let optimizer: OnlineWeightOptimizer<S>

    /// - weights: [nPost, nPre] (NEST layout), Double.
    init(
        nPre: Int, nPost: Int, target: Target, adaptive: Bool, excludeDiagonal: Bool, cutoff: Int,
        alpha: Double, kappa: Double, kappaReg: Double, rho: Double, beta: Double,
        optimizer p: OnlineOptimizerParameters, weights: [Double]
    ) {
        precondition(weights.count == nPre * nPost, "weights: \(weights.count) values for [\(nPost), \(nPre)]")
        (self.nPre, self.nPost, self.target, self.adaptive) = (nPre, nPost, target, adaptive)
        (self.excludeDiagonal, self.cutoff, self.perStep) = (excludeDiagonal, cutoff, p.optimizeEachStep)
        (self.alpha, self.kappa, self.kappaReg, self.oneMinusKappaReg) = (S(alpha), S(kappa), S(kappaReg), S(1 - kappaReg))
        (self.rho, self.beta) = (S(rho), S(beta))
        (alphaD, kappaD, kappaRegD, rhoD) = (alpha, kappa, kappaReg, rho)
        let n = nPre * nPost
        var wt = [S](repeating: 0, count: n)
        for j in 0..<nPost { for i in 0..<nPre { wt[i * nPost + j] = S(weights[j * nPre + i]) } }
        if excludeDiagonal { for i in 0..<min(nPre, nPost) { wt[i * nPost + i] = 0 } }
        (w, wStored) = (wt, wt)
        let zeros = [S](repeating: 0, count: n)
        let recurrent = target == .recurrent
        (eBar, eBarReg) = recurrent ? (zeros, zeros) : ([], [])
        eps = recurrent && adaptive ? zeros : []
        c = zeros
        (m, v) = p.kind == .adam ? (zeros, zeros) : ([], [])
        gSum = p.optimizeEachStep ? [] : zeros
        zBar = [S](repeating: 0, count: nPre)
        tLast = [Int](repeating: 0, count: nPre)
        decayPending = [Int](repeating: 0, count: nPre)
        gColumn = [S](repeating: 0, count: nPost)
        optimizer = OnlineWeightOptimizer(p, columns: nPre)
    }

    /// `[post, pre]` as Double: the current weights, or NEST's stored ones.
    func weights(stored: Bool = false) -> [Double] {
        let src = stored ? wStored : w
        var out = [Double](repeating: 0, count: nPre * nPost)
        for i in 0..<nPre { for j in 0..<nPost { out[j * nPre + i] = Double(src[i * nPost + j]) } }
        return out
    }

    /// Processes history entry tau of the targets for every column (§5.1 step 2; §5.3 with `everyStep`).
    /// - arrival: [nPre] s_i(tau), the presynaptic spikes that entered the targets in step tau.
    /// - recurrent targets: psi, fReg, learningSignal [nPost] = psi_j(tau), F_j(tau), L_j(tau);
    ///   readout targets: psi = err_k(tau) [nPost], the others unused.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    func processEntry(
        tau: Int, arrival s: UnsafePointer<S>, psi: UnsafePointer<S>, fReg: UnsafePointer<S>,
        learningSignal L: UnsafePointer<S>, everyStep: Bool
    ) {
        let nPost = nPost, perStep = perStep, adaptive = adaptive
        let (alpha, kappa, kappaReg, oneMinusKappaReg, rho, beta) = (alpha, kappa, kappaReg, oneMinusKappaReg, rho, beta)
        w.withUnsafeMutableBufferPointer { w in
        eBar.withUnsafeMutableBufferPointer { eBar in
        eBarReg.withUnsafeMutableBufferPointer { eBarReg in
        eps.withUnsafeMutableBufferPointer { eps in
        c.withUnsafeMutableBufferPointer { c in
        m.withUnsafeMutableBufferPointer { m in
        v.withUnsafeMutableBufferPointer { v in
        gSum.withUnsafeMutableBufferPointer { gSum in
        gColumn.withUnsafeMutableBufferPointer { gCol in
            for i in 0..<nPre {
                if !everyStep {
                    let last = tLast[i]
                    // Before the first spike: nothing (NEST only records the spike time).
                    if last == 0 { continue }
                    // Past the cutoff: the gradient of this entry is never computed, only its decay counted.
                    if tau - (last - 1) >= cutoff {
                        decayPending[i] += 1
                        continue
                    }
                    if decayPending[i] > 0 { decay(column: i, steps: decayPending[i], eBar, eBarReg, eps) }
                }
                // z_bar with the arrival of this very entry (the spike buffer of NEST's compute_gradient).
                let zb = alpha * zBar[i] + s[i]
                zBar[i] = zb
                let base = i * nPost
                let skip = excludeDiagonal ? i : -1
                let out: UnsafeMutablePointer<S> = perStep ? gCol.baseAddress! : gSum.baseAddress! + base
                switch target {
                case .recurrent:
                    let eB = eBar.baseAddress! + base, eR = eBarReg.baseAddress! + base
                    if adaptive {
                        let ep = eps.baseAddress! + base
                        forEachTarget(nPost, skip: skip) { j in
                            let e = psi[j] * (zb - beta * ep[j])
                            ep[j] = rho * ep[j] + e
                            eB[j] = kappa * eB[j] + e  // no (1 - kappa): NEST's code, not its docs
                            eR[j] = kappaReg * eR[j] + oneMinusKappaReg * e
                            let g = L[j] * eB[j] + fReg[j] * eR[j]
                            if perStep { out[j] = g } else { out[j] += g }
                        }
                    } else {
                        forEachTarget(nPost, skip: skip) { j in
                            let e = psi[j] * zb
                            eB[j] = kappa * eB[j] + e  // no (1 - kappa): NEST's code, not its docs
                            eR[j] = kappaReg * eR[j] + oneMinusKappaReg * e
                            let g = L[j] * eB[j] + fReg[j] * eR[j]
                            if perStep { out[j] = g } else { out[j] += g }
                        }
                    }
                case .readout:
                    forEachTarget(nPost, skip: skip) { k in
                        let g = psi[k] * zb
                        if perStep { out[k] = g } else { out[k] += g }
                    }
                }
                if perStep {
                    // optimize_each_step: one call per entry, index tau + 1.
                    optimizer.call(
                        column: i, idx: tau + 1, g: UnsafePointer(gCol.baseAddress!), w: w.baseAddress! + base,
                        c: c.baseAddress! + base, m: m.baseAddress.map { $0 + base } ?? c.baseAddress! + base,
                        v: v.baseAddress.map { $0 + base } ?? c.baseAddress! + base, count: nPost, skip: skip)
                }
            }
        }}}}}}}}}
    }

    /// NEST's deferred decay of the traces over `steps` entries past the cutoff, with one std::pow each.
    @inline(__always)
    private func decay(
        column i: Int, steps n: Int, _ eBar: UnsafeMutableBufferPointer<S>, _ eBarReg: UnsafeMutableBufferPointer<S>,
        _ eps: UnsafeMutableBufferPointer<S>
    ) {
        decayPending[i] = 0
        let nd = Double(n)
        zBar[i] *= S(Foundation.pow(alphaD, nd))
        guard target == .recurrent else { return }
        let (pk, pr) = (S(Foundation.pow(kappaD, nd)), S(Foundation.pow(kappaRegD, nd)))
        let base = i * nPost, skip = excludeDiagonal ? i : -1
        forEachTarget(nPost, skip: skip) { j in
            eBar[base + j] *= pk
            eBarReg[base + j] *= pr
        }
        if adaptive {
            let pe = S(Foundation.pow(rhoD, nd))
            forEachTarget(nPost, skip: skip) { j in eps[base + j] *= pe }
        }
    }

    /// A spike of column i with stamp t, before it is transmitted (§4.1): in per-spike mode the optimizer call
    /// with index t - 1 and the gradient summed since the previous spike (none at the first spike); then
    /// `t_last` and NEST's stored weights.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    func spike(column i: Int, stamp t: Int) {
        let base = i * nPost, skip = excludeDiagonal ? i : -1
        if !perStep && tLast[i] > 0 {
            w.withUnsafeMutableBufferPointer { w in
            c.withUnsafeMutableBufferPointer { c in
            m.withUnsafeMutableBufferPointer { m in
            v.withUnsafeMutableBufferPointer { v in
            gSum.withUnsafeMutableBufferPointer { gSum in
                let cp = c.baseAddress! + base
                optimizer.call(
                    column: i, idx: t - 1, g: UnsafePointer(gSum.baseAddress! + base), w: w.baseAddress! + base, c: cp,
                    m: m.baseAddress.map { $0 + base } ?? cp, v: v.baseAddress.map { $0 + base } ?? cp,
                    count: nPost, skip: skip)
                for j in 0..<nPost { gSum[base + j] = 0 }
            }}}}}
        }
        tLast[i] = t
        storeColumn(i)
    }

    /// A flush event of column i: NEST brings the stored weight up to date (it changes only in per-step mode).
    func flush(column i: Int) {
        if perStep { storeColumn(i) }
    }

    @inline(__always)
    private func storeColumn(_ i: Int) {
        let base = i * nPost
        for j in 0..<nPost { wStored[base + j] = w[base + j] }
    }

    /// in[j] += W[j, i] for j in 0..<nPost: transmission of a spike of column i.
    @inline(__always)
    func transmit(column i: Int, into input: UnsafeMutablePointer<S>) {
        let base = i * nPost
        w.withUnsafeBufferPointer { w in
            for j in 0..<nPost { input[j] += w[base + j] }
        }
    }
}
