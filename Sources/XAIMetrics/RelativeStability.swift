import Foundation
import XAICore
import XAIGraph
import XAIMethods

/// Relative stability (Agarwal et al. 2022, "Rethinking Stability for Attribution-based
/// Explanations"), as Quantus's `RelativeInputStability`, `RelativeOutputStability` and
/// `RelativeRepresentationStability`: the explanation is recomputed for `samples` copies of the
/// image with uniform noise in `noise` added to every input value (Quantus's `[0.02, 0.2]`), and
/// the change of the map, element by element relative to the map, is weighed against the change
/// of the input (relative, element by element), of the logits (absolute), or of a layer's
/// activations (relative). Each score is the largest ratio over the copies; lower is more stable.
///
/// With `||.||` the Frobenius norm and `r(a, b) = (a - b) / a` (a zero element of `a` read as
/// `epsilon`, as Quantus):
/// - RIS = max ||r(e(x), e(x'))|| / ||r(x, x')||
/// - ROS = max ||r(e(x), e(x'))|| / ||h(x) - h(x')||, `h` the logits
/// - RRS = max ||r(e(x), e(x'))|| / ||r(L(x), L(x'))||, `L` the layer's activations
/// each denominator read as `epsilon` where it is exactly zero.
///
/// The paper takes the maximum over the copies the model still gives the same class; a copy whose
/// predicted class differs from the image's is left out, and the score is NaN only where every
/// copy changed it. (Quantus 0.6 marks such a copy NaN and takes `np.max`, so one changed copy of
/// 200 makes the image's score NaN.)
///
/// The explanation is a closure from one image `[1, C, H, W]` to its explanation, as for
/// ``Sensitivity``: the clean image is explained again as a batch of one, so a stochastic method
/// draws the same samples for it as for every copy and only the input noise varies. The noise of
/// copy `s` of image `b` is `Tensor.uniform(in: noise, seed:)` from the SplitMix64 stream seeded
/// `seed &+ 1_000_003 * b &+ s`, as Sensitivity's.
public struct RelativeStability: Sendable {
    /// The noisy copy counts it takes.
    public static let sampleRange = 1...10_000
    public var samples: Int
    public var noise: ClosedRange<Float>
    /// The layer whose activations RRS compares; `nil`: the CAM methods' default layer.
    public var layer: String?
    public var seed: UInt64
    /// What a zero element of a divisor, and a zero denominator, are read as (Quantus's `eps_min`).
    public var epsilon: Double = 1e-6

    public init(samples: Int = 200, noise: ClosedRange<Float> = 0.02...0.2, layer: String? = nil, seed: UInt64 = 0) {
        self.samples = samples
        self.noise = noise
        self.layer = layer
        self.seed = seed
    }

    /// The three scores, one value per image, and per image the copies left out because the
    /// model's predicted class changed.
    public struct Result: Sendable {
        public let input: MetricResult
        public let output: MetricResult
        public let representation: MetricResult
        public let changedCopies: [Int]
    }

    /// Checks the sample count and the noise bounds.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`samples`, `noise`).
    public func validate() throws {
        guard Self.sampleRange.contains(samples) else {
            throw XAIError.invalidArgument(parameter: "samples", value: "\(samples)",
                                           reason: "relative stability needs \(Self.sampleRange.lowerBound) to \(Self.sampleRange.upperBound) noisy copies")
        }
        guard noise.lowerBound.isFinite, noise.upperBound.isFinite else {
            throw XAIError.invalidArgument(parameter: "noise", value: "\(noise)", reason: "the bounds must be finite")
        }
    }

    /// The noise added to copy `sample` of image `image` (`shape` `[1, C, H, W]`).
    public func noise(image: Int, sample: Int, shape: Shape) -> Tensor {
        Tensor.uniform(shape, in: noise, seed: copySeed(seed, image: image, copy: sample))
    }

    /// `||r(a, b)||` in float64, `r(a, b) = (a - b) / a`, a zero element of `a` read as `epsilon`.
    func relativeNorm(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        var sum = 0.0
        for (x, y) in zip(a, b) {
            let divisor = x == 0 ? epsilon : Double(x)
            let r = (Double(x) - Double(y)) / divisor
            sum += r * r
        }
        return sum.squareRoot()
    }

