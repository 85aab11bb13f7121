import Foundation

/// A run of the online generation as an export folder describes it: the network's parameters, its initial weights
/// and the stimulus: a frozen pattern repeated every iteration (NEST's sine-wave example and test), or a stream of
/// labelled samples (NEST's N-MNIST example).
public struct OnlineRunSpec: Sendable {
    public var parameters: OnlineNetworkParameters
    public var weights: OnlineWeights
    public var stimulus: OnlineStimulus
    public var task: Task
    /// Where it came from: the export folder, or the generator and its seed.
    public var source: String

    public enum Task: Sendable {
        /// The frozen pattern and target that the stimulus repeats every iteration: [nIn, T] and [nOut, T].
        case frozenPattern(pattern: [Bool], target: [Double])
        /// One class per sequence, in the order simulated: [iterations * groupSize].
        case classification(labels: [Int])
    }

    public init(parameters: OnlineNetworkParameters, weights: OnlineWeights, stimulus: OnlineStimulus, task: Task, source: String) {
        (self.parameters, self.weights, self.stimulus, self.task, self.source) = (parameters, weights, stimulus, task, source)
    }
}

/// Reads an online export folder: what `notebooks-data/crossval/nest_online_export.py` writes from a NEST 3.10 run
/// (or a person writes by hand), and what `eprop-dense --init` accepts for the online generation.
///
/// `params.json` holds NEST's names and units:
/// - `model` (one of the four recurrent models), `n_in`, `n_rec`, `n_out`;
/// - `params_rec` and `params_out`: the `SetStatus` dictionaries of the recurrent neurons and the readouts; a list
///   instead of a number gives each neuron its own value (e.g. `tau_m`);
/// - optionally `more_populations` (mixed populations): a list of `{"model", "n", "params_rec"}`, the neurons after the
///   first population's, which has `n_rec` minus theirs;
/// - `optimizer`: `eprop_synapse`'s `optimizer` dictionary (`type`, `batch_size`, `eta`, `optimize_each_step`,
///   `Wmin`, `Wmax`, Adam's `beta_1`, `beta_2`, `epsilon`);
/// - `sequence_steps` (T), `iterations`, `simulated_steps` (T_sim), and optionally `final_update` (the examples'
///   forced final update, default false) and `flush_event_send_interval_in` (of the input parrots, default none);
/// - optionally `algorithm` (not NEST's): the engine's schedule, `exact` (default) or `every-step` (eprop-online-spec.md
///   §5.3: only with an infinite cutoff and `optimize_each_step`).
/// - `"task": "classification"` (NEST's N-MNIST example; default: the frozen pattern): `learning_window` (the last
///   steps of every sequence where the window is open and the loss and the class are taken), `group_size` (sequences
///   per iteration), `eta_per_iteration` (NEST's `SetDefaults` of eta before each iteration, [iterations]) and
///   `final_update_ms` (the time of the forced final update's generator spike; absent: none).
/// The arrays: `w_in_rec_init.npy` [n_rec, n_in], `w_rec_rec_init.npy` [n_rec, n_rec], `w_rec_out_init.npy`
/// [n_out, n_rec], `w_out_rec_feedback.npy` [n_rec, n_out]; optionally `mask_in_rec.npy`, `mask_rec_rec.npy`,
/// `mask_rec_out.npy` (bool, the weights' shapes: where synapses exist; absent: all but autapses); the frozen pattern's
/// `input_spike_bool_seq.npy` [n_in, T] and `target_signal_seq.npy` [n_out, T] (or [T]); classification's
/// `input_spike_steps.npy` and `input_spike_senders.npy` (integers, [E]: each input spike's stamp, the step in which
/// the recurrent neurons receive it, and its input; sorted by step, repeated for coinciding spikes, which a parrot
/// relays as one event with multiplicity) and `labels.npy` ([iterations * group_size] classes 0 ..< n_out). Anything
/// else in the folder (NEST's results) is not read.
public enum OnlineExport {
    /// Whether `folder` holds an online export: a `params.json` (legacy exports and run folders have none) whose
    /// `model` is one of the online models, or which cannot be read (so that `load` names what is wrong with it).
    public static func holdsOnlineRun(_ folder: URL) -> Bool {
        guard FileManager.default.fileExists(atPath: folder.appendingPathComponent("params.json").path) else { return false }
        guard let object = try? parameterFile(folder), let model = object["model"] as? String else { return true }
        return OnlineNeuronModel(rawValue: model) != nil
    }

