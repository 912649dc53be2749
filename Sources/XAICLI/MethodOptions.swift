import ArgumentParser
import Foundation
import XAI

/// Method knobs shared by `xai explain` and `xai demo`: one flag per ``MethodConfiguration`` knob,
/// named like it.
struct MethodOptions: ParsableArguments {
    // Defaults and help come from the library's knobs (MethodConfiguration), written once there.
    private static let d = MethodConfiguration()
    @Option(help: help("steps")) var steps = d.steps
    @Option(help: help("rule")) var rule = d.rule
    @Option(help: help("samples")) var samples: Int?
    @Option(help: help("untilStable")) var untilStable: Double?
    @Option(help: help("coalitionSampling")) var coalitionSampling = d.coalitionSampling
    @Flag(inversion: .prefixedNo, help: help("controlVariate")) var controlVariate = d.controlVariate
    @Option(help: help("noise")) var noise = d.noise
    @Option(help: help("baseline")) var baseline = d.baseline
    @Option(help: help("segmentation")) var segmentation = d.segmentation
    @Option(help: help("segments")) var segments = d.segments
    @Option(help: help("featureMask")) var featureMask: String?
    @Option(help: help("window")) var window = d.window
    @Option(help: help("stride")) var stride = d.stride
    @Flag(inversion: .prefixedNo, help: help("incremental")) var incremental = d.incremental
    @Option(help: help("masks")) var masks = d.masks
    @Option(help: help("iterations")) var iterations = d.iterations
    @Option(help: help("layer")) var layer: String?
    @Option(help: help("gradcamppScore")) var gradcamppScore = d.gradcamppScore
    @Option(help: help("relu")) var relu = d.relu
    @Option(help: help("batch")) var batch: Int?
    @Option(help: help("seed")) var seed = d.seed

    /// A knob's flag help: its summary, with the choices where it has a few.
    static func help(_ knob: String) -> ArgumentHelp {
        guard let k = try? MethodConfiguration.knob(knob) else { return ArgumentHelp() }
        return ArgumentHelp(k.summary + (k.choices.map { " One of: " + $0.joined(separator: ", ") + "." } ?? ""))
    }

    /// The knobs as the library takes them.
    var configuration: MethodConfiguration {
        var c = MethodConfiguration()
        c.steps = steps
        c.rule = rule
        c.samples = samples
        c.untilStable = untilStable
        c.coalitionSampling = coalitionSampling
        c.controlVariate = controlVariate
        c.noise = noise
        c.baseline = baseline
        c.segmentation = segmentation
        c.segments = segments
        c.featureMask = featureMask
        c.window = window
        c.stride = stride
        c.incremental = incremental
        c.masks = masks
        c.iterations = iterations
        c.layer = layer
        c.gradcamppScore = gradcamppScore
        c.relu = relu
        c.batch = batch
        c.seed = seed
        return c
    }
}
