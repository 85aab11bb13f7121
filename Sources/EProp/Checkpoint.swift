import Foundation

/// Everything needed to continue a run exactly: completed iterations and their results, the
/// weights and the optimizer state (its step, and Adam's moments; gradient descent has none) in
/// the run's own precision, the configuration, the recorder's learning-signal carry and the
/// trial generator's state (generated tasks).
///
/// Layout: `<run>/checkpoint/` with `checkpoint.json` and `.npy` arrays, replaced atomically
/// (written to a temporary sibling, then renamed). The initial state comes from the run folder
/// itself (`w_*_init.npy`, `tau_m_rec.npy`, input, target: the `--init` layout).
public enum Checkpoint {
    public static let formatVersion = 2

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
        /// What the run records, and its checkpoint cadence (a resumed run keeps both).
        var recording: RecordingOptions
        var checkpoint_every: Int
        /// Held-out evaluations so far, and the digests of the datasets (`EventDataset.digest`)
        /// that the run must find again when it resumes.
        var evaluations: [Evaluation]?
        var train_data_digest: String?
        var test_data_digest: String?
    }

    /// Writes the trainer's state into `<runFolder>/checkpoint`. After the last iteration it
    /// stores the continuation state (see `Trainer.continuation`).
    /// `testDigest`: the held-out split's `EventDataset.digest`, if the run evaluates one.
    public static func write<S: Scalar>(_ t: Trainer<S>, in runFolder: URL, checkpointEvery: Int, testDigest: String? = nil) throws {
        let tmp = runFolder.appendingPathComponent(".checkpoint.tmp-\(getpid())")
        do { try write(t, in: runFolder, checkpointEvery: checkpointEvery, testDigest: testDigest, tmp: tmp) } catch {
            try? FileManager.default.removeItem(at: tmp)  // the previous checkpoint stays
            throw CheckpointError("writing the checkpoint in \(runFolder.path) failed: \(error is NPYError ? "\(error)" : plainMessage(error)); the previous checkpoint, if any, is kept")
        }
    }

    /// Puts a checkpoint whose replacement a crash cut short back in place, and removes the
    /// temporary checkpoint folders of dead processes; returns what it did.
    static func recover(in runFolder: URL) throws -> [String] {
        let fm = FileManager.default
        var done: [String] = []
        let final = runFolder.appendingPathComponent("checkpoint")
        for entry in ((try? fm.contentsOfDirectory(atPath: runFolder.path)) ?? []).sorted() {
            for kind in [".checkpoint.tmp-", ".checkpoint.old-"] where entry.hasPrefix(kind) {
                guard let pid = Int32(entry.dropFirst(kind.count)), !isAlive(pid) else { continue }
                let url = runFolder.appendingPathComponent(entry)
                if kind == ".checkpoint.old-" && !fm.fileExists(atPath: final.path) {
                    try fm.moveItem(at: url, to: final)
                    done.append("recovered the checkpoint from \(entry)")
                } else if (try? fm.removeItem(at: url)) != nil {
                    done.append("removed \(entry)")
                }
            }
        }
        return done
    }

    private static func write<S: Scalar>(_ t: Trainer<S>, in runFolder: URL, checkpointEvery: Int, testDigest: String?, tmp: URL) throws {
        let fm = FileManager.default
        let final = runFolder.appendingPathComponent("checkpoint")
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        let (weights, state) = t.continuation ?? (t.net.trained, t.optimizerState)
        let dtype: NPYArray.DType = S.self == Float.self ? .float32 : .float64
        for (m, w) in zip(TrainedMatrix.allCases, weights) {
            try NPY.write(NPYArray(w, dtype: dtype), to: tmp.appendingPathComponent("\(m.name).npy"))
        }
        for (m, w) in zip(TrainedMatrix.allCases, weights) where !state.firstMoment.isEmpty {
            for (moment, values) in [("m", state.firstMoment[m.rawValue]), ("v", state.secondMoment[m.rawValue])] {
                let a = NPYArray(shape: [w.rows, w.cols], dtype: dtype, values: values.map(Double.init))
                try NPY.write(a, to: tmp.appendingPathComponent("adam_\(moment)_\(m.name).npy"))
            }
        }
        let record = Record(
            format_version: formatVersion, precision: S.self == Float.self ? .float : .double,
            completed_iterations: t.iteration, optimizer_step: state.step, config: t.config, results: t.results,
            recorder_last_signal: t.recorder.lastSignal, trial_generator: t.initial.patterns.generatorState(atBatch: t.iteration),
            recording: t.recorder.options, checkpoint_every: checkpointEvery,
            evaluations: t.evaluations.isEmpty ? nil : t.evaluations, train_data_digest: t.initial.patterns.dataset?.digest, test_data_digest: testDigest)
        try recordJSON(record).write(to: tmp.appendingPathComponent("checkpoint.json"), options: .atomic)
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
        let dec = recordDecoder()
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
        func load(_ name: String, rows: Int, cols: Int) throws -> [S] {
            let a = try NPY.read(dir.appendingPathComponent("\(name).npy"))
            guard a.shape == [rows, cols] else {
                throw CheckpointError("\(dir.path)/\(name).npy: expected shape [\(rows), \(cols)], got \(a.shape)")
            }
            guard a.values.allSatisfy({ $0.isFinite }) else { throw CheckpointError("\(dir.path)/\(name).npy: contains NaN or infinity") }
            return a.values.map { S($0) }
        }
        let weights = try zip(TrainedMatrix.allCases, t.net.trained).map { m, w in
            Matrix(rows: w.rows, cols: w.cols, try load(m.name, rows: w.rows, cols: w.cols))
        }
        var state = OptimizerState<S>(step: record.optimizer_step)
        if t.config.optimizer.kind == .adam {
            for (m, w) in zip(TrainedMatrix.allCases, weights) {
                state.firstMoment.append(try load("adam_m_\(m.name)", rows: w.rows, cols: w.cols))
                state.secondMoment.append(try load("adam_v_\(m.name)", rows: w.rows, cols: w.cols))
            }
        }
        t.restore(iteration: record.completed_iterations, results: record.results, weights: weights, optimizerState: state)
        t.evaluations = record.evaluations ?? []
        if record.recorder_last_signal.count == NESTStamp.learningSignalLag && record.recorder_last_signal.allSatisfy({ $0.count == t.recorder.lastSignal[0].count }) {
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
