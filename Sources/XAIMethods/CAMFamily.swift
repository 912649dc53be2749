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
    /// Element weights `G` (Draelos & Carin): the gradient times the activation, summed over
    /// channels; for a head that is linear after the layer, exactly how much each position moved
    /// the logit.
    case hiResCAM = "hirescam"
    /// Element weights `G`, each product `A G` clipped at zero before the channels are summed
    /// (pytorch-grad-cam's GradCAMElementWise): HiResCAM without the positions where a channel
    /// argues against the class cancelling those where another argues for it.
    case gradCAMElementWise = "gradcamelementwise"
}

/// Gradient-weighted class activation maps at a layer (default: the last 4-D activation before
/// global pooling). One forward and one backward that stops at the layer: about one forward-
/// equivalent, not three as when weight gradients are computed too.
public struct GradientCAM: ModelMethod {
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

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - variant: the member of the family (default Grad-CAM).
    ///   - layer: a 4-D activation's name; `nil` for the last before global pooling.
    ///   - relu: keep only positive evidence.
    ///   - plusPlusScore: the score Grad-CAM++ differentiates.
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

    /// The layer explained: ``layer``, or the default.
    public func resolvedLayer() throws -> String { try model.camLayer(layer) }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let layer = try resolvedLayer()
        try model.validate(input)
        if variant == .gradCAMPlusPlus && plusPlusScore == .probability { return try plusPlusOnProbability(input, target: target, layer: layer) }
        if variant == .gradCAMPlusPlus { try requirePiecewiseLinearPath(from: layer) }
        let layout = try model.camLayout(layer)
        let r = try model.gradients(try be.upload(input), target: target, wrt: [layer], keep: [layer])
        guard let kept = r.kept[layer], let grad = r.grads[layer] else {
            throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "not an activation of \(model.graph.name)")
        }
        // Token and channels-last layers are weighed on their grid, as pytorch-grad-cam's reshape_transform.
        let cam = try weigh(try model.spatialView(kept, layout), try model.spatialView(grad, layout))
        return try model.camAttribution(cam, input: input.shape, logits: r.logits, targets: r.targets)
    }

    /// The CAM `[N, 1, h, w]` of activations `a` and their gradients `g` (`[N, C, h, w]`): the
    /// variant's weighting summed over channels, clipped at zero with ``relu``.
    func weigh(_ a: DeviceArray, _ g: DeviceArray) throws -> DeviceArray {
        let be = model.backend
        let weighted: DeviceArray
        switch variant {
        case .gradCAM:
            weighted = try be.binary(.mul, a, try be.reduce(.mean, g, axes: [2, 3]))
        case .xGradCAM:
            let num = try be.reduce(.sum, try be.binary(.mul, a, g), axes: [2, 3])
            let den = try be.adding(1e-7, to: try be.reduce(.sum, a, axes: [2, 3]))
            weighted = try be.binary(.mul, a, try be.binary(.div, num, den))
        case .layerCAM:
            weighted = try be.binary(.mul, a, try be.unary(.relu, g))
        case .gradCAMPlusPlus:
            let g2 = try be.binary(.mul, g, g), g3 = try be.binary(.mul, g2, g)
            let den = try be.adding(1e-6, to: try be.binary(.add, try be.scaled(g2, by: 2),
                                                              try be.binary(.mul, try be.reduce(.sum, a, axes: [2, 3]), g3)))
            let alpha = try be.binary(.div, g2, den)
            weighted = try be.binary(.mul, a, try be.reduce(.sum, try be.binary(.mul, alpha, try be.unary(.relu, g)), axes: [2, 3]))
        case .hiResCAM:
            weighted = try be.binary(.mul, a, g)
        case .gradCAMElementWise:
            weighted = try be.unary(.relu, try be.binary(.mul, a, g))
        }
        let cam = try be.reduce(.sum, weighted, axes: [1])
        return relu ? try be.unary(.relu, cam) : cam
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
        let logits = try be.download(try pass.output(model.outputName))
        try logits.requireFinite("logits of the input images")
        let targets = try model.resolve(target, logits: logits)
        let a = try be.download(try pass.kept(layer))
        let (n, k, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
        let classes = weight.shape[0], plane = h * w
        guard weight.shape[1] == k else {
            throw XAIError.shapeMismatch(op: "gradcampp", expected: "a classifier over the layer's \(k) channels", got: [weight.shape, a.shape])
        }
        var cam = [Float](repeating: 0, count: n * plane)
        for b in 0..<n {
            let p = ExplainedModel.probabilities(logits.scalars[(b * classes)..<((b + 1) * classes)])
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
        return try model.camAttribution(try be.upload(Tensor(unchecked: [n, 1, h, w], cam)), input: input.shape, logits: logits, targets: targets)
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
        if let node = model.firstNode(after: layer, where: { !$0.isPiecewiseLinear(inInputs: $1) }) {
            throw XAIError.unsupported(op: "gradcampp", reason: "node '\(node.name)' (\(node.op.name)) between '\(layer)' and the output is not piecewise linear, so the closed form Grad-CAM++ uses does not hold; use gradcam, layercam or xgradcam")
        }
    }
}

extension ExplainedModel {
    /// The first node between `layer` and the outputs for which `fails(op, dependent)` holds,
    /// `dependent` the indices of its inputs computed from the layer; `nil` when none does.
    func firstNode(after layer: String, where fails: (Op, Set<Int>) -> Bool) -> Node? {
        var reached: Set<String> = [layer]
        for node in graph.nodes where node.inputs.contains(where: reached.contains) {
            let dependent = Set(node.inputs.indices.filter { reached.contains(node.inputs[$0]) })
            if fails(node.op, dependent) { return node }
            node.outputs.forEach { reached.insert($0) }
        }
        return nil
    }

    /// A gradient CAM of a score of the logits other than the target's logit (Finer-CAM's,
    /// ShapleyCAM's): one forward kept for a backward to `layer`; `seed`, given the pass, returns
    /// the score's gradient over one image's logits (its index, its logits row and its target), in
    /// float64; one backward of those gradients; the activations weighed by `variant`.
    func camOfLogitScore(_ input: Tensor, target: Target, layer: String, variant: CAMVariant, relu: Bool,
                         seed: (Executor.Pass) throws -> (_ image: Int, _ logits: [Double], _ target: Int) throws -> [Double]) throws -> Attribution {
        let be = backend
        try validate(input)
        let layout = try camLayout(layer)
        let pass = try executor.forward(try be.upload(input), keep: [layer], forBackward: true, backwardTo: [layer])
        let logits = try be.download(try pass.output(outputName))
        try logits.requireFinite("logits of the input images")
        let targets = try resolve(target, logits: logits)
        let gradient = try seed(pass)
        let classes = logits.shape.count / max(targets.count, 1)
        var seeds = [Float](repeating: 0, count: logits.shape.count)
        for (b, c) in targets.enumerated() {
            let row = try gradient(b, logits.scalars[(b * classes)..<((b + 1) * classes)].map(Double.init), c)
            for (k, v) in row.enumerated() { seeds[b * classes + k] = Float(v) }
        }
        let grads = try executor.backward(pass, seeds: [outputName: try be.upload(Tensor(unchecked: logits.shape, seeds))], wrt: [layer])
        guard let grad = grads[layer] else {
            throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "not an activation of \(graph.name)")
        }
        let cam = try GradientCAM(model: self, variant: variant, layer: layer, relu: relu)
            .weigh(try spatialView(try pass.kept(layer), layout), try spatialView(grad, layout))
        return try camAttribution(cam, input: input.shape, logits: logits, targets: targets)
    }
}

