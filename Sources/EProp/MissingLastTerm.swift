/// NEST's missing learning-signal term (docs/mathematics.md §6.2). An input synapse ji is
/// updated when input i next spikes; if that spike comes at step 1 of the following sequence,
/// the update runs before the learning signal of the last step, L_j(T-1), has arrived, so the
/// term L_j(T-1) ebar_ji(T-1) never enters its gradient. After the run's last sequence NEST's
/// forced final update keeps it.
///
/// This value says, for the sequences of one shard, which terms are left out. Both gradient
/// methods read it; the trainer builds it (`Trainer.missingLastTerm`). The run's last sequence
/// is treated like every other one (its term left out, as a longer run would) and its term is
/// also computed on its own, so the trainer can add it back for the run's final step while a
/// checkpoint keeps the state a longer run would reach.
public struct MissingLastTerm: Sendable {
    /// `[B]` for each sequence of the shard: the input columns whose L(T-1) term is left out
    /// (the inputs that spike at step 1 of the next sequence). Empty lists keep every term.
    public var inputs: [[Int]]
    /// The sequence of the shard that is the run's last, whose left-out term is also computed
    /// on its own (into the `term` argument of `GradientComputer.accumulate`); nil if none.
    public var lastOfRun: Int?

    /// Every term kept (NEST's quirk off, `--no-nest-missing-learning-signal`).
    public static func none(batch: Int) -> MissingLastTerm { MissingLastTerm(inputs: Array(repeating: [], count: batch), lastOfRun: nil) }

    public init(inputs: [[Int]], lastOfRun: Int?) {
        self.inputs = inputs
        self.lastOfRun = lastOfRun
    }

    /// For the sequences `first ..< first + count` (0-based over the run, `total` in all): the
    /// inputs of `patterns` that spike at step 1 of each one's successor.
    static func of(_ patterns: Patterns, first: Int, count: Int, total: Int) -> MissingLastTerm {
        let inputs = (first..<(first + count)).map { k -> [Int] in
            return patterns.spikingInputs(k + 1, atStep: 1)
        }
        let last = total - 1 - first
        return MissingLastTerm(inputs: inputs, lastOfRun: (0..<count).contains(last) && !inputs[last].isEmpty ? last : nil)
    }
}
