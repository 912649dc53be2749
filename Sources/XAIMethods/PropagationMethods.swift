import CBLAS
import Foundation
import XAICore
import XAIGraph

/// Guided backpropagation and deconvolution: one forward and one backward to the input in which
/// every rectifier carries back only positive signal (``ReLURule``); the other ops take their
/// gradient. The map is max |a| over channels, as saliency's.
public struct ModifiedBackprop: ModelMethod {
    public enum Kind: String, Sendable, CaseIterable {
        /// Springenberg et al.: `relu(g) * (x > 0)` at each rectifier (Captum's GuidedBackprop).
        case guided = "guidedbackprop"
        /// Zeiler & Fergus: `relu(g)` at each rectifier (Captum's Deconvolution).
        case deconvolution

        var rules: PropagationRules { PropagationRules(relu: self == .guided ? .guided : .deconvolution) }
    }

    public var name: String { kind.rawValue }
    public let model: ExplainedModel
    public var kind: Kind

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - kind: guided backpropagation or deconvolution.
    public init(model: ExplainedModel, kind: Kind) {
        self.model = model
        self.kind = kind
    }

    /// Throws when the model has no `Relu` for the rule to change: its backward would be the plain
    /// gradient, which `saliency` already gives.
    public func validate() throws {
        let hasReLU = model.graph.nodes.contains { node in
            switch node.op {
            case .unary(.relu), .conv(_, activation: .relu, _), .gemm(_, _, _, _, activation: .relu): return true
            default: return false
            }
        }
        guard hasReLU else {
            throw XAIError.unsupported(op: name, reason: "\(model.graph.name) has no Relu for the rule to change (its backward would be the gradient: use saliency)")
        }
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try validate()
        try model.validate(input)
        let r = try model.gradients(try model.backend.upload(input), target: target, wrt: [model.inputName], rules: kind.rules)
        let raw = try model.backend.download(try model.inputGradient(r.grads))
        return Attribution(map: reduceChannels(raw, .maxAbsolute), raw: raw, targets: r.targets, scores: ExplainedModel.scores(r.logits, r.targets))
    }
}

/// Guided Grad-CAM (Selvaraju et al.; Captum's GuidedGradCam): guided backpropagation's input
/// attribution times the layer's Grad-CAM (clipped at zero) upsampled to the input by nearest
/// neighbour. One forward, whose pass serves the plain backward to the layer and the guided
/// backward to the input.
public struct GuidedGradCAM: ModelMethod {
    public let name = "guidedgradcam"
    public let model: ExplainedModel
    /// The activation whose Grad-CAM weighs the guided attribution; `nil` picks the CAM default.
    public var layer: String?

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - layer: a 4-D activation's name; `nil` for the last before global pooling.
    public init(model: ExplainedModel, layer: String? = nil) {
        self.model = model
        self.layer = layer
    }

    /// Throws when the model has no layer to take the CAM at, or no `Relu` for the guided rule.
    public func validate() throws {
        _ = try model.camLayer(layer)
        try ModifiedBackprop(model: model, kind: .guided).validate()
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try validate()
        try model.validate(input)
        let be = model.backend
        let layer = try model.camLayer(layer)
        let layout = try model.camLayout(layer)
        let r = try model.backwards(try be.upload(input), target: target, keep: [layer],
                                    [([layer], .gradient), ([model.inputName], ModifiedBackprop.Kind.guided.rules)])
        guard let kept = r.kept[layer], let grad = r.grads[0][layer] else {
            throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "not an activation of \(model.graph.name)")
        }
        let camMethod = GradientCAM(model: model, variant: .gradCAM, layer: layer, relu: true)
        let cam = try be.download(try camMethod.weigh(try model.spatialView(kept, layout), try model.spatialView(grad, layout)))
        let guided = try be.download(try model.inputGradient(r.grads[1]))
        let (n, c, h, w) = (guided.shape[0], guided.shape[1], guided.shape[2], guided.shape[3])
        let up = nearestUpsample(cam, height: h, width: w)
        var raw = guided.scalars
        for b in 0..<n {
            for ch in 0..<c {
                for p in 0..<(h * w) { raw[(b * c + ch) * h * w + p] *= up[b * h * w + p] }
            }
        }
        let rawTensor = Tensor(unchecked: guided.shape, raw)
        return Attribution(map: reduceChannels(rawTensor, .maxAbsolute), raw: rawTensor, targets: r.targets,
                           scores: ExplainedModel.scores(r.logits, r.targets))
    }
}

/// `[N, 1, h, w]` maps resized to `height x width` by nearest neighbour, as PyTorch's `nearest`
/// mode picks its source: `floor(i * (in / out))` in float32.
func nearestUpsample(_ cam: Tensor, height: Int, width: Int) -> [Float] {
    let (n, h, w) = (cam.shape[0], cam.shape[cam.shape.rank - 2], cam.shape[cam.shape.rank - 1])
    let sy = Float(h) / Float(height), sx = Float(w) / Float(width)
    let rows = (0..<height).map { min(Int((Float($0) * sy).rounded(.down)), h - 1) }
    let columns = (0..<width).map { min(Int((Float($0) * sx).rounded(.down)), w - 1) }
    var out = [Float](repeating: 0, count: n * height * width)
    for b in 0..<n {
        for y in 0..<height {
            for x in 0..<width { out[(b * height + y) * width + x] = cam.scalars[(b * h + rows[y]) * w + columns[x]] }
        }
    }
    return out
}

