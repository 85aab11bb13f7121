import Foundation

/// Estimates of the memory and disk a run needs, checked before any work.
public enum Resources {
    /// Bytes the engine allocates for a configuration: histories and state per shard of at most
    /// `Trainer.shardSize` sequences, gradient accumulators per shard, the weights with their
    /// copies and optimizer state, the task's patterns, the recordings, and the process's own
    /// baseline (runtime and OpenBLAS buffers). Counted from the shapes the engine allocates
    /// (`SequenceBuffers`, `AdjointGradient`, `TraceGradient`, `Trainer`, `TrainingRun`, `Recorder`).
    public static func memoryBytes(_ c: TrainingConfig, recording r: RecordingOptions = RecordingOptions()) -> Double {
        let scalar = c.precision == .float ? 4.0 : 8.0
        let (nIn, nRec, nOut, T) = (Double(c.nIn), Double(c.nRec), Double(c.nOut), Double(c.sequence))
        let B = Double(c.optimizer.batchSize)
        let shardSize = Double(Trainer<Float>.shardSize)
        let shards = (B / shardSize).rounded(.up)
        // Sequences with histories in memory at once: one per worker (Trainer's workspaces).
        let workspaces = max(min(Double(c.threads), shards), 1), resident = workspaces
        let nRecord = Double(min(r.nRecord, c.nRec))
        let w = nRec * (nIn + nRec) + nOut * nRec  // weights of the three trained matrices
        // Per sequence and step: x, target, z, psi, L, u, err, errBar, the W~ history (BLAS
        // kernel), the recorded v and a (scalars); the spike lists (Int32 indices, Int counts).
        let wTilde = (c.kernel != .sparse && c.gradient == .adjoint) || c.gradient == .bptt ? nRec : 0  // W~ or dE/dI history
        let perStep = (nIn + 3 * nOut + 3 * nRec + wTilde + 2 * nRecord) * scalar + (nIn + nRec) * 4 + 16
        // Per shard its gradient; per workspace the sparse accumulators G_in^T and G_rec^T, trace
        // matrices, and their allocation overhead (120 kB, above what was measured with
        // --batch-size 20000 --sequence 2).
        let traces = c.gradient == .traces ? 5 * nRec * (nIn + nRec) : 0
        let comparison = c.compareGradients ? resident * T * nRec * scalar : 0  // BPTT's dE/dI history
        let perShard = w * scalar
        let perWorkspace = (nRec * (nIn + nRec) + traces) * scalar + 120e3
        // Weights, their transposes, Adam's moments, the batch gradient, the last iteration's
        // continuation (gradient and weights), the last finite weights.
        let global = w * scalar * (1 + 1 + (c.optimizer.kind == .adam ? 2 : 0) + 1 + 2 + 1) + w * scalar  // + last shard's term
        // Patterns: one dense pattern in double ([n_in + n_out, T]); generated trials keep up to
        // three batches of input spikes, a byte a step and input.
        let patterns = (nIn + nOut) * T * 8 + (c.task == .evidenceAccumulation ? 3 * B * nIn * T : 0)
        // Held-out evaluation: forward buffers of one sequence per worker.
        let evaluation = c.testData == nil ? 0 : Double(c.threads) * T * perStep
        let recordings = Double(r.iterations.count(total: c.iterations)) * B * recordedSequenceBytes(c, r)
        let baseline = 40e6
        let comparisonPerShard = c.compareGradients ? w * scalar : 0, comparisonPerWorkspace = c.compareGradients ? (w + nRec * (nIn + nRec)) * scalar : 0
        return resident * T * perStep + shards * (perShard + comparisonPerShard) + workspaces * (perWorkspace + comparisonPerWorkspace) + comparison + global + patterns + evaluation + recordings + baseline
    }

    /// Bytes of the recordings of one sequence (in memory and on disk, double precision):
    /// multimeters, spikes (input rate as configured, recurrent up to 100 Hz), weight-recorder events.
    static func recordedSequenceBytes(_ c: TrainingConfig, _ r: RecordingOptions) -> Double {
        let (nIn, nRec, nOut, T) = (Double(c.nIn), Double(c.nRec), Double(c.nOut), Double(c.sequence))
        let spikes = T * (c.inputSpikeProb * nIn + 0.1 * nRec) * 12
        return T * (Double(min(r.nRecord, c.nRec)) * 5 + nOut * 5 + 2) * 8 + spikes
            + T * 0.1 * Double(r.nRecordW * (r.nRecordW + c.nOut)) * 32
    }

    /// Bytes of the outputs: weights (initial and final), recordings, the checkpoint (weights
    /// and Adam's moments in the run's precision, and the results), and the per-iteration arrays.
    public static func diskBytes(_ c: TrainingConfig, recording r: RecordingOptions) -> Double {
        let scalar = c.precision == .float ? 4.0 : 8.0
        let (nIn, nRec, nOut) = (Double(c.nIn), Double(c.nRec), Double(c.nOut))
        let w = nRec * (nIn + nRec) + nOut * nRec
        let weights = (w + nRec * nOut + nRec) * 8 * 2
        let recorded = Double(r.iterations.count(total: c.iterations)) * Double(c.optimizer.batchSize) * recordedSequenceBytes(c, r)
        let checkpoint = w * scalar * (c.optimizer.kind == .adam ? 3 : 1) + Double(c.iterations) * (200 + 20 * Double(c.optimizer.batchSize))
        let patterns = (nIn + nOut) * Double(c.sequence) * 8
        return weights + recorded + checkpoint + patterns + Double(c.iterations) * (64 + 8 * (Double(c.optimizer.batchSize) + nOut))
    }

    /// Refuses a run whose memory would not fit this machine or whose outputs would not fit the
    /// disk holding `out` (or its nearest existing parent).
    public static func check(_ c: TrainingConfig, recording: RecordingOptions, out: URL) throws {
        let memory = memoryBytes(c, recording: recording), physical = Double(ProcessInfo.processInfo.physicalMemory)
        if memory > 0.8 * physical {
            throw ResourceError(String(format: "the configuration needs about %.1f GB of memory, more than 80%% of this machine's %.1f GB; reduce --batch-size, --n-rec or --sequence", memory / 1e9, physical / 1e9))
        }
        var dir = out.standardizedFileURL
        while !FileManager.default.fileExists(atPath: dir.path) && dir.path != "/" { dir = dir.deletingLastPathComponent() }
        var fs = statvfs()
        if statvfs(dir.path, &fs) == 0 {
            let free = Double(fs.f_bavail) * Double(fs.f_frsize)
            let need = diskBytes(c, recording: recording)
            if need > free {
                throw ResourceError(String(format: "--out %@: the outputs need about %.1f MB but only %.1f MB are free there; record fewer iterations (--record-iterations) or choose another folder", out.path, need / 1e6, free / 1e6))
            }
        }
    }
}

public struct ResourceError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
