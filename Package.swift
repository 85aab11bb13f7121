// swift-tools-version:6.0
import Foundation
import PackageDescription

/// Release builds of this repository compile the engine for AVX2/FMA (`-target-cpu haswell`): the
/// elementwise neuron and trace loops then run 8 floats wide instead of 4 (measured: a tutorial
/// iteration takes 1.5x as long without it; see README "Build flags"). SwiftPM refuses unsafe flags
/// in a package that another package depends on by URL and version, so a checkout made for a
/// dependent package (SwiftPM and Xcode put those under a `checkouts` folder) builds the portable
/// way, as does any build with `EPROP_DENSE_PORTABLE=1` or on a host that is not x86-64. The
/// command line refuses to start on an x86-64 CPU without AVX2/FMA when built with the flag.
let isDependencyCheckout = Context.packageDirectory.split(separator: "/").contains("checkouts")
let portable = isDependencyCheckout || Context.environment["EPROP_DENSE_PORTABLE"] == "1"
#if arch(x86_64)
let needsAVX2 = !portable
#else
let needsAVX2 = false
#endif
let avx2Define: [SwiftSetting] = needsAVX2 ? [.define("EPROP_DENSE_AVX2", .when(configuration: .release))] : []
let hotLoopFlags: [SwiftSetting] =
    avx2Define + (needsAVX2 ? [.unsafeFlags(["-target-cpu", "haswell"], .when(configuration: .release))] : [])

/// Data-parallel training over Open MPI (`mpirun -np N eprop-dense ...`, README "Several
/// processes") is built in when Open MPI's development files are installed (Debian:
/// `libopenmpi-dev`, which `scripts/setup.sh` installs), found by their pkg-config file; without
/// them, or with `EPROP_DENSE_MPI=0`, eprop-dense builds and runs as one process.
let pkgConfigDirs = (Context.environment["PKG_CONFIG_PATH"] ?? "").split(separator: ":").map(String.init)
    + ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib")) ?? []).map { "/usr/lib/\($0)/pkgconfig" }
    + ["/usr/lib/pkgconfig", "/usr/local/lib/pkgconfig", "/usr/share/pkgconfig"]
let withMPI = Context.environment["EPROP_DENSE_MPI"] != "0"
    && pkgConfigDirs.contains { FileManager.default.fileExists(atPath: "\($0)/ompi-c.pc") }
let mpiTargets: [Target] = withMPI
    ? [.systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])])] : []
let mpiDependency: [Target.Dependency] = withMPI ? ["CMPI"] : []
let mpiDefine: [SwiftSetting] = withMPI ? [.define("EPROP_DENSE_MPI")] : []

let package = Package(
    name: "eprop-dense",
    products: [
        .library(name: "EProp", targets: ["EProp"]),
        .executable(name: "eprop-dense", targets: ["eprop-dense"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: mpiTargets + [
        // Debian's OpenBLAS (CBLAS) and LAPACKE. Only EProp/BLAS.swift imports it.
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        // The engine: neuron models, e-prop gradients, optimizers, tasks, .npy I/O, RNG.
        .target(
            name: "EProp",
            dependencies: ["COpenBLAS"] + mpiDependency,
            swiftSettings: hotLoopFlags + mpiDefine
        ),
        // The command line's options, configuration resolution and printing (a library, so
        // that tests parse options in-process). Built portably: it checks the CPU first.
        .target(
            name: "EPropCLI",
            dependencies: [
                "EProp",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: avx2Define
        ),
        // The executable: main.swift only.
        .executableTarget(
            name: "eprop-dense",
            dependencies: ["EPropCLI"]
        ),
        .testTarget(
            name: "EPropTests",
            dependencies: ["EProp", "EPropCLI"],
            exclude: ["Fixtures"]  // data files read by path (#filePath), with the script that made them
        ),
    ]
)
