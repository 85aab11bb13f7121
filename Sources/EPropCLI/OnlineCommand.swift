import ArgumentParser
import EProp
import Foundation

/// NEST's online generation (3.9+, `eprop_iaf*`): `--init` with an online export folder (`params.json` naming one of
/// the online models, see `OnlineExport`), or `--model eprop_iaf...` for NEST's online sine-wave example drawn from
/// `--seed` (`OnlineSineWaveTask`).
extension EPropDense {
    /// NEST's example trains 200 iterations.
    static let onlineExampleIterations = 200

    /// The online run the options ask for, or nil for the legacy generation.
    func onlineRun() throws -> OnlineRunSpec? {
        if let dir = task.`init`, output.resume == nil, OnlineExport.holdsOnlineRun(URL(fileURLWithPath: dir)) {
            try refuseOptionsTheOnlineRunDoesNotTake(source: "\(dir) is an online-generation export whose params.json sets every parameter (edit it instead)")
            do { return try OnlineExport.load(URL(fileURLWithPath: dir)) } catch let e as OnlineParameterError {
                throw ValidationError("invalid --init: \(e)")
            } catch let e as NPYError {
                throw ValidationError("invalid --init: \(e)")
            }
        }
        guard case .online(let model) = neuron.model else { return nil }
        if task.trainData != nil || task.testData != nil || task.task == .eventClassification { return try nmnistRun(model) }
        if let t = task.task, t != .sineWaves {
            throw ValidationError("invalid --task: the online generation (--model \(model.rawValue)) trains NEST's online sine-wave example (sine-waves) or, with --train-data and --test-data, its N-MNIST example (event-classification), not \(t.rawValue)")
        }
        try refuseOptionsTheOnlineRunDoesNotTake(
            source: "--model \(model.rawValue) trains NEST's online sine-wave example with the script's parameters; it takes --seed, --iterations, --task sine-waves, --connection-probability and the output options",
            allowing: ["seed", "iterations"], features: ["connection-probability"])
        if let n = task.iterations, n < 1 { throw ValidationError("invalid --iterations: >= 1 required") }
        return OnlineSineWaveTask.generate(
            model, preset: .example, seed: UInt32(task.seed ?? 1), iterations: task.iterations ?? Self.onlineExampleIterations,
            connectionProbability: try task.connectionProbabilities())
    }

    /// NEST's N-MNIST example (`OnlineNMNISTTask`) on the N-MNIST folders --train-data and --test-data.
    private func nmnistRun(_ model: OnlineNeuronModel) throws -> OnlineRunSpec {
        guard let trainDir = task.trainData, let testDir = task.testData else {
            throw ValidationError("invalid --\(task.trainData == nil ? "train-data" : "test-data"): --model \(model.rawValue) trains NEST's N-MNIST example on N-MNIST as distributed: give --train-data DIR/Train and --test-data DIR/Test (folders 0 ... 9 of .bin files)")
        }
        try refuseOptionsTheOnlineRunDoesNotTake(
            source: "--model \(model.rawValue) with --train-data trains NEST's N-MNIST example with the script's parameters; it takes --seed, --iterations, --n-rec, --group-size, --test-iterations, the data and the output options",
            allowing: ["seed", "iterations", "nRec", "trainData", "testData", "task"],
            features: ["train-data", "test-data", "group-size", "test-iterations", "connection-probability"])
        var s = OnlineNMNISTTask.Settings()
        s.model = model
        for (name, value) in [("iterations", task.iterations), ("n-rec", task.nRec), ("group-size", task.groupSize), ("test-iterations", task.testIterations)] {
            if let value, value < (name == "test-iterations" ? 0 : 1) { throw ValidationError("invalid --\(name): >= \(name == "test-iterations" ? 0 : 1) required") }
        }
        s.trainIterations = task.iterations ?? s.trainIterations
        s.nRec = task.nRec ?? s.nRec
        s.groupSize = task.groupSize ?? s.groupSize
        s.testIterations = task.testIterations ?? s.testIterations
        s.seed = UInt32(task.seed ?? 1)
        if let p = try task.connectionProbabilities() { s.sparsity = (1 - p.inRec, 1 - p.recRec, 1 - p.recOut) }
        do {
            let (train, test) = (try NMNISTFolder(URL(fileURLWithPath: trainDir)), try NMNISTFolder(URL(fileURLWithPath: testDir)))
            return try OnlineNMNISTTask.generate(s, train: train, test: test)
        } catch let e as OnlineParameterError {
            throw ValidationError("invalid --train-data/--test-data: \(e)")
        }
    }

