import EProp
import EPropCLI
import Foundation
import XCTest

/// Option resolution in-process: the task's defaults, then the options given, in one place.
final class OptionTests: XCTestCase {
    private func config(_ args: [String]) throws -> TrainingConfig { try EPropDense.parse(args).resolvedConfig() }

    func testEveryTaskResolvesToItsDefaults() throws {
        for task in TaskKind.allCases {
            XCTAssertEqual(try config(["--task", task.rawValue]), TrainingConfig.defaults(for: task), task.rawValue)
        }
        XCTAssertEqual(try config([]), TrainingConfig.defaults(for: .infiniteLoop))
    }

    /// An option given overrides the task's value; every other value stays the task's.
    func testGivenOptionsOverrideOnlyThemselves() throws {
        var expected = TrainingConfig.defaults(for: .sineWaves)
        (expected.optimizer.eta, expected.nRec, expected.recurrent.tRef) = (0.01, 50, 2)
        XCTAssertEqual(try config(["--task", "sine-waves", "--eta", "0.01", "--n-rec", "50", "--t-ref", "2"]), expected)
        // A value equal to the tutorial's default is still applied to another task.
        var ea = TrainingConfig.defaults(for: .evidenceAccumulation)
        ea.optimizer.batchSize = 1
        XCTAssertEqual(try config(["--task", "evidence-accumulation", "--batch-size", "1"]), ea)
        var noAverage = TrainingConfig.defaults(for: .evidenceAccumulation)
        noAverage.averageGradient = false
        XCTAssertEqual(try config(["--task", "evidence-accumulation", "--no-average-gradient"]), noAverage)
    }

    /// `--record-iterations` is checked against the resolved number of iterations (50 for
    /// evidence accumulation), not the tutorial's 5.
    func testRecordIterationsUseTheTasksIterations() throws {
        let command = try EPropDense.parse(["--task", "evidence-accumulation", "--record-iterations", "30"])
        let c = try command.resolvedConfig()
        XCTAssertEqual(c.iterations, 50)
        XCTAssertNoThrow(try command.recording().validate(iterations: c.iterations))
        let tooFar = try EPropDense.parse(["--task", "evidence-accumulation", "--record-iterations", "51"])
        XCTAssertThrowsError(try tooFar.recording().validate(iterations: c.iterations)) {
            XCTAssertTrue("\($0)".contains("between 1 and iterations (50)"), "\($0)")
        }
    }

    /// `--config` keys go through the same resolution as command-line options.
    func testConfigFileKeysApply() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("eprop-options-\(UUID().uuidString).json")
        try Data(#"{"task": "evidence-accumulation", "iterations": 7, "tau-m-out": 25, "no-average-gradient": true}"#.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let args = try ConfigFile.expand(["--config", url.path, "--iterations", "9"])
        var expected = TrainingConfig.defaults(for: .evidenceAccumulation)
        (expected.iterations, expected.readout.tauM, expected.averageGradient) = (9, 25, false)  // the command line wins
        XCTAssertEqual(try config(args), expected)
    }

    /// Library parameter names map to options that exist.
    func testLibraryParameterNamesMapToOptions() throws {
        let cases: [(TrainingConfig) -> TrainingConfig] = [
            { var c = $0; c.recurrent.tauMMean = 0; return c },
            { var c = $0; c.readout.tauM = 0; return c },
            { var c = $0; c.readout.cM = 0; return c },
            { var c = $0; c.optimizer.wMin = 200; return c },
            { var c = $0; c.recurrent.vTh = -1; return c },
            { var c = $0; c.optimizer.beta1 = 1; return c },
            { var c = $0; c.recurrent.surrogateWidth = 0; return c },
            { var c = $0; c.learningWindow = 0; return c },
        ]
        var seen: [String] = []
        for make in cases {
            do {
                try make(TrainingConfig()).validate()
                XCTFail("an invalid configuration passed validation")
            } catch let e as ConfigError {
                let option = EPropDense.optionName(e.parameter)
                seen.append(option)
                XCTAssertNoThrow(try EPropDense.parse(["\(option)=1"]), "\(e.parameter) maps to \(option), which is not an option")
            }
        }
        XCTAssertEqual(seen, ["--tau-m-mean", "--tau-m-out", "--c-m-out", "--w-min", "--v-th", "--beta-1", "--surrogate-gradient-width", "--learning-window"])
    }
}

/// The start-up check of a binary built for AVX2/FMA, on /proc/cpuinfo texts.
final class CPUCheckTests: XCTestCase {
    func testMissingAVX2IsNamed() {
        let old = "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx\n"
        XCTAssertTrue(CPUCheck.missingFeatures(cpuinfo: old)?.contains("lacks avx2, fma") ?? false)
        let zen = "processor\t: 0\nflags\t\t: fpu sse2 avx fma avx2 bmi2\n"
        XCTAssertNil(CPUCheck.missingFeatures(cpuinfo: zen))
        XCTAssertNil(CPUCheck.missingFeatures(cpuinfo: "no flags line (not x86)"))
    }
}

