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

/// Test data files that ship with the repository (`Tests/EPropTests/Fixtures`).
let fixturesDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// A `.npy` file's bytes with any dtype string (NPY.encode covers only the engine's dtypes).
func npyBytes(_ descr: String, shape: [Int], body: [UInt8]) -> Data {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
    header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
    let n = header.utf8.count
    return Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(n & 0xff), UInt8(n >> 8)] + Array(header.utf8) + body)
}

/// Integers as the little-endian bytes of a `.npy` member of `width` bytes.
func npyIntegers(_ values: [Int], signed: Bool = true, width: Int = 4) -> Data {
    let body = values.flatMap { v in (0..<width).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    return npyBytes("\(width == 1 ? "|" : "<")\(signed ? "i" : "u")\(width)", shape: [values.count], body: body)
}

/// A 0-dimensional `.npy` of one int64 or float64.
func npyScalar(_ v: Double, float: Bool = false) -> Data {
    let bits = float ? v.bitPattern : UInt64(bitPattern: Int64(v))
    return npyBytes(float ? "<f8" : "<i8", shape: [], body: (0..<8).map { UInt8(truncatingIfNeeded: bits >> (8 * UInt64($0))) })
}

/// Writes a ZIP archive of stored members as `numpy.savez` does (CRC-32 included, so numpy
/// reads it too); `method` other than 0 marks the members compressed (to test the refusal).
func writeNPZ(_ url: URL, _ members: [(name: String, data: Data)], method: UInt16 = 0) throws {
    func crc32(_ d: Data) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in d {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }
        }
        return ~c
    }
    func le(_ v: Int, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    var out = Data(), directory = Data()
    for (name, data) in members {
        let file = Array((name + ".npy").utf8), crc = Int(crc32(data)), offset = out.count
        let common = le(20, 2) + le(0, 2) + le(Int(method), 2) + le(0, 4) + le(crc, 4) + le(data.count, 4) + le(data.count, 4) + le(file.count, 2) + le(0, 2)
        out += le(0x0403_4b50, 4) + common + file
        out += data
        directory += le(0x0201_4b50, 4) + le(20, 2) + common + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(offset, 4) + file
    }
    let dirOffset = out.count
    out += directory
    out += le(0x0605_4b50, 4) + le(0, 4) + le(members.count, 2) + le(members.count, 2) + le(directory.count, 4) + le(dirOffset, 4) + le(0, 2)
    try out.write(to: url)
}

/// One labelled sample of an event dataset: time steps, channels, class.
typealias EventSample = (times: [Int], units: [Int], label: Int)

/// The members of an event-list archive (docs/event-format.md) holding `samples`.
func eventMembers(_ samples: [EventSample], nIn: Int, nClasses: Int, sequence: Int) -> [(name: String, data: Data)] {
    var offsets = [0]
    for s in samples { offsets.append(offsets.last! + s.times.count) }
    return [("times", npyIntegers(samples.flatMap(\.times))), ("units", npyIntegers(samples.flatMap(\.units), signed: false, width: 2)),
            ("offsets", npyIntegers(offsets, width: 8)), ("labels", npyIntegers(samples.map(\.label), width: 1)),
            ("n_in", npyScalar(Double(nIn))), ("n_classes", npyScalar(Double(nClasses))), ("sequence", npyScalar(Double(sequence))),
            ("dt_ms", npyScalar(1, float: true))]
}

/// A separable toy classification set: class c drives channels c*4 ..< c*4+4 at 20 % per step,
/// the other channels fire at 2 %; drawn from `seed` (numpy's generator, reproducible).
func toyEvents(samples K: Int, classes C: Int = 3, sequence T: Int = 40, seed: UInt32) -> [EventSample] {
    var rng = NumpyRandomState(seed: seed)
    let nIn = 4 * C
    return (0..<K).map { k in
        let c = k % C
        var times: [Int] = [], units: [Int] = []
        for s in 1..<T { for i in 0..<nIn where rng.uniform() < (i / 4 == c ? 0.2 : 0.02) { times.append(s); units.append(i) } }
        return (times, units, c)
    }
}
