import Foundation

/// What an online run reports when it is done.
public struct OnlineRunSummary: Sendable {
    public var iterations: Int
    /// NEST's loss per iteration.
    public var loss: [Double]
    public var recurrentSpikes: Int
    /// Wall time of the simulation alone (s), and per iteration (the whole simulation / iterations).
    public var seconds: Double
    public var secondsPerIteration: Double
    public var peakMemoryMB: Double
    public var folder: URL
}

/// Trains an online-generation network from its export (`OnlineExport`) and writes the run folder: NEST's names
/// for every array, so that a run folder compares with a NEST export file by file.
/// - `loss.npy` [iterations]; `spikes_rec_senders.npy` (int32, 0-based recurrent neuron) and
///   `spikes_rec_times_ms.npy` (the spike's stamp, emitting step + 1, times dt), in time then neuron order;
/// - `w_in_rec_init.npy`, `w_rec_rec_init.npy`, `w_rec_out_init.npy`, `w_out_rec_feedback.npy` and the
///   `*_final.npy` weights [post, pre] as NEST reports them after `Simulate` (each presynaptic column as of its
///   last event, spec §4.6);
/// - `input_spike_bool_seq.npy` [n_in, T] and `target_signal_seq.npy` [n_out, T], the pattern the run repeats;
/// - the recordings (`OnlineRecording`);
/// - `run.json`: the parameters, the source folder, the recording options, timings.
public enum OnlineRun {
    public static func train(
        _ spec: OnlineRunSpec, precision: Precision, recording: RecordingOptions = RecordingOptions(), threads: Int = 1,
        in folder: RunFolder, commandLine: [String], gitCommit: String,
        onIteration: (_ iteration: Int, _ loss: Double, _ seconds: Double) -> Void = { _, _, _ in }
    ) throws -> OnlineRunSummary {
        try recording.validate(iterations: spec.stimulus.iterations)
        switch precision {
        case .float: return try train(Float.self, spec, recording, threads, folder, commandLine, gitCommit, onIteration)
        case .double: return try train(Double.self, spec, recording, threads, folder, commandLine, gitCommit, onIteration)
        }
    }

    private static func train<S: Scalar>(
        _: S.Type, _ spec: OnlineRunSpec, _ options: RecordingOptions, _ threads: Int, _ folder: RunFolder, _ commandLine: [String],
        _ gitCommit: String, _ onIteration: (Int, Double, Double) -> Void
    ) throws -> OnlineRunSummary {
        let s = spec.stimulus
        let sim = try OnlineSimulation<S>(
            parameters: spec.parameters, weights: spec.weights, stimulus: s,
            weightRecorder: OnlineRecording.weightRecorder(options, spec.parameters, s), threads: threads)
        var recording = OnlineRecording(
            options, parameters: spec.parameters,
            recordedSteps: options.iterations.count(total: s.iterations) * s.iterationSteps(0).count)
        // Iteration n's loss is complete at the end of its steps: simulate up to each such step in turn, step by step
        // where the multimeters sample.
        let start = DispatchTime.now().uptimeNanoseconds
        var last = start
        for n in 0..<s.iterations {
            let (first, end) = (s.iterationSteps(n).lowerBound, s.iterationSteps(n).upperBound)
            if options.iterations.contains(n, total: s.iterations) {
                sim.simulate(steps: first - sim.time)
                while sim.time < end {
                    sim.simulate(steps: 1)
                    recording.sample(sim)
                }
                recording.iterationRecorded(n)
            } else {
                sim.simulate(steps: end - sim.time)
            }
            let now = DispatchTime.now().uptimeNanoseconds
            onIteration(n, sim.loss[n], Double(now - last) / 1e9)
            last = now
        }
        sim.run()  // the steps after the last iteration (the forced final update)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if let n = sim.loss.firstIndex(where: { !$0.isFinite }) {
            throw OnlineParameterError("loss", "finite values required; iteration \(n + 1) diverged (lower optimizer.eta)")
        }

