import Foundation

/// The `eprop_synapse`s of one projection (input -> recurrent, recurrent -> recurrent or recurrent -> readout) as
/// dense per-synapse state plus NEST's lazy bookkeeping per presynaptic column (eprop-online-spec.md §2, §4.1,
/// §5.1).
///
/// Layout: every per-synapse array is **pre-major**: the synapses of presynaptic neuron i are entries
/// `start[i] ..< start[i + 1]`, so that the synapses of one presynaptic neuron, which NEST updates together at that
/// neuron's events, are contiguous and the loops over them vectorize. Dense projections hold every target
/// (`start[i] = i * nPost`, entry `start[i] + j` is i -> j); sparse ones (a connection mask, as NEST's N-MNIST
/// example) hold only the existing synapses, entry `start[i] + k` is i -> `targets[start[i] + k]`, and their column
/// loops read psi, F and L of those targets gathered into scratch columns first. Absent synapses have no state at
/// all: they are never trained and their weight reads 0. `weights()` converts to and from NEST's `[post, pre]`.
///
/// All synapses of a column share one schedule (their targets share one cutoff and one membrane propagator), so
/// z_bar (the rank-1 factor of e = psi_j z_bar_i, spec §5.3), `t_last` and `decay_pending` are per column.
///
/// Speed (none of it changes a single operation of a synapse, so results stay bitwise NEST's):
/// * raw storage allocated once: no exclusivity checks, uniqueness checks or allocation in the time loop;
/// * explicit SIMD loops over the targets of a column (4 doubles or 8 floats: lanes are synapses, each doing NEST's
///   expressions in NEST's order, no FMA): one pass per column and entry for the traces and G += g (per-spike mode)
///   or the traces and a gradient-descent step (per-step mode); Adam and calls that do not step read g from a
///   scratch column in a second pass;
/// * per entry, the schedule of every column first (NEST's bookkeeping), then the active columns' synapses in one
///   call, the branches (model, optimizer mode) taken per column outside the loops over targets;
/// * the autapse of rec -> rec is computed with its column and put back to 0 after it (no split loops);
/// * the every-step algorithm (§5.3) makes the optimizer's per-column decisions once per step for all columns.
/// The SIMD code is instantiated in the concrete extensions at the end of the file (`columnsDouble`, ...): called
/// from there, the generic kernels are specialized and inlined, which calls from the `@_specialize`d generic methods
/// were not (measured with callgrind).
final class OnlineProjection<S: Scalar>: OnlineShare {
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
    /// Dense projections with `excludeDiagonal` compute i -> i with its column and clear it after (sparse ones simply
    /// do not hold it).
    let clearsAutapse: Bool
    /// Column i's synapses are entries start[i] ..< start[i + 1]: [nPre + 1].
    let start: UnsafeMutablePointer<Int>
    /// Sparse projections: the target of every entry, ascending within a column, [synapses]; nil when dense.
    let targets: UnsafeMutablePointer<Int32>?
    /// Number of synapses held.
    let synapses: Int
    /// Cutoff C of the targets in steps (`Int.max`: none).
    let cutoff: Int
    /// `optimize_each_step`.
    let perStep: Bool
    /// Propagators: z_bar filter (the target's alpha or kappa_out), kappa, kappa_reg, 1 - kappa_reg, rho, beta.
    let alpha: S, kappa: S, kappaReg: S, oneMinusKappaReg: S, rho: S, beta: S
    /// The same in Double, for NEST's decay by std::pow.
    let alphaD: Double, kappaD: Double, kappaRegD: Double, rhoD: Double

    // MARK: per synapse, [synapses] (pre-major), allocated once
    /// Current weight W.
    let w: UnsafeMutablePointer<S>
    /// NEST's stored weight: W as of the presynaptic neuron's last delivered event (what GetStatus reads). Kept
    /// only in per-step mode: in per-spike mode W changes only at the column's own spikes, so it is W itself.
    let wStored: UnsafeMutablePointer<S>
    /// e_bar, e_bar_reg, epsilon (recurrent targets; epsilon only adaptive).
    let eBar: UnsafeMutablePointer<S>
    let eBarReg: UnsafeMutablePointer<S>
    let eps: UnsafeMutablePointer<S>
    /// The optimizer's cumulative gradient c and Adam's m, v.
    let c: UnsafeMutablePointer<S>
    let m: UnsafeMutablePointer<S>
    let v: UnsafeMutablePointer<S>
    /// Per-spike mode: the gradient summed since the presynaptic neuron's last spike.
    let gSum: UnsafeMutablePointer<S>
    /// Scratch [threads, nPost], one row per thread: the gradient of one entry for the per-step optimizer call.
    let gColumn: UnsafeMutablePointer<S>
    /// Scratch [threads, nPost] (sparse projections): psi, F and L of one column's targets, gathered.
    let psiColumn: UnsafeMutablePointer<S>
    let fColumn: UnsafeMutablePointer<S>
    let lColumn: UnsafeMutablePointer<S>
    /// Helper threads that take shares of an entry's columns (nil: one thread), and the job they run.
    let workers: OnlineWorkers?
    private var job = Job()
    /// Share w runs columns bounds[w] ..< bounds[w + 1] of the job's list: [threads + 1].
    let bounds: UnsafeMutablePointer<Int>
    /// The posted entry (trivial values only: the helpers read it without reference counting).
    struct Job {
        var list: UnsafePointer<Int>? = nil
        var psi: UnsafePointer<S>? = nil, fReg: UnsafePointer<S>? = nil, L: UnsafePointer<S>? = nil
        var plans: UnsafePointer<OnlineStepPlan<S>>? = nil
        var shared: OnlineStepPlan<S>? = nil
    }

