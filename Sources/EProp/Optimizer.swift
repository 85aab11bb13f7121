import Foundation

/// NEST's weight optimizers for `eprop_synapse_bsshslm_2020` (spec 4.4), applied densely once
/// per batch to every trained matrix, followed by clipping to [Wmin, Wmax].
public final class Optimizer<S: Scalar>: @unchecked Sendable {
    public let parameters: OptimizerParameters
    /// Optimizer steps taken so far (NEST's batch index t, 1-based at the step).
    public internal(set) var step = 0
    /// Adam's first and second moments, one pair per trained matrix (same shapes).
    public let m: [Matrix<S>]
    public let v: [Matrix<S>]

    public init(_ parameters: OptimizerParameters, shapes: [(rows: Int, cols: Int)]) {
        self.parameters = parameters
        m = shapes.map { Matrix(rows: $0.rows, cols: $0.cols) }
        v = shapes.map { Matrix(rows: $0.rows, cols: $0.cols) }
    }

    /// An independent copy (moments and step).
    public func copy() -> Optimizer<S> {
        let o = Optimizer(parameters, shapes: m.map { ($0.rows, $0.cols) })
        o.restore(from: self)
        return o
    }

    /// Takes over the moments and the step of `other`.
    public func restore(from other: Optimizer<S>) {
        step = other.step
        for (a, b) in zip(m + v, other.m + other.v) { a.copy(from: b) }
    }

    /// One step on each `weights[n]` with the batch-mean gradient `gradients[n]`.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func apply(weights: [Matrix<S>], gradients: [Matrix<S>]) {
        precondition(weights.count == m.count && gradients.count == m.count)
        step += 1
        let o = parameters
        let (wMin, wMax) = (S(o.wMin), S(o.wMax))
        switch o.kind {
        case .gradientDescent:
            let eta = S(o.eta)
            for (w, g) in zip(weights, gradients) {
                for i in 0..<w.count { w.p[i] = min(wMax, max(wMin, w.p[i] - eta * g.p[i])) }
            }
        case .adam:
            let t = Double(step)
            // The bias corrections go into the step size ("epsilon-hat" form, as NEST and TF).
            let stepSize = S(o.eta * (1 - Foundation.pow(o.beta2, t)).squareRoot() / (1 - Foundation.pow(o.beta1, t)))
            let (b1, b2, eps) = (S(o.beta1), S(o.beta2), S(o.epsilon))
            for n in 0..<weights.count {
                let w = weights[n].p, g = gradients[n].p, mm = m[n].p, vv = v[n].p
                for i in 0..<weights[n].count {
                    // Same expression order as NEST's weight_optimizer.cpp.
                    mm[i] = b1 * mm[i] + (1 - b1) * g[i]
                    vv[i] = b2 * vv[i] + (1 - b2) * g[i] * g[i]
                    w[i] = min(wMax, max(wMin, w[i] - stepSize * mm[i] / (vv[i].squareRoot() + eps)))
                }
            }
        }
    }
}