        let p = spec.parameters, (nIn, nRec, nOut) = (p.nIn, p.nRec, p.nOut)
        let w = spec.weights
        try folder.write(NPYArray(shape: [sim.loss.count], values: sim.loss), "loss.npy")
        if s.classify { try folder.write(NPYArray(shape: [sim.errors.count], values: sim.errors), "error.npy") }
        try folder.write(NPYArray(shape: [sim.spikeNeurons.count], dtype: .int32, values: sim.spikeNeurons.map(Double.init)), "spikes_rec_senders.npy")
        try folder.write(
            NPYArray(shape: [sim.spikeSteps.count], values: sim.spikeSteps.map { Double($0 + 1) * p.resolution }), "spikes_rec_times_ms.npy")
        for (name, shape, values) in [
            ("w_in_rec", [nRec, nIn], w.wIn), ("w_rec_rec", [nRec, nRec], w.wRec), ("w_rec_out", [nOut, nRec], w.wOut),
        ] {
            try folder.write(NPYArray(shape: shape, values: values), "\(name)_init.npy")
        }
        try folder.write(NPYArray(shape: [nRec, nOut], values: w.feedback), "w_out_rec_feedback.npy")
        try OnlineExport.writeStimulus(spec, to: folder)
        try recording.write(sim, to: folder)
        for (kind, name, shape) in [
            (OnlineProjectionKind.inputToRecurrent, "w_in_rec", [nRec, nIn]), (.recurrentToRecurrent, "w_rec_rec", [nRec, nRec]),
            (.recurrentToReadout, "w_rec_out", [nOut, nRec]),
        ] {
            try folder.write(NPYArray(shape: shape, values: sim.weights(kind, stored: true)), "\(name)_final.npy")
            try folder.write(NPYArray(shape: shape, dtype: .bool, values: sim.mask(kind).map { $0 ? 1 : 0 }), "mask_\(name.dropFirst(2)).npy")
        }
        let summary = OnlineRunSummary(
            iterations: sim.loss.count, loss: sim.loss, recurrentSpikes: sim.spikeSteps.count, seconds: seconds,
            secondsPerIteration: seconds / Double(max(s.iterations, 1)), peakMemoryMB: RunOutput.peakMemoryMB(),
            folder: folder.final)
        let record = OnlineRunRecord(
            generation: "online (NEST 3.10 eprop_iaf* / eprop_readout / eprop_synapse)", status: "complete",
            eprop_dense_version: RunOutput.version, git_commit: gitCommit, command_line: commandLine,
            init_source: spec.source, date_utc: ISO8601DateFormatter().string(from: Date()), precision: S.self == Float.self ? .float : .double,
            threads: threads,
            parameters: p, recording: options, sequence_steps: s.sequence, group_size: s.groupSize,
            learning_window: s.lossWindow, iterations: s.iterations, simulated_steps: s.steps,
            loss: sim.loss, error: s.classify ? sim.errors : nil, eta_per_iteration: Self.etaPerIteration(s), recurrent_spikes: summary.recurrentSpikes,
            timings: .init(total_s: seconds, per_iteration_mean_s: summary.secondsPerIteration),
            peak_memory_mb: summary.peakMemoryMB)
        do { try recordJSON(record).write(to: folder.url("run.json"), options: .atomic) } catch {
            throw RunFolderError("writing \(folder.url("run.json").path) failed: \(plainMessage(error))")
        }
        try folder.commit()
        return summary
    }
}

extension OnlineRun {
    /// The eta set last before each iteration's first step, nil without eta changes.
    static func etaPerIteration(_ s: OnlineStimulus) -> [Double]? {
        guard !s.etaChangeSteps.isEmpty else { return nil }
        return (0..<s.iterations).map { n in
            let first = n * s.groupSize * s.sequence
            return s.etaChangeSteps.indices.last { s.etaChangeSteps[$0] <= first }.map { s.etaChangeValues[$0] } ?? 1e-4
        }
    }
}

/// `run.json` of an online run.
struct OnlineRunRecord: Encodable {
    struct Timings: Encodable {
        var total_s: Double
        var per_iteration_mean_s: Double
    }
    var generation: String
    var status: String
    var eprop_dense_version: String
    var git_commit: String
    var command_line: [String]
    var init_source: String
    var date_utc: String
    var precision: Precision
    var threads: Int
    var parameters: OnlineNetworkParameters
    var recording: RecordingOptions
    var sequence_steps: Int
    var group_size: Int
    var learning_window: Int
    var iterations: Int
    var simulated_steps: Int
    var loss: [Double]
    var error: [Double]?
    /// The eta in force at the start of each iteration where the run changes it (the N-MNIST example's phases).
    var eta_per_iteration: [Double]?
    var recurrent_spikes: Int
    var timings: Timings
    var peak_memory_mb: Double
}
