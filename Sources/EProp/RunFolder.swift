import Foundation

/// An output folder that appears complete or not at all: everything is written into a hidden
/// temporary sibling, which is renamed to the final name only after the last file is written
/// (or at the first checkpoint, which must survive a crash; `run.json`'s `status` then tells
/// whether the run completed). Every file is written atomically.
///
/// It never loses a file it did not write: an existing folder is replaced only when asked and
/// only if it holds an earlier run's outputs and nothing else, and a folder that another run
/// created meanwhile is never replaced (the final name is claimed with an exclusive `mkdir`,
/// then the staging folder is renamed onto that empty folder).
public final class RunFolder {
    public private(set) var final: URL
    /// Where files go until `commit()`.
    public let staging: URL
    private var committed = false
    /// Replace an existing run folder at `final` when committing.
    private let replace: Bool
    /// Leftovers of earlier runs that died (their staging folders), removed when this one started.
    public private(set) var removedLeftovers: [String] = []
    /// Where files go now: the staging folder, or the final one once committed.
    public var current: URL { committed ? final : staging }

    /// The files a run writes, which a replacing run can write again: `.npy` arrays, figures,
    /// `run.json`, `loss.csv` and the checkpoint folder.
    public static func isRunOutput(_ name: String) -> Bool {
        name.hasSuffix(".npy") || name.hasSuffix(".png") || ["run.json", "loss.csv", "checkpoint", "evaluation.csv", "evaluation.json"].contains(name)
    }

