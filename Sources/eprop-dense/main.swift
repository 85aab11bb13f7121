import EPropCLI
import Foundation

// The engine is compiled for AVX2/FMA on x86-64 (Package.swift): refuse a CPU without them
// before any engine code runs, instead of dying of SIGILL.
if let message = CPUCheck.missingFeatures() {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(1)
}
// Options from --config FILE come first, so that the command line overrides them.
do {
    EPropDense.main(joinNegativeValues(try ConfigFile.expand(Array(CommandLine.arguments.dropFirst()))))
} catch {
    FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
    exit(64)
}
