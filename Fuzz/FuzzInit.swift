// libFuzzer target: an --init folder's seven arrays. The input is split at the byte 0xFF 0xFE
// into up to seven .npy files (missing ones are taken from a valid tiny export), so the
// fuzzer explores both corrupt files and consistent-looking files of wrong shapes.
import Foundation

let validTiny: [String: Data] = {
    func npy(_ shape: [Int], _ v: Double, _ dtype: NPYArray.DType = .float64) -> Data {
        NPY.encode(NPYArray(shape: shape, dtype: dtype, values: Array(repeating: v, count: shape.reduce(1, *))))
    }
    return [
        "w_in_rec_init.npy": npy([3, 2], 0.1), "w_rec_rec_init.npy": npy([3, 3], 0),
        "w_rec_out_init.npy": npy([1, 3], 0.2), "w_out_rec_feedback.npy": npy([3, 1], 0.3),
        "tau_m_rec.npy": npy([3], 30), "input_spike_bool_seq.npy": npy([2, 4], 1, .bool),
        "target_signal_seq.npy": npy([1, 4], 0.5),
    ]
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInit(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var parts: [[UInt8]] = [[]]
    var i = 0
    while i < bytes.count {
        if i + 1 < bytes.count && bytes[i] == 0xFF && bytes[i + 1] == 0xFE { parts.append([]); i += 2; continue }
        parts[parts.count - 1].append(bytes[i])
        i += 1
    }
    var contents = validTiny
    for (name, part) in zip(NESTExport.files, parts) where !part.isEmpty { contents[name] = Data(part) }
    if let initial = try? NESTExport.decode(contents, folder: "fuzz") {
        // A state that passed validation must be usable: build the network and run one step.
        var c = TrainingConfig()
        (c.nIn, c.nRec, c.nOut, c.sequence, c.iterations) = (initial.nIn, initial.nRec, initial.nOut, initial.steps, 1)
        if initial.nRec * (initial.nIn + initial.nRec) * initial.steps < 1_000_000, (try? c.validate()) != nil {
            Trainer<Double>(config: c, initial: initial).step()
        }
    }
    return 0
}
