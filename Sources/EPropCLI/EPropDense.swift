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
            """)

    public init() {}

    @OptionGroup(title: "Task and sizes") public var task: TaskOptions
    @OptionGroup(title: "Recurrent neurons") public var neuron: NeuronOptions
    @OptionGroup(title: "Readouts") public var readout: ReadoutOptions
    @OptionGroup(title: "Plasticity and optimizer") public var plasticity: PlasticityOptions
    @OptionGroup(title: "Engine") public var engine: EngineOptions
    @OptionGroup(title: "Outputs") public var output: OutputOptions

    /// The configuration: the task's defaults (NEST's script), then every option given. With
    /// `initial` (an `--init` export) the sizes come from its arrays.
    public func resolvedConfig(initial: NetworkInit? = nil) throws -> TrainingConfig {
        var c = TrainingConfig.defaults(for: task.task ?? .infiniteLoop)
        if let i = initial {
            for (name, given, actual) in [("n-in", task.nIn, i.nIn), ("n-rec", task.nRec, i.nRec), ("n-out", task.nOut, i.nOut), ("sequence", task.sequence, i.steps)] {
                if let g = given, g != actual {
                    throw ValidationError("invalid --\(name): \(g) conflicts with the --init arrays (\(actual)); omit it or pass \(actual)")
                }
            }
            (c.nIn, c.nRec, c.nOut, c.sequence) = (i.nIn, i.nRec, i.nOut, i.steps)
        }
        task.apply(to: &c)
        neuron.apply(to: &c.recurrent)
        readout.apply(to: &c.readout)
        plasticity.apply(to: &c)
        engine.apply(to: &c)
        return c
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
        let initial = try task.`init`.map { try NESTExport.load(URL(fileURLWithPath: $0)) }
        let config = try resolvedConfig(initial: initial)
        let recording = try recording()
        try RunPlan.validate(config, recording: recording, checkpointEvery: output.checkpointEvery ?? 0, out: out)
        var state = initial ?? TaskGenerator.generate(config)
        switch (task.input, task.target) {
        case (nil, nil): break
        case (let x?, let y?): state.patterns = try Patterns.load(input: URL(fileURLWithPath: x), target: URL(fileURLWithPath: y), config)
        default: throw ValidationError("invalid --input/--target: give both files (input spikes [n_in, T] or [K, n_in, T], target [n_out, T] or [K, n_out, T])")
        }
        let source = task.`init` ?? (task.input != nil ? "seed \(config.seed), patterns from \(task.input!) and \(task.target!)" : "seed \(config.seed)")
        return RunPlan(config: config, initial: state, recording: recording, checkpointEvery: output.checkpointEvery ?? 0, initSource: source)
    }

    /// The plan that continues the run in `dir`. Options that would change the run are refused
    /// (naming them); `--threads` and `--checkpoint-every` apply (the latter is reported).
    public func resumePlan(_ dir: String) throws -> RunPlan {
        let refused = [("init", task.`init` != nil), ("input", task.input != nil), ("target", task.target != nil), ("out", output.out != nil), ("force", output.force)]
        if let (name, _) = refused.first(where: \.1) {
            throw ValidationError("invalid --\(name): --resume continues the run in its own folder from its own state; do not combine them")
        }
        var plan = try RunPlan.resuming(URL(fileURLWithPath: dir), iterations: task.iterations, threads: engine.threads)
        if let t = task.task, t != plan.config.task {
            throw ValidationError("invalid --task: the run in \(dir) trains \(plan.config.task.rawValue); a resumed run keeps its configuration")
        }
        var asked = plan.config
        task.apply(to: &asked)
        neuron.apply(to: &asked.recurrent)
        readout.apply(to: &asked.readout)
        plasticity.apply(to: &asked)
        engine.apply(to: &asked)
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

    public func run() throws {
        do {
            BLASRuntime.setThreads(engine.blasThreads)
            let out = URL(fileURLWithPath: output.resume ?? output.out ?? RunFolder.defaultName(under: "runs"))
            let plan = try output.resume.map(resumePlan) ?? newPlan(out: out)
            if output.printConfig {
                print(String(decoding: try Self.json(plan.config), as: UTF8.self))
                return
            }
            let folder = try output.resume != nil ? RunFolder(existing: out) : RunFolder(out, replace: output.force)
            try train(plan, in: folder)
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

    private func train(_ plan: RunPlan, in folder: RunFolder) throws {
        Interruption.install()
        let progress = Progress(total: plan.config.iterations, enabled: !output.quiet)
        let quiet = output.quiet
        let control = RunControl(
            stopRequested: { Interruption.received },
            onIteration: { r in
                if !quiet {
                    let accuracy = r.accuracy.map { String(format: "  accuracy %.3f", $0) } ?? ""
                    print(String(format: "iteration %5d  loss %.8f%@  rate %6.2f Hz  time %.4f s", r.iteration + 1, r.loss, accuracy, r.rateHz, r.seconds))
                }
                progress.update(done: r.iteration + 1, lastSeconds: r.seconds)
            },
            commandLine: CommandLine.arguments, gitCommit: Provenance.gitCommit())
        let summary = try plan.run(in: folder, control)
        progress.finish()
        let path = summary.folder.path
        switch summary.outcome {
        case .complete:
            FileHandle.standardError.write(Data(String(format: "done: %d iterations, final loss %.6f, mean rate %.2f Hz, %.4f s per iteration, peak memory %.1f MB; outputs in %@\n",
                summary.completedIterations, summary.finalLoss, summary.meanRateHz, summary.secondsPerIteration, summary.peakMemoryMB, path).utf8))
            if output.plot { try Plotter.render(summary.folder) }
        case .interrupted(let signal):
            FileHandle.standardError.write(Data("interrupted by signal \(signal) after iteration \(summary.completedIterations); outputs and checkpoint in \(path)\nresume with: eprop-dense --resume \(Self.shellQuoted(path)) --iterations \(plan.config.iterations)\n".utf8))
            throw ExitCode(128 + signal)
        case .diverged(let iteration, let quantity, let kept):
            FileHandle.standardError.write(Data("error: training diverged at iteration \(iteration): \(quantity) is not finite. Likely cause: a learning rate too large for the weights (--eta \(plan.config.optimizer.eta)) or too wide weight bounds (--w-min/--w-max); lower --eta. \(kept ? "The last good checkpoint is kept in \(path)/checkpoint." : "No checkpoint was written (use --checkpoint-every).")\n".utf8))
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
    static func json(_ c: TrainingConfig) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try enc.encode(c)
    }

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
    static func shellQuoted(_ s: String) -> String {
        s.allSatisfy { $0.isLetter || $0.isNumber || "/._-+=:,".contains($0) } ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
