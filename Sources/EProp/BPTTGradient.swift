/// Backpropagation through time (docs/mathematics.md §5.5): the exact gradient of the loss and
/// the firing-rate regularizer of the simulated network, back through the recurrent spikes, the
/// reset and the adaptation, with the surrogate derivative psi at each spike (zero while
/// refractory). It reads the histories of the forward pass, like the adjoint, and differs from
/// e-prop in three ways: the readout error reaches neuron j through W_out (not the feedback B),
/// the error of every later step reaches it through W_rec, and (unless `throughReset` is off) the
/// reset term -V_th z_j(s-1) of the membrane carries gradient. NEST's missing L(T-1) term, an
/// e-prop artefact, does not apply.
///
/// Backward recursion over s = T-1 ... 0 for each sequence (dX = dE/dX, [B, nRec] each):
///   dz(s) = zeta_out errbar(s) W_out + r + dI(s+1) W_rec - V_th dv(s+1) + da(s+1)
///   dv(s) = psi(s) dz(s) + alpha dv(s+1)
///   da(s) = -beta psi(s) dz(s) + rho da(s+1)
///   dI(s) = zeta dv(s)
/// then G_in = dI^T X and G_rec = dI^T Z_prev, as the adjoint's W~.
public final class BPTTGradient<S: Scalar>: GradientComputer {
    let batch: Int, steps: Int, nRec: Int, nOut: Int
    /// Whether the reset carries gradient (the exact derivative); off reproduces the common
    /// stop-gradient through the reset, under which e-prop is exact without recurrence and adaptation.
    let throughReset: Bool
    /// `[T * B, nRec]` dE/dI(s), the history the weight gradients are built from.
    let dI: Matrix<S>
    /// `[B, nRec]` running dv, da, and this step's dz.
    let dv: Matrix<S>, da: Matrix<S>, dz: Matrix<S>
    /// `[T * B, nOut]` zeta_out errbar(s) and `[B, nOut]` scratch (readout gradient).
    let errBar: Matrix<S>, errRun: Matrix<S>
    /// `[B, nRec]` the regularizer r_j of each sequence.
    let reg: Matrix<S>
    /// The sparse kernel's accumulators.
    let sparse: TransposedAccumulators<S>

    public init(batch B: Int, steps T: Int, nIn: Int, nRec: Int, nOut: Int, throughReset: Bool = true) {
        (batch, steps, self.nRec, self.nOut, self.throughReset) = (B, T, nRec, nOut, throughReset)
        dI = Matrix(rows: T * B, cols: nRec)
        (dv, da, dz) = (Matrix(rows: B, cols: nRec), Matrix(rows: B, cols: nRec), Matrix(rows: B, cols: nRec))
        errBar = Matrix(rows: T * B, cols: nOut)
        errRun = Matrix(rows: B, cols: nOut)
        reg = Matrix(rows: B, cols: nRec)
        sparse = TransposedAccumulators(nIn: nIn, nRec: nRec)
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func accumulate(_ net: Network<S>, _ seq: SequenceBuffers<S>, _ ctx: GradientContext, into g: Gradients<S>, term: Gradients<S>) {
        let B = batch, T = steps, nRec = self.nRec, nOut = self.nOut, nIn = net.nIn
        let P = net.prop
        let (alpha, zeta, beta) = (P.alpha.p, P.zeta.p, P.beta.p)
        let (rho, resetWeight) = (P.rho, throughReset ? P.vTh : 0)
        for b in 0..<B {
            for j in 0..<nRec { reg[b, j] = seq.rateRegularizer(b, j, cReg: S(ctx.cReg), fTarget: P.fTargetPerStep) }
        }
        readoutGradient(net, seq, errRun: errRun, errBar: errBar, kernel: ctx.kernel, into: g)
        dv.fill(0)
        da.fill(0)
        let wOut = net.wOut.p
        for s in stride(from: T - 1, through: 0, by: -1) {
            // dz = dI(s+1) W_rec (the later steps' error through the recurrent weights), then the rest.
            if s < T - 1 {
                S.gemm(transA: false, transB: false, m: B, n: nRec, k: nRec, alpha: 1, a: dI.row((s + 1) * B), lda: nRec, b: net.wRec.p, ldb: nRec, beta: 0, c: dz.p, ldc: nRec)
            } else {
                dz.fill(0)
            }
            for b in 0..<B {
                let z = dz.row(b), v = dv.row(b), a = da.row(b), r = reg.row(b), eb = errBar.row(s * B + b)
                let psi = seq.psi.row(s * B + b), out = dI.row(s * B + b)
                for j in 0..<nRec {
                    var task: S = 0
                    for k in 0..<nOut { task += wOut[k &* nRec &+ j] * eb[k] }
                    // dv and da still hold step s+1 here (zero after the last step).
                    let dzj = z[j] + task + r[j] - resetWeight * v[j] + a[j]
                    let dvj = psi[j] * dzj + alpha[j] * v[j]
                    a[j] = beta[j] == 0 ? 0 : -beta[j] * psi[j] * dzj + rho * a[j]
                    v[j] = dvj
                    out[j] = zeta[j] * dvj
                }
            }
        }
        // G_in = dI^T X, G_rec = dI^T Z_prev.
        switch ctx.kernel {
        case .blas:
            S.gemm(transA: true, transB: false, m: nRec, n: nIn, k: T * B, alpha: 1, a: dI.p, lda: nRec, b: seq.x.p, ldb: nIn, beta: 1, c: g.gIn.p, ldc: nIn)
            S.gemm(transA: true, transB: false, m: nRec, n: nRec, k: T * B, alpha: 1, a: dI.p, lda: nRec, b: seq.z.p, ldb: nRec, beta: 1, c: g.gRec.p, ldc: nRec)
        case .sparse:
            sparse.reset()
            for s in 0..<T {
                for b in 0..<B { sparse.scatter(dI.row(s * B + b), step: s, sequence: b, seq) }
            }
            sparse.add(into: g)
        }
    }
}