    // MARK: per column, [nPre]
    /// z_bar_i (one per column: the targets share the propagator).
    let zBar: UnsafeMutablePointer<S>
    /// Stamp of the column's last spike (flush events do not count); 0 = none yet.
    let tLast: UnsafeMutablePointer<Int>
    /// Entries past the cutoff whose decay is still to be applied (NEST's `decay_steps_`), counted when the column
    /// spikes again.
    let decayPending: UnsafeMutablePointer<Int>
    /// The live columns: spiked, and not yet past the cutoff (only these take part in an entry): `live[0 ..< liveCount]`
    /// in no particular order, and per column whether it is in the list.
    let live: UnsafeMutablePointer<Int>
    var liveCount = 0
    let isLive: UnsafeMutablePointer<Bool>

    /// Scratch [nPre]: the columns active in the current entry and their optimizer plans (per-step mode).
    let active: UnsafeMutablePointer<Int>
    let plans: UnsafeMutablePointer<OnlineStepPlan<S>>

    let optimizer: OnlineWeightOptimizer<S>
    /// Every allocation, for deinit.
    private var allocations: [UnsafeMutablePointer<S>] = []

    /// - weights: [nPost, nPre] (NEST layout), Double.
    /// - mask: [nPost, nPre], true where a synapse exists (the caller checks that the weights are 0 elsewhere and that
    ///   there is no autapse); nil: every synapse (but the autapses with `excludeDiagonal`).
    init(
        nPre: Int, nPost: Int, target: Target, adaptive: Bool, excludeDiagonal: Bool, cutoff: Int,
        alpha: Double, kappa: Double, kappaReg: Double, rho: Double, beta: Double,
        optimizer p: OnlineOptimizerParameters, weights: [Double], mask: [Bool]? = nil, workers: OnlineWorkers? = nil
    ) {
        precondition(weights.count == nPre * nPost, "weights: \(weights.count) values for [\(nPost), \(nPre)]")
        precondition(mask == nil || mask!.count == nPre * nPost, "mask: [\(nPost), \(nPre)] required")
        (self.nPre, self.nPost, self.target, self.adaptive) = (nPre, nPost, target, adaptive)
        (self.excludeDiagonal, self.cutoff, self.perStep) = (excludeDiagonal, cutoff, p.optimizeEachStep)
        (self.alpha, self.kappa, self.kappaReg, self.oneMinusKappaReg) = (S(alpha), S(kappa), S(kappaReg), S(1 - kappaReg))
        (self.rho, self.beta) = (S(rho), S(beta))
        (alphaD, kappaD, kappaRegD, rhoD) = (alpha, kappa, kappaReg, rho)
        clearsAutapse = excludeDiagonal && mask == nil
        start = .allocate(capacity: nPre + 1)
        if let mask {
            var list: [Int32] = []
            for i in 0..<nPre {
                start[i] = list.count
                for j in 0..<nPost where mask[j * nPre + i] { list.append(Int32(j)) }
            }
            start[nPre] = list.count
            let t = UnsafeMutablePointer<Int32>.allocate(capacity: max(list.count, 1))
            t.initialize(repeating: 0, count: max(list.count, 1))
            t.update(from: list, count: list.count)
            targets = t
        } else {
            for i in 0...nPre { start[i] = i * nPost }
            targets = nil
        }
        let n = start[nPre]
        synapses = n
        let recurrent = target == .recurrent
        var all: [UnsafeMutablePointer<S>] = []
        /// Zeroed storage of `count` values (one value when unused, so that every pointer is valid).
        func zeros(_ count: Int, _ used: Bool = true) -> UnsafeMutablePointer<S> {
            let k = used ? max(count, 1) : 1
            let p = UnsafeMutablePointer<S>.allocate(capacity: k)
            p.initialize(repeating: 0, count: k)
            all.append(p)
            return p
        }
        w = zeros(n)
        if let targets {
            for i in 0..<nPre { for q in start[i]..<start[i + 1] { w[q] = S(weights[Int(targets[q]) * nPre + i]) } }
        } else {
            for j in 0..<nPost { for i in 0..<nPre { w[i * nPost + j] = S(weights[j * nPre + i]) } }
            if excludeDiagonal { for i in 0..<min(nPre, nPost) { w[i * nPost + i] = 0 } }
        }
        wStored = zeros(n, p.optimizeEachStep)
        if p.optimizeEachStep { wStored.update(from: w, count: n) }
        eBar = zeros(n, recurrent)
        eBarReg = zeros(n, recurrent)
        eps = zeros(n, recurrent && adaptive)
        c = zeros(n)
        m = zeros(n, p.kind == .adam)
        v = zeros(n, p.kind == .adam)
        gSum = zeros(n, !p.optimizeEachStep)
        let threads = 1 + (workers?.count ?? 0)
        self.workers = workers
        bounds = .allocate(capacity: threads + 1)
        bounds.initialize(repeating: 0, count: threads + 1)
        gColumn = zeros(threads * nPost)
        psiColumn = zeros(threads * nPost, mask != nil)
        fColumn = zeros(threads * nPost, mask != nil)
        lColumn = zeros(threads * nPost, mask != nil)
        zBar = zeros(nPre)
        tLast = .allocate(capacity: max(nPre, 1))
        tLast.initialize(repeating: 0, count: max(nPre, 1))
        decayPending = .allocate(capacity: max(nPre, 1))
        decayPending.initialize(repeating: 0, count: max(nPre, 1))
        live = .allocate(capacity: max(nPre, 1))
        live.initialize(repeating: 0, count: max(nPre, 1))
        isLive = .allocate(capacity: max(nPre, 1))
        isLive.initialize(repeating: false, count: max(nPre, 1))
        active = .allocate(capacity: max(nPre, 1))
        active.initialize(repeating: 0, count: max(nPre, 1))
        plans = .allocate(capacity: max(nPre, 1))
        plans.initialize(
            repeating: OnlineStepPlan(kind: .none, k: 0, catchUp: 0, eta: 0, alpha: 0, b1p: 0, b2p: 0), count: max(nPre, 1))
        optimizer = OnlineWeightOptimizer(p, columns: nPre)
        allocations = all
    }

