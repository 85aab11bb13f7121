import Foundation

/// The processes that train one model together, data-parallel (README "Several processes"): every
/// process holds the whole model, simulates its block of each batch's shards, and takes part in
/// the exchange that gives every process the same batch gradient (`GradientExchange`).
///
/// Collective calls: every process of the group makes the same calls in the same order, from one
/// thread. Byte counts are multiples of 8.
public protocol ProcessGroup: AnyObject {
    /// This process's index, 0 ..< size. Rank 0 writes the run folder.
    var rank: Int { get }
    var size: Int { get }
    /// Personalized exchange: `send` holds `sendBytes[q]` bytes for each rank q in rank order; on
    /// return `receive` holds `receiveBytes[q]` bytes from each rank q, in rank order.
    func allToAll(send: UnsafeRawPointer, sendBytes: [Int], receive: UnsafeMutableRawPointer, receiveBytes: [Int])
    /// In place: `buffer` is made of one part per rank, `bytes[q]` long, in rank order; this
    /// process's part is filled on entry, every part on return.
    func allGather(_ buffer: UnsafeMutableRawPointer, bytes: [Int])
    /// `bytes` bytes (any number) at `buffer` from rank `root` to every process.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int)
    /// The largest of every process's `value`.
    func maximum(_ value: Int) -> Int
    /// Ends every process of the group with `code`, after an error on this one that the others
    /// cannot learn of (they may be waiting in a collective call).
    func abort(code: Int32) -> Never
    /// Leaves the group at the end of the process (collective).
    func finish()
}

/// A run in one process (the default).
public final class SingleProcess: ProcessGroup {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allToAll(send: UnsafeRawPointer, sendBytes: [Int], receive: UnsafeMutableRawPointer, receiveBytes: [Int]) {
        if UnsafeRawPointer(receive) != send { receive.copyMemory(from: send, byteCount: sendBytes[0]) }
    }
    public func allGather(_ buffer: UnsafeMutableRawPointer, bytes: [Int]) {}
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) {}
    public func maximum(_ value: Int) -> Int { value }
    public func abort(code: Int32) -> Never { exit(code) }
    public func finish() {}
}

extension ProcessGroup {
    /// Every process's `text`, in rank order.
    public func allGather(text: String) -> [String] {
        let utf8 = Array(text.utf8)
        var lengths = [Int](repeating: 0, count: size)
        lengths[rank] = utf8.count
        lengths.withUnsafeMutableBytes { allGather($0.baseAddress!, bytes: [Int](repeating: 8, count: size)) }
        let padded = lengths.map { ($0 + 7) / 8 * 8 }
        var all = [UInt8](repeating: 0, count: padded.reduce(0, +) + 8)
        let mine = padded[..<rank].reduce(0, +)
        all.replaceSubrange(mine..<(mine + utf8.count), with: utf8)
        all.withUnsafeMutableBytes { allGather($0.baseAddress!, bytes: padded) }
        var start = 0
        return (0..<size).map { q in
            defer { start += padded[q] }
            return String(decoding: all[start..<(start + lengths[q])], as: UTF8.self)
        }
    }

    /// Whether every process got here without an error: each passes its own failure (nil if
    /// none) and all learn everyone's, so that all stop together, before any starts work, when
    /// one failed. The failures, by rank.
    public func agree(_ failure: (code: Int32, message: String)?) -> [(rank: Int, code: Int32, message: String)] {
        let texts = allGather(text: failure.map { "\($0.code) \($0.message)" } ?? "")
        return texts.enumerated().compactMap { q, t in
            guard let space = t.firstIndex(of: " "), let code = Int32(t[..<space]) else { return nil }
            return (q, code, String(t[t.index(after: space)...]))
        }
    }

    /// Shards `0 ..< count` in consecutive blocks, one per rank in rank order, the first
    /// `count % size` ranks one shard more than the others: the block of rank `q`.
    public func block(of count: Int, rank q: Int) -> Range<Int> {
        let base = count / size, extra = count % size
        let start = q * base + min(q, extra)
        return start..<(start + base + (q < extra ? 1 : 0))
    }
}

/// The group this process belongs to: the job of Open MPI processes when a launcher (`mpirun`;
/// `srun` through PMI or PMIx) started it, one process otherwise. Call once.
public func joinProcessGroup() throws -> any ProcessGroup {
    let env = ProcessInfo.processInfo.environment
    guard let variable = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].first(where: { env[$0] != nil }) else { return SingleProcess() }
    #if EPROP_DENSE_MPI
    return MPIProcessGroup()
    #else
    throw ProcessGroupError(description: "an MPI launcher started this process (\(variable) is set), but this eprop-dense was built without Open MPI; install Open MPI's development files (Debian: libopenmpi-dev, as scripts/setup.sh does) and rebuild, or run it without mpirun")
    #endif
}

/// A process group that cannot be formed or used.
public struct ProcessGroupError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

extension RunPlan {
    /// What must be the same on every process of a group, as a hash (FNV-1a, 64 bits): the
    /// configuration but the thread count, the recordings, the checkpoint cadence, the initial
    /// state and stored patterns (generated ones follow from the configuration's seed).
    public var fingerprint: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func add(_ bytes: UnsafeRawBufferPointer) {
            for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
        }
        func add(_ m: Matrix<Double>) { add(UnsafeRawBufferPointer(start: m.p, count: m.count * 8)) }
        var c = config
        c.threads = 1
        let text = ((try? recordJSON(c)) ?? Data()) + Data("\(recording) \(checkpointEvery) \(resumedFrom?.path ?? "")".utf8)
        text.withUnsafeBytes(add)
        for m in [initial.wInRec, initial.wRecRec, initial.wRecOut, initial.wOutRecFeedback, initial.tauM] { add(m) }
        for d in [initial.patterns.dataset, test?.dataset] { Data("\(d?.digest ?? "-")".utf8).withUnsafeBytes(add) }
        if initial.patterns.isStored {
            for k in 0..<initial.patterns.count {
                let p = initial.patterns.sequence(k)
                add(p.input)
                add(p.target)
            }
        }
        return String(hash, radix: 16)
    }
}
