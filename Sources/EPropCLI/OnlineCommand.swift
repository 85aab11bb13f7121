import ArgumentParser
import EProp
import Foundation

/// The online generation (NEST 3.9+ `eprop_iaf*`): `--init` with an online export folder (`params.json` naming one
/// of the online models, see `OnlineExport`) trains that network exactly as NEST 3.10 does.
extension EPropDense {
    /// Trains the online export in `dir` into `--out`.
    func runOnline(_ dir: String) throws {
        try refuseOptionsOfTheLegacyGeneration(dir)
        let spec: OnlineRunSpec
        do { spec = try OnlineExport.load(URL(fileURLWithPath: dir)) } catch let e as OnlineParameterError {
            throw ValidationError("invalid --init: \(e)")
        }
        let folder = try RunFolder(URL(fileURLWithPath: output.out ?? RunFolder.defaultName(under: "runs")), replace: output.force)
        let quiet = output.quiet
        let summary = try OnlineRun.train(
            spec, precision: engine.precision ?? .float, in: folder, commandLine: CommandLine.arguments,
            gitCommit: Provenance.gitCommit()
        ) { n, loss, seconds in
            if !quiet { print(String(format: "iteration %5d  loss %.8f  time %.4f s", n + 1, loss, seconds)) }
        }
        FileHandle.standardError.write(Data(String(
            format: "done: %d iterations of %@ (online generation), final loss %.8f, %d recurrent spikes, %.4f s per iteration, peak memory %.1f MB; outputs in %@\n",
            summary.iterations, spec.parameters.recurrent.model.rawValue, summary.loss.last ?? .nan, summary.recurrentSpikes,
            summary.secondsPerIteration, summary.peakMemoryMB, summary.folder.path).utf8))
    }

    /// The export's `params.json` defines the whole online run: any option that sets a parameter of the legacy
    /// generation, or a feature the online path does not have yet, is refused by name.
    private func refuseOptionsOfTheLegacyGeneration(_ dir: String) throws {
        let base = TrainingConfig.defaults(for: .infiniteLoop)
        var asked = base
        applyOptions(to: &asked)
        asked.precision = base.precision
        let changed = Self.differences(base, asked).map { $0.components(separatedBy: " (").first ?? $0 }
        let features = [
            ("resume", output.resume != nil), ("evaluate", output.evaluate != nil), ("checkpoint-every", output.checkpointEvery != nil),
            ("record-iterations", output.recordIterations != nil), ("n-record", output.nRecord != nil), ("n-record-w", output.nRecordW != nil),
            ("profile-phases", output.profilePhases), ("plot", output.plot), ("print-config", output.printConfig),
            ("input", task.input != nil), ("target", task.target != nil), ("train-data", task.trainData != nil), ("test-data", task.testData != nil),
            ("task", task.task != nil), ("threads", engine.threads != nil), ("kernel", engine.kernel != nil), ("gradient", engine.gradient != nil),
        ].filter(\.1).map { "--\($0.0)" }
        if let first = features.first {
            throw ValidationError("invalid \(first): \(dir) is an online-generation export (params.json names an eprop_iaf* model); its runs take --out, --force, --quiet and --precision, and read every parameter from params.json")
        }
        if let first = changed.first {
            throw ValidationError("invalid option setting \(first): \(dir) is an online-generation export whose params.json sets every parameter; edit params.json instead")
        }
    }
}
