import Foundation

/// A labelled event dataset in the event-list format (`docs/event-format.md`): per sample, the
/// time steps and input channels of its events, and its class. Only the index (`offsets`,
/// `labels`: 16 bytes a sample) is held in memory; a sample's events are read from the file
/// when it is loaded, so memory does not grow with the number of events.
///
/// Opening checks the whole file once, reading it in chunks: every event inside
/// `1 ..< sequence` and `0 ..< n_in`, times non-decreasing within each sample, labels inside
/// `0 ..< n_classes`. A training run therefore never meets bad data halfway.
public final class EventDataset: @unchecked Sendable {
    public let url: URL
    /// K samples, `nIn` channels, `nClasses` classes, `steps` time steps of `dtMs` ms per sample.
    public let count: Int, nIn: Int, nClasses: Int, steps: Int
    public let dtMs: Double
    /// Events in the file (all samples).
    public let eventCount: Int
    /// `[K + 1]` event offsets of the samples; `[K]` their classes.
    let offsets: [Int64]
    public let labels: [Int]
    /// FNV-1a hash of the index and sizes: identifies the dataset in run records and checkpoints.
    public let digest: String
    let file: NPZFile
    let times: NPZFile.Member, units: NPZFile.Member

    /// Events checked per read while opening (two `[chunk]` Int64 buffers).
    static let chunk = 1 << 16

    public init(_ url: URL) throws {
        self.url = url
        let file = try NPZFile(url)
        self.file = file
        let path = url.path
        func fail(_ why: String) -> NPYError { NPYError(path: path, reason: why) }
        times = try file.member("times", "time step of every event, [E] integers")
        units = try file.member("units", "input channel of every event, [E] integers")
        let offsetsMember = try file.member("offsets", "sample k owns events offsets[k] ..< offsets[k+1], [K + 1] integers")
        let labelsMember = try file.member("labels", "class of every sample, [K] integers")
        guard times.header.shape.count == 1, units.header.shape == times.header.shape else {
            throw fail("'times' and 'units' must be 1-dimensional arrays of the same length, got shapes \(times.header.shape) and \(units.header.shape)")
        }
        eventCount = times.header.count
        guard offsetsMember.header.shape.count == 1, offsetsMember.header.count >= 2 else {
            throw fail("'offsets' must be a 1-dimensional array of K + 1 >= 2 entries (at least one sample), got shape \(offsetsMember.header.shape)")
        }
        count = offsetsMember.header.count - 1
        guard labelsMember.header.shape == [count] else {
            throw fail("'labels' must have shape [K] = [\(count)] like 'offsets' [K + 1], got \(labelsMember.header.shape)")
        }
        func positiveInteger(_ name: String, _ meaning: String, atLeast minimum: Int) throws -> Int {
            let v = try file.scalar(name, meaning)
            guard v.isFinite, v == v.rounded(), v >= Double(minimum), v <= 1e9 else { throw fail("'\(name)' (\(meaning)) must be an integer >= \(minimum), got \(v)") }
            return Int(v)
        }
        nIn = try positiveInteger("n_in", "number of input channels", atLeast: 1)
        nClasses = try positiveInteger("n_classes", "number of classes", atLeast: 2)
        steps = try positiveInteger("sequence", "time steps per sample", atLeast: 2)
        dtMs = try file.scalar("dt_ms", "width of one time step in ms")
        guard dtMs.isFinite, dtMs > 0 else { throw fail("'dt_ms' must be a number > 0 (ms), got \(dtMs)") }

        var o: [Int64] = [], l: [Int64] = []
        try file.readIntegers(offsetsMember, 0..<(count + 1), into: &o, name: "offsets")
        try file.readIntegers(labelsMember, 0..<count, into: &l, name: "labels")
        guard o[0] == 0 else { throw fail("offsets[0] must be 0, got \(o[0])") }
        for k in 0..<count where o[k + 1] < o[k] {
            throw fail("sample \(k): offsets must not decrease, got offsets[\(k)] = \(o[k]) > offsets[\(k + 1)] = \(o[k + 1])")
        }
        guard o[count] == Int64(eventCount) else { throw fail("offsets[K] = \(o[count]) must equal the number of events (\(eventCount))") }
        for k in 0..<count where l[k] < 0 || l[k] >= Int64(nClasses) {
            throw fail("sample \(k): label \(l[k]) outside 0 ..< n_classes (\(nClasses))")
        }
        offsets = o
        labels = l.map(Int.init)
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in o + l + [Int64(nIn), Int64(nClasses), Int64(steps), Int64(dtMs.bitPattern)] {
            withUnsafeBytes(of: v.littleEndian) { for b in $0 { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 } }
        }
        digest = String(hash, radix: 16)
        try checkEvents()
    }

