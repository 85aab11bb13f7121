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
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "--config \(path): file cannot be read")
        }
        guard (try? JSONSerialization.jsonObject(with: data)) != nil else {
            throw Failure(description: "--config \(path): not valid JSON")
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
