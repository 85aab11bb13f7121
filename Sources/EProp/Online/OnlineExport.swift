import Foundation

/// A run of the online generation as an export folder describes it: the network's parameters, its initial weights
/// and the stimulus (a frozen pattern repeated every iteration, as NEST's sine-wave example and test).
public struct OnlineRunSpec: Sendable {
    public var parameters: OnlineNetworkParameters
    public var weights: OnlineWeights
    public var stimulus: OnlineStimulus
    /// The frozen pattern and target that the stimulus repeats every iteration: [nIn, T] and [nOut, T].
    public var pattern: [Bool]
    public var target: [Double]
    /// Where it came from: the export folder, or the generator and its seed.
    public var source: String
}

/// Reads an online export folder: what `notebooks-data/crossval/nest_online_export.py` writes from a NEST 3.10 run
/// (or a person writes by hand), and what `eprop-dense --init` accepts for the online generation.
///
/// `params.json` holds NEST's names and units:
/// - `model` (one of the four recurrent models), `n_in`, `n_rec`, `n_out`;
/// - `params_rec` and `params_out`: the `SetStatus` dictionaries of the recurrent neurons and the readouts;
/// - `optimizer`: `eprop_synapse`'s `optimizer` dictionary (`type`, `batch_size`, `eta`, `optimize_each_step`,
///   `Wmin`, `Wmax`, Adam's `beta_1`, `beta_2`, `epsilon`);
/// - `sequence_steps` (T), `iterations`, `simulated_steps` (T_sim), and optionally `final_update` (the examples'
///   forced final update, default false) and `flush_event_send_interval_in` (of the input parrots, default none);
/// - optionally `algorithm` (not NEST's): the engine's schedule, `exact` (default) or `every-step` (eprop-online-spec.md
///   §5.3: only with an infinite cutoff and `optimize_each_step`).
/// The arrays: `input_spike_bool_seq.npy` [n_in, T], `target_signal_seq.npy` [n_out, T] (or [T]),
/// `w_in_rec_init.npy` [n_rec, n_in], `w_rec_rec_init.npy` [n_rec, n_rec], `w_rec_out_init.npy` [n_out, n_rec],
/// `w_out_rec_feedback.npy` [n_rec, n_out]. Anything else in the folder (NEST's results) is not read.
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
        var recurrent = OnlineRecurrentParameters(model: model)
        try apply(json["params_rec"], named: "params_rec", in: file, to: &recurrent)
        var p = OnlineNetworkParameters(nIn: try int("n_in"), nRec: try int("n_rec"), nOut: try int("n_out"), recurrent: recurrent)
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
        let finalUpdate = (json["final_update"] as? Bool) ?? false
        guard T > 0 else { throw fail("sequence_steps", "sequence_steps > 0 required") }
        guard steps >= 2 + iterations * T else {
            throw fail("simulated_steps", "simulated_steps >= 2 + iterations * sequence_steps = \(2 + iterations * T) required")
        }

        func array(_ name: String, _ shapes: [[Int]]) throws -> [Double] {
            let url = folder.appendingPathComponent(name)
            let a = try NPY.read(url)
            guard shapes.contains(a.shape) else {
                throw OnlineParameterError(url.path, "shape \(shapes.map { "\($0)" }.joined(separator: " or ")) required, found \(a.shape)")
            }
            return a.values
        }
        let (nIn, nRec, nOut) = (p.nIn, p.nRec, p.nOut)
        let weights = OnlineWeights(
            wIn: try array("w_in_rec_init.npy", [[nRec, nIn]]), wRec: try array("w_rec_rec_init.npy", [[nRec, nRec]]),
            wOut: try array("w_rec_out_init.npy", [[nOut, nRec]]), feedback: try array("w_out_rec_feedback.npy", [[nRec, nOut]]))
        let pattern = try array("input_spike_bool_seq.npy", [[nIn, T]])
        let target = try array("target_signal_seq.npy", nOut == 1 ? [[1, T], [T]] : [[nOut, T]])
        let stimulus = OnlineStimulus.frozenPattern(
            pattern: pattern.map { $0 != 0 }, nIn: nIn, target: target, nOut: nOut, sequence: T, iterations: iterations,
            steps: steps, finalUpdate: finalUpdate)
        return OnlineRunSpec(
            parameters: p, weights: weights, stimulus: stimulus, pattern: pattern.map { $0 != 0 }, target: target,
            source: "--init \(folder.path)")
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
