import Foundation

/// Estimates of the memory and disk a run needs, checked before any work.
public enum Resources {
    /// Bytes the engine allocates for a configuration (histories, state, gradients, optimizer).
    public static func memoryBytes(_ c: TrainingConfig) -> Double {
        let scalar = c.precision == .float ? 4.0 : 8.0
        let (nIn, nRec, nOut, T) = (Double(c.nIn), Double(c.nRec), Double(c.nOut), Double(c.sequence))
        let B = Double(c.optimizer.batchSize)
        // Per sequence: x, z, psi, L, W~ histories and small readout histories.
        let histories = B * T * (nIn + 4 * nRec + 5 * nOut)
        let weights = nRec * (nIn + nRec) + nOut * nRec
        let shards = (B / 8).rounded(.up)
        // Weights, transposes, Adam m and v, gradient per shard and in total.
        let perMatrix = weights * (2 + 2 + 1 + shards)
        let traces = c.gradient == .traces ? shards * 5 * nRec * (nIn + nRec) : 0
        return (histories + perMatrix + traces) * scalar
    }

    /// Bytes of the outputs (weights, recordings of the recorded iterations, checkpoint).
    public static func diskBytes(_ c: TrainingConfig, recording r: RecordingOptions) -> Double {
        let (nIn, nRec, nOut, T) = (Double(c.nIn), Double(c.nRec), Double(c.nOut), Double(c.sequence))
        let weights = (nRec * (nIn + nRec) + nOut * nRec) * 8
        let recorded = Double(r.iterations.count(total: c.iterations)) * Double(c.optimizer.batchSize)
        // Per recorded sequence: multimeters, spikes (input rate as configured, recurrent up to
        // 100 Hz), weight-recorder events.
        let spikes = T * (c.inputSpikeProb * nIn + 0.1 * nRec) * 12
        let perSequence = T * (Double(min(r.nRecord, c.nRec)) * 5 + nOut * 5 + 2) * 8 + spikes
            + T * 0.1 * Double(r.nRecordW * (r.nRecordW + c.nOut)) * 32
        return weights * 5 + recorded * perSequence + Double(c.iterations) * 64
    }

    /// Refuses a run whose memory would not fit this machine or whose outputs would not fit the
    /// disk holding `out` (or its nearest existing parent).
    public static func check(_ c: TrainingConfig, recording: RecordingOptions, out: URL) throws {
        let memory = memoryBytes(c), physical = Double(ProcessInfo.processInfo.physicalMemory)
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
