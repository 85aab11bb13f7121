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

    public init(wIn: [Double], wRec: [Double], wOut: [Double], feedback: [Double]) {
        (self.wIn, self.wRec, self.wOut, self.feedback) = (wIn, wRec, wOut, feedback)
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
    /// The loss of iteration n sums the readout steps `lossStart + n * sequence ..< lossStart + (n + 1) * sequence`
    /// for n < `iterations` (the examples' multimeter window).
    public var lossStart: Int
    public var sequence: Int
    public var iterations: Int

    public init(
        steps: Int, inputOffsets: [Int], inputIndices: [Int32], target: [Double], window: [Double],
        recurrentExtraInputSteps: [Int] = [], recurrentExtraInputValues: [Double] = [], lossStart: Int, sequence: Int,
        iterations: Int
    ) {
        (self.steps, self.inputOffsets, self.inputIndices, self.target, self.window) =
            (steps, inputOffsets, inputIndices, target, window)
        (self.recurrentExtraInputSteps, self.recurrentExtraInputValues) = (recurrentExtraInputSteps, recurrentExtraInputValues)
        (self.lossStart, self.sequence, self.iterations) = (lossStart, sequence, iterations)
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
        var offsets = [0], indices = [Int32]()
        for s in perStep {
            indices += s
            offsets.append(indices.count)
        }
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
    /// Loss per completed iteration: 0.5 * mean over readouts of sum over the iteration's steps of
    /// (readout_signal - target_signal)^2, summed as numpy's `np.sum` (pairwise) like the examples.
    public private(set) var loss: [Double] = []
    /// Every recurrent spike: emitting step (its NEST stamp is step + 1) and neuron, in time then neuron order.
    public private(set) var spikeSteps: [Int32] = []
    public private(set) var spikeNeurons: [Int32] = []
    /// The weight-recorder events (empty without a selection).
    public private(set) var weightRecord = OnlineWeightRecord()
    public let weightRecorder: OnlineWeightRecorderSelection?

    let nIn: Int, nRec: Int, nOut: Int
    let recurrent: OnlineRecurrentPopulation<S>
    let readout: OnlineReadoutPopulation<S>
    let inRec: OnlineProjection<S>
    let recRec: OnlineProjection<S>
    let recOut: OnlineProjection<S>
    let everyStep: Bool
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
    /// Squared differences (readout_signal - target_signal)^2 of the current iteration: [nOut, T].
    var squaredDiff: [Double]
    /// NEST's `last_event_time_` of every parrot and recurrent neuron (flush events).
    let lastEventInput: UnsafeMutablePointer<Int>
    let lastEventRec: UnsafeMutablePointer<Int>
    /// Flush intervals in steps (`Int.max`: none).
    let flushInput: Int, flushRec: Int
    /// Which inputs spike with the current stamp: [nIn].
    let inputSpikesNow: UnsafeMutablePointer<Bool>
    /// Weight recorder: followed senders [nIn], [nRec].
    let recordInput: UnsafeMutablePointer<Bool>
    let recordRecurrent: UnsafeMutablePointer<Bool>

    /// - weightRecorder: the connections whose transmitted weights are logged (NEST's `weight_recorder`), or nil.
    public init(
        parameters p: OnlineNetworkParameters, weights: OnlineWeights, stimulus: OnlineStimulus,
        weightRecorder: OnlineWeightRecorderSelection? = nil
    ) throws {
        try p.validate()
        let (nIn, nRec, nOut) = (p.nIn, p.nRec, p.nOut)
        try requireOnline(weights.wIn.count == nRec * nIn, "weights.wIn", "shape [nRec, nIn] = [\(nRec), \(nIn)] required")
        try requireOnline(weights.wRec.count == nRec * nRec, "weights.wRec", "shape [nRec, nRec] = [\(nRec), \(nRec)] required")
        try requireOnline(weights.wOut.count == nOut * nRec, "weights.wOut", "shape [nOut, nRec] = [\(nOut), \(nRec)] required")
        try requireOnline(
            weights.feedback.count == nRec * nOut, "weights.feedback", "shape [nRec, nOut] = [\(nRec), \(nOut)] required")
        let o = p.optimizer
        for (name, w) in [("weights.wIn", weights.wIn), ("weights.wRec", weights.wRec), ("weights.wOut", weights.wOut)] {
            try requireOnline(
                w.allSatisfy { $0 >= o.wMin && $0 <= o.wMax }, name,
                "every weight within [Wmin, Wmax] = [\(o.wMin), \(o.wMax)] required")
        }
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
        recurrent = OnlineRecurrentPopulation(p.recurrent, count: nRec, resolution: dt)
        readout = OnlineReadoutPopulation(p.readout, count: nOut, resolution: dt)
        let rc = OnlineRecurrentConstants(p.recurrent, dt: dt), r = p.recurrent
        inRec = OnlineProjection(
            nPre: nIn, nPost: nRec, target: .recurrent, adaptive: r.model.isAdaptive, excludeDiagonal: false,
            cutoff: rc.cutoff, alpha: rc.alpha, kappa: r.kappa, kappaReg: r.kappaReg, rho: rc.rho, beta: rc.beta,
            optimizer: o, weights: weights.wIn)
        recRec = OnlineProjection(
            nPre: nRec, nPost: nRec, target: .recurrent, adaptive: r.model.isAdaptive, excludeDiagonal: true,
            cutoff: rc.cutoff, alpha: rc.alpha, kappa: r.kappa, kappaReg: r.kappaReg, rho: rc.rho, beta: rc.beta,
            optimizer: o, weights: weights.wRec)
        recOut = OnlineProjection(
            nPre: nRec, nPost: nOut, target: .readout, adaptive: false, excludeDiagonal: false,
            cutoff: nestSteps(p.readout.isiTraceCutoff, dt), alpha: Foundation.exp(-dt / p.readout.tauM), kappa: 0,
            kappaReg: 0, rho: 1, beta: 0, optimizer: o, weights: weights.wOut)
        everyStep = p.algorithm == .everyStep
        feedback = weights.feedback.map { S($0) }
        zRing = buffer(4 * nRec, 0)
        errRing = buffer(4 * nOut, 0)
        learningSignal = buffer(nRec, 0)
        inputArrival = buffer(nIn, 0)
        recInput = buffer(nRec, 0)
        outInput = buffer(nOut, 0)
        targetNow = buffer(nOut, 0)
        squaredDiff = [Double](repeating: 0, count: nOut * s.sequence)
        lastEventInput = buffer(nIn, 0)
        lastEventRec = buffer(nRec, 0)
        flushInput = nestSteps(p.inputFlushEventSendInterval, dt)
        flushRec = rc.flushInterval
        inputSpikesNow = buffer(nIn, false)
        loss.reserveCapacity(s.iterations)
        // Room for a mean rate of 100 Hz at dt = 1 ms, so that recording does not allocate in the loop.
        spikeSteps.reserveCapacity(s.steps * nRec / 10 + 1024)
        spikeNeurons.reserveCapacity(s.steps * nRec / 10 + 1024)
    }

    deinit {
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
        for p in [inRec, recRec, recOut] { p.optimizer.setEta(eta) }
    }

    /// The weights of a projection, `[post, pre]`: NEST's stored weights (`stored`, what GetStatus reads after
    /// Simulate: as of the presynaptic neuron's last spike, or flush event in per-step mode) or the current ones.
    public func weights(_ kind: OnlineProjectionKind, stored: Bool = true) -> [Double] {
        projection(kind).weights(stored: stored)
    }

    func projection(_ kind: OnlineProjectionKind) -> OnlineProjection<S> {
        switch kind {
        case .inputToRecurrent: inRec
        case .recurrentToRecurrent: recRec
        case .recurrentToReadout: recOut
        }
    }

    /// Simulates the remaining steps of the stimulus.
    public func run() { simulate(steps: stimulus.steps - time) }

    /// Simulates `steps` more steps (at most up to `stimulus.steps`).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func simulate(steps: Int) {
        let end = min(stimulus.steps, time + max(0, steps))
        while time < end {
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
                for i in 0..<nIn { arrival[i] = 0 }
                for q in s.inputOffsets[tau]..<s.inputOffsets[tau + 1] { arrival[Int(s.inputIndices[q])] = 1 }
                // s_i(tau) of recurrent presynaptic neurons is z_i(tau - 1); before step 0 there is none.
                // Slot (tau - 1) & 3 is still all zeros for tau = 0 (step -1 had no spikes).
                let zArr = UnsafePointer(z + ((tau - 1) & 3) * nRec)
                let slot = (tau & 1) * nRec
                let psiTau = psi.baseAddress! + slot, fTau = fReg.baseAddress! + slot
                let Lp = UnsafePointer(L)
                inRec.processEntry(
                    tau: tau, arrival: UnsafePointer(arrival), psi: psiTau, fReg: fTau, learningSignal: Lp,
                    everyStep: everyStep)
                recRec.processEntry(tau: tau, arrival: zArr, psi: psiTau, fReg: fTau, learningSignal: Lp, everyStep: everyStep)
                recOut.processEntry(
                    tau: tau, arrival: zArr, psi: UnsafePointer(err + (tau & 3) * nOut), fReg: fTau, learningSignal: Lp,
                    everyStep: everyStep)
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
            for i in 0..<nIn { inputSpikesNow[i] = false }
            for q in s.inputOffsets[t]..<s.inputOffsets[t + 1] {
                let i = Int(s.inputIndices[q])
                // A parrot relays coinciding spikes as one event (multiplicity is not modelled).
                if inputSpikesNow[i] { continue }
                inputSpikesNow[i] = true
                inRec.spike(column: i, stamp: t)
                if recordInput[i] { recordWeights(stamp: t, sender: i, input: true) }
                inRec.transmit(column: i, into: rIn)
                lastEventInput[i] = t - 1
            }
            if flushInput != Int.max {
                // Parrots that did not spike in step t - 1 send a flush event (stamp t) when one is due.
                for i in 0..<nIn where !inputSpikesNow[i] && lastEventInput[i] > 0 && t - 1 - lastEventInput[i] >= flushInput {
                    inRec.flush(column: i)
                    lastEventInput[i] = t - 1
                }
            }
            if t >= 1 {
                for i in 0..<nRec {
                    if zPrev[i] != 0 {
                        recRec.spike(column: i, stamp: t)
                        recRec.transmit(column: i, into: rIn)
                        recOut.spike(column: i, stamp: t)
                        recOut.transmit(column: i, into: rOut)
                        if recordRecurrent[i] { recordWeights(stamp: t, sender: i, input: false) }
                        lastEventRec[i] = t - 1
                    } else if flushRec != Int.max && lastEventRec[i] > 0 && t - 1 - lastEventRec[i] >= flushRec {
                        recRec.flush(column: i)
                        recOut.flush(column: i)
                        lastEventRec[i] = t - 1
                    }
                }
            }
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
        if input {
            for j in r.recurrentTargets {
                weightRecord.append(
                    stamp: t, senderPopulation: 0, sender: i, targetPopulation: 0, target: j,
                    weight: Double(inRec.w[i * nRec + j]))
            }
        } else {
            // No autapse, no event.
            for j in r.recurrentTargets where j != i {
                weightRecord.append(
                    stamp: t, senderPopulation: 1, sender: i, targetPopulation: 0, target: j,
                    weight: Double(recRec.w[i * nRec + j]))
            }
            for k in r.readoutTargets {
                weightRecord.append(
                    stamp: t, senderPopulation: 1, sender: i, targetPopulation: 1, target: k,
                    weight: Double(recOut.w[i * nOut + k]))
            }
        }
    }

    /// The examples' loss: (readout_signal - target_signal)^2 per step of the iteration's window, summed per readout
    /// as numpy's pairwise `np.sum`, then 0.5 * mean over readouts.
    private func accumulateLoss(_ t: Int) {
        let s = stimulus, T = s.sequence
        let rel = t - s.lossStart
        guard rel >= 0 && rel / T < s.iterations else { return }
        let m = rel % T
        for k in 0..<nOut {
            let d = Double(readout.readoutSignal[k]) - Double(readout.targetSignal[k])
            squaredDiff[k * T + m] = d * d
        }
        guard m == T - 1 else { return }
        var total = 0.0
        squaredDiff.withUnsafeBufferPointer { sq in
            for k in 0..<nOut { total += numpyPairwiseSum(sq.baseAddress! + k * T, T) }
        }
        loss.append(0.5 * (total / Double(nOut)))
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
