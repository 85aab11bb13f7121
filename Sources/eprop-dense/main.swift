import ArgumentParser
import Foundation

// Options from --config FILE come first, so that the command line overrides them.
do {
    let arguments = try ConfigFile.expand(Array(CommandLine.arguments.dropFirst()))
    EPropDense.arguments = arguments
    EPropDense.main(arguments)
} catch {
    FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
    exit(64)
}
