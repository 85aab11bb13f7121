import Foundation

/// Everything a training run needs, resolved and checked: the configuration, the initial state,
/// what to record and how often to checkpoint. Made by a front end (the command line, a
/// notebook driver, a test) or by `RunPlan.resuming` from a run folder's checkpoint.
public struct RunPlan: Sendable {
    public var config: TrainingConfig
    public var initial: NetworkInit
    public var recording: RecordingOptions
    /// Write a checkpoint every this many iterations and at the end (0: never).
    public var checkpointEvery: Int
    /// Where the initial state came from, for `run.json` ("seed 1", a folder, ...).
    public var initSource: String
    /// The held-out split evaluated during the run (`config.testData`), if any.
    public var test: Patterns?
    /// The run folder whose checkpoint the run continues, if it does.
    public internal(set) var resumedFrom: URL?
    /// Time the phases of every iteration (`IterationResult.phaseSeconds`, run.json).
    public var profilePhases = false
    public var resuming: Bool { resumedFrom != nil }

    public init(config: TrainingConfig, initial: NetworkInit, recording: RecordingOptions = RecordingOptions(), checkpointEvery: Int = 0,
                initSource: String, test: Patterns? = nil) {
        self.config = config
        self.test = test
        self.initial = initial
        self.recording = recording
        self.checkpointEvery = checkpointEvery
        self.initSource = initSource
    }

    /// Checks the configuration, the recording choice and that the run fits this machine's memory
    /// and the disk holding `out` (before any initial state is drawn or loaded).
    public static func validate(_ config: TrainingConfig, recording: RecordingOptions, checkpointEvery: Int, out: URL) throws {
        try config.validate()
        guard checkpointEvery >= 0 else { throw ConfigError(parameter: "checkpoint_every", requirement: "checkpoint_every >= 0 required") }
        try recording.validate(iterations: config.iterations)
        try Resources.check(config, recording: recording, out: out)
    }

    /// The plan that continues the run in `folder` from its checkpoint, up to `iterations` in total.
    /// The configuration, recordings and checkpoint cadence come from the checkpoint;
    /// `threads` (which does not change results) may differ.
    public static func resuming(_ folder: URL, iterations: Int?, threads: Int? = nil) throws -> RunPlan {
        _ = try RunFolder(existing: folder)
        let record = try Checkpoint.readRecord(folder)
        guard let iterations else {
            throw ConfigError(parameter: "iterations", requirement: "the total number of iterations to reach is required to resume (the run in \(folder.path) has \(record.completed_iterations))")
        }
        var config = record.config
        config.iterations = iterations
        if let threads { config.threads = threads }
        guard iterations > record.completed_iterations else {
            throw ConfigError(parameter: "iterations", requirement: "the run in \(folder.path) already has \(record.completed_iterations) iterations; pass a larger total to continue it")
        }
        // Generated trials are not stored: they are redrawn from the seed. Dataset samples are
        // read from the dataset again, which must be the one the run started with.
        let datasets = try EventDataset.reopen(config, digests: (record.train_data_digest, record.test_data_digest))
        let stored = FileManager.default.fileExists(atPath: folder.appendingPathComponent("input_spike_bool_seq.npy").path)
        let initial = try datasets.train.map { try NESTExport.load(folder, patterns: Patterns(dataset: $0, shuffleSeed: config.seed)) }
            ?? (stored ? try NESTExport.load(folder) : TaskGenerator.generate(config))
        try validate(config, recording: record.recording, checkpointEvery: record.checkpoint_every, out: folder)
        var plan = RunPlan(config: config, initial: initial, recording: record.recording, checkpointEvery: record.checkpoint_every,
                           initSource: "resumed from \(folder.path)", test: datasets.test.map { Patterns(dataset: $0, shuffleSeed: nil) })
        plan.resumedFrom = folder
        return plan
    }
}

/// How a run ended.
public enum RunOutcome: Sendable, Equatable {
    /// All iterations done.
    case complete
    /// Stopped at the front end's request (for example a signal, whose number it passed) after
    /// the iteration in progress; a checkpoint and the outputs so far are written.
    case interrupted(signal: Int32)
    /// A NaN or infinity appeared in `quantity` at 1-based `iteration`; the outputs so far are
    /// written (status "diverged") with the last finite weights, and the last good checkpoint,
    /// if any, is kept.
    case diverged(iteration: Int, quantity: String, checkpointKept: Bool)
}

/// A run that could not write its outputs (a full disk, a vanished folder); `run.json` says
/// "failed" where it could still be written.
public struct RunFailure: Error, CustomStringConvertible {
    public let description: String
}