/// EigenCAM (Muhammad & Yeasin) and EigenGradCAM: the layer's activations (for EigenGradCAM,
/// activations times gradients), each position a row of channels, centred per channel and
/// projected on their first principal direction, as pytorch-grad-cam's `get_2d_projection`. The
/// direction's sign is arbitrary in an SVD (pytorch-grad-cam leaves it to LAPACK); it is fixed here
/// so that the projection's largest magnitude is positive, as Seg-Eigen-CAM's Eq. 13 (and
/// pytorch-grad-cam's `get_2d_projection_with_sign_correction`) fix it.
public struct EigenCAM: ModelMethod {
    public var name: String { usesGradients ? "eigengradcam" : "eigencam" }
    public let model: ExplainedModel
    /// Project activations times gradients (EigenGradCAM) rather than activations (EigenCAM).
    public var usesGradients: Bool
    /// The activation to explain; `nil` picks the CAM default.
    public var layer: String?
    /// Clip the projection at zero (as pytorch-grad-cam does).
    public var relu: Bool

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - usesGradients: EigenGradCAM (activations x gradients) instead of EigenCAM.
    ///   - layer: a 4-D activation's name; `nil` for the default.
    ///   - relu: clip the map at zero.
    public init(model: ExplainedModel, usesGradients: Bool = false, layer: String? = nil, relu: Bool = true) {
        self.model = model
        self.usesGradients = usesGradients
        self.layer = layer
        self.relu = relu
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let layer = try model.camLayer(layer)
        try model.validate(input)
        let layout = try model.camLayout(layer)
        let f: Tensor, logits: Tensor, targets: [Int]
        if usesGradients {
            let r = try model.gradients(try be.upload(input), target: target, wrt: [layer], keep: [layer])
            guard let kept = r.kept[layer], let grad = r.grads[layer] else {
                throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "not an activation of \(model.graph.name)")
            }
            f = try be.download(try be.binary(.mul, try model.spatialView(grad, layout), try model.spatialView(kept, layout)))
            (logits, targets) = (r.logits, r.targets)
        } else {
            (f, logits, targets) = try model.camActivations(input, target: target, layer: layer)
        }
        return try model.projectedCAM(f, input: input.shape, logits: logits, targets: targets, relu: relu) { values, c, positions in
            try firstPrincipalProjection(Array(values), channels: c, positions: positions)
        }
    }
}

/// The projection of `positions` rows of `channels` values (given channel-major, `[C, P]`), centred
/// per channel, on their first principal direction, in float64: `X v` for the top right singular
/// vector `v` of the centred `X` (`[P, C]`), found as the top eigenvector of the smaller Gram
/// matrix (`X X^T` gives `X v = sigma u`), by LAPACK's `dsyevr`. Its sign is chosen so that the
/// entry of largest magnitude is positive. Non-finite values count as zero, as pytorch-grad-cam's.
func firstPrincipalProjection(_ values: [Float], channels c: Int, positions p: Int) throws -> [Double] {
    var x = [Double](repeating: 0, count: p * c)  // [P, C], centred
    for ch in 0..<c {
        var mean = 0.0
        for i in 0..<p { let v = Double(values[ch * p + i]); mean += v.isFinite ? v : 0 }
        mean /= Double(max(p, 1))
        for i in 0..<p { let v = Double(values[ch * p + i]); x[i * c + ch] = (v.isFinite ? v : 0) - mean }
    }
    let byPositions = p <= c
    let size = byPositions ? p : c
    // The Gram matrix of the smaller side (row-major and symmetric, so LAPACK's column order reads it alike).
    var gram = [Double](repeating: 0, count: size * size)
    x.withUnsafeBufferPointer { xp in
        gram.withUnsafeMutableBufferPointer { gp in
            if byPositions {
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(p), Int32(c), 1, xp.baseAddress, Int32(c), 0, gp.baseAddress, Int32(p))
            } else {
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(c), Int32(p), 1, xp.baseAddress, Int32(c), 0, gp.baseAddress, Int32(c))
            }
        }
    }
    let vector = try topEigenvector(&gram, size: size)
    var projection = [Double](repeating: 0, count: p)
    if byPositions {
        // X v = X X^T u / sigma = sigma u: the eigenvector scaled by the square root of its eigenvalue.
        let sigma = vector.value > 0 ? vector.value.squareRoot() : 0
        for i in 0..<p { projection[i] = sigma * vector.vector[i] }
    } else {
        for i in 0..<p {
            var s = 0.0
            for ch in 0..<c { s += x[i * c + ch] * vector.vector[ch] }
            projection[i] = s
        }
    }
    let largest = projection.max() ?? 0, smallest = projection.min() ?? 0
    if abs(smallest) > abs(largest) { projection = projection.map { -$0 } }
    return projection
}

