import Foundation

/// NEST 3.10's N-MNIST example (`pynest/examples/eprop_plasticity/eprop_supervised_classification_neuromorphic_mnist.py`)
/// as the script builds it, so that a generated run equals the NEST run of the same seed and files bit for bit:
/// `eprop_iaf` (or another recurrent model with the script's settings for it), 150 recurrent neurons, 10 readouts, one
/// input per active pixel (2 * 34 * 34 minus NEST's blocklist: 1196), sequences of 300 steps, the learning window over
/// the last 10 steps of each, sparse connectivity (75 % of input and 99 % of recurrent synapses absent), gradient
/// descent once per spike, MSE on a one-hot target, the class by argmax of the mean readout signal in the window.
/// Training iterations (groups of `groupSize` samples from the training split, eta = 5e-3 (1 - kappa)^2) are followed
/// by test iterations (groups from the test split, eta = 0), then the forced final update.
///
/// The data are N-MNIST as its authors distribute it (`Train/<digit>/*.bin`, `Test/<digit>/*.bin`, `NMNISTFolder`).
/// The order is the script's: per split, every file of digit 0, then 1, ... (names sorted), shuffled by
/// `np.random.permutation` after the weights and masks are drawn; groups are taken in that order, wrapping around.
public enum OnlineNMNISTTask {
    /// The script's sizes and schedule (its defaults: 150 recurrent neurons, groups of 100, 10 training and 2 test
    /// iterations, seed 1).
    public struct Settings: Sendable {
        public var model: OnlineNeuronModel = .eprop_iaf
        public var nRec = 150
        public var groupSize = 100
        public var trainIterations = 10
        public var testIterations = 2
        public var seed: UInt32 = 1
        /// Fractions of absent synapses (`sparsity_level_*`): input -> recurrent, recurrent -> recurrent, -> readout.
        public var sparsity = (inRec: 0.75, recRec: 0.99, recOut: 0.0)

        public init() {}
    }

    public static let sequence = 300
    public static let learningWindow = 10
    public static let classes = 10
    /// The longest recording of the data set (µs): event times map to round(t * 300 / 336040) steps.
    public static let timeMaxMicroseconds = 336_040

    /// The script's neuron and optimizer parameters for `model` (`eta` stays NEST's default 1e-4: the phases set it).
    public static func parameters(_ model: OnlineNeuronModel, nRec: Int) -> OnlineNetworkParameters {
        let T = Double(sequence), scale = 1.0 - 0.99
        var r = OnlineRecurrentParameters(model: model)
        (r.cM, r.cReg, r.eL, r.isiTraceCutoff, r.fTarget, r.flushEventSendInterval) = (1, 2.0 / T / (scale * scale), 0, 100, 10, T)
        (r.iE, r.kappa, r.kappaReg, r.surrogateGradient) = (0, 0.99, 0.99, .piecewiseLinear)
        (r.surrogateHeight, r.surrogateWidth, r.tRef, r.tauM, r.vTh) = (0.5, 1.0 / 1.7, 0, 30, 0.6)
        switch model {
        case .eprop_iaf_adapt: r.adaptBeta = 0
        case .eprop_iaf_psc_delta, .eprop_iaf_psc_delta_adapt: (r.vReset, r.vTh) = (-0.5, 0.5)
        case .eprop_iaf: break
        }
        var p = OnlineNetworkParameters(nIn: NMNISTFolder.activePixels.count, nRec: nRec, nOut: classes, recurrent: r)
        (p.readout.cM, p.readout.eL, p.readout.isiTraceCutoff, p.readout.iE, p.readout.tauM) = (1, 0, 100, 0, 100)
        p.optimizer = OnlineOptimizerParameters(kind: .gradientDescent)
        (p.optimizer.batchSize, p.optimizer.optimizeEachStep, p.optimizer.wMin, p.optimizer.wMax) = (1, false, -100, 100)
        return p
    }

    /// The learning rate of the training phase, 5e-3 (1 - kappa)^2.
    public static var trainingEta: Double { let scale = 1.0 - 0.99; return 5e-3 * (scale * scale) }

