import ArgumentParser
import EProp
import Foundation

extension Precision: ExpressibleByArgument {}
extension GradientMethod: ExpressibleByArgument {}
extension NeuronModel: ExpressibleByArgument {}
extension SurrogateGradient: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension KernelChoice: ExpressibleByArgument {}
extension TaskKind: ExpressibleByArgument {}
extension LossFunction: ExpressibleByArgument {}
extension FeedbackKind: ExpressibleByArgument {}

/// The tutorial's values, quoted in the help texts.
private let tutorial = TrainingConfig.defaults(for: .infiniteLoop)

/// Options whose default depends on the task are optional: nil means "the task's value"
/// (`TrainingConfig.defaults(for:)`, the one place that holds them). Each group applies the
/// options that were given to a configuration.

/// The task, its sizes and where the initial state comes from.
public struct TaskOptions: ParsableArguments {
    public init() {}
    @Option(help: "Task: infinite-loop (NEST's tutorial), sine-waves (NEST's regression test, checked against TensorFlow), evidence-accumulation (NEST's classification example). Options not given take the task's values.")
    public var task: TaskKind?
    @Option(help: "User-defined task: input spike pattern .npy, [n_in, T] (0/1, the same every sequence) or [K, n_in, T] (one per sequence, used in order); needs --target. With --init it replaces the export's patterns.")
    public var input: String?
    @Option(help: "User-defined task: target .npy, [n_out, T] or [K, n_out, T] like --input.")
    public var target: String?
    @Option(help: "Event dataset to train on: the training split as an event-list .npz (docs/event-format.md; notebooks-data/convert_events.py writes one from SHD or N-MNIST files). Sets --task event-classification; n_in, n_out (the classes) and the sequence come from the file.")
    public var trainData: String?
    @Option(help: "Held-out split (event-list .npz like --train-data), evaluated with frozen weights every --evaluate-every iterations and after the last: loss, accuracy, confusion matrix (evaluation.csv, confusion_matrix.npy, accuracy_per_class.npy).")
    public var testData: String?
    @Option(help: "Evaluate --test-data every N iterations (default: after the last only).")
    public var evaluateEvery: Int?
    @Option(help: "Online generation, NEST's N-MNIST example (--model eprop_iaf... with --train-data/--test-data N-MNIST folders): samples per iteration (the script's group_size, default 100).")
    public var groupSize: Int?
    @Option(help: "Online generation, NEST's N-MNIST example: test iterations (groups of the test split, eta 0) after the training iterations (default 2).")
    public var testIterations: Int?
    @Option(help: "Online generation: sparse connectivity, the probability that a synapse exists, one for all projections or P_IN,P_REC,P_OUT (input -> recurrent, recurrent -> recurrent, recurrent -> readout), masks drawn as NEST's N-MNIST script draws them (default: the sine-wave example 1, N-MNIST 0.25,0.01,1). A mask file comes with an export (--init).")
    public var connectionProbability: String?

    /// `--connection-probability` as three probabilities in [0, 1], or nil.
    public func connectionProbabilities() throws -> (inRec: Double, recRec: Double, recOut: Double)? {
        guard let text = connectionProbability else { return nil }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 1 || parts.count == 3, parts.allSatisfy({ $0 != nil && (0...1).contains($0!) }) else {
            throw ValidationError("invalid --connection-probability: one probability in [0, 1], or three (P_IN,P_REC,P_OUT), required; got '\(text)'")
        }
        let p = parts.map { $0! }
        return p.count == 1 ? (p[0], p[0], p[0]) : (p[0], p[1], p[2])
    }
    @Option(help: "Number of input neurons (tutorial: \(tutorial.nIn); from the arrays with --init).")
    public var nIn: Int?
    @Option(help: "Number of recurrent neurons (tutorial: \(tutorial.nRec); from the arrays with --init).")
    public var nRec: Int?
    @Option(help: "Number of readout neurons (tutorial: \(tutorial.nOut); from the arrays with --init).")
    public var nOut: Int?
    @Option(help: "Time steps (of 1 ms) per sequence, the update interval (tutorial: \(tutorial.sequence); from the arrays with --init).")
    public var sequence: Int?
    @Option(help: "Time steps at the end of each sequence with a non-zero error (tutorial: the whole sequence).")
    public var learningWindow: Int?
    @Option(help: "Training iterations (one batch and one optimizer step each; tutorial: \(tutorial.iterations), 5000 to converge).")
    public var iterations: Int?
    @Option(help: "Spike probability per time step of the frozen Poisson input (tutorial: \(tutorial.inputSpikeProb)).")
    public var inputSpikeProb: Double?
    @Option(help: "numpy seed of weights and input, as np.random.seed in the tutorial (0 ... 4294967295; default: \(tutorial.seed)).")
    public var seed: Int?
    @Option(help: "Start from a NEST export folder or an earlier run folder (w_*_init.npy, w_out_rec_feedback.npy, tau_m_rec.npy, input_spike_bool_seq.npy, target_signal_seq.npy).")
    public var `init`: String?