/// The largest eigenvalue of a symmetric matrix (its upper triangle read, row-major) and its unit
/// eigenvector, by LAPACK's `dsyevr`.
func topEigenvector(_ matrix: inout [Double], size n: Int, op: String = "eigencam") throws -> (value: Double, vector: [Double]) {
    guard n > 0 else { return (0, []) }
    var jobz: CChar = 86 /* V */, range: CChar = 73 /* I */, uplo: CChar = 76 /* L: row-major upper is column-major lower */
    var order = Int32(n), lda = Int32(n), il = Int32(n), iu = Int32(n), ldz = Int32(n)
    var vl = 0.0, vu = 0.0, abstol = 0.0, found: Int32 = 0, info: Int32 = 0
    var values = [Double](repeating: 0, count: n), vector = [Double](repeating: 0, count: n)
    var support = [Int32](repeating: 0, count: 2 * n)
    var lwork: Int32 = -1, liwork: Int32 = -1, workSize = 0.0, iworkSize: Int32 = 0
    dsyevr_(&jobz, &range, &uplo, &order, &matrix, &lda, &vl, &vu, &il, &iu, &abstol, &found, &values, &vector, &ldz, &support,
            &workSize, &lwork, &iworkSize, &liwork, &info, 1, 1, 1)
    guard info == 0 else { throw XAIError.unsupported(op: op, reason: "LAPACK dsyevr could not size its workspace (info \(info))") }
    lwork = Int32(workSize); liwork = iworkSize
    var work = [Double](repeating: 0, count: Int(max(lwork, 1))), iwork = [Int32](repeating: 0, count: Int(max(liwork, 1)))
    dsyevr_(&jobz, &range, &uplo, &order, &matrix, &lda, &vl, &vu, &il, &iu, &abstol, &found, &values, &vector, &ldz, &support,
            &work, &lwork, &iwork, &liwork, &info, 1, 1, 1)
    guard info == 0, found == 1 else {
        throw XAIError.unsupported(op: op, reason: "LAPACK dsyevr found no top eigenvector (info \(info))")
    }
    return (values[0], vector)
}

/// GradientSHAP (Lundberg & Lee's expected gradients with input noise; Captum's GradientShap): for
/// each sample, a baseline drawn from the baselines, the input plus Gaussian noise `x~`, and a point
/// `a x~ + (1 - a) b` with `a` uniform in [0, 1]; the attribution is the mean over samples of
/// `(x~ - b) * gradient at the point`. Its sum approximates `E[f(x~)] - E[f(b)]`.
public struct GradientSHAP: ModelMethod {
    /// The sample counts GradientSHAP takes.
    public static let sampleRange = 1...1_000_000

    public let name = "gradientshap"
    public let model: ExplainedModel
    /// Points per image (default 50).
    public var samples: Int
    /// The input noise's standard deviation, in input units (Captum's `stdevs`; default 0).
    public var stdev: Float
    /// Points per device batch; by default as many as fit the backend's memory budget.
    public var internalBatchSize: Int?
    public var seed: UInt64
    /// What to use instead of drawing: for each image and sample (image-major), the baseline's
    /// index, the path position and the noise in input units (tests feed a reference's draws).
    public var draws: Draws?

    /// Given draws for `N x samples` points: `index` and `alpha` `[N * samples]`, `noise`
    /// `[N * samples, C, H, W]` (in input units).
    public struct Draws: Sendable {
        public var index: [Int]
        public var alpha: [Float]
        public var noise: Tensor

