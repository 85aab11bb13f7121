// libFuzzer target: an event-list archive (docs/event-format.md). The input is written to a
// file and opened as a training split; whatever opens must load every sample without a crash
// (the reader checked it), and anything else must be refused with an error.
import Foundation

let scratch = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("fuzz-events-\(getpid()).npz")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEvents(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard (try? Data(bytes: data, count: size).write(to: scratch)) != nil else { return 0 }
    guard let d = try? EventDataset(scratch), d.nIn * d.steps <= 1 << 20 else { return 0 }
    let input = Matrix<Double>(rows: d.nIn, cols: d.steps)
    let patterns = Patterns(dataset: d, shuffleSeed: 1)
    for k in 0..<min(d.count, 64) {
        guard let label = try? d.load(k, into: input), label >= 0, label < d.nClasses else { fatalError("sample \(k) passed the check but cannot be loaded") }
        _ = patterns.sampleIndex(k)
    }
    return 0
}
