import EProp
import XCTest

/// The engine's own choices and measurements that must not change results: the automatic
/// kernel, the phase profile, and the NaN check that every iteration runs.
final class EngineChoiceTests: XCTestCase {
    /// `auto` picks the sparse kernel below the crossover density and BLAS above it, says so,
    /// and trains bit for bit as the kernel it picked.
    func testAutoKernelPicksByDensityAndEqualsThatKernel() {
        XCTAssertEqual(KernelResolution(autoAtDensity: KernelResolution.crossoverDensity * 0.99).used, .sparse)
        XCTAssertEqual(KernelResolution(autoAtDensity: KernelResolution.crossoverDensity * 1.01).used, .blas)
        XCTAssertEqual(KernelResolution(fixed: .blas).used, .blas)
        var c = smallConfig()
        c.iterations = 3
        let initial = InfiniteLoopTask.generate(c)
        let auto = Trainer<Double>(config: c, initial: initial)
        XCTAssertEqual(auto.kernel.requested, .auto)
        XCTAssertEqual(auto.kernel.used, .sparse, auto.kernel.reason)
        let density = auto.kernel.density ?? -1
        XCTAssertGreaterThan(density, 0, "no spikes in the first sequence: the density would say nothing")
        XCTAssertLessThan(density, 0.5)
        XCTAssertTrue(auto.kernel.reason.contains("below the crossover"), auto.kernel.reason)
        c.kernel = .sparse
        let sparse = Trainer<Double>(config: c, initial: initial)
        for _ in 0..<3 { (auto.step(), sparse.step()) }
        for (a, s) in zip(auto.net.trained, sparse.net.trained) {
            XCTAssertEqual(Array(UnsafeBufferPointer(start: a.p, count: a.count)), Array(UnsafeBufferPointer(start: s.p, count: s.count)))
        }
        XCTAssertEqual(auto.results.map(\.loss), sparse.results.map(\.loss))
    }

    /// The run folder says which kernel ran and why.
    func testRunJSONRecordsTheKernel() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("eprop-kernel-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        for (option, used) in [([], "sparse"), (["--kernel", "blas"], "blas")] {
            let out = tmp.appendingPathComponent(used)
            let r = try runCLI(["--n-rec", "30", "--n-in", "20", "--sequence", "200", "--iterations", "2", "--quiet", "--out", out.path] + option)
            XCTAssertEqual(r.status, 0, r.stderr)
            let run = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("run.json"))) as! [String: Any]
            let kernel = try XCTUnwrap(run["kernel"] as? [String: Any])
            XCTAssertEqual(kernel["used"] as? String, used)
            XCTAssertEqual(kernel["requested"] as? String, option.isEmpty ? "auto" : "blas")
            XCTAssertNotNil(kernel["reason"] as? String)
        }
    }

    /// Profiling times every phase and changes nothing else.
    func testProfilingTimesEveryPhaseAndChangesNothing() {
        var c = smallConfig()
        (c.iterations, c.optimizer.batchSize, c.threads) = (2, 3, 2)
        let initial = InfiniteLoopTask.generate(c)
        let (plain, profiled) = (Trainer<Double>(config: c, initial: initial), Trainer<Double>(config: c, initial: initial))
        profiled.profilesPhases = true
        for t in [plain, profiled] {
            for _ in 0..<2 {
                t.step()
                XCTAssertNil(t.firstNonFinite())
            }
        }
        XCTAssertEqual(plain.results.map(\.loss), profiled.results.map(\.loss))
        for (a, b) in zip(plain.net.trained, profiled.net.trained) {
            XCTAssertEqual(Array(UnsafeBufferPointer(start: a.p, count: a.count)), Array(UnsafeBufferPointer(start: b.p, count: b.count)))
        }
        XCTAssertNil(plain.results[0].phaseSeconds)
        for r in profiled.results {
            let phases = try! XCTUnwrap(r.phaseSeconds)
            XCTAssertEqual(Set(phases.keys), Set(Phase.allCases.map(\.name)))
            XCTAssertTrue(phases.values.allSatisfy { $0 >= 0 })
            for busy in [Phase.synapticInput, .neurons, .backwardScan, .gradientScatter, .optimizer, .checks] {
                XCTAssertGreaterThan(phases[busy.name]!, 0, busy.name)
            }
            // Two workers: the phases sum their time, at most twice the wall time (plus the check after the step).
            XCTAssertLessThan(phases.values.reduce(0, +), 2 * r.seconds + phases[Phase.checks.name]!)
        }
    }

    /// The check after every iteration finds a NaN or an infinity wherever it is, in either
    /// precision, and names the matrix and the element; the largest finite values and
    /// subnormals are no divergence.
    func testNonFiniteCheckFindsEveryNaNAndInfinity() {
        func check<S: Scalar>(_: S.Type) {
            var c = smallConfig()
            c.precision = S.self == Float.self ? .float : .double
            let t = Trainer<S>(config: c, initial: InfiniteLoopTask.generate(c))
            t.step()
            XCTAssertNil(t.firstNonFinite())
            for (m, matrix) in zip(t.net.trained, TrainedMatrix.allCases) {
                for i in [0, m.count / 2 + 1, m.count - 1] {
                    let kept = m.p[i]
                    for harmless in [S.greatestFiniteMagnitude, -S.greatestFiniteMagnitude, S.leastNonzeroMagnitude, -S.leastNormalMagnitude] {
                        m.p[i] = harmless
                        XCTAssertNil(t.firstNonFinite(), "\(harmless) at \(matrix.name)[\(i)]")
                    }
                    for bad in [S.nan, S.infinity, -S.infinity, S.signalingNaN] {
                        m.p[i] = bad
                        let found = t.firstNonFinite() ?? "nothing"
                        XCTAssertTrue(found.hasPrefix("\(matrix.name)[\(i / m.cols), \(i % m.cols)]"), "\(S.self) \(bad) at \(matrix.name)[\(i)]: found \(found)")
                    }
                    m.p[i] = kept
                }
            }
            XCTAssertNil(t.firstNonFinite())
        }
        check(Float.self)
        check(Double.self)
    }
}