        public init(index: [Int], alpha: [Float], noise: Tensor) {
            self.index = index
            self.alpha = alpha
            self.noise = noise
        }
    }

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - samples: points per image (1 to 1,000,000).
    ///   - stdev: the input noise's standard deviation, in input units.
    ///   - internalBatchSize: points per batch (default: from the memory budget).
    ///   - seed: the draws' seed.
    ///   - draws: draws to use instead of drawing.
    public init(model: ExplainedModel, samples: Int = 50, stdev: Float = 0, internalBatchSize: Int? = nil, seed: UInt64 = 0, draws: Draws? = nil) {
        self.model = model
        self.samples = samples
        self.stdev = stdev
        self.internalBatchSize = internalBatchSize
        self.seed = seed
        self.draws = draws
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        guard Self.sampleRange.contains(samples) else {
            throw XAIError.invalidArgument(parameter: "samples", value: "\(samples)",
                                           reason: "GradientSHAP needs \(Self.sampleRange.lowerBound) to \(Self.sampleRange.upperBound) samples")
        }
        guard stdev >= 0, stdev.isFinite else {
            throw XAIError.invalidArgument(parameter: "stdevs", value: "\(stdev)", reason: "must be a finite standard deviation, 0 or more")
        }
        let (logits, targets) = try model.prepare(input, target: target)
        let n = input.shape[0], per = input.shape.count / n
        if let draws, draws.index.count != n * samples || draws.alpha.count != n * samples || draws.noise.shape.count != n * samples * per {
            throw XAIError.shapeMismatch(op: "GradientSHAP draws", expected: "\(n) images x \(samples) samples of \(input.shape)",
                                         got: [Shape([draws.index.count]), Shape([draws.alpha.count]), draws.noise.shape])
        }
        let chunk = try model.batchSize(requested: internalBatchSize, bytesPerItem: try model.bytesPerImageForBackward(),
                                        cap: samples, parameter: "batch")
        var raws: [Tensor] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(input, b)
            let references = try model.baselineDistribution(baseline, for: image)
            var sum = [Double](repeating: 0, count: per)
            var start = 0
            while start < samples {
                let count = min(chunk, samples - start)
                var points = [Float](repeating: 0, count: count * per), differences = [Float](repeating: 0, count: count * per)
                for k in 0..<count {
                    let draw = b * samples + start + k
                    let (index, alpha, noise) = try self.draw(draw, references: references.count, per: per)
                    let reference = references[index]
                    for i in 0..<per {
                        let noisy = image.scalars[i] + noise[i]
                        // Captum's order of operations: a x~ + (1 - a) b, then x~ - b.
                        points[k * per + i] = alpha * noisy + (1 - alpha) * reference[i]
                        differences[k * per + i] = noisy - reference[i]
                    }
                }
                let shape = Shape([count] + input.shape.dims.dropFirst())
                let r = try model.gradients(try model.backend.upload(Tensor(unchecked: shape, points)), targets: [Int](repeating: targets[b], count: count),
                                            wrt: [model.inputName])
                let g = try model.backend.download(try model.inputGradient(r.grads))
                // Summed in sample order: the same bits for every internal batch size.
                for k in 0..<count {
                    for i in 0..<per { sum[i] += Double(differences[k * per + i] * g.scalars[k * per + i]) }
                }
                start += count
            }
            raws.append(Tensor(unchecked: image.shape, sum.map { Float($0 / Double(samples)) }))
        }
        let raw = try ExplainedModel.stack(raws)
        return Attribution(map: reduceChannels(raw, .sum), raw: raw, targets: targets, scores: ExplainedModel.scores(logits, targets))
    }

    /// Draw `draw` (image-major): the baseline index, the path position and the noise in input
    /// units. Each draw is its own seeded stream, so the values do not depend on the batch.
    func draw(_ draw: Int, references: Int, per: Int) throws -> (index: Int, alpha: Float, noise: [Float]) {
        if let draws {
            let index = draws.index[draw]
            guard (0..<references).contains(index) else {
                throw XAIError.invalidArgument(parameter: "draws", value: "\(index)", reason: "a baseline index outside the \(references) baselines")
            }
            return (index, draws.alpha[draw], Array(draws.noise.scalars[(draw * per)..<((draw + 1) * per)]))
        }
        var rng = SeededGenerator(seed: seed ^ (UInt64(draw) &* 0x9E37_79B9_7F4A_7C15 &+ 0x6A09_E667_F3BC_C909))
        let index = Int(rng.next() % UInt64(references)), alpha = rng.nextUnitFloat()
        let noise = stdev == 0 ? [Float](repeating: 0, count: per)
            : CounterRandom.normals(count: per, seed: seed, stream: UInt64(draw)).map { $0 * stdev }
        return (index, alpha, noise)
    }
}

/// DeepLIFT with the rescale rule (Shrikumar et al.; Captum's DeepLift) and DeepLiftShap (the
/// mean of DeepLIFT over baselines drawn from a distribution; Captum's DeepLiftShap). One forward
/// of the images and one of their baselines, then one backward in which each nonlinear op carries
/// back `g * (y - y') / (x - x')` instead of its gradient (``PropagationRules/rescaleAgainst``);
/// the attribution is `(x - x') * multiplier`, and for ReLU networks it sums to `f(x) - f(x')`
/// (`completenessDelta`, as Captum's convergence delta, is recorded per image). Runs on the graph
/// with its activations unfused; a nonlinear op with no rescale rule is refused with its node
/// named, never answered with the plain gradient.
public struct DeepLIFT: ModelMethod {
    public var name: String { overBaselines ? "deepliftshap" : "deeplift" }
    public let model: ExplainedModel
    /// DeepLiftShap: average over every baseline of a `[K, C, H, W]` tensor baseline.
    public var overBaselines: Bool

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - overBaselines: DeepLiftShap (the mean over the baselines given) instead of DeepLIFT.
    public init(model: ExplainedModel, overBaselines: Bool = false) {
        self.model = model
        self.overBaselines = overBaselines
    }

