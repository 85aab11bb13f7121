// libFuzzer target: checkpoint.json must be rejected with an error unless it is consistent.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? Checkpoint.decodeRecord(Data(bytes: data, count: size), path: "fuzz/checkpoint.json")
    return 0
}
