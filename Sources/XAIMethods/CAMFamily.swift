import Foundation
import XAICore
import XAIGraph

/// The members of the gradient-weighted CAM template: each differs only in how it weighs the
/// layer's activations `A` with the gradients `G` of the target logit.
public enum CAMVariant: String, Sendable, CaseIterable {
    /// Channel weights `mean_ij G` (Selvaraju et al.).
    case gradCAM = "gradcam"
    /// Channel weights `sum_ij A G / sum_ij A` (Fu et al.).
    case xGradCAM = "xgradcam"
    /// Element weights `relu(G)` (Jiang et al.).
    case layerCAM = "layercam"
    /// Channel weights `sum_ij a_ij relu(G)`, `a = G^2 / (2 G^2 + sum_ij A * G^3)` (Chattopadhyay
    /// et al.): the closed form for the score `exp(S)` when the path from the layer to the logit
    /// `S` is piecewise linear, where it is exact (the second and third derivatives of `S` vanish).
    /// A path with a smooth op (sigmoid, SiLU, a product of activations, ...) is refused with the
    /// node named rather than answered wrongly.
    case gradCAMPlusPlus = "gradcampp"
}

/// Gradient-weighted class activation maps at a layer (default: the last 4-D activation before
/// global pooling). One forward and one backward that stops at the layer: about one forward-
/// equivalent, not three as when weight gradients are computed too.
public struct GradientCAM: AttributionMethod {
    public var name: String { variant.rawValue }
    public let model: ExplainedModel
    public var variant: CAMVariant
    /// The activation to explain; `nil` picks the default.
    public var layer: String?
    /// Keep only positive evidence (as pytorch-grad-cam does; Captum's LayerGradCam defaults to false).
    public var relu: Bool
    /// The score Grad-CAM++ differentiates (the other variants use the logit).
    public var plusPlusScore: PlusPlusScore

    /// The output whose second and third derivatives Grad-CAM++ weighs channels with.
    public enum PlusPlusScore: String, Sendable, CaseIterable {
        /// `exp(logit)`: the higher derivatives are powers of the gradient (the paper's closed form and
        /// pytorch-grad-cam's), exact when the path from the layer to the logit is piecewise linear.
        case exponential
        /// The softmax probability the model outputs: its second and third derivatives are computed
        /// exactly from the Jacobian of every logit, which for a global-average-pooling + linear head
        /// is the classifier's weights; other heads are refused.
        case probability
    }

    public init(model: ExplainedModel, variant: CAMVariant = .gradCAM, layer: String? = nil, relu: Bool = true,
                plusPlusScore: PlusPlusScore = .exponential) {
        self.model = model
        self.variant = variant
        self.layer = layer
        self.relu = relu
        self.plusPlusScore = plusPlusScore
    }

    /// Throws when the method cannot explain this model (no 4-D layer; Grad-CAM++ on a smooth path).
    public func validate() throws {
        let layer = try resolvedLayer()
        if variant == .gradCAMPlusPlus { try requirePiecewiseLinearPath(from: layer) }
        if variant == .gradCAMPlusPlus && plusPlusScore == .probability { _ = try probabilityHead(layer) }
    }

