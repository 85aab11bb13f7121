/// Gradients of the loss with respect to the three trained weight matrices (layout `[post, pre]`),
/// summed over the sequences of a batch and then turned into NEST's per-batch mean.
public final class Gradients<S: Scalar>: @unchecked Sendable {
    /// `[nRec, nIn]`, `[nRec, nRec]`, `[nOut, nRec]`.
    public let gIn: Matrix<S>, gRec: Matrix<S>, gOut: Matrix<S>

    public init(nIn: Int, nRec: Int, nOut: Int) {
        gIn = Matrix(rows: nRec, cols: nIn)
        gRec = Matrix(rows: nRec, cols: nRec)
        gOut = Matrix(rows: nOut, cols: nRec)
    }

    /// Views of `count(nIn:nRec:nOut:)` consecutive scalars at `storage`, which `owner` keeps.
    init(nIn: Int, nRec: Int, nOut: Int, viewing storage: UnsafeMutablePointer<S>, owner: AnyObject) {
        gIn = Matrix(rows: nRec, cols: nIn, viewing: storage, owner: owner)
        gRec = Matrix(rows: nRec, cols: nRec, viewing: storage + nRec * nIn, owner: owner)
        gOut = Matrix(rows: nOut, cols: nRec, viewing: storage + nRec * (nIn + nRec), owner: owner)
    }

    /// Scalars in one set of gradients.
    static func count(nIn: Int, nRec: Int, nOut: Int) -> Int { nRec * (nIn + nRec) + nOut * nRec }

    /// In the order of `TrainedMatrix`.
    public var all: [Matrix<S>] { [gIn, gRec, gOut] }

    public func zero() { for g in all { g.fill(0) } }

    /// Adds another set of gradients (of other sequences) to these.
    public func add(_ other: Gradients<S>) {
        for (g, o) in zip(all, other.all) { for i in 0..<g.count { g.p[i] += o.p[i] } }
    }

    /// After all sequences of a batch: no autapse gradient, optional division by the learning
    /// window (all terms, NEST >= 3.9, docs/mathematics.md §2.5), then the mean over the batch (§4.3).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func finish(batchSize: Int, averageOver learningWindow: Int?) {
        for j in 0..<gRec.rows { gRec[j, j] = 0 }
        for g in all {
            for i in 0..<g.count {
                if let lw = learningWindow { g.p[i] /= S(lw) }
                g.p[i] /= S(batchSize)
            }
        }
    }
}

/// Readout synapses, the same for every gradient method (their gradient is exact in e-prop):
/// writes `errBar` (`[T * B, nOut]`, zeta_out errbar(s), errbar(s) = err(s) + kappa errbar(s+1),
/// using `errRun` `[B, nOut]` as scratch) and adds g_out = sum_s err(s) ztilde(s) = errBar^T Z to `g`.
@_specialize(where S == Float)
@_specialize(where S == Double)
func readoutGradient<S: Scalar>(_ net: Network<S>, _ seq: SequenceBuffers<S>, errRun: Matrix<S>, errBar: Matrix<S>, kernel: Kernel, into g: Gradients<S>) {
    let B = seq.batch, T = seq.steps, nRec = net.nRec, nOut = net.nOut, P = net.prop
    errRun.fill(0)
    for s in stride(from: T - 1, through: 0, by: -1) {
        let e = seq.err.row(s * B), eb = errBar.row(s * B)
        for q in 0..<(B * nOut) {
            errRun.p[q] = e[q] + P.kappa * errRun.p[q]
            eb[q] = P.zetaOut * errRun.p[q]
        }
    }
    switch kernel {
    case .blas:
        S.gemm(transA: true, transB: false, m: nOut, n: nRec, k: T * B, alpha: 1, a: errBar.p, lda: nOut, b: seq.z.row(B), ldb: nRec, beta: 1, c: g.gOut.p, ldc: nRec)
    case .sparse:
        for r in 0..<(T * B) {
            let eb = errBar.row(r)
            for i in seq.recurrentSpikes.row(r) {
                for k in 0..<nOut { g.gOut.p[k * nRec + Int(i)] += eb[k] }
            }
        }
    }
}

