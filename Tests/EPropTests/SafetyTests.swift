import EProp
import EPropCLI
import Foundation
import XCTest

/// Never lose a file, never silently ignore what the user asked: each test runs the built binary
/// as a user would and fails on the behaviour it guards against.
final class SafetyTests: XCTestCase {
    lazy var tmp: URL = FileManager.default.temporaryDirectory.appendingPathComponent("eprop-safety-\(UUID().uuidString)")
    /// A network small enough for a run of a few iterations to take well under a second.
    let small = ["--n-rec", "20", "--n-in", "10", "--sequence", "100", "--quiet", "--record-iterations", "none"]

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built at \(binary.path)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    private func write(_ text: String, _ url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    private func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    /// The pid of a process that has exited (for leftovers of "dead" runs).
    private func deadPID() throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        p.waitUntilExit()
        return p.processIdentifier
    }

    // MARK: data loss

    func testForceNeverReplacesAFolderThatIsNotARun() throws {
        let notes = tmp.appendingPathComponent("my-notes")
        try write("mine", notes.appendingPathComponent("notes.txt"))
        try write("thesis", notes.appendingPathComponent("sub/thesis.txt"))
        let r = try runCLI(small + ["--iterations", "1", "--out", notes.path, "--force"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("not an eprop-dense run folder"), r.stderr)
        XCTAssertEqual(try String(contentsOf: notes.appendingPathComponent("sub/thesis.txt"), encoding: .utf8), "thesis")
        XCTAssertEqual(try String(contentsOf: notes.appendingPathComponent("notes.txt"), encoding: .utf8), "mine")
    }

    func testForceReplacesARunButNotFilesTheRunDidNotWrite() throws {
        let run = tmp.appendingPathComponent("run")
        XCTAssertEqual(try runCLI(small + ["--iterations", "1", "--out", run.path]).status, 0)
        try write("my comments", run.appendingPathComponent("notes.txt"))
        let refused = try runCLI(small + ["--iterations", "2", "--out", run.path, "--force"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("notes.txt"), refused.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("notes.txt").path))
        try FileManager.default.removeItem(at: run.appendingPathComponent("notes.txt"))
        let replaced = try runCLI(small + ["--iterations", "2", "--out", run.path, "--force"])
        XCTAssertEqual(replaced.status, 0, replaced.stderr)
        XCTAssertEqual(try NPY.read(run.appendingPathComponent("loss.npy")).shape, [2])
    }

    /// A run that finishes while another with the same --out is still running: neither result is lost.
    func testConcurrentRunsWithOneOutFolderLoseNothing() throws {
        let out = tmp.appendingPathComponent("shared")
        let long = Process()
        long.executableURL = binary
        long.arguments = ["--n-rec", "20", "--n-in", "10", "--sequence", "400", "--quiet", "--record-iterations", "none",
                          "--iterations", "20000", "--seed", "1", "--out", out.path]
        let longErr = Pipe()
        long.standardError = longErr
        try long.run()
        // Wait until the long run has started writing (its staging folder exists).
        let staging = tmp.appendingPathComponent(".shared.partial-\(long.processIdentifier)")
        waitUntilExists(staging, seconds: 30)
        let short = try runCLI(small + ["--iterations", "1", "--seed", "2", "--out", out.path])
        XCTAssertEqual(short.status, 0, short.stderr)
        let shortLoss = try NPY.read(out.appendingPathComponent("loss.npy")).values
        long.waitUntilExit()
        let message = String(decoding: longErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(long.terminationStatus, 0, "the second run to finish must not report success over the first one's folder")
        XCTAssertTrue(message.contains("another run created this folder"), message)
        let moved = URL(fileURLWithPath: "\(out.path)-\(long.processIdentifier)")
        XCTAssertEqual(try NPY.read(moved.appendingPathComponent("loss.npy")).shape, [20000], "the long run's outputs are kept")
        XCTAssertEqual(try NPY.read(out.appendingPathComponent("loss.npy")).values, shortLoss, "the short run's outputs are intact")
    }

    func testDefaultFolderNamesAreUnique() {
        XCTAssertTrue(RunFolder.defaultName(under: "runs").hasSuffix("-\(getpid())"))
    }

    func testLeftoversOfKilledRunsAreRemoved() throws {
        let out = tmp.appendingPathComponent("run")
        let stale = tmp.appendingPathComponent(".run.partial-\(try deadPID())")
        try write("half", stale.appendingPathComponent("loss.npy"))
        let r = try runCLI(small + ["--iterations", "1", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path), "a dead run's staging folder stays forever")
        XCTAssertTrue(r.stderr.contains("removed") || r.stderr.contains(".run.partial"), r.stderr)
    }

    /// A crash between moving the old checkpoint aside and moving the new one in: resume recovers
    /// the old one and removes the half-written one.
    func testCheckpointReplacementCutShortIsRecovered() throws {
        let run = tmp.appendingPathComponent("run")
        XCTAssertEqual(try runCLI(small + ["--iterations", "2", "--checkpoint-every", "1", "--out", run.path]).status, 0)
        let dead = try deadPID()
        try FileManager.default.moveItem(at: run.appendingPathComponent("checkpoint"), to: run.appendingPathComponent(".checkpoint.old-\(dead)"))
        try write("half", run.appendingPathComponent(".checkpoint.tmp-\(dead)/w_in_rec.npy"))
        let r = try runCLI(["--resume", run.path, "--iterations", "3", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let left = try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.hasPrefix(".checkpoint") }
        XCTAssertEqual(left, [])
        XCTAssertEqual(try json(run.appendingPathComponent("checkpoint/checkpoint.json"))["completed_iterations"] as? Int, 3)
    }

    /// A disk that fills up during the run: exit 1 with the plain cause, status "failed", the
    /// previous checkpoint intact, no temporary folder left. Needs root to mount a small tmpfs.
    func testFullDiskEndsWithStatusFailedAndAPlainMessage() throws {
        let disk = try mountSmallDisk(in: tmp)
        defer { unmount(disk) }
        let run = disk.appendingPathComponent("run")
        let p = Process()
        p.executableURL = binary
        p.arguments = ["--n-rec", "100", "--n-in", "100", "--sequence", "100", "--iterations", "3000", "--checkpoint-every", "1",
                       "--record-iterations", "none", "--quiet", "--out", run.path]
        let err = Pipe()
        p.standardError = err
        try p.run()
        let checkpoint = run.appendingPathComponent("checkpoint/checkpoint.json")
        waitUntilExists(checkpoint, seconds: 60)
        try fillWhileStopped(disk, p.processIdentifier)
        p.waitUntilExit()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 1, message)
        XCTAssertTrue(message.contains("No space left on device"), message)
        XCTAssertFalse(message.contains("NSCocoaErrorDomain"), message)
        XCTAssertEqual(try json(run.appendingPathComponent("run.json"))["status"] as? String, "failed")
        XCTAssertNotNil(try? json(checkpoint), "the last good checkpoint must stay readable")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.hasPrefix(".checkpoint") }, [])
    }