/// The engine's task defaults (`TrainingConfig.defaults(for:)`, the one source the CLI and the
/// cross-validation scripts read) against the parameters NEST's scripts used for the committed
/// reference exports (`script_params.json`). Batch size and iteration count are the reference
/// run's own choices and are not compared.
final class TaskDefaultsTests: XCTestCase {
    private func params(_ folder: String) throws -> [String: Any] {
        let url = referenceDir.deletingLastPathComponent().appendingPathComponent(folder).appendingPathComponent("script_params.json")
        return try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    private func check(_ task: TaskKind, _ folder: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let p = try params(folder), c = TrainingConfig.defaults(for: task)
        let rec = p["params_nrn_rec"] as! [String: Any], out = p["params_nrn_out"] as! [String: Any]
        let syn = p["params_common_syn_eprop"] as! [String: Any], opt = syn["optimizer"] as! [String: Any]
        let steps = p["steps"] as! [String: Any]
        func same(_ a: Double, _ b: Any?, _ name: String) {
            XCTAssertEqual(a, (b as? NSNumber)?.doubleValue ?? .nan, "\(task.rawValue) \(name)", file: file, line: line)
        }
        same(Double(c.nIn), p["n_in"], "n_in")
        same(Double(c.nRec), p["n_rec"], "n_rec")
        same(Double(c.nOut), p["n_out"], "n_out")
        same(Double(c.sequence), steps["sequence"], "sequence")
        same(Double(c.resolvedLearningWindow), steps["learning_window"], "learning_window")
        same(c.inputSpikeProb, p["input_spike_prob"] ?? (p["ea_input"] as? [String: Any])?["spike_prob"], "input_spike_prob")
        let r = c.recurrent
        for (value, key) in [(r.cM, "C_m"), (r.cReg, "c_reg"), (r.eL, "E_L"), (r.fTarget, "f_target"), (r.vTh, "V_th"), (r.tRef, "t_ref"),
                             (r.iE, "I_e"), (r.resolvedHeight, "surrogate_gradient_height"), (r.resolvedWidth, "surrogate_gradient_width")] {
            same(value, rec[key], "recurrent \(key)")
        }
        XCTAssertEqual(r.regularSpikeArrival, rec["regular_spike_arrival"] as? Bool, "\(task.rawValue) regular_spike_arrival", file: file, line: line)
        XCTAssertEqual(r.surrogateGradient.rawValue, rec["surrogate_gradient_function"] as? String, file: file, line: line)
        if let tau = rec["tau_m"] as? String {  // the tutorial draws tau_m in NEST
            XCTAssertEqual(tau, "nest.random.normal(mean=\(r.tauMMean), std=\(r.tauMStd))", file: file, line: line)
        } else {
            same(r.tauMMean, rec["tau_m"], "tau_m")
            XCTAssertEqual(r.tauMStd, 0, file: file, line: line)
        }
        let adaptive = p["params_nrn_ad"] as? [String: Any] ?? (rec["adapt_tau"] != nil ? rec : nil)
        if let ad = adaptive {
            XCTAssertEqual(r.model, .alif, file: file, line: line)
            same(r.adaptTau, ad["adapt_tau"], "adapt_tau")
            XCTAssertEqual(r.resolvedAdaptBeta(adaptive: true), (ad["adapt_beta"] as! NSNumber).doubleValue, accuracy: 1e-15, file: file, line: line)
            XCTAssertEqual(r.nAdaptive ?? c.nRec, (p["n_adaptive"] as? Int) ?? c.nRec, file: file, line: line)
        } else {
            XCTAssertEqual(r.model, .lif, "\(task.rawValue): NEST's script has no adaptive neurons", file: file, line: line)
        }
        for (value, key) in [(c.readout.cM, "C_m"), (c.readout.eL, "E_L"), (c.readout.iE, "I_e"), (c.readout.tauM, "tau_m")] {
            same(value, out[key], "readout \(key)")
        }
        XCTAssertEqual(c.readout.loss.rawValue.replacingOccurrences(of: "-", with: "_"), out["loss"] as? String, file: file, line: line)
        XCTAssertEqual(c.readout.regularSpikeArrival, out["regular_spike_arrival"] as? Bool, file: file, line: line)
        XCTAssertEqual(c.optimizer.kind.rawValue.replacingOccurrences(of: "-", with: "_"), opt["type"] as? String, file: file, line: line)
        same(c.optimizer.eta, opt["eta"], "eta")
        same(c.optimizer.wMin, opt["Wmin"], "Wmin")
        same(c.optimizer.wMax, opt["Wmax"], "Wmax")
        if c.optimizer.kind == .adam {
            same(c.optimizer.beta1, opt["beta_1"], "beta_1")
            same(c.optimizer.beta2, opt["beta_2"], "beta_2")
            same(c.optimizer.epsilon, opt["epsilon"], "epsilon")
        }
        XCTAssertEqual(c.averageGradient, syn["average_gradient"] as? Bool, file: file, line: line)
    }

    func testInfiniteLoop() throws { try check(.infiniteLoop, "nest-3.10-infinite-loop-seed1-iter5") }
    func testSineWaves() throws { try check(.sineWaves, "nest-3.10-sine-waves-seed1-iter3") }
    func testEvidenceAccumulation() throws { try check(.evidenceAccumulation, "nest-3.10-evidence-accumulation-seed1-iter2") }
}