    /// Throws, naming the node and op, when the model has a nonlinear op with no rescale rule.
    public func validate() throws {
        if let refusal = model.unfusedExecutor().rescaleRefusal(wrt: [model.inputName]) {
            throw XAIError.unsupported(op: "\(name) at \(refusal.op) node '\(refusal.node)'", reason: refusal.reason)
        }
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try validate()
        try model.validate(input)
        let n = input.shape[0], per = input.shape.count / max(n, 1)
        let executor = model.unfusedExecutor()
        let be = model.backend
        // The images' pass gives the logits, the targets and the values the rules read.
        var images: [Tensor] = [], references: [[[Float]]] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(input, b)
            images.append(image)
            let given = try model.baselineDistribution(baseline, for: image)
            guard overBaselines || given.count == 1 else {
                throw XAIError.invalidArgument(parameter: "baseline", value: "\(given.count) baselines",
                                               reason: "deeplift takes one baseline; deepliftshap averages over several")
            }
            references.append(given)
        }
        let k = references[0].count
        guard model.fixedBatch != 1 || k == 1 else {
            throw XAIError.invalidArgument(parameter: "baseline", value: "\(k) baselines",
                                           reason: "deepliftshap runs an image against its baselines in one batch, and the model fixes its batch at 1: give one baseline, or export the model with a dynamic batch axis")
        }
        // Each image against each of its baselines: rows (b, j) image-major, K rows per image.
        var xs = [Float](), refs = [Float]()
        xs.reserveCapacity(n * k * per); refs.reserveCapacity(n * k * per)
        for b in 0..<n {
            for j in 0..<k {
                xs += images[b].scalars
                refs += references[b][j]
            }
        }
        let shape = Shape([n * k] + input.shape.dims.dropFirst())
        let pass = try executor.forward(try be.upload(Tensor(unchecked: shape, xs)), forBackward: true)
        let reference = try executor.forward(try be.upload(Tensor(unchecked: shape, refs)), forBackward: true)
        let y = try pass.output(model.outputName)
        let logits = try be.download(y)
        try logits.requireFinite("logits of the input images")
        let classes = logits.shape.count / max(n * k, 1)
        // The targets resolved on each image's logits (its first row).
        let imageLogits = Tensor(unchecked: [n, classes], (0..<n).flatMap { Array(logits.scalars[($0 * k * classes)..<(($0 * k + 1) * classes)]) })
        let targets = try model.resolve(target, logits: imageLogits)
        let rowTargets = targets.flatMap { [Int](repeating: $0, count: k) }
        let grads = try executor.backward(pass, seeds: [model.outputName: try model.seed(y.shape, targets: rowTargets)], wrt: [model.inputName],
                                          rules: PropagationRules(rescaleAgainst: reference))
        guard let m = grads[model.inputName] else {
            throw XAIError.invalidArgument(parameter: "wrt", value: model.inputName, reason: "no multiplier reached the input")
        }
        let multipliers = try be.download(m)
        let referenceLogits = try be.download(try reference.output(model.outputName))
        var raw = [Float](repeating: 0, count: n * per)
        var delta = [Double](repeating: 0, count: n), difference = [Double](repeating: 0, count: n)
        for b in 0..<n {
            for j in 0..<k {
                let row = b * k + j
                var sum = 0.0
                for i in 0..<per {
                    let a = (xs[row * per + i] - refs[row * per + i]) * multipliers.scalars[row * per + i]
                    raw[b * per + i] += a / Float(k)
                    sum += Double(a)
                }
                let t = rowTargets[row]
                let change = Double(logits.scalars[row * classes + t]) - Double(referenceLogits.scalars[row * classes + t])
                delta[b] += (sum - change) / Double(k)
                difference[b] += change / Double(k)
            }
        }
        let rawTensor = Tensor(unchecked: input.shape, raw)
        return Attribution(map: reduceChannels(rawTensor, .sum), raw: rawTensor, targets: targets,
                           scores: ExplainedModel.scores(imageLogits, targets),
                           diagnostics: ["completenessDelta": delta, "outputDifference": difference])
    }
}

/// Layer-wise relevance propagation (Bach et al.) with Zennit's composites: the target logit's
/// value is the relevance at the output, and one backward maps it to the input layer by layer,
/// each convolution, dense layer and average pooling by its rule (``LRPComposite``), activations
/// and batch norms passing it unchanged, the other ops by their gradient. Batch norms that follow
/// a convolution are folded into it when the model loads, as Zennit's canonizer merges them, and a
/// residual sum (fused into the convolution that ends a ResNet block) splits the relevance between
/// its summands by their share, as Zennit's ResNet canonizer's sum with the norm rule does. The
/// conserving rules keep the sum: `relevanceSum` (per image) against the logit.
public struct LRP: ModelMethod {
    public let name = "lrp"
    public let model: ExplainedModel
    public var composite: LRPComposite
    /// The dense layers' epsilon (Zennit's default 1e-6).
    public var epsilon: Float
    /// The gamma rule's boost (Zennit's default 0.25).
    public var gamma: Float
    /// The z-box rule's bounds per input channel (the lowest and highest values a preprocessed
    /// pixel can take).
    public var low: [Float], high: [Float]
    /// Rules by node name to use instead of the composite's (tests feed a reference's assignment).
    public var rules: [String: LRPRule]?

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - composite: which rule each layer takes.
    ///   - epsilon: the dense layers' epsilon.
    ///   - gamma: the gamma rule's boost.
    ///   - low: the z-box's lower bound per input channel.
    ///   - high: the z-box's upper bound per input channel.
    ///   - rules: rules by node name, instead of the composite's.
    public init(model: ExplainedModel, composite: LRPComposite = .epsilonPlusFlat, epsilon: Float = 1e-6, gamma: Float = 0.25,
                low: [Float] = [], high: [Float] = [], rules: [String: LRPRule]? = nil) {
        self.model = model
        self.composite = composite
        self.epsilon = epsilon
        self.gamma = gamma
        self.low = low
        self.high = high
        self.rules = rules
    }

    /// The rule of each node.
    public func assignment() -> [String: LRPRule] {
        rules ?? composite.rules(for: model.graph, epsilon: epsilon, gamma: gamma, low: low, high: high)
    }

