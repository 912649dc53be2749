import ArgumentParser
import Foundation
import XAI

/// Method knobs shared by `xai explain` and `xai demo`, named like the library's.
struct MethodOptions: ParsableArguments {
    @Option(help: "Integrated Gradients path steps.") var steps = 50
    @Option(help: "Integrated Gradients rule: gausslegendre, trapezoid, left, right or middle.") var rule = "gausslegendre"
    @Option(help: "Samples: SmoothGrad (default 50), LIME and KernelSHAP (default 1000).") var samples: Int?
    @Option(help: "SmoothGrad noise as a fraction of the image's value range.") var noise: Float = 0.15
    @Option(help: "Baseline: zero, black (0 before normalisation), mean (per channel), blur (sigma 10), noise (uniform), or a .npy tensor [3,H,W].")
    var baseline = "zero"
    @Option(help: "Superpixels for LIME and KernelSHAP: slic, quickshift, felzenszwalb or grid.") var segmentation = "slic"
    @Option(help: "SLIC segment count (scikit-image's n_segments); for grid, cells per side.") var segments = 50
    @Option(help: "A label map at the model's input size to use as superpixels instead: .npy [H,W] of integer ids, or a PNG whose colours are the segments.") var featureMask: String?
    @Option(help: "Occlusion window side in pixels.") var window = 16
    @Option(help: "Occlusion stride in pixels.") var stride = 8
    @Option(help: "RISE mask count.") var masks = 4000
    @Option(help: "Meaningful Perturbation optimisation steps.") var iterations = 300
    @Option(help: "Layer for the CAM methods (default: the last 4-D activation before global pooling).") var layer: String?
    @Option(help: "Score Grad-CAM++ differentiates: exponential (exp(logit), pytorch-grad-cam's closed form) or probability (the softmax, exact higher derivatives; global-average-pooling + linear heads).")
    var gradcamppScore = "exponential"
    @Option(help: "Perturbed copies or path points per device batch (default: from the memory budget).") var batch: Int?
    @Option(help: "Seed of every stochastic method.") var seed: UInt64 = 0
}

/// Every method the command line knows, in the order `all` runs them.
let methodNames = ["saliency", "inputxgrad", "smoothgrad", "ig", "cam", "gradcam", "gradcampp", "layercam", "xgradcam", "scorecam",
                   "occlusion", "lime", "kernelshap", "rise", "mp"]

/// One line per method for `xai methods`.
let methodDescriptions: [(String, String)] = [
    ("saliency", "vanilla gradient, max |grad| over channels"),
    ("inputxgrad", "gradient x input, summed over channels"),
    ("smoothgrad", "--samples 50 --noise 0.15 --seed 0: mean gradient over noisy copies"),
    ("ig", "--steps 50 --rule gausslegendre --baseline zero: Integrated Gradients, completeness delta reported"),
    ("cam", "class activation map; needs a global-average-pooling + linear head"),
    ("gradcam", "--layer (default: last 4-D activation before pooling)"),
    ("gradcampp", "--layer: Grad-CAM++ (closed form, exact for piecewise-linear heads; refused with the node named otherwise)"),
    ("layercam", "--layer"),
    ("xgradcam", "--layer"),
    ("scorecam", "--layer --batch: one masked forward per channel"),
    ("occlusion", "--window 16 --stride 8 --baseline zero"),
    ("lime", "--samples 1000 --segmentation slic --segments 50 --feature-mask FILE --seed 0"),
    ("kernelshap", "--samples 1000 --segmentation slic --segments 50 --feature-mask FILE --seed 0"),
    ("rise", "--masks 4000 --seed 0: random 7x7 grids, probability-weighted"),
    ("mp", "--iterations 300: Meaningful Perturbation (deletion mask against a blur)"),
]

extension MethodOptions {
    func baselineValue(_ preprocessing: Preprocessing) throws -> Baseline {
        switch baseline {
        case "zero": return .zero
        case "black": return .perChannel((0..<3).map { -preprocessing.mean[$0] / preprocessing.std[$0] })
        case "mean": return .channelMean
        case "blur": return .blurred(sigma: 10)
        case "noise": return .uniformNoise(low: -1, high: 1, seed: seed)
        default:
            guard baseline.hasSuffix(".npy") else {
                throw ValidationError("--baseline: '\(baseline)' is none of zero, black, mean, blur, noise or a .npy file")
            }
            return .tensor(try NPY.read(baseline))
        }
    }