    deinit {
        for p in allocations { p.deallocate() }
        start.deallocate()
        targets?.deallocate()
        bounds.deallocate()
        tLast.deallocate()
        decayPending.deallocate()
        live.deallocate()
        isLive.deallocate()
        active.deallocate()
        plans.deallocate()
    }

    /// `[post, pre]` as Double: the current weights, or NEST's stored ones (0 where there is no synapse).
    func weights(stored: Bool = false) -> [Double] {
        let src = stored && perStep ? wStored : w
        var out = [Double](repeating: 0, count: nPre * nPost)
        for i in 0..<nPre {
            for q in start[i]..<start[i + 1] { out[target(q, column: i) * nPre + i] = Double(src[q]) }
        }
        return out
    }

    /// `[post, pre]`: true where a synapse exists.
    func mask() -> [Bool] {
        var out = [Bool](repeating: false, count: nPre * nPost)
        for i in 0..<nPre { for q in start[i]..<start[i + 1] { out[target(q, column: i) * nPre + i] = true } }
        if clearsAutapse { for i in 0..<min(nPre, nPost) { out[i * nPre + i] = false } }
        return out
    }

    /// The target of entry q of column i.
    @inline(__always)
    func target(_ q: Int, column i: Int) -> Int { targets.map { Int($0[q]) } ?? q - start[i] }

    /// The current weight of i -> j, nil if the synapse does not exist.
    func weight(pre i: Int, post j: Int) -> S? {
        if clearsAutapse && i == j { return nil }
        guard let targets else { return w[i * nPost + j] }
        for q in start[i]..<start[i + 1] where Int(targets[q]) == j { return w[q] }
        return nil
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
        let nPre = nPre, alpha = alpha, zBar = zBar
        if everyStep {
            // §5.3: every column processes every entry and calls the optimizer with idx tau + 1. All columns have
            // received the same calls since step 0, so their optimizer state is equal: one plan for all of them.
            for i in 0..<nPre { zBar[i] = alpha * zBar[i] + s[i] }
            let plan = optimizer.plan(column: 0, idx: tau + 1)
            run(nil, nPre, psi: psi, fReg: fReg, L: L, plans: nil, shared: plan)
            for i in 0..<nPre {
                finish(column: i, plan)
                if i > 0 && optimizer.etaChanged && optimizer.nOptimize[i] == 0 {
                    optimizer.etaCurrent[i] = optimizer.etaFirstChange
                }
                optimizer.commit(column: i, plan)
            }
            return
        }
        // The schedule of the live columns (NEST's bookkeeping, §5.1 step 2), then the synapses of the active ones in
        // one pass (their work is independent). Columns without a spike yet do nothing (NEST only records the spike
        // time); a column past the cutoff leaves the list: the gradients of its entries are never computed, and the
        // number of entries whose decay is due is counted at its next spike.
        let tLast = tLast, decayPending = decayPending, cutoff = cutoff, perStep = perStep
        let active = active, plans = plans, live = live
        var count = 0
        // (Wrapping arithmetic: stamps and counts are far from Int's limits; no overflow checks in this loop.)
        var k = 0
        while k < liveCount {
            let i = live[k]
            if tau &- (tLast[i] &- 1) >= cutoff {
                liveCount &-= 1
                live[k] = live[liveCount]
                isLive[i] = false
                continue
            }
            k &+= 1
            if decayPending[i] > 0 { decay(column: i) }
            // z_bar with the arrival of this very entry (the spike buffer of NEST's compute_gradient).
            zBar[i] = alpha * zBar[i] + s[i]
            // optimize_each_step: one call per entry, index tau + 1.
            if perStep { plans[count] = optimizer.plan(column: i, idx: tau &+ 1) }
            active[count] = i
            count &+= 1
        }
        guard count > 0 else { return }
        run(active, count, psi: psi, fReg: fReg, L: L, plans: perStep ? plans : nil, shared: nil)
        for k in 0..<count {
            let i = active[k]
            if perStep {
                finish(column: i, plans[k])
                optimizer.commit(column: i, plans[k])
            } else if clearsAutapse {
                clearAutapse(i)
            }
        }
    }

    /// The synapses of `count` columns (`list[k]`, or column k without a list) for one entry, on this thread or
    /// shared with the helper threads (split where each share holds about as many synapses).
    @inline(__always)
    private func run(
        _ list: UnsafePointer<Int>?, _ count: Int, psi: UnsafePointer<S>, fReg: UnsafePointer<S>, L: UnsafePointer<S>,
        plans: UnsafePointer<OnlineStepPlan<S>>?, shared: OnlineStepPlan<S>?
    ) {
        guard let workers else {
            columns(list, 0..<count, scratch: 0, psi: psi, fReg: fReg, L: L, plans: plans, shared: shared)
            return
        }
        var synapses = 0
        for k in 0..<count { let i = list?[k] ?? k; synapses &+= start[i + 1] &- start[i] }
        guard synapses >= onlineParallelMinimum else {
            columns(list, 0..<count, scratch: 0, psi: psi, fReg: fReg, L: L, plans: plans, shared: shared)
            return
        }
        let threads = workers.count + 1, b = bounds
        b[0] = 0
        var k = 0, sum = 0
        for w in 1..<threads {
            let goal = synapses * w / threads
            while k < count && sum < goal { let i = list?[k] ?? k; sum &+= start[i + 1] &- start[i]; k &+= 1 }
            b[w] = k
        }
        b[threads] = count
        job = Job(list: list, psi: psi, fReg: fReg, L: L, plans: plans, shared: shared)
        workers.post(self)
        columns(list, 0..<b[1], scratch: 0, psi: psi, fReg: fReg, L: L, plans: plans, shared: shared)
        workers.wait()
    }

