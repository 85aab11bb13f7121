import Foundation

/// Which iterations the recorders keep.
public enum RecordedIterations: Codable, Equatable, Sendable {
    case firstLast, all, none
    /// 1-based iterations.
    case list([Int])

    /// `first-last`, `all`, `none`, or comma-separated 1-based iterations such as `1,100,5000`.
    public init(parsing text: String) throws {
        switch text {
        case "first-last": self = .firstLast
        case "all": self = .all
        case "none": self = .none
        default:
            let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else {
                throw ConfigError(parameter: "record_iterations", requirement: "first-last, all, none, or comma-separated iterations required (got '\(text)')")
            }
            self = .list(parts.map { $0! })
        }
    }

    /// Whether 0-based `iteration` of a run of `total` iterations is recorded.
    public func contains(_ iteration: Int, total: Int) -> Bool {
        switch self {
        case .firstLast: return iteration == 0 || iteration == total - 1
        case .all: return true
        case .none: return false
        case .list(let l): return l.contains(iteration + 1)
        }
    }

    /// How many of `total` iterations are recorded.
    public func count(total: Int) -> Int {
        switch self {
        case .firstLast: return min(total, 2)
        case .all: return total
        case .none: return 0
        case .list(let l): return Set(l).count
        }
    }
}

/// What to record, as the tutorial's recorders (multimeters, spike recorder, weight recorder).
public struct RecordingOptions: Codable, Equatable, Sendable {
    /// Recurrent neurons 0 ..< nRecord get V_m, V_th_adapt, adaptation, surrogate_gradient and
    /// learning_signal every step (the tutorial's `n_record`, 1).
    public var nRecord = 1
    /// The weight recorder watches senders 0 ..< nRecordW of the input and recurrent populations
    /// and targets 0 ..< nRecordW of the recurrent population plus all readouts (`n_record_w`, 3).
    public var nRecordW = 3
    /// Which iterations are recorded.
    public var iterations: RecordedIterations = .firstLast
    public init() {}

    /// Checks the choice against a run of `total` iterations.
    public func validate(iterations total: Int) throws {
        guard nRecord >= 0 else { throw ConfigError(parameter: "n_record", requirement: "n_record >= 0 required") }
        guard nRecordW >= 0 else { throw ConfigError(parameter: "n_record_w", requirement: "n_record_w >= 0 required") }
        if case .list(let l) = iterations, !l.allSatisfy({ $0 >= 1 && $0 <= total }) {
            throw ConfigError(parameter: "record_iterations", requirement: "first-last, all, none, or comma-separated iterations between 1 and iterations (\(total)) required")
        }
    }
}

/// NEST's recorder time stamps: step s of sequence k (T steps per sequence) carries the stamp
/// offset + kT + s ms (docs/mathematics.md §3.1, §3.2). The offsets come from the tutorial's
/// one-step delays: generator -> parrot -> recurrent -> readout.
public enum NESTStamp {
    /// Input spikes (relayed by parrot neurons) and the weight recorder's input-synapse entries.
    public static let inputSpike = 2.0
    /// Recurrent spikes, the recurrent multimeter and the recurrent-synapse entries.
    public static let recurrent = 3.0
    /// The readout multimeter (its `readout_signal` shows y(s)).
    public static let readout = 5.0
    /// NEST's forced final update, KT + 4 ms after a run of K sequences.
    public static let finalUpdate = 4.0
    /// Steps by which the recorded `learning_signal` lags the other recurrent recordables.
    public static let learningSignalLag = 3
}

/// Recordings with NEST's names, meanings and time stamps (docs/mathematics.md §3.1, §3.2), in double precision.
///
/// Time stamps (ms) for sequence k = iteration * B + b, step s of T:
/// - recurrent multimeter (`rec_*`): 3 + kT + s, the values of step s;
/// - readout multimeter (`out_*`): 5 + kT + s, when `readout_signal` shows y(s); `V_m` and
///   `readout_signal_unnorm` then already show u(s + 1) (the readout output lags its membrane by 1);
/// - input spikes 2 + kT + s, recurrent spikes 3 + kT + s (NEST's spike-recorder stamps);
/// - weight recorder: the stamp of each spike that a recorded synapse transmits, with the weight
///   it transmits with; after the last iteration one more entry per synapse at KT + 4 ms with the
///   final weight (NEST's forced final update).
/// Only the chosen iterations are kept, so a 5000-iteration run stays small.
public final class Recorder: @unchecked Sendable {
    public let options: RecordingOptions
    let iterations: Int, batch: Int, steps: Int, nIn: Int, nRec: Int, nOut: Int
    var nRecord: Int { min(options.nRecord, nRec) }