    public mutating func validate() throws {
        if let seed, seed < 0 || seed > Int(UInt32.max) {
            throw ValidationError("invalid --seed: 0 <= seed <= 4294967295 required")
        }
    }

    func apply(to c: inout TrainingConfig) {
        if let nIn { c.nIn = nIn }
        if let nRec { c.nRec = nRec }
        if let nOut { c.nOut = nOut }
        if let sequence { c.sequence = sequence }
        if let learningWindow { c.learningWindow = learningWindow }
        if let iterations { c.iterations = iterations }
        if let inputSpikeProb { c.inputSpikeProb = inputSpikeProb }
        if let seed { c.seed = UInt32(seed) }
        if let trainData { c.trainData = URL(fileURLWithPath: trainData).standardizedFileURL.path }
        if let testData { c.testData = URL(fileURLWithPath: testData).standardizedFileURL.path }
        if let evaluateEvery { c.evaluateEvery = evaluateEvery }
    }
}

/// A `--model` value: a recurrent model of either generation, by its eprop-dense or NEST name.
public enum ModelName: ExpressibleByArgument, Equatable {
    case legacy(NeuronModel)
    case online(OnlineNeuronModel)

    public init?(argument: String) {
        let nestLegacy: [String: NeuronModel] = ["eprop_iaf_adapt_bsshslm_2020": .alif, "eprop_iaf_bsshslm_2020": .lif]
        if let m = NeuronModel(rawValue: argument) ?? nestLegacy[argument] { self = .legacy(m) }
        else if let m = OnlineNeuronModel(rawValue: argument) { self = .online(m) }
        else { return nil }
    }

    public static var allValueStrings: [String] { NeuronModel.allCases.map(\.rawValue) + OnlineNeuronModel.allCases.map(\.rawValue) }
}

