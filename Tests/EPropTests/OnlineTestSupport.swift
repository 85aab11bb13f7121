import EProp
import Foundation
import XCTest

/// The committed NEST 3.10 online e-prop references (notebooks-data/reference/nest-3.10-online-*; PROVENANCE.md in each).
let onlineReferenceRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("notebooks-data/reference")

/// One NEST online run: its network, initial weights, stimulus, and what NEST produced.
struct OnlineReference {
    var parameters: OnlineNetworkParameters
    var weights: OnlineWeights
    var stimulus: OnlineStimulus
    /// NEST's loss per iteration.
    var loss: [Double]
    /// Every recurrent spike NEST recorded: stamp (= emitting step + 1) and neuron, sorted by time then neuron.
    var spikeStamps: [Int]
    var spikeSenders: [Int]
    /// Initial and final (stored) weights [post, pre] per projection.
    var initial: [OnlineProjectionKind: [Double]]
    var final: [OnlineProjectionKind: [Double]]
    var dir: URL

    static let names: [OnlineProjectionKind: String] = [
        .inputToRecurrent: "w_in_rec", .recurrentToRecurrent: "w_rec_rec", .recurrentToReadout: "w_rec_out",
    ]

    /// Loads a NEST export folder (`nest_online_export.py` / `online_fixture_from_export.py`): the network, weights
    /// and stimulus as `eprop-dense --init` reads them (`OnlineExport`), optionally with other `parameters`, and
    /// NEST's results.
    init(dir: URL, parameters: OnlineNetworkParameters? = nil) throws {
        func read(_ name: String) throws -> [Double] { try NPY.read(dir.appendingPathComponent(name + ".npy")).values }
        self.dir = dir
        let spec = try OnlineExport.load(dir)
        (self.parameters, weights, stimulus) = (parameters ?? spec.parameters, spec.weights, spec.stimulus)
        loss = try read("loss")
        let stampFile = dir.appendingPathComponent("spikes_rec_stamps.npy")
        spikeStamps = try FileManager.default.fileExists(atPath: stampFile.path)
            ? NPY.read(stampFile).values.map { Int($0) } : read("spikes_rec_times_ms").map { Int($0) }
        spikeSenders = try read("spikes_rec_senders").map { Int($0) }
        initial = [:]
        final = [:]
        for (k, name) in Self.names {
            initial[k] = try read(name + "_init")
            final[k] = try read(name + "_final")
        }
    }
}

/// Spikes equal to NEST's, reporting the first differing spike and its step.
func assertSameOnlineSpikes(
    _ sim: OnlineSimulation<some Scalar>, _ ref: OnlineReference, file: StaticString = #filePath, line: UInt = #line
) {
    let stamps = sim.spikeSteps.map { Int($0) + 1 }, senders = sim.spikeNeurons.map { Int($0) }
    for i in 0..<min(stamps.count, ref.spikeStamps.count)
    where stamps[i] != ref.spikeStamps[i] || senders[i] != ref.spikeSenders[i] {
        let step = min(stamps[i], ref.spikeStamps[i]) - 1
        XCTFail(
            "spike \(i) differs: (stamp \(stamps[i]), neuron \(senders[i])) vs NEST (stamp \(ref.spikeStamps[i]), neuron \(ref.spikeSenders[i])); first differing step \(step) (iteration \((step - 2) / ref.stimulus.sequence), step \((step - 2) % ref.stimulus.sequence) of it)",
            file: file, line: line)
        return
    }
    XCTAssertEqual(stamps.count, ref.spikeStamps.count, "spike counts differ", file: file, line: line)
}

/// max |W - W_NEST| / max |W_NEST - W_init| per projection (the weight difference relative to the change NEST made).
func relativeWeightDifferences(_ sim: OnlineSimulation<some Scalar>, _ ref: OnlineReference) -> [OnlineProjectionKind: (rel: Double, diff: Difference, change: Double)] {
    var out: [OnlineProjectionKind: (rel: Double, diff: Difference, change: Double)] = [:]
    for k in OnlineProjectionKind.allCases {
        let w = sim.weights(k, stored: true), nest = ref.final[k]!, w0 = ref.initial[k]!
        let d = Difference(w, nest)
        let change = Difference(nest, w0).maxAbs
        out[k] = (d.maxAbs / change, d, change)
    }
    return out
}

/// The ratio of the largest relative loss difference.
func maxRelativeLossDifference(_ loss: [Double], _ ref: [Double]) -> Double {
    zip(loss, ref).map { abs($0 - $1) / abs($1) }.max() ?? .infinity
}

/// One line of measured agreement on stdout (for the logs and the closing note; the assertions carry the bounds).
func report(_ line: String) { print("[online] \(line)") }