/// The sparse kernel's gradient accumulators, transposed (`[nIn, nRec]` and `[nRec, nRec]`, row i
/// = presynaptic neuron i) so that a row `o` of per-neuron factors (the adjoint's W~, BPTT's
/// dE/dI) is added at once where its presynaptic neurons spiked: G_in^T += o at the inputs
/// spiking at step s, G_rec^T += o at the recurrent neurons that spiked at s-1.
struct TransposedAccumulators<S: Scalar> {
    let gInT: Matrix<S>, gRecT: Matrix<S>

    init(nIn: Int, nRec: Int) {
        (gInT, gRecT) = (Matrix(rows: nIn, cols: nRec), Matrix(rows: nRec, cols: nRec))
    }

    func reset() {
        gInT.fill(0)
        gRecT.fill(0)
    }

    /// Adds `o` (`[nRec]`) for step `s` of sequence `b` of `seq`.
    @inline(__always) func scatter(_ o: UnsafeMutablePointer<S>, step s: Int, sequence b: Int, _ seq: SequenceBuffers<S>) {
        let B = seq.batch, nRec = gRecT.cols
        for i in seq.inputSpikes.row(s * B + b) {
            let acc = gInT.row(Int(i))
            for j in 0..<nRec { acc[j] += o[j] }
        }
        guard s > 0 else { return }
        for i in seq.recurrentSpikes.row((s - 1) * B + b) {  // z(s-1) of the same sequence
            let acc = gRecT.row(Int(i))
            for j in 0..<nRec { acc[j] += o[j] }
        }
    }

    /// Adds the accumulated sums to `g` in its `[post, pre]` layout.
    func add(into g: Gradients<S>) {
        gInT.transpose(into: g.gIn, adding: true)
        gRecT.transpose(into: g.gRec, adding: true)
    }
}

/// What the gradient of one batch needs besides the network and the histories.
public struct GradientContext: Sendable {
    /// c_reg of the firing-rate regularizer.
    public var cReg: Double
    /// NEST's left-out L(T-1) terms of the batch's sequences.
    public var missingLastTerm: MissingLastTerm
    /// BLAS products or sparse scatters over the spikes.
    public var kernel: Kernel = .sparse
}

/// Computes e-prop gradients of a simulated batch.
public protocol GradientComputer<S>: AnyObject {
    associatedtype S: Scalar
    /// Adds the gradient of the batch in `seq` (summed over its sequences) to `g`, without the
    /// terms `ctx.missingLastTerm` leaves out; adds the left-out term of the run's last sequence
    /// (`ctx.missingLastTerm.lastOfRun`) to `term`.
    func accumulate(_ net: Network<S>, _ seq: SequenceBuffers<S>, _ ctx: GradientContext, into g: Gradients<S>, term: Gradients<S>)
}

/// Running values of the per-neuron backward recursion of `[B]` sequences (each `[B, nRec]`),
/// and the W~ row of the current step (`[nRec]`, sparse kernel).
struct BackwardScanState<S: Scalar> {
    let lBar: Matrix<S>, lambda: Matrix<S>, wBar: Matrix<S>, row: Matrix<S>
    init(batch B: Int, nRec: Int) {
        (lBar, lambda, wBar) = (Matrix(rows: B, cols: nRec), Matrix(rows: B, cols: nRec), Matrix(rows: B, cols: nRec))
        row = Matrix(rows: 1, cols: nRec)
    }
    func reset() { for m in [lBar, lambda, wBar] { m.fill(0) } }
}

/// The exact "adjoint" form (docs/mathematics.md §5.4): per-neuron backward recursions over the
/// stored histories, then one product per weight matrix. No per-synapse state.
public final class AdjointGradient<S: Scalar>: GradientComputer {
    let batch: Int, steps: Int, nRec: Int, nOut: Int
    /// `[T * B, nRec]` W~_j(s) = zeta_j wbar_j(s): G_in = W~^T X, G_rec = W~^T Z_prev (BLAS kernel only).
    let wTilde: Matrix<S>
    /// `[T, nRec]` W~ of the left-out L(T-1) term of one sequence (BLAS kernel only).
    let missingTermWTilde: Matrix<S>
    /// `[T * B, nOut]` zeta_out errbar(s), errbar(s) = err(s) + kappa errbar(s+1).
    let errBar: Matrix<S>
    /// `[B, nRec]` the regularizer r_j of each sequence.
    let reg: Matrix<S>
    /// `[B, nOut]`.
    let errRun: Matrix<S>
    /// The sparse kernel's accumulators.
    let sparse: TransposedAccumulators<S>
    /// The recursion of the gradient, and the one of the left-out L(T-1) term alone (sparse kernel).
    let scan: BackwardScanState<S>, missingTermScan: BackwardScanState<S>
    /// `[B * nIn]` whether input i's L(T-1) term is left out for sequence b.
    private var leftOut: [Bool]

