import Foundation

/// Writes a training run's outputs into a run folder: numpy-readable `.npy` arrays named like
/// NEST's reference exports (so a run folder is itself a valid `--init` folder), `loss.csv`
/// and `run.json` (configuration, versions, timings). Per-iteration arrays are
/// `[iterations, ...]`, and iterations are counted from 1 wherever they are stored as numbers.
public enum RunOutput {
    public static let version = "0.1.0"

    public static func write<S: Scalar>(
        _ t: Trainer<S>, to folder: RunFolder, commandLine: [String], initSource: String, trainSeconds: Double,
        status: String = "complete", gitCommit: String = "unknown"
    ) throws {
        let i = t.initial
        let n = t.results.count
        try folder.write(NPYArray(shape: [n], values: t.results.map(\.loss)), "loss.npy")
        try folder.write(NPYArray(shape: [n, t.config.optimizer.batchSize], values: t.results.flatMap(\.lossPerSequence)), "loss_per_sequence.npy")
        try folder.write(NPYArray(shape: [n], values: t.results.map(\.rateHz)), "rate_rec_hz.npy")
        try folder.write(NPYArray(shape: [n], values: t.results.map { $0.inputRateHz ?? .nan }), "rate_in_hz.npy")
        let nOut = t.net.nOut
        try folder.write(NPYArray(shape: [n, nOut], values: t.results.flatMap(\.lossPerReadout)), "loss_per_readout.npy")
        let classification = t.config.readout.loss == .crossEntropy
        let compared = t.config.compareGradients
        let names = TrainedMatrix.allCases.map(\.name)
        var csv = "iteration,loss," + (classification ? "accuracy," : "") + "mean_rate_rec_hz,seconds"
            + (compared ? "," + (names.map { "cosine_\($0)" } + names.map { "norm_ratio_\($0)" }).joined(separator: ",") : "") + "\n"
        for r in t.results {
            csv += "\(r.iteration + 1),\(r.loss)," + (classification ? "\(r.accuracy ?? .nan)," : "") + "\(r.rateHz),\(r.seconds)"
            if compared { csv += "," + ((r.gradientCosine ?? []) + (r.gradientNormRatio ?? [])).map { "\($0)" }.joined(separator: ",") }
            csv += "\n"
        }
        if compared {
            // [iterations, 3]: e-prop against BPTT per trained matrix (w_in_rec, w_rec_rec, w_rec_out).
            try folder.write(NPYArray(shape: [n, 3], values: t.results.flatMap { $0.gradientCosine ?? [.nan, .nan, .nan] }), "gradient_cosine.npy")
            try folder.write(NPYArray(shape: [n, 3], values: t.results.flatMap { $0.gradientNormRatio ?? [.nan, .nan, .nan] }), "gradient_norm_ratio.npy")
        }
        try folder.write(text: csv, "loss.csv")

        try folder.write(NPYArray(i.wInRec), "w_in_rec_init.npy")
        try folder.write(NPYArray(i.wRecRec), "w_rec_rec_init.npy")
        try folder.write(NPYArray(i.wRecOut), "w_rec_out_init.npy")
        // The feedback the run used: with symmetric feedback B starts as W_out^T and follows it.
        let feedback = t.config.feedback == .symmetric ? Matrix<Double>(rows: i.nRec, cols: i.nOut, (0..<(i.nRec * i.nOut)).map { i.wRecOut[$0 % i.nOut, $0 / i.nOut] }) : i.wOutRecFeedback
        try folder.write(NPYArray(feedback), "w_out_rec_feedback.npy")
        try folder.write(NPYArray(vector: i.tauM), "tau_m_rec.npy")
        // The task's patterns, as --init reads them (generated trials are redrawn from the seed).
        let patterns = i.patterns
        if patterns.isStored {
            let k = patterns.count, (nIn, nOut, T) = (patterns.nIn, patterns.nOut, patterns.steps)
            let all = (0..<k).map { patterns.sequence($0) }
            try folder.write(NPYArray(shape: (k > 1 ? [k] : []) + [nIn, T], dtype: .bool, values: all.flatMap { $0.input.flat() }), "input_spike_bool_seq.npy")
            try folder.write(NPYArray(shape: (k > 1 ? [k] : []) + [nOut, T], values: all.flatMap { $0.target.flat() }), "target_signal_seq.npy")
        }
        if classification {
            try folder.write(NPYArray(shape: [n], values: t.results.map { $0.accuracy ?? .nan }), "accuracy.npy")
        }
        for (m, w) in zip(TrainedMatrix.allCases, t.net.trained) { try folder.write(NPYArray(w), "\(m.name)_final.npy") }
        if !t.evaluations.isEmpty { try writeEvaluations(t.evaluations, to: folder) }
        try t.recorder.write(to: folder)
        try writeRecord(t, to: folder, commandLine: commandLine, initSource: initSource, trainSeconds: trainSeconds, status: status, gitCommit: gitCommit)
    }

