import EProp
import Foundation
import XCTest

/// Runs the built `eprop-dense` binary as a user would.
final class CLITests: XCTestCase {
    var binary: URL { Bundle.main.bundleURL.appendingPathComponent("eprop-dense") }
    var tmp: URL!

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built at \(binary.path)")
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("eprop-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    @discardableResult
    func run(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        let (o, e) = (Pipe(), Pipe())
        p.standardOutput = o
        p.standardError = e
        try p.run()
        let od = o.fileHandleForReading.readDataToEndOfFile(), ed = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: od, as: UTF8.self), String(decoding: ed, as: UTF8.self))
    }

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
        let r = try run(["--iterations", "2", "--n-rec", "20", "--n-in", "10", "--sequence", "100", "--out", out])
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
        let again = try run(["--iterations", "1", "--out", out])
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
        ]
        for (i, (args, expected)) in cases.enumerated() {
            let out = tmp.appendingPathComponent("out\(i)")
            let r = try run(args + ["--iterations", "1", "--out", out.path])
            XCTAssertNotEqual(r.status, 0, "\(args) must fail")
            XCTAssertTrue(r.stderr.contains(expected), "\(args): expected '\(expected)' in: \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "\(args) left an output folder")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.contains(".partial") }
            XCTAssertEqual(leftovers, [], "\(args) left a partial folder")
        }
    }
}
