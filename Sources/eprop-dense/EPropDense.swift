import ArgumentParser
import EProp
import Foundation

extension Precision: ExpressibleByArgument {}
extension GradientMethod: ExpressibleByArgument {}
extension NeuronModel: ExpressibleByArgument {}
extension SurrogateGradient: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension Kernel: ExpressibleByArgument {}
extension TaskKind: ExpressibleByArgument {}
extension LossFunction: ExpressibleByArgument {}
extension FeedbackKind: ExpressibleByArgument {}

private let defaults = TrainingConfig()


struct EPropDense: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eprop-dense",
        abstract: "Train a recurrent spiking network with e-prop, as NEST's tutorial \"learning to generate an infinite loop\".",
        discussion: """
            With no options, runs the tutorial: 100 frozen-Poisson inputs, 200 adaptive LIF neurons, \
            2 readouts drawing a figure eight, Adam, 5 iterations (5000 for convergence). Weights and \
            input are drawn like the tutorial's numpy code (--seed); tau_m is drawn by eprop-dense's own \
            generator, since NEST's cannot be reproduced. --init starts from a NEST export instead.
            Outputs (--out): loss.npy, loss_per_sequence.npy, loss.csv, w_*_init.npy, w_*_final.npy, \
            tau_m_rec.npy, spikes_rec_*.npy, run.json.
            """)

    // MARK: task and sizes
    @Option(help: "Task: infinite-loop (NEST's tutorial), sine-waves (NEST's regression test, checked against TensorFlow), evidence-accumulation (NEST's classification example). Options not given take the task's values.")
    var task: TaskKind = .infiniteLoop
    @Option(help: "User-defined task: input spike pattern .npy, [n_in, T] (0/1, the same every sequence) or [K, n_in, T] (one per sequence, used in order); needs --target.")
    var input: String?
    @Option(help: "User-defined task: target .npy, [n_out, T] or [K, n_out, T] like --input.")
    var target: String?
    @Option(help: "Number of input neurons (default: 100; from the arrays with --init).")
    var nIn: Int?
    @Option(help: "Number of recurrent neurons (default: 200; from the arrays with --init).")
    var nRec: Int?
    @Option(help: "Number of readout neurons (default: 2; from the arrays with --init).")
    var nOut: Int?
    @Option(help: "Time steps (of 1 ms) per sequence, the update interval (default: 1258; from the arrays with --init).")
    var sequence: Int?
    @Option(help: "Time steps at the end of each sequence with a non-zero error (default: the whole sequence).")
    var learningWindow: Int?
    @Option(help: "Training iterations (one batch and one optimizer step each).")
    var iterations = defaults.iterations
    @Option(help: "Sequences per batch (NEST optimizer batch_size).")
    var batchSize = defaults.optimizer.batchSize
    @Option(help: "Spike probability per time step of the frozen Poisson input.")
    var inputSpikeProb = defaults.inputSpikeProb
    @Option(help: "numpy seed of weights and input, as np.random.seed in the tutorial (0 ... 4294967295).")
    var seed: Int = Int(defaults.seed)
    @Option(help: "Start from a NEST export folder (w_*_init.npy, w_out_rec_feedback.npy, tau_m_rec.npy, input_spike_bool_seq.npy, target_signal_seq.npy).")
    var `init`: String?

    // MARK: recurrent neurons
    @Option(help: "Recurrent neuron model: alif (eprop_iaf_adapt_bsshslm_2020) or lif (eprop_iaf_bsshslm_2020).")
    var model = defaults.recurrent.model
    @Option(help: "Mean of the per-neuron membrane time constant tau_m (ms).")
    var tauMMean = defaults.recurrent.tauMMean
    @Option(help: "Standard deviation of the per-neuron tau_m (ms).")
    var tauMStd = defaults.recurrent.tauMStd
    @Option(help: "Time constant of the adaptive threshold adapt_tau (ms).")
    var adaptTau = defaults.recurrent.adaptTau
    @Option(help: "Adaptation prefactor adapt_beta (default: 1.7 (1 - exp(-1/adapt_tau)) / (1 - exp(-1/tau_m_mean))).")
    var adaptBeta: Double?
    @Option(name: .customLong("c-m"), help: "Membrane capacitance C_m (pF); only scales I_e.")
    var cM = defaults.recurrent.cM
    @Option(help: "Firing-rate regularization strength c_reg.")
    var cReg = defaults.recurrent.cReg
    @Option(name: .customLong("e-l"), help: "Resting potential E_L (mV).")
    var eL = defaults.recurrent.eL
    @Option(help: "Target firing rate f_target of the regularizer (spikes/s).")
    var fTarget = defaults.recurrent.fTarget
    @Option(help: "Surrogate gradient scale gamma (NEST 3.8 form): height = gamma / V_th.")
    var gamma = defaults.recurrent.gamma
    @Option(help: "Surrogate gradient height (1/mV, NEST 3.10 form; default: gamma / V_th).")
    var surrogateGradientHeight: Double?
    @Option(help: "Surrogate gradient width (mV, NEST 3.10 form; default: V_th).")
    var surrogateGradientWidth: Double?
    @Option(help: "Surrogate gradient function: \(SurrogateGradient.allCases.map(\.rawValue).joined(separator: ", ")).")
    var surrogateGradientFunction = defaults.recurrent.surrogateGradient
    @Option(name: .customLong("i-e"), help: "Constant external current I_e (pA).")
    var iE = defaults.recurrent.iE
    @Flag(inversion: .prefixedNo, help: "Spikes arrive at the end of the step (input scale 1) instead of the beginning (1 - exp(-dt/tau_m)) (default: off; on for evidence-accumulation).")
    var regularSpikeArrival: Bool?
    @Option(help: "With --model alif: how many recurrent neurons adapt, the last ones; the others are plain LIF (default: all; 50 of 100 for evidence-accumulation).")
    var nAdaptive: Int?
    @Option(help: "Refractory period t_ref (ms).")
    var tRef = defaults.recurrent.tRef
    @Option(name: .customLong("v-th"), help: "Spike threshold V_th (mV).")
    var vTh = defaults.recurrent.vTh
    @Option(name: .customLong("v-min"), help: "Lower bound of the membrane voltage V_min (mV; default: none).")
    var vMin: Double?

    // MARK: readouts
    @Option(help: "Readout membrane time constant tau_m (ms), also the eligibility filter tau_m_readout.")
    var tauMOut = defaults.readout.tauM
    @Option(name: .customLong("c-m-out"), help: "Readout membrane capacitance C_m (pF); only scales the readout's I_e.")
    var cMOut = defaults.readout.cM
    @Option(name: .customLong("e-l-out"), help: "Readout resting potential E_L (mV); the regression output is y = u + E_L.")
    var eLOut = defaults.readout.eL
    @Option(name: .customLong("i-e-out"), help: "Constant external current I_e of the readouts (pA).")
    var iEOut = defaults.readout.iE

    // MARK: plasticity and optimizer
    @Option(help: "Optimizer: adam or gradient-descent.")
    var optimizer = defaults.optimizer.kind
    @Option(help: "Learning rate eta.")
    var eta = defaults.optimizer.eta
    @Option(name: .customLong("beta-1"), help: "Adam decay rate of the first moment beta_1.")
    var beta1 = defaults.optimizer.beta1
    @Option(name: .customLong("beta-2"), help: "Adam decay rate of the second moment beta_2.")
    var beta2 = defaults.optimizer.beta2
    @Option(help: "Adam stabilization constant epsilon.")
    var epsilon = defaults.optimizer.epsilon
    @Option(name: .customLong("w-min"), help: "Lower weight bound Wmin (pA).")
    var wMin = defaults.optimizer.wMin
    @Option(name: .customLong("w-max"), help: "Upper weight bound Wmax (pA).")
    var wMax = defaults.optimizer.wMax
    @Flag(inversion: .prefixedNo, help: "Divide the gradient by the learning window (NEST average_gradient; default: off, on for evidence-accumulation).")
    var averageGradient: Bool?
    @Option(help: "Readout loss: mean-squared-error (regression) or cross-entropy (classification, softmax across readouts) (default: the task's).")
    var loss: LossFunction?
    @Option(help: "Feedback weights of the learning signal: random (fixed, NEST) or symmetric (B follows the readout weights).")
    var feedback: FeedbackKind = .random
    @Flag(inversion: .prefixedNo, help: "Reproduce NEST's missing L(T-1) term for inputs spiking at step 1 of the next sequence.")
    var nestMissingLearningSignal = true

    // MARK: engine and outputs
    @Option(help: "Scalar type: float (Float32) or double (Float64, the path compared with NEST).")
    var precision = defaults.precision
    @Option(help: "Gradient computation: adjoint (exact backward recursion + GEMM) or traces (per-step eligibility matrices).")
    var gradient = defaults.gradient
    @Option(help: "Spike sums: sparse (gather/scatter over the spikes, default) or blas (SGEMV/SGEMM on the 0/1 spike matrices, the reference); equal up to summation order.")
    var kernel = defaults.kernel
    @Option(help: "Worker threads; each simulates fixed groups of 8 sequences of a batch (results do not depend on it).")
    var threads = defaults.threads
    @Option(help: "OpenBLAS threads inside each worker (the BLAS kernel's calls are small: 1 is fastest).")
    var blasThreads = 1
    @Option(help: "Output folder (default: runs/<date>-<time>).")
    var out: String?
    @Flag(help: "Replace a non-empty --out folder.")
    var force = false
    @Option(help: "Write a checkpoint (weights, Adam state, iteration, results) every N iterations and at the end (0: never).")
    var checkpointEvery = 0
    @Option(help: "Continue the run in this folder (written with --checkpoint-every) up to --iterations in total. The configuration comes from its checkpoint; only --iterations, --threads and output options apply.")
    var resume: String?
    @Option(help: "Read options from a JSON file: an object whose keys are option names without the leading dashes (e.g. {\"n-rec\": 400, \"eta\": 0.001, \"average-gradient\": true}); options on the command line override it.")
    var config: String?
    @Option(help: "Iterations recorded (dynamics, spikes, weights): first-last, all, none, or a list of 1-based iterations such as 1,100,5000.")
    var recordIterations = "first-last"
    @Option(help: "Recurrent neurons whose dynamic variables are recorded (the first n; tutorial n_record).")
    var nRecord = 1
    @Option(help: "Senders and targets per projection watched by the weight recorder (tutorial n_record_w).")
    var nRecordW = 3
    @Flag(help: "Print only the final summary.")
    var quiet = false
    @Flag(help: "Render the tutorial's five figures (PNG) into the output folder with notebooks-data/plot_run.py (needs Python with matplotlib: bash scripts/setup.sh).")
    var plot = false

    mutating func validate() throws {
        guard seed >= 0 && seed <= Int(UInt32.max) else {
            throw ValidationError("invalid --seed: 0 <= seed <= 4294967295 required")
        }
        _ = try recordedIterations()
        guard checkpointEvery >= 0 else { throw ValidationError("invalid --checkpoint-every: N >= 0 required") }
        if resume != nil && (`init` != nil || out != nil) {
            throw ValidationError("invalid --resume: it continues the run in its own folder; do not combine it with --init or --out")
        }
        guard nRecord >= 0 else { throw ValidationError("invalid --n-record: n_record >= 0 required") }
        guard nRecordW >= 0 else { throw ValidationError("invalid --n-record-w: n_record_w >= 0 required") }
        if `init` == nil && resume == nil {
            do { try makeConfig(initial: nil).validate() } catch let e as ConfigError { throw ValidationError(e.description) }
        }
    }

    /// The configuration from the options; with an export, sizes come from its arrays.
    func makeConfig(initial: NetworkInit?) throws -> TrainingConfig {
        // The task's own defaults (NEST's script), then every option given on the command line.
        var c = TrainingConfig.defaults(for: task)
        func set<T>(_ field: inout T, _ value: T, _ name: String) { if Self.given(name) { field = value } }
        if let i = initial {
            for (name, given, actual) in [("n-in", nIn, i.nIn), ("n-rec", nRec, i.nRec), ("n-out", nOut, i.nOut), ("sequence", sequence, i.steps)] {
                if let g = given, g != actual {
                    throw ValidationError("invalid --\(name): \(g) conflicts with the --init arrays (\(actual)); omit it or pass \(actual)")
                }
            }
            (c.nIn, c.nRec, c.nOut, c.sequence) = (i.nIn, i.nRec, i.nOut, i.steps)
        } else {
            c.nIn = nIn ?? c.nIn
            c.nRec = nRec ?? c.nRec
            c.nOut = nOut ?? c.nOut
            c.sequence = sequence ?? c.sequence
        }
        c.learningWindow = learningWindow ?? c.learningWindow
        c.feedback = feedback
        set(&c.iterations, iterations, "iterations")
        set(&c.inputSpikeProb, inputSpikeProb, "input-spike-prob")
        c.seed = UInt32(clamping: seed)
        c.averageGradient = averageGradient ?? c.averageGradient
        c.nestMissingLearningSignal = nestMissingLearningSignal
        set(&c.recurrent.model, model, "model")
        c.recurrent.nAdaptive = nAdaptive ?? c.recurrent.nAdaptive
        set(&c.recurrent.tauMMean, tauMMean, "tau-m-mean")
        set(&c.recurrent.tauMStd, tauMStd, "tau-m-std")
        set(&c.recurrent.adaptTau, adaptTau, "adapt-tau")
        c.recurrent.adaptBeta = adaptBeta
        set(&c.recurrent.cM, cM, "c-m")
        set(&c.recurrent.cReg, cReg, "c-reg")
        set(&c.recurrent.eL, eL, "e-l")
        set(&c.recurrent.fTarget, fTarget, "f-target")
        set(&c.recurrent.gamma, gamma, "gamma")
        c.recurrent.surrogateHeight = surrogateGradientHeight
        c.recurrent.surrogateWidth = surrogateGradientWidth
        set(&c.recurrent.surrogateGradient, surrogateGradientFunction, "surrogate-gradient-function")
        set(&c.recurrent.iE, iE, "i-e")
        c.recurrent.regularSpikeArrival = regularSpikeArrival ?? c.recurrent.regularSpikeArrival
        set(&c.recurrent.tRef, tRef, "t-ref")
        set(&c.recurrent.vTh, vTh, "v-th")
        c.recurrent.vMin = vMin ?? -.infinity
        set(&c.readout.tauM, tauMOut, "tau-m-out")
        set(&c.readout.cM, cMOut, "c-m-out")
        set(&c.readout.eL, eLOut, "e-l-out")
        set(&c.readout.iE, iEOut, "i-e-out")
        c.readout.loss = loss ?? c.readout.loss
        set(&c.optimizer.kind, optimizer, "optimizer")
        set(&c.optimizer.batchSize, batchSize, "batch-size")
        set(&c.optimizer.eta, eta, "eta")
        set(&c.optimizer.beta1, beta1, "beta-1")
        set(&c.optimizer.beta2, beta2, "beta-2")
        set(&c.optimizer.epsilon, epsilon, "epsilon")
        set(&c.optimizer.wMin, wMin, "w-min")
        set(&c.optimizer.wMax, wMax, "w-max")
        c.precision = precision
        c.gradient = gradient
        c.kernel = kernel
        c.threads = threads
        return c
    }

    /// The arguments being parsed (set by main.swift, after --config expansion).
    nonisolated(unsafe) static var arguments: [String] = []

    /// Whether option `--name` was given (options whose default depends on --task).
    static func given(_ name: String) -> Bool {
        arguments.contains { $0 == "--\(name)" || $0.hasPrefix("--\(name)=") }
    }

    /// With --input/--target: the task's patterns replaced by the files' (sizes must match).
    func patternFiles(_ generated: NetworkInit, _ c: TrainingConfig) throws -> NetworkInit {
        guard input != nil || target != nil else { return generated }
        guard let inputPath = input, let targetPath = target else {
            throw ValidationError("invalid --input/--target: give both files (input spikes [n_in, T] or [K, n_in, T], target [n_out, T] or [K, n_out, T])")
        }
        let x = try NPY.read(URL(fileURLWithPath: inputPath)), y = try NPY.read(URL(fileURLWithPath: targetPath))
        let (nIn, nOut, T) = (c.nIn, c.nOut, c.sequence)
        let k = x.shape.count == 3 ? x.shape[0] : 1
        guard x.shape == (x.shape.count == 3 ? [k] : []) + [nIn, T] else {
            throw ValidationError("invalid --input \(inputPath): expected shape [n_in=\(nIn), T=\(T)] or [K, \(nIn), \(T)] (set --n-in and --sequence to match), got \(x.shape)")
        }
        guard y.shape == (x.shape.count == 3 ? [k] : []) + [nOut, T] else {
            throw ValidationError("invalid --target \(targetPath): expected shape \((x.shape.count == 3 ? [k] : []) + [nOut, T]) (set --n-out to match), got \(y.shape)")
        }
        guard x.values.allSatisfy({ $0 == 0 || $0 == 1 }), y.values.allSatisfy(\.isFinite) else {
            throw ValidationError("invalid --input/--target: input values must be 0 or 1 and targets finite")
        }
        var result = generated
        result.patterns = Patterns(input: x, target: y)
        return result
    }

    /// The 0-based iterations to record; `nil` means the first and the last.
    func recordedIterations() throws -> Set<Int>? {
        switch recordIterations {
        case "first-last": return nil
        case "all": return Set(0..<max(iterations, 0))
        case "none": return []
        default:
            let parts = recordIterations.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= 1 && $0! <= iterations }) else {
                throw ValidationError("invalid --record-iterations: first-last, all, none, or comma-separated iterations between 1 and --iterations (\(iterations)) required")
            }
            return Set(parts.map { $0! - 1 })
        }
    }

    func run() throws {
        do {
            guard blasThreads >= 1 else { throw ValidationError("invalid --blas-threads: blas_threads >= 1 required") }
            BLASRuntime.setThreads(blasThreads)
            if let dir = resume {
                let folder = try RunFolder(existing: URL(fileURLWithPath: dir))
                var config = try Checkpoint.readConfig(in: folder.final)
                config.iterations = iterations
                config.threads = threads
                try config.validate()
                // Generated trials are not stored: redraw the initial state from the seed.
                let stored = FileManager.default.fileExists(atPath: folder.final.appendingPathComponent("input_spike_bool_seq.npy").path)
                let initial = stored ? try NESTExport.load(folder.final) : TaskGenerator.generate(config)
                switch config.precision {
                case .float: try train(Float.self, config, initial, folder, resuming: true)
                case .double: try train(Double.self, config, initial, folder, resuming: true)
                }
                return
            }
            let initial: NetworkInit
            let config: TrainingConfig
            let outParent = URL(fileURLWithPath: out ?? "runs")
            if let dir = `init` {
                initial = try NESTExport.load(URL(fileURLWithPath: dir))
                config = try makeConfig(initial: initial)
                try config.validate()
                try Resources.check(config, recording: try recordingOptions(), out: outParent)
            } else {
                config = try makeConfig(initial: nil)
                try Resources.check(config, recording: try recordingOptions(), out: outParent)
                initial = try patternFiles(TaskGenerator.generate(config), config)
            }
            let folder = try RunFolder(URL(fileURLWithPath: out ?? "runs/\(Self.timestamp())"), replace: force)
            switch config.precision {
            case .float: try train(Float.self, config, initial, folder, resuming: false)
            case .double: try train(Double.self, config, initial, folder, resuming: false)
            }
        } catch let e as ValidationError {
            throw e
        } catch let e as ExitCode {
            throw e
        } catch let e as ConfigError {
            throw ValidationError(e.description)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    func recordingOptions() throws -> RecordingOptions {
        var recording = RecordingOptions()
        (recording.nRecord, recording.nRecordW, recording.iterations) = (nRecord, nRecordW, try recordedIterations())
        return recording
    }

    private func train<S: Scalar>(_: S.Type, _ config: TrainingConfig, _ initial: NetworkInit, _ folder: RunFolder, resuming: Bool) throws {
        let runStart = ContinuousClock.now
        let trainer = Trainer<S>(config: config, initial: initial, recording: try recordingOptions())
        if resuming {
            try Checkpoint.restore(trainer, from: folder.final)
            guard trainer.iteration < config.iterations else {
                throw ValidationError("invalid --iterations: the run in \(folder.final.path) already has \(trainer.iteration) iterations; pass a larger total to continue it")
            }
        }
        let initSource = resuming ? "resumed from \(folder.final.path)" : (`init` ?? "seed \(config.seed)")
        let gitCommit = Provenance.gitCommit()
        func writeOutputs(status: String) throws {
            try RunOutput.write(trainer, to: folder, commandLine: CommandLine.arguments, initSource: initSource,
                                trainSeconds: (ContinuousClock.now - runStart).seconds, status: status, gitCommit: gitCommit)
        }
        func checkpoint() throws {
            try writeOutputs(status: "running")
            try folder.commit()
            try Checkpoint.write(trainer, in: folder.final)
        }

        Interruption.install()
        let progress = Progress(total: config.iterations, done: trainer.iteration, enabled: !quiet)
        while trainer.iteration < config.iterations {
            if let signal = Interruption.received {
                progress.finish()
                if trainer.iteration > 0 { try checkpoint() }
                try writeOutputs(status: "interrupted")
                try folder.commit()
                FileHandle.standardError.write(Data("interrupted by signal \(signal) after iteration \(trainer.iteration); outputs and checkpoint in \(folder.final.path)\nresume with: eprop-dense --resume \(folder.final.path) --iterations \(config.iterations)\n".utf8))
                throw ExitCode(128 + signal)
            }
            let r = trainer.step()
            if let bad = trainer.firstNonFinite() {
                progress.finish()
                try writeOutputs(status: "diverged")
                try folder.commit()
                let hasCheckpoint = FileManager.default.fileExists(atPath: folder.final.appendingPathComponent("checkpoint").path)
                FileHandle.standardError.write(Data("error: training diverged at iteration \(r.iteration + 1): \(bad) is not finite. Likely cause: a learning rate too large for the weights (--eta \(config.optimizer.eta)) or too wide weight bounds (--w-min/--w-max); lower --eta. \(hasCheckpoint ? "The last good checkpoint is kept in \(folder.final.path)/checkpoint." : "No checkpoint was written (use --checkpoint-every).")\n".utf8))
                throw ExitCode(3)
            }
            if !quiet {
                let accuracy = r.accuracy.map { String(format: "  accuracy %.3f", $0) } ?? ""
                print(String(format: "iteration %5d  loss %.8f%@  rate %6.2f Hz  time %.4f s", r.iteration + 1, r.loss, accuracy, r.rateHz, r.seconds))
            }
            progress.update(done: r.iteration + 1, lastSeconds: r.seconds)
            if checkpointEvery > 0 && (trainer.iteration % checkpointEvery == 0 || trainer.iteration == config.iterations) {
                try checkpoint()
            }
        }
        progress.finish()
        try writeOutputs(status: "complete")
        try folder.commit()
        let n = Double(trainer.results.count)
        let perIteration = trainer.results.map(\.seconds).reduce(0, +) / n
        let meanRate = trainer.results.map(\.rateHz).reduce(0, +) / n
        FileHandle.standardError.write(Data(String(format: "done: %d iterations, final loss %.6f, mean rate %.2f Hz, %.4f s per iteration, peak memory %.1f MB; outputs in %@\n",
            config.iterations, trainer.results.last!.loss, meanRate, perIteration, RunOutput.peakMemoryMB(), folder.final.path).utf8))
        if plot { try Plotter.render(folder.final) }
    }

    static func timestamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }
}


