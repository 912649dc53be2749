import ArgumentParser
import Foundation
import XAI
import XAIJobs

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain a model's predictions on images: maps (.npy), overlays (.png), results.jsonl and an HTML report.",
        discussion: """
        Outputs per image and method: OUT/<image-stem>/<method>.npy (float32 [H,W] at the model's input size), \
        <method>.raw.npy where the method has a raw tensor, <method>.png (overlay on the original picture), and one \
        line in OUT/results.jsonl. Re-running skips what is already written (--overwrite redoes it); --shard i/n \
        explains every n-th input from the i-th, for job arrays over many machines.
        """)

    @Argument(help: "An ONNX file or a zoo model name.") var model: String
    @Argument(help: "Images (PNG, JPEG), preprocessed tensors (.npy), folders (recursive) or .txt manifests.") var inputs: [String]
    @Option(name: .customLong("method"), help: "Comma-separated methods, or all (`xai methods` lists them).") var methods = "gradcam"
    @Option(help: "cpu, gpu or gpu:N.") var device = "cpu"
    @Flag(help: ArgumentHelp(fastHelp)) var fast = false
    @Option(help: ArgumentHelp(precisionHelp)) var precision: String?
    @Option(help: "top1 or a class index.") var target = "top1"
    @Option(help: "Output folder.") var out = "xai-out"
    @Option(help: "What to write: any of raw, png, html.") var save = "raw,png,html"
    @Flag(help: "Redo outputs that already exist.") var overwrite = false
    @Option(help: "Explain only the i-th of n deterministic slices of the inputs (i/n).") var shard: String?
    @Flag(help: "No progress line.") var quiet = false
    @Option(help: "Normalisation: imagenet, none or r,g,b/r,g,b (default: the model's .json sidecar, else imagenet).") var preset: String?
    @Option(help: "Shorter side after resizing, before the centre crop, as torchvision's Resize (default: the model's input side).") var resize: Int?
    @Option(help: "Overlay colour map: jet, viridis, inferno, turbo, diverging (default: turbo, diverging for signed maps).") var colormap: String?
    @Option(help: "Overlay sign mode: auto (magnitude for pixel-level gradient maps: saliency, inputxgrad, smoothgrad, ig; else all for signed maps, positive otherwise), positive, negative, absolute, all (the signed view, diverging colours).") var sign = "auto"
    @Option(help: "Overlay opacity.") var alpha = 0.5
    @Option(help: "Overlay saturation: values above this percentile of the shown magnitudes get the top colour.") var percentile = 99.0
    @Option(help: "Images per pass for the methods that explain a batch in one pass (saliency, inputxgrad, the CAM family; within the memory budget), and files decoded ahead while the device works. 1: one image at a time.") var imageBatch = 8
    @Option(help: .hidden) var logMemory: String?
    @OptionGroup var knobs: MethodOptions

    /// The run the flags describe.
    func job() throws -> ExplainJob {
        var job = ExplainJob(model: model, inputs: inputs, methods: methods, out: out)
        job.device = try Device(parsing: device)
        job.precision = try resolvePrecision(precision, fast: fast)
        job.target = try parseTarget(target)
        job.saving = Set(save.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        job.imageBatch = imageBatch
        job.overwrite = overwrite
        job.shard = shard
        job.quiet = quiet
        job.preset = preset
        job.resize = resize
        guard let signMode = SignMode(rawValue: sign) else {
            throw XAIError.invalidArgument(parameter: "sign", value: sign, reason: "none of auto, positive, negative, absolute, all")
        }
        let map = try colormap.map { c in
            guard let m = Colormap(rawValue: c) else {
                throw XAIError.invalidArgument(parameter: "colormap", value: c, reason: "none of \(Colormap.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return m
        }
        guard alpha >= 0, alpha <= 1 else { throw XAIError.invalidArgument(parameter: "alpha", value: "\(alpha)", reason: "must be between 0 and 1") }
        guard percentile >= 0, percentile <= 100 else {
            throw XAIError.invalidArgument(parameter: "percentile", value: "\(percentile)", reason: "must be between 0 and 100")
        }
        job.style = HeatmapStyle(colormap: map, sign: signMode, percentile: percentile, alpha: alpha)
        job.configuration = try knobs.configuration()
        job.memoryLog = logMemory
        job.describeError = describe
        return job
    }

    func run() throws {
        let summary = try reportingFlags { try job().run() }
        guard report(summary) else { throw ExitCode(1) }
    }
}

/// Prints a run's summary and what failed; `false` when anything did.
func report(_ summary: ExplainJob.Summary) -> Bool {
    if let report = summary.report { print("report: \(report)") }
    print(String(format: "%d maps written, %d already there, %d failed, %.1f s", summary.written, summary.skipped, summary.failures.count, summary.seconds)
          + (summary.warnings.isEmpty ? "" : ", \(summary.warnings.count) constant (warnings above)"))
    guard summary.failures.isEmpty else {
        printError("failed:")
        for f in summary.failures { printError("  \(f)") }
        return false
    }
    return true
}