/// ShapleyCAM (Cai, 2025, "CAMs as Shapley value-based explainers"), as pytorch-grad-cam's
/// `ShapleyCAM`: Grad-CAM whose channel weights are the spatial means of `G - H A / 2`, with `G`
/// the gradient of a score over the layer's activations `A` and `H A` the score's Hessian times
/// `A`: a second-order estimate of what each activation adds to the score, where Grad-CAM keeps
/// the first order only.
///
/// Along a piecewise-linear path from the layer to the logits (convolutions, rectifiers, residual
/// sums, average pooling, linear layers: the default layer of ResNets, VGG, DenseNet, MobileNetV2,
/// EfficientNet, RegNet, ShuffleNet and SqueezeNet, and most layers before it) the logits' second
/// derivatives vanish, so `H = J^T s'' J` and
/// `G - H A / 2 = J^T (s' - s'' J A / 2)`, with `J` the logits' Jacobian and `s'`, `s''` the
/// score's derivatives over the logits, in closed form. `J A` comes from one forward-mode product
/// along the path (``Executor/jacobianProduct(_:layer:direction:)``), and one backward carries the
/// rest: about Grad-CAM's cost plus the layers after the layer once more. The logit as the score
/// has no curvature there, and the map is Grad-CAM's (pytorch-grad-cam's Hessian-vector product
/// is zero too). A smooth op on the path (a LayerNorm head, a transformer block) or one selecting
/// by value (max pooling after the layer) is refused with the node named.
public struct ShapleyCAM: ModelMethod {
    public let name = "shapleycam"
    public let model: ExplainedModel
    /// The activation to explain; `nil` picks the CAM default.
    public var layer: String?
    /// The number the map explains.
    public var score: Score
    /// Clip the map at zero (as pytorch-grad-cam does).
    public var relu: Bool