    /// Reads and checks the export in `folder`; every failure names the file or the parameter and what it must be.
    public static func load(_ folder: URL) throws -> OnlineRunSpec {
        let json = try parameterFile(folder)
        let file = folder.appendingPathComponent("params.json").path
        func fail(_ key: String, _ condition: String) -> OnlineParameterError { OnlineParameterError("\(file): \(key)", condition) }
        func int(_ key: String) throws -> Int {
            guard let v = json[key] as? Double, v == v.rounded(), v >= 0, v < 1e15 else {
                throw fail(key, "a non-negative integer required")
            }
            return Int(v)
        }
        guard let modelName = json["model"] as? String, let model = OnlineNeuronModel(rawValue: modelName) else {
            throw fail("model", "one of \(OnlineNeuronModel.allCases.map(\.rawValue).joined(separator: ", ")) required")
        }
        let nRec = try int("n_rec")
        let groups = try recurrentGroups(json, model: model, nRec: nRec, file: file)
        var p = OnlineNetworkParameters(nIn: try int("n_in"), nRec: nRec, nOut: try int("n_out"), recurrent: groups[0].parameters)
        p.moreRecurrent = Array(groups.dropFirst())
        try apply(json["params_out"], named: "params_out", in: file, to: &p.readout)
        try apply(json["optimizer"], named: "optimizer", in: file, to: &p.optimizer)
        if json["flush_event_send_interval_in"] != nil {
            p.inputFlushEventSendInterval = try number(json["flush_event_send_interval_in"], "flush_event_send_interval_in", file)
        }
        if let name = json["algorithm"] {
            // Not NEST's: the engine's schedule (OnlineAlgorithm), "exact" (the default) or "every-step".
            guard let a = (name as? String).flatMap(OnlineAlgorithm.init(rawValue:)) else {
                throw fail("algorithm", "one of \(OnlineAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")) required")
            }
            p.algorithm = a
        }
        try p.validate()
        let (T, iterations, steps) = (try int("sequence_steps"), try int("iterations"), try int("simulated_steps"))
        guard T > 0 else { throw fail("sequence_steps", "sequence_steps > 0 required") }
        let classification: Bool
        switch json["task"] as? String ?? (json["task"] == nil ? "frozen_pattern" : "") {
        case "frozen_pattern": classification = false
        case "classification": classification = true
        default: throw fail("task", "frozen_pattern or classification required")
        }
        let groupSize = classification ? try int("group_size") : 1
        guard groupSize > 0 else { throw fail("group_size", "group_size > 0 required") }
        guard steps >= 2 + iterations * groupSize * T else {
            throw fail("simulated_steps", "simulated_steps >= 2 + iterations * group_size * sequence_steps = \(2 + iterations * groupSize * T) required")
        }

