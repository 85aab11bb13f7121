import Foundation

/// The initial weights of an online e-prop network, NEST layout `[post, pre]`, row-major, Double (NEST holds
/// weights in double).
public struct OnlineWeights: Sendable, Equatable {
    /// W_in [nRec, nIn], W_rec [nRec, nRec] (diagonal ignored: there are no autapses), W_out [nOut, nRec] and the
    /// static feedback weights B [nRec, nOut] of `eprop_learning_signal_connection`.
    public var wIn: [Double]
    public var wRec: [Double]
    public var wOut: [Double]
    public var feedback: [Double]
    /// Sparse connectivity (NEST's N-MNIST example): per plastic projection, true where the synapse exists, in the
    /// layout of its weights; nil: all synapses (no autapses). Weights must be 0 where the mask is false, and the
    /// recurrent mask's diagonal false. Absent synapses are never trained and stay 0.
    public var maskIn: [Bool]?
    public var maskRec: [Bool]?
    public var maskOut: [Bool]?

    public init(
        wIn: [Double], wRec: [Double], wOut: [Double], feedback: [Double], maskIn: [Bool]? = nil, maskRec: [Bool]? = nil,
        maskOut: [Bool]? = nil
    ) {
        (self.wIn, self.wRec, self.wOut, self.feedback) = (wIn, wRec, wOut, feedback)
        (self.maskIn, self.maskRec, self.maskOut) = (maskIn, maskRec, maskOut)
    }

    /// Checks shapes, bounds and masks for a network of these sizes, naming the first array that fails.
    func validate(nIn: Int, nRec: Int, nOut: Int, optimizer o: OnlineOptimizerParameters) throws {
        try requireOnline(wIn.count == nRec * nIn, "weights.wIn", "shape [nRec, nIn] = [\(nRec), \(nIn)] required")
        try requireOnline(wRec.count == nRec * nRec, "weights.wRec", "shape [nRec, nRec] = [\(nRec), \(nRec)] required")
        try requireOnline(wOut.count == nOut * nRec, "weights.wOut", "shape [nOut, nRec] = [\(nOut), \(nRec)] required")
        try requireOnline(feedback.count == nRec * nOut, "weights.feedback", "shape [nRec, nOut] = [\(nRec), \(nOut)] required")
        for (field, name, w, mask) in [("wIn", "in_rec", wIn, maskIn), ("wRec", "rec_rec", wRec, maskRec), ("wOut", "rec_out", wOut, maskOut)] {
            try requireOnline(
                w.allSatisfy { $0 >= o.wMin && $0 <= o.wMax }, "weights.\(field)",
                "every weight within [Wmin, Wmax] = [\(o.wMin), \(o.wMax)] required")
            guard let mask else { continue }
            try requireOnline(mask.count == w.count, "mask_\(name)", "the shape of w_\(name) (\(w.count) entries) required")
            if let k = w.indices.first(where: { !mask[$0] && w[$0] != 0 }) {
                let pre = name == "in_rec" ? nIn : nRec
                throw OnlineParameterError(
                    "weights.\(field)", "0 where mask_\(name) is false required (entry [\(k / pre), \(k % pre)] is \(w[k]))")
            }
        }
        if let mask = maskRec, let j = (0..<nRec).first(where: { mask[$0 * nRec + $0] }) {
            throw OnlineParameterError("mask_rec_rec", "a false diagonal required (no autapses; [\(j), \(j)] is true)")
        }
    }
}

/// What the network receives, on NEST's absolute step grid (eprop-online-spec.md §3.2).
public struct OnlineStimulus: Sendable, Equatable {
    /// T_sim: the number of NEST update steps simulated (`Simulate(T_sim ms)` at dt = 1 ms runs steps 0 ..< T_sim;
    /// events emitted in the last step are not delivered).
    public var steps: Int
    /// Input arrivals, CSR over steps: input i enters the recurrent neurons in step t (its parrot spike has stamp
    /// t) iff i is in `inputIndices[inputOffsets[t] ..< inputOffsets[t + 1]]`. [steps + 1] and [spikes].
    public var inputOffsets: [Int]
    public var inputIndices: [Int32]
    /// y*(t): the target value each readout holds in its step t (the `step_rate_generator` on receptor 2),
    /// [steps, nOut].
    public var target: [Double]
    /// lambda(t): the learning window in step t (receptor 1), [steps].
    public var window: [Double]
    /// Extra input (mV) that every recurrent neuron receives in a step, e.g. the forced final update's 1000:
    /// steps and values, [k] each.
    public var recurrentExtraInputSteps: [Int]
    public var recurrentExtraInputValues: [Double]
    /// How the examples evaluate: sequence s (0, 1, ...) occupies the readout steps `lossStart + s * sequence ..<
    /// lossStart + (s + 1) * sequence` (their multimeter window); iteration n is the group of `groupSize`
    /// sequences from n * groupSize on, n < `iterations`. Its loss is 0.5 * the mean over readouts and sequences of
    /// the sum over the sequence's last `lossWindow` steps of (readout_signal - target_signal)^2, as numpy sums.
    public var lossStart: Int
    public var sequence: Int
    public var iterations: Int
    public var groupSize: Int
    public var lossWindow: Int
    /// Classification (NEST's N-MNIST example): per sequence, the class is the readout with the largest mean
    /// signal over the loss window; `errors` gets 1 - the fraction of sequences of the iteration whose class is the
    /// target's.
    public var classify: Bool
    /// NEST's `SetDefaults` of the optimizer's eta before a step: steps (ascending) and values, [k] each.
    public var etaChangeSteps: [Int]
    public var etaChangeValues: [Double]

