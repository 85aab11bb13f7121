import EProp
import Foundation
import XCTest

/// Data-parallel runs under real Open MPI (`mpirun`): the same bits as one process for any
/// number of ranks, resume with another rank count, and the fault cases. Skipped where `mpirun`
/// is missing or the build is without MPI (`EPROP_DENSE_MPI=0`), unless
/// `EPROP_DENSE_REQUIRE_MPI=1` (as `scripts/test.sh` sets when Open MPI is installed), which turns
/// a missing `mpirun` into a failure.
final class MPITests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "eprop-dense not built")
        try XCTSkipIf(ProcessInfo.processInfo.environment["EPROP_DENSE_MPI"] == "0", "built without MPI (EPROP_DENSE_MPI=0)")
        guard mpirun != nil else {
            if ProcessInfo.processInfo.environment["EPROP_DENSE_REQUIRE_MPI"] == "1" {
                XCTFail("mpirun not found, and EPROP_DENSE_REQUIRE_MPI=1")
            }
            throw XCTSkip("mpirun not found (install openmpi-bin and libopenmpi-dev)")
        }
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("eprop-mpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let tmp { try? FileManager.default.removeItem(at: tmp) }
    }

    /// Several shards whose count divides by neither 2 nor 3 ranks evenly (20 sequences: 8, 8, 4),
    /// every iteration recorded (rank 0 records the other ranks' sequences too), BPTT compared
    /// (the exchange carries both gradients), checkpoints.
    let classification = ["--task", "evidence-accumulation", "--batch-size", "20", "--iterations", "3", "--record-iterations", "all",
                          "--compare-gradients", "--checkpoint-every", "2", "--quiet"]
    /// Frozen pattern, Float64, the trace kernel, gradient descent; 9 sequences (8 + 1).
    let regression = ["--n-rec", "40", "--n-in", "20", "--sequence", "300", "--batch-size", "9", "--iterations", "4", "--precision", "double",
                      "--gradient", "traces", "--optimizer", "gradient-descent", "--checkpoint-every", "3", "--quiet"]

    func testAnyRankCountGivesTheSameBitsAsOneProcess() throws {
        for (name, args) in [("classification", classification), ("regression", regression)] {
            let single = tmp.appendingPathComponent("\(name)-single")
            let r = try runCLI(args + ["--out", single.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            for ranks in [1, 2, 3] {
                let folder = tmp.appendingPathComponent("\(name)-np\(ranks)")
                let m = try runMPI([(ranks, args + ["--out", folder.path])])
                XCTAssertEqual(m.status, 0, m.output)
                try assertSameOutputs(single, folder, "\(name), \(ranks) rank(s)")
            }
            // Over TCP (the transport between machines) instead of shared memory.
            let tcp = tmp.appendingPathComponent("\(name)-tcp")
            let m = try runMPI([(2, args + ["--out", tcp.path])], mpirunOptions: ["--mca", "btl", "tcp,self"])
            XCTAssertEqual(m.status, 0, m.output)
            try assertSameOutputs(single, tcp, "\(name), 2 ranks over TCP")
        }
    }

    /// An event dataset (samples read by every rank, shuffled per epoch) with held-out
    /// evaluations on rank 0: the same bits as one process, evaluations included.
    func testEventDatasetWithEvaluationGivesTheSameBitsOnTwoRanks() throws {
        let train = tmp.appendingPathComponent("train.npz"), test = tmp.appendingPathComponent("test.npz")
        try writeNPZ(train, eventMembers(toyEvents(samples: 30, seed: 11), nIn: 12, nClasses: 3, sequence: 40))
        try writeNPZ(test, eventMembers(toyEvents(samples: 13, seed: 12), nIn: 12, nClasses: 3, sequence: 40))
        let args = ["--train-data", train.path, "--test-data", test.path, "--evaluate-every", "2", "--batch-size", "20", "--iterations", "4",
                    "--n-rec", "20", "--checkpoint-every", "2", "--quiet"]
        let single = tmp.appendingPathComponent("events-single"), two = tmp.appendingPathComponent("events-np2")
        let r = try runCLI(args + ["--out", single.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let m = try runMPI([(2, args + ["--out", two.path])])
        XCTAssertEqual(m.status, 0, m.output)
        try assertSameOutputs(single, two, "event dataset, 2 ranks")
        for f in ["confusion_matrix.npy", "accuracy_per_class.npy"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: two.appendingPathComponent(f).path), f)
        }
    }

    func testResumeWithAnotherRankCountEqualsStraightRun() throws {
        let network = ["--task", "evidence-accumulation", "--batch-size", "24", "--n-rec", "30", "--n-adaptive", "15", "--quiet", "--record-iterations", "none", "--checkpoint-every", "2"]
        let resumed = tmp.appendingPathComponent("resumed"), straight = tmp.appendingPathComponent("straight")
        var m = try runMPI([(2, network + ["--iterations", "4", "--out", resumed.path])])
        XCTAssertEqual(m.status, 0, m.output)
        m = try runMPI([(3, ["--resume", resumed.path, "--iterations", "6", "--quiet"])])
        XCTAssertEqual(m.status, 0, m.output)
        let r = try runCLI(network + ["--iterations", "6", "--out", straight.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        for f in ["w_in_rec_final.npy", "w_rec_rec_final.npy", "w_rec_out_final.npy", "loss.npy", "accuracy.npy"] {
            try assertSameArray(straight.appendingPathComponent(f), resumed.appendingPathComponent(f), "\(f): 2 ranks, resumed on 3, against one process")
        }
    }

    /// Bad input on one rank only (MPMD: rank 1 reads another --init folder): every rank stops
    /// before any work, rank 0 names rank 1 and the file, and no run folder appears.
    func testBadInputOnOneRankStopsAllBeforeWork() throws {
        let good = tmp.appendingPathComponent("good")
        XCTAssertEqual(try runCLI(["--iterations", "1", "--n-rec", "20", "--n-in", "10", "--sequence", "100", "--out", good.path, "--quiet"]).status, 0)
        let bad = tmp.appendingPathComponent("bad")
        try FileManager.default.copyItem(at: good, to: bad)
        try Data("not an npy file".utf8).write(to: bad.appendingPathComponent("w_rec_rec_init.npy"))
        let out = tmp.appendingPathComponent("never")
        let args = { (initial: URL) in ["--init", initial.path, "--iterations", "2", "--out", out.path, "--quiet"] }
        let m = try runMPI([(1, args(good)), (1, args(bad))])
        XCTAssertEqual(m.status, 1, m.output)  // as one process reading that file
        XCTAssertTrue(m.output.contains("error: rank 1:") && m.output.contains("w_rec_rec_init.npy"), m.output)
        XCTAssertFalse(m.output.contains("error: rank 0:"), m.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "a failed start must not leave a run folder")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.hasPrefix(".never") }
        XCTAssertEqual(leftovers, [], "nor a staging folder")

        // Not enough memory on one rank's machine (here: rank 1 asks for a batch this machine
        // cannot hold): refused before work, naming the rank and the cause.
        let big = try runMPI([(1, ["--iterations", "2", "--out", out.path, "--quiet"]),
                              (1, ["--batch-size", "1000000", "--sequence", "2", "--iterations", "2", "--out", out.path, "--quiet"])])
        XCTAssertEqual(big.status, 1, big.output)
        XCTAssertTrue(big.output.contains("error: rank 1: the configuration needs about") && big.output.contains("of memory"), big.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))

        // Valid but different inputs: refused by the plans' fingerprints.
        let m2 = try runMPI([(1, ["--seed", "1", "--iterations", "2", "--out", out.path, "--quiet"]), (1, ["--seed", "2", "--iterations", "2", "--out", out.path, "--quiet"])])
        XCTAssertEqual(m2.status, 1, m2.output)
        XCTAssertTrue(m2.output.contains("error: rank 1: its configuration, initial state or patterns differ from rank 0's"), m2.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }

    /// A rank killed mid-run (as the kernel's OOM killer would) ends the job: mpirun names the
    /// rank, exits non-zero, and the last checkpoint resumes.
    func testKilledRankEndsTheJobAndTheCheckpointResumes() throws {
        let folder = tmp.appendingPathComponent("killed")
        let args = ["--task", "evidence-accumulation", "--batch-size", "16", "--n-rec", "30", "--n-adaptive", "15", "--iterations", "100000", "--checkpoint-every", "1",
                    "--record-iterations", "none", "--out", folder.path, "--quiet"]
        let job = try startMPI([(2, args)])
        waitUntilExists(folder.appendingPathComponent("checkpoint/checkpoint.json"), seconds: 60)
        let rank1 = try XCTUnwrap(rankProcess(1, of: job.process), "rank 1 not found")
        kill(rank1, SIGKILL)
        let m = try finish(job, seconds: 60)
        XCTAssertNotEqual(m.status, 0, m.output)
        XCTAssertTrue(m.output.contains("rank 1") && m.output.contains("signal 9"), m.output)
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("checkpoint/checkpoint.json"))) as! [String: Any]
        let done = try XCTUnwrap(record["completed_iterations"] as? Int)
        let resumed = try runCLI(["--resume", folder.path, "--iterations", "\(done + 1)", "--quiet"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
    }

    /// Rank 0 cannot write (a full disk) while rank 1 waits for it in the exchange: the job ends
    /// with rank 0's plain message and a non-zero exit, the last checkpoint intact.
    func testWriteFailureOnRankZeroEndsTheJob() throws {
        let disk = try mountSmallDisk(in: tmp)
        defer { unmount(disk) }
        let run = disk.appendingPathComponent("run")
        let job = try startMPI([(2, ["--n-rec", "100", "--n-in", "100", "--sequence", "100", "--batch-size", "16", "--iterations", "3000",
                                     "--checkpoint-every", "1", "--record-iterations", "none", "--quiet", "--out", run.path])])
        let checkpoint = run.appendingPathComponent("checkpoint/checkpoint.json")
        waitUntilExists(checkpoint, seconds: 60)
        try fillWhileStopped(disk, try XCTUnwrap(rankProcess(0, of: job.process), "rank 0 not found"))
        let m = try finish(job, seconds: 60)
        XCTAssertNotEqual(m.status, 0, m.output)
        XCTAssertTrue(m.output.contains("error: rank 0: ") && m.output.contains("No space left on device"), m.output)
        XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(contentsOf: checkpoint)), "the last good checkpoint must stay readable")
    }

    /// A run that diverges stops on every rank in the same iteration, with one process's message,
    /// exit status and last finite weights.
    func testDivergenceStopsEveryRankAlike() throws {
        let args = ["--n-rec", "30", "--n-in", "20", "--sequence", "200", "--batch-size", "16", "--iterations", "20", "--optimizer", "gradient-descent",
                    "--eta", "1e30", "--w-min=-1e300", "--w-max", "1e300", "--checkpoint-every", "1", "--quiet"]
        let single = tmp.appendingPathComponent("single"), folder = tmp.appendingPathComponent("ranks")
        let r = try runCLI(args + ["--out", single.path])
        XCTAssertEqual(r.status, 3, r.stderr)
        let m = try runMPI([(2, args + ["--out", folder.path])])
        XCTAssertEqual(m.status, 3, m.output)
        let line = try XCTUnwrap(r.stderr.split(separator: "\n").first { $0.contains("diverged at iteration") })
        XCTAssertTrue(m.output.contains(line.replacingOccurrences(of: single.path, with: folder.path)), "\(line)\nagainst\n\(m.output)")
        try assertSameOutputs(single, folder, "diverged run, 2 ranks", atLeast: 5)
    }

    /// SIGUSR1 to mpirun reaches every rank; they stop after the same iteration, rank 0 writes
    /// the checkpoint, and resuming ends bitwise where one straight process ends. (SIGTERM takes
    /// the same path, but mpirun kills the ranks 1 s after forwarding it, which a debug build's
    /// iteration and checkpoint can outlast.)
    func testSIGUSR1ToMpirunCheckpointsAndResumesExactly() throws {
        let network = ["--task", "evidence-accumulation", "--batch-size", "16", "--n-rec", "30", "--n-adaptive", "15", "--quiet", "--record-iterations", "none"]
        let folder = tmp.appendingPathComponent("interrupted")
        let job = try startMPI([(2, network + ["--iterations", "100000", "--checkpoint-every", "1", "--out", folder.path])])
        waitUntilExists(folder.appendingPathComponent("checkpoint/checkpoint.json"), seconds: 60)
        kill(job.process.processIdentifier, SIGUSR1)
        let m = try finish(job, seconds: 60)
        XCTAssertEqual(m.status, 128 + SIGUSR1, m.output)
        XCTAssertTrue(m.output.contains("interrupted by signal \(SIGUSR1)"), m.output)
        XCTAssertTrue(m.output.contains("resume with: mpirun -np 2 eprop-dense --resume"), m.output)
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("run.json"))) as! [String: Any]
        XCTAssertEqual(record["status"] as? String, "interrupted")
        let done = record["completed_iterations"] as! Int
        let resumed = try runMPI([(2, ["--resume", folder.path, "--iterations", "\(done + 2)", "--quiet"])])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        let straight = tmp.appendingPathComponent("straight")
        XCTAssertEqual(try runCLI(network + ["--iterations", "\(done + 2)", "--out", straight.path]).status, 0)
        for f in ["w_in_rec_final.npy", "w_rec_rec_final.npy", "w_rec_out_final.npy", "loss.npy"] {
            try assertSameArray(straight.appendingPathComponent(f), folder.appendingPathComponent(f), "\(f) after SIGUSR1 to mpirun and resume")
        }
    }

    // MARK: - mpirun

    let mpirun: URL? = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":")
        .map { URL(fileURLWithPath: String($0)).appendingPathComponent("mpirun") }
        .first { FileManager.default.isExecutableFile(atPath: $0.path) }

    /// Starts `mpirun` with one application context per entry (ranks, arguments), as root where
    /// the tests run as root, in containers without cross-memory attach; output in a file.
    func startMPI(_ contexts: [(ranks: Int, args: [String])], mpirunOptions: [String] = []) throws -> (process: Process, log: URL) {
        let p = Process()
        p.executableURL = mpirun
        p.arguments = ["--oversubscribe"] + mpirunOptions + contexts.enumerated().flatMap { i, c in (i > 0 ? [":"] : []) + ["-np", "\(c.ranks)", binary.path] + c.args }
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        p.environment = env
        let log = tmp.appendingPathComponent("mpirun-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return (p, log)
    }

    /// Waits for the job, killing it after `seconds` (a hung collective fails the test instead of
    /// hanging it).
    func finish(_ job: (process: Process, log: URL), seconds: Double) throws -> (status: Int32, output: String) {
        let deadline = Date().addingTimeInterval(seconds)
        while job.process.isRunning && Date() < deadline { usleep(20_000) }
        if job.process.isRunning {
            job.process.terminate()
            job.process.waitUntilExit()
            XCTFail("mpirun did not end within \(seconds) s")
        }
        return (job.process.terminationStatus, try String(contentsOf: job.log, encoding: .utf8))
    }

    func runMPI(_ contexts: [(ranks: Int, args: [String])], mpirunOptions: [String] = []) throws -> (status: Int32, output: String) {
        try finish(try startMPI(contexts, mpirunOptions: mpirunOptions), seconds: 300)
    }

    /// The process of rank `rank` among mpirun's children (its OMPI_COMM_WORLD_RANK).
    func rankProcess(_ rank: Int, of mpirun: Process) -> pid_t? {
        let children = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap(Int32.init) ?? []
        return children.first { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")"),
                  Int32(stat[stat.index(close, offsetBy: 2)...].split(separator: " ")[1]) == mpirun.processIdentifier,
                  let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return environ.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == "OMPI_COMM_WORLD_RANK=\(rank)" }
        }
    }

    // MARK: - Comparisons

    /// Every `.npy` file of `a` (checkpoint included) is in `b` with the same dtype, shape and bits.
    func assertSameOutputs(_ a: URL, _ b: URL, _ what: String, atLeast: Int = 20, file: StaticString = #filePath, line: UInt = #line) throws {
        let files = FileManager.default.enumerator(atPath: a.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".npy") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, atLeast, "too few outputs to compare", file: file, line: line)
        for f in files { try assertSameArray(a.appendingPathComponent(f), b.appendingPathComponent(f), "\(what): \(f)", file: file, line: line) }
    }

    /// The same dtype, shape and bits; else the first element that differs.
    func assertSameArray(_ a: URL, _ b: URL, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try NPY.read(a), y = try NPY.read(b)
        XCTAssertEqual(x.shape, y.shape, "\(what): shape", file: file, line: line)
        XCTAssertEqual(x.dtype, y.dtype, "\(what): dtype", file: file, line: line)
        if x.values.count == y.values.count, let i = x.values.indices.first(where: { x.values[$0].bitPattern != y.values[$0].bitPattern }) {
            XCTFail("\(what): element \(i) of \(x.values.count) differs (\(x.values[i]) against \(y.values[i]))", file: file, line: line)
        }
    }
}
