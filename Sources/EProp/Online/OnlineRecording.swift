import Foundation

/// The recordings of an online run, with NEST 3.10's recordables, time stamps and file layout (the legacy generation's
/// `Recorder` writes the same names): multimeters on recurrent neurons 0 ..< nRecord and on every readout, sampling
/// each step of the recorded iterations (`OnlineStimulus.iterationSteps`),
/// and NEST's weight recorder on senders 0 ..< nRecordW of the inputs and the recurrent neurons and targets
/// 0 ..< nRecordW of the recurrent neurons plus every readout, keeping the spikes of recorded iterations.
///
/// A sample of step t is stamped t + 1 (ms, dt = 1); `V_m` is post-reset; `learning_signal` at step t is L(t - 2),
/// the history entry the synapses read then (eprop-online-spec.md §1.9).
/// - `rec_V_m`, `rec_surrogate_gradient`, `rec_learning_signal` [nRecord, S] (adaptive models also `rec_V_th_adapt`,
///   `rec_adaptation`), `rec_times_ms` [S];
/// - `out_V_m`, `out_readout_signal`, `out_target_signal`, `out_error_signal` [nOut, S], `out_times_ms` [S];
/// - `wr_times_ms`, `wr_weights`, `wr_sender_pop` (0 input, 1 recurrent), `wr_sender_idx`, `wr_target_pop`
///   (0 recurrent, 1 readout), `wr_target_idx` [events]; `recorded_iterations` (1-based).
struct OnlineRecording {
    let options: RecordingOptions
    let nRecord: Int
    let recNames: [String]
    static let outNames = ["V_m", "readout_signal", "target_signal", "error_signal"]
    private(set) var times: [Double] = []
    private var rec: [[Double]]
    private var out: [[Double]]
    private(set) var recordedIterations: [Int] = []

    /// Reserves the samples of `recordedSteps` steps, so that sampling does not allocate.
    init(_ options: RecordingOptions, parameters p: OnlineNetworkParameters, recordedSteps: Int) {
        self.options = options
        nRecord = min(options.nRecord, p.nRec)
        // The adaptive recordables where every recorded neuron has them (NEST refuses them on the others).
        let adaptive = (0..<nRecord).allSatisfy { p.recurrentParameters(ofNeuron: $0).model.isAdaptive }
        recNames = ["V_m", "surrogate_gradient", "learning_signal"] + (adaptive ? ["V_th_adapt", "adaptation"] : [])
        func reserved(_ count: Int) -> [[Double]] {
            (0..<count).map { _ in var a: [Double] = []; a.reserveCapacity(recordedSteps); return a }
        }
        rec = reserved(recNames.count * nRecord)
        out = reserved(Self.outNames.count * p.nOut)
        times.reserveCapacity(recordedSteps)
    }

    /// The weight recorder's connections; its window is the whole task (NEST's examples: start = total offset,
    /// stop = total offset + task).
    static func weightRecorder(_ options: RecordingOptions, _ p: OnlineNetworkParameters, _ s: OnlineStimulus) -> OnlineWeightRecorderSelection? {
        guard options.iterations != .none, options.nRecordW > 0 else { return nil }
        let w = options.nRecordW
        return OnlineWeightRecorderSelection(
            inputSenders: Array(0..<min(w, p.nIn)), recurrentSenders: Array(0..<min(w, p.nRec)),
            recurrentTargets: Array(0..<min(w, p.nRec)), readoutTargets: Array(0..<p.nOut),
            start: s.lossStart, stop: s.iterationSteps(s.iterations).lowerBound)
    }

