import CBLAS
import Foundation
import XAICore
import XAIGraph

extension ExplainedModel {
    /// One forward that keeps `layer`: its activations on their grid (`[N, C, h, w]`, token and
    /// channels-last layers laid out as the CAMs lay them), the logits and the resolved targets.
    /// The CAMs that read no gradient (EigenCAM, FEM, KPCA-CAM) start here; the target is resolved
    /// for the scores beside the map.
    func camActivations(_ input: Tensor, target: Target, layer: String) throws -> (activations: Tensor, logits: Tensor, targets: [Int]) {
        let pass = try executor.forward(try backend.upload(input), keep: [layer])
        let logits = try backend.download(try pass.output(outputName))
        let targets = try resolve(target, logits: logits)
        let activations = try backend.download(try spatialView(try pass.kept(layer), try camLayout(layer)))
        return (activations, logits, targets)
    }

    /// A CAM made image by image from the layer's activations alone (``projectedCAM``).
    func activationCAM(_ input: Tensor, target: Target, layer: String?, relu: Bool,
                       project: (_ values: ArraySlice<Float>, _ channels: Int, _ positions: Int) throws -> [Double]) throws -> Attribution {
        let layer = try camLayer(layer)
        try validate(input)
        let (a, logits, targets) = try camActivations(input, target: target, layer: layer)
        return try projectedCAM(a, input: input.shape, logits: logits, targets: targets, relu: relu, project: project)
    }

    /// The CAM of `features` (`[N, C, h, w]` on the host: a layer's activations, or EigenGradCAM's
    /// activations times gradients), image by image: `project` turns one image's values
    /// (channel-major, `[C, positions]`) into a value per position; clipped at zero with `relu`,
    /// then upsampled to `input`'s size as every CAM.
    func projectedCAM(_ features: Tensor, input: Shape, logits: Tensor, targets: [Int], relu: Bool,
                      project: (_ values: ArraySlice<Float>, _ channels: Int, _ positions: Int) throws -> [Double]) throws -> Attribution {
        let (n, c, h, w) = (features.shape[0], features.shape[1], features.shape[2], features.shape[3])
        let plane = h * w
        var cam = [Float](repeating: 0, count: n * plane)
        for b in 0..<n {
            let values = try project(features.scalars[(b * c * plane)..<((b + 1) * c * plane)], c, plane)
            for q in 0..<plane { cam[b * plane + q] = relu ? max(Float(values[q]), 0) : Float(values[q]) }
        }
        return try camAttribution(try backend.upload(Tensor(unchecked: [n, 1, h, w], cam)), input: input, logits: logits, targets: targets)
    }
}

/// FEM, the Feature Explanation Method (Fuad et al., IPTA 2020), as pytorch-grad-cam's `FEM`: no
/// gradient; each channel weighs in by the share of its positions above its mean plus `sigmas`
/// standard deviations (the population's; the k-sigma rule), and the map is the weighted sum of
/// the channels, clipped at zero with ``relu``. A channel that fires on a few outlying positions
/// (an object) weighs more than one spread evenly over the image.
public struct FEM: ModelMethod {
    public let name = "fem"
    public let model: ExplainedModel
    /// The activation to explain; `nil` picks the CAM default.
    public var layer: String?
    /// The threshold, in standard deviations above a channel's mean (pytorch-grad-cam's `k`, 2).
    public var sigmas: Double
    /// Clip the map at zero (as pytorch-grad-cam does).
    public var relu: Bool

    public init(model: ExplainedModel, layer: String? = nil, sigmas: Double = 2, relu: Bool = true) {
        self.model = model
        self.layer = layer
        self.sigmas = sigmas
        self.relu = relu
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        guard sigmas.isFinite else { throw XAIError.invalidArgument(parameter: "femSigmas", value: "\(sigmas)", reason: "must be a finite number") }
        return try model.activationCAM(input, target: target, layer: layer, relu: relu) { image, c, plane in
            var sum = [Double](repeating: 0, count: plane)
            for ch in 0..<c {
                let values = image[(image.startIndex + ch * plane)..<(image.startIndex + (ch + 1) * plane)]
                let mean = values.reduce(0.0) { $0 + Double($1) } / Double(plane)
                let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(plane)
                // Compared in float32, as pytorch-grad-cam compares its float32 activations.
                let threshold = Float(mean + sigmas * variance.squareRoot())
                let weight = Double(values.reduce(0) { $0 + ($1 > threshold ? 1 : 0) }) / Double(plane)
                guard weight > 0 else { continue }
                for (q, v) in values.enumerated() { sum[q] += weight * Double(v) }
            }
            return sum
        }
    }
}

