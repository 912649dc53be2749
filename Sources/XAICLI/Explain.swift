import ArgumentParser
import Foundation
import XAI

/// One line of `results.jsonl`: what was explained, how, and where the outputs are.
struct ResultRecord: Codable {
    var image: String
    var stem: String
    var model: String
    var method: String
    var target: Int
    var label: String?
    var score: Float
    var parameters: [String: String]
    var seed: UInt64
    var seconds: Double
    var device: String
    var diagnostics: [String: Double]
    var files: [String]
}

struct Explain: AsyncParsableCommand {
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
    @Option(help: "top1 or a class index.") var target = "top1"
    @Option(help: "Output folder.") var out = "xai-out"
    @Option(help: "What to write: any of raw, png, html.") var save = "raw,png,html"
    @Flag(help: "Redo outputs that already exist.") var overwrite = false
    @Option(help: "Explain only the i-th of n deterministic slices of the inputs (i/n).") var shard: String?
    @Flag(help: "No progress line.") var quiet = false
    @Option(help: "Normalisation: imagenet, none or r,g,b/r,g,b (default: the model's .json sidecar, else imagenet).") var preset: String?
    @Option(help: "Shorter side after resizing, before the centre crop (default: the model's input side).") var resize: Int?
    @Option(help: "Overlay colour map: jet, viridis, inferno, turbo, diverging (default: turbo, diverging for signed maps).") var colormap: String?
    @Option(help: "Overlay sign mode: auto, positive, negative, absolute, all.") var sign = "auto"
    @Option(help: "Overlay opacity.") var alpha = 0.5
    @Option(help: "Overlay saturation: values above this percentile of the shown magnitudes get the top colour.") var percentile = 99.0
    @Option(help: .hidden) var logMemory: String?
    @OptionGroup var knobs: MethodOptions

