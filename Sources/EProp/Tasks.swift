import Foundation

/// The input spikes and target of every sequence of a run: one frozen pattern (the regression
/// tasks), a list used in order (a NEST export with per-sequence arrays), a generator that
/// draws new trials for every batch (evidence accumulation), or the samples of an event dataset
/// read from disk as they are needed (`EventDataset`), in a new random order every epoch.
public final class Patterns: @unchecked Sendable {
    public let nIn: Int, nOut: Int, steps: Int
    /// Fixed patterns; sequence k uses `fixed[k % count]`.
    let fixed: [(input: Matrix<Double>, target: Matrix<Double>)]
    let generator: EvidenceAccumulationTrials?
    public let dataset: EventDataset?
    /// With a dataset: the seed of the order of each epoch (nil: the file's order).
    let shuffleSeed: UInt32?
    /// The sample order of the last epoch asked for (the epoch and its permutation).
    private var order: (epoch: Int, samples: [Int])?
    private let lock = NSLock()
    /// The first failure to read a dataset sample during the run (the file changed), if any.
    public private(set) var readFailure: String?

    public init(fixed: [(input: Matrix<Double>, target: Matrix<Double>)]) {
        precondition(!fixed.isEmpty)
        self.fixed = fixed
        (generator, dataset, shuffleSeed) = (nil, nil, nil)
        (nIn, nOut, steps) = (fixed[0].input.rows, fixed[0].target.rows, fixed[0].input.cols)
    }

    init(generator: EvidenceAccumulationTrials) {
        self.generator = generator
        (fixed, dataset, shuffleSeed) = ([], nil, nil)
        (nIn, nOut, steps) = (generator.nIn, generator.nOut, generator.steps)
    }

    /// The samples of `dataset`, one per sequence: sample `order(epoch)[k % K]` for sequence k,
    /// where the order of every epoch of K sequences is a permutation drawn from
    /// `shuffleSeed` and the epoch (or the file's order when nil). The target is the one-hot
    /// class over the whole sequence (the loss counts only the learning window).
    public init(dataset: EventDataset, shuffleSeed: UInt32?) {
        self.dataset = dataset
        self.shuffleSeed = shuffleSeed
        (fixed, generator) = ([], nil)
        (nIn, nOut, steps) = (dataset.nIn, dataset.nClasses, dataset.steps)
    }

    /// One pattern for every sequence.
    public var isFrozen: Bool { generator == nil && dataset == nil && fixed.count == 1 }
    /// The stored patterns (not for generators and datasets).
    public var count: Int { fixed.count }
    /// Whether the patterns are held in memory (and written into run folders), not generated or
    /// read from a dataset file.
    public var isStored: Bool { generator == nil && dataset == nil }

    /// Input `[nIn, T]` (0/1) and target `[nOut, T]` of sequence k (0-based over the run).
    /// Generated trials must be requested in increasing k (one batch of look-ahead is kept).
    public func sequence(_ k: Int) -> (input: Matrix<Double>, target: Matrix<Double>) {
        if let g = generator { return g.trial(k) }
        if let d = dataset { return sample(sampleIndex(k), of: d) }
        return fixed[k % fixed.count]
    }

    /// The dataset sample that sequence k uses.
    public func sampleIndex(_ k: Int) -> Int {
        guard let d = dataset else { return k % max(fixed.count, 1) }
        guard let seed = shuffleSeed else { return k % d.count }
        let epoch = k / d.count
        lock.lock()
        defer { lock.unlock() }
        if order?.epoch != epoch {
            // Fisher-Yates with numpy's generator, seeded by the run's seed and the epoch.
            var rng = NumpyRandomState(seed: seed &+ UInt32(truncatingIfNeeded: epoch) &* 0x9E37_79B9)
            var p = Array(0..<d.count)
            for i in stride(from: d.count - 1, to: 0, by: -1) { p.swapAt(i, min(Int(rng.uniform() * Double(i + 1)), i)) }
            order = (epoch, p)
        }
        return order!.samples[k % d.count]
    }

