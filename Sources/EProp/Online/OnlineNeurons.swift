import Foundation

// Neuron updates of NEST 3.10's online e-prop models (eprop-online-spec.md §1): the four recurrent models and
// the readout, one NEST update step at a time. Voltages are relative to E_L.

/// The surrogate gradient psi of §1.5 (`compute_*_surrogate_gradient`), 0 while refractory.
@inline(__always)
func onlineSurrogate<S: Scalar>(_ kind: SurrogateGradient, refractory: Bool, v: S, threshold: S, height h: S, width w: S) -> S {
    if refractory { return 0 }
    let d = v - threshold
    switch kind {
    case .piecewiseLinear: return h * max(0, 1 - abs(d) / w)
    case .exponential: return h * S(Foundation.exp(-Double(abs(d) / w)))
    // NEST: height * pow(1 + |d| / w, -2.0).
    case .fastSigmoidDerivative: return h * S(Foundation.pow(Double(1 + abs(d) / w), -2.0))
    // NEST: height / (1 + pow(d / w, 2.0)).
    case .arctanDerivative: return h / (1 + S(Foundation.pow(Double(d / w), 2.0)))
    }
}

/// The recurrent population: its groups' parameters as S, NEST's `State_` per neuron, and the history entries the
/// synapses read two steps later (spec §3.1).
final class OnlineRecurrentPopulation<S: Scalar> {
    /// The neurons of one group (`OnlineRecurrentGroup`): their range and constants (NEST `Variables_`), as S.
    struct Group {
        let range: Range<Int>
        let model: OnlineNeuronModel
        let surrogate: SurrogateGradient
        let refractoryInput: Bool
        let alpha: S, pI: S, rho: S, beta: S, vTh: S, vReset: S, vMin: S, iE: S, height: S, width: S
        let kappaReg: S, oneMinusKappaReg: S, cReg: S, fTargetPerStep: S
        /// E_L (mV), tau_m (ms, Double, for the `refractory_input` decay exp(-r dt / tau_m)).
        let eL: Double, tauMms: Double
        let nRef: Int
    }

    /// nRec.
    let n: Int
    let groups: [Group]
    let dt: S
    let dtMs: Double

    // MARK: State, [nRec] each.
    /// v (mV, relative to E_L), after the reset of the current step.
    var v: [S]
    /// Refractory count r (steps).
    var r: [Int]
    /// Adaptation a (1) and adaptive threshold A = V_th + beta a (mV, relative); adaptive models.
    var a: [S]
    var vThAdapt: [S]
    /// NEST's `S_.z_`: the neuron's own spike of the previous step (adaptive models read it).
    var zPrev: [S]
    /// Current input I(t-1) latched at the end of the previous step (pA).
    var iIn: [S]
    /// `refractory_input` buffer (mV), psc_delta models.
    var refrBuffer: [S]
    /// Firing-rate EMA f (spikes/ms), never reset (§1.6).
    var fAv: [S]

    // MARK: History (written in step t, read by the synapses in step t + 2).
    /// psi(t) and F(t) in ring slot t % 2: [2, nRec].
    var psi: [S]
    var fReg: [S]

    init(_ groups: [OnlineRecurrentGroup], resolution dtMs: Double) {
        var first = 0
        self.groups = groups.map { g in
            let p = g.parameters, c = OnlineRecurrentConstants(p, dt: dtMs)
            defer { first += g.count }
            return Group(
                range: first..<first + g.count, model: p.model, surrogate: p.surrogateGradient, refractoryInput: p.refractoryInput,
                alpha: S(c.alpha), pI: S(c.pI), rho: S(c.rho), beta: S(c.beta), vTh: S(c.vTh), vReset: S(c.vReset),
                vMin: S(c.vMin), iE: S(p.iE), height: S(p.surrogateHeight), width: S(p.surrogateWidth), kappaReg: S(p.kappaReg),
                oneMinusKappaReg: S(1 - p.kappaReg), cReg: S(p.cReg), fTargetPerStep: S(c.fTargetPerStep), eL: p.eL,
                tauMms: p.tauM, nRef: c.nRef)
        }
        n = first
        (dt, self.dtMs) = (S(dtMs), dtMs)
        let z = [S](repeating: 0, count: n)
        (v, a, zPrev, iIn, refrBuffer, fAv) = (z, z, z, z, z, z)
        r = [Int](repeating: 0, count: n)
        // NEST's initial V_th_adapt is V_th.
        vThAdapt = self.groups.flatMap { [S](repeating: $0.vTh, count: $0.range.count) }
        psi = [S](repeating: 0, count: 2 * n)
        fReg = psi
    }

    /// E_L of neuron j (mV).
    func eL(_ j: Int) -> Double { groups.first { $0.range.contains(j) }!.eL }