    public private(set) var recordedIterations: [Int] = []
    /// Recurrent multimeter: stamps and `[nRecord]` series per recordable.
    public private(set) var recTimes: [Double] = []
    public private(set) var rec: [String: [[Double]]]
    /// Readout multimeter: stamps and `[nOut]` series per recordable.
    public private(set) var outTimes: [Double] = []
    public private(set) var out: [String: [[Double]]]
    public private(set) var spikesIn: (times: [Double], senders: [Int32]) = ([], [])
    public private(set) var spikesRec: (times: [Double], senders: [Int32]) = ([], [])
    /// Weight recorder events: stamp, weight, sender population (0 input, 1 recurrent),
    /// sender index, target population (0 recurrent, 1 readout), target index.
    public private(set) var weightEvents: [(time: Double, weight: Double, senderPop: Int32, sender: Int32, targetPop: Int32, target: Int32)] = []
    /// L of the recorded neurons at the last `NESTStamp.learningSignalLag` steps of the previous
    /// sequence: NEST's learning_signal recordable lags the other recordables by that many steps.
    var lastSignal: [[Double]]

    public static let recNames = ["V_m", "surrogate_gradient", "learning_signal", "V_th_adapt", "adaptation"]
    public static let outNames = ["V_m", "readout_signal", "readout_signal_unnorm", "target_signal", "error_signal"]

    init(_ options: RecordingOptions, iterations: Int, batch: Int, steps: Int, nIn: Int, nRec: Int, nOut: Int) {
        self.options = options
        (self.iterations, self.batch, self.steps, self.nIn, self.nRec, self.nOut) = (iterations, batch, steps, nIn, nRec, nOut)
        let nr = min(options.nRecord, nRec)
        rec = Dictionary(uniqueKeysWithValues: Self.recNames.map { ($0, [[Double]](repeating: [], count: nr)) })
        out = Dictionary(uniqueKeysWithValues: Self.outNames.map { ($0, [[Double]](repeating: [], count: nOut)) })
        lastSignal = [[Double]](repeating: [Double](repeating: 0, count: nr), count: NESTStamp.learningSignalLag)
    }

    public func isRecorded(_ iteration: Int) -> Bool {
        options.iterations.contains(iteration, total: iterations)
    }

    /// Called after every forward pass (recorded or not: the learning-signal lag needs the
    /// previous sequence).
    /// `seq` holds the sequences `firstSequence ..< firstSequence + seq.batch` of the run; shards
    /// of a batch must be observed in order.
    func observe<S: Scalar>(iteration: Int, firstSequence: Int, _ seq: SequenceBuffers<S>, _ net: Network<S>, eL: Double, eLOut: Double) {
        let B = seq.batch, T = steps
        let recorded = isRecorded(iteration)
        if recorded && recordedIterations.last != iteration { recordedIterations.append(iteration) }
        let windowStart = T - seq.learningWindowUsed
        for b in 0..<B {
            let k = firstSequence + b
            if recorded {
                recordSequence(k: k, b: b, seq, net, eL: eL, eLOut: eLOut, windowStart: windowStart)
            }
            let lag = NESTStamp.learningSignalLag
            for d in 0..<lag {
                let row = seq.learningSignal.row((T - lag + d) * B + b)
                for j in 0..<nRecord { lastSignal[d][j] = Double(row[j]) }
            }
        }
    }

