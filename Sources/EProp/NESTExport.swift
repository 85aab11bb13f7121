import Foundation

/// Reads a network's initial state from a NEST export in the layout of the project's
/// reference data (`notebooks-data/reference/`, written by `notebooks-data/crossval/nest_export.py`).
public enum NESTExport {
    /// The files `--init DIR` reads.
    public static let files = [
        "w_in_rec_init.npy", "w_rec_rec_init.npy", "w_rec_out_init.npy", "w_out_rec_feedback.npy",
        "tau_m_rec.npy", "input_spike_bool_seq.npy", "target_signal_seq.npy",
    ]

    /// The initial state in `dir`; with `patterns` (a dataset's, or `--input`'s) the folder's own
    /// pattern files are not read and need not exist. `weights: "final"` reads a run folder's
    /// trained weights (`w_*_final.npy`) in place of the initial ones.
    public static func load(_ dir: URL, patterns: Patterns? = nil, weights: String = "init") throws -> NetworkInit {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw InitError("--init \(dir.path): folder does not exist")
        }
        var contents: [String: Data] = [:]
        let wanted = files.filter { patterns == nil || !$0.hasSuffix("_seq.npy") }
        for f in wanted {
            let url = dir.appendingPathComponent(weights == "init" ? f : f.replacingOccurrences(of: "_init.npy", with: "_\(weights).npy"))
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw InitError("--init \(dir.path): missing \(url.lastPathComponent) (a NEST export needs \(wanted.joined(separator: ", ")))")
            }
            try NPY.checkRegularFile(url)
            do { contents[f] = try Data(contentsOf: url) } catch {
                throw InitError("\(url.path): cannot be read (\(plainMessage(error)))")
            }
        }
        return try decode(contents, folder: dir.path, patterns: patterns)
    }

    /// Builds the initial state from the contents of the `files`, checking every shape.
    public static func decode(_ contents: [String: Data], folder: String, patterns given: Patterns? = nil) throws -> NetworkInit {
        func array(_ name: String) throws -> NPYArray {
            guard let data = contents[name] else { throw InitError("--init \(folder): missing \(name)") }
            let a = try NPY.decode(data, path: "\(folder)/\(name)")
            guard a.values.allSatisfy({ $0.isFinite }) else { throw InitError("\(name): contains NaN or infinity") }
            return a
        }
        func matrix(_ name: String) throws -> (NPYArray, Matrix<Double>) {
            let a = try array(name)
            switch a.shape.count {
            case 1: return (a, Matrix(rows: 1, cols: a.shape[0], a.values))
            case 2: return (a, Matrix(rows: a.shape[0], cols: a.shape[1], a.values))
            default: throw InitError("\(name): expected a 1- or 2-dimensional array, got shape \(a.shape)")
            }
        }
        let (aIn, wIn) = try matrix("w_in_rec_init.npy")
        let (aRec, wRec) = try matrix("w_rec_rec_init.npy")
        let (aOut, wOut) = try matrix("w_rec_out_init.npy")
        let (aB, feedback) = try matrix("w_out_rec_feedback.npy")
        let (aTau, tau) = try matrix("tau_m_rec.npy")
        // Patterns: [n_in, T] and [n_out, T] for a frozen task, or [K, n_in, T] and [K, n_out, T]
        // with one pattern per sequence.
        func checkValues() throws {
            guard tau.flat().allSatisfy({ $0 > 0 }) else { throw InitError("tau_m_rec.npy: tau_m > 0 required (ms)") }
            for j in 0..<wRec.rows where wRec[j, j] != 0 {
                throw InitError("w_rec_rec_init.npy: diagonal (autapse) \(j) must be 0, got \(wRec[j, j])")
            }
        }
        if let given {
            guard aIn.shape.count == 2, aIn.shape[1] == given.nIn, aOut.shape.count == 2, aOut.shape[0] == given.nOut else {
                throw InitError("--init \(folder): its weights w_in_rec [n_rec, n_in] \(aIn.shape) and w_rec_out [n_out, n_rec] \(aOut.shape) do not fit the patterns' n_in \(given.nIn) and n_out \(given.nOut)")
            }
            let nRec = aIn.shape[0], nOut = given.nOut
            for (a, name, shape) in [(aRec, "w_rec_rec_init.npy", [nRec, nRec]), (aOut, "w_rec_out_init.npy", [nOut, nRec]), (aB, "w_out_rec_feedback.npy", [nRec, nOut]), (aTau, "tau_m_rec.npy", [nRec])] where a.shape != shape {
                throw InitError("\(name): expected shape \(shape) to match w_in_rec_init.npy \(aIn.shape), got \(a.shape)")
            }
            try checkValues()
            return NetworkInit(wInRec: wIn, wRecRec: wRec, wRecOut: wOut, wOutRecFeedback: feedback, tauM: tau, patterns: given)
        }
        let aX = try array("input_spike_bool_seq.npy"), aY = try array("target_signal_seq.npy")

        guard aIn.shape.count == 2, aIn.shape[0] > 0, aIn.shape[1] > 0 else {
            throw InitError("w_in_rec_init.npy: expected shape [n_rec, n_in] with n_rec, n_in > 0, got \(aIn.shape)")
        }
        let nRec = aIn.shape[0], nIn = aIn.shape[1]
        guard aOut.shape.count == 2, aOut.shape[0] > 0 else {
            throw InitError("w_rec_out_init.npy: expected shape [n_out, n_rec], got \(aOut.shape)")
        }
        let nOut = aOut.shape[0]
        guard aX.shape.count == 2 || aX.shape.count == 3, aX.shape.last! >= 2, aX.shape.count == 2 || aX.shape[0] >= 1 else {
            throw InitError("input_spike_bool_seq.npy: expected shape [n_in, T] or [K, n_in, T] with T >= 2, got \(aX.shape)")
        }
        let T = aX.shape.last!
        let K = aX.shape.count == 3 ? aX.shape[0] : nil
        func expect(_ a: NPYArray, _ name: String, _ shape: [Int], _ meaning: String) throws {
            guard a.shape == shape else {
                throw InitError("\(name): expected shape \(shape) (\(meaning)) to match w_in_rec_init.npy [n_rec=\(nRec), n_in=\(nIn)], w_rec_out_init.npy [n_out=\(nOut), ...] and input_spike_bool_seq.npy [..., T=\(T)]; got \(a.shape)")
            }
        }
        try expect(aRec, "w_rec_rec_init.npy", [nRec, nRec], "[n_rec, n_rec]")
        try expect(aOut, "w_rec_out_init.npy", [nOut, nRec], "[n_out, n_rec]")
        try expect(aB, "w_out_rec_feedback.npy", [nRec, nOut], "[n_rec, n_out]")
        try expect(aTau, "tau_m_rec.npy", [nRec], "[n_rec]")
        try expect(aX, "input_spike_bool_seq.npy", (K.map { [$0] } ?? []) + [nIn, T], K == nil ? "[n_in, T]" : "[K, n_in, T]")
        try expect(aY, "target_signal_seq.npy", (K.map { [$0] } ?? []) + [nOut, T], K == nil ? "[n_out, T] like the input" : "[K, n_out, T] like the input")
        guard aX.values.allSatisfy({ $0 == 0 || $0 == 1 }) else {
            throw InitError("input_spike_bool_seq.npy: values must be 0 or 1 (spike or not)")
        }
        try checkValues()
        return NetworkInit(
            wInRec: wIn, wRecRec: wRec, wRecOut: wOut, wOutRecFeedback: feedback, tauM: tau,
            patterns: Patterns(input: aX, target: aY))
    }
}

/// An `--init` folder that cannot be used.
public struct InitError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
