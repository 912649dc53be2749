import ArgumentParser
import Foundation
import XAI

struct MethodsBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "methods",
        abstract: "Per-image time of each attribution method on a zoo model at 224x224, batch 1, with the peer table's settings, beside its floor.")

    @Option(help: "cpu, gpu or gpu:N.") var device = "cpu"
    @Option(help: "Comma-separated zoo models or ONNX files.") var models = "resnet18,resnet50"
    @Option(help: "Comma-separated methods (saliency, inputxgrad, ig, smoothgrad, gradcam, xgradcam, layercam, gradcampp, cam, scorecam, slic, quickshift, occlusion, lime, kernelshap, rise, mp), all (the gradient and CAM methods, seconds each) or perturbation (slic, quickshift, occlusion, lime, kernelshap, rise, mp: minutes each on a CPU).")
    var methods = "all"
    @Option(name: .customLong("repeat"), help: "Timed repetitions per row (after one warm-up).") var repeats = 3
    @Option(help: "Write all figures as JSON to this file.") var json: String?

    struct Row: Codable {
        let model: String
        let method: String
        let settings: String
        let timing: Timing
        let forwardEquivalents: Double
        let gflops: Double
        let timesFloor: Double
    }

    func run() async throws {
        let backend = try Backends.make(try Device(parsing: device))
        let host = HostInfo.current()
        print("machine: \(host.cpuModel), \(host.logicalCores) logical cores; backend: \(backend.name)")
        var isCPUOpenCL = false
        if let cl = backend as? OpenCLBackend { isCPUOpenCL = !cl.info.isGPU }
        let (ceiling, ceilingName) = try measureCeiling(backend, size: isCPUOpenCL ? 1024 : 4096, repeats: 3)
        print("ceiling: \(ceilingName) " + String(format: "%.1f GFLOP/s", ceiling))
        let all = ["saliency", "inputxgrad", "ig", "smoothgrad", "gradcam", "xgradcam", "layercam", "gradcampp", "cam"]
        let perturbation = ["slic", "quickshift", "occlusion", "lime", "kernelshap", "rise", "mp"]
        let chosen = methods == "all" ? all : methods == "perturbation" ? perturbation : methods.split(separator: ",").map(String.init)
        var rows: [Row] = []
        for name in models.split(separator: ",").map(String.init) {
            let graph = try Models.load(name)
            let flops = try graph.summary().flopsPerImage
            let model = try ExplainedModel(graph: graph, backend: backend)
            let input = Tensor.uniform(try graph.imageInput!.shape(batch: 1), in: -2...2, seed: 3)
            // Segment methods get SLIC superpixels of a smooth image (blurred noise), about 50 of
            // them like the peers' 52 on their photograph; noise alone would give odd segments.
            let photo = try gaussianBlur(input, sigma: 6)
            let slic = SLIC(segments: 70)
            let segments = try slic.segment(photo)
            let superpixels = Segmentation.labels(segments.tensor)
            for m in chosen {
                // (method, settings, nominal forward-equivalents: a backward to the input counts as one)
                let (method, settings, fwdEq): (any AttributionMethod, String, Double)
                // Slow methods warm up on a reduced run with the same batch shapes.
                var warmup: (any AttributionMethod)?
                switch m {
                case "slic", "quickshift":
                    let segmenter: Segmentation = m == "slic" ? .slic(slic) : .quickshift(Quickshift())
                    var count = 0
                    let t = try Timing.measure(repeats: Swift.max(repeats, 3)) { count = try segmenter.segment(photo, index: 0).count }
                    let what = m == "slic" ? "SLIC n_segments=70, compactness 10" : "quickshift kernel 4, max distance 200, ratio 0.2 (lime's)"
                    rows.append(Row(model: name, method: m, settings: "\(what) on 224x224 -> \(count) segments",
                                    timing: t, forwardEquivalents: 0, gflops: 0, timesFloor: 0))
                    print("  \(name) \(m): " + formatSeconds(t.median))
                    continue
                case "occlusion":
                    (method, settings, fwdEq) = (Occlusion(model: model), "window 16x16, stride 8 (729 windows), baseline 0", 730)
                    warmup = Occlusion(model: model, window: (16, 16), stride: (100, 100))
                case "lime":
                    (method, settings, fwdEq) = (LIME(model: model, samples: 1000, segmentation: superpixels),
                                                 "1000 samples, \(segments.count) SLIC segments, ridge", 1001)
                    warmup = LIME(model: model, samples: 64, segmentation: superpixels)
                case "kernelshap":
                    (method, settings, fwdEq) = (KernelSHAP(model: model, samples: 1000, segmentation: superpixels),
                                                 "1000 samples, \(segments.count) SLIC segments, baseline 0", 1003)
                    warmup = KernelSHAP(model: model, samples: 64, segmentation: superpixels)
                case "rise":
                    (method, settings, fwdEq) = (RISE(model: model), "4000 masks, grid 7, p 0.5", 4001)
                    warmup = RISE(model: model, masks: 64)
                case "mp":
                    (method, settings, fwdEq) = (MeaningfulPerturbation(model: model), "300 Adam steps, 28x28 mask, blur sigma 10", 603)
                    warmup = MeaningfulPerturbation(model: model, iterations: 2)
                case "saliency": (method, settings, fwdEq) = (Saliency(model: model), "batch 1", 2)
                case "inputxgrad": (method, settings, fwdEq) = (InputXGradient(model: model), "batch 1", 2)
                case "ig": (method, settings, fwdEq) = (IntegratedGradients(model: model, steps: 50), "50 steps Gauss-Legendre, baseline 0, + completeness check", 103)
                case "smoothgrad": (method, settings, fwdEq) = (SmoothGrad(base: Saliency(model: model), samples: 50), "50 samples, noise 0.15", 102)
                case "gradcam", "xgradcam", "layercam", "gradcampp":
                    (method, settings, fwdEq) = (GradientCAM(model: model, variant: CAMVariant(rawValue: m)!), "default layer, backward stops at it", 1)
                case "cam": (method, settings, fwdEq) = (CAM(model: model), "GAP + linear head", 1)
                case "scorecam":
                    let layer = try model.summary().defaultCAMLayer.flatMap { try model.summary().shapes[$0] }
                    (method, settings, fwdEq) = (ScoreCAM(model: model), "one forward per channel of the default layer", Double((layer?[1] ?? 0) + 1))
                default: throw ValidationError("--methods: unknown method '\(m)'")
                }
                if let warmup { _ = try warmup.attribute(input, target: .predicted) }
                let t = try Timing.measure(warmup: warmup == nil ? 1 : 0, repeats: repeats) { _ = try method.attribute(input, target: .predicted) }
                let floor = fwdEq * flops / (ceiling * 1e9)
                rows.append(Row(model: name, method: m, settings: settings, timing: t, forwardEquivalents: fwdEq,
                                gflops: fwdEq * flops / t.median / 1e9, timesFloor: t.median / floor))
                print("  \(name) \(m): " + formatSeconds(t.median))
            }
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
        }
        print("")
        printTable(["model", "method", "settings", "s/image min / median / max", "fwd-eq", "GFLOP/s", "x floor"], rows.map { r in
            [r.model, r.method, r.settings, [r.timing.min, r.timing.median, r.timing.max].map(formatSeconds).joined(separator: " / "),
             String(format: "%.0f", r.forwardEquivalents), String(format: "%.1f", r.gflops), String(format: "%.2f", r.timesFloor)]
        })
    }
}