    private func recordSequence<S: Scalar>(k: Int, b: Int, _ seq: SequenceBuffers<S>, _ net: Network<S>, eL: Double, eLOut: Double, windowStart: Int) {
        let B = seq.batch, T = steps, P = net.prop
        let base = Double(k * T)
        for s in 0..<T {
            let row = s * B + b
            // Recurrent multimeter.
            recTimes.append(base + NESTStamp.recurrent + Double(s))
            let v = seq.vRecord.row(row), a = seq.aRecord.row(row), psi = seq.psi.row(row)
            for j in 0..<nRecord {
                rec["V_m"]![j].append(Double(v[j]) + eL)
                rec["adaptation"]![j].append(Double(a[j]))
                rec["V_th_adapt"]![j].append(Double(P.vTh + P.beta.p[j] * a[j]) + eL)
                rec["surrogate_gradient"]![j].append(Double(psi[j]))
                let lag = NESTStamp.learningSignalLag
                rec["learning_signal"]![j].append(s >= lag ? Double(seq.learningSignal.row((s - lag) * B + b)[j]) : lastSignal[s][j])
            }
            // Readout multimeter: sample 5 + kT + s shows y(s) and the membrane u(s + 1).
            outTimes.append(base + NESTStamp.readout + Double(s))
            let u = seq.u.row(row), err = seq.err.row(row), target = seq.target.row(row)
            // After the last step the next sequence starts from u = 0 (no spike can arrive at step 0).
            let uNext = s + 1 < T ? seq.u.row(row + B) : nil
            let inWindow = s >= windowStart
            let crossEntropy = seq.lossFunction == .crossEntropy
            // Cross entropy: the output is the softmax across readouts (docs/mathematics.md §3.2).
            let softmaxSum = crossEntropy ? Softmax.denominator(u, count: nOut, eL: P.eLOut) : 1
            for q in 0..<nOut {
                let next = (uNext.map { Double($0[q]) } ?? 0) + eLOut
                let output = crossEntropy ? Softmax.output(u[q], eL: P.eLOut, denominator: softmaxSum) : Double(u[q]) + eLOut
                out["V_m"]![q].append(next)
                out["readout_signal_unnorm"]![q].append(crossEntropy ? Foundation.exp(next) : next)
                out["readout_signal"]![q].append(inWindow ? output : 0)
                out["target_signal"]![q].append(inWindow ? Double(target[q]) : 0)
                out["error_signal"]![q].append(Double(err[q]))
            }
            // Spikes: inputs are relayed by parrots, so they carry an earlier stamp than recurrent spikes.
            let x = seq.x.row(row), z = seq.z.row(row + B)
            for i in 0..<nIn where x[i] != 0 {
                spikesIn.times.append(base + NESTStamp.inputSpike + Double(s))
                spikesIn.senders.append(Int32(i))
            }
            for j in 0..<nRec where z[j] != 0 {
                spikesRec.times.append(base + NESTStamp.recurrent + Double(s))
                spikesRec.senders.append(Int32(j))
            }
            // Weight recorder: every transmitted spike of a recorded synapse. A recurrent spike of the
            // last step arrives at step 0 of the next interval: dropped for recurrent targets
            // (docs/mathematics.md §6.1), not for readouts.
            transmit(net, inputTime: base + NESTStamp.inputSpike + Double(s), recurrentTime: base + NESTStamp.recurrent + Double(s),
                     inputSpikes: { x[$0] != 0 }, recurrentSpikes: { z[$0] != 0 }, reachesRecurrent: s < T - 1)
        }
    }

    /// The final weights at KT + 4 ms, as NEST's forced final update records them.
    func finish<S: Scalar>(_ net: Network<S>) {
        guard isRecorded(iterations - 1) else { return }
        let t = Double(iterations * batch * steps) + NESTStamp.finalUpdate
        transmit(net, inputTime: t, recurrentTime: t, inputSpikes: { _ in true }, recurrentSpikes: { _ in true }, reachesRecurrent: true)
    }

    /// Weight-recorder entries for the watched senders that spike (`inputSpikes(i)`,
    /// `recurrentSpikes(i)`), each to the watched targets, with the weight transmitted.
    private func transmit<S: Scalar>(
        _ net: Network<S>, inputTime: Double, recurrentTime: Double, inputSpikes: (Int) -> Bool,
        recurrentSpikes: (Int) -> Bool, reachesRecurrent: Bool
    ) {
        let nW = options.nRecordW
        for i in 0..<min(nW, nIn) where inputSpikes(i) {
            for j in 0..<min(nW, nRec) { weightEvents.append((inputTime, Double(net.wIn[j, i]), 0, Int32(i), 0, Int32(j))) }
        }
        for i in 0..<min(nW, nRec) where recurrentSpikes(i) {
            if reachesRecurrent {
                for j in 0..<min(nW, nRec) where j != i { weightEvents.append((recurrentTime, Double(net.wRec[j, i]), 1, Int32(i), 0, Int32(j))) }
            }
            for q in 0..<nOut { weightEvents.append((recurrentTime, Double(net.wOut[q, i]), 1, Int32(i), 1, Int32(q))) }
        }
    }