    /// Share w of the posted job (on helper thread w).
    func runShare(_ w: Int) {
        let j = job
        columns(j.list, bounds[w]..<bounds[w + 1], scratch: w, psi: j.psi!, fReg: j.fReg!, L: j.L!, plans: j.plans, shared: j.shared)
    }

    /// The synapses of columns `range` of the list (or the columns themselves without a list) for one entry:
    /// traces (§2), then either G += g (per-spike mode: no plans) or the optimizer call of the column's plan with this
    /// g, SIMD-wide; with the scratch row of thread `scratch`.
    @inline(__always)
    private func columns(
        _ list: UnsafePointer<Int>?, _ range: Range<Int>, scratch: Int, psi: UnsafePointer<S>, fReg: UnsafePointer<S>,
        L: UnsafePointer<S>, plans: UnsafePointer<OnlineStepPlan<S>>?, shared: OnlineStepPlan<S>?
    ) {
        // The SIMD code runs in concrete (non-generic) methods: the optimizer specializes and inlines it there.
        if S.self == Double.self {
            unsafeDowncast(self, to: OnlineProjection<Double>.self).columnsDouble(
                list, range, scratch, psi: retyped(psi, Double.self), fReg: retyped(fReg, Double.self), L: retyped(L, Double.self),
                plans: plans.map { retyped($0, OnlineStepPlan<Double>.self) },
                shared: unsafeBitCast(shared, to: OnlineStepPlan<Double>?.self))
        } else if S.self == Float.self {
            unsafeDowncast(self, to: OnlineProjection<Float>.self).columnsFloat(
                list, range, scratch, psi: retyped(psi, Float.self), fReg: retyped(fReg, Float.self), L: retyped(L, Float.self),
                plans: plans.map { retyped($0, OnlineStepPlan<Float>.self) },
                shared: unsafeBitCast(shared, to: OnlineStepPlan<Float>?.self))
        } else {
            preconditionFailure("OnlineProjection: Float or Double required")
        }
    }

    /// `columns` with V = SIMD lanes of S.
    @inline(__always)
    fileprivate func columns<V: SIMD>(
        _: V.Type, _ list: UnsafePointer<Int>?, _ range: Range<Int>, _ scratch: Int, psi: UnsafePointer<S>,
        fReg: UnsafePointer<S>, L: UnsafePointer<S>, plans: UnsafePointer<OnlineStepPlan<S>>?, shared: OnlineStepPlan<S>?
    ) where V.Scalar: BinaryFloatingPoint {
        let zBar = zBar
        for k in range {
            let i = list?[k] ?? k
            column(V.self, i, scratch, zb: zBar[i], psi: psi, fReg: fReg, L: L, plan: shared ?? plans?[k])
        }
    }

    /// After the SIMD pass: Adam's catch-up iterations and clip when the call has them, then the autapse. (Kept out
    /// of the SIMD code: a call to the optimizer from there stopped the compiler from specializing it.)
    @inline(__always)
    private func finish(column i: Int, _ plan: OnlineStepPlan<S>?) {
        if let plan, plan.kind == .adam && plan.catchUp > 0 {
            let base = start[i]
            optimizer.adamCatchUpAndClip(plan, w: w + base, m: m + base, v: v + base, 0, start[i + 1] - base)
        }
        if clearsAutapse { clearAutapse(i) }
    }