    public func resolvedLayer() throws -> String {
        if let layer { return layer }
        guard let l = try model.summary().defaultCAMLayer else {
            throw XAIError.invalidArgument(op: "--layer", message: "\(model.graph.name) has no 4-D activation; name a layer with --layer")
        }
        return l
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let layer = try resolvedLayer()
        if variant == .gradCAMPlusPlus && plusPlusScore == .probability { return try plusPlusOnProbability(input, target: target, layer: layer) }
        let r = try model.gradients(try be.upload(input), target: target, wrt: [layer], keep: [layer])
        guard let a = r.kept[layer], let g = r.grads[layer], a.shape.rank == 4 else {
            throw XAIError.invalidArgument(op: "--layer", message: "'\(layer)' is not a 4-D activation of \(model.graph.name)")
        }
        let weighted: DeviceArray
        switch variant {
        case .gradCAM:
            weighted = try be.binary(.mul, a, try be.reduce(.mean, g, axes: [2, 3]))
        case .xGradCAM:
            let num = try be.reduce(.sum, try be.binary(.mul, a, g), axes: [2, 3])
            let den = try be.binary(.add, try be.reduce(.sum, a, axes: [2, 3]), try be.filled([1], value: 1e-7))
            weighted = try be.binary(.mul, a, try be.binary(.div, num, den))
        case .layerCAM:
            weighted = try be.binary(.mul, a, try be.unary(.relu, g))
        case .gradCAMPlusPlus:
            try requirePiecewiseLinearPath(from: layer)
            let g2 = try be.binary(.mul, g, g), g3 = try be.binary(.mul, try be.binary(.mul, g, g), g)
            let den = try be.binary(.add, try be.binary(.add, try be.binary(.mul, try be.filled([1], value: 2), g2),
                                                       try be.binary(.mul, try be.reduce(.sum, a, axes: [2, 3]), g3)),
                                    try be.filled([1], value: 1e-6))
            let alpha = try be.binary(.div, g2, den)
            weighted = try be.binary(.mul, a, try be.reduce(.sum, try be.binary(.mul, alpha, try be.unary(.relu, g)), axes: [2, 3]))
        }
        var cam = try be.reduce(.sum, weighted, axes: [1])
        if relu { cam = try be.unary(.relu, cam) }
        return try finish(cam, input.shape, r.logits, r.targets)
    }

    /// Grad-CAM++ on the softmax probability `p_c` of a global-average-pooling + linear head. Each
    /// activation `a` of channel `k` moves every logit by `u_j = W[j, k] / (h w)`; with
    /// `d_j = u_j - sum_i p_i u_i`, `v = sum_j p_j d_j^2` and `k3 = sum_j p_j d_j^3`, the first three
    /// derivatives of `p_c` are `p_c d_c`, `p_c (d_c^2 - v)` and `p_c (d_c^3 - 3 d_c v - k3)`; then
    /// `alpha = D2 / (2 D2 + sum_ab A_ab D3)` and `w_k = sum_ij alpha relu(D1)`.
    func plusPlusOnProbability(_ input: Tensor, target: Target, layer: String) throws -> Attribution {
        let be = model.backend
        let weight = try probabilityHead(layer)
        let pass = try model.executor.forward(try be.upload(input), keep: [layer])
        let logits = try be.download(pass.outputs[model.outputName]!)
        let targets = try model.resolve(target, logits: logits)
        let a = try be.download(pass.kept[layer]!)
        let (n, k, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
        let classes = weight.shape[0], plane = h * w
        var cam = [Float](repeating: 0, count: n * plane)
        for b in 0..<n {
            let row = (0..<classes).map { Double(logits.scalars[b * classes + $0]) }
            let top = row.max()!
            let e = row.map { Foundation.exp($0 - top) }
            let total = e.reduce(0, +)
            let p = e.map { $0 / total }
            let c = targets[b]
            for ch in 0..<k {
                let u = (0..<classes).map { Double(weight.scalars[$0 * k + ch]) / Double(plane) }
                let mean = zip(p, u).reduce(0) { $0 + $1.0 * $1.1 }
                var v = 0.0, k3 = 0.0
                for j in 0..<classes {
                    let d = u[j] - mean
                    v += p[j] * d * d
                    k3 += p[j] * d * d * d
                }
                let dc = u[c] - mean
                let (d1, d2, d3) = (p[c] * dc, p[c] * (dc * dc - v), p[c] * (dc * dc * dc - 3 * dc * v - k3))
                let base = (b * k + ch) * plane
                let sum = a.scalars[base..<(base + plane)].reduce(0.0) { $0 + Double($1) }
                let den = 2 * d2 + sum * d3
                let alpha = den != 0 ? d2 / den : 0
                let weightK = alpha * max(d1, 0) * Double(plane)
                for q in 0..<plane { cam[b * plane + q] += Float(weightK * Double(a.scalars[base + q])) }
            }
        }
        if relu { cam = cam.map { max($0, 0) } }
        return try finish(try be.upload(Tensor(unchecked: [n, 1, h, w], cam)), input.shape, logits, targets)
    }

    /// The classifier weight `[classes, K]` when `layer` feeds a global-average-pooling + linear head.
    func probabilityHead(_ layer: String) throws -> Tensor {
        let (headLayer, weight) = try CAM(model: model).head()
        guard headLayer == layer else {
            throw XAIError.unsupported(op: "gradcampp", reason: "the probability form needs the layer feeding global pooling ('\(headLayer)'), not '\(layer)'")
        }
        return weight
    }

    /// Throws unless every node between `layer` and the output is piecewise linear in the layer.
    func requirePiecewiseLinearPath(from layer: String) throws {
        let g = model.graph
        var reached: Set<String> = [layer]
        for node in g.nodes where node.inputs.contains(where: reached.contains) {
            let dependent = node.inputs.filter(reached.contains).count
            let linear: Bool
            switch node.op {
            case .conv(_, let act, _), .gemm(_, _, _, _, let act): linear = act.isPiecewiseLinear
            case .unary(let u): linear = u.isPiecewiseLinear
            case .binary(.add), .binary(.sub): linear = true
            // A product is linear in the layer only when one factor does not depend on it; a
            // quotient only when the divisor does not.
            case .binary(.mul), .matMul: linear = dependent < 2
            case .binary(.div): linear = !reached.contains(node.inputs[1])
            case .softmax: linear = false
            default: linear = true
            }
            guard linear else {
                throw XAIError.unsupported(op: "gradcampp", reason: "node '\(node.name)' (\(node.op.name)) between '\(layer)' and the output is not piecewise linear, so the closed form Grad-CAM++ uses does not hold; use gradcam, layercam or xgradcam")
            }
            node.outputs.forEach { reached.insert($0) }
        }
    }

    /// Upsamples `[N, 1, h, w]` to the input size (bilinear, half-pixel centres).
    func finish(_ cam: DeviceArray, _ input: Shape, _ logits: Tensor, _ targets: [Int]) throws -> Attribution {
        let be = model.backend
        let up = try be.resizeBilinear(cam, height: input[2], width: input[3], alignCorners: false)
        let raw = try be.download(cam)
        return Attribution(map: try be.download(up).reshaped([input[0], input[2], input[3]]),
                           raw: try raw.reshaped([raw.shape[0], raw.shape[2], raw.shape[3]]),
                           targets: targets, scores: scores(logits, targets))
    }
}

/// Class activation mapping (Zhou et al.) for models whose head is global average pooling followed
/// by one linear layer: the class's weights of that layer applied to the pooled activation.
public struct CAM: AttributionMethod {
    public let name = "cam"
    public let model: ExplainedModel
    public var relu: Bool

