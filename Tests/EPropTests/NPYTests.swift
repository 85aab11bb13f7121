import EProp
import Foundation
import XCTest

final class NPYTests: XCTestCase {
    func testRoundTripEveryDType() throws {
        for dtype in [NPYArray.DType.float64, .float32, .int32, .int64, .bool, .uint8] {
            let values: [Double] = dtype == .bool ? [1, 0, 1, 1, 0, 0] : [1, -2, 3, 250, 0, 7].map { dtype == .uint8 ? abs($0) : $0 }
            let a = NPYArray(shape: [2, 3], dtype: dtype, values: values)
            let data = NPY.encode(a)
            XCTAssertEqual(data.count % 64, (6 * dtype.sizeForTest) % 64, "header must be 64-byte aligned")
            XCTAssertEqual(try NPY.decode(data), a)
        }
        let v = NPYArray(shape: [4], values: [0.1, .pi, -1e300, 5e-324])
        XCTAssertEqual(try NPY.decode(NPY.encode(v)), v)
    }

    func testReadsFortranOrder() throws {
        // np.asfortranarray(np.arange(6.).reshape(2, 3)) stores 0 3 1 4 2 5.
        let body = NPY.encode(NPYArray(shape: [6], values: [0, 3, 1, 4, 2, 5])).suffix(48)
        let data = rawNPY("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", body)
        let a = try NPY.decode(data)
        XCTAssertEqual(a.shape, [2, 3])
        XCTAssertEqual(a.values, [0, 1, 2, 3, 4, 5])
    }

    func testRejectsBadFiles() {
        let good = NPY.encode(NPYArray(shape: [2, 2], values: [1, 2, 3, 4]))
        let cases: [(String, Data, String)] = [
            ("empty", Data(), "magic"),
            ("garbage", Data("hello world, not numpy".utf8), "magic"),
            ("truncated", good.prefix(good.count - 3), "truncated"),
            ("oversized", good + Data([0, 0, 0, 0, 0, 0, 0, 0]), "needs 32 data bytes"),
            ("big endian", rawNPY("{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }", Data(count: 8)), "not supported"),
            ("bad shape", rawNPY("{'descr': '<f8', 'fortran_order': False, 'shape': (2, x), }", Data(count: 16)), "bad shape"),
            ("huge shape", rawNPY("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", Data(count: 8)), "too large"),
            ("bad bool", rawNPY("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", Data([1, 7])), "byte value 7"),
        ]
        for (name, data, expected) in cases {
            XCTAssertThrowsError(try NPY.decode(data, path: name), name) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(name): \(error)")
                XCTAssertTrue("\(error)".hasPrefix(name), "the error must name the file: \(error)")
            }
        }
    }
}

/// A version 1.0 `.npy` file with the given header text and data bytes.
func rawNPY(_ header: String, _ body: Data) -> Data {
    var d = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    let h = Array((header + "\n").utf8)
    d.append(contentsOf: [UInt8(h.count & 0xff), UInt8(h.count >> 8)])
    d.append(contentsOf: h)
    return d + body
}

extension NPYArray.DType {
    var sizeForTest: Int { [.float64: 8, .float32: 4, .int32: 4, .int64: 8, .bool: 1, .uint8: 1][self]! }
}