    /// The score of the target class `c` over the logits `y`, with `p` their softmax.
    public enum Score: String, Sendable, CaseIterable {
        /// `y_c + log p_c = 2 y_c - logsumexp(y)`: the logit minus the cross-entropy, the paper's
        /// ReST (pytorch-grad-cam's `ClassifierOutputReST`).
        case rest
        /// `p_c` (pytorch-grad-cam's `ClassifierOutputSoftmaxTarget`).
        case probability
        /// `y_c` (pytorch-grad-cam's default `ClassifierOutputTarget`): Grad-CAM's map.
        case logit
    }

    public init(model: ExplainedModel, layer: String? = nil, score: Score = .rest, relu: Bool = true) {
        self.model = model
        self.layer = layer
        self.score = score
        self.relu = relu
    }

    /// Throws when the layer does not resolve, or when the Hessian cannot be had exactly: a node on
    /// the way to the logits that is not piecewise linear, or (for the scores with curvature) that
    /// selects by value.
    public func validate() throws {
        let layer = try model.camLayer(layer)
        if let node = model.firstNode(after: layer, where: { !$0.isPiecewiseLinear(inInputs: $1) }) {
            throw XAIError.unsupported(op: name, reason: "node '\(node.name)' (\(node.op.name)) between '\(layer)' and the output is not piecewise linear, so the score's Hessian there is not computed; use gradcam")
        }
        guard score != .logit else { return }
        if let node = model.firstNode(after: layer, where: { op, _ in Self.selectsByValue(op) }) {
            throw XAIError.unsupported(op: name, reason: "node '\(node.name)' (\(node.op.name)) between '\(layer)' and the output selects by value, which the Jacobian product does not take; pick a layer after it, --shapley-score logit (Grad-CAM's map), or gradcam")
        }
    }

