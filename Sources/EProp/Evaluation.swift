import Foundation

/// The result of one evaluation on a held-out split with frozen weights.
public struct Evaluation: Codable, Sendable, Equatable {
    /// Training iterations completed when the weights were evaluated.
    public let iteration: Int
    public let samples: Int
    /// Mean over the samples of the loss, as training reports it (cross entropy: NEST's mean
    /// over the learning window of -sum_k pi*_k log pi_k).
    public let loss: Double
    /// Fraction of the samples classified right.
    public let accuracy: Double
    /// `[C][C]` counts: row = the sample's class, column = the class the network gave.
    public let confusion: [[Int]]
    /// Wall time of the evaluation (s).
    public let seconds: Double

    /// `[C]` accuracy of each class (NaN for a class the split has no sample of).
    public var accuracyPerClass: [Double] {
        confusion.enumerated().map { c, row in
            let n = row.reduce(0, +)
            return n == 0 ? .nan : Double(row[c]) / Double(n)
        }
    }
}

/// Evaluates a network on every sample of a split: forward passes only, the weights untouched.
/// Each sample is simulated alone (its histories stay in the cache, as in training), `threads`
/// samples side by side, and the results are combined in sample order, so they do not depend
/// on the thread count. The buffers are made once and reused by every evaluation.
public final class Evaluator<S: Scalar>: @unchecked Sendable {
    public let patterns: Patterns
    /// Samples in the split (each evaluated once, in the split's order): a dataset's samples or
    /// the stored patterns.
    public let samples: Int
    let config: TrainingConfig
    /// The kernel of the forward passes (the training run's).
    let kernel: Kernel
    /// `[threads]` buffers of one sequence.
    private let buffers: [SequenceBuffers<S>]
    /// `[samples]` loss, class and class given of each sample of the last evaluation.
    private let lossOf: UnsafeMutablePointer<Double>
    private let truth: UnsafeMutablePointer<Int>, given: UnsafeMutablePointer<Int>

    public init(config: TrainingConfig, kernel: Kernel, patterns: Patterns) {
        self.config = config
        self.kernel = kernel
        self.patterns = patterns
        let samples = patterns.dataset?.count ?? patterns.count
        self.samples = samples
        let (nIn, nRec, nOut, T) = (patterns.nIn, config.nRec, patterns.nOut, patterns.steps)
        buffers = (0..<min(config.threads, samples)).map { _ in
            let seq = SequenceBuffers<S>(batch: 1, steps: T, nIn: nIn, nRec: nRec, nOut: nOut)
            seq.lossFunction = config.readout.loss
            return seq
        }
        lossOf = .allocate(capacity: samples)
        (truth, given) = (.allocate(capacity: samples), .allocate(capacity: samples))
    }

    deinit {
        lossOf.deallocate()
        truth.deallocate()
        given.deallocate()
    }

    /// The split evaluated with `net`'s current weights, after `iteration` training iterations.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func evaluate(_ net: Network<S>, iteration: Int) -> Evaluation {
        let start = ContinuousClock.now
        let C = patterns.nOut, workers = buffers.count
        if workers > 1 {
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for k in stride(from: w, to: samples, by: workers) { simulate(sample: k, buffers[w], net) }
            }
        } else {
            for k in 0..<samples { simulate(sample: k, buffers[0], net) }
        }
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: C), count: C)
        for i in 0..<samples { confusion[truth[i]][given[i]] += 1 }
        let correct = (0..<C).map { confusion[$0][$0] }.reduce(0, +)
        var loss = 0.0
        for i in 0..<samples { loss += lossOf[i] }  // in sample order: independent of the threads
        return Evaluation(iteration: iteration, samples: samples, loss: loss / Double(samples),
                          accuracy: Double(correct) / Double(samples), confusion: confusion,
                          seconds: (ContinuousClock.now - start).seconds)
    }

    /// Simulates sample k in `seq` and stores its loss, class and class given.
    private func simulate(sample k: Int, _ seq: SequenceBuffers<S>, _ net: Network<S>) {
        // Regression: the tutorial's sum over steps; cross entropy: NEST's mean over the window.
        let lossScale = config.readout.loss == .crossEntropy ? Double(config.resolvedLearningWindow) : 1
        patterns.load(k, into: seq, row: 0)
        seq.isFirstOfRun.p[0] = 0
        seq.forward(net, learningWindow: config.resolvedLearningWindow, kernel: kernel)
        lossOf[k] = seq.loss.reduce(0, +) / lossScale
        (truth[k], given[k]) = (seq.targetClass(0), seq.predictedClass(0))
    }
}

extension Evaluation {
    /// Evaluates the trained run in `runFolder` (its configuration from `run.json`, its final
    /// weights `w_*_final.npy`) on `test`, with `threads` workers, in the run's precision.
    public static func ofRun(_ runFolder: URL, on test: EventDataset, threads: Int) throws -> (Evaluation, TrainingConfig) {
        struct Record: Decodable { let config: TrainingConfig, completed_iterations: Int, kernel: KernelResolution? }
        let url = runFolder.appendingPathComponent("run.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw RunFolderError("\(url.path): cannot be read; --evaluate needs the folder of a finished eprop-dense run")
        }
        let record: Record
        do { record = try recordDecoder().decode(Record.self, from: data) } catch {
            throw RunFolderError("\(url.path): not an eprop-dense run record (\(plainMessage(error)))")
        }
        var config = record.config
        config.threads = threads
        guard (test.nIn, test.nClasses, test.steps) == (config.nIn, config.nOut, config.sequence) else {
            throw ConfigError(parameter: "test_data", requirement: "\(test.url.path) has n_in \(test.nIn), \(test.nClasses) classes and sequence \(test.steps); the run in \(runFolder.path) has n_in \(config.nIn), n_out \(config.nOut) and sequence \(config.sequence)")
        }
        guard config.readout.loss == .crossEntropy else {
            throw ConfigError(parameter: "test_data", requirement: "the run in \(runFolder.path) is a regression (loss \(config.readout.loss.rawValue)); held-out classification needs a cross-entropy run")
        }
        let patterns = Patterns(dataset: test, shuffleSeed: nil)
        let initial = try NESTExport.load(runFolder, patterns: patterns, weights: "final")
        func run<S: Scalar>(_: S.Type) -> Evaluation {
            // The kernel training used (runs before `auto` had one fixed kernel).
            Evaluator<S>(config: config, kernel: record.kernel?.used ?? config.kernel.fixed ?? .sparse, patterns: patterns)
                .evaluate(Network<S>(initial, config: config), iteration: record.completed_iterations)
        }
        let e = config.precision == .float ? run(Float.self) : run(Double.self)
        if let failure = patterns.readFailure { throw RunFailure(description: failure) }
        return (e, config)
    }
}
