import Foundation
import XAICore
import XAIMethods

/// Sensitivity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of Explanations"), as
/// Captum's `sensitivity_max`: the explanation is recomputed for `samples` copies of the image
/// with uniform noise in `[-radius, radius]` added to every input value, and each copy scores
/// `||e(x) - e(x + d)|| / ||e(x)||` (Frobenius norms; the plain difference norm where `e(x)` is
/// all zero, as Captum). `sensitivity_max` is the largest over the copies, `sensitivity_avg`
/// their mean, and the local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018) the largest
/// `||e(x) - e(x + d)|| / ||d||` from the same copies. Lower is more stable.
///
/// The explanation is a closure from one image `[1, C, H, W]` to its explanation (any shape):
/// re-running a method by name with its seed fixed, one copy per call, so that only the input
/// noise varies (stochastic methods like LIME and SmoothGrad draw the same samples for every copy). The
/// noise of copy `s` of image `b` is `Tensor.uniform(in: -radius...radius, seed:)` from the
/// SplitMix64 stream seeded `seed &+ 1_000_003 * b &+ s`, exported to the fixture script.
public struct Sensitivity: Sendable {
    /// The noisy copy counts it takes.
    public static let sampleRange = 1...10_000
    public var radius: Float
    public var samples: Int
    public var seed: UInt64

    public init(radius: Float = 0.02, samples: Int = 10, seed: UInt64 = 0) {
        self.radius = radius
        self.samples = samples
        self.seed = seed
    }

    /// The three scores, each with one value per image.
    public struct Result: Sendable {
        public let max: MetricResult
        public let average: MetricResult
        public let lipschitz: MetricResult
    }

    /// Checks the radius and the sample count.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`radius`, `samples`).
    public func validate() throws {
        guard radius.isFinite, radius >= 0 else {
            throw XAIError.invalidArgument(parameter: "radius", value: "\(radius)", reason: "must be a non-negative number")
        }
        guard Self.sampleRange.contains(samples) else {
            throw XAIError.invalidArgument(parameter: "samples", value: "\(samples)",
                                           reason: "sensitivity needs \(Self.sampleRange.lowerBound) to \(Self.sampleRange.upperBound) noisy copies")
        }
    }

    /// The noise added to copy `sample` of image `image` (`shape` `[1, C, H, W]`).
    public func noise(image: Int, sample: Int, shape: Shape) -> Tensor {
        Tensor.uniform(shape, in: -radius...radius, seed: copySeed(seed, image: image, copy: sample))
    }

    /// - Parameter explain: the explanation of a batch of one, `[1, ...]` for `[1, C, H, W]`;
    ///   called with each image and with each of its noisy copies.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`radius`, `samples`), or
    ///   what `explain` throws; ``XAIError/shapeMismatch(op:expected:got:)`` when the noisy
    ///   copies' explanations differ in shape from the image's.
    public func evaluate(images: Tensor, explain: (Tensor) throws -> Tensor) throws -> Result {
        try evaluate(images: images) { x, _ in try explain(x) }
    }

    /// - Parameter explain: the explanation of a batch of one and the index of the image it is
    ///   (or is a noisy copy of), so each image can be explained for its own class.
    public func evaluate(images: Tensor, explain: (Tensor, Int) throws -> Tensor) throws -> Result {
        try validate()
        guard images.shape.rank == 4, images.shape[0] >= 1 else {
            throw XAIError.shapeMismatch(op: "sensitivity", expected: "images [N, C, H, W]", got: [images.shape])
        }
        let n = images.shape[0]
        var maxima: [Double] = [], means: [Double] = [], lipschitz: [Double] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let clean = try explain(image, b)
            try clean.requireFinite("sensitivity: the explanation of image \(b)")
            // One copy per call: a stochastic method draws its samples per image of a batch, so
            // only a batch of one gets the clean image's draws again.
            var noises: [Tensor] = []
            var noisy: [Tensor] = []
            for s in 0..<samples {
                let d = noise(image: b, sample: s, shape: image.shape)
                noises.append(d)
                let e = try explain(Tensor(unchecked: image.shape, zip(image.scalars, d.scalars).map { $0 + $1 }), b)
                guard e.shape.count == clean.shape.count else {
                    throw XAIError.shapeMismatch(op: "sensitivity", expected: "explanations like the image's \(clean.shape)", got: [e.shape])
                }
                noisy.append(e)
            }
            let per = clean.shape.count
            let norm = clean.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            var ratios: [Double] = [], quotients: [Double] = []
            for s in 0..<samples {
                var difference = 0.0
                for i in 0..<per {
                    let e = Double(clean.scalars[i]) - Double(noisy[s].scalars[i])
                    difference += e * e
                }
                difference = difference.squareRoot()
                ratios.append(norm > 0 ? difference / norm : difference)
                let dn = noises[s].scalars.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                quotients.append(dn > 0 ? difference / dn : .nan)
            }
            maxima.append(ratios.max() ?? .nan)
            means.append(ratios.reduce(0, +) / Double(samples))
            lipschitz.append(quotients.max() ?? .nan)
        }
        let settings = ["radius": "\(radius)", "samples": "\(samples)", "seed": "\(seed)", "noise": "uniform in [-radius, radius], added to every input value",
                        "norm": "Frobenius, relative to ||e(x)||"]
        return Result(max: MetricResult(metric: "sensitivity_max", direction: .lowerIsBetter, scores: maxima, settings: settings),
                      average: MetricResult(metric: "sensitivity_avg", direction: .lowerIsBetter, scores: means, settings: settings),
                      lipschitz: MetricResult(metric: "local_lipschitz", direction: .lowerIsBetter, scores: lipschitz,
                                              settings: settings.merging(["norm": "||e(x) - e(x + d)|| / ||d||, Frobenius"]) { $1 }))
    }
}
