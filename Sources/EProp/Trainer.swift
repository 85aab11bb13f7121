import Foundation

/// The outcome of one training iteration (one batch, one optimizer step).
public struct IterationResult: Codable, Sendable {
    /// 0-based iteration index.
    public let iteration: Int
    /// Mean over the batch's sequences of the loss: the tutorial's 0.5 sum_{s,k} (y - y*)^2, or for
    /// cross entropy NEST's example's mean over the learning window of -sum_k pi*_k log pi_k.
    public let loss: Double
    /// `[B]` loss of each sequence.
    public let lossPerSequence: [Double]
    /// `[nOut]` loss of each readout, mean over the batch.
    public let lossPerReadout: [Double]
    /// Mean firing rate of the recurrent neurons in this iteration (spikes/s).
    public let rateHz: Double
    /// Mean rate of the input spikes the network received (spikes/s; NEST drops step 0's).
    public var inputRateHz: Double? = nil
    /// Cross entropy: fraction of the batch's sequences classified right; nil for regression.
    public var accuracy: Double? = nil
    /// With `compareGradients`, per trained matrix (`TrainedMatrix` order): the cosine similarity
    /// of the e-prop gradient with the BPTT gradient of the same weights and batch, and the
    /// ratio of their norms |g_eprop| / |g_bptt|.
    public var gradientCosine: [Double]? = nil
    public var gradientNormRatio: [Double]? = nil
    /// Wall time of the iteration (s).
    public let seconds: Double
    /// When profiling (`Trainer.profilesPhases`): seconds per `Phase` by name, summed over the
    /// workers (so with several threads more than `seconds`); `checks` includes the
    /// `firstNonFinite()` that follows the step.
    public var phaseSeconds: [String: Double]? = nil
    /// In a group of several processes: the part of `seconds` spent in the exchange of gradients
    /// (waiting for the slowest process included).
    public var exchangeSeconds: Double? = nil
}

/// A fixed group of consecutive sequences of a batch: its gradient (where the exchange sums it),
/// NEST's left-out terms of its sequences. A worker simulates it in a `Workspace`.
final class Shard<S: Scalar>: @unchecked Sendable {
    /// The shard's index within the batch, its first sequence and its number of sequences.
    let index: Int
    let first: Int
    let size: Int
    /// Gradient summed over the shard's sequences.
    let gradients: Gradients<S>
    /// NEST's left-out L(T-1) terms of the current batch's sequences in this shard.
    var missingLastTerm: MissingLastTerm
    /// The left-out term of the run's last sequence on its own (when this shard holds it).
    let lastTerm: Gradients<S>
    /// With `compareGradients`: the BPTT gradient of the same sequences.
    let bpttGradients: Gradients<S>?

    /// `storage`: where to accumulate the gradient vector in place (`GradientExchange`), if anywhere.
    init(index: Int, size: Int, config: TrainingConfig, net: Network<S>, isLast: Bool, storage: (UnsafeMutablePointer<S>, owner: AnyObject)?) {
        self.index = index
        self.size = size
        first = index * Trainer<S>.shardSize
        let (nIn, nRec, nOut) = (net.nIn, net.nRec, net.nOut), G = Gradients<S>.count(nIn: nIn, nRec: nRec, nOut: nOut)
        func vector(at offset: Int) -> Gradients<S> {
            storage.map { Gradients(nIn: nIn, nRec: nRec, nOut: nOut, viewing: $0.0 + offset, owner: $0.owner) } ?? Gradients(nIn: nIn, nRec: nRec, nOut: nOut)
        }
        gradients = vector(at: 0)
        // Only the batch's last shard can hold the run's last sequence.
        lastTerm = isLast ? Gradients(nIn: nIn, nRec: nRec, nOut: nOut) : Gradients(nIn: 0, nRec: 0, nOut: 0)
        missingLastTerm = .none(batch: size)
        bpttGradients = config.compareGradients ? vector(at: G) : nil
    }

    /// The gradient vector that the exchange sums (`GradientExchange`).
    var vector: [Matrix<S>] { gradients.all + (bpttGradients?.all ?? []) }
}

/// What a worker simulates sequences in: the histories of one sequence and the gradient
/// computers' buffers. A batch's shards share the workspaces, one per worker,
/// so memory grows with the threads, not with the batch.
final class Workspace<S: Scalar>: @unchecked Sendable {
    let seq: SequenceBuffers<S>
    let computer: any GradientComputer<S>
    /// With `compareGradients`: BPTT on the same sequences.
    let bptt: BPTTGradient<S>?
    /// The sequence of the batch that `seq` holds now (-1: none), of the iteration `iteration`.
    var holds = (sequence: -1, iteration: -1)