    /// The run of `settings` on the splits `train` and `test`.
    public static func generate(_ s: Settings, train: NMNISTFolder, test: NMNISTFolder) throws -> OnlineRunSpec {
        let p = parameters(s.model, nRec: s.nRec)
        let (nIn, nRec, nOut, T, G) = (p.nIn, s.nRec, classes, sequence, s.groupSize)
        try requireOnline(G > 0, "groupSize", "groupSize > 0 required")
        try requireOnline(s.trainIterations >= 0 && s.testIterations >= 0, "iterations", "iterations >= 0 required")
        var rng = NumpyRandomState(seed: s.seed)
        let scale = 1.0 - 0.99
        // randn(n_in, n_rec).T / sqrt(n_in); randn(n_rec, n_rec).T / sqrt(n_rec) with a zero diagonal (float64).
        var wIn = rng.normalWeights(post: nRec, pre: nIn, divisor: Double(nIn).squareRoot(), float32: false).flat()
        var wRec = rng.normalWeights(post: nRec, pre: nRec, divisor: Double(nRec).squareRoot(), zeroDiagonal: true, float32: false).flat()
        // Glorot: uniform(-l, l, (n_rec, n_out)) with l = sqrt(3 / max(1, (n_rec + n_out) / 2)), transposed, times scale.
        let limit = (3.0 * (1.0 / max(1.0, Double(nRec + nOut) / 2.0))).squareRoot()
        let glorot = (0..<nRec * nOut).map { _ in -limit + (limit - -limit) * rng.uniform() }
        var wOut = (0..<nOut * nRec).map { q in glorot[(q % nRec) * nOut + q / nRec] * scale }
        // randn(n_rec, n_out) / scale.
        let feedback = (0..<nRec * nOut).map { _ in rng.normal() / scale }
        let maskIn = rng.createMask(&wIn, sparsity: s.sparsity.inRec)
        let maskRec = rng.createMask(&wRec, sparsity: s.sparsity.recRec)
        let maskOut = rng.createMask(&wOut, sparsity: s.sparsity.recOut)
        let weights = OnlineWeights(
            wIn: wIn, wRec: wRec, wOut: wOut, feedback: feedback, maskIn: maskIn, maskRec: maskRec, maskOut: maskOut)
        // The loaders' orders (training split first), then the groups: training iterations, then test iterations.
        let trainOrder = rng.permutation(train.count), testOrder = rng.permutation(test.count)
        var samples: [(folder: NMNISTFolder, index: Int)] = []
        for (folder, order, n) in [(train, trainOrder, s.trainIterations), (test, testOrder, s.testIterations)] {
            for q in 0..<n * G { samples.append((folder, order[q % folder.count])) }
        }
        var inputSteps: [Int] = [], inputSenders: [Int] = []
        let iterations = s.trainIterations + s.testIterations
        for (q, sample) in samples.enumerated() {
            // The script sets each phase's spike times when the phase starts, replacing the previous ones: an event at
            // r = T in the last sample of a phase (its generator time is the next phase's first step + 1) is lost
            // unless it is the last phase.
            let lastOfPhase = q % G == G - 1 && q / G < iterations - 1
            // A pixel's events at relative step r reach the recurrent neurons at 2 + q T + r (generator at 1 + q T + r).
            for (step, input) in try sample.folder.events(sample.index) where !(lastOfPhase && step == T) {
                inputSteps.append(2 + q * T + step)
                inputSenders.append(input)
            }
        }
        // Sorted by step, then input; coinciding events stay (their multiplicity).
        let order = inputSteps.indices.sorted { (inputSteps[$0], inputSenders[$0]) < (inputSteps[$1], inputSenders[$1]) }
        // Each phase simulates its group (G T steps); then 2 + 1 steps, the final-update spike at task + 1 + 1 ms
        // (task = iterations G T + 2) and 3 more steps.
        let task = iterations * G * T + 2
        let stimulus = OnlineStimulus.classification(
            inputSteps: order.map { inputSteps[$0] }, inputSenders: order.map { inputSenders[$0] }, nIn: nIn,
            labels: samples.map { $0.folder.labels[$0.index] }, nOut: nOut, sequence: T, learningWindow: learningWindow,
            groupSize: G, etaPerIteration: (0..<iterations).map { $0 < s.trainIterations ? trainingEta : 0 },
            finalUpdateStep: task + 2, steps: iterations * G * T + 6)
        return OnlineRunSpec(
            parameters: p, weights: weights, stimulus: stimulus, task: .classification(labels: samples.map { $0.folder.labels[$0.index] }),
            source: "NEST's N-MNIST example, seed \(s.seed), \(train.url.path) and \(test.url.path)")
    }
}

extension NumpyRandomState {
    /// NEST's N-MNIST script's `create_mask` applied to weights: `choice([0, 1], shape, p=[level, 1 - level])` draws a
    /// uniform u per weight (C order) and keeps it iff u >= cdf[0] = level / (level + (1 - level)); the weights are
    /// multiplied by the mask, and NEST connects where the product is non-zero (an absent synapse reads +0). Returns
    /// where synapses exist.
    public mutating func createMask(_ w: inout [Double], sparsity level: Double) -> [Bool] {
        let cut = level / (level + (1 - level))
        w = w.map { x in uniform() >= cut ? x : 0 }
        return w.map { $0 != 0 }
    }
}