    /// Loads sequence k into row b of `seq` (input spikes, target); a dataset's sample goes in
    /// straight from its event list, without a dense copy.
    public func load<S: Scalar>(_ k: Int, into seq: SequenceBuffers<S>, row b: Int) {
        guard let d = dataset else {
            let p = sequence(k)
            return seq.setSequence(b, input: p.input, target: p.target)
        }
        let i = sampleIndex(k)
        seq.setSequence(b, events: events(i, of: d), label: d.labels[i])
    }

    /// The inputs that spike at step s of sequence k, ascending.
    func spikingInputs(_ k: Int, atStep s: Int) -> [Int] {
        guard let d = dataset else {
            let input = sequence(k).input
            return (0..<nIn).filter { input[$0, s] != 0 }
        }
        let e = events(sampleIndex(k), of: d)
        return Set(zip(e.times, e.units).filter { $0.0 == s }.map(\.1)).sorted()
    }

    /// Sample i's events; none if it cannot be read (reported in `readFailure`).
    private func events(_ i: Int, of d: EventDataset) -> (times: [Int], units: [Int]) {
        do { return try d.events(i) } catch {
            lock.lock()
            if readFailure == nil { readFailure = "\(error)" }
            lock.unlock()
            return ([], [])
        }
    }

    /// Sample i of the dataset as a dense input and a one-hot target (unreadable: see `events`).
    private func sample(_ i: Int, of d: EventDataset) -> (input: Matrix<Double>, target: Matrix<Double>) {
        let input = Matrix<Double>(rows: nIn, cols: steps), target = Matrix<Double>(rows: nOut, cols: steps)
        let e = events(i, of: d)
        for (s, j) in zip(e.times, e.units) { input[j, s] = 1 }
        for s in 0..<steps { target[d.labels[i], s] = 1 }
        return (input, target)
    }

    /// Whether the trials are generated (not stored).
    public var isGenerated: Bool { generator != nil }
    /// Whether the patterns came from the user's `--input`/`--target` files (`Patterns.load`).
    public private(set) var isUserDefined = false
    /// A generator's state where batch `batch` starts (to checkpoint), or nil.
    public func generatorState(atBatch batch: Int) -> EvidenceAccumulationTrials.State? { generator?.state(atBatch: batch) }
    public func restoreGenerator(_ state: EvidenceAccumulationTrials.State) { generator?.restore(state) }
}

extension Patterns {
    /// User-defined patterns from `.npy` files: input `[n_in, T]` (0/1) and target `[n_out, T]`, or
    /// `[K, n_in, T]` and `[K, n_out, T]` for K patterns used in turn; the sizes come from the arrays.
    public static func load(input inputURL: URL, target targetURL: URL) throws -> Patterns {
        let x = try NPY.read(inputURL), y = try NPY.read(targetURL)
        guard (x.shape.count == 2 || x.shape.count == 3), x.shape.allSatisfy({ $0 > 0 }), x.shape.last! >= 2 else {
            throw ConfigError(parameter: "input", requirement: "\(inputURL.path): expected shape [n_in, T] or [K, n_in, T] with T >= 2, got \(x.shape)")
        }
        let lead = Array(x.shape.dropLast(2)), T = x.shape.last!
        guard y.shape.count == x.shape.count, Array(y.shape.dropLast(2)) == lead, y.shape.last == T, y.shape[y.shape.count - 2] > 0 else {
            throw ConfigError(parameter: "target", requirement: "\(targetURL.path): expected shape [\((lead.map(String.init) + ["n_out", "\(T)"]).joined(separator: ", "))] like the input \(x.shape), got \(y.shape)")
        }
        guard x.values.allSatisfy({ $0 == 0 || $0 == 1 }) else {
            throw ConfigError(parameter: "input", requirement: "\(inputURL.path): values must be 0 or 1 (spike or not)")
        }
        guard y.values.allSatisfy(\.isFinite) else {
            throw ConfigError(parameter: "target", requirement: "\(targetURL.path): values must be finite")
        }
        let patterns = Patterns(input: x, target: y)
        patterns.isUserDefined = true
        return patterns
    }

