import EProp
import Foundation
import XCTest

/// Checkpoints, exact resume, interruption and divergence.
final class ReliabilityTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("eprop-rel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    private func flatWeights<S: Scalar>(_ t: Trainer<S>) -> [Double] { t.net.wIn.flat() + t.net.wRec.flat() + t.net.wOut.flat() }

    /// 10 iterations straight == 5, checkpoint, resume, 5 more: bitwise, in both precisions and
    /// both gradient methods (with NEST's missing-term quirk on, which the continuation handles).
    private func checkResume<S: Scalar>(_: S.Type, _ method: GradientMethod, optimizer: OptimizerKind = .adam) throws {
        var c = smallConfig()
        (c.gradient, c.precision, c.iterations, c.optimizer.kind) = (method, S.self == Float.self ? .float : .double, 10, optimizer)
        let initial = InfiniteLoopTask.generate(c)
        var none = RecordingOptions()
        none.iterations = .none
        let straight = Trainer<S>(config: c, initial: initial, recording: none)
        for _ in 0..<5 { straight.step() }
        let straightAt5 = flatWeights(straight)
        for _ in 0..<5 { straight.step() }

        var first = c
        first.iterations = 5
        let part = Trainer<S>(config: first, initial: initial, recording: none)
        for _ in 0..<5 { part.step() }
        let folder = tmp.appendingPathComponent("\(S.self)-\(method)-\(optimizer)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Checkpoint.write(part, in: folder, checkpointEvery: 5)
        // The first leg's own final weights keep NEST's last-sequence term (its forced final
        // update), so they differ from what the longer run reaches after 5 iterations; the
        // checkpoint holds the latter.
        XCTAssertNotEqual(flatWeights(part).map(\.bitPattern), straightAt5.map(\.bitPattern), "the small task must exercise the last-sequence term")
        let stored = try TrainedMatrix.allCases.flatMap { try NPY.read(folder.appendingPathComponent("checkpoint/\($0.name).npy")).values }
        XCTAssertEqual(stored.map(\.bitPattern), straightAt5.map(\.bitPattern), "\(S.self) \(method): the checkpoint is not the longer run's state")

        let resumed = Trainer<S>(config: c, initial: initial, recording: none)
        try Checkpoint.restore(resumed, from: folder)
        XCTAssertEqual(resumed.iteration, 5)
        for _ in 0..<5 { resumed.step() }
        XCTAssertEqual(flatWeights(resumed).map(\.bitPattern), flatWeights(straight).map(\.bitPattern), "\(S.self) \(method): weights differ")
        XCTAssertEqual(resumed.results.map(\.loss).map(\.bitPattern), straight.results.map(\.loss).map(\.bitPattern), "\(S.self) \(method): losses differ")
        XCTAssertEqual(resumed.optimizerState, straight.optimizerState, "\(S.self) \(method): optimizer states differ")
    }

    func testResumeIsExactFloatAdjoint() throws { try checkResume(Float.self, .adjoint) }
    func testResumeIsExactFloatTraces() throws { try checkResume(Float.self, .traces) }
    func testResumeIsExactDoubleAdjoint() throws { try checkResume(Double.self, .adjoint) }
    func testResumeIsExactDoubleTraces() throws { try checkResume(Double.self, .traces) }
    func testResumeIsExactGradientDescent() throws { try checkResume(Double.self, .adjoint, optimizer: .gradientDescent) }

    /// Gradient descent has no moments: its checkpoint stores none.
    func testGradientDescentCheckpointHasNoMoments() throws {
        var c = smallConfig()
        (c.iterations, c.optimizer.kind) = (1, .gradientDescent)
        let t = Trainer<Double>(config: c, initial: InfiniteLoopTask.generate(c))
        t.step()
        try Checkpoint.write(t, in: tmp, checkpointEvery: 1)
        let files = try FileManager.default.contentsOfDirectory(atPath: tmp.appendingPathComponent("checkpoint").path)
        XCTAssertEqual(files.filter { $0.hasPrefix("adam") }, [])
        XCTAssertEqual(t.optimizerState.firstMoment.count, 0)
    }

    func testCorruptCheckpointIsRejected() throws {
        var c = smallConfig()
        c.iterations = 2
        let t = Trainer<Double>(config: c, initial: InfiniteLoopTask.generate(c))
        t.step()
        try Checkpoint.write(t, in: tmp, checkpointEvery: 1)
        try Data("{\"format_version\": 1, \"garbage\": true}".utf8).write(to: tmp.appendingPathComponent("checkpoint/checkpoint.json"))
        XCTAssertThrowsError(try Checkpoint.restore(t, from: tmp)) { XCTAssertTrue("\($0)".contains("not a valid checkpoint"), "\($0)") }
    }

    /// A real run gets SIGINT, finishes its iteration, checkpoints, exits 130; resuming it ends
    /// bitwise where an uninterrupted run ends.
    func testSIGINTThenResumeEqualsStraightRun() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path))
        let network = ["--n-rec", "60", "--n-in", "30", "--sequence", "400", "--quiet", "--record-iterations", "none"]
        let interrupted = tmp.appendingPathComponent("interrupted")
        let p = Process()
        p.executableURL = binary
        p.arguments = network + ["--iterations", "4000", "--out", interrupted.path, "--checkpoint-every", "50"]
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait for the first checkpoint, then interrupt.
        let checkpoint = interrupted.appendingPathComponent("checkpoint/checkpoint.json")
        waitUntilExists(checkpoint, seconds: 60)
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130, "SIGINT must exit with 128 + 2")
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: interrupted.appendingPathComponent("run.json"))) as! [String: Any]
        XCTAssertEqual(record["status"] as? String, "interrupted")
        let done = record["completed_iterations"] as! Int
        XCTAssertLessThan(done, 4000, "the run finished before the signal; the test proves nothing")

        let resume = try runCLI(["--resume", interrupted.path, "--iterations", "\(done + 20)", "--quiet"])
        XCTAssertEqual(resume.status, 0, resume.stderr)
        let straight = tmp.appendingPathComponent("straight")
        let r = try runCLI(network + ["--iterations", "\(done + 20)", "--out", straight.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        for f in ["w_in_rec_final.npy", "w_rec_rec_final.npy", "w_rec_out_final.npy", "loss.npy"] {
            XCTAssertEqual(try Data(contentsOf: interrupted.appendingPathComponent(f)), try Data(contentsOf: straight.appendingPathComponent(f)), "\(f) differs after interrupt + resume")
        }
    }

    func testDivergenceStopsWithClearMessageAndKeepsCheckpoint() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path))
        let out = tmp.appendingPathComponent("diverged")
        let r = try runCLI(["--n-rec", "30", "--n-in", "20", "--sequence", "200", "--iterations", "20", "--optimizer", "gradient-descent",
                             "--eta", "1e30", "--w-min=-1e300", "--w-max", "1e300", "--checkpoint-every", "1", "--quiet", "--out", out.path])
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertTrue(r.stderr.contains("diverged at iteration"), r.stderr)
        XCTAssertTrue(r.stderr.contains("--eta"), "the message must name the likely cause: \(r.stderr)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint/checkpoint.json").path))
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("run.json"))) as! [String: Any]
        XCTAssertEqual(record["status"] as? String, "diverged")
        // The kept checkpoint holds finite weights.
        XCTAssertTrue(try NPY.read(out.appendingPathComponent("checkpoint/w_in_rec.npy")).values.allSatisfy(\.isFinite))
    }
}
