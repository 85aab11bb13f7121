// One training iteration: `Trainer.step()` = forward pass of B sequences of the tutorial task
// (100 inputs, nRec ALIF neurons, 2 readouts, T = 1258 steps), their e-prop gradient, one Adam
// step. Sparse kernel (the default), one OpenBLAS thread, nothing recorded.
//
// Trainer construction and task generation happen once, in the benchmark's setup; each
// benchmark iteration is one trainer.step(). The mallocs counted are step()'s bookkeeping
// outside the time loop (per-iteration result arrays, gradient lists), not the time loop.

import Benchmark
import EProp

let recurrentSizes = [100, 200, 400, 800, 1600]
let batchSizes = [1, 8, 32]

/// The traces gradient costs O(B T nRec (nIn + nRec)) per iteration, and Float64 about 2-5 times
/// Float32 (its trace matrices leave the caches sooner). Only the configurations that took less
/// than about 2 s per iteration on the reference machine are run; README.md lists the others
/// and their measured times.
func tracesIncluded(_ precision: Precision, nRec: Int, batch: Int) -> Bool {
    switch (precision, nRec, batch) {
    case (_, 100, _), (_, 200, 1), (_, 200, 8), (_, 400, 1): return true
    case (.float, 400, 8), (.float, 800, 1): return true
    default: return false
    }
}

/// A benchmark's state from its setup to its teardown, then released: the benchmark objects live
/// as long as the process, and the large configurations hold up to 2 GB each.
final class StateBox<T>: @unchecked Sendable { var value: T? }

final class TrainState<S: Scalar>: @unchecked Sendable {
    let trainer: Trainer<S>

    init(_ gradient: GradientMethod, _ precision: Precision, nRec: Int, batch: Int, threads: Int) {
        BLASRuntime.setThreads(1)
        var c = TrainingConfig()
        c.nRec = nRec
        c.optimizer.batchSize = batch
        c.iterations = 1_000_000  // never reached: no end-of-run bookkeeping inside the benchmark
        c.precision = precision
        c.gradient = gradient
        c.kernel = .sparse
        c.threads = threads
        let initial = InfiniteLoopTask.generate(c)
        var rec = RecordingOptions()
        rec.iterations = .none  // record nothing
        trainer = Trainer<S>(config: c, initial: initial, recording: rec)
    }
}

func registerIteration<S: Scalar>(
    _: S.Type, _ gradient: GradientMethod, _ precision: Precision, nRec: Int, batch: Int, threads: Int = 1
) {
    let suffix = threads == 1 ? "" : " threads=\(threads)"
    let box = StateBox<TrainState<S>>()
    Benchmark(
        "iteration \(gradient.rawValue) \(precision.rawValue) nRec=\(nRec) B=\(batch)\(suffix)",
        configuration: .init(
            metrics: [.wallClock, .throughput, .mallocCountTotal],
            tags: ["gradient": gradient.rawValue, "precision": precision.rawValue, "nRec": "\(nRec)", "B": "\(batch)", "threads": "\(threads)"],
            timeUnits: .microseconds,
            warmupIterations: 1,
            scalingFactor: .one,
            maxDuration: .seconds(2),
            maxIterations: 50
        )
    ) { _ in
        blackHole(box.value!.trainer.step().loss)
    } setup: {
        box.value = TrainState<S>(gradient, precision, nRec: nRec, batch: batch, threads: threads)
    } teardown: {
        box.value = nil
    }
}

let benchmarks: @Sendable () -> Void = {
    for gradient in [GradientMethod.adjoint, .traces] {
        for nRec in recurrentSizes {
            for batch in batchSizes {
                if gradient == .adjoint || tracesIncluded(.float, nRec: nRec, batch: batch) {
                    registerIteration(Float.self, gradient, .float, nRec: nRec, batch: batch)
                }
                if gradient == .adjoint || tracesIncluded(.double, nRec: nRec, batch: batch) {
                    registerIteration(Double.self, gradient, .double, nRec: nRec, batch: batch)
                }
            }
        }
    }
    // Two worker threads over the 4 shards of a batch of 32 (adjoint, Float32).
    for nRec in recurrentSizes {
        registerIteration(Float.self, .adjoint, .float, nRec: nRec, batch: 32, threads: 2)
    }
}
