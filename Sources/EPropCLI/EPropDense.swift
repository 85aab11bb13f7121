import ArgumentParser
import EProp
import Foundation

/// The command line: options -> run plan -> run -> printed summary and exit code.
public struct EPropDense: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "eprop-dense",
        abstract: "Train a recurrent spiking network with e-prop, as NEST's tutorial \"learning to generate an infinite loop\".",
        discussion: """
            With no options, runs the tutorial: 100 frozen-Poisson inputs, 200 adaptive LIF neurons, \
            2 readouts drawing a figure eight, Adam, 5 iterations (5000 for convergence). Weights and \
            input are drawn like the tutorial's numpy code (--seed); tau_m is drawn by eprop-dense's own \
            generator, since NEST's cannot be reproduced. --init starts from a NEST export instead.
            Outputs (--out): loss.npy, loss_per_sequence.npy, loss.csv, w_*_init.npy, w_*_final.npy, \
            tau_m_rec.npy, recordings (rec_*, out_*, spikes_*, wr_*), run.json.
            """,
        version: RunOutput.version)

    public init() {}

    @OptionGroup(title: "Task and sizes") public var task: TaskOptions
    @OptionGroup(title: "Recurrent neurons") public var neuron: NeuronOptions
    @OptionGroup(title: "Readouts") public var readout: ReadoutOptions
    @OptionGroup(title: "Plasticity and optimizer") public var plasticity: PlasticityOptions
    @OptionGroup(title: "Engine") public var engine: EngineOptions
    @OptionGroup(title: "Outputs") public var output: OutputOptions

    /// The configuration: the task's defaults (NEST's script), then every option given. With
    /// `initial` (an `--init` export) or `patterns` (`--input`/`--target`) the sizes come from
    /// their arrays, and options that disagree with them are refused.
    public func resolvedConfig(initial: NetworkInit? = nil, patterns: Patterns? = nil) throws -> TrainingConfig {
        try refuseOnlineOnlyOptions()
        if task.trainData != nil, let t = task.task, t != .eventClassification {
            throw ValidationError("invalid --task: --train-data trains task event-classification, not \(t.rawValue)")
        }
        var c = TrainingConfig.defaults(for: task.task ?? (task.trainData != nil ? .eventClassification : .infiniteLoop))
        var sizes: [(name: String, given: Int?, actual: Int, source: String)] = []
        if let i = initial {
            sizes += [("n-in", task.nIn, i.nIn, "--init"), ("n-rec", task.nRec, i.nRec, "--init"), ("n-out", task.nOut, i.nOut, "--init"), ("sequence", task.sequence, i.steps, "--init")]
            (c.nIn, c.nRec, c.nOut, c.sequence) = (i.nIn, i.nRec, i.nOut, i.steps)
        }
        if let p = patterns {
            let (x, y) = p.dataset != nil ? ("--train-data", "--train-data") : ("--input", "--target")
            sizes += [("n-in", initial?.nIn ?? task.nIn, p.nIn, x), ("n-out", initial?.nOut ?? task.nOut, p.nOut, y), ("sequence", task.sequence, p.steps, x)]
            (c.nIn, c.nOut, c.sequence) = (p.nIn, p.nOut, p.steps)
        }
        for s in sizes {
            if let g = s.given, g != s.actual {
                throw ValidationError("invalid --\(s.name): \(g) conflicts with the \(s.source) arrays (\(s.actual)); omit it or pass \(s.actual)")
            }
        }
        // A plain LIF model asked for on a task whose default mixes in adaptive neurons.
        if neuron.model == .legacy(.lif) && neuron.nAdaptive == nil { c.recurrent.nAdaptive = nil }
        applyOptions(to: &c)
        try refuseUnused(c)
        return c
    }

    /// Applies every option given, group by group.
    func applyOptions(to c: inout TrainingConfig) {
        task.apply(to: &c)
        neuron.apply(to: &c.recurrent)
        readout.apply(to: &c.readout)
        plasticity.apply(to: &c)
        engine.apply(to: &c)
    }

    /// Every option given is used, or the run is refused naming it.
    func refuseUnused(_ c: TrainingConfig) throws {
        let patternsGiven = task.`init` != nil || task.input != nil
        let unused: [(Bool, String, String)] = [
            (neuron.gamma != nil && neuron.surrogateGradientHeight != nil, "gamma", "--surrogate-gradient-height sets the height directly; give one of them"),
            (c.recurrent.model == .lif && (neuron.adaptTau != nil || neuron.adaptBeta != nil), neuron.adaptTau != nil ? "adapt-tau" : "adapt-beta", "adaptation applies to --model alif only"),
            (c.optimizer.kind == .gradientDescent && plasticity.beta1 != nil, "beta-1", "applies to --optimizer adam only"),
            (c.optimizer.kind == .gradientDescent && plasticity.beta2 != nil, "beta-2", "applies to --optimizer adam only"),
            (c.optimizer.kind == .gradientDescent && plasticity.epsilon != nil, "epsilon", "applies to --optimizer adam only"),
            (task.`init` != nil && task.seed != nil && task.trainData == nil, "seed", "the --init folder gives the weights and patterns, so no seed is drawn from"),
            (task.`init` != nil && neuron.tauMStd != nil, "tau-m-std", "the --init folder gives every neuron's tau_m"),
            ((patternsGiven || task.trainData != nil) && task.inputSpikeProb != nil, "input-spike-prob", "the input patterns come from \(task.trainData != nil ? "--train-data" : task.`init` != nil ? "--init" : "--input")"),
            (task.trainData != nil && task.input != nil, "input", "--train-data gives the input patterns"),
            (c.gradient == .bptt && plasticity.feedback != nil, "feedback", "--gradient bptt sends the error back through the readout weights, not a feedback matrix"),
            (c.gradient == .bptt && plasticity.nestMissingLearningSignal != nil, "nest-missing-learning-signal", "NEST's missing term is an e-prop artefact; --gradient bptt has none"),
            (c.gradient != .bptt && plasticity.bpttThroughReset != nil, "bptt-through-reset", "applies to --gradient bptt only"),
        ]
        if let (_, name, why) = unused.first(where: \.0) {
            throw ValidationError("invalid --\(name): it would have no effect (\(why))")
        }
    }

    /// What a new run records.
    public func recording() throws -> RecordingOptions {
        var r = RecordingOptions()
        try output.apply(to: &r)
        return r
    }

    /// The plan of a new run: `--init` or the task's generator, `--input`/`--target` patterns;
    /// checked (including memory and the disk holding `out`) before anything is drawn.
    public func newPlan(out: URL) throws -> RunPlan {
        // An event dataset's order of samples depends on the seed, known once the options are resolved.
        let train = try task.trainData.map { try EventDataset(URL(fileURLWithPath: $0)) }
        let test = try task.testData.map { try EventDataset(URL(fileURLWithPath: $0)) }
        var patterns: Patterns? = train.map { Patterns(dataset: $0, shuffleSeed: nil) }
        let initial = try task.`init`.map { try NESTExport.load(URL(fileURLWithPath: $0), patterns: patterns) }
        switch (task.input, task.target) {
        case (nil, nil): break
        case (let x?, let y?): patterns = try Patterns.load(input: URL(fileURLWithPath: x), target: URL(fileURLWithPath: y))
        default: throw ValidationError("invalid --input/--target: give both files (input spikes [n_in, T] or [K, n_in, T], target [n_out, T] or [K, n_out, T])")
        }
        let config = try resolvedConfig(initial: initial, patterns: patterns)
        if let train, let test, (test.nIn, test.nClasses, test.steps) != (train.nIn, train.nClasses, train.steps) {
            throw ValidationError("invalid --test-data: \(test.url.path) has n_in \(test.nIn), \(test.nClasses) classes and sequence \(test.steps); the training split has \(train.nIn), \(train.nClasses) and \(train.steps)")
        }
        if let train { patterns = Patterns(dataset: train, shuffleSeed: config.seed) }
        let recording = try recording()
        try RunPlan.validate(config, recording: recording, checkpointEvery: output.checkpointEvery ?? 0, out: out)
        if output.plot { _ = try Plotter.locate() }
        var state = try initial ?? TaskGenerator.generate(config, dataset: train)
        if let patterns { state.patterns = patterns }
        if config.readout.loss == .crossEntropy { try state.patterns.checkClassTargets(learningWindow: config.resolvedLearningWindow) }
        let source = [task.`init`.map { "--init \($0)" } ?? "seed \(config.seed)", task.input.map { "patterns from --input \($0) --target \(task.target!)" }]
        return RunPlan(config: config, initial: state, recording: recording, checkpointEvery: output.checkpointEvery ?? 0,
                       initSource: source.compactMap { $0 }.joined(separator: ", "), test: test.map { Patterns(dataset: $0, shuffleSeed: nil) })
    }

    /// The plan that continues the run in `dir`. Options that would change the run are refused
    /// (naming them); `--threads` and `--checkpoint-every` apply (the latter is reported).
    public func resumePlan(_ dir: String) throws -> RunPlan {
        let refused = [("init", task.`init` != nil), ("input", task.input != nil), ("target", task.target != nil), ("out", output.out != nil), ("force", output.force),
                       ("train-data", task.trainData != nil), ("test-data", task.testData != nil)]
        if let (name, _) = refused.first(where: \.1) {
            throw ValidationError("invalid --\(name): --resume continues the run in its own folder from its own state; do not combine them")
        }
        var plan = try RunPlan.resuming(URL(fileURLWithPath: dir), iterations: task.iterations, threads: engine.threads)
        if let t = task.task, t != plan.config.task {
            throw ValidationError("invalid --task: the run in \(dir) trains \(plan.config.task.rawValue); a resumed run keeps its configuration")
        }
        var asked = plan.config
        applyOptions(to: &asked)
        asked.iterations = plan.config.iterations
        let changes = Self.differences(plan.config, asked)
        if !changes.isEmpty {
            throw ValidationError("invalid --resume: these options would change the run in \(dir), whose configuration comes from its checkpoint: \(changes.joined(separator: "; ")). Start a new run from it instead (--init \(dir))")
        }
        var recording = plan.recording
        try output.apply(to: &recording)
        if recording != plan.recording {
            throw ValidationError("invalid --record-iterations/--n-record/--n-record-w: a resumed run keeps the recordings of the run in \(dir)")
        }
        if let every = output.checkpointEvery, every != plan.checkpointEvery {
            FileHandle.standardError.write(Data("note: checkpoints every \(every) iterations from now on (the run had \(plan.checkpointEvery))\n".utf8))
            plan.checkpointEvery = every
        }
        return plan
    }

    /// The online generation's own options, refused on the legacy paths (new run, --resume, --evaluate).
    func refuseOnlineOnlyOptions() throws {
        if let (name, _) = [("group-size", task.groupSize != nil), ("test-iterations", task.testIterations != nil)].first(where: \.1) {
            throw ValidationError("invalid --\(name): only NEST's N-MNIST example of the online generation (--model eprop_iaf... with --train-data and --test-data N-MNIST folders) takes it")
        }
        if task.connectionProbability != nil {
            throw ValidationError("invalid --connection-probability: only the online generation's generated tasks (--model eprop_iaf...) take it")
        }
    }

    public func run() throws {
        let group = try joinProcessGroup()
        defer { group.finish() }
        do {
            if output.evaluate != nil || output.resume != nil { try refuseOnlineOnlyOptions() }
            if let trained = output.evaluate {
                guard group.size == 1 else { throw ValidationError("invalid --evaluate: an evaluation runs in one process (start it without mpirun)") }
                return try evaluateOnly(trained)
            }
            if let online = try onlineRun() {
                guard group.size == 1 else { throw ValidationError("invalid --init/--model: the online generation runs in one process (start it without mpirun)") }
                return try runOnline(online)
            }
            BLASRuntime.setThreads(engine.blasThreads)
            let out = URL(fileURLWithPath: output.resume ?? output.out ?? RunFolder.defaultName(under: "runs"))
            // Rank 0 first: resuming recovers a checkpoint cut short, before others read it.
            var plan = try together(group, on: group.rank == 0) { try output.resume.map(resumePlan) ?? newPlan(out: out) }
            if group.size > 1 {
                let reference = group.allGather(text: plan?.fingerprint ?? "")[0]
                plan = try together(group, on: group.rank != 0) {
                    let mine = try output.resume.map(resumePlan) ?? newPlan(out: out)
                    guard mine.fingerprint == reference else {
                        throw ProcessGroupError(description: "its configuration, initial state or patterns differ from rank 0's (the same options must read the same files on every process)") }
                    return mine
                } ?? plan
            }
            guard var plan else { return }
            plan.profilePhases = output.profilePhases
            if output.printConfig {
                if group.rank == 0 { print(String(decoding: try Self.json(plan.config), as: UTF8.self)) }
                return
            }
            let folder = try together(group, on: group.rank == 0) {
                try output.resume != nil ? RunFolder(existing: out) : RunFolder(out, replace: output.force)
            }
            try train(plan, in: folder, group: group)
        } catch let e as ConfigError {
            throw ValidationError(Self.message(e))
        } catch let e as ValidationError {
            throw e
        } catch let e as ExitCode {
            throw e
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// Evaluates the trained run in `dir` on `--test-data` into a new folder (`--out`).
    private func evaluateOnly(_ dir: String) throws {
        let conflicting = [("resume", output.resume != nil), ("init", task.`init` != nil), ("input", task.input != nil), ("train-data", task.trainData != nil),
                           ("evaluate-every", task.evaluateEvery != nil), ("checkpoint-every", output.checkpointEvery != nil)]
        if let (name, _) = conflicting.first(where: \.1) {
            throw ValidationError("invalid --\(name): --evaluate only evaluates the trained run in \(dir); nothing is trained")
        }
        guard let testPath = task.testData else { throw ValidationError("invalid --evaluate: give the held-out split with --test-data FILE.npz") }
        let test = try EventDataset(URL(fileURLWithPath: testPath))
        let out = URL(fileURLWithPath: output.out ?? RunFolder.defaultName(under: "runs"))
        let folder = try RunFolder(out, replace: output.force)
        let (evaluation, _) = try Evaluation.ofRun(URL(fileURLWithPath: dir), on: test, threads: engine.threads ?? 1)
        try RunOutput.writeEvaluation(evaluation, of: URL(fileURLWithPath: dir), on: test, commandLine: CommandLine.arguments, to: folder)
        try folder.commit()
        print(String(format: "evaluated %d samples of %@ after %d iterations: loss %.6f, accuracy %.4f (%.2f s); outputs in %@",
                     evaluation.samples, test.url.path, evaluation.iteration, evaluation.loss, evaluation.accuracy, evaluation.seconds, folder.final.path))
    }

    /// Runs `body` on the processes where `on` holds; in a group of several, every process then
    /// learns whether it failed on any, and all stop together, rank 0 printing each failure with
    /// its rank (exit 64 when every failure is an invalid option or input, 1 otherwise). The
    /// value of `body`, nil where it did not run.
    private func together<T>(_ group: any ProcessGroup, on: Bool, _ body: () throws -> T) throws -> T? {
        guard group.size > 1 else { return on ? try body() : nil }
        var value: T?, failure: (code: Int32, message: String)?
        if on {
            do { value = try body() } catch let e as ConfigError {
                failure = (64, Self.message(e))
            } catch let e as ValidationError {
                failure = (64, e.message)
            } catch {
                failure = (1, "\(error)")
            }
        }
        let failures = group.agree(failure)
        guard !failures.isEmpty else { return value }
        if group.rank == 0 {
            for f in failures { FileHandle.standardError.write(Data("error: rank \(f.rank): \(f.message)\n".utf8)) }
        }
        throw ExitCode(failures.allSatisfy { $0.code == 64 } ? 64 : 1)
    }

    /// Trains `plan`. Rank 0 writes `folder` and prints; in a group the other processes print
    /// nothing, end with the same exit code, and a failure after the start ends the whole group.
    private func train(_ plan: RunPlan, in folder: RunFolder?, group: any ProcessGroup) throws {
        Interruption.install()
        let quiet = output.quiet || group.rank != 0
        if let d = plan.initial.patterns.dataset, d.dtMs != 1, group.rank == 0 {
            FileHandle.standardError.write(Data(String(format: "note: %@ has %g ms bins; eprop-dense simulates one bin per step with its time constants in steps of 1 ms, so tau_m %g ms spans %g ms of the recording\n",
                                                        d.url.path, d.dtMs, plan.config.recurrent.tauMMean, plan.config.recurrent.tauMMean * d.dtMs).utf8))
        }
        let progress = Progress(total: plan.config.iterations, enabled: !quiet)
        let control = RunControl(
            stopRequested: { Interruption.received },
            onIteration: { r in
                progress.clear()
                if !quiet {
                    let accuracy = r.accuracy.map { String(format: "  accuracy %.3f", $0) } ?? ""
                    print(String(format: "iteration %5d  loss %.8f%@  rate %6.2f Hz  time %.4f s", r.iteration + 1, r.loss, accuracy, r.rateHz, r.seconds))
                }
                progress.update(done: r.iteration + 1, lastSeconds: r.seconds)
            },
            onEvaluation: { e in
                progress.clear()
                if !quiet { print(String(format: "evaluation after iteration %d: %d samples, loss %.6f, accuracy %.4f (%.2f s)", e.iteration, e.samples, e.loss, e.accuracy, e.seconds)) }
            },
            commandLine: CommandLine.arguments, gitCommit: Provenance.gitCommit())
        let summary: RunSummary
        do { summary = try plan.run(in: folder, group: group, control) } catch where group.size > 1 {
            // The others may be waiting for this process in an exchange.
            FileHandle.standardError.write(Data("error: rank \(group.rank): \(error)\n".utf8))
            group.abort(code: 1)
        }
        progress.finish()
        // Rank 0 tells what happened; every process ends with the same exit code.
        func say(_ text: String) { if group.rank == 0 { FileHandle.standardError.write(Data(text.utf8)) } }
        let path = summary.folder?.path ?? ""
        for note in summary.cleanedUp { say("note: \(note) (left by a run that died)\n") }
        switch summary.outcome {
        case .complete:
            let accuracy = (summary.finalAccuracy.map { String(format: ", final accuracy %.3f", $0) } ?? "")
                + (summary.lastEvaluation.map { String(format: ", test accuracy %.4f (%d samples)", $0.accuracy, $0.samples) } ?? "")
            say(String(format: "done: %d iterations, final loss %.6f%@, mean rate %.2f Hz, %.4f s per iteration, peak memory %.1f MB; outputs in %@\n",
                summary.completedIterations, summary.finalLoss, accuracy, summary.meanRateHz, summary.secondsPerIteration, summary.peakMemoryMB, path))
            if !quiet { say("kernel: \(summary.kernel.used.rawValue) (\(summary.kernel.reason))\n") }
            for warning in summary.warnings { say("warning: \(warning)\n") }
            if output.plot && group.rank == 0 { try Plotter.render(URL(fileURLWithPath: path)) }
        case .interrupted(let signal):
            let launcher = group.size > 1 ? "mpirun -np \(group.size) " : ""  // any rank count resumes it
            say("interrupted by signal \(signal) after iteration \(summary.completedIterations); outputs and checkpoint in \(path)\nresume with: \(launcher)eprop-dense --resume \(Self.shellQuoted(path)) --iterations \(plan.config.iterations)\n")
            throw ExitCode(128 + signal)
        case .diverged(let iteration, let quantity, let kept):
            say("error: training diverged at iteration \(iteration): \(quantity) is not finite. Likely cause: a learning rate too large for the weights (--eta \(plan.config.optimizer.eta)) or too wide weight bounds (--w-min/--w-max); lower --eta. \(kept ? "The last good checkpoint is kept in \(path)/checkpoint." : "No checkpoint was written (use --checkpoint-every).")\n")
            throw ExitCode(3)
        }
    }

    /// A library parameter name as the option that sets it: `tau_m_mean` -> `--tau-m-mean`,
    /// `readout.tau_m` -> `--tau-m-out`, `Wmin` -> `--w-min`.
    public static func optionName(_ parameter: String) -> String {
        let special = ["Wmin": "w-min", "Wmax": "w-max", "n_record": "n-record", "n_record_w": "n-record-w"]
        if let s = special[parameter] { return "--" + s }
        if parameter.hasPrefix("readout.") { return optionName(String(parameter.dropFirst("readout.".count))) + "-out" }
        return "--" + parameter.lowercased().replacingOccurrences(of: "_", with: "-")
    }

    /// A library error as the command line says it.
    static func message(_ e: ConfigError) -> String { "invalid \(optionName(e.parameter)): \(e.requirement)" }

    /// The configuration as JSON (what `--print-config` prints and `run.json` holds).
    static func json(_ c: TrainingConfig) throws -> Data { try recordJSON(c) }

    /// The fields in which two configurations differ, as `key (a -> b)`.
    static func differences(_ a: TrainingConfig, _ b: TrainingConfig) -> [String] {
        func flat(_ c: TrainingConfig) -> [String: String] {
            guard let data = try? json(c), let object = try? JSONSerialization.jsonObject(with: data) else { return [:] }
            var out: [String: String] = [:]
            func walk(_ v: Any, _ path: String) {
                if let d = v as? [String: Any] { for (k, x) in d { walk(x, path.isEmpty ? k : "\(path).\(k)") } } else { out[path] = "\(v)" }
            }
            walk(object, "")
            return out
        }
        let (fa, fb) = (flat(a), flat(b))
        return Set(fa.keys).union(fb.keys).sorted().compactMap { k in fa[k] == fb[k] ? nil : "\(k) (\(fa[k] ?? "unset") in the checkpoint, \(fb[k] ?? "unset") asked)" }
    }

    /// A path as a shell word (pasteable).
    public static func shellQuoted(_ s: String) -> String {
        s.allSatisfy { $0.isLetter || $0.isNumber || "/._-+=:,".contains($0) } ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