    /// One pass over the events in chunks, checking ranges and order sample by sample.
    private func checkEvents() throws {
        var t: [Int64] = [], u: [Int64] = []
        var sample = 0, previous: Int64 = -1
        var start = 0
        while start < eventCount {
            let range = start..<min(start + Self.chunk, eventCount)
            try file.readIntegers(times, range, into: &t, name: "times")
            try file.readIntegers(units, range, into: &u, name: "units")
            for i in 0..<range.count {
                let e = range.lowerBound + i
                while Int64(e) >= offsets[sample + 1] { (sample, previous) = (sample + 1, -1) }
                let local = e - Int(offsets[sample])
                guard t[i] >= 1 && t[i] < Int64(steps) else {
                    throw NPYError(path: url.path, reason: "sample \(sample): event \(local): time step \(t[i]) outside 1 ..< sequence (\(steps)) (step 0 carries no input, docs/event-format.md)")
                }
                guard t[i] >= previous else {
                    throw NPYError(path: url.path, reason: "sample \(sample): event \(local): time step \(t[i]) before the previous event's \(previous); times must be sorted within a sample")
                }
                guard u[i] >= 0 && u[i] < Int64(nIn) else {
                    throw NPYError(path: url.path, reason: "sample \(sample): event \(local): channel \(u[i]) outside 0 ..< n_in (\(nIn))")
                }
                previous = t[i]
            }
            start = range.upperBound
        }
    }

    /// Writes sample k's spikes into `input` `[nIn, T]` (cleared first; several events of one
    /// channel in one step are one spike) and returns its class. Throws only if the file can no
    /// longer be read as it was when opened.
    public func load(_ k: Int, into input: Matrix<Double>) throws -> Int {
        precondition(input.rows == nIn && input.cols == steps)
        let e = try events(k)
        for i in 0..<input.count { input.p[i] = 0 }
        for (s, i) in zip(e.times, e.units) { input[i, s] = 1 }
        return labels[k]
    }

    /// Sample k's events, time steps (in `1 ..< steps`, non-decreasing) and channels (in
    /// `0 ..< nIn`), read from the file. Throws only if the file can no longer be read as it
    /// was when opened.
    public func events(_ k: Int) throws -> (times: [Int], units: [Int]) {
        let range = Int(offsets[k])..<Int(offsets[k + 1])
        var t: [Int64] = [], u: [Int64] = []
        try file.readIntegers(times, range, into: &t, name: "times")
        try file.readIntegers(units, range, into: &u, name: "units")
        var previous: Int64 = 1
        for (s, i) in zip(t, u) {
            guard s >= previous && s < Int64(steps) && i >= 0 && i < Int64(nIn) else {
                throw NPYError(path: url.path, reason: "sample \(k) changed since the file was opened (an event outside the declared ranges or out of order)")
            }
            previous = s
        }
        return (t.map(Int.init), u.map(Int.init))
    }
}

extension EventDataset {
    /// The datasets of a configuration opened again (to resume a run or check a process's
    /// files), each checked against the digest recorded when the run started, if given.
    public static func reopen(_ c: TrainingConfig, digests: (train: String?, test: String?) = (nil, nil)) throws -> (train: EventDataset?, test: EventDataset?) {
        func open(_ path: String?, _ digest: String?, _ parameter: String) throws -> EventDataset? {
            guard let path else { return nil }
            let d = try EventDataset(URL(fileURLWithPath: path))
            if let digest, digest != d.digest {
                throw ConfigError(parameter: parameter, requirement: "\(path) is not the file the run started with (its index digest is \(d.digest), the run recorded \(digest))")
            }
            return d
        }
        return (try open(c.trainData, digests.train, "train_data"), try open(c.testData, digests.test, "test_data"))
    }
}
