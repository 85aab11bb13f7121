#!/usr/bin/env bash
# Shows that another SwiftPM package can depend on EProp by URL and version: clones this
# repository's committed HEAD, tags the clone, builds a tiny consumer package against the tag (release, as a
# user would) and runs a two-iteration training run through the library API. SwiftPM refuses
# unsafe build flags in such a dependency, so this also guards Package.swift.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q . "$work/eprop-dense"
git -C "$work/eprop-dense" tag 99.0.0
mkdir -p "$work/consumer/Sources/Consumer"
cat > "$work/consumer/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "consumer",
    dependencies: [.package(url: "file://$work/eprop-dense", from: "99.0.0")],
    targets: [.executableTarget(name: "Consumer", dependencies: [.product(name: "EProp", package: "eprop-dense")])]
)
SWIFT
cat > "$work/consumer/Sources/Consumer/main.swift" <<'SWIFT'
import EProp
import Foundation

// A small tutorial network, two iterations, through the library's run type.
var config = TrainingConfig.defaults(for: .infiniteLoop)
(config.nIn, config.nRec, config.sequence, config.iterations) = (10, 20, 100, 2)
let out = URL(fileURLWithPath: CommandLine.arguments[1])
try RunPlan.validate(config, recording: RecordingOptions(), checkpointEvery: 1, out: out)
let plan = RunPlan(config: config, initial: try TaskGenerator.generate(config), checkpointEvery: 1, initSource: "seed 1")
var losses: [Double] = []
let summary = try plan.run(in: try RunFolder(out, replace: false), RunControl(onIteration: { losses.append($0.loss) }))
print("consumer: \(summary.outcome), \(summary.completedIterations) iterations, losses \(losses)")
guard summary.outcome == .complete, losses.count == 2, losses.allSatisfy(\.isFinite) else { exit(1) }
SWIFT
(cd "$work/consumer" && swift build -c release 2>&1 | tail -n 3)
"$work/consumer/.build/release/Consumer" "$work/run"
test -f "$work/run/checkpoint/checkpoint.json"
echo "check-consumer: OK (EProp used as a versioned dependency)"