    /// Cross entropy needs class probabilities as targets: non-negative and summing to 1 over
    /// the readouts at every step of the learning window (otherwise nothing is learned).
    public func checkClassTargets(learningWindow: Int) throws {
        guard isStored else { return }  // generated trials and dataset samples are one-hot
        for (k, p) in fixed.enumerated() {
            for s in (steps - learningWindow)..<steps {
                let column = (0..<nOut).map { p.target[$0, s] }
                let sum = column.reduce(0, +)
                guard column.allSatisfy({ $0 >= 0 }), abs(sum - 1) <= 1e-6 else {
                    throw ConfigError(parameter: "target", requirement: "cross-entropy targets must be class probabilities, non-negative and summing to 1 over the readouts at every step of the learning window; pattern \(k), step \(s) has \(column)")
                }
            }
        }
    }

    /// Patterns from arrays `[n_in, T]` and `[n_out, T]` (one frozen pattern) or `[K, n_in, T]` and
    /// `[K, n_out, T]` (one per sequence); the caller has checked the shapes and values.
    public convenience init(input x: NPYArray, target y: NPYArray) {
        let k = x.shape.count == 3 ? x.shape[0] : 1
        let (nIn, nOut, T) = (x.shape[x.shape.count - 2], y.shape[y.shape.count - 2], x.shape.last!)
        self.init(fixed: (0..<k).map { i in
            (Matrix(rows: nIn, cols: T, Array(x.values[(i * nIn * T)..<((i + 1) * nIn * T)])),
             Matrix(rows: nOut, cols: T, Array(y.values[(i * nOut * T)..<((i + 1) * nOut * T)])))
        })
    }
}

extension TrainingConfig {
    /// The configuration of a task with its own defaults (NEST's scripts), before user options.
    public static func defaults(for task: TaskKind) -> TrainingConfig {
        var c = TrainingConfig()
        c.task = task
        switch task {
        case .infiniteLoop:
            break
        case .sineWaves:  // NEST 3.10 test_eprop_regression
            (c.nRec, c.nOut, c.sequence) = (100, 1, 1000)
            (c.recurrent.model, c.recurrent.cReg, c.recurrent.fTarget, c.recurrent.cM) = (.lif, 300, 10, 1)
            (c.recurrent.tauMMean, c.recurrent.tauMStd, c.readout.tauM) = (30, 0, 30)
            (c.optimizer.kind, c.optimizer.eta) = (.gradientDescent, 1e-4)
        case .evidenceAccumulation:  // NEST 3.10 eprop_supervised_classification_evidence-accumulation_bsshslm_2020
            (c.nIn, c.nRec, c.nOut, c.sequence, c.learningWindow, c.iterations) = (40, 100, 2, 2250, 150, 50)
            c.inputSpikeProb = 0.04
            c.recurrent.nAdaptive = 50
            (c.recurrent.regularSpikeArrival, c.recurrent.tRef, c.recurrent.vTh, c.recurrent.cM) = (true, 5, 0.6, 1)
            (c.recurrent.tauMMean, c.recurrent.tauMStd, c.recurrent.cReg, c.recurrent.fTarget) = (20, 0, 300, 10)
            (c.readout.tauM, c.readout.loss) = (20, .crossEntropy)
            (c.optimizer.batchSize, c.averageGradient) = (32, true)
        case .eventClassification:
            // The evidence-accumulation example's neurons (without adaptation), readout and
            // optimizer, 150 recurrent neurons as NEST 3.10's N-MNIST example; n_in, n_out
            // and the sequence come from the dataset; the decision is over the whole sample.
            c = defaults(for: .evidenceAccumulation)
            c.task = .eventClassification
            (c.recurrent.model, c.recurrent.nAdaptive, c.nRec) = (.lif, nil, 150)
            (c.learningWindow, c.iterations) = (nil, 100)
        }
        return c
    }
}

