import Foundation

/// The outcome of one training iteration (one batch, one optimizer step).
public struct IterationResult: Sendable {
    /// 0-based iteration index.
    public let iteration: Int
    /// Mean over the batch's sequences of the tutorial's loss 0.5 sum_{s,k} (y - y*)^2.
    public let loss: Double
    /// `[B]` loss of each sequence.
    public let lossPerSequence: [Double]
    /// `[nOut]` loss of each readout, mean over the batch.
    public let lossPerReadout: [Double]
    /// Mean firing rate of the recurrent neurons in this iteration (spikes/s).
    public let rateHz: Double
    /// Wall time of the iteration (s).
    public let seconds: Double
}

/// Trains a network on a frozen task: every sequence sees the same input pattern and target,
/// as in the tutorial. One iteration = `batchSize` sequences simulated side by side with frozen
/// weights, their mean gradient, and one optimizer step (NEST's batch semantics, spec 4.3).
public final class Trainer<S: Scalar>: @unchecked Sendable {
    public let config: TrainingConfig
    public let initial: NetworkInit
    public let net: Network<S>
    public let seq: SequenceBuffers<S>
    public let gradients: Gradients<S>
    public let optimizer: Optimizer<S>
    let computer: any GradientComputer<S>
    /// Input columns that spike at step 1 of every sequence: NEST leaves out their L(T-1) term.
    let stepOneInputs: [Int]

    public private(set) var iteration = 0
    public private(set) var results: [IterationResult] = []
    /// Recordings of the chosen iterations (NEST's recorders).
    public let recorder: Recorder

    public init(config: TrainingConfig, initial: NetworkInit, recording: RecordingOptions = RecordingOptions()) {
        self.config = config
        self.initial = initial
        let B = config.optimizer.batchSize, T = initial.steps
        net = Network(initial, config: config)
        seq = SequenceBuffers(batch: B, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut, nRecord: recording.nRecord)
        recorder = Recorder(recording, iterations: config.iterations, batch: B, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        gradients = Gradients(nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        optimizer = Optimizer(config.optimizer, shapes: [net.wIn, net.wRec, net.wOut].map { ($0.rows, $0.cols) })
        switch config.gradient {
        case .adjoint: computer = AdjointGradient(batch: B, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        case .traces: computer = TraceGradient(batch: B, steps: T, nIn: net.nIn, nRec: net.nRec, nOut: net.nOut)
        }
        stepOneInputs = (0..<net.nIn).filter { initial.inputSpikes[$0, 1] != 0 }
        for b in 0..<B { seq.setSequence(b, input: initial.inputSpikes, target: initial.target) }
    }

    /// Runs one iteration and returns its result.
    @discardableResult
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func step() -> IterationResult {
        let start = ContinuousClock.now
        let B = config.optimizer.batchSize, T = seq.steps
        let totalSequences = config.iterations * B
        for b in 0..<B { seq.isFirstOfRun.p[b] = (iteration == 0 && b == 0) ? 1 : 0 }

        seq.forward(net, learningWindow: config.resolvedLearningWindow, kernel: config.kernel)
        recorder.observe(iteration: iteration, seq, net, eL: config.recurrent.eL, eLOut: config.readout.eL)

        // Spec 6.2: the term is missing for every sequence that has a successor in the run.
        let dropped = (0..<B).map { b -> [Int] in
            let k = iteration * B + b
            return config.nestMissingLearningSignal && k < totalSequences - 1 ? stepOneInputs : []
        }
        gradients.zero()
        computer.accumulate(net, seq, GradientContext(cReg: config.recurrent.cReg, droppedLastTerm: dropped, kernel: config.kernel), into: gradients)
        gradients.finish(batchSize: B, averageOver: config.averageGradient ? config.resolvedLearningWindow : nil)
        optimizer.apply(weights: [net.wIn, net.wRec, net.wOut], gradients: gradients.all)
        for j in 0..<net.nRec { net.wRec[j, j] = 0 }  // no autapses, whatever Wmin is
        net.refreshTransposes()

        var spikes = 0.0
        for q in 0..<(B * net.nRec) { spikes += Double(seq.spikeCount.p[q]) }
        let elapsed = ContinuousClock.now - start
        let nOut = net.nOut
        let result = IterationResult(
            iteration: iteration, loss: seq.loss.reduce(0, +) / Double(B),
            lossPerSequence: (0..<B).map { b in seq.loss[(b * nOut)..<((b + 1) * nOut)].reduce(0, +) },
            lossPerReadout: (0..<nOut).map { k in (0..<B).map { seq.loss[$0 * nOut + k] }.reduce(0, +) / Double(B) },
            rateHz: spikes / Double(B * net.nRec * T) * 1000,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        results.append(result)
        iteration += 1
        if iteration == config.iterations { recorder.finish(net) }
        return result
    }
}