    /// Takes over the recordings an earlier part of the run wrote into `folder` (for `--resume`).
    func load(from folder: URL) throws {
        func read(_ name: String) throws -> NPYArray { try NPY.read(folder.appendingPathComponent(name)) }
        guard FileManager.default.fileExists(atPath: folder.appendingPathComponent("recorded_iterations.npy").path) else { return }
        recordedIterations = try read("recorded_iterations.npy").values.map { Int($0) - 1 }  // stored 1-based
        recTimes = try read("rec_times_ms.npy").values
        outTimes = try read("out_times_ms.npy").values
        func rows(_ a: NPYArray, _ n: Int, _ name: String) throws -> [[Double]] {
            let len = a.shape.count == 2 ? a.shape[1] : 0
            guard a.shape.count == 2, a.shape[0] == n else { throw CheckpointError("\(folder.path)/\(name): expected \(n) rows, got shape \(a.shape)") }
            return (0..<n).map { Array(a.values[($0 * len)..<(($0 + 1) * len)]) }
        }
        for name in Self.recNames { rec[name] = try rows(read("rec_\(name).npy"), nRecord, "rec_\(name).npy") }
        for name in Self.outNames { out[name] = try rows(read("out_\(name).npy"), nOut, "out_\(name).npy") }
        spikesIn = (try read("spikes_in_times_ms.npy").values, try read("spikes_in_senders.npy").values.map { Int32($0) })
        spikesRec = (try read("spikes_rec_times_ms.npy").values, try read("spikes_rec_senders.npy").values.map { Int32($0) })
        let cols = try ["wr_times_ms", "wr_weights", "wr_sender_pop", "wr_sender_idx", "wr_target_pop", "wr_target_idx"].map { try read("\($0).npy").values }
        weightEvents = cols[0].indices.map { (cols[0][$0], cols[1][$0], Int32(cols[2][$0]), Int32(cols[3][$0]), Int32(cols[4][$0]), Int32(cols[5][$0])) }
    }

    /// Writes the recordings as `.npy` files named as NEST's exports.
    public func write(to folder: RunFolder) throws {
        try folder.write(NPYArray(shape: [recordedIterations.count], dtype: .int32, values: recordedIterations.map { Double($0 + 1) }), "recorded_iterations.npy")
        try folder.write(NPYArray(shape: [recTimes.count], values: recTimes), "rec_times_ms.npy")
        for name in Self.recNames {
            try folder.write(NPYArray(shape: [nRecord, recTimes.count], values: rec[name]!.flatMap { $0 }), "rec_\(name).npy")
        }
        try folder.write(NPYArray(shape: [outTimes.count], values: outTimes), "out_times_ms.npy")
        for name in Self.outNames {
            try folder.write(NPYArray(shape: [nOut, outTimes.count], values: out[name]!.flatMap { $0 }), "out_\(name).npy")
        }
        for (pop, spikes) in [("in", spikesIn), ("rec", spikesRec)] {
            try folder.write(NPYArray(shape: [spikes.times.count], values: spikes.times), "spikes_\(pop)_times_ms.npy")
            try folder.write(NPYArray(shape: [spikes.senders.count], dtype: .int32, values: spikes.senders.map(Double.init)), "spikes_\(pop)_senders.npy")
        }
        let n = weightEvents.count
        try folder.write(NPYArray(shape: [n], values: weightEvents.map(\.time)), "wr_times_ms.npy")
        try folder.write(NPYArray(shape: [n], values: weightEvents.map(\.weight)), "wr_weights.npy")
        try folder.write(NPYArray(shape: [n], dtype: .int32, values: weightEvents.map { Double($0.senderPop) }), "wr_sender_pop.npy")
        try folder.write(NPYArray(shape: [n], dtype: .int32, values: weightEvents.map { Double($0.sender) }), "wr_sender_idx.npy")
        try folder.write(NPYArray(shape: [n], dtype: .int32, values: weightEvents.map { Double($0.targetPop) }), "wr_target_pop.npy")
        try folder.write(NPYArray(shape: [n], dtype: .int32, values: weightEvents.map { Double($0.target) }), "wr_target_idx.npy")
    }
}
