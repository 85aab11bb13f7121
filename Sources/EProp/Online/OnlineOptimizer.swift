import Foundation

/// NEST 3.10's `WeightOptimizer::optimized_weight` (`models/weight_optimizer.cpp`, eprop-online-spec.md §4.3) for
/// the synapses of one projection, with the per-synapse optimizer state that NEST keeps in every synapse stored
/// once per presynaptic column: all synapses of a column receive the same sequence of calls (same index, same
/// schedule), so their step counter, Adam's beta powers, current eta and step count are equal. The cumulative
/// gradient c and Adam's m and v are per synapse (they live in `OnlineProjection`).
///
/// Semantics kept exactly:
/// * the step counter is absolute time: a call with index idx steps iff k0 < k = 1 + idx / batch_size; after it
///   the synapse has done idx / batch_size iterations, whatever its history;
/// * gradient descent does ONE step with c / batch_size however many batches passed;
/// * Adam catches up k - k0 iterations: the gradient at the oldest pending iteration first, then zeros;
/// * clipping to [Wmin, Wmax] once after the step (after the whole catch-up);
/// * the eta quirk: every synapse's optimizer starts at eta = 1e-4; its first step uses the first value eta was
///   ever changed to, later steps the current eta.
///
/// A call is split in two so that the per-synapse arithmetic can be fused with the trace update of the same entry
/// (`OnlineProjection`): `plan(column:idx:)` makes the per-column decisions (does it step, eta, Adam's first
/// alpha), the caller runs the per-synapse loop of `OnlineStepPlan`, then `commit(column:_:)` stores the column's
/// new state. The per-synapse expressions are NEST's, in NEST's order (see `OnlineStepPlan`).
final class OnlineWeightOptimizer<S: Scalar> {
    let kind: OptimizerKind
    let batchSize: Int
    let batchSizeS: S
    let wMin: S, wMax: S
    let beta1: S, beta2: S, oneMinusBeta1: S, oneMinusBeta2: S, epsilon: S
    /// cp.eta_: the current learning rate of the synapse model.
    private(set) var eta: S
    /// cp.eta_first_change_ and whether eta was ever changed (cp.eta_change_count_ != 0).
    private(set) var etaFirstChange: S
    private(set) var etaChanged: Bool

    // MARK: per-column state [nPre] (raw storage: no exclusivity checks in the time loop)
    let columns: Int
    /// `optimization_step_` k0 (starts at 1).
    let k0: UnsafeMutablePointer<Int>
    /// Adam's `beta_1_power_`, `beta_2_power_` (start at 1).
    let beta1Power: UnsafeMutablePointer<S>
    let beta2Power: UnsafeMutablePointer<S>
    /// `eta_current_` (starts at 1e-4) and `n_optimize_`.
    let etaCurrent: UnsafeMutablePointer<S>
    let nOptimize: UnsafeMutablePointer<Int>

    init(_ p: OnlineOptimizerParameters, columns: Int) {
        kind = p.kind
        batchSize = p.batchSize
        batchSizeS = S(p.batchSize)
        (wMin, wMax) = (S(p.wMin), S(p.wMax))
        (beta1, beta2, epsilon) = (S(p.beta1), S(p.beta2), S(p.epsilon))
        (oneMinusBeta1, oneMinusBeta2) = (S(1 - p.beta1), S(1 - p.beta2))
        // NEST's common properties start at eta = 1e-4; SetDefaults with another value is its first change.
        eta = S(1e-4)
        etaFirstChange = S(1e-4)
        etaChanged = false
        self.columns = columns
        let n = max(columns, 1)
        k0 = .allocate(capacity: n)
        k0.initialize(repeating: 1, count: n)
        beta1Power = .allocate(capacity: n)
        beta1Power.initialize(repeating: 1, count: n)
        beta2Power = .allocate(capacity: n)
        beta2Power.initialize(repeating: 1, count: n)
        etaCurrent = .allocate(capacity: n)
        etaCurrent.initialize(repeating: S(1e-4), count: n)
        nOptimize = .allocate(capacity: n)
        nOptimize.initialize(repeating: 0, count: n)
        setEta(p.eta)
    }

    deinit {
        k0.deallocate()
        beta1Power.deallocate()
        beta2Power.deallocate()
        etaCurrent.deallocate()
        nOptimize.deallocate()
    }

    /// NEST's `set_status` of `eta`: a value different from the current one counts as a change; the first change
    /// is remembered.
    func setEta(_ value: Double) {
        let new = S(value)
        guard new != eta else { return }
        if !etaChanged { etaFirstChange = new }
        etaChanged = true
        eta = new
    }

