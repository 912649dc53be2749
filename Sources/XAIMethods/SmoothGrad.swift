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
        let be = model.backend
        try model.validate(input)
        let n = input.shape[0], per = input.shape.count / n
        if let noise, noise.shape.count != n * samples * per {
            throw XAIError.shapeMismatch(op: "SmoothGrad noise", expected: "\(n) images x \(samples) samples of \(input.shape)", got: [noise.shape])
        }
        // The batch goes to the device once; the clean logits pick the targets and scores.
        let (x, logits, targets) = try model.prepareOnDevice(input, target: target)
        let chunk = try model.batchSize(requested: internalBatchSize, bytesPerItem: try model.bytesPerImageForBackward(),
                                        cap: samples, parameter: "batch")
        let item = Shape([1] + input.shape.dims.dropFirst())
        let onDevice = base as? DeviceRawAttribution
        var raws: [Tensor] = []
        for b in 0..<n {
            let values = input.scalars[(b * per)..<((b + 1) * per)]
            let sigma = noiseLevel * ((values.max() ?? 0) - (values.min() ?? 0))
            let image = try model.image(x, b)
            // The gradients' sums stay on the device: each copy's gradient is added in sample
            // order (the same bits for every internal batch size) and one map comes back.
            var state: DeviceArray?
            try model.inBatches(samples, of: chunk) { range in
                let (start, count) = (range.lowerBound, range.count)
                // Copy k is the image plus sigma times stream b * samples + k of the device
                // generator (CounterRandom), drawn where the copies are used.
                let noisy: DeviceArray
                if let noise {
                    let z = noise.scalars[((b * samples) + start) * per..<((b * samples) + start + count) * per]
                    noisy = try be.upload(Tensor(unchecked: Shape([count] + item.dims.dropFirst()),
                                                 z.enumerated().map { values[values.startIndex + $0.offset % per] + sigma * $0.element }))
                } else {
                    noisy = try be.noisyCopies(of: image, copies: count, sigma: sigma, seed: seed, firstStream: UInt64(b * samples + start))
                }
                let rows = [Int](repeating: targets[b], count: count)
                let raw: DeviceArray
                if let onDevice {
                    raw = try onDevice.rawAttribution(noisy, targets: rows)
                } else {
                    let a = try base.attribute(try be.download(noisy), target: .perImage(rows), baseline: baseline)
                    guard let r = a.raw, r.shape.count == count * per else {
                        throw XAIError.unsupported(op: "SmoothGrad", reason: "the wrapped method \(base.name) has no input-shaped raw attribution")
                    }
                    raw = try be.upload(r)
                }
                state = try be.runningSum(raw, state: state, absolute: absolute && kind == .smoothGrad)
            }
            guard let state else { throw XAIError.invalidArgument(parameter: "samples", value: "\(samples)", reason: "no samples were drawn") }
            let statistic: DeviceArray
            switch kind {
            case .smoothGrad: statistic = try be.runningMean(state, count: samples, squares: false)
            case .squared: statistic = try be.runningMean(state, count: samples, squares: true)
            case .varGrad:
                let mean = try be.runningMean(state, count: samples, squares: false)
                statistic = try be.binary(.sub, try be.runningMean(state, count: samples, squares: true), try be.binary(.mul, mean, mean))
            }
            raws.append(try be.download(try statistic.reshaped(item)))
        }
        let raw = try ExplainedModel.stack(raws)
        let reduction: ChannelReduction = kind == .smoothGrad ? .maxAbsolute : .sum
        return Attribution(map: reduceChannels(raw, reduction), raw: raw, targets: targets, scores: ExplainedModel.scores(logits, targets))
    }
}