    /// Max pooling and max or min reductions.
    static func selectsByValue(_ op: Op) -> Bool {
        switch op {
        case .pool(let p, _): return p.kind == .max
        case .reduce(let r, _, _): return r == .max || r == .min
        default: return false
        }
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try validate()
        let be = model.backend
        let layer = try model.camLayer(layer)
        return try model.camOfLogitScore(input, target: target, layer: layer, variant: .gradCAM, relu: relu) { pass in
            // J A, the logits' change along the activations (the logit's score has no use for it).
            var moved: [Float]?
            if score != .logit {
                guard let jA = try model.executor.jacobianProduct(pass, layer: layer, direction: try pass.kept(layer))[model.outputName] else {
                    throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "output '\(model.outputName)' does not follow from it")
                }
                moved = try be.download(jA).scalars
            }
            return { b, y, c in
                let u = moved.map { $0[(b * y.count)..<((b + 1) * y.count)].map(Double.init) } ?? [Double](repeating: 0, count: y.count)
                return Self.seed(logits: y, moved: u, target: c, score: score)
            }
        }
    }

    /// The gradient over the logits that one backward carries to `G - H A / 2`: `s' - s'' u / 2`,
    /// in float64, with `u` the logits' change `J A` (`moved`). With `p` the softmax of `y` and
    /// `m = sum_k p_k u_k`: ReST has `s'_k = 2 [k = c] - p_k` and `(s'' u)_k = -p_k (u_k - m)`; the
    /// probability `s'_k = p_c ([k = c] - p_k)` and
    /// `(s'' u)_k = p_c (([k = c] - p_k) (u_c - m) - p_k (u_k - m))`; the logit `s' = e_c`, `s'' = 0`.
    static func seed(logits y: [Double], moved u: [Double], target c: Int, score: Score) -> [Double] {
        let top = y.max() ?? 0
        let e = y.map { Foundation.exp($0 - top) }
        let total = e.reduce(0, +)
        let p = e.map { $0 / total }
        let m = zip(p, u).reduce(0) { $0 + $1.0 * $1.1 }
        return y.indices.map { k in
            let isTarget: Double = k == c ? 1 : 0
            switch score {
            case .logit:
                return isTarget
            case .rest:
                return (2 * isTarget - p[k]) + 0.5 * p[k] * (u[k] - m)
            case .probability:
                let gradient = p[c] * (isTarget - p[k])
                let curvature = p[c] * ((isTarget - p[k]) * (u[c] - m) - p[k] * (u[k] - m))
                return gradient - 0.5 * curvature
            }
        }
    }
}

/// Class activation mapping (Zhou et al.) for models whose head is global average pooling followed
/// by one linear layer: the class's weights of that layer applied to the pooled activation.
public struct CAM: ModelMethod {
    public let name = "cam"
    public let model: ExplainedModel
    public var relu: Bool

    /// - Parameters:
    ///   - model: a model whose head is global average pooling + one linear layer.
    ///   - relu: keep only positive evidence.
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
            guard case .globalAveragePool = n.op, let pooled = n.inputs.first, var value = n.outputs.first else { continue }
            // Skip reshapes between the pooling and the linear layer.
            while let next = consumers[value]?.first, next.op.isView, let out = next.outputs.first { value = out }
            if let fc = consumers[value]?.first, case .gemm(false, let tb, _, _, .identity) = fc.op, fc.outputs.first == model.outputName,
               fc.inputs.count > 1, let w = g.initializers[fc.inputs[1]], w.shape.rank == 2 {
                return (pooled, tb ? w : try w.permuted([1, 0]))
            }
        }
        throw XAIError.unsupported(op: "CAM", reason: "\(g.name) does not end in global average pooling + one linear layer; use gradcam")
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let (layer, weight) = try head()
        try model.validate(input)
        let pass = try model.executor.forward(try be.upload(input), keep: [layer])
        let logits = try be.download(try pass.output(model.outputName))
        let targets = try model.resolve(target, logits: logits)
        let a = try pass.kept(layer)
        let k = weight.shape[1]
        guard a.shape.rank == 4, a.shape[1] == k else {
            throw XAIError.shapeMismatch(op: "CAM", expected: "a 4-D layer of the classifier's \(k) channels", got: [a.shape, weight.shape])
        }
        let rows = targets.flatMap { weight.scalars[($0 * k)..<(($0 + 1) * k)] }
        let w = try be.upload(Tensor(unchecked: [targets.count, k, 1, 1], Array(rows)))
        var cam = try be.reduce(.sum, try be.binary(.mul, a, w), axes: [1])
        if relu { cam = try be.unary(.relu, cam) }
        return try model.camAttribution(cam, input: input.shape, logits: logits, targets: targets)
    }
}