    func segmentationValue() throws -> Segmentation {
        if let featureMask {
            if featureMask.lowercased().hasSuffix(".npy") { return .labels(try NPY.read(featureMask)) }
            // A picture: each distinct colour is one segment.
            let picture = try RGBImage.read(featureMask)
            var ids = [Float](repeating: 0, count: picture.width * picture.height)
            for p in ids.indices {
                let (r, g, b) = (Int(picture.pixels[3 * p]), Int(picture.pixels[3 * p + 1]), Int(picture.pixels[3 * p + 2]))
                ids[p] = Float(r << 16 | g << 8 | b)
            }
            return .labels(Tensor(unchecked: [picture.height, picture.width], ids))
        }
        switch segmentation {
        case "slic": return .slic(SLIC(segments: segments))
        case "quickshift": return .quickshift(Quickshift())
        case "felzenszwalb": return .felzenszwalb(Felzenszwalb(scale: 100))
        case "grid": return .grid(rows: segments, columns: segments)
        default: throw ValidationError("--segmentation: '\(segmentation)' is none of slic, quickshift, felzenszwalb, grid")
        }
    }

    /// The method called `name`, with the parameters to record beside its output.
    func make(_ name: String, model: ExplainedModel, progress: PerturbationProgress?) throws -> (any AttributionMethod, [String: String]) {
        switch name {
        case "saliency": return (Saliency(model: model), [:])
        case "inputxgrad": return (InputXGradient(model: model), [:])
        case "smoothgrad":
            let n = samples ?? 50
            return (SmoothGrad(base: Saliency(model: model), samples: n, noiseLevel: noise, internalBatchSize: batch, seed: seed),
                    ["samples": "\(n)", "noise": "\(noise)"])
        case "ig":
            guard let r = IntegrationRule(rawValue: rule) else {
                throw ValidationError("--rule: '\(rule)' is none of \(IntegrationRule.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return (IntegratedGradients(model: model, steps: steps, rule: r, internalBatchSize: batch), ["steps": "\(steps)", "rule": rule, "baseline": baseline])
        case "cam": return (CAM(model: model), [:])
        case "gradcam", "layercam", "xgradcam", "gradcampp":
            guard let score = GradientCAM.PlusPlusScore(rawValue: gradcamppScore) else {
                throw ValidationError("--gradcampp-score: '\(gradcamppScore)' is neither exponential nor probability")
            }
            let m = GradientCAM(model: model, variant: CAMVariant(rawValue: name)!, layer: layer, plusPlusScore: score)
            try m.validate()
            return (m, ["layer": try m.resolvedLayer()] .merging(name == "gradcampp" ? ["score": gradcamppScore] : [:]) { $1 })
        case "scorecam": return (ScoreCAM(model: model, layer: layer, internalBatchSize: batch), ["layer": try GradientCAM(model: model, layer: layer).resolvedLayer()])
        case "occlusion":
            return (Occlusion(model: model, window: (window, window), stride: (stride, stride), perturbationsPerEval: batch, progress: progress),
                    ["window": "\(window)", "stride": "\(stride)", "baseline": baseline])
        case "lime":
            let n = samples ?? 1000
            return (LIME(model: model, samples: n, segmentation: try segmentationValue(), seed: seed, perturbationsPerEval: batch, progress: progress),
                    ["samples": "\(n)", "segmentation": featureMask ?? segmentation, "segments": "\(segments)", "baseline": baseline])
        case "kernelshap":
            let n = samples ?? 1000
            return (KernelSHAP(model: model, samples: n, segmentation: try segmentationValue(), seed: seed, perturbationsPerEval: batch, progress: progress),
                    ["samples": "\(n)", "segmentation": featureMask ?? segmentation, "segments": "\(segments)", "baseline": baseline])
        case "rise":
            return (RISE(model: model, masks: masks, seed: seed, perturbationsPerEval: batch, progress: progress), ["masks": "\(masks)"])
        case "mp":
            return (MeaningfulPerturbation(model: model, iterations: iterations), ["iterations": "\(iterations)"])
        default:
            throw ValidationError("--method: unknown method '\(name)'; `xai methods` lists them")
        }
    }

    /// The methods of a `--method` list; `all` is every method that applies to the model.
    static func expand(_ list: String, model: ExplainedModel) throws -> [String] {
        var names: [String] = []
        for item in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            if item == "all" {
                for n in methodNames {
                    if n == "cam" && !CAM(model: model).applies { continue }
                    if n == "gradcampp" && (try? GradientCAM(model: model, variant: .gradCAMPlusPlus).validate()) == nil { continue }
                    names.append(n)
                }
            } else {
                guard methodNames.contains(item) else {
                    throw ValidationError("--method: unknown method '\(item)'; `xai methods` lists them")
                }
                names.append(item)
            }
        }
        guard !names.isEmpty else { throw ValidationError("--method: name at least one method") }
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }
}