    /// Throws, naming the node, where a rule cannot apply: z-box bounds that do not fit the input,
    /// a negative epsilon or gamma.
    public func validate() throws {
        let assigned = assignment()
        let channels = model.graph.imageInput?.shape.dropFirst().first.flatMap { $0 } ?? 0
        for node in model.graph.nodes {
            guard let rule = assigned[node.name], rule != .pass else { continue }
            if case .zBox(let low, let high) = rule, low.count != channels || high.count != channels {
                throw XAIError.invalidArgument(parameter: "low/high", value: "\(low.count) and \(high.count) bounds",
                                               reason: "the z-box rule of node '\(node.name)' needs one bound per each of the \(channels) input channels")
            }
        }
        guard epsilon >= 0, epsilon.isFinite, gamma >= 0, gamma.isFinite else {
            throw XAIError.invalidArgument(parameter: epsilon >= 0 && epsilon.isFinite ? "gamma" : "epsilon", value: "\(epsilon >= 0 ? gamma : epsilon)",
                                           reason: "must be finite and 0 or more")
        }
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try validate()
        try model.validate(input)
        let be = model.backend
        let pass = try model.executor.forward(try be.upload(input), forBackward: true, backwardTo: [model.inputName])
        let y = try pass.output(model.outputName)
        let logits = try be.download(y)
        try logits.requireFinite("logits of the input images")
        let targets = try model.resolve(target, logits: logits)
        // The relevance at the output: the target logit's value, 0 elsewhere.
        let classes = logits.shape.count / max(logits.shape[0], 1)
        var seed = Tensor(shape: logits.shape)
        seed.withUnsafeMutableBufferPointer { p in
            for (b, c) in targets.enumerated() { p[b * classes + c] = logits.scalars[b * classes + c] }
        }
        let relevance = try model.executor.backward(pass, seeds: [model.outputName: try be.upload(seed)], wrt: [model.inputName],
                                                    rules: PropagationRules(lrp: LRPRules(byNode: assignment())))
        let raw = try be.download(try model.inputGradient(relevance))
        return Attribution(map: reduceChannels(raw, .sum), raw: raw, targets: targets, scores: ExplainedModel.scores(logits, targets),
                           diagnostics: ["relevanceSum": relevanceSums(raw)])
    }
}

/// Ablation-CAM (Desai & Ramaswamy; pytorch-grad-cam's AblationCAM): each channel `k` of the layer
/// weighed by how much the target's score falls when the channel is ablated, `(s - s_k) / s`, and
/// the CAM `relu(sum_k w_k A_k)`. The layer is computed once; each ablated copy runs only the
/// layers after it (``Executor/forward(from:value:reading:)``), where pytorch-grad-cam runs the
/// whole model once per channel. A channel is ablated to 0 where the layer's smallest value is 0
/// (after a ReLU), else to that smallest value minus 1e7, as pytorch-grad-cam's ablation layer does.
///
/// Any CAM layer: a CNN's `[N, C, h, w]`, a channels-last `[N, h, w, C]` (Swin) or a vision
/// transformer's tokens `[N, T, C]`, where a channel is ablated at every position, class tokens
/// included, and the map is weighed over the patches (pytorch-grad-cam's `AblationLayerVit` with
/// the usual `reshape_transform`). A layer need not cut the graph: a transformer block's first
/// norm, which the residual stream passes around, is run from with the clean stream.
///
/// After a LayerNorm (a transformer's usual CAM layer) the smallest value is below 0, and a
/// channel at minus 1e7 swamps every value the next norm sees: ``Ablation/zero`` (the paper's
/// ablation) keeps the scores a function of the image there.
public struct AblationCAM: ModelMethod {
    /// The value an ablated channel takes.
    public enum Ablation: String, Sendable, CaseIterable {
        /// pytorch-grad-cam's: 0 where the layer's smallest value (over the image) is 0, else that
        /// value minus 1e7.
        case auto
        /// 0 always (Desai & Ramaswamy's ablation).
        case zero
    }

    public let name = "ablationcam"
    public let model: ExplainedModel
    /// The activation to explain; `nil` picks the CAM default.
    public var layer: String?
    /// Clip the map at zero (as pytorch-grad-cam does).
    public var relu: Bool
    /// Ablated copies per device batch; by default as many as fit the memory budget.
    public var internalBatchSize: Int?
    /// The value an ablated channel takes (default: pytorch-grad-cam's rule).
    public var ablation: Ablation
    /// Called after each batch with (channels done, channels in all) for the current image.
    public var progress: PerturbationProgress?

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - layer: a CAM layer's name (`[N, C, h, w]`, `[N, h, w, C]` or tokens); `nil` for the default.
    ///   - relu: clip the map at zero.
    ///   - internalBatchSize: ablated copies per batch (default: from the memory budget).
    ///   - ablation: the value an ablated channel takes.
    ///   - progress: called after each batch with (channels done, channels in all); throwing stops the method.
    public init(model: ExplainedModel, layer: String? = nil, relu: Bool = true, internalBatchSize: Int? = nil, ablation: Ablation = .auto,
                progress: PerturbationProgress? = nil) {
        self.model = model
        self.layer = layer
        self.relu = relu
        self.internalBatchSize = internalBatchSize
        self.ablation = ablation
        self.progress = progress
    }

