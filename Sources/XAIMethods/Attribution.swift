import Foundation
import XAICore
import XAIGraph

/// Which output an explanation is for.
public enum Target: Sendable, Hashable {
    /// The top-1 class of each image.
    case predicted
    /// One class for every image.
    case index(Int)
    /// One class per image of the batch.
    case perImage([Int])
}

/// The reference input that perturbation and path methods compare against.
public enum Baseline: Sendable {
    /// All zeros (after the model's normalisation).
    case zero
    /// A constant value (e.g. black after normalisation: -mean/std per channel), one per channel.
    case perChannel([Float])
    /// A user tensor `[1, C, H, W]` or `[C, H, W]`.
    case tensor(Tensor)
    /// Each channel's mean over the image being explained.
    case channelMean
    /// The image blurred by a Gaussian of standard deviation `sigma` pixels (edges reflected).
    case blurred(sigma: Float)
    /// Uniform noise in `low...high`, drawn from `seed` (the same noise for every image of a batch).
    case uniformNoise(low: Float, high: Float, seed: UInt64)
}

/// An explanation of a batch: one map per image at input resolution, the raw attribution where the
/// method has one, the explained classes and their scores, and per-method diagnostics.
public struct Attribution: Sendable {
    /// `[N, H, W]` at the model's input resolution.
    public var map: Tensor
    /// The method's own tensor: input gradients `[N, C, H, W]`, a CAM at layer resolution `[N, h, w]`.
    public var raw: Tensor?
    /// The explained class of each image.
    public var targets: [Int]
    /// The model's logit for each explained class.
    public var scores: [Float]
    /// Per-image diagnostics by name (for Integrated Gradients: `completenessDelta`, `outputDifference`;
    /// for sampling methods: `halfSplitRankCorrelation`).
    public var diagnostics: [String: [Double]] = [:]
    /// The superpixel label map `[N, H, W]` that segment-based methods explained (LIME, KernelSHAP).
    public var segments: Tensor?

    public init(map: Tensor, raw: Tensor?, targets: [Int], scores: [Float], diagnostics: [String: [Double]] = [:], segments: Tensor? = nil) {
        self.map = map
        self.raw = raw
        self.targets = targets
        self.scores = scores
        self.diagnostics = diagnostics
        self.segments = segments
    }
}

extension Attribution {
    /// Image `i` of an explanation of `count` images, as its own one-image explanation: its map,
    /// raw tensor and segments, target, score, and each diagnostic's value for it (a diagnostic
    /// with one value for the whole batch is kept as it is).
    public func image(_ i: Int, of count: Int) throws -> Attribution {
        guard count >= 1, i >= 0, i < count, targets.count == count, scores.count == count else {
            throw XAIError.invalidArgument(parameter: "image", value: "\(i)", reason: "not one of the \(targets.count) images explained")
        }
        func slice(_ t: Tensor) throws -> Tensor {
            guard t.shape.rank >= 1, t.shape[0] == count else {
                throw XAIError.shapeMismatch(op: "attribution of image \(i)", expected: "a leading axis of \(count) images", got: [t.shape])
            }
            let per = t.shape.count / count
            return try Tensor(shape: Shape([1] + t.shape.dims.dropFirst()), scalars: Array(t.scalars[(i * per)..<((i + 1) * per)]))
        }
        return Attribution(map: try slice(map), raw: try raw.map(slice), targets: [targets[i]], scores: [scores[i]],
                           diagnostics: diagnostics.mapValues { $0.count == count ? [$0[i]] : $0 }, segments: try segments.map(slice))
    }
}