    /// The per-column part of `optimized_weight(idx, ...)` for column i: the eta quirk, whether the call steps,
    /// and Adam's first alpha. Nothing is stored until `commit`.
    @inline(__always)
    func plan(column i: Int, idx: Int) -> OnlineStepPlan<S> {
        if etaChanged && nOptimize[i] == 0 { etaCurrent[i] = etaFirstChange }
        let k = 1 + idx / batchSize
        let k0i = k0[i]
        guard k0i < k else { return OnlineStepPlan(kind: .none, k: k, catchUp: 0, eta: 0, alpha: 0, b1p: 0, b2p: 0) }
        let etaNow = etaCurrent[i]
        switch kind {
        case .gradientDescent:
            return OnlineStepPlan(kind: .gradientDescent, k: k, catchUp: 0, eta: etaNow, alpha: 0, b1p: 0, b2p: 0)
        case .adam:
            // First iteration: the accumulated gradient, at the oldest pending iteration k0. NEST's order:
            // (eta sqrt(1 - beta2^p)) / (1 - beta1^p).
            let b1p = beta1Power[i] * beta1, b2p = beta2Power[i] * beta2
            let alpha = etaNow * (1 - b2p).squareRoot() / (1 - b1p)
            return OnlineStepPlan(kind: .adam, k: k, catchUp: k - k0i - 1, eta: etaNow, alpha: alpha, b1p: b1p, b2p: b2p)
        }
    }

    /// Stores the column's state after the per-synapse loop of a stepping plan (nothing for a plan that does not
    /// step: `optimized_weight` returns before its bookkeeping then).
    @inline(__always)
    func commit(column i: Int, _ plan: OnlineStepPlan<S>) {
        guard plan.kind != .none else { return }
        if plan.kind == .adam {
            // The powers after the catch-up iterations.
            var (b1p, b2p) = (plan.b1p, plan.b2p)
            for _ in 0..<plan.catchUp {
                b1p *= beta1
                b2p *= beta2
            }
            (beta1Power[i], beta2Power[i]) = (b1p, b2p)
        }
        etaCurrent[i] = eta
        nOptimize[i] += 1
        k0[i] = plan.k
    }

    /// Adam's catch-up after the first iteration: `plan.catchUp` zero-gradient iterations (they still move w
    /// through m), then the clip, over synapses lo..<hi of one column (pointers at the column's first synapse).
    @inline(__always)
    func adamCatchUpAndClip(
        _ plan: OnlineStepPlan<S>, w: UnsafeMutablePointer<S>, m: UnsafeMutablePointer<S>, v: UnsafeMutablePointer<S>,
        _ lo: Int, _ hi: Int
    ) {
        let (beta1, beta2, epsilon, etaNow) = (beta1, beta2, epsilon, plan.eta)
        var (b1p, b2p) = (plan.b1p, plan.b2p)
        for _ in 0..<plan.catchUp {
            b1p *= beta1
            b2p *= beta2
            let alpha = etaNow * (1 - b2p).squareRoot() / (1 - b1p)
            for j in lo..<hi {
                let mj = beta1 * m[j]
                let vj = beta2 * v[j]
                m[j] = mj
                v[j] = vj
                w[j] = w[j] - alpha * mj / (vj.squareRoot() + epsilon)
            }
        }
        let (lo_, hi_) = (wMin, wMax)
        for j in lo..<hi { w[j] = clipWeight(w[j], lo_, hi_) }
    }
}

/// The per-column decisions of one `optimized_weight` call (see `OnlineWeightOptimizer.plan`).
struct OnlineStepPlan<S: Scalar> {
    typealias Kind = OnlineStepKind
    /// `.none`: no step (the gradient is only accumulated into c).
    var kind: Kind
    /// The new step counter k = 1 + idx / batch_size.
    var k: Int
    /// Adam: zero-gradient iterations after the first one (k - k0 - 1).
    var catchUp: Int
    /// `eta_current_` for this step.
    var eta: S
    /// Adam: alpha of the first iteration and the beta powers after it.
    var alpha: S
    var b1p: S
    var b2p: S
}

/// What an `optimized_weight` call does per synapse.
enum OnlineStepKind { case none, gradientDescent, adam }

/// NEST's clip to [Wmin, Wmax] (as a select: vectorizes).
@inline(__always)
func clipWeight<S: FloatingPoint>(_ w: S, _ lo: S, _ hi: S) -> S { w < lo ? lo : (hi < w ? hi : w) }