/// The result of `TrainingRun.run`: how it ended and the summary a front end prints.
public struct RunSummary: Sendable {
    public let outcome: RunOutcome
    /// Iterations completed (over all legs of a resumed run).
    public let completedIterations: Int
    public let finalLoss: Double
    /// Classification: the accuracy of the last iteration.
    public let finalAccuracy: Double?
    /// The last evaluation on the held-out split, if any.
    public let lastEvaluation: Evaluation?
    /// Means over this process's iterations.
    public let meanRateHz: Double
    public let secondsPerIteration: Double
    public let peakMemoryMB: Double
    /// The kernel the run used and why.
    public let kernel: KernelResolution
    /// The run folder (nil on the processes of a group other than rank 0, which write nothing).
    public let folder: URL?
    /// Signs of a run going wrong without a NaN (a loss grown by orders of magnitude, rates near
    /// their maximum), in words.
    public let warnings: [String]
    /// Leftovers of crashed runs that were cleaned up when this one started.
    public let cleanedUp: [String]
}

/// What the front end tells a run as it goes and learns from it.
public struct RunControl {
    /// Asked before every iteration; a non-nil value (a signal number, or any code) stops the run
    /// cooperatively after writing a checkpoint and the outputs.
    public var stopRequested: () -> Int32? = { nil }
    /// Called after every iteration with its result (progress, logging).
    public var onIteration: (IterationResult) -> Void = { _ in }
    /// Called after every evaluation on the held-out split.
    public var onEvaluation: (Evaluation) -> Void = { _ in }
    /// For `run.json`: the command that started the run and the source's git commit.
    public var commandLine: [String] = []
    public var gitCommit = "unknown"

    public init(stopRequested: @escaping () -> Int32? = { nil }, onIteration: @escaping (IterationResult) -> Void = { _ in },
                onEvaluation: @escaping (Evaluation) -> Void = { _ in }, commandLine: [String] = [], gitCommit: String = "unknown") {
        self.stopRequested = stopRequested
        self.onIteration = onIteration
        self.onEvaluation = onEvaluation
        self.commandLine = commandLine
        self.gitCommit = gitCommit
    }
}

/// A training run: a trainer, its run folder and its checkpoints. It runs iterations until the
/// configured total, writing checkpoints at the plan's cadence, stops cooperatively when asked,
/// detects divergence, and leaves complete outputs in the folder in every case.
///
/// In a group of processes every process runs the same `TrainingRun` (the same plan); rank 0
/// alone writes the folder, and a stop asked of any process stops all after the same iteration.
public final class TrainingRun<S: Scalar> {
    public let plan: RunPlan
    public let trainer: Trainer<S>
    /// The run folder, written by rank 0; nil on the other processes of a group.
    public let folder: RunFolder?
    /// Evaluates the held-out split (rank 0 only).
    let evaluator: Evaluator<S>?

    /// A run of `plan` writing into `folder`; when the plan resumes, the trainer takes the
    /// checkpoint's state (every process reads it).
    public init(_ plan: RunPlan, folder: RunFolder?, group: any ProcessGroup = SingleProcess()) throws {
        precondition((folder != nil) == (group.rank == 0), "rank 0, and only rank 0, writes the run folder")
        self.plan = plan
        self.folder = folder
        let trainer = Trainer<S>(config: plan.config, initial: plan.initial, recording: plan.recording, group: group)
        trainer.profilesPhases = plan.profilePhases
        self.trainer = trainer
        evaluator = group.rank == 0 ? plan.test.map { Evaluator(config: plan.config, kernel: trainer.kernel.used, patterns: $0) } : nil
        if let resumed = plan.resumedFrom { try Checkpoint.restore(trainer, from: resumed) }
    }

