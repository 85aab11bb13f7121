import Foundation

/// What an optimizer carries from one step to the next, as a value (the optax / NEST
/// `weight_optimizer` split of a rule from its state): copying it copies the state.
public struct OptimizerState<S: Scalar>: Sendable, Equatable {
    /// Optimizer steps taken so far (NEST's batch index t, 1-based at the step).
    public var step = 0
    /// Adam's first and second moments, one flat array per trained matrix (same shapes as the
    /// weights, `[post * pre]`); empty for gradient descent, which has no moments.
    public var firstMoment: [[S]] = []
    public var secondMoment: [[S]] = []

    public init(step: Int = 0, firstMoment: [[S]] = [], secondMoment: [[S]] = []) {
        (self.step, self.firstMoment, self.secondMoment) = (step, firstMoment, secondMoment)
    }
}

/// NEST's weight optimizers of `eprop_synapse_bsshslm_2020` (docs/mathematics.md §4.4), applied
/// densely once per batch to every trained matrix, followed by clipping to [Wmin, Wmax]:
/// `initialState` and `update`, with the state passed in and out explicitly.
public struct Optimizer: Sendable {
    public let parameters: OptimizerParameters

    public init(_ parameters: OptimizerParameters) { self.parameters = parameters }

    /// Elements per block of Adam's loops: four arrays of 1024 Float64 are 32 KiB, within L1.
    static let block = 1024

    /// The state before the first step, for trained matrices of the given sizes (`rows * cols`).
    public func initialState<S: Scalar>(_: S.Type = S.self, sizes: [Int]) -> OptimizerState<S> {
        switch parameters.kind {
        case .gradientDescent: return OptimizerState()
        case .adam:
            let zeros = sizes.map { [S](repeating: 0, count: $0) }
            return OptimizerState(firstMoment: zeros, secondMoment: zeros)
        }
    }

    /// Whether `state` has the moments this rule needs for matrices of `sizes`.
    public func isValid<S: Scalar>(_ state: OptimizerState<S>, sizes: [Int]) -> Bool {
        switch parameters.kind {
        case .gradientDescent: return state.firstMoment.isEmpty && state.secondMoment.isEmpty
        case .adam: return state.firstMoment.map(\.count) == sizes && state.secondMoment.map(\.count) == sizes
        }
    }

    /// One step on each `weights[n]` with the batch-mean gradient `gradients[n]`.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func update<S: Scalar>(_ state: inout OptimizerState<S>, weights: [Matrix<S>], gradients: [Matrix<S>]) {
        precondition(weights.count == gradients.count)
        state.step += 1
        let o = parameters
        let (wMin, wMax) = (S(o.wMin), S(o.wMax))
        switch o.kind {
        case .gradientDescent:
            let eta = S(o.eta)
            for (w, g) in zip(weights, gradients) {
                for i in 0..<w.count { w.p[i] = min(wMax, max(wMin, w.p[i] - eta * g.p[i])) }
            }
        case .adam:
            precondition(state.firstMoment.count == weights.count && state.secondMoment.count == weights.count)
            let t = Double(state.step)
            // The bias corrections go into the step size ("epsilon-hat" form, as NEST and TF).
            let stepSize = S(o.eta * (1 - Foundation.pow(o.beta2, t)).squareRoot() / (1 - Foundation.pow(o.beta1, t)))
            let (b1, b2, eps) = (S(o.beta1), S(o.beta2), S(o.epsilon))
            for n in 0..<weights.count {
                let w = weights[n].p, g = gradients[n].p, count = weights[n].count
                state.firstMoment[n].withUnsafeMutableBufferPointer { mm in
                    state.secondMoment[n].withUnsafeMutableBufferPointer { vv in
                        // Same expression order as NEST's weight_optimizer.cpp; three loops over
                        // few arrays each, which the compiler vectorizes (one loop did not), run
                        // block by block so that a block's g, m and v are still in L1 for the
                        // next loop (the whole arrays are larger than L2 at n_rec 200).
                        let (m, v) = (mm.baseAddress!, vv.baseAddress!)
                        for start in stride(from: 0, to: count, by: Self.block) {
                            let block = start..<min(start + Self.block, count)
                            for i in block { m[i] = b1 * m[i] + (1 - b1) * g[i] }
                            for i in block { v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i] }
                            for i in block { w[i] = min(wMax, max(wMin, w[i] - stepSize * m[i] / (v[i].squareRoot() + eps))) }
                        }
                    }
                }
            }
        }
    }
}
