import Foundation

/// Everything needed to continue a run exactly: completed iterations and their results, the
/// weights and the optimizer state (Adam m, v and step) in the run's own precision, the
/// configuration, and the recorder's learning-signal carry. Training uses no random numbers
/// after initialization (the task is frozen), so there is no generator state to keep.
///
/// Layout: `<run>/checkpoint/` with `checkpoint.json` and `.npy` arrays, replaced atomically
/// (written to a temporary sibling, then renamed). The initial state comes from the run folder
/// itself (`w_*_init.npy`, `tau_m_rec.npy`, input, target: the `--init` layout).
public enum Checkpoint {
    public static let formatVersion = 1
    static let names = ["w_in_rec", "w_rec_rec", "w_rec_out"]

    struct Record: Codable {
        var format_version: Int
        var precision: Precision
        var completed_iterations: Int
        var optimizer_step: Int
        var config: TrainingConfig
        var results: [IterationResult]
        /// L of the recorded neurons at the last 3 steps of the last sequence (recorder carry).
        var recorder_last_signal: [[Double]]
        /// Generated trials (evidence accumulation): the generator where the next batch starts.
        var trial_generator: EvidenceAccumulationTrials.State?
    }

    /// Writes the trainer's state into `<runFolder>/checkpoint`. After the last iteration it
    /// stores the continuation state (see `Trainer.continuation`).
    public static func write<S: Scalar>(_ t: Trainer<S>, in runFolder: URL) throws {
        let fm = FileManager.default
        let final = runFolder.appendingPathComponent("checkpoint")
        let tmp = runFolder.appendingPathComponent(".checkpoint.tmp-\(getpid())")
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        let (weights, optimizer) = t.continuation ?? ([t.net.wIn, t.net.wRec, t.net.wOut], t.optimizer)
        let dtype: NPYArray.DType = S.self == Float.self ? .float32 : .float64
        for (name, w) in zip(names, weights) {
            try NPY.write(NPYArray(w, dtype: dtype), to: tmp.appendingPathComponent("\(name).npy"))
        }
        for (name, m, v) in zip3(names, optimizer.m, optimizer.v) {
            try NPY.write(NPYArray(m, dtype: dtype), to: tmp.appendingPathComponent("adam_m_\(name).npy"))
            try NPY.write(NPYArray(v, dtype: dtype), to: tmp.appendingPathComponent("adam_v_\(name).npy"))
        }
        let record = Record(
            format_version: formatVersion, precision: S.self == Float.self ? .float : .double,
            completed_iterations: t.iteration, optimizer_step: optimizer.step, config: t.config, results: t.results,
            recorder_last_signal: t.recorder.lastSignal, trial_generator: t.initial.patterns.generatorState(atBatch: t.iteration))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try enc.encode(record).write(to: tmp.appendingPathComponent("checkpoint.json"), options: .atomic)
        // Replace the previous checkpoint: old -> backup, new -> final, drop backup.
        let backup = runFolder.appendingPathComponent(".checkpoint.old-\(getpid())")
        if fm.fileExists(atPath: final.path) { try fm.moveItem(at: final, to: backup) }
        try fm.moveItem(at: tmp, to: final)
        try? fm.removeItem(at: backup)
    }

    /// The configuration stored in a run folder's checkpoint (to rebuild the trainer).
    public static func readConfig(in runFolder: URL) throws -> TrainingConfig {
        try readRecord(runFolder).config
    }

    static func readRecord(_ runFolder: URL) throws -> Record {
        let url = runFolder.appendingPathComponent("checkpoint/checkpoint.json")
        guard let data = try? Data(contentsOf: url) else {
            throw CheckpointError("--resume \(runFolder.path): no checkpoint (checkpoint/checkpoint.json missing; the run needs --checkpoint-every)")
        }
        return try decodeRecord(data, path: url.path)
    }

    /// Parses and checks a `checkpoint.json`.
    static func decodeRecord(_ data: Data, path: String) throws -> Record {
        let url = URL(fileURLWithPath: path)
        let record: Record
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { record = try dec.decode(Record.self, from: data) } catch {
            throw CheckpointError("\(url.path): not a valid checkpoint (\(error))")
        }
        guard record.format_version == formatVersion else {
            throw CheckpointError("\(url.path): checkpoint format \(record.format_version), this eprop-dense reads format \(formatVersion)")
        }
        guard record.completed_iterations == record.results.count, record.completed_iterations >= 1,
            record.optimizer_step == record.completed_iterations
        else {
            throw CheckpointError("\(url.path): inconsistent checkpoint (iterations \(record.completed_iterations), results \(record.results.count), optimizer step \(record.optimizer_step))")
        }
        try record.config.validate()
        return record
    }

    /// Loads the checkpoint of `runFolder` into a trainer built from the same configuration.
    public static func restore<S: Scalar>(_ t: Trainer<S>, from runFolder: URL) throws {
        let record = try readRecord(runFolder)
        guard record.precision.rawValue == S.precisionName else {
            throw CheckpointError("--resume: the checkpoint is in \(record.precision.rawValue) precision; pass --precision \(record.precision.rawValue)")
        }
        let dir = runFolder.appendingPathComponent("checkpoint")
        func load(_ name: String, like m: Matrix<S>) throws -> Matrix<S> {
            let a = try NPY.read(dir.appendingPathComponent("\(name).npy"))
            guard a.shape == [m.rows, m.cols] else {
                throw CheckpointError("\(dir.path)/\(name).npy: expected shape [\(m.rows), \(m.cols)], got \(a.shape)")
            }
            guard a.values.allSatisfy({ $0.isFinite }) else { throw CheckpointError("\(dir.path)/\(name).npy: contains NaN or infinity") }
            return Matrix(rows: m.rows, cols: m.cols, a.values.map { S($0) })
        }
        let weights = try zip(names, [t.net.wIn, t.net.wRec, t.net.wOut]).map { try load($0.0, like: $0.1) }
        let opt = t.optimizer.copy()
        for (i, name) in names.enumerated() {
            opt.m[i].copy(from: try load("adam_m_\(name)", like: opt.m[i]))
            opt.v[i].copy(from: try load("adam_v_\(name)", like: opt.v[i]))
        }
        opt.step = record.optimizer_step
        t.restore(iteration: record.completed_iterations, results: record.results, weights: weights, optimizer: opt)
        if record.recorder_last_signal.count == 3 && record.recorder_last_signal.allSatisfy({ $0.count == t.recorder.lastSignal[0].count }) {
            t.recorder.lastSignal = record.recorder_last_signal
        }
        if let g = record.trial_generator { t.initial.patterns.restoreGenerator(g) }
        try t.recorder.load(from: runFolder)
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

func zip3<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
    (0..<min(a.count, b.count, c.count)).map { (a[$0], b[$0], c[$0]) }
}
