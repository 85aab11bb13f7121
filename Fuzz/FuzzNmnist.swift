// libFuzzer target: an N-MNIST file (5-byte events, the layout NEST's N-MNIST example reads). The input is written as
// the only file of digit 3 in a split folder; reading it must give events inside NEST's grid (steps 0 ... 300 for
// times up to 336040 µs, inputs among the 1196 active pixels) or be refused with an error, never crash.
import Foundation

let split = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("fuzz-nmnist-\(getpid())")
let file: URL = {
    for digit in 0..<10 { try! FileManager.default.createDirectory(at: split.appendingPathComponent("\(digit)"), withIntermediateDirectories: true) }
    return split.appendingPathComponent("3/sample.bin")
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNmnist(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard (try? Data(bytes: data, count: size).write(to: file)) != nil else { return 0 }
    guard let folder = try? NMNISTFolder(split), let events = try? folder.events(0) else { return 0 }
    let maxStep = Int((Double(0x7F_FFFF * OnlineNMNISTTask.sequence) / Double(OnlineNMNISTTask.timeMaxMicroseconds)).rounded())
    for e in events where !(0...maxStep).contains(e.step) || !(0..<NMNISTFolder.activePixels.count).contains(e.input) {
        fatalError("event outside the grid: \(e)")
    }
    return 0
}