    /// Throws when the layer is no CAM layer.
    public func validate() throws {
        _ = try model.camLayout(try model.camLayer(layer))
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try model.validate(input)
        let be = model.backend
        let layer = try model.camLayer(layer)
        let layout = try model.camLayout(layer)
        // Values a skip connection carries around the layer are kept from the clean pass and read,
        // at batch 1, by the nodes after it.
        let (after, across) = model.executor.nodesAfter(layer)
        let image = try be.upload(input)
        let pass = try model.executor.forward(image, keep: Set([layer] + across.map(\.value)))
        // Shape arithmetic made before the layer (an exporter's gather indices over the whole
        // batch), or anything else that is no activation of the images, cannot be given to a batch
        // of copies: the whole model runs on each copy of the image, the layer's value replaced (as
        // pytorch-grad-cam runs it).
        let resumable = across.allSatisfy {
            if case .device(let v) = pass.keptValues[$0.value], v.shape.rank >= 2, v.shape[0] == input.shape[0] { true } else { false }
        }
        let logits = try be.download(try pass.output(model.outputName))
        try logits.requireFinite("logits of the input images")
        let targets = try model.resolve(target, logits: logits)
        let acts = try pass.kept(layer)
        let n = acts.shape[0], per = acts.shape.count / max(n, 1)
        guard n == input.shape[0] else {
            throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "is \(acts.shape), not an activation of the \(input.shape[0]) images")
        }
        let c = try model.camChannels(layer), positions = per / max(c, 1)
        let channelsFirst = layout == .channelsFirst
        let classes = logits.shape.count / max(n, 1)
        // A copy, its keep mask and value, and everything the layers after it compute (kept until
        // their outputs are read).
        let shapes = try model.summary().shapes
        let perCopy = try resumable ? (3 * per + (after.flatMap(\.outputs) + across.map(\.value)).reduce(0) { $0 + (shapes[$1]?.count ?? 0) }) * 4
            : 3 * per * 4 + model.bytesPerImageForForward()
        let chunk = try model.batchSize(requested: internalBatchSize, bytesPerItem: perCopy, cap: c, parameter: "batch")
        // The ablated copies are made on the device from the activation there; nothing per copy
        // crosses (before: every copy's activations over and its logits row back).
        let lowest = try be.download(try be.reduce(.min, try acts.reshaped([n, per]), axes: [1])).scalars
        let ablatedValues: [Float] = lowest.map { ablation == .zero || $0 == 0 ? 0 : $0 - 1e7 }
        let (ones, zeros) = (try be.filled([1, 1, 1, c], value: 1), try be.filled([1, 1, 1, c], value: 0))
        // The layer seen as a picture whose rows (channels first) or columns are its channels.
        let picture: Shape = channelsFirst ? [1, 1, c, positions] : [1, 1, positions, c]
        let blank = try ablatedValues.contains(0) ? be.filled(picture, value: 0) : nil
        // A copy's keep mask and ablated value, broadcast over the layer's positions.
        let perChannel: Shape = switch layout {
        case .channelsFirst: [c, 1, 1]
        case .channelsLast: [1, 1, c]
        case .tokens: [1, c]
        }
        var cams: [DeviceArray] = []
        for b in 0..<n {
            let original = logits.scalars[b * classes + targets[b]]
            guard original != 0 else {
                throw XAIError.invalidArgument(parameter: "target", value: "\(targets[b])",
                                               reason: "image \(b)'s score is 0: ablationcam divides by it")
            }
            // Image b's activations.
            var skips: [String: Value] = [:]
            for (name, reader) in across where resumable {
                // (`resumable`: each is an activation of the images.)
                guard case .device(let v) = pass.keptValues[name] else {
                    throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "node '\(reader)' after it reads '\(name)', which the forward pass did not keep")
                }
                skips[name] = .device(try model.image(v, b))
            }
            let ablated = ablatedValues[b]
            let a = try model.image(acts, b)
            let fill = try be.filled([1, 1, 1, c], value: ablated)
            var columns: [DeviceArray] = []
            var start = 0
            while start < c {
                let count = min(chunk, c - start)
                let copies: DeviceArray
                if ablated == 0, let blank {
                    // Ablated to 0 (after a ReLU, the usual CNN layer, or asked): one composite of
                    // the layer seen as a picture, copy k's channel row (or column) its rectangle,
                    // 0 + m (A - 0) = m A, exact.
                    let lines = (start..<(start + count)).map {
                        channelsFirst ? MaskRect(top: $0, left: 0, height: 1, width: positions) : MaskRect(top: 0, left: $0, height: positions, width: 1)
                    }
                    copies = try be.composite(image: try a.reshaped(picture), baseline: blank, masks: .rectangles(lines))
                        .reshaped(Shape([count] + Array(acts.shape.dims.dropFirst())))
                } else {
                    // Otherwise copy k's keep mask K (1 but at channel start + k) and the ablated
                    // value where K is 0, each a composite of one-pixel rectangles over a 1 x C
                    // row, then A K + value, exact for K in {0, 1} (a composite A + m (A - value)
                    // would round A to the ulp of 1e7).
                    let cells = MaskSpec.rectangles((start..<(start + count)).map { MaskRect(top: 0, left: $0, height: 1, width: 1) })
                    let broadcast = Shape([count] + perChannel.dims)
                    let keep = try be.composite(image: ones, baseline: zeros, masks: cells).reshaped(broadcast)
                    let value = try be.composite(image: zeros, baseline: fill, masks: cells).reshaped(broadcast)
                    copies = try be.binary(.add, try be.binary(.mul, a, keep), value)
                }
                let y: DeviceArray
                if resumable {
                    guard let out = try model.executor.forward(from: layer, value: copies, reading: skips)[model.outputName] else {
                        throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "the model's output does not follow from it")
                    }
                    y = out
                } else {
                    let images = try be.concat(Array(repeating: try model.image(image, b), count: count), axis: 0)
                    y = try model.executor.forward(images, replacing: [layer: copies]).output(model.outputName)
                }
                columns.append(try be.slice(try y.reshaped([count, classes]), starts: [0, targets[b]], sizes: [count, 1]))
                start += count
                try model.report(progress, start, of: c)
            }
            // w_k = (original - score_k) / original, then sum_k w_k A_k over the layer's grid.
            let scores = try be.concat(columns, axis: 0).reshaped([1, c, 1, 1])
            let reference = try be.filled([1, 1, 1, 1], value: original)
            let weights = try be.binary(.div, try be.binary(.sub, reference, scores), reference)
            let cam = try be.reduce(.sum, try be.binary(.mul, try model.spatialView(a, layout), weights), axes: [1])
            cams.append(relu ? try be.unary(.relu, cam) : cam)
        }
        return try model.camAttribution(try be.concat(cams, axis: 0), input: input.shape, logits: logits, targets: targets)
    }
}