    /// The synapses of column i for one entry with V = SIMD lanes of S (V.Scalar is S: the caller checks). Per-spike
    /// mode: one pass (traces, G += g); per-step gradient descent: one pass (traces, the step); otherwise the traces
    /// write g into `gColumn` and the optimizer pass reads it.
    @inline(__always)
    fileprivate func column<V: SIMD>(
        _: V.Type, _ i: Int, _ scratch: Int, zb zbS: S, psi psiS: UnsafePointer<S>, fReg fRegS: UnsafePointer<S>,
        L LS: UnsafePointer<S>, plan: OnlineStepPlan<S>?
    ) where V.Scalar: BinaryFloatingPoint {
        typealias T = V.Scalar
        let base = start[i], n = start[i + 1] - base, row = scratch * nPost
        let gColumn = gColumn + row, psiColumn = psiColumn + row, fColumn = fColumn + row, lColumn = lColumn + row
        var (psiS, fRegS, LS) = (psiS, fRegS, LS)
        if let targets {
            // Sparse: psi, F and L of this column's targets, contiguous for the kernels.
            let tq = targets + base
            for k in 0..<n { psiColumn[k] = psiS[Int(tq[k])] }
            if target == .recurrent {
                for k in 0..<n {
                    fColumn[k] = fRegS[Int(tq[k])]
                    lColumn[k] = LS[Int(tq[k])]
                }
            }
            (psiS, fRegS, LS) = (UnsafePointer(psiColumn), UnsafePointer(fColumn), UnsafePointer(lColumn))
        }
        let psi = retyped(psiS, T.self), fReg = retyped(fRegS, T.self), L = retyped(LS, T.self)
        let zb = unsafeBitCast(zbS, to: T.self)
        // Where g goes: G (per-spike mode), straight into gradient descent (per-step mode: one pass), or the scratch
        // column that the optimizer pass reads (Adam, and calls that do not step).
        let sink: OnlineGradientSink<T>
        if let plan, plan.kind == .gradientDescent {
            let o = optimizer
            sink = OnlineGradientSink(
                mode: .gradientDescent, out: retyped(gColumn, T.self), c: retyped(c + base, T.self),
                w: retyped(w + base, T.self), batch: unsafeBitCast(o.batchSizeS, to: T.self),
                eta: unsafeBitCast(plan.eta, to: T.self), wMin: unsafeBitCast(o.wMin, to: T.self),
                wMax: unsafeBitCast(o.wMax, to: T.self))
        } else {
            sink = OnlineGradientSink(mode: plan == nil ? .accumulate : .store, out: retyped(plan == nil ? gSum + base : gColumn, T.self))
        }
        switch target {
        case .recurrent:
            let eB = retyped(eBar + base, T.self), eR = retyped(eBarReg + base, T.self)
            let kappa = unsafeBitCast(self.kappa, to: T.self), kappaReg = unsafeBitCast(self.kappaReg, to: T.self)
            let omk = unsafeBitCast(oneMinusKappaReg, to: T.self)
            if adaptive {
                let rho = unsafeBitCast(self.rho, to: T.self), beta = unsafeBitCast(self.beta, to: T.self)
                onlineAdaptiveTraces(
                    V.self, n, zb: zb, kappa: kappa, kappaReg: kappaReg, oneMinusKappaReg: omk, rho: rho, beta: beta,
                    psi: psi, L: L, F: fReg, eBar: eB, eBarReg: eR, eps: retyped(eps + base, T.self), sink: sink)
            } else {
                onlineTraces(
                    V.self, n, zb: zb, kappa: kappa, kappaReg: kappaReg, oneMinusKappaReg: omk, psi: psi, L: L, F: fReg,
                    eBar: eB, eBarReg: eR, sink: sink)
            }
        case .readout:
            onlineReadoutTraces(V.self, n, zb: zb, err: psi, sink: sink)
        }
        if let plan, plan.kind != .gradientDescent { optimize(V.self, i, plan, gradient: sink.out, resetGradient: false) }
    }

    /// One `optimized_weight` call for every synapse of column i with the gradients at `g`.
    @inline(__always)
    fileprivate func optimize<V: SIMD>(
        _: V.Type, _ i: Int, _ plan: OnlineStepPlan<S>, gradient g: UnsafeMutablePointer<V.Scalar>, resetGradient: Bool
    ) where V.Scalar: BinaryFloatingPoint {
        typealias T = V.Scalar
        let o = optimizer, base = start[i]
        func t(_ x: S) -> T { unsafeBitCast(x, to: T.self) }
        onlineOptimizerStep(
            V.self, start[i + 1] - base, plan.kind, g: g, c: retyped(c + base, T.self), w: retyped(w + base, T.self),
            m: retyped(o.kind == .adam ? m + base : c + base, T.self), v: retyped(o.kind == .adam ? v + base : c + base, T.self),
            batch: t(o.batchSizeS), eta: t(plan.eta), alpha: t(plan.alpha), beta1: t(o.beta1), beta2: t(o.beta2),
            oneMinusBeta1: t(o.oneMinusBeta1), oneMinusBeta2: t(o.oneMinusBeta2), epsilon: t(o.epsilon), wMin: t(o.wMin),
            wMax: t(o.wMax), clip: plan.catchUp == 0, resetGradient: resetGradient)
    }

    /// The autapse i -> i does not exist: the column loops run over every target for speed, and this puts the
    /// state of i -> i back to 0 (it is independent of every other synapse, so nothing else changes).
    @inline(__always)
    private func clearAutapse(_ i: Int) {
        guard i < nPost else { return }
        let k = i * nPost + i
        w[k] = 0
        c[k] = 0
        if target == .recurrent {
            eBar[k] = 0
            eBarReg[k] = 0
            if adaptive { eps[k] = 0 }
        }
        if optimizer.kind == .adam {
            m[k] = 0
            v[k] = 0
        }
        if !perStep { gSum[k] = 0 }
    }

    /// NEST's deferred decay of the traces over `decay_pending` entries past the cutoff, with one std::pow each.
    @inline(__always)
    private func decay(column i: Int) {
        let nd = Double(decayPending[i])
        decayPending[i] = 0
        zBar[i] *= S(Foundation.pow(alphaD, nd))
        guard target == .recurrent else { return }
        let (pk, pr) = (S(Foundation.pow(kappaD, nd)), S(Foundation.pow(kappaRegD, nd)))
        let base = start[i], n = start[i + 1] - base, skip = clearsAutapse ? i : -1
        let eB = eBar + base, eR = eBarReg + base
        forRanges(n, skip) { lo, hi in
            for j in lo..<hi {
                eB[j] *= pk
                eR[j] *= pr
            }
        }
        if adaptive {
            let pe = S(Foundation.pow(rhoD, nd)), ep = eps + base
            forRanges(n, skip) { lo, hi in for j in lo..<hi { ep[j] *= pe } }
        }
    }