    func run() async throws {
        let started = Date()
        let graph = try Models.load(model)
        let backend = try Backends.make(try Device(parsing: device))
        let explained = try ExplainedModel(graph: graph, backend: backend)
        let sidecar = try Sidecar.load(for: model)
        let prep = try preprocessing(preset: preset, resize: resize, sidecar: sidecar)
        guard let input = graph.imageInput, let shape = try? input.shape(batch: 1), shape.rank == 4, shape[1] == 3 else {
            throw ValidationError("\(model): needs one image input [N, 3, H, W]")
        }
        let (height, width) = (shape[2], shape[3])
        let names = try MethodOptions.expand(methods, model: explained)
        let files = try collectInputs(inputs, shard: shard)
        let style = HeatmapStyle(colormap: try colormap.map { c in
            guard let m = Colormap(rawValue: c) else { throw ValidationError("--colormap: '\(c)' is none of \(Colormap.allCases.map(\.rawValue).joined(separator: ", "))") }
            return m
        }, sign: try { guard let s = SignMode(rawValue: sign) else { throw ValidationError("--sign: '\(sign)' is none of auto, positive, negative, absolute, all") }; return s }(),
            percentile: percentile, alpha: alpha)
        let saving = Set(save.split(separator: ",").map(String.init))
        let targetValue: Target
        if target == "top1" { targetValue = .predicted } else if let i = Int(target) { targetValue = .index(i) } else {
            throw ValidationError("--target: '\(target)' is neither top1 nor a class index")
        }
        let baseline = try knobs.baselineValue(prep)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let resultsPath = (out as NSString).appendingPathComponent("results.jsonl")
        if !FileManager.default.fileExists(atPath: resultsPath) { _ = FileManager.default.createFile(atPath: resultsPath, contents: nil) }
        guard let results = FileHandle(forWritingAtPath: resultsPath) else { throw XAIError.file(path: resultsPath, reason: "cannot be written") }
        results.seekToEndOfFile()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let progress = ProgressLine(quiet: quiet)
        var failures: [String] = []
        var written = 0, skipped = 0
        var usedStems = Set<String>()
        var memoryLog: FileHandle?
        if let logMemory {
            _ = FileManager.default.createFile(atPath: logMemory, contents: nil)
            memoryLog = FileHandle(forWritingAtPath: logMemory)
        }
        for (index, file) in files.enumerated() {
            // Resident memory after each input, for the test that long runs stay flat.
            memoryLog?.write(Data("\(index) \(residentKilobytes())\n".utf8))
            let images: [PreparedImage]
            do { images = try prepare(file, height: height, width: width, preprocessing: prep) } catch {
                progress.finish()
                printError("error: \(error)")
                failures.append("\(file): \(error)")
                continue
            }
            for image in images {
                // Inputs with the same name in different folders get distinct output folders.
                var stem = image.stem, k = 2
                while usedStems.contains(stem) { stem = "\(image.stem)-\(k)"; k += 1 }
                usedStems.insert(stem)
                let folder = (out as NSString).appendingPathComponent(stem)
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                let picturePath = (folder as NSString).appendingPathComponent("input.png")
                if saving.contains("png") || saving.contains("html"), overwrite || !FileManager.default.fileExists(atPath: picturePath) {
                    try image.picture.writePNG(picturePath)
                }
                for name in names {
                    let mapPath = (folder as NSString).appendingPathComponent("\(name).npy")
                    if !overwrite && FileManager.default.fileExists(atPath: mapPath) { skipped += 1; continue }
                    let elapsed = Date().timeIntervalSince(started)
                    let rate = index > 0 ? Double(index) / elapsed : 0
                    let eta = rate > 0 ? String(format: ", %.2f img/s, ETA ", rate) + duration(Double(files.count - index) / rate) : ""
                    progress.prefix = "[\(index + 1)/\(files.count)\(eta)] \(stem) \(name) "
                    progress.update("")
                    let perturbationProgress: PerturbationProgress = { done, total in progress.update("\(done)/\(total)") }
                    do {
                        let (method, parameters) = try knobs.make(name, model: explained, progress: perturbationProgress)
                        let t0 = Date()
                        let a = try method.attribute(image.tensor, target: targetValue, baseline: baseline)
                        let seconds = Date().timeIntervalSince(t0)
                        var outputs = ["\(name).npy"]
                        let map = try a.map.reshaped([height, width])
                        if saving.contains("raw"), let raw = a.raw {
                            try NPY.write(try raw.reshaped(Shape(Array(raw.shape.dims.dropFirst()))), to: (folder as NSString).appendingPathComponent("\(name).raw.npy"))
                            outputs.append("\(name).raw.npy")
                            if let segments = a.segments {
                                try NPY.write(try segments.reshaped([height, width]), to: (folder as NSString).appendingPathComponent("segments.npy"))
                            }
                        }
                        if saving.contains("png") || saving.contains("html") {
                            var outline: (labels: [Int32], segments: Set<Int32>)?
                            if let segments = a.segments, let raw = a.raw {
                                // LIME-style view: the borders of the five strongest segments.
                                let top = raw.scalars.indices.sorted { raw.scalars[$0] > raw.scalars[$1] }.prefix(5)
                                outline = (segments.scalars.map { Int32($0) }, Set(top.map { Int32($0) }))
                            }
                            let overlay = style.overlay(image.picture, map: map.scalars, mapWidth: width, mapHeight: height,
                                                        placement: image.placement, outline: outline)
                            try overlay.writePNG((folder as NSString).appendingPathComponent("\(name).png"))
                            outputs.append("\(name).png")
                        }
                        // The map last: its presence marks the method as done for a resumed run.
                        try NPY.write(map, to: mapPath)
                        let record = ResultRecord(image: image.source, stem: stem, model: model, method: name, target: a.targets[0],
                                                  label: sidecar?.labels.flatMap { a.targets[0] < $0.count ? $0[a.targets[0]] : nil },
                                                  score: a.scores[0], parameters: parameters, seed: knobs.seed, seconds: seconds,
                                                  device: backend.name, diagnostics: a.diagnostics.compactMapValues { $0.first }, files: outputs)
                        results.write(try encoder.encode(record) + Data("\n".utf8))
                        written += 1
                    } catch let error as ValidationError {
                        progress.finish()
                        throw error
                    } catch {
                        progress.finish()
                        printError("error: \(image.source) \(name): \(error)")
                        failures.append("\(image.source) \(name): \(error)")
                    }
                }
            }
        }
        progress.finish()
        try results.close()
        if saving.contains("html") {
            let report = try writeReport(folder: out, resultsPath: resultsPath)
            print("report: \(report)")
        }
        print(String(format: "%d maps written, %d already there, %d failed, %.1f s", written, skipped, failures.count, Date().timeIntervalSince(started)))
        if !failures.isEmpty {
            printError("failed:")
            for f in failures { printError("  \(f)") }
            throw ExitCode(1)
        }
    }
}

/// "1:02:03" or "2:03".
func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}

/// This process's resident set size in KiB (Linux /proc; 0 elsewhere).
func residentKilobytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}
