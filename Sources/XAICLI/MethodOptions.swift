import ArgumentParser
import Foundation
import XAI

/// Method knobs shared by `xai explain` and `xai demo`: one flag per ``MethodConfiguration`` knob,
/// named like it.
struct MethodOptions: ParsableArguments {
    @Option(help: "Integrated Gradients path steps.") var steps = 50
    @Option(help: "Integrated Gradients rule: gausslegendre, trapezoid, left, right or middle.") var rule = "gausslegendre"
    @Option(help: "Samples: SmoothGrad (default 50), LIME and KernelSHAP (default 1000).") var samples: Int?
    @Option(help: "SmoothGrad noise as a fraction of the image's value range.") var noise: Float = 0.15
    @Option(help: "Baseline: zero, black (0 before normalisation), mean (per channel), blur (sigma 10), noise (uniform), or a .npy tensor [3,H,W].")
    var baseline = "zero"
    @Option(help: "Superpixels for LIME and KernelSHAP: slic, quickshift, felzenszwalb or grid.") var segmentation = "slic"
    @Option(help: "SLIC segment count (scikit-image's n_segments); for grid, cells per side.") var segments = 50
    @Option(help: "A label map at the model's input size to use as superpixels instead: .npy [H,W] of integer ids, or a PNG whose colours are the segments.") var featureMask: String?
    @Option(help: "Occlusion window side in pixels.") var window = 16
    @Option(help: "Occlusion stride in pixels.") var stride = 8
    @Option(help: "RISE mask count.") var masks = 4000
    @Option(help: "Meaningful Perturbation optimisation steps.") var iterations = 300
    @Option(help: "Layer for the CAM methods (default: the last 4-D activation before global pooling).") var layer: String?
    @Option(help: "Score Grad-CAM++ differentiates: exponential (exp(logit), pytorch-grad-cam's closed form) or probability (the softmax, exact higher derivatives; global-average-pooling + linear heads).")
    var gradcamppScore = "exponential"
    @Option(help: "Perturbed copies or path points per device batch (default: from the memory budget).") var batch: Int?
    @Option(help: "Seed of every stochastic method.") var seed: UInt64 = 0

    /// The knobs as the library takes them.
    var configuration: MethodConfiguration {
        var c = MethodConfiguration()
        c.steps = steps
        c.rule = rule
        c.samples = samples
        c.noise = noise
        c.baseline = baseline
        c.segmentation = segmentation
        c.segments = segments
        c.featureMask = featureMask
        c.window = window
        c.stride = stride
        c.masks = masks
        c.iterations = iterations
        c.layer = layer
        c.gradcamppScore = gradcamppScore
        c.batch = batch
        c.seed = seed
        return c
    }
}