    /// The W~ histories are only needed by the BLAS kernel (the sparse one scatters as it goes).
    public init(batch B: Int, steps T: Int, nIn: Int, nRec: Int, nOut: Int, kernel: Kernel = .sparse) {
        batch = B
        steps = T
        self.nRec = nRec
        self.nOut = nOut
        wTilde = Matrix(rows: kernel == .blas ? T * B : 0, cols: nRec)
        missingTermWTilde = Matrix(rows: kernel == .blas ? T : 0, cols: nRec)
        errBar = Matrix(rows: T * B, cols: nOut)
        reg = Matrix(rows: B, cols: nRec)
        errRun = Matrix(rows: B, cols: nOut)
        sparse = TransposedAccumulators(nIn: nIn, nRec: nRec)
        scan = BackwardScanState(batch: B, nRec: nRec)
        missingTermScan = BackwardScanState(batch: B, nRec: nRec)
        leftOut = [Bool](repeating: false, count: B * nIn)
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func accumulate(_ net: Network<S>, _ seq: SequenceBuffers<S>, _ ctx: GradientContext, into g: Gradients<S>, term: Gradients<S>) {
        let B = batch, T = steps, nRec = self.nRec, nIn = net.nIn
        let P = net.prop
        let missing = ctx.missingLastTerm
        for b in 0..<B {
            for j in 0..<nRec {
                reg[b, j] = seq.rateRegularizer(b, j, cReg: S(ctx.cReg), fTarget: P.fTargetPerStep)
            }
        }
        // C = Lbar + r: kappa moved from the eligibility trace to the learning signal (§5.4.1).
        let zPrev = seq.z.p
        switch ctx.kernel {
        case .blas:
            backwardScan(net, seq, rows: 0..<B, out: wTilde, outRowStride: B, missingTermOnly: false)
            seq.clock?.lap(.backwardScan)
            S.gemm(transA: true, transB: false, m: nRec, n: nIn, k: T * B, alpha: 1, a: wTilde.p, lda: nRec, b: seq.x.p, ldb: nIn, beta: 1, c: g.gIn.p, ldc: nIn)
            S.gemm(transA: true, transB: false, m: nRec, n: nRec, k: T * B, alpha: 1, a: wTilde.p, lda: nRec, b: zPrev, ldb: nRec, beta: 1, c: g.gRec.p, ldc: nRec)
            // §6.2: remove L(T-1) ebar(T-1) for the left-out input columns of each sequence.
            for b in 0..<B where !missing.inputs[b].isEmpty {
                backwardScan(net, seq, rows: b..<(b + 1), out: missingTermWTilde, outRowStride: 1, missingTermOnly: true)
                for i in missing.inputs[b] {
                    S.gemv(trans: true, m: T, n: nRec, alpha: -1, a: missingTermWTilde.p, lda: nRec, x: seq.x.p + b * nIn + i, incX: B * nIn, beta: 1, y: g.gIn.p + i, incY: nIn)
                    if b == missing.lastOfRun {
                        S.gemv(trans: true, m: T, n: nRec, alpha: 1, a: missingTermWTilde.p, lda: nRec, x: seq.x.p + b * nIn + i, incX: B * nIn, beta: 1, y: term.gIn.p + i, incY: nIn)
                    }
                }
            }
        case .sparse:
            // The same sums, scattered row by row as the scan produces W~ (no W~ history).
            sparse.reset()
            for q in 0..<leftOut.count { leftOut[q] = false }
            for b in 0..<B { for i in missing.inputs[b] { leftOut[b * nIn + i] = true } }
            backwardScan(net, seq, rows: 0..<B, out: nil, outRowStride: B, missingTermOnly: false, missing: missing, term: term)
            sparse.add(into: g)
        }
        seq.clock?.lap(.gradientScatter)
        readoutGradient(net, seq, errRun: errRun, errBar: errBar, kernel: ctx.kernel, into: g)
        seq.clock?.lap(.readoutGradient)
    }

    /// The per-neuron backward recursion of §5.4.3 for the sequences `rows`. Writes W~ for
    /// row `s * outRowStride + (b - rows.lowerBound)` of `out`, or, without `out`, scatter-adds
    /// each W~ row into the transposed accumulators at once: G_in^T += W~ at the inputs that
    /// spike in that row, G_rec^T += W~ at the recurrent neurons that spiked one step earlier;
    /// with `missing` it also runs the recursion of the left-out L(T-1) term in the same pass,
    /// subtracts it at those inputs and adds it to `term` for the run's last sequence. With
    /// `missingTermOnly`, the learning signal is L(T-1) at the last step only and there is no
    /// regularizer (the §6.2 term on its own, BLAS kernel).
    private func backwardScan(
        _ net: Network<S>, _ seq: SequenceBuffers<S>, rows: Range<Int>, out: Matrix<S>?, outRowStride: Int, missingTermOnly: Bool,
        missing: MissingLastTerm? = nil, term: Gradients<S>? = nil
    ) {
        let B = batch, T = steps, nRec = self.nRec, nIn = net.nIn
        let P = net.prop
        let (kappa, rho, beta) = (P.kappa, P.rho, P.beta.p)
        let oneMinusKappa = 1 - kappa
        let alpha = P.alpha.p, zeta = P.zeta.p
        scan.reset()
        missingTermScan.reset()
        // One step of the recursion for sequence b: C = Lbar + r, lambda, w, wbar, W~ = zeta wbar.
        @inline(__always)
        func recurse(_ state: BackwardScanState<S>, _ b: Int, _ psi: UnsafeMutablePointer<S>, _ signal: UnsafeMutablePointer<S>, signalWeight: S,
                     regWeight: S, _ o: UnsafeMutablePointer<S>) {
            let lb = state.lBar.row(b), lam = state.lambda.row(b), wb = state.wBar.row(b), r = reg.row(b)
            for j in 0..<nRec {
                let lbj = oneMinusKappa * (signalWeight * signal[j]) + kappa * lb[j]
                lb[j] = lbj
                let c = lbj + regWeight * r[j]
                let ps = psi[j], l = lam[j]
                let w = ps * (c + l)
                lam[j] = -beta[j] * c * ps + (rho - beta[j] * ps) * l
                let wbj = w + alpha[j] * wb[j]
                wb[j] = wbj
                o[j] = zeta[j] * wbj
            }
        }
        let regWeight: S = missingTermOnly ? 0 : 1
        let clock = seq.clock
        for s in stride(from: T - 1, through: 0, by: -1) {
            let signalWeight: S = missingTermOnly && s != T - 1 ? 0 : 1
            for b in rows {
                let psi = seq.psi.row(s * B + b), signal = seq.learningSignal.row(s * B + b)
                let o = out?.row(s * outRowStride + b - rows.lowerBound) ?? scan.row.p
                recurse(scan, b, psi, signal, signalWeight: signalWeight, regWeight: regWeight, o)
                clock?.lap(.backwardScan)
                guard out == nil else { continue }
                sparse.scatter(o, step: s, sequence: b, seq)
                defer { clock?.lap(.gradientScatter) }
                // §6.2 in the same pass: the L(T-1)-only recursion, subtracted at the left-out inputs.
                guard let missing, !missing.inputs[b].isEmpty else { continue }
                let o2 = missingTermScan.row.p
                recurse(missingTermScan, b, psi, signal, signalWeight: s == T - 1 ? 1 : 0, regWeight: 0, o2)
                for i in seq.inputSpikes.row(s * B + b) where leftOut[b * nIn + Int(i)] {
                    let acc = sparse.gInT.row(Int(i))
                    for j in 0..<nRec { acc[j] -= o2[j] }
                    if b == missing.lastOfRun, let term {
                        for j in 0..<nRec { term.gIn.p[j * nIn + Int(i)] += o2[j] }
                    }
                }
            }
        }
    }
}