        func array(_ name: String, _ shapes: [[Int]]) throws -> [Double] {
            let url = folder.appendingPathComponent(name)
            let a = try NPY.read(url)
            guard shapes.contains(a.shape) else {
                throw OnlineParameterError(url.path, "shape \(shapes.map { "\($0)" }.joined(separator: " or ")) required, found \(a.shape)")
            }
            return a.values
        }
        func mask(_ name: String, _ shape: [Int]) throws -> [Bool]? {
            guard FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path) else { return nil }
            return try array(name, [shape]).map { $0 != 0 }
        }
        /// Integers >= 0 and < `bound`, [n] (any n when nil).
        func integers(_ name: String, _ n: Int?, below bound: Int) throws -> [Int] {
            let url = folder.appendingPathComponent(name)
            let a = try NPY.read(url)
            guard a.shape.count == 1, n == nil || a.shape[0] == n! else {
                throw OnlineParameterError(url.path, "shape [\(n.map(String.init) ?? "E")] required, found \(a.shape)")
            }
            if let bad = a.values.firstIndex(where: { $0 != $0.rounded() || $0 < 0 || $0 >= Double(bound) }) {
                throw OnlineParameterError(url.path, "integers in 0 ..< \(bound) required (entry \(bad) is \(a.values[bad]))")
            }
            return a.values.map { Int($0) }
        }
        let (nIn, nOut) = (p.nIn, p.nOut)
        let weights = OnlineWeights(
            wIn: try array("w_in_rec_init.npy", [[nRec, nIn]]), wRec: try array("w_rec_rec_init.npy", [[nRec, nRec]]),
            wOut: try array("w_rec_out_init.npy", [[nOut, nRec]]), feedback: try array("w_out_rec_feedback.npy", [[nRec, nOut]]),
            maskIn: try mask("mask_in_rec.npy", [nRec, nIn]), maskRec: try mask("mask_rec_rec.npy", [nRec, nRec]),
            maskOut: try mask("mask_rec_out.npy", [nOut, nRec]))
        if !classification {
            let pattern = try array("input_spike_bool_seq.npy", [[nIn, T]]).map { $0 != 0 }
            let target = try array("target_signal_seq.npy", nOut == 1 ? [[1, T], [T]] : [[nOut, T]])
            let stimulus = OnlineStimulus.frozenPattern(
                pattern: pattern, nIn: nIn, target: target, nOut: nOut, sequence: T, iterations: iterations,
                steps: steps, finalUpdate: (json["final_update"] as? Bool) ?? false)
            return OnlineRunSpec(
                parameters: p, weights: weights, stimulus: stimulus, task: .frozenPattern(pattern: pattern, target: target),
                source: "--init \(folder.path)")
        }
        let window = try int("learning_window")
        guard (1...T).contains(window) else { throw fail("learning_window", "1 <= learning_window <= sequence_steps required") }
        guard let etas = json["eta_per_iteration"] as? [Any], etas.count == iterations else {
            throw fail("eta_per_iteration", "a list of \(iterations) numbers (one per iteration) required")
        }
        let eta = try etas.map { try number($0, "eta_per_iteration", file) }
        let finalUpdate = json["final_update_ms"] == nil ? nil : try number(json["final_update_ms"], "final_update_ms", file)
        let finalStep = try finalUpdate.map { ms -> Int in
            let t = Int((ms / p.resolution).rounded())
            guard t >= 1, t + 1 < steps else { throw fail("final_update_ms", "a time whose step and the next are simulated (1 ..< \(steps - 1)) required") }
            return t
        }
        let stepsIn = try integers("input_spike_steps.npy", nil, below: steps)
        let senders = try integers("input_spike_senders.npy", stepsIn.count, below: nIn)
        if let k = stepsIn.indices.dropFirst().first(where: { stepsIn[$0 - 1] > stepsIn[$0] }) {
            throw OnlineParameterError(folder.appendingPathComponent("input_spike_steps.npy").path, "ascending steps required (entry \(k) decreases)")
        }
        let labels = try integers("labels.npy", iterations * groupSize, below: nOut)
        let stimulus = OnlineStimulus.classification(
            inputSteps: stepsIn, inputSenders: senders, nIn: nIn, labels: labels, nOut: nOut, sequence: T, learningWindow: window,
            groupSize: groupSize, etaPerIteration: eta, finalUpdateStep: finalStep, steps: steps)
        return OnlineRunSpec(
            parameters: p, weights: weights, stimulus: stimulus, task: .classification(labels: labels), source: "--init \(folder.path)")
    }

    /// The recurrent groups of `params.json`: the first population (`model`, `params_rec`) and `more_populations`; a
    /// list value gives each neuron of its population its own value (NEST's SetStatus with a list). Consecutive equal
    /// groups are merged.
    static func recurrentGroups(_ json: [String: Any], model: OnlineNeuronModel, nRec: Int, file: String) throws -> [OnlineRecurrentGroup] {
        func fail(_ key: String, _ condition: String) -> OnlineParameterError { OnlineParameterError("\(file): \(key)", condition) }
        var populations: [(model: OnlineNeuronModel, count: Int, params: Any?, name: String)] = []
        var others = 0
        if let more = json["more_populations"] {
            guard let list = more as? [[String: Any]] else { throw fail("more_populations", "a list of {model, n, params_rec} required") }
            for (q, g) in list.enumerated() {
                let name = "more_populations[\(q)]"
                guard let m = (g["model"] as? String).flatMap(OnlineNeuronModel.init(rawValue:)) else {
                    throw fail("\(name).model", "one of \(OnlineNeuronModel.allCases.map(\.rawValue).joined(separator: ", ")) required")
                }
                guard let k = g["n"] as? Double, k == k.rounded(), k >= 1 else { throw fail("\(name).n", "an integer >= 1 required") }
                populations.append((m, Int(k), g["params_rec"], "\(name).params_rec"))
                others += Int(k)
            }
        }
        guard nRec > others else { throw fail("n_rec", "more neurons than more_populations hold (\(others)) required") }
        populations.insert((model, nRec - others, json["params_rec"], "params_rec"), at: 0)
        var groups: [OnlineRecurrentGroup] = []
        for pop in populations {
            guard let d = pop.params as? [String: Any] else { throw OnlineParameterError("\(file): \(pop.name)", "an object required") }
            let perNeuron = d.filter { $0.value is [Any] }
            for (key, list) in perNeuron where (list as! [Any]).count != pop.count {
                throw OnlineParameterError("\(file): \(pop.name).\(key)", "one value per neuron (\(pop.count)) required")
            }
            for k in 0..<(perNeuron.isEmpty ? 1 : pop.count) {
                var r = OnlineRecurrentParameters(model: pop.model)
                try apply(d.mapValues { ($0 as? [Any])?[k] ?? $0 }, named: pop.name, in: file, to: &r)
                let count = perNeuron.isEmpty ? pop.count : 1
                if let last = groups.last, last.parameters == r { groups[groups.count - 1].count += count } else {
                    groups.append(OnlineRecurrentGroup(count: count, parameters: r))
                }
            }
        }
        return groups
    }

    /// Writes the stimulus arrays of `spec` as `load` reads them (into a run folder, so that it compares with the
    /// export file by file).
    static func writeStimulus(_ spec: OnlineRunSpec, to folder: RunFolder) throws {
        let (nIn, nOut, s) = (spec.parameters.nIn, spec.parameters.nOut, spec.stimulus)
        switch spec.task {
        case .frozenPattern(let pattern, let target):
            try folder.write(NPYArray(shape: [nIn, s.sequence], dtype: .bool, values: pattern.map { $0 ? 1 : 0 }), "input_spike_bool_seq.npy")
            try folder.write(NPYArray(shape: [nOut, s.sequence], values: target), "target_signal_seq.npy")
        case .classification(let labels):
            var steps: [Double] = [], senders: [Double] = []
            // Without the forced final update's spikes: the last nIn entries of the step after its own.
            let finalStep = s.recurrentExtraInputSteps.first.map { $0 + 1 }
            for t in 0..<s.steps {
                let end = s.inputOffsets[t + 1] - (t == finalStep ? nIn : 0)
                for q in s.inputOffsets[t]..<end {
                    steps.append(Double(t))
                    senders.append(Double(s.inputIndices[q]))
                }
            }
            try folder.write(NPYArray(shape: [steps.count], dtype: .int64, values: steps), "input_spike_steps.npy")
            try folder.write(NPYArray(shape: [senders.count], dtype: .int64, values: senders), "input_spike_senders.npy")
            try folder.write(NPYArray(shape: [labels.count], dtype: .int64, values: labels.map(Double.init)), "labels.npy")
        }
    }

    /// `params.json` as a dictionary. Python's `json` writes an infinite cutoff or interval as the bare word
    /// `Infinity`, which is not JSON; it is read as a number here.
    static func parameterFile(_ folder: URL) throws -> [String: Any] {
        let url = folder.appendingPathComponent("params.json")
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw OnlineParameterError(url.path, "a readable params.json required (\(plainMessage(error)))")
        }
        let strict = text.replacingOccurrences(of: "-Infinity", with: "\"-inf\"").replacingOccurrences(of: "Infinity", with: "\"inf\"")
        // JSONDecoder, not JSONSerialization: the latter rounds some decimals to the wrong double (22.222222222222182
        // became ...186 here), and NEST's parameters must arrive bit for bit.
        guard let object = (try? JSONDecoder().decode(JSONValue.self, from: Data(strict.utf8)))?.plain as? [String: Any] else {
            throw OnlineParameterError(url.path, "a JSON object required")
        }
        return object
    }

    /// A JSON value decoded with correctly rounded numbers; `plain` gives it as Bool, Double, String, [Any] or
    /// [String: Any].
    enum JSONValue: Decodable {
        case bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue]), null

        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let x = try? c.decode(Double.self) { self = .number(x) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
            else { self = .object(try c.decode([String: JSONValue].self)) }
        }

        var plain: Any {
            switch self {
            case .bool(let b): b
            case .number(let x): x
            case .string(let s): s
            case .array(let a): a.map(\.plain)
            case .object(let o): o.mapValues(\.plain)
            case .null: NSNull()
            }
        }
    }

    static func number(_ value: Any?, _ key: String, _ file: String) throws -> Double {
        if let x = value as? Double { return x }
        if let s = value as? String, s == "inf" || s == "-inf" { return s == "inf" ? .infinity : -.infinity }
        throw OnlineParameterError("\(file): \(key)", "a number required")
    }

    /// Sets the fields named in `dictionary` (NEST's names) on `target`; an unknown name is refused rather than
    /// ignored, and so is a start state (`V_m`, `adaptation`) other than the rest state the engine starts from.
    static func apply<T: NESTNamedParameters>(_ dictionary: Any?, named group: String, in file: String, to target: inout T) throws {
        guard let d = dictionary as? [String: Any] else { throw OnlineParameterError("\(file): \(group)", "an object required") }
        for (key, value) in d.sorted(by: { $0.key < $1.key }) {
            guard try target.set(key, value, file: file, group: group) else {
                throw OnlineParameterError("\(file): \(group).\(key)", "not a parameter this engine reads (known: \(T.nestNames.joined(separator: ", ")))")
            }
        }
    }
}