    /// `seq`: buffers to use (made here if nil).
    init(steps T: Int, config: TrainingConfig, kernel: Kernel, net: Network<S>, nRecord: Int, initial: NetworkInit, seq: SequenceBuffers<S>? = nil) {
        let (nIn, nRec, nOut, size) = (net.nIn, net.nRec, net.nOut, 1)
        switch config.gradient {
        case .adjoint: computer = AdjointGradient(batch: size, steps: T, nIn: nIn, nRec: nRec, nOut: nOut, kernel: kernel)
        case .traces: computer = TraceGradient(batch: size, steps: T, nIn: nIn, nRec: nRec, nOut: nOut)
        case .bptt: computer = BPTTGradient(batch: size, steps: T, nIn: nIn, nRec: nRec, nOut: nOut, throughReset: config.bpttThroughReset)
        }
        bptt = config.compareGradients ? BPTTGradient(batch: size, steps: T, nIn: nIn, nRec: nRec, nOut: nOut, throughReset: config.bpttThroughReset) : nil
        self.seq = seq ?? Trainer<S>.sequenceBuffers(batch: size, steps: T, config: config, net: net, nRecord: nRecord, initial: initial)
    }
}

/// The numbers a shard reports of each of its sequences besides its gradient, in a record of
/// `GradientExchange`'s outcomes: per sequence and readout the loss, then the shard's totals.
enum ShardOutcome {
    /// Doubles in a record: `shardSize * nOut` losses and the four totals.
    static func stride(nOut: Int, shardSize: Int) -> Int { shardSize * nOut + 5 }
    /// Offsets of the totals after the losses: correct decisions, recurrent spikes, whether the
    /// membrane voltage is finite (1) or not (0), whether the shard holds the run's last
    /// sequence and so a separate L(T-1) term (1) or not (0), and input spikes.
    static let correct = 0, spikes = 1, voltageFinite = 2, holdsLastOfRun = 3, inputSpikes = 4
}

/// Trains a network on a task's patterns (the same frozen pattern in every sequence, as in the
/// tutorial, or one pattern per sequence). One iteration = `batchSize` sequences simulated with
/// frozen weights, their mean gradient, and one optimizer step (NEST's batch semantics,
/// docs/mathematics.md §4.3).
///
/// The batch is split into shards of at most `shardSize` sequences, independent of the thread
/// and process count. The processes of `group` each simulate a consecutive block of the shards,
/// `config.threads` workers per process side by side; the shard gradients are summed in shard
/// order (`GradientExchange`), so results are bitwise identical for any number of threads and
/// processes, and every process takes the same optimizer step.
public final class Trainer<S: Scalar>: @unchecked Sendable {
    /// Sequences per shard.
    public static var shardSize: Int { 8 }

    public let config: TrainingConfig
    public let initial: NetworkInit
    public let net: Network<S>
    /// Mean gradient of the last batch (a view of the exchange's sum).
    public let gradients: Gradients<S>
    /// With `compareGradients`: the batch's BPTT gradient.
    private let bpttGradients: Gradients<S>?
    public let optimizer: Optimizer
    public private(set) var optimizerState: OptimizerState<S>
    /// The processes training this model together (one by default).
    public let group: any ProcessGroup
    /// This process's shards of every batch.
    let shards: [Shard<S>]
    /// One workspace of one sequence per worker.
    private let workspaces: [Workspace<S>]
    let exchange: GradientExchange<S>
    /// NEST's L(T-1) term of the run's last sequence, from the process that simulates it.
    private let lastTerm: Gradients<S>

    public internal(set) var iteration = 0
    public internal(set) var results: [IterationResult] = []
    /// Evaluations on the held-out split so far (by `TrainingRun`, on rank 0).
    public internal(set) var evaluations: [Evaluation] = []
    /// After the last iteration, if it differs from the final state: the weights and optimizer
    /// state a longer run would have. The run's last sequence keeps NEST's L(T-1) term (its forced
    /// final update), a longer run leaves it out (§6.2); a checkpoint stores this state so that
    /// resuming continues exactly as one long run.
    public private(set) var continuation: (weights: [Matrix<S>], optimizerState: OptimizerState<S>)?
    /// Recordings of the chosen iterations (NEST's recorders), made by rank 0.
    public let recorder: Recorder
    /// The kernel the run uses (`config.kernel` resolved) and why.
    public let kernel: KernelResolution
    /// Times the iteration's serial phases when profiling.
    private var clock: PhaseClock?
    /// Whether each iteration times its phases (`IterationResult.phaseSeconds`).
    public var profilesPhases = false {
        didSet {
            clock = profilesPhases ? PhaseClock() : nil
            for w in workspaces { w.seq.clock = profilesPhases ? PhaseClock() : nil }
        }
    }

