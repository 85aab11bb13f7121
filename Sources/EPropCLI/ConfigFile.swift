import ArgumentParser
import Foundation

/// `--config FILE`: a JSON object of options, keys being option names without the dashes.
/// Each key is checked by parsing it alone, so an unknown key or a value of the wrong type is
/// reported with the key's name before any work is done.
public enum ConfigFile {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The arguments with `--config FILE` replaced by the file's options (placed first).
    public static func expand(_ args: [String]) throws -> [String] {
        guard let i = args.firstIndex(where: { $0 == "--config" || $0.hasPrefix("--config=") }) else { return args }
        let path: String
        var rest = args
        if args[i].hasPrefix("--config=") {
            path = String(args[i].dropFirst("--config=".count))
            rest.remove(at: i)
        } else {
            guard i + 1 < args.count else { throw Failure(description: "--config needs a file name") }
            path = args[i + 1]
            rest.removeSubrange(i...(i + 1))
        }
        return try options(fromFile: path) + rest
    }

    static func options(fromFile path: String) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw Failure(description: "--config \(path): file does not exist")
        }
        guard !isDir.boolValue else { throw Failure(description: "--config \(path): is a folder, not a JSON file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "--config \(path): file cannot be read (permission denied)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) else {
            throw Failure(description: "--config \(path): not valid JSON")
        }
        // A run's run.json: its configuration, as options.
        if let record = object as? [String: Any], record["eprop_dense_version"] != nil, let config = record["config"] as? [String: Any] {
            return try check(runRecordOptions(config), path: path)
        }
        guard let dict = try? JSONDecoder().decode([String: Value].self, from: data) else {
            throw Failure(description: "--config \(path): the top level must be an object whose values are numbers, strings or true/false")
        }
        var out: [String] = []
        for key in dict.keys.sorted() {
            guard key != "config", key != "help", !key.hasPrefix("-") else {
                throw Failure(description: "--config \(path): key '\(key)' is not allowed (write option names without dashes)")
            }
            let args: [String]
            switch dict[key]! {
            case .bool(let b):
                guard isFlag(key) else { throw Failure(description: "--config \(path): key '\(key)' takes a value, not true/false") }
                args = b ? ["--\(key)"] : (isFlag("no-\(key)") ? ["--no-\(key)"] : [])
            case .number(let n):
                args = ["--\(key)=\(n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : String(n))"]
            case .string(let s):
                args = ["--\(key)=\(s)"]
            }
            if case .failure(let message) = check(args) {
                throw Failure(description: "--config \(path): key '\(key)': \(message)")
            }
            out += args
        }
        return out
    }

    /// The options that reproduce a run's configuration (`run.json`'s `config`, keyed as
    /// `TrainingConfig` encodes itself): camelCase names become option names, readout values get
    /// `-out`, and values the configuration holds but its options would not use are left out.
    static func runRecordOptions(_ config: [String: Any]) -> [String] {
        let renamed = ["recurrent.surrogateHeight": "surrogate-gradient-height", "recurrent.surrogateWidth": "surrogate-gradient-width",
                       "recurrent.surrogateGradient": "surrogate-gradient-function", "optimizer.kind": "optimizer", "readout.loss": "loss"]
        let recurrent = config["recurrent"] as? [String: Any] ?? [:], optimizer = config["optimizer"] as? [String: Any] ?? [:]
        var skipped: Set<String> = ["readout.regularSpikeArrival"]  // not an option: always false
        if !(recurrent["surrogateHeight"] is NSNull) { skipped.insert("recurrent.gamma") }
        if optimizer["kind"] as? String == "gradient-descent" { skipped.formUnion(["optimizer.beta1", "optimizer.beta2", "optimizer.epsilon"]) }
        if recurrent["model"] as? String == "lif" { skipped.formUnion(["recurrent.adaptTau", "recurrent.adaptBeta"]) }
        if config["gradient"] as? String == "bptt" { skipped.formUnion(["feedback", "nestMissingLearningSignal"]) } else { skipped.insert("bpttThroughReset") }
        func kebab(_ s: String) -> String {
            s.reduce(into: "") { out, ch in
                if ch.isUppercase || (ch.isNumber && !(out.last?.isNumber ?? true)) { out += "-" }
                out += ch.lowercased()
            }
        }
        var out: [String] = []
        func walk(_ value: Any, _ path: String) {
            if let d = value as? [String: Any] {
                for (k, v) in d { walk(v, path.isEmpty ? k : "\(path).\(k)") }
                return
            }
            guard !skipped.contains(path), !(value is NSNull), "\(value)" != "-inf" else { return }
            let parts = path.split(separator: ".").map(String.init)
            let name = renamed[path] ?? (kebab(parts.last!) + (parts.first == "readout" ? "-out" : ""))
            if let n = value as? NSNumber, String(cString: n.objCType) == "c" {  // JSON true/false
                out.append(n.boolValue ? "--\(name)" : "--no-\(name)")
            } else {
                out.append("--\(name)=\(value)")
            }
        }
        walk(config, "")
        return out.sorted()
    }

    /// Checks each option of a run record alone, as for keys of a JSON options file.
    private static func check(_ args: [String], path: String) throws -> [String] {
        for a in args {
            if case .failure(let message) = check([a]) { throw Failure(description: "--config \(path): \(a): \(message)") }
        }
        return args
    }

    /// A JSON value of a configuration key.
    enum Value: Decodable {
        case bool(Bool), number(Double), string(String)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let n = try? c.decode(Double.self) { self = .number(n) }
            else { self = .string(try c.decode(String.self)) }
        }
    }

    private static func isFlag(_ key: String) -> Bool {
        if case .success = check(["--\(key)"]) { return true }
        return false
    }

    private enum Check { case success, failure(String) }

    /// Parses the arguments alone (with validation of the values they carry).
    private static func check(_ args: [String]) -> Check {
        do {
            _ = try EPropDense.parseAsRoot(args)
            return .success
        } catch {
            let message = EPropDense.message(for: error)
            if message.hasPrefix("Unknown option") { return .failure("unknown key") }
            return .failure(message)
        }
    }
}
