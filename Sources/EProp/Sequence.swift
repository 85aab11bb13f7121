import Foundation

/// The indices of the active neurons of each history row, in a fixed slot of `width` entries
/// per row (the worst case), so rows can be filled in any order without allocation.
final class SpikeLists {
    let width: Int
    /// `[rows]` number of active neurons of each row.
    let count: UnsafeMutablePointer<Int>
    /// `[rows, width]` their indices, ascending.
    let index: UnsafeMutablePointer<Int32>

    init(rows: Int, width: Int) {
        self.width = width
        count = .allocate(capacity: max(rows, 1))
        count.initialize(repeating: 0, count: max(rows, 1))
        index = .allocate(capacity: max(rows * width, 1))
    }

    deinit {
        count.deallocate()
        index.deallocate()
    }

    /// The active indices of row r.
    @inline(__always) func row(_ r: Int) -> UnsafeMutableBufferPointer<Int32> {
        UnsafeMutableBufferPointer(start: index + r * width, count: count[r])
    }
}

/// Histories and state of one batch of `B` sequences of `T` steps, simulated side by side.
///
/// Histories use the layout `[T, B, n]`: row `s * B + b` holds step `s` of sequence `b`, so the
/// state of one step is a contiguous `[B, n]` block (what the per-step GEMMs read and write) and
/// a whole history is one `[T * B, n]` matrix (what the gradient GEMMs read).
/// Allocated once per (B, T); the time loop allocates nothing.
public final class SequenceBuffers<S: Scalar>: @unchecked Sendable {
    public let batch: Int, steps: Int
    public let nIn: Int, nRec: Int, nOut: Int
    /// Recurrent neurons 0 ..< nRecord whose voltage and adaptation are kept for recordings.
    public let nRecord: Int

    // Inputs of the batch, set before the forward pass.
    /// `[T * B, nIn]` input spikes x(s) (0 or 1); step 0 is always 0 (NEST drops it, docs/mathematics.md §6.1).
    public let x: Matrix<S>
    /// `[T * B, nOut]` targets y*(s).
    public let target: Matrix<S>
    /// `[B]` 1 if sequence b is the first of the run (its step 0 sees no latched I_e yet), else 0.
    public let isFirstOfRun: Matrix<S>

    // Histories written by the forward pass.
    /// `[(T + 1) * B, nRec]` spikes: block 0 is z(-1) = 0, block s + 1 is z(s).
    /// Rows `0 ..< T*B` are the presynaptic recurrent input z(s-1); rows `B ..< (T+1)*B` are z(s).
    public let z: Matrix<S>
    /// `[T * B, nRec]` surrogate gradient psi(s).
    public let psi: Matrix<S>
    /// `[T * B, nRec]` learning signal L(s) = B err(s).
    public let learningSignal: Matrix<S>
    /// `[T * B, nOut]` readout membrane u(s) (relative to E_L).
    public let u: Matrix<S>
    /// `[T * B, nOut]` error err(s) = y(s) - y*(s) inside the learning window, else 0.
    public let err: Matrix<S>
    /// `[T * B, nRecord]` membrane voltage v(s) and adaptation a(s) of the recorded neurons.
    public let vRecord: Matrix<S>
    public let aRecord: Matrix<S>

