// libFuzzer target: the .npy reader must reject any input with an error, never crash.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? NPY.decode(Data(bytes: data, count: size), path: "fuzz")
    return 0
}
