import Foundation

/// An n-dimensional array as read from or written to numpy's `.npy` format (versions 1-3,
/// C order, little endian). Values are held as `Double`; `dtype` records the file's type.
public struct NPYArray: Equatable, Sendable {
    public enum DType: String, Sendable {
        case float64 = "<f8", float32 = "<f4", int32 = "<i4", int64 = "<i8", bool = "|b1", uint8 = "|u1"
        var size: Int {
            switch self {
            case .float64, .int64: 8
            case .float32, .int32: 4
            case .bool, .uint8: 1
            }
        }
    }

    public var shape: [Int]
    public var dtype: DType
    /// Row-major (C order) values.
    public var values: [Double]

    public init(shape: [Int], dtype: DType = .float64, values: [Double]) {
        precondition(values.count == shape.reduce(1, *), "values do not fill shape \(shape)")
        self.shape = shape
        self.dtype = dtype
        self.values = values
    }

    public init<S: Scalar>(_ m: Matrix<S>, dtype: DType = .float64) {
        self.init(shape: [m.rows, m.cols], dtype: dtype, values: m.flat())
    }

    public init<S: Scalar>(vector m: Matrix<S>, dtype: DType = .float64) {
        self.init(shape: [m.count], dtype: dtype, values: m.flat())
    }
}

/// A `.npy` file that cannot be used, with the file and the reason.
public struct NPYError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

public enum NPY {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"
    /// Refuse arrays larger than this many elements (2^31): a corrupt header must not make
    /// the reader allocate without bound.
    static let maxElements = 1 << 31

    // MARK: reading

