import EProp
import Foundation
import XCTest

/// Runs the built `eprop-dense` binary as a user would.
final class CLITests: XCTestCase {
    lazy var tmp: URL = FileManager.default.temporaryDirectory.appendingPathComponent("eprop-cli-\(UUID().uuidString)")

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built at \(binary.path)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// Copies the reference export, optionally altering one file.
    func exportCopy(_ name: String, alter: ((URL) throws -> Void)? = nil) throws -> String {
        let dir = tmp.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for f in NESTExport.files {
            try FileManager.default.copyItem(at: referenceDir.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        try alter?(dir)
        return dir.path
    }

    func testShortRunWritesNumpyReadableOutputs() throws {
        let out = tmp.appendingPathComponent("run").path
        let r = try runCLI(["--iterations", "2", "--n-rec", "20", "--n-in", "10", "--sequence", "100", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 2, "one line per iteration: \(r.stdout)")
        let loss = try NPY.read(URL(fileURLWithPath: out).appendingPathComponent("loss.npy"))
        XCTAssertEqual(loss.shape, [2])
        XCTAssertEqual(loss.dtype, .float64)
        let w = try NPY.read(URL(fileURLWithPath: out).appendingPathComponent("w_rec_rec_final.npy"))
        XCTAssertEqual(w.shape, [20, 20])
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out).appendingPathComponent("run.json"))) as? [String: Any]
        XCTAssertNotNil(json?["config"])
        // An existing non-empty folder is not overwritten without --force.
        let again = try runCLI(["--iterations", "1", "--out", out])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("--force"), again.stderr)
    }

    /// Each bad input: non-zero exit, a message naming the parameter or file, no output folder.
    func testBadInputsGiveClearErrors() throws {
        let corrupt = try exportCopy("corrupt") { d in
            try Data("garbage".utf8).write(to: d.appendingPathComponent("tau_m_rec.npy"))
        }
        let missing = try exportCopy("missing") { d in
            try FileManager.default.removeItem(at: d.appendingPathComponent("w_rec_out_init.npy"))
        }
        let inconsistent = try exportCopy("inconsistent") { d in
            try NPY.write(NPYArray(shape: [199], values: Array(repeating: 30, count: 199)), to: d.appendingPathComponent("tau_m_rec.npy"))
        }
        func config(_ name: String, _ text: String) throws -> String {
            let url = tmp.appendingPathComponent(name)
            try Data(text.utf8).write(to: url)
            return url.path
        }
        let finished = tmp.appendingPathComponent("finished")
        XCTAssertEqual(try runCLI(["--n-rec", "10", "--n-in", "5", "--sequence", "50", "--iterations", "2", "--checkpoint-every", "2", "--quiet", "--out", finished.path]).status, 0)
        let noCheckpoint = tmp.appendingPathComponent("nocheckpoint")
        XCTAssertEqual(try runCLI(["--n-rec", "10", "--n-in", "5", "--sequence", "50", "--iterations", "1", "--quiet", "--out", noCheckpoint.path]).status, 0)
        let cases: [([String], String)] = [
            (["--n-rec", "0"], "--n-rec"),
            (["--n-in", "-3"], "--n-in"),
            (["--tau-m-mean", "0"], "--tau-m-mean"),
            (["--tau-m-out", "-50"], "--tau-m-out"),
            (["--adapt-tau", "0"], "--adapt-tau"),
            (["--surrogate-gradient-function", "sigmoid"], "surrogate-gradient-function"),
            (["--precision", "half"], "precision"),
            (["--gradient", "backprop"], "gradient"),
            (["--batch-size", "0"], "--batch-size"),
            (["--learning-window", "5000"], "--learning-window"),
            (["--eta", "-1"], "--eta"),
            (["--w-min", "1", "--w-max", "0"], "--w-min"),
            (["--seed", "-1"], "--seed"),
            (["--init", tmp.appendingPathComponent("nope").path], "does not exist"),
            (["--init", missing], "missing w_rec_out_init.npy"),
            (["--init", inconsistent], "tau_m_rec.npy: expected shape [200]"),
            (["--init", corrupt], "tau_m_rec.npy: not a valid .npy file"),
            (["--init", referenceDir.path, "--n-rec", "100"], "--n-rec"),
            (["--tau-m-std=-1"], "--tau-m-std"),
            (["--v-th", "0"], "--v-th"),
            (["--t-ref=-1"], "--t-ref"),
            (["--c-reg=-5"], "--c-reg"),
            (["--beta-2", "1"], "--beta-2"),
            (["--epsilon", "0"], "--epsilon"),
            (["--input-spike-prob", "1.5"], "--input-spike-prob"),
            (["--threads", "0"], "--threads"),
            (["--blas-threads", "0"], "--blas-threads"),
            (["--record-iterations", "0,7"], "--record-iterations"),
            (["--checkpoint-every=-1"], "--checkpoint-every"),
            (["--n-rec", "2000000"], "GB of memory"),
            (["--config", tmp.appendingPathComponent("none.json").path], "file does not exist"),
            (["--config", try config("bad.json", "{\"n-rec\": 5,")], "not valid JSON"),
            (["--config", try config("unknown.json", "{\"n-recc\": 5}")], "key 'n-recc': unknown key"),
            (["--config", try config("type.json", "{\"n-rec\": \"many\"}")], "key 'n-rec'"),
            (["--config", try config("flag.json", "{\"eta\": true}")], "key 'eta' takes a value"),
            (["--resume", tmp.appendingPathComponent("nothing").path], "does not exist"),
            (["--resume", noCheckpoint.path], "no checkpoint"),
            (["--resume", finished.path, "--iterations", "2"], "already has 2 iterations"),
        ]
        for (i, (args, expected)) in cases.enumerated() {
            let out = tmp.appendingPathComponent("out\(i)")
            let r = try runCLI(args.contains("--resume") ? args : args + ["--iterations", "1", "--out", out.path])
            XCTAssertNotEqual(r.status, 0, "\(args) must fail")
            XCTAssertTrue(r.stderr.contains(expected), "\(args): expected '\(expected)' in: \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "\(args) left an output folder")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.contains(".partial") }
            XCTAssertEqual(leftovers, [], "\(args) left a partial folder")
        }
    }
}