    public init(config: TrainingConfig, initial: NetworkInit, recording: RecordingOptions = RecordingOptions(), group: any ProcessGroup = SingleProcess()) {
        self.config = config
        self.initial = initial
        self.group = group
        let B = config.optimizer.batchSize, T = initial.steps
        let net = Network<S>(initial, config: config)
        self.net = net
        let shardCount = (B + Self.shardSize - 1) / Self.shardSize
        let (nIn, nRec, nOut) = (net.nIn, net.nRec, net.nOut), G = Gradients<S>.count(nIn: nIn, nRec: nRec, nOut: nOut)
        let exchange = GradientExchange<S>(group: group, shardCount: shardCount, vectorLength: config.compareGradients ? 2 * G : G,
                                           outcomeStride: ShardOutcome.stride(nOut: nOut, shardSize: Self.shardSize))
        self.exchange = exchange
        shards = exchange.owned.map {
            Shard(index: $0, size: min(Self.shardSize, B - $0 * Self.shardSize), config: config, net: net,
                  isLast: $0 == shardCount - 1, storage: exchange.storage(ofShard: $0).map { ($0, exchange) })
        }
        recorder = Recorder(recording, iterations: config.iterations, batch: B, steps: T, nIn: nIn, nRec: nRec, nOut: nOut)
        // The batch's sums, where the exchange leaves them.
        gradients = Gradients(nIn: nIn, nRec: nRec, nOut: nOut, viewing: exchange.summed, owner: exchange)
        bpttGradients = config.compareGradients ? Gradients(nIn: nIn, nRec: nRec, nOut: nOut, viewing: exchange.summed + G, owner: exchange) : nil
        lastTerm = shards.last.flatMap { $0.index == shardCount - 1 ? $0.lastTerm : nil } ?? Gradients(nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        optimizer = Optimizer(config.optimizer)
        optimizerState = optimizer.initialState(sizes: net.trained.map(\.count))
        // One workspace per worker (rank 0 records with one even if it simulates no shard);
        // `auto` simulates the run's first sequence in the first one's buffers to choose the kernel.
        let nRecord = recording.nRecord
        let first = Self.sequenceBuffers(batch: 1, steps: T, config: config, net: net, nRecord: nRecord, initial: initial)
        let kernel = KernelResolution.resolve(config.kernel, net, first, learningWindow: config.resolvedLearningWindow) {
            let patterns = initial.patterns
            if patterns.isGenerated { _ = patterns.sequence(0) }
            if !patterns.isFrozen { patterns.load(0, into: first, row: 0) }
            first.isFirstOfRun.p[0] = 1
        }
        self.kernel = kernel
        workspaces = (0..<max(min(config.threads, shards.count), 1)).map {
            Workspace(steps: T, config: config, kernel: kernel.used, net: net, nRecord: nRecord, initial: initial, seq: $0 == 0 ? first : nil)
        }
    }

    /// Buffers for `batch` sequences, holding the patterns already when they are frozen.
    static func sequenceBuffers(batch: Int, steps T: Int, config: TrainingConfig, net: Network<S>, nRecord: Int, initial: NetworkInit) -> SequenceBuffers<S> {
        let seq = SequenceBuffers<S>(batch: batch, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut, nRecord: nRecord)
        seq.lossFunction = config.readout.loss
        if initial.patterns.isFrozen {
            for b in 0..<batch { seq.setSequence(b, input: initial.inputSpikes, target: initial.target) }
        }
        return seq
    }

    /// Loads the sequences `first ..< first + seq.batch` of this batch into `seq`: their input
    /// patterns and targets (unless frozen) and whether one starts the run. Generated trials
    /// must be drawn already (`prepareShards`).
    private func load(_ seq: SequenceBuffers<S>, first: Int) {
        let B = config.optimizer.batchSize, patterns = initial.patterns
        for b in 0..<seq.batch {
            if !patterns.isFrozen {  // frozen patterns were loaded when the buffers were made
                patterns.load(iteration * B + first + b, into: seq, row: b)
            }
            seq.isFirstOfRun.p[b] = (iteration == 0 && first + b == 0) ? 1 : 0
        }
    }

    /// NEST's left-out L(T-1) terms of this process's sequences of the batch, and generated
    /// trials drawn (in order, on this thread) before the workers load them.
    private func prepareShards() {
        let B = config.optimizer.batchSize
        for shard in shards {
            if initial.patterns.isGenerated { for b in 0..<shard.size { _ = initial.patterns.sequence(iteration * B + shard.first + b) } }
            shard.missingLastTerm = config.nestMissingLearningSignal && config.gradient != .bptt  // an e-prop artefact
                ? MissingLastTerm.of(initial.patterns, first: iteration * B + shard.first, count: shard.size, total: config.iterations * B)
                : .none(batch: shard.size)
        }
    }

    /// Simulates the sequences of one shard in `workspace`, one after the other (so that one
    /// sequence's histories stay in the cache), adds their gradients in sequence order into the
    /// shard's, and deposits it with its outcomes in the exchange (runs on a worker thread).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    private func simulate(_ shard: Shard<S>, in workspace: Workspace<S>) {
        let seq = workspace.seq, nOut = net.nOut, missing = shard.missingLastTerm
        shard.gradients.zero()
        shard.bpttGradients?.zero()
        if missing.lastOfRun != nil { shard.lastTerm.zero() }
        let record = exchange.outcome(shard.index), totals = record + Self.shardSize * nOut
        var (correct, spikes, inputSpikes, finite) = (0.0, 0.0, 0, true)
        let clock = seq.clock, kernel = self.kernel.used
        clock?.start()
        for b in 0..<shard.size {
            load(seq, first: shard.first + b)
            workspace.holds = (shard.first + b, iteration)
            clock?.lap(.loading)
            seq.forward(net, learningWindow: config.resolvedLearningWindow, kernel: kernel)
            let one = MissingLastTerm(inputs: [missing.inputs[b]], lastOfRun: missing.lastOfRun == b ? 0 : nil)
            let ctx = GradientContext(cReg: config.recurrent.cReg, missingLastTerm: one, kernel: kernel)
            workspace.computer.accumulate(net, seq, ctx, into: shard.gradients, term: shard.lastTerm)
            if let computer = workspace.bptt, let g = shard.bpttGradients {
                computer.accumulate(net, seq, ctx, into: g, term: shard.lastTerm)  // BPTT ignores the e-prop term
            }
            clock?.lap(.backwardScan)  // the adjoint laps its own phases; the other methods' gradient counts here
            for k in 0..<nOut { record[b * nOut + k] = seq.loss[k] }
            if seq.isCorrect(0) { correct += 1 }
            for q in 0..<seq.spikeCount.count { spikes += Double(seq.spikeCount.p[q]) }
            for r in 0..<seq.steps { inputSpikes += seq.inputSpikes.count[r] }
            clock?.lap(.bookkeeping)
            finite = finite && Self.firstNonFinite(seq.v) == nil
            clock?.lap(.checks)
        }
        exchange.deposit(shard: shard.index, shard.vector)
        totals[ShardOutcome.correct] = correct
        totals[ShardOutcome.spikes] = spikes
        totals[ShardOutcome.voltageFinite] = finite ? 1 : 0
        totals[ShardOutcome.holdsLastOfRun] = missing.lastOfRun != nil ? 1 : 0
        totals[ShardOutcome.inputSpikes] = Double(inputSpikes)
    }

