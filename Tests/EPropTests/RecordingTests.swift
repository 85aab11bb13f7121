import EProp
import Foundation
import XCTest

/// Recordings from NEST's initial state equal NEST's recorders (multimeters, spike recorder,
/// weight recorder) once NEST's time stamps are applied.
final class RecordingTests: XCTestCase {
    /// The bound, relative to the largest magnitude of each recorded series (values cross
    /// zero, so a pointwise relative error is meaningless there). Measured: 9e-16.
    static let rtol = 1e-9

    func testRecordingsEqualNEST() throws {
        let initial = try NESTExport.load(referenceDir)
        var c = TrainingConfig()
        (c.nIn, c.nRec, c.nOut, c.sequence, c.iterations, c.precision) = (initial.nIn, initial.nRec, initial.nOut, initial.steps, 5, .double)
        let t = train(Double.self, c, initial)
        let r = t.recorder
        let lastStamp = Double(c.iterations * c.sequence + 2)

        XCTAssertEqual(r.recTimes, try reference("rec_times_ms.npy").values)
        XCTAssertEqual(r.outTimes, try reference("out_times_ms.npy").values)
        for (prefix, series) in [("rec", r.rec), ("out", r.out)] {
            for (name, rows) in series {
                let ref = try reference("\(prefix)_\(name).npy").values
                let scale = ref.map(abs).max()!
                let d = Difference(rows.flatMap { $0 }, ref)
                XCTAssertLessThanOrEqual(d.maxAbs, Self.rtol * scale, "\(prefix)_\(name): \(d)")
            }
        }
        for (pop, spikes) in [("in", r.spikesIn), ("rec", r.spikesRec)] {
            let times = try reference("spikes_\(pop)_times_ms.npy").values
            let senders = try reference("spikes_\(pop)_senders.npy").values
            // NEST's export also holds the forced final-update spikes after the last sequence.
            let keep = times.indices.filter { times[$0] <= lastStamp }
            assertSameSpikes(spikes.times, spikes.senders, keep.map { times[$0] }, keep.map { Int32(senders[$0]) }, sequence: c.sequence)
        }

        // Weight recorder: same events (after sorting), same weights.
        typealias Event = (time: Double, sp: Int32, s: Int32, tp: Int32, t: Int32, w: Double)
        func sorted(_ e: [Event]) -> [Event] { e.sorted { ($0.time, $0.sp, $0.s, $0.tp, $0.t) < ($1.time, $1.sp, $1.s, $1.tp, $1.t) } }
        let cols = try ["wr_times_ms", "wr_sender_pop", "wr_sender_idx", "wr_target_pop", "wr_target_idx", "wr_weights"].map { try reference("\($0).npy").values }
        let ref = sorted(cols[0].indices.map { (cols[0][$0], Int32(cols[1][$0]), Int32(cols[2][$0]), Int32(cols[3][$0]), Int32(cols[4][$0]), cols[5][$0]) })
        let mine = sorted(r.weightEvents.map { ($0.time, $0.senderPop, $0.sender, $0.targetPop, $0.target, $0.weight) })
        XCTAssertEqual(mine.count, ref.count, "weight-recorder event count")
        func key(_ e: Event) -> [Double] { [e.time, Double(e.sp), Double(e.s), Double(e.tp), Double(e.t)] }
        if let i = mine.indices.first(where: { $0 < ref.count && key(mine[$0]) != key(ref[$0]) }) {
            XCTFail("weight-recorder event \(i) differs: \(mine[i]) vs NEST \(ref[i])")
        }
        let d = Difference(mine.map(\.w), ref.map(\.w))
        XCTAssertLessThanOrEqual(d.maxAbs, Self.rtol * ref.map { abs($0.w) }.max()!, "wr_weights: \(d)")
    }

    /// By default only the first and the last iteration are recorded.
    func testDefaultRecordsFirstAndLastIteration() {
        var c = smallConfig()
        c.iterations = 4
        let t = Trainer<Double>(config: c, initial: InfiniteLoopTask.generate(c))
        for _ in 0..<c.iterations { t.step() }
        XCTAssertEqual(t.recorder.recordedIterations, [0, 3])
        XCTAssertEqual(t.recorder.recTimes.count, 2 * c.sequence)
        XCTAssertEqual(t.recorder.recTimes.last, NESTStamp.recurrent + Double(4 * c.sequence - 1))
    }
}