    public init(
        steps: Int, inputOffsets: [Int], inputIndices: [Int32], target: [Double], window: [Double],
        recurrentExtraInputSteps: [Int] = [], recurrentExtraInputValues: [Double] = [], lossStart: Int, sequence: Int,
        iterations: Int, groupSize: Int = 1, lossWindow: Int? = nil, classify: Bool = false, etaChangeSteps: [Int] = [],
        etaChangeValues: [Double] = []
    ) {
        (self.steps, self.inputOffsets, self.inputIndices, self.target, self.window) =
            (steps, inputOffsets, inputIndices, target, window)
        (self.recurrentExtraInputSteps, self.recurrentExtraInputValues) = (recurrentExtraInputSteps, recurrentExtraInputValues)
        (self.lossStart, self.sequence, self.iterations) = (lossStart, sequence, iterations)
        (self.groupSize, self.lossWindow, self.classify) = (groupSize, lossWindow ?? sequence, classify)
        (self.etaChangeSteps, self.etaChangeValues) = (etaChangeSteps, etaChangeValues)
    }

    /// The steps of iteration n's loss window: from the start of its first sequence to the end of its last.
    public func iterationSteps(_ n: Int) -> Range<Int> {
        let first = lossStart + n * groupSize * sequence
        return first..<(first + groupSize * sequence)
    }

    /// The layout of NEST's sine-wave example and test: a frozen input pattern and target repeated every
    /// iteration, generators offset by 1 ms, a learning window open from step 2 on.
    /// * pattern: [nIn, T] row-major, true where input i fires at pattern step k. The generator spike at k + 1 + nT
    ///   ms is relayed by the parrot with stamp k + 2 + nT (§3.2).
    /// * target: [nOut, T]: y*(t) = target[(t - 2) mod T] for 2 <= t < 2 + iterations T, then held; 0 before.
    /// * finalUpdate: the examples' forced final update, a spike at task + 1 ms with weight 1000 into every parrot
    ///   and recurrent neuron (§4.6): +1000 mV to every recurrent neuron in step task + 1, every input with stamp
    ///   task + 2.
    /// * steps: T_sim (the example: task + 5; the test: task + 5 as well, without the final update).
    public static func frozenPattern(
        pattern: [Bool], nIn: Int, target: [Double], nOut: Int, sequence T: Int, iterations: Int, steps: Int,
        finalUpdate: Bool
    ) -> OnlineStimulus {
        precondition(pattern.count == nIn * T && target.count == nOut * T)
        let offset = 2, task = iterations * T
        var perStep = [[Int32]](repeating: [], count: steps)
        for n in 0..<iterations {
            for k in 0..<T {
                let t = k + offset + n * T
                guard t < steps else { continue }
                for i in 0..<nIn where pattern[i * T + k] { perStep[t].append(Int32(i)) }
            }
        }
        if finalUpdate && task + 2 < steps { perStep[task + 2] = (0..<Int32(nIn)).map { $0 } }
        let (offsets, indices) = csr(perStep)
        var y = [Double](repeating: 0, count: steps * nOut)
        var lambda = [Double](repeating: 0, count: steps)
        for t in offset..<steps {
            // The generator holds its last amplitude after task + 1.
            let m = min(t - offset, task - 1) % T
            for k in 0..<nOut { y[t * nOut + k] = target[k * T + m] }
            lambda[t] = 1
        }
        return OnlineStimulus(
            steps: steps, inputOffsets: offsets, inputIndices: indices, target: y, window: lambda,
            recurrentExtraInputSteps: finalUpdate ? [task + 1] : [], recurrentExtraInputValues: finalUpdate ? [1000] : [],
            lossStart: offset, sequence: T, iterations: iterations)
    }
}

extension OnlineStimulus {
    /// The inputs of every step as CSR: offsets [steps + 1] and the inputs in step order.
    static func csr(_ perStep: [[Int32]]) -> (offsets: [Int], indices: [Int32]) {
        var offsets = [0], indices = [Int32]()
        for s in perStep {
            indices += s
            offsets.append(indices.count)
        }
        return (offsets, indices)
    }

