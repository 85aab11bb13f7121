import Foundation

/// SIGINT, SIGTERM and SIGUSR1 let the current iteration finish; the loop then checkpoints and
/// exits. SIGUSR1 is the one for runs under mpirun, which forwards it to every rank and waits,
/// where it kills the ranks 1 s after forwarding SIGTERM.
enum Interruption {
    nonisolated(unsafe) static var signal: Int32 = 0

    static var received: Int32? { signal == 0 ? nil : signal }

    static func install() {
        for s in [SIGINT, SIGTERM, SIGUSR1] {
            _ = Foundation.signal(s) { Interruption.signal = $0 }
        }
    }
}

/// Where the binary comes from, for the run record.
enum Provenance {
    /// The git commit of the repository the binary was built in, or "unknown".
    static func gitCommit() -> String {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = binary.deletingLastPathComponent()
        for _ in 0..<5 {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent(".git").path) {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                p.arguments = ["git", "-C", dir.path, "rev-parse", "HEAD"]
                let pipe = Pipe()
                p.standardOutput = pipe
                p.standardError = FileHandle.nullDevice
                guard (try? p.run()) != nil else { return "unknown" }
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                let s = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                return p.terminationStatus == 0 && !s.isEmpty ? s : "unknown"
            }
            dir = dir.deletingLastPathComponent()
        }
        return "unknown"
    }
}
