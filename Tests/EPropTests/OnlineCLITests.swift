import EProp
import Foundation
import XCTest

/// The online generation from an export folder (`OnlineExport`) and on the command line (`eprop-dense --init`).
final class OnlineCLITests: XCTestCase {
    lazy var tmp: URL = FileManager.default.temporaryDirectory.appendingPathComponent("eprop-online-cli-\(UUID().uuidString)")
    let regression = onlineReferenceRoot.appendingPathComponent("nest-3.10-online-regression-test")

    override func setUpWithError() throws { try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true) }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// params.json read back gives exactly the parameters NEST's test sets (bit for bit: a decimal parsed to a
    /// neighbouring double moves NEST's weights by 1e-18, which the exact comparisons below would catch too).
    func testExportParametersAreTheTestsBitForBit() throws {
        for model in OnlineNeuronModel.allCases {
            let spec = try OnlineExport.load(regression.appendingPathComponent(model.rawValue))
            XCTAssertEqual(spec.parameters, OnlineNESTReferenceTests.regressionParameters(model), "\(model)")
            XCTAssertEqual(spec.stimulus.iterations, 5)
            XCTAssertEqual(spec.stimulus.steps, 505)
        }
    }

    /// The generator draws NEST's networks bit for bit: parameters, initial weights, input pattern and target equal
    /// the four test exports and the example export (seed 1).
    func testGeneratedSineWaveRunsAreNESTsBitForBit() throws {
        let cases = OnlineNeuronModel.allCases.map { ($0, OnlineSineWaveTask.Preset.test, regression.appendingPathComponent($0.rawValue)) }
            + [(.eprop_iaf, .example, onlineReferenceRoot.appendingPathComponent("nest-3.10-online-sine-waves-seed1-iter5"))]
        for (model, preset, dir) in cases {
            let nest = try OnlineExport.load(dir), mine = OnlineSineWaveTask.generate(model, preset: preset, seed: 1, iterations: 5)
            let what = "\(model) \(preset)"
            XCTAssertEqual(mine.parameters, nest.parameters, what)
            XCTAssertEqual(mine.stimulus, nest.stimulus, what)
            for (name, a, b) in [("w_in", mine.weights.wIn, nest.weights.wIn), ("w_rec", mine.weights.wRec, nest.weights.wRec),
                                 ("w_out", mine.weights.wOut, nest.weights.wOut), ("feedback", mine.weights.feedback, nest.weights.feedback)] {
                if let i = a.indices.first(where: { a[$0] != b[$0] }) { XCTFail("\(what) \(name)[\(i)]: \(a[i]) vs NEST \(b[i])") }
            }
        }
    }

    /// The command line on each of NEST's four test networks: every spike, the loss and the final weights equal
    /// NEST's exactly (Float64), in files named as NEST's export names them.
    func testCommandLineReproducesNESTsTestNetworks() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built at \(binary.path)")
        for model in OnlineNeuronModel.allCases {
            let nest = regression.appendingPathComponent(model.rawValue), out = tmp.appendingPathComponent(model.rawValue)
            let r = try runCLI(["--init", nest.path, "--out", out.path, "--precision", "double", "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
            for name in ["loss", "spikes_rec_senders", "spikes_rec_times_ms", "w_in_rec_final", "w_rec_rec_final", "w_rec_out_final"] {
                let mine = try NPY.read(out.appendingPathComponent(name + ".npy")), theirs = try NPY.read(nest.appendingPathComponent(name + ".npy"))
                XCTAssertEqual(mine.shape, theirs.shape, "\(model) \(name)")
                if let i = mine.values.indices.first(where: { mine.values[$0] != theirs.values[$0] }) {
                    XCTFail("\(model) \(name)[\(i)]: \(mine.values[i]) vs NEST \(theirs.values[i])")
                }
            }
            let record = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("run.json"))) as? [String: Any]
            XCTAssertEqual((record?["parameters"] as? [String: Any]).flatMap { ($0["recurrent"] as? [String: Any])?["model"] as? String }, model.rawValue)
        }
    }

    /// NEST's online sine-wave example (forced final update, gradient descent once per spike, cutoff 100 ms) from its
    /// committed export: loss, every spike and the final weights equal NEST's exactly.
    func testCommandLineReproducesNESTsSineWaveExample() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built at \(binary.path)")
        let nest = onlineReferenceRoot.appendingPathComponent("nest-3.10-online-sine-waves-seed1-iter5"), out = tmp.appendingPathComponent("example")
        let r = try runCLI(["--init", nest.path, "--out", out.path, "--precision", "double", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        func values(_ dir: URL, _ name: String) throws -> [Double] { try NPY.read(dir.appendingPathComponent(name + ".npy")).values }
        let pairs = [("loss", "loss"), ("spikes_rec_senders", "spikes_rec_senders"), ("spikes_rec_times_ms", "spikes_rec_stamps"),
                     ("w_in_rec_final", "w_in_rec_final"), ("w_rec_rec_final", "w_rec_rec_final"), ("w_rec_out_final", "w_rec_out_final")]
        for (mine, theirs) in pairs {
            let a = try values(out, mine), b = try values(nest, theirs)
            XCTAssertEqual(a.count, b.count, mine)
            if let i = a.indices.first(where: { $0 < b.count && a[$0] != b[$0] }) { XCTFail("\(mine)[\(i)]: \(a[i]) vs NEST \(b[i])") }
        }
    }

    /// `--model eprop_iaf` draws NEST's example from `--seed` and trains it: the run equals NEST's (5 iterations).
    func testCommandLineGeneratesNESTsExampleFromTheSeed() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built at \(binary.path)")
        let nest = onlineReferenceRoot.appendingPathComponent("nest-3.10-online-sine-waves-seed1-iter5"), out = tmp.appendingPathComponent("generated")
        let r = try runCLI(["--model", "eprop_iaf", "--seed", "1", "--iterations", "5", "--out", out.path, "--precision", "double", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try NPY.read(out.appendingPathComponent("loss.npy")).values, try NPY.read(nest.appendingPathComponent("loss.npy")).values)
        XCTAssertEqual(try NPY.read(out.appendingPathComponent("w_rec_rec_final.npy")).values, try NPY.read(nest.appendingPathComponent("w_rec_rec_final.npy")).values)
        for (args, named) in [(["--model", "eprop_iaf_adapt", "--task", "evidence-accumulation"], "--task"),
                              (["--model", "eprop_iaf_psc_delta", "--tau-m-mean", "20"], "--tau-m-mean"),
                              (["--model", "eprop_iaf", "--iterations", "0"], "--iterations")] {
            let refused = try runCLI(args + ["--out", tmp.appendingPathComponent("refused").path])
            XCTAssertEqual(refused.status, 64, "\(args): \(refused.stderr)")
            XCTAssertTrue(refused.stderr.contains(named), "\(args): \(refused.stderr)")
        }
    }

    /// The recordings of the example (multimeters on recurrent neurons 0-1 and the readout, every step of every
    /// iteration; the weight recorder on senders and targets 0-4) equal NEST's exactly, sample for sample.
    func testCommandLineRecordsAsNEST() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built at \(binary.path)")
        let nest = onlineReferenceRoot.appendingPathComponent("nest-3.10-online-sine-waves-seed1-iter5"), out = tmp.appendingPathComponent("recorded")
        let r = try runCLI(["--init", nest.path, "--out", out.path, "--precision", "double", "--quiet",
                            "--record-iterations", "all", "--n-record", "2", "--n-record-w", "5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for name in ["rec_times_ms", "rec_V_m", "rec_surrogate_gradient", "rec_learning_signal",
                     "out_times_ms", "out_V_m", "out_readout_signal", "out_target_signal", "out_error_signal"] {
            let a = try NPY.read(out.appendingPathComponent(name + ".npy")), b = try NPY.read(nest.appendingPathComponent(name + ".npy"))
            XCTAssertEqual(a.shape, b.shape, name)
            if let i = a.values.indices.first(where: { a.values[$0] != b.values[$0] }) {
                XCTFail("\(name)[\(i)] (sample \(i % a.shape.last!)): \(a.values[i]) vs NEST \(b.values[i])")
            }
        }
        // NEST writes the weight recorder in its delivery order; both sorted by (stamp, sender, target).
        func events(_ dir: URL, stamps: String) throws -> [[Double]] {
            let columns = try [stamps, "wr_sender_pop", "wr_sender_idx", "wr_target_pop", "wr_target_idx", "wr_weights"]
                .map { try NPY.read(dir.appendingPathComponent($0 + ".npy")).values }
            return columns[0].indices.map { e in columns.map { $0[e] } }.sorted { $0.lexicographicallyPrecedes($1) }
        }
        let mine = try events(out, stamps: "wr_times_ms"), theirs = try events(nest, stamps: "wr_stamps")
        XCTAssertEqual(mine.count, theirs.count, "weight-recorder events")
        if let i = mine.indices.first(where: { i in i < theirs.count && mine[i] != theirs[i] }) {
            XCTFail("weight-recorder event \(i): \(mine[i]) vs NEST \(theirs[i]) ([stamp, sender pop, sender, target pop, target, weight])")
        }
    }

    /// Copies an export, letting `alter` change its params.json object.
    func exportCopy(_ alter: (inout [String: Any]) -> Void) throws -> URL {
        let source = regression.appendingPathComponent("eprop_iaf"), dir = tmp.appendingPathComponent("export-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: source, to: dir)
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("params.json"))) as! [String: Any]
        alter(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: dir.appendingPathComponent("params.json"))
        return dir
    }

    func testBadExportsAreRefusedByName() throws {
        func refused(_ alter: (inout [String: Any]) -> Void, _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
            XCTAssertThrowsError(try OnlineExport.load(exportCopy(alter)), file: file, line: line) { e in
                XCTAssertTrue("\(e)".contains(expected), "\(e) does not name \(expected)", file: file, line: line)
            }
        }
        try refused({ j in var r = j["params_rec"] as! [String: Any]; r["tau_syn"] = 2.0; j["params_rec"] = r }, "params_rec.tau_syn")
        try refused({ j in var r = j["params_rec"] as! [String: Any]; r["tau_m"] = -1.0; j["params_rec"] = r }, "tau_m")
        try refused({ j in var r = j["params_rec"] as! [String: Any]; r["V_m"] = 0.01; j["params_rec"] = r }, "params_rec.V_m")
        try refused({ j in var o = j["optimizer"] as! [String: Any]; o["type"] = "sgd"; j["optimizer"] = o }, "optimizer.type")
        try refused({ j in j["model"] = "eprop_iaf_bsshslm_2020" }, "model")
        try refused({ j in j["simulated_steps"] = 100 }, "simulated_steps")
        try refused({ j in j["n_rec"] = 99 }, "w_in_rec_init.npy")
        // Mixed populations and per-neuron values: sizes must add up.
        try refused({ j in j["more_populations"] = [["model": "eprop_iaf_adapt", "n": 100, "params_rec": [:]]] }, "n_rec")
        try refused({ j in j["more_populations"] = [["model": "eprop_iaf_bsshslm_2020", "n": 10, "params_rec": [:]]] }, "more_populations[0].model")
        try refused({ j in var r = j["params_rec"] as! [String: Any]; r["tau_m"] = [20.0, 30.0]; j["params_rec"] = r }, "params_rec.tau_m")
        // Corrupt files: a truncated params.json and a truncated array, each named; still recognized as online
        // exports, so that the command line does not fall back to the legacy loader's message.
        let dir = try exportCopy { _ in }
        try Data("{\"model\": \"eprop_iaf\", ".utf8).write(to: dir.appendingPathComponent("params.json"))
        XCTAssertTrue(OnlineExport.holdsOnlineRun(dir))
        XCTAssertThrowsError(try OnlineExport.load(dir)) { XCTAssertTrue("\($0)".contains("params.json"), "\($0)") }
        let other = try exportCopy { _ in }, array = other.appendingPathComponent("w_rec_rec_init.npy")
        try Data(try Data(contentsOf: array).prefix(90)).write(to: array)
        XCTAssertThrowsError(try OnlineExport.load(other)) { XCTAssertTrue("\($0)".contains("w_rec_rec_init.npy"), "\($0)") }
    }

    func testCommandLineRefusesOptionsTheExportDoesNotTake() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built at \(binary.path)")
        let nest = regression.appendingPathComponent("eprop_iaf").path, out = tmp.appendingPathComponent("refused").path
        for (args, named) in [(["--eta", "0.1"], "--eta"), (["--gradient", "bptt"], "--gradient"), (["--kernel", "blas"], "--kernel")] {
            let r = try runCLI(["--init", nest, "--out", out] + args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(named), "\(args): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing written for \(args)")
        }
        // --connection-probability: probabilities in [0, 1], one or three; the legacy generation refuses it.
        for (args, message) in [
            (["--model", "eprop_iaf", "--connection-probability", "1.5"], "invalid --connection-probability: one probability in [0, 1]"),
            (["--model", "eprop_iaf", "--connection-probability", "0.5,0.5"], "invalid --connection-probability: one probability in [0, 1]"),
            (["--model", "alif", "--connection-probability", "0.5"], "invalid --connection-probability: only the online generation"),
        ] {
            let r = try runCLI(args + ["--out", out, "--iterations", "1"])
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing written for \(args)")
        }
        // ... and so do --resume and --evaluate of a legacy run.
        let legacy = tmp.appendingPathComponent("legacy").path
        XCTAssertEqual(try runCLI(["--iterations", "1", "--checkpoint-every", "1", "--out", legacy, "--quiet"]).status, 0)
        for (args, named) in [
            (["--resume", legacy, "--iterations", "2", "--connection-probability", "0.5"], "--connection-probability"),
            (["--evaluate", legacy, "--group-size", "3"], "--group-size"),
        ] {
            let r = try runCLI(args + ["--quiet"])
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("invalid \(named)"), "\(args): \(r.stderr)")
        }
        // --threads is taken (recorded in run.json; this network is below the helpers' threshold).
        let r = try runCLI(["--init", nest, "--out", out, "--threads", "2", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(try String(contentsOfFile: out + "/run.json", encoding: .utf8).contains("\"threads\" : 2"))
    }
}
