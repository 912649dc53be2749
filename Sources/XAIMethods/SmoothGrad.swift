import Foundation
import XAICore
import XAIGraph

/// SmoothGrad and its relatives as a wrapper over any gradient method (Captum's NoiseTunnel idea):
/// the wrapped method runs on noisy copies of each image, as batches, and its raw attributions are
/// averaged (SmoothGrad), averaged after squaring (SmoothGrad²) or their variance taken (VarGrad).
public struct SmoothGrad: AttributionMethod {
    /// The sample counts SmoothGrad takes.
    public static let sampleRange = 1...1_000_000

    public enum Kind: String, Sendable, CaseIterable {
        case smoothGrad = "smoothgrad", squared = "smoothgrad_sq", varGrad = "vargrad"
    }

    public var name: String { kind.rawValue }
    /// The wrapped method; its `raw` output (e.g. input gradients) is what gets averaged.
    public var base: any AttributionMethod
    public var kind: Kind
    /// Noisy copies per image (default 50).
    public var samples: Int
    /// Noise standard deviation as a fraction of each image's value range (default 0.15).
    public var noiseLevel: Float
    /// Copies per batch of the wrapped method; by default as many as fit a quarter of the backend's
    /// memory budget.
    public var internalBatchSize: Int?
    public var seed: UInt64
    /// Whether the gradients' magnitudes are averaged, `mean |g|`, instead of the gradients,
    /// `mean g` (Captum's NoiseTunnel over Saliency with its default `abs=True`). SmoothGrad only.
    public var absolute: Bool
    /// Standard-normal noise `[N, samples, C, H, W]` to use instead of drawing it (for tests that
    /// compare with a reference fed the same noise).
    public var noise: Tensor?

    /// - Parameters:
    ///   - base: the gradient method run on the noisy copies (its `raw` is averaged).
    ///   - kind: SmoothGrad, SmoothGrad² or VarGrad.
    ///   - samples: noisy copies per image (1 to 1,000,000).
    ///   - noiseLevel: the noise's standard deviation as a fraction of each image's value range.
    ///   - internalBatchSize: copies per batch (default: from the memory budget).
    ///   - seed: the noise's seed.
    ///   - absolute: average the gradients' magnitudes (SmoothGrad only).
    ///   - noise: standard-normal noise `[N, samples, C, H, W]` to use instead of drawing it.
    public init(base: any AttributionMethod, kind: Kind = .smoothGrad, samples: Int = 50, noiseLevel: Float = 0.15,
                internalBatchSize: Int? = nil, seed: UInt64 = 0, absolute: Bool = false, noise: Tensor? = nil) {
        self.absolute = absolute
        self.base = base
        self.kind = kind
        self.samples = samples
        self.noiseLevel = noiseLevel
        self.internalBatchSize = internalBatchSize
        self.seed = seed
        self.noise = noise
    }

    /// The wrapped method's model.
    public var explainedModel: ExplainedModel? { base.explainedModel }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        guard Self.sampleRange.contains(samples) else {
            throw XAIError.invalidArgument(parameter: "samples", value: "\(samples)",
                                           reason: "SmoothGrad needs \(Self.sampleRange.lowerBound) to \(Self.sampleRange.upperBound) samples")
        }
        guard noiseLevel >= 0, noiseLevel.isFinite else {
            throw XAIError.invalidArgument(parameter: "noise", value: "\(noiseLevel)", reason: "must be a non-negative fraction of the value range")
        }
        guard let model = base.explainedModel else {
            throw XAIError.unsupported(op: "SmoothGrad", reason: "the wrapped method \(base.name) runs no model")
        }
        // The targets and scores of the clean images, resolved once.
        let (logits, targets) = try model.prepare(input, target: target)
        let n = input.shape[0], per = input.shape.count / n
        if let noise, noise.shape.count != n * samples * per {
            throw XAIError.shapeMismatch(op: "SmoothGrad noise", expected: "\(n) images x \(samples) samples of \(input.shape)", got: [noise.shape])
        }
        let chunk = try model.batchSize(requested: internalBatchSize, bytesPerItem: try model.bytesPerImageForBackward(),
                                        cap: samples, parameter: "batch")
        var raws: [Tensor] = []
        for b in 0..<n {
            let image = Array(input.scalars[(b * per)..<((b + 1) * per)])
            let sigma = noiseLevel * ((image.max() ?? 0) - (image.min() ?? 0))
            var sum = [Double](repeating: 0, count: per), sumSq = [Double](repeating: 0, count: per)
            var start = 0
            while start < samples {
                let count = min(chunk, samples - start)
                var batch = [Float](repeating: 0, count: count * per)
                // Each sample's noise is its own seeded stream (image b, sample index), drawn in
                // parallel: the same values whatever the internal batch size or thread count. One
                // sequential generator drew all of it on one core (7.5 million normals for 50
                // samples of a 224x224 image), while the device waited.
                batch.withUnsafeMutableBufferPointer { out in
                    let base = out.baseAddress!
                    let first = start
                    concurrentForEach(count) { k in
                        let sample = first + k
                        let z = noise.map { Array($0.scalars[((b * samples) + sample) * per..<((b * samples) + sample + 1) * per]) }
                            ?? SeededGenerator.gaussians(count: per, seed: seed, stream: UInt64(b * samples + sample))
                        let row = base + k * per
                        for i in 0..<per { row[i] = image[i] + sigma * z[i] }
                    }
                }
                let noisy = Tensor(unchecked: Shape([count] + input.shape.dims.dropFirst()), batch)
                let a = try base.attribute(noisy, target: .index(targets[b]), baseline: baseline)
                guard let raw = a.raw, raw.shape.count == count * per else {
                    throw XAIError.unsupported(op: "SmoothGrad", reason: "the wrapped method \(base.name) has no input-shaped raw attribution")
                }
                // Summed per element in sample order (bit for bit the same for every internal
                // batch size), the elements split over the cores.
                let parts = min(per, 16)
                let absolute = self.absolute && kind == .smoothGrad
                raw.scalars.withUnsafeBufferPointer { r in
                    sum.withUnsafeMutableBufferPointer { sumPtr in
                        sumSq.withUnsafeMutableBufferPointer { sqPtr in
                            let (rs, ss, qs) = (r.baseAddress!, sumPtr.baseAddress!, sqPtr.baseAddress!)
                            concurrentForEach(parts) { part in
                                let lo = per * part / parts, hi = per * (part + 1) / parts
                                for k in 0..<count {
                                    for i in lo..<hi {
                                        let g = Double(rs[k * per + i])
                                        let v = absolute ? Swift.abs(g) : g
                                        ss[i] += v
                                        qs[i] += v * v
                                    }
                                }
                            }
                        }
                    }
                }
                start += count
            }
            let s = Double(samples)
            let values: [Float] = (0..<per).map { i in
                switch kind {
                case .smoothGrad: return Float(sum[i] / s)
                case .squared: return Float(sumSq[i] / s)
                case .varGrad: return Float(sumSq[i] / s - (sum[i] / s) * (sum[i] / s))
                }
            }
            raws.append(Tensor(unchecked: Shape([1] + input.shape.dims.dropFirst()), values))
        }
        let raw = try ExplainedModel.stack(raws)
        let reduction: ChannelReduction = kind == .smoothGrad ? .maxAbsolute : .sum
        return Attribution(map: reduceChannels(raw, reduction), raw: raw, targets: targets, scores: ExplainedModel.scores(logits, targets))
    }
}