    public init(model: ExplainedModel, relu: Bool = true) {
        self.model = model
        self.relu = relu
    }

    /// Whether the model's head is global average pooling + one linear layer, as CAM needs.
    public var applies: Bool { (try? head()) != nil }

    /// The activation feeding global pooling and the classifier's weight `[classes, K]`.
    func head() throws -> (layer: String, weight: Tensor) {
        let g = model.graph
        let consumers = Dictionary(grouping: g.nodes, by: { $0.inputs.first ?? "" })
        for n in g.nodes {
            guard case .globalAveragePool = n.op else { continue }
            var value = n.outputs[0]
            // Skip reshapes between the pooling and the linear layer.
            while let next = consumers[value]?.first, next.op.isReshape { value = next.outputs[0] }
            if let fc = consumers[value]?.first, case .gemm(false, let tb, _, _, .identity) = fc.op, fc.outputs[0] == model.outputName,
               let w = g.initializers[fc.inputs[1]] {
                return (n.inputs[0], tb ? w : try w.permuted([1, 0]))
            }
        }
        throw XAIError.unsupported(op: "CAM", reason: "\(g.name) does not end in global average pooling + one linear layer; use gradcam")
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let (layer, weight) = try head()
        let pass = try model.executor.forward(try be.upload(input), keep: [layer])
        let logits = try be.download(pass.outputs[model.outputName]!)
        let targets = try model.resolve(target, logits: logits)
        let a = pass.kept[layer]!
        let k = weight.shape[1]
        guard a.shape[1] == k else { throw XAIError.shapeMismatch(op: "CAM", message: "layer \(a.shape) for classifier \(weight.shape)") }
        let rows = targets.flatMap { weight.scalars[($0 * k)..<(($0 + 1) * k)] }
        let w = try be.upload(try Tensor(shape: [targets.count, k, 1, 1], scalars: Array(rows)))
        var cam = try be.reduce(.sum, try be.binary(.mul, a, w), axes: [1])
        if relu { cam = try be.unary(.relu, cam) }
        return try GradientCAM(model: model).finish(cam, input.shape, logits, targets)
    }
}

extension UnaryOp {
    /// Ops whose second derivative vanishes almost everywhere.
    var isPiecewiseLinear: Bool {
        switch self {
        case .identity, .relu, .clip, .leakyRelu, .hardSigmoid: return true
        case .sigmoid, .tanh, .silu, .hardSwish: return false
        }
    }
}

extension Op {
    var isReshape: Bool {
        switch self {
        case .flatten, .reshape, .squeeze, .identity: return true
        default: return false
        }
    }
}

/// Score-CAM (Wang et al.): each channel of the layer, upsampled to the input and scaled to
/// [0, 1], masks the input; the channel's weight is the softmax over channels of the masked inputs'
/// target logits. One forward per channel, run as batches sized from the memory budget (the
/// masked copies are built on the device).
public struct ScoreCAM: AttributionMethod, ModelBacked {
    public let name = "scorecam"
    public let model: ExplainedModel
    public var layer: String?
    /// Masked copies per forward batch; default from the backend's memory budget.
    public var internalBatchSize: Int?