/// The recurrent neurons (`eprop_iaf_adapt_bsshslm_2020`, `eprop_iaf_bsshslm_2020`).
public struct NeuronOptions: ParsableArguments {
    public init() {}
    @Option(help: "Recurrent neuron model. NEST's legacy generation: alif (eprop_iaf_adapt_bsshslm_2020) or lif (eprop_iaf_bsshslm_2020) (tutorial: \(tutorial.recurrent.model.rawValue)). NEST's online generation (3.9+): \(OnlineNeuronModel.allCases.map(\.rawValue).joined(separator: ", ")), on NEST's online sine-wave example (README \"NEST's online generation\").")
    public var model: ModelName?
    @Option(help: "With --model alif: how many recurrent neurons adapt, the last ones; the others are plain LIF (default: all; 50 of 100 for evidence-accumulation).")
    public var nAdaptive: Int?
    @Option(help: "Mean of the per-neuron membrane time constant tau_m (ms; tutorial: \(tutorial.recurrent.tauMMean)).")
    public var tauMMean: Double?
    @Option(help: "Standard deviation of the per-neuron tau_m (ms; tutorial: \(tutorial.recurrent.tauMStd)).")
    public var tauMStd: Double?
    @Option(help: "Time constant of the adaptive threshold adapt_tau (ms; tutorial: \(tutorial.recurrent.adaptTau)).")
    public var adaptTau: Double?
    @Option(help: "Adaptation prefactor adapt_beta (default: 1.7 (1 - exp(-1/adapt_tau)) / (1 - exp(-1/tau_m_mean))).")
    public var adaptBeta: Double?
    @Option(name: .customLong("c-m"), help: "Membrane capacitance C_m (pF; tutorial: \(tutorial.recurrent.cM)); only scales I_e.")
    public var cM: Double?
    @Option(help: "Firing-rate regularization strength c_reg (tutorial: \(tutorial.recurrent.cReg)).")
    public var cReg: Double?
    @Option(name: .customLong("e-l"), help: "Resting potential E_L (mV; tutorial: \(tutorial.recurrent.eL)).")
    public var eL: Double?
    @Option(help: "Target firing rate f_target of the regularizer (spikes/s; tutorial: \(tutorial.recurrent.fTarget)).")
    public var fTarget: Double?
    @Option(help: "Surrogate gradient scale gamma (NEST 3.8 form): height = gamma / V_th (tutorial: \(tutorial.recurrent.gamma)).")
    public var gamma: Double?
    @Option(help: "Surrogate gradient height (1/mV, NEST 3.10 form; default: gamma / V_th).")
    public var surrogateGradientHeight: Double?
    @Option(help: "Surrogate gradient width (mV, NEST 3.10 form; default: V_th).")
    public var surrogateGradientWidth: Double?
    @Option(help: "Surrogate gradient function: \(SurrogateGradient.allCases.map(\.rawValue).joined(separator: ", ")) (tutorial: \(tutorial.recurrent.surrogateGradient.rawValue)).")
    public var surrogateGradientFunction: SurrogateGradient?
    @Option(name: .customLong("i-e"), help: "Constant external current I_e (pA; tutorial: \(tutorial.recurrent.iE)).")
    public var iE: Double?
    @Flag(inversion: .prefixedNo, help: "Spikes arrive at the end of the step (input scale 1) instead of the beginning (1 - exp(-dt/tau_m)) (default: off; on for evidence-accumulation).")
    public var regularSpikeArrival: Bool?
    @Option(help: "Refractory period t_ref (ms; tutorial: \(tutorial.recurrent.tRef)).")
    public var tRef: Double?
    @Option(name: .customLong("v-th"), help: "Spike threshold V_th (mV; tutorial: \(tutorial.recurrent.vTh)).")
    public var vTh: Double?
    @Option(name: .customLong("v-min"), help: "Lower bound of the membrane voltage V_min (mV; default: none).")
    public var vMin: Double?

    func apply(to r: inout RecurrentParameters) {
        if case .legacy(let m) = model { r.model = m }
        if let nAdaptive { r.nAdaptive = nAdaptive }
        if let tauMMean { r.tauMMean = tauMMean }
        if let tauMStd { r.tauMStd = tauMStd }
        if let adaptTau { r.adaptTau = adaptTau }
        if let adaptBeta { r.adaptBeta = adaptBeta }
        if let cM { r.cM = cM }
        if let cReg { r.cReg = cReg }
        if let eL { r.eL = eL }
        if let fTarget { r.fTarget = fTarget }
        if let gamma { r.gamma = gamma }
        if let surrogateGradientHeight { r.surrogateHeight = surrogateGradientHeight }
        if let surrogateGradientWidth { r.surrogateWidth = surrogateGradientWidth }
        if let surrogateGradientFunction { r.surrogateGradient = surrogateGradientFunction }
        if let iE { r.iE = iE }
        if let regularSpikeArrival { r.regularSpikeArrival = regularSpikeArrival }
        if let tRef { r.tRef = tRef }
        if let vTh { r.vTh = vTh }
        if let vMin { r.vMin = vMin }
    }
}

/// The readout neurons (`eprop_readout_bsshslm_2020`).
public struct ReadoutOptions: ParsableArguments {
    public init() {}
    @Option(help: "Readout membrane time constant tau_m (ms), also the eligibility filter tau_m_readout (tutorial: \(tutorial.readout.tauM)).")
    public var tauMOut: Double?
    @Option(name: .customLong("c-m-out"), help: "Readout membrane capacitance C_m (pF; tutorial: \(tutorial.readout.cM)); only scales the readout's I_e.")
    public var cMOut: Double?
    @Option(name: .customLong("e-l-out"), help: "Readout resting potential E_L (mV; tutorial: \(tutorial.readout.eL)); the regression output is y = u + E_L.")
    public var eLOut: Double?
    @Option(name: .customLong("i-e-out"), help: "Constant external current I_e of the readouts (pA; tutorial: \(tutorial.readout.iE)).")
    public var iEOut: Double?
    @Option(help: "Readout loss: mean-squared-error (regression) or cross-entropy (classification, softmax across readouts) (default: the task's).")
    public var loss: LossFunction?