    /// Writes the held-out evaluations: `evaluation.csv` (iteration, samples, loss, accuracy,
    /// seconds), `confusion_matrix.npy` `[E, C, C]` (counts; row = class, column = class
    /// given) and `accuracy_per_class.npy` `[E, C]` (NaN for a class without samples).
    public static func writeEvaluations(_ e: [Evaluation], to folder: RunFolder) throws {
        let C = e[0].confusion.count
        var csv = "iteration,samples,loss,accuracy,seconds\n"
        for x in e { csv += "\(x.iteration),\(x.samples),\(x.loss),\(x.accuracy),\(x.seconds)\n" }
        try folder.write(text: csv, "evaluation.csv")
        try folder.write(NPYArray(shape: [e.count, C, C], dtype: .int64, values: e.flatMap { $0.confusion.flatMap { $0.map(Double.init) } }), "confusion_matrix.npy")
        try folder.write(NPYArray(shape: [e.count, C], values: e.flatMap(\.accuracyPerClass)), "accuracy_per_class.npy")
    }

    /// Writes an evaluation-only folder: the files of `writeEvaluations` and `evaluation.json`
    /// (the trained run, the held-out split and its digest, the evaluation, the command line).
    public static func writeEvaluation(_ e: Evaluation, of trainedRun: URL, on test: EventDataset, commandLine: [String], to folder: RunFolder) throws {
        struct Record: Encodable {
            let eprop_dense_version: String, command_line: [String], date_utc: String, trained_run: String
            let test_data: String, test_data_digest: String, evaluation: Evaluation
        }
        try writeEvaluations([e], to: folder)
        let record = Record(eprop_dense_version: version, command_line: commandLine, date_utc: ISO8601DateFormatter().string(from: Date()),
                            trained_run: trainedRun.standardizedFileURL.path, test_data: test.url.standardizedFileURL.path,
                            test_data_digest: test.digest, evaluation: e)
        try folder.write(text: String(decoding: try recordJSON(record), as: UTF8.self), "evaluation.json")
    }

    /// Writes `run.json` alone (also what a failed run still tries to write).
    public static func writeRecord<S: Scalar>(
        _ t: Trainer<S>, to folder: RunFolder, commandLine: [String], initSource: String, trainSeconds: Double,
        status: String, gitCommit: String
    ) throws {
        let secs = t.results.map(\.seconds)
        func median(_ x: [Double]) -> Double { x.isEmpty ? 0 : x.sorted()[x.count / 2] }
        let record = RunRecord(
            status: status, completed_iterations: t.iteration,
            eprop_dense_version: version, git_commit: gitCommit, command_line: commandLine, init_source: initSource,
            date_utc: ISO8601DateFormatter().string(from: Date()), config: t.config,
            resolved: .init(learning_window: t.config.resolvedLearningWindow, adapt_beta: t.config.recurrent.resolvedAdaptBeta,
                            surrogate_gradient_height: t.config.recurrent.resolvedHeight, surrogate_gradient_width: t.config.recurrent.resolvedWidth,
                            n_adaptive: t.config.recurrent.model == .alif ? (t.config.recurrent.nAdaptive ?? t.config.nRec) : 0,
                            patterns: t.initial.patterns.isGenerated ? "generated (\(t.config.task.rawValue))"
                                : t.initial.patterns.dataset.map { "\($0.count) samples of \($0.url.path) (index digest \($0.digest)), a new order every epoch" }
                                ?? (t.initial.patterns.isUserDefined ? "user-defined" : "\(t.config.task.rawValue), \(t.initial.patterns.count) pattern(s)")),
            recording: t.recorder.options,
            blas: .init(library: BLASRuntime.config, core: BLASRuntime.coreName, threads: BLASRuntime.threads),
            machine: .init(host: ProcessInfo.processInfo.hostName, cpus: ProcessInfo.processInfo.activeProcessorCount),
            timings: .init(
                total_s: trainSeconds, per_iteration_mean_s: secs.reduce(0, +) / Double(max(secs.count, 1)),
                per_iteration_median_s: median(secs), phases_per_iteration_mean_s: meanPhases(t.results)),
            kernel: t.kernel,
            processes: t.group.size == 1 ? nil : .init(
                ranks: t.group.size, shards_per_rank: t.exchange.shardsPerRank,
                received_bytes_per_iteration_rank0: t.exchange.receivedBytes,
                exchange_median_s_rank0: median(t.results.compactMap(\.exchangeSeconds))),
            peak_memory_mb: peakMemoryMB(),
            memory_estimate_mb: Resources.memoryBytes(t.config, recording: t.recorder.options) / 1e6,
            final_loss: t.results.last?.loss ?? .nan,
            last_evaluation: t.evaluations.last.map { .init(iteration: $0.iteration, samples: $0.samples, loss: $0.loss, accuracy: $0.accuracy) },
            notes: "tau_m is drawn by eprop-dense's numpy-compatible generator unless --init gives NEST's; recordings (rec_*, out_*, spikes_*, wr_*) use NEST's names and time stamps; see README 'Recordings'.")
        do { try recordJSON(record).write(to: folder.url("run.json"), options: .atomic) } catch {
            throw RunFolderError("writing \(folder.url("run.json").path) failed: \(plainMessage(error))")
        }
    }