    public init(model: ExplainedModel, layer: String? = nil, internalBatchSize: Int? = nil) {
        self.model = model
        self.layer = layer
        self.internalBatchSize = internalBatchSize
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let layer = try GradientCAM(model: model, layer: self.layer).resolvedLayer()
        let pass = try model.executor.forward(try be.upload(input), keep: [layer])
        let logits = try be.download(pass.outputs[model.outputName]!)
        let targets = try model.resolve(target, logits: logits)
        let acts = pass.kept[layer]!
        guard acts.shape.rank == 4 else { throw XAIError.invalidArgument(op: "--layer", message: "'\(layer)' is not a 4-D activation") }
        let (n, k, h, w) = (acts.shape[0], acts.shape[1], acts.shape[2], acts.shape[3])
        let (c, height, width) = (input.shape[1], input.shape[2], input.shape[3])
        let perCopy = try model.bytesPerImageForBackward() / 2 + c * height * width * 4
        let chunk = max(1, min(k, internalBatchSize ?? model.backend.memoryBudget / 4 / max(perCopy, 1)))
        let classes = logits.shape[1]
        var cams: [DeviceArray] = []
        for b in 0..<n {
            let a = try be.slice(acts, starts: [b, 0, 0, 0], sizes: [1, k, h, w])
            // Channels as masks: upsampled (align_corners, as pytorch-grad-cam) and min-max scaled.
            let up = try be.resizeBilinear(a, height: height, width: width, alignCorners: true).reshaped([k, 1, height, width])
            let hi = try be.reduce(.max, up, axes: [2, 3])
            let lo = try be.binary(.mul, try be.reduce(.max, try be.binary(.mul, up, try be.filled([1], value: -1)), axes: [2, 3]), try be.filled([1], value: -1))
            let span = try be.binary(.add, try be.binary(.sub, hi, lo), try be.filled([1], value: 1e-8))
            let masks = try be.binary(.div, try be.binary(.sub, up, lo), span)
            let x = try be.upload(try ExplainedModel.image(input, b))
            var scores: [Double] = []
            var start = 0
            while start < k {
                let count = min(chunk, k - start)
                let m = try be.slice(masks, starts: [start, 0, 0, 0], sizes: [count, 1, height, width])
                let out = try model.logits(try be.binary(.mul, x, m))
                scores += (0..<count).map { Double(out.scalars[$0 * classes + targets[b]]) }
                start += count
            }
            let top = scores.max() ?? 0
            let e = scores.map { Foundation.exp($0 - top) }
            let total = e.reduce(0, +)
            let weights = try be.upload(try Tensor(shape: [1, k, 1, 1], scalars: e.map { Float($0 / total) }))
            cams.append(try be.unary(.relu, try be.reduce(.sum, try be.binary(.mul, a, weights), axes: [1])))
        }
        let cam = try be.concat(cams, axis: 0)
        return try GradientCAM(model: model).finish(cam, input.shape, logits, targets)
    }
}