/// Parameters settable by NEST's names, as `SetStatus` does.
protocol NESTNamedParameters {
    static var nestNames: [String] { get }
    /// Sets `key`; false if the name is unknown.
    mutating func set(_ key: String, _ value: Any, file: String, group: String) throws -> Bool
}

extension NESTNamedParameters {
    func value(_ v: Any, _ key: String, _ file: String, _ group: String) throws -> Double {
        try OnlineExport.number(v, "\(group).\(key)", file)
    }

    /// A start state (`V_m`, `adaptation`): only the rest state is supported.
    func requireRest(_ v: Any, _ rest: Double, _ key: String, _ file: String, _ group: String) throws {
        guard try value(v, key, file, group) == rest else {
            throw OnlineParameterError("\(file): \(group).\(key)", "\(key) = \(rest) (the rest state, where the engine starts) required")
        }
    }
}

extension OnlineRecurrentParameters: NESTNamedParameters {
    static let nestNames = [
        "C_m", "E_L", "I_e", "tau_m", "t_ref", "V_th", "V_min", "V_reset", "refractory_input", "adapt_beta", "adapt_tau",
        "c_reg", "f_target", "kappa", "kappa_reg", "surrogate_gradient_function", "surrogate_gradient_height",
        "surrogate_gradient_width", "eprop_isi_trace_cutoff", "flush_event_send_interval", "V_m", "adaptation",
    ]

