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
    /// Cross entropy: fraction of the batch's sequences classified right; nil for regression.
    public var accuracy: Double? = nil
    /// With `compareGradients`, per trained matrix (`TrainedMatrix` order): the cosine similarity
    /// of the e-prop gradient with the BPTT gradient of the same weights and batch, and the
    /// ratio of their norms |g_eprop| / |g_bptt|.
    public var gradientCosine: [Double]? = nil
    public var gradientNormRatio: [Double]? = nil
    /// Wall time of the iteration (s).
    public let seconds: Double
}

/// A fixed group of consecutive sequences of a batch, simulated side by side by one worker with
/// its own histories and gradient accumulator.
final class Shard<S: Scalar>: @unchecked Sendable {
    /// Index of the shard's first sequence within the batch.
    let first: Int
    let seq: SequenceBuffers<S>
    let computer: any GradientComputer<S>
    /// Gradient summed over the shard's sequences.
    let gradients: Gradients<S>
    /// NEST's left-out L(T-1) terms of the current batch's sequences in this shard.
    var missingLastTerm: MissingLastTerm
    /// The left-out term of the run's last sequence on its own (when this shard holds it).
    let lastTerm: Gradients<S>
    /// With `compareGradients`: the BPTT gradient of the same sequences.
    let bptt: (computer: BPTTGradient<S>, gradients: Gradients<S>)?

