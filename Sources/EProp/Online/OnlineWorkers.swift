import Foundation
import Synchronization

/// Work a helper thread can take over: its share of the columns of one entry (`OnlineProjection.runShare`).
protocol OnlineShare: AnyObject {
    /// Runs share `worker` (1 ..< threads) of the job posted last.
    func runShare(_ worker: Int)
}

/// Helper threads for the online engine (`threads` - 1 of them): each waits, spinning, for a job, runs its share of
/// the job's columns and reports back. A job per projection and entry costs a post and a wait (no locks, no
/// allocation); the synapses of different columns are independent, so results are bitwise those of one thread.
/// Spinning keeps the hand-over to ~0.1 µs, which a job of a few µs needs; the threads hold their cores while the
/// simulation exists (`stop()` ends them).
final class OnlineWorkers: @unchecked Sendable {
    let count: Int
    private let posted = Atomic<Int>(0)
    /// Shares finished, over all posts.
    private let finished = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// The job of the current post; written before `posted` is released, read after it is acquired.
    private var job: OnlineShare?

    /// - threads: total threads including the caller's (>= 2).
    init(threads: Int) {
        count = threads - 1
        for w in 1..<threads {
            let thread = Thread { [self] in loop(w) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    private func loop(_ w: Int) {
        var seen = 0
        while true {
            var e = posted.load(ordering: .acquiring)
            while e == seen {
                if stopping.load(ordering: .relaxed) { return }
                e = posted.load(ordering: .acquiring)
            }
            job!.runShare(w)
            seen = e
            finished.wrappingAdd(1, ordering: .releasing)
        }
    }

    /// Hands `share` to every helper; the caller then runs share 0 and calls `wait()`.
    func post(_ share: OnlineShare) {
        job = share
        posted.wrappingAdd(1, ordering: .releasing)
    }

    /// Returns when every helper has finished the last post.
    func wait() {
        let expected = posted.load(ordering: .relaxed) &* count
        while finished.load(ordering: .acquiring) != expected {}
        job = nil
    }

    /// Ends the helper threads (they return from their loops).
    func stop() { stopping.store(true, ordering: .relaxed) }
}