/// Progress and remaining time on stderr (one updating line on a terminal, sparse lines otherwise).
final class Progress {
    let total: Int, enabled: Bool, tty: Bool
    var elapsed = 0.0
    var lastPrint = ContinuousClock.now
    let start: Int
    init(total: Int, done: Int = 0, enabled: Bool) {
        self.total = total
        start = done
        self.enabled = enabled
        tty = isatty(2) != 0
    }
    func update(done: Int, lastSeconds: Double) {
        elapsed += lastSeconds
        guard enabled, tty || ContinuousClock.now - lastPrint > .seconds(10) || done == total else { return }
        lastPrint = ContinuousClock.now
        let remaining = elapsed / Double(max(done - start, 1)) * Double(total - done)
        let line = String(format: "[%d/%d] %.0f%%, %.1f s elapsed, ~%.1f s left", done, total, 100 * Double(done) / Double(total), elapsed, remaining)
        FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + line : line + "\n").utf8))
    }
    func finish() { if enabled && tty { FileHandle.standardError.write(Data("\n".utf8)) } }
}

/// Runs the repository's matplotlib script on a run folder.
enum Plotter {
    static func render(_ runFolder: URL) throws {
        let fm = FileManager.default
        // The script sits in the repository: found from the working directory or from the binary
        // (.build/<config>/eprop-dense).
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let roots = [URL(fileURLWithPath: fm.currentDirectoryPath),
                     binary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent(),
                     binary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()]
        guard let root = roots.first(where: { fm.fileExists(atPath: $0.appendingPathComponent("notebooks-data/plot_run.py").path) }) else {
            throw PlotError("--plot: notebooks-data/plot_run.py not found; run eprop-dense from the repository folder")
        }
        let venvPython = root.appendingPathComponent(".venv/bin/python").path
        let python = fm.isExecutableFile(atPath: venvPython) ? venvPython : "/usr/bin/env"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = (python == venvPython ? [] : ["python3"]) + [root.appendingPathComponent("notebooks-data/plot_run.py").path, runFolder.path]
        do { try p.run() } catch {
            throw PlotError("--plot: cannot start Python (\(error.localizedDescription)); install Python 3 with matplotlib: bash scripts/setup.sh")
        }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw PlotError("--plot: plotting failed (status \(p.terminationStatus)); the run's outputs are saved in \(runFolder.path); install matplotlib with: bash scripts/setup.sh")
        }
    }
}

struct PlotError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