    // MARK: options that were silently ignored

    func testInitWithInputAndTargetTrainsOnTheGivenFiles() throws {
        let x = tmp.appendingPathComponent("x.npy"), y = tmp.appendingPathComponent("y.npy")
        let T = 1258
        let spikes = (0..<(100 * T)).map { Double(($0 * 7) % 13 == 0 ? 1 : 0) }
        try NPY.write(NPYArray(shape: [100, T], dtype: .bool, values: spikes), to: x)
        try NPY.write(NPYArray(shape: [2, T], values: (0..<(2 * T)).map { sin(Double($0) / 50) }), to: y)
        let out = tmp.appendingPathComponent("run")
        let r = try runCLI(["--init", referenceDir.path, "--input", x.path, "--target", y.path, "--iterations", "1", "--quiet", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try NPY.read(out.appendingPathComponent("input_spike_bool_seq.npy")).values, spikes)
        XCTAssertEqual(try NPY.read(out.appendingPathComponent("w_in_rec_init.npy")).values, try reference("w_in_rec_init.npy").values)
    }

    func testResumeRefusesChangesAppliesCadenceAndQuotesPaths() throws {
        let run = tmp.appendingPathComponent("a run")
        XCTAssertEqual(try runCLI(small + ["--iterations", "2", "--checkpoint-every", "2", "--out", run.path]).status, 0)
        let changed = try runCLI(["--resume", run.path, "--iterations", "4", "--eta", "0.1"])
        XCTAssertNotEqual(changed.status, 0)
        XCTAssertTrue(changed.stderr.contains("optimizer.eta"), changed.stderr)
        let precision = try runCLI(["--resume", run.path, "--iterations", "4", "--precision", "double"])
        XCTAssertTrue(precision.stderr.contains("precision"), precision.stderr)
        XCTAssertNotEqual(precision.status, 0)
        // Without --checkpoint-every the run keeps its cadence: a checkpoint at 4.
        XCTAssertEqual(try runCLI(["--resume", run.path, "--iterations", "4", "--quiet"]).status, 0)
        XCTAssertEqual(try json(run.appendingPathComponent("checkpoint/checkpoint.json"))["completed_iterations"] as? Int, 4)
        let cadence = try runCLI(["--resume", run.path, "--iterations", "5", "--checkpoint-every", "1", "--quiet"])
        XCTAssertEqual(cadence.status, 0, cadence.stderr)
        XCTAssertTrue(cadence.stderr.contains("checkpoints every 1"), cadence.stderr)
        XCTAssertEqual(try json(run.appendingPathComponent("checkpoint/checkpoint.json"))["checkpoint_every"] as? Int, 1)
        XCTAssertEqual(EPropDense.shellQuoted(run.path), "'\(run.path)'")
    }

    func testOptionsWithoutEffectAreRefused() throws {
        let cases: [([String], String)] = [
            (["--model", "lif", "--n-adaptive", "3"], "--n-adaptive"),
            (["--model", "lif", "--adapt-tau", "500"], "--adapt-tau"),
            (["--gamma", "0.5", "--surrogate-gradient-height", "3"], "--gamma"),
            (["--optimizer", "gradient-descent", "--beta-1", "0.8"], "--beta-1"),
            (["--init", referenceDir.path, "--seed", "3"], "--seed"),
            (["--init", referenceDir.path, "--input-spike-prob", "0.1"], "--input-spike-prob"),
        ]
        for (args, name) in cases {
            let out = tmp.appendingPathComponent("out")
            let r = try runCLI(args + ["--iterations", "1", "--out", out.path])
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("invalid \(name)"), "\(args): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        }
        // A task whose default mixes LIF and ALIF neurons accepts --model lif.
        XCTAssertEqual(try runCLI(["--task", "evidence-accumulation", "--model", "lif", "--print-config"]).status, 0)
    }

    func testSymmetricFeedbackRecordsTheFeedbackUsed() throws {
        let out = tmp.appendingPathComponent("run")
        XCTAssertEqual(try runCLI(small + ["--iterations", "1", "--feedback", "symmetric", "--out", out.path]).status, 0)
        let b = try NPY.read(out.appendingPathComponent("w_out_rec_feedback.npy")), w = try NPY.read(out.appendingPathComponent("w_rec_out_init.npy"))
        XCTAssertEqual(b.shape, [20, 2])
        for j in 0..<20 { for k in 0..<2 { XCTAssertEqual(b.values[j * 2 + k], w.values[k * 20 + j]) } }
    }

    // MARK: checks before work

    func testInputSizesComeFromTheArrays() throws {
        let x = tmp.appendingPathComponent("x.npy"), y = tmp.appendingPathComponent("y.npy")
        try NPY.write(NPYArray(shape: [7, 60], dtype: .bool, values: (0..<420).map { Double($0 % 5 == 0 ? 1 : 0) }), to: x)
        try NPY.write(NPYArray(shape: [3, 60], values: (0..<180).map { Double($0 % 60) / 60 }), to: y)
        let out = tmp.appendingPathComponent("run")
        let r = try runCLI(["--input", x.path, "--target", y.path, "--n-rec", "15", "--iterations", "1", "--quiet", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try NPY.read(out.appendingPathComponent("w_in_rec_final.npy")).shape, [15, 7])
        XCTAssertEqual(try NPY.read(out.appendingPathComponent("w_rec_out_final.npy")).shape, [3, 15])
        let record = try json(out.appendingPathComponent("run.json"))
        XCTAssertEqual((record["resolved"] as? [String: Any])?["patterns"] as? String, "user-defined")
        XCTAssertEqual((record["resolved"] as? [String: Any])?["learning_window"] as? Int, 60)
        let conflict = try runCLI(["--input", x.path, "--target", y.path, "--n-in", "8", "--iterations", "1", "--out", tmp.appendingPathComponent("c").path])
        XCTAssertTrue(conflict.stderr.contains("invalid --n-in: 8 conflicts with the --input arrays (7)"), conflict.stderr)
    }

    func testCrossEntropyTargetsMustBeClassProbabilities() throws {
        let x = tmp.appendingPathComponent("x.npy"), y = tmp.appendingPathComponent("y.npy")
        try NPY.write(NPYArray(shape: [7, 60], dtype: .bool, values: (0..<420).map { Double($0 % 5 == 0 ? 1 : 0) }), to: x)
        try NPY.write(NPYArray(shape: [2, 60], values: Array(repeating: 0, count: 120)), to: y)
        let r = try runCLI(["--input", x.path, "--target", y.path, "--loss", "cross-entropy", "--iterations", "1", "--out", tmp.appendingPathComponent("r").path])
        XCTAssertEqual(r.status, 64, r.stderr)
        XCTAssertTrue(r.stderr.contains("invalid --target") && r.stderr.contains("summing to 1"), r.stderr)
    }

    /// The memory estimate is an upper bound of the measured peak, and not by more than half.
    func testMemoryEstimateBoundsTheMeasuredPeak() throws {
        for args in [["--batch-size", "20000", "--sequence", "2"], ["--task", "evidence-accumulation", "--iterations", "1"]] {
            let out = tmp.appendingPathComponent("run\(args.count)-\(args[1])")
            XCTAssertEqual(try runCLI(args + ["--iterations", "1", "--record-iterations", "none", "--quiet", "--out", out.path]).status, 0)
            let record = try json(out.appendingPathComponent("run.json"))
            let (peak, estimate) = (record["peak_memory_mb"] as! Double, record["memory_estimate_mb"] as! Double)
            XCTAssertGreaterThanOrEqual(estimate, peak, "\(args)")
            XCTAssertLessThanOrEqual(estimate, 1.5 * peak, "\(args)")
        }
    }

    /// The disk estimate covers what a run with checkpoints and recordings writes.
    func testDiskEstimateCoversCheckpoints() throws {
        let args = small.filter { $0 != "--quiet" } + ["--iterations", "3", "--checkpoint-every", "1", "--record-iterations", "all"]
        let out = tmp.appendingPathComponent("run")
        XCTAssertEqual(try runCLI(args.map { $0 == "none" ? "all" : $0 } + ["--quiet", "--out", out.path]).status, 0)
        let files = FileManager.default.enumerator(at: out, includingPropertiesForKeys: [.fileSizeKey])!.compactMap { $0 as? URL }
        let written = try files.reduce(0) { $0 + (try $1.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0) }
        var c = try EPropDense.parse(args).resolvedConfig()
        c.iterations = 3
        var rec = RecordingOptions()
        rec.iterations = .all
        XCTAssertGreaterThanOrEqual(Resources.diskBytes(c, recording: rec), Double(written))
    }

    func testPlotIsCheckedBeforeTraining() throws {
        let elsewhere = tmp.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        let copy = elsewhere.appendingPathComponent("eprop-dense")
        try FileManager.default.copyItem(at: binary, to: copy)
        let p = Process()
        p.executableURL = copy
        p.currentDirectoryURL = tmp
        let out = tmp.appendingPathComponent("run")
        p.arguments = small + ["--iterations", "1", "--plot", "--out", out.path]
        let err = Pipe()
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(message.contains("plot_run.py not found"), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "trained before finding out that it cannot plot")
    }

    func testExplodingRunWarnsAndDivergedRunKeepsFiniteWeights() throws {
        let warned = try runCLI(small.filter { $0 != "--quiet" } + ["--iterations", "30", "--eta", "1e6", "--out", tmp.appendingPathComponent("w").path])
        XCTAssertEqual(warned.status, 0)
        XCTAssertTrue(warned.stderr.contains("warning: the loss grew"), warned.stderr)
        let out = tmp.appendingPathComponent("diverged")
        let r = try runCLI(["--n-rec", "30", "--n-in", "20", "--sequence", "200", "--iterations", "20", "--optimizer", "gradient-descent",
                             "--eta", "1e30", "--w-min=-1e300", "--w-max", "1e300", "--quiet", "--out", out.path])
        XCTAssertEqual(r.status, 3, r.stderr)
        for m in TrainedMatrix.allCases {
            XCTAssertTrue(try NPY.read(out.appendingPathComponent("\(m.name)_final.npy")).values.allSatisfy(\.isFinite), m.name)
        }
    }

    // MARK: messages and small things

    func testMessagesNameTheRealCause() throws {
        let fifo = tmp.appendingPathComponent("fifo")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        let y = tmp.appendingPathComponent("y.npy")
        try NPY.write(NPYArray(shape: [2, 60], values: Array(repeating: 0, count: 120)), to: y)
        let cases: [([String], String)] = [
            (["--input", fifo.path, "--target", y.path], "is a FIFO"),
            (["--input", tmp.path, "--target", y.path], "is a folder"),
            (["--input", "/dev/zero", "--target", y.path], "is a device"),
            (["--eta", "inf"], "invalid --eta: a finite number required, got inf"),
            (["--gamma", "nan"], "invalid --gamma"),
            (["--e-l", "nan"], "invalid --e-l"),
            (["--config", tmp.appendingPathComponent("missing.json").path], "file does not exist"),
        ]
        for (args, expected) in cases {
            let r = try runCLI(args + ["--iterations", "1", "--out", tmp.appendingPathComponent("o").path])
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(expected), "\(args): expected '\(expected)' in \(r.stderr)")
        }
    }

    /// In a terminal, the progress line is erased before each iteration line.
    func testProgressLineDoesNotGlueToIterationLines() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        let command = ([binary.path] + small.filter { $0 != "--quiet" } + ["--iterations", "5", "--out", tmp.appendingPathComponent("tty").path]).joined(separator: " ")
        p.arguments = ["-qefc", command, "/dev/null"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("iteration     2"), text)
        XCTAssertFalse(text.contains("left" + "iteration"), "progress glued to an iteration line: \(text)")
    }

    func testRunRecordIsReusableAsConfig() throws {
        let args = ["--task", "evidence-accumulation", "--iterations", "1", "--batch-size", "2", "--eta", "0.01", "--tau-m-out", "22", "--no-average-gradient"]
        let out = tmp.appendingPathComponent("run")
        let r = try runCLI(args + ["--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("final accuracy"), r.stderr)
        let original = try runCLI(args + ["--print-config"]).stdout
        let again = try runCLI(["--config", out.appendingPathComponent("run.json").path, "--print-config"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stdout, original)
    }

    func testVersionAndScriptsAreRunnable() throws {
        let r = try runCLI(["--version"])
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), RunOutput.version)
        let script = referenceDir.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("crossval/crossval.py")
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: script.path), "crossval.py is documented as a command")
    }

    /// Per-iteration arrays are [iterations, ...]; stored iteration numbers are 1-based.
    func testOutputLayoutsAgree() throws {
        let out = tmp.appendingPathComponent("run")
        XCTAssertEqual(try runCLI(small.filter { $0 != "none" && $0 != "--record-iterations" } + ["--iterations", "3", "--batch-size", "2", "--out", out.path]).status, 0)
        XCTAssertEqual(try NPY.read(out.appendingPathComponent("loss_per_readout.npy")).shape, [3, 2])
        XCTAssertEqual(try NPY.read(out.appendingPathComponent("loss_per_sequence.npy")).shape, [3, 2])
        XCTAssertEqual(try NPY.read(out.appendingPathComponent("recorded_iterations.npy")).values, [1, 3])
    }
}
