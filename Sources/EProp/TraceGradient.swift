/// The reference "traces" form (docs/mathematics.md §5.2, the NEST/TensorFlow formulation): eligibility traces
/// kept as `[nRec, nPre]` matrices (pre = inputs then recurrent neurons) and advanced every step.
///
/// Runs after the forward pass over the stored histories, one sequence at a time, so that the
/// per-sequence trace state stays in L2. This per-step form is what online learning builds on.
public final class TraceGradient<S: Scalar>: GradientComputer {
    let batch: Int, steps: Int, nIn: Int, nRec: Int, nOut: Int
    var nPre: Int { nIn + nRec }
    /// `[nRec, nPre]` presynaptic trace zbar_ji (per synapse: it carries the postsynaptic alpha_j).
    let zBar: Matrix<S>
    /// `[nRec, nPre]` adaptation eligibility epsilon_ji.
    let epsilon: Matrix<S>
    /// `[nRec, nPre]` readout-filtered eligibility trace ebar_ji.
    let eBar: Matrix<S>
    /// `[nRec, nPre]` sum_s e_ji(s) of the sequence, for the regularizer.
    let eSum: Matrix<S>
    /// `[nRec, nPre]` task and regularization gradient of the batch.
    let gradient: Matrix<S>
    /// `[nPre]` presynaptic activity p(s) = [x(s), z(s-1)].
    let pre: Matrix<S>
    /// `[nRec]` readout-filtered spikes ztilde(s).
    let zTilde: Matrix<S>

    public init(batch B: Int, steps T: Int, nIn: Int, nRec: Int, nOut: Int) {
        batch = B
        steps = T
        self.nIn = nIn
        self.nRec = nRec
        self.nOut = nOut
        zBar = Matrix(rows: nRec, cols: nIn + nRec)
        epsilon = Matrix(rows: nRec, cols: nIn + nRec)
        eBar = Matrix(rows: nRec, cols: nIn + nRec)
        eSum = Matrix(rows: nRec, cols: nIn + nRec)
        gradient = Matrix(rows: nRec, cols: nIn + nRec)
        pre = Matrix(rows: 1, cols: nIn + nRec)
        zTilde = Matrix(rows: 1, cols: nRec)
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func accumulate(_ net: Network<S>, _ seq: SequenceBuffers<S>, _ ctx: GradientContext, into g: Gradients<S>, term: Gradients<S>) {
        let B = batch, T = steps, nIn = self.nIn, nRec = self.nRec, nOut = self.nOut, nPre = self.nPre
        let P = net.prop
        let (kappa, rho) = (P.kappa, P.rho)
        let oneMinusKappa = 1 - kappa
        let zb = zBar.p, ep = epsilon.p, eb = eBar.p, es = eSum.p, gp = gradient.p, p = pre.p
        gradient.fill(0)
        for b in 0..<B {
            for m in [zBar, epsilon, eBar, eSum] { m.fill(0) }
            zTilde.fill(0)
            for s in 0..<T {
                let row = s &* B &+ b
                let x = seq.x.row(row), zPrev = seq.z.row(row), zNow = seq.z.row(row + B)
                for i in 0..<nIn { p[i] = x[i] }
                for i in 0..<nRec { p[nIn &+ i] = zPrev[i] }
                let psi = seq.psi.row(row), signal = seq.learningSignal.row(row)
                for j in 0..<nRec {
                    let (a, z, ps, l, beta) = (P.alpha.p[j], P.zeta.p[j], psi[j], signal[j], P.beta.p[j])
                    let o = j &* nPre
                    for i in 0..<nPre {
                        let q = o &+ i
                        zb[q] = a * zb[q] + z * p[i]
                        let e = ps * (zb[q] - beta * ep[q])  // uses epsilon(s-1)
                        ep[q] = rho * ep[q] + e
                        eb[q] = kappa * eb[q] + oneMinusKappa * e
                        gp[q] += l * eb[q]
                        es[q] += e
                    }
                }
                // Readout synapses: ztilde = kappa ztilde + zeta_out z(s); g_out += err(s) ztilde^T.
                let err = seq.err.row(row)
                for i in 0..<nRec { zTilde.p[i] = kappa * zTilde.p[i] + P.zetaOut * zNow[i] }
                for k in 0..<nOut {
                    let gk = g.gOut.row(k)
                    for i in 0..<nRec { gk[i] += err[k] * zTilde.p[i] }
                }
            }
            // Regularizer: r_j sum_s e_ji(s), with this sequence's own rate (§2.4, §4.3).
            for j in 0..<nRec {
                let r = seq.rateRegularizer(b, j, cReg: S(ctx.cReg), fTarget: P.fTargetPerStep)
                for i in 0..<nPre { gp[j &* nPre &+ i] += r * es[j &* nPre &+ i] }
            }
            // §6.2: NEST leaves out L(T-1) ebar(T-1) for these input columns.
            let lastSignal = seq.learningSignal.row((T - 1) * B + b)
            for i in ctx.missingLastTerm.inputs[b] {
                for j in 0..<nRec {
                    let leftOut = lastSignal[j] * eb[j * nPre + i]
                    gp[j * nPre + i] -= leftOut
                    if b == ctx.missingLastTerm.lastOfRun { term.gIn[j, i] += leftOut }
                }
            }
        }
        for j in 0..<nRec {
            for i in 0..<nIn { g.gIn[j, i] += gp[j * nPre + i] }
            for i in 0..<nRec { g.gRec[j, i] += gp[j * nPre + nIn + i] }
        }
    }
}