    /// Runs one iteration and returns its result. Collective in a group of processes.
    @discardableResult
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func step() -> IterationResult {
        precondition(iteration < config.iterations, "the run has all \(config.iterations) iterations")
        let start = ContinuousClock.now
        let B = config.optimizer.batchSize, T = initial.steps, nOut = net.nOut
        clock?.start()
        prepareShards()
        clock?.lap(.loading)
        let workers = min(config.threads, shards.count)
        if workers <= 1 {
            for shard in shards { simulate(shard, in: workspaces[0]) }
        } else {
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for i in stride(from: w, to: shards.count, by: workers) { simulate(shards[i], in: workspaces[w]) }
            }
        }
        clock?.start()  // the workers' clocks time the shards
        let exchangeStart = ContinuousClock.now
        exchange.exchange()
        let exchangeSeconds = (ContinuousClock.now - exchangeStart).seconds
        clock?.lap(.exchange)
        if group.rank == 0 { record() }
        // Fixed order: shard 0, 1, ...
        var lossPerSequence: [Double] = [], lossPerReadout = [Double](repeating: 0, count: nOut), spikes = 0.0, inputSpikes = 0.0, correct = 0.0
        // Regression: the tutorial's sum over steps; cross entropy: NEST's example's mean over the window.
        let lossScale = config.readout.loss == .crossEntropy ? Double(config.resolvedLearningWindow) : 1
        for shard in 0..<exchange.shardCount {
            let record = exchange.outcome(shard), totals = record + Self.shardSize * nOut
            for b in 0..<min(Self.shardSize, B - shard * Self.shardSize) {
                lossPerSequence.append((0..<nOut).map { record[b * nOut + $0] }.reduce(0, +) / lossScale)
                for k in 0..<nOut { lossPerReadout[k] += record[b * nOut + k] / Double(B) / lossScale }
            }
            correct += totals[ShardOutcome.correct]
            spikes += totals[ShardOutcome.spikes]
            inputSpikes += totals[ShardOutcome.inputSpikes]
        }
        let averageOver = config.averageGradient ? config.resolvedLearningWindow : nil
        clock?.lap(.bookkeeping)
        let lastShard = exchange.shardCount - 1
        if exchange.outcome(lastShard)[Self.shardSize * nOut + ShardOutcome.holdsLastOfRun] == 1 {
            // The run's last step: a longer run steps without the last sequence's L(T-1) term,
            // NEST's forced final update with it.
            for m in lastTerm.all { group.broadcast(m.p, bytes: m.count * MemoryLayout<S>.stride, root: exchange.owner(of: lastShard)) }
            let longer = Gradients<S>(nIn: net.nIn, nRec: net.nRec, nOut: nOut)
            longer.add(gradients)
            longer.finish(batchSize: B, averageOver: averageOver)
            let weights = net.trained.map { $0.converted(to: S.self) }
            var state = optimizerState
            applyUpdate(&state, to: weights, longer)
            continuation = (weights, state)
            gradients.add(lastTerm)
        }
        gradients.finish(batchSize: B, averageOver: averageOver)
        let comparison = bpttGradients.map { compareWithBPTT($0, batchSize: B, averageOver: averageOver) }
        applyUpdate(&optimizerState, to: net.trained, gradients)
        net.refreshTransposes()
        clock?.lap(.optimizer)

