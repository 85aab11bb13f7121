/// Combines the shards of a batch, simulated by the processes of a group, into the batch's
/// gradient sum and per-sequence outcomes that every process then holds, bitwise the same for any
/// number of processes (README "Several processes").
///
/// Each shard's gradient is one vector of `vectorLength` scalars (the trained matrices in
/// `TrainedMatrix` order, then the BPTT ones with `compareGradients`). The vector's elements are
/// cut into one slice per rank. Rank q receives slice q of every shard (all-to-all) and sums it
/// over the shards in shard order, starting from zero, which is the summation a single process
/// does element by element; the summed slices are then gathered by all (all-gather). A process
/// moves about `shards x vectorLength / size + vectorLength` scalars per batch, instead of every
/// shard's whole gradient. The outcomes (losses, correct decisions, spikes, checks) are gathered
/// whole.
final class GradientExchange<S: Scalar>: @unchecked Sendable {
    let group: any ProcessGroup
    /// Number of shards in a batch, this process's (consecutive) ones, and each rank's count.
    let shardCount: Int
    let owned: Range<Int>
    let shardsPerRank: [Int]
    /// Scalars per shard gradient vector.
    let vectorLength: Int
    /// Elements of the vector each rank sums, in rank order (whole 8-byte words).
    let slices: [Range<Int>]
    /// Doubles per shard in `outcomes`.
    let outcomeStride: Int

    /// `[rank q][owned shard][slices[q]]`: what this process sends.
    private let send: UnsafeMutablePointer<S>
    /// `[shard][slices[rank]]`: what it receives (`send` itself in a single process).
    private let receive: UnsafeMutablePointer<S>
    /// `[vectorLength]` padded to whole words: the sum over the batch's shards (the trainer's
    /// gradients view it).
    let summed: UnsafeMutablePointer<S>
    /// `[shard][outcomeStride]`.
    private let outcomes: UnsafeMutablePointer<Double>
    private let paddedLength: Int
    /// Per rank, the bytes of each collective (the same every batch).
    private let sendBytes: [Int], receiveBytes: [Int], summedBytes: [Int], outcomeBytes: [Int]

    init(group: any ProcessGroup, shardCount: Int, vectorLength: Int, outcomeStride: Int) {
        self.group = group
        self.shardCount = shardCount
        self.vectorLength = vectorLength
        self.outcomeStride = outcomeStride
        owned = group.block(of: shardCount, rank: group.rank)
        shardsPerRank = (0..<group.size).map { group.block(of: shardCount, rank: $0).count }
        let perWord = max(1, 8 / MemoryLayout<S>.stride)
        paddedLength = (vectorLength + perWord - 1) / perWord * perWord
        let words = paddedLength / perWord, P = group.size
        slices = (0..<P).map { q in (q * words / P * perWord)..<((q + 1) * words / P * perWord) }
        send = .allocate(capacity: max(owned.count * paddedLength, 1))
        send.initialize(repeating: 0, count: max(owned.count * paddedLength, 1))
        if P == 1 {
            receive = send
        } else {
            let n = max(shardCount * slices[group.rank].count, 1)
            receive = .allocate(capacity: n)
            receive.initialize(repeating: 0, count: n)
        }
        let stride = MemoryLayout<S>.stride, mine = slices[group.rank].count, ownedCount = owned.count
        sendBytes = slices.map { ownedCount * $0.count * stride }
        receiveBytes = shardsPerRank.map { $0 * mine * stride }
        summedBytes = slices.map { $0.count * stride }
        outcomeBytes = shardsPerRank.map { $0 * outcomeStride * 8 }
        summed = .allocate(capacity: paddedLength)
        summed.initialize(repeating: 0, count: paddedLength)
        outcomes = .allocate(capacity: shardCount * outcomeStride)
        outcomes.initialize(repeating: 0, count: shardCount * outcomeStride)
    }

    deinit {
        if receive != send { receive.deallocate() }
        send.deallocate()
        summed.deallocate()
        outcomes.deallocate()
    }

    /// Bytes this process receives from the others per batch: its slice of the other processes'
    /// shards, the other slices of the sum, the other shards' outcomes.
    var receivedBytes: Int {
        let others = shardCount - owned.count, mine = slices[group.rank].count
        return (others * mine + paddedLength - mine) * MemoryLayout<S>.stride + others * outcomeStride * 8
    }

    /// The rank that simulates `shard`.
    func owner(of shard: Int) -> Int {
        (0..<group.size).first { group.block(of: shardCount, rank: $0).contains(shard) }!
    }

    /// Where owned `shard` can accumulate its gradient vector in place, so that `deposit` has
    /// nothing to copy: in the send buffer when there is one process; nil otherwise.
    func storage(ofShard shard: Int) -> UnsafeMutablePointer<S>? {
        group.size == 1 ? send + (shard - owned.lowerBound) * paddedLength : nil
    }

    /// Places the gradient of owned `shard`, the concatenation of `matrices`, in the send buffer
    /// (a worker thread may call this for its shard while others do for theirs).
    func deposit(shard: Int, _ matrices: [Matrix<S>]) {
        if let inPlace = storage(ofShard: shard) {
            precondition(matrices.first?.p == inPlace, "a shard of a single process accumulates in place")
            return
        }
        let local = shard - owned.lowerBound
        var m = 0, mStart = 0  // the matrix holding element `e`, and its first element
        for slice in slices {
            let dst = send + owned.count * slice.lowerBound + local * slice.count
            var e = slice.lowerBound
            while e < min(slice.upperBound, vectorLength) {
                while e >= mStart + matrices[m].count { mStart += matrices[m].count; m += 1 }
                let n = min(slice.upperBound, vectorLength, mStart + matrices[m].count) - e
                (dst + (e - slice.lowerBound)).update(from: matrices[m].p + (e - mStart), count: n)
                e += n
            }
        }
    }

    /// The outcome record of `shard` (`outcomeStride` doubles), written by its owner.
    func outcome(_ shard: Int) -> UnsafeMutablePointer<Double> { outcomes + shard * outcomeStride }

    /// After every owned shard is deposited: `summed` holds the sum over all shards, in shard
    /// order, and every shard's outcome record is filled. Collective.
    func exchange() {
        group.allToAll(send: send, sendBytes: sendBytes, receive: receive, receiveBytes: receiveBytes)
        let mine = slices[group.rank], n = mine.count
        let out = summed + mine.lowerBound
        out.update(repeating: 0, count: n)
        for shard in 0..<shardCount {
            let row = receive + shard * n
            for e in 0..<n { out[e] += row[e] }
        }
        group.allGather(summed, bytes: summedBytes)
        group.allGather(outcomes, bytes: outcomeBytes)
    }
}