    func apply(to r: inout ReadoutParameters) {
        if let tauMOut { r.tauM = tauMOut }
        if let cMOut { r.cM = cMOut }
        if let eLOut { r.eL = eLOut }
        if let iEOut { r.iE = iEOut }
        if let loss { r.loss = loss }
    }
}

/// The e-prop synapses and their optimizer (`eprop_synapse_bsshslm_2020`).
public struct PlasticityOptions: ParsableArguments {
    public init() {}
    @Option(help: "Optimizer: adam or gradient-descent (tutorial: \(tutorial.optimizer.kind.rawValue)).")
    public var optimizer: OptimizerKind?
    @Option(help: "Sequences per batch (NEST optimizer batch_size; tutorial: \(tutorial.optimizer.batchSize)).")
    public var batchSize: Int?
    @Option(help: "Learning rate eta (tutorial: \(tutorial.optimizer.eta)).")
    public var eta: Double?
    @Option(name: .customLong("beta-1"), help: "Adam decay rate of the first moment beta_1 (default: \(tutorial.optimizer.beta1)).")
    public var beta1: Double?
    @Option(name: .customLong("beta-2"), help: "Adam decay rate of the second moment beta_2 (default: \(tutorial.optimizer.beta2)).")
    public var beta2: Double?
    @Option(help: "Adam stabilization constant epsilon (default: \(tutorial.optimizer.epsilon)).")
    public var epsilon: Double?
    @Option(name: .customLong("w-min"), help: "Lower weight bound Wmin (pA; default: \(tutorial.optimizer.wMin)).")
    public var wMin: Double?
    @Option(name: .customLong("w-max"), help: "Upper weight bound Wmax (pA; default: \(tutorial.optimizer.wMax)).")
    public var wMax: Double?
    @Flag(inversion: .prefixedNo, help: "Divide the gradient by the learning window (NEST average_gradient; default: off, on for evidence-accumulation).")
    public var averageGradient: Bool?
    @Option(help: "Feedback weights of the learning signal: random (fixed, NEST) or symmetric (B follows the readout weights) (default: random).")
    public var feedback: FeedbackKind?
    @Flag(inversion: .prefixedNo, help: "Reproduce NEST's missing L(T-1) term for inputs spiking at step 1 of the next sequence (default: on).")
    public var nestMissingLearningSignal: Bool?
    @Flag(inversion: .prefixedNo, help: "With --gradient bptt: the reset -V_th z(s-1) carries gradient (default: on, the exact derivative; off is the common stop-gradient through the reset).")
    public var bpttThroughReset: Bool?

    func apply(to c: inout TrainingConfig) {
        if let optimizer { c.optimizer.kind = optimizer }
        if let batchSize { c.optimizer.batchSize = batchSize }
        if let eta { c.optimizer.eta = eta }
        if let beta1 { c.optimizer.beta1 = beta1 }
        if let beta2 { c.optimizer.beta2 = beta2 }
        if let epsilon { c.optimizer.epsilon = epsilon }
        if let wMin { c.optimizer.wMin = wMin }
        if let wMax { c.optimizer.wMax = wMax }
        if let averageGradient { c.averageGradient = averageGradient }
        if let feedback { c.feedback = feedback }
        if let nestMissingLearningSignal { c.nestMissingLearningSignal = nestMissingLearningSignal }
        if let bpttThroughReset { c.bpttThroughReset = bpttThroughReset }
    }
}