    /// Samples the state after step `sim.time - 1`.
    mutating func sample<S: Scalar>(_ sim: OnlineSimulation<S>) {
        let t = sim.time - 1
        times.append(Double(t + 1) * sim.parameters.resolution)
        let r = sim.recurrent, slot = (t & 1) * r.n
        // In the order of recNames and outNames.
        for j in 0..<nRecord {
            let eL = r.eL(j)
            rec[j].append(Double(r.v[j]) + eL)
            rec[nRecord + j].append(Double(r.psi[slot + j]))
            rec[2 * nRecord + j].append(Double(sim.learningSignal[j]))
            if recNames.count > 3 {
                rec[3 * nRecord + j].append(Double(r.vThAdapt[j]) + eL)
                rec[4 * nRecord + j].append(Double(r.a[j]))
            }
        }
        let o = sim.readout, eLOut = sim.parameters.readout.eL, nOut = o.n
        for k in 0..<nOut {
            out[k].append(Double(o.v[k]) + eLOut)
            out[nOut + k].append(Double(o.readoutSignal[k]))
            out[2 * nOut + k].append(Double(o.targetSignal[k]))
            out[3 * nOut + k].append(Double(o.err[k]))
        }
    }

    mutating func iterationRecorded(_ n: Int) { recordedIterations.append(n) }

    func write<S: Scalar>(_ sim: OnlineSimulation<S>, to folder: RunFolder) throws {
        let S = times.count, nOut = sim.readout.n
        try folder.write(NPYArray(shape: [recordedIterations.count], dtype: .int32, values: recordedIterations.map { Double($0 + 1) }), "recorded_iterations.npy")
        try folder.write(NPYArray(shape: [S], values: times), "rec_times_ms.npy")
        try folder.write(NPYArray(shape: [S], values: times), "out_times_ms.npy")
        for (q, name) in recNames.enumerated() {
            try folder.write(NPYArray(shape: [nRecord, S], values: (0..<nRecord).flatMap { rec[q * nRecord + $0] }), "rec_\(name).npy")
        }
        for (q, name) in Self.outNames.enumerated() {
            try folder.write(NPYArray(shape: [nOut, S], values: (0..<nOut).flatMap { out[q * nOut + $0] }), "out_\(name).npy")
        }
        // The weight recorder's events of the recorded iterations (a spike of stamp s belongs to the iteration whose
        // steps hold s - 1).
        let st = sim.stimulus, w = sim.weightRecord
        // Sorted by (stamp, sender population, sender, target population, target): NEST's file order is its delivery
        // order, which depends on its threads; this order is a fixed one.
        let kept = w.stamps.indices.filter { e in
            let step = Int(w.stamps[e]) - 1 - st.lossStart
            return step >= 0 && recordedIterations.contains(step / st.iterationSteps(0).count)
        }.sorted { a, b in
            [Int(w.stamps[a]), Int(w.senderPopulations[a]), Int(w.senders[a]), Int(w.targetPopulations[a]), Int(w.targets[a])]
                .lexicographicallyPrecedes([Int(w.stamps[b]), Int(w.senderPopulations[b]), Int(w.senders[b]), Int(w.targetPopulations[b]), Int(w.targets[b])])
        }
        let n = kept.count
        try folder.write(NPYArray(shape: [n], values: kept.map { Double(w.stamps[$0]) * sim.parameters.resolution }), "wr_times_ms.npy")
        try folder.write(NPYArray(shape: [n], values: kept.map { w.weights[$0] }), "wr_weights.npy")
        try folder.write(NPYArray(shape: [n], dtype: .int32, values: kept.map { Double(w.senderPopulations[$0]) }), "wr_sender_pop.npy")
        try folder.write(NPYArray(shape: [n], dtype: .int32, values: kept.map { Double(w.senders[$0]) }), "wr_sender_idx.npy")
        try folder.write(NPYArray(shape: [n], dtype: .int32, values: kept.map { Double(w.targetPopulations[$0]) }), "wr_target_pop.npy")
        try folder.write(NPYArray(shape: [n], dtype: .int32, values: kept.map { Double(w.targets[$0]) }), "wr_target_idx.npy")
    }
}
