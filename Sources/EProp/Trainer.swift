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

    init(first: Int, size: Int, steps T: Int, config: TrainingConfig, net: Network<S>, nRecord: Int, initial: NetworkInit) {
        self.first = first
        seq = SequenceBuffers(batch: size, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut, nRecord: nRecord)
        gradients = Gradients(nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        switch config.gradient {
        case .adjoint: computer = AdjointGradient(batch: size, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut, kernel: config.kernel)
        case .traces: computer = TraceGradient(batch: size, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        }
        seq.lossFunction = config.readout.loss
        if initial.patterns.isFrozen {
            for b in 0..<size { seq.setSequence(b, input: initial.inputSpikes, target: initial.target) }
        }
    }
}

/// Trains a network on a task's patterns (the same frozen pattern in every sequence, as in the
/// tutorial, or one pattern per sequence). One iteration = `batchSize` sequences simulated with
/// frozen weights, their mean gradient, and one optimizer step (NEST's batch semantics, spec 4.3).
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
    public let optimizer: Optimizer<S>
    let shards: [Shard<S>]
    /// Input columns of each sequence of the current batch that spike at step 1 of the next sequence.
    private var nextStepOneInputs: [[Int]] = []

    public internal(set) var iteration = 0
    public internal(set) var results: [IterationResult] = []
    /// After the last iteration: weights and optimizer state as a longer run would have them.
    /// They differ from the final ones only by NEST's missing L(T-1) term (spec 6.2), which a
    /// run's last sequence keeps; a checkpoint stores this state so that resuming continues
    /// exactly as one long run.
    public private(set) var continuation: (weights: [Matrix<S>], optimizer: Optimizer<S>)?
    /// Recordings of the chosen iterations (NEST's recorders).
    public let recorder: Recorder

    public init(config: TrainingConfig, initial: NetworkInit, recording: RecordingOptions = RecordingOptions()) {
        self.config = config
        self.initial = initial
        let B = config.optimizer.batchSize, T = initial.steps
        let net = Network<S>(initial, config: config)
        self.net = net
        shards = stride(from: 0, to: B, by: Self.shardSize).map {
            Shard(first: $0, size: min(Self.shardSize, B - $0), steps: T, config: config, net: net, nRecord: recording.nRecord, initial: initial)
        }
        recorder = Recorder(recording, iterations: config.iterations, batch: B, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        gradients = Gradients(nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        optimizer = Optimizer(config.optimizer, shapes: [net.wIn, net.wRec, net.wOut].map { ($0.rows, $0.cols) })
    }

    /// Forward pass and gradient of one shard (runs on a worker thread). With `continuing`, every
    /// sequence is treated as having a successor (the run goes on).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    private func simulate(_ shard: Shard<S>, into g: Gradients<S>? = nil, continuing: Bool = false) {
        let B = config.optimizer.batchSize, seq = shard.seq
        let totalSequences = continuing ? Int.max : config.iterations * B
        for b in 0..<seq.batch { seq.isFirstOfRun.p[b] = (iteration == 0 && shard.first + b == 0) ? 1 : 0 }
        seq.forward(net, learningWindow: config.resolvedLearningWindow, kernel: config.kernel)
        // Spec 6.2: the term is missing for every sequence that has a successor in the run.
        let dropped = (0..<seq.batch).map { b -> [Int] in
            let k = iteration * B + shard.first + b
            return config.nestMissingLearningSignal && k < totalSequences - 1 ? nextStepOneInputs[shard.first + b] : []
        }
        let g = g ?? shard.gradients
        g.zero()
        shard.computer.accumulate(net, seq, GradientContext(cReg: config.recurrent.cReg, droppedLastTerm: dropped, kernel: config.kernel), into: g)
    }

    /// Runs one iteration and returns its result.
    @discardableResult
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func step() -> IterationResult {
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
        if iteration == config.iterations - 1 { prepareContinuation() }
        gradients.finish(batchSize: B, averageOver: config.averageGradient ? config.resolvedLearningWindow : nil)
        optimizer.apply(weights: [net.wIn, net.wRec, net.wOut], gradients: gradients.all)
        for j in 0..<net.nRec { net.wRec[j, j] = 0 }  // no autapses, whatever Wmin is
        net.refreshTransposes()

        let elapsed = ContinuousClock.now - start
        var result = IterationResult(
            iteration: iteration, loss: lossPerSequence.reduce(0, +) / Double(B), lossPerSequence: lossPerSequence,
            lossPerReadout: lossPerReadout, rateHz: spikes / Double(B * net.nRec * T) * 1000,
            seconds: elapsed.seconds)
        if config.readout.loss == .crossEntropy { result.accuracy = Double(correct) / Double(B) }
        results.append(result)
        iteration += 1
        if iteration == config.iterations { recorder.finish(net) }
        return result
    }

    /// The first quantity of the last iteration that is NaN or infinite (loss, membrane voltage,
    /// gradients, weights), or nil.
    public func firstNonFinite() -> String? {
        if let r = results.last, !r.loss.isFinite { return "loss (\(r.loss))" }
        for shard in shards where !(0..<shard.seq.v.count).allSatisfy({ shard.seq.v.p[$0].isFinite }) {
            return "membrane voltage V_m"
        }
        for (name, m) in zip(["gradient of w_in_rec", "gradient of w_rec_rec", "gradient of w_rec_out", "w_in_rec", "w_rec_rec", "w_rec_out"],
                             gradients.all + [net.wIn, net.wRec, net.wOut]) {
            if let i = (0..<m.count).first(where: { !m.p[$0].isFinite }) { return "\(name)[\(i / m.cols), \(i % m.cols)] (\(m.p[i]))" }
        }
        return nil
    }

    /// Loads this batch's input patterns and targets (unless frozen) and, for NEST's missing
    /// L(T-1) term, the inputs that spike at step 1 of each sequence's successor.
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
        nextStepOneInputs = (0..<B).map { b in
            let next = patterns.sequence(iteration * B + b + 1).input
            return (0..<net.nIn).filter { next[$0, 1] != 0 }
        }
    }

    /// Before the last optimizer step (shard gradients ready): the step a longer run would take.
    private func prepareContinuation() {
        let B = config.optimizer.batchSize
        let alt = Gradients<S>(nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        let last = Gradients<S>(nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        let redo = config.nestMissingLearningSignal && !nextStepOneInputs[B - 1].isEmpty
        if redo { simulate(shards[shards.count - 1], into: last, continuing: true) }
        for (i, shard) in shards.enumerated() { alt.add(i == shards.count - 1 && redo ? last : shard.gradients) }
        alt.finish(batchSize: B, averageOver: config.averageGradient ? config.resolvedLearningWindow : nil)
        let weights = [net.wIn, net.wRec, net.wOut].map { $0.converted(to: S.self) }
        let opt = optimizer.copy()
        opt.apply(weights: weights, gradients: alt.all)
        for j in 0..<net.nRec { weights[1][j, j] = 0 }
        continuation = (weights, opt)
    }

    /// Sets the state of a checkpoint: completed iterations, their results, weights, optimizer.
    func restore(iteration: Int, results: [IterationResult], weights: [Matrix<S>], optimizer state: Optimizer<S>) {
        self.iteration = iteration
        self.results = results
        for (w, src) in zip([net.wIn, net.wRec, net.wOut], weights) { w.copy(from: src) }
        optimizer.restore(from: state)
        net.refreshTransposes()
    }
}