    /// A spike of column i with stamp t, before it is transmitted (§4.1): in per-spike mode the optimizer call
    /// with index t - 1 and the gradient summed since the previous spike (none at the first spike); then
    /// `t_last` and NEST's stored weights.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    func spike(column i: Int, stamp t: Int) {
        if !perStep && tLast[i] > 0 {
            let plan = optimizer.plan(column: i, idx: t - 1)
            if S.self == Double.self {
                unsafeDowncast(self, to: OnlineProjection<Double>.self).spikeCallDouble(
                    i, unsafeBitCast(plan, to: OnlineStepPlan<Double>.self))
            } else if S.self == Float.self {
                unsafeDowncast(self, to: OnlineProjection<Float>.self).spikeCallFloat(
                    i, unsafeBitCast(plan, to: OnlineStepPlan<Float>.self))
            } else {
                preconditionFailure("OnlineProjection: Float or Double required")
            }
            finish(column: i, plan)
            optimizer.commit(column: i, plan)
        }
        if !isLive[i] {
            // Entries tLast - 1 + C ... t - 2 were past the cutoff (none before the first spike).
            // (A column with a spike leaves the list only with a finite cutoff.)
            if tLast[i] > 0 { decayPending[i] += t - tLast[i] - cutoff }
            live[liveCount] = i
            liveCount += 1
            isLive[i] = true
        }
        tLast[i] = t
        storeColumn(i)
    }

    /// The per-spike optimizer call of column i with G, which it resets to 0.
    @inline(__always)
    fileprivate func spikeCall<V: SIMD>(_: V.Type, _ i: Int, _ plan: OnlineStepPlan<S>) where V.Scalar: BinaryFloatingPoint {
        optimize(V.self, i, plan, gradient: retyped(gSum + start[i], V.Scalar.self), resetGradient: true)
    }

    /// A flush event of column i: NEST brings the stored weight up to date (it changes only in per-step mode).
    @inline(__always)
    func flush(column i: Int) {
        if perStep { storeColumn(i) }
    }

    @inline(__always)
    private func storeColumn(_ i: Int) {
        guard perStep else { return }
        (wStored + start[i]).update(from: w + start[i], count: start[i + 1] - start[i])
    }

    /// in[j] += W[j, i] for every target j of column i: transmission of a spike of column i.
    @inline(__always)
    func transmit(column i: Int, into input: UnsafeMutablePointer<S>) {
        let base = start[i], n = start[i + 1] - base, wi = w + base
        if let targets {
            let tq = targets + base
            for k in 0..<n { input[Int(tq[k])] += wi[k] }
        } else {
            for j in 0..<n { input[j] += wi[j] }
        }
    }
}

/// Synapses an entry (or a network) must hold for helper threads to pay: measured on this project's 2-core machines,
/// 2 threads ran NEST's sine-wave example (20 100 synapses) 1.4x slower than one (helpers spinning beside the main
/// thread, a post per projection and step), and a 600 + 600 network (720 600 synapses) 1.8x faster; between the two,
/// a bound of 32 768.
let onlineParallelMinimum = 32_768

// The SIMD kernels, instantiated in concrete code: 4 doubles or 8 floats per AVX2 register.
extension OnlineProjection where S == Double {
    @inline(never)
    func columnsDouble(
        _ list: UnsafePointer<Int>?, _ range: Range<Int>, _ scratch: Int, psi: UnsafeMutablePointer<Double>,
        fReg: UnsafeMutablePointer<Double>, L: UnsafeMutablePointer<Double>, plans: UnsafeMutablePointer<OnlineStepPlan<Double>>?,
        shared: OnlineStepPlan<Double>?
    ) {
        columns(SIMD4<Double>.self, list, range, scratch, psi: psi, fReg: fReg, L: L, plans: plans, shared: shared)
    }

    @inline(never)
    func spikeCallDouble(_ i: Int, _ plan: OnlineStepPlan<Double>) { spikeCall(SIMD4<Double>.self, i, plan) }
}

extension OnlineProjection where S == Float {
    @inline(never)
    func columnsFloat(
        _ list: UnsafePointer<Int>?, _ range: Range<Int>, _ scratch: Int, psi: UnsafeMutablePointer<Float>,
        fReg: UnsafeMutablePointer<Float>, L: UnsafeMutablePointer<Float>, plans: UnsafeMutablePointer<OnlineStepPlan<Float>>?,
        shared: OnlineStepPlan<Float>?
    ) {
        columns(SIMD8<Float>.self, list, range, scratch, psi: psi, fReg: fReg, L: L, plans: plans, shared: shared)
    }

    @inline(never)
    func spikeCallFloat(_ i: Int, _ plan: OnlineStepPlan<Float>) { spikeCall(SIMD8<Float>.self, i, plan) }
}

// MARK: SIMD kernels over the targets of one column (lanes = synapses; every synapse does the scalar code's
// operations in the scalar code's order, so the results are bitwise those of a plain loop).

/// Where the kernels put each synapse's g: added to G (`accumulate`, per-spike mode), stored (`store`, for the
/// optimizer pass), or used at once by a gradient-descent `optimized_weight` step (`gradientDescent`, NEST's order:
/// c = (c + g) / B; w = clip(w - eta c); c = 0).
struct OnlineGradientSink<T: BinaryFloatingPoint> {
    enum Mode { case accumulate, store, gradientDescent }
    var mode: Mode
    var out: UnsafeMutablePointer<T>
    var c: UnsafeMutablePointer<T>? = nil
    var w: UnsafeMutablePointer<T>? = nil
    var batch: T = 1, eta: T = 0, wMin: T = 0, wMax: T = 0