/// How the engine computes (none of these change the mathematics).
public struct EngineOptions: ParsableArguments {
    public init() {}
    @Option(help: "Scalar type: float (Float32) or double (Float64, the path compared with NEST) (default: float).")
    public var precision: Precision?
    @Option(help: "Gradient computation: adjoint (e-prop, exact backward recursion + GEMM), traces (e-prop, per-step eligibility matrices), or bptt (not e-prop: backpropagation through time, the exact gradient) (default: adjoint).")
    public var gradient: GradientMethod?
    @Option(help: "Spike sums: sparse (gather/scatter over the spikes), blas (SGEMV/SGEMM on the 0/1 spike matrices, the reference), or auto (the faster of the two for the run's spike density, measured on its first sequence; run.json says which and why) (default: auto). Equal up to summation order.")
    public var kernel: KernelChoice?
    @Flag(inversion: .prefixedNo, help: "Also compute the BPTT gradient of every batch (not used for training) and write the cosine similarity and norm ratio of the e-prop gradient against it, per weight matrix (gradient_cosine.npy, gradient_norm_ratio.npy, loss.csv) (default: off).")
    public var compareGradients: Bool?
    @Option(help: "Worker threads; each simulates fixed groups of 8 sequences of a batch; the online generation shares each step's synapse columns among them (results do not depend on it; default: 1).")
    public var threads: Int?
    @Option(help: "OpenBLAS threads inside each worker (the BLAS kernel's calls are small: 1 is fastest).")
    public var blasThreads = 1

    public mutating func validate() throws {
        guard blasThreads >= 1 else { throw ValidationError("invalid --blas-threads: blas_threads >= 1 required") }
    }

    func apply(to c: inout TrainingConfig) {
        if let precision { c.precision = precision }
        if let gradient { c.gradient = gradient }
        if let kernel { c.kernel = kernel }
        if let threads { c.threads = threads }
        if let compareGradients { c.compareGradients = compareGradients }
    }
}

/// Where results go, what is recorded, checkpoints, and what is printed.
public struct OutputOptions: ParsableArguments {
    public init() {}
    @Option(help: "Output folder (default: runs/<date>-<time>-<pid>).")
    public var out: String?
    @Flag(help: "Replace an existing --out folder that holds an earlier eprop-dense run (other folders are never replaced).")
    public var force = false
    @Option(help: "Write a checkpoint (weights, optimizer state, iteration, results) every N iterations and at the end (0: never; a resumed run keeps its cadence unless given).")
    public var checkpointEvery: Int?
    @Option(help: "Continue the run in this folder (written with --checkpoint-every) up to --iterations in total. The configuration comes from its checkpoint; only --iterations, --threads, --blas-threads, --checkpoint-every, --quiet and --plot apply, and options that would change the run are refused.")
    public var resume: String?
    @Option(help: "Evaluate the trained run in this folder (its final weights and configuration) on --test-data, writing evaluation.csv, confusion_matrix.npy, accuracy_per_class.npy and evaluation.json into --out; nothing is trained.")
    public var evaluate: String?
    @Option(help: "Read options from a JSON file: an object whose keys are option names without the leading dashes (e.g. {\"n-rec\": 400, \"eta\": 0.001, \"average-gradient\": true}); options on the command line override it.")
    public var config: String?
    @Option(help: "Iterations recorded (dynamics, spikes, weights): first-last, all, none, or a list of 1-based iterations such as 1,100,5000 (default: first-last).")
    public var recordIterations: String?
    @Option(help: "Recurrent neurons whose dynamic variables are recorded (the first n; tutorial n_record; default: 1).")
    public var nRecord: Int?
    @Option(help: "Senders and targets per projection watched by the weight recorder (tutorial n_record_w; default: 3).")
    public var nRecordW: Int?
    @Flag(help: "Print only the final summary.")
    public var quiet = false
    @Flag(help: "Time each phase of every iteration (the forward step's four parts, backward scan, gradient scatter, readout gradient, loading, exchange, bookkeeping, optimizer, checks) into run.json timings.phases_per_iteration_mean_s; the clock reads add a few per cent to the run (README \"Performance\").")
    public var profilePhases = false
    @Flag(help: "Render the tutorial's five figures (PNG) into the output folder with notebooks-data/plot_run.py (needs Python with matplotlib: bash scripts/setup.sh).")
    public var plot = false
    @Flag(help: "Print the resolved configuration (the task's defaults with the options applied) as JSON and exit without training.")
    public var printConfig = false

    func apply(to r: inout RecordingOptions) throws {
        if let recordIterations { r.iterations = try RecordedIterations(parsing: recordIterations) }
        if let nRecord { r.nRecord = nRecord }
        if let nRecordW { r.nRecordW = nRecordW }
    }
}