    /// Mean seconds per iteration of each phase over the profiled iterations, or nil.
    static func meanPhases(_ results: [IterationResult]) -> [String: Double]? {
        let profiled = results.compactMap(\.phaseSeconds)
        guard !profiled.isEmpty else { return nil }
        return profiled.reduce(into: [:]) { sum, phases in
            for (name, t) in phases { sum[name, default: 0] += t / Double(profiled.count) }
        }
    }

    /// Peak resident memory of this process (MB): the kernel's high-water mark `VmHWM` from
    /// `/proc/self/status`. (`getrusage`'s `ru_maxrss` is no good here: it survives `exec`, so
    /// under `swift run` it reports the build tool's peak.) Falls back to `ru_maxrss` where
    /// `/proc` is missing.
    public static func peakMemoryMB() -> Double {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kB = Double(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") {
            return kB / 1024
        }
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_maxrss) / 1024
    }
}

/// The JSON of eprop-dense's records (`run.json`, `checkpoint.json`, `--print-config`): sorted
/// keys, indented, infinities and NaN as the strings "inf", "-inf", "nan".
public func recordJSON<T: Encodable>(_ value: T) throws -> Data {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return try enc.encode(value)
}

/// The decoder of eprop-dense's records (`recordJSON`'s strings for infinities and NaN).
public func recordDecoder() -> JSONDecoder {
    let dec = JSONDecoder()
    dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return dec
}

/// The `run.json` record.
struct RunRecord: Encodable {
    /// "complete", "interrupted" (resume with --resume) or "diverged".
    let status: String
    let completed_iterations: Int
    struct BLAS: Encodable { let library: String, core: String, threads: Int }
    struct Machine: Encodable { let host: String, cpus: Int }
    struct Timings: Encodable {
        let total_s: Double, per_iteration_mean_s: Double, per_iteration_median_s: Double
        /// With `--profile-phases`: mean seconds per iteration of each phase (`Phase`), over
        /// the iterations that were profiled.
        let phases_per_iteration_mean_s: [String: Double]?
    }
    let eprop_dense_version: String
    let git_commit: String
    let command_line: [String]
    let init_source: String
    let date_utc: String
    let config: TrainingConfig
    /// Values the configuration leaves to defaults or formulas, as the run used them.
    struct Resolved: Encodable {
        let learning_window: Int, adapt_beta: Double, surrogate_gradient_height: Double, surrogate_gradient_width: Double
        let n_adaptive: Int
        let patterns: String
    }
    let resolved: Resolved
    let recording: RecordingOptions
    let blas: BLAS
    let machine: Machine
    let timings: Timings
    /// The kernel used (`--kernel auto` resolved) and why.
    let kernel: KernelResolution
    /// A data-parallel run: the processes, their shards of each batch, and rank 0's exchange.
    struct Processes: Encodable {
        let ranks: Int, shards_per_rank: [Int], received_bytes_per_iteration_rank0: Int, exchange_median_s_rank0: Double
    }
    let processes: Processes?
    let peak_memory_mb: Double
    /// What the check before the run estimated (`Resources.memoryBytes`).
    let memory_estimate_mb: Double
    let final_loss: Double
    /// The last evaluation on the held-out split (all of them: evaluation.csv).
    struct LastEvaluation: Encodable { let iteration: Int, samples: Int, loss: Double, accuracy: Double }
    let last_evaluation: LastEvaluation?
    let notes: String
}