    /// `||a - b||` in float64.
    func distance(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        zip(a, b).reduce(0.0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) }.squareRoot()
    }

    /// A denominator read as `epsilon` where it is exactly zero.
    func guarded(_ d: Double) -> Double { d == 0 ? epsilon : d }

    /// The logits and the layer's activations of a batch, one forward each image where the graph
    /// fixes its batch at 1.
    func logitsAndRepresentation(_ model: ExplainedModel, _ x: Tensor, layer: String) throws -> (logits: Tensor, representation: Tensor) {
        let n = x.shape[0]
        let batch = model.fixedBatch == 1 ? 1 : n
        var logits: [Float] = [], representation: [Float] = []
        var logitShape: [Int] = [], representationShape: [Int] = []
        for start in stride(from: 0, to: n, by: batch) {
            let part = batch == n ? x : try ExplainedModel.image(x, start)
            let pass = try model.executor.forward(try model.backend.upload(part), keep: [layer])
            let l = try model.backend.download(try pass.output(model.outputName)), r = try model.backend.download(try pass.kept(layer))
            logits += l.scalars
            representation += r.scalars
            logitShape = Array(l.shape.dims.dropFirst())
            representationShape = Array(r.shape.dims.dropFirst())
        }
        return (Tensor(unchecked: Shape([n] + logitShape), logits), Tensor(unchecked: Shape([n] + representationShape), representation))
    }

    /// - Parameter explain: the explanation of a batch of one and the index of the image it is
    ///   (or is a noisy copy of); called with each image and with each of its noisy copies.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`samples`, `noise`, `layer`),
    ///   or what `explain` throws; ``XAIError/shapeMismatch(op:expected:got:)`` when a copy's
    ///   explanation differs in size from the image's.
    public func evaluate(model: ExplainedModel, images: Tensor, explain: (Tensor, Int) throws -> Tensor) throws -> Result {
        try validate()
        try model.validate(images)
        let layer = try model.camLayer(self.layer)
        let n = images.shape[0]
        let batch = try model.batchSize(requested: nil, bytesPerItem: try model.bytesPerImageForForward(), cap: 32, parameter: "samples")
        var ris: [Double] = [], ros: [Double] = [], rrs: [Double] = [], changed: [Int] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let clean = try explain(image, b)
            try clean.requireFinite("relative stability: the explanation of image \(b)")
            let reference = try logitsAndRepresentation(model, image, layer: layer)
            try reference.logits.requireFinite("relative stability: the logits of image \(b)")
            let predicted = try model.resolve(.predicted, logits: reference.logits)[0]
            var best = (input: -Double.infinity, output: -Double.infinity, representation: -Double.infinity), left = 0
            try model.inBatches(samples, of: batch) { range in
                var copies: [Float] = []
                copies.reserveCapacity(range.count * image.shape.count)
                for s in range {
                    copies += zip(image.scalars, noise(image: b, sample: s, shape: image.shape).scalars).map { $0 + $1 }
                }
                let x = Tensor(unchecked: Shape([range.count] + Array(image.shape.dims.dropFirst())), copies)
                let forward = try logitsAndRepresentation(model, x, layer: layer)
                let (classes, units) = (reference.logits.shape.count, reference.representation.shape.count)
                let classOfCopy = try model.resolve(.predicted, logits: forward.logits)
                var found: [(Double, Double, Double)?] = []
                for i in 0..<range.count {
                    let logits = forward.logits.scalars[(i * classes)..<((i + 1) * classes)]
                    guard classOfCopy[i] == predicted else { found.append(nil); continue }
                    let copy = x.scalars[(i * image.shape.count)..<((i + 1) * image.shape.count)]
                    let e = try explain(Tensor(unchecked: image.shape, Array(copy)), b)
                    guard e.shape.count == clean.shape.count else {
                        throw XAIError.shapeMismatch(op: "relative stability", expected: "explanations like the image's \(clean.shape)", got: [e.shape])
                    }
                    let change = relativeNorm(clean.scalars[...], e.scalars[...])
                    let representation = forward.representation.scalars[(i * units)..<((i + 1) * units)]
                    found.append((change / guarded(relativeNorm(image.scalars[...], copy)),
                                  change / guarded(distance(reference.logits.scalars[...], logits)),
                                  change / guarded(relativeNorm(reference.representation.scalars[...], representation))))
                }
                // Folded in only once the batch is whole (``ExplainedModel/inBatches`` may run it again).
                for f in found {
                    guard let (i, o, r) = f else { left += 1; continue }
                    best = (max(best.input, i), max(best.output, o), max(best.representation, r))
                }
            }
            changed.append(left)
            let none = left == samples
            ris.append(none ? .nan : best.input)
            ros.append(none ? .nan : best.output)
            rrs.append(none ? .nan : best.representation)
        }
        let settings = ["samples": "\(samples)", "seed": "\(seed)", "noise": "uniform in [\(noise.lowerBound), \(noise.upperBound)], added to every input value",
                        "changed copies": "left out (the model's predicted class differs from the image's); per image: " + changed.map(String.init).joined(separator: ","),
                        "epsilon": "\(epsilon)"]
        return Result(input: MetricResult(metric: "relative_input_stability", direction: .lowerIsBetter, scores: ris, settings: settings),
                      output: MetricResult(metric: "relative_output_stability", direction: .lowerIsBetter, scores: ros, settings: settings),
                      representation: MetricResult(metric: "relative_representation_stability", direction: .lowerIsBetter, scores: rrs,
                                                   settings: settings.merging(["layer": layer]) { $1 }),
                      changedCopies: changed)
    }
}