    /// Reads a `.npy` file; the error names the file and the real cause (missing, a folder or a
    /// device instead of a file, no permission, ...).
    public static func read(_ url: URL) throws -> NPYArray {
        try checkRegularFile(url)
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw NPYError(path: url.path, reason: "cannot be read (\(plainMessage(error)))")
        }
        return try decode(data, path: url.path)
    }

    /// Refuses a path that is missing or is not a regular file (a folder, a FIFO or a device
    /// would fail obscurely or never finish reading).
    static func checkRegularFile(_ url: URL) throws {
        var st = stat()
        guard stat(url.path, &st) == 0 else {
            throw NPYError(path: url.path, reason: errno == ENOENT ? "file does not exist" : "cannot be read (\(String(cString: strerror(errno))))")
        }
        let kind = st.st_mode & S_IFMT
        guard kind == S_IFREG else {
            let what = kind == S_IFDIR ? "a folder" : kind == S_IFIFO ? "a FIFO (named pipe)" : kind == S_IFCHR || kind == S_IFBLK ? "a device" : "not a regular file"
            throw NPYError(path: url.path, reason: "is \(what), not a .npy file")
        }
        guard access(url.path, R_OK) == 0 else { throw NPYError(path: url.path, reason: "cannot be read (permission denied)") }
    }

    /// What a `.npy` header says: the dtype string (`'<i4'`, ...), the order and the shape, and
    /// where the data start.
    public struct Header: Sendable {
        public let descr: String
        public let fortranOrder: Bool
        public let shape: [Int]
        /// Elements (the product of `shape`, at most `maxElements`).
        public let count: Int
        /// Byte offset of the data from the start of the `.npy` bytes.
        public let bodyStart: Int
    }

    /// Parses the header at the start of `bytes` (at least the header; the data may follow or not).
    public static func header(_ bytes: UnsafeRawBufferPointer, path: String) throws -> Header {
        func fail(_ why: String) -> NPYError { NPYError(path: path, reason: "not a valid .npy file: \(why)") }
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw fail("missing the \\x93NUMPY magic") }
        let major = bytes[6]
        let headerLen: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header") }
            headerLen = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw fail("unsupported format version \(major)")
        }
        guard headerStart + headerLen <= bytes.count else { throw fail("header longer than the file") }
        guard let header = String(bytes: bytes[headerStart..<headerStart + headerLen], encoding: .utf8)
        else { throw fail("header is not text") }
        guard let descr = field("descr", in: header) else { throw fail("header has no 'descr'") }
        let descrValue = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
        guard let fortran = field("fortran_order", in: header) else { throw fail("header has no 'fortran_order'") }
        let fortranOrder: Bool
        switch fortran.trimmingCharacters(in: .whitespaces) {
        case "False": fortranOrder = false
        case "True": fortranOrder = true
        default: throw fail("'fortran_order' must be True or False")
        }
        guard let shapeText = tuple("shape", in: header) else { throw fail("header has no 'shape'") }
        var shape: [Int] = []
        for part in shapeText.split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let n = Int(t), n >= 0 else { throw fail("bad shape entry '\(t)'") }
            shape.append(n)
        }
        var count = 1
        for n in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow, product <= maxElements else { throw fail("shape \(shape) is too large") }
            count = product
        }
        return Header(descr: descrValue, fortranOrder: fortranOrder, shape: shape, count: count, bodyStart: headerStart + headerLen)
    }

    public static func decode(_ data: Data, path: String = "<data>") throws -> NPYArray {
        let bytes = [UInt8](data)
        func fail(_ why: String) -> NPYError { NPYError(path: path, reason: "not a valid .npy file: \(why)") }
        let h = try bytes.withUnsafeBytes { try header($0, path: path) }
        let (descrValue, fortranOrder, shape, count) = (h.descr, h.fortranOrder, h.shape, h.count)
        let dtype: NPYArray.DType
        switch descrValue {
        case "<f8": dtype = .float64
        case "<f4": dtype = .float32
        case "<i4": dtype = .int32
        case "<i8": dtype = .int64
        case "|b1": dtype = .bool
        case "|u1": dtype = .uint8
        default: throw fail("dtype '\(descrValue)' is not supported (use float64, float32, int32, int64, bool or uint8)")
        }
        let bodyStart = h.bodyStart
        let expected = count * dtype.size
        let actual = bytes.count - bodyStart
        guard actual == expected else {
            throw fail("shape \(shape) of \(descrValue) needs \(expected) data bytes, file has \(actual)"
                + (actual < expected ? " (truncated)" : ""))
        }
        var values = [Double](repeating: 0, count: count)
        try bytes.withUnsafeBytes { raw in
            let body = UnsafeRawBufferPointer(rebasing: raw[bodyStart...])
            for i in 0..<count {
                let o = i * dtype.size
                switch dtype {
                case .float64: values[i] = Double(bitPattern: body.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian)
                case .float32: values[i] = Double(Float(bitPattern: body.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian))
                case .int32: values[i] = Double(Int32(littleEndian: body.loadUnaligned(fromByteOffset: o, as: Int32.self)))
                case .int64: values[i] = Double(Int64(littleEndian: body.loadUnaligned(fromByteOffset: o, as: Int64.self)))
                case .uint8: values[i] = Double(body[o])
                case .bool:
                    guard body[o] <= 1 else { throw fail("bool element \(i) has byte value \(body[o])") }
                    values[i] = Double(body[o])
                }
            }
        }
        if fortranOrder && shape.count > 1 { values = cOrder(fromFortran: values, shape: shape) }
        return NPYArray(shape: shape, dtype: dtype, values: values)
    }

    /// Reorders column-major (Fortran) values into row-major (C) order.
    private static func cOrder(fromFortran f: [Double], shape: [Int]) -> [Double] {
        var fortranStride = [Int](repeating: 1, count: shape.count)
        for d in 1..<shape.count { fortranStride[d] = fortranStride[d - 1] * shape[d - 1] }
        var out = [Double](repeating: 0, count: f.count)
        var index = [Int](repeating: 0, count: shape.count)
        for c in 0..<f.count {
            out[c] = f[zip(index, fortranStride).reduce(0) { $0 + $1.0 * $1.1 }]
            var d = shape.count - 1  // advance the C-order multi-index (last axis fastest)
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return out
    }

    /// The text after `'key':` up to the next top-level comma or closing brace.
    private static func field(_ key: String, in header: String) -> String? {
        guard let r = header.range(of: "'\(key)':") else { return nil }
        let rest = header[r.upperBound...]
        let end = rest.firstIndex(where: { $0 == "," || $0 == "}" }) ?? rest.endIndex
        return String(rest[..<end]).trimmingCharacters(in: .whitespaces)
    }

    /// The text inside the parentheses after `'key':`.
    private static func tuple(_ key: String, in header: String) -> String? {
        guard let r = header.range(of: "'\(key)':") else { return nil }
        let rest = header[r.upperBound...]
        guard let open = rest.firstIndex(of: "("), let close = rest.firstIndex(of: ")"), open < close else { return nil }
        return String(rest[rest.index(after: open)..<close])
    }

    // MARK: writing

    public static func encode(_ a: NPYArray) -> Data {
        let shapeText = a.shape.count == 1 ? "(\(a.shape[0]),)" : "(" + a.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(a.dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad with spaces so that magic + version + length + header + "\n" is a multiple of 64.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let n = UInt16(header.utf8.count)
        let prefix = magic + [1, 0, UInt8(n & 0xff), UInt8(n >> 8)] + Array(header.utf8)
        // One allocation, filled in place (appending element by element cost seconds for the
        // millions of weights and moments of an n_rec 2000 checkpoint).
        var out = Data(count: prefix.count + a.values.count * a.dtype.size)
        out.withUnsafeMutableBytes { raw in
            raw.copyBytes(from: prefix)
            let body = UnsafeMutableRawBufferPointer(rebasing: raw[prefix.count...])
            for (i, v) in a.values.enumerated() {
                switch a.dtype {
                case .float64: body.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self)
                case .float32: body.storeBytes(of: Float(v).bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                case .int32: body.storeBytes(of: Int32(v).littleEndian, toByteOffset: 4 * i, as: Int32.self)
                case .int64: body.storeBytes(of: Int64(v).littleEndian, toByteOffset: 8 * i, as: Int64.self)
                case .bool, .uint8: body[i] = UInt8(v != 0 ? (a.dtype == .bool ? 1 : v) : 0)
                }
            }
        }
        return out
    }

    /// Writes atomically: a temporary file in the same folder, then a rename.
    public static func write(_ a: NPYArray, to url: URL) throws {
        do { try encode(a).write(to: url, options: .atomic) } catch {
            throw NPYError(path: url.path, reason: "cannot be written (\(plainMessage(error)))")
        }
    }
}