    /// The layout of NEST's N-MNIST example: a stream of labelled sequences of T steps, sequence s starting at step
    /// 2 + s T (generators offset by 1 ms, the parrot's step).
    /// * inputSteps, inputSenders [E]: each input spike's stamp (generator time + 1 ms) and input, ascending steps;
    ///   coinciding spikes of one input stay repeated (one event with multiplicity);
    /// * labels [iterations * groupSize]: readout labels[s] has target 1 during sequence s, the others 0; the learning
    ///   window is open in the last `learningWindow` steps of every sequence; both hold their last value after the
    ///   last sequence, 0 before the first;
    /// * etaPerIteration: NEST's `SetDefaults` of eta before iteration n, at step n groupSize T;
    /// * finalUpdateStep: the forced final update's generator spike (ms = step): +1000 mV to every recurrent neuron in
    ///   that step, every input spikes one step later; nil: none.
    public static func classification(
        inputSteps: [Int], inputSenders: [Int], nIn: Int, labels: [Int], nOut: Int, sequence T: Int, learningWindow W: Int,
        groupSize G: Int, etaPerIteration: [Double], finalUpdateStep: Int?, steps: Int
    ) -> OnlineStimulus {
        precondition(inputSteps.count == inputSenders.count && labels.count % G == 0)
        let offset = 2, samples = labels.count
        var perStep = [[Int32]](repeating: [], count: steps)
        for (t, i) in zip(inputSteps, inputSenders) where t < steps { perStep[t].append(Int32(i)) }
        if let f = finalUpdateStep, f + 1 < steps { perStep[f + 1] += (0..<Int32(nIn)).map { $0 } }
        let (offsets, indices) = csr(perStep)
        var y = [Double](repeating: 0, count: steps * nOut)
        var lambda = [Double](repeating: 0, count: steps)
        if samples > 0 {
            for t in offset..<steps {
                let s = min((t - offset) / T, samples - 1)
                let m = t - offset - s * T
                y[t * nOut + labels[s]] = 1
                lambda[t] = m >= T - W ? 1 : 0
            }
        }
        let iterations = samples / G
        return OnlineStimulus(
            steps: steps, inputOffsets: offsets, inputIndices: indices, target: y, window: lambda,
            recurrentExtraInputSteps: finalUpdateStep.map { [$0] } ?? [], recurrentExtraInputValues: finalUpdateStep == nil ? [] : [1000],
            lossStart: offset, sequence: T, iterations: iterations, groupSize: G, lossWindow: W, classify: true,
            etaChangeSteps: (0..<etaPerIteration.count).map { $0 * G * T }, etaChangeValues: etaPerIteration)
    }
}

/// Which connections NEST's `weight_recorder` follows: senders and targets by population index, and its
/// activity window (it logs transmitted spikes with start < stamp <= stop, in steps).
public struct OnlineWeightRecorderSelection: Sendable, Equatable {
    public var inputSenders: [Int]
    public var recurrentSenders: [Int]
    public var recurrentTargets: [Int]
    public var readoutTargets: [Int]
    public var start: Int
    public var stop: Int

    public init(
        inputSenders: [Int], recurrentSenders: [Int], recurrentTargets: [Int], readoutTargets: [Int], start: Int = 0,
        stop: Int = Int.max
    ) {
        (self.inputSenders, self.recurrentSenders, self.recurrentTargets, self.readoutTargets) =
            (inputSenders, recurrentSenders, recurrentTargets, readoutTargets)
        (self.start, self.stop) = (start, stop)
    }
}

/// The weight-recorder events: one per transmitted spike over a followed connection, with the weight it carried
/// (the weight after every optimizer call up to the spike, spec §4.4). In delivery order: by stamp, inputs before
/// recurrent senders, senders and targets ascending. [events] each.
public struct OnlineWeightRecord: Sendable, Equatable {
    /// Stamp of the spike (the step in which the target receives it).
    public var stamps: [Int32] = []
    /// 0 = input, 1 = recurrent.
    public var senderPopulations: [UInt8] = []
    public var senders: [Int32] = []
    /// 0 = recurrent, 1 = readout.
    public var targetPopulations: [UInt8] = []
    public var targets: [Int32] = []
    /// The weight (pA).
    public var weights: [Double] = []

    mutating func append(stamp: Int, senderPopulation: UInt8, sender: Int, targetPopulation: UInt8, target: Int, weight: Double) {
        stamps.append(Int32(stamp))
        senderPopulations.append(senderPopulation)
        senders.append(Int32(sender))
        targetPopulations.append(targetPopulation)
        targets.append(Int32(target))
        weights.append(weight)
    }

    mutating func reserve(_ n: Int) {
        stamps.reserveCapacity(n)
        senderPopulations.reserveCapacity(n)
        senders.reserveCapacity(n)
        targetPopulations.reserveCapacity(n)
        targets.reserveCapacity(n)
        weights.reserveCapacity(n)
    }
}

/// The three plastic projections.
public enum OnlineProjectionKind: String, CaseIterable, Sendable {
    case inputToRecurrent = "in_rec"
    case recurrentToRecurrent = "rec_rec"
    case recurrentToReadout = "rec_out"
}

