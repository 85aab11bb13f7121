import Foundation

/// A `.npz` archive as `numpy.savez` writes it (a ZIP file of `.npy` members, stored
/// uncompressed, ZIP64 where needed), opened for reading parts of its members without loading
/// them: the central directory is read once, and `read(_:elements:into:)` fetches a range of a
/// member's elements with `pread` (safe from several threads).
///
/// Only stored members can be read in parts; a compressed member (`numpy.savez_compressed`) is
/// refused with an error saying so.
public final class NPZFile: @unchecked Sendable {
    public let url: URL
    /// A member: its `.npy` header and the byte offset of its first element in the archive.
    public struct Member: Sendable {
        public let header: NPY.Header
        /// Bytes per element and whether the elements are signed integers, unsigned integers or
        /// floats (`descr` `<iN`, `<uN`, `<fN`; one-byte types `|i1`, `|u1`, `|b1`).
        public let size: Int
        public let kind: Character
        let dataOffset: Int
    }
    public private(set) var members: [String: Member] = [:]
    private let fd: Int32
    private let fileSize: Int

    public init(_ url: URL) throws {
        self.url = url
        try NPY.checkRegularFile(url)
        fd = open(url.path, O_RDONLY)
        guard fd >= 0 else { throw NPYError(path: url.path, reason: "cannot be opened (\(String(cString: strerror(errno))))") }
        var st = stat()
        fstat(fd, &st)
        fileSize = Int(st.st_size)
        do { try readDirectory() } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    private func fail(_ why: String) -> NPYError { NPYError(path: url.path, reason: "not a valid .npz file (numpy.savez): \(why)") }

    /// `count` bytes at `offset`, or an error naming what was being read.
    func bytes(at offset: Int, count: Int, _ what: String) throws -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= fileSize, count <= fileSize - offset else {
            throw fail("\(what) lies outside the file (truncated?)")
        }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            guard n > 0 else { throw NPYError(path: url.path, reason: "reading \(what) failed (\(n < 0 ? String(cString: strerror(errno)) : "unexpected end of file"))") }
            done += n
        }
        return out
    }

    /// Finds the end-of-central-directory record (and its ZIP64 form), then every member.
    private func readDirectory() throws {
        let tailLength = min(fileSize, 22 + 65535)
        let tail = try bytes(at: fileSize - tailLength, count: tailLength, "the end of the archive")
        guard let eocd = stride(from: tailLength - 22, through: 0, by: -1).first(where: { tail.u32($0) == 0x0605_4b50 }) else {
            throw fail("no ZIP end-of-central-directory record (not a ZIP archive, or truncated)")
        }
        var entries = Int(tail.u16(eocd + 10)), dirSize = Int(tail.u32(eocd + 12)), dirOffset = Int(tail.u32(eocd + 16))
        if entries == 0xFFFF || dirSize == 0xFFFF_FFFF || dirOffset == 0xFFFF_FFFF {
            // ZIP64: the locator just before the record points to the ZIP64 record.
            let locatorAt = fileSize - tailLength + eocd - 20
            let locator = try bytes(at: locatorAt, count: 20, "the ZIP64 locator")
            guard locator.u32(0) == 0x0706_4b50 else { throw fail("ZIP64 locator missing") }
            let record = try bytes(at: Int(clamping: locator.u64(8)), count: 56, "the ZIP64 end record")
            guard record.u32(0) == 0x0606_4b50 else { throw fail("ZIP64 end record missing") }
            (entries, dirSize, dirOffset) = (Int(clamping: record.u64(32)), Int(clamping: record.u64(40)), Int(clamping: record.u64(48)))
        }
        guard dirSize <= 64 << 20 else { throw fail("central directory of \(dirSize) bytes is implausibly large") }
        let dir = try bytes(at: dirOffset, count: dirSize, "the central directory")
        var p = 0
        for _ in 0..<entries {
            guard p + 46 <= dir.count, dir.u32(p) == 0x0201_4b50 else { throw fail("central directory entry damaged") }
            let method = dir.u16(p + 10)
            var size = Int(dir.u32(p + 24)), compressed = Int(dir.u32(p + 20)), local = Int(dir.u32(p + 42))
            let nameLength = Int(dir.u16(p + 28)), extraLength = Int(dir.u16(p + 30)), commentLength = Int(dir.u16(p + 32))
            guard p + 46 + nameLength + extraLength + commentLength <= dir.count else { throw fail("central directory entry damaged") }
            let name = String(decoding: dir[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            // ZIP64 extra field: the 64-bit values of the fields that are 0xFFFFFFFF, in order.
            var e = p + 46 + nameLength
            while e + 4 <= p + 46 + nameLength + extraLength {
                let id = dir.u16(e), length = Int(dir.u16(e + 2))
                if id == 1 {
                    var q = e + 4
                    func next() throws -> Int {
                        guard q + 8 <= e + 4 + length else { throw fail("ZIP64 field of \(name) too short") }
                        defer { q += 8 }
                        return Int(clamping: dir.u64(q))
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                e += 4 + length
            }
            p += 46 + nameLength + extraLength + commentLength
            guard name.hasSuffix(".npy") else { continue }
            let key = String(name.dropLast(4))
            guard method == 0 else {
                throw fail("member \(key) is compressed (method \(method)); write the file with numpy.savez, not savez_compressed, so that it can be read a sample at a time")
            }
            let localHeader = try bytes(at: local, count: 30, "the local header of \(key)")
            guard localHeader.u32(0) == 0x0403_4b50 else { throw fail("local header of \(key) damaged") }
            let start = local + 30 + Int(localHeader.u16(26)) + Int(localHeader.u16(28))
            guard size >= 10, start <= fileSize, size <= fileSize - start else { throw fail("member \(key) lies outside the file (truncated?)") }
            let head = try bytes(at: start, count: min(size, 65536 + 12), "the header of \(key)")
            let path = "\(url.path)[\(key)]"
            let header = try head.withUnsafeBytes { try NPY.header($0, path: path) }
            guard !header.fortranOrder || header.shape.count <= 1 else { throw NPYError(path: path, reason: "Fortran order is not supported here; save a C-order array") }
            let d = header.descr
            guard d.count == 3, let kind = d.dropFirst().first, "iufb".contains(kind), let width = Int(String(d.last!)), [1, 2, 4, 8].contains(width),
                  d.first == "<" || (d.first == "|" && width == 1) else {
                throw NPYError(path: path, reason: "dtype '\(d)' is not supported (little-endian integers or floats)")
            }
            guard header.bodyStart + header.count * width == size else {
                throw NPYError(path: path, reason: "shape \(header.shape) of \(d) needs \(header.count * width) data bytes, the member has \(size - header.bodyStart)")
            }
            members[key] = Member(header: header, size: width, kind: kind, dataOffset: start + header.bodyStart)
        }
    }

    /// The member `name`, or an error naming the file and what the member must hold.
    public func member(_ name: String, _ meaning: String) throws -> Member {
        guard let m = members[name] else { throw NPYError(path: url.path, reason: "no array '\(name)' (\(meaning))") }
        return m
    }

    /// Elements `range` of an integer member as `Int64`, into `out` (resized to fit); unsigned
    /// values above `Int64.max` are refused.
    public func readIntegers(_ m: Member, _ range: Range<Int>, into out: inout [Int64], name: String) throws {
        guard m.kind == "i" || m.kind == "u" || m.kind == "b" else {
            throw NPYError(path: "\(url.path)[\(name)]", reason: "integers required, got dtype '\(m.header.descr)'")
        }
        let raw = try bytes(at: m.dataOffset + range.lowerBound * m.size, count: range.count * m.size, "elements \(range) of \(name)")
        out.removeAll(keepingCapacity: true)
        raw.withUnsafeBytes { b in
            for i in 0..<range.count {
                let o = i * m.size
                switch (m.kind, m.size) {
                case ("i", 1): out.append(Int64(Int8(bitPattern: b[o])))
                case ("i", 2): out.append(Int64(Int16(littleEndian: b.loadUnaligned(fromByteOffset: o, as: Int16.self))))
                case ("i", 4): out.append(Int64(Int32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: Int32.self))))
                case ("i", 8): out.append(Int64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: Int64.self)))
                case (_, 1): out.append(Int64(b[o]))
                case ("u", 2): out.append(Int64(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt16.self))))
                case ("u", 4): out.append(Int64(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self))))
                default: out.append(Int64(clamping: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self))))
                }
            }
        }
    }

    /// A 0-dimensional (or one-element) member as a number.
    public func scalar(_ name: String, _ meaning: String) throws -> Double {
        let m = try member(name, meaning)
        guard m.header.count == 1 else { throw NPYError(path: "\(url.path)[\(name)]", reason: "a single number required (\(meaning)), got shape \(m.header.shape)") }
        let raw = try bytes(at: m.dataOffset, count: m.size, name)
        if m.kind == "f" {
            return raw.withUnsafeBytes { b in
                m.size == 8 ? Double(bitPattern: b.loadUnaligned(as: UInt64.self).littleEndian)
                    : m.size == 4 ? Double(Float(bitPattern: b.loadUnaligned(as: UInt32.self).littleEndian))
                    : Double(Float16(bitPattern: b.loadUnaligned(as: UInt16.self).littleEndian))
            }
        }
        var v: [Int64] = []
        try readIntegers(m, 0..<1, into: &v, name: name)
        return Double(v[0])
    }
}

private extension Array where Element == UInt8 {
    func u16(_ o: Int) -> UInt16 { UInt16(self[o]) | UInt16(self[o + 1]) << 8 }
    func u32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(self[o + $1]) << (8 * $1) } }
    func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(self[o + $1]) << (8 * $1) } }
}