    init(first: Int, size: Int, steps T: Int, config: TrainingConfig, net: Network<S>, nRecord: Int, initial: NetworkInit, isLast: Bool) {
        self.first = first
        seq = SequenceBuffers(batch: size, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut, nRecord: nRecord)
        gradients = Gradients(nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        // Only the batch's last shard can hold the run's last sequence.
        lastTerm = isLast ? Gradients(nIn: net.nIn, nRec: net.nRec, nOut: net.nOut) : Gradients(nIn: 0, nRec: 0, nOut: 0)
        missingLastTerm = .none(batch: size)
        switch config.gradient {
        case .adjoint: computer = AdjointGradient(batch: size, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut, kernel: config.kernel)
        case .traces: computer = TraceGradient(batch: size, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        case .bptt: computer = BPTTGradient(batch: size, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut, throughReset: config.bpttThroughReset)
        }
        bptt = config.compareGradients
            ? (BPTTGradient(batch: size, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut, throughReset: config.bpttThroughReset),
               Gradients(nIn: net.nIn, nRec: net.nRec, nOut: net.nOut))
            : nil
        seq.lossFunction = config.readout.loss
        if initial.patterns.isFrozen {
            for b in 0..<size { seq.setSequence(b, input: initial.inputSpikes, target: initial.target) }
        }
    }
}

/// Trains a network on a task's patterns (the same frozen pattern in every sequence, as in the
/// tutorial, or one pattern per sequence). One iteration = `batchSize` sequences simulated with
/// frozen weights, their mean gradient, and one optimizer step (NEST's batch semantics,
/// docs/mathematics.md §4.3).
///
/// The batch is split into shards of at most `shardSize` sequences, independent of the thread
/// count; `config.threads` workers simulate shards concurrently and the shard gradients are
/// summed in shard order, so results are bitwise identical for any number of threads.
public final class Trainer<S: Scalar>: @unchecked Sendable {
    /// Sequences per shard.
    public static var shardSize: Int { 8 }

    public let config: TrainingConfig
    public let initial: NetworkInit
    public let net: Network<S>
    /// Mean gradient of the last batch.
    public let gradients: Gradients<S>
    /// With `compareGradients`: the batch's BPTT gradient.
    private let bpttGradients: Gradients<S>?
    public let optimizer: Optimizer
    public private(set) var optimizerState: OptimizerState<S>
    let shards: [Shard<S>]

    public internal(set) var iteration = 0
    public internal(set) var results: [IterationResult] = []
    /// After the last iteration, if it differs from the final state: the weights and optimizer
    /// state a longer run would have. The run's last sequence keeps NEST's L(T-1) term (its forced
    /// final update), a longer run leaves it out (§6.2); a checkpoint stores this state so that
    /// resuming continues exactly as one long run.
    public private(set) var continuation: (weights: [Matrix<S>], optimizerState: OptimizerState<S>)?
    /// Recordings of the chosen iterations (NEST's recorders).
    public let recorder: Recorder

    public init(config: TrainingConfig, initial: NetworkInit, recording: RecordingOptions = RecordingOptions()) {
        self.config = config
        self.initial = initial
        let B = config.optimizer.batchSize, T = initial.steps
        let net = Network<S>(initial, config: config)
        self.net = net
        shards = stride(from: 0, to: B, by: Self.shardSize).map {
            Shard(first: $0, size: min(Self.shardSize, B - $0), steps: T, config: config, net: net, nRecord: recording.nRecord, initial: initial,
                  isLast: $0 + Self.shardSize >= B)
        }
        recorder = Recorder(recording, iterations: config.iterations, batch: B, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        gradients = Gradients(nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        bpttGradients = config.compareGradients ? Gradients(nIn: net.nIn, nRec: net.nRec, nOut: net.nOut) : nil
        optimizer = Optimizer(config.optimizer)
        optimizerState = optimizer.initialState(sizes: net.trained.map(\.count))
    }

    /// Forward pass and gradient of one shard (runs on a worker thread).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    private func simulate(_ shard: Shard<S>) {
        let seq = shard.seq
        for b in 0..<seq.batch { seq.isFirstOfRun.p[b] = (iteration == 0 && shard.first + b == 0) ? 1 : 0 }
        seq.forward(net, learningWindow: config.resolvedLearningWindow, kernel: config.kernel)
        shard.gradients.zero()
        if shard.missingLastTerm.lastOfRun != nil { shard.lastTerm.zero() }
        let ctx = GradientContext(cReg: config.recurrent.cReg, missingLastTerm: shard.missingLastTerm, kernel: config.kernel)
        shard.computer.accumulate(net, seq, ctx, into: shard.gradients, term: shard.lastTerm)
        if let (computer, g) = shard.bptt {
            g.zero()
            computer.accumulate(net, seq, ctx, into: g, term: shard.lastTerm)  // BPTT ignores the e-prop term
        }
    }

    /// Runs one iteration and returns its result.
    @discardableResult
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func step() -> IterationResult {
        precondition(iteration < config.iterations, "the run has all \(config.iterations) iterations")
        let start = ContinuousClock.now
        let B = config.optimizer.batchSize, T = initial.steps, nOut = net.nOut
        loadPatterns()
        let workers = min(config.threads, shards.count)
        if workers <= 1 {
            for shard in shards { simulate(shard) }
        } else {
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for i in stride(from: w, to: shards.count, by: workers) { simulate(shards[i]) }
            }
        }
        // Fixed reduction order: shard 0, 1, ...
        gradients.zero()
        var lossPerSequence: [Double] = [], lossPerReadout = [Double](repeating: 0, count: nOut), spikes = 0.0, correct = 0
        // Regression: the tutorial's sum over steps; cross entropy: NEST's example's mean over the window.
        let lossScale = config.readout.loss == .crossEntropy ? Double(config.resolvedLearningWindow) : 1
        for shard in shards {
            recorder.observe(iteration: iteration, firstSequence: iteration * B + shard.first, shard.seq, net, eL: config.recurrent.eL, eLOut: config.readout.eL)
            gradients.add(shard.gradients)
            let seq = shard.seq
            for b in 0..<seq.batch {
                lossPerSequence.append(seq.loss[(b * nOut)..<((b + 1) * nOut)].reduce(0, +) / lossScale)
                for k in 0..<nOut { lossPerReadout[k] += seq.loss[b * nOut + k] / Double(B) / lossScale }
                if seq.isCorrect(b) { correct += 1 }
            }
            for q in 0..<seq.spikeCount.count { spikes += Double(seq.spikeCount.p[q]) }
        }
        let averageOver = config.averageGradient ? config.resolvedLearningWindow : nil
        if let last = shards.last, last.missingLastTerm.lastOfRun != nil {
            // The run's last step: a longer run steps without the last sequence's L(T-1) term,
            // NEST's forced final update with it.
            let longer = Gradients<S>(nIn: net.nIn, nRec: net.nRec, nOut: nOut)
            longer.add(gradients)
            longer.finish(batchSize: B, averageOver: averageOver)
            let weights = net.trained.map { $0.converted(to: S.self) }
            var state = optimizerState
            applyUpdate(&state, to: weights, longer)
            continuation = (weights, state)
            gradients.add(last.lastTerm)
        }
        gradients.finish(batchSize: B, averageOver: averageOver)
        let comparison = bpttGradients.map { compareWithBPTT($0, batchSize: B, averageOver: averageOver) }
        applyUpdate(&optimizerState, to: net.trained, gradients)
        net.refreshTransposes()

        let elapsed = ContinuousClock.now - start
        var result = IterationResult(
            iteration: iteration, loss: lossPerSequence.reduce(0, +) / Double(B), lossPerSequence: lossPerSequence,
            lossPerReadout: lossPerReadout, rateHz: spikes / Double(B * net.nRec * T) * 1000,
            seconds: elapsed.seconds)
        if config.readout.loss == .crossEntropy { result.accuracy = Double(correct) / Double(B) }
        (result.gradientCosine, result.gradientNormRatio) = (comparison?.cosine, comparison?.normRatio)
        results.append(result)
        iteration += 1
        if iteration == config.iterations { recorder.finish(net) }
        return result
    }

    /// The batch's BPTT gradient (summed over shards in order, finished like the e-prop one) against
    /// the e-prop gradient in `gradients`, per trained matrix.
    private func compareWithBPTT(_ bptt: Gradients<S>, batchSize B: Int, averageOver: Int?) -> (cosine: [Double], normRatio: [Double]) {
        bptt.zero()
        for shard in shards { bptt.add(shard.bptt!.gradients) }
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
        if let r = results.last, !r.loss.isFinite { return "loss (\(r.loss))" }
        func firstBad(_ m: Matrix<S>) -> Int? {
            let p = m.p
            var sum: S = 0  // NaN and infinity propagate through the sum: one branch-free pass
            for i in 0..<m.count { sum += p[i] * 0 }
            guard !sum.isFinite else { return nil }
            return (0..<m.count).first { !p[$0].isFinite }
        }
        for shard in shards where firstBad(shard.seq.v) != nil { return "membrane voltage V_m" }
        let names = TrainedMatrix.allCases.map { "gradient of \($0.name)" } + TrainedMatrix.allCases.map(\.name)
        for (m, name) in zip(gradients.all + net.trained, names) {
            if let i = firstBad(m) { return "\(name)[\(i / m.cols), \(i % m.cols)] (\(m.p[i]))" }
        }
        return nil
    }

    /// Loads this batch's input patterns and targets (unless frozen) and NEST's left-out L(T-1)
    /// terms of its sequences.
    private func loadPatterns() {
        let B = config.optimizer.batchSize, patterns = initial.patterns
        if !patterns.isFrozen {  // frozen patterns were loaded once, when the shards were made
            for shard in shards {
                for b in 0..<shard.seq.batch {
                    let p = patterns.sequence(iteration * B + shard.first + b)
                    shard.seq.setSequence(b, input: p.input, target: p.target)
                }
            }
        }
        for shard in shards {
            shard.missingLastTerm = config.nestMissingLearningSignal && config.gradient != .bptt  // an e-prop artefact
                ? MissingLastTerm.of(patterns, first: iteration * B + shard.first, count: shard.seq.batch, total: config.iterations * B)
                : .none(batch: shard.seq.batch)
        }
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
