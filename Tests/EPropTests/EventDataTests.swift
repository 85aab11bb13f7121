import EProp
import Foundation
import XCTest

/// The event-list reader (docs/event-format.md), training on its samples, and held-out evaluation.
final class EventDataTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("eprop-events-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// Writes `samples` as an event-list archive and returns its URL.
    func write(_ samples: [EventSample], nIn: Int = 12, nClasses: Int = 3, sequence: Int = 40, name: String = "events.npz") throws -> URL {
        let url = tmp.appendingPathComponent(name)
        try writeNPZ(url, eventMembers(samples, nIn: nIn, nClasses: nClasses, sequence: sequence))
        return url
    }

    /// The 1 entries of a dense `[nIn, T]` input as (channel, step) pairs, in row order.
    func spikes(_ m: Matrix<Double>) -> [[Int]] {
        (0..<m.rows).flatMap { i in (0..<m.cols).filter { m[i, $0] != 0 }.map { [i, $0] } }
    }

    // MARK: - Reading

    /// numpy.savez's own archive (ZIP64 local headers; uint16 times, int8 channels, int32 labels).
    func testReadsNumpySavezArchive() throws {
        let d = try EventDataset(fixturesDir.appendingPathComponent("events-numpy.npz"))
        XCTAssertEqual([d.count, d.nIn, d.nClasses, d.steps, d.eventCount], [3, 5, 3, 6, 7])
        XCTAssertEqual(d.dtMs, 1)
        XCTAssertEqual(d.labels, [1, 0, 2])
        let m = Matrix<Double>(rows: 5, cols: 6)
        XCTAssertEqual(try d.load(0, into: m), 1)
        XCTAssertEqual(spikes(m), [[0, 1], [0, 4], [2, 3], [4, 1]])
        XCTAssertEqual(try d.load(1, into: m), 0)
        XCTAssertEqual(spikes(m), [], "an empty sample clears the previous one")
        XCTAssertEqual(try d.load(2, into: m), 2)
        XCTAssertEqual(spikes(m), [[1, 5], [3, 2]], "two events of one channel in one step are one spike")
    }

    /// Each kind of bad file is refused when opened, naming the file, the sample and the condition.
    func testBadFilesAreRefusedNamingFileSampleAndCondition() throws {
        let good: [EventSample] = [([1, 2], [0, 1], 0), ([3, 3, 5], [2, 4, 1], 1), ([1], [11], 2)]
        func expect(_ samples: [EventSample], _ message: String, nIn: Int = 12, sequence: Int = 40, line: UInt = #line) throws {
            let url = try write(samples, nIn: nIn, sequence: sequence, name: "bad-\(line).npz")
            XCTAssertThrowsError(try EventDataset(url), line: line) { e in
                XCTAssertTrue("\(e)".hasPrefix(url.path + ": "), "names the file: \(e)", line: line)
                XCTAssertTrue("\(e)".contains(message), "\(e)", line: line)
            }
        }
        _ = try EventDataset(try write(good))
        try expect([good[0], ([0, 3], [2, 4], 1)], "sample 1: event 0: time step 0 outside 1 ..< sequence (40)")
        try expect([good[0], good[1], ([40], [1], 2)], "sample 2: event 0: time step 40 outside 1 ..< sequence (40)")
        try expect([good[0], ([5, 3], [2, 4], 1)], "sample 1: event 1: time step 3 before the previous event's 5")
        try expect([good[0], good[1], good[2]], "sample 2: event 0: channel 11 outside 0 ..< n_in (10)", nIn: 10)
        try expect([good[0], ([1], [1], 3)], "sample 1: label 3 outside 0 ..< n_classes (3)")
        try expect([EventSample](), "'offsets' must be a 1-dimensional array of K + 1 >= 2 entries (at least one sample)")

        // Archives whose members disagree or are missing, compressed or of the wrong type.
        var members = eventMembers(good, nIn: 12, nClasses: 3, sequence: 40)
        func expect(_ m: [(name: String, data: Data)], _ message: String, method: UInt16 = 0, line: UInt = #line) throws {
            let url = tmp.appendingPathComponent("members-\(line).npz")
            try writeNPZ(url, m, method: method)
            XCTAssertThrowsError(try EventDataset(url), line: line) { e in
                XCTAssertTrue("\(e)".hasPrefix(url.path), "names the file: \(e)", line: line)
                XCTAssertTrue("\(e)".contains(message), "\(e)", line: line)
            }
        }
        try expect(members.filter { $0.name != "labels" }, "no array 'labels'")
        try expect(members, "compressed (method 8); write the file with numpy.savez, not savez_compressed", method: 8)
        members[2] = ("offsets", npyIntegers([0, 2, 5, 7], width: 8))
        try expect(members, "offsets[K] = 7 must equal the number of events (6)")
        members[2] = ("offsets", npyIntegers([0, 3, 2, 6], width: 8))
        try expect(members, "sample 1: offsets must not decrease")
        members[2] = ("offsets", npyIntegers([0, 2, 5, 6], width: 8))
        members[0] = ("times", npyBytes("<f8", shape: [6], body: [UInt8](repeating: 0, count: 48)))
        try expect(members, "[times]: integers required, got dtype '<f8'")
    }

    /// Every prefix of a valid archive (a download cut short) is refused with the file's name; none crashes.
    func testTruncatedArchivesAreRefused() throws {
        let url = try write(toyEvents(samples: 4, seed: 1))
        let whole = try Data(contentsOf: url)
        let cut = tmp.appendingPathComponent("cut.npz")
        for n in stride(from: 0, to: whole.count, by: 7) {
            try whole.prefix(n).write(to: cut)
            XCTAssertThrowsError(try EventDataset(cut), "\(n) of \(whole.count) bytes") { e in
                XCTAssertTrue("\(e)".hasPrefix(cut.path), "\(e)")
            }
        }
    }

    // MARK: - Training

    func config(samples: EventDataset, batch: Int = 8, iterations: Int = 5) -> TrainingConfig {
        var c = TrainingConfig.defaults(for: .eventClassification)
        (c.nIn, c.nOut, c.sequence, c.nRec, c.iterations, c.optimizer.batchSize) = (samples.nIn, samples.nClasses, samples.steps, 20, iterations, batch)
        c.trainData = samples.url.path
        c.precision = .double
        return c
    }

    /// A sample loaded straight from its event list (repeated events, channels out of order
    /// within a step) simulates exactly as its dense pattern does.
    func testEventListLoadEqualsDenseLoad() throws {
        let d = try EventDataset(try write([([1, 1, 1, 2, 3, 3, 5, 5], [4, 0, 4, 9, 2, 1, 11, 0], 2), ([2], [3], 0)], sequence: 6))
        let c = config(samples: d)
        let initial = try TaskGenerator.generate(c, dataset: d)
        let net = Network<Double>(initial, config: c)
        let viaEvents = SequenceBuffers<Double>(batch: 2, steps: 6, nIn: 12, nRec: c.nRec, nOut: 3)
        let viaDense = SequenceBuffers<Double>(batch: 2, steps: 6, nIn: 12, nRec: c.nRec, nOut: 3)
        let patterns = Patterns(dataset: d, shuffleSeed: nil)
        for b in 0..<2 {
            for seq in [viaEvents, viaDense] { seq.lossFunction = .crossEntropy }
            patterns.load(b, into: viaEvents, row: b)
            let p = patterns.sequence(b)
            viaDense.setSequence(b, input: p.input, target: p.target)
        }
        XCTAssertEqual(viaEvents.x.flat(), viaDense.x.flat())
        XCTAssertEqual(viaEvents.target.flat(), viaDense.target.flat())
        // Strong weights so that the input spikes make recurrent spikes within 6 steps.
        for i in 0..<net.wIn.count { net.wIn.p[i] = 1 }
        for seq in [viaEvents, viaDense] { seq.forward(net, learningWindow: 6, kernel: .sparse) }
        XCTAssertGreaterThan(viaDense.z.flat().reduce(0, +), 0, "the test needs recurrent spikes")
        XCTAssertEqual(viaEvents.z.flat(), viaDense.z.flat())
        XCTAssertEqual(viaEvents.u.flat(), viaDense.u.flat())
        XCTAssertEqual(viaEvents.loss, viaDense.loss)
    }

    /// Each epoch visits every sample once, in an order fixed by the seed and the epoch.
    func testEveryEpochVisitsEverySampleOnceInASeededOrder() throws {
        let d = try EventDataset(try write(toyEvents(samples: 13, seed: 2)))
        let p = Patterns(dataset: d, shuffleSeed: 7), again = Patterns(dataset: d, shuffleSeed: 7)
        let epochs = (0..<3).map { e in (0..<13).map { p.sampleIndex(e * 13 + $0) } }
        for e in epochs { XCTAssertEqual(e.sorted(), Array(0..<13)) }
        XCTAssertNotEqual(epochs[0], epochs[1])
        XCTAssertNotEqual(epochs[0], Array(0..<13))
        XCTAssertEqual((0..<39).map(again.sampleIndex), epochs.flatMap { $0 })
        XCTAssertEqual((0..<26).map(Patterns(dataset: d, shuffleSeed: nil).sampleIndex), Array(0..<13) + Array(0..<13))
    }

    /// Training on a dataset equals training on the same samples, in the same order, given as
    /// dense patterns: the reader, the one-hot target and the order are all that differ. 20
    /// samples in batches of 8 over 5 iterations cross an epoch boundary inside a batch.
    func testTrainingOnEventsEqualsTheSameSamplesAsDensePatterns() throws {
        let d = try EventDataset(try write(toyEvents(samples: 20, seed: 3)))
        let c = config(samples: d)
        let fromEvents = try TaskGenerator.generate(c, dataset: d)
        var dense = fromEvents
        dense.patterns = Patterns(fixed: (0..<(c.iterations * 8 + 1)).map { fromEvents.patterns.sequence($0) })
        let a = train(Double.self, c, fromEvents), b = train(Double.self, c, dense)
        XCTAssertEqual(a.results.map(\.loss), b.results.map(\.loss))
        for (x, y) in zip(a.net.trained, b.net.trained) { XCTAssertEqual(x.flat(), y.flat()) }
        XCTAssertGreaterThan(a.results.map(\.loss).reduce(0, +), 0)
    }

    /// The evaluator's results do not depend on the thread count, add up, and equal each
    /// sample simulated alone.
    func testEvaluationIsIndependentOfThreadsAndEqualsEachSampleAlone() throws {
        let trainSet = try EventDataset(try write(toyEvents(samples: 24, seed: 4)))
        let test = try EventDataset(try write(toyEvents(samples: 21, seed: 5), name: "test.npz"))  // odd: 11 and 10 samples a thread
        var c = config(samples: trainSet, iterations: 6)
        let trainer = train(Double.self, c, try TaskGenerator.generate(c, dataset: trainSet))
        let patterns = Patterns(dataset: test, shuffleSeed: nil)
        let one = Evaluator<Double>(config: c, kernel: trainer.kernel.used, patterns: patterns).evaluate(trainer.net, iteration: 6)
        c.threads = 2
        let two = Evaluator<Double>(config: c, kernel: trainer.kernel.used, patterns: patterns).evaluate(trainer.net, iteration: 6)
        XCTAssertEqual([one.loss, one.accuracy], [two.loss, two.accuracy])
        XCTAssertEqual(one.confusion, two.confusion)
        XCTAssertEqual(one.confusion.flatMap { $0 }.reduce(0, +), 21)
        XCTAssertEqual(one.accuracy, Double((0..<3).map { one.confusion[$0][$0] }.reduce(0, +)) / 21)
        // Each sample alone in a batch of one.
        let seq = SequenceBuffers<Double>(batch: 1, steps: test.steps, nIn: test.nIn, nRec: c.nRec, nOut: test.nClasses)
        seq.lossFunction = .crossEntropy
        var confusion = [[Int]](repeating: [0, 0, 0], count: 3), loss = 0.0
        for k in 0..<21 {
            let p = patterns.sequence(k)
            seq.setSequence(0, input: p.input, target: p.target)
            seq.forward(trainer.net, learningWindow: c.resolvedLearningWindow, kernel: trainer.kernel.used)
            XCTAssertEqual(seq.targetClass(0), test.labels[k])
            confusion[seq.targetClass(0)][seq.predictedClass(0)] += 1
            loss += seq.loss.reduce(0, +) / Double(c.resolvedLearningWindow)
        }
        XCTAssertEqual(one.confusion, confusion)
        XCTAssertEqual(one.loss, loss / 21, "the evaluator simulates each sample alone, summing in sample order")
    }

    // MARK: - Command line

    /// Train with evaluations, resume, evaluate the trained run alone: the resumed run equals
    /// the straight one bit for bit (weights, losses, evaluations), the evaluation-only run
    /// equals the run's last evaluation, and a changed dataset is refused on resume.
    func testCommandLineTrainResumeEvaluate() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built")
        let trainURL = try write(toyEvents(samples: 30, seed: 6), name: "train.npz")
        let testURL = try write(toyEvents(samples: 12, seed: 7), name: "test.npz")
        let common = ["--train-data", trainURL.path, "--test-data", testURL.path, "--evaluate-every", "3", "--n-rec", "20", "--batch-size", "8",
                      "--checkpoint-every", "3", "--quiet"]
        let straight = tmp.appendingPathComponent("straight"), resumed = tmp.appendingPathComponent("resumed")
        var r = try runCLI(common + ["--iterations", "6", "--out", straight.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("test accuracy"), r.stderr)
        r = try runCLI(common + ["--iterations", "3", "--out", resumed.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runCLI(["--resume", resumed.path, "--iterations", "6", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for f in ["w_in_rec_final.npy", "w_rec_rec_final.npy", "w_rec_out_final.npy", "loss.npy", "accuracy.npy", "confusion_matrix.npy", "accuracy_per_class.npy"] {
            let a = try NPY.read(straight.appendingPathComponent(f)), b = try NPY.read(resumed.appendingPathComponent(f))
            XCTAssertEqual(a.shape, b.shape, f)
            XCTAssertEqual(a.values.map(\.bitPattern), b.values.map(\.bitPattern), f)
        }
        func evaluations(_ dir: URL) throws -> [[String]] {
            try String(contentsOf: dir.appendingPathComponent("evaluation.csv"), encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",").dropLast().map(String.init) }
        }
        XCTAssertEqual(try evaluations(straight), try evaluations(resumed), "iteration, samples, loss, accuracy of every evaluation")
        XCTAssertEqual(try evaluations(straight).map(\.first), ["iteration", "3", "6"])

        let alone = tmp.appendingPathComponent("alone")
        r = try runCLI(["--evaluate", straight.path, "--test-data", testURL.path, "--out", alone.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try evaluations(alone).last, try evaluations(straight).last)

        // The training file changed under a run that resumes: refused, naming it.
        var samples = toyEvents(samples: 30, seed: 6)
        samples[4].label = (samples[4].label + 1) % 3
        try writeNPZ(trainURL, eventMembers(samples, nIn: 12, nClasses: 3, sequence: 40))
        r = try runCLI(["--resume", resumed.path, "--iterations", "9", "--quiet"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("\(trainURL.path) is not the file the run started with"), r.stderr)
    }

    /// Options that contradict a dataset are refused before any work, naming the option; a bad
    /// dataset file leaves no run folder behind.
    func testCommandLineRefusesContradictions() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built")
        let trainURL = try write(toyEvents(samples: 6, seed: 8), name: "train.npz")
        let other = try write(toyEvents(samples: 6, seed: 8), nIn: 13, name: "other.npz")
        let out = tmp.appendingPathComponent("never")
        let cases: [([String], String)] = [
            (["--task", "sine-waves", "--train-data", trainURL.path], "invalid --task: --train-data trains task event-classification"),
            (["--train-data", trainURL.path, "--n-in", "5"], "invalid --n-in: 5 conflicts with the --train-data arrays (12)"),
            (["--train-data", trainURL.path, "--evaluate-every", "2"], "invalid --evaluate-every: evaluations need a held-out split"),
            (["--train-data", trainURL.path, "--test-data", other.path], "invalid --test-data: \(other.path) has n_in 13"),
            (["--train-data", trainURL.path, "--loss", "mean-squared-error"], "invalid --loss: event datasets are labelled classes"),
            (["--task", "event-classification"], "invalid --train-data: task event-classification trains on an event dataset"),
            (["--evaluate", tmp.path], "invalid --evaluate: give the held-out split with --test-data"),
        ]
        for (args, message) in cases {
            let r = try runCLI(args + ["--out", out.path])
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        var samples = toyEvents(samples: 6, seed: 8)
        samples[2].times[0] = 0
        let bad = try write(samples, name: "bad.npz")
        let r = try runCLI(["--train-data", bad.path, "--out", out.path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("error: \(bad.path): sample 2: event 0: time step 0 outside 1 ..< sequence (40)"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing written")
    }
}