/// One split of N-MNIST on disk (G. Orchard et al., Front. Neurosci. 9:437, 2015): `<digit 0-9>/<file>`, each file
/// a sequence of 5-byte events (byte 0 = x, byte 1 = y (0 ..< 34), bit 7 of byte 2 = polarity, the low 23 bits of
/// bytes 2-4 = time in µs, non-decreasing). Only the file list and labels are held; a sample is read when asked for.
public struct NMNISTFolder: Sendable {
    public let url: URL
    /// Every file, digit 0 first, names in byte order (Python's `sorted(os.listdir(...))`), and its digit.
    public let files: [URL]
    public let labels: [Int]
    public var count: Int { files.count }

    /// NEST's blocklist of pixels that never carry information (`NMNIST_pixels_blocklist.txt` of NEST 3.10, 1116
    /// pixel indices polarity * 34^2 + y * 34 + x, as inclusive ranges).
    static let blocklist: [ClosedRange<Int>] = [
        0...62, 64...151, 159...180, 196...212, 232...245, 267...278, 301...312, 335...345, 370...379, 404...413,
        438...442, 444...447, 471...481, 506...514, 539...549, 573...582, 608...617, 641...650, 675...684, 709...718,
        743...752, 776...786, 810...820, 843...854, 877...889, 910...923, 943...958, 976...993, 1009...1028,
        1042...1064, 1074...1218, 1220...1275, 1277...1288, 1290...1305, 1316...1335, 1353...1368, 1388...1391,
        1393...1401, 1424...1433, 1457...1457, 1459...1459, 1461...1467, 1492...1501, 1526...1533, 1560...1568,
        1593...1598, 1600...1602, 1627...1636, 1662...1670, 1696...1704, 1730...1738, 1763...1772, 1797...1806,
        1831...1839, 1866...1873, 1899...1907, 1933...1941, 1966...1975, 2000...2010, 2033...2043, 2067...2079,
        2100...2109, 2111...2113, 2133...2149, 2165...2182, 2198...2219, 2230...2256, 2259...2259, 2261...2311,
    ]

    /// The inputs: active pixels in ascending order (input i is pixel activePixels[i]).
    public static let activePixels: [Int] = (0..<2 * 34 * 34).filter { px in !blocklist.contains { $0.contains(px) } }
    /// pixel -> input index, -1 for blocklisted pixels.
    static let inputOfPixel: [Int] = {
        var a = [Int](repeating: -1, count: 2 * 34 * 34)
        for (i, px) in activePixels.enumerated() { a[px] = i }
        return a
    }()

    public init(_ url: URL) throws {
        self.url = url
        var files: [URL] = [], labels: [Int] = []
        for digit in 0..<OnlineNMNISTTask.classes {
            let dir = url.appendingPathComponent(String(digit))
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: dir.path) } catch {
                throw OnlineParameterError(dir.path, "a folder of N-MNIST files for digit \(digit) required (\(plainMessage(error)))")
            }
            for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                files.append(dir.appendingPathComponent(name))
                labels.append(digit)
            }
        }
        try requireOnline(!files.isEmpty, url.path, "at least one N-MNIST file required")
        (self.files, self.labels) = (files, labels)
    }

    /// Sample k's events as (relative step, input), in file order, on NEST's grid: step = round(t 300 / 336040) (to
    /// even, as `np.around`); events of blocklisted pixels are dropped.
    public func events(_ k: Int) throws -> [(step: Int, input: Int)] {
        let url = files[k]
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw OnlineParameterError(url.path, "a readable N-MNIST file required (\(plainMessage(error)))") }
        try requireOnline(data.count % 5 == 0, url.path, "an N-MNIST file (5-byte events) required: \(data.count) bytes")
        var out: [(step: Int, input: Int)] = []
        out.reserveCapacity(data.count / 5)
        var last = 0
        try data.withUnsafeBytes { (b: UnsafeRawBufferPointer) in
            for e in 0..<data.count / 5 {
                let (x, y, b2) = (Int(b[5 * e]), Int(b[5 * e + 1]), Int(b[5 * e + 2]))
                let t = ((b2 << 16) | (Int(b[5 * e + 3]) << 8) | Int(b[5 * e + 4])) & 0x7F_FFFF
                guard x < 34, y < 34 else {
                    throw OnlineParameterError(url.path, "event \(e): x and y in 0 ..< 34 required, found (\(x), \(y))")
                }
                guard t >= last else { throw OnlineParameterError(url.path, "event \(e): non-decreasing times required (\(t) µs after \(last) µs)") }
                last = t
                let input = Self.inputOfPixel[(b2 >> 7) * 34 * 34 + y * 34 + x]
                guard input >= 0 else { continue }
                let step = (Double(t * OnlineNMNISTTask.sequence) / Double(OnlineNMNISTTask.timeMaxMicroseconds)).rounded(.toNearestOrEven)
                out.append((Int(step), input))
            }
        }
        return out
    }
}