/// NEST 3.10's online e-prop network (inputs relayed by parrots -> one recurrent population -> readouts, with
/// `eprop_synapse`s and the static learning-signal feedback), simulated step by step exactly as NEST does
/// (eprop-online-spec.md §3.1, §5.1): no sequences, no resets; traces run across iterations, gradients are
/// integrated lazily per presynaptic neuron and the optimizer counts absolute time steps.
///
/// Drive it with `simulate(steps:)` or `run()`; read `loss`, the recorded spikes, `weights(_:stored:)`.
public final class OnlineSimulation<S: Scalar> {
    public let parameters: OnlineNetworkParameters
    public let stimulus: OnlineStimulus
    /// The next step to simulate (0 before the first).
    public private(set) var time = 0
    /// Loss per completed iteration (`OnlineStimulus.lossStart`): 0.5 * mean over readouts and sequences of the sum
    /// over the loss window of (readout_signal - target_signal)^2, summed as numpy's `np.sum` (pairwise).
    public private(set) var loss: [Double] = []
    /// Classification error per completed iteration (with `OnlineStimulus.classify`).
    public private(set) var errors: [Double] = []
    /// Every recurrent spike: emitting step (its NEST stamp is step + 1) and neuron, in time then neuron order.
    public private(set) var spikeSteps: [Int32] = []
    public private(set) var spikeNeurons: [Int32] = []
    /// The weight-recorder events (empty without a selection).
    public private(set) var weightRecord = OnlineWeightRecord()
    public let weightRecorder: OnlineWeightRecorderSelection?

    let nIn: Int, nRec: Int, nOut: Int
    let recurrent: OnlineRecurrentPopulation<S>
    let readout: OnlineReadoutPopulation<S>
    /// Input -> recurrent and recurrent -> recurrent: one projection per class of targets (one for a single population).
    let inRec: [OnlineProjection<S>]
    let recRec: [OnlineProjection<S>]
    let recOut: OnlineProjection<S>
    let everyStep: Bool
    /// Helper threads (nil: one thread).
    let workers: OnlineWorkers?
    /// Helper threads running (0: the simulation runs on the caller's thread alone).
    public var helperThreads: Int { workers?.count ?? 0 }
    /// B [nRec, nOut].
    let feedback: [S]

    // MARK: Buffers, preallocated.
    /// z(t) of the last four steps, slot t % 4: [4, nRec].
    let zRing: UnsafeMutablePointer<S>
    /// err(t) of the last four steps, slot t % 4: [4, nOut].
    let errRing: UnsafeMutablePointer<S>
    /// L(t - 2) = B err(t - 1): [nRec].
    let learningSignal: UnsafeMutablePointer<S>
    /// s_i(tau) of the inputs for the entry being processed: [nIn].
    let inputArrival: UnsafeMutablePointer<S>
    /// Summed weighted spikes of stamp t: [nRec] and [nOut].
    let recInput: UnsafeMutablePointer<S>
    let outInput: UnsafeMutablePointer<S>
    /// y*(t) [nOut] of the current step.
    let targetNow: UnsafeMutablePointer<S>
    /// Over the current sequence's loss window W: (readout_signal - target_signal)^2, readout_signal and
    /// target_signal, [nOut, W] each; per sequence of the current iteration the sums over W, [nOut, groupSize].
    var squaredDiff: [Double]
    var readoutWindow: [Double]
    var targetWindow: [Double]
    var sequenceSums: [Double]
    /// Sequences of the current iteration classified correctly; the next eta change.
    var correct = 0
    var nextEtaChange = 0
    /// NEST's `last_event_time_` of every parrot and recurrent neuron (flush events).
    let lastEventInput: UnsafeMutablePointer<Int>
    let lastEventRec: UnsafeMutablePointer<Int>
    /// Flush intervals in steps (`Int.max`: none).
    let flushInput: Int
    /// [nRec]: each recurrent neuron's own interval.
    let flushRec: [Int]
    /// Which inputs spike with the current stamp: [nIn].
    let inputSpikesNow: UnsafeMutablePointer<Bool>
    /// Weight recorder: followed senders [nIn], [nRec].
    let recordInput: UnsafeMutablePointer<Bool>
    let recordRecurrent: UnsafeMutablePointer<Bool>