    /// An existing run folder (for `--resume`): files are replaced in place, atomically. A
    /// checkpoint whose replacement was cut short by a crash is recovered, and temporary
    /// checkpoint folders of dead processes are removed.
    public init(existing: URL) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: existing.path, isDirectory: &isDir), isDir.boolValue else {
            throw RunFolderError("--resume \(existing.path): folder does not exist")
        }
        guard FileManager.default.isWritableFile(atPath: existing.path) else {
            throw RunFolderError("--resume \(existing.path): folder is not writable")
        }
        final = existing.standardizedFileURL
        staging = final
        committed = true
        replace = false
        removedLeftovers = try Checkpoint.recover(in: final)
    }

    /// Refuses an existing non-empty `final` unless `replace`, and refuses to replace anything
    /// but an earlier run's outputs; removes the staging folders of dead runs with the same
    /// name; creates the staging folder now, so an unwritable location fails before any work.
    public init(_ final: URL, replace: Bool) throws {
        let fm = FileManager.default
        self.final = final.standardizedFileURL
        self.replace = replace
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: self.final.path, isDirectory: &isDir), !isDir.boolValue {
            throw RunFolderError("--out \(final.path): exists and is not a folder")
        }
        if let contents = try? fm.contentsOfDirectory(atPath: self.final.path), !contents.isEmpty {
            guard replace else {
                throw RunFolderError("--out \(final.path): folder exists and is not empty; choose another folder or pass --force to replace an earlier run")
            }
            try Self.checkReplaceable(self.final, contents)
        }
        let parent = self.final.deletingLastPathComponent()
        do { try fm.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw RunFolderError("--out \(final.path): cannot create the parent folder (\(plainMessage(error)))")
        }
        removedLeftovers = Self.removeLeftovers(of: self.final)
        staging = parent.appendingPathComponent(".\(self.final.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: staging)
        do { try fm.createDirectory(at: staging, withIntermediateDirectories: false) } catch {
            throw RunFolderError("--out \(final.path): the folder \(parent.path) is not writable (\(plainMessage(error)))")
        }
    }

    deinit { if !committed { try? FileManager.default.removeItem(at: staging) } }

    /// `--force` replaces only an eprop-dense run folder (or evaluation folder) that holds
    /// nothing but run outputs.
    private static func checkReplaceable(_ folder: URL, _ contents: [String]) throws {
        let record = folder.appendingPathComponent(contents.contains("run.json") ? "run.json" : "evaluation.json")
        guard let data = try? Data(contentsOf: record),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any], json["eprop_dense_version"] != nil
        else {
            throw RunFolderError("--out \(folder.path): not an eprop-dense run folder (no run.json of eprop-dense); --force replaces only earlier runs, so choose another folder")
        }
        let foreign = contents.filter { !isRunOutput($0) }.sorted()
        guard foreign.isEmpty else {
            throw RunFolderError("--out \(folder.path): holds files eprop-dense did not write (\(foreign.prefix(3).joined(separator: ", "))\(foreign.count > 3 ? ", ..." : "")); move them away or choose another folder")
        }
    }

    /// Removes `.<name>.partial-<pid>` and `.<name>.old-<pid>` siblings of `final` whose process
    /// is gone (a run killed with SIGKILL leaves them); returns their names.
    private static func removeLeftovers(of final: URL) -> [String] {
        let fm = FileManager.default, parent = final.deletingLastPathComponent(), name = final.lastPathComponent
        let entries = (try? fm.contentsOfDirectory(atPath: parent.path)) ?? []
        return entries.filter { entry in
            for kind in [".partial-", ".old-"] where entry.hasPrefix(".\(name)\(kind)") {
                guard let pid = Int32(entry.dropFirst(".\(name)\(kind)".count)), !isAlive(pid) else { return false }
                return (try? fm.removeItem(at: parent.appendingPathComponent(entry))) != nil
            }
            return false
        }
    }

    /// A fresh default run folder name under `parent`: `<parent>/<UTC date>-<time>-<pid>`.
    public static func defaultName(under parent: String) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return "\(parent)/\(f.string(from: Date()))-\(getpid())"
    }

    public func url(_ name: String) -> URL { current.appendingPathComponent(name) }

    public func write(_ a: NPYArray, _ name: String) throws { try NPY.write(a, to: url(name)) }

    public func write(text: String, _ name: String) throws {
        do { try Data(text.utf8).write(to: url(name), options: .atomic) } catch {
            throw RunFolderError("writing \(url(name).path) failed: \(plainMessage(error))")
        }
    }

    /// Moves the staging folder to its final name; no-op once done. If another run created the
    /// final folder meanwhile, this run's outputs go to `<final>-<pid>` instead and the error says so.
    public func commit() throws {
        guard !committed else { return }
        let fm = FileManager.default
        let parent = final.deletingLastPathComponent()
        var old: URL?
        if replace && fm.fileExists(atPath: final.path) {
            let aside = parent.appendingPathComponent(".\(final.lastPathComponent).old-\(getpid())")
            try fm.moveItem(at: final, to: aside)
            old = aside
        }
        // Claim the name: mkdir fails if it exists; rename then replaces only our own empty folder.
        if mkdir(final.path, 0o755) == 0 {
            guard rename(staging.path, final.path) == 0 else {
                let reason = String(cString: strerror(errno))
                rmdir(final.path)
                throw RunFolderError("--out \(final.path): moving the outputs into place failed (\(reason)); they are in \(staging.path)")
            }
            committed = true
            if let old { try? fm.removeItem(at: old) }
            return
        }
        let taken = final
        final = URL(fileURLWithPath: "\(final.path)-\(getpid())")
        if let old { try? fm.moveItem(at: old, to: taken) }
        try fm.moveItem(at: staging, to: final)
        committed = true
        throw RunFolderError("--out \(taken.path): another run created this folder while this one was running; this run's outputs are in \(final.path)")
    }
}

/// Whether a process with this id exists.
func isAlive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

/// An error's cause in plain words: the POSIX reason of a file-system error where there is one
/// (Foundation's own descriptions name error domains and codes), else the description.
public func plainMessage(_ error: Error) -> String {
    let ns = error as NSError
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    switch CocoaError.Code(rawValue: ns.code) {
    case .fileWriteOutOfSpace: return String(cString: strerror(ENOSPC))
    case .fileWriteNoPermission, .fileReadNoPermission: return String(cString: strerror(EACCES))
    case .fileNoSuchFile, .fileReadNoSuchFile: return String(cString: strerror(ENOENT))
    case .fileWriteVolumeReadOnly: return String(cString: strerror(EROFS))
    default: return "\(error)"
    }
}

public struct RunFolderError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