        let elapsed = ContinuousClock.now - start
        var result = IterationResult(
            iteration: iteration, loss: lossPerSequence.reduce(0, +) / Double(B), lossPerSequence: lossPerSequence,
            lossPerReadout: lossPerReadout, rateHz: spikes / Double(B * net.nRec * T) * 1000,
            seconds: elapsed.seconds)
        if config.readout.loss == .crossEntropy { result.accuracy = correct / Double(B) }
        result.inputRateHz = inputSpikes / Double(B * net.nIn * T) * 1000
        (result.gradientCosine, result.gradientNormRatio) = (comparison?.cosine, comparison?.normRatio)
        if group.size > 1 { result.exchangeSeconds = exchangeSeconds }
        if let clock {
            var total = clock.take()
            for w in workspaces { for (p, t) in w.seq.clock!.take().enumerated() { total[p] += t } }
            result.phaseSeconds = Dictionary(uniqueKeysWithValues: zip(Phase.allCases.map(\.name), total))
        }
        results.append(result)
        iteration += 1
        if iteration == config.iterations { recorder.finish(net) }
        return result
    }

    /// Rank 0 hands every sequence of the batch to the recorder, in order. A sequence that no
    /// workspace holds any more (the workspace went on to a later one, or another process
    /// simulated it) is simulated again here, forward only with the same weights and inputs, so
    /// with the same spikes, when this iteration is recorded or the next one is (its first
    /// sequence needs the learning signal of this batch's last).
    private func record() {
        let B = config.optimizer.batchSize
        let replaying = recorder.isRecorded(iteration) || recorder.isRecorded(iteration + 1)
        for b in 0..<B {
            let seq: SequenceBuffers<S>
            if let w = workspaces.first(where: { $0.holds == (b, iteration) }) {
                seq = w.seq
            } else if replaying {
                let w = workspaces[0]
                seq = w.seq
                load(seq, first: b)
                w.holds = (b, iteration)
                seq.forward(net, learningWindow: config.resolvedLearningWindow, kernel: kernel.used)
            } else {
                continue
            }
            recorder.observe(iteration: iteration, firstSequence: iteration * B + b, seq, net, eL: config.recurrent.eL, eLOut: config.readout.eL)
        }
    }

    /// The batch's BPTT gradient (summed over shards in order, finished like the e-prop one) against
    /// the e-prop gradient in `gradients`, per trained matrix.
    private func compareWithBPTT(_ bptt: Gradients<S>, batchSize B: Int, averageOver: Int?) -> (cosine: [Double], normRatio: [Double]) {
        bptt.finish(batchSize: B, averageOver: averageOver)
        var cosine: [Double] = [], ratio: [Double] = []
        for (e, b) in zip(gradients.all, bptt.all) {
            var (dot, ee, bb) = (0.0, 0.0, 0.0)
            for i in 0..<e.count {
                let (x, y) = (Double(e.p[i]), Double(b.p[i]))
                (dot, ee, bb) = (dot + x * y, ee + x * x, bb + y * y)
            }
            cosine.append(dot / (ee.squareRoot() * bb.squareRoot()))
            ratio.append((ee / bb).squareRoot())
        }
        return (cosine, ratio)
    }

    /// One optimizer step on `weights` (in the order of `TrainedMatrix`); no autapses, whatever Wmin is.
    private func applyUpdate(_ state: inout OptimizerState<S>, to weights: [Matrix<S>], _ g: Gradients<S>) {
        optimizer.update(&state, weights: weights, gradients: g.all)
        let wRec = weights[TrainedMatrix.recRec.rawValue]
        for j in 0..<net.nRec { wRec[j, j] = 0 }
    }

    /// The first quantity of the last iteration that is NaN or infinite (loss, membrane voltage,
    /// gradients, weights), or nil.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func firstNonFinite() -> String? {
        clock?.start()
        let found = findNonFinite()
        if let clock, !results.isEmpty {
            clock.lap(.checks)
            results[results.count - 1].phaseSeconds?[Phase.checks.name, default: 0] += clock.take()[Phase.checks.rawValue]
        }
        return found
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    private func findNonFinite() -> String? {
        if let r = results.last, !r.loss.isFinite { return "loss (\(r.loss))" }
        for shard in 0..<exchange.shardCount where exchange.outcome(shard)[Self.shardSize * net.nOut + ShardOutcome.voltageFinite] == 0 {
            return "membrane voltage V_m"
        }
        let count = TrainedMatrix.allCases.count
        for (k, m) in (gradients.all + net.trained).enumerated() {
            guard let i = Self.firstNonFinite(m) else { continue }
            let matrix = TrainedMatrix.allCases[k % count].name  // the gradients first, then the weights
            return "\(k < count ? "gradient of \(matrix)" : matrix)[\(i / m.cols), \(i % m.cols)] (\(m.p[i]))"
        }
        return nil
    }

    /// The index of the first NaN or infinity in `m`, or nil.
    static func firstNonFinite(_ m: Matrix<S>) -> Int? {
        // NaN and infinity are the values whose exponent bits are all ones: the largest exponent
        // field is all ones if one of them is there. A maximum over integer lanes, which the
        // compiler vectorizes (a floating-point test, an OR of comparisons or a running sum
        // stayed one element at a time: 50 us per tutorial iteration).
        @inline(__always) func anyAllOnes<U: FixedWidthInteger>(_: U.Type, exponent: U) -> Bool {
            let bits = UnsafeRawPointer(m.p).assumingMemoryBound(to: U.self)
            var largest: U = 0
            for i in 0..<m.count { largest = max(largest, bits[i] & exponent) }
            return largest == exponent
        }
        let found = MemoryLayout<S>.size == 4 ? anyAllOnes(UInt32.self, exponent: 0x7F80_0000) : anyAllOnes(UInt64.self, exponent: 0x7FF0_0000_0000_0000)
        guard found else { return nil }
        return (0..<m.count).first { !m.p[$0].isFinite }
    }

    /// Sets the state of a checkpoint: completed iterations, their results, weights, optimizer.
    func restore(iteration: Int, results: [IterationResult], weights: [Matrix<S>], optimizerState: OptimizerState<S>) {
        self.iteration = iteration
        self.results = results
        for (w, src) in zip(net.trained, weights) { w.copy(from: src) }
        self.optimizerState = optimizerState
        net.refreshTransposes()
    }
}