    // State of the current step.
    /// `[B, nRec]` membrane voltage (relative to E_L) and adaptation.
    public let v: Matrix<S>
    public let a: Matrix<S>
    /// `[B, nRec]` spike counts of this sequence (for the rate regularizer).
    public let spikeCount: Matrix<S>
    /// `[B, nRec]` refractory counters.
    let refractory: UnsafeMutablePointer<Int32>
    /// `[nRec]` scratch: 1 where the neuron spikes in this step, else 0 (z as an integer).
    let fired: UnsafeMutablePointer<Int32>
    /// `[B, nRec]` scratch: synaptic input sum_i W_ji p_i.
    let current: Matrix<S>
    /// `[B, nOut]` readout membrane of the current step.
    let uNow: Matrix<S>
    /// `[T * B]` rows: the inputs that spike in each row of `x`.
    let inputSpikes: SpikeLists
    /// `[T * B]` rows: the recurrent neurons that spike in each row of z(s) (row s * B + b).
    let recurrentSpikes: SpikeLists
    /// Times the phases of each step when profiling (nil: not profiling).
    public var clock: PhaseClock?
    /// Loss of the readouts.
    public var lossFunction: LossFunction = .meanSquaredError
    /// `[B, nOut]` sums over the learning window of the softmax output and of the target
    /// (cross entropy), for the accuracy.
    public private(set) var windowSum: [Double]
    public private(set) var targetSum: [Double]
    /// Learning window (steps) of the last forward pass.
    public private(set) var learningWindowUsed = 0
    /// `[B, nOut]` loss 0.5 sum_s err_k(s)^2 of each sequence and readout, accumulated in double.
    public private(set) var loss: [Double]

    public init(batch B: Int, steps T: Int, nIn: Int, nRec: Int, nOut: Int, nRecord: Int = 0) {
        batch = B
        steps = T
        self.nIn = nIn
        self.nRec = nRec
        self.nOut = nOut
        self.nRecord = min(nRecord, nRec)
        vRecord = Matrix(rows: T * B, cols: self.nRecord)
        aRecord = Matrix(rows: T * B, cols: self.nRecord)
        x = Matrix(rows: T * B, cols: nIn)
        target = Matrix(rows: T * B, cols: nOut)
        isFirstOfRun = Matrix(rows: 1, cols: B)
        z = Matrix(rows: (T + 1) * B, cols: nRec)
        psi = Matrix(rows: T * B, cols: nRec)
        learningSignal = Matrix(rows: T * B, cols: nRec)
        u = Matrix(rows: T * B, cols: nOut)
        err = Matrix(rows: T * B, cols: nOut)
        v = Matrix(rows: B, cols: nRec)
        a = Matrix(rows: B, cols: nRec)
        spikeCount = Matrix(rows: B, cols: nRec)
        refractory = .allocate(capacity: B * nRec)
        refractory.initialize(repeating: 0, count: B * nRec)
        fired = .allocate(capacity: nRec)
        fired.initialize(repeating: 0, count: nRec)
        current = Matrix(rows: B, cols: nRec)
        uNow = Matrix(rows: B, cols: nOut)
        loss = [Double](repeating: 0, count: B * nOut)
        windowSum = loss
        targetSum = loss
        inputSpikes = SpikeLists(rows: T * B, width: nIn)
        recurrentSpikes = SpikeLists(rows: T * B, width: nRec)
    }

    deinit {
        refractory.deallocate()
        fired.deallocate()
    }

