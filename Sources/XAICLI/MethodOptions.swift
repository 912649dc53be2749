import ArgumentParser
import Foundation
import XAI

/// Method knobs shared by `xai explain` and `xai demo`: one flag per ``MethodConfiguration`` knob,
/// named like it.
struct MethodOptions: ParsableArguments {
    // Defaults and help come from the library's knobs (MethodConfiguration.fields), written once there.
    private static let d = MethodConfiguration()
    @Option(help: help("steps")) var steps = d.steps
    @Option(help: help("rule")) var rule = d.rule
    @Option(help: help("samples")) var samples: Int?
    @Option(help: help("untilStable")) var untilStable: Double?
    @Option(help: help("coalitionSampling")) var coalitionSampling = d.coalitionSampling
    @Flag(inversion: .prefixedNo, help: help("controlVariate")) var controlVariate = d.controlVariate
    @Option(help: help("noise")) var noise = d.noise
    @Flag(inversion: .prefixedNo, help: help("absolute")) var absolute = d.absolute
    @Option(help: help("stdevs")) var stdevs = d.stdevs
    @Option(help: help("composite")) var composite = d.composite
    @Option(help: help("epsilon")) var epsilon = d.epsilon
    @Option(help: help("gamma")) var gamma = d.gamma
    @Option(help: help("baseline")) var baseline = d.baseline
    @Option(help: help("segmentation")) var segmentation = d.segmentation
    @Option(help: help("segments")) var segments = d.segments
    @Option(help: help("featureMask")) var featureMask: String?
    @Option(help: help("window")) var window = d.window
    @Option(help: help("stride")) var stride = d.stride
    @Flag(inversion: .prefixedNo, help: help("incremental")) var incremental = d.incremental
    @Option(help: help("masks")) var masks = d.masks
    @Option(help: help("score")) var score: String?
    @Option(help: help("iterations")) var iterations = d.iterations
    @Option(help: help("layer")) var layer: String?
    @Option(help: help("gradcamppScore")) var gradcamppScore = d.gradcamppScore
    @Option(help: help("ablation")) var ablation = d.ablation
    @Option(help: help("femSigmas")) var femSigmas = d.femSigmas
    @Option(help: help("kpcaKernel")) var kpcaKernel = d.kpcaKernel
    @Option(help: help("kpcaGamma")) var kpcaGamma: Double?
    @Option(help: help("finerAlpha")) var finerAlpha = d.finerAlpha
    @Option(help: help("shapleyScore")) var shapleyScore = d.shapleyScore
    @Option(help: help("relu")) var relu = d.relu
    @Option(help: help("batch")) var batch: Int?
    @Option(help: help("seed")) var seed = d.seed

    /// A knob's flag help: its summary, with the choices where it has a few.
    static func help(_ knob: String) -> ArgumentHelp { knobHelp(MethodConfiguration.self, knob) }

    /// The knobs as the library takes them: each flag sets the knob it is named after (a test
    /// holds the flags and the knobs equal), so a new knob is its row in the library and its line above.
    func configuration() throws -> MethodConfiguration {
        try knobConfiguration(from: self)
    }
}

/// A knob's flag help: its summary, with the choices where it has a few.
func knobHelp<C: KnobConfiguration>(_ configuration: C.Type, _ knob: String) -> ArgumentHelp {
    do {
        let k = try C.knob(knob)
        return ArgumentHelp(k.summary + (k.choices.map { " One of: " + $0.joined(separator: ", ") + "." } ?? ""))
    } catch {
        return ArgumentHelp()
    }
}

/// The value a parsed option or flag holds, read without knowing its type.
protocol ParsedValue { var parsedValue: Any { get } }
extension Option: ParsedValue { var parsedValue: Any { wrappedValue } }
extension Flag: ParsedValue { var parsedValue: Any { wrappedValue } }

/// A configuration whose knobs are the option group's flags, each property named like its knob.
/// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for a property that is no knob.
func knobConfiguration<C: KnobConfiguration>(from options: some ParsableArguments) throws -> C {
    var c = C()
    for child in Mirror(reflecting: options).children {
        guard let label = child.label, label.hasPrefix("_"), let value = child.value as? ParsedValue else { continue }
        try c.set(String(label.dropFirst()), value.parsedValue)
    }
    return c
}
