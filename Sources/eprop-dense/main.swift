import ArgumentParser
import Foundation

/// `--w-min -100` as `--w-min=-100`: the parser would read the negative number as an option.
func joinNegativeValues(_ args: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < args.count {
        let a = args[i]
        if a.hasPrefix("--"), !a.contains("="), i + 1 < args.count, args[i + 1].hasPrefix("-"), Double(args[i + 1]) != nil {
            out.append("\(a)=\(args[i + 1])")
            i += 2
        } else {
            out.append(a)
            i += 1
        }
    }
    return out
}

// Options from --config FILE come first, so that the command line overrides them.
do {
    let arguments = joinNegativeValues(try ConfigFile.expand(Array(CommandLine.arguments.dropFirst())))
    EPropDense.arguments = arguments
    EPropDense.main(arguments)
} catch {
    FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
    exit(64)
}