/// Draws a task's initial state with numpy's legacy generator in the order of NEST's scripts,
/// so that `--seed` gives the scripts' weights and inputs without Python.
public enum TaskGenerator {
    /// The initial state of `c`'s task. Event classification draws the weights as evidence
    /// accumulation does and trains on `dataset` (opened from `c.trainData` when not given).
    public static func generate(_ c: TrainingConfig, dataset: EventDataset? = nil) throws -> NetworkInit {
        switch c.task {
        case .infiniteLoop, .sineWaves: return InfiniteLoopTask.generate(c)
        case .evidenceAccumulation: return EvidenceAccumulationTrials.generate(c)
        case .eventClassification:
            guard let path = c.trainData else { throw ConfigError(parameter: "train_data", requirement: "task event-classification needs an event dataset") }
            let data = try dataset ?? EventDataset(URL(fileURLWithPath: path))
            var rng = NumpyRandomState(seed: c.seed)
            let w = EvidenceAccumulationTrials.drawWeights(&rng, c)
            return NetworkInit(wInRec: w.wIn, wRecRec: w.wRec, wRecOut: w.wOut, wOutRecFeedback: w.feedback, tauM: w.tauM,
                               patterns: Patterns(dataset: data, shuffleSeed: c.seed))
        }
    }
}

/// Trials of the evidence-accumulation task (e-prop paper, NEST's classification example): 4
/// input groups (left cues, right cues, recall, background noise), 7 cues of 100 steps with
/// 50-step gaps, 1050 steps of background, a 150-step recall window in which the network must
/// report which side had more cues. Each batch draws new trials, as the example does.
public final class EvidenceAccumulationTrials: @unchecked Sendable {
    public struct State: Codable, Sendable {
        /// Generator at the start of `batch`.
        var rng: NumpyRandomState
        var batch: Int
    }

    let nIn: Int, nOut: Int, steps: Int, batchSize: Int
    let spikeProb: Double
    static let (nCues, cue, spacing, recall, probGroup) = (7, 100, 50, 150, 0.3)
    private var rng: NumpyRandomState
    /// A drawn trial: `[nIn * T]` input spikes (0/1, row-major `[nIn, T]`, a byte each) and its class.
    typealias Trial = (input: [UInt8], label: Int)
    /// Index of the next batch to draw, and the batches drawn (at most two are kept).
    private var nextBatch = 0
    private var drawn: [Int: (start: NumpyRandomState, trials: [Trial])] = [:]

    init(rng: NumpyRandomState, config c: TrainingConfig) {
        self.rng = rng
        (nIn, nOut, steps, batchSize, spikeProb) = (c.nIn, c.nOut, c.sequence, c.optimizer.batchSize, c.inputSpikeProb)
    }

    /// The generator where `batch` starts (that batch must be drawn already or be the next one).
    func state(atBatch batch: Int) -> State {
        if let d = drawn[batch] { return State(rng: d.start, batch: batch) }
        precondition(batch == nextBatch, "batch \(batch) is not available")
        return State(rng: rng, batch: batch)
    }

    func restore(_ s: State) {
        rng = s.rng
        nextBatch = s.batch
        drawn = [:]
    }

    func trial(_ k: Int) -> (input: Matrix<Double>, target: Matrix<Double>) {
        let b = k / batchSize
        while drawn[b] == nil {
            precondition(nextBatch <= b, "trials must be requested in order")
            let start = rng
            drawn[nextBatch] = (start, drawBatch())
            nextBatch += 1
            drawn = drawn.filter { $0.key >= nextBatch - 2 }
        }
        let t = drawn[b]!.trials[k % batchSize]
        let input = Matrix<Double>(rows: nIn, cols: steps), target = Matrix<Double>(rows: nOut, cols: steps)
        for i in 0..<t.input.count where t.input[i] != 0 { input.p[i] = 1 }
        for s in 0..<steps { target[t.label, s] = 1 }
        return (input, target)
    }

