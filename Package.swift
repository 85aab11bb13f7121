// swift-tools-version:6.0
import PackageDescription

/// Release builds vectorise the elementwise neuron and trace loops with AVX2/FMA (the default
/// x86-64 target emits SSE only) and drop integer-overflow checks, which block vectorization
/// of the index arithmetic (see README "Performance").
let hotLoopFlags: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"], .when(configuration: .release))
]

let package = Package(
    name: "eprop-dense",
    products: [
        .library(name: "EProp", targets: ["EProp"]),
        .executable(name: "eprop-dense", targets: ["eprop-dense"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
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
            dependencies: ["COpenBLAS"],
            swiftSettings: hotLoopFlags
        ),
        // The command line: options -> configuration -> trainer -> outputs.
        .executableTarget(
            name: "eprop-dense",
            dependencies: [
                "EProp",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "EPropTests",
            dependencies: ["EProp"]
        ),
    ]
)
