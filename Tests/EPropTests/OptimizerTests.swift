import EProp
import XCTest

final class OptimizerTests: XCTestCase {
    /// Expected weights from the formulas of docs/mathematics.md §4.4 evaluated by hand in float64 (python):
    /// step 1 with g = 0.5: m = 0.05, v = 2.5e-4, step size 5e-3 sqrt(1e-3)/0.1, so
    /// w = 1 - 1.58113883e-3 * 0.05 / (0.0158113883 + 1e-8) = 0.9950000031622757.
    func testAdamMatchesHandComputedSteps() {
        var p = OptimizerParameters()
        p.kind = .adam
        let w = Matrix<Double>(rows: 1, cols: 3, [1.0, -0.3, 0.0])
        let g = Matrix<Double>(rows: 1, cols: 3)
        let opt = Optimizer(p)
        var state = opt.initialState(Double.self, sizes: [3])
        for (i, v) in [0.5, -2e-3, 0.0].enumerated() { g.p[i] = v }
        opt.update(&state, weights: [w], gradients: [g])
        let step1 = [0.9950000031622757, -0.2950007904444348, 0.0]
        for i in 0..<3 { XCTAssertEqual(w.p[i], step1[i], accuracy: 1e-15) }
        let afterStep1 = state
        for (i, v) in [0.25, 1e-7, -4.0].enumerated() { g.p[i] = v }
        opt.update(&state, weights: [w], gradients: [g])
        let step2 = [0.9903391076058746, -0.29165121518459275, 0.0037206838236890265]
        for i in 0..<3 { XCTAssertEqual(w.p[i], step2[i], accuracy: 1e-15) }
        XCTAssertEqual(state.step, 2)
        // The state is a value: the copy taken after step 1 did not move.
        XCTAssertEqual(afterStep1.step, 1)
        XCTAssertEqual(afterStep1.firstMoment[0][0], 0.05, accuracy: 1e-15)
    }

    /// w <- clip(w - eta g, Wmin, Wmax) with eta = 0.1 and bounds +-0.5; no moments.
    func testGradientDescentMatchesHandComputedSteps() {
        var p = OptimizerParameters()
        (p.kind, p.eta, p.wMin, p.wMax) = (.gradientDescent, 0.1, -0.5, 0.5)
        let w = Matrix<Float>(rows: 1, cols: 3, [1.0, -0.3, 0.0])
        let opt = Optimizer(p)
        var state = opt.initialState(Float.self, sizes: [3])
        XCTAssertTrue(state.firstMoment.isEmpty && state.secondMoment.isEmpty, "gradient descent has no moments")
        opt.update(&state, weights: [w], gradients: [Matrix(rows: 1, cols: 3, [0.5, -2e-3, 0.0])])
        XCTAssertEqual(w.flat(as: Float.self), [0.5, -0.2998, 0.0])  // 1 - 0.05 clipped to 0.5
        opt.update(&state, weights: [w], gradients: [Matrix(rows: 1, cols: 3, [0.25, 1e-7, -4.0])])
        XCTAssertEqual(w.flat(as: Float.self), [0.475, -0.29980001, 0.4])
        XCTAssertEqual(state.step, 2)
    }
}
