// One time step of the forward pass: `SequenceBuffers.advance` on a batch of B sequences of the
// tutorial task (100 inputs, nRec ALIF neurons, 2 readouts, T = 1258).
//
// Each benchmark iteration resets the state (`beginSequence`, not measured) and then measures
// the steps s = 0 ..< 1000 of the sequence (scalingFactor .kilo), so wall time, throughput and
// malloc counts are reported per time step (`--scale` shows them per block of 1000 steps).
// Allocation, task generation and `setSequence` happen once, in the benchmark's setup.
//
// advance() is the forward pass only: it is the same for both gradient methods (the gradient
// is computed after the forward pass, over the stored histories; see the Iteration target).

import Benchmark
import EProp

let recurrentSizes = [100, 200, 400, 800, 1600]
let batchSizes = [1, 8, 32]

/// Network, task and histories of one (precision, nRec, batch) configuration.
final class StepState<S: Scalar>: @unchecked Sendable {
    let net: Network<S>
    let seq: SequenceBuffers<S>

    init(nRec: Int, batch: Int, precision: Precision) {
        BLASRuntime.setThreads(1)
        var c = TrainingConfig()
        c.nRec = nRec
        c.optimizer.batchSize = batch
        c.precision = precision
        let initial = InfiniteLoopTask.generate(c)
        net = Network<S>(initial, config: c)
        seq = SequenceBuffers<S>(batch: batch, steps: initial.steps, nIn: initial.nIn, nRec: initial.nRec, nOut: initial.nOut)
        for b in 0..<batch { seq.setSequence(b, input: initial.inputSpikes, target: initial.target) }
        precondition(seq.steps >= BenchmarkScalingFactor.kilo.rawValue, "a block of 1000 steps needs T >= 1000")
    }
}

/// A benchmark's state from its setup to its teardown, then released: the benchmark objects live
/// as long as the process, and the large configurations hold hundreds of MB each.
final class StateBox<T>: @unchecked Sendable { var value: T? }

func registerTimeStep<S: Scalar>(_: S.Type, _ precision: Precision, nRec: Int, batch: Int, kernel: Kernel) {
    let box = StateBox<StepState<S>>()
    Benchmark(
        "step \(precision.rawValue) nRec=\(nRec) B=\(batch) \(kernel.rawValue)",
        configuration: .init(
            metrics: [.wallClock, .throughput, .mallocCountTotal],
            tags: ["precision": precision.rawValue, "nRec": "\(nRec)", "B": "\(batch)", "kernel": kernel.rawValue],
            timeUnits: .nanoseconds,  // per step, full resolution
            warmupIterations: 1,
            scalingFactor: .kilo,
            maxDuration: .milliseconds(1500),
            maxIterations: 200
        )
    ) { benchmark in
        let seq = box.value!.seq, net = box.value!.net
        seq.beginSequence(learningWindow: seq.steps)
        benchmark.startMeasurement()
        for s in benchmark.scaledIterations { seq.advance(s, net, kernel: kernel) }
        benchmark.stopMeasurement()
    } setup: {
        box.value = StepState<S>(nRec: nRec, batch: batch, precision: precision)
    } teardown: {
        box.value = nil
    }
}

let benchmarks: @Sendable () -> Void = {
    for nRec in recurrentSizes {
        for batch in batchSizes {
            registerTimeStep(Float.self, .float, nRec: nRec, batch: batch, kernel: .sparse)
            registerTimeStep(Double.self, .double, nRec: nRec, batch: batch, kernel: .sparse)
        }
    }
    // The dense BLAS reference kernel, Float32, smallest and largest batch (not nRec 1600 with
    // B 32: about 5 ms per step, 5 s per block of 1000 steps).
    for nRec in recurrentSizes {
        for batch in [1, 32] where !(nRec == 1600 && batch == 32) {
            registerTimeStep(Float.self, .float, nRec: nRec, batch: batch, kernel: .blas)
        }
    }
}
