import Foundation

/// An output folder that appears complete or not at all: everything is written into a hidden
/// temporary sibling, which is renamed to the final name only after the last file is written
/// (or at the first checkpoint, which must survive a crash; `run.json`'s `status` then tells
/// whether the run completed). Every file is written atomically.
public final class RunFolder {
    public let final: URL
    /// Where files go until `commit()`.
    public let staging: URL
    private var committed = false
    /// Where files go now: the staging folder, or the final one once committed.
    public var current: URL { committed ? final : staging }

    /// An existing run folder (for `--resume`): files are replaced in place, atomically.
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
    }

    /// Refuses an existing non-empty `final` unless `replace`; creates the staging folder now,
    /// so an unwritable location fails before any work is done.
    public init(_ final: URL, replace: Bool) throws {
        let fm = FileManager.default
        self.final = final.standardizedFileURL
        if let contents = try? fm.contentsOfDirectory(atPath: self.final.path), !contents.isEmpty, !replace {
            throw RunFolderError("--out \(final.path): folder exists and is not empty; choose another folder or pass --force to replace it")
        }
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: self.final.path, isDirectory: &isDir), !isDir.boolValue {
            throw RunFolderError("--out \(final.path): exists and is not a folder")
        }
        let parent = self.final.deletingLastPathComponent()
        do { try fm.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw RunFolderError("--out \(final.path): cannot create the parent folder (\(error.localizedDescription))")
        }
        staging = parent.appendingPathComponent(".\(self.final.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: staging)
        do { try fm.createDirectory(at: staging, withIntermediateDirectories: false) } catch {
            throw RunFolderError("--out \(final.path): the folder \(parent.path) is not writable (\(error.localizedDescription))")
        }
    }

    deinit { if !committed { try? FileManager.default.removeItem(at: staging) } }

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
        try Data(text.utf8).write(to: url(name), options: .atomic)
    }

    /// Moves the staging folder to its final name (replacing an existing one); no-op once done.
    public func commit() throws {
        guard !committed else { return }
        let fm = FileManager.default
        if fm.fileExists(atPath: final.path) {
            let old = final.deletingLastPathComponent().appendingPathComponent(".\(final.lastPathComponent).old-\(getpid())")
            try fm.moveItem(at: final, to: old)
            try fm.moveItem(at: staging, to: final)
            try? fm.removeItem(at: old)
        } else {
            try fm.moveItem(at: staging, to: final)
        }
        committed = true
    }
}

public struct RunFolderError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
