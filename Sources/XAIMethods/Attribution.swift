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

/// Every explanation method has this one call; knobs live in the method's initializer.
public protocol AttributionMethod {
    /// The method's command-line name.
    var name: String { get }
    /// Explains `input` (`[N, C, H, W]`) for `target`, comparing against `baseline` where the method uses one.
    func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution
}

extension AttributionMethod {
    public func attribute(_ input: Tensor, target: Target = .predicted) throws -> Attribution {
        try attribute(input, target: target, baseline: .zero)
    }

    /// Explains every image of `input` for each class of `classes` in one call, as one batch: the
    /// result holds `N * classes.count` maps, image-major (image 0 for every class, then image 1, ...).
    public func attribute(_ input: Tensor, classes: [Int], baseline: Baseline = .zero) throws -> Attribution {
        guard !classes.isEmpty else { throw XAIError.invalidArgument(op: "--target", message: "no classes to explain") }
        let n = input.shape[0], per = input.shape.count / max(n, 1)
        var scalars: [Float] = []
        scalars.reserveCapacity(n * classes.count * per)
        for b in 0..<n { for _ in classes { scalars += input.scalars[(b * per)..<((b + 1) * per)] } }
        let repeated = try Tensor(shape: Shape([n * classes.count] + input.shape.dims.dropFirst()), scalars: scalars)
        return try attribute(repeated, target: .perImage((0..<n).flatMap { _ in classes }), baseline: baseline)
    }

    /// The model a method explains, where it has one (wrappers use it to size their batches).
    public var explainedModel: ExplainedModel? { (self as? any ModelBacked)?.model }
}

/// Methods that run one ``ExplainedModel``.
public protocol ModelBacked {
    var model: ExplainedModel { get }
}

extension Saliency: ModelBacked {}
extension InputXGradient: ModelBacked {}
extension IntegratedGradients: ModelBacked {}
extension GradientCAM: ModelBacked {}
extension CAM: ModelBacked {}

/// A model ready to be explained: a graph on a backend, with the helpers methods share (targets,
/// batched gradients, layer activations).
public final class ExplainedModel: @unchecked Sendable {
    public let graph: Graph
    public let backend: any Backend
    public let executor: Executor
    public let inputName: String
    public let outputName: String
    private var cachedSummary: GraphSummary?
    private let lock = NSLock()

    /// Shapes, FLOPs and CAM layers of the graph at batch 1 (computed once).
    public func summary() throws -> GraphSummary {
        lock.lock(); defer { lock.unlock() }
        if let cachedSummary { return cachedSummary }
        let s = try graph.summary()
        cachedSummary = s
        return s
    }

    /// Bytes of activations one image needs in a forward pass kept for backward, plus its gradients.
    public func bytesPerImageForBackward() throws -> Int {
        let s = try summary()
        let activations = s.shapes.filter { graph.initializers[$0.key] == nil }.values.reduce(0) { $0 + $1.count }
        return activations * 4 * 2
    }

    public init(graph: Graph, backend: any Backend) throws {
        guard let input = graph.imageInput, let output = graph.outputs.first else {
            throw XAIError.invalidArgument(op: "model", message: "\(graph.name) needs one image input and one output")
        }
        self.graph = graph
        self.backend = backend
        executor = Executor(graph: graph, backend: backend)
        inputName = input.name
        outputName = output.name
    }

    /// The logits `[N, classes]` of a batch.
    public func logits(_ x: DeviceArray) throws -> Tensor {
        try backend.download(try executor.forward(x).outputs[outputName]!)
    }

    /// The class of each image for `target`, given the batch's logits.
    public func resolve(_ target: Target, logits: Tensor) throws -> [Int] {
        let n = logits.shape[0], classes = logits.shape.count / max(n, 1)
        let targets: [Int]
        switch target {
        case .predicted:
            targets = (0..<n).map { b in
                let row = logits.scalars[(b * classes)..<((b + 1) * classes)]
                return row.indices.max { row[$0] < row[$1] }! - b * classes
            }
        case .index(let i): targets = [Int](repeating: i, count: n)
        case .perImage(let list):
            guard list.count == n else {
                throw XAIError.invalidArgument(op: "--target", message: "\(list.count) classes for a batch of \(n) images")
            }
            targets = list
        }
        for t in targets where !(0..<classes).contains(t) {
            throw XAIError.invalidArgument(op: "--target", message: "class \(t) is outside the model's \(classes) outputs")
        }
        return targets
    }