    /// Trains `spec` into `--out`.
    func runOnline(_ spec: OnlineRunSpec) throws {
        let folder = try RunFolder(URL(fileURLWithPath: output.out ?? RunFolder.defaultName(under: "runs")), replace: output.force)
        let quiet = output.quiet
        let summary = try OnlineRun.train(
            spec, precision: engine.precision ?? .float, recording: try recording(), threads: engine.threads ?? 1, in: folder,
            commandLine: CommandLine.arguments,
            gitCommit: Provenance.gitCommit()
        ) { n, loss, seconds in
            if !quiet { print(String(format: "iteration %5d  loss %.8f  time %.4f s", n + 1, loss, seconds)) }
        }
        FileHandle.standardError.write(Data(String(
            format: "done: %d iterations of %@ (online generation), final loss %.8f, %d recurrent spikes, %.4f s per iteration, peak memory %.1f MB; outputs in %@\n",
            summary.iterations, spec.parameters.recurrent.model.rawValue, summary.loss.last ?? .nan, summary.recurrentSpikes,
            summary.secondsPerIteration, summary.peakMemoryMB, summary.folder.path).utf8))
    }

    /// Every option given is used or refused by name: the online path takes --out, --force, --quiet, --precision,
    /// --threads, the recording options and the configuration fields in `allowing`; any other option (a legacy parameter or a feature the online
    /// path does not have yet) is refused, saying why (`source`).
    private func refuseOptionsTheOnlineRunDoesNotTake(source: String, allowing: Set<String> = [], features allowedFeatures: Set<String> = []) throws {
        let base = TrainingConfig.defaults(for: .infiniteLoop)
        var asked = base
        applyOptions(to: &asked)
        asked.precision = base.precision
        // Every online run takes --threads (OnlineSimulation's helper threads).
        let changed = Self.differences(base, asked).map { $0.components(separatedBy: " (").first ?? $0 }
            .filter { !allowing.contains($0) && $0 != "threads" }
        let features = [
            ("resume", output.resume != nil), ("evaluate", output.evaluate != nil), ("checkpoint-every", output.checkpointEvery != nil),
            ("profile-phases", output.profilePhases), ("plot", output.plot), ("print-config", output.printConfig),
            ("input", task.input != nil), ("target", task.target != nil), ("train-data", task.trainData != nil), ("test-data", task.testData != nil),
            ("task", task.task != nil && task.`init` != nil), ("model", neuron.model != nil && task.`init` != nil),
            ("kernel", engine.kernel != nil), ("gradient", engine.gradient != nil),
            ("group-size", task.groupSize != nil), ("test-iterations", task.testIterations != nil),
            ("connection-probability", task.connectionProbability != nil),
        ].filter { $0.1 && !allowedFeatures.contains($0.0) }.map { "--\($0.0)" }
        if let first = features.first { throw ValidationError("invalid \(first): \(source)") }
        if let first = changed.first { throw ValidationError("invalid \(Self.option(forConfigKey: first)): \(source)") }
    }

    /// The option that sets a configuration field, as `differences` names fields: `recurrent.tauMMean` ->
    /// `--tau-m-mean`, `readout.tauM` -> `--tau-m-out`.
    static func option(forConfigKey key: String) -> String {
        let parts = key.split(separator: ".").map(String.init)
        let snake = parts.last!.reduce(into: "") { s, c in s += c.isUppercase ? "_" + c.lowercased() : String(c) }
        return optionName(parts.first == "readout" ? "readout." + snake : snake)
    }
}
