import EProp
import Foundation
import XCTest

/// The NEST 3.10 export of the tutorial that ships with the repository.
let referenceDir = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("notebooks-data/reference/nest-3.10-infinite-loop-seed1-iter5")

func reference(_ name: String) throws -> NPYArray { try NPY.read(referenceDir.appendingPathComponent(name)) }

/// The largest absolute difference, where it is, and the first pairs, for failure messages.
struct Difference: CustomStringConvertible {
    let maxAbs: Double, maxRel: Double, worstIndex: Int, worstActual: Double, worstExpected: Double
    init(_ actual: [Double], _ expected: [Double]) {
        precondition(actual.count == expected.count, "length \(actual.count) != \(expected.count)")
        var (m, r, w) = (0.0, 0.0, 0)
        for i in 0..<actual.count {
            let d = abs(actual[i] - expected[i])
            if d > m || d.isNaN { (m, w) = (d.isNaN ? .infinity : d, i) }
            if expected[i] != 0 { r = max(r, d / abs(expected[i])) }
        }
        (maxAbs, maxRel, worstIndex) = (m, r, w)
        worstActual = actual.isEmpty ? 0 : actual[w]
        worstExpected = expected.isEmpty ? 0 : expected[w]
    }
    var description: String {
        "max |diff| \(maxAbs) (rel \(maxRel)) at index \(worstIndex): \(worstActual) vs \(worstExpected)"
    }
}

/// Compares spike lists exactly (times and senders) and reports the first difference.
func assertSameSpikes(
    _ times: [Double], _ senders: [Int32], _ refTimes: [Double], _ refSenders: [Int32], sequence T: Int,
    file: StaticString = #filePath, line: UInt = #line
) {
    let n = min(times.count, refTimes.count)
    for i in 0..<n where times[i] != refTimes[i] || senders[i] != refSenders[i] {
        let t = Int(min(times[i], refTimes[i]) - NESTStamp.recurrent)
        XCTFail("spike \(i) differs: (\(times[i]) ms, neuron \(senders[i])) vs NEST (\(refTimes[i]) ms, neuron \(refSenders[i])); first differing step: iteration \(t / T), step \(t % T)", file: file, line: line)
        return
    }
    XCTAssertEqual(times.count, refTimes.count, "spike counts differ", file: file, line: line)
}

/// Final weights within NEST's Float64 bound and every recurrent training spike equal to those of
/// the NEST export in `dir` (its spike lists also hold the forced final-update spikes, left out).
func assertFinalStateMatches<S: Scalar>(_ t: Trainer<S>, export dir: URL, file: StaticString = #filePath, line: UInt = #line) throws {
    for (w, name) in [(t.net.wIn, "w_in_rec"), (t.net.wRec, "w_rec_rec"), (t.net.wOut, "w_rec_out")] {
        let d = Difference(w.flat(), try NPY.read(dir.appendingPathComponent("\(name)_final.npy")).values)
        XCTAssertLessThanOrEqual(d.maxAbs, NESTReferenceTests.weightAtolDouble, "\(name): \(d)", file: file, line: line)
    }
    let T = t.config.sequence, sequences = t.iteration * t.config.optimizer.batchSize
    let times = try NPY.read(dir.appendingPathComponent("spikes_rec_times_ms.npy")).values
    let senders = try NPY.read(dir.appendingPathComponent("spikes_rec_senders.npy")).values
    let keep = times.indices.filter { times[$0] <= NESTStamp.recurrent + Double(sequences * T - 1) }
    assertSameSpikes(t.recorder.spikesRec.times, t.recorder.spikesRec.senders, keep.map { times[$0] }, keep.map { Int32(senders[$0]) },
                     sequence: T, file: file, line: line)
}

/// Runs `iterations` training iterations.
func train<S: Scalar>(_: S.Type, _ config: TrainingConfig, _ initial: NetworkInit) -> Trainer<S> {
    var recording = RecordingOptions()
    recording.iterations = .all
    let t = Trainer<S>(config: config, initial: initial, recording: recording)
    for _ in 0..<config.iterations { t.step() }
    return t
}

/// A small network for fast tests: the tutorial's task at 20/30/2 with T = 300.
func smallConfig() -> TrainingConfig {
    var c = TrainingConfig()
    (c.nIn, c.nRec, c.nOut, c.sequence, c.seed, c.inputSpikeProb) = (20, 30, 2, 300, 3, 0.1)
    c.precision = .double
    return c
}

/// Waits until `url` exists (a running process wrote it), at most `seconds`.
func waitUntilExists(_ url: URL, seconds: Double) {
    let deadline = Date().addingTimeInterval(seconds)
    while !FileManager.default.fileExists(atPath: url.path) && Date() < deadline { usleep(10_000) }
}

/// The built `eprop-dense` binary next to the test bundle.
var binary: URL { Bundle.main.bundleURL.appendingPathComponent("eprop-dense") }

/// Runs the binary as a user would.
@discardableResult
func runCLI(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
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

/// A 4 MiB tmpfs mounted in `dir` (skips the test where mounting needs root it has not).
func mountSmallDisk(in dir: URL) throws -> URL {
    let disk = dir.appendingPathComponent("disk")
    try FileManager.default.createDirectory(at: disk, withIntermediateDirectories: true)
    let mount = Process()
    mount.executableURL = URL(fileURLWithPath: "/bin/mount")
    mount.arguments = ["-t", "tmpfs", "-o", "size=4m", "tmpfs", disk.path]
    mount.standardError = FileHandle.nullDevice
    try mount.run()
    mount.waitUntilExit()
    try XCTSkipUnless(mount.terminationStatus == 0, "cannot mount a tmpfs here (needs root)")
    return disk
}

func unmount(_ disk: URL) {
    let u = Process()
    u.executableURL = URL(fileURLWithPath: "/bin/umount")
    u.arguments = [disk.path]
    try? u.run()
    u.waitUntilExit()
}

/// Fills `disk` while the process `pid` (a run writing there) is stopped, so that its own files
/// do not change meanwhile, leaving 64 KiB: room for run.json but not for the next weights and
/// checkpoint. Then lets the process go on.
func fillWhileStopped(_ disk: URL, _ pid: pid_t) throws {
    kill(pid, SIGSTOP)
    let reserve = disk.appendingPathComponent("reserve"), filler = disk.appendingPathComponent("filler")
    try Data(count: 64 * 1024).write(to: reserve)
    XCTAssertTrue(FileManager.default.createFile(atPath: filler.path, contents: nil))
    let handle = try FileHandle(forWritingTo: filler)
    for chunk in [256 * 1024, 4 * 1024] {
        while (try? handle.write(contentsOf: Data(count: chunk))) != nil {}
    }
    try handle.close()
    try FileManager.default.removeItem(at: reserve)
    kill(pid, SIGCONT)
}