    /// - weightRecorder: the connections whose transmitted weights are logged (NEST's `weight_recorder`), or nil.
    /// - threads: threads for the synapse work of each entry (the columns are shared out; results are bitwise those
    ///   of one thread), used for networks of at least 4 `onlineParallelMinimum` synapses, for entries whose active
    ///   columns hold at least `onlineParallelMinimum`. The helpers spin while they wait, holding their cores while the simulation
    ///   exists.
    public init(
        parameters p: OnlineNetworkParameters, weights: OnlineWeights, stimulus: OnlineStimulus,
        weightRecorder: OnlineWeightRecorderSelection? = nil, threads: Int = 1
    ) throws {
        try p.validate()
        try requireOnline(threads >= 1, "threads", "threads >= 1 required")
        let (nIn, nRec, nOut) = (p.nIn, p.nRec, p.nOut)
        let o = p.optimizer
        try weights.validate(nIn: nIn, nRec: nRec, nOut: nOut, optimizer: o)
        let s = stimulus
        try requireOnline(s.steps >= 0, "stimulus.steps", "steps >= 0 required")
        try requireOnline(
            s.inputOffsets.count == s.steps + 1 && s.inputOffsets.first == 0 && s.inputOffsets.last == s.inputIndices.count,
            "stimulus.inputOffsets", "CSR offsets [steps + 1] from 0 to inputIndices.count required")
        try requireOnline(
            s.inputIndices.allSatisfy { $0 >= 0 && Int($0) < nIn }, "stimulus.inputIndices", "indices in 0..<nIn required")
        try requireOnline(s.target.count == s.steps * nOut, "stimulus.target", "shape [steps, nOut] required")
        try requireOnline(s.window.count == s.steps, "stimulus.window", "shape [steps] required")
        try requireOnline(
            s.recurrentExtraInputSteps.count == s.recurrentExtraInputValues.count, "stimulus.recurrentExtraInputValues",
            "one value per step required")
        try requireOnline(s.sequence > 0 && s.iterations >= 0 && s.lossStart >= 0, "stimulus.sequence", "sequence > 0 required")
        try requireOnline(s.groupSize > 0, "stimulus.groupSize", "groupSize > 0 required")
        try requireOnline((1...s.sequence).contains(s.lossWindow), "stimulus.lossWindow", "1 <= lossWindow <= sequence required")
        try requireOnline(
            s.etaChangeSteps.count == s.etaChangeValues.count && zip(s.etaChangeSteps, s.etaChangeSteps.dropFirst()).allSatisfy(<=)
                && s.etaChangeValues.allSatisfy { $0 >= 0 }, "stimulus.etaChangeSteps",
            "ascending steps, one value >= 0 each, required")

        if let r = weightRecorder {
            try requireOnline(r.inputSenders.allSatisfy { (0..<nIn).contains($0) }, "weightRecorder.inputSenders", "indices in 0..<nIn required")
            try requireOnline(
                r.recurrentSenders.allSatisfy { (0..<nRec).contains($0) }, "weightRecorder.recurrentSenders", "indices in 0..<nRec required")
            try requireOnline(
                r.recurrentTargets.allSatisfy { (0..<nRec).contains($0) }, "weightRecorder.recurrentTargets", "indices in 0..<nRec required")
            try requireOnline(
                r.readoutTargets.allSatisfy { (0..<nOut).contains($0) }, "weightRecorder.readoutTargets", "indices in 0..<nOut required")
        }
        parameters = p
        self.stimulus = s
        self.weightRecorder = weightRecorder
        // The step's buffers: raw storage, allocated once (no exclusivity checks or allocation in the time loop).
        func buffer<T>(_ count: Int, _ value: T) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
            p.initialize(repeating: value, count: max(count, 1))
            return p
        }
        recordInput = buffer(nIn, false)
        recordRecurrent = buffer(nRec, false)
        if let r = weightRecorder {
            for i in r.inputSenders { recordInput[i] = true }
            for i in r.recurrentSenders { recordRecurrent[i] = true }
            // Room for every followed sender spiking at 100 Hz.
            let pairs = r.inputSenders.count * r.recurrentTargets.count
                + r.recurrentSenders.count * (r.recurrentTargets.count + r.readoutTargets.count)
            weightRecord.reserve(pairs * (s.steps / 10 + 16))
        }
        (self.nIn, self.nRec, self.nOut) = (nIn, nRec, nOut)
        let dt = p.resolution
        // Helper threads only for networks of at least 4 onlineParallelMinimum synapses: below, helpers spinning beside
        // the main thread cost more than they take over (measured: NEST's N-MNIST network, 46 575 synapses, 1.08x slower
        // with 2 threads; 600 + 600 dense, 720 600 synapses, 1.8x faster).
        func held(_ mask: [Bool]?, _ all: Int) -> Int { mask.map { $0.lazy.filter { $0 }.count } ?? all }
        let synapses = held(weights.maskIn, nRec * nIn) + held(weights.maskRec, nRec * (nRec - 1)) + held(weights.maskOut, nOut * nRec)
        let workers = threads > 1 && synapses >= 4 * onlineParallelMinimum ? OnlineWorkers(threads: threads) : nil
        self.workers = workers
        recurrent = OnlineRecurrentPopulation(p.recurrentGroups, resolution: dt)
        readout = OnlineReadoutPopulation(p.readout, count: nOut, resolution: dt)
        // The synapses onto recurrent neurons, one projection per class of targets with the same synapse constants
        // (z_bar filter, kappa, kappa_reg, adaptation, cutoff): z_bar is then one per presynaptic neuron and class.
        var classes: [(key: [Double], parameters: OnlineRecurrentParameters, members: [Bool])] = []
        var flushRec = [Int](repeating: Int.max, count: nRec)
        for j in 0..<nRec {
            let r = p.recurrentParameters(ofNeuron: j), c = OnlineRecurrentConstants(r, dt: dt)
            flushRec[j] = c.flushInterval
            let key = [c.alpha, r.kappa, r.kappaReg, c.rho, c.beta, r.model.isAdaptive ? 1 : 0, Double(c.cutoff)]
            if let k = classes.firstIndex(where: { $0.key == key }) {
                classes[k].members[j] = true
            } else {
                classes.append((key, r, (0..<nRec).map { $0 == j }))
            }
        }
        func projections(nPre: Int, weights w: [Double], mask: [Bool]?, diagonal: Bool) -> [OnlineProjection<S>] {
            classes.map { cls in
                let r = cls.parameters, c = OnlineRecurrentConstants(r, dt: dt)
                // One class: the given connectivity; several: each class's targets of it.
                let classMask = classes.count == 1 ? mask : (0..<nRec * nPre).map { q in
                    let (j, i) = (q / nPre, q % nPre)
                    return cls.members[j] && (mask?[q] ?? !(diagonal && i == j))
                }
                return OnlineProjection(
                    nPre: nPre, nPost: nRec, target: .recurrent, adaptive: r.model.isAdaptive, excludeDiagonal: diagonal,
                    cutoff: c.cutoff, alpha: c.alpha, kappa: r.kappa, kappaReg: r.kappaReg, rho: c.rho, beta: c.beta,
                    optimizer: o, weights: w, mask: classMask, workers: workers)
            }
        }
        inRec = projections(nPre: nIn, weights: weights.wIn, mask: weights.maskIn, diagonal: false)
        recRec = projections(nPre: nRec, weights: weights.wRec, mask: weights.maskRec, diagonal: true)
        self.flushRec = flushRec
        recOut = OnlineProjection(
            nPre: nRec, nPost: nOut, target: .readout, adaptive: false, excludeDiagonal: false,
            cutoff: nestSteps(p.readout.isiTraceCutoff, dt), alpha: Foundation.exp(-dt / p.readout.tauM), kappa: 0,
            kappaReg: 0, rho: 1, beta: 0, optimizer: o, weights: weights.wOut, mask: weights.maskOut, workers: workers)
        everyStep = p.algorithm == .everyStep
        feedback = weights.feedback.map { S($0) }
        zRing = buffer(4 * nRec, 0)
        errRing = buffer(4 * nOut, 0)
        learningSignal = buffer(nRec, 0)
        inputArrival = buffer(nIn, 0)
        recInput = buffer(nRec, 0)
        outInput = buffer(nOut, 0)
        targetNow = buffer(nOut, 0)
        squaredDiff = [Double](repeating: 0, count: nOut * s.lossWindow)
        (readoutWindow, targetWindow) = (squaredDiff, squaredDiff)
        sequenceSums = [Double](repeating: 0, count: nOut * s.groupSize)
        errors.reserveCapacity(s.iterations)
        lastEventInput = buffer(nIn, 0)
        lastEventRec = buffer(nRec, 0)
        flushInput = nestSteps(p.inputFlushEventSendInterval, dt)
        inputSpikesNow = buffer(nIn, false)
        loss.reserveCapacity(s.iterations)
        // Room for a mean rate of 100 Hz at dt = 1 ms, so that recording does not allocate in the loop.
        spikeSteps.reserveCapacity(s.steps * nRec / 10 + 1024)
        spikeNeurons.reserveCapacity(s.steps * nRec / 10 + 1024)
    }

    deinit {
        workers?.stop()
        for p in [zRing, errRing, learningSignal, inputArrival, recInput, outInput, targetNow] { p.deallocate() }
        lastEventInput.deallocate()
        lastEventRec.deallocate()
        inputSpikesNow.deallocate()
        recordInput.deallocate()
        recordRecurrent.deallocate()
    }

    /// NEST's `SetStatus` of the optimizer's eta between two `simulate` calls (the first change is what every
    /// synapse's first step uses, spec §6.12).
    public func setEta(_ eta: Double) {
        for p in inRec + recRec + [recOut] { p.optimizer.setEta(eta) }
    }

    /// The weights of a projection, `[post, pre]`: NEST's stored weights (`stored`, what GetStatus reads after
    /// Simulate: as of the presynaptic neuron's last spike, or flush event in per-step mode) or the current ones.
    public func weights(_ kind: OnlineProjectionKind, stored: Bool = true) -> [Double] {
        // The classes hold disjoint targets: their matrices add up.
        let parts = projections(kind).map { $0.weights(stored: stored) }
        return parts.dropFirst().reduce(parts[0]) { zip($0, $1).map(+) }
    }

    /// Where a projection has synapses, `[post, pre]`.
    public func mask(_ kind: OnlineProjectionKind) -> [Bool] {
        let parts = projections(kind).map { $0.mask() }
        return parts.dropFirst().reduce(parts[0]) { zip($0, $1).map { $0 || $1 } }
    }

    func projections(_ kind: OnlineProjectionKind) -> [OnlineProjection<S>] {
        switch kind {
        case .inputToRecurrent: inRec
        case .recurrentToRecurrent: recRec
        case .recurrentToReadout: [recOut]
        }
    }

    /// Simulates the remaining steps of the stimulus.
    public func run() { simulate(steps: stimulus.steps - time) }

    /// Simulates `steps` more steps (at most up to `stimulus.steps`).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func simulate(steps: Int) {
        let end = min(stimulus.steps, time + max(0, steps))
        let changes = stimulus.etaChangeSteps
        while time < end {
            while nextEtaChange < changes.count && changes[nextEtaChange] <= time {
                setEta(stimulus.etaChangeValues[nextEtaChange])
                nextEtaChange += 1
            }
            step(time)
            time += 1
        }
    }

    /// One NEST step t in NEST's order (§3.1, §5.1).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    private func step(_ t: Int) {
        let (nIn, nRec, nOut) = (nIn, nRec, nOut)
        let s = stimulus
        let L = learningSignal, arrival = inputArrival, recInput = recInput, outInput = outInput
        let inputSpikesNow = inputSpikesNow, lastEventInput = lastEventInput, lastEventRec = lastEventRec
        let recordInput = recordInput, recordRecurrent = recordRecurrent, feedback = feedback
        recurrent.psi.withUnsafeBufferPointer { psi in
        recurrent.fReg.withUnsafeBufferPointer { fReg in
            let z = zRing, err = errRing
            let zPrev = z + ((t + 3) & 3) * nRec  // z(t - 1)
            // 1. Secondary events of step t - 1: L(t - 2) = B err(t - 1), summed over readouts in order.
            // 2. Entry tau = t - 2, complete now: the gradients of every active column (before any transmission).
            let tau = t - 2
            if tau >= 0 {
                let errPrev = err + ((t + 3) & 3) * nOut
                for j in 0..<nRec {
                    var l: S = 0
                    for k in 0..<nOut { l += feedback[j * nOut + k] * errPrev[k] }
                    L[j] = l
                }
                // (All 0 but these: cleared after the entry.)
                for q in s.inputOffsets[tau]..<s.inputOffsets[tau + 1] { arrival[Int(s.inputIndices[q])] = 1 }
                // s_i(tau) of recurrent presynaptic neurons is z_i(tau - 1); before step 0 there is none.
                // Slot (tau - 1) & 3 is still all zeros for tau = 0 (step -1 had no spikes).
                let zArr = UnsafePointer(z + ((tau - 1) & 3) * nRec)
                let slot = (tau & 1) * nRec
                let psiTau = psi.baseAddress! + slot, fTau = fReg.baseAddress! + slot
                let Lp = UnsafePointer(L)
                for p in inRec {
                    p.processEntry(
                        tau: tau, arrival: UnsafePointer(arrival), psi: psiTau, fReg: fTau, learningSignal: Lp, everyStep: everyStep)
                }
                for p in recRec {
                    p.processEntry(tau: tau, arrival: zArr, psi: psiTau, fReg: fTau, learningSignal: Lp, everyStep: everyStep)
                }
                recOut.processEntry(
                    tau: tau, arrival: zArr, psi: UnsafePointer(err + (tau & 3) * nOut), fReg: fTau, learningSignal: Lp,
                    everyStep: everyStep)
                for q in s.inputOffsets[tau]..<s.inputOffsets[tau + 1] { arrival[Int(s.inputIndices[q])] = 0 }
            }
            // 3. Events of stamp t: per-spike optimizer calls, then transmission with the updated weights.
            for j in 0..<nRec { recInput[j] = 0 }
            for k in 0..<nOut { outInput[k] = 0 }
            let rIn = recInput, rOut = outInput
            // The forced final update's spike (+1000 mV) is summed before the step's other input, as NEST delivers
            // it (the recorded V_m of that step differs in its last bit otherwise).
            for q in 0..<s.recurrentExtraInputSteps.count where s.recurrentExtraInputSteps[q] == t {
                let x = S(s.recurrentExtraInputValues[q])
                for j in 0..<nRec { rIn[j] += x }
            }
            // A parrot relays n coinciding spikes as one event of multiplicity n, which NEST delivers to every
            // plastic synapse as n events of the same stamp, one after the other (event_delivery_manager_impl.h: "Unroll
            // spike multiplicity"): each is transmitted (+W each time) and each runs the synapse's send. For e-prop the
            // copies after the first are an interval of 0 steps: no trace entry and, once per spike, an optimizer call
            // with index t - 1 and gradient 0 (it steps only at the column's first spike, with a zero step that still
            // counts as the synapse's first optimization: eta_current becomes the current eta).
            let inputs = s.inputOffsets[t]..<s.inputOffsets[t + 1]
            for q in inputs {
                let i = Int(s.inputIndices[q])
                inputSpikesNow[i] = true
                for p in inRec { p.spike(column: i, stamp: t) }
                if recordInput[i] { recordWeights(stamp: t, sender: i, input: true) }
                for p in inRec { p.transmit(column: i, into: rIn) }
                lastEventInput[i] = t - 1
            }
            if flushInput != Int.max {
                // Parrots that did not spike in step t - 1 send a flush event (stamp t) when one is due.
                for i in 0..<nIn where !inputSpikesNow[i] && lastEventInput[i] > 0 && t - 1 - lastEventInput[i] >= flushInput {
                    for p in inRec { p.flush(column: i) }
                    lastEventInput[i] = t - 1
                }
            }
            if t >= 1 {
                for i in 0..<nRec {
                    if zPrev[i] != 0 {
                        for p in recRec {
                            p.spike(column: i, stamp: t)
                            p.transmit(column: i, into: rIn)
                        }
                        recOut.spike(column: i, stamp: t)
                        recOut.transmit(column: i, into: rOut)
                        if recordRecurrent[i] { recordWeights(stamp: t, sender: i, input: false) }
                        lastEventRec[i] = t - 1
                    } else if flushRec[i] != Int.max && lastEventRec[i] > 0 && t - 1 - lastEventRec[i] >= flushRec[i] {
                        for p in recRec { p.flush(column: i) }
                        recOut.flush(column: i)
                        lastEventRec[i] = t - 1
                    }
                }
            }
            for q in inputs { inputSpikesNow[Int(s.inputIndices[q])] = false }
        }}
        // 4. Node updates of step t: recurrent neurons (psi(t), F(t), z(t)), then readouts (err(t)).
        let zNow = zRing + (t & 3) * nRec
        recurrent.update(step: t, input: recInput, z: zNow)
        for k in 0..<nOut { targetNow[k] = S(s.target[t * nOut + k]) }
        readout.update(input: outInput, target: targetNow, window: S(s.window[t]))
        readout.err.withUnsafeBufferPointer { e in (errRing + (t & 3) * nOut).update(from: e.baseAddress!, count: nOut) }
        for j in 0..<nRec where zNow[j] != 0 {
            spikeSteps.append(Int32(t))
            spikeNeurons.append(Int32(j))
        }
        accumulateLoss(t)
    }

    /// Weight-recorder events of a spike of `sender` with stamp t (after its optimizer call: the carried weight).
    private func recordWeights(stamp t: Int, sender i: Int, input: Bool) {
        guard let r = weightRecorder, t > r.start && t <= r.stop else { return }
        // Only existing synapses log (no autapse, nothing where a mask is false).
        if input {
            for j in r.recurrentTargets {
                guard let w = inRec.lazy.compactMap({ $0.weight(pre: i, post: j) }).first else { continue }
                weightRecord.append(stamp: t, senderPopulation: 0, sender: i, targetPopulation: 0, target: j, weight: Double(w))
            }
        } else {
            for j in r.recurrentTargets {
                guard let w = recRec.lazy.compactMap({ $0.weight(pre: i, post: j) }).first else { continue }
                weightRecord.append(stamp: t, senderPopulation: 1, sender: i, targetPopulation: 0, target: j, weight: Double(w))
            }
            for k in r.readoutTargets {
                guard let w = recOut.weight(pre: i, post: k) else { continue }
                weightRecord.append(stamp: t, senderPopulation: 1, sender: i, targetPopulation: 1, target: k, weight: Double(w))
            }
        }
    }

    /// The examples' evaluation: (readout_signal - target_signal)^2 per step of each sequence's loss window, summed
    /// per readout as numpy's pairwise `np.sum`; per iteration 0.5 * the mean over readouts and sequences (numpy's
    /// `mean` over the [nOut, groupSize] sums) and, classifying, the error of the argmax over readouts of the mean
    /// readout_signal (first maximum, as `np.argmax`).
    private func accumulateLoss(_ t: Int) {
        let s = stimulus, T = s.sequence, W = s.lossWindow, G = s.groupSize
        let rel = t - s.lossStart
        guard rel >= 0 && rel / (T * G) < s.iterations else { return }
        let m = rel % T - (T - W)
        guard m >= 0 else { return }
        for k in 0..<nOut {
            let (y, yStar) = (Double(readout.readoutSignal[k]), Double(readout.targetSignal[k]))
            let d = y - yStar
            squaredDiff[k * W + m] = d * d
            readoutWindow[k * W + m] = y
            targetWindow[k * W + m] = yStar
        }
        guard m == W - 1 else { return }
        let g = (rel / T) % G
        var predicted = 0, wanted = 0, best = -Double.infinity, bestTarget = -Double.infinity
        squaredDiff.withUnsafeBufferPointer { sq in
        readoutWindow.withUnsafeBufferPointer { y in
        targetWindow.withUnsafeBufferPointer { yStar in
            for k in 0..<nOut {
                sequenceSums[k * G + g] = numpyPairwiseSum(sq.baseAddress! + k * W, W)
                guard s.classify else { continue }
                let (mean, meanTarget) = (numpyPairwiseSum(y.baseAddress! + k * W, W) / Double(W),
                                          numpyPairwiseSum(yStar.baseAddress! + k * W, W) / Double(W))
                if mean > best { (best, predicted) = (mean, k) }
                if meanTarget > bestTarget { (bestTarget, wanted) = (meanTarget, k) }
            }
        }}}
        if predicted == wanted { correct += 1 }
        guard g == G - 1 else { return }
        let total = sequenceSums.withUnsafeBufferPointer { numpyPairwiseSum($0.baseAddress!, nOut * G) }
        loss.append(0.5 * (total / Double(nOut * G)))
        if s.classify { errors.append(1 - Double(correct) / Double(G)) }
        correct = 0
    }
}

/// numpy's `pairwise_sum` for float64 (`np.sum` along a contiguous axis): blocks of at most 128 summed with eight
/// interleaved accumulators, larger ranges split in halves at a multiple of 8.
func numpyPairwiseSum(_ a: UnsafePointer<Double>, _ n: Int) -> Double {
    if n < 8 {
        var res = 0.0
        for i in 0..<n { res += a[i] }
        return res
    } else if n <= 128 {
        var r = (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])
        var i = 8
        while i < n - (n % 8) {
            r.0 += a[i]; r.1 += a[i + 1]; r.2 += a[i + 2]; r.3 += a[i + 3]
            r.4 += a[i + 4]; r.5 += a[i + 5]; r.6 += a[i + 6]; r.7 += a[i + 7]
            i += 8
        }
        var res = ((r.0 + r.1) + (r.2 + r.3)) + ((r.4 + r.5) + (r.6 + r.7))
        while i < n {
            res += a[i]
            i += 1
        }
        return res
    } else {
        var n2 = n / 2
        n2 -= n2 % 8
        return numpyPairwiseSum(a, n2) + numpyPairwiseSum(a + n2, n - n2)
    }
}