    /// A seed selecting logit `targets[b]` of each row.
    func seed(_ shape: Shape, targets: [Int]) throws -> DeviceArray {
        var t = Tensor(shape: shape)
        let classes = shape.count / shape[0]
        t.withUnsafeMutableBufferPointer { p in
            for (b, c) in targets.enumerated() { p[b * classes + c] = 1 }
        }
        return try backend.upload(t)
    }

    /// One forward and one backward of `sum_b logit[b, targets[b]]` over a batch:
    /// the logits, the gradients with respect to `wrt`, and the `keep` activations.
    public func gradients(_ x: DeviceArray, targets: [Int]? = nil, target: Target = .predicted,
                          wrt: Set<String>, keep: Set<String> = []) throws -> (logits: Tensor, targets: [Int], grads: [String: DeviceArray], kept: [String: DeviceArray]) {
        let pass = try executor.forward(x, keep: keep, forBackward: true)
        let y = pass.outputs[outputName]!
        let logits = try backend.download(y)
        let t = try targets ?? resolve(target, logits: logits)
        let grads = try executor.backward(pass, seeds: [outputName: try seed(y.shape, targets: t)], wrt: wrt)
        return (logits, t, grads, pass.kept)
    }

    /// The baseline as a `[1, C, H, W]` tensor for `image` (`[1, C, H, W]`).
    public func baselineTensor(_ baseline: Baseline, for image: Tensor) throws -> Tensor {
        let one = Shape([1] + image.shape.dims.dropFirst())
        switch baseline {
        case .channelMean:
            let plane = one.count / one[1]
            let means = (0..<one[1]).map { c in image.scalars[(c * plane)..<((c + 1) * plane)].reduce(0.0) { $0 + Double($1) } / Double(plane) }
            return try Tensor(shape: one, scalars: means.flatMap { [Float](repeating: Float($0), count: plane) })
        case .blurred(let sigma):
            guard sigma >= 0, sigma.isFinite else {
                throw XAIError.invalidArgument(op: "--baseline", message: "blur sigma must be a non-negative number, got \(sigma)")
            }
            return try gaussianBlur(image.reshaped(one), sigma: sigma)
        case .uniformNoise(let low, let high, let seed):
            guard low < high else { throw XAIError.invalidArgument(op: "--baseline", message: "uniform noise needs low < high, got \(low)...\(high)") }
            return Tensor.uniform(one, in: low...high, seed: seed)
        case .zero: return Tensor(shape: one)
        case .perChannel(let values):
            guard values.count == one[1] else {
                throw XAIError.invalidArgument(op: "--baseline", message: "\(values.count) channel values for \(one[1]) channels")
            }
            let plane = one.count / one[1]
            return try Tensor(shape: one, scalars: values.flatMap { [Float](repeating: $0, count: plane) })
        case .tensor(let t):
            guard t.shape.count == one.count else {
                throw XAIError.shapeMismatch(op: "--baseline", message: "baseline \(t.shape) for images \(one)")
            }
            return try t.reshaped(one)
        }
    }

    /// Row `b` of a batch tensor as a `[1, ...]` tensor.
    public static func image(_ t: Tensor, _ b: Int) throws -> Tensor {
        let per = t.shape.count / t.shape[0]
        return try Tensor(shape: Shape([1] + t.shape.dims.dropFirst()), scalars: Array(t.scalars[(b * per)..<((b + 1) * per)]))
    }

    /// Stacks `[1, ...]` tensors into a batch.
    static func stack(_ parts: [Tensor]) throws -> Tensor {
        try Tensor(shape: Shape([parts.count] + parts[0].shape.dims.dropFirst()), scalars: parts.flatMap(\.scalars))
    }
}