    /// Runs the remaining iterations.
    public func run(_ control: RunControl = RunControl()) throws -> RunSummary {
        let start = ContinuousClock.now
        let config = plan.config
        let firstIteration = trainer.iteration
        func write(status: String) throws {
            guard let folder else { return }
            try RunOutput.write(trainer, to: folder, commandLine: control.commandLine, initSource: plan.initSource,
                                trainSeconds: (ContinuousClock.now - start).seconds, status: status, gitCommit: control.gitCommit)
            try folder.commit()
        }
        // A failed write ends the run, with status "failed" in run.json where that still fits.
        func failed(_ error: Error) -> RunFailure {
            guard let folder else { return RunFailure(description: "\(error)") }
            try? RunOutput.writeRecord(trainer, to: folder, commandLine: control.commandLine, initSource: plan.initSource,
                                       trainSeconds: (ContinuousClock.now - start).seconds, status: "failed", gitCommit: control.gitCommit)
            return RunFailure(description: error is NPYError || error is RunFolderError || error is CheckpointError ? "\(error)" : "writing the outputs into \(folder.current.path) failed: \(plainMessage(error))")
        }
        func writeOutputs(status: String) throws {
            do { try write(status: status) } catch { throw failed(error) }
        }
        func checkpoint() throws {
            try writeOutputs(status: "running")
            guard let folder else { return }
            do { try Checkpoint.write(trainer, in: folder.final, checkpointEvery: plan.checkpointEvery, testDigest: plan.test?.dataset?.digest) } catch { throw failed(error) }
        }
        // The weights before the current iteration, restored if it diverges.
        let lastFinite = trainer.net.trained.map { Matrix<S>(rows: $0.rows, cols: $0.cols) }
        func summary(_ outcome: RunOutcome) -> RunSummary {
            let mine = trainer.results[firstIteration...]
            let n = Double(max(mine.count, 1))
            return RunSummary(
                outcome: outcome, completedIterations: trainer.iteration, finalLoss: trainer.results.last?.loss ?? .nan,
                finalAccuracy: trainer.results.last?.accuracy, lastEvaluation: trainer.evaluations.last,
                meanRateHz: mine.map(\.rateHz).reduce(0, +) / n, secondsPerIteration: mine.map(\.seconds).reduce(0, +) / n,
                peakMemoryMB: RunOutput.peakMemoryMB(), kernel: trainer.kernel, folder: folder?.final, warnings: Self.warnings(trainer.results, config),
                cleanedUp: folder?.removedLeftovers ?? [])
        }

        let group = trainer.group
        while trainer.iteration < config.iterations {
            // Every process stops after the same iteration, whichever was asked (0: none).
            let asked = group.maximum(Int(control.stopRequested() ?? 0))
            if asked != 0, let signal = Int32(exactly: asked) {
                if trainer.iteration > 0 { try checkpoint() }
                try writeOutputs(status: "interrupted")
                return summary(.interrupted(signal: signal))
            }
            for (copy, w) in zip(lastFinite, trainer.net.trained) { copy.copy(from: w) }
            let result = trainer.step()
            if let bad = trainer.firstNonFinite() {
                for (w, copy) in zip(trainer.net.trained, lastFinite) { w.copy(from: copy) }
                try writeOutputs(status: "diverged")
                let kept = folder.map { FileManager.default.fileExists(atPath: $0.final.appendingPathComponent("checkpoint").path) } ?? false
                return summary(.diverged(iteration: result.iteration + 1, quantity: bad, checkpointKept: kept))
            }
            if let failure = plan.initial.patterns.readFailure { throw failed(RunFailure(description: failure)) }
            control.onIteration(result)
            if let evaluator, Self.evaluates(after: trainer.iteration, config) {
                let evaluation = evaluator.evaluate(trainer.net, iteration: trainer.iteration)
                if let failure = evaluator.patterns.readFailure { throw failed(RunFailure(description: failure)) }
                trainer.evaluations.append(evaluation)
                control.onEvaluation(evaluation)
            }
            let every = plan.checkpointEvery
            if every > 0 && (trainer.iteration % every == 0 || trainer.iteration == config.iterations) { try checkpoint() }
        }
        try writeOutputs(status: "complete")
        return summary(.complete)
    }
}

extension TrainingRun {
    /// Whether the held-out split is evaluated after `iteration` (1-based) iterations: every
    /// `evaluateEvery` and after the last.
    static func evaluates(after iteration: Int, _ c: TrainingConfig) -> Bool {
        iteration == c.iterations || (c.evaluateEvery ?? 0) > 0 && iteration % c.evaluateEvery! == 0
    }

    /// A loss that grew 100-fold over its first value or a mean rate above half of the most a
    /// neuron can fire (one spike per step, or per refractory period) in the last iteration.
    static func warnings(_ results: [IterationResult], _ c: TrainingConfig) -> [String] {
        guard let first = results.first, let last = results.last else { return [] }
        var out: [String] = []
        if last.loss > 100 * first.loss && last.loss > 0 {
            out.append(String(format: "the loss grew from %.4g to %.4g; the learning rate (eta %g) may be too large", first.loss, last.loss, c.optimizer.eta))
        }
        let maxRate = 1000 / max(1, (c.recurrent.tRef).rounded())
        if last.rateHz > 0.5 * maxRate {
            out.append(String(format: "the mean firing rate is %.0f Hz, near the most a neuron can fire (%.0f Hz): the network saturates (lower eta or the input weights)", last.rateHz, maxRate))
        }
        return out
    }
}

extension RunPlan {
    /// Runs the plan in `folder` (nil on processes of `group` other than rank 0) in its
    /// configured precision.
    public func run(in folder: RunFolder?, group: any ProcessGroup = SingleProcess(), _ control: RunControl = RunControl()) throws -> RunSummary {
        switch config.precision {
        case .float: return try TrainingRun<Float>(self, folder: folder, group: group).run(control)
        case .double: return try TrainingRun<Double>(self, folder: folder, group: group).run(control)
        }
    }
}
