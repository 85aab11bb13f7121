#if EPROP_DENSE_MPI
import CMPI
import Foundation

/// The processes of an Open MPI job (`MPI_COMM_WORLD`). The only file that talks to MPI.
///
/// Collectives move 8-byte words (`MPI_UINT64_T`): counts up to 2^31 - 1 words (16 GiB) per
/// part. MPI's default error handler applies: a failed call, or a process of the job that dies,
/// ends the whole job (mpirun names the rank).
public final class MPIProcessGroup: ProcessGroup {
    public let rank: Int
    public let size: Int
    private let world = eprop_mpi_comm_world()

    /// Joins the job (`MPI_Init_thread`, MPI called from one thread only). Once per process.
    public init() {
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(world, &r)
        MPI_Comm_size(world, &n)
        (rank, size) = (Int(r), Int(n))
    }

    /// Leaves the job (`MPI_Finalize`); call once, by every process, at the end.
    public func finish() { MPI_Finalize() }

    private static func words(_ bytes: Int) -> Int32 {
        precondition(bytes % 8 == 0, "MPI parts are whole 8-byte words")
        guard let w = Int32(exactly: bytes / 8) else {
            fatalError("an MPI message of \(bytes) bytes exceeds 2^31 - 1 words")
        }
        return w
    }

    private static func layout(_ bytes: [Int]) -> (counts: [Int32], displacements: [Int32]) {
        let counts = bytes.map(words)
        var displacements: [Int32] = [], at = 0
        for c in counts {
            displacements.append(Int32(at))
            at += Int(c)
        }
        precondition(at <= Int(Int32.max), "an MPI exchange of more than 2^31 - 1 words")
        return (counts, displacements)
    }

    public func allToAll(send: UnsafeRawPointer, sendBytes: [Int], receive: UnsafeMutableRawPointer, receiveBytes: [Int]) {
        let s = Self.layout(sendBytes), r = Self.layout(receiveBytes)
        MPI_Alltoallv(send, s.counts, s.displacements, eprop_mpi_word(), receive, r.counts, r.displacements, eprop_mpi_word(), world)
    }

    public func allGather(_ buffer: UnsafeMutableRawPointer, bytes: [Int]) {
        let l = Self.layout(bytes)
        MPI_Allgatherv(eprop_mpi_in_place(), 0, eprop_mpi_word(), buffer, l.counts, l.displacements, eprop_mpi_word(), world)
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) {
        guard let n = Int32(exactly: bytes) else { fatalError("an MPI broadcast of \(bytes) bytes exceeds 2^31 - 1 bytes") }
        MPI_Bcast(buffer, n, eprop_mpi_byte(), Int32(root), world)
    }

    public func maximum(_ value: Int) -> Int {
        var mine = value, all = 0
        MPI_Allreduce(&mine, &all, 1, eprop_mpi_long(), eprop_mpi_max(), world)
        return all
    }

    public func abort(code: Int32) -> Never {
        MPI_Abort(world, code)
        exit(code)
    }
}
#endif