    /// One NEST update step t of every recurrent neuron (§1.1-§1.4, §1.6).
    /// - input: [nRec] summed weighted spikes of stamp t (mV).
    /// - z: [nRec] output, 1 where the neuron spikes in step t (stamp t + 1).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    func update(step t: Int, input: UnsafePointer<S>, z: UnsafeMutablePointer<S>) {
        let slot = (t & 1) * n, dt = dt, dtMs = dtMs
        v.withUnsafeMutableBufferPointer { v in
        r.withUnsafeMutableBufferPointer { r in
        a.withUnsafeMutableBufferPointer { a in
        vThAdapt.withUnsafeMutableBufferPointer { A in
        zPrev.withUnsafeMutableBufferPointer { zPrev in
        iIn.withUnsafeMutableBufferPointer { iIn in
        refrBuffer.withUnsafeMutableBufferPointer { buf in
        fAv.withUnsafeMutableBufferPointer { f in
        psi.withUnsafeMutableBufferPointer { psi in
        fReg.withUnsafeMutableBufferPointer { fReg in
          for g in groups {
            let pscDelta = g.model.isPscDelta, adaptive = g.model.isAdaptive, surrogate = g.surrogate
            let (alpha, pI, rho, beta, vTh, vReset, vMin, iE) = (g.alpha, g.pI, g.rho, g.beta, g.vTh, g.vReset, g.vMin, g.iE)
            let (height, width, kappaReg, oneMinusKappaReg, cReg) = (g.height, g.width, g.kappaReg, g.oneMinusKappaReg, g.cReg)
            let (fTargetPerStep, nRef, refractoryInput, tauMms) = (g.fTargetPerStep, g.nRef, g.refractoryInput, g.tauMms)
            for j in g.range {
                var spike = false
                if !pscDelta {
                    // eprop_iaf(_adapt): the countdown first; v integrates every input, also while refractory.
                    if r[j] > 0 { r[j] -= 1 }
                    // NEST's order: (P_I I + in) + alpha v.
                    v[j] = max(pI * iIn[j] + input[j] + alpha * v[j], vMin)
                    if adaptive {
                        a[j] = rho * a[j] + zPrev[j]
                        A[j] = vTh + beta * a[j]
                    }
                    let threshold = adaptive ? A[j] : vTh
                    zPrev[j] = 0
                    // psi from the pre-reset v.
                    psi[slot + j] = onlineSurrogate(
                        surrogate, refractory: r[j] > 0, v: v[j], threshold: threshold, height: height, width: width)
                    if v[j] >= threshold && r[j] == 0 {
                        spike = true
                        // Reset in the spike's own step, by the base V_th (also in the adaptive model).
                        v[j] -= vTh
                        r[j] = nRef
                        zPrev[j] = 1
                    }
                    iIn[j] = iE  // currents(t) + I_e, used in step t + 1
                } else {
                    if r[j] == 0 {
                        // NEST's order: (P_I (I + I_e) + alpha v) + in.
                        var vj = pI * (iIn[j] + iE) + alpha * v[j] + input[j]
                        if refractoryInput && buf[j] != 0 {
                            vj += buf[j]
                            buf[j] = 0
                        }
                        v[j] = max(vj, vMin)
                        // Only here: a spike followed by a refractory step never reaches a (§1.4).
                        if adaptive {
                            a[j] = rho * a[j] + zPrev[j]
                            A[j] = vTh + beta * a[j]
                        }
                    } else {
                        // Clamped: the input is lost, or buffered with the decay of the remaining refractory time.
                        if refractoryInput {
                            buf[j] += input[j] * S(Foundation.exp(Double(-r[j]) * dtMs / tauMms))
                        }
                        r[j] -= 1
                    }
                    let threshold = adaptive ? A[j] : vTh
                    zPrev[j] = 0
                    // r after the decrement: psi is evaluated at the clamped V_reset in the last refractory step.
                    psi[slot + j] = onlineSurrogate(
                        surrogate, refractory: r[j] > 0, v: v[j], threshold: threshold, height: height, width: width)
                    // No refractory condition: V_reset < V_th, so a clamped neuron cannot spike.
                    if v[j] >= threshold {
                        spike = true
                        r[j] = nRef
                        v[j] = vReset
                        zPrev[j] = 1
                    }
                    iIn[j] = 0  // currents(t) (I_e is added at use)
                }
                let zj: S = spike ? 1 : 0
                z[j] = zj
                // F(t) = c_reg (f - f* dt), f an EMA of z / dt (§1.6).
                f[j] = kappaReg * f[j] + oneMinusKappaReg * zj / dt
                fReg[slot + j] = cReg * (f[j] - fTargetPerStep)
            }
          }
        }}}}}}}}}}
    }
}

/// The readouts (`eprop_readout`, §1.7): MSE only, no lag, error multiplied by the learning window.
final class OnlineReadoutPopulation<S: Scalar> {
    let n: Int
    /// kappa_out = exp(-dt / tau_m), P_I = tau_m / C_m (1 - kappa_out), E_L, I_e, V_min (relative).
    let kappaOut: S, pI: S, eL: S, iE: S, vMin: S
    /// V (mV, relative to E_L) and I(t-1) (pA), [nOut].
    var v: [S]
    var iIn: [S]
    /// err(t) = (y - y*) lambda of the current step, [nOut]; y lambda and y* lambda (the recordables
    /// `readout_signal` and `target_signal`), [nOut].
    var err: [S]
    var readoutSignal: [S]
    var targetSignal: [S]

    init(_ p: OnlineReadoutParameters, count: Int, resolution dt: Double) {
        n = count
        let k = Foundation.exp(-dt / p.tauM)
        (kappaOut, pI, eL, iE) = (S(k), S(p.tauM / p.cM * (1 - k)), S(p.eL), S(p.iE))
        vMin = S(p.vMin == -Double.greatestFiniteMagnitude ? p.vMin : p.vMin - p.eL)
        let z = [S](repeating: 0, count: count)
        (v, iIn, err, readoutSignal, targetSignal) = (z, z, z, z, z)
    }

    /// One update step: input [nOut] = summed weighted recurrent spikes of stamp t; target [nOut] = y*(t);
    /// window = lambda(t).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    func update(input: UnsafePointer<S>, target: UnsafePointer<S>, window: S) {
        for k in 0..<n {
            // NEST's order: (P_I I + in) + kappa V.
            v[k] = max(pI * iIn[k] + input[k] + kappaOut * v[k], vMin)
            let y = v[k] + eL
            err[k] = (y - target[k]) * window
            readoutSignal[k] = y * window
            targetSignal[k] = target[k] * window
            iIn[k] = iE
        }
    }
}
