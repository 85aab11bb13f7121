import Foundation

/// NEST 3.10's `WeightOptimizer::optimized_weight` (`models/weight_optimizer.cpp`, eprop-online-spec.md §4.3) for
/// the synapses of one projection, with the per-synapse optimizer state that NEST keeps in every synapse stored
/// once per presynaptic column: all synapses of a column receive the same sequence of calls (same index, same
/// schedule), so their step counter, Adam's beta powers, current eta and step count are equal. The cumulative
/// gradient c and Adam's m and v are per synapse.
///
/// Semantics kept exactly:
/// * the step counter is absolute time: a call with index idx steps iff k0 < k = 1 + idx / batch_size; after it
///   the synapse has done idx / batch_size iterations, whatever its history;
/// * gradient descent does ONE step with c / batch_size however many batches passed;
/// * Adam catches up k - k0 iterations: the gradient at the oldest pending iteration first, then zeros;
/// * clipping to [Wmin, Wmax] once after the step (after the whole catch-up);
/// * the eta quirk: every synapse's optimizer starts at eta = 1e-4; its first step uses the first value eta was
///   ever changed to, later steps the current eta.
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

    // MARK: per-column state [nPre]
    /// `optimization_step_` k0 (starts at 1).
    var k0: [Int]
    /// Adam's `beta_1_power_`, `beta_2_power_` (start at 1).
    var beta1Power: [S]
    var beta2Power: [S]
    /// `eta_current_` (starts at 1e-4) and `n_optimize_`.
    var etaCurrent: [S]
    var nOptimize: [Int]

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
        k0 = [Int](repeating: 1, count: columns)
        beta1Power = [S](repeating: 1, count: columns)
        beta2Power = [S](repeating: 1, count: columns)
        etaCurrent = [S](repeating: S(1e-4), count: columns)
        nOptimize = [Int](repeating: 0, count: columns)
        setEta(p.eta)
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

    /// One `optimized_weight(idx, g, w)` for every synapse of column `i`, whose state sits at `w`, `c`, `m`, `v`
    /// (`count` targets, target `skip` left out: the missing autapse; -1 for none). `g` nil means g = 0.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    func call(
        column i: Int, idx: Int, g: UnsafePointer<S>?, w: UnsafeMutablePointer<S>, c: UnsafeMutablePointer<S>,
        m: UnsafeMutablePointer<S>, v: UnsafeMutablePointer<S>, count: Int, skip: Int
    ) {
        if etaChanged && nOptimize[i] == 0 { etaCurrent[i] = etaFirstChange }
        let k = 1 + idx / batchSize
        guard k0[i] < k else {
            // No step: accumulate only.
            if let g { forEachTarget(count, skip: skip) { j in c[j] += g[j] } }
            return
        }
        let etaNow = etaCurrent[i]
        let (lo, hi) = (wMin, wMax)
        switch kind {
        case .gradientDescent:
            forEachTarget(count, skip: skip) { j in
                // c <- (c + g) / B; w <- w - eta c; then clip.
                let cj = (c[j] + (g?[j] ?? 0)) / batchSizeS
                let wj = w[j] - etaNow * cj
                w[j] = wj < lo ? lo : (hi < wj ? hi : wj)
                c[j] = 0
            }
        case .adam:
            var b1p = beta1Power[i], b2p = beta2Power[i]
            // First iteration: the accumulated gradient, at the oldest pending iteration k0.
            b1p *= beta1
            b2p *= beta2
            var alpha = etaNow * (1 - b2p).squareRoot() / (1 - b1p)
            forEachTarget(count, skip: skip) { j in
                let cj = (c[j] + (g?[j] ?? 0)) / batchSizeS
                m[j] = beta1 * m[j] + oneMinusBeta1 * cj
                v[j] = beta2 * v[j] + oneMinusBeta2 * cj * cj
                w[j] = w[j] - alpha * m[j] / (v[j].squareRoot() + epsilon)
                c[j] = 0
            }
            // Then the catch-up with zero gradients: they still move w through m.
            var step = k0[i] + 1
            while step < k {
                b1p *= beta1
                b2p *= beta2
                alpha = etaNow * (1 - b2p).squareRoot() / (1 - b1p)
                forEachTarget(count, skip: skip) { j in
                    m[j] = beta1 * m[j]
                    v[j] = beta2 * v[j]
                    w[j] = w[j] - alpha * m[j] / (v[j].squareRoot() + epsilon)
                }
                step += 1
            }
            forEachTarget(count, skip: skip) { j in
                let wj = w[j]
                w[j] = wj < lo ? lo : (hi < wj ? hi : wj)
            }
            (beta1Power[i], beta2Power[i]) = (b1p, b2p)
        }
        etaCurrent[i] = eta
        nOptimize[i] += 1
        k0[i] = k
    }
}

/// Calls `body(j)` for j in 0..<count except `skip` (-1: none), as two plain loops.
@inline(__always)
func forEachTarget(_ count: Int, skip: Int, _ body: (Int) -> Void) {
    let first = skip < 0 ? count : skip
    for j in 0..<first { body(j) }
    if skip >= 0 { for j in (skip + 1)..<count { body(j) } }
}