    /// Runs `lanes(j)` for j = 0, V.scalarCount, ... and `one(j)` for the rest of 0..<n, each giving g of its
    /// synapses, and puts g where the mode says.
    @inline(__always)
    func drain<V: SIMD>(_: V.Type, _ n: Int, _ lanes: (Int) -> V, _ one: (Int) -> T) where V.Scalar == T {
        let width = V.scalarCount, end = n - n % width, out = out
        var j = 0
        switch mode {
        case .accumulate:
            while j < end { store(out, j, load(out, j, V.self) + lanes(j)); j &+= width }
            while j < n { out[j] += one(j); j &+= 1 }
        case .store:
            while j < end { store(out, j, lanes(j)); j &+= width }
            while j < n { out[j] = one(j); j &+= 1 }
        case .gradientDescent:
            let c = c!, w = w!, (B, eta, lo, hi) = (batch, eta, wMin, wMax)
            let (BV, etaV, loV, hiV) = (V(repeating: B), V(repeating: eta), V(repeating: lo), V(repeating: hi))
            while j < end {
                let cj = (load(c, j, V.self) + lanes(j)) / BV
                store(w, j, clipWeights(load(w, j, V.self) - etaV * cj, loV, hiV))
                store(c, j, V())
                j &+= width
            }
            while j < n {
                let cj = (c[j] + one(j)) / B
                w[j] = clipWeight(w[j] - eta * cj, lo, hi)
                c[j] = 0
                j &+= 1
            }
        }
    }
}

/// Recurrent targets, non-adaptive models (§2.1): e = psi z_bar; e_bar = kappa e_bar + e (no (1 - kappa): NEST's
/// code, not its docs); e_bar_reg = kappa_reg e_bar_reg + (1 - kappa_reg) e; g = L e_bar + F e_bar_reg, into `sink`.
@inline(__always)
func onlineTraces<V: SIMD>(
    _: V.Type, _ n: Int, zb: V.Scalar, kappa: V.Scalar, kappaReg: V.Scalar, oneMinusKappaReg omk: V.Scalar,
    psi: UnsafeMutablePointer<V.Scalar>, L: UnsafeMutablePointer<V.Scalar>, F: UnsafeMutablePointer<V.Scalar>,
    eBar eB: UnsafeMutablePointer<V.Scalar>, eBarReg eR: UnsafeMutablePointer<V.Scalar>,
    sink: OnlineGradientSink<V.Scalar>
) where V.Scalar: BinaryFloatingPoint {
    let (zbV, kappaV, kappaRegV, omkV) = (V(repeating: zb), V(repeating: kappa), V(repeating: kappaReg), V(repeating: omk))
    sink.drain(V.self, n) { j in
        let e = load(psi, j, V.self) * zbV
        let b = kappaV * load(eB, j, V.self) + e
        let r = kappaRegV * load(eR, j, V.self) + omkV * e
        store(eB, j, b)
        store(eR, j, r)
        return load(L, j, V.self) * b + load(F, j, V.self) * r
    } _: { j in
        let e = psi[j] * zb
        let b = kappa * eB[j] + e
        let r = kappaReg * eR[j] + omk * e
        eB[j] = b
        eR[j] = r
        return L[j] * b + F[j] * r
    }
}

/// Recurrent targets, adaptive models (§2.1): e = psi (z_bar - beta eps); eps = rho eps + e; then as
/// `onlineTraces`.
@inline(__always)
func onlineAdaptiveTraces<V: SIMD>(
    _: V.Type, _ n: Int, zb: V.Scalar, kappa: V.Scalar, kappaReg: V.Scalar, oneMinusKappaReg omk: V.Scalar,
    rho: V.Scalar, beta: V.Scalar, psi: UnsafeMutablePointer<V.Scalar>, L: UnsafeMutablePointer<V.Scalar>,
    F: UnsafeMutablePointer<V.Scalar>, eBar eB: UnsafeMutablePointer<V.Scalar>, eBarReg eR: UnsafeMutablePointer<V.Scalar>,
    eps ep: UnsafeMutablePointer<V.Scalar>, sink: OnlineGradientSink<V.Scalar>
) where V.Scalar: BinaryFloatingPoint {
    let (zbV, kappaV, kappaRegV, omkV) = (V(repeating: zb), V(repeating: kappa), V(repeating: kappaReg), V(repeating: omk))
    let (rhoV, betaV) = (V(repeating: rho), V(repeating: beta))
    sink.drain(V.self, n) { j in
        let epj = load(ep, j, V.self)
        let e = load(psi, j, V.self) * (zbV - betaV * epj)
        store(ep, j, rhoV * epj + e)
        let b = kappaV * load(eB, j, V.self) + e
        let r = kappaRegV * load(eR, j, V.self) + omkV * e
        store(eB, j, b)
        store(eR, j, r)
        return load(L, j, V.self) * b + load(F, j, V.self) * r
    } _: { j in
        let e = psi[j] * (zb - beta * ep[j])
        ep[j] = rho * ep[j] + e
        let b = kappa * eB[j] + e
        let r = kappaReg * eR[j] + omk * e
        eB[j] = b
        eR[j] = r
        return L[j] * b + F[j] * r
    }
}

/// Readout targets (§2.2): g = err z_bar, into `sink`.
@inline(__always)
func onlineReadoutTraces<V: SIMD>(
    _: V.Type, _ n: Int, zb: V.Scalar, err: UnsafeMutablePointer<V.Scalar>, sink: OnlineGradientSink<V.Scalar>
) where V.Scalar: BinaryFloatingPoint {
    let zbV = V(repeating: zb)
    sink.drain(V.self, n) { j in load(err, j, V.self) * zbV } _: { j in err[j] * zb }
}

