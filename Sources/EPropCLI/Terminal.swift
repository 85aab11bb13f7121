import EProp
import Foundation

/// Progress and remaining time on stderr (one updating line on a terminal, sparse lines otherwise).
public final class Progress {
    let total: Int, enabled: Bool, tty: Bool
    var elapsed = 0.0
    var lastPrint = ContinuousClock.now
    let start: Int
    /// Whether the terminal shows an unfinished progress line.
    private var showing = false
    init(total: Int, done: Int = 0, enabled: Bool) {
        self.total = total
        start = done
        self.enabled = enabled
        tty = isatty(2) != 0
    }
    func update(done: Int, lastSeconds: Double) {
        elapsed += lastSeconds
        guard enabled, tty || ContinuousClock.now - lastPrint > .seconds(10) || done == total else { return }
        lastPrint = ContinuousClock.now
        let remaining = elapsed / Double(max(done - start, 1)) * Double(total - done)
        let line = String(format: "[%d/%d] %.0f%%, %.1f s elapsed, ~%.1f s left", done, total, 100 * Double(done) / Double(total), elapsed, remaining)
        FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + line : line + "\n").utf8))
        showing = tty
    }
    /// Erases the progress line, so that the next line printed starts on a clean line.
    func clear() {
        if showing { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        showing = false
    }
    func finish() { clear() }
}

/// Runs the repository's matplotlib script on a run folder.
enum Plotter {
    /// The Python interpreter and the script, found from the working directory or from the
    /// binary (.build/<config>/eprop-dense); checked before training.
    static func locate() throws -> (python: [String], script: String) {
        let fm = FileManager.default
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let roots = [URL(fileURLWithPath: fm.currentDirectoryPath),
                     binary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent(),
                     binary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()]
        guard let root = roots.first(where: { fm.fileExists(atPath: $0.appendingPathComponent("notebooks-data/plot_run.py").path) }) else {
            throw PlotError("--plot: notebooks-data/plot_run.py not found; run eprop-dense from the repository folder, or plot later with python3 notebooks-data/plot_run.py RUN")
        }
        let venvPython = root.appendingPathComponent(".venv/bin/python").path
        let python = fm.isExecutableFile(atPath: venvPython) ? [venvPython] : ["/usr/bin/env", "python3"]
        return (python, root.appendingPathComponent("notebooks-data/plot_run.py").path)
    }

    static func render(_ runFolder: URL) throws {
        let (python, script) = try locate()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python[0])
        p.arguments = Array(python.dropFirst()) + [script, runFolder.path]
        do { try p.run() } catch {
            throw PlotError("--plot: cannot start Python (\(error.localizedDescription)); install Python 3 with matplotlib: bash scripts/setup.sh")
        }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw PlotError("--plot: plotting failed (status \(p.terminationStatus)); the run's outputs are saved in \(runFolder.path); install matplotlib with: bash scripts/setup.sh")
        }
    }
}

struct PlotError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// `--w-min -100` as `--w-min=-100`: the parser would read the negative number as an option.
public func joinNegativeValues(_ args: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < args.count {
        let a = args[i]
        if a.hasPrefix("--"), !a.contains("="), i + 1 < args.count, args[i + 1].hasPrefix("-"), Double(args[i + 1]) != nil {
            out.append("\(a)=\(args[i + 1])")
            i += 2
        } else {
            out.append(a)
            i += 1
        }
    }
    return out
}

/// Whether this CPU runs the engine as built.
public enum CPUCheck {
    /// A message if the engine was built for AVX2/FMA (`EPROP_DENSE_AVX2`, see Package.swift) and
    /// this CPU lacks them (Linux: the flags line of /proc/cpuinfo), else nil.
    public static func missingFeatures() -> String? {
        #if EPROP_DENSE_AVX2
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        return missingFeatures(cpuinfo: info)
        #else
        return nil
        #endif
    }

    /// The message for a `/proc/cpuinfo` text whose first flags line lacks avx2 or fma, else nil.
    public static func missingFeatures(cpuinfo: String) -> String? {
        guard let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let have = Set(flags.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }).map(String.init))
        let missing = ["avx2", "fma"].filter { !have.contains($0) }
        guard !missing.isEmpty else { return nil }
        return "this eprop-dense was built for x86-64 CPUs with AVX2 and FMA, and this CPU lacks \(missing.joined(separator: ", ")); rebuild it portably: EPROP_DENSE_PORTABLE=1 swift build -c release"
    }
}