    mutating func set(_ key: String, _ v: Any, file: String, group: String) throws -> Bool {
        func x() throws -> Double { try value(v, key, file, group) }
        switch key {
        case "C_m": cM = try x()
        case "E_L": eL = try x()
        case "I_e": iE = try x()
        case "tau_m": tauM = try x()
        case "t_ref": tRef = try x()
        case "V_th": vTh = try x()
        case "V_min": vMin = try x()
        case "V_reset": vReset = try x()
        case "adapt_beta": adaptBeta = try x()
        case "adapt_tau": adaptTau = try x()
        case "c_reg": cReg = try x()
        case "f_target": fTarget = try x()
        case "kappa": kappa = try x()
        case "kappa_reg": kappaReg = try x()
        case "surrogate_gradient_height": surrogateHeight = try x()
        case "surrogate_gradient_width": surrogateWidth = try x()
        case "eprop_isi_trace_cutoff": isiTraceCutoff = try x()
        case "flush_event_send_interval": flushEventSendInterval = try x()
        case "refractory_input":
            guard let b = v as? Bool else { throw OnlineParameterError("\(file): \(group).\(key)", "true or false required") }
            refractoryInput = b
        case "surrogate_gradient_function":
            guard let s = v as? String, let f = SurrogateGradient(rawValue: s) else {
                throw OnlineParameterError(
                    "\(file): \(group).\(key)", "one of \(SurrogateGradient.allCases.map(\.rawValue).joined(separator: ", ")) required")
            }
            surrogateGradient = f
        // Where the neuron starts: E_L (V_m is absolute) and no adaptation. Checked after E_L is set (sorted keys:
        // "E_L" < "V_m").
        case "V_m": try requireRest(v, eL, key, file, group)
        case "adaptation": try requireRest(v, 0, key, file, group)
        default: return false
        }
        return true
    }
}