/// `optimized_weight` (§4.3) for n synapses with gradients g, in NEST's expression order:
/// * no step: c += g;
/// * gradient descent: c = (c + g) / B; w = clip(w - eta c); c = 0;
/// * Adam: c = (c + g) / B; m = b1 m + (1 - b1) c; v = b2 v + ((1 - b2) c) c; w = w - (alpha m) / (sqrt(v) + eps);
///   c = 0; the clip here only when `clip` (no catch-up iterations follow).
/// `resetGradient`: g = 0 afterwards (the per-spike sum).
@inline(__always)
func onlineOptimizerStep<V: SIMD>(
    _: V.Type, _ n: Int, _ kind: OnlineStepKind, g: UnsafeMutablePointer<V.Scalar>,
    c: UnsafeMutablePointer<V.Scalar>, w: UnsafeMutablePointer<V.Scalar>, m: UnsafeMutablePointer<V.Scalar>,
    v: UnsafeMutablePointer<V.Scalar>, batch B: V.Scalar, eta: V.Scalar, alpha: V.Scalar, beta1 b1: V.Scalar,
    beta2 b2: V.Scalar, oneMinusBeta1 omb1: V.Scalar, oneMinusBeta2 omb2: V.Scalar, epsilon: V.Scalar, wMin: V.Scalar,
    wMax: V.Scalar, clip: Bool, resetGradient: Bool
) where V.Scalar: BinaryFloatingPoint {
    let width = V.scalarCount, end = n - n % width
    var j = 0
    switch kind {
    case .none:
        while j < end { store(c, j, load(c, j, V.self) + load(g, j, V.self)); j &+= width }
        while j < n { c[j] += g[j]; j &+= 1 }
    case .gradientDescent:
        let (BV, etaV, loV, hiV) = (V(repeating: B), V(repeating: eta), V(repeating: wMin), V(repeating: wMax))
        while j < end {
            let cj = (load(c, j, V.self) + load(g, j, V.self)) / BV
            store(w, j, clipWeights(load(w, j, V.self) - etaV * cj, loV, hiV))
            store(c, j, V())
            j &+= width
        }
        while j < n {
            let cj = (c[j] + g[j]) / B
            w[j] = clipWeight(w[j] - eta * cj, wMin, wMax)
            c[j] = 0
            j &+= 1
        }
    case .adam:
        let (BV, alphaV, b1V, b2V) = (V(repeating: B), V(repeating: alpha), V(repeating: b1), V(repeating: b2))
        let (omb1V, omb2V, epsV, loV, hiV) = (
            V(repeating: omb1), V(repeating: omb2), V(repeating: epsilon), V(repeating: wMin), V(repeating: wMax)
        )
        while j < end {
            let cj = (load(c, j, V.self) + load(g, j, V.self)) / BV
            let mj = b1V * load(m, j, V.self) + omb1V * cj
            let vj = b2V * load(v, j, V.self) + omb2V * cj * cj
            store(m, j, mj)
            store(v, j, vj)
            let wj = load(w, j, V.self) - alphaV * mj / (laneSquareRoot(vj) + epsV)
            store(w, j, clip ? clipWeights(wj, loV, hiV) : wj)
            store(c, j, V())
            j &+= width
        }
        while j < n {
            let cj = (c[j] + g[j]) / B
            let mj = b1 * m[j] + omb1 * cj
            let vj = b2 * v[j] + omb2 * cj * cj
            m[j] = mj
            v[j] = vj
            let wj = w[j] - alpha * mj / (vj.squareRoot() + epsilon)
            w[j] = clip ? clipWeight(wj, wMin, wMax) : wj
            c[j] = 0
            j &+= 1
        }
    }
    if resetGradient { g.update(repeating: 0, count: n) }
}

/// Calls `body(lo, hi)` for the ranges covering 0..<count without `skip` (-1: none): one or two plain ranges, so
/// that the loops inside stay branch-free.
@inline(__always)
func forRanges(_ count: Int, _ skip: Int, _ body: (Int, Int) -> Void) {
    if skip < 0 {
        body(0, count)
    } else {
        body(0, skip)
        body(skip + 1, count)
    }
}

/// The same storage seen as T (S and T are the same type: the callers check).
@inline(__always)
func retyped<S, T>(_ p: UnsafePointer<S>, _: T.Type) -> UnsafeMutablePointer<T> {
    UnsafeMutableRawPointer(mutating: p).assumingMemoryBound(to: T.self)
}

@inline(__always)
func retyped<S, T>(_ p: UnsafeMutablePointer<S>, _: T.Type) -> UnsafeMutablePointer<T> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: T.self)
}

/// V.scalarCount values from p + j (unaligned).
@inline(__always)
func load<V: SIMD>(_ p: UnsafeMutablePointer<V.Scalar>, _ j: Int, _: V.Type) -> V {
    UnsafeRawPointer(p + j).loadUnaligned(as: V.self)
}

@inline(__always)
func store<V: SIMD>(_ p: UnsafeMutablePointer<V.Scalar>, _ j: Int, _ x: V) {
    UnsafeMutableRawPointer(p + j).storeBytes(of: x, as: V.self)
}

/// `clipWeight` lane by lane (the same selects: NaN stays NaN, below Wmin gives Wmin, above Wmax gives Wmax).
@inline(__always)
func clipWeights<V: SIMD>(_ w: V, _ lo: V, _ hi: V) -> V where V.Scalar: FloatingPoint {
    var x = w
    for l in 0..<V.scalarCount { x[l] = clipWeight(w[l], lo[l], hi[l]) }
    return x
}

/// The correctly rounded square root of every lane (Swift's scalar one: the same bits as NEST's std::sqrt).
@inline(__always)
func laneSquareRoot<V: SIMD>(_ x: V) -> V where V.Scalar: FloatingPoint {
    var r = x
    for l in 0..<V.scalarCount { r[l] = x[l].squareRoot() }
    return r
}