/// Score-CAM (Wang et al.): each channel of the layer, upsampled to the input and scaled to
/// [0, 1], masks the input; the channel's weight is the softmax over channels of the masked inputs'
/// target logits. One forward per channel, run as batches sized from the memory budget; each batch
/// upsamples and scales only its own channels, on the device, and the target logits and their
/// softmax stay there.
public struct ScoreCAM: ModelMethod {
    public let name = "scorecam"
    public let model: ExplainedModel
    public var layer: String?
    /// Masked copies per forward batch; default from the backend's memory budget.
    public var internalBatchSize: Int?
    /// Called after each batch with (channels done, channels in all) for the current image.
    public var progress: PerturbationProgress?

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - layer: a CAM layer's name; `nil` for the default.
    ///   - internalBatchSize: masked copies per forward batch (default: from the memory budget).
    ///   - progress: called after each batch with (channels done, channels in all); throwing stops the method.
    public init(model: ExplainedModel, layer: String? = nil, internalBatchSize: Int? = nil, progress: PerturbationProgress? = nil) {
        self.model = model
        self.layer = layer
        self.internalBatchSize = internalBatchSize
        self.progress = progress
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let layer = try model.camLayer(self.layer)
        try model.validate(input)
        let pass = try model.executor.forward(try be.upload(input), keep: [layer])
        let logits = try be.download(try pass.output(model.outputName))
        let targets = try model.resolve(target, logits: logits)
        let acts = try model.spatialView(try pass.kept(layer), try model.camLayout(layer))
        let (n, k, h, w) = (acts.shape[0], acts.shape[1], acts.shape[2], acts.shape[3])
        let (c, height, width) = (input.shape[1], input.shape[2], input.shape[3])
        let perCopy = try model.bytesPerImageForBackward() / 2 + c * height * width * 4
        let chunk = try model.batchSize(requested: internalBatchSize, bytesPerItem: perCopy, cap: k, parameter: "batch")
        let classes = logits.shape[1]
        var cams: [DeviceArray] = []
        for b in 0..<n {
            let x = try be.upload(try ExplainedModel.image(input, b))
            // Each masked copy's target logit stays on the device, where the channels' softmax
            // weighs them: nothing comes back per batch (before: every copy's logits row).
            var columns: [DeviceArray] = []
            var start = 0
            while start < k {
                let count = min(chunk, k - start)
                // This batch's channels as masks: upsampled (align_corners, as pytorch-grad-cam) and min-max scaled.
                let a = try be.slice(acts, starts: [b, start, 0, 0], sizes: [1, count, h, w])
                let up = try be.resizeBilinear(a, height: height, width: width, alignCorners: true).reshaped([count, 1, height, width])
                let hi = try be.reduce(.max, up, axes: [2, 3]), lo = try be.reduce(.min, up, axes: [2, 3])
                let span = try be.adding(1e-8, to: try be.binary(.sub, hi, lo))
                let masks = try be.binary(.div, try be.binary(.sub, up, lo), span)
                let out = try model.outputs(try be.binary(.mul, x, masks)).reshaped([count, classes])
                columns.append(try be.slice(out, starts: [0, targets[b]], sizes: [count, 1]))
                start += count
                try model.report(progress, start, of: k)
            }
            let scores = try be.concat(columns, axis: 0).reshaped([1, k])
            let a = try be.slice(acts, starts: [b, 0, 0, 0], sizes: [1, k, h, w])
            let wk = try be.softmax(scores, axis: 1, log: false).reshaped([1, k, 1, 1])
            cams.append(try be.unary(.relu, try be.reduce(.sum, try be.binary(.mul, a, wk), axes: [1])))
        }
        return try model.camAttribution(try be.concat(cams, axis: 0), input: input.shape, logits: logits, targets: targets)
    }
}

/// Finer-CAM (Zhang et al., CVPR 2025), as pytorch-grad-cam's `FinerCAM`: a gradient CAM (Grad-CAM
/// by default) of a score that weighs the target against the classes the model finds most like
/// it, so that what the classes share cancels and what tells the target apart stays. With `y` the
/// logits, `c` the target and `J` the classes at places `comparisons` (1, 2, 3) when the classes
/// are sorted by `|y_j - y_c|` (place 0 is `c` itself), the score is
/// `sum_J p_j (y_c - alpha y_j) / (sum_J p_j + 1e-9)`, `p` the softmax (its gradient taken too, as
/// pytorch-grad-cam's is). `alpha` 0 gives the base CAM of `y_c`.
public struct FinerCAM: ModelMethod {
    public let name = "finercam"
    public let model: ExplainedModel
    /// The CAM the comparison score is explained with (pytorch-grad-cam's `base_method`).
    public var base: CAMVariant
    /// The activation to explain; `nil` picks the CAM default.
    public var layer: String?
    /// How strongly the similar classes are subtracted.
    public var alpha: Double
    /// The places of the compared classes among the classes sorted by closeness to the target's logit.
    public var comparisons: [Int]
    /// Clip the map at zero (as pytorch-grad-cam does).
    public var relu: Bool