extension Attribution {
    /// One explanation of the images of `parts`, in order: the inverse of ``image(_:of:)``. The
    /// raw tensors and segments are joined where every part has them; a diagnostic where every
    /// part has it.
    public static func joined(_ parts: [Attribution]) throws -> Attribution {
        guard let first = parts.first else {
            throw XAIError.invalidArgument(parameter: "images", value: "0", reason: "no explanation to join")
        }
        func join(_ tensors: [Tensor]) throws -> Tensor {
            guard tensors.allSatisfy({ $0.shape.rank >= 1 && Array($0.shape.dims.dropFirst()) == Array(tensors[0].shape.dims.dropFirst()) }) else {
                throw XAIError.shapeMismatch(op: "joined attributions", expected: "one shape after the batch", got: tensors.map(\.shape))
            }
            return try Tensor(shape: Shape([tensors.reduce(0) { $0 + $1.shape[0] }] + tensors[0].shape.dims.dropFirst()),
                              scalars: tensors.flatMap(\.scalars))
        }
        let raws = parts.compactMap(\.raw), segments = parts.compactMap(\.segments)
        var diagnostics: [String: [Double]] = [:]
        for key in first.diagnostics.keys where parts.allSatisfy({ $0.diagnostics[key] != nil }) {
            diagnostics[key] = parts.flatMap { $0.diagnostics[key] ?? [] }
        }
        return Attribution(map: try join(parts.map(\.map)), raw: raws.count == parts.count ? try join(raws) : nil,
                           targets: parts.flatMap(\.targets), scores: parts.flatMap(\.scores), diagnostics: diagnostics,
                           segments: segments.count == parts.count ? try join(segments) : nil)
    }
}

/// A method run on one image at a time, for a model whose graph fixes its batch at 1 (exported
/// without a dynamic batch axis): given several images, each is explained alone and the
/// explanations joined.
public struct ImageByImage: AttributionMethod {
    public let method: any AttributionMethod
    public var name: String { method.name }
    public var explainedModel: ExplainedModel? { method.explainedModel }

    public init(_ method: any AttributionMethod) { self.method = method }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        guard input.shape.rank == 4, input.shape[0] > 1 else { return try method.attribute(input, target: target, baseline: baseline) }
        let n = input.shape[0], per = input.shape.count / n
        if case .perImage(let classes) = target, classes.count != n {
            throw XAIError.invalidArgument(parameter: "target", value: "\(classes.count) classes", reason: "the batch has \(n) images")
        }
        return try Attribution.joined((0..<n).map { b in
            let image = try Tensor(shape: Shape([1] + input.shape.dims.dropFirst()), scalars: Array(input.scalars[(b * per)..<((b + 1) * per)]))
            let own: Target = if case .perImage(let classes) = target { .index(classes[b]) } else { target }
            return try method.attribute(image, target: own, baseline: baseline)
        })
    }
}

/// Every explanation method has this one call; knobs live in the method's initializer.
public protocol AttributionMethod {
    /// The method's name (the command line's and the registry's).
    var name: String { get }
    /// The model the method explains (wrappers such as SmoothGrad report the wrapped method's);
    /// used to size batches and resolve targets.
    var explainedModel: ExplainedModel? { get }
    /// Explains `input` (`[N, C, H, W]`) for `target`, comparing against `baseline` where the method uses one.
    /// - Throws: ``XAIError`` naming the parameter, shape or node at fault; nothing a caller passes traps.
    func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution
}

/// A method that runs one model: every method but the wrappers.
public protocol ModelMethod: AttributionMethod {
    var model: ExplainedModel { get }
}

extension ModelMethod {
    public var explainedModel: ExplainedModel? { model }
}

extension AttributionMethod {
    public func attribute(_ input: Tensor, target: Target = .predicted) throws -> Attribution {
        try attribute(input, target: target, baseline: .zero)
    }

    /// Explains every image of `input` for each class of `classes` in one call, as one batch: the
    /// result holds `N * classes.count` maps, image-major (image 0 for every class, then image 1, ...).
    public func attribute(_ input: Tensor, classes: [Int], baseline: Baseline = .zero) throws -> Attribution {
        guard !classes.isEmpty else { throw XAIError.invalidArgument(parameter: "target", value: "[]", reason: "no classes to explain") }
        guard input.shape.rank >= 1, input.shape[0] >= 1 else {
            throw XAIError.shapeMismatch(op: "attribute", expected: "an image batch [N, C, H, W] with N >= 1", got: [input.shape])
        }
        let n = input.shape[0], per = input.shape.count / n
        var scalars: [Float] = []
        scalars.reserveCapacity(n * classes.count * per)
        for b in 0..<n { for _ in classes { scalars += input.scalars[(b * per)..<((b + 1) * per)] } }
        let repeated = try Tensor(shape: Shape([n * classes.count] + input.shape.dims.dropFirst()), scalars: scalars)
        return try attribute(repeated, target: .perImage((0..<n).flatMap { _ in classes }), baseline: baseline)
    }
}