    /// `generate_evidence_accumulation_input_output` of NEST's example, draw for draw.
    private func drawBatch() -> [Trial] {
        // Drawn from a local copy: a stored property of a class is checked for exclusive access
        // at every call, and a trial batch takes millions of draws.
        var rng = self.rng
        defer { self.rng = rng }
        let B = batchSize, T = steps, nPop = nIn / 4
        let probGroup = Double(Float(Self.probGroup)), probOther = Double(Float(1 - Self.probGroup))  // float32 in the script
        let side = (0..<B).map { _ in Int(rng.nextUInt32() & 1) }  // np.random.choice([0, 1], B)
        let cues = (0..<B).map { b -> [Int] in
            // np.random.choice([0, 1], n_cues, p=probs[b]): cdf[0] = p0 / (p0 + p1), searchsorted right.
            let p0 = side[b] == 0 ? probGroup : probOther, p1 = side[b] == 0 ? probOther : probGroup
            let cdf0 = p0 / (p0 + p1)
            return (0..<Self.nCues).map { _ in rng.uniform() >= cdf0 ? 1 : 0 }
        }
        var trials: [Trial] = []
        var prob = [Double](repeating: 0, count: T * nIn)  // [T, nIn] spike probability of one trial
        for b in 0..<B {
            for i in 0..<prob.count { prob[i] = 0 }
            for (c, cue) in cues[b].enumerated() {
                let start = c * (Self.cue + Self.spacing) + Self.spacing
                for s in start..<max(start, min(start + Self.cue, T)) { for i in (cue * nPop)..<((cue + 1) * nPop) { prob[s * nIn + i] = spikeProb } }
            }
            for s in max(T - Self.recall, 0)..<T { for i in (2 * nPop)..<(3 * nPop) { prob[s * nIn + i] = spikeProb } }
            for s in 0..<T { for i in (3 * nPop)..<nIn { prob[s * nIn + i] = spikeProb / 4 } }
            // input_spike_probs > rand(...) in C order (b, s, i), one draw per entry; no spike at step 0.
            var input = [UInt8](repeating: 0, count: nIn * T)
            for s in 0..<T {
                for i in 0..<nIn where prob[s * nIn + i] > rng.uniform() && s > 0 { input[i * T + s] = 1 }
            }
            trials.append((input, cues[b].reduce(0, +) > Self.nCues / 2 ? 1 : 0))
        }
        return trials
    }

    /// Weights in the example's order (randn input and recurrent weights scaled by 1/sqrt(fan-in),
    /// Glorot-uniform readout weights, unscaled randn feedback), then the trial generator.
    static func generate(_ c: TrainingConfig) -> NetworkInit {
        var rng = NumpyRandomState(seed: c.seed)
        let w = drawWeights(&rng, c)
        let patterns = Patterns(generator: EvidenceAccumulationTrials(rng: rng, config: c))
        return NetworkInit(wInRec: w.wIn, wRecRec: w.wRec, wRecOut: w.wOut, wOutRecFeedback: w.feedback, tauM: w.tauM, patterns: patterns)
    }

    /// The example's weights, drawn from `rng` in its order; tau_m is tau_m_mean everywhere.
    static func drawWeights(_ rng: inout NumpyRandomState, _ c: TrainingConfig)
        -> (wIn: Matrix<Double>, wRec: Matrix<Double>, wOut: Matrix<Double>, feedback: Matrix<Double>, tauM: Matrix<Double>) {
        let (nIn, nRec, nOut) = (c.nIn, c.nRec, c.nOut)
        let wIn = rng.normalWeights(post: nRec, pre: nIn, divisor: Double(nIn).squareRoot())
        let wRec = rng.normalWeights(post: nRec, pre: nRec, divisor: Double(nRec).squareRoot(), zeroDiagonal: true)
        let limit = (3.0 / max(1.0, Double(nRec + nOut) / 2)).squareRoot()
        let glorot = (0..<nRec).map { _ in (0..<nOut).map { _ in -limit + 2 * limit * rng.uniform() } }
        let wOut = Matrix<Double>(rows: nOut, cols: nRec)
        for k in 0..<nOut { for j in 0..<nRec { wOut[k, j] = Double(Float(glorot[j][k])) } }
        let feedback = rng.normalWeights(post: nRec, pre: nOut, divisor: 1, transposed: false)
        let tau = Matrix<Double>(rows: 1, cols: nRec)
        for j in 0..<nRec { tau.p[j] = c.recurrent.tauMMean }
        return (wIn, wRec, wOut, feedback, tau)
    }
}