    /// pytorch-grad-cam's places: the three classes closest to the target.
    public static let defaultComparisons = [1, 2, 3]

    public init(model: ExplainedModel, base: CAMVariant = .gradCAM, layer: String? = nil, alpha: Double = 1, comparisons: [Int] = FinerCAM.defaultComparisons,
                relu: Bool = true) {
        self.model = model
        self.base = base
        self.layer = layer
        self.alpha = alpha
        self.comparisons = comparisons
        self.relu = relu
    }

    public func validate() throws {
        guard alpha.isFinite else { throw XAIError.invalidArgument(parameter: "finerAlpha", value: "\(alpha)", reason: "must be a finite number") }
        guard !comparisons.isEmpty, comparisons.allSatisfy({ $0 >= 1 }), Set(comparisons).count == comparisons.count else {
            throw XAIError.invalidArgument(parameter: "comparisons", value: comparisons.map(String.init).joined(separator: ","),
                                           reason: "must be distinct places of 1 or more (place 0 is the target itself)")
        }
        guard base != .gradCAMPlusPlus else {
            throw XAIError.unsupported(op: name, reason: "Grad-CAM++'s closed form differentiates exp(logit), not a comparison of classes; use gradcam, xgradcam, layercam, hirescam or gradcamelementwise")
        }
        _ = try model.camLayer(layer)
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try validate()
        return try model.camOfLogitScore(input, target: target, layer: try model.camLayer(layer), variant: base, relu: relu) { _ in
            { _, y, c in Self.scoreGradient(y, target: c, compared: Self.compared(y, target: c, places: comparisons), alpha: alpha) }
        }
    }

    /// The classes at `places` when every class is sorted by `|y_j - y_c|` (ties by class index;
    /// place 0 is the target), the places beyond the class count dropped.
    static func compared(_ y: [Double], target c: Int, places: [Int]) -> [Int] {
        let order = y.indices.sorted { a, b in
            let (da, db) = (abs(y[a] - y[c]), abs(y[b] - y[c]))
            return da != db ? da < db : (a == c) != (b == c) ? a == c : a < b
        }
        return places.filter { $0 < order.count }.map { order[$0] }
    }

    /// The gradient over the logits `y` of `S = sum_J p_j (y_c - alpha y_j) / (sum_J p_j + 1e-9)`,
    /// `p = softmax(y)`, in float64: with `N` and `D` the numerator and denominator,
    /// `dp_j/dy_k = p_j (1[j = k] - p_k)`, `dN/dy_k = sum_J dp_j/dy_k (y_c - alpha y_j) + 1[k = c] sum_J p_j - alpha p_k 1[k in J]`
    /// and `dD/dy_k = sum_J dp_j/dy_k`; `dS/dy_k = (dN D - N dD) / D^2`.
    static func scoreGradient(_ y: [Double], target c: Int, compared: [Int], alpha: Double) -> [Double] {
        let p = ExplainedModel.probabilities(y.map(Float.init))
        let n = compared.reduce(0.0) { $0 + p[$1] * (y[c] - alpha * y[$1]) }
        let d = compared.reduce(0.0) { $0 + p[$1] } + 1e-9
        return y.indices.map { k in
            var dn = 0.0, dd = 0.0
            for j in compared {
                let dp = p[j] * ((j == k ? 1 : 0) - p[k])
                dn += dp * (y[c] - alpha * y[j]) - (j == k ? alpha * p[j] : 0)
                dd += dp
            }
            if k == c { dn += compared.reduce(0.0) { $0 + p[$1] } }
            return (dn * d - n * dd) / (d * d)
        }
    }
}
