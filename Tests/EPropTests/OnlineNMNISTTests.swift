import EProp
import Foundation
import XCTest

/// NEST 3.10's N-MNIST example (online generation, sparse connectivity, coinciding input spikes, eta phases) on the
/// committed synthetic N-MNIST folder: the export replays bit for bit, the generator draws NEST's network and sample
/// order from the seed and the files, and the command line trains it with NEST's recordings
/// (notebooks-data/reference/nest-3.10-online-nmnist-synthetic, PROVENANCE.md there).
final class OnlineNMNISTTests: XCTestCase {
    let reference = onlineReferenceRoot.appendingPathComponent("nest-3.10-online-nmnist-synthetic")
    lazy var data = reference.appendingPathComponent("data")
    lazy var tmp: URL = FileManager.default.temporaryDirectory.appendingPathComponent("eprop-nmnist-\(UUID().uuidString)")

    override func setUpWithError() throws { try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true) }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    private func read(_ name: String, in dir: URL? = nil) throws -> [Double] {
        try NPY.read((dir ?? reference).appendingPathComponent(name + ".npy")).values
    }

    /// The first index where two arrays differ in any bit, described; nil if they are identical.
    private func firstDifference(_ a: [Double], _ b: [Double]) -> String? {
        guard a.count == b.count else { return "\(a.count) vs \(b.count) values" }
        return a.indices.first { a[$0].bitPattern != b[$0].bitPattern }.map { "index \($0): \(a[$0]) vs NEST \(b[$0])" }
    }

    /// The export through `OnlineExport` (as `--init` reads it), Float64: every spike, loss, error and final weight
    /// bitwise NEST's (measured: the engine computes each synapse's operations in NEST's order).
    func testExportReplaysNESTBitForBit() throws {
        let ref = try OnlineReference(dir: reference)
        let sim = try OnlineSimulation<Double>(parameters: ref.parameters, weights: ref.weights, stimulus: ref.stimulus)
        sim.run()
        assertSameOnlineSpikes(sim, ref)
        XCTAssertNil(firstDifference(sim.loss, ref.loss), "loss")
        XCTAssertNil(firstDifference(sim.errors, try read("error")), "error")
        for (k, name) in OnlineReference.names {
            XCTAssertNil(firstDifference(sim.weights(k, stored: true), ref.final[k]!), "\(name)_final")
            XCTAssertEqual(sim.mask(k), try read("mask_" + name.dropFirst(2)).map { $0 != 0 }, "mask of \(name)")
        }
        // The run has what it should exercise: coinciding input spikes, absent synapses, a test phase.
        let s = ref.stimulus
        let coinciding = (0..<s.steps).reduce(0) { n, t in
            let spikes = s.inputIndices[s.inputOffsets[t]..<s.inputOffsets[t + 1]]
            return n + spikes.count - Set(spikes).count
        }
        XCTAssertGreaterThan(coinciding, 0)
        XCTAssertEqual(s.etaChangeValues.last, 0)
        XCTAssertLessThan(ref.weights.maskIn!.filter { $0 }.count, ref.weights.maskIn!.count / 2)
        report("N-MNIST export: \(sim.spikeSteps.count) spikes, \(coinciding) coinciding input spikes, loss \(sim.loss), error \(sim.errors)")
    }

    /// The generator, from seed 1 and the data folder: NEST's weights, masks, labels (both loaders' permutations) and
    /// input spikes (blocklist, time mapping, coincidences, the spike lost at a phase end), and its parameters.
    func testGeneratorDrawsNESTsNetworkAndSamples() throws {
        var settings = OnlineNMNISTTask.Settings()
        (settings.nRec, settings.groupSize, settings.trainIterations, settings.testIterations) = (20, 4, 2, 1)
        let spec = try OnlineNMNISTTask.generate(
            settings, train: NMNISTFolder(data.appendingPathComponent("Train")), test: NMNISTFolder(data.appendingPathComponent("Test")))
        let export = try OnlineExport.load(reference)
        XCTAssertEqual(spec.parameters, export.parameters)
        let (a, b) = (spec.weights, export.weights)
        XCTAssertNil(firstDifference(a.wIn, b.wIn), "w_in_rec_init")
        XCTAssertNil(firstDifference(a.wRec, b.wRec), "w_rec_rec_init")
        XCTAssertNil(firstDifference(a.wOut, b.wOut), "w_rec_out_init")
        XCTAssertNil(firstDifference(a.feedback, b.feedback), "w_out_rec_feedback")
        XCTAssertEqual(a.maskIn, b.maskIn)
        XCTAssertEqual(a.maskRec, b.maskRec)
        XCTAssertEqual(a.maskOut, b.maskOut)
        XCTAssertEqual(spec.stimulus, export.stimulus)
        guard case .classification(let labels) = spec.task else { return XCTFail("a classification task expected") }
        XCTAssertEqual(labels, try read("labels").map { Int($0) })
    }

    /// `eprop-dense --model eprop_iaf --train-data --test-data` with the reference's sizes: NEST's losses, errors and
    /// spikes, and its recordings (multimeters and weight recorder) sample for sample.
    func testCommandLineTrainsNESTsExample() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built at \(binary.path)")
        let out = tmp.appendingPathComponent("run")
        let r = try runCLI([
            "--model", "eprop_iaf", "--train-data", data.appendingPathComponent("Train").path, "--test-data",
            data.appendingPathComponent("Test").path, "--n-rec", "20", "--group-size", "4", "--iterations", "2",
            "--test-iterations", "1", "--out", out.path, "--precision", "double", "--quiet",
            "--record-iterations", "all", "--n-record", "2", "--n-record-w", "5",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        for name in [
            "loss", "error", "spikes_rec_times_ms", "spikes_rec_senders", "w_in_rec_final", "w_rec_rec_final", "w_rec_out_final",
            "rec_times_ms", "rec_V_m", "rec_surrogate_gradient", "rec_learning_signal", "out_times_ms", "out_V_m",
            "out_readout_signal", "out_target_signal", "out_error_signal", "input_spike_steps", "input_spike_senders", "labels",
        ] {
            XCTAssertNil(firstDifference(try read(name, in: out), try read(name)), name)
        }
        // NEST writes the weight recorder in its delivery order: both sorted by (time, sender, target).
        func events(_ dir: URL) throws -> [[Double]] {
            let columns = try ["wr_times_ms", "wr_sender_pop", "wr_sender_idx", "wr_target_pop", "wr_target_idx", "wr_weights"]
                .map { try read($0, in: dir) }
            return columns[0].indices.map { e in columns.map { $0[e] } }.sorted { $0.lexicographicallyPrecedes($1) }
        }
        let (mine, theirs) = (try events(out), try events(reference))
        XCTAssertEqual(mine.count, theirs.count, "weight-recorder events")
        XCTAssertGreaterThan(theirs.count, 0)
        if let i = mine.indices.first(where: { $0 < theirs.count && mine[$0] != theirs[$0] }) {
            XCTFail("weight-recorder event \(i): \(mine[i]) vs NEST \(theirs[i])")
        }
    }

    /// Bad N-MNIST folders and files are refused, naming the folder or file and what it must be.
    func testBadFoldersAreRefusedByName() throws {
        let split = tmp.appendingPathComponent("Train")
        for digit in 0..<10 { try FileManager.default.createDirectory(at: split.appendingPathComponent("\(digit)"), withIntermediateDirectories: true) }
        XCTAssertThrowsError(try NMNISTFolder(split)) { XCTAssertTrue("\($0)".contains("at least one N-MNIST file required"), "\($0)") }
        let file = split.appendingPathComponent("3/00001.bin")
        func refusal(_ bytes: [UInt8]) throws -> String {
            try Data(bytes).write(to: file)
            do {
                _ = try NMNISTFolder(split).events(0)
                return "accepted"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(try refusal([1, 2, 0, 0, 5, 3, 4, 0x80, 0, 9]), "accepted")
        XCTAssertTrue(try refusal([1, 2, 0, 0]).contains("00001.bin: an N-MNIST file (5-byte events) required: 4 bytes"))
        XCTAssertTrue(try refusal([34, 2, 0, 0, 5]).contains("event 0: x and y in 0 ..< 34 required, found (34, 2)"))
        XCTAssertTrue(try refusal([1, 2, 0, 0, 9, 3, 4, 0, 0, 5]).contains("event 1: non-decreasing times required (5 µs after 9 µs)"))
        try FileManager.default.removeItem(at: split.appendingPathComponent("7"))
        XCTAssertThrowsError(try NMNISTFolder(split)) { XCTAssertTrue("\($0)".contains("Train/7: a folder of N-MNIST files for digit 7 required"), "\($0)") }
    }

    /// NEST's blocklist leaves the example's 1196 inputs; the time mapping rounds half to even like `np.around`.
    func testPixelsAndTimeMapping() throws {
        XCTAssertEqual(NMNISTFolder.activePixels.count, 1196)
        let split = tmp.appendingPathComponent("Test")
        for digit in 0..<10 { try FileManager.default.createDirectory(at: split.appendingPathComponent("\(digit)"), withIntermediateDirectories: true) }
        // step = round(t 300 / 336040): 560 µs -> 0.4999 -> 0, 561 -> 0.5008 -> 1, 1681 -> 1.5007 -> 2; exact ties
        // at 8401 µs (7.5 -> 8) and 25203 µs (22.5 -> 22, where rounding half away from zero would give 23).
        let pixel = NMNISTFolder.activePixels[0], (x, y) = (pixel % 34, pixel / 34)
        var bytes: [UInt8] = []
        for t in [0, 560, 561, 1680, 1681, 8401, 25203, 336_040] {
            bytes += [UInt8(x), UInt8(y), UInt8(t >> 16), UInt8((t >> 8) & 0xFF), UInt8(t & 0xFF)]
        }
        // A blocklisted pixel (0, 0) is dropped.
        bytes += [0, 0, 0x05, 0x20, 0xA8]  // 336040 µs
        try Data(bytes).write(to: split.appendingPathComponent("5/a.bin"))
        let events = try NMNISTFolder(split).events(0)
        XCTAssertEqual(events.map(\.step), [0, 0, 1, 1, 2, 8, 22, 300])
        XCTAssertEqual(Set(events.map(\.input)), [0])
    }
}