    /// Loads the input pattern `[nIn, T]` and target `[nOut, T]` of sequence `b`.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func setSequence(_ b: Int, input: Matrix<Double>, target y: Matrix<Double>) {
        precondition(input.rows == nIn && input.cols == steps && y.rows == nOut && y.cols == steps)
        let (B, T) = (batch, steps)
        // Along the rows of the patterns (contiguous), through raw pointers: x and the target are
        // [T * B, n], so each row of a pattern is one column of theirs.
        let (xp, yp, inp, tp) = (x.p, target.p, input.p, y.p)
        for i in 0..<nIn {
            let from = inp + i &* T
            // Why: an input spike arriving at interval step 0 is not transmitted by NEST (docs/mathematics.md §6.1).
            xp[b &* nIn &+ i] = 0
            for s in 1..<T { xp[(s &* B &+ b) &* nIn &+ i] = S(from[s]) }
        }
        for k in 0..<nOut {
            let from = tp + k &* T
            for s in 0..<T { yp[(s &* B &+ b) &* nOut &+ k] = S(from[s]) }
        }
        for s in 0..<T {
            let r = s &* B &+ b, xr = x.row(r), list = inputSpikes.index + r &* nIn
            var n = 0
            for i in 0..<nIn {
                list[n] = Int32(truncatingIfNeeded: i)
                n &+= xr[i] != 0 ? 1 : 0
            }
            inputSpikes.count[r] = n
        }
    }

    /// Loads sequence b from an event list: input spikes at (step, channel), steps in
    /// `1 ..< T` (step 0 carries no input), several events of one channel in one step being
    /// one spike; the target is class `label` (one-hot) at every step. Equal to `setSequence`
    /// with the dense pattern (the same `x`, spike lists ascending, target).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func setSequence(_ b: Int, events: (times: [Int], units: [Int]), label: Int) {
        for s in 0..<steps {
            let r = s * batch + b, xr = x.row(r), yr = target.row(r)
            for i in 0..<nIn { xr[i] = 0 }
            for k in 0..<nOut { yr[k] = k == label ? 1 : 0 }
            inputSpikes.count[r] = 0
        }
        for (s, i) in zip(events.times, events.units) where s > 0 {
            let r = s * batch + b
            guard x[r, i] == 0 else { continue }
            x[r, i] = 1
            inputSpikes.index[r * nIn + inputSpikes.count[r]] = Int32(i)
            inputSpikes.count[r] += 1
        }
        for s in 1..<steps where inputSpikes.count[s * batch + b] > 1 {
            var list = inputSpikes.row(s * batch + b)
            list.sort()
        }
    }

    /// Cross entropy: the class sequence b is given (the readout with the largest mean softmax
    /// output over the learning window, the first of equals), and its target's class.
    public func predictedClass(_ b: Int) -> Int { argmax(windowSum, b) }
    public func targetClass(_ b: Int) -> Int { argmax(targetSum, b) }
    /// Cross entropy: whether sequence b was classified right.
    public func isCorrect(_ b: Int) -> Bool { predictedClass(b) == targetClass(b) }

    private func argmax(_ sums: [Double], _ b: Int) -> Int {
        let r = (b * nOut)..<((b + 1) * nOut)
        return r.reduce(r.lowerBound) { sums[$1] > sums[$0] ? $1 : $0 } - r.lowerBound
    }

    /// Firing-rate regularizer r_j = c_reg (n_j / T - f*) / T of sequence b (docs/mathematics.md §2.4).
    @inline(__always) func rateRegularizer(_ b: Int, _ j: Int, cReg: S, fTarget: S) -> S {
        let T = S(steps)
        return cReg * (spikeCount[b, j] / T - fTarget) / T
    }

    // MARK: forward pass

    /// Simulates the B sequences for T steps with frozen weights, writing the histories
    /// (docs/mathematics.md §1.1 and §1.3, in NEST's order).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func forward(_ net: Network<S>, learningWindow: Int, kernel: Kernel = .sparse) {
        beginSequence(learningWindow: learningWindow)
        for s in 0..<steps { advance(s, net, kernel: kernel) }
    }

    /// Resets the state at the start of a sequence (interval start, docs/mathematics.md §4.1).
    public func beginSequence(learningWindow: Int) {
        let B = batch, nRec = self.nRec, nOut = self.nOut
        v.fill(0)
        a.fill(0)
        spikeCount.fill(0)
        uNow.fill(0)
        refractory.update(repeating: 0, count: B * nRec)
        for q in 0..<(B * nOut) { (loss[q], windowSum[q], targetSum[q]) = (0, 0, 0) }
        learningWindowUsed = learningWindow
    }

    /// Advances all B sequences by time step `s` (steps must come in order 0, 1, ..., T - 1).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func advance(_ s: Int, _ net: Network<S>, kernel: Kernel) {
        let B = batch, T = steps, nRec = self.nRec, nOut = self.nOut
        let P = net.prop
        let alpha = P.alpha.p, zeta = P.zeta.p, iScale = P.currentScale.p
        let (rho, beta, vTh, vMin, nRef, iE) = (P.rho, P.beta.p, P.vTh, P.vMin, P.refractorySteps, P.iE)
        let vp = v.p, ap = a.p, cnt = spikeCount.p, refr = refractory, cur = current.p, fired = self.fired
        let windowStart = T - learningWindowUsed
        let wInT = net.wInT.p, wRecT = net.wRecT.p, wOut = net.wOut.p, feedback = net.feedback.p

        let zPrev = z.row(s * B), zNow = z.row((s + 1) * B), psiNow = psi.row(s * B)
        let spikes = recurrentSpikes, clock = self.clock
        // 1. Synaptic input: I = x(s) W_in^T + z(s-1) W_rec^T  ([B, nRec]).
        switch kernel {
        case .blas:
            S.rowsTimesTransposed(rows: B, nPost: nRec, nPre: nIn, alpha: 1, x: x.row(s * B), w: net.wIn.p, beta: 0, out: cur)
            S.rowsTimesTransposed(rows: B, nPost: nRec, nPre: nRec, alpha: 1, x: zPrev, w: net.wRec.p, beta: 1, out: cur)
        case .sparse:
            for b in 0..<B {
                let c = cur + b * nRec
                c.update(repeating: 0, count: nRec)
                for i in inputSpikes.row(s * B + b) {
                    let w = wInT + Int(i) &* nRec
                    for j in 0..<nRec { c[j] += w[j] }
                }
                if s > 0 {
                    for i in spikes.row((s - 1) * B + b) {
                        let w = wRecT + Int(i) &* nRec
                        for j in 0..<nRec { c[j] += w[j] }
                    }
                }
            }
        }
        clock?.lap(.synapticInput)
        // 2. Neurons, elementwise, in NEST's order: membrane, adaptation, surrogate, spike.
        for b in 0..<B {
            // I_e is latched at the end of the previous step: none before the run's first step.
            let latched: S = (s == 0 && isFirstOfRun.p[b] != 0) ? 0 : 1
            let nowList = spikes.index + (s * B + b) * nRec
            var nowCount = 0
            // Branch-free passes over the neurons: state, then distance and spike flag. Why four
            // loops: each touches few arrays, so the compiler vectorizes it (one loop over all
            // eleven arrays stayed scalar: too many possible overlaps to check at run time).
            let (vb, ab, zpb, cb, rb) = (vp + b &* nRec, ap + b &* nRec, zPrev + b &* nRec, cur + b &* nRec, refr + b &* nRec)
            let (psib, zb) = (psiNow + b &* nRec, zNow + b &* nRec)
            for j in 0..<nRec {
                // Reset by the base threshold one step after the spike, not decayed by alpha.
                vb[j] = max(alpha[j] * vb[j] + zeta[j] * cb[j] - vTh * zpb[j] + iScale[j] * iE * latched, vMin)
            }
            for j in 0..<nRec { ab[j] = beta[j] == 0 ? 0 : rho * ab[j] + zpb[j] }  // plain LIF neurons have no adaptation
            // Refractory steps left, counted down at the step's start (always 0 without t_ref);
            // max(r - 1, 0) as bit operations, which vectorize (max became a branch per neuron).
            if nRef > 0 {
                for j in 0..<nRec {
                    let r = rb[j] &- 1
                    rb[j] = r & ~(r &>> 31)
                }
            }
            for j in 0..<nRec {
                let threshold = vTh + beta[j] * ab[j]
                psib[j] = vb[j] - threshold  // the distance d; psi(d) below
                let fires = rb[j] == 0 && vb[j] >= threshold
                zb[j] = fires ? 1 : 0
                fired[j] = fires ? 1 : 0
            }
            P.surrogateGradient(psiNow + b * nRec, count: nRec, refractory: refr + b * nRec)
            // Spike bookkeeping, branch-free (which neuron spikes is unpredictable, and a branch
            // per neuron cost a third of the step): refractory start and count, then the spike
            // list, every index written and the end moved past it where the neuron spiked.
            let countb = cnt + b &* nRec
            for j in 0..<nRec {
                rb[j] = zb[j] != 0 ? nRef : rb[j]
                countb[j] += zb[j]
            }
            for j in 0..<nRec {
                nowList[nowCount] = Int32(truncatingIfNeeded: j)
                nowCount &+= Int(fired[j])  // an integer add: a comparison of z here became a branch again
            }
            spikes.count[s * B + b] = nowCount
            let vr = vRecord.row(s * B + b), ar = aRecord.row(s * B + b)
            for j in 0..<nRecord {
                vr[j] = vp[b &* nRec &+ j]
                ar[j] = ap[b &* nRec &+ j]
            }
        }
        clock?.lap(.neurons)
        // 3. Readout sees the spikes of the same step: u = kappa u + zeta_out z(s) W_out^T.
        switch kernel {
        case .blas:
            S.rowsTimesTransposed(rows: B, nPost: nOut, nPre: nRec, alpha: P.zetaOut, x: zNow, w: wOut, beta: P.kappa, out: uNow.p)
        case .sparse:
            for b in 0..<B {
                for k in 0..<nOut {
                    var sum: S = 0
                    for i in spikes.row(s * B + b) { sum += wOut[k &* nRec &+ Int(i)] }
                    uNow.p[b &* nOut &+ k] = P.zetaOut * sum + P.kappa * uNow.p[b &* nOut &+ k]
                }
            }
        }
        let uHist = u.row(s * B), errNow = err.row(s * B), yStar = target.row(s * B)
        let inWindow = s >= windowStart  // errors only inside the learning window (the last LW steps)
        for b in 0..<B {
            let latched: S = (s == 0 && isFirstOfRun.p[b] != 0) ? 0 : 1
            for k in 0..<nOut {
                let q = b &* nOut &+ k
                uNow.p[q] += P.currentScaleOut * P.iEOut * latched
                uHist[q] = uNow.p[q]
            }
            switch lossFunction {
            case .meanSquaredError:
                for k in 0..<nOut {
                    let q = b &* nOut &+ k
                    let e: S = inWindow ? uNow.p[q] + P.eLOut - yStar[q] : 0
                    errNow[q] = e
                    loss[q] += 0.5 * Double(e) * Double(e)
                }
            case .crossEntropy where !inWindow:
                for k in 0..<nOut { errNow[b &* nOut &+ k] = 0 }  // no softmax needed outside the window
            case .crossEntropy:
                let sum = Softmax.denominator(uNow.p + b * nOut, count: nOut, eL: P.eLOut)
                for k in 0..<nOut {
                    let q = b &* nOut &+ k
                    let pi = Softmax.output(uNow.p[q], eL: P.eLOut, denominator: sum)
                    errNow[q] = S(pi) - yStar[q]
                    if yStar[q] != 0 { loss[q] -= Double(yStar[q]) * Foundation.log(pi) }
                    windowSum[q] += pi
                    targetSum[q] += Double(yStar[q])
                }
            }
        }
        clock?.lap(.readout)
        // 4. Learning signal L(s) = err(s) B^T  ([B, nRec]).
        switch kernel {
        case .blas:
            S.rowsTimesTransposed(rows: B, nPost: nRec, nPre: nOut, alpha: 1, x: errNow, w: feedback, beta: 0, out: learningSignal.row(s * B))
        case .sparse:
            let l = learningSignal.row(s * B)
            let feedbackT = net.feedbackT.p
            for b in 0..<B {
                let lb = l + b * nRec
                lb.update(repeating: 0, count: nRec)
                for k in 0..<nOut {
                    let e = errNow[b &* nOut &+ k], f = feedbackT + k * nRec
                    for j in 0..<nRec { lb[j] += e * f[j] }
                }
            }
        }
        clock?.lap(.learningSignal)
    }
}
