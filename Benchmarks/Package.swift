// swift-tools-version:6.1
// Benchmark suite of eprop-dense, a package of its own so that ordo-one/benchmark and its
// dependencies never enter the root package's `swift build` / `swift test`.
// Run from this folder: `swift package --disable-sandbox benchmark` (see README.md).
import PackageDescription

let package = Package(
    name: "eprop-dense-benchmarks",
    dependencies: [
        // Only the malloc interposer trait: the default traits also enable the Swift 6.3 ARC
        // runtime interposer, whose package is not needed for these metrics.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        // The engine, as a local path dependency: SwiftPM accepts its unsafeFlags
        // (-Ounchecked, -target-cpu haswell) only from the root package or a local path.
        .package(name: "eprop-dense", path: ".."),
    ],
    targets: [
        // One time step (SequenceBuffers.advance) of a batch: per-step wall time, steps/s, mallocs.
        .executableTarget(
            name: "TimeStep",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "EProp", package: "eprop-dense"),
            ],
            path: "Benchmarks/TimeStep",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // One training iteration (Trainer.step): forward of B sequences, gradient, Adam step.
        .executableTarget(
            name: "Iteration",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "EProp", package: "eprop-dense"),
            ],
            path: "Benchmarks/Iteration",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