/// KPCA-CAM (Karmani et al. 2024), as pytorch-grad-cam's `KPCA_CAM`: EigenCAM with kernel PCA.
/// Each position is a row of the layer's channels, centred per channel; the map is the positions'
/// projection on the first component of scikit-learn's `KernelPCA` (the centred kernel matrix's
/// top eigenvector times the square root of its eigenvalue, its largest entry made positive as
/// `svd_flip` makes it), clipped at zero with ``relu``. Kernels as scikit-learn's with its
/// defaults (`gamma` 1 / channels, `coef0` 1, `degree` 3): sigmoid `tanh(gamma x.y + 1)` (the
/// default), rbf `exp(-gamma |x - y|^2)`, poly `(gamma x.y + 1)^3`, linear `x.y` (EigenCAM's
/// projection), cosine `x.y / (|x| |y|)`. In float64 (pytorch-grad-cam's runs in float32).
public struct KPCACAM: ModelMethod {
    public enum Kernel: String, Sendable, CaseIterable {
        case sigmoid, rbf, poly, linear, cosine
    }

    public let name = "kpcacam"
    public let model: ExplainedModel
    /// The activation to explain; `nil` picks the CAM default.
    public var layer: String?
    public var kernel: Kernel
    /// The kernel's scale; `nil`: 1 / channels (scikit-learn's default).
    public var gamma: Double?
    /// Clip the map at zero (as pytorch-grad-cam does).
    public var relu: Bool

    public init(model: ExplainedModel, layer: String? = nil, kernel: Kernel = .sigmoid, gamma: Double? = nil, relu: Bool = true) {
        self.model = model
        self.layer = layer
        self.kernel = kernel
        self.gamma = gamma
        self.relu = relu
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        if let gamma, !(gamma.isFinite && gamma > 0) {
            throw XAIError.invalidArgument(parameter: "kpcaGamma", value: "\(gamma)", reason: "must be a positive number")
        }
        return try model.activationCAM(input, target: target, layer: layer, relu: relu) { image, c, plane in
            try kernelProjection(Array(image), channels: c, positions: plane)
        }
    }

    /// The most positions KPCA-CAM takes: its kernel matrix is positions^2 float64 values (512 MiB
    /// here) and its eigensolver's work grows with their cube.
    public static let positionLimit = 8192

    /// The first kernel principal component of `positions` rows of `channels` values (given
    /// channel-major), centred per channel; non-finite values count as zero (pytorch-grad-cam
    /// zeroes NaN, and scikit-learn refuses infinities).
    func kernelProjection(_ values: [Float], channels c: Int, positions p: Int) throws -> [Double] {
        guard p <= Self.positionLimit else {
            throw XAIError.invalidArgument(parameter: "layer", value: layer ?? "the default CAM layer",
                                           reason: "KPCA-CAM's kernel matrix over the layer's \(p) positions would take \(p * p * 8 / (1 << 20)) MiB; pick a layer of at most \(Self.positionLimit) positions")
        }
        var x = [Double](repeating: 0, count: p * c)  // [P, C], centred
        for ch in 0..<c {
            var mean = 0.0
            for i in 0..<p { let v = Double(values[ch * p + i]); mean += v.isFinite ? v : 0 }
            mean /= Double(max(p, 1))
            for i in 0..<p { let v = Double(values[ch * p + i]); x[i * c + ch] = (v.isFinite ? v : 0) - mean }
        }
        // The Gram matrix x.y of every pair of positions (row-major, upper triangle filled).
        var k = [Double](repeating: 0, count: p * p)
        x.withUnsafeBufferPointer { xp in
            k.withUnsafeMutableBufferPointer { kp in
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(p), Int32(c), 1, xp.baseAddress, Int32(c), 0, kp.baseAddress, Int32(p))
            }
        }
        let g = gamma ?? 1 / Double(max(c, 1))
        let norms = (0..<p).map { k[$0 * p + $0] }
        for i in 0..<p {
            for j in i..<p {
                let dot = k[i * p + j]
                let value: Double
                switch kernel {
                case .sigmoid: value = tanh(g * dot + 1)
                case .poly: value = pow(g * dot + 1, 3)
                case .linear: value = dot
                case .rbf: value = i == j ? 1 : exp(-g * max(norms[i] + norms[j] - 2 * dot, 0))
                case .cosine:
                    let scale = (norms[i] * norms[j]).squareRoot()
                    value = scale > 0 ? dot / scale : 0
                }
                k[i * p + j] = value
                k[j * p + i] = value
            }
        }
        // Centred in feature space, as scikit-learn's KernelCenterer: K - row means - column means + the grand mean.
        let rowMeans = (0..<p).map { i in (0..<p).reduce(0.0) { $0 + k[i * p + $1] } / Double(p) }
        let grand = rowMeans.reduce(0, +) / Double(p)
        for i in 0..<p { for j in 0..<p { k[i * p + j] += grand - rowMeans[i] - rowMeans[j] } }
        let top = try topEigenvector(&k, size: p, op: name)
        var vector = top.vector
        // scikit-learn's svd_flip: the entry of largest magnitude (the first of equals) positive.
        if let largest = vector.indices.max(by: { abs(vector[$0]) < abs(vector[$1]) || (abs(vector[$0]) == abs(vector[$1]) && $0 > $1) }),
           vector[largest] < 0 {
            vector = vector.map { -$0 }
        }
        // A centred kernel's top eigenvalue is not negative but by rounding: its map is then 0
        // (scikit-learn raises "All eigenvalues are negative" there).
        let scale = max(top.value, 0).squareRoot()
        return vector.map { $0 * scale }
    }
}