extension OnlineReadoutParameters: NESTNamedParameters {
    static let nestNames = ["C_m", "E_L", "I_e", "tau_m", "V_min", "eprop_isi_trace_cutoff", "V_m"]

    mutating func set(_ key: String, _ v: Any, file: String, group: String) throws -> Bool {
        func x() throws -> Double { try value(v, key, file, group) }
        switch key {
        case "C_m": cM = try x()
        case "E_L": eL = try x()
        case "I_e": iE = try x()
        case "tau_m": tauM = try x()
        case "V_min": vMin = try x()
        case "eprop_isi_trace_cutoff": isiTraceCutoff = try x()
        case "V_m": try requireRest(v, eL, key, file, group)
        default: return false
        }
        return true
    }
}

extension OnlineOptimizerParameters: NESTNamedParameters {
    static let nestNames = ["type", "batch_size", "eta", "optimize_each_step", "Wmin", "Wmax", "beta_1", "beta_2", "epsilon"]

    mutating func set(_ key: String, _ v: Any, file: String, group: String) throws -> Bool {
        func x() throws -> Double { try value(v, key, file, group) }
        switch key {
        case "type":
            guard let s = v as? String, let k = ["gradient_descent": OptimizerKind.gradientDescent, "adam": .adam][s] else {
                throw OnlineParameterError("\(file): \(group).\(key)", "gradient_descent or adam required")
            }
            kind = k
        case "batch_size":
            let b = try x()
            guard b == b.rounded(), b >= 1 else { throw OnlineParameterError("\(file): \(group).\(key)", "an integer >= 1 required") }
            batchSize = Int(b)
        case "eta": eta = try x()
        case "optimize_each_step":
            guard let b = v as? Bool else { throw OnlineParameterError("\(file): \(group).\(key)", "true or false required") }
            optimizeEachStep = b
        case "Wmin": wMin = try x()
        case "Wmax": wMax = try x()
        case "beta_1": beta1 = try x()
        case "beta_2": beta2 = try x()
        case "epsilon": epsilon = try x()
        default: return false
        }
        return true
    }
}