/// FullGrad (Srinivas & Fleuret; pytorch-grad-cam's FullGrad): `|x * grad x|` per input channel
/// plus, for every layer that adds a bias to a 4-D activation, `|bias * grad|` per channel, each
/// map min-max scaled on its own, brought to the input size (bilinear, half-pixel centres) and
/// summed. One forward and one backward on the graph with activations unfused (each bias meets
/// its pre-activation's gradient). Batch norms are folded into the convolutions before them when
/// the model loads, so a convolution's bias and its batch norm's count as one bias (pytorch-grad-
/// cam counts both; the same where the convolution has none, as in torchvision's ResNets).
public struct FullGrad: ModelMethod {
    public let name = "fullgrad"
    public let model: ExplainedModel

    /// - Parameter model: the model to explain.
    public init(model: ExplainedModel) { self.model = model }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try model.validate(input)
        let be = model.backend
        let executor = model.unfusedExecutor()
        let layers = try executor.graph.biasLayers()
        let wrt = Set([model.inputName] + layers.map(\.value))
        let x = try be.upload(input)
        let pass = try executor.forward(x, forBackward: true, backwardTo: wrt)
        let y = try pass.output(model.outputName)
        let logits = try be.download(y)
        try logits.requireFinite("logits of the input images")
        let targets = try model.resolve(target, logits: logits)
        let grads = try executor.backward(pass, seeds: [model.outputName: try model.seed(y.shape, targets: targets)], wrt: wrt)
        let (n, height, width) = (input.shape[0], input.shape[2], input.shape[3])
        // Every term's maps, each scaled to [0, 1] on its own, summed over its channels at its own
        // resolution, then resized once: bilinear resizing is linear, so this equals resizing each.
        func scaledSum(_ t: Tensor) -> Tensor {
            let (c, h, w) = (t.shape[1], t.shape[2], t.shape[3])
            var out = [Float](repeating: 0, count: n * h * w)
            for b in 0..<n {
                for ch in 0..<c {
                    let plane = t.scalars[((b * c + ch) * h * w)..<((b * c + ch + 1) * h * w)]
                    let low = plane.min() ?? 0
                    let high = (plane.max() ?? 0) - low
                    for (p, v) in plane.enumerated() { out[b * h * w + p] += (v - low) / (1e-7 + high) }
                }
            }
            return Tensor(unchecked: [n, 1, h, w], out)
        }
        let inputTerm = try be.download(try be.binary(.mul, try model.inputGradient(grads), x))
        var total = scaledSum(Tensor(unchecked: inputTerm.shape, inputTerm.scalars.map(abs)))
        for layer in layers {
            guard let g = grads[layer.value], g.shape.rank == 4, g.shape[1] == layer.bias.shape.count else { continue }
            let gradient = try be.download(g)
            let (c, plane) = (gradient.shape[1], gradient.shape[2] * gradient.shape[3])
            var term = gradient.scalars
            for i in term.indices { term[i] = abs(layer.bias.scalars[(i / plane) % c] * term[i]) }
            let summed = scaledSum(Tensor(unchecked: gradient.shape, term))
            let resized = summed.shape[2] == height && summed.shape[3] == width ? summed
                : try be.download(try be.resizeBilinear(try be.upload(summed), height: height, width: width, alignCorners: false))
            total = Tensor(unchecked: total.shape, zip(total.scalars, resized.scalars).map(+))
        }
        let map = try total.reshaped([n, height, width])
        return Attribution(map: map, raw: map, targets: targets, scores: ExplainedModel.scores(logits, targets))
    }
}
